package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strings"

	"github.com/nkscript/nkscript/golden"
	"github.com/nkscript/nkscript/session"
	"github.com/nkscript/nkscript/vm"
	"github.com/spf13/pflag"
)

const testUsageText = `nkscript test runs lab scripts as golden-output tests.

Usage:
  nkscript test [--update] [--vm=auto|always|never] [--run REGEX] [--no-skip] [PATH...]
  nkscript test --kernels host,6.1,6.12 [-j N] [--junit FILE] [--json] [--shard K/N] [PATH...]
  nkscript test --list [--shard K/N] [--run REGEX] [PATH...]

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
'nkscript --prefix P test' puts P in front of the names of the namespaces and
host links the tests create, and takes P out of their output before comparing it
with, or writing it to, the golden files: pick a P the output has nowhere else.
--vm=auto runs the whole batch in one microVM when a selected script uses
netkit_pair and the host kernel lacks netkit; when the host cannot boot a
microVM either, those scripts are skipped. --vm=never runs on the host, where
such scripts fail; --vm=always always uses a microVM.

-j N runs up to N tests at once, each in a process with network namespaces of
its own (as unshare --net --mount makes), so that their labs cannot meet and
print what they print alone; the progress lines come in the order -j 1 writes
them. The default, 1, runs the tests one after the other in the caller's
network namespace. A microVM runs its tests one at a time under TCG (emulated
CPUs), where a process of its own costs more than it gains. --update runs one
test at a time.

--kernels LIST runs each test once per kernel of the comma-separated LIST: host
(this machine's kernel, directly), 6.1 or 6.12 (the pinned kernels, see
'nkscript kernels'), a bzImage path, or all (host and every pinned kernel). Each
microVM kernel boots once for the batch; -j N (default: the number of CPUs)
also runs up to N microVMs at once, and the host's tests beside them, each in a
process of its own even with -j 1 (in this host's own namespace a lab would
meet the other labs the machine runs). A script that makes netkit pairs and does not
branch on kernel.netkit is skipped, with the reason, on a kernel without netkit.
Progress lines name the kernel ("FAIL [6.1] NAME"); standard output gets a
kernel × test table, then the summary line.
--junit FILE writes JUnit XML: one testsuite per kernel, one testcase per test
(classname kernel-K), with the failure (script error, golden diff), the skip
reason, the output and the time. --json writes the same results as JSON to
standard output instead of the table and the summary line.
--shard K/N keeps the K-th of N parts of the selected tests: their names sorted
and dealt out round-robin, so every test is in exactly one part on any machine.
--list prints the names of the tests that would run, one per line, and runs none.

Flags:
`

// testFlags are the flags of `nkscript test` that do not go straight
// into golden.Config.
type testFlags struct {
	help, list bool
	runRE      string
	kernels    string
	shard      string
	jobsSet    bool // -j was given
}

// newTestFlags defines the flags of `nkscript test`.
func newTestFlags(o *options, t *golden.Config, tf *testFlags, stderr io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet("nkscript test", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&t.Update, "update", false, "rewrite the golden files with the scripts' output")
	fs.BoolVar(&t.NoSkip, "no-skip", false, "exit 1 when tests were skipped")
	fs.StringVar(&t.VM, "vm", o.vmMode, "where to run: auto, always, never")
	fs.Lookup("vm").NoOptDefVal = "always"
	fs.StringVar(&tf.runRE, "run", "", "run only the tests whose name (FILE.star or FILE.star:test_name) matches this regular expression")
	fs.DurationVar(&o.timeout, "timeout", o.timeout, "stop each test run after this long (0: no limit)")
	fs.StringVar(&o.kernel, "kernel", o.kernel, "bzImage to boot for --vm")
	fs.StringVar(&tf.kernels, "kernels", "", "run each test on every kernel of this comma-separated `LIST`: host, 6.1, 6.12, a bzImage path, all")
	fs.IntVarP(&t.Jobs, "jobs", "j", 0, "run up to `N` tests, and with --kernels up to N microVMs, at once (default: 1; with --kernels, the number of CPUs)")
	fs.StringVar(&t.JUnit, "junit", "", "write the results as JUnit XML to `FILE`")
	fs.BoolVar(&o.json, "json", o.json, "write the results as JSON to standard output instead of the summary")
	fs.StringVar(&tf.shard, "shard", "", "run only the `K/N`-th part of the selected tests")
	fs.BoolVar(&tf.list, "list", false, "print the tests that would run, one per line, and run none")
	fs.StringVar(&o.journalDir, "journal-dir", o.journalDir, "where runs record what they create")
	fs.BoolVar(&t.GoldenOut, "golden-out", false, "write golden file updates to standard output (used inside the microVM)")
	fs.BoolVar(&t.ResultsOut, "results-out", false, "write the results to standard output (used inside the microVM)")
	fs.BoolVar(&t.SkipUnsupported, "skip-unsupported", false, "skip the scripts the kernel cannot run (used inside the microVM)")
	fs.StringVar(&t.Label, "label", "", "name of the kernel in progress lines (used inside the microVM)")
	for _, name := range []string{"golden-out", "results-out", "skip-unsupported", "label"} {
		fs.MarkHidden(name)
	}
	fs.BoolVarP(&tf.help, "help", "h", false, "show this help")
	fs.Usage = func() {
		fmt.Fprint(stderr, testUsageText)
		fs.PrintDefaults()
	}
	return fs
}

