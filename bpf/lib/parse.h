/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Packet parsing through a cursor: every read checks ptr + size > data_end
 * first. Fills struct sp_pkt with the flow tuple (wire order) and the
 * offsets later stages rewrite at. Nothing here writes to the packet.
 */
#ifndef SP_LIB_PARSE_H
#define SP_LIB_PARSE_H

#include "common.h"
#include "stats.h"

#define IP_MF 0x2000
#define IP_OFFMASK 0x1fff

struct sp_pkt {
	struct sp_addr saddr;
	struct sp_addr daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;
	__u8 tcp_flags; /* TCP flag byte (FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10) */
	__u8 quiet; /* set by the uplink reject-only hook: do not count reasons twice */
	__u32 l3_off;
	__u32 l4_off;
	__u32 csum_off; /* offset of the TCP/UDP checksum field */
	__u32 len; /* whole packet */
	__u32 ip_len; /* IP total length (v4) / payload length + 40 (v6) */
	/*
	 * ICMP / ICMPv6 errors (icmp set): the tuple above (addresses,
	 * ports, proto, TCP/UDP) is the QUOTED packet's, so conntrack finds
	 * the flow the error is about; l4_off/csum_off are the ICMP header's
	 * and its checksum's; in_l3_off/in_l4_off locate the quoted headers
	 * (the error's own addresses are read from the packet when needed:
	 * this struct lives on the entry point's stack, which the pipeline's
	 * shares a 512-byte budget with).
	 */
	__u8 icmp;
	/* SP_FRAG_FIRST: the first fragment of a datagram (it has the
	 * ports); SP_FRAG_LATER: a later one (no L4 header: sport, dport,
	 * l4_off, csum_off are zero). frag_id: the datagram's IP id. */
	__u8 frag;
	/* Arrived on an uplink (sp_xdp, sp_tc_uplink): the client may be
	 * outside the cluster (lib/snat.h). */
	__u8 uplink;
	/* --dsr on XDP (lib/dsr.h): SP_PKT_DSR_FLOW, the packet's flow is a
	 * DSR flow; with SP_PKT_DSR_OPT, the pipeline DNATed it and returned
	 * SP_V_DSR, and sp_dsr_xdp inserts the option (the frontend it
	 * carries waits in the per-CPU scratch area: one more field here
	 * would take the call chain's stack past 512 bytes). */
	__u8 dsr;
	/* 16 bits: the quoted headers lie within SP_MAX_L4_OFF, and the
	 * four bytes saved pay for tcp_seq on the call chain's stack. */
	__u16 in_l3_off;
	__u16 in_l4_off;
	__be32 frag_id;
	__be32 tcp_seq; /* TCP: the sequence number */
};

#define SP_PKT_DSR_FLOW 1
#define SP_PKT_DSR_OPT 2

#define SP_FRAG_FIRST 1
#define SP_FRAG_LATER 2

static __always_inline void pkt_reason(const struct sp_pkt *p, enum sp_reason r)
{
	if (!p->quiet)
		reason_count(r, p->len);
}

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

/*
 * Parse the L4 header at off. Returns SP_CONTINUE, or SP_V_PASS after
 * counting SP_R_TRUNC_L4 (a cut header is never rewritten).
 */
static __always_inline int parse_l4(void *data, void *data_end, struct sp_pkt *p, __u32 off)
{
	if (off > SP_MAX_L4_OFF) {
		pkt_reason(p, SP_R_EXT_HDR_LIMIT); /* headers longer than we rewrite at */
		return SP_V_PASS;
	}
	p->l4_off = off;
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *th = data + off;

		if ((void *)(th + 1) > data_end) {
			pkt_reason(p, SP_R_TRUNC_L4);
			return SP_V_PASS;
		}
		p->sport = th->source;
		p->dport = th->dest;
		p->tcp_flags = ((__u8 *)th)[13];
		p->tcp_seq = th->seq;
		p->csum_off = off + offsetof(struct tcphdr, check);
		return SP_CONTINUE;
	}
	if (p->proto == IPPROTO_UDP) {
		struct udphdr *uh = data + off;

		if ((void *)(uh + 1) > data_end) {
			pkt_reason(p, SP_R_TRUNC_L4);
			return SP_V_PASS;
		}
		p->sport = uh->source;
		p->dport = uh->dest;
		p->csum_off = off + offsetof(struct udphdr, check);
		return SP_CONTINUE;
	}
	return SP_V_NOT_OURS;
}

/* ICMP types that quote the packet they are about (RFC 792, 4443). */
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12
#define ICMPV6_PKT_TOOBIG 2
#define ICMPV6_TIME_EXCEED 3
#define ICMPV6_PARAMPROB 4

