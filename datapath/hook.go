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
