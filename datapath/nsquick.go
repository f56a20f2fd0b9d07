package datapath

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// errThreadStuck wraps the error of a thread that could not be switched
// back to the host namespace.
var errThreadStuck = fmt.Errorf("thread stuck in another network namespace")

// doQuick runs fn inside n on an OS thread switched into n for the call
// and back to the host namespace after (lockedIn). It is for short file
// operations under /proc (sysctls, /proc/net tables), where Do's fresh
// goroutine and thread hand-off cost more than the operation
// (BenchmarkEnterNetns). fn runs on the proc worker's thread (see
// procWorker), or, if the worker cannot be set up, on the caller's own
// thread. fn must not start goroutines that expect to be in n, nor call
// doQuick. A panic in fn is re-raised in the caller.
//
// If the thread cannot be switched back, it stays locked for good, so no
// other goroutine ever runs on it, and the error wraps errThreadStuck:
// the caller ends the run.
func (n *Netns) doQuick(fn func() error) error {
	if n.host {
		return fn()
	}
	if w := theProcWorker(); w != nil {
		if err, ok := w.call(n, fn); ok {
			return err
		}
	}
	return lockedIn(n, fn)
}

// Every path lookup under /proc/sys/net walks a list as long as the
// number of namespaces whose /proc/sys/net this procfs has looked up
// (the dentries of their "net" directories share a name and a parent, and
// the kernel tells them apart one by one, proc_sys_compare): in a lab of
// 10,000 namespaces a sysctl cost up to 1 ms, and the whole machine's
// /proc/sys lookups slowed down with it. The proc worker is one thread
// with a mount namespace of its own, where a procfs of its own is
// mounted over /proc and replaced by a fresh one after procRemountAfter
// namespaces, so that the list stays short. Its mounts are private to it
// and go with the process, however it ends.
type procWorker struct {
	reqs chan procReq
	// Owned by the worker's goroutine.
	seen    map[NsID]bool // namespaces looked up through the current mount
	mounted bool          // a procfs of the worker's own is on /proc
	broken  bool          // the thread is stuck: callers run fn themselves
}

type procReq struct {
	n    *Netns
	fd   int // refers to n, pinned by the caller
	fn   func() error
	done chan procResult
}

type procResult struct {
	err    error
	panic  any
	broken bool
}

// procRemountAfter is how many namespaces one procfs mount of the worker
// serves before it is replaced.
const procRemountAfter = 128

// theProcWorker starts the proc worker at its first use; nil if it cannot
// be set up (doQuick then runs on the caller's thread).
var theProcWorker = sync.OnceValue(startProcWorker)

func startProcWorker() *procWorker {
	if _, err := hostNetnsFile(); err != nil {
		return nil
	}
	w := &procWorker{reqs: make(chan procReq), seen: map[NsID]bool{}}
	ready := make(chan error)
	go w.run(ready)
	if err := <-ready; err != nil {
		return nil
	}
	return w
}

// run sets the worker's thread up and serves requests. The thread stays
// locked to the goroutine for good: Go starts no other thread from it
// and runs no other goroutine on it, and if setting it up fails the
// goroutine ends and takes the thread with it.
func (w *procWorker) run(ready chan<- error) {
	runtime.LockOSThread()
	if unix.Gettid() == unix.Getpid() {
		// The main thread: /proc/self shows its namespaces, so it must
		// stay in the host's. Holding it locked, start the worker again:
		// its goroutine cannot run here, so it gets another thread.
		inner := make(chan error)
		go w.run(inner)
		err := <-inner
		runtime.UnlockOSThread()
		ready <- err
		return
	}
	if err := unix.Unshare(unix.CLONE_FS | unix.CLONE_NEWNS); err != nil {
		ready <- err
		return
	}
	// The worker's copy of the mounts is private: it receives none of
	// the host's later mounts, so it never holds a namespace that any
	// process mounts under NetnsDir, and it sends none back. The copies
	// of the namespaces mounted now are dropped, so that none of them
	// lives on here once the host unmounts it.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		ready <- err
		return
	}
	if err := dropNetnsMounts(); err != nil {
		ready <- err
		return
	}
	if err := w.remount(); err != nil {
		ready <- err
		return
	}
	ready <- nil
	for r := range w.reqs {
		r.done <- w.serve(r)
	}
}

