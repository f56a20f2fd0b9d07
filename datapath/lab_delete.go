package datapath

import (
	"fmt"
	"io"
	"slices"
)

// Deleting links and namespaces in the middle of a run, and moving links
// between namespaces. The undo list follows: what the script deleted
// leaves it (journaled undone), and a moved link is journaled where it
// went.

// DeletedError is the use of a link or namespace the script deleted.
type DeletedError struct {
	What, Name string // "link" or "netns"
}

func (e *DeletedError) Error() string {
	return fmt.Sprintf("%s %s was deleted by the script; it cannot be used any more", e.What, e.Name)
}

// Deleted reports whether the script deleted k (or the namespace it was
// in, or the other end of its pair).
func (k *Link) Deleted() bool { return k.gone.Load() }

// Deleted reports whether the script deleted n.
func (n *Netns) Deleted() bool { return n.gone.Load() }

// live checks that none of links and namespaces was deleted; nil ones are
// left out.
func live(links []*Link, nss ...*Netns) error {
	for _, k := range links {
		if k != nil && k.gone.Load() {
			return &DeletedError{What: "link", Name: k.name}
		}
	}
	for _, ns := range nss {
		if ns != nil && ns.gone.Load() {
			return &DeletedError{What: "netns", Name: ns.name}
		}
	}
	return nil
}

// DeleteLink deletes a link the lab created; for a pair, both ends go.
// Programs attached to it are detached first, and its journal record
// leaves the undo list.
func (l *Lab) DeleteLink(k *Link) error {
	if err := l.checkOpenLocked(); err != nil {
		return err
	}
	if err := live([]*Link{k}, k.ns); err != nil {
		return err
	}
	if k.loop {
		return fmt.Errorf("delete link lo in %s: a namespace's loopback device cannot be deleted; delete the namespace", k.ns.name)
	}
	ends := []*Link{k}
	if k.pair != nil {
		ends = append(ends, k.partner())
	}
	if err := l.releaseOn(ends); err != nil {
		return err
	}
	if err := l.b.DeleteLink(k); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dropLinks(ends)
	return nil
}

// releaseOn detaches the lab's programs from the devices links.
func (l *Lab) releaseOn(links []*Link) error {
	l.mu.Lock()
	var on []*Attachment
	for _, a := range l.attached {
		if slices.Contains(links, a.on) {
			on = append(on, a)
		}
	}
	l.mu.Unlock()
	for i := len(on) - 1; i >= 0; i-- {
		if err := on[i].release(); err != nil {
			return err
		}
	}
	return nil
}

// dropLinks marks links deleted and takes them, and their journal
// records, out of the lab. l.mu is held.
func (l *Lab) dropLinks(links []*Link) {
	for _, k := range links {
		k.gone.Store(true)
		delete(l.pendUp, k)
	}
	l.links = slices.DeleteFunc(l.links, func(k *Link) bool { return slices.Contains(links, k) })
	l.dropRecords(func(r Record) bool {
		lr, ok := r.(*LinkRecord)
		return ok && slices.ContainsFunc(links, func(k *Link) bool { return isLinkRecord(lr, k.ns.id, k.index, k.name) })
	})
}

func isLinkRecord(r *LinkRecord, ns NsID, index int, name string) bool {
	return r.NS == ns && r.Ifindex == index && r.Name == name
}

// dropRecords takes every undo step whose record matches out of the undo
// list and journals it undone. l.mu is held.
func (l *Lab) dropRecords(match func(Record) bool) {
	kept := l.undo[:0]
	for _, s := range l.undo {
		if !match(s.rec) {
			kept = append(kept, s)
			continue
		}
		if s.seq != 0 {
			l.journal.Undone(s.seq)
		}
	}
	clear(l.undo[len(kept):])
	l.undo = kept
}

// DeleteNetns deletes a namespace the lab created. The run's servers and
// captures in it stop first and programs attached to its devices are
// detached; pairs with an end in it go with it, and its records leave the
// undo list.
func (l *Lab) DeleteNetns(ns *Netns) error {
	if err := l.checkOpenLocked(); err != nil {
		return err
	}
	if err := live(nil, ns); err != nil {
		return err
	}
	if !l.Owns(ns) {
		return fmt.Errorf("delete netns %s: only a namespace the script created can be deleted", ns.name)
	}
	links := l.linksIn(ns)
	if err := l.stopIn(ns, links); err != nil {
		return err
	}
	if err := l.releaseOn(links); err != nil {
		return err
	}
	// The kernel deletes the namespace's devices when it destroys the
	// namespace, which it does later; delete the pairs that reach out
	// of it now.
	for _, k := range links {
		if k.ns != ns && !k.gone.Load() {
			if err := l.b.DeleteLink(k); err != nil {
				return err
			}
			k.gone.Store(true)
		}
	}
	if err := l.b.DeleteNetns(ns); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dropLinks(links)
	l.dropRecords(func(r Record) bool {
		nr, ok := r.(*NetnsRecord)
		return ok && nr.NS == ns.id
	})
	ns.gone.Store(true)
	delete(l.owned, ns.id)
	for name, n := range l.byName {
		if n == ns {
			delete(l.byName, name)
		}
	}
	l.nslist = slices.DeleteFunc(l.nslist, func(n *Netns) bool { return n == ns })
	l.dropmon.unwatch(ns)
	if lo := l.lo[ns]; lo != nil {
		lo.gone.Store(true)
		delete(l.lo, ns)
	}
	return ns.Close()
}

