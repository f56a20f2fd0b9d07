package caps

import (
	"reflect"
	"testing"
)

// TestMissingFromSet checks which capabilities a set lacks for a host lab.
func TestMissingFromSet(t *testing.T) {
	all := []string{"CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_BPF"}
	for _, tc := range []struct {
		set  uint64
		want []string
	}{
		{0, all},
		{0x000001ffffffffff, nil},
		{1<<12 | 1<<21, nil}, // CAP_SYS_ADMIN stands in for CAP_BPF
		{1<<12 | 1<<39, []string{"CAP_SYS_ADMIN"}}, // a container without CAP_SYS_ADMIN
		{1 << 21, []string{"CAP_NET_ADMIN"}},
	} {
		if got := missingFromSet(tc.set); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("missingFromSet(%#x) = %v, want %v", tc.set, got, tc.want)
		}
	}
	if got := List(all); got != "CAP_NET_ADMIN, CAP_SYS_ADMIN and CAP_BPF" {
		t.Errorf("List = %q", got)
	}
}

// TestParseCapEff reads the CapEff line of a status text.
func TestParseCapEff(t *testing.T) {
	set, err := parseCapEff("Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n")
	if err != nil || set != 0x1ffffffffff {
		t.Errorf("parseCapEff = %#x, %v", set, err)
	}
	if _, err := parseCapEff("Name:\tx\n"); err == nil {
		t.Error("no CapEff line: no error")
	}
	if set, err := Effective(); err != nil {
		t.Errorf("Effective: %#x, %v", set, err)
	}
}
