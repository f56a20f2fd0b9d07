package main

import (
	"fmt"
	"io"
	"slices"

	"github.com/nkscript/nkscript/session"
	"github.com/nkscript/nkscript/vm"
)

// replInGuest says whether the REPL runs in a microVM guest: with
// --vm=always or --kernel.
func replInGuest(o *options) bool {
	return o.vmMode == "always" || o.vmMode == "auto" && o.kernel != ""
}

// runREPLInGuest runs the REPL in the warm guest for o's kernel, booting
// one for the REPL's time if none runs. On a terminal the guest's REPL
// edits lines, keeps the session's history and completes; reading from a
// pipe it exits 1 when a statement failed, as on the host.
func runREPLInGuest(o *options, stdout, stderr io.Writer) int {
	s, err := vm.FindWarm(o.kernel)
	if err == nil && !s.CurrentBinary() {
		fmt.Fprintf(stderr, "nkscript: the warm guest for %s runs another nkscript executable than this one; restart it: nkscript vm stop; nkscript vm start\n", s.Release)
		return exitFail
	}
	if err != nil {
		if s, err = startWarm(o, false, stderr); err != nil {
			fmt.Fprintf(stderr, "nkscript: --vm: %v\n", err)
			return exitFail
		}
		defer s.Stop()
	}
	args := guestArgsFor(o, nil)
	if o.keep {
		args = append(args, "--keep")
	}
	// The REPL's lab is checked as a script's is: other runs wait for it.
	run := vm.WarmRun{Args: append(args, "repl"), Check: true, Keep: o.keep}
	return guestSession(session.CatchSignals().Context(), s, run, stdout, stderr)
}

// replCommand implements `nkscript [FLAGS] repl [FLAGS]`: the flags may
// come before or after repl.
func replCommand(before, after []string, stdout, stderr io.Writer) int {
	var o options
	fs := newFlags(&o, stderr)
	if err := fs.Parse(append(append([]string{}, before...), after...)); err != nil {
		fmt.Fprintf(stderr, "nkscript repl: %v\nRun 'nkscript --help' for usage.\n", err)
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "nkscript repl: takes no arguments, only flags\n")
		return exitUsage
	}
	if !slices.Contains([]string{"auto", "always", "never"}, o.vmMode) {
		fmt.Fprintf(stderr, "nkscript: --vm=%s: use auto, always or never\n", o.vmMode)
		return exitUsage
	}
	if o.clang != "" {
		useClang(o.clang)
	}
	return runREPL(&o, stdout, stderr)
}
