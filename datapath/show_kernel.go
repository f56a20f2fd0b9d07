package datapath

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func (k *kernel) Show(nss []*Netns, known ShowKnown) (Snapshot, error) {
	var s Snapshot
	for _, ns := range nss {
		st, err := showNetns(ns, known)
		if err != nil {
			return Snapshot{}, fmt.Errorf("show namespace %s: %w", ns.name, err)
		}
		s.Namespaces = append(s.Namespaces, st)
	}
	return s, nil
}

// showNetns reads one namespace from the kernel: in the host, only the
// lab's links and what goes through them.
func showNetns(ns *Netns, known ShowKnown) (st NsState, err error) {
	err = ns.withNetlink(func(h *netlink.Handle) error {
		st, err = showNetnsWith(h, ns, known)
		return err
	})
	return st, err
}

// showNetnsWith is showNetns with a netlink handle in ns.
func showNetnsWith(h *netlink.Handle, ns *Netns, known ShowKnown) (NsState, error) {
	st := NsState{Name: ns.name, Host: ns == known.Host}
	all, err := h.LinkList()
	if err != nil {
		return st, fmt.Errorf("list links: %w", err)
	}
	names := map[int]string{}
	for _, nl := range all {
		names[nl.Attrs().Index] = nl.Attrs().Name
	}
	shown := func(index int) bool { return true }
	if ns == known.Host {
		shown = func(index int) bool {
			return slices.ContainsFunc(known.Links, func(k *Link) bool { return k.ns == ns && k.index == index })
		}
	}
	peers := peerNamespaces(h, ns, known.Netns)
	for _, nl := range all {
		if !shown(nl.Attrs().Index) {
			continue
		}
		ls, err := showLink(h, ns, nl, names, peers)
		if err != nil {
			return st, err
		}
		st.Links = append(st.Links, ls)
	}
	if st.Routes, err = showRoutes(h, names, shown); err != nil {
		return st, err
	}
	st.Rules, err = showRules(h, ns, known)
	return st, err
}

// peerNamespaces maps the IDs ns gives other namespaces (IFLA_LINK_NETNSID)
// to the lab's namespaces.
func peerNamespaces(h *netlink.Handle, ns *Netns, nss []*Netns) map[int]*Netns {
	ids := map[int]*Netns{}
	for _, n := range nss {
		if n == ns || !n.kern {
			continue
		}
		n.withFd(func(fd int) error {
			if id, err := h.GetNetNsIdByFd(fd); err == nil && id >= 0 {
				ids[id] = n
			}
			return nil
		})
	}
	return ids
}

// showLink describes one device and the programs on its hooks.
func showLink(h *netlink.Handle, ns *Netns, nl netlink.Link, names map[int]string, peers map[int]*Netns) (LinkState, error) {
	a := nl.Attrs()
	ls := LinkState{Name: a.Name, Index: a.Index, Kind: nl.Type(), Up: a.Flags&net.FlagUp != 0, MTU: a.MTU, Master: names[a.MasterIndex]}
	if a.EncapType == "loopback" {
		ls.Kind = "loopback"
	}
	addrs, err := h.AddrList(nl, netlink.FAMILY_ALL)
	if err != nil {
		return ls, fmt.Errorf("addresses of %s: %w", a.Name, err)
	}
	for _, ad := range addrs {
		p, ok := netipPrefix(ad.IPNet)
		if ok && !p.Addr().Is6() || ok && !p.Addr().IsLinkLocalUnicast() {
			ls.Addrs = append(ls.Addrs, p)
		}
	}
	if nk, ok := nl.(*netlink.Netkit); ok {
		ls.Mode, ls.Policy, ls.PeerPolicy, ls.Primary = nkModeWord(nk.Mode), nkPolicyWord(nk.Policy), nkPolicyWord(nk.PeerPolicy), nk.IsPrimary()
	}
	if ls.Kind == "veth" || ls.Kind == "netkit" {
		ls.Peer = peerName(a, names, peers)
	}
	ls.Hooks, err = showHooks(ns, a, ls.Kind == "netkit" && ls.Primary)
	return ls, err
}

// peerName names the other end of a pair: "dev" in the same namespace,
// "ns/dev" in another of the lab's, "" if it cannot be told.
func peerName(a *netlink.LinkAttrs, names map[int]string, peers map[int]*Netns) string {
	if a.ParentIndex == 0 {
		return ""
	}
	if a.NetNsID < 0 {
		return names[a.ParentIndex]
	}
	n, ok := peers[a.NetNsID]
	if !ok {
		return ""
	}
	if other, err := nlQuery(n, (*netlink.Handle).LinkByIndex, a.ParentIndex); err == nil {
		return n.name + "/" + other.Attrs().Name
	}
	return ""
}

func nkModeWord(m netlink.NetkitMode) string {
	if m == netlink.NETKIT_MODE_L2 {
		return "l2"
	}
	return "l3"
}

func nkPolicyWord(p netlink.NetkitPolicy) string {
	if p == netlink.NETKIT_POLICY_BLACKHOLE {
		return "blackhole"
	}
	return "forward"
}

func netipPrefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	addr, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(addr.Unmap(), ones), true
}

