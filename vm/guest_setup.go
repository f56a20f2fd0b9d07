package vm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// mount mounts src on dst, creating dst first; on a read-only filesystem
// dst must exist.
func mount(src, dst, fstype string, flags uintptr, data string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil && !errors.Is(err, unix.EROFS) {
		return fmt.Errorf("mount %s: %w", dst, err)
	}
	if err := unix.Mount(src, dst, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s: %w", fstype, dst, err)
	}
	return nil
}

// setup makes the guest look like the host: the host's root read-only at
// the same paths, writable /tmp and /run where programs expect to write,
// the kernel's module loader, loopback up, and the host's environment and
// working directory.
func (g *guest) setup(req *request) error {
	if err := mountHostRoot(req.Serve); err != nil {
		return err
	}
	if err := mountSystem(); err != nil {
		return err
	}
	if req.Modules != "" {
		if err := installModprobe(req.Modules); err != nil {
			return err
		}
	}
	if err := g.mountTmp(req.Serve); err != nil {
		return err
	}
	if err := loopbackUp(); err != nil {
		return err
	}
	return enterHostEnv(req)
}

// mountHostRoot mounts the host's root filesystem read-only over 9p and
// shows each of its top-level entries at the same path in the guest, but
// for those the guest has its own of. A warm guest (live) shows the
// entries that change while it runs (scripts, home directories: all but
// liveStable) from a second mount that does not cache what it reads, so
// that it sees the host's files as they are now.
func mountHostRoot(live bool) error {
	if err := mount(hostRootTag, guestHostRoot, "9p", unix.MS_RDONLY,
		"trans=virtio,version=9p2000.L,msize=512000,cache=loose"); err != nil {
		return fmt.Errorf("%w (does the kernel have 9p and virtio?)", err)
	}
	if live {
		if err := mount(hostLiveTag, guestHostLive, "9p", unix.MS_RDONLY,
			"trans=virtio,version=9p2000.L,msize=512000,cache=mmap"); err != nil {
			return err
		}
	}
	ents, err := os.ReadDir(guestHostRoot)
	if err != nil {
		return fmt.Errorf("read host root: %w", err)
	}
	for _, e := range ents {
		switch e.Name() {
		case "proc", "sys", "dev", "run", "tmp", "init", ".nkscript":
			continue
		}
		root := guestHostRoot
		if live && !liveStable[e.Name()] {
			root = guestHostLive
		}
		if err := showHostEntry(root, e); err != nil {
			return err
		}
	}
	return nil
}

// liveStable are the host's top-level directories a warm guest reads
// through the caching mount: installed software, which does not change
// while a lab runs.
var liveStable = map[string]bool{"usr": true, "bin": true, "sbin": true, "lib": true, "lib32": true, "lib64": true, "libx32": true, "etc": true}

// showHostEntry makes the entry e of the host's root, mounted at root,
// appear at the same path in the guest: a symbolic link is copied, a
// directory or a regular file is bind-mounted.
func showHostEntry(root string, e os.DirEntry) error {
	src := filepath.Join(root, e.Name())
	dst := "/" + e.Name()
	switch {
	case e.Type()&os.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return fmt.Errorf("host root: %w", err)
		}
		if err := os.Symlink(target, dst); err != nil {
			return fmt.Errorf("host root: %w", err)
		}
	case e.IsDir():
		if err := mount(src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("host root: %w", err)
		}
	case e.Type().IsRegular():
		if err := os.WriteFile(dst, nil, 0o644); err != nil {
			return fmt.Errorf("host root: %w", err)
		}
		if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("host root: bind %s: %w", dst, err)
		}
	}
	return nil
}

