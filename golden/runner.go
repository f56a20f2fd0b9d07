package golden

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"

	"github.com/nkscript/nkscript/session"
	"github.com/rogpeppe/go-internal/diff"
)

// runAll runs the tests on this host and prints the summary.
func (tr *tester) runAll(ctx context.Context, files []*Script) int {
	interrupted := tr.runTests(ctx, files)
	code := tr.summary()
	if interrupted {
		code = exitFail
	}
	return code
}

// runTests runs the tests on this host and says whether ctx ended before
// they all ran.
func (tr *tester) runTests(ctx context.Context, files []*Script) bool {
	for _, tf := range files {
		if ctx.Err() != nil {
			break
		}
		switch {
		case tf.Err != nil:
			var b bytes.Buffer
			session.WriteError(&b, tf.Err)
			tr.report(tf.Path, false, b.String(), runResult{})
		case tf.Skip != "":
			tr.skip(tf, tf.Skip)
		case tr.unsupported(tf) != "":
			tr.skip(tf, tr.unsupported(tf))
		case tf.Cases == nil:
			tr.runScript(ctx, tf)
		default:
			tr.runCases(ctx, tf)
		}
	}
	interrupted := ctx.Err() != nil
	if interrupted {
		// The test that was running failed; the rest did not run.
		fmt.Fprintln(tr.cfg.Stderr, "nkscript test: interrupted")
	}
	return interrupted
}

func (tr *tester) skip(tf *Script, why string) {
	for _, n := range tf.names() {
		fmt.Fprintf(tr.cfg.Stderr, "skip %s%s: %s\n", tr.tag(), n, why)
		tr.skipped++
		tr.record(Result{Name: n, Status: Skip, Message: why})
	}
}

// tag is what the progress lines put before a test's name: the kernel,
// when the batch runs on several.
func (tr *tester) tag() string {
	if tr.cfg.Label == "" {
		return ""
	}
	return "[" + tr.cfg.Label + "] "
}

// record keeps a result for the reports and, in a guest, hands it to the
// host.
func (tr *tester) record(r Result) {
	r.Kernel = tr.kernel
	tr.results = append(tr.results, r)
	if tr.cfg.ResultsOut {
		b, _ := json.Marshal(r)
		fmt.Fprintf(tr.cfg.Stdout, "%s%s\n", resultMarker, b)
	}
}

// summary writes the reports and the summary line and returns the exit
// code.
func (tr *tester) summary() int {
	reported := writeReports(tr.cfg, tr.kernels, tr.results, tr.started)
	if !tr.cfg.JSON {
		fmt.Fprintf(tr.cfg.Stdout, "%d passed, %d failed", tr.passed, tr.failed)
		if tr.skipped > 0 {
			fmt.Fprintf(tr.cfg.Stdout, ", %d skipped", tr.skipped)
		}
		fmt.Fprintln(tr.cfg.Stdout)
	}
	if tr.failed > 0 || !reported {
		return exitFail
	}
	if tr.skipped > 0 && tr.cfg.NoSkip {
		fmt.Fprintf(tr.cfg.Stderr, "nkscript test: %d skipped under --no-skip\n", tr.skipped)
		return exitFail
	}
	return exitOK
}

// report prints a test's verdict and, after a failure, its details; res
// is its run.
func (tr *tester) report(name string, ok bool, details string, res runResult) {
	r := Result{Name: name, Status: Pass, Output: res.top + res.out, Seconds: res.elapsed.Seconds()}
	if ok {
		fmt.Fprintf(tr.cfg.Stderr, "ok  %s%s\n", tr.tag(), name)
		tr.passed++
	} else {
		fmt.Fprintf(tr.cfg.Stderr, "FAIL %s%s\n", tr.tag(), name)
		tr.failed++
		r.Status, r.Message = Fail, details
	}
	fmt.Fprint(tr.cfg.Stderr, details)
	tr.record(r)
}

// readGolden reads a golden file; a missing one reads as empty.
func readGolden(path string) (content string, missing bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", true, nil
	}
	return string(b), false, err
}

// writeGolden replaces a golden file, or with GoldenOut hands it to the
// host, and reports whether that worked.
func (tr *tester) writeGolden(path, content string) bool {
	if tr.cfg.GoldenOut {
		b, _ := json.Marshal(struct{ Path, Content string }{path, content})
		fmt.Fprintf(tr.cfg.Stdout, "%s%s\n", goldenMarker, b)
		return true
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		fmt.Fprintf(tr.cfg.Stderr, "nkscript test: update: %v\n", err)
		return false
	}
	fmt.Fprintf(tr.cfg.Stderr, "updated %s\n", path)
	return true
}

