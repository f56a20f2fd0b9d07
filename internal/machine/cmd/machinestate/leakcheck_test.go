package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/nkscript/nkscript/internal/testenv"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// requireTool fails under CI (CI=true or NKSCRIPT_REQUIRE_VM=1) and skips
// elsewhere when a command the test runs is not installed.
func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "true" || os.Getenv("NKSCRIPT_REQUIRE_VM") == "1" {
			t.Fatalf("%s is not installed", name)
		}
		testenv.Skipf(t, "%s is not installed", name)
	}
}

// leakcheck runs hack/leakcheck.sh with args and returns its output and
// exit code.
func leakcheck(t *testing.T, args ...string) (string, int) {
	t.Helper()
	script, err := filepath.Abs("../../../../hack/leakcheck.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", append([]string{script}, args...)...)
	cmd.Env = append(os.Environ(), "LEAKCHECK_TRIES=2")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("leakcheck.sh %v: %v", args, err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

// TestLeakcheckCatches changes four things a suite must leave as it found
// them — a tracing instance, a host sysctl, an address on a host link and
// a BPF program — between `leakcheck.sh snapshot` and `compare`, checks
// that compare fails naming each, then undoes them and checks that
// compare names none of them any more. Other activity on the machine may
// still make the second compare fail; it is not what this test checks.
func TestLeakcheckCatches(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skipf(t, "needs root: changes the host's network settings")
	}
	requireTool(t, "bash")
	requireTool(t, "go")
	before := filepath.Join(t.TempDir(), "before")
	if out, code := leakcheck(t, "snapshot", before, t.TempDir()); code != 0 {
		t.Fatalf("snapshot: exit %d\n%s", code, out)
	}
	want := []string{
		"> trace-instance " + traceInstance(t),
		"> addr (host)/lo " + hostAddress(t),
		"> bpf-prog " + bpfProgram(t),
	}
	want = append(want, hostSysctl(t)...)
	out, code := leakcheck(t, "compare", before)
	if code != 1 {
		t.Errorf("compare after the changes: exit %d, want 1\n%s", code, out)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("compare does not name %q:\n%s", w, out)
		}
	}
	undoAll()
	out, code = leakcheck(t, "compare", before)
	if code == 2 {
		t.Fatalf("compare failed:\n%s", out)
	}
	for _, w := range want {
		if strings.Contains(out, w) {
			t.Errorf("compare still names %q after it was undone:\n%s", w, out)
		}
	}
}

// undos are the undo steps of the changes, latest last: undoAll runs
// them, and so does the test's cleanup if it stops earlier.
var undos []func()

func undo(t *testing.T, f func()) {
	undos = append(undos, f)
	t.Cleanup(undoAll)
}

func undoAll() {
	for i := len(undos) - 1; i >= 0; i-- {
		undos[i]()
	}
	undos = nil
}

// traceInstance creates a tracing instance of its own on a tracefs
// mounted for it, and returns its name.
func traceInstance(t *testing.T) string {
	t.Helper()
	mnt := t.TempDir()
	if err := unix.Mount("tracefs", mnt, "tracefs", 0, ""); err != nil {
		t.Fatalf("mount tracefs: %v", err)
	}
	name := fmt.Sprintf("machinestate-test-%d", os.Getpid())
	dir := filepath.Join(mnt, "instances", name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		unix.Unmount(mnt, unix.MNT_DETACH)
		t.Fatal(err)
	}
	undo(t, func() {
		if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("remove tracing instance: %v", err)
		}
		unix.Unmount(mnt, unix.MNT_DETACH)
	})
	return name
}

// hostAddress adds an address of its own to the host's loopback and
// returns it.
func hostAddress(t *testing.T) string {
	t.Helper()
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	ip := net.IPv4(127, 203, byte(os.Getpid()>>8), byte(os.Getpid()))
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: ip, Mask: net.CIDRMask(32, 32)}}
	if err := netlink.AddrAdd(lo, addr); err != nil {
		t.Fatalf("add %s to lo: %v", addr.IPNet, err)
	}
	undo(t, func() {
		if err := netlink.AddrDel(lo, addr); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			t.Errorf("delete %s from lo: %v", addr.IPNet, err)
		}
	})
	return addr.IPNet.String()
}

// bpfProgram loads a program, held until it is undone, and returns the
// start of its snapshot line: "<id> SocketFilter <name>".
func bpfProgram(t *testing.T) string {
	t.Helper()
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "mst_leak", Type: ebpf.SocketFilter, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
	if err != nil {
		t.Fatalf("load a BPF program: %v", err)
	}
	undo(t, func() { p.Close() })
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	return fmt.Sprintf("%d SocketFilter mst_leak ", id)
}

// hostSysctl flips the host loopback's IPv4 forwarding and returns the
// lines compare must print for it.
func hostSysctl(t *testing.T) []string {
	t.Helper()
	const path = "/proc/sys/net/ipv4/conf/lo/forwarding"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	old := strings.TrimSpace(string(b))
	flipped := map[string]string{"0": "1", "1": "0"}[old]
	if flipped == "" {
		t.Fatalf("%s is %q", path, old)
	}
	if err := os.WriteFile(path, []byte(flipped), 0); err != nil {
		t.Fatal(err)
	}
	undo(t, func() {
		if err := os.WriteFile(path, []byte(old), 0); err != nil {
			t.Errorf("restore %s: %v", path, err)
		}
	})
	line := "sysctl (host) net.ipv4.conf.lo.forwarding="
	return []string{"> " + line + flipped, "< " + line + old}
}
