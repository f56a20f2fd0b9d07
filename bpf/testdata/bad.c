// SPDX-License-Identifier: GPL-2.0
/* Test object: a program the verifier rejects (unchecked packet access). */

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char _license[] SEC("license") = "GPL";

SEC("tc")
int unchecked(struct __sk_buff *skb)
{
	/* Some valid work first, so that the verifier log is long. */
	__u32 sum = skb->len + skb->mark + skb->priority + skb->ifindex +
		    skb->hash + skb->tc_index + skb->queue_mapping;
	__u8 *data = (__u8 *)(long)skb->data;

	return data[0] + sum;
}
