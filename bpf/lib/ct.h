/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Connection tracking: what keeps an established connection on its backend
 * while the Service's endpoints change, and what reverse-NATs its replies.
 *
 * A flow owns two entries in its family's LRU hash (sp_ct4 or sp_ct6, see
 * ct_map_*): FWD keyed by the client's tuple as it arrives (client ->
 * frontend), REV keyed by the reply as it arrives (backend -> client, or ->
 * the hairpin address).
 * They are one flow with one state: both are created together (and the
 * first removed if the second cannot be), and every packet that changes
 * the state or the flags, or moves the deadline by more than its slack
 * (ct_slack), writes both.
 * So a reply can never find its entry closed while the client's is open,
 * or expired while the client's lives (the cause of replies leaving with
 * the pod's address). Each entry holds what it needs to find the other:
 * FWD the backend and (hairpin) source; REV the frontend and the client.
 *
 * TCP states follow nf_conntrack's meaning of each timeout: SYN_SENT (our
 * NEW), ESTABLISHED, a FIN from one side (FIN_WAIT: half-closed), FINs from
 * both (TIME_WAIT), RST (CLOSE). A packet seen mid-stream with no entry is
 * adopted as ESTABLISHED but UNREPLIED, with the SYN timeout, until the
 * other side answers: a lone late ACK no longer creates a six-hour flow.
 */
#ifndef SP_LIB_CT_H
#define SP_LIB_CT_H

#include "common.h"
#include "maps.h"
#include "parse.h"
#include "stats.h"
#include "snat.h"

#define NSEC_PER_SEC 1000000000ULL
/* Timeouts (ns), set before load (--ct-timeout-*). Defaults: a connection
 * in setup or adopted unanswered gets a minute, an established one six
 * hours, half-closed and TIME_WAIT two minutes (nf_conntrack's FIN_WAIT
 * and TIME_WAIT), after a RST ten seconds (its CLOSE). */
const volatile __u64 cfg_ct_syn_ns = 60 * NSEC_PER_SEC;
const volatile __u64 cfg_ct_est_ns = 21600 * NSEC_PER_SEC;
const volatile __u64 cfg_ct_close_ns = 10 * NSEC_PER_SEC;
const volatile __u64 cfg_ct_fin_ns = 120 * NSEC_PER_SEC;
const volatile __u64 cfg_ct_udp_ns = 60 * NSEC_PER_SEC;

/* Which way a packet goes, relative to the flow's first packet. */
#define CT_ORIG 0
#define CT_REPLY 1

static __always_inline __u64 ct_timeout(__u8 proto, __u8 state, __u8 flags)
{
	if (proto != IPPROTO_TCP)
		return cfg_ct_udp_ns;
	if (state == SP_CT_ESTABLISHED)
		return (flags & SP_CT_F_UNREPLIED) ? cfg_ct_syn_ns : cfg_ct_est_ns;
	if (state == SP_CT_CLOSING)
		return cfg_ct_close_ns;
	if (state == SP_CT_FIN_WAIT || state == SP_CT_TIME_WAIT)
		return cfg_ct_fin_ns;
	return cfg_ct_syn_ns;
}

/* True once the connection is on its way out: a fresh SYN on its tuple is
 * a new connection (the client reuses its port), not a retransmission. */
static __always_inline bool ct_state_closing(__u8 state)
{
	return state == SP_CT_CLOSING || state == SP_CT_FIN_WAIT || state == SP_CT_TIME_WAIT;
}

/*
 * The state and flags a packet going dir moves the flow to. UDP has one
 * state; only the UNREPLIED flag changes. For TCP: RST closes; a FIN marks
 * its side, and both sides' FINs make TIME_WAIT; a closing flow stays
 * closing whatever else comes; a bare SYN is (re)starting; anything else
 * is established.
 */
