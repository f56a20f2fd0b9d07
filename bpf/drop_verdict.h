/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The map the drop monitor (dropmon.c) shares with its fexit programs
 * (drop_verdict.c): skb address -> ID of the tc, tcx or netkit program
 * that returned the drop verdict for it. User space loads the fexit
 * programs with the monitor's map in place of their own.
 */
#ifndef NKSCRIPT_DROP_VERDICT_H
#define NKSCRIPT_DROP_VERDICT_H

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u32);
} verdicts SEC(".maps");

#endif
