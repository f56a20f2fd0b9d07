package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/sample.md from testdata/sample")

// TestSample renders the recorded sample results and compares the report
// with testdata/sample.md.
func TestSample(t *testing.T) {
	r, err := Load("testdata/sample")
	if err != nil {
		t.Fatal(err)
	}
	md, failed := Report(r, nil)
	if failed {
		t.Error("the sample has no failure, yet the report says one failed")
	}
	if *update {
		if err := os.WriteFile("testdata/sample.md", []byte(md), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("testdata/sample.md")
	if err != nil {
		t.Fatal(err)
	}
	if md != string(want) {
		t.Errorf("report differs from testdata/sample.md (go test -update to rewrite it):\n%s", md)
	}
	for _, s := range []string{
		"| go ÷ nkscript ≥ 1 at N=1 (no slower than the Go program) | 0.68× | **missed** |",
		"| go ÷ nkscript ≥ 1 at N=100 (no slower than the Go program) | 1.04× | **met** |",
		"| a trivial script under 15 ms | 19.0 ms | **missed** |",
		"- veth_tutorial.star with the drop monitor at most 5% slower: **missed** (1.18×)",
		"| in the lab | 3 | 512 | 512 |",
		"| outside the lab | 3 | 164 | — |",
		"| the netkit tutorial in the microVM under 4 s (median whole run) | 4558 ms | **missed** |",
		"| `mirror/clone` | 489 | 25.74× | +471 | **missed** |",
		"| `xdp_drop_port/drop` | 15 | 1.25× | +6 | **met** |",
		"No benchmark failed.",
	} {
		if !strings.Contains(md, s) {
			t.Errorf("report lacks %q", s)
		}
	}
}

// writeResults makes a results directory with the given records and text
// files.
func writeResults(t *testing.T, records string, files map[string]string) *Results {
	t.Helper()
	dir := t.TempDir()
	files[resultsFile] = strings.ReplaceAll(records, "|", "\t")
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func wantIn(t *testing.T, md string, want ...string) {
	t.Helper()
	for _, s := range want {
		if !strings.Contains(md, s) {
			t.Errorf("report lacks %q:\n%s", s, md)
		}
	}
}

// TestMissedGoals feeds results that miss every chain goal: each is
// reported missed, with the figure.
func TestMissedGoals(t *testing.T) {
	r := writeResults(t, `run|chain/100/nk|200000|1000
run|chain/100/sh|1000000|0
run|chain/100/go|100000|1000
value|chain/100/rss|70000
run|chain/1000/nk|2000000|1000
`, map[string]string{})
	md, failed := Report(r, []string{"chain"})
	if failed {
		t.Error("no benchmark failed, yet the report says one did")
	}
	wantIn(t, md,
		"| shell ÷ nkscript ≥ 12× at N=100 | 5.0× | **missed** |",
		"| go ÷ nkscript ≥ 1 at N=100 (no slower than the Go program) | 0.50× | **missed** |",
		"| peak RSS under 60 MiB at N=100 | 68 MiB | **missed** |",
		"Goals checked: 1 met, 3 missed, 1 not measured",
		// N=1000 ran nkscript only: no go ratio, and the row says why.
		"| go ÷ nkscript ≥ 1 at N=1000 (no slower than the Go program) | no ratio: a side failed or did not run | **not measured** |",
		"| 1000 | 1 | 2.000 (2.000–2.000) | failed: no result recorded | failed: no result recorded |",
	)
}

// TestFailures feeds results where benchmarks failed or recorded nothing:
// each row says "failed: ..." in its place, the summary lists every
// failure, and Report reports it.
func TestFailures(t *testing.T) {
	r := writeResults(t, `run|chain/100/nk|150000|1000
fail|chain/100/sh|bash exited 1: RTNETLINK answers: File exists
run|chain/100/go|140000|1000
run|chain/1000/nk|1500000|1000
fail|chain/1000/nk|nkscript exited 1: out of memory
skip|chain/10000/sh|the shell takes hours at this size
run|chain/10000/nk|15000000|1000
fail|bpf|go test exited 1
fail|warm/boot|guest did not come up
fail|startup/trivial|nkscript exited 2
bogus line
`, map[string]string{"bpf.txt": `BenchmarkBundledPrograms
BenchmarkBundledPrograms/pass
BenchmarkBundledPrograms/pass-2 	 1000000	        76.68 ns/op	        19.00 ns/pkt
BenchmarkBundledPrograms/mirror/clone
    bpf_bench_test.go:164: 0 of 1000000 repetitions cloned the packet
--- FAIL: BenchmarkBundledPrograms/mirror/clone-2
--- FAIL: BenchmarkBundledPrograms
FAIL
`, "cli.txt": `BenchmarkTrivialVM
    bench_test.go:52: no kernel cached
--- SKIP: BenchmarkTrivialVM
`})
	md, failed := Report(r, nil)
	if !failed {
		t.Error("benchmarks failed, yet Report says none did")
	}
	if os.Getenv("SHOWREPORT") != "" {
		t.Log(md)
	}
	wantIn(t, md,
		"| 100 | 1 | 0.150 (0.150–0.150) | failed: bash exited 1: RTNETLINK answers: File exists |",
		"| N=1000 completes | 1 runs completed, 1 failed | **missed** |",
		"not run: the shell takes hours at this size",
		"| 10000 | 1 | 15.000 (15.000–15.000) |",
		"| `mirror/clone` | failed: bpf_bench_test.go:164: 0 of 1000000 repetitions cloned the packet |",
		"| BenchmarkTrivialVM | skipped: bench_test.go:52: no kernel cached |",
		"| BenchmarkTutorialVM | failed: no result recorded |",
		"| the netkit tutorial in the microVM under 4 s (median whole run) | no result | **not measured** |",
		"whole process: failed: nkscript exited 2.",
		"- `warm/boot`: guest did not come up",
		"- `bpf`: go test exited 1",
		"- results.tsv:11: ",
		"- `chain/10000/sh`: the shell takes hours at this size",
		"(no benchstat.txt: failed)",
	)
	if strings.Contains(md, "No benchmark failed") {
		t.Error("the report says no benchmark failed")
	}
}

// TestParseGoBench reads go test output with and without -v.
func TestParseGoBench(t *testing.T) {
	for _, out := range []string{
		"BenchmarkA\n    x_test.go:3: no vm here\n--- SKIP: BenchmarkA\nBenchmarkB\nBenchmarkB-2 \t 3\t 230.3 ns/op\t 3.000 ms-median\nBenchmarkC\n    x_test.go:5: broke\n--- FAIL: BenchmarkC\nFAIL\n",
		"BenchmarkB-2 \t 3\t 230.3 ns/op\t 3.000 ms-median\n--- FAIL: BenchmarkC\n    x_test.go:5: broke\nFAIL\n",
	} {
		got := map[string]*goBench{}
		for _, b := range parseGoBench(out) {
			got[b.Name] = b
		}
		if b := got["BenchmarkB"]; b == nil || len(b.Metrics["ms-median"]) != 1 || b.Metrics["ms-median"][0] != 3 {
			t.Errorf("BenchmarkB: %+v", b)
		}
		if b := got["BenchmarkC"]; b == nil || b.Status != "FAIL" || b.Message != "x_test.go:5: broke" {
			t.Errorf("BenchmarkC: %+v", b)
		}
	}
}
