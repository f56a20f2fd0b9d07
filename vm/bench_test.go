package vm

import (
	"context"
	"sort"
	"testing"
	"time"
)

// BenchmarkBootTrivial measures whole runs of a guest program that exits at
// once: boot, mount the host's root, run main, power off. It reports the
// medians of the time to the guest's /init reporting in (ready), to main
// being called (main) and to qemu having exited (total). Run it with a
// small count, e.g. -benchtime=5x.
func BenchmarkBootTrivial(b *testing.B) {
	needVM(b)
	testGuest(b)
	// Build the cached initramfs outside the measurement.
	if r := runGuest(b, context.Background(), Options{}, "true"); r.err != nil || r.code != 0 {
		b.Fatalf("code %d, err %v", r.code, r.err)
	}
	var ready, main, total []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := runGuest(b, context.Background(), Options{}, "true")
		if r.err != nil || r.code != 0 {
			b.Fatalf("code %d, err %v", r.code, r.err)
		}
		ready = append(ready, r.timing.Ready)
		main = append(main, r.timing.Main)
		total = append(total, r.timing.Total)
	}
	b.StopTimer()
	b.ReportMetric(median(ready).Seconds()*1000, "ready-ms")
	b.ReportMetric(median(main).Seconds()*1000, "main-ms")
	b.ReportMetric(median(total).Seconds()*1000, "total-ms")
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
