package datapath

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// A lab's namespaces live as long as their bind mounts. Unmounting one
// waits for an RCU grace period (namespace_unlock), and the kernel's
// cleanup of the namespaces unmounted before it, running meanwhile,
// stretches each of those waits: a lab of 10,000 namespaces spent 6 to
// 16 s unmounting them one by one, 32 at a time. Unmounting a tree takes
// every mount under it with one grace period (33 ms for 10,001).
//
// So a lab mounts its namespaces in a tree of its own, a tmpfs at
// NetnsTreeDir/<pid>-<start time>-<n>, and names each in NetnsDir with a
// symbolic link to its mount there: `ip netns exec NAME`, `ip netns list`
// and `nsenter --net=/run/netns/NAME` follow it, and `ip netns del NAME`
// unmounts the namespace and removes the link. Close removes the links,
// then detaches the tree.

// NetnsTreeDir holds the trees of mounts of the labs' namespaces.
const NetnsTreeDir = "/run/nkscript-netns"

// NetnsTreeRecord is the tree of mounts a lab's namespaces are mounted
// in, a tmpfs at Path. Path names the process that created it (its pid
// and start time), so it is the run's by the journal. Undoing it detaches
// whatever is still mounted in it, all at once.
type NetnsTreeRecord struct {
	Path string `json:"path"`
}

// Op implements Record.
func (r *NetnsTreeRecord) Op() string     { return "netns-tree" }
func (r *NetnsTreeRecord) String() string { return r.Path }

func (r *NetnsTreeRecord) undo(u *undoer) error {
	if _, err := os.Lstat(r.Path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := removeNetnsTree(r.Path); err != nil {
		return err
	}
	u.logf("removed the namespaces' mount tree %s", r.Path)
	return nil
}

// trees counts the trees this process created, for unique paths.
var trees atomic.Int64

// selfStart is the start time of this process (see processStartTime).
var selfStart = sync.OnceValues(func() (uint64, error) { return processStartTime(os.Getpid()) })

// createNetnsTree creates a lab's tree of namespace mounts and returns its
// path. record journals it before anything exists; if anything fails
// after, what was made is removed again.
func createNetnsTree(record func(Record) error) (string, error) {
	start, err := selfStart()
	if err != nil {
		return "", fmt.Errorf("create namespace mount tree: %w", err)
	}
	for _, dir := range []string{NetnsDir, NetnsTreeDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", fmt.Errorf("create %s: %w", dir, err)
		}
	}
	path := filepath.Join(NetnsTreeDir, fmt.Sprintf("%d-%d-%d", os.Getpid(), start, trees.Add(1)))
	if err := record(&NetnsTreeRecord{Path: path}); err != nil {
		return "", err
	}
	if err := os.Mkdir(path, 0o755); err != nil {
		return "", fmt.Errorf("create namespace mount tree: %w", err)
	}
	err = unix.Mount("nkscript-netns", path, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0755")
	if err == nil {
		// Shared, as iproute2 makes NetnsDir: mount namespaces copied
		// from this one later (`ip netns exec`) see namespaces mounted
		// after the copy, and see them go.
		err = unix.Mount("", path, "", unix.MS_SHARED, "")
	}
	if err != nil {
		removeNetnsTree(path)
		return "", fmt.Errorf("create namespace mount tree %s: %w", path, err)
	}
	return path, nil
}

// removeNetnsTree detaches the tmpfs at path, with every namespace still
// mounted in it, and removes its mount point.
func removeNetnsTree(path string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err == nil && st.Type == unix.TMPFS_MAGIC {
		if err := unix.Unmount(path, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("unmount namespace mount tree %s: %w", path, err)
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove namespace mount tree %s: %w", path, err)
	}
	return nil
}

// RemoveOrphanNetnsTrees removes the namespace mount trees of runs that
// are gone and hold no namespace any more: what is left of a kept or
// killed run whose namespaces were deleted by hand (`ip netns del`) and
// whose journal is gone. The tree's name says which process made it; a
// tree of a live process, or holding a namespace, is left alone. It
// returns how many it removed, saying so to log.
func RemoveOrphanNetnsTrees(log io.Writer) (int, error) {
	ents, err := os.ReadDir(NetnsTreeDir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, nil
		}
		return 0, err
	}
	removed := 0
	var errs []error
	for _, e := range ents {
		var pid int
		var start uint64
		if _, err := fmt.Sscanf(e.Name(), "%d-%d-", &pid, &start); err != nil || processAlive(pid, start) {
			continue
		}
		path := filepath.Join(NetnsTreeDir, e.Name())
		// The tree's own mount aside, anything mounted in it is a
		// namespace someone may still use.
		points, err := mountsUnder(path)
		if err != nil || slices.ContainsFunc(points, func(p string) bool { return p != path }) {
			continue
		}
		if err := removeNetnsTree(path); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(log, "removed %s, the empty namespace mount tree of run %d\n", path, pid)
		removed++
	}
	return removed, errors.Join(errs...)
}

// linkNetnsName names the namespace mounted at mount in NetnsDir: a
// symbolic link at path. It fails with an error wrapping os.ErrExist if
// the name is taken, by anyone: symlink(2) never replaces a file.
func linkNetnsName(mount, path string) error { return os.Symlink(mount, path) }

// unlinkNetnsName removes the name at path if it is still the link to
// mount, and reports whether it did.
func unlinkNetnsName(mount, path string) (bool, error) {
	if target, err := os.Readlink(path); err != nil || target != mount {
		return false, nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("remove %s: %w", path, err)
	}
	return true, nil
}
