package vm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Errors Run returns, possibly wrapped.
var (
	// ErrNoQemu means qemu-system-x86_64 is not installed.
	ErrNoQemu = errors.New("qemu-system-x86_64 not found: install the qemu-system-x86 package")
	// ErrBootTimeout means the guest did not come up within BootTimeout.
	ErrBootTimeout = errors.New("guest did not come up in time")
	// ErrKernelPanic means the guest kernel panicked.
	ErrKernelPanic = errors.New("guest kernel panic")
)

// DefaultBootTimeout is the BootTimeout used when Options leaves it zero.
// It is generous because without KVM qemu emulates the CPU (TCG).
const DefaultBootTimeout = 60 * time.Second

// Options configures Run.
type Options struct {
	// Kernel is the bzImage to boot; "" boots the default kernel, fetched
	// by EnsureKernel if it is not cached.
	Kernel string
	// Binary is the static executable booted as the guest's /init; ""
	// means the running executable (os.Executable). It must call Guest
	// when IsGuest is true.
	Binary string
	// Args is the argv of the guest program, without argv[0].
	Args []string
	// Dir is the guest program's working directory, normally the host's.
	Dir string
	// Env is the guest program's environment.
	Env []string
	// Stdout and Stderr receive the guest program's output; nil discards it.
	Stdout, Stderr io.Writer
	// BootTimeout bounds the time from starting qemu until the guest
	// reports in; 0 means DefaultBootTimeout.
	BootTimeout time.Duration
	// Memory is the guest's memory in qemu syntax; "" means "1G".
	Memory string
	// CPUs is the number of virtual CPUs; 0 means 2.
	CPUs int
	// Verbose copies the guest kernel's console to Stderr and makes the
	// kernel less quiet.
	Verbose bool
	// Timing, if not nil, is filled with how long the phases of the run
	// took.
	Timing *Timing
}

// Timing tells how long the phases of a Run took, measured on the host from
// the start of qemu.
type Timing struct {
	// Ready is when the guest's /init reported in.
	Ready time.Duration
	// Main is when the guest called the program's main function.
	Main time.Duration
	// Exit is when the guest reported main's exit code.
	Exit time.Duration
	// Total is when qemu had exited.
	Total time.Duration
}

// HostCanRunVM reports why this host cannot boot the guest, or nil.
func HostCanRunVM() error {
	if InGuest() {
		return errors.New("vm: this is the nkscript microVM already; it boots no microVM of its own")
	}
	if runtime.GOARCH != "amd64" {
		return fmt.Errorf("vm: %s hosts are not supported (amd64 only)", runtime.GOARCH)
	}
	if _, err := qemuPath(); err != nil {
		return err
	}
	return nil
}

// InGuest reports whether this process runs inside an nkscript microVM
// (any process, not only its init): the guest kernel's command line
// carries the marker.
func InGuest() bool {
	b, err := os.ReadFile("/proc/cmdline")
	return err == nil && strings.Contains(string(b), guestEnvMarker+"=")
}

func qemuPath() (string, error) {
	p, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return "", ErrNoQemu
	}
	return p, nil
}

var accel struct {
	once sync.Once
	name string
}

// Accel returns the accelerator Run uses: "kvm" when the CPU has hardware
// virtualisation (vmx or svm) and /dev/kvm can create a VM, else "tcg"
// (emulation, much slower). $NKSCRIPT_ACCEL ("kvm" or "tcg") overrides it.
func Accel() string {
	accel.once.Do(func() {
		switch a := os.Getenv("NKSCRIPT_ACCEL"); a {
		case "kvm", "tcg":
			accel.name = a
			return
		}
		accel.name = "tcg"
		if cpuHasVirt() && kvmUsable() {
			accel.name = "kvm"
		}
	})
	return accel.name
}

