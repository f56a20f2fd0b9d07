package datapath

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// Defaults for PingOptions and ProbeOptions fields left zero.
const (
	defaultPingCount    = 3
	defaultPingTimeout  = time.Second
	defaultPingTTL      = 64
	defaultPingSize     = 56
	defaultProbeTimeout = time.Second
)

// maxPingSize is the largest echo payload that fits in an IPv4 datagram.
const maxPingSize = 65535 - 20 - 8

// PingOptions configures Ping. Zero fields take their defaults.
type PingOptions struct {
	// Count is the number of echo requests to send; default 3.
	Count int
	// Interval is the least time between two echo requests. Zero sends
	// the next request as soon as the previous one was answered or timed
	// out.
	Interval time.Duration
	// Timeout is how long to wait for each reply; default 1s.
	Timeout time.Duration
	// TTL is the IPv4 time to live or IPv6 hop limit; default 64.
	TTL int
	// Size is the number of payload bytes after the ICMP header; default
	// 56.
	Size int
	// Dropped, if not nil, receives when a packet of the echo in flight,
	// its request or its reply, was seen dropped (see
	// DropMonitor.SignalDrops): the echo is then lost dropGrace later,
	// unless its reply comes first, and the next one goes.
	Dropped <-chan struct{}
}

// PingResult is the outcome of Ping.
type PingResult struct {
	// Sent and Received count echo requests and the replies that
	// matched them within their timeout.
	Sent, Received int
	// RTTs holds the round-trip time of each reply received, in order.
	RTTs []time.Duration
}

// Loss is the fraction of echo requests left unanswered, from 0 to 1; it
// is 0 when nothing was sent.
func (r PingResult) Loss() float64 {
	if r.Sent == 0 {
		return 0
	}
	lost := r.Sent - r.Received
	if lost < 0 {
		lost = 0
	}
	return float64(lost) / float64(r.Sent)
}

// Ping sends ICMP echo requests (ICMPv6 for an IPv6 dst) from a raw socket
// in src and counts the matching replies: same identifier and sequence
// number, same payload, sent by dst. Requests go one at a time: the next
// leaves once the previous one was answered or timed out, and no sooner than
// Interval after it.
//
// Lost replies are counted, not reported as errors: Ping fails only if it
// cannot ping at all (invalid address or options, no socket). If ctx is done
// first, Ping returns what it counted so far with ctx.Err().
func Ping(ctx context.Context, src *Netns, dst netip.Addr, opts PingOptions) (PingResult, error) {
	res, _, err := ping(ctx, src, dst, opts)
	return res, err
}

// pingNote says in words why the last echo request was not answered, when
// something more than silence was seen: a send error or an ICMP error.
type pingNote string

