package datapath

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// kernel is the Backend that changes the running kernel, through netlink
// and cilium/ebpf.
type kernel struct {
	pool *nsPool // spare namespaces, from the third netns() on
	made int     // namespaces created
	tree string  // where they are mounted (see NetnsTreeDir), once made
}

// NewKernel returns the backend that changes the running kernel. prefetch,
// if not nil, hands it the namespaces StartPrefetch made; without one it
// makes spares from the third namespace on (see nsPool).
func NewKernel(prefetch *Prefetch) Backend {
	k := &kernel{}
	if prefetch != nil {
		k.pool, prefetch.pool = prefetch.pool, nil
	}
	return k
}

func (k *kernel) Host() (*Netns, error) { return HostNetns() }

func (k *kernel) CreateNetns(name string, record func(Record) error) (*Netns, error) {
	if k.tree == "" {
		tree, err := createNetnsTree(record)
		if err != nil {
			return nil, err
		}
		k.tree = tree
	}
	if k.made == 2 && k.pool == nil {
		k.pool = startNsPool(nsPoolAhead)
	}
	ns, err := createNamedNetnsFrom(name, k.tree, k.pool.take(), record)
	if err == nil {
		k.made++
	}
	return ns, err
}

// netkitModeName is the mode a netkit pair is created in.
func netkitModeName(mode string) string {
	if mode == "l2" {
		return "l2"
	}
	return "l3"
}

func parseNetkitPolicy(what, s string) (netlink.NetkitPolicy, error) {
	switch s {
	case "", "forward", "pass":
		return netlink.NETKIT_POLICY_FORWARD, nil
	case "blackhole", "drop":
		return netlink.NETKIT_POLICY_BLACKHOLE, nil
	}
	return 0, fmt.Errorf("%s %q is not a netkit policy; use \"forward\" or \"blackhole\"", what, s)
}

// pairDevice builds the netlink request for a pair, checking its options;
// with probe it also checks that the running kernel has what they need.
func pairDevice(o PairOptions, probe bool) (netlink.Link, error) {
	return pairDeviceAt(o, probe, -1)
}

// pairDeviceAt is pairDevice with the peer created in the namespace
// peerFd refers to (-1: in the primary's).
func pairDeviceAt(o PairOptions, probe bool, peerFd int) (netlink.Link, error) {
	attrs := netlink.LinkAttrs{Name: o.Primary, MTU: o.MTU, Index: o.PrimaryIndex}
	switch o.Kind {
	case Veth:
		v := &netlink.Veth{LinkAttrs: attrs, PeerName: o.Peer}
		if peerFd >= 0 {
			v.PeerNamespace = netlink.NsFd(peerFd)
		}
		if o.MTU != 0 {
			v.PeerMTU = uint32(o.MTU)
		}
		return v, nil
	case Netkit:
		return netkitDevice(o, attrs, probe, peerFd)
	}
	return nil, fmt.Errorf("unknown pair kind %q", o.Kind)
}

func netkitDevice(o PairOptions, attrs netlink.LinkAttrs, probe bool, peerFd int) (*netlink.Netkit, error) {
	nk := &netlink.Netkit{LinkAttrs: attrs, Scrub: netlink.NETKIT_SCRUB_DEFAULT, PeerScrub: netlink.NETKIT_SCRUB_DEFAULT}
	if err := o.netkitKnobs(nk, probe); err != nil {
		return nil, err
	}
	switch o.Mode {
	case "", "l3":
		nk.Mode = netlink.NETKIT_MODE_L3
	case "l2":
		nk.Mode = netlink.NETKIT_MODE_L2
	default:
		return nil, fmt.Errorf("mode %q is not a netkit mode; use \"l3\" or \"l2\"", o.Mode)
	}
	var err error
	if nk.Policy, err = parseNetkitPolicy("policy", o.Policy); err != nil {
		return nil, err
	}
	if nk.PeerPolicy, err = parseNetkitPolicy("peer_policy", o.PeerPolicy); err != nil {
		return nil, err
	}
	peer := netlink.LinkAttrs{Name: o.Peer, MTU: o.MTU, NumTxQueues: o.TxQueues, NumRxQueues: o.RxQueues}
	if o.PeerMTU != 0 {
		peer.MTU = o.PeerMTU
	}
	if peerFd >= 0 {
		peer.Namespace = netlink.NsFd(peerFd)
	}
	nk.SetPeerAttrs(&peer)
	return nk, nil
}

