package main

import "fmt"

// Drop monitor series: dropmon/chain/on, dropmon/chain/off,
// dropmon/tutorial/on, dropmon/tutorial/off (runs), the failure
// dropmon/prog, and dropmon.txt, the `go test -bench DropMonitorCost -v`
// output.

// dropmonGoal is how much slower a run may be with the drop monitor.
const dropmonGoal = 1.05

// dropmonSection renders what the drop monitor costs: whole runs with it
// and without it, side by side, and its program's own time.
func dropmonSection(w *writer, r *Results) {
	w.line("## What the drop monitor costs")
	w.line("")
	w.line("The same labs run with the drop monitor and without it (`NKSCRIPT_DROP_MONITOR=off`), interleaved, whole")
	w.line("processes: the chain lab at N=100, whose one ping loads the monitor, and scripts/veth_tutorial.star, whose")
	w.line("checks load it and whose expected drops it explains. A run that checks traffic loads the monitor in the")
	w.line("background as it starts; its first check attaches it.")
	w.line("")
	w.line("| lab | runs | with the monitor (s) | without (s) | with ÷ without | at most 5% slower |")
	w.line("|---|---|---|---|---|---|")
	for _, lab := range []struct{ key, label string }{
		{"chain", "chain, N=100"},
		{"tutorial", "veth_tutorial.star"},
	} {
		on, haveOn := r.wall("dropmon/" + lab.key + "/on")
		off, haveOff := r.wall("dropmon/" + lab.key + "/off")
		have := ok(r, "dropmon/"+lab.key+"/on", haveOn) && ok(r, "dropmon/"+lab.key+"/off", haveOff)
		ratio := 0.0
		if have {
			ratio = on.Median / off.Median
		}
		g := check(fmt.Sprintf("%s with the drop monitor at most 5%% slower", lab.label), have,
			fmt.Sprintf("%.2f×", ratio), ratio <= dropmonGoal, "no figure: no runs recorded, or some failed")
		w.goals = append(w.goals, g)
		w.f("| %s | %d | %s | %s | %s | **%s** |", lab.label, on.N,
			cell(r, "dropmon/"+lab.key+"/on", haveOn, spread(on)), cell(r, "dropmon/"+lab.key+"/off", haveOff, spread(off)),
			orDash(have, fmt.Sprintf("%.2f×", ratio)), g.Verdict)
	}
	w.line("")
	dropmonProgram(w, r)
}

// dropmonProgram renders BenchmarkDropMonitorProgram: the monitor's
// program per call and per recorded drop, for drops in the lab and
// outside it.
func dropmonProgram(w *writer, r *Results) {
	w.line("The monitor's program itself ([datapath/dropmon_bench_test.go](datapath/dropmon_bench_test.go)): UDP datagrams to a")
	w.line("closed port, each dropped (NO_SOCKET) in a namespace of the lab (recorded) or in one outside it (looked up and")
	w.line("left), with the kernel's BPF run-time statistics on. The program runs for every packet the machine frees with")
	w.line("kfree_skb.")
	w.line("")
	out, have := r.Text("dropmon.txt")
	rows := map[string]*goBench{}
	for _, x := range parseGoBench(out) {
		rows[x.Name] = x
	}
	w.line("| drop | runs | ns per call | ns per recorded drop |")
	w.line("|---|---|---|---|")
	for _, row := range []struct{ key, label string }{{"lab", "in the lab"}, {"outside", "outside the lab"}} {
		b := rows["BenchmarkDropMonitorProgram/"+row.key]
		call, okCall := stat(nil)
		drop, okDrop := stat(nil)
		if b != nil {
			call, okCall = stat(b.Metrics["ns/call"])
			drop, okDrop = stat(b.Metrics["ns/drop"])
		}
		switch {
		case b != nil && b.Status != "":
			w.f("| %s | — | %s | — |", row.label, benchStatusText(b))
		case !have || !okCall || len(r.failed("dropmon/prog")) > 0:
			w.f("| %s | — | %s | — |", row.label, cell(r, "dropmon/prog", false, ""))
		default:
			w.f("| %s | %d | %.0f | %s |", row.label, call.N, call.Median, orDash(okDrop, fmt.Sprintf("%.0f", drop.Median)))
		}
	}
	w.line("")
}

// orDash is s if have, else a dash.
func orDash(have bool, s string) string {
	if have {
		return s
	}
	return "—"
}
