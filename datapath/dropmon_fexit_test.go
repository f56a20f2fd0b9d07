package datapath

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nkscript/nkscript/internal/testenv"
)

// TestDropMonitorFexitNamesTheDroppingProgram checks that where the
// kernel has trampolines, a drop on a hook of two programs is put down to
// the one that returned the drop verdict, with no help from counters:
// pass, then drop_port on r's tcx egress, traced when the monitor starts
// after they were attached and when they are attached after it started;
// detaching lets go of the fexit links.
func TestDropMonitorFexitNamesTheDroppingProgram(t *testing.T) {
	if err := haveFexit(); errors.Is(err, ErrNotSupported) {
		testenv.SkipBecause(t, testenv.NoFexit, err.Error())
	} else if err != nil {
		t.Fatal(err)
	}
	d := newDropLab(t, true)
	attach := func() []*Attachment {
		var as []*Attachment
		for _, spec := range []ProgramSpec{{Name: "pass"}, {Name: "drop_port", Consts: map[string]int64{"port": 8080}}} {
			p, err := d.lab.LoadProgram(spec)
			if err != nil {
				t.Fatal(err)
			}
			a, err := d.lab.Attach(p, d.rb.Primary, HookEgress, AttachOptions{})
			if err != nil {
				t.Fatal(err)
			}
			as = append(as, a)
		}
		return as
	}
	check := func(when string) {
		t.Helper()
		m, err := d.lab.DropMonitor()
		if err != nil {
			t.Fatal(err)
		}
		mark := m.Mark()
		res, err := d.lab.Probe(context.Background(), ProbeOptions{Proto: "tcp", Src: d.a, DstNs: d.b,
			Dst: netip.MustParseAddr("10.213.2.2"), Port: 8080, Timeout: 300 * time.Millisecond}, false)
		if err != nil || res.Delivered {
			t.Fatalf("%s: probe through drop_port: %+v, %v", when, res, err)
		}
		m.Sync()
		found := false
		for _, x := range m.Since(mark) {
			if x.Reason != "TC_EGRESS" || x.Dport != 8080 {
				continue
			}
			found = true
			// No mark: without fexit the report would list both.
			r := d.lab.ExplainDrop(x)
			if r.Dev != "dm_rb" || r.Hook != "tc egress" || strings.Join(r.Programs, ",") != "drop_port" {
				t.Errorf("%s: drop by the second program: %+v", when, r)
			}
		}
		if !found {
			t.Fatalf("%s: no TC_EGRESS drop to port 8080 among %+v", when, m.Since(mark))
		}
	}
	as := attach()
	check("monitor started after the attach")
	for _, a := range as {
		if a.tracer == nil {
			t.Errorf("%s: not traced", a.prog)
		}
		if err := a.Detach(); err != nil {
			t.Fatal(err)
		}
		if a.tracer != nil {
			t.Errorf("%s: detached, but its fexit link is held", a.prog)
		}
	}
	attach()
	check("attached after the monitor started")
}
