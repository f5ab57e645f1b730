/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The judge: a destination, protocol and port against the rules of its
 * family (the most specific prefix decides, then protocol and ports) and the
 * mode's default. Every function here returns a verdict, PURPLE_ALLOW or
 * PURPLE_DENY, and the rule id that decided.
 */
#ifndef PURPLE_JUDGE_H
#define PURPLE_JUDGE_H

#include "maps.h"
#include "v4_in_v6.h"

/* What a hook returns for a verdict. */
static __always_inline int purple_ret(int verdict)
{
	return verdict == PURPLE_ALLOW ? PURPLE_RET_PASS : PURPLE_RET_REFUSE;
}

/* Sockets that are neither TCP nor UDP (ping sockets) have no port to judge. */
static __always_inline int purple_portless(__u8 protocol)
{
	return protocol != IPPROTO_TCP && protocol != IPPROTO_UDP;
}

/*
 * A port-less destination (ICMP, raw IP, anything but TCP and UDP) is judged
 * by a rule without ports like any other; a rule scoped to ports cannot vouch
 * for it: such an allow does not cover it, such a deny does (in deny-list
 * mode `allow_outgoing` means "nothing but these ports").
 */
static __always_inline int purple_ports_match(const struct purple_rule *r, __u16 port,
					      int portless)
{
	if (r->nports == 0)
		return 1;
	if (portless)
		return r->action == PURPLE_DENY;
#pragma unroll
	for (int i = 0; i < PURPLE_MAX_PORT_RANGES; i++) {
		if (i >= r->nports)
			break;
		if (port >= r->ports[i].first && port <= r->ports[i].last)
			return 1;
	}
	return 0;
}

/*
 * The most specific rule decides when protocol and port match; otherwise the
 * mode's default does.
 */
static __always_inline int purple_judge(const struct purple_rule *r, __u8 protocol, __u16 port,
					int portless, __u32 *rule_id)
{
	const struct purple_config *cfg = purple_config();

	if (r && (r->protocol == PURPLE_PROTO_ANY || r->protocol == protocol) &&
	    purple_ports_match(r, port, portless)) {
		*rule_id = r->id;
		return r->action;
	}
	*rule_id = PURPLE_RULE_DEFAULT;
	/* No config means the loader never finished: fail closed. */
	if (!cfg || cfg->mode == PURPLE_MODE_ALLOW_LIST)
		return PURPLE_DENY;
	return PURPLE_ALLOW;
}

/*
 * Whether a loopback destination is let through unjudged: always when the
 * namespace is the container's own; when it is shared (the caller's, the
 * host's), only Purple's resolver (the redirected sockets' later packets).
 */
static __always_inline int purple_loopback_free(__u8 protocol, __u16 port)
{
	const struct purple_config *cfg = purple_config();

	if (!cfg)
		return 0;
	if (!cfg->judge_loopback)
		return 1;
	return cfg->dns_port && port == bpf_ntohs(cfg->dns_port) &&
	       (protocol == IPPROTO_TCP || protocol == IPPROTO_UDP);
}

/* loopback_free: purple_loopback_free() of this call, asked once by the caller. */
static __always_inline int purple_judge_v4_as(__u32 daddr_be, __u8 protocol, __u16 port,
					      int portless, int loopback_free, __u32 *rule_id)
{
	struct purple_key_v4 key = { .prefixlen = 32 };

	if (loopback_free && purple_is_loopback4(daddr_be)) {
		*rule_id = PURPLE_RULE_LOOPBACK;
		return PURPLE_ALLOW;
	}
	__builtin_memcpy(key.addr, &daddr_be, 4);
	return purple_judge(bpf_map_lookup_elem(&rules_v4, &key), protocol, port, portless,
			    rule_id);
}

static __always_inline int purple_judge_v4(__u32 daddr_be, __u8 protocol, __u16 port,
					   int portless, __u32 *rule_id)
{
	return purple_judge_v4_as(daddr_be, protocol, port, portless,
				  purple_loopback_free(protocol, port), rule_id);
}

/*
 * IPv6. A v4-mapped destination goes out as IPv4: the IPv4 rules alone
 * judge it. Every other form that carries IPv4 addresses (v4_in_v6.h) must
 * pass the IPv4 rules for each of them and then the IPv6 rules: the first
 * denial decides, and *form says which spelling it judged.
 */
static __always_inline int purple_judge_v6(const __u32 daddr[4], __u8 protocol, __u16 port,
					   int portless, __u32 *rule_id, __u8 *form)
{
	struct purple_key_v6 key = { .prefixlen = 128 };
	struct purple_embedded e;

	int loopback_free = purple_loopback_free(protocol, port);

	*form = PURPLE_FORM_NONE;
	if (loopback_free && purple_is_loopback6(daddr)) {
		*rule_id = PURPLE_RULE_LOOPBACK;
		return PURPLE_ALLOW;
	}
	purple_embedded_v4(daddr, &e);
	if (e.n == 1 && e.form[0] == PURPLE_FORM_V4_MAPPED) {
		*form = PURPLE_FORM_V4_MAPPED;
		return purple_judge_v4_as(e.v4[0], protocol, port, portless, loopback_free,
					  rule_id);
	}
	/*
	 * Written out rather than a loop: clang 14 cannot unroll one whose body
	 * holds the judge's map lookups, and two is all a form embeds.
	 */
	_Static_assert(PURPLE_MAX_EMBEDDED == 2, "one judged slot per embedded address");
	if (e.n > 0 && purple_judge_v4_as(e.v4[0], protocol, port, portless, loopback_free,
					  rule_id) != PURPLE_ALLOW) {
		*form = e.form[0];
		return PURPLE_DENY;
	}
	if (e.n > 1 && purple_judge_v4_as(e.v4[1], protocol, port, portless, loopback_free,
					  rule_id) != PURPLE_ALLOW) {
		*form = e.form[1];
		return PURPLE_DENY;
	}
	__builtin_memcpy(key.addr, daddr, 16);
	return purple_judge(bpf_map_lookup_elem(&rules_v6, &key), protocol, port, portless,
			    rule_id);
}

#endif
