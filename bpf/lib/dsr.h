/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Direct Server Return (--dsr), the alternative to lib/snat.h for an
 * outside client reaching an external frontend (LB IP, externalIP,
 * NodePort) whose chosen backend is on another node.
 *
 * Node A (the node the client's packet reaches, sp_xdp on its uplink)
 * DNATs the packet as usual (destination: the pod; source: the client,
 * unchanged) and inserts an option carrying the frontend address and port
 * (wire format in include/svcplane.h): an IPv4 option of 8 bytes (IHL
 * 5 -> 7) or an IPv6 Destination Options header of 24 bytes. The stack
 * forwards it to the pod's node like any packet to a pod. Node B (the
 * backend's node, sp_xdp on its uplink) finds the option and records a
 * conntrack REV entry for the pod's replies, which its pod veth hook
 * (sp_tc_ingress) then sends straight to the client with the frontend as
 * their source. The replies never pass node A.
 *
 * Why an option rather than IPIP/GUE (Cilium offers both): the packet
 * keeps the client as source and the pod as destination, so it is routed
 * over the pod network like any pod traffic, costs 8 / 24 bytes instead of
 * 20 / 40, and node B needs no tunnel device. L4 checksums are unchanged
 * (the pseudo-header covers neither IPv4 options nor extension headers).
 *
 * Which packets carry it: a TCP connection's SYN (node B needs the
 * frontend before the pod answers) and every UDP datagram (UDP has no
 * start: each datagram refreshes node B's entry). Later TCP packets are
 * plain DNAT: they are MSS-sized, and 8 more bytes would push them over
 * the MTU. The MTU cost is therefore on SYNs (no payload) and on UDP
 * datagrams: a datagram that would exceed the uplink's MTU with the
 * option is not sent with it: the first one of a flow makes the flow an
 * SNAT flow (dsr_fallback_snat), a later one goes as plain DNAT (node B's
 * entry lives on from the datagrams before it). Packets with IPv4 options
 * or IPv6 extension headers of their own, and fragments, are SNATed too:
 * node B only looks for the option at one fixed place.
 *
 * Node B leaves the option in the packet: Linux ignores an unknown IPv4
 * option on a received packet (and does not echo it in TCP's SYN-ACK),
 * and IPv6 option type 0x1E says "skip if unknown"; stripping it would
 * cost a second head adjustment and header move per packet for nothing.
 *
 * Each node holds one entry of a DSR flow (SP_CT_F_DSR), never a pair:
 * node A its FWD entry (it sees every client packet, never a reply), node
 * B its REV entry (it sees the pod's replies and the optioned packets).
 * Every node must run with --dsr: node B must know the option.
 */
#ifndef SP_LIB_DSR_H
#define SP_LIB_DSR_H

#include "common.h"
#include "maps.h"
#include "parse.h"
#include "stats.h"
#include "nat.h"
#include "ct.h"

/* --dsr, set before load. */
const volatile __u8 cfg_dsr = 0;

/*
 * What the DSR code keeps in the per-CPU scratch area (sp_scratch) between
 * the pipeline and sp_dsr_xdp, both called by one run of sp_xdp on one CPU
 * (no other program of ours runs on that CPU in between: XDP and TC
 * ingress run in softirq, TC egress with softirqs off). The stack of that
 * call chain is at its 512-byte limit.
 */
struct dsr_scratch {
	__u32 mtu; /* bpf_check_mtu's in/out word */
	__be16 port; /* the frontend, saved before the DNAT */
	__u16 pad;
	struct sp_addr addr;
};

static __always_inline struct dsr_scratch *dsr_scratch_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&sp_scratch, &zero);
}

/* Save the frontend of the packet, before its DNAT, for sp_dsr_xdp.
 * Returns false if the scratch area is missing (never, in practice). */
static __always_inline bool dsr_save_frontend(const struct sp_pkt *p)
{
	struct dsr_scratch *s = dsr_scratch_get();

	if (!s)
		return false;
	s->addr = p->daddr;
	s->port = p->dport;
	return true;
}

/* True if the packet has no header bytes of its own between the fixed IP
 * header and TCP/UDP (no IPv4 option, no IPv6 extension header) and is
 * not a fragment: the option can go in at the one place node B looks. */
static __always_inline bool dsr_plain(const struct sp_pkt *p)
{
	if (p->frag)
		return false;
	if (p->family == SP_FAMILY_V4)
		return p->l4_off == sizeof(struct ethhdr) + sizeof(struct iphdr);
	return p->l4_off == sizeof(struct ethhdr) + sizeof(struct ipv6hdr);
}

/* True for the packets of a DSR flow that carry the option: a TCP SYN
 * (no ACK, no RST) and every UDP datagram. */
static __always_inline bool dsr_carries(const struct sp_pkt *p)
{
	return p->proto == IPPROTO_UDP ||
	       (p->tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST)) == TCP_SYN;
}

