package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nkscript/nkscript/datapath"
	"github.com/nkscript/nkscript/internal/machine"
)

// The reliability tests run the labs of scripts/ and break them at every
// point: the k-th kernel-changing operation fails (or panics), or a signal
// arrives at a random moment. Whatever happens, what the machine looks
// like afterwards must equal what it looked like before.
//
// NKSCRIPT_RELIABILITY=long runs the long version (every script, many
// signal iterations), as `make reliability` does; the default is the short
// version `make test` runs. NKSCRIPT_RELIABILITY_SEED fixes the seed of
// the signal timings (default: time-based, printed).

func longReliability() bool { return os.Getenv("NKSCRIPT_RELIABILITY") == "long" }

// reliabilityScripts are the labs of scripts/ that run on this kernel
// (without netkit they fall back to veth; tutorial.star needs netkit and
// runs only where the kernel has it).
func reliabilityScripts(t *testing.T) []string {
	t.Helper()
	// The short version sweeps one tcx lab and the policy router on a
	// kernel without netkit; with netkit (the microVM) the netkit
	// tutorial, since the others run on the host already.
	short := []string{"veth_tutorial.star", "policy_routing.star"}
	if datapath.HaveNetkit() == nil {
		short = []string{"tutorial.star"}
	}
	all, err := filepath.Glob("../../scripts/*.star")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range all {
		base := filepath.Base(p)
		if base == "tutorial.star" && datapath.HaveNetkit() != nil {
			continue
		}
		if !longReliability() && !slices.Contains(short, base) {
			continue
		}
		abs, _ := filepath.Abs(p)
		out = append(out, abs)
	}
	if len(out) == 0 {
		t.Fatal("no scripts found in scripts/")
	}
	return out
}

// machineState lists what a run could leave behind or change, as the
// sorted lines of a machine.Snapshot: the test's host namespace hostNs
// (links, addresses, routes, rules, qdiscs, filters, BPF attachments and
// the sysctls labs change), the named namespaces, bpffs pins, tracing
// instances and the journals. While other packages' tests run beside
// these (go test ./...), the snapshot is local to the namespaces the
// labs can name; `make reliability` (NKSCRIPT_RELIABILITY=long), which
// runs this package alone, or NKSCRIPT_SNAPSHOT=machine takes the whole
// machine: every namespace by inode, BPF objects by ID, qemu processes.
func machineState(t *testing.T, hostNs, journals string) []string {
	t.Helper()
	opts := machine.Options{Journals: []string{journals}, Hosts: []string{hostNs}, Namespaces: labNetnsName().MatchString, Local: true}
	if mode := os.Getenv("NKSCRIPT_SNAPSHOT"); mode == "machine" || (mode == "" && longReliability()) {
		opts = machine.Options{Journals: []string{journals, machine.DefaultJournalDir}, Hosts: []string{hostNs}}
	}
	s, err := machine.Snapshot(opts)
	if err != nil {
		t.Fatalf("machine state: %v", err)
	}
	return s.Lines
}

// labNetnsName matches the namespace names the labs of scripts/ and
// these tests use: every string literal of the scripts ("backend%d"
// matching backend1, ...), optionally behind an isolation test's prefix,
// and the dry-run test's "-lab" namespaces.
var labNetnsName = sync.OnceValue(func() *regexp.Regexp {
	lit := regexp.MustCompile(`"([A-Za-z0-9_%.-]+)"`)
	alts := []string{`.*-lab`}
	files, _ := filepath.Glob("../../scripts/*.star")
	more, _ := filepath.Glob("../../scripts/*/*.star")
	for _, f := range append(files, more...) {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, m := range lit.FindAllStringSubmatch(string(b), -1) {
			alts = append(alts, strings.ReplaceAll(regexp.QuoteMeta(m[1]), "%d", "[0-9]+"))
		}
	}
	return regexp.MustCompile(`^(a-|b-)?(` + strings.Join(alts, "|") + `)$`)
})

// diffState lists what changed between two machineState results.
func diffState(before, after []string) string {
	return machine.Diff(machine.State{Lines: before}, machine.State{Lines: after})
}

// runIn runs nkscript with args inside hostNs, with extra environment.
func runIn(t *testing.T, hostNs, journals string, env []string, args ...string) (*exec.Cmd, *strings.Builder, *strings.Builder) {
	t.Helper()
	all := append([]string{"--net=/run/netns/" + hostNs, nkscriptBinary(t), "--vm=never", "--journal-dir=" + journals}, args...)
	cmd := exec.Command("nsenter", all...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	return cmd, &stdout, &stderr
}

var opsLine = regexp.MustCompile(`nkscript: test: (\d+) kernel-changing operations`)

// countOps runs a script once without faults and returns how many
// kernel-changing operations it performs.
func countOps(t *testing.T, hostNs, journals, script string) int {
	t.Helper()
	cmd, stdout, stderr := runIn(t, hostNs, journals, []string{faultEnv + "=count"}, script)
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s without faults: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(script), err, stdout, stderr)
	}
	m := opsLine.FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("%s: no operation count on stderr:\n%s", filepath.Base(script), stderr)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestFaultSweep fails each kernel-changing operation of each lab in
