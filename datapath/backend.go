package datapath

import (
	"context"
	"net"
	"net/netip"
	"time"
)

// Backend makes the changes a Lab decides on. The Lab checks names,
// applies --prefix, refuses duplicates, journals and keeps the undo list;
// everything that touches a machine goes through its Backend. There are
// three: the kernel (netlink, cilium/ebpf), the shell writer of --dry-run,
// which prints the commands that would do the same, and the recorder, which
// only hands out stand-in objects (`nkscript graph`). Fault injection and
// profiling wrap any of them (WithFaults, WithProfile).
//
// Objects are validated by the Lab before they reach a Backend; a Backend
// reports only what the machine said.
type Backend interface {
	// Host returns the namespace the lab treats as the host: the caller's.
	Host() (*Netns, error)
	// CreateNetns creates a namespace named NetnsDir/name, its loopback
	// up. record journals, before each exists, the tree the backend's
	// namespaces are mounted in (a NetnsTreeRecord, at the first call),
	// then the namespace (a NetnsRecord); see createNamedNetnsFrom.
	CreateNetns(name string, record func(Record) error) (*Netns, error)
	// CreatePair creates both ends of a pair and returns their ifindexes.
	CreatePair(o PairOptions) (primary, peer int, err error)
	// CreateBridge creates a bridge (down, no ports) and returns its ifindex.
	CreateBridge(ns *Netns, name string, mtu, index int) (int, error)
	// DeleteLink deletes k; for a pair, both ends go.
	DeleteLink(k *Link) error
	// MoveLink moves k into the namespace to and returns its ifindex
	// there.
	MoveLink(k *Link, to *Netns) (int, error)
	// DeleteNetns deletes a namespace the lab created: its name and its
	// mount go, and the namespace with them once nothing holds it.
	DeleteNetns(ns *Netns) error

	// CreateDevice creates a vxlan, tun or vlan device (down) and
	// returns its ifindex.
	CreateDevice(ns *Netns, d DeviceSpec) (int, error)
	// AddFDB appends an all-zeros FDB entry sending to remote to the
	// vxlan device k.
	AddFDB(k *Link, remote netip.Addr) error
	// Loopback returns the ifindex of ns's loopback device.
	Loopback(ns *Netns) (int, error)
	// AddAddr adds p to k.
	AddAddr(k *Link, p netip.Prefix) error
	// SetUp sets k administratively up or down.
	SetUp(k *Link, up bool) error
	// SetMaster enslaves k to br, or releases it if br is nil.
	SetMaster(k, br *Link) error
	// SetMTU sets k's MTU.
	SetMTU(k *Link, mtu int) error
	// SetMAC sets k's hardware address.
	SetMAC(k *Link, mac net.HardwareAddr) error
	// AddRoute adds a route in ns.
	AddRoute(ns *Netns, r RouteSpec) error
	// DeleteRoute deletes a route of ns.
	DeleteRoute(ns *Netns, r RouteSpec) error
	// AddRule adds a routing policy rule in ns.
	AddRule(ns *Netns, r RuleSpec) error
	// DeleteRule deletes a routing policy rule of ns.
	DeleteRule(ns *Netns, r RuleSpec) error
	// ReadSysctl reads a network setting of ns.
	ReadSysctl(ns *Netns, key string) (string, error)
	// WriteSysctl sets key to value in ns; old is what ReadSysctl said.
	WriteSysctl(ns *Netns, key, old, value string) error
	// LoadProgram loads a BPF program.
	LoadProgram(spec ProgramSpec) (*Program, error)
	// Attach attaches p to hook on the device target (for netkit hooks,
	// a pair's primary device).
	Attach(p *Program, target *Link, hook Hook, opts AttachOptions) (*Attachment, error)
	// Show reads the links, addresses, routes, rules and the programs on
	// every hook of the namespaces nss; known is what the lab made.
	Show(nss []*Netns, known ShowKnown) (Snapshot, error)
	// Chain lists the programs on a hook of target, in order.
	Chain(target *Link, hook Hook, lab []*Attachment) ([]string, error)
	// RouteLookup asks ns's routing for dst (`ip route get`); a route it
	// does not have is ErrNoRoute.
	RouteLookup(ns *Netns, dst netip.Addr) (RouteFound, error)
	// Pin keeps attachments alive after the process exits, journaling
	// each pin with record (--keep).
	Pin(as []*Attachment, name string, record func(Record) error) error
	// WaitLinks waits until the links oper are operationally up and the
	// links nd answer IPv6 neighbour solicitations.
	WaitLinks(ctx context.Context, ns *Netns, oper, nd []int, timeout time.Duration) error
	// AddrOwners lists the namespaces among nss that have addr on a
	// device; links are the lab's devices with the addresses it gave.
	AddrOwners(addr netip.Addr, nss []*Netns, links []*Link) ([]*Netns, error)
	// Ping sends echo requests from src to dst.
	Ping(ctx context.Context, src *Netns, dst netip.Addr, opts PingOptions) (PingResult, error)
	// Probe checks that traffic of one protocol passes; pass is what the
	// script expects.
	Probe(ctx context.Context, o ProbeOptions, pass bool) (ProbeResult, error)
	// Connect makes one client exchange with a server.
	Connect(ctx context.Context, src *Netns, proto string, dst netip.AddrPort, timeout time.Duration) (ConnectResult, error)
	// Serve starts a server in ns.
	Serve(ns *Netns, proto string, port int, reply string) (*Server, error)
	// Exec runs argv in ns and returns its standard output.
	Exec(ctx context.Context, ns *Netns, argv []string) (string, error)
	// Capture records the packets of the devices s names.
	Capture(s CaptureSpec) (*Capture, error)
	// Trace starts collecting bpf_printk lines, journaling what it
	// creates with record.
	Trace(record func(Record) error) (*Tracer, error)
	// DropMonitor starts reporting the packets the kernel drops (in the
	// namespaces the monitor is told to watch); a kernel that cannot
	// run it is ErrNotSupported.
	DropMonitor() (*DropMonitor, error)
	// Note tells the reader of the backend's output something about the
	// run that is not an operation (what the script prints, a pause).
	Note(text string)
	// Pause reports whether the run can stop here for the user to look
	// around; a backend that cannot notes what it says instead.
	Pause(says string) bool
	// Check reports a failed check of the script (fail()): an error, or
	// nil where checks see made-up results and the run goes on.
	Check(pos, msg string) error
	// Journal makes the run's journal, or returns a sink that turns
	// records into undo commands, or nothing.
	Journal(dir, script string, host NsID) (journal, error)
	// Undo undoes one record at Close, in the namespace of nss it names.
	Undo(r Record, nss map[NsID]*Netns) error
	// Close releases what the backend holds (not what it made).
	Close() error
}

// journal is where a Lab's records go: a Journal file, or a backend's own
// rendering of them.
type journal interface {
	Append(r Record) (int, error)
	Undone(seq int) error
	Path() string
	Close() error
	Remove() error
}

// Every backend and wrapper implements every operation.
var (
	_ Backend = (*kernel)(nil)
	_ Backend = (*recorder)(nil)
	_ Backend = (*shell)(nil)
	_ Backend = (*faulty)(nil)
	_ Backend = (*profiled)(nil)
	_ journal = (*Journal)(nil)
	_ journal = (*shell)(nil)
	_ journal = noJournal{}
)
