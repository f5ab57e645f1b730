/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Egress backstop for packets that never pass connect/sendmsg: raw and packet
 * sockets (ICMP, hand-made TCP/UDP). Every packet the container sends is judged
 * by destination, protocol and port with the same rules; a denied packet is
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

struct purple_ports {
	__u16 source;
	__u16 dest;
};

/* A connected TCP socket's packets: its connect(2) passed the connect hooks. */
static __always_inline int purple_tcp_connected(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;

	if (!sk)
		return 0;
	sk = bpf_sk_fullsock(sk);
	return sk && sk->type == 1 /* SOCK_STREAM */ && sk->protocol == IPPROTO_TCP &&
	       sk->state != BPF_TCP_SYN_SENT && sk->state != BPF_TCP_CLOSE;
}

/* With a resolver forced, hand-made DNS to anything but loopback is dropped
 * (connect/sendmsg already redirected the sockets that asked the usual way). */
static __always_inline int purple_dns_leak(__u8 protocol, __u16 port, int loopback, __u32 *rule_id)
{
	const struct purple_config *cfg = purple_config();

	if (!cfg || !cfg->dns_port || loopback ||
	    (protocol != IPPROTO_TCP && protocol != IPPROTO_UDP) ||
	    (port != PURPLE_DNS_PORT && port != PURPLE_DOT_PORT))
		return 0;
	*rule_id = PURPLE_RULE_DNS;
	return 1;
}

SEC("cgroup_skb/egress")
int purple_skb_egress(struct __sk_buff *skb)
{
	__u32 rule_id;
	__u16 port = 0;
	__u8 protocol;
	int v;

	if (purple_tcp_connected(skb))
		return 1;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;
		struct purple_ports ports;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) < 0)
			return 0; /* a packet we cannot read is not let out */
		protocol = ip.protocol;
		if ((protocol == IPPROTO_TCP || protocol == IPPROTO_UDP) &&
		    bpf_skb_load_bytes(skb, ip.ihl * 4, &ports, sizeof(ports)) == 0)
			port = bpf_ntohs(ports.dest);
		if (purple_dns_leak(protocol, port, purple_is_loopback4(ip.daddr), &rule_id))
			v = PURPLE_DENY;
		else
			v = purple_judge_v4(ip.daddr, protocol, port, &rule_id);
		if (v != PURPLE_ALLOW)
			purple_record(v, rule_id, PURPLE_HOOK_SKB_EGRESS, 2, protocol, port,
				      &ip.daddr, 0);
		return v == PURPLE_ALLOW;
	}
	if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		struct purple_ports ports;
		__u32 daddr[4];

		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) < 0)
			return 0;
		protocol = ip6.nexthdr;
		/* Extension headers are not walked: their next protocol is judged as
		 * "any" with no port, so port-scoped allows do not open them. */
		if ((protocol == IPPROTO_TCP || protocol == IPPROTO_UDP) &&
		    bpf_skb_load_bytes(skb, sizeof(ip6), &ports, sizeof(ports)) == 0)
			port = bpf_ntohs(ports.dest);
		__builtin_memcpy(daddr, &ip6.daddr, 16);
		if (purple_dns_leak(protocol, port,
				    daddr[0] == 0 && daddr[1] == 0 && daddr[2] == 0 &&
					    daddr[3] == bpf_htonl(1),
				    &rule_id))
			v = PURPLE_DENY;
		else
			v = purple_judge_v6(daddr, protocol, port, &rule_id);
		if (v != PURPLE_ALLOW)
			purple_record(v, rule_id, PURPLE_HOOK_SKB_EGRESS, 10, protocol, port,
				      daddr, 0);
		return v == PURPLE_ALLOW;
	}
	return 1; /* ARP and other non-IP frames */
}
