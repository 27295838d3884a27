// SPDX-License-Identifier: Apache-2.0
/*
 * svcplane datapath: thin entry points. The logic lives in the headers of bpf/lib.
 *
 *  sp_xdp         XDP on uplinks: DNAT to Services, reverse NAT of replies;
 *                 with --dsr, the DSR option out and in (lib/dsr.h).
 *  sp_tc_uplink   TC ingress on uplinks, after XDP: what XDP leaves to it,
 *                 the rejects for Services without endpoints (XDP cannot
 *                 answer on a veth) and SNAT flows (lib/snat.h); and
 *                 host routing, the delivery of what XDP NATed for a pod
 *                 on this node (lib/host_route.h).
 *  sp_tc_ingress  TC ingress on pod veths (host side): the whole pipeline.
 *                 TC rather than XDP because pod packets arrive
 *                 CHECKSUM_PARTIAL (see lib/nat.h).
 *  sp_tc_egress   TC egress on uplinks: host-originated traffic to Services.
 */
#include "lib/common.h"
#include "maps.h"
#include "lib/stats.h"
#include "lib/parse.h"
#include "lib/nat.h"
#include "lib/lb.h"
#include "lib/ct.h"
#include "lib/reject.h"
#include "lib/fwd.h"
#include "lib/icmp.h"
#include "lib/frag.h"
#include "lib/snat.h"
#include "lib/srcrange.h"
#include "lib/dsr.h"
#include "lib/monitor.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Source address for hairpin flows (a pod reaching itself through its
 * Service): the pod would drop a packet from its own address arriving from
 * outside. Defaults 169.254.42.1 and fd73:7670:6c61:6e65::1. */
const volatile __be32 cfg_hairpin_v4 = bpf_htonl(0xa9fe2a01);
const volatile __be32 cfg_hairpin_v6[4] = { bpf_htonl(0xfd737670), bpf_htonl(0x6c616e65), 0,
					    bpf_htonl(1) };

static __always_inline void hairpin_addr(__u8 family, struct sp_addr *a)
{
	__builtin_memset(a, 0, sizeof(*a));
	if (family == SP_FAMILY_V4) {
		a->addr[0] = cfg_hairpin_v4;
	} else {
		a->addr[0] = cfg_hairpin_v6[0];
		a->addr[1] = cfg_hairpin_v6[1];
		a->addr[2] = cfg_hairpin_v6[2];
		a->addr[3] = cfg_hairpin_v6[3];
	}
}

/* True if the backend still exists with the address the entry recorded
 * (ids are reused, so the address is compared too). */
static __always_inline bool ct_backend_alive(const struct sp_ct_entry *v)
{
	struct sp_backend *be = bpf_map_lookup_elem(&sp_backends, &v->backend_id);

	return be && be->family && addr_eq(&be->addr, &v->nat_addr) && be->port == v->nat_port;
}

/* True if svc_id belongs to a Service port, or to a deleted one's retained
 * frontends (sp_svc_live, written by the daemon's sync). */
static __always_inline bool ct_svc_live(__u32 svc_id)
{
	__u32 *v = bpf_map_lookup_elem(&sp_svc_live, &svc_id);

	return v && *v;
}

/* True for a TCP packet that opens a connection: SYN without ACK or RST. */
static __always_inline bool tcp_bare_syn(const struct sp_pkt *p)
{
	return (p->tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST)) == TCP_SYN;
}

/* A packet counted to its Service port (ss: NULL if unreadable). */
static __always_inline void svc_count_packet(struct sp_svc_stats *ss, struct sp_stats *st,
					     const struct sp_pkt *p)
{
	if (ss) {
		ss->packets++;
		ss->bytes += p->len;
	}
	STAT_INC(st, svc_packets);
}

/* A packet to a Service port dropped for reason r. */
static __always_inline int svc_drop(const struct sp_pkt *p, const int hook, int r,
				    struct sp_svc_stats *ss, __u32 svc_id)
{
	reason_count(r, p->len);
	if (ss)
		ss->drops++;
	SP_MONITOR(p, SP_MON_DROP, r, hook, svc_id, 0);
	return SP_V_DROP;
}

/*
 * A client packet of a tracked flow, after its Service's counters: XDP
 * leaves SNAT flows to the uplink's TC program; otherwise the flow is
 * advanced (its REV partner kept in step). Returns SP_CONTINUE, or a
 * verdict. ct is its FWD entry, *fwd the copy its lookup made: the NAT to
 * apply, and flags of which only those set at creation (HAIRPIN, SNAT,
 * DSR, NODEPORT) are read after this; the state, deadline and the other
 * flags in *fwd may be older than ct's.
 */
static __always_inline int serve_flow(void *ctx, const int hook, struct sp_pkt *p,
				      struct sp_ct_hdr *ct, __u64 now, struct sp_stats *st,
				      struct sp_ct_entry *fwd)
{
	struct sp_ct_key k;

