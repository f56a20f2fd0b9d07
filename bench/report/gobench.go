package main

import (
	"fmt"
	"slices"
	"strings"
)

// bpfPrefix names the sub-benchmarks of datapath's BenchmarkBundledPrograms.
const bpfPrefix = "BenchmarkBundledPrograms/"

// bpfSection renders bpf.txt, the `go test -bench BundledPrograms -v`
// output: per row the median ns/pkt of the runs, against the pass program
// of its hook (pass for tc, xdp_pass for XDP) and the empty program
// (empty, xdp_empty), and the goal of staying under 2× pass.
func bpfSection(w *writer, r *Results) {
	w.line("## BPF programs, per packet")
	w.line("")
	w.f("BPF_PROG_TEST_RUN (cilium/ebpf Program.Benchmark), %s repetitions per run, the kernel's own timing, median of",
		orUnknown(r.Params["bpf_repeat"]))
	w.f("%s runs ([datapath/bpf_bench_test.go](datapath/bpf_bench_test.go)). Each bundled program runs on each path it has: a row", orUnknown(r.Params["bpf_count"]))
	w.line("fails unless the program returned that path's verdict. A test run returns a redirect's verdict without the")
	w.line("kernel carrying the redirect out; `mirror/clone` transmits its copy, inside the helper, to a veth whose peer")
	w.line("is up. tc programs run on a TCP SYN, XDP programs on a UDP datagram. `empty` and `xdp_empty` only return:")
	w.line("the last column takes their time off, leaving what the program's instructions, helper calls and map")
	w.line("lookups cost. Goal: each under 2× the pass program of its hook (`pass`, `xdp_pass`).")
	w.line("")
	out, have := r.Text("bpf.txt")
	benches := parseGoBench(out)
	if !have || len(r.failed("bpf")) > 0 {
		w.line(cell(r, "bpf", have && len(benches) > 0, ""))
		w.line("")
		if !have {
			return
		}
	}
	med := map[string]Stat{}
	for _, b := range benches {
		if s, ok := stat(b.Metrics["ns/pkt"]); ok && b.Status == "" {
			med[strings.TrimPrefix(b.Name, bpfPrefix)] = s
		}
	}
	w.line("| program/path | ns/packet | ÷ pass of its hook | ns above an empty program | under 2× pass |")
	w.line("|---|---|---|---|---|")
	for _, b := range benches {
		name, isRow := strings.CutPrefix(b.Name, bpfPrefix)
		if isRow {
			w.line(bpfLine(w, med, name, b))
		}
	}
	w.line("")
}

func bpfLine(w *writer, med map[string]Stat, name string, b *goBench) string {
	if b.Status != "" {
		return fmt.Sprintf("| `%s` | %s | — | — | — |", name, benchStatusText(b))
	}
	xdp := strings.HasPrefix(name, "xdp")
	base, floor := "pass", "empty"
	if xdp {
		base, floor = "xdp_pass", "xdp_empty"
	}
	v := med[name].Median
	ratio, above, verdict := "—", "—", "—"
	if p, ok := med[base]; ok {
		ratio = fmt.Sprintf("%.2f×", v/p.Median)
		if !slices.Contains([]string{"empty", "xdp_empty", "pass", "xdp_pass"}, name) {
			g := check(fmt.Sprintf("`%s` under 2× `%s`", name, base), true, ratio, v < 2*p.Median, "")
			w.goals = append(w.goals, g)
			verdict = "**" + g.Verdict + "**"
		}
	} else if !slices.Contains([]string{"empty", "xdp_empty"}, name) {
		w.goals = append(w.goals, goal{fmt.Sprintf("`%s` under 2× `%s`", name, base), "no `" + base + "` figure", notMeasured})
		verdict = "**" + notMeasured + "**"
	}
	if e, ok := med[floor]; ok {
		above = fmt.Sprintf("%+.0f", v-e.Median)
	}
	return fmt.Sprintf("| `%s` | %.0f | %s | %s | %s |", name, v, ratio, above, verdict)
}

