package datapath

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// KernelRelease is the running kernel's release string, e.g. "6.18.1".
func KernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

var netkitFeature = &feature{probe: probeNetkit}

// HaveNetkit reports whether the running kernel can create netkit devices
// (CONFIG_NETKIT, Linux 6.7 or later). It returns nil or an error wrapping
// ErrNotSupported that says what to do. The probe creates a netkit pair in
// a throwaway namespace; a conclusive result is kept for the life of the
// process, other errors (such as missing privileges) are not.
func HaveNetkit() error { return netkitFeature.result() }

func probeNetkit() error {
	ns, err := NewAnonNetns()
	if err != nil {
		return fmt.Errorf("probe netkit: %w", err)
	}
	defer ns.Close()
	nk := &netlink.Netkit{LinkAttrs: netlink.LinkAttrs{Name: "nkprobe0"}, Mode: netlink.NETKIT_MODE_L3}
	nk.SetPeerAttrs(&netlink.LinkAttrs{Name: "nkprobe1"})
	err = ns.Handle().LinkAdd(nk)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EINVAL), strings.Contains(err.Error(), "not supported"):
		return &kindError{fmt.Sprintf("the running kernel %s has no netkit devices (it needs CONFIG_NETKIT, Linux 6.7 or later)", KernelRelease()), ErrNoNetkit}
	default:
		return fmt.Errorf("probe netkit: %w", err)
	}
}

// releaseAtLeast reports whether the kernel release rel ("7.3.4+deb13-amd64")
// is at least major.minor; false if rel does not parse.
func releaseAtLeast(rel string, major, minor int) bool {
	var a, b int
	if n, _ := fmt.Sscanf(rel, "%d.%d", &a, &b); n != 2 {
		return false
	}
	return a > major || a == major && b >= minor
}
