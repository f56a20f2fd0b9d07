package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nkscript/nkscript/internal/testenv"
	"golang.org/x/sys/unix"
)

// replReadTimeout bounds every wait for output, so a broken REPL fails the
// test instead of hanging it; it is far above any expected latency.
const replReadTimeout = 60 * time.Second

// ptyREPL is an nkscript REPL running on a pseudo-terminal.
type ptyREPL struct {
	t      *testing.T
	master *os.File
	cmd    *exec.Cmd

	mu   sync.Mutex
	cond *sync.Cond
	out  []byte // everything the REPL wrote
	seen int    // out[:seen] was consumed by expect
	eof  bool
}

// openPTY returns the master and slave ends of a new pseudo-terminal of
// 120x40 characters.
func openPTY() (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("unlockpt: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("ptsname: %w", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	// readline completes only when it knows the terminal's width.
	if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: 120}); err != nil {
		m.Close()
		s.Close()
		return nil, nil, fmt.Errorf("set window size: %w", err)
	}
	return m, s, nil
}

// startREPL runs the nkscript REPL on a pseudo-terminal, in a network
// namespace of its own so the links it makes in "host" stay off the real
// host. Its history goes to histFile.
func startREPL(t *testing.T, histFile string) *ptyREPL {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Skipf(t, "needs root")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		testenv.Skipf(t, "needs unshare(1)")
	}
	bin := nkscriptBinary(t)
	master, slave, err := openPTY()
	if err != nil {
		t.Fatal(err)
	}
	journals := t.TempDir()
	cmd := exec.Command("unshare", "--net", bin, "--journal-dir", journals)
	cmd.Env = append(os.Environ(), "NKSCRIPT_HISTORY="+histFile, "HOME="+t.TempDir(), "TERM=xterm")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		master.Close()
		slave.Close()
		t.Fatal(err)
	}
	slave.Close()
	r := &ptyREPL{t: t, master: master, cmd: cmd}
	r.cond = sync.NewCond(&r.mu)
	go r.readLoop()
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			// A test that failed halfway: let the REPL clean up, and
			// if it cannot, kill it and clean up after it.
			r.cmd.Process.Signal(unix.SIGTERM)
			timer := time.AfterFunc(replReadTimeout, func() { r.cmd.Process.Kill() })
			r.cmd.Wait()
			timer.Stop()
			exec.Command(bin, "--journal-dir", journals, "cleanup").Run()
		}
		master.Close()
		if t.Failed() {
			t.Logf("REPL output:\n%s", r.output())
		}
	})
	return r
}

func (r *ptyREPL) readLoop() {
	buf := make([]byte, 4096)
	for {
		n, err := r.master.Read(buf)
		r.mu.Lock()
		r.out = append(r.out, buf[:n]...)
		if err != nil {
			r.eof = true
		}
		r.cond.Broadcast()
		r.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (r *ptyREPL) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return string(r.out)
}

// send types s on the terminal.
func (r *ptyREPL) send(s string) {
	r.t.Helper()
	if _, err := r.master.WriteString(s); err != nil {
		r.t.Fatalf("write to terminal: %v", err)
	}
}

// enter types line and Enter, and waits for the REPL to take the line:
// after that, the next ">>> " is a new prompt, not a redraw of the line
// being edited.
func (r *ptyREPL) enter(line string) {
	r.t.Helper()
	r.send(line + "\r")
	r.expect("\r\n")
}

// expect waits until the output not yet consumed contains want and
// consumes it up to the end of want.
func (r *ptyREPL) expect(want string) {
	r.t.Helper()
	timer := time.AfterFunc(replReadTimeout, func() {
		r.mu.Lock()
		r.cond.Broadcast()
		r.mu.Unlock()
	})
	defer timer.Stop()
	start := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		if i := strings.Index(string(r.out[r.seen:]), want); i >= 0 {
			r.seen += i + len(want)
			return
		}
		if r.eof || time.Since(start) >= replReadTimeout {
			r.t.Fatalf("REPL never printed %q; after the consumed part it printed:\n%q", want, r.out[r.seen:])
		}
		r.cond.Wait()
	}
}

// wait waits for the REPL to exit and returns its exit code.
func (r *ptyREPL) wait() int {
	r.t.Helper()
	err := r.cmd.Wait()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return exitErr.ExitCode()
	}
	if err != nil {
		r.t.Fatal(err)
	}
	return 0
}

