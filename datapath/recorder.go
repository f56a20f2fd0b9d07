package datapath

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/cilium/ebpf"
)

// recorder is the Backend that changes nothing and hands out stand-ins:
// namespaces and devices with made-up identities, programs whose maps
// hold nothing, checks that assume what the script expects. `nkscript
// graph` builds a lab on it to draw; the shell backend builds on it.
type recorder struct {
	mu      sync.Mutex
	ifindex int
	nsIno   uint64
	made    recordedRoutes // for Show
}

// NewRecorder returns the backend that only records the lab.
func NewRecorder() Backend { return &recorder{ifindex: 1000} }

// Host is a stand-in for the caller's namespace, with its identity but
// no netlink handle: a recorder needs no privileges.
func (r *recorder) Host() (*Netns, error) {
	id, err := statNsPath("/proc/self/ns/net")
	if err != nil {
		return nil, fmt.Errorf("host netns: %w", err)
	}
	return &Netns{name: "host", id: id, host: true}, nil
}

func (r *recorder) nextIndex() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ifindex++
	return r.ifindex
}

func (r *recorder) CreateNetns(name string, record func(Record) error) (*Netns, error) {
	r.mu.Lock()
	r.nsIno++
	ns := &Netns{name: name, path: NetnsDir + "/" + name, id: NsID{Dev: 0, Ino: r.nsIno}}
	r.mu.Unlock()
	if err := record(&NetnsRecord{Name: name, Path: ns.path, NS: ns.id}); err != nil {
		return nil, err
	}
	return ns, nil
}

func (r *recorder) CreatePair(PairOptions) (int, int, error) {
	return r.nextIndex(), r.nextIndex(), nil
}

func (r *recorder) CreateBridge(*Netns, string, int, int) (int, error) { return r.nextIndex(), nil }
func (r *recorder) CreateDevice(*Netns, DeviceSpec) (int, error)       { return r.nextIndex(), nil }
func (r *recorder) AddFDB(*Link, netip.Addr) error                     { return nil }
func (r *recorder) Loopback(*Netns) (int, error)                       { return loopbackIfindex, nil }
func (r *recorder) DeleteLink(*Link) error                             { return nil }
func (r *recorder) MoveLink(k *Link, _ *Netns) (int, error)            { return k.index, nil }
func (r *recorder) DeleteNetns(*Netns) error                           { return nil }
func (r *recorder) AddAddr(*Link, netip.Prefix) error                  { return nil }
func (r *recorder) SetUp(*Link, bool) error                            { return nil }
func (r *recorder) SetMaster(_, _ *Link) error                         { return nil }
func (r *recorder) SetMTU(*Link, int) error                            { return nil }
func (r *recorder) SetMAC(*Link, net.HardwareAddr) error               { return nil }
func (r *recorder) WriteSysctl(_ *Netns, _, _, _ string) error         { return nil }

// ReadSysctl reads the host's settings, which exist, and knows nothing
// of namespaces that do not.
func (r *recorder) ReadSysctl(ns *Netns, key string) (string, error) {
	if ns.host {
		return ReadSysctl(ns, key)
	}
	return "", nil
}

// LoadProgram checks the object and its constants as a load would.
func (r *recorder) LoadProgram(spec ProgramSpec) (*Program, error) {
	coll, fn, err := programCollection(spec)
	if err != nil {
		return nil, err
	}
	if err := setAddrConsts(coll, spec.AddrConsts); err != nil {
		return nil, fmt.Errorf("load program %s: %w", programLabel(spec, fn), err)
	}
	if err := setConsts(coll, spec.Consts); err != nil {
		return nil, fmt.Errorf("load program %s: %w", programLabel(spec, fn), err)
	}
	name := fn
	if spec.Name != "" {
		name = spec.Name
	}
	return &Program{name: name, typ: coll.Programs[fn].Type, specs: coll.Maps, impl: standIn{}}, nil
}

// programLabel names a program in messages.
func programLabel(spec ProgramSpec, fn string) string {
	if spec.Name != "" {
		return spec.Name
	}
	return fmt.Sprintf("%s in %s", fn, spec.origin())
}

func (r *recorder) Attach(p *Program, target *Link, hook Hook, opts AttachOptions) (*Attachment, error) {
	return standInAttachment(p, target, hook, opts)
}

