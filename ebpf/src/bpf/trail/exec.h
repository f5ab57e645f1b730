/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * process.exec: every program a traced container starts, recorded at
 * sched_process_exec (the new image is in place, so argv is the new
 * program's and the ids are those after setuid).
 */
#ifndef PURPLE_TRAIL_EXEC_H
#define PURPLE_TRAIL_EXEC_H

#include <bpf/bpf_core_read.h>

#include "maps.h"

/* The kernel fields read, relocated against the running kernel's BTF. */
struct mm_struct {
	unsigned long arg_start;
	unsigned long arg_end;
} __attribute__((preserve_access_index));

struct task_struct {
	int tgid;
	struct task_struct *real_parent;
	struct mm_struct *mm;
} __attribute__((preserve_access_index));

struct linux_binprm {
	const char *filename;
} __attribute__((preserve_access_index));

SEC("tp_btf/sched_process_exec")
int purple_trail_exec(unsigned long long *ctx)
{
	struct task_struct *task = (struct task_struct *)ctx[0];
	struct linux_binprm *bprm = (struct linux_binprm *)ctx[2];
	struct purple_trail_cgroup *c;
	struct purple_exec_event *e;
	unsigned long start, end, len;
	__u64 id = 0, uid_gid;
	void *ring;
	long n;

	c = purple_trail_container(&id);
	if (!c || !(c->flags & PURPLE_TRAIL_ON_EXEC))
		return 0;
	/* The exec id is the count before this one: records + lost = execs. */
	__u64 exec_id = __sync_fetch_and_add(&c->execs, 1);
	ring = bpf_map_lookup_elem(&trail_rings, &id);
	e = ring ? bpf_ringbuf_reserve(ring, sizeof(*e), 0) : 0;
	if (!e) {
		__sync_fetch_and_add(&c->lost, 1);
		return 0;
	}
	e->ts_ns = bpf_ktime_get_ns();
	e->cgroup_id = id;
	e->exec_id = exec_id;
	e->kind = PURPLE_TRAIL_EXEC;
	e->pid = BPF_CORE_READ(task, tgid);
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	uid_gid = bpf_get_current_uid_gid();
	e->uid = (__u32)uid_gid;
	e->gid = uid_gid >> 32;
	e->flags = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	n = bpf_probe_read_kernel_str(e->filename, sizeof(e->filename),
				      BPF_CORE_READ(bprm, filename));
	if (n < 0)
		e->filename[0] = 0;
	else if (n == sizeof(e->filename))
		e->flags |= PURPLE_TRAIL_FILENAME_CUT;
	start = BPF_CORE_READ(task, mm, arg_start);
	end = BPF_CORE_READ(task, mm, arg_end);
	len = end > start ? end - start : 0;
	if (len > PURPLE_TRAIL_ARGS) {
		len = PURPLE_TRAIL_ARGS;
		e->flags |= PURPLE_TRAIL_ARGS_CUT;
	}
	if (len && bpf_probe_read_user(e->args, len, (const void *)start) < 0) {
		len = 0;
		e->flags |= PURPLE_TRAIL_ARGS_UNREAD;
	}
	e->args_len = len;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

#endif
