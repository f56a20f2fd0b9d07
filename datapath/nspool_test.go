package datapath

import (
	"testing"
	"time"
)

// waitSpare waits until the pool has a spare ready and returns its
// identity, leaving it in the pool.
func waitSpare(t *testing.T, p *nsPool) NsID {
	t.Helper()
	select {
	case ns := <-p.spares:
		id := ns.ID()
		p.spares <- ns
		return id
	case <-time.After(10 * time.Second):
		t.Fatal("no spare namespace after 10s")
	}
	return NsID{}
}

// TestPrefetchTakenOver checks that a lab given a Prefetch takes over its
// pool and names the namespace made in the background on its first
// netns() call.
func TestPrefetchTakenOver(t *testing.T) {
	requireRoot(t)
	p := StartPrefetch()
	defer p.Close()
	lab, _ := testLab(t) // a lab without one first: NewLab must not touch p
	if lab.b.(*kernel).pool != nil {
		t.Fatal("a lab without Prefetch has a pool before its third namespace")
	}
	lab, err := NewLab(LabConfig{JournalDir: t.TempDir(), Script: t.Name(), Host: testNetns(t), Prefetch: p})
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	if p.pool != nil || lab.b.(*kernel).pool == nil {
		t.Fatal("the lab did not take the prefetch over")
	}
	spare := waitSpare(t, lab.b.(*kernel).pool)
	ns, err := lab.Netns(uniqueName("pf"))
	if err != nil {
		t.Fatal(err)
	}
	if ns.ID() != spare {
		t.Errorf("first netns is %v, not the prefetched %v", ns.ID(), spare)
	}
	p.Close() // taken over: a no-op
}

// TestNsPoolReplacesTaken checks that the pool replaces a spare taken,
// makes nothing more while none is taken, and hands out nothing once
// closed.
func TestNsPoolReplacesTaken(t *testing.T) {
	requireRoot(t)
	p := startNsPool(1)
	first := waitSpare(t, p)
	// No credit left: nothing else is made until a take.
	time.Sleep(20 * time.Millisecond)
	if n := len(p.spares); n != 1 {
		t.Fatalf("%d spares ready with one credit, want 1", n)
	}
	a := p.take()
	if a == nil || a.ID() != first {
		t.Fatalf("take = %v, want the spare %v", a, first)
	}
	defer a.Close()
	second := waitSpare(t, p)
	if second == first {
		t.Fatal("the replacement is the namespace taken")
	}
	p.close()
	if ns := p.take(); ns != nil {
		ns.Close()
		t.Error("take after close returned a namespace")
	}
	p.close() // idempotent
}
