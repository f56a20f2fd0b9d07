package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/nkscript/nkscript/builtins"

	"github.com/nkscript/nkscript/datapath"
	"github.com/nkscript/nkscript/vm"
	"go.starlark.net/syntax"
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
	needs, err := scriptNeedsNetkit(script)
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

// scriptNeedsNetkit reports whether the script, or a file it loads,
// mentions netkit_pair.
func scriptNeedsNetkit(script string) (bool, error) {
	seen := map[string]bool{}
	var visit func(path string) (bool, error)
	visit = func(path string) (bool, error) {
		if seen[path] {
			return false, nil
		}
		seen[path] = true
		f, err := syntax.Parse(path, nil, 0)
		if err != nil {
			return false, err
		}
		found := false
		syntax.Walk(f, func(n syntax.Node) bool {
			switch n := n.(type) {
			case *syntax.Ident:
				if n.Name == "netkit_pair" {
					found = true
				}
			case *syntax.LoadStmt:
				mod := n.ModuleName()
				if !filepath.IsAbs(mod) {
					mod = filepath.Join(filepath.Dir(path), mod)
				}
				if ok, _ := visit(mod); ok {
					found = true
				}
			}
			return !found
		})
		return found, nil
	}
	return visit(script)
}

// runInVM runs the same command line in a microVM with --vm=never.
func runInVM(o *options, allArgs []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
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
	if o.pauseFail {
		guestArgs = append(guestArgs, "--pause-on-fail")
	}
	if o.prefix != "" {
		guestArgs = append(guestArgs, "--prefix="+o.prefix)
	}
	if o.json {
		guestArgs = append(guestArgs, "--json")
	}
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
