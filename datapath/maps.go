package datapath

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/nkscript/nkscript/internal/btfcodec"
)

// Map is one of a loaded program's BPF maps, read and written with plain
// Go values converted through the map's BTF:
//
//   - integers (int64, uint64, int) for integer and enum types, range-checked;
//     bool for _Bool;
//   - IP addresses (netip.Addr, or a string) for 4- and 16-byte arrays of
//     bytes and for __be32;
//   - prefixes (netip.Prefix, or "10.0.0.0/24") for LPM trie keys, a struct
//     of a 32-bit prefixlen followed by a 4- or 16-byte array;
//   - map[string]any for structs (missing fields are zero), []any for other
//     arrays.
//
// Values read back come out the same way: a byte array of 4 or 16 whose
// field or typedef name says it holds an address (addr, ip, hop, nh, gw,
// src, dst, vip, saddr, daddr, __be32) as an IP string, LPM keys as prefix
// strings, structs as Fields (in declaration order), per-CPU values as a []any with one
// value per possible CPU. Maps without BTF take and give integers of the
// key or value size.
type Map struct {
	prog  string
	name  string
	m     *ebpf.Map
	spec  *ebpf.MapSpec
	order binary.ByteOrder

	// In a dry run: the map's bpftool pin, and the lab to write to.
	lab *Lab
	pin string
}

// MapNames lists the program's maps, sorted; internal maps (.rodata,
// .bss, ...) are left out.
func (p *Program) MapNames() []string {
	var names []string
	for name := range p.specs {
		if !strings.HasPrefix(name, ".") {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// Map returns the program's map called name.
func (p *Program) Map(name string) (*Map, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dry {
		spec := p.specs[name]
		if spec == nil || strings.HasPrefix(name, ".") {
			return nil, fmt.Errorf("program %s has no map %q; its maps are %s", p.name, name, quoteNames(p.MapNames()))
		}
		return &Map{prog: p.name, name: name, spec: spec, order: binary.NativeEndian, lab: p.lab, pin: dirOf(p.pin) + "/maps/" + name}, nil
	}
	if p.coll == nil {
		return nil, fmt.Errorf("map %s of program %s: program is closed", name, p.name)
	}
	m, spec := p.coll.Maps[name], p.specs[name]
	if m == nil || spec == nil || strings.HasPrefix(name, ".") {
		names := p.MapNames()
		if len(names) == 0 {
			return nil, fmt.Errorf("program %s has no maps", p.name)
		}
		return nil, fmt.Errorf("program %s has no map %q; its maps are %s", p.name, name, quoteNames(names))
	}
	return &Map{prog: p.name, name: name, m: m, spec: spec, order: binary.NativeEndian}, nil
}

func dirOf(pin string) string {
	if i := strings.LastIndexByte(pin, '/'); i >= 0 {
		return pin[:i]
	}
	return pin
}

func quoteNames(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}

// Name is the map's name.
func (m *Map) Name() string { return m.name }

// Type is the map's type, e.g. "Hash", "LPMTrie".
func (m *Map) Type() string { return m.spec.Type.String() }

// MaxEntries is the map's capacity.
func (m *Map) MaxEntries() int { return int(m.spec.MaxEntries) }

func (m *Map) perCPU() bool {
	switch m.spec.Type {
	case ebpf.PerCPUArray, ebpf.PerCPUHash, ebpf.LRUCPUHash:
		return true
	}
	return false
}

func (m *Map) errorf(format string, args ...any) error {
	return fmt.Errorf("map %s of program %s: %s", m.name, m.prog, fmt.Sprintf(format, args...))
}

// KeyBytes encodes a key.
func (m *Map) keyBytes(k any) ([]byte, error) {
	b, err := encodeValue(m.spec.Key, int(m.spec.KeySize), k, "key", m.order)
	if err != nil {
		return nil, m.errorf("%v", err)
	}
	return b, nil
}

// Put sets m[k] = v. For a per-CPU map, v is written to every CPU unless
// it is a []any with one value per possible CPU.
func (m *Map) Put(k, v any) error {
	kb, err := m.keyBytes(k)
	if err != nil {
		return err
	}
	size := int(m.spec.ValueSize)
	if m.perCPU() && m.lab == nil {
		n, err := ebpf.PossibleCPU()
		if err != nil {
			return m.errorf("%v", err)
		}
		vals, isList := v.([]any)
		if !isList || len(vals) != n {
			vals = slices.Repeat([]any{v}, n)
		}
		enc := make([][]byte, n)
		for i, x := range vals {
			if enc[i], err = encodeValue(m.spec.Value, size, x, "value", m.order); err != nil {
				return m.errorf("%v", err)
			}
		}
		if err := m.m.Put(kb, enc); err != nil {
			return m.errorf("put: %v", err)
		}
		return nil
	}
	vb, err := encodeValue(m.spec.Value, size, v, "value", m.order)
	if err != nil {
		return m.errorf("%v", err)
	}
	if m.lab != nil {
		m.dryUpdate(kb, vb)
		return nil
	}
	if err := m.m.Put(kb, vb); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) || strings.Contains(err.Error(), "argument list too long") {
			return m.errorf("key %v is out of range (the map holds %d entries)", k, m.spec.MaxEntries)
		}
		return m.errorf("put: %v", err)
	}
	return nil
}

// Get returns m[k] and whether it exists.
func (m *Map) Get(k any) (any, bool, error) {
	kb, err := m.keyBytes(k)
	if err != nil {
		return nil, false, err
	}
	if m.lab != nil {
		return nil, false, nil // a dry run knows no values
	}
	v, err := m.lookup(kb)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, m.errorf("lookup: %v", err)
	}
	return v, true, nil
}

