//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * mirror: copies every packet to a monitor device and lets the original
 * go on. `monitor` holds the ifindex of the device (0: mirroring off);
 * bpf_clone_redirect transmits the copy out of it, so whatever is on the
 * other end of that device (the peer of a pair in a monitor namespace)
 * receives it. Every packet is counted as passed; every copy made as
 * redirected.
 */

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "stats.h"

char _license[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} monitor SEC(".maps");

SEC("tc")
int mirror(struct __sk_buff *skb)
{
	__u32 zero = 0;
	__u32 *ifindex = bpf_map_lookup_elem(&monitor, &zero);

	if (ifindex && *ifindex && bpf_clone_redirect(skb, *ifindex, 0) == 0)
		stats_count(STAT_REDIRECTED);
	return verdict_next();
}
