package bpf

//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -cflags "-O2 -g -Wall -Werror -Iinclude" -output-stem drop_verdict dropVerdict drop_verdict.c

import "github.com/cilium/ebpf"

// The drop monitor's fexit program (drop_verdict.c), which records which
// attached program returned the drop verdict for a packet, where the
// kernel has BPF trampolines.
const (
	// DropVerdictProgram is the program's name in the spec.
	DropVerdictProgram = "drop_verdict"
	// DropVerdictProgID is the constant that holds the traced program's
	// ID.
	DropVerdictProgID = "prog_id"
	// DropVerdicts is the LRU hash map, shared with the drop monitor,
	// from an skb's address to the ID of the program that dropped it.
	DropVerdicts = "verdicts"
)

// LoadDropVerdict returns the fexit program's collection spec.
func LoadDropVerdict() (*ebpf.CollectionSpec, error) { return loadDropVerdict() }
