package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/nkscript/nkscript/datapath"
)

// isolatedShell gives the process it starts named network namespaces of
// its own: a tmpfs on datapath.NetnsDir, in a mount namespace of its own.
var isolatedShell = fmt.Sprintf(`mkdir -p %[1]s && mount -t tmpfs nkscript-netns %[1]s && exec "$0" "$@"`, datapath.NetnsDir)

// isolatedRunner returns what runs `nkscript ARGS` in network and mount
// namespaces of its own (unshare), or nil where unshare is missing. When
// ctx ends, the process gets SIGTERM and cleans up.
func isolatedRunner(o *options) func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		return nil
	}
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintf(stderr, "nkscript: %v\n", err)
			return exitFail
		}
		child := *o
		child.json = false
		argv := append([]string{"--net", "--mount", "--propagation", "private", "--", "sh", "-c", isolatedShell, exe}, childFlags(&child)...)
		cmd := exec.CommandContext(ctx, unshare, append(argv, args...)...)
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.WaitDelay = time.Minute
		cmd.Stdout, cmd.Stderr = stdout, stderr
		err = cmd.Run()
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			return exit.ExitCode()
		case err != nil:
			fmt.Fprintf(stderr, "nkscript: %v\n", err)
			return exitFail
		}
		return exitOK
	}
}
