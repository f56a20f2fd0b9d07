package machine

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/nkscript/nkscript/internal/testenv"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

func TestParseAndDiff(t *testing.T) {
	before := Parse("# journal /x\nlink a\n\naddr b\nlink a\n")
	if want := []string{"addr b", "link a"}; !slices.Equal(before.Lines, want) {
		t.Fatalf("Parse: %q, want %q", before.Lines, want)
	}
	if got := Parse(before.String()); !slices.Equal(got.Lines, before.Lines) {
		t.Fatalf("Parse(String()) = %q, want %q", got.Lines, before.Lines)
	}
	after := Parse("link a\nroute c\n")
	if got, want := Diff(before, after), "+ route c\n- addr b"; got != want {
		t.Errorf("Diff = %q, want %q", got, want)
	}
	if d := Diff(after, after); d != "" {
		t.Errorf("Diff of equal states = %q", d)
	}
}

func TestParseKernelText(t *testing.T) {
	mi := "36 35 98:0 /mnt1 /mnt\\0402 rw,noatime master:1 - ext3 /dev/root rw\n" +
		"600 29 0:4 net:[4026532310] /run/netns/a rw shared:5 - nsfs nsfs rw\n"
	ms := parseMountinfo(mi)
	if len(ms) != 2 || ms[0].point != "/mnt 2" || ms[0].fstype != "ext3" || ms[1].fstype != "nsfs" {
		t.Fatalf("parseMountinfo = %+v", ms)
	}
	if ino, ok := netnsInode(ms[1].root); !ok || ino != 4026532310 {
		t.Errorf("netnsInode(%q) = %d, %v", ms[1].root, ino, ok)
	}
	if _, ok := netnsInode("mnt:[1]"); ok {
		t.Error("netnsInode accepted a mount namespace")
	}
	stat := "2322 (qemu-system-x86) S 1 2322 2322 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 3 0 265390 1 2 3"
	if comm, start, ok := parseStat(stat); !ok || comm != "qemu-system-x86" || start != "265390" {
		t.Errorf("parseStat = %q, %q, %v", comm, start, ok)
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Skipf(t, "needs root: creates namespaces and BPF programs")
	}
}

// namedNetns creates a network namespace mounted at NetnsDir/name, as
// `ip netns add` does, and deletes it when t ends.
func namedNetns(t *testing.T, name string) *nsRef {
	t.Helper()
	path := filepath.Join(NetnsDir, name)
	if err := os.MkdirAll(NetnsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Cleanup(func() {
		unix.Unmount(path, unix.MNT_DETACH)
		os.Remove(path)
	})
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		err = unix.Unshare(unix.CLONE_NEWNET)
		if err == nil {
			err = unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, "")
		}
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	n, _, err := openNs(path, name)
	if err != nil || n == nil {
		t.Fatalf("open namespace %s: %v", name, err)
	}
	t.Cleanup(n.close)
	return n
}

// loadProg loads a program that returns 0, closed when t ends.
func loadProg(t *testing.T, typ ebpf.ProgramType, name string) (*ebpf.Program, ebpf.ProgramID) {
	t.Helper()
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: name, Type: typ, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	t.Cleanup(func() { p.Close() })
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	return p, id
}

