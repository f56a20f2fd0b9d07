package datapath

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Phases of a lab's life that a profile accounts for.
const (
	PhaseNamespaces = "namespaces"
	PhaseLinks      = "links"
	PhaseAddresses  = "addresses"
	PhaseRoutes     = "routes"
	PhaseSysctls    = "sysctls"
	PhasePrograms   = "programs"
	PhaseChecks     = "checks"
	PhaseTeardown   = "teardown"
)

var phaseOrder = []string{PhaseNamespaces, PhaseLinks, PhaseAddresses, PhaseRoutes, PhaseSysctls, PhasePrograms, PhaseChecks, PhaseTeardown}

// Profile sums the wall time a lab spends in each phase.
type Profile struct {
	mu    sync.Mutex
	start time.Time
	d     map[string]time.Duration
	n     map[string]int
	depth map[string]int
}

// EnableProfile makes the lab time its operations by phase; without it,
// timing costs nothing.
func (l *Lab) EnableProfile() {
	l.prof = &Profile{start: time.Now(), d: map[string]time.Duration{}, n: map[string]int{}, depth: map[string]int{}}
}

// Timed starts timing an operation of phase; call the result when it is
// done. Nested operations of the same phase count once.
func (l *Lab) Timed(phase string) func() {
	p := l.prof
	if p == nil {
		return func() {}
	}
	p.mu.Lock()
	p.depth[phase]++
	outer := p.depth[phase] == 1
	p.mu.Unlock()
	start := time.Now()
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.depth[phase]--
		if outer {
			p.d[phase] += time.Since(start)
			p.n[phase]++
		}
	}
}

// WriteProfile writes the lab's profile as a table, with the time not
// spent in any phase (Starlark, process start) as "other".
func (l *Lab) WriteProfile(w io.Writer, total time.Duration) {
	p := l.prof
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(w, "nkscript: profile (wall time by phase)\n")
	fmt.Fprintf(w, "  %-11s %6s %10s %10s\n", "phase", "ops", "total", "per op")
	var sum time.Duration
	for _, ph := range phaseOrder {
		d, n := p.d[ph], p.n[ph]
		sum += d
		per := time.Duration(0)
		if n > 0 {
			per = d / time.Duration(n)
		}
		fmt.Fprintf(w, "  %-11s %6d %10s %10s\n", ph, n, round(d), round(per))
	}
	if other := total - sum; other > 0 {
		fmt.Fprintf(w, "  %-11s %6s %10s\n", "other", "", round(other))
	}
	fmt.Fprintf(w, "  %-11s %6s %10s\n", "total", "", round(total))
}

func round(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}