	/* XDP leaves SNAT flows to the uplink's TC program, untouched: after
	 * SNAT the source is one of this node's addresses, which the stack
	 * drops as a martian arriving from outside, so the packet must be
	 * sent on by bpf_redirect_neigh (TC), not handed to the stack. */
	if (hook == HOOK_XDP && (ct->flags & SP_CT_F_SNAT)) {
		SP_TRACE(SP_T_NOT_OURS, SP_TP_SNAT_TO_TC, 0, 0, 0, 0);
		STAT_INC(st, snat_to_tc);
		return SP_V_PASS;
	}
	STAT_INC(st, ct_fwd_hits);
	/* A DSR flow has no REV entry here to keep in step. */
	if (hook == HOOK_XDP && (ct->flags & SP_CT_F_DSR)) {
		ct_advance(ct, p, CT_ORIG, now, st);
		p->dsr = SP_PKT_DSR_FLOW | dsr_mode(ctx, p);
		return SP_CONTINUE;
	}
	if (ct_advance(ct, p, CT_ORIG, now, st)) {
		ct_rev_key(p, fwd, &k);
		if (!ct_sync(&k, ct)) {
			/* Evicted: without it every reply would leave with
			 * the backend's address. Made with the state as it
			 * is now. */
			STAT_INC(st, ct_partner_miss);
			SP_MONITOR(p, SP_MON_CT_LOST, 0, hook, ct->svc_id, ct->backend_id);
			fwd->h = *ct;
			ct_restore_rev(p, fwd, &k);
		}
	}
	return SP_CONTINUE;
}

/*
 * Apply a flow's FWD NAT to a client packet and send it on. ss and svc_id:
 * the Service port to count a failure against.
 */
static __always_inline int nat_forward(void *ctx, const int hook, struct sp_pkt *p,
				       const struct sp_ct_entry *fwd, __u64 now, struct sp_stats *st,
				       struct sp_svc_stats *ss, __u32 svc_id)
{
	int r;

	/* The frontend, for the option (sp_dsr_xdp), before the DNAT. */
	if (hook == HOOK_XDP && (p->dsr & SP_PKT_DSR_OPT) && !dsr_save_frontend(p)) {
		r = SP_R_DSR_FAILED;
		goto drop;
	}
	if (nat_addr(ctx, hook, p, true, &fwd->nat_addr) ||
	    nat_port(ctx, hook, p, true, fwd->nat_port)) {
		r = SP_R_NAT_FAILED;
		goto drop;
	}
	if ((fwd->flags & SP_CT_F_HAIRPIN) && nat_addr(ctx, hook, p, false, &fwd->nat_saddr)) {
		r = SP_R_NAT_FAILED;
		goto drop;
	}
	if ((fwd->flags & SP_CT_F_SNAT) && nat_port(ctx, hook, p, false, fwd->nat_sport)) {
		r = SP_R_NAT_FAILED;
		goto drop;
	}
	if (p->frag)
		frag_record(p, (fwd->flags & SP_CT_F_HAIRPIN) ? &fwd->nat_saddr : &p->saddr,
			    &fwd->nat_addr, now, frag_flags(fwd->flags));
	p->daddr = fwd->nat_addr;
	p->dport = fwd->nat_port;
	if (fwd->flags & SP_CT_F_HAIRPIN)
		p->saddr = fwd->nat_saddr;
	if (fwd->flags & SP_CT_F_SNAT)
		p->sport = fwd->nat_sport;
	if (hook == HOOK_XDP && (p->dsr & SP_PKT_DSR_OPT))
		return SP_V_DSR;
	return fwd_after_nat(ctx, hook, p, st);
drop:
	return svc_drop(p, hook, r, ss, svc_id);
}

/*
 * A packet to a Service frontend: reuse the flow's backend from conntrack,
 * or pick one with Maglev, then DNAT. Returns a verdict.
 */
