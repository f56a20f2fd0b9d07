package vmtest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nkscript/nkscript/internal/testenv"
	"github.com/nkscript/nkscript/vm"
)

// TestNewestSuitesInGuest boots the newest pinned kernel (Linux 7.3 from
// trixie-backports), whose netkit has the knobs the 6.12 guest lacks, and
// runs there the netkit knob tests — which must take their positive
// branch: testenv.WantNetkitKnobsEnv makes a missing knob a failure —
// and every lab of scripts/ against its netkit golden file.
func TestNewestSuitesInGuest(t *testing.T) {
	ctx, kernel := pinnedGuest(t, vm.NewestKernel)
	repo, dir := workDirs(t)
	guest := build(t, dir, "guest", "build", "./vmtest/guest")
	datapathTest := build(t, dir, "datapath.test", "test", "-c", "./datapath")
	nkscript := build(t, dir, "nkscript", "build", "./cmd/nkscript")
	script := guestScript(repo, fmt.Sprintf(`
run datapath %[1]s -test.run 'TestNetkitKnobs|TestNetkitRoom|TestNetkitDryRunCommand' -test.count=1 -test.v
run . %[2]s test --vm=never --no-skip scripts
`, datapathTest, nkscript))
	var stdout, stderr strings.Builder
	code, err := vm.Run(ctx, vm.Options{
		Kernel: kernel.Path,
		Binary: guest,
		Args:   []string{"/bin/sh", "-c", script},
		Dir:    repo,
		Env:    guestEnv(nkscript, testenv.WantNetkitKnobsEnv+"=scrub,headroom"),
		Stdout: &stdout,
		Stderr: &stderr,
		Memory: "2G",
	})
	out := stdout.String() + stderr.String()
	if err != nil || code != 0 {
		t.Fatalf("the suites failed in the guest (kernel %s, exit %d, %v):\n%s", kernel.Version, code, err, out)
	}
	for _, want := range []string{
		"--- PASS: TestNetkitKnobs ", "--- PASS: TestNetkitRoom ", "--- PASS: TestNetkitDryRunCommand ",
		" 0 failed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("guest output lacks %q", want)
		}
	}
	if strings.Contains(out, "--- SKIP") || strings.Contains(out, "skipped") {
		t.Errorf("tests skipped in the %s guest", kernel.Version)
	}
	if t.Failed() {
		t.Logf("guest output:\n%s", out)
	}
}
