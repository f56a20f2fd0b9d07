package vm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nkscript/nkscript/internal/testenv"
	"golang.org/x/sys/unix"
)

var guestBin struct {
	once sync.Once
	path string
	err  error
	dir  string
}

// testGuest builds vm/testdata/guest as a static binary, once per test
// binary, and returns its path.
func testGuest(t testing.TB) string {
	t.Helper()
	guestBin.once.Do(func() {
		guestBin.dir, guestBin.err = os.MkdirTemp("", "nkscript-vm-test-")
		if guestBin.err != nil {
			return
		}
		guestBin.path = filepath.Join(guestBin.dir, "guest")
		cmd := exec.Command("go", "build", "-o", guestBin.path, "./testdata/guest")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			guestBin.err = errors.New(string(out))
		}
	})
	if guestBin.err != nil {
		t.Fatalf("build guest: %v", guestBin.err)
	}
	return guestBin.path
}

func TestMain(m *testing.M) {
	if bin := os.Getenv(helperEnv); bin != "" {
		// Run by TestQemuDiesWithCaller: boot a guest that sleeps.
		_, err := Run(context.Background(), Options{Binary: bin, Args: []string{"sleep"}, Stdout: os.Stdout})
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := testenv.Main(m).Run()
	if guestBin.dir != "" {
		os.RemoveAll(guestBin.dir)
	}
	os.Exit(code)
}

// needVM skips the test when the host cannot boot the guest (under CI it
// fails it), and returns the default kernel, fetching it if needed.
func needVM(t testing.TB) KernelInfo {
	t.Helper()
	if err := HostCanRunVM(); err != nil {
		testenv.Skipf(t, "cannot run VMs: %v", err)
	}
	if os.Getuid() != 0 {
		testenv.Skipf(t, "needs root (the guest shares the host's root filesystem)")
	}
	ki, err := EnsureKernel(context.Background(), testWriter{t})
	if err != nil {
		testenv.Skipf(t, "default kernel not available: %v", err)
	}
	return ki
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

type result struct {
	code           int
	err            error
	stdout, stderr string
	timing         Timing
}

func runGuest(t testing.TB, ctx context.Context, o Options, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	o.Binary = testGuest(t)
	o.Args = args
	o.Stdout = &stdout
	o.Stderr = &stderr
	var timing Timing
	o.Timing = &timing
	code, err := Run(ctx, o)
	return result{code, err, stdout.String(), stderr.String(), timing}
}

func TestRunOutputAndExitCodes(t *testing.T) {
	needVM(t)
	for _, tc := range []struct {
		out, err string
		code     int
	}{
		{"hello stdout\n", "", 0},
		{"", "only stderr\n", 1},
		{"line1\nline2 no newline", "e1\n\te2 ünïcode", 3},
	} {
		t.Run(strconv.Itoa(tc.code), func(t *testing.T) {
			r := runGuest(t, context.Background(), Options{}, "write", tc.out, tc.err, strconv.Itoa(tc.code))
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.code != tc.code {
				t.Errorf("exit code %d, want %d", r.code, tc.code)
			}
			if r.stdout != tc.out {
				t.Errorf("stdout %q, want %q", r.stdout, tc.out)
			}
			if r.stderr != tc.err {
				t.Errorf("stderr %q, want %q", r.stderr, tc.err)
			}
			t.Logf("timing: %+v", r.timing)
		})
	}
}

// Output larger than every buffer on the way must arrive whole, also when
// the guest ends right after writing it.
func TestRunLargeOutput(t *testing.T) {
	needVM(t)
	const n = 4 << 20
	r := runGuest(t, context.Background(), Options{}, "spew", strconv.Itoa(n))
	if r.err != nil || r.code != 0 {
		t.Fatalf("code %d, err %v", r.code, r.err)
	}
	pattern := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			if i%64 == 63 {
				b[i] = '\n'
			} else {
				b[i] = byte('a' + i%26)
			}
		}
		return string(b)
	}
	if r.stdout != pattern(n) {
		t.Errorf("stdout: %d bytes, not the %d expected", len(r.stdout), n)
	}
	if r.stderr != pattern(n/4) {
		t.Errorf("stderr: %d bytes, not the %d expected", len(r.stderr), n/4)
	}
	t.Logf("timing %+v", r.timing)
}

