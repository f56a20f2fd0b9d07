package btfcodec

import (
	"encoding/binary"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/cilium/ebpf/btf"
)

// Encode converts v to the size bytes of a value of type t, in order (the
// byte order of the map or object); fields typed __be16 or __be32 are in
// network order. t nil (no BTF) takes an integer of size bytes. what names
// the value in errors ("key", "value"); an error says which part of v does
// not fit and why, e.g. "value.ifindex: -1 does not fit a 4-byte unsigned
// integer (0..4294967295)".
func Encode(t btf.Type, size int, v any, what string, order binary.ByteOrder) ([]byte, error) {
	b := make([]byte, size)
	if t == nil {
		if err := putInt(b, intType{size: size}, v, what, order); err != nil {
			return nil, err
		}
		return b, nil
	}
	if err := encode(t, b, v, what, order); err != nil {
		return nil, err
	}
	return b, nil
}

func encode(t btf.Type, b []byte, v any, what string, order binary.ByteOrder) error {
	switch x := btf.UnderlyingType(t).(type) {
	case *btf.Int:
		return encodeInt(x, typedefName(t), b, v, what, order)
	case *btf.Enum:
		return putInt(b, intType{size: int(x.Size), signed: x.Signed}, v, what, order)
	case *btf.Array:
		return encodeArray(t, x, b, v, what, order)
	case *btf.Struct:
		if n, ok := lpmKey(x); ok {
			p, err := toPrefix(v, n, what)
			if err != nil {
				return err
			}
			if p.IsValid() {
				return encodeLPM(x, n, b, p, what, order)
			}
		}
		return encodeStruct(t, x, b, v, what, order)
	}
	return fmt.Errorf("%s: type %s is not supported", what, typeString(t, 0))
}

// encodeInt encodes an integer; __be16 and __be32 (tdName) are in network
// order, and __be32 also takes an IPv4 address.
func encodeInt(x *btf.Int, tdName string, b []byte, v any, what string, order binary.ByteOrder) error {
	it, _ := intOf(x)
	if tdName != "__be32" && tdName != "__be16" {
		return putInt(b, it, v, what, order)
	}
	if a, isAddr, err := toAddr(v); isAddr && tdName == "__be32" {
		if err != nil {
			return fmt.Errorf("%s: %v", what, err)
		}
		if a = a.Unmap(); !a.Is4() {
			return fmt.Errorf("%s: %s is not an IPv4 address", what, a)
		}
		copy(b, a.AsSlice())
		return nil
	}
	return putInt(b, intType{size: it.size}, v, what, binary.BigEndian)
}

// putInt range-checks v against t and writes it into b.
func putInt(b []byte, t intType, v any, what string, order binary.ByteOrder) error {
	n, ok := toNumber(v)
	if !ok {
		if a, isAddr, err := toAddr(v); isAddr && err == nil && a.Unmap().Is4() && t.size == 4 {
			copy(b, a.Unmap().AsSlice())
			return nil
		}
		return fmt.Errorf("%s: a %d-byte integer takes an int, not %s", what, t.size, describeGo(v))
	}
	fits, sizeOK := t.check(n)
	if !sizeOK {
		return fmt.Errorf("%s: %d-byte integers are not supported", what, t.size)
	}
	if !fits {
		return fmt.Errorf("%s: %v does not fit a %d-byte %s integer (%s)", what, v, t.size, t.signedness(), t.rangeString())
	}
	if !t.put(b, n, order) {
		return fmt.Errorf("%s: %d-byte integers are not supported", what, t.size)
	}
	return nil
}

// encodeArray encodes an address into a 4- or 16-byte array, or a list
// into any array.
func encodeArray(t btf.Type, x *btf.Array, b []byte, v any, what string, order binary.ByteOrder) error {
	if n, ok := addrArray(x); ok {
		if a, isAddr, err := toAddr(v); isAddr {
			if err != nil {
				return fmt.Errorf("%s: %v", what, err)
			}
			if n == 4 {
				a = a.Unmap()
			}
			if (n == 4) != a.Is4() {
				return fmt.Errorf("%s: %s does not fit %s, which holds an IPv%d address", what, a, typeString(t, 0), ipVersion(n))
			}
			copy(b, a.AsSlice())
			return nil
		}
	}
	list, ok := v.([]any)
	if !ok {
		return fmt.Errorf("%s: %s takes a list, not %s", what, typeString(t, 0), describeGo(v))
	}
	if len(list) > int(x.Nelems) {
		return fmt.Errorf("%s: %d elements do not fit %s", what, len(list), typeString(t, 0))
	}
	esize, err := btf.Sizeof(x.Type)
	if err != nil {
		return fmt.Errorf("%s: %v", what, err)
	}
	for i, e := range list {
		if err := encode(x.Type, b[i*esize:(i+1)*esize], e, fmt.Sprintf("%s[%d]", what, i), order); err != nil {
			return err
		}
	}
	return nil
}

