/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Maps, keys and the event layout shared by Purple's egress hooks, declared
 * once. The Rust side (ebpf/src/maps.rs, ebpf/src/events.rs) mirrors these
 * structs with #[repr(C)] types; a unit test checks the sizes match.
 */
#ifndef PURPLE_H
#define PURPLE_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "v4_in_v6.h"

#define PURPLE_MAX_RULES 65536
#define PURPLE_MAX_PORT_RANGES 8

#define PURPLE_ALLOW 0
#define PURPLE_DENY 1

#define PURPLE_MODE_DENY_LIST 0
#define PURPLE_MODE_ALLOW_LIST 1

#define PURPLE_PROTO_ANY 0

/* Which hook decided (event.hook). */
#define PURPLE_HOOK_CONNECT4 1
#define PURPLE_HOOK_CONNECT6 2
#define PURPLE_HOOK_SENDMSG4 3
#define PURPLE_HOOK_SENDMSG6 4
#define PURPLE_HOOK_SKB_EGRESS 5

/* DNS (53) is sent to Purple's resolver when config.dns_port is set; DNS over
 * TLS/QUIC (853) is refused then. */
#define PURPLE_DNS_PORT 53
#define PURPLE_DOT_PORT 853

/* Rule id 0 is "no rule matched: the mode's default decided". */
#define PURPLE_RULE_DEFAULT 0
/* DNS to a server other than Purple's resolver (ids 1..MAX_RULES are rules). */
#define PURPLE_RULE_DNS (PURPLE_MAX_RULES + 1)
/* Loopback in the container's own network namespace: allowed, and named apart
 * so that an allowed record never credits the mode's default. Also Purple's
 * resolver on 127.0.0.1 when loopback is judged. */
#define PURPLE_RULE_LOOPBACK (PURPLE_MAX_RULES + 2)

struct purple_key_v4 {
	__u32 prefixlen;
	__u8 addr[4];
};

struct purple_key_v6 {
	__u32 prefixlen;
	__u8 addr[16];
};

struct purple_port_range {
	__u16 first;
	__u16 last;
};

struct purple_rule {
	__u32 id;
	__u8 action;
	__u8 protocol; /* IPPROTO_TCP, IPPROTO_UDP or PURPLE_PROTO_ANY */
	__u8 nports;   /* 0: every port */
	__u8 pad;
	struct purple_port_range ports[PURPLE_MAX_PORT_RANGES];
};

struct purple_config {
	__u8 mode;
	__u8 record_allowed; /* 1: allowed connect/sendmsg decisions emit events too */
	__u16 dns_port; /* network byte order; 0: no resolver, DNS judged like any traffic */
	__u8 judge_loopback; /* 1: the namespace's loopback is not the container's own */
	__u8 pad[3];
};

/* Where a redirected DNS socket meant to go, by socket cookie: replies are
 * made to look as if they came from there (resolvers check the source). */
struct purple_dns_orig {
	__u32 addr[4]; /* IPv4 in addr[0] */
	__u16 port;    /* network byte order */
	__u8 family;
	__u8 pad;
	__u32 pid;     /* who redirected the socket, for the resolver's records */
	char comm[16];
};

/* The asker of a DNS query the resolver received, by the source port of the
 * query's packet: written by the skb hook as the packet leaves, so that the
 * resolver names the asker with one lookup, whatever the sandbox holds. */
struct purple_asker_key {
	__u16 port;    /* source port, host byte order */
	__u8 protocol; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad;
};

struct purple_asker {
	__u32 pid;
	char comm[16];
};

struct purple_event {
	__u64 ts_ns;
	__u64 cgroup_id;
	__u32 pid;      /* 0 from the skb hook, which has no task context */
	__u32 rule_id;
	__u8 hook;
	__u8 family;    /* AF_INET or AF_INET6 */
	__u8 protocol;
	__u8 action;
	__u16 dport;    /* host byte order; 0 with PURPLE_FLAG_PORTLESS */
	__u16 flags;    /* PURPLE_FLAG_* */
	__u8 daddr[16]; /* IPv4 in the first 4 bytes */
	char comm[16];
};

/* event.flags: the IPv4-in-IPv6 form judged (PURPLE_FORM_*), and whether
 * the packet had no port (not TCP or UDP, or a header that was not read). */
#define PURPLE_FLAG_FORM 0x0f
#define PURPLE_FLAG_PORTLESS 0x10

/* Counters, index by purpose. */
#define PURPLE_STAT_EVENTS_LOST 0
#define PURPLE_STAT_DENIED 1
#define PURPLE_STAT_ALLOWED 2
#define PURPLE_STAT_DNS_REDIRECTED 3
#define PURPLE_STAT_PORTLESS_DENIED 4
#define PURPLE_STATS 5

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, PURPLE_MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct purple_key_v4);
	__type(value, struct purple_rule);
} rules_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, PURPLE_MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct purple_key_v6);
	__type(value, struct purple_rule);
} rules_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct purple_config);
} config SEC(".maps");

