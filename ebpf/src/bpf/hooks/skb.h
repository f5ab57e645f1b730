/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Egress backstop for packets that never pass connect/sendmsg: raw and packet
 * sockets (ICMP, hand-made TCP/UDP). Every packet the container sends is judged
 * by destination, protocol and port with the same rules (port-less packets
 * by the port-less rule of purple_ports_match); a denied packet is
 * dropped. Packets of TCP sockets past SYN_SENT are let through: their
 * connect(2) was judged, and an allow that expires later (a learned DNS
 * answer) must not cut an established connection. No ingress program: with egress covered, nothing denied can be asked
 * for, and replies to allowed connections must come in. Only denied packets
 * emit events: an allowed one belongs to a connect or sendmsg that was judged
 * (and recorded, when the policy asks) once, and one event per packet would
 * flood the ring buffer.
 */

#include <linux/ip.h>
#include <linux/ipv6.h>

#include "../lib/dns.h"
#include "../lib/events.h"
#include "../lib/judge.h"

/* A connected TCP socket's packets: its connect(2) passed the connect hooks. */
static __always_inline int purple_tcp_connected(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;

	if (!sk)
		return 0;
	sk = bpf_sk_fullsock(sk);
	return sk && sk->type == PURPLE_SOCK_STREAM && sk->protocol == IPPROTO_TCP &&
	       sk->state != BPF_TCP_SYN_SENT && sk->state != BPF_TCP_CLOSE;
}

SEC("cgroup_skb/egress")
int purple_skb_egress(struct __sk_buff *skb)
{
	struct purple_ports ports;
	__u32 rule_id;
	__u16 port = 0;
	__u8 protocol;
	int portless;
	int v;

	/* The common case first; a DNS query's SYN is still SYN_SENT and goes on
	 * to be noted below. */
	if (purple_tcp_connected(skb))
		return PURPLE_RET_PASS;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;
		struct purple_dest d = { .family = PURPLE_AF_INET };

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) < 0)
			return PURPLE_RET_REFUSE; /* a packet we cannot read is not let out */
		protocol = ip.protocol;
		/* A fragment past the first carries payload where ports would be. */
		portless = purple_portless(protocol) || (ip.frag_off & bpf_htons(0x1fff)) ||
			   bpf_skb_load_bytes(skb, ip.ihl * 4, &ports, sizeof(ports)) < 0;
		if (!portless) {
			port = bpf_ntohs(ports.dest);
			if (ip.daddr == bpf_htonl(PURPLE_RESOLVER_ADDR4))
				purple_note_asker(skb, protocol, &ports);
		}
		if (purple_dns_leak(protocol, port, purple_is_loopback4(ip.daddr), &rule_id))
			v = PURPLE_DENY;
		else
			v = purple_judge_v4(ip.daddr, protocol, port, portless, &rule_id);
		if (v != PURPLE_ALLOW) {
			d.daddr = &ip.daddr;
			d.port = port;
			d.protocol = protocol;
			d.flags = portless ? PURPLE_FLAG_PORTLESS : 0;
			purple_record(v, rule_id, PURPLE_HOOK_SKB_EGRESS, &d, 0);
		}
		return purple_ret(v);
	}
	if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		struct purple_dest d = { .family = PURPLE_AF_INET6 };
		__u32 daddr[4];
		__u8 form;

		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) < 0)
			return PURPLE_RET_REFUSE;
		protocol = ip6.nexthdr;
		/* Extension headers are not walked: the packet is judged port-less
		 * under its first next-header value. */
		portless = purple_portless(protocol) ||
			   bpf_skb_load_bytes(skb, sizeof(ip6), &ports, sizeof(ports)) < 0;
		if (!portless)
			port = bpf_ntohs(ports.dest);
		__builtin_memcpy(daddr, &ip6.daddr, 16);
		form = PURPLE_FORM_NONE;
		if (purple_dns_leak(protocol, port, purple_is_loopback6(daddr), &rule_id))
			v = PURPLE_DENY;
		else
			v = purple_judge_v6(daddr, protocol, port, portless, &rule_id, &form);
		if (v != PURPLE_ALLOW) {
			d.daddr = daddr;
			d.port = port;
			d.protocol = protocol;
			d.flags = (portless ? PURPLE_FLAG_PORTLESS : 0) | form;
			purple_record(v, rule_id, PURPLE_HOOK_SKB_EGRESS, &d, 0);
		}
		return purple_ret(v);
	}
	return PURPLE_RET_PASS; /* ARP and other non-IP frames */
}