static __always_inline __s32 dsr_opt_len(const struct sp_pkt *p)
{
	return p->family == SP_FAMILY_V4 ? SP_DSR_OPT4_LEN : SP_DSR_OPT6_LEN;
}

/*
 * True if the frame, the option added, stays within the MTU of the device
 * it arrived on (bpf_check_mtu with ifindex 0): on a node with one uplink
 * that is also the way out to the pod's node. The MTU word lives in the
 * per-CPU scratch area: the pipeline's stack is at its limit.
 */
static __always_inline bool dsr_fits(struct xdp_md *ctx, const struct sp_pkt *p)
{
	struct dsr_scratch *s = dsr_scratch_get();

	if (!s)
		return false;
	s->mtu = 0;
	return bpf_check_mtu(ctx, 0, &s->mtu, dsr_opt_len(p), 0) == BPF_MTU_CHK_RET_SUCCESS;
}

/*
 * How a packet of an outside client to a remote backend goes with --dsr
 * (XDP): SP_PKT_DSR_FLOW alone (DSR, plain DNAT: a TCP packet after the
 * SYN), with SP_PKT_DSR_OPT (DSR, with the option), or 0: it cannot carry
 * the option it needs (SNAT for a new flow, plain DNAT for an established
 * one).
 */
static __always_inline __u8 dsr_mode(struct xdp_md *ctx, const struct sp_pkt *p)
{
	if (!dsr_carries(p))
		return SP_PKT_DSR_FLOW;
	if (!dsr_plain(p) || !dsr_fits(ctx, p))
		return 0;
	return SP_PKT_DSR_FLOW | SP_PKT_DSR_OPT;
}

/* Ethernet + IPv4 / IPv6 headers, moved down in one piece. */
#define DSR_HDR4 (sizeof(struct ethhdr) + sizeof(struct iphdr))
#define DSR_HDR6 (sizeof(struct ethhdr) + sizeof(struct ipv6hdr))

/* The IPv4 header checksum of the 28-byte header at iph, computed whole. */
static __always_inline __u16 dsr_ip4_csum(const __u16 *w)
{
	__u32 sum = 0, i;

#pragma clang loop unroll(full)
	for (i = 0; i < (sizeof(struct iphdr) + SP_DSR_OPT4_LEN) / 2; i++)
		sum += w[i];
	return csum_fold32(sum);
}

/*
 * Insert the DSR option into a DNATed packet (the frontend saved by
 * dsr_save_frontend) on XDP: grow the head by 8 / 24 bytes, move the Ethernet and
 * IP headers down into it (constant-size copies through the stack), and
 * write the option between the IP header and TCP/UDP. Returns SP_V_PASS
 * (the stack forwards it to the pod's node) or SP_V_DROP (counted
 * dsr_failed).
 */
