//go:build ignore

// SPDX-License-Identifier: GPL-2.0
// drop_verdict tells the drop monitor (dropmon.c) which program dropped a
// packet. User space loads one copy per attached tc, tcx or netkit
// program, as an fexit program on it (where the kernel has BPF
// trampolines) with prog_id set to that program's ID, and shares the
// `verdicts` map with the drop monitor. When the program returns the drop
// verdict, the skb's address is recorded with the program's ID; the drop
// monitor's kfree_skb program looks the dropped skb up there.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "drop_verdict.h"

char __license[] SEC("license") = "GPL";

// TC_ACT_SHOT (tc and tcx) and NETKIT_DROP (netkit) are both 2.
#define VERDICT_DROP 2

// The ID of the program this copy runs after.
volatile const __u32 prog_id = 0;

// The traced program's arguments and then its return value: ctx[0] is
// its skb, ctx[1] what it returned.
SEC("fexit")
int drop_verdict(__u64 *ctx)
{
	__u64 skb = ctx[0];
	__u32 id = prog_id;

	if ((int)ctx[1] != VERDICT_DROP)
		return 0;
	bpf_map_update_elem(&verdicts, &skb, &id, BPF_ANY);
	return 0;
}
