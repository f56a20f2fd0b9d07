package datapath

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
)

// NewPair creates a veth or netkit pair with each end created directly in
// its namespace: moving a device between namespaces afterwards costs ~20x
// more than creating it in place.
func (l *Lab) NewPair(o PairOptions) (*Pair, error) {
	if o.PrimaryNs == nil {
		o.PrimaryNs = l.host
	}
	if o.PeerNs == nil {
		o.PeerNs = o.PrimaryNs
	}
	if err := live(nil, o.PrimaryNs, o.PeerNs); err != nil {
		return nil, err
	}
	if err := l.prefixPairNames(&o); err != nil {
		return nil, err
	}
	if err := checkPairOptions(o); err != nil {
		return nil, err
	}
	pair := &Pair{Kind: o.Kind}
	if o.Kind == Netkit {
		pair.Mode = netkitModeName(o.Mode)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	// The namespaces first: a pointer comparison rules out nearly every
	// link of a large lab before any name is compared.
	for _, k := range l.links {
		if (k.ns == o.PrimaryNs && k.name == o.Primary) || (k.ns == o.PeerNs && k.name == o.Peer) {
			return nil, exists("this script already created a link named %q in namespace %s; pick another name", k.name, k.ns.name)
		}
	}
	primIdx, peerIdx, err := l.createPair(o)
	if err != nil {
		return nil, err
	}
	pair.Primary = &Link{ns: o.PrimaryNs, index: primIdx, name: o.Primary, pair: pair, prim: true}
	pair.Peer = &Link{ns: o.PeerNs, index: peerIdx, name: o.Peer, pair: pair}
	l.links = append(l.links, pair.Primary, pair.Peer)
	return pair, nil
}

// createPair has the backend create the pair o and journals it if an end
// is in a namespace the lab did not create: a pair lives until either
// end is deleted, so that end is deleted explicitly (by identity);
// otherwise the pair goes when the lab's namespace goes. A primary end
// outside is journaled before it is made (createOutside); a peer end
// outside, whose primary is in the lab's namespace, right after (a run
// killed in between leaves it to cleanup, which deletes the ends in the
// run's namespaces whose peers are outside). l.mu is held.
func (l *Lab) createPair(o PairOptions) (int, int, error) {
	if l.owned[o.PrimaryNs.id] == nil {
		var peerIdx int
		primIdx, err := l.createOutside(o.PrimaryNs, o.Primary, string(o.Kind), func(index int) (int, error) {
			o.PrimaryIndex = index
			prim, peer, err := l.b.CreatePair(o)
			peerIdx = peer
			return prim, err
		})
		return primIdx, peerIdx, err
	}
	primIdx, peerIdx, err := l.b.CreatePair(o)
	if err != nil || l.owned[o.PeerNs.id] != nil {
		return primIdx, peerIdx, err
	}
	peer := &Link{ns: o.PeerNs, index: peerIdx, name: o.Peer}
	if err := l.recordLink(peer, string(o.Kind)); err != nil {
		return 0, 0, err
	}
	return primIdx, peerIdx, nil
}

// createOutside creates a link named name of kind in ns, a namespace the
// lab did not create, with create(index), having journaled first the
// ifindex it asks the kernel for: a run killed right after the kernel
// made the link leaves the record that names it for nkscript cleanup.
// An index another link has is chosen again; a link the backend made
// with another index (a tun device) is journaled as it is. Without a
// journal that outlives the process (a dry run, a recording), the kernel
// chooses. l.mu is held.
func (l *Lab) createOutside(ns *Netns, name, kind string, create func(index int) (int, error)) (int, error) {
	if l.journal.Path() == "" {
		index, err := create(0)
		if err != nil {
			return 0, err
		}
		return index, l.recordLink(&Link{ns: ns, index: index, name: name}, kind)
	}
	for try := 1; ; try++ {
		r := &LinkRecord{NS: ns.id, Ifindex: chooseIfindex(), Name: name, Kind: kind}
		if _, err := l.record(r); err != nil {
			return 0, err
		}
		index, err := create(r.Ifindex)
		if err != nil {
			l.dropRecords(func(x Record) bool { return x == r })
			if errors.Is(err, errIndexTaken) && try < 3 {
				continue
			}
			return 0, err
		}
		if index != r.Ifindex {
			l.dropRecords(func(x Record) bool { return x == r })
			k := &Link{ns: ns, index: index, name: name}
			if err := l.recordLink(k, kind); err != nil {
				return 0, err
			}
		}
		return index, nil
	}
}

// chooseIfindex picks the ifindex of a link made outside the lab's
// namespaces: at random, far above those the kernel hands out (it counts
// up from the last one), so that no other link is likely to have it.
func chooseIfindex() int { return 1<<28 + rand.IntN(1<<28) }

// errIndexTaken is what a backend says when the ifindex asked for is
// another link's.
var errIndexTaken = errors.New("the ifindex asked for is taken")

// recordLink journals a link the lab made in a namespace it did not
// create; if that fails, the link is deleted again. l.mu is held.
func (l *Lab) recordLink(k *Link, kind string) error {
	r := &LinkRecord{NS: k.ns.id, Ifindex: k.index, Name: k.name, Kind: kind}
	if _, err := l.record(r); err != nil {
		l.b.Undo(r, map[NsID]*Netns{k.ns.id: k.ns})
		return err
	}
	return nil
}

// prefixPairNames puts the run's prefix in front of the names of ends in
// namespaces the lab did not create: links in the lab's own namespaces
// cannot clash with another run's; those in the host can.
func (l *Lab) prefixPairNames(o *PairOptions) error {
	if l.prefix == "" {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, end := range []struct {
		name *string
		ns   *Netns
	}{{&o.Primary, o.PrimaryNs}, {&o.Peer, o.PeerNs}} {
		if l.owned[end.ns.id] != end.ns {
			*end.name = l.prefix + *end.name
			if len(*end.name) > 15 {
				return &PrefixError{Prefix: l.prefix, Err: fmt.Errorf("link name %q is longer than the kernel's 15 bytes; use a shorter prefix or link name", *end.name)}
			}
		}
	}
	return nil
}

// checkPairOptions validates o as every backend would take it.
func checkPairOptions(o PairOptions) error {
	if err := CheckIfName(o.Primary); err != nil {
		return err
	}
	if err := CheckIfName(o.Peer); err != nil {
		return err
	}
	if o.Primary == o.Peer && o.PrimaryNs == o.PeerNs {
		return fmt.Errorf("both ends are named %q in namespace %s; give the peer another name", o.Primary, o.PrimaryNs.name)
	}
	if o.MTU < 0 || o.MTU > 65535 {
		return fmt.Errorf("mtu %d is out of range 68..65535", o.MTU)
	}
	if o.MTU != 0 && o.MTU < 68 {
		return fmt.Errorf("mtu %d is below the IPv4 minimum of 68", o.MTU)
	}
	_, err := pairDevice(o, false)
	return err
}

// AddAddr adds an address to a link.
func (l *Lab) AddAddr(k *Link, p netip.Prefix) error {
	if err := l.checkOpenLocked(); err != nil {
		return err
	}
	if err := live([]*Link{k}); err != nil {
		return err
	}
	if err := l.b.AddAddr(k, p); err != nil {
		return err
	}
	k.mu.Lock()
	k.addrs = append(k.addrs, p)
	up := k.up
	k.mu.Unlock()
	if up && p.Addr().Is6() {
		// The kernel answers neighbour solicitations for a new IPv6
		// address a moment after it is added: WaitReady waits for that.
		l.mu.Lock()
		l.pendUp[k] |= waitND
		l.mu.Unlock()
	}
	return nil
}

// SetUp sets a link administratively up or down. Links set up are waited
// for by WaitReady before traffic is sent.
func (l *Lab) SetUp(k *Link, up bool) error {
	if err := l.checkOpenLocked(); err != nil {
		return err
	}
	if err := live([]*Link{k}); err != nil {
		return err
	}
	if err := l.b.SetUp(k, up); err != nil {
		return err
	}
	k.mu.Lock()
	k.up = up
	k.mu.Unlock()
	l.mu.Lock()
	if up {
		l.pendUp[k] |= waitOper | waitND
	} else {
		delete(l.pendUp, k)
	}
	l.mu.Unlock()
	return nil
}

// Links returns every link the lab created, in creation order.
func (l *Lab) Links() []*Link {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Link(nil), l.links...)
}

// NewBridge creates a bridge called name in ns, enslaves ports (links in
// ns) and sets it up. A bridge in a namespace the lab did not create is
// journaled and deleted by identity on Close; in the lab's own namespaces
// it goes with the namespace.
func (l *Lab) NewBridge(ns *Netns, name string, ports []*Link, mtu int) (*Link, error) {
	if ns == nil {
		ns = l.host
	}
	l.mu.Lock()
	owned := l.owned[ns.id] == ns
	err := l.checkOpen()
	l.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if !owned && l.prefix != "" {
		name = l.prefix + name
	}
	if err := live(ports, ns); err != nil {
		return nil, err
	}
	if err := checkBridge(ns, name, ports, mtu); err != nil {
		return nil, err
	}
	br, err := l.addBridge(ns, name, mtu, owned)
	if err != nil {
		return nil, err
	}
	for _, p := range ports {
		if err := l.SetMaster(p, br); err != nil {
			return nil, err
		}
	}
	if err := l.b.SetUp(br, true); err != nil {
		return nil, fmt.Errorf("set bridge %s up: %w", name, err)
	}
	return br, nil
}

// addBridge has the backend create the bridge (journaled first when ns
// is not the lab's) and adds it to the lab's links. The lock is released
// however the backend returns: a panic in it must leave Close able to
// run.
func (l *Lab) addBridge(ns *Netns, name string, mtu int, owned bool) (*Link, error) {
	create := func(index int) (int, error) { return l.b.CreateBridge(ns, name, mtu, index) }
	l.mu.Lock()
	defer l.mu.Unlock()
	var index int
	var err error
	if owned {
		index, err = create(0)
	} else {
		index, err = l.createOutside(ns, name, "bridge", create)
	}
	if err != nil {
		return nil, err
	}
	br := &Link{ns: ns, index: index, name: name, kind: "bridge", up: true}
	l.links = append(l.links, br)
	return br, nil
}

func checkBridge(ns *Netns, name string, ports []*Link, mtu int) error {
	if err := CheckIfName(name); err != nil {
		return err
	}
	if mtu != 0 && (mtu < 68 || mtu > 65535) {
		return fmt.Errorf("mtu %d is out of range 68..65535", mtu)
	}
	for _, p := range ports {
		if p.ns != ns {
			return fmt.Errorf("bridge %s: port %s is in namespace %s, not %s; a bridge's ports share its namespace", name, p.name, p.ns.name, ns.name)
		}
	}
	return nil
}

// SetMaster enslaves k to the bridge br (nil: releases it).
func (l *Lab) SetMaster(k, br *Link) error {
	if err := l.checkOpenLocked(); err != nil {
		return err
	}
	if err := live([]*Link{k, br}); err != nil {
		return err
	}
	if br != nil && br.kind != "bridge" {
		return fmt.Errorf("set %s master %s: %s is not a bridge", k.name, br.name, br.name)
	}
	if br != nil && br.ns != k.ns {
		return fmt.Errorf("set %s master %s: the bridge is in namespace %s, the link in %s", k.name, br.name, br.ns.name, k.ns.name)
	}
	return l.b.SetMaster(k, br)
}

// SetMTU sets a link's MTU.
func (l *Lab) SetMTU(k *Link, mtu int) error {
	if err := l.checkOpenLocked(); err != nil {
		return err
	}
	if err := live([]*Link{k}); err != nil {
		return err
	}
	if mtu < 68 || mtu > 65535 {
		return fmt.Errorf("mtu %d is out of range 68..65535", mtu)
	}
	if err := l.b.SetMTU(k, mtu); err != nil {
		return err
	}
	k.mu.Lock()
	k.mtu = mtu
	k.mu.Unlock()
	return nil
}

// SetMAC sets a link's hardware address: a unicast Ethernet address, on a
// device that has one (a netkit device only in l2 mode).
func (l *Lab) SetMAC(k *Link, mac net.HardwareAddr) error {
	if err := l.checkOpenLocked(); err != nil {
		return err
	}
	if err := live([]*Link{k}); err != nil {
		return err
	}
	if err := checkMAC(k, mac); err != nil {
		return err
	}
	return l.b.SetMAC(k, mac)
}

func checkMAC(k *Link, mac net.HardwareAddr) error {
	switch {
	case len(mac) != 6:
		return fmt.Errorf("set %s address %s: not an Ethernet address (6 bytes)", k.name, mac)
	case mac[0]&1 != 0:
		return fmt.Errorf("set %s address %s: a multicast address; a device's own address is unicast", k.name, mac)
	case slices.Equal(mac, make(net.HardwareAddr, 6)):
		return fmt.Errorf("set %s address %s: the all-zero address is not a device address", k.name, mac)
	case k.pair != nil && k.pair.Kind == Netkit && k.pair.Mode != "l2":
		return fmt.Errorf("set %s address %s: a netkit device in %s mode has no MAC address; make the pair with mode=\"l2\"", k.name, mac, k.pair.Mode)
	}
	return nil
}

// Loopback returns the loopback device of a namespace the lab created, so
// that a script can give it addresses (a service's virtual IP). The host's
// loopback is not handed out: its addresses are not the lab's to change.
func (l *Lab) Loopback(ns *Netns) (*Link, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	if err := live(nil, ns); err != nil {
		return nil, err
	}
	if k, ok := l.lo[ns]; ok {
		return k, nil
	}
	if l.owned[ns.id] != ns {
		return nil, fmt.Errorf("loopback of namespace %s: only the loopback of a namespace the lab created can be changed; add the address in a lab namespace", ns.Name())
	}
	index, err := l.b.Loopback(ns)
	if err != nil {
		return nil, fmt.Errorf("loopback of namespace %s: %w", ns.Name(), err)
	}
	k := &Link{ns: ns, index: index, name: "lo", loop: true, up: true}
	if l.lo == nil {
		l.lo = map[*Netns]*Link{}
	}
	l.lo[ns] = k
	return k, nil
}

// Loopbacks lists the loopback devices the script gave addresses.
func (l *Lab) Loopbacks() []*Link {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*Link
	for _, ns := range l.nslist {
		if k, ok := l.lo[ns]; ok {
			out = append(out, k)
		}
	}
	return out
}
