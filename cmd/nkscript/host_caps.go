package main

import (
	"github.com/nkscript/nkscript/internal/caps"
	"github.com/nkscript/nkscript/vm"
)

// vmForCaps says, for --vm=auto, whether the run goes to a microVM because
// this process lacks the capabilities a lab on the host needs (an
// ordinary user: in the guest nkscript is root), and why.
func vmForCaps() (bool, string) {
	why := caps.LabReason()
	if why == "" || vm.HostCanRunVM() != nil {
		return false, ""
	}
	return true, why
}

// hostCapsError is why a lab cannot run on this host for lack of
// capabilities, naming them and the ways out, or nil.
func hostCapsError() error { return caps.LabError(vm.HostCanRunVM) }
