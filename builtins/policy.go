package builtins

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/nkscript/nkscript/datapath"
	"go.starlark.net/starlark"
)

// Source-based policy routing with the bundled policy_router program: a
// policy sends packets from a source prefix out of a link, to a next hop.

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
		return newMethod(p, "remove", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			if err := unpackArgs(b, args, kwargs); err != nil {
				return nil, err
			}
			found, err := p.router.p.RemovePolicy(p.src)
			if err != nil {
				return nil, policyError(p.router, err)
			}
			if !found {
				return nil, fmt.Errorf("%s is not installed (removed already?)", p)
			}
			return starlark.None, nil
		}), nil
	}
	return nil, nil
}

// policyError adds to err the advice for a router without policy maps.
func policyError(router *Program, err error) error {
	var pm *datapath.PolicyMapError
	if errors.As(err, &pm) {
		return fmt.Errorf("%s has no %s map; load program(\"policy_router\") (or a program with its maps): %w", router, pm.Map, pm.Err)
	}
	return err
}

// routerArg is a policy_router program.
func routerArg() programArg { return programArg{what: "a program (program(\"policy_router\"))"} }

func policyFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	router := routerArg()
	var src sourceArg
	via := linkArg{what: "a link (the device the packets leave by, e.g. p.peer)"}
	nextHop := addrArg{orEmpty: true}
	if err := unpackArgs(b, args, kwargs, "router", &router, "src", &src, "via", &via, "next_hop?", &nextHop); err != nil {
		return nil, err
	}
	prefix, nh := netip.Prefix(src), nextHop.a
	if nh.IsValid() && nh.Is4() != prefix.Addr().Is4() {
		return nil, fmt.Errorf("next_hop %s and src %s are of different address families", nh, prefix)
	}
	pol := datapath.Policy{Src: prefix, Dev: via.v.l, NextHop: nh}
	if err := router.v.p.AddPolicy(pol); err != nil {
		return nil, policyError(router.v, err)
	}
	runOf(thread).policyVia[policyKey(router.v, prefix)] = via.v
	return &Policy{router: router.v, src: prefix, ifindex: via.v.l.Index(), via: via.v, nextHop: nh}, nil
}

func policyKey(router *Program, src netip.Prefix) string {
	return fmt.Sprintf("%d %s", router.p.ID(), src)
}

func policiesFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r := runOf(thread)
	router := routerArg()
	if err := unpackArgs(b, args, kwargs, "router", &router); err != nil {
		return nil, err
	}
	pols, err := router.v.p.Policies()
	if err != nil {
		return nil, policyError(router.v, err)
	}
	out := make([]starlark.Value, len(pols))
	for i, pol := range pols {
		p := &Policy{router: router.v, src: pol.Src, ifindex: pol.Ifindex, nextHop: pol.NextHop, via: starlark.MakeInt(pol.Ifindex)}
		// Name the link when the script installed the policy.
		if k, ok := r.policyVia[policyKey(router.v, pol.Src)]; ok && k.l.Index() == pol.Ifindex {
			p.via = k
		}
		out[i] = p
	}
	return starlark.NewList(out), nil
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
