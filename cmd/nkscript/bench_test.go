package main

import (
	"os"
	"os/exec"
	"sort"
	"testing"
	"time"

	"github.com/nkscript/nkscript/internal/testenv"
	"github.com/nkscript/nkscript/vm"
)

// benchRuns runs the built nkscript with args b.N times and reports the
// median, min and max wall time of the whole process.
func benchRuns(b *testing.B, args ...string) {
	bin := nkscriptBinary(b)
	var d []time.Duration
	for b.Loop() {
		start := time.Now()
		cmd := exec.Command(bin, args...)
		cmd.Dir = "../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("nkscript %v: %v\n%s", args, err, out)
		}
		d = append(d, time.Since(start))
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	b.ReportMetric(float64(d[len(d)/2])/1e6, "ms-median")
	b.ReportMetric(float64(d[0])/1e6, "ms-min")
	b.ReportMetric(float64(d[len(d)-1])/1e6, "ms-max")
}

func skipUnlessRoot(b *testing.B) {
	if os.Geteuid() != 0 {
		testenv.Skipf(b, "needs root")
	}
}

// BenchmarkTrivialHost is the baseline: a script that prints one line,
// on the host.
func BenchmarkTrivialHost(b *testing.B) {
	skipUnlessRoot(b)
	benchRuns(b, "--vm=never", "testdata/bench/trivial.star")
}

// BenchmarkTrivialVM is the same script in the microVM: the cost of
// booting the guest and powering it off.
func BenchmarkTrivialVM(b *testing.B) {
	skipUnlessRoot(b)
	if err := vm.HostCanRunVM(); err != nil {
		testenv.Skipf(b, "%v", err)
	}
	benchRuns(b, "--vm=always", "testdata/bench/trivial.star")
}

// BenchmarkVethTutorialHost is the veth tutorial on the host.
func BenchmarkVethTutorialHost(b *testing.B) {
	skipUnlessRoot(b)
	benchRuns(b, "--vm=never", "scripts/veth_tutorial.star")
}

// BenchmarkTutorialVM is the netkit tutorial in the microVM (goal: under
// 4 s whole run under TCG).
func BenchmarkTutorialVM(b *testing.B) {
	skipUnlessRoot(b)
	if err := vm.HostCanRunVM(); err != nil {
		testenv.Skipf(b, "%v", err)
	}
	benchRuns(b, "--vm=always", "scripts/tutorial.star")
}
