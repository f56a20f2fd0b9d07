package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/nkscript/nkscript/builtins"
	"github.com/nkscript/nkscript/datapath"
	"github.com/nkscript/nkscript/vm"
)

// decideVM says whether the script runs in a microVM and, for --vm=auto,
// why.
func decideVM(o *options, script string) (bool, string, error) {
	switch o.vmMode {
	case "never":
		return false, "", nil
	case "always":
		return true, "", nil
	}
	if o.kernel != "" {
		return true, "", nil
	}
	if useVM, why := vmForCaps(); useVM {
		return true, why, nil
	}
	needs, err := builtins.NeedsNetkit(script)
	if err != nil || !needs {
		// A script that does not parse is run on the host, which
		// reports the error with its position.
		return false, "", nil
	}
	if datapath.HaveNetkit() == nil {
		return false, "", nil
	}
	if vm.HostCanRunVM() != nil {
		// Run on the host: the error names CONFIG_NETKIT and --vm.
		return false, "", nil
	}
	return true, fmt.Sprintf("the host kernel %s has no netkit (CONFIG_NETKIT)", datapath.KernelRelease()), nil
}

// runInVM runs the same command line in a microVM with --vm=never: in the
// warm guest for the kernel when one runs (--keep starts one), else in a
// freshly booted one. When ctx ends, the run is stopped.
func runInVM(ctx context.Context, o *options, allArgs []string, stdout, stderr io.Writer) int {
	guestArgs := guestArgsFor(o, allArgs)
	cwd, err := os.Getwd()
	if err != nil {
		fmt.Fprintf(stderr, "nkscript: %v\n", err)
		return exitFail
	}
	if o.keep {
		s, err := startWarm(o, true, stderr)
		if err == nil && !s.CurrentBinary() {
			err = fmt.Errorf("the guest for %s runs another nkscript executable than this one; restart it: nkscript vm stop; nkscript vm start", s.Release)
		}
		if err != nil {
			fmt.Fprintf(stderr, "nkscript: --vm --keep: %v\n", err)
			return exitFail
		}
		guestArgs = append([]string{"--keep"}, guestArgs...)
	} else if isTerminal(os.Stdin) {
		// A lab paused by pause() or --pause-on-fail waits for Enter on
		// the host's terminal and is entered from the host: that needs a
		// guest that takes the terminal and serves nkscript enter, here
		// one for this run.
		if _, err := vm.FindWarm(o.kernel); err != nil {
			s, err := startWarm(o, false, stderr)
			if err != nil {
				fmt.Fprintf(stderr, "nkscript: --vm: %v\n", err)
				return exitFail
			}
			defer s.Stop()
		}
	}
	run := vm.WarmRun{Args: guestArgs, Env: guestEnv(), Dir: cwd, Stdout: stdout, Stderr: stderr, Check: true, Keep: o.keep}
	if isTerminal(os.Stdin) {
		run.Stdin = os.Stdin // pause() and --pause-on-fail wait for Enter
	}
	if code, done := runWarm(ctx, o, run, stderr); done {
		return code
	}
	code, err := vm.Run(ctx, vm.Options{
		Kernel:  o.kernel,
		Args:    guestArgs,
		Dir:     cwd,
		Env:     run.Env,
		Stdout:  stdout,
		Stderr:  stderr,
		Prepare: guestTypes,
	})
	if err != nil {
		fmt.Fprintf(stderr, "nkscript: --vm: %v\n", err)
		return exitFail
	}
	return code
}

// childFlags are the global flags of o a run of nkscript on o's behalf,
// in a microVM or in a process of its own, takes: --vm=never and those
// that shape a run.
func childFlags(o *options) []string {
	guestArgs := []string{"--vm=never"}
	if o.timeout > 0 {
		guestArgs = append(guestArgs, "--timeout="+o.timeout.String())
	}
	if o.maxSteps != builtins.DefaultMaxSteps {
		guestArgs = append(guestArgs, fmt.Sprintf("--max-steps=%d", o.maxSteps))
	}
	for _, p := range o.allowPaths {
		if abs, err := filepath.Abs(p); err == nil {
			guestArgs = append(guestArgs, "--allow-path="+abs)
		}
	}
	if o.profile {
		guestArgs = append(guestArgs, "--profile")
	}
	if o.trace {
		guestArgs = append(guestArgs, "--trace")
	}
	if o.explain {
		guestArgs = append(guestArgs, "--explain")
	}
	if o.pauseFail {
		guestArgs = append(guestArgs, "--pause-on-fail")
	}
	if o.prefix != "" {
		guestArgs = append(guestArgs, "--prefix="+o.prefix)
	}
	if o.json {
		guestArgs = append(guestArgs, "--json")
	}
	return guestArgs
}