static __always_inline int handle_service(void *ctx, const int hook, struct sp_pkt *p,
					  const struct sp_svc *svc, struct sp_stats *st)
{
	/* The uplink's TC program (sp_tc_uplink), after XDP. */
	const bool uplink_tc = is_tc(hook) && p->uplink;
	struct sp_svc_stats *ss;
	__u64 now = sp_now();
	struct sp_ct_entry fwd;
	struct sp_backend *be;
	struct sp_ct_hdr *ct;
	struct sp_aff_key ak;
	struct sp_svc *view;
	__u32 id;
	bool hit;
	int r;

	ct = ct_lookup_fwd(p, now, &fwd);
	/* A deleted Service's frontend (SP_SVC_F_GONE): its established TCP
	 * connections go on as under kube-proxy; nothing else is ours. Every
	 * packet served here is a hit below (a TCP non-SYN with an entry). */
	if ((svc->flags & SP_SVC_F_GONE) &&
	    (!ct || p->proto != IPPROTO_TCP || tcp_bare_syn(p))) {
		SP_TRACE(SP_T_NOT_OURS, SP_TP_GONE_NOT_FLOW, 0, 0, 0, 0);
		if (!uplink_tc) /* XDP counted it */
			STAT_INC(st, not_service);
		return SP_V_PASS;
	}
	/* loadBalancerSourceRanges: new flows only (lib/srcrange.h). */
	if (!ct && (svc->flags & SP_SVC_F_SRC_RANGES) && srcrange_denied(svc, p, st)) {
		SP_MONITOR(p, SP_MON_DROP, SP_R_SRC_RANGE_DENIED, hook, svc->svc_id, 0);
		return SP_V_DROP;
	}
	/* A NodePort is a port of the node's own addresses, which the host's
	 * own connections use too: a TCP packet of no flow of ours that does
	 * not open a connection (the SYN-ACK or data answering a host
	 * connection from a local port with a NodePort's number) is not ours. */
	if (!ct && (svc->flags & SP_SVC_F_NODEPORT) && p->proto == IPPROTO_TCP &&
	    !tcp_bare_syn(p)) {
		SP_TRACE(SP_T_NOT_OURS, SP_TP_NODEPORT_NOT_NEW, 0, 0, 0, 0);
		if (!uplink_tc) /* XDP counted it */
			STAT_INC(st, not_service);
		return SP_V_PASS;
	}
	/* A backend removed from the Service (or its id given to another
	 * address): a TCP connection already established on it keeps going
	 * to the address it has, as kube-proxy's conntrack keeps its DNAT
	 * (the pod may well still be running and answering; re-selecting
	 * would reset the connection). Only a new connection (a SYN) or UDP
	 * picks a backend again. Counted ct_backend_gone either way. */
	hit = ct && ct_backend_alive(&fwd);
	if (ct && !hit) {
		STAT_INC(st, ct_backend_gone);
		if (p->proto == IPPROTO_TCP && !tcp_bare_syn(p))
			hit = true;
		SP_TRACE(SP_T_BACKEND_GONE, hit, 0, ct->backend_id, 0, 0);
	}
	/* After XDP, only SNAT flows (and rejects) are the uplink TC's. */
	if (uplink_tc && hit && ct && !(ct->flags & SP_CT_F_SNAT)) {
		SP_TRACE(SP_T_NOT_OURS, SP_TP_NOT_TC_UPLINK, 0, 0, 0, 0);
		return SP_V_PASS;
	}
	/* An inside client of an externalTrafficPolicy: Local frontend gets
	 * every endpoint, as kube-proxy short-circuits pod and host traffic. */
	if (!hit && (svc->flags & SP_SVC_F_LOCAL_ONLY) && src_internal(p)) {
		view = svc_view_lookup(p, svc);
		if (view) {
			svc = view;
			SP_TRACE(SP_T_VIEW, 1, 0, svc->svc_id, svc->flags, svc->n);
			STAT_INC(st, local_short_circuit);
		}
	}
	/* XDP leaves the answer for an empty Service to TC (see lib/reject.h),
	 * which counts the packet: count it once. A Local policy's empty set
	 * is a plain drop, which XDP does itself. */
	if (!hit && svc->n == 0 && !is_tc(hook) && !(svc->flags & SP_SVC_F_DROP_EMPTY)) {
		SP_TRACE(SP_T_NOT_OURS, SP_TP_EMPTY_TO_TC, 0, 0, 0, 0);
		return SP_V_PASS;
	}
	ss = svc_stats_get(svc->svc_id);
	/* XDP counted the packets it left to the uplink's TC program for
	 * SNAT; the rejects it left uncounted (above). */
	if (!uplink_tc || !svc->n)
		svc_count_packet(ss, st, p);
	/* ct is tested again, not only hit: clang may otherwise reuse a
	 * register the verifier only knows as "maybe NULL". */
	if (hit && ct) {
		r = serve_flow(ctx, hook, p, ct, now, st, &fwd);
		if (r != SP_CONTINUE)
			return r;
		goto nat;
	}

	if (svc->n == 0) {
		/* kube-proxy drops (never rejects) for a Local policy without a
		 * local endpoint while the Service has endpoints elsewhere. */
		if (svc->flags & SP_SVC_F_DROP_EMPTY) {
			r = SP_R_NO_LOCAL_ENDPOINT;
			goto drop;
		}
		/* Unreachable from XDP (returned above), but the constant hook
		 * must keep the TC-only reject code out of the XDP program. */
		if (!is_tc(hook))
			return SP_V_PASS;
		/* As kube-proxy's REJECT, for new connections only: never an
		 * RST for an RST, nor for a mid-stream packet. */
		if (p->proto == IPPROTO_TCP && !tcp_bare_syn(p)) {
			r = SP_R_REJECT_NOT_NEW;
			goto drop;
		}
		if (!reject_allowed()) {
			r = SP_R_REJECT_RATE;
			goto drop;
		}
		reason_count(SP_R_NO_BACKEND, p->len);
		STAT_INC(st, rejects);
		if (ss)
			ss->rejects++;
		SP_TRACE(SP_T_REJECT, 0, 0, 0, 0, 0);
		SP_MONITOR(p, SP_MON_REJECT, SP_R_NO_BACKEND, hook, svc->svc_id, 0);
		return reject(ctx, hook, p);
	}

	/* Both ways of choosing rejoin with nothing live but id: the verifier
	 * can then prune the second path instead of walking the rest of the
	 * program twice (a ternary here doubled its states past the limit). */
	id = 0;
	if (svc->flags & SP_SVC_F_AFFINITY) {
		affinity_key(svc, p, &ak);
		id = sp_affinity_get(&ak, now);
		SP_TRACE(SP_T_AFFINITY, id != 0, 0, id, 0, 0);
	}
	if (!id) {
		r = maglev_pick(svc, flow_hash(p), &id);
		if (r)
			goto drop;
	}
	be = bpf_map_lookup_elem(&sp_backends, &id);
	if (!be || !be->family) {
		r = SP_R_BACKEND_MISS;
		goto drop;
	}
	SP_TRACE_ADDR(SP_T_BACKEND, 0, 0, id, be->flags, be->port, &be->addr);
	/* An outside client to a backend on another node: with --dsr, DSR
	 * (lib/dsr.h) if the packet can carry what it needs; else SNAT, in
	 * TC (see above). The uplink's TC program picks the same backend
	 * again (same hash, same table, or the affinity entry). */
	if (hook == HOOK_XDP && snat_needed(p, svc, be)) {
		if (cfg_dsr)
			p->dsr = dsr_mode(ctx, p);
		SP_TRACE(SP_T_SNAT, p->dsr ? SP_TSN_DSR : cfg_dsr ? SP_TSN_DSR_FALLBACK : SP_TSN_SNAT,
			 0, 0, 0, 0);
		if (!p->dsr) {
			if (cfg_dsr)
				STAT_INC(st, dsr_fallback_snat);
			STAT_INC(st, snat_to_tc);
			return SP_V_PASS;
		}
	}
	if (uplink_tc && !snat_needed(p, svc, be)) {
		SP_TRACE(SP_T_NOT_OURS, SP_TP_NOT_TC_UPLINK, 0, 0, 0, 0);
		return SP_V_PASS;
	}
	if (svc->flags & SP_SVC_F_AFFINITY) {
		sp_affinity_set(&ak, id, now, svc->affinity_timeout);
		SP_TRACE(SP_T_AFFINITY_SET, 0, 0, id, svc->affinity_timeout, 0);
	}

	__builtin_memset(&fwd, 0, sizeof(fwd));
	fwd.nat_addr = be->addr;
	fwd.nat_port = be->port;
	fwd.backend_id = id;
	fwd.svc_id = svc->svc_id;
	if (svc->flags & SP_SVC_F_NODEPORT)
		fwd.flags |= SP_CT_F_NODEPORT;
	if (hook == HOOK_XDP && p->dsr)
		fwd.flags |= SP_CT_F_DSR;
	/* SNAT (lib/snat.h): the node's address toward the backend; the
	 * port comes with the REV entry (ct_create).
	 * Hairpin: a client that is its own backend, a pod reaching itself or
	 * a host process reaching a Service whose endpoint is this host (TC
	 * egress; the packet then goes back in through lo, see tc_to_local).
	 * Either would take a packet from its own address arriving from
	 * outside for a martian; from the hairpin address, the reply is
	 * routed back out where we reverse-NAT it. */
	if (is_tc(hook) && snat_needed(p, svc, be)) {
		r = snat_source(ctx, p, &be->addr, &fwd.nat_saddr);
		if (r)
			goto drop;
		fwd.flags |= SP_CT_F_HAIRPIN | SP_CT_F_SNAT;
		SP_TRACE_ADDR(SP_T_SNAT, SP_TSN_SOURCE, 0, 0, 0, 0, &fwd.nat_saddr);
		STAT_INC(st, snat_flows);
	} else if (addr_eq(&be->addr, &p->saddr)) {
		fwd.flags |= SP_CT_F_HAIRPIN;
		hairpin_addr(p->family, &fwd.nat_saddr);
		SP_TRACE_ADDR(SP_T_HAIRPIN, 0, 0, 0, 0, 0, &fwd.nat_saddr);
		STAT_INC(st, hairpin);
	}
	r = ct_create(p, &fwd, now);
	SP_TRACE(SP_T_CT_CREATE, r, 0, 0, fwd.flags, fwd.nat_sport);
	if (r) {
		if (r == SP_R_CT_FULL)
			STAT_INC(st, ct_insert_fail);
		goto drop;
	}
	if (fwd.flags & SP_CT_F_UNREPLIED)
		STAT_INC(st, ct_adopted);
	if (fwd.flags & SP_CT_F_REMAP)
		STAT_INC(st, ct_clash_remapped);
	if (fwd.flags & SP_CT_F_DSR)
		STAT_INC(st, dsr_flows);
	STAT_INC(st, new_flows);
	if (ss)
		ss->new_flows++;
	SP_MONITOR(p, SP_MON_NEW_FLOW, 0, hook, svc->svc_id, id);

nat:
	return nat_forward(ctx, hook, p, &fwd, now, st, ss, svc->svc_id);
drop:
	return svc_drop(p, hook, r, ss, svc->svc_id);
}

