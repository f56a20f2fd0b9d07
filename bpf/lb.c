//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * lb: a load balancer for one IPv4 and one IPv6 virtual IP. Packets to
 * the VIP (map `vip`, or `vip_v6`) go to one of the backends of their
 * family (`backends`, `backends_v6`): the slots with an ifindex, wherever
 * they are, chosen by a hash of the packet's addresses, protocol and
 * ports, so every packet of a flow goes to the same backend while the set
 * of backends stays the same: bpf_redirect_neigh sends it out of the
 * backend's device to the backend's address. Emptying any slot (pop())
 * leaves the other backends serving. Backends hold the VIP themselves
 * (say on their loopback) and answer the client directly: there is no
 * address translation (direct server return), so the packet, and with
 * it every checksum, is unchanged.
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

#define MAX_BACKENDS 16

struct vip {
	__u8 addr[4];
};

struct backend {
	__u32 ifindex;
	__u8 addr[4];
};

struct vip_v6 {
	__u8 addr[16];
};

struct backend_v6 {
	__u32 ifindex;
	__u8 addr[16];
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

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vip_v6);
} vip_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct backend_v6);
} backends_v6 SEC(".maps");

/* The IPv4 header and the first four bytes after it: the ports of TCP
 * and UDP when the header has no options. */
struct ip_ports {
	struct iphdr ip;
	__u32 ports;
};

/* The IPv6 header and the ports of TCP and UDP right after it. */
struct ip6_ports {
	struct ipv6hdr ip6;
	__u32 ports;
};

/* mix folds the addresses, protocol and ports into a hash; every packet
 * of a flow gets the same. */
static __always_inline __u32 mix(__u32 saddr, __u32 daddr, __u32 ports, __u8 proto)
{
	__u32 h = saddr * 0x9e3779b1u;

	h ^= daddr + 0x7f4a7c15u + (h << 6) + (h >> 2);
	h ^= ports + proto + (h << 6) + (h >> 2);
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	return h;
}

/* fold6 xors an IPv6 address's four words. */
static __always_inline __u32 fold6(const struct in6_addr *a)
{
	return a->in6_u.u6_addr32[0] ^ a->in6_u.u6_addr32[1] ^ a->in6_u.u6_addr32[2] ^ a->in6_u.u6_addr32[3];
}

/* backend_ifindex is the ifindex of slot i of a backends map, 0 when the
 * slot is empty. Both families' backends start with the ifindex. */
static __always_inline __u32 backend_ifindex(void *map, __u32 i)
{
	__u32 *ifindex = bpf_map_lookup_elem(map, &i);

	return ifindex ? *ifindex : 0;
}

/* pick returns the backend of map for hash: the (hash * n / 2^32)-th of the n
 * slots with an ifindex, counted in slot order, or NULL when there is
 * none. An empty slot anywhere is skipped, so removing a backend moves
 * only the flows the hash assigns differently among those left. */
static __always_inline void *pick(void *map, __u32 hash)
{
	__u32 i, n = 0, want;

	for (i = 0; i < MAX_BACKENDS; i++)
		if (backend_ifindex(map, i))
			n++;
	if (n == 0)
		return NULL;
	/* hash * n / 2^32 maps the hash onto 0..n-1 as evenly as hash % n,
	 * without a division. */
	want = ((__u64)hash * n) >> 32;
	for (i = 0; i < MAX_BACKENDS; i++) {
		if (!backend_ifindex(map, i))
			continue;
		if (want-- == 0)
			return bpf_map_lookup_elem(map, &i);
	}
	return NULL;
}

static __always_inline int redirect(__u32 ifindex, struct bpf_redir_neigh *nh)
{
	if (bpf_redirect_neigh(ifindex, nh, sizeof(*nh), 0) != TC_ACT_REDIRECT)
		return verdict_drop();
	stats_count(STAT_REDIRECTED);
	return TC_ACT_REDIRECT;
}

static __always_inline int lb_v4(struct __sk_buff *skb)
{
	struct bpf_redir_neigh nh = {.nh_family = AF_INET};
	struct ip_ports pkt = {};
	struct backend *chosen;
	__u32 zero = 0;
	struct vip *v;

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
	chosen = pick(&backends, mix(pkt.ip.saddr, pkt.ip.daddr, pkt.ports, pkt.ip.protocol));
	if (!chosen)
		return verdict_drop();
	__builtin_memcpy(&nh.ipv4_nh, chosen->addr, 4);
	return redirect(chosen->ifindex, &nh);
}

static __always_inline int lb_v6(struct __sk_buff *skb)
{
	struct bpf_redir_neigh nh = {.nh_family = AF_INET6};
	struct ip6_ports pkt = {};
	struct backend_v6 *chosen;
	struct vip_v6 *v;
	__u32 zero = 0;

	if (bpf_skb_load_bytes_relative(skb, 0, &pkt, sizeof(pkt), BPF_HDR_START_NET) &&
	    bpf_skb_load_bytes_relative(skb, 0, &pkt.ip6, sizeof(pkt.ip6), BPF_HDR_START_NET))
		return verdict_next();
	if (pkt.ip6.nexthdr != IPPROTO_TCP && pkt.ip6.nexthdr != IPPROTO_UDP)
		pkt.ports = 0;
	v = bpf_map_lookup_elem(&vip_v6, &zero);
	if (!v || pkt.ip6.version != 6 || __builtin_memcmp(&pkt.ip6.daddr, v->addr, 16) != 0)
		return verdict_next();
	chosen = pick(&backends_v6, mix(fold6(&pkt.ip6.saddr), fold6(&pkt.ip6.daddr), pkt.ports, pkt.ip6.nexthdr));
	if (!chosen)
		return verdict_drop();
	__builtin_memcpy(nh.ipv6_nh, chosen->addr, 16);
	return redirect(chosen->ifindex, &nh);
}

SEC("tc")
int lb(struct __sk_buff *skb)
{
	switch (skb->protocol) {
	case bpf_htons(ETH_P_IP):
		return lb_v4(skb);
	case bpf_htons(ETH_P_IPV6):
		return lb_v6(skb);
	}
	return verdict_next();
}
