/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Egress backstop for packets that never pass connect/sendmsg: raw and packet
 * sockets (ICMP, hand-made TCP/UDP). Every packet the container sends is judged
 * by destination, protocol and port with the same rules; a denied packet is
 * dropped. No ingress program: with egress covered, nothing denied can be asked
 * for, and replies to allowed connections must come in.
 */

#include <linux/ip.h>
#include <linux/ipv6.h>

struct purple_ports {
	__u16 source;
	__u16 dest;
};

SEC("cgroup_skb/egress")
int purple_skb_egress(struct __sk_buff *skb)
{
	__u32 rule_id;
	__u16 port = 0;
	__u8 protocol;
	int v;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;
		struct purple_ports ports;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) < 0)
			return 0; /* a packet we cannot read is not let out */
		protocol = ip.protocol;
		if ((protocol == IPPROTO_TCP || protocol == IPPROTO_UDP) &&
		    bpf_skb_load_bytes(skb, ip.ihl * 4, &ports, sizeof(ports)) == 0)
			port = bpf_ntohs(ports.dest);
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
		v = purple_judge_v6(daddr, protocol, port, &rule_id);
		if (v != PURPLE_ALLOW)
			purple_record(v, rule_id, PURPLE_HOOK_SKB_EGRESS, 10, protocol, port,
				      daddr, 0);
		return v == PURPLE_ALLOW;
	}
	return 1; /* ARP and other non-IP frames */
}
