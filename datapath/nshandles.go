package datapath

import (
	"container/list"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// A lab uses a namespace through two descriptors: a file referring to it
// (to enter it, or to name it as a device's new home) and a netlink socket
// inside it. Holding both for every namespace would cost two descriptors a
// namespace for the whole run, and a lab of 10,000 namespaces would run
// out of them. A named namespace needs neither to stay alive (its bind
// mount holds it), so its descriptors are opened on demand and kept in a
// process-wide cache of the nsHandlesMax namespaces used last; the rest
// are closed. The host namespace and anonymous ones (which only their
// file keeps alive) hold theirs until Close.
//
// Users pin the handles for the time they use them (acquire/release, or
// withNetlink): a pinned entry is never closed under its user, so the
// cache can overflow by the number of namespaces in use at once.

// nsHandlesMax is how many namespaces' handles the cache keeps open once
// nothing uses them: a chain of namespaces visits its neighbours, so a
// few dozen cover a lab's working set.
const nsHandlesMax = 64

// nsHandles are the open descriptors of one namespace.
type nsHandles struct {
	file *os.File
	refs int // pins, under nsCache.mu

	nlOnce sync.Once
	nl     *netlink.Handle
	nlErr  error
}

// fd is a descriptor referring to the namespace, valid while pinned.
func (h *nsHandles) fd() int { return int(h.file.Fd()) }

// netlink returns the netlink handle inside the namespace, opening its
// socket at the first call.
func (h *nsHandles) netlink(name string) (*netlink.Handle, error) {
	h.nlOnce.Do(func() {
		// A socket belongs to the namespace of the thread that opens it.
		h.nlErr = lockedInFd(name, h.fd(), func() error {
			var err error
			h.nl, err = netlink.NewHandle(unix.NETLINK_ROUTE)
			return err
		})
		if h.nlErr != nil {
			h.nlErr = fmt.Errorf("netlink handle in netns %s: %w", name, h.nlErr)
		}
	})
	return h.nl, h.nlErr
}

func (h *nsHandles) close() error {
	if h.nl != nil {
		h.nl.Close()
	}
	return h.file.Close()
}

// handleCache is the least recently used list of namespaces whose
// handles are open and not held for their lifetime.
type handleCache struct {
	mu  sync.Mutex
	lru *list.List // of *Netns, most recently used first
	max int
}

var nsCache = &handleCache{lru: list.New(), max: nsHandlesMax}

// errNetnsClosed is using a Netns after Close.
var errNetnsClosed = errors.New("namespace handle closed")

// acquire returns n's handles, opening them if they are not, pinned until
// release.
func (n *Netns) acquire() (*nsHandles, error) {
	c := nsCache
	c.mu.Lock()
	if h := n.handles; h != nil {
		h.refs++
		if n.lruElem != nil {
			c.lru.MoveToFront(n.lruElem)
		}
		c.mu.Unlock()
		return h, nil
	}
	closed := n.closed
	c.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("netns %s: %w", n.name, errNetnsClosed)
	}
	f, err := n.reopen()
	if err != nil {
		return nil, err
	}
	return n.adopt(&nsHandles{file: f}, 1), nil
}

// adopt makes h n's handles with refs pins, in the cache, unless another
// caller has opened n's meanwhile (h is closed, theirs pinned and
// returned). It closes what falls out of the cache.
func (n *Netns) adopt(h *nsHandles, refs int) *nsHandles {
	c := nsCache
	c.mu.Lock()
	if old := n.handles; old != nil {
		old.refs += refs
		c.mu.Unlock()
		h.close()
		return old
	}
	h.refs = refs
	n.handles = h
	n.lruElem = c.lru.PushFront(n)
	out := c.evict()
	c.mu.Unlock()
	closeAll(out)
	return h
}

// release unpins h. Handles that Close or the cache let go of while they
// were pinned are closed by their last release.
func (n *Netns) release(h *nsHandles) {
	c := nsCache
	c.mu.Lock()
	h.refs--
	var out []*nsHandles
	if h.refs == 0 && n.handles != h {
		out = append(out, h)
	}
	out = append(out, c.evict()...)
	c.mu.Unlock()
	closeAll(out)
}

