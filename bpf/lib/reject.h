/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Answers for a Service with no ready endpoint, as kube-proxy's REJECT
 * rule does: TCP RST for TCP, ICMP / ICMPv6 port unreachable for UDP.
 *
 * TC only: the reply is built in a stack buffer and written over the
 * packet after resizing it, then sent back the way the packet came
 * (bpf_redirect). XDP leaves these packets to TC because XDP_TX on a veth
 * needs the peer to run XDP too, which pods do not.
 */
#ifndef SP_LIB_REJECT_H
#define SP_LIB_REJECT_H

#include "common.h"
#include "nat.h"
#include "parse.h"
#include "maps.h"

/* The most of the original packet an ICMP error quotes: all of an IPv4
 * header with options (60) + 8 bytes; for IPv6 with extension headers, the
 * first 124 bytes (RFC 4443 asks for as much as fits in 1280; the client
 * matches the error to its socket by the headers at the start). A
 * multiple of 4 below 128, so the mask below keeps it. */
#define REJECT_QUOTE_MAX 124
#define REJECT_BUF 192 /* the longest reply we build: 14 + 40 + 8 + 124 = 186 */
#define REJECT_RAW 194 /* used scratch: 2 + REJECT_BUF */
_Static_assert(REJECT_RAW <= SP_SCRATCH_LEN, "reject buffer exceeds scratch");

struct v6_pseudo {
	struct in6_addr saddr;
	struct in6_addr daddr;
	__be32 len;
	__u8 zero[3];
	__u8 nexthdr;
};

struct v4_pseudo {
	__be32 saddr;
	__be32 daddr;
	__u8 zero;
	__u8 proto;
	__be16 len;
};

/* Ones' complement sum of n bytes (n a multiple of 4, bounded) at buf. */
static __always_inline __u32 csum_buf(void *buf, __u32 n, __u32 seed)
{
	return (__u32)bpf_csum_diff(NULL, 0, buf, n, seed);
}

/*
 * Build the reply into buf and return its length, or -1. Layout written:
 * Ethernet (MACs swapped), a fresh IP header (no options or extension
 * headers), then TCP RST or ICMP with the quoted original.
 */
static __always_inline int reject_build(struct __sk_buff *skb, const struct sp_pkt *p, __u8 *buf)
{
	__u32 l4 = p->l4_off;
	struct ethhdr eth;
	__u32 iplen = p->family == SP_FAMILY_V4 ? sizeof(struct iphdr) : sizeof(struct ipv6hdr);
	__u32 off = sizeof(struct ethhdr) + iplen;
	__u32 l4len;

	if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)))
		return -1;
	__builtin_memcpy(((struct ethhdr *)buf)->h_dest, eth.h_source, ETH_ALEN);
	__builtin_memcpy(((struct ethhdr *)buf)->h_source, eth.h_dest, ETH_ALEN);
	((struct ethhdr *)buf)->h_proto = eth.h_proto;

	if (p->proto == IPPROTO_TCP) {
		struct tcphdr in, *th = (struct tcphdr *)(buf + off);
		__u32 payload;

		if (l4 > SP_MAX_L4_OFF || bpf_skb_load_bytes(skb, l4, &in, sizeof(in)))
			return -1;
		payload = p->ip_len - (l4 - p->l3_off) - in.doff * 4;
		if (payload > 0xffff)
			payload = 0;
		__builtin_memset(th, 0, sizeof(*th));
		th->source = in.dest;
		th->dest = in.source;
		th->doff = 5;
		th->rst = 1;
		if (in.ack) {
			/* RFC 793: reset takes its sequence number from the ACK. */
			th->seq = in.ack_seq;
		} else {
			th->ack = 1;
			th->ack_seq = bpf_htonl(bpf_ntohl(in.seq) + payload + in.syn + in.fin);
		}
		l4len = sizeof(*th);
	} else {
		struct icmphdr *ih = (struct icmphdr *)(buf + off);
		/* Original IP header(s) + 8 bytes, at most REJECT_QUOTE_MAX. */
		__u32 qlen = l4 - p->l3_off + 8;

		if (qlen < 8)
			return -1;
		/* Clamp, never wrap: a mask alone once quoted 16 bytes of a
		 * packet with 136 bytes of IPv6 headers. */
		if (qlen > REJECT_QUOTE_MAX)
			qlen = REJECT_QUOTE_MAX;
		/* Bounds [8, 132] for the verifier, a no-op on the clamped
		 * value (IP headers are 4-byte multiples). In asm so that
		 * clang applies it to the register the helper gets, not to a
		 * copy from before the clamp. */
		qlen -= 8;
		asm volatile("%[q] &= 0x7c\n\t%[q] += 8" : [q] "+r"(qlen));
		__builtin_memset(ih, 0, 8);
		if (p->family == SP_FAMILY_V4) {
			ih->type = ICMP_DEST_UNREACH;
			ih->code = ICMP_PORT_UNREACH;
		} else {
			ih->type = ICMPV6_DEST_UNREACH;
			ih->code = ICMPV6_PORT_UNREACH;
		}
		if (bpf_skb_load_bytes(skb, p->l3_off, buf + off + 8, qlen))
			return -1;
		l4len = 8 + qlen;
	}

	if (p->family == SP_FAMILY_V4) {
		struct iphdr *iph = (struct iphdr *)(buf + sizeof(struct ethhdr));
		struct v4_pseudo ph = {};

		__builtin_memset(iph, 0, sizeof(*iph));
		iph->version = 4;
		iph->ihl = 5;
		iph->ttl = 64;
		iph->protocol = p->proto == IPPROTO_TCP ? IPPROTO_TCP : IPPROTO_ICMP;
		iph->saddr = p->daddr.addr[0];
		iph->daddr = p->saddr.addr[0];
		iph->tot_len = bpf_htons(sizeof(*iph) + l4len);
		iph->check = csum_fold32(csum_buf(iph, sizeof(*iph), 0));
		if (p->proto == IPPROTO_TCP) {
			struct tcphdr *th = (struct tcphdr *)(buf + off);

			ph.saddr = iph->saddr;
			ph.daddr = iph->daddr;
			ph.proto = IPPROTO_TCP;
			ph.len = bpf_htons(l4len);
			th->check = csum_fold32(csum_buf(th, sizeof(*th), csum_buf(&ph, sizeof(ph), 0)));
		} else {
			struct icmphdr *ih = (struct icmphdr *)(buf + off);
			__u32 n = l4len & 0xfc; /* a multiple of 4 below REJECT_BUF */

			if (n != l4len || off + n > REJECT_BUF)
				return -1;
			ih->checksum = csum_fold32(csum_buf(ih, n, 0));
		}
	} else {
		struct ipv6hdr *ip6 = (struct ipv6hdr *)(buf + sizeof(struct ethhdr));
		struct v6_pseudo ph = {};
		__u8 nh = p->proto == IPPROTO_TCP ? IPPROTO_TCP : IPPROTO_ICMPV6;
		__u32 n = l4len & 0xfc;

		__builtin_memset(ip6, 0, sizeof(*ip6));
		ip6->version = 6;
		ip6->hop_limit = 64;
		ip6->nexthdr = nh;
		ip6->payload_len = bpf_htons(l4len);
		__builtin_memcpy(&ip6->saddr, &p->daddr, 16);
		__builtin_memcpy(&ip6->daddr, &p->saddr, 16);
		__builtin_memcpy(&ph.saddr, &p->daddr, 16);
		__builtin_memcpy(&ph.daddr, &p->saddr, 16);
		ph.len = bpf_htonl(l4len);
		ph.nexthdr = nh;
		if (n != l4len || off + n > REJECT_BUF)
			return -1;
		__u16 *sum = p->proto == IPPROTO_TCP ? &((struct tcphdr *)(buf + off))->check
						     : &((struct icmp6hdr *)(buf + off))->icmp6_cksum;
		*sum = csum_fold32(csum_buf(buf + off, n, csum_buf(&ph, sizeof(ph), 0)));
	}
	return off + l4len;
}

