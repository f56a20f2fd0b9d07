package datapath

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

var (
	trA4 = netip.MustParseAddr("10.0.0.1")
	trB4 = netip.MustParseAddr("10.0.0.2")
	trA6 = netip.MustParseAddr("fd00::1")
	trB6 = netip.MustParseAddr("fd00::2")
)

// trafficLab is two namespaces joined by a veth pair a0 (in a) - b0 (in b),
// addressed 10.0.0.1/24 and fd00::1/64 on a0, 10.0.0.2/24 and fd00::2/64 on
// b0, both ends operationally up.
type trafficLab struct {
	a, b   *Netns
	ia, ib int
}

func newTrafficLab(tb testing.TB) *trafficLab {
	tb.Helper()
	a, b := testNetns(tb), testNetns(tb)
	ia, ib := testVeth(tb, a, "a0", netip.PrefixFrom(trA4, 24), b, "b0", netip.PrefixFrom(trB4, 24))
	addAddrNodad(tb, a, ia, netip.PrefixFrom(trA6, 64))
	addAddrNodad(tb, b, ib, netip.PrefixFrom(trB6, 64))
	waitUpT(tb, a, ia)
	waitUpT(tb, b, ib)
	return &trafficLab{a: a, b: b, ia: ia, ib: ib}
}

// addAddrNodad adds p to a link, skipping duplicate address detection so
// that an IPv6 address is usable at once.
func addAddrNodad(tb testing.TB, ns *Netns, ifindex int, p netip.Prefix) {
	tb.Helper()
	addr := &netlink.Addr{
		IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
		Flags: unix.IFA_F_NODAD,
	}
	if err := ns.Handle().AddrAdd(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ifindex}}, addr); err != nil {
		tb.Fatal(err)
	}
}

func setLinkDown(tb testing.TB, ns *Netns, ifindex int) {
	tb.Helper()
	if err := ns.Handle().LinkSetDown(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ifindex}}); err != nil {
		tb.Fatal(err)
	}
}

// misdirectReplies makes b send everything for a's addresses to a MAC
// address that a0 does not have, so a drops b's replies while b still
// receives a's requests.
func (l *trafficLab) misdirectReplies(tb testing.TB) {
	tb.Helper()
	mac, _ := net.ParseMAC("02:00:00:00:00:99")
	for _, ip := range []netip.Addr{trA4, trA6} {
		n := &netlink.Neigh{LinkIndex: l.ib, State: netlink.NUD_PERMANENT, IP: ip.AsSlice(), HardwareAddr: mac}
		if err := l.b.Handle().NeighSet(n); err != nil {
			tb.Fatal(err)
		}
	}
}

// addRoute adds a route of the given type (unix.RTN_*) for dst/32 in ns.
func addRoute(tb testing.TB, ns *Netns, dst netip.Addr, typ int) {
	tb.Helper()
	r := &netlink.Route{
		Dst:  &net.IPNet{IP: dst.AsSlice(), Mask: net.CIDRMask(dst.BitLen(), dst.BitLen())},
		Type: typ,
	}
	if typ == unix.RTN_LOCAL {
		lo, err := ns.Handle().LinkByName("lo")
		if err != nil {
			tb.Fatal(err)
		}
		r.LinkIndex = lo.Attrs().Index
		r.Table = unix.RT_TABLE_LOCAL
		r.Scope = netlink.SCOPE_HOST
	}
	if err := ns.Handle().RouteAdd(r); err != nil {
		tb.Fatalf("add route %v type %d: %v", dst, typ, err)
	}
}

// sniffer is a raw socket in a namespace that sees every incoming packet
// of one IP protocol.
type sniffer struct{ c net.PacketConn }

