package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/nkscript/nkscript/builtins"
	"github.com/nkscript/nkscript/session"
)

// jsonReport writes what --json prints after a run: the script's error,
// if any, and the run's expectations.
type jsonReport struct {
	out    io.Writer
	script string
}

// jsonDoc is the document --json writes to stdout.
type jsonDoc struct {
	Script       string                 `json:"script"`
	OK           bool                   `json:"ok"`
	Error        *session.JSONError     `json:"error"`
	Expectations []builtins.Expectation `json:"expectations"`
}

// newJSONReport returns the --json report of a run of script, written
// to out, or nil when enabled is false.
func newJSONReport(enabled bool, script string, out io.Writer) *jsonReport {
	if !enabled {
		return nil
	}
	return &jsonReport{out: out, script: script}
}

// emit writes the report of run r, which ended with exit code code and
// error err, and returns code. A nil report, or a script that never
// started (r is nil), writes nothing.
func (rep *jsonReport) emit(code int, r *builtins.Run, err error) int {
	if rep == nil || r == nil {
		return code
	}
	doc := jsonDoc{Script: rep.script, OK: code == exitOK, Error: session.JSONOf(err), Expectations: r.Report().Expectations()}
	if doc.Expectations == nil {
		doc.Expectations = []builtins.Expectation{}
	}
	if !doc.OK && doc.Error == nil {
		doc.Error = &session.JSONError{Message: fmt.Sprintf("exit status %d; see stderr", code)}
	}
	enc := json.NewEncoder(rep.out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return exitFail
	}
	return code
}
