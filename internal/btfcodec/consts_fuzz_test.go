package btfcodec

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// FuzzSetConst fuzzes the fitting and encoding of program constants
// (setConst, which SetConsts applies to each one): a value is accepted exactly when it is
// representable in the variable's BTF integer type (and the variable's
// size matches), and the bytes written decode to the value. Rejections
// name the constant and leave its bytes alone.
//
// kind selects the type: 0 unsigned int, 1 signed, 2 bool, 3 char,
// 4 unsigned enum, 5 signed enum, 6 a pointer.
func FuzzSetConst(f *testing.F) {
	f.Add(int64(12345), uint8(0), uint8(2), uint8(0), false, true)  // __u16 port
	f.Add(int64(65536), uint8(0), uint8(2), uint8(0), false, true)  // too big
	f.Add(int64(-1), uint8(0), uint8(4), uint8(0), false, true)     // negative unsigned
	f.Add(int64(-128), uint8(1), uint8(1), uint8(0), true, false)   // s8 min
	f.Add(int64(128), uint8(1), uint8(1), uint8(0), false, false)   // s8 overflow
	f.Add(int64(-1<<63), uint8(1), uint8(8), uint8(0), false, true) // s64 min
	f.Add(int64(1), uint8(2), uint8(1), uint8(0), false, true)      // bool
	f.Add(int64(2), uint8(2), uint8(1), uint8(0), false, true)      // bool out of range
	f.Add(int64(7), uint8(5), uint8(4), uint8(0), false, true)      // enum
	f.Add(int64(7), uint8(0), uint8(3), uint8(0), false, true)      // 3-byte int
	f.Add(int64(7), uint8(0), uint8(16), uint8(0), false, true)     // __int128
	f.Add(int64(7), uint8(0), uint8(4), uint8(5), false, true)      // size mismatch
	f.Add(int64(7), uint8(6), uint8(8), uint8(0), false, true)      // pointer
	f.Fuzz(func(t *testing.T, val int64, kind, size, valueLen uint8, bigEndian, typedef bool) {
		kind %= 7
		var under btf.Type
		signed, isBool, isInt := false, false, true
		switch kind {
		case 0:
			under = &btf.Int{Name: "unsigned int", Size: uint32(size), Encoding: btf.Unsigned}
		case 1:
			under = &btf.Int{Name: "int", Size: uint32(size), Encoding: btf.Signed}
			signed = true
		case 2:
			under = &btf.Int{Name: "_Bool", Size: uint32(size), Encoding: btf.Bool}
			isBool = true
		case 3:
			under = &btf.Int{Name: "char", Size: uint32(size), Encoding: btf.Char}
		case 4, 5:
			signed = kind == 5
			under = &btf.Enum{Name: "e", Size: uint32(size), Signed: signed}
		default:
			under = &btf.Pointer{Target: &btf.Void{}}
			isInt = false
		}
		typ := under
		if typedef {
			typ = &btf.Typedef{Name: "fz_t", Type: typ}
		}
		typ = &btf.Volatile{Type: &btf.Const{Type: typ}}
		// The variable's bytes are as long as its type, unless valueLen
		// asks for another length.
		vlen := int(size)
		if kind == 6 {
			vlen = 8
		}
		if valueLen != 0 {
			vlen = int(valueLen % 20)
		}
		orig := bytes.Repeat([]byte{0xa5}, vlen)
		v := &ebpf.VariableSpec{Name: "fz_const", SectionName: ".rodata", Value: bytes.Clone(orig), Type: &btf.Var{Name: "fz_const", Type: typ}}
		var order binary.ByteOrder = binary.LittleEndian
		if bigEndian {
			order = binary.BigEndian
		}

		err := setConst(v, val, order)

		bits := 8 * uint(size)
		var fits bool
		switch {
		case !isInt:
		case isBool:
			fits = val == 0 || val == 1
		case size == 0 || size > 8:
		case signed:
			fits = (val<<(64-bits))>>(64-bits) == val
		default:
			fits = val >= 0 && (bits == 64 || uint64(val)>>bits == 0)
		}
		wantOK := fits && vlen == int(size) && (size == 1 || size == 2 || size == 4 || size == 8)
		if err != nil {
			if wantOK {
				t.Fatalf("setConst(%d) into %v (%d bytes): %v", val, typ, vlen, err)
			}
			if !strings.Contains(err.Error(), strconv.Quote(v.Name)) {
				t.Errorf("setConst: error %q does not name the constant", err)
			}
			if isInt && !fits && size >= 1 && size <= 8 && !strings.Contains(err.Error(), strconv.FormatInt(val, 10)) {
				t.Errorf("setConst(%d): error %q does not give the value", val, err)
			}
			if !bytes.Equal(v.Value, orig) {
				t.Errorf("setConst(%d) failed but changed the value to %x", val, v.Value)
			}
			return
		}
		if !wantOK {
			t.Fatalf("setConst(%d) into %v (%d bytes, value %d bytes) succeeded: %x", val, typ, size, vlen, v.Value)
		}
		if len(v.Value) != int(size) {
			t.Fatalf("setConst(%d): %d bytes written into a %d-byte variable", val, len(v.Value), size)
		}
		var got uint64
		for i := range v.Value {
			b := v.Value[i]
			if order == binary.BigEndian {
				got = got<<8 | uint64(b)
			} else {
				got |= uint64(b) << (8 * i)
			}
		}
		if signed && bits < 64 {
			got = uint64(int64(got<<(64-bits)) >> (64 - bits))
		}
		if int64(got) != val {
			t.Fatalf("setConst(%d) into %v wrote %x, which reads back as %d", val, typ, v.Value, int64(got))
		}
	})
}
