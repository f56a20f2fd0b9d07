package datapath

import (
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"

	"github.com/cilium/ebpf/btf"
	"github.com/nkscript/nkscript/internal/quote"
)

// Describe says what a key or value of the map looks like, for messages:
// "struct backend {ifindex: __u32, addr: __u8[4]}".
func (m *Map) Describe() (key, value string) {
	return describeType(m.spec.Key, int(m.spec.KeySize)), describeType(m.spec.Value, int(m.spec.ValueSize))
}

func describeType(t btf.Type, size int) string {
	if t == nil {
		return fmt.Sprintf("%d bytes", size)
	}
	return typeString(t, 0)
}

func typeString(t btf.Type, depth int) string {
	name := t.TypeName()
	switch u := t.(type) {
	case *btf.Typedef:
		if name != "" {
			return name
		}
		return typeString(u.Type, depth)
	case *btf.Volatile:
		return typeString(u.Type, depth)
	case *btf.Const:
		return typeString(u.Type, depth)
	case *btf.Array:
		return fmt.Sprintf("%s[%d]", typeString(u.Type, depth), u.Nelems)
	case *btf.Struct:
		if depth > 1 {
			return "struct " + name
		}
		parts := make([]string, len(u.Members))
		for i, mb := range u.Members {
			parts[i] = mb.Name + ": " + typeString(mb.Type, depth+1)
		}
		s := "{" + strings.Join(parts, ", ") + "}"
		if name != "" {
			s = "struct " + name + " " + s
		}
		return s
	}
	if name == "" {
		return fmt.Sprintf("%T", t)
	}
	return name
}

// Field is one field of a struct value read from a map.
type Field struct {
	Name  string
	Value any
}

// Fields is a struct value read from a map, its fields in declaration
// order.
type Fields []Field

// unwrap strips qualifiers and typedefs, returning the underlying type and
// the innermost typedef name seen ("" if none).
func unwrap(t btf.Type) (btf.Type, string) {
	tdName := ""
	for {
		switch u := t.(type) {
		case *btf.Typedef:
			if tdName == "" {
				tdName = u.Name
			}
			t = u.Type
		case *btf.Volatile:
			t = u.Type
		case *btf.Const:
			t = u.Type
		case *btf.Restrict:
			t = u.Type
		default:
			return t, tdName
		}
	}
}

func byteArray(t btf.Type) (int, bool) {
	a, ok := t.(*btf.Array)
	if !ok {
		return 0, false
	}
	it, ok := unwrapInt(a.Type)
	if !ok || it.Size != 1 {
		return 0, false
	}
	return int(a.Nelems), true
}

func unwrapInt(t btf.Type) (*btf.Int, bool) {
	u, _ := unwrap(t)
	i, ok := u.(*btf.Int)
	return i, ok
}

// lpmKey reports whether t is an LPM trie key: {__u32 prefixlen; u8
// data[4|16]}, its first member named prefixlen.
func lpmKey(t btf.Type) (int, bool) {
	s, ok := t.(*btf.Struct)
	if !ok || len(s.Members) != 2 || s.Members[0].Name != "prefixlen" {
		return 0, false
	}
	it, ok := unwrapInt(s.Members[0].Type)
	if !ok || it.Size != 4 {
		return 0, false
	}
	inner, _ := unwrap(s.Members[1].Type)
	n, ok := byteArray(inner)
	if !ok || (n != 4 && n != 16) {
		return 0, false
	}
	return n, true
}

