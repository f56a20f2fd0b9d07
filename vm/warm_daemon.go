package vm

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// StartWarm boots a warm guest for o.Kernel in the background and returns
// its state once it serves runs. The guest is held by a daemon: this
// executable run with serveArgs, which must call ServeWarm with the same
// Options and file descriptor 3. byKeep records that --keep started it.
func StartWarm(o Options, serveArgs []string, byKeep bool) (*WarmState, error) {
	if err := ensureWarmDir(); err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	key, _ := warmKey(o.Kernel)
	if s, err := readState(key); err == nil {
		return s, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	log, err := os.OpenFile((&WarmState{Key: key}).LogPath(), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	defer log.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	defer pr.Close()
	cmd := exec.Command(exe, serveArgs...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.ExtraFiles = []*os.File{pw}
	cmd.Env = append(os.Environ(), fmt.Sprintf("NKSCRIPT_WARM_BY_KEEP=%v", byKeep))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	pw.Close()
	if err != nil {
		return nil, fmt.Errorf("vm: start the warm guest's daemon: %w", err)
	}
	go cmd.Wait() // reaps it should it end while this process lives
	line, _ := bufio.NewReader(pr).ReadString('\n')
	line = strings.TrimSpace(line)
	if line != "ok" {
		if line == "" {
			line = "the daemon ended without a word; see " + (&WarmState{Key: key}).LogPath()
		}
		return nil, fmt.Errorf("vm: warm guest: %s", line)
	}
	return readState(key)
}

// warmDaemon holds a warm guest's qemu and relays its clients' sessions.
type warmDaemon struct {
	state *WarmState
	p     *qemuProcess
	ctlMu sync.Mutex

	mu       sync.Mutex
	sessions map[int]net.Conn
	next     int
	stop     chan struct{}
	stopOnce sync.Once
}

// ServeWarm is the daemon of a warm guest that StartWarm starts: it boots
// the guest, writes "ok" (or what went wrong) to ready, and relays the
// sessions of the clients of its socket until told to stop, ctx ends or
// qemu ends.
func ServeWarm(ctx context.Context, o Options, ready *os.File) error {
	o = o.withDefaults()
	d, lines, err := bootWarm(o)
	if err != nil {
		fmt.Fprintf(ready, "%v\n", strings.ReplaceAll(err.Error(), "\n", " / "))
		ready.Close()
		return err
	}
	defer d.p.close()
	defer d.p.kill()
	ln, err := d.listen()
	if err != nil {
		fmt.Fprintf(ready, "%v\n", err)
		ready.Close()
		return err
	}
	defer d.state.removeFiles()
	fmt.Fprintln(ready, "ok")
	ready.Close()
	go d.route(lines)
	go d.accept(ln)
	select {
	case err := <-d.p.exited:
		d.p.exitedWith(err)
		fmt.Fprintf(o.Stderr, "qemu exited: %v\n", err)
	case <-ctx.Done():
		d.powerOff()
	case <-d.stop:
		d.powerOff()
	}
	ln.Close()
	d.mu.Lock()
	for _, c := range d.sessions {
		c.Close()
	}
	d.mu.Unlock()
	return nil
}

// powerOff tells the guest to end its runs and power off, and waits up
// to 15 seconds for qemu to exit (the caller kills it after that).
func (d *warmDaemon) powerOff() {
	d.sendGuest(warmMsg{Type: "poweroff"})
	select {
	case err := <-d.p.exited:
		d.p.exitedWith(err)
	case <-time.After(15 * time.Second):
	}
}

// bootWarm boots the guest and waits until it serves runs; it returns the
// lines the guest sends from then on.
func bootWarm(o Options) (*warmDaemon, <-chan []byte, error) {
	if err := ensureWarmDir(); err != nil {
		return nil, nil, err
	}
	key, release := warmKey(o.Kernel)
	if s, err := readState(key); err == nil {
		return nil, nil, fmt.Errorf("a warm guest for %s runs already (daemon pid %d)", release, s.Daemon.PID)
	}
	qemu, err := qemuPath()
	if err != nil {
		return nil, nil, err
	}
	bin, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	ki, err := bootKernel(context.Background(), o)
	if err != nil {
		return nil, nil, fmt.Errorf("kernel: %w", err)
	}
	var runEnv []string
	if o.Prepare != nil {
		runEnv = o.Prepare(ki)
	}
	initrd, err := initramfs(bin, ki)
	if err != nil {
		return nil, nil, fmt.Errorf("initramfs: %w", err)
	}
	r := &runner{o: o, ki: ki, serve: true, start: time.Now(), progress: make(chan struct{}, 1)}
	p, err := r.startQemu(qemu, initrd)
	if err != nil {
		return nil, nil, err
	}
	r.copyOutput(p)
	req := request{Args: []string{}, Env: o.Env, Dir: "/", Modules: ki.Modules, Serve: true, RunEnv: runEnv}
	b, _ := json.Marshal(req)
	lines := readLines(p.ctl)
	if _, err := p.ctl.Write(append(b, '\n')); err != nil {
		p.kill()
		p.close()
		return nil, nil, fmt.Errorf("send request: %w", err)
	}
	if err := r.awaitServing(p, lines); err != nil {
		p.kill()
		p.close()
		return nil, nil, err
	}
	s := &WarmState{Key: key, Kernel: o.Kernel, Release: release, Binary: binaryID(bin), Started: time.Now(),
		ByKeep: os.Getenv("NKSCRIPT_WARM_BY_KEEP") == "true"}
	s.Daemon, _ = procID(os.Getpid())
	s.Qemu, _ = procID(p.cmd.Process.Pid)
	if ki.Version != "" && o.Kernel == "" {
		s.Release = ki.Version
	}
	return &warmDaemon{state: s, p: p, sessions: map[int]net.Conn{}, stop: make(chan struct{})}, lines, nil
}

// readLines returns the lines read from f, closed at its end.
func readLines(f io.Reader) <-chan []byte {
	out := make(chan []byte, 16)
	go func() {
		defer close(out)
		rd := bufio.NewReaderSize(f, 1<<20)
		for {
			line, err := rd.ReadBytes('\n')
			if len(line) > 0 {
				out <- line
			}
			if err != nil {
				return
			}
		}
	}()
	return out
}

// awaitServing waits for the guest's "serving" message.
func (r *runner) awaitServing(p *qemuProcess, lines <-chan []byte) error {
	timer := time.NewTimer(r.o.BootTimeout)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				err := <-p.exited
				p.exitedWith(err)
				return r.exitError(err)
			}
			var m message
			if json.Unmarshal(line, &m) != nil {
				continue
			}
			switch m.Type {
			case "serving":
				return nil
			case "error":
				return fmt.Errorf("guest: %s", m.Error)
			}
		case err := <-p.exited:
			p.exitedWith(err)
			return r.exitError(err)
		case <-timer.C:
			return fmt.Errorf("%w: no word from the guest within %v%s", ErrBootTimeout, r.o.BootTimeout, r.consoleTail())
		}
	}
}

