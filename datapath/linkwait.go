package datapath

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// linkPollInterval is how often WaitOperUp polls when it cannot subscribe
// to link updates.
const linkPollInterval = time.Millisecond

// WaitOperUp waits until every link in ifindexes, all in ns, is
// operationally up: its oper state is UP, or UNKNOWN for a device that never
// reports carrier (lo, for one). veth and netkit devices toggle carrier with
// their peer, so for them only UP counts: an UNKNOWN veth is one whose
// carrier change the kernel has not processed yet, and its transmit queue
// still drops packets.
//
// Then, on links that use neighbour discovery, it waits until the kernel
// listens for solicitations to each of the link's IPv6 addresses. The kernel
// joins an address's solicited-node multicast group in the background, even
// for an address added with nodad; a neighbour solicitation that arrives
// before is dropped, and the first IPv6 exchange stalls for a second.
//
// A link that is administratively down makes WaitOperUp fail at once, since
// waiting cannot bring it up; so does a link that does not exist or is
// deleted while waiting. A timeout of zero or less waits until ctx is done.
// On timeout the error names the links that are still not up.
func WaitOperUp(ctx context.Context, ns *Netns, ifindexes []int, timeout time.Duration) error {
	return waitLinks(ctx, ns, ifindexes, ifindexes, timeout)
}

// waitLinks is WaitOperUp with the two waits on their own lists of links:
// oper for being up, nd for the IPv6 solicited-node groups.
func waitLinks(ctx context.Context, ns *Netns, oper, nd []int, timeout time.Duration) error {
	if ns == nil {
		return errors.New("wait for links: no namespace")
	}
	if len(oper) == 0 && len(nd) == 0 {
		return nil
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, timeout, errLinkWaitTimeout)
		defer cancel()
	}
	// Pinned for the wait: the namespace's handles stay open (and the
	// subscription can name it) however many others are used meanwhile.
	h, err := ns.acquire()
	if err != nil {
		return fmt.Errorf("wait for links in namespace %s: %w", ns.Name(), err)
	}
	defer ns.release(h)
	w := &linkWaiter{ns: ns, nsFd: h.fd(), pending: make(map[int]netlink.Link)}
	for _, idx := range oper {
		w.pending[idx] = nil
	}
	if err := w.waitUp(ctx, timeout); err != nil || len(nd) == 0 {
		return err
	}
	missing, err := waitSolicitedNodes(ctx, ns, nd, w.seen)
	if len(missing) > 0 {
		what := "kernel not yet listening for IPv6 neighbour solicitations to " + strings.Join(missing, ", ")
		if context.Cause(ctx) == errLinkWaitTimeout {
			return fmt.Errorf("links in namespace %s not ready after %v: %s", ns.Name(), timeout, what)
		}
		return fmt.Errorf("wait for links in namespace %s (%s): %w", ns.Name(), what, err)
	}
	return err
}

// waitUp waits until no link is pending. Most links are up by the time
// anyone waits for them: it looks first, and subscribes to changes only
// if something is still pending.
func (w *linkWaiter) waitUp(ctx context.Context, timeout time.Duration) error {
	if err := w.refresh(); err != nil || len(w.pending) == 0 {
		return err
	}
	// Subscribe, then read the state again, so that no change is missed
	// between the two.
	updates, unsubscribe := w.subscribe()
	defer unsubscribe()
	if err := w.refresh(); err != nil {
		return err
	}
	var poll <-chan time.Time
	startPolling := func() {
		t := time.NewTicker(linkPollInterval)
		poll = t.C
		prev := unsubscribe
		unsubscribe = func() { t.Stop(); prev() }
	}
	if updates == nil {
		startPolling()
	}
	for len(w.pending) > 0 {
		select {
		case <-ctx.Done():
			if context.Cause(ctx) == errLinkWaitTimeout {
				return fmt.Errorf("links in namespace %s not up after %v: %s", w.ns.Name(), timeout, w.describePending())
			}
			return fmt.Errorf("wait for links in namespace %s (still not up: %s): %w", w.ns.Name(), w.describePending(), ctx.Err())
		case u, ok := <-updates:
			if !ok {
				// The subscription failed (say, the socket overran):
				// fall back to polling.
				updates = nil
				startPolling()
				if err := w.refresh(); err != nil {
					return err
				}
				continue
			}
			if err := w.handle(u); err != nil {
				return err
			}
		case <-poll:
			if err := w.refresh(); err != nil {
				return err
			}
		}
	}
	return nil
}

// subscribe subscribes to link changes in the waiter's namespace; it
// returns a nil channel if it cannot (the waiter then polls), and the
// function that ends the subscription.
func (w *linkWaiter) subscribe() (chan netlink.LinkUpdate, func()) {
	updates := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	nsh := netns.NsHandle(w.nsFd)
	err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{
		Namespace: &nsh,
		// Errors end the subscription (the channel is closed), after
		// which the waiter polls instead.
		ErrorCallback: func(error) {},
	})
	if err != nil {
		return nil, func() {}
	}
	return updates, func() {
		close(done)
		// Drain until the subscription goroutine has exited: it closes
		// updates once its socket is closed.
		for range updates {
		}
	}
}

// handle takes one link change in.
func (w *linkWaiter) handle(u netlink.LinkUpdate) error {
	idx := int(u.Index)
	if _, ok := w.pending[idx]; !ok {
		return nil
	}
	if u.Header.Type == unix.RTM_DELLINK {
		return fmt.Errorf("link %s in namespace %s was deleted while waiting for it to come up", linkLabel(idx, u.Link), w.ns.Name())
	}
	return w.update(idx, u.Link)
}

