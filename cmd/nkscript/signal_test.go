package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nkscript/nkscript/internal/testenv"
	"golang.org/x/sys/unix"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// nkscriptBinary builds the command once per test binary, static as the
// Makefile builds it, or returns $NKSCRIPT_BIN.
func nkscriptBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		// The in-guest suites (vmtest) pass a prebuilt binary: the guest
		// has no Go toolchain.
		if p := os.Getenv("NKSCRIPT_BIN"); p != "" {
			binPath = p
			return
		}
		dir, err := os.MkdirTemp("", "nkscript-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "nkscript")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// testHostNetns creates a named namespace for the test to use as the
// "host" of nkscript runs, so their host-side links stay out of the real
// host; it is deleted when the test ends.
func testHostNetns(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Skipf(t, "needs root")
	}
	name := fmt.Sprintf("nkt-sig-%d-%d", os.Getpid(), time.Now().UnixNano()%100000)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	return name
}

const waitingScript = `
ns = netns(argv[1])
p = veth_pair("sig0", "sig1", peer_ns = ns)
p.primary.addr("10.77.0.1/24").up()
print("ready")
exec(host, "sleep 60")
print("not reached")
`

// startWaiting runs waitingScript inside hostNs and returns once it has
// built its lab.
func startWaiting(t *testing.T, hostNs, labNs, journals string) (*exec.Cmd, *strings.Builder) {
	t.Helper()
	return startScript(t, waitingScript, hostNs, labNs, journals)
}

// startScript runs the script src (which prints "ready" once its lab is
// built, then waits) inside hostNs with argv[1] labNs, and returns once
// it is ready.
func startScript(t *testing.T, src, hostNs, labNs, journals string) (*exec.Cmd, *strings.Builder) {
	t.Helper()
	script := filepath.Join(t.TempDir(), "wait.star")
	if err := os.WriteFile(script, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nsenter", "--net=/run/netns/"+hostNs, nkscriptBinary(t), "--journal-dir="+journals, script, labNs)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("script did not get ready: %q %v\nstderr: %s", line, err, stderr.String())
	}
	return cmd, &stderr
}

// labState lists what a run could leave: its namespace, links in the
// test's host namespace other than lo, and journals.
func labState(t *testing.T, hostNs, labNs, journals string) string {
	t.Helper()
	var s []string
	if _, err := os.Stat("/run/netns/" + labNs); err == nil {
		s = append(s, "netns "+labNs)
	}
	out, err := exec.Command("ip", "-n", hostNs, "-o", "link", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[1] != "lo:" {
			s = append(s, "link "+f[1])
		}
	}
	js, _ := filepath.Glob(filepath.Join(journals, "*"))
	for _, j := range js {
		s = append(s, "journal "+filepath.Base(j))
	}
	return strings.Join(s, ", ")
}

func TestSignalsCleanUp(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			hostNs := testHostNetns(t)
			labNs := hostNs + "-lab"
			journals := t.TempDir()
			cmd, stderr := startWaiting(t, hostNs, labNs, journals)
			if got := labState(t, hostNs, labNs, journals); !strings.Contains(got, "netns "+labNs) || !strings.Contains(got, "link sig0") {
				t.Fatalf("lab not built: %s", got)
			}
			// nsenter execs nkscript in place (no fork), so
			// the signal reaches nkscript directly.
			cmd.Process.Signal(sig)
			err := cmd.Wait()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Errorf("exit: %v, want exit status 1", err)
			}
			if !strings.Contains(stderr.String(), "interrupted; cleaning up") {
				t.Errorf("stderr: %s", stderr.String())
			}
			if got := labState(t, hostNs, labNs, journals); got != "" {
				t.Errorf("left behind after %v: %s", sig, got)
			}
		})
	}
}

// startWatchingSignals starts cmd, which has readyFDEnv=3 in its
// environment, and returns a function that says whether nkscript has
// reported, on that descriptor, that it catches SIGINT and SIGTERM.
func startWatchingSignals(t *testing.T, cmd *exec.Cmd) (caught func() bool) {
	t.Helper()
	return startWatching(t, cmd).handled
}

// watch follows a running nkscript through the test-only descriptors it
// writes: 3 (readyFDEnv: signals caught) and 4 (phasesFDEnv: one byte per
// phase change), whichever its environment names.
type watch struct {
	cmd   *exec.Cmd
	ready atomic.Bool
	phase atomic.Value // string
}

