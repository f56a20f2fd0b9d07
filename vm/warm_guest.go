package vm

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// warmServer is a warm guest's PID 1: it runs each run the host sends as a
// child process of its own, a session, and checks after each run that the
// guest is as it was before.
type warmServer struct {
	g      *guest
	runEnv []string // added to each run's environment

	mu       sync.Mutex
	sessions map[int]*warmSession
	runs     int
	baseline string // guestState before the runs, and after kept ones
	tainted  string
	slot     chan struct{}     // held by the checked run in progress
	waiting  map[int]bool      // checked runs waiting for the slot; false once their host went away
	queued   map[int][]warmMsg // what the host sent waiting runs
}

// warmSession is one run in a warm guest.
type warmSession struct {
	s     int
	cmd   *exec.Cmd
	stdin *os.File // nil when the run's stdin is /dev/null
	tty   *os.File // the terminal's master side, for a run on one
	done  chan struct{}
}

// serve is the second stage of a warm guest: it serves runs until the
// host tells it to power off or the control port closes.
func (g *guest) serve(runEnv []string) {
	if err := mount("devpts", "/dev/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "ptmxmode=0666,mode=0620"); err != nil {
		g.logf("%v (runs on a terminal will fail)", err)
	}
	srv := &warmServer{g: g, runEnv: runEnv, sessions: map[int]*warmSession{}, baseline: guestState(),
		slot: make(chan struct{}, 1), waiting: map[int]bool{}, queued: map[int][]warmMsg{}}
	if err := g.send(message{Type: "serving"}); err != nil {
		g.logf("send serving: %v", err)
		return
	}
	for {
		line, err := g.ctlr.ReadBytes('\n')
		if err != nil {
			g.logf("control port: %v", err)
			srv.stopAll()
			return
		}
		var m warmMsg
		if json.Unmarshal(line, &m) != nil {
			continue
		}
		if m.Type == "poweroff" {
			srv.stopAll()
			return
		}
		srv.handle(m)
	}
}

// send sends the host m.
func (srv *warmServer) send(m warmMsg) {
	b, err := json.Marshal(m)
	if err != nil {
		return
	}
	srv.g.mu.Lock()
	defer srv.g.mu.Unlock()
	srv.g.ctl.Write(append(b, '\n'))
}

// handle acts on one message from the host.
func (srv *warmServer) handle(m warmMsg) {
	srv.mu.Lock()
	ss := srv.sessions[m.S]
	srv.mu.Unlock()
	if ss == nil && m.Type != "run" && m.Type != "status" && m.Type != "hangup" && srv.queue(m) {
		return
	}
	switch m.Type {
	case "run":
		if !m.Check {
			srv.start(m)
			break
		}
		select {
		case srv.slot <- struct{}{}:
			if !srv.start(m) {
				<-srv.slot
			}
		default:
			srv.mu.Lock()
			srv.waiting[m.S] = true
			srv.mu.Unlock()
			go srv.startChecked(m)
		}
	case "status":
		srv.send(warmMsg{Type: "status", S: m.S, Status: srv.status()})
	case "stdin":
		if ss != nil && ss.stdin != nil {
			ss.stdin.Write(m.Data)
		}
	case "eof":
		if ss != nil && ss.stdin != nil && ss.tty == nil {
			ss.stdin.Close()
		} else if ss != nil && ss.tty != nil {
			ss.tty.Write([]byte{4}) // Ctrl-D
		}
	case "signal":
		if ss != nil {
			ss.cmd.Process.Signal(syscall.Signal(m.Sig))
		}
	case "winsize":
		if ss != nil && ss.tty != nil {
			setWinsize(ss.tty, m.Rows, m.Cols)
		}
	case "hangup":
		srv.mu.Lock()
		if srv.waiting[m.S] {
			srv.waiting[m.S] = false
		}
		srv.mu.Unlock()
		if ss != nil {
			go srv.hangup(ss)
		}
	}
}

// status describes the guest.
func (srv *warmServer) status() *WarmStatus {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	st := &WarmStatus{Runs: srv.runs, Active: len(srv.sessions), Tainted: srv.tainted}
	ents, _ := os.ReadDir(guestJournalDir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".journal") {
			st.Kept = append(st.Kept, e.Name())
		}
	}
	return st
}

