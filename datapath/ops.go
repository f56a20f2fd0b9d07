package datapath

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
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
	nr := &netlink.Route{Dst: prefixToIPNet(r.Dst), Table: r.Table}
	if r.Via.IsValid() {
		nr.Gw = r.Via.AsSlice()
	}
	if r.Dev != nil {
		nr.LinkIndex = r.Dev.index
	}
	return nr
}

// AddRoute adds a route in ns. Routes in a namespace the lab did not
// create are journaled and removed on Close.
func (l *Lab) AddRoute(ns *Netns, r RouteSpec) error {
	defer l.Timed(PhaseRoutes)()
	if err := l.checkOpenLocked(); err != nil {
		return err
	}
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
	if err := l.fault("route " + r.String()); err != nil {
		return err
	}
	if l.sh != nil {
		l.dryRoute(ns, r)
		return nil
	}
	nr := r.netlinkRoute()
	if err := ns.nl.RouteAdd(nr); err != nil {
		switch {
		case errors.Is(err, os.ErrExist):
			return fmt.Errorf("route %s in %s: a route to %s exists already", r, ns.name, r.Dst)
		case errors.Is(err, unix.ENETUNREACH):
			return fmt.Errorf("route %s in %s: gateway %s is not on any connected network there; add an address in its subnet first", r, ns.name, r.Via)
		}
		return fmt.Errorf("route %s in %s: %w", r, ns.name, err)
	}
	if l.Owns(ns) {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e := Entry{Op: "route", NS: ns.id, Route: r.String(), Dst: r.Dst.String(), Ifindex: nr.LinkIndex, Table: r.Table}
	if r.Via.IsValid() {
		e.Via = r.Via.String()
	}
	seq, err := l.journal.Append(e)
	if err != nil {
		return err
	}
	l.push("route "+r.String(), seq, func() error {
		if err := ns.nl.RouteDel(nr); err != nil && !errors.Is(err, unix.ESRCH) && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("delete route %s: %w", r, err)
		}
		return nil
	})
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
	defer l.Timed(PhaseSysctls)()
	if err := l.checkOpenLocked(); err != nil {
		return err
	}
	if l.sh != nil {
		if _, err := sysctlPath(key); err != nil {
			return err
		}
		if err := l.fault(fmt.Sprintf("sysctl %s=%s", key, value)); err != nil {
			return err
		}
		l.drySysctl(ns, key, value)
		return nil
	}
	old, err := ReadSysctl(ns, key)
	if err != nil {
		return err
	}
	if err := l.fault(fmt.Sprintf("sysctl %s=%s", key, value)); err != nil {
		return err
	}
	if old == value {
		return nil
	}
	owned := l.Owns(ns)
	var seq int
	if !owned {
		// Journal first: a run killed right after the write still restores.
		l.mu.Lock()
		seq, err = l.journal.Append(Entry{Op: "sysctl", NS: ns.id, Key: key, Old: old, New: value})
		l.mu.Unlock()
		if err != nil {
			return err
		}
	}
	if err := writeSysctl(ns, key, value); err != nil {
		if !owned {
			l.mu.Lock()
			l.journal.Undone(seq)
			l.mu.Unlock()
		}
		return fmt.Errorf("sysctl %s=%s in %s: %w", key, value, ns.name, err)
	}
	if owned {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.push("sysctl "+key, seq, func() error { return restoreSysctl(ns, key, old, value) })
	return nil
}

func restoreSysctl(ns *Netns, key, old, set string) error {
	cur, err := ReadSysctl(ns, key)
	if err != nil {
		return err
	}
	if cur != set {
		// Someone else changed it after us: theirs wins.
		return nil
	}
	if err := writeSysctl(ns, key, old); err != nil {
		return fmt.Errorf("restore sysctl %s=%s: %w", key, old, err)
	}
	return nil
}

// Forwarding turns on IPv4 and IPv6 forwarding in ns.
func (l *Lab) Forwarding(ns *Netns) error {
	if err := l.Sysctl(ns, "net.ipv4.ip_forward", "1"); err != nil {
		return err
	}
	if l.sh != nil {
		return l.Sysctl(ns, "net.ipv6.conf.all.forwarding", "1")
	}
	if _, err := ReadSysctl(ns, "net.ipv6.conf.all.forwarding"); err != nil {
		return nil // IPv6 disabled: nothing to forward
	}
	return l.Sysctl(ns, "net.ipv6.conf.all.forwarding", "1")
}

// LoadProgram loads a BPF program; it is closed with the lab.
func (l *Lab) LoadProgram(spec ProgramSpec) (*Program, error) {
	defer l.Timed(PhasePrograms)()
	if err := l.checkOpenLocked(); err != nil {
		return nil, err
	}
	what := spec.Name
	if what == "" {
		what = spec.Path
	}
	if err := l.fault("load program " + what); err != nil {
		return nil, err
	}
	if l.sh != nil {
		return l.dryProgram(spec)
	}
	p, err := LoadProgram(spec)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.progs = append(l.progs, p)
	l.mu.Unlock()
	return p, nil
}

// Attach attaches p to a link's hook. For the netkit hooks the program is
// attached through the pair's primary device, as the kernel requires.
func (l *Lab) Attach(p *Program, k *Link, hook Hook, opts AttachOptions) (*Attachment, error) {
	defer l.Timed(PhasePrograms)()
	if err := l.checkOpenLocked(); err != nil {
		return nil, err
	}
	target := k
	switch hook {
	case HookPrimary, HookPeer:
		if k.pair == nil || k.pair.Kind != Netkit {
			return nil, fmt.Errorf("hook %q needs a netkit device, but %s is a %s; use \"ingress\" or \"egress\" (tcx)", hook, k.name, k.kindName())
		}
		target = k.pair.Primary
	}
	if err := l.fault(fmt.Sprintf("attach %s to %s %s", p.Name(), target.name, hook)); err != nil {
		return nil, err
	}
	if l.sh != nil {
		if err := checkHookType(p, hook); err != nil {
			return nil, err
		}
		return l.dryAttach(p, target, hook), nil
	}
	a, err := AttachProgram(p, target.ns, target.index, hook, opts)
	if err != nil {
		return nil, err
	}
	if a.legacy != nil && !l.noticed && l.notice != nil {
		l.noticed = true
		l.notice(fmt.Sprintf("kernel %s has no tcx (Linux ≥ 6.6): attaching ingress/egress programs as legacy tc filters (clsact + cls_bpf, direct-action) instead", KernelRelease()))
	}
	a.on = target
	l.mu.Lock()
	l.attached = append(l.attached, a)
	l.mu.Unlock()
	return a, nil
}

// Chain lists the programs on a link's tcx or netkit hook, in order; for
// netkit hooks the link may be either end of the pair.
func (l *Lab) Chain(k *Link, hook Hook) ([]string, error) {
	target := k
	switch hook {
	case HookPrimary, HookPeer:
		if k.pair == nil || k.pair.Kind != Netkit {
			return nil, fmt.Errorf("hook %q needs a netkit device, but %s is a %s", hook, k.name, k.kindName())
		}
		target = k.pair.Primary
	}
	if l.sh != nil {
		var names []string
		for _, a := range l.Attachments() {
			if a.on == target && a.hook == hook && !a.Detached() {
				names = append(names, a.prog)
			}
		}
		return names, nil
	}
	if (hook == HookIngress || hook == HookEgress) && errors.Is(HaveTCX(), ErrNotSupported) {
		return legacyChain(target.ns, target.index, hook)
	}
	return Chain(target.ns, target.index, hook)
}

// Attachments lists every attachment the lab made, in order, detached
// ones included.
func (l *Lab) Attachments() []*Attachment {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Attachment(nil), l.attached...)
}

