package builtins

import (
	"fmt"

	"github.com/nkscript/nkscript/datapath"
	"go.starlark.net/starlark"
)

// Kernel is the predeclared value `kernel`: what the running kernel offers.
// Its feature attributes probe the kernel on first use (once per process),
// so a script that never asks pays nothing.
type Kernel struct{ object }

var kernelAttrs = []string{"netkit", "release", "tcx"}

// String returns "kernel(RELEASE)".
func (k *Kernel) String() string { return fmt.Sprintf("kernel(%q)", datapath.KernelRelease()) }

// Type returns "kernel".
func (k *Kernel) Type() string { return "kernel" }

// Hash returns an error: kernel is not hashable.
func (k *Kernel) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: kernel") }

// AttrNames lists the attributes.
func (k *Kernel) AttrNames() []string { return kernelAttrs }

// Attr returns an attribute: release (string), netkit and tcx (bool).
func (k *Kernel) Attr(name string) (starlark.Value, error) {
	switch name {
	case "release":
		return starlark.String(datapath.KernelRelease()), nil
	case "netkit":
		return starlark.Bool(datapath.HaveNetkit() == nil), nil
	case "tcx":
		return starlark.Bool(datapath.HaveTCX() == nil), nil
	}
	return nil, nil
}
