package golden

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/nkscript/nkscript/vm"
)

// HostKernel is the name --kernels gives the running kernel: the tests
// run on this host directly.
const HostKernel = "host"

// RunKernels runs every test of files once on each kernel of cfg.Kernels:
// on this host for HostKernel, each test in a process with namespaces of
// its own (RunIsolated), else in one microVM per kernel booting it, up to
// cfg.Jobs microVMs at once and the host's tests beside them. A kernel
// skips the scripts it cannot run (SkipUnsupported). Progress goes to
// Stderr, each line naming its kernel; Stdout gets the kernel × test
// table and then the summary line (or, with cfg.JSON, the results). The
// exit code is Run's.
func RunKernels(ctx context.Context, cfg Config, files []*Script) int {
	started := time.Now()
	if len(files) == 0 {
		fmt.Fprintf(cfg.Stderr, "nkscript test: no tests to run in %s\n", strings.Join(cfg.Paths, " "))
	}
	var mu sync.Mutex
	runs := make([]*tester, len(cfg.Kernels))
	sem := make(chan struct{}, max(cfg.Jobs, 1))
	var wg sync.WaitGroup
	for i, k := range cfg.Kernels {
		// The host's tests take no guest's place: they mostly wait
		// (for replies, for timeouts) while a guest emulates a CPU.
		guest := k != HostKernel
		if guest {
			sem <- struct{}{}
		}
		wg.Add(1)
		go func() {
			defer func() {
				if guest {
					<-sem
				}
				wg.Done()
			}()
			runs[i] = runKernel(ctx, cfg, k, files, &mu)
		}()
	}
	wg.Wait()
	var results []Result
	for _, tr := range runs {
		results = append(results, tr.results...)
	}
	all := &tester{cfg: cfg, kernels: cfg.Kernels, results: results, started: started}
	all.passed, all.failed, all.skipped = Counts(results)
	if !cfg.JSON && len(files) > 0 {
		writeTable(cfg.Stdout, cfg.Kernels, results)
	}
	code := all.summary()
	if ctx.Err() != nil {
		code = exitFail
	}
	return code
}

// runKernel runs the tests of files on kernel k and returns the tester
// that holds their results; mu serializes the lines the concurrent runs
// write to cfg.Stderr.
func runKernel(ctx context.Context, cfg Config, k string, files []*Script, mu *sync.Mutex) *tester {
	stderr := &lineWriter{mu: mu, w: cfg.Stderr}
	defer stderr.flush()
	kc := cfg
	kc.Kernels, kc.Label, kc.Stderr, kc.Stdout = nil, k, stderr, io.Discard
	kc.JUnit, kc.JSON, kc.NoSkip = "", false, false
	tr := newTester(kc, k)
	if len(files) == 0 {
		return tr
	}
	if k == HostKernel {
		tr.cfg.SkipUnsupported = true
		// Isolated with -j 1 too: a lab in this host's namespace meets
		// the other labs the machine runs (their addresses and routes
		// in it, forwarding() there, which namespaces made meanwhile
		// inherit).
		if cfg.RunIsolated != nil && !cfg.Update {
			tr.runParallel(ctx, files, stderr)
		} else {
			tr.runTests(ctx, files)
		}
		return tr
	}
	var out bytes.Buffer
	code := cfg.RunInVM(ctx, k, tr.guestArgs(true, true, guestJobs(cfg.Jobs)), &out, stderr)
	if !tr.readGuest(&out, files, false) {
		code = exitFail
	}
	tr.fillMissing(files, code)
	return tr
}

// fillMissing fails the tests of files a child run (a microVM's guest,
// an isolated process) that exited with code did not report, and, if it
// failed without reporting a failure, the run itself: a guest that did
// not boot or stopped early fails every test it did not run, naming its
// kernel.
func (tr *tester) fillMissing(files []*Script, code int) {
	got := map[string]bool{}
	failed := false
	for _, r := range tr.results {
		got[r.Name] = true
		failed = failed || r.Status == Fail
	}
	why := fmt.Sprintf("did not run: nkscript on kernel %s exited with code %d before reporting it\n", tr.kernel, code)
	for _, name := range Names(files) {
		if !got[name] {
			tr.report(name, false, why, runResult{})
			failed = true
		}
	}
	if code != exitOK && !failed {
		tr.report("nkscript on "+tr.kernel, false, fmt.Sprintf("nkscript on kernel %s exited with code %d\n", tr.kernel, code), runResult{})
	}
}

// guestJobs is how many tests a microVM's guest runs at once for -j jobs:
// jobs under KVM; one under TCG, where a test in a process of its own
// costs about a second and a half of emulated CPU before its lab starts,
// more than running beside another test gains (-j 2 in a guest took
// twice as long as -j 1 for the labs of scripts/).
func guestJobs(jobs int) int {
	if vm.Accel() == "tcg" {
		return 1
	}
	return jobs
}
