// Command pagecost measures what this machine charges a process for the
// first touch of a page of memory: it maps 64 MiB of anonymous memory,
// writes one byte to each page (a page fault each, with the page's
// zeroing) and prints the median cost per page of five such rounds:
//
//	pagecost: ns_per_page=N pages=P
//
// make bench reports it next to the page faults of a trivial run, because
// on virtual machines that shadow the guest's page tables it is a large
// part of the startup of any process (about a third of an empty Go
// program's on the host of 2026-12-01), and varies between hosts of the
// same kind.
package main

import (
	"fmt"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

const (
	size   = 64 << 20
	rounds = 5
)

func main() {
	var per []float64
	for range rounds {
		ns, err := touchCost(size)
		if err != nil {
			fmt.Fprintln(os.Stderr, "pagecost:", err)
			os.Exit(1)
		}
		per = append(per, ns)
	}
	slices.Sort(per)
	fmt.Printf("pagecost: ns_per_page=%.0f pages=%d\n", per[len(per)/2], size/os.Getpagesize())
}

// touchCost maps size bytes of fresh anonymous memory, writes to each
// page once and returns the mean time per page in nanoseconds.
func touchCost(size int) (float64, error) {
	pageSize := os.Getpagesize()
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return 0, fmt.Errorf("map %d bytes: %w", size, err)
	}
	start := time.Now()
	for i := 0; i < len(b); i += pageSize {
		b[i] = 1
	}
	elapsed := time.Since(start)
	if err := unix.Munmap(b); err != nil {
		return 0, fmt.Errorf("unmap: %w", err)
	}
	return float64(elapsed.Nanoseconds()) / float64(size/pageSize), nil
}
