/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* A decision's trace: its counters and its event on the ring buffer. */
#ifndef PURPLE_EVENTS_H
#define PURPLE_EVENTS_H

#include "maps.h"

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
	__builtin_memcpy(e->daddr, d->daddr, d->family == PURPLE_AF_INET ? 4 : 16);
	if (with_task) {
		e->pid = bpf_get_current_pid_tgid() >> 32;
		bpf_get_current_comm(e->comm, sizeof(e->comm));
	}
	bpf_ringbuf_submit(e, 0);
}

#endif
