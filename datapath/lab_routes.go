package datapath

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
)

// RouteSpec describes a route. Dst is required; "default" is 0.0.0.0/0 or
// ::/0 depending on Via. At least one of Via and Dev must be given.
type RouteSpec struct {
	Dst   netip.Prefix
	Via   netip.Addr
	Dev   *Link
	Table int // 0 means the main table
}

func (r RouteSpec) String() string {
	var b strings.Builder
	b.WriteString(r.Dst.String())
	if r.Via.IsValid() {
		fmt.Fprintf(&b, " via %s", r.Via)
	}
	if r.Dev != nil {
		fmt.Fprintf(&b, " dev %s", r.Dev.name)
	}
	if r.Table != 0 {
		fmt.Fprintf(&b, " table %d", r.Table)
	}
	return b.String()
}

func (r RouteSpec) netlinkRoute() *netlink.Route {
	ifindex := 0
	if r.Dev != nil {
		ifindex = r.Dev.index
	}
	return newNetlinkRoute(r.Dst, r.Via, ifindex, r.Table)
}

// newNetlinkRoute is a route as netlink adds and deletes it; via may be
// invalid and ifindex 0 (none).
func newNetlinkRoute(dst netip.Prefix, via netip.Addr, ifindex, table int) *netlink.Route {
	nr := &netlink.Route{Dst: prefixToIPNet(dst), LinkIndex: ifindex, Table: table}
	if via.IsValid() {
		nr.Gw = via.AsSlice()
	}
	return nr
}

func (r RouteSpec) check(ns *Netns) error {
	if !r.Dst.IsValid() {
		return errors.New("route: destination is missing")
	}
	if !r.Via.IsValid() && r.Dev == nil {
		return fmt.Errorf("route %s: give via= (a gateway address) or dev= (a link)", r.Dst)
	}
	if r.Via.IsValid() && r.Via.Is4() != r.Dst.Addr().Is4() {
		return fmt.Errorf("route %s: gateway %s is of another address family", r.Dst, r.Via)
	}
	if r.Dev != nil && r.Dev.ns != ns {
		return fmt.Errorf("route %s: link %s is in namespace %s, not %s", r.Dst, r.Dev.name, r.Dev.ns.name, ns.name)
	}
	return nil
}

// AddRoute adds a route in ns. Routes in a namespace the lab did not
// create are journaled and removed on Close.
func (l *Lab) AddRoute(ns *Netns, r RouteSpec) error {
	if err := l.checkOpenLocked(); err != nil {
		return err
	}
	if err := live([]*Link{r.Dev}, ns); err != nil {
		return err
	}
	if err := r.check(ns); err != nil {
		return err
	}
	if err := l.b.AddRoute(ns, r); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.owned[ns.id] == ns {
		return nil
	}
	rec := &RouteRecord{NS: ns.id, Route: r.String(), Dst: r.Dst.String(), Table: r.Table}
	if r.Via.IsValid() {
		rec.Via = r.Via.String()
	}
	if r.Dev != nil {
		rec.Ifindex = r.Dev.index
	}
	if _, err := l.record(rec); err != nil {
		return err
	}
	return nil
}

// sysctlPath maps "net.ipv4.ip_forward" to /proc/sys/net/ipv4/ip_forward.
func sysctlPath(key string) (string, error) {
	if key == "" || strings.Contains(key, "..") || strings.ContainsAny(key, " \t\n\x00") || strings.HasPrefix(key, "/") {
		return "", fmt.Errorf("sysctl key %q is not valid; write it like net.ipv4.ip_forward", key)
	}
	if !strings.HasPrefix(key, "net.") && !strings.HasPrefix(key, "net/") {
		return "", fmt.Errorf("sysctl key %q: only network (net.*) settings belong to a namespace", key)
	}
	// As sysctl(8) reads keys: when the first separator is '/', dots are
	// literal (net/ipv4/conf/v0.1/forwarding); otherwise '.' and '/'
	// swap roles (net.ipv4.conf.v0/1.forwarding).
	orig := key
	if i := strings.IndexAny(key, "./"); key[i] == '.' {
		key = strings.Map(func(r rune) rune {
			switch r {
			case '.':
				return '/'
			case '/':
				return '.'
			}
			return r
		}, key)
	}
	path := filepath.Join("/proc/sys", key)
	if !strings.HasPrefix(path, "/proc/sys/net/") {
		return "", fmt.Errorf("sysctl key %q is not valid; write it like net.ipv4.ip_forward", orig)
	}
	return path, nil
}

