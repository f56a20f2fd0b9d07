// SPDX-License-Identifier: GPL-2.0
/*
 * Test object for datapath's loader, used as a "user" ELF: several
 * programs of different types, constants of every integer width and
 * signedness, and a "stats" map of the wrong shape.
 */

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

char _license[] SEC("license") = "GPL";

volatile const __s8 c_s8 = 0;
volatile const __u8 c_u8 = 0;
volatile const __s16 c_s16 = 0;
volatile const __u16 c_u16 = 0;
volatile const __s32 c_s32 = 0;
volatile const __u32 c_u32 = 0;
volatile const __s64 c_s64 = 0;
volatile const __u64 c_u64 = 0;
volatile const _Bool c_bool = 0;

/* Not a nkscript stats map: values are 32 bits wide. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u32);
} stats SEC(".maps");

/* Returns the low 32 bits of the sum of the constants. */
SEC("tc")
int sum_consts(struct __sk_buff *skb)
{
	__s64 sum = 0;

	sum += c_s8;
	sum += c_u8;
	sum += c_s16;
	sum += c_u16;
	sum += c_s32;
	sum += c_u32;
	sum += c_s64;
	sum += (__s64)c_u64;
	sum += c_bool;
	return (int)sum;
}

SEC("tcx/egress")
int shoot(struct __sk_buff *skb)
{
	return TC_ACT_SHOT;
}

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}
