package datapath

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// The microbenchmarks of the paths `nkscript --profile` shows a lab's
// time going to (make bench runs them and compares variants with
// benchstat). Each builds what it needs in namespaces of its own.

// benchLab is testLab for benchmarks: a lab whose "host" is a fresh
// anonymous namespace.
func benchLab(b *testing.B) *Lab {
	b.Helper()
	host := testNetns(b)
	lab, err := NewLab(LabConfig{JournalDir: b.TempDir(), Script: b.Name(), Host: host})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := lab.Close(); err != nil {
			b.Error(err)
		}
	})
	return lab
}

// BenchmarkSysctl is Lab.Sysctl in a namespace of the lab: read the old
// value, write the new one.
func BenchmarkSysctl(b *testing.B) {
	lab := benchLab(b)
	ns, err := lab.Netns(uniqueName("bs"))
	if err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		i++
		if err := lab.Sysctl(ns, "net.ipv4.ip_default_ttl", fmt.Sprint(64+i%2)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNetns is Lab.Netns: a named namespace with its loopback up.
// From the third on they come from the pool of spares.
func BenchmarkNetns(b *testing.B) {
	lab := benchLab(b)
	for b.Loop() {
		if _, err := lab.Netns(uniqueName("bn")); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVethPair is Lab.NewPair for veth pairs between two
// namespaces of the lab, the step the chain lab repeats N times.
func BenchmarkVethPair(b *testing.B) {
	lab := benchLab(b)
	a, err := lab.Netns(uniqueName("bva"))
	if err != nil {
		b.Fatal(err)
	}
	c, err := lab.Netns(uniqueName("bvb"))
	if err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		i++
		if _, err := lab.NewPair(PairOptions{Kind: Veth, Primary: fmt.Sprintf("a%d", i), Peer: fmt.Sprintf("b%d", i), PrimaryNs: a, PeerNs: c}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWaitReady is the wait before the first packet, on a lab of
// ten namespaces in a chain whose links are all up already: what every
// ping() or probe after setup pays.
func BenchmarkWaitReady(b *testing.B) {
	lab, links := chainLab(b, 10)
	for b.Loop() {
		resetLinks(b, lab, links)
		if err := lab.WaitReady(context.Background(), 5*time.Second); err != nil {
			b.Fatal(err)
		}
	}
}

// chainLab builds n namespaces joined in a chain by veth pairs, addressed
// (IPv4) and up, and waits for them once.
func chainLab(b *testing.B, n int) (*Lab, []*Link) {
	lab := benchLab(b)
	var nss []*Netns
	for range n {
		ns, err := lab.Netns(uniqueName("bw"))
		if err != nil {
			b.Fatal(err)
		}
		nss = append(nss, ns)
	}
	var links []*Link
	for i := 1; i < len(nss); i++ {
		p, err := lab.NewPair(PairOptions{Kind: Veth, Primary: fmt.Sprintf("r%d", i), Peer: fmt.Sprintf("l%d", i), PrimaryNs: nss[i-1], PeerNs: nss[i]})
		if err != nil {
			b.Fatal(err)
		}
		for j, k := range []*Link{p.Primary, p.Peer} {
			if err := lab.AddAddr(k, netip.MustParsePrefix(fmt.Sprintf("10.9.%d.%d/30", i, j+1))); err != nil {
				b.Fatal(err)
			}
			if err := lab.SetUp(k, true); err != nil {
				b.Fatal(err)
			}
			links = append(links, k)
		}
	}
	if err := lab.WaitReady(context.Background(), 5*time.Second); err != nil {
		b.Fatal(err)
	}
	return lab, links
}

// resetLinks sets the links up again, as a script's .up() does, outside
// the timed part: the kernel has nothing to do, and the next WaitReady
// waits for them again.
func resetLinks(b *testing.B, lab *Lab, links []*Link) {
	b.StopTimer()
	defer b.StartTimer()
	for _, k := range links {
		if err := lab.SetUp(k, true); err != nil {
			b.Fatal(err)
		}
	}
}
