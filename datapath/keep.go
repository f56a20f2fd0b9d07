package datapath

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// BPFFSDir is where kept labs pin their BPF links.
const BPFFSDir = "/sys/fs/bpf"

// ensureBPFFS mounts bpffs on BPFFSDir unless it is mounted; it reports
// whether it mounted it.
func ensureBPFFS() (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(BPFFSDir, &st); err == nil && st.Type == unix.BPF_FS_MAGIC {
		return false, nil
	}
	if err := unix.Mount("bpf", BPFFSDir, "bpf", 0, "mode=0700"); err != nil {
		return false, fmt.Errorf("mount bpffs on %s: %w", BPFFSDir, err)
	}
	return true, nil
}

// pinAttachments pins every live attachment under dir, journaling each
// pin by path and BPF link ID so that cleanup removes exactly those.
func (l *Lab) pinAttachments() error {
	var live []*Attachment
	for _, a := range l.attached {
		a.mu.Lock()
		if a.link != nil {
			live = append(live, a)
		}
		a.mu.Unlock()
	}
	if len(live) == 0 {
		return nil
	}
	mounted, err := ensureBPFFS()
	if err != nil {
		return err
	}
	if mounted {
		if _, err := l.journal.Append(Entry{Op: "bpffs", Path: BPFFSDir}); err != nil {
			return err
		}
	}
	dir := filepath.Join(BPFFSDir, "nkscript", filepath.Base(l.journal.path[:len(l.journal.path)-len(".journal")]))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("keep: %w", err)
	}
	for _, a := range live {
		path := filepath.Join(dir, fmt.Sprintf("link-%d", a.id))
		if _, err := l.journal.Append(Entry{Op: "pin", Path: path, LinkID: a.id}); err != nil {
			return err
		}
		a.mu.Lock()
		err := a.link.Pin(path)
		a.mu.Unlock()
		if err != nil {
			return fmt.Errorf("keep: pin %s: %w", a.prog, err)
		}
	}
	return nil
}

// cleanupPin removes a kept lab's pin if it still holds the same BPF link;
// the link (and its program) go away with the last reference.
func cleanupPin(e Entry, log io.Writer) error {
	l, err := link.LoadPinnedLink(e.Path, nil)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("pin %s: %w", e.Path, err)
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		return fmt.Errorf("pin %s: %w", e.Path, err)
	}
	if uint32(info.ID) != e.LinkID {
		fmt.Fprintf(log, "  left pin %s: it holds another BPF link now\n", e.Path)
		return nil
	}
	if err := l.Unpin(); err != nil {
		return fmt.Errorf("unpin %s: %w", e.Path, err)
	}
	fmt.Fprintf(log, "  detached BPF link %d (%s)\n", info.ID, filepath.Base(e.Path))
	// Remove the run's directory and the nkscript directory once empty.
	dir := filepath.Dir(e.Path)
	if os.Remove(dir) == nil {
		os.Remove(filepath.Dir(dir))
	}
	return nil
}

// cleanupBPFFS unmounts bpffs if a kept lab mounted it and it is empty.
func cleanupBPFFS(e Entry) error {
	ents, err := os.ReadDir(e.Path)
	if err != nil {
		return nil
	}
	for _, ent := range ents {
		// The kernel preloads these iterators into every bpffs mount.
		if n := ent.Name(); n != "maps.debug" && n != "progs.debug" {
			return nil
		}
	}
	if err := unix.Unmount(e.Path, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("unmount %s: %w", e.Path, err)
	}
	return nil
}