// benchStatusText says how a benchmark ended without a result.
func benchStatusText(b *goBench) string {
	word := "failed"
	if b.Status == "SKIP" {
		word = "skipped"
	}
	msg := strings.ReplaceAll(b.Message, "|", "/")
	if msg == "" {
		msg = "no message"
	}
	return word + ": " + msg
}

// cliBenches are the whole-run benchmarks of cmd/nkscript; a missing one
// is reported as such.
var cliBenches = []string{"BenchmarkTrivialHost", "BenchmarkTrivialVM", "BenchmarkVethTutorialHost", "BenchmarkTutorialVM"}

// cliSection renders cli.txt, `go test -bench . -v ./cmd/nkscript`: each
// benchmark's median, min and max whole-run time, and the goal of the
// netkit tutorial in the microVM under 4 s.
func cliSection(w *writer, r *Results) {
	w.line("## Whole runs of the CLI")
	w.line("")
	w.f("[cmd/nkscript/bench_test.go](cmd/nkscript/bench_test.go), the built binary run %s times per benchmark, wall time of the whole process:", orUnknown(r.Params["cli_runs"]))
	w.line("")
	out, have := r.Text("cli.txt")
	if msgs := r.failed("cli"); len(msgs) > 0 || !have {
		w.line(cell(r, "cli", have, ""))
		w.line("")
	}
	benches := map[string]*goBench{}
	for _, b := range parseGoBench(out) {
		benches[b.Name] = b
	}
	w.line("| benchmark | median | min | max |")
	w.line("|---|---|---|---|")
	var tutorial goal
	for _, name := range cliBenches {
		b, found := benches[name]
		medians := []float64(nil)
		if found {
			medians = b.Metrics["ms-median"]
		}
		switch {
		case found && b.Status != "":
			w.f("| %s | %s | | |", name, benchStatusText(b))
		case !found || len(medians) == 0:
			w.f("| %s | %s | | |", name, cell(r, "cli", false, ""))
		default:
			w.f("| %s | %.0f ms | %.0f ms | %.0f ms |", name, medians[0], b.Metrics["ms-min"][0], b.Metrics["ms-max"][0])
		}
		if name == "BenchmarkTutorialVM" {
			have := found && b.Status == "" && len(medians) > 0
			var v float64
			if have {
				v = medians[0]
			}
			why := "no result"
			if found && b.Status != "" {
				why = benchStatusText(b)
			}
			tutorial = check("the netkit tutorial in the microVM under 4 s (median whole run)", have, fmt.Sprintf("%.0f ms", v), v < 4000, why)
		}
	}
	w.line("")
	w.goals = append(w.goals, tutorial)
	goalTable(w, []goal{tutorial})
}

// microSection renders the benchstat comparisons of datapath's
// microbenchmarks, as benchstat printed them.
func microSection(w *writer, r *Results) {
	w.line("## Go microbenchmarks")
	w.line("")
	if msgs := r.failed("micro"); len(msgs) > 0 {
		w.line(failedText(msgs))
		w.line("")
	}
	base, count := orUnknown(r.Params["micro_base"]), orUnknown(r.Params["micro_count"])
	w.f("The hot paths of the profile, in [datapath/bench_test.go](datapath/bench_test.go), %s runs each, compared by", count)
	w.f("benchstat with the same benchmarks run on commit %s (before the sysctl, wait and namespace-pool changes), the two", base)
	w.line("alternating run by run:")
	w.line("")
	textBlock(w, r, "benchstat.txt")
	w.line("Entering a namespace for a short /proc operation: `Do` (a new locked goroutine per call) against `doQuick`")
	w.line("(the caller's own thread, switched in and out), which sysctls and the IPv6 readiness check use:")
	w.line("")
	textBlock(w, r, "benchstat-enter.txt")
	w.line("The same wait before IPv4 traffic, which checks the links only and leaves the IPv6 groups to the first")
	w.line("IPv6 traffic (`BenchmarkWaitReadyIPv4`, against `WaitReady` above):")
	w.line("")
	textBlock(w, r, "benchstat-v4.txt")
}