// runScript runs a script without test_* functions: one test.
func (tr *tester) runScript(ctx context.Context, tf *Script) {
	res := tr.runOnce(ctx, tf.Path, "")
	golden, err := ChooseGolden(tf.Golden, tf.VethGolden)
	if err != nil {
		tr.report(tf.Path, false, res.msg+fmt.Sprintf("nkscript test: %v\n", err), res)
		return
	}
	want, missing, err := readGolden(golden)
	if err != nil {
		tr.report(tf.Path, false, res.msg+fmt.Sprintf("nkscript test: %v\n", err), res)
		return
	}
	ok, details := res.msg == "", res.msg
	switch {
	case tr.cfg.Update:
		if ok && (missing || res.top != want) {
			defer func() {
				if !tr.writeGolden(golden, res.top) {
					tr.failed++
				}
			}()
		}
	case missing:
		ok = false
		details += missingGolden(golden) + goldenDiff(golden, "", tf.Path, res.top)
	case res.top != want:
		ok = false
		details += goldenDiff(golden, want, tf.Path, res.top)
	}
	tr.report(tf.Path, ok, details, res)
}

// runCases runs the selected test_* cases of a script.
func (tr *tester) runCases(ctx context.Context, tf *Script) {
	content, missing, err := readGolden(tf.Golden)
	if err != nil {
		tr.report(tf.Path, false, fmt.Sprintf("nkscript test: %v\n", err), runResult{})
		return
	}
	g := Parse(content)
	if !tr.cfg.Update {
		if msg := g.Check(tf); msg != "" {
			tr.report(tf.Path, false, msg, runResult{})
		}
	}
	var newTop *string
	newSections := map[string]string{}
	for _, c := range tf.Run {
		if ctx.Err() != nil {
			return
		}
		res := tr.runOnce(ctx, tf.Path, c)
		if res.topDone && newTop == nil {
			newTop = &res.top
		}
		if res.fnDone {
			newSections[c] = res.out
		}
		tr.reportCase(tf, c, g, missing, res)
	}
	if tr.cfg.Update && newTop != nil {
		tr.updateCases(tf, g, content, missing, *newTop, newSections)
	}
}

// reportCase compares the output of case c with its part of the golden
// file g and reports the verdict.
func (tr *tester) reportCase(tf *Script, c string, g File, missing bool, res runResult) {
	name := tf.Path + ":" + c
	got := res.top
	if res.topDone {
		got = g.Format(res.top, Section{c, res.out})
	}
	want := g.Format(g.Top)
	if s, ok := g.Sections[c]; ok {
		want = g.Format(g.Top, Section{c, s})
	}
	ok, details := res.msg == "", res.msg
	switch {
	case tr.cfg.Update:
	case missing:
		ok = false
		details += missingGolden(tf.Golden) + goldenDiff(tf.Golden, "", name, got)
	case got != want:
		ok = false
		details += goldenDiff(tf.Golden, want, name, got)
	}
	tr.report(name, ok, details, res)
}

// updateCases rewrites the golden file of tf, whose content was content,
// with the new top and the sections of the cases that ran, keeping the
// sections of the others and dropping those of removed cases.
func (tr *tester) updateCases(tf *Script, g File, content string, missing bool, top string, newSections map[string]string) {
	var sections []Section
	for _, c := range tf.Cases {
		if s, ok := newSections[c]; ok {
			sections = append(sections, Section{c, s})
		} else if s, ok := g.Sections[c]; ok {
			sections = append(sections, Section{c, s})
		}
	}
	if updated := g.Format(top, sections...); missing || updated != content {
		if !tr.writeGolden(tf.Golden, updated) {
			tr.failed++
		}
	}
}

func missingGolden(path string) string {
	return fmt.Sprintf("no golden file %s; run 'nkscript test --update' to create it\n", path)
}

// goldenDiff renders the difference between a golden file's content and a
// test's output as a unified diff.
func goldenDiff(golden, want, name, got string) string {
	d := diff.Diff(golden, []byte(want), name+" output", []byte(got))
	// Drop the "diff OLD NEW" line; the ---/+++ lines name both sides.
	_, d, _ = bytes.Cut(d, []byte("\n"))
	return string(d)
}

// Check reports sections of the golden file tf.Golden, read as g, that
// match no case of the script tf.
func (g File) Check(tf *Script) string {
	var msg string
	for _, name := range g.Order {
		if !slices.Contains(tf.Cases, name) {
			msg += fmt.Sprintf("%s has a section for %s, which %s does not define; 'nkscript test --update' removes it\n", tf.Golden, name, tf.Path)
		}
	}
	for _, name := range g.Dups {
		msg += fmt.Sprintf("%s has more than one section for %s; 'nkscript test --update' rewrites it\n", tf.Golden, name)
	}
	return msg
}
