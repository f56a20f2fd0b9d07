package datapath

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nkscript/nkscript/internal/testenv"
)

// openFds is the number of file descriptors the process has open.
func openFds(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestManyNamespacesBoundedFds builds a chain of 1,500 namespaces (veth
// pairs between neighbours, addresses, a sysctl and a route in each,
// links waited for) and checks that the process's descriptors stay under
// a bound that does not grow with the number of namespaces, and come
// back to where they were once the lab is closed.
func TestManyNamespacesBoundedFds(t *testing.T) {
	requireRoot(t)
	const n = 1500
	// The cache's bound, twice over for what is pinned at the same time,
	// plus the test's own: far below the two a namespace that holding
	// every namespace's handles costs.
	const bound = 4*nsHandlesMax + 64
	lab, _ := testLab(t)
	before := openFds(t)
	most := before
	sample := func() {
		if c := openFds(t); c > most {
			most = c
		}
	}
	nss := make([]*Netns, n)
	for i := range nss {
		ns, err := lab.Netns(uniqueName("fd"))
		if err != nil {
			t.Fatal(err)
		}
		nss[i] = ns
		if i%100 == 0 {
			sample()
		}
	}
	for i := 1; i < n; i++ {
		p, err := lab.NewPair(PairOptions{Kind: Veth, Primary: fmt.Sprintf("r%d", i), Peer: fmt.Sprintf("l%d", i), PrimaryNs: nss[i-1], PeerNs: nss[i]})
		if err != nil {
			t.Fatal(err)
		}
		for j, k := range []*Link{p.Primary, p.Peer} {
			a := netip.AddrFrom4([4]byte{10, byte(i >> 6), byte(i << 2), byte(j + 1)})
			if err := lab.AddAddr(k, netip.PrefixFrom(a, 30)); err != nil {
				t.Fatal(err)
			}
			if err := lab.SetUp(k, true); err != nil {
				t.Fatal(err)
			}
		}
		if i%100 == 0 {
			sample()
		}
	}
	for i, ns := range nss {
		if err := lab.Sysctl(ns, "net.ipv4.ip_forward", "1"); err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			via := netip.AddrFrom4([4]byte{10, byte(i >> 6), byte(i << 2), 1})
			if err := lab.AddRoute(ns, RouteSpec{Dst: netip.MustParsePrefix("10.255.0.0/16"), Via: via}); err != nil {
				t.Fatal(err)
			}
		}
		if i%100 == 0 {
			sample()
		}
	}
	if err := lab.WaitReady(context.Background(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	sample()
	if most > bound {
		t.Errorf("with %d namespaces the process had up to %d descriptors open (%d before the lab's namespaces); want at most %d", n, most, before, bound)
	}
	if err := lab.Close(); err != nil {
		t.Fatal(err)
	}
	for _, ns := range nss {
		if _, err := os.Lstat(ns.Path()); !os.IsNotExist(err) {
			t.Fatalf("%s left behind after Close (%v)", ns.Path(), err)
		}
	}
	// The pool's goroutine closes a spare it was making when it is done.
	after := openFds(t)
	for deadline := time.Now().Add(2 * time.Second); after > before && time.Now().Before(deadline); after = openFds(t) {
		time.Sleep(10 * time.Millisecond)
	}
	if after > before {
		t.Errorf("%d descriptors open after Close, %d before the lab's namespaces", after, before)
	}
	t.Logf("%d namespaces: at most %d descriptors open (%d before)", n, most, before)
}

// TestProcWorkerHoldsNoNamespaces checks that the proc worker's mount
// namespace (see procWorker) holds no copy of the lab's namespace
// mounts, which would keep a deleted namespace alive, and that sysctls
// go through it.
func TestProcWorkerHoldsNoNamespaces(t *testing.T) {
	requireRoot(t)
	lab, _ := testLab(t)
	a, err := lab.Netns(uniqueName("pw"))
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.Sysctl(a, "net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	if theProcWorker() == nil {
		testenv.Skipf(t, "no proc worker on this machine")
	}
	b, err := lab.Netns(uniqueName("pw"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []*Netns{a, b} {
		if v, err := ReadSysctl(ns, "net.ipv4.ip_forward"); err != nil || v != map[*Netns]string{a: "1", b: "0"}[ns] {
			t.Errorf("ip_forward in %s: %q, %v", ns.Name(), v, err)
		}
	}
	own, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	workers := 0
	for _, task := range tasks {
		dir := "/proc/self/task/" + task.Name()
		if mnt, err := os.Readlink(dir + "/ns/mnt"); err != nil || mnt == own {
			continue
		}
		workers++
		info, err := os.ReadFile(dir + "/mountinfo")
		if err != nil {
			t.Fatal(err)
		}
		for _, ns := range []*Netns{a, b} {
			if strings.Contains(string(info), " "+ns.Path()+" ") {
				t.Errorf("the proc worker's mount namespace holds %s", ns.Path())
			}
		}
	}
	if workers != 1 {
		t.Errorf("%d threads in a mount namespace of their own, want the proc worker's", workers)
	}
}
