package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nkscript/nkscript/datapath"
	"github.com/nkscript/nkscript/internal/machine"
	"github.com/nkscript/nkscript/internal/testenv"
)

// The reliability tests run the labs of scripts/ and the sweep-only labs
// of testdata/sweep/ (which reach what no shipped lab does: bridge(),
// link.set(), the xdp hook, trace()) and break them at every point: the
// k-th kernel-changing operation fails, and in another run panics; the
// k-th undo step of the lab's removal fails, and in another run panics; or
// a signal arrives at a random moment. Whatever happens, the machine must
// afterwards look as it did before: at once, or, where the run says its
// cleanup failed, after `nkscript cleanup` of the journal it left.
//
// NKSCRIPT_RELIABILITY=long runs the long version, as `make reliability`
// does: every lab, each operation and each undo step made to fail and,
// separately, to panic, and 60 signals. The default is the short version
// `make test` runs, which samples (reliabilityScripts and sweepPlan say
// exactly what; NKSCRIPT_RELIABILITY_DAY=N replays day N's sample).
// NKSCRIPT_RELIABILITY_SEED fixes the seed of the signal timings
// (default: time-based, printed).

func longReliability() bool { return os.Getenv("NKSCRIPT_RELIABILITY") == "long" }

// sampleDay rotates what the short version samples: the day of the year,
// or NKSCRIPT_RELIABILITY_DAY.
func sampleDay() int {
	if d, err := strconv.Atoi(os.Getenv("NKSCRIPT_RELIABILITY_DAY")); err == nil && d >= 0 {
		return d
	}
	return time.Now().YearDay()
}

// sweptScripts are the labs the long version sweeps on this kernel, as
// absolute paths: every lab of scripts/ (on a kernel with netkit, as in
// the microVM, they take their netkit branch) and of testdata/sweep/.
// Without netkit tutorial.star is left out: it needs netkit, and vmtest
// sweeps it in the microVM.
func sweptScripts(t *testing.T) []string {
	t.Helper()
	labs, err := filepath.Glob("../../scripts/*.star")
	if err != nil {
		t.Fatal(err)
	}
	sweepOnly, _ := filepath.Glob("../../testdata/sweep/*.star")
	if len(labs) == 0 || len(sweepOnly) == 0 {
		t.Fatal("no labs found in scripts/ or testdata/sweep/")
	}
	var out []string
	for _, p := range append(labs, sweepOnly...) {
		if filepath.Base(p) == "tutorial.star" && !kernelHasNetkit(t) {
			continue
		}
		abs, _ := filepath.Abs(p)
		out = append(out, abs)
	}
	return out
}

// kernelHasNetkit says, by a check independent of nkscript's own probe,
// whether the running kernel has netkit devices.
func kernelHasNetkit(t *testing.T) bool {
	t.Helper()
	has, err := testenv.HaveNetkit()
	if err != nil {
		t.Fatalf("does the kernel have netkit: %v", err)
	}
	return has
}

// reliabilityScripts are the labs this run sweeps: sweptScripts in the
// long version. The short version sweeps one lab of scripts/ that runs on
// every kernel and one other lab of scripts/, a different one each day;
// without netkit (the host) that lab is veth_tutorial.star and the
// sweep-only labs of testdata/sweep/ are swept too; with netkit (the
// microVM) it is tutorial.star, and the sweep-only labs, which make veth
// pairs only and are swept on the host, are not.
func reliabilityScripts(t *testing.T) []string {
	t.Helper()
	all := sweptScripts(t)
	if longReliability() {
		return all
	}
	always, netkit := "veth_tutorial.star", kernelHasNetkit(t)
	if netkit {
		always = "tutorial.star"
	}
	var out, others []string
	for _, p := range all {
		switch base, sweepOnly := filepath.Base(p), filepath.Base(filepath.Dir(p)) == "sweep"; {
		case base == always || (sweepOnly && !netkit):
			out = append(out, p)
		case sweepOnly:
		case base != "veth_tutorial.star" && base != "tutorial.star":
			others = append(others, p)
		}
	}
	if len(others) > 0 {
		out = append(out, others[sampleDay()%len(others)])
	}
	return out
}

// fault is one faulted run of a sweep.
type fault struct {
	k     int  // the k-th operation, or undo step
	undo  bool // an undo step
	panic bool // panic instead of failing
}

