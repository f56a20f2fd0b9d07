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

// Profile sums the wall time a lab spends in each phase: the time in
// which at least one operation of the phase was under way, so that
// operations running at once count once.
type Profile struct {
	mu     sync.Mutex
	start  time.Time
	d      map[string]time.Duration
	n      map[string]int
	active map[string]int
	since  map[string]time.Time
}

func newProfile() *Profile {
	return &Profile{start: time.Now(), d: map[string]time.Duration{}, n: map[string]int{}, active: map[string]int{}, since: map[string]time.Time{}}
}

// EnableProfile makes the lab time its backend's operations by phase;
// call it before the first operation. Without it, timing costs nothing.
func (l *Lab) EnableProfile() {
	l.prof = newProfile()
	l.b = WithProfile(l.b, l.prof)
}

// timed starts timing an operation of phase; call the result when it is
// done.
func (p *Profile) timed(phase string) func() {
	p.mu.Lock()
	if p.active[phase] == 0 {
		p.since[phase] = time.Now()
	}
	p.active[phase]++
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.n[phase]++
		if p.active[phase]--; p.active[phase] == 0 {
			p.d[phase] += time.Since(p.since[phase])
		}
	}
}

// timed starts timing work of phase outside the backend (the lab's
// teardown); call the result when it is done. It costs nothing without a
// profile.
func (l *Lab) timed(phase string) func() {
	if l.prof == nil {
		return func() {}
	}
	return l.prof.timed(phase)
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