// cpuHasVirt reports whether the CPU advertises vmx or svm. Some hosts
// offer /dev/kvm without them, and guests then fail to run.
func cpuHasVirt() bool {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "flags" {
			for _, f := range strings.Fields(v) {
				if f == "vmx" || f == "svm" {
					return true
				}
			}
			return false
		}
	}
	return false
}

func kvmUsable() bool {
	const (
		kvmGetAPIVersion = 0xae00
		kvmCreateVM      = 0xae01
	)
	fd, err := unix.Open("/dev/kvm", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	v, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), kvmGetAPIVersion, 0)
	if errno != 0 || v != 12 {
		return false
	}
	vm, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), kvmCreateVM, 0)
	if errno != 0 {
		return false
	}
	unix.Close(int(vm))
	return true
}

// Run boots a microVM running the guest program (Options.Binary, by default
// this executable) with Options.Args, streams its stdout and stderr to
// Options.Stdout and Options.Stderr and returns its exit code. qemu is
// killed on every path out of Run, and dies with the calling process even
// if that is killed. If ctx is cancelled, Run kills qemu and returns
// ctx.Err().
func Run(ctx context.Context, o Options) (int, error) {
	if o.Stdout == nil {
		o.Stdout = io.Discard
	}
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
	if o.BootTimeout <= 0 {
		o.BootTimeout = DefaultBootTimeout
	}
	if o.Memory == "" {
		o.Memory = "1G"
	}
	if o.CPUs <= 0 {
		o.CPUs = 2
	}
	qemu, err := qemuPath()
	if err != nil {
		return 0, err
	}
	bin := o.Binary
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return 0, fmt.Errorf("vm: %w", err)
		}
	}
	var ki KernelInfo
	if o.Kernel == "" {
		ki, err = EnsureKernel(ctx, o.Stderr)
	} else if spec, ok := PinnedKernel(o.Kernel); ok {
		// A pinned kernel by version: "6.1", "6.12".
		ki, err = EnsureKernelSpec(ctx, spec, o.Stderr)
	} else {
		ki, err = InspectKernel(o.Kernel)
	}
	if err != nil {
		return 0, fmt.Errorf("vm: kernel: %w", err)
	}
	initrd, err := initramfs(bin, ki)
	if err != nil {
		return 0, fmt.Errorf("vm: initramfs: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	r := &runner{o: o, ki: ki}
	return r.run(ctx, qemu, initrd)
}

type runner struct {
	o  Options
	ki KernelInfo

	console ringBuffer
	qemuErr ringBuffer

	mu       sync.Mutex
	outBytes int64
	errBytes int64
	progress chan struct{} // poked when output arrives
}

func (r *runner) qemuArgs(initrd string) []string {
	accel := Accel()
	cpu := "max"
	if accel == "kvm" {
		cpu = "host"
	}
	// The command line trades what a throwaway lab VM does not need for
	// boot time: no ACPI (reset ends qemu, see -no-reboot), no
	// mitigations, no self-tests, only the BPF LSM. A kernel oops panics,
	// and a panic resets at once.
	cmdline := []string{"console=ttyS0", "panic=-1", "oops=panic", "reboot=t", "acpi=off",
		"mitigations=off", "no_timer_check", "tsc=reliable", "audit=0", "lsm=bpf", "cryptomgr.notests",
		"i8042.noaux", "i8042.nokbd", "i8042.nopnp", guestEnvMarker + "=" + guestStage1}
	if !r.o.Verbose {
		cmdline = append(cmdline, "quiet")
	}
	kernel := r.ki.Path
	if r.ki.Vmlinux != "" {
		kernel = r.ki.Vmlinux
	}
	return []string{
		"-M", "pc", "-accel", accel, "-cpu", cpu,
		"-m", r.o.Memory, "-smp", fmt.Sprint(r.o.CPUs),
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-kernel", kernel, "-initrd", initrd, "-append", strings.Join(cmdline, " "),
		"-chardev", "file,id=con,path=/dev/fd/4", "-serial", "chardev:con",
		"-device", "virtio-serial-pci,id=vs",
		"-chardev", "socket,id=ctl,fd=3",
		"-device", "virtserialport,bus=vs.0,chardev=ctl,name=" + portControl,
		"-chardev", "file,id=out,path=/dev/fd/5",
		"-device", "virtserialport,bus=vs.0,chardev=out,name=" + portStdout,
		"-chardev", "file,id=err,path=/dev/fd/6",
		"-device", "virtserialport,bus=vs.0,chardev=err,name=" + portStderr,
		"-fsdev", "local,id=" + hostRootTag + ",path=/,security_model=none,readonly=on,multidevs=remap",
		"-device", "virtio-9p-pci,fsdev=" + hostRootTag + ",mount_tag=" + hostRootTag,
	}
}

func (r *runner) run(ctx context.Context, qemu, initrd string) (code int, err error) {
	start := time.Now()
	timing := r.o.Timing
	if timing == nil {
		timing = new(Timing)
	}
	r.progress = make(chan struct{}, 1)

	ctl, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("vm: socketpair: %w", err)
	}
	ctlHost := os.NewFile(uintptr(ctl[0]), "control")
	ctlQemu := os.NewFile(uintptr(ctl[1]), "control-qemu")
	defer ctlHost.Close()
	var pipes [3][2]*os.File // console, stdout, stderr
	for i := range pipes {
		pr, pw, err := os.Pipe()
		if err != nil {
			return 0, fmt.Errorf("vm: pipe: %w", err)
		}
		pipes[i] = [2]*os.File{pr, pw}
		defer pr.Close()
		defer pw.Close()
	}

	cmd := exec.Command(qemu, r.qemuArgs(initrd)...)
	cmd.ExtraFiles = []*os.File{ctlQemu, pipes[0][1], pipes[1][1], pipes[2][1]}
	cmd.Stdin = nil
	cmd.Stdout = &r.qemuErr
	cmd.Stderr = &r.qemuErr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}

	// Pdeathsig fires when the thread that forked the child exits, so fork
	// from a locked thread that lives until qemu is gone.
	started := make(chan error, 1)
	exited := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		exited <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		ctlQemu.Close()
		return 0, fmt.Errorf("vm: start qemu: %w", err)
	}
	ctlQemu.Close()
	for i := range pipes {
		pipes[i][1].Close()
	}
	qemuDone := false
	var copiers sync.WaitGroup
	defer func() {
		if !qemuDone {
			cmd.Process.Kill()
			<-exited
		}
		// All output is delivered before Run returns; the pipes reach EOF
		// now that qemu is gone.
		copiers.Wait()
	}()

	copyOut := func(src *os.File, dst io.Writer, count *int64) {
		defer copiers.Done()
		buf := make([]byte, 64<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				dst.Write(buf[:n])
				r.mu.Lock()
				*count += int64(n)
				r.mu.Unlock()
				select {
				case r.progress <- struct{}{}:
				default:
				}
			}
			if err != nil {
				return
			}
		}
	}
	copiers.Add(3)
	go copyOut(pipes[1][0], r.o.Stdout, &r.outBytes)
	go copyOut(pipes[2][0], r.o.Stderr, &r.errBytes)
	var consoleDst io.Writer = &r.console
	if r.o.Verbose {
		consoleDst = io.MultiWriter(&r.console, r.o.Stderr)
	}
	var discard int64
	go copyOut(pipes[0][0], consoleDst, &discard)

	req := request{Args: r.o.Args, Env: r.o.Env, Dir: r.o.Dir, Modules: r.ki.Modules, Verbose: r.o.Verbose}
	if req.Args == nil {
		req.Args = []string{}
	}
	b, _ := json.Marshal(req)
	if _, err := ctlHost.Write(append(b, '\n')); err != nil {
		return 0, fmt.Errorf("vm: send request: %w", err)
	}
	msgs := make(chan message, 8)
	go func() {
		defer close(msgs)
		sc := bufio.NewScanner(ctlHost)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var m message
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				msgs <- m
			}
		}
	}()

	bootTimer := time.NewTimer(r.o.BootTimeout)
	defer bootTimer.Stop()
	var exit *message
	var qemuErr error
	for {
		var waitOutput <-chan struct{}
		if exit != nil {
			waitOutput = r.progress
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-bootTimer.C:
			return 0, fmt.Errorf("vm: %w: no word from the guest within %v%s", ErrBootTimeout, r.o.BootTimeout, r.consoleTail())
		case m, ok := <-msgs:
			if !ok {
				msgs = nil
				continue
			}
			switch m.Type {
			case "ready":
				timing.Ready = time.Since(start)
				bootTimer.Stop()
			case "start":
				timing.Main = time.Since(start)
			case "error":
				return 0, fmt.Errorf("vm: guest: %s", m.Error)
			case "exit":
				timing.Exit = time.Since(start)
				exit = &m
			}
		case <-waitOutput:
		case qemuErr = <-exited:
			qemuDone = true
		}
		if exit != nil && !qemuDone && r.haveOutput(exit) {
			ctlHost.Write([]byte("{\"type\":\"ack\"}\n"))
			// The guest powers off now; qemu exits.
			select {
			case qemuErr = <-exited:
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				qemuErr = <-exited
			}
			qemuDone = true
		}
		if qemuDone {
			break
		}
	}
	copiers.Wait()
	timing.Total = time.Since(start)
	if exit != nil {
		return exit.Code, nil
	}
	con := r.console.String()
	if i := strings.LastIndex(con, "Kernel panic - "); i >= 0 {
		line, _, _ := strings.Cut(con[i:], "\n")
		return 0, fmt.Errorf("vm: %w: %s%s", ErrKernelPanic, strings.TrimSpace(line), r.consoleTail())
	}
	msg := strings.TrimSpace(r.qemuErr.String())
	if msg == "" {
		msg = fmt.Sprint(qemuErr)
	}
	return 0, fmt.Errorf("vm: qemu exited before the guest program finished: %s%s", msg, r.consoleTail())
}

