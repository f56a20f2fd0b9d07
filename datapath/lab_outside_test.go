package datapath

import (
	"encoding/json"
	"fmt"
	"os/exec"
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
	// A tun's persist flag when its record was journaled.
	persistAtRecord []string
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

// CreateDevice keeps the journal after the device is made, and, for a
// tun, at the instant its record is journaled, when its persist flag
// must still be off: a run killed then takes the device with it.
func (k *killPoint) CreateDevice(ns *Netns, d DeviceSpec) (int, error) {
	if record := d.Record; record != nil {
		d.Record = func(index int) error {
			err := record(index)
			k.persistAtRecord = append(k.persistAtRecord, tunPersists(ns, d.Name))
			return err
		}
	}
	i, err := k.Backend.CreateDevice(ns, d)
	k.keep()
	return i, err
}

// tunPersists is the persist flag of the tun device name in ns, as
// `ip -d link` shows it ("error" if it cannot tell).
func tunPersists(ns *Netns, name string) string {
	var out strings.Builder
	cmd := exec.Command("ip", "-j", "-d", "link", "show", name)
	cmd.Stdout = &out
	if ns.Do(cmd.Start) != nil || cmd.Wait() != nil {
		return "error"
	}
	var links []struct {
		Linkinfo struct {
			InfoData struct {
				Persist bool `json:"persist"`
			} `json:"info_data"`
		} `json:"linkinfo"`
	}
	if json.Unmarshal([]byte(out.String()), &links) != nil || len(links) != 1 {
		return "error"
	}
	return fmt.Sprint(links[0].Linkinfo.InfoData.Persist)
}

func (k *killPoint) CreatePair(o PairOptions) (int, int, error) {
	a, b, err := k.Backend.CreatePair(o)
	k.keep()
	return a, b, err
}

// A run killed right after the kernel made a link in a namespace it did
// not create has journaled the link already, so cleanup deletes it: a
// bridge, a pair with both ends there, and a tun device (whose ifindex
// cannot be chosen: it is journaled while the device would still go with
// the process). Links in other namespaces of the same names are not
// touched.
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
	if _, err := lab.NewTun(nil, "ktun0"); err != nil {
		t.Fatal(err)
	}
	if len(kp.left) != 3 {
		t.Fatalf("%d creations seen, want 3", len(kp.left))
	}
	if !slices.Equal(kp.persistAtRecord, []string{"false"}) {
		t.Errorf("the tun's persist flag when it was journaled: %v, want [false]", kp.persistAtRecord)
	}
	if got := tunPersists(host, "ktun0"); got != "true" {
		t.Errorf("the tun's persist flag once made: %s, want true", got)
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
		gone := []string{"kbr0", "kout0", "ktun0"}[i]
		if names := linkNames(ipJSON(t, host, "link", "show")); slices.Contains(names, gone) {
			t.Errorf("killed right after creating %s, cleanup left it: links %v\n%s", gone, names, log.String())
		}
	}
}
