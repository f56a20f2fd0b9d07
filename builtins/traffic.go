package builtins

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nkscript/nkscript/datapath"
	"go.starlark.net/starlark"
)

// toDuration accepts "1s", "250ms", or a number of seconds.
func toDuration(fn, param string, v starlark.Value, def time.Duration) (time.Duration, error) {
	var d time.Duration
	switch x := v.(type) {
	case nil, starlark.NoneType:
		return def, nil
	case starlark.String:
		var err error
		d, err = time.ParseDuration(string(x))
		if err != nil {
			return 0, fmt.Errorf("%s: %s=%q is not a duration; write it like \"1s\" or \"250ms\"", fn, param, string(x))
		}
	case starlark.Int:
		n, ok := x.Int64()
		if !ok || n > 86400 || n < -86400 {
			return 0, fmt.Errorf("%s: %s=%s seconds is out of range; use up to 86400", fn, param, x)
		}
		d = time.Duration(n) * time.Second
	case starlark.Float:
		if math.IsNaN(float64(x)) || float64(x) > 86400 {
			return 0, fmt.Errorf("%s: %s=%v seconds is not usable", fn, param, x)
		}
		d = time.Duration(float64(x) * float64(time.Second))
	default:
		return 0, fmt.Errorf("%s: %s must be a duration string like \"1s\", not %s", fn, param, describeValue(v))
	}
	if d <= 0 {
		return 0, fmt.Errorf("%s: %s=%s must be positive", fn, param, v)
	}
	return d, nil
}

// PingResult is what ping() returns. Its string form leaves out the
// round-trip times so that printed output is deterministic.
type PingResult struct {
	object
	dst netip.Addr
	src *Netns
	res datapath.PingResult
}

func (p *PingResult) String() string {
	return fmt.Sprintf("ping(%s from %s: %d sent, %d received, %s loss)", p.dst, p.src, p.res.Sent, p.res.Received, p.lossString())
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
	var dst string
	var srcv, timeout starlark.Value
	count, ttl := 3, 64
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "dst", &dst, "src?", &srcv, "count?", &count, "timeout?", &timeout, "ttl?", &ttl); err != nil {
		return nil, err
	}
	if ttl < 1 || ttl > 255 {
		return nil, fmt.Errorf("%s: ttl=%d is out of range 1..255", b.Name(), ttl)
	}
	addr, err := parseAddr(b.Name(), "dst", dst)
	if err != nil {
		return nil, err
	}
	src, err := toNetns(b.Name(), "src", srcv, r.host)
	if err != nil {
		return nil, err
	}
	if count < 1 || count > 100000 {
		return nil, fmt.Errorf("%s: count=%d is out of range 1..100000", b.Name(), count)
	}
	to, err := toDuration(b.Name(), "timeout", timeout, time.Second)
	if err != nil {
		return nil, err
	}
	if r.lab.DryRun() {
		// A dry run cannot know: it writes the ping and assumes replies.
		r.lab.DryPing(src.ns, addr, count, ttl)
		return &PingResult{dst: addr, src: src, res: datapath.PingResult{Sent: count, Received: count}}, nil
	}
	if err := r.lab.WaitReadyFor(r.ctxOf(thread), r.ready, addr.Is6()); err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	defer r.lab.Timed(datapath.PhaseChecks)()
	res, err := datapath.Ping(r.ctxOf(thread), src.ns, addr, datapath.PingOptions{Count: count, Timeout: to, TTL: ttl})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return &PingResult{dst: addr, src: src, res: res}, nil
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
	if r := runOf(thread); err != nil && r.pauseOnFail && !r.pausedOnFail && r.ctxOf(thread).Err() == nil {
		r.pausedOnFail = true
		r.pause(thread, "the expectation failed: "+err.Error())
	}
	return v, err
}

