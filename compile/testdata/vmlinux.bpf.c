// SPDX-License-Identifier: GPL-2.0
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char _license[] SEC("license") = "GPL";

SEC("tc")
int with_vmlinux(struct __sk_buff *skb)
{
	struct ethhdr eth = {};
	return skb->len > sizeof(eth) ? 0 : 2; // TC_ACT_OK, TC_ACT_SHOT (macros, not in BTF);
}
