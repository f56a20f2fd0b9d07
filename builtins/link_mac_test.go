package builtins

import (
	"strings"
	"testing"
)

// TestLinkSetMAC sets the MACs of a veth pair's ends, one of them while it
// is set up in the same call, and reads them back from the link and from
// ip; then the addresses link.set(mac=) refuses.
func TestLinkSetMAC(t *testing.T) {
	out := mustRun(t, `
a = netns("$Pa")
b = netns("$Pb")
p = veth_pair("m0", "m1", primary_ns = a, peer_ns = b)
p.primary.set(mac = "02:00:00:00:00:01")
p.peer.set(mac = "02:00:00:00:00:02", up = True)
print(p.primary.mac, p.peer.mac)
print("link/ether 02:00:00:00:00:02" in exec(b, "ip link show dev m1"))
`)
	if want := "02:00:00:00:00:01 02:00:00:00:00:02\nTrue\n"; out != want {
		t.Errorf("output %q, want %q", out, want)
	}
	for _, tc := range []struct{ src, want string }{
		{`veth_pair("u0", "u1").primary.set(mac = "02:00:00:00:00")`, `is not an Ethernet address like "02:00:00:00:00:01"`},
		{`veth_pair("u0", "u1").primary.set(mac = 2)`, "mac"},
		{`veth_pair("u0", "u1").primary.set(mac = "ff:ff:ff:ff:ff:ff")`, "multicast"},
		{`netkit_pair("u0", "u1").peer.set(mac = "02:00:00:00:00:01")`, `l3 mode has no MAC address; make the pair with mode="l2"`},
	} {
		if _, err := runRecorded(t, tc.src); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.src, err, tc.want)
		}
	}
}
