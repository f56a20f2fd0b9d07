package datapath

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
)

// TestVerifierErrorSourceLine checks that a rejected program's error shows
// the C source line of the failing instruction even when the log's tail,
// full of register states, does not reach it.
func TestVerifierErrorSourceLine(t *testing.T) {
	log := []string{"func#0 @0", "; int x = skb->len; @ filter.bpf.c:9", "0: (61) r2 = *(u32 *)(r1 +0)",
		"; return data[0]; @ filter.bpf.c:12", "1: (71) r1 = *(u8 *)(r1 +0)"}
	for i := range 10 {
		log = append(log, fmt.Sprintf("  frame %d: R%d=scalar()", i, i))
	}
	log = append(log, "invalid access to packet", "processed 2 insns", "")
	err := (&verifierError{prog: "filter in filter.bpf.c", err: &ebpf.VerifierError{Cause: errors.New("permission denied"), Log: log}}).Error()
	want := "load program filter in filter.bpf.c: the verifier rejected it (permission denied)\n" +
		"verifier log (last 8 of 17 lines):\n" +
		"  ; return data[0]; @ filter.bpf.c:12\n  ...\n  " +
		strings.Join(log[9:17], "\n  ")
	if err != want {
		t.Errorf("got\n%s\nwant\n%s", err, want)
	}

	// Within the tail: shown once, where it is.
	short := append(log[:5:5], "invalid access to packet")
	err = (&verifierError{prog: "p", err: &ebpf.VerifierError{Cause: errors.New("x"), Log: short}}).Error()
	if strings.Count(err, "filter.bpf.c:12") != 1 || strings.Contains(err, "...") {
		t.Errorf("annotation in the tail:\n%s", err)
	}
	// Without line info: the tail alone.
	if got := sourceLineBefore([]string{"0: (b7) r0 = 0", "1: (95) exit", "R0 !read_ok"}, 0); got != "" {
		t.Errorf("log without annotations: %q", got)
	}
}
