package datapath

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// treeNetns creates a namespace named name as a lab's kernel backend does,
// in a mount tree of its own, and returns it with the records journaled
// for it: the tree's, then the namespace's. The test removes both.
func treeNetns(t *testing.T, name string) (*Netns, []Record) {
	t.Helper()
	requireRoot(t)
	var recs []Record
	record := func(r Record) error { recs = append(recs, r); return nil }
	k := &kernel{}
	ns, err := k.CreateNetns(name, record)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unlinkNetnsName(ns.mount, ns.path)
		removeNetnsTree(k.tree)
	})
	return ns, recs
}

// mountTypesUnder lists the mount points of the calling thread's mount
// namespace at or under dir, with their file system types.
func mountTypesUnder(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/thread-self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if i := slices.Index(f, "-"); i > 4 && under(f[4], dir) {
			out = append(out, f[4]+" "+f[i+1])
		}
	}
	return out
}

// TestLabNetnsNamedByLinkToTree: a lab's namespaces are mounted in a tree
// of its own and named in NetnsDir by links that iproute2 follows; Close
// removes the names and detaches the tree with every mount in it.
func TestLabNetnsNamedByLinkToTree(t *testing.T) {
	lab, _ := testLab(t)
	var names []string
	for range 3 {
		name := uniqueName("nkt-tr")
		if _, err := lab.Netns(name); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	target, err := os.Readlink(filepath.Join(NetnsDir, names[0]))
	if err != nil {
		t.Fatalf("%s is not a link: %v", names[0], err)
	}
	tree := filepath.Dir(target)
	if filepath.Dir(tree) != NetnsTreeDir {
		t.Fatalf("%s links to %s, not into a tree under %s", names[0], target, NetnsTreeDir)
	}
	want := []string{tree + " tmpfs"}
	for _, n := range names {
		want = append(want, filepath.Join(tree, n)+" nsfs")
	}
	if got := mountTypesUnder(t, tree); !slices.Equal(got, want) {
		t.Fatalf("mounts under the tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	out, err := exec.Command("ip", "-j", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	var listed []struct{ Name string }
	json.Unmarshal(out, &listed)
	for _, n := range names {
		if !slices.ContainsFunc(listed, func(e struct{ Name string }) bool { return e.Name == n }) {
			t.Errorf("ip netns list does not show %s:\n%s", n, out)
		}
	}
	if out, err := exec.Command("ip", "netns", "exec", names[1], "ip", "-br", "link", "show", "lo").CombinedOutput(); err != nil || !strings.Contains(string(out), "UP") {
		t.Errorf("ip netns exec %s: %v: %s", names[1], err, out)
	}
	if err := lab.Close(); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if _, err := os.Lstat(filepath.Join(NetnsDir, n)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s/%s is still there after Close: %v", NetnsDir, n, err)
		}
	}
	if got := mountTypesUnder(t, tree); len(got) != 0 {
		t.Errorf("mounts left under the tree after Close: %v", got)
	}
	if _, err := os.Lstat(tree); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("tree %s is still there after Close: %v", tree, err)
	}
}

// TestLabNetnsDeletedByIproute2: `ip netns del` of a lab's namespace
// removes its name and mount, and the lab's Close copes.
func TestLabNetnsDeletedByIproute2(t *testing.T) {
	lab, _ := testLab(t)
	name := uniqueName("nkt-id")
	ns, err := lab.Netns(name)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns del: %v: %s", err, out)
	}
	if _, err := os.Lstat(ns.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ip netns del left %s: %v", ns.Path(), err)
	}
	if got := mountTypesUnder(t, ns.mount); len(got) != 0 {
		t.Errorf("ip netns del left the mount: %v", got)
	}
	if err := lab.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCleanupKilledNetnsTree: `nkscript cleanup` of a run killed with
// namespaces in its tree removes their names and the tree, and leaves a
// name that another namespace took over in the meantime.
func TestCleanupKilledNetnsTree(t *testing.T) {
	host := testNetns(t)
	mine, theirs := uniqueName("nkt-km"), uniqueName("nkt-kt")
	ns, recs := treeNetns(t, mine)
	k := &kernel{tree: filepath.Dir(ns.mount)}
	var more []Record
	ns2, err := k.CreateNetns(theirs, func(r Record) error { more = append(more, r); return nil })
	if err != nil {
		t.Fatal(err)
	}
	recs = append(recs, more...)
	ns.Close()
	ns2.Close()
	// Someone deletes the second one by hand and adds their own.
	if out, err := exec.Command("ip", "netns", "del", theirs).CombinedOutput(); err != nil {
		t.Fatalf("ip netns del: %v: %s", err, out)
	}
	if out, err := exec.Command("ip", "netns", "add", theirs).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", theirs).Run() })
	theirID, err := statNsPath(filepath.Join(NetnsDir, theirs))
	if err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	u := newUndoer(host, map[NsID]*Netns{host.id: host}, &log)
	u.crashed = true
	for i := len(recs) - 1; i >= 0; i-- {
		if err := recs[i].undo(u); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Lstat(ns.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cleanup left the name %s: %v", ns.Path(), err)
	}
	if id, err := statNsPath(filepath.Join(NetnsDir, theirs)); err != nil || id != theirID {
		t.Errorf("cleanup touched %s, which another namespace has now: %v %v", theirs, id, err)
	}
	tree := filepath.Dir(ns.mount)
	if got := mountTypesUnder(t, tree); len(got) != 0 {
		t.Errorf("mounts left under the tree after cleanup: %v", got)
	}
	if _, err := os.Lstat(tree); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cleanup left the tree %s: %v\n%s", tree, err, log.String())
	}
	if !strings.Contains(log.String(), "deleted netns "+mine) || !strings.Contains(log.String(), "removed the namespaces' mount tree") {
		t.Errorf("cleanup log:\n%s", log.String())
	}
}

// TestRemoveOrphanNetnsTrees: `nkscript cleanup` removes the tree of a
// run that is gone once nothing is mounted in it, and leaves the trees of
// live runs and those that still hold a namespace.
func TestRemoveOrphanNetnsTrees(t *testing.T) {
	requireRoot(t)
	// pid 1 with start time 1<<62 is not a live process: init started at 0+.
	dead := func(n int) string { return filepath.Join(NetnsTreeDir, fmt.Sprintf("1-%d-%d", uint64(1)<<62, n)) }
	empty, emptyDir, holding := dead(int(nameSeq.Add(1))), dead(int(nameSeq.Add(1))), dead(int(nameSeq.Add(1)))
	for _, p := range []string{empty, emptyDir, holding} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { removeNetnsTree(p) })
	}
	for _, p := range []string{empty, holding} {
		if err := unix.Mount("nkscript-netns", p, "tmpfs", 0, ""); err != nil {
			t.Fatal(err)
		}
	}
	ns := testNetns(t)
	if err := mountNetns(ns.handles.file, "held", filepath.Join(holding, "held")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unmountNetns(filepath.Join(holding, "held")) })
	live, _ := treeNetns(t, uniqueName("nkt-ol"))
	live.Close()

	var log strings.Builder
	n, err := RemoveOrphanNetnsTrees(&log)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{empty: false, emptyDir: false, holding: true, filepath.Dir(live.mount): true} {
		if _, err := os.Lstat(p); (err == nil) != want {
			t.Errorf("%s: there %v, want %v\n%s", p, err == nil, want, log.String())
		}
	}
	if n < 2 || !strings.Contains(log.String(), empty) {
		t.Errorf("removed %d trees, log:\n%s", n, log.String())
	}
	if got := mountTypesUnder(t, empty); len(got) != 0 {
		t.Errorf("still mounted: %v", got)
	}
}
