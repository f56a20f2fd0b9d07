package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// PanicError is a panic during a run, recovered so that the lab is still
// removed.
type PanicError struct {
	// Value is what was passed to panic.
	Value any
	// Stack is the goroutine's stack at the panic.
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("internal error: %v", e.Value) }

// CanceledError is a script stopped because its context ended: a signal,
// --timeout, or Ctrl-C in the REPL.
type CanceledError struct {
	// Name names what was stopped: the script, or SCRIPT:test_name.
	Name string
	// Reason is "interrupted" or "stopped by --timeout".
	Reason string
	// Err is the error the script stopped with.
	Err error
}

func (e *CanceledError) Error() string { return e.Name + ": " + e.Reason }

// Unwrap returns the error the script stopped with.
func (e *CanceledError) Unwrap() error { return e.Err }

// RunError is an error of nkscript itself rather than of the script, such
// as failing to create the lab.
type RunError struct{ Err error }

func (e *RunError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *RunError) Unwrap() error { return e.Err }

// MessageError is an error whose message is complete as it is: WriteError
// writes it alone on a line.
type MessageError struct{ Msg string }

func (e *MessageError) Error() string { return e.Msg }

// CleanupError is a lab that could not be removed completely; its journal
// tells `nkscript cleanup` what is left.
type CleanupError struct {
	Err     error
	Journal string
}

func (e *CleanupError) Error() string { return "cleanup failed: " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *CleanupError) Unwrap() error { return e.Err }

// KeepError is a lab that --keep could not hand over.
type KeepError struct{ Err error }

func (e *KeepError) Error() string { return "keep: " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *KeepError) Unwrap() error { return e.Err }

// StepsError is a script stopped by the --max-steps limit.
type StepsError struct {
	Err   error
	Limit uint64
}

func (e *StepsError) Error() string { return e.Err.Error() }

// Unwrap returns the error the script stopped with.
func (e *StepsError) Unwrap() error { return e.Err }

// CheckSteps returns err as a *StepsError, which WriteError follows with
// advice to raise limit, when err says the script ran too many steps;
// otherwise it returns err.
func CheckSteps(err error, limit uint64) error {
	var canceled *CanceledError
	if err == nil || errors.As(err, &canceled) || !strings.Contains(err.Error(), "too many steps") {
		return err
	}
	return &StepsError{Err: err, Limit: limit}
}

// ErrReported is a failure whose explanation has already been written:
// WriteError writes nothing for it.
var ErrReported = errors.New("failed; see above")

// WriteError writes the text view of err to w, the one way nkscript
// renders errors on a terminal. It writes nothing for nil or ErrReported.
func WriteError(w io.Writer, err error) {
	var (
		panicErr   *PanicError
		canceled   *CanceledError
		runErr     *RunError
		cleanupErr *CleanupError
		keepErr    *KeepError
		stepsErr   *StepsError
		msgErr     *MessageError
	)
	switch {
	case err == nil, errors.Is(err, ErrReported):
	case errors.As(err, &panicErr):
		fmt.Fprintf(w, "nkscript: internal error: %v\n%s\nThe lab is being cleaned up. Please report this.\n", panicErr.Value, panicErr.Stack)
	case errors.As(err, &canceled):
		fmt.Fprintf(w, "%s: %s; cleaning up\n", canceled.Name, canceled.Reason)
	case errors.As(err, &cleanupErr):
		fmt.Fprintf(w, "nkscript: cleanup failed: %v\nRun 'nkscript cleanup' to retry; the journal is %s\n", cleanupErr.Err, cleanupErr.Journal)
	case errors.As(err, &keepErr):
		fmt.Fprintf(w, "nkscript: keep: %v\n", keepErr.Err)
	case errors.As(err, &runErr):
		fmt.Fprintf(w, "nkscript: %v\n", runErr.Err)
	case errors.As(err, &msgErr):
		fmt.Fprintln(w, msgErr.Msg)
	case errors.As(err, &stepsErr):
		Diagnose(stepsErr.Err).WriteText(w)
		fmt.Fprintf(w, "nkscript: the script ran more than %d Starlark steps (a runaway loop?); raise the limit with --max-steps\n", stepsErr.Limit)
	default:
		Diagnose(err).WriteText(w)
	}
}

// JSONOf returns the JSON view of the error that stopped a script, or
// nil when err is not the script's (nkscript's own errors and panics are
// explained on stderr only).
func JSONOf(err error) *JSONError {
	var (
		panicErr   *PanicError
		canceled   *CanceledError
		runErr     *RunError
		cleanupErr *CleanupError
		keepErr    *KeepError
	)
	switch {
	case err == nil, errors.Is(err, ErrReported), errors.As(err, &panicErr), errors.As(err, &runErr),
		errors.As(err, &cleanupErr), errors.As(err, &keepErr):
		return nil
	case errors.As(err, &canceled):
		e := Diagnose(canceled.Err).JSON()
		e.Message = canceled.Reason
		return e
	}
	return Diagnose(err).JSON()
}

// CancelReason says why ctx ended, in the words of the messages above.
func CancelReason(ctx context.Context) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return "stopped by --timeout"
	}
	return "interrupted"
}
