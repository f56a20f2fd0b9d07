package builtins

import (
	"errors"
	"fmt"
	"time"

	"github.com/nkscript/nkscript/datapath"
	"go.starlark.net/starlark"
)

// targetArg is what a program attaches to: a link, or a netkit pair for
// the hooks "primary" and "peer".
type targetArg struct {
	k    *Link
	pair *Pair
}

func (a *targetArg) Unpack(v starlark.Value) error {
	switch t := v.(type) {
	case *Link:
		a.k = t
	case *Pair:
		a.k, a.pair = t.primary, t
	default:
		return badParam("%s must be a link or a netkit pair, not %s", describeValue(v))
	}
	return nil
}

func chainFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r := runOf(thread)
	var target targetArg
	var hookName string
	if err := unpackArgs(b, args, kwargs, "link", &target, "hook", &hookName); err != nil {
		return nil, err
	}
	hook, err := datapath.ParseHook(hookName)
	if err != nil {
		return nil, err
	}
	names, err := r.lab.Chain(target.k.l, hook)
	if err != nil {
		return nil, err
	}
	list := make([]starlark.Value, len(names))
	for i, n := range names {
		list[i] = starlark.String(n)
	}
	return starlark.NewList(list), nil
}

func attachFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r := runOf(thread)
	prog := programArg{what: "a program (from program(...))"}
	var target targetArg
	var before, after anchorArg
	var hookName string
	var first, last bool
	var mech mechanismArg
	var mode xdpModeArg
	if err := unpackArgs(b, args, kwargs, "prog", &prog, "target", &target, "hook", &hookName,
		"first?", &first, "last?", &last, "before??", &before, "after??", &after,
		"mechanism??", &mech, "mode??", &mode); err != nil {
		return nil, err
	}
	hook, err := datapath.ParseHook(hookName)
	if err != nil {
		return nil, err
	}
	link := target.k
	if target.pair != nil && !hook.Netkit() {
		return nil, fmt.Errorf("hook %q attaches to one device; give a link such as %s.primary, not the pair", hookName, link.l.Name())
	}
	opts := datapath.AttachOptions{First: first, Last: last,
		BeforeProgram: before.prog, BeforeAttachment: before.att, AfterProgram: after.prog, AfterAttachment: after.att,
		Mechanism: datapath.Mechanism(mech), XDPMode: datapath.XDPMode(mode)}
	a, err := r.lab.Attach(prog.v.p, link.l, hook, opts)
	if err != nil {
		return nil, adviseAttach(err, opts)
	}
	shown := link
	if hook.Netkit() {
		shown = link.pair.primary
	}
	return &Attachment{a: a, prog: prog.v, target: shown, hook: hook}, nil
}

// anchorArg is what attach(before=, after=) places a program next to: a
// program or an attachment on the hook.
type anchorArg struct {
	prog *datapath.Program
	att  *datapath.Attachment
}

func (a *anchorArg) Unpack(v starlark.Value) error {
	switch v := v.(type) {
	case *Program:
		a.prog = v.p
	case *Attachment:
		a.att = v.a
	default:
		return badParam("%s= takes a program or an attachment, not %s", describeValue(v))
	}
	return nil
}

// mechanismArg is attach(mechanism=): how the program is attached.
type mechanismArg datapath.Mechanism

func (a *mechanismArg) Unpack(v starlark.Value) error {
	m, err := unpackChoice(v, "tc", datapath.ParseMechanism)
	*a = mechanismArg(m)
	return err
}

// xdpModeArg is attach(mode=): where an XDP program runs.
type xdpModeArg datapath.XDPMode

func (a *xdpModeArg) Unpack(v starlark.Value) error {
	m, err := unpackChoice(v, "generic", datapath.ParseXDPMode)
	*a = xdpModeArg(m)
	return err
}

// unpackChoice parses v, a string naming one of a few choices, with
// parse; example is one of them.
func unpackChoice[T any](v starlark.Value, example string, parse func(string) (T, error)) (T, error) {
	s, ok := starlark.AsString(v)
	if !ok {
		var zero T
		return zero, badParam("%s= takes a string such as %q, not %s", example, describeValue(v))
	}
	m, err := parse(s)
	if err != nil {
		return m, badArg("%s", err)
	}
	return m, nil
}

// adviseAttach adds what a script can do about a failed attach.
func adviseAttach(err error, opts datapath.AttachOptions) error {
	switch {
	case errors.Is(err, datapath.ErrNoNativeXDP):
		return fmt.Errorf("%w; use mode=\"generic\", which runs on any device", err)
	case opts.Mechanism == datapath.MechTCX && errors.Is(err, datapath.ErrNotSupported):
		return fmt.Errorf("%w; use mechanism=\"tc\" (clsact + cls_bpf), which works on any kernel, or leave mechanism out to let nkscript choose", err)
	}
	return err
}