// toPrefix converts v to a prefix for an LPM key whose address is n
// bytes: a netip.Prefix, a netip.Addr or a string holding either. A value
// of another type gives the zero Prefix and no error.
func toPrefix(v any, n int, what string) (netip.Prefix, error) {
	switch y := v.(type) {
	case netip.Prefix:
		return y, nil
	case netip.Addr:
		return hostPrefix(y, n), nil
	case string:
		if p, err := netip.ParsePrefix(y); err == nil {
			return p, nil
		}
		a, err := netip.ParseAddr(y)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%s: %q is not a prefix like \"10.0.0.0/24\" or an address", what, y)
		}
		return hostPrefix(a, n), nil
	}
	return netip.Prefix{}, nil
}

// hostPrefix is the prefix of a alone, for a key of n bytes: an
// IPv4-mapped address is an IPv4 address in a 4-byte key, and stays
// mapped in a 16-byte one.
func hostPrefix(a netip.Addr, n int) netip.Prefix {
	if n == 4 {
		a = a.Unmap()
	}
	return netip.PrefixFrom(a, a.BitLen())
}

// encodeLPM writes p, masked, as an LPM key whose address is n bytes.
func encodeLPM(x *btf.Struct, n int, b []byte, p netip.Prefix, what string, order binary.ByteOrder) error {
	a := p.Addr()
	if n == 4 {
		a = a.Unmap()
	}
	if (n == 4) != a.Is4() {
		return fmt.Errorf("%s: %s is not an IPv%d prefix", what, p, ipVersion(n))
	}
	p = netip.PrefixFrom(a, p.Bits()).Masked()
	order.PutUint32(b[x.Members[0].Offset.Bytes():], uint32(p.Bits()))
	copy(b[x.Members[1].Offset.Bytes():], p.Addr().AsSlice())
	return nil
}

// encodeStruct encodes a dict of fields; fields left out stay zero.
func encodeStruct(t btf.Type, x *btf.Struct, b []byte, v any, what string, order binary.ByteOrder) error {
	fields, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("%s: %s takes a dict of its fields, not %s", what, typeString(t, 0), describeGo(v))
	}
	byName := make(map[string]btf.Member, len(x.Members))
	for _, mb := range x.Members {
		byName[mb.Name] = mb
	}
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		mb, ok := byName[k]
		if !ok {
			return fmt.Errorf("%s: %s has no field %q; its fields are %s", what, typeString(t, 0), k, memberNames(x))
		}
		if mb.BitfieldSize != 0 {
			return fmt.Errorf("%s: field %q is a bitfield, which nkscript cannot set", what, k)
		}
		msize, err := btf.Sizeof(mb.Type)
		if err != nil {
			return fmt.Errorf("%s.%s: %v", what, k, err)
		}
		off := int(mb.Offset.Bytes())
		if err := encode(mb.Type, b[off:off+msize], fields[k], what+"."+k, order); err != nil {
			return err
		}
	}
	return nil
}

// memberNames lists a struct's members, quoted: "ifindex", "addr".
func memberNames(x *btf.Struct) string {
	q := make([]string, len(x.Members))
	for i, mb := range x.Members {
		q[i] = strconv.Quote(mb.Name)
	}
	return strings.Join(q, ", ")
}

// toAddr converts v to an IP address, if it is one: isAddr is false for
// values of other types, err set for a string that is not an address. An
// IPv4-mapped address stays mapped: it is an IPv4 address only where 4
// bytes are to be written.
func toAddr(v any) (a netip.Addr, isAddr bool, err error) {
	switch x := v.(type) {
	case netip.Addr:
		return x, true, nil
	case string:
		a, err := netip.ParseAddr(x)
		if err != nil {
			return netip.Addr{}, true, fmt.Errorf("%q is not an IP address", x)
		}
		return a, true, nil
	}
	return netip.Addr{}, false, nil
}

// describeGo says what v is, for messages: "the string \"x\"".
func describeGo(v any) string {
	switch v.(type) {
	case string:
		return fmt.Sprintf("the string %q", v)
	case int64, uint64, int:
		return fmt.Sprintf("the integer %v", v)
	case bool:
		return "a bool"
	case []any:
		return "a list"
	case map[string]any:
		return "a dict"
	}
	return fmt.Sprintf("%T", v)
}
