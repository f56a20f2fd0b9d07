package datapath

import (
	"errors"
	"fmt"
	"os"

	"github.com/vishvananda/netlink"
)

// NewBridge creates a bridge called name in ns, enslaves ports (links in
// ns) and sets it up. A bridge in a namespace the lab did not create is
// journaled and deleted by identity on Close; in the lab's own namespaces
// it goes with the namespace.
func (l *Lab) NewBridge(ns *Netns, name string, ports []*Link, mtu int) (*Link, error) {
	defer l.Timed(PhaseLinks)()
	if err := l.checkOpenLocked(); err != nil {
		return nil, err
	}
	if ns == nil {
		ns = l.host
	}
	l.mu.Lock()
	owned := l.owned[ns.id] == ns
	l.mu.Unlock()
	if !owned && l.prefix != "" {
		name = l.prefix + name
	}
	if err := CheckIfName(name); err != nil {
		return nil, err
	}
	if mtu != 0 && (mtu < 68 || mtu > 65535) {
		return nil, fmt.Errorf("mtu %d is out of range 68..65535", mtu)
	}
	for _, p := range ports {
		if p.ns != ns {
			return nil, fmt.Errorf("bridge %s: port %s is in namespace %s, not %s; a bridge's ports share its namespace", name, p.name, p.ns.name, ns.name)
		}
	}
	if err := l.fault("bridge " + name); err != nil {
		return nil, err
	}
	br := &Link{ns: ns, name: name, kind: "bridge", up: true}
	if l.sh != nil {
		cmd := fmt.Sprintf("%s link add %s", ipn(ns), shq(name))
		if mtu != 0 {
			cmd += fmt.Sprintf(" mtu %d", mtu)
		}
		l.Shell("%s type bridge", cmd)
		if !owned {
			l.Shell("undo %s link del %s", ipn(ns), shq(name))
		}
		br.index = l.dryIndex()
		for _, p := range ports {
			l.Shell("%s link set %s master %s", ipn(ns), shq(p.name), shq(name))
		}
		l.Shell("%s link set %s up", ipn(ns), shq(name))
		l.mu.Lock()
		l.links = append(l.links, br)
		l.mu.Unlock()
		return br, nil
	}
	dev := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: mtu}}
	if err := ns.nl.LinkAdd(dev); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, exists("create bridge %s in %s: a link with that name exists already and is not this run's; pick another name", name, ns.name)
		}
		return nil, fmt.Errorf("create bridge %s in %s: %w", name, ns.name, err)
	}
	got, err := ns.nl.LinkByName(name)
	if err != nil {
		ns.nl.LinkDel(dev)
		return nil, fmt.Errorf("create bridge %s: look it up: %w", name, err)
	}
	br.index = got.Attrs().Index
	if !owned {
		l.mu.Lock()
		seq, err := l.journal.Append(Entry{Op: "link", NS: ns.id, Ifindex: br.index, Name: name, Kind: "bridge"})
		if err != nil {
			l.mu.Unlock()
			ns.nl.LinkDel(dev)
			return nil, err
		}
		l.push("bridge "+name, seq, func() error { return deleteLinkByIdentity(ns, br.index, name, "bridge") })
		l.mu.Unlock()
	}
	l.mu.Lock()
	l.links = append(l.links, br)
	l.mu.Unlock()
	for _, p := range ports {
		if err := l.SetMaster(p, br); err != nil {
			return nil, err
		}
	}
	if err := ns.nl.LinkSetUp(br.nlLink()); err != nil {
		return nil, fmt.Errorf("set bridge %s up: %w", name, err)
	}
	return br, nil
}

// SetMaster enslaves k to the bridge br (nil: releases it).
func (l *Lab) SetMaster(k, br *Link) error {
	if err := l.checkOpenLocked(); err != nil {
		return err
	}
	if br != nil && (br.kind != "bridge" || br.ns != k.ns) {
		if br.kind != "bridge" {
			return fmt.Errorf("set %s master %s: %s is not a bridge", k.name, br.name, br.name)
		}
		return fmt.Errorf("set %s master %s: the bridge is in namespace %s, the link in %s", k.name, br.name, br.ns.name, k.ns.name)
	}
	what := "nomaster"
	if br != nil {
		what = "master " + br.name
	}
	if err := l.fault(fmt.Sprintf("link set %s %s", k.name, what)); err != nil {
		return err
	}
	if l.sh != nil {
		l.Shell("%s link set %s %s", ipn(k.ns), shq(k.name), what)
		return nil
	}
	var err error
	if br == nil {
		err = k.ns.nl.LinkSetNoMaster(k.nlLink())
	} else {
		err = k.ns.nl.LinkSetMasterByIndex(k.nlLink(), br.index)
	}
	if err != nil {
		return fmt.Errorf("set %s %s: %w", k.name, what, err)
	}
	return nil
}

// SetMTU sets a link's MTU.
func (l *Lab) SetMTU(k *Link, mtu int) error {
	if err := l.checkOpenLocked(); err != nil {
		return err
	}
	if mtu < 68 || mtu > 65535 {
		return fmt.Errorf("mtu %d is out of range 68..65535", mtu)
	}
	if err := l.fault(fmt.Sprintf("link set %s mtu %d", k.name, mtu)); err != nil {
		return err
	}
	if l.sh != nil {
		l.Shell("%s link set %s mtu %d", ipn(k.ns), shq(k.name), mtu)
	} else if err := k.ns.nl.LinkSetMTU(k.nlLink(), mtu); err != nil {
		return fmt.Errorf("set %s mtu %d: %w", k.name, mtu, err)
	}
	k.mu.Lock()
	k.mtu = mtu
	k.mu.Unlock()
	return nil
}

// MTU is the MTU the lab set, or the kernel's for the device (0 if it
// cannot tell, in a dry run).
func (k *Link) MTU() int {
	k.mu.Lock()
	mtu := k.mtu
	k.mu.Unlock()
	if mtu != 0 || k.ns.nl == nil {
		return mtu
	}
	if dev, err := k.ns.nl.LinkByIndex(k.index); err == nil {
		return dev.Attrs().MTU
	}
	return 0
}

// Kind is "veth", "netkit", "bridge" or "loopback".
func (k *Link) Kind() string {
	switch {
	case k.pair != nil:
		return string(k.pair.Kind)
	case k.loop:
		return "loopback"
	}
	return k.kind
}