// listen opens the guest's socket, root's only, and writes its state file.
func (d *warmDaemon) listen() (net.Listener, error) {
	sock := d.state.socketPath()
	os.Remove(sock)
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", sock)
	syscall.Umask(old)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	if err := writeState(d.state); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// sendGuest sends the guest m on the control port.
func (d *warmDaemon) sendGuest(m warmMsg) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	d.ctlMu.Lock()
	defer d.ctlMu.Unlock()
	_, err = d.p.ctl.Write(append(b, '\n'))
	return err
}

// route delivers the guest's messages to the sessions' clients.
func (d *warmDaemon) route(lines <-chan []byte) {
	for line := range lines {
		var m warmMsg
		if json.Unmarshal(line, &m) != nil {
			continue
		}
		d.mu.Lock()
		c := d.sessions[m.S]
		if m.Type == "exit" || m.Type == "error" || m.Type == "status" {
			delete(d.sessions, m.S)
		}
		d.mu.Unlock()
		if c != nil {
			c.Write(line)
		}
	}
}

// accept serves the socket's clients.
func (d *warmDaemon) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go d.serveConn(c)
	}
}

// serveConn relays one client's session: its first message says what it
// wants (run, status, stop), the run's further messages follow.
func (d *warmDaemon) serveConn(c net.Conn) {
	rd := bufio.NewReader(c)
	line, err := rd.ReadBytes('\n')
	var m warmMsg
	if err != nil || json.Unmarshal(line, &m) != nil {
		c.Close()
		return
	}
	if m.Type == "stop" {
		d.stopOnce.Do(func() { close(d.stop) })
		return // the connection closes as the daemon exits
	}
	d.mu.Lock()
	d.next++
	s := d.next
	d.sessions[s] = c
	d.mu.Unlock()
	m.S = s
	if err := d.sendGuest(m); err != nil || m.Type != "run" {
		return
	}
	for {
		line, err := rd.ReadBytes('\n')
		if err != nil {
			break
		}
		if json.Unmarshal(line, &m) == nil {
			m.S = s
			d.sendGuest(m)
		}
	}
	d.mu.Lock()
	_, open := d.sessions[s]
	delete(d.sessions, s)
	d.mu.Unlock()
	c.Close()
	if open {
		d.sendGuest(warmMsg{Type: "hangup", S: s})
	}
}

// errGuestGone means the warm guest ended during a run.
var errGuestGone = errors.New("the warm guest ended during the run")