// mountSystem mounts the guest's own /run (also at /var/run when that is a
// directory), bpffs, and, if the kernel has them, debugfs, tracefs and
// cgroup2.
func mountSystem() error {
	for _, m := range []struct {
		src, dst, fstype, data string
		optional               bool
	}{
		{"tmpfs", "/run", "tmpfs", "mode=0755", false},
		{"bpffs", "/sys/fs/bpf", "bpf", "mode=0700", false},
		{"debugfs", "/sys/kernel/debug", "debugfs", "", true},
		{"tracefs", "/sys/kernel/tracing", "tracefs", "", true},
		{"cgroup2", "/sys/fs/cgroup", "cgroup2", "", true},
	} {
		err := mount(m.src, m.dst, m.fstype, unix.MS_NOSUID|unix.MS_NODEV, m.data)
		if err != nil && !m.optional {
			return err
		}
	}
	// Pseudo-terminals, for the REPL and shells in the guest: devtmpfs
	// has no /dev/ptmx of its own here.
	if err := mount("devpts", "/dev/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"); err != nil {
		return err
	}
	if _, err := os.Stat("/dev/ptmx"); err != nil {
		if err := os.Symlink("pts/ptmx", "/dev/ptmx"); err != nil {
			return fmt.Errorf("link /dev/ptmx: %w", err)
		}
	}
	if fi, err := os.Lstat("/var/run"); err == nil && fi.IsDir() {
		// The host's /var/run is a directory rather than a link to /run.
		if err := unix.Mount("/run", "/var/run", "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind /var/run: %w", err)
		}
	}
	os.MkdirAll("/run/lock", 0o1777)
	return nil
}

// installModprobe makes the guest's executable the kernel's module loader,
// with the host's module directory modules (see guestModprobe).
func installModprobe(modules string) error {
	if err := os.Symlink(filepath.Join(guestHostRoot, modules), guestModulesDir); err != nil {
		return err
	}
	if err := os.Symlink("/init", guestModprobePath); err != nil {
		return err
	}
	if err := os.WriteFile("/proc/sys/kernel/modprobe", []byte(guestModprobePath), 0o644); err != nil {
		return fmt.Errorf("set modprobe path: %w", err)
	}
	return nil
}

// enterHostEnv sets the host's environment (with a default PATH if it has
// none) and changes to the host's working directory.
func enterHostEnv(req *request) error {
	os.Clearenv()
	for _, kv := range req.Env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			os.Setenv(k, v)
		}
	}
	if os.Getenv("PATH") == "" {
		os.Setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	if req.Dir == "" {
		return nil
	}
	if err := os.Chdir(req.Dir); err != nil {
		if req.Dir == "/run" || strings.HasPrefix(req.Dir, "/run/") {
			return fmt.Errorf("working directory: %w (the guest has its own /run; the host's is not shared)", err)
		}
		return fmt.Errorf("working directory: %w", err)
	}
	return nil
}

// mountTmp mounts the guest's /tmp: an overlay of a tmpfs on the host's
// /tmp, so that the guest sees the host's files there and writes to its own
// memory. Without overlayfs it mounts a plain tmpfs and warns on stderr.
// The initramfs carries the overlay module when the kernel has it as one.
func (g *guest) mountTmp(live bool) error {
	err := mountTmpOverlay(live)
	if err == nil {
		return nil
	}
	g.logf("%v", err)
	fmt.Fprintf(g.stderr, "nkscript: warning: the host's /tmp is not visible in the VM, which has an empty one: %v\n", err)
	return mount("tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777")
}

// mountTmpOverlay mounts on /tmp an overlay whose lower layer is the
// host's /tmp (through the mount that does not cache, when live) and whose
// upper layer is a tmpfs at guestTmpDir.
func mountTmpOverlay(live bool) error {
	lower := filepath.Join(guestHostRoot, "tmp")
	if live {
		lower = filepath.Join(guestHostLive, "tmp")
	}
	fi, err := os.Stat(lower)
	if err != nil {
		return fmt.Errorf("host /tmp: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("host /tmp: not a directory")
	}
	if err := mount("tmpfs", guestTmpDir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0700"); err != nil {
		return err
	}
	upper, work := filepath.Join(guestTmpDir, "upper"), filepath.Join(guestTmpDir, "work")
	err = os.Mkdir(upper, 0o700)
	if err == nil {
		// The overlay's root takes the upper directory's mode: the host's.
		err = os.Chmod(upper, fi.Mode()&(os.ModePerm|os.ModeSticky|os.ModeSetgid))
	}
	if err == nil {
		err = os.Mkdir(work, 0o700)
	}
	if err == nil {
		// Without index, xino, redirect_dir and metacopy: the lower layer is
		// 9p, which has no file handles, and they bring nothing here.
		err = mount("overlay", "/tmp", "overlay", unix.MS_NOSUID|unix.MS_NODEV,
			"lowerdir="+lower+",upperdir="+upper+",workdir="+work+
				",index=off,xino=off,redirect_dir=off,metacopy=off")
	}
	if err != nil {
		unix.Unmount(guestTmpDir, unix.MNT_DETACH)
		return err
	}
	return nil
}

// loopbackUp brings the loopback interface up.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	return nil
}
