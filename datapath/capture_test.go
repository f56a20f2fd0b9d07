package datapath

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nkscript/nkscript/internal/pcapng"
	"github.com/nkscript/nkscript/internal/testenv"
	"golang.org/x/sys/unix"
)

// capturedLab is a lab whose host reaches namespace a over veth h0/a0
// (10.91.1.0/24) and namespace b over veth h1/b0 (10.91.2.0/24).
func capturedLab(t *testing.T) (lab *Lab, a0, b0 *Link) {
	t.Helper()
	lab, _ = testLab(t)
	var ends []*Link
	for i, name := range []string{"nkcap-a", "nkcap-b"} {
		ns, err := lab.Netns(uniqueName(name))
		if err != nil {
			t.Fatal(err)
		}
		p, err := lab.NewPair(PairOptions{Kind: Veth, Primary: "h" + string(rune('0'+i)), Peer: string(rune('a'+i)) + "0", PeerNs: ns})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range []struct {
			k    *Link
			addr string
		}{{p.Primary, "10.91.%d.1/24"}, {p.Peer, "10.91.%d.2/24"}} {
			if err := lab.AddAddr(e.k, netip.MustParsePrefix(strings.Replace(e.addr, "%d", string(rune('1'+i)), 1))); err != nil {
				t.Fatal(err)
			}
			if err := lab.SetUp(e.k, true); err != nil {
				t.Fatal(err)
			}
		}
		ends = append(ends, p.Peer)
	}
	return lab, ends[0], ends[1]
}

// TestCapturePcapng pings 3 times over one link and 5 times over another,
// each in its own namespace, captures both into one pcapng file, and has
// tcpdump read it back: the counts per interface must be exact.
func TestCapturePcapng(t *testing.T) {
	lab, a0, b0 := capturedLab(t)
	path := filepath.Join(t.TempDir(), "out.pcapng")
	c, err := lab.Capture(CaptureSpec{Links: []*Link{a0, b0}, Pcap: path})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, ping := range []struct {
		dst   string
		count int
	}{{"10.91.1.2", 3}, {"10.91.2.2", 5}} {
		res, err := lab.Ping(ctx, lab.Host(), netip.MustParseAddr(ping.dst), PingOptions{Count: ping.count}, 5*time.Second)
		if err != nil || res.Received != ping.count {
			t.Fatalf("ping %s: %+v, %v", ping.dst, res, err)
		}
	}
	c.Settle(20*time.Millisecond, time.Second)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// In memory: each echo request in, each reply out, on its device.
	want := map[string]int{}
	for _, p := range c.Packets() {
		if p.Proto == "icmp" {
			want[p.Dev+map[bool]string{true: " out", false: " in"}[p.Outgoing]]++
		}
	}
	a, b := a0.ns.name+"/a0", b0.ns.name+"/b0"
	for k, n := range map[string]int{a + " in": 3, a + " out": 3, b + " in": 5, b + " out": 5} {
		if want[k] != n {
			t.Errorf("%s: %d icmp packets recorded, want %d (all: %v)", k, want[k], n, want)
		}
	}
	f := readPcapng(t, path)
	if len(f.Interfaces) != 2 || f.Interfaces[0].Name != a || f.Interfaces[1].Name != b || f.Interfaces[0].LinkType != pcapng.LinkTypeEthernet {
		t.Errorf("interfaces %+v, want %s and %s, Ethernet", f.Interfaces, a, b)
	}
	for i := 1; i < len(f.Packets); i++ {
		if f.Packets[i].Time.Before(f.Packets[i-1].Time.Add(-time.Second)) {
			t.Errorf("packet %d at %v, long before packet %d at %v", i, f.Packets[i].Time, i-1, f.Packets[i-1].Time)
		}
	}
	for filter, n := range map[string]int{
		"icmp and host 10.91.1.2":                            6,
		"icmp and host 10.91.2.2":                            10,
		"icmp[icmptype] == icmp-echo and dst host 10.91.2.2": 5,
	} {
		if got := tcpdumpCount(t, path, filter); got != n {
			t.Errorf("tcpdump --count %q: %d packets, want %d", filter, got, n)
		}
	}
}

