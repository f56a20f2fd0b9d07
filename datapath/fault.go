package datapath

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
)

// FaultPlan makes the At-th kernel-changing operation of a lab fail, or
// panic (a bug in nkscript, as the run sees it), to prove that a run
// failing at any point still cleans up. With At 0 it only counts. It is
// a test hook: tests and `make reliability` set it, users never do.
type FaultPlan struct {
	At    int
	Panic bool
	ops   atomic.Int64
}

// ParseFaultPlan reads a plan written "K" (fail the K-th operation),
// "panic:K" (panic in it) or "count" (only count).
func ParseFaultPlan(s string) (*FaultPlan, error) {
	if s == "count" {
		return &FaultPlan{}, nil
	}
	p := &FaultPlan{}
	rest, panics := strings.CutPrefix(s, "panic:")
	k, err := strconv.Atoi(rest)
	if err != nil || k < 1 {
		return nil, fmt.Errorf("fault plan %q: want K, panic:K or count", s)
	}
	p.At, p.Panic = k, panics
	return p, nil
}

// Ops is the number of kernel-changing operations counted so far.
func (p *FaultPlan) Ops() int { return int(p.ops.Load()) }

// fault counts one operation and fails it if it is the planned one.
func (p *FaultPlan) fault(op string) error {
	n := int(p.ops.Add(1))
	if p.At == 0 || n != p.At {
		return nil
	}
	if p.Panic {
		panic(fmt.Sprintf("%s: injected panic at operation %d", op, n))
	}
	return fmt.Errorf("%s: injected fault at operation %d", op, n)
}

// faulty is a Backend whose kernel-changing operations go through a
// FaultPlan first.
type faulty struct {
	Backend
	p *FaultPlan
}

// WithFaults wraps b so that its kernel-changing operations follow p.
func WithFaults(b Backend, p *FaultPlan) Backend { return &faulty{b, p} }

func (f *faulty) CreateNetns(name string, record func(path string, id NsID) error) (*Netns, error) {
	if err := f.p.fault("netns " + name); err != nil {
		return nil, err
	}
	return f.Backend.CreateNetns(name, record)
}

func (f *faulty) CreatePair(o PairOptions) (int, int, error) {
	if err := f.p.fault(fmt.Sprintf("%s pair %s/%s", o.Kind, o.Primary, o.Peer)); err != nil {
		return 0, 0, err
	}
	return f.Backend.CreatePair(o)
}

func (f *faulty) CreateBridge(ns *Netns, name string, mtu int) (int, error) {
	if err := f.p.fault("bridge " + name); err != nil {
		return 0, err
	}
	return f.Backend.CreateBridge(ns, name, mtu)
}

func (f *faulty) CreateDevice(ns *Netns, d DeviceSpec) (int, error) {
	if err := f.p.fault(d.Kind + " " + d.Name); err != nil {
		return 0, err
	}
	return f.Backend.CreateDevice(ns, d)
}

func (f *faulty) AddFDB(k *Link, remote netip.Addr) error {
	return f.then(fmt.Sprintf("fdb %s dst %s", k.name, remote), func() error { return f.Backend.AddFDB(k, remote) })
}

func (f *faulty) AddAddr(k *Link, p netip.Prefix) error {
	return f.then(fmt.Sprintf("addr %s dev %s", p, k.name), func() error { return f.Backend.AddAddr(k, p) })
}

func (f *faulty) SetUp(k *Link, up bool) error {
	return f.then(fmt.Sprintf("link set %s %s", k.name, upDown(up)), func() error { return f.Backend.SetUp(k, up) })
}

func (f *faulty) SetMaster(k, br *Link) error {
	return f.then(fmt.Sprintf("link set %s %s", k.name, masterWords(br)), func() error { return f.Backend.SetMaster(k, br) })
}

func (f *faulty) SetMTU(k *Link, mtu int) error {
	return f.then(fmt.Sprintf("link set %s mtu %d", k.name, mtu), func() error { return f.Backend.SetMTU(k, mtu) })
}

func (f *faulty) AddRoute(ns *Netns, r RouteSpec) error {
	return f.then("route "+r.String(), func() error { return f.Backend.AddRoute(ns, r) })
}

func (f *faulty) DeleteRoute(ns *Netns, r RouteSpec) error {
	return f.then("route del "+r.String(), func() error { return f.Backend.DeleteRoute(ns, r) })
}

func (f *faulty) AddRule(ns *Netns, r RuleSpec) error {
	return f.then("rule "+r.String(), func() error { return f.Backend.AddRule(ns, r) })
}

func (f *faulty) DeleteRule(ns *Netns, r RuleSpec) error {
	return f.then("rule del "+r.String(), func() error { return f.Backend.DeleteRule(ns, r) })
}

func (f *faulty) WriteSysctl(ns *Netns, key, old, value string) error {
	return f.then(fmt.Sprintf("sysctl %s=%s", key, value), func() error { return f.Backend.WriteSysctl(ns, key, old, value) })
}

func (f *faulty) LoadProgram(spec ProgramSpec) (*Program, error) {
	what := spec.Name
	if what == "" {
		what = spec.origin()
	}
	if err := f.p.fault("load program " + what); err != nil {
		return nil, err
	}
	return f.Backend.LoadProgram(spec)
}

func (f *faulty) Attach(p *Program, target *Link, hook Hook, opts AttachOptions) (*Attachment, error) {
	if err := f.p.fault(fmt.Sprintf("attach %s to %s %s", p.Name(), target.name, hook)); err != nil {
		return nil, err
	}
	return f.Backend.Attach(p, target, hook, opts)
}

func (f *faulty) Trace(record func(Record) error) (*Tracer, error) {
	if err := f.p.fault("trace"); err != nil {
		return nil, err
	}
	return f.Backend.Trace(record)
}

func (f *faulty) then(op string, do func() error) error {
	if err := f.p.fault(op); err != nil {
		return err
	}
	return do()
}
