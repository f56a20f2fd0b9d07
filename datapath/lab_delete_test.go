package datapath

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// linkRecords are the link records of the lab's journal.
func linkRecords(t *testing.T, lab *Lab) []*LinkRecord {
	t.Helper()
	_, records, err := ReadJournal(lab.JournalPath())
	if err != nil {
		t.Fatal(err)
	}
	var out []*LinkRecord
	for _, r := range records {
		if lr, ok := r.(*LinkRecord); ok {
			out = append(out, lr)
		}
	}
	return out
}

func hostLinks(t *testing.T, ns *Netns) []string {
	t.Helper()
	return linkNames(ipJSON(t, ns, "link", "show"))
}

// TestDeleteLink deletes a pair through one end: both ends go, its
// record leaves the journal, and the deleted ends cannot be used.
func TestDeleteLink(t *testing.T) {
	lab, host := testLab(t)
	p, err := lab.NewPair(PairOptions{Kind: Veth, Primary: "d0", Peer: "d1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.DeleteLink(p.Peer); err != nil {
		t.Fatal(err)
	}
	if got := hostLinks(t, host); slices.Contains(got, "d0") || slices.Contains(got, "d1") {
		t.Errorf("ip link after delete: %v", got)
	}
	if recs := linkRecords(t, lab); len(recs) != 0 {
		t.Errorf("journal still has %v", recs)
	}
	var de *DeletedError
	if err := lab.SetUp(p.Primary, true); !errors.As(err, &de) || !strings.Contains(err.Error(), "link d0 was deleted") {
		t.Errorf("SetUp of a deleted link: %v", err)
	}
	if err := lab.DeleteLink(p.Primary); !errors.As(err, &de) {
		t.Errorf("deleting twice: %v", err)
	}
	if slices.Contains(lab.Links(), p.Primary) {
		t.Error("the lab still lists the deleted link")
	}
}

// TestMoveLink moves a device into a lab namespace and back: it is where
// it was moved, the journal names its new place (and its undo deletes
// it), and a name taken in the target is refused.
func TestMoveLink(t *testing.T) {
	lab, host := testLab(t)
	ns, err := lab.Netns(uniqueName("nkt-mv"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := lab.NewPair(PairOptions{Kind: Veth, Primary: "m0", Peer: "m1", PeerNs: ns})
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.MoveLink(p.Primary, ns); err != nil {
		t.Fatal(err)
	}
	if got := linkNames(ipJSON(t, ns, "link", "show")); !slices.Contains(got, "m0") {
		t.Errorf("ip link in %s after the move: %v", ns.name, got)
	}
	if got := hostLinks(t, host); slices.Contains(got, "m0") {
		t.Errorf("m0 is still in the host: %v", got)
	}
	if recs := linkRecords(t, lab); len(recs) != 0 {
		t.Errorf("journal after moving into the lab's namespace: %v", recs)
	}
	if err := lab.MoveLink(p.Primary, host); err != nil {
		t.Fatal(err)
	}
	recs := linkRecords(t, lab)
	if len(recs) != 1 || recs[0].NS != host.id || recs[0].Name != "m0" || recs[0].Ifindex != p.Primary.Index() {
		t.Fatalf("journal after moving back to the host: %+v, want m0 at ifindex %d in the host", recs, p.Primary.Index())
	}
	// A name the target has already is refused, and the link stays.
	if err := host.Handle().LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "z0"}, PeerName: "zz"}); err != nil {
		t.Fatal(err)
	}
	z, err := lab.NewPair(PairOptions{Kind: Veth, Primary: "z0", Peer: "z1", PrimaryNs: ns})
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.MoveLink(z.Primary, host); !errors.Is(err, ErrExists) {
		t.Errorf("moving onto a taken name: %v", err)
	}
	if z.Primary.Netns() != ns || len(linkRecords(t, lab)) != 1 {
		t.Errorf("a failed move changed the link or the journal: in %s, %v", z.Primary.Netns().name, linkRecords(t, lab))
	}
	// The undo `nkscript cleanup` runs deletes the moved pair.
	if err := recs[0].undo(newUndoer(host, map[NsID]*Netns{host.id: host}, io.Discard)); err != nil {
		t.Fatal(err)
	}
	if got := hostLinks(t, host); slices.Contains(got, "m0") {
		t.Errorf("the journal's undo left m0: %v", got)
	}
}

