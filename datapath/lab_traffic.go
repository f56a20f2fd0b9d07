package datapath

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// WaitReady waits until every link set up since the last call is
// operationally up, so the first packets are not lost to a link that has
// no carrier yet, and until the kernel listens for IPv6 neighbour
// solicitations to the links' IPv6 addresses (see WaitOperUp).
func (l *Lab) WaitReady(ctx context.Context, timeout time.Duration) error {
	return l.WaitReadyFor(ctx, timeout, true)
}

// linkWait says what WaitReady still has to wait for on a link.
type linkWait uint8

const (
	waitOper linkWait = 1 << iota // operationally up
	waitND                        // listening for solicitations to its IPv6 addresses
)

// waitLists are the ifindexes to wait for in one namespace.
type waitLists struct{ oper, nd []int }

// WaitReadyFor is WaitReady before traffic of one family: without ipv6
// it waits only for the links to be up and leaves the IPv6 check for the
// first IPv6 traffic (or WaitReady).
func (l *Lab) WaitReadyFor(ctx context.Context, timeout time.Duration, ipv6 bool) error {
	byNs, pending := l.pendingWaits(ipv6)
	// The namespaces' links come up independently: wait for all of them
	// at once, so that a chain of namespaces costs the slowest wait, not
	// the sum.
	var wg sync.WaitGroup
	errs := make(chan error, len(byNs))
	sem := make(chan struct{}, 16)
	for ns, ls := range byNs {
		if len(ls.oper) == 0 && len(ls.nd) == 0 {
			continue
		}
		slices.Sort(ls.oper)
		slices.Sort(ls.nd)
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := l.b.WaitLinks(ctx, ns, ls.oper, ls.nd, timeout); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	done := waitOper
	if ipv6 {
		done |= waitND
	}
	l.mu.Lock()
	for _, k := range pending {
		if l.pendUp[k] &^= done; l.pendUp[k] == 0 {
			delete(l.pendUp, k)
		}
	}
	l.mu.Unlock()
	return nil
}

// pendingWaits groups what WaitReadyFor waits for by namespace.
func (l *Lab) pendingWaits(ipv6 bool) (map[*Netns]*waitLists, []*Link) {
	l.mu.Lock()
	defer l.mu.Unlock()
	byNs := map[*Netns]*waitLists{}
	var pending []*Link
	for k, what := range l.pendUp {
		pending = append(pending, k)
		// A link whose partner is down has no carrier and never will
		// until the script brings the partner up: nothing to wait for.
		if k.loop || (k.pair != nil && !k.partner().IsUp()) {
			continue
		}
		ls := byNs[k.ns]
		if ls == nil {
			ls = &waitLists{}
			byNs[k.ns] = ls
		}
		if what&waitOper != 0 {
			ls.oper = append(ls.oper, k.index)
		}
		if ipv6 && what&waitND != 0 {
			ls.nd = append(ls.nd, k.index)
		}
	}
	return byNs, pending
}

// NetnsOwning returns the namespace, among the host and the lab's own,
// that has addr assigned to one of its interfaces.
func (l *Lab) NetnsOwning(addr netip.Addr) (*Netns, error) {
	found, err := l.b.AddrOwners(addr, append(l.Namespaces(), l.host), append(l.Links(), l.Loopbacks()...))
	if err != nil {
		return nil, err
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no namespace of this lab has the address %s; add it with link.addr()", addr)
	case 1:
		return found[0], nil
	}
	names := make([]string, len(found))
	for i, ns := range found {
		names[i] = ns.name
	}
	return nil, fmt.Errorf("address %s is in several namespaces (%s); it must be unique", addr, strings.Join(names, ", "))
}

// Ping waits for the lab's links, then sends echo requests from src to
// dst (see the package's Ping).
func (l *Lab) Ping(ctx context.Context, src *Netns, dst netip.Addr, opts PingOptions, ready time.Duration) (PingResult, error) {
	if err := live(nil, src); err != nil {
		return PingResult{}, err
	}
	if err := l.WaitReadyFor(ctx, ready, dst.Is6()); err != nil {
		return PingResult{}, err
	}
	return l.b.Ping(ctx, src, dst, opts)
}

// Probe checks, after waiting for the lab's links, that traffic of one
// protocol passes (see the package's Probe); pass is what the script
// expects, for backends that cannot send.
func (l *Lab) Probe(ctx context.Context, o ProbeOptions, pass bool) (ProbeResult, error) {
	if err := live(nil, o.Src, o.DstNs); err != nil {
		return ProbeResult{}, err
	}
	return l.b.Probe(ctx, o, pass)
}

// Connect makes one client exchange with a server in the lab.
func (l *Lab) Connect(ctx context.Context, src *Netns, proto string, dst netip.AddrPort, timeout time.Duration) (ConnectResult, error) {
	if err := live(nil, src); err != nil {
		return ConnectResult{}, err
	}
	return l.b.Connect(ctx, src, proto, dst, timeout)
}

// Exec runs argv inside ns and returns its standard output. A non-zero
// exit is an error that carries the command's standard error.
func (l *Lab) Exec(ctx context.Context, ns *Netns, argv []string) (string, error) {
	if err := live(nil, ns); err != nil {
		return "", err
	}
	return l.b.Exec(ctx, ns, argv)
}

// Serve starts a server for proto ("tcp" or "udp") on port, on every
// address of ns (IPv4 and IPv6), that answers with reply; see the
// package's Serve. The server is closed with the lab.
func (l *Lab) Serve(ns *Netns, proto string, port int, reply string) (*Server, error) {
	if err := l.checkOpenLocked(); err != nil {
		return nil, err
	}
	if err := live(nil, ns); err != nil {
		return nil, err
	}
	s, err := l.b.Serve(ns, proto, port, reply)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.closers = append(l.closers, s)
	l.mu.Unlock()
	return s, nil
}

// Capture starts a capture on the devices s names; it is closed with the
// lab.
func (l *Lab) Capture(s CaptureSpec) (*Capture, error) {
	if err := l.checkOpenLocked(); err != nil {
		return nil, err
	}
	if err := live(s.Links); err != nil {
		return nil, err
	}
	if len(s.Links)+len(s.HostDevices) == 0 {
		return nil, errors.New("capture: no device to capture on")
	}
	s.Host = l.host
	c, err := l.b.Capture(s)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.closers = append(l.closers, c)
	l.mu.Unlock()
	return c, nil
}

// Trace starts the lab's tracer, once; later calls return the same one.
// Each line is also passed to every function given to Subscribe.
func (l *Lab) Trace() (*Tracer, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	if l.tracer != nil {
		return l.tracer, nil
	}
	t, err := l.b.Trace(func(r Record) error {
		_, err := l.record(r)
		return err
	})
	if err != nil {
		return nil, err
	}
	l.tracer = t
	l.closers = append(l.closers, t)
	return t, nil
}

// Note passes text to the backend's reader: for the shell backend, a
// comment in the commands it writes; the kernel has no reader.
func (l *Lab) Note(text string) { l.b.Note(text) }

// Pause reports whether the run can stop for the user to look around; a
// dry run notes says instead.
func (l *Lab) Pause(says string) bool { return l.b.Pause(says) }

// Check reports the script's own failed check (fail()): an error, or nil
// where the backend's checks see made-up results (a dry run).
func (l *Lab) Check(pos, msg string) error { return l.b.Check(pos, msg) }
