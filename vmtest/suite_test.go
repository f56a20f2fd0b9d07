// Package vmtest runs the test suites that need netkit inside a microVM
// whose kernel has it, so that `go test ./...` exercises real netkit on
// hosts (and CI runners) without it. One guest boots for the whole batch.
package vmtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nkscript/nkscript/internal/testenv"
	"github.com/nkscript/nkscript/vm"
)

// requireVM skips when the host cannot boot the guest; under CI
// (NKSCRIPT_REQUIRE_VM=1, set by `make test`, or CI=true) it fails.
func requireVM(t *testing.T) vm.KernelInfo {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		testenv.Skipf(t, format, args...)
	}
	if os.Geteuid() != 0 {
		fail("needs root")
	}
	if err := vm.HostCanRunVM(); err != nil {
		fail("cannot boot the microVM: %v", err)
	}
	ks, err := vm.ListKernels()
	if err != nil {
		fail("list kernels: %v", err)
	}
	for _, k := range ks {
		if k.Netkit {
			return k
		}
	}
	fail("no cached kernel with netkit; run `make kernel`")
	return vm.KernelInfo{}
}

// build compiles a static binary (go build or go test -c) into dir, which
// must be visible inside the guest (not /tmp: the guest has its own).
func build(t *testing.T, dir, out string, args ...string) string {
	t.Helper()
	path := filepath.Join(dir, out)
	cmd := exec.Command("go", append([]string{args[0], "-o", path}, args[1:]...)...)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return path
}