// phaseNames are the phases of a run by the byte phasesFDEnv writes.
var phaseNames = map[byte]string{'b': "building", 't': "traffic", 'd': "teardown"}

// startWatching starts cmd with the two descriptors and follows them.
func startWatching(t *testing.T, cmd *exec.Cmd) *watch {
	t.Helper()
	w := &watch{cmd: cmd}
	w.phase.Store("startup")
	readyR, readyW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	phasesR, phasesW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.ExtraFiles = []*os.File{readyW, phasesW}
	err = cmd.Start()
	readyW.Close()
	phasesW.Close()
	if err != nil {
		readyR.Close()
		phasesR.Close()
		t.Fatal(err)
	}
	go func() {
		defer readyR.Close()
		if n, _ := readyR.Read(make([]byte, 1)); n == 1 {
			w.ready.Store(true)
		}
	}()
	go func() {
		defer phasesR.Close()
		b := make([]byte, 1)
		for {
			if n, err := phasesR.Read(b); n == 0 || err != nil {
				return
			}
			if name, ok := phaseNames[b[0]]; ok {
				w.phase.Store(name)
			}
		}
	}()
	return w
}

// handled says whether nkscript reported catching SIGINT and SIGTERM.
func (w *watch) handled() bool { return w.ready.Load() }

// signal sends sig unless the process has exited already (it is then
// still unreaped: a signal to it would "succeed" and change nothing), and
// returns the phase the run was in when it was sent ("exited" if it was
// not), whether it was sent, and an error if sending failed otherwise.
func (w *watch) signal(sig syscall.Signal) (phase string, sent bool, err error) {
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, w.cmd.Process.Pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil); err != nil {
		return "", false, fmt.Errorf("waitid: %w", err)
	}
	if info.Signo == int32(syscall.SIGCHLD) {
		return "exited", false, nil
	}
	phase = w.phase.Load().(string)
	switch err := w.cmd.Process.Signal(sig); {
	case errors.Is(err, os.ErrProcessDone):
		return "exited", false, nil
	case err != nil:
		return phase, false, fmt.Errorf("send %v: %w", sig, err)
	}
	return phase, true, nil
}

// checkSignalExit says what is wrong with how a run that got sig (SIGINT
// or SIGTERM) ended, or "": once nkscript catches the signals (handled),
// it exits 0 (the run had finished) or 1; before that, the signal may
// also kill it.
func checkSignalExit(err error, sig syscall.Signal, handled bool) string {
	var exit *exec.ExitError
	switch {
	case err == nil:
		return ""
	case !errors.As(err, &exit):
		return fmt.Sprintf("wait: %v", err)
	case exit.ExitCode() == 1:
		return ""
	}
	ws, ok := exit.Sys().(syscall.WaitStatus)
	if !handled && ok && ws.Signaled() && ws.Signal() == sig {
		return ""
	}
	when := "before nkscript caught signals"
	if handled {
		when = "after nkscript caught signals"
	}
	return fmt.Sprintf("exit %v %s, want 0 or 1", err, when)
}

func TestSIGKILLThenCleanup(t *testing.T) {
	hostNs := testHostNetns(t)
	labNs := hostNs + "-lab"
	journals := t.TempDir()
	cmd, _ := startWaiting(t, hostNs, labNs, journals)
	cmd.Process.Kill()
	cmd.Wait()
	got := labState(t, hostNs, labNs, journals)
	if !strings.Contains(got, "netns "+labNs) || !strings.Contains(got, "link sig0") || !strings.Contains(got, "journal ") {
		t.Fatalf("after SIGKILL the lab should still be there, with its journal: %s", got)
	}
	out, err := exec.Command("nsenter", "--net=/run/netns/"+hostNs, nkscriptBinary(t), "--journal-dir="+journals, "cleanup").CombinedOutput()
	if err != nil {
		t.Fatalf("nkscript cleanup: %v\n%s", err, out)
	}
	for _, want := range []string{"deleted link sig0", "deleted netns " + labNs} {
		if !strings.Contains(string(out), want) {
			t.Errorf("cleanup output lacks %q:\n%s", want, out)
		}
	}
	if got := labState(t, hostNs, labNs, journals); got != "" {
		t.Errorf("left behind after cleanup: %s", got)
	}
	out, err = exec.Command(nkscriptBinary(t), "--journal-dir="+journals, "cleanup").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "nothing to clean up") {
		t.Errorf("second cleanup: %v\n%s", err, out)
	}
}

