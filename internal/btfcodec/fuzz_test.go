package btfcodec

import (
	"bytes"
	"encoding/binary"
	"math/big"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/nkscript/nkscript/bpf"
)

// Fuzz targets for the codec. They need no kernel and no privileges. Run
// one with, e.g.:
//
//	go test -run '^$' -fuzz '^FuzzMapValue$' -fuzztime 20s ./internal/btfcodec/
//
// Without -fuzz, `go test` runs the seeds and testdata/fuzz/<Name>/.

// codecType is the type of a bundled program's map key or value.
type codecType struct {
	name string // program/map.key or program/map.value
	typ  btf.Type
	size int
}

// bundledTypes lists the key and value types of the bundled programs'
// maps, in a fixed order.
func bundledTypes(tb testing.TB) []codecType {
	var all []codecType
	for _, prog := range []string{"lb", "policy_router", "mirror"} {
		coll, err := bpf.Spec(prog)
		if err != nil {
			tb.Fatal(err)
		}
		for mname, ms := range coll.Maps {
			if strings.HasPrefix(mname, ".") {
				continue
			}
			all = append(all,
				codecType{prog + "/" + mname + ".key", ms.Key, int(ms.KeySize)},
				codecType{prog + "/" + mname + ".value", ms.Value, int(ms.ValueSize)})
		}
	}
	slices.SortFunc(all, func(a, b codecType) int { return strings.Compare(a.name, b.name) })
	return all
}

// FuzzMapValue encodes script-like values into the bundled programs' map
// key and value types. It checks that
//
//   - nothing panics, and an encoding has the type's size;
//   - decoding is exact: whatever encodes decodes to a value that encodes
//     to the same bytes, and decodes to the same value again (an LPM key
//     given as a dict of its fields is the exception to the first: its
//     prefix length and host bits are written as given, and read back
//     clamped and masked);
//   - decoding is total: any bytes decode to a value that encodes, and
//     decodes again to the same value;
//   - an integer written into an integer (the type, or the named field of
//     a struct) is accepted exactly when it is within the type's range,
//     and refused with an error that gives the value and "does not fit"
//     otherwise.
func FuzzMapValue(f *testing.F) {
	f.Add("10.0.0.1", int64(7), "addr", 0)
	f.Add("192.168.100.5/32", int64(-1), "next_hop", 1)
	f.Add("fd00::/8", int64(1<<40), "ifindex", 2)
	f.Add("", int64(0), "", 3)
	f.Add("\x00\x00\x00\x21\x0a\x01\x02\x03", int64(256), "prefixlen", 4)
	all := bundledTypes(f)
	order := binary.NativeEndian
	f.Fuzz(func(t *testing.T, s string, n int64, field string, which int) {
		if which < 0 {
			which = -which
		}
		// Each map's key and value, as FuzzMapValue's seeds had them.
		m := (which % (len(all) / 2)) * 2
		for _, ct := range all[m : m+2] {
			values := []any{s, n, uint64(n), map[string]any{field: s}, map[string]any{field: n}, []any{n, s}, true}
			for _, v := range values {
				b, err := Encode(ct.typ, ct.size, v, "v", order)
				checkIntRange(t, ct, v, field, err)
				if err != nil {
					continue
				}
				if len(b) != ct.size {
					t.Fatalf("%s: encoded %v to %d bytes, want %d", ct.name, v, len(b), ct.size)
				}
				back := Decode(ct.typ, b, "", order)
				b2, err := Encode(ct.typ, ct.size, fieldsToMap(back), "v", order)
				if err != nil {
					t.Fatalf("%s: %v encoded, decoded to %v, which does not encode: %v", ct.name, v, back, err)
				}
				if canonical(ct.typ, v) && !bytes.Equal(b, b2) {
					t.Fatalf("%s: %v -> %x -> %v -> %x", ct.name, v, b, back, b2)
				}
				if back2 := Decode(ct.typ, b2, "", order); !reflect.DeepEqual(back, back2) {
					t.Fatalf("%s: %v -> %x -> %v -> %x -> %v", ct.name, v, b, back, b2, back2)
				}
			}
			checkDecodeTotal(t, ct, []byte(s))
		}
	})
}

// canonical reports whether v encodes into typ the way the decoded value
// does: everything but an LPM key given as a dict of its fields.
func canonical(typ btf.Type, v any) bool {
	st, ok := btf.As[*btf.Struct](typ)
	if !ok {
		return true
	}
	_, isLPM := lpmKey(st)
	_, isDict := v.(map[string]any)
	return !isLPM || !isDict
}

