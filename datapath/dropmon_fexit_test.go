package datapath

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf/link"
	"github.com/nkscript/nkscript/internal/testenv"
)

// requireFexit skips tb where the kernel cannot run fexit programs on BPF
// programs (the host); the 6.12 microVM can.
func requireFexit(tb testing.TB) {
	tb.Helper()
	if err := haveFexit(); errors.Is(err, ErrNotSupported) {
		testenv.SkipBecause(tb, testenv.NoFexit, err.Error())
	} else if err != nil {
		tb.Fatal(err)
	}
}

// attachPassThenDrop attaches pass and then drop_port (port 8080) to a
// hook of k.
func attachPassThenDrop(t *testing.T, lab *Lab, k *Link, hook Hook) []*Attachment {
	t.Helper()
	var as []*Attachment
	for _, spec := range []ProgramSpec{{Name: "pass"}, {Name: "drop_port", Consts: map[string]int64{"port": 8080}}} {
		p, err := lab.LoadProgram(spec)
		if err != nil {
			t.Fatal(err)
		}
		a, err := lab.Attach(p, k, hook, AttachOptions{})
		if err != nil {
			t.Fatal(err)
		}
		as = append(as, a)
	}
	return as
}

// tracers returns the IDs of the fexit links that trace as' programs,
// failing t if one is not traced.
func tracers(t *testing.T, as []*Attachment) []link.ID {
	t.Helper()
	var ids []link.ID
	for _, a := range as {
		a.mu.Lock()
		l, _ := a.tracer.(link.Link)
		a.mu.Unlock()
		if l == nil {
			t.Fatalf("%s on %s: not traced", a.prog, a.hook)
		}
		info, err := l.Info()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, info.ID)
	}
	return ids
}

// tracersGone waits until the fexit links ids are gone from the kernel.
func tracersGone(t *testing.T, ids []link.ID) {
	t.Helper()
	for _, id := range ids {
		waitGone(t, "an fexit link", func() (io.Closer, error) { return link.NewFromID(id) })
	}
}

// droppedByFexit sends with the lab's drop monitor on, and checks that every
// drop of a packet to port 8080 that reason names is said to be on dev's
// hook by drop_port alone: by ExplainDrop, which has no counters to go
// by, so without fexit it would list both programs of the hook.
func droppedByFexit(t *testing.T, lab *Lab, when, reason, dev, hook string, send func()) {
	t.Helper()
	m, err := lab.DropMonitor()
	if err != nil {
		t.Fatal(err)
	}
	mark := m.Mark()
	send()
	m.Sync()
	found := false
	for _, x := range m.Since(mark) {
		if x.Reason != reason || x.Dport != 8080 {
			continue
		}
		found = true
		r := lab.ExplainDrop(x)
		if r.Dev != dev || r.Hook != hook || strings.Join(r.Programs, ",") != "drop_port" {
			t.Errorf("%s: drop by the second program of the hook: %+v", when, r)
		}
	}
	if !found {
		t.Fatalf("%s: no %s drop of a packet to port 8080 among %+v", when, reason, m.Since(mark))
	}
}

// TestDropMonitorFexitNamesTheDroppingProgram checks that where the
// kernel has trampolines, a drop on a tcx hook of two programs is put
// down to the one that returned the drop verdict: pass, then drop_port on
// r's egress, traced when the monitor starts after they were attached and
// when they are attached after it started. Detaching and closing the lab
// remove the fexit links.
func TestDropMonitorFexitNamesTheDroppingProgram(t *testing.T) {
	requireFexit(t)
	d := newDropLab(t, true)
	send := func() {
		res, err := d.lab.Probe(context.Background(), ProbeOptions{Proto: "tcp", Src: d.a, DstNs: d.b,
			Dst: netip.MustParseAddr("10.213.2.2"), Port: 8080, Timeout: 300 * time.Millisecond}, false)
		if err != nil || res.Delivered {
			t.Fatalf("probe through drop_port: %+v, %v", res, err)
		}
	}
	as := attachPassThenDrop(t, d.lab, d.rb.Primary, HookEgress)
	droppedByFexit(t, d.lab, "monitor started after the attach", "TC_EGRESS", "dm_rb", "tc egress", send)
	ids := tracers(t, as)
	for _, a := range as {
		if err := a.Detach(); err != nil {
			t.Fatal(err)
		}
	}
	tracersGone(t, ids)
	as = attachPassThenDrop(t, d.lab, d.rb.Primary, HookEgress)
	droppedByFexit(t, d.lab, "attached after the monitor started", "TC_EGRESS", "dm_rb", "tc egress", send)
	ids = tracers(t, as)
	if err := d.lab.Close(); err != nil {
		t.Fatal(err)
	}
	tracersGone(t, ids)
}

// TestNetkitDropMonitorFexit checks the same for a netkit peer hook: the
// drop in netkit's xmit is put down to drop_port, second after pass.
func TestNetkitDropMonitorFexit(t *testing.T) {
	requireNetkit(t)
	requireFexit(t)
	lab, a, b := netkitDropLab(t)
	nk := netkitDropPair(t, lab, a, b, "dm_nkf", "dm_nkg", "", "10.214.2.")
	if err := lab.WaitReadyFor(context.Background(), 10*time.Second, false); err != nil {
		t.Fatal(err)
	}
	if _, err := lab.DropMonitor(); err != nil {
		t.Fatal(err)
	}
	attachPassThenDrop(t, lab, nk.Peer, HookPeer)
	droppedByFexit(t, lab, "netkit peer", "NOT_SPECIFIED", "dm_nkg", "netkit peer", func() {
		lab.Connect(context.Background(), b, "tcp", netip.MustParseAddrPort("10.214.2.1:8080"), 300*time.Millisecond)
	})
}
