package datapath

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/nkscript/nkscript/bpf"
)

// dropLab is a router lab a -- r -- b: a 10.213.1.2, r 10.213.1.1 and
// 10.213.2.1, b 10.213.2.2, with routes both ways through r.
type dropLab struct {
	lab     *Lab
	host    *Netns
	a, r, b *Netns
	ar, rb  *Pair // ar.Peer and rb.Primary are r's ends
}

func newDropLab(t *testing.T, forward bool) *dropLab {
	t.Helper()
	lab, host := testLab(t)
	d := &dropLab{lab: lab, host: host}
	var err error
	for _, ns := range []**Netns{&d.a, &d.r, &d.b} {
		if *ns, err = lab.Netns(uniqueName("dm")); err != nil {
			t.Fatal(err)
		}
	}
	if d.ar, err = lab.NewPair(PairOptions{Kind: Veth, Primary: "dm_a", Peer: "dm_ra", PrimaryNs: d.a, PeerNs: d.r}); err != nil {
		t.Fatal(err)
	}
	if d.rb, err = lab.NewPair(PairOptions{Kind: Veth, Primary: "dm_rb", Peer: "dm_b", PrimaryNs: d.r, PeerNs: d.b}); err != nil {
		t.Fatal(err)
	}
	for k, p := range map[*Link]string{d.ar.Primary: "10.213.1.2/24", d.ar.Peer: "10.213.1.1/24", d.rb.Primary: "10.213.2.1/24", d.rb.Peer: "10.213.2.2/24"} {
		if err := lab.AddAddr(k, netip.MustParsePrefix(p)); err != nil {
			t.Fatal(err)
		}
		if err := lab.SetUp(k, true); err != nil {
			t.Fatal(err)
		}
	}
	dflt := netip.MustParsePrefix("0.0.0.0/0")
	if err := lab.AddRoute(d.a, RouteSpec{Dst: dflt, Via: netip.MustParseAddr("10.213.1.1")}); err != nil {
		t.Fatal(err)
	}
	if err := lab.AddRoute(d.b, RouteSpec{Dst: dflt, Via: netip.MustParseAddr("10.213.2.1")}); err != nil {
		t.Fatal(err)
	}
	if forward {
		if err := lab.Forwarding(d.r); err != nil {
			t.Fatal(err)
		}
	}
	if err := lab.WaitReadyFor(context.Background(), 10*time.Second, false); err != nil {
		t.Fatal(err)
	}
	return d
}

// dropsOf runs send with the lab's drop monitor on and returns what it
// says of the drops of proto packets to or from dst.
func (d *dropLab) dropsOf(t *testing.T, proto string, dst string, send func()) []DropReport {
	t.Helper()
	m, err := d.lab.DropMonitor()
	if err != nil {
		t.Fatal(err)
	}
	if !m.Active() {
		t.Fatal("the kernel backend's drop monitor is a stand-in")
	}
	mark := d.lab.MarkDrops(m)
	send()
	m.Sync()
	addr := netip.MustParseAddr(dst)
	var ds []Drop
	for _, x := range m.Since(mark.Seq) {
		if x.Proto() == proto && (x.Src == addr || x.Dst == addr) {
			ds = append(ds, x)
		}
	}
	return d.lab.ExplainDrops(ds, &mark)
}

func findDrop(t *testing.T, reps []DropReport, reason string) DropReport {
	t.Helper()
	for _, r := range reps {
		if r.Reason == reason {
			return r
		}
	}
	t.Fatalf("no drop for %s among %v", reason, reps)
	return DropReport{}
}

func TestDropMonitorRouterWithoutForwarding(t *testing.T) {
	d := newDropLab(t, false)
	reps := d.dropsOf(t, "icmp", "10.213.2.2", func() {
		if _, err := d.lab.Ping(context.Background(), d.a, netip.MustParseAddr("10.213.2.2"), PingOptions{Count: 2, Timeout: 200 * time.Millisecond}, time.Second); err != nil {
			t.Fatal(err)
		}
	})
	r := findDrop(t, reps, "IP_INADDRERRORS")
	if r.Ns != d.r.Name() || r.Dev != "dm_ra" || r.Why != "forwarding disabled" || r.Count != 2 || r.Hook != "" {
		t.Errorf("drop at the router: %+v", r)
	}
	want := `in netns "` + d.r.Name() + `" on dm_ra: forwarding disabled (IP_INADDRERRORS)`
	if r.String() != want {
		t.Errorf("said %q, want %q", r.String(), want)
	}
}

