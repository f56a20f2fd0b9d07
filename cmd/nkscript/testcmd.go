package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"

	"github.com/nkscript/nkscript/builtins"
	"github.com/nkscript/nkscript/datapath"
	"github.com/nkscript/nkscript/vm"
	"github.com/rogpeppe/go-internal/diff"
	"github.com/spf13/pflag"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

const testUsageText = `nkscript test runs lab scripts as golden-output tests.

Usage:
  nkscript test [--update] [--vm=auto|always|never] [--run REGEX] [PATH...]

Each PATH is a script or a directory searched recursively (default "."; directories
whose names start with "." are not searched). In a directory, NAME.star is a test
when NAME.golden sits beside it or when it defines top-level test_* functions;
other .star files (libraries that tests load()) are ignored, except that a .star
file that does not parse is a failure. A script named on the command line is
always a test.

A test runs on a fresh lab, removed when it ends (also on failure and Ctrl-C),
and its standard output (print() and the builtins' progress lines) must equal
NAME.golden byte for byte; a mismatch shows a unified diff.

A script that defines test_* functions is a set of cases, one per function, in
source order. For each case the top level runs in a fresh lab, then the function
is called with no arguments, then the lab is removed. Its golden file holds the
top level's output once, then, for each case, a line "--- test_name" followed by
what the function printed. Each case must reproduce the top-level part and its
own section.

Progress goes to standard error: "ok  NAME" or "FAIL NAME" for each test (NAME is
the script's path, plus ":test_name" for a case), with the script error
(FILE:LINE:COL) and the diff after a failure. Standard output gets one line:
"N passed, N failed" (", N skipped" is added when tests were skipped). Exit code:
0 if nothing failed, 1 otherwise, 2 on usage errors.

--update rewrites the golden files with the output of the runs that succeeded;
a failed run leaves its part of the golden file as it was.
--run REGEX runs only the tests whose NAME matches (unanchored).
--timeout applies to each test run.
--vm=auto runs the whole batch in one microVM when a selected script uses
netkit_pair and the host kernel lacks netkit; when the host cannot boot a
microVM either, those scripts are skipped. --vm=never runs on the host, where
such scripts fail; --vm=always always uses a microVM.

Flags:
`

// goldenMarker prefixes the lines on which a guest run with --golden-out
// hands golden file updates to the host, whose files it cannot write.
const goldenMarker = "nkscript-golden "

type testOptions struct {
	update    bool
	goldenOut bool
	vmMode    string
	run       *regexp.Regexp
	paths     []string
}

// testFile is one script selected by nkscript test.
type testFile struct {
	path   string   // as found; names the test in messages and for --run
	golden string   // NAME.golden beside it
	cases  []string // test_* functions in source order; nil: one test
	run    []string // the cases --run selected
	netkit bool     // the script or a file it loads uses netkit_pair
	err    error    // the file fails without running (it does not parse)
	skip   string   // why its tests are skipped
}