func TestREPLTerminal(t *testing.T) {
	hist := filepath.Join(t.TempDir(), "history")
	nsName := fmt.Sprintf("nkt-repl-%d", os.Getpid())
	r := startREPL(t, hist)
	r.expect(">>> ")

	// A builtin's name: "netn" completes to the only match, netns.
	r.enter(fmt.Sprintf("ns = netn\t(%q)", nsName))
	r.expect(">>> ")
	r.enter(fmt.Sprintf("ns.name == %q", nsName))
	r.expect("True")
	r.expect(">>> ")
	if _, err := os.Stat(filepath.Join("/run/netns", nsName)); err != nil {
		t.Fatalf("the session's namespace: %v", err)
	}

	// Keyword arguments: the common part completes on the first Tab, the
	// candidates show on the second.
	r.send(`netkit_pair("a", "b", pe` + "\t")
	r.expect("er")
	r.send("\t")
	r.expect("peer_policy=")
	// The first Ctrl-C leaves the candidate list, the second the line.
	r.send("\x03\x03")
	r.expect("^C")
	r.expect(">>> ")
	r.enter("1 + 1")
	r.expect("2")
	r.expect(">>> ")

	// A keyword of veth_pair, then an attribute after a dot.
	r.enter(`p = veth_pair("rp0", "rp1", peer_n` + "\tns)")
	r.expect(">>> ")
	r.enter("p.peer.ns == ns")
	r.expect("True")
	r.expect(">>> ")
	r.enter("p.pri\t.name + \"!\"")
	r.expect(`rp0!`)
	r.expect(">>> ")

	// help() knows methods and values too.
	r.enter("help(p.primary.addr)")
	r.expect("link.addr(cidr)")
	r.expect(">>> ")
	r.enter("help(p)")
	r.expect("Attributes:")
	r.expect(">>> ")

	// A multi-line def continues with "... " until a blank line.
	r.enter("def double(x):")
	r.expect("... ")
	r.enter("    return x * 2")
	r.expect("... ")
	r.enter("")
	r.expect(">>> ")
	r.enter("double(21)")
	r.expect("42")
	r.expect(">>> ")

	// help() shows a builtin's signature.
	r.enter("help(netns)")
	r.expect("netns(name)")
	r.expect(">>> ")

	// Errors point at a position, with suggestions.
	r.enter("pingg")
	r.expect("<stdin>:1:1: undefined: pingg (did you mean ping?)")
	r.expect(">>> ")

	// Ctrl-C cancels a running call and the session goes on.
	r.enter(`print("sl" + "eeping"); exec(host, "sleep 30"); print("not" + " reached")`)
	r.expect("sleeping")
	r.send("\x03")
	r.expect("interrupted")
	r.expect(">>> ")
	r.enter("print(6 * 7)")
	r.expect("42")
	r.expect(">>> ")
	if strings.Contains(r.output(), "not reached") {
		t.Fatal("the statement went on after Ctrl-C")
	}
	r.enter("ns.name == " + fmt.Sprintf("%q", nsName))
	r.expect("True")
	r.expect(">>> ")

	// Ctrl-D cleans the lab up and leaves with 0.
	r.send("\x04")
	if code := r.wait(); code != 0 {
		t.Fatalf("exit code %d after Ctrl-D, want 0", code)
	}
	if _, err := os.Stat(filepath.Join("/run/netns", nsName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("namespace %s is still there after Ctrl-D (stat: %v)", nsName, err)
	}

	data, err := os.ReadFile(hist)
	if err != nil {
		t.Fatalf("history: %v", err)
	}
	for _, want := range []string{"double(21)", "    return x * 2", "help(netns)"} {
		if !strings.Contains(string(data), want+"\n") {
			t.Errorf("history lacks %q:\n%s", want, data)
		}
	}
}

func TestREPLExit(t *testing.T) {
	r := startREPL(t, filepath.Join(t.TempDir(), "history"))
	r.expect(">>> ")
	r.enter("help()")
	r.expect("expect_drop(")
	r.expect(">>> ")
	r.enter("exit()")
	if code := r.wait(); code != 0 {
		t.Fatalf("exit code %d after exit(), want 0", code)
	}
}

func TestREPLTerminate(t *testing.T) {
	nsName := fmt.Sprintf("nkt-replterm-%d", os.Getpid())
	r := startREPL(t, filepath.Join(t.TempDir(), "history"))
	r.expect(">>> ")
	r.enter(fmt.Sprintf("ns = netns(%q)", nsName))
	r.expect(">>> ")
	if _, err := os.Stat(filepath.Join("/run/netns", nsName)); err != nil {
		t.Fatalf("the session's namespace: %v", err)
	}
	// unshare(1) without --fork execs nkscript: the pid is nkscript's.
	if err := r.cmd.Process.Signal(unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r.expect("terminated; cleaning up")
	if code := r.wait(); code != exitFail {
		t.Fatalf("exit code %d after SIGTERM, want %d", code, exitFail)
	}
	if _, err := os.Stat(filepath.Join("/run/netns", nsName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("namespace %s is still there after SIGTERM (stat: %v)", nsName, err)
	}
}

func TestREPLStdin(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skipf(t, "needs root")
	}
	cmd := exec.Command("unshare", "--net", nkscriptBinary(t), "--journal-dir", t.TempDir())
	cmd.Stdin = strings.NewReader("print(1)\ndef f(x):\n    return x + 1\n\nf(2)\n")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if got, want := stdout.String(), "1\n3\n"; got != want {
		t.Fatalf("stdout %q, want %q (stderr %q)", got, want, stderr.String())
	}

	cmd = exec.Command("unshare", "--net", nkscriptBinary(t), "--journal-dir", t.TempDir())
	cmd.Stdin = strings.NewReader("print(1)\nundefined_name\nprint(2)\n")
	stdout.Reset()
	stderr.Reset()
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != exitFail {
		t.Fatalf("run with a failing statement: %v, want exit code %d", err, exitFail)
	}
	if got, want := stdout.String(), "1\n2\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	if !strings.Contains(stderr.String(), "<stdin>:1:1: undefined: undefined_name") {
		t.Errorf("stderr %q lacks the error position", stderr.String())
	}
}
