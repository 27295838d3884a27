/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Connection tracking: what keeps an established connection on its backend
 * while the Service's endpoints change, and what reverse-NATs its replies.
 * See struct sp_ct_key in include/svcplane.h for the two entries per flow.
 */
#ifndef SP_LIB_CT_H
#define SP_LIB_CT_H

#include "common.h"
#include "maps.h"
#include "parse.h"

#define NSEC_PER_SEC 1000000000ULL
/* Timeouts (ns), set before load (--ct-timeout-*). Defaults follow the
 * kernel's nf_conntrack and Cilium: a connection in setup gets a minute,
 * an established one six hours, a closing one ten seconds. */
const volatile __u64 cfg_ct_syn_ns = 60 * NSEC_PER_SEC;
const volatile __u64 cfg_ct_est_ns = 21600 * NSEC_PER_SEC;
const volatile __u64 cfg_ct_close_ns = 10 * NSEC_PER_SEC;
const volatile __u64 cfg_ct_udp_ns = 60 * NSEC_PER_SEC;

static __always_inline __u64 ct_timeout(__u8 proto, __u8 state)
{
	if (proto != IPPROTO_TCP)
		return cfg_ct_udp_ns;
	if (state == SP_CT_ESTABLISHED)
		return cfg_ct_est_ns;
	if (state == SP_CT_CLOSING)
		return cfg_ct_close_ns;
	return cfg_ct_syn_ns;
}

/* The state a packet moves an entry to. TCP only; UDP stays NEW. */
static __always_inline __u8 ct_next_state(const struct sp_pkt *p, __u8 cur)
{
	if (p->proto != IPPROTO_TCP)
		return SP_CT_NEW;
	if (p->tcp_flags & (TCP_RST | TCP_FIN))
		return SP_CT_CLOSING;
	if (cur == SP_CT_CLOSING)
		return SP_CT_CLOSING;
	if ((p->tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN)
		return SP_CT_NEW;
	return SP_CT_ESTABLISHED;
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

/*
 * Refresh an entry on a hit. Writes only when the state changes or the
 * deadline moved by more than a second, so a busy flow does not dirty its
 * cache line on every packet.
 */
static __always_inline void ct_touch(struct sp_ct_val *v, const struct sp_pkt *p, __u64 now)
{
	__u8 st = ct_next_state(p, v->state);
	__u64 exp = now + ct_timeout(p->proto, st);

	if (st != v->state || exp > v->expires + NSEC_PER_SEC) {
		v->state = st;
		v->expires = exp;
	}
}

/*
 * Look up the FWD entry of a client packet. Returns it only if it is alive
 * and may be reused: not expired, and not a closed connection being
 * reopened with a fresh SYN on the same tuple.
 */
static __always_inline struct sp_ct_val *ct_lookup_fwd(const struct sp_pkt *p, __u64 now)
{
	struct sp_ct_key k;
	struct sp_ct_val *v;

	ct_key_of(p, SP_CT_FWD, &k);
	v = bpf_map_lookup_elem(&sp_ct, &k);
	if (!v)
		return NULL;
	if (now > v->expires)
		return NULL;
	if (v->state == SP_CT_CLOSING && (p->tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN)
		return NULL;
	return v;
}

/* REV entry of a packet that may be a reply, or NULL. */
static __always_inline struct sp_ct_val *ct_lookup_rev(const struct sp_pkt *p, __u64 now)
{
	struct sp_ct_key k;
	struct sp_ct_val *v;

	ct_key_of(p, SP_CT_REV, &k);
	v = bpf_map_lookup_elem(&sp_ct, &k);
	if (!v || now > v->expires)
		return NULL;
	return v;
}

/*
 * Create both entries of a new flow. fwd holds the NAT decision already.
 * Returns 0 or -1 when the map refused the insert.
 */
static __always_inline int ct_create(const struct sp_pkt *p, struct sp_ct_val *fwd,
				     const struct sp_addr *reply_daddr, __u64 now)
{
	struct sp_ct_key k;
	struct sp_ct_val rev;

	fwd->state = ct_next_state(p, SP_CT_NEW);
	/* A mid-stream packet with no entry (an entry evicted, or a flow that
	 * began before svcplane) is adopted as established. */
	fwd->expires = now + ct_timeout(p->proto, fwd->state);
	fwd->created = now;
	ct_key_of(p, SP_CT_FWD, &k);
	if (bpf_map_update_elem(&sp_ct, &k, fwd, BPF_ANY))
		return -1;

	__builtin_memset(&rev, 0, sizeof(rev));
	rev.nat_addr = p->daddr; /* the VIP */
	rev.nat_port = p->dport;
	rev.nat_saddr = p->saddr; /* the client, for hairpin */
	rev.nat_sport = p->sport;
	rev.backend_id = fwd->backend_id;
	rev.svc_id = fwd->svc_id;
	rev.flags = fwd->flags;
	rev.state = fwd->state;
	rev.expires = fwd->expires;
	rev.created = now;

	__builtin_memset(&k, 0, sizeof(k));
	k.saddr = fwd->nat_addr;
	k.daddr = *reply_daddr;
	k.sport = fwd->nat_port;
	k.dport = p->sport;
	k.proto = p->proto;
	k.family = p->family;
	k.dir = SP_CT_REV;
	if (bpf_map_update_elem(&sp_ct, &k, &rev, BPF_ANY)) {
		ct_key_of(p, SP_CT_FWD, &k);
		bpf_map_delete_elem(&sp_ct, &k);
		return -1;
	}
	return 0;
}

#endif /* SP_LIB_CT_H */
