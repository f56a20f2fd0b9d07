package builtins

import (
	"errors"
	"net/netip"
	"strings"

	"github.com/nkscript/nkscript/datapath"
	"github.com/nkscript/nkscript/internal/quote"
	"go.starlark.net/starlark"
)

func netnsFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name string
	if err := unpackArgs(b, args, kwargs, "name", &name); err != nil {
		return nil, err
	}
	r := runOf(thread)
	ns, err := r.lab.Netns(name)
	if err != nil {
		return nil, err
	}
	return r.wrapNetns(ns), nil
}

func netkitPair(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return makePair(thread, b, args, kwargs, datapath.Netkit)
}

func vethPair(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return makePair(thread, b, args, kwargs, datapath.Veth)
}

func makePair(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple, kind datapath.PairKind) (starlark.Value, error) {
	r := runOf(thread)
	o := datapath.PairOptions{Kind: kind}
	var primNs, peerNs netnsArg
	var mtu, peerMTU mtuArg
	var err error
	if kind == datapath.Netkit {
		o.Mode, o.Policy, o.PeerPolicy = "l3", "forward", "forward"
		err = unpackArgs(b, args, kwargs,
			"primary", &o.Primary, "peer", &o.Peer, "mode?", &o.Mode,
			"primary_ns??", &primNs, "peer_ns??", &peerNs,
			"policy?", &o.Policy, "peer_policy?", &o.PeerPolicy, "mtu??", &mtu,
			"peer_mtu??", &peerMTU, "scrub?", &o.Scrub, "peer_scrub?", &o.PeerScrub,
			"num_tx_queues?", &o.TxQueues, "num_rx_queues?", &o.RxQueues,
			"headroom?", &o.Headroom, "tailroom?", &o.Tailroom)
	} else {
		err = unpackArgs(b, args, kwargs,
			"primary", &o.Primary, "peer", &o.Peer,
			"primary_ns??", &primNs, "peer_ns??", &peerNs, "mtu??", &mtu)
	}
	if err != nil {
		return nil, err
	}
	pn := primNs.or(r.host)
	o.PrimaryNs, o.PeerNs = pn.ns, peerNs.or(pn).ns
	o.MTU, o.PeerMTU = int(mtu), int(peerMTU)
	p, err := r.lab.NewPair(o)
	if err != nil {
		return nil, err
	}
	return r.wrapPair(p), nil
}

func linkAddr(k *Link, thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var cidr cidrArg
	if err := unpackArgs(b, args, kwargs, "cidr", &cidr); err != nil {
		return nil, err
	}
	if err := runOf(thread).lab.AddAddr(k.l, netip.Prefix(cidr)); err != nil {
		return nil, err
	}
	return k, nil
}

func linkUp(k *Link, thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return setLink(k, thread, b, args, kwargs, true)
}

func linkDown(k *Link, thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return setLink(k, thread, b, args, kwargs, false)
}

func setLink(k *Link, thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple, up bool) (starlark.Value, error) {
	if err := unpackArgs(b, args, kwargs); err != nil {
		return nil, err
	}
	if err := runOf(thread).lab.SetUp(k.l, up); err != nil {
		return nil, err
	}
	return k, nil
}

// routeTables are the routing tables route() knows by name.
var routeTables = map[string]int{"main": 254, "local": 255, "default": 253}

// tableArg is a routing table, by number or name; 0 is the main table.
type tableArg int

func (a *tableArg) Unpack(v starlark.Value) error {
	switch t := v.(type) {
	case starlark.String:
		id, ok := routeTables[string(t)]
		if !ok {
			return badArg("table %q is not a table name; use a number or %s", string(t), quote.Or([]string{"main", "local", "default"}))
		}
		*a = tableArg(id)
	case starlark.Int:
		n, ok := t.Int64()
		if !ok || n < 1 || n > 1<<32-1 {
			return badArg("table=%s is out of range 1..4294967295", t)
		}
		*a = tableArg(n)
	default:
		return badArg("table must be a number or a name, not %s", describeValue(v))
	}
	if *a == 254 {
		*a = 0
	}
	return nil
}

