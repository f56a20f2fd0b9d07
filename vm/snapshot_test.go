package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The snapshot benchmark (issue 15): does restoring qemu's saved state of
// a booted guest beat booting one? The guest is saved where it has reported
// in and waits for the host's request, before it mounts the host's root
// over 9p (a mounted 9p share blocks migration): qemu is stopped and its
// state migrated to a file. A restored guest is the same command line plus
// -incoming; once it runs, the host sends the request and the guest goes on
// as after a boot: mount, run, power off.

// snapshotMemoryEnv names the benchmark guests' memory in qemu's syntax;
// unset, they have Run's default.
const snapshotMemoryEnv = "NKSCRIPT_SNAPSHOT_MEMORY"

// snapshotRig is what the guests of the benchmark boot: qemu, the kernel,
// the test guest's initramfs, and a directory for the QMP sockets and the
// saved state.
type snapshotRig struct {
	qemu, initrd string
	ki           KernelInfo
	bin, dir     string
}

func newSnapshotRig(tb testing.TB) *snapshotRig {
	tb.Helper()
	ki := needVM(tb)
	qemu, err := qemuPath()
	if err != nil {
		tb.Fatal(err)
	}
	bin := testGuest(tb)
	initrd, err := initramfs(bin, ki)
	if err != nil {
		tb.Fatal(err)
	}
	return &snapshotRig{qemu: qemu, initrd: initrd, ki: ki, bin: bin, dir: tb.TempDir()}
}

// snapshotProbe is what each guest of the benchmark runs: a line that is
// the first output, then what tells guests apart: 16 random bytes (read
// first, as soon after a restore as can be), the kernel, the boot ID, the
// wall clock and the uptime.
var snapshotProbe = []string{"exec", "/bin/sh", "-c",
	`echo snapshot-probe; od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; echo; uname -r; ` +
		`cat /proc/sys/kernel/random/boot_id; date +%s.%N; cut -d' ' -f1 /proc/uptime`}

// probeRun is one guest's run of snapshotProbe, its times counted from the
// start of qemu.
type probeRun struct {
	first, total time.Duration // to the first byte of stdout, to qemu's exit
	hostClock    time.Time     // the host's clock at the first byte
	loaded       time.Duration // restored: to the state having been loaded
	timing       Timing
	code         int
	stdout       string
	stderr       string
}

// lines returns the probe's output lines: probe line, random bytes,
// kernel, boot ID, wall clock, uptime.
func (p probeRun) lines() []string {
	l := strings.Split(strings.TrimRight(p.stdout, "\n"), "\n")
	for len(l) < 6 {
		l = append(l, "")
	}
	return l
}

// clockBehind is how far the guest's wall clock was behind the host's
// when the probe started printing.
func (p probeRun) clockBehind() time.Duration {
	f, err := strconv.ParseFloat(p.lines()[4], 64)
	if err != nil {
		return 0
	}
	guest := time.Unix(0, int64(f*1e9))
	return p.hostClock.Sub(guest)
}

// firstWrite passes writes to w and notes when the first came.
type firstWrite struct {
	w  io.Writer
	mu sync.Mutex
	at time.Time
}

func (f *firstWrite) Write(p []byte) (int, error) {
	f.mu.Lock()
	if f.at.IsZero() {
		f.at = time.Now()
	}
	f.mu.Unlock()
	return f.w.Write(p)
}

// runner returns a runner for one guest of the rig running args, its
// stdout noted by out.
func (s *snapshotRig) runner(args []string, out *firstWrite, stderr io.Writer) *runner {
	o := Options{Binary: s.bin, Args: args, Stdout: out, Stderr: stderr, Memory: os.Getenv(snapshotMemoryEnv)}
	return &runner{o: o.withDefaults(), ki: s.ki}
}

// cold boots a guest running the probe, as Run does.
func (s *snapshotRig) cold(ctx context.Context) (probeRun, error) {
	var out, errb bytes.Buffer
	fw := &firstWrite{w: &out}
	r := s.runner(snapshotProbe, fw, &errb)
	code, err := r.run(ctx, s.qemu, s.initrd)
	if err != nil {
		return probeRun{}, err
	}
	return probeRun{first: fw.at.Sub(r.start), total: r.o.Timing.Total, hostClock: fw.at,
		timing: *r.o.Timing, code: code, stdout: out.String(), stderr: errb.String()}, nil
}