// env is the value of faultEnv that asks for f.
func (f fault) env() string {
	switch {
	case f.undo && f.panic:
		return fmt.Sprintf("undo-panic:%d", f.k)
	case f.undo:
		return fmt.Sprintf("undo:%d", f.k)
	case f.panic:
		return fmt.Sprintf("panic:%d", f.k)
	}
	return fmt.Sprint(f.k)
}

func (f fault) mode() string {
	if f.panic {
		return "panic"
	}
	return "fail"
}

func (f fault) String() string {
	if f.undo {
		return fmt.Sprintf("undo step %d (%s)", f.k, f.mode())
	}
	return fmt.Sprintf("operation %d (%s)", f.k, f.mode())
}

// sweepPlan is the faulted runs of a lab with ops operations and undos
// undo steps. The long version: every operation and every undo step, each
// made to fail and, in another run, to panic. The short version: every
// other operation (the odd ones one day, the even ones the next), each
// made either to fail or to panic, alternating, so that four days cover
// every operation in both modes; and one undo step, made to fail on even
// days and to panic on odd ones, rotating through the steps.
func sweepPlan(ops, undos int, long bool, day int) []fault {
	var plan []fault
	for k := 1; k <= ops; k++ {
		switch {
		case long:
			plan = append(plan, fault{k: k}, fault{k: k, panic: true})
		case (k+day)%2 == 0:
			plan = append(plan, fault{k: k, panic: ((k+day)/2)%2 == 1})
		}
	}
	for k := 1; k <= undos; k++ {
		switch {
		case long:
			plan = append(plan, fault{k: k, undo: true}, fault{k: k, undo: true, panic: true})
		case k == 1+day%undos:
			plan = append(plan, fault{k: k, undo: true, panic: day%2 == 1})
		}
	}
	return plan
}

// machineState lists what a run could leave behind or change, as the
// sorted lines of a machine.Snapshot: the test's host namespace hostNs
// (links, addresses, routes, rules, qdiscs, filters, BPF attachments and
// the sysctls labs change), the named namespaces, bpffs pins, tracing
// instances and the journals. While other packages' tests run beside
// these (go test ./...), the snapshot is local to the namespaces the
// labs can name and to the tracing instances nkscript names
// (internal/machine's tests make others); `make reliability` (NKSCRIPT_RELIABILITY=long), which
// runs this package alone, or NKSCRIPT_SNAPSHOT=machine takes the whole
// machine: every namespace by inode, BPF objects by ID, qemu processes.
func machineState(t *testing.T, hostNs, journals string) []string {
	t.Helper()
	opts := machine.Options{Journals: []string{journals}, Hosts: []string{hostNs}, Namespaces: labNetnsName().MatchString, Local: true,
		TraceInstances: func(name string) bool { return strings.HasPrefix(name, "nkscript-") }}
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
	return machine.Leaks(machine.Diff(machine.State{Lines: before}, machine.State{Lines: after}))
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

// cleanupIn runs `nkscript cleanup` of journals inside hostNs.
func cleanupIn(t *testing.T, hostNs, journals string) (string, error) {
	t.Helper()
	out, err := exec.Command("nsenter", "--net=/run/netns/"+hostNs, nkscriptBinary(t), "--journal-dir="+journals, "cleanup").CombinedOutput()
	return string(out), err
}

var (
	opsLine     = regexp.MustCompile(`nkscript: test: (\d+) kernel-changing operations, (\d+) undo steps`)
	reachedLine = regexp.MustCompile(`nkscript: test: fault points reached: (.*)`)
)

// opCount is what a run without faults performed.
type opCount struct {
	Ops     int            `json:"ops"`
	Undos   int            `json:"undo_steps"`
	Reached map[string]int `json:"reached"`
}

// countOps runs a script once without faults and returns what it
// performed: its kernel-changing operations, its undo steps and how often
// it passed each fault point.
func countOps(t *testing.T, hostNs, journals, script string) opCount {
	t.Helper()
	cmd, stdout, stderr := runIn(t, hostNs, journals, []string{faultEnv + "=count"}, script)
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s without faults: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(script), err, stdout, stderr)
	}
	m, r := opsLine.FindStringSubmatch(stderr.String()), reachedLine.FindStringSubmatch(stderr.String())
	if m == nil || r == nil {
		t.Fatalf("%s: no operation count on stderr:\n%s", filepath.Base(script), stderr)
	}
	c := opCount{Reached: map[string]int{}}
	c.Ops, _ = strconv.Atoi(m[1])
	c.Undos, _ = strconv.Atoi(m[2])
	for _, f := range strings.Fields(r[1]) {
		point, n, _ := strings.Cut(f, "=")
		c.Reached[point], _ = strconv.Atoi(n)
	}
	report.counted(filepath.Base(script), c)
	return c
}

