/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * What every other header needs: the kernel's headers, the hooks' return
 * codes and the address tests that more than one hook makes.
 */
#ifndef PURPLE_COMMON_H
#define PURPLE_COMMON_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* What a cgroup hook returns to the kernel: the call or packet goes on, or
 * it is refused (EPERM at the system call, a dropped packet at egress). */
#define PURPLE_RET_REFUSE 0
#define PURPLE_RET_PASS 1

/* <sys/socket.h> values, which the BPF target has no libc header for. */
#define PURPLE_AF_INET 2
#define PURPLE_AF_INET6 10
#define PURPLE_SOCK_STREAM 1

/* Purple's resolver listens on 127.0.0.1 in the container's namespace
 * (host byte order). */
#define PURPLE_RESOLVER_ADDR4 0x7f000001

static __always_inline int purple_is_loopback4(__u32 daddr_be)
{
	return (bpf_ntohl(daddr_be) >> 24) == 127;
}

/* ::ffff:a.b.c.d, which a dual-stack socket sends as IPv4 a.b.c.d. */
static __always_inline int purple_is_v4_mapped(const __u32 a[4])
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0x0000ffff);
}

/* ::1, IPv6's own loopback. */
static __always_inline int purple_is_loopback6(const __u32 a[4])
{
	return a[0] == 0 && a[1] == 0 && a[2] == 0 && a[3] == bpf_htonl(1);
}

/* Any loopback an IPv6 socket can name: ::1 or a v4-mapped 127/8. */
static __always_inline int purple_is_any_loopback6(const __u32 a[4])
{
	return purple_is_loopback6(a) || (purple_is_v4_mapped(a) && purple_is_loopback4(a[3]));
}

/* ::ffff:127.0.0.1: the resolver as a dual-stack socket reaches it. */
static __always_inline int purple_is_resolver6(const __u32 a[4])
{
	return purple_is_v4_mapped(a) && a[3] == bpf_htonl(PURPLE_RESOLVER_ADDR4);
}

#endif
