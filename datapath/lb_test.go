package datapath

import (
	"testing"
)

// TestRunLBv6 balances an IPv6 VIP over IPv6 backends, beside an IPv4
// VIP, and leaves the packets as they are (direct server return).
func TestRunLBv6(t *testing.T) {
	p := loadBundled(t, "lb")
	if err := mapOf(t, p, "vip_v6").Put(int64(0), map[string]any{"addr": "fd00:100::5"}); err != nil {
		t.Fatal(err)
	}
	if err := mapOf(t, p, "vip").Put(int64(0), map[string]any{"addr": "192.168.100.5"}); err != nil {
		t.Fatal(err)
	}
	checkRuns(t, p, []runCase{{"to the v6 VIP, no backends", tcpSYN(t, "fd00::2", "fd00:100::5", 80), "DROP"}})
	for i := range 3 {
		if err := mapOf(t, p, "backends_v6").Put(int64(i), map[string]any{"ifindex": int64(1), "addr": "fd00:1::2"}); err != nil {
			t.Fatal(err)
		}
	}
	checkRuns(t, p, []runCase{
		{"tcp to the v6 VIP", tcpSYN(t, "fd00::2", "fd00:100::5", 80), "REDIRECT"},
		{"udp to the v6 VIP", udpTo(t, "fd00::2", "fd00:100::5", 53), "REDIRECT"},
		{"ping to the v6 VIP", echo(t, "fd00::2", "fd00:100::5"), "REDIRECT"},
		{"v6 elsewhere", tcpSYN(t, "fd00::2", "fd00:1::2", 80), "NEXT"},
		{"to the v4 VIP: no v4 backends", tcpSYN(t, "10.0.0.2", "192.168.100.5", 80), "DROP"},
	})
	if err := mapOf(t, p, "backends_v6").Put(int64(0), map[string]any{"addr": "10.0.0.1"}); err == nil {
		t.Error("an IPv4 address in backends_v6: no error")
	}
}

// TestRunLBHoles empties each slot of three backends in turn: the VIP
// stays served while any backend is left, wherever the empty slots are.
func TestRunLBHoles(t *testing.T) {
	p := loadBundled(t, "lb")
	if err := mapOf(t, p, "vip").Put(int64(0), map[string]any{"addr": "192.168.100.5"}); err != nil {
		t.Fatal(err)
	}
	backends := mapOf(t, p, "backends")
	put := func(slots ...int) {
		t.Helper()
		for i := range 16 {
			if _, err := backends.Delete(int64(i)); err != nil {
				t.Fatal(err)
			}
		}
		for _, i := range slots {
			if err := backends.Put(int64(i), map[string]any{"ifindex": int64(i + 1), "addr": "10.0.1.2"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	flows := func(want string) []runCase {
		var cs []runCase
		for port := range uint16(8) {
			cs = append(cs, runCase{"flow", tcpSYN(t, "10.0.0.2", "192.168.100.5", 80+port), want})
		}
		return cs
	}
	for _, slots := range [][]int{{1, 2}, {0, 2}, {0, 1}, {2}, {1}, {0}, {15}, {3, 9}} {
		put(slots...)
		checkRuns(t, p, flows("REDIRECT"))
	}
	put()
	checkRuns(t, p, flows("DROP"))
}
