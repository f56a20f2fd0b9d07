package builtins

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nkscript/nkscript/datapath"
	"go.starlark.net/starlark"
)

// Builtins unpack their arguments with unpackArgs, into variables of
// parameter types (params.go and beside the builtins that alone take
// them) that implement starlark.Unpacker: a type converts and checks one
// kind of argument — a namespace, a duration, an address — the same way
// for every builtin that takes one. Their errors are named after the
// builtin by prefixName, where the builtins are declared (universe.go).

// argError is a parameter type's complaint about the argument it was
// given: a whole sentence, in which unpackArgs puts the parameter's name.
type argError struct {
	msg func(param string) string
}

// badParam makes an argError whose text is format with the parameter's
// name as its first argument, like badParam("%s=%q is not a duration", s).
func badParam(format string, args ...any) *argError {
	return &argError{func(param string) string {
		return fmt.Sprintf(format, append([]any{param}, args...)...)
	}}
}

// badArg makes an argError whose text does not name the parameter.
func badArg(format string, args ...any) *argError {
	msg := fmt.Sprintf(format, args...)
	return &argError{func(string) string { return msg }}
}

func (e *argError) Error() string { return e.msg("argument") }

// about is the complaint as an error about param.
func (e *argError) about(param string) error { return errors.New(e.msg(param)) }

// checkArg unpacks v into u as unpackArgs would for param.
func checkArg(param string, u starlark.Unpacker, v starlark.Value) error {
	var bad *argError
	if err := u.Unpack(v); errors.As(err, &bad) {
		return bad.about(param)
	} else if err != nil {
		return fmt.Errorf("for parameter %s: %w", param, err)
	}
	return nil
}

// unpackArgs is starlark.UnpackArgs for a builtin: errors in the shape of
// the call (an unknown keyword, a missing argument, a value of the wrong
// Starlark type) come first, as UnpackArgs words them; then the first
// argument a parameter type refused, in the type's own words. Checking
// what the arguments say only once the call's shape is right keeps the
// errors of a misspelt keyword about the keyword.
func unpackArgs(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple, pairs ...any) error {
	var refused error
	for i := 1; i < len(pairs); i += 2 {
		if u, ok := pairs[i].(starlark.Unpacker); ok {
			pairs[i] = deferredArg{u, strings.TrimRight(pairs[i-1].(string), "?"), &refused}
		}
	}
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, pairs...); err != nil {
		return namedError{err}
	}
	return refused
}

// deferredArg unpacks into u, keeping u's complaint, if any, for after
// UnpackArgs has checked the rest of the call.
type deferredArg struct {
	u       starlark.Unpacker
	param   string
	refused *error
}

func (d deferredArg) Unpack(v starlark.Value) error {
	var bad *argError
	err := d.u.Unpack(v)
	if errors.As(err, &bad) {
		if *d.refused == nil {
			*d.refused = bad.about(d.param)
		}
		return nil
	}
	return err
}

// namedError is an error whose text starts with the builtin's name
// already, as starlark.UnpackArgs's errors do.
type namedError struct{ err error }

func (e namedError) Error() string { return e.err.Error() }
func (e namedError) Unwrap() error { return e.err }

// prefixName puts the builtin's name in front of fn's errors: the one
// place builtins' errors are named, so a builtin returns what went wrong
// and nothing more.
func prefixName(fn builtinFn) builtinFn {
	return func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		v, err := fn(thread, b, args, kwargs)
		if err != nil {
			return nil, withName(b, err)
		}
		return v, nil
	}
}

// withName is err as the script sees it, "NAME: ...", unless it carries
// the builtin's name already.
func withName(b *starlark.Builtin, err error) error {
	var named namedError
	if errors.As(err, &named) {
		return err
	}
	return namedError{fmt.Errorf("%s: %w", b.Name(), advise(err))}
}

// advise adds to an error of the datapath, which describes the operation,
// what the script's author can do about it.
func advise(err error) error {
	var pe *datapath.PrefixError
	switch {
	case errors.As(err, &pe) && pe == err:
		return fmt.Errorf("with --prefix %q: %w", pe.Prefix, pe.Err)
	case errors.Is(err, datapath.ErrNoNetkit):
		return fmt.Errorf("%w; run the script with --vm to use a microVM kernel that has it", err)
	case errors.Is(err, datapath.ErrLinkDown):
		return fmt.Errorf("%w; call .up()", err)
	}
	return err
}
