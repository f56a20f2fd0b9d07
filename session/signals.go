package session

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// Signals is the process's handling of SIGINT and SIGTERM: once caught,
// they never kill the process; they end Context, or go to the function
// given to Handle.
type Signals struct {
	ctx     context.Context
	cancel  context.CancelFunc
	mu      sync.Mutex
	handler func(os.Signal)
}

var (
	signalsOnce sync.Once
	signals     *Signals
)

// CatchSignals makes SIGINT and SIGTERM stop runs instead of killing the
// process, from now on until the process exits, and returns the process's
// Signals. Call it first thing: a signal that arrives before it kills the
// process. Later calls return the same Signals.
func CatchSignals() *Signals {
	signalsOnce.Do(func() {
		s := &Signals{}
		s.ctx, s.cancel = context.WithCancel(context.Background())
		c := make(chan os.Signal, 4)
		signal.Notify(c, os.Interrupt, syscall.SIGTERM)
		go s.loop(c)
		signals = s
	})
	return signals
}

func (s *Signals) loop(c <-chan os.Signal) {
	for sig := range c {
		s.mu.Lock()
		h := s.handler
		s.mu.Unlock()
		if h != nil {
			h(sig)
		} else {
			s.cancel()
		}
	}
}

// Context is done once a signal arrived while no Handle function was set.
func (s *Signals) Context() context.Context { return s.ctx }

// Handle passes the signals that arrive from now on to h, which runs on
// a goroutine of its own, instead of ending Context; the returned function
// undoes it.
func (s *Signals) Handle(h func(os.Signal)) (stop func()) {
	s.mu.Lock()
	s.handler = h
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.handler = nil
		s.mu.Unlock()
	}
}
