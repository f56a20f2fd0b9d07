package datapath

import (
	"net/netip"
	"slices"
)

// recordedRoutes are the routes and rules a recorder was asked to add
// and not to delete, by namespace: what its Show reports.
type recordedRoutes struct {
	routes map[*Netns][]RouteSpec
	rules  map[*Netns][]RuleSpec
}

func (r *recorder) AddRoute(ns *Netns, rt RouteSpec) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.made.routes == nil {
		r.made.routes = map[*Netns][]RouteSpec{}
	}
	r.made.routes[ns] = append(r.made.routes[ns], rt)
	return nil
}

func (r *recorder) DeleteRoute(ns *Netns, rt RouteSpec) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.made.routes[ns] = slices.DeleteFunc(r.made.routes[ns], func(x RouteSpec) bool { return x == rt })
	return nil
}

func (r *recorder) AddRule(ns *Netns, rl RuleSpec) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.made.rules == nil {
		r.made.rules = map[*Netns][]RuleSpec{}
	}
	r.made.rules[ns] = append(r.made.rules[ns], rl)
	return nil
}

func (r *recorder) DeleteRule(ns *Netns, rl RuleSpec) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.made.rules[ns] = slices.DeleteFunc(r.made.rules[ns], func(x RuleSpec) bool { return x == rl })
	return nil
}

// Show reports what the lab made, as it recorded it: its links with the
// addresses and programs it gave them, the routes the kernel would add
// for those addresses, and the routes and rules it added.
func (r *recorder) Show(nss []*Netns, known ShowKnown) (Snapshot, error) {
	s := Snapshot{Assumed: true}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ns := range nss {
		st := NsState{Name: ns.name, Host: ns == known.Host}
		for _, k := range known.Links {
			if k.ns == ns {
				st.Links = append(st.Links, recordedLink(k, known.Attachments))
			}
		}
		if ns != known.Host && !slices.ContainsFunc(st.Links, func(l LinkState) bool { return l.Kind == "loopback" }) {
			st.Links = append(st.Links, LinkState{Name: "lo", Kind: "loopback", Up: true, MTU: 65536,
				Addrs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8"), netip.MustParsePrefix("::1/128")}})
		}
		st.Routes = connectedRoutes(st.Links)
		for _, rt := range r.made.routes[ns] {
			rs := RouteState{Dst: rt.Dst, V6: rt.Dst.Addr().Is6(), Via: rt.Via, Table: rt.Table}
			if rt.Dst.Bits() == 0 {
				rs.Dst = netip.Prefix{}
			}
			if rt.Dev != nil {
				rs.Dev = rt.Dev.name
			}
			st.Routes = append(st.Routes, rs)
		}
		for _, rl := range r.made.rules[ns] {
			rs := RuleState{Priority: rl.Priority, V6: rl.V6(), Src: rl.Src, Dst: rl.Dst, Fwmark: rl.Fwmark, Table: rl.Table}
			if rl.IIF != nil {
				rs.IIF = rl.IIF.name
			}
			if rl.OIF != nil {
				rs.OIF = rl.OIF.name
			}
			st.Rules = append(st.Rules, rs)
		}
		s.Namespaces = append(s.Namespaces, st)
	}
	return s, nil
}

// recordedLink is what the lab knows of k and of the programs it put on it.
func recordedLink(k *Link, as []*Attachment) LinkState {
	ls := LinkState{Name: k.name, Index: k.index, Kind: k.kindName(), Up: k.IsUp(), MTU: k.mtu, Addrs: k.Addrs()}
	if k.loop {
		ls.Kind, ls.Up, ls.MTU = "loopback", true, 65536
		ls.Addrs = append([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/8"), netip.MustParsePrefix("::1/128")}, ls.Addrs...)
	}
	if k.pair != nil {
		p := k.partner()
		ls.Peer = p.name
		if p.ns != k.ns {
			ls.Peer = p.ns.name + "/" + p.name
		}
		if k.pair.Kind == Netkit {
			ls.Mode, ls.Primary = netkitModeName(k.pair.Mode), k.prim
		}
	}
	for _, a := range as {
		if a.on != k {
			continue
		}
		i := slices.IndexFunc(ls.Hooks, func(h HookState) bool { return h.Hook == a.hook })
		if i < 0 {
			ls.Hooks = append(ls.Hooks, HookState{Hook: a.hook, Legacy: a.isLegacy()})
			i = len(ls.Hooks) - 1
		}
		ls.Hooks[i].Progs = append(ls.Hooks[i].Progs, ProgState{Name: a.prog, ID: a.progID, LinkID: a.id})
	}
	slices.SortStableFunc(ls.Hooks, func(a, b HookState) int { return int(a.Hook) - int(b.Hook) })
	return ls
}

// connectedRoutes are the routes the kernel adds for the addresses of
// devices that are up.
func connectedRoutes(links []LinkState) []RouteState {
	var rs []RouteState
	for _, l := range links {
		if !l.Up || l.Kind == "loopback" {
			continue
		}
		for _, p := range l.Addrs {
			r := RouteState{Dst: p.Masked(), V6: p.Addr().Is6(), Dev: l.Name, Proto: "kernel"}
			if !r.V6 {
				r.Scope, r.Src = "link", p.Addr()
			}
			rs = append(rs, r)
		}
	}
	return rs
}
