package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/nkscript/nkscript/internal/testenv"
	"github.com/nkscript/nkscript/internal/testutil"
)

// TestTestInterruptCleansUp interrupts `nkscript test` in the middle of a
// case: the case fails, its lab is removed, the remaining tests do not
// run, and the summary is printed.
func TestTestInterruptCleansUp(t *testing.T) {
	if _, err := exec.LookPath("nsenter"); err != nil {
		testenv.Skipf(t, "needs nsenter")
	}
	hostNs := testHostNetns(t)
	labNs := hostNs + "-lab"
	journals := t.TempDir()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "ready")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	testutil.WriteFiles(t, dir, map[string]string{
		"a.star": fmt.Sprintf(`
def test_wait():
    ns = netns(%q)
    p = veth_pair("sig0", "sig1", peer_ns = ns)
    p.primary.addr("10.78.0.1/24").up()
    exec(host, "echo ready > %s; exec sleep 60")

def test_later():
    print("not reached")
`, labNs, fifo),
		"a.golden": "",
		"b.star":   "print('not reached')\n",
		"b.golden": "not reached\n",
	})
	cmd := exec.Command("nsenter", "--net=/run/netns/"+hostNs, nkscriptBinary(t), "--journal-dir="+journals, "test", dir)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	ready := make(chan error, 1)
	go func() {
		f, err := os.Open(fifo)
		if err == nil {
			_, err = f.Read(make([]byte, 16))
			f.Close()
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case err := <-exited:
		// Unblock the reader.
		if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			f.Close()
		}
		t.Fatalf("nkscript test exited before the case got ready: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	if got := labState(t, hostNs, labNs, journals); !strings.Contains(got, "netns "+labNs) || !strings.Contains(got, "link sig0") {
		t.Fatalf("lab not built: %s", got)
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := <-exited
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("exit: %v, want exit status 1", err)
	}
	if want := "0 passed, 1 failed\n"; stdout.String() != want {
		t.Errorf("stdout %q, want %q", stdout.String(), want)
	}
	se := stderr.String()
	for _, want := range []string{
		"FAIL " + filepath.Join(dir, "a.star") + ":test_wait\n",
		filepath.Join(dir, "a.star") + ":test_wait: interrupted; cleaning up\n",
		"nkscript test: interrupted\n",
	} {
		if !strings.Contains(se, want) {
			t.Errorf("stderr lacks %q:\n%s", want, se)
		}
	}
	if strings.Contains(se, "test_later") || strings.Contains(se, "b.star") {
		t.Errorf("tests ran after the interrupt:\n%s", se)
	}
	if got := labState(t, hostNs, labNs, journals); got != "" {
		t.Errorf("left behind: %s", got)
	}
}
