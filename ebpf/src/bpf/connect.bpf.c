/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* connect(2): a denied destination fails at once with EPERM, no SYN leaves. */

SEC("cgroup/connect4")
int purple_connect4(struct bpf_sock_addr *ctx)
{
	__u32 rule_id;
	__u32 daddr = ctx->user_ip4;
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	int v = purple_judge_v4(daddr, ctx->protocol, port, &rule_id);

	purple_record(v, rule_id, PURPLE_HOOK_CONNECT4, 2, ctx->protocol, port, &daddr, 1);
	return v == PURPLE_ALLOW;
}

SEC("cgroup/connect6")
int purple_connect6(struct bpf_sock_addr *ctx)
{
	__u32 rule_id;
	__u32 daddr[4] = { ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3] };
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	int v = purple_judge_v6(daddr, ctx->protocol, port, &rule_id);

	purple_record(v, rule_id, PURPLE_HOOK_CONNECT6, 10, ctx->protocol, port, daddr, 1);
	return v == PURPLE_ALLOW;
}