// guestArgsFor returns the command line a run in a guest gets for the
// host's allArgs: --vm=never and the flags that apply in the guest.
func guestArgsFor(o *options, allArgs []string) []string {
	guestArgs := childFlags(o)
	fs := newFlags(&options{}, io.Discard)
	fs.Parse(allArgs)
	return append(guestArgs, fs.Args()...)
}

// guestEnv is the environment a run in a guest gets: what a script run
// needs, nothing more.
func guestEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case name == "PATH", name == "HOME", name == "TERM", name == "LANG", name == "LC_ALL", strings.HasPrefix(name, "NKSCRIPT_"):
			env = append(env, kv)
		}
	}
	return env
}

// runWarm runs run in the warm guest for o's kernel, if one runs and
// runs this executable; done is false when the run is still to be done
// (in a guest booted for it).
func runWarm(ctx context.Context, o *options, run vm.WarmRun, stderr io.Writer) (code int, done bool) {
	s, err := vm.FindWarm(o.kernel)
	if err != nil {
		return 0, false
	}
	if !s.CurrentBinary() {
		fmt.Fprintf(stderr, "nkscript: the warm guest for %s runs another nkscript executable than this one; booting a guest (restart it: nkscript vm stop; nkscript vm start)\n", s.Release)
		return 0, false
	}
	code, err = s.Run(ctx, run)
	var dirty *vm.GuestDirtyError
	switch {
	case err == nil:
		return code, true
	case errors.As(err, &dirty):
		fmt.Fprintf(stderr, "nkscript: --vm: %v\n", err)
		return code, true
	case errors.Is(err, vm.ErrNoWarmGuest):
		fmt.Fprintf(stderr, "nkscript: --vm: %v; booting a guest\n", err)
		return 0, false
	}
	fmt.Fprintf(stderr, "nkscript: --vm: %v\n", err)
	return exitFail, true
}

func cmdKernels(args []string, stdout, stderr io.Writer) int {
	fetch := false
	for _, a := range args {
		switch a {
		case "--fetch":
			fetch = true
		default:
			fmt.Fprintf(stderr, "nkscript kernels: unknown argument %q (use --fetch)\n", a)
			return exitUsage
		}
	}
	if fetch {
		for _, spec := range vm.PinnedKernels {
			k, err := vm.EnsureKernelSpec(context.Background(), spec, stderr)
			if err != nil {
				fmt.Fprintf(stderr, "nkscript kernels: %v\n", err)
				return exitFail
			}
			fmt.Fprintf(stdout, "%s\t%s\n", k.Version, k.Path)
		}
		return exitOK
	}
	ks, err := vm.ListKernels()
	if err != nil {
		fmt.Fprintf(stderr, "nkscript kernels: %v\n", err)
		return exitFail
	}
	if len(ks) == 0 {
		fmt.Fprintln(stdout, "no kernels cached; fetch one with 'nkscript kernels --fetch' (or 'make kernel')")
		return exitOK
	}
	for _, k := range ks {
		nk := "no netkit"
		if k.Netkit {
			nk = "netkit"
		}
		fmt.Fprintf(stdout, "%s\t%s\t%s\n", k.Version, nk, k.Path)
	}
	return exitOK
}

// guestTypes keeps the drop monitor's types of the kernel a guest boots
// and hands the guest their path, so that its runs need not read their
// kernel's whole BTF (most of a second under TCG). Without them the guest
// reads its BTF itself.
func guestTypes(ki vm.KernelInfo) []string {
	if ki.Vmlinux == "" {
		return nil
	}
	path, err := datapath.PrepareImageTypes(ki.Vmlinux, ki.Version)
	if err != nil {
		return nil
	}
	return []string{datapath.KernelTypesEnv + "=" + path}
}
