package datapath

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/nkscript/nkscript/bpf"
	"golang.org/x/sys/unix"
)

// Where the kernel has BPF trampolines, the drop monitor runs an fexit
// program (bpf/drop_verdict.c) after every tc, tcx and netkit program the
// lab attaches. It records the address of each skb the program returns
// the drop verdict for, with the program's ID, in a map it shares with
// the monitor's kfree_skb program, which puts the ID into the drop's
// record: the explanation then names exactly the program that dropped
// the packet rather than every program on the hook. The fexit links are
// file descriptors of the process, held by the attachment they trace:
// detaching it, closing the lab or the process ending removes them, and
// they are never pinned, so nothing of them is journaled. Where fexit
// cannot run (no trampolines, a program without BTF) the explanation
// lists the hook's programs, as it does without it.

var fexitFeature = &feature{probe: probeFexit}

// haveFexit reports whether the running kernel can run fexit programs on
// BPF programs (BPF trampolines). It returns nil or an error wrapping
// ErrNotSupported, and then probes no more; other errors mean the probe
// could not tell, and the next call probes again.
func haveFexit() error { return fexitFeature.result() }

// probeFexit traces the bundled pass program, loaded for the probe, with
// the drop monitor's fexit program.
func probeFexit() error {
	if err := removeMemlock(); err != nil {
		return fmt.Errorf("probe fexit: %w", err)
	}
	spec, err := bpf.Spec("pass")
	if err != nil {
		return fmt.Errorf("probe fexit: %w", err)
	}
	fn, err := bpf.Function("pass")
	if err != nil {
		return fmt.Errorf("probe fexit: %w", err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return fmt.Errorf("probe fexit: load pass: %w", err)
	}
	defer coll.Close()
	l, err := traceVerdicts(coll.Programs[fn], fn, 0, nil)
	switch {
	case err == nil:
		l.Close()
		return nil
	case errors.Is(err, unix.EPERM) && tracingAllowed():
		// The process may load tracing programs, but not this one: the
		// kernel (or a security module) refuses fexit on BPF programs.
		return fmt.Errorf("fexit: the running kernel %s refuses fexit programs on BPF programs: %v: %w", KernelRelease(), err, ErrNotSupported)
	case inconclusive(err):
		return fmt.Errorf("probe fexit: %w", err)
	default:
		return fmt.Errorf("fexit: the running kernel %s cannot trace BPF programs (no BPF trampolines): %v: %w", KernelRelease(), err, ErrNotSupported)
	}
}

// tracingAllowed reports whether the process may load tracing programs
// (CAP_BPF and CAP_PERFMON): whether a raw tracepoint program, which
// needs the same privileges as an fexit one but no trampoline, loads.
func tracingAllowed() bool {
	prog, err := probeProgram(ebpf.RawTracepoint)
	if err != nil {
		return false
	}
	prog.Close()
	return true
}

// dropVerdictSpec parses bpf/drop_verdict.c's object once; callers load
// copies of it.
var dropVerdictSpec = sync.OnceValues(bpf.LoadDropVerdict)

// traceVerdicts loads the fexit program for target, whose BTF function is
// fn and ID id, and attaches it. It records drops in verdicts, or in a
// map of its own if verdicts is nil.
func traceVerdicts(target *ebpf.Program, fn string, id uint32, verdicts *ebpf.Map) (link.Link, error) {
	parsed, err := dropVerdictSpec()
	if err != nil {
		return nil, fmt.Errorf("drop verdicts: %w", err)
	}
	spec := parsed.Copy()
	if err := spec.Variables[bpf.DropVerdictProgID].Set(id); err != nil {
		return nil, fmt.Errorf("drop verdicts: %w", err)
	}
	ps := spec.Programs[bpf.DropVerdictProgram]
	ps.AttachTarget, ps.AttachTo = target, fn
	var opts ebpf.CollectionOptions
	if verdicts != nil {
		opts.MapReplacements = map[string]*ebpf.Map{bpf.DropVerdicts: verdicts}
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, opts)
	if err != nil {
		return nil, fmt.Errorf("drop verdicts: load fexit on %s: %w", fn, err)
	}
	// The link holds the program and, through it, the map.
	defer coll.Close()
	l, err := link.AttachTracing(link.TracingOptions{Program: coll.Programs[bpf.DropVerdictProgram], AttachType: ebpf.AttachTraceFExit})
	if err != nil {
		return nil, fmt.Errorf("drop verdicts: attach fexit to %s: %w", fn, err)
	}
	return l, nil
}

// traceVerdicts starts recording which program of a's hook drops what:
// an fexit program on p, held by a. Nothing happens for a stand-in
// monitor, an XDP attachment, a kernel without trampolines or a program
// that cannot be traced (no BTF); the explanation then lists the hook's
// programs.
func (m *DropMonitor) traceVerdicts(p *Program, a *Attachment) {
	if !m.Active() || p == nil || a.hook == HookXDP || haveFexit() != nil {
		return
	}
	target, fn, ok := p.traceTarget()
	if !ok {
		return
	}
	defer target.Close()
	if info, err := target.Info(); err != nil {
		return
	} else if _, ok := info.BTFID(); !ok {
		return
	}
	l, err := traceVerdicts(target, fn, p.id, m.k.verdicts)
	if err != nil {
		return
	}
	a.holdTracer(l)
}

// traceTarget returns a reference of the caller's own to p's kernel
// program and the name of its function; false for a stand-in.
func (p *Program) traceTarget() (*ebpf.Program, string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	kp, ok := p.impl.(*kernelProg)
	if !ok {
		return nil, "", false
	}
	for fn, q := range kp.coll.Programs {
		if q != kp.prog {
			continue
		}
		target, err := kp.prog.Clone()
		if err != nil {
			return nil, "", false
		}
		return target, fn, true
	}
	return nil, "", false
}

// holdTracer gives a the fexit link that traces its program, closed when
// a is detached; at once if it already is.
func (a *Attachment) holdTracer(l io.Closer) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.mech == nil || a.tracer != nil {
		l.Close()
		return
	}
	a.tracer = l
}

// traceAttached traces the programs of the lab's live attachments, when
// the monitor starts after they were attached. l.mu is held.
func (m *DropMonitor) traceAttached(l *Lab) {
	for _, a := range l.attached {
		for _, p := range l.progs {
			if p.id == a.progID && !a.Detached() {
				m.traceVerdicts(p, a)
				break
			}
		}
	}
}
