package datapath

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/nkscript/nkscript/bpf"
)

// Policy is one route of a policy_router program: packets from the
// prefix Src, or to the prefix Dst (exactly one of them is valid), of the
// IP protocol Proto (0: any) and to the destination port DPort (0: any;
// a port needs a protocol), leave by the device Ifindex, to NextHop, or to
// their destination when NextHop is not valid or unspecified. To
// AddPolicy, Dev, if set, is the device and gives Ifindex.
//
// The router tries, in order: source policies with a protocol and port,
// then with a protocol, then source-only policies, then destination
// policies with a protocol and port, with a protocol, and without; the
// longest prefix wins within each step.
type Policy struct {
	Src     netip.Prefix
	Dst     netip.Prefix
	Proto   uint8
	DPort   uint16
	Ifindex int
	NextHop netip.Addr
	Dev     *Link
}

// Prefix is the policy's source or destination prefix.
func (pol Policy) Prefix() netip.Prefix {
	if pol.Dst.IsValid() {
		return pol.Dst
	}
	return pol.Src
}

// sourceOnly says whether the policy lives in policy_routes, the source
// tries, rather than policy_matches.
func (pol Policy) sourceOnly() bool { return !pol.Dst.IsValid() && pol.Proto == 0 && pol.DPort == 0 }

// Match describes what the policy matches, like "from 10.0.0.0/8 proto 6
// port 443" or "to 192.168.0.0/16".
func (pol Policy) Match() string {
	s := "from " + pol.Src.String()
	if pol.Dst.IsValid() {
		s = "to " + pol.Dst.String()
	}
	if pol.Proto != 0 {
		s += fmt.Sprintf(" proto %d", pol.Proto)
	}
	if pol.DPort != 0 {
		s += fmt.Sprintf(" port %d", pol.DPort)
	}
	return s
}

// check refuses a policy the router cannot hold.
func (pol Policy) check() error {
	if pol.Src.IsValid() == pol.Dst.IsValid() {
		return errors.New("a policy matches either a source or a destination prefix")
	}
	if pol.DPort != 0 && pol.Proto == 0 {
		return fmt.Errorf("policy %s: a destination port needs a protocol", pol.Match())
	}
	return nil
}

// PolicyMapError is returned when a program lacks the policy map of an
// address family: it is not a policy_router.
type PolicyMapError struct {
	// Map is the name of the missing map.
	Map string
	// Err says why the map could not be had.
	Err error
}

func (e *PolicyMapError) Error() string { return fmt.Sprintf("no %s map: %v", e.Map, e.Err) }

// Unwrap returns Err.
func (e *PolicyMapError) Unwrap() error { return e.Err }

// policyMapName is the name of the router's map for a policy of the
// family v6 says, in the source tries (policy_routes) or not
// (policy_matches).
func policyMapName(v6, sourceOnly bool) string {
	switch {
	case sourceOnly && v6:
		return bpf.PolicyRoutesV6
	case sourceOnly:
		return bpf.PolicyRoutesV4
	case v6:
		return bpf.PolicyMatchesV6
	}
	return bpf.PolicyMatchesV4
}

// policyMap returns the router's map that holds pol.
func (p *Program) policyMap(pol Policy) (*Map, error) {
	name := policyMapName(pol.Prefix().Addr().Is6(), pol.sourceOnly())
	m, err := p.Map(name)
	if err != nil {
		return nil, &PolicyMapError{Map: name, Err: err}
	}
	return m, nil
}

// netOrder returns the uint16 whose native encoding is port in network
// order, as a __be16 field holds it.
func netOrder(port uint16) uint16 {
	return binary.NativeEndian.Uint16(binary.BigEndian.AppendUint16(nil, port))
}