// cmdTest implements `nkscript test`.
func cmdTest(o *options, args []string, stdout, stderr io.Writer) int {
	var t testOptions
	var help bool
	var runRE string
	fs := pflag.NewFlagSet("nkscript test", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&t.update, "update", false, "rewrite the golden files with the scripts' output")
	fs.StringVar(&t.vmMode, "vm", o.vmMode, "where to run: auto, always, never")
	fs.Lookup("vm").NoOptDefVal = "always"
	fs.StringVar(&runRE, "run", "", "run only the tests whose name (FILE.star or FILE.star:test_name) matches this regular expression")
	fs.DurationVar(&o.timeout, "timeout", o.timeout, "stop each test run after this long (0: no limit)")
	fs.StringVar(&o.kernel, "kernel", o.kernel, "bzImage to boot for --vm")
	fs.StringVar(&o.journalDir, "journal-dir", o.journalDir, "where runs record what they create")
	fs.BoolVar(&t.goldenOut, "golden-out", false, "write golden file updates to standard output (used inside the microVM)")
	fs.MarkHidden("golden-out")
	fs.BoolVarP(&help, "help", "h", false, "show this help")
	fs.Usage = func() {
		fmt.Fprint(stderr, testUsageText)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintf(stderr, "nkscript test: %v\nRun 'nkscript test --help' for usage.\n", err)
		return exitUsage
	}
	if help {
		fs.SetOutput(stdout)
		fmt.Fprint(stdout, testUsageText)
		fs.PrintDefaults()
		return exitOK
	}
	switch t.vmMode {
	case "auto", "always", "never":
	default:
		fmt.Fprintf(stderr, "nkscript test: --vm=%s: use auto, always or never\n", t.vmMode)
		return exitUsage
	}
	if o.keep {
		fmt.Fprintln(stderr, "nkscript test: --keep does not apply to tests: every test's lab is removed")
		return exitUsage
	}
	if runRE != "" {
		re, err := regexp.Compile(runRE)
		if err != nil {
			fmt.Fprintf(stderr, "nkscript test: --run: %v\n", err)
			return exitUsage
		}
		t.run = re
	}
	t.paths = fs.Args()
	if len(t.paths) == 0 {
		t.paths = []string{"."}
	}
	files, err := findTests(t.paths)
	if err != nil {
		fmt.Fprintf(stderr, "nkscript test: %v\nRun 'nkscript test --help' for usage.\n", err)
		return exitUsage
	}
	files = selectTests(files, t.run)

	tr := &tester{o: o, t: t, stdout: stdout, stderr: stderr}
	if len(files) == 0 {
		fmt.Fprintf(stderr, "nkscript test: no tests to run in %s\n", strings.Join(t.paths, " "))
		return tr.summary()
	}
	if useVM, why := tr.decideVM(files); useVM {
		if why != "" {
			fmt.Fprintf(stderr, "nkscript test: %s; running the tests in a microVM\n", why)
		}
		return tr.runInVM(files)
	}
	return tr.runAll(files)
}

