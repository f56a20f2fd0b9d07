package vm

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// Errors Run returns, possibly wrapped.
var (
	// ErrNoQemu means qemu-system-x86_64 is not installed.
	ErrNoQemu = errors.New("qemu-system-x86_64 not found: install the qemu-system-x86 package")
	// ErrBootTimeout means the guest did not come up within BootTimeout.
	ErrBootTimeout = errors.New("guest did not come up in time")
	// ErrKernelPanic means the guest kernel panicked.
	ErrKernelPanic = errors.New("guest kernel panic")
)

// DefaultBootTimeout is the BootTimeout used when Options leaves it zero.
// It is generous because without KVM qemu emulates the CPU (TCG).
const DefaultBootTimeout = 60 * time.Second

// Options configures Run.
type Options struct {
	// Kernel is the bzImage to boot; "" boots the default kernel, fetched
	// by EnsureKernel if it is not cached.
	Kernel string
	// Binary is the static executable booted as the guest's /init; ""
	// means the running executable (os.Executable). It must call Guest
	// when IsGuest is true.
	Binary string
	// Args is the argv of the guest program, without argv[0].
	Args []string
	// Dir is the guest program's working directory, normally the host's.
	Dir string
	// Env is the guest program's environment.
	Env []string
	// Stdout and Stderr receive the guest program's output; nil discards it.
	Stdout, Stderr io.Writer
	// BootTimeout bounds the time from starting qemu until the guest
	// reports in; 0 means DefaultBootTimeout.
	BootTimeout time.Duration
	// Memory is the guest's memory in qemu syntax; "" means "1G".
	Memory string
	// CPUs is the number of virtual CPUs; 0 means 2.
	CPUs int
	// Verbose copies the guest kernel's console to Stderr and makes the
	// kernel less quiet.
	Verbose bool
	// Timing, if not nil, is filled with how long the phases of the run
	// took.
	Timing *Timing
	// Prepare, if not nil, is called with the kernel before it boots; it
	// returns environment variables (KEY=VALUE) that every guest program
	// of the boot gets: the run's, and each run of a warm guest.
	Prepare func(KernelInfo) []string
}

// Timing tells how long the phases of a Run took, measured on the host from
// the start of qemu.
type Timing struct {
	// Ready is when the guest's /init reported in.
	Ready time.Duration
	// Main is when the guest called the program's main function.
	Main time.Duration
	// Exit is when the guest reported main's exit code.
	Exit time.Duration
	// Total is when qemu had exited.
	Total time.Duration
}

// Run boots a microVM running the guest program (Options.Binary, by default
// this executable) with Options.Args, streams its stdout and stderr to
// Options.Stdout and Options.Stderr and returns its exit code. qemu is
// killed on every path out of Run, and dies with the calling process even
// if that is killed. If ctx is cancelled, Run kills qemu and returns
// ctx.Err().
func Run(ctx context.Context, o Options) (int, error) {
	o = o.withDefaults()
	qemu, err := qemuPath()
	if err != nil {
		return 0, err
	}
	bin := o.Binary
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return 0, fmt.Errorf("vm: %w", err)
		}
	}
	ki, err := bootKernel(ctx, o)
	if err != nil {
		return 0, fmt.Errorf("vm: kernel: %w", err)
	}
	if o.Prepare != nil {
		o.Env = append(slices.Clip(o.Env), o.Prepare(ki)...)
	}
	initrd, err := initramfs(bin, ki)
	if err != nil {
		return 0, fmt.Errorf("vm: initramfs: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	r := &runner{o: o, ki: ki}
	return r.run(ctx, qemu, initrd)
}

// withDefaults returns o with its zero fields set to their defaults.
func (o Options) withDefaults() Options {
	if o.Stdout == nil {
		o.Stdout = io.Discard
	}
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
	if o.BootTimeout <= 0 {
		o.BootTimeout = DefaultBootTimeout
	}
	if o.Memory == "" {
		o.Memory = "1G"
	}
	if o.CPUs <= 0 {
		o.CPUs = 2
	}
	if o.Timing == nil {
		o.Timing = new(Timing)
	}
	return o
}

// bootKernel returns the kernel o asks for: the default kernel, a pinned
// kernel by version ("6.1", "6.12"), or a bzImage by path. It fetches a
// pinned kernel that is not cached.
func bootKernel(ctx context.Context, o Options) (KernelInfo, error) {
	if o.Kernel == "" {
		return EnsureKernel(ctx, o.Stderr)
	}
	if spec, ok := PinnedKernel(o.Kernel); ok {
		return EnsureKernelSpec(ctx, spec, o.Stderr)
	}
	return InspectKernel(o.Kernel)
}

// runner is the host side of one Run: it drives qemu and follows the
// guest's messages on the control port.
type runner struct {
	o     Options
	ki    KernelInfo
	serve bool // boot a warm guest (see ServeWarm)

	start   time.Time // when qemu was started; Timing counts from it
	console ringBuffer
	qemuErr ringBuffer
	copiers sync.WaitGroup // copies of qemu's output pipes

	mu       sync.Mutex
	outBytes int64
	errBytes int64
	progress chan struct{} // poked when output arrives
}

// run starts qemu, sends the request and waits for the guest program's
// exit code. All output is delivered before run returns.
func (r *runner) run(ctx context.Context, qemu, initrd string) (int, error) {
	r.start = time.Now()
	r.progress = make(chan struct{}, 1)
	p, err := r.startQemu(qemu, initrd)
	if err != nil {
		return 0, err
	}
	defer p.close()
	r.copyOutput(p)
	defer func() {
		p.kill()
		// The pipes reach EOF now that qemu is gone.
		r.copiers.Wait()
	}()

	if err := r.sendRequest(p.ctl); err != nil {
		return 0, err
	}
	exit, err := r.await(ctx, p, readMessages(p.ctl))
	if err != nil {
		return 0, err
	}
	r.copiers.Wait()
	r.o.Timing.Total = time.Since(r.start)
	if exit != nil {
		return exit.Code, nil
	}
	return 0, r.exitError(p.waitErr)
}

// copyOutput copies what qemu writes to the stdout and stderr ports and to
// the console until the pipes reach EOF.
func (r *runner) copyOutput(p *qemuProcess) {
	var consoleDst io.Writer = &r.console
	if r.o.Verbose {
		consoleDst = io.MultiWriter(&r.console, r.o.Stderr)
	}
	var consoleBytes int64
	r.copiers.Add(3)
	go r.copyPipe(p.stdout, r.o.Stdout, &r.outBytes)
	go r.copyPipe(p.stderr, r.o.Stderr, &r.errBytes)
	go r.copyPipe(p.console, consoleDst, &consoleBytes)
}

// copyPipe copies src to dst until EOF, adding what it copied to count
// and poking r.progress.
func (r *runner) copyPipe(src *os.File, dst io.Writer, count *int64) {
	defer r.copiers.Done()
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			dst.Write(buf[:n])
			r.mu.Lock()
			*count += int64(n)
			r.mu.Unlock()
			select {
			case r.progress <- struct{}{}:
			default:
			}
		}
		if err != nil {
			return
		}
	}
}

