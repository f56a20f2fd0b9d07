package datapath

import (
	"slices"
	"strings"
	"testing"
)

// killPoint is the kernel backend that, right after it creates a link,
// keeps the journal as it is then: what a run killed at that instant
// would leave for nkscript cleanup.
type killPoint struct {
	Backend
	lab  **Lab
	left [][]Record
}

func (k *killPoint) keep() {
	_, recs, err := ReadJournal((*k.lab).journal.Path())
	if err != nil {
		panic(err)
	}
	k.left = append(k.left, recs)
}

func (k *killPoint) CreateBridge(ns *Netns, name string, mtu, index int) (int, error) {
	i, err := k.Backend.CreateBridge(ns, name, mtu, index)
	k.keep()
	return i, err
}

func (k *killPoint) CreatePair(o PairOptions) (int, int, error) {
	a, b, err := k.Backend.CreatePair(o)
	k.keep()
	return a, b, err
}

// A run killed right after the kernel made a link in a namespace it did
// not create has journaled the link already, so cleanup deletes it: a
// bridge, and a pair with both ends there. Links in other namespaces of
// the same names are not touched.
func TestCleanupKilledRightAfterCreatingOutside(t *testing.T) {
	var lab *Lab
	kp := &killPoint{Backend: NewKernel(nil), lab: &lab}
	lab, host := testLabWith(t, LabConfig{Backend: kp})
	if _, err := lab.NewBridge(nil, "kbr0", nil, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := lab.NewPair(PairOptions{Kind: Veth, Primary: "kout0", Peer: "kout1"}); err != nil {
		t.Fatal(err)
	}
	if len(kp.left) != 2 {
		t.Fatalf("%d creations seen, want 2", len(kp.left))
	}
	for i, recs := range kp.left {
		var log strings.Builder
		u := newUndoer(host, map[NsID]*Netns{host.id: host}, &log)
		u.crashed = true
		for _, r := range recs {
			if _, ok := r.(*LinkRecord); ok {
				if err := r.undo(u); err != nil {
					t.Fatal(err)
				}
			}
		}
		gone := []string{"kbr0", "kout0"}[i]
		if names := linkNames(ipJSON(t, host, "link", "show")); slices.Contains(names, gone) {
			t.Errorf("killed right after creating %s, cleanup left it: links %v\n%s", gone, names, log.String())
		}
	}
}
