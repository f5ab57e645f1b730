/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* sendto/sendmsg on unconnected UDP sockets: judged per destination. */

#include "../lib/sock_addr.h"

SEC("cgroup/sendmsg4")
int purple_sendmsg4(struct bpf_sock_addr *ctx)
{
	return purple_sock_addr4(ctx, PURPLE_HOOK_SENDMSG4);
}

SEC("cgroup/sendmsg6")
int purple_sendmsg6(struct bpf_sock_addr *ctx)
{
	return purple_sock_addr6(ctx, PURPLE_HOOK_SENDMSG6);
}