static __always_inline int dsr_insert(struct xdp_md *ctx, const struct sp_pkt *p,
				      struct sp_stats *st)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct dsr_scratch *fe = dsr_scratch_get();
	__u8 hdr[DSR_HDR6];

	if (!fe)
		goto fail;
	if (p->family == SP_FAMILY_V4) {
		struct iphdr *iph;
		__u8 *o;

		if (data + DSR_HDR4 > data_end)
			goto fail;
		iph = data + sizeof(struct ethhdr);
		if (iph->ihl != 5)
			goto fail;
		__builtin_memcpy(hdr, data, DSR_HDR4);
		if (bpf_xdp_adjust_head(ctx, -SP_DSR_OPT4_LEN))
			goto fail;
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		if (data + DSR_HDR4 + SP_DSR_OPT4_LEN > data_end)
			goto fail;
		__builtin_memcpy(data, hdr, DSR_HDR4);
		iph = data + sizeof(struct ethhdr);
		o = (__u8 *)(iph + 1);
		o[0] = SP_DSR_OPT4_TYPE;
		o[1] = SP_DSR_OPT4_LEN;
		__builtin_memcpy(o + 2, &fe->port, 2);
		__builtin_memcpy(o + 4, &fe->addr.addr[0], 4);
		iph->ihl = 7;
		iph->tot_len = bpf_htons(bpf_ntohs(iph->tot_len) + SP_DSR_OPT4_LEN);
		iph->check = 0;
		iph->check = dsr_ip4_csum((__u16 *)iph);
	} else {
		struct ipv6hdr *ip6;
		__u8 *o, nh;

		if (data + DSR_HDR6 > data_end)
			goto fail;
		ip6 = data + sizeof(struct ethhdr);
		nh = ip6->nexthdr;
		if (nh != IPPROTO_TCP && nh != IPPROTO_UDP)
			goto fail;
		__builtin_memcpy(hdr, data, DSR_HDR6);
		if (bpf_xdp_adjust_head(ctx, -SP_DSR_OPT6_LEN))
			goto fail;
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		if (data + DSR_HDR6 + SP_DSR_OPT6_LEN > data_end)
			goto fail;
		__builtin_memcpy(data, hdr, DSR_HDR6);
		ip6 = data + sizeof(struct ethhdr);
		o = (__u8 *)(ip6 + 1);
		o[0] = nh;
		o[1] = SP_DSR_OPT6_LEN / 8 - 1;
		o[2] = SP_DSR_OPT6_TYPE;
		o[3] = SP_DSR_OPT6_DATA_LEN;
		__builtin_memcpy(o + 4, &fe->port, 2);
		__builtin_memcpy(o + 6, fe->addr.addr, 16);
		o[22] = 1; /* PadN */
		o[23] = 0;
		ip6->nexthdr = IPPROTO_DSTOPTS;
		ip6->payload_len = bpf_htons(bpf_ntohs(ip6->payload_len) + SP_DSR_OPT6_LEN);
	}
	STAT_INC(st, to_stack);
	return SP_V_PASS;
fail:
	reason_count(SP_R_DSR_FAILED, p->len);
	return SP_V_DROP;
}

/*
 * The frontend a packet's DSR option names, if it carries one exactly
 * where node A puts it (IPv4 IHL 7 with the option first; IPv6 a first
 * Destination Options header of 24 bytes with the option first). Returns
 * true with *fe and *port filled.
 */
