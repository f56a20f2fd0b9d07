package datapath

import (
	"fmt"

	"github.com/cilium/ebpf"
)

// Hook is a place in the datapath a program can be attached to.
type Hook int

// Hooks. The zero Hook is invalid.
const (
	// HookIngress is tcx ingress: packets a device receives.
	HookIngress Hook = iota + 1
	// HookEgress is tcx egress: packets a device transmits.
	HookEgress
	// HookPrimary is a netkit pair's primary device: packets the primary
	// transmits, before they reach the peer.
	HookPrimary
	// HookPeer is a netkit pair's peer device: packets the peer transmits,
	// before they reach the primary.
	HookPeer
	// HookXDP is XDP: packets a device receives, before the kernel
	// allocates an skb. One program per device.
	HookXDP
)

var hookNames = map[Hook]string{
	HookIngress: "ingress",
	HookEgress:  "egress",
	HookPrimary: "primary",
	HookPeer:    "peer",
	HookXDP:     "xdp",
}

// String returns the hook's name as ParseHook accepts it.
func (h Hook) String() string {
	if s, ok := hookNames[h]; ok {
		return s
	}
	return fmt.Sprintf("Hook(%d)", int(h))
}

// ParseHook parses "ingress", "egress" (tcx), "primary" or "peer" (netkit).
func ParseHook(s string) (Hook, error) {
	for h := HookIngress; h <= HookXDP; h++ {
		if hookNames[h] == s {
			return h, nil
		}
	}
	return 0, fmt.Errorf("unknown hook %q: valid hooks are \"ingress\", \"egress\" (tcx), \"primary\", \"peer\" (netkit) and \"xdp\"", s)
}

func (h Hook) attachType() (ebpf.AttachType, bool) {
	switch h {
	case HookIngress:
		return ebpf.AttachTCXIngress, true
	case HookEgress:
		return ebpf.AttachTCXEgress, true
	case HookPrimary:
		return ebpf.AttachNetkitPrimary, true
	case HookPeer:
		return ebpf.AttachNetkitPeer, true
	case HookXDP:
		return ebpf.AttachXDP, true
	}
	return 0, false
}

// checkHookType says which program types a hook takes.
func checkHookType(p *Program, hook Hook) error {
	switch {
	case hook == HookXDP && p.typ != ebpf.XDP:
		return fmt.Errorf("program %s has type %s; the xdp hook takes XDP programs (SEC(\"xdp\"), e.g. the bundled xdp_pass, xdp_drop_port)", p.name, p.typ)
	case hook != HookXDP && p.typ != ebpf.SchedCLS:
		return fmt.Errorf("program %s has type %s; %s hooks take SchedCLS programs (SEC(\"tc\")); attach XDP programs to \"xdp\"", p.name, p.typ, hookFamily(hook))
	}
	return nil
}

// Netkit reports whether h is a netkit hook, attached through a pair's
// primary device.
func (h Hook) Netkit() bool { return hookFamily(h) == "netkit" }

// hookFamily is "tcx", "netkit" or "xdp".
func hookFamily(h Hook) string {
	switch h {
	case HookPrimary, HookPeer:
		return "netkit"
	case HookXDP:
		return "xdp"
	}
	return "tcx"
}

// Mechanism is how a program is attached to its hook. The zero Mechanism,
// MechAuto, is the default: tcx for "ingress" and "egress" where the
// kernel has it (legacy tc where it has not), a netkit link on the netkit
// hooks and an XDP link on "xdp".
type Mechanism string

// Mechanisms.
const (
	// MechAuto lets nkscript choose, as described on Mechanism.
	MechAuto Mechanism = ""
	// MechTCX is a tcx link (Linux 6.6), for "ingress" and "egress".
	MechTCX Mechanism = "tcx"
	// MechTC is a cls_bpf filter in direct-action mode on a clsact
	// qdisc, for "ingress" and "egress", whether or not the kernel has
	// tcx.
	MechTC Mechanism = "tc"
	// MechNetkit is a netkit link, for "primary" and "peer".
	MechNetkit Mechanism = "netkit"
	// MechXDP is an XDP link, for "xdp".
	MechXDP Mechanism = "xdp"
)

// ParseMechanism parses "auto", "tcx", "tc", "netkit" or "xdp".
func ParseMechanism(s string) (Mechanism, error) {
	switch m := Mechanism(s); m {
	case MechTCX, MechTC, MechNetkit, MechXDP:
		return m, nil
	case "auto":
		return MechAuto, nil
	}
	return "", fmt.Errorf("unknown mechanism %q: valid mechanisms are \"auto\", \"tcx\", \"tc\" (clsact + cls_bpf) for \"ingress\" and \"egress\", \"netkit\" for \"primary\" and \"peer\", and \"xdp\"", s)
}

// String returns the mechanism's name as ParseMechanism accepts it.
func (m Mechanism) String() string {
	if m == MechAuto {
		return "auto"
	}
	return string(m)
}

// XDPMode is where the kernel runs an XDP program. The zero XDPMode,
// XDPAuto, leaves the choice to the kernel: in the driver where the
// driver supports XDP, generic (after the skb is allocated) elsewhere.
type XDPMode string

// XDP modes.
const (
	// XDPAuto is the kernel's choice.
	XDPAuto XDPMode = ""
	// XDPGeneric runs the program in the core network stack on any
	// device (xdpgeneric).
	XDPGeneric XDPMode = "generic"
	// XDPDriver runs it in the device's driver (xdpdrv), which needs a
	// driver with native XDP, such as veth.
	XDPDriver XDPMode = "driver"
)

// ParseXDPMode parses "auto", "generic" or "driver".
func ParseXDPMode(s string) (XDPMode, error) {
	switch m := XDPMode(s); m {
	case XDPGeneric, XDPDriver:
		return m, nil
	case "auto":
		return XDPAuto, nil
	}
	return "", fmt.Errorf("unknown XDP mode %q: valid modes are \"auto\" (the kernel's choice), \"generic\" and \"driver\"", s)
}

// String returns the mode's name as ParseXDPMode accepts it.
func (m XDPMode) String() string {
	if m == XDPAuto {
		return "auto"
	}
	return string(m)
}

// mechanismFor is the mechanism a request for m on hook names: m itself,
// or for MechAuto the hook's own link type (tcx for "ingress" and
// "egress", where the kernel may still fall back to tc).
func mechanismFor(hook Hook, m Mechanism) Mechanism {
	if m != MechAuto {
		return m
	}
	return Mechanism(hookFamily(hook))
}

// checkMechanism checks that opts' mechanism and XDP mode fit hook.
func checkMechanism(hook Hook, opts AttachOptions) error {
	fits := map[Mechanism]bool{MechAuto: true}
	switch hookFamily(hook) {
	case "tcx":
		fits[MechTCX], fits[MechTC] = true, true
	case "netkit":
		fits[MechNetkit] = true
	case "xdp":
		fits[MechXDP] = true
	}
	if !fits[opts.Mechanism] {
		return fmt.Errorf("mechanism %q does not attach to hook %q: \"tcx\" and \"tc\" attach to \"ingress\" and \"egress\", \"netkit\" to \"primary\" and \"peer\", \"xdp\" to \"xdp\"", opts.Mechanism, hook)
	}
	if opts.XDPMode != XDPAuto && hook != HookXDP {
		return fmt.Errorf("an XDP mode (%q) is for the \"xdp\" hook, not %q", opts.XDPMode, hook)
	}
	return nil
}