// warmSessionEnv is set in the environment of a warm guest's runs.
const warmSessionEnv = "NKSCRIPT_WARM_SESSION"

// InWarmGuest reports whether the process is a run in a warm guest (or
// one of its children), which the host reaches with nkscript enter, and
// whose stdin is the host's terminal when the host has one.
func InWarmGuest() bool {
	return os.Getenv(warmSessionEnv) != "" && InGuest()
}

// guestJournalDir is where runs in the guest keep their journals.
const guestJournalDir = "/run/nkscript"

// startChecked starts the checked run m once no other checked run is in
// progress, for each checks the whole guest: runs wait for each other,
// and say so. What the host sends the run meanwhile waits in srv.queued.
func (srv *warmServer) startChecked(m warmMsg) {
	srv.send(warmMsg{Type: "out", S: m.S, FD: 2, Data: []byte("nkscript: another run is in progress in the warm guest; waiting for it to end\n")})
	srv.slot <- struct{}{}
	srv.mu.Lock()
	wanted := srv.waiting[m.S]
	delete(srv.waiting, m.S)
	queued := srv.queued[m.S]
	delete(srv.queued, m.S)
	srv.mu.Unlock()
	if !wanted || !srv.start(m) {
		<-srv.slot
		return
	}
	for _, q := range queued {
		srv.handle(q)
	}
}

// queue keeps m for the run it is for if that run waits for its turn,
// and reports whether it did.
func (srv *warmServer) queue(m warmMsg) bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if _, ok := srv.waiting[m.S]; !ok {
		return false
	}
	srv.queued[m.S] = append(srv.queued[m.S], m)
	return true
}

// start starts the run m asks for, or says why it cannot.
func (srv *warmServer) start(m warmMsg) bool {
	srv.mu.Lock()
	tainted := srv.tainted
	srv.mu.Unlock()
	if tainted != "" && m.Check {
		srv.send(warmMsg{Type: "error", S: m.S, Error: "the guest is not clean", Dirty: tainted})
		return false
	}
	ss, outs, err := startSession(m, srv.runEnv)
	if err != nil {
		srv.send(warmMsg{Type: "error", S: m.S, Error: err.Error()})
		return false
	}
	srv.mu.Lock()
	srv.sessions[m.S] = ss
	srv.runs++
	srv.mu.Unlock()
	srv.send(warmMsg{Type: "started", S: m.S})
	go srv.follow(ss, m, outs)
	return true
}

// startSession starts the child process of the run m: the guest's program
// with m's arguments, environment (and runEnv) and working directory, in
// a session of its own, its output on pipes (outs, for fds 1 and 2) or on
// a terminal.
func startSession(m warmMsg, runEnv []string) (*warmSession, []*os.File, error) {
	cmd := exec.Command("/proc/self/exe", m.Args...)
	cmd.Args[0] = os.Args[0]
	cmd.Env = append(append(slices.Clip(m.Env), runEnv...), fmt.Sprintf("%s=%d", warmSessionEnv, m.S))
	cmd.Dir = m.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	ss := &warmSession{s: m.S, cmd: cmd, done: make(chan struct{})}
	var childEnds, outs []*os.File
	defer func() {
		for _, f := range childEnds {
			f.Close()
		}
	}()
	if m.TTY {
		master, slave, err := openPty()
		if err != nil {
			return nil, nil, err
		}
		setWinsize(master, m.Rows, m.Cols)
		childEnds = append(childEnds, slave)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		cmd.SysProcAttr.Setctty = true
		ss.tty, ss.stdin = master, master
		outs = []*os.File{master, nil}
	} else {
		for i := 0; i < 2; i++ {
			r, w, err := os.Pipe()
			if err != nil {
				return nil, nil, err
			}
			childEnds = append(childEnds, w)
			outs = append(outs, r)
		}
		cmd.Stdout, cmd.Stderr = childEnds[0], childEnds[1]
		if m.Stdin {
			r, w, err := os.Pipe()
			if err != nil {
				return nil, nil, err
			}
			childEnds = append(childEnds, r)
			cmd.Stdin, ss.stdin = r, w
		}
	}
	if err := cmd.Start(); err != nil {
		for _, f := range outs {
			if f != nil {
				f.Close()
			}
		}
		return nil, nil, fmt.Errorf("start %v: %w", m.Args, err)
	}
	return ss, outs, nil
}