// policyKey is the key of pol in its map.
func policyKey(pol Policy) any {
	a, bits := pol.Prefix().Addr(), uint32(pol.Prefix().Bits())
	dir := uint8(bpf.MatchSrc)
	if pol.Dst.IsValid() {
		dir = bpf.MatchDst
	}
	switch {
	case pol.sourceOnly() && a.Is4():
		return bpf.PolicyKeyV4{Prefixlen: bits, Addr: a.As4()}
	case pol.sourceOnly():
		return bpf.PolicyKeyV6{Prefixlen: bits, Addr: a.As16()}
	case a.Is4():
		k := bpf.MatchKeyV4{Addr: a.As4()}
		k.Head.Prefixlen, k.Head.Dir, k.Head.Proto, k.Head.Dport = bpf.MatchHeadBits+bits, dir, pol.Proto, netOrder(pol.DPort)
		return k
	}
	k := bpf.MatchKeyV6{Addr: a.As16()}
	k.Head.Prefixlen, k.Head.Dir, k.Head.Proto, k.Head.Dport = bpf.MatchHeadBits+bits, dir, pol.Proto, netOrder(pol.DPort)
	return k
}

// policyEntry encodes pol as a key and value of its map.
func policyEntry(pol Policy) (key, value []byte, err error) {
	var v any
	if pol.Prefix().Addr().Is4() {
		val := bpf.RoutePolicyV4{Ifindex: uint32(pol.Ifindex)}
		if pol.NextHop.Is4() {
			val.NextHop = pol.NextHop.As4()
		}
		v = val
	} else {
		val := bpf.RoutePolicyV6{Ifindex: uint32(pol.Ifindex)}
		if pol.NextHop.Is6() {
			val.NextHop = pol.NextHop.As16()
		}
		v = val
	}
	if key, err = binary.Append(nil, binary.NativeEndian, policyKey(pol)); err != nil {
		return nil, nil, err
	}
	value, err = binary.Append(nil, binary.NativeEndian, v)
	return key, value, err
}

// decodePolicyKey reads the key of an entry of the map called name into
// pol. Both kinds of key start with the prefix length; a match key then
// has its direction, protocol and port (network order) before the
// address.
func decodePolicyKey(name string, key []byte, pol *Policy) error {
	addrAt := 4
	if name == bpf.PolicyMatchesV4 || name == bpf.PolicyMatchesV6 {
		addrAt = 8
	}
	if len(key) < addrAt {
		return fmt.Errorf("a key of %d bytes", len(key))
	}
	a, ok := netip.AddrFromSlice(key[addrAt:])
	if !ok {
		return fmt.Errorf("a key of %d bytes", len(key))
	}
	bits := int(binary.NativeEndian.Uint32(key))
	if addrAt == 4 {
		pol.Src = netip.PrefixFrom(a, bits)
		return nil
	}
	p := netip.PrefixFrom(a, bits-bpf.MatchHeadBits)
	if key[4] == bpf.MatchDst {
		pol.Dst = p
	} else {
		pol.Src = p
	}
	pol.Proto, pol.DPort = key[5], binary.BigEndian.Uint16(key[6:8])
	return nil
}

// decodePolicy reads one entry of the policy map called name.
func decodePolicy(name string, key, value []byte) (Policy, error) {
	var pol Policy
	if err := decodePolicyKey(name, key, &pol); err != nil {
		return Policy{}, err
	}
	if len(value) < 4 {
		return Policy{}, fmt.Errorf("a value of %d bytes", len(value))
	}
	nh, ok := netip.AddrFromSlice(value[4:])
	if !ok {
		return Policy{}, fmt.Errorf("a value of %d bytes", len(value))
	}
	pol.Ifindex, pol.NextHop = int(binary.NativeEndian.Uint32(value)), nh
	return pol, nil
}

// checkLayout refuses a map whose key or value is not the size of
// policy_router's, so that a program with maps of the same names but
// another layout gets no entry it would misread.
func (m *Map) checkLayout(key, value []byte) error {
	if int(m.spec.KeySize) != len(key) || int(m.spec.ValueSize) != len(value) {
		return m.errorf("its keys and values are %d and %d bytes, not policy_router's %d and %d", m.spec.KeySize, m.spec.ValueSize, len(key), len(value))
	}
	return nil
}

