package datapath

import (
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// ruleList is what `ip -j rule show` lists in ns, each rule as
// "PRIORITY: from SRC[/LEN] [to DST/LEN] table T" (the kernel's own rules
// included).
func ruleList(t *testing.T, ns *Netns, v6 bool) []string {
	t.Helper()
	args := []string{"rule", "show"}
	if v6 {
		args = append([]string{"-6"}, args...)
	}
	var out []string
	for _, r := range ipJSON(t, ns, args...) {
		s := fmt.Sprintf("%v: from %v", r["priority"], r["src"])
		if l, ok := r["srclen"]; ok {
			s += fmt.Sprintf("/%v", l)
		}
		if d, ok := r["dst"]; ok {
			s += fmt.Sprintf(" to %v/%v", d, r["dstlen"])
		}
		out = append(out, s+fmt.Sprintf(" table %v", r["table"]))
	}
	return out
}

// TestRules adds IPv4 and IPv6 rules in a namespace the lab did not
// create, checks them with ip, removes one through the lab, and checks
// that Close removes the rest and that the journal's undo (the one
// `nkscript cleanup` uses) removes a rule too.
func TestRules(t *testing.T) {
	lab, host := testLab(t)
	v4 := RuleSpec{Src: netip.MustParsePrefix("10.61.0.0/24"), Table: 100, Priority: 1000}
	v6 := RuleSpec{Src: netip.MustParsePrefix("fd61::/64"), Dst: netip.MustParsePrefix("fd62::/64"), Table: 101, Priority: 1001}
	for _, r := range []RuleSpec{v4, v6} {
		if err := lab.AddRule(host, r); err != nil {
			t.Fatal(err)
		}
	}
	want4, want6 := "1000: from 10.61.0.0/24 table 100", "1001: from fd61::/64 to fd62::/64 table 101"
	if got := ruleList(t, host, false); !slices.Contains(got, want4) {
		t.Errorf("ip rule: %v, want %q among them", got, want4)
	}
	if got := ruleList(t, host, true); !slices.Contains(got, want6) {
		t.Errorf("ip -6 rule: %v, want %q among them", got, want6)
	}
	if err := lab.AddRule(host, v4); err == nil {
		t.Error("adding the same rule twice succeeded")
	}
	if err := lab.RemoveRule(host, v6); err != nil {
		t.Fatal(err)
	}
	if got := ruleList(t, host, true); slices.Contains(got, want6) {
		t.Errorf("removed rule still listed: %v", got)
	}
	if err := lab.RemoveRule(host, v6); err == nil {
		t.Error("removing a removed rule succeeded")
	}
	_, records, err := ReadJournal(lab.JournalPath())
	if err != nil {
		t.Fatal(err)
	}
	if len(records) != 1 || records[0].String() != v4.String() {
		t.Fatalf("journal records %v, want the IPv4 rule alone", records)
	}

	// The undo `nkscript cleanup` runs removes the rule it names.
	rec := records[0]
	if err := rec.undo(newUndoer(host, map[NsID]*Netns{host.id: host}, io.Discard)); err != nil {
		t.Fatal(err)
	}
	if got := ruleList(t, host, false); slices.Contains(got, want4) {
		t.Errorf("the journal's undo left the rule: %v", got)
	}
	if err := lab.AddRule(host, v4); err != nil {
		t.Fatal(err)
	}
	if err := lab.Close(); err != nil {
		t.Fatal(err)
	}
	if got := ruleList(t, host, false); slices.Contains(got, want4) {
		t.Errorf("Close left the rule: %v", got)
	}
}

// TestRuleChecks checks what a rule must be before it reaches a backend.
func TestRuleChecks(t *testing.T) {
	lab, err := NewLab(LabConfig{Backend: NewRecorder(), Script: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	host := lab.Host()
	for _, tc := range []struct {
		r    RuleSpec
		want string
	}{
		{RuleSpec{Src: netip.MustParsePrefix("10.0.0.0/8")}, "table 0 is out of range"},
		{RuleSpec{Src: netip.MustParsePrefix("10.0.0.0/8"), Dst: netip.MustParsePrefix("fd00::/8"), Table: 5}, "different address families"},
	} {
		if err := lab.AddRule(host, tc.r); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("AddRule(%+v): %v, want %q", tc.r, err, tc.want)
		}
	}
}
