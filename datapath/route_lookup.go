package datapath

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ErrNoRoute is a route lookup that found no route.
var ErrNoRoute = errors.New("no route")

// RouteFound is what a route lookup found: the source address the
// namespace would send from, and the device and gateway it would use; or,
// in Refuses, the type of a route that carries nothing ("blackhole",
// "unreachable", "prohibit"), whose refusal is the lookup's error.
type RouteFound struct {
	Src, Via netip.Addr
	Dev      int
	Refuses  string
}

// refusingRoutes are the errors a route lookup gives for a route that
// carries nothing, by the route's type (the kernel's fib_props and
// ip6_rt_type_to_error): what a local sender's socket gets too.
var refusingRoutes = map[unix.Errno]string{
	unix.EINVAL:       "blackhole",
	unix.EHOSTUNREACH: "unreachable",
	unix.EACCES:       "prohibit",
}

// RouteLookup asks the kernel's routing of ns for dst.
func (k *kernel) RouteLookup(ns *Netns, dst netip.Addr) (RouteFound, error) {
	routes, err := nlQuery(ns, (*netlink.Handle).RouteGet, net.IP(dst.AsSlice()))
	var errno unix.Errno
	switch {
	case errors.Is(err, unix.ENETUNREACH), err == nil && len(routes) == 0:
		return RouteFound{}, ErrNoRoute
	case errors.As(err, &errno) && refusingRoutes[errno] != "":
		return RouteFound{Refuses: refusingRoutes[errno]}, nil
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
// src has none, or `netns "a" has a prohibit route to 10.0.2.2` when its
// route refuses (the socket's error, ENETUNREACH, EACCES, EHOSTUNREACH or
// EINVAL: nothing was sent); `netns "b" has no route back to 10.0.1.2`
// (or a refusing one) when the lookup of src's address in dstNs finds
// none (the kernel does not build a reply it cannot route; sent is true);
// "" if routing does not explain it or cannot be asked.
func (l *Lab) RouteBack(src, dstNs *Netns, dst netip.Addr) (said string, sent bool) {
	if src == nil || dstNs == nil || src == dstNs {
		return "", false
	}
	out, err := l.b.RouteLookup(src, dst)
	if said := routeLacking(src, dst, "", out, err); said != "" {
		return said, false
	}
	if err != nil || !out.Src.IsValid() {
		return "", false
	}
	back, err := l.b.RouteLookup(dstNs, out.Src)
	return routeLacking(dstNs, out.Src, " back", back, err), true
}

// routeLacking says that ns has no route (back) to dst, or one that
// refuses to carry; "" if the lookup found a route or failed.
func routeLacking(ns *Netns, dst netip.Addr, back string, found RouteFound, err error) string {
	switch {
	case errors.Is(err, ErrNoRoute):
		return fmt.Sprintf("netns %q has no route%s to %s", ns.name, back, dst)
	case err == nil && found.Refuses != "":
		return fmt.Sprintf("netns %q has %s %s route%s to %s", ns.name, article(found.Refuses), found.Refuses, back, dst)
	}
	return ""
}

// article is "a" or "an" before word.
func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}
