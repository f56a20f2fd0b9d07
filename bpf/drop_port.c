//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * drop_port: drops TCP and UDP packets, over IPv4 or IPv6, whose source or
 * destination port equals the constant `port`; hands everything else on to
 * the next program on the hook (VERDICT_NEXT, see stats.h), so that it
 * composes with other programs in a chain.
 *
 * Headers are read relative to the network header and the L3 protocol comes
 * from skb->protocol, so the program does not depend on the link-layer
 * header in front: it works on devices whose hooks see an Ethernet header
 * (veth, netkit in l2 and in l3 mode alike: netkit's hooks see 14 bytes of
 * link-layer header in both modes) and on those whose packets start at the
 * IP header (tun, wireguard). IPv6 extension headers are not walked: only a
 * TCP or UDP header directly after the fixed header is matched. Non-first
 * IPv4 fragments carry no ports and are handed on.
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

/* Port to drop, in host byte order. Set from Go before loading. */
volatile const __u16 port = 0;

/* Source and destination port: the first four bytes of TCP and UDP. */
struct l4_ports {
	__be16 source;
	__be16 dest;
};

#define IPV4_FRAG_OFFSET 0x1fff

SEC("tc")
int drop_port(struct __sk_buff *skb)
{
	struct l4_ports ports;
	__u32 l4_off;
	__u8 proto;

	switch (skb->protocol) {
	case bpf_htons(ETH_P_IP): {
		/* One load for the header and the ports in the common case of
		 * a header without options. */
		struct {
			struct iphdr ip;
			struct l4_ports ports;
		} h;

		if (bpf_skb_load_bytes_relative(skb, 0, &h, sizeof(h), BPF_HDR_START_NET) == 0) {
			if (h.ip.version != 4 || h.ip.ihl < 5)
				return verdict_next();
			if (h.ip.frag_off & bpf_htons(IPV4_FRAG_OFFSET))
				return verdict_next();
			if (h.ip.ihl == 5) {
				if (h.ip.protocol != IPPROTO_TCP && h.ip.protocol != IPPROTO_UDP)
					return verdict_next();
				if (bpf_ntohs(h.ports.source) == port || bpf_ntohs(h.ports.dest) == port)
					return verdict_drop();
				return verdict_next();
			}
			proto = h.ip.protocol;
			l4_off = h.ip.ihl * 4;
			break;
		}
		/* Shorter than a header and ports: no ports to match. */
		return verdict_next();
	}
	case bpf_htons(ETH_P_IPV6): {
		struct {
			struct ipv6hdr ip6;
			struct l4_ports ports;
		} h;

		if (bpf_skb_load_bytes_relative(skb, 0, &h, sizeof(h), BPF_HDR_START_NET))
			return verdict_next();
		if (h.ip6.version != 6)
			return verdict_next();
		if (h.ip6.nexthdr != IPPROTO_TCP && h.ip6.nexthdr != IPPROTO_UDP)
			return verdict_next();
		if (bpf_ntohs(h.ports.source) == port || bpf_ntohs(h.ports.dest) == port)
			return verdict_drop();
		return verdict_next();
	}
	default:
		return verdict_next();
	}

	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return verdict_next();
	if (bpf_skb_load_bytes_relative(skb, l4_off, &ports, sizeof(ports), BPF_HDR_START_NET))
		return verdict_next();
	if (bpf_ntohs(ports.source) == port || bpf_ntohs(ports.dest) == port)
		return verdict_drop();
	return verdict_next();
}
