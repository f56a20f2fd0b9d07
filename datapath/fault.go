package datapath

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// FaultPlan makes the At-th kernel-changing operation of a lab, or the
// UndoAt-th undo step of its Close, fail, or panic if Panic is set (a
// bug in nkscript, as the run sees it), to prove that a run failing at
// any point still cleans up, or leaves a journal `nkscript cleanup`
// completes. With At and UndoAt 0 it only counts. It is a test hook:
// tests and `make reliability` set it, users never do.
//
// Every operation and undo step passes one fault point, named after the
// Backend method that performs it (FaultPoints lists them); the plan
// counts how often a run reached each (Reached).
type FaultPlan struct {
	At     int
	UndoAt int
	Panic  bool
	// Phase, if set, is called with the run's new phase whenever it
	// changes: "building" at a kernel-changing operation, "traffic" at
	// an operation that sends or receives traffic (ping, probe, connect,
	// serve, exec, capture), "teardown" at an undo step or SetPhase. The
	// tests of signals use it to know what a signal interrupted.
	Phase func(phase string)

	ops, undos atomic.Int64
	mu         sync.Mutex
	reached    map[string]int
	phase      string
}

// faultPoints are the fault points of the faulty wrapper: the Backend
// methods that change the kernel, and Undo.
var faultPoints = []string{
	"AddAddr", "AddFDB", "AddRoute", "AddRule", "Attach", "CreateBridge", "CreateDevice",
	"CreateNetns", "CreatePair", "DeleteLink", "DeleteNetns", "DeleteRoute", "DeleteRule", "DropMonitor", "LoadProgram",
	"MoveLink", "SetMAC", "SetMTU", "SetMaster", "SetUp", "Trace", "Undo", "WriteSysctl",
}

// FaultPoints lists, sorted, the names of the points at which a FaultPlan
// can fail a run: one per Backend method WithFaults wraps.
func FaultPoints() []string { return slices.Clone(faultPoints) }

// ParseFaultPlan reads a plan written "K" (fail the K-th operation),
// "panic:K" (panic in it), "undo:K" (fail the K-th undo step),
// "undo-panic:K" (panic in it) or "count" (only count).
func ParseFaultPlan(s string) (*FaultPlan, error) {
	if s == "count" {
		return &FaultPlan{}, nil
	}
	kind, rest, ok := strings.Cut(s, ":")
	if !ok {
		kind, rest = "", s
	}
	k, err := strconv.Atoi(rest)
	if err != nil || k < 1 {
		return nil, fmt.Errorf("fault plan %q: want K, panic:K, undo:K, undo-panic:K or count", s)
	}
	switch kind {
	case "":
		return &FaultPlan{At: k}, nil
	case "panic":
		return &FaultPlan{At: k, Panic: true}, nil
	case "undo":
		return &FaultPlan{UndoAt: k}, nil
	case "undo-panic":
		return &FaultPlan{UndoAt: k, Panic: true}, nil
	}
	return nil, fmt.Errorf("fault plan %q: want K, panic:K, undo:K, undo-panic:K or count", s)
}

// Ops is the number of kernel-changing operations counted so far.
func (p *FaultPlan) Ops() int { return int(p.ops.Load()) }

// Undos is the number of undo steps counted so far.
func (p *FaultPlan) Undos() int { return int(p.undos.Load()) }

// Reached says how many times the run passed each fault point it
// reached.
func (p *FaultPlan) Reached() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.reached)
}

// FormatReached writes Reached as "Point=N ...", sorted by point.
func (p *FaultPlan) FormatReached() string {
	m := p.Reached()
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%d", k, m[k])
	}
	return b.String()
}

// SetPhase tells p that the run entered phase (the caller knows that
// teardown starts before the first undo step).
func (p *FaultPlan) SetPhase(phase string) { p.enter("", phase) }

// enter counts one pass of point and reports a phase change.
func (p *FaultPlan) enter(point, phase string) {
	p.mu.Lock()
	if p.reached == nil {
		p.reached = map[string]int{}
	}
	if point != "" {
		p.reached[point]++
	}
	changed := phase != p.phase
	p.phase = phase
	p.mu.Unlock()
	if changed && p.Phase != nil {
		p.Phase(phase)
	}
}