// workDirs returns the repository's root and a directory under /var/tmp,
// removed when t ends, for the binaries a guest runs.
func workDirs(t *testing.T) (repo, dir string) {
	t.Helper()
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir, err = os.MkdirTemp("/var/tmp", "nkscript-vmtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return repo, dir
}

// pinnedGuest is requireVM for a test that boots the pinned kernel spec:
// it returns the kernel, fetched if need be, and a context that bounds
// the test's guest.
func pinnedGuest(t *testing.T, spec vm.KernelSpec) (context.Context, vm.KernelInfo) {
	t.Helper()
	requireVM(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	kernel, err := vm.EnsureKernelSpec(ctx, spec, nil)
	if err != nil {
		testenv.Skipf(t, "the %s kernel is not available: %v; run `make kernel`", spec.Release, err)
	}
	return ctx, kernel
}

// guestScript is a shell script for a guest: each line of body runs
// with `run DIR CMD...` (CMD in DIR of the repository repo, under a
// header line), and the script exits 1 if any run failed.
func guestScript(repo, body string) string {
	return fmt.Sprintf(`set -u
status=0
run() { dir=$1; shift; echo "=== guest: $dir $*"; (cd %s/$dir && "$@") || status=1; }
%s
exit $status
`, repo, strings.TrimSpace(body))
}

// guestEnv is the environment of a guest's suites, plus extra.
func guestEnv(nkscript string, extra ...string) []string {
	return append([]string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root", "TMPDIR=/tmp", "NKSCRIPT_BIN=" + nkscript,
	}, extra...)
}

// TestNetkitSuitesInGuest runs the netkit integration tests of datapath
// and builtins, and the CLI golden tests (among them the netkit tutorial),
// inside one guest.
func TestNetkitSuitesInGuest(t *testing.T) {
	kernel := requireVM(t)
	repo, dir := workDirs(t)
	guest := build(t, dir, "guest", "build", "./vmtest/guest")
	datapathTest := build(t, dir, "datapath.test", "test", "-c", "./datapath")
	builtinsTest := build(t, dir, "builtins.test", "test", "-c", "./builtins")
	cliTest := build(t, dir, "nkscript.test", "test", "-c", "./cmd/nkscript")
	nkscript := build(t, dir, "nkscript", "build", "./cmd/nkscript")

	// Each suite runs in its package directory, as go test runs it.
	// Skipped in the guest, and run on the host instead: the test for
	// kernels without netkit, and the headerless-device test (no tun).
	// NKSCRIPT_VMTEST_RUN narrows every suite to the tests it matches,
	// for a quick run of one test in the guest while developing.
	only := os.Getenv("NKSCRIPT_VMTEST_RUN")
	// The fault sweep in the guest sweeps the netkit variant of the labs
	// of scripts/: in the short version tutorial.star and one other lab,
	// a different one each day; with NKSCRIPT_RELIABILITY=long (make
	// reliability) every lab, each operation and undo step made to fail
	// and to panic (see cmd/nkscript/reliability_test.go).
	// The whole CLI suite runs in the guest (signals, SIGKILL and
	// cleanup, --keep, dry-run replay, concurrent runs, the REPL on a
	// pty) but the random signals, which make reliability runs long, and
	// the tests of building and installing (make install, the GitHub
	// Action's steps), which need the Go toolchain, and those of a user
	// without root, who is sent to a microVM: they run on the host.
	dpRun, bRun, cliRun := "Netkit|Program|Lab|DropMonitor|RouteBack", ".", "."
	if only != "" {
		dpRun, bRun, cliRun = only, only, only
	}
	script := guestScript(repo, fmt.Sprintf(`
run datapath %[2]s -test.run '%[5]s' -test.skip 'TestNetkitUnsupported|TestProgramL3Traffic' -test.count=1 -test.v
run builtins %[3]s -test.run '%[6]s' -test.count=1 -test.v
run cmd/nkscript %[4]s -test.run '%[7]s' -test.skip 'TestRandomSignals|TestActionSteps|TestMakeInstall|TestNonRoot' -test.count=1 -test.v
if [ -n "${NKSCRIPT_RELIABILITY_REPORT:-}" ]; then
	for f in "$NKSCRIPT_RELIABILITY_REPORT" "$NKSCRIPT_RELIABILITY_REPORT.md"; do
		echo "=== guest report $f"; cat "$f" 2>/dev/null; echo "=== guest report end"
	done
fi
`, repo, datapathTest, builtinsTest, cliTest, dpRun, bRun, cliRun))
	var stdout, stderr strings.Builder
	timeout := 20 * time.Minute
	if d, err := time.ParseDuration(os.Getenv("NKSCRIPT_VMTEST_TIMEOUT")); err == nil {
		timeout = d
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	env := guestEnv(nkscript)
	// The reliability settings reach the guest's sweep. The guest sees
	// the host's files read-only: it writes the report in its own /tmp,
	// prints it, and guestReports copies it to the host's path.
	for _, k := range []string{"NKSCRIPT_RELIABILITY", "NKSCRIPT_RELIABILITY_DAY"} {
		if v := os.Getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	if os.Getenv("NKSCRIPT_RELIABILITY_REPORT") != "" {
		env = append(env, "NKSCRIPT_RELIABILITY_REPORT="+guestReport)
	}
	code, err := vm.Run(ctx, vm.Options{
		Kernel: kernel.Path,
		Binary: guest,
		Args:   []string{"/bin/sh", "-c", script},
		Dir:    repo,
		Env:    env,
		Stdout: &stdout,
		Stderr: &stderr,
		Memory: "2G",
	})
	if err != nil || code != 0 {
		t.Fatalf("the suites failed in the guest (kernel %s, exit %d, %v):\n%s\n%s", kernel.Version, code, err, stdout.String(), stderr.String())
	}
	for _, l := range strings.Split(stdout.String(), "\n") {
		if strings.HasPrefix(l, "=== guest:") || strings.HasPrefix(l, "ok ") || strings.HasPrefix(l, "PASS") || strings.Contains(l, "SKIP:") {
			t.Log(l)
		}
	}
	if host := os.Getenv("NKSCRIPT_RELIABILITY_REPORT"); host != "" {
		if err := guestReports(stdout.String(), host); err != nil {
			t.Error(err)
		}
	}
	if os.Getenv("NKSCRIPT_RELIABILITY") == "long" {
		labs, _ := filepath.Glob(filepath.Join(repo, "scripts", "*.star"))
		for _, lab := range labs {
			if want := "--- PASS: TestFaultSweep/" + filepath.Base(lab) + " "; !strings.Contains(stdout.String(), want) {
				t.Errorf("guest output lacks %q: the netkit variant of a lab was not swept", want)
			}
		}
	}
	if only != "" {
		t.Logf("guest output:\n%s", stdout.String())
		return
	}
	// The suites must really have run netkit, not skipped it.
	for _, want := range []string{
		"--- PASS: TestNetkitPairInPlace", "--- PASS: TestNetkitMultiProg", "--- PASS: TestNetkitPair ",
		"--- PASS: TestScripts/tutorials ",
		"> [netkit] cmp stdout $REPO/scripts/tutorial.golden\n",
		"--- PASS: TestFaultSweep/tutorial.star ",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("guest output lacks %q: netkit tests skipped or missing", want)
		}
	}
	if strings.Contains(stdout.String(), "--- SKIP") {
		t.Errorf("tests skipped in the guest; every guest test must run")
	}
	if t.Failed() {
		t.Logf("guest output:\n%s", stdout.String())
	}
}

// guestReport is where the guest's reliability report goes, in the
// guest's own /tmp.
const guestReport = "/tmp/nkscript-reliability-guest.json"

// guestReports writes the report files the guest printed (its JSON and
// its Markdown, between "=== guest report PATH" and "=== guest report
// end") to the host's path and path.md.
func guestReports(out, host string) error {
	for guest, dst := range map[string]string{guestReport: host, guestReport + ".md": host + ".md"} {
		_, rest, ok := strings.Cut(out, "=== guest report "+guest+"\n")
		if !ok {
			return fmt.Errorf("the guest printed no report %s", guest)
		}
		body, _, ok := strings.Cut(rest, "=== guest report end")
		if !ok || strings.TrimSpace(body) == "" {
			return fmt.Errorf("the guest's report %s is empty", guest)
		}
		if err := os.WriteFile(dst, []byte(body), 0o644); err != nil {
			return err
		}
	}
	return nil
}