func newSniffer(tb testing.TB, ns *Netns, proto int) *sniffer {
	tb.Helper()
	var c net.PacketConn
	err := ns.Do(func() error {
		var err error
		c, err = net.ListenPacket(fmt.Sprintf("ip4:%d", proto), "0.0.0.0")
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return &sniffer{c}
}

// sniffWait bounds how long a test waits for a packet it caused: the
// packets are sent on veths in the same machine, so they arrive at once
// or never.
const sniffWait = 10 * time.Second

// next waits until a packet from src arrives and fails the test if none
// does within sniffWait.
func (s *sniffer) next(tb testing.TB, src netip.Addr) {
	tb.Helper()
	buf := make([]byte, 65536)
	if err := s.c.SetReadDeadline(time.Now().Add(sniffWait)); err != nil {
		tb.Fatal(err)
	}
	for {
		_, from, err := s.c.ReadFrom(buf)
		if err != nil {
			tb.Fatalf("waiting for a packet from %s: %v", src, err)
		}
		if ip, ok := ipAddrOf(from); ok && ip == src {
			return
		}
	}
}

func TestPing(t *testing.T) {
	l := newTrafficLab(t)
	for _, dst := range []netip.Addr{trB4, trA4, trB6} {
		t.Run(dst.String(), func(t *testing.T) {
			res, err := Ping(context.Background(), l.a, dst, PingOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Sent != 3 || res.Received != 3 || len(res.RTTs) != 3 || res.Loss() != 0 {
				t.Fatalf("got %+v (loss %v), want 3/3", res, res.Loss())
			}
			for _, rtt := range res.RTTs {
				if rtt <= 0 {
					t.Errorf("rtt %v", rtt)
				}
			}
			t.Logf("%+v", res)
		})
	}
}

func TestPingOptions(t *testing.T) {
	l := newTrafficLab(t)
	res, err := Ping(context.Background(), l.a, trB4, PingOptions{Count: 2, Interval: time.Millisecond, Size: 1400, TTL: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 2 || res.Received != 2 {
		t.Fatalf("got %+v, want 2/2", res)
	}
	res, err = Ping(context.Background(), l.a, trB6, PingOptions{Count: 1, Size: 9000})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 1 || res.Received != 1 {
		t.Fatalf("fragmented IPv6 echo: got %+v, want 1/1", res)
	}

	for _, o := range []PingOptions{{Count: -1}, {TTL: 256}, {Size: -1}, {Size: 70000}, {Timeout: -time.Second}, {Interval: -1}} {
		if _, err := Ping(context.Background(), l.a, trB4, o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
	for _, dst := range []netip.Addr{{}, netip.IPv4Unspecified(), netip.MustParseAddr("224.0.0.1")} {
		if _, err := Ping(context.Background(), l.a, dst, PingOptions{}); err == nil {
			t.Errorf("ping %v: no error", dst)
		}
	}
}

// TestPingTTL routes a to b through a third namespace: TTL 1 dies there,
// TTL 2 arrives.
func TestPingTTL(t *testing.T) {
	a, r, b := testNetns(t), testNetns(t), testNetns(t)
	ia, ir0 := testVeth(t, a, "a0", netip.MustParsePrefix("10.1.0.1/24"), r, "r0", netip.MustParsePrefix("10.1.0.254/24"))
	ib, ir1 := testVeth(t, b, "b0", netip.MustParsePrefix("10.2.0.1/24"), r, "r1", netip.MustParsePrefix("10.2.0.254/24"))
	waitUpT(t, a, ia)
	waitUpT(t, b, ib)
	waitUpT(t, r, ir0, ir1)
	for _, c := range []struct {
		ns  *Netns
		idx int
		gw  string
	}{{a, ia, "10.1.0.254"}, {b, ib, "10.2.0.254"}} {
		if err := c.ns.Handle().RouteAdd(&netlink.Route{LinkIndex: c.idx, Gw: net.ParseIP(c.gw)}); err != nil {
			t.Fatal(err)
		}
	}
	err := r.Do(func() error { return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0) })
	if err != nil {
		t.Fatal(err)
	}
	dst := netip.MustParseAddr("10.2.0.1")

	res, note, err := ping(context.Background(), a, dst, PingOptions{Count: 1, TTL: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 1 || res.Received != 0 || !strings.Contains(string(note), "10.1.0.254 reported time to live exceeded") {
		t.Fatalf("ttl 1: got %+v, note %q; want a time exceeded from the router", res, note)
	}
	t.Log(note)
	res, err = Ping(context.Background(), a, dst, PingOptions{Count: 1, TTL: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Received != 1 {
		t.Fatalf("ttl 2: got %+v, want 1/1", res)
	}
}

func TestPingPeerDown(t *testing.T) {
	l := newTrafficLab(t)
	setLinkDown(t, l.b, l.ib)
	start := time.Now()
	res, err := Ping(context.Background(), l.a, trB4, PingOptions{Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 3 || res.Received != 0 || len(res.RTTs) != 0 || res.Loss() != 1 {
		t.Fatalf("got %+v, want 0/3", res)
	}
	t.Logf("%+v in %v (3 × 100ms timeout)", res, time.Since(start))
}

// TestPingConcurrent runs pingers side by side in one namespace: each one
// counts its own replies only.
func TestPingConcurrent(t *testing.T) {
	l := newTrafficLab(t)
	var wg sync.WaitGroup
	results := make([]PingResult, 4)
	errs := make([]error, len(results))
	for i := range results {
		dst := trB4
		if i%2 == 1 {
			dst = trB6
		}
		wg.Go(func() { results[i], errs[i] = Ping(context.Background(), l.a, dst, PingOptions{Count: 5}) })
	}
	wg.Wait()
	for i, res := range results {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if res.Sent != 5 || res.Received != 5 {
			t.Errorf("pinger %d: got %+v, want 5/5", i, res)
		}
	}
}

// TestPingCancel cancels a ping while it waits for a reply that will not
// come: it must return at once with ctx.Err(), not after its timeout.
func TestPingCancel(t *testing.T) {
	l := newTrafficLab(t)
	l.misdirectReplies(t)
	sniff := newSniffer(t, l.b, unix.IPPROTO_ICMP)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		res PingResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := Ping(ctx, l.a, trB4, PingOptions{Count: 1, Timeout: time.Hour})
		done <- result{res, err}
	}()
	sniff.next(t, trA4) // the echo request reached b
	cancel()
	var r result
	select {
	case r = <-done:
	case <-time.After(sniffWait):
		t.Fatalf("Ping still running %v after its context was cancelled", sniffWait)
	}
	if !errors.Is(r.err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", r.err)
	}
	if r.res.Sent != 1 || r.res.Received != 0 {
		t.Fatalf("got %+v, want 0/1", r.res)
	}
}

func TestProbe(t *testing.T) {
	l := newTrafficLab(t)
	for _, c := range []struct {
		proto string
		dst   netip.Addr
		port  int
	}{
		{"tcp", trB4, 8080}, {"udp", trB4, 8080}, {"icmp", trB4, 0},
		{"tcp", trB6, 8080}, {"udp", trB6, 0}, {"icmp", trB6, 0},
		{"TCP", trB4, 0},
	} {
		t.Run(fmt.Sprintf("%s/%v/%d", c.proto, c.dst, c.port), func(t *testing.T) {
			o := ProbeOptions{Proto: c.proto, Src: l.a, DstNs: l.b, Dst: c.dst, Port: c.port, Message: "hello"}
			res, err := Probe(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			if !res.Delivered || res.Reason != "" {
				t.Fatalf("got %+v, want delivered", res)
			}
			if c.port != 0 {
				requirePortFree(t, l.b, strings.ToLower(c.proto), c.dst, c.port)
			}
		})
	}
	// The same port again, at once: nothing of the last probe is in the
	// way.
	for range 3 {
		res, err := Probe(context.Background(), ProbeOptions{Proto: "tcp", Src: l.a, DstNs: l.b, Dst: trB4, Port: 8080})
		if err != nil || !res.Delivered {
			t.Fatalf("repeated tcp probe: %+v, %v", res, err)
		}
	}
}

// requirePortFree fails unless dst:port can be bound in ns, proving that
// the probe closed its listener. A UDP socket cannot share the port with
// a leftover one; a TCP listener can share it with TIME_WAIT connections
// (SO_REUSEADDR) but not with a leftover listener.
func requirePortFree(tb testing.TB, ns *Netns, proto string, dst netip.Addr, port int) {
	tb.Helper()
	if proto == "icmp" {
		return
	}
	ap := netip.AddrPortFrom(dst, uint16(port)).String()
	err := ns.Do(func() error {
		if proto == "udp" {
			c, err := net.ListenPacket("udp", ap)
			if err != nil {
				return err
			}
			return c.Close()
		}
		ln, err := net.Listen("tcp", ap)
		if err != nil {
			return err
		}
		return ln.Close()
	})
	if err != nil {
		tb.Fatalf("%s %s still in use after the probe: %v", proto, ap, err)
	}
}

// TestProbeDropped drops traffic two ways, neither with BPF: replies sent
// to a MAC address nobody has, and the receiving link set down.
func TestProbeDropped(t *testing.T) {
	for _, how := range []string{"misdirected replies", "receiver down"} {
		t.Run(how, func(t *testing.T) {
			l := newTrafficLab(t)
			if how == "receiver down" {
				setLinkDown(t, l.b, l.ib)
			} else {
				l.misdirectReplies(t)
			}
			for _, c := range []struct {
				proto, reason string
				dst           netip.Addr
			}{
				{"tcp", "connect to 10.0.0.2:9000 timed out after 200ms", trB4},
				{"udp", "no reply within 200ms", trB4},
				{"icmp", "no reply from 10.0.0.2 within 200ms", trB4},
				{"tcp", "connect to [fd00::2]:9000 timed out after 200ms", trB6},
				{"udp", "no reply within 200ms", trB6},
				{"icmp", "no reply from fd00::2 within 200ms", trB6},
			} {
				res, err := Probe(context.Background(), ProbeOptions{
					Proto: c.proto, Src: l.a, DstNs: l.b, Dst: c.dst, Port: 9000, Timeout: 200 * time.Millisecond,
				})
				if how == "receiver down" && c.dst.Is6() {
					// Setting a link down flushes its IPv6 addresses
					// (sysctl keep_addr_on_down is off).
					if !errors.Is(err, ErrNotFound) {
						t.Errorf("%s %v: got %+v, %v; want ErrNotFound", c.proto, c.dst, res, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s %v: %v", c.proto, c.dst, err)
				}
				if res.Delivered || res.Reason != c.reason {
					t.Errorf("%s %v: got %+v, want reason %q", c.proto, c.dst, res, c.reason)
				}
				requirePortFree(t, l.b, c.proto, c.dst, 9000)
			}
		})
	}
}

// TestProbeRoutes makes a's routes refuse traffic to b.
func TestProbeRoutes(t *testing.T) {
	for _, c := range []struct {
		route int
		want  map[string]string // proto: reason
	}{
		{unix.RTN_BLACKHOLE, map[string]string{
			"tcp":  "connect to 10.0.0.2:9000: dropped by a blackhole route",
			"udp":  "send to 10.0.0.2:9000: dropped by a blackhole route",
			"icmp": "send to 10.0.0.2: dropped by a blackhole route",
		}},
		{unix.RTN_UNREACHABLE, map[string]string{
			"tcp":  "connect to 10.0.0.2:9000: no route to host",
			"udp":  "send to 10.0.0.2:9000: no route to host",
			"icmp": "send to 10.0.0.2: no route to host",
		}},
		{unix.RTN_PROHIBIT, map[string]string{
			"tcp":  "connect to 10.0.0.2:9000: prohibited (permission denied)",
			"udp":  "send to 10.0.0.2:9000: prohibited (permission denied)",
			"icmp": "send to 10.0.0.2: prohibited (permission denied)",
		}},
		// Delivered locally in a, where nothing listens.
		{unix.RTN_LOCAL, map[string]string{
			"tcp": "connect to 10.0.0.2:9000: connection refused",
			"udp": "10.0.0.2:9000: connection refused",
		}},
	} {
		t.Run(fmt.Sprint(c.route), func(t *testing.T) {
			l := newTrafficLab(t)
			addRoute(t, l.a, trB4, c.route)
			for proto, want := range c.want {
				res, err := Probe(context.Background(), ProbeOptions{Proto: proto, Src: l.a, DstNs: l.b, Dst: trB4, Port: 9000})
				if err != nil {
					t.Fatalf("%s: %v", proto, err)
				}
				if res.Delivered || res.Reason != want {
					t.Errorf("%s: got %+v, want reason %q", proto, res, want)
				}
				requirePortFree(t, l.b, proto, trB4, 9000)
			}
		})
	}
}

func TestProbeBadDestination(t *testing.T) {
	l := newTrafficLab(t)
	for _, proto := range []string{"tcp", "udp", "icmp"} {
		_, err := Probe(context.Background(), ProbeOptions{Proto: proto, Src: l.a, DstNs: l.b, Dst: netip.MustParseAddr("10.0.0.9"), Port: 9000})
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "10.0.0.9 is not an address in namespace "+l.b.Name()) {
			t.Errorf("%s: got %v, want 10.0.0.9 not found", proto, err)
		}
		// a's own address is not b's either.
		_, err = Probe(context.Background(), ProbeOptions{Proto: proto, Src: l.a, DstNs: l.b, Dst: trA4, Port: 9000})
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s to a's address in b: got %v, want ErrNotFound", proto, err)
		}
	}

	// A tentative IPv6 address is there but not usable yet.
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP("fd00::3"), Mask: net.CIDRMask(64, 128)}}
	if err := l.b.Handle().AddrAdd(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: l.ib}}, addr); err != nil {
		t.Fatal(err)
	}
	_, err := Probe(context.Background(), ProbeOptions{Proto: "tcp", Src: l.a, DstNs: l.b, Dst: netip.MustParseAddr("fd00::3")})
	if err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("tentative address: got %v", err)
	}
	t.Log(err)

	// A port already taken.
	var ln net.Listener
	if err := l.b.Do(func() (err error) { ln, err = net.Listen("tcp", "10.0.0.2:9000"); return }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = Probe(context.Background(), ProbeOptions{Proto: "tcp", Src: l.a, DstNs: l.b, Dst: trB4, Port: 9000})
	if err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Errorf("port in use: got %v", err)
	}

	for _, o := range []ProbeOptions{
		{Proto: "sctp", Src: l.a, DstNs: l.b, Dst: trB4},
		{Proto: "tcp", Src: l.a, Dst: trB4},
		{Proto: "tcp", DstNs: l.b, Dst: trB4},
		{Proto: "tcp", Src: l.a, DstNs: l.b},
		{Proto: "udp", Src: l.a, DstNs: l.b, Dst: trB4, Port: 70000},
		{Proto: "udp", Src: l.a, DstNs: l.b, Dst: trB4, Timeout: -1},
	} {
		if _, err := Probe(context.Background(), o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

// TestProbeCancel cancels probes stuck waiting for replies that b sends
// astray: each must return ctx.Err() at once and leave no listener behind.
func TestProbeCancel(t *testing.T) {
	l := newTrafficLab(t)
	l.misdirectReplies(t)
	for _, c := range []struct {
		proto string
		ipp   int
	}{{"tcp", unix.IPPROTO_TCP}, {"udp", unix.IPPROTO_UDP}, {"icmp", unix.IPPROTO_ICMP}} {
		t.Run(c.proto, func(t *testing.T) {
			sniff := newSniffer(t, l.b, c.ipp)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := Probe(ctx, ProbeOptions{Proto: c.proto, Src: l.a, DstNs: l.b, Dst: trB4, Port: 9000, Timeout: time.Hour})
				done <- err
			}()
			sniff.next(t, trA4)
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("got %v, want context.Canceled", err)
				}
			case <-time.After(sniffWait):
				t.Fatalf("Probe still running %v after its context was cancelled", sniffWait)
			}
			requirePortFree(t, l.b, c.proto, trB4, 9000)
		})
	}
}

func BenchmarkPing(b *testing.B) {
	l := newTrafficLab(b)
	for b.Loop() {
		res, err := Ping(context.Background(), l.a, trB4, PingOptions{Count: 1})
		if err != nil {
			b.Fatal(err)
		}
		if res.Received != 1 {
			b.Fatalf("got %+v", res)
		}
	}
}

func BenchmarkProbeTCP(b *testing.B) {
	l := newTrafficLab(b)
	for b.Loop() {
		res, err := Probe(context.Background(), ProbeOptions{Proto: "tcp", Src: l.a, DstNs: l.b, Dst: trB4, Port: 9000})
		if err != nil {
			b.Fatal(err)
		}
		if !res.Delivered {
			b.Fatalf("got %+v", res)
		}
	}
}
