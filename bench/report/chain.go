package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Chain series are chain/N/nk, chain/N/sh and chain/N/go (runs) and
// chain/N/rss (nkscript's peak RSS in KiB, a value); any N the results
// hold becomes a row.

// chainNs returns the sizes of chain recorded, in increasing order.
func chainNs(r *Results) []int {
	var ns []int
	for _, s := range r.Order {
		parts := strings.Split(s, "/")
		if len(parts) < 3 || parts[0] != "chain" {
			continue
		}
		if n, err := strconv.Atoi(parts[1]); err == nil && !slices.Contains(ns, n) {
			ns = append(ns, n)
		}
	}
	slices.Sort(ns)
	return ns
}

// chainRow is what the chain table and its goals need of one N.
type chainRow struct {
	n                int
	nk, sh, gov      Stat
	haveNk, haveSh   bool
	haveGo, haveRSS  bool
	rss              float64
	ratioSh, ratioGo float64
}

func chainData(r *Results, n int) chainRow {
	s := func(impl string) string { return fmt.Sprintf("chain/%d/%s", n, impl) }
	c := chainRow{n: n}
	var have bool
	c.nk, have = r.wall(s("nk"))
	c.haveNk = ok(r, s("nk"), have)
	c.sh, have = r.wall(s("sh"))
	c.haveSh = ok(r, s("sh"), have)
	c.gov, have = r.wall(s("go"))
	c.haveGo = ok(r, s("go"), have)
	rss, have := r.value(s("rss"))
	c.rss, c.haveRSS = rss.Median, ok(r, s("rss"), have)
	if c.haveNk && c.haveSh {
		c.ratioSh = c.sh.Median / c.nk.Median
	}
	if c.haveNk && c.haveGo {
		c.ratioGo = c.gov.Median / c.nk.Median
	}
	return c
}

func chainSection(w *writer, r *Results) {
	w.line("## A chain of N+1 namespaces")
	w.line("")
	w.line("[scripts/bench/chain.star](scripts/bench/chain.star): N veth pairs, /30 addresses, routes end to end, forwarding")
	w.line("on, one ping with TTL 255 from the first namespace to the farthest one a packet reaches (255 hops at most),")
	w.line("then everything deleted. Whole-process wall time in seconds, median (min–max) of the runs, the three")
	w.line("implementations interleaved:")
	w.line("")
	w.line("- **nkscript** runs the script;")
	w.line("- **shell** is `bash` running `nkscript --dry-run`'s output for the same script (ip, sysctl, ping);")
	w.line("- **go** is [bench/chaingo](bench/chaingo/main.go), the lab hand-written with vishvananda/netlink, serially.")
	w.line("")
	w.line("Every run goes through [bench/nsrelease](bench/nsrelease/main.go), which times it and then waits until the kernel")
	w.line("has finished releasing the namespaces it deleted before the next run starts.")
	w.line("")
	w.line("| N | runs | nkscript | shell | go | shell ÷ nkscript | go ÷ nkscript | peak RSS | released after exit (nkscript) | released after exit (go) |")
	w.line("|---|---|---|---|---|---|---|---|---|---|")
	var rows []chainRow
	for _, n := range chainNs(r) {
		c := chainData(r, n)
		rows = append(rows, c)
		w.line(chainLine(r, c))
	}
	w.line("")
	goals := chainGoals(r, rows)
	w.goals = append(w.goals, goals...)
	goalTable(w, goals)
}