// sendRequest sends the guest what to run, and where and how.
func (r *runner) sendRequest(ctl *os.File) error {
	req := request{Args: r.o.Args, Env: r.o.Env, Dir: r.o.Dir, Modules: r.ki.Modules, Verbose: r.o.Verbose}
	if req.Args == nil {
		req.Args = []string{}
	}
	b, _ := json.Marshal(req)
	if _, err := ctl.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("vm: send request: %w", err)
	}
	return nil
}

// readMessages returns the guest's messages on ctl, closed at EOF.
func readMessages(ctl *os.File) <-chan message {
	msgs := make(chan message, 8)
	go func() {
		defer close(msgs)
		sc := bufio.NewScanner(ctl)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var m message
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				msgs <- m
			}
		}
	}()
	return msgs
}

// await follows the guest's messages until qemu has exited, and returns
// the guest's exit message, nil if qemu exited without one. Once the exit
// message has come and all the output it counts has arrived, it
// acknowledges it, and the guest powers off.
func (r *runner) await(ctx context.Context, p *qemuProcess, msgs <-chan message) (*message, error) {
	bootTimer := time.NewTimer(r.o.BootTimeout)
	defer bootTimer.Stop()
	var exit *message
	for !p.done {
		var waitOutput <-chan struct{}
		if exit != nil {
			waitOutput = r.progress
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-bootTimer.C:
			return nil, fmt.Errorf("vm: %w: no word from the guest within %v%s", ErrBootTimeout, r.o.BootTimeout, r.consoleTail())
		case m, ok := <-msgs:
			if !ok {
				msgs = nil
				continue
			}
			switch m.Type {
			case "ready":
				r.o.Timing.Ready = time.Since(r.start)
				bootTimer.Stop()
			case "start":
				r.o.Timing.Main = time.Since(r.start)
			case "error":
				return nil, fmt.Errorf("vm: guest: %s", m.Error)
			case "exit":
				r.o.Timing.Exit = time.Since(r.start)
				exit = &m
			}
		case <-waitOutput:
		case err := <-p.exited:
			p.exitedWith(err)
		}
		if exit != nil && !p.done && r.haveOutput(exit) {
			if err := ackExit(ctx, p); err != nil {
				return nil, err
			}
		}
	}
	return exit, nil
}

// ackExit tells the guest that the host has all its output and waits for
// qemu to exit as the guest powers off; after 30 seconds it kills qemu.
func ackExit(ctx context.Context, p *qemuProcess) error {
	p.ctl.Write([]byte("{\"type\":\"ack\"}\n"))
	select {
	case err := <-p.exited:
		p.exitedWith(err)
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(30 * time.Second):
		p.kill()
	}
	return nil
}

// exitError explains why qemu, which exited with status waitErr, did so
// before the guest reported an exit code: a kernel panic, or what qemu
// said.
func (r *runner) exitError(waitErr error) error {
	con := r.console.String()
	if i := strings.LastIndex(con, "Kernel panic - "); i >= 0 {
		line, _, _ := strings.Cut(con[i:], "\n")
		return fmt.Errorf("vm: %w: %s%s", ErrKernelPanic, strings.TrimSpace(line), r.consoleTail())
	}
	msg := strings.TrimSpace(r.qemuErr.String())
	if msg == "" {
		msg = fmt.Sprint(waitErr)
	}
	return fmt.Errorf("vm: qemu exited before the guest program finished: %s%s", msg, r.consoleTail())
}

// haveOutput reports whether all the output the exit message m counts has
// arrived.
func (r *runner) haveOutput(m *message) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.outBytes >= m.Stdout && r.errBytes >= m.Stderr
}

// consoleTail returns the last lines of the guest kernel's console,
// formatted to follow an error message.
func (r *runner) consoleTail() string {
	lines := strings.Split(strings.TrimRight(r.console.String(), "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	s := strings.TrimSpace(strings.Join(lines, "\n"))
	if s == "" {
		return ""
	}
	return "\nlast guest console lines:\n" + strings.Join(lines, "\n")
}
