package datapath

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/nkscript/nkscript/internal/testenv"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Netkit integration tests. They need a kernel with CONFIG_NETKIT and skip
// elsewhere; run them in a microVM whose kernel has it. Every test builds
// its own lab: the lab's "host" is an anonymous namespace, the other ends
// live in lab namespaces, and the lab is closed and checked at the end.

// Addresses of the netkit labs: the primary end gets the .1/::1 address,
// the peer end the .2/::2 one.
var (
	nkPrim4 = netip.MustParseAddr("10.77.0.1")
	nkPeer4 = netip.MustParseAddr("10.77.0.2")
	nkPrim6 = netip.MustParseAddr("fd77::1")
	nkPeer6 = netip.MustParseAddr("fd77::2")
)

// Ports the tests drop and allow.
const (
	nkDropPort  = 7777
	nkAllowPort = 7778
)

// Probe timeouts: generous where the probe must get through (it returns as
// soon as it does), short where it must not (a dropped packet never comes
// back, however long one waits). No assertion depends on them.
const (
	nkProbeOK   = 10 * time.Second
	nkProbeDrop = 500 * time.Millisecond
)

// requireNetkit skips tests that need netkit devices on kernels without
// them.
func requireNetkit(tb testing.TB) {
	tb.Helper()
	requireBPF(tb)
	have := testenv.Netkit(tb)
	if err := HaveNetkit(); (err == nil) != have {
		tb.Fatalf("HaveNetkit: %v, but `ip link add type netkit` says netkit: %v (kernel %s)", err, have, KernelRelease())
	}
	if !have {
		testenv.SkipBecause(tb, testenv.NoNetkit, "kernel "+KernelRelease())
	}
}

// haveTool reports whether a command is installed; without it, a test
// skips the cross-check that needs it, not the whole test — except under
// CI (CI=true or NKSCRIPT_REQUIRE_VM=1), where every cross-check must run
// and a missing tool fails the test.
func haveTool(tb testing.TB, name string) bool {
	tb.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "true" || os.Getenv("NKSCRIPT_REQUIRE_VM") == "1" {
			tb.Fatalf("%s is not installed: the cross-check with it must run under CI", name)
		}
		tb.Logf("%s is not installed: skipping the cross-check with it", name)
		return false
	}
	return true
}

// nkSetup describes the netkit lab newNetkitLab builds.
type nkSetup struct {
	Mode, Policy, PeerPolicy string
	// BothInLab puts the primary in a lab namespace too, rather than in
	// the lab's host.
	BothInLab bool
	MTU       int
	// Down leaves both ends down and without addresses.
	Down bool
}

// nkLab is a lab with one netkit pair: the primary in primNs, the peer in
// peerNs, addressed nkPrim4/nkPrim6 and nkPeer4/nkPeer6.
type nkLab struct {
	lab            *Lab
	host           *Netns
	primNs, peerNs *Netns
	pair           *Pair
	prim, peer     *Link
}