// fault counts one operation at point (op describes it) and fails it if
// it is the planned one.
func (p *FaultPlan) fault(point, op string) error {
	p.enter(point, "building")
	n := int(p.ops.Add(1))
	if p.At == 0 || n != p.At {
		return nil
	}
	return p.inject(fmt.Sprintf("%s: injected %%s at operation %d (%s)", op, n, point))
}

// undoFault counts one undo step and fails it if it is the planned one.
func (p *FaultPlan) undoFault(r Record) error {
	p.enter("Undo", "teardown")
	n := int(p.undos.Add(1))
	if p.UndoAt == 0 || n != p.UndoAt {
		return nil
	}
	return p.inject(fmt.Sprintf("undo %s %s: injected %%s at undo step %d (Undo)", r.Op(), r, n))
}

// inject fails or panics with format, whose %s says which.
func (p *FaultPlan) inject(format string) error {
	if p.Panic {
		panic(fmt.Sprintf(format, "panic"))
	}
	return fmt.Errorf(format, "fault")
}

// faulty is a Backend whose kernel-changing operations and undo steps go
// through a FaultPlan first. Each wrapped method is a fault point named
// after itself (faultPoints).
type faulty struct {
	Backend
	p *FaultPlan
}

// WithFaults wraps b so that its kernel-changing operations follow p.
func WithFaults(b Backend, p *FaultPlan) Backend { return &faulty{b, p} }

func (f *faulty) CreateNetns(name string, record func(Record) error) (*Netns, error) {
	if err := f.p.fault("CreateNetns", "netns "+name); err != nil {
		return nil, err
	}
	return f.Backend.CreateNetns(name, record)
}

func (f *faulty) CreatePair(o PairOptions) (int, int, error) {
	if err := f.p.fault("CreatePair", fmt.Sprintf("%s pair %s/%s", o.Kind, o.Primary, o.Peer)); err != nil {
		return 0, 0, err
	}
	return f.Backend.CreatePair(o)
}

func (f *faulty) CreateBridge(ns *Netns, name string, mtu, index int) (int, error) {
	if err := f.p.fault("CreateBridge", "bridge "+name); err != nil {
		return 0, err
	}
	return f.Backend.CreateBridge(ns, name, mtu, index)
}

func (f *faulty) CreateDevice(ns *Netns, d DeviceSpec) (int, error) {
	if err := f.p.fault("CreateDevice", d.Kind+" "+d.Name); err != nil {
		return 0, err
	}
	return f.Backend.CreateDevice(ns, d)
}

func (f *faulty) AddFDB(k *Link, remote netip.Addr) error {
	return f.then("AddFDB", fmt.Sprintf("fdb %s dst %s", k.name, remote), func() error { return f.Backend.AddFDB(k, remote) })
}

func (f *faulty) DeleteLink(k *Link) error {
	return f.then("DeleteLink", "link del "+k.name, func() error { return f.Backend.DeleteLink(k) })
}

func (f *faulty) MoveLink(k *Link, to *Netns) (int, error) {
	if err := f.p.fault("MoveLink", fmt.Sprintf("link set %s netns %s", k.name, to.name)); err != nil {
		return 0, err
	}
	return f.Backend.MoveLink(k, to)
}

func (f *faulty) DeleteNetns(ns *Netns) error {
	return f.then("DeleteNetns", "netns del "+ns.name, func() error { return f.Backend.DeleteNetns(ns) })
}

func (f *faulty) AddAddr(k *Link, p netip.Prefix) error {
	return f.then("AddAddr", fmt.Sprintf("addr %s dev %s", p, k.name), func() error { return f.Backend.AddAddr(k, p) })
}

func (f *faulty) SetUp(k *Link, up bool) error {
	return f.then("SetUp", fmt.Sprintf("link set %s %s", k.name, upDown(up)), func() error { return f.Backend.SetUp(k, up) })
}

func (f *faulty) SetMaster(k, br *Link) error {
	return f.then("SetMaster", fmt.Sprintf("link set %s %s", k.name, masterWords(br)), func() error { return f.Backend.SetMaster(k, br) })
}

func (f *faulty) SetMAC(k *Link, mac net.HardwareAddr) error {
	return f.then("SetMAC", fmt.Sprintf("link set %s address %s", k.name, mac), func() error { return f.Backend.SetMAC(k, mac) })
}

