package builtins

import (
	"fmt"
	"net/netip"

	"github.com/nkscript/nkscript/datapath"
	"go.starlark.net/starlark"
)

// Source-based policy routing with the bundled policy_router program: a
// policy sends packets from a source prefix out of a link, to a next hop.

func init() {
	universe["policy"] = policyFn
	universe["policies"] = policiesFn
}

// Policy is one entry of a policy_router program's policy map.
type Policy struct {
	object
	router  *Program
	src     netip.Prefix
	ifindex int
	via     starlark.Value // the link, or the ifindex when listed from the map
	nextHop netip.Addr
}

func (p *Policy) String() string {
	nh := "the destination"
	if p.nextHop.IsValid() && !p.nextHop.IsUnspecified() {
		nh = p.nextHop.String()
	}
	return fmt.Sprintf("policy(from %s via %s to %s)", p.src, p.viaString(), nh)
}

func (p *Policy) viaString() string {
	if k, ok := p.via.(*Link); ok {
		return fmt.Sprintf("%q", k.l.Name())
	}
	return fmt.Sprintf("ifindex %d", p.ifindex)
}

func (p *Policy) Type() string          { return "policy" }
func (p *Policy) Hash() (uint32, error) { return starlark.String(p.src.String()).Hash() }
func (p *Policy) AttrNames() []string   { return []string{"next_hop", "remove", "src", "via"} }
func (p *Policy) Attr(name string) (starlark.Value, error) {
	switch name {
	case "src":
		return starlark.String(p.src.String()), nil
	case "via":
		return p.via, nil
	case "next_hop":
		if !p.nextHop.IsValid() || p.nextHop.IsUnspecified() {
			return starlark.None, nil
		}
		return starlark.String(p.nextHop.String()), nil
	case "remove":
		return newMethodFn("remove", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
				return nil, err
			}
			m, err := policyMap(b.Name(), p.router, p.src.Addr().Is6())
			if err != nil {
				return nil, err
			}
			found, err := m.Delete(p.src.String())
			if err != nil {
				return nil, fmt.Errorf("%s: %w", b.Name(), err)
			}
			if !found {
				return nil, fmt.Errorf("%s: %s is not installed (removed already?)", b.Name(), p)
			}
			return starlark.None, nil
		}).BindReceiver(p), nil
	}
	return nil, nil
}

// policyMap returns the router's policy map for the address family.
func policyMap(fn string, router *Program, v6 bool) (*datapath.Map, error) {
	name := "policy_routes_v4"
	if v6 {
		name = "policy_routes_v6"
	}
	m, err := router.p.Map(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %s has no %s map; load program(\"policy_router\") (or a program with its maps): %w", fn, router, name, err)
	}
	return m, nil
}

func toRouter(fn string, v starlark.Value) (*Program, error) {
	p, ok := v.(*Program)
	if !ok {
		return nil, fmt.Errorf("%s: router must be a program (program(\"policy_router\")), not %s", fn, describeValue(v))
	}
	return p, nil
}

func policyFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var routerv, viav starlark.Value
	var src, nextHop string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "router", &routerv, "src", &src, "via", &viav, "next_hop?", &nextHop); err != nil {
		return nil, err
	}
	router, err := toRouter(b.Name(), routerv)
	if err != nil {
		return nil, err
	}
	prefix, err := netip.ParsePrefix(src)
	if err != nil {
		a, aerr := netip.ParseAddr(src)
		if aerr != nil {
			return nil, fmt.Errorf("%s: src=%q is not a prefix like \"192.168.100.5/32\" or an address", b.Name(), src)
		}
		prefix = netip.PrefixFrom(a, a.BitLen())
	}
	if prefix.Masked() != prefix {
		return nil, fmt.Errorf("%s: src=%q has host bits set; did you mean %q?", b.Name(), src, prefix.Masked().String())
	}
	via, ok := viav.(*Link)
	if !ok {
		return nil, fmt.Errorf("%s: via must be a link (the device the packets leave by, e.g. p.peer), not %s", b.Name(), describeValue(viav))
	}
	var nh netip.Addr
	if nextHop != "" {
		if nh, err = parseAddr(b.Name(), "next_hop", nextHop); err != nil {
			return nil, err
		}
		if nh.Is4() != prefix.Addr().Is4() {
			return nil, fmt.Errorf("%s: next_hop %s and src %s are of different address families", b.Name(), nh, prefix)
		}
	}
	m, err := policyMap(b.Name(), router, prefix.Addr().Is6())
	if err != nil {
		return nil, err
	}
	value := map[string]any{"ifindex": int64(via.l.Index())}
	if nh.IsValid() {
		value["next_hop"] = nh
	}
	if err := m.Put(prefix, value); err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	runOf(thread).policyVia[policyKey(router, prefix)] = via
	return &Policy{router: router, src: prefix, ifindex: via.l.Index(), via: via, nextHop: nh}, nil
}

