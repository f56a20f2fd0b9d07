package datapath

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// On kernels without tcx (before 6.6) the "ingress" and "egress" hooks
// fall back to legacy tc: a clsact qdisc with cls_bpf filters in
// direct-action mode. MechTC attaches the same way on any kernel; where
// there is tcx, the kernel runs the tcx programs first and the filters
// after them. The bundled programs behave the same there: their
// TC_ACT_UNSPEC ("next") hands a packet to the next filter, and after the
// last one the packet goes on.
//
// Filters are ordered by priority. nkscript appends at the highest
// priority number plus 10, and places first/before/after in the gaps; a
// filter is deleted by its priority and handle, after checking that the
// program there is still ours. The clsact qdisc goes again when nkscript
// added it and no filter is left. Filters live on devices the lab
// created, so they go with them, even after SIGKILL.

const legacyPrioStep = 10

func tcParent(hook Hook) uint32 {
	if hook == HookEgress {
		return netlink.HANDLE_MIN_EGRESS
	}
	return netlink.HANDLE_MIN_INGRESS
}

// legacyFilters lists the bpf filters on a clsact hook, by priority.
func legacyFilters(ns *Netns, ifindex int, hook Hook) ([]*netlink.BpfFilter, error) {
	dev := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ifindex}}
	fs, err := nlQuery(ns, func(h *netlink.Handle, dev netlink.Link) ([]netlink.Filter, error) {
		return h.FilterList(dev, tcParent(hook))
	}, netlink.Link(dev))
	if err != nil {
		if errors.Is(err, unix.EINVAL) || errors.Is(err, os.ErrNotExist) {
			return nil, nil // no clsact qdisc yet
		}
		return nil, err
	}
	var out []*netlink.BpfFilter
	for _, f := range fs {
		if bf, ok := f.(*netlink.BpfFilter); ok {
			out = append(out, bf)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Priority < out[j].Priority })
	return out, nil
}

// legacyPriority picks the priority that puts a new filter where opts say
// among filters of ascending priorities prios; at is the index in prios of
// the filter opts place it before or after (-1 if it is not there).
func legacyPriority(prios []int, opts AttachOptions, at int) (uint16, error) {
	between := func(lo, hi int) (uint16, error) {
		if hi-lo < 2 {
			return 0, errors.New("no room between the legacy tc priorities of the neighbouring filters; attach in another order")
		}
		return uint16((lo + hi) / 2), nil
	}
	last := 0
	if len(prios) > 0 {
		last = prios[len(prios)-1]
	}
	switch {
	case opts.First:
		if len(prios) == 0 {
			return legacyPrioStep, nil
		}
		return between(0, prios[0])
	case opts.BeforeProgram != nil, opts.AfterProgram != nil, opts.BeforeAttachment != nil, opts.AfterAttachment != nil:
		if at < 0 {
			return 0, fmt.Errorf("%s is not attached to that hook; see chain() for what is", opts.describe())
		}
		if opts.BeforeProgram != nil || opts.BeforeAttachment != nil {
			lo := 0
			if at > 0 {
				lo = prios[at-1]
			}
			return between(lo, prios[at])
		}
		if at == len(prios)-1 {
			return uint16(prios[at] + legacyPrioStep), nil
		}
		return between(prios[at], prios[at+1])
	}
	if last+legacyPrioStep > 0xffff {
		return 0, errors.New("legacy tc priorities exhausted")
	}
	return uint16(last + legacyPrioStep), nil
}

// filterPriority picks the priority for a new filter among fs, the
// kernel's filters on the hook.
func filterPriority(fs []*netlink.BpfFilter, opts AttachOptions) (uint16, error) {
	prios := make([]int, len(fs))
	for i, f := range fs {
		prios[i] = int(f.Priority)
	}
	var id uint32
	switch {
	case opts.BeforeProgram != nil:
		id = opts.BeforeProgram.id
	case opts.AfterProgram != nil:
		id = opts.AfterProgram.id
	case opts.BeforeAttachment != nil:
		id = opts.BeforeAttachment.progID
	case opts.AfterAttachment != nil:
		id = opts.AfterAttachment.progID
	}
	at := slices.IndexFunc(fs, func(f *netlink.BpfFilter) bool { return uint32(f.Id) == id })
	return legacyPriority(prios, opts, at)
}

