package golden

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"sync"
)

// hostJob is one test of a host batch run in a process of its own: the
// script, cut down to the one case if it has cases.
type hostJob struct {
	tf   *Script
	name string
}

// hostJobs splits files into one job per test.
func hostJobs(files []*Script) []hostJob {
	var jobs []hostJob
	for _, tf := range files {
		if tf.Cases == nil {
			jobs = append(jobs, hostJob{tf, tf.Path})
			continue
		}
		for _, c := range tf.Run {
			one := *tf
			one.Run = []string{c}
			jobs = append(jobs, hostJob{&one, tf.Path + ":" + c})
		}
	}
	return jobs
}

// runIsolated runs the tests of files on this host up to Jobs at once,
// each in a process of its own with network namespaces and named
// namespaces of its own (Config.RunIsolated), so that concurrent labs,
// which use the same names and addresses, cannot meet, and their output,
// names and all, is what a run alone prints. Lines go to raw under mu.
func (tr *tester) runIsolated(ctx context.Context, files []*Script, mu *sync.Mutex, raw io.Writer) {
	jobs := hostJobs(files)
	results := make([][]Result, len(jobs))
	sem := make(chan struct{}, tr.cfg.Jobs)
	var wg sync.WaitGroup
	for i, j := range jobs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			results[i] = tr.runJob(ctx, j, mu, raw)
		}()
	}
	wg.Wait()
	for _, rs := range results {
		tr.results = append(tr.results, rs...)
	}
	tr.passed, tr.failed, tr.skipped = Counts(tr.results)
}

// runJob runs one test in a process of its own and returns its results.
func (tr *tester) runJob(ctx context.Context, j hostJob, mu *sync.Mutex, raw io.Writer) []Result {
	stderr := &lineWriter{mu: mu, w: raw}
	defer stderr.flush()
	one := newTester(tr.cfg, tr.kernel)
	one.cfg.Stderr = stderr
	one.cfg.Run = regexp.MustCompile("^" + regexp.QuoteMeta(j.name) + "$")
	one.cfg.Paths = []string{j.tf.Path}
	one.cfg.Shard = [2]int{}
	var out bytes.Buffer
	code := tr.cfg.RunIsolated(ctx, one.guestArgs(true, true), &out, stderr)
	files := []*Script{j.tf}
	if !one.readGuest(&out, files, false) {
		code = exitFail
	}
	one.fillMissing(files, code)
	return one.results
}