// start starts qemu for r with the rig's command line and more, and copies
// its output; the returned function kills it and waits for the copies.
func (s *snapshotRig) start(r *runner, more ...string) (*qemuProcess, func(), error) {
	r.start = time.Now()
	r.progress = make(chan struct{}, 1)
	p, err := r.startQemuArgs(s.qemu, append(r.qemuArgs(s.initrd), more...))
	if err != nil {
		return nil, nil, err
	}
	r.copyOutput(p)
	return p, func() {
		p.kill()
		r.copiers.Wait()
		p.close()
	}, nil
}

// save boots a guest, waits until it has reported in, stops it and saves
// its state to the file state. It returns how long stopping and saving
// took.
func (s *snapshotRig) save(ctx context.Context, state string) (time.Duration, error) {
	sock := filepath.Join(s.dir, "qmp-save")
	r := s.runner(nil, &firstWrite{w: io.Discard}, io.Discard)
	p, stop, err := s.start(r, "-qmp", "unix:"+sock+",server=on,wait=off")
	if err != nil {
		return 0, err
	}
	defer stop()
	msgs := readMessages(p.ctl)
	timeout := time.After(r.o.BootTimeout)
	for ready := false; !ready; {
		select {
		case m, ok := <-msgs:
			if !ok {
				return 0, errors.New("control port closed before the guest reported in")
			}
			ready = m.Type == "ready"
		case err := <-p.exited:
			p.exitedWith(err)
			return 0, r.exitError(err)
		case <-timeout:
			return 0, fmt.Errorf("no word from the guest%s", r.consoleTail())
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	q, err := dialQMP(sock, 30*time.Second)
	if err != nil {
		return 0, err
	}
	defer q.close()
	t0 := time.Now()
	if _, err := q.do("stop", nil); err != nil {
		return 0, err
	}
	// Not the default limit of 32 MiB/s: the file takes what it gets.
	if _, err := q.do("migrate-set-parameters", map[string]any{"max-bandwidth": int64(1) << 40}); err != nil {
		return 0, err
	}
	if _, err := q.do("migrate", map[string]any{"uri": "exec:cat > " + state}); err != nil {
		return 0, err
	}
	if _, err := q.waitFor("query-migrate", []string{"completed"}, []string{"failed", "cancelled"}, 2*time.Minute); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

// restore starts qemu from the state file state, lets the guest go on and
// sends it the probe's request, as cold does after the boot.
func (s *snapshotRig) restore(ctx context.Context, state string) (probeRun, error) {
	sock := filepath.Join(s.dir, "qmp-restore")
	os.Remove(sock)
	var out, errb bytes.Buffer
	fw := &firstWrite{w: &out}
	r := s.runner(snapshotProbe, fw, &errb)
	// The guest reported in before it was saved; it does not again, and
	// await's boot timeout waits for that.
	r.o.BootTimeout = time.Hour
	p, stop, err := s.start(r, "-incoming", "exec:cat "+state, "-qmp", "unix:"+sock+",server=on,wait=off")
	if err != nil {
		return probeRun{}, err
	}
	defer stop()
	q, err := dialQMP(sock, 30*time.Second)
	if err != nil {
		return probeRun{}, err
	}
	defer q.close()
	// The saved guest was stopped, so the restored one stays paused.
	st, err := q.waitFor("query-status", []string{"paused", "running"}, []string{"internal-error", "shutdown"}, 2*time.Minute)
	if err != nil {
		return probeRun{}, err
	}
	loaded := time.Since(r.start)
	if st == "paused" {
		if _, err := q.do("cont", nil); err != nil {
			return probeRun{}, err
		}
	}
	msgs := readMessages(p.ctl)
	if err := r.sendRequest(p.ctl); err != nil {
		return probeRun{}, err
	}
	exit, err := r.await(ctx, p, msgs)
	if err != nil {
		return probeRun{}, err
	}
	r.copiers.Wait()
	if exit == nil {
		return probeRun{}, r.exitError(p.waitErr)
	}
	return probeRun{first: fw.at.Sub(r.start), total: time.Since(r.start), hostClock: fw.at,
		loaded: loaded, timing: *r.o.Timing, code: exit.Code, stdout: out.String(), stderr: errb.String()}, nil
}