func TestRunReadsHostFiles(t *testing.T) {
	needVM(t)
	path, err := filepath.Abs("testdata/hostfile.txt")
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := runGuest(t, context.Background(), Options{}, "cat", path)
	if r.err != nil || r.code != 0 {
		t.Fatalf("code %d, err %v, stderr %q", r.code, r.err, r.stderr)
	}
	if r.stdout != string(want) {
		t.Errorf("guest read %q, want %q", r.stdout, want)
	}
}

// Host tools run in the guest, and loopback is up.
func TestRunHostTool(t *testing.T) {
	needVM(t)
	ip, err := exec.LookPath("ip")
	if err != nil {
		testenv.Skipf(t, "no ip tool on the host")
	}
	r := runGuest(t, context.Background(), Options{}, "exec", ip, "-o", "addr", "show", "dev", "lo")
	if r.err != nil || r.code != 0 {
		t.Fatalf("code %d, err %v, stderr %q", r.code, r.err, r.stderr)
	}
	if !strings.Contains(r.stdout, "inet 127.0.0.1/8") {
		t.Errorf("ip addr show lo: %q, want 127.0.0.1/8 (loopback up)", r.stdout)
	}
}

func TestRunMounts(t *testing.T) {
	needVM(t)
	r := runGuest(t, context.Background(), Options{}, "cat", "/proc/mounts")
	if r.err != nil || r.code != 0 {
		t.Fatalf("code %d, err %v, stderr %q", r.code, r.err, r.stderr)
	}
	mounts := map[string]string{} // mount point -> fs type
	for _, line := range strings.Split(r.stdout, "\n") {
		if f := strings.Fields(line); len(f) > 2 {
			mounts[f[1]] = f[2]
		}
	}
	for dir, fstype := range map[string]string{
		"/usr": "9p", "/tmp": "overlay", "/run": "tmpfs", "/sys/fs/bpf": "bpf", "/proc": "proc",
		"/sys": "sysfs", "/dev": "devtmpfs", "/dev/pts": "devpts", "/sys/kernel/tracing": "tracefs", "/sys/fs/cgroup": "cgroup2",
	} {
		if mounts[dir] != fstype {
			t.Errorf("%s: mounted %q, want %s", dir, mounts[dir], fstype)
		}
	}
	if t.Failed() {
		t.Logf("/proc/mounts:\n%s", r.stdout)
	}
}

func TestRunDirAndEnv(t *testing.T) {
	needVM(t)
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	r := runGuest(t, context.Background(), Options{Dir: wd, Env: []string{"NKTEST=a b=c"}}, "env", "NKTEST")
	if r.err != nil || r.code != 0 {
		t.Fatalf("code %d, err %v, stderr %q", r.code, r.err, r.stderr)
	}
	if want := wd + "\na b=c\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
}

// parseMountinfo maps mount points to filesystem types.
func parseMountinfo(s string) map[string]string {
	mounts := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		f := strings.Fields(line)
		for i := 5; i+1 < len(f); i++ {
			if f[i] == "-" {
				mounts[f[4]] = f[i+1]
				break
			}
		}
	}
	return mounts
}

// Package inits run in a guest that is set up: with /proc and the other
// mounts, the host's environment and working directory.
func TestRunPackageInit(t *testing.T) {
	needVM(t)
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	r := runGuest(t, context.Background(), Options{Dir: wd, Env: []string{"NKTEST=set at init"}}, "init")
	if r.err != nil || r.code != 0 {
		t.Fatalf("code %d, err %v, stderr %q", r.code, r.err, r.stderr)
	}
	env, rest, _ := strings.Cut(r.stdout, "\n")
	initWd, mountinfo, _ := strings.Cut(rest, "\n")
	if env != "set at init" {
		t.Errorf("$NKTEST at init: %q, want %q", env, "set at init")
	}
	if initWd != wd {
		t.Errorf("working directory at init: %q, want %q", initWd, wd)
	}
	mounts := parseMountinfo(mountinfo)
	for dir, fstype := range map[string]string{
		"/proc": "proc", "/sys": "sysfs", "/dev": "devtmpfs", "/sys/fs/bpf": "bpf", "/usr": "9p", "/tmp": "overlay",
	} {
		if mounts[dir] != fstype {
			t.Errorf("%s at init: mounted %q, want %s", dir, mounts[dir], fstype)
		}
	}
	if t.Failed() {
		t.Logf("/proc/self/mountinfo at init:\n%s", mountinfo)
	}
}

