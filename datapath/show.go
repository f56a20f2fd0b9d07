package datapath

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Snapshot is a lab as `ip -d link`, `ip addr`, `ip route`, `ip rule` and
// `bpftool net show` show it, namespace by namespace (Lab.Show).
type Snapshot struct {
	// Assumed is set when no kernel was asked (a dry run): the snapshot
	// is what the lab made, as it recorded it.
	Assumed bool
	// Namespaces are the host (when the lab has links there) and the
	// lab's namespaces, the host first, the others by name.
	Namespaces []NsState
}

// NsState is one namespace of a Snapshot.
type NsState struct {
	Name string
	// Host is set for the namespace nkscript runs in; only the lab's
	// links there, and the routes through them, are shown.
	Host   bool
	Links  []LinkState  // by name
	Routes []RouteState // IPv4 first, then by table and destination
	Rules  []RuleState  // by priority; the kernel's default rules left out
}

// LinkState is one device of a namespace.
type LinkState struct {
	Name  string
	Index int
	// Kind is the device's kind as `ip -d link` says it ("veth",
	// "netkit", "bridge", ...), "loopback" for lo, "device" if the kernel
	// gives none.
	Kind string
	Up   bool // administratively up
	MTU  int
	// Addrs are its IPv4 and IPv6 addresses, link-local ones left out.
	Addrs []netip.Prefix
	// Peer is the other end of a veth or netkit pair: "dev" in the same
	// namespace, "ns/dev" in another one; "" if none or unknown.
	Peer string
	// Master is the bridge the device is a port of, or "".
	Master string
	// Netkit: its mode ("l2", "l3"), its policy and its peer's, and
	// whether it is the primary device.
	Mode, Policy, PeerPolicy string
	Primary                  bool
	// Hooks are the hooks with programs on them, in the order of Hook.
	Hooks []HookState
}

// HookState is the programs on one hook of a device, in the order they
// run.
type HookState struct {
	Hook Hook
	// Legacy is set for clsact/cls_bpf filters (kernels without tcx).
	Legacy bool
	Progs  []ProgState
}

// ProgState is one program on a hook.
type ProgState struct {
	Name   string
	ID     uint32 // the program's ID
	LinkID uint32 // the BPF link's ID; 0 for none (tc filters, XDP by netlink)
}

// RouteState is one route.
type RouteState struct {
	Dst   netip.Prefix // invalid: default
	V6    bool
	Via   netip.Addr
	Dev   string
	Src   netip.Addr
	Table int    // 0: main
	Proto string // "kernel", "static", "boot", or a number
	Scope string // "link", "host", or "" (universe)
}

// RuleState is one routing policy rule.
type RuleState struct {
	Priority int
	V6       bool
	Src, Dst netip.Prefix // invalid: any
	IIF, OIF string
	Fwmark   uint32
	Table    int
}

// String writes the route as `ip route` does, without the table when it
// is main.
func (r RouteState) String() string {
	var b strings.Builder
	if r.Dst.IsValid() {
		b.WriteString(r.Dst.String())
	} else {
		b.WriteString("default")
	}
	if r.Via.IsValid() {
		fmt.Fprintf(&b, " via %s", r.Via)
	}
	if r.Dev != "" {
		fmt.Fprintf(&b, " dev %s", r.Dev)
	}
	if r.Table != 0 {
		fmt.Fprintf(&b, " table %d", r.Table)
	}
	if r.Proto != "" && r.Proto != "boot" {
		fmt.Fprintf(&b, " proto %s", r.Proto)
	}
	if r.Scope != "" {
		fmt.Fprintf(&b, " scope %s", r.Scope)
	}
	if r.Src.IsValid() {
		fmt.Fprintf(&b, " src %s", r.Src)
	}
	return b.String()
}

