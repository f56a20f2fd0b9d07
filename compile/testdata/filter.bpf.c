// SPDX-License-Identifier: GPL-2.0
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "filter.h"

char _license[] SEC("license") = "GPL";

volatile const __u16 blocked_port = 0;

SEC("tcx/ingress")
int filter(struct __sk_buff *skb)
{
	if (skb->protocol == bpf_htons(ETH_P_IP) && blocked_port == FILTER_PORT)
		return TCX_DROP;
	return TCX_NEXT;
}
