/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Per-container syscall counts (ebpf_monitoring.trace_syscalls), counted in
 * the kernel: every syscall that got past seccomp increments one slot of
 * the container's own per-CPU array, the value of trail_syscalls under its
 * cgroup id. No record per call; the supervisor sums the array at exit.
 *
 * The program runs on every syscall of the host while it is attached, so
 * user space attaches it only while some container counts (link_syscall in
 * the host directory) and the work for a task of no counting container is
 * one helper call per cgroup level and a lookup in a map that holds only
 * counting containers.
 */
#ifndef PURPLE_TRAIL_SYSCALLS_H
#define PURPLE_TRAIL_SYSCALLS_H

#include "maps.h"

#ifndef PURPLE_TRAIL_SYSCALL_NRS
#error "build.rs passes -DPURPLE_TRAIL_SYSCALL_NRS"
#endif

/* Slots 0..NRS-1: native numbers; NRS..2*NRS-1: the 32-bit entry point's
 * (a different table: i386 20 is getpid, x86_64 20 is writev). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, PURPLE_TRAIL_CONTAINERS);
	__type(key, __u64);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
		__uint(max_entries, 2 * PURPLE_TRAIL_SYSCALL_NRS);
		__type(key, __u32);
		__type(value, __u64);
	});
} trail_syscalls SEC(".maps");

#ifdef PURPLE_TRAIL_X86_COMPAT
/* The kernel's fields, relocated against its BTF (the suffix keeps these
 * apart from exec.h's task_struct; CO-RE ignores it). */
struct thread_info___purple {
	__u32 status;
} __attribute__((preserve_access_index));

struct task_struct___purple {
	struct thread_info___purple thread_info;
} __attribute__((preserve_access_index));

/* arch/x86/include/asm/thread_info.h: a 32-bit syscall is running. */
#define PURPLE_TS_COMPAT 0x0002
#endif

SEC("tp_btf/sys_enter")
int purple_trail_syscall(unsigned long long *ctx)
{
	long nr = (long)ctx[1];
	void *counts = 0;
	__u32 slot;
	__u64 a, *n;
	int level;

	/* The shallowest counting ancestor: nested cgroups count as theirs. */
	for (level = 1; level <= PURPLE_TRAIL_MAX_DEPTH; level++) {
		a = bpf_get_current_ancestor_cgroup_id(level);
		if (!a)
			return 0;
		counts = bpf_map_lookup_elem(&trail_syscalls, &a);
		if (counts)
			break;
	}
	/* Beyond the table (x32's flagged numbers, made-up ones: ENOSYS). */
	if (!counts || nr < 0 || nr >= PURPLE_TRAIL_SYSCALL_NRS)
		return 0;
	slot = nr;
#ifdef PURPLE_TRAIL_X86_COMPAT
	struct task_struct___purple *t = (void *)bpf_get_current_task_btf();
	if (t->thread_info.status & PURPLE_TS_COMPAT)
		slot += PURPLE_TRAIL_SYSCALL_NRS;
#endif
	n = bpf_map_lookup_elem(counts, &slot);
	/* Per CPU, and the kernel runs a program once per CPU at a time: a
	 * plain add, no atomic and no cache line shared between CPUs. */
	if (n)
		*n += 1;
	return 0;
}

#endif
