// Package bpf holds the BPF programs bundled with nkscript: their C sources,
// the objects bpf2go compiled from them, and a registry to look them up by
// name.
//
// Every bundled program is a SchedCLS program that can be attached to tcx
// ingress/egress and to netkit primary/peer, and counts the packets it
// handles in a per-CPU array map named "stats" (see stats.h): index
// StatPassed, StatDropped and StatRedirected.
package bpf

import (
	"errors"
	"fmt"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/nkscript/nkscript/internal/quote"
)

// ErrUnknown is returned for a name that is not a bundled program.
var ErrUnknown = errors.New("unknown bundled program")

// StatsMap is the name of the map in which programs count packets.
const StatsMap = "stats"

// Indexes into the stats map.
const (
	StatPassed     = 0
	StatDropped    = 1
	StatRedirected = 2
	// NumStats is the number of counters in the stats map.
	NumStats = 3
)

type program struct {
	load func() (*ebpf.CollectionSpec, error)
	fn   string // name of the program function in the object
}

var programs = map[string]program{
	"pass":          {loadPass, passProgPass},
	"drop_port":     {loadDropPort, dropPortProgDropPort},
	"drop_flow":     {loadDropFlow, dropFlowProgDropFlow},
	"policy_router": {loadPolicyRouter, policyRouterProgPolicyRouter},
	"lb":            {loadLb, lbProgLb},
	"mirror":        {loadMirror, mirrorProgMirror},
	"redirect_peer": {loadRedirectPeer, redirectPeerProgRedirectPeer},
	"xdp_pass":      {loadXdp, xdpProgXdpPass},
	"xdp_drop_port": {loadXdp, xdpProgXdpDropPort},
}

// Names returns the names of the bundled programs, sorted.
func Names() []string {
	names := make([]string, 0, len(programs))
	for name := range programs {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Spec returns a fresh copy of the named program's collection, which the
// caller may modify. The error for an unknown name wraps ErrUnknown and
// lists the valid names.
func Spec(name string) (*ebpf.CollectionSpec, error) {
	p, err := lookup(name)
	if err != nil {
		return nil, err
	}
	spec, err := p.load()
	if err != nil {
		return nil, fmt.Errorf("bundled program %q: %w", name, err)
	}
	return spec, nil
}

// Function returns the name of the program function inside the named
// program's collection, the key of its entry in CollectionSpec.Programs.
func Function(name string) (string, error) {
	p, err := lookup(name)
	if err != nil {
		return "", err
	}
	return p.fn, nil
}

func lookup(name string) (program, error) {
	p, ok := programs[name]
	if !ok {
		return program{}, fmt.Errorf("%w %q: bundled programs are %s", ErrUnknown, name, quote.List(Names()))
	}
	return p, nil
}

// Object returns the compiled ELF object of the named program, as
// committed: what `nkscript --dry-run` hands to bpftool.
func Object(name string) ([]byte, error) {
	if _, err := lookup(name); err != nil {
		return nil, err
	}
	return objects[name], nil
}

var objects = map[string][]byte{
	"pass":          _PassBytes,
	"drop_port":     _DropPortBytes,
	"drop_flow":     _DropFlowBytes,
	"policy_router": _PolicyRouterBytes,
	"lb":            _LbBytes,
	"mirror":        _MirrorBytes,
	"redirect_peer": _RedirectPeerBytes,
	"xdp_pass":      _XdpBytes,
	"xdp_drop_port": _XdpBytes,
}
