package datapath

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ProbeOptions configures Probe.
type ProbeOptions struct {
	// Proto is "tcp", "udp" or "icmp".
	Proto string
	// Src is the namespace the probe is sent from.
	Src *Netns
	// DstNs is the namespace that owns Dst, where the echo listener
	// runs. It is required for tcp and udp; for icmp, where the kernel
	// answers, it is optional and only used to check that Dst is there.
	DstNs *Netns
	// Dst is the address probed.
	Dst netip.Addr
	// Port is the tcp or udp port the listener binds; zero picks a free
	// one.
	Port int
	// Timeout bounds the whole exchange; default 1s.
	Timeout time.Duration
	// Message is the payload echoed back; default a random one.
	Message string
	// SocketErrors has the udp client report the ICMP errors it gets
	// (IP_RECVERR): a host or network unreachable ends the exchange at
	// once, where UDP would otherwise ignore it and wait out the
	// timeout. For a check that expects the flow lost; tcp and icmp
	// end on such errors anyway.
	SocketErrors bool
}

// ProbeResult is the outcome of Probe.
type ProbeResult struct {
	// Delivered is true if the message reached the listener and its echo
	// came back intact.
	Delivered bool
	// Assumed is true if nothing was sent: a backend that changes nothing
	// took the outcome the script expects.
	Assumed bool
	// Reason says why the probe was not delivered; empty if it was.
	Reason string
}

// Probe checks that traffic of one protocol passes from o.Src to o.Dst and
// back. For tcp it listens on Dst:Port in DstNs, connects from a socket in
// Src, sends Message and waits for the listener to echo it; for udp it does
// the same with one datagram each way; for icmp it sends one echo request
// with Ping.
//
// A probe that does not get its echo back is not an error: Delivered is
// false and Reason says what happened. Probe fails only when it cannot
// probe: bad options, Dst not an address in DstNs, the port already taken,
// no socket; or ctx done first, returning ctx.Err(). The listener and every
// socket are closed before Probe returns.
func Probe(ctx context.Context, o ProbeOptions) (ProbeResult, error) {
	proto := strings.ToLower(o.Proto)
	if o.Src == nil {
		return ProbeResult{}, errors.New("probe: no source namespace")
	}
	dst := o.Dst.Unmap()
	if !dst.IsValid() || dst.IsUnspecified() || dst.IsMulticast() {
		return ProbeResult{}, fmt.Errorf("probe: %q is not a unicast address", o.Dst)
	}
	if o.Timeout < 0 {
		return ProbeResult{}, fmt.Errorf("probe: timeout %v is negative", o.Timeout)
	}
	if o.Timeout == 0 {
		o.Timeout = defaultProbeTimeout
	}
	switch proto {
	case "tcp", "udp":
		if o.DstNs == nil {
			return ProbeResult{}, fmt.Errorf("probe %s: no destination namespace", proto)
		}
		if o.Port < 0 || o.Port > 65535 {
			return ProbeResult{}, fmt.Errorf("probe %s: port %d is not within 0..65535", proto, o.Port)
		}
		if o.Message == "" {
			o.Message = randomMessage()
		}
		if proto == "udp" && len(o.Message) > 65507 {
			return ProbeResult{}, fmt.Errorf("probe udp: message of %d bytes does not fit in a datagram", len(o.Message))
		}
	case "icmp":
	default:
		return ProbeResult{}, fmt.Errorf("probe: unknown protocol %q (want tcp, udp or icmp)", o.Proto)
	}
	if err := ctx.Err(); err != nil {
		return ProbeResult{}, err
	}
	if o.DstNs != nil {
		if err := checkLocalAddr(o.DstNs, dst); err != nil {
			return ProbeResult{}, fmt.Errorf("probe %s: %w", proto, err)
		}
	}
	o.Dst = dst

	switch proto {
	case "tcp":
		return probeTCP(ctx, o)
	case "udp":
		return probeUDP(ctx, o)
	}
	return probeICMP(ctx, o)
}

