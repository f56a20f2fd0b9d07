package builtins

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/nkscript/nkscript/datapath"
	"go.starlark.net/starlark"
)

type builtinFn = func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error)

// universe holds every builtin function by name. Files that add an area
// of builtins register theirs in an init function; package-level
// variables are initialized before any init runs.
var universe = map[string]builtinFn{
	"netns":       netnsFn,
	"netkit_pair": netkitPair,
	"veth_pair":   vethPair,
	"route":       routeFn,
	"sysctl":      sysctlFn,
	"forwarding":  forwardingFn,
	"program":     programFn,
	"attach":      attachFn,
	"stats":       statsFn,
	"ping":        pingFn,
	"expect_pass": expectPass,
	"expect_drop": expectDrop,
	"exec":        execFn,
	"fail":        failFn,
}

// Names lists the builtins, for help and completion.
func Names() []string {
	names := []string{"argv", "host", "kernel"}
	for n := range universe {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func netnsFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name); err != nil {
		return nil, err
	}
	r := runOf(thread)
	ns, err := r.lab.Netns(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return r.wrapNetns(ns), nil
}

// toNetns converts a builtin argument to a namespace; None gives def.
func toNetns(fn, param string, v starlark.Value, def *Netns) (*Netns, error) {
	switch v := v.(type) {
	case nil, starlark.NoneType:
		return def, nil
	case *Netns:
		return v, nil
	case starlark.String:
		return nil, fmt.Errorf("%s: %s=%q is a string; pass the namespace value returned by netns(%q) (or host)", fn, param, string(v), string(v))
	}
	return nil, fmt.Errorf("%s: %s must be a netns, not %s", fn, param, describeValue(v))
}

func toMTU(fn string, v starlark.Value) (int, error) {
	if v == nil || v == starlark.None {
		return 0, nil
	}
	i, ok := v.(starlark.Int)
	if !ok {
		return 0, fmt.Errorf("%s: mtu must be an int, not %s", fn, describeValue(v))
	}
	n, ok := i.Int64()
	if !ok || n < 68 || n > 65535 {
		return 0, fmt.Errorf("%s: mtu=%s is out of range; use 68..65535", fn, i)
	}
	return int(n), nil
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
	var primNs, peerNs, mtu, peerMTU starlark.Value
	var err error
	if kind == datapath.Netkit {
		o.Mode, o.Policy, o.PeerPolicy = "l3", "forward", "forward"
		err = starlark.UnpackArgs(b.Name(), args, kwargs,
			"primary", &o.Primary, "peer", &o.Peer, "mode?", &o.Mode,
			"primary_ns?", &primNs, "peer_ns?", &peerNs,
			"policy?", &o.Policy, "peer_policy?", &o.PeerPolicy, "mtu?", &mtu,
			"peer_mtu?", &peerMTU, "scrub?", &o.Scrub, "peer_scrub?", &o.PeerScrub,
			"num_tx_queues?", &o.TxQueues, "num_rx_queues?", &o.RxQueues,
			"headroom?", &o.Headroom, "tailroom?", &o.Tailroom)
	} else {
		err = starlark.UnpackArgs(b.Name(), args, kwargs,
			"primary", &o.Primary, "peer", &o.Peer,
			"primary_ns?", &primNs, "peer_ns?", &peerNs, "mtu?", &mtu)
	}
	if err != nil {
		return nil, err
	}
	pn, err := toNetns(b.Name(), "primary_ns", primNs, r.host)
	if err != nil {
		return nil, err
	}
	qn, err := toNetns(b.Name(), "peer_ns", peerNs, pn)
	if err != nil {
		return nil, err
	}
	o.PrimaryNs, o.PeerNs = pn.ns, qn.ns
	if o.MTU, err = toMTU(b.Name(), mtu); err != nil {
		return nil, err
	}
	if o.PeerMTU, err = toMTU(b.Name(), peerMTU); err != nil {
		return nil, err
	}
	p, err := r.lab.NewPair(o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return r.wrapPair(p), nil
}

// parsePrefix parses "10.0.0.1/24" (the address keeps its host bits).
func parsePrefix(fn, what, s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		if _, aerr := netip.ParseAddr(s); aerr == nil && !strings.Contains(s, "%") {
			return netip.Prefix{}, fmt.Errorf("%s: %s %q has no prefix length; write it like \"%s/24\"", fn, what, s, s)
		}
		return netip.Prefix{}, fmt.Errorf("%s: %s %q is not a valid CIDR address; write it like \"10.0.0.1/24\" or \"fd00::1/64\"", fn, what, s)
	}
	return p, nil
}

func parseAddr(fn, what, s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		if p, perr := netip.ParsePrefix(s); perr == nil {
			return netip.Addr{}, fmt.Errorf("%s: %s %q is a prefix; give the address alone, like %q", fn, what, s, p.Addr().String())
		}
		return netip.Addr{}, fmt.Errorf("%s: %s %q is not a valid IP address", fn, what, s)
	}
	return a, nil
}

