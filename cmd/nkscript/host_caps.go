package main

import (
	"fmt"
	"os"

	"github.com/nkscript/nkscript/internal/caps"
	"github.com/nkscript/nkscript/vm"
)

// vmForCaps says, for --vm=auto, whether the run goes to a microVM because
// this process lacks the capabilities a lab on the host needs (an
// ordinary user: in the guest nkscript is root), and why.
func vmForCaps() (bool, string) {
	missing := caps.MissingForLab()
	if len(missing) == 0 || vm.HostCanRunVM() != nil {
		return false, ""
	}
	return true, fmt.Sprintf("this process (uid %d) lacks %s, which a lab on the host needs", os.Geteuid(), caps.List(missing))
}

// hostCapsError is why a lab cannot run on this host for lack of
// capabilities, naming them and the ways out, or nil.
func hostCapsError() error {
	missing := caps.MissingForLab()
	if len(missing) == 0 {
		return nil
	}
	way := "or in a microVM with --vm"
	if err := vm.HostCanRunVM(); err != nil {
		way = fmt.Sprintf("(a microVM, --vm, cannot run here: %v)", err)
	}
	return fmt.Errorf("a lab on the host needs %s, which this process (uid %d) lacks: run nkscript as root (sudo), %s",
		caps.List(missing), os.Geteuid(), way)
}
