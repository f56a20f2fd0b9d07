package builtins

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/nkscript/nkscript/internal/quote"

	"github.com/nkscript/nkscript/datapath"
	"go.starlark.net/starlark"
)

// Source-based policy routing with the bundled policy_router program: a
// policy sends packets from a source prefix out of a link, to a next hop.

// Policy is one entry of a policy_router program's policy maps.
type Policy struct {
	object
	router *Program
	pol    datapath.Policy // what it matches, the ifindex and the next hop
	via    starlark.Value  // the link, or the ifindex when listed from the map
}

func (p *Policy) String() string {
	nh := "the destination"
	if p.pol.NextHop.IsValid() && !p.pol.NextHop.IsUnspecified() {
		nh = p.pol.NextHop.String()
	}
	return fmt.Sprintf("policy(%s via %s to %s)", policyMatch(p.pol), p.viaString(), nh)
}

// policyMatch describes what pol matches, like "from 10.0.0.0/8" or "to
// 192.168.0.0/16 tcp port 443".
func policyMatch(pol datapath.Policy) string {
	s := "from " + pol.Src.String()
	if pol.Dst.IsValid() {
		s = "to " + pol.Dst.String()
	}
	if pol.Proto != 0 {
		s += " " + protoName(pol.Proto)
	}
	if pol.DPort != 0 {
		s += fmt.Sprintf(" port %d", pol.DPort)
	}
	return s
}

func (p *Policy) viaString() string {
	if k, ok := p.via.(*Link); ok {
		return fmt.Sprintf("%q", k.l.Name())
	}
	return fmt.Sprintf("ifindex %d", p.pol.Ifindex)
}

func (p *Policy) Type() string { return "policy" }
func (p *Policy) Hash() (uint32, error) {
	return starlark.String(policyMatch(p.pol)).Hash()
}
func (p *Policy) AttrNames() []string {
	return []string{"dport", "dst", "next_hop", "proto", "remove", "src", "via"}
}