/*
 * The quoted TCP/UDP ports of an ICMP error whose quoted IP header sits at
 * in_l3 and its L4 header at in_l4. Only 8 bytes of it need be there
 * (RFC 792). Returns SP_CONTINUE, or SP_V_NOT_OURS.
 */
static __always_inline int parse_quoted_l4(void *data, void *data_end, struct sp_pkt *p,
					   __u32 in_l4)
{
	__be16 *ports;

	if (in_l4 > SP_MAX_L4_OFF)
		return SP_V_NOT_OURS;
	ports = data + in_l4;
	if ((void *)(ports + 4) > data_end)
		return SP_V_NOT_OURS;
	p->sport = ports[0];
	p->dport = ports[1];
	p->in_l4_off = in_l4;
	p->icmp = 1;
	return SP_CONTINUE;
}

/* An ICMP error at off (IPv4): the quoted IPv4 header and ports. */
static __always_inline int parse_icmp4(void *data, void *data_end, struct sp_pkt *p, __u32 off)
{
	struct icmphdr *ih = data + off;
	struct iphdr *in;
	__u32 hlen;

	if (off > SP_MAX_L4_OFF || (void *)(ih + 1) > data_end)
		return SP_V_NOT_OURS;
	if (ih->type != ICMP_DEST_UNREACH && ih->type != ICMP_TIME_EXCEEDED &&
	    ih->type != ICMP_PARAMETERPROB)
		return SP_V_NOT_OURS;
	in = (void *)(ih + 1);
	if ((void *)(in + 1) > data_end || in->version != 4 || in->ihl < 5)
		return SP_V_NOT_OURS;
	if (in->protocol != IPPROTO_TCP && in->protocol != IPPROTO_UDP)
		return SP_V_NOT_OURS;
	hlen = in->ihl * 4;
	p->proto = in->protocol;
	p->saddr.addr[0] = in->saddr;
	p->daddr.addr[0] = in->daddr;
	p->l4_off = off;
	p->csum_off = off + offsetof(struct icmphdr, checksum);
	p->in_l3_off = off + sizeof(*ih);
	return parse_quoted_l4(data, data_end, p, off + sizeof(*ih) + hlen);
}

/* An ICMPv6 error at off: the quoted IPv6 header (with no extension
 * headers: errors about those pass untouched) and ports. */
static __always_inline int parse_icmp6(void *data, void *data_end, struct sp_pkt *p, __u32 off)
{
	struct icmp6hdr *ih = data + off;
	struct ipv6hdr *in;

	if (off > SP_MAX_L4_OFF || (void *)(ih + 1) > data_end)
		return SP_V_NOT_OURS;
	if (ih->icmp6_type != ICMPV6_DEST_UNREACH && ih->icmp6_type != ICMPV6_PKT_TOOBIG &&
	    ih->icmp6_type != ICMPV6_TIME_EXCEED && ih->icmp6_type != ICMPV6_PARAMPROB)
		return SP_V_NOT_OURS;
	in = (void *)(ih + 1);
	if ((void *)(in + 1) > data_end || in->version != 6)
		return SP_V_NOT_OURS;
	if (in->nexthdr != IPPROTO_TCP && in->nexthdr != IPPROTO_UDP)
		return SP_V_NOT_OURS;
	p->proto = in->nexthdr;
	__builtin_memcpy(&p->saddr, &in->saddr, 16);
	__builtin_memcpy(&p->daddr, &in->daddr, 16);
	p->l4_off = off;
	p->csum_off = off + offsetof(struct icmp6hdr, icmp6_cksum);
	p->in_l3_off = off + sizeof(*ih);
	return parse_quoted_l4(data, data_end, p, off + sizeof(*ih) + sizeof(*in));
}

static __always_inline int parse_ipv4(void *data, void *data_end, struct sp_pkt *p,
				      struct sp_stats *st, __u32 l3)
{
	struct iphdr *iph = data + l3;
	__u32 hlen;
	__u16 frag;