// follow forwards the session's output to the host until the run ends,
// then reports its exit code and, for a checked run, whether the guest is
// as before.
func (srv *warmServer) follow(ss *warmSession, m warmMsg, outs []*os.File) {
	var copies sync.WaitGroup
	for i, f := range outs {
		if f == nil {
			continue
		}
		copies.Add(1)
		go func() {
			defer copies.Done()
			buf := make([]byte, 32<<10)
			for {
				n, err := f.Read(buf)
				if n > 0 {
					srv.send(warmMsg{Type: "out", S: ss.s, FD: i + 1, Data: append([]byte(nil), buf[:n]...)})
				}
				if err != nil {
					return
				}
			}
		}()
	}
	err := ss.cmd.Wait()
	// What the run left running goes with it, so that its output ends.
	unix.Kill(-ss.cmd.Process.Pid, unix.SIGKILL)
	waitTimeout(&copies, 2*time.Second)
	for _, f := range outs {
		if f != nil {
			f.Close()
		}
	}
	if ss.stdin != nil && ss.tty == nil {
		ss.stdin.Close()
	}
	code := ss.cmd.ProcessState.ExitCode()
	var ee *exec.ExitError
	if code < 0 && errors.As(err, &ee) {
		code = 128 + int(ee.Sys().(syscall.WaitStatus).Signal())
	}
	exit := warmMsg{Type: "exit", S: ss.s, Code: code}
	if m.Check {
		exit.Dirty = srv.check(m.Keep)
		<-srv.slot
	}
	srv.mu.Lock()
	delete(srv.sessions, ss.s)
	srv.mu.Unlock()
	close(ss.done)
	srv.send(exit)
}

// check compares the guest with how it was before the run and returns
// the difference; a kept run's state becomes the new normal.
func (srv *warmServer) check(keep bool) string {
	now := guestState()
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if keep {
		srv.baseline = now
		return ""
	}
	srv.tainted = stateDiff(srv.baseline, now)
	return srv.tainted
}

// hangup ends a session whose host side went away: SIGTERM, which makes a
// run clean its lab up, then, after 20 seconds, SIGKILL for the session's
// processes and nkscript cleanup for what the run's journal still lists.
func (srv *warmServer) hangup(ss *warmSession) {
	ss.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-ss.done:
		return
	case <-time.After(20 * time.Second):
	}
	unix.Kill(-ss.cmd.Process.Pid, unix.SIGKILL)
	<-ss.done
	if err := cleanupJournalOf(ss.cmd.Process.Pid); err != nil {
		srv.g.logf("cleanup after hangup: %v", err)
	}
	srv.check(false)
}

// cleanupJournalOf runs nkscript cleanup on the journal of the run whose
// process was pid, alone: the guest's other journals (kept labs) stay.
func cleanupJournalOf(pid int) error {
	journals, _ := filepath.Glob(filepath.Join(guestJournalDir, fmt.Sprintf("%d-*.journal", pid)))
	if len(journals) == 0 {
		return nil
	}
	dir, err := os.MkdirTemp(guestJournalDir, "hangup-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for _, j := range journals {
		if err := os.Rename(j, filepath.Join(dir, filepath.Base(j))); err != nil {
			return err
		}
	}
	cleanup := exec.Command("/proc/self/exe", "--vm=never", "cleanup", "--journal-dir", dir)
	cleanup.Args[0] = os.Args[0]
	if out, err := cleanup.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// stopAll ends every session, giving runs 10 seconds to clean up.
func (srv *warmServer) stopAll() {
	srv.mu.Lock()
	var all []*warmSession
	for _, ss := range srv.sessions {
		all = append(all, ss)
	}
	srv.mu.Unlock()
	for _, ss := range all {
		ss.cmd.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.After(10 * time.Second)
	for _, ss := range all {
		select {
		case <-ss.done:
		case <-deadline:
			return
		}
	}
}

// waitTimeout waits for wg, at most d.
func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}
