/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * recvfrom/recvmsg on UDP sockets whose DNS queries were redirected to
 * Purple's resolver: the reply's source becomes the server the program asked,
 * since resolvers (glibc, musl) drop answers from any other address.
 */

#include "../lib/dns.h"

SEC("cgroup/recvmsg4")
int purple_recvmsg4(struct bpf_sock_addr *ctx)
{
	const struct purple_dns_orig *o;

	if (ctx->user_ip4 != bpf_htonl(PURPLE_RESOLVER_ADDR4))
		return PURPLE_RET_PASS;
	o = purple_dns_reply(ctx);
	if (o && o->family == PURPLE_AF_INET) {
		ctx->user_ip4 = o->addr[0];
		ctx->user_port = o->port;
	}
	return PURPLE_RET_PASS;
}

SEC("cgroup/recvmsg6")
int purple_recvmsg6(struct bpf_sock_addr *ctx)
{
	__u32 src[4] = { ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3] };
	const struct purple_dns_orig *o;

	if (!purple_is_resolver6(src))
		return PURPLE_RET_PASS;
	o = purple_dns_reply(ctx);
	if (o && o->family == PURPLE_AF_INET6) {
		ctx->user_ip6[0] = o->addr[0];
		ctx->user_ip6[1] = o->addr[1];
		ctx->user_ip6[2] = o->addr[2];
		ctx->user_ip6[3] = o->addr[3];
		ctx->user_port = o->port;
	}
	return PURPLE_RET_PASS;
}
