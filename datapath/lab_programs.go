package datapath

import "fmt"

// LoadProgram loads a BPF program; it is closed with the lab.
func (l *Lab) LoadProgram(spec ProgramSpec) (*Program, error) {
	if err := l.checkOpenLocked(); err != nil {
		return nil, err
	}
	p, err := l.b.LoadProgram(spec)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.progs = append(l.progs, p)
	l.mu.Unlock()
	return p, nil
}

// hookTarget is the device a program on hook of k is attached through:
// for the netkit hooks, the pair's primary device, as the kernel requires.
func hookTarget(k *Link, hook Hook) (*Link, error) {
	if !hook.Netkit() {
		return k, nil
	}
	if k.pair == nil || k.pair.Kind != Netkit {
		return nil, &HookDeviceError{Hook: hook, Link: k.name, Kind: k.kindName()}
	}
	return k.pair.Primary, nil
}

// HookDeviceError is a netkit hook asked of a device that is not netkit.
type HookDeviceError struct {
	Hook Hook
	Link string
	Kind string
}

func (e *HookDeviceError) Error() string {
	return fmt.Sprintf("hook %q needs a netkit device, but %s is a %s", e.Hook, e.Link, e.Kind)
}

// Attach attaches p to a link's hook. For the netkit hooks the program is
// attached through the pair's primary device, as the kernel requires.
func (l *Lab) Attach(p *Program, k *Link, hook Hook, opts AttachOptions) (*Attachment, error) {
	if err := l.checkOpenLocked(); err != nil {
		return nil, err
	}
	if err := live([]*Link{k}, k.ns); err != nil {
		return nil, err
	}
	target, err := hookTarget(k, hook)
	if err != nil {
		return nil, fmt.Errorf("%w; use \"ingress\" or \"egress\" (tcx)", err)
	}
	a, err := l.b.Attach(p, target, hook, opts)
	if err != nil {
		return nil, err
	}
	a.on = target
	l.mu.Lock()
	defer l.mu.Unlock()
	if a.isLegacy() && opts.Mechanism != MechTC && !l.noticed && l.notice != nil {
		l.noticed = true
		l.notice(fmt.Sprintf("kernel %s has no tcx (Linux ≥ 6.6): attaching ingress/egress programs as legacy tc filters (clsact + cls_bpf, direct-action) instead", KernelRelease()))
	}
	l.attached = append(l.attached, a)
	l.dropmon.traceVerdicts(p, a)
	return a, nil
}

// Chain lists the programs on a link's tcx or netkit hook, in order; for
// netkit hooks the link may be either end of the pair.
func (l *Lab) Chain(k *Link, hook Hook) ([]string, error) {
	if err := live([]*Link{k}); err != nil {
		return nil, err
	}
	target, err := hookTarget(k, hook)
	if err != nil {
		return nil, err
	}
	return l.b.Chain(target, hook, l.Attachments())
}

// Attachments lists every attachment the lab made, in order, detached
// ones included.
func (l *Lab) Attachments() []*Attachment {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Attachment(nil), l.attached...)
}
