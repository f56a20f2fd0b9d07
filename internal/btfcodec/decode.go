package btfcodec

import (
	"encoding/binary"
	"net/netip"

	"github.com/cilium/ebpf/btf"
)

// Decode converts b, a value of type t, to a Go value (see the package
// comment); name is the field or value name that says whether a byte
// array holds an address. t nil (no BTF) reads an integer of len(b)
// bytes.
func Decode(t btf.Type, b []byte, name string, order binary.ByteOrder) any {
	if t == nil {
		return getInt(b, false, order)
	}
	return decode(t, b, name, order)
}

func decode(t btf.Type, b []byte, name string, order binary.ByteOrder) any {
	switch x := btf.UnderlyingType(t).(type) {
	case *btf.Int:
		return decodeInt(x, typedefName(t), b, name, order)
	case *btf.Enum:
		return getInt(b[:x.Size], x.Signed, order)
	case *btf.Array:
		return decodeArray(x, b, name, order)
	case *btf.Struct:
		if n, ok := lpmKey(x); ok {
			bits := order.Uint32(b[x.Members[0].Offset.Bytes():])
			a, _ := netip.AddrFromSlice(b[x.Members[1].Offset.Bytes() : int(x.Members[1].Offset.Bytes())+n])
			if p, err := a.Prefix(int(min(bits, uint32(a.BitLen())))); err == nil {
				return p.String()
			}
		}
		return decodeStruct(x, b, order)
	}
	return getInt(b, false, order)
}

// decodeInt reads a bool, an integer, or for a __be32 whose name says it
// holds an address, an IPv4 address string.
func decodeInt(x *btf.Int, tdName string, b []byte, name string, order binary.ByteOrder) any {
	switch {
	case x.Encoding == btf.Bool:
		return b[0] != 0
	case tdName == "__be32" && addrLike(name+" "+tdName):
		return netip.AddrFrom4([4]byte(b[:4])).String()
	case tdName == "__be32" || tdName == "__be16":
		return getInt(b[:x.Size], false, binary.BigEndian)
	}
	return getInt(b[:x.Size], x.Encoding == btf.Signed, order)
}

// decodeArray reads an address string from a 4- or 16-byte array whose
// name says it holds one, a list from other arrays.
func decodeArray(x *btf.Array, b []byte, name string, order binary.ByteOrder) any {
	if n, ok := addrArray(x); ok && addrLike(name) {
		a, _ := netip.AddrFromSlice(b[:n])
		return a.String()
	}
	esize, err := btf.Sizeof(x.Type)
	if err != nil || esize == 0 {
		return nil
	}
	out := make([]any, x.Nelems)
	for i := range out {
		out[i] = decode(x.Type, b[i*esize:(i+1)*esize], name, order)
	}
	return out
}

// decodeStruct reads a struct's fields in declaration order, leaving out
// bitfields and fields of unknown size.
func decodeStruct(x *btf.Struct, b []byte, order binary.ByteOrder) Fields {
	var out Fields
	for _, mb := range x.Members {
		msize, err := btf.Sizeof(mb.Type)
		if err != nil || mb.BitfieldSize != 0 {
			continue
		}
		off := int(mb.Offset.Bytes())
		out = append(out, Field{mb.Name, decode(mb.Type, b[off:off+msize], mb.Name, order)})
	}
	return out
}