// checkDecodeTotal decodes raw, s's bytes repeated to the type's size.
func checkDecodeTotal(t *testing.T, ct codecType, s []byte) {
	raw := make([]byte, ct.size)
	for i := range raw {
		if len(s) > 0 {
			raw[i] = s[i%len(s)]
		}
	}
	back := Decode(ct.typ, raw, "", binary.NativeEndian)
	b, err := Encode(ct.typ, ct.size, fieldsToMap(back), "v", binary.NativeEndian)
	if err != nil {
		t.Fatalf("%s: %x decoded to %v, which does not encode: %v", ct.name, raw, back, err)
	}
	if back2 := Decode(ct.typ, b, "", binary.NativeEndian); !reflect.DeepEqual(back, back2) {
		t.Fatalf("%s: %x -> %v -> %x -> %v", ct.name, raw, back, b, back2)
	}
}

// checkIntRange checks the error of encoding v when v is an integer, or
// a dict of one integer field, and what it goes into is an integer.
func checkIntRange(t *testing.T, ct codecType, v any, field string, err error) {
	typ, size := ct.typ, ct.size
	if d, ok := v.(map[string]any); ok {
		st, ok := btf.As[*btf.Struct](ct.typ)
		if !ok {
			return
		}
		i := slices.IndexFunc(st.Members, func(mb btf.Member) bool { return mb.Name == field })
		if i < 0 || st.Members[i].BitfieldSize != 0 {
			return
		}
		msize, serr := btf.Sizeof(st.Members[i].Type)
		if serr != nil {
			return
		}
		typ, size, v = st.Members[i].Type, msize, d[field]
	}
	var x *big.Int
	switch y := v.(type) {
	case int64:
		x = big.NewInt(y)
	case uint64:
		x = new(big.Int).SetUint64(y)
	default:
		return
	}
	lo, hi, ok := intBounds(typ, size)
	if !ok {
		return
	}
	fits := x.Cmp(lo) >= 0 && x.Cmp(hi) <= 0
	switch {
	case fits && err != nil:
		t.Fatalf("%s: %v (field %q) is within %v..%v but does not encode: %v", ct.name, v, field, lo, hi, err)
	case !fits && err == nil:
		t.Fatalf("%s: %v (field %q) is outside %v..%v but encodes", ct.name, v, field, lo, hi)
	case !fits && (!strings.Contains(err.Error(), "does not fit") || !strings.Contains(err.Error(), x.String())):
		t.Fatalf("%s: %v (field %q) out of range: error %q does not say so", ct.name, v, field, err)
	}
}

// intBounds is the range of the integer type typ of size bytes (nil typ:
// an unsigned integer without BTF); ok is false for other types and for
// sizes other than 1, 2, 4 and 8.
func intBounds(typ btf.Type, size int) (lo, hi *big.Int, ok bool) {
	signed, isBool := false, false
	if typ != nil {
		switch u := btf.UnderlyingType(typ).(type) {
		case *btf.Int:
			size, signed, isBool = int(u.Size), u.Encoding == btf.Signed, u.Encoding == btf.Bool
			if name := typedefName(typ); name == "__be16" || name == "__be32" {
				signed = false
			}
		case *btf.Enum:
			size, signed = int(u.Size), u.Signed
		default:
			return nil, nil, false
		}
	}
	if size != 1 && size != 2 && size != 4 && size != 8 {
		return nil, nil, false
	}
	bits := uint(8 * size)
	one := big.NewInt(1)
	switch {
	case isBool:
		return big.NewInt(0), one, true
	case signed:
		hi = new(big.Int).Sub(new(big.Int).Lsh(one, bits-1), one)
		return new(big.Int).Neg(new(big.Int).Lsh(one, bits-1)), hi, true
	}
	return big.NewInt(0), new(big.Int).Sub(new(big.Int).Lsh(one, bits), one), true
}

// fieldsToMap turns decoded values back into encodable ones.
func fieldsToMap(v any) any {
	switch x := v.(type) {
	case Fields:
		m := map[string]any{}
		for _, f := range x {
			m[f.Name] = fieldsToMap(f.Value)
		}
		return m
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = fieldsToMap(e)
		}
		return out
	}
	return v
}
