package datapath

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// choiceLab is a lab with a veth pair from the test's host namespace
// into a namespace of its own, addressed 10.72.0.1 and .2/24 and up.
func choiceLab(t *testing.T, cfg LabConfig) (*Lab, *Pair, *Netns) {
	t.Helper()
	return vethLab(t, cfg, "ach", 72)
}

// vethLab is a lab with a veth pair dev0/dev1 from the test's host
// namespace into a namespace of its own, addressed 10.net.0.1 and .2/24
// and up.
func vethLab(t *testing.T, cfg LabConfig, dev string, net int) (*Lab, *Pair, *Netns) {
	t.Helper()
	requireBPF(t)
	lab, host := testLabWith(t, cfg)
	ns, err := lab.Netns(uniqueName(dev))
	if err != nil {
		t.Fatal(err)
	}
	p, err := lab.NewPair(PairOptions{Kind: Veth, Primary: dev + "0", Peer: dev + "1", PrimaryNs: host, PeerNs: ns})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []struct {
		k *Link
		p string
	}{{p.Primary, fmt.Sprintf("10.%d.0.1/24", net)}, {p.Peer, fmt.Sprintf("10.%d.0.2/24", net)}} {
		if err := lab.AddAddr(a.k, netip.MustParsePrefix(a.p)); err != nil {
			t.Fatal(err)
		}
		if err := lab.SetUp(a.k, true); err != nil {
			t.Fatal(err)
		}
	}
	return lab, p, ns
}

// inNsOutput runs argv on a thread inside ns and returns its output.
func inNsOutput(t *testing.T, ns *Netns, argv ...string) []byte {
	t.Helper()
	var out []byte
	err := ns.Do(func() error {
		var err error
		out, err = exec.Command(argv[0], argv[1:]...).Output()
		return err
	})
	if err != nil {
		t.Fatalf("%s: %v", strings.Join(argv, " "), err)
	}
	return out
}

// bpftoolTC lists the tc and tcx programs bpftool shows on dev in ns, as
// "kind name" ("clsact/ingress drop_port", "tcx/ingress pass").
func bpftoolTC(t *testing.T, ns *Netns, dev string) []string {
	t.Helper()
	var tc []string
	for _, p := range bpftoolNet(t, ns, dev) {
		tc = append(tc, p.Kind+" "+p.Name)
	}
	return tc
}

// bpftoolXDP lists the XDP programs bpftool shows in ns, as "mode dev".
func bpftoolXDP(t *testing.T, ns *Netns) []string {
	t.Helper()
	var res []struct {
		XDP []struct {
			Dev  string `json:"devname"`
			Mode string `json:"mode"`
		} `json:"xdp"`
	}
	out := bpftool(t, ns, "net", "show")
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("bpftool -j net show: %v\n%s", err, out)
	}
	var xdp []string
	for _, r := range res {
		for _, e := range r.XDP {
			xdp = append(xdp, e.Mode+" "+e.Dev)
		}
	}
	return xdp
}

// tcFilterNames lists the bpf filters tc shows on a hook of dev in ns.
func tcFilterNames(t *testing.T, ns *Netns, dev, hook string) []string {
	t.Helper()
	out := inNsOutput(t, ns, "tc", "-j", "filter", "show", "dev", dev, hook)
	var fs []struct {
		Kind    string `json:"kind"`
		Options struct {
			BpfName string `json:"bpf_name"`
			Direct  bool   `json:"direct-action"`
		} `json:"options"`
	}
	if err := json.Unmarshal(out, &fs); err != nil {
		t.Fatalf("tc -j filter show: %v\n%s", err, out)
	}
	var names []string
	for _, f := range fs {
		if f.Kind == "bpf" && f.Options.BpfName != "" {
			if !f.Options.Direct {
				t.Errorf("filter %s is not direct-action", f.Options.BpfName)
			}
			names = append(names, f.Options.BpfName)
		}
	}
	return names
}