static __always_inline void ct_next(const struct sp_pkt *p, __u8 dir, __u8 *state, __u8 *flags)
{
	__u8 tf = p->tcp_flags, fin;

	if (dir == CT_REPLY)
		*flags &= ~SP_CT_F_UNREPLIED;
	if (p->proto != IPPROTO_TCP)
		return;
	if (tf & TCP_RST) {
		*state = SP_CT_CLOSING;
		return;
	}
	if (tf & TCP_FIN) {
		*flags |= dir == CT_ORIG ? SP_CT_F_FIN_ORIG : SP_CT_F_FIN_REPLY;
		fin = *flags & (SP_CT_F_FIN_ORIG | SP_CT_F_FIN_REPLY);
		if (*state == SP_CT_CLOSING)
			return;
		*state = fin == (SP_CT_F_FIN_ORIG | SP_CT_F_FIN_REPLY) ? SP_CT_TIME_WAIT :
									   SP_CT_FIN_WAIT;
		return;
	}
	if (ct_state_closing(*state))
		return;
	if ((tf & (TCP_SYN | TCP_ACK)) == TCP_SYN)
		*state = SP_CT_NEW;
	else
		*state = SP_CT_ESTABLISHED;
}

_Static_assert(sizeof(struct sp_ct_hdr) == 24, "conntrack value header");
_Static_assert(sizeof(struct sp_ct4_val) == 32, "sp_ct4's value");
_Static_assert(sizeof(struct sp_ct_entry) == 56, "sp_ct6's value");

/* True once entry h's deadline has passed at now (ns). */
static __always_inline bool ct_expired(const struct sp_ct_hdr *h, __u64 now)
{
	return sp_ct_time_after(sp_ct_time(now), h->expires);
}

/* Whole seconds left until h's deadline (trace only). */
static __always_inline __u32 ct_secs_left(const struct sp_ct_hdr *h, __u64 now)
{
	return (__u32)(((__u64)(h->expires - sp_ct_time(now)) << SP_CT_TIME_SHIFT) / NSEC_PER_SEC);
}

/* An sp_ct4 value in the datapath's form. */
static __always_inline void ct4_widen(const struct sp_ct4_val *v, struct sp_ct_entry *e)
{
	e->h = v->h;
	e->nat_addr.addr[0] = v->nat_addr;
	e->nat_addr.addr[1] = 0;
	e->nat_addr.addr[2] = 0;
	e->nat_addr.addr[3] = 0;
	e->nat_saddr.addr[0] = v->nat_saddr;
	e->nat_saddr.addr[1] = 0;
	e->nat_saddr.addr[2] = 0;
	e->nat_saddr.addr[3] = 0;
}

/*
 * The tables of a flow's family. The pipeline builds struct sp_ct_key and
 * struct sp_ct_entry for both families; an IPv4 flow's are narrowed here,
 * at the map, to sp_ct4's 16-byte key and 32-byte value, so that an IPv4
 * flow takes 224 bytes of kernel memory rather than 336, and the hash and
 * compare of every lookup cover 16 bytes, not 40. The hot lookups
 * (ct_lookup_fwd, ct_lookup_rev) build the narrow key straight from the
 * packet instead.
 *
 * A lookup returns the entry's header (struct sp_ct_hdr, first in both
 * values), which the caller may update in place, and copies the whole
 * entry into *e in the datapath's form (when e is not NULL). The copy is
 * made here, in the branch that knows the table: the verifier knows each
 * map value's size, and code reading an address of one family from the
 * other's value, on any path, would not load. Addresses are never
 * updated in place.
 */
static __always_inline struct sp_ct_hdr *ct_map_lookup(const struct sp_ct_key *k,
							struct sp_ct_entry *e)
{
	struct sp_ct4_val *v4;
	struct sp_ct_entry *v6;
	struct sp_ct4_key k4;

	if (k->family != SP_FAMILY_V4) {
		v6 = bpf_map_lookup_elem(&sp_ct6, k);
		if (!v6)
			return NULL;
		if (e)
			*e = *v6;
		return &v6->h;
	}
	sp_ct4_key_narrow(k, &k4);
	v4 = bpf_map_lookup_elem(&sp_ct4, &k4);
	if (!v4)
		return NULL;
	if (e)
		ct4_widen(v4, e);
	return &v4->h;
}

/* Per-CPU room (sp_scratch) for a new flow's REV value being built, for
 * the entry found where it goes, and for an IPv4 key and value being
 * narrowed for their table: the pipeline's stack frame is at its limit (512 bytes over
 * the call chain). NULL only if the map lookup fails. */
struct ct_scratch {
	struct sp_ct_entry rev;
	struct sp_ct_entry old;
	struct sp_ct4_val v4;
	struct sp_ct4_key k4;
};
_Static_assert(sizeof(struct ct_scratch) <= sizeof(struct sp_scratch), "sp_scratch too small");

