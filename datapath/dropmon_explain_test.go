package datapath

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// pingFault sets sysctls and adds a route to dst via gateway in ns, then
// pings target from a once and returns what is said of its drops.
func (d *dropLab) pingFault(t *testing.T, ns *Netns, sysctls map[string]string, dst, via, target string) []DropReport {
	t.Helper()
	for key, v := range sysctls {
		if err := d.lab.Sysctl(ns, key, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.lab.AddRoute(ns, RouteSpec{Dst: netip.MustParsePrefix(dst), Via: netip.MustParseAddr(via)}); err != nil {
		t.Fatal(err)
	}
	return d.dropsOf(t, "icmp", target, func() {
		// The result is a lost echo; what the test checks is what was
		// said of it. The log tells a ping that never went out (its
		// error) from one whose drop the monitor missed.
		res, err := d.lab.Ping(context.Background(), d.a, netip.MustParseAddr(target), PingOptions{Count: 1, Timeout: 500 * time.Millisecond}, 5*time.Second)
		t.Logf("ping %s: %+v, %v", target, res, err)
	})
}

// TestDropMonitorRPFilter checks a drop by strict rp_filter: r reaches a
// through b (a /32 route), so a's packets arriving on dm_ra fail the
// check. A first ping lets a learn r's MAC: r would ignore a's ARP
// requests too.
func TestDropMonitorRPFilter(t *testing.T) {
	d := newDropLab(t, true)
	if res, err := d.lab.Ping(context.Background(), d.a, netip.MustParseAddr("10.213.2.2"), PingOptions{Count: 1, Timeout: time.Second}, time.Second); err != nil || res.Received != 1 {
		t.Fatalf("ping before rp_filter: %+v, %v", res, err)
	}
	reps := d.pingFault(t, d.r, map[string]string{"net.ipv4.conf.all.rp_filter": "1", "net.ipv4.conf.dm_ra.rp_filter": "1"},
		"10.213.1.2/32", "10.213.2.2", "10.213.2.2")
	r := findDrop(t, reps, "IP_RPFILTER")
	want := `in netns "` + d.r.Name() + `" on dm_ra: rp_filter rejected the source address (IP_RPFILTER)`
	if r.String() != want {
		t.Errorf("said %q, want %q", r.String(), want)
	}
}

// TestDropMonitorNeighbourFailed checks a drop for want of a neighbour: a
// route through a gateway nobody answers ARP for, asked once.
func TestDropMonitorNeighbourFailed(t *testing.T) {
	d := newDropLab(t, true)
	reps := d.pingFault(t, d.a, map[string]string{"net.ipv4.neigh.dm_a.retrans_time_ms": "100", "net.ipv4.neigh.dm_a.mcast_solicit": "1"},
		"10.213.9.0/24", "10.213.1.99", "10.213.9.1")
	r := findDrop(t, reps, "NEIGH_FAILED")
	want := `in netns "` + d.a.Name() + `" on dm_a: no answer to ARP or neighbour solicitation (NEIGH_FAILED)`
	if r.String() != want {
		t.Errorf("said %q, want %q", r.String(), want)
	}
}

// TestRouteBack checks what is said of a flow lost without a drop: b
// without a route to a, and a without a route to b.
func TestRouteBack(t *testing.T) {
	d := newDropLab(t, true)
	m, err := d.lab.DropMonitor()
	if err != nil {
		t.Fatal(err)
	}
	dst := netip.MustParseAddr("10.213.2.2")
	if said, _ := d.lab.RouteBack(d.a, d.b, dst); said != "" {
		t.Errorf("with routes both ways: %q", said)
	}
	dflt := netip.MustParsePrefix("0.0.0.0/0")
	if err := d.lab.RemoveRoute(d.b, RouteSpec{Dst: dflt, Via: netip.MustParseAddr("10.213.2.1")}); err != nil {
		t.Fatal(err)
	}
	if said, sent := d.lab.RouteBack(d.a, d.b, dst); said != `netns "`+d.b.Name()+`" has no route back to 10.213.1.2` || !sent {
		t.Errorf("b without a route back: %q, sent %v", said, sent)
	}
	if err := d.lab.RemoveRoute(d.a, RouteSpec{Dst: dflt, Via: netip.MustParseAddr("10.213.1.1")}); err != nil {
		t.Fatal(err)
	}
	if said, sent := d.lab.RouteBack(d.a, d.b, dst); said != `netns "`+d.a.Name()+`" has no route to 10.213.2.2` || sent {
		t.Errorf("a without a route: %q, sent %v", said, sent)
	}
	m.Sync()
	for _, x := range m.Since(0) {
		if routeQuery(x) {
			t.Errorf("the monitor kept the packet of a route lookup: %+v", x)
		}
	}
}

// TestDropMonitorNoRoute checks a router without a route to where a
// packet goes.
func TestDropMonitorNoRoute(t *testing.T) {
	d := newDropLab(t, true)
	reps := d.dropsOf(t, "icmp", "10.213.77.1", func() {
		d.lab.Ping(context.Background(), d.a, netip.MustParseAddr("10.213.77.1"), PingOptions{Count: 1, Timeout: 200 * time.Millisecond}, time.Second)
	})
	if len(reps) != 1 || reps[0].Ns != d.r.Name() || reps[0].Dev != "dm_ra" || reps[0].Why != "no route" {
		t.Errorf("drops at a router without the route: %v", reps)
	}
}

// TestRouteBackRefusingRoutes checks what is said of a flow a route that
// carries nothing refused: in the source (nothing was sent) and back.
func TestRouteBackRefusingRoutes(t *testing.T) {
	d := newDropLab(t, true)
	dst := netip.MustParseAddr("10.213.2.2")
	for _, c := range []struct {
		typ  int
		name string
	}{{unix.RTN_BLACKHOLE, "a blackhole"}, {unix.RTN_UNREACHABLE, "an unreachable"}, {unix.RTN_PROHIBIT, "a prohibit"}} {
		addRoute(t, d.b, netip.MustParseAddr("10.213.1.2"), c.typ)
		want := `netns "` + d.b.Name() + `" has ` + c.name + ` route back to 10.213.1.2`
		if said, sent := d.lab.RouteBack(d.a, d.b, dst); said != want || !sent {
			t.Errorf("b with %s route back: %q, sent %v; want %q", c.name, said, sent, want)
		}
		addRoute(t, d.a, dst, c.typ)
		want = `netns "` + d.a.Name() + `" has ` + c.name + ` route to 10.213.2.2`
		if said, sent := d.lab.RouteBack(d.a, d.b, dst); said != want || sent {
			t.Errorf("a with %s route: %q, sent %v; want %q", c.name, said, sent, want)
		}
		for _, r := range []struct {
			ns   *Netns
			addr string
		}{{d.a, "10.213.2.2/32"}, {d.b, "10.213.1.2/32"}} {
			if err := r.ns.Handle().RouteDel(&netlink.Route{Dst: prefixToIPNet(netip.MustParsePrefix(r.addr)), Type: c.typ}); err != nil {
				t.Fatal(err)
			}
		}
	}
}
