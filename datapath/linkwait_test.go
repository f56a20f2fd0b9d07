package datapath

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// waitUpT waits for links in ns to come up, failing the test otherwise.
func waitUpT(tb testing.TB, ns *Netns, ifindexes ...int) {
	tb.Helper()
	if err := WaitOperUp(context.Background(), ns, ifindexes, 5*time.Second); err != nil {
		tb.Fatal(err)
	}
}

func TestWaitOperUp(t *testing.T) {
	a, b := testNetns(t), testNetns(t)
	ia, ib := testVeth(t, a, "a0", netip.Prefix{}, b, "b0", netip.Prefix{})
	lo, err := a.Handle().LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	// lo never reports carrier: its oper state stays UNKNOWN.
	if err := WaitOperUp(context.Background(), a, []int{ia, lo.Attrs().Index}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := WaitOperUp(context.Background(), b, []int{ib}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ns  *Netns
		idx int
	}{{a, ia}, {b, ib}} {
		l, err := c.ns.Handle().LinkByIndex(c.idx)
		if err != nil {
			t.Fatal(err)
		}
		if got := l.Attrs().OperState; got != netlink.OperUp {
			t.Errorf("%s: oper state %v after WaitOperUp, want up", l.Attrs().Name, got)
		}
	}
	if err := WaitOperUp(context.Background(), a, nil, time.Second); err != nil {
		t.Errorf("no links: %v", err)
	}
}

func TestWaitOperUpAdminDown(t *testing.T) {
	a, b := testNetns(t), testNetns(t)
	ia, _ := testVeth(t, a, "a0", netip.Prefix{}, b, "b0", netip.Prefix{})
	if err := a.Handle().LinkSetDown(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ia}}); err != nil {
		t.Fatal(err)
	}
	// A long timeout: an administratively down link must fail at once,
	// not after it.
	err := WaitOperUp(context.Background(), a, []int{ia}, time.Hour)
	if err == nil {
		t.Fatal("WaitOperUp succeeded on a link that is down")
	}
	if !errors.Is(err, ErrLinkDown) || !strings.Contains(err.Error(), "link a0 ") || !strings.Contains(err.Error(), "is down") {
		t.Errorf("error %q does not say that a0 is down", err)
	}
	t.Log(err)
}

func TestWaitOperUpTimeout(t *testing.T) {
	a, b := testNetns(t), testNetns(t)
	ia, ib := testVeth(t, a, "a0", netip.Prefix{}, b, "b0", netip.Prefix{})
	// a0 stays administratively up but loses its carrier.
	if err := b.Handle().LinkSetDown(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ib}}); err != nil {
		t.Fatal(err)
	}
	err := WaitOperUp(context.Background(), a, []int{ia}, 50*time.Millisecond)
	if err == nil {
		t.Fatal("WaitOperUp succeeded on a link whose peer is down")
	}
	if errors.Is(err, ErrLinkDown) || !strings.Contains(err.Error(), "a0 (") || !strings.Contains(err.Error(), "not up after") {
		t.Errorf("error %q does not name a0 as still not up", err)
	}
	t.Log(err)
}

func TestWaitOperUpComesUp(t *testing.T) {
	a, b := testNetns(t), testNetns(t)
	ia, ib := testVeth(t, a, "a0", netip.Prefix{}, b, "b0", netip.Prefix{})
	peer := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ib}}
	if err := b.Handle().LinkSetDown(peer); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- WaitOperUp(context.Background(), a, []int{ia}, time.Minute) }()
	if err := b.Handle().LinkSetUp(peer); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestWaitOperUpMissing(t *testing.T) {
	a := testNetns(t)
	err := WaitOperUp(context.Background(), a, []int{4242}, time.Hour)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
}

func TestWaitOperUpCancel(t *testing.T) {
	a, b := testNetns(t), testNetns(t)
	ia, ib := testVeth(t, a, "a0", netip.Prefix{}, b, "b0", netip.Prefix{})
	if err := b.Handle().LinkSetDown(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ib}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := WaitOperUp(ctx, a, []int{ia}, time.Hour)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestWaitOperUpDeleted(t *testing.T) {
	a, b := testNetns(t), testNetns(t)
	ia, ib := testVeth(t, a, "a0", netip.Prefix{}, b, "b0", netip.Prefix{})
	if err := b.Handle().LinkSetDown(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ib}}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- WaitOperUp(context.Background(), a, []int{ia}, time.Hour) }()
	if err := a.Handle().LinkDel(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ia}}); err != nil {
		t.Fatal(err)
	}
	// Whether WaitOperUp saw a0 go or never found it, it must fail
	// without waiting out its timeout.
	err := <-done
	if err == nil {
		t.Fatal("WaitOperUp succeeded on a deleted link")
	}
	t.Log(err)
}

