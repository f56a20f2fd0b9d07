package vmtest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nkscript/nkscript/vm"
)

// TestLegacySuitesInGuest boots Debian bookworm's own 6.1 kernel — BPF
// and BTF, but neither tcx (6.6) nor netkit (6.7) — and runs there the
// labs that fall back: every CNF lab of scripts/ on veth with legacy tc
// (clsact + cls_bpf), every CLI test of testdata/script, and the legacy
// tc and attach-choice tests with tc's own view. Output must equal
// the golden files of veth runs: NAME.veth.golden where a lab names the
// kind of pair it made, NAME.golden (shared with the netkit runs)
// elsewhere.
func TestLegacySuitesInGuest(t *testing.T) {
	ctx, kernel := pinnedGuest(t, vm.LegacyKernel)
	repo, dir := workDirs(t)
	guest := build(t, dir, "guest", "build", "./vmtest/guest")
	datapathTest := build(t, dir, "datapath.test", "test", "-c", "./datapath")
	cliTest := build(t, dir, "nkscript.test", "test", "-c", "./cmd/nkscript")
	nkscript := build(t, dir, "nkscript", "build", "./cmd/nkscript")

	var labs []string
	for _, s := range []string{"veth_tutorial", "cnf_chain", "policy_routing", "sidecar", "cnf_pipeline", "mirror", "load_balancer", "overlay", "l2", "debugging"} {
		labs = append(labs, "scripts/"+s+".star")
	}
	script := guestScript(repo, fmt.Sprintf(`
run datapath %[2]s -test.run 'TestLegacyTC|TestAttach|TestHaveTCX|TestNetkitUnsupported|TestVxlan|TestVlan' -test.count=1 -test.v
run cmd/nkscript %[3]s -test.run 'TestScripts' -test.count=1 -test.v
run . %[4]s test --vm=never %[5]s
echo "=== guest: netkit on 6.1"
%[4]s --vm=never %[1]s/scripts/tutorial.star; echo "exit $?"
`, repo, datapathTest, cliTest, nkscript, strings.Join(labs, " ")))
	var stdout, stderr strings.Builder
	code, err := vm.Run(ctx, vm.Options{
		Kernel: kernel.Path,
		Binary: guest,
		Args:   []string{"/bin/sh", "-c", script},
		Dir:    repo,
		Env:    guestEnv(nkscript),
		Stdout: &stdout,
		Stderr: &stderr,
		Memory: "2G",
	})
	out := stdout.String() + stderr.String()
	if err != nil || code != 0 {
		t.Fatalf("the legacy suites failed in the guest (kernel %s, exit %d, %v):\n%s", kernel.Version, code, err, out)
	}
	for _, want := range []string{
		"--- PASS: TestLegacyTC ", "--- PASS: TestScripts/attach ", "--- PASS: TestScripts/tutorials ",
		fmt.Sprintf("%d passed, 0 failed", len(labs)),
		"has no tcx (Linux ≥ 6.6): attaching ingress/egress programs as legacy tc filters",
		"tutorial.star:16:17: netkit_pair: the running kernel " + kernel.Version + " has no netkit devices",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("guest output lacks %q", want)
		}
	}
	if strings.Contains(out, "--- SKIP") {
		t.Errorf("tests skipped in the 6.1 guest")
	}
	if t.Failed() {
		t.Logf("guest output:\n%s", out)
	}
}
