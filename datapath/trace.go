package datapath

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// TraceFSDir is where the kernel's tracing filesystem is (mounted if it
// is not).
const TraceFSDir = "/sys/kernel/tracing"

// Tracer collects the lines BPF programs write with bpf_printk, without
// touching the global trace buffer others read: bpf_trace_printk also
// fires the bpf_trace:bpf_trace_printk trace event, which the tracer
// enables in a tracing instance of its own and reads from that
// instance's trace_pipe. The kernel does not say which program wrote a
// line: a tracer sees the lines of every program on the machine.
type Tracer struct {
	dir  string
	pipe *os.File

	mu    sync.Mutex
	lines []string
	subs  []func(string)
	last  time.Time
	wg    sync.WaitGroup
}

// startTracer creates the tracing instance nkscript-PID and starts
// reading it. Where tracefs is not mounted at TraceFSDir, it mounts
// tracefs on a directory of its own, which it alone uses and removes:
// instances live in the kernel whatever the mount point, and a mount of
// its own leaves TraceFSDir as the run found it, whoever else traces at
// the same time. record journals what it creates before it creates it.
func startTracer(record func(Record) error) (*Tracer, error) {
	root := TraceFSDir
	instance := fmt.Sprintf("nkscript-%d", os.Getpid())
	if _, err := os.Stat(filepath.Join(TraceFSDir, "instances")); errors.Is(err, os.ErrNotExist) {
		if root, err = mountTraceFS(instance, record); err != nil {
			return nil, err
		}
	}
	t := &Tracer{dir: filepath.Join(root, "instances", instance)}
	if err := record(&TraceRecord{Path: t.dir}); err != nil {
		return nil, err
	}
	if err := os.Mkdir(t.dir, 0o700); err != nil {
		return nil, fmt.Errorf("trace: create tracing instance: %w", err)
	}
	if err := os.WriteFile(filepath.Join(t.dir, "events/bpf_trace/bpf_trace_printk/enable"), []byte("1"), 0); err != nil {
		return nil, fmt.Errorf("trace: enable bpf_trace_printk events (needs CONFIG_BPF_EVENTS): %w", err)
	}
	// Non-blocking, so that the runtime poller serves the reads and
	// Close interrupts one in progress.
	var err error
	if t.pipe, err = os.OpenFile(filepath.Join(t.dir, "trace_pipe"), os.O_RDONLY|unix.O_NONBLOCK, 0); err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	t.wg.Go(t.read)
	return t, nil
}

func (t *Tracer) read() {
	r := bufio.NewReader(t.pipe)
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			msg := strings.TrimRight(line, "\n")
			if _, after, ok := strings.Cut(msg, "bpf_trace_printk: "); ok {
				msg = after
			}
			t.mu.Lock()
			t.lines = append(t.lines, msg)
			t.last = time.Now()
			subs := t.subs
			t.mu.Unlock()
			for _, f := range subs {
				f(msg)
			}
		}
		if err != nil {
			return
		}
	}
}

// Subscribe passes every line read from now on to f.
func (t *Tracer) Subscribe(f func(string)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.subs = append(t.subs, f)
}

// Lines returns the messages read so far (the text bpf_printk wrote),
// after waiting until none has arrived for quiet (at most max), so that
// lines of packets just sent are included.
func (t *Tracer) Lines(quiet, max time.Duration) []string {
	end := time.Now().Add(max)
	time.Sleep(quiet)
	for time.Now().Before(end) {
		t.mu.Lock()
		idle := time.Since(t.last)
		t.mu.Unlock()
		if idle >= quiet {
			break
		}
		time.Sleep(quiet / 2)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.lines...)
}

// LinesWithPrefix is Lines keeping only the messages that start with
// prefix. The kernel does not say which program wrote a line, so a
// program that marks its messages with a prefix of its own (bpf_printk("own:
// ...")) is told apart from the others by that prefix: the only tag a
// line carries besides the task that was running, which is the context's
// (a ping, a softirq), not the program's.
func (t *Tracer) LinesWithPrefix(prefix string, quiet, max time.Duration) []string {
	var out []string
	for _, l := range t.Lines(quiet, max) {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// Close stops the tracer: it stops the events and the reader. The
// instance itself is removed by the undo of its record (rmdir fails while
// the pipe is open).
func (t *Tracer) Close() error {
	if t.dir == "" {
		return nil
	}
	os.WriteFile(filepath.Join(t.dir, "events/bpf_trace/bpf_trace_printk/enable"), []byte("0"), 0)
	if t.pipe != nil {
		t.pipe.Close()
	}
	t.wg.Wait()
	return nil
}

func removeTraceInstance(dir string) error {
	var err error
	for range 50 {
		err = unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("remove tracing instance %s: %w", dir, err)
}

// mountTraceFS mounts tracefs on a new directory, for the tracing
// instance called instance, and returns it.
func mountTraceFS(instance string, record func(Record) error) (string, error) {
	dir, err := os.MkdirTemp("", "nkscript-tracefs-")
	if err != nil {
		return "", fmt.Errorf("trace: %w", err)
	}
	if err := record(&TraceFSRecord{Path: dir, Instance: instance}); err != nil {
		os.Remove(dir)
		return "", err
	}
	if err := unix.Mount("tracefs", dir, "tracefs", 0, ""); err != nil {
		return "", fmt.Errorf("trace: mount tracefs on %s: %w", dir, err)
	}
	return dir, nil
}

// unmountTraceFS unmounts the tracefs nkscript mounted on dir for the
// tracing instance called instance, and removes dir; a dir that is gone,
// or holds no tracefs, is left as it is. While the instance is still
// there (its removal failed) it is an error: the journal keeps the mount,
// through which `nkscript cleanup` removes the instance first.
func unmountTraceFS(dir, instance string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	if st.Type == unix.TRACEFS_MAGIC && instance != "" {
		if _, err := os.Stat(filepath.Join(dir, "instances", instance)); err == nil {
			return fmt.Errorf("unmount %s: the tracing instance %s is still there", dir, instance)
		}
	}
	if st.Type == unix.TRACEFS_MAGIC {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("unmount %s: %w", dir, err)
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}