func (m *Map) lookup(kb []byte) (any, error) {
	if m.perCPU() {
		var vals [][]byte
		if err := m.m.Lookup(kb, &vals); err != nil {
			return nil, err
		}
		out := make([]any, len(vals))
		for i, vb := range vals {
			out[i] = decodeValue(m.spec.Value, vb, "", m.order)
		}
		return out, nil
	}
	vb := make([]byte, m.spec.ValueSize)
	if err := m.m.Lookup(kb, &vb); err != nil {
		return nil, err
	}
	return decodeValue(m.spec.Value, vb, "", m.order), nil
}

// Delete removes m[k]; it reports whether the key was there. Array maps
// cannot delete: their entries are zeroed instead.
func (m *Map) Delete(k any) (bool, error) {
	kb, err := m.keyBytes(k)
	if err != nil {
		return false, err
	}
	if m.lab != nil {
		m.dryDelete(kb)
		return true, nil
	}
	switch m.spec.Type {
	case ebpf.Array, ebpf.PerCPUArray:
		var zero any = make([]byte, m.spec.ValueSize)
		if m.perCPU() {
			n, err := ebpf.PossibleCPU()
			if err != nil {
				return false, m.errorf("%v", err)
			}
			zs := make([][]byte, n)
			for i := range zs {
				zs[i] = make([]byte, m.spec.ValueSize)
			}
			zero = zs
		}
		if err := m.m.Put(kb, zero); err != nil {
			return false, m.errorf("key %v is out of range (the map holds %d entries)", k, m.spec.MaxEntries)
		}
		return true, nil
	}
	err = m.m.Delete(kb)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return false, nil
	}
	if err != nil {
		return false, m.errorf("delete: %v", err)
	}
	return true, nil
}

// Items returns every key and value, sorted by the key's bytes (numeric
// order for little-endian integer keys is restored by sorting decoded
// integers). Entries of array maps that are all zero are left out.
func (m *Map) Items() ([][2]any, error) {
	type kv struct {
		kb []byte
		k  any
		v  any
	}
	var items []kv
	if m.lab != nil {
		return nil, nil
	}
	iter := m.m.Iterate()
	kb := make([]byte, m.spec.KeySize)
	var raw any = new([]byte)
	if m.perCPU() {
		raw = new([][]byte)
	}
	isArray := m.spec.Type == ebpf.Array || m.spec.Type == ebpf.PerCPUArray
	for iter.Next(&kb, raw) {
		var v any
		zero := true
		switch r := raw.(type) {
		case *[]byte:
			zero = isZero(*r)
			v = decodeValue(m.spec.Value, *r, "", m.order)
		case *[][]byte:
			vals := make([]any, len(*r))
			for i, b := range *r {
				zero = zero && isZero(b)
				vals[i] = decodeValue(m.spec.Value, b, "", m.order)
			}
			v = vals
		}
		if isArray && zero {
			continue
		}
		k := bytes.Clone(kb)
		items = append(items, kv{k, decodeValue(m.spec.Key, k, "key", m.order), v})
	}
	if err := iter.Err(); err != nil {
		return nil, m.errorf("iterate: %v", err)
	}
	sort.SliceStable(items, func(i, j int) bool {
		a, b := items[i].k, items[j].k
		switch x := a.(type) {
		case int64:
			if y, ok := b.(int64); ok {
				return x < y
			}
		case uint64:
			if y, ok := b.(uint64); ok {
				return x < y
			}
		case string:
			if y, ok := b.(string); ok {
				return lessAddrString(x, y)
			}
		}
		return bytes.Compare(items[i].kb, items[j].kb) < 0
	})
	out := make([][2]any, len(items))
	for i, it := range items {
		out[i] = [2]any{it.k, it.v}
	}
	return out, nil
}

// lessAddrString orders addresses and prefixes numerically, other strings
// as strings.
func lessAddrString(a, b string) bool {
	pa, ea := netip.ParsePrefix(a)
	pb, eb := netip.ParsePrefix(b)
	if ea == nil && eb == nil {
		if c := pa.Addr().Compare(pb.Addr()); c != 0 {
			return c < 0
		}
		return pa.Bits() < pb.Bits()
	}
	aa, ea := netip.ParseAddr(a)
	ab, eb := netip.ParseAddr(b)
	if ea == nil && eb == nil {
		return aa.Less(ab)
	}
	return a < b
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// Len counts the entries Items returns.
func (m *Map) Len() (int, error) {
	items, err := m.Items()
	return len(items), err
}

// Describe says what a key or value of the map looks like, for messages:
// "struct backend {ifindex: __u32, addr: __u8[4]}".
func (m *Map) Describe() (key, value string) {
	return describeType(m.spec.Key, int(m.spec.KeySize)), describeType(m.spec.Value, int(m.spec.ValueSize))
}

// describeType names a key or value type for messages.
func describeType(t btf.Type, size int) string { return btfcodec.Describe(t, size) }

// Field is one field of a struct value read from a map.
type Field = btfcodec.Field

// Fields is a struct value read from a map, its fields in declaration
// order.
type Fields = btfcodec.Fields

// encodeValue converts a key or value to its bytes through its BTF type.
func encodeValue(t btf.Type, size int, v any, what string, order binary.ByteOrder) ([]byte, error) {
	return btfcodec.Encode(t, size, v, what, order)
}

// decodeValue converts a key's or value's bytes to a Go value.
func decodeValue(t btf.Type, b []byte, name string, order binary.ByteOrder) any {
	return btfcodec.Decode(t, b, name, order)
}
