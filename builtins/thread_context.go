package builtins

import (
	"context"

	"go.starlark.net/starlark"
)

// contextLocal is the thread-local key of a thread's own context, the
// name go.starlark.net's REPL uses.
const contextLocal = "context"

// SetContext makes ctx the context of the builtins called on thread, in
// place of the run's Options.Context: a REPL gives each statement its own
// thread and context, so that Ctrl-C stops that statement only.
func SetContext(thread *starlark.Thread, ctx context.Context) {
	thread.SetLocal(contextLocal, ctx)
}

// ctxOf returns the context that stops the network waits of a builtin
// called on thread: the thread's own, else the run's.
func (r *Run) ctxOf(thread *starlark.Thread) context.Context {
	if ctx, ok := thread.Local(contextLocal).(context.Context); ok {
		return ctx
	}
	return r.ctx
}
