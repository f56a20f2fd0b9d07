//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/* pass: lets every packet through and counts it. */

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "stats.h"

char _license[] SEC("license") = "GPL";

SEC("tc")
int pass(struct __sk_buff *skb)
{
	return verdict_pass();
}
