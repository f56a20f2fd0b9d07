package builtins

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/nkscript/nkscript/datapath"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// dropsFn is drops(since=None): the drops the monitor saw in the lab's
// namespaces, identical ones counted together; since=N keeps those after
// the drop numbered N (a record's seq).
func dropsFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r := runOf(thread)
	var since starlark.Value = starlark.None
	if err := unpackArgs(b, args, kwargs, "since?", &since); err != nil {
		return nil, err
	}
	after := 0
	if since != starlark.None {
		if err := starlark.AsInt(since, &after); err != nil || after < 0 {
			return nil, fmt.Errorf("since=%s: want a drop's seq (an int ≥ 0) or None", since)
		}
	}
	m, err := r.lab.DropMonitor()
	if err != nil {
		return nil, err
	}
	m.Sync()
	var ds []datapath.Drop
	for _, d := range m.Since(0) {
		if d.Seq > after {
			ds = append(ds, d)
		}
	}
	reps := r.lab.ExplainDrops(ds, nil)
	out := make([]starlark.Value, len(reps))
	for i, rep := range reps {
		out[i] = dropValue(rep)
	}
	return starlark.NewList(out), nil
}

// dropValue is a drop report as drops() returns it.
func dropValue(d datapath.DropReport) *starlarkstruct.Struct {
	str := func(s string) starlark.Value {
		if s == "" {
			return starlark.None
		}
		return starlark.String(s)
	}
	addr := func(a netip.Addr) starlark.Value {
		if !a.IsValid() {
			return starlark.None
		}
		return starlark.String(a.String())
	}
	return starlarkstruct.FromStringDict(starlark.String("drop"), starlark.StringDict{
		"ns":      starlark.String(d.Ns),
		"dev":     str(d.Dev),
		"hook":    str(d.Hook),
		"program": str(strings.Join(d.Programs, ", ")),
		"where":   str(d.Where),
		"reason":  starlark.String(d.Reason),
		"why":     str(d.Why),
		"proto":   starlark.String(d.Proto),
		"src":     addr(d.Src),
		"dst":     addr(d.Dst),
		"sport":   starlark.MakeInt(d.Sport),
		"dport":   starlark.MakeInt(d.Dport),
		"count":   starlark.MakeInt(d.Count),
		"seq":     starlark.MakeInt(d.Last),
	})
}

// flowDrops watches the drops of one flow: start it before the flow's
// packets are sent, and ask it afterwards where they died.
type flowDrops struct {
	m    *datapath.DropMonitor
	mark datapath.DropMark
}

// watchDrops starts the lab's drop monitor if it is not running and
// marks where the flow's drops begin.
func watchDrops(r *Run) (*flowDrops, error) {
	m, err := r.lab.DropMonitor()
	if err != nil {
		return nil, err
	}
	if !m.Active() {
		return nil, nil
	}
	return &flowDrops{m: m, mark: r.lab.MarkDrops(m)}, nil
}

// explain returns the drops since the mark of packets to or from dst
// (and port, for tcp and udp) of protocol proto, in the lab's terms.
func (f *flowDrops) explain(r *Run, proto string, dst netip.Addr, port int) []datapath.DropReport {
	if f == nil {
		return nil
	}
	f.m.Sync()
	var ds []datapath.Drop
	for _, d := range f.m.Since(f.mark.Seq) {
		if flowLost(d, proto, dst, port) {
			ds = append(ds, d)
		}
	}
	return r.lab.ExplainDrops(ds, &f.mark)
}

// signal returns a channel that receives when the monitor sees a packet
// of the flow dropped (see flowLost), and the function that stops it.
func (f *flowDrops) signal(proto string, dst netip.Addr, port int) (<-chan struct{}, func()) {
	return f.m.SignalDrops(func(d datapath.Drop) bool { return flowLost(d, proto, dst, port) })
}

