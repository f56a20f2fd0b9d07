package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nkscript/nkscript/internal/testenv"
	"github.com/nkscript/nkscript/vm"
	"github.com/rogpeppe/go-internal/testscript"
)

var update = flag.Bool("update", false, "rewrite the expected output in testdata/script/*.txtar")

func TestMain(m *testing.M) {
	testscript.Main(testenv.Main(m), map[string]func(){
		"nkscript": func() { os.Exit(Main()) },
	})
}

// TestScripts runs the CLI golden tests in testdata/script. Each txtar
// file is a sequence of commands with their expected output; run
// `go test ./cmd/nkscript -run TestScripts -update` to rewrite it.
//
// The scripts share the machine with other suites, so every name they make
// carries $P, a prefix unique to the script on the machine, and every run
// journals into a directory of the script's own ($JD=$WORK/journals).
// Besides testscript's commands they have:
//
//	nkrun [-net] ARGS...
//
// which runs `nkscript --prefix=$P ARGS...`, with -net in a network
// namespace of its own (unshare --net), and takes $P out of its standard
// output and error, so that what they check is what the script names. Like
// exec, it takes the input `stdin` set and may be negated with `!`. A check
// of the machine's state names what a run made with $P in front
// (`ip netns list` then `! stdout '^'$P'at_'`). Commands that cannot go
// through nkrun (sh -c pipelines) pass --prefix=$P themselves.
func TestScripts(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skipf(t, "needs root: the scripts create namespaces and links")
	}
	testscript.Run(t, scriptParams(t))
}

// scriptParams are TestScripts' parameters: the scripts of
// testdata/script with $REPO, $NKBIN and the conditions they use.
func scriptParams(t *testing.T) testscript.Params {
	t.Helper()
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	nkbin := nkscriptBinary(t)
	return testscript.Params{
		Dir:           filepath.Join(repo, "testdata", "script"),
		UpdateScripts: *update,
		Setup: func(env *testscript.Env) error {
			// The scripts skip without unshare(1): CI must have it.
			if _, err := exec.LookPath("unshare"); err != nil && testenv.CI() {
				return fmt.Errorf("unshare is missing under CI: the scripts would skip")
			}
			env.Setenv("REPO", repo)
			// $P: a prefix no other test, and no other suite on the
			// machine, uses, for --prefix and the names a script makes.
			env.Setenv("P", uniquePrefix())
			// A static nkscript, for runs that boot it in the microVM.
			env.Setenv("NKBIN", nkbin)
			// testscript sets $HOME to /no-home; --vm runs must find the
			// kernels `make kernel` cached under the real one rather than
			// fetch them again into /no-home.
			cache, err := vm.CacheDir()
			if err != nil {
				return err
			}
			env.Setenv("NKSCRIPT_CACHE", cache)
			// Warm guests the user runs are not the scripts': a --vm run
			// that found one of another executable would say so on
			// stderr.
			env.Setenv("NKSCRIPT_VM_DIR", filepath.Join(env.WorkDir, ".vm"))
			return nil
		},
		Condition: scriptCondition,
		Cmds:      map[string]func(*testscript.TestScript, bool, []string){"nkrun": cmdNkrun},
	}
}

// cmdNkrun is the scripts' nkrun command: see TestScripts.
func cmdNkrun(ts *testscript.TestScript, neg bool, args []string) {
	p := ts.Getenv("P")
	if p == "" {
		ts.Fatalf("nkrun: $P is empty")
	}
	argv := []string{"nkscript", "--prefix=" + p}
	if len(args) > 0 && args[0] == "-net" {
		argv, args = append([]string{"unshare", "--net"}, argv...), args[1:]
	}
	if len(args) == 0 {
		ts.Fatalf("usage: nkrun [-net] ARGS...")
	}
	err := ts.Exec(argv[0], append(argv[1:], args...)...)
	fmt.Fprint(ts.Stdout(), strings.ReplaceAll(ts.ReadFile("stdout"), p, ""))
	fmt.Fprint(ts.Stderr(), strings.ReplaceAll(ts.ReadFile("stderr"), p, ""))
	switch {
	case err != nil && !neg:
		ts.Fatalf("unexpected nkrun failure: %v", err)
	case err == nil && neg:
		ts.Fatalf("unexpected nkrun success")
	}
}

var scriptCount atomic.Int64

// uniquePrefix returns a name prefix unique on the machine while this
// process lives: its pid in base 36, padded to 5 digits (Linux pids are
// below 36^5), and the script's number, 7 bytes for the first 36
// scripts, so that prefixed link names stay within 15 bytes.
func uniquePrefix() string {
	n := scriptCount.Add(1) - 1
	return fmt.Sprintf("%05s%s-", strconv.FormatInt(int64(os.Getpid()), 36), strconv.FormatInt(n, 36))
}

// scriptCondition decides the conditions the scripts use from the kernel
// version and iproute2, not from nkscript's own probes. Under CI a
// condition that would leave part of a script unrun for want of a tool or
// a cached kernel is an error, not a silent false.
func scriptCondition(cond string) (bool, error) {
	switch cond {
	case "netkit":
		return testenv.HaveNetkit()
	case "vm":
		err := canBootNetkitVM()
		if err != nil && testenv.CI() {
			return false, fmt.Errorf("[vm] is false under CI: %v", err)
		}
		return err == nil, nil
	case "tcx":
		// Without tcx, runs say once on stderr that they use legacy tc
		// instead.
		return testenv.KernelAtLeast(6, 6)
	case "bpftool", "clang":
		// program("x.bpf.c") compiles with the clang hack/setup.sh
		// installs, and the scripts cross-check with bpftool; CI must
		// have both.
		tool := map[string]string{"bpftool": "bpftool", "clang": "clang-19"}[cond]
		_, err := exec.LookPath(tool)
		if err != nil && testenv.CI() {
			return false, fmt.Errorf("[%s] is false under CI: %s is missing; hack/setup.sh installs it", cond, tool)
		}
		return err == nil, nil
	}
	return false, nil
}

// canBootNetkitVM says why --vm cannot run here, or nil when it can: qemu
// is installed and a kernel with netkit is cached (make kernel).
func canBootNetkitVM() error {
	if err := vm.HostCanRunVM(); err != nil {
		return err
	}
	ks, err := vm.ListKernels()
	if err != nil {
		return err
	}
	for _, k := range ks {
		if k.Netkit {
			return nil
		}
	}
	return fmt.Errorf("no cached kernel with netkit; run `make kernel`")
}
