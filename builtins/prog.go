package builtins

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/nkscript/nkscript/datapath"
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
		return nil, fmt.Errorf("%s: takes one positional argument, the program name (one of %s) or the path of an ELF object; got %d", b.Name(), quoteList(datapath.BundledPrograms()), len(args))
	}
	name, ok := args[0].(starlark.String)
	if !ok {
		return nil, fmt.Errorf("%s: name must be a string, not %s", b.Name(), describeValue(args[0]))
	}
	spec := datapath.ProgramSpec{Consts: map[string]int64{}, AddrConsts: map[string]netip.Addr{}}
	for _, kv := range kwargs {
		k := string(kv[0].(starlark.String))
		if k == "section" {
			s, ok := kv[1].(starlark.String)
			if !ok {
				return nil, fmt.Errorf("%s: section must be a string, not %s", b.Name(), describeValue(kv[1]))
			}
			spec.Section = string(s)
			continue
		}
		var v int64
		switch x := kv[1].(type) {
		case starlark.Int:
			n, ok := x.Int64()
			if !ok {
				return nil, fmt.Errorf("%s: constant %s=%s does not fit in 64 bits", b.Name(), k, x)
			}
			v = n
		case starlark.Bool:
			if x {
				v = 1
			}
		case starlark.String:
			a, err := netip.ParseAddr(string(x))
			if err != nil {
				return nil, fmt.Errorf("%s: constant %s=%q: a string constant must be an IP address, like \"10.0.1.0\"", b.Name(), k, string(x))
			}
			spec.AddrConsts[k] = a
			continue
		default:
			return nil, fmt.Errorf("%s: constant %s must be an int, a bool or an IP address string, not %s", b.Name(), k, describeValue(kv[1]))
		}
		spec.Consts[k] = v
	}
	if s := string(name); strings.Contains(s, "/") || strings.HasSuffix(s, ".o") {
		if !filepath.IsAbs(s) {
			s = filepath.Join(callerDir(thread), s)
		}
		spec.Path = s
	} else {
		if spec.Section != "" {
			return nil, fmt.Errorf("%s: section= is for ELF objects given by path; %q is a bundled program", b.Name(), s)
		}
		spec.Name = s
	}
	p, err := r.lab.LoadProgram(spec)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return &Program{p: p}, nil
}

func attachFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r := runOf(thread)
	var progv, target, before, after starlark.Value
	var hookName string
	var first, last bool
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "prog", &progv, "target", &target, "hook", &hookName,
		"first?", &first, "last?", &last, "before?", &before, "after?", &after); err != nil {
		return nil, err
	}
	prog, ok := progv.(*Program)
	if !ok {
		return nil, fmt.Errorf("%s: prog must be a program (from program(...)), not %s", b.Name(), describeValue(progv))
	}
	hook, err := datapath.ParseHook(hookName)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	var link *Link
	switch t := target.(type) {
	case *Link:
		link = t
	case *Pair:
		if hook != datapath.HookPrimary && hook != datapath.HookPeer {
			return nil, fmt.Errorf("%s: hook %q attaches to one device; give a link such as %s.primary, not the pair", b.Name(), hookName, t.primary.l.Name())
		}
		link = t.primary
	default:
		return nil, fmt.Errorf("%s: target must be a link or a netkit pair, not %s", b.Name(), describeValue(target))
	}
	opts := datapath.AttachOptions{First: first, Last: last}
	for _, anchor := range []struct {
		kw   string
		v    starlark.Value
		prog **datapath.Program
		att  **datapath.Attachment
	}{{"before", before, &opts.BeforeProgram, &opts.BeforeAttachment}, {"after", after, &opts.AfterProgram, &opts.AfterAttachment}} {
		switch v := anchor.v.(type) {
		case nil, starlark.NoneType:
		case *Program:
			*anchor.prog = v.p
		case *Attachment:
			*anchor.att = v.a
		default:
			return nil, fmt.Errorf("%s: %s= takes a program or an attachment, not %s", b.Name(), anchor.kw, describeValue(anchor.v))
		}
	}
	a, err := r.lab.Attach(prog.p, link.l, hook, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	shown := link
	if hook == datapath.HookPrimary || hook == datapath.HookPeer {
		shown = link.pair.primary
	}
	return &Attachment{a: a, prog: prog, target: shown, hook: hook}, nil
}

func statsFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var progv starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "prog", &progv); err != nil {
		return nil, err
	}
	prog, ok := progv.(*Program)
	if !ok {
		return nil, fmt.Errorf("%s: prog must be a program, not %s", b.Name(), describeValue(progv))
	}
	s, err := prog.p.Stats()
	if err != nil {
		if errors.Is(err, datapath.ErrNoStats) {
			return nil, fmt.Errorf("%s: %s has no \"stats\" map with pass/drop counters", b.Name(), prog)
		}
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
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
