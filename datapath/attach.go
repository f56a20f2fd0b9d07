package datapath

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Attachment is a program attached to a hook of a device. How it is
// attached is its mechanism: a tcx, netkit or XDP BPF link, a legacy tc
// filter, or a line of a dry run's shell script. Nothing is pinned:
// detaching, or the process exiting, removes it (--keep pins it).
type Attachment struct {
	id      uint32 // the BPF link's ID; the program's for a tc filter
	progID  uint32
	hook    Hook
	prog    string
	ifindex int
	on      *Link // the device it was attached to
	how     Mechanism
	mode    XDPMode // for XDP: where the program runs, if known

	mu     sync.Mutex
	mech   mechanism // nil once detached
	gone   bool      // Detach was called
	tracer io.Closer // the drop monitor's fexit link on the program, if any
}

// mechanism is one way of attaching a program.
type mechanism interface {
	// detach removes the program from its hook.
	detach() error
	// release lets go of the attachment when the lab closes: for what
	// the process holds, the same as detach.
	release() error
	// pin keeps the attachment past the process at path; it reports
	// whether there was anything to pin.
	pin(path string) (bool, error)
	// legacy reports whether it is a legacy tc filter.
	legacy() bool
}

// Device is the link the program was attached to; nil if unknown.
func (a *Attachment) Device() *Link { return a.on }

// Program is the attached program's name.
func (a *Attachment) Program() string { return a.prog }

// ID is the BPF link's ID in the kernel.
func (a *Attachment) ID() uint32 { return a.id }

// Hook is the hook the program is attached to.
func (a *Attachment) Hook() Hook { return a.hook }

// Mechanism is how the program is attached: MechTCX, MechTC, MechNetkit
// or MechXDP, never MechAuto.
func (a *Attachment) Mechanism() Mechanism { return a.how }

// XDPMode is where an XDP program runs: XDPGeneric or XDPDriver as the
// kernel reports it, or as asked where nothing is attached for real
// (--dry-run); XDPAuto for other hooks.
func (a *Attachment) XDPMode() XDPMode { return a.mode }

// Detached reports whether Detach was called.
func (a *Attachment) Detached() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.gone
}

// Detach removes the program from its hook. It is idempotent.
func (a *Attachment) Detach() error {
	return a.end(mechanism.detach)
}

// release ends the attachment when the lab closes.
func (a *Attachment) release() error {
	return a.end(mechanism.release)
}

func (a *Attachment) end(how func(mechanism) error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.gone = true
	if a.tracer != nil {
		a.tracer.Close()
		a.tracer = nil
	}
	m := a.mech
	a.mech = nil
	if m == nil {
		return nil
	}
	if err := how(m); err != nil {
		return fmt.Errorf("detach %s from %s ifindex %d: %w", a.prog, a.hook, a.ifindex, err)
	}
	return nil
}

// pin pins a live attachment at path; see mechanism.pin.
func (a *Attachment) pin(path string) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.mech == nil {
		return false, nil
	}
	return a.mech.pin(path)
}

// standInAttachment is an attachment of p that holds nothing, after the
// checks a kernel attach makes first; its mechanism and XDP mode are the
// ones asked for.
func standInAttachment(p *Program, target *Link, hook Hook, opts AttachOptions) (*Attachment, error) {
	if err := checkHookType(p, hook); err != nil {
		return nil, err
	}
	if err := checkMechanism(hook, opts); err != nil {
		return nil, err
	}
	return &Attachment{hook: hook, prog: p.name, ifindex: target.index, mech: standIn{},
		how: mechanismFor(hook, opts.Mechanism), mode: opts.XDPMode}, nil
}

// isLegacy reports whether the attachment is a legacy tc filter.
func (a *Attachment) isLegacy() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.mech != nil && a.mech.legacy()
}

// AttachOptions choose how a program is attached and place it among the
// others on a tcx, tc or netkit hook. At most one of the placing fields
// may be set; none appends, as Last does.
type AttachOptions struct {
	// Mechanism forces a way of attaching (see Mechanism); it must fit
	// the hook.
	Mechanism Mechanism
	// XDPMode forces an XDP mode; only for the "xdp" hook.
	XDPMode XDPMode

	// First puts the program before every other.
	First bool
	// Last puts it after every other.
	Last bool
	// Before and After put it right before or after an attached
	// program (any attachment of it) or attachment.
	BeforeProgram, AfterProgram       *Program
	BeforeAttachment, AfterAttachment *Attachment
}

func (o AttachOptions) count() int {
	n := 0
	for _, set := range []bool{o.First, o.Last, o.BeforeProgram != nil, o.AfterProgram != nil, o.BeforeAttachment != nil, o.AfterAttachment != nil} {
		if set {
			n++
		}
	}
	return n
}

func (o AttachOptions) describe() string {
	switch {
	case o.BeforeProgram != nil:
		return "program " + o.BeforeProgram.name
	case o.AfterProgram != nil:
		return "program " + o.AfterProgram.name
	case o.BeforeAttachment != nil:
		return "the attachment of " + o.BeforeAttachment.prog
	case o.AfterAttachment != nil:
		return "the attachment of " + o.AfterAttachment.prog
	}
	return "the anchor"
}

func (o AttachOptions) anchor() (link.Anchor, error) {
	if o.count() > 1 {
		return nil, errors.New("give at most one of first, last, before and after")
	}
	switch {
	case o.First:
		return link.Head(), nil
	case o.Last:
		return link.Tail(), nil
	case o.BeforeProgram != nil:
		return link.BeforeProgramByID(ebpf.ProgramID(o.BeforeProgram.id)), nil
	case o.AfterProgram != nil:
		return link.AfterProgramByID(ebpf.ProgramID(o.AfterProgram.id)), nil
	case o.BeforeAttachment != nil:
		return link.BeforeLinkByID(link.ID(o.BeforeAttachment.id)), nil
	case o.AfterAttachment != nil:
		return link.AfterLinkByID(link.ID(o.AfterAttachment.id)), nil
	}
	return nil, nil
}