func (k *kernel) CreatePair(o PairOptions) (int, int, error) {
	if o.Kind == Netkit {
		if err := HaveNetkit(); err != nil {
			return 0, 0, err
		}
	}
	peerFd := -1
	if o.PeerNs != o.PrimaryNs {
		h, err := o.PeerNs.acquire()
		if err != nil {
			return 0, 0, fmt.Errorf("create %s pair %s/%s: %w", o.Kind, o.Primary, o.Peer, err)
		}
		defer o.PeerNs.release(h)
		peerFd = h.fd()
	}
	dev, err := pairDeviceAt(o, true, peerFd)
	if err != nil {
		return 0, 0, err
	}
	if err := addPairDevice(o, dev); err != nil {
		if o.PrimaryIndex != 0 && errors.Is(err, unix.EBUSY) {
			return 0, 0, fmt.Errorf("create %s pair %s/%s: %w", o.Kind, o.Primary, o.Peer, errIndexTaken)
		}
		if errors.Is(err, os.ErrExist) {
			// Either name may be the one taken.
			return 0, 0, exists("create %s pair %s/%s: a link named %q (in %s) or %q (in %s) exists already and is not this run's; pick other names",
				o.Kind, o.Primary, o.Peer, o.Primary, o.PrimaryNs.name, o.Peer, o.PeerNs.name)
		}
		return 0, 0, fmt.Errorf("create %s pair %s/%s: %w", o.Kind, o.Primary, o.Peer, err)
	}
	primIdx := dev.Attrs().Index
	peerDev, err := nlQuery(o.PeerNs, (*netlink.Handle).LinkByName, o.Peer)
	if err == nil && primIdx == 0 {
		err = fmt.Errorf("no device named %q in %s", o.Primary, o.PrimaryNs.name)
	}
	if err != nil {
		// The pair exists but we cannot name it: remove it by the name we
		// just created it under, before anyone else can reuse it.
		if derr := nlExec(o.PrimaryNs, (*netlink.Handle).LinkDel, dev); derr != nil {
			err = errors.Join(err, fmt.Errorf("remove it: %w", derr))
		}
		return 0, 0, fmt.Errorf("create %s pair %s/%s: look up new devices: %w", o.Kind, o.Primary, o.Peer, err)
	}
	return primIdx, peerDev.Attrs().Index, nil
}

// addPairDevice sends the request for a pair; netkit head- and tailroom
// need a request of nkscript's own (see createNetkit).
func addPairDevice(o PairOptions, dev netlink.Link) error {
	nk, ok := dev.(*netlink.Netkit)
	if !ok || (o.Headroom == 0 && o.Tailroom == 0) {
		return nlExec(o.PrimaryNs, (*netlink.Handle).LinkAdd, dev)
	}
	var peerNs *Netns
	if o.PeerNs != o.PrimaryNs {
		peerNs = o.PeerNs
	}
	peer := netlink.LinkAttrs{Name: o.Peer, MTU: o.MTU}
	if o.PeerMTU != 0 {
		peer.MTU = o.PeerMTU
	}
	if err := createNetkit(o.PrimaryNs, nk, peer, peerNs, uint16(o.Headroom), uint16(o.Tailroom)); err != nil {
		return err
	}
	if got, err := nlQuery(o.PrimaryNs, (*netlink.Handle).LinkByName, o.Primary); err == nil {
		nk.Index = got.Attrs().Index
	}
	return nil
}

// deleteLinkByIdentity deletes the link with ifindex in ns if it still has
// the given name and kind; a link that is gone or was replaced is left.
func deleteLinkByIdentity(ns *Netns, ifindex int, name, kind string) error {
	dev, err := nlQuery(ns, (*netlink.Handle).LinkByIndex, ifindex)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, os.ErrNotExist) || strings.Contains(err.Error(), "no such device") {
			return nil
		}
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	if dev.Attrs().Name != name || dev.Type() != kind {
		return nil
	}
	if err := nlExec(ns, (*netlink.Handle).LinkDel, dev); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}

