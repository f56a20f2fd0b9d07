package datapath

import (
	"errors"
	"slices"
	"sync"
	"time"
)

// maxDrops is how many drops a DropMonitor keeps; later ones are counted
// only.
const maxDrops = 1 << 16

// DropMonitor reports the packets the kernel drops in the lab's
// namespaces (bpf/dropmon.c on the skb:kfree_skb tracepoint): where,
// why, and what the packet was. A stand-in (dry run, graph, or a kernel
// without BTF) sees no drops.
type DropMonitor struct {
	k  *dropKernel // nil for a stand-in
	wg sync.WaitGroup

	syncMu sync.Mutex // one Sync at a time

	mu     sync.Mutex
	drops  []Drop
	missed int
	subs   []*dropSub // replaced, never changed in place
}

// dropSub is one subscriber of a DropMonitor.
type dropSub struct{ f func(Drop) }

// startDropMonitor starts the kernel's drop monitor.
func startDropMonitor() (*DropMonitor, error) {
	k, err := startDropKernel()
	if err != nil {
		return nil, err
	}
	m := &DropMonitor{k: k}
	m.wg.Go(func() { k.read(m.add) })
	return m, nil
}

func (m *DropMonitor) add(d Drop) {
	if d.Dst.IsMulticast() {
		// Multicast the namespace has not joined (IPv6 neighbour
		// discovery and MLD on every new link): not a lost packet.
		return
	}
	if d.Func == "" && d.Location != 0 {
		d.Func = kernelSymbols().name(d.Location)
	}
	if routeQuery(d) {
		return
	}
	m.mu.Lock()
	if len(m.drops) >= maxDrops {
		m.missed++
		m.mu.Unlock()
		return
	}
	if len(m.drops) == 0 {
		// Explaining drops needs the reason names: read them while the
		// check that saw this one waits out its grace time.
		go kernelDropReasons()
	}
	d.Seq = len(m.drops) + 1
	m.drops = append(m.drops, d)
	subs := m.subs
	m.mu.Unlock()
	if len(subs) > 0 {
		d.Reason = reasonName(d.reason)
	}
	for _, s := range subs {
		s.f(d)
	}
}

// Active reports whether the monitor sees the kernel's drops (false for
// a stand-in).
func (m *DropMonitor) Active() bool { return m != nil && m.k != nil }

// watch adds ns to the namespaces whose drops are reported.
func (m *DropMonitor) watch(ns *Netns) error {
	if !m.Active() {
		return nil
	}
	return m.k.watch(ns.id.Ino)
}

// unwatch stops reporting the drops of ns, which the lab deleted: its
// inode number may be reused.
func (m *DropMonitor) unwatch(ns *Netns) {
	if m.Active() {
		m.k.netns.Delete(uint32(ns.id.Ino))
	}
}

// Mark is the number of drops seen so far: Since(Mark()) returns the
// drops seen after this call.
func (m *DropMonitor) Mark() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.drops)
}

// Since returns the drops seen after mark (see Mark), in order. Call
// Sync first for the drops of packets sent until now.
func (m *DropMonitor) Since(mark int) []Drop {
	m.mu.Lock()
	defer m.mu.Unlock()
	if mark < 0 || mark > len(m.drops) {
		mark = len(m.drops)
	}
	ds := append([]Drop(nil), m.drops[mark:]...)
	for i := range ds {
		ds[i].Reason = reasonName(ds[i].reason)
	}
	return ds
}

// Sync waits until the monitor has read the drops the kernel recorded
// before the call (at most syncWait).
func (m *DropMonitor) Sync() {
	if !m.Active() {
		return
	}
	m.syncMu.Lock()
	defer m.syncMu.Unlock()
	select {
	case <-m.k.flushed:
	default:
	}
	if err := m.k.rd.Flush(); err != nil {
		return
	}
	select {
	case <-m.k.flushed:
	case <-time.After(syncWait):
	}
}

// syncWait bounds Sync: reading what is in the ring takes microseconds,
// but a microVM without acceleration is a thousand times slower.
const syncWait = 5 * time.Second

// Subscribe passes every drop seen from now on to f, on the monitor's
// reading goroutine.
func (m *DropMonitor) Subscribe(f func(Drop)) { m.subscribe(f) }

// subscribe is Subscribe, and returns the function that ends the
// subscription.
func (m *DropMonitor) subscribe(f func(Drop)) (cancel func()) {
	s := &dropSub{f: f}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.subs = append(slices.Clip(m.subs), s)
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.subs = slices.DeleteFunc(slices.Clone(m.subs), func(x *dropSub) bool { return x == s })
	}
}

// Close detaches the monitor's program and frees it.
func (m *DropMonitor) Close() error {
	if !m.Active() {
		return nil
	}
	m.k.close()
	m.wg.Wait()
	return nil
}

// DropMonitorOff reports whether the lab was made without the drop
// monitor (LabConfig.NoDropMonitor).
func (l *Lab) DropMonitorOff() bool { return l.noDropMon }

// DropMonitor starts the lab's drop monitor, once; later calls return the
// same one. It watches the namespaces the lab created and those it
// creates later. Where the kernel cannot run it (no BTF), the lab says so
// once and hands out a stand-in that sees nothing.
func (l *Lab) DropMonitor() (*DropMonitor, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	if l.dropmon != nil {
		return l.dropmon, nil
	}
	if l.noDropMon {
		l.dropmon = &DropMonitor{}
		return l.dropmon, nil
	}
	m, err := l.b.DropMonitor()
	if errors.Is(err, ErrNotSupported) {
		if l.notice != nil {
			l.notice("the kernel cannot run the drop monitor (" + err.Error() + "): verdicts will not say where packets were dropped")
		}
		m, err = &DropMonitor{}, nil
	}
	if err != nil {
		return nil, err
	}
	for _, ns := range l.nslist {
		if !l.watch(m, ns) {
			break
		}
	}
	m.traceAttached(l)
	l.dropmon = m
	l.closers = append(l.closers, m)
	return m, nil
}

// watch has m report the drops in ns and reports whether it does. The
// first namespace it cannot watch (the monitor is full) is said once;
// the lab goes on without explanations there. l.mu is held.
func (l *Lab) watch(m *DropMonitor, ns *Netns) bool {
	err := m.watch(ns)
	if err != nil && !l.unwatched {
		l.unwatched = true
		if l.notice != nil {
			l.notice(err.Error())
		}
	}
	return err == nil
}
