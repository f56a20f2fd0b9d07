//go:build ignore

// SPDX-License-Identifier: GPL-2.0
// dropmon reports the packets the kernel drops in a lab's namespaces. It
// runs on the skb:kfree_skb tracepoint as a raw tracepoint program (raw
// tracepoints need neither kprobes nor BPF trampolines), keeps only the
// drops whose namespace is in the `netns` map, which user space fills
// with the inode numbers of the lab's namespaces, and writes one record
// per drop to the `drops` ring buffer. The kernel structures are read
// through CO-RE relocations, resolved against the running kernel's BTF
// at load time.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "drop_verdict.h"

char __license[] SEC("license") = "GPL";

// The few kernel fields dropmon reads, named as in the kernel; CO-RE finds
// their offsets in the running kernel.
struct ns_common {
	unsigned int inum;
} __attribute__((preserve_access_index));

struct net {
	struct ns_common ns;
} __attribute__((preserve_access_index));

typedef struct {
	struct net *net;
} possible_net_t;

struct net_device {
	int ifindex;
	possible_net_t nd_net;
} __attribute__((preserve_access_index));

struct sock_common {
	possible_net_t skc_net;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
} __attribute__((preserve_access_index));

struct sk_buff {
	struct net_device *dev;
	struct sock *sk;
	unsigned char *head;
	__u16 protocol;
	__u16 network_header;
	__u16 transport_header;
} __attribute__((preserve_access_index));

// One drop, as user space decodes it (datapath/dropmon_record.go): all
// fields in host byte order except the addresses, which are as on the
// wire.
struct drop {
	__u32 netns;
	__u32 ifindex;
	__u64 location;
	__u32 reason;
	__u16 proto;    // the skb's ethertype
	__u8 l4;        // IP protocol number, 0 if not IP
	__u8 pad;
	__u8 src[16];   // IPv4 in the first 4 bytes
	__u8 dst[16];
	__u16 sport;
	__u16 dport;
	__u32 prog;     // ID of the program that dropped it, 0 if unknown
	char func[64];  // the function at location (%ps), NUL-terminated
};

// The lab's namespaces: room for labs of 32,768 namespaces, allocated
// as they are added (a lab of 10,000 filled 4,096 preallocated slots).
// The kernel allocates and clears a hash map's buckets whole as it
// creates the map: 131,072 of them cost every run that checks traffic
// 5 ms.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 15);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, __u8);
} netns SEC(".maps");

// The locations whose function a record has named: printing a symbol
// costs microseconds, so each location is named once and user space
// remembers the name.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u8);
} named SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 18);
} drops SEC(".maps");

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

struct iphdr4 {
	__u8 ihl_version;
	__u8 tos;
	__u16 tot_len;
	__u16 id;
	__u16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__u8 saddr[4];
	__u8 daddr[4];
};

struct iphdr6 {
	__u32 flow;
	__u16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

// ns_of returns the inode number of the namespace the skb is in: its
// device's, or else its socket's.
static __always_inline __u32 ns_of(struct sk_buff *skb, __u32 *ifindex)
{
	struct net_device *dev = BPF_CORE_READ(skb, dev);
	struct sock *sk;

	if (dev) {
		*ifindex = BPF_CORE_READ(dev, ifindex);
		return BPF_CORE_READ(dev, nd_net.net, ns.inum);
	}
	sk = BPF_CORE_READ(skb, sk);
	if (sk)
		return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	return 0;
}

// headers fills in the addresses and ports of an IPv4 or IPv6 packet.
static __always_inline void headers(struct sk_buff *skb, struct drop *d)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	__u16 th = BPF_CORE_READ(skb, transport_header);
	__u16 ports[2];

	if (d->proto == ETH_P_IP) {
		struct iphdr4 ip;

		if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh))
			return;
		if ((ip.ihl_version >> 4) != 4)
			return;
		d->l4 = ip.protocol;
		__builtin_memcpy(d->src, ip.saddr, 4);
		__builtin_memcpy(d->dst, ip.daddr, 4);
		// The transport header may not be set yet on receive.
		if (th == (__u16)~0 || th <= nh)
			th = nh + (ip.ihl_version & 0xf) * 4;
	} else if (d->proto == ETH_P_IPV6) {
		struct iphdr6 ip;

		if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh))
			return;
		d->l4 = ip.nexthdr;
		__builtin_memcpy(d->src, ip.saddr, 16);
		__builtin_memcpy(d->dst, ip.daddr, 16);
		if (th == (__u16)~0 || th <= nh)
			th = nh + sizeof(ip);
	} else {
		return;
	}
	if (d->l4 != 6 && d->l4 != 17)
		return;
	if (bpf_probe_read_kernel(ports, sizeof(ports), head + th))
		return;
	d->sport = bpf_ntohs(ports[0]);
	d->dport = bpf_ntohs(ports[1]);
}

// verdict fills in the program that returned the drop verdict for skb,
// if an fexit program recorded one, and forgets it: the address is
// reused by later packets.
static __always_inline void verdict(struct sk_buff *skb, struct drop *d)
{
	__u64 key = (__u64)skb;
	__u32 *id = bpf_map_lookup_elem(&verdicts, &key);

	if (!id)
		return;
	d->prog = *id;
	bpf_map_delete_elem(&verdicts, &key);
}

// kfree_skb(struct sk_buff *skb, void *location, enum skb_drop_reason reason, ...)
SEC("raw_tracepoint/kfree_skb")
int kfree_skb(struct bpf_raw_tracepoint_args *ctx)
{
	struct sk_buff *skb = (struct sk_buff *)ctx->args[0];
	__u32 ifindex = 0;
	__u32 ns = ns_of(skb, &ifindex);
	struct drop *d;

	if (!ns || !bpf_map_lookup_elem(&netns, &ns))
		return 0;
	d = bpf_ringbuf_reserve(&drops, sizeof(*d), 0);
	if (!d)
		return 0;
	__builtin_memset(d, 0, sizeof(*d));
	d->netns = ns;
	d->ifindex = ifindex;
	d->location = ctx->args[1];
	d->reason = (__u32)ctx->args[2];
	// The kernel names the function that freed the packet, the first
	// time a location is seen: user space need not read /proc/kallsyms
	// (5 MB) to say where it died. The argument is on the stack: the
	// verifier refuses the record as both the output and the data.
	__u64 loc = ctx->args[1];
	if (!bpf_map_lookup_elem(&named, &loc)) {
		__u8 one = 1;

		bpf_snprintf(d->func, sizeof(d->func), "%ps", &loc, sizeof(loc));
		bpf_map_update_elem(&named, &loc, &one, BPF_ANY);
	}
	d->proto = bpf_ntohs(BPF_CORE_READ(skb, protocol));
	headers(skb, d);
	verdict(skb, d);
	// Waking the reader costs more than the rest of the program (a
	// self-IPI, ~5 us in a VM): it reads every few milliseconds anyway,
	// and is woken only when the ring fills up.
	bpf_ringbuf_submit(d, bpf_ringbuf_query(&drops, BPF_RB_AVAIL_DATA) > (1 << 16) ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
	return 0;
}
