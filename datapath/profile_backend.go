package datapath

import (
	"context"
	"net"
	"net/netip"
	"time"
)

// profiled is a Backend whose operations are timed by phase.
type profiled struct {
	Backend
	p *Profile
}

// WithProfile wraps b so that its operations are timed in p.
func WithProfile(b Backend, p *Profile) Backend { return &profiled{b, p} }

func (w *profiled) CreateNetns(name string, record func(Record) error) (*Netns, error) {
	defer w.p.timed(PhaseNamespaces)()
	return w.Backend.CreateNetns(name, record)
}

func (w *profiled) CreatePair(o PairOptions) (int, int, error) {
	defer w.p.timed(PhaseLinks)()
	return w.Backend.CreatePair(o)
}

func (w *profiled) CreateBridge(ns *Netns, name string, mtu, index int) (int, error) {
	defer w.p.timed(PhaseLinks)()
	return w.Backend.CreateBridge(ns, name, mtu, index)
}

func (w *profiled) CreateDevice(ns *Netns, d DeviceSpec) (int, error) {
	defer w.p.timed(PhaseLinks)()
	return w.Backend.CreateDevice(ns, d)
}

func (w *profiled) AddFDB(k *Link, remote netip.Addr) error {
	defer w.p.timed(PhaseLinks)()
	return w.Backend.AddFDB(k, remote)
}

func (w *profiled) DeleteLink(k *Link) error {
	defer w.p.timed(PhaseLinks)()
	return w.Backend.DeleteLink(k)
}

func (w *profiled) MoveLink(k *Link, to *Netns) (int, error) {
	defer w.p.timed(PhaseLinks)()
	return w.Backend.MoveLink(k, to)
}

func (w *profiled) DeleteNetns(ns *Netns) error {
	defer w.p.timed(PhaseNamespaces)()
	return w.Backend.DeleteNetns(ns)
}

func (w *profiled) SetUp(k *Link, up bool) error {
	defer w.p.timed(PhaseLinks)()
	return w.Backend.SetUp(k, up)
}

func (w *profiled) SetMaster(k, br *Link) error {
	defer w.p.timed(PhaseLinks)()
	return w.Backend.SetMaster(k, br)
}

func (w *profiled) SetMAC(k *Link, mac net.HardwareAddr) error {
	defer w.p.timed(PhaseLinks)()
	return w.Backend.SetMAC(k, mac)
}

func (w *profiled) SetMTU(k *Link, mtu int) error {
	defer w.p.timed(PhaseLinks)()
	return w.Backend.SetMTU(k, mtu)
}

func (w *profiled) AddAddr(k *Link, p netip.Prefix) error {
	defer w.p.timed(PhaseAddresses)()
	return w.Backend.AddAddr(k, p)
}

func (w *profiled) AddRoute(ns *Netns, r RouteSpec) error {
	defer w.p.timed(PhaseRoutes)()
	return w.Backend.AddRoute(ns, r)
}

func (w *profiled) DeleteRoute(ns *Netns, r RouteSpec) error {
	defer w.p.timed(PhaseRoutes)()
	return w.Backend.DeleteRoute(ns, r)
}

func (w *profiled) AddRule(ns *Netns, r RuleSpec) error {
	defer w.p.timed(PhaseRoutes)()
	return w.Backend.AddRule(ns, r)
}

func (w *profiled) DeleteRule(ns *Netns, r RuleSpec) error {
	defer w.p.timed(PhaseRoutes)()
	return w.Backend.DeleteRule(ns, r)
}

func (w *profiled) ReadSysctl(ns *Netns, key string) (string, error) {
	defer w.p.timed(PhaseSysctls)()
	return w.Backend.ReadSysctl(ns, key)
}

func (w *profiled) WriteSysctl(ns *Netns, key, old, value string) error {
	defer w.p.timed(PhaseSysctls)()
	return w.Backend.WriteSysctl(ns, key, old, value)
}

func (w *profiled) LoadProgram(spec ProgramSpec) (*Program, error) {
	defer w.p.timed(PhasePrograms)()
	return w.Backend.LoadProgram(spec)
}

func (w *profiled) Attach(p *Program, target *Link, hook Hook, opts AttachOptions) (*Attachment, error) {
	defer w.p.timed(PhasePrograms)()
	return w.Backend.Attach(p, target, hook, opts)
}

func (w *profiled) WaitLinks(ctx context.Context, ns *Netns, oper, nd []int, timeout time.Duration) error {
	defer w.p.timed(PhaseChecks)()
	return w.Backend.WaitLinks(ctx, ns, oper, nd, timeout)
}

func (w *profiled) Ping(ctx context.Context, src *Netns, dst netip.Addr, opts PingOptions) (PingResult, error) {
	defer w.p.timed(PhaseChecks)()
	return w.Backend.Ping(ctx, src, dst, opts)
}

func (w *profiled) Probe(ctx context.Context, o ProbeOptions, pass bool) (ProbeResult, error) {
	defer w.p.timed(PhaseChecks)()
	return w.Backend.Probe(ctx, o, pass)
}
