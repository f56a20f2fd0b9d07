// Package session is the lifecycle of an nkscript run, shared by every
// way to run scripts (a script file, `nkscript test`, the REPL, the
// microVM guest): SIGINT and SIGTERM are caught before anything else
// (CatchSignals), the lab is created, the body runs with panics turned
// into errors and a context that signals and --timeout end, and the lab
// is removed, or kept with --keep, whatever happened (Run). Errors are
// rendered once: WriteError for the terminal, JSONOf for --json.
package session

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"
	"time"

	"github.com/nkscript/nkscript/builtins"
	"github.com/nkscript/nkscript/datapath"
	"github.com/nkscript/nkscript/vm"
	"go.starlark.net/starlark"
)

// Config says how Run makes, and ends, the lab of a run.
type Config struct {
	// Lab configures the lab.
	Lab datapath.LabConfig
	// Timeout, if not 0, ends the body's context after this long.
	Timeout time.Duration
	// Keep leaves the lab up at the end and says how to remove it.
	Keep bool
	// Profile writes the time spent per phase after the lab is removed.
	Profile bool
	// Stderr receives errors, --keep's instructions and the profile.
	Stderr io.Writer
	// Closing, if set, is called with the lab just before it is removed
	// or kept.
	Closing func(lab *datapath.Lab)
}

// Run creates the lab, runs body on it and then removes the lab, or keeps
// it with cfg.Keep. A panic in body becomes a *PanicError. The body's
// context is ctx, ended after cfg.Timeout too. Run writes each error to
// cfg.Stderr with WriteError as it happens: first the error that stopped
// body (err, which is a *RunError when the lab could not be created), then
// a failure to remove or keep the lab (endErr).
func Run(ctx context.Context, cfg Config, body func(ctx context.Context, lab *datapath.Lab) error) (err, endErr error) {
	CatchSignals()
	if cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
	}
	lab, err := datapath.NewLab(cfg.Lab)
	if err != nil {
		err = &RunError{Err: err}
		WriteError(cfg.Stderr, err)
		return err, nil
	}
	if cfg.Profile {
		lab.EnableProfile()
		start := time.Now()
		defer func() { lab.WriteProfile(cfg.Stderr, time.Since(start)) }()
	}
	err = Protect(func() error { return body(ctx, lab) })
	WriteError(cfg.Stderr, err)
	endErr = End(lab, cfg)
	WriteError(cfg.Stderr, endErr)
	return err, endErr
}

// Protect calls fn and returns its error, or a *PanicError if it panics.
func Protect(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &PanicError{Value: p, Stack: debug.Stack()}
		}
	}()
	return fn()
}

// End removes the lab, or keeps it with cfg.Keep after writing how to
// enter and remove it. It returns a *CleanupError or a *KeepError.
func End(lab *datapath.Lab, cfg Config) error {
	if cfg.Closing != nil {
		cfg.Closing(lab)
	}
	if cfg.Keep {
		writeKeep(lab, cfg.Lab.JournalDir, cfg.Stderr)
		if err := lab.Keep(); err != nil {
			return &KeepError{Err: err}
		}
		return nil
	}
	if err := lab.Close(); err != nil {
		return &CleanupError{Err: err, Journal: lab.JournalPath()}
	}
	return nil
}

// writeKeep says how to enter a kept lab and how to remove it: with the
// journal directory the run used, when it is not the default.
func writeKeep(lab *datapath.Lab, journalDir string, w io.Writer) {
	fmt.Fprintln(w, "nkscript: --keep: the lab stays up.")
	for _, ns := range lab.Namespaces() {
		if vm.InWarmGuest() {
			// The lab is in a microVM guest, which the host reaches.
			fmt.Fprintf(w, "  enter %s: nkscript enter %s\n", ns.Name(), ns.Name())
			continue
		}
		fmt.Fprintf(w, "  enter %s: ip netns exec %s bash\n", ns.Name(), ns.Name())
	}
	if journalDir == "" || journalDir == datapath.DefaultJournalDir {
		fmt.Fprintln(w, "  remove it: nkscript cleanup")
		return
	}
	fmt.Fprintf(w, "  remove it: nkscript cleanup --journal-dir %s\n", journalDir)
}

// Exec runs fn, which executes Starlark code on thread, with ctx as the
// context of the builtins it calls; when ctx ends the thread is
// cancelled, and an error fn then returns becomes a *CanceledError naming
// name.
func Exec(ctx context.Context, thread *starlark.Thread, name string, fn func() error) error {
	builtins.SetContext(thread, ctx)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			thread.Cancel(CancelReason(ctx))
		case <-done:
		}
	}()
	err := fn()
	if err != nil && ctx.Err() != nil {
		return &CanceledError{Name: name, Reason: CancelReason(ctx), Err: err}
	}
	return err
}
