package datapath

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/nkscript/nkscript/bpf"
	"golang.org/x/sys/unix"
)

// BenchmarkDropMonitorCost measures what the drop monitor's program costs
// the kernel: b.N UDP datagrams from a to a closed port in b, each freed
// in b with NO_SOCKET, with the kernel's BPF run-time statistics on (an
// fd from BPF_ENABLE_STATS, not the sysctl). It reports the program's
// time per call (every kfree_skb of the machine calls it, most of them
// outside the lab and filtered out) and per drop it recorded. make bench
// runs it (section dropmon).
func BenchmarkDropMonitorCost(b *testing.B) {
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Skipf("BPF run-time statistics: %v", err)
	}
	defer stats.Close()
	lab, src, dst := dropBenchLab(b)
	m, err := lab.DropMonitor()
	if err != nil {
		b.Fatal(err)
	}
	if !m.Active() {
		b.Fatal("the kernel backend's drop monitor is a stand-in")
	}
	var conn net.PacketConn
	if err := src.Do(func() (err error) { conn, err = net.ListenPacket("udp4", "10.214.0.1:0"); return err }); err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	prog := m.k.coll.Programs[bpf.DropMonProgram]
	before, err := prog.Stats()
	if err != nil {
		b.Fatal(err)
	}
	to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9))
	b.ResetTimer()
	for range b.N {
		if _, err := conn.WriteTo([]byte("x"), to); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	m.Sync()
	after, err := prog.Stats()
	if err != nil {
		b.Fatal(err)
	}
	t, calls := after.Runtime-before.Runtime, after.RunCount-before.RunCount
	drops := len(m.Since(0))
	if calls == 0 || drops == 0 {
		b.Fatalf("no statistics: run time %v, %d calls, %d drops recorded", t, calls, drops)
	}
	b.ReportMetric(float64(t.Nanoseconds())/float64(calls), "prog-ns/call")
	b.ReportMetric(float64(t.Nanoseconds())/float64(drops), "prog-ns/drop")
	b.ReportMetric(float64(calls)/float64(b.N), "calls/packet")
	b.ReportMetric(float64(drops)/float64(b.N), "drops/packet")
}

// dropBenchLab is two namespaces joined by a veth pair, 10.214.0.1/24 in
// the first and 10.214.0.2/24 in the second.
func dropBenchLab(tb testing.TB) (*Lab, *Netns, netip.Addr) {
	tb.Helper()
	lab, err := NewLab(LabConfig{JournalDir: tb.TempDir(), Script: tb.Name(), Host: testNetns(tb)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := lab.Close(); err != nil {
			tb.Error(err)
		}
	})
	var ns [2]*Netns
	for i := range ns {
		if ns[i], err = lab.Netns(uniqueName("dmb")); err != nil {
			tb.Fatal(err)
		}
	}
	p, err := lab.NewPair(PairOptions{Kind: Veth, Primary: "dmb0", Peer: "dmb1", PrimaryNs: ns[0], PeerNs: ns[1]})
	if err != nil {
		tb.Fatal(err)
	}
	for k, a := range map[*Link]string{p.Primary: "10.214.0.1/24", p.Peer: "10.214.0.2/24"} {
		if err := lab.AddAddr(k, netip.MustParsePrefix(a)); err != nil {
			tb.Fatal(err)
		}
		if err := lab.SetUp(k, true); err != nil {
			tb.Fatal(err)
		}
	}
	if err := lab.WaitReadyFor(context.Background(), 10*time.Second, false); err != nil {
		tb.Fatal(err)
	}
	return lab, ns[0], netip.MustParseAddr("10.214.0.2")
}
