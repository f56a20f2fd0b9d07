package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/nkscript/nkscript/datapath"
	"github.com/nkscript/nkscript/vm"
	"github.com/rogpeppe/go-internal/testscript"
)

var update = flag.Bool("update", false, "rewrite the expected output in testdata/script/*.txtar")

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"nkscript": func() { os.Exit(Main()) },
	})
}

// TestScripts runs the CLI golden tests in testdata/script. Each txtar
// file is a sequence of commands with their expected output; run
// `go test ./cmd/nkscript -run TestScripts -update` to rewrite it.
func TestScripts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the scripts create namespaces and links")
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
			env.Setenv("REPO", repo)
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
			return nil
		},
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "netkit":
				return datapath.HaveNetkit() == nil, nil
			case "vm":
				return canBootNetkitVM(), nil
			case "tcx":
				// Without tcx, runs say once on stderr that they use
				// legacy tc instead.
				return datapath.HaveTCX() == nil, nil
			case "bpftool":
				_, err := exec.LookPath("bpftool")
				return err == nil, nil
			case "clang":
				// program("x.bpf.c") compiles with the clang
				// hack/setup.sh installs; CI must have it.
				_, err := exec.LookPath("clang-19")
				if err != nil && os.Getenv("CI") == "true" {
					return false, fmt.Errorf("clang-19 is missing: hack/setup.sh installs it")
				}
				return err == nil, nil
			}
			return false, nil
		},
	}
}

// canBootNetkitVM reports whether --vm can run here: qemu is installed and
// a kernel with netkit is cached (make kernel).
func canBootNetkitVM() bool {
	if vm.HostCanRunVM() != nil {
		return false
	}
	ks, err := vm.ListKernels()
	if err != nil {
		return false
	}
	for _, k := range ks {
		if k.Netkit {
			return true
		}
	}
	return false
}
