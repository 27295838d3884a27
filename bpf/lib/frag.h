/* SPDX-License-Identifier: Apache-2.0 */
/*
 * IP fragments of datagrams to and from Services (DESIGN row 14). Only the
 * first fragment carries the ports that find a flow; the others must
 * follow the NAT it got, or the datagram never arrives whole (a large UDP
 * request to a VIP) or leaves half from the VIP and half from the pod (a
 * DNS answer over the MTU). The first fragment's NAT is remembered in
 * sp_frags under what every fragment carries (addresses, protocol, IP id),
 * as Cilium's ipfrag map does, in both directions. Later fragments that
 * arrive before their first one pass untouched (counted frag_later).
 *
 * Later fragments carry no L4 header, and the first fragment's L4
 * checksum already covers the whole datagram with its new addresses: only
 * the IP header changes here.
 */
#ifndef SP_LIB_FRAG_H
#define SP_LIB_FRAG_H

#include "common.h"
#include "fwd.h"
#include "maps.h"
#include "nat.h"
#include "parse.h"
#include "stats.h"

static __always_inline void frag_key(const struct sp_pkt *p, struct sp_frag_key *k)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->saddr = p->saddr;
	k->daddr = p->daddr;
	k->id = p->frag_id;
	k->proto = p->proto;
	k->family = p->family;
}

/* SP_FRAG_F_TC for an SNAT flow's datagram, computed without a branch: a
 * conditional here doubled the verifier's states for the rest of the
 * pipeline (30k more instructions for sp_tc_uplink). */
static __always_inline __u32 frag_flags(__u8 ct_flags)
{
	_Static_assert(SP_CT_F_SNAT == 1u << 5 && SP_FRAG_F_TC == 1u << 0, "frag_flags shift");
	return ((__u32)ct_flags >> 5) & SP_FRAG_F_TC;
}

/* A first fragment got NATed to (saddr, daddr): remember it for the rest
 * of its datagram. p still holds the addresses it arrived with. */
static __always_inline void frag_record(const struct sp_pkt *p, const struct sp_addr *saddr,
					const struct sp_addr *daddr, __u64 now, __u32 flags)
{
	struct sp_frag_key k;
	struct sp_frag_val v;

	if (p->frag != SP_FRAG_FIRST)
		return;
	frag_key(p, &k);
	v.saddr = *saddr;
	v.daddr = *daddr;
	v.expires = now + SP_FRAG_TIMEOUT_NS;
	v.flags = flags;
	v.pad = 0;
	bpf_map_update_elem(&sp_frags, &k, &v, BPF_ANY);
}

/* A later fragment: rewrite its addresses as its first fragment's, then
 * forward it. Returns a verdict. */
static __always_inline int frag_xlate(void *ctx, const int hook, struct sp_pkt *p,
				      struct sp_stats *st, const bool v4)
{
	void *data = ctx_data(ctx, hook), *data_end = ctx_data_end(ctx, hook);
	struct sp_frag_key k;
	struct sp_frag_val *v;
	__u32 l3 = off_bound(p->l3_off);

	frag_key(p, &k);
	v = bpf_map_lookup_elem(&sp_frags, &k);
	if (!v || sp_now() > v->expires) {
		pkt_reason(p, SP_R_FRAG_LATER);
		return SP_V_PASS;
	}
	/* SNATed datagrams are the uplink TC's (see sp_tc_uplink), and only
	 * they: XDP rewrote every other one already. */
	if (hook == HOOK_XDP && (v->flags & SP_FRAG_F_TC)) {
		STAT_INC(st, snat_to_tc);
		return SP_V_PASS;
	}
	if (is_tc(hook) && p->uplink && !(v->flags & SP_FRAG_F_TC))
		return SP_V_PASS;
	if (v4) {
		struct iphdr *ih = data + l3;

		if ((void *)(ih + 1) > data_end)
			goto fail;
		put_addr_csum((__u8 *)&ih->saddr, &v->saddr, 4, &ih->check, NULL, NULL);
		put_addr_csum((__u8 *)&ih->daddr, &v->daddr, 4, &ih->check, NULL, NULL);
	} else {
		struct ipv6hdr *ih = data + l3;

		if ((void *)(ih + 1) > data_end)
			goto fail;
		put_addr_csum((__u8 *)&ih->saddr, &v->saddr, 16, NULL, NULL, NULL);
		put_addr_csum((__u8 *)&ih->daddr, &v->daddr, 16, NULL, NULL, NULL);
	}
	p->saddr = v->saddr;
	p->daddr = v->daddr;
	STAT_INC(st, frag_later_natted);
	return SP_CONTINUE;
fail:
	reason_count(SP_R_NAT_FAILED, p->len);
	return SP_V_DROP;
}

/* One copy of the rewrite per family (address lengths constant), one of
 * the forwarding after it: the verifier walks fwd_after_nat once. */
static __always_inline int handle_frag_later(void *ctx, const int hook, struct sp_pkt *p,
					     struct sp_stats *st)
{
	int ret;

	if (p->family == SP_FAMILY_V4)
		ret = frag_xlate(ctx, hook, p, st, true);
	else
		ret = frag_xlate(ctx, hook, p, st, false);
	if (ret != SP_CONTINUE)
		return ret;
	return fwd_after_nat(ctx, hook, p, st);
}

#endif /* SP_LIB_FRAG_H */
