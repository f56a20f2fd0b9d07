package datapath

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
)

// Device kinds besides pairs and bridges, as Link.Kind says them.
const (
	KindVxlan = "vxlan"
	KindTun   = "tun"
	KindVlan  = "vlan"
)

// VxlanDefaultPort is the IANA VXLAN port, the default destination port.
const VxlanDefaultPort = 4789

// DeviceSpec describes a single device to create: a vxlan, tun or vlan
// device. The Lab fills in and checks it; a Backend creates it.
type DeviceSpec struct {
	Kind string // KindVxlan, KindTun or KindVlan
	Name string
	// Vxlan only: the VNI, the unicast remote and local addresses
	// (invalid: none), the underlay device (nil: any) and the UDP
	// destination port.
	VNI           int
	Remote, Local netip.Addr
	Dev           *Link
	Port          int
	// Vlan only: the device it is stacked on and the 802.1Q id.
	Parent *Link
	VlanID int
	// Index is the ifindex the device is made with; 0 lets the kernel
	// choose. A tun device, made by an ioctl, always gets the kernel's.
	Index int
	// Tun only: Record, if set, is called with the device's ifindex
	// while the device still lives only as long as the process (the
	// kernel's tun file is open, the device not yet persistent); it
	// persists only if Record succeeds. The Lab journals it there.
	Record func(index int) error
}

// kernelConfig is the kernel option each kind of device needs.
var kernelConfig = map[string]string{KindVxlan: "CONFIG_VXLAN", KindTun: "CONFIG_TUN", KindVlan: "CONFIG_VLAN_8021Q"}

// netlinkKind is what netlink's Link.Type() says for a device of kind:
// what deleteLinkByIdentity compares a journaled link with.
func netlinkKind(kind string) string {
	if kind == KindTun {
		return "tuntap"
	}
	return kind
}

// NewVxlan creates a unicast vxlan device in ns (nil: the host). Its
// remotes are d.Remote and those added with AddVxlanRemote.
func (l *Lab) NewVxlan(ns *Netns, d DeviceSpec) (*Link, error) {
	d.Kind = KindVxlan
	if d.Port == 0 {
		d.Port = VxlanDefaultPort
	}
	return l.newDevice(ns, d)
}

// NewTun creates a persistent tun device (layer 3, no packet
// information header) in ns (nil: the host). No file descriptor is held:
// a program may attach to it later by name.
func (l *Lab) NewTun(ns *Netns, name string) (*Link, error) {
	return l.newDevice(ns, DeviceSpec{Kind: KindTun, Name: name})
}

// NewVlan creates an 802.1Q device with id on top of parent, in parent's
// namespace. An empty name is "<parent>.<id>".
func (l *Lab) NewVlan(parent *Link, id int, name string) (*Link, error) {
	if name == "" {
		name = fmt.Sprintf("%s.%d", parent.name, id)
		if len(name) > 15 {
			return nil, fmt.Errorf("vlan %d on %s: the default name %q is longer than the kernel's 15 bytes; give name=", id, parent.name, name)
		}
	} else {
		name = l.prefixed(parent.ns, name)
	}
	return l.createDevice(parent.ns, DeviceSpec{Kind: KindVlan, Name: name, Parent: parent, VlanID: id})
}

// prefixed is name with the run's prefix when ns is a namespace the lab
// did not create.
func (l *Lab) prefixed(ns *Netns, name string) string {
	l.mu.Lock()
	owned := l.owned[ns.id] == ns
	l.mu.Unlock()
	if owned || l.prefix == "" {
		return name
	}
	return l.prefix + name
}

func (l *Lab) newDevice(ns *Netns, d DeviceSpec) (*Link, error) {
	if ns == nil {
		ns = l.host
	}
	d.Name = l.prefixed(ns, d.Name)
	return l.createDevice(ns, d)
}

// createDevice checks d, has the backend create it in ns and journals it
// when ns is not the lab's, as NewBridge does.
func (l *Lab) createDevice(ns *Netns, d DeviceSpec) (*Link, error) {
	if err := d.check(ns); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	for _, k := range l.links {
		if k.ns == ns && k.name == d.Name {
			return nil, exists("this script already created a link named %q in namespace %s; pick another name", k.name, k.ns.name)
		}
	}
	create := func(index int) (int, error) {
		d.Index = index
		return l.b.CreateDevice(ns, d)
	}
	var index int
	var err error
	switch {
	case l.owned[ns.id] == ns:
		index, err = create(0)
	case d.Kind == KindTun:
		index, err = l.createTunOutside(ns, &d, create)
	default:
		index, err = l.createOutside(ns, d.Name, netlinkKind(d.Kind), create)
	}
	if err != nil {
		return nil, err
	}
	k := &Link{ns: ns, index: index, name: d.Name, kind: d.Kind}
	l.links = append(l.links, k)
	return k, nil
}

