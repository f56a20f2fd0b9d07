package main

import (
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/nkscript/nkscript/internal/testenv"
	"golang.org/x/sys/unix"
)

// TestWatcherSeesCleanup creates a namespace, drops it, and expects the
// tracepoint programs to see the kernel's cleanup_net work run to the end
// after that.
func TestWatcherSeesCleanup(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skipf(t, "needs root: loads BPF programs and creates a namespace")
	}
	w, err := newWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	queued0, runs0 := w.get(w.objs.Queued), w.get(w.objs.Runs)
	start := monotonic()

	// A namespace that lives only until this thread leaves it.
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		t.Fatal(err) // the thread stays locked and is discarded
	}
	runtime.UnlockOSThread()
	orig.Close()

	deadline := time.Now().Add(10 * time.Second)
	for w.get(w.objs.Runs) == runs0 || w.get(w.objs.Running) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("cleanup_net not seen: queued %d -> %d, runs %d -> %d",
				queued0, w.get(w.objs.Queued), runs0, w.get(w.objs.Runs))
		}
		time.Sleep(time.Millisecond)
	}
	// A queue_work is not required: other tests' namespaces may have
	// queued the work before this one joined the list.
	if end := uint64(w.get(w.objs.LastEndNs)); end <= start {
		t.Errorf("last_end_ns %d is not after the namespace was made (%d)", end, start)
	}
}
