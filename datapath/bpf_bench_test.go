package datapath

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"

	"github.com/nkscript/nkscript/bpf"
)

// XDP verdicts as BPF_PROG_TEST_RUN reports them.
const (
	xdpDrop uint32 = 1
	xdpPass uint32 = 2
)

// bpfBenchCase is one program on one path: the packet and map contents
// that send it down that path, and the verdict that proves it went there.
type bpfBenchCase struct {
	name  string // program/path, as BENCHMARKS.md shows it
	spec  ProgramSpec
	setup func(*Program) error
	pkt   []byte
	want  uint32
	// clone runs the program in a namespace where the monitor map names
	// a veth whose peer is up, so that bpf_clone_redirect transmits.
	clone bool
}

// bpfBenchCases are the bundled programs on the paths that matter: the
// one that acts on a packet (drop, redirect, clone) and the one that
// hands it on. The redirect verdicts come back from a test run without
// the kernel carrying the redirect out; the clone is transmitted inside
// the helper.
func bpfBenchCases(tb testing.TB) []bpfBenchCase {
	tcp := tcpSYN(tb, "192.168.100.5", "10.0.2.2", 80)
	other := tcpSYN(tb, "192.168.100.6", "10.0.3.3", 80)
	udp := udpTo(tb, "10.0.1.2", "10.0.2.2", 53)
	port := func(name string, p int64) ProgramSpec {
		return ProgramSpec{Name: name, Consts: map[string]int64{"port": p}}
	}
	proto := func(p int64) ProgramSpec {
		return ProgramSpec{Name: "drop_flow", Consts: map[string]int64{"proto": p}}
	}
	return []bpfBenchCase{
		{name: "pass", spec: ProgramSpec{Name: "pass"}, pkt: tcp, want: verdictNext},
		{name: "drop_port/drop", spec: port("drop_port", 80), pkt: tcp, want: verdictDrop},
		{name: "drop_port/pass", spec: port("drop_port", 81), pkt: tcp, want: verdictNext},
		{name: "drop_flow/drop", spec: proto(6), pkt: tcp, want: verdictDrop},
		{name: "drop_flow/pass", spec: proto(17), pkt: tcp, want: verdictNext},
		{name: "policy_router/redirect", spec: ProgramSpec{Name: "policy_router"}, setup: policyHit, pkt: tcp, want: verdictRedirect},
		{name: "policy_router/miss", spec: ProgramSpec{Name: "policy_router"}, setup: policyHit, pkt: other, want: verdictNext},
		{name: "lb/redirect", spec: ProgramSpec{Name: "lb"}, setup: lbBackends, pkt: tcp, want: verdictRedirect},
		{name: "lb/not-vip", spec: ProgramSpec{Name: "lb"}, setup: lbBackends, pkt: other, want: verdictNext},
		{name: "mirror/clone", spec: ProgramSpec{Name: "mirror"}, pkt: tcp, want: verdictNext, clone: true},
		{name: "mirror/off", spec: ProgramSpec{Name: "mirror"}, pkt: tcp, want: verdictNext},
		{name: "redirect_peer/redirect", spec: ProgramSpec{Name: "redirect_peer"}, setup: peerRoute, pkt: tcp, want: verdictRedirect},
		{name: "redirect_peer/miss", spec: ProgramSpec{Name: "redirect_peer"}, setup: peerRoute, pkt: other, want: verdictNext},
		{name: "xdp_pass", spec: ProgramSpec{Name: "xdp_pass"}, pkt: udp, want: xdpPass},
		{name: "xdp_drop_port/drop", spec: port("xdp_drop_port", 53), pkt: udp, want: xdpDrop},
		{name: "xdp_drop_port/pass", spec: port("xdp_drop_port", 54), pkt: udp, want: xdpPass},
	}
}

func policyHit(p *Program) error {
	return putEntry(p, "policy_routes_v4", "192.168.100.5/32", map[string]any{"ifindex": int64(1), "next_hop": "10.0.1.1"})
}

func peerRoute(p *Program) error {
	return putEntry(p, "routes_v4", "10.0.2.2/32", int64(3))
}

func lbBackends(p *Program) error {
	if err := putEntry(p, "vip", int64(0), map[string]any{"addr": "10.0.2.2"}); err != nil {
		return err
	}
	for i := range 3 {
		if err := putEntry(p, "backends", int64(i), map[string]any{"ifindex": int64(1), "addr": "10.0.1.2"}); err != nil {
			return err
		}
	}
	return nil
}

