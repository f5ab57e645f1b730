/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * DNS with a resolver forced (config.dns_port set): queries are redirected
 * to Purple's resolver, their answers made to look as if they came from the
 * server asked, the asker noted for the resolver's records, and DNS that
 * goes around the resolver (hand-made packets, DNS over TLS/QUIC) refused.
 */
#ifndef PURPLE_DNS_H
#define PURPLE_DNS_H

#include "maps.h"

#define PURPLE_DNS_PORT 53
#define PURPLE_DOT_PORT 853

/* A TCP or UDP header's first two fields, network byte order. */
struct purple_ports {
	__u16 source;
	__u16 dest;
};

/*
 * Every DNS destination (any address, port 53, TCP or UDP) is rewritten to
 * the resolver on 127.0.0.1 in the container's own network namespace, and
 * the original destination is kept per socket for the recvmsg hooks.
 * Returns whether the call was redirected (it then goes on, to the resolver).
 */
static __always_inline int purple_dns_redirect(struct bpf_sock_addr *ctx, __u16 port,
					       __u8 family, const __u32 orig[4])
{
	const struct purple_config *cfg = purple_config();
	struct purple_dns_orig o = { .port = bpf_htons(port), .family = family };
	__u64 cookie;

	if (!cfg || !cfg->dns_port || port != PURPLE_DNS_PORT)
		return 0;
	cookie = bpf_get_socket_cookie(ctx);
	o.pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(o.comm, sizeof(o.comm));
	__builtin_memcpy(o.addr, orig, family == PURPLE_AF_INET ? 4 : 16);
	bpf_map_update_elem(&dns_orig, &cookie, &o, BPF_ANY);
	if (family == PURPLE_AF_INET) {
		ctx->user_ip4 = bpf_htonl(PURPLE_RESOLVER_ADDR4);
	} else {
		/* ::ffff:127.0.0.1: dual-stack sockets reach the IPv4 resolver. */
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0x0000ffff);
		ctx->user_ip6[3] = bpf_htonl(PURPLE_RESOLVER_ADDR4);
	}
	ctx->user_port = cfg->dns_port;
	purple_count(&stats, PURPLE_STAT_DNS_REDIRECTED);
	return 1;
}

/* DNS over TLS or QUIC leaves the container only if no resolver is forced. */
static __always_inline int purple_dot_denied(__u16 port, int loopback)
{
	const struct purple_config *cfg = purple_config();

	return cfg && cfg->dns_port && port == PURPLE_DOT_PORT && !loopback;
}

/* The original destination of a reply the resolver sent to a redirected
 * socket (the recvmsg hooks), or NULL for any other message. */
static __always_inline const struct purple_dns_orig *purple_dns_reply(struct bpf_sock_addr *ctx)
{
	const struct purple_config *cfg = purple_config();
	__u64 cookie;

	if (!cfg || !cfg->dns_port || (__u16)ctx->user_port != cfg->dns_port)
		return 0;
	cookie = bpf_get_socket_cookie(ctx);
	return bpf_map_lookup_elem(&dns_orig, &cookie);
}

/* With a resolver forced, hand-made DNS to anything but loopback is dropped
 * (connect/sendmsg already redirected the sockets that asked the usual way).
 * Returns whether the packet is such a leak, and then its rule id. */
static __always_inline int purple_dns_leak(__u8 protocol, __u16 port, int loopback, __u32 *rule_id)
{
	const struct purple_config *cfg = purple_config();

	if (!cfg || !cfg->dns_port || loopback ||
	    (protocol != IPPROTO_TCP && protocol != IPPROTO_UDP) ||
	    (port != PURPLE_DNS_PORT && port != PURPLE_DOT_PORT))
		return 0;
	*rule_id = PURPLE_RULE_DNS;
	return 1;
}

/* A query leaving for Purple's resolver: its asker (noted when the socket was
 * redirected) is filed under the packet's source port, where the resolver
 * looks it up. */
static __always_inline void purple_note_asker(struct __sk_buff *skb, __u8 protocol,
					      const struct purple_ports *ports)
{
	const struct purple_config *cfg = purple_config();
	struct purple_asker_key k = { .port = bpf_ntohs(ports->source), .protocol = protocol };
	struct purple_asker a = {};
	const struct purple_dns_orig *o;
	__u64 cookie;

	if (!cfg || !cfg->dns_port || ports->dest != cfg->dns_port)
		return;
	cookie = bpf_get_socket_cookie(skb);
	o = bpf_map_lookup_elem(&dns_orig, &cookie);
	if (!o)
		return;
	a.pid = o->pid;
	__builtin_memcpy(a.comm, o->comm, sizeof(a.comm));
	bpf_map_update_elem(&dns_askers, &k, &a, BPF_ANY);
}

#endif