// Loopbacks lists the loopback devices the script gave addresses.
func (l *Lab) Loopbacks() []*Link { return l.loopbacks() }

// partner is the other end of k's pair.
func (k *Link) partner() *Link {
	if k.prim {
		return k.pair.Peer
	}
	return k.pair.Primary
}

func (k *Link) kindName() string {
	if kind := k.Kind(); kind != "" {
		return kind
	}
	return "device"
}

// WaitReady waits until every link set up since the last call is
// operationally up, so the first packets are not lost to a link that has
// no carrier yet, and until the kernel listens for IPv6 neighbour
// solicitations to the links' IPv6 addresses (see WaitOperUp).
func (l *Lab) WaitReady(ctx context.Context, timeout time.Duration) error {
	return l.WaitReadyFor(ctx, timeout, true)
}

// WaitReadyFor is WaitReady before traffic of one family: without ipv6
// it waits only for the links to be up and leaves the IPv6 check for the
// first IPv6 traffic (or WaitReady).
func (l *Lab) WaitReadyFor(ctx context.Context, timeout time.Duration, ipv6 bool) error {
	defer l.Timed(PhaseChecks)()
	if l.sh != nil {
		return nil
	}
	type lists struct{ oper, nd []int }
	l.mu.Lock()
	byNs := map[*Netns]*lists{}
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
			ls = &lists{}
			byNs[k.ns] = ls
		}
		if what&waitOper != 0 {
			ls.oper = append(ls.oper, k.index)
		}
		if ipv6 && what&waitND != 0 {
			ls.nd = append(ls.nd, k.index)
		}
	}
	l.mu.Unlock()
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
			if err := waitLinks(ctx, ns, ls.oper, ls.nd, timeout); err != nil {
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

// linkWait says what WaitReady still has to wait for on a link.
type linkWait uint8

const (
	waitOper linkWait = 1 << iota // operationally up
	waitND                        // listening for solicitations to its IPv6 addresses
)

// NetnsOwning returns the namespace, among the host and the lab's own,
// that has addr assigned to one of its interfaces.
func (l *Lab) NetnsOwning(addr netip.Addr) (*Netns, error) {
	if l.sh != nil {
		return l.dryOwning(addr)
	}
	var found []*Netns
	for _, ns := range append(l.Namespaces(), l.host) {
		addrs, err := ns.nl.AddrList(nil, netlink.FAMILY_ALL)
		if err != nil {
			return nil, fmt.Errorf("list addresses in %s: %w", ns.name, err)
		}
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == addr {
				found = append(found, ns)
				break
			}
		}
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

// Exec runs argv inside ns and returns its standard output. A non-zero
// exit is an error that carries the command's standard error.
func (l *Lab) Exec(ctx context.Context, ns *Netns, argv []string) (string, error) {
	if l.sh != nil {
		l.DryExec(ns, argv)
		return "", nil
	}
	if len(argv) == 0 {
		return "", errors.New("exec: empty command")
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &unix.SysProcAttr{Pdeathsig: unix.SIGKILL}
	cmd.WaitDelay = time.Second
	// The child is forked from the locked thread inside ns, so it starts
	// in that namespace.
	if err := ns.Do(cmd.Start); err != nil {
		return "", fmt.Errorf("exec %q in %s: %w", strings.Join(argv, " "), ns.name, err)
	}
	if err := cmd.Wait(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		if msg != "" {
			return stdout.String(), fmt.Errorf("exec %q in %s: %w: %s", strings.Join(argv, " "), ns.name, err, msg)
		}
		return stdout.String(), fmt.Errorf("exec %q in %s: %w", strings.Join(argv, " "), ns.name, err)
	}
	return stdout.String(), nil
}

// Close undoes everything the lab did, in reverse order: programs are
// detached and unloaded, settings restored, links outside the lab's
// namespaces deleted by identity, and the lab's namespaces deleted (their
// links go with them). The journal is removed once everything is gone.
func (l *Lab) Close() error {
	defer l.Timed(PhaseTeardown)()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	l.pool.close()
	if l.sh != nil {
		l.host.Close()
		return nil
	}

	var errs []error
	for i := len(l.closers) - 1; i >= 0; i-- {
		if err := l.closers[i].Close(); err != nil {
			errs = append(errs, err)
		}
	}
	for i := len(l.attached) - 1; i >= 0; i-- {
		if err := l.attached[i].Detach(); err != nil {
			errs = append(errs, err)
		}
	}
	for i := len(l.progs) - 1; i >= 0; i-- {
		if err := l.progs[i].Close(); err != nil {
			errs = append(errs, err)
		}
	}
	for i := len(l.undo) - 1; i >= 0; {
		// A run of independent steps (the lab's namespaces) goes at
		// once, the rest one by one in reverse order.
		j := i
		for j >= 0 && l.undo[j].independent {
			j--
		}
		batch := l.undo[j+1 : i+1]
		if len(batch) == 0 {
			batch, j = l.undo[i:i+1], i-1
		}
		for k, err := range runSteps(batch) {
			s := batch[len(batch)-1-k]
			if err != nil {
				errs = append(errs, fmt.Errorf("cleanup %s: %w", s.what, err))
				continue
			}
			if s.seq != 0 {
				l.journal.Undone(s.seq)
			}
		}
		i = j
	}
	if l.ownHost {
		l.host.Close()
	}
	if len(errs) > 0 {
		// Keep the journal: `nkscript cleanup` can retry what failed.
		l.journal.Close()
		return errors.Join(errs...)
	}
	return l.journal.Remove()
}

// undoParallel bounds how many independent undo steps run at once.
// Unmounting a namespace waits for an RCU grace period after the mount
// lock is dropped (namespace_unlock), and grace periods are shared by
// whoever waits at the same time: 1001 namespaces unmounted one by one
// cost 40-360 ms at N=1000, mostly waiting.
const undoParallel = 32

// runSteps runs steps, last first, and returns their errors in that
// order. One step runs on the calling goroutine; more run in parallel.
func runSteps(steps []undoStep) []error {
	errs := make([]error, len(steps))
	if len(steps) == 1 {
		errs[0] = steps[0].fn()
		return errs
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, undoParallel)
	for k := range steps {
		s := steps[len(steps)-1-k]
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			// A panic here would end the process with the rest of
			// the cleanup undone: make it this step's error.
			defer func() {
				if p := recover(); p != nil {
					errs[k] = fmt.Errorf("panic: %v", p)
				}
			}()
			errs[k] = s.fn()
		})
	}
	wg.Wait()
	return errs
}

// Keep releases the lab without undoing anything, leaving the journal so
// that `nkscript cleanup` removes the lab later. BPF attachments would be
// detached when the process exits, so Keep pins them under BPFFSDir and
// journals the pins.
func (l *Lab) Keep() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.sh != nil {
		return nil
	}
	l.closed = true
	l.pool.close()
	err := l.pinAttachments()
	for _, ns := range l.nslist {
		ns.Close()
	}
	if err := l.journal.Close(); err != nil {
		return err
	}
	return err
}
