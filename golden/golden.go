// Package golden runs lab scripts as golden-output tests, the engine of
// `nkscript test`: Find and Select pick the scripts, Run runs each test
// on a fresh lab (session.Run) and compares what it printed with its
// NAME.golden file (File), or rewrites that file with Config.Update.
// With Config.Kernels, RunKernels runs each test once per kernel, on the
// host and in microVMs, and reports a kernel × test table; the results
// (Result) also go to JUnit XML (WriteJUnit) or JSON (WriteJSON). Shard
// keeps one of N deterministic parts of a suite.
package golden

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/nkscript/nkscript/datapath"
	"github.com/nkscript/nkscript/internal/caps"
	"github.com/nkscript/nkscript/internal/kernelcheck"
	"github.com/nkscript/nkscript/vm"
)

// Exit codes of Run.
const (
	exitOK   = 0
	exitFail = 1
)

// Config says how Run runs a batch of tests.
type Config struct {
	// Update rewrites the golden files with the output of the runs that
	// succeeded.
	Update bool
	// NoSkip makes a batch in which tests were skipped fail.
	NoSkip bool
	// GoldenOut hands golden file updates to Stdout, marked, instead of
	// writing them (a microVM guest cannot write the host's files).
	GoldenOut bool
	// VM is where to run: "auto", "always" or "never".
	VM string
	// Kernel, if set, is the kernel to boot: the batch runs in a microVM.
	Kernel string
	// Run selects the tests by name; nil: all.
	Run *regexp.Regexp
	// Paths are the paths the scripts were found under.
	Paths []string
	// Timeout, if not 0, stops each test run after this long.
	Timeout time.Duration
	// JournalDir is where the runs record what they create.
	JournalDir string
	// Prefix, if set, is put in front of the names of the namespaces
	// and host links the runs create (datapath.LabConfig.Prefix), and
	// taken out of what they print before it is compared with, or
	// written to, a golden file: golden files hold the names the script
	// gives.
	Prefix string
	// Stdout receives the summary; Stderr the verdicts and details.
	Stdout, Stderr io.Writer
	// RunInVM runs `nkscript ARGS` in a microVM booting kernel ("" for
	// the Kernel field's), its standard output going to stdout and its
	// standard error to stderr, and returns its exit code.
	RunInVM func(ctx context.Context, kernel string, args []string, stdout, stderr io.Writer) int

	// RunIsolated, if set, runs `nkscript ARGS` on the running kernel
	// in network and mount namespaces of its own, where the named
	// network namespaces it makes are its own too; tests run through
	// it, Jobs at once.
	RunIsolated func(ctx context.Context, args []string, stdout, stderr io.Writer) int

	// Kernels, if set, are the kernels each test runs on (RunKernels):
	// "host", or a kernel the microVM boots (a pinned version or a
	// bzImage path).
	Kernels []string
	// Jobs is how many tests run at once on one kernel (with
	// RunIsolated; a microVM's guest gets it as -j), and how many kernels
	// RunKernels runs at once.
	Jobs int
	// Shard, if Shard[1] > 0, is "K/N": the batch's part of a suite the
	// guests select again.
	Shard [2]int
	// Label, if set, names the kernel in the progress lines.
	Label string
	// ResultsOut writes each result to Stdout, marked, for the host that
	// started this run in a microVM.
	ResultsOut bool
	// SkipUnsupported skips the scripts the running kernel cannot run:
	// those that make netkit pairs, without a branch on kernel.netkit,
	// on a kernel without netkit.
	SkipUnsupported bool
	// JUnit, if set, is the file the JUnit XML report goes to.
	JUnit string
	// JSON writes the results as a JSON document to Stdout instead of
	// the summary.
	JSON bool
}

// goldenMarker prefixes the lines on which a guest run with GoldenOut
// hands golden file updates to the host.
const goldenMarker = "nkscript-golden "

