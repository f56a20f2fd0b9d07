package machine

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// dump retries a netlink dump the kernel interrupted because what it
// lists changed meanwhile.
func dump[T any](what string, list func() ([]T, error)) ([]T, error) {
	for range 20 {
		v, err := list()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			if err != nil {
				return nil, fmt.Errorf("list %s: %w", what, err)
			}
			return v, nil
		}
	}
	return nil, fmt.Errorf("list %s: interrupted by changes 20 times", what)
}

// netnsContents lists links, addresses, routes, rules, qdiscs, filters,
// BPF attachments and (in host namespaces) sysctls of every open
// namespace.
func (c *collector) netnsContents() error {
	for _, n := range c.nss {
		if err := c.listNs(n); err != nil {
			return fmt.Errorf("namespace %s: %w", n.label, err)
		}
	}
	return nil
}

func (c *collector) listNs(n *nsRef) error {
	links, err := dump("links", n.nl.LinkList)
	if err != nil {
		return err
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	dev := func(i int) string { return n.label + "/" + names[i] }
	for _, l := range links {
		c.link(n, l, names)
		if err := c.tc(n, l); err != nil {
			return err
		}
	}
	if err := n.do(func() error { return c.attachments(n, links) }); err != nil {
		return err
	}
	addrs, err := dump("addresses", func() ([]netlink.Addr, error) { return n.nl.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return err
	}
	for _, a := range addrs {
		peer := ""
		if a.Peer != nil {
			peer = " peer " + a.Peer.String()
		}
		c.add("addr %s %s%s", dev(a.LinkIndex), a.IPNet, peer)
	}
	if err := c.routes(n, func(i int) string { return names[i] }); err != nil {
		return err
	}
	if err := c.rules(n); err != nil {
		return err
	}
	if n.host {
		return n.do(func() error { return c.sysctls(n.label, names) })
	}
	return nil
}

// link lists l's kind, administrative state, MTU, master and XDP
// program; its ifindex and operational state are left out.
func (c *collector) link(n *nsRef, l netlink.Link, names map[int]string) {
	a := l.Attrs()
	state := "down"
	if a.Flags&net.FlagUp != 0 {
		state = "up"
	}
	master := ""
	if a.MasterIndex != 0 {
		master = " master " + names[a.MasterIndex]
	}
	c.add("link %s/%s %s %s mtu %d%s", n.label, a.Name, l.Type(), state, a.MTU, master)
	if a.Xdp != nil && a.Xdp.Attached {
		c.add("attach %s/%s xdp mode %d %s", n.label, a.Name, a.Xdp.AttachMode, progDesc(a.Xdp.ProgId))
	}
}

// tc lists l's qdiscs and the filters of its classifier hooks.
func (c *collector) tc(n *nsRef, l netlink.Link) error {
	name := n.label + "/" + l.Attrs().Name
	qdiscs, err := dump("qdiscs of "+name, func() ([]netlink.Qdisc, error) { return n.nl.QdiscList(l) })
	if err != nil {
		return goneOr(err)
	}
	var parents []uint32
	for _, q := range qdiscs {
		a := q.Attrs()
		c.add("qdisc %s %s handle %s parent %s", name, q.Type(), netlink.HandleStr(a.Handle), netlink.HandleStr(a.Parent))
		switch {
		case q.Type() == "clsact" || q.Type() == "ingress":
			parents = append(parents, netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS)
		case a.Handle != 0:
			parents = append(parents, a.Handle)
		}
	}
	for _, p := range parents {
		filters, err := n.nl.FilterList(l, p)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOENT) {
			continue // a qdisc without classifiers
		}
		if err != nil {
			return goneOr(fmt.Errorf("list filters of %s: %w", name, err))
		}
		for _, f := range filters {
			c.add("filter %s %s", name, filterDesc(f))
		}
	}
	return nil
}

func filterDesc(f netlink.Filter) string {
	a := f.Attrs()
	s := fmt.Sprintf("parent %s pref %d proto %#x handle %#x %s", netlink.HandleStr(a.Parent), a.Priority, a.Protocol, a.Handle, f.Type())
	if b, ok := f.(*netlink.BpfFilter); ok {
		s += fmt.Sprintf(" %s da=%t %s", b.Name, b.DirectAction, progDesc(uint32(b.Id)))
	}
	return s
}

// goneOr returns nil for the error of a link that went away while it
// was listed, and err otherwise.
func goneOr(err error) error {
	if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}

// attachments lists the programs on links' tcx and netkit hooks; it runs
// inside n, where the ifindexes are n's.
func (c *collector) attachments(n *nsRef, links []netlink.Link) error {
	hooks := map[string][]ebpf.AttachType{
		"":       {ebpf.AttachTCXIngress, ebpf.AttachTCXEgress},
		"netkit": {ebpf.AttachTCXIngress, ebpf.AttachTCXEgress, ebpf.AttachNetkitPrimary, ebpf.AttachNetkitPeer},
	}
	for _, l := range links {
		types := hooks[""]
		if l.Type() == "netkit" {
			types = hooks["netkit"]
		}
		for _, at := range types {
			res, err := link.QueryPrograms(link.QueryOptions{Target: l.Attrs().Index, Attach: at})
			if errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, unix.ENODEV) {
				continue
			}
			if err != nil {
				return fmt.Errorf("query %s programs of %s: %w", at, l.Attrs().Name, err)
			}
			for _, p := range res.Programs {
				c.add("attach %s/%s %s %s", n.label, l.Attrs().Name, strings.ToLower(strings.TrimPrefix(at.String(), "Attach")), progDesc(uint32(p.ID)))
			}
		}
	}
	return nil
}

