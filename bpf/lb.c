//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * lb: a load balancer for one IPv4 virtual IP. Packets to the VIP (map
 * `vip`) go to one of the backends in `backends` (slots with ifindex 0 are
 * empty), chosen by the packet's flow hash, so every packet of a flow goes
 * to the same backend: bpf_redirect_neigh sends it out of the backend's
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

SEC("tc")
int lb(struct __sk_buff *skb)
{
	struct bpf_redir_neigh nh = {.nh_family = AF_INET};
	struct backend *chosen = NULL;
	__u32 zero = 0, n = 0, pick, i;
	struct iphdr ip;
	struct vip *v;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return verdict_next();
	if (bpf_skb_load_bytes_relative(skb, 0, &ip, sizeof(ip), BPF_HDR_START_NET))
		return verdict_next();
	v = bpf_map_lookup_elem(&vip, &zero);
	if (!v || ip.version != 4 || __builtin_memcmp(&ip.daddr, v->addr, 4) != 0)
		return verdict_next();

	/* Count the configured backends, then take the (hash % n)-th. */
	for (i = 0; i < MAX_BACKENDS; i++) {
		__u32 key = i;
		struct backend *b = bpf_map_lookup_elem(&backends, &key);

		if (b && b->ifindex)
			n++;
	}
	if (n == 0)
		return verdict_drop();
	pick = bpf_get_hash_recalc(skb) % n;
	for (i = 0; i < MAX_BACKENDS; i++) {
		__u32 key = i;
		struct backend *b = bpf_map_lookup_elem(&backends, &key);

		if (!b || !b->ifindex)
			continue;
		if (pick == 0) {
			chosen = b;
			break;
		}
		pick--;
	}
	if (!chosen)
		return verdict_drop();
	__builtin_memcpy(&nh.ipv4_nh, chosen->addr, 4);
	if (bpf_redirect_neigh(chosen->ifindex, &nh, sizeof(nh), 0) != TC_ACT_REDIRECT)
		return verdict_drop();
	stats_count(STAT_REDIRECTED);
	return TC_ACT_REDIRECT;
}