// textBlock writes a text file of the results as a block, or that it is
// missing.
func textBlock(w *writer, r *Results, name string) {
	if t, ok := r.Text(name); ok {
		w.block(t)
		return
	}
	w.f("(no %s: failed)", name)
	w.line("")
}

// compileSection renders the program("x.bpf.c") and prog.run measurements:
// series compile/cached, compile/object, compile/cold (runs) and, per
// bundled program NAME, progrun/NAME/zero and progrun/NAME/many (runs of a
// script making 0 and K prog.run calls) and progrun/NAME/kern (the
// kernel's ns per run, values).
func compileSection(w *writer, r *Results) {
	w.line("## Your own program: compiling and prog.run")
	w.line("")
	w.line("[scripts/own_program/netkit_example.bpf.c](scripts/own_program/netkit_example.bpf.c) loaded by a one-line script,")
	w.line("whole-process wall time, median of the runs of each, interleaved:")
	w.line("")
	w.line("| run | runs | median |")
	w.line("|---|---|---|")
	med := func(series string) (Stat, bool) {
		s, have := r.wall(series)
		return s, ok(r, series, have)
	}
	for _, c := range []struct{ series, label string }{
		{"compile/object", "`program(\"prog.o\")`: the object clang made from it"},
		{"compile/cached", "`program(\"prog.bpf.c\")`, the object cached"},
		{"compile/cold", "`program(\"prog.bpf.c\")`, an empty cache (clang runs)"},
	} {
		s, have := r.wall(c.series)
		w.f("| %s | %d | %s |", c.label, s.N, cell(r, c.series, have, fmt.Sprintf("%.1f ms", s.Median/1000)))
	}
	w.line("")
	cached, okC := med("compile/cached")
	object, okO := med("compile/object")
	extra := (cached.Median - object.Median) / 1000
	g := check("a cached `program(\"x.bpf.c\")` at most 5 ms slower than loading the object", okC && okO,
		fmt.Sprintf("%+.1f ms", extra), extra <= 5, "no figure: a side failed")
	w.goals = append(w.goals, g)
	goalTable(w, []goal{g})
	progRunTable(w, r)
}

func progRunTable(w *writer, r *Results) {
	k := r.Param("progrun_calls", 0)
	w.f("`prog.run(pkt)` from a script: the wall time per call (%d calls, less a run making none; medians of the runs),", k)
	w.line("against the kernel's own time per run of the same program on the same packet (BPF_PROG_TEST_RUN's")
	w.line("duration, `ns_per_run` of `repeat = 100000`). TCP SYN for tc programs, UDP for XDP.")
	w.line("")
	w.line("| program | prog.run, ns per call | kernel, ns per run | difference, ns |")
	w.line("|---|---|---|---|")
	var names []string
	for _, s := range r.Order {
		if p := strings.Split(s, "/"); len(p) == 3 && p[0] == "progrun" && !slices.Contains(names, p[1]) {
			names = append(names, p[1])
		}
	}
	for _, name := range names {
		s := "progrun/" + name
		zero, haveZ := r.wall(s + "/zero")
		many, haveM := r.wall(s + "/many")
		kern, haveK := r.value(s + "/kern")
		if msgs := r.failed(s); len(msgs) > 0 || !haveZ || !haveM || !haveK || k == 0 {
			w.f("| `%s` | %s | | |", name, cell(r, s, false, ""))
			continue
		}
		per := (many.Median - zero.Median) * 1000 / float64(k)
		w.f("| `%s` | %.0f | %.0f | %.0f |", name, per, kern.Median, per-kern.Median)
	}
	w.line("")
}
