/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The one object the loader embeds. Each hook lives in its own file
 * (hooks/), the helpers they share in lib/ (a map of the headers is in
 * docs/network.md); they are compiled together so that they share one set
 * of maps.
 */
#include "hooks/connect.h"
#include "hooks/sendmsg.h"
#include "hooks/skb.h"
#include "hooks/recvmsg.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";
