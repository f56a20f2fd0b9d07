package datapath

import (
	"container/list"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetnsDir is where named network namespaces are bind-mounted, as
// iproute2 does, so that `ip netns exec NAME` sees them.
const NetnsDir = "/run/netns"

// Netns is a handle to a network namespace. The host namespace is the one
// nkscript started in; every other Netns was created by a Lab.
//
// A named namespace's descriptors are opened on demand and cached (see
// nsHandles): a lab holds a bounded number of them however many
// namespaces it has.
type Netns struct {
	name  string // "host" for the namespace nkscript started in
	path  string // its name under NetnsDir, a link to mount; "" for the host
	mount string // its bind mount in the lab's tree (see NetnsTreeDir)
	id    NsID
	host  bool
	kern  bool        // a kernel namespace (not a stand-in of the recorder)
	gone  atomic.Bool // deleted by the script (Lab.DeleteNetns)

	// Under nsCache.mu: the open handles, if any; whether they are held
	// until Close (host, anonymous, Handle or Fd called) rather than
	// cached; n's place in the cache; whether Close has run.
	handles *nsHandles
	held    bool
	lruElem *list.Element
	closed  bool
}

// NsID identifies a namespace by the device and inode of its nsfs file.
// Names can be reused; an NsID cannot while the namespace exists.
type NsID struct {
	Dev uint64 `json:"dev"`
	Ino uint64 `json:"ino"`
}

func (id NsID) String() string { return fmt.Sprintf("%d:%d", id.Dev, id.Ino) }

func statNs(f *os.File) (NsID, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return NsID{}, err
	}
	return NsID{Dev: uint64(st.Dev), Ino: st.Ino}, nil
}

// statNsPath returns the identity of the namespace file at path.
func statNsPath(path string) (NsID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return NsID{}, err
	}
	return NsID{Dev: uint64(st.Dev), Ino: st.Ino}, nil
}

// hostNetnsFile opens the namespace the process started in, at its first
// use. Every thread of the process is in that namespace, except while
// lockedIn runs a function in another on a locked thread; lockedIn calls
// hostNetnsFile before it moves its thread, so the first call, on
// whichever thread it runs, opens the host namespace.
var hostNetnsFile = sync.OnceValues(func() (*os.File, error) {
	return os.Open("/proc/thread-self/ns/net")
})

// HostNetns returns a handle to the network namespace the process started
// in. The caller must Close it.
func HostNetns() (*Netns, error) {
	start, err := hostNetnsFile()
	if err != nil {
		return nil, fmt.Errorf("open host netns: %w", err)
	}
	fd, err := unix.FcntlInt(start.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open host netns: %w", err)
	}
	return newNetns("host", "", os.NewFile(uintptr(fd), "host-netns"), true)
}

// newNetns makes a handle on the namespace f refers to, holding f until
// Close.
func newNetns(name, path string, f *os.File, host bool) (*Netns, error) {
	id, err := statNs(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat netns %s: %w", name, err)
	}
	n := &Netns{name: name, path: path, id: id, host: host, kern: true, held: true}
	n.handles = &nsHandles{file: f, refs: 1}
	return n, nil
}

// Name is the namespace's name: "host" or the name given to Lab.Netns.
func (n *Netns) Name() string { return n.name }

// Path is the namespace's name under NetnsDir (a symbolic link to its
// mount), or "" for the host.
func (n *Netns) Path() string { return n.path }

// ID is the namespace's identity.
func (n *Netns) ID() NsID { return n.id }

// IsHost reports whether n is the namespace nkscript started in.
func (n *Netns) IsHost() bool { return n.host }

// Handle is a netlink handle whose socket lives in the namespace, held
// open until Close (nil if it cannot be opened). The lab's own
// operations take theirs from a bounded cache instead (withNetlink).
func (n *Netns) Handle() *netlink.Handle {
	h, err := n.hold()
	if err != nil {
		return nil
	}
	nl, _ := h.netlink(n.name)
	return nl
}

// Fd is a file descriptor referring to the namespace, held open until
// Close (-1 if it cannot be opened).
func (n *Netns) Fd() int {
	h, err := n.hold()
	if err != nil {
		return -1
	}
	return h.fd()
}

// Close releases the namespace's handles. It does not delete the
// namespace.
func (n *Netns) Close() error { return n.dropHandles() }

// Do runs fn on an OS thread that is inside the namespace: sockets fn
// creates belong to the namespace, and so do ifindexes it resolves. The
// thread is a new goroutine's, locked for the duration; if it cannot be
// switched back to the host namespace, it is discarded instead of being
// reused. A panic in fn is re-raised in the caller.
func (n *Netns) Do(fn func() error) error {
	if n.host {
		// Every thread of the process stays in the host namespace: Do
		// never hands a thread back to the scheduler in another one.
		return fn()
	}
	return onNewThread(n, fn)
}

