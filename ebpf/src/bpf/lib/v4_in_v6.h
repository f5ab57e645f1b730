/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * IPv6 addresses that carry an IPv4 address. Each form is named so that a
 * decision can say which one it judged: an IPv4 rule (a blocked address,
 * cloud metadata) must hold whatever IPv6 spelling the agent picks.
 *
 *   ::ffff:a.b.c.d        v4-mapped: the socket sends IPv4 itself
 *   ::a.b.c.d             IPv4-compatible (deprecated, still routable)
 *   64:ff9b::a.b.c.d      NAT64 well-known prefix (RFC 6052, /96)
 *   64:ff9b:1::/48        NAT64 local-use prefix (RFC 8215); operators pick
 *                         the prefix length inside it, so both the /96
 *                         position (last 32 bits) and the /48 position of
 *                         RFC 6052 (bits 48..63 and 72..87) are judged
 *   2002:AABB:CCDD::/48   6to4: a.b.c.d in bits 16..47
 *   2001:0:S:S::/32       Teredo: server S in bits 32..63, client in the
 *                         last 32 bits, inverted (RFC 4380)
 */
#ifndef PURPLE_V4_IN_V6_H
#define PURPLE_V4_IN_V6_H

#include "common.h"

/* Which form an IPv6 destination had (event.flags & PURPLE_FLAG_FORM). */
#define PURPLE_FORM_NONE 0
#define PURPLE_FORM_V4_MAPPED 1
#define PURPLE_FORM_V4_COMPAT 2
#define PURPLE_FORM_NAT64 3
#define PURPLE_FORM_NAT64_LOCAL_96 4
#define PURPLE_FORM_NAT64_LOCAL_48 5
#define PURPLE_FORM_6TO4 6
#define PURPLE_FORM_TEREDO_SERVER 7
#define PURPLE_FORM_TEREDO_CLIENT 8

/* At most this many IPv4 addresses hide in one IPv6 address. */
#define PURPLE_MAX_EMBEDDED 2

struct purple_embedded {
	__u32 v4[PURPLE_MAX_EMBEDDED]; /* network byte order */
	__u8 form[PURPLE_MAX_EMBEDDED];
	__u8 n;
};

static __always_inline void purple_embed(struct purple_embedded *e, __u32 v4_be, __u8 form)
{
	if (e->n < PURPLE_MAX_EMBEDDED) {
		e->v4[e->n] = v4_be;
		e->form[e->n] = form;
		e->n++;
	}
}

/* Fills `e` with the IPv4 addresses `a` (network byte order) carries; ::
 * and ::1 carry none (unspecified and loopback are IPv6's own). */
static __always_inline void purple_embedded_v4(const __u32 a[4], struct purple_embedded *e)
{
	__u32 w0 = bpf_ntohl(a[0]), w1 = bpf_ntohl(a[1]), w2 = bpf_ntohl(a[2]);

	e->n = 0;
	if (purple_is_v4_mapped(a)) {
		purple_embed(e, a[3], PURPLE_FORM_V4_MAPPED);
	} else if (w0 == 0 && w1 == 0 && w2 == 0) {
		if (bpf_ntohl(a[3]) > 1)
			purple_embed(e, a[3], PURPLE_FORM_V4_COMPAT);
	} else if (w0 == 0x0064ff9b && w1 == 0 && w2 == 0) {
		purple_embed(e, a[3], PURPLE_FORM_NAT64);
	} else if (w0 == 0x0064ff9b && (w1 >> 16) == 0x0001) {
		purple_embed(e, a[3], PURPLE_FORM_NAT64_LOCAL_96);
		/* RFC 6052 /48: v4 octets 1-2 in bits 48..63, octets 3-4 in 72..87. */
		purple_embed(e, bpf_htonl(((w1 & 0xffff) << 16) | ((w2 >> 8) & 0xffff)),
			     PURPLE_FORM_NAT64_LOCAL_48);
	} else if ((w0 >> 16) == 0x2002) {
		purple_embed(e, bpf_htonl((w0 << 16) | (w1 >> 16)), PURPLE_FORM_6TO4);
	} else if (w0 == 0x20010000) {
		purple_embed(e, a[1], PURPLE_FORM_TEREDO_SERVER);
		purple_embed(e, ~a[3], PURPLE_FORM_TEREDO_CLIENT);
	}
}

#endif