func randomMessage() string {
	var b [8]byte
	rand.Read(b[:])
	return "nkscript probe " + hex.EncodeToString(b[:])
}

func probeICMP(ctx context.Context, o ProbeOptions) (ProbeResult, error) {
	res, note, err := ping(ctx, o.Src, o.Dst, PingOptions{Count: 1, Timeout: o.Timeout})
	if err != nil {
		return ProbeResult{}, fmt.Errorf("probe icmp: %w", err)
	}
	if res.Received == 1 {
		return ProbeResult{Delivered: true}, nil
	}
	if note != "" {
		return ProbeResult{Reason: string(note)}, nil
	}
	return ProbeResult{Reason: fmt.Sprintf("no reply from %s within %v", o.Dst, o.Timeout)}, nil
}

// addrNotLocalError says that an address is not one of a namespace's.
type addrNotLocalError struct {
	addr netip.Addr
	ns   string
}

func (e *addrNotLocalError) Error() string {
	return fmt.Sprintf("%s is not an address in namespace %s", e.addr, e.ns)
}

func (e *addrNotLocalError) Unwrap() error { return ErrNotFound }

// checkLocalAddr fails unless a is assigned in ns and usable: assigned to
// a link and past duplicate address detection, or local by route (say
// 127.0.0.2).
func checkLocalAddr(ns *Netns, a netip.Addr) error {
	family := netlink.FAMILY_V4
	if a.Is6() {
		family = netlink.FAMILY_V6
	}
	addrs, err := ns.addrList(family)
	if err != nil {
		return fmt.Errorf("list addresses in namespace %s: %w", ns.Name(), err)
	}
	for _, ad := range addrs {
		ip, ok := netip.AddrFromSlice(ad.IP)
		if !ok || ip.Unmap() != a.WithZone("") {
			continue
		}
		switch {
		case ad.Flags&unix.IFA_F_DADFAILED != 0:
			return fmt.Errorf("%s in namespace %s failed duplicate address detection", a, ns.Name())
		case ad.Flags&unix.IFA_F_TENTATIVE != 0:
			return fmt.Errorf("%s in namespace %s is tentative: duplicate address detection has not finished (add it with nodad)", a, ns.Name())
		}
		return nil
	}
	// Not on any link; the kernel may still treat it as local.
	err = ns.Do(func() error {
		c, err := net.ListenPacket("udp", netip.AddrPortFrom(a, 0).String())
		if err != nil {
			return err
		}
		return c.Close()
	})
	if err != nil {
		return &addrNotLocalError{addr: a, ns: ns.Name()}
	}
	return nil
}

// freebind lets a listener bind an address of its namespace whose link is
// down, so that a probe to it times out instead of failing to start.
func freebind(v6 bool) func(network, address string, c syscall.RawConn) error {
	return setIPOption(v6, unix.IP_FREEBIND, unix.IPV6_FREEBIND, "freebind")
}

// setRecvErr has a socket report the ICMP errors it gets.
func setRecvErr(v6 bool) func(network, address string, c syscall.RawConn) error {
	return setIPOption(v6, unix.IP_RECVERR, unix.IPV6_RECVERR, "recverr")
}

// setIPOption returns a dialer or listener Control that turns on an IP
// socket option: opt4 on an IPv4 socket, opt6 on an IPv6 one.
func setIPOption(v6 bool, opt4, opt6 int, name string) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if v6 {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, opt6, 1)
			} else {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, opt4, 1)
			}
		})
		if err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("set %s: %w", name, serr)
		}
		return nil
	}
}

// listenErr explains an error from binding the listener.
func listenErr(proto string, o ProbeOptions, err error) error {
	if errors.Is(err, unix.EADDRINUSE) {
		return fmt.Errorf("probe %s: port %d on %s is already in use in namespace %s", proto, o.Port, o.Dst, o.DstNs.Name())
	}
	return fmt.Errorf("probe %s: listen on %s in namespace %s: %w", proto, netip.AddrPortFrom(o.Dst, uint16(o.Port)), o.DstNs.Name(), err)
}

