// Package testenv is what nkscript's tests know about the machine they run
// on, decided independently of the product: the skip policy (under CI a
// skip is a failure unless its reason is on the allow list, and every
// skip is listed at the end of the package's run) and the running
// kernel's features, checked with the kernel version and iproute2 rather
// than with datapath's own probes.
package testenv

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Reason is why a test may be skipped under CI: each one names where the
// test, or the branch it skips, runs instead, so nothing is lost.
type Reason string

// The allow list: the only reasons a test may be skipped under CI.
const (
	// NoNetkit: the netkit tests run in the microVM suites of vmtest.
	NoNetkit Reason = "the running kernel has no netkit; the microVM suites (vmtest) run it"
	// HasNetkit: the refusal on kernels without netkit runs on the host
	// and in the 6.1 microVM.
	HasNetkit Reason = "it checks the refusal on kernels without netkit; the host without netkit and the 6.1 microVM run it"
	// HasTCX: the legacy tc path runs in the 6.1 microVM.
	HasTCX Reason = "the legacy tc path runs on kernels before 6.6 (the 6.1 microVM)"
	// NoTCX: the tcx tests run in the 6.12 microVM suite.
	NoTCX Reason = "the running kernel has no tcx (Linux < 6.6); the 6.12 microVM suite (vmtest) runs it"
	// NoFexit: the drop monitor's fexit attribution runs in the 6.12
	// microVM suite.
	NoFexit Reason = "the running kernel has no fexit trampolines for BPF programs; the 6.12 microVM suite (vmtest) runs it"
	// KernelFetch: tests that download a kernel run in `make reliability`.
	KernelFetch Reason = "it downloads a kernel (NKSCRIPT_TEST_KERNEL_FETCH=1); make reliability runs it"
	// MachineWide: tests that change the whole machine (the initial
	// namespace's sysctls, which new namespaces inherit) run in the 6.12
	// microVM suite, where nothing else runs meanwhile.
	MachineWide Reason = "it changes a setting of the whole machine that other tests' namespaces would inherit; the 6.12 microVM suite (vmtest) runs it"
)

// Allowed is the allow list, in the order the summary explains it.
var Allowed = []Reason{NoNetkit, HasNetkit, HasTCX, NoTCX, NoFexit, KernelFetch, MachineWide}

// CI reports whether the tests run under CI: NKSCRIPT_REQUIRE_VM=1 (set
// by `make test`) or CI=true.
func CI() bool {
	return os.Getenv("NKSCRIPT_REQUIRE_VM") == "1" || os.Getenv("CI") == "true"
}

// skipped is one skip, for the summary.
type skipped struct {
	test, reason string
	allowed      bool
}

var skips struct {
	sync.Mutex
	list []skipped
}

func record(tb testing.TB, reason string, allowed bool) {
	skips.Lock()
	defer skips.Unlock()
	skips.list = append(skips.list, skipped{tb.Name(), reason, allowed})
}

// SkipBecause skips tb for a reason on the allow list; detail says what
// was found (the kernel release, the probe's answer). The skip is listed
// at the end of the package's run (Main).
func SkipBecause(tb testing.TB, r Reason, detail string) {
	tb.Helper()
	if !slices.Contains(Allowed, r) {
		tb.Fatalf("testenv.SkipBecause: %q is not on the allow list", r)
		return
	}
	msg := string(r)
	if detail != "" {
		msg += " (" + detail + ")"
	}
	record(tb, msg, true)
	tb.Skip(msg)
}

// Skipf skips tb, saying why; the reason is not on the allow list, so
// under CI it fails tb instead.
func Skipf(tb testing.TB, format string, args ...any) {
	tb.Helper()
	msg := fmt.Sprintf(format, args...)
	record(tb, msg, false)
	if CI() {
		tb.Fatalf("skipped under CI: %s (not on the allow list of internal/testenv; CI must run every test)", msg)
		return
	}
	tb.Skip(msg)
}

// Runner is what Main runs: a *testing.M.
type Runner interface{ Run() int }

// Main returns m whose Run also prints, after the tests, every skip with
// its reason: TestMain calls os.Exit(testenv.Main(m).Run()).
func Main(m Runner) Runner { return summary{m, os.Stdout} }

type summary struct {
	m   Runner
	out io.Writer
}

func (s summary) Run() int {
	code := s.m.Run()
	writeSummary(s.out)
	return code
}

func writeSummary(w io.Writer) {
	skips.Lock()
	defer skips.Unlock()
	if len(skips.list) == 0 {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "skipped tests (%d):\n", len(skips.list))
	for _, s := range skips.list {
		verdict := "allowed"
		if !s.allowed {
			verdict = "NOT on the allow list"
			if CI() {
				verdict += ": failed"
			}
		}
		fmt.Fprintf(&b, "  %s [%s]: %s\n", s.test, verdict, s.reason)
	}
	fmt.Fprint(w, b.String())
}
