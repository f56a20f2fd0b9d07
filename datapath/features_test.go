package datapath

import (
	"errors"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

// TestFeatureCache: a probe's conclusive results (nil, ErrNotSupported)
// are kept, its other errors are not, and nothing probes before the first
// call.
func TestFeatureCache(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		probes int // after three calls
	}{
		{"supported", nil, 1},
		{"not supported", notSupported("no such thing"), 1},
		{"not supported, wrapped", fmt.Errorf("probe: %w", ErrNotSupported), 1},
		{"no privilege", fmt.Errorf("probe: %w", unix.EPERM), 3},
		{"no memory", fmt.Errorf("probe: %w", unix.ENOMEM), 3},
		{"other", errors.New("probe: something else"), 3},
	} {
		probes := 0
		f := &feature{probe: func() error { probes++; return tc.err }}
		if probes != 0 {
			t.Fatalf("%s: probed before the first call", tc.name)
		}
		for range 3 {
			if err := f.result(); err != tc.err {
				t.Errorf("%s: result %v, want %v", tc.name, err, tc.err)
			}
		}
		if probes != tc.probes {
			t.Errorf("%s: %d probes in three calls, want %d", tc.name, probes, tc.probes)
		}
	}
	// Inconclusive until it is not: then the answer stays.
	errs := []error{unix.EPERM, nil, unix.EPERM}
	probes := 0
	f := &feature{probe: func() error { probes++; return errs[probes-1] }}
	for range 3 {
		f.result()
	}
	if probes != 2 || f.result() != nil {
		t.Errorf("%d probes, result %v; want 2 and nil", probes, f.result())
	}
}

// TestFeatureInconclusive: errors of a probe that could not run are told apart
// from the kernel's refusal.
func TestFeatureInconclusive(t *testing.T) {
	for err, want := range map[error]bool{
		fmt.Errorf("x: %w", unix.EPERM):      true,
		fmt.Errorf("x: %w", unix.ENOMEM):     true,
		fmt.Errorf("x: %w", unix.EOPNOTSUPP): false,
		fmt.Errorf("x: %w", unix.EINVAL):     false,
	} {
		if got := inconclusive(err); got != want {
			t.Errorf("inconclusive(%v) = %v, want %v", err, got, want)
		}
	}
}
