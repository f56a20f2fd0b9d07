package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// The chains of 3,000 and 10,000 namespaces (issue 17) are rows of the
// chain table (chain/N/nk, chain/N/go, chain/N/rss; the shell side is
// recorded as not run) plus chain/N/fds, the most descriptors nkscript
// had open, and the texts bigprofile-N.txt: nkscript --profile of one run
// at N, beside one at N=100 made in the same section.

// bigNs returns the sizes of chain with a descriptor count, increasing.
func bigNs(r *Results) []int {
	var ns []int
	for _, n := range chainNs(r) {
		if _, have := r.value(fmt.Sprintf("chain/%d/fds", n)); have || len(r.failed(fmt.Sprintf("chain/%d/fds", n))) > 0 {
			ns = append(ns, n)
		}
	}
	return ns
}

func bigSection(w *writer, r *Results) {
	ns := bigNs(r)
	if len(ns) == 0 {
		return
	}
	w.line("## Chains of 3,000 and 10,000 namespaces")
	w.line("")
	w.line("Their rows are in the chain table above (nkscript and the Go program only). Descriptors nkscript had open at")
	w.line("most, sampled every 0.1 s during one more run:")
	w.line("")
	w.line("| N | most descriptors open |")
	w.line("|---|---|")
	for _, n := range ns {
		s := fmt.Sprintf("chain/%d/fds", n)
		v, have := r.value(s)
		w.f("| %d | %s |", n, cell(r, s, have, fmt.Sprintf("%.0f", v.Max)))
	}
	w.line("")
	last := ns[len(ns)-1]
	base, haveBase := r.Text("bigprofile-100.txt")
	top, haveTop := r.Text(fmt.Sprintf("bigprofile-%d.txt", last))
	if !haveBase || !haveTop {
		w.f("Per operation at N=%d against N=100: %s.", last, cell(r, "bigprofile", false, ""))
		w.line("")
		return
	}
	w.f("`nkscript --profile`, time per operation at N=100 and N=%d in this section (teardown: per namespace), and", last)
	w.line("their ratio:")
	w.line("")
	w.f("| phase | N=100 | N=%d | ratio |", last)
	w.line("|---|---|---|---|")
	a, b := perOp(base, 100), perOp(top, last)
	names := make([]string, 0, len(a))
	for name := range a {
		if _, ok := b[name]; ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	worst, worstName := 0.0, ""
	for _, name := range names {
		ratio := float64(b[name]) / float64(a[name])
		w.f("| %s | %.1f µs | %.1f µs | %.2f× |", name, us(a[name]), us(b[name]), ratio)
		if ratio > worst {
			worst, worstName = ratio, name
		}
	}
	w.line("")
	w.goals = append(w.goals, check(fmt.Sprintf("per operation at N=%d within 1.5× of N=100, every phase and the teardown", last),
		worstName != "", fmt.Sprintf("at most %.2f× (%s)", worst, worstName), worst <= 1.5, "no phases to compare"))
	bigGoals(w, r)
}

// bigGoals are issue 17's for N=10,000: at most 20 s and 100 MiB.
func bigGoals(w *writer, r *Results) {
	c := chainData(r, 10000)
	w.goals = append(w.goals,
		check("N=10,000 in at most 20 s", c.haveNk, fmt.Sprintf("%.1f s", c.nk.Median/1e6), c.nk.Median <= 20e6, "N=10,000 did not run"),
		check("N=10,000 in at most 100 MiB peak RSS", c.haveRSS, fmt.Sprintf("%.0f MiB", c.rss/1024), c.rss <= 100*1024, "no figure recorded"))
	goalTable(w, w.goals[len(w.goals)-3:])
}

// perOp reads an nkscript --profile table for a chain of n: the time per
// operation of each phase with operations, and teardown per namespace.
func perOp(text string, n int) map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 4 && f[0] == "teardown":
			if d, err := time.ParseDuration(f[2]); err == nil {
				out["teardown per namespace"] = d / time.Duration(n+1)
			}
		case len(f) == 4:
			if d, err := time.ParseDuration(f[3]); err == nil && f[1] != "0" {
				out[f[0]] = d
			}
		}
	}
	return out
}

func us(d time.Duration) float64 { return float64(d) / 1e3 }
