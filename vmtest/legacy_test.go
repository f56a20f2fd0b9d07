package vmtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nkscript/nkscript/internal/testenv"
	"github.com/nkscript/nkscript/vm"
)

// TestLegacySuitesInGuest boots Debian bookworm's own 6.1 kernel — BPF
// and BTF, but neither tcx (6.6) nor netkit (6.7) — and runs there the
// labs that fall back: every CNF lab of scripts/ on veth with legacy tc
// (clsact + cls_bpf), the attach/topology/service CLI tests, and the
// legacy tc and attach-choice tests with tc's own view. Output must equal
// the golden files of veth runs: NAME.veth.golden where a lab names the
// kind of pair it made, NAME.golden (shared with the netkit runs)
// elsewhere.
func TestLegacySuitesInGuest(t *testing.T) {
	requireVM(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	kernel, err := vm.EnsureKernelSpec(ctx, vm.LegacyKernel, nil)
	if err != nil {
		testenv.Skipf(t, "the 6.1 kernel is not available: %v; run `make kernel`", err)
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("/var/tmp", "nkscript-vmtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	guest := build(t, dir, "guest", "build", "./vmtest/guest")
	datapathTest := build(t, dir, "datapath.test", "test", "-c", "./datapath")
	cliTest := build(t, dir, "nkscript.test", "test", "-c", "./cmd/nkscript")
	nkscript := build(t, dir, "nkscript", "build", "./cmd/nkscript")

	var labs []string
	for _, s := range []string{"veth_tutorial", "cnf_chain", "policy_routing", "sidecar", "cnf_pipeline", "mirror", "load_balancer", "overlay"} {
		labs = append(labs, "scripts/"+s+".star")
	}
	script := fmt.Sprintf(`set -u
status=0
run() { dir=$1; shift; echo "=== guest: $dir $*"; (cd %[1]s/$dir && "$@") || status=1; }
run datapath %[2]s -test.run 'TestLegacyTC|TestAttach|TestHaveTCX|TestNetkitUnsupported|TestVxlan|TestVlan' -test.count=1 -test.v
run cmd/nkscript %[3]s -test.run 'TestScripts/(attach|attach_choices|topology|services|drop_flow|tutorials)$' -test.count=1 -test.v
run . %[4]s test --vm=never %[5]s
echo "=== guest: netkit on 6.1"
%[4]s --vm=never %[1]s/scripts/tutorial.star; echo "exit $?"
exit $status
`, repo, datapathTest, cliTest, nkscript, strings.Join(labs, " "))
	var stdout, stderr strings.Builder
	code, err := vm.Run(ctx, vm.Options{
		Kernel: kernel.Path,
		Binary: guest,
		Args:   []string{"/bin/sh", "-c", script},
		Dir:    repo,
		Env: []string{
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"HOME=/root", "TMPDIR=/tmp", "NKSCRIPT_BIN=" + nkscript,
		},
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