// policyBytes finds pol's map and encodes pol for it.
func (p *Program) policyBytes(pol Policy) (m *Map, key, value []byte, err error) {
	if err := pol.check(); err != nil {
		return nil, nil, nil, fmt.Errorf("program %s: %w", p.name, err)
	}
	if m, err = p.policyMap(pol); err != nil {
		return nil, nil, nil, err
	}
	if key, value, err = policyEntry(pol); err != nil {
		return nil, nil, nil, m.errorf("%v", err)
	}
	return m, key, value, m.checkLayout(key, value)
}

// AddPolicy installs pol in the router, replacing the policy that matches
// the same packets.
func (p *Program) AddPolicy(pol Policy) error {
	var refs []ifindexRef
	if pol.Dev != nil {
		// Both families' values start with the ifindex.
		pol.Ifindex, refs = pol.Dev.index, []ifindexRef{{0, pol.Dev}}
	}
	m, key, value, err := p.policyBytes(pol)
	if err != nil {
		return err
	}
	return m.store.putBytes(m, key, value, refs)
}

// RemovePolicy removes the policy that matches what pol matches (its
// Src or Dst, Proto and DPort); it reports whether there was one.
func (p *Program) RemovePolicy(pol Policy) (bool, error) {
	m, key, _, err := p.policyBytes(Policy{Src: pol.Src, Dst: pol.Dst, Proto: pol.Proto, DPort: pol.DPort})
	if err != nil {
		return false, err
	}
	return m.store.deleteBytes(m, key)
}

// Policies lists the router's policies, IPv4 then IPv6; within a family
// source policies come before destination policies, each sorted by
// prefix, protocol and port. A router without the IPv4 source map is a
// *PolicyMapError; it lists what its other maps hold. A dry run lists
// none.
func (p *Program) Policies() ([]Policy, error) {
	if _, err := p.policyMap(Policy{Src: netip.PrefixFrom(netip.IPv4Unspecified(), 0)}); err != nil {
		return nil, err
	}
	var out []Policy
	for _, name := range []string{bpf.PolicyRoutesV4, bpf.PolicyMatchesV4, bpf.PolicyRoutesV6, bpf.PolicyMatchesV6} {
		m, err := p.Map(name)
		if err != nil {
			continue
		}
		more, err := m.policies()
		if err != nil {
			return nil, err
		}
		out = append(out, more...)
	}
	slices.SortStableFunc(out, comparePolicies)
	return out, nil
}

// comparePolicies orders policies by family, source before destination,
// then prefix, protocol and port.
func comparePolicies(a, b Policy) int {
	pa, pb := a.Prefix(), b.Prefix()
	if a.Dst.IsValid() != b.Dst.IsValid() && pa.Addr().Is4() == pb.Addr().Is4() {
		if a.Dst.IsValid() {
			return 1
		}
		return -1
	}
	if c := pa.Addr().Compare(pb.Addr()); c != 0 {
		return c
	}
	if c := pa.Bits() - pb.Bits(); c != 0 {
		return c
	}
	if c := int(a.Proto) - int(b.Proto); c != 0 {
		return c
	}
	return int(a.DPort) - int(b.DPort)
}

// policies reads the policies of one policy map.
func (m *Map) policies() ([]Policy, error) {
	raw, err := m.store.rawItems(m)
	if err != nil {
		return nil, err
	}
	var out []Policy
	for _, kv := range raw {
		pol, err := decodePolicy(m.name, kv[0], kv[1])
		if err != nil {
			return nil, m.errorf("%v", err)
		}
		out = append(out, pol)
	}
	return out, nil
}

// RouterNetns returns the namespaces of the devices p is attached to
// (attachments still in place), in the order of the attachments, each
// once.
func (l *Lab) RouterNetns(p *Program) []*Netns {
	var out []*Netns
	for _, a := range l.Attachments() {
		if a.progID != p.id || a.Detached() {
			continue
		}
		if ns := a.Device().Netns(); !slices.Contains(out, ns) {
			out = append(out, ns)
		}
	}
	return out
}
