package datapath

import (
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"testing"

	"github.com/nkscript/nkscript/internal/testenv"
)

// TestLegacyTC runs only on kernels without tcx (the 6.1 microVM guest):
// "ingress" attaches through clsact + cls_bpf, in the order asked for;
// tc itself lists the filters; traffic meets them; detaching removes our
// filters, and the clsact qdisc we added once no filter is left on the
// device and the filter that added it is detached last (a lab's teardown
// order).
func TestLegacyTC(t *testing.T) {
	requireBPF(t)
	if testenv.TCX(t) {
		testenv.SkipBecause(t, testenv.HasTCX, "kernel "+KernelRelease())
	}
	if err := HaveTCX(); !errors.Is(err, ErrNotSupported) {
		t.Fatalf("kernel %s, before 6.6: HaveTCX: %v, want ErrNotSupported", KernelRelease(), err)
	}
	lab, p, ns := vethLab(t, LabConfig{}, "ltc", 71)
	host := p.Primary.ns
	pass, err := lab.LoadProgram(ProgramSpec{Name: "pass"})
	if err != nil {
		t.Fatal(err)
	}
	drop, err := lab.LoadProgram(ProgramSpec{Name: "drop_port", Consts: map[string]int64{"port": 7100}})
	if err != nil {
		t.Fatal(err)
	}
	ap, err := lab.Attach(pass, p.Peer, HookIngress, AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ad, err := lab.Attach(drop, p.Peer, HookIngress, AttachOptions{First: true})
	if err != nil {
		t.Fatal(err)
	}
	a3, err := lab.Attach(pass, p.Peer, HookIngress, AttachOptions{AfterAttachment: ad})
	if err != nil {
		t.Fatal(err)
	}
	chain, err := lab.Chain(p.Peer, HookIngress)
	if err != nil || !slices.Equal(chain, []string{"drop_port", "pass", "pass"}) {
		t.Errorf("chain = %v, %v; want [drop_port pass pass]", chain, err)
	}
	// tc's own view, by priority.
	if names := tcFilterNames(t, ns, "ltc1", "ingress"); !slices.Equal(names, []string{"drop_port", "pass", "pass"}) {
		t.Errorf("tc lists %v, want [drop_port pass pass]", names)
	}

	// Port 7100 is dropped by the first filter, other traffic passes all.
	probePorts(t, lab, host, ns, "10.71.0.2", map[int]bool{7100: false, 7101: true})
	if s, _ := drop.Stats(); s.Dropped == 0 {
		t.Errorf("drop_port dropped nothing: %+v", s)
	}

	for _, a := range []*Attachment{ad, ap} {
		if err := a.Detach(); err != nil {
			t.Fatal(err)
		}
	}
	chain, _ = lab.Chain(p.Peer, HookIngress)
	if !slices.Equal(chain, []string{"pass"}) {
		t.Errorf("after detaching two: chain %v, want [pass]", chain)
	}
	// The filter left needs the clsact qdisc: it stays until the last of
	// our filters goes, then goes with it.
	if q := tcQdiscs(t, ns, "ltc1"); !slices.Contains(q, "clsact") {
		t.Errorf("with a filter left: qdiscs %v, want clsact among them", q)
	}
	if err := a3.Detach(); err != nil {
		t.Fatal(err)
	}
	if chain, err := lab.Chain(p.Peer, HookIngress); err != nil || len(chain) != 0 {
		t.Errorf("after detaching all: chain %v, %v; want none", chain, err)
	}
	// The filter whose attach added the qdisc went first: the last one
	// removes it all the same.
	if q := tcQdiscs(t, ns, "ltc1"); slices.Contains(q, "clsact") {
		t.Errorf("after detaching all: qdiscs %v, want the clsact qdisc nkscript added gone", q)
	}

	// On ltc0, the filter that added the qdisc goes last, as a lab's
	// teardown (in reverse order) has it: the qdisc stays while a filter
	// is left on either hook, and goes with the last one.
	var first, second *Attachment
	if first, err = lab.Attach(pass, p.Primary, HookIngress, AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	if second, err = lab.Attach(pass, p.Primary, HookEgress, AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := second.Detach(); err != nil {
		t.Fatal(err)
	}
	if q := tcQdiscs(t, host, "ltc0"); !slices.Contains(q, "clsact") {
		t.Errorf("with an ingress filter left: qdiscs %v, want clsact among them", q)
	}
	if err := first.Detach(); err != nil {
		t.Fatal(err)
	}
	if q := tcQdiscs(t, host, "ltc0"); slices.Contains(q, "clsact") {
		t.Errorf("after detaching both: qdiscs %v, want the clsact qdisc nkscript added gone", q)
	}
}

// tcQdiscs lists the kinds of the qdiscs on dev in ns, as tc shows them.
func tcQdiscs(t *testing.T, ns *Netns, dev string) []string {
	t.Helper()
	// Started from a thread inside ns, tc inherits the namespace, named
	// or not.
	var out []byte
	err := ns.Do(func() error {
		var err error
		out, err = exec.Command("tc", "-j", "qdisc", "show", "dev", dev).Output()
		if ee, ok := err.(*exec.ExitError); ok {
			return fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		return err
	})
	if err != nil {
		t.Fatalf("tc qdisc show dev %s: %v", dev, err)
	}
	var qs []struct {
		Kind string `json:"kind"`
	}
	if err := json.Unmarshal(out, &qs); err != nil {
		t.Fatalf("tc -j qdisc: %v\n%s", err, out)
	}
	var kinds []string
	for _, q := range qs {
		kinds = append(kinds, q.Kind)
	}
	return kinds
}
