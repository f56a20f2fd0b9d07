package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/nkscript/nkscript/builtins"
	"github.com/nkscript/nkscript/datapath"
	"github.com/nkscript/nkscript/vm"
	"github.com/spf13/pflag"
	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // script error or failed expectation
	exitUsage = 2
)

// version is set at link time by the Makefile.
var version = ""

// Main runs nkscript with os.Args and returns the exit code.
func Main() int {
	if vm.IsGuest() {
		vm.Guest(func(args []string, stdout, stderr io.Writer) int {
			return run(args, stdout, stderr)
		})
		return 0
	}
	return run(os.Args[1:], os.Stdout, os.Stderr)
}

type options struct {
	keep       bool
	vmMode     string
	kernel     string
	timeout    time.Duration
	journalDir string
	json       bool
	maxSteps   uint64
	prefix     string
	dryRun     bool
	pauseFail  bool
	trace      bool
	profile    bool
	allowPaths []string
	help       bool
	version    bool
}

const usageText = `nkscript runs network labs written in Starlark.

Usage:
  nkscript [flags] FILE.star [ARGS...]   run a lab script
  nkscript [flags]                       start a REPL (also: nkscript repl)
  nkscript test [flags] [PATH...]        run *.star tests against their NAME.golden files (see test --help)
  nkscript graph [--format F] FILE.star  draw the lab a script builds (mermaid, dot, svg)
  nkscript cleanup                       remove what runs killed with SIGKILL left behind
  nkscript kernels [--fetch]             list the cached microVM kernels (--fetch: download the pinned 6.12 and 6.1)
  nkscript doc [NAME]                    print the builtin reference, or one builtin's entry
  nkscript version                       print the version

Exit codes: 0 success, 1 script error or failed expectation, 2 usage error.

Flags:
`

func newFlags(o *options, stderr io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet("nkscript", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SetInterspersed(false)
	fs.BoolVar(&o.keep, "keep", false, "leave the lab up when the script ends and print how to remove it")
	fs.StringVar(&o.vmMode, "vm", "auto", "where to run: auto (host if its kernel has what the script needs, else a microVM), always, never")
	fs.Lookup("vm").NoOptDefVal = "always"
	fs.StringVar(&o.kernel, "kernel", "", "kernel to boot for --vm: a pinned one by version (6.12, the default; 6.1, without netkit and tcx) or a bzImage path")
	fs.DurationVar(&o.timeout, "timeout", 0, "stop the run after this long, cleaning up (0: no limit)")
	fs.StringVar(&o.journalDir, "journal-dir", datapath.DefaultJournalDir, "where runs record what they create")
	fs.BoolVar(&o.json, "json", false, "after the run, write a JSON report of every expectation to stdout; print() and progress lines go to stderr")
	fs.Uint64Var(&o.maxSteps, "max-steps", builtins.DefaultMaxSteps, "stop a script after this many Starlark execution steps (runaway loops), cleaning up")
	fs.BoolVar(&o.profile, "profile", false, "print to stderr, at exit, the wall time spent per phase (namespaces, links, addresses, routes, sysctls, programs, checks, teardown)")
	fs.BoolVar(&o.trace, "trace", false, "stream what BPF programs write with bpf_printk to stderr while the script runs")
	fs.BoolVar(&o.pauseFail, "pause-on-fail", false, "at the first failed expectation, keep the lab up and wait for Enter, printing how to enter each namespace")
	fs.BoolVar(&o.dryRun, "dry-run", false, "change nothing: print the shell commands (ip, sysctl, bpftool) that would build the lab; bash runs them")
	fs.StringVar(&o.prefix, "prefix", "", "put `P` in front of the names of the namespaces the script creates and of its links in the host, so that runs of one script can share a machine")
	fs.StringArrayVar(&o.allowPaths, "allow-path", nil, "let load() read files under `DIR` too, not only under the script's directory (repeatable)")
	fs.BoolVarP(&o.help, "help", "h", false, "show this help")
	fs.BoolVar(&o.version, "version", false, "print the version")
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fs.PrintDefaults()
	}
	return fs
}

