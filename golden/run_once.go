package golden

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/nkscript/nkscript/builtins"
	"github.com/nkscript/nkscript/datapath"
	"github.com/nkscript/nkscript/session"
	"go.starlark.net/starlark"
)

// runResult is the outcome of one run of a script.
type runResult struct {
	top     string // what the top level printed
	out     string // what the test function printed
	topDone bool   // the top level finished
	fnDone  bool   // the test function returned
	msg     string // why the run failed; "" if it did not
	elapsed time.Duration
}

// runOnce runs the script's top level on a fresh lab and then calls the
// function fn, if not "". The lab is removed before it returns, whatever
// happens.
func (tr *tester) runOnce(ctx context.Context, path, fn string) (res runResult) {
	name := path
	if fn != "" {
		name += ":" + fn
	}
	abs, _ := filepath.Abs(path)
	start := time.Now()
	defer func() { res.elapsed = time.Since(start) }()
	var out, msg bytes.Buffer
	cfg := session.Config{Lab: datapath.LabConfig{JournalDir: tr.cfg.JournalDir, Script: abs, Prefix: tr.cfg.Prefix}, Timeout: tr.cfg.Timeout, Stderr: &msg}
	err, _ := session.Run(ctx, cfg, func(ctx context.Context, lab *datapath.Lab) error {
		r := builtins.NewRun(builtins.Options{Lab: lab, Context: ctx, Stdout: &out, Argv: []string{path}})
		thread := r.Thread(path)
		var globals starlark.StringDict
		err := session.Exec(ctx, thread, name, func() (err error) {
			globals, err = r.ExecFile(thread, path, nil)
			return err
		})
		res.top = out.String()
		if err != nil || fn == "" {
			res.topDone = err == nil
			return err
		}
		res.topDone = true
		out.Reset()
		f, ok := globals[fn].(starlark.Callable)
		if !ok {
			return &session.MessageError{Msg: fmt.Sprintf("%s: %s is a %s at the end of the top level, not a function", path, fn, typeName(globals[fn]))}
		}
		err = session.Exec(ctx, thread, name, func() error {
			_, err := starlark.Call(thread, f, nil, nil)
			return err
		})
		res.out = out.String()
		res.fnDone = err == nil
		return err
	})
	var panicErr *session.PanicError
	if errors.As(err, &panicErr) {
		if res.topDone {
			res.out = out.String()
		} else {
			res.top = out.String()
		}
		res.fnDone = false
	}
	res.msg = msg.String()
	if p := tr.cfg.Prefix; p != "" {
		res.top, res.out = strings.ReplaceAll(res.top, p, ""), strings.ReplaceAll(res.out, p, "")
	}
	return res
}

func typeName(v starlark.Value) string {
	if v == nil {
		return "missing name"
	}
	return v.Type()
}
