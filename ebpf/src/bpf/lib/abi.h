/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The layouts and numbers user space shares with the programs: map keys and
 * values, the event, rule ids, counters. The Rust mirrors are in
 * ebpf/src/maps.rs and ebpf/src/events.rs; a unit test there checks each
 * field's offset and size against this object's BTF.
 */
#ifndef PURPLE_ABI_H
#define PURPLE_ABI_H

#include "common.h"

/* The kernel's sizes have one home, purple_policy::limits; ebpf/build.rs
 * passes them to clang. */
#if !defined(PURPLE_MAX_RULES) || !defined(PURPLE_MAX_PORT_RANGES)
#error "PURPLE_MAX_RULES and PURPLE_MAX_PORT_RANGES come from purple_policy::limits via ebpf/build.rs"
#endif

/* A rule's action and a decision's verdict (rule.action, event.action). */
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
 * made to look as if they came from there (resolvers check the source).
 * Kernel-only (no Rust mirror): written by connect/sendmsg, read by recvmsg
 * and the skb hook. */
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

/* event.flags: the IPv4-in-IPv6 form judged (PURPLE_FORM_* of v4_in_v6.h),
 * and whether the packet had no port (not TCP or UDP, or a header that was
 * not read). */
#define PURPLE_FLAG_FORM 0x0f
#define PURPLE_FLAG_PORTLESS 0x10

/* Counters, index by purpose. */
#define PURPLE_STAT_EVENTS_LOST 0
#define PURPLE_STAT_DENIED 1
#define PURPLE_STAT_ALLOWED 2
#define PURPLE_STAT_DNS_REDIRECTED 3
#define PURPLE_STAT_PORTLESS_DENIED 4
#define PURPLE_STATS 5

#endif
