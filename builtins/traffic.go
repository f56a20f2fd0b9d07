package builtins

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/nkscript/nkscript/datapath"
	"github.com/nkscript/nkscript/internal/quote"
	"go.starlark.net/starlark"
)

// PingResult is what ping() returns. Its string form leaves out the
// round-trip times so that printed output is deterministic.
type PingResult struct {
	object
	dst netip.Addr
	src *Netns
	res datapath.PingResult
	// why says where the lost echoes died (see lostSaid), "" if none
	// was lost or nothing explains it.
	why string
}

func (p *PingResult) String() string {
	s := fmt.Sprintf("ping(%s from %s: %d sent, %d received, %s loss", p.dst, p.src, p.res.Sent, p.res.Received, p.lossString())
	if p.why != "" {
		s += "; " + p.why
	}
	return s + ")"
}

func (p *PingResult) lossString() string {
	return strconv.FormatFloat(p.res.Loss()*100, 'f', -1, 64) + "%"
}
func (p *PingResult) Type() string          { return "ping_result" }
func (p *PingResult) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: ping_result") }
func (p *PingResult) AttrNames() []string {
	return []string{"loss", "ok", "received", "rtts", "sent"}
}
func (p *PingResult) Attr(name string) (starlark.Value, error) {
	switch name {
	case "sent":
		return starlark.MakeInt(p.res.Sent), nil
	case "received":
		return starlark.MakeInt(p.res.Received), nil
	case "loss":
		return starlark.Float(p.res.Loss() * 100), nil
	case "ok":
		return starlark.Bool(p.res.Sent > 0 && p.res.Received == p.res.Sent), nil
	case "rtts":
		l := make([]starlark.Value, len(p.res.RTTs))
		for i, d := range p.res.RTTs {
			l[i] = starlark.Float(float64(d) / float64(time.Millisecond))
		}
		return starlark.NewList(l), nil
	}
	return nil, nil
}

func (p *PingResult) Truth() starlark.Bool { return starlark.Bool(p.res.Received > 0) }

func pingFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r := runOf(thread)
	var dst addrArg
	var srcArg netnsArg
	count, ttl := 3, 64
	timeout := durationArg(time.Second)
	if err := unpackArgs(b, args, kwargs, "dst", &dst, "src??", &srcArg, "count?", &count, "timeout??", &timeout, "ttl?", &ttl); err != nil {
		return nil, err
	}
	if ttl < 1 || ttl > 255 {
		return nil, fmt.Errorf("ttl=%d is out of range 1..255", ttl)
	}
	if count < 1 || count > 100000 {
		return nil, fmt.Errorf("count=%d is out of range 1..100000", count)
	}
	addr, src := dst.a, srcArg.or(r.host)
	watch, err := watchDrops(r)
	if err != nil {
		return nil, err
	}
	opts := datapath.PingOptions{Count: count, Timeout: time.Duration(timeout), TTL: ttl}
	if watch != nil {
		// An echo whose request or reply was seen dropped is lost: the
		// next one goes at once.
		var stop func()
		opts.Dropped, stop = watch.signal("icmp", addr, 0)
		defer stop()
	}
	res, err := r.lab.Ping(r.ctxOf(thread), src.ns, addr, opts, r.ready)
	if err != nil {
		return nil, err
	}
	p := &PingResult{dst: addr, src: src, res: res}
	if res.Received < res.Sent {
		p.why = lostSaid(r, watch.explain(r, "icmp", addr, 0), src.ns, addr)
	}
	return p, nil
}

func expectPass(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return expect(thread, b, args, kwargs, true)
}

func expectDrop(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return expect(thread, b, args, kwargs, false)
}

// expect checks one flow; with Options.PauseOnFail the first failed
// expectation pauses the run before it fails, to let the user look.
func expect(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple, wantPass bool) (starlark.Value, error) {
	v, err := expectFlow(thread, b, args, kwargs, wantPass)
	if err == nil {
		return v, nil
	}
	err = withName(b, err)
	if r := runOf(thread); r.pauseOnFail && !r.pausedOnFail && r.ctxOf(thread).Err() == nil {
		r.pausedOnFail = true
		r.pause(thread, "the expectation failed: "+err.Error())
	}
	return nil, err
}

// flowCheck is the flow one expect_pass or expect_drop call checks.
type flowCheck struct {
	proto    string
	src      *Netns
	dst      netip.Addr
	dstNs    *datapath.Netns
	port     int
	timeout  time.Duration
	by       *Program // expect_drop's by=, or nil
	wantPass bool
	// routeBack says the route a lost flow lacks where the monitor saw
	// none of its packets dropped, and sent whether the flow's packets
	// left (see datapath.Lab.RouteBack).
	routeBack string
	sent      bool
}