func newNetkitLab(t *testing.T, s nkSetup) *nkLab {
	t.Helper()
	requireNetkit(t)
	lab, host := testLab(t)
	l := &nkLab{lab: lab, host: host, primNs: host}
	var err error
	if s.BothInLab {
		if l.primNs, err = lab.Netns(uniqueName("nkt-q")); err != nil {
			t.Fatal(err)
		}
	}
	if l.peerNs, err = lab.Netns(uniqueName("nkt-p")); err != nil {
		t.Fatal(err)
	}
	l.pair, err = lab.NewPair(PairOptions{
		Kind:       Netkit,
		Primary:    "nk-prim",
		Peer:       "nk-peer",
		PrimaryNs:  l.primNs,
		PeerNs:     l.peerNs,
		MTU:        s.MTU,
		Mode:       s.Mode,
		Policy:     s.Policy,
		PeerPolicy: s.PeerPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	l.prim, l.peer = l.pair.Primary, l.pair.Peer
	if s.Down {
		return l
	}
	for _, a := range []struct {
		k *Link
		p netip.Prefix
	}{
		{l.prim, netip.PrefixFrom(nkPrim4, 24)},
		{l.prim, netip.PrefixFrom(nkPrim6, 64)},
		{l.peer, netip.PrefixFrom(nkPeer4, 24)},
		{l.peer, netip.PrefixFrom(nkPeer6, 64)},
	} {
		if err := lab.AddAddr(a.k, a.p); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []*Link{l.prim, l.peer} {
		if err := lab.SetUp(k, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := lab.WaitReady(context.Background(), progTestSafety); err != nil {
		t.Fatal(err)
	}
	return l
}

// direction is one way through a pair: from the sending end's namespace
// and address to the receiving end's.
type direction struct {
	name     string
	src, dst *Netns
	from, to netip.Addr
	// tx is the device that transmits the packets into the pair; its
	// netkit hook and policy apply to them.
	tx *Link
}

// down is the primary-to-peer direction (the primary hook sees it), up the
// peer-to-primary one (the peer hook sees it), in IPv4 or IPv6.
func (l *nkLab) down(v6 bool) direction {
	d := direction{name: "primary→peer", src: l.primNs, dst: l.peerNs, from: nkPrim4, to: nkPeer4, tx: l.prim}
	if v6 {
		d.from, d.to = nkPrim6, nkPeer6
	}
	return d
}

func (l *nkLab) up(v6 bool) direction {
	d := direction{name: "peer→primary", src: l.peerNs, dst: l.primNs, from: nkPeer4, to: nkPrim4, tx: l.peer}
	if v6 {
		d.from, d.to = nkPeer6, nkPrim6
	}
	return d
}

// dir returns the direction a hook sees.
func (l *nkLab) dir(h Hook, v6 bool) direction {
	if h == HookPeer {
		return l.up(v6)
	}
	return l.down(v6)
}

// expectTCP probes d with TCP to port and checks whether the probe got
// through. A TCP probe needs both directions.
func expectTCP(t *testing.T, d direction, port int, deliver bool) {
	t.Helper()
	timeout := nkProbeDrop
	if deliver {
		timeout = nkProbeOK
	}
	res, err := Probe(context.Background(), ProbeOptions{Proto: "tcp", Src: d.src, DstNs: d.dst, Dst: d.to, Port: port, Timeout: timeout})
	if err != nil {
		t.Fatalf("probe tcp %s %s:%d: %v", d.name, d.to, port, err)
	}
	if res.Delivered != deliver {
		t.Errorf("probe tcp %s %s:%d: delivered %v (%s), want %v", d.name, d.to, port, res.Delivered, res.Reason, deliver)
	}
}

// expectPing pings d.to from d.src and checks whether the replies came.
func expectPing(t *testing.T, d direction, deliver bool) {
	t.Helper()
	opts := PingOptions{Count: 1, Timeout: nkProbeDrop}
	if deliver {
		opts = PingOptions{Count: 2, Timeout: nkProbeOK}
	}
	res, err := Ping(context.Background(), d.src, d.to, opts)
	if err != nil {
		t.Fatalf("ping %s %s: %v", d.name, d.to, err)
	}
	if deliver && res.Received != res.Sent || !deliver && res.Received != 0 {
		t.Errorf("ping %s %s: %d of %d replies, want %v", d.name, d.to, res.Received, res.Sent, map[bool]string{true: "all", false: "none"}[deliver])
	}
}

// udpMessages returns n distinct messages of exactly size bytes.
func udpMessages(tag string, n, size int) []string {
	msgs := make([]string, n)
	for i := range msgs {
		m := fmt.Sprintf("%s-%04d-", tag, i)
		msgs[i] = m + strings.Repeat("x", size-len(m))
	}
	return msgs
}

// udpOneWay sends n datagrams of size bytes along d to port. If deliver,
// it checks that all arrive, in order. Otherwise dropped must count the
// packets dropped on the way: udpOneWay waits until it has risen by at
// least n, then checks that none arrived, and returns by how much it rose.
// Datagrams only go one way, so each direction of a pair is tested alone.
func udpOneWay(t *testing.T, d direction, port, n, size int, deliver bool, dropped func() uint64) uint64 {
	t.Helper()
	rx := udpSocket(t, d.dst, netip.AddrPortFrom(d.to, uint16(port)).String())
	defer rx.Close()
	tx := udpSocket(t, d.src, netip.AddrPortFrom(d.from, 0).String())
	defer tx.Close()
	var before uint64
	if dropped != nil {
		before = dropped()
	}
	msgs := udpMessages(fmt.Sprintf("%s:%d", d.to, port), n, size)
	to := netip.AddrPortFrom(d.to, uint16(port)).String()
	for _, m := range msgs {
		udpSend(t, tx, to, m)
	}
	if deliver {
		for _, want := range msgs {
			if got := udpRecv(t, rx); got != want {
				t.Fatalf("udp %s to port %d: received %q, want %q", d.name, port, got, want)
			}
		}
		return 0
	}
	// A packet netkit or tcx drops is freed on the spot: once all n are
	// counted, none can arrive later. The wait only covers packets held
	// back by neighbour resolution (l2 mode).
	deadline := time.Now().Add(progTestSafety)
	for dropped()-before < uint64(n) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	rose := dropped() - before
	if rose < uint64(n) {
		t.Errorf("udp %s to port %d: the drop counter rose by %d, want at least %d", d.name, port, rose, n)
	}
	if got := udpQueued(t, rx); len(got) != 0 {
		t.Errorf("udp %s to port %d: %d datagrams arrived that should have been dropped: %q", d.name, port, len(got), got)
	}
	return rose
}

// droppedBy counts the packets p dropped.
func droppedBy(t *testing.T, p *Program) func() uint64 {
	return func() uint64 { return progStats(t, p).Dropped }
}

// devStats returns a device's counters.
func devStats(t *testing.T, k *Link) netlink.LinkStatistics {
	t.Helper()
	dev, err := k.Netns().Handle().LinkByIndex(k.Index())
	if err != nil {
		t.Fatalf("link %s: %v", k.Name(), err)
	}
	if dev.Attrs().Statistics == nil {
		t.Fatalf("link %s: the kernel reports no statistics", k.Name())
	}
	return *dev.Attrs().Statistics
}

// txDropped counts the packets k dropped instead of transmitting them.
func txDropped(t *testing.T, k *Link) func() uint64 {
	return func() uint64 { return devStats(t, k).TxDropped }
}

// ipLink returns `ip -j -d link show dev NAME` inside ns.
func ipLink(t *testing.T, ns *Netns, name string) map[string]any {
	t.Helper()
	links := ipJSON(t, ns, "link", "show", "dev", name)
	if len(links) != 1 {
		t.Fatalf("ip link show dev %s in %s: %d links", name, ns.Name(), len(links))
	}
	return links[0]
}

// ipInfoData returns a link's linkinfo.info_kind and linkinfo.info_data.
func ipInfoData(t *testing.T, l map[string]any) (string, map[string]any) {
	t.Helper()
	li, _ := l["linkinfo"].(map[string]any)
	kind, _ := li["info_kind"].(string)
	data, _ := li["info_data"].(map[string]any)
	return kind, data
}

// hookProgs returns the IDs of the programs bpftool lists, in order, on
// the hook kind ("netkit/primary", "tcx/egress", ...) of device dev in ns.
func hookProgs(t *testing.T, ns *Netns, dev, kind string) []uint32 {
	t.Helper()
	var ids []uint32
	for _, p := range bpftoolNet(t, ns, dev) {
		if p.Devname != dev {
			t.Errorf("bpftool net show dev %s lists a program on %q: %+v", dev, p.Devname, p)
		}
		if p.Kind == kind {
			ids = append(ids, p.ProgID)
		}
	}
	return ids
}

// bpftoolKinds returns every hook bpftool lists on dev in ns, for messages.
func bpftoolKinds(t *testing.T, ns *Netns, dev string) []string {
	t.Helper()
	var kinds []string
	for _, p := range bpftoolNet(t, ns, dev) {
		kinds = append(kinds, fmt.Sprintf("%s:%d", p.Kind, p.ProgID))
	}
	return kinds
}

func hookKind(h Hook) string {
	switch h {
	case HookPrimary, HookPeer:
		return "netkit/" + h.String()
	}
	return "tcx/" + h.String()
}

// closeAndCheck closes the lab and checks that it left nothing behind: its
// namespaces, its journal, links in its host, the BPF links of atts.
func closeAndCheck(t *testing.T, lab *Lab, host *Netns, atts ...*Attachment) {
	t.Helper()
	var names []string
	for _, ns := range lab.Namespaces() {
		names = append(names, ns.Name())
	}
	journal := lab.JournalPath()
	if err := lab.Close(); err != nil {
		t.Fatalf("close lab: %v", err)
	}
	for _, name := range names {
		if _, err := os.Stat(NetnsDir + "/" + name); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("netns %s still exists after Close (%v)", name, err)
		}
	}
	if _, err := os.Stat(journal); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("journal %s still exists after Close", journal)
	}
	links, err := host.Handle().LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if l.Attrs().Name != "lo" {
			t.Errorf("the lab's host still has link %s (%s) after Close", l.Attrs().Name, l.Type())
		}
	}
	for _, a := range atts {
		if l, err := link.NewFromID(link.ID(a.ID())); err == nil {
			l.Close()
			t.Errorf("BPF link %d (%s) still exists after Close", a.ID(), a.Hook())
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("look up BPF link %d: %v", a.ID(), err)
		}
	}
}

// maxCountedLen bounds the packet lengths lenCounter counts.
const maxCountedLen = 4096

// lenCounter is a program, written in BPF assembly for the tests, that
// counts the packets it sees by skb->len and returns TCX_NEXT (=
// NETKIT_NEXT, -1): it hands every packet on to the next program on the
// hook, as the bundled programs do with the packets they do not drop. It
// tells what length a hook sees, which the bundled programs do not record.
type lenCounter struct {
	*Program
	counts *ebpf.Map
}

func newLenCounter(t *testing.T) *lenCounter {
	t.Helper()
	requireBPF(t)
	if err := removeMemlock(); err != nil {
		t.Fatal(err)
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "nkt_lens", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: maxCountedLen})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:    "nkt_count_next",
		Type:    ebpf.SchedCLS,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.LoadMem(asm.R2, asm.R1, 0, asm.Word), // skb->len
			asm.JGE.Imm(asm.R2, maxCountedLen, "next"),
			asm.StoreMem(asm.RFP, -4, asm.R2, asm.Word),
			asm.LoadMapPtr(asm.R1, m.FD()),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -4),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "next"),
			asm.Mov.Imm(asm.R1, 1),
			asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
			asm.Mov.Imm(asm.R0, -1).WithSymbol("next"),
			asm.Return(),
		},
	})
	if err != nil {
		t.Fatalf("load counting program: %v", err)
	}
	t.Cleanup(func() { prog.Close() })
	info, err := prog.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	return &lenCounter{
		Program: &Program{name: "count_next", id: uint32(id), typ: ebpf.SchedCLS, impl: &kernelProg{prog: prog}},
		counts:  m,
	}
}

