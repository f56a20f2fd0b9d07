//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * policy_router: source-based policy routing, the CNF guide's fix for
 * asymmetric routing. Each IPv4 packet's source address is looked up in
 * policy_routes_v4, a longest-prefix-match trie from source prefix to
 * {ifindex, next hop}; a match redirects the packet out of that device
 * with bpf_redirect_neigh (the kernel fills in the link-layer header for
 * the next hop, or for the destination when next_hop is 0.0.0.0), a miss
 * hands it on to the next program and normal routing (VERDICT_NEXT).
 * IPv6 works the same through policy_routes_v6.
 *
 * Attach it where the packets to steer leave: on egress (tcx egress, or
 * netkit primary/peer), as the guide says; bpf_redirect_neigh needs a tc
 * hook, which all of these are.
 */

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "stats.h"

char _license[] SEC("license") = "GPL";

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

/* Keys of the tries: prefixlen first, as BPF_MAP_TYPE_LPM_TRIE requires. */
struct policy_key_v4 {
	__u32 prefixlen;
	__u8 addr[4];
};

struct policy_key_v6 {
	__u32 prefixlen;
	__u8 addr[16];
};

/* Where matching packets go: out of ifindex, to next_hop (all zero: to the
 * packet's destination, resolved by the kernel). */
struct route_policy {
	__u32 ifindex;
	__u8 next_hop[4];
};

struct route_policy_v6 {
	__u32 ifindex;
	__u8 next_hop[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1024);
	__type(key, struct policy_key_v4);
	__type(value, struct route_policy);
} policy_routes_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1024);
	__type(key, struct policy_key_v6);
	__type(value, struct route_policy_v6);
} policy_routes_v6 SEC(".maps");

static __always_inline int redirected(long ret)
{
	if (ret == TC_ACT_REDIRECT)
		stats_count(STAT_REDIRECTED);
	else
		stats_count(STAT_DROPPED);
	return ret;
}

static __always_inline int route_v4(struct __sk_buff *skb)
{
	struct policy_key_v4 key = {.prefixlen = 32};
	struct bpf_redir_neigh nh = {.nh_family = AF_INET};
	struct route_policy *pol;
	struct iphdr ip;

	if (bpf_skb_load_bytes_relative(skb, 0, &ip, sizeof(ip), BPF_HDR_START_NET))
		return verdict_next();
	if (ip.version != 4)
		return verdict_next();
	__builtin_memcpy(key.addr, &ip.saddr, 4);
	pol = bpf_map_lookup_elem(&policy_routes_v4, &key);
	if (!pol || !pol->ifindex)
		return verdict_next();
	__builtin_memcpy(&nh.ipv4_nh, pol->next_hop, 4);
	if (!nh.ipv4_nh)
		return redirected(bpf_redirect_neigh(pol->ifindex, NULL, 0, 0));
	return redirected(bpf_redirect_neigh(pol->ifindex, &nh, sizeof(nh), 0));
}

static __always_inline int is_zero16(const __u8 *a)
{
	__u64 hi, lo;

	__builtin_memcpy(&hi, a, 8);
	__builtin_memcpy(&lo, a + 8, 8);
	return !(hi | lo);
}

static __always_inline int route_v6(struct __sk_buff *skb)
{
	struct policy_key_v6 key = {.prefixlen = 128};
	struct bpf_redir_neigh nh = {.nh_family = AF_INET6};
	struct route_policy_v6 *pol;
	struct ipv6hdr ip6;

	if (bpf_skb_load_bytes_relative(skb, 0, &ip6, sizeof(ip6), BPF_HDR_START_NET))
		return verdict_next();
	if (ip6.version != 6)
		return verdict_next();
	__builtin_memcpy(key.addr, &ip6.saddr, 16);
	pol = bpf_map_lookup_elem(&policy_routes_v6, &key);
	if (!pol || !pol->ifindex)
		return verdict_next();
	if (is_zero16(pol->next_hop))
		return redirected(bpf_redirect_neigh(pol->ifindex, NULL, 0, 0));
	__builtin_memcpy(nh.ipv6_nh, pol->next_hop, 16);
	return redirected(bpf_redirect_neigh(pol->ifindex, &nh, sizeof(nh), 0));
}

SEC("tc")
int policy_router(struct __sk_buff *skb)
{
	switch (skb->protocol) {
	case bpf_htons(ETH_P_IP):
		return route_v4(skb);
	case bpf_htons(ETH_P_IPV6):
		return route_v6(skb);
	}
	return verdict_next();
}