// findTests lists the test scripts under paths, in lexical order within
// each path. A path that does not exist, or a file that is not a .star
// script, is a usage error.
func findTests(paths []string) ([]*testFile, error) {
	var files []*testFile
	seen := map[string]bool{}
	add := func(tf *testFile) {
		if !seen[tf.path] {
			seen[tf.path] = true
			files = append(files, tf)
		}
	}
	for _, p := range paths {
		p = filepath.Clean(p)
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("%s: no such file or directory", p)
		}
		if !fi.IsDir() {
			if !strings.HasSuffix(p, ".star") {
				return nil, fmt.Errorf("%s: not a .star script", p)
			}
			add(inspectScript(p))
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				add(&testFile{path: path, err: err})
				return nil
			}
			if d.IsDir() {
				if path != p && strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(path, ".star") || !d.Type().IsRegular() {
				return nil
			}
			tf := inspectScript(path)
			if tf.err != nil || len(tf.cases) > 0 {
				add(tf)
			} else if _, err := os.Stat(tf.golden); err == nil {
				add(tf)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return files, nil
}

// inspectScript parses a script for its test_* functions and whether it
// needs netkit.
func inspectScript(path string) *testFile {
	tf := &testFile{path: path, golden: strings.TrimSuffix(path, ".star") + ".golden"}
	f, err := builtins.FileOptions.Parse(path, nil, 0)
	if err != nil {
		tf.err = err
		return tf
	}
	for _, stmt := range f.Stmts {
		if d, ok := stmt.(*syntax.DefStmt); ok && strings.HasPrefix(d.Name.Name, "test_") && !slices.Contains(tf.cases, d.Name.Name) {
			tf.cases = append(tf.cases, d.Name.Name)
		}
	}
	tf.netkit, _ = scriptNeedsNetkit(path)
	return tf
}

// selectTests keeps the files with tests whose names re matches, and in
// them the matching cases; a nil re selects everything.
func selectTests(files []*testFile, re *regexp.Regexp) []*testFile {
	var sel []*testFile
	for _, tf := range files {
		if tf.cases == nil {
			if re == nil || re.MatchString(tf.path) {
				sel = append(sel, tf)
			}
			continue
		}
		tf.run = nil
		for _, c := range tf.cases {
			if re == nil || re.MatchString(tf.path+":"+c) {
				tf.run = append(tf.run, c)
			}
		}
		if len(tf.run) > 0 {
			sel = append(sel, tf)
		}
	}
	return sel
}

// tester runs a batch of tests and counts the verdicts.
type tester struct {
	o                       *options
	t                       testOptions
	stdout, stderr          io.Writer
	passed, failed, skipped int
}

// decideVM says whether the batch runs in a microVM and, for --vm=auto,
// why. With --vm=auto on a host without netkit that cannot boot a
// microVM, it marks the scripts that need netkit as skipped.
func (tr *tester) decideVM(files []*testFile) (bool, string) {
	switch tr.t.vmMode {
	case "never":
		return false, ""
	case "always":
		return true, ""
	}
	if tr.o.kernel != "" {
		return true, ""
	}
	var users []string
	for _, tf := range files {
		if tf.netkit {
			users = append(users, tf.path)
		}
	}
	if len(users) == 0 || datapath.HaveNetkit() == nil {
		return false, ""
	}
	if err := vm.HostCanRunVM(); err != nil {
		for _, tf := range files {
			if tf.netkit {
				tf.skip = fmt.Sprintf("needs netkit, which the host kernel %s lacks, and no microVM can run here: %v", datapath.KernelRelease(), err)
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
// --update it hands the new golden files back on its standard output.
func (tr *tester) runInVM(files []*testFile) int {
	guest := []string{"test", "--vm=never"}
	if tr.t.update {
		guest = append(guest, "--update", "--golden-out")
	}
	if tr.o.journalDir != datapath.DefaultJournalDir {
		guest = append(guest, "--journal-dir="+tr.o.journalDir)
	}
	if tr.t.run != nil {
		guest = append(guest, "--run="+tr.t.run.String())
	}
	guest = append(guest, "--")
	guest = append(guest, tr.t.paths...)

	var out bytes.Buffer
	code := runInVM(tr.o, guest, &out, tr.stderr)
	goldens := map[string]bool{}
	for _, tf := range files {
		goldens[tf.golden] = true
	}
	sc := bufio.NewScanner(&out)
	sc.Buffer(nil, 1<<30)
	for sc.Scan() {
		line := sc.Text()
		upd, ok := strings.CutPrefix(line, goldenMarker)
		if !ok {
			fmt.Fprintln(tr.stdout, line)
			continue
		}
		var g struct{ Path, Content string }
		if err := json.Unmarshal([]byte(upd), &g); err != nil || !goldens[g.Path] {
			fmt.Fprintf(tr.stderr, "nkscript test: unexpected golden file update from the microVM: %.80s\n", upd)
			code = exitFail
			continue
		}
		if !tr.writeGolden(g.Path, g.Content) {
			code = exitFail
		}
	}
	return code
}

// runAll runs the tests on this host and prints the summary.
func (tr *tester) runAll(files []*testFile) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, tf := range files {
		if ctx.Err() != nil {
			break
		}
		switch {
		case tf.err != nil:
			var b bytes.Buffer
			printError(&b, tf.err)
			tr.report(tf.path, false, b.String())
		case tf.skip != "":
			names := []string{tf.path}
			if tf.cases != nil {
				names = names[:0]
				for _, c := range tf.run {
					names = append(names, tf.path+":"+c)
				}
			}
			for _, n := range names {
				fmt.Fprintf(tr.stderr, "skip %s: %s\n", n, tf.skip)
				tr.skipped++
			}
		case tf.cases == nil:
			tr.runScript(ctx, tf)
		default:
			tr.runCases(ctx, tf)
		}
	}
	interrupted := ctx.Err() != nil
	if interrupted {
		// The test that was running failed; the rest did not run.
		fmt.Fprintln(tr.stderr, "nkscript test: interrupted")
	}
	code := tr.summary()
	if interrupted {
		code = exitFail
	}
	return code
}

func (tr *tester) summary() int {
	fmt.Fprintf(tr.stdout, "%d passed, %d failed", tr.passed, tr.failed)
	if tr.skipped > 0 {
		fmt.Fprintf(tr.stdout, ", %d skipped", tr.skipped)
	}
	fmt.Fprintln(tr.stdout)
	if tr.failed > 0 {
		return exitFail
	}
	return exitOK
}

// report prints a test's verdict and, after a failure, its details.
func (tr *tester) report(name string, ok bool, details string) {
	if ok {
		fmt.Fprintf(tr.stderr, "ok  %s\n", name)
		tr.passed++
	} else {
		fmt.Fprintf(tr.stderr, "FAIL %s\n", name)
		tr.failed++
	}
	fmt.Fprint(tr.stderr, details)
}

// readGolden reads a golden file; a missing one reads as empty.
func readGolden(path string) (content string, missing bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", true, nil
	}
	return string(b), false, err
}

// writeGolden replaces a golden file, or with --golden-out hands it to the
// host, and reports whether that worked.
func (tr *tester) writeGolden(path, content string) bool {
	if tr.t.goldenOut {
		b, _ := json.Marshal(struct{ Path, Content string }{path, content})
		fmt.Fprintf(tr.stdout, "%s%s\n", goldenMarker, b)
		return true
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		fmt.Fprintf(tr.stderr, "nkscript test: update: %v\n", err)
		return false
	}
	fmt.Fprintf(tr.stderr, "updated %s\n", path)
	return true
}

// runScript runs a script without test_* functions: one test.
func (tr *tester) runScript(ctx context.Context, tf *testFile) {
	res := tr.runOnce(ctx, tf.path, "")
	want, missing, err := readGolden(tf.golden)
	if err != nil {
		tr.report(tf.path, false, res.msg+fmt.Sprintf("nkscript test: %v\n", err))
		return
	}
	ok, details := res.msg == "", res.msg
	switch {
	case tr.t.update:
		if ok && (missing || res.top != want) {
			defer func() {
				if !tr.writeGolden(tf.golden, res.top) {
					tr.failed++
				}
			}()
		}
	case missing:
		ok = false
		details += missingGolden(tf.golden) + goldenDiff(tf.golden, "", tf.path, res.top)
	case res.top != want:
		ok = false
		details += goldenDiff(tf.golden, want, tf.path, res.top)
	}
	tr.report(tf.path, ok, details)
}

// runCases runs the selected test_* cases of a script.
func (tr *tester) runCases(ctx context.Context, tf *testFile) {
	content, missing, err := readGolden(tf.golden)
	if err != nil {
		tr.report(tf.path, false, fmt.Sprintf("nkscript test: %v\n", err))
		return
	}
	g := parseGolden(content)
	if !tr.t.update {
		if msg := g.check(tf); msg != "" {
			tr.report(tf.path, false, msg)
		}
	}
	var newTop *string
	newSections := map[string]string{}
	for _, c := range tf.run {
		if ctx.Err() != nil {
			return
		}
		name := tf.path + ":" + c
		res := tr.runOnce(ctx, tf.path, c)
		if res.topDone && newTop == nil {
			newTop = &res.top
		}
		if res.fnDone {
			newSections[c] = res.out
		}
		got := res.top
		if res.topDone {
			got += header(c) + res.out
		}
		want := g.top
		if s, ok := g.sections[c]; ok {
			want += header(c) + s
		}
		ok, details := res.msg == "", res.msg
		switch {
		case tr.t.update:
		case missing:
			ok = false
			details += missingGolden(tf.golden) + goldenDiff(tf.golden, "", name, got)
		case got != want:
			ok = false
			details += goldenDiff(tf.golden, want, name, got)
		}
		tr.report(name, ok, details)
	}
	if !tr.t.update || newTop == nil {
		return
	}
	var b strings.Builder
	b.WriteString(*newTop)
	for _, c := range tf.cases {
		if s, ok := newSections[c]; ok {
			b.WriteString(header(c) + s)
		} else if s, ok := g.sections[c]; ok {
			b.WriteString(header(c) + s)
		}
	}
	if missing || b.String() != content {
		if !tr.writeGolden(tf.golden, b.String()) {
			tr.failed++
		}
	}
}

func header(name string) string { return "--- " + name + "\n" }

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

// golden is a golden file of a script with test_* cases: the top level's
// output, then one section per case.
type golden struct {
	top      string
	sections map[string]string
	order    []string
	dups     []string
}

var headerRE = regexp.MustCompile(`^--- (test_[A-Za-z0-9_]*)$`)

func parseGolden(s string) golden {
	g := golden{sections: map[string]string{}}
	cur := ""
	var b strings.Builder
	flush := func() {
		if cur == "" {
			g.top = b.String()
		} else if _, ok := g.sections[cur]; ok {
			g.dups = append(g.dups, cur)
		} else {
			g.sections[cur] = b.String()
			g.order = append(g.order, cur)
		}
		b.Reset()
	}
	for line := range strings.SplitAfterSeq(s, "\n") {
		if m := headerRE.FindStringSubmatch(strings.TrimSuffix(line, "\n")); m != nil {
			flush()
			cur = m[1]
			continue
		}
		b.WriteString(line)
	}
	flush()
	return g
}

// check reports sections of the golden file that match no case of the
// script.
func (g golden) check(tf *testFile) string {
	var msg string
	for _, name := range g.order {
		if !slices.Contains(tf.cases, name) {
			msg += fmt.Sprintf("%s has a section for %s, which %s does not define; 'nkscript test --update' removes it\n", tf.golden, name, tf.path)
		}
	}
	for _, name := range g.dups {
		msg += fmt.Sprintf("%s has more than one section for %s; 'nkscript test --update' rewrites it\n", tf.golden, name)
	}
	return msg
}

// runResult is the outcome of one run of a script.
type runResult struct {
	top     string // what the top level printed
	out     string // what the test function printed
	topDone bool   // the top level finished
	fnDone  bool   // the test function returned
	msg     string // why the run failed; "" if it did not
}

// runOnce runs the script's top level on a fresh lab and then calls the
// function fn, if not "". The lab is removed before it returns, whatever
// happens.
func (tr *tester) runOnce(ctx context.Context, path, fn string) (res runResult) {
	if tr.o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, tr.o.timeout)
		defer cancel()
	}
	abs, _ := filepath.Abs(path)
	lab, err := datapath.NewLab(datapath.LabConfig{JournalDir: tr.o.journalDir, Script: abs})
	if err != nil {
		res.msg = fmt.Sprintf("nkscript: %v\n", err)
		return res
	}
	defer func() {
		if err := lab.Close(); err != nil {
			res.msg += fmt.Sprintf("nkscript: cleanup failed: %v\nRun 'nkscript cleanup' to retry; the journal is %s\n", err, lab.JournalPath())
		}
	}()

	var out, msg bytes.Buffer
	defer func() { res.msg = msg.String() + res.msg }()
	defer func() {
		if p := recover(); p != nil {
			fmt.Fprintf(&msg, "nkscript: internal error: %v\n%s\nThe lab is being cleaned up. Please report this.\n", p, debug.Stack())
			if res.topDone {
				res.out = out.String()
			} else {
				res.top = out.String()
			}
			res.fnDone = false
		}
	}()
	r := builtins.NewRun(builtins.Options{Lab: lab, Context: ctx, Stdout: &out, Argv: []string{path}})
	thread := r.Thread(path)
	defer cancelThreadOnDone(ctx, thread)()
	failed := func(err error) {
		if ctx.Err() != nil {
			name := path
			if fn != "" {
				name += ":" + fn
			}
			fmt.Fprintf(&msg, "%s: %s; cleaning up\n", name, cancelReason(ctx))
			return
		}
		printError(&msg, err)
	}

	globals, err := r.ExecFile(thread, path, nil)
	res.top = out.String()
	if err != nil {
		failed(err)
		return res
	}
	res.topDone = true
	if fn == "" {
		return res
	}
	out.Reset()
	f, ok := globals[fn].(starlark.Callable)
	if !ok {
		fmt.Fprintf(&msg, "%s: %s is a %s at the end of the top level, not a function\n", path, fn, typeName(globals[fn]))
		return res
	}
	_, err = starlark.Call(thread, f, nil, nil)
	res.out = out.String()
	if err != nil {
		failed(err)
		return res
	}
	res.fnDone = true
	return res
}

func typeName(v starlark.Value) string {
	if v == nil {
		return "missing name"
	}
	return v.Type()
}