/* A reply from a backend: restore the VIP as source (and the client as
 * destination for hairpin). SP_CONTINUE if it is not a reply we track. */
static __always_inline int handle_reply(void *ctx, const int hook, struct sp_pkt *p,
					struct sp_stats *st)
{
	struct sp_ct_entry rev;
	struct sp_ct_hdr *ct;
	struct sp_ct_key k;
	__u64 now;

	/* Most packets that reach here are no reply of ours (pod to pod,
	 * anything to no Service): a filter of the sources replies come
	 * from spares them the conntrack lookup (and the clock). */
	if (!ct_reply_src_maybe(p))
		return SP_CONTINUE;
	now = sp_now();
	ct = ct_lookup_rev(p, now, &rev);
	if (!ct)
		return SP_CONTINUE;
	/* The reply of an SNAT flow gets the frontend back as its source,
	 * which for a NodePort is one of this node's addresses: the stack
	 * would drop it as a martian. XDP leaves it to the uplink's TC
	 * program, which sends it on by bpf_redirect_neigh; that program
	 * handles nothing else here. */
	if (hook == HOOK_XDP && (ct->flags & SP_CT_F_SNAT)) {
		SP_TRACE(SP_T_NOT_OURS, SP_TP_SNAT_TO_TC, 0, 0, 0, 0);
		STAT_INC(st, snat_to_tc);
		return SP_V_PASS;
	}
	if (is_tc(hook) && p->uplink && !(ct->flags & SP_CT_F_SNAT))
		return SP_CONTINUE;
	/* A SYN on the tuple of a NATed flow on its way out belongs to a new
	 * connection reusing the client's port, straight to the backend: not
	 * a reply of ours. Forget the old entry instead of rewriting the new
	 * connection's SYN-ACK to come from the VIP (the client would reset
	 * it). A client reopening through the VIP replaced this entry with
	 * its SYN (ct_create), so our own SYN-ACKs never find it closing. */
	if (p->proto == IPPROTO_TCP && (p->tcp_flags & TCP_SYN) && ct_state_closing(ct->state)) {
		ct_key_of(p, SP_CT_REV, &k);
		ct_map_delete(&k);
		SP_TRACE(SP_T_NOT_OURS, SP_TP_REOPEN_REPLY, 0, 0, 0, 0);
		return SP_CONTINUE;
	}
	/* A DSR flow's REV entry (lib/dsr.h) has no FWD partner here. */
	if (ct_advance(ct, p, CT_REPLY, now, st) && !(ct->flags & SP_CT_F_DSR)) {
		ct_fwd_key(p, &rev, &k);
		if (!ct_sync(&k, ct)) {
			STAT_INC(st, ct_partner_miss);
			SP_MONITOR(p, SP_MON_CT_LOST, 0, hook, ct->svc_id, ct->backend_id);
		}
	}
	/* rev, the copy the lookup made, has the NAT: what ct_advance may
	 * have changed since (state, deadline, FIN and UNREPLIED flags) is
	 * not read below. */
	SP_TRACE_ADDR(SP_T_RNAT, 0, 0, 0, rev.flags, rev.nat_port, &rev.nat_addr);
	STAT_INC(st, ct_rev_hits);
	if (nat_addr(ctx, hook, p, false, &rev.nat_addr) ||
	    nat_port(ctx, hook, p, false, rev.nat_port))
		goto fail;
	if ((rev.flags & SP_CT_F_HAIRPIN) && nat_addr(ctx, hook, p, true, &rev.nat_saddr))
		goto fail;
	if ((rev.flags & SP_CT_F_SNAT) && nat_port(ctx, hook, p, true, rev.nat_sport))
		goto fail;
	if (p->frag)
		frag_record(p, &rev.nat_addr,
			    (rev.flags & SP_CT_F_HAIRPIN) ? &rev.nat_saddr : &p->daddr, now,
			    frag_flags(rev.flags));
	p->saddr = rev.nat_addr;
	p->sport = rev.nat_port;
	if (rev.flags & SP_CT_F_HAIRPIN)
		p->daddr = rev.nat_saddr;
	if (rev.flags & SP_CT_F_SNAT)
		p->dport = rev.nat_sport;
	return fwd_after_nat(ctx, hook, p, st);
fail:
	reason_count(SP_R_NAT_FAILED, p->len);
	return SP_V_DROP;
}