// labObjects builds in ns what a lab builds: a veth pair, an address, a
// route, a rule, a forwarding sysctl, a clsact qdisc with a BPF filter
// and a tcx program. It returns the lines a snapshot must hold for them.
func labObjects(t *testing.T, ns *nsRef) []string {
	t.Helper()
	nl := ns.nl
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "mst0", MTU: 1400}, PeerName: "mst1"}
	must(t, nl.LinkAdd(veth))
	mst0, err := nl.LinkByName("mst0")
	must(t, err)
	mst1, err := nl.LinkByName("mst1")
	must(t, err)
	must(t, nl.LinkSetUp(mst0))
	addr, _ := netlink.ParseAddr("10.213.0.1/24")
	must(t, nl.AddrAdd(mst0, addr))
	_, dst, _ := net.ParseCIDR("10.214.0.0/24")
	must(t, nl.RouteAdd(&netlink.Route{LinkIndex: mst0.Attrs().Index, Dst: dst, Gw: net.ParseIP("10.213.0.2")}))
	rule := netlink.NewRule()
	_, rule.Src, _ = net.ParseCIDR("10.213.0.0/24")
	rule.Priority, rule.Table = 1234, 100
	must(t, nl.RuleAdd(rule))
	must(t, nl.QdiscAdd(&netlink.Clsact{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: mst0.Attrs().Index, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT}}))
	cls, clsID := loadProg(t, ebpf.SchedCLS, "mst_cls")
	must(t, nl.FilterAdd(&netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: mst0.Attrs().Index, Parent: netlink.HANDLE_MIN_INGRESS, Handle: 1, Protocol: unix.ETH_P_ALL, Priority: 7},
		Fd:          cls.FD(), Name: "mst_cls", DirectAction: true,
	}))
	tcx, tcxID := loadProg(t, ebpf.SchedCLS, "mst_tcx")
	must(t, ns.do(func() error {
		l, err := link.AttachTCX(link.TCXOptions{Interface: mst1.Attrs().Index, Program: tcx, Attach: ebpf.AttachTCXIngress})
		if err == nil {
			t.Cleanup(func() { l.Close() })
		}
		return err
	}))
	must(t, ns.do(func() error {
		return os.WriteFile("/proc/sys/net/ipv4/conf/mst0/forwarding", []byte("1"), 0)
	}))
	l := ns.label
	return []string{
		"link " + l + "/mst0 veth up mtu 1400",
		"link " + l + "/mst1 veth down mtu 1400",
		"addr " + l + "/mst0 10.213.0.1/24",
		"route " + l + " inet table 254 type 1 10.214.0.0/24 via 10.213.0.2 dev mst0 proto 3 scope 0 metric 0",
		"rule " + l + " inet pref 1234 from 10.213.0.0/24 table 100",
		"qdisc " + l + "/mst0 clsact handle ffff:0 parent ingress",
		fmt.Sprintf("filter %s/mst0 parent ffff:fff2 pref 7 proto 0x3 handle 0x1 bpf mst_cls da=true prog %d SchedCLS mst_cls", l, clsID),
		fmt.Sprintf("attach %s/mst1 tcxingress prog %d SchedCLS mst_tcx", l, tcxID),
		"sysctl " + l + " net.ipv4.conf.mst0.forwarding=1",
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func missing(s State, want []string) []string {
	var out []string
	for _, w := range want {
		if !slices.Contains(s.Lines, w) {
			out = append(out, w)
		}
	}
	return out
}

// TestLocalSnapshot builds lab objects in a namespace of its own and
// checks that a local snapshot of that namespace lists each, is stable,
// and lists nothing machine-wide.
func TestLocalSnapshot(t *testing.T) {
	requireRoot(t)
	name := fmt.Sprintf("nkt-machine-%d", os.Getpid())
	ns := namedNetns(t, name)
	journals := t.TempDir()
	opts := Options{Journals: []string{journals}, Hosts: []string{name}, Namespaces: func(string) bool { return false }, Local: true}
	empty, err := Snapshot(opts)
	must(t, err)
	want := append(labObjects(t, ns), "journal "+filepath.Join(journals, "x.journal"))
	must(t, os.WriteFile(filepath.Join(journals, "x.journal"), nil, 0o644))
	s, err := Snapshot(opts)
	must(t, err)
	if m := missing(s, want); m != nil {
		t.Fatalf("the snapshot lacks\n%s\nit is:\n%s", strings.Join(m, "\n"), s)
	}
	for _, l := range s.Lines {
		if strings.Contains(l, HostLabel) || strings.HasPrefix(l, "bpf-") || strings.HasPrefix(l, "netns ") {
			t.Errorf("a local snapshot lists %q", l)
		}
	}
	again, err := Snapshot(opts)
	must(t, err)
	if d := Diff(s, again); d != "" {
		t.Errorf("two snapshots of an unchanged machine differ:\n%s", d)
	}
	must(t, ns.nl.LinkDel(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "mst0"}}))
	rule := netlink.NewRule()
	rule.Priority, rule.Table, rule.Family = 1234, 100, unix.AF_INET
	must(t, ns.nl.RuleDel(rule))
	must(t, os.Remove(filepath.Join(journals, "x.journal")))
	after, err := Snapshot(opts)
	must(t, err)
	if d := Diff(empty, after); d != "" {
		t.Errorf("after removing what the test made, the snapshot differs from the first:\n%s", d)
	}
}

