// SPDX-License-Identifier: GPL-2.0
/*
 * netkit_example: the netkit tutorial's own program. It drops TCP packets
 * from or to port `blocked_port` (12345 in the tutorial) and lets the rest
 * through, saying which with bpf_printk and counting both in a map.
 *
 * The tutorial builds it by hand (clang -g -O2 -c -target bpf), loads it
 * with bpftool and attaches it to nk0's tcx ingress with `bpftool net
 * attach tc`; own_program.star does all three with program() and attach().
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

char _license[] SEC("license") = "GPL";

/* Set at load time: program("netkit_example.bpf.c", blocked_port = 12345). */
volatile const __u16 blocked_port = 12345;

/* counters[0]: packets allowed, counters[1]: packets dropped. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 key)
{
	__u64 *n = bpf_map_lookup_elem(&counters, &key);

	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("tcx/ingress")
int netkit_example(struct __sk_buff *skb)
{
	struct iphdr ip;
	struct tcphdr tcp;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return TCX_NEXT;
	if (bpf_skb_load_bytes_relative(skb, 0, &ip, sizeof(ip), BPF_HDR_START_NET))
		return TCX_NEXT;
	if (ip.protocol != IPPROTO_TCP)
		return TCX_NEXT;
	if (bpf_skb_load_bytes_relative(skb, ip.ihl * 4, &tcp, sizeof(tcp), BPF_HDR_START_NET))
		return TCX_NEXT;

	/* The prefix lets trace(prog).only("netkit_example: ") keep these
	 * lines apart from other programs' prints. */
	if (bpf_ntohs(tcp.source) == blocked_port || bpf_ntohs(tcp.dest) == blocked_port) {
		bpf_printk("netkit_example: Dropping packet");
		count(1);
		return TCX_DROP;
	}
	bpf_printk("netkit_example: Allowing packet");
	count(0);
	return TCX_NEXT;
}