func run(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := newFlags(&o, stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintf(stderr, "nkscript: %v\nRun 'nkscript --help' for usage.\n", err)
		return exitUsage
	}
	if o.help {
		fs.SetOutput(stdout)
		fmt.Fprint(stdout, usageText)
		fs.PrintDefaults()
		return exitOK
	}
	if o.version {
		return cmdVersion(stdout)
	}
	switch o.vmMode {
	case "auto", "always", "never":
	default:
		fmt.Fprintf(stderr, "nkscript: --vm=%s: use auto, always or never\n", o.vmMode)
		return exitUsage
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return runREPL(&o, stdout, stderr)
	}
	switch rest[0] {
	case "version":
		return cmdVersion(stdout)
	case "cleanup":
		return cmdCleanup(&o, rest[1:], stdout, stderr)
	case "doc":
		return cmdDoc(rest[1:], stdout, stderr)
	case "kernels":
		return cmdKernels(rest[1:], stdout, stderr)
	case "test":
		return cmdTest(&o, rest[1:], stdout, stderr)
	case "graph":
		return cmdGraph(&o, rest[1:], stdout, stderr)
	case "repl":
		return runREPL(&o, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usageText)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return exitOK
	}
	script := rest[0]
	if _, err := os.Stat(script); err != nil {
		fmt.Fprintf(stderr, "nkscript: %s: no such script file\nRun 'nkscript --help' for usage.\n", script)
		return exitUsage
	}
	return runScript(&o, script, rest[1:], args, stdout, stderr)
}

func cmdVersion(stdout io.Writer) int {
	v := version
	if v == "" {
		v = "(devel)"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
			v = bi.Main.Version
		}
	}
	fmt.Fprintf(stdout, "nkscript %s\n", v)
	return exitOK
}

// runScript runs one script on the host, or in a microVM when --vm says so.
func runScript(o *options, script string, scriptArgs, allArgs []string, stdout, stderr io.Writer) int {
	if o.dryRun {
		return dryRun(o, script, scriptArgs, stdout, stderr)
	}
	// The lab's first namespace is made while the rest of this function
	// decides where to run, opens the journal and compiles the script.
	var prefetch *datapath.Prefetch
	if o.vmMode != "always" && o.kernel == "" && os.Geteuid() == 0 {
		prefetch = datapath.StartPrefetch()
	}
	defer prefetch.Close()
	useVM, why, err := decideVM(o, script)
	if err != nil {
		fmt.Fprintf(stderr, "nkscript: %v\n", err)
		return exitFail
	}
	if useVM {
		prefetch.Close()
		if why != "" {
			fmt.Fprintf(stderr, "nkscript: %s; running in a microVM\n", why)
		}
		return runInVM(o, allArgs, stdout, stderr)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}

	abs, _ := filepath.Abs(script)
	lab, err := datapath.NewLab(datapath.LabConfig{JournalDir: o.journalDir, Script: abs, Prefix: o.prefix, Prefetch: prefetch, Faults: faultPlan(),
		Notice: func(msg string) { fmt.Fprintf(stderr, "nkscript: %s\n", msg) }})
	if err != nil {
		fmt.Fprintf(stderr, "nkscript: %v\n", err)
		return exitFail
	}
	if o.profile {
		lab.EnableProfile()
		start := time.Now()
		defer func() { lab.WriteProfile(stderr, time.Since(start)) }()
	}
	if o.trace {
		t, err := lab.Trace()
		if err != nil {
			fmt.Fprintf(stderr, "nkscript: --trace: %v\n", err)
			return finish(o, lab, exitFail, stderr)
		}
		t.Subscribe(func(line string) { fmt.Fprintf(stderr, "trace: %s\n", line) })
	}
	ctx, stdout, rep := setupJSON(ctx, o.json, script, stdout, stderr)
	code := execScript(ctx, o, lab, script, scriptArgs, stdout, stderr)
	return rep.emit(finish(o, lab, code, stderr))
}

// finish cleans the lab up (or keeps it with --keep) and returns the
// final exit code.
func finish(o *options, lab *datapath.Lab, code int, stderr io.Writer) int {
	// A second Ctrl-C must not interrupt cleanup.
	signal.Ignore(os.Interrupt, syscall.SIGTERM)
	defer signal.Reset(os.Interrupt, syscall.SIGTERM)
	if os.Getenv(faultEnv) == "count" {
		// Test hook: how many operations a fault sweep has to cover.
		fmt.Fprintf(stderr, "nkscript: test: %d kernel-changing operations\n", lab.Ops())
	}
	if o.keep {
		printKeep(lab, stderr)
		if err := lab.Keep(); err != nil {
			fmt.Fprintf(stderr, "nkscript: keep: %v\n", err)
			return exitFail
		}
		return code
	}
	if err := lab.Close(); err != nil {
		fmt.Fprintf(stderr, "nkscript: cleanup failed: %v\nRun 'nkscript cleanup' to retry; the journal is %s\n", err, lab.JournalPath())
		return exitFail
	}
	return code
}

func printKeep(lab *datapath.Lab, w io.Writer) {
	fmt.Fprintln(w, "nkscript: --keep: the lab stays up.")
	for _, ns := range lab.Namespaces() {
		fmt.Fprintf(w, "  enter %s: ip netns exec %s bash\n", ns.Name(), ns.Name())
	}
	fmt.Fprintln(w, "  remove it: nkscript cleanup")
}