// dialFrom connects a socket of src to to; with recvErr the socket
// reports the ICMP errors it gets.
func dialFrom(ctx context.Context, src *Netns, network string, to netip.AddrPort, recvErr bool) (net.Conn, error) {
	var c net.Conn
	err := src.Do(func() error {
		var d net.Dialer
		if recvErr {
			d.Control = setRecvErr(to.Addr().Is6())
		}
		var err error
		c, err = d.DialContext(ctx, network, to.String())
		return err
	})
	return c, err
}

// listenIn opens the probe's listener on o.Dst:o.Port in o.DstNs.
func listenIn[L any](ctx context.Context, o ProbeOptions, proto string, listen func(addr string) (L, error)) (L, error) {
	var l L
	err := o.DstNs.Do(func() error {
		var err error
		l, err = listen(netip.AddrPortFrom(o.Dst, uint16(o.Port)).String())
		return err
	})
	if err != nil && ctx.Err() != nil {
		return l, ctx.Err()
	}
	if err != nil {
		return l, listenErr(proto, o, err)
	}
	return l, nil
}

func probeTCP(ctx context.Context, o ProbeOptions) (ProbeResult, error) {
	deadline := time.Now().Add(o.Timeout)
	lc := net.ListenConfig{Control: freebind(o.Dst.Is6())}
	// Plain TCP, whatever Go's default: what a probe tests should not
	// depend on the Go release.
	lc.SetMultipathTCP(false)
	ln, err := listenIn(ctx, o, "tcp", func(addr string) (net.Listener, error) { return lc.Listen(ctx, "tcp", addr) })
	if err != nil {
		return ProbeResult{}, err
	}
	to := netip.AddrPortFrom(o.Dst, uint16(ln.Addr().(*net.TCPAddr).Port))
	msg := []byte(o.Message)

	// Before returning, close the listener and whatever it accepted, and
	// wait for the goroutine serving it.
	stopCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		stop()
		ln.Close()
		wg.Wait()
	}()
	wg.Go(func() { tcpEchoOnce(stopCtx, ln, len(msg), deadline) })

	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	c, err := dialFrom(dctx, o.Src, "tcp", to, false)
	if err != nil {
		if ctx.Err() != nil {
			return ProbeResult{}, ctx.Err()
		}
		if isTimeout(err) {
			return ProbeResult{Reason: fmt.Sprintf("connect to %s timed out after %v", to, o.Timeout)}, nil
		}
		var errno syscall.Errno
		if errors.As(err, &errno) {
			return ProbeResult{Reason: socketErrorReason("connect to", to.String(), errno)}, nil
		}
		return ProbeResult{}, fmt.Errorf("probe tcp: connect from namespace %s: %w", o.Src.Name(), err)
	}
	defer c.Close()
	defer context.AfterFunc(dctx, func() { c.SetDeadline(time.Unix(1, 0)) })()
	if err := c.SetDeadline(deadline); err != nil {
		return ProbeResult{}, fmt.Errorf("probe tcp: %w", err)
	}
	return echoResult(ctx, o, to, c, msg)
}

// tcpEchoOnce accepts one connection, reads n bytes and writes them back.
func tcpEchoOnce(ctx context.Context, ln net.Listener, n int, deadline time.Time) {
	ln.(*net.TCPListener).SetDeadline(deadline)
	c, err := ln.Accept()
	if err != nil {
		return
	}
	defer c.Close()
	defer context.AfterFunc(ctx, func() { c.Close() })()
	c.SetDeadline(deadline)
	buf := make([]byte, n)
	if _, err := io.ReadFull(c, buf); err != nil {
		return
	}
	// Write, then close first: the TIME_WAIT stays with the listener's
	// address, which SO_REUSEADDR lets the next probe bind again.
	c.Write(buf)
}

