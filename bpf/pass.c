//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * pass: counts every packet and hands it on to the next program on the hook
 * (VERDICT_NEXT, see stats.h): a transparent counter that can sit anywhere
 * in a chain. Alone, or last in a chain, it leaves the packet to the
 * kernel, which lets it go on: tcx and tc pass it, netkit forwards it to
 * the peer even on a blackholed device.
 */

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "stats.h"

char _license[] SEC("license") = "GPL";

SEC("tc")
int pass(struct __sk_buff *skb)
{
	return verdict_next();
}
