package vm

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// IsGuest reports whether the program runs inside an nkscript guest: as
// PID 1 (/init) of the microVM Run boots, or as the guest's module loader,
// which the guest kernel runs from the same binary. A program that may be
// booted by Run calls Guest first thing in main when IsGuest is true.
func IsGuest() bool {
	if filepath.Base(os.Args[0]) == modprobeName && os.Getpid() != 1 {
		// Only the guest's rootfs has this directory.
		_, err := os.Stat(guestModulesDir)
		return err == nil
	}
	if os.Getpid() != 1 {
		return false
	}
	v := os.Getenv(guestEnvMarker)
	return v == guestStage1 || v == guestStage2
}

// Guest is the guest side of Run. It mounts the guest's filesystems (the
// host's root read-only at the same paths, the host's /tmp behind a
// writable overlay that keeps the guest's writes in memory, a fresh tmpfs
// on /run, proc, sysfs, devtmpfs, bpffs, debugfs, tracefs, cgroup2), brings
// loopback up, changes to the host's working directory and sets the host's
// environment. Then it executes the program again, still as PID 1, so that
// the Go runtime and every package's init run in that finished guest (with
// /proc, the host's files and environment) rather than in the bare
// initramfs the kernel started them in; the second time, Guest calls main
// with the arguments given to Run. main's stdout and stderr (also file
// descriptors 1 and 2, inherited by child processes) reach Run's Stdout and
// Stderr; so does what package inits write to them. When main returns, or
// panics (exit code 2), Guest kills what main left running, reports the
// exit code to the host once all output has reached it, syncs and ends the
// VM. The guest boots without ACPI (it boots faster), so the VM ends by a
// reset, which qemu, started with -no-reboot, takes as its cue to exit.
//
// Guest never returns. It refuses to run outside the guest: if IsGuest is
// false it panics.
func Guest(main func(args []string, stdout, stderr io.Writer) int) {
	if filepath.Base(os.Args[0]) == modprobeName && os.Getpid() != 1 {
		os.Exit(guestModprobe(os.Args[1:]))
	}
	if !IsGuest() {
		panic("vm.Guest called outside an nkscript guest")
	}
	g := &guest{}
	if os.Getenv(guestEnvMarker) == guestStage2 {
		g.runMainStage(main)
	} else {
		g.run()
	}
}

type guest struct {
	console *os.File
	ctl     *os.File
	ctlr    *bufio.Reader
	stdout  *os.File // ports
	stderr  *os.File
	mu      sync.Mutex // serialises writes to ctl
}

func (g *guest) logf(format string, args ...any) {
	if g.console != nil {
		fmt.Fprintf(g.console, "nkscript-guest: "+format+"\n", args...)
	}
}

func (g *guest) send(m message) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	_, err = g.ctl.Write(append(b, '\n'))
	return err
}

// run is the first stage: it sets the guest up and executes the program
// again for the second stage, runMainStage.
func (g *guest) run() {
	defer powerOff()
	g.console, _ = os.OpenFile("/dev/console", os.O_WRONLY, 0)

	if err := g.early(); err != nil {
		g.logf("%v", err)
		if g.ctl != nil {
			g.send(message{Type: "error", Error: err.Error()})
		}
		return
	}
	var req request
	if err := g.readRequest(&req); err != nil {
		g.fail(err)
		return
	}
	if err := g.setup(&req); err != nil {
		g.fail(err)
		return
	}
	g.fail(g.reexec(&req))
}

// stage2 is what the first stage hands the second: the open ports and
// what is left of the request. It travels in guestStage2File.
type stage2 struct {
	Args []string `json:"args"`
	Env  []string `json:"env"`
	// File descriptors of the ports, inherited across execve.
	Ctl    int `json:"ctl"`
	Stdout int `json:"stdout"`
	Stderr int `json:"stderr"`
}

