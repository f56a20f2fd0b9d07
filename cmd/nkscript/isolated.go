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
	"golang.org/x/sys/unix"
)

// isolatedEnv marks a `nkscript test` that isolatedRunner started in
// network and mount namespaces of its own: it mounts a directory of
// named network namespaces of its own (enterIsolated) before it runs.
const isolatedEnv = "NKSCRIPT_ISOLATED_TEST"

// isolatedRunner returns what runs `nkscript ARGS` in network and mount
// namespaces of its own, made as the process is cloned: no unshare(1),
// no shell, which in a microVM under TCG cost half a second a test. When
// ctx ends, the process gets SIGTERM and cleans up.
func isolatedRunner(o *options) func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintf(stderr, "nkscript: %v\n", err)
			return exitFail
		}
		child := *o
		child.json = false
		cmd := exec.CommandContext(ctx, exe, append(childFlags(&child), args...)...)
		cmd.Env = append(os.Environ(), isolatedEnv+"=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNET | unix.CLONE_NEWNS}
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.WaitDelay = time.Minute
		cmd.Stdout, cmd.Stderr = stdout, stderr
		err = cmd.Run()
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			return exit.ExitCode()
		case err != nil:
			fmt.Fprintf(stderr, "nkscript: isolated test run: %v\n", err)
			return exitFail
		}
		return exitOK
	}
}

// enterIsolated gives a process isolatedRunner started, already in mount
// and network namespaces of its own, named network namespaces of its own:
// its mounts stop propagating to the host's, and tmpfs mounts cover
// datapath.NetnsDir and datapath.NetnsTreeDir. Elsewhere it does nothing.
func enterIsolated() error {
	if os.Getenv(isolatedEnv) == "" {
		return nil
	}
	os.Unsetenv(isolatedEnv)
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("isolated test run: make mounts private: %w", err)
	}
	for _, dir := range []string{datapath.NetnsDir, datapath.NetnsTreeDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("isolated test run: %w", err)
		}
		if err := unix.Mount("nkscript-netns", dir, "tmpfs", 0, ""); err != nil {
			return fmt.Errorf("isolated test run: mount %s: %w", dir, err)
		}
	}
	return nil
}