// showHooks lists the programs on every hook of a device: tcx (or legacy
// tc filters where the kernel has no tcx), netkit on a primary device,
// and XDP.
func showHooks(ns *Netns, a *netlink.LinkAttrs, netkitPrimary bool) ([]HookState, error) {
	var hooks []HookState
	hs := []Hook{HookIngress, HookEgress}
	if netkitPrimary {
		hs = append(hs, HookPrimary, HookPeer)
	}
	legacy := errors.Is(HaveTCX(), ErrNotSupported)
	for _, hook := range hs {
		var progs []ProgState
		var err error
		isLegacy := legacy && (hook == HookIngress || hook == HookEgress)
		if isLegacy {
			progs, err = legacyProgs(ns, a.Index, hook)
		} else {
			progs, err = queryProgs(ns, a.Index, hook)
		}
		if err != nil {
			return nil, fmt.Errorf("programs on %s %s: %w", a.Name, hook, err)
		}
		if len(progs) > 0 {
			hooks = append(hooks, HookState{Hook: hook, Legacy: isLegacy, Progs: progs})
		}
	}
	if a.Xdp != nil && a.Xdp.Attached && a.Xdp.ProgId != 0 {
		hooks = append(hooks, HookState{Hook: HookXDP, Progs: []ProgState{{Name: progName(a.Xdp.ProgId, ""), ID: a.Xdp.ProgId}}})
	}
	return hooks, nil
}

// queryProgs asks the kernel which programs a tcx or netkit hook runs,
// in order.
func queryProgs(ns *Netns, ifindex int, hook Hook) ([]ProgState, error) {
	at, _ := hook.attachType()
	var progs []ProgState
	err := ns.Do(func() error {
		res, err := link.QueryPrograms(link.QueryOptions{Target: ifindex, Attach: at})
		if err != nil {
			return err
		}
		for _, ap := range res.Programs {
			p := ProgState{Name: progName(uint32(ap.ID), ""), ID: uint32(ap.ID)}
			if id, ok := ap.LinkID(); ok {
				p.LinkID = uint32(id)
			}
			progs = append(progs, p)
		}
		return nil
	})
	return progs, err
}

// legacyProgs lists the cls_bpf filters on a device's clsact hook.
func legacyProgs(ns *Netns, ifindex int, hook Hook) ([]ProgState, error) {
	fs, err := legacyFilters(ns, ifindex, hook)
	if err != nil {
		return nil, err
	}
	var progs []ProgState
	for _, f := range fs {
		progs = append(progs, ProgState{Name: progName(uint32(f.Id), f.Name), ID: uint32(f.Id)})
	}
	return progs, nil
}

// progName is the name of the program with the given ID, or fallback
// (or "id N") if the kernel gives none.
func progName(id uint32, fallback string) string {
	if prog, err := ebpf.NewProgramFromID(ebpf.ProgramID(id)); err == nil {
		defer prog.Close()
		if info, err := prog.Info(); err == nil && info.Name != "" {
			return info.Name
		}
	}
	if fallback != "" {
		return fallback
	}
	return fmt.Sprintf("id %d", id)
}

// showRoutes lists the routes of every table but local, leaving out
// what the kernel adds to every IPv6 device by itself (fe80::/64 and
// multicast).
func showRoutes(h *netlink.Handle, names map[int]string, shown func(int) bool) ([]RouteState, error) {
	rs, err := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	var out []RouteState
	for _, r := range rs {
		if r.Table == unix.RT_TABLE_LOCAL || r.Type != unix.RTN_UNICAST || !shown(r.LinkIndex) {
			continue
		}
		st := RouteState{Dev: names[r.LinkIndex], V6: r.Family == unix.AF_INET6, Table: r.Table, Proto: r.Protocol.String()}
		if st.Table == unix.RT_TABLE_MAIN {
			st.Table = 0
		}
		if p, ok := netipPrefix(r.Dst); ok && p.Bits() > 0 {
			st.Dst = p
		}
		if st.V6 && st.Dst.IsValid() && (st.Dst.Addr().IsLinkLocalUnicast() || st.Dst.Addr().IsMulticast()) {
			continue
		}
		st.Via, _ = netip.AddrFromSlice(r.Gw)
		st.Src, _ = netip.AddrFromSlice(r.Src)
		st.Via, st.Src = st.Via.Unmap(), st.Src.Unmap()
		switch r.Scope {
		case netlink.SCOPE_LINK:
			st.Scope = "link"
		case netlink.SCOPE_HOST:
			st.Scope = "host"
		}
		out = append(out, st)
	}
	return out, nil
}

// showRules lists the rules of ns but the kernel's three defaults; in the
// host, only the rules the lab added.
func showRules(h *netlink.Handle, ns *Netns, known ShowKnown) ([]RuleState, error) {
	rules, err := h.RuleList(netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list rules: %w", err)
	}
	var out []RuleState
	for _, r := range rules {
		st := RuleState{Priority: r.Priority, V6: r.Family == unix.AF_INET6, IIF: r.IifName, OIF: r.OifName, Fwmark: r.Mark, Table: r.Table}
		st.Src, _ = netipPrefix(r.Src)
		st.Dst, _ = netipPrefix(r.Dst)
		if isDefaultRule(st) {
			continue
		}
		if ns == known.Host && !slices.ContainsFunc(known.Rules[ns.id], func(k *RuleRecord) bool { return k.Priority == st.Priority && k.Table == st.Table }) {
			continue
		}
		out = append(out, st)
	}
	return out, nil
}

// isDefaultRule reports whether r is one of the rules every namespace
// starts with: 0 lookup local, 32766 lookup main, 32767 lookup default.
// Kernels differ in the table they report for the last one, so any rule
// without selectors at one of those priorities into one of those tables
// counts.
func isDefaultRule(r RuleState) bool {
	bare := !r.Src.IsValid() && !r.Dst.IsValid() && r.IIF == "" && r.OIF == "" && r.Fwmark == 0
	reserved := r.Table == unix.RT_TABLE_LOCAL || r.Table == unix.RT_TABLE_MAIN || r.Table == unix.RT_TABLE_DEFAULT
	return bare && reserved && (r.Priority == 0 || r.Priority == 32766 || r.Priority == 32767)
}
