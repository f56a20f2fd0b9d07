package main

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/nkscript/nkscript/datapath"
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
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir:           filepath.Join(repo, "testdata", "script"),
		UpdateScripts: *update,
		Setup: func(env *testscript.Env) error {
			env.Setenv("REPO", repo)
			return nil
		},
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "netkit":
				return datapath.HaveNetkit() == nil, nil
			case "bpftool":
				_, err := exec.LookPath("bpftool")
				return err == nil, nil
			}
			return false, nil
		},
	})
}
