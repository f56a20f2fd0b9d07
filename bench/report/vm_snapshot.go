package main

import (
	"fmt"
	"strings"
)

// A guest restored from qemu's saved state against a cold boot
// (BenchmarkSnapshotRestore in vm/snapshot_bench_test.go): runs
// vm/snapshot/{cold,restore}/{first,total}, vm/snapshot/cold/ready,
// vm/snapshot/restore/loaded, the param snapshot_memory and values
// vm/snapshot/{runs,save_ms,state_mib,same_output,distinct_boot_ids,
// distinct_random,cold_distinct_random,cold_clock_behind_ms,
// restore_clock_behind_ms}.

// snapshotSection reports the comparison and whether the restored runs
// were faster and the same as the cold boots.
func snapshotSection(w *writer, r *Results) {
	if _, have := r.wall("vm/snapshot/cold/first"); !have && len(r.failed("vm/snapshot")) == 0 {
		return
	}
	w.line("## A guest restored from a snapshot against a cold boot")
	w.line("")
	w.line("Each pair boots the test guest (vm/testdata/guest) cold and restores it from qemu's state, saved once (QMP")
	w.line("`stop`, `migrate` to a file) where the guest had reported in and waited for its request: before it mounts")
	w.line("the host's root over 9p, which blocks migration while mounted. The restored guest gets the request and goes")
	w.line("on as after a boot: mount, run, power off. Both run the same probe (a shell printing a line, 16 random bytes,")
	w.line("the kernel, the boot ID, the wall clock and the uptime); pairs alternate. Seconds from qemu's start, median")
	w.f("(min–max); guest memory %s.", orUnknown(r.Params["snapshot_memory"]))
	w.line("")
	w.line("| to | cold boot | restored | cold ÷ restored |")
	w.line("|---|---|---|---|")
	for _, row := range []struct{ what, cold, restore string }{
		{"the guest reported in (cold) / the state loaded (restored)", "ready", "loaded"},
		{"the first output", "first", "first"},
		{"qemu's exit", "total", "total"},
	} {
		c, haveC := r.wall("vm/snapshot/cold/" + row.cold)
		s, haveS := r.wall("vm/snapshot/restore/" + row.restore)
		ratio := "—"
		if ok(r, "vm/snapshot/cold/"+row.cold, haveC) && ok(r, "vm/snapshot/restore/"+row.restore, haveS) && s.Median > 0 {
			ratio = fmt.Sprintf("%.1f×", c.Median/s.Median)
		}
		w.f("| %s | %s | %s | %s |", row.what, cell(r, "vm/snapshot/cold/"+row.cold, haveC, spread(c)),
			cell(r, "vm/snapshot/restore/"+row.restore, haveS, spread(s)), ratio)
	}
	w.line("")
	w.line("A saved state holds the guest's memory, the initramfs and the guest's binary in it included: it serves only")
	w.line("the binary, kernel, qemu and command line it was saved with, so each new build would pay a cold boot and a save")
	w.line("once.")
	w.line("")
	w.line(snapshotVerdict(r))
	w.line("")
}

// snapshotVerdict is the section's finding, computed from the run: faster
// or not, what was the same and what differed, and whether that makes
// restoring worth keeping.
func snapshotVerdict(r *Results) string {
	cold, haveC := r.wall("vm/snapshot/cold/first")
	rest, haveR := r.wall("vm/snapshot/restore/first")
	runs, haveN := r.value("vm/snapshot/runs")
	if !ok(r, "vm/snapshot/cold/first", haveC) || !ok(r, "vm/snapshot/restore/first", haveR) || !haveN {
		why := "a side recorded nothing"
		if msgs := r.failed("vm/snapshot"); len(msgs) > 0 {
			why = failedText(msgs)
		}
		return "No comparison (" + why + "), so restoring a snapshot is not kept."
	}
	n := int(runs.Median)
	v := func(name string) float64 { s, _ := r.value("vm/snapshot/" + name); return s.Median }
	var b strings.Builder
	faster := rest.Median < cold.Median
	if faster {
		fmt.Fprintf(&b, "Restoring reached the first output %.1f× sooner than a cold boot (medians, %s s against %s s)", cold.Median/rest.Median, secs(rest.Median), secs(cold.Median))
	} else {
		fmt.Fprintf(&b, "Restoring was not faster: %s s to the first output against %s s for a cold boot (medians)", secs(rest.Median), secs(cold.Median))
	}
	fmt.Fprintf(&b, "; the state took %.0f MiB and %.1f s to save. ", v("state_mib"), v("save_ms")/1000)
	same := int(v("same_output"))
	fmt.Fprintf(&b, "%d of %d restored runs printed what the cold boots did (the probe's line, the kernel, the exit code). ", same, n)
	fmt.Fprintf(&b, "What differed: the restored guests' wall clocks were %.1f s behind the host's (cold boots: %.1f s), as a restored clock resumes where it was saved and lags by the snapshot's age. ",
		v("restore_clock_behind_ms")/1000, v("cold_clock_behind_ms")/1000)
	randoms := int(v("distinct_random"))
	fmt.Fprintf(&b, "The %d restored guests had %d distinct boot IDs and %d distinct random bytes (the cold boots %d): ",
		n, int(v("distinct_boot_ids")), randoms, int(v("cold_distinct_random")))
	if randoms < n {
		b.WriteString("some restored guests handed out the same random numbers, clones of one saved kernel random state, a security and identity caveat. ")
	} else {
		b.WriteString("the kernel reseeds from fresh entropy before long (every second or so in its first minutes, when the guest was saved), but every restored guest starts from one saved kernel random state, a security and identity caveat. ")
	}
	identical := same == n && v("restore_clock_behind_ms")-v("cold_clock_behind_ms") < 1000 && randoms == n
	switch {
	case faster && identical:
		b.WriteString("Faster and identical: worth building into nkscript (the prototype is vm/snapshot_test.go).")
	case faster:
		b.WriteString("Faster but not identical, so it is not kept in nkscript: a restored guest would need the host's clock and fresh randomness at restore, and a warm guest (`nkscript vm start`) already skips the boot.")
	default:
		b.WriteString("Not faster, so it is not kept in nkscript.")
	}
	return b.String()
}
