package main

import (
	"fmt"
	"strings"
	"time"
)

// Startup series: startup/empty, startup/version, startup/trivial (runs),
// faults/empty, faults/version, faults/trivial (minor page faults of one
// run, values) and pagecost (ns per first touch of a page, a value).

func startupSection(w *writer, r *Results) {
	w.line("## Startup")
	w.line("")
	triv, haveTriv := r.wall("startup/trivial")
	okTriv := ok(r, "startup/trivial", haveTriv)
	w.f("A trivial script (testdata/bench/trivial.star), whole process: %s.",
		cell(r, "startup/trivial", haveTriv, fmt.Sprintf("median **%s s** (min %s, max %s), %d runs", secs(triv.Median), secs(triv.Min), secs(triv.Max), triv.N)))
	w.line("")
	g := check("a trivial script under 15 ms", okTriv, fmt.Sprintf("%.1f ms", triv.Median/1000), triv.Median < 15000, "no figure: the runs failed")
	w.goals = append(w.goals, g)
	goalTable(w, []goal{g})
	w.line("What a run costs before and after any lab work, interleaved:")
	w.line("")
	w.line("| process | runs | median | min | max | page faults |")
	w.line("|---|---|---|---|---|---|")
	for _, p := range []struct{ key, label string }{
		{"empty", "an empty Go program (`func main() {}`)"},
		{"version", "`nkscript --version` (runtime and package initialisation, exit)"},
		{"trivial", "`nkscript` on a trivial script (plus the journal, Starlark, teardown)"},
	} {
		s, have := r.wall("startup/" + p.key)
		f, haveF := r.value("faults/" + p.key)
		w.f("| %s | %d | %s | %s | %s | %s |", p.label, s.N,
			cell(r, "startup/"+p.key, have, secs(s.Median)+" s"), secs(s.Min), secs(s.Max),
			cell(r, "faults/"+p.key, haveF, fmt.Sprintf("%.0f", f.Median)))
	}
	w.line("")
	if b := r.Meta["nkscript_bytes"]; b != "" {
		var v float64
		fmt.Sscan(b, &v)
		w.f("The nkscript binary measured is %.1f MB.", v/1e6)
		w.line("")
	}
	startupComparisons(w, r)
}

// startupComparisons writes the differences the runs give: a trivial run
// against an empty Go program, nkscript against the Go program at N=1 and
// N=10, and the page faults at the first-touch cost pagecost measured.
func startupComparisons(w *writer, r *Results) {
	empty, haveEmpty := r.wall("startup/empty")
	triv, haveTriv := r.wall("startup/trivial")
	if !ok(r, "startup/empty", haveEmpty) || !ok(r, "startup/trivial", haveTriv) {
		return
	}
	diff := (triv.Median - empty.Median) / 1000
	w.f("A trivial nkscript run took **%.1f ms** more than the empty Go program (medians).", diff)
	for _, n := range []int{1, 10} {
		nk, haveNk := r.wall(fmt.Sprintf("chain/%d/nk", n))
		gov, haveGo := r.wall(fmt.Sprintf("chain/%d/go", n))
		if ok(r, fmt.Sprintf("chain/%d/nk", n), haveNk) && ok(r, fmt.Sprintf("chain/%d/go", n), haveGo) {
			d := (nk.Median - gov.Median) / 1000
			w.f("At N=%d nkscript's median run took %.1f ms %s than the Go program's (%.1f ms).", n, abs(d), moreLess(d), gov.Median/1000)
		}
	}
	w.line("")
	page, havePage := r.value("pagecost")
	fe, haveFE := r.value("faults/empty")
	ft, haveFT := r.value("faults/trivial")
	if !ok(r, "pagecost", havePage) || !ok(r, "faults/empty", haveFE) || !ok(r, "faults/trivial", haveFT) {
		return
	}
	w.f("[bench/pagecost](bench/pagecost/main.go) measured **%.1f µs** for the first touch of a page (64 MiB of fresh", page.Median/1000)
	w.f("anonymous memory, one write per page). At that cost per fault, the empty Go program's %.0f page faults come to", fe.Median)
	w.f("%.1f ms of its %.1f ms, and the %.0f more of a trivial nkscript run to %.1f ms of the %.1f ms difference.",
		fe.Median*page.Median/1e6, empty.Median/1000, ft.Median-fe.Median, (ft.Median-fe.Median)*page.Median/1e6, diff)
	w.line("")
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

func moreLess(d float64) string {
	if d < 0 {
		return "less"
	}
	return "more"
}

// phasesSection shows both programs' phase timings at N=100 as they
// printed them, and side by side where their phases cover the same work.
func phasesSection(w *writer, r *Results) {
	w.line("## Where the time goes (N=100)")
	w.line("")
	nk, haveNk := r.Text("profile.txt")
	gov, haveGo := r.Text("goprofile.txt")
	w.line("`nkscript --profile`:")
	w.line("")
	if msgs := r.failed("profile"); len(msgs) > 0 || !haveNk {
		w.line(cell(r, "profile", haveNk, ""))
		w.line("")
	} else {
		w.block(nk)
	}
	w.line("The Go program's phases (`CHAINGO_PROFILE=1 chaingo 100`):")
	w.line("")
	if msgs := r.failed("goprofile"); len(msgs) > 0 || !haveGo {
		w.line(cell(r, "goprofile", haveGo, ""))
		w.line("")
		return
	}
	w.block(gov)
	if haveNk && len(r.failed("profile")) == 0 {
		phaseTable(w, parsePhases(nk, true), parsePhases(gov, false))
	}
}

// parsePhases reads phase totals: nkscript --profile's table (name, ops,
// total, per op; "other" and "total" without ops) or chaingo's "name
// duration" lines.
func parsePhases(text string, profile bool) map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, total := strings.Join(f[:len(f)-1], " "), f[len(f)-1]
		if profile {
			name = f[0]
			total = f[1]
			if len(f) >= 4 {
				total = f[2]
			}
		}
		if d, err := time.ParseDuration(total); err == nil {
			out[name] = d
		}
	}
	return out
}

// phaseTable puts the phases of the two programs side by side, nkscript's
// summed into the groups chaingo reports.
func phaseTable(w *writer, nk, gov map[string]time.Duration) {
	pairs := []struct{ nk, gov []string }{
		{[]string{"namespaces"}, []string{"namespaces"}},
		{[]string{"links", "addresses"}, []string{"links+addresses"}},
		{[]string{"routes", "sysctls"}, []string{"routes+sysctls"}},
		{[]string{"checks"}, []string{"wait up", "ping"}},
		{[]string{"teardown"}, []string{"teardown"}},
	}
	sum := func(m map[string]time.Duration, names []string) (time.Duration, bool) {
		var t time.Duration
		for _, n := range names {
			d, ok := m[n]
			if !ok {
				return 0, false
			}
			t += d
		}
		return t, true
	}
	w.line("The same timings side by side, nkscript's phases summed into the Go program's groups (the grouping is")
	w.line("this report's; each figure is the sum of the phases named):")
	w.line("")
	w.line("| nkscript phases | nkscript | Go program phases | go | nkscript − go |")
	w.line("|---|---|---|---|---|")
	for _, p := range pairs {
		a, okA := sum(nk, p.nk)
		b, okB := sum(gov, p.gov)
		if !okA || !okB {
			continue
		}
		w.f("| %s | %.1f ms | %s | %.1f ms | %+.1f ms |", strings.Join(p.nk, " + "), ms(a), strings.Join(p.gov, " + "), ms(b), ms(a-b))
	}
	w.line("")
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }
