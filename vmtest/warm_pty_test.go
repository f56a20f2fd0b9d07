package vmtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// onPty is a command running on a pseudo-terminal of the test's.
type onPty struct {
	t      *testing.T
	master *os.File
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    bytes.Buffer
}

// startOnPty starts cmd on a new terminal of 24x80.
func startOnPty(t *testing.T, cmd *exec.Cmd) *onPty {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	unix.IoctlSetWinsize(int(m.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 80})
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s, s, s
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &onPty{t: t, master: m, cmd: cmd}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := m.Read(buf)
			p.mu.Lock()
			p.out.Write(buf[:n])
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		m.Close()
	})
	return p
}

// expect waits up to a minute for want in the output since the last
// expect, and consumes the output up to it.
func (p *onPty) expect(want string) {
	p.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		p.mu.Lock()
		s := p.out.String()
		if i := strings.Index(s, want); i >= 0 {
			p.out.Next(i + len(want))
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		if time.Now().After(deadline) {
			p.t.Fatalf("no %q in the terminal's output:\n%q", want, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// send types s.
func (p *onPty) send(s string) {
	p.t.Helper()
	if _, err := p.master.Write([]byte(s)); err != nil {
		p.t.Fatal(err)
	}
}

// wait waits for the command's exit code.
func (p *onPty) wait() int {
	p.t.Helper()
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		p.t.Fatal("the command did not exit")
	}
	return p.cmd.ProcessState.ExitCode()
}

// TestWarmREPLAndEnterOnTerminal runs the REPL in a warm guest on a
// terminal (a result, completion, Ctrl-C, Ctrl-D), and enters the
// namespace its lab has from the host: a command, and a shell on a
// terminal.
func TestWarmREPLAndEnterOnTerminal(t *testing.T) {
	c := newWarmCLI(t)
	c.start()
	repl := startOnPty(t, c.command("repl", "--vm=always"))
	repl.expect(">>> ")
	repl.send("6 * 7\r")
	repl.expect("42")
	repl.send("netkit_p\t")
	repl.expect(">>> netkit_pair")
	repl.send("\x03") // Ctrl-C drops the line
	repl.expect(">>> ")
	repl.send("n = netns(\"pty_ns\")\r")
	repl.expect(">>> ")

	code, out, errs := c.run("enter", "pty_ns", "--", "ip", "-br", "link")
	if code != 0 || !strings.HasPrefix(out, "lo ") {
		t.Fatalf("enter pty_ns -- ip -br link: exit %d\n%s%s", code, out, errs)
	}
	sh := c.command("enter", "pty_ns", "--", "sh")
	sh.Env = append(sh.Env, "PS1=$ ")
	shell := startOnPty(t, sh)
	shell.send("tty; echo $((6 * 7))x\r")
	shell.expect("/dev/pts/")
	shell.expect("42x")
	shell.send("exit 3\r")
	if code := shell.wait(); code != 3 {
		t.Fatalf("the shell in pty_ns exited %d, want 3", code)
	}

	repl.send("\x04") // Ctrl-D cleans up and leaves
	if code := repl.wait(); code != 0 {
		t.Fatalf("REPL exit %d after Ctrl-D", code)
	}
	if st := c.status(); !strings.Contains(st, "0 running\t0 kept labs") {
		t.Fatalf("vm status after the REPL: %s", st)
	}
}