	if ((void *)(iph + 1) > data_end) {
		pkt_reason(p, SP_R_TRUNC_L3);
		return SP_V_PASS;
	}
	if (iph->version != 4) {
		pkt_reason(p, SP_R_BAD_VERSION);
		return SP_V_PASS;
	}
	hlen = iph->ihl * 4;
	if (hlen < sizeof(*iph)) {
		pkt_reason(p, SP_R_BAD_IHL);
		return SP_V_PASS;
	}
	if ((void *)iph + hlen > data_end) {
		pkt_reason(p, SP_R_TRUNC_L3);
		return SP_V_PASS;
	}
	if (iph->protocol != IPPROTO_TCP && iph->protocol != IPPROTO_UDP &&
	    iph->protocol != IPPROTO_ICMP)
		return SP_V_NOT_OURS;
	if (hlen > sizeof(*iph))
		STAT_INC(st, ipv4_options);
	frag = bpf_ntohs(iph->frag_off);
	p->family = SP_FAMILY_V4;
	p->l3_off = l3;
	p->ip_len = bpf_ntohs(iph->tot_len);
	if (frag & IP_OFFMASK) {
		/* No ports in a later fragment: it follows the NAT its
		 * datagram's first fragment got (lib/frag.h), if any. */
		if (iph->protocol == IPPROTO_ICMP) {
			pkt_reason(p, SP_R_FRAG_LATER);
			return SP_V_PASS;
		}
		p->proto = iph->protocol;
		p->saddr.addr[0] = iph->saddr;
		p->daddr.addr[0] = iph->daddr;
		p->frag = SP_FRAG_LATER;
		p->frag_id = iph->id;
		return SP_CONTINUE;
	}
	if (frag & IP_MF) {
		STAT_INC(st, frag_first);
		p->frag = SP_FRAG_FIRST;
		p->frag_id = iph->id;
	}
	if (iph->protocol == IPPROTO_ICMP)
		return parse_icmp4(data, data_end, p, l3 + hlen);
	p->proto = iph->protocol;
	p->saddr.addr[0] = iph->saddr;
	p->daddr.addr[0] = iph->daddr;
	return parse_l4(data, data_end, p, l3 + hlen);
}

/* IPv6 extension headers we walk to find TCP/UDP. Anything else (ESP, an
 * unknown header) is not ours and passes untouched. */
static __always_inline bool ipv6_is_ext(__u8 nh)
{
	return nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS ||
	       nh == IPPROTO_FRAGMENT || nh == IPPROTO_AH;
}

static __always_inline int parse_ipv6(void *data, void *data_end, struct sp_pkt *p,
				      struct sp_stats *st, __u32 l3)
{
	struct ipv6hdr *ip6 = data + l3;
	__u32 off = l3 + sizeof(*ip6);
	__u8 nh;
	int i;

	if ((void *)(ip6 + 1) > data_end) {
		pkt_reason(p, SP_R_TRUNC_L3);
		return SP_V_PASS;
	}
	if (ip6->version != 6) {
		pkt_reason(p, SP_R_BAD_VERSION);
		return SP_V_PASS;
	}
	nh = ip6->nexthdr;
	if (ipv6_is_ext(nh))
		STAT_INC(st, ipv6_ext_hdrs);
	for (i = 0; i < SP_MAX_IPV6_EXT_HDRS; i++) {
		__u8 *eh;
		__u32 elen;

		if (!ipv6_is_ext(nh))
			break;
		if (off > SP_MAX_L4_OFF) {
			pkt_reason(p, SP_R_EXT_HDR_LIMIT);
			return SP_V_PASS;
		}
		eh = data + off;
		if ((void *)(eh + 8) > data_end) {
			pkt_reason(p, SP_R_TRUNC_L3);
			return SP_V_PASS;
		}
		if (nh == IPPROTO_FRAGMENT) {
			__u16 fo = bpf_ntohs(*(__be16 *)(eh + 2));

			if (fo & 0xfff8) {
				/* A later fragment: what follows is payload. */
				if (eh[0] != IPPROTO_TCP && eh[0] != IPPROTO_UDP) {
					pkt_reason(p, SP_R_FRAG_LATER);
					return SP_V_PASS;
				}
				p->family = SP_FAMILY_V6;
				p->l3_off = l3;
				p->ip_len = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
				p->proto = eh[0];
				__builtin_memcpy(&p->saddr, &ip6->saddr, 16);
				__builtin_memcpy(&p->daddr, &ip6->daddr, 16);
				p->frag = SP_FRAG_LATER;
				p->frag_id = *(__be32 *)(eh + 4);
				return SP_CONTINUE;
			}
			if (fo & 1) {
				STAT_INC(st, frag_first);
				p->frag = SP_FRAG_FIRST;
				p->frag_id = *(__be32 *)(eh + 4);
			}
			elen = 8;
		} else if (nh == IPPROTO_AH) {
			elen = (eh[1] + 2) * 4;
		} else {
			elen = (eh[1] + 1) * 8;
		}
		nh = eh[0];
		off += elen;
	}
	if (ipv6_is_ext(nh)) {
		pkt_reason(p, SP_R_EXT_HDR_LIMIT);
		return SP_V_PASS;
	}
	if (nh != IPPROTO_TCP && nh != IPPROTO_UDP && nh != IPPROTO_ICMPV6)
		return SP_V_NOT_OURS;
	p->family = SP_FAMILY_V6;
	p->l3_off = l3;
	p->ip_len = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
	if (nh == IPPROTO_ICMPV6)
		return parse_icmp6(data, data_end, p, off);
	p->proto = nh;
	__builtin_memcpy(&p->saddr, &ip6->saddr, 16);
	__builtin_memcpy(&p->daddr, &ip6->daddr, 16);
	return parse_l4(data, data_end, p, off);
}