func (r *runner) haveOutput(m *message) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.outBytes >= m.Stdout && r.errBytes >= m.Stderr
}

// consoleTail returns the last lines of the guest kernel's console,
// formatted to follow an error message.
func (r *runner) consoleTail() string {
	lines := strings.Split(strings.TrimRight(r.console.String(), "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	s := strings.TrimSpace(strings.Join(lines, "\n"))
	if s == "" {
		return ""
	}
	return "\nlast guest console lines:\n" + strings.Join(lines, "\n")
}

// ringBuffer keeps the last 64 KiB written to it.
type ringBuffer struct {
	mu  sync.Mutex
	buf []byte
}

const ringSize = 64 << 10

func (b *ringBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > ringSize {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-ringSize:]...)
	}
	return len(p), nil
}

func (b *ringBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// initramfs returns an uncompressed cpio archive with bin as /init plus the
// kernel modules needed to mount the host's root and /tmp, cached under
// ~/.cache/nkscript/initramfs/ by the hash of both.
func initramfs(bin string, ki KernelInfo) (string, error) {
	if err := checkStatic(bin); err != nil {
		return "", err
	}
	f, err := os.Open(bin)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", bin, err)
	}
	mods, err := bootModules(ki)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(h, "\x00initramfs v1\x00%s\x00", ki.Version)
	for _, chain := range mods {
		fmt.Fprintf(h, "%s\x00", strings.Join(chain, "\x01"))
	}
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "initramfs")
	name := filepath.Join(dir, hex.EncodeToString(h.Sum(nil))[:32]+".cpio")
	if _, err := os.Stat(name); err == nil {
		now := time.Now()
		os.Chtimes(name, now, now) // mark as recently used
		return name, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	w := newCpioWriter(tmp)
	for _, d := range []string{"dev", "proc", "sys", guestStateDir[1:], guestBootMods[1:]} {
		if err := w.Dir(d, 0o755); err != nil {
			return "", err
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	if err := w.File("init", 0o755, st.Size(), f); err != nil {
		return "", err
	}
	var order []string // one line per chain
	i := 0
	for _, chain := range mods {
		var line []string
		for _, m := range chain {
			data, err := os.ReadFile(m)
			if err != nil {
				return "", err
			}
			data = stripModuleSignature(data)
			base := fmt.Sprintf("%02d-%s", i, filepath.Base(m))
			i++
			if err := w.File(guestBootMods[1:]+"/"+base, 0o644, int64(len(data)), bytes.NewReader(data)); err != nil {
				return "", err
			}
			line = append(line, base)
		}
		order = append(order, strings.Join(line, " "))
	}
	if len(order) > 0 {
		o := strings.Join(order, "\n") + "\n"
		if err := w.File(guestBootMods[1:]+"/order", 0o644, int64(len(o)), strings.NewReader(o)); err != nil {
			return "", err
		}
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return "", err
	}
	pruneInitramfs(dir, 8)
	return name, nil
}

// pruneInitramfs removes all but the keep most recently used images.
func pruneInitramfs(dir string, keep int) {
	ents, _ := filepath.Glob(filepath.Join(dir, "*.cpio"))
	type img struct {
		path string
		t    time.Time
	}
	var imgs []img
	for _, e := range ents {
		if fi, err := os.Stat(e); err == nil {
			imgs = append(imgs, img{e, fi.ModTime()})
		}
	}
	sort.Slice(imgs, func(i, j int) bool { return imgs[i].t.After(imgs[j].t) })
	for i := keep; i < len(imgs); i++ {
		os.Remove(imgs[i].path)
	}
}

// bootModules returns the module files the guest needs to mount the host's
// root over 9p and the overlay on /tmp, none if the kernel has them built in
// or comes without modules, as chains: each chain in load order, the chains
// independent of each other, so that the guest loads them concurrently.
func bootModules(ki KernelInfo) ([][]string, error) {
	if ki.Modules == "" {
		return nil, nil
	}
	b, err := os.ReadFile(filepath.Join(ki.Modules, moduleIndexFile))
	if err != nil {
		return nil, err
	}
	var idx moduleIndex
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("%s: %w", moduleIndexFile, err)
	}
	var chains [][]string
	// virtio_pci and virtio_console first: on kernels that have them as
	// modules, the 9p transport and the control ports sit on them.
	for _, want := range []string{"virtio_pci", "virtio_console", "9pnet_virtio", "9p", "overlay"} {
		e, ok := idx.Modules[want]
		if !ok {
			continue // built in, or not available
		}
		need := append(append([]string(nil), e.Deps...), want)
		// One chain for this module and every chain holding one of its
		// dependencies, in order.
		var chain []string
		rest := chains[:0:0]
		for _, c := range chains {
			shared := false
			for _, m := range need {
				shared = shared || slices.Contains(c, m)
			}
			if shared {
				chain = append(chain, c...)
			} else {
				rest = append(rest, c)
			}
		}
		for _, m := range need {
			if !slices.Contains(chain, m) {
				chain = append(chain, m)
			}
		}
		chains = append(rest, chain)
	}
	for _, chain := range chains {
		for i, m := range chain {
			chain[i] = filepath.Join(ki.Modules, idx.Modules[m].Path)
		}
	}
	return chains, nil
}

// checkStatic makes sure bin can run as /init in a guest with no shared
// libraries: an amd64 ELF executable without an interpreter.
func checkStatic(bin string) error {
	f, err := elf.Open(bin)
	if err != nil {
		return fmt.Errorf("guest binary %s: %w", bin, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("guest binary %s: not an amd64 executable", bin)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("guest binary %s is dynamically linked: build it with CGO_ENABLED=0", bin)
		}
	}
	return nil
}
