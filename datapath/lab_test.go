package datapath

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nkscript/nkscript/internal/testenv"
)

var nameSeq atomic.Int32

// uniqueName returns a namespace or link name no other test or process
// uses: a prefix, the pid and a counter, at most 15 bytes.
func uniqueName(prefix string) string {
	n := fmt.Sprintf("%s%x%x", prefix, os.Getpid()%0xfffff, nameSeq.Add(1))
	if len(n) > 15 {
		n = n[len(n)-15:]
	}
	return n
}

// testLab returns a lab whose "host" is a fresh anonymous namespace, so
// nothing the test does reaches the real host's links or settings.
func testLab(t *testing.T) (*Lab, *Netns) {
	t.Helper()
	return testLabWith(t, LabConfig{})
}

// testLabWith is testLab with cfg's other settings.
func testLabWith(t *testing.T, cfg LabConfig) (*Lab, *Netns) {
	t.Helper()
	host := testNetns(t)
	cfg.JournalDir, cfg.Script, cfg.Host = t.TempDir(), t.Name(), host
	lab, err := NewLab(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Error(err)
		}
	})
	return lab, host
}

// ipJSON runs `ip -j -d ARGS` inside ns and decodes its output.
func ipJSON(t *testing.T, ns *Netns, args ...string) []map[string]any {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		testenv.Skipf(t, "iproute2 is not installed")
	}
	cmd := exec.Command("ip", append([]string{"-j", "-d"}, args...)...)
	var out, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &stderr
	// The child starts on the locked thread inside ns and inherits it.
	if err := ns.Do(cmd.Start); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, stderr.String())
	}
	var v []map[string]any
	if err := json.Unmarshal([]byte(out.String()), &v); err != nil {
		t.Fatalf("ip %v: %v\n%s", args, err, out.String())
	}
	return v
}

func linkNames(links []map[string]any) []string {
	var names []string
	for _, l := range links {
		names = append(names, l["ifname"].(string))
	}
	return names
}

func TestLabNetnsLifecycle(t *testing.T) {
	lab, _ := testLab(t)
	name := uniqueName("nkt-ns")
	ns, err := lab.Netns(name)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), name) {
		t.Fatalf("ip netns list does not show %s:\n%s", name, out)
	}
	// lo is up in a lab namespace.
	lo := ipJSON(t, ns, "link", "show", "lo")
	if flags := fmt.Sprint(lo[0]["flags"]); !strings.Contains(flags, "UP") {
		t.Fatalf("lo flags %s, want UP", flags)
	}
	if _, err := lab.Netns(name); !errors.Is(err, ErrExists) {
		t.Fatalf("second netns %q: got %v, want ErrExists", name, err)
	}
	journal := lab.JournalPath()
	if err := lab.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(NetnsDir + "/" + name); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s/%s still exists after Close: %v", NetnsDir, name, err)
	}
	if _, err := os.Stat(journal); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("journal %s still exists after Close", journal)
	}
}