/*
 * Everything after parsing, shared by every hook: Service lookup, then
 * conntrack and NAT. Returns SP_V_* or a redirect helper's return value.
 */
static __always_inline int pipeline(void *ctx, const int hook, struct sp_pkt *p)
{
	struct sp_stats *st = stats_get(hook_slot(hook));
	struct sp_svc *svc;
	bool maybe;
	int ret;

	maybe = dst_maybe_frontend(p);
	/* Conntrack first for the packets of established TCP connections,
	 * most of a frontend's traffic: the Service lookup would only confirm
	 * what the entry says. The entry's svc_id must be live (sp_svc_live):
	 * then its frontend is there, or retained for this very flow
	 * (SP_SVC_F_GONE), and the Service path would serve the packet the
	 * same way (a TCP non-SYN with an entry is a hit whatever its
	 * backend). Else, and for the rest, the Service path. */
	if (!SP_DRY && maybe && p->proto == IPPROTO_TCP && !tcp_bare_syn(p)) {
		__u64 now = sp_now();
		struct sp_ct_entry fwd;
		struct sp_ct_hdr *ct = ct_lookup_fwd(p, now, &fwd);

		if (ct && ct_svc_live(ct->svc_id)) {
			struct sp_svc_stats *ss = svc_stats_get(ct->svc_id);

			if (!ct_backend_alive(&fwd)) {
				STAT_INC(st, ct_backend_gone);
				SP_TRACE(SP_T_BACKEND_GONE, 1, 0, ct->backend_id, 0, 0);
			}
			svc_count_packet(ss, st, p);
			ret = serve_flow(ctx, hook, p, ct, now, st, &fwd);
			if (ret != SP_CONTINUE)
				return ret;
			return nat_forward(ctx, hook, p, &fwd, now, st, ss, fwd.svc_id);
		}
	}
	svc = maybe ? svc_lookup(p) : NULL;
	/* A reply to a client whose address is a node address and whose port
	 * has a NodePort's number matches the NodePort too: the reply is
	 * checked first there. (A reply's destination is never a ClusterIP
	 * or an LB address, so the others need not pay the lookup.) */
	if (!svc || (svc->flags & SP_SVC_F_NODEPORT)) {
		ret = handle_reply(ctx, hook, p, st);
		if (ret != SP_CONTINUE)
			return ret;
	}
	if (svc)
		return handle_service(ctx, hook, p, svc, st);
	SP_TRACE(SP_T_NOT_OURS, SP_TP_NO_SERVICE, 0, 0, 0, 0);
	STAT_INC(st, not_service);
	return SP_V_PASS;
}