// createTunOutside creates the tun device d in ns, a namespace the lab
// did not create. Its ifindex cannot be chosen (see createOutside): it is
// journaled before the device outlives the process (d.Record), or, by a
// backend that does not call Record, after it is made. l.mu is held.
func (l *Lab) createTunOutside(ns *Netns, d *DeviceSpec, create func(index int) (int, error)) (int, error) {
	recorded := false
	d.Record = func(index int) error {
		if _, err := l.record(&LinkRecord{NS: ns.id, Ifindex: index, Name: d.Name, Kind: netlinkKind(KindTun)}); err != nil {
			return err
		}
		recorded = true
		return nil
	}
	index, err := create(0)
	if err != nil || recorded {
		return index, err
	}
	return index, l.recordLink(&Link{ns: ns, index: index, name: d.Name}, netlinkKind(KindTun))
}

// check validates d as every backend would take it.
func (d DeviceSpec) check(ns *Netns) error {
	if err := CheckIfName(d.Name); err != nil {
		return err
	}
	switch d.Kind {
	case KindVxlan:
		return d.checkVxlan(ns)
	case KindVlan:
		if d.VlanID < 1 || d.VlanID > 4094 {
			return fmt.Errorf("vlan %s: id %d is out of range 1..4094", d.Name, d.VlanID)
		}
		if d.Parent.loop {
			return fmt.Errorf("vlan %s: a vlan cannot be stacked on a loopback device", d.Name)
		}
	case KindTun:
	default:
		return fmt.Errorf("device %s: unknown kind %q", d.Name, d.Kind)
	}
	return nil
}

func (d DeviceSpec) checkVxlan(ns *Netns) error {
	switch {
	case d.VNI < 1 || d.VNI > 1<<24-1:
		return fmt.Errorf("vxlan %s: vni %d is out of range 1..16777215", d.Name, d.VNI)
	case d.Port < 1 || d.Port > 65535:
		return fmt.Errorf("vxlan %s: port %d is out of range 1..65535", d.Name, d.Port)
	case d.Remote.IsValid() && d.Remote.IsMulticast():
		return fmt.Errorf("vxlan %s: remote %s is a multicast address; only unicast remotes are supported", d.Name, d.Remote)
	case d.Remote.IsValid() && d.Local.IsValid() && d.Remote.Is4() != d.Local.Is4():
		return fmt.Errorf("vxlan %s: remote %s and local %s are of different address families", d.Name, d.Remote, d.Local)
	case d.Dev != nil && d.Dev.ns != ns:
		return fmt.Errorf("vxlan %s: dev %s is in namespace %s, not %s; the underlay device shares the vxlan's namespace", d.Name, d.Dev.name, d.Dev.ns.name, ns.name)
	}
	return nil
}

// AddVxlanRemote adds a remote to the vxlan device k: an all-zeros FDB
// entry that sends broadcast, unknown and multicast traffic to remote
// (`bridge fdb append 00:00:00:00:00:00 dev k dst remote`). The entry
// goes with the device.
func (l *Lab) AddVxlanRemote(k *Link, remote netip.Addr) error {
	if err := l.checkOpenLocked(); err != nil {
		return err
	}
	if k.kind != KindVxlan {
		return fmt.Errorf("add remote %s to %s: %s is not a vxlan device", remote, k.name, k.name)
	}
	if remote.IsMulticast() || remote.IsUnspecified() {
		return fmt.Errorf("add remote %s to %s: a remote is a unicast address", remote, k.name)
	}
	return l.b.AddFDB(k, remote)
}

// netlinkDevice is d as netlink creates it.
func (d DeviceSpec) netlinkDevice() netlink.Link {
	attrs := netlink.LinkAttrs{Name: d.Name, Index: d.Index}
	switch d.Kind {
	case KindVxlan:
		v := &netlink.Vxlan{LinkAttrs: attrs, VxlanId: d.VNI, Port: d.Port, Learning: true}
		if d.Remote.IsValid() {
			v.Group = d.Remote.AsSlice()
		}
		if d.Local.IsValid() {
			v.SrcAddr = d.Local.AsSlice()
		}
		if d.Dev != nil {
			v.VtepDevIndex = d.Dev.index
		}
		return v
	case KindVlan:
		attrs.ParentIndex = d.Parent.index
		return &netlink.Vlan{LinkAttrs: attrs, VlanId: d.VlanID}
	}
	return &netlink.Tuntap{LinkAttrs: attrs, Mode: netlink.TUNTAP_MODE_TUN, Flags: netlink.TUNTAP_DEFAULTS | netlink.TUNTAP_NO_PI}
}

// shellCommand is the iproute2 command that creates d; ip is "ip" or
// "ip -n NS".
func (d DeviceSpec) shellCommand(ip string) string {
	switch d.Kind {
	case KindVxlan:
		w := []string{ip, "link add", shq(d.Name), "type vxlan id", fmt.Sprint(d.VNI)}
		if d.Remote.IsValid() {
			w = append(w, "remote", d.Remote.String())
		}
		if d.Local.IsValid() {
			w = append(w, "local", d.Local.String())
		}
		if d.Dev != nil {
			w = append(w, "dev", shq(d.Dev.name))
		}
		return strings.Join(append(w, "dstport", fmt.Sprint(d.Port)), " ")
	case KindVlan:
		return fmt.Sprintf("%s link add link %s name %s type vlan id %d", ip, shq(d.Parent.name), shq(d.Name), d.VlanID)
	}
	return fmt.Sprintf("%s tuntap add dev %s mode tun", ip, shq(d.Name))
}
