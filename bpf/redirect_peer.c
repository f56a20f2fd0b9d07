//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * redirect_peer: the netkit fast path between pods. Each packet's
 * destination address is looked up in routes_v4 (IPv4) or routes_v6
 * (IPv6), longest-prefix-match tries from destination prefix to the
 * ifindex of a device in the program's namespace: the host end of a pod's
 * netkit or veth pair. A match hands the packet to that pair's other end,
 * in the pod's namespace, so that the host's routing, forwarding and
 * netfilter never see it; a miss hands it on to the next program and
 * normal routing (VERDICT_NEXT).
 *
 * Attach it where packets leaving a pod pass, on the host end of its
 * pair: netkit's peer hook, or tcx ingress (veth, or netkit too).
 *   - At tc ingress (skb->ingress_ifindex is the receiving device) it
 *     uses bpf_redirect_peer: the packet enters the target pod as if its
 *     device had received it, without a trip through the backlog queue.
 *   - On netkit's hooks the packet is being transmitted, where the kernel
 *     refuses bpf_redirect_peer (it drops the packet), and netkit has
 *     cleared ingress_ifindex: the program uses bpf_redirect out of the
 *     target's host end (NETKIT_REDIRECT), whose transmit hands the packet
 *     to the pod.
 * Either way the verdict is TC_ACT_REDIRECT, counted as redirected.
 */

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "stats.h"

char _license[] SEC("license") = "GPL";

/* Keys of the tries: prefixlen first, as BPF_MAP_TYPE_LPM_TRIE requires. */
struct dst_key_v4 {
	__u32 prefixlen;
	__u8 addr[4];
};

struct dst_key_v6 {
	__u32 prefixlen;
	__u8 addr[16];
};

/* The values are the ifindex of the target pair's host end. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1024);
	__type(key, struct dst_key_v4);
	__type(value, __u32);
} routes_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1024);
	__type(key, struct dst_key_v6);
	__type(value, __u32);
} routes_v6 SEC(".maps");

/* redirect sends the packet to the pair whose host end is ifindex and
 * counts the verdict: TC_ACT_REDIRECT, or TC_ACT_SHOT for flags the
 * kernel refuses. */
static __always_inline int redirect(struct __sk_buff *skb, __u32 ifindex)
{
	long ret;

	if (skb->ingress_ifindex)
		ret = bpf_redirect_peer(ifindex, 0);
	else
		ret = bpf_redirect(ifindex, 0);
	if (ret == TC_ACT_REDIRECT)
		stats_count(STAT_REDIRECTED);
	else
		stats_count(STAT_DROPPED);
	return ret;
}

static __always_inline int route_v4(struct __sk_buff *skb)
{
	struct dst_key_v4 key = {.prefixlen = 32};
	struct iphdr ip;
	__u32 *ifindex;

	if (bpf_skb_load_bytes_relative(skb, 0, &ip, sizeof(ip), BPF_HDR_START_NET))
		return verdict_next();
	if (ip.version != 4)
		return verdict_next();
	__builtin_memcpy(key.addr, &ip.daddr, 4);
	ifindex = bpf_map_lookup_elem(&routes_v4, &key);
	if (!ifindex || !*ifindex)
		return verdict_next();
	return redirect(skb, *ifindex);
}

static __always_inline int route_v6(struct __sk_buff *skb)
{
	struct dst_key_v6 key = {.prefixlen = 128};
	struct ipv6hdr ip6;
	__u32 *ifindex;

	if (bpf_skb_load_bytes_relative(skb, 0, &ip6, sizeof(ip6), BPF_HDR_START_NET))
		return verdict_next();
	if (ip6.version != 6)
		return verdict_next();
	__builtin_memcpy(key.addr, &ip6.daddr, 16);
	ifindex = bpf_map_lookup_elem(&routes_v6, &key);
	if (!ifindex || !*ifindex)
		return verdict_next();
	return redirect(skb, *ifindex);
}

SEC("tc")
int redirect_peer(struct __sk_buff *skb)
{
	switch (skb->protocol) {
	case bpf_htons(ETH_P_IP):
		return route_v4(skb);
	case bpf_htons(ETH_P_IPV6):
		return route_v6(skb);
	}
	return verdict_next();
}
