package datapath

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// bpfLink is an attachment through a BPF link: the program stays on the
// hook while the link is open or pinned.
type bpfLink struct{ l link.Link }

func (b bpfLink) detach() error  { return b.l.Close() }
func (b bpfLink) release() error { return b.l.Close() }
func (b bpfLink) legacy() bool   { return false }

func (b bpfLink) pin(path string) (bool, error) { return true, b.l.Pin(path) }

// tcxLink is a program on a device's tcx ingress or egress (Linux 6.6).
type tcxLink struct{ bpfLink }

// netkitLink is a program on a netkit pair's primary or peer hook.
type netkitLink struct{ bpfLink }

// xdpLink is an XDP program on a device.
type xdpLink struct{ bpfLink }

// AttachProgram attaches p to hook on the device with ifindex in ns. The
// tcx hooks take any device; the netkit hooks need the ifindex of a netkit
// pair's primary device. On a kernel without tcx, ingress and egress
// programs become legacy tc filters, as they do on any kernel with
// opts.Mechanism MechTC. Errors for a kernel without tcx or netkit wrap
// ErrNotSupported; for XDPDriver on a device without native XDP,
// ErrNoNativeXDP.
func AttachProgram(p *Program, ns *Netns, ifindex int, hook Hook, opts AttachOptions) (*Attachment, error) {
	if _, ok := hook.attachType(); !ok {
		return nil, fmt.Errorf("attach program: invalid hook %s", hook)
	}
	prog, err := p.kernelProgram()
	if err != nil {
		return nil, fmt.Errorf("attach program %s: %w", p.name, err)
	}
	defer prog.Close()
	what := fmt.Sprintf("attach %s to %s ifindex %d in netns %s", p.name, hook, ifindex, ns.Name())
	if opts.Mechanism != MechAuto {
		what += " by " + opts.Mechanism.String()
	}
	anchor, err := checkAttach(p, ifindex, hook, opts, what)
	if err != nil {
		return nil, err
	}
	if opts.Mechanism == MechTC {
		return attachLegacyTC(p, prog, ns, ifindex, hook, opts, what)
	}
	var mech mechanism
	var l link.Link
	err = ns.Do(func() error {
		l, mech, err = attachLink(prog, ifindex, hook, opts, anchor)
		return err
	})
	if hookFamily(hook) == "tcx" && opts.Mechanism == MechAuto && errors.Is(err, ebpf.ErrNotSupported) {
		// link.AttachTCX probes the kernel for tcx links when it fails.
		return attachLegacyTC(p, prog, ns, ifindex, hook, opts, what)
	}
	if err != nil && anchor != nil && (errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ERANGE)) {
		return nil, fmt.Errorf("%s: %s is not attached to that hook; see chain() for what is: %w", what, opts.describe(), err)
	}
	if err != nil && opts.XDPMode == XDPDriver && errors.Is(err, unix.EOPNOTSUPP) {
		return nil, fmt.Errorf("%s: device %s has no native XDP (its driver cannot run XDP programs): %w: %w", what, deviceName(ns, ifindex), ErrNoNativeXDP, err)
	}
	if err != nil {
		return nil, attachError(what, hook, err)
	}
	a, err := linkAttachment(p, ifindex, hook, l, mech, what)
	if err == nil && hook == HookXDP {
		a.mode = xdpModeOf(ns, ifindex, opts.XDPMode)
	}
	return a, err
}

// ErrNoNativeXDP is XDPDriver asked of a device whose driver has no
// native XDP.
var ErrNoNativeXDP = errors.New("no native XDP")

// attachLink attaches prog through a BPF link of the hook's kind, on the
// calling thread's namespace.
func attachLink(prog *ebpf.Program, ifindex int, hook Hook, opts AttachOptions, anchor link.Anchor) (link.Link, mechanism, error) {
	at, _ := hook.attachType()
	switch hookFamily(hook) {
	case "tcx":
		l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: at, Anchor: anchor})
		return l, tcxLink{bpfLink{l}}, err
	case "xdp":
		l, err := link.AttachXDP(link.XDPOptions{Interface: ifindex, Program: prog, Flags: opts.XDPMode.flags()})
		return l, xdpLink{bpfLink{l}}, err
	}
	l, err := link.AttachNetkit(link.NetkitOptions{Interface: ifindex, Program: prog, Attach: at, Anchor: anchor})
	return l, netkitLink{bpfLink{l}}, err
}

func (m XDPMode) flags() link.XDPAttachFlags {
	switch m {
	case XDPGeneric:
		return link.XDPGenericMode
	case XDPDriver:
		return link.XDPDriverMode
	}
	return 0
}

