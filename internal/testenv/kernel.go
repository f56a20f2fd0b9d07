package testenv

import (
	"os"
	"slices"
	"strings"
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

// NetkitKnob reports whether the kernel has a netkit knob, by what it
// reports back to iproute2 for a pair made with args (see
// kernelcheck.NetkitInfo): key of the link info data must read want.
// Distribution kernels carry knobs before the release that brought them
// (Debian's 6.12 has scrub, which came with 6.13).
func NetkitKnob(tb testing.TB, key, want string, args ...string) bool {
	tb.Helper()
	if !Netkit(tb) {
		return false
	}
	got, err := kernelcheck.NetkitInfo(key, args...)
	if err != nil {
		tb.Fatal(err)
	}
	if got != want && slices.Contains(strings.Split(os.Getenv(WantNetkitKnobsEnv), ","), key) {
		tb.Fatalf("kernel %s: netkit %s reads %q, want %q: %s lists %s, so this kernel must have it",
			KernelRelease(), key, got, want, WantNetkitKnobsEnv, key)
	}
	return got == want
}

// WantNetkitKnobsEnv names the environment variable that lists, comma
// separated, the netkit knobs (info data keys: scrub, headroom) the
// running kernel must have: vmtest sets it in the guests of kernels that
// have them, so that NetkitKnob fails there rather than let a test take
// its branch for kernels without.
const WantNetkitKnobsEnv = "NKSCRIPT_WANT_NETKIT_KNOBS"
