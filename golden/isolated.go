package golden

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"sync"
)

// hostJob is one test of a batch run in parallel: the script, cut down to
// the one case if it has cases. A local job needs no lab (a script that
// does not parse, a skipped one) and is reported without a process of its
// own.
type hostJob struct {
	tf    *Script
	name  string
	local bool
}

// hostJobs splits files into one job per test.
func (tr *tester) hostJobs(files []*Script) []hostJob {
	var jobs []hostJob
	for _, tf := range files {
		switch {
		case tf.Err != nil || tf.Skip != "" || tr.unsupported(tf) != "":
			jobs = append(jobs, hostJob{tf, tf.Path, true})
		case tf.Cases == nil:
			jobs = append(jobs, hostJob{tf, tf.Path, false})
		default:
			for _, c := range tf.Run {
				one := *tf
				one.Run = []string{c}
				jobs = append(jobs, hostJob{&one, tf.Path + ":" + c, false})
			}
		}
	}
	return jobs
}

// parallel says whether the tests of files run up to Jobs at once
// (runParallel): where there is more than one to run, processes with
// namespaces of their own (RunIsolated) to run them in, and no golden
// file to rewrite.
func (tr *tester) parallel(files []*Script) bool {
	if tr.cfg.Jobs < 2 || tr.cfg.RunIsolated == nil || tr.cfg.Update {
		return false
	}
	n := 0
	for _, j := range tr.hostJobs(files) {
		if !j.local {
			n++
		}
	}
	return n > 1
}

// runParallel runs the tests of files on the running kernel up to Jobs
// at once, each in a process of its own with network namespaces and
// named namespaces of its own (Config.RunIsolated), so that concurrent
// labs, which use the same names and addresses, cannot meet, and their
// output, names and all, is what a run alone prints. Each test's lines
// go to out in the order of files, as a run one after the other writes
// them. It says whether ctx ended before the tests all ran.
func (tr *tester) runParallel(ctx context.Context, files []*Script, out io.Writer) bool {
	jobs := tr.hostJobs(files)
	results := make([][]Result, len(jobs))
	logs := make([]bytes.Buffer, len(jobs))
	done := make([]chan struct{}, len(jobs))
	for i := range done {
		done[i] = make(chan struct{})
	}
	printed := make(chan struct{})
	go func() {
		defer close(printed)
		for i := range jobs {
			<-done[i]
			out.Write(logs[i].Bytes())
		}
	}()
	sem := make(chan struct{}, max(tr.cfg.Jobs, 1))
	var wg sync.WaitGroup
	for i, j := range jobs {
		if j.local {
			if ctx.Err() == nil {
				results[i] = tr.runLocal(ctx, j, &logs[i])
			}
			close(done[i])
			continue
		}
		sem <- struct{}{}
		if ctx.Err() != nil {
			// After an interrupt the tests left do not run, and are
			// not reported, as in a run one after the other.
			<-sem
			close(done[i])
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; close(done[i]); wg.Done() }()
			results[i] = tr.runJob(ctx, j, &logs[i])
		}()
	}
	wg.Wait()
	<-printed
	for _, rs := range results {
		for _, r := range rs {
			tr.record(r)
		}
	}
	tr.passed, tr.failed, tr.skipped = Counts(tr.results)
	return ctx.Err() != nil
}

// sub returns a tester for one job of tr's batch: its lines go to
// stderr, its results stay with it.
func (tr *tester) sub(stderr io.Writer) *tester {
	one := newTester(tr.cfg, tr.kernel)
	one.cfg.Stderr, one.cfg.Stdout, one.cfg.ResultsOut = stderr, io.Discard, false
	return one
}

// runLocal reports a job that needs no lab and returns its results.
func (tr *tester) runLocal(ctx context.Context, j hostJob, stderr io.Writer) []Result {
	one := tr.sub(stderr)
	one.runTests(ctx, []*Script{j.tf})
	return one.results
}

// runJob runs one test in a process of its own and returns its results;
// the lines the process writes go to stderr.
func (tr *tester) runJob(ctx context.Context, j hostJob, stderr io.Writer) []Result {
	one := tr.sub(stderr)
	one.cfg.Run = regexp.MustCompile("^" + regexp.QuoteMeta(j.name) + "$")
	one.cfg.Paths = []string{j.tf.Path}
	one.cfg.Shard = [2]int{}
	var out bytes.Buffer
	code := tr.cfg.RunIsolated(ctx, one.guestArgs(true, tr.cfg.SkipUnsupported, 1), &out, stderr)
	files := []*Script{j.tf}
	if !one.readGuest(&out, files, false) {
		code = exitFail
	}
	one.fillMissing(files, code)
	return one.results
}
