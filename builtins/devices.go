package builtins

import (
	"fmt"

	"github.com/nkscript/nkscript/datapath"
	"go.starlark.net/starlark"
)

// Single devices besides pairs and bridges: vxlan, tun and vlan.

// intIn unpacks v as an int in lo..hi.
func intIn(v starlark.Value, lo, hi int64) (int, bool) {
	i, ok := v.(starlark.Int)
	n, ok2 := i.Int64()
	return int(n), ok && ok2 && n >= lo && n <= hi
}

// vniArg is a VXLAN network identifier, 1..2^24-1.
type vniArg int

func (a *vniArg) Unpack(v starlark.Value) error {
	n, ok := intIn(v, 1, 1<<24-1)
	if !ok {
		return badParam("%s=%s is not a VXLAN id 1..16777215", v.String())
	}
	*a = vniArg(n)
	return nil
}

// vlanIDArg is an 802.1Q VLAN id, 1..4094.
type vlanIDArg int

func (a *vlanIDArg) Unpack(v starlark.Value) error {
	n, ok := intIn(v, 1, 4094)
	if !ok {
		return badParam("%s=%s is not a VLAN id 1..4094", v.String())
	}
	*a = vlanIDArg(n)
	return nil
}

// newDeviceLink wraps a device the lab created as a script's link.
func (r *Run) newDeviceLink(k *datapath.Link) *Link {
	v := &Link{l: k, run: r}
	r.links[k] = v
	return v
}

func vxlanFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r := runOf(thread)
	var name string
	var vni vniArg
	remote := addrArg{orEmpty: true}
	local := addrArg{orEmpty: true}
	dev := linkArg{what: "a link (the underlay device)"}
	port := portArg(datapath.VxlanDefaultPort)
	var ns netnsArg
	if err := unpackArgs(b, args, kwargs, "name", &name, "vni", &vni, "remote??", &remote, "local??", &local,
		"dev??", &dev, "port??", &port, "ns??", &ns); err != nil {
		return nil, err
	}
	in := ns.or(r.host)
	d := datapath.DeviceSpec{Name: name, VNI: int(vni), Remote: remote.a, Local: local.a, Port: int(port)}
	if dev.v != nil {
		d.Dev = dev.v.l
	}
	k, err := r.lab.NewVxlan(in.ns, d)
	if err != nil {
		return nil, err
	}
	return r.newDeviceLink(k), nil
}

func tunFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r := runOf(thread)
	var name string
	var ns netnsArg
	if err := unpackArgs(b, args, kwargs, "name", &name, "ns??", &ns); err != nil {
		return nil, err
	}
	k, err := r.lab.NewTun(ns.or(r.host).ns, name)
	if err != nil {
		return nil, err
	}
	return r.newDeviceLink(k), nil
}

func vlanFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r := runOf(thread)
	parent := linkArg{what: "a link (the device the vlan is stacked on)"}
	var id vlanIDArg
	var name string
	if err := unpackArgs(b, args, kwargs, "link", &parent, "id", &id, "name??", &name); err != nil {
		return nil, err
	}
	k, err := r.lab.NewVlan(parent.v.l, int(id), name)
	if err != nil {
		return nil, err
	}
	return r.newDeviceLink(k), nil
}

// linkAddRemote is link.add_remote(ip), for vxlan links.
func linkAddRemote(k *Link, thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r := runOf(thread)
	var ip addrArg
	if err := unpackArgs(b, args, kwargs, "ip", &ip); err != nil {
		return nil, err
	}
	if kind := k.l.Kind(); kind != datapath.KindVxlan {
		return nil, fmt.Errorf("%s is a %s link; only a vxlan link (from vxlan()) has remotes", k.l.Name(), k.l.Kind())
	}
	if err := r.lab.AddVxlanRemote(k.l, ip.a); err != nil {
		return nil, err
	}
	return k, nil
}

// deviceDocs documents vxlan(), tun(), vlan() and link.add_remote().
var deviceDocs = []Entry{
	{
		Name: "vxlan", Kind: KindFunc,
		Signature: `vxlan(name, vni, remote=None, local=None, dev=None, port=4789, ns=host) -> link`,
		Doc: "Creates a unicast VXLAN device in `ns` (down, like a pair's ends): an overlay that " +
			"carries Ethernet frames in UDP to `port` of the remote VTEPs. `vni` is the VXLAN id " +
			"(1..16777215); `remote` is the one remote address, or add any number with " +
			"`link.add_remote(ip)`; `local` is the source address and `dev` the underlay link (in `ns`). " +
			"VXLAN adds 50 bytes: the device's MTU is the underlay's minus 50, and links whose packets " +
			"it carries need an MTU that fits. A vxlan in the host is deleted when the script ends; " +
			"one in a script's namespace goes with the namespace.",
		Example: `vx = vxlan("vx0", 42, local = "192.168.0.1", dev = underlay.primary, ns = node1)
vx.add_remote("192.168.0.2")
vx.addr("10.42.0.1/24").up()`,
	},
	{
		Name: "tun", Kind: KindFunc,
		Signature: `tun(name, ns=host) -> link`,
		Doc: "Creates a persistent tun device (layer 3, no packet information header) in `ns`, " +
			"down. No process holds it open: a VPN daemon (`exec`) can attach to it by name. " +
			"A tun device in the host is deleted when the script ends; one in a script's " +
			"namespace goes with the namespace.",
		Example: `t = tun("tun0", ns = vpn)
t.addr("10.8.0.1/24").up()`,
	},
	{
		Name: "vlan", Kind: KindFunc,
		Signature: `vlan(link, id, name=None) -> link`,
		Doc: "Creates an 802.1Q VLAN device with VLAN id `id` (1..4094) on top of `link`, in " +
			"`link`'s namespace, down. Its name is `name`, or `\"<link>.<id>\"` when that fits the " +
			"kernel's 15 bytes. The kernel needs 802.1Q support (CONFIG_VLAN_8021Q).",
		Example: `v = vlan(p.peer, 100)
v.addr("10.100.0.2/24").up()`,
	},
	{
		Name: "link.add_remote", Kind: KindMethod,
		Signature: `link.add_remote(ip) -> link`,
		Doc: "Adds a remote VTEP to a vxlan link: broadcast, unknown and multicast frames go to every " +
			"remote (an all-zeros FDB entry, `bridge fdb append 00:00:00:00:00:00 dev LINK dst IP`). " +
			"Returns the link.",
		Example: `vx.add_remote("192.168.0.2")`,
	},
}
