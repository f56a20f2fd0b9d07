package datapath

import "sync"

// A lab that creates its third namespace probably creates more: from
// then on, a background goroutine makes anonymous namespaces (loopback
// up, netlink handle open) one step ahead of the script, so that creating
// one — the kernel's most expensive step of a lab, ~0.5 ms — overlaps
// with the script's next call on another CPU. netns() then only names a
// spare: journals it, bind-mounts it in the lab's tree and links its name.
//
// The pool makes a spare only to replace one netns() took (plus
// nsPoolAhead to start with): namespaces made in the background while the
// script has moved on to links would compete with it for the kernel's
// locks, and those left unused at the end are wasted work for the
// kernel's cleanup. Spares are anonymous: nothing names them and they die
// with the process, so a run killed at any point leaks none.

const nsPoolAhead = 2

type nsPool struct {
	spares  chan *Netns
	credits chan struct{}
	stop    chan struct{}
	once    sync.Once
}

// startNsPool starts a pool that makes ahead spares before the next take.
func startNsPool(ahead int) *nsPool {
	p := &nsPool{
		spares:  make(chan *Netns, nsPoolAhead),
		credits: make(chan struct{}, nsPoolAhead),
		stop:    make(chan struct{}),
	}
	for range ahead {
		p.credits <- struct{}{}
	}
	go p.run()
	return p
}

func (p *nsPool) run() {
	for {
		// Stop wins over a credit waiting at the same time.
		select {
		case <-p.stop:
			p.drain()
			return
		default:
		}
		select {
		case <-p.stop:
			p.drain()
			return
		case <-p.credits:
		}
		ns, err := NewAnonNetns()
		if err != nil {
			return // netns() creates its own and reports the error
		}
		select {
		case p.spares <- ns:
		case <-p.stop:
			ns.Close()
			p.drain()
			return
		}
	}
}

// take returns a spare namespace, or nil if none is ready. A spare taken
// is replaced; when none is ready the one being made serves the next
// call, and the caller makes its own meanwhile, so both CPUs make
// namespaces and at most the replacement of the last spare is wasted.
func (p *nsPool) take() *Netns {
	if p == nil {
		return nil
	}
	select {
	case <-p.stop:
		return nil // closed: what is left is the pool's to close
	default:
	}
	select {
	case ns := <-p.spares:
		select {
		case p.credits <- struct{}{}:
		default:
		}
		return ns
	default:
		return nil
	}
}

// close stops the pool. A spare being made is closed by the pool's
// goroutine when it is done, without making close wait for it.
func (p *nsPool) close() {
	if p == nil {
		return
	}
	p.once.Do(func() {
		close(p.stop)
		p.drain()
	})
}

// drain closes the spares left. Both close and the goroutine call it, so
// a spare handed over while close runs is closed all the same.
func (p *nsPool) drain() {
	for {
		select {
		case ns := <-p.spares:
			ns.Close()
		default:
			return
		}
	}
}

// Prefetch makes a namespace in the background before there is a lab to
// ask for one. Nearly every lab creates namespaces, and creating one is
// the kernel's most expensive step of a small lab: a process about to
// run a script starts a Prefetch first thing, so that the namespace is
// made on another CPU while it reads its flags, opens the journal and
// compiles the script. Pass it to NewLab in LabConfig.Prefetch; Close it
// if no lab takes it over.
type Prefetch struct {
	pool *nsPool
}

// StartPrefetch starts making one anonymous namespace in the background.
func StartPrefetch() *Prefetch {
	return &Prefetch{pool: startNsPool(1)}
}

// Close stops the prefetch and closes what it made, unless a lab has
// taken it over. It does not wait for a namespace being made.
func (p *Prefetch) Close() {
	if p != nil && p.pool != nil {
		p.pool.close()
		p.pool = nil
	}
}