func (k *kernel) CreateBridge(ns *Netns, name string, mtu, index int) (int, error) {
	dev := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: mtu, Index: index}}
	if err := nlExec(ns, (*netlink.Handle).LinkAdd, netlink.Link(dev)); err != nil {
		if index != 0 && errors.Is(err, unix.EBUSY) {
			return 0, fmt.Errorf("create bridge %s in %s: %w", name, ns.name, errIndexTaken)
		}
		if errors.Is(err, os.ErrExist) {
			return 0, exists("create bridge %s in %s: a link with that name exists already and is not this run's; pick another name", name, ns.name)
		}
		return 0, fmt.Errorf("create bridge %s in %s: %w", name, ns.name, err)
	}
	got, err := nlQuery(ns, (*netlink.Handle).LinkByName, name)
	if err != nil {
		nlExec(ns, (*netlink.Handle).LinkDel, netlink.Link(dev))
		return 0, fmt.Errorf("create bridge %s: look it up: %w", name, err)
	}
	return got.Attrs().Index, nil
}

func (k *kernel) CreateDevice(ns *Netns, d DeviceSpec) (int, error) {
	dev := d.netlinkDevice()
	if d.Kind == KindTun {
		return createTun(ns, d, dev.(*netlink.Tuntap))
	}
	if err := nlExec(ns, (*netlink.Handle).LinkAdd, dev); err != nil {
		return 0, createDeviceError(ns, d, err)
	}
	return k.lookupCreated(ns, d, dev)
}

// createTun makes the tun device t for d: first as the kernel keeps it
// while its file is open, which ends with the process however it ends,
// and persistent once d.Record has journaled it. A tun device is made by
// an ioctl on /dev/net/tun, in the namespace of the thread that opens it.
func createTun(ns *Netns, d DeviceSpec, t *netlink.Tuntap) (int, error) {
	t.NonPersist, t.Queues = true, 1
	if err := ns.Do(func() error { return nlExec(ns, (*netlink.Handle).LinkAdd, netlink.Link(t)) }); err != nil {
		return 0, createDeviceError(ns, d, err)
	}
	defer func() {
		for _, f := range t.Fds {
			f.Close()
		}
	}()
	got, err := nlQuery(ns, (*netlink.Handle).LinkByName, d.Name)
	if err != nil {
		return 0, fmt.Errorf("create tun %s: look it up: %w", d.Name, err)
	}
	if d.Record != nil {
		if err := d.Record(got.Attrs().Index); err != nil {
			return 0, err
		}
	}
	conn, err := t.Fds[0].SyscallConn()
	if err == nil {
		cerr := conn.Control(func(fd uintptr) { err = unix.IoctlSetInt(int(fd), unix.TUNSETPERSIST, 1) })
		err = errors.Join(err, cerr)
	}
	if err != nil {
		return 0, fmt.Errorf("create tun %s in %s: make it persistent: %w", d.Name, ns.name, err)
	}
	return got.Attrs().Index, nil
}

// createDeviceError describes the failure err to create d in ns.
func createDeviceError(ns *Netns, d DeviceSpec, err error) error {
	switch {
	case d.Index != 0 && d.Kind != KindTun && errors.Is(err, unix.EBUSY):
		return fmt.Errorf("create %s %s in %s: %w", d.Kind, d.Name, ns.name, errIndexTaken)
	case errors.Is(err, os.ErrExist) || errors.Is(err, unix.EBUSY):
		return exists("create %s %s in %s: a link with that name exists already and is not this run's; pick another name", d.Kind, d.Name, ns.name)
	case d.Kind == KindTun && errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("create tun %s in %s: this machine has no /dev/net/tun (the tun driver, CONFIG_TUN): %w", d.Name, ns.name, err)
	case errors.Is(err, unix.EOPNOTSUPP):
		return fmt.Errorf("create %s %s in %s: the running kernel has no %s devices (%s): %w", d.Kind, d.Name, ns.name, d.Kind, kernelConfig[d.Kind], err)
	}
	return fmt.Errorf("create %s %s in %s: %w", d.Kind, d.Name, ns.name, err)
}

