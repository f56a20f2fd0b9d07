package vm

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// WarmRun is one run in a warm guest.
type WarmRun struct {
	// Args, Env and Dir are the guest program's arguments (without
	// argv[0]), environment and working directory.
	Args []string
	Env  []string
	Dir  string
	// Stdin, if not nil, is copied to the program's standard input, which
	// is otherwise /dev/null.
	Stdin io.Reader
	// Stdout and Stderr receive the program's output; on a terminal (TTY),
	// Stdout receives all of it.
	Stdout, Stderr io.Writer
	// TTY runs the program on a terminal of Rows x Cols in the guest.
	TTY        bool
	Rows, Cols int
	// Resize, if not nil, delivers the terminal's new sizes.
	Resize <-chan [2]int
	// Check checks after the run that the guest is as it was before;
	// Keep says the run may leave its lab, which becomes the guest's
	// normal state.
	Check, Keep bool
}

// GuestDirtyError says that a warm guest was not as before after a run;
// the guest has been stopped.
type GuestDirtyError struct{ Diff string }

// Error says how the guest differed.
func (e *GuestDirtyError) Error() string {
	return "the warm guest was not clean after the run, so it was stopped:\n" + e.Diff
}

// dial connects to the guest's socket.
func (s *WarmState) dial() (net.Conn, error) {
	c, err := net.DialTimeout("unix", s.socketPath(), 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoWarmGuest, err)
	}
	return c, nil
}

// send writes m to c.
func sendMsg(c io.Writer, m warmMsg) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = c.Write(append(b, '\n'))
	return err
}

// CurrentBinary reports whether the guest runs the executable this process
// runs (not one rebuilt since).
func (s *WarmState) CurrentBinary() bool {
	exe, err := os.Executable()
	return err == nil && binaryID(exe) == s.Binary
}

// Run runs r in the guest and returns its exit code. When ctx ends, the
// run gets SIGTERM and Run waits for it to end. If the guest cannot take
// the run it returns an error wrapping ErrNoWarmGuest: the caller may boot
// a guest instead. A guest that ends during the run, or is not as before
// after a checked one, is stopped.
func (s *WarmState) Run(ctx context.Context, r WarmRun) (int, error) {
	c, err := s.dial()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if r.Stdout == nil {
		r.Stdout = io.Discard
	}
	if r.Stderr == nil {
		r.Stderr = io.Discard
	}
	start := warmMsg{Type: "run", Args: r.Args, Env: r.Env, Dir: r.Dir, Stdin: r.Stdin != nil,
		TTY: r.TTY, Rows: r.Rows, Cols: r.Cols, Check: r.Check, Keep: r.Keep}
	if err := sendMsg(c, start); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrNoWarmGuest, err)
	}
	go forwardInput(ctx, c, r)
	return s.follow(c, r)
}

// forwardInput copies r.Stdin, resizes and ctx's end (SIGTERM) to the run.
func forwardInput(ctx context.Context, c net.Conn, r WarmRun) {
	in := make(chan []byte)
	if r.Stdin != nil {
		go func() {
			defer close(in)
			for {
				buf := make([]byte, 4096)
				n, err := r.Stdin.Read(buf)
				if n > 0 {
					in <- buf[:n]
				}
				if err != nil {
					return
				}
			}
		}()
	}
	done := ctx.Done()
	var input <-chan []byte = in
	if r.Stdin == nil {
		input = nil
	}
	for {
		var err error
		select {
		case <-done:
			done = nil
			err = sendMsg(c, warmMsg{Type: "signal", Sig: int(syscall.SIGTERM)})
		case b, ok := <-input:
			if !ok {
				input = nil
				err = sendMsg(c, warmMsg{Type: "eof"})
			} else {
				err = sendMsg(c, warmMsg{Type: "stdin", Data: b})
			}
		case sz := <-r.Resize:
			err = sendMsg(c, warmMsg{Type: "winsize", Rows: sz[0], Cols: sz[1]})
		}
		if err != nil {
			return
		}
	}
}

// follow delivers the run's output until its exit message.
func (s *WarmState) follow(c net.Conn, r WarmRun) (int, error) {
	rd := bufio.NewReaderSize(c, 1<<20)
	started := false
	for {
		line, err := rd.ReadBytes('\n')
		if err != nil {
			if !started {
				return 0, fmt.Errorf("%w: the guest did not take the run: %v", ErrNoWarmGuest, err)
			}
			s.Stop()
			return 0, fmt.Errorf("%w (it has been stopped; the next run boots a new one)", errGuestGone)
		}
		var m warmMsg
		if json.Unmarshal(line, &m) != nil {
			continue
		}
		switch m.Type {
		case "started":
			started = true
		case "out":
			w := r.Stdout
			if m.FD == 2 {
				w = r.Stderr
			}
			w.Write(m.Data)
		case "error":
			if m.Dirty == "" {
				return 0, fmt.Errorf("guest: %s", m.Error)
			}
			s.Stop()
			return 0, fmt.Errorf("%w: %s (it has been stopped):\n%s", ErrNoWarmGuest, m.Error, m.Dirty)
		case "exit":
			if m.Dirty != "" {
				s.Stop()
				return m.Code, &GuestDirtyError{Diff: m.Dirty}
			}
			return m.Code, nil
		}
	}
}

// Status asks the guest how it is.
func (s *WarmState) Status() (*WarmStatus, error) {
	c, err := s.dial()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := sendMsg(c, warmMsg{Type: "status"}); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("the guest does not answer: %w", err)
	}
	var m warmMsg
	if err := json.Unmarshal(line, &m); err != nil || m.Status == nil {
		return nil, fmt.Errorf("the guest answered nonsense: %s", line)
	}
	return m.Status, nil
}

// Stop powers the guest off and makes sure its daemon and qemu are gone,
// killing them (by identity) if they do not end in time.
func (s *WarmState) Stop() error {
	if c, err := s.dial(); err == nil {
		c.SetDeadline(time.Now().Add(20 * time.Second))
		if sendMsg(c, warmMsg{Type: "stop"}) == nil {
			io.Copy(io.Discard, c) // the daemon closes it as it exits
		}
		c.Close()
	}
	for i := 0; i < 50 && (s.Daemon.Alive() || s.Qemu.Alive()); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	s.Qemu.Kill(syscall.SIGKILL)
	s.Daemon.Kill(syscall.SIGKILL)
	for i := 0; i < 50 && (s.Daemon.Alive() || s.Qemu.Alive()); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	s.removeFiles()
	if s.Qemu.Alive() {
		return fmt.Errorf("qemu (pid %d) did not end", s.Qemu.PID)
	}
	os.Remove(s.LogPath())
	os.Remove(WarmDir) // when no other guest runs
	return nil
}
