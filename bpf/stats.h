/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Packet counters shared by every bundled program.
 *
 * The map is named "stats" so that nkscript finds it by name: a per-CPU
 * array of __u64 indexed by enum stat_index. Go sums the per-CPU values.
 * Every program returns through verdict_next/verdict_drop so that each
 * packet is counted exactly once: STAT_PASSED counts the packets the
 * program did not drop, whatever later programs or the kernel do with them.
 */
#pragma once

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

enum stat_index {
	STAT_PASSED = 0,
	STAT_DROPPED = 1,
	STAT_REDIRECTED = 2,
	STAT_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline void stats_count(enum stat_index idx)
{
	__u32 key = idx;
	__u64 *val = bpf_map_lookup_elem(&stats, &key);

	if (val)
		__sync_fetch_and_add(val, 1);
}

/*
 * Verdicts. The programs are attached with bpf_mprog (tcx, netkit) or as
 * legacy cls_bpf filters in direct-action mode, and must compose in chains:
 *
 * VERDICT_NEXT (-1): TCX_NEXT == NETKIT_NEXT == TC_ACT_UNSPEC. The program
 * does not decide; the next program on the hook does.
 *   - tcx: the next tcx program runs; after the last one, legacy tc filters
 *     if there are any, then the packet goes on as if nothing were attached.
 *   - netkit: the next program runs; after the last one, the kernel treats
 *     NETKIT_NEXT like NETKIT_PASS and forwards the packet to the peer,
 *     whatever the device's policy: the policy (forward or blackhole) is
 *     the verdict only while no program is attached.
 *   - legacy tc (cls_bpf, direct-action): the next filter runs; after the
 *     last one, the qdisc's default (clsact: the packet goes on).
 *
 * VERDICT_DROP (2): TC_ACT_SHOT == TCX_DROP == NETKIT_DROP. Final on every
 * hook: the packet is dropped and later programs do not see it.
 *
 * TC_ACT_OK (0, TCX_PASS, NETKIT_PASS) is deliberately not used: it is a
 * final verdict, so a program returning it for packets it lets through
 * hides them from every program after it.
 */
#define VERDICT_NEXT TC_ACT_UNSPEC
#define VERDICT_DROP TC_ACT_SHOT

/* verdict_next counts a packet as passed (not dropped by this program) and
 * hands it on to the next program. */
static __always_inline int verdict_next(void)
{
	stats_count(STAT_PASSED);
	return VERDICT_NEXT;
}

/* verdict_drop counts a packet as dropped and drops it. */
static __always_inline int verdict_drop(void)
{
	stats_count(STAT_DROPPED);
	return VERDICT_DROP;
}