// routeDstArg is a route's destination: "default", a prefix without host
// bits, or an address.
type routeDstArg struct {
	p     netip.Prefix
	isDef bool
}

func (a *routeDstArg) Unpack(v starlark.Value) error {
	dst, err := unpackString(v)
	if err != nil {
		return err
	}
	switch {
	case dst == "default":
		a.isDef = true
	case !strings.Contains(dst, "/"):
		var addr addrArg
		if err := addr.parse(dst); err != nil {
			return badArg("dst %q is neither \"default\", a prefix like \"10.1.0.0/24\" nor an address", dst)
		}
		a.p = netip.PrefixFrom(addr.a, addr.a.BitLen())
	default:
		p, err := parsePrefix("dst", dst)
		if err != nil {
			return badArg("%s", err)
		}
		if p.Masked() != p {
			return badArg("dst %q has host bits set; did you mean %q?", dst, p.Masked().String())
		}
		a.p = p
	}
	return nil
}

// prefix is the destination; "default" is IPv6 when the gateway is.
func (a *routeDstArg) prefix(via netip.Addr) netip.Prefix {
	switch {
	case !a.isDef:
		return a.p
	case via.Is6():
		return netip.MustParsePrefix("::/0")
	}
	return netip.MustParsePrefix("0.0.0.0/0")
}

func routeFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r := runOf(thread)
	var dst routeDstArg
	var via gatewayArg
	var table tableArg
	var ns netnsArg
	dev := linkArg{what: "a link (e.g. pair.primary)"}
	if err := unpackArgs(b, args, kwargs, "dst", &dst, "via??", &via, "dev??", &dev, "ns??", &ns, "table??", &table); err != nil {
		return nil, err
	}
	spec := datapath.RouteSpec{Table: int(table), Via: via.a, Dst: dst.prefix(via.a)}
	if dev.v != nil {
		spec.Dev = dev.v.l
	}
	in := ns.or(r.host)
	if err := r.lab.AddRoute(in.ns, spec); err != nil {
		return nil, err
	}
	return &Route{run: r, ns: in, spec: spec}, nil
}

// sysctlValueArg is a sysctl's value: a string, an int, or a bool for 1
// or 0.
type sysctlValueArg string

func (a *sysctlValueArg) Unpack(v starlark.Value) error {
	switch v := v.(type) {
	case starlark.String:
		*a = sysctlValueArg(v)
	case starlark.Int:
		*a = sysctlValueArg(v.String())
	case starlark.Bool:
		*a = "0"
		if v {
			*a = "1"
		}
	default:
		return badArg("value must be a string, int or bool, not %s", describeValue(v))
	}
	return nil
}

func sysctlFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r := runOf(thread)
	var key string
	var value sysctlValueArg
	var ns netnsArg
	if err := unpackArgs(b, args, kwargs, "key", &key, "value", &value, "ns??", &ns); err != nil {
		return nil, err
	}
	return starlark.None, r.lab.Sysctl(ns.or(r.host).ns, key, string(value))
}

func forwardingFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r := runOf(thread)
	var ns netnsArg
	if err := unpackArgs(b, args, kwargs, "ns??", &ns); err != nil {
		return nil, err
	}
	return starlark.None, r.lab.Forwarding(ns.or(r.host).ns)
}

func failFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var msg starlark.Value = starlark.String("failed")
	if err := unpackArgs(b, args, kwargs, "msg?", &msg); err != nil {
		return nil, err
	}
	text := msg.String()
	if s, ok := msg.(starlark.String); ok {
		text = string(s)
	}
	// The checks of a dry run see made-up results: there, it notes the
	// check and the run goes on.
	if err := runOf(thread).lab.Check(thread.CallFrame(1).Pos.String(), text); err != nil {
		return nil, errors.New(text)
	}
	return starlark.None, nil
}
