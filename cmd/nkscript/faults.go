package main

import (
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/nkscript/nkscript/datapath"
)

// faultEnv names the environment variable the reliability tests set to
// make the K-th kernel-changing operation of a run fail ("K"), panic
// ("panic:K"), the K-th undo step fail ("undo:K") or panic
// ("undo-panic:K"), or to have the run count them ("count": it then
// prints, once the lab is gone, how many operations and undo steps it
// performed and how often it reached each fault point). Users never set
// it.
const faultEnv = "NKSCRIPT_TEST_FAULT"

// phasesFDEnv names a file descriptor, for tests only, on which a script
// run writes one byte each time its phase changes: 'b' (building: a
// kernel-changing operation), 't' (traffic: ping, probe, connect, serve,
// exec, capture), 'd' (teardown). Before the first byte the run is
// starting up.
const phasesFDEnv = "NKSCRIPT_TEST_PHASES_FD"

// phaseBytes are the bytes phasesFDEnv writes, by phase.
var phaseBytes = map[string]byte{"building": 'b', "traffic": 't', "teardown": 'd'}

// faultPlan is the plan faultEnv asks for, or nil.
func faultPlan() *datapath.FaultPlan {
	p, err := datapath.ParseFaultPlan(os.Getenv(faultEnv))
	if err != nil {
		return nil
	}
	return p
}

// testHooks are the test-only hooks of a script run: the fault plan
// faultEnv asks for (a counting one if only phasesFDEnv is set, nil if
// neither), the lab's Closing hook, which marks the teardown phase, and
// done, which prints what a "count" plan counted once the lab is gone.
func testHooks(stderr io.Writer) (plan *datapath.FaultPlan, closing func(*datapath.Lab), done func()) {
	plan = faultPlan()
	phases := phasesFile()
	if plan == nil && phases == nil {
		return nil, nil, func() {}
	}
	if plan == nil {
		plan = &datapath.FaultPlan{}
	}
	if phases != nil {
		plan.Phase = func(phase string) { phases.Write([]byte{phaseBytes[phase]}) }
	}
	closing = func(*datapath.Lab) { plan.SetPhase("teardown") }
	done = func() {
		if os.Getenv(faultEnv) == "count" {
			fmt.Fprintf(stderr, "nkscript: test: %d kernel-changing operations, %d undo steps\n", plan.Ops(), plan.Undos())
			fmt.Fprintf(stderr, "nkscript: test: fault points reached: %s\n", plan.FormatReached())
		}
		if phases != nil {
			phases.Close()
		}
	}
	return plan, closing, done
}

// phasesFile is the descriptor phasesFDEnv names, or nil.
func phasesFile() *os.File {
	fd, err := strconv.Atoi(os.Getenv(phasesFDEnv))
	if err != nil || fd < 3 {
		return nil
	}
	return os.NewFile(uintptr(fd), "phases")
}
