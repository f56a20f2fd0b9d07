package datapath

import (
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// feature caches the result of a probe of the running kernel, as
// cilium/ebpf's feature tests do: a conclusive result, nil (the kernel
// has the feature) or an error wrapping ErrNotSupported (it has not), is
// kept for the life of the process; any other error means the probe could
// not tell (no privilege, no memory, ...) and the next call probes again.
// Nothing runs before the first call.
type feature struct {
	probe func() error

	mu   sync.Mutex
	done bool
	err  error
}

// result returns the cached result, or probes: one probe at a time.
func (f *feature) result() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done {
		return f.err
	}
	err := f.probe()
	if err == nil || errors.Is(err, ErrNotSupported) {
		f.done, f.err = true, err
	}
	return err
}

// inconclusive reports whether err says that a probe could not run (no
// privilege, no memory, a busy or interrupted call) rather than that the
// kernel lacks what it probed for.
func inconclusive(err error) bool {
	for _, e := range []error{unix.EPERM, unix.EACCES, unix.ENOMEM, unix.ENOBUFS, unix.EAGAIN, unix.EBUSY, unix.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

var tcxFeature = &feature{probe: probeTCX}

// HaveTCX reports whether the running kernel can attach BPF programs to
// devices through tcx links (Linux 6.6 or later). It returns nil or an
// error wrapping ErrNotSupported, and then probes no more; other errors,
// such as missing privileges, mean the probe could not tell, and the next
// call probes again.
func HaveTCX() error { return tcxFeature.result() }

// probeTCX asks link.AttachTCX, which knows whether the kernel has tcx
// links, to attach a program to a device that does not exist.
func probeTCX() error {
	if err := removeMemlock(); err != nil {
		return fmt.Errorf("probe tcx: %w", err)
	}
	prog, err := probeProgram(ebpf.SchedCLS)
	if err != nil {
		return fmt.Errorf("probe tcx: load program: %w", err)
	}
	defer prog.Close()
	// No device has this ifindex: a kernel with tcx looks it up and fails
	// with ENODEV, one without rejects the attach type first.
	l, err := link.AttachTCX(link.TCXOptions{Interface: math.MaxInt32, Program: prog, Attach: ebpf.AttachTCXIngress})
	switch {
	case err == nil:
		l.Close()
		return nil
	case errors.Is(err, unix.ENODEV):
		return nil
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("tcx: the running kernel %s has no tcx links (needs Linux 6.6 or later): %w", KernelRelease(), ErrNotSupported)
	default:
		return fmt.Errorf("probe tcx: %w", err)
	}
}

// probeProgram loads a program of type typ that returns 0, for a probe.
func probeProgram(typ ebpf.ProgramType) (*ebpf.Program, error) {
	return ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:    "nkscript_probe",
		Type:    typ,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, 0),
			asm.Return(),
		},
	})
}
