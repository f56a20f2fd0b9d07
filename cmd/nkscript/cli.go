package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/nkscript/nkscript/builtins"
	"github.com/nkscript/nkscript/compile"
	"github.com/nkscript/nkscript/datapath"
	"github.com/nkscript/nkscript/session"
	"github.com/nkscript/nkscript/vm"
	"github.com/spf13/pflag"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // script error or failed expectation
	exitUsage = 2
)

// version is set at link time by the Makefile.
var version = ""

// Main runs nkscript with os.Args and returns the exit code. SIGINT and
// SIGTERM are caught before anything else happens.
func Main() int {
	session.CatchSignals()
	signalsCaught()
	if vm.IsGuest() {
		vm.Guest(func(args []string, stdout, stderr io.Writer) int {
			return run(args, stdout, stderr)
		})
		return 0
	}
	return run(os.Args[1:], os.Stdout, os.Stderr)
}

// readyFDEnv names a file descriptor, for tests only, on which Main
// writes one byte and which it then closes once SIGINT and SIGTERM are
// caught: a signal sent after that byte arrived cannot kill nkscript.
const readyFDEnv = "NKSCRIPT_TEST_SIGNALS_READY_FD"

func signalsCaught() {
	fd, err := strconv.Atoi(os.Getenv(readyFDEnv))
	if err != nil || fd < 3 {
		return
	}
	f := os.NewFile(uintptr(fd), "signals-ready")
	f.Write([]byte{'\n'})
	f.Close()
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
	explain    bool
	profile    bool
	allowPaths []string
	clang      string
	help       bool
	version    bool
}

