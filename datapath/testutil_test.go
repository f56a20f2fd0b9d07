package datapath

import (
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/nkscript/nkscript/internal/testenv"
	"github.com/vishvananda/netlink"
)

// requireRoot skips tests that need CAP_NET_ADMIN and CAP_SYS_ADMIN.
func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		testenv.Skipf(tb, "needs root: creates namespaces and links")
	}
}

// testNetns returns an anonymous namespace, with lo up, that is released
// when the test ends.
func testNetns(tb testing.TB) *Netns {
	tb.Helper()
	requireRoot(tb)
	ns, err := NewAnonNetns()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ns.Close() })
	return ns
}

// testVeth joins a and b with a veth pair named aName/bName, addresses
// each end with the given prefix (may be invalid to skip), sets both up,
// and returns the ifindexes of the two ends in their namespaces.
func testVeth(tb testing.TB, a *Netns, aName string, aAddr netip.Prefix, b *Netns, bName string, bAddr netip.Prefix) (int, int) {
	tb.Helper()
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: aName},
		PeerName:      bName,
		PeerNamespace: netlink.NsFd(b.Fd()),
	}
	if err := a.Handle().LinkAdd(veth); err != nil {
		tb.Fatalf("create veth %s/%s: %v", aName, bName, err)
	}
	setup := func(ns *Netns, name string, p netip.Prefix) int {
		l, err := ns.Handle().LinkByName(name)
		if err != nil {
			tb.Fatal(err)
		}
		if p.IsValid() {
			addr := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
			if err := ns.Handle().AddrAdd(l, addr); err != nil {
				tb.Fatal(err)
			}
		}
		if err := ns.Handle().LinkSetUp(l); err != nil {
			tb.Fatal(err)
		}
		return l.Attrs().Index
	}
	return setup(a, aName, aAddr), setup(b, bName, bAddr)
}

// kprog is the loaded program behind p, for PROG_TEST_RUN.
func kprog(p *Program) *ebpf.Program { return p.impl.(*kernelProg).prog }
