package vm

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// guestState describes what runs may leave behind in a warm guest, one
// sorted line per object: named network namespaces and the trees they are
// mounted in, links of the initial
// namespace, BPF links, pins and journals.
func guestState() string {
	var lines []string
	add := func(kind, dir string) {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			lines = append(lines, kind+" "+e.Name())
		}
	}
	add("netns", "/run/netns")
	add("netns-tree", "/run/nkscript-netns")
	add("link", "/sys/class/net")
	add("journal", guestJournalDir)
	filepath.WalkDir("/sys/fs/bpf", func(path string, d fs.DirEntry, err error) error {
		if err == nil && path != "/sys/fs/bpf" {
			lines = append(lines, "pin "+path)
		}
		return nil
	})
	for _, id := range bpfLinkIDs() {
		lines = append(lines, fmt.Sprintf("bpf-link %d", id))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// bpfLinkIDs lists the IDs of the kernel's BPF links.
func bpfLinkIDs() []uint32 {
	const bpfLinkGetNextID = 31
	var ids []uint32
	var attr struct{ start, next, flags uint32 }
	for {
		_, _, errno := unix.Syscall(unix.SYS_BPF, bpfLinkGetNextID, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
		if errno != 0 {
			return ids
		}
		ids = append(ids, attr.next)
		attr.start = attr.next
	}
}

// stateDiff says how the guestState after differs from before: "" if not.
func stateDiff(before, after string) string {
	was := map[string]bool{}
	for _, l := range strings.Split(before, "\n") {
		was[l] = true
	}
	is := map[string]bool{}
	var d []string
	for _, l := range strings.Split(after, "\n") {
		is[l] = true
		if l != "" && !was[l] {
			d = append(d, "+ "+l)
		}
	}
	for _, l := range strings.Split(before, "\n") {
		if l != "" && !is[l] {
			d = append(d, "- "+l)
		}
	}
	return strings.Join(d, "\n")
}

// openPty opens a new terminal: its master and slave sides.
func openPty() (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/pts/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open terminal: %w", err)
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("unlock terminal: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("terminal number: %w", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("open terminal: %w", err)
	}
	return m, s, nil
}

// setWinsize sets the size of the terminal f.
func setWinsize(f *os.File, rows, cols int) {
	if rows <= 0 || cols <= 0 {
		return
	}
	unix.IoctlSetWinsize(int(f.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: uint16(rows), Col: uint16(cols)})
}