// String writes the rule as `ip rule` does.
func (r RuleState) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d:", r.Priority)
	if r.Src.IsValid() {
		fmt.Fprintf(&b, " from %s", r.Src)
	} else {
		b.WriteString(" from all")
	}
	if r.Dst.IsValid() {
		fmt.Fprintf(&b, " to %s", r.Dst)
	}
	if r.Fwmark != 0 {
		fmt.Fprintf(&b, " fwmark %#x", r.Fwmark)
	}
	if r.IIF != "" {
		fmt.Fprintf(&b, " iif %s", r.IIF)
	}
	if r.OIF != "" {
		fmt.Fprintf(&b, " oif %s", r.OIF)
	}
	fmt.Fprintf(&b, " lookup %d", r.Table)
	return b.String()
}

// ShowKnown is what a Lab knows it made, handed to Backend.Show: the
// kernel backend shows only these links in the host, the recorder builds
// its snapshot from it.
type ShowKnown struct {
	// Host is the namespace the lab treats as the host.
	Host *Netns
	// Netns are the host and every live namespace of the lab, where the
	// other ends of pairs are looked up.
	Netns       []*Netns
	Links       []*Link // pair ends, bridges, devices and loopbacks handed out
	Attachments []*Attachment
	Routes      map[NsID][]*RouteRecord
	Rules       map[NsID][]*RuleRecord
}

// Show returns the lab's namespaces as the kernel reports them: ns alone,
// or, if ns is nil, the host (if the lab has links there) and every
// namespace of the lab.
func (l *Lab) Show(ns *Netns) (Snapshot, error) {
	if err := l.checkOpenLocked(); err != nil {
		return Snapshot{}, err
	}
	known := l.showKnown()
	var nss []*Netns
	switch {
	case ns != nil:
		if err := live(nil, ns); err != nil {
			return Snapshot{}, err
		}
		nss = []*Netns{ns}
	default:
		if slices.ContainsFunc(known.Links, func(k *Link) bool { return k.ns == l.host }) {
			nss = append(nss, l.host)
		}
		others := l.Namespaces()
		slices.SortFunc(others, func(a, b *Netns) int { return cmp.Compare(a.name, b.name) })
		for _, n := range others {
			if !n.gone.Load() {
				nss = append(nss, n)
			}
		}
	}
	s, err := l.b.Show(nss, known)
	if err != nil {
		return Snapshot{}, err
	}
	for i := range s.Namespaces {
		s.Namespaces[i].sort()
	}
	return s, nil
}

// showKnown collects what the lab made for Backend.Show.
func (l *Lab) showKnown() ShowKnown {
	k := ShowKnown{Routes: map[NsID][]*RouteRecord{}, Rules: map[NsID][]*RuleRecord{}, Netns: []*Netns{l.host}, Host: l.host}
	for _, n := range l.Namespaces() {
		if !n.gone.Load() {
			k.Netns = append(k.Netns, n)
		}
	}
	for _, link := range append(l.Links(), l.Loopbacks()...) {
		if !link.gone.Load() {
			k.Links = append(k.Links, link)
		}
	}
	for _, a := range l.Attachments() {
		if !a.Detached() {
			k.Attachments = append(k.Attachments, a)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, st := range l.undo {
		switch r := st.rec.(type) {
		case *RouteRecord:
			k.Routes[r.NS] = append(k.Routes[r.NS], r)
		case *RuleRecord:
			k.Rules[r.NS] = append(k.Rules[r.NS], r)
		}
	}
	return k
}

// sort puts a namespace's links, routes and rules in the order they are
// shown.
func (n *NsState) sort() {
	slices.SortFunc(n.Links, func(a, b LinkState) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortStableFunc(n.Routes, func(a, b RouteState) int {
		return cmp.Or(boolCmp(a.V6, b.V6), cmp.Compare(a.Table, b.Table), prefixCmp(a.Dst, b.Dst), cmp.Compare(a.Dev, b.Dev))
	})
	slices.SortStableFunc(n.Rules, func(a, b RuleState) int {
		return cmp.Or(boolCmp(a.V6, b.V6), cmp.Compare(a.Priority, b.Priority))
	})
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// prefixCmp orders the default route first, then by address and length.
func prefixCmp(a, b netip.Prefix) int {
	if a.IsValid() != b.IsValid() {
		return boolCmp(a.IsValid(), b.IsValid())
	}
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}
