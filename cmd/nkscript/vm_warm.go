package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nkscript/nkscript/session"
	"github.com/nkscript/nkscript/vm"
	"github.com/spf13/pflag"
)

const vmUsageText = `nkscript vm keeps microVM guests running, so that --vm runs start in well under a second.

Usage:
  nkscript vm start [--kernel K]        boot a warm guest for kernel K (default: the default kernel) and leave it running
  nkscript vm status                    list the running guests: kernel, uptime, runs served, kept labs
  nkscript vm stop [--kernel K | --all] power a guest off (the default kernel's), or all of them

While a guest for a kernel runs, --vm runs and nkscript test use it; every run gets its own
namespaces and journal in it, and after each run the guest is checked to be as before (else
it is stopped, and the next run boots a new one). The guest runs the nkscript executable that
started it and sees the host's files read-only, as they are now.

Flags:
`

// cmdVM implements `nkscript vm start|status|stop`.
func cmdVM(o *options, args []string, stdout, stderr io.Writer) int {
	var all, help bool
	fs := pflag.NewFlagSet("nkscript vm", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.kernel, "kernel", o.kernel, "the guest's kernel: a pinned one by version (6.12, 6.1, 7.3) or a bzImage path")
	fs.BoolVar(&all, "all", false, "stop: every running guest")
	fs.BoolVarP(&help, "help", "h", false, "show this help")
	fs.Usage = func() {
		fmt.Fprint(stderr, vmUsageText)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintf(stderr, "nkscript vm: %v\nRun 'nkscript vm --help' for usage.\n", err)
		return exitUsage
	}
	if help || fs.NArg() != 1 {
		if help {
			fmt.Fprint(stdout, vmUsageText)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return exitOK
		}
		fmt.Fprintf(stderr, "nkscript vm: say start, status or stop\nRun 'nkscript vm --help' for usage.\n")
		return exitUsage
	}
	switch fs.Arg(0) {
	case "start":
		s, err := startWarm(o, false, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "nkscript vm start: %v\n", err)
			return exitFail
		}
		fmt.Fprintf(stdout, "guest for %s running (qemu pid %d)\n", s.Release, s.Qemu.PID)
		return exitOK
	case "status":
		return vmStatus(stdout, stderr)
	case "stop":
		return vmStop(o, all, stdout, stderr)
	case "_serve":
		return vmServe(o)
	}
	fmt.Fprintf(stderr, "nkscript vm: unknown command %q: say start, status or stop\n", fs.Arg(0))
	return exitUsage
}

// startWarm starts the warm guest for o's kernel unless it runs, and
// returns it; byKeep records that --keep starts it.
func startWarm(o *options, byKeep bool, stderr io.Writer) (*vm.WarmState, error) {
	if s, err := vm.FindWarm(o.kernel); err == nil {
		return s, nil
	}
	if err := vm.HostCanRunVM(); err != nil {
		return nil, err
	}
	if _, err := vm.StartWarm(warmOptions(o, stderr), []string{"vm", "--kernel=" + o.kernel, "_serve"}, byKeep); err != nil {
		return nil, err
	}
	return vm.FindWarm(o.kernel)
}

// warmOptions are the Options a warm guest boots with.
func warmOptions(o *options, stderr io.Writer) vm.Options {
	return vm.Options{Kernel: o.kernel, Env: guestEnv(), Stdout: stderr, Stderr: stderr, Prepare: guestTypes}
}

// vmServe is the daemon of a warm guest, which StartWarm starts.
func vmServe(o *options) int {
	ready := os.NewFile(3, "ready")
	if err := vm.ServeWarm(session.CatchSignals().Context(), warmOptions(o, os.Stderr), ready); err != nil {
		fmt.Fprintf(os.Stderr, "nkscript vm: %v\n", err)
		return exitFail
	}
	return exitOK
}

// vmStatus lists the running guests.
func vmStatus(stdout, stderr io.Writer) int {
	guests, err := vm.WarmGuests()
	if err != nil {
		fmt.Fprintf(stderr, "nkscript vm status: %v\n", err)
		return exitFail
	}
	if len(guests) == 0 {
		fmt.Fprintln(stdout, "no guest running; start one with 'nkscript vm start'")
		return exitOK
	}
	code := exitOK
	for _, s := range guests {
		up := time.Since(s.Started).Round(time.Second)
		st, err := s.Status()
		if err != nil {
			fmt.Fprintf(stdout, "%s\tup %v\tqemu pid %d\tnot answering: %v\n", s.Release, up, s.Qemu.PID, err)
			code = exitFail
			continue
		}
		fmt.Fprintf(stdout, "%s\tup %v\tqemu pid %d\t%d runs served\t%d running\t%d kept labs\n",
			s.Release, up, s.Qemu.PID, st.Runs, st.Active, len(st.Kept))
		if st.Tainted != "" {
			fmt.Fprintf(stdout, "\tnot clean, serves no more runs:\n%s\n", st.Tainted)
		}
	}
	return code
}

// vmStop stops the guest for o's kernel, or all of them.
func vmStop(o *options, all bool, stdout, stderr io.Writer) int {
	var guests []*vm.WarmState
	if all {
		var err error
		if guests, err = vm.WarmGuests(); err != nil {
			fmt.Fprintf(stderr, "nkscript vm stop: %v\n", err)
			return exitFail
		}
	} else if s, err := vm.FindWarm(o.kernel); err == nil {
		guests = append(guests, s)
	}
	if len(guests) == 0 {
		fmt.Fprintln(stdout, "no guest running")
		return exitOK
	}
	code := exitOK
	for _, s := range guests {
		if err := s.Stop(); err != nil {
			fmt.Fprintf(stderr, "nkscript vm stop: %s: %v\n", s.Release, err)
			code = exitFail
			continue
		}
		fmt.Fprintf(stdout, "guest for %s stopped\n", s.Release)
	}
	return code
}

// cleanupGuests runs nkscript cleanup in every running warm guest, and
// stops the guests --keep started once they keep no lab; cleaned says
// whether there was a guest.
func cleanupGuests(stdout, stderr io.Writer) (code int, cleaned bool) {
	guests, err := vm.WarmGuests()
	if err != nil {
		fmt.Fprintf(stderr, "nkscript cleanup: microVM guests: %v\n", err)
		return exitFail, false
	}
	code = exitOK
	for _, s := range guests {
		st, err := s.Status()
		if err != nil || len(st.Kept) == 0 && !s.ByKeep {
			continue
		}
		cleaned = true
		fmt.Fprintf(stdout, "microVM guest %s:\n", s.Release)
		var out bytes.Buffer
		c, err := s.Run(context.Background(), vm.WarmRun{Args: []string{"--vm=never", "cleanup"}, Env: guestEnv(), Dir: "/",
			Stdout: &out, Stderr: stderr, Check: true, Keep: true})
		if err != nil || c != exitOK {
			fmt.Fprintf(stderr, "nkscript cleanup: microVM guest %s: exit %d %v\n", s.Release, c, err)
			code = exitFail
			continue
		}
		for _, line := range strings.SplitAfter(out.String(), "\n") {
			if line != "" {
				fmt.Fprint(stdout, "  "+line)
			}
		}
		if st, err := s.Status(); s.ByKeep && err == nil && len(st.Kept) == 0 && st.Active == 0 {
			if err := s.Stop(); err == nil {
				fmt.Fprintf(stdout, "  stopped the guest (--keep had started it)\n")
			}
		}
	}
	return code, cleaned
}
