package builtins

import (
	"fmt"

	"github.com/nkscript/nkscript/datapath"
	"go.starlark.net/starlark"
)

// object is the part every nkscript value shares: values are references
// to kernel objects, compared by identity, immutable from Starlark.
type object struct{}

func (object) Freeze()              {}
func (object) Truth() starlark.Bool { return starlark.True }
func (object) nkscriptValue()       {}

// value is a value of an nkscript type.
type value interface {
	starlark.Value
	nkscriptValue()
}

// Netns is a network namespace: host, or one the script created.
type Netns struct {
	object
	ns     *datapath.Netns
	isHost bool
	run    *Run
}

var _ starlark.HasAttrs = (*Netns)(nil)

func (r *Run) wrapNetns(ns *datapath.Netns) *Netns {
	if v, ok := r.netns[ns]; ok {
		return v
	}
	v := &Netns{ns: ns, isHost: ns == r.lab.Host(), run: r}
	r.netns[ns] = v
	return v
}

func (n *Netns) String() string {
	if n.isHost {
		return "host"
	}
	return fmt.Sprintf("netns(%q)", n.ns.Name())
}
func (n *Netns) Type() string          { return "netns" }
func (n *Netns) Hash() (uint32, error) { return starlark.String(n.ns.Name()).Hash() }
func (n *Netns) AttrNames() []string {
	if n.isHost {
		return []string{"name"}
	}
	return []string{"delete", "lo", "name"}
}
func (n *Netns) Attr(name string) (starlark.Value, error) {
	if name == "lo" {
		if n.isHost {
			return nil, fmt.Errorf("host.lo: the host's loopback is not the lab's to change; put the address on a link, or on the lo of a namespace the script creates")
		}
		if n.run == nil {
			return nil, nil
		}
		return n.loopback(n.run)
	}
	if name == "delete" && !n.isHost {
		return n.deleteMethod(), nil
	}
	if name == "name" {
		if n.isHost {
			return starlark.String("host"), nil
		}
		return starlark.String(n.ns.Name()), nil
	}
	return nil, nil
}

// Pair is a veth or netkit pair.
type Pair struct {
	object
	p             *datapath.Pair
	primary, peer *Link
}

var _ starlark.HasAttrs = (*Pair)(nil)

func (r *Run) wrapPair(p *datapath.Pair) *Pair {
	v := &Pair{p: p}
	v.primary = &Link{l: p.Primary, run: r, pair: v}
	v.peer = &Link{l: p.Peer, run: r, pair: v}
	return v
}

func (p *Pair) String() string {
	return fmt.Sprintf("%s_pair(%q, %q)", p.p.Kind, p.primary.l.Name(), p.peer.l.Name())
}
func (p *Pair) Type() string          { return string(p.p.Kind) + "_pair" }
func (p *Pair) Hash() (uint32, error) { return starlark.String(p.String()).Hash() }
func (p *Pair) AttrNames() []string   { return []string{"kind", "mode", "peer", "primary"} }
func (p *Pair) Attr(name string) (starlark.Value, error) {
	switch name {
	case "primary":
		return p.primary, nil
	case "peer":
		return p.peer, nil
	case "kind":
		return starlark.String(p.p.Kind), nil
	case "mode":
		if p.p.Mode == "" {
			return starlark.None, nil
		}
		return starlark.String(p.p.Mode), nil
	}
	return nil, nil
}

// Link is one end of a pair.
type Link struct {
	object
	l    *datapath.Link
	run  *Run
	pair *Pair
}

var _ starlark.HasAttrs = (*Link)(nil)