// execScript runs the script with panics and signals turned into errors;
// the caller cleans up.
func execScript(ctx context.Context, o *options, lab *datapath.Lab, script string, scriptArgs []string, stdout, stderr io.Writer) (code int) {
	r := builtins.NewRun(builtins.Options{Lab: lab, Context: ctx, Stdout: stdout, Argv: append([]string{script}, scriptArgs...),
		MaxSteps: o.maxSteps, AllowPaths: o.allowPaths,
		Pause: pauser(ctx, os.Stdin, stderr), PauseOnFail: o.pauseFail})
	jsonRun(ctx, r)
	thread := r.Thread(script)
	defer func() {
		if p := recover(); p != nil {
			fmt.Fprintf(stderr, "nkscript: internal error: %v\n%s\nThe lab is being cleaned up. Please report this.\n", p, debug.Stack())
			code = exitFail
		}
	}()
	defer cancelThreadOnDone(ctx, thread)()
	if _, err := r.ExecFile(thread, script, nil); err != nil {
		jsonFail(ctx, err)
		if ctx.Err() != nil {
			fmt.Fprintf(stderr, "%s: %s; cleaning up\n", script, cancelReason(ctx))
			return exitFail
		}
		printError(stderr, err)
		if strings.Contains(err.Error(), "too many steps") {
			fmt.Fprintf(stderr, "nkscript: the script ran more than %d Starlark steps (a runaway loop?); raise the limit with --max-steps\n", o.maxSteps)
		}
		return exitFail
	}
	return exitOK
}

// pauser returns the Pause function of a run: it prints text to w and
// waits for a line (or end of input) on in, or for ctx to end.
func pauser(ctx context.Context, in io.Reader, w io.Writer) func(string) {
	return func(text string) {
		fmt.Fprint(w, text)
		done := make(chan struct{})
		go func() {
			var line [1]byte
			for {
				n, err := in.Read(line[:])
				if err != nil || (n == 1 && line[0] == '\n') {
					break
				}
			}
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
}

// cancelThreadOnDone stops the Starlark thread when ctx ends (Ctrl-C,
// SIGTERM, --timeout); call the returned function when the thread is done.
func cancelThreadOnDone(ctx context.Context, thread *starlark.Thread) (stop func()) {
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			thread.Cancel(cancelReason(ctx))
		case <-done:
		}
	}()
	return func() { close(done) }
}

func cancelReason(ctx context.Context) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return "stopped by --timeout"
	}
	return "interrupted"
}

// printError reports a script error as FILE:LINE:COL: message, with a
// traceback when the error happened inside functions.
func printError(w io.Writer, err error) {
	var evalErr *starlark.EvalError
	var synErr syntax.Error
	var resErr resolve.ErrorList
	switch {
	case errors.As(err, &evalErr):
		var frames []starlark.CallFrame
		for _, f := range evalErr.CallStack {
			if f.Pos.IsValid() && f.Pos.Filename() != "<builtin>" {
				frames = append(frames, f)
			}
		}
		if len(frames) == 0 {
			fmt.Fprintf(w, "error: %s\n", evalErr.Msg)
			return
		}
		last := frames[len(frames)-1]
		fmt.Fprintf(w, "%s: %s\n", last.Pos, evalErr.Msg)
		if len(frames) > 1 {
			fmt.Fprintln(w, "traceback (most recent call last):")
			for _, f := range frames {
				fmt.Fprintf(w, "  %s: in %s\n", f.Pos, f.Name)
			}
		}
	case errors.As(err, &synErr):
		fmt.Fprintf(w, "%s: syntax error: %s\n", synErr.Pos, synErr.Msg)
	case errors.As(err, &resErr):
		for _, e := range resErr {
			msg := e.Msg
			if name, ok := strings.CutPrefix(msg, "undefined: "); ok {
				if s := suggest(name); s != "" {
					msg += fmt.Sprintf(" (did you mean %s?)", s)
				}
			}
			fmt.Fprintf(w, "%s: %s\n", e.Pos, msg)
		}
	default:
		fmt.Fprintf(w, "error: %v\n", err)
	}
}

func cmdCleanup(o *options, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "nkscript cleanup: takes no arguments\n")
		return exitUsage
	}
	runs, err := datapath.StaleRuns(o.journalDir)
	if err != nil {
		fmt.Fprintf(stderr, "nkscript cleanup: %v\n", err)
		return exitFail
	}
	if len(runs) == 0 {
		fmt.Fprintln(stdout, "nothing to clean up")
		return exitOK
	}
	code := exitOK
	for _, r := range runs {
		fmt.Fprintf(stdout, "run %d (%s):\n", r.PID, r.Script)
		if err := datapath.Cleanup(r, stdout); err != nil {
			fmt.Fprintf(stderr, "nkscript cleanup: run %d: %v\n", r.PID, err)
			code = exitFail
		}
	}
	return code
}