// reexec executes the running program again as PID 1, with the guest set
// up, its environment and working directory those of the host, stdin on
// /dev/null and stdout and stderr on the ports, so that whatever package
// inits print reaches the host, and so does a crash before main. It returns
// only if that fails.
func (g *guest) reexec(req *request) error {
	st := stage2{Args: req.Args, Env: os.Environ()}
	for _, p := range []struct {
		f  *os.File
		fd *int
	}{{g.ctl, &st.Ctl}, {g.stdout, &st.Stdout}, {g.stderr, &st.Stderr}} {
		*p.fd = int(p.f.Fd()) // now in blocking mode, which the next stage keeps
		if _, err := unix.FcntlInt(uintptr(*p.fd), unix.F_SETFD, 0); err != nil {
			return fmt.Errorf("re-exec: %w", err)
		}
	}
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("re-exec: %w", err)
	}
	if err := os.WriteFile(guestStage2File, b, 0o600); err != nil {
		return fmt.Errorf("re-exec: %w", err)
	}
	if null, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0); err == nil {
		unix.Dup2(null, 0)
		unix.Close(null)
	}
	if err := unix.Dup2(st.Stdout, 1); err != nil {
		return fmt.Errorf("re-exec: %w", err)
	}
	if err := unix.Dup2(st.Stderr, 2); err != nil {
		return fmt.Errorf("re-exec: %w", err)
	}
	env := []string{guestEnvMarker + "=" + guestStage2}
	for _, kv := range st.Env {
		if k, _, _ := strings.Cut(kv, "="); k != guestEnvMarker {
			env = append(env, kv)
		}
	}
	err = unix.Exec("/proc/self/exe", os.Args, env)
	return fmt.Errorf("re-exec %s: %w", os.Args[0], err)
}

// runMainStage is the second stage: it takes over the ports, restores the
// host's environment exactly (without the stage marker), runs main and ends
// the VM.
func (g *guest) runMainStage(main func(args []string, stdout, stderr io.Writer) int) {
	defer powerOff()
	g.console, _ = os.OpenFile("/dev/console", os.O_WRONLY, 0)
	var st stage2
	b, err := os.ReadFile(guestStage2File)
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if err != nil {
		// The host reports the console's last lines.
		g.logf("second stage: %v", err)
		return
	}
	os.Remove(guestStage2File)
	for _, fd := range []int{st.Ctl, st.Stdout, st.Stderr} {
		unix.CloseOnExec(fd) // not for main's children
	}
	g.ctl = os.NewFile(uintptr(st.Ctl), "control")
	g.ctlr = bufio.NewReader(g.ctl)
	g.stdout = os.NewFile(uintptr(st.Stdout), "stdout")
	g.stderr = os.NewFile(uintptr(st.Stderr), "stderr")
	// A crash outside main (an unrecovered panic in another goroutine)
	// kills PID 1 and so panics the kernel; show its trace to the user.
	debug.SetCrashOutput(g.stderr, debug.CrashOptions{})
	os.Clearenv()
	for _, kv := range st.Env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			os.Setenv(k, v)
		}
	}

	g.send(message{Type: "start"})
	code, outN, errN := g.runMain(main, st.Args)
	if err := g.send(message{Type: "exit", Code: code, Stdout: outN, Stderr: errN}); err != nil {
		g.logf("send exit: %v", err)
		return
	}
	// Wait until the host has all the output, so that powering off cannot
	// lose what is still in flight.
	acked := make(chan struct{})
	go func() {
		var m message
		for g.readMessage(&m) == nil {
			if m.Type == "ack" {
				break
			}
		}
		close(acked)
	}()
	select {
	case <-acked:
	case <-time.After(10 * time.Second):
		g.logf("no ack from host")
	}
}

