package datapath

import (
	"encoding/binary"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func loadBundled(t *testing.T, name string) *Program {
	t.Helper()
	requireBPF(t)
	p, err := LoadProgram(ProgramSpec{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func mapOf(t *testing.T, p *Program, name string) *Map {
	t.Helper()
	m, err := p.Map(name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestMapStructs writes and reads the lb program's maps: structs from
// dicts, addresses from strings, links' ifindexes from ints, arrays
// skipping zero entries, and deletion of array entries by zeroing.
func TestMapStructs(t *testing.T) {
	p := loadBundled(t, "lb")
	if got, want := p.MapNames(), []string{"backends", "backends_v6", "stats", "vip", "vip_v6"}; !reflect.DeepEqual(got, want) {
		t.Errorf("MapNames() = %v, want %v", got, want)
	}
	backends := mapOf(t, p, "backends")
	if k, v := backends.Describe(); k != "__u32" || v != "struct backend {ifindex: __u32, addr: __u8[4]}" {
		t.Errorf("Describe() = %q, %q", k, v)
	}
	if err := backends.Put(int64(2), map[string]any{"ifindex": int64(7), "addr": "10.0.2.2"}); err != nil {
		t.Fatal(err)
	}
	if err := backends.Put(int64(0), map[string]any{"addr": netip.MustParseAddr("10.0.0.2")}); err != nil {
		t.Fatal(err)
	}
	items, err := backends.Items()
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]any{
		{int64(0), Fields{{Name: "ifindex", Value: int64(0)}, {Name: "addr", Value: "10.0.0.2"}}},
		{int64(2), Fields{{Name: "ifindex", Value: int64(7)}, {Name: "addr", Value: "10.0.2.2"}}},
	}
	if !reflect.DeepEqual(items, want) {
		t.Errorf("Items() = %v, want %v", items, want)
	}
	// The kernel holds exactly the bytes: ifindex native-endian, the
	// address in network order.
	var raw [8]byte
	if err := backends.store.(kernelMap).m.Lookup(uint32(2), &raw); err != nil {
		t.Fatal(err)
	}
	if binary.NativeEndian.Uint32(raw[:4]) != 7 || netip.AddrFrom4([4]byte(raw[4:])) != netip.MustParseAddr("10.0.2.2") {
		t.Errorf("raw value %x", raw)
	}
	if found, err := backends.Delete(int64(2)); err != nil || !found {
		t.Errorf("Delete: %v %v", found, err)
	}
	if n, _ := backends.Len(); n != 1 {
		t.Errorf("Len() after delete = %d, want 1", n)
	}

	for _, tc := range []struct {
		k, v any
		want string
	}{
		{int64(0), map[string]any{"ifindex": int64(-1)}, "value.ifindex: -1 does not fit a 4-byte unsigned integer (0..4294967295)"},
		{int64(0), map[string]any{"port": int64(1)}, `has no field "port"; its fields are "ifindex", "addr"`},
		{int64(0), map[string]any{"addr": "fd00::1"}, "fd00::1 does not fit __u8[4], which holds an IPv4 address"},
		{int64(0), map[string]any{"addr": "10.0.0.x"}, `"10.0.0.x" is not an IP address`},
		{int64(0), "10.0.0.1", "takes a dict of its fields, not the string"},
		{int64(16), map[string]any{}, "key 16 is out of range (the map holds 16 entries)"},
		{"zero", map[string]any{}, `key: a 4-byte integer takes an int, not the string "zero"`},
	} {
		err := backends.Put(tc.k, tc.v)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "map backends of program lb: ") {
			t.Errorf("Put(%v, %v) = %v, want an error containing %q", tc.k, tc.v, err, tc.want)
		}
	}
}

// TestMapLPM writes prefixes into policy_router's trie and reads them
// back, with longest-prefix lookups.
func TestMapLPM(t *testing.T) {
	p := loadBundled(t, "policy_router")
	v4 := mapOf(t, p, "policy_routes_v4")
	for k, v := range map[string]map[string]any{
		"192.168.100.5/32": {"ifindex": int64(4), "next_hop": "10.0.1.1"},
		"10.0.0.0/8":       {"ifindex": int64(5)},
		"10.1.2.3/16":      {"ifindex": int64(6)}, // host bits are masked
	} {
		if err := v4.Put(k, v); err != nil {
			t.Fatal(err)
		}
	}
	got, ok, err := v4.Get("10.1.9.9")
	if err != nil || !ok || !reflect.DeepEqual(got, Fields{{Name: "ifindex", Value: int64(6)}, {Name: "next_hop", Value: "0.0.0.0"}}) {
		t.Errorf("Get(10.1.9.9) = %v %v %v, want the /16", got, ok, err)
	}
	items, err := v4.Items()
	if err != nil {
		t.Fatal(err)
	}
	var keys []any
	for _, it := range items {
		keys = append(keys, it[0])
	}
	if want := []any{"10.0.0.0/8", "10.1.0.0/16", "192.168.100.5/32"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("keys = %v, want %v", keys, want)
	}
	if err := v4.Put("fd00::/8", map[string]any{}); err == nil || !strings.Contains(err.Error(), "is not an IPv4 prefix") {
		t.Errorf("IPv6 prefix into the v4 trie: %v", err)
	}
	v6 := mapOf(t, p, "policy_routes_v6")
	if err := v6.Put("fd00::/8", map[string]any{"ifindex": int64(3), "next_hop": "fd00::1"}); err != nil {
		t.Fatal(err)
	}
	if got, ok, _ := v6.Get("fd00::5"); !ok || !reflect.DeepEqual(got, Fields{{Name: "ifindex", Value: int64(3)}, {Name: "next_hop", Value: "fd00::1"}}) {
		t.Errorf("v6 Get = %v %v", got, ok)
	}
	if _, err := p.Map("nope"); err == nil || !strings.Contains(err.Error(), `its maps are "policy_matches_v4", "policy_matches_v6", "policy_routes_v4", "policy_routes_v6", "stats"`) {
		t.Errorf("unknown map: %v", err)
	}
}

// TestMapPerCPU reads the per-CPU stats map: one value per possible CPU.
func TestMapPerCPU(t *testing.T) {
	p := loadBundled(t, "pass")
	stats := mapOf(t, p, "stats")
	if err := stats.Put(int64(1), int64(5)); err != nil {
		t.Fatal(err)
	}
	v, ok, err := stats.Get(int64(1))
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	list, isList := v.([]any)
	if !isList || len(list) == 0 || list[0] != int64(5) {
		t.Errorf("Get = %v, want a per-CPU list of 5s", v)
	}
	if s, err := p.Stats(); err != nil || s.Dropped != uint64(5*len(list)) {
		t.Errorf("Stats() = %+v, %v; want dropped = 5 per CPU", s, err)
	}
}
