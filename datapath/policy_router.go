package datapath

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	"github.com/nkscript/nkscript/bpf"
)

// Policy is one source-based route of a policy_router program: packets
// from Src leave by the device Ifindex, to NextHop, or to their
// destination when NextHop is not valid or unspecified. To AddPolicy,
// Dev, if set, is the device and gives Ifindex.
type Policy struct {
	Src     netip.Prefix
	Ifindex int
	NextHop netip.Addr
	Dev     *Link
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

// policyMap returns the router's policy map for the address family.
func (p *Program) policyMap(v6 bool) (*Map, error) {
	name := bpf.PolicyRoutesV4
	if v6 {
		name = bpf.PolicyRoutesV6
	}
	m, err := p.Map(name)
	if err != nil {
		return nil, &PolicyMapError{Map: name, Err: err}
	}
	return m, nil
}

// policyEntry encodes pol as a key and value of its family's policy map.
func policyEntry(pol Policy) (key, value []byte, err error) {
	var k, v any
	if a := pol.Src.Addr(); a.Is4() {
		val := bpf.RoutePolicyV4{Ifindex: uint32(pol.Ifindex)}
		if pol.NextHop.Is4() {
			val.NextHop = pol.NextHop.As4()
		}
		k, v = bpf.PolicyKeyV4{Prefixlen: uint32(pol.Src.Bits()), Addr: a.As4()}, val
	} else {
		val := bpf.RoutePolicyV6{Ifindex: uint32(pol.Ifindex)}
		if pol.NextHop.Is6() {
			val.NextHop = pol.NextHop.As16()
		}
		k, v = bpf.PolicyKeyV6{Prefixlen: uint32(pol.Src.Bits()), Addr: a.As16()}, val
	}
	if key, err = binary.Append(nil, binary.NativeEndian, k); err != nil {
		return nil, nil, err
	}
	value, err = binary.Append(nil, binary.NativeEndian, v)
	return key, value, err
}

// decodePolicy reads one entry of a policy map of the family v6 says.
func decodePolicy(key, value []byte, v6 bool) (Policy, error) {
	if v6 {
		var k bpf.PolicyKeyV6
		var v bpf.RoutePolicyV6
		if _, err := binary.Decode(key, binary.NativeEndian, &k); err != nil {
			return Policy{}, err
		}
		if _, err := binary.Decode(value, binary.NativeEndian, &v); err != nil {
			return Policy{}, err
		}
		return Policy{Src: netip.PrefixFrom(netip.AddrFrom16(k.Addr), int(k.Prefixlen)), Ifindex: int(v.Ifindex), NextHop: netip.AddrFrom16(v.NextHop)}, nil
	}
	var k bpf.PolicyKeyV4
	var v bpf.RoutePolicyV4
	if _, err := binary.Decode(key, binary.NativeEndian, &k); err != nil {
		return Policy{}, err
	}
	if _, err := binary.Decode(value, binary.NativeEndian, &v); err != nil {
		return Policy{}, err
	}
	return Policy{Src: netip.PrefixFrom(netip.AddrFrom4(k.Addr), int(k.Prefixlen)), Ifindex: int(v.Ifindex), NextHop: netip.AddrFrom4(v.NextHop)}, nil
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

// AddPolicy installs pol in the router's policy map of its family,
// replacing the policy for the same source prefix.
func (p *Program) AddPolicy(pol Policy) error {
	m, err := p.policyMap(pol.Src.Addr().Is6())
	if err != nil {
		return err
	}
	var refs []ifindexRef
	if pol.Dev != nil {
		// Both families' values start with the ifindex.
		pol.Ifindex, refs = pol.Dev.index, []ifindexRef{{0, pol.Dev}}
	}
	key, value, err := policyEntry(pol)
	if err != nil {
		return m.errorf("%v", err)
	}
	if err := m.checkLayout(key, value); err != nil {
		return err
	}
	return m.store.putBytes(m, key, value, refs)
}

// RemovePolicy removes the policy for src; it reports whether there was
// one.
func (p *Program) RemovePolicy(src netip.Prefix) (bool, error) {
	m, err := p.policyMap(src.Addr().Is6())
	if err != nil {
		return false, err
	}
	key, value, err := policyEntry(Policy{Src: src})
	if err != nil {
		return false, m.errorf("%v", err)
	}
	if err := m.checkLayout(key, value); err != nil {
		return false, err
	}
	return m.store.deleteBytes(m, key)
}

// Policies lists the router's policies, IPv4 then IPv6, each family sorted
// by source prefix. A router without an IPv6 policy map lists its IPv4
// policies; one without an IPv4 map is a *PolicyMapError. A dry run lists
// none.
func (p *Program) Policies() ([]Policy, error) {
	v4, err := p.policyMap(false)
	if err != nil {
		return nil, err
	}
	out, err := v4.policies(false)
	if err != nil {
		return nil, err
	}
	v6, err := p.policyMap(true)
	if err != nil {
		return out, nil
	}
	more, err := v6.policies(true)
	return append(out, more...), err
}

// policies reads the policies of one family's map.
func (m *Map) policies(v6 bool) ([]Policy, error) {
	raw, err := m.store.rawItems(m)
	if err != nil {
		return nil, err
	}
	var out []Policy
	for _, kv := range raw {
		pol, err := decodePolicy(kv[0], kv[1], v6)
		if err != nil {
			return nil, m.errorf("%v", err)
		}
		out = append(out, pol)
	}
	slices.SortFunc(out, func(a, b Policy) int {
		if c := a.Src.Addr().Compare(b.Src.Addr()); c != 0 {
			return c
		}
		return a.Src.Bits() - b.Src.Bits()
	})
	return out, nil
}
