package session

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

func execErr(t *testing.T, src string) error {
	t.Helper()
	_, err := starlark.ExecFileOptions(&syntax.FileOptions{}, &starlark.Thread{}, "x.star", src, nil)
	if err == nil {
		t.Fatalf("%q: no error", src)
	}
	return err
}

func TestWriteError(t *testing.T) {
	evalErr := execErr(t, "def f():\n    fail('boom')\nf()\n")
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{ErrReported, ""},
		{errors.New("plain"), "error: plain\n"},
		{execErr(t, "x = (\n"), "x.star:2:1: syntax error: got end of file, want primary expression\n"},
		{execErr(t, "pingg\n"), "x.star:1:1: undefined: pingg (did you mean ping?)\n"},
		{evalErr, "x.star:2:9: fail: boom\ntraceback (most recent call last):\n  x.star:3:2: in <toplevel>\n  x.star:2:9: in f\n"},
		{&CanceledError{Name: "a.star:test_x", Reason: "interrupted", Err: evalErr}, "a.star:test_x: interrupted; cleaning up\n"},
		{&RunError{Err: errors.New("--trace: no tracefs")}, "nkscript: --trace: no tracefs\n"},
		{&MessageError{Msg: "a.star: test_x is a int at the end of the top level, not a function"}, "a.star: test_x is a int at the end of the top level, not a function\n"},
		{&CleanupError{Err: errors.New("busy"), Journal: "/run/j"}, "nkscript: cleanup failed: busy\nRun 'nkscript cleanup' to retry; the journal is /run/j\n"},
		{&KeepError{Err: errors.New("no")}, "nkscript: keep: no\n"},
		{CheckSteps(errors.New("too many steps"), 7), "error: too many steps\nnkscript: the script ran more than 7 Starlark steps (a runaway loop?); raise the limit with --max-steps\n"},
	} {
		var b bytes.Buffer
		WriteError(&b, tc.err)
		if b.String() != tc.want {
			t.Errorf("WriteError(%v):\n got %q\nwant %q", tc.err, b.String(), tc.want)
		}
	}
	var b bytes.Buffer
	WriteError(&b, Protect(func() error { panic("oops") }))
	if s := b.String(); !strings.HasPrefix(s, "nkscript: internal error: oops\ngoroutine ") || !strings.HasSuffix(s, "\nThe lab is being cleaned up. Please report this.\n") {
		t.Errorf("panic: %q", s)
	}
}

func TestJSONOf(t *testing.T) {
	evalErr := execErr(t, "def f():\n    fail('boom')\nf()\n")
	for _, tc := range []struct {
		err      error
		msg, pos string
		none     bool
	}{
		{err: nil, none: true},
		{err: &PanicError{Value: 1}, none: true},
		{err: &RunError{Err: errors.New("x")}, none: true},
		{err: evalErr, msg: "fail: boom", pos: "x.star:2:9"},
		{err: &CanceledError{Name: "x.star", Reason: "stopped by --timeout", Err: evalErr}, msg: "stopped by --timeout", pos: "x.star:2:9"},
		{err: errors.New("plain"), msg: "plain"},
	} {
		e := JSONOf(tc.err)
		switch {
		case tc.none && e != nil:
			t.Errorf("JSONOf(%v) = %+v, want nil", tc.err, e)
		case tc.none:
		case e == nil || e.Message != tc.msg || (e.Position == nil) != (tc.pos == "") || (e.Position != nil && *e.Position != tc.pos):
			t.Errorf("JSONOf(%v) = %+v, want %q at %q", tc.err, e, tc.msg, tc.pos)
		}
	}
}

func TestExecCancels(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	thread := &starlark.Thread{}
	err := Exec(ctx, thread, "loop.star", func() error {
		cancel()
		_, err := starlark.ExecFileOptions(&syntax.FileOptions{While: true, TopLevelControl: true}, thread, "loop.star", "while True:\n    pass\n", nil)
		return err
	})
	var c *CanceledError
	if !errors.As(err, &c) || c.Name != "loop.star" || c.Reason != "interrupted" {
		t.Fatalf("Exec: %v, want a *CanceledError for loop.star, interrupted", err)
	}
}