// ReadSysctl reads a network sysctl as seen from ns.
func ReadSysctl(ns *Netns, key string) (string, error) {
	path, err := sysctlPath(key)
	if err != nil {
		return "", err
	}
	var val string
	err = ns.doQuick(func() error {
		b, err := procRead(path)
		val = strings.TrimSpace(string(b))
		return err
	})
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("sysctl %s does not exist in namespace %s", key, ns.name)
	}
	return val, err
}

func writeSysctl(ns *Netns, key, value string) error {
	path, err := sysctlPath(key)
	if err != nil {
		return err
	}
	return ns.doQuick(func() error {
		return procWrite(path, []byte(value))
	})
}

// Sysctl sets a network sysctl in ns. In a namespace the lab did not
// create, the previous value is journaled and restored on Close, unless
// something else has changed it in the meantime.
func (l *Lab) Sysctl(ns *Netns, key, value string) error {
	if err := l.checkOpenLocked(); err != nil {
		return err
	}
	if err := live(nil, ns); err != nil {
		return err
	}
	if _, err := sysctlPath(key); err != nil {
		return err
	}
	old, err := l.b.ReadSysctl(ns, key)
	if err != nil {
		return err
	}
	var seq int
	l.mu.Lock()
	if l.owned[ns.id] != ns && old != value {
		// Journal first: a run killed right after the write still restores.
		seq, err = l.record(&SysctlRecord{NS: ns.id, Key: key, Old: old, New: value})
	}
	l.mu.Unlock()
	if err != nil {
		return err
	}
	if err := l.b.WriteSysctl(ns, key, old, value); err != nil {
		if seq != 0 {
			l.mu.Lock()
			l.journal.Undone(seq)
			l.undo = l.undo[:len(l.undo)-1]
			l.mu.Unlock()
		}
		return fmt.Errorf("sysctl %s=%s in %s: %w", key, value, ns.name, err)
	}
	if ns == l.host && value != "0" && inheritedForwarding[key] != "" {
		l.mu.Lock()
		l.inherit.set(key)
		l.mu.Unlock()
	}
	return nil
}

// inheritedForwarding are the forwarding sysctls a new namespace takes
// from the initial one (net.core.devconf_inherit_init_net), each with
// the key that turns it off there.
var inheritedForwarding = map[string]string{
	"net.ipv4.ip_forward":              "net.ipv4.ip_forward",
	"net.ipv4.conf.all.forwarding":     "net.ipv4.ip_forward",
	"net.ipv6.conf.all.forwarding":     "net.ipv6.conf.all.forwarding",
	"net.ipv6.conf.default.forwarding": "net.ipv6.conf.all.forwarding",
	"net.ipv4.conf.default.forwarding": "net.ipv4.ip_forward",
}

// forwardInheritance is what the lab knows of the forwarding its new
// namespaces inherit: a machine that forwards (any with Docker or
// Kubernetes) hands IPv4 forwarding to every new namespace, so that a
// router the script leaves without forwarding() would forward.
type forwardInheritance struct {
	known bool            // the first namespace was looked at
	on    map[string]bool // keys (net.ipv4.ip_forward, net.ipv6.conf.all.forwarding) that are on
}

func (f *forwardInheritance) set(key string) {
	if f.on == nil {
		f.on = map[string]bool{}
	}
	f.on[inheritedForwarding[key]] = true
}

// noInheritedForwarding turns off in ns, a namespace the lab just made,
// the forwarding it inherited, so that it forwards only after
// forwarding(). The first namespace says what namespaces inherit (two
// reads); later ones cost nothing unless forwarding is inherited. l.mu
// is held.
func (l *Lab) noInheritedForwarding(ns *Netns) error {
	if !l.inherit.known {
		l.inherit.known = true
		for _, key := range []string{"net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"} {
			if v, err := l.b.ReadSysctl(ns, key); err == nil && v != "" && v != "0" {
				l.inherit.set(key)
			}
		}
	}
	for key := range l.inherit.on {
		if err := l.b.WriteSysctl(ns, key, "1", "0"); err != nil {
			return fmt.Errorf("%s in %s: turn off the forwarding it inherited from the host: %w", key, ns.name, err)
		}
	}
	return nil
}

// Forwarding turns on IPv4 and IPv6 forwarding in ns.
func (l *Lab) Forwarding(ns *Netns) error {
	if err := l.Sysctl(ns, "net.ipv4.ip_forward", "1"); err != nil {
		return err
	}
	if _, err := l.b.ReadSysctl(ns, "net.ipv6.conf.all.forwarding"); err != nil {
		return nil // IPv6 disabled: nothing to forward
	}
	return l.Sysctl(ns, "net.ipv6.conf.all.forwarding", "1")
}
