package datapath

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
)

// DropReport is a drop, or a run of identical drops, said in the lab's
// terms: the namespace and device by name, the hook and the programs the
// lab attached there, and the kernel's reason in words.
type DropReport struct {
	// Ns is the namespace's name; Dev the device's ("" if the packet
	// had none).
	Ns, Dev string
	// Hook is the hook whose programs dropped the packet: "tcx
	// ingress", "tcx egress", "tc ingress", "tc egress", "netkit
	// primary" or "netkit peer"; "" if no hook did.
	Hook string
	// Programs are the programs the lab attached to Hook, in the order
	// it attached them.
	Programs []string
	// Where is the kernel function that dropped the packet.
	Where string
	// Reason is the kernel's drop reason (TC_EGRESS, NO_SOCKET, ...).
	Reason string
	// Why says the reason in words.
	Why string
	// Proto, Src, Dst, Sport and Dport describe the packet (see Drop).
	Proto        string
	Src, Dst     netip.Addr
	Sport, Dport int
	// Count is how many identical drops the report stands for.
	Count int
	// Last is the Seq of the last of them.
	Last int
}

// String says where and why, e.g. `in netns "r" on hx_r1 (tcx egress)
// by program drop_port (TC_EGRESS)`.
func (r DropReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "in netns %q", r.Ns)
	if r.Dev != "" {
		fmt.Fprintf(&b, " on %s", r.Dev)
	}
	if r.Hook != "" {
		fmt.Fprintf(&b, " (%s)", r.Hook)
	}
	switch {
	case len(r.Programs) == 1:
		fmt.Fprintf(&b, " by program %s", r.Programs[0])
	case len(r.Programs) > 1:
		fmt.Fprintf(&b, " by one of programs %s", strings.Join(r.Programs, ", "))
	}
	reason := r.Reason
	if reason == "NOT_SPECIFIED" && r.Where != "" {
		reason += " in " + r.Where
	}
	if r.Why != "" {
		fmt.Fprintf(&b, ": %s (%s)", r.Why, reason)
	} else {
		fmt.Fprintf(&b, " (%s)", reason)
	}
	return b.String()
}

// dropReasonWords says the kernel's drop reasons a lab meets in words.
var dropReasonWords = map[string]string{
	"NO_SOCKET":           "no socket listening",
	"IP_RPFILTER":         "rp_filter rejected the source address",
	"NEIGH_FAILED":        "no answer to ARP or neighbour solicitation",
	"NEIGH_QUEUEFULL":     "neighbour queue full",
	"NEIGH_CREATEFAIL":    "neighbour could not be created",
	"NEIGH_DEAD":          "neighbour dead",
	"IP_OUTNOROUTES":      "no route",
	"IP_INNOROUTES":       "no route",
	"IP_INADDRERRORS":     "invalid destination address",
	"IP_INHDR":            "bad IP header",
	"IP_LOCAL_SOURCE":     "source address is local",
	"IP_INVALID_SOURCE":   "invalid source address",
	"IP_INVALID_DEST":     "invalid destination address",
	"OTHERHOST":           "not addressed to this host",
	"NETFILTER_DROP":      "netfilter",
	"PKT_TOO_BIG":         "packet too big",
	"PKT_TOO_SMALL":       "packet too small",
	"UNHANDLED_PROTO":     "protocol not handled",
	"DEV_READY":           "device not ready",
	"FULL_RING":           "queue full",
	"QDISC_DROP":          "qdisc drop",
	"IPV6DISABLED":        "IPv6 disabled",
	"HOST_UNREACHABLE":    "host unreachable",
	"IP_FORWARD_DISABLED": "forwarding disabled",
	"TC_INGRESS":          "",
	"TC_EGRESS":           "",
}

// dropPlaceWords says what a reason means where the function that
// dropped the packet tells more than the reason: "REASON@function".
var dropPlaceWords = map[string]string{
	// ip_error with forwarding off: the route lookup said
	// EHOSTUNREACH because the device does not forward.
	"IP_INADDRERRORS@ip_error": "forwarding disabled",
	"IP_INNOROUTES@ip_error":   "no route",
	// ip6_forward counts the same error when forwarding is off (or the
	// source is link-local, which a lab's probes never use).
	"IP_INADDRERRORS@ip6_forward": "forwarding disabled",
}