// progDesc names the BPF program with ID id by its ID, type and name.
func progDesc(id uint32) string {
	p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
	if err != nil {
		return fmt.Sprintf("prog %d (gone)", id)
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		return fmt.Sprintf("prog %d (no info)", id)
	}
	return fmt.Sprintf("prog %d %s %s", id, info.Type, info.Name)
}

func (c *collector) routes(n *nsRef, dev func(int) string) error {
	routes, err := dump("routes", func() ([]netlink.Route, error) {
		return n.nl.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return err
	}
	for _, r := range routes {
		var b strings.Builder
		fmt.Fprintf(&b, "route %s %s table %d type %d", n.label, family(r.Family), r.Table, r.Type)
		if r.Dst != nil {
			fmt.Fprintf(&b, " %s", r.Dst)
		} else {
			b.WriteString(" default")
		}
		if r.Gw != nil {
			fmt.Fprintf(&b, " via %s", r.Gw)
		}
		if r.LinkIndex != 0 {
			fmt.Fprintf(&b, " dev %s", dev(r.LinkIndex))
		}
		if r.Src != nil {
			fmt.Fprintf(&b, " src %s", r.Src)
		}
		fmt.Fprintf(&b, " proto %d scope %d metric %d", r.Protocol, r.Scope, r.Priority)
		if r.MTU != 0 {
			fmt.Fprintf(&b, " mtu %d", r.MTU)
		}
		for _, h := range r.MultiPath {
			fmt.Fprintf(&b, " nexthop via %s dev %s weight %d", h.Gw, dev(h.LinkIndex), h.Hops+1)
		}
		c.add("%s", b.String())
	}
	return nil
}

func (c *collector) rules(n *nsRef) error {
	rules, err := dump("rules", func() ([]netlink.Rule, error) { return n.nl.RuleList(netlink.FAMILY_ALL) })
	if err != nil {
		return err
	}
	for _, r := range rules {
		var b strings.Builder
		fmt.Fprintf(&b, "rule %s %s pref %d", n.label, family(r.Family), r.Priority)
		if r.Invert {
			b.WriteString(" not")
		}
		if r.Src != nil {
			fmt.Fprintf(&b, " from %s", r.Src)
		}
		if r.Dst != nil {
			fmt.Fprintf(&b, " to %s", r.Dst)
		}
		if r.IifName != "" {
			fmt.Fprintf(&b, " iif %s", r.IifName)
		}
		if r.OifName != "" {
			fmt.Fprintf(&b, " oif %s", r.OifName)
		}
		if r.Mark != 0 || r.Mask != nil {
			mask := uint32(0xffffffff)
			if r.Mask != nil {
				mask = *r.Mask
			}
			fmt.Fprintf(&b, " fwmark %#x/%#x", r.Mark, mask)
		}
		if r.Tos != 0 {
			fmt.Fprintf(&b, " tos %d", r.Tos)
		}
		if r.IPProto != 0 {
			fmt.Fprintf(&b, " ipproto %d", r.IPProto)
		}
		fmt.Fprintf(&b, " table %d", r.Table)
		if r.Goto >= 0 {
			fmt.Fprintf(&b, " goto %d", r.Goto)
		}
		if r.Type != 0 {
			fmt.Fprintf(&b, " type %d", r.Type)
		}
		c.add("%s", b.String())
	}
	return nil
}

func family(f int) string {
	switch f {
	case unix.AF_INET:
		return "inet"
	case unix.AF_INET6:
		return "inet6"
	}
	return fmt.Sprintf("family%d", f)
}
