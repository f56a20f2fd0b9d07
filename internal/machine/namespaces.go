package machine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetnsDir is where named network namespaces are mounted.
const NetnsDir = "/run/netns"

// nsRef is an open network namespace whose contents a snapshot lists.
type nsRef struct {
	label string
	h     netns.NsHandle
	nl    *netlink.Handle
	// host says its sysctls are listed.
	host bool
}

func (n *nsRef) close() {
	if n.nl != nil {
		n.nl.Close()
	}
	n.h.Close()
}

// do runs fn on an OS thread inside n: files under /proc/sys/net it
// opens and ifindexes it passes to the kernel are n's. The thread goes
// back to the scheduler only if it could be switched back.
func (n *nsRef) do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("current namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(n.h); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter namespace %s: %w", n.label, err)
			return
		}
		err = fn()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// openNs opens the namespace at path as label, or returns nil if it is
// gone or not a namespace (a mount point left without its mount).
func openNs(path, label string) (*nsRef, uint64, error) {
	h, err := netns.GetFromPath(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("open namespace %s: %w", path, err)
	}
	var fs unix.Statfs_t
	var st unix.Stat_t
	if unix.Fstatfs(int(h), &fs) != nil || fs.Type != unix.NSFS_MAGIC || unix.Fstat(int(h), &st) != nil {
		h.Close()
		return nil, 0, nil
	}
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		h.Close()
		return nil, 0, fmt.Errorf("netlink in namespace %s: %w", label, err)
	}
	return &nsRef{label: label, h: h, nl: nl}, st.Ino, nil
}

// namespaces lists the named namespaces (and, machine-wide, every
// namespace any process or mount holds) and opens those whose contents
// are listed.
func (c *collector) namespaces() error {
	if !c.opts.Local {
		held, err := heldNetns()
		if err != nil {
			return err
		}
		for _, ino := range held {
			c.add("netns %d", ino)
		}
		self, _, err := openNs("/proc/self/ns/net", HostLabel)
		if err != nil || self == nil {
			return fmt.Errorf("open own namespace: %v", err)
		}
		self.host = true
		c.nss = append(c.nss, self)
	}
	ents, err := os.ReadDir(NetnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	found := map[string]bool{}
	for _, e := range ents {
		name := e.Name()
		host := slices.Contains(c.opts.Hosts, name)
		if !host && c.opts.Namespaces != nil && !c.opts.Namespaces(name) {
			continue
		}
		n, ino, err := openNs(filepath.Join(NetnsDir, name), name)
		if err != nil {
			return err
		}
		if n == nil {
			if fi, err := os.Lstat(filepath.Join(NetnsDir, name)); err == nil && fi.Mode()&os.ModeSymlink != 0 {
				c.add("netns-name %s dangling", name)
			}
			continue
		}
		found[name] = true
		n.host = host
		c.nss = append(c.nss, n)
		c.add("netns-name %s %d", name, ino)
		if !c.opts.Local {
			c.add("netns %d", ino)
		}
	}
	for _, h := range c.opts.Hosts {
		if !found[h] {
			return fmt.Errorf("host namespace %s: not in %s", h, NetnsDir)
		}
	}
	return nil
}

// heldNetns returns the inodes of the network namespaces that processes
// other than this one are in or hold open, and that mounts visible here
// hold.
func heldNetns() ([]uint64, error) {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	self := strconv.Itoa(os.Getpid())
	set := map[uint64]bool{}
	note := func(link string) {
		if ino, ok := netnsInode(link); ok {
			set[ino] = true
		}
	}
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil || p.Name() == self {
			continue
		}
		dir := filepath.Join("/proc", p.Name())
		var links []string
		tasks, _ := filepath.Glob(dir + "/task/*/ns/net")
		fds, _ := filepath.Glob(dir + "/fd/*")
		links = append(append(append(links, dir+"/ns/net"), tasks...), fds...)
		for _, l := range links {
			if target, err := os.Readlink(l); err == nil {
				note(target)
			}
		}
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	for _, m := range parseMountinfo(string(mounts)) {
		if m.fstype == "nsfs" {
			note(m.root)
		}
	}
	inos := make([]uint64, 0, len(set))
	for ino := range set {
		inos = append(inos, ino)
	}
	slices.Sort(inos)
	return inos, nil
}

// netnsInode parses "net:[4026531840]".
func netnsInode(s string) (uint64, bool) {
	rest, ok := strings.CutPrefix(s, "net:[")
	if !ok {
		return 0, false
	}
	ino, err := strconv.ParseUint(strings.TrimSuffix(rest, "]"), 10, 64)
	return ino, err == nil
}

// mount is one line of /proc/self/mountinfo.
type mount struct {
	root, point, fstype string
}

func parseMountinfo(text string) []mount {
	var out []mount
	for _, l := range strings.Split(text, "\n") {
		f := strings.Fields(l)
		sep := slices.Index(f, "-")
		if sep < 5 || sep+1 >= len(f) {
			continue
		}
		out = append(out, mount{root: unescapeMount(f[3]), point: unescapeMount(f[4]), fstype: f[sep+1]})
	}
	return out
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