const usageText = `nkscript runs network labs written in Starlark.

Usage:
  nkscript [flags] FILE.star [ARGS...]   run a lab script
  nkscript [flags]                       start a REPL (also: nkscript repl)
  nkscript test [flags] [PATH...]        run *.star tests against their NAME.golden files (see test --help)
  nkscript new NAME                      write a new lab: a BPF program in C, a lab, unit tests, goldens
  nkscript graph [--format F] FILE.star  draw the lab a script builds (mermaid, dot, svg)
  nkscript cleanup [--journal-dir DIR]   remove what runs killed with SIGKILL left behind
  nkscript kernels [--fetch]             list the cached microVM kernels (--fetch: download the pinned 6.12, 6.1 and 7.3)
  nkscript vm start|status|stop          keep a microVM guest running for fast --vm runs (see vm --help)
  nkscript enter NS [-- CMD...]          run a shell or CMD in namespace NS of a kept or paused lab (host or microVM)
  nkscript doc [NAME]                    print the builtin reference, or one builtin's entry
  nkscript completion bash|zsh|fish      print a shell completion script
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
	fs.StringVar(&o.kernel, "kernel", "", "kernel to boot for --vm: a pinned one by version (6.12, the default; 6.1, without netkit and tcx; 7.3, netkit with every knob) or a bzImage path")
	fs.DurationVar(&o.timeout, "timeout", 0, "stop the run after this long, cleaning up (0: no limit)")
	fs.StringVar(&o.journalDir, "journal-dir", datapath.DefaultJournalDir, "where runs record what they create")
	fs.BoolVar(&o.json, "json", false, "after the run, write a JSON report of every expectation to stdout; print() and progress lines go to stderr")
	fs.Uint64Var(&o.maxSteps, "max-steps", builtins.DefaultMaxSteps, "stop a script after this many Starlark execution steps (runaway loops), cleaning up")
	fs.BoolVar(&o.profile, "profile", false, "print to stderr, at exit, the wall time spent per phase (namespaces, links, addresses, routes, sysctls, programs, checks, teardown)")
	fs.BoolVar(&o.trace, "trace", false, "stream what BPF programs write with bpf_printk to stderr while the script runs")
	fs.BoolVar(&o.explain, "explain", false, "print every packet the kernel drops in the lab's namespaces to stderr as it happens: where (namespace, device, hook, program) and why")
	fs.BoolVar(&o.pauseFail, "pause-on-fail", false, "at the first failed expectation, keep the lab up and wait for Enter, printing how to enter each namespace")
	fs.BoolVar(&o.dryRun, "dry-run", false, "change nothing: print the shell commands (ip, sysctl, tc, bpftool) that would build the lab; bash runs them")
	fs.StringVar(&o.prefix, "prefix", "", "put `P` in front of the names of the namespaces the script creates and of its links in the host, so that runs of one script can share a machine")
	fs.StringArrayVar(&o.allowPaths, "allow-path", nil, "let load() read files under `DIR` too, not only under the script's directory (repeatable)")
	fs.StringVar(&o.clang, "clang", "", "compile program(\"x.bpf.c\") sources with this clang, a path or a name in $PATH (default $NKSCRIPT_CLANG, else clang-19, else clang)")
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
	if o.clang != "" {
		useClang(o.clang)
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
	case "vm":
		return cmdVM(&o, rest[1:], stdout, stderr)
	case "enter":
		return cmdEnter(&o, rest[1:], stdout, stderr)
	case "test":
		return cmdTest(&o, rest[1:], stdout, stderr)
	case "graph":
		return cmdGraph(&o, rest[1:], stdout, stderr)
	case "new":
		return cmdNew(rest[1:], stdout, stderr)
	case "completion":
		return cmdCompletion(rest[1:], stdout, stderr)
	case "repl":
		return replCommand(args[:len(args)-len(rest)], rest[1:], stdout, stderr)
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

// useClang makes clang, a path or a name in $PATH, the one every
// program("x.bpf.c") of this process, and of the microVM it may start,
// compiles with.
func useClang(clang string) {
	if strings.Contains(clang, "/") {
		if abs, err := filepath.Abs(clang); err == nil {
			clang = abs
		}
	}
	os.Setenv(compile.ClangEnv, clang)
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
	ctx := session.CatchSignals().Context()
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
		return runInVM(ctx, o, allArgs, stdout, stderr)
	}
	if err := hostCapsError(); err != nil {
		fmt.Fprintf(stderr, "nkscript: %v\n", err)
		return exitFail
	}
	rep := newJSONReport(o.json, script, stdout)
	if rep != nil {
		stdout = stderr // the document alone goes to stdout
	}
	abs, _ := filepath.Abs(script)
	plan, closing, testDone := testHooks(stderr)
	defer testDone()
	cfg := session.Config{
		Lab: datapath.LabConfig{JournalDir: o.journalDir, Script: abs, Prefix: o.prefix, Prefetch: prefetch, Faults: plan,
			NoDropMonitor: os.Getenv("NKSCRIPT_DROP_MONITOR") == "off",
			Notice:        func(msg string) { fmt.Fprintf(stderr, "nkscript: %s\n", msg) }},
		Timeout: o.timeout, Keep: o.keep, Profile: o.profile, Stderr: stderr, Closing: closing,
	}
	var r *builtins.Run
	err, endErr := session.Run(ctx, cfg, func(ctx context.Context, lab *datapath.Lab) error {
		if o.trace {
			t, err := lab.Trace()
			if err != nil {
				return &session.RunError{Err: fmt.Errorf("--trace: %w", err)}
			}
			t.Subscribe(func(line string) { fmt.Fprintf(stderr, "trace: %s\n", line) })
		}
		if o.explain {
			if err := explainDrops(lab, stderr); err != nil {
				return &session.RunError{Err: fmt.Errorf("--explain: %w", err)}
			}
		}
		r = builtins.NewRun(runOptions(ctx, o, lab, script, scriptArgs, stdout, stderr))
		return execFile(ctx, o, r, script)
	})
	code := exitOK
	if err != nil || endErr != nil {
		code = exitFail
	}
	return rep.emit(code, r, err)
}

// opsCounter returns, when the fault hook asks for the count, what prints
// how many kernel-changing operations a run performed: how many a fault
// sweep has to cover.
func opsCounter(stderr io.Writer) func(*datapath.Lab) {
	if os.Getenv(faultEnv) != "count" {
		return nil
	}
	return func(lab *datapath.Lab) {
		fmt.Fprintf(stderr, "nkscript: test: %d kernel-changing operations\n", lab.Ops())
	}
}

// runOptions are the options of a script's run on lab.
func runOptions(ctx context.Context, o *options, lab *datapath.Lab, script string, scriptArgs []string, stdout, stderr io.Writer) builtins.Options {
	return builtins.Options{Lab: lab, Context: ctx, Stdout: stdout, Argv: append([]string{script}, scriptArgs...),
		MaxSteps: o.maxSteps, AllowPaths: o.allowPaths,
		Pause: pauser(ctx, os.Stdin, stderr), PauseOnFail: o.pauseFail}
}

// execFile runs the script's top level on a thread of r.
func execFile(ctx context.Context, o *options, r *builtins.Run, script string) error {
	thread := r.Thread(script)
	err := session.Exec(ctx, thread, script, func() error {
		_, err := r.ExecFile(thread, script, nil)
		return err
	})
	return session.CheckSteps(err, o.maxSteps)
}

// execScript runs the script on a lab the caller made and removes, with
// panics and an ending ctx, or a signal, turned into errors, written to
// stderr.
func execScript(ctx context.Context, o *options, lab *datapath.Lab, script string, scriptArgs []string, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(session.CatchSignals().Context(), cancel)()
	err := session.Protect(func() error {
		return execFile(ctx, o, builtins.NewRun(runOptions(ctx, o, lab, script, scriptArgs, stdout, stderr)), script)
	})
	session.WriteError(stderr, err)
	if err != nil {
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

// cmdCleanup implements `nkscript cleanup [--journal-dir DIR]`: it undoes
// what the runs whose journals are in DIR left behind, then removes the
// empty namespace mount trees of runs that are gone (see
// datapath.RemoveOrphanNetnsTrees).
func cmdCleanup(o *options, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("nkscript cleanup", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.journalDir, "journal-dir", o.journalDir, "where the runs to clean up recorded what they created")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage:\n  nkscript cleanup [--journal-dir DIR]   remove what runs killed with SIGKILL left behind\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintf(stderr, "nkscript cleanup: %v\n", err)
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "nkscript cleanup: takes no arguments\n")
		return exitUsage
	}
	code, cleanedGuests := exitOK, false
	if o.journalDir == datapath.DefaultJournalDir || os.Getenv("NKSCRIPT_VM_DIR") != "" {
		code, cleanedGuests = cleanupGuests(stdout, stderr)
	}
	runs, err := datapath.StaleRuns(o.journalDir)
	if err != nil {
		fmt.Fprintf(stderr, "nkscript cleanup: %v\n", err)
		return exitFail
	}
	for _, r := range runs {
		fmt.Fprintf(stdout, "run %d (%s):\n", r.PID, r.Script)
		if err := datapath.Cleanup(r, stdout); err != nil {
			fmt.Fprintf(stderr, "nkscript cleanup: run %d: %v\n", r.PID, err)
			code = exitFail
		}
	}
	orphans, err := datapath.RemoveOrphanNetnsTrees(stdout)
	if err != nil {
		fmt.Fprintf(stderr, "nkscript cleanup: %v\n", err)
		code = exitFail
	}
	if len(runs) == 0 && orphans == 0 && !cleanedGuests {
		fmt.Fprintln(stdout, "nothing to clean up")
	}
	return code
}
