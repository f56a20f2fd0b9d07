package datapath

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
)

// Close undoes everything the lab did, in reverse order: servers,
// captures and the tracer stop, programs are detached and unloaded, and
// the lab's records are undone (settings restored, links outside the
// lab's namespaces deleted by identity, the lab's namespaces deleted with
// their links). The journal is removed once everything is gone.
func (l *Lab) Close() error {
	defer l.timed(PhaseTeardown)()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	errs := l.release()
	errs = append(errs, l.undoAll()...)
	for _, ns := range l.nslist {
		ns.Close()
	}
	if l.ownHost {
		l.host.Close()
	}
	if err := l.b.Close(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		// Keep the journal: `nkscript cleanup` can retry what failed.
		l.journal.Close()
		return errors.Join(errs...)
	}
	return l.journal.Remove()
}

// release stops what the process holds: servers, captures, the tracer,
// attachments and programs, last first.
func (l *Lab) release() []error {
	var errs []error
	for i := len(l.closers) - 1; i >= 0; i-- {
		if err := l.closers[i].Close(); err != nil {
			errs = append(errs, err)
		}
	}
	for i := len(l.attached) - 1; i >= 0; i-- {
		if err := l.attached[i].release(); err != nil {
			errs = append(errs, err)
		}
	}
	for i := len(l.progs) - 1; i >= 0; i-- {
		if err := l.progs[i].Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// undoAll undoes the lab's records, last first. A run of independent
// steps (the lab's namespaces) goes at once, the rest one by one.
func (l *Lab) undoAll() []error {
	var errs []error
	nss := l.reachable()
	for i := len(l.undo) - 1; i >= 0; {
		j := i
		for j >= 0 && l.undo[j].independent {
			j--
		}
		batch := l.undo[j+1 : i+1]
		if len(batch) == 0 {
			batch, j = l.undo[i:i+1], i-1
		}
		for k, err := range l.runSteps(batch, nss) {
			s := batch[len(batch)-1-k]
			if err != nil {
				errs = append(errs, fmt.Errorf("cleanup %s %s: %w", s.rec.Op(), s.rec, err))
				continue
			}
			if s.seq != 0 {
				l.journal.Undone(s.seq)
			}
		}
		i = j
	}
	return errs
}

// undoParallel bounds how many independent undo steps run at once.
// Unmounting a namespace waits for an RCU grace period after the mount
// lock is dropped (namespace_unlock), and grace periods are shared by
// whoever waits at the same time: 1001 namespaces unmounted one by one
// cost 40-360 ms at N=1000, mostly waiting.
const undoParallel = 32

// runSteps undoes steps, last first, and returns their errors in that
// order. One step runs on the calling goroutine; more run in parallel.
func (l *Lab) runSteps(steps []undoStep, nss map[NsID]*Netns) []error {
	errs := make([]error, len(steps))
	if len(steps) == 1 {
		errs[0] = l.undoStep(steps[0].rec, nss)
		return errs
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, undoParallel)
	for k := range steps {
		s := steps[len(steps)-1-k]
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[k] = l.undoStep(s.rec, nss)
		})
	}
	wg.Wait()
	return errs
}

// undoStep undoes r. A panic would end the process with the rest of the
// cleanup undone: it becomes this step's error.
func (l *Lab) undoStep(r Record, nss map[NsID]*Netns) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return l.b.Undo(r, nss)
}

// Keep releases the lab without undoing anything, leaving the journal so
// that `nkscript cleanup` removes the lab later. BPF attachments would be
// detached when the process exits, so Keep pins them under BPFFSDir and
// journals the pins.
func (l *Lab) Keep() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	name := strings.TrimSuffix(filepath.Base(l.journal.Path()), ".journal")
	err := l.b.Pin(l.attached, name, func(r Record) error {
		_, err := l.journal.Append(r)
		return err
	})
	for _, ns := range l.nslist {
		ns.Close()
	}
	l.b.Close()
	if cerr := l.journal.Close(); cerr != nil {
		return cerr
	}
	return err
}

// reachable is every namespace the lab's records can name: the host, the
// lab's own, and those its links are in.
func (l *Lab) reachable() map[NsID]*Netns {
	nss := map[NsID]*Netns{l.host.id: l.host}
	for _, ns := range l.nslist {
		nss[ns.id] = ns
	}
	for _, k := range l.links {
		nss[k.ns.id] = k.ns
	}
	return nss
}