// dropFuncWords says drops whose reason the kernel does not name by the
// function that dropped them.
var dropFuncWords = map[string]string{
	"ip_forward":        "forwarding",
	"ip6_forward":       "forwarding",
	"ip_error":          "no route (forwarding disabled or no route)",
	"netkit_xmit":       "netkit",
	"dev_qdisc_enqueue": "qdisc drop",
}

// routeQuery reports whether d is the packet the kernel builds to answer
// a route lookup (`ip route get`, Lab.RouteBack) and frees unsent: not
// a packet of the lab's traffic.
func routeQuery(d Drop) bool {
	return d.Func == "inet_rtm_getroute" || d.Func == "inet6_rtm_getroute"
}

// DropMark is where the drops of a flow begin: how many drops the monitor
// had seen, and the drop counters of the lab's bundled programs, with
// which a drop on a hook of several programs is put down to those whose
// counter rose.
type DropMark struct {
	Seq     int
	dropped map[uint32]uint64 // by program ID
}

// MarkDrops returns the mark of drops from now on.
func (l *Lab) MarkDrops(m *DropMonitor) DropMark {
	mark := DropMark{Seq: m.Mark(), dropped: map[uint32]uint64{}}
	l.mu.Lock()
	progs := append([]*Program(nil), l.progs...)
	l.mu.Unlock()
	for _, p := range progs {
		if s, err := p.Stats(); err == nil {
			mark.dropped[p.id] = s.Dropped
		}
	}
	return mark
}

// ExplainDrops turns drops into reports in the lab's terms, identical
// ones (the same place, reason and packet) counted in one report, in the
// order of their first drop. A drop on a hook of several programs is
// put down to the program that returned the drop verdict where the
// kernel could trace it (dropmon_fexit.go); else, given a mark from
// before the drops, to those whose drop counter rose since, if any did.
func (l *Lab) ExplainDrops(ds []Drop, mark *DropMark) []DropReport {
	var rose map[uint32]bool
	if mark != nil {
		rose = l.countersRose(mark)
	}
	var out []DropReport
	at := map[string]int{}
	for _, d := range ds {
		r := l.explainDrop(d, rose)
		key := fmt.Sprint(r.Ns, r.Dev, r.Hook, r.Where, r.Reason, r.Proto, r.Src, r.Dst, r.Sport, r.Dport)
		if i, ok := at[key]; ok {
			out[i].Count++
			out[i].Last = d.Seq
			continue
		}
		at[key] = len(out)
		out = append(out, r)
	}
	return out
}

// countersRose returns the bundled programs whose drop counter rose
// since mark.
func (l *Lab) countersRose(mark *DropMark) map[uint32]bool {
	rose := map[uint32]bool{}
	l.mu.Lock()
	progs := append([]*Program(nil), l.progs...)
	l.mu.Unlock()
	for _, p := range progs {
		if s, err := p.Stats(); err == nil && s.Dropped > mark.dropped[p.id] {
			rose[p.id] = true
		}
	}
	return rose
}

// ExplainDrop says one drop in the lab's terms.
func (l *Lab) ExplainDrop(d Drop) DropReport { return l.explainDrop(d, nil) }

func (l *Lab) explainDrop(d Drop, rose map[uint32]bool) DropReport {
	if d.Func == "" && d.Location != 0 {
		d.Func = kernelSymbols().name(d.Location)
	}
	r := DropReport{Where: d.Func, Reason: d.Reason, Proto: d.Proto(), Src: d.Src, Dst: d.Dst,
		Sport: int(d.Sport), Dport: int(d.Dport), Count: 1, Last: d.Seq}
	ns, dev := l.dropPlace(d)
	if d.Func == "netkit_xmit" && dev != nil && dev.pair != nil && dev.pair.Kind == Netkit {
		// netkit_xmit hands the packet to the peer device before it
		// runs the transmitting device's programs and policy: the drop
		// is the transmitter's, the other end of the pair.
		dev = dev.partner()
		ns = dev.ns
	}
	if ns != nil {
		r.Ns = ns.name
	} else {
		r.Ns = fmt.Sprintf("netns inode %d", d.Netns)
	}
	switch {
	case dev != nil:
		r.Dev = dev.name
	case ns != nil && ns.kern && d.Ifindex != 0:
		if nl, err := nlQuery(ns, (*netlink.Handle).LinkByIndex, d.Ifindex); err == nil {
			r.Dev = nl.Attrs().Name
		}
	}
	r.Why = dropReasonWords[d.Reason]
	if w, ok := dropPlaceWords[d.Reason+"@"+d.Func]; ok {
		r.Why = w
	}
	if r.Why == "" && d.Reason == "NOT_SPECIFIED" {
		r.Why = dropFuncWords[d.Func]
	}
	if dev != nil {
		l.dropHook(&r, d, dev, rose)
	}
	return r
}

