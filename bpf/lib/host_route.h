/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Host routing: packets XDP rewrote for a pod on this node are delivered
 * into the pod by the uplink's TC program with bpf_redirect_peer, instead
 * of crossing the stack (routing, netfilter, the host-side veth's xmit and
 * its backlog queue). What Cilium calls BPF host routing.
 *
 * XDP decides; it cannot deliver. An XDP redirect into a veth becomes an
 * xdp_frame that loses the skb's checksum state and needs GRO or an XDP
 * program on the peer (README, Limits), and XDP has no bpf_redirect_peer.
 * So XDP leaves a 4-byte note in the packet's metadata area
 * (bpf_xdp_adjust_meta; the kernel keeps it in front of the skb it builds,
 * as skb->data_meta) and passes the packet. The uplink's TC ingress program
 * runs next on the same skb: a packet without the note costs it one
 * compare; a packet with it is XDP's finished work, so TC skips its own
 * parse and lookups and only routes it: a FIB lookup, and when the
 * destination is behind a pod veth whose neighbour is known, the MAC
 * addresses, the TTL and bpf_redirect_peer into the pod's end of the veth.
 * Anything else (no neighbour yet, a destination that is not a pod veth of
 * ours, TTL 1, a VLAN, a route MTU the packet exceeds) goes to the stack as
 * before, counted peer_fallbacks; the stack resolves the neighbour, so the
 * next packets take the fast path.
 *
 * Only the pod veths the daemon attached to (sp_pod_ifaces) are targets:
 * bpf_redirect_peer silently drops a packet whose device has no peer
 * (not a veth or netkit) or whose peer sits in the same namespace.
 *
 * The stack's netfilter hooks (PREROUTING after XDP, FORWARD, POSTROUTING)
 * and the host-side veth's qdisc never see these packets; the replies,
 * which the pod veth's TC program reverse-NATs and forwards with
 * bpf_redirect_neigh (lib/fwd.h), never did. --host-routing=off keeps the
 * stack for hosts whose netfilter rules must see this traffic.
 */
#ifndef SP_LIB_HOST_ROUTE_H
#define SP_LIB_HOST_ROUTE_H

#include "common.h"
#include "maps.h"
#include "stats.h"
#include "nat.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

/* Set by the daemon (--host-routing, default on). Off, XDP writes no note
 * and TC never looks for one. */
const volatile __u8 cfg_host_routing = 0;

/* linux/if_packet.h, which pulls in libc headers. */
#define SP_PACKET_HOST 0

/*
 * XDP: note in the metadata that this packet, NATed and passed, is to be
 * routed by the uplink's TC program. A driver without metadata support
 * refuses the adjustment: the packet then simply takes the stack. Packet
 * pointers are invalid afterwards (the caller returns at once).
 */
static __always_inline void xdp_note_host_route(struct xdp_md *ctx)
{
	void *data, *meta;

	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(__u32)))
		return;
	data = (void *)(long)ctx->data;
	meta = (void *)(long)ctx->data_meta;
	if (meta + sizeof(__u32) > data)
		return;
	*(__u32 *)meta = SP_META_HOST_ROUTE;
}

/* TC: true if XDP left the note on this skb. */
static __always_inline bool tc_has_host_route_note(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *meta = (void *)(long)skb->data_meta;

	return meta + sizeof(__u32) <= data && *(__u32 *)meta == SP_META_HOST_ROUTE;
}

/* True if ifindex is the host side of a pod veth the daemon attached to. */
static __always_inline bool is_pod_veth(__u32 ifindex)
{
	return bpf_map_lookup_elem(&sp_pod_ifaces, &ifindex) != NULL;
}

/*
 * Set the Ethernet addresses a successful FIB lookup gave and hand the
 * packet to the other end of the pod veth f->ifindex (is_pod_veth). The
 * TTL was decremented by the caller. Returns the helper's verdict
 * (TC_ACT_REDIRECT), or SP_CONTINUE if the header could not be written.
 */
static __always_inline int tc_redirect_pod(struct __sk_buff *skb, const struct bpf_fib_lookup *f)
{
	void *data = (void *)(long)skb->data, *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return SP_CONTINUE;
	__builtin_memcpy(eth->h_dest, f->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, f->smac, ETH_ALEN);
	return bpf_redirect_peer(f->ifindex, 0);
}

/*
 * The uplink's TC program, first thing: a packet XDP noted goes into its
 * pod here, or to the stack. Returns SP_CONTINUE for a packet without the
 * note (everything else on the uplink), else a TC verdict.
 */
static __always_inline int tc_host_route(struct __sk_buff *skb)
{
	struct sp_stats *st;
	struct bpf_fib_lookup f;
	void *data, *data_end;
	struct ethhdr *eth;
	int rc = 0, ret;

	if (!tc_has_host_route_note(skb))
		return SP_CONTINUE;
	st = stats_get(SP_SLOT_UPLINK_TC);
	/* The stack would not forward a frame not addressed to this host,
	 * and a tag the device stripped means the frame is a VLAN device's. */
	if (skb->pkt_type != SP_PACKET_HOST || skb->vlan_present)
		goto stack;
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		goto stack;
	__builtin_memset(&f, 0, sizeof(f));
	f.ifindex = skb->ifindex;
	/* tot_len 0: the kernel checks the skb itself against the egress
	 * MTU, GSO-aware (a GRO-merged packet is longer than any MTU). */
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = (void *)(eth + 1);
		__be32 from, to;

		if ((void *)(iph + 1) > data_end)
			goto stack;
		f.family = AF_INET;
		f.tos = iph->tos;
		f.l4_protocol = iph->protocol;
		f.ipv4_src = iph->saddr;
		f.ipv4_dst = iph->daddr;
		rc = bpf_fib_lookup(skb, &f, sizeof(f), 0);
		if (rc != BPF_FIB_LKUP_RET_SUCCESS || iph->ttl <= 1)
			goto stack;
		if (!is_pod_veth(f.ifindex))
			goto stack;
		/* TTL shares a 16-bit word with the protocol. The header's
		 * sum is unchanged by the pair of changes, so a
		 * CHECKSUM_COMPLETE skb stays right. */
		from = *(__be16 *)&iph->ttl;
		iph->ttl--;
		to = *(__be16 *)&iph->ttl;
		csum_apply(&iph->check, &from, &to, 4);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			goto stack;
		f.family = AF_INET6;
		f.flowinfo = *(__be32 *)ip6 & bpf_htonl(0x0fffffff);
		f.l4_protocol = ip6->nexthdr;
		__builtin_memcpy(f.ipv6_src, &ip6->saddr, 16);
		__builtin_memcpy(f.ipv6_dst, &ip6->daddr, 16);
		rc = bpf_fib_lookup(skb, &f, sizeof(f), 0);
		if (rc != BPF_FIB_LKUP_RET_SUCCESS || ip6->hop_limit <= 1)
			goto stack;
		if (!is_pod_veth(f.ifindex))
			goto stack;
		ip6->hop_limit--;
	} else {
		goto stack;
	}
	ret = tc_redirect_pod(skb, &f);
	if (ret == SP_CONTINUE)
		goto stack;
	STAT_INC(st, peer_redirects);
	SP_TRACE(SP_T_FWD, SP_TFW_PEER, 0, rc, f.ifindex, 0);
	return ret;
stack:
	STAT_INC(st, peer_fallbacks);
	SP_TRACE(SP_T_FWD, SP_TFW_STACK, 0, rc, 0, 0);
	return SP_V_PASS;
}

#endif /* SP_LIB_HOST_ROUTE_H */
