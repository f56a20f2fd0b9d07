#include <linux/bpf.h>

int broken(struct __sk_buff *skb)
{
	return skb->no_such_field;
}