static __always_inline bool dsr_read(struct xdp_md *ctx, const struct sp_pkt *p,
				     struct sp_addr *fe, __be16 *port)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	__u32 l3 = p->l3_off;
	__u8 *o;

	__builtin_memset(fe, 0, sizeof(*fe));
	/* After the Ethernet header and its VLAN tags, if any. */
	if (l3 > SP_L2_MAX)
		return false;
	data += l3;
	if (p->family == SP_FAMILY_V4) {
		struct iphdr *iph = data;

		o = (__u8 *)(iph + 1);
		if ((void *)(o + SP_DSR_OPT4_LEN) > data_end || iph->ihl != 7 ||
		    o[0] != SP_DSR_OPT4_TYPE || o[1] != SP_DSR_OPT4_LEN)
			return false;
		__builtin_memcpy(port, o + 2, 2);
		__builtin_memcpy(&fe->addr[0], o + 4, 4);
		return true;
	}
	struct ipv6hdr *ip6 = data;

	o = (__u8 *)(ip6 + 1);
	if ((void *)(o + SP_DSR_OPT6_LEN) > data_end || ip6->nexthdr != IPPROTO_DSTOPTS ||
	    o[1] != SP_DSR_OPT6_LEN / 8 - 1 || o[2] != SP_DSR_OPT6_TYPE ||
	    o[3] != SP_DSR_OPT6_DATA_LEN)
		return false;
	__builtin_memcpy(port, o + 4, 2);
	__builtin_memcpy(fe->addr, o + 6, 16);
	return true;
}

/*
 * Node B: a packet to a pod of this node carrying the DSR option. Create
 * or refresh the REV entry of the pod's replies (pod -> client), which
 * restores the frontend as their source: nat_addr/nat_port the frontend,
 * nat_saddr/nat_sport the client (as any REV entry keeps them). It is
 * written only where no live TCP flow of our own (non-DSR) owns that
 * tuple, which would be two flows on one reply tuple (counted dsr_clash). The
 * packet itself goes on unchanged. Returns SP_CONTINUE.
 */
static __always_inline int dsr_ingress(struct xdp_md *ctx, const struct sp_pkt *p,
				       struct sp_stats *st)
{
	__u64 now = sp_now();
	struct sp_ct_entry v;
	struct sp_ct_hdr *old;
	struct sp_ct_key k;
	struct sp_addr fe;
	__be16 port;

	if (!dsr_read(ctx, p, &fe, &port))
		return SP_CONTINUE;
	ct_key_reversed(p, SP_CT_REV, &k);
	old = ct_map_lookup(&k, &v); /* v: the entry, until it is built anew below */
	if (old && !ct_expired(old, now)) {
		/* UDP has no connection to protect: a client port that
		 * reached a pod of this node directly a minute ago (its
		 * entry lives on the UDP timeout) and now comes through
		 * another node with the option is the same socket talking
		 * to the frontend the option names; the newest wins (the
		 * multi-node suite hit this when the client reused a port). */
		if (!(old->flags & SP_CT_F_DSR) && old->state != SP_CT_CLOSING &&
		    old->state != SP_CT_TIME_WAIT && p->proto != IPPROTO_UDP) {
			reason_count(SP_R_DSR_CLASH, p->len);
			return SP_CONTINUE;
		}
		/* This flow's own entry: refresh it in place (a write only
		 * when something changed, see ct_advance). */
		if ((old->flags & SP_CT_F_DSR) && addr_eq(&v.nat_addr, &fe) &&
		    old->nat_port == port &&
		    !(ct_state_closing(old->state) && dsr_carries(p) && p->proto == IPPROTO_TCP)) {
			ct_advance(old, p, CT_ORIG, now, st);
			STAT_INC(st, dsr_ingress);
			return SP_CONTINUE;
		}
	}
	__builtin_memset(&v, 0, sizeof(v));
	v.nat_addr = fe;
	v.nat_port = port;
	v.nat_saddr = p->saddr;
	v.nat_sport = p->sport;
	v.flags = SP_CT_F_DSR;
	v.state = SP_CT_NEW;
	ct_next(p, CT_ORIG, &v.state, &v.flags);
	v.expires = sp_ct_time(now + ct_timeout(p->proto, v.state, v.flags));
	v.created = sp_ct_time(now);
	ct_reply_src_add(&k);
	if (ct_map_update(&k, &v, BPF_ANY)) {
		STAT_INC(st, ct_insert_fail);
		return SP_CONTINUE;
	}
	STAT_INC(st, dsr_ingress);
	return SP_CONTINUE;
}

#endif /* SP_LIB_DSR_H */
