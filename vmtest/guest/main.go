// Command guest is the /init the in-guest test suites boot: it runs its
// arguments as a command inside the microVM and reports its exit code.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"

	"github.com/nkscript/nkscript/vm"
)

func main() {
	if !vm.IsGuest() {
		fmt.Fprintln(os.Stderr, "guest: only runs as the init of an nkscript microVM")
		os.Exit(2)
	}
	vm.Guest(run)
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "guest: no command")
		return 2
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return exit.ExitCode()
	case err != nil:
		fmt.Fprintf(stderr, "guest: %v\n", err)
		return 2
	}
	return 0
}
