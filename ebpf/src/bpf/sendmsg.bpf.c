/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* sendto/sendmsg on unconnected UDP sockets: judged per destination. */

SEC("cgroup/sendmsg4")
int purple_sendmsg4(struct bpf_sock_addr *ctx)
{
	__u32 rule_id;
	__u32 daddr = ctx->user_ip4;
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	int v = purple_judge_v4(daddr, ctx->protocol, port, &rule_id);

	purple_record(v, rule_id, PURPLE_HOOK_SENDMSG4, 2, ctx->protocol, port, &daddr, 1);
	return v == PURPLE_ALLOW;
}

SEC("cgroup/sendmsg6")
int purple_sendmsg6(struct bpf_sock_addr *ctx)
{
	__u32 rule_id;
	__u32 daddr[4] = { ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3] };
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	int v = purple_judge_v6(daddr, ctx->protocol, port, &rule_id);

	purple_record(v, rule_id, PURPLE_HOOK_SENDMSG6, 10, ctx->protocol, port, daddr, 1);
	return v == PURPLE_ALLOW;
}
