//go:build ignore

// SPDX-License-Identifier: GPL-2.0
// netns_count follows the kernel's namespace cleanup work. Deleting a
// network namespace only queues it: cleanup_net, run from a workqueue,
// dismantles queued namespaces in batches (devices, routes, sockets), and
// until it has finished the work competes with whatever runs next. These
// raw tracepoint programs watch the workqueue events of that one work
// item: `pending` is 1 from queue_work until its run starts, `running` is
// 1 during a run, `last_end_ns` is the bpf_ktime_get_ns() at which the
// last run finished and `runs` counts runs. (Raw tracepoints need neither
// kprobes nor BPF trampolines, which not every kernel has.)
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char __license[] SEC("license") = "GPL";

// Set at load time: the address of cleanup_net (/proc/kallsyms) and the
// offset of func in struct work_struct (kernel BTF).
volatile const __u64 cleanup_fn = 0;
volatile const __u32 func_off = 24;

__u32 pending;
__u32 running;
__u64 runs;
__u64 queued;
__u64 last_end_ns;

static __always_inline int is_cleanup(__u64 work)
{
	__u64 fn = 0;

	if (bpf_probe_read_kernel(&fn, sizeof(fn), (void *)(work + func_off)))
		return 0;
	return fn == cleanup_fn;
}

// workqueue_queue_work(int req_cpu, struct pool_workqueue *pwq, struct work_struct *work)
SEC("raw_tracepoint/workqueue_queue_work")
int queue_work(struct bpf_raw_tracepoint_args *ctx)
{
	if (!is_cleanup(ctx->args[2]))
		return 0;
	pending = 1;
	__sync_fetch_and_add(&queued, 1);
	return 0;
}

// workqueue_execute_start(struct work_struct *work)
SEC("raw_tracepoint/workqueue_execute_start")
int execute_start(struct bpf_raw_tracepoint_args *ctx)
{
	if (!is_cleanup(ctx->args[0]))
		return 0;
	pending = 0;
	running = 1;
	return 0;
}

// workqueue_execute_end(struct work_struct *work, work_func_t function)
SEC("raw_tracepoint/workqueue_execute_end")
int execute_end(struct bpf_raw_tracepoint_args *ctx)
{
	if (ctx->args[1] != cleanup_fn)
		return 0;
	last_end_ns = bpf_ktime_get_ns();
	__sync_fetch_and_add(&runs, 1);
	running = 0;
	return 0;
}
