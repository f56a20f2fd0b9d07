package main

import (
	"os"

	"github.com/nkscript/nkscript/datapath"
)

// faultEnv names the environment variable the reliability tests set to
// make the K-th kernel-changing operation of a run fail ("K"), panic
// ("panic:K"), or to have the run count them ("count"). Users never set it.
const faultEnv = "NKSCRIPT_TEST_FAULT"

// faultPlan is the plan faultEnv asks for, or nil.
func faultPlan() *datapath.FaultPlan {
	p, err := datapath.ParseFaultPlan(os.Getenv(faultEnv))
	if err != nil {
		return nil
	}
	return p
}
