package datapath

import (
	"encoding/binary"
	"reflect"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/nkscript/nkscript/internal/packet"
)

// redirectPeerRoutes loads redirect_peer with routes as a lab writes them:
// prefixes as strings, ifindexes as the values.
func redirectPeerRoutes(t *testing.T, routes map[string]map[string]int64) *Program {
	t.Helper()
	p := loadBundled(t, "redirect_peer")
	for name, entries := range routes {
		m := mapOf(t, p, name)
		for prefix, ifindex := range entries {
			if err := m.Put(prefix, ifindex); err != nil {
				t.Fatalf("%s[%s] = %d: %v", name, prefix, ifindex, err)
			}
		}
	}
	return p
}

// TestRunRedirectPeer checks redirect_peer's verdicts with
// BPF_PROG_TEST_RUN, as prog.run reports them: a packet to a destination
// in routes_v4 or routes_v6 is redirected, the longest prefix winning and
// an ifindex of 0 meaning no route; anything else goes on to normal
// routing. A test run does not carry the redirect out.
func TestRunRedirectPeer(t *testing.T) {
	p := redirectPeerRoutes(t, map[string]map[string]int64{
		"routes_v4": {"10.0.2.0/24": 3, "10.0.2.9/32": 0},
		"routes_v6": {"fd00:2::/64": 3},
	})
	checkRuns(t, p, []runCase{
		{"v4 hit", echo(t, "10.0.1.2", "10.0.2.2"), "REDIRECT"},
		{"v4 tcp hit", tcpSYN(t, "10.0.1.2", "10.0.2.7", 8080), "REDIRECT"},
		{"v4 miss", echo(t, "10.0.1.2", "10.0.1.1"), "NEXT"},
		{"v4 longer prefix without a device", echo(t, "10.0.1.2", "10.0.2.9"), "NEXT"},
		{"v4 source in a route", echo(t, "10.0.2.2", "10.0.3.2"), "NEXT"},
		{"v6 hit", echo(t, "fd00:1::2", "fd00:2::2"), "REDIRECT"},
		{"v6 udp hit", udpTo(t, "fd00:1::2", "fd00:2::53", 53), "REDIRECT"},
		{"v6 miss", echo(t, "fd00:1::2", "fd00:1::1"), "NEXT"},
		{"arp", frame(t, packet.Packet{EtherType: 0x0806, Payload: make([]byte, 28)}), "NEXT"},
	})
	if s := progStats(t, p); s.Redirected != 4 || s.Passed != 5 || s.Dropped != 0 {
		t.Errorf("stats %+v, want 4 redirected, 5 passed", s)
	}
}

// TestRunRedirectPeerIngress runs redirect_peer as tc ingress runs it, with
// the receiving device in ingress_ifindex, where it calls
// bpf_redirect_peer rather than bpf_redirect: the verdict is the same.
func TestRunRedirectPeerIngress(t *testing.T) {
	p := redirectPeerRoutes(t, map[string]map[string]int64{
		"routes_v4": {"10.0.2.2/32": 3},
		"routes_v6": {"fd00:2::2/128": 3},
	})
	for _, c := range []struct {
		name string
		pkt  []byte
		want uint32
	}{
		{"v4 hit", echo(t, "10.0.1.2", "10.0.2.2"), verdictRedirect},
		{"v4 miss", echo(t, "10.0.1.2", "10.0.2.3"), verdictNext},
		{"v6 hit", echo(t, "fd00:1::2", "fd00:2::2"), verdictRedirect},
		{"v6 miss", echo(t, "fd00:1::2", "fd00:2::3"), verdictNext},
	} {
		got, err := kprog(p).Run(&ebpf.RunOptions{Data: c.pkt, Context: ingressContext(2)})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got != c.want {
			t.Errorf("%s: verdict %s, want %s", c.name, verdictString(got), verdictString(c.want))
		}
	}
	if s := progStats(t, p); s.Redirected != 2 || s.Passed != 2 || s.Dropped != 0 {
		t.Errorf("stats %+v, want 2 redirected, 2 passed", s)
	}
}

// ingressContext is the start of a struct __sk_buff up to and including
// ingress_ifindex, the tenth __u32; BPF_PROG_TEST_RUN takes a shorter
// context and zeroes the rest.
func ingressContext(ifindex uint32) []byte {
	var ctx [10]uint32
	ctx[9] = ifindex
	b, _ := binary.Append(nil, binary.NativeEndian, ctx)
	return b
}

// TestRedirectPeerMaps checks the layout scripts see: LPM keys as
// prefixes, ifindexes as integer values, a link for its ifindex.
func TestRedirectPeerMaps(t *testing.T) {
	p := loadBundled(t, "redirect_peer")
	if got, want := p.MapNames(), []string{"routes_v4", "routes_v6", "stats"}; !reflect.DeepEqual(got, want) {
		t.Errorf("MapNames() = %v, want %v", got, want)
	}
	for name, key := range map[string]string{"routes_v4": "struct dst_key_v4 {prefixlen: __u32, addr: __u8[4]}", "routes_v6": "struct dst_key_v6 {prefixlen: __u32, addr: __u8[16]}"} {
		m := mapOf(t, p, name)
		if k, v := m.Describe(); k != key || v != "__u32" {
			t.Errorf("%s: key %q, value %q", name, k, v)
		}
		if m.Type() != "LPMTrie" {
			t.Errorf("%s: type %s", name, m.Type())
		}
	}
	v4 := mapOf(t, p, "routes_v4")
	if err := v4.Put("10.0.2.7/24", &Link{index: 5}); err != nil {
		t.Fatal(err)
	}
	items, err := v4.Items()
	if err != nil {
		t.Fatal(err)
	}
	if want := [][2]any{{"10.0.2.0/24", int64(5)}}; !reflect.DeepEqual(items, want) {
		t.Errorf("items %v, want %v", items, want)
	}
	if err := mapOf(t, p, "routes_v6").Put("10.0.2.0/24", int64(1)); err == nil {
		t.Error("an IPv4 prefix went into routes_v6")
	}
}
