/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Packet counters shared by every bundled program.
 *
 * The map is named "stats" so that nkscript finds it by name: a per-CPU
 * array of __u64 indexed by enum stat_index. Go sums the per-CPU values.
 * Every program returns through verdict_pass/verdict_drop so that each
 * packet is counted exactly once.
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
 * TC_ACT_OK and TC_ACT_SHOT have the values of NETKIT_PASS and NETKIT_DROP,
 * so the same verdicts work on tcx and netkit hooks.
 */
static __always_inline int verdict_pass(void)
{
	stats_count(STAT_PASSED);
	return TC_ACT_OK;
}

static __always_inline int verdict_drop(void)
{
	stats_count(STAT_DROPPED);
	return TC_ACT_SHOT;
}