/*
 * The pipeline of each hook as a global (non-static, noinline) function.
 * The verifier checks a global function once, on its own, with every
 * field of *p unknown; inlined, it re-walked the whole pipeline for every
 * distinct header layout the parser let through (each IPv6
 * extension-header count, IPv4 with and without options), because the
 * offsets it rewrites at were known constants on each path: 710k of the
 * 1M instructions it allows for sp_xdp. Behind this call the offsets are
 * opaque, so every rewrite bounds them itself (lib/nat.h does).
 * Global functions take a NULL check on pointer arguments (the verifier
 * treats them as maybe-NULL memory).
 */
#define SP_DEFINE_GLOBAL(fn, body, ctx_type, hook)                                         \
	__noinline int fn(ctx_type *ctx, struct sp_pkt *p)                                 \
	{                                                                                  \
		if (!p)                                                                    \
			return SP_V_PASS;                                                  \
		return body(ctx, hook, p);                                                 \
	}

SP_DEFINE_GLOBAL(sp_pipeline_xdp, pipeline, struct xdp_md, HOOK_XDP)
SP_DEFINE_GLOBAL(sp_pipeline_tc_ingress, pipeline, struct __sk_buff, HOOK_TC_INGRESS)
SP_DEFINE_GLOBAL(sp_pipeline_tc_egress, pipeline, struct __sk_buff, HOOK_TC_EGRESS)

/* ICMP errors and later fragments: cold paths, a global function of their
 * own per hook, called from the entry point beside the pipeline rather
 * than from inside it (the stack of a call chain is limited to 512 bytes
 * in all). */
static __always_inline int icmp_path(void *ctx, const int hook, struct sp_pkt *p)
{
	struct sp_stats *st = stats_get(hook_slot(hook));
	int ret;

	if (p->frag == SP_FRAG_LATER)
		return handle_frag_later(ctx, hook, p, st);
	ret = handle_icmp_error(ctx, hook, p, st);
	if (ret != SP_CONTINUE)
		return ret;
	STAT_INC(st, not_service);
	return SP_V_PASS;
}

SP_DEFINE_GLOBAL(sp_icmp_xdp, icmp_path, struct xdp_md, HOOK_XDP)

/* --dsr (lib/dsr.h), XDP only, each a global function of its own called
 * from the entry point, beside the pipeline (the stack budget again):
 * sp_dsr_xdp inserts the option into a packet the pipeline DNATed
 * (SP_V_DSR); sp_dsr_in_xdp reads it on the backend's node, for the few
 * packets whose header length is the one an optioned packet has. */
static __always_inline int dsr_out(struct xdp_md *ctx, const int hook, struct sp_pkt *p)
{
	return dsr_insert(ctx, p, stats_get(SP_SLOT_XDP));
}

