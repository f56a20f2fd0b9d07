package datapath

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// addPolicies installs each policy in p.
func addPolicies(t *testing.T, p *Program, pols ...Policy) {
	t.Helper()
	for _, pol := range pols {
		if err := p.AddPolicy(pol); err != nil {
			t.Fatalf("AddPolicy(%s): %v", pol.Match(), err)
		}
	}
}

// TestRunPolicyMatches runs policy_router on packets that its protocol,
// port and destination policies match or miss. A policy with ifindex 0
// hands the packet on (NEXT) and one with an ifindex redirects it, so
// the verdict tells which policy won.
func TestRunPolicyMatches(t *testing.T) {
	p := loadBundled(t, "policy_router")
	src := netip.MustParsePrefix("10.10.1.0/24")
	addPolicies(t, p,
		Policy{Src: src, Ifindex: 0},
		Policy{Src: src, Proto: 6, DPort: 443, Ifindex: 1, NextHop: netip.MustParseAddr("10.0.2.1")},
		Policy{Src: netip.MustParsePrefix("10.10.2.0/24"), Proto: 17, Ifindex: 1},
		Policy{Src: netip.MustParsePrefix("10.10.2.0/24"), Proto: 17, DPort: 53, Ifindex: 0},
		Policy{Dst: netip.MustParsePrefix("192.168.0.0/16"), Ifindex: 1},
		Policy{Dst: netip.MustParsePrefix("192.168.7.0/24"), Proto: 6, DPort: 22, Ifindex: 0},
		Policy{Src: netip.MustParsePrefix("fd00:1::/64"), Proto: 6, DPort: 443, Ifindex: 1},
		Policy{Dst: netip.MustParsePrefix("fd00:9::/32"), Proto: 58, Ifindex: 1},
	)
	checkRuns(t, p, []runCase{
		{"tcp 443 from the subnet: the port policy", tcpSYN(t, "10.10.1.7", "10.0.9.9", 443), "REDIRECT"},
		{"tcp 80 from the subnet: the source-only policy", tcpSYN(t, "10.10.1.7", "10.0.9.9", 80), "NEXT"},
		{"udp 443 from the subnet: the source-only policy", udpTo(t, "10.10.1.7", "10.0.9.9", 443), "NEXT"},
		{"udp 80 from 10.10.2.0/24: the protocol policy", udpTo(t, "10.10.2.7", "10.0.9.9", 80), "REDIRECT"},
		{"udp 53 from 10.10.2.0/24: the port beats the protocol", udpTo(t, "10.10.2.7", "10.0.9.9", 53), "NEXT"},
		{"tcp from 10.10.2.0/24: no policy", tcpSYN(t, "10.10.2.7", "10.0.9.9", 53), "NEXT"},
		{"to 192.168/16 from elsewhere: the destination policy", tcpSYN(t, "10.0.5.5", "192.168.1.1", 80), "REDIRECT"},
		{"to 192.168/16 from the subnet: source policies first", tcpSYN(t, "10.10.1.7", "192.168.1.1", 80), "NEXT"},
		{"tcp 443 from the subnet to 192.168/16: the source port policy", tcpSYN(t, "10.10.1.7", "192.168.1.1", 443), "REDIRECT"},
		{"tcp 22 to 192.168.7/24: the destination port policy", tcpSYN(t, "10.0.5.5", "192.168.7.1", 22), "NEXT"},
		{"tcp 23 to 192.168.7/24: the destination-only policy", tcpSYN(t, "10.0.5.5", "192.168.7.1", 23), "REDIRECT"},
		{"ping to 192.168/16", echo(t, "10.0.5.5", "192.168.7.1"), "REDIRECT"},
		{"elsewhere to elsewhere", tcpSYN(t, "10.0.5.5", "10.0.9.9", 443), "NEXT"},
		{"ipv6 tcp 443 from fd00:1::/64", tcpSYN(t, "fd00:1::7", "fd00:2::1", 443), "REDIRECT"},
		{"ipv6 tcp 80 from fd00:1::/64", tcpSYN(t, "fd00:1::7", "fd00:2::1", 80), "NEXT"},
		{"ipv6 ping to fd00:9::/32", echo(t, "fd00:1::7", "fd00:9::1"), "REDIRECT"},
		{"ipv6 udp to fd00:9::/32", udpTo(t, "fd00:1::7", "fd00:9::1", 53), "NEXT"},
	})
}

// TestPolicyEntries lists, replaces and removes policies of every kind
// and refuses ones the router cannot hold.
func TestPolicyEntries(t *testing.T) {
	p := loadBundled(t, "policy_router")
	nh := netip.MustParseAddr("10.0.2.1")
	want := []Policy{
		{Src: netip.MustParsePrefix("10.10.1.0/24"), Ifindex: 3, NextHop: nh},
		{Src: netip.MustParsePrefix("10.10.1.0/24"), Proto: 6, DPort: 443, Ifindex: 4, NextHop: nh},
		{Dst: netip.MustParsePrefix("192.168.0.0/16"), Ifindex: 5, NextHop: nh},
		{Src: netip.MustParsePrefix("fd00::/8"), Proto: 17, Ifindex: 6, NextHop: netip.IPv6Unspecified()},
		{Dst: netip.MustParsePrefix("fd00:9::/32"), Proto: 6, DPort: 22, Ifindex: 7, NextHop: netip.MustParseAddr("fd00::1")},
	}
	addPolicies(t, p, want[4], want[2], want[1], want[0], want[3])
	got, err := p.Policies()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Policies() =\n%v\nwant\n%v", got, want)
	}
	for _, pol := range want {
		if found, err := p.RemovePolicy(Policy{Src: pol.Src, Dst: pol.Dst, Proto: pol.Proto, DPort: pol.DPort}); err != nil || !found {
			t.Errorf("RemovePolicy(%s) = %v, %v", pol.Match(), found, err)
		}
	}
	if got, err := p.Policies(); err != nil || len(got) != 0 {
		t.Errorf("after removing all: %v %v", got, err)
	}
	for _, c := range []struct {
		pol  Policy
		want string
	}{
		{Policy{DPort: 80, Proto: 0, Src: netip.MustParsePrefix("10.0.0.0/8")}, "a destination port needs a protocol"},
		{Policy{}, "either a source or a destination prefix"},
		{Policy{Src: netip.MustParsePrefix("10.0.0.0/8"), Dst: netip.MustParsePrefix("10.0.0.0/8")}, "either a source or a destination prefix"},
	} {
		if err := p.AddPolicy(c.pol); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("AddPolicy(%+v) = %v, want %q", c.pol, err, c.want)
		}
	}
}
