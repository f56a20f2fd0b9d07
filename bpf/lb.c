//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * lb: a load balancer for one IPv4 virtual IP. Packets to the VIP (map
 * `vip`) go to one of the backends in `backends` — slots 0..n-1, the first
 * slot with ifindex 0 ends the list — chosen by a hash of the packet's
 * addresses, protocol and ports, so every packet of a flow goes to the
 * same backend: bpf_redirect_neigh sends it out of the backend's
 * device to the backend's address. Backends hold the VIP themselves (say
 * on their loopback) and answer the client directly: there is no address
 * translation (direct server return).
 *
 * Other packets are handed on (VERDICT_NEXT). A packet to the VIP with no
 * backend configured is dropped and counted as dropped: there is nowhere
 * to send it, and routing it normally would send it back toward the VIP.
 *
 * Attach it where client packets arrive: tcx ingress of the balancer's
 * client-facing device, or the netkit hook they pass.
 */

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "stats.h"

char _license[] SEC("license") = "GPL";

#ifndef AF_INET
#define AF_INET 2
#endif

#define MAX_BACKENDS 16

struct vip {
	__u8 addr[4];
};

struct backend {
	__u32 ifindex;
	__u8 addr[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vip);
} vip SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct backend);
} backends SEC(".maps");

/* The IPv4 header and the first four bytes after it: the ports of TCP
 * and UDP when the header has no options. */
struct ip_ports {
	struct iphdr ip;
	__u32 ports;
};

/* flow_hash mixes the 5-tuple; every packet of a flow gets the same. */
static __always_inline __u32 flow_hash(const struct iphdr *ip, __u32 ports)
{
	__u32 h = ip->saddr * 0x9e3779b1u;

	h ^= ip->daddr + 0x7f4a7c15u + (h << 6) + (h >> 2);
	h ^= ports + ip->protocol + (h << 6) + (h >> 2);
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	return h;
}

SEC("tc")
int lb(struct __sk_buff *skb)
{
	struct bpf_redir_neigh nh = {.nh_family = AF_INET};
	struct backend *chosen;
	struct ip_ports pkt = {};
	__u32 zero = 0, n, pick;
	struct vip *v;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return verdict_next();
	/* One load for the header and the ports; a header with options (or a
	 * packet too short for ports) hashes without them. */
	if (bpf_skb_load_bytes_relative(skb, 0, &pkt, sizeof(pkt), BPF_HDR_START_NET) &&
	    bpf_skb_load_bytes_relative(skb, 0, &pkt.ip, sizeof(pkt.ip), BPF_HDR_START_NET))
		return verdict_next();
	if (pkt.ip.ihl != 5 || (pkt.ip.protocol != IPPROTO_TCP && pkt.ip.protocol != IPPROTO_UDP))
		pkt.ports = 0;
	v = bpf_map_lookup_elem(&vip, &zero);
	if (!v || pkt.ip.version != 4 || __builtin_memcmp(&pkt.ip.daddr, v->addr, 4) != 0)
		return verdict_next();

	/* Backends fill slots 0..n-1: the first empty slot ends the list. */
	for (n = 0; n < MAX_BACKENDS; n++) {
		__u32 key = n;
		struct backend *b = bpf_map_lookup_elem(&backends, &key);

		if (!b || !b->ifindex)
			break;
	}
	if (n == 0)
		return verdict_drop();
	/* hash * n / 2^32 maps the hash onto 0..n-1 as evenly as hash % n,
	 * without a division. */
	pick = ((__u64)flow_hash(&pkt.ip, pkt.ports) * n) >> 32;
	chosen = bpf_map_lookup_elem(&backends, &pick);
	if (!chosen)
		return verdict_drop();
	__builtin_memcpy(&nh.ipv4_nh, chosen->addr, 4);
	if (bpf_redirect_neigh(chosen->ifindex, &nh, sizeof(nh), 0) != TC_ACT_REDIRECT)
		return verdict_drop();
	stats_count(STAT_REDIRECTED);
	return TC_ACT_REDIRECT;
}