func chainLine(r *Results, c chainRow) string {
	s := func(impl string) string { return fmt.Sprintf("chain/%d/%s", c.n, impl) }
	ratio := func(have bool, v float64, format string) string {
		if !have {
			return "—"
		}
		return fmt.Sprintf("**"+format+"×**", v)
	}
	rel := func(impl string) string {
		st, have := r.release(s(impl))
		if have && st.Median < 0 {
			return "not within nsrelease's timeout"
		}
		return cell(r, s(impl), have, fmt.Sprintf("%.0f ms", st.Median/1000))
	}
	return fmt.Sprintf("| %d | %d | %s | %s | %s | %s | %s | %s | %s | %s |", c.n, c.nk.N,
		cell(r, s("nk"), c.nk.N > 0, spread(c.nk)), cell(r, s("sh"), c.sh.N > 0, spread(c.sh)), cell(r, s("go"), c.gov.N > 0, spread(c.gov)),
		ratio(c.haveNk && c.haveSh, c.ratioSh, "%.1f"), ratio(c.haveNk && c.haveGo, c.ratioGo, "%.2f"),
		cell(r, s("rss"), c.haveRSS, fmt.Sprintf("%.0f MiB", c.rss/1024)), rel("nk"), rel("go"))
}

// chainGoals are issue 7's: ≥ 12× faster than the shell script at N=100,
// no slower than the Go program at every N, peak RSS under 60 MiB at
// N=100, N=1000 completes.
func chainGoals(r *Results, rows []chainRow) []goal {
	at := func(n int) (chainRow, bool) {
		for _, c := range rows {
			if c.n == n {
				return c, true
			}
		}
		return chainRow{n: n}, false
	}
	c100, _ := at(100)
	goals := []goal{
		check("shell ÷ nkscript ≥ 12× at N=100", c100.haveNk && c100.haveSh, fmt.Sprintf("%.1f×", c100.ratioSh), c100.ratioSh >= 12, "no ratio: a side failed or did not run"),
	}
	for _, c := range rows {
		goals = append(goals, check(fmt.Sprintf("go ÷ nkscript ≥ 1 at N=%d (no slower than the Go program)", c.n),
			c.haveNk && c.haveGo, fmt.Sprintf("%.2f×", c.ratioGo), c.ratioGo >= 1, "no ratio: a side failed or did not run"))
	}
	goals = append(goals, check("peak RSS under 60 MiB at N=100", c100.haveRSS, fmt.Sprintf("%.0f MiB", c100.rss/1024), c100.rss < 60*1024, "no figure recorded"))
	c1000, have := at(1000)
	fails := r.failed("chain/1000/nk")
	done := fmt.Sprintf("%d runs completed, %d failed", c1000.nk.N, len(fails))
	goals = append(goals, check("N=1000 completes", have && c1000.nk.N+len(fails) > 0, done, len(fails) == 0 && c1000.nk.N > 0, "N=1000 was not run"))
	return goals
}

func teardownSection(w *writer, r *Results) {
	w.line("## Teardown the kernel finishes after exit")
	w.line("")
	w.line("Deleting a namespace only queues it for the kernel's cleanup_net work. \"Released after exit\" in the chain")
	w.line("table is the time from the process's exit until that work has run to the end, measured by nsrelease")
	w.line("with raw tracepoints on the workqueue events of cleanup_net (median of the runs).")
	w.line("")
	back, haveBack := r.wall("b2b/back")
	settled, haveSettled := r.wall("b2b/settled")
	okBack, okSettled := ok(r, "b2b/back", haveBack), ok(r, "b2b/settled", haveSettled)
	if !okBack || !okSettled {
		w.f("What it costs the next run (N=100, started the moment the previous run exits): %s; started after the previous run's namespaces were released: %s.",
			cell(r, "b2b/back", haveBack, spread(back)+" s"), cell(r, "b2b/settled", haveSettled, spread(settled)+" s"))
		w.line("")
		return
	}
	w.f("What it costs the next run: the N=100 lab started the moment the previous run exits took **%s s**", secs(back.Median))
	w.f("(%s–%s), against **%s s** (%s–%s) when started after the previous run's namespaces were released: **%+.0f%%**,",
		secs(back.Min), secs(back.Max), secs(settled.Median), secs(settled.Min), secs(settled.Max), (back.Median/settled.Median-1)*100)
	w.f("%d and %d runs.", back.N, settled.N)
	w.line("")
}
