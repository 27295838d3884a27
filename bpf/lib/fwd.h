/* SPDX-License-Identifier: Apache-2.0 */
/*
 * After NAT: where the packet goes.
 *  - XDP: with --xdp-redirect, a FIB lookup and a redirect when the egress
 *    device is in sp_tx_ports (it can take XDP frames); otherwise the stack,
 *    by way of the uplink's TC program with host routing on (a note in the
 *    metadata: lib/host_route.h), which delivers local pods itself.
 *  - TC (pod veth ingress and uplink egress): a FIB lookup and
 *    bpf_redirect_neigh (which fills in the MAC addresses), or the stack
 *    when the destination is local. Not merely an optimisation: a reply
 *    reverse-NATed to a NodePort carries one of this node's addresses as
 *    its source, and the stack drops such a packet arriving from a pod as
 *    a martian. On egress, the packet was routed for the VIP before we
 *    changed its destination, so it must be routed again.
 */
#ifndef SP_LIB_FWD_H
#define SP_LIB_FWD_H

#include "common.h"
#include "maps.h"
#include "parse.h"
#include "stats.h"
#include "host_route.h"

/* Set by the daemon with --xdp-redirect. Off, XDP never looks up the FIB. */
const volatile __u8 cfg_xdp_redirect = 0;

static __always_inline void fib_params(void *ctx, const int hook, const struct sp_pkt *p,
				       struct bpf_fib_lookup *f)
{
	__builtin_memset(f, 0, sizeof(*f));
	f->l4_protocol = p->proto;
	f->sport = p->sport;
	f->dport = p->dport;
	f->tot_len = p->ip_len;
	f->ifindex = ctx_ifindex(ctx, hook);
	if (p->family == SP_FAMILY_V4) {
		f->family = AF_INET;
		f->ipv4_src = p->saddr.addr[0];
		f->ipv4_dst = p->daddr.addr[0];
	} else {
		f->family = AF_INET6;
		__builtin_memcpy(f->ipv6_src, p->saddr.addr, 16);
		__builtin_memcpy(f->ipv6_dst, p->daddr.addr, 16);
	}
}

/* XDP redirect: rewrite MACs, decrement TTL / hop limit, redirect. */
static __always_inline int xdp_forward(struct xdp_md *ctx, const struct sp_pkt *p,
				       struct sp_stats *st)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct bpf_fib_lookup f;
	int rc;

	fib_params(ctx, HOOK_XDP, p, &f);
	rc = bpf_fib_lookup(ctx, &f, sizeof(f), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS || !bpf_map_lookup_elem(&sp_tx_ports, &f.ifindex))
		goto stack;
	if ((void *)(eth + 1) > data_end)
		goto stack;
	if (p->family == SP_FAMILY_V4) {
		struct iphdr *iph = data + sizeof(*eth);
		__be32 from, to;

		if ((void *)(iph + 1) > data_end || iph->ttl <= 1)
			goto stack;
		/* TTL shares a 16-bit word with the protocol. */
		from = *(__be16 *)&iph->ttl;
		iph->ttl--;
		to = *(__be16 *)&iph->ttl;
		csum_apply(&iph->check, &from, &to, 4);
	} else {
		struct ipv6hdr *ip6 = data + sizeof(*eth);

		if ((void *)(ip6 + 1) > data_end || ip6->hop_limit <= 1)
			goto stack;
		ip6->hop_limit--;
	}
	__builtin_memcpy(eth->h_dest, f.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, f.smac, ETH_ALEN);
	STAT_INC(st, redirects);
	SP_TRACE(SP_T_FWD, SP_TFW_REDIRECT, 0, rc, f.ifindex, 0);
	return bpf_redirect_map(&sp_tx_ports, f.ifindex, XDP_PASS);
stack:
	SP_TRACE(SP_T_FWD, SP_TFW_STACK, 0, rc, 0, 0);
	STAT_INC(st, to_stack);
	if (cfg_host_routing)
		xdp_note_host_route(ctx);
	return SP_V_PASS;
}

/* The loopback device's index in every network namespace. */
#define SP_LOOPBACK_IFINDEX 1

/*
 * A packet of a host process to a Service whose endpoint is this host (the
 * `kubernetes` Service on a control-plane node: the API server listens on
 * the node's own address), or the reverse-NATed reply to it. It was routed
 * out of the uplink; after NAT its destination is local, and leaving by
 * the uplink would send it to the wire. Hand it to the loopback device's
 * ingress instead, as the stack delivers a local destination (the
 * destination MAC becomes lo's, all zeros, or the stack would take the
 * frame for another host's). Its source is the hairpin address (request)
 * or the VIP (reply), never a local one, which IPv4 would take for a
 * martian on lo. The endpoint's reply to the hairpin address is routed out
 * of the uplink again, where TC egress reverse-NATs it and comes here.
 */
static __always_inline int tc_to_local(struct __sk_buff *skb, struct sp_stats *st)
{
	void *data = (void *)(long)skb->data, *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	/* Through the packet pointer: no stack (the pipeline's is full). */
	if ((void *)(eth + 1) > data_end) {
		reason_count(SP_R_NAT_FAILED, skb->len);
		return SP_V_DROP;
	}
	__builtin_memset(eth->h_dest, 0, ETH_ALEN);
	STAT_INC(st, redirects);
	SP_TRACE(SP_T_FWD, SP_TFW_LOCAL, 0, 0, SP_LOOPBACK_IFINDEX, 0);
	return bpf_redirect(SP_LOOPBACK_IFINDEX, BPF_F_INGRESS);
}

