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
	// put writes v, whose encoding holds the ifindexes of devices at refs.
	put(m *Map, k any, kb []byte, v any, refs []ifindexRef) error
	get(m *Map, kb []byte) (any, bool, error)
	delete(m *Map, k any, kb []byte) (bool, error)
	items(m *Map) ([][2]any, error)
	// putBytes, deleteBytes and rawItems work on keys and values encoded
	// by the caller (a program's own layout, see policy_router.go).
	putBytes(m *Map, kb, vb []byte, refs []ifindexRef) error
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

// keyBytes encodes a key; a device stands for its ifindex.
func (m *Map) keyBytes(k any) ([]byte, error) {
	b, err := encodeValue(m.spec.Key, int(m.spec.KeySize), withoutLinks(k), "key", m.order)
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
//
// A *Link in v, as the whole value or as a field of a struct, stands for
// the device's ifindex; a dry run looks it up when its commands run.
func (m *Map) Put(k, v any) error {
	kb, err := m.keyBytes(k)
	if err != nil {
		return err
	}
	v, refs := m.linkRefs(v)
	return m.store.put(m, k, kb, v, refs)
}

// ifindexRef says that the 4 bytes at off of an encoded value hold the
// ifindex of a device of the lab.
type ifindexRef struct {
	off  int
	link *Link
}

// linkRefs replaces the devices in v by their ifindexes and says where in
// the encoded value each one goes, for the whole value and for the fields
// of a struct.
func (m *Map) linkRefs(v any) (any, []ifindexRef) {
	switch x := v.(type) {
	case *Link:
		return int64(x.index), []ifindexRef{{0, x}}
	case map[string]any:
		var refs []ifindexRef
		out := make(map[string]any, len(x))
		for name, f := range x {
			out[name] = withoutLinks(f)
			if k, ok := f.(*Link); ok {
				if off, ok := memberOffset(m.spec.Value, name, 4); ok {
					refs = append(refs, ifindexRef{off, k})
				}
			}
		}
		return out, refs
	}
	return withoutLinks(v), nil
}

// withoutLinks replaces every *Link in v by its ifindex.
func withoutLinks(v any) any {
	switch x := v.(type) {
	case *Link:
		return int64(x.index)
	case map[string]any:
		out := make(map[string]any, len(x))
		for name, f := range x {
			out[name] = withoutLinks(f)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = withoutLinks(e)
		}
		return out
	}
	return v
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