func linkAddr(k *Link, thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var cidr string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "cidr", &cidr); err != nil {
		return nil, err
	}
	p, err := parsePrefix(b.Name(), "address", cidr)
	if err != nil {
		return nil, err
	}
	if err := runOf(thread).lab.AddAddr(k.l, p); err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
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
	if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	if err := runOf(thread).lab.SetUp(k.l, up); err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return k, nil
}

func routeFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r := runOf(thread)
	var dst string
	var via, dev, nsv, table starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "dst", &dst, "via?", &via, "dev?", &dev, "ns?", &nsv, "table?", &table); err != nil {
		return nil, err
	}
	ns, err := toNetns(b.Name(), "ns", nsv, r.host)
	if err != nil {
		return nil, err
	}
	var spec datapath.RouteSpec
	switch t := table.(type) {
	case nil, starlark.NoneType:
	case starlark.String:
		ids := map[string]int{"main": 254, "local": 255, "default": 253}
		id, ok := ids[string(t)]
		if !ok {
			return nil, fmt.Errorf("%s: table %q is not a table name; use a number or %s", b.Name(), string(t), quoteList([]string{"main", "local", "default"}))
		}
		spec.Table = id
	case starlark.Int:
		n, ok := t.Int64()
		if !ok || n < 1 || n > 1<<32-1 {
			return nil, fmt.Errorf("%s: table=%s is out of range 1..4294967295", b.Name(), t)
		}
		spec.Table = int(n)
	default:
		return nil, fmt.Errorf("%s: table must be a number or a name, not %s", b.Name(), describeValue(table))
	}
	if spec.Table == 254 {
		spec.Table = 0
	}
	if via != nil && via != starlark.None {
		s, ok := via.(starlark.String)
		if !ok {
			return nil, fmt.Errorf("%s: via must be an address string, not %s", b.Name(), describeValue(via))
		}
		if spec.Via, err = parseAddr(b.Name(), "via", string(s)); err != nil {
			return nil, err
		}
	}
	switch dst {
	case "default":
		if spec.Via.Is6() {
			spec.Dst = netip.MustParsePrefix("::/0")
		} else {
			spec.Dst = netip.MustParsePrefix("0.0.0.0/0")
		}
	default:
		if !strings.Contains(dst, "/") {
			a, err := parseAddr(b.Name(), "dst", dst)
			if err != nil {
				return nil, fmt.Errorf("%s: dst %q is neither \"default\", a prefix like \"10.1.0.0/24\" nor an address", b.Name(), dst)
			}
			spec.Dst = netip.PrefixFrom(a, a.BitLen())
		} else {
			p, err := parsePrefix(b.Name(), "dst", dst)
			if err != nil {
				return nil, err
			}
			if p.Masked() != p {
				return nil, fmt.Errorf("%s: dst %q has host bits set; did you mean %q?", b.Name(), dst, p.Masked().String())
			}
			spec.Dst = p
		}
	}
	switch d := dev.(type) {
	case nil, starlark.NoneType:
	case *Link:
		spec.Dev = d.l
	default:
		return nil, fmt.Errorf("%s: dev must be a link (e.g. pair.primary), not %s", b.Name(), describeValue(dev))
	}
	if err := r.lab.AddRoute(ns.ns, spec); err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return starlark.None, nil
}

func sysctlFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r := runOf(thread)
	var key string
	var value, nsv starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "key", &key, "value", &value, "ns?", &nsv); err != nil {
		return nil, err
	}
	ns, err := toNetns(b.Name(), "ns", nsv, r.host)
	if err != nil {
		return nil, err
	}
	var s string
	switch v := value.(type) {
	case starlark.String:
		s = string(v)
	case starlark.Int:
		s = v.String()
	case starlark.Bool:
		s = "0"
		if v {
			s = "1"
		}
	default:
		return nil, fmt.Errorf("%s: value must be a string, int or bool, not %s", b.Name(), describeValue(value))
	}
	if err := r.lab.Sysctl(ns.ns, key, s); err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return starlark.None, nil
}

func forwardingFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r := runOf(thread)
	var nsv starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "ns?", &nsv); err != nil {
		return nil, err
	}
	ns, err := toNetns(b.Name(), "ns", nsv, r.host)
	if err != nil {
		return nil, err
	}
	if err := r.lab.Forwarding(ns.ns); err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return starlark.None, nil
}

func failFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var msg starlark.Value = starlark.String("failed")
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "msg?", &msg); err != nil {
		return nil, err
	}
	text := msg.String()
	if s, ok := msg.(starlark.String); ok {
		text = string(s)
	}
	// The checks of a dry run see made-up results: there, it notes the
	// check and the run goes on.
	if err := runOf(thread).lab.Check(thread.CallFrame(1).Pos.String(), text); err != nil {
		return nil, fmt.Errorf("fail: %s", text)
	}
	return starlark.None, nil
}
