/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * recvfrom/recvmsg on UDP sockets whose DNS queries were redirected to
 * Purple's resolver: the reply's source becomes the server the program asked,
 * since resolvers (glibc, musl) drop answers from any other address.
 */

static __always_inline const struct purple_dns_orig *purple_dns_reply(struct bpf_sock_addr *ctx)
{
	const struct purple_config *cfg = purple_config();
	__u64 cookie;

	if (!cfg || !cfg->dns_port || (__u16)ctx->user_port != cfg->dns_port)
		return 0;
	cookie = bpf_get_socket_cookie(ctx);
	return bpf_map_lookup_elem(&dns_orig, &cookie);
}

SEC("cgroup/recvmsg4")
int purple_recvmsg4(struct bpf_sock_addr *ctx)
{
	const struct purple_dns_orig *o;

	if (ctx->user_ip4 != bpf_htonl(0x7f000001))
		return 1;
	o = purple_dns_reply(ctx);
	if (o && o->family == 2) {
		ctx->user_ip4 = o->addr[0];
		ctx->user_port = o->port;
	}
	return 1;
}

SEC("cgroup/recvmsg6")
int purple_recvmsg6(struct bpf_sock_addr *ctx)
{
	const struct purple_dns_orig *o;

	if (ctx->user_ip6[0] != 0 || ctx->user_ip6[1] != 0 ||
	    ctx->user_ip6[2] != bpf_htonl(0x0000ffff) || ctx->user_ip6[3] != bpf_htonl(0x7f000001))
		return 1;
	o = purple_dns_reply(ctx);
	if (o && o->family == 10) {
		ctx->user_ip6[0] = o->addr[0];
		ctx->user_ip6[1] = o->addr[1];
		ctx->user_ip6[2] = o->addr[2];
		ctx->user_ip6[3] = o->addr[3];
		ctx->user_port = o->port;
	}
	return 1;
}