// Run runs the tests of files, on this host or in one microVM as
// cfg.VM decides (on each of cfg.Kernels, if set: RunKernels), prints
// the verdicts and the summary, writes the reports cfg asks for, and
// returns the exit code: 0 if nothing failed (and, with cfg.NoSkip,
// nothing was skipped), else 1. ctx ending (a signal) stops the batch.
func Run(ctx context.Context, cfg Config, files []*Script) int {
	if len(cfg.Kernels) > 0 {
		return RunKernels(ctx, cfg, files)
	}
	tr := newTester(cfg, "host")
	if len(files) == 0 {
		fmt.Fprintf(cfg.Stderr, "nkscript test: no tests to run in %s\n", strings.Join(cfg.Paths, " "))
		return tr.summary()
	}
	if useVM, why := tr.decideVM(files); useVM {
		if why != "" {
			fmt.Fprintf(cfg.Stderr, "nkscript test: %s; running the tests in a microVM\n", why)
		}
		tr.setKernel(cmp.Or(cfg.Kernel, vm.DefaultKernelRelease))
		return tr.runInVM(ctx, files)
	}
	if err := caps.LabError(vm.HostCanRunVM); err != nil {
		fmt.Fprintf(cfg.Stderr, "nkscript test: %v\n", err)
		return 1
	}
	if tr.parallel(files) {
		interrupted := tr.runParallel(ctx, files, cfg.Stderr)
		code := tr.summary()
		if interrupted {
			fmt.Fprintln(cfg.Stderr, "nkscript test: interrupted")
			code = exitFail
		}
		return code
	}
	return tr.runAll(ctx, files)
}

// tester runs a batch of tests and counts the verdicts.
type tester struct {
	cfg                     Config
	passed, failed, skipped int
	// kernel names the kernel in the results; kernels lists it for
	// the reports.
	kernel  string
	kernels []string
	results []Result
	started time.Time
}

func newTester(cfg Config, kernel string) *tester {
	tr := &tester{cfg: cfg, started: time.Now()}
	tr.setKernel(kernel)
	return tr
}

func (tr *tester) setKernel(k string) {
	if tr.cfg.Label != "" {
		k = tr.cfg.Label
	}
	tr.kernel, tr.kernels = k, []string{k}
}

// decideVM says whether the batch runs in a microVM and, for --vm=auto,
// why. With --vm=auto on a host without netkit that cannot boot a
// microVM, it marks the scripts that need netkit as skipped.
func (tr *tester) decideVM(files []*Script) (bool, string) {
	switch tr.cfg.VM {
	case "never":
		return false, ""
	case "always":
		return true, ""
	}
	if tr.cfg.Kernel != "" {
		return true, ""
	}
	if why := caps.LabReason(); why != "" && vm.HostCanRunVM() == nil {
		return true, why
	}
	var users []string
	for _, tf := range files {
		if tf.Netkit {
			users = append(users, tf.Path)
		}
	}
	if len(users) == 0 || datapath.HaveNetkit() == nil {
		return false, ""
	}
	if err := vm.HostCanRunVM(); err != nil {
		for _, tf := range files {
			if tf.Netkit {
				tf.Skip = fmt.Sprintf("needs netkit, which the host kernel %s lacks, and no microVM can run here: %v", datapath.KernelRelease(), err)
			}
		}
		return false, ""
	}
	who := users[0] + " uses"
	if len(users) > 1 {
		who = fmt.Sprintf("%s and %d more use", users[0], len(users)-1)
	}
	return true, fmt.Sprintf("the host kernel %s has no netkit (CONFIG_NETKIT) and %s netkit_pair", datapath.KernelRelease(), who)
}

// runInVM runs the batch in one microVM as `nkscript test --vm=never` with
// the same arguments. The guest sees the host's files read-only, so with
// --update it hands the new golden files back on its standard output;
// for the reports it hands back its results.
func (tr *tester) runInVM(ctx context.Context, files []*Script) int {
	reports := tr.cfg.JUnit != "" || tr.cfg.JSON
	var out bytes.Buffer
	code := tr.cfg.RunInVM(ctx, "", tr.guestArgs(reports, false, guestJobs(tr.cfg.Jobs)), &out, tr.cfg.Stderr)
	if !tr.readGuest(&out, files, !reports) {
		code = exitFail
	}
	if reports {
		// The guest's summary line was dropped: the host writes it
		// with the reports.
		tr.passed, tr.failed, tr.skipped = Counts(tr.results)
		code = max(code, tr.summary())
	}
	return code
}