func expectFlow(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple, wantPass bool) (starlark.Value, error) {
	r := runOf(thread)
	var dst string
	proto := "tcp"
	var portv, srcv, timeout, by starlark.Value
	var err error
	if wantPass {
		err = starlark.UnpackArgs(b.Name(), args, kwargs, "dst", &dst, "port?", &portv, "proto?", &proto, "src?", &srcv, "timeout?", &timeout)
	} else {
		err = starlark.UnpackArgs(b.Name(), args, kwargs, "dst", &dst, "port?", &portv, "proto?", &proto, "src?", &srcv, "timeout?", &timeout, "by?", &by)
	}
	if err != nil {
		return nil, err
	}
	addr, err := parseAddr(b.Name(), "dst", dst)
	if err != nil {
		return nil, err
	}
	src, err := toNetns(b.Name(), "src", srcv, r.host)
	if err != nil {
		return nil, err
	}
	port := 0
	switch proto {
	case "tcp", "udp":
		p, ok := portv.(starlark.Int)
		if portv == nil || portv == starlark.None {
			return nil, fmt.Errorf("%s: proto %q needs a port, e.g. port=12345", b.Name(), proto)
		}
		n, ok2 := p.Int64()
		if !ok || !ok2 || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%s: port=%s is not a port number 1..65535", b.Name(), portv)
		}
		port = int(n)
	case "icmp":
		if portv != nil && portv != starlark.None {
			return nil, fmt.Errorf("%s: proto \"icmp\" has no ports; remove port=%s", b.Name(), portv)
		}
	default:
		return nil, fmt.Errorf("%s: proto %q is not supported; use %s", b.Name(), proto, quoteList([]string{"tcp", "udp", "icmp"}))
	}
	to, err := toDuration(b.Name(), "timeout", timeout, time.Second)
	if err != nil {
		return nil, err
	}
	var byProg *Program
	if by != nil && by != starlark.None {
		var ok bool
		if byProg, ok = by.(*Program); !ok {
			return nil, fmt.Errorf("%s: by must be a program, not %s", b.Name(), describeValue(by))
		}
	}
	dstNs, err := r.lab.NetnsOwning(addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	flow := flowString(proto, src, addr, port)
	if r.lab.DryRun() {
		r.lab.DryExpect(proto, src.ns, addr, port, wantPass)
		return starlark.None, nil
	}
	defer r.lab.Timed(datapath.PhaseChecks)()
	rec := newExpectation(thread, b, proto, src, addr, port, wantPass, byProg)
	defer rec.record(&r.report)
	if err := r.lab.WaitReadyFor(r.ctxOf(thread), r.ready, addr.Is6()); err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	var before datapath.Stats
	if byProg != nil {
		if before, err = byProg.p.Stats(); err != nil {
			return nil, fmt.Errorf("%s: by=%s: %w", b.Name(), byProg, err)
		}
	}
	ctx := r.ctxOf(thread)
	var droppedEarly func() bool
	if byProg != nil {
		// Once the program has dropped a packet of the exchange and it
		// still has not arrived, waiting out the timeout proves nothing
		// more: stop early.
		var stop func()
		ctx, droppedEarly, stop = watchDrops(r.ctxOf(thread), byProg.p, before.Dropped)
		defer stop()
	}
	res, err := datapath.Probe(ctx, datapath.ProbeOptions{
		Proto: proto, Src: src.ns, DstNs: dstNs, Dst: addr, Port: port, Timeout: to,
		Message: "nkscript " + flow,
	})
	if err != nil && droppedEarly != nil && droppedEarly() && r.ctxOf(thread).Err() == nil {
		res, err = datapath.ProbeResult{Reason: "dropped by " + byProg.p.Name()}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", b.Name(), flow, err)
	}
	if wantPass {
		rec.outcome(res.Delivered, res.Delivered, reasonOr(res.Reason, "delivered"))
		if !res.Delivered {
			return nil, fmt.Errorf("%s: %s was not delivered: %s", b.Name(), flow, res.Reason)
		}
		r.printf("ok: %s passed", flow)
		return starlark.None, nil
	}
	rec.outcome(res.Delivered, !res.Delivered, reasonOr(res.Reason, "delivered, but it should have been dropped"))
	if res.Delivered {
		return nil, fmt.Errorf("%s: %s was delivered, but it should have been dropped", b.Name(), flow)
	}
	if byProg != nil {
		after, err := byProg.p.Stats()
		if err != nil {
			return nil, fmt.Errorf("%s: by=%s: %w", b.Name(), byProg, err)
		}
		if after.Dropped <= before.Dropped {
			rec.outcome(false, false, fmt.Sprintf("%s, but %s dropped nothing (drop counter stayed at %d): something else lost it", res.Reason, byProg.p.Name(), after.Dropped))
			return nil, fmt.Errorf("%s: %s was not delivered (%s), but %s dropped nothing (drop counter stayed at %d): something else lost it", b.Name(), flow, res.Reason, byProg.p.Name(), after.Dropped)
		}
		r.printf("ok: %s dropped by %s", flow, byProg.p.Name())
		return starlark.None, nil
	}
	r.printf("ok: %s dropped", flow)
	return starlark.None, nil
}

