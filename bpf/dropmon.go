package bpf

//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -target bpfel -cflags "-O2 -g -Wall -Werror -Iinclude" -output-stem dropmon dropmon dropmon.c

import "github.com/cilium/ebpf"

// The drop monitor's program and maps (dropmon.c): not a bundled program
// a script attaches, but the raw tracepoint program on skb:kfree_skb with
// which nkscript explains where and why packets were dropped.
const (
	// DropMonProgram is the program's name in the spec.
	DropMonProgram = "kfree_skb"
	// DropMonNetns is the hash map of the namespaces (inode numbers) whose
	// drops are reported.
	DropMonNetns = "netns"
	// DropMonRing is the ring buffer the drop records go to.
	DropMonRing = "drops"
	// DropMonRecordSize is the size of one drop record.
	DropMonRecordSize = 128
)

// LoadDropMonitor returns the drop monitor's collection spec.
func LoadDropMonitor() (*ebpf.CollectionSpec, error) { return loadDropmon() }