/*
 * VLAN tags in the frame's data: 802.1Q (0x8100) and 802.1ad (0x88a8), up
 * to two (QinQ). XDP sees them on a NIC that does not strip the tag (and
 * veths never do); TC rarely does, as the stack moves the outer tag into
 * the skb's metadata before TC ingress and VLAN devices hand theirs to the
 * driver as metadata. A frame with a third tag is not ours.
 */
#define SP_MAX_VLAN_TAGS 2
#define SP_L2_MAX (sizeof(struct ethhdr) + SP_MAX_VLAN_TAGS * 4)

static __always_inline bool eth_is_vlan(__be16 proto)
{
	return proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD);
}

/*
 * The L2 header's length (14, 18 or 22) in the low byte and the EtherType
 * it carries (host order) above it; -1 if the frame is cut short in its
 * L2 header. See l2_info for why a global function computes it.
 */
static __always_inline int l2_walk(void *data, void *data_end)
{
	struct ethhdr *eth = data;
	__u32 len = sizeof(*eth);
	__be16 proto;
	int i;

	if ((void *)(eth + 1) > data_end)
		return -1;
	proto = eth->h_proto;
	for (i = 0; i < SP_MAX_VLAN_TAGS; i++) {
		__be16 *tag = data + len; /* TCI, then the EtherType inside */

		if (!eth_is_vlan(proto))
			break;
		if ((void *)(tag + 2) > data_end)
			return -1;
		proto = tag[1];
		len += 4;
	}
	return (int)((__u32)bpf_ntohs(proto) << 8 | len);
}

__noinline int sp_l2_xdp(struct xdp_md *ctx)
{
	if (!ctx)
		return -1;
	return l2_walk((void *)(long)ctx->data, (void *)(long)ctx->data_end);
}

__noinline int sp_l2_tc(struct __sk_buff *skb)
{
	if (!skb)
		return -1;
	return l2_walk((void *)(long)skb->data, (void *)(long)skb->data_end);
}

/*
 * A global function (sp_l2_xdp, sp_l2_tc) walks the tags: the verifier
 * checks it once, and the length it returns is a number it does not know,
 * so the IP parser after it is checked once for all three lengths (three
 * constant offsets made it walk the parser three times: sp_xdp took 170k
 * instructions to verify instead of 73k).
 */
static __always_inline int l2_info(void *ctx, const int hook)
{
	if (hook == HOOK_XDP)
		return sp_l2_xdp(ctx);
	return sp_l2_tc(ctx);
}

/*
 * Parse Ethernet (VLAN tags included) + IPv4/IPv6 + TCP/UDP. Returns
 * SP_CONTINUE with *p filled, SP_V_NOT_OURS for well-formed packets that
 * are not TCP/UDP over IP, or SP_V_PASS for malformed ones (counted by
 * reason): neither is rewritten.
 */
static __always_inline int parse_pkt(void *ctx, const int hook, struct sp_pkt *p,
				     struct sp_stats *st)
{
	/* The call first: what lives across it is spilled to the stack. */
	int l2 = l2_info(ctx, hook);
	void *data = ctx_data(ctx, hook);
	void *data_end = ctx_data_end(ctx, hook);
	__u32 l3, proto;

	p->len = ctx_len(ctx, hook);
	if (l2 < 0) {
		pkt_reason(p, SP_R_TRUNC_L2);
		return SP_V_PASS;
	}
	l3 = (__u32)l2 & 0xff;
	proto = (__u32)l2 >> 8;
	if (l3 > SP_L2_MAX)
		return SP_V_NOT_OURS;
	if (proto == ETH_P_IP)
		return parse_ipv4(data, data_end, p, st, l3);
	if (proto == ETH_P_IPV6)
		return parse_ipv6(data, data_end, p, st, l3);
	return SP_V_NOT_OURS;
}

#endif /* SP_LIB_PARSE_H */