// The guest sees the host's /tmp, may work in it and write to it, and its
// writes stay in the guest.
func TestRunHostTmp(t *testing.T) {
	needVM(t)
	dir, err := os.MkdirTemp("/tmp", "nkscript-vm-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "host.txt"), []byte("from the host"), 0o644); err != nil {
		t.Fatal(err)
	}
	guestFile := filepath.Join(dir, "guest.txt")
	r := runGuest(t, context.Background(), Options{Dir: dir}, "tmp", "host.txt", guestFile)
	if r.err != nil || r.code != 0 {
		t.Fatalf("code %d, err %v, stderr %q", r.code, r.err, r.stderr)
	}
	want := fmt.Sprintf("host.txt: %q\n%s: %q\nhost.txt: %q\n%s: %q\n",
		"from the host", guestFile, "", "from the guest", guestFile, "from the guest")
	if r.stdout != want {
		t.Errorf("guest said\n%s\nwant\n%s", r.stdout, want)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "host.txt")); err != nil || string(b) != "from the host" {
		t.Errorf("host.txt on the host: %q, %v; want it unchanged", b, err)
	}
	if _, err := os.Lstat(guestFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s, written by the guest, is on the host (%v)", guestFile, err)
	}
	if r.stderr != "" {
		t.Errorf("stderr %q", r.stderr)
	}
}

func TestRunNetkit(t *testing.T) {
	ki := needVM(t)
	if !ki.Netkit {
		t.Fatalf("default kernel %s: CONFIG_NETKIT=y not found in %q", ki.Version, ki.Config)
	}
	r := runGuest(t, context.Background(), Options{}, "netkit")
	if r.err != nil || r.code != 0 {
		t.Fatalf("code %d, err %v, stderr %q", r.code, r.err, r.stderr)
	}
	if want := "nk1 netkit\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
}

// The default kernel has veth as a module; creating a veth pair makes the
// kernel call the guest's module loader.
func TestRunLoadsModulesOnDemand(t *testing.T) {
	needVM(t)
	r := runGuest(t, context.Background(), Options{}, "veth")
	if r.err != nil || r.code != 0 {
		t.Fatalf("code %d, err %v, stderr %q", r.code, r.err, r.stderr)
	}
	if want := "v1 veth\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
}

func TestRunGoPanic(t *testing.T) {
	needVM(t)
	r := runGuest(t, context.Background(), Options{}, "panic")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.code != 2 {
		t.Errorf("exit code %d, want 2", r.code)
	}
	if !strings.HasPrefix(r.stderr, "panic: boom\n") {
		t.Errorf("stderr %q, want a panic message", r.stderr)
	}
}

func TestRunKernelPanic(t *testing.T) {
	needVM(t)
	r := runGuest(t, context.Background(), Options{}, "kpanic")
	if !errors.Is(r.err, ErrKernelPanic) {
		t.Fatalf("err %v, want ErrKernelPanic", r.err)
	}
	if !strings.Contains(r.err.Error(), "sysrq") {
		t.Errorf("error does not show the console: %v", r.err)
	}
	assertNoQemu(t)
}

func TestRunVerbose(t *testing.T) {
	needVM(t)
	r := runGuest(t, context.Background(), Options{Verbose: true}, "write", "out\n", "err\n", "0")
	if r.err != nil || r.code != 0 {
		t.Fatalf("code %d, err %v", r.code, r.err)
	}
	if r.stdout != "out\n" {
		t.Errorf("stdout %q, want %q", r.stdout, "out\n")
	}
	if !strings.Contains(r.stderr, "Linux version "+DefaultKernelRelease) || !strings.Contains(r.stderr, "err\n") {
		t.Errorf("stderr lacks the kernel console or the program's stderr: %q", r.stderr)
	}
}

