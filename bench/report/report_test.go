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
		"| the first output | 4.904 (2.670–8.120) | 2.629 (1.470–4.596) | 1.9× |",
		"Faster but not identical, so it is not kept in nkscript",
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

// snapshotRecords are vm/snapshot records as BenchmarkSnapshotRestore
// writes them, three pairs, with the restored first-output time, the
// clock lag and the count of distinct random bytes given.
func snapshotRecords(restoreFirstUS, restoreBehindMS, distinctRandom string) string {
	recs := "param|snapshot_memory|1G\n"
	for _, d := range []string{"0", "1", "2"} {
		recs += "run|vm/snapshot/cold/first|270" + d + "000|0\nrun|vm/snapshot/cold/total|300" + d + "000|0\n" +
			"run|vm/snapshot/restore/first|" + restoreFirstUS + "|0\nrun|vm/snapshot/restore/total|130" + d + "000|0\n" +
			"run|vm/snapshot/cold/ready|250" + d + "000|0\nrun|vm/snapshot/restore/loaded|58" + d + "000|0\n"
	}
	return recs + `value|vm/snapshot/runs|3
value|vm/snapshot/save_ms|2770
value|vm/snapshot/state_mib|79
value|vm/snapshot/same_output|3
value|vm/snapshot/distinct_boot_ids|3
value|vm/snapshot/distinct_random|` + distinctRandom + `
value|vm/snapshot/cold_distinct_random|3
value|vm/snapshot/cold_clock_behind_ms|500
value|vm/snapshot/restore_clock_behind_ms|` + restoreBehindMS + "\n"
}

// TestSnapshotVerdict: the snapshot section's finding follows the run's
// figures: faster or not, and identical or not (the clock, shared random
// bytes).
func TestSnapshotVerdict(t *testing.T) {
	for _, tc := range []struct {
		name, first, behind, shared string
		want                        []string
	}{
		{"faster, clock late", "1050000", "6500", "3", []string{
			"| the first output | 2.701 (2.700–2.702) | 1.050 (1.050–1.050) | 2.6× |",
			"Restoring reached the first output 2.6× sooner than a cold boot (medians, 1.050 s against 2.701 s)",
			"3 of 3 restored runs printed what the cold boots did",
			"wall clocks were 6.5 s behind the host's (cold boots: 0.5 s)",
			"The 3 restored guests had 3 distinct boot IDs and 3 distinct random bytes (the cold boots 3)",
			"the kernel reseeds from fresh entropy",
			"Faster but not identical, so it is not kept in nkscript"}},
		{"faster, random shared", "1050000", "900", "1", []string{
			"3 distinct boot IDs and 1 distinct random bytes",
			"handed out the same random numbers",
			"Faster but not identical"}},
		{"faster and identical", "1050000", "900", "3", []string{"Faster and identical: worth building into nkscript"}},
		{"slower", "2800000", "900", "3", []string{
			"Restoring was not faster: 2.800 s to the first output against 2.701 s",
			"Not faster, so it is not kept in nkscript."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := writeResults(t, snapshotRecords(tc.first, tc.behind, tc.shared), map[string]string{})
			md, failed := Report(r, []string{"vm"})
			if failed {
				t.Error("no benchmark failed, yet the report says one did")
			}
			wantIn(t, md, append(tc.want, "## A guest restored from a snapshot against a cold boot", "guest memory 1G.")...)
			if strings.Contains(md, "cold, warm and host runs") {
				t.Error("the report has the cold/warm/host table without its records")
			}
		})
	}
	r := writeResults(t, "fail|vm/snapshot|BenchmarkSnapshotRestore: exit status 1: save: qmp migrate: GenericError\n", map[string]string{})
	md, failed := Report(r, []string{"vm"})
	if !failed {
		t.Error("the benchmark failed, yet Report says none did")
	}
	wantIn(t, md, "| the first output | failed: no result recorded | failed: no result recorded | — |",
		"No comparison (failed: BenchmarkSnapshotRestore: exit status 1: save: qmp migrate: GenericError), so restoring a snapshot is not kept.")
}
