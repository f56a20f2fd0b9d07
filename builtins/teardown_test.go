package builtins

import (
	"regexp"
	"strings"
	"testing"
)

var testPrefix = regexp.MustCompile(`\bb[0-9a-f]+-`)

// TestDeletedValues checks that links and namespaces the script deleted
// say so when used again (on the recording backend: no privileges).
func TestDeletedValues(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{twoHosts + "p.peer.delete()\np.primary.up()", "link v0 was deleted by the script"},
		{twoHosts + "p.primary.delete()\np.primary.delete()", "link v0 was deleted by the script"},
		{twoHosts + "ns.delete()\np.primary.addr(\"10.2.0.1/24\")", "link v0 was deleted by the script"},
		{twoHosts + "ns.delete()\nroute(\"default\", via = \"10.1.0.1\", ns = ns)", "netns $P-a was deleted by the script"},
		{twoHosts + "ns.delete()\nserve(ns, 80)", "netns $P-a was deleted by the script"},
		{twoHosts + "ns.delete()\np.primary.move(ns)", "was deleted by the script"},
		{twoHosts + "p.peer.move(ns)", "it is in namespace $P-a already"},
		{twoHosts + "n2 = netns(\"$P-b\")\nq = veth_pair(\"v1\", \"w1\", primary_ns = n2)\nq.primary.move(ns)", "already created a link named \"v1\" there"},
		{twoHosts + "ns.lo.delete()", "loopback device cannot be deleted"},
		{twoHosts + "r = rule(src = \"10.1.0.0/24\", table = 5, ns = ns)\nns.delete()\nr.remove()", "netns $P-a was deleted by the script"},
		{twoHosts + "ns.delete()\nsysctl(\"net.ipv4.ip_forward\", 1, ns = ns)", "netns $P-a was deleted by the script"},
		{twoHosts + "ns.delete()\nping(\"10.1.0.1\", src = ns)", "netns $P-a was deleted by the script"},
	} {
		_, err := runRecorded(t, tc.src)
		if err == nil || !strings.Contains(testPrefix.ReplaceAllString(err.Error(), "$$P-"), tc.want) {
			t.Errorf("%s:\n%v, want %q", tc.src, err, tc.want)
		}
	}
}

// TestDeleteAndMove deletes and moves links and deletes a namespace on
// the kernel; runOn checks that nothing is left.
func TestDeleteAndMove(t *testing.T) {
	out := mustRun(t, twoHosts+`
n2 = netns("$P-b")
q = veth_pair("w0", "w1", peer_ns = n2)
q.primary.move(ns)
print(q.primary.ns, q.primary.addrs)
q.primary.addr("10.3.0.1/24").up()
q.peer.addr("10.3.0.2/24").up()
print(ping("10.3.0.1", src = n2, count = 1).received)
p.primary.delete()
print("v0" in exec(host, "ip -o link show"))
print(len(exec(host, "ip -o link show")) > 0)
n2.delete()
print("w0" in exec(ns, "ip -o link show"))
print("$P-b" in exec(host, "ip netns list"))
`)
	want := `netns("$P-a") []
1
False
True
False
False
`
	if out != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}
}