func addrLike(name string) bool {
	name = strings.ToLower(name)
	for _, w := range []string{"addr", "ip", "hop", "nh", "gw", "gateway", "src", "dst", "vip", "__be32"} {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}

// toAddr converts v to an IP address, if it is one.
func toAddr(v any) (netip.Addr, bool, error) {
	switch x := v.(type) {
	case netip.Addr:
		return x.Unmap(), true, nil
	case string:
		a, err := netip.ParseAddr(x)
		if err != nil {
			return netip.Addr{}, true, fmt.Errorf("%q is not an IP address", x)
		}
		return a.Unmap(), true, nil
	}
	return netip.Addr{}, false, nil
}

func encodeValue(t btf.Type, size int, v any, what string, order binary.ByteOrder) ([]byte, error) {
	if t == nil {
		// No BTF: an integer of the right size.
		b := make([]byte, size)
		if err := putInt(b, size, false, false, v, what, order); err != nil {
			return nil, err
		}
		return b, nil
	}
	b := make([]byte, size)
	if err := encode(t, b, v, what, order); err != nil {
		return nil, err
	}
	return b, nil
}

func encode(t btf.Type, b []byte, v any, what string, order binary.ByteOrder) error {
	u, tdName := unwrap(t)
	switch x := u.(type) {
	case *btf.Int:
		if tdName == "__be32" || tdName == "__be16" {
			if a, isAddr, err := toAddr(v); isAddr && tdName == "__be32" {
				if err != nil {
					return fmt.Errorf("%s: %v", what, err)
				}
				if !a.Is4() {
					return fmt.Errorf("%s: %s is not an IPv4 address", what, a)
				}
				copy(b, a.AsSlice())
				return nil
			}
			return putInt(b, int(x.Size), false, false, v, what, binary.BigEndian)
		}
		return putInt(b, int(x.Size), x.Encoding == btf.Signed, x.Encoding == btf.Bool, v, what, order)
	case *btf.Enum:
		return putInt(b, int(x.Size), x.Signed, false, v, what, order)
	case *btf.Array:
		if n, ok := byteArray(x); ok && (n == 4 || n == 16) {
			if a, isAddr, err := toAddr(v); isAddr {
				if err != nil {
					return fmt.Errorf("%s: %v", what, err)
				}
				if (n == 4) != a.Is4() {
					return fmt.Errorf("%s: %s does not fit %s, which holds an IPv%d address", what, a, typeString(t, 0), map[bool]int{true: 4, false: 6}[n == 4])
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
	case *btf.Struct:
		if n, ok := lpmKey(x); ok {
			var p netip.Prefix
			switch y := v.(type) {
			case netip.Prefix:
				p = y
			case netip.Addr:
				p = netip.PrefixFrom(y.Unmap(), y.Unmap().BitLen())
			case string:
				var err error
				if p, err = netip.ParsePrefix(y); err != nil {
					a, aerr := netip.ParseAddr(y)
					if aerr != nil {
						return fmt.Errorf("%s: %q is not a prefix like \"10.0.0.0/24\" or an address", what, y)
					}
					p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
				}
			}
			if p.IsValid() {
				a := p.Addr().Unmap()
				if (n == 4) != a.Is4() {
					return fmt.Errorf("%s: %s is not an IPv%d prefix", what, p, map[bool]int{true: 4, false: 6}[n == 4])
				}
				p = netip.PrefixFrom(a, p.Bits()).Masked()
				order.PutUint32(b[x.Members[0].Offset.Bytes():], uint32(p.Bits()))
				copy(b[x.Members[1].Offset.Bytes():], p.Addr().AsSlice())
				return nil
			}
		}
		fields, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: %s takes a dict of its fields, not %s", what, typeString(t, 0), describeGo(v))
		}
		byName := map[string]btf.Member{}
		var names []string
		for _, mb := range x.Members {
			byName[mb.Name] = mb
			names = append(names, mb.Name)
		}
		keys := make([]string, 0, len(fields))
		for k := range fields {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			mb, ok := byName[k]
			if !ok {
				return fmt.Errorf("%s: %s has no field %q; its fields are %s", what, typeString(t, 0), k, quote.List(names))
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
	return fmt.Errorf("%s: type %s is not supported", what, typeString(t, 0))
}

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

func putInt(b []byte, size int, signed, isBool bool, v any, what string, order binary.ByteOrder) error {
	var n int64
	var un uint64
	neg := false
	switch x := v.(type) {
	case bool:
		if x {
			n, un = 1, 1
		}
	case int:
		n, un, neg = int64(x), uint64(x), x < 0
	case int64:
		n, un, neg = x, uint64(x), x < 0
	case uint64:
		un = x
		if x > math.MaxInt64 {
			n = -1 // marks "too big for int64" below
		} else {
			n = int64(x)
		}
	default:
		if a, isAddr, err := toAddr(v); isAddr && err == nil && a.Is4() && size == 4 {
			copy(b, a.AsSlice())
			return nil
		}
		return fmt.Errorf("%s: a %d-byte integer takes an int, not %s", what, size, describeGo(v))
	}
	bits := 8 * size
	var fits bool
	var rng string
	switch {
	case isBool:
		fits, rng = !neg && un <= 1, "0..1"
	case size > 8 || size < 1:
		return fmt.Errorf("%s: %d-byte integers are not supported", what, size)
	case signed:
		if bits == 64 {
			_, isU := v.(uint64)
			fits, rng = !(isU && n < 0), "-2^63..2^63-1"
		} else {
			lo, hi := -(int64(1) << (bits - 1)), int64(1)<<(bits-1)-1
			_, isU := v.(uint64)
			fits, rng = !(isU && n < 0) && n >= lo && n <= hi, fmt.Sprintf("%d..%d", lo, hi)
		}
	default:
		if bits == 64 {
			fits, rng = !neg, "0..2^64-1"
		} else {
			fits, rng = !neg && un <= uint64(1)<<bits-1, fmt.Sprintf("0..%d", uint64(1)<<bits-1)
		}
	}
	if !fits {
		return fmt.Errorf("%s: %v does not fit a %d-byte %s integer (%s)", what, v, size, map[bool]string{true: "signed", false: "unsigned"}[signed], rng)
	}
	switch size {
	case 1:
		b[0] = byte(un)
	case 2:
		order.PutUint16(b, uint16(un))
	case 4:
		order.PutUint32(b, uint32(un))
	case 8:
		order.PutUint64(b, un)
	default:
		return fmt.Errorf("%s: %d-byte integers are not supported", what, size)
	}
	return nil
}

func decodeValue(t btf.Type, b []byte, name string, order binary.ByteOrder) any {
	if t == nil {
		return getInt(b, false, order)
	}
	return decode(t, b, name, order)
}

func getInt(b []byte, signed bool, order binary.ByteOrder) any {
	var u uint64
	switch len(b) {
	case 1:
		u = uint64(b[0])
	case 2:
		u = uint64(order.Uint16(b))
	case 4:
		u = uint64(order.Uint32(b))
	case 8:
		u = order.Uint64(b)
	default:
		out := make([]any, len(b))
		for i, x := range b {
			out[i] = int64(x)
		}
		return out
	}
	if signed {
		shift := 64 - 8*len(b)
		return int64(u<<shift) >> shift
	}
	if u > math.MaxInt64 {
		return u
	}
	return int64(u)
}

func decode(t btf.Type, b []byte, name string, order binary.ByteOrder) any {
	u, tdName := unwrap(t)
	switch x := u.(type) {
	case *btf.Int:
		if x.Encoding == btf.Bool {
			return b[0] != 0
		}
		if tdName == "__be32" && addrLike(name+" "+tdName) {
			return netip.AddrFrom4([4]byte(b[:4])).String()
		}
		if tdName == "__be32" || tdName == "__be16" {
			return getInt(b[:x.Size], false, binary.BigEndian)
		}
		return getInt(b[:x.Size], x.Encoding == btf.Signed, order)
	case *btf.Enum:
		return getInt(b[:x.Size], x.Signed, order)
	case *btf.Array:
		if n, ok := byteArray(x); ok && (n == 4 || n == 16) && addrLike(name) {
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
	case *btf.Struct:
		if n, ok := lpmKey(x); ok {
			bits := order.Uint32(b[x.Members[0].Offset.Bytes():])
			a, _ := netip.AddrFromSlice(b[x.Members[1].Offset.Bytes() : int(x.Members[1].Offset.Bytes())+n])
			if p, err := a.Prefix(int(min(bits, uint32(a.BitLen())))); err == nil {
				return p.String()
			}
		}
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
	return getInt(b, false, order)
}