// TestFaultSweep makes each kernel-changing operation and each undo step
// of each lab fail, and separately panic (the short version: a sample, see
// sweepPlan), and checks each run: it exits 1 naming the operation, and
// leaves the machine as it found it; or, for an undo step, it exits 1 with
// "cleanup failed", the machine differs only in what its journal lists,
// and `nkscript cleanup` of that journal restores it exactly.
func TestFaultSweep(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skipf(t, "needs root")
	}
	long, day := longReliability(), sampleDay()
	if !long {
		t.Logf("short version, sample of day %d (NKSCRIPT_RELIABILITY_DAY=%d replays it)", day, day)
	}
	for _, script := range reliabilityScripts(t) {
		t.Run(filepath.Base(script), func(t *testing.T) {
			hostNs := testHostNetns(t)
			journals := t.TempDir()
			before := machineState(t, hostNs, journals)
			c := countOps(t, hostNs, journals, script)
			if d := diffState(before, machineState(t, hostNs, journals)); d != "" {
				t.Fatalf("a clean run left the machine changed:\n%s", d)
			}
			t.Logf("%d kernel-changing operations, %d undo steps", c.Ops, c.Undos)
			for _, f := range sweepPlan(c.Ops, c.Undos, long, day) {
				if f.undo {
					sweepUndo(t, hostNs, journals, script, before, f)
				} else {
					sweepOp(t, hostNs, journals, script, before, f)
				}
				if t.Failed() {
					return
				}
			}
		})
	}
}

// exitCode is the exit status of a finished command, -1 if it did not
// exit (killed by a signal, not started).
func exitCode(err error) int {
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.ExitCode()
	}
	return -1
}

// sweepOp runs script with operation f.k failing or panicking.
func sweepOp(t *testing.T, hostNs, journals, script string, before []string, f fault) {
	t.Helper()
	cmd, _, stderr := runIn(t, hostNs, journals, []string{faultEnv + "=" + f.env()}, script)
	if err := cmd.Run(); exitCode(err) != 1 {
		t.Errorf("%v: exit %v, want 1\nstderr:\n%s", f, err, stderr)
	}
	want := fmt.Sprintf(`injected fault at operation %d \((\w+)\)`, f.k)
	if f.panic {
		want = fmt.Sprintf(`internal error: .*injected panic at operation %d \((\w+)\)`, f.k)
	}
	m := regexp.MustCompile(regexp.QuoteMeta(filepath.Base(script)) + `:\d+:\d+: .*` + want).FindStringSubmatch(stderr.String())
	if m == nil {
		t.Errorf("%v: stderr does not name the script position and the operation:\n%s", f, stderr)
	} else {
		report.injected(m[1], f)
	}
	if d := diffState(before, machineState(t, hostNs, journals)); d != "" {
		t.Fatalf("%v: the machine changed:\n%s\nstderr:\n%s", f, d, stderr)
	}
}

