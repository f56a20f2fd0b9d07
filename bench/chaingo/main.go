// Command chaingo builds the lab of scripts/bench/chain.star by hand, the
// way a careful engineer would with vishvananda/netlink, serially: N+1
// named namespaces, N veth pairs created directly in place, /30 addresses,
// routes end to end, forwarding on, one ping (TTL 255) from the first
// namespace to the farthest one a packet can reach, then everything
// deleted. It is the baseline nkscript's benchmark compares with.
//
// Like nkscript, it keeps the descriptors of the namespaces it used last
// open (a namespace file and a netlink socket each, for at most
// handleCacheMax namespaces) and reopens the others by name on demand,
// so that a chain of 10,000 namespaces does not run out of descriptors.
//
//	chaingo N
//
// With $CHAINGO_PROFILE set it prints the wall time of each phase on
// stderr, to set next to `nkscript --profile`.
package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

func addr(i int) net.IP { return net.IPv4(10, byte(i>>16), byte(i>>8), byte(i)) }

func prefix(i int) *net.IPNet { return &net.IPNet{IP: addr(i), Mask: net.CIDRMask(30, 32)} }

func main() {
	n := 10
	if len(os.Args) > 1 {
		var err error
		if n, err = strconv.Atoi(os.Args[1]); err != nil || n < 1 {
			fmt.Fprintln(os.Stderr, "usage: chaingo N")
			os.Exit(2)
		}
	}
	if err := run(n); err != nil {
		fmt.Fprintln(os.Stderr, "chaingo:", err)
		os.Exit(1)
	}
}

func run(n int) (err error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()

	names := make([]string, n+1)
	c := newHandleCache(names)
	defer func() {
		t := time.Now()
		defer func() {
			if os.Getenv("CHAINGO_PROFILE") != "" {
				fmt.Fprintf(os.Stderr, "teardown %v\n", time.Since(t))
			}
		}()
		netns.Set(orig)
		c.closeAll()
		for _, name := range names {
			if name != "" {
				if derr := netns.DeleteNamed(name); derr != nil {
					err = errors.Join(err, derr)
				}
			}
		}
	}()
	mark := phaseTimer()
	for i := range names {
		name := fmt.Sprintf("gob%d", i)
		ns, err := netns.NewNamed(name)
		if err != nil {
			return err
		}
		names[i] = name
		h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
		if err != nil {
			ns.Close()
			return err
		}
		c.put(i, ns, h)
		lo, err := h.LinkByName("lo")
		if err != nil {
			return err
		}
		if err := h.LinkSetUp(lo); err != nil {
			return err
		}
	}
	if err := netns.Set(orig); err != nil {
		return err
	}
	mark("namespaces")
	nss := func(i int) netns.NsHandle { return c.get(i).ns }
	nls := func(i int) *netlink.Handle { return c.get(i).nl }
	for i := 1; i <= n; i++ {
		veth := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: fmt.Sprintf("r%d", i)},
			PeerName:      fmt.Sprintf("l%d", i),
			PeerNamespace: netlink.NsFd(nss(i)),
		}
		if err := nls(i - 1).LinkAdd(veth); err != nil {
			return fmt.Errorf("veth %d: %w", i, err)
		}
		for _, end := range []struct {
			h    *netlink.Handle
			name string
			a    int
		}{{nls(i - 1), veth.Name, 4*i + 1}, {nls(i), veth.PeerName, 4*i + 2}} {
			l, err := end.h.LinkByName(end.name)
			if err != nil {
				return err
			}
			if err := end.h.AddrAdd(l, &netlink.Addr{IPNet: prefix(end.a)}); err != nil {
				return err
			}
			if err := end.h.LinkSetUp(l); err != nil {
				return err
			}
		}
	}
	mark("links+addresses")
	procs, err := startProcThread()
	if err != nil {
		return err
	}
	sysctl := func(i int, key, value string) error {
		return procs.write(nss(i), orig, filepath.Join("/proc/sys", key), value)
	}
	route := func(i int, dst *net.IPNet, gw int) error {
		return nls(i).RouteAdd(&netlink.Route{Dst: dst, Gw: addr(gw)})
	}
	for i := range n {
		if i > 0 {
			if err := sysctl(i, "net/ipv4/ip_forward", "1"); err != nil {
				return err
			}
		}
		if i > 1 {
			if err := route(i, &net.IPNet{IP: addr(4), Mask: net.CIDRMask(30, 32)}, 4*i+1); err != nil {
				return err
			}
		}
		if err := route(i, nil, 4*(i+1)+2); err != nil {
			return err
		}
	}
	if err := route(n, nil, 4*n+1); err != nil {
		return err
	}
	far := min(n, 255)
	if err := sysctl(far, "net/ipv4/ip_default_ttl", "255"); err != nil {
		return err
	}
	mark("routes+sysctls")
	// Like nkscript, wait for the links to be up before the first packet:
	// otherwise an ARP request sent too early costs a one-second retry.
	for i := 1; i <= n; i++ {
		for _, end := range []struct {
			h    *netlink.Handle
			name string
		}{{nls(i - 1), fmt.Sprintf("r%d", i)}, {nls(i), fmt.Sprintf("l%d", i)}} {
			for deadline := time.Now().Add(5 * time.Second); ; {
				l, err := end.h.LinkByName(end.name)
				if err != nil {
					return err
				}
				if l.Attrs().OperState == netlink.OperUp {
					break
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("%s is not up", end.name)
				}
				time.Sleep(100 * time.Microsecond)
			}
		}
	}
	mark("wait up")
	defer mark("ping")
	return ping(nss(0), orig, addr(4*far+2))
}