func flowString(proto string, src *Netns, dst netip.Addr, port int) string {
	to := dst.String()
	if port != 0 {
		to = netip.AddrPortFrom(dst, uint16(port)).String()
	}
	return fmt.Sprintf("%s %s -> %s", proto, src, to)
}

func execFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	r := runOf(thread)
	var nsv, cmd starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "ns", &nsv, "cmd", &cmd); err != nil {
		return nil, err
	}
	ns, err := toNetns(b.Name(), "ns", nsv, nil)
	if err != nil {
		return nil, err
	}
	if ns == nil {
		return nil, fmt.Errorf("%s: ns is None; pass host or a netns", b.Name())
	}
	var argv []string
	switch c := cmd.(type) {
	case starlark.String:
		if strings.TrimSpace(string(c)) == "" {
			return nil, fmt.Errorf("%s: cmd is empty", b.Name())
		}
		argv = []string{"/bin/sh", "-c", string(c)}
	case *starlark.List, starlark.Tuple:
		iter := starlark.Iterate(c)
		defer iter.Done()
		var x starlark.Value
		for iter.Next(&x) {
			s, ok := x.(starlark.String)
			if !ok {
				return nil, fmt.Errorf("%s: cmd list items must be strings, not %s", b.Name(), describeValue(x))
			}
			argv = append(argv, string(s))
		}
		if len(argv) == 0 {
			return nil, fmt.Errorf("%s: cmd is empty", b.Name())
		}
	default:
		return nil, fmt.Errorf("%s: cmd must be a string (run by /bin/sh) or a list of arguments, not %s", b.Name(), describeValue(cmd))
	}
	if err := r.lab.WaitReady(r.ctxOf(thread), r.ready); err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	out, err := r.lab.Exec(r.ctxOf(thread), ns.ns, argv)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return starlark.String(out), nil
}

// dropGrace is how long a probe may still complete after the watched
// program dropped one of its packets; TCP retransmits only after 1 s.
const dropGrace = 50 * time.Millisecond

// watchDrops returns a context that is cancelled dropGrace after prog's
// drop counter rises above before, and a function that reports whether
// that happened.
func watchDrops(parent context.Context, prog *datapath.Program, before uint64) (context.Context, func() bool, func()) {
	ctx, cancel := context.WithCancel(parent)
	var fired atomic.Bool
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if s, err := prog.Stats(); err == nil && s.Dropped > before {
				select {
				case <-done:
					return
				case <-time.After(dropGrace):
				}
				fired.Store(true)
				cancel()
				return
			}
		}
	}()
	return ctx, fired.Load, func() { close(done); cancel() }
}