func TestRunBootTimeout(t *testing.T) {
	needVM(t)
	r := runGuest(t, context.Background(), Options{BootTimeout: time.Millisecond}, "true")
	if !errors.Is(r.err, ErrBootTimeout) {
		t.Fatalf("err %v, want ErrBootTimeout", r.err)
	}
	assertNoQemu(t)
}

// cancelOn cancels a context when a line is written to it.
type cancelOn struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	line   string
	cancel func()
}

func (c *cancelOn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(p)
	if strings.Contains(c.buf.String(), c.line+"\n") {
		c.cancel()
	}
	return len(p), nil
}

func TestRunCancel(t *testing.T) {
	needVM(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &cancelOn{line: "sleeping", cancel: cancel}
	_, err := Run(ctx, Options{Binary: testGuest(t), Args: []string{"sleep"}, Stdout: out})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if !strings.Contains(out.buf.String(), "sleeping\n") {
		t.Fatalf("cancelled before the guest ran: stdout %q", out.buf.String())
	}
	assertNoQemu(t)
}

const helperEnv = "NKSCRIPT_VM_TEST_HELPER"

// TestQemuDiesWithCaller kills a process running Run with SIGKILL, which it
// cannot handle, and checks that its qemu dies too.
func TestQemuDiesWithCaller(t *testing.T) {
	needVM(t)
	// Become the reaper of orphaned descendants, so that the helper's qemu
	// is reparented to us rather than to PID 1.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+testGuest(t))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if line != "sleeping\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper said %q (%v), stderr: %s", line, err, stderr.String())
	}
	qemus := qemuChildren(t, cmd.Process.Pid)
	if len(qemus) != 1 {
		t.Fatalf("helper has qemu children %v, want one", qemus)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	// qemu, orphaned, is now our child (we are a subreaper): wait for the
	// SIGKILL the kernel sends it as its parent dies. Without it, this
	// blocks until the test times out.
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(qemus[0], &ws, 0, nil); err != nil {
		t.Fatalf("wait for qemu: %v", err)
	}
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("qemu ended with %v, want SIGKILL", ws)
	}
}

// assertNoQemu fails the test if a qemu child of this process is left.
func assertNoQemu(t *testing.T) {
	t.Helper()
	for _, pid := range qemuChildren(t, os.Getpid()) {
		t.Errorf("qemu (pid %d) still running", pid)
	}
}

// qemuChildren returns the live qemu processes whose parent is ppid.
func qemuChildren(t *testing.T, ppid int) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		comm := s[strings.IndexByte(s, '(')+1 : i]
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[0] != "Z" && f[1] == strconv.Itoa(ppid) && strings.HasPrefix(comm, "qemu") {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestRunMissingKernel(t *testing.T) {
	needVM(t)
	r := runGuest(t, context.Background(), Options{Kernel: filepath.Join(t.TempDir(), "bzImage")}, "true")
	if !errors.Is(r.err, os.ErrNotExist) {
		t.Fatalf("err %v, want a missing file error", r.err)
	}
}

func TestRunDynamicBinary(t *testing.T) {
	needVM(t)
	sh, err := exec.LookPath("sh")
	if err != nil {
		testenv.Skipf(t, "%v", err)
	}
	_, err = Run(context.Background(), Options{Binary: sh})
	if err == nil || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Fatalf("err %v, want a hint to build with CGO_ENABLED=0", err)
	}
}

func TestNoQemu(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if err := HostCanRunVM(); !errors.Is(err, ErrNoQemu) {
		t.Fatalf("HostCanRunVM: %v, want ErrNoQemu", err)
	}
	if _, err := Run(context.Background(), Options{}); !errors.Is(err, ErrNoQemu) {
		t.Fatalf("Run: %v, want ErrNoQemu", err)
	}
	if !strings.Contains(ErrNoQemu.Error(), "qemu-system-x86") {
		t.Errorf("ErrNoQemu does not name the package: %v", ErrNoQemu)
	}
}

