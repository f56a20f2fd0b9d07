package datapath

import (
	"errors"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/nkscript/nkscript/bpf"
	"github.com/nkscript/nkscript/internal/testenv"
	"golang.org/x/sys/unix"
)

// dropBatch is how many packets the benchmark drops before it lets the
// monitor's reader empty the ring buffer, which holds a few thousand
// records: a full ring would make the program skip records.
const dropBatch = 1000

// BenchmarkDropMonitorProgram is what the drop monitor's program on the
// kfree_skb tracepoint costs the kernel, by its own run-time statistics
// (BPF_STATS_RUN_TIME, enabled by a file descriptor for the benchmark's
// duration): b.N UDP datagrams to a closed port, each freed with
// NO_SOCKET, in a namespace of the lab ("lab": each drop is recorded) and
// in one the lab does not watch ("outside": the program looks the
// namespace up and returns). ns/call is the program's run time per
// invocation, ns/drop its run time per drop it recorded, calls/op the
// invocations per datagram. The tracepoint fires for every drop on the
// machine, so drops elsewhere during the run are counted too.
func BenchmarkDropMonitorProgram(b *testing.B) {
	requireRoot(b)
	stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		testenv.Skipf(b, "enable BPF run-time statistics: %v", err)
	}
	defer stats.Close()
	for _, watched := range []bool{true, false} {
		name := "outside"
		if watched {
			name = "lab"
		}
		b.Run(name, func(b *testing.B) { benchDropMonitor(b, watched) })
	}
}

func benchDropMonitor(b *testing.B, watched bool) {
	lab := benchLab(b)
	ns, err := lab.Netns(uniqueName("dmb"))
	if err != nil {
		b.Fatal(err)
	}
	if !watched {
		ns = testNetns(b)
	}
	m, err := lab.DropMonitor()
	if err != nil {
		b.Fatal(err)
	}
	if !m.Active() {
		b.Fatal("the kernel backend's drop monitor is a stand-in")
	}
	prog := m.k.coll.Programs[bpf.DropMonProgram]
	m.Sync()
	before, err := prog.Stats()
	if err != nil {
		b.Fatal(err)
	}
	seen0 := m.seen()
	b.ResetTimer()
	for sent := 0; sent < b.N; sent += dropBatch {
		if err := sendToClosedPort(ns, min(dropBatch, b.N-sent)); err != nil {
			b.Fatal(err)
		}
		m.Sync()
	}
	b.StopTimer()
	after, err := prog.Stats()
	if err != nil {
		b.Fatal(err)
	}
	calls := after.RunCount - before.RunCount
	if calls == 0 {
		b.Fatal("the monitor's program did not run: no run-time statistics")
	}
	run := float64(after.Runtime - before.Runtime)
	b.ReportMetric(run/float64(calls), "ns/call")
	b.ReportMetric(float64(calls)/float64(b.N), "calls/op")
	if !watched {
		return
	}
	drops := m.seen() - seen0
	if drops < b.N {
		b.Fatalf("the monitor recorded %d drops of %d datagrams to a closed port", drops, b.N)
	}
	b.ReportMetric(run/float64(drops), "ns/drop")
}

// seen is how many drops the monitor has read, those it kept and those it
// only counted.
func (m *DropMonitor) seen() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.drops) + m.missed
}

// sendToClosedPort sends n UDP datagrams to port 9 of 127.0.0.1 in ns,
// where nothing listens: the kernel frees each with NO_SOCKET.
func sendToClosedPort(ns *Netns, n int) error {
	return ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		to := &unix.SockaddrInet4{Port: 9, Addr: [4]byte{127, 0, 0, 1}}
		for range n {
			if err := unix.Sendto(fd, []byte("drop"), 0, to); err != nil && !errors.Is(err, unix.ECONNREFUSED) {
				return err
			}
		}
		return nil
	})
}