// Chain lists the lab's own attachments on the hook.
func (r *recorder) Chain(target *Link, hook Hook, lab []*Attachment) ([]string, error) {
	var names []string
	for _, a := range lab {
		if a.on == target && a.hook == hook && !a.Detached() {
			names = append(names, a.prog)
		}
	}
	return names, nil
}

func (r *recorder) Pin([]*Attachment, string, func(Record) error) error { return nil }

func (r *recorder) WaitLinks(context.Context, *Netns, []int, []int, time.Duration) error {
	return nil
}

// AddrOwners looks at the addresses the lab gave its devices.
func (r *recorder) AddrOwners(addr netip.Addr, _ []*Netns, links []*Link) ([]*Netns, error) {
	var found []*Netns
	for _, k := range links {
		for _, p := range k.Addrs() {
			if p.Addr() == addr && !slices.Contains(found, k.ns) {
				found = append(found, k.ns)
			}
		}
	}
	return found, nil
}

// Ping assumes every echo request is answered.
func (r *recorder) Ping(_ context.Context, _ *Netns, _ netip.Addr, opts PingOptions) (PingResult, error) {
	return PingResult{Sent: opts.Count, Received: opts.Count}, nil
}

// Probe assumes the outcome the script expects.
func (r *recorder) Probe(_ context.Context, _ ProbeOptions, pass bool) (ProbeResult, error) {
	return ProbeResult{Delivered: pass, Assumed: true}, nil
}

func (r *recorder) Connect(context.Context, *Netns, string, netip.AddrPort, time.Duration) (ConnectResult, error) {
	return ConnectResult{Reply: "(dry run)"}, nil
}

func (r *recorder) Serve(ns *Netns, proto string, port int, reply string) (*Server, error) {
	return &Server{ns: ns, proto: proto, port: port, reply: []byte(reply), stop: make(chan struct{})}, nil
}

func (r *recorder) Exec(context.Context, *Netns, []string) (string, error) { return "", nil }

func (r *recorder) Capture(s CaptureSpec) (*Capture, error) {
	return &Capture{ifaces: standInIfaces(s), stopped: true}, nil
}

func (r *recorder) Trace(func(Record) error) (*Tracer, error) { return &Tracer{}, nil }

func (r *recorder) DropMonitor() (*DropMonitor, error) { return &DropMonitor{}, nil }
func (r *recorder) Note(string)                        {}
func (r *recorder) Check(_, _ string) error            { return nil }
func (r *recorder) Pause(string) bool                  { return false }

func (r *recorder) Journal(string, string, NsID) (journal, error) { return noJournal{}, nil }

func (r *recorder) Undo(Record, map[NsID]*Netns) error { return nil }
func (r *recorder) Close() error                       { return nil }

// noJournal drops records: a lab that changes nothing has nothing to undo.
type noJournal struct{}

func (noJournal) Append(Record) (int, error) { return 0, nil }
func (noJournal) Undone(int) error           { return nil }
func (noJournal) Path() string               { return "" }
func (noJournal) Close() error               { return nil }
func (noJournal) Remove() error              { return nil }

// standIn is a recorded program, map or attachment: it holds nothing.
type standIn struct{}

func (standIn) stats() (Stats, error)                 { return Stats{}, nil }
func (standIn) mapStore(string) (mapStore, error)     { return standIn{}, nil }
func (standIn) kernel() (*ebpf.Program, error)        { return nil, errStandIn }
func (standIn) close() error                          { return nil }
func (standIn) run([]byte, uint32) (RunResult, error) { return RunResult{}, errNotRun }
func (standIn) put(m *Map, _ any, _ []byte, v any, _ []ifindexRef) error {
	_, err := m.valueBytes(v)
	return err
}
func (standIn) get(*Map, []byte) (any, bool, error)               { return nil, false, nil }
func (standIn) delete(*Map, any, []byte) (bool, error)            { return true, nil }
func (standIn) items(*Map) ([][2]any, error)                      { return nil, nil }
func (standIn) putBytes(*Map, []byte, []byte, []ifindexRef) error { return nil }
func (standIn) deleteBytes(*Map, []byte) (bool, error)            { return true, nil }
func (standIn) rawItems(*Map) ([][2][]byte, error)                { return nil, nil }
func (standIn) detach() error                                     { return nil }
func (standIn) release() error                                    { return nil }
func (standIn) pin(string) (bool, error)                          { return false, nil }
func (standIn) legacy() bool                                      { return false }

var errStandIn = fmt.Errorf("a recorded program is not in the kernel: %w", ErrNotSupported)
