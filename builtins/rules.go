package builtins

import (
	"fmt"
	"net/netip"

	"github.com/nkscript/nkscript/datapath"
	"go.starlark.net/starlark"
)

// Routes and routing policy rules as values a script can remove.

// Route is what route() returns.
type Route struct {
	object
	run  *Run
	ns   *Netns
	spec datapath.RouteSpec
}

func (r *Route) String() string        { return fmt.Sprintf("route(%s, ns=%s)", r.spec, r.ns) }
func (r *Route) Type() string          { return "route" }
func (r *Route) Hash() (uint32, error) { return starlark.String(r.String()).Hash() }
func (r *Route) AttrNames() []string   { return []string{"dst", "ns", "remove", "table", "via"} }

// Attr returns the route's attributes and its remove method.
func (r *Route) Attr(name string) (starlark.Value, error) {
	switch name {
	case "dst":
		return starlark.String(r.spec.Dst.String()), nil
	case "via":
		return addrOrNone(r.spec.Via), nil
	case "ns":
		return r.ns, nil
	case "table":
		return tableValue(r.spec.Table), nil
	case "remove":
		return removeMethod(r, func() error { return r.run.lab.RemoveRoute(r.ns.ns, r.spec) }), nil
	}
	return nil, nil
}

// Rule is what rule() returns.
type Rule struct {
	object
	run  *Run
	ns   *Netns
	spec datapath.RuleSpec
}

func (r *Rule) String() string        { return fmt.Sprintf("rule(%s, ns=%s)", r.spec, r.ns) }
func (r *Rule) Type() string          { return "rule" }
func (r *Rule) Hash() (uint32, error) { return starlark.String(r.String()).Hash() }
func (r *Rule) AttrNames() []string {
	return []string{"dst", "ns", "priority", "remove", "src", "table"}
}

// Attr returns the rule's attributes and its remove method.
func (r *Rule) Attr(name string) (starlark.Value, error) {
	switch name {
	case "src":
		return prefixOrNone(r.spec.Src), nil
	case "dst":
		return prefixOrNone(r.spec.Dst), nil
	case "ns":
		return r.ns, nil
	case "table":
		return tableValue(r.spec.Table), nil
	case "priority":
		if r.spec.Priority == 0 {
			return starlark.None, nil
		}
		return starlark.MakeInt(r.spec.Priority), nil
	case "remove":
		return removeMethod(r, func() error { return r.run.lab.RemoveRule(r.ns.ns, r.spec) }), nil
	}
	return nil, nil
}

// removeMethod is recv.remove(), which takes no arguments.
func removeMethod(recv starlark.Value, remove func() error) *starlark.Builtin {
	return newMethod(recv, "remove", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if err := unpackArgs(b, args, kwargs); err != nil {
			return nil, err
		}
		return starlark.None, remove()
	})
}

func addrOrNone(a netip.Addr) starlark.Value {
	if !a.IsValid() {
		return starlark.None
	}
	return starlark.String(a.String())
}

func prefixOrNone(p netip.Prefix) starlark.Value {
	if !p.IsValid() {
		return starlark.None
	}
	return starlark.String(p.String())
}

// tableValue is a routing table as a script wrote it: "main" for 0.
func tableValue(t int) starlark.Value {
	if t == 0 {
		return starlark.String("main")
	}
	return starlark.MakeInt(t)
}

// ruleTableArg is a rule's table, which must be given.
type ruleTableArg struct {
	t   tableArg
	set bool
}

func (a *ruleTableArg) Unpack(v starlark.Value) error {
	a.set = true
	if err := a.t.Unpack(v); err != nil {
		return err
	}
	if a.t == 0 {
		a.t = 254 // "main": a rule names its table
	}
	return nil
}

// fwmarkArg is a firewall mark, 1..2^32-1.
type fwmarkArg uint32

func (a *fwmarkArg) Unpack(v starlark.Value) error {
	i, ok := v.(starlark.Int)
	n, ok2 := i.Int64()
	if !ok || !ok2 || n < 1 || n > 1<<32-1 {
		return badParam("%s=%s is not a mark 1..4294967295", v.String())
	}
	*a = fwmarkArg(n)
	return nil
}

// priorityArg is a rule's priority, 1..2^32-1.
type priorityArg int

func (a *priorityArg) Unpack(v starlark.Value) error {
	i, ok := v.(starlark.Int)
	n, ok2 := i.Int64()
	if !ok || !ok2 || n < 1 || n > 1<<32-1 {
		return badParam("%s=%s is not a priority 1..4294967295", v.String())
	}
	*a = priorityArg(n)
	return nil
}

func ruleFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r := runOf(thread)
	var src, dst sourceArg
	var table ruleTableArg
	var fwmark fwmarkArg
	var priority priorityArg
	var ns netnsArg
	iif := linkArg{what: "a link (the device packets come in by)"}
	oif := linkArg{what: "a link (the device packets leave by)"}
	if err := unpackArgs(b, args, kwargs, "src??", &src, "dst??", &dst, "iif??", &iif, "oif??", &oif,
		"fwmark??", &fwmark, "table??", &table, "priority??", &priority, "ns??", &ns); err != nil {
		return nil, err
	}
	if !table.set {
		return nil, fmt.Errorf("give table=, the routing table the rule's packets are looked up in")
	}
	spec := datapath.RuleSpec{Src: netip.Prefix(src), Dst: netip.Prefix(dst), Fwmark: uint32(fwmark), Table: int(table.t), Priority: int(priority)}
	if iif.v != nil {
		spec.IIF = iif.v.l
	}
	if oif.v != nil {
		spec.OIF = oif.v.l
	}
	in := ns.or(r.host)
	if err := r.lab.AddRule(in.ns, spec); err != nil {
		return nil, err
	}
	return &Rule{run: r, ns: in, spec: spec}, nil
}