/*
 * Decrement the TTL / hop limit of a packet TC forwards itself: the stack
 * would have, and bpf_redirect_neigh skips the stack. Returns 0, or -1
 * when the packet must go to the stack instead (TTL 1: the stack answers
 * time exceeded; or the header could not be read).
 */
static __always_inline int tc_dec_ttl(struct __sk_buff *skb, const struct sp_pkt *p)
{
	__u32 l3 = p->l3_off;
	__u8 ttl;

	if (p->family == SP_FAMILY_V4) {
		if (bpf_skb_load_bytes(skb, l3 + offsetof(struct iphdr, ttl), &ttl, 1) || ttl <= 1)
			return -1;
		/* TTL is the high byte of the 16-bit word it shares with the
		 * protocol. */
		if (bpf_l3_csum_replace(skb, l3 + offsetof(struct iphdr, check),
					bpf_htons((__u16)ttl << 8), bpf_htons((__u16)(ttl - 1) << 8),
					2))
			return -1;
		ttl--;
		return bpf_skb_store_bytes(skb, l3 + offsetof(struct iphdr, ttl), &ttl, 1, 0) ? -1 :
											       0;
	}
	if (bpf_skb_load_bytes(skb, l3 + offsetof(struct ipv6hdr, hop_limit), &ttl, 1) || ttl <= 1)
		return -1;
	ttl--;
	return bpf_skb_store_bytes(skb, l3 + offsetof(struct ipv6hdr, hop_limit), &ttl, 1, 0) ? -1 :
												    0;
}

static __always_inline int tc_forward(struct __sk_buff *skb, const int hook,
				      const struct sp_pkt *p, struct sp_stats *st)
{
	struct bpf_fib_lookup f;
	struct bpf_redir_neigh nh;
	int rc;

	fib_params(skb, hook, p, &f);
	rc = bpf_fib_lookup(skb, &f, sizeof(f), 0);
	if (rc == BPF_FIB_LKUP_RET_NOT_FWDED && hook == HOOK_TC_EGRESS &&
	    skb->ifindex != SP_LOOPBACK_IFINDEX)
		return tc_to_local(skb, st);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH) {
		/* Local destination (NOT_FWDED), or no route from here: the
		 * stack decides. On egress that is worth a count: the packet
		 * leaves as it was routed. */
		if (hook == HOOK_TC_EGRESS && rc != BPF_FIB_LKUP_RET_NOT_FWDED)
			reason_count(SP_R_FIB_FAILED, p->len);
		SP_TRACE(SP_T_FWD, SP_TFW_STACK, 0, rc, 0, 0);
		STAT_INC(st, to_stack);
		return SP_V_PASS;
	}
	/* Pod traffic is forwarded (host-originated traffic on egress is not). */
	if (hook == HOOK_TC_INGRESS && tc_dec_ttl(skb, p)) {
		SP_TRACE(SP_T_FWD, SP_TFW_STACK, 0, rc, 0, 0);
		STAT_INC(st, to_stack);
		return SP_V_PASS;
	}
	/* A pod on this node (a pod to a local backend, a local backend's
	 * reply to a local client): straight into it (lib/host_route.h),
	 * rather than out of its veth's host side. bpf_redirect_peer only
	 * works from an ingress hook. */
	if (hook == HOOK_TC_INGRESS && cfg_host_routing && rc == BPF_FIB_LKUP_RET_SUCCESS &&
	    is_pod_veth(f.ifindex)) {
		int ret = tc_redirect_pod(skb, &f);

		if (ret != SP_CONTINUE) {
			STAT_INC(st, peer_redirects);
			SP_TRACE(SP_T_FWD, SP_TFW_PEER, 0, rc, f.ifindex, 0);
			return ret;
		}
	}
	__builtin_memset(&nh, 0, sizeof(nh));
	if (p->family == SP_FAMILY_V4) {
		nh.nh_family = AF_INET;
		nh.ipv4_nh = f.ipv4_dst; /* the gateway, or the destination itself */
	} else {
		nh.nh_family = AF_INET6;
		__builtin_memcpy(nh.ipv6_nh, f.ipv6_dst, 16);
	}
	STAT_INC(st, redirects);
	SP_TRACE(SP_T_FWD, SP_TFW_REDIRECT, 0, rc, f.ifindex, 0);
	return bpf_redirect_neigh(f.ifindex, &nh, sizeof(nh), 0);
}

static __always_inline int fwd_after_nat(void *ctx, const int hook, const struct sp_pkt *p,
					 struct sp_stats *st)
{
	/* A frame with a VLAN tag in its data goes to the stack, which knows
	 * the VLAN device it belongs to: a redirect would send the tag (XDP)
	 * or take it for the IP header (bpf_redirect_neigh). */
	if (p->l3_off == sizeof(struct ethhdr)) {
		if (hook == HOOK_XDP && cfg_xdp_redirect)
			return xdp_forward(ctx, p, st);
		if (is_tc(hook))
			return tc_forward(ctx, hook, p, st);
		if (hook == HOOK_XDP && cfg_host_routing) {
			SP_TRACE(SP_T_FWD, SP_TFW_NOTE, 0, 0, 0, 0);
			STAT_INC(st, to_stack);
			xdp_note_host_route(ctx);
			return SP_V_PASS;
		}
	}
	SP_TRACE(SP_T_FWD, SP_TFW_STACK, 0, 0, 0, 0);
	STAT_INC(st, to_stack);
	return SP_V_PASS;
}

#endif /* SP_LIB_FWD_H */