// xdpModeOf is the mode of the XDP program on a device, as the kernel
// reports it; asked if the kernel does not say.
func xdpModeOf(ns *Netns, ifindex int, asked XDPMode) XDPMode {
	k, err := nlQuery(ns, (*netlink.Handle).LinkByIndex, ifindex)
	if err != nil || k.Attrs().Xdp == nil {
		return asked
	}
	switch k.Attrs().Xdp.AttachMode {
	case nl.XDP_ATTACHED_DRV:
		return XDPDriver
	case nl.XDP_ATTACHED_SKB:
		return XDPGeneric
	}
	return asked
}

// deviceName names the device with ifindex in ns for a message.
func deviceName(ns *Netns, ifindex int) string {
	if k, err := nlQuery(ns, (*netlink.Handle).LinkByIndex, ifindex); err == nil {
		return fmt.Sprintf("%q", k.Attrs().Name)
	}
	return fmt.Sprintf("ifindex %d", ifindex)
}

// checkAttach checks an attach request and returns its anchor.
func checkAttach(p *Program, ifindex int, hook Hook, opts AttachOptions, what string) (link.Anchor, error) {
	if err := checkHookType(p, hook); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := checkMechanism(hook, opts); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if ifindex <= 0 {
		return nil, fmt.Errorf("%s: invalid ifindex", what)
	}
	anchor, err := opts.anchor()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if hook == HookXDP && anchor != nil {
		return nil, fmt.Errorf("%s: XDP takes one program per device: there is no order to choose", what)
	}
	return anchor, nil
}

// linkAttachment wraps a new BPF link as an Attachment.
func linkAttachment(p *Program, ifindex int, hook Hook, l link.Link, mech mechanism, what string) (*Attachment, error) {
	info, err := l.Info()
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("%s: link info: %w", what, err)
	}
	return &Attachment{progID: p.id, id: uint32(info.ID), hook: hook, prog: p.name, ifindex: ifindex, mech: mech, how: Mechanism(hookFamily(hook))}, nil
}

// Chain lists the names of the programs on a tcx or netkit hook of a
// device, in the order they run, whoever attached them. On "ingress" and
// "egress" the cls_bpf filters of a clsact qdisc run after the tcx
// programs, and are listed after them.
func Chain(ns *Netns, ifindex int, hook Hook) ([]string, error) {
	at, ok := hook.attachType()
	if !ok || hook == HookXDP {
		return nil, fmt.Errorf("chain: hook %s has no chain; use a tcx or netkit hook", hook)
	}
	var names []string
	err := ns.Do(func() error {
		res, err := link.QueryPrograms(link.QueryOptions{Target: ifindex, Attach: at})
		if err != nil {
			return err
		}
		for _, ap := range res.Programs {
			name := fmt.Sprintf("id %d", ap.ID)
			if prog, err := ebpf.NewProgramFromID(ap.ID); err == nil {
				if info, err := prog.Info(); err == nil && info.Name != "" {
					name = info.Name
				}
				prog.Close()
			}
			names = append(names, name)
		}
		return nil
	})
	what := fmt.Sprintf("chain of %s ifindex %d in netns %s", hook, ifindex, ns.Name())
	if err != nil {
		return nil, attachError(what, hook, err)
	}
	if hookFamily(hook) == "tcx" {
		tc, err := legacyChain(ns, ifindex, hook)
		if err != nil {
			return nil, fmt.Errorf("%s: tc filters: %w", what, err)
		}
		names = append(names, tc...)
	}
	return names, nil
}

func attachError(what string, hook Hook, err error) error {
	switch {
	case errors.Is(err, ebpf.ErrNotSupported):
		if hookFamily(hook) == "netkit" {
			return fmt.Errorf("%s: the running kernel %s cannot attach to netkit devices (needs CONFIG_NETKIT, Linux 6.7 or later): %w: %w", what, KernelRelease(), ErrNotSupported, err)
		}
		return fmt.Errorf("%s: the running kernel %s has no tcx (needs Linux 6.6 or later): %w: %w", what, KernelRelease(), ErrNotSupported, err)
	case hookFamily(hook) == "netkit" && errors.Is(err, unix.ENXIO):
		return fmt.Errorf("%s: the device is not a netkit device; use \"ingress\" or \"egress\" (tcx) on other devices: %w", what, err)
	case hookFamily(hook) == "netkit" && errors.Is(err, unix.EACCES):
		return fmt.Errorf("%s: the device is a netkit peer; attach through the pair's primary device: %w", what, err)
	case errors.Is(err, unix.ENODEV):
		return fmt.Errorf("%s: no such device in the namespace: %w", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
