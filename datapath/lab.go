package datapath

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/vishvananda/netlink"
)

// Lab is the set of namespaces, links, routes, settings and programs one
// run creates. Every change is recorded in memory and in a journal, and
// Close undoes all of them in reverse order. A Lab never modifies or
// removes anything it did not create.
type Lab struct {
	mu          sync.Mutex
	host        *Netns
	ownHost     bool
	journal     *Journal
	owned       map[NsID]*Netns // namespaces this lab created, by identity
	byName      map[string]*Netns
	undo        []undoStep
	links       []*Link
	pendUp      map[*Link]linkWait // links set up (or given IPv6 addresses) since the last WaitReady
	closed      bool
	nslist      []*Netns
	progs       []*Program
	attached    []*Attachment
	faultAt     int  // test hook: fail the faultAt-th kernel-changing operation
	faultPanics bool // test hook: panic instead
	prefix      string
	sh          *shell // dry run: write shell commands instead
	notice      func(string)
	tracer      *Tracer
	prof        *Profile
	pool        *nsPool // spare namespaces, from the third netns() on
	noticed     bool
	ops         int
	closers     []io.Closer      // servers and captures, closed first
	lo          map[*Netns]*Link // loopback devices handed out
}

type undoStep struct {
	what string
	seq  int // journal entry, 0 if none
	fn   func() error
	// independent steps next to each other in the stack may run at
	// the same time (see Lab.Close).
	independent bool
}

// LabConfig configures a Lab.
type LabConfig struct {
	// JournalDir is where the journal is written; DefaultJournalDir if "".
	JournalDir string
	// Script names the script in the journal, for `nkscript cleanup`.
	Script string
	// Host overrides the namespace the lab treats as the host (tests use
	// an anonymous namespace), renaming it "host"; nil means the caller's
	// namespace. The lab does not close it.
	Host *Netns
	// Prefix is put in front of the names of the namespaces the lab
	// creates and of the links it creates in namespaces it did not create
	// (the host), so that two runs of one script do not clash.
	Prefix string
	// DryRun, if set, makes a lab that changes nothing and writes the
	// shell commands that would build it there instead.
	DryRun io.Writer
	// Notice receives what the user should know once about how the lab
	// is built, such as falling back to legacy tc; nil drops it.
	Notice func(string)
	// Prefetch, from StartPrefetch, hands the lab the namespaces made in
	// the background before it existed, for its first netns() calls; the
	// lab takes it over. Without one, the lab makes spares from its
	// third namespace on (see nsPool).
	Prefetch *Prefetch
}

// NewLab starts an empty lab in the calling process's namespace and
// creates its journal.
func NewLab(cfg LabConfig) (*Lab, error) {
	if cfg.DryRun != nil {
		return newDryLab(cfg)
	}
	host, ownHost := cfg.Host, false
	if host != nil {
		host.name = "host"
	} else {
		var err error
		if host, err = HostNetns(); err != nil {
			return nil, err
		}
		ownHost = true
	}
	dir := cfg.JournalDir
	if dir == "" {
		dir = DefaultJournalDir
	}
	j, err := CreateJournal(dir, cfg.Script, host.ID())
	if err != nil {
		if ownHost {
			host.Close()
		}
		return nil, err
	}
	faultAt, faultPanics := faultFromEnv()
	var pool *nsPool
	if cfg.Prefetch != nil {
		pool, cfg.Prefetch.pool = cfg.Prefetch.pool, nil
	}
	return &Lab{
		pool:        pool,
		prefix:      cfg.Prefix,
		notice:      cfg.Notice,
		faultAt:     faultAt,
		faultPanics: faultPanics,
		host:        host,
		ownHost:     ownHost,
		journal:     j,
		owned:       map[NsID]*Netns{},
		byName:      map[string]*Netns{},
		pendUp:      map[*Link]linkWait{},
	}, nil
}

// Host is the namespace nkscript started in.
func (l *Lab) Host() *Netns { return l.host }

// JournalPath is the lab's journal file.
func (l *Lab) JournalPath() string { return l.journal.path }

// Owns reports whether ns was created by this lab.
func (l *Lab) Owns(ns *Netns) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.owned[ns.id] == ns
}

// Namespaces returns the namespaces the lab created, in creation order.
func (l *Lab) Namespaces() []*Netns {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Netns(nil), l.nslist...)
}

func (l *Lab) push(what string, seq int, fn func() error) {
	l.undo = append(l.undo, undoStep{what: what, seq: seq, fn: fn})
}

// pushIndependent is push for a step that does not depend on the steps
// next to it, nor they on it.
func (l *Lab) pushIndependent(what string, seq int, fn func() error) {
	l.undo = append(l.undo, undoStep{what: what, seq: seq, fn: fn, independent: true})
}