func (g *guest) fail(err error) {
	g.logf("%v", err)
	g.send(message{Type: "error", Error: err.Error()})
	// Give the host a chance to read it before the VM goes away.
	var m message
	done := make(chan struct{})
	go func() { g.readMessage(&m); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// powerOff ends the VM: a reset, as without ACPI there is no power-off.
func powerOff() {
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	// Not reached unless reboot failed; PID 1 exiting panics the kernel,
	// which (panic=-1, -no-reboot) also ends qemu.
	os.Exit(1)
}

// early mounts what is needed to talk to the host and opens the ports.
func (g *guest) early() error {
	for _, m := range []struct{ src, dst, fstype string }{
		{"devtmpfs", "/dev", "devtmpfs"},
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
	} {
		if err := mount(m.src, m.dst, m.fstype, 0, ""); err != nil {
			return err
		}
	}
	if g.console == nil {
		g.console, _ = os.OpenFile("/dev/console", os.O_WRONLY, 0)
	}
	// The initramfs's modules first: on kernels that build virtio as
	// modules (Debian's 6.1), the ports need virtio_pci and
	// virtio_console.
	if err := loadBootModules(); err != nil {
		return err
	}
	ports, err := waitPorts(portControl, portStdout, portStderr)
	if err != nil {
		return err
	}
	if g.ctl, err = os.OpenFile(ports[portControl], os.O_RDWR, 0); err != nil {
		return fmt.Errorf("open control port: %w", err)
	}
	g.ctlr = bufio.NewReader(g.ctl)
	if g.stdout, err = os.OpenFile(ports[portStdout], os.O_WRONLY, 0); err != nil {
		return fmt.Errorf("open stdout port: %w", err)
	}
	if g.stderr, err = os.OpenFile(ports[portStderr], os.O_WRONLY, 0); err != nil {
		return fmt.Errorf("open stderr port: %w", err)
	}
	// A crash outside main (an unrecovered panic in another goroutine)
	// kills PID 1 and so panics the kernel; show its trace to the user.
	debug.SetCrashOutput(g.stderr, debug.CrashOptions{})
	return g.send(message{Type: "ready"})
}

func (g *guest) readMessage(v any) error {
	line, err := g.ctlr.ReadBytes('\n')
	if err != nil {
		return err
	}
	return json.Unmarshal(line, v)
}

func (g *guest) readRequest(req *request) error {
	if err := g.readMessage(req); err != nil {
		return fmt.Errorf("read request: %w", err)
	}
	return nil
}

// waitPorts waits for the named virtio-serial ports to show up and returns
// their device nodes. Ports are announced to the guest asynchronously.
func waitPorts(names ...string) (map[string]string, error) {
	found := map[string]string{}
	for i := 0; ; i++ {
		ents, _ := os.ReadDir("/sys/class/virtio-ports")
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join("/sys/class/virtio-ports", e.Name(), "name"))
			if err != nil {
				continue
			}
			name := strings.TrimSpace(string(b))
			dev := filepath.Join("/dev", e.Name())
			if _, err := os.Stat(dev); err == nil {
				found[name] = dev
			}
		}
		missing := 0
		for _, n := range names {
			if found[n] == "" {
				missing++
			}
		}
		if missing == 0 {
			return found, nil
		}
		if i == 30000 {
			return nil, fmt.Errorf("virtio-serial ports %v not found", names)
		}
		time.Sleep(time.Millisecond)
	}
}

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
// the same paths, writable /tmp and /run where programs expect to write.
func (g *guest) setup(req *request) error {
	if err := mount(hostRootTag, guestHostRoot, "9p", unix.MS_RDONLY,
		"trans=virtio,version=9p2000.L,msize=512000,cache=loose"); err != nil {
		return fmt.Errorf("%w (does the kernel have 9p and virtio?)", err)
	}
	ents, err := os.ReadDir(guestHostRoot)
	if err != nil {
		return fmt.Errorf("read host root: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		switch name {
		case "proc", "sys", "dev", "run", "tmp", "init", ".nkscript":
			continue
		}
		src := filepath.Join(guestHostRoot, name)
		dst := "/" + name
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
	}
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
	if fi, err := os.Lstat("/var/run"); err == nil && fi.IsDir() {
		// The host's /var/run is a directory rather than a link to /run.
		if err := unix.Mount("/run", "/var/run", "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind /var/run: %w", err)
		}
	}
	os.MkdirAll("/run/lock", 0o1777)
	if req.Modules != "" {
		if err := os.Symlink(filepath.Join(guestHostRoot, req.Modules), guestModulesDir); err != nil {
			return err
		}
		if err := os.Symlink("/init", guestModprobePath); err != nil {
			return err
		}
		if err := os.WriteFile("/proc/sys/kernel/modprobe", []byte(guestModprobePath), 0o644); err != nil {
			return fmt.Errorf("set modprobe path: %w", err)
		}
	}
	if err := g.mountTmp(); err != nil {
		return err
	}
	if err := loopbackUp(); err != nil {
		return err
	}
	os.Clearenv()
	for _, kv := range req.Env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			os.Setenv(k, v)
		}
	}
	if os.Getenv("PATH") == "" {
		os.Setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	if req.Dir != "" {
		if err := os.Chdir(req.Dir); err != nil {
			if req.Dir == "/run" || strings.HasPrefix(req.Dir, "/run/") {
				return fmt.Errorf("working directory: %w (the guest has its own /run; the host's is not shared)", err)
			}
			return fmt.Errorf("working directory: %w", err)
		}
	}
	return nil
}

// mountTmp mounts the guest's /tmp: an overlay of a tmpfs on the host's
// /tmp, so that the guest sees the host's files there and writes to its own
// memory. Without overlayfs it mounts a plain tmpfs and warns on stderr.
// The initramfs carries the overlay module when the kernel has it as one.
func (g *guest) mountTmp() error {
	err := mountTmpOverlay()
	if err == nil {
		return nil
	}
	g.logf("%v", err)
	fmt.Fprintf(g.stderr, "nkscript: warning: the host's /tmp is not visible in the VM, which has an empty one: %v\n", err)
	return mount("tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777")
}