func ping(ctx context.Context, src *Netns, dst netip.Addr, opts PingOptions) (PingResult, pingNote, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return PingResult{}, "", err
	}
	if src == nil {
		return PingResult{}, "", errors.New("ping: no source namespace")
	}
	dst = dst.Unmap()
	if !dst.IsValid() || dst.IsUnspecified() || dst.IsMulticast() {
		return PingResult{}, "", fmt.Errorf("ping: %q is not a unicast address", dst)
	}
	if err := ctx.Err(); err != nil {
		return PingResult{}, "", err
	}

	p := &pinger{dst: dst, v6: dst.Is6(), opts: opts}
	if err := src.Do(p.open); err != nil {
		return PingResult{}, "", fmt.Errorf("ping %s from namespace %s: %w", dst, src.Name(), err)
	}
	defer p.conn.Close()
	// Cancelling ctx wakes a pending read; run checks ctx.Err() after
	// every deadline it sets, so that its own deadline cannot hide this one.
	stop := context.AfterFunc(ctx, func() { p.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	if opts.Dropped != nil {
		done := make(chan struct{})
		defer close(done)
		go p.cutOnDrops(opts.Dropped, done)
	}

	err = p.run(ctx)
	return p.res, p.note, err
}

func (o PingOptions) withDefaults() (PingOptions, error) {
	switch {
	case o.Count < 0:
		return o, fmt.Errorf("ping: count %d is negative", o.Count)
	case o.Interval < 0:
		return o, fmt.Errorf("ping: interval %v is negative", o.Interval)
	case o.Timeout < 0:
		return o, fmt.Errorf("ping: timeout %v is negative", o.Timeout)
	case o.TTL < 0 || o.TTL > 255:
		return o, fmt.Errorf("ping: ttl %d is not within 1..255", o.TTL)
	case o.Size < 0 || o.Size > maxPingSize:
		return o, fmt.Errorf("ping: size %d is not within 0..%d", o.Size, maxPingSize)
	}
	if o.Count == 0 {
		o.Count = defaultPingCount
	}
	if o.Timeout == 0 {
		o.Timeout = defaultPingTimeout
	}
	if o.TTL == 0 {
		o.TTL = defaultPingTTL
	}
	if o.Size == 0 {
		o.Size = defaultPingSize
	}
	return o, nil
}

type pinger struct {
	dst   netip.Addr
	v6    bool
	opts  PingOptions
	conn  *icmp.PacketConn
	to    *net.IPAddr
	id    uint16
	data  []byte
	buf   []byte
	res   PingResult
	note  pingNote
	proto int // IANA protocol number, for icmp.ParseMessage
	// cut is when the echo in flight is lost for a drop seen, in Unix
	// nanoseconds; 0 if none was seen.
	cut atomic.Int64
}

// open creates the raw socket; it runs inside the source namespace.
func (p *pinger) open() error {
	to := &net.IPAddr{IP: p.dst.AsSlice()}
	if zone := p.dst.Zone(); zone != "" {
		// Resolve the zone here: later, name lookups would run in
		// whatever namespace the calling thread is in.
		if _, err := strconv.Atoi(zone); err == nil {
			to.Zone = zone
		} else {
			ifi, err := net.InterfaceByName(zone)
			if err != nil {
				return fmt.Errorf("zone %q: %w", zone, err)
			}
			to.Zone = strconv.Itoa(ifi.Index)
		}
	}
	p.to = to

	var err error
	if p.v6 {
		p.proto = 58
		p.conn, err = icmp.ListenPacket("ip6:58", "::")
	} else {
		p.proto = 1
		p.conn, err = icmp.ListenPacket("ip4:1", "0.0.0.0")
	}
	if err != nil {
		return fmt.Errorf("open raw icmp socket: %w", err)
	}
	// A raw socket sees every ICMP message reaching the namespace: let the
	// kernel drop all but replies and the errors that may quote a request.
	if p.v6 {
		var f ipv6.ICMPFilter
		f.SetAll(true)
		f.Accept(ipv6.ICMPTypeEchoReply)
		f.Accept(ipv6.ICMPTypeDestinationUnreachable)
		f.Accept(ipv6.ICMPTypeTimeExceeded)
		f.Accept(ipv6.ICMPTypePacketTooBig)
		pc := p.conn.IPv6PacketConn()
		err = pc.SetICMPFilter(&f)
		if err == nil {
			err = pc.SetHopLimit(p.opts.TTL)
		}
	} else {
		var f ipv4.ICMPFilter
		f.SetAll(true)
		f.Accept(ipv4.ICMPTypeEchoReply)
		f.Accept(ipv4.ICMPTypeDestinationUnreachable)
		f.Accept(ipv4.ICMPTypeTimeExceeded)
		pc := p.conn.IPv4PacketConn()
		err = pc.SetICMPFilter(&f)
		if err == nil {
			err = pc.SetTTL(p.opts.TTL)
		}
	}
	if err != nil {
		p.conn.Close()
		return fmt.Errorf("configure raw icmp socket: %w", err)
	}

	var id [2]byte
	if _, err := rand.Read(id[:]); err != nil {
		p.conn.Close()
		return err
	}
	p.id = binary.BigEndian.Uint16(id[:])
	p.data = make([]byte, p.opts.Size)
	if _, err := rand.Read(p.data); err != nil {
		p.conn.Close()
		return err
	}
	// Room for the largest reply, and for an IPv4 header should the
	// kernel leave one.
	p.buf = make([]byte, 65536+60)
	return nil
}

func (p *pinger) run(ctx context.Context) error {
	var last time.Time
	for i := range p.opts.Count {
		if i > 0 && p.opts.Interval > 0 {
			if err := sleepCtx(ctx, time.Until(last.Add(p.opts.Interval))); err != nil {
				return err
			}
		}
		seq := uint16(i + 1)
		p.forgetDrops()
		var err error
		last, err = p.send(seq)
		if err != nil {
			return err
		}
		p.res.Sent++
		if p.note != "" {
			// The request never left: there is nothing to wait for.
			continue
		}
		if err := p.await(ctx, seq, last); err != nil {
			return err
		}
	}
	return nil
}

// send writes echo request seq. A send the network refused (no route, say)
// is a lost request, recorded in p.note, not an error.
func (p *pinger) send(seq uint16) (time.Time, error) {
	var typ icmp.Type = ipv4.ICMPTypeEcho
	if p.v6 {
		typ = ipv6.ICMPTypeEchoRequest
	}
	m := icmp.Message{Type: typ, Body: &icmp.Echo{ID: int(p.id), Seq: int(seq), Data: p.data}}
	// For ICMPv6 the kernel computes the checksum.
	b, err := m.Marshal(nil)
	if err != nil {
		return time.Time{}, fmt.Errorf("ping: marshal echo request: %w", err)
	}
	p.note = ""
	now := time.Now()
	if _, err := p.conn.WriteTo(b, p.to); err != nil {
		var errno syscall.Errno
		if !errors.As(err, &errno) {
			return now, fmt.Errorf("ping %s: %w", p.dst, err)
		}
		p.note = pingNote(socketErrorReason("send to", p.dst.String(), errno))
	}
	return now, nil
}

// await reads until the reply to seq arrives, an ICMP error quoting it
// arrives, or the timeout passes.
func (p *pinger) await(ctx context.Context, seq uint16, sent time.Time) error {
	for {
		deadline := p.deadline(sent)
		if err := p.conn.SetReadDeadline(deadline); err != nil {
			return fmt.Errorf("ping: %w", err)
		}
		if p.deadline(sent) != deadline {
			// A drop was seen meanwhile: its earlier deadline may have
			// been set before this one.
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		n, from, err := p.conn.ReadFrom(p.buf)
		now := time.Now()
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return ctxErr
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil
			}
			var errno syscall.Errno
			if errors.As(err, &errno) {
				// An error queued on the socket, such as a
				// delayed unreachable: the request is lost.
				p.note = pingNote(socketErrorReason("send to", p.dst.String(), errno))
				return nil
			}
			return fmt.Errorf("ping: read reply: %w", err)
		}
		fromIP, ok := ipAddrOf(from)
		if !ok {
			continue
		}
		switch p.match(p.buf[:n], fromIP, seq) {
		case replyOK:
			p.res.Received++
			p.res.RTTs = append(p.res.RTTs, now.Sub(sent))
			return nil
		case replyError:
			return nil
		}
	}
}