func (l *Lab) checkOpen() error {
	if l.closed {
		return errors.New("lab is closed")
	}
	return nil
}

// CheckNetnsName validates a namespace name.
func CheckNetnsName(name string) error {
	switch {
	case name == "":
		return errors.New("namespace name is empty")
	case len(name) > 255:
		return fmt.Errorf("namespace name %q is longer than 255 bytes", name)
	case name == "." || name == ".." || strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("namespace name %q is not a valid file name", name)
	case strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return fmt.Errorf("namespace name %q contains spaces or control characters", name)
	case !utf8.ValidString(name):
		return fmt.Errorf("namespace name %q is not valid UTF-8", name)
	}
	return nil
}

// CheckIfName validates an interface name the way the kernel does.
func CheckIfName(name string) error {
	switch {
	case name == "":
		return errors.New("interface name is empty")
	case len(name) > 15:
		return fmt.Errorf("interface name %q is %d bytes; Linux allows at most 15", name, len(name))
	case name == "." || name == ".." || name == "all" || name == "default":
		// "all" and "default" are the per-protocol settings directories
		// in /proc/sys/net/*/conf.
		return fmt.Errorf("interface name %q is reserved by the kernel; pick another name", name)
	case strings.Contains(name, "%"):
		// The kernel takes "v%d" as a template and picks a free number.
		return fmt.Errorf("interface name %q contains '%%', which the kernel treats as a template; pick a literal name", name)
	case strings.ContainsFunc(name, func(r rune) bool { return r == '/' || r == ':' || r <= ' ' || r >= 0x7f }):
		return fmt.Errorf("interface name %q may only use printable ASCII without '/', ':' or spaces", name)
	}
	return nil
}

// Netns creates a named namespace, bind-mounted under NetnsDir so that
// `ip netns exec NAME` works while the lab exists. A name that exists
// already is an error wrapping ErrExists; it is never adopted.
func (l *Lab) Netns(name string) (*Netns, error) {
	defer l.Timed(PhaseNamespaces)()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	if err := CheckNetnsName(name); err != nil {
		return nil, err
	}
	script := name
	if l.prefix != "" {
		name = l.prefix + name
		if err := CheckNetnsName(name); err != nil {
			return nil, fmt.Errorf("with --prefix %q: %w", l.prefix, err)
		}
	}
	if script == "host" {
		return nil, exists("namespace name %q is reserved for the namespace nkscript runs in; pick another name", name)
	}
	if _, ok := l.byName[script]; ok {
		return nil, exists("this script already created netns %q; use the value that call returned, or pick another name", script)
	}
	if err := l.fault("netns " + name); err != nil {
		return nil, err
	}
	if l.sh != nil {
		ns := l.dryNetns(name)
		l.owned[ns.id] = ns
		l.byName[script] = ns
		l.nslist = append(l.nslist, ns)
		return ns, nil
	}
	if len(l.nslist) == 2 && l.pool == nil {
		l.pool = startNsPool(nsPoolAhead)
	}
	var seq int
	ns, err := createNamedNetnsFrom(name, l.pool.take(), func(path string, id NsID) error {
		var err error
		seq, err = l.journal.Append(Entry{Op: "netns", Name: name, Path: path, NS: id})
		return err
	})
	if err != nil {
		if seq != 0 {
			l.journal.Undone(seq)
		}
		return nil, err
	}
	l.owned[ns.id] = ns
	l.byName[script] = ns
	l.nslist = append(l.nslist, ns)
	// Namespaces go independently of each other: Close unmounts them
	// in parallel.
	l.pushIndependent("netns "+name, seq, func() error {
		ns.Close()
		return unmountNetns(ns.path)
	})
	return ns, nil
}

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

// MAC returns the device's hardware address; netkit in l3 mode has none.
func (k *Link) MAC() (net.HardwareAddr, error) {
	if k.ns.nl == nil {
		return nil, nil // a dry run's stand-in
	}
	nl, err := k.ns.nl.LinkByIndex(k.index)
	if err != nil {
		return nil, fmt.Errorf("link %s: %w", k.name, err)
	}
	return nl.Attrs().HardwareAddr, nil
}

func (k *Link) nlLink() netlink.Link {
	return &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: k.index, Name: k.name}}
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