func TestLabNeverAdoptsExistingNetns(t *testing.T) {
	requireRoot(t)
	name := uniqueName("nkt-ex")
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	before, err := statNsPath(NetnsDir + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	lab, _ := testLab(t)
	if _, err := lab.Netns(name); !errors.Is(err, ErrExists) {
		t.Fatalf("netns %q that exists: got %v, want ErrExists", name, err)
	}
	if err := lab.Close(); err != nil {
		t.Fatal(err)
	}
	after, err := statNsPath(NetnsDir + "/" + name)
	if err != nil || after != before {
		t.Fatalf("the existing namespace was touched: before %v, after %v (%v)", before, after, err)
	}
}

func TestLabVethPairInPlace(t *testing.T) {
	lab, host := testLab(t)
	a, err := lab.Netns(uniqueName("nkt-a"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := lab.Netns(uniqueName("nkt-b"))
	if err != nil {
		t.Fatal(err)
	}
	pair, err := lab.NewPair(PairOptions{Kind: Veth, Primary: "va", Peer: "vb", PrimaryNs: a, PeerNs: b, MTU: 1400})
	if err != nil {
		t.Fatal(err)
	}
	la := ipJSON(t, a, "link", "show", "va")
	lb := ipJSON(t, b, "link", "show", "vb")
	if kind := la[0]["linkinfo"].(map[string]any)["info_kind"]; kind != "veth" {
		t.Errorf("va kind %v, want veth", kind)
	}
	if la[0]["mtu"].(float64) != 1400 || lb[0]["mtu"].(float64) != 1400 {
		t.Errorf("mtu %v/%v, want 1400", la[0]["mtu"], lb[0]["mtu"])
	}
	if int(la[0]["ifindex"].(float64)) != pair.Primary.Index() || int(lb[0]["ifindex"].(float64)) != pair.Peer.Index() {
		t.Errorf("ifindexes %v/%v, pair says %d/%d", la[0]["ifindex"], lb[0]["ifindex"], pair.Primary.Index(), pair.Peer.Index())
	}
	// Nothing appeared in the lab's host namespace.
	if names := linkNames(ipJSON(t, host, "link", "show")); len(names) != 1 || names[0] != "lo" {
		t.Errorf("host namespace has links %v, want only lo", names)
	}
	// Duplicate names are refused before the kernel is asked.
	if _, err := lab.NewPair(PairOptions{Kind: Veth, Primary: "va", Peer: "vc", PrimaryNs: a, PeerNs: b}); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate link name: got %v, want ErrExists", err)
	}
	if _, err := lab.NewPair(PairOptions{Kind: Veth, Primary: "a-name-over-15-bytes", Peer: "x", PrimaryNs: a}); err == nil || !strings.Contains(err.Error(), "at most 15") {
		t.Errorf("long name: got %v", err)
	}
}

func TestLabHostLinkDeletedByIdentity(t *testing.T) {
	lab, host := testLab(t)
	task, err := lab.Netns(uniqueName("nkt-t"))
	if err != nil {
		t.Fatal(err)
	}
	pair, err := lab.NewPair(PairOptions{Kind: Veth, Primary: "nk0", Peer: "task0", PeerNs: task})
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.AddAddr(pair.Primary, netip.MustParsePrefix("10.9.0.1/24")); err != nil {
		t.Fatal(err)
	}
	if err := lab.SetUp(pair.Primary, true); err != nil {
		t.Fatal(err)
	}
	if err := lab.Sysctl(host, "net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	if err := lab.AddRoute(host, RouteSpec{Dst: netip.MustParsePrefix("10.10.0.0/24"), Via: netip.MustParsePrefix("10.9.0.2/32").Addr()}); err != nil {
		t.Fatal(err)
	}
	// The journal names the host link by namespace, ifindex, name, kind.
	_, entries, err := ReadJournal(lab.JournalPath())
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, e := range entries {
		ops = append(ops, e.Op())
		if k, ok := e.(*LinkRecord); ok && (k.NS != host.ID() || k.Ifindex != pair.Primary.Index() || k.Name != "nk0" || k.Kind != "veth") {
			t.Errorf("journal link record %+v does not identify nk0 in the host", k)
		}
	}
	if got := strings.Join(ops, ","); got != "netns-tree,netns,link,sysctl,route" {
		t.Errorf("journal ops %s, want netns-tree,netns,link,sysctl,route", got)
	}
	if err := lab.Close(); err != nil {
		t.Fatal(err)
	}
	if names := linkNames(ipJSON(t, host, "link", "show")); len(names) != 1 {
		t.Errorf("host namespace still has links %v after Close", names)
	}
	if v, err := ReadSysctl(host, "net.ipv4.ip_forward"); err != nil || v != "0" {
		t.Errorf("ip_forward after Close = %q (%v), want 0 restored", v, err)
	}
}

func TestLabSysctlRestore(t *testing.T) {
	lab, host := testLab(t)
	if err := lab.Sysctl(host, "net.ipv4.ip_default_ttl", "100"); err != nil {
		t.Fatal(err)
	}
	if err := lab.Sysctl(host, "net.ipv4.tcp_syncookies", "0"); err != nil {
		t.Fatal(err)
	}
	// Someone else changes the TTL after the run did: theirs wins.
	if err := writeSysctl(host, "net.ipv4.ip_default_ttl", "200"); err != nil {
		t.Fatal(err)
	}
	if err := lab.Close(); err != nil {
		t.Fatal(err)
	}
	if v, _ := ReadSysctl(host, "net.ipv4.tcp_syncookies"); v != "1" {
		t.Errorf("tcp_syncookies = %q after Close, want the previous 1 restored", v)
	}
	if v, _ := ReadSysctl(host, "net.ipv4.ip_default_ttl"); v != "200" {
		t.Errorf("ip_default_ttl = %q after Close, want 200 (changed by someone else, left alone)", v)
	}
}

func TestSysctlKeys(t *testing.T) {
	lab, host := testLab(t)
	for _, bad := range []string{"kernel.hostname", "net..ipv4", "/etc/passwd", "net.ipv4.nope", ""} {
		if err := lab.Sysctl(host, bad, "1"); err == nil {
			t.Errorf("sysctl %q: no error", bad)
		}
	}
}

func TestLabFaultInjection(t *testing.T) {
	lab, host := testLabWith(t, LabConfig{Faults: &FaultPlan{At: 2}})
	if _, err := lab.Netns(uniqueName("nkt-f")); err != nil {
		t.Fatalf("operation 1 failed: %v", err)
	}
	_, err := lab.NewPair(PairOptions{Kind: Veth, Primary: "f0", Peer: "f1"})
	if err == nil || !strings.Contains(err.Error(), "injected fault at operation 2") {
		t.Fatalf("operation 2: got %v, want the injected fault", err)
	}
	if names := linkNames(ipJSON(t, host, "link", "show")); len(names) != 1 {
		t.Errorf("the faulted operation created links %v", names)
	}
}

// TestCleanupKilledBeforeLinkRecord: a run killed between creating a pair
// from the host into its namespace and journaling the host end left only
// the namespace's record. Cleanup deletes that end before it returns,
// rather than leaving it to the kernel's asynchronous namespace teardown.
func TestCleanupKilledBeforeLinkRecord(t *testing.T) {
	host := testNetns(t)
	name := uniqueName("nkt-kl")
	ns, recs := treeNetns(t, name)
	k := &kernel{}
	if _, _, err := k.CreatePair(PairOptions{Kind: Veth, Primary: "out0", Peer: "in0", PrimaryNs: host, PeerNs: ns}); err != nil {
		t.Fatal(err)
	}
	// A pair between two outside namespaces is not the run's to delete.
	if _, _, err := k.CreatePair(PairOptions{Kind: Veth, Primary: "keep0", Peer: "keep1", PrimaryNs: host, PeerNs: host}); err != nil {
		t.Fatal(err)
	}
	ns.Close()
	var log strings.Builder
	u := newUndoer(host, map[NsID]*Netns{host.id: host}, &log)
	u.crashed = true
	if err := recs[1].undo(u); err != nil {
		t.Fatal(err)
	}
	names := linkNames(ipJSON(t, host, "link", "show"))
	if slices.Contains(names, "out0") {
		t.Errorf("the host end of the pair into the run's namespace survived cleanup: links %v\n%s", names, log.String())
	}
	if !slices.Contains(names, "keep0") {
		t.Errorf("cleanup deleted a pair outside the run's namespaces: links %v", names)
	}
}

func TestCleanupStaleJournal(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	// A lab whose process "died": write its journal by hand, as a run
	// of an older nkscript, which mounted its namespaces in NetnsDir
	// itself, killed right after creating one would have left it.
	name := uniqueName("nkt-k")
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { unmountNetns(NetnsDir + "/" + name) })
	id, err := statNsPath(NetnsDir + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(dir + "/1-1.journal")
	if err != nil {
		t.Fatal(err)
	}
	j := &Journal{path: f.Name(), f: f}
	// pid 1 with start time 1<<62 is not a live process: init started at 0+.
	j.write("run", RunHeader{Version: JournalVersion, PID: 1, StartTime: 1 << 62, Script: "killed.star"})
	j.Append(&NetnsRecord{Name: name, Path: NetnsDir + "/" + name, NS: id})
	// A namespace with the same name but another identity is not touched.
	other := uniqueName("nkt-o")
	if out, err := exec.Command("ip", "netns", "add", other).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", other).Run() })
	j.Append(&NetnsRecord{Name: other, Path: NetnsDir + "/" + other, NS: NsID{Dev: 1, Ino: 1}})
	// A run killed after claiming a name and before mounting there leaves
	// its placeholder, holding its marker, and maybe its claim file: both
	// are removed. A placeholder without the marker is someone else's.
	claimed, theirs := uniqueName("nkt-c"), uniqueName("nkt-t")
	claim := NetnsDir + "/.nkscript-test-" + claimed
	for path, content := range map[string]string{NetnsDir + "/" + claimed: "marker\n", claim: "marker\n", NetnsDir + "/" + theirs: ""} {
		if err := os.WriteFile(path, []byte(content), 0o444); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(path) })
	}
	j.Append(&NetnsRecord{Name: claimed, Path: NetnsDir + "/" + claimed, NS: NsID{Dev: 2, Ino: 2}, Claim: claim, Marker: "marker\n"})
	j.Append(&NetnsRecord{Name: theirs, Path: NetnsDir + "/" + theirs, NS: NsID{Dev: 2, Ino: 3}, Marker: "marker\n"})
	f.Close()

	runs, err := StaleRuns(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || runs[0].Script != "killed.star" || len(runs[0].Records) != 4 {
		t.Fatalf("stale runs %+v", runs)
	}
	var log strings.Builder
	if err := Cleanup(runs[0], &log); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(NetnsDir + "/" + name); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("netns %s survived cleanup", name)
	}
	if _, err := os.Stat(NetnsDir + "/" + other); err != nil {
		t.Errorf("netns %s (not the run's) was removed: %v", other, err)
	}
	if _, err := os.Stat(dir + "/1-1.journal"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("journal survived cleanup")
	}
	for _, gone := range []string{NetnsDir + "/" + claimed, claim} {
		if _, err := os.Stat(gone); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("placeholder %s survived cleanup", gone)
		}
	}
	if _, err := os.Stat(NetnsDir + "/" + theirs); err != nil {
		t.Errorf("a placeholder without the run's marker was removed: %v", err)
	}
	if !strings.Contains(log.String(), "deleted netns "+name) || !strings.Contains(log.String(), "left netns "+other) {
		t.Errorf("cleanup log:\n%s", log.String())
	}
}

