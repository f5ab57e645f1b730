/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The one object the loader embeds. Each hook lives in its own file; they are
 * compiled together so that they share one set of maps.
 */
#include "purple.h"
#include "connect.bpf.c"
#include "sendmsg.bpf.c"
#include "skb.bpf.c"
#include "recvmsg.bpf.c"

char LICENSE[] SEC("license") = "Dual BSD/GPL";
