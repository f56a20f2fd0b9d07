package datapath

import (
	"context"
	"sync/atomic"
	"time"
)

// dropGrace is how long a probe may still complete after the watched
// program dropped one of its packets; TCP retransmits only after 1 s.
const dropGrace = 50 * time.Millisecond

// dropPoll is how often a DropWatch reads the program's counters.
const dropPoll = 2 * time.Millisecond

// A DropWatch ends the wait of a probe whose packets were dropped: it
// watches a program's drop counter, or the drop monitor for the probe's
// own packets, while the probe runs, and cancels the probe's context
// shortly after it sees a drop, since waiting out the timeout would
// prove nothing more.
type DropWatch struct {
	ctx    context.Context
	cancel context.CancelFunc
	fired  atomic.Bool
	done   chan struct{}
	stop   func() // ends what the watch looks at; nil if nothing
}

// WatchDrops starts watching p's drop counter for a rise above before.
// The probe runs under the watch's Context; Stop ends the watch.
func (p *Program) WatchDrops(parent context.Context, before uint64) *DropWatch {
	w := newDropWatch(parent)
	go w.poll(p, before)
	return w
}

// WatchFlow starts watching the monitor for a drop that match accepts:
// a packet of the probe's exchange, in either direction. The probe runs
// under the watch's Context; Stop ends the watch. A monitor that sees no
// drops (a stand-in) never ends the wait.
func (m *DropMonitor) WatchFlow(parent context.Context, match func(Drop) bool) *DropWatch {
	w := newDropWatch(parent)
	seen, stop := m.SignalDrops(match)
	w.stop = stop
	go w.await(seen)
	return w
}

func newDropWatch(parent context.Context) *DropWatch {
	ctx, cancel := context.WithCancel(parent)
	return &DropWatch{ctx: ctx, cancel: cancel, done: make(chan struct{})}
}

// Context is cancelled dropGrace after the watch saw a drop.
func (w *DropWatch) Context() context.Context { return w.ctx }

// Dropped reports whether the watch saw a drop and cancelled its context
// for that.
func (w *DropWatch) Dropped() bool { return w.fired.Load() }

// Stop ends the watch and cancels its context.
func (w *DropWatch) Stop() {
	close(w.done)
	w.cancel()
	if w.stop != nil {
		w.stop()
	}
}

func (w *DropWatch) poll(p *Program, before uint64) {
	tick := time.NewTicker(dropPoll)
	defer tick.Stop()
	for {
		select {
		case <-w.done:
			return
		case <-w.ctx.Done():
			return
		case <-tick.C:
		}
		if s, err := p.Stats(); err == nil && s.Dropped > before {
			w.fire()
			return
		}
	}
}

// await fires when seen receives.
func (w *DropWatch) await(seen <-chan struct{}) {
	select {
	case <-w.done:
	case <-w.ctx.Done():
	case <-seen:
		w.fire()
	}
}

// fire cancels the context dropGrace from now, unless the watch is
// stopped first.
func (w *DropWatch) fire() {
	select {
	case <-w.done:
		return
	case <-time.After(dropGrace):
	}
	w.fired.Store(true)
	w.cancel()
}

// SignalDrops returns a channel that receives when the monitor sees a
// drop that match accepts (several drops read at once may give one
// receive), and the function that stops it. match runs on the monitor's
// reading goroutine and must not block. A stand-in's channel never
// receives.
func (m *DropMonitor) SignalDrops(match func(Drop) bool) (<-chan struct{}, func()) {
	seen := make(chan struct{}, 1)
	if !m.Active() {
		return seen, func() {}
	}
	stop := m.subscribe(func(d Drop) {
		if !match(d) {
			return
		}
		select {
		case seen <- struct{}{}:
		default:
		}
	})
	return seen, stop
}
