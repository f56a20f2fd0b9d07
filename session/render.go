package session

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/nkscript/nkscript/builtins"
	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// Diagnosis is a script error described once, for both views of it: the
// text view (WriteText) and the JSON view (JSON).
type Diagnosis struct {
	// Problems holds one entry per error, in order; there is more than
	// one only when the script failed to resolve.
	Problems []Problem
	// Traceback holds the calls that led to the first problem, outermost
	// first, when there was more than one.
	Traceback []starlark.CallFrame
}

// Problem is one error and where in the script it happened.
type Problem struct {
	// Pos is FILE:LINE:COL, or "" when the error has no position.
	Pos string
	// Msg says what went wrong.
	Msg string
}

// Diagnose describes a script error: a Starlark evaluation, syntax or
// resolve error with its position (and a name suggestion for an
// undefined one), or any other error as its message.
func Diagnose(err error) Diagnosis {
	var evalErr *starlark.EvalError
	var synErr syntax.Error
	var resErr resolve.ErrorList
	switch {
	case errors.As(err, &evalErr):
		var frames []starlark.CallFrame
		for _, f := range evalErr.CallStack {
			if f.Pos.IsValid() && f.Pos.Filename() != "<builtin>" {
				frames = append(frames, f)
			}
		}
		if len(frames) == 0 {
			return Diagnosis{Problems: []Problem{{Msg: evalErr.Msg}}}
		}
		d := Diagnosis{Problems: []Problem{{Pos: frames[len(frames)-1].Pos.String(), Msg: evalErr.Msg}}}
		if len(frames) > 1 {
			d.Traceback = frames
		}
		return d
	case errors.As(err, &synErr):
		return Diagnosis{Problems: []Problem{{Pos: synErr.Pos.String(), Msg: "syntax error: " + synErr.Msg}}}
	case errors.As(err, &resErr) && len(resErr) > 0:
		var d Diagnosis
		for _, e := range resErr {
			msg := e.Msg
			if name, ok := strings.CutPrefix(msg, "undefined: "); ok {
				if s := Suggest(name); s != "" {
					msg += fmt.Sprintf(" (did you mean %s?)", s)
				}
			}
			d.Problems = append(d.Problems, Problem{Pos: e.Pos.String(), Msg: msg})
		}
		return d
	}
	return Diagnosis{Problems: []Problem{{Msg: err.Error()}}}
}

// WriteText writes the diagnosis as FILE:LINE:COL: message lines
// ("error: message" without a position), then the traceback.
func (d Diagnosis) WriteText(w io.Writer) {
	for _, p := range d.Problems {
		if p.Pos == "" {
			fmt.Fprintf(w, "error: %s\n", p.Msg)
		} else {
			fmt.Fprintf(w, "%s: %s\n", p.Pos, p.Msg)
		}
	}
	if len(d.Traceback) > 0 {
		fmt.Fprintln(w, "traceback (most recent call last):")
		for _, f := range d.Traceback {
			fmt.Fprintf(w, "  %s: in %s\n", f.Pos, f.Name)
		}
	}
}

// JSONError is the JSON view of the error that stopped a script.
type JSONError struct {
	// Message says what went wrong.
	Message string `json:"message"`
	// Position is FILE:LINE:COL, or null when there is none.
	Position *string `json:"position"`
}

// JSON returns the JSON view of the diagnosis: its first problem.
func (d Diagnosis) JSON() *JSONError {
	p := d.Problems[0]
	e := &JSONError{Message: p.Msg}
	if p.Pos != "" {
		e.Position = &p.Pos
	}
	return e
}

// Suggest returns the predeclared name closest to an undefined one, or "".
func Suggest(name string) string {
	candidates := builtins.Names()
	for n := range starlark.Universe {
		candidates = append(candidates, n)
	}
	return builtins.Nearest(name, candidates)
}
