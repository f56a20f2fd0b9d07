package vmtest

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nkscript/nkscript/vm"
)

// warmCLI runs the nkscript binary with its warm guests in a directory of
// the test's own.
type warmCLI struct {
	t      *testing.T
	bin    string
	repo   string
	vmDir  string
	guests []vm.ProcID // every qemu the test saw, to check it is gone
}

func newWarmCLI(t *testing.T) *warmCLI {
	requireVM(t)
	repo, dir := workDirs(t)
	c := &warmCLI{t: t, bin: build(t, dir, "nkscript", "build", "./cmd/nkscript"), repo: repo, vmDir: filepath.Join(dir, "vm")}
	t.Cleanup(func() {
		c.run("vm", "stop", "--all")
		for _, q := range c.guests {
			if q.Alive() {
				t.Errorf("qemu %d is still running", q.PID)
				q.Kill(syscall.SIGKILL)
			}
		}
	})
	return c
}

// command returns the command nkscript args, in the repository.
func (c *warmCLI) command(args ...string) *exec.Cmd {
	cmd := exec.Command(c.bin, args...)
	cmd.Dir = c.repo
	cmd.Env = append(os.Environ(), "NKSCRIPT_VM_DIR="+c.vmDir)
	return cmd
}

// run runs nkscript args and returns its exit code, stdout and stderr.
func (c *warmCLI) run(args ...string) (int, string, string) {
	cmd := c.command(args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		c.t.Fatalf("nkscript %v: %v", args, err)
	}
	return code, out.String(), errb.String()
}

// state returns the running guest's state file.
func (c *warmCLI) state() *vm.WarmState {
	c.t.Helper()
	paths, _ := filepath.Glob(filepath.Join(c.vmDir, "*.json"))
	if len(paths) != 1 {
		c.t.Fatalf("%d state files in %s, want 1", len(paths), c.vmDir)
	}
	b, err := os.ReadFile(paths[0])
	if err != nil {
		c.t.Fatal(err)
	}
	var s vm.WarmState
	if err := json.Unmarshal(b, &s); err != nil {
		c.t.Fatal(err)
	}
	return &s
}

// start starts a warm guest and checks its socket is its owner's only.
func (c *warmCLI) start() *vm.WarmState {
	c.t.Helper()
	if code, out, errs := c.run("vm", "start"); code != 0 {
		c.t.Fatalf("vm start: exit %d\n%s%s", code, out, errs)
	}
	s := c.state()
	c.guests = append(c.guests, s.Qemu)
	for path, want := range map[string]os.FileMode{c.vmDir: 0o700, filepath.Join(c.vmDir, s.Key+".sock"): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			c.t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			c.t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), want)
		}
	}
	return s
}

// status returns `nkscript vm status`.
func (c *warmCLI) status() string {
	_, out, _ := c.run("vm", "status")
	return out
}