/* Answers per second per CPU (--reject-rate; 0: no limit). The kernel
 * limits the ICMP errors it sends itself (icmp_ratelimit); a flood of SYNs
 * to an empty Service must not turn the node into a reflector either. */
const volatile __u32 cfg_reject_rate = 1000;

/*
 * Token bucket per CPU, in ns-credits: each elapsed nanosecond earns
 * cfg_reject_rate credits, an answer costs 1e9, and at most one second's
 * worth is kept (the burst). Returns true if an answer may be sent now.
 */
static __always_inline bool reject_allowed(void)
{
	__u64 now, elapsed, credit, cap = (__u64)cfg_reject_rate * 1000000000ULL;
	struct sp_reject_bucket *b;
	__u32 zero = 0;

	if (!cfg_reject_rate)
		return true;
	b = bpf_map_lookup_elem(&sp_reject_rl, &zero);
	if (!b)
		return true;
	now = sp_now();
	elapsed = now - b->last;
	if (!b->last || elapsed > 1000000000ULL)
		elapsed = 1000000000ULL; /* a full bucket, and no overflow below */
	credit = b->credit + elapsed * cfg_reject_rate;
	if (credit > cap)
		credit = cap;
	b->last = now;
	if (credit < 1000000000ULL) {
		b->credit = credit;
		return false;
	}
	b->credit = credit - 1000000000ULL;
	return true;
}

/*
 * Turn the packet into its rejection and send it back: out of the same
 * device from TC ingress, into the host's stack from TC egress. Returns the
 * redirect verdict, or TC_ACT_SHOT after counting SP_R_REJECT_FAILED.
 */
static __always_inline int reject(struct __sk_buff *skb, const int hook, const struct sp_pkt *p)
{
	/* The IP header follows 14 bytes of Ethernet: start the buffer at
	 * offset 2 of the (8-byte aligned) scratch value so header fields
	 * are naturally aligned. */
	__u32 zero = 0;
	struct sp_scratch *scr = bpf_map_lookup_elem(&sp_scratch, &zero);
	__u8 *buf;
	int ret;
	__u32 len;

	/* A VLAN tag in the data (the stack keeps a single tag in the skb's
	 * metadata, which the answer keeps too; only an inner QinQ tag is
	 * here): the answer built below would lose it. */
	if (!scr || p->l3_off != sizeof(struct ethhdr))
		goto fail;
	buf = scr->b + 2;
	__builtin_memset(scr->b, 0, REJECT_RAW);
	ret = reject_build(skb, p, buf);
	if (ret <= 0 || ret > REJECT_BUF)
		goto fail;
	len = ret;
	if (bpf_skb_change_tail(skb, len, 0))
		goto fail;
	if (len > REJECT_BUF || bpf_skb_store_bytes(skb, 0, buf, len, 0))
		goto fail;
	return bpf_redirect(skb->ifindex, hook == HOOK_TC_EGRESS ? BPF_F_INGRESS : 0);
fail:
	reason_count(SP_R_REJECT_FAILED, p->len);
	return TC_ACT_SHOT;
}

#endif /* SP_LIB_REJECT_H */
