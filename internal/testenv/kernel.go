package testenv

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// KernelRelease is the running kernel's release (uname -r).
func KernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// KernelAtLeast reports whether the running kernel's release is at least
// major.minor.
func KernelAtLeast(major, minor int) (bool, error) {
	rel := KernelRelease()
	var maj, min int
	if _, err := fmt.Sscanf(rel, "%d.%d", &maj, &min); err != nil {
		return false, fmt.Errorf("parse kernel release %q: %v", rel, err)
	}
	return maj > major || (maj == major && min >= minor), nil
}

// TCX reports whether the running kernel has tcx: Linux ≥ 6.6.
func TCX(tb testing.TB) bool {
	tb.Helper()
	ok, err := KernelAtLeast(6, 6)
	if err != nil {
		tb.Fatal(err)
	}
	return ok
}

var netkit struct {
	once sync.Once
	ok   bool
	err  error
}

// HaveNetkit reports whether the running kernel makes netkit devices:
// Linux ≥ 6.7 and `ip link add type netkit` succeeding in a network
// namespace of its own (unshare -n), which vanishes with the command. An
// error says the check could not be made (no root, no ip or unshare).
func HaveNetkit() (bool, error) {
	netkit.once.Do(func() { netkit.ok, netkit.err = checkNetkit() })
	return netkit.ok, netkit.err
}

func checkNetkit() (bool, error) {
	ok, err := KernelAtLeast(6, 7)
	if err != nil || !ok {
		return false, err
	}
	for _, tool := range []string{"unshare", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			return false, fmt.Errorf("check for netkit: %s is not installed", tool)
		}
	}
	out, err := exec.Command("unshare", "--net", "ip", "link", "add", "nkcheck0", "type", "netkit").CombinedOutput()
	if err == nil {
		return true, nil
	}
	var ee *exec.ExitError
	msg := strings.TrimSpace(string(out))
	if errors.As(err, &ee) && (strings.Contains(msg, "Unknown device type") || strings.Contains(msg, "not supported")) {
		return false, nil
	}
	return false, fmt.Errorf("check for netkit: unshare --net ip link add type netkit: %v: %s", err, msg)
}

// Netkit is HaveNetkit for a test: it fails tb when the check cannot be
// made.
func Netkit(tb testing.TB) bool {
	tb.Helper()
	ok, err := HaveNetkit()
	if err != nil {
		tb.Fatal(err)
	}
	return ok
}

// NetkitAtLeast reports whether the kernel has netkit and is at least
// major.minor, for netkit knobs that later kernels added (scrub 6.13,
// headroom and tailroom 6.14).
func NetkitAtLeast(tb testing.TB, major, minor int) bool {
	tb.Helper()
	ok, err := KernelAtLeast(major, minor)
	if err != nil {
		tb.Fatal(err)
	}
	return ok && Netkit(tb)
}