// TestWaitOperUpIPv6 checks that WaitOperUp returns only once the kernel
// accepts neighbour solicitations for the links' IPv6 addresses, and that
// it does not wait for that on links without neighbour discovery.
func TestWaitOperUpIPv6(t *testing.T) {
	a, b := testNetns(t), testNetns(t)
	// The kernel usually joins the group within microseconds: repeat so
	// that a WaitOperUp that did not wait for it would be caught.
	for i := range 50 {
		_, ib := testVeth(t, a, fmt.Sprintf("a%d", i), netip.Prefix{}, b, fmt.Sprintf("b%d", i), netip.Prefix{})
		addr := netip.AddrFrom16([16]byte{0xfd, 15: byte(i), 14: 0xcd, 13: 0xab})
		addAddrNodad(t, b, ib, netip.PrefixFrom(addr, 64))
		waitUpT(t, b, ib)
		if want, groups, ok := joinedGroup(t, b, fmt.Sprintf("%d b%d ff0200000000000000000001ffabcd%02x", ib, i, i)); !ok {
			t.Fatalf("solicited-node group of %v not joined after WaitOperUp; want %q in:\n%s", addr, want, groups)
		}
	}

	// Without ARP there is no neighbour discovery and no group to join.
	ia, _ := testVeth(t, a, "x0", netip.Prefix{}, b, "y0", netip.Prefix{})
	if err := a.Handle().LinkSetARPOff(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ia}}); err != nil {
		t.Fatal(err)
	}
	addAddrNodad(t, a, ia, netip.MustParsePrefix("fd00::1/64"))
	if err := WaitOperUp(context.Background(), a, []int{ia}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestWaitReadyFor checks that a wait before IPv4 traffic waits for the
// links but leaves the IPv6 check pending, and that the next wait before
// IPv6 traffic does it: the group of the link's IPv6 address is joined
// when it returns.
func TestWaitReadyFor(t *testing.T) {
	lab, _ := testLab(t)
	a, err := lab.Netns(uniqueName("wra"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := lab.Netns(uniqueName("wrb"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := lab.NewPair(PairOptions{Kind: Veth, Primary: "a0", Peer: "b0", PrimaryNs: a, PeerNs: b})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []*Link{p.Primary, p.Peer} {
		if err := lab.SetUp(k, true); err != nil {
			t.Fatal(err)
		}
	}
	v6 := netip.MustParsePrefix("fd00::ab:cd12/64")
	for _, a := range []string{"10.7.0.2/24", v6.String()} {
		if err := lab.AddAddr(p.Peer, netip.MustParsePrefix(a)); err != nil {
			t.Fatal(err)
		}
	}
	pending := func() map[*Link]linkWait {
		lab.mu.Lock()
		defer lab.mu.Unlock()
		return maps.Clone(lab.pendUp)
	}

	if err := lab.WaitReadyFor(context.Background(), 5*time.Second, false); err != nil {
		t.Fatal(err)
	}
	for _, k := range []*Link{p.Primary, p.Peer} {
		if got := pending()[k]; got != waitND {
			t.Errorf("after the IPv4 wait, %s still waits for %b, want only the IPv6 check (%b)", k.Name(), got, waitND)
		}
	}

	if err := lab.WaitReadyFor(context.Background(), 5*time.Second, true); err != nil {
		t.Fatal(err)
	}
	if got := pending(); len(got) != 0 {
		t.Errorf("after the IPv6 wait, still pending: %v", got)
	}
	if want, groups, ok := joinedGroup(t, b, fmt.Sprintf("%d b0 ff0200000000000000000001ffabcd12", p.Peer.Index())); !ok {
		t.Fatalf("solicited-node group of %v not joined after the IPv6 wait; want %q in:\n%s", v6.Addr(), want, groups)
	}
}

// joinedGroup reports whether ns's /proc/net/igmp6 has a line starting
// with want ("ifindex name group"), and returns what it read.
func joinedGroup(t *testing.T, ns *Netns, want string) (string, []byte, bool) {
	t.Helper()
	var groups []byte
	if err := ns.Do(func() (err error) { groups, err = os.ReadFile("/proc/thread-self/net/igmp6"); return }); err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(groups)) {
		if f := strings.Fields(line); len(f) > 3 && strings.Join(f[:3], " ") == want {
			return want, groups, true
		}
	}
	return want, groups, false
}
