package datapath

import (
	"bytes"
	"errors"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/cilium/ebpf"
)

// kernelMap is a Map's store in the kernel.
type kernelMap struct{ m *ebpf.Map }

func (s kernelMap) put(m *Map, k any, kb []byte, v any, _ []ifindexRef) error {
	if m.perCPU() {
		return s.putPerCPU(m, kb, v)
	}
	vb, err := m.valueBytes(v)
	if err != nil {
		return err
	}
	if err := s.m.Put(kb, vb); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) || strings.Contains(err.Error(), "argument list too long") {
			return m.errorf("key %v is out of range (the map holds %d entries)", k, m.spec.MaxEntries)
		}
		return m.errorf("put: %v", err)
	}
	return nil
}

// putPerCPU writes v to every CPU unless it is a []any with one value per
// possible CPU.
func (s kernelMap) putPerCPU(m *Map, kb []byte, v any) error {
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
		if enc[i], err = m.valueBytes(x); err != nil {
			return err
		}
	}
	if err := s.m.Put(kb, enc); err != nil {
		return m.errorf("put: %v", err)
	}
	return nil
}

func (s kernelMap) get(m *Map, kb []byte) (any, bool, error) {
	v, err := s.lookup(m, kb)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, m.errorf("lookup: %v", err)
	}
	return v, true, nil
}

func (s kernelMap) lookup(m *Map, kb []byte) (any, error) {
	if m.perCPU() {
		var vals [][]byte
		if err := s.m.Lookup(kb, &vals); err != nil {
			return nil, err
		}
		out := make([]any, len(vals))
		for i, vb := range vals {
			out[i] = decodeValue(m.spec.Value, vb, "", m.order)
		}
		return out, nil
	}
	vb := make([]byte, m.spec.ValueSize)
	if err := s.m.Lookup(kb, &vb); err != nil {
		return nil, err
	}
	return decodeValue(m.spec.Value, vb, "", m.order), nil
}

func (s kernelMap) delete(m *Map, k any, kb []byte) (bool, error) {
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
		if err := s.m.Put(kb, zero); err != nil {
			return false, m.errorf("key %v is out of range (the map holds %d entries)", k, m.spec.MaxEntries)
		}
		return true, nil
	}
	return s.deleteBytes(m, kb)
}

func (s kernelMap) putBytes(m *Map, kb, vb []byte, _ []ifindexRef) error {
	if err := s.m.Put(kb, vb); err != nil {
		return m.errorf("put: %v", err)
	}
	return nil
}

func (s kernelMap) deleteBytes(m *Map, kb []byte) (bool, error) {
	err := s.m.Delete(kb)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return false, nil
	}
	if err != nil {
		return false, m.errorf("delete: %v", err)
	}
	return true, nil
}

func (s kernelMap) rawItems(m *Map) ([][2][]byte, error) {
	var out [][2][]byte
	iter := s.m.Iterate()
	var kb, vb []byte
	for iter.Next(&kb, &vb) {
		out = append(out, [2][]byte{bytes.Clone(kb), bytes.Clone(vb)})
	}
	if err := iter.Err(); err != nil {
		return nil, m.errorf("iterate: %v", err)
	}
	return out, nil
}

// mapItem is one entry read back: the key's bytes, and key and value
// decoded.
type mapItem struct {
	kb []byte
	k  any
	v  any
}

func (s kernelMap) items(m *Map) ([][2]any, error) {
	var items []mapItem
	iter := s.m.Iterate()
	kb := make([]byte, m.spec.KeySize)
	var raw any = new([]byte)
	if m.perCPU() {
		raw = new([][]byte)
	}
	isArray := m.spec.Type == ebpf.Array || m.spec.Type == ebpf.PerCPUArray
	for iter.Next(&kb, raw) {
		v, zero := decodeRaw(m, raw)
		if isArray && zero {
			continue
		}
		k := bytes.Clone(kb)
		items = append(items, mapItem{k, decodeValue(m.spec.Key, k, "key", m.order), v})
	}
	if err := iter.Err(); err != nil {
		return nil, m.errorf("iterate: %v", err)
	}
	sortItems(items)
	out := make([][2]any, len(items))
	for i, it := range items {
		out[i] = [2]any{it.k, it.v}
	}
	return out, nil
}

// decodeRaw decodes a value as Iterate read it, and reports whether it is
// all zero.
func decodeRaw(m *Map, raw any) (any, bool) {
	switch r := raw.(type) {
	case *[]byte:
		return decodeValue(m.spec.Value, *r, "", m.order), isZero(*r)
	case *[][]byte:
		zero := true
		vals := make([]any, len(*r))
		for i, b := range *r {
			zero = zero && isZero(b)
			vals[i] = decodeValue(m.spec.Value, b, "", m.order)
		}
		return vals, zero
	}
	return nil, true
}

// sortItems orders items by their decoded keys where those compare, else
// by the key's bytes.
func sortItems(items []mapItem) {
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