func TestAccel(t *testing.T) {
	a := Accel()
	if a != "kvm" && a != "tcg" {
		t.Fatalf("Accel() = %q", a)
	}
	if os.Getenv("NKSCRIPT_ACCEL") == "" && !cpuHasVirt() && a != "tcg" {
		t.Errorf("Accel() = %q on a CPU without vmx/svm", a)
	}
	t.Logf("accel %s", a)
}

func TestListKernels(t *testing.T) {
	needVM(t)
	ks, err := ListKernels()
	if err != nil {
		t.Fatal(err)
	}
	var found *KernelInfo
	for i := range ks {
		t.Logf("%+v", ks[i])
		if ks[i].Version == DefaultKernelRelease {
			found = &ks[i]
		}
	}
	if found == nil {
		t.Fatalf("default kernel %s not listed", DefaultKernelRelease)
	}
	if !found.Netkit || found.Config == "" || found.Modules == "" || found.Vmlinux == "" {
		t.Errorf("default kernel incomplete: %+v", *found)
	}
}

func TestInspectKernel(t *testing.T) {
	ki := needVM(t)
	// A copy without a config beside it: netkit support unknown.
	dir := t.TempDir()
	bz := filepath.Join(dir, "bzImage")
	if err := copyFile(ki.Path, bz); err != nil {
		t.Fatal(err)
	}
	got, err := InspectKernel(bz)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != DefaultKernelRelease || got.Config != "" || got.Netkit || got.Modules != "" || got.Vmlinux != "" {
		t.Errorf("InspectKernel(copy) = %+v", got)
	}
	// With a config beside it.
	if err := os.WriteFile(filepath.Join(dir, "config-"+DefaultKernelRelease), []byte("# x\nCONFIG_NETKIT=y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err = InspectKernel(bz); err != nil || !got.Netkit {
		t.Errorf("InspectKernel with config = %+v, %v", got, err)
	}
	// Not a kernel.
	if _, err := InspectKernel(filepath.Join(dir, "config-"+DefaultKernelRelease)); err == nil {
		t.Error("InspectKernel accepted a text file")
	}
}

func TestStripModuleSignature(t *testing.T) {
	body := []byte("\x7fELF module body")
	sig := bytes.Repeat([]byte{0xaa}, 300)
	info := []byte{0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x2c} // sig_len 300
	signed := append(append(append(append([]byte{}, body...), sig...), info...), moduleSigMagic...)
	if got := stripModuleSignature(signed); !bytes.Equal(got, body) {
		t.Errorf("stripped %q, want %q", got, body)
	}
	if got := stripModuleSignature(body); !bytes.Equal(got, body) {
		t.Errorf("unsigned module changed: %q", got)
	}
}

// The initramfs's modules come in chains the guest loads concurrently: a
// module shares the chain of each of its dependencies.
func TestBootModulesChains(t *testing.T) {
	for _, tc := range []struct {
		name        string
		overlayDeps []string
		want        [][]string
	}{
		{"independent", nil, [][]string{{"netfs", "9pnet", "9pnet_virtio", "9p"}, {"overlay"}}},
		{"shared dependency", []string{"netfs"}, [][]string{{"netfs", "9pnet", "9pnet_virtio", "9p", "overlay"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			idx := moduleIndex{Modules: map[string]moduleEntry{
				"netfs":        {Path: "netfs.ko"},
				"9pnet":        {Path: "9pnet.ko", Deps: []string{"netfs"}},
				"9pnet_virtio": {Path: "9pnet_virtio.ko", Deps: []string{"netfs", "9pnet"}},
				"9p":           {Path: "9p.ko", Deps: []string{"netfs", "9pnet"}},
				"overlay":      {Path: "overlay.ko", Deps: tc.overlayDeps},
			}}
			b, err := json.Marshal(idx)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, moduleIndexFile), b, 0o644); err != nil {
				t.Fatal(err)
			}
			chains, err := bootModules(KernelInfo{Modules: dir})
			if err != nil {
				t.Fatal(err)
			}
			var got [][]string
			for _, c := range chains {
				var names []string
				for _, p := range c {
					names = append(names, strings.TrimSuffix(filepath.Base(p), ".ko"))
				}
				got = append(got, names)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("chains %v, want %v", got, tc.want)
			}
		})
	}
}
