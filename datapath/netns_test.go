package datapath

import (
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
)

// threadNs returns the namespace of the calling goroutine's thread.
func threadNs(t *testing.T) NsID {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	id, err := statNsPath("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestNetnsThreads runs functions inside a namespace with Do and doQuick:
// each runs in the namespace, a panic reaches the caller, and the
// caller's thread is back in the host namespace after.
func TestNetnsThreads(t *testing.T) {
	ns := testNetns(t)
	host := threadNs(t)
	for name, do := range map[string]func(func() error) error{"Do": ns.Do, "doQuick": ns.doQuick} {
		var inside NsID
		if err := do(func() (err error) { inside, err = statNsPath("/proc/thread-self/ns/net"); return }); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if inside != ns.ID() {
			t.Errorf("%s: fn ran in %v, want %v", name, inside, ns.ID())
		}
		func() {
			defer func() {
				if r := recover(); r != "boom" {
					t.Errorf("%s: recovered %v, want the panic of fn", name, r)
				}
			}()
			do(func() error { panic("boom") })
		}()
		if got := threadNs(t); got != host {
			t.Errorf("%s: the caller's thread is in %v after, want the host's %v", name, got, host)
		}
	}
}

// TestHostNetnsLazy: the host namespace is opened at its first use, not
// when the package loads, and still right when that first use is the
// creation of another namespace. It runs in a new process, so that the
// first use is this test's.
func TestHostNetnsLazy(t *testing.T) {
	requireRoot(t)
	if os.Getenv("NKSCRIPT_TEST_HOST_NETNS_LAZY") != "1" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHostNetnsLazy$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "NKSCRIPT_TEST_HOST_NETNS_LAZY=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestHostNetnsLazy") {
			t.Fatalf("%v\n%s", err, out)
		}
		return
	}
	start := threadNs(t)
	ns, err := NewAnonNetns()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if err := ns.doQuick(func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	host, err := HostNetns()
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	if host.ID() != start || ns.ID() == start {
		t.Fatalf("host netns %v, anonymous %v; the process started in %v", host.ID(), ns.ID(), start)
	}
}
