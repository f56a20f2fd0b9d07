package main

import (
	"context"
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

// runInVM runs the same command line in a microVM with --vm=never; when
// ctx ends, the microVM is stopped.
func runInVM(ctx context.Context, o *options, allArgs []string, stdout, stderr io.Writer) int {
	guestArgs := childFlags(o)
	fs := newFlags(&options{}, io.Discard)
	fs.Parse(allArgs)
	guestArgs = append(guestArgs, fs.Args()...)
	cwd, err := os.Getwd()
	if err != nil {
		fmt.Fprintf(stderr, "nkscript: %v\n", err)
		return exitFail
	}
	// The guest gets the environment a script run needs, nothing more.
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case name == "PATH", name == "HOME", name == "TERM", name == "LANG", name == "LC_ALL", strings.HasPrefix(name, "NKSCRIPT_"):
			env = append(env, kv)
		}
	}
	code, err := vm.Run(ctx, vm.Options{
		Kernel: o.kernel,
		Args:   guestArgs,
		Dir:    cwd,
		Env:    env,
		Stdout: stdout,
		Stderr: stderr,
	})
	if err != nil {
		fmt.Fprintf(stderr, "nkscript: --vm: %v\n", err)
		return exitFail
	}
	return code
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
