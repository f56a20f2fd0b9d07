package vm

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var guestBin struct {
	once sync.Once
	path string
	err  error
	dir  string
}

// testGuest builds vm/testdata/guest as a static binary, once per test
// binary, and returns its path.
func testGuest(t testing.TB) string {
	t.Helper()
	guestBin.once.Do(func() {
		guestBin.dir, guestBin.err = os.MkdirTemp("", "nkscript-vm-test-")
		if guestBin.err != nil {
			return
		}
		guestBin.path = filepath.Join(guestBin.dir, "guest")
		cmd := exec.Command("go", "build", "-o", guestBin.path, "./testdata/guest")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			guestBin.err = errors.New(string(out))
		}
	})
	if guestBin.err != nil {
		t.Fatalf("build guest: %v", guestBin.err)
	}
	return guestBin.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if guestBin.dir != "" {
		os.RemoveAll(guestBin.dir)
	}
	os.Exit(code)
}

// needVM skips the test when the host cannot boot the guest, and returns
// the default kernel, fetching it if needed.
func needVM(t testing.TB) KernelInfo {
	t.Helper()
	if err := HostCanRunVM(); err != nil {
		t.Skipf("cannot run VMs: %v", err)
	}
	if os.Getuid() != 0 {
		t.Skip("needs root (the guest shares the host's root filesystem)")
	}
	ki, err := EnsureKernel(context.Background(), testWriter{t})
	if err != nil {
		t.Skipf("default kernel not available: %v", err)
	}
	return ki
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

type result struct {
	code           int
	err            error
	stdout, stderr string
	timing         Timing
}

func runGuest(t testing.TB, ctx context.Context, o Options, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	o.Binary = testGuest(t)
	o.Args = args
	o.Stdout = &stdout
	o.Stderr = &stderr
	var timing Timing
	o.Timing = &timing
	code, err := Run(ctx, o)
	return result{code, err, stdout.String(), stderr.String(), timing}
}

func TestRunOutputAndExitCodes(t *testing.T) {
	needVM(t)
	for _, tc := range []struct {
		out, err string
		code     int
	}{
		{"hello stdout\n", "", 0},
		{"", "only stderr\n", 1},
		{"line1\nline2 no newline", "e1\n\te2 ünïcode", 3},
	} {
		t.Run(strconv.Itoa(tc.code), func(t *testing.T) {
			r := runGuest(t, context.Background(), Options{}, "write", tc.out, tc.err, strconv.Itoa(tc.code))
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.code != tc.code {
				t.Errorf("exit code %d, want %d", r.code, tc.code)
			}
			if r.stdout != tc.out {
				t.Errorf("stdout %q, want %q", r.stdout, tc.out)
			}
			if r.stderr != tc.err {
				t.Errorf("stderr %q, want %q", r.stderr, tc.err)
			}
			t.Logf("timing: %+v", r.timing)
		})
	}
}

var _ = time.Second