func putEntry(p *Program, mapName string, key, value any) error {
	m, err := p.Map(mapName)
	if err != nil {
		return err
	}
	return m.Put(key, value)
}

// TestBPFBenchCoversBundled checks that BenchmarkBundledPrograms measures
// every bundled program, so that BENCHMARKS.md cannot leave one out.
func TestBPFBenchCoversBundled(t *testing.T) {
	measured := map[string]bool{}
	for _, c := range bpfBenchCases(t) {
		measured[c.spec.Name] = true
	}
	for _, name := range bpf.Names() {
		if !measured[name] {
			t.Errorf("bundled program %q has no case in bpfBenchCases", name)
		}
	}
}

// BenchmarkBundledPrograms measures every bundled program's cost per
// packet with BPF_PROG_TEST_RUN (cilium/ebpf Program.Benchmark, the
// kernel's own timing of b.N repetitions) on each of its paths, and two
// programs that only return (empty, xdp_empty): the test run's own cost
// for tc and XDP. Each case checks the verdict, so a row measures the
// path it names. Reported as ns/pkt.
func BenchmarkBundledPrograms(b *testing.B) {
	requireBPF(b)
	tcp := tcpSYN(b, "192.168.100.5", "10.0.2.2", 80)
	b.Run("empty", func(b *testing.B) { benchEmpty(b, ebpf.SchedCLS, -1, tcp) })
	b.Run("xdp_empty", func(b *testing.B) { benchEmpty(b, ebpf.XDP, int32(xdpPass), udpTo(b, "10.0.1.2", "10.0.2.2", 53)) })
	for _, c := range bpfBenchCases(b) {
		b.Run(c.name, func(b *testing.B) { benchCase(b, c) })
	}
}

// benchEmpty measures a program of the given type that returns ret.
func benchEmpty(b *testing.B, typ ebpf.ProgramType, ret int32, pkt []byte) {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: typ, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, ret), asm.Return()}})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	_, per, err := p.Benchmark(pkt, b.N, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(per.Nanoseconds()), "ns/pkt")
}

func benchCase(b *testing.B, c bpfBenchCase) {
	p, err := LoadProgram(c.spec)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	if c.setup != nil {
		if err := c.setup(p); err != nil {
			b.Fatal(err)
		}
	}
	run := func() (uint32, int64, error) {
		got, per, err := kprog(p).Benchmark(c.pkt, b.N, nil)
		return got, per.Nanoseconds(), err
	}
	var got uint32
	var ns int64
	if c.clone {
		got, ns, err = benchClone(b, p, run)
	} else {
		got, ns, err = run()
	}
	if err != nil {
		b.Fatal(err)
	}
	if got != c.want {
		b.Fatalf("verdict %d, want %d: the packet did not take the path measured", int32(got), int32(c.want))
	}
	b.ReportMetric(float64(ns), "ns/pkt")
}

// waitOperUp waits until the link is operationally up: until then the
// kernel has not given it its queueing discipline and drops what is
// transmitted on it.
func waitOperUp(ns *Netns, ifindex int) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, err := ns.Handle().LinkByIndex(ifindex)
		if err != nil {
			return err
		}
		if l.Attrs().OperState == netlink.OperUp {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("link %d still %s after 5 s", ifindex, l.Attrs().OperState)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// benchClone runs run in a new namespace holding a veth pair, both ends
// up, with the monitor map naming one end: every repetition clones the
// packet and transmits the copy to the other end. It checks that every
// repetition made a copy (the stats count it as redirected). run is
// called on another goroutine, inside the namespace: it must not stop
// the benchmark.
func benchClone(b *testing.B, p *Program, run func() (uint32, int64, error)) (uint32, int64, error) {
	ns := testNetns(b)
	peer := testNetns(b)
	mon, _ := testVeth(b, ns, "mon0", netip.Prefix{}, peer, "mon1", netip.Prefix{})
	if err := waitOperUp(ns, mon); err != nil {
		return 0, 0, err
	}
	if err := putEntry(p, "monitor", int64(0), int64(mon)); err != nil {
		return 0, 0, err
	}
	before, err := p.Stats()
	if err != nil {
		return 0, 0, err
	}
	var got uint32
	var per int64
	err = ns.Do(func() error {
		var err error
		got, per, err = run()
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	after, err := p.Stats()
	if err != nil {
		return 0, 0, err
	}
	if cloned := after.Redirected - before.Redirected; cloned < uint64(b.N) {
		return 0, 0, fmt.Errorf("%d of %d repetitions cloned the packet (stats before %+v, after %+v, verdict %d)", cloned, b.N, before, after, int32(got))
	}
	return got, per, nil
}
