package main

import "fmt"

// The kernel matrix (issue 16): `nkscript test --kernels host,6.1,6.12
// scripts` as one command, every test once per kernel, with -j 1 and -j 2:
// series matrix/j1 and matrix/j2 (runs, whole-process wall time).

func matrixSection(w *writer, r *Results) {
	j1, have1 := r.wall("matrix/j1")
	j2, have2 := r.wall("matrix/j2")
	if !have1 && !have2 && len(r.failed("matrix/j1"))+len(r.failed("matrix/j2")) == 0 {
		return
	}
	w.line("## The labs on three kernels in one command")
	w.line("")
	w.line("`nkscript test --kernels host,6.1,6.12 scripts`: every lab of scripts/ on the host and in a cold-booted")
	w.line("microVM per kernel, one guest per kernel for the batch, the host's tests beside the guests, each in a")
	w.line("process of its own; whole-process wall time in seconds, median (min–max) of the runs:")
	w.line("")
	w.line("| jobs | runs | wall |")
	w.line("|---|---|---|")
	w.f("| -j 1 (one guest after the other, one host test at a time) | %d | %s |", j1.N, cell(r, "matrix/j1", have1, spread(j1)))
	w.f("| -j 2 (two guests at once, two host tests at a time) | %d | %s |", j2.N, cell(r, "matrix/j2", have2, spread(j2)))
	w.line("")
	goals := []goal{
		check("all three kernels in at most 25 s cold with -j 2", ok(r, "matrix/j2", have2),
			fmt.Sprintf("%s s", secs(j2.Median)), j2.Median <= 25e6, "no run recorded"),
	}
	if ok(r, "matrix/j1", have1) && ok(r, "matrix/j2", have2) {
		w.f("-j 2 took %.2f× the time of -j 1.", j2.Median/j1.Median)
		w.line("")
	}
	w.goals = append(w.goals, goals...)
	goalTable(w, goals)
}
