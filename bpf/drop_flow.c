//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * drop_flow: drops IPv4 packets that match a flow — a source prefix, a
 * destination prefix, an IP protocol and a port — and hands everything else
 * on to the next program (VERDICT_NEXT, see stats.h). Every field is
 * optional: a prefix length of 0 matches any address, proto 0 any
 * protocol, port 0 any port (a port matches TCP and UDP packets whose
 * source or destination port equals it).
 *
 * Set from Go before loading, as constants, e.g. for "TCP from 10.0.1.0/24
 * to 10.0.2.0/24": src = 10.0.1.0, src_len = 24, dst = 10.0.2.0,
 * dst_len = 24, proto = 6.
 *
 * Headers are read relative to the network header (see drop_port.c), so
 * the program works whatever link-layer header its hook sees.
 */

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "stats.h"

char _license[] SEC("license") = "GPL";

volatile const __u8 src[4] = {};
volatile const __u8 src_len = 0;
volatile const __u8 dst[4] = {};
volatile const __u8 dst_len = 0;
volatile const __u8 proto = 0;
volatile const __u16 port = 0;

struct l4_ports {
	__be16 source;
	__be16 dest;
};

#define IPV4_FRAG_OFFSET 0x1fff

static __always_inline int prefix_match(__be32 addr, volatile const __u8 *net, __u8 len)
{
	__be32 want;
	__u32 mask;

	if (len == 0)
		return 1;
	if (len > 32)
		len = 32;
	want = (__be32)net[0] | (__be32)net[1] << 8 | (__be32)net[2] << 16 | (__be32)net[3] << 24;
	mask = len == 32 ? 0xffffffff : ~(0xffffffffu >> len);
	return (bpf_ntohl(addr) & mask) == (bpf_ntohl(want) & mask);
}

SEC("tc")
int drop_flow(struct __sk_buff *skb)
{
	struct l4_ports ports;
	struct iphdr ip;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return verdict_next();
	if (bpf_skb_load_bytes_relative(skb, 0, &ip, sizeof(ip), BPF_HDR_START_NET))
		return verdict_next();
	if (ip.version != 4 || ip.ihl < 5)
		return verdict_next();
	if (!prefix_match(ip.saddr, src, src_len) || !prefix_match(ip.daddr, dst, dst_len))
		return verdict_next();
	if (proto && ip.protocol != proto)
		return verdict_next();
	if (port) {
		if (ip.protocol != IPPROTO_TCP && ip.protocol != IPPROTO_UDP)
			return verdict_next();
		if (ip.frag_off & bpf_htons(IPV4_FRAG_OFFSET))
			return verdict_next();
		if (bpf_skb_load_bytes_relative(skb, ip.ihl * 4, &ports, sizeof(ports), BPF_HDR_START_NET))
			return verdict_next();
		if (bpf_ntohs(ports.source) != port && bpf_ntohs(ports.dest) != port)
			return verdict_next();
	}
	return verdict_drop();
}