// TestWarmGuest runs the tutorial cold and in a warm guest (the same
// output), kills a client with SIGKILL during a run (the guest cleans the
// run up), kills the guest under a run (the run fails clearly, the next
// boots a guest) and stops the guest (no qemu left).
func TestWarmGuest(t *testing.T) {
	c := newWarmCLI(t)
	coldCode, cold, coldErr := c.run("--vm=always", "scripts/tutorial.star")
	if coldCode != 0 {
		t.Fatalf("cold run: exit %d\n%s", coldCode, coldErr)
	}
	s := c.start()
	code, warm, warmErr := c.run("--vm=always", "scripts/tutorial.star")
	if code != coldCode || warm != cold || warmErr != coldErr {
		t.Fatalf("warm run: exit %d, stdout:\n%s\nstderr:\n%s\nwant exit %d, stdout:\n%s\nstderr:\n%s", code, warm, warmErr, coldCode, cold, coldErr)
	}
	if st := c.status(); !strings.Contains(st, "1 runs served") {
		t.Errorf("vm status after one run: %q", st)
	}
	// A script edited on the host runs as it is now.
	edited := filepath.Join(filepath.Dir(c.bin), "edited.star")
	for _, word := range []string{"first", "again"} {
		if err := os.WriteFile(edited, []byte("print(\""+word+"\")\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, out, errs := c.run("--vm=always", edited); out != word+"\n" {
			t.Fatalf("edited script: stdout %q, want %q; stderr:\n%s", out, word+"\n", errs)
		}
	}

	// Runs in the guest, warm and cold, read the drop monitor's types the
	// host kept of the image, not their kernel's whole BTF.
	for _, warm := range []bool{true, false} {
		if got := guestKernelTypes(t, c, warm); got != "readable\n\n" {
			t.Errorf("warm %v: the run's kernel types: %q, want the host's blob readable", warm, got)
		}
	}

	t.Run("sigkill", func(t *testing.T) { warmSigkill(t, c) })
	t.Run("guest-killed", func(t *testing.T) { warmGuestKilled(t, c, s) })

	s = c.start()
	if code, out, errs := c.run("vm", "stop"); code != 0 || !strings.Contains(out, "stopped") {
		t.Fatalf("vm stop: exit %d\n%s%s", code, out, errs)
	}
	if s.Qemu.Alive() || s.Daemon.Alive() {
		t.Fatalf("after vm stop: qemu alive %v, daemon alive %v", s.Qemu.Alive(), s.Daemon.Alive())
	}
}

// guestKernelTypes says whether a run in the guest (a warm one, or one
// that boots a guest for itself) has the types the host kept of its
// kernel image.
func guestKernelTypes(t *testing.T, c *warmCLI, warm bool) string {
	path := filepath.Join(filepath.Dir(c.bin), "types.star")
	lab := "print(exec(netns(\"types_ns\"), [\"sh\", \"-c\", \"test -r \\\"$NKSCRIPT_KERNEL_TYPES\\\" && echo readable\"]))\n"
	if err := os.WriteFile(path, []byte(lab), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := c.command("--vm=always", path)
	if !warm {
		cmd.Env = append(cmd.Env, "NKSCRIPT_VM_DIR="+t.TempDir())
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return string(out)
}

// longScript writes a lab that sleeps in its namespace, and returns its
// path.
func longScript(t *testing.T, c *warmCLI) string {
	path := filepath.Join(filepath.Dir(c.bin), "long.star")
	lab := "ns = netns(\"warm_ns\")\nveth_pair(\"wv0\", \"wv1\", peer_ns=ns)\nprint(\"up\")\nexec(ns, \"sleep 60\")\n"
	if err := os.WriteFile(path, []byte(lab), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// startLong starts the long script in the guest and waits until its lab
// is up.
func startLong(t *testing.T, c *warmCLI) (*exec.Cmd, *bytes.Buffer) {
	cmd := c.command("--vm=always", longScript(t, c))
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = pw, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	up := make(chan bool, 1)
	go func() {
		var b [3]byte
		n, _ := pr.Read(b[:])
		up <- string(b[:n]) == "up\n"
		pr.Close()
	}()
	select {
	case ok := <-up:
		if !ok {
			cmd.Wait()
			t.Fatalf("the long run did not come up: %s", errb.String())
		}
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatal("the long run did not come up in 2 minutes")
	}
	return cmd, &errb
}

func warmSigkill(t *testing.T, c *warmCLI) {
	cmd, _ := startLong(t, c)
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(c.status(), "\t0 running\t0 kept labs") {
		if time.Now().After(deadline) {
			t.Fatalf("the guest did not clean the killed run up: %s", c.status())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if st := c.status(); strings.Contains(st, "not clean") {
		t.Fatalf("the guest is not clean after the killed run: %s", st)
	}
	// A checked run finds the guest as it was.
	if code, _, errs := c.run("--vm=always", "scripts/tutorial.star"); code != 0 || errs != "" {
		t.Fatalf("run after the killed one: exit %d\n%s", code, errs)
	}
}

func warmGuestKilled(t *testing.T, c *warmCLI, s *vm.WarmState) {
	cmd, errb := startLong(t, c)
	s.Qemu.Kill(syscall.SIGKILL)
	err := cmd.Wait()
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(errb.String(), "the warm guest ended during the run") {
		t.Fatalf("run whose guest was killed: %v, stderr:\n%s", err, errb.String())
	}
	if st := c.status(); !strings.Contains(st, "no guest running") {
		t.Fatalf("vm status after the guest was killed: %s", st)
	}
	if s.Daemon.Alive() {
		t.Fatalf("the daemon of the killed guest still runs")
	}
}

// TestWarmKeepEnterREPL keeps the tutorial's lab in a guest --keep
// starts, runs a command in one of its namespaces from the host, runs
// the REPL in the guest from a pipe, and removes the lab with nkscript
// cleanup, which stops the guest.
func TestWarmKeepEnterREPL(t *testing.T) {
	c := newWarmCLI(t)
	code, _, errs := c.run("--vm=always", "--keep", "scripts/tutorial.star")
	if code != 0 || !strings.Contains(errs, "enter task_netns: nkscript enter task_netns") {
		t.Fatalf("--keep: exit %d, stderr:\n%s", code, errs)
	}
	s := c.state()
	c.guests = append(c.guests, s.Qemu)
	code, out, errs := c.run("enter", "task_netns", "--", "ip", "-br", "link")
	if code != 0 || !strings.Contains(out, "task_nk") {
		t.Fatalf("enter: exit %d, stdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if code, _, errs := c.run("enter", "no_such_ns", "--", "true"); code != 1 || !strings.Contains(errs, `no kept or paused lab has a namespace "no_such_ns"`) {
		t.Fatalf("enter a namespace no lab has: exit %d, stderr:\n%s", code, errs)
	}

	repl := c.command("repl", "--vm=always")
	repl.Stdin = strings.NewReader("p = netkit_pair(\"rpl0\", \"rpl1\")\nprint(p.kind)\n")
	b, err := repl.CombinedOutput()
	if err != nil || string(b) != "netkit\n" {
		t.Fatalf("REPL in the guest: %v, output:\n%s", err, b)
	}
	repl = c.command("repl", "--vm=always")
	repl.Stdin = strings.NewReader("x = 1 // 0\nprint(2)\n")
	b, _ = repl.CombinedOutput()
	if repl.ProcessState.ExitCode() != 1 || !strings.Contains(string(b), "2\n") {
		t.Fatalf("REPL in the guest with a failing statement: exit %d, output:\n%s", repl.ProcessState.ExitCode(), b)
	}

	// cleanup must not touch the host's journals: it gets a directory of
	// its own; NKSCRIPT_VM_DIR makes it reach into the test's guests.
	code, out, errs = c.run("cleanup", "--journal-dir", filepath.Join(filepath.Dir(c.bin), "journals"))
	if code != 0 || !strings.Contains(out, "deleted netns task_netns") || !strings.Contains(out, "stopped the guest") {
		t.Fatalf("cleanup: exit %d, stdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if s.Qemu.Alive() || s.Daemon.Alive() {
		t.Fatalf("after cleanup: qemu alive %v, daemon alive %v", s.Qemu.Alive(), s.Daemon.Alive())
	}
}
