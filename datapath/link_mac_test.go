package datapath

import (
	"net"
	"strings"
	"testing"
)

// TestSetMAC checks the addresses SetMAC refuses before the kernel sees
// them and the command --dry-run writes for one it accepts.
func TestSetMAC(t *testing.T) {
	var out strings.Builder
	lab, err := NewLab(LabConfig{Backend: NewShell(&out, "t.star"), Script: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	ns, err := lab.Netns("m")
	if err != nil {
		t.Fatal(err)
	}
	v, err := lab.NewPair(PairOptions{Kind: Veth, Primary: "m0", Peer: "m1", PeerNs: ns})
	if err != nil {
		t.Fatal(err)
	}
	l3, err := lab.NewPair(PairOptions{Kind: Netkit, Primary: "k0", Peer: "k1", PeerNs: ns})
	if err != nil {
		t.Fatal(err)
	}
	l2, err := lab.NewPair(PairOptions{Kind: Netkit, Mode: "l2", Primary: "k2", Peer: "k3", PeerNs: ns})
	if err != nil {
		t.Fatal(err)
	}
	mac := func(s string) net.HardwareAddr {
		m, err := net.ParseMAC(s)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	for _, tc := range []struct {
		k    *Link
		mac  net.HardwareAddr
		want string
	}{
		{v.Primary, mac("01:00:5e:00:00:01"), "multicast"},
		{v.Primary, mac("00:00:00:00:00:00"), "all-zero"},
		{v.Primary, mac("02:00:5e:10:00:00:00:01"), "6 bytes"},
		{l3.Peer, mac("02:00:00:00:00:01"), `k1 address 02:00:00:00:00:01: a netkit device in l3 mode has no MAC address; make the pair with mode="l2"`},
	} {
		if err := lab.SetMAC(tc.k, tc.mac); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SetMAC(%s, %s) = %v, want an error with %q", tc.k.Name(), tc.mac, err, tc.want)
		}
	}
	if err := lab.SetMAC(v.Peer, mac("02:00:00:00:00:02")); err != nil {
		t.Fatal(err)
	}
	if err := lab.SetMAC(l2.Peer, mac("02:00:00:00:00:03")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ip -n m link set m1 address 02:00:00:00:00:02\n", "ip -n m link set k3 address 02:00:00:00:00:03\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dry run lacks %q:\n%s", want, out.String())
		}
	}
}