// attachLegacyTC attaches prog (a clone the caller owns) to a clsact hook
// as a cls_bpf direct-action filter.
func attachLegacyTC(p *Program, prog *ebpf.Program, ns *Netns, ifindex int, hook Hook, opts AttachOptions, what string) (*Attachment, error) {
	qdisc := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifindex, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
		QdiscType:  "clsact",
	}
	addedQdisc := false
	if err := nlExec(ns, (*netlink.Handle).QdiscAdd, netlink.Qdisc(qdisc)); err == nil {
		addedQdisc = true
		ownQdiscs.set(ns, ifindex, true)
	} else if !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("%s: add clsact qdisc: %w", what, err)
	}
	undoQdisc := func() {
		if addedQdisc {
			nlExec(ns, (*netlink.Handle).QdiscDel, netlink.Qdisc(qdisc))
			ownQdiscs.set(ns, ifindex, false)
		}
	}
	fs, err := legacyFilters(ns, ifindex, hook)
	if err != nil {
		undoQdisc()
		return nil, fmt.Errorf("%s: list tc filters: %w", what, err)
	}
	prio, err := filterPriority(fs, opts)
	if err != nil {
		undoQdisc()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	f := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: ifindex,
			Parent:    tcParent(hook),
			Handle:    1,
			Protocol:  unix.ETH_P_ALL,
			Priority:  prio,
		},
		Fd:           prog.FD(),
		Name:         p.name,
		DirectAction: true,
	}
	if err := nlExec(ns, (*netlink.Handle).FilterAdd, netlink.Filter(f)); err != nil {
		undoQdisc()
		return nil, fmt.Errorf("%s: add cls_bpf filter: %w", what, err)
	}
	tf := &tcFilter{ns: ns, ifindex: ifindex, hook: hook, prio: prio, progID: p.id, filter: f, qdisc: qdisc}
	return &Attachment{id: p.id, progID: p.id, hook: hook, prog: p.name, ifindex: ifindex, mech: tf, how: MechTC}, nil
}

// tcFilter is a program attached as a cls_bpf filter on a clsact hook.
type tcFilter struct {
	ns      *Netns
	ifindex int
	hook    Hook
	prio    uint16
	progID  uint32
	filter  *netlink.BpfFilter
	qdisc   *netlink.GenericQdisc
}

// ownQdiscs are the clsact qdiscs this process added, by namespace and
// ifindex: the last filter detached from either hook of a device removes
// the qdisc if the process added it, whichever filter's attach did.
var ownQdiscs = &qdiscSet{m: map[qdiscKey]bool{}}

type qdiscKey struct {
	ns      NsID
	ifindex int
}

type qdiscSet struct {
	mu sync.Mutex
	m  map[qdiscKey]bool
}

func (q *qdiscSet) set(ns *Netns, ifindex int, own bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if own {
		q.m[qdiscKey{ns.id, ifindex}] = true
	} else {
		delete(q.m, qdiscKey{ns.id, ifindex})
	}
}

func (q *qdiscSet) owned(ns *Netns, ifindex int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.m[qdiscKey{ns.id, ifindex}]
}

func (t *tcFilter) legacy() bool   { return true }
func (t *tcFilter) release() error { return t.detach() }

// pin has nothing to do: a filter outlives the process that added it.
func (t *tcFilter) pin(string) (bool, error) { return false, nil }

// detach deletes the filter if the program is still the one there, and
// the clsact qdisc if the process added it and no filter is left on either
// hook.
func (t *tcFilter) detach() error {
	fs, err := legacyFilters(t.ns, t.ifindex, t.hook)
	if err != nil {
		if isGone(err) {
			return nil
		}
		return err
	}
	i := slices.IndexFunc(fs, func(g *netlink.BpfFilter) bool { return g.Priority == t.prio && uint32(g.Id) == t.progID })
	if i >= 0 {
		if err := nlExec(t.ns, (*netlink.Handle).FilterDel, netlink.Filter(t.filter)); err != nil && !isGone(err) {
			return err
		}
		fs = slices.Delete(fs, i, i+1)
	}
	if len(fs) == 0 && ownQdiscs.owned(t.ns, t.ifindex) {
		if other, err := legacyFilters(t.ns, t.ifindex, otherTCHook(t.hook)); err == nil && len(other) == 0 {
			if err := nlExec(t.ns, (*netlink.Handle).QdiscDel, netlink.Qdisc(t.qdisc)); err != nil && !isGone(err) {
				return err
			}
			ownQdiscs.set(t.ns, t.ifindex, false)
		}
	}
	return nil
}

func otherTCHook(h Hook) Hook {
	if h == HookEgress {
		return HookIngress
	}
	return HookEgress
}

func isGone(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV) || errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EINVAL)
}

// legacyChain lists the programs on a clsact hook in order.
func legacyChain(ns *Netns, ifindex int, hook Hook) ([]string, error) {
	fs, err := legacyFilters(ns, ifindex, hook)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, f := range fs {
		name := f.Name
		if prog, err := ebpf.NewProgramFromID(ebpf.ProgramID(f.Id)); err == nil {
			if info, err := prog.Info(); err == nil && info.Name != "" {
				name = info.Name
			}
			prog.Close()
		}
		names = append(names, name)
	}
	return names, nil
}
