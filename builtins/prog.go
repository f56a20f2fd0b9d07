package builtins

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/nkscript/nkscript/compile"
	"github.com/nkscript/nkscript/datapath"
	"github.com/nkscript/nkscript/internal/quote"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// callerDir is the directory of the script that called the builtin.
func callerDir(thread *starlark.Thread) string {
	return filepath.Dir(thread.CallFrame(1).Pos.Filename())
}

func programFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r := runOf(thread)
	if len(args) != 1 {
		return nil, fmt.Errorf("takes one positional argument, the program name (one of %s), the path of an ELF object or of a BPF C source (.c); got %d", quote.Or(datapath.BundledPrograms()), len(args))
	}
	name, ok := args[0].(starlark.String)
	if !ok {
		return nil, fmt.Errorf("name must be a string, not %s", describeValue(args[0]))
	}
	spec, cflags, err := programSpec(kwargs)
	if err != nil {
		return nil, err
	}
	s := string(name)
	isC := strings.HasSuffix(s, ".c")
	if cflags != nil && !isC {
		return nil, fmt.Errorf("cflags= is for BPF C sources (a path ending in .c), not %q", s)
	}
	if strings.Contains(s, "/") || strings.HasSuffix(s, ".o") || isC {
		path := s
		if !filepath.IsAbs(path) {
			path = filepath.Join(callerDir(thread), path)
		}
		spec.Path = path
		if isC {
			if spec.Path, err = compile.Object(path, compile.Options{CFlags: cflags, Include: []string{callerDir(thread)}}); err != nil {
				return nil, err
			}
			spec.Source = s
		}
	} else {
		if spec.Section != "" {
			return nil, fmt.Errorf("section= is for ELF objects given by path; %q is a bundled program", s)
		}
		spec.Name = s
	}
	p, err := r.lab.LoadProgram(spec)
	if err != nil {
		return nil, err
	}
	return &Program{p: p}, nil
}

// programSpec reads program()'s keyword arguments: section=, cflags= (nil
// when not given) and the constants.
func programSpec(kwargs []starlark.Tuple) (datapath.ProgramSpec, []string, error) {
	spec := datapath.ProgramSpec{Consts: map[string]int64{}, AddrConsts: map[string]netip.Addr{}}
	var cflags []string
	for _, kv := range kwargs {
		k := string(kv[0].(starlark.String))
		switch k {
		case "section":
			s, ok := kv[1].(starlark.String)
			if !ok {
				return spec, nil, fmt.Errorf("section must be a string, not %s", describeValue(kv[1]))
			}
			spec.Section = string(s)
			continue
		case "cflags":
			var err error
			if cflags, err = stringList("cflags", kv[1]); err != nil {
				return spec, nil, err
			}
			continue
		}
		if err := programConst(spec, k, kv[1]); err != nil {
			return spec, nil, err
		}
	}
	return spec, cflags, nil
}

// stringList reads a list or tuple of strings, never nil.
func stringList(what string, v starlark.Value) ([]string, error) {
	seq, ok := v.(starlark.Indexable)
	if _, isStr := v.(starlark.String); !ok || isStr {
		return nil, fmt.Errorf("%s must be a list of strings, not %s", what, describeValue(v))
	}
	out := []string{}
	for i := range seq.Len() {
		s, ok := seq.Index(i).(starlark.String)
		if !ok {
			return nil, fmt.Errorf("%s[%d] must be a string, not %s", what, i, describeValue(seq.Index(i)))
		}
		out = append(out, string(s))
	}
	return out, nil
}

// programConst sets the constant k of spec to v.
func programConst(spec datapath.ProgramSpec, k string, v starlark.Value) error {
	switch x := v.(type) {
	case starlark.Int:
		n, ok := x.Int64()
		if !ok {
			return fmt.Errorf("constant %s=%s does not fit in 64 bits", k, x)
		}
		spec.Consts[k] = n
	case starlark.Bool:
		spec.Consts[k] = 0
		if x {
			spec.Consts[k] = 1
		}
	case starlark.String:
		a, err := netip.ParseAddr(string(x))
		if err != nil {
			return fmt.Errorf("constant %s=%q: a string constant must be an IP address, like \"10.0.1.0\"", k, string(x))
		}
		spec.AddrConsts[k] = a
	default:
		return fmt.Errorf("constant %s must be an int, a bool or an IP address string, not %s", k, describeValue(v))
	}
	return nil
}

func statsFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	prog := programArg{what: "a program"}
	if err := unpackArgs(b, args, kwargs, "prog", &prog); err != nil {
		return nil, err
	}
	s, err := prog.v.p.Stats()
	if err != nil {
		if errors.Is(err, datapath.ErrNoStats) {
			return nil, fmt.Errorf("%s has no \"stats\" map with pass/drop counters", prog.v)
		}
		return nil, err
	}
	return statsValue(s), nil
}

func statsValue(s datapath.Stats) *starlarkstruct.Struct {
	return starlarkstruct.FromStringDict(starlark.String("stats"), starlark.StringDict{
		"passed":     starlark.MakeUint64(s.Passed),
		"dropped":    starlark.MakeUint64(s.Dropped),
		"redirected": starlark.MakeUint64(s.Redirected),
	})
}