// probePorts waits for the lab's links and checks, for each port, that a
// TCP connection from src to dst in ns is delivered or not.
func probePorts(t *testing.T, lab *Lab, src, ns *Netns, dst string, deliver map[int]bool) {
	t.Helper()
	ctx := context.Background()
	if err := lab.WaitReady(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	for port, want := range deliver {
		res, err := Probe(ctx, ProbeOptions{Proto: "tcp", Src: src, DstNs: ns, Dst: netip.MustParseAddr(dst), Port: port, Timeout: 500 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if res.Delivered != want {
			t.Errorf("port %d: delivered %v, want %v (%s)", port, res.Delivered, want, res.Reason)
		}
	}
}

// TestAttachForcedTC attaches with MechTC whether or not the kernel has
// tcx: tc and bpftool see a clsact filter (not a tcx link), chain() lists
// it after the tcx programs, traffic meets it, and detaching removes the
// filter and the qdisc; no "kernel has no tcx" notice is given.
func TestAttachForcedTC(t *testing.T) {
	var notices []string
	lab, p, ns := choiceLab(t, LabConfig{Notice: func(s string) { notices = append(notices, s) }})
	drop, err := lab.LoadProgram(ProgramSpec{Name: "drop_port", Consts: map[string]int64{"port": 7200}})
	if err != nil {
		t.Fatal(err)
	}
	pass, err := lab.LoadProgram(ProgramSpec{Name: "pass"})
	if err != nil {
		t.Fatal(err)
	}
	ad, err := lab.Attach(drop, p.Peer, HookIngress, AttachOptions{Mechanism: MechTC})
	if err != nil {
		t.Fatal(err)
	}
	if ad.Mechanism() != MechTC {
		t.Errorf("Mechanism() = %q, want tc", ad.Mechanism())
	}
	ap, err := lab.Attach(pass, p.Peer, HookIngress, AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Where there is tcx, pass is a tcx program and runs first; where
	// there is not, it is a filter after drop_port.
	noTCX := errors.Is(HaveTCX(), ErrNotSupported)
	filters, want, wantChain := []string{"drop_port"}, []string{"tcx/ingress pass", "clsact/ingress drop_port"}, []string{"pass", "drop_port"}
	if noTCX {
		filters, want, wantChain = []string{"drop_port", "pass"}, []string{"clsact/ingress drop_port", "clsact/ingress pass"}, []string{"drop_port", "pass"}
	} else if len(notices) != 0 {
		t.Errorf("notices %q on a kernel with tcx", notices)
	}
	if names := tcFilterNames(t, ns, "ach1", "ingress"); !slices.Equal(names, filters) {
		t.Errorf("tc lists %v on ach1 ingress, want %v", names, filters)
	}
	if tc := bpftoolTC(t, ns, "ach1"); !slices.Equal(tc, want) {
		t.Errorf("bpftool net show lists %q, want %q", tc, want)
	}
	if chain, err := lab.Chain(p.Peer, HookIngress); err != nil || !slices.Equal(chain, wantChain) {
		t.Errorf("chain = %v, %v; want %v", chain, err, wantChain)
	}

	probePorts(t, lab, p.Primary.ns, ns, "10.72.0.2", map[int]bool{7200: false, 7201: true})
	if s, _ := drop.Stats(); s.Dropped == 0 {
		t.Errorf("drop_port dropped nothing: %+v", s)
	}

	if err := ad.Detach(); err != nil {
		t.Fatal(err)
	}
	if names := tcFilterNames(t, ns, "ach1", "ingress"); !slices.Equal(names, filters[1:]) {
		t.Errorf("after detach: tc lists %v, want %v", names, filters[1:])
	}
	// The qdisc goes with the last filter: drop_port where pass is a tcx
	// program, pass where it is a filter too.
	if noTCX {
		if err := ap.Detach(); err != nil {
			t.Fatal(err)
		}
	}
	if q := tcQdiscs(t, ns, "ach1"); slices.Contains(q, "clsact") {
		t.Errorf("after the last filter's detach: qdiscs %v, want the clsact qdisc nkscript added gone", q)
	}
	if err := ap.Detach(); err != nil {
		t.Fatal(err)
	}
}

// TestAttachForcedTCGoesAtClose leaves a forced filter attached on each
// hook: closing the lab removes the filters and the qdisc, even before
// the device goes.
func TestAttachForcedTCGoesAtClose(t *testing.T) {
	requireBPF(t)
	host := testNetns(t)
	lab, err := NewLab(LabConfig{JournalDir: t.TempDir(), Script: t.Name(), Host: host})
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	b, err := lab.NewBridge(host, "achbr", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	pass, err := lab.LoadProgram(ProgramSpec{Name: "pass"})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []Hook{HookIngress, HookEgress} {
		if _, err := lab.Attach(pass, b, h, AttachOptions{Mechanism: MechTC}); err != nil {
			t.Fatal(err)
		}
	}
	if q := tcQdiscs(t, host, "achbr"); !slices.Contains(q, "clsact") {
		t.Fatalf("qdiscs %v, want clsact", q)
	}
	// The bridge outlives the lab's attachments: undo runs in reverse,
	// attachments are released first; look before the bridge goes by
	// releasing them as Close does.
	for _, a := range lab.Attachments() {
		if err := a.release(); err != nil {
			t.Fatal(err)
		}
	}
	if q := tcQdiscs(t, host, "achbr"); slices.Contains(q, "clsact") {
		t.Errorf("after release: qdiscs %v, want clsact gone", q)
	}
}

// TestAttachXDPModes attaches XDP in generic and in driver mode on the
// two ends of a veth pair (veth has native XDP) and checks the mode with
// ip and bpftool; driver mode on a bridge fails with ErrNoNativeXDP,
// naming the device.
func TestAttachXDPModes(t *testing.T) {
	lab, p, ns := choiceLab(t, LabConfig{})
	x, err := lab.LoadProgram(ProgramSpec{Name: "xdp_pass"})
	if err != nil {
		t.Fatal(err)
	}
	ag, err := lab.Attach(x, p.Peer, HookXDP, AttachOptions{XDPMode: XDPGeneric})
	if err != nil {
		t.Fatal(err)
	}
	ad, err := lab.Attach(x, p.Primary, HookXDP, AttachOptions{XDPMode: XDPDriver})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		a    *Attachment
		ns   *Netns
		dev  string
		mode XDPMode
		ip   float64 // IFLA_XDP_ATTACHED: 1 driver, 2 generic
	}{{ag, ns, "ach1", XDPGeneric, 2}, {ad, p.Primary.ns, "ach0", XDPDriver, 1}} {
		if c.a.XDPMode() != c.mode || c.a.Mechanism() != MechXDP {
			t.Errorf("%s: mode %q, mechanism %q; want %q, xdp", c.dev, c.a.XDPMode(), c.a.Mechanism(), c.mode)
		}
		links := ipJSON(t, c.ns, "link", "show", "dev", c.dev)
		xdp, _ := links[0]["xdp"].(map[string]any)
		if xdp == nil || xdp["mode"] != c.ip {
			t.Errorf("%s: ip -j -d link shows xdp %v, want mode %v", c.dev, links[0]["xdp"], c.ip)
		}
		if got := bpftoolXDP(t, c.ns); !slices.Equal(got, []string{string(c.mode) + " " + c.dev}) {
			t.Errorf("%s: bpftool net show lists xdp %v, want %s", c.dev, got, c.mode)
		}
	}
	if err := ag.Detach(); err != nil {
		t.Fatal(err)
	}
	if links := ipJSON(t, ns, "link", "show", "dev", "ach1"); links[0]["xdp"] != nil {
		t.Errorf("after detach: ach1 has xdp %v", links[0]["xdp"])
	}

	br, err := lab.NewBridge(ns, "achbr", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = lab.Attach(x, br, HookXDP, AttachOptions{XDPMode: XDPDriver})
	if !errors.Is(err, ErrNoNativeXDP) || !strings.Contains(err.Error(), `device "achbr"`) {
		t.Errorf("driver mode on a bridge: %v; want ErrNoNativeXDP naming achbr", err)
	}
	if _, err := lab.Attach(x, br, HookXDP, AttachOptions{XDPMode: XDPGeneric}); err != nil {
		t.Errorf("generic mode on a bridge: %v", err)
	}
}

// TestAttachForcedTCX attaches with MechTCX where the kernel has tcx, and
// fails with ErrNotSupported where it has not.
func TestAttachForcedTCX(t *testing.T) {
	lab, p, _ := choiceLab(t, LabConfig{})
	pass, err := lab.LoadProgram(ProgramSpec{Name: "pass"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := lab.Attach(pass, p.Primary, HookEgress, AttachOptions{Mechanism: MechTCX})
	if errors.Is(HaveTCX(), ErrNotSupported) {
		if !errors.Is(err, ErrNotSupported) {
			t.Errorf("tcx on kernel %s: %v, want ErrNotSupported", KernelRelease(), err)
		}
		return
	}
	if err != nil || a.Mechanism() != MechTCX {
		t.Fatalf("tcx: %v, %v", a, err)
	}
}

// TestAttachChoiceChecks refuses mechanisms and modes that do not fit
// the hook, in every backend.
func TestAttachChoiceChecks(t *testing.T) {
	for _, c := range []struct {
		hook Hook
		opts AttachOptions
		want string
	}{
		{HookIngress, AttachOptions{Mechanism: MechXDP}, `mechanism "xdp" does not attach to hook "ingress"`},
		{HookXDP, AttachOptions{Mechanism: MechTC}, `mechanism "tc" does not attach to hook "xdp"`},
		{HookPeer, AttachOptions{Mechanism: MechTCX}, `mechanism "tcx" does not attach to hook "peer"`},
		{HookEgress, AttachOptions{XDPMode: XDPGeneric}, `an XDP mode ("generic") is for the "xdp" hook, not "egress"`},
	} {
		if err := checkMechanism(c.hook, c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %+v: %v, want %q", c.hook, c.opts, err, c.want)
		}
	}
	for _, m := range []Mechanism{MechTCX, MechTC, MechNetkit, MechXDP} {
		if got, err := ParseMechanism(m.String()); got != m || err != nil {
			t.Errorf("ParseMechanism(%q) = %q, %v", m, got, err)
		}
	}
	if m, err := ParseMechanism("auto"); m != MechAuto || err != nil {
		t.Errorf("ParseMechanism(auto) = %q, %v", m, err)
	}
	if _, err := ParseMechanism("bpf"); err == nil {
		t.Error("ParseMechanism(bpf): no error")
	}
	if _, err := ParseXDPMode("native"); err == nil || !strings.Contains(err.Error(), `"generic" and "driver"`) {
		t.Errorf("ParseXDPMode(native): %v", err)
	}
}

// TestShellAttachChoices writes the tc commands of a forced tc attach,
// in priority order, and the ip commands of XDP modes, with their
// detaches.
func TestShellAttachChoices(t *testing.T) {
	var out strings.Builder
	lab, err := NewLab(LabConfig{Backend: NewShell(&out, "t.star"), Script: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	p, err := lab.NewPair(PairOptions{Kind: Veth, Primary: "u0", Peer: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	drop, err := lab.LoadProgram(ProgramSpec{Name: "drop_port", Consts: map[string]int64{"port": 80}})
	if err != nil {
		t.Fatal(err)
	}
	pass, err := lab.LoadProgram(ProgramSpec{Name: "pass"})
	if err != nil {
		t.Fatal(err)
	}
	xdp, err := lab.LoadProgram(ProgramSpec{Name: "xdp_pass"})
	if err != nil {
		t.Fatal(err)
	}
	a1, err := lab.Attach(drop, p.Primary, HookIngress, AttachOptions{Mechanism: MechTC})
	if err != nil {
		t.Fatal(err)
	}
	a2, err := lab.Attach(pass, p.Primary, HookIngress, AttachOptions{Mechanism: MechTC, BeforeAttachment: a1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lab.Attach(pass, p.Primary, HookIngress, AttachOptions{Mechanism: MechTC, AfterProgram: xdp}); err == nil {
		t.Error("after a program not on the hook: no error")
	}
	x1, err := lab.Attach(xdp, p.Primary, HookXDP, AttachOptions{XDPMode: XDPGeneric})
	if err != nil {
		t.Fatal(err)
	}
	x2, err := lab.Attach(xdp, p.Peer, HookXDP, AttachOptions{XDPMode: XDPDriver})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []*Attachment{a1, a2, x1, x2} {
		if err := a.Detach(); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "tc ") || strings.HasPrefix(l, "ip link set dev") {
			got = append(got, l)
		}
	}
	want := []string{
		"tc qdisc add dev u0 clsact",
		"tc filter add dev u0 ingress pref 10 handle 1 bpf da object-pinned $NK_PIN/1/drop_port",
		"tc filter add dev u0 ingress pref 5 handle 1 bpf da object-pinned $NK_PIN/2/pass",
		"ip link set dev u0 xdpgeneric pinned $NK_PIN/3/xdp_pass",
		"ip link set dev u1 xdpdrv pinned $NK_PIN/3/xdp_pass",
		"tc filter del dev u0 ingress pref 10 handle 1 bpf",
		"tc filter del dev u0 ingress pref 5 handle 1 bpf",
		"tc qdisc del dev u0 clsact",
		"ip link set dev u0 xdpgeneric off",
		"ip link set dev u1 xdpdrv off",
	}
	if !slices.Equal(got, want) {
		t.Errorf("dry run writes\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if a1.Mechanism() != MechTC || x2.XDPMode() != XDPDriver {
		t.Errorf("stand-ins: mechanism %q, mode %q", a1.Mechanism(), x2.XDPMode())
	}
}