// lookupCreated returns the ifindex of dev, just created for d in ns; if
// it cannot be found, dev is deleted again.
func (k *kernel) lookupCreated(ns *Netns, d DeviceSpec, dev netlink.Link) (int, error) {
	got, err := nlQuery(ns, (*netlink.Handle).LinkByName, d.Name)
	if err != nil {
		nlExec(ns, (*netlink.Handle).LinkDel, dev)
		return 0, fmt.Errorf("create %s %s: look it up: %w", d.Kind, d.Name, err)
	}
	return got.Attrs().Index, nil
}

func (k *kernel) AddFDB(dev *Link, remote netip.Addr) error {
	n := &netlink.Neigh{
		LinkIndex:    dev.index,
		Family:       unix.AF_BRIDGE,
		Flags:        netlink.NTF_SELF,
		State:        netlink.NUD_PERMANENT,
		HardwareAddr: make(net.HardwareAddr, 6),
		IP:           remote.AsSlice(),
	}
	if err := nlExec(dev.ns, (*netlink.Handle).NeighAppend, n); err != nil {
		return fmt.Errorf("add remote %s to vxlan %s: %w", remote, dev.name, err)
	}
	return nil
}

func (k *kernel) DeleteLink(l *Link) error {
	if err := nlExec(l.ns, (*netlink.Handle).LinkDel, l.nlLink()); err != nil {
		return fmt.Errorf("delete link %s in %s: %w", l.name, l.ns.name, err)
	}
	return nil
}

func (k *kernel) MoveLink(l *Link, to *Netns) (int, error) {
	err := to.withFd(func(fd int) error {
		return nlExec(l.ns, func(h *netlink.Handle, dev netlink.Link) error { return h.LinkSetNsFd(dev, fd) }, l.nlLink())
	})
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return 0, exists("move link %s to %s: a link with that name exists there already", l.name, to.name)
		}
		return 0, fmt.Errorf("move link %s from %s to %s: %w", l.name, l.ns.name, to.name, err)
	}
	got, err := nlQuery(to, (*netlink.Handle).LinkByName, l.name)
	if err != nil {
		return 0, fmt.Errorf("move link %s to %s: look it up there: %w", l.name, to.name, err)
	}
	return got.Attrs().Index, nil
}

// DeleteNetns unmounts ns if its mount still holds it; the namespace goes
// once the last handle on it is closed.
func (k *kernel) DeleteNetns(ns *Netns) error {
	id, err := statNsPath(ns.mount)
	if err != nil {
		return fmt.Errorf("delete netns %s: %w", ns.name, err)
	}
	if id != ns.id {
		return fmt.Errorf("delete netns %s: %s holds another namespace now", ns.name, ns.mount)
	}
	if _, err := unlinkNetnsName(ns.mount, ns.path); err != nil {
		return fmt.Errorf("delete netns %s: %w", ns.name, err)
	}
	return unmountNetns(ns.mount)
}

func (k *kernel) Loopback(ns *Netns) (int, error) {
	lo, err := nlQuery(ns, (*netlink.Handle).LinkByName, "lo")
	if err != nil {
		return 0, err
	}
	return lo.Attrs().Index, nil
}

func (k *kernel) AddAddr(l *Link, p netip.Prefix) error {
	a := &netlink.Addr{IPNet: prefixToIPNet(p)}
	if p.Addr().Is6() {
		// The lab is ready when its links are: skip duplicate address
		// detection so traffic can start at once.
		a.Flags = unix.IFA_F_NODAD
	}
	err := l.ns.withNetlink(func(h *netlink.Handle) error { return h.AddrAdd(l.nlLink(), a) })
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("address %s is already on %s", p, l.name)
		}
		return fmt.Errorf("add address %s to %s: %w", p, l.name, err)
	}
	return nil
}

func (k *kernel) SetUp(l *Link, up bool) error {
	var err error
	if up {
		err = nlExec(l.ns, (*netlink.Handle).LinkSetUp, l.nlLink())
	} else {
		err = nlExec(l.ns, (*netlink.Handle).LinkSetDown, l.nlLink())
	}
	if err != nil {
		return fmt.Errorf("set %s %s: %w", l.name, upDown(up), err)
	}
	return nil
}