func TestLiveRunIsNotStale(t *testing.T) {
	lab, _ := testLab(t)
	runs, err := StaleRuns(filepath.Dir(lab.JournalPath()))
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 0 {
		t.Fatalf("the running test's own journal is reported stale: %+v", runs)
	}
}

// TestProcessStaysInHostNetns checks that creating namespaces never moves
// the process's main thread (and so /proc/self/ns/net) out of the host
// namespace: goroutines that switch namespaces may be scheduled on it.
func TestProcessStaysInHostNetns(t *testing.T) {
	requireRoot(t)
	host, err := HostNetns()
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	for i := 0; i < 300; i++ {
		ns, err := NewAnonNetns()
		if err != nil {
			t.Fatal(err)
		}
		ns.Close()
		if id, err := statNsPath("/proc/self/ns/net"); err != nil || id != host.ID() {
			t.Fatalf("after %d namespaces /proc/self/ns/net is %v (%v), want the host's %v", i+1, id, err, host.ID())
		}
	}
}

// TestCloseUndoOrder checks the order Close undoes things in: last done,
// first undone, with a run of independent steps (namespaces) at once but
// never across the steps around it, and every error reported.
func TestCloseUndoOrder(t *testing.T) {
	lab, err := NewLab(LabConfig{JournalDir: t.TempDir(), Script: t.Name(), Host: testNetns(t)})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []string
	step := func(name string, fail bool) func() error {
		return func() error {
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			if fail {
				return errors.New("boom")
			}
			return nil
		}
	}
	push := func(name string, independent, fail bool) {
		lab.undo = append(lab.undo, undoStep{rec: &stepRecord{name, step(name, fail)}, independent: independent})
	}
	push("A", false, false)
	for i := range 40 {
		push(fmt.Sprintf("B%d", i), true, i == 7)
	}
	push("C", false, false)
	for i := range 3 {
		push(fmt.Sprintf("D%d", i), true, false)
	}
	err = lab.Close()
	if err == nil || !strings.Contains(err.Error(), "cleanup step B7: boom") {
		t.Errorf("Close = %v, want the error of B7", err)
	}
	group := func(s string) int { return strings.Index("DCBA", s[:1]) }
	if len(order) != 45 {
		t.Fatalf("%d steps ran, want 45: %v", len(order), order)
	}
	for i := 1; i < len(order); i++ {
		if group(order[i]) < group(order[i-1]) {
			t.Fatalf("%s undone after %s: %v", order[i], order[i-1], order)
		}
	}
}