// ping sends one echo request with TTL 255 from inside ns and waits up to
// five seconds for the reply.
func ping(ns, orig netns.NsHandle, dst net.IP) error {
	if err := netns.Set(ns); err != nil {
		return err
	}
	c, err := icmp.ListenPacket("ip4:1", "0.0.0.0")
	netns.Set(orig)
	if err != nil {
		return err
	}
	defer c.Close()
	c.IPv4PacketConn().SetTTL(255)
	msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: os.Getpid() & 0xffff, Seq: 1, Data: []byte("chaingo")}}
	b, _ := msg.Marshal(nil)
	if _, err := c.WriteTo(b, &net.IPAddr{IP: dst}); err != nil {
		return err
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	for {
		k, from, err := c.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("ping %s: %w", dst, err)
		}
		m, err := icmp.ParseMessage(1, buf[:k])
		if err == nil && m.Type == ipv4.ICMPTypeEchoReply && from.String() == dst.String() {
			return nil
		}
	}
}

// phaseTimer returns a function that, with $CHAINGO_PROFILE set, prints
// the time since its previous call (for comparing with nkscript --profile).
func phaseTimer() func(string) {
	t := time.Now()
	on := os.Getenv("CHAINGO_PROFILE") != ""
	return func(phase string) {
		if on {
			fmt.Fprintf(os.Stderr, "%s %v\n", phase, time.Since(t))
		}
		t = time.Now()
	}
}

// procThread writes sysctls as nkscript does (datapath/nsquick.go): on
// one thread with a mount namespace and a procfs of its own, replaced
// every procRemountAfter namespaces, because a lookup under /proc/sys/net
// walks the dentries of every namespace whose /proc/sys/net that procfs
// has looked up (proc_sys_compare), which at N=10,000 costs milliseconds.
type procThread struct {
	reqs chan func()
}

const procRemountAfter = 128

func startProcThread() (*procThread, error) {
	p := &procThread{reqs: make(chan func())}
	ready := make(chan error)
	go func() {
		runtime.LockOSThread() // for good: the thread ends with the goroutine
		err := unix.Unshare(unix.CLONE_FS | unix.CLONE_NEWNS)
		if err == nil {
			err = unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, "")
		}
		if err == nil {
			unix.Unmount("/run/netns", unix.MNT_DETACH)
			err = unix.Mount("proc", "/proc", "proc", 0, "")
		}
		ready <- err
		if err != nil {
			return
		}
		for f := range p.reqs {
			f()
		}
	}()
	return p, <-ready
}

var procUses int

// write writes value to path inside ns, from the proc thread.
func (p *procThread) write(ns, orig netns.NsHandle, path, value string) error {
	done := make(chan error)
	p.reqs <- func() {
		if procUses++; procUses%procRemountAfter == 0 {
			unix.Unmount("/proc", unix.MNT_DETACH)
			if err := unix.Mount("proc", "/proc", "proc", 0, ""); err != nil {
				done <- err
				return
			}
		}
		if err := netns.Set(ns); err != nil {
			done <- err
			return
		}
		err := os.WriteFile(path, []byte(value), 0)
		if serr := netns.Set(orig); serr != nil {
			err = errors.Join(err, serr)
		}
		done <- err
	}
	return <-done
}

// handleCacheMax is how many namespaces' descriptors chaingo keeps open.
const handleCacheMax = 64

// nsHandles are the open descriptors of one namespace.
type nsHandles struct {
	i  int // the namespace's index
	ns netns.NsHandle
	nl *netlink.Handle
}

// handleCache keeps the descriptors of the namespaces used last, most
// recent first, and opens the others' by name on demand. It errs by
// panicking: a namespace chaingo created that cannot be opened is a bug.
type handleCache struct {
	names []string
	lru   []*nsHandles
}

func newHandleCache(names []string) *handleCache { return &handleCache{names: names} }

// get returns namespace i's handles, valid until the next
// handleCacheMax-1 other namespaces are used.
func (c *handleCache) get(i int) *nsHandles {
	for k, h := range c.lru {
		if h.i == i {
			copy(c.lru[1:k+1], c.lru[:k])
			c.lru[0] = h
			return h
		}
	}
	ns, err := netns.GetFromName(c.names[i])
	if err != nil {
		panic(err)
	}
	nl, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		panic(err)
	}
	return c.put(i, ns, nl)
}

// put adds namespace i's handles, closing the least recently used ones
// beyond the bound.
func (c *handleCache) put(i int, ns netns.NsHandle, nl *netlink.Handle) *nsHandles {
	h := &nsHandles{i: i, ns: ns, nl: nl}
	c.lru = append([]*nsHandles{h}, c.lru...)
	if len(c.lru) > handleCacheMax {
		old := c.lru[handleCacheMax]
		old.nl.Close()
		old.ns.Close()
		c.lru = c.lru[:handleCacheMax]
	}
	return h
}

func (c *handleCache) closeAll() {
	for _, h := range c.lru {
		h.nl.Close()
		h.ns.Close()
	}
	c.lru = nil
}
