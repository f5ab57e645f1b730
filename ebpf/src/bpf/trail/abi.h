/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The activity trail's layouts, shared with user space (ebpf/src/trail.rs
 * mirrors them; a test checks the sizes). The trail's programs are loaded
 * once per host; what belongs to one container is found by its cgroup id.
 */
#ifndef PURPLE_TRAIL_ABI_H
#define PURPLE_TRAIL_ABI_H

#include <linux/types.h>

/* Bytes of argv and of the file name an exec record carries. */
#define PURPLE_TRAIL_ARGS 1024
#define PURPLE_TRAIL_FILENAME 256

/* exec record flags */
#define PURPLE_TRAIL_ARGS_CUT 0x1
#define PURPLE_TRAIL_FILENAME_CUT 0x2
#define PURPLE_TRAIL_ARGS_UNREAD 0x4

/* Record kinds on a container's trail ring. */
#define PURPLE_TRAIL_EXEC 1

/* What the trail does for one container (trail_cgroups, by cgroup id), and
 * its accounting: every exec the program saw, and those whose record did
 * not fit the ring. */
struct purple_trail_cgroup {
	__u32 flags; /* PURPLE_TRAIL_ON_* */
	__u32 pad;
	__u64 execs;
	__u64 lost;
};

#define PURPLE_TRAIL_ON_EXEC 0x1

struct purple_exec_event {
	__u64 ts_ns;
	__u64 cgroup_id; /* the container's cgroup, not the nested one */
	__u64 exec_id;   /* 0, 1, 2, ... per container */
	__u32 kind;      /* PURPLE_TRAIL_EXEC */
	__u32 pid;       /* host tgid */
	__u32 ppid;      /* host tgid of the parent */
	__u32 uid;       /* host uid after exec (setuid applied) */
	__u32 gid;
	__u16 args_len;  /* bytes of args used, NULs between arguments */
	__u16 flags;     /* PURPLE_TRAIL_*_CUT */
	char comm[16];
	char filename[PURPLE_TRAIL_FILENAME];
	char args[PURPLE_TRAIL_ARGS];
};

#endif