// movingScript moves a link from a lab namespace into the host, deletes
// a namespace and a link, then waits.
const movingScript = `
ns = netns(argv[1])
other = netns(argv[1] + "-o")
p = veth_pair("sig0", "sig1", peer_ns = ns)
q = veth_pair("mv0", "mv1", primary_ns = ns, peer_ns = other)
q.primary.move(host)
gone = netns(argv[1] + "-x")
veth_pair("gx0", "gx1", primary_ns = gone, peer_ns = ns)
gone.delete()
d = veth_pair("del0", "del1")
d.primary.delete()
print("ready")
exec(host, "sleep 60")
`

// TestSIGKILLAfterMoveAndDelete kills a run that moved a link out of a
// lab namespace into the host and deleted a namespace and a link: the
// journal followed the moved link, so cleanup removes it from the host,
// and the deleted objects are not undone a second time.
func TestSIGKILLAfterMoveAndDelete(t *testing.T) {
	hostNs := testHostNetns(t)
	labNs := hostNs + "-lab"
	journals := t.TempDir()
	cmd, _ := startScript(t, movingScript, hostNs, labNs, journals)
	got := labState(t, hostNs, labNs, journals)
	if !strings.Contains(got, "link mv0") || strings.Contains(got, "link del0") {
		t.Fatalf("before SIGKILL: %s, want mv0 moved into the host and del0 gone", got)
	}
	cmd.Process.Kill()
	cmd.Wait()
	out, err := exec.Command("nsenter", "--net=/run/netns/"+hostNs, nkscriptBinary(t), "--journal-dir="+journals, "cleanup").CombinedOutput()
	if err != nil {
		t.Fatalf("nkscript cleanup: %v\n%s", err, out)
	}
	if got := labState(t, hostNs, labNs, journals); got != "" {
		t.Errorf("left behind after cleanup: %s\n%s", got, out)
	}
	for _, ns := range []string{labNs + "-o", labNs + "-x"} {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			t.Errorf("netns %s left behind:\n%s", ns, out)
		}
	}
}

func TestExitCodes(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skipf(t, "needs root")
	}
	dir := t.TempDir()
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{write("ok.star", "print('hi')\n")}, 0},
		{[]string{write("err.star", "fail('no')\n")}, 1},
		{[]string{write("syntax.star", "x = (\n")}, 1},
		{[]string{"--bogus"}, 2},
		{[]string{filepath.Join(dir, "absent.star")}, 2},
		{[]string{"--help"}, 0},
		{[]string{"version"}, 0},
	} {
		cmd := exec.Command(nkscriptBinary(t), append([]string{"--journal-dir=" + dir + "/j"}, tc.args...)...)
		cmd.Run()
		if got := cmd.ProcessState.ExitCode(); got != tc.want {
			t.Errorf("nkscript %v: exit %d, want %d", tc.args, got, tc.want)
		}
	}
}

// TestSignalAtStart signals nkscript the moment it reports that it catches
// SIGINT and SIGTERM, before it has done anything else: it must exit 1
// (interrupted) or 0, never die by the signal, and leave nothing behind.
func TestSignalAtStart(t *testing.T) {
	hostNs := testHostNetns(t)
	labNs := hostNs + "-lab"
	journals := t.TempDir()
	script := filepath.Join(t.TempDir(), "wait.star")
	if err := os.WriteFile(script, []byte(waitingScript), 0o644); err != nil {
		t.Fatal(err)
	}
	for i, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGINT, syscall.SIGTERM} {
		cmd, _, stderr := runIn(t, hostNs, journals, []string{readyFDEnv + "=3"}, script, labNs)
		caught := startWatchingSignals(t, cmd)
		deadline := time.Now().Add(10 * time.Second)
		for !caught() && time.Now().Before(deadline) {
			time.Sleep(50 * time.Microsecond)
		}
		if !caught() {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("run %d: nkscript did not report catching signals within 10s\nstderr:\n%s", i, stderr)
		}
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if msg := checkSignalExit(cmd.Wait(), sig, true); msg != "" {
			t.Errorf("run %d, %v: %s\nstderr:\n%s", i, sig, msg, stderr)
		}
		if got := labState(t, hostNs, labNs, journals); got != "" {
			t.Fatalf("run %d: left behind after %v: %s", i, sig, got)
		}
	}
}
