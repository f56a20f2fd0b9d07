// SPDX-License-Identifier: GPL-2.0
/* printk: writes the destination port of every TCP packet with bpf_printk,
 * for the tests of trace(). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

char _license[] SEC("license") = "GPL";

SEC("tc")
int printk_tcp(struct __sk_buff *skb)
{
	struct iphdr ip;
	__be16 ports[2];

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return -1;
	if (bpf_skb_load_bytes_relative(skb, 0, &ip, sizeof(ip), BPF_HDR_START_NET))
		return -1;
	if (ip.protocol != IPPROTO_TCP)
		return -1;
	if (bpf_skb_load_bytes_relative(skb, ip.ihl * 4, ports, sizeof(ports), BPF_HDR_START_NET))
		return -1;
	bpf_printk("nkscript saw tcp to port %d", bpf_ntohs(ports[1]));
	return -1;
}
