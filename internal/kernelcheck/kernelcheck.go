// Package kernelcheck tells what the running kernel has without asking
// nkscript's own probes (datapath.HaveNetkit and the like): from the
// kernel release and from iproute2. Tests and `nkscript test` use it to
// decide which result to expect, so a wrong probe cannot choose the
// expectation it then meets.
package kernelcheck

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Release is the running kernel's release (uname -r).
func Release() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// AtLeast reports whether the running kernel's release is at least
// major.minor.
func AtLeast(major, minor int) (bool, error) {
	rel := Release()
	var maj, min int
	if _, err := fmt.Sscanf(rel, "%d.%d", &maj, &min); err != nil {
		return false, fmt.Errorf("parse kernel release %q: %v", rel, err)
	}
	return maj > major || (maj == major && min >= minor), nil
}

var netkit struct {
	once sync.Once
	ok   bool
	err  error
}

// Netkit reports whether the running kernel makes netkit devices: Linux
// ≥ 6.7 and `ip link add type netkit` succeeding in a network namespace
// of its own (unshare --net), which vanishes with the command. An error
// says the check could not be made (no privileges, no ip or unshare).
func Netkit() (bool, error) {
	netkit.once.Do(func() { netkit.ok, netkit.err = checkNetkit() })
	return netkit.ok, netkit.err
}

func checkNetkit() (bool, error) {
	ok, err := AtLeast(6, 7)
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