func probeUDP(ctx context.Context, o ProbeOptions) (ProbeResult, error) {
	deadline := time.Now().Add(o.Timeout)
	lc := net.ListenConfig{Control: freebind(o.Dst.Is6())}
	pc, err := listenIn(ctx, o, "udp", func(addr string) (net.PacketConn, error) { return lc.ListenPacket(ctx, "udp", addr) })
	if err != nil {
		return ProbeResult{}, err
	}
	to := netip.AddrPortFrom(o.Dst, uint16(pc.LocalAddr().(*net.UDPAddr).Port))

	var wg sync.WaitGroup
	defer func() {
		pc.Close()
		wg.Wait()
	}()
	wg.Go(func() { udpEcho(pc, deadline) })

	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	c, err := dialFrom(dctx, o.Src, "udp", to, o.SocketErrors)
	if err != nil {
		if ctx.Err() != nil {
			return ProbeResult{}, ctx.Err()
		}
		var errno syscall.Errno
		if errors.As(err, &errno) {
			// Connecting a UDP socket only looks up the route.
			return ProbeResult{Reason: socketErrorReason("send to", to.String(), errno)}, nil
		}
		return ProbeResult{}, fmt.Errorf("probe udp: socket in namespace %s: %w", o.Src.Name(), err)
	}
	defer c.Close()
	defer context.AfterFunc(dctx, func() { c.SetDeadline(time.Unix(1, 0)) })()
	if err := c.SetDeadline(deadline); err != nil {
		return ProbeResult{}, fmt.Errorf("probe udp: %w", err)
	}
	return echoResult(ctx, o, to, c, []byte(o.Message))
}

// udpEcho sends every datagram it reads back to its sender until pc is
// closed or the deadline passes.
func udpEcho(pc net.PacketConn, deadline time.Time) {
	pc.SetDeadline(deadline)
	buf := make([]byte, 65536)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		pc.WriteTo(buf[:n], from)
	}
}

// echoResult sends msg on c and checks what comes back.
func echoResult(ctx context.Context, o ProbeOptions, to netip.AddrPort, c net.Conn, msg []byte) (ProbeResult, error) {
	fail := func(format string, args ...any) (ProbeResult, error) {
		if err := ctx.Err(); err != nil {
			return ProbeResult{}, err
		}
		return ProbeResult{Reason: fmt.Sprintf(format, args...)}, nil
	}
	if _, err := c.Write(msg); err != nil {
		if isTimeout(err) {
			return fail("send to %s timed out after %v", to, o.Timeout)
		}
		var errno syscall.Errno
		if errors.As(err, &errno) {
			return fail("%s", socketErrorReason("send to", to.String(), errno))
		}
		return fail("send to %s: %v", to, err)
	}
	got := make([]byte, len(msg))
	var n int
	var err error
	if _, udp := c.(*net.UDPConn); udp {
		buf := make([]byte, 65536)
		n, err = c.Read(buf)
		got = buf[:n]
	} else {
		n, err = io.ReadFull(c, got)
		got = got[:n]
	}
	if err != nil {
		switch {
		case isTimeout(err):
			if n > 0 {
				return fail("echo from %s incomplete after %v: got %d of %d bytes", to, o.Timeout, n, len(msg))
			}
			return fail("no reply within %v", o.Timeout)
		case errors.Is(err, unix.ECONNREFUSED):
			return fail("%s: connection refused", to)
		case errors.Is(err, unix.ECONNRESET):
			return fail("connection to %s reset", to)
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return fail("%s closed the connection after %d of %d bytes", to, n, len(msg))
		}
		var errno syscall.Errno
		if errors.As(err, &errno) {
			return fail("receive from %s: %v", to, errno)
		}
		return fail("receive from %s: %v", to, err)
	}
	if !bytes.Equal(got, msg) {
		return fail("reply did not match: sent %s, got %s", quoteShort(msg), quoteShort(got))
	}
	return ProbeResult{Delivered: true}, nil
}

func quoteShort(b []byte) string {
	const max = 32
	if len(b) > max {
		return strconv.Quote(string(b[:max])) + "…"
	}
	return strconv.Quote(string(b))
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
