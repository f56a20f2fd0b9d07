package builtins

import (
	"net/netip"
	"sync"

	"github.com/nkscript/nkscript/datapath"

	"go.starlark.net/starlark"
)

// Report is the outcome of every expectation a run checked, in the order
// they were checked. Its zero value is an empty report; it is safe for
// concurrent use.
type Report struct {
	mu   sync.Mutex
	exps []Expectation
}

// Expectation is the outcome of one expect_pass or expect_drop call. Its
// JSON form is part of nkscript's --json output.
type Expectation struct {
	// Name is the builtin: "expect_pass" or "expect_drop".
	Name string `json:"name"`
	// Position is the call site in the script, as file:line:col.
	Position string `json:"position"`
	// Proto is "tcp", "udp" or "icmp".
	Proto string `json:"proto"`
	// Src is the sending namespace's name, or "host".
	Src string `json:"src"`
	// Dst is the destination address.
	Dst string `json:"dst"`
	// Port is the destination port, 0 for icmp.
	Port int `json:"port"`
	// Expected is what the script expected: "pass" or "drop".
	Expected string `json:"expected"`
	// Result is what happened: "pass" or "drop".
	Result string `json:"result"`
	// OK reports whether the expectation held.
	OK bool `json:"ok"`
	// Reason says in words what happened.
	Reason string `json:"reason"`
	// By is the name of the program passed as by=, or nil.
	By *string `json:"by"`
	// Counters are the by= program's counters after the check, or nil.
	Counters *Counters `json:"counters"`
	// Drops say where the kernel dropped the flow's packets, when the
	// flow was not delivered and the drop monitor saw its packets die.
	Drops []DropJSON `json:"drops,omitempty"`
}

// DropJSON is where and why the kernel dropped packets of a flow, as
// drops() says it, without what differs from run to run or kernel to
// kernel: the ports (one is ephemeral) and the kernel function.
type DropJSON struct {
	Ns      string `json:"ns"`
	Dev     string `json:"dev,omitempty"`
	Hook    string `json:"hook,omitempty"`
	Program string `json:"program,omitempty"`
	Reason  string `json:"reason"`
	Why     string `json:"why,omitempty"`
	Proto   string `json:"proto"`
	Src     string `json:"src,omitempty"`
	Dst     string `json:"dst,omitempty"`
	Count   int    `json:"count"`
	// Says is the explanation as the verdict prints it.
	Says string `json:"says"`
}

// Counters are a program's packet counters.
type Counters struct {
	Passed     uint64 `json:"passed"`
	Dropped    uint64 `json:"dropped"`
	Redirected uint64 `json:"redirected"`
}

// Expectations returns a copy of the expectations recorded so far; never
// nil, so that an empty report encodes as [].
func (rep *Report) Expectations() []Expectation {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	return append([]Expectation{}, rep.exps...)
}

func (rep *Report) add(e Expectation) {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	rep.exps = append(rep.exps, e)
}

// pendingExpectation is an expectation being checked. expect() fills in
// the outcome with pass or drop; record adds it to the report unless no
// outcome was set (the check itself failed).
type pendingExpectation struct {
	e     Expectation
	by    *Program
	set   bool
	drops []datapath.DropReport // where the flow's packets died
}

// newExpectation starts the record of a check made by builtin b, called
// from the Starlark code running on thread.
func newExpectation(thread *starlark.Thread, b *starlark.Builtin, proto string, src *Netns, dst netip.Addr, port int, wantPass bool, by *Program) *pendingExpectation {
	e := Expectation{
		Name:     b.Name(),
		Position: thread.CallFrame(1).Pos.String(),
		Proto:    proto,
		Src:      "host",
		Dst:      dst.String(),
		Port:     port,
		Expected: passOrDrop(wantPass),
	}
	if !src.isHost {
		e.Src = src.ns.Name()
	}
	if by != nil {
		name := by.p.Name()
		e.By = &name
	}
	return &pendingExpectation{e: e, by: by}
}

// outcome sets what happened: delivered or not, and why.
func (p *pendingExpectation) outcome(delivered, ok bool, reason string) {
	p.e.Result = passOrDrop(delivered)
	p.e.OK = ok
	p.e.Reason = reason
	p.set = true
}

// record adds the expectation to rep, with the by= program's counters
// as they are now.
func (p *pendingExpectation) record(rep *Report) {
	if !p.set {
		return
	}
	if p.by != nil {
		if s, err := p.by.p.Stats(); err == nil {
			p.e.Counters = &Counters{Passed: s.Passed, Dropped: s.Dropped, Redirected: s.Redirected}
		}
	}
	for _, d := range p.drops {
		p.e.Drops = append(p.e.Drops, dropJSON(d))
	}
	rep.add(p.e)
}

func passOrDrop(pass bool) string {
	if pass {
		return "pass"
	}
	return "drop"
}

// reasonOr returns reason, or def when reason is empty.
func reasonOr(reason, def string) string {
	if reason == "" {
		return def
	}
	return reason
}
