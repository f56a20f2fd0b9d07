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

func main() {
	if vm.IsGuest() {
		vm.Guest(run)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: guest CMD [ARG...]")
		return 64
	}
	switch args[0] {
	case "true":
		return 0
	case "write": // write OUT ERR CODE
		io.WriteString(stdout, args[1])
		io.WriteString(stderr, args[2])
		code, _ := strconv.Atoi(args[3])
		return code
	case "cat": // cat FILE
		b, err := os.ReadFile(args[1])
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		stdout.Write(b)
		return 0
	case "env": // env NAME: print the working directory and $NAME
		wd, _ := os.Getwd()
		fmt.Fprintf(stdout, "%s\n%s\n", wd, os.Getenv(args[1]))
		return 0
	case "init": // what package inits saw: mountinfo, $NKTEST, working directory
		fmt.Fprintf(stdout, "%s\n%s\n%s", atInit.env, atInit.wd, atInit.mountinfo)
		return 0
	case "tmp": // tmp READ WRITE: print READ, then write READ and WRITE and print them
		for _, f := range args[1:] {
			b, err := os.ReadFile(f)
			if err != nil && !os.IsNotExist(err) {
				fmt.Fprintln(stderr, err)
				return 1
			}
			fmt.Fprintf(stdout, "%s: %q\n", f, b)
		}
		for _, f := range args[1:] {
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
	case "netkit":
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		nk := &netlink.Netkit{LinkAttrs: netlink.LinkAttrs{Name: "nk0"}, Mode: netlink.NETKIT_MODE_L3}
		nk.SetPeerAttrs(&netlink.LinkAttrs{Name: "nk1"})
		if err := h.LinkAdd(nk); err != nil {
			fmt.Fprintf(stderr, "add netkit: %v\n", err)
			return 1
		}
		l, err := h.LinkByName("nk1")
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s %s\n", l.Attrs().Name, l.Type())
		return 0
	case "veth": // needs the veth module, loaded on demand
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "v0"}, PeerName: "v1"}
		if err := h.LinkAdd(v); err != nil {
			fmt.Fprintf(stderr, "add veth: %v\n", err)
			return 1
		}
		l, err := h.LinkByName("v1")
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s %s\n", l.Attrs().Name, l.Type())
		return 0
	case "exec": // exec PROG ARG...: run a host program, sharing stdout and stderr
		cmd := exec.Command(args[1], args[2:]...)
		cmd.Stdout, cmd.Stderr = stdout, stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		return 0
	case "spew": // spew N: N pattern bytes to stdout, N/4 to stderr, at once
		n, _ := strconv.Atoi(args[1])
		done := make(chan struct{})
		go func() { stderr.Write(pattern(n / 4)); close(done) }()
		stdout.Write(pattern(n))
		<-done
		return 0
	case "panic":
		panic("boom")
	case "kpanic": // crash the guest kernel
		if err := os.WriteFile("/proc/sys/kernel/sysrq", []byte("1"), 0); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		os.WriteFile("/proc/sysrq-trigger", []byte("c"), 0)
		return 1
	case "sleep": // announce, then hang until killed
		fmt.Fprintln(stdout, "sleeping")
		select {}
	}
	fmt.Fprintf(stderr, "unknown command %q\n", args[0])
	return 64
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