func upDown(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

// masterWords is how `ip link set` says k's new master.
func masterWords(br *Link) string {
	if br == nil {
		return "nomaster"
	}
	return "master " + br.name
}

func (k *kernel) SetMaster(l, br *Link) error {
	var err error
	if br == nil {
		err = nlExec(l.ns, (*netlink.Handle).LinkSetNoMaster, l.nlLink())
	} else {
		err = l.ns.withNetlink(func(h *netlink.Handle) error { return h.LinkSetMasterByIndex(l.nlLink(), br.index) })
	}
	if err != nil {
		return fmt.Errorf("set %s %s: %w", l.name, masterWords(br), err)
	}
	return nil
}

func (k *kernel) SetMTU(l *Link, mtu int) error {
	err := l.ns.withNetlink(func(h *netlink.Handle) error { return h.LinkSetMTU(l.nlLink(), mtu) })
	if err != nil {
		return fmt.Errorf("set %s mtu %d: %w", l.name, mtu, err)
	}
	return nil
}

func (k *kernel) SetMAC(l *Link, mac net.HardwareAddr) error {
	if err := l.ns.withNetlink(func(h *netlink.Handle) error { return h.LinkSetHardwareAddr(l.nlLink(), mac) }); err != nil {
		return fmt.Errorf("set %s address %s: %w", l.name, mac, err)
	}
	return nil
}

func (k *kernel) AddRoute(ns *Netns, r RouteSpec) error {
	if err := nlExec(ns, (*netlink.Handle).RouteAdd, r.netlinkRoute()); err != nil {
		switch {
		case errors.Is(err, os.ErrExist):
			return fmt.Errorf("route %s in %s: a route to %s exists already", r, ns.name, r.Dst)
		case errors.Is(err, unix.ENETUNREACH):
			return fmt.Errorf("route %s in %s: gateway %s is not on any connected network there; add an address in its subnet first", r, ns.name, r.Via)
		}
		return fmt.Errorf("route %s in %s: %w", r, ns.name, err)
	}
	return nil
}

func (k *kernel) DeleteRoute(ns *Netns, r RouteSpec) error {
	if err := nlExec(ns, (*netlink.Handle).RouteDel, r.netlinkRoute()); err != nil {
		if isNoSuchObject(err) {
			return fmt.Errorf("route %s in %s: there is no such route (any more)", r, ns.name)
		}
		return fmt.Errorf("delete route %s in %s: %w", r, ns.name, err)
	}
	return nil
}

func (k *kernel) AddRule(ns *Netns, r RuleSpec) error {
	if err := nlExec(ns, (*netlink.Handle).RuleAdd, r.netlinkRule()); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("rule %s in %s: the same rule exists already", r, ns.name)
		}
		return fmt.Errorf("rule %s in %s: %w", r, ns.name, err)
	}
	return nil
}

func (k *kernel) DeleteRule(ns *Netns, r RuleSpec) error {
	if err := nlExec(ns, (*netlink.Handle).RuleDel, r.netlinkRule()); err != nil {
		if isNoSuchObject(err) {
			return fmt.Errorf("rule %s in %s: there is no such rule (any more)", r, ns.name)
		}
		return fmt.Errorf("delete rule %s in %s: %w", r, ns.name, err)
	}
	return nil
}

func (k *kernel) ReadSysctl(ns *Netns, key string) (string, error) { return ReadSysctl(ns, key) }

func (k *kernel) WriteSysctl(ns *Netns, key, old, value string) error {
	if old == value {
		return nil
	}
	return writeSysctl(ns, key, value)
}

func (k *kernel) Close() error {
	k.pool.close()
	return nil
}

func (k *kernel) Note(string) {}

func (k *kernel) Pause(string) bool { return true }

func (k *kernel) Check(_, msg string) error { return errors.New(msg) }

func (k *kernel) Journal(dir, script string, host NsID) (journal, error) {
	return CreateJournal(dir, script, host)
}

func (k *kernel) Undo(r Record, nss map[NsID]*Netns) error {
	return r.undo(&undoer{nss: nss, log: io.Discard})
}