// evict takes the least recently used unpinned entries out of the cache
// until it is within its bound, and returns their handles to close;
// c.mu is held.
func (c *handleCache) evict() []*nsHandles {
	var out []*nsHandles
	for e := c.lru.Back(); e != nil && c.lru.Len() > c.max; {
		prev := e.Prev()
		if n := e.Value.(*Netns); n.handles.refs == 0 {
			c.lru.Remove(e)
			out = append(out, n.handles)
			n.handles, n.lruElem = nil, nil
		}
		e = prev
	}
	return out
}

func closeAll(hs []*nsHandles) {
	for _, h := range hs {
		h.close()
	}
}

// reopen opens n's bind mount and checks it still holds n.
func (n *Netns) reopen() (*os.File, error) {
	if !n.kern || n.mount == "" || n.gone.Load() {
		return nil, fmt.Errorf("netns %s: %w", n.name, errNetnsClosed)
	}
	fd, err := unix.Open(n.mount, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", n.name, err)
	}
	f := os.NewFile(uintptr(fd), n.mount)
	id, err := statNs(f)
	if err == nil && id != n.id {
		err = fmt.Errorf("%s holds another namespace now", n.mount)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open netns %s: %w", n.name, err)
	}
	return f, nil
}

// hold pins n's handles until Close (for Handle and Fd), taking them out
// of the cache.
func (n *Netns) hold() (*nsHandles, error) {
	h, err := n.acquire()
	if err != nil {
		return nil, err
	}
	c := nsCache
	c.mu.Lock()
	switch {
	case n.handles != h: // closed meanwhile
		c.mu.Unlock()
		n.release(h)
		return nil, fmt.Errorf("netns %s: %w", n.name, errNetnsClosed)
	case n.held:
		h.refs-- // the lifetime pin is there already
	default:
		n.held = true
		if n.lruElem != nil {
			c.lru.Remove(n.lruElem)
			n.lruElem = nil
		}
	}
	c.mu.Unlock()
	return h, nil
}

// unhold lets n's handles go into the cache: n has a bind mount now that
// keeps the namespace alive without them.
func (n *Netns) unhold() {
	c := nsCache
	c.mu.Lock()
	h := n.handles
	if !n.held || h == nil {
		c.mu.Unlock()
		return
	}
	n.held = false
	h.refs--
	n.lruElem = c.lru.PushFront(n)
	out := c.evict()
	c.mu.Unlock()
	closeAll(out)
}

// dropHandles closes n's handles, or leaves them to the last release if
// they are pinned; n cannot open them again.
func (n *Netns) dropHandles() error {
	c := nsCache
	c.mu.Lock()
	n.closed = true
	h := n.handles
	n.handles = nil
	if n.lruElem != nil {
		c.lru.Remove(n.lruElem)
		n.lruElem = nil
	}
	if h != nil && n.held {
		h.refs--
	}
	n.held = false
	last := h != nil && h.refs == 0
	c.mu.Unlock()
	if last {
		return h.close()
	}
	return nil
}

// withNetlink runs fn with a netlink handle whose socket is in n, pinned
// for the call.
func (n *Netns) withNetlink(fn func(*netlink.Handle) error) error {
	h, err := n.acquire()
	if err != nil {
		return err
	}
	defer n.release(h)
	nl, err := h.netlink(n.name)
	if err != nil {
		return err
	}
	return fn(nl)
}

// withFd runs fn with a descriptor referring to n, pinned for the call.
func (n *Netns) withFd(fn func(fd int) error) error {
	h, err := n.acquire()
	if err != nil {
		return err
	}
	defer n.release(h)
	return fn(h.fd())
}

// nlExec calls a netlink method that returns only an error, in n.
func nlExec[A any](n *Netns, method func(*netlink.Handle, A) error, a A) error {
	return n.withNetlink(func(h *netlink.Handle) error { return method(h, a) })
}

// nlQuery calls a netlink method that returns a value, in n.
func nlQuery[A, T any](n *Netns, method func(*netlink.Handle, A) (T, error), a A) (T, error) {
	var out T
	err := n.withNetlink(func(h *netlink.Handle) error {
		var err error
		out, err = method(h, a)
		return err
	})
	return out, err
}

// addrList lists n's addresses of a family.
func (n *Netns) addrList(family int) ([]netlink.Addr, error) {
	return nlQuery(n, func(h *netlink.Handle, family int) ([]netlink.Addr, error) { return h.AddrList(nil, family) }, family)
}