// sweepUndo runs script with undo step f.k failing or panicking: the run
// must say its cleanup failed, leave a journal that lists everything the
// machine still differs in, and `nkscript cleanup` must complete it.
func sweepUndo(t *testing.T, hostNs, journals, script string, before []string, f fault) {
	t.Helper()
	cmd, _, stderr := runIn(t, hostNs, journals, []string{faultEnv + "=" + f.env()}, script)
	if err := cmd.Run(); exitCode(err) != 1 {
		t.Errorf("%v: exit %v, want 1\nstderr:\n%s", f, err, stderr)
	}
	want := regexp.MustCompile(fmt.Sprintf(`cleanup failed: .*injected %s at undo step %d \(Undo\)`, map[bool]string{false: "fault", true: "panic"}[f.panic], f.k))
	if !want.MatchString(stderr.String()) {
		t.Errorf("%v: stderr does not say the cleanup failed at that step:\n%s", f, stderr)
	} else {
		report.injected("Undo", f)
	}
	js, _ := filepath.Glob(filepath.Join(journals, "*"))
	if len(js) != 1 {
		t.Fatalf("%v: journals %v, want the one of the failed cleanup\nstderr:\n%s", f, js, stderr)
	}
	_, left, err := datapath.ReadJournal(js[0])
	if err != nil || len(left) == 0 {
		t.Errorf("%v: the journal lists nothing left (%v)", f, err)
	}
	if bad := unexplained(diffState(before, machineState(t, hostNs, journals)), left, js[0]); bad != "" {
		t.Errorf("%v: the machine differs in what the journal does not list:\n%s\njournal: %v", f, bad, left)
	}
	if out, err := cleanupIn(t, hostNs, journals); err != nil {
		t.Errorf("%v: nkscript cleanup: %v\n%s", f, err, out)
	}
	if d := diffState(before, machineState(t, hostNs, journals)); d != "" {
		t.Fatalf("%v: after nkscript cleanup the machine changed:\n%s\nstderr:\n%s", f, d, stderr)
	}
}

// treeNamespaces lists the inodes of the namespaces mounted under the
// tree at path, from mountinfo (their root is "net:[INODE]").
func treeNamespaces(path string) []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var inos []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], path+"/") && strings.HasPrefix(f[3], "net:[") {
			inos = append(inos, strings.TrimSuffix(strings.TrimPrefix(f[3], "net:["), "]"))
		}
	}
	return inos
}

// unexplained returns the lines of diff that name neither the journal
// file nor anything a record of left names (see explains).
func unexplained(diff string, left []datapath.Record, journal string) string {
	var bad []string
	for _, l := range strings.Split(diff, "\n") {
		if l == "" || strings.HasSuffix(l, " "+journal) || strings.HasSuffix(l, "journal "+filepath.Base(journal)) {
			continue
		}
		if !slices.ContainsFunc(left, func(r datapath.Record) bool { return explains(r, l) }) {
			bad = append(bad, l)
		}
	}
	return strings.Join(bad, "\n")
}

// explains reports whether a line of a snapshot's diff is about what the
// record r names: by its name or path, a namespace also by its inode (the
// whole-machine snapshot lists the namespaces processes hold), and a
// sysctl of conf.all or net.ipv4.ip_forward also by the per-device
// settings the kernel changes with it (net.ipv6.conf.all.forwarding sets
// every device's forwarding).
func explains(r datapath.Record, line string) bool {
	s := r.String()
	names := []string{s, strings.ReplaceAll(s, ".", "/"), strings.Fields(s + " x")[0], filepath.Base(s)}
	switch r := r.(type) {
	case *datapath.NetnsRecord:
		if strings.HasSuffix(line, fmt.Sprintf(" netns %d", r.NS.Ino)) {
			return true
		}
	case *datapath.NetnsTreeRecord:
		// The namespaces still mounted in the tree go with it, named or
		// not: their names are removed before the tree is.
		if slices.ContainsFunc(treeNamespaces(r.Path), func(ino string) bool { return strings.HasSuffix(line, " netns "+ino) }) {
			return true
		}
	case *datapath.SysctlRecord:
		if family, param, ok := strings.Cut(r.Key, ".conf.all."); ok &&
			strings.Contains(line, " "+family+".conf.") && strings.Contains(line, "."+param+"=") {
			return true
		}
		// The kernel turns net.ipv4.ip_forward into every device's
		// forwarding, and accept_redirects off where it forwards.
		if r.Key == "net.ipv4.ip_forward" && strings.Contains(line, " net.ipv4.conf.") &&
			(strings.Contains(line, ".forwarding=") || strings.Contains(line, ".accept_redirects=")) {
			return true
		}
	}
	return slices.ContainsFunc(names, func(n string) bool { return n != "" && strings.Contains(line, n) })
}