func expectFlow(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple, wantPass bool) (starlark.Value, error) {
	r := runOf(thread)
	c, err := unpackFlow(r, b, args, kwargs, wantPass)
	if err != nil {
		return nil, err
	}
	rec := newExpectation(thread, b, c.proto, c.src, c.dst, c.port, wantPass, c.by)
	defer rec.record(&r.report)
	if err := r.lab.WaitReadyFor(r.ctxOf(thread), r.ready, c.dst.Is6()); err != nil {
		return nil, err
	}
	watch, err := watchDrops(r)
	if err != nil {
		return nil, err
	}
	res, before, err := c.probe(r, r.ctxOf(thread), watch)
	if err != nil || res.Assumed {
		// An assumed result (a dry run) sent nothing: nothing to judge.
		return starlark.None, err
	}
	if !res.Delivered {
		rec.drops = watch.explain(r, c.proto, c.dst, c.port)
		if len(rec.drops) == 0 {
			c.routeBack, c.sent = r.lab.RouteBack(c.src.ns, c.dstNs, c.dst)
		}
	}
	return starlark.None, c.judge(r, rec, res, before)
}

// unpackFlow checks the arguments of expect_pass or expect_drop.
func unpackFlow(r *Run, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple, wantPass bool) (*flowCheck, error) {
	c := &flowCheck{proto: "tcp", wantPass: wantPass}
	var dst addrArg
	var src netnsArg
	var port starlark.Value
	timeout := durationArg(time.Second)
	by := programArg{what: "a program"}
	pairs := []any{"dst", &dst, "port??", &port, "proto?", &c.proto, "src??", &src, "timeout??", &timeout}
	if !wantPass {
		pairs = append(pairs, "by??", &by)
	}
	if err := unpackArgs(b, args, kwargs, pairs...); err != nil {
		return nil, err
	}
	if err := c.setPort(port); err != nil {
		return nil, err
	}
	c.dst, c.src, c.timeout, c.by = dst.a, src.or(r.host), time.Duration(timeout), by.v
	var err error
	if c.dstNs, err = r.lab.NetnsOwning(c.dst); err != nil {
		return nil, err
	}
	return c, nil
}

// setPort checks the port against the protocol: tcp and udp need one,
// icmp has none.
func (c *flowCheck) setPort(v starlark.Value) error {
	switch c.proto {
	case "tcp", "udp":
		if v == nil {
			return fmt.Errorf("proto %q needs a port, e.g. port=12345", c.proto)
		}
		var p portArg
		if err := checkArg("port", &p, v); err != nil {
			return err
		}
		c.port = int(p)
	case "icmp":
		if v != nil {
			return fmt.Errorf("proto \"icmp\" has no ports; remove port=%s", v)
		}
	default:
		return fmt.Errorf("proto %q is not supported; use %s", c.proto, quote.Or([]string{"tcp", "udp", "icmp"}))
	}
	return nil
}

func (c *flowCheck) String() string { return flowString(c.proto, c.src, c.dst, c.port) }

// monitorCut is the reason of an expect_drop whose wait ended when the
// drop monitor saw a packet of the flow dropped; the drops say where.
const monitorCut = "dropped: the drop monitor saw a packet of the flow dropped"

// probe sends the flow and reports what happened, with the by= program's
// drop counter before. A drop by that program ends the wait early; so
// does, for expect_drop without by=, a drop of the flow's own packets
// that the drop monitor (seen, nil if it is off) reports: a flow that
// should pass keeps waiting, as a retransmission may still get through.
func (c *flowCheck) probe(r *Run, runCtx context.Context, seen *flowDrops) (datapath.ProbeResult, uint64, error) {
	ctx := runCtx
	var before datapath.Stats
	var watch *datapath.DropWatch
	var cut string
	switch {
	case c.by != nil:
		var err error
		if before, err = c.by.p.Stats(); err != nil {
			return datapath.ProbeResult{}, 0, fmt.Errorf("by=%s: %w", c.by, err)
		}
		watch = c.by.p.WatchDrops(runCtx, before.Dropped)
		cut = "dropped by " + c.by.p.Name()
	case !c.wantPass && seen != nil:
		watch = seen.m.WatchFlow(runCtx, func(d datapath.Drop) bool { return flowLost(d, c.proto, c.dst, c.port) })
		cut = monitorCut
	}
	if watch != nil {
		defer watch.Stop()
		ctx = watch.Context()
	}
	res, err := r.lab.Probe(ctx, datapath.ProbeOptions{
		Proto: c.proto, Src: c.src.ns, DstNs: c.dstNs, Dst: c.dst, Port: c.port, Timeout: c.timeout,
		Message: "nkscript " + c.String(), SocketErrors: !c.wantPass,
	}, c.wantPass)
	if err != nil && watch != nil && watch.Dropped() && runCtx.Err() == nil {
		res, err = datapath.ProbeResult{Reason: cut}, nil
	}
	if err != nil {
		return datapath.ProbeResult{}, 0, fmt.Errorf("%s: %w", c, err)
	}
	return res, before.Dropped, nil
}

