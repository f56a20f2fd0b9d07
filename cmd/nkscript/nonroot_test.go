package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/nkscript/nkscript/internal/testenv"
	"github.com/nkscript/nkscript/vm"
)

// nobodyUID is the user the non-root tests run nkscript as: nobody, which
// owns no files, so nothing it does can reach root's.
const nobodyUID = "65534"

// nonRootEnv is a home directory, owned by nobody, holding a copy of the
// nkscript binary and of the scripts the tests run.
type nonRootEnv struct {
	home, bin, dir string
}

// newNonRootEnv makes the directories of a non-root test: all under one
// temporary directory nobody can enter (t.TempDir's parent is 0700).
func newNonRootEnv(t *testing.T) nonRootEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Skipf(t, "needs root, to run nkscript as nobody")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		testenv.Skipf(t, "no setpriv: %v", err)
	}
	root, err := os.MkdirTemp("", "nkscript-nonroot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	e := nonRootEnv{home: filepath.Join(root, "home"), dir: filepath.Join(root, "lab")}
	e.bin = filepath.Join(e.dir, "nkscript")
	for _, d := range []string{e.home, e.dir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(e.home, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", nkscriptBinary(t), e.bin).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	return e
}

// run runs nkscript with args as nobody, in e.dir, with only PATH and
// HOME in its environment (so its cache is e.home/.cache/nkscript), and
// returns its stdout, stderr and exit code.
func (e nonRootEnv) run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	argv := append([]string{"--reuid=" + nobodyUID, "--regid=" + nobodyUID, "--clear-groups",
		"env", "-i", "PATH=" + os.Getenv("PATH"), "HOME=" + e.home, e.bin}, args...)
	cmd := exec.Command("setpriv", argv...)
	cmd.Dir = e.dir
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		t.Fatalf("setpriv %s: %v", strings.Join(args, " "), err)
	}
	return stdout.String(), stderr.String(), code
}

// seedKernel gives nobody's cache the kernel spec pins by hard-linking
// root's cached copy (fetched first if missing; copied where a hard link
// cannot be made), so that the test downloads no 100 MB kernel of its
// own. The links are root's files, which nobody only reads; removing them
// with the test leaves root's cache as it was.
func (e nonRootEnv) seedKernel(t *testing.T, spec vm.KernelSpec) string {
	t.Helper()
	ki, err := vm.EnsureKernelSpec(context.Background(), spec, nil)
	if err != nil {
		testenv.Skipf(t, "kernel %s not available: %v", spec.Release, err)
	}
	kernels := filepath.Join(e.home, ".cache", "nkscript", "kernels")
	src := filepath.Dir(ki.Path)
	dst := filepath.Join(kernels, filepath.Base(src))
	if _, err := os.Stat(dst); err == nil {
		return dst
	}
	mkdir := exec.Command("setpriv", "--reuid="+nobodyUID, "--regid="+nobodyUID, "--clear-groups", "mkdir", "-p", kernels)
	if out, err := mkdir.CombinedOutput(); err != nil {
		t.Fatalf("mkdir: %v: %s", err, out)
	}
	if err := exec.Command("cp", "-al", src, kernels).Run(); err != nil {
		// Never copy over a partial set of links: that would write
		// root's files.
		os.RemoveAll(dst)
		if out, err := exec.Command("cp", "-a", src, kernels).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v: %s", err, out)
		}
	}
	return dst
}

