package testenv

import (
	"testing"

	"github.com/nkscript/nkscript/internal/kernelcheck"
)

// KernelRelease is the running kernel's release (uname -r).
func KernelRelease() string { return kernelcheck.Release() }

// KernelAtLeast reports whether the running kernel's release is at least
// major.minor.
func KernelAtLeast(major, minor int) (bool, error) { return kernelcheck.AtLeast(major, minor) }

// HaveNetkit reports whether the running kernel makes netkit devices, as
// kernelcheck.Netkit decides it.
func HaveNetkit() (bool, error) { return kernelcheck.Netkit() }

// TCX reports whether the running kernel has tcx: Linux ≥ 6.6.
func TCX(tb testing.TB) bool {
	tb.Helper()
	ok, err := KernelAtLeast(6, 6)
	if err != nil {
		tb.Fatal(err)
	}
	return ok
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
