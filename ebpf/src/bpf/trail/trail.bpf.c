/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The activity trail's object, loaded once per host (ebpf/src/trail.rs):
 * tracing programs, not attached to a cgroup, that find the traced
 * container of the current task by its cgroup ancestry.
 */
#include "exec.h"
#include "syscalls.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";
