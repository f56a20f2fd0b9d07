// Package vm runs a program inside a throwaway microVM whose kernel has
// what the host's may lack (netkit).
//
// Run boots qemu-system-x86_64 (KVM when the host has it, TCG otherwise:
// see Accel and HostCanRunVM) with a kernel chosen by Options.Kernel and an
// initramfs holding a static executable — by default the running one — as
// /init, plus the kernel modules the guest needs before it can reach the
// host. The guest side, Guest, shares the host's root filesystem read-only
// over 9p at the same paths, shows the host's /tmp at /tmp under an overlay
// that keeps the guest's writes in the guest's memory, mounts a fresh tmpfs
// on /run, proc, sysfs, devtmpfs, devpts, bpffs, debugfs, tracefs and cgroup2, sets
// the host's environment and working directory, then executes the program
// again so that the Go runtime and package inits start in that finished
// guest, and calls the program's main with the host's arguments. The
// program's stdout and stderr travel over their own virtio-serial ports,
// the kernel console over the serial port (kept for error messages, or
// copied to stderr when verbose), and a control port carries the request,
// the guest's progress and the exit code. Kernel modules (veth, qdiscs,
// ...) are loaded on demand by the guest's own module loader, which is the
// same executable.
//
// # Warm guests
//
// StartWarm boots a guest that stays up: a daemon (the executable run
// again, calling ServeWarm) holds its qemu and listens on a unix socket
// under WarmDir, a directory only its owner can use (mode 0700, the
// socket 0600); a state file there records the daemon and qemu by
// identity (ProcID: PID and start time), so that stopping a guest never
// signals a recycled PID. FindWarm and WarmGuests find running guests. The
// guest's PID 1 serves runs over the control port (warmMsg, after the
// "serving" message): each client connection is a session the daemon
// numbers, and each run a child process of the guest's program, with its
// own arguments, environment, working directory, stdin (/dev/null, a
// pipe or a terminal) and output, relayed as messages, and the exit code.
// Checked runs take turns; after each the guest compares its named
// namespaces, links, BPF links, pins and journals with how they were, and
// a guest that differs is reported, serves no more checked runs and is
// stopped by the client (WarmState.Run). A client that goes away ends its
// run with SIGTERM (and after 20 seconds SIGKILL and nkscript cleanup in
// the guest). A warm guest reads the host's installed software (/usr,
// /etc, ...) through a caching mount and the rest through one that does
// not cache, so that it sees scripts as they are now (but under /tmp,
// whose overlay keeps what it has read); InWarmGuest tells a run it is in
// one.
//
// # Kernels
//
// The kernels Run can fetch are pinned Debian packages, PinnedKernels:
// DefaultKernel, which it boots when Options.Kernel is empty,
// LegacyKernel, which Options.Kernel "6.1" names, and NewestKernel ("7.3",
// from trixie-backports, in three packages). EnsureKernelSpec downloads
// one with apt-get (suites of another Debian release through a private
// APT configuration), checks its SHA256 and keeps, under CacheDir,
// the bzImage, its config, the kernel uncompressed (which boots faster) and
// the modules nkscript may need with the index the guest's module loader
// reads. ListKernels lists the cached kernels. Options.Kernel may also be
// the path of another bzImage, which InspectKernel describes.
//
// # The guest program
//
// A program that may be booted this way starts with:
//
//	func main() {
//		if vm.IsGuest() {
//			vm.Guest(realMain)
//		}
//		os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
//	}
//
// It must be built with CGO_ENABLED=0. The guest never writes to the host:
// what it writes under /tmp stays in the guest, and it has its own /run, in
// which the host's files are not visible. InGuest tells any process whether
// it runs in such a guest.
package vm
