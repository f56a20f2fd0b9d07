package vm

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
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
// on /run, proc, sysfs, devtmpfs, devpts, bpffs, debugfs, tracefs, cgroup2), brings
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

// logf writes a line to the guest kernel's console, if it is open.
func (g *guest) logf(format string, args ...any) {
	if g.console != nil {
		fmt.Fprintf(g.console, "nkscript-guest: "+format+"\n", args...)
	}
}

// send sends the host a message on the control port.
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

// fail reports err on the console and to the host, and waits up to 5
// seconds for the host to answer.
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

// readMessage reads the next message from the host into v.
func (g *guest) readMessage(v any) error {
	line, err := g.ctlr.ReadBytes('\n')
	if err != nil {
		return err
	}
	return json.Unmarshal(line, v)
}

// readRequest reads the host's request.
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
