package vmtest

import (
	"os"
	"testing"

	"github.com/nkscript/nkscript/internal/testenv"
)

// TestMain lists the tests that skipped, and why, after the run; under CI
// a skip whose reason is not on testenv's allow list has failed its test.
func TestMain(m *testing.M) { os.Exit(testenv.Main(m).Run()) }