// guestArgs are the arguments of `nkscript test` in a guest, or an
// isolated process, that runs this batch: results says it hands back its
// results, skip that it skips what its kernel cannot run, jobs how many
// tests it runs at once (0: its default).
func (tr *tester) guestArgs(results, skip bool, jobs int) []string {
	guest := []string{"test", "--vm=never"}
	if jobs > 0 {
		guest = append(guest, fmt.Sprintf("--jobs=%d", jobs))
	}
	if tr.cfg.Update {
		guest = append(guest, "--update", "--golden-out")
	}
	if tr.cfg.NoSkip && !results {
		guest = append(guest, "--no-skip")
	}
	if results {
		guest = append(guest, "--results-out")
	}
	if skip {
		guest = append(guest, "--skip-unsupported")
	}
	if tr.cfg.Label != "" {
		guest = append(guest, "--label="+tr.cfg.Label)
	}
	if tr.cfg.JournalDir != datapath.DefaultJournalDir {
		guest = append(guest, "--journal-dir="+tr.cfg.JournalDir)
	}
	if tr.cfg.Run != nil {
		guest = append(guest, "--run="+tr.cfg.Run.String())
	}
	if tr.cfg.Shard[1] > 0 {
		guest = append(guest, fmt.Sprintf("--shard=%d/%d", tr.cfg.Shard[0], tr.cfg.Shard[1]))
	}
	guest = append(guest, "--")
	return append(guest, tr.cfg.Paths...)
}

// readGuest reads what a guest wrote to its standard output: golden file
// updates, which it writes, results, which it keeps, and other lines,
// which go to Stdout if pass says so. It reports whether every update was
// expected and written.
func (tr *tester) readGuest(out io.Reader, files []*Script, pass bool) bool {
	ok := true
	goldens := map[string]bool{}
	for _, tf := range files {
		goldens[tf.Golden] = true
		if tf.VethGolden != "" {
			goldens[tf.VethGolden] = true
		}
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(nil, 1<<30)
	for sc.Scan() {
		line := sc.Text()
		if res, isRes := strings.CutPrefix(line, resultMarker); isRes {
			var r Result
			if err := json.Unmarshal([]byte(res), &r); err != nil {
				fmt.Fprintf(tr.cfg.Stderr, "nkscript test: unexpected result from the microVM: %.80s\n", res)
				ok = false
				continue
			}
			r.Kernel = tr.kernel
			tr.results = append(tr.results, r)
			continue
		}
		upd, isUpd := strings.CutPrefix(line, goldenMarker)
		if !isUpd {
			if pass {
				fmt.Fprintln(tr.cfg.Stdout, line)
			}
			continue
		}
		var g struct{ Path, Content string }
		if err := json.Unmarshal([]byte(upd), &g); err != nil || !goldens[g.Path] {
			fmt.Fprintf(tr.cfg.Stderr, "nkscript test: unexpected golden file update from the microVM: %.80s\n", upd)
			ok = false
			continue
		}
		if !tr.writeGolden(g.Path, g.Content) {
			ok = false
		}
	}
	return ok
}

// unsupported says why the running kernel cannot run the script, with
// SkipUnsupported: it makes netkit pairs, does not branch on
// kernel.netkit, and the kernel has no netkit. "" if it can.
func (tr *tester) unsupported(tf *Script) string {
	if !tr.cfg.SkipUnsupported || !tf.Netkit || tf.FallsBack {
		return ""
	}
	if nk, err := kernelcheck.Netkit(); err != nil || nk {
		return ""
	}
	return fmt.Sprintf("needs netkit, which the kernel %s lacks (Linux ≥ 6.7, CONFIG_NETKIT), and has no kernel.netkit fallback", datapath.KernelRelease())
}