// at returns how many packets of length n the program saw.
func (c *lenCounter) at(t *testing.T, n int) uint64 {
	t.Helper()
	var v uint64
	if err := c.counts.Lookup(uint32(n), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// udpLen is the length of a UDP datagram with size bytes of payload, from
// its IP header on.
func udpLen(v6 bool, size int) int {
	if v6 {
		return 40 + 8 + size
	}
	return 20 + 8 + size
}

// TestNetkitPairInPlace creates netkit pairs in both modes with the ends
// created directly in their namespaces, and checks them with iproute2.
func TestNetkitPairInPlace(t *testing.T) {
	for _, mode := range []string{"l3", "l2"} {
		for _, both := range []bool{false, true} {
			name := mode + "/host-and-netns"
			if both {
				name = mode + "/two-netns"
			}
			t.Run(name, func(t *testing.T) {
				testNetkitPairInPlace(t, mode, both)
			})
		}
	}
}

func testNetkitPairInPlace(t *testing.T, mode string, both bool) {
	l := newNetkitLab(t, nkSetup{Mode: mode, BothInLab: both, MTU: 1400})
	if l.pair.Kind != Netkit || l.pair.Mode != mode {
		t.Errorf("pair kind %s mode %s, want netkit %s", l.pair.Kind, l.pair.Mode, mode)
	}
	if !l.prim.IsPrimary() || l.peer.IsPrimary() || l.prim.Pair() != l.pair || l.peer.Pair() != l.pair {
		t.Errorf("primary/peer roles are wrong: primary %v, peer %v", l.prim.IsPrimary(), l.peer.IsPrimary())
	}
	if l.prim.Netns() != l.primNs || l.peer.Netns() != l.peerNs {
		t.Errorf("ends in %s/%s, want %s/%s", l.prim.Netns().Name(), l.peer.Netns().Name(), l.primNs.Name(), l.peerNs.Name())
	}
	if both == (l.primNs == l.host) {
		t.Fatalf("primary namespace %s, host %s", l.primNs.Name(), l.host.Name())
	}

	// Hardware addresses: random unicast ones in l2 mode, none in l3
	// mode (the kernel reports all zeros).
	primMAC, err := l.prim.MAC()
	if err != nil {
		t.Fatal(err)
	}
	peerMAC, err := l.peer.MAC()
	if err != nil {
		t.Fatal(err)
	}
	zero := func(m net.HardwareAddr) bool { return !slices.ContainsFunc(m, func(b byte) bool { return b != 0 }) }
	switch mode {
	case "l2":
		for _, m := range []net.HardwareAddr{primMAC, peerMAC} {
			if len(m) != 6 || zero(m) || m[0]&1 != 0 {
				t.Errorf("l2 mode: MAC %q, want a unicast Ethernet address", m)
			}
		}
		if primMAC.String() == peerMAC.String() {
			t.Errorf("l2 mode: both ends have MAC %s", primMAC)
		}
	case "l3":
		if len(primMAC) != 0 || len(peerMAC) != 0 {
			t.Errorf("l3 mode: MACs %q and %q, want none", primMAC, peerMAC)
		}
	}
	t.Logf("%s: MACs %q, %q", mode, primMAC, peerMAC)

	if haveTool(t, "ip") {
		for _, c := range []struct {
			ns           *Netns
			k, other     *Link
			typ          string
			policy, peer string
			mac          net.HardwareAddr
		}{
			{l.primNs, l.prim, l.peer, "primary", "forward", "forward", primMAC},
			{l.peerNs, l.peer, l.prim, "peer", "forward", "forward", peerMAC},
		} {
			dev := ipLink(t, c.ns, c.k.Name())
			if c.k == l.prim {
				t.Logf("ip -j -d link show dev %s: %v", c.k.Name(), dev)
			}
			kind, data := ipInfoData(t, dev)
			if kind != "netkit" {
				t.Errorf("%s: info_kind %q, want netkit", c.k.Name(), kind)
			}
			want := map[string]any{"mode": mode, "type": c.typ, "policy": c.policy, "peer_policy": c.peer}
			for key, v := range want {
				if data[key] != v {
					t.Errorf("%s: info_data.%s = %v, want %v (info_data %v)", c.k.Name(), key, data[key], v, data)
				}
			}
			if dev["ifindex"] != float64(c.k.Index()) {
				t.Errorf("%s: ifindex %v, the lab says %d", c.k.Name(), dev["ifindex"], c.k.Index())
			}
			// iflink: the other end's ifindex, in another namespace.
			if dev["link_index"] != float64(c.other.Index()) {
				t.Errorf("%s: link_index %v, want the other end's ifindex %d", c.k.Name(), dev["link_index"], c.other.Index())
			}
			if _, ok := dev["link_netnsid"]; !ok {
				t.Errorf("%s: no link_netnsid: the other end is not in another namespace", c.k.Name())
			}
			if dev["mtu"] != float64(1400) {
				t.Errorf("%s: mtu %v, want 1400", c.k.Name(), dev["mtu"])
			}
			flags := fmt.Sprint(dev["flags"])
			if noarp := strings.Contains(flags, "NOARP"); noarp != (mode == "l3") {
				t.Errorf("%s in %s mode: flags %s", c.k.Name(), mode, flags)
			}
			// Link.MAC reports an all-zero address as none.
			wantAddr := c.mac.String()
			if len(c.mac) == 0 {
				wantAddr = "00:00:00:00:00:00"
			}
			if dev["address"] != wantAddr {
				t.Errorf("%s: ip shows address %v, want %s (Link.MAC says %q)", c.k.Name(), dev["address"], wantAddr, c.mac)
			}
		}
		// Each end is only where it should be.
		primNames := linkNames(ipJSON(t, l.primNs, "link", "show"))
		peerNames := linkNames(ipJSON(t, l.peerNs, "link", "show"))
		if !slices.Equal(primNames, []string{"lo", "nk-prim"}) || !slices.Equal(peerNames, []string{"lo", "nk-peer"}) {
			t.Errorf("links: %v in %s, %v in %s; want lo and one end in each", primNames, l.primNs.Name(), peerNames, l.peerNs.Name())
		}
		if both {
			if names := linkNames(ipJSON(t, l.host, "link", "show")); !slices.Equal(names, []string{"lo"}) {
				t.Errorf("the lab's host has links %v, want only lo", names)
			}
		}
	}

	// The pair carries traffic both ways.
	for _, v6 := range []bool{false, true} {
		expectTCP(t, l.down(v6), 0, true)
		expectTCP(t, l.up(v6), 0, true)
	}
	closeAndCheck(t, l.lab, l.host)
}

// TestNetkitPolicy checks the default policies, which apply while no
// program is attached: a blackholed device drops what it transmits, so
// policy=blackhole on the primary drops primary→peer traffic and
// peer_policy=blackhole drops peer→primary traffic. With a program
// attached the policy no longer applies, even to the packets the chain
// hands on with NETKIT_NEXT: pass on a blackholed hook lets them through.
func TestNetkitPolicy(t *testing.T) {
	for _, c := range []struct{ policy, peerPolicy string }{
		{"forward", "forward"},
		{"blackhole", "forward"},
		{"forward", "blackhole"},
		{"blackhole", "blackhole"},
	} {
		t.Run(c.policy+"/"+c.peerPolicy, func(t *testing.T) {
			testNetkitPolicy(t, c.policy, c.peerPolicy)
		})
	}
}

func testNetkitPolicy(t *testing.T, policy, peerPolicy string) {
	l := newNetkitLab(t, nkSetup{Policy: policy, PeerPolicy: peerPolicy})
	if haveTool(t, "ip") {
		// Each end reports its own policy as "policy" and its partner's as
		// "peer_policy".
		_, prim := ipInfoData(t, ipLink(t, l.primNs, l.prim.Name()))
		_, peer := ipInfoData(t, ipLink(t, l.peerNs, l.peer.Name()))
		if prim["policy"] != policy || prim["peer_policy"] != peerPolicy || peer["policy"] != peerPolicy || peer["peer_policy"] != policy {
			t.Errorf("ip shows policies %v/%v on the primary and %v/%v on the peer, want %s/%s and %s/%s",
				prim["policy"], prim["peer_policy"], peer["policy"], peer["peer_policy"], policy, peerPolicy, peerPolicy, policy)
		}
	}
	downOK, upOK := policy == "forward", peerPolicy == "forward"

	// Round trips need both directions.
	for _, v6 := range []bool{false, true} {
		expectTCP(t, l.down(v6), 0, downOK && upOK)
		expectTCP(t, l.up(v6), 0, downOK && upOK)
		expectPing(t, l.down(v6), downOK && upOK)
		expectPing(t, l.up(v6), downOK && upOK)
	}

	// One way at a time, each policy affects its own direction only.
	const n = 10
	for _, v6 := range []bool{false, true} {
		for _, c := range []struct {
			d  direction
			ok bool
		}{{l.down(v6), downOK}, {l.up(v6), upOK}} {
			before := devStats(t, c.d.tx)
			udpOneWay(t, c.d, nkAllowPort, n, 100, c.ok, txDropped(t, c.d.tx))
			after := devStats(t, c.d.tx)
			if !c.ok && after.TxPackets != before.TxPackets {
				t.Errorf("%s (%s): blackholed %s transmitted %d packets", c.d.name, c.d.to, c.d.tx.Name(), after.TxPackets-before.TxPackets)
			}
			if c.ok && after.TxDropped != before.TxDropped {
				t.Errorf("%s (%s): forwarding %s dropped %d packets", c.d.name, c.d.to, c.d.tx.Name(), after.TxDropped-before.TxDropped)
			}
		}
	}

	// The policy applies only while no program is attached. Once one is,
	// the programs decide, and a chain that ends in NETKIT_NEXT forwards
	// the packet: the kernel treats NETKIT_NEXT like NETKIT_PASS, whatever
	// the policy. So pass, which counts every packet and hands it on,
	// opens a blackholed hook until it is detached.
	if downOK && upOK {
		closeAndCheck(t, l.lab, l.host)
		return
	}
	pass, err := l.lab.LoadProgram(ProgramSpec{Name: "pass"})
	if err != nil {
		t.Fatal(err)
	}
	var atts []*Attachment
	for _, h := range []struct {
		hook Hook
		ok   bool
	}{{HookPrimary, downOK}, {HookPeer, upOK}} {
		if h.ok {
			continue
		}
		a, err := l.lab.Attach(pass, l.prim, h.hook, AttachOptions{})
		if err != nil {
			t.Fatal(err)
		}
		atts = append(atts, a)
	}
	for _, v6 := range []bool{false, true} {
		for _, c := range []struct {
			d  direction
			ok bool
		}{{l.down(v6), downOK}, {l.up(v6), upOK}} {
			if c.ok {
				continue
			}
			before, devBefore := progStats(t, pass), devStats(t, c.d.tx)
			udpOneWay(t, c.d, nkAllowPort, n, 100, true, nil)
			after, devAfter := progStats(t, pass), devStats(t, c.d.tx)
			if got := after.Passed - before.Passed; got < n || after.Dropped != 0 {
				t.Errorf("%s (%s): pass on the blackholed %s counted %d packets and dropped %d, want at least %d and none",
					c.d.name, c.d.to, c.d.tx.Name(), got, after.Dropped, n)
			}
			if devAfter.TxDropped != devBefore.TxDropped {
				t.Errorf("%s (%s): blackholed %s with pass attached dropped %d packets", c.d.name, c.d.to, c.d.tx.Name(), devAfter.TxDropped-devBefore.TxDropped)
			}
		}
	}
	expectTCP(t, l.down(false), 0, true)
	expectPing(t, l.up(true), true)
	if s := progStats(t, pass); s.Passed == 0 || s.Dropped != 0 {
		t.Errorf("pass stats %+v", s)
	}
	for _, a := range atts {
		if err := a.Detach(); err != nil {
			t.Fatal(err)
		}
	}
	expectTCP(t, l.down(false), 0, false)
	closeAndCheck(t, l.lab, l.host, atts...)
}

// TestNetkitAttachDropPort attaches drop_port to each netkit hook, through
// either end of the pair, and checks that it drops its port in the hook's
// direction only.
func TestNetkitAttachDropPort(t *testing.T) {
	for _, hook := range []Hook{HookPrimary, HookPeer} {
		for _, viaPeer := range []bool{false, true} {
			name := hook.String() + "/via-primary"
			if viaPeer {
				name = hook.String() + "/via-peer"
			}
			t.Run(name, func(t *testing.T) { testNetkitAttachDropPort(t, hook, viaPeer) })
		}
	}
}

func testNetkitAttachDropPort(t *testing.T, hook Hook, viaPeer bool) {
	l := newNetkitLab(t, nkSetup{})
	drop, err := l.lab.LoadProgram(ProgramSpec{Name: "drop_port", Consts: map[string]int64{"port": nkDropPort}})
	if err != nil {
		t.Fatal(err)
	}
	hooked, other := l.dir(hook, false), l.dir(otherHook(hook), false)

	// Before attaching, the port is reachable: the test can fail.
	expectTCP(t, hooked, nkDropPort, true)
	bpftool := haveTool(t, "bpftool")
	if bpftool {
		if kinds := bpftoolKinds(t, l.primNs, l.prim.Name()); len(kinds) != 0 {
			t.Fatalf("programs on %s before attaching: %v", l.prim.Name(), kinds)
		}
	}

	via := l.prim
	if viaPeer {
		via = l.peer
	}
	a, err := l.lab.Attach(drop, via, hook, AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Hook() != hook || a.ID() == 0 {
		t.Errorf("attachment hook %s id %d", a.Hook(), a.ID())
	}
	if bpftool {
		if ids := hookProgs(t, l.primNs, l.prim.Name(), hookKind(hook)); !slices.Equal(ids, []uint32{drop.ID()}) {
			t.Errorf("bpftool lists %v on %s (all: %v), want drop_port %d", ids, hookKind(hook), bpftoolKinds(t, l.primNs, l.prim.Name()), drop.ID())
		}
		if ids := hookProgs(t, l.primNs, l.prim.Name(), hookKind(otherHook(hook))); len(ids) != 0 {
			t.Errorf("bpftool lists %v on %s", ids, hookKind(otherHook(hook)))
		}
		info, ok := bpftoolLinks(t, l.primNs)[a.ID()]
		if !ok {
			t.Errorf("bpftool link show does not list link %d", a.ID())
		} else {
			t.Logf("bpftool link %d: %v", a.ID(), info)
			// The link names the device whose hook it is: the peer for
			// the peer hook. bpftool resolves that ifindex in its own
			// namespace, so only the number is checked.
			dev := l.prim
			if hook == HookPeer {
				dev = l.peer
			}
			if info["type"] != "netkit" || info["prog_id"] != float64(drop.ID()) || info["attach_type"] != "netkit_"+hook.String() || info["ifindex"] != float64(dev.Index()) {
				t.Errorf("bpftool link %d: %v; want a netkit link of program %d, attach type netkit_%s, ifindex %d", a.ID(), info, drop.ID(), hook, dev.Index())
			}
		}
	}

	// TCP to the port fails both ways: drop_port matches source ports
	// too, so it drops the replies of connections made the other way.
	expectTCP(t, hooked, nkDropPort, false)
	expectTCP(t, other, nkDropPort, false)
	expectTCP(t, hooked, nkAllowPort, true)
	expectTCP(t, other, nkAllowPort, true)
	expectPing(t, hooked, true)

	// One way at a time: the hook's direction only.
	const n = 10
	before := progStats(t, drop)
	if rose := udpOneWay(t, hooked, nkDropPort, n, 100, false, droppedBy(t, drop)); rose != n {
		t.Errorf("drop_port dropped %d datagrams, want %d", rose, n)
	}
	udpOneWay(t, hooked, nkAllowPort, n, 100, true, nil)
	udpOneWay(t, other, nkDropPort, n, 100, true, nil)
	s := progStats(t, drop)
	if s.Dropped-before.Dropped != n {
		t.Errorf("drop_port dropped %d in all, want %d: it saw the other direction", s.Dropped-before.Dropped, n)
	}
	if s.Passed-before.Passed < n {
		t.Errorf("drop_port passed %d, want at least %d", s.Passed-before.Passed, n)
	}
	t.Logf("drop_port stats %+v", s)

	if err := a.Detach(); err != nil {
		t.Fatal(err)
	}
	if bpftool {
		if kinds := bpftoolKinds(t, l.primNs, l.prim.Name()); len(kinds) != 0 {
			t.Errorf("programs on %s after Detach: %v", l.prim.Name(), kinds)
		}
		if _, ok := bpftoolLinks(t, l.primNs)[a.ID()]; ok {
			t.Errorf("bpftool still lists link %d after Detach", a.ID())
		}
	}
	expectTCP(t, hooked, nkDropPort, true)
	expectTCP(t, other, nkDropPort, true)
	udpOneWay(t, hooked, nkDropPort, n, 100, true, nil)
	if after := progStats(t, drop); after != s {
		t.Errorf("drop_port counted packets after Detach: %+v, then %+v", s, after)
	}
	closeAndCheck(t, l.lab, l.host, a)
}

func otherHook(h Hook) Hook {
	if h == HookPeer {
		return HookPrimary
	}
	return HookPeer
}

// TestNetkitMultiProg chains the bundled programs on one hook, netkit and,
// for comparison, tcx on a veth: pass, drop_port and pass again. The
// bundled programs return TCX_NEXT (= NETKIT_NEXT) for the packets they do
// not drop, so each hands them on to the next program in attach order, and
// only drop_port's drops end the chain.
func TestNetkitMultiProg(t *testing.T) {
	t.Run("tcx-egress", func(t *testing.T) {
		requireTCX(t)
		lab, host := testLab(t)
		peerNs, err := lab.Netns(uniqueName("nkt-v"))
		if err != nil {
			t.Fatal(err)
		}
		pair, err := lab.NewPair(PairOptions{Kind: Veth, Primary: "veth-prim", Peer: "veth-peer", PeerNs: peerNs})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range []struct {
			k *Link
			p netip.Addr
		}{{pair.Primary, nkPrim4}, {pair.Peer, nkPeer4}} {
			if err := lab.AddAddr(a.k, netip.PrefixFrom(a.p, 24)); err != nil {
				t.Fatal(err)
			}
			if err := lab.SetUp(a.k, true); err != nil {
				t.Fatal(err)
			}
		}
		if err := lab.WaitReady(context.Background(), progTestSafety); err != nil {
			t.Fatal(err)
		}
		d := direction{name: "primary→peer", src: host, dst: peerNs, from: nkPrim4, to: nkPeer4, tx: pair.Primary}
		testMultiProg(t, lab, host, d, pair.Primary, HookEgress)
	})
	for _, hook := range []Hook{HookPrimary, HookPeer} {
		t.Run("netkit-"+hook.String(), func(t *testing.T) {
			l := newNetkitLab(t, nkSetup{})
			testMultiProg(t, l.lab, l.host, l.dir(hook, false), l.prim, hook)
		})
	}
}

// testMultiProg attaches pass, drop_port and pass again to hook on dev (in
// the lab's host), which sees the packets going along d, and checks that
// they form a chain: every program that does not drop a packet hands it on
// to the next, in attach order, and the packets no program drops go
// through.
func testMultiProg(t *testing.T, lab *Lab, host *Netns, d direction, dev *Link, hook Hook) {
	load := func(spec ProgramSpec) *Program {
		p, err := lab.LoadProgram(spec)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	first := load(ProgramSpec{Name: "pass"})
	drop := load(ProgramSpec{Name: "drop_port", Consts: map[string]int64{"port": nkDropPort}})
	last := load(ProgramSpec{Name: "pass"})
	attached := map[*Program]*Attachment{}
	var all []*Attachment
	for _, p := range []*Program{first, drop, last} {
		a, err := lab.Attach(p, dev, hook, AttachOptions{})
		if err != nil {
			t.Fatal(err)
		}
		attached[p] = a
		all = append(all, a)
	}
	bpftool := haveTool(t, "bpftool")
	expectChain := func(want ...*Program) {
		t.Helper()
		if !bpftool {
			return
		}
		var ids []uint32
		for _, p := range want {
			ids = append(ids, p.ID())
		}
		if got := hookProgs(t, host, dev.Name(), hookKind(hook)); !slices.Equal(got, ids) {
			t.Errorf("bpftool lists %v on %s %s, want %v in attach order", got, dev.Name(), hookKind(hook), ids)
		}
	}
	detach := func(p *Program) {
		t.Helper()
		if err := attached[p].Detach(); err != nil {
			t.Fatal(err)
		}
	}
	// stats returns the counters of first, drop_port and last, read until
	// two reads in a row agree, so that a packet the hook sees while they
	// are read (a router solicitation, say) cannot make them disagree.
	stats := func() [3]Stats {
		t.Helper()
		read := func() [3]Stats { return [3]Stats{progStats(t, first), progStats(t, drop), progStats(t, last)} }
		s := read()
		for range 1000 {
			again := read()
			if again == s {
				return s
			}
			s = again
		}
		t.Fatalf("the counters kept changing: %+v", s)
		return s
	}
	const n = 10

	// pass, drop_port, pass: the first pass sees every packet, drop_port
	// what the first pass hands on, and the last pass what drop_port lets
	// through.
	expectChain(first, drop, last)
	s0 := stats()
	if rose := udpOneWay(t, d, nkDropPort, n, 100, false, droppedBy(t, drop)); rose != n {
		t.Errorf("drop_port dropped %d, want %d", rose, n)
	}
	udpOneWay(t, d, nkAllowPort, n, 100, true, nil)
	s1 := stats()
	seen := s1[0].Passed - s0[0].Passed
	dropped, handedOn := s1[1].Dropped-s0[1].Dropped, s1[1].Passed-s0[1].Passed
	counted := s1[2].Passed - s0[2].Passed
	t.Logf("pass, drop_port, pass: the first pass counted %d, drop_port dropped %d and handed on %d, the last pass counted %d", seen, dropped, handedOn, counted)
	if seen < 2*n {
		t.Errorf("the first pass counted %d packets, want at least %d", seen, 2*n)
	}
	if dropped != n || handedOn < n {
		t.Errorf("drop_port dropped %d and handed on %d, want %d and at least %d", dropped, handedOn, n, n)
	}
	if dropped+handedOn != seen {
		t.Errorf("drop_port saw %d packets, the first pass handed on %d", dropped+handedOn, seen)
	}
	if counted != handedOn {
		t.Errorf("the last pass counted %d packets, drop_port handed on %d", counted, handedOn)
	}
	if seen-counted != n {
		t.Errorf("the last pass counted %d packets fewer than the first, want %d", seen-counted, n)
	}
	if s1[0].Dropped != 0 || s1[2].Dropped != 0 {
		t.Errorf("pass dropped packets: %+v, %+v", s1[0], s1[2])
	}

	// drop_port, pass: the first pass is gone.
	detach(first)
	expectChain(drop, last)
	if rose := udpOneWay(t, d, nkDropPort, n, 100, false, droppedBy(t, drop)); rose != n {
		t.Errorf("drop_port dropped %d, want %d", rose, n)
	}
	udpOneWay(t, d, nkAllowPort, n, 100, true, nil)
	s2 := stats()
	if s2[0] != s1[0] {
		t.Errorf("the first pass counted packets after Detach: %+v, then %+v", s1[0], s2[0])
	}
	handedOn, counted = s2[1].Passed-s1[1].Passed, s2[2].Passed-s1[2].Passed
	if handedOn < n || counted != handedOn {
		t.Errorf("drop_port handed on %d packets and the last pass counted %d; want at least %d, and the same", handedOn, counted, n)
	}

	// pass alone: nothing is dropped any more.
	detach(drop)
	expectChain(last)
	udpOneWay(t, d, nkDropPort, n, 100, true, nil)
	s3 := stats()
	if s3[1] != s2[1] {
		t.Errorf("drop_port ran after Detach: %+v, then %+v", s2[1], s3[1])
	}
	if got := s3[2].Passed - s2[2].Passed; got < n {
		t.Errorf("the last pass counted %d packets, want at least %d", got, n)
	}

	detach(last)
	expectChain()
	closeAndCheck(t, lab, host, all...)
}

// TestNetkitHooksOnVeth checks that the netkit hooks are refused on a veth
// before the kernel is asked; it runs on any kernel.
func TestNetkitHooksOnVeth(t *testing.T) {
	requireBPF(t)
	lab, host := testLab(t)
	peerNs, err := lab.Netns(uniqueName("nkt-v"))
	if err != nil {
		t.Fatal(err)
	}
	pair, err := lab.NewPair(PairOptions{Kind: Veth, Primary: "veth-prim", Peer: "veth-peer", PeerNs: peerNs})
	if err != nil {
		t.Fatal(err)
	}
	p, err := lab.LoadProgram(ProgramSpec{Name: "pass"})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []*Link{pair.Primary, pair.Peer} {
		for _, h := range []Hook{HookPrimary, HookPeer} {
			a, err := lab.Attach(p, k, h, AttachOptions{})
			if err == nil {
				a.Detach()
				t.Errorf("attached to hook %s of veth %s", h, k.Name())
				continue
			}
			for _, want := range []string{fmt.Sprintf("hook %q needs a netkit device", h), k.Name() + " is a veth", `"ingress" or "egress"`} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("hook %s on veth %s: error %q does not contain %q", h, k.Name(), err, want)
				}
			}
		}
	}
	t.Logf("netkit hook on a veth: %v", func() error { _, err := lab.Attach(p, pair.Primary, HookPeer, AttachOptions{}); return err }())
	if HaveTCX() == nil && haveTool(t, "bpftool") {
		if kinds := bpftoolKinds(t, host, pair.Primary.Name()); len(kinds) != 0 {
			t.Errorf("programs on %s after the refused attaches: %v", pair.Primary.Name(), kinds)
		}
	}
	closeAndCheck(t, lab, host)
}

// TestNetkitAttachThroughPeer checks that attaching through the peer's own
// ifindex, in its namespace, fails with advice, and attaches nothing.
func TestNetkitAttachThroughPeer(t *testing.T) {
	l := newNetkitLab(t, nkSetup{})
	p, err := l.lab.LoadProgram(ProgramSpec{Name: "pass"})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []Hook{HookPrimary, HookPeer} {
		a, err := AttachProgram(p, l.peerNs, l.peer.Index(), h, AttachOptions{})
		if err == nil {
			a.Detach()
			t.Errorf("attached to hook %s through the peer's ifindex", h)
			continue
		}
		if !strings.Contains(err.Error(), "attach through the pair's primary device") || !errors.Is(err, unix.EACCES) {
			t.Errorf("hook %s through the peer: %v; want EACCES and advice to attach through the primary", h, err)
		}
		t.Logf("hook %s through the peer: %v", h, err)
	}
	// tcx on a netkit device is another matter: it works.
	a, err := AttachProgram(p, l.peerNs, l.peer.Index(), HookIngress, AttachOptions{})
	if err != nil {
		t.Errorf("tcx ingress on the netkit peer: %v", err)
	} else {
		a.Detach()
	}
	if haveTool(t, "bpftool") {
		if kinds := bpftoolKinds(t, l.primNs, l.prim.Name()); len(kinds) != 0 {
			t.Errorf("programs on %s after the refused attaches: %v", l.prim.Name(), kinds)
		}
	}
	closeAndCheck(t, l.lab, l.host)
}

// TestNetkitModes runs drop_port on both hooks of an l2 and an l3 pair,
// over IPv4 and IPv6, with a counting program before the one on the peer
// hook that records the length of what the hook sees.
func TestNetkitModes(t *testing.T) {
	for _, mode := range []string{"l3", "l2"} {
		t.Run(mode, func(t *testing.T) {
			l := newNetkitLab(t, nkSetup{Mode: mode})
			load := func() *Program {
				p, err := l.lab.LoadProgram(ProgramSpec{Name: "drop_port", Consts: map[string]int64{"port": nkDropPort}})
				if err != nil {
					t.Fatal(err)
				}
				return p
			}
			dropDown, dropUp := load(), load()
			count := newLenCounter(t)
			var atts []*Attachment
			for _, c := range []struct {
				p    *Program
				hook Hook
			}{{dropDown, HookPrimary}, {count.Program, HookPeer}, {dropUp, HookPeer}} {
				a, err := l.lab.Attach(c.p, l.prim, c.hook, AttachOptions{})
				if err != nil {
					t.Fatal(err)
				}
				atts = append(atts, a)
			}
			const n = 10
			const dropSize, allowSize = 300, 333
			for _, v6 := range []bool{false, true} {
				for _, c := range []struct {
					d    direction
					drop *Program
				}{{l.down(v6), dropDown}, {l.up(v6), dropUp}} {
					expectPing(t, c.d, true)
					expectTCP(t, c.d, nkDropPort, false)
					expectTCP(t, c.d, nkAllowPort, true)
					before := progStats(t, c.drop)
					if rose := udpOneWay(t, c.d, nkDropPort, n, dropSize, false, droppedBy(t, c.drop)); rose != n {
						t.Errorf("%s %s: drop_port dropped %d datagrams, want %d", mode, c.d.name, rose, n)
					}
					udpOneWay(t, c.d, nkAllowPort, n, allowSize, true, nil)
					if s := progStats(t, c.drop); s.Dropped-before.Dropped != n || s.Passed-before.Passed < n {
						t.Errorf("%s %s: drop_port stats went from %+v to %+v; want %d more dropped, at least %d more passed", mode, c.d.name, before, s, n, n)
					}
				}
				// What the peer hook saw: the datagrams with an Ethernet
				// header in front, in both modes.
				for _, size := range []int{dropSize, allowSize} {
					ip := udpLen(v6, size)
					t.Logf("%s mode, v6 %v: the peer hook saw %d datagrams of %d+14 bytes, %d of %d bytes", mode, v6, count.at(t, 14+ip), ip, count.at(t, ip), ip)
					if got := count.at(t, 14+ip); got != n {
						t.Errorf("%s mode, v6 %v: the peer hook saw %d datagrams of %d bytes with an Ethernet header, want %d (and %d without one)",
							mode, v6, got, ip, n, count.at(t, ip))
					}
				}
			}
			closeAndCheck(t, l.lab, l.host, atts...)
		})
	}
}

// TestNetkitUnsupported checks the error for a netkit pair on a kernel
// without netkit. It runs only on such kernels.
func TestNetkitUnsupported(t *testing.T) {
	requireRoot(t)
	if testenv.Netkit(t) {
		testenv.SkipBecause(t, testenv.HasNetkit, "kernel "+KernelRelease())
	}
	lab, host := testLab(t)
	ns, err := lab.Netns(uniqueName("nkt-u"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = lab.NewPair(PairOptions{Kind: Netkit, Primary: "nk-prim", Peer: "nk-peer", PeerNs: ns})
	if !errors.Is(err, ErrNotSupported) {
		t.Fatalf("netkit pair on kernel %s: %v, want ErrNotSupported", KernelRelease(), err)
	}
	if !errors.Is(err, ErrNoNetkit) {
		t.Errorf("error %v is not ErrNoNetkit", err)
	}
	for _, want := range []string{"CONFIG_NETKIT", KernelRelease()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	t.Logf("netkit pair: %v", err)
	if len(lab.Links()) != 0 {
		t.Errorf("the lab recorded links %v", lab.Links())
	}
	for _, n := range []*Netns{host, ns} {
		links, err := n.Handle().LinkList()
		if err != nil {
			t.Fatal(err)
		}
		if len(links) != 1 {
			t.Errorf("namespace %s has %d links, want only lo", n.Name(), len(links))
		}
	}
	closeAndCheck(t, lab, host)
}