// cutOnDrops brings the deadline of the echo in flight forward to
// dropGrace from now each time dropped receives, until done is closed.
func (p *pinger) cutOnDrops(dropped <-chan struct{}, done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case <-dropped:
		}
		cut := time.Now().Add(dropGrace)
		p.cut.Store(cut.UnixNano())
		p.conn.SetReadDeadline(cut)
	}
}

// forgetDrops clears the drops seen of earlier echoes before the next
// one is sent.
func (p *pinger) forgetDrops() {
	if p.opts.Dropped == nil {
		return
	}
	select {
	case <-p.opts.Dropped:
	default:
	}
	p.cut.Store(0)
}

// deadline is when the echo sent at sent is lost: after the timeout, or
// sooner if one of its packets was seen dropped.
func (p *pinger) deadline(sent time.Time) time.Time {
	d := sent.Add(p.opts.Timeout)
	// A drop seen before the echo was sent was an earlier echo's.
	if c := p.cut.Load(); c > sent.Add(dropGrace).UnixNano() && c < d.UnixNano() {
		return time.Unix(0, c)
	}
	return d
}

type replyKind int

const (
	replyOther replyKind = iota // not ours, or not for this request
	replyOK                     // the reply to this request
	replyError                  // an ICMP error quoting this request
)