// turn, then panics in each (long mode: every k; short: a sample), and
// checks that the run exits 1 naming the operation and leaves the machine
// as it found it.
func TestFaultSweep(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, script := range reliabilityScripts(t) {
		t.Run(filepath.Base(script), func(t *testing.T) {
			hostNs := testHostNetns(t)
			journals := t.TempDir()
			before := machineState(t, hostNs, journals)
			ops := countOps(t, hostNs, journals, script)
			if d := diffState(before, machineState(t, hostNs, journals)); d != "" {
				t.Fatalf("a clean run left the machine changed:\n%s", d)
			}
			t.Logf("%d kernel-changing operations", ops)
			for k := 1; k <= ops; k++ {
				mode := "fail"
				env := fmt.Sprint(k)
				if k%3 == 0 {
					// Every third operation panics instead: the
					// builtin's panic must clean up the same way.
					mode, env = "panic", "panic:"+env
				}
				cmd, _, stderr := runIn(t, hostNs, journals, []string{faultEnv + "=" + env}, script)
				err := cmd.Run()
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.ExitCode() != 1 {
					t.Errorf("k=%d (%s): exit %v, want 1\nstderr:\n%s", k, mode, err, stderr)
				}
				want := fmt.Sprintf("injected fault at operation %d", k)
				if mode == "panic" {
					want = fmt.Sprintf("internal error: .*injected panic at operation %d", k)
				}
				if !regexp.MustCompile(regexp.QuoteMeta(filepath.Base(script)) + `:\d+:\d+: .*` + want).MatchString(stderr.String()) {
					t.Errorf("k=%d (%s): stderr does not name the script position and the operation:\n%s", k, mode, stderr)
				}
				if d := diffState(before, machineState(t, hostNs, journals)); d != "" {
					t.Fatalf("k=%d (%s): the machine changed:\n%s\nstderr:\n%s", k, mode, d, stderr)
				}
			}
			faultsInjected.Add(int64(ops))
		})
	}
}

// TestRandomSignals delivers SIGINT, SIGTERM or SIGKILL (then `nkscript
// cleanup`) at a random moment of a run, many times, with a printed seed.
func TestRandomSignals(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("NKSCRIPT_RELIABILITY_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (NKSCRIPT_RELIABILITY_SEED=%d reproduces it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	iterations := 6
	if longReliability() {
		iterations = 60
	}
	scripts := reliabilityScripts(t)
	hostNs := testHostNetns(t)
	journals := t.TempDir()
	before := machineState(t, hostNs, journals)
	// How long a whole run takes bounds the random delay.
	start := time.Now()
	if cmd, _, stderr := runIn(t, hostNs, journals, nil, scripts[0]); cmd.Run() != nil {
		t.Fatalf("clean run failed:\n%s", stderr)
	}
	full := time.Since(start)
	for i := range iterations {
		script := scripts[rng.IntN(len(scripts))]
		sig := []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGKILL}[rng.IntN(3)]
		delay := time.Duration(rng.Int64N(int64(full)))
		cmd, _, stderr := runIn(t, hostNs, journals, []string{readyFDEnv + "=3"}, script)
		caught := startWatchingSignals(t, cmd)
		time.Sleep(delay)
		handled := caught()
		cmd.Process.Signal(sig)
		err := cmd.Wait()
		signalsDelivered.Add(1)
		what := fmt.Sprintf("iteration %d: %s after %v in %s", i, sig, delay.Round(time.Millisecond), filepath.Base(script))
		if sig == syscall.SIGKILL {
			out, cerr := exec.Command("nsenter", "--net=/run/netns/"+hostNs, nkscriptBinary(t), "--journal-dir="+journals, "cleanup").CombinedOutput()
			if cerr != nil {
				t.Fatalf("%s: nkscript cleanup: %v\n%s", what, cerr, out)
			}
		} else if msg := checkSignalExit(err, sig, handled); msg != "" {
			t.Errorf("%s: %s\nstderr:\n%s", what, msg, stderr)
		}
		if d := diffState(before, machineState(t, hostNs, journals)); d != "" {
			t.Fatalf("%s: the machine changed:\n%s\nstderr:\n%s", what, d, stderr)
		}
	}
}

var faultsInjected, signalsDelivered atomic.Int64

// TestReliabilityReport writes what the tests above did, as JSON, to
// $NKSCRIPT_RELIABILITY_REPORT for hack/reliability.sh; it runs last in
// this file and does nothing unless the variable is set.
func TestReliabilityReport(t *testing.T) {
	path := os.Getenv("NKSCRIPT_RELIABILITY_REPORT")
	if path == "" {
		return
	}
	b, _ := json.Marshal(map[string]int64{"faults": faultsInjected.Load(), "signals": signalsDelivered.Load()})
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
