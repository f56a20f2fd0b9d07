package machine

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// BPFFSDir is where the BPF filesystem is mounted.
const BPFFSDir = "/sys/fs/bpf"

// TraceFSDir is where the tracing filesystem is mounted.
const TraceFSDir = "/sys/kernel/tracing"

// files lists the mount points of bpffs and tracefs, the pins under
// BPFFSDir, the tracing instances and the journals.
func (c *collector) files() error {
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	traceMounted := false
	for _, m := range parseMountinfo(string(mounts)) {
		// A local snapshot sees the well-known mount points only: other
		// mounts of these filesystems are other processes' (a tracing run's
		// own mount point, a concurrent snapshot's temporary one).
		if c.opts.Local && m.point != BPFFSDir && m.point != TraceFSDir {
			continue
		}
		switch m.fstype {
		case "bpf":
			c.add("bpffs %s", m.point)
		case "tracefs":
			c.add("tracefs %s", m.point)
			traceMounted = traceMounted || m.point == TraceFSDir
		}
	}
	err = filepath.WalkDir(BPFFSDir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || path == BPFFSDir {
			return err
		}
		if d.IsDir() {
			path += "/"
		}
		c.add("pin %s", path)
		return nil
	})
	if err != nil {
		return fmt.Errorf("list pins: %w", err)
	}
	if err := c.traceInstances(traceMounted); err != nil {
		return err
	}
	if err := c.netnsTrees(); err != nil {
		return err
	}
	for _, dir := range c.opts.Journals {
		ents, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("list journals: %w", err)
		}
		for _, e := range ents {
			c.add("journal %s", filepath.Join(dir, e.Name()))
		}
	}
	return nil
}

// traceInstances lists the tracing instances; a local snapshot leaves
// out the ones named <prefix>-<pid> of a live process, which are that
// process's business until it exits. Instances exist whether or not
// tracefs is mounted: when it is not mounted at TraceFSDir, it is mounted
// for the listing on a directory of its own, then unmounted.
func (c *collector) traceInstances(mounted bool) error {
	dir := TraceFSDir
	if !mounted {
		tmp, err := os.MkdirTemp("", "machinestate-tracefs-")
		if err != nil {
			return err
		}
		defer os.Remove(tmp)
		if err := unix.Mount("tracefs", tmp, "tracefs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("mount tracefs to list its instances: %w", err)
		}
		defer unix.Unmount(tmp, unix.MNT_DETACH)
		dir = tmp
	}
	ents, err := os.ReadDir(filepath.Join(dir, "instances"))
	if err != nil {
		return fmt.Errorf("list tracing instances: %w", err)
	}
	for _, e := range ents {
		if c.opts.Local && ownedByLiveProcess(e.Name()) || c.opts.TraceInstances != nil && !c.opts.TraceInstances(e.Name()) {
			continue
		}
		c.add("trace-instance %s", e.Name())
	}
	return nil
}

// NetnsTreeDir holds the trees nkscript mounts its namespaces in, one
// directory per lab, named <pid>-<start time>-<n>.
const NetnsTreeDir = "/run/nkscript-netns"

// netnsTrees lists the trees of namespace mounts; a local snapshot
// leaves out those of a live process.
func (c *collector) netnsTrees() error {
	ents, err := os.ReadDir(NetnsTreeDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("list namespace mount trees: %w", err)
	}
	for _, e := range ents {
		pid, _, _ := strings.Cut(e.Name(), "-")
		if c.opts.Local && ownedByLiveProcess("x-"+pid) {
			continue
		}
		c.add("netns-tree %s", e.Name())
	}
	return nil
}

func ownedByLiveProcess(name string) bool {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return false
	}
	pid, err := strconv.Atoi(name[i+1:])
	if err != nil || pid <= 0 {
		return false
	}
	_, err = os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}

// qemu lists qemu processes by pid, start time and command, unless the
// snapshot is local.
func (c *collector) qemu() error {
	if c.opts.Local {
		return nil
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", p.Name(), "stat"))
		if err != nil {
			continue // exited
		}
		comm, start, ok := parseStat(string(b))
		if ok && strings.HasPrefix(comm, "qemu-system") {
			c.add("qemu %s start %s %s", p.Name(), start, comm)
		}
	}
	return nil
}

// parseStat returns the command and the start time (field 22, in clock
// ticks since boot) of a /proc/PID/stat line.
func parseStat(s string) (comm, start string, ok bool) {
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return "", "", false
	}
	// Fields after the command start at field 3 (state).
	rest := strings.Fields(s[end+1:])
	if len(rest) < 20 {
		return "", "", false
	}
	return s[open+1 : end], rest[19], true
}
