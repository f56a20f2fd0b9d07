package main

import "fmt"

// The microVM (issue 15): series vm/{cold,warm,host}/{trivial,tutorial}
// and vm/{cold,warm}/test, whole-process wall times; and a guest restored
// from a snapshot against a cold boot, series vm/snapshot/... (see
// snapshotSection).

func vmSection(w *writer, r *Results) {
	vmRunsSection(w, r)
	snapshotSection(w, r)
}

// vmRunsSection reports cold, warm and host runs side by side.
func vmRunsSection(w *writer, r *Results) {
	if _, have := r.wall("vm/cold/trivial"); !have && len(r.failed("vm/cold/trivial")) == 0 {
		return
	}
	w.line("## The microVM: cold, warm and host runs")
	w.line("")
	w.line("Whole process, median (min–max) in seconds. Cold boots a microVM for the run; warm runs in a guest")
	w.line("`nkscript vm start` left running; the host has no netkit, so its tutorial row is the same lab on veth")
	w.line("(scripts/veth_tutorial.star). `nkscript test scripts` ran once each way.")
	w.line("")
	w.line("| script | cold | warm | host | cold ÷ warm |")
	w.line("|---|---|---|---|---|")
	for _, s := range []string{"trivial", "tutorial", "test"} {
		cells := make([]string, 3)
		stats := make([]Stat, 3)
		oks := make([]bool, 3)
		for i, where := range []string{"cold", "warm", "host"} {
			series := "vm/" + where + "/" + s
			st, have := r.wall(series)
			stats[i], oks[i] = st, ok(r, series, have)
			cells[i] = cell(r, series, have, spread(st))
			if where == "host" && s == "test" {
				cells[i] = ""
			}
		}
		ratio := "—"
		if oks[0] && oks[1] {
			ratio = fmt.Sprintf("%.1f×", stats[0].Median/stats[1].Median)
		}
		w.f("| %s | %s | %s | %s | %s |", s, cells[0], cells[1], cells[2], ratio)
	}
	w.line("")
	cold, haveCold := r.wall("vm/cold/tutorial")
	warm, haveWarm := r.wall("vm/warm/tutorial")
	okBoth := ok(r, "vm/cold/tutorial", haveCold) && ok(r, "vm/warm/tutorial", haveWarm)
	test, haveTest := r.wall("vm/warm/test")
	goals := []goal{
		check("tutorial warm at most 0.5 s", ok(r, "vm/warm/tutorial", haveWarm), secs(warm.Median)+" s", warm.Median <= 0.5e6, "no warm run recorded"),
		check("tutorial warm at most a fifth of cold", okBoth, fmt.Sprintf("%.1f× faster", cold.Median/warm.Median), okBoth && cold.Median >= 5*warm.Median, "a side did not run"),
		check("`nkscript test scripts` warm at most 3 s", ok(r, "vm/warm/test", haveTest), secs(test.Median)+" s", test.Median <= 3e6, "no warm run recorded"),
	}
	w.goals = append(w.goals, goals...)
	goalTable(w, goals)
}
