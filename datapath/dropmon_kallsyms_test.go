package datapath

import (
	"bufio"
	"bytes"
	"cmp"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestKallsymsNames checks the kernel's symbols as the drop monitor reads
// them against a plain reading of /proc/kallsyms (every text symbol,
// sorted by address then name): the name of every symbol's address and
// of an address inside it.
func TestKallsymsNames(t *testing.T) {
	requireRoot(t) // /proc/kallsyms shows zero addresses to others
	type sym struct {
		addr uint64
		name string
	}
	// One read serves both parsers: the file changes whenever a BPF
	// program loads or goes, and other tests load them meanwhile.
	data, err := os.ReadFile("/proc/kallsyms")
	if err != nil {
		t.Fatal(err)
	}
	var want []sym
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 3 || (fs[1] != "t" && fs[1] != "T") {
			continue
		}
		if a, err := strconv.ParseUint(fs[0], 16, 64); err == nil && a != 0 {
			want = append(want, sym{a, fs[2]})
		}
	}
	slices.SortFunc(want, func(x, y sym) int {
		return cmp.Or(cmp.Compare(x.addr, y.addr), strings.Compare(x.name, y.name))
	})
	if len(want) < 1000 {
		t.Fatalf("/proc/kallsyms has %d text symbols", len(want))
	}
	got := parseKallsyms(bytes.NewReader(data))
	if len(got.addrs) != len(want) {
		t.Fatalf("%d symbols read, /proc/kallsyms has %d", len(got.addrs), len(want))
	}
	for i, w := range want {
		if i > 0 && want[i-1].addr == w.addr {
			continue // an alias: the first name at an address is the one
		}
		if n := got.name(w.addr); n != w.name {
			t.Fatalf("symbol at %#x: %q, want %q", w.addr, n, w.name)
		}
		if i+1 < len(want) && want[i+1].addr > w.addr+1 {
			if n := got.name(w.addr + 1); n != w.name {
				t.Fatalf("inside %s (%#x): %q", w.name, w.addr+1, n)
			}
		}
	}
	if got.name(0) != "" || got.name(want[0].addr-1) != "" {
		t.Errorf("an address below every symbol has a name")
	}
}

// TestKallsymsUnsorted checks lines out of order, aliases and other types.
func TestKallsymsUnsorted(t *testing.T) {
	s := parseKallsyms(strings.NewReader("ffffffff81000200 T b_func\nffffffff81000100 t a_func\nffffffff81000100 T a_alias [mod]\nffffffff81000300 D data\n0000000000000000 T zero\nnot a line\n"))
	for addr, want := range map[uint64]string{0xffffffff81000100: "a_alias", 0xffffffff81000150: "a_func", 0xffffffff81000200: "b_func", 0xffffffff81000400: "b_func", 0xffffffff81000000: ""} {
		if got := s.name(addr); got != want {
			t.Errorf("name(%#x) = %q, want %q", addr, got, want)
		}
	}
}
