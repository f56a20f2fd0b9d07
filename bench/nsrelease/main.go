// Command nsrelease runs a command and measures how long after it exits
// the kernel has finished releasing the network namespaces it deleted.
//
//	nsrelease [--timeout 30s] [--quiet 300ms] [--no-wait] -- CMD [ARG...]
//
// Deleting a namespace only queues it: the kernel's cleanup_net work
// dismantles queued namespaces later, in batches, and until it has
// finished, that work competes with whatever runs next. nsrelease watches
// that one work item with three raw tracepoint programs (netns_count.c),
// runs CMD with its standard streams passed through, and once CMD has
// exited waits until cleanup_net has been neither queued nor running for
// --quiet (the last references to a namespace often go a few ms after its
// process exits: sockets are freed after an RCU grace period). It prints
// one line on stderr:
//
//	nsrelease: wall_us=W cleanup_runs=C release_us=T
//
// W is CMD's wall time, C how many times
// cleanup_net ran from CMD's start until the end, and T the time from
// CMD's exit until the last of those runs finished (0 if none was left to
// do when it exited; -1 if it had not finished within --timeout). With
// --no-wait it prints only W, right after CMD exits, so that a next
// run starts while the kernel is still busy with this one's namespaces.
// The exit status is CMD's. Needs root and a kernel with BTF.
//
// It does not report peak memory: Go starts a child with vfork, and Linux
// counts the memory the child shared with its parent before exec in the
// child's peak, so the figure would be nsrelease's own. make bench takes
// it from /usr/bin/time, which forks from a small process.
package main

//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -cflags "-O2 -g -Wall -Werror -I../../bpf/include" netnsCount netns_count.c

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
)

func main() {
	os.Exit(run())
}

func run() int {
	fs := pflag.NewFlagSet("nsrelease", pflag.ContinueOnError)
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the namespaces to be freed")
	quiet := fs.Duration("quiet", 300*time.Millisecond, "how long the cleanup work must stay idle to count as done")
	noWait := fs.Bool("no-wait", false, "return as soon as CMD exits (no release_us): for runs back to back")
	if err := fs.Parse(os.Args[1:]); err != nil || fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: nsrelease [--timeout D] -- CMD [ARG...]")
		return 2
	}
	w, err := newWatcher()
	if err != nil {
		fmt.Fprintln(os.Stderr, "nsrelease:", err)
		return 2
	}
	defer w.close()

	runs0 := w.get(w.objs.Runs)
	cmd := exec.Command(fs.Arg(0), fs.Args()[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	start := time.Now()
	err = cmd.Run()
	exited := monotonic()
	wall := time.Since(start)
	status := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			fmt.Fprintln(os.Stderr, "nsrelease:", err)
			return 2
		}
		status = ee.ExitCode()
	}
	// The last references often go a few ms after the exit (sockets are
	// freed after an RCU grace period), so the work may not even be
	// queued yet: released means idle for a whole --quiet window.
	if *noWait {
		fmt.Fprintf(os.Stderr, "nsrelease: wall_us=%d\n", wall.Microseconds())
		return status
	}
	release := time.Duration(-1)
	var idleSince time.Time
	for deadline := time.Now().Add(*timeout); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if w.get(w.objs.Pending) != 0 || w.get(w.objs.Running) != 0 {
			idleSince = time.Time{}
			continue
		}
		if idleSince.IsZero() {
			idleSince = time.Now()
		}
		if time.Since(idleSince) < *quiet {
			continue
		}
		if last := uint64(w.get(w.objs.LastEndNs)); last > exited {
			release = time.Duration(last - exited)
		} else {
			release = 0
		}
		break
	}
	fmt.Fprintf(os.Stderr, "nsrelease: wall_us=%d cleanup_runs=%d release_us=%d\n",
		wall.Microseconds(), w.get(w.objs.Runs)-runs0, max(release.Microseconds(), -1))
	return status
}

// monotonic is CLOCK_MONOTONIC in ns, the clock of bpf_ktime_get_ns.
func monotonic() uint64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

type watcher struct {
	objs  netnsCountObjects
	links []link.Link
}

func newWatcher() (*watcher, error) {
	spec, err := loadNetnsCount()
	if err != nil {
		return nil, err
	}
	fn, err := kernelSymbol("cleanup_net")
	if err != nil {
		return nil, err
	}
	// The offset is the running kernel's, not the headers'.
	kspec, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, fmt.Errorf("kernel BTF: %w", err)
	}
	var ws *btf.Struct
	if err := kspec.TypeByName("work_struct", &ws); err != nil {
		return nil, fmt.Errorf("kernel BTF: %w", err)
	}
	off := -1
	for _, m := range ws.Members {
		if m.Name == "func" {
			off = int(m.Offset.Bytes())
		}
	}
	if off < 0 {
		return nil, errors.New("kernel BTF: struct work_struct has no member func")
	}
	if err := spec.Variables["cleanup_fn"].Set(fn); err != nil {
		return nil, err
	}
	if err := spec.Variables["func_off"].Set(uint32(off)); err != nil {
		return nil, err
	}
	w := &watcher{}
	if err := spec.LoadAndAssign(&w.objs, nil); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	for _, a := range []struct {
		name string
		prog *ebpf.Program
	}{
		{"workqueue_queue_work", w.objs.QueueWork},
		{"workqueue_execute_start", w.objs.ExecuteStart},
		{"workqueue_execute_end", w.objs.ExecuteEnd},
	} {
		l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: a.name, Program: a.prog})
		if err != nil {
			w.close()
			return nil, fmt.Errorf("attach %s: %w", a.name, err)
		}
		w.links = append(w.links, l)
	}
	return w, nil
}

// kernelSymbol is the address of a function in /proc/kallsyms.
func kernelSymbol(name string) (uint64, error) {
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 3 && fields[2] == name && (fields[1] == "t" || fields[1] == "T") {
			addr, err := strconv.ParseUint(fields[0], 16, 64)
			if err != nil || addr == 0 {
				return 0, fmt.Errorf("/proc/kallsyms hides %s's address (kernel.kptr_restrict)", name)
			}
			return addr, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no %s in /proc/kallsyms", name)
}

func (w *watcher) close() {
	for _, l := range w.links {
		l.Close()
	}
	w.objs.Close()
}

// get reads one of the programs' global variables.
func (w *watcher) get(v *ebpf.Variable) int64 {
	var x int64
	switch v.Size() {
	case 4:
		var y uint32
		if err := v.Get(&y); err != nil {
			panic(err)
		}
		x = int64(y)
	default:
		if err := v.Get(&x); err != nil {
			panic(err)
		}
	}
	return x
}
