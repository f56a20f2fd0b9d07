package datapath

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ErrNoRoute is a route lookup that found no route.
var ErrNoRoute = errors.New("no route")

// RouteFound is what a route lookup found: the source address the
// namespace would send from, and the device and gateway it would use.
type RouteFound struct {
	Src, Via netip.Addr
	Dev      int
}

// RouteLookup asks the kernel's routing of ns for dst.
func (k *kernel) RouteLookup(ns *Netns, dst netip.Addr) (RouteFound, error) {
	routes, err := nlQuery(ns, (*netlink.Handle).RouteGet, net.IP(dst.AsSlice()))
	switch {
	case errors.Is(err, unix.ENETUNREACH), errors.Is(err, unix.EHOSTUNREACH), err == nil && len(routes) == 0:
		return RouteFound{}, ErrNoRoute
	case err != nil:
		return RouteFound{}, fmt.Errorf("route lookup of %s in netns %s: %w", dst, ns.name, err)
	}
	var f RouteFound
	f.Src, _ = netip.AddrFromSlice(routes[0].Src)
	f.Via, _ = netip.AddrFromSlice(routes[0].Gw)
	f.Src, f.Via, f.Dev = f.Src.Unmap(), f.Via.Unmap(), routes[0].LinkIndex
	return f, nil
}

// RouteLookup knows no routes: the recorder makes none, so it cannot say
// one is missing.
func (r *recorder) RouteLookup(ns *Netns, dst netip.Addr) (RouteFound, error) {
	return RouteFound{}, ErrNotSupported
}

// RouteBack says why a flow from src to dst, in dstNs, was lost where no
// packet of it was dropped: `netns "a" has no route to 10.0.2.2` when
// src has none (the socket's error, ENETUNREACH: nothing was sent), or
// `netns "b" has no route back to 10.0.1.2` when the lookup of src's
// address in dstNs finds none (the kernel does not build a reply it
// cannot route; sent is true); "" if routing does not explain it or
// cannot be asked.
func (l *Lab) RouteBack(src, dstNs *Netns, dst netip.Addr) (said string, sent bool) {
	if src == nil || dstNs == nil || src == dstNs {
		return "", false
	}
	out, err := l.b.RouteLookup(src, dst)
	if errors.Is(err, ErrNoRoute) {
		return fmt.Sprintf("netns %q has no route to %s", src.name, dst), false
	}
	if err != nil || !out.Src.IsValid() {
		return "", false
	}
	if _, err := l.b.RouteLookup(dstNs, out.Src); errors.Is(err, ErrNoRoute) {
		return fmt.Sprintf("netns %q has no route back to %s", dstNs.name, out.Src), true
	}
	return "", false
}
