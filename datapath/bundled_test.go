package datapath

import (
	"fmt"
	"testing"

	"github.com/cilium/ebpf"
)

const verdictRedirect = 7 // TC_ACT_REDIRECT

// TestBundledPolicyRouter checks policy_router's verdicts with
// BPF_PROG_TEST_RUN: a packet from a source with a policy is redirected
// (the longest prefix wins), others go on to normal routing.
func TestBundledPolicyRouter(t *testing.T) {
	p := loadBundled(t, "policy_router")
	v4 := mapOf(t, p, "policy_routes_v4")
	if err := v4.Put("192.168.100.0/24", map[string]any{"ifindex": int64(1), "next_hop": "10.0.1.1"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		pkt  []byte
		want uint32
	}{
		{"from the VIP", tcpSYN(t, "192.168.100.5", "10.0.2.2", 80), verdictRedirect},
		{"another source", tcpSYN(t, "10.0.1.2", "10.0.2.2", 80), verdictNext},
		{"ipv6, no policy", pktEther(etherTypeIPv6, pktIPv6(protoTCP, pktTCP(1, 2))), verdictNext},
		{"arp", pktEther(etherTypeARP, make([]byte, 28)), verdictNext},
	} {
		if got := runProg(t, p, c.pkt); got != c.want {
			t.Errorf("%s: verdict %s, want %s", c.name, verdictString(got), verdictString(c.want))
		}
	}
	if s := progStats(t, p); s.Redirected != 1 || s.Passed != 3 || s.Dropped != 0 {
		t.Errorf("stats %+v, want 1 redirected, 3 passed", s)
	}
	// A more specific policy takes over; removing it falls back.
	if err := v4.Put("192.168.100.5/32", map[string]any{"ifindex": int64(0)}); err != nil {
		t.Fatal(err)
	}
	if got := runProg(t, p, tcpSYN(t, "192.168.100.5", "10.0.2.2", 80)); got != verdictNext {
		t.Errorf("/32 with ifindex 0 (no route) should hand on: %s", verdictString(got))
	}
	if _, err := v4.Delete("192.168.100.5/32"); err != nil {
		t.Fatal(err)
	}
	if got := runProg(t, p, tcpSYN(t, "192.168.100.5", "10.0.2.2", 80)); got != verdictRedirect {
		t.Errorf("after deleting the /32: %s", verdictString(got))
	}
	// IPv6 policies.
	v6 := mapOf(t, p, "policy_routes_v6")
	if err := v6.Put("fd00::1/128", map[string]any{"ifindex": int64(1)}); err != nil {
		t.Fatal(err)
	}
	if got := runProg(t, p, pktEther(etherTypeIPv6, pktIPv6(protoTCP, pktTCP(1, 2)))); got != verdictRedirect {
		t.Errorf("ipv6 from fd00::1: %s", verdictString(got))
	}
}

// TestBundledLB checks lb's verdicts: packets to the VIP are redirected
// when a backend exists and dropped when none does; others go on.
func TestBundledLB(t *testing.T) {
	p := loadBundled(t, "lb")
	toVIP := tcpSYN(t, "10.0.0.2", "192.168.100.5", 80)
	if err := mapOf(t, p, "vip").Put(int64(0), map[string]any{"addr": "192.168.100.5"}); err != nil {
		t.Fatal(err)
	}
	if got := runProg(t, p, toVIP); got != verdictDrop {
		t.Errorf("no backends: verdict %s, want drop", verdictString(got))
	}
	backends := mapOf(t, p, "backends")
	for i, b := range []string{"10.0.1.2", "10.0.2.2", "10.0.3.2"} {
		if err := backends.Put(int64(i), map[string]any{"ifindex": int64(i + 1), "addr": b}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		pkt := tcpSYN(t, "10.0.0.2", "192.168.100.5", uint16(80+i))
		if got := runProg(t, p, pkt); got != verdictRedirect {
			t.Errorf("to the VIP: verdict %s, want redirect", verdictString(got))
		}
	}
	if got := runProg(t, p, tcpSYN(t, "10.0.0.2", "10.0.1.2", 80)); got != verdictNext {
		t.Errorf("not to the VIP: %s", verdictString(got))
	}
	if s := progStats(t, p); s.Redirected != 10 || s.Dropped != 1 || s.Passed != 1 {
		t.Errorf("stats %+v, want 10 redirected, 1 dropped, 1 passed", s)
	}
}

// TestBundledMirror checks that mirror passes every packet on and, with a
// monitor device set, clones it there. The runs happen inside ns.Do, on
// another goroutine, so nothing there may stop the test: failures are
// returned and reported here.
func TestBundledMirror(t *testing.T) {
	p := loadBundled(t, "mirror")
	monitor := mapOf(t, p, "monitor")
	ns := testNetns(t)
	pkt := tcpSYN(t, "10.0.0.2", "10.0.1.2", 80)
	var off, on uint32
	err := ns.Do(func() error {
		var err error
		if off, err = kprog(p).Run(&ebpf.RunOptions{Data: pkt}); err != nil {
			return fmt.Errorf("test run, monitor off: %w", err)
		}
		// lo (ifindex 1) as the monitor: the clone goes out of it.
		if err := monitor.Put(int64(0), int64(1)); err != nil {
			return err
		}
		if on, err = kprog(p).Run(&ebpf.RunOptions{Data: pkt}); err != nil {
			return fmt.Errorf("test run, monitor on: %w", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if off != verdictNext {
		t.Errorf("monitor off: %s", verdictString(off))
	}
	if on != verdictNext {
		t.Errorf("monitor on: %s", verdictString(on))
	}
	if s := progStats(t, p); s.Passed != 2 || s.Redirected != 1 {
		t.Errorf("stats %+v, want 2 passed, 1 redirected (cloned)", s)
	}
}
