package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"

	"github.com/nkscript/nkscript/golden"
	"github.com/nkscript/nkscript/session"
	"github.com/spf13/pflag"
)

const testUsageText = `nkscript test runs lab scripts as golden-output tests.

Usage:
  nkscript test [--update] [--vm=auto|always|never] [--run REGEX] [--no-skip] [PATH...]

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
is called with no arguments, then the lab is removed. Its golden file is a txtar
archive: the top level's output, then, for each case, a line "-- test_name --"
followed by what the function printed. Golden files whose sections start with
"--- test_name" lines are read too, and --update keeps that form. Each case must
reproduce the top-level part and its own section.

Progress goes to standard error: "ok  NAME" or "FAIL NAME" for each test (NAME is
the script's path, plus ":test_name" for a case), with the script error
(FILE:LINE:COL) and the diff after a failure. Standard output gets one line:
"N passed, N failed" (", N skipped" is added when tests were skipped). Exit code:
0 if nothing failed, 1 otherwise, 2 on usage errors. With --no-skip a skipped test
makes the exit code 1 too (make test uses it: CI must run every lab).

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

// cmdTest implements `nkscript test`.
func cmdTest(o *options, args []string, stdout, stderr io.Writer) int {
	t := golden.Config{Stdout: stdout, Stderr: stderr}
	var help bool
	var runRE string
	fs := pflag.NewFlagSet("nkscript test", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&t.Update, "update", false, "rewrite the golden files with the scripts' output")
	fs.BoolVar(&t.NoSkip, "no-skip", false, "exit 1 when tests were skipped")
	fs.StringVar(&t.VM, "vm", o.vmMode, "where to run: auto, always, never")
	fs.Lookup("vm").NoOptDefVal = "always"
	fs.StringVar(&runRE, "run", "", "run only the tests whose name (FILE.star or FILE.star:test_name) matches this regular expression")
	fs.DurationVar(&o.timeout, "timeout", o.timeout, "stop each test run after this long (0: no limit)")
	fs.StringVar(&o.kernel, "kernel", o.kernel, "bzImage to boot for --vm")
	fs.StringVar(&o.journalDir, "journal-dir", o.journalDir, "where runs record what they create")
	fs.BoolVar(&t.GoldenOut, "golden-out", false, "write golden file updates to standard output (used inside the microVM)")
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
	switch t.VM {
	case "auto", "always", "never":
	default:
		fmt.Fprintf(stderr, "nkscript test: --vm=%s: use auto, always or never\n", t.VM)
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
		t.Run = re
	}
	t.Paths = fs.Args()
	if len(t.Paths) == 0 {
		t.Paths = []string{"."}
	}
	files, err := golden.Find(t.Paths)
	if err != nil {
		fmt.Fprintf(stderr, "nkscript test: %v\nRun 'nkscript test --help' for usage.\n", err)
		return exitUsage
	}
	t.Kernel, t.Timeout, t.JournalDir = o.kernel, o.timeout, o.journalDir
	t.RunInVM = func(ctx context.Context, args []string, out io.Writer) int { return runInVM(ctx, o, args, out, stderr) }
	return golden.Run(session.CatchSignals().Context(), t, golden.Select(files, t.Run))
}
