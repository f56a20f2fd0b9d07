package builtins

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/nkscript/nkscript/datapath"
	"go.starlark.net/starlark"
)

func showFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var ns netnsArg
	var ids bool
	if err := unpackArgs(b, args, kwargs, "ns??", &ns, "ids?", &ids); err != nil {
		return nil, err
	}
	r := runOf(thread)
	var only *datapath.Netns
	if ns.ns != nil {
		only = ns.ns.ns
	}
	s, err := r.lab.Show(only)
	if err != nil {
		return nil, err
	}
	fmt.Fprint(r.out, formatSnapshot(s, ids))
	return starlark.None, nil
}

// formatSnapshot writes a snapshot namespace by namespace: each link
// with its kind, state, MTU, peer, master, addresses and the programs on
// its hooks, then the routes and rules. Without ids it names no ifindex
// or ID, so that it reads the same in every run.
func formatSnapshot(s datapath.Snapshot, ids bool) string {
	var b strings.Builder
	if s.Assumed {
		b.WriteString("(dry run: what the lab made, as it recorded it; no kernel was asked)\n")
	}
	for _, ns := range s.Namespaces {
		if ns.Host {
			b.WriteString("host (the lab's links only)\n")
		} else {
			fmt.Fprintf(&b, "netns %q\n", ns.Name)
		}
		for _, l := range ns.Links {
			formatLinkState(&b, l, ids)
		}
		for _, r := range ns.Routes {
			fmt.Fprintf(&b, "  route %s\n", r)
		}
		for _, r := range ns.Rules {
			fmt.Fprintf(&b, "  rule %s\n", r)
		}
	}
	return b.String()
}

// formatLinkState writes one link as `ip -d link` and `bpftool net show`
// would say it, on a line, then its addresses and hooks.
func formatLinkState(b *strings.Builder, l datapath.LinkState, ids bool) {
	words := []string{l.Kind}
	if l.Kind == "netkit" {
		end := "peer"
		if l.Primary {
			end = "primary"
		}
		words = append(words, l.Mode, end)
		if l.Policy != "" {
			words = append(words, "policy "+l.Policy, "peer-policy "+l.PeerPolicy)
		}
	}
	words = append(words, map[bool]string{true: "up", false: "down"}[l.Up])
	if l.MTU != 0 {
		words = append(words, fmt.Sprintf("mtu %d", l.MTU))
	}
	if l.Peer != "" {
		words = append(words, "peer "+l.Peer)
	}
	if l.Master != "" {
		words = append(words, "master "+l.Master)
	}
	if ids {
		words = append(words, fmt.Sprintf("ifindex %d", l.Index))
	}
	fmt.Fprintf(b, "  link %s: %s\n", l.Name, strings.Join(words, ", "))
	if len(l.Addrs) > 0 {
		fmt.Fprintf(b, "    addr %s\n", joinPrefixes(l.Addrs))
	}
	for _, h := range l.Hooks {
		name := h.Hook.String()
		if h.Legacy && ids {
			// Without ids, the output is the same on kernels with and
			// without tcx.
			name += " (tc)"
		}
		var progs []string
		for _, p := range h.Progs {
			s := p.Name
			if ids {
				s += fmt.Sprintf(" (prog %d", p.ID)
				if p.LinkID != 0 {
					s += fmt.Sprintf(", link %d", p.LinkID)
				}
				s += ")"
			}
			progs = append(progs, s)
		}
		fmt.Fprintf(b, "    hook %s: %s\n", name, strings.Join(progs, ", "))
	}
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, " ")
}

// showDoc documents show().
var showDoc = Entry{
	Name: "show", Kind: KindFunc,
	Signature: `show(ns=None, ids=False) -> None`,
	Doc: "Prints the lab as the kernel reports it, as `ip -d link`, `ip addr`, `ip route`, " +
		"`ip rule` and `bpftool net show` would, namespace by namespace (`ns` alone, or the host's " +
		"links of the lab and every namespace of the lab): each link with its kind (netkit: mode, " +
		"primary or peer, policies), state, MTU, peer and master, its addresses (link-local ones " +
		"left out), and the programs on each hook in the order they run; then the routes of every " +
		"table but local (IPv6 link-local and multicast routes left out) and the rules but the " +
		"three every namespace starts with. Links, routes and rules are sorted and no ifindex or " +
		"ID is printed, so the output is the same in every run; `ids = True` adds the ifindexes, " +
		"the program and BPF link IDs, and \"(tc)\" on hooks where the kernel has no tcx and " +
		"programs sit in clsact filters. Under `--dry-run` it prints what the lab recorded.",
	Example: `attach(program("drop_port", port = 12345), nk, "peer")
show(task)`,
}
