package datapath

import "sync"

// A lab that creates its third namespace probably creates more: from
// then on, a background goroutine keeps a few anonymous namespaces ready
// (loopback up, netlink handle open), so that creating one — the
// kernel's most expensive step of a lab, ~1 ms — overlaps with the
// script's other work on another CPU. netns() then only names a spare:
// claims the name, journals it and bind-mounts it. Spares are anonymous:
// nothing names them, and they die with the process, so a run killed at
// any point leaks none; the ones left unused are closed with the lab.

const nsPoolDepth = 4

type nsPool struct {
	spares chan *Netns
	stop   chan struct{}
	wg     sync.WaitGroup
}

func startNsPool() *nsPool {
	p := &nsPool{spares: make(chan *Netns, nsPoolDepth), stop: make(chan struct{})}
	p.wg.Go(func() {
		for {
			select {
			case <-p.stop:
				return
			default:
			}
			ns, err := NewAnonNetns()
			if err != nil {
				return // netns() creates its own and reports the error
			}
			select {
			case p.spares <- ns:
			case <-p.stop:
				ns.Close()
				return
			}
		}
	})
	return p
}

// take returns a spare namespace, or nil if none is ready.
func (p *nsPool) take() *Netns {
	if p == nil {
		return nil
	}
	select {
	case ns := <-p.spares:
		return ns
	default:
		return nil
	}
}

// close stops the pool and closes the spares left.
func (p *nsPool) close() {
	if p == nil {
		return
	}
	close(p.stop)
	p.wg.Wait()
	for {
		select {
		case ns := <-p.spares:
			ns.Close()
		default:
			return
		}
	}
}