func (k *Link) String() string {
	return fmt.Sprintf("link(%q, ns=%s)", k.l.Name(), k.run.wrapNetns(k.l.Netns()))
}
func (k *Link) Type() string          { return "link" }
func (k *Link) Hash() (uint32, error) { return starlark.String(k.String()).Hash() }
func (k *Link) AttrNames() []string {
	return []string{"add_remote", "addr", "addrs", "delete", "down", "ifindex", "kind", "mac", "move", "mtu", "name", "ns", "pair", "set", "up"}
}
func (k *Link) Attr(name string) (starlark.Value, error) {
	switch name {
	case "name":
		return starlark.String(k.l.Name()), nil
	case "ns":
		return k.run.wrapNetns(k.l.Netns()), nil
	case "pair":
		if k.pair == nil {
			return starlark.None, nil
		}
		return k.pair, nil
	case "ifindex":
		return starlark.MakeInt(k.l.Index()), nil
	case "kind":
		return starlark.String(k.l.Kind()), nil
	case "mtu":
		return starlark.MakeInt(k.l.MTU()), nil
	case "set":
		return k.method("set", linkSet), nil
	case "mac":
		if k.l.Deleted() {
			return starlark.None, nil
		}
		mac, err := k.l.MAC()
		if err != nil {
			return nil, err
		}
		if len(mac) == 0 {
			return starlark.None, nil
		}
		return starlark.String(mac.String()), nil
	case "addrs":
		var list []starlark.Value
		for _, p := range k.l.Addrs() {
			list = append(list, starlark.String(p.String()))
		}
		return starlark.NewList(list), nil
	case "addr":
		return k.method("addr", linkAddr), nil
	case "add_remote":
		return k.method("add_remote", linkAddRemote), nil
	case "up":
		return k.method("up", linkUp), nil
	case "down":
		return k.method("down", linkDown), nil
	case "delete":
		return k.method("delete", linkDelete), nil
	case "move":
		return k.method("move", linkMove), nil
	}
	return nil, nil
}

func (k *Link) method(name string, fn func(k *Link, thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error)) *starlark.Builtin {
	return newMethod(k, name, func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		return fn(k, thread, b, args, kwargs)
	})
}

// Program is a loaded BPF program.
type Program struct {
	object
	p *datapath.Program
}

func (p *Program) String() string        { return fmt.Sprintf("program(%q)", p.p.Name()) }
func (p *Program) Type() string          { return "program" }
func (p *Program) Hash() (uint32, error) { return starlark.MakeUint(uint(p.p.ID())).Hash() }
func (p *Program) AttrNames() []string   { return []string{"id", "maps", "name", "run"} }
func (p *Program) Attr(name string) (starlark.Value, error) {
	switch name {
	case "maps":
		return p.mapsAttr(), nil
	case "name":
		return starlark.String(p.p.Name()), nil
	case "id":
		return starlark.MakeUint(uint(p.p.ID())), nil
	case "run":
		return newMethod(p, "run", progRun(p)), nil
	}
	return nil, nil
}

// Attachment is a program attached to a hook.
type Attachment struct {
	object
	a      *datapath.Attachment
	prog   *Program
	target *Link
	hook   datapath.Hook
}

func (a *Attachment) String() string {
	return fmt.Sprintf("attachment(%s, %q, %q)", a.prog, a.target.l.Name(), a.hook.String())
}
func (a *Attachment) Type() string          { return "attachment" }
func (a *Attachment) Hash() (uint32, error) { return starlark.MakeUint(uint(a.a.ID())).Hash() }
func (a *Attachment) AttrNames() []string {
	return []string{"detach", "hook", "mechanism", "mode", "program", "target"}
}
func (a *Attachment) Attr(name string) (starlark.Value, error) {
	switch name {
	case "program":
		return a.prog, nil
	case "target":
		return a.target, nil
	case "hook":
		return starlark.String(a.hook.String()), nil
	case "mechanism":
		return starlark.String(a.a.Mechanism().String()), nil
	case "mode":
		if a.hook != datapath.HookXDP {
			return starlark.None, nil
		}
		return starlark.String(a.a.XDPMode().String()), nil
	case "detach":
		return newMethod(a, "detach", func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			if err := unpackArgs(b, args, kwargs); err != nil {
				return nil, err
			}
			return starlark.None, a.a.Detach()
		}), nil
	}
	return nil, nil
}