func policyKey(router *Program, src netip.Prefix) string {
	return fmt.Sprintf("%d %s", router.p.ID(), src)
}

func policiesFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r := runOf(thread)
	var routerv starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "router", &routerv); err != nil {
		return nil, err
	}
	router, err := toRouter(b.Name(), routerv)
	if err != nil {
		return nil, err
	}
	var out []starlark.Value
	for _, v6 := range []bool{false, true} {
		m, err := policyMap(b.Name(), router, v6)
		if err != nil {
			if v6 {
				break // a router with IPv4 policies only
			}
			return nil, err
		}
		items, err := m.Items()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name(), err)
		}
		for _, it := range items {
			p, err := policyFromEntry(r, router, it)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", b.Name(), err)
			}
			out = append(out, p)
		}
	}
	return starlark.NewList(out), nil
}

func policyFromEntry(r *Run, router *Program, it [2]any) (*Policy, error) {
	ks, _ := it[0].(string)
	prefix, err := netip.ParsePrefix(ks)
	if err != nil {
		return nil, fmt.Errorf("unexpected policy key %v", it[0])
	}
	p := &Policy{router: router, src: prefix}
	if fields, ok := it[1].(datapath.Fields); ok {
		for _, f := range fields {
			switch f.Name {
			case "ifindex":
				if n, ok := f.Value.(int64); ok {
					p.ifindex = int(n)
				}
			case "next_hop":
				if s, ok := f.Value.(string); ok {
					p.nextHop, _ = netip.ParseAddr(s)
				}
			}
		}
	}
	p.via = starlark.MakeInt(p.ifindex)
	// Name the link when the script installed the policy.
	if k, ok := r.policyVia[policyKey(router, prefix)]; ok && k.l.Index() == p.ifindex {
		p.via = k
	}
	return p, nil
}

// policyDocs documents source-based policy routing.
var policyDocs = []Entry{
	{
		Name: "policy", Kind: KindFunc,
		Signature: `policy(router, src, via, next_hop=None) -> policy`,
		Doc: "Installs a source-based route in a policy_router program: packets from the prefix " +
			"`src` (an address means a /32 or /128) leave by the link `via`, to `next_hop` " +
			"(default: the packet's destination), through bpf_redirect_neigh; other packets " +
			"follow normal routing. `via` must be a device in the namespace where the router is " +
			"attached. Installing a policy for a prefix replaces the previous one.",
		Attrs: []Attr{
			{"next_hop", "the next hop, or None for the destination itself"},
			{"remove", "method: remove() uninstalls the policy"},
			{"src", "the source prefix"},
			{"via", "the link packets leave by (an ifindex for policies listed but not made by the script)"},
		},
		Example: `router = program("policy_router")
attach(router, uplink.primary, "egress")
vip = policy(router, src = "192.168.100.5/32", via = to_router.peer, next_hop = "10.0.1.1")`,
	},
	{
		Name: "policy.remove", Kind: KindMethod,
		Signature: `policy.remove() -> None`,
		Doc:       "Removes the policy from its router's map; matching packets follow normal routing again.",
		Example:   `vip.remove()`,
	},
	{
		Name: "policies", Kind: KindFunc,
		Signature: `policies(router) -> list`,
		Doc:       "Lists the policies installed in a policy_router program, IPv4 then IPv6, each sorted by source prefix.",
		Example: `for p in policies(router):
    print(p.src, p.via)`,
	},
}
