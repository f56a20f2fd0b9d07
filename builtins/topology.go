package builtins

import (
	"fmt"

	"github.com/nkscript/nkscript/datapath"
	"go.starlark.net/starlark"
)

func init() {
	universe["bridge"] = bridgeFn
}

func bridgeFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r := runOf(thread)
	var name string
	var nsv, mtuv starlark.Value
	var ports *starlark.List
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "ns?", &nsv, "ports?", &ports, "mtu?", &mtuv); err != nil {
		return nil, err
	}
	ns, err := toNetns(b.Name(), "ns", nsv, r.host)
	if err != nil {
		return nil, err
	}
	mtu, err := toMTU(b.Name(), mtuv)
	if err != nil {
		return nil, err
	}
	var links []*datapath.Link
	if ports != nil {
		for i := range ports.Len() {
			k, ok := ports.Index(i).(*Link)
			if !ok {
				return nil, fmt.Errorf("%s: ports[%d] must be a link, not %s", b.Name(), i, describeValue(ports.Index(i)))
			}
			links = append(links, k.l)
		}
	}
	br, err := r.lab.NewBridge(ns.ns, name, links, mtu)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	v := &Link{l: br, run: r}
	r.links[br] = v
	return v, nil
}

func linkSet(k *Link, thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r := runOf(thread)
	var mtuv, upv, masterv starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "mtu?", &mtuv, "up?", &upv, "master?", &masterv); err != nil {
		return nil, err
	}
	if mtuv != nil && mtuv != starlark.None {
		mtu, err := toMTU(b.Name(), mtuv)
		if err != nil {
			return nil, err
		}
		if err := r.lab.SetMTU(k.l, mtu); err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name(), err)
		}
	}
	switch m := masterv.(type) {
	case nil:
	case starlark.NoneType:
	case *Link:
		if err := r.lab.SetMaster(k.l, m.l); err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name(), err)
		}
	default:
		return nil, fmt.Errorf("%s: master must be a bridge (from bridge()), not %s", b.Name(), describeValue(masterv))
	}
	switch u := upv.(type) {
	case nil, starlark.NoneType:
	case starlark.Bool:
		if err := r.lab.SetUp(k.l, bool(u)); err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name(), err)
		}
	default:
		return nil, fmt.Errorf("%s: up must be True or False, not %s", b.Name(), describeValue(upv))
	}
	return k, nil
}

// topologyDocs documents bridges and link settings.
var topologyDocs = []Entry{
	{
		Name: "bridge", Kind: KindFunc,
		Signature: `bridge(name, ns=host, ports=[], mtu=None) -> link`,
		Doc: "Creates a Linux bridge in `ns`, enslaves `ports` (links in the same namespace) and " +
			"sets it up; more ports join with `link.set(master = br)`. Give the bridge the " +
			"address, not its ports. A bridge in the host is deleted when the script ends; one in " +
			"a script's namespace goes with the namespace.",
		Example: `br = bridge("br0", ns = lan, ports = [a.peer, b.peer])
br.addr("192.168.1.1/24")`,
	},
	{
		Name: "link.set", Kind: KindMethod,
		Signature: `link.set(mtu=None, up=None, master=None) -> link`,
		Doc: "Changes what is given: the MTU (68..65535), the state (True for up, False for " +
			"down), the bridge the link is a port of. Returns the link.",
		Example: `p.primary.set(mtu = 9000, up = True)
p.peer.set(master = br)`,
	},
}
