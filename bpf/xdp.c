//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * XDP programs, for the "xdp" hook: they run in the driver (or generic XDP)
 * before the kernel allocates an skb, so they see only packets a device
 * receives.
 *
 * xdp_pass counts every packet and passes it (XDP_PASS).
 * xdp_drop_port drops IPv4/IPv6 TCP and UDP packets whose source or
 * destination port equals the constant `port`, and passes the rest.
 *
 * Both count in the stats map like the tc programs (stats.h): passed,
 * dropped. XDP has no "next program" verdict: the last program attached
 * decides (XDP allows one program per device).
 */

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "stats.h"

char _license[] SEC("license") = "GPL";

volatile const __u16 port = 0;

struct l4_ports {
	__be16 source;
	__be16 dest;
};

static __always_inline int xdp_verdict(int drop)
{
	stats_count(drop ? STAT_DROPPED : STAT_PASSED);
	return drop ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return xdp_verdict(0);
}

SEC("xdp")
int xdp_drop_port(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct l4_ports *ports;
	__u8 proto;
	void *l4;

	if ((void *)(eth + 1) > end)
		return xdp_verdict(0);
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end || ip->ihl < 5)
			return xdp_verdict(0);
		if (ip->frag_off & bpf_htons(0x1fff))
			return xdp_verdict(0);
		proto = ip->protocol;
		l4 = (void *)ip + ip->ihl * 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end)
			return xdp_verdict(0);
		proto = ip6->nexthdr;
		l4 = ip6 + 1;
	} else {
		return xdp_verdict(0);
	}
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return xdp_verdict(0);
	ports = l4;
	if ((void *)(ports + 1) > end)
		return xdp_verdict(0);
	return xdp_verdict(bpf_ntohs(ports->source) == port || bpf_ntohs(ports->dest) == port);
}