// createNamedNetnsFrom creates a network namespace, bind-mounts it in
// the lab's mount tree (see NetnsTreeDir) and names it NetnsDir/name with
// a link to the mount, as `ip netns add` names one with a mount. The name
// must not exist: an existing namespace is never adopted. The new
// namespace's loopback is up. A spare, an anonymous namespace made earlier
// (see nsPool), is named instead of creating one; it is closed if naming
// it fails.
//
// record journals the namespace before it is mounted, so that a process
// killed at any point leaves either nothing, or what the journal names. If
// record fails, nothing is left behind.
func createNamedNetnsFrom(name, tree string, spare *Netns, record func(Record) error) (*Netns, error) {
	f, id, err := spareOrNew(name, spare)
	if err != nil {
		return nil, err
	}
	// Closing the spare closes f and its netlink handle.
	closeF := func() {
		if spare != nil {
			spare.Close()
		} else {
			f.Close()
		}
	}
	path, mount := filepath.Join(NetnsDir, name), filepath.Join(tree, name)
	if err := record(&NetnsRecord{Name: name, Path: path, Mount: mount, NS: id}); err != nil {
		closeF()
		return nil, err
	}
	if err := mountNetns(f, name, mount); err != nil {
		closeF()
		return nil, err
	}
	if err := linkNetnsName(mount, path); err != nil {
		closeF()
		unmountNetns(mount)
		if errors.Is(err, os.ErrExist) {
			return nil, exists("netns %q exists already and is not this run's; pick another name (nkscript never adopts an existing namespace), or delete it with `ip netns del %s` if it is a leftover of yours", name, name)
		}
		return nil, fmt.Errorf("create netns %q: %w", name, err)
	}
	if spare != nil {
		spare.name, spare.path, spare.mount = name, path, mount
		// The mount keeps the namespace now: its handles may go.
		spare.unhold()
		return spare, nil
	}
	ns, err := newNetns(name, path, f, false)
	if err == nil {
		ns.mount = mount
		err = ns.setLoopbackUp()
	}
	if err != nil {
		if ns != nil {
			ns.Close()
		}
		unlinkNetnsName(mount, path)
		unmountNetns(mount)
		return nil, err
	}
	ns.unhold()
	return ns, nil
}

// spareOrNew returns the file and identity of spare, or of a new
// anonymous namespace if spare is nil. The namespace dies with the
// process until it is mounted, so nothing leaks before the journal knows
// about it.
func spareOrNew(name string, spare *Netns) (*os.File, NsID, error) {
	if spare != nil {
		return spare.handles.file, spare.id, nil
	}
	f, err := unshareNetns()
	if err != nil {
		return nil, NsID{}, fmt.Errorf("create netns %q: %w", name, err)
	}
	id, err := statNs(f)
	if err != nil {
		f.Close()
		return nil, NsID{}, fmt.Errorf("create netns %q: %w", name, err)
	}
	return f, id, nil
}

// mountNetns bind-mounts the namespace f refers to at mount, a new file.
func mountNetns(f *os.File, name, mount string) error {
	mp, err := os.OpenFile(mount, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("create netns %q: %w", name, err)
	}
	mp.Close()
	if err := unix.Mount(fmt.Sprintf("/proc/self/fd/%d", f.Fd()), mount, "none", unix.MS_BIND, ""); err != nil {
		os.Remove(mount)
		return fmt.Errorf("create netns %q: mount: %w", name, err)
	}
	return nil
}

// unshareNetns creates a network namespace on a locked thread and
// returns a file referring to it; the namespace lives while the file is
// open (or mounted).
func unshareNetns() (*os.File, error) {
	var f *os.File
	err := runLocked(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare: %w", err)
		}
		fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open new netns: %w", err)
		}
		f = os.NewFile(uintptr(fd), "netns")
		return nil
	})
	return f, err
}

// runLocked runs fn on a locked OS thread that fn may move to another
// namespace, and then moves the thread back to the host namespace, as
// Do does.
func runLocked(fn func() error) error { return onNewThread(nil, fn) }

// onNewThread runs lockedIn(n, fn) on a new goroutine and waits for it. A
// new goroutine's thread is in the host namespace (no thread is ever
// handed back in another), and one that cannot be moved back stays
// locked and ends with the goroutine, so no other goroutine ever runs in
// a namespace fn left it in. (Go never discards the main thread: a
// goroutine that happened to run on it would otherwise leave the
// process's /proc/self/ns/net pointing into fn's namespace.) A panic in
// fn is re-raised in the caller.
func onNewThread(n *Netns, fn func() error) error {
	type result struct {
		err   error
		panic any
	}
	done := make(chan result, 1)
	go func() {
		var res result
		defer func() {
			res.panic = recover()
			done <- res
		}()
		res.err = lockedIn(n, fn)
	}()
	res := <-done
	if res.panic != nil {
		panic(res.panic)
	}
	return res.err
}

