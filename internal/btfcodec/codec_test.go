package btfcodec

import (
	"encoding/binary"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/nkscript/nkscript/bpf"
)

// mapSpec returns a bundled program's map spec.
func mapSpec(t *testing.T, prog, name string) *ebpf.MapSpec {
	t.Helper()
	coll, err := bpf.Spec(prog)
	if err != nil {
		t.Fatal(err)
	}
	ms := coll.Maps[name]
	if ms == nil {
		t.Fatalf("program %s has no map %s", prog, name)
	}
	return ms
}

// TestEncodeStruct writes and reads lb's backends: a struct from a dict,
// an address from a string, with the errors scripts see.
func TestEncodeStruct(t *testing.T) {
	ms := mapSpec(t, "lb", "backends")
	if k, v := Describe(ms.Key, int(ms.KeySize)), Describe(ms.Value, int(ms.ValueSize)); k != "__u32" || v != "struct backend {ifindex: __u32, addr: __u8[4]}" {
		t.Errorf("Describe = %q, %q", k, v)
	}
	order := binary.LittleEndian
	b, err := Encode(ms.Value, int(ms.ValueSize), map[string]any{"ifindex": int64(7), "addr": "10.0.2.2"}, "value", order)
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{7, 0, 0, 0, 10, 0, 2, 2}; !reflect.DeepEqual(b, want) {
		t.Errorf("Encode = %x, want %x", b, want)
	}
	want := Fields{{Name: "ifindex", Value: int64(7)}, {Name: "addr", Value: "10.0.2.2"}}
	if got := Decode(ms.Value, b, "", order); !reflect.DeepEqual(got, want) {
		t.Errorf("Decode = %v, want %v", got, want)
	}
	for _, tc := range []struct {
		key  bool
		v    any
		want string
	}{
		{false, map[string]any{"ifindex": int64(-1)}, "value.ifindex: -1 does not fit a 4-byte unsigned integer (0..4294967295)"},
		{false, map[string]any{"port": int64(1)}, `value: struct backend {ifindex: __u32, addr: __u8[4]} has no field "port"; its fields are "ifindex", "addr"`},
		{false, map[string]any{"addr": "fd00::1"}, "value.addr: fd00::1 does not fit __u8[4], which holds an IPv4 address"},
		{false, map[string]any{"addr": "10.0.0.x"}, `value.addr: "10.0.0.x" is not an IP address`},
		{false, "10.0.0.1", `value: struct backend {ifindex: __u32, addr: __u8[4]} takes a dict of its fields, not the string "10.0.0.1"`},
		{true, "zero", `key: a 4-byte integer takes an int, not the string "zero"`},
		{true, uint64(1) << 32, "key: 4294967296 does not fit a 4-byte unsigned integer (0..4294967295)"},
	} {
		typ, size, what := ms.Value, int(ms.ValueSize), "value"
		if tc.key {
			typ, size, what = ms.Key, int(ms.KeySize), "key"
		}
		if _, err := Encode(typ, size, tc.v, what, order); err == nil || err.Error() != tc.want {
			t.Errorf("Encode(%v) = %v, want %q", tc.v, err, tc.want)
		}
	}
}