// remount puts a fresh procfs on /proc in the worker's mount namespace.
func (w *procWorker) remount() error {
	if w.mounted {
		if err := unix.Unmount("/proc", unix.MNT_DETACH); err != nil {
			return err
		}
		w.mounted = false
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return err
	}
	w.mounted = true
	clear(w.seen)
	return nil
}

func (w *procWorker) serve(r procReq) (res procResult) {
	if w.broken {
		return procResult{broken: true}
	}
	if !w.seen[r.n.id] {
		if len(w.seen) >= procRemountAfter {
			if err := w.remount(); err != nil && !w.mounted {
				// No procfs of its own any more: /proc is the process's.
				w.broken = true
				return procResult{broken: true}
			}
		}
		w.seen[r.n.id] = true
	}
	defer func() {
		if p := recover(); p != nil {
			res.panic = p
		}
	}()
	res.err = lockedInFd(r.n.name, r.fd, r.fn)
	if errors.Is(res.err, errThreadStuck) {
		w.broken = true
	}
	return res
}

// call runs fn in n on the worker's thread; ok is false if the worker is
// broken and fn did not run.
func (w *procWorker) call(n *Netns, fn func() error) (err error, ok bool) {
	// Opened here: the worker sees the mounts of its own namespace.
	h, err := n.acquire()
	if err != nil {
		return fmt.Errorf("enter netns %s: %w", n.name, err), true
	}
	defer n.release(h)
	done := make(chan procResult, 1)
	w.reqs <- procReq{n: n, fd: h.fd(), fn: fn, done: done}
	res := <-done
	if res.panic != nil {
		panic(res.panic)
	}
	return res.err, !res.broken
}

// procRead reads a small file under /proc with plain system calls: os
// would register the descriptor with the runtime's poller first, which
// costs more system calls than the read itself.
func procRead(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return out, nil
		}
		out = append(out, buf[:n]...)
	}
}

// procWrite writes a value to a file under /proc (a sysctl) in one write,
// as procRead reads.
func procWrite(path string, data []byte) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	for {
		_, err = unix.Write(fd, data)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return &os.PathError{Op: "write", Path: path, Err: err}
	}
	return nil
}

// dropNetnsMounts detaches, in the calling thread's mount namespace,
// every mount at or under NetnsDir and NetnsTreeDir: the namespaces
// mounted there, with the trees they are mounted in.
func dropNetnsMounts() error {
	points, err := mountsUnder(NetnsDir, NetnsTreeDir)
	if err != nil {
		return err
	}
	// Detaching a mount detaches what is mounted under it too, with one
	// grace period: only the topmost are detached (each of those stacked
	// on one point).
	var done []string
	for _, p := range points {
		if slices.ContainsFunc(done, func(d string) bool { return strings.HasPrefix(p, d+"/") }) {
			continue
		}
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("detach %s: %w", p, err)
		}
		done = append(done, p)
	}
	return nil
}

// mountsUnder lists the mount points of the calling thread's mount
// namespace that are at or under one of dirs, parents first.
func mountsUnder(dirs ...string) ([]string, error) {
	b, err := os.ReadFile("/proc/thread-self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && slices.ContainsFunc(dirs, func(d string) bool { return under(f[4], d) }) {
			points = append(points, f[4])
		}
	}
	return points, nil
}

// under reports whether path is dir or a path under it.
func under(path, dir string) bool { return path == dir || strings.HasPrefix(path, dir+"/") }