func (p *Policy) Attr(name string) (starlark.Value, error) {
	switch name {
	case "src":
		return prefixOrNone(p.pol.Src), nil
	case "dst":
		return prefixOrNone(p.pol.Dst), nil
	case "proto":
		if p.pol.Proto == 0 {
			return starlark.None, nil
		}
		return starlark.String(protoName(p.pol.Proto)), nil
	case "dport":
		if p.pol.DPort == 0 {
			return starlark.None, nil
		}
		return starlark.MakeInt(int(p.pol.DPort)), nil
	case "via":
		return p.via, nil
	case "next_hop":
		if !p.pol.NextHop.IsValid() || p.pol.NextHop.IsUnspecified() {
			return starlark.None, nil
		}
		return starlark.String(p.pol.NextHop.String()), nil
	case "remove":
		return newMethod(p, "remove", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			if err := unpackArgs(b, args, kwargs); err != nil {
				return nil, err
			}
			found, err := p.router.p.RemovePolicy(p.pol)
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

// policyArgs are policy()'s arguments.
type policyArgs struct {
	router   programArg
	src, dst prefixArg
	via      linkArg
	nextHop  addrArg
	proto    ipProtoArg
	dport    portArg
}

// unpack reads policy()'s arguments and checks that they make one policy.
func (a *policyArgs) unpack(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) error {
	a.router = routerArg()
	a.via = linkArg{what: "a link (the device the packets leave by, e.g. p.peer)"}
	a.nextHop = addrArg{orEmpty: true}
	if err := unpackArgs(b, args, kwargs, "router", &a.router, "src??", &a.src, "via?", &a.via, "next_hop?", &a.nextHop,
		"dst??", &a.dst, "proto??", &a.proto, "dport??", &a.dport); err != nil {
		return err
	}
	if a.via.v == nil {
		return errors.New("missing argument for via")
	}
	prefix := netip.Prefix(a.src)
	switch {
	case a.src.IsValid() == a.dst.IsValid():
		return errors.New("give either src (a source policy) or dst (a destination policy)")
	case a.dst.IsValid():
		prefix = netip.Prefix(a.dst)
	}
	if nh := a.nextHop.a; nh.IsValid() && nh.Is4() != prefix.Addr().Is4() {
		return fmt.Errorf("next_hop %s and %s are of different address families", nh, prefix)
	}
	if a.dport != 0 && !hasPorts(uint8(a.proto)) {
		return fmt.Errorf("dport=%d needs proto=\"tcp\", \"udp\" or \"sctp\"", a.dport)
	}
	if a.proto != 0 && !protoFits(uint8(a.proto), prefix.Addr().Is4()) {
		return fmt.Errorf("proto=%q is not an IP protocol of %s's family", protoName(uint8(a.proto)), prefix)
	}
	return nil
}

func policyFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r := runOf(thread)
	var a policyArgs
	if err := a.unpack(b, args, kwargs); err != nil {
		return nil, err
	}
	router, via := a.router.v, a.via.v
	pol := datapath.Policy{Src: netip.Prefix(a.src), Dst: netip.Prefix(a.dst), Proto: uint8(a.proto), DPort: uint16(a.dport), Dev: via.l, NextHop: a.nextHop.a}
	if err := checkVia(r, router, via, pol.NextHop); err != nil {
		return nil, err
	}
	if err := router.p.AddPolicy(pol); err != nil {
		return nil, policyError(router, err)
	}
	pol.Ifindex, pol.Dev = via.l.Index(), nil
	r.policyVia[policyKey(router, pol)] = via
	return &Policy{router: router, pol: pol, via: via}, nil
}

// checkVia checks that via is a device of the namespace the router is
// attached in (when it is attached) and that next_hop, if given and not
// link-local, is on a subnet of a link of via's namespace (when the lab
// gave that namespace's links addresses).
func checkVia(r *Run, router *Program, via *Link, nh netip.Addr) error {
	ns := via.l.Netns()
	if in := r.lab.RouterNetns(router.p); len(in) > 0 && !slices.Contains(in, ns) {
		return fmt.Errorf("via=%s is in namespace %s, but %s is attached in namespace %s, whose links are %s: "+
			"packets can only leave the router's namespace by one of its devices",
			via, r.wrapNetns(ns), router, r.wrapNetns(in[0]), quote.List(linkNames(r.lab, in[0])))
	}
	if !nh.IsValid() || nh.IsUnspecified() || nh.IsLinkLocalUnicast() {
		return nil
	}
	var subnets []string
	for _, k := range r.lab.Links() {
		if k.Netns() != ns {
			continue
		}
		for _, p := range k.Addrs() {
			if p.Masked().Contains(nh) {
				return nil
			}
			subnets = append(subnets, fmt.Sprintf("%s %s", k.Name(), p))
		}
	}
	if len(subnets) == 0 {
		return nil
	}
	return fmt.Errorf("next_hop %s is on no subnet of the links of namespace %s (%s): bpf_redirect_neigh could not reach it from via=%s",
		nh, r.wrapNetns(ns), strings.Join(subnets, ", "), via)
}

// linkNames are the names of the lab's links in ns.
func linkNames(lab *datapath.Lab, ns *datapath.Netns) []string {
	var names []string
	for _, k := range lab.Links() {
		if k.Netns() == ns {
			names = append(names, k.Name())
		}
	}
	return names
}

// policyKey identifies a router's policy for the links remembered in
// Run.policyVia.
func policyKey(router *Program, pol datapath.Policy) string {
	return fmt.Sprintf("%d %s", router.p.ID(), policyMatch(pol))
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
		p := &Policy{router: router.v, pol: pol, via: starlark.MakeInt(pol.Ifindex)}
		// Name the link when the script installed the policy.
		if k, ok := r.policyVia[policyKey(router.v, pol)]; ok && k.l.Index() == pol.Ifindex {
			p.via = k
		}
		out[i] = p
	}
	return starlark.NewList(out), nil
}

// policyDocs documents policy routing.
var policyDocs = []Entry{
	{
		Name: "policy", Kind: KindFunc,
		Signature: `policy(router, src=None, via, next_hop=None, dst=None, proto=None, dport=None) -> policy`,
		Doc: "Installs a route in a policy_router program: packets from the prefix `src`, or to the " +
			"prefix `dst` (give one; a prefix says its length, \"10.10.1.0/24\" or \"10.10.1.5/32\", " +
			"a bare address is an error), optionally only of the protocol `proto` (\"tcp\", \"udp\", " +
			"\"sctp\", \"icmp\", \"icmpv6\") and to the destination port `dport` (needs tcp, udp or " +
			"sctp), leave by the link `via`, to `next_hop` (default: the packet's destination), " +
			"through bpf_redirect_neigh; other packets follow normal routing. The router tries source " +
			"policies with a protocol and port, then with a protocol, then source-only ones, then " +
			"destination policies in the same order, then normal routing; the longest prefix wins " +
			"within each step. `via` must be a device of the namespace where the router is attached " +
			"(checked when the router is attached before the call), and `next_hop` must be on a subnet " +
			"of a link of `via`'s namespace. Installing a policy that matches the same packets replaces the previous one.",
		Attrs: []Attr{
			{"dport", "the destination port, or None for any"},
			{"dst", "the destination prefix, or None for a source policy"},
			{"next_hop", "the next hop, or None for the destination itself"},
			{"proto", "the protocol's name, or None for any"},
			{"remove", "method: remove() uninstalls the policy"},
			{"src", "the source prefix, or None for a destination policy"},
			{"via", "the link packets leave by (an ifindex for policies listed but not made by the script)"},
		},
		Example: `router = program("policy_router")
attach(router, uplink.primary, "egress")
vip = policy(router, src = "192.168.100.5/32", via = to_router.peer, next_hop = "10.0.1.1")
web = policy(router, src = "10.10.1.0/24", proto = "tcp", dport = 443, via = to_router.peer, next_hop = "10.0.1.1")
lan = policy(router, dst = "192.168.0.0/16", via = to_router.peer, next_hop = "10.0.1.1")`,
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
		Doc: "Lists the policies installed in a policy_router program, IPv4 then IPv6; within a family " +
			"source policies, then destination policies, each sorted by prefix, protocol and port.",
		Example: `for p in policies(router):
    print(p.src, p.dst, p.proto, p.dport, p.via)`,
	},
}