// TestNonRoot runs nkscript as an ordinary user: a host run is refused
// with the capabilities it lacks named, --vm=auto runs the lab in a
// microVM with a one-line notice, and `nkscript kernels` lists the user's
// own cache.
func TestNonRoot(t *testing.T) {
	e := newNonRootEnv(t)
	veth, err := os.ReadFile("../../scripts/veth_tutorial.star")
	if err != nil {
		t.Fatal(err)
	}
	trivial := "p = netkit_pair(\"nr0\", \"nr1\")\nprint(p.kind)\n"
	for name, text := range map[string]string{"veth_tutorial.star": string(veth), "trivial.star": trivial} {
		if err := os.WriteFile(filepath.Join(e.dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("never", func(t *testing.T) {
		stdout, stderr, code := e.run(t, "--vm=never", "veth_tutorial.star")
		want := "nkscript: a lab on the host needs CAP_NET_ADMIN, CAP_SYS_ADMIN and CAP_BPF, which this process (uid 65534) lacks: run nkscript as root (sudo), "
		if code != exitFail || stdout != "" || !strings.HasPrefix(stderr, want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("exit %d, stdout %q, stderr %q; want exit 1 and %q...", code, stdout, stderr, want)
		}
		if vm.HostCanRunVM() == nil && !strings.Contains(stderr, "or in a microVM with --vm") {
			t.Errorf("stderr %q does not offer --vm", stderr)
		}
	})

	t.Run("kernels", func(t *testing.T) {
		stdout, _, code := e.run(t, "kernels")
		if code != 0 || !strings.HasPrefix(stdout, "no kernels cached") {
			t.Errorf("empty cache: exit %d, %q", code, stdout)
		}
		dir := e.seedKernel(t, vm.DefaultKernel)
		stdout, _, code = e.run(t, "kernels")
		want := vm.DefaultKernelRelease + "\tnetkit\t" + filepath.Join(dir, "vmlinuz") + "\n"
		if code != 0 || stdout != want {
			t.Errorf("exit %d, stdout %q, want %q", code, stdout, want)
		}
	})

	t.Run("auto", func(t *testing.T) {
		if err := vm.HostCanRunVM(); err != nil {
			testenv.Skipf(t, "cannot run VMs: %v", err)
		}
		e.seedKernel(t, vm.DefaultKernel)
		stdout, stderr, code := e.run(t, "trivial.star")
		notice := "nkscript: this process (uid 65534) lacks CAP_NET_ADMIN, CAP_SYS_ADMIN and CAP_BPF, which a lab on the host needs; running in a microVM\n"
		if code != 0 || stdout != "netkit\n" || stderr != notice {
			t.Errorf("exit %d, stdout %q, stderr %q; want exit 0, \"netkit\\n\" and %q", code, stdout, stderr, notice)
		}
		// The guest's initramfs went to nobody's cache, not root's.
		initrds, _ := filepath.Glob(filepath.Join(e.home, ".cache", "nkscript", "initramfs", "*"))
		if len(initrds) == 0 {
			t.Errorf("no initramfs in nobody's cache %s", e.home)
		}
	})
}

// TestNonRootFetch runs `nkscript kernels --fetch` as nobody, with 6.12
// and 7.3 seeded from root's cache: it downloads the 6.1 kernel (about
// 70 MB, and 25 MB of package lists) through a private APT configuration
// in nobody's cache. Only with NKSCRIPT_TEST_KERNEL_FETCH=1.
func TestNonRootFetch(t *testing.T) {
	if os.Getenv("NKSCRIPT_TEST_KERNEL_FETCH") != "1" {
		testenv.SkipBecause(t, testenv.KernelFetch, "NKSCRIPT_TEST_KERNEL_FETCH is not 1")
	}
	e := newNonRootEnv(t)
	e.seedKernel(t, vm.DefaultKernel)
	e.seedKernel(t, vm.NewestKernel)
	stdout, stderr, code := e.run(t, "kernels", "--fetch")
	t.Logf("%s", stderr)
	if code != 0 || strings.Count(stdout, "\n") != len(vm.PinnedKernels) {
		t.Fatalf("exit %d, stdout %q", code, stdout)
	}
	fetched := filepath.Join(e.home, ".cache", "nkscript", "kernels", vm.LegacyKernel.Release, "vmlinuz")
	if !strings.Contains(stdout, fetched) {
		t.Errorf("stdout %q does not name %s", stdout, fetched)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(fetched, &st); err != nil || st.Uid != 65534 {
		t.Errorf("%s: uid %d, %v; want nobody's", fetched, st.Uid, err)
	}
}
