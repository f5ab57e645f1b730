/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The maps, declared once for every hook (the loader pins them by these
 * names: ebpf/src/programs.rs), and the two lookups every hook makes.
 */
#ifndef PURPLE_MAPS_H
#define PURPLE_MAPS_H

#include "abi.h"

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

/*
 * A ring buffer has no key or value, so nothing else would put the event's
 * layout into the object's BTF. `sample` is that anchor: aya skips map
 * fields it does not know (the kernel gets the same ring buffer), and the
 * layout test in ebpf/src/maps.rs reads struct purple_event from it.
 */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
	__type(sample, struct purple_event);
} events SEC(".maps");

static __always_inline void purple_count(void *map, __u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(map, &idx);

	if (v)
		__sync_fetch_and_add(v, 1);
}

/* NULL: the loader never finished; the judge then denies (fails closed). */
static __always_inline const struct purple_config *purple_config(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&config, &zero);
}

#endif
