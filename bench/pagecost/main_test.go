package main

import (
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// TestTouchCostFaults checks that what touchCost times is page faults:
// the thread's minor faults must rise by about one per page touched, or
// the figure make bench prints would not be the cost of a first touch.
func TestTouchCostFaults(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const size = 8 << 20
	pages := size / os.Getpagesize()
	var before, after unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &before); err != nil {
		t.Fatal(err)
	}
	ns, err := touchCost(size)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &after); err != nil {
		t.Fatal(err)
	}
	faults := after.Minflt - before.Minflt
	if faults < int64(pages)*9/10 {
		t.Errorf("touching %d pages took %d minor faults, want about one per page", pages, faults)
	}
	if !(ns > 0) {
		t.Errorf("cost per page %v ns, want > 0", ns)
	}
	t.Logf("%d pages, %d faults, %.0f ns per page", pages, faults, ns)
}