var (
	errLinkWaitTimeout = errors.New("link wait timed out")
)

type linkWaiter struct {
	ns      *Netns
	nsFd    int                  // refers to ns, pinned by waitLinks
	pending map[int]netlink.Link // last state seen, nil if none yet
	seen    map[int]netlink.Link // last state of every link, pending or not
}

// refresh reads the state of every pending link.
func (w *linkWaiter) refresh() error {
	for idx := range w.pending {
		l, err := nlQuery(w.ns, (*netlink.Handle).LinkByIndex, idx)
		if err != nil {
			var nf netlink.LinkNotFoundError
			if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
				return fmt.Errorf("link %d in namespace %s: %w", idx, w.ns.Name(), ErrNotFound)
			}
			return fmt.Errorf("get link %d in namespace %s: %w", idx, w.ns.Name(), err)
		}
		if err := w.update(idx, l); err != nil {
			return err
		}
	}
	return nil
}

// update records the state of a pending link, dropping it once it is up.
func (w *linkWaiter) update(idx int, l netlink.Link) error {
	if w.seen == nil {
		w.seen = make(map[int]netlink.Link)
	}
	w.seen[idx] = l
	up, err := linkOperUp(l)
	if err != nil {
		return fmt.Errorf("link %s in namespace %s %w", l.Attrs().Name, w.ns.Name(), err)
	}
	if up {
		delete(w.pending, idx)
		return nil
	}
	w.pending[idx] = l
	return nil
}

// describePending lists the pending links with their last oper state, in
// ifindex order.
func (w *linkWaiter) describePending() string {
	idxs := make([]int, 0, len(w.pending))
	for idx := range w.pending {
		idxs = append(idxs, idx)
	}
	slices.Sort(idxs)
	var parts []string
	for _, idx := range idxs {
		l := w.pending[idx]
		s := linkLabel(idx, l)
		if l != nil {
			s += " (" + l.Attrs().OperState.String() + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// linkOperUp reports whether l can carry traffic, and fails if l is
// administratively down.
func linkOperUp(l netlink.Link) (bool, error) {
	a := l.Attrs()
	if a.Flags&net.FlagUp == 0 {
		return false, ErrLinkDown
	}
	switch a.OperState {
	case netlink.OperUp:
		return true, nil
	case netlink.OperUnknown:
		switch l.Type() {
		case "veth", "netkit":
			return false, nil
		}
		return true, nil
	}
	return false, nil
}

func linkLabel(idx int, l netlink.Link) string {
	if l != nil && l.Attrs().Name != "" {
		return l.Attrs().Name
	}
	return fmt.Sprintf("ifindex %d", idx)
}

// waitSolicitedNodes polls until ns has joined, on each link, the
// solicited-node multicast group of every IPv6 address of the link. links
// holds the links' last known state. If ctx is done first, it returns the
// addresses still missing with ctx.Err().
func waitSolicitedNodes(ctx context.Context, ns *Netns, ifindexes []int, links map[int]netlink.Link) ([]string, error) {
	nd := make(map[int]netlink.Link)
	for _, idx := range ifindexes {
		l := links[idx]
		if l == nil {
			var err error
			if l, err = nlQuery(ns, (*netlink.Handle).LinkByIndex, idx); err != nil {
				return nil, fmt.Errorf("get link %d in namespace %s: %w", idx, ns.Name(), err)
			}
		}
		if l.Attrs().RawFlags&(unix.IFF_NOARP|unix.IFF_LOOPBACK) != 0 {
			// No neighbour discovery, no group.
			continue
		}
		nd[idx] = l
	}
	if len(nd) == 0 {
		return nil, nil
	}
	// One dump of the namespace's IPv6 addresses, not one per link.
	addrs, err := ns.addrList(netlink.FAMILY_V6)
	if err != nil {
		return nil, fmt.Errorf("list IPv6 addresses in namespace %s: %w", ns.Name(), err)
	}
	want := make(map[string]string) // "ifindex group" -> what it is for
	for _, a := range addrs {
		l := nd[a.LinkIndex]
		ip := a.IP.To16()
		if l == nil || ip == nil || a.Flags&unix.IFA_F_DADFAILED != 0 {
			continue
		}
		// ff02::1:ffXX:XXXX, from the low 24 bits of the address,
		// as /proc/net/igmp6 prints it.
		group := fmt.Sprintf("ff0200000000000000000001ff%x", []byte(ip[13:16]))
		want[fmt.Sprintf("%d %s", a.LinkIndex, group)] = fmt.Sprintf("%s on %s", a.IP, l.Attrs().Name)
	}
	for len(want) > 0 {
		var joined []byte
		err := ns.doQuick(func() error {
			var err error
			joined, err = procRead("/proc/thread-self/net/igmp6")
			return err
		})
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil // no IPv6
		}
		if err != nil {
			return nil, fmt.Errorf("read multicast groups in namespace %s: %w", ns.Name(), err)
		}
		// Lines read: ifindex name group users flags timer.
		for line := range strings.Lines(string(joined)) {
			f := strings.Fields(line)
			if len(f) >= 3 {
				delete(want, f[0]+" "+f[2])
			}
		}
		if len(want) == 0 {
			break
		}
		if err := sleepCtx(ctx, linkPollInterval); err != nil {
			var missing []string
			for _, what := range want {
				missing = append(missing, what)
			}
			slices.Sort(missing)
			return missing, err
		}
	}
	return nil, nil
}