static __always_inline struct ct_scratch *ct_scratch(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&sp_scratch, &zero);
}

/* Insert or replace (flags as bpf_map_update_elem) the entry at k. e may
 * be in the scratch area, but not its v4. */
static __always_inline long ct_map_update(const struct sp_ct_key *k, const struct sp_ct_entry *e,
					  __u64 flags)
{
	struct ct_scratch *scr;

	if (k->family != SP_FAMILY_V4)
		return bpf_map_update_elem(&sp_ct6, k, e, flags);
	scr = ct_scratch();
	if (!scr)
		return -1;
	sp_ct4_key_narrow(k, &scr->k4);
	scr->v4.h = e->h;
	scr->v4.nat_addr = e->nat_addr.addr[0];
	scr->v4.nat_saddr = e->nat_saddr.addr[0];
	return bpf_map_update_elem(&sp_ct4, &scr->k4, &scr->v4, flags);
}

static __always_inline long ct_map_delete(const struct sp_ct_key *k)
{
	struct sp_ct4_key k4;

	if (k->family != SP_FAMILY_V4)
		return bpf_map_delete_elem(&sp_ct6, k);
	sp_ct4_key_narrow(k, &k4);
	return bpf_map_delete_elem(&sp_ct4, &k4);
}

static __always_inline void ct_key_of(const struct sp_pkt *p, __u8 dir, struct sp_ct_key *k)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->saddr = p->saddr;
	k->daddr = p->daddr;
	k->sport = p->sport;
	k->dport = p->dport;
	k->proto = p->proto;
	k->family = p->family;
	k->dir = dir;
}

/* The entry of p's own tuple in direction dir, keyed for its family
 * without building the wide key first; as ct_map_lookup otherwise. */
static __always_inline struct sp_ct_hdr *ct_lookup_tuple(const struct sp_pkt *p, __u8 dir,
							 struct sp_ct_entry *e)
{
	struct sp_ct_entry *v6;
	struct sp_ct4_val *v4;
	struct sp_ct_key k;

	if (p->family == SP_FAMILY_V4) {
		struct sp_ct4_key k4 = {
			.saddr = p->saddr.addr[0],
			.daddr = p->daddr.addr[0],
			.sport = p->sport,
			.dport = p->dport,
			.proto = p->proto,
			.dir = dir,
		};

		v4 = bpf_map_lookup_elem(&sp_ct4, &k4);
		if (!v4)
			return NULL;
		ct4_widen(v4, e);
		return &v4->h;
	}
	ct_key_of(p, dir, &k);
	v6 = bpf_map_lookup_elem(&sp_ct6, &k);
	if (!v6)
		return NULL;
	*e = *v6;
	return &v6->h;
}

/* The key of p's tuple reversed (the answer's tuple), in direction dir. */
static __always_inline void ct_key_reversed(const struct sp_pkt *p, __u8 dir, struct sp_ct_key *k)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->saddr = p->daddr;
	k->daddr = p->saddr;
	k->sport = p->dport;
	k->dport = p->sport;
	k->proto = p->proto;
	k->family = p->family;
	k->dir = dir;
}

/* The REV key of a flow, from its FWD value and a client packet. */
static __always_inline void ct_rev_key(const struct sp_pkt *p, const struct sp_ct_entry *fwd,
				       struct sp_ct_key *k)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->saddr = fwd->nat_addr;
	k->daddr = (fwd->flags & SP_CT_F_HAIRPIN) ? fwd->nat_saddr : p->saddr;
	k->sport = fwd->nat_port;
	k->dport = (fwd->flags & SP_CT_F_SNAT) ? fwd->nat_sport : p->sport;
	k->proto = p->proto;
	k->family = p->family;
	k->dir = SP_CT_REV;
}

/* The FWD key of a flow, from its REV value (which keeps the client's
 * address and port for exactly this) and a reply packet. */
static __always_inline void ct_fwd_key(const struct sp_pkt *p, const struct sp_ct_entry *rev,
				       struct sp_ct_key *k)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->saddr = rev->nat_saddr;
	k->daddr = rev->nat_addr;
	k->sport = rev->nat_sport;
	k->dport = rev->nat_port;
	k->proto = p->proto;
	k->family = p->family;
	k->dir = SP_CT_FWD;
}

