package builtins

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/nkscript/nkscript/datapath"
	"github.com/nkscript/nkscript/internal/testutil"
)

// runReport runs src as test.star against a lab whose host is a fresh
// anonymous namespace, cleans up, and returns the run's expectations.
func runReport(t *testing.T, src string) ([]Expectation, error) {
	t.Helper()
	lab, _ := testutil.KernelLab(t)
	exps, _, err := runReportOn(t, lab, src)
	return exps, err
}

// runReportOn is runReport on lab; it returns the script's output too,
// with $P for the prefix.
func runReportOn(t *testing.T, lab *datapath.Lab, src string) ([]Expectation, string, error) {
	t.Helper()
	var out strings.Builder
	r := NewRun(Options{Lab: lab, Context: context.Background(), Stdout: &out})
	p := prefix()
	_, runErr := r.ExecFile(r.Thread("test.star"), "test.star", strings.ReplaceAll(src, "$P", p))
	if err := lab.Close(); err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	if ents, _ := os.ReadDir(datapath.NetnsDir); ents != nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), p) {
				t.Errorf("namespace %s left behind", e.Name())
			}
		}
	}
	exps := r.Report().Expectations()
	for i := range exps {
		exps[i].Src = strings.ReplaceAll(exps[i].Src, p, "$P")
	}
	return exps, strings.ReplaceAll(out.String(), p, "$P"), runErr
}

func TestReportExpectations(t *testing.T) {
	// twoHosts is 5 lines long (it starts with a newline), so the script
	// proper starts on line 6.
	exps, err := runReport(t, twoHosts+`expect_pass("10.1.0.1", proto = "icmp", src = ns)
drop = program("drop_port", port = 8080)
attach(drop, p.peer, "ingress")
def check():
    expect_drop("10.1.0.2", port = 8080, by = drop)
check()
expect_drop("10.1.0.2", port = 8080, proto = "udp", timeout = "200ms")
expect_pass("10.1.0.2", port = 8081, timeout = "200ms")
expect_drop("10.1.0.2", port = 8081, by = drop)
expect_pass("10.1.0.2", port = 8082)
`)
	if err == nil || !strings.Contains(err.Error(), "was delivered, but it should have been dropped") {
		t.Fatalf("script error %v, want the failed expect_drop", err)
	}
	if len(exps) != 5 {
		t.Fatalf("recorded %d expectations, want 5 (the last one is never reached): %+v", len(exps), exps)
	}
	type row struct {
		name, pos, proto, src, dst string
		port                       int
		expected, result           string
		ok                         bool
		by                         string
	}
	want := []row{
		{"expect_pass", "test.star:6:12", "icmp", "$P-a", "10.1.0.1", 0, "pass", "pass", true, ""},
		{"expect_drop", "test.star:10:16", "tcp", "host", "10.1.0.2", 8080, "drop", "drop", true, "drop_port"},
		{"expect_drop", "test.star:12:12", "udp", "host", "10.1.0.2", 8080, "drop", "drop", true, ""},
		{"expect_pass", "test.star:13:12", "tcp", "host", "10.1.0.2", 8081, "pass", "pass", true, ""},
		{"expect_drop", "test.star:14:12", "tcp", "host", "10.1.0.2", 8081, "drop", "pass", false, "drop_port"},
	}
	for i, e := range exps {
		by := ""
		if e.By != nil {
			by = *e.By
		}
		got := row{e.Name, e.Position, e.Proto, e.Src, e.Dst, e.Port, e.Expected, e.Result, e.OK, by}
		if got != want[i] {
			t.Errorf("expectation %d:\n  got  %+v\n  want %+v", i, got, want[i])
		}
		if e.Reason == "" {
			t.Errorf("expectation %d has no reason", i)
		}
		if (e.By == nil) != (e.Counters == nil) {
			t.Errorf("expectation %d: by %v but counters %v", i, e.By, e.Counters)
		}
	}
	if r := exps[0].Reason; r != "delivered" {
		t.Errorf("reason of a delivered expect_pass: %q", r)
	}
	if r := exps[1].Reason; r != "dropped by drop_port" {
		t.Errorf("reason of expect_drop by=: %q", r)
	}
	// The program dropped exactly the one SYN of the first by= check, then
	// the udp datagram; the failed check's packets all passed it.
	if c := exps[1].Counters; c == nil || c.Dropped != 1 || c.Redirected != 0 {
		t.Errorf("counters after the drop: %+v", c)
	}
	if c := exps[4].Counters; c == nil || c.Dropped != 2 || c.Passed <= exps[1].Counters.Passed {
		t.Errorf("counters after the failed check: %+v (before: %+v)", c, exps[1].Counters)
	}
	if r := exps[4].Reason; r != "delivered, but it should have been dropped" {
		t.Errorf("reason of the failed expect_drop: %q", r)
	}
}

func TestReportSkipsBadCalls(t *testing.T) {
	// Calls whose arguments are wrong check nothing and are not recorded.
	exps, err := runReport(t, twoHosts+`expect_pass("10.1.0.2")`)
	if err == nil || !strings.Contains(err.Error(), "needs a port") {
		t.Fatalf("script error %v, want the missing port", err)
	}
	if len(exps) != 0 {
		t.Errorf("recorded %+v for a call with bad arguments", exps)
	}
}
