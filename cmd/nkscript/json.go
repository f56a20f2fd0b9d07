package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/nkscript/nkscript/builtins"
	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// jsonReport collects what --json prints after a run: the script's error,
// if any, and the run's expectations.
type jsonReport struct {
	out    io.Writer
	script string
	run    *builtins.Run
	err    *jsonError
}

// jsonDoc is the document --json writes to stdout.
type jsonDoc struct {
	Script       string                 `json:"script"`
	OK           bool                   `json:"ok"`
	Error        *jsonError             `json:"error"`
	Expectations []builtins.Expectation `json:"expectations"`
}

// jsonError is the error that stopped the script. Position is the
// file:line:col it happened at, or null when there is none.
type jsonError struct {
	Message  string  `json:"message"`
	Position *string `json:"position"`
}

type jsonReportKey struct{}

// setupJSON prepares the --json report when enabled: the returned context
// carries it to execScript, and the returned writer (stderr) is where the
// script's own output goes so that stdout holds only the document. When
// disabled it returns ctx, stdout and a nil report.
func setupJSON(ctx context.Context, enabled bool, script string, stdout, stderr io.Writer) (context.Context, io.Writer, *jsonReport) {
	if !enabled {
		return ctx, stdout, nil
	}
	rep := &jsonReport{out: stdout, script: script}
	return context.WithValue(ctx, jsonReportKey{}, rep), stderr, rep
}

// jsonRun tells the --json report of ctx, if any, which run to report on.
func jsonRun(ctx context.Context, r *builtins.Run) {
	if rep, _ := ctx.Value(jsonReportKey{}).(*jsonReport); rep != nil {
		rep.run = r
	}
}

// jsonFail records the error that stopped the script in the --json report
// of ctx, if any.
func jsonFail(ctx context.Context, err error) {
	rep, _ := ctx.Value(jsonReportKey{}).(*jsonReport)
	if rep == nil {
		return
	}
	rep.err = describeError(err)
	if ctx.Err() != nil {
		rep.err.Message = cancelReason(ctx)
	}
}

// emit writes the report for a run that ended with exit code code and
// returns code. A nil report writes nothing.
func (rep *jsonReport) emit(code int) int {
	if rep == nil {
		return code
	}
	doc := jsonDoc{Script: rep.script, OK: code == exitOK, Error: rep.err, Expectations: []builtins.Expectation{}}
	if rep.run != nil {
		doc.Expectations = rep.run.Report().Expectations()
	}
	if !doc.OK && doc.Error == nil {
		doc.Error = &jsonError{Message: fmt.Sprintf("exit status %d; see stderr", code)}
	}
	enc := json.NewEncoder(rep.out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return exitFail
	}
	return code
}

// describeError turns a script error into a message and the position it
// points at, like printError does for humans.
func describeError(err error) *jsonError {
	var evalErr *starlark.EvalError
	var synErr syntax.Error
	var resErr resolve.ErrorList
	at := func(p syntax.Position) *string {
		s := p.String()
		return &s
	}
	switch {
	case errors.As(err, &evalErr):
		e := &jsonError{Message: evalErr.Msg}
		for _, f := range evalErr.CallStack {
			if f.Pos.IsValid() && f.Pos.Filename() != "<builtin>" {
				e.Position = at(f.Pos)
			}
		}
		return e
	case errors.As(err, &synErr):
		return &jsonError{Message: "syntax error: " + synErr.Msg, Position: at(synErr.Pos)}
	case errors.As(err, &resErr) && len(resErr) > 0:
		first := resErr[0]
		msg := first.Msg
		if name, ok := strings.CutPrefix(msg, "undefined: "); ok {
			if s := suggest(name); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", s)
			}
		}
		return &jsonError{Message: msg, Position: at(first.Pos)}
	}
	return &jsonError{Message: err.Error()}
}