/*
 * Record the source address of REV key k in sp_reply_srcs (bpf/maps.h),
 * before the entry goes in: a reply that finds the entry must find its
 * source too, on any CPU. Tested first: a push sets its bits with atomic
 * writes whether or not they are set already, and almost every new flow
 * goes to a backend some earlier flow went to, so the push would dirty the
 * same cache lines from every CPU opening flows. The dry run records
 * nothing.
 */
static __always_inline void ct_reply_src_add(const struct sp_ct_key *k)
{
	if (!SP_DRY && bpf_map_peek_elem(&sp_reply_srcs, (void *)&k->saddr) != 0)
		bpf_map_push_elem(&sp_reply_srcs, &k->saddr, BPF_ANY);
}

/*
 * False only if no REV entry can be keyed by p's source address: then p is
 * no reply of ours and the conntrack lookup is skipped. The address alone
 * (not the port too) because it is the one field of the filter's datum
 * that struct sp_pkt already holds in one piece: a copy with the port
 * took sp_tc_ingress's call chain past its 512 bytes of stack, and a
 * copy through the per-CPU scratch area cost more than the filter saved.
 * The dry run, which may observe a daemon from before sp_reply_srcs
 * (user/trace.c), looks.
 */
static __always_inline bool ct_reply_src_maybe(const struct sp_pkt *p)
{
	if (SP_DRY)
		return true;
	return bpf_map_peek_elem(&sp_reply_srcs, (void *)&p->saddr) == 0;
}


/* The REV value of a flow, from its FWD value and a client packet. */
static __always_inline void ct_rev_val(const struct sp_pkt *p, const struct sp_ct_entry *fwd,
				       struct sp_ct_entry *rev)
{
	__builtin_memset(rev, 0, sizeof(*rev));
	rev->nat_addr = p->daddr; /* the frontend */
	rev->nat_port = p->dport;
	rev->nat_saddr = p->saddr; /* the client: FWD key, and hairpin's destination */
	rev->nat_sport = p->sport;
	rev->backend_id = fwd->backend_id;
	rev->svc_id = fwd->svc_id;
	rev->flags = fwd->flags;
	rev->state = fwd->state;
	rev->expires = fwd->expires;
	rev->created = fwd->created;
}

/*
 * The sequence sanity check on FIN and RST (nf_conntrack checks every
 * packet against the window; we check the two that end a flow). Each entry
 * keeps where the sender of its direction was last seen (seq_hint, in
 * units of 128 KiB), rewritten only when the sender has moved on by 8 MiB,
 * so a busy flow writes it once per 8 MiB, not per packet. A FIN or RST
 * more than 32 MiB from it, either way, does not move the state: a
 * sender's own FIN or RST carries its next sequence number (ahead of the
 * hint by less than 8 MiB), and an RST answering a packet carries that
 * packet's acknowledgement (behind the receiver's position by what is in
 * flight, well under 32 MiB for Linux's default buffers). A stale RST (an
 * earlier connection on the same ports) or a blind one is random: 1 in 64
 * passes. Ignoring one keeps the flow ESTABLISHED (and its SNAT port); the
 * packet itself goes on, NATed, and the endpoint decides (RFC 5961).
 */
#define SP_CT_SEQ_MOVE 64 /* 8 MiB, in seq_hint units */
#define SP_CT_SEQ_SLACK 256 /* 32 MiB */

static __always_inline __u16 ct_seq_unit(const struct sp_pkt *p)
{
	return (__u16)(bpf_ntohl(p->tcp_seq) >> SP_CT_SEQ_SHIFT);
}

/* Record p's sequence number in v when none is or p is 8 MiB ahead.
 * Returns false if p is a FIN or RST too far from the record to count. */
static __always_inline bool ct_seq_check(struct sp_ct_hdr *v, const struct sp_pkt *p)
{
	__u16 cur = ct_seq_unit(p), d;
	__s16 dist;

	if (p->proto != IPPROTO_TCP)
		return true;
	if (!(v->seq_hint & SP_CT_SEQ_KNOWN)) {
		if (!SP_DRY) /* the entry stays as it is (lib/trace.h) */
			v->seq_hint = SP_CT_SEQ_KNOWN | cur;
		return true;
	}
	/* The distance in 15-bit sequence arithmetic, signed. */
	d = (cur - v->seq_hint) & SP_CT_SEQ_MASK;
	dist = d >= 0x4000 ? (__s16)(d - 0x8000) : (__s16)d;
	if ((p->tcp_flags & (TCP_FIN | TCP_RST)) && (dist > SP_CT_SEQ_SLACK || dist < -SP_CT_SEQ_SLACK))
		return false;
	if (dist > SP_CT_SEQ_MOVE && !SP_DRY)
		v->seq_hint = SP_CT_SEQ_KNOWN | cur;
	return true;
}

