package btfcodec

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/cilium/ebpf/btf"
)

// intType is the shape of a BTF integer or enum.
type intType struct {
	size   int
	signed bool
	isBool bool
}

// intOf returns the shape of t if, below its qualifiers and typedefs, it
// is an integer or an enum.
func intOf(t btf.Type) (intType, bool) {
	switch u := btf.UnderlyingType(t).(type) {
	case *btf.Int:
		return intType{size: int(u.Size), signed: u.Encoding == btf.Signed, isBool: u.Encoding == btf.Bool}, true
	case *btf.Enum:
		return intType{size: int(u.Size), signed: u.Signed}, true
	}
	return intType{}, false
}

// number is an integer given by a script: u holds its two's complement
// bits, neg says it is below zero, big that it is a uint64 above
// math.MaxInt64.
type number struct {
	u   uint64
	neg bool
	big bool
}

// toNumber converts the Go integer types and bool to a number.
func toNumber(v any) (number, bool) {
	switch x := v.(type) {
	case bool:
		if x {
			return number{u: 1}, true
		}
		return number{}, true
	case int:
		return number{u: uint64(x), neg: x < 0}, true
	case int64:
		return fromInt64(x), true
	case uint64:
		return number{u: x, big: x > math.MaxInt64}, true
	}
	return number{}, false
}

func fromInt64(x int64) number { return number{u: uint64(x), neg: x < 0} }

// check reports whether n fits t. sizeOK is false when t is not a bool
// and not 1 to 8 bytes long: then nothing fits.
func (t intType) check(n number) (fits, sizeOK bool) {
	bits := 8 * t.size
	switch {
	case t.isBool:
		return !n.neg && n.u <= 1, true
	case t.size > 8 || t.size < 1:
		return false, false
	case t.signed && bits == 64:
		return !n.big, true
	case t.signed:
		s := int64(n.u)
		return !n.big && s >= -(1<<(bits-1)) && s <= 1<<(bits-1)-1, true
	case bits == 64:
		return !n.neg, true
	}
	return !n.neg && n.u <= 1<<bits-1, true
}

// rangeString says which values t holds, e.g. "0..255".
func (t intType) rangeString() string {
	bits := 8 * t.size
	switch {
	case t.isBool:
		return "0..1"
	case t.signed && bits == 64:
		return "-2^63..2^63-1"
	case t.signed:
		return fmt.Sprintf("%d..%d", -(int64(1) << (bits - 1)), int64(1)<<(bits-1)-1)
	case bits == 64:
		return "0..2^64-1"
	}
	return fmt.Sprintf("0..%d", uint64(1)<<bits-1)
}

// signedness is "signed" or "unsigned", for messages.
func (t intType) signedness() string {
	if t.signed {
		return "signed"
	}
	return "unsigned"
}

// put writes the low t.size bytes of n into b in order. It reports false,
// writing nothing, for sizes other than 1, 2, 4 and 8.
func (t intType) put(b []byte, n number, order binary.ByteOrder) bool {
	switch t.size {
	case 1:
		b[0] = byte(n.u)
	case 2:
		order.PutUint16(b, uint16(n.u))
	case 4:
		order.PutUint32(b, uint32(n.u))
	case 8:
		order.PutUint64(b, n.u)
	default:
		return false
	}
	return true
}

// getInt reads an integer of len(b) bytes: an int64, or a uint64 when it
// does not fit one. Other lengths read as a list of bytes.
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