// NewPair creates a veth or netkit pair with each end created directly in
// its namespace: moving a device between namespaces afterwards costs ~20x
// more than creating it in place.
func (l *Lab) NewPair(o PairOptions) (*Pair, error) {
	defer l.Timed(PhaseLinks)()
	if o.PrimaryNs == nil {
		o.PrimaryNs = l.host
	}
	if o.PeerNs == nil {
		o.PeerNs = o.PrimaryNs
	}
	if l.prefix != "" {
		// Links in the lab's own namespaces cannot clash with another
		// run's; those in the host can.
		l.mu.Lock()
		for _, end := range []struct {
			name *string
			ns   *Netns
		}{{&o.Primary, o.PrimaryNs}, {&o.Peer, o.PeerNs}} {
			if l.owned[end.ns.id] != end.ns {
				*end.name = l.prefix + *end.name
				if len(*end.name) > 15 {
					l.mu.Unlock()
					return nil, fmt.Errorf("link name %q (with --prefix %q) is longer than the kernel's 15 bytes; use a shorter prefix or link name", *end.name, l.prefix)
				}
			}
		}
		l.mu.Unlock()
	}
	if err := CheckIfName(o.Primary); err != nil {
		return nil, err
	}
	if err := CheckIfName(o.Peer); err != nil {
		return nil, err
	}
	if o.Primary == o.Peer && o.PrimaryNs == o.PeerNs {
		return nil, fmt.Errorf("both ends are named %q in namespace %s; give the peer another name", o.Primary, o.PrimaryNs.name)
	}
	if o.MTU < 0 || o.MTU > 65535 {
		return nil, fmt.Errorf("mtu %d is out of range 68..65535", o.MTU)
	}
	if o.MTU != 0 && o.MTU < 68 {
		return nil, fmt.Errorf("mtu %d is below the IPv4 minimum of 68", o.MTU)
	}
	attrs := netlink.LinkAttrs{Name: o.Primary, MTU: o.MTU}
	var dev netlink.Link
	pair := &Pair{Kind: o.Kind}
	switch o.Kind {
	case Veth:
		v := &netlink.Veth{LinkAttrs: attrs, PeerName: o.Peer}
		if o.PeerNs != o.PrimaryNs && l.sh == nil {
			v.PeerNamespace = netlink.NsFd(o.PeerNs.Fd())
		}
		if o.MTU != 0 {
			v.PeerMTU = uint32(o.MTU)
		}
		dev = v
	case Netkit:
		if err := HaveNetkit(); err != nil && l.sh == nil {
			return nil, err
		}
		nk := &netlink.Netkit{
			LinkAttrs: attrs,
			Scrub:     netlink.NETKIT_SCRUB_DEFAULT,
			PeerScrub: netlink.NETKIT_SCRUB_DEFAULT,
		}
		if err := o.netkitKnobs(nk, l.sh == nil); err != nil {
			return nil, err
		}
		switch o.Mode {
		case "", "l3":
			nk.Mode = netlink.NETKIT_MODE_L3
			pair.Mode = "l3"
		case "l2":
			nk.Mode = netlink.NETKIT_MODE_L2
			pair.Mode = "l2"
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
		if o.PeerNs != o.PrimaryNs && l.sh == nil {
			peer.Namespace = netlink.NsFd(o.PeerNs.Fd())
		}
		nk.SetPeerAttrs(&peer)
		dev = nk
	default:
		return nil, fmt.Errorf("unknown pair kind %q", o.Kind)
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	for _, k := range l.links {
		if (k.name == o.Primary && k.ns == o.PrimaryNs) || (k.name == o.Peer && k.ns == o.PeerNs) {
			return nil, exists("this script already created a link named %q in namespace %s; pick another name", k.name, k.ns.name)
		}
	}
	if err := l.fault(fmt.Sprintf("%s pair %s/%s", o.Kind, o.Primary, o.Peer)); err != nil {
		return nil, err
	}
	if l.sh != nil {
		l.dryPair(o, pair)
		return pair, nil
	}
	var addErr error
	if nk, ok := dev.(*netlink.Netkit); ok && (o.Headroom != 0 || o.Tailroom != 0) {
		var peerNs *Netns
		if o.PeerNs != o.PrimaryNs {
			peerNs = o.PeerNs
		}
		peer := netlink.LinkAttrs{Name: o.Peer, MTU: o.MTU}
		if o.PeerMTU != 0 {
			peer.MTU = o.PeerMTU
		}
		if addErr = createNetkit(o.PrimaryNs, nk, peer, peerNs, uint16(o.Headroom), uint16(o.Tailroom)); addErr == nil {
			if got, err := o.PrimaryNs.nl.LinkByName(o.Primary); err == nil {
				nk.Index = got.Attrs().Index
			}
		}
	} else {
		addErr = o.PrimaryNs.nl.LinkAdd(dev)
	}
	if err := addErr; err != nil {
		if errors.Is(err, os.ErrExist) {
			// Either name may be the one taken.
			return nil, exists("create %s pair %s/%s: a link named %q (in %s) or %q (in %s) exists already and is not this run's; pick other names",
				o.Kind, o.Primary, o.Peer, o.Primary, o.PrimaryNs.name, o.Peer, o.PeerNs.name)
		}
		return nil, fmt.Errorf("create %s pair %s/%s: %w", o.Kind, o.Primary, o.Peer, err)
	}
	primIdx := dev.Attrs().Index
	peerDev, err := o.PeerNs.nl.LinkByName(o.Peer)
	if err == nil && primIdx == 0 {
		err = fmt.Errorf("no device named %q in %s", o.Primary, o.PrimaryNs.name)
	}
	if err != nil {
		// The pair exists but we cannot name it: remove it by the name we
		// just created it under, before anyone else can reuse it.
		if derr := o.PrimaryNs.nl.LinkDel(dev); derr != nil {
			err = errors.Join(err, fmt.Errorf("remove it: %w", derr))
		}
		return nil, fmt.Errorf("create %s pair %s/%s: look up new devices: %w", o.Kind, o.Primary, o.Peer, err)
	}
	pair.Primary = &Link{ns: o.PrimaryNs, index: primIdx, name: o.Primary, pair: pair, prim: true}
	pair.Peer = &Link{ns: o.PeerNs, index: peerDev.Attrs().Index, name: o.Peer, pair: pair}

	// A pair lives until either end is deleted. If an end is in a
	// namespace the lab did not create, delete it explicitly (by
	// identity); otherwise the pair goes when the lab's namespace goes.
	var anchor *Link
	for _, k := range []*Link{pair.Primary, pair.Peer} {
		if l.owned[k.ns.id] == nil {
			anchor = k
			break
		}
	}
	if anchor != nil {
		seq, err := l.journal.Append(Entry{Op: "link", NS: anchor.ns.id, Ifindex: anchor.index, Name: anchor.name, Kind: string(o.Kind)})
		if err != nil {
			o.PrimaryNs.nl.LinkDel(dev)
			return nil, err
		}
		l.push("link "+anchor.name, seq, func() error {
			return deleteLinkByIdentity(anchor.ns, anchor.index, anchor.name, string(o.Kind))
		})
	}
	l.links = append(l.links, pair.Primary, pair.Peer)
	return pair, nil
}

// deleteLinkByIdentity deletes the link with ifindex in ns if it still has
// the given name and kind; a link that is gone or was replaced is left.
func deleteLinkByIdentity(ns *Netns, ifindex int, name, kind string) error {
	dev, err := ns.nl.LinkByIndex(ifindex)
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
	if err := ns.nl.LinkDel(dev); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}

// AddAddr adds an address to a link.
func (l *Lab) AddAddr(k *Link, p netip.Prefix) error {
	defer l.Timed(PhaseAddresses)()
	if err := l.checkOpenLocked(); err != nil {
		return err
	}
	if err := l.fault(fmt.Sprintf("addr %s dev %s", p, k.name)); err != nil {
		return err
	}
	if l.sh != nil {
		nodad := ""
		if p.Addr().Is6() {
			nodad = " nodad"
		}
		l.Shell("%s addr add %s dev %s%s", ipn(k.ns), p, shq(k.name), nodad)
		k.mu.Lock()
		k.addrs = append(k.addrs, p)
		k.mu.Unlock()
		return nil
	}
	a := &netlink.Addr{IPNet: prefixToIPNet(p)}
	if p.Addr().Is6() {
		// The lab is ready when its links are: skip duplicate address
		// detection so traffic can start at once.
		a.Flags = 0x02 // IFA_F_NODAD
	}
	if err := k.ns.nl.AddrAdd(k.nlLink(), a); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("address %s is already on %s", p, k.name)
		}
		return fmt.Errorf("add address %s to %s: %w", p, k.name, err)
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

func (l *Lab) checkOpenLocked() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.checkOpen()
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// SetUp sets a link administratively up or down. Links set up are waited
// for by WaitReady before traffic is sent.
func (l *Lab) SetUp(k *Link, up bool) error {
	defer l.Timed(PhaseLinks)()
	if err := l.checkOpenLocked(); err != nil {
		return err
	}
	state := "down"
	if up {
		state = "up"
	}
	if err := l.fault(fmt.Sprintf("link set %s %s", k.name, state)); err != nil {
		return err
	}
	var err error
	switch {
	case l.sh != nil:
		l.Shell("%s link set %s %s", ipn(k.ns), shq(k.name), state)
	case up:
		err = k.ns.nl.LinkSetUp(k.nlLink())
	default:
		err = k.ns.nl.LinkSetDown(k.nlLink())
	}
	if err != nil {
		return fmt.Errorf("set %s %s: %w", k.name, state, err)
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