// stepRecord is a record whose undo is a test's function.
type stepRecord struct {
	name string
	fn   func() error
}

func (r *stepRecord) Op() string         { return "step" }
func (r *stepRecord) String() string     { return r.name }
func (r *stepRecord) undo(*undoer) error { return r.fn() }

// TestLabClosesAfterPanicInCreate: a backend that panics while the lab
// creates a link outside its namespaces (the panic recovered above the
// lab, as builtins do) leaves the lab able to Close: no lock stays held.
// Before, a panic in CreateBridge left Close waiting for good.
func TestLabClosesAfterPanicInCreate(t *testing.T) {
	for _, create := range []func(*Lab) error{
		func(l *Lab) error { _, err := l.NewBridge(nil, "pbr0", nil, 0); return err },
		func(l *Lab) error { _, err := l.NewTun(nil, "ptun0"); return err },
		func(l *Lab) error {
			_, err := l.NewPair(PairOptions{Kind: Veth, Primary: "pv0", Peer: "pv1"})
			return err
		},
	} {
		// Not testLab: its cleanup would wait on the lock for good.
		lab, err := NewLab(LabConfig{JournalDir: t.TempDir(), Host: testNetns(t), Faults: &FaultPlan{At: 1, Panic: true}})
		if err != nil {
			t.Fatal(err)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Error("the injected panic did not happen")
				}
			}()
			create(lab)
		}()
		done := make(chan error, 1)
		go func() { done <- lab.Close() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Close did not return after a panic in the backend: a lock is still held")
		}
	}
}