/*
 * How far behind the packets a flow's stored deadline may fall before a
 * packet moves it: a 256th of the timeout, and at least a second. Moving
 * it writes both entries (ct_sync), and looking up the other entry is, in
 * a table of a million flows, two more cache and TLB misses: with a flat
 * second, every flow that saw a packet a second ago paid them again
 * (bench_pkt estmany at 1M flows: 403 ns per packet in its first run, 697
 * once a second had gone by). An established flow (6 h) now moves its
 * deadline once in 84 s, and may expire that much early; one on a
 * 60-second timeout (setup, UDP), a quarter of a second.
 */
static __always_inline __u64 ct_slack(__u64 timeout)
{
	__u64 s = timeout >> 8;

	return s > NSEC_PER_SEC ? s : NSEC_PER_SEC;
}

/*
 * Apply packet p (going dir) to entry v. Returns true when the state, the
 * flags or the deadline changed (the deadline only by more than its slack,
 * so a busy flow does not dirty its cache lines on every packet): the
 * caller then copies them to the flow's other entry with ct_sync().
 */
static __always_inline bool ct_advance(struct sp_ct_hdr *v, const struct sp_pkt *p, __u8 dir,
				       __u64 now, struct sp_stats *stats)
{
	__u8 st = v->state, fl = v->flags;
	__u32 exp;
	__u64 t;

	if (!ct_seq_check(v, p)) {
		SP_TRACE(SP_T_CT_SEQ_IGNORED, 0, 0, 0, 0, 0);
		STAT_INC(stats, ct_seq_ignored);
		return false;
	}
	ct_next(p, dir, &st, &fl);
	/* A DSR flow's FWD entry (the node the client reached) never sees a
	 * reply: a client ACK after the entry's first packet is the only
	 * sign that the other side answered. (Not the first packet itself:
	 * a lone late ACK stays on the short timeout, as any adopted flow.) */
	if ((fl & SP_CT_F_DSR) && dir == CT_ORIG && p->proto == IPPROTO_TCP &&
	    (p->tcp_flags & TCP_ACK))
		fl &= ~SP_CT_F_UNREPLIED;
	t = ct_timeout(p->proto, st, fl);
	exp = sp_ct_time(now + t);
	SP_TRACE(SP_T_CT_NEXT, 0, st, 0, fl, 0);
	if (st == v->state && fl == v->flags &&
	    (__s32)(exp - v->expires) <= (__s32)sp_ct_time(ct_slack(t)))
		return false;
	if (SP_DRY) /* the entry stays as it is (lib/trace.h) */
		return true;
	v->state = st;
	v->flags = fl;
	v->expires = exp;
	return true;
}

/* Copy v's state, flags and deadline to the entry at *other. Returns false
 * if that entry is missing. */
static __always_inline bool ct_sync(const struct sp_ct_key *other, const struct sp_ct_hdr *v)
{
	struct sp_ct_hdr *o = ct_map_lookup(other, NULL);

	if (!o)
		return false;
	if (SP_DRY)
		return true;
	o->state = v->state;
	o->flags = v->flags;
	o->expires = v->expires;
	return true;
}

/*
 * Look up the FWD entry of a client packet. Returns it only if it is alive
 * and may be reused: not expired, and not a connection on its way out
 * being reopened with a fresh SYN on the same tuple (that is a new flow).
 * *e: the entry, as ct_map_lookup.
 */
static __always_inline struct sp_ct_hdr *ct_lookup_fwd(const struct sp_pkt *p, __u64 now,
						       struct sp_ct_entry *e)
{
	struct sp_ct_hdr *v = ct_lookup_tuple(p, SP_CT_FWD, e);

