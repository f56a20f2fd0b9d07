package builtins

import (
	"fmt"
	"strings"
	"testing"
)

// routerLab is a router attached in the namespace $P-r, whose links are
// r0 (10.0.1.1/24) and r1 (10.0.2.1/24), and a link c0 in $P-c.
const routerLab = `
r = netns("$P-r")
c = netns("$P-c")
a = veth_pair("r0", "r0p", primary_ns = r)
a.primary.addr("10.0.1.1/24").up()
b = veth_pair("r1", "c0", primary_ns = r, peer_ns = c)
b.primary.addr("10.0.2.1/24").up()
b.peer.addr("10.0.2.2/24").up()
router = program("policy_router")
attach(router, a.primary, "egress")
`

// TestPolicyErrors checks policy()'s arguments on the recording backend.
func TestPolicyErrors(t *testing.T) {
	for i, tc := range []struct{ src, want string }{
		{`policy(router, src = "10.10.1.0", via = b.primary)`, `src="10.10.1.0" has no prefix length; write "10.10.1.0/24" for the subnet or "10.10.1.0/32" for the one address`},
		{`policy(router, src = "10.10.0.0", via = b.primary)`, `write "10.10.0.0/16" for the subnet or "10.10.0.0/32" for the one address`},
		{`policy(router, src = "10.10.1.5", via = b.primary)`, `src="10.10.1.5" has no prefix length; write "10.10.1.5/32" for the one address`},
		{`policy(router, dst = "fd00:9::", via = b.primary)`, `dst="fd00:9::" has no prefix length; write "fd00:9::/32" for the subnet or "fd00:9::/128" for the one address`},
		{`policy(router, src = "10.10.1.1/24", via = b.primary)`, `src="10.10.1.1/24" has host bits set; did you mean "10.10.1.0/24"?`},
		{`policy(router, src = "10.10.1.0/24")`, `policy: missing argument for via`},
		{`policy(router, via = b.primary)`, `give either src (a source policy) or dst (a destination policy)`},
		{`policy(router, src = "10.0.0.0/8", dst = "10.0.0.0/8", via = b.primary)`, `give either src`},
		{`policy(router, src = "10.0.0.0/8", via = b.primary, dport = 443)`, `dport=443 needs proto="tcp", "udp" or "sctp"`},
		{`policy(router, src = "10.0.0.0/8", via = b.primary, proto = "icmp", dport = 1)`, `dport=1 needs proto=`},
		{`policy(router, src = "10.0.0.0/8", via = b.primary, proto = "gre")`, `proto="gre" is not a protocol a policy can match; use "icmp", "icmpv6", "sctp", "tcp" or "udp"`},
		{`policy(router, src = "fd00::/8", via = b.primary, proto = "icmp")`, `proto="icmp" is not an IP protocol of fd00::/8's family`},
		{`policy(router, src = "10.0.0.0/8", via = b.primary, next_hop = "fd00::1")`, `next_hop fd00::1 and 10.0.0.0/8 are of different address families`},
		{`policy(router, src = "10.0.0.0/8", via = b.peer)`, `via=link("c0", ns=netns("$P-c")) is in namespace netns("$P-c"), but program("policy_router") is attached in namespace netns("$P-r"), whose links are "r0", "r0p", "r1": packets can only leave the router's namespace by one of its devices`},
		{`policy(router, src = "10.0.0.0/8", via = b.primary, next_hop = "10.0.9.1")`, `next_hop 10.0.9.1 is on no subnet of the links of namespace netns("$P-r") (r0 10.0.1.1/24, r1 10.0.2.1/24)`},
	} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			_, err := runRecorded(t, routerLab+tc.src)
			if err == nil {
				t.Fatalf("%s\n  no error, want %q", tc.src, tc.want)
			}
			if got := testPrefix.ReplaceAllString(err.Error(), "$$P-"); !strings.Contains(got, tc.want) {
				t.Errorf("%s\n  error %q\n  want  %q", tc.src, got, tc.want)
			}
		})
	}
}

// TestPolicyValues installs policies of each kind on the recording
// backend and reads their attributes.
func TestPolicyValues(t *testing.T) {
	out, err := runRecorded(t, routerLab+`
web = policy(router, src = "10.10.1.0/24", via = b.primary, proto = "tcp", dport = 443, next_hop = "10.0.2.2")
lan = policy(router, dst = "192.168.0.0/16", via = b.primary)
any = policy(router, src = "10.10.1.0/24", via = a.primary)
policy(router, src = "10.0.0.0/8", via = b.primary, next_hop = "fe80::1" if False else "10.0.2.9")
for p in [web, lan, any]:
    print(p, p.src, p.dst, p.proto, p.dport, p.next_hop)
web.remove()
any.remove()
`)
	if err != nil {
		t.Fatal(err)
	}
	want := `policy(from 10.10.1.0/24 tcp port 443 via "r1" to 10.0.2.2) 10.10.1.0/24 None tcp 443 10.0.2.2
policy(to 192.168.0.0/16 via "r1" to the destination) None 192.168.0.0/16 None None None
policy(from 10.10.1.0/24 via "r0" to the destination) 10.10.1.0/24 None None None None
`
	if out != want {
		t.Errorf("output\n%s\nwant\n%s", out, want)
	}
}
