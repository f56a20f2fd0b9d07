// Package datapath builds network labs: network namespaces, veth and
// netkit pairs, bridges, addresses, routes, sysctls, and BPF programs
// attached to tcx, netkit, XDP or legacy tc hooks; it sends traffic
// through them (Ping, Probe, Connect, Serve, Capture, which can write a
// pcapng file), reads them back from the kernel (Show) and removes what
// it made, however the run ends. It is plain Go: the Starlark surface is
// package builtins.
//
// A Lab is the bookkeeping of one run: it checks names, applies the
// run's prefix, refuses duplicates, journals every change as a typed
// Record and keeps the undo list. The changes themselves are made by a
// Backend: NewKernel (netlink and cilium/ebpf), NewShell (--dry-run: the
// ip, sysctl and bpftool commands that would build the lab) or
// NewRecorder (stand-ins only, for `nkscript graph`). WithFaults and
// WithProfile wrap any backend to inject failures or time operations.
//
// Every record has one undo, used by Lab.Close and by Cleanup, which
// undoes the journals of runs killed with SIGKILL or kept with --keep
// (StaleRuns lists them). Each undo checks identity first — a namespace
// by inode, a link by ifindex, name and kind, a sysctl by the value the
// run set — and leaves alone what is gone or has changed hands.
//
// Errors describe the operation that failed; what the user of a script
// or command line can do about it is added by the callers (builtins,
// cmd/nkscript), which match the sentinel errors and types here
// (ErrNotSupported, ErrNoNetkit, ErrLinkDown, ErrExists, PrefixError).
package datapath
