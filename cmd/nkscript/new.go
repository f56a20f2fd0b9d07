package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/nkscript/nkscript/scaffold"
	"github.com/spf13/pflag"
)

const newUsageText = `nkscript new writes a new lab that runs and passes its tests as written.

Usage:
  nkscript new NAME

NAME is a directory to create (a path; its last element names the lab). It gets:
  NAME.bpf.c    a BPF program in C: a drop rule on a port set by a volatile const,
                a counter map, bpf_printk lines
  lab.star      a namespace and a netkit pair (veth + tcx where the kernel has no
                netkit), the program attached, expectations, its trace lines
  unit.star     test_* cases running the program on built packets (prog.run)
  lab.golden, unit.golden   their expected output
  README.md     what to edit

Then: nkscript test NAME. nkscript new refuses to write into a directory that
exists.
`

// cmdNew implements `nkscript new NAME`.
func cmdNew(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("nkscript new", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, newUsageText) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintf(stderr, "nkscript new: %v\nRun 'nkscript new --help' for usage.\n", err)
		return exitUsage
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(stderr, "nkscript new: give one NAME, the lab's directory\nRun 'nkscript new --help' for usage.\n")
		return exitUsage
	}
	dir := fs.Arg(0)
	written, err := scaffold.Write(dir)
	if err != nil {
		fmt.Fprintf(stderr, "nkscript new: %v\n", err)
		return exitFail
	}
	for _, f := range written {
		fmt.Fprintf(stdout, "wrote %s\n", f)
	}
	fmt.Fprintf(stdout, "next: nkscript test %s\n", dir)
	return exitOK
}
