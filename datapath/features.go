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

// HaveTCX reports whether the running kernel can attach BPF programs to
// devices through tcx links (Linux 6.6 or later). It returns nil or an
// error wrapping ErrNotSupported; other errors, such as missing
// privileges, mean the probe could not tell. The probe runs once per
// process.
var HaveTCX = sync.OnceValue(probeTCX)

func probeTCX() error {
	if err := removeMemlock(); err != nil {
		return fmt.Errorf("probe tcx: %w", err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:    "nkscript_probe",
		Type:    ebpf.SchedCLS,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, 0),
			asm.Return(),
		},
	})
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