// socketTeardown are the reasons of packets freed with a socket that
// closes, or arriving after it closed: the end of a check's exchange, not
// why it failed. A check's listener and client are open while it runs,
// so a packet of the flow without a socket (NO_SOCKET) came after the
// check had given up on it, such as a SYN retransmitted as it timed out.
var socketTeardown = []string{"QUEUE_PURGE", "SOCKET_CLOSE", "TCP_CLOSE", "NO_SOCKET"}

// tcpReceive are the functions where TCP's own state machine discards a
// segment it has no use for (NOT_SPECIFIED): a SYN retransmitted to a
// connection the check already abandoned, say. Whether one comes within
// a check depends on timing, and it is not why the flow failed.
var tcpReceive = []string{"tcp_v4_rcv", "tcp_v6_rcv"}

// socketDestroy are the functions that free what a closing socket still
// queues: the check's own sockets closing as it ends. Linux 6.1 gives
// them no reason (NOT_SPECIFIED); later kernels say SOCKET_CLOSE, which
// socketTeardown leaves out.
var socketDestroy = []string{"sk_stream_kill_queues"}

// flowMatches reports whether d is a packet of the flow: of its protocol,
// to or from dst, and to or from port for tcp and udp.
func flowMatches(d datapath.Drop, proto string, dst netip.Addr, port int) bool {
	if (d.Src != dst && d.Dst != dst) || slices.Contains(socketTeardown, d.Reason) {
		return false
	}
	switch p := d.Proto(); proto {
	case "icmp":
		return p == "icmp" || p == "icmpv6"
	case "tcp", "udp":
		return p == proto && (int(d.Dport) == port || int(d.Sport) == port)
	}
	return false
}

// flowLost reports whether d is a drop a verdict on the flow names: a
// packet of the flow (flowMatches), not one TCP's state machine or a
// closing socket discarded (tcpReceive, socketDestroy).
func flowLost(d datapath.Drop, proto string, dst netip.Addr, port int) bool {
	if d.Reason == "NOT_SPECIFIED" && (slices.Contains(tcpReceive, d.Func) || slices.Contains(socketDestroy, d.Func)) {
		return false
	}
	return flowMatches(d, proto, dst, port)
}

// dropsSaid says where and why a flow's packets died, for a verdict:
// "in netns ..." for each place, "" if the monitor saw none.
func dropsSaid(reps []datapath.DropReport) string {
	if len(reps) == 0 {
		return ""
	}
	var places []string
	for _, rep := range reps {
		s := rep.String()
		if !slices.Contains(places, s) {
			places = append(places, s)
		}
	}
	return strings.Join(places, "; and ")
}

// withDrops appends to a verdict's reason where the packets died, or
// else the route the flow lacks (routeBack, "" if none).
func withDrops(reason string, reps []datapath.DropReport, routeBack string) string {
	if said := dropsSaid(reps); said != "" {
		return reason + "; dropped " + said
	}
	if routeBack != "" {
		return reason + "; " + routeBack
	}
	return reason
}

// lostSaid says where lost packets died ("dropped in netns ..."), or,
// where the monitor saw none dropped, the route src lacks to dst or the
// namespace owning dst lacks back; "" if nothing explains the loss.
func lostSaid(r *Run, reps []datapath.DropReport, src *datapath.Netns, dst netip.Addr) string {
	if said := dropsSaid(reps); said != "" {
		return "dropped " + said
	}
	dstNs, err := r.lab.NetnsOwning(dst)
	if err != nil {
		return ""
	}
	said, _ := r.lab.RouteBack(src, dstNs, dst)
	return said
}

// dropJSON is a drop report in --json.
func dropJSON(d datapath.DropReport) DropJSON {
	j := DropJSON{Ns: d.Ns, Dev: d.Dev, Hook: d.Hook, Program: strings.Join(d.Programs, ", "),
		Reason: d.Reason, Why: d.Why, Proto: d.Proto, Count: d.Count, Says: d.String()}
	if d.Src.IsValid() {
		j.Src, j.Dst = d.Src.String(), d.Dst.String()
	}
	return j
}