static __always_inline int dsr_in(struct xdp_md *ctx, const int hook, struct sp_pkt *p)
{
	return dsr_ingress(ctx, p, stats_get(SP_SLOT_XDP));
}

SP_DEFINE_GLOBAL(sp_dsr_xdp, dsr_out, struct xdp_md, HOOK_XDP)
SP_DEFINE_GLOBAL(sp_dsr_in_xdp, dsr_in, struct xdp_md, HOOK_XDP)

/* True if the parser found exactly the header length a DSR-optioned packet
 * has (IPv4 IHL 7; IPv6 one extension header of 24 bytes), after an
 * Ethernet header with or without VLAN tags. */
static __always_inline bool dsr_in_candidate(const struct sp_pkt *p)
{
	if (p->frag)
		return false;
	if (p->family == SP_FAMILY_V4)
		return p->l4_off - p->l3_off == sizeof(struct iphdr) + SP_DSR_OPT4_LEN;
	return p->l4_off - p->l3_off == sizeof(struct ipv6hdr) + SP_DSR_OPT6_LEN;
}
SP_DEFINE_GLOBAL(sp_icmp_tc_ingress, icmp_path, struct __sk_buff, HOOK_TC_INGRESS)
SP_DEFINE_GLOBAL(sp_icmp_tc_egress, icmp_path, struct __sk_buff, HOOK_TC_EGRESS)

/*
 * The parser, a global function per context type: checked once, and its
 * offsets (the L2 header's length varies with VLAN tags) reach the entry
 * point as numbers the verifier does not follow, which keeps the entry
 * point's frame small (the call chain shares 512 bytes of stack). slot:
 * the counters of parse events (enum sp_stats_slot), or SP_SLOTS for none
 * (the uplink's TC program: XDP counted them).
 */
__noinline int sp_parse_xdp(struct xdp_md *ctx, struct sp_pkt *p)
{
	if (!p)
		return SP_V_PASS;
	return parse_pkt(ctx, HOOK_XDP, p, stats_get(SP_SLOT_XDP));
}

__noinline int sp_parse_tc(struct __sk_buff *skb, struct sp_pkt *p, __u32 slot)
{
	if (!p)
		return SP_V_PASS;
	return parse_pkt(skb, HOOK_TC_INGRESS, p, slot < SP_SLOTS ? stats_get(slot) : NULL);
}

/* Parse, then hand over to the hook's pipeline. Returns SP_V_* or, when a
 * redirect helper was called, its return value. */
static __always_inline int process(void *ctx, const int hook)
{
	struct sp_stats *st = stats_get(hook_slot(hook));
	struct sp_pkt p;
	int ret;

	__builtin_memset(&p, 0, sizeof(p));
	SP_TRACE(SP_T_HOOK, hook, 0, 0, 0, 0);
	p.uplink = hook == HOOK_XDP;
	if (is_tc(hook))
		tc_pull_headers(ctx);
	STAT_INC(st, rx_packets);
	if (st)
		st->rx_bytes += ctx_len(ctx, hook);

	ret = hook == HOOK_XDP ? sp_parse_xdp(ctx, &p) : sp_parse_tc(ctx, &p, hook_slot(hook));
	if (ret == SP_V_NOT_OURS) {
		STAT_INC(st, not_service);
		return SP_V_PASS;
	}
	if (ret != SP_CONTINUE)
		return ret;
	if (p.icmp || p.frag == SP_FRAG_LATER) {
		if (hook == HOOK_XDP)
			return sp_icmp_xdp(ctx, &p);
		if (hook == HOOK_TC_INGRESS)
			return sp_icmp_tc_ingress(ctx, &p);
		return sp_icmp_tc_egress(ctx, &p);
	}
	if (hook == HOOK_XDP) {
		if (cfg_dsr && dsr_in_candidate(&p)) {
			ret = sp_dsr_in_xdp(ctx, &p);
			if (ret != SP_CONTINUE)
				return ret;
		}
		ret = sp_pipeline_xdp(ctx, &p);
		if (ret == SP_V_DSR)
			return sp_dsr_xdp(ctx, &p);
		return ret;
	}
	if (hook == HOOK_TC_INGRESS)
		return sp_pipeline_tc_ingress(ctx, &p);
	return sp_pipeline_tc_egress(ctx, &p);
}

static __always_inline int to_xdp(int v)
{
	if (v == SP_V_PASS)
		return XDP_PASS;
	if (v == SP_V_DROP)
		return XDP_DROP;
	return v; /* a bpf_redirect_map() result */
}

static __always_inline int to_tc(int v)
{
	if (v == SP_V_PASS)
		return TC_ACT_OK;
	if (v == SP_V_DROP)
		return TC_ACT_SHOT;
	return v; /* a bpf_redirect*() result */
}

SEC("xdp")
int sp_xdp(struct xdp_md *ctx)
{
	return to_xdp(process(ctx, HOOK_XDP));
}

