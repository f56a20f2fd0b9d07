package vm

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// qemuArgs returns qemu's command line: the kernel and initrd, the serial
// console on fd 4, the control port on the socket at fd 3, the stdout and
// stderr ports on fds 5 and 6, and the host's root shared read-only over 9p.
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
	args := []string{
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
	if r.serve {
		args = append(args,
			"-fsdev", "local,id="+hostLiveTag+",path=/,security_model=none,readonly=on,multidevs=remap",
			"-device", "virtio-9p-pci,fsdev="+hostLiveTag+",mount_tag="+hostLiveTag)
	}
	return args
}

// qemuProcess is a running qemu and the host's ends of its channels.
type qemuProcess struct {
	cmd    *exec.Cmd
	exited chan error // receives cmd.Wait's result once

	done    bool  // qemu has exited and its exit status was received
	waitErr error // the exit status, once done

	ctl                     *os.File // the control port's socket
	console, stdout, stderr *os.File // read ends of the pipes qemu writes to
}

// startQemu starts qemu with the control socket as fd 3 and pipes for the
// console, stdout and stderr as fds 4 to 6. qemu gets SIGKILL when the
// calling process dies.
func (r *runner) startQemu(qemu, initrd string) (*qemuProcess, error) {
	return r.startQemuArgs(qemu, r.qemuArgs(initrd))
}

// startQemuArgs is startQemu with qemu's command line args, which must
// give qemu the channels startQemu describes (qemuArgs, perhaps with more).
func (r *runner) startQemuArgs(qemu string, args []string) (*qemuProcess, error) {
	ctl, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("vm: socketpair: %w", err)
	}
	p := &qemuProcess{exited: make(chan error, 1), ctl: os.NewFile(uintptr(ctl[0]), "control")}
	ctlQemu := os.NewFile(uintptr(ctl[1]), "control-qemu")
	qemuEnds := []*os.File{ctlQemu}
	// qemu has its own copies once started.
	defer func() {
		for _, f := range qemuEnds {
			f.Close()
		}
	}()
	for _, read := range []**os.File{&p.console, &p.stdout, &p.stderr} {
		pr, pw, err := os.Pipe()
		if err != nil {
			p.close()
			return nil, fmt.Errorf("vm: pipe: %w", err)
		}
		*read = pr
		qemuEnds = append(qemuEnds, pw)
	}

	p.cmd = exec.Command(qemu, args...)
	p.cmd.ExtraFiles = qemuEnds
	p.cmd.Stdin = nil
	p.cmd.Stdout = &r.qemuErr
	p.cmd.Stderr = &r.qemuErr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := startOnLockedThread(p.cmd, p.exited); err != nil {
		p.close()
		return nil, fmt.Errorf("vm: start qemu: %w", err)
	}
	return p, nil
}

// startOnLockedThread starts cmd and sends the result of its Wait to
// exited. Pdeathsig fires when the thread that forked the child exits, so
// it forks from a locked thread that lives until the child is gone.
func startOnLockedThread(cmd *exec.Cmd, exited chan<- error) error {
	started := make(chan error, 1)
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
	return <-started
}

// exitedWith records that qemu has exited with status err.
func (p *qemuProcess) exitedWith(err error) {
	p.done = true
	p.waitErr = err
}

// kill kills qemu unless it has exited, and waits for it.
func (p *qemuProcess) kill() {
	if !p.done {
		p.cmd.Process.Kill()
		p.exitedWith(<-p.exited)
	}
}

// close closes the host's ends of qemu's channels.
func (p *qemuProcess) close() {
	for _, f := range []*os.File{p.ctl, p.console, p.stdout, p.stderr} {
		if f != nil {
			f.Close()
		}
	}
}