// TestDeleteNetns deletes a lab namespace with a server in it and a pair
// reaching into the host: the server stops, the pair goes, the journal
// forgets both, and Close afterwards leaves nothing.
func TestDeleteNetns(t *testing.T) {
	lab, host := testLab(t)
	name := uniqueName("nkt-dn")
	ns, err := lab.Netns(name)
	if err != nil {
		t.Fatal(err)
	}
	p, err := lab.NewPair(PairOptions{Kind: Veth, Primary: "n0", Peer: "n1", PeerNs: ns})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := lab.Serve(ns, "tcp", 8080, "hi")
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.DeleteNetns(host); err == nil {
		t.Error("deleting the host succeeded")
	}
	if err := lab.DeleteNetns(ns); err != nil {
		t.Fatal(err)
	}
	select {
	case <-srv.stop:
	default:
		t.Error("the server in the deleted namespace still runs")
	}
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), name) {
		t.Errorf("ip netns list after delete: %s", out)
	}
	if got := hostLinks(t, host); slices.Contains(got, "n0") {
		t.Errorf("n0 outlived its peer's namespace: %v", got)
	}
	_, records, err := ReadJournal(lab.JournalPath())
	if err != nil {
		t.Fatal(err)
	}
	// The tree the namespace was mounted in stays until Close.
	if len(records) != 1 || records[0].Op() != "netns-tree" {
		t.Errorf("journal after delete: %v, want only the namespaces' mount tree", records)
	}
	var de *DeletedError
	if _, err := lab.Exec(context.Background(), ns, []string{"true"}); !errors.As(err, &de) {
		t.Errorf("Exec in a deleted namespace: %v", err)
	}
	if err := lab.AddAddr(p.Primary, netip.MustParsePrefix("10.9.9.1/24")); !errors.As(err, &de) {
		t.Errorf("AddAddr on the host end of a deleted pair: %v", err)
	}
	if _, err := lab.Netns(name); err != nil {
		t.Errorf("the name of a deleted namespace cannot be used again: %v", err)
	}
	if err := lab.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	if got := hostLinks(t, host); !slices.Equal(got, []string{"lo"}) {
		t.Errorf("links left after Close: %v", got)
	}
}

// TestShellDeleteAndMove checks the commands --dry-run writes for a move
// and the deletes, and that the undo of what they removed leaves $NK_UNDO.
func TestShellDeleteAndMove(t *testing.T) {
	var out strings.Builder
	lab, err := NewLab(LabConfig{Backend: NewShell(&out, "t.star"), Script: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	ns, err := lab.Netns("r")
	if err != nil {
		t.Fatal(err)
	}
	p, err := lab.NewPair(PairOptions{Kind: Veth, Primary: "u0", Peer: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.MoveLink(p.Primary, ns); err != nil {
		t.Fatal(err)
	}
	if err := lab.DeleteLink(p.Primary); err != nil {
		t.Fatal(err)
	}
	if err := lab.DeleteNetns(ns); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"undo ip link del u0\nip link set u0 netns r\nNK_UNDO=${NK_UNDO/'ip link del u0; '/}\nundo ip link del u1\n",
		"ip -n r link del u0\nNK_UNDO=${NK_UNDO/'ip -n r link del u0; '/}\nNK_UNDO=${NK_UNDO/'ip link del u1; '/}\n",
		"ip netns del r\nNK_UNDO=${NK_UNDO/'ip netns del r; '/}\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dry run lacks %q:\n%s", want, out.String())
		}
	}
}
