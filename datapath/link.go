package datapath

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/vishvananda/netlink"
)

// PairKind is the device type of a Pair.
type PairKind string

// Device kinds a Pair can be.
const (
	Veth   PairKind = "veth"
	Netkit PairKind = "netkit"
)

// PairOptions configures Lab.NewPair.
type PairOptions struct {
	Kind    PairKind
	Primary string // name of the primary end
	Peer    string // name of the peer end
	// PrimaryNs and PeerNs are where the ends are created; nil means the
	// host for PrimaryNs and PrimaryNs for PeerNs.
	PrimaryNs, PeerNs *Netns
	MTU               int // 0 keeps the kernel default
	// PrimaryIndex is the ifindex the primary end is made with; 0 lets
	// the kernel choose.
	PrimaryIndex int
	// Netkit only.
	Mode       string // "l3" (default) or "l2"
	Policy     string // "forward" (default) or "blackhole"
	PeerPolicy string // "forward" (default) or "blackhole"
	// Scrub and PeerScrub say whether packets crossing to the primary
	// (Scrub) or to the peer lose their metadata (mark, priority):
	// "default" (they do) or "none". Empty keeps the kernel default.
	Scrub, PeerScrub string
	// PeerMTU overrides MTU for the peer end.
	PeerMTU int
	// TxQueues and RxQueues set the number of queues of both ends; 0
	// keeps the kernel default (1).
	TxQueues, RxQueues int
	// Headroom and Tailroom reserve bytes in front of and behind packets
	// (netkit, Linux 6.14); 0 keeps the kernel default.
	Headroom, Tailroom int
}

// Pair is two connected devices: a veth pair or a netkit primary and peer.
type Pair struct {
	Kind    PairKind
	Mode    string // netkit: "l2" or "l3"
	Primary *Link
	Peer    *Link
}

// Link is one device the lab created, identified by its ifindex in its
// namespace.
type Link struct {
	ns    *Netns
	index int
	name  string
	pair  *Pair
	prim  bool
	loop  bool   // the namespace's loopback device
	kind  string // "bridge" for bridges; pairs say theirs
	mtu   int    // set by the lab, 0 if not
	mu    sync.Mutex
	addrs []netip.Prefix
	up    bool
	gone  atomic.Bool // deleted by the script (Lab.DeleteLink, Lab.DeleteNetns)
}

// Name is the device's name.
func (k *Link) Name() string { return k.name }

// Netns is the namespace holding the device.
func (k *Link) Netns() *Netns { return k.ns }

// Index is the device's ifindex in its namespace.
func (k *Link) Index() int { return k.index }

// Pair is the pair the link belongs to.
func (k *Link) Pair() *Pair { return k.pair }

// IsPrimary reports whether k is the primary end of its pair.
func (k *Link) IsPrimary() bool { return k.prim }

// Addrs are the addresses added through the lab, in order.
func (k *Link) Addrs() []netip.Prefix {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]netip.Prefix(nil), k.addrs...)
}

// IsUp reports whether the lab set the device administratively up.
func (k *Link) IsUp() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.up
}

// MAC returns the device's hardware address; netkit in l3 mode, and a
// stand-in device, have none.
func (k *Link) MAC() (net.HardwareAddr, error) {
	if !k.ns.kern {
		return nil, nil
	}
	nl, err := nlQuery(k.ns, (*netlink.Handle).LinkByIndex, k.index)
	if err != nil {
		return nil, fmt.Errorf("link %s: %w", k.name, err)
	}
	return nl.Attrs().HardwareAddr, nil
}

// MTU is the MTU the lab set, or the kernel's for the device (0 if it
// cannot tell, for a stand-in device).
func (k *Link) MTU() int {
	k.mu.Lock()
	mtu := k.mtu
	k.mu.Unlock()
	if mtu != 0 || !k.ns.kern {
		return mtu
	}
	if dev, err := nlQuery(k.ns, (*netlink.Handle).LinkByIndex, k.index); err == nil {
		return dev.Attrs().MTU
	}
	return 0
}

// Kind is "veth", "netkit", "bridge", "vxlan", "tun", "vlan" or
// "loopback".
func (k *Link) Kind() string {
	switch {
	case k.pair != nil:
		return string(k.pair.Kind)
	case k.loop:
		return "loopback"
	}
	return k.kind
}

func (k *Link) kindName() string {
	if kind := k.Kind(); kind != "" {
		return kind
	}
	return "device"
}

// partner is the other end of k's pair.
func (k *Link) partner() *Link {
	if k.prim {
		return k.pair.Peer
	}
	return k.pair.Primary
}

func (k *Link) nlLink() netlink.Link {
	return &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: k.index, Name: k.name}}
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
