package vm

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// stage2 is what the first stage hands the second: the open ports and
// what is left of the request. It travels in guestStage2File.
type stage2 struct {
	Args []string `json:"args"`
	Env  []string `json:"env"`
	// Serve makes the second stage a warm guest's server.
	Serve bool `json:"serve,omitempty"`
	// RunEnv is added to the environment of each run a warm guest serves.
	RunEnv []string `json:"run_env,omitempty"`
	// File descriptors of the ports, inherited across execve.
	Ctl    int `json:"ctl"`
	Stdout int `json:"stdout"`
	Stderr int `json:"stderr"`
}

// reexec executes the running program again as PID 1, with the guest set
// up, its environment and working directory those of the host, stdin on
// /dev/null and stdout and stderr on the ports, so that whatever package
// inits print reaches the host, and so does a crash before main. It returns
// only if that fails.
func (g *guest) reexec(req *request) error {
	st := stage2{Args: req.Args, Env: os.Environ(), Serve: req.Serve, RunEnv: req.RunEnv}
	for _, p := range []struct {
		f  *os.File
		fd *int
	}{{g.ctl, &st.Ctl}, {g.stdout, &st.Stdout}, {g.stderr, &st.Stderr}} {
		*p.fd = int(p.f.Fd()) // now in blocking mode, which the next stage keeps
		if _, err := unix.FcntlInt(uintptr(*p.fd), unix.F_SETFD, 0); err != nil {
			return fmt.Errorf("re-exec: %w", err)
		}
	}
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("re-exec: %w", err)
	}
	if err := os.WriteFile(guestStage2File, b, 0o600); err != nil {
		return fmt.Errorf("re-exec: %w", err)
	}
	if null, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0); err == nil {
		unix.Dup2(null, 0)
		unix.Close(null)
	}
	if err := unix.Dup2(st.Stdout, 1); err != nil {
		return fmt.Errorf("re-exec: %w", err)
	}
	if err := unix.Dup2(st.Stderr, 2); err != nil {
		return fmt.Errorf("re-exec: %w", err)
	}
	env := []string{guestEnvMarker + "=" + guestStage2}
	for _, kv := range st.Env {
		if k, _, _ := strings.Cut(kv, "="); k != guestEnvMarker {
			env = append(env, kv)
		}
	}
	err = unix.Exec("/proc/self/exe", os.Args, env)
	return fmt.Errorf("re-exec %s: %w", os.Args[0], err)
}

// runMainStage is the second stage: it takes over the ports, restores the
// host's environment exactly (without the stage marker), runs main and ends
// the VM.
func (g *guest) runMainStage(main func(args []string, stdout, stderr io.Writer) int) {
	defer powerOff()
	g.console, _ = os.OpenFile("/dev/console", os.O_WRONLY, 0)
	var st stage2
	b, err := os.ReadFile(guestStage2File)
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if err != nil {
		// The host reports the console's last lines.
		g.logf("second stage: %v", err)
		return
	}
	os.Remove(guestStage2File)
	for _, fd := range []int{st.Ctl, st.Stdout, st.Stderr} {
		unix.CloseOnExec(fd) // not for main's children
	}
	g.ctl = os.NewFile(uintptr(st.Ctl), "control")
	g.ctlr = bufio.NewReader(g.ctl)
	g.stdout = os.NewFile(uintptr(st.Stdout), "stdout")
	g.stderr = os.NewFile(uintptr(st.Stderr), "stderr")
	// A crash outside main (an unrecovered panic in another goroutine)
	// kills PID 1 and so panics the kernel; show its trace to the user.
	debug.SetCrashOutput(g.stderr, debug.CrashOptions{})
	os.Clearenv()
	for _, kv := range st.Env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			os.Setenv(k, v)
		}
	}

	if st.Serve {
		g.serve(st.RunEnv)
		return
	}
	g.send(message{Type: "start"})
	code, outN, errN := g.runMain(main, st.Args)
	if err := g.send(message{Type: "exit", Code: code, Stdout: outN, Stderr: errN}); err != nil {
		g.logf("send exit: %v", err)
		return
	}
	// Wait until the host has all the output, so that powering off cannot
	// lose what is still in flight.
	acked := make(chan struct{})
	go func() {
		var m message
		for g.readMessage(&m) == nil {
			if m.Type == "ack" {
				break
			}
		}
		close(acked)
	}()
	select {
	case <-acked:
	case <-time.After(10 * time.Second):
		g.logf("no ack from host")
	}
}

// runMain runs main with fds 1 and 2 on pipes that are copied to the
// stdout and stderr ports, and returns its exit code and the number of
// bytes copied to each port.
func (g *guest) runMain(main func(args []string, stdout, stderr io.Writer) int, args []string) (code int, outN, errN int64) {
	var wg sync.WaitGroup
	var counts [2]int64
	for i, port := range []*os.File{g.stdout, g.stderr} {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			g.logf("pipe: %v", err)
			return 2, 0, 0
		}
		if err := unix.Dup2(p[1], i+1); err != nil {
			g.logf("dup2: %v", err)
			return 2, 0, 0
		}
		unix.Close(p[1])
		r := os.NewFile(uintptr(p[0]), "pipe")
		wg.Add(1)
		go func() {
			defer wg.Done()
			counts[i], _ = io.CopyBuffer(port, r, make([]byte, 64<<10))
			r.Close()
		}()
	}
	if null, err := unix.Open("/dev/null", unix.O_RDWR, 0); err == nil {
		unix.Dup2(null, 0)
		unix.Close(null)
	}

	code = func() (code int) {
		defer func() {
			if r := recover(); r != nil {
				fmt.Fprintf(os.Stderr, "panic: %v\n\n%s", r, debug.Stack())
				code = 2
			}
		}()
		return main(args, os.Stdout, os.Stderr)
	}()

	// Kill whatever main left running (everything but PID 1) so that the
	// pipes reach EOF, then wait for the copies to finish.
	unix.Kill(-1, unix.SIGKILL)
	if null, err := unix.Open("/dev/null", unix.O_RDWR, 0); err == nil {
		unix.Dup2(null, 1)
		unix.Dup2(null, 2)
		unix.Close(null)
	}
	wg.Wait()
	return code, counts[0], counts[1]
}
