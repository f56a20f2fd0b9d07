package datapath

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// bound is what these tests give an exchange that, unless a drop seen
// ends it, waits an hour: they fail, rather than hang, if none does.
const bound = time.Minute

// monitorOf returns the lab's running drop monitor.
func monitorOf(t *testing.T, lab *Lab) *DropMonitor {
	t.Helper()
	m, err := lab.DropMonitor()
	if err != nil {
		t.Fatal(err)
	}
	if !m.Active() {
		t.Fatal("the kernel backend's drop monitor is a stand-in")
	}
	return m
}

// icmpTo matches the drops of ICMP packets to or from dst.
func icmpTo(dst netip.Addr) func(Drop) bool {
	return func(d Drop) bool { return d.Proto() == "icmp" && (d.Dst == dst || d.Src == dst) }
}

// TestPingLosesEchoSeenDropped pings through a router that does not
// forward with an hour's timeout: each echo is lost as the monitor sees
// its request dropped, and the next one goes.
func TestPingLosesEchoSeenDropped(t *testing.T) {
	d := newDropLab(t, false)
	dst := netip.MustParseAddr("10.213.2.2")
	seen, stop := monitorOf(t, d.lab).SignalDrops(icmpTo(dst))
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	res, err := d.lab.Ping(ctx, d.a, dst, PingOptions{Count: 3, Timeout: time.Hour, Dropped: seen}, time.Second)
	if err != nil {
		t.Fatalf("ping: %v (the drops seen did not end the echoes)", err)
	}
	if res.Sent != 3 || res.Received != 0 {
		t.Errorf("ping: %+v, want 3 sent, 0 received", res)
	}
}

// TestPingKeepsRepliesDespiteDrops signals drops all the time to a ping
// whose replies come: a reply within the grace time still counts.
func TestPingKeepsRepliesDespiteDrops(t *testing.T) {
	d := newDropLab(t, true)
	dropped := make(chan struct{})
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case <-done:
				return
			case dropped <- struct{}{}:
			}
		}
	}()
	res, err := d.lab.Ping(context.Background(), d.a, netip.MustParseAddr("10.213.2.2"), PingOptions{Count: 3, Dropped: dropped}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 3 || res.Received != 3 {
		t.Errorf("ping: %+v, want 3 sent, 3 received", res)
	}
}

// TestWatchFlowEndsProbe probes tcp through a router that does not
// forward with an hour's timeout, under a WatchFlow: the watch cancels
// the probe's context once the monitor has seen the SYN dropped.
func TestWatchFlowEndsProbe(t *testing.T) {
	d := newDropLab(t, false)
	dst := netip.MustParseAddr("10.213.2.2")
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	w := monitorOf(t, d.lab).WatchFlow(ctx, func(x Drop) bool { return x.Proto() == "tcp" && x.Dst == dst && x.Dport == 9000 })
	defer w.Stop()
	_, err := d.lab.Probe(w.Context(), ProbeOptions{Proto: "tcp", Src: d.a, DstNs: d.b, Dst: dst, Port: 9000, Timeout: time.Hour}, false)
	if !errors.Is(err, context.Canceled) || !w.Dropped() || ctx.Err() != nil {
		t.Errorf("probe: %v, watch fired %v; want it cancelled by the watch", err, w.Dropped())
	}
}

// TestSignalDropsStandIn checks that a stand-in's signal never fires.
func TestSignalDropsStandIn(t *testing.T) {
	seen, stop := (&DropMonitor{}).SignalDrops(func(Drop) bool { return true })
	defer stop()
	select {
	case <-seen:
		t.Error("a stand-in signalled a drop")
	default:
	}
}

// TestProbeSocketErrors probes udp to an address the router has an
// unreachable route to: with SocketErrors the router's ICMP host
// unreachable ends an hour's wait; without, the probe waits its timeout.
func TestProbeSocketErrors(t *testing.T) {
	d := newDropLab(t, true)
	dst := netip.MustParseAddr("10.213.2.2")
	addRoute(t, d.r, dst, unix.RTN_UNREACHABLE)
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	o := ProbeOptions{Proto: "udp", Src: d.a, DstNs: d.b, Dst: dst, Port: 9000, Timeout: time.Hour, SocketErrors: true}
	res, err := d.lab.Probe(ctx, o, false)
	if want := "receive from 10.213.2.2:9000: no route to host"; err != nil || res.Reason != want {
		t.Errorf("with socket errors: %+v, %v; want reason %q", res, err, want)
	}
	o.Timeout, o.SocketErrors = 200*time.Millisecond, false
	res, err = d.lab.Probe(ctx, o, false)
	if want := "no reply within 200ms"; err != nil || res.Reason != want {
		t.Errorf("without: %+v, %v; want reason %q", res, err, want)
	}
}
