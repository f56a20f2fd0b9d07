package vm

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

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

// qemuPath returns the path of qemu-system-x86_64, or ErrNoQemu.
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

// kvmUsable reports whether /dev/kvm speaks the stable KVM API and can
// create a VM.
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