func mountTmpOverlay() error {
	lower := filepath.Join(guestHostRoot, "tmp")
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

// runMain runs main with fds 1 and 2 on pipes that are copied to the
// stdout and stderr ports, and returns its exit code and the number of
// bytes copied to each port.
func (g *guest) runMain(main func(args []string, stdout, stderr io.Writer) int, args []string) (code int, outN, errN int64) {
	var wg sync.WaitGroup
	var counts [2]int64
	for i, port := range []*os.File{g.stdout, g.stderr} {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			g.logf("pipe: %v", err)
			return 2, 0, 0
		}
		if err := unix.Dup2(p[1], i+1); err != nil {
			g.logf("dup2: %v", err)
			return 2, 0, 0
		}
		unix.Close(p[1])
		r := os.NewFile(uintptr(p[0]), "pipe")
		wg.Add(1)
		go func() {
			defer wg.Done()
			counts[i], _ = io.CopyBuffer(port, r, make([]byte, 64<<10))
			r.Close()
		}()
	}
	if null, err := unix.Open("/dev/null", unix.O_RDWR, 0); err == nil {
		unix.Dup2(null, 0)
		unix.Close(null)
	}

	code = func() (code int) {
		defer func() {
			if r := recover(); r != nil {
				fmt.Fprintf(os.Stderr, "panic: %v\n\n%s", r, debug.Stack())
				code = 2
			}
		}()
		return main(args, os.Stdout, os.Stderr)
	}()

	// Kill whatever main left running (everything but PID 1) so that the
	// pipes reach EOF, then wait for the copies to finish.
	unix.Kill(-1, unix.SIGKILL)
	if null, err := unix.Open("/dev/null", unix.O_RDWR, 0); err == nil {
		unix.Dup2(null, 1)
		unix.Dup2(null, 2)
		unix.Close(null)
	}
	wg.Wait()
	return code, counts[0], counts[1]
}

// loadBootModules loads the modules the initramfs carries (those needed to
// mount the host's root and the overlay on /tmp) as its "order" file says:
// one chain of modules per line, each in order, the chains concurrently.
func loadBootModules() error {
	b, err := os.ReadFile(filepath.Join(guestBootMods, "order"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	errs := make([]error, len(lines))
	var wg sync.WaitGroup
	for i, line := range lines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, name := range strings.Fields(line) {
				if errs[i] = loadModule(filepath.Join(guestBootMods, name)); errs[i] != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("load module: %w", err)
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("load module %s: %w", filepath.Base(path), err)
	}
	return nil
}

// guestModprobe is the guest kernel's module loader: the kernel runs it as
// `modprobe -q -- NAME` when it needs a module (a link type, a qdisc, ...).
// It resolves NAME through the index EnsureKernel wrote and loads the
// module's dependencies and the module.
func guestModprobe(args []string) int {
	var names []string
	quiet := false
	for _, a := range args {
		switch {
		case a == "-q":
			quiet = true
		case strings.HasPrefix(a, "-"):
		default:
			names = append(names, a)
		}
	}
	b, err := os.ReadFile(filepath.Join(guestModulesDir, moduleIndexFile))
	if err != nil {
		if !quiet {
			fmt.Fprintf(os.Stderr, "modprobe: %v\n", err)
		}
		return 1
	}
	var idx moduleIndex
	if err := json.Unmarshal(b, &idx); err != nil {
		fmt.Fprintf(os.Stderr, "modprobe: %v\n", err)
		return 1
	}
	status := 0
	for _, name := range names {
		if err := modprobe(&idx, name); err != nil {
			if !quiet {
				fmt.Fprintf(os.Stderr, "modprobe: %v\n", err)
			}
			status = 1
		}
	}
	return status
}

func modprobe(idx *moduleIndex, name string) error {
	norm := strings.ReplaceAll(name, "-", "_")
	var mods []string
	if _, ok := idx.Modules[norm]; ok {
		mods = []string{norm}
	} else {
		for _, b := range idx.Builtin {
			if b == norm {
				return nil
			}
		}
		for _, a := range idx.Aliases {
			if ok, _ := filepath.Match(a[0], name); ok && !slices.Contains(mods, a[1]) {
				mods = append(mods, a[1])
			}
		}
		sort.Strings(mods)
	}
	if len(mods) == 0 {
		return fmt.Errorf("module %s not found", name)
	}
	for _, m := range mods {
		e := idx.Modules[m]
		for _, d := range append(e.Deps, m) {
			if err := loadModule(filepath.Join(guestModulesDir, idx.Modules[d].Path)); err != nil {
				return err
			}
		}
	}
	return nil
}