	if (!v) {
		SP_TRACE(SP_T_CT_FWD, SP_TCT_MISS, 0, 0, 0, 0);
		return NULL;
	}
	if (ct_expired(v, now)) {
		SP_TRACE_ADDR(SP_T_CT_FWD, SP_TCT_EXPIRED, v->state, v->backend_id, v->flags, 0,
			      &e->nat_addr);
		return NULL;
	}
	if (ct_state_closing(v->state) && p->proto == IPPROTO_TCP &&
	    (p->tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN) {
		SP_TRACE_ADDR(SP_T_CT_FWD, SP_TCT_REOPEN, v->state, v->backend_id, v->flags, 0,
			      &e->nat_addr);
		return NULL;
	}
	SP_TRACE_ADDR(SP_T_CT_FWD, SP_TCT_HIT, v->state, v->backend_id, v->flags,
		      ct_secs_left(v, now), &e->nat_addr);
	return v;
}

/* REV entry of a packet that may be a reply, or NULL; *e as above. */
static __always_inline struct sp_ct_hdr *ct_lookup_rev(const struct sp_pkt *p, __u64 now,
						       struct sp_ct_entry *e)
{
	struct sp_ct_hdr *v = ct_lookup_tuple(p, SP_CT_REV, e);

	if (!v || ct_expired(v, now)) {
		SP_TRACE(SP_T_CT_REV, v ? SP_TCT_EXPIRED : SP_TCT_MISS, 0, 0, 0, 0);
		return NULL;
	}
	SP_TRACE_ADDR(SP_T_CT_REV, SP_TCT_HIT, v->state, v->svc_id, v->flags,
		      ct_secs_left(v, now), &e->nat_addr);
	return v;
}

/* True if REV entry r (found at a new flow's reply key) may be replaced:
 * it is dead, on its way out, or it is this very flow's. */
static __always_inline bool ct_rev_replaceable(const struct sp_ct_entry *r, const struct sp_pkt *p,
					       __u64 now)
{
	if (ct_expired(&r->h, now) || r->state == SP_CT_CLOSING || r->state == SP_CT_TIME_WAIT)
		return true;
	return addr_eq(&r->nat_addr, &p->daddr) && r->nat_port == p->dport &&
	       addr_eq(&r->nat_saddr, &p->saddr) && r->nat_sport == p->sport;
}

/*
 * The REV entry of a new SNAT flow: claim the first free port of
 * SP_SNAT_TRIES ports of --snat-ports, probed at random, recording it in
 * fwd. A port is free if nothing holds it, or a flow that is dead or on its
 * way out (RST, or FINs both ways: ct_rev_replaceable's rule for any reply
 * tuple). Without the latter every closed connection kept its port for
 * --ct-timeout-fin (120 s), and a backend took at most 4,536 / 120 = 38 new
 * connections a second through one node (make bench part 8 ran out). BPF_NOEXIST makes the claim atomic
 * against another CPU picking the same port. Returns 0 or
 * SP_R_SNAT_EXHAUSTED.
 */
/* A global function (verified once, on its own, whatever state its
 * callers are in): its loop of map updates, walked inline SP_SNAT_TRIES
 * times for every path into it, took sp_tc_uplink past the verifier budget
 * of test_bpf_verifier. Its frame is small: the pipeline's is near the
 * 512-byte limit of the call chain. Pointer arguments of a global function
 * may be NULL to the verifier. */
__noinline int sp_ct_claim_snat(struct sp_ct_entry *fwd, struct sp_ct_key *rk,
				const struct sp_ct_entry *rev, __u64 now)
{
	__u32 i, r = bpf_get_prandom_u32();
	struct sp_ct_hdr *old;

	if (!fwd || !rk || !rev)
		return SP_R_SNAT_EXHAUSTED;
	for (i = 0; i < SP_SNAT_TRIES; i++) {
		rk->dport = snat_port(r, i);
		if (!ct_map_update(rk, rev, BPF_NOEXIST))
			goto claimed;
		old = ct_map_lookup(rk, NULL);
		if (old &&
		    (ct_expired(old, now) || old->state == SP_CT_CLOSING ||
		     old->state == SP_CT_TIME_WAIT) &&
		    !ct_map_update(rk, rev, BPF_ANY))
			goto claimed;
	}
	return SP_R_SNAT_EXHAUSTED;
claimed:
	fwd->nat_sport = rk->dport;
	return 0;
}

/*
 * Create both entries of a new flow (a DSR flow: its FWD entry only). fwd
 * holds the NAT decision already.
 * The REV entry is inserted only where no other live flow owns the reply
 * tuple: two frontends sharing a backend, reached from one client port,
 * would otherwise share one REV entry, and the first flow's replies would
 * leave from the second frontend's address: the second gets another
 * source port instead (SP_CT_F_REMAP). Returns 0, or an enum
 * sp_reason (SP_R_CT_FULL, SP_R_CT_CLASH, SP_R_SNAT_EXHAUSTED) with
 * nothing left behind.
 */
static __always_inline int ct_create(const struct sp_pkt *p, struct sp_ct_entry *fwd, __u64 now)
{
	struct ct_scratch *scr = ct_scratch();
	struct sp_ct_entry *rev;
	struct sp_ct_key k, rk;
	int r;

	if (!scr)
		return SP_R_CT_FULL;
	rev = &scr->rev;
	fwd->state = SP_CT_NEW;
	if (p->proto == IPPROTO_TCP && (p->tcp_flags & (TCP_SYN | TCP_ACK)) != TCP_SYN) {
		/* Mid-stream: an entry lost, or a flow older than svcplane.
		 * Established, but on the short timeout until answered. */
		fwd->flags |= SP_CT_F_UNREPLIED;
	}
	ct_next(p, CT_ORIG, &fwd->state, &fwd->flags);
	fwd->expires = sp_ct_time(now + ct_timeout(p->proto, fwd->state, fwd->flags));
	fwd->created = sp_ct_time(now);
	fwd->seq_hint = p->proto == IPPROTO_TCP ? SP_CT_SEQ_KNOWN | ct_seq_unit(p) : 0;

	/* DSR: the replies go from the backend's node straight to the
	 * client, never through this node: the FWD entry alone (lib/dsr.h). */
	if (fwd->flags & SP_CT_F_DSR) {
		ct_key_of(p, SP_CT_FWD, &k);
		return ct_map_update(&k, fwd, BPF_ANY) ? SP_R_CT_FULL : 0;
	}
	ct_rev_key(p, fwd, &rk);
	ct_rev_val(p, fwd, rev);
	/* Every REV key below (a remapped or SNATed one too) has the
	 * backend as its source. */
	ct_reply_src_add(&rk);
	/* The reply tuple, claimed atomically where nothing holds it (the
	 * common case: one hash walk, not a lookup and then an update); an
	 * entry there is read only when the claim finds one. */
	if (!(fwd->flags & SP_CT_F_SNAT) && ct_map_update(&rk, rev, BPF_NOEXIST)) {
		if (ct_map_lookup(&rk, &scr->old) && !ct_rev_replaceable(&scr->old, p, now)) {
			/* Another live flow owns the reply tuple (one client
			 * port to two frontends sharing a backend). As nf_nat
			 * does, this flow gets another source port (the
			 * client's address stays): an SNAT to the client's own
			 * address and a port of --snat-ports. */
			fwd->flags |= SP_CT_F_HAIRPIN | SP_CT_F_SNAT | SP_CT_F_REMAP;
			fwd->nat_saddr = p->saddr;
			ct_rev_key(p, fwd, &rk);
			ct_rev_val(p, fwd, rev);
		} else if (ct_map_update(&rk, rev, BPF_ANY)) {
			return SP_R_CT_FULL;
		}
	}
	if (fwd->flags & SP_CT_F_SNAT) {
		/* The port is the REV entry's: claimed here. */
		r = sp_ct_claim_snat(fwd, &rk, rev, now);
		if (r)
			return (fwd->flags & SP_CT_F_REMAP) ? SP_R_CT_CLASH : r;
	}
	/* The REV entry is in; the FWD entry goes in after it, or neither. */
	ct_key_of(p, SP_CT_FWD, &k);
	if (ct_map_update(&k, fwd, BPF_ANY)) {
		ct_map_delete(&rk);
		return SP_R_CT_FULL;
	}
	return 0;
}

/* Recreate, at rk (its ct_rev_key), the REV entry of a live flow whose REV
 * entry went missing. */
static __always_inline void ct_restore_rev(const struct sp_pkt *p, const struct sp_ct_entry *fwd,
					   const struct sp_ct_key *rk)
{
	struct ct_scratch *scr = ct_scratch();

	if (!scr)
		return;
	ct_rev_val(p, fwd, &scr->rev);
	ct_reply_src_add(rk);
	ct_map_update(rk, &scr->rev, BPF_NOEXIST);
}

#endif /* SP_LIB_CT_H */