// TestEncodeLPM writes prefixes as LPM trie keys, masking host bits.
func TestEncodeLPM(t *testing.T) {
	ms := mapSpec(t, "policy_router", "policy_routes_v4")
	order := binary.LittleEndian
	for in, want := range map[any]string{
		"10.1.2.3/16":                         "10.1.0.0/16",
		"192.168.100.5":                       "192.168.100.5/32",
		netip.MustParsePrefix("10.0.0.0/8"):   "10.0.0.0/8",
		netip.MustParseAddr("::ffff:1.2.3.4"): "1.2.3.4/32",
	} {
		b, err := Encode(ms.Key, int(ms.KeySize), in, "key", order)
		if err != nil {
			t.Fatalf("Encode(%v): %v", in, err)
		}
		if got := Decode(ms.Key, b, "", order); got != want {
			t.Errorf("Encode(%v) decodes to %v, want %s", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"fd00::/8": "key: fd00::/8 is not an IPv4 prefix",
		"10.0.0.x": `key: "10.0.0.x" is not a prefix like "10.0.0.0/24" or an address`,
	} {
		if _, err := Encode(ms.Key, int(ms.KeySize), in, "key", order); err == nil || err.Error() != want {
			t.Errorf("Encode(%q) = %v, want %q", in, err, want)
		}
	}
}

// TestSetConsts sets drop_port's and drop_flow's constants, with the
// errors scripts see.
func TestSetConsts(t *testing.T) {
	spec := func(name string) *ebpf.CollectionSpec {
		coll, err := bpf.Spec(name)
		if err != nil {
			t.Fatal(err)
		}
		return coll
	}
	coll := spec("drop_port")
	if err := SetConsts(coll, map[string]int64{"port": 65535}); err != nil {
		t.Fatal(err)
	}
	if got := coll.Variables["port"].Value; len(got) != 2 || coll.ByteOrder.Uint16(got) != 65535 {
		t.Errorf("port = %x", got)
	}
	for _, tc := range []struct {
		prog   string
		consts map[string]int64
		addrs  map[string]netip.Addr
		want   string
	}{
		{"drop_port", map[string]int64{"port": 70000}, nil, `constant "port": 70000 does not fit in __u16`},
		{"drop_port", map[string]int64{"port": -1}, nil, `constant "port": -1 does not fit in __u16`},
		{"drop_port", map[string]int64{"prot": 1}, nil, `unknown constant "prot": valid constants are "port"`},
		{"pass", map[string]int64{"port": 1}, nil, `unknown constant "port": the program has no constants`},
		{"drop_flow", nil, map[string]netip.Addr{"dst": netip.MustParseAddr("fd00::1")}, `constant "dst" holds an IPv4 address, not fd00::1`},
		{"drop_flow", nil, map[string]netip.Addr{"proto": netip.MustParseAddr("10.0.0.1")}, `constant "proto" is not an address (a 4- or 16-byte array): give it an integer`},
	} {
		coll := spec(tc.prog)
		err := SetAddrConsts(coll, tc.addrs)
		if err == nil {
			err = SetConsts(coll, tc.consts)
		}
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s %v %v: %v, want %q", tc.prog, tc.consts, tc.addrs, err, tc.want)
		}
	}
}

// TestCheckRange: the integer range check at the edges of each width.
func TestCheckRange(t *testing.T) {
	for _, tc := range []struct {
		t    intType
		v    any
		fits bool
	}{
		{intType{size: 1}, int64(255), true},
		{intType{size: 1}, int64(256), false},
		{intType{size: 1, signed: true}, int64(-128), true},
		{intType{size: 1, signed: true}, int64(-129), false},
		{intType{size: 8}, uint64(1<<64 - 1), true},
		{intType{size: 8}, int64(-1), false},
		{intType{size: 8, signed: true}, uint64(1 << 63), false},
		{intType{size: 8, signed: true}, int64(-1 << 63), true},
		{intType{size: 1, isBool: true}, true, true},
		{intType{size: 1, isBool: true}, int64(2), false},
	} {
		n, _ := toNumber(tc.v)
		if fits, sizeOK := tc.t.check(n); fits != tc.fits || !sizeOK {
			t.Errorf("%+v.check(%v) = %v, %v; want %v", tc.t, tc.v, fits, sizeOK, tc.fits)
		}
	}
	if _, sizeOK := (intType{size: 16}).check(number{}); sizeOK {
		t.Error("a 16-byte integer passes the size check")
	}
	if strings.Contains((intType{size: 2, signed: true}).rangeString(), "0..") {
		t.Error("signed range starts at 0")
	}
}

// TestEncodeMapped: an IPv4-mapped IPv6 address is an IPv4 address in a
// 4-byte field, and stays mapped in a 16-byte one, so that what is read
// from an IPv6 field can be written back.
func TestEncodeMapped(t *testing.T) {
	order := binary.LittleEndian
	for _, tc := range []struct {
		prog, m string
		key     bool
		v, want any
	}{
		{"lb", "backends", false, map[string]any{"addr": "::ffff:10.0.0.1"}, Fields{{Name: "ifindex", Value: int64(0)}, {Name: "addr", Value: "10.0.0.1"}}},
		{"policy_router", "policy_routes_v6", false, map[string]any{"next_hop": "::ffff:10.0.0.1"}, Fields{{Name: "ifindex", Value: int64(0)}, {Name: "next_hop", Value: "::ffff:10.0.0.1"}}},
		{"policy_router", "policy_routes_v6", true, "::ffff:10.0.0.0/104", "::ffff:10.0.0.0/104"},
		{"policy_router", "policy_routes_v6", true, netip.MustParseAddr("::ffff:10.0.0.1"), "::ffff:10.0.0.1/128"},
		{"policy_router", "policy_routes_v4", true, "::ffff:10.0.0.1", "10.0.0.1/32"},
	} {
		ms := mapSpec(t, tc.prog, tc.m)
		typ, size := ms.Value, int(ms.ValueSize)
		if tc.key {
			typ, size = ms.Key, int(ms.KeySize)
		}
		b, err := Encode(typ, size, tc.v, "v", order)
		if err != nil {
			t.Errorf("%s: Encode(%v): %v", tc.m, tc.v, err)
			continue
		}
		if got := Decode(typ, b, "", order); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: Encode(%v) decodes to %v, want %v", tc.m, tc.v, got, tc.want)
		}
	}
}
