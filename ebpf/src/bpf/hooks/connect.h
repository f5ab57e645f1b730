/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* connect(2): a denied destination fails at once with EPERM, no SYN leaves. */

#include "../lib/sock_addr.h"

SEC("cgroup/connect4")
int purple_connect4(struct bpf_sock_addr *ctx)
{
	return purple_sock_addr4(ctx, PURPLE_HOOK_CONNECT4);
}

SEC("cgroup/connect6")
int purple_connect6(struct bpf_sock_addr *ctx)
{
	return purple_sock_addr6(ctx, PURPLE_HOOK_CONNECT6);
}