// dropPlace finds the namespace and device of a drop among the lab's.
func (l *Lab) dropPlace(d Drop) (*Netns, *Link) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ns *Netns
	for _, n := range append([]*Netns{l.host}, l.nslist...) {
		if n != nil && uint32(n.id.Ino) == d.Netns {
			ns = n
		}
	}
	if ns == nil || d.Ifindex == 0 {
		return ns, nil
	}
	for _, k := range l.links {
		if k.ns == ns && k.index == d.Ifindex && !k.gone.Load() {
			return ns, k
		}
	}
	return ns, nil
}

// dropHook fills in the hook of a drop by a tc or netkit program, and the
// programs the lab attached there: the one that returned the drop verdict
// if fexit saw it, else those whose counter rose, else all of them. A
// netkit drop with none is the device's blackhole policy.
func (l *Lab) dropHook(r *DropReport, d Drop, dev *Link, rose map[uint32]bool) {
	var hook Hook
	switch {
	case d.Reason == "TC_INGRESS":
		hook = HookIngress
	case d.Reason == "TC_EGRESS":
		hook = HookEgress
	case d.Func == "netkit_xmit" && dev.pair != nil && dev.pair.Kind == Netkit:
		// dev is the transmitting end (see explainDrop).
		hook = HookPeer
		if dev.prim {
			hook = HookPrimary
		}
	default:
		return
	}
	target, err := hookTarget(dev, hook)
	if err != nil {
		return
	}
	names, ids := l.hookPrograms(target, hook)
	r.Programs = names
	if i := slices.Index(ids, d.progID); d.progID != 0 && i >= 0 {
		// An fexit program saw this one return the drop verdict.
		r.Programs = names[i : i+1]
	} else if len(names) > 1 {
		var dropped []string
		for i, id := range ids {
			if rose[id] {
				dropped = append(dropped, names[i])
			}
		}
		if len(dropped) > 0 {
			r.Programs = dropped
		}
	}
	// tcx and legacy tc filters are both the tc hook, and the kernel
	// gives both reasons TC_*: "tc" says the hook on every kernel.
	r.Hook = "tc " + hook.String()
	if hook.Netkit() {
		r.Hook = "netkit " + hook.String()
		r.Why = ""
		if len(r.Programs) == 0 {
			r.Why = "the device's blackhole policy"
		}
	}
}

// hookPrograms lists the programs on a hook of target in the kernel's
// order, by the names the lab knows them by (the kernel keeps 15
// characters of a name), with their IDs (0 for one the lab did not
// attach); in the order the lab attached them if the kernel cannot say.
func (l *Lab) hookPrograms(target *Link, hook Hook) ([]string, []uint32) {
	var lab []*Attachment
	for _, a := range l.Attachments() {
		if a.on == target && a.hook == hook && !a.Detached() {
			lab = append(lab, a)
		}
	}
	kernel, err := l.b.Chain(target, hook, l.Attachments())
	if err != nil {
		kernel = nil
		for _, a := range lab {
			kernel = append(kernel, a.prog)
		}
	}
	used := make([]bool, len(lab))
	names, ids := make([]string, 0, len(kernel)), make([]uint32, 0, len(kernel))
	for _, k := range kernel {
		name, id := k, uint32(0)
		for i, a := range lab {
			if !used[i] && (a.prog == k || (len(k) == 15 && strings.HasPrefix(a.prog, k))) {
				used[i], name, id = true, a.prog, a.progID
				break
			}
		}
		names, ids = append(names, name), append(ids, id)
	}
	return names, ids
}
