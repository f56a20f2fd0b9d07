package btfcodec

import (
	"fmt"
	"strings"

	"github.com/cilium/ebpf/btf"
)

// Field is one field of a struct value read from a map.
type Field struct {
	Name  string
	Value any
}

// Fields is a struct value read from a map, its fields in declaration
// order.
type Fields []Field

// Describe says what a value of type t looks like, for messages:
// "struct backend {ifindex: __u32, addr: __u8[4]}". Without BTF (t nil)
// it gives the size: "4 bytes".
func Describe(t btf.Type, size int) string {
	if t == nil {
		return fmt.Sprintf("%d bytes", size)
	}
	return typeString(t, 0)
}

// typeString names t: typedefs by their name, arrays with their length,
// structs with their fields down to depth 1.
func typeString(t btf.Type, depth int) string {
	t = btf.QualifiedType(t)
	name := t.TypeName()
	switch u := t.(type) {
	case *btf.Typedef:
		if name != "" {
			return name
		}
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

// typedefName is the name of the outermost typedef of t, below its
// qualifiers ("" if there is none): __be32 for a volatile __be32.
func typedefName(t btf.Type) string {
	if td, ok := btf.QualifiedType(t).(*btf.Typedef); ok {
		return td.Name
	}
	return ""
}

// byteArray returns the length of t if it is an array of 1-byte integers.
func byteArray(t btf.Type) (int, bool) {
	a, ok := btf.As[*btf.Array](t)
	if !ok {
		return 0, false
	}
	it, ok := btf.As[*btf.Int](a.Type)
	if !ok || it.Size != 1 {
		return 0, false
	}
	return int(a.Nelems), true
}

// addrArray returns the length of t if it is a byte array that can hold
// an IP address: 4 or 16 bytes.
func addrArray(t btf.Type) (int, bool) {
	n, ok := byteArray(t)
	return n, ok && (n == 4 || n == 16)
}

// lpmKey reports whether s is an LPM trie key: {__u32 prefixlen; u8
// data[4|16]}, its first member named prefixlen. It returns the length of
// the address.
func lpmKey(s *btf.Struct) (int, bool) {
	if len(s.Members) != 2 || s.Members[0].Name != "prefixlen" {
		return 0, false
	}
	it, ok := btf.As[*btf.Int](s.Members[0].Type)
	if !ok || it.Size != 4 {
		return 0, false
	}
	return addrArray(s.Members[1].Type)
}

// addrLike reports whether a field or typedef name says it holds an
// address.
func addrLike(name string) bool {
	name = strings.ToLower(name)
	for _, w := range []string{"addr", "ip", "hop", "nh", "gw", "gateway", "src", "dst", "vip", "__be32"} {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}

// ipVersion is 4 for an address of 4 bytes, else 6.
func ipVersion(n int) int {
	if n == 4 {
		return 4
	}
	return 6
}