func TestDropMonitorProgramOnTCXEgress(t *testing.T) {
	d := newDropLab(t, true)
	p, err := d.lab.LoadProgram(ProgramSpec{Name: "drop_port", Consts: map[string]int64{"port": 8080}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.lab.Attach(p, d.rb.Primary, HookEgress, AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	reps := d.dropsOf(t, "tcp", "10.213.2.2", func() {
		res, err := d.lab.Probe(context.Background(), ProbeOptions{Proto: "tcp", Src: d.a, DstNs: d.b,
			Dst: netip.MustParseAddr("10.213.2.2"), Port: 8080, Timeout: 300 * time.Millisecond}, false)
		if err != nil || res.Delivered {
			t.Fatalf("probe through drop_port: %+v, %v", res, err)
		}
	})
	r := findDrop(t, reps, "TC_EGRESS")
	if r.Ns != d.r.Name() || r.Dev != "dm_rb" || r.Hook != "tc egress" || strings.Join(r.Programs, ",") != "drop_port" || r.Dport != 8080 {
		t.Errorf("drop by the program: %+v", r)
	}
	if !strings.Contains(r.String(), "on dm_rb (tc egress) by program drop_port (TC_EGRESS)") {
		t.Errorf("said %q", r.String())
	}
}

func TestDropMonitorNoSocketAndOutsideTheLab(t *testing.T) {
	d := newDropLab(t, true)
	ctx := context.Background()
	reps := d.dropsOf(t, "udp", "10.213.1.1", func() {
		// A closed port in the lab (r), and one in the lab's host,
		// which the lab did not create and does not watch.
		if _, err := d.lab.Connect(ctx, d.a, "udp", netip.MustParseAddrPort("10.213.1.1:9"), 300*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if _, err := d.lab.Connect(ctx, d.host, "udp", netip.MustParseAddrPort("127.0.0.1:9"), 300*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	})
	r := findDrop(t, reps, "NO_SOCKET")
	if r.Ns != d.r.Name() || r.Dev != "dm_ra" || r.Dport != 9 || r.Why != "no socket listening" {
		t.Errorf("drop at the closed port: %+v", r)
	}
	m, _ := d.lab.DropMonitor()
	for _, x := range m.Since(0) {
		if uint64(x.Netns) == d.host.ID().Ino || x.Dst == netip.MustParseAddr("127.0.0.1") {
			t.Errorf("the monitor saw a drop outside the lab's namespaces: %+v", x)
		}
	}
}

// TestDropMonitorLoadedOnDemandAndLeavesNothing checks that building a
// lab loads no monitor, and that closing the lab removes the monitor's
// program and link from the kernel.
func TestDropMonitorLoadedOnDemandAndLeavesNothing(t *testing.T) {
	lab, _ := testLab(t)
	if _, err := lab.Netns(uniqueName("dm")); err != nil {
		t.Fatal(err)
	}
	if lab.dropmon != nil {
		t.Fatal("a lab without traffic started the drop monitor")
	}
	m, err := lab.DropMonitor()
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := lab.DropMonitor(); again != m {
		t.Error("a second DropMonitor call started another monitor")
	}
	prog := m.k.coll.Programs[bpf.DropMonProgram]
	info, err := prog.Info()
	if err != nil {
		t.Fatal(err)
	}
	progID, _ := info.ID()
	linkInfo, err := m.k.tp.Info()
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.Close(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, "the monitor's program", func() (io.Closer, error) { return ebpf.NewProgramFromID(progID) })
	waitGone(t, "the monitor's link", func() (io.Closer, error) { return link.NewFromID(linkInfo.ID) })
}

// waitGone waits until open finds what (a program, a link) no longer in
// the kernel, which frees it soon after its last reference is closed.
func waitGone(t *testing.T, what string, open func() (io.Closer, error)) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := open()
		if c != nil {
			c.Close()
		}
		if errors.Is(err, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is still in the kernel: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDropMonitorStandIns(t *testing.T) {
	for name, b := range map[string]Backend{"recorder": NewRecorder(), "shell": NewShell(&strings.Builder{}, "t.star")} {
		lab, err := NewLab(LabConfig{Backend: b, Script: t.Name()})
		if err != nil {
			t.Fatal(err)
		}
		m, err := lab.DropMonitor()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		m.Sync()
		if m.Active() || len(m.Since(0)) != 0 || len(lab.ExplainDrops(m.Since(0), nil)) != 0 {
			t.Errorf("%s: the stand-in monitor sees drops", name)
		}
		if err := lab.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// encodeDrop writes d as bpf/dropmon.c does.
func encodeDrop(d Drop) []byte {
	b := make([]byte, bpf.DropMonRecordSize)
	le := binary.LittleEndian
	le.PutUint32(b[0:], d.Netns)
	le.PutUint32(b[4:], uint32(d.Ifindex))
	le.PutUint64(b[8:], d.Location)
	le.PutUint32(b[16:], d.reason)
	le.PutUint16(b[20:], d.Ethertype)
	b[22] = d.L4
	if d.Src.IsValid() {
		s, t := d.Src.AsSlice(), d.Dst.AsSlice()
		copy(b[24:], s)
		copy(b[40:], t)
	}
	le.PutUint16(b[56:], d.Sport)
	le.PutUint16(b[58:], d.Dport)
	le.PutUint32(b[60:], d.progID)
	copy(b[64:], d.Func)
	return b
}

// netkitDropLab is a lab of two namespaces a and b, for netkit pairs
// between them.
func netkitDropLab(t *testing.T) (*Lab, *Netns, *Netns) {
	t.Helper()
	lab, _ := testLab(t)
	a, err := lab.Netns(uniqueName("dm"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := lab.Netns(uniqueName("dm"))
	if err != nil {
		t.Fatal(err)
	}
	return lab, a, b
}

// netkitDropPair makes a netkit pair prim (in a, prefix+"1/24") -- peer
// (in b, prefix+"2/24") with the primary's policy, up.
func netkitDropPair(t *testing.T, lab *Lab, a, b *Netns, prim, peer, policy, prefix string) *Pair {
	t.Helper()
	p, err := lab.NewPair(PairOptions{Kind: Netkit, Primary: prim, Peer: peer, PrimaryNs: a, PeerNs: b, Policy: policy})
	if err != nil {
		t.Fatal(err)
	}
	for k, addr := range map[*Link]string{p.Primary: prefix + "1/24", p.Peer: prefix + "2/24"} {
		if err := lab.AddAddr(k, netip.MustParsePrefix(addr)); err != nil {
			t.Fatal(err)
		}
		if err := lab.SetUp(k, true); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// FuzzDecodeDrop checks the decoder of the monitor's ring buffer records:
// it never panics, refuses short records, keeps addresses only for IP and
// ports only for TCP and UDP, and what it decodes encodes back to a
// record that decodes the same.
func FuzzDecodeDrop(f *testing.F) {
	tcp := Drop{Netns: 4026532000, Ifindex: 3, Location: 0xffffffff81000000, reason: 2, Ethertype: 0x0800, L4: 6,
		Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), Sport: 40000, Dport: 80}
	f.Add(encodeDrop(tcp))
	named := tcp
	named.Func = "tcp_v4_rcv"
	f.Add(encodeDrop(named))
	byProg := tcp
	byProg.progID = 1234
	f.Add(encodeDrop(byProg))
	v6 := tcp
	v6.Ethertype, v6.L4, v6.Src, v6.Dst = 0x86dd, 58, netip.MustParseAddr("fd00::1"), netip.MustParseAddr("ff02::1")
	v6.Sport, v6.Dport = 0, 0
	f.Add(encodeDrop(v6))
	f.Add([]byte{})
	f.Add(make([]byte, bpf.DropMonRecordSize-1))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := decodeDrop(b)
		if len(b) < bpf.DropMonRecordSize {
			if err == nil {
				t.Fatalf("a record of %d bytes decoded", len(b))
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		isIP := d.Ethertype == 0x0800 || d.Ethertype == 0x86dd
		if d.Src.IsValid() != isIP || d.Dst.IsValid() != isIP {
			t.Fatalf("ethertype %#x with addresses %v, %v", d.Ethertype, d.Src, d.Dst)
		}
		if (d.Sport != 0 || d.Dport != 0) && d.L4 != 6 && d.L4 != 17 {
			t.Fatalf("ports for IP protocol %d", d.L4)
		}
		if d.Proto() == "" {
			t.Fatal("no protocol name")
		}
		again, err := decodeDrop(encodeDrop(d))
		if err != nil || again != d {
			t.Fatalf("round trip: %+v, then %+v (%v)", d, again, err)
		}
	})
}

// TestNetkitDropMonitor checks what is said of drops in netkit's xmit: a
// pair whose primary policy is blackhole, and a program on the peer hook
// among two, put down to the one whose drop counter rose.
func TestNetkitDropMonitor(t *testing.T) {
	requireNetkit(t)
	lab, a, b := netkitDropLab(t)
	d := &dropLab{lab: lab}
	netkitDropPair(t, lab, a, b, "dm_nka", "dm_nkb", "blackhole", "10.214.0.")
	nk := netkitDropPair(t, lab, a, b, "dm_nkc", "dm_nkd", "", "10.214.1.")
	if err := lab.WaitReadyFor(context.Background(), 10*time.Second, false); err != nil {
		t.Fatal(err)
	}
	reps := d.dropsOf(t, "icmp", "10.214.0.2", func() {
		lab.Ping(context.Background(), a, netip.MustParseAddr("10.214.0.2"), PingOptions{Count: 1, Timeout: 200 * time.Millisecond}, time.Second)
	})
	r := findDrop(t, reps, "NOT_SPECIFIED")
	if r.Ns != a.Name() || r.Dev != "dm_nka" || r.Hook != "netkit primary" || len(r.Programs) != 0 || r.Why != "the device's blackhole policy" {
		t.Errorf("blackhole drop: %+v", r)
	}
	for _, name := range []string{"drop_port", "pass"} {
		p, err := lab.LoadProgram(ProgramSpec{Name: name, Consts: map[string]int64{"port": 8080}})
		if name == "pass" {
			p, err = lab.LoadProgram(ProgramSpec{Name: name})
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := lab.Attach(p, nk.Peer, HookPeer, AttachOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	reps = d.dropsOf(t, "tcp", "10.214.1.1", func() {
		lab.Connect(context.Background(), b, "tcp", netip.MustParseAddrPort("10.214.1.1:8080"), 300*time.Millisecond)
	})
	r = findDrop(t, reps, "NOT_SPECIFIED")
	if r.Ns != b.Name() || r.Dev != "dm_nkd" || r.Hook != "netkit peer" || strings.Join(r.Programs, ",") != "drop_port" {
		t.Errorf("drop by the peer's program: %+v", r)
	}
}

// TestNoDropMonitor checks LabConfig.NoDropMonitor: a stand-in that sees
// nothing, and the kernel backend never asked to load the monitor.
func TestNoDropMonitor(t *testing.T) {
	b := &countingDropMon{Backend: NewKernel(nil)}
	lab, err := NewLab(LabConfig{Backend: b, JournalDir: t.TempDir(), Script: t.Name(), Host: testNetns(t), NoDropMonitor: true})
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	m, err := lab.DropMonitor()
	if err != nil {
		t.Fatal(err)
	}
	if m.Active() || !lab.DropMonitorOff() || b.calls != 0 {
		t.Errorf("with NoDropMonitor: monitor active %v, DropMonitorOff %v, backend asked %d times", m.Active(), lab.DropMonitorOff(), b.calls)
	}
}

// countingDropMon counts the drop monitors its backend is asked for.
type countingDropMon struct {
	Backend
	calls int
}

func (c *countingDropMon) DropMonitor() (*DropMonitor, error) {
	c.calls++
	return c.Backend.DropMonitor()
}

// TestDropMonitorNamesFunction checks that the monitor's records name the
// kernel function that dropped the packet (the program prints it with
// %ps), so that no drop needs /proc/kallsyms: a UDP datagram to a closed
// port, freed by UDP's receive path.
func TestDropMonitorNamesFunction(t *testing.T) {
	lab, _ := testLab(t)
	ns, err := lab.Netns(uniqueName("dmn"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := startDropKernel()
	if err != nil {
		t.Fatal(err)
	}
	defer k.close()
	if err := k.watch(ns.id.Ino); err != nil {
		t.Fatal(err)
	}
	if err := sendToClosedPort(ns, 1); err != nil {
		t.Fatal(err)
	}
	// The program does not wake the reader: poll.
	for deadline := time.Now().Add(5 * time.Second); ; {
		k.rd.SetDeadline(time.Now().Add(20 * time.Millisecond))
		rec, err := k.rd.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) && time.Now().Before(deadline) {
			continue
		}
		if err != nil {
			t.Fatalf("no drop of the datagram recorded: %v", err)
		}
		d, err := decodeDrop(rec.RawSample)
		if err != nil {
			t.Fatal(err)
		}
		if d.L4 != 17 || d.Dport != 9 {
			continue
		}
		if !strings.HasPrefix(d.Func, "__udp") || d.Func != kernelSymbols().name(d.Location) {
			t.Errorf("the record names %q; /proc/kallsyms names %q", d.Func, kernelSymbols().name(d.Location))
		}
		return
	}
}

// TestDropMonitorWatchesManyNamespaces checks that the monitor can watch
// the namespaces of a lab of 10,000 and more (scripts/bench/chain.star
// 10000 pings across 10,001).
func TestDropMonitorWatchesManyNamespaces(t *testing.T) {
	k, err := startDropKernel()
	if err != nil {
		t.Fatal(err)
	}
	defer k.close()
	for ino := uint64(1); ino <= 20000; ino++ {
		if err := k.watch(ino); err != nil {
			t.Fatalf("watching namespace %d: %v", ino, err)
		}
	}
	full := uint64(k.netns.MaxEntries())
	for ino := uint64(20001); ino <= full; ino++ {
		if err := k.watch(ino); err != nil {
			t.Fatalf("watching namespace %d of %d: %v", ino, full, err)
		}
	}
	if err := k.watch(full + 1); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("watching one namespace more than the monitor holds: %v, want it to say how many it watches at most", err)
	}
}