// TestFaultPointsReached fails when a fault point of the faulty backend
// (datapath.FaultPoints) is reached by none of the labs the long sweep
// sweeps on this kernel (sweptScripts): a point no sweep reaches is a
// failure path nobody tested. Labs the sweep already counted are not run
// again.
func TestFaultPointsReached(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skipf(t, "needs root")
	}
	var hostNs, journals string
	union := map[string][]string{}
	for _, script := range sweptScripts(t) {
		base := filepath.Base(script)
		c, ok := report.count(base)
		if !ok {
			if hostNs == "" {
				hostNs, journals = testHostNetns(t), t.TempDir()
			}
			c = countOps(t, hostNs, journals, script)
		}
		for p, n := range c.Reached {
			if n > 0 {
				union[p] = append(union[p], base)
			}
		}
	}
	for _, p := range datapath.FaultPoints() {
		if len(union[p]) == 0 {
			t.Errorf("fault point %s is reached by no swept lab: add a lab under testdata/sweep/ that reaches it", p)
		}
	}
	for p := range union {
		if !slices.Contains(datapath.FaultPoints(), p) {
			t.Errorf("runs reached fault point %s, which datapath.FaultPoints does not list", p)
		}
	}
	report.setReached(union)
}

// TestRandomSignals delivers SIGINT, SIGTERM or SIGKILL (then `nkscript
// cleanup`) at a random moment of a run, many times, with a printed seed.
// Each delay is drawn from the duration of a clean run of the same lab;
// each signal is counted by the phase the run had reached when it was
// sent (startup, building, traffic, teardown) and by how the run ended,
// and a run that had already exited gets no signal and is counted apart.
func TestRandomSignals(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skipf(t, "needs root")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("NKSCRIPT_RELIABILITY_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (NKSCRIPT_RELIABILITY_SEED=%d reproduces it)", seed, seed)
	report.setSeed(seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	iterations := 6
	if longReliability() {
		iterations = 60
	}
	scripts := reliabilityScripts(t)
	hostNs := testHostNetns(t)
	journals := t.TempDir()
	before := machineState(t, hostNs, journals)
	// How long a clean run of each lab takes bounds the delays aimed at
	// it (the binary is built first, not while the first one is timed).
	nkscriptBinary(t)
	full := map[string]time.Duration{}
	for _, script := range scripts {
		start := time.Now()
		if cmd, _, stderr := runIn(t, hostNs, journals, nil, script); cmd.Run() != nil {
			t.Fatalf("clean run of %s failed:\n%s", filepath.Base(script), stderr)
		}
		full[script] = time.Since(start)
		t.Logf("%s: a clean run takes %v", filepath.Base(script), full[script].Round(time.Millisecond))
	}
	for i := range iterations {
		script := scripts[rng.IntN(len(scripts))]
		sig := []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGKILL}[rng.IntN(3)]
		delay := time.Duration(rng.Int64N(int64(full[script])))
		what := fmt.Sprintf("iteration %d: %s after %v in %s", i, sig, delay.Round(time.Millisecond), filepath.Base(script))
		randomSignal(t, hostNs, journals, script, sig, delay, what)
		if d := diffState(before, machineState(t, hostNs, journals)); d != "" {
			t.Fatalf("%s: the machine changed:\n%s", what, d)
		}
	}
}

// randomSignal runs script, sends it sig after delay unless it has exited
// by then, checks how it ended (running `nkscript cleanup` after SIGKILL)
// and counts the outcome.
func randomSignal(t *testing.T, hostNs, journals, script string, sig syscall.Signal, delay time.Duration, what string) {
	t.Helper()
	cmd, _, stderr := runIn(t, hostNs, journals, []string{readyFDEnv + "=3", phasesFDEnv + "=4"}, script)
	w := startWatching(t, cmd)
	time.Sleep(delay)
	phase, sent, err := w.signal(sig)
	if err != nil {
		t.Errorf("%s: %v", what, err)
	}
	werr := cmd.Wait()
	outcome := "after exit"
	switch {
	case !sent:
		if werr != nil {
			t.Errorf("%s: the run exited before the signal, with %v\nstderr:\n%s", what, werr, stderr)
		}
	case sig == syscall.SIGKILL:
		outcome = "killed"
		if out, cerr := cleanupIn(t, hostNs, journals); cerr != nil {
			t.Fatalf("%s: nkscript cleanup: %v\n%s", what, cerr, out)
		}
	default:
		if msg := checkSignalExit(werr, sig, w.handled()); msg != "" {
			t.Errorf("%s (phase %s): %s\nstderr:\n%s", what, phase, msg, stderr)
		}
		outcome = "interrupted"
		if werr == nil {
			outcome = "ended normally"
		}
	}
	t.Logf("%s: phase %s, %s", what, phase, outcome)
	report.signal(phase, outcome)
}

