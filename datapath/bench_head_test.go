package datapath

// Microbenchmarks of paths that commit 4731b70, which make bench compares
// bench_test.go's benchmarks with, does not have.

import (
	"context"
	"os"
	"testing"
	"time"
)

// BenchmarkEnterNetns compares the two ways of running a short file
// operation (reading a sysctl) inside another namespace: Do (a new locked
// goroutine per call, its thread discarded if it cannot be switched back)
// and doQuick (the proc worker's thread, switched in and out).
func BenchmarkEnterNetns(b *testing.B) {
	ns := testNetns(b)
	read := func() error {
		_, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
		return err
	}
	b.Run("impl=Do", func(b *testing.B) {
		for b.Loop() {
			if err := ns.Do(read); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=quick", func(b *testing.B) {
		for b.Loop() {
			if err := ns.doQuick(read); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkWaitReadyIPv4 is BenchmarkWaitReady before IPv4 traffic, which
// waits for the links only (WaitReadyFor), not for the IPv6 groups.
func BenchmarkWaitReadyIPv4(b *testing.B) {
	lab, links := chainLab(b, 10)
	for b.Loop() {
		resetLinks(b, lab, links)
		if err := lab.WaitReadyFor(context.Background(), 5*time.Second, false); err != nil {
			b.Fatal(err)
		}
	}
}