func (p *pinger) match(b []byte, from netip.Addr, seq uint16) replyKind {
	if !p.v6 && len(b) >= 20 && b[0]>>4 == 4 {
		// Some kernels leave the IPv4 header on raw reads.
		hl := int(b[0]&0x0f) * 4
		if hl < 20 || hl > len(b) {
			return replyOther
		}
		b = b[hl:]
	}
	m, err := icmp.ParseMessage(p.proto, b)
	if err != nil {
		return replyOther
	}
	switch body := m.Body.(type) {
	case *icmp.Echo:
		if m.Type != ipv4.ICMPTypeEchoReply && m.Type != ipv6.ICMPTypeEchoReply {
			return replyOther
		}
		if from != p.dst.WithZone("") || uint16(body.ID) != p.id || uint16(body.Seq) != seq || !bytes.Equal(body.Data, p.data) {
			return replyOther
		}
		return replyOK
	case *icmp.DstUnreach:
		if p.quotesRequest(body.Data, seq) {
			p.note = pingNote(fmt.Sprintf("%s reported %s", from, icmpErrorText(m)))
			return replyError
		}
	case *icmp.TimeExceeded:
		if p.quotesRequest(body.Data, seq) {
			p.note = pingNote(fmt.Sprintf("%s reported %s", from, icmpErrorText(m)))
			return replyError
		}
	case *icmp.PacketTooBig:
		if p.quotesRequest(body.Data, seq) {
			p.note = pingNote(fmt.Sprintf("%s reported packet too big (mtu %d)", from, body.MTU))
			return replyError
		}
	}
	return replyOther
}

// quotesRequest reports whether the packet quoted in an ICMP error is
// echo request seq of this pinger.
func (p *pinger) quotesRequest(q []byte, seq uint16) bool {
	var dst netip.Addr
	if p.v6 {
		if len(q) < 40+8 || q[0]>>4 != 6 || q[6] != 58 {
			return false
		}
		dst = netip.AddrFrom16([16]byte(q[24:40]))
		q = q[40:]
	} else {
		if len(q) < 20 || q[0]>>4 != 4 {
			return false
		}
		hl := int(q[0]&0x0f) * 4
		if hl < 20 || len(q) < hl+8 || q[9] != 1 {
			return false
		}
		dst = netip.AddrFrom4([4]byte(q[16:20]))
		q = q[hl:]
	}
	return dst == p.dst.WithZone("") &&
		binary.BigEndian.Uint16(q[4:6]) == p.id &&
		binary.BigEndian.Uint16(q[6:8]) == seq
}

func icmpErrorText(m *icmp.Message) string {
	switch m.Type {
	case ipv4.ICMPTypeTimeExceeded, ipv6.ICMPTypeTimeExceeded:
		return "time to live exceeded"
	case ipv4.ICMPTypeDestinationUnreachable:
		switch m.Code {
		case 0:
			return "network unreachable"
		case 1:
			return "host unreachable"
		case 3:
			return "port unreachable"
		case 9, 10, 13:
			return "destination administratively prohibited"
		}
	case ipv6.ICMPTypeDestinationUnreachable:
		switch m.Code {
		case 0:
			return "no route to destination"
		case 1:
			return "destination administratively prohibited"
		case 3:
			return "address unreachable"
		case 4:
			return "port unreachable"
		case 5, 6:
			return "destination prohibited by policy"
		}
	}
	return fmt.Sprintf("destination unreachable (code %d)", m.Code)
}

// socketErrorReason puts an error the kernel gave a socket's op ("send
// to", "connect to") for dst in words. The errors of a local sender's
// route lookup name the type of route; Lab.RouteBack says which
// namespace's route it was.
func socketErrorReason(op, dst string, errno syscall.Errno) string {
	switch errno {
	case unix.EINVAL:
		// What a blackhole route gives local senders.
		return fmt.Sprintf("%s %s: dropped by a blackhole route", op, dst)
	case unix.EACCES:
		return fmt.Sprintf("%s %s: prohibited (%v)", op, dst, errno)
	case unix.EPERM:
		// A netfilter rule or a cgroup program refused the packet.
		return fmt.Sprintf("%s %s: not permitted by a filter (%v)", op, dst, errno)
	}
	return fmt.Sprintf("%s %s: %v", op, dst, errno)
}

func ipAddrOf(a net.Addr) (netip.Addr, bool) {
	var ip net.IP
	switch a := a.(type) {
	case *net.IPAddr:
		ip = a.IP
	case *net.UDPAddr:
		ip = a.IP
	default:
		return netip.Addr{}, false
	}
	addr, ok := netip.AddrFromSlice(ip)
	return addr.Unmap(), ok
}

// sleepCtx waits for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