// report gathers what the tests of this file did, for TestReliabilityReport.
var report = &reliabilityReport{
	Scripts: map[string]opCount{},
	Points:  map[string]map[string]int{},
	Signals: map[string]map[string]int{},
}

// reliabilityReport is what the sweep and the signal test measured.
type reliabilityReport struct {
	mu sync.Mutex
	// Long says whether this was the long version.
	Long bool `json:"long"`
	// Scripts is what a clean run of each counted lab performed.
	Scripts map[string]opCount `json:"scripts"`
	// Points counts, per fault point, the runs in which it was made to
	// "fail" and to "panic".
	Points map[string]map[string]int `json:"points"`
	// Faults is the number of faulted runs.
	Faults int `json:"faults"`
	// Reached lists, per fault point, the swept labs that reach it;
	// AllPoints is datapath.FaultPoints().
	Reached   map[string][]string `json:"reached"`
	AllPoints []string            `json:"all_points"`
	// Signals counts signals by the phase the run was in when it was
	// sent and by how it ended: "interrupted", "killed", "ended
	// normally"; or, in phase "exited", "after exit" (not sent: the run
	// had exited).
	Signals map[string]map[string]int `json:"signals"`
	Seed    uint64                    `json:"seed"`
}

func (r *reliabilityReport) counted(script string, c opCount) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Scripts[script] = c
}

func (r *reliabilityReport) count(script string) (opCount, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.Scripts[script]
	return c, ok
}

func (r *reliabilityReport) injected(point string, f fault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Points[point] == nil {
		r.Points[point] = map[string]int{}
	}
	r.Points[point][f.mode()]++
	r.Faults++
}

func (r *reliabilityReport) setReached(m map[string][]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Reached, r.AllPoints = m, datapath.FaultPoints()
}

func (r *reliabilityReport) setSeed(seed uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Seed = seed
}

func (r *reliabilityReport) signal(phase, outcome string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Signals[phase] == nil {
		r.Signals[phase] = map[string]int{}
	}
	r.Signals[phase][outcome]++
}

// TestReliabilityReport writes what the tests above did, as JSON, to
// $NKSCRIPT_RELIABILITY_REPORT and as Markdown tables to the same path
// with ".md" added, for hack/reliability.sh; it runs last in this file and
// does nothing unless the variable is set.
func TestReliabilityReport(t *testing.T) {
	path := os.Getenv("NKSCRIPT_RELIABILITY_REPORT")
	if path == "" {
		return
	}
	report.mu.Lock()
	defer report.mu.Unlock()
	report.Long = longReliability()
	b, err := json.MarshalIndent(report, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".md", []byte(report.markdown()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// markdown renders the report as the tables of docs/RELIABILITY.md.
func (r *reliabilityReport) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "| fault point | reached by | made to fail | made to panic |\n|---|---|---|---|\n")
	for _, p := range r.AllPoints {
		labs := r.Reached[p]
		slices.Sort(labs)
		fmt.Fprintf(&b, "| `%s` | %s | %d | %d |\n", p, strings.Join(labs, ", "), r.Points[p]["fail"], r.Points[p]["panic"])
	}
	fmt.Fprintf(&b, "\n| lab | operations | undo steps | fault points reached |\n|---|---|---|---|\n")
	for _, s := range slices.Sorted(maps.Keys(r.Scripts)) {
		c := r.Scripts[s]
		var pts []string
		for _, p := range slices.Sorted(maps.Keys(c.Reached)) {
			pts = append(pts, fmt.Sprintf("%s=%d", p, c.Reached[p]))
		}
		fmt.Fprintf(&b, "| `%s` | %d | %d | %s |\n", s, c.Ops, c.Undos, strings.Join(pts, " "))
	}
	outcomes := []string{"interrupted", "killed", "ended normally", "after exit"}
	fmt.Fprintf(&b, "\n| phase when sent | %s |\n|---|---|---|---|---|\n", strings.Join(outcomes, " | "))
	for _, ph := range []string{"startup", "building", "traffic", "teardown", "exited"} {
		fmt.Fprintf(&b, "| %s |", ph)
		for _, o := range outcomes {
			fmt.Fprintf(&b, " %d |", r.Signals[ph][o])
		}
		b.WriteString("\n")
	}
	return b.String()
}