// cmdTest implements `nkscript test`.
func cmdTest(o *options, args []string, stdout, stderr io.Writer) int {
	t := golden.Config{Stdout: stdout, Stderr: stderr}
	var tf testFlags
	fs := newTestFlags(o, &t, &tf, stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintf(stderr, "nkscript test: %v\nRun 'nkscript test --help' for usage.\n", err)
		return exitUsage
	}
	if tf.help {
		fs.SetOutput(stdout)
		fmt.Fprint(stdout, testUsageText)
		fs.PrintDefaults()
		return exitOK
	}
	tf.jobsSet = fs.Changed("jobs")
	if msg := checkTestFlags(o, &t, &tf); msg != "" {
		fmt.Fprintf(stderr, "nkscript test: %s\n", msg)
		return exitUsage
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
	files = golden.Select(files, t.Run)
	if t.Shard[1] > 0 {
		files = golden.Shard(files, t.Shard[0], t.Shard[1])
	}
	if tf.list {
		for _, name := range golden.Names(files) {
			fmt.Fprintln(stdout, name)
		}
		return exitOK
	}
	if err := enterIsolated(); err != nil {
		fmt.Fprintf(stderr, "nkscript test: %v\n", err)
		return exitFail
	}
	t.Kernel, t.Timeout, t.JournalDir, t.JSON, t.Prefix = o.kernel, o.timeout, o.journalDir, o.json, o.prefix
	t.RunInVM = func(ctx context.Context, kernel string, args []string, out, errOut io.Writer) int {
		guest := *o
		guest.json = false // the guest's results come back marked, not as a document
		guest.kernel = cmp.Or(kernel, o.kernel)
		return runInVM(ctx, &guest, args, out, errOut)
	}
	t.RunIsolated = isolatedRunner(o)
	return golden.Run(session.CatchSignals().Context(), t, files)
}

// checkTestFlags checks the flags of `nkscript test` and puts what they
// say into t; it returns what is wrong with them, or "".
func checkTestFlags(o *options, t *golden.Config, tf *testFlags) string {
	switch t.VM {
	case "auto", "always", "never":
	default:
		return fmt.Sprintf("--vm=%s: use auto, always or never", t.VM)
	}
	if o.keep {
		return "--keep does not apply to tests: every test's lab is removed"
	}
	if tf.runRE != "" {
		re, err := regexp.Compile(tf.runRE)
		if err != nil {
			return fmt.Sprintf("--run: %v", err)
		}
		t.Run = re
	}
	if tf.shard != "" {
		k, n, err := golden.ParseShard(tf.shard)
		if err != nil {
			return err.Error()
		}
		t.Shard = [2]int{k, n}
	}
	if tf.kernels != "" {
		ks, err := parseKernels(tf.kernels)
		if err != nil {
			return err.Error()
		}
		t.Kernels = ks
	}
	if t.Update && len(t.Kernels) > 1 {
		return "--update takes one kernel: the kernels would rewrite the same golden files"
	}
	if t.Jobs == 0 && !tf.jobsSet {
		// Tests run one after the other in this host's namespace
		// unless -j says otherwise: a paused test's lab is entered
		// from it.
		t.Jobs = 1
		if len(t.Kernels) > 0 {
			t.Jobs = runtime.NumCPU()
		}
	}
	if t.Jobs < 1 {
		return "-j: want at least 1"
	}
	return ""
}

// parseKernels reads the LIST of --kernels: host, a pinned kernel by
// version, a bzImage path, all.
func parseKernels(list string) ([]string, error) {
	var ks []string
	add := func(k string) {
		if !slices.Contains(ks, k) {
			ks = append(ks, k)
		}
	}
	for k := range strings.SplitSeq(list, ",") {
		k = strings.TrimSpace(k)
		switch {
		case k == "all":
			add(golden.HostKernel)
			for _, p := range vm.PinnedKernels {
				add(pinnedName(p))
			}
		case k == golden.HostKernel:
			add(k)
		case k == "":
			return nil, fmt.Errorf("--kernels %q: an empty kernel name", list)
		default:
			if _, ok := vm.PinnedKernel(k); ok {
				add(k)
				continue
			}
			if fi, err := os.Stat(k); err != nil || fi.IsDir() {
				return nil, fmt.Errorf("--kernels: %q is neither host, all, a pinned kernel (%s) nor a bzImage file", k, strings.Join(pinnedNames(), ", "))
			}
			add(k)
		}
	}
	return ks, nil
}

// pinnedName is the version a pinned kernel goes by: "6.12", "6.1".
func pinnedName(k vm.KernelSpec) string {
	parts := strings.SplitN(k.Release, ".", 3)
	if len(parts) < 2 {
		return k.Release
	}
	return parts[0] + "." + parts[1]
}

func pinnedNames() []string {
	var names []string
	for _, k := range vm.PinnedKernels {
		names = append(names, pinnedName(k))
	}
	return names
}