// attachDocs documents program order on a hook.
var attachDocs = []Entry{
	{
		Name: "chain", Kind: KindFunc,
		Signature: `chain(link, hook) -> list`,
		Doc: "Lists the names of the programs on a tcx hook (`\"ingress\"`, `\"egress\"`) of a link, " +
			"or on a netkit hook (`\"primary\"`, `\"peer\"`) of a pair, in the order they run — as the " +
			"kernel reports them, so programs other tools attached show too. On `\"ingress\"` and " +
			"`\"egress\"` the tc filters (`mechanism = \"tc\"`) follow the tcx programs, as the kernel " +
			"runs them. Names are the kernel's, at most 15 characters.",
		Example: `attach(program("pass"), v.primary, "ingress")
attach(program("drop_port", port = 80), v.primary, "ingress", first = True)
print(chain(v.primary, "ingress"))   # ["drop_port", "pass"]`,
	},
	{
		Name: "trace", Kind: KindFunc,
		Signature: `trace(prog=None) -> trace`,
		Doc: "Starts collecting what BPF programs write with `bpf_printk` (if not started yet) " +
			"and returns the collection; `lines()` lists the messages so far, oldest first. " +
			"nkscript reads them through a tracing instance of its own (the " +
			"bpf_trace_printk event), never the global trace_pipe others may be reading, and " +
			"removes it when the script ends. The kernel does not say which program wrote a " +
			"line (a line names the task that was running, a ping or a softirq, not the " +
			"program), so the lines are those of every program on the machine since the first " +
			"trace(); `prog` only documents which one you are after. To keep one program's " +
			"lines, have it start its messages with a prefix of its own " +
			"(`bpf_printk(\"own: ...\")`) and read them through `only(\"own:\")`: a golden " +
			"file then does not pick up other programs' prints. `--trace` streams all the " +
			"lines to stderr as they come.",
		Attrs: []Attr{
			{"lines", "method: lines() lists the messages collected so far"},
			{"only", "method: only(prefix) is the same collection keeping the messages that start with prefix"},
			{"prefix", "the prefix only() keeps, or \"\""},
		},
		Example: `t = trace(mine)
expect_pass("10.0.0.2", port = 8080)
print(t.lines()[0])`,
	},
	{
		Name: "trace.lines", Kind: KindMethod,
		Signature: `trace.lines() -> list`,
		Doc: "Lists the messages collected so far, oldest first, after waiting until none has " +
			"arrived for 30ms (at most 1s); on a trace from only(prefix), the messages that start " +
			"with prefix.",
		Example: `print(sorted(set(t.lines())))`,
	},
	{
		Name: "trace.only", Kind: KindMethod,
		Signature: `trace.only(prefix) -> trace`,
		Doc: "Returns the same collection keeping only the messages that start with `prefix` " +
			"(kept in the messages): the lines of the program that marks its bpf_printk messages " +
			"with it. The collection still starts at the first trace().",
		Example: `own = trace(mine).only("own: ")
expect_drop("10.0.0.2", port = 12345, by = mine)
print(sorted(set(own.lines())))   # ["own: Dropping packet"]`,
	},
}

// Trace is what trace() returns: the bpf_printk lines collected, all
// of them or, from only(), those starting with prefix.
type Trace struct {
	object
	t      *datapath.Tracer
	prefix string
}

func (t *Trace) String() string {
	if t.prefix != "" {
		return fmt.Sprintf("trace().only(%q)", t.prefix)
	}
	return "trace()"
}
func (t *Trace) Type() string          { return "trace" }
func (t *Trace) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: trace") }
func (t *Trace) AttrNames() []string   { return []string{"lines", "only", "prefix"} }
func (t *Trace) Attr(name string) (starlark.Value, error) {
	switch name {
	case "lines":
		return newMethod(t, "lines", t.lines), nil
	case "only":
		return newMethod(t, "only", t.only), nil
	case "prefix":
		return starlark.String(t.prefix), nil
	}
	return nil, nil
}

func (t *Trace) lines(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := unpackArgs(b, args, kwargs); err != nil {
		return nil, err
	}
	var out []starlark.Value
	for _, l := range t.t.LinesWithPrefix(t.prefix, 30*time.Millisecond, time.Second) {
		out = append(out, starlark.String(l))
	}
	return starlark.NewList(out), nil
}

func (t *Trace) only(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var prefix string
	if err := unpackArgs(b, args, kwargs, "prefix", &prefix); err != nil {
		return nil, err
	}
	if prefix == "" {
		return nil, errors.New("prefix must not be empty: it is what the program's messages start with, like \"own: \"")
	}
	return &Trace{t: t.t, prefix: prefix}, nil
}

func traceFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	prog := programArg{what: "a program"}
	if err := unpackArgs(b, args, kwargs, "prog??", &prog); err != nil {
		return nil, err
	}
	t, err := runOf(thread).lab.Trace()
	if err != nil {
		return nil, err
	}
	return &Trace{t: t}, nil
}