// TestMachineSnapshot checks that a whole-machine snapshot lists a named
// namespace, an anonymous one a process is in, and BPF programs and
// links by ID, and that they go from it when they go.
func TestMachineSnapshot(t *testing.T) {
	requireRoot(t)
	name := fmt.Sprintf("nkt-machine-%d", os.Getpid())
	ns := namedNetns(t, name)
	var st unix.Stat_t
	must(t, unix.Fstat(int(ns.h), &st))
	sleeper := exec.Command("sleep", "60")
	sleeper.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	must(t, sleeper.Start())
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	target, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", sleeper.Process.Pid))
	must(t, err)
	anon, ok := netnsInode(target)
	if !ok {
		t.Fatalf("ns/net of the sleeper: %q", target)
	}
	prog, id := loadProg(t, ebpf.SocketFilter, "mst_sock")
	var lid link.ID
	must(t, ns.do(func() error {
		lo, err := net.InterfaceByName("lo")
		if err != nil {
			return err
		}
		l, err := link.AttachTCX(link.TCXOptions{Interface: lo.Index, Program: loadTC(t), Attach: ebpf.AttachTCXEgress})
		if err != nil {
			return err
		}
		t.Cleanup(func() { l.Close() })
		info, err := l.Info()
		if err == nil {
			lid = info.ID
		}
		return err
	}))
	s, err := Snapshot(Options{Journals: []string{t.TempDir()}})
	must(t, err)
	want := []string{
		fmt.Sprintf("netns-name %s %d", name, st.Ino),
		fmt.Sprintf("netns %d", st.Ino),
		fmt.Sprintf("netns %d", anon),
		fmt.Sprintf("bpf-prog %d SocketFilter mst_sock tag %s", id, tagOf(t, prog)),
		"link " + name + "/lo device down mtu 65536",
	}
	if m := missing(s, want); m != nil {
		t.Fatalf("the snapshot lacks\n%s\nit is:\n%s", strings.Join(m, "\n"), s)
	}
	if !slices.ContainsFunc(s.Lines, func(l string) bool { return strings.HasPrefix(l, fmt.Sprintf("bpf-link %d tcx prog ", lid)) }) {
		t.Errorf("the snapshot lacks bpf-link %d:\n%s", lid, s)
	}
	sleeper.Process.Kill()
	sleeper.Wait()
	prog.Close()
	s, err = Snapshot(Options{Journals: []string{t.TempDir()}})
	must(t, err)
	for _, gone := range want[2:4] {
		if slices.Contains(s.Lines, gone) {
			t.Errorf("%q is still listed after it went", gone)
		}
	}
}

func loadTC(t *testing.T) *ebpf.Program {
	p, _ := loadProg(t, ebpf.SchedCLS, "mst_tc")
	return p
}

func tagOf(t *testing.T, p *ebpf.Program) string {
	info, err := p.Info()
	must(t, err)
	return info.Tag
}

// TestTraceInstances checks that an instance is listed whether or not
// tracefs is mounted at TraceFSDir, and that a local snapshot leaves out
// a live process's instance but not a dead one's.
func TestTraceInstances(t *testing.T) {
	requireRoot(t)
	mnt := t.TempDir()
	if err := unix.Mount("tracefs", mnt, "tracefs", 0, ""); err != nil {
		testenv.Skipf(t, "no tracefs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	live := fmt.Sprintf("mst-%d", os.Getpid())
	dead := "mst-dead-0"
	for _, n := range []string{live, dead} {
		dir := filepath.Join(mnt, "instances", n)
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(dir) })
	}
	for _, local := range []bool{false, true} {
		s, err := Snapshot(Options{Journals: []string{t.TempDir()}, Namespaces: func(string) bool { return false }, Local: local})
		must(t, err)
		if !slices.Contains(s.Lines, "trace-instance "+dead) {
			t.Errorf("local=%v: trace-instance %s is not listed", local, dead)
		}
		if slices.Contains(s.Lines, "trace-instance "+live) == local {
			t.Errorf("local=%v: trace-instance %s of this live process: listed %v", local, live, !local)
		}
	}
}