// linksIn is the lab's links in ns and the other ends of pairs with an
// end in it, which go with it.
func (l *Lab) linksIn(ns *Netns) []*Link {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*Link
	for _, k := range l.links {
		if k.ns == ns || (k.pair != nil && k.partner().ns == ns) {
			out = append(out, k)
		}
	}
	if lo := l.lo[ns]; lo != nil {
		out = append(out, lo)
	}
	return out
}

// stopIn closes the run's servers in ns and its captures on links.
func (l *Lab) stopIn(ns *Netns, links []*Link) error {
	l.mu.Lock()
	var stop []io.Closer
	l.closers = slices.DeleteFunc(l.closers, func(c io.Closer) bool {
		var in bool
		switch c := c.(type) {
		case *Server:
			in = c.Netns() == ns
		case *Capture:
			in = c.onAny(links)
		}
		if in {
			stop = append(stop, c)
		}
		return in
	})
	l.mu.Unlock()
	for i := len(stop) - 1; i >= 0; i-- {
		if err := stop[i].Close(); err != nil {
			return err
		}
	}
	return nil
}

// MoveLink moves a link the lab created into the namespace to. The kernel
// moves the device down and without addresses, and detaches nothing, but
// the lab's programs on it are detached first: they were attached by its
// ifindex in the old namespace. The journal follows the device: it is
// recorded in its new place (before the move, so that a run killed after
// it leaves nothing behind) unless that is one of the lab's namespaces.
func (l *Lab) MoveLink(k *Link, to *Netns) error {
	if err := l.checkMove(k, to); err != nil {
		return err
	}
	if err := l.releaseOn([]*Link{k}); err != nil {
		return err
	}
	from, oldIndex := k.ns, k.index
	guess, err := l.recordMoved(k, to, k.index)
	if err != nil {
		return err
	}
	index, err := l.b.MoveLink(k, to)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.dropRecords(func(r Record) bool { return r == guess })
		return err
	}
	k.mu.Lock()
	k.ns, k.index, k.addrs, k.up = to, index, nil, false
	k.mu.Unlock()
	delete(l.pendUp, k)
	if guess != nil && guess.Ifindex != index {
		// The ifindex was taken in the new namespace: the kernel gave
		// the device another.
		if err := l.recordLink(k, guess.Kind); err != nil {
			return err
		}
		l.dropRecords(func(r Record) bool { return r == guess })
	}
	l.dropRecords(func(r Record) bool {
		lr, ok := r.(*LinkRecord)
		return ok && isLinkRecord(lr, from.id, oldIndex, k.name)
	})
	return l.keepPairRecorded(k)
}

// checkMove checks that k can move to the namespace to.
func (l *Lab) checkMove(k *Link, to *Netns) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.checkOpen(); err != nil {
		return err
	}
	if err := live([]*Link{k}, k.ns, to); err != nil {
		return err
	}
	switch {
	case k.loop:
		return fmt.Errorf("move link lo: a namespace's loopback device cannot move")
	case k.ns == to:
		return fmt.Errorf("move link %s: it is in namespace %s already", k.name, to.name)
	}
	for _, o := range l.links {
		if o.ns == to && o.name == k.name {
			return exists("move link %s to %s: this script already created a link named %q there", k.name, to.name, k.name)
		}
	}
	return nil
}

// recordMoved journals k at index in to, where it is about to move,
// unless to is the lab's own: its devices go with it.
func (l *Lab) recordMoved(k *Link, to *Netns, index int) (*LinkRecord, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.owned[to.id] == to {
		return nil, nil
	}
	r := &LinkRecord{NS: to.id, Ifindex: index, Name: k.name, Kind: k.Kind()}
	if _, err := l.record(r); err != nil {
		return nil, err
	}
	return r, nil
}

// keepPairRecorded journals the other end of k's pair if the pair has an
// end outside the lab's namespaces and no record left. l.mu is held.
func (l *Lab) keepPairRecorded(k *Link) error {
	if k.pair == nil {
		return nil
	}
	ends := []*Link{k.pair.Primary, k.pair.Peer}
	for _, s := range l.undo {
		lr, ok := s.rec.(*LinkRecord)
		if ok && slices.ContainsFunc(ends, func(e *Link) bool { return isLinkRecord(lr, e.ns.id, e.index, e.name) }) {
			return nil
		}
	}
	for _, e := range ends {
		if l.owned[e.ns.id] != e.ns {
			return l.recordLink(e, string(k.pair.Kind))
		}
	}
	return nil
}
