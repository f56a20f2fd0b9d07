package builtins

import (
	"strings"
	"testing"
)

// TestDevicesRecorded creates each device on the recording backend and
// checks what the script sees and the arguments refused.
func TestDevicesRecorded(t *testing.T) {
	out, err := runRecorded(t, `
n = netns("$Pn")
p = veth_pair("u0", "u1", primary_ns = n)
vx = vxlan("vx0", 42, remote = "192.168.7.2", local = "192.168.7.1", dev = p.primary, ns = n)
vx.add_remote("192.168.7.3")
t = tun("tun0", ns = n)
v = vlan(p.primary, 100)
w = vlan(p.primary, 101, name = "u0v")
print(vx.kind, vx.name, t.kind, t.name, v.kind, v.name, w.name)
`)
	if err != nil {
		t.Fatal(err)
	}
	if want := "vxlan vx0 tun tun0 vlan u0.100 u0v\n"; out != want {
		t.Errorf("output %q, want %q", out, want)
	}
	twoNs := `a = netns("$Pa")
b = netns("$Pb")
p = veth_pair("u0", "u1", primary_ns = a, peer_ns = b)
`
	for _, tc := range []struct{ src, want string }{
		{`vxlan("vx0", 0)`, "vni=0 is not a VXLAN id"},
		{`vxlan("vx0", 1 << 24)`, "is not a VXLAN id"},
		{`vxlan("vx0", 1, port = 0)`, "port=0 is not a port number"},
		{`vxlan("vx0", 1, remote = "10.0.0.0/24")`, "is a prefix"},
		{`vxlan("vx0", 1, remote = "239.0.0.1")`, "only unicast remotes"},
		{`vxlan("vx0", 1, remote = "10.0.0.1", local = "fd00::1")`, "different address families"},
		{twoNs + `vxlan("vx0", 1, dev = p.primary)`, "dev u0 is in namespace"},
		{`vxlan("vx0", 1, dev = "eth0")`, "must be a link"},
		{`vxlan("vx0", 1).add_remote("ff02::1")`, "a remote is a unicast address"},
		{twoNs + `p.primary.add_remote("10.0.0.1")`, "u0 is a veth link; only a vxlan link"},
		{`tun("")`, "interface name is empty"},
		{`tun("a-very-long-tun-name")`, "15"},
		{`tun("t0"); tun("t0")`, "already created a link named"},
		{twoNs + `vlan(p.primary, 0)`, "id=0 is not a VLAN id"},
		{twoNs + `vlan(p.primary, 4095)`, "is not a VLAN id"},
		{twoNs + `vlan("u0", 5)`, "must be a link"},
		{`p = veth_pair("a-long-link0", "x1")` + "\n" + `vlan(p.primary, 4000)`, "give name="},
	} {
		if _, err := runRecorded(t, tc.src); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.src, err, tc.want)
		}
	}
}

// TestDevicesKernel creates a vxlan with an FDB remote in a host the lab
// did not create and checks it with ip and bridge. (The microVMs, which
// run this package too, have no /dev/net/tun: datapath's TestTun runs
// tun on the host.)
func TestDevicesKernel(t *testing.T) {
	out := mustRun(t, `
vx = vxlan("vx0", 42, port = 4790)
vx.add_remote("192.168.7.3")
print(vx.kind)
print("vxlan id 42" in exec(host, "ip -d link show dev vx0"), "dstport 4790" in exec(host, "ip -d link show dev vx0"))
print("dst 192.168.7.3" in exec(host, "bridge fdb show dev vx0"))
`)
	if want := "vxlan\nTrue True\nTrue\n"; out != want {
		t.Errorf("output %q, want %q", out, want)
	}
}
