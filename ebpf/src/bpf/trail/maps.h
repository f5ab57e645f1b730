/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The trail's maps, one set per host (the loader pins them under
 * /sys/fs/bpf/purple/_trail-<object hash>/). A container is traced while
 * its cgroup id is a key of trail_cgroups; its records go to its own ring,
 * the value of trail_rings under the same key, which only its supervisor
 * reads.
 */
#ifndef PURPLE_TRAIL_MAPS_H
#define PURPLE_TRAIL_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "abi.h"

#ifndef PURPLE_TRAIL_RING_BYTES
#error "build.rs passes -DPURPLE_TRAIL_RING_BYTES"
#endif
#ifndef PURPLE_TRAIL_CONTAINERS
#error "build.rs passes -DPURPLE_TRAIL_CONTAINERS"
#endif

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PURPLE_TRAIL_CONTAINERS);
	__type(key, __u64);
	__type(value, struct purple_trail_cgroup);
} trail_cgroups SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, PURPLE_TRAIL_CONTAINERS);
	__type(key, __u64);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_RINGBUF);
		__uint(max_entries, PURPLE_TRAIL_RING_BYTES);
	});
} trail_rings SEC(".maps");

/* How deep below the cgroup2 root a container's directory may sit. */
#define PURPLE_TRAIL_MAX_DEPTH 16

/*
 * The traced container the current task belongs to, nested cgroups inside
 * it included: the shallowest ancestor whose id is a key of trail_cgroups.
 * Tasks of no traced container cost at most one lookup per level.
 */
static __always_inline struct purple_trail_cgroup *purple_trail_container(__u64 *id)
{
	struct purple_trail_cgroup *c;
	__u64 a;
	int level;

	for (level = 1; level <= PURPLE_TRAIL_MAX_DEPTH; level++) {
		a = bpf_get_current_ancestor_cgroup_id(level);
		if (!a)
			return 0;
		c = bpf_map_lookup_elem(&trail_cgroups, &a);
		if (c) {
			*id = a;
			return c;
		}
	}
	return 0;
}

#endif