// readPcapng reads the pcapng file at path.
func readPcapng(t *testing.T, path string) *pcapng.File {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := pcapng.Read(raw)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// tcpdumpCount is how many packets of the file at path tcpdump says
// match filter.
func tcpdumpCount(t *testing.T, path, filter string) int {
	t.Helper()
	if _, err := exec.LookPath("tcpdump"); err != nil {
		testenv.Skipf(t, "tcpdump is not installed (make setup installs it)")
	}
	out, err := exec.Command("tcpdump", "-n", "-r", path, "--count", filter).CombinedOutput()
	if err != nil {
		t.Fatalf("tcpdump -r %s --count %q: %v\n%s", path, filter, err, out)
	}
	var n int
	if _, err := fmt.Sscanf(lastLine(string(out)), "%d packets", &n); err != nil {
		t.Fatalf("tcpdump --count %q: %q", filter, out)
	}
	return n
}

// TestParsePacketTransport checks that ports, TCP flags and ICMP types
// are kept.
func TestParsePacketTransport(t *testing.T) {
	ip4 := func(proto byte, l4 ...byte) []byte {
		b := []byte{0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2}
		return append(b, l4...)
	}
	syn := ip4(unix.IPPROTO_TCP, 0x9c, 0x40, 0x30, 0x39, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x12)
	p := parsePacket(unix.ETH_P_IP, syn)
	if p.Proto != "tcp" || p.Sport != 40000 || p.Dport != 12345 || p.TCPFlags() != "S." {
		t.Errorf("tcp: %+v flags %s", p, p.TCPFlags())
	}
	p = parsePacket(unix.ETH_P_IP, ip4(unix.IPPROTO_UDP, 0, 53, 0x1f, 0x90))
	if p.Proto != "udp" || p.Sport != 53 || p.Dport != 8080 {
		t.Errorf("udp: %+v", p)
	}
	p = parsePacket(unix.ETH_P_IP, ip4(unix.IPPROTO_ICMP, 8, 0))
	if p.Proto != "icmp" || p.ICMPType != 8 {
		t.Errorf("icmp: %+v", p)
	}
	frag := ip4(unix.IPPROTO_UDP, 0, 53, 0x1f, 0x90)
	frag[7] = 1 // a later fragment: no UDP header
	if p := parsePacket(unix.ETH_P_IP, frag); p.Sport != 0 || p.Dport != 0 {
		t.Errorf("later fragment read as ports: %+v", p)
	}
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestNetkitCaptureL3 captures on both ends of an l3 netkit pair. Netkit
// devices are Ethernet devices to the packet socket in both modes (l3
// ones send headers with zero addresses), so the pcapng file describes
// them as Ethernet, and tcpdump reads the pings back.
func TestNetkitCaptureL3(t *testing.T) {
	l := newNetkitLab(t, nkSetup{})
	path := filepath.Join(t.TempDir(), "nk.pcapng")
	c, err := l.lab.Capture(CaptureSpec{Links: []*Link{l.prim, l.peer}, Pcap: path})
	if err != nil {
		t.Fatal(err)
	}
	res, err := l.lab.Ping(context.Background(), l.host, nkPeer4, PingOptions{Count: 4}, 5*time.Second)
	if err != nil || res.Received != 4 {
		t.Fatalf("ping: %+v, %v", res, err)
	}
	c.Settle(20*time.Millisecond, time.Second)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	f := readPcapng(t, path)
	for _, ifc := range f.Interfaces {
		if ifc.LinkType != pcapng.LinkTypeEthernet {
			t.Errorf("interface %s has link type %d, want Ethernet (%d)", ifc.Name, ifc.LinkType, pcapng.LinkTypeEthernet)
		}
	}
	n := 0
	for _, p := range c.Packets() {
		if p.Proto == "icmp" {
			n++
		}
	}
	if n != 16 {
		t.Errorf("%d icmp packets recorded, want 16 (4 requests and 4 replies, each on both ends)", n)
	}
	if got := tcpdumpCount(t, path, "icmp"); got != 16 {
		t.Errorf("tcpdump --count icmp: %d packets, want 16", got)
	}
}

// FuzzParsePacket checks that any bytes, of any EtherType, parse without
// a panic, and that ports are only read from TCP and UDP.
func FuzzParsePacket(f *testing.F) {
	f.Add(uint16(unix.ETH_P_IP), []byte{0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0x9c, 0x40, 0x30, 0x39, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x02})
	f.Add(uint16(unix.ETH_P_IPV6), make([]byte, 44))
	f.Add(uint16(unix.ETH_P_IP), []byte{0x4f, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2})
	f.Fuzz(func(t *testing.T, ethertype uint16, b []byte) {
		p := parsePacket(ethertype, b)
		if (p.Sport != 0 || p.Dport != 0) && p.Proto != "tcp" && p.Proto != "udp" {
			t.Errorf("ports %d/%d read from a %s packet", p.Sport, p.Dport, p.Proto)
		}
		if p.Flags != 0 && p.Proto != "tcp" {
			t.Errorf("TCP flags read from a %s packet", p.Proto)
		}
		_ = p.TCPFlags()
	})
}

// Settle waits for packets the reader has not read yet: on a busy
// machine it may not run for longer than the quiet time. Here it starts
// reading 10 quiet times after the packets are queued.
func TestCaptureSettleWaitsForQueuedPackets(t *testing.T) {
	lab, a0, _ := capturedLab(t)
	c := &Capture{}
	c.ifaces = []*captureIface{{link: a0, ns: a0.ns, dev: a0.name, name: "a0", index: a0.index, fd: -1}}
	if err := c.ifaces[0].open(); err != nil {
		t.Fatal(err)
	}
	res, err := lab.Ping(context.Background(), lab.Host(), netip.MustParseAddr("10.91.1.2"), PingOptions{Count: 2}, 5*time.Second)
	if err != nil || res.Received != 2 {
		t.Fatalf("ping: %+v, %v", res, err)
	}
	if !c.queued() {
		t.Fatal("4 packets wait in the capture's socket, and queued says none")
	}
	c.wg.Go(func() {
		time.Sleep(200 * time.Millisecond)
		c.read(c.ifaces[0])
	})
	c.Settle(20*time.Millisecond, time.Minute)
	if c.queued() {
		t.Error("Settle returned with packets still queued")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(c.Packets()); n < 4 {
		t.Errorf("%d packets after Settle, want the 4 of the pings at least", n)
	}
}
