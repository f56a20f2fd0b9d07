package datapath

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/nkscript/nkscript/internal/quote"
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
	spec  *ebpf.MapSpec
	order binary.ByteOrder
	store mapStore
}

// mapStore is where a Map's entries live: a kernel map, or the bpftool
// commands of a dry run. Keys and values arrive encoded.
type mapStore interface {
	put(m *Map, k any, kb []byte, v any) error
	get(m *Map, kb []byte) (any, bool, error)
	delete(m *Map, k any, kb []byte) (bool, error)
	items(m *Map) ([][2]any, error)
	// putBytes, deleteBytes and rawItems work on keys and values encoded
	// by the caller (a program's own layout, see policy_router.go).
	putBytes(m *Map, kb, vb []byte) error
	deleteBytes(m *Map, kb []byte) (bool, error)
	rawItems(m *Map) ([][2][]byte, error)
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
	spec := p.specs[name]
	if spec == nil || strings.HasPrefix(name, ".") {
		names := p.MapNames()
		if len(names) == 0 {
			return nil, fmt.Errorf("program %s has no maps", p.name)
		}
		return nil, fmt.Errorf("program %s has no map %q; its maps are %s", p.name, name, quote.List(names))
	}
	store, err := p.impl.mapStore(name)
	if err != nil {
		return nil, fmt.Errorf("map %s of program %s: %w", name, p.name, err)
	}
	return &Map{prog: p.name, name: name, spec: spec, order: binary.NativeEndian, store: store}, nil
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

// keyBytes encodes a key.
func (m *Map) keyBytes(k any) ([]byte, error) {
	b, err := encodeValue(m.spec.Key, int(m.spec.KeySize), k, "key", m.order)
	if err != nil {
		return nil, m.errorf("%v", err)
	}
	return b, nil
}

// valueBytes encodes one value.
func (m *Map) valueBytes(v any) ([]byte, error) {
	b, err := encodeValue(m.spec.Value, int(m.spec.ValueSize), v, "value", m.order)
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
	return m.store.put(m, k, kb, v)
}

// Get returns m[k] and whether it exists; a dry run knows no values.
func (m *Map) Get(k any) (any, bool, error) {
	kb, err := m.keyBytes(k)
	if err != nil {
		return nil, false, err
	}
	return m.store.get(m, kb)
}

// Delete removes m[k]; it reports whether the key was there. Array maps
// cannot delete: their entries are zeroed instead.
func (m *Map) Delete(k any) (bool, error) {
	kb, err := m.keyBytes(k)
	if err != nil {
		return false, err
	}
	return m.store.delete(m, k, kb)
}

// Items returns every key and value, sorted by the key's bytes (numeric
// order for little-endian integer keys is restored by sorting decoded
// integers). Entries of array maps that are all zero are left out.
func (m *Map) Items() ([][2]any, error) { return m.store.items(m) }

// Len counts the entries Items returns.
func (m *Map) Len() (int, error) {
	items, err := m.Items()
	return len(items), err
}
