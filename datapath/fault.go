package datapath

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// FaultEnv names the environment variable that tests set to make the k-th
// kernel-changing operation of a run fail, to prove that a run failing at
// any point still cleans up. It is a test hook; users never set it.
const FaultEnv = "NKSCRIPT_TEST_FAULT"

// faultFromEnv reads the test hook: "K" fails the K-th operation,
// "panic:K" panics in it (a bug in nkscript, as the run sees it).
func faultFromEnv() (k int, panics bool) {
	v := os.Getenv(FaultEnv)
	if rest, ok := strings.CutPrefix(v, "panic:"); ok {
		v, panics = rest, true
	}
	k, err := strconv.Atoi(v)
	if err != nil || k < 1 {
		return 0, false
	}
	return k, panics
}

// fault counts one kernel-changing operation and fails it if it is the
// one the test hook selected. Callers hold no lock or l.mu; ops is only
// touched from the goroutine running the script.
func (l *Lab) fault(op string) error {
	l.ops++
	if l.faultAt != 0 && l.ops == l.faultAt {
		if l.faultPanics {
			panic(fmt.Sprintf("%s: injected panic at operation %d (%s)", op, l.ops, FaultEnv))
		}
		return fmt.Errorf("%s: injected fault at operation %d (%s)", op, l.ops, FaultEnv)
	}
	return nil
}

// Ops is the number of kernel-changing operations the lab has performed.
func (l *Lab) Ops() int { return l.ops }