/* Hits per rule id (index 0: the default decision, then the rules,
 * PURPLE_RULE_DNS and PURPLE_RULE_LOOPBACK). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PURPLE_MAX_RULES + 3);
	__type(key, __u32);
	__type(value, __u64);
} rule_hits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PURPLE_STATS);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct purple_dns_orig);
} dns_orig SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct purple_asker_key);
	__type(value, struct purple_asker);
} dns_askers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

static __always_inline void purple_count(void *map, __u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(map, &idx);

	if (v)
		__sync_fetch_and_add(v, 1);
}

static __always_inline const struct purple_config *purple_config(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&config, &zero);
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
 * mode's default does. Returns PURPLE_ALLOW or PURPLE_DENY, sets *rule_id.
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

static __always_inline int purple_is_loopback4(__u32 daddr_be)
{
	return (bpf_ntohl(daddr_be) >> 24) == 127;
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

static __always_inline int purple_is_loopback6(const __u32 daddr[4])
{
	return daddr[0] == 0 && daddr[1] == 0 && daddr[2] == 0 && daddr[3] == bpf_htonl(1);
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

/* What a decision was about, for its event. */
struct purple_dest {
	const void *daddr;
	__u16 port;
	__u8 family;
	__u8 protocol;
	__u16 flags; /* PURPLE_FLAG_* */
};

/*
 * Counts the decision and emits an event for it (or counts it lost): always
 * for denials, for allowed calls only when config.record_allowed is set.
 */
static __always_inline void purple_record(int verdict, __u32 rule_id, __u8 hook,
					  const struct purple_dest *d, int with_task)
{
	const struct purple_config *cfg;
	struct purple_event *e;

	if (rule_id <= PURPLE_RULE_LOOPBACK)
		purple_count(&rule_hits, rule_id);
	if (verdict == PURPLE_ALLOW) {
		purple_count(&stats, PURPLE_STAT_ALLOWED);
		/* Checked before reserving: unasked, an allowed call costs one
		 * array lookup and no ring-buffer space. */
		cfg = purple_config();
		if (!cfg || !cfg->record_allowed)
			return;
	} else {
		purple_count(&stats, PURPLE_STAT_DENIED);
		if (d->flags & PURPLE_FLAG_PORTLESS)
			purple_count(&stats, PURPLE_STAT_PORTLESS_DENIED);
	}
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		purple_count(&stats, PURPLE_STAT_EVENTS_LOST);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = bpf_ktime_get_ns();
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->rule_id = rule_id;
	e->hook = hook;
	e->family = d->family;
	e->protocol = d->protocol;
	e->action = verdict;
	e->dport = d->port;
	e->flags = d->flags;
	__builtin_memcpy(e->daddr, d->daddr, d->family == 2 ? 4 : 16);
	if (with_task) {
		e->pid = bpf_get_current_pid_tgid() >> 32;
		bpf_get_current_comm(e->comm, sizeof(e->comm));
	}
	bpf_ringbuf_submit(e, 0);
}

/*
 * With a resolver configured, every DNS destination (any address, port 53,
 * TCP or UDP) is rewritten to the resolver on 127.0.0.1 in the container's
 * own network namespace, and the original destination is kept per socket for
 * the recvmsg hooks. Returns 1 when the call was redirected.
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
	__builtin_memcpy(o.addr, orig, family == 2 ? 4 : 16);
	bpf_map_update_elem(&dns_orig, &cookie, &o, BPF_ANY);
	if (family == 2) {
		ctx->user_ip4 = bpf_htonl(0x7f000001);
	} else {
		/* ::ffff:127.0.0.1: dual-stack sockets reach the IPv4 resolver. */
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0x0000ffff);
		ctx->user_ip6[3] = bpf_htonl(0x7f000001);
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

/* Sockets that are neither TCP nor UDP (ping sockets) have no port to judge. */
static __always_inline int purple_portless(__u8 protocol)
{
	return protocol != IPPROTO_TCP && protocol != IPPROTO_UDP;
}

/* The socket-address hooks (connect, sendmsg) differ only in which hook they
 * report; the destination is the user's address in both. */
static __always_inline int purple_sock_addr4(struct bpf_sock_addr *ctx, __u8 hook)
{
	__u32 rule_id;
	__u32 daddr[4] = { ctx->user_ip4 };
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	/* Read before any branch: the verifier refuses ctx loads through a
	 * pointer the compiler offset and shared between paths. */
	__u8 protocol = ctx->protocol;
	int portless = purple_portless(protocol);
	struct purple_dest d = { .daddr = daddr, .family = 2, .protocol = protocol };
	int v;

	if (purple_dns_redirect(ctx, port, 2, daddr))
		return 1;
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
	return v == PURPLE_ALLOW;
}

static __always_inline int purple_sock_addr6(struct bpf_sock_addr *ctx, __u8 hook)
{
	__u32 rule_id;
	__u32 daddr[4] = { ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3] };
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	int loopback = purple_is_loopback6(daddr) ||
		       (daddr[0] == 0 && daddr[1] == 0 && daddr[2] == bpf_htonl(0x0000ffff) &&
			purple_is_loopback4(daddr[3]));
	__u8 protocol = ctx->protocol; /* before any branch, as above */
	int portless = purple_portless(protocol);
	struct purple_dest d = { .daddr = daddr, .family = 10, .protocol = protocol };
	__u8 form = PURPLE_FORM_NONE;
	int v;

	if (purple_dns_redirect(ctx, port, 10, daddr))
		return 1;
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
	return v == PURPLE_ALLOW;
}

#endif
