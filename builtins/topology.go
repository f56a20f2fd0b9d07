package builtins

import (
	"fmt"
	"net"

	"github.com/nkscript/nkscript/datapath"
	"go.starlark.net/starlark"
)

func bridgeFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r := runOf(thread)
	var name string
	var ns netnsArg
	var mtu mtuArg
	var ports *starlark.List
	if err := unpackArgs(b, args, kwargs, "name", &name, "ns??", &ns, "ports?", &ports, "mtu??", &mtu); err != nil {
		return nil, err
	}
	var links []*datapath.Link
	if ports != nil {
		for i := range ports.Len() {
			k, ok := ports.Index(i).(*Link)
			if !ok {
				return nil, fmt.Errorf("ports[%d] must be a link, not %s", i, describeValue(ports.Index(i)))
			}
			links = append(links, k.l)
		}
	}
	br, err := r.lab.NewBridge(ns.or(r.host).ns, name, links, int(mtu))
	if err != nil {
		return nil, err
	}
	v := &Link{l: br, run: r}
	r.links[br] = v
	return v, nil
}

// upArg is a link state: True for up, False for down.
type upArg struct{ up, set bool }

func (a *upArg) Unpack(v starlark.Value) error {
	u, ok := v.(starlark.Bool)
	if !ok {
		return badArg("up must be True or False, not %s", describeValue(v))
	}
	a.up, a.set = bool(u), true
	return nil
}

func linkSet(k *Link, thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r := runOf(thread)
	var mtu mtuArg
	var up upArg
	var mac macArg
	master := linkArg{what: "a bridge (from bridge())"}
	if err := unpackArgs(b, args, kwargs, "mtu??", &mtu, "up??", &up, "master??", &master, "mac??", &mac); err != nil {
		return nil, err
	}
	if mac != nil {
		if err := r.lab.SetMAC(k.l, net.HardwareAddr(mac)); err != nil {
			return nil, err
		}
	}
	if mtu != 0 {
		if err := r.lab.SetMTU(k.l, int(mtu)); err != nil {
			return nil, err
		}
	}
	if master.v != nil {
		if err := r.lab.SetMaster(k.l, master.v.l); err != nil {
			return nil, err
		}
	}
	if up.set {
		if err := r.lab.SetUp(k.l, up.up); err != nil {
			return nil, err
		}
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
		Signature: `link.set(mtu=None, up=None, master=None, mac=None) -> link`,
		Doc: "Changes what is given: the MTU (68..65535), the state (True for up, False for " +
			"down), the bridge the link is a port of, the MAC address (a unicast Ethernet " +
			"address like \"02:00:00:00:00:01\"; a netkit device has one only in l2 mode). The MAC " +
			"changes first, the state last. Returns the link.",
		Example: `p.primary.set(mtu = 9000, up = True)
p.peer.set(master = br)
nk.peer.set(mac = "02:00:00:00:00:02", up = True)`,
	},
}
