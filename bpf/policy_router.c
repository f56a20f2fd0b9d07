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
 * policy_matches_v4 and policy_matches_v6 hold the policies that name a
 * protocol (and a destination port), and the destination policies. Their
 * keys start with {dir, proto, dport}, fully covered by prefixlen (32 bits
 * more than the address's prefix), so one lookup matches one protocol and
 * port exactly and the address by longest prefix. A packet is matched in
 * this order, the first hit wins:
 *   1. source, protocol and destination port   (policy_matches)
 *   2. source and protocol, any port            (policy_matches, dport 0)
 *   3. source only                              (policy_routes)
 *   4. destination, protocol and port, 5. destination and protocol,
 *   6. destination only                         (policy_matches, dir 1)
 * then normal routing. The protocol is the IPv4 header's, or the IPv6
 * header's next header (no extension headers are walked); ports are read
 * for TCP, UDP and SCTP, except from IPv4 fragments after the first.
 *
 * Attach it where the packets to steer leave: on egress (tcx egress, or
 * netkit primary/peer), as the guide says; bpf_redirect_neigh needs a tc
 * hook, which all of these are.
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

/* What a policy of policy_matches matches besides the address: its
 * direction (MATCH_SRC or MATCH_DST), protocol (0: any) and destination
 * port (network order, 0: any). */
struct match_head {
	__u32 prefixlen;
	__u8 dir;
	__u8 proto;
	__be16 dport;
};

#define MATCH_SRC 0
#define MATCH_DST 1
/* The bits of a match_key's dir, proto and dport, in its prefixlen. */
#define MATCH_HEAD_BITS 32

struct match_key_v4 {
	struct match_head head;
	__u8 addr[4];
};

struct match_key_v6 {
	struct match_head head;
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

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1024);
	__type(key, struct match_key_v4);
	__type(value, struct route_policy);
} policy_matches_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1024);
	__type(key, struct match_key_v6);
	__type(value, struct route_policy_v6);
} policy_matches_v6 SEC(".maps");

/* The packet's layer 4: its protocol and destination port (0 when it
 * has none or it could not be read). */
struct l4 {
	__u8 proto;
	__be16 dport;
};

static __always_inline void load_dport(struct __sk_buff *skb, __u32 off, struct l4 *l4)
{
	if (l4->proto != IPPROTO_TCP && l4->proto != IPPROTO_UDP && l4->proto != IPPROTO_SCTP)
		return;
	if (bpf_skb_load_bytes_relative(skb, off + 2, &l4->dport, sizeof(l4->dport), BPF_HDR_START_NET))
		l4->dport = 0;
}

/* match_in looks the key's address up for the direction, first with the
 * packet's protocol and port, then with its protocol and any port, and,
 * for destinations, with neither. key's address is filled in. */
static __always_inline void *match_in(void *map, struct match_head *key, __u32 addr_bits, __u8 dir, const struct l4 *l4)
{
	void *pol = NULL;

	key->prefixlen = MATCH_HEAD_BITS + addr_bits;
	key->dir = dir;
	key->proto = l4->proto;
	if (l4->dport) {
		key->dport = l4->dport;
		pol = bpf_map_lookup_elem(map, key);
	}
	if (!pol) {
		key->dport = 0;
		pol = bpf_map_lookup_elem(map, key);
	}
	if (!pol && dir == MATCH_DST) {
		key->proto = 0;
		pol = bpf_map_lookup_elem(map, key);
	}
	return pol;
}

static __always_inline int redirected(long ret)
{
	if (ret == TC_ACT_REDIRECT)
		stats_count(STAT_REDIRECTED);
	else
		stats_count(STAT_DROPPED);
	return ret;
}

/* policy_v4 finds the policy for an IPv4 packet, in the order above. */
static __always_inline struct route_policy *policy_v4(struct __sk_buff *skb, const struct iphdr *ip)
{
	struct policy_key_v4 key = {.prefixlen = 32};
	struct match_key_v4 mkey = {};
	struct l4 l4 = {.proto = ip->protocol};
	struct route_policy *pol;

	if (!(ip->frag_off & bpf_htons(0x1fff)))
		load_dport(skb, ip->ihl * 4, &l4);
	__builtin_memcpy(mkey.addr, &ip->saddr, 4);
	pol = match_in(&policy_matches_v4, &mkey.head, 32, MATCH_SRC, &l4);
	if (pol)
		return pol;
	__builtin_memcpy(key.addr, &ip->saddr, 4);
	pol = bpf_map_lookup_elem(&policy_routes_v4, &key);
	if (pol)
		return pol;
	__builtin_memcpy(mkey.addr, &ip->daddr, 4);
	return match_in(&policy_matches_v4, &mkey.head, 32, MATCH_DST, &l4);
}

static __always_inline int route_v4(struct __sk_buff *skb)
{
	struct bpf_redir_neigh nh = {.nh_family = AF_INET};
	struct route_policy *pol;
	struct iphdr ip;

	if (bpf_skb_load_bytes_relative(skb, 0, &ip, sizeof(ip), BPF_HDR_START_NET))
		return verdict_next();
	if (ip.version != 4)
		return verdict_next();
	pol = policy_v4(skb, &ip);
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

/* policy_v6 finds the policy for an IPv6 packet, in the order above. */
static __always_inline struct route_policy_v6 *policy_v6(struct __sk_buff *skb, const struct ipv6hdr *ip6)
{
	struct policy_key_v6 key = {.prefixlen = 128};
	struct match_key_v6 mkey = {};
	struct l4 l4 = {.proto = ip6->nexthdr};
	struct route_policy_v6 *pol;

	load_dport(skb, sizeof(*ip6), &l4);
	__builtin_memcpy(mkey.addr, &ip6->saddr, 16);
	pol = match_in(&policy_matches_v6, &mkey.head, 128, MATCH_SRC, &l4);
	if (pol)
		return pol;
	__builtin_memcpy(key.addr, &ip6->saddr, 16);
	pol = bpf_map_lookup_elem(&policy_routes_v6, &key);
	if (pol)
		return pol;
	__builtin_memcpy(mkey.addr, &ip6->daddr, 16);
	return match_in(&policy_matches_v6, &mkey.head, 128, MATCH_DST, &l4);
}

static __always_inline int route_v6(struct __sk_buff *skb)
{
	struct bpf_redir_neigh nh = {.nh_family = AF_INET6};
	struct route_policy_v6 *pol;
	struct ipv6hdr ip6;

	if (bpf_skb_load_bytes_relative(skb, 0, &ip6, sizeof(ip6), BPF_HDR_START_NET))
		return verdict_next();
	if (ip6.version != 6)
		return verdict_next();
	pol = policy_v6(skb, &ip6);
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
