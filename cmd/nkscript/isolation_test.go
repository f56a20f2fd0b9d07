package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nkscript/nkscript/golden"
	"github.com/nkscript/nkscript/internal/testenv"
)

// TestConcurrentRuns runs the CNF pipeline lab twice at once in one host
// namespace: without --prefix one run wins and the other fails cleanly on
// the name clash, touching nothing of the winner's; with different
// prefixes both succeed. Either way the machine ends as it began.
func TestConcurrentRuns(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skipf(t, "needs root")
	}
	script, _ := filepath.Abs("../../scripts/cnf_pipeline.star")
	// The golden file of the device kind the run makes here.
	want, err := golden.Expected("../../scripts/cnf_pipeline.star")
	if err != nil {
		t.Fatal(err)
	}
	goldenOut, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		prefixes [2]string
	}{
		{"clash", [2]string{"", ""}},
		{"prefix", [2]string{"a-", "b-"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hostNs := testHostNetns(t)
			journals := t.TempDir()
			before := machineState(t, hostNs, journals)
			var wg sync.WaitGroup
			var outs, errs [2]string
			var codes [2]int
			for i := range 2 {
				var args []string
				if p := tc.prefixes[i]; p != "" {
					args = append(args, "--prefix="+p)
				}
				cmd, stdout, stderr := runIn(t, hostNs, journals, nil, append(args, script)...)
				wg.Go(func() {
					err := cmd.Run()
					var exit *exec.ExitError
					if errors.As(err, &exit) {
						codes[i] = exit.ExitCode()
					} else if err != nil {
						codes[i] = -1
					}
					outs[i], errs[i] = stdout.String(), stderr.String()
				})
			}
			wg.Wait()
			switch tc.name {
			case "clash":
				ok := 0
				for i := range 2 {
					switch {
					case codes[i] == 0 && outs[i] == string(goldenOut):
						ok++
					case codes[i] == 1 && strings.Contains(errs[i], "exists"):
					default:
						t.Errorf("run %d: exit %d\nstdout:\n%s\nstderr:\n%s", i, codes[i], outs[i], errs[i])
					}
				}
				if ok != 1 {
					t.Errorf("%d runs succeeded, want exactly 1:\n%s\n%s", ok, errs[0], errs[1])
				}
			case "prefix":
				for i := range 2 {
					if codes[i] != 0 {
						t.Errorf("run %d with --prefix=%s: exit %d\n%s", i, tc.prefixes[i], codes[i], errs[i])
					}
				}
			}
			if d := diffState(before, machineState(t, hostNs, journals)); d != "" {
				t.Errorf("the machine changed:\n%s", d)
			}
		})
	}
}

// TestPreexistingNamesUntouched creates a namespace and a host link with
// the names the veth tutorial uses: the run fails on the first clash and
// both stay exactly as they were (same identity, same state).
func TestPreexistingNamesUntouched(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skipf(t, "needs root")
	}
	script, _ := filepath.Abs("../../scripts/veth_tutorial.star")
	hostNs := testHostNetns(t)
	journals := t.TempDir()
	mustRun := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	// A link called nk0 in the host: the run's pair must not adopt,
	// change or delete it.
	mustRun("ip", "-n", hostNs, "link", "add", "nk0", "type", "veth", "peer", "name", "nk0x")
	mustRun("ip", "-n", hostNs, "addr", "add", "192.0.2.1/24", "dev", "nk0")
	linkBefore := mustRun("ip", "-n", hostNs, "-d", "addr", "show", "nk0")
	before := machineState(t, hostNs, journals)
	cmd, _, stderr := runIn(t, hostNs, journals, nil, script)
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1\n%s", err, stderr)
	}
	if !strings.Contains(stderr.String(), "veth_tutorial.star:12:") || !strings.Contains(stderr.String(), "nk0") {
		t.Errorf("the error should name the pair's line and nk0:\n%s", stderr)
	}
	if got := mustRun("ip", "-n", hostNs, "-d", "addr", "show", "nk0"); got != linkBefore {
		t.Errorf("nk0 changed:\nbefore: %s\nafter:  %s", linkBefore, got)
	}
	if d := diffState(before, machineState(t, hostNs, journals)); d != "" {
		t.Errorf("the machine changed:\n%s", d)
	}

	// A namespace called task_netns: the run fails at its first line and
	// leaves the namespace (same inode) in place.
	mustRun("ip", "-n", hostNs, "link", "del", "nk0")
	mustRun("ip", "netns", "add", "task_netns")
	t.Cleanup(func() { exec.Command("ip", "netns", "del", "task_netns").Run() })
	var st1, st2 os.FileInfo
	st1, _ = os.Stat("/run/netns/task_netns")
	before = machineState(t, hostNs, journals)
	cmd, _, stderr = runIn(t, hostNs, journals, nil, script)
	if err := cmd.Run(); err == nil {
		t.Fatalf("the run succeeded despite an existing task_netns")
	}
	if !strings.Contains(stderr.String(), "veth_tutorial.star:9:") || !strings.Contains(stderr.String(), "task_netns") {
		t.Errorf("the error should name netns()'s line and task_netns:\n%s", stderr)
	}
	st2, err = os.Stat("/run/netns/task_netns")
	if err != nil || !os.SameFile(st1, st2) {
		t.Errorf("task_netns was replaced or removed: %v", err)
	}
	if d := diffState(before, machineState(t, hostNs, journals)); d != "" {
		t.Errorf("the machine changed:\n%s", d)
	}
}
