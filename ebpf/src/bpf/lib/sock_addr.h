/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The socket-address hooks (connect, sendmsg) differ only in which hook they
 * report; the destination is the user's address in both. Each returns what
 * the hook returns (PURPLE_RET_*).
 */
#ifndef PURPLE_SOCK_ADDR_H
#define PURPLE_SOCK_ADDR_H

#include "dns.h"
#include "events.h"
#include "judge.h"

static __always_inline int purple_sock_addr4(struct bpf_sock_addr *ctx, __u8 hook)
{
	__u32 rule_id;
	__u32 daddr[4] = { ctx->user_ip4 };
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	/* Read before any branch: the verifier refuses ctx loads through a
	 * pointer the compiler offset and shared between paths. */
	__u8 protocol = ctx->protocol;
	int portless = purple_portless(protocol);
	struct purple_dest d = { .daddr = daddr, .family = PURPLE_AF_INET, .protocol = protocol };
	int v;

	if (purple_dns_redirect(ctx, port, PURPLE_AF_INET, daddr))
		return PURPLE_RET_PASS;
	if (portless) {
		port = 0;
		d.flags = PURPLE_FLAG_PORTLESS;
	}
	d.port = port;
	if (purple_dot_denied(port, purple_is_loopback4(daddr[0]))) {
		v = PURPLE_DENY;
		rule_id = PURPLE_RULE_DNS;
	} else {
		v = purple_judge_v4(daddr[0], protocol, port, portless, &rule_id);
	}
	purple_record(v, rule_id, hook, &d, 1);
	return purple_ret(v);
}

static __always_inline int purple_sock_addr6(struct bpf_sock_addr *ctx, __u8 hook)
{
	__u32 rule_id;
	__u32 daddr[4] = { ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3] };
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	int loopback = purple_is_any_loopback6(daddr);
	__u8 protocol = ctx->protocol; /* before any branch, as above */
	int portless = purple_portless(protocol);
	struct purple_dest d = { .daddr = daddr, .family = PURPLE_AF_INET6, .protocol = protocol };
	__u8 form = PURPLE_FORM_NONE;
	int v;

	if (purple_dns_redirect(ctx, port, PURPLE_AF_INET6, daddr))
		return PURPLE_RET_PASS;
	if (portless) {
		port = 0;
		d.flags = PURPLE_FLAG_PORTLESS;
	}
	d.port = port;
	if (purple_dot_denied(port, loopback)) {
		v = PURPLE_DENY;
		rule_id = PURPLE_RULE_DNS;
	} else {
		v = purple_judge_v6(daddr, protocol, port, portless, &rule_id, &form);
	}
	d.flags |= form;
	purple_record(v, rule_id, hook, &d, 1);
	return purple_ret(v);
}

#endif