// lockedIn runs fn on the calling goroutine's thread, locked for the
// call, inside n (with n nil: where fn moves it, see unshareNetns), and
// moves the thread back to the host namespace after, also when fn
// panics. If the thread cannot be moved back, it stays locked to the
// calling goroutine for good, so that no other goroutine runs on it, and
// the error wraps errThreadStuck.
func lockedIn(n *Netns, fn func() error) error {
	if n == nil {
		return lockedInFd("", -1, fn)
	}
	h, err := n.acquire()
	if err != nil {
		return fmt.Errorf("enter netns %s: %w", n.name, err)
	}
	defer n.release(h)
	return lockedInFd(n.name, h.fd(), fn)
}

// lockedInFd is lockedIn for the namespace fd refers to (-1: none), named
// name in errors.
func lockedInFd(name string, fd int, fn func() error) (err error) {
	host, err := hostNetnsFile()
	if err != nil {
		return fmt.Errorf("open host netns: %w", err)
	}
	runtime.LockOSThread()
	if fd >= 0 {
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			return fmt.Errorf("enter netns %s: %w", name, err)
		}
	}
	defer func() {
		if rerr := unix.Setns(int(host.Fd()), unix.CLONE_NEWNET); rerr != nil {
			err = errors.Join(err, fmt.Errorf("restore netns: %w: %w", errThreadStuck, rerr))
			return
		}
		runtime.UnlockOSThread()
	}()
	return fn()
}

// unmountNetns removes a namespace's bind mount at path and the file it
// was mounted on; the kernel frees the namespace once nothing else holds
// it.
func unmountNetns(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

// NewAnonNetns creates a network namespace that has no name and lives only
// as long as the returned handle is open. Tests use it for isolation.
func NewAnonNetns() (*Netns, error) {
	f, err := unshareNetns()
	if err != nil {
		return nil, fmt.Errorf("create anonymous netns: %w", err)
	}
	ns, err := newNetns("anon", "", f, false)
	if err != nil {
		return nil, err
	}
	if err := ns.setLoopbackUp(); err != nil {
		ns.Close()
		return nil, err
	}
	return ns, nil
}

func (n *Netns) setLoopbackUp() error {
	// A new namespace's loopback is always ifindex 1 (LOOPBACK_IFINDEX):
	// no need to look it up first.
	lo := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: loopbackIfindex, Name: "lo"}}
	if err := nlExec(n, (*netlink.Handle).LinkSetUp, netlink.Link(lo)); err != nil {
		return fmt.Errorf("netns %s: set lo up: %w", n.name, err)
	}
	return nil
}

// loopbackIfindex is the kernel's LOOPBACK_IFINDEX.
const loopbackIfindex = 1

// deleteOutwardLinks deletes the devices in the namespace at path (which
// must still be id) whose other end is in one of the namespaces outside:
// veth and netkit pairs that reach out of it. Unmounting the namespace
// takes them too, but only when the kernel frees it, later and
// asynchronously: a run killed between creating a pair and journaling its
// outer end would leave that end visible for a while after `nkscript
// cleanup`. Every device in a namespace the run created is the run's.
func deleteOutwardLinks(path string, id NsID, outside map[NsID]*Netns) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	if got, err := statNs(f); err != nil || got != id {
		return fmt.Errorf("%s is no longer the recorded namespace", path)
	}
	h, err := netlink.NewHandleAt(netns.NsHandle(int(f.Fd())))
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", path, err)
	}
	defer h.Close()
	// Listing the links first makes the kernel number the namespaces
	// their other ends are in, so the ids asked for next exist.
	links, err := h.LinkList()
	if err != nil {
		return fmt.Errorf("list links in %s: %w", path, err)
	}
	ids := map[int]bool{}
	for _, ns := range outside {
		ns.withFd(func(fd int) error {
			if nsid, err := h.GetNetNsIdByFd(fd); err == nil && nsid >= 0 {
				ids[nsid] = true
			}
			return nil
		})
	}
	var errs []error
	for _, k := range links {
		if nsid := k.Attrs().NetNsID; nsid < 0 || !ids[nsid] {
			continue
		}
		if err := h.LinkDel(k); err != nil && !isNoSuchObject(err) {
			errs = append(errs, fmt.Errorf("delete link %s: %w", k.Attrs().Name, err))
		}
	}
	return errors.Join(errs...)
}