SEC("tc")
int sp_tc_ingress(struct __sk_buff *skb)
{
	return to_tc(process(skb, HOOK_TC_INGRESS));
}

SEC("tc")
int sp_tc_egress(struct __sk_buff *skb)
{
	return to_tc(process(skb, HOOK_TC_EGRESS));
}

/*
 * sp_ct_reap: the conntrack collector's delete (user/ct_gc.c runs it with
 * BPF_PROG_TEST_RUN). Deletes each given entry only if its value is still
 * the one the collector read: the datapath may have replaced it with a new
 * flow on the same tuple since (a client reusing its port), and deleting
 * that would cut the new flow's replies off their reverse NAT. Done here,
 * the check and the delete are nanoseconds apart, not two syscalls.
 */
SEC("syscall")
int sp_ct_reap(struct sp_reap_args *a)
{
	__u32 i, n = a->n, deleted = 0;

	/* Unrolled: a context pointer may only be read at constant offsets
	 * (the verifier refuses a modified ctx pointer). */
#pragma clang loop unroll(full)
	for (i = 0; i < SP_REAP_BATCH; i++) {
		struct sp_ct_entry want, cur;
		struct sp_ct_key k;
		bool same;
		__u32 w;

		if (i >= n)
			break;
		k = a->items[i].key; /* helpers take no ctx pointer */
		want = a->items[i].val;
		same = ct_map_lookup(&k, &cur) != NULL;
		for (w = 0; same && w < sizeof(want) / 8; w++)
			same = ((__u64 *)&cur)[w] == ((__u64 *)&want)[w];
		if (same && !ct_map_delete(&k))
			deleted++;
	}
	a->deleted = deleted;
	return 0;
}

/*
 * Uplink TC ingress runs after sp_xdp has already NATed what it could. It
 * sees a packet still addressed to a frontend only where XDP left it on
 * purpose: the answer for a Service without endpoints (XDP cannot answer
 * on a veth) and SNAT flows (an external frontend: the packet leaves with
 * one of this node's addresses, so it is forwarded here with
 * bpf_redirect_neigh, never through the stack). Parse errors are counted
 * once, by XDP (quiet). Global for the same reason as the others.
 */
__noinline int sp_pipeline_tc_uplink(struct __sk_buff *skb, struct sp_pkt *p)
{
	struct sp_stats *st = stats_get(SP_SLOT_UPLINK_TC);
	struct sp_svc *svc;
	int ret;

	if (!p || p->icmp || p->frag == SP_FRAG_LATER)
		return SP_V_PASS;
	svc = dst_maybe_frontend(p) ? svc_lookup(p) : NULL;
	if (!svc || (svc->flags & SP_SVC_F_NODEPORT)) {
		ret = handle_reply(skb, HOOK_TC_INGRESS, p, st);
		if (ret != SP_CONTINUE)
			return ret;
	}
	if (!svc) {
		SP_TRACE(SP_T_NOT_OURS, SP_TP_NO_SERVICE, 0, 0, 0, 0);
		return SP_V_PASS;
	}
	if (svc->n && !(svc->flags & (SP_SVC_F_EXTERNAL | SP_SVC_F_NODEPORT | SP_SVC_F_LOCAL_ONLY))) {
		SP_TRACE(SP_T_NOT_OURS, SP_TP_NOT_TC_UPLINK, 0, 0, 0, 0);
		return SP_V_PASS;
	}
	return handle_service(skb, HOOK_TC_INGRESS, p, svc, st);
}

/* Later fragments of SNATed datagrams, which XDP leaves to the uplink's TC
 * program as the flows' other packets (their source becomes a local
 * address; lib/frag.h takes only those here). ICMP errors about SNAT flows
 * XDP translates itself (lib/icmp.h). */
__noinline int sp_frag_tc_uplink(struct __sk_buff *skb, struct sp_pkt *p)
{
	if (!p)
		return SP_V_PASS;
	return handle_frag_later(skb, HOOK_TC_INGRESS, p, stats_get(SP_SLOT_UPLINK_TC));
}

SEC("tc")
int sp_tc_uplink(struct __sk_buff *skb)
{
	struct sp_pkt p;
	int ret;

	SP_TRACE(SP_T_HOOK, SP_TH_TC_UPLINK, 0, 0, 0, 0);
	/* What XDP NATed for a pod on this node: delivered (lib/host_route.h). */
	if (cfg_host_routing) {
		ret = tc_host_route(skb);
		if (ret != SP_CONTINUE)
			return to_tc(ret);
	}
	__builtin_memset(&p, 0, sizeof(p));
	p.quiet = 1;
	p.uplink = 1;
	tc_pull_headers(skb);
	ret = sp_parse_tc(skb, &p, SP_SLOTS);
	if (ret != SP_CONTINUE)
		return TC_ACT_OK;
	if (p.frag == SP_FRAG_LATER)
		return to_tc(sp_frag_tc_uplink(skb, &p));
	return to_tc(sp_pipeline_tc_uplink(skb, &p));
}
