package vm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// snapshotRecordsEnv names a file BenchmarkSnapshotRestore writes its
// measurements to as records of hack/bench.sh's results.tsv (see
// bench/report), replacing what an earlier round wrote.
const snapshotRecordsEnv = "NKSCRIPT_SNAPSHOT_RECORDS"

// BenchmarkSnapshotRestore compares a cold boot with restoring a saved
// guest (see snapshotRig), alternating, one of each per iteration: both
// run snapshotProbe, and the times count from qemu's start to the probe's
// first output (first-ms) and to qemu's exit (total-ms), medians. It then
// checks the runs are the same: the probe's line and the kernel must be,
// and it logs what differs (the wall clock, the boot ID, random bytes). Run
// it with -benchtime=11x.
func BenchmarkSnapshotRestore(b *testing.B) {
	rig := newSnapshotRig(b)
	ctx := context.Background()
	state := filepath.Join(rig.dir, "guest.state")
	saveTime, err := rig.save(ctx, state)
	if err != nil {
		b.Fatalf("save: %v", err)
	}
	fi, err := os.Stat(state)
	if err != nil {
		b.Fatal(err)
	}
	var cold, restored []probeRun
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := rig.cold(ctx)
		if err != nil {
			b.Fatalf("cold boot: %v", err)
		}
		r, err := rig.restore(ctx, state)
		if err != nil {
			b.Fatalf("restore: %v", err)
		}
		cold, restored = append(cold, c), append(restored, r)
		b.Logf("cold: ready %v, first output %v, exit %v; restored: loaded %v, first output %v, exit %v",
			c.timing.Ready.Round(time.Millisecond), c.first.Round(time.Millisecond), c.total.Round(time.Millisecond),
			r.loaded.Round(time.Millisecond), r.first.Round(time.Millisecond), r.total.Round(time.Millisecond))
	}
	b.StopTimer()
	cmp := compareProbes(cold, restored)
	for _, s := range []struct {
		name string
		runs []probeRun
	}{{"cold", cold}, {"restore", restored}} {
		b.ReportMetric(ms(median(firsts(s.runs))), s.name+"-first-ms")
		b.ReportMetric(ms(median(totals(s.runs))), s.name+"-total-ms")
	}
	b.Logf("state %d MiB, saved in %v; %s", fi.Size()>>20, saveTime.Round(time.Millisecond), cmp)
	if cmp.sameOutput != len(restored) {
		b.Errorf("%d of %d restored runs printed what the cold boots did", cmp.sameOutput, len(restored))
	}
	if path := os.Getenv(snapshotRecordsEnv); path != "" {
		recs := snapshotRecords(cold, restored, cmp, saveTime, fi.Size())
		if err := os.WriteFile(path, []byte(recs), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// probeComparison is how the restored guests' probes differ from the cold
// boots'.
type probeComparison struct {
	sameOutput       int           // restored runs whose probe line, kernel and exit code are the cold boots'
	bootIDs, randoms int           // distinct boot IDs and random bytes among the restored runs
	coldRandoms      int           // distinct random bytes among the cold boots
	coldBehind       time.Duration // median of how far each guest's clock was behind the host's
	restBehind       time.Duration
}

func (c probeComparison) String() string {
	return fmt.Sprintf("same output %d; distinct boot IDs %d, random bytes %d (cold %d); clock behind: cold %v, restored %v",
		c.sameOutput, c.bootIDs, c.randoms, c.coldRandoms, c.coldBehind.Round(time.Millisecond), c.restBehind.Round(time.Millisecond))
}

func compareProbes(cold, restored []probeRun) probeComparison {
	var c probeComparison
	if len(cold) == 0 || len(restored) == 0 {
		return c
	}
	want := cold[0].lines()
	for _, r := range restored {
		l := r.lines()
		if r.code == cold[0].code && l[0] == want[0] && l[2] == want[2] && r.stderr == cold[0].stderr {
			c.sameOutput++
		}
	}
	c.randoms = distinct(restored, 1)
	c.bootIDs = distinct(restored, 3)
	c.coldRandoms = distinct(cold, 1)
	c.coldBehind = median(behinds(cold))
	c.restBehind = median(behinds(restored))
	return c
}

// distinct counts the different values of the probe's output line i.
func distinct(runs []probeRun, i int) int {
	seen := map[string]bool{}
	for _, r := range runs {
		seen[r.lines()[i]] = true
	}
	return len(seen)
}

// snapshotRecords renders the measurements as results.tsv records: runs
// vm/snapshot/{cold,restore}/{first,total}, vm/snapshot/cold/ready (the
// guest reported in), vm/snapshot/restore/loaded (qemu loaded the state),
// the param snapshot_memory and values
// vm/snapshot/{runs,save_ms,state_mib,same_output,distinct_boot_ids,
// distinct_random,cold_distinct_random,cold_clock_behind_ms,
// restore_clock_behind_ms}.
func snapshotRecords(cold, restored []probeRun, c probeComparison, save time.Duration, stateBytes int64) string {
	var sb strings.Builder
	mem := os.Getenv(snapshotMemoryEnv)
	if mem == "" {
		mem = Options{}.withDefaults().Memory
	}
	fmt.Fprintf(&sb, "param\tsnapshot_memory\t%s\n", mem)
	for i := range cold {
		for _, r := range []struct {
			name string
			p    probeRun
		}{{"cold", cold[i]}, {"restore", restored[i]}} {
			fmt.Fprintf(&sb, "run\tvm/snapshot/%s/first\t%d\t0\n", r.name, r.p.first.Microseconds())
			fmt.Fprintf(&sb, "run\tvm/snapshot/%s/total\t%d\t0\n", r.name, r.p.total.Microseconds())
		}
		fmt.Fprintf(&sb, "run\tvm/snapshot/cold/ready\t%d\t0\n", cold[i].timing.Ready.Microseconds())
		fmt.Fprintf(&sb, "run\tvm/snapshot/restore/loaded\t%d\t0\n", restored[i].loaded.Microseconds())
	}
	for _, v := range []struct {
		name  string
		value float64
	}{
		{"runs", float64(len(cold))},
		{"save_ms", ms(save)},
		{"state_mib", float64(stateBytes) / (1 << 20)},
		{"same_output", float64(c.sameOutput)},
		{"distinct_boot_ids", float64(c.bootIDs)},
		{"distinct_random", float64(c.randoms)},
		{"cold_distinct_random", float64(c.coldRandoms)},
		{"cold_clock_behind_ms", ms(c.coldBehind)},
		{"restore_clock_behind_ms", ms(c.restBehind)},
	} {
		fmt.Fprintf(&sb, "value\tvm/snapshot/%s\t%.1f\n", v.name, v.value)
	}
	return sb.String()
}

func ms(d time.Duration) float64 { return d.Seconds() * 1000 }

func firsts(runs []probeRun) []time.Duration {
	var d []time.Duration
	for _, r := range runs {
		d = append(d, r.first)
	}
	return d
}

func totals(runs []probeRun) []time.Duration {
	var d []time.Duration
	for _, r := range runs {
		d = append(d, r.total)
	}
	return d
}

func behinds(runs []probeRun) []time.Duration {
	var d []time.Duration
	for _, r := range runs {
		d = append(d, r.clockBehind())
	}
	return d
}

// TestSnapshotRecords checks, without a VM, the records the benchmark
// writes for bench/report: what it compares and how it names the series.
func TestSnapshotRecords(t *testing.T) {
	host := time.Unix(1000, 0)
	probe := func(random, bootID, clock string, first time.Duration) probeRun {
		return probeRun{first: first, total: 2 * first, hostClock: host,
			stdout: "snapshot-probe\n" + random + "\n6.12.0\n" + bootID + "\n" + clock + "\n1.5\n"}
	}
	cold := []probeRun{probe("aa", "b1", "999.5", 3*time.Second), probe("ab", "b2", "999.6", 3*time.Second)}
	restored := []probeRun{probe("ac", "b3", "990.0", time.Second), probe("ac", "b3", "990.0", time.Second)}
	restored[1].stdout = strings.Replace(restored[1].stdout, "6.12.0", "6.1.0", 1)
	c := compareProbes(cold, restored)
	// The median of two is the later one.
	want := probeComparison{sameOutput: 1, bootIDs: 1, randoms: 1, coldRandoms: 2,
		coldBehind: 500 * time.Millisecond, restBehind: 10 * time.Second}
	if c.coldBehind = c.coldBehind.Round(100 * time.Millisecond); c != want {
		t.Errorf("comparison %+v, want %+v", c, want)
	}
	recs := snapshotRecords(cold, restored, c, time.Second, 80<<20)
	for _, line := range []string{
		"run\tvm/snapshot/cold/first\t3000000\t0\n",
		"run\tvm/snapshot/restore/total\t2000000\t0\n",
		"run\tvm/snapshot/restore/loaded\t0\t0\n",
		"value\tvm/snapshot/runs\t2.0\n",
		"value\tvm/snapshot/state_mib\t80.0\n",
		"value\tvm/snapshot/same_output\t1.0\n",
		"value\tvm/snapshot/distinct_random\t1.0\n",
		"value\tvm/snapshot/restore_clock_behind_ms\t10000.0\n",
	} {
		if !strings.Contains(recs, line) {
			t.Errorf("records lack %q:\n%s", line, recs)
		}
	}
}