// judge records the outcome of the probe and fails unless it is the one
// expected: delivered, or lost (and dropped by the by= program, whose
// drop counter was before).
func (c *flowCheck) judge(r *Run, rec *pendingExpectation, res datapath.ProbeResult, before uint64) error {
	if c.wantPass {
		rec.outcome(res.Delivered, res.Delivered, reasonOr(c.lostReason(res), "delivered"))
		if !res.Delivered {
			return fmt.Errorf("%s was not delivered: %s", c, withDrops(res.Reason, rec.drops, c.routeBack))
		}
		r.printf("ok: %s passed", c)
		return nil
	}
	rec.outcome(res.Delivered, !res.Delivered, reasonOr(c.lostReason(res), "delivered, but it should have been dropped"))
	if res.Delivered {
		return fmt.Errorf("%s was delivered, but it should have been dropped", c)
	}
	if c.by == nil {
		if said := dropsSaid(rec.drops); said != "" {
			r.printf("ok: %s dropped %s", c, said)
			return nil
		}
		if c.routeBack != "" && c.sent {
			r.printf("ok: %s dropped: no reply, as %s", c, c.routeBack)
			return nil
		}
		if c.routeBack != "" {
			r.printf("ok: %s dropped: never sent, as %s", c, c.routeBack)
			return nil
		}
		r.printf("ok: %s dropped", c)
		return nil
	}
	after, err := c.by.p.Stats()
	if err != nil {
		return fmt.Errorf("by=%s: %w", c.by, err)
	}
	if after.Dropped <= before {
		rec.outcome(false, false, fmt.Sprintf("%s, but %s dropped nothing (drop counter stayed at %d): something else lost it", res.Reason, c.by.p.Name(), after.Dropped))
		return fmt.Errorf("%s was not delivered (%s), but %s dropped nothing (drop counter stayed at %d): something else lost it", c, res.Reason, c.by.p.Name(), after.Dropped)
	}
	r.printf("ok: %s dropped by %s", c, c.by.p.Name())
	return nil
}

// lostReason is the probe's reason, with the route the flow lacks (for
// --json; the drops are reported beside it).
func (c *flowCheck) lostReason(res datapath.ProbeResult) string {
	if c.routeBack == "" || res.Reason == "" {
		return res.Reason
	}
	return res.Reason + "; " + c.routeBack
}

func flowString(proto string, src *Netns, dst netip.Addr, port int) string {
	to := dst.String()
	if port != 0 {
		to = netip.AddrPortFrom(dst, uint16(port)).String()
	}
	return fmt.Sprintf("%s %s -> %s", proto, src, to)
}

// commandArg is a command: a string run by /bin/sh, or a list of
// arguments.
type commandArg []string

func (a *commandArg) Unpack(v starlark.Value) error {
	switch c := v.(type) {
	case starlark.String:
		if strings.TrimSpace(string(c)) == "" {
			return badArg("cmd is empty")
		}
		*a = []string{"/bin/sh", "-c", string(c)}
	case *starlark.List, starlark.Tuple:
		iter := starlark.Iterate(c)
		defer iter.Done()
		var x starlark.Value
		for iter.Next(&x) {
			s, ok := x.(starlark.String)
			if !ok {
				return badArg("cmd list items must be strings, not %s", describeValue(x))
			}
			*a = append(*a, string(s))
		}
		if len(*a) == 0 {
			return badArg("cmd is empty")
		}
	default:
		return badArg("cmd must be a string (run by /bin/sh) or a list of arguments, not %s", describeValue(v))
	}
	return nil
}

func execFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r := runOf(thread)
	var ns netnsArg
	var cmd commandArg
	if err := unpackArgs(b, args, kwargs, "ns", &ns, "cmd", &cmd); err != nil {
		return nil, err
	}
	if err := r.lab.WaitReady(r.ctxOf(thread), r.ready); err != nil {
		return nil, err
	}
	out, err := r.lab.Exec(r.ctxOf(thread), ns.ns.ns, cmd)
	if err != nil {
		return nil, err
	}
	return starlark.String(out), nil
}
