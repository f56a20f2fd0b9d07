package datapath

import (
	"encoding/binary"

	"github.com/cilium/ebpf/btf"

	"github.com/nkscript/nkscript/internal/btfcodec"
)

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

// memberOffset is the byte offset of the member called name of the struct
// t, if it is a struct with such a member of size bytes.
func memberOffset(t btf.Type, name string, size int) (int, bool) {
	st, ok := btf.UnderlyingType(t).(*btf.Struct)
	if !ok {
		return 0, false
	}
	for _, mb := range st.Members {
		if mb.Name != name || mb.Offset%8 != 0 {
			continue
		}
		if n, err := btf.Sizeof(mb.Type); err != nil || n != size {
			return 0, false
		}
		return int(mb.Offset.Bytes()), true
	}
	return 0, false
}
