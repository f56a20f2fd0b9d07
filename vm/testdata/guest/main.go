// Command guest is the program the vm tests boot: a few subcommands that
// exercise the guest side of vm.Run.
package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nkscript/nkscript/vm"
)

// atInit is what the program saw of its environment while package inits
// ran: Guest runs them only once the guest is set up.
var atInit = func() (s struct {
	mountinfo string // /proc/self/mountinfo, or the error reading it
	env, wd   string
}) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		s.mountinfo = err.Error()
	} else {
		s.mountinfo = string(b)
	}
	s.env = os.Getenv("NKTEST")
	s.wd, _ = os.Getwd()
	return s
}()

// command is one subcommand: it gets the arguments after its name.
type command func(args []string, stdout, stderr io.Writer) int

// commands are the subcommands, by name.
var commands = map[string]command{
	"true":   func([]string, io.Writer, io.Writer) int { return 0 },
	"write":  write,
	"cat":    cat,
	"env":    env,
	"init":   initState,
	"tmp":    tmp,
	"netkit": netkitPair,
	"veth":   vethPair,
	"exec":   execProgram,
	"spew":   spew,
	"panic":  func([]string, io.Writer, io.Writer) int { panic("boom") },
	"kpanic": kernelPanic,
	"sleep":  sleep,
}

func main() {
	if vm.IsGuest() {
		vm.Guest(dispatch)
	}
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

// dispatch runs the subcommand args[0].
func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: guest CMD [ARG...]")
		return 64
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "unknown command %q\n", args[0])
		return 64
	}
	return cmd(args[1:], stdout, stderr)
}

// write OUT ERR CODE: write OUT to stdout and ERR to stderr, exit with CODE.
func write(args []string, stdout, stderr io.Writer) int {
	io.WriteString(stdout, args[0])
	io.WriteString(stderr, args[1])
	code, _ := strconv.Atoi(args[2])
	return code
}

// cat FILE: copy FILE to stdout.
func cat(args []string, stdout, stderr io.Writer) int {
	b, err := os.ReadFile(args[0])
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	stdout.Write(b)
	return 0
}

// env NAME: print the working directory and $NAME.
func env(args []string, stdout, stderr io.Writer) int {
	wd, _ := os.Getwd()
	fmt.Fprintf(stdout, "%s\n%s\n", wd, os.Getenv(args[0]))
	return 0
}

// init: print what package inits saw: $NKTEST, the working directory and
// mountinfo.
func initState(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintf(stdout, "%s\n%s\n%s", atInit.env, atInit.wd, atInit.mountinfo)
	return 0
}

// tmp FILE...: print each FILE, then write each and print it again.
func tmp(args []string, stdout, stderr io.Writer) int {
	for _, f := range args {
		b, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: %q\n", f, b)
	}
	for _, f := range args {
		if err := os.WriteFile(f, []byte("from the guest"), 0o644); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		b, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: %q\n", f, b)
	}
	return 0
}

// netkit: add a netkit pair nk0/nk1 and print the peer's name and type.
func netkitPair(args []string, stdout, stderr io.Writer) int {
	nk := &netlink.Netkit{LinkAttrs: netlink.LinkAttrs{Name: "nk0"}, Mode: netlink.NETKIT_MODE_L3}
	nk.SetPeerAttrs(&netlink.LinkAttrs{Name: "nk1"})
	return addPair(nk, "netkit", "nk1", stdout, stderr)
}

// veth: add a veth pair v0/v1, which needs the veth module loaded on
// demand, and print the peer's name and type.
func vethPair(args []string, stdout, stderr io.Writer) int {
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "v0"}, PeerName: "v1"}
	return addPair(v, "veth", "v1", stdout, stderr)
}

// addPair adds the pair link, of the kind what, and prints the name and
// type of its peer.
func addPair(link netlink.Link, what, peer string, stdout, stderr io.Writer) int {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if err := h.LinkAdd(link); err != nil {
		fmt.Fprintf(stderr, "add %s: %v\n", what, err)
		return 1
	}
	l, err := h.LinkByName(peer)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s %s\n", l.Attrs().Name, l.Type())
	return 0
}

// exec PROG ARG...: run a host program, sharing stdout and stderr.
func execProgram(args []string, stdout, stderr io.Writer) int {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// spew N: write N pattern bytes to stdout and N/4 to stderr, at once.
func spew(args []string, stdout, stderr io.Writer) int {
	n, _ := strconv.Atoi(args[0])
	done := make(chan struct{})
	go func() { stderr.Write(pattern(n / 4)); close(done) }()
	stdout.Write(pattern(n))
	<-done
	return 0
}

// kpanic: crash the guest kernel.
func kernelPanic(args []string, stdout, stderr io.Writer) int {
	if err := os.WriteFile("/proc/sys/kernel/sysrq", []byte("1"), 0); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	os.WriteFile("/proc/sysrq-trigger", []byte("c"), 0)
	return 1
}

// sleep: announce, then hang until killed.
func sleep(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stdout, "sleeping")
	select {}
}

// pattern returns n bytes of lines of letters; the tests make the same.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		if i%64 == 63 {
			b[i] = '\n'
		} else {
			b[i] = byte('a' + i%26)
		}
	}
	return b
}