func (f *faulty) SetMTU(k *Link, mtu int) error {
	return f.then("SetMTU", fmt.Sprintf("link set %s mtu %d", k.name, mtu), func() error { return f.Backend.SetMTU(k, mtu) })
}

func (f *faulty) AddRoute(ns *Netns, r RouteSpec) error {
	return f.then("AddRoute", "route "+r.String(), func() error { return f.Backend.AddRoute(ns, r) })
}

func (f *faulty) DeleteRoute(ns *Netns, r RouteSpec) error {
	return f.then("DeleteRoute", "route del "+r.String(), func() error { return f.Backend.DeleteRoute(ns, r) })
}

func (f *faulty) AddRule(ns *Netns, r RuleSpec) error {
	return f.then("AddRule", "rule "+r.String(), func() error { return f.Backend.AddRule(ns, r) })
}

func (f *faulty) DeleteRule(ns *Netns, r RuleSpec) error {
	return f.then("DeleteRule", "rule del "+r.String(), func() error { return f.Backend.DeleteRule(ns, r) })
}

func (f *faulty) WriteSysctl(ns *Netns, key, old, value string) error {
	return f.then("WriteSysctl", fmt.Sprintf("sysctl %s=%s", key, value), func() error { return f.Backend.WriteSysctl(ns, key, old, value) })
}

func (f *faulty) LoadProgram(spec ProgramSpec) (*Program, error) {
	what := spec.Name
	if what == "" {
		what = spec.origin()
	}
	if err := f.p.fault("LoadProgram", "load program "+what); err != nil {
		return nil, err
	}
	return f.Backend.LoadProgram(spec)
}

func (f *faulty) Attach(p *Program, target *Link, hook Hook, opts AttachOptions) (*Attachment, error) {
	if err := f.p.fault("Attach", fmt.Sprintf("attach %s to %s %s", p.Name(), target.name, hook)); err != nil {
		return nil, err
	}
	return f.Backend.Attach(p, target, hook, opts)
}

func (f *faulty) Trace(record func(Record) error) (*Tracer, error) {
	if err := f.p.fault("Trace", "trace"); err != nil {
		return nil, err
	}
	return f.Backend.Trace(record)
}

func (f *faulty) DropMonitor() (*DropMonitor, error) {
	if err := f.p.fault("DropMonitor", "start the drop monitor"); err != nil {
		return nil, err
	}
	return f.Backend.DropMonitor()
}

func (f *faulty) Undo(r Record, nss map[NsID]*Netns) error {
	if err := f.p.undoFault(r); err != nil {
		return err
	}
	return f.Backend.Undo(r, nss)
}

func (f *faulty) then(point, op string, do func() error) error {
	if err := f.p.fault(point, op); err != nil {
		return err
	}
	return do()
}

// The operations that send or receive traffic pass no fault point (they
// change nothing that outlives the run) but mark the traffic phase.

func (f *faulty) Ping(ctx context.Context, src *Netns, dst netip.Addr, opts PingOptions) (PingResult, error) {
	f.p.enter("", "traffic")
	return f.Backend.Ping(ctx, src, dst, opts)
}

func (f *faulty) Probe(ctx context.Context, o ProbeOptions, pass bool) (ProbeResult, error) {
	f.p.enter("", "traffic")
	return f.Backend.Probe(ctx, o, pass)
}

func (f *faulty) Connect(ctx context.Context, src *Netns, proto string, dst netip.AddrPort, timeout time.Duration) (ConnectResult, error) {
	f.p.enter("", "traffic")
	return f.Backend.Connect(ctx, src, proto, dst, timeout)
}

func (f *faulty) Serve(ns *Netns, proto string, port int, reply string) (*Server, error) {
	f.p.enter("", "traffic")
	return f.Backend.Serve(ns, proto, port, reply)
}

func (f *faulty) Exec(ctx context.Context, ns *Netns, argv []string) (string, error) {
	f.p.enter("", "traffic")
	return f.Backend.Exec(ctx, ns, argv)
}

func (f *faulty) Capture(s CaptureSpec) (*Capture, error) {
	f.p.enter("", "traffic")
	return f.Backend.Capture(s)
}
