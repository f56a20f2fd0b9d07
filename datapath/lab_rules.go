package datapath

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// RuleSpec describes a routing policy rule (`ip rule`): packets that
// match every selector given are looked up in Table. The family is the
// prefixes' (IPv4 when none is given).
type RuleSpec struct {
	Src, Dst netip.Prefix // invalid: any
	IIF, OIF *Link        // nil: any
	Fwmark   uint32       // 0: any
	Table    int          // required, 1..2^32-1
	Priority int          // 0: the kernel picks one
}

// V6 reports whether the rule is an IPv6 rule.
func (r RuleSpec) V6() bool {
	return (r.Src.IsValid() && r.Src.Addr().Is6()) || (r.Dst.IsValid() && r.Dst.Addr().Is6())
}

// String is the rule as `ip rule` writes its selectors.
func (r RuleSpec) String() string {
	var b strings.Builder
	for _, w := range r.words() {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(w)
	}
	return b.String()
}

// words are the rule's selectors and action as `ip rule add` takes them.
func (r RuleSpec) words() []string {
	var w []string
	if r.Src.IsValid() {
		w = append(w, "from", r.Src.String())
	}
	if r.Dst.IsValid() {
		w = append(w, "to", r.Dst.String())
	}
	if r.IIF != nil {
		w = append(w, "iif", r.IIF.name)
	}
	if r.OIF != nil {
		w = append(w, "oif", r.OIF.name)
	}
	if r.Fwmark != 0 {
		w = append(w, "fwmark", fmt.Sprintf("0x%x", r.Fwmark))
	}
	w = append(w, "table", fmt.Sprint(r.Table))
	if r.Priority != 0 {
		w = append(w, "priority", fmt.Sprint(r.Priority))
	}
	return w
}

func (r RuleSpec) check(ns *Netns) error {
	switch {
	case r.Table < 1 || int64(r.Table) > 1<<32-1:
		return fmt.Errorf("rule %s: table %d is out of range 1..4294967295", r, r.Table)
	case r.Priority < 0 || int64(r.Priority) > 1<<32-1:
		return fmt.Errorf("rule %s: priority %d is out of range 1..4294967295", r, r.Priority)
	case r.Src.IsValid() && r.Dst.IsValid() && r.Src.Addr().Is6() != r.Dst.Addr().Is6():
		return fmt.Errorf("rule %s: from and to are of different address families", r)
	}
	for _, k := range []*Link{r.IIF, r.OIF} {
		if k != nil && k.ns != ns {
			return fmt.Errorf("rule %s: link %s is in namespace %s, not %s", r, k.name, k.ns.name, ns.name)
		}
	}
	return nil
}

// netlinkRule is the rule as netlink sends it.
func (r RuleSpec) netlinkRule() *netlink.Rule {
	return newNetlinkRule(r.V6(), r.Src, r.Dst, linkName(r.IIF), linkName(r.OIF), r.Fwmark, r.Table, r.Priority)
}

// newNetlinkRule is a rule as netlink adds and deletes it, devices by
// name; src and dst may be invalid (any), priority 0 (the kernel's pick).
func newNetlinkRule(v6 bool, src, dst netip.Prefix, iif, oif string, mark uint32, table, priority int) *netlink.Rule {
	nr := netlink.NewRule()
	nr.Family = unix.AF_INET
	if v6 {
		nr.Family = unix.AF_INET6
	}
	if src.IsValid() {
		nr.Src = prefixToIPNet(src)
	}
	if dst.IsValid() {
		nr.Dst = prefixToIPNet(dst)
	}
	nr.IifName, nr.OifName, nr.Mark, nr.Table = iif, oif, mark, table
	if priority != 0 {
		nr.Priority = priority
	}
	return nr
}

// linkName is k's name, or "" for nil.
func linkName(k *Link) string {
	if k == nil {
		return ""
	}
	return k.name
}

// AddRule adds a routing policy rule in ns. Rules in a namespace the lab
// did not create are journaled and removed on Close.
func (l *Lab) AddRule(ns *Netns, r RuleSpec) error {
	if err := l.checkOpenLocked(); err != nil {
		return err
	}
	if err := live([]*Link{r.IIF, r.OIF}, ns); err != nil {
		return err
	}
	if err := r.check(ns); err != nil {
		return err
	}
	if err := l.b.AddRule(ns, r); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.owned[ns.id] == ns {
		return nil
	}
	_, err := l.record(ruleRecord(ns, r))
	return err
}

// RemoveRule removes a rule the lab added in ns.
func (l *Lab) RemoveRule(ns *Netns, r RuleSpec) error {
	if err := l.checkOpenLocked(); err != nil {
		return err
	}
	if err := live(nil, ns); err != nil {
		return err
	}
	if err := l.b.DeleteRule(ns, r); err != nil {
		return err
	}
	l.forget(func(rec Record) bool {
		rr, ok := rec.(*RuleRecord)
		return ok && rr.NS == ns.id && rr.Rule == r.String()
	})
	return nil
}

// RemoveRoute removes a route the lab added in ns.
func (l *Lab) RemoveRoute(ns *Netns, r RouteSpec) error {
	if err := l.checkOpenLocked(); err != nil {
		return err
	}
	if err := live(nil, ns); err != nil {
		return err
	}
	if err := l.b.DeleteRoute(ns, r); err != nil {
		return err
	}
	l.forget(func(rec Record) bool {
		rr, ok := rec.(*RouteRecord)
		return ok && rr.NS == ns.id && rr.Route == r.String()
	})
	return nil
}

// forget drops the undo steps whose record matches, and journals them
// undone: the script removed the object itself. (The kernel refuses a
// second route or rule the same as one that exists, so a route's or a
// rule's record matches one step.)
func (l *Lab) forget(match func(Record) bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dropRecords(match)
}

// isNoSuchObject reports whether err is what deleting a route or rule
// that is gone says.
func isNoSuchObject(err error) bool {
	return errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT)
}
