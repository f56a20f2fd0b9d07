package datapath

import (
	"slices"
	"sync"
)

// The dry run's attachments by mechanism MechTC and by a chosen XDP mode:
// the tc and ip commands the CNF guide uses, where the default
// mechanisms are written as bpftool commands (shell.Attach).

// shellClsacts are the clsact qdiscs a dry run adds and the cls_bpf
// filters on them, so that priorities, and the qdisc's removal with the
// last filter, follow the same rules as a kernel run's.
type shellClsacts struct {
	mu   sync.Mutex
	devs map[*Link]*shellClsact
}

// shellClsact is one device's clsact qdisc in a dry run.
type shellClsact struct {
	filters map[Hook][]*shellFilter // by ascending priority
}

// shellFilter is a cls_bpf filter a dry run adds.
type shellFilter struct {
	prio uint16
	prog *Program
	att  *Attachment
}

// attachTC writes the commands that attach the program pinned at pin to
// a clsact hook of dev as a direct-action cls_bpf filter, adding the
// qdisc first if the dry run has not yet, and returns a's mechanism.
func (s *shell) attachTC(a *Attachment, p *Program, dev *Link, hook Hook, opts AttachOptions, pin string) (mechanism, error) {
	c := &s.clsacts
	c.mu.Lock()
	defer c.mu.Unlock()
	q := c.devs[dev]
	if q == nil {
		q = &shellClsact{filters: map[Hook][]*shellFilter{}}
	}
	fs := q.filters[hook]
	prios := make([]int, len(fs))
	for i, f := range fs {
		prios[i] = int(f.prio)
	}
	at := slices.IndexFunc(fs, func(f *shellFilter) bool {
		switch {
		case opts.BeforeProgram != nil, opts.AfterProgram != nil:
			return f.prog == opts.BeforeProgram || f.prog == opts.AfterProgram
		case opts.BeforeAttachment != nil, opts.AfterAttachment != nil:
			return f.att == opts.BeforeAttachment || f.att == opts.AfterAttachment
		}
		return false
	})
	prio, err := legacyPriority(prios, opts, at)
	if err != nil {
		return nil, err
	}
	if c.devs == nil {
		c.devs = map[*Link]*shellClsact{}
	}
	if c.devs[dev] == nil {
		c.devs[dev] = q
		s.line("%stc qdisc add dev %s clsact", inNs(dev.ns), shq(dev.name))
	}
	s.line("%stc filter add dev %s %s pref %d handle 1 bpf da object-pinned %s", inNs(dev.ns), shq(dev.name), hook, prio, pin)
	f := &shellFilter{prio: prio, prog: p, att: a}
	i, _ := slices.BinarySearchFunc(fs, prio, func(f *shellFilter, p uint16) int { return int(f.prio) - int(p) })
	q.filters[hook] = slices.Insert(fs, i, f)
	return &shellTCFilter{sh: s, dev: dev, hook: hook, f: f}, nil
}

// shellTCFilter is a cls_bpf filter of a dry run; detaching writes the
// commands that delete it, and the clsact qdisc with the last filter. At
// the end of the script bash's undo removes them with their device.
type shellTCFilter struct {
	standIn
	sh   *shell
	dev  *Link
	hook Hook
	f    *shellFilter
}

func (t *shellTCFilter) legacy() bool { return true }

func (t *shellTCFilter) detach() error {
	c := &t.sh.clsacts
	c.mu.Lock()
	defer c.mu.Unlock()
	q := c.devs[t.dev]
	if q == nil {
		return nil
	}
	t.sh.line("%stc filter del dev %s %s pref %d handle 1 bpf", inNs(t.dev.ns), shq(t.dev.name), t.hook, t.f.prio)
	q.filters[t.hook] = slices.DeleteFunc(q.filters[t.hook], func(f *shellFilter) bool { return f == t.f })
	if len(q.filters[HookIngress]) == 0 && len(q.filters[HookEgress]) == 0 {
		t.sh.line("%stc qdisc del dev %s clsact", inNs(t.dev.ns), shq(t.dev.name))
		delete(c.devs, t.dev)
	}
	return nil
}

// ipXDPMode is the mode's keyword for `ip link set dev X ... pinned`.
func (m XDPMode) ipXDPMode() string {
	if m == XDPGeneric {
		return "xdpgeneric"
	}
	return "xdpdrv"
}
