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

// A DropWatch attributes a lost exchange to a program: it watches the
// program's drop counter while a probe runs and ends the probe's wait
// shortly after the counter rises, since waiting out the timeout would
// prove nothing more.
type DropWatch struct {
	ctx    context.Context
	cancel context.CancelFunc
	fired  atomic.Bool
	done   chan struct{}
}

// WatchDrops starts watching p's drop counter for a rise above before.
// The probe runs under the watch's Context; Stop ends the watch.
func (p *Program) WatchDrops(parent context.Context, before uint64) *DropWatch {
	ctx, cancel := context.WithCancel(parent)
	w := &DropWatch{ctx: ctx, cancel: cancel, done: make(chan struct{})}
	go w.poll(p, before)
	return w
}

// Context is cancelled dropGrace after the program dropped a packet.
func (w *DropWatch) Context() context.Context { return w.ctx }

// Dropped reports whether the program dropped a packet and the watch
// cancelled its context for that.
func (w *DropWatch) Dropped() bool { return w.fired.Load() }

// Stop ends the watch and cancels its context.
func (w *DropWatch) Stop() {
	close(w.done)
	w.cancel()
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
			select {
			case <-w.done:
				return
			case <-time.After(dropGrace):
			}
			w.fired.Store(true)
			w.cancel()
			return
		}
	}
}
