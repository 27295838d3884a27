/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ICMP and ICMPv6 errors about NATed flows (destination unreachable,
 * fragmentation needed / packet too big, time exceeded, parameter
 * problem), translated as the kernel's nf_nat translates RELATED packets:
 * the quoted packet and the error's own header both, with every checksum
 * they touch. Without it a client never learns the path MTU to a backend
 * behind a smaller link (PMTU black hole), and a pod's UDP port
 * unreachable never reaches the client's socket: the client matches an
 * error to its socket by the quoted header, which must show the VIP.
 *
 * Two directions, found through the quoted packet's tuple:
 *  - about a packet the client sent (quoted: client -> backend, after our
 *    DNAT), travelling to the client: its REV entry (the quoted tuple
 *    reversed is the reply tuple). The quote gets the frontend back as its
 *    destination; the error's source becomes the frontend when the
 *    backend itself sent it (a router's address stays).
 *  - about a reply we reverse-NATed (quoted: frontend -> client),
 *    travelling to the frontend: its FWD entry. The quote gets the
 *    backend as its source, and the error goes to the backend.
 *
 * Writes go through packet pointers in both XDP and TC: ICMP errors carry
 * a complete checksum (never CHECKSUM_PARTIAL), so incremental updates
 * are right in both.
 */
#ifndef SP_LIB_ICMP_H
#define SP_LIB_ICMP_H

#include "common.h"
#include "ct.h"
#include "fwd.h"
#include "nat.h"
#include "parse.h"
#include "stats.h"

/* A 16-bit field with the checksum that covers it: replace *f by to. */
static __always_inline void icmp_put16(__be16 *f, __be16 to, __sum16 *sum)
{
	__be32 a = *f, b = to;

	if (sum)
		csum_apply(sum, &a, &b, 4);
	*f = to;
}

/*
 * Translate an ICMP error (p->icmp). Returns a verdict, or SP_CONTINUE
 * when it is about no flow of ours (it then passes untouched).
 *
 * Offsets are bounded one by one (off_bound) for the verifier: this runs
 * in a global function of its own (sp_icmp_*), where they are unknown
 * scalars.
 */
static __always_inline int icmp_xlate(void *ctx, const int hook, struct sp_pkt *p,
				      struct sp_stats *st, const bool v4)
{
	void *data = ctx_data(ctx, hook), *data_end = ctx_data_end(ctx, hook);
	const __u32 alen = v4 ? 4 : 16;
	__u64 now = sp_now();
	struct ct_scratch *scr = ct_scratch();
	struct sp_ct_entry *ct;
	struct sp_ct_hdr *h;
	struct sp_ct_key k;
	__sum16 *isum, *in_l3sum = NULL, *in_l4sum = NULL, *o_l3sum = NULL;
	__sum16 old_in_l3sum = 0, old_in_l4sum = 0;
	__u8 *o_src, *o_dst, *in_src, *in_dst;
	__be16 *in_ports;
	struct sp_addr osrc, odst, new_osrc, new_odst;
	bool reply_dir, set_osrc = false, set_odst = false;
	__u32 l3 = off_bound(p->l3_off), in_l3 = off_bound(p->in_l3_off);
	__u32 in_l4 = off_bound(p->in_l4_off), csum = off_bound(p->csum_off);

	/* About a packet the client sent (we DNATed it): its reply tuple. */
	/* The entry's copy in the scratch area (this frame is at the stack's
	 * limit), read only until the error is forwarded (fwd_after_nat may
	 * use the area). */
	if (!scr)
		return SP_CONTINUE;
	ct = &scr->old;
	ct_key_reversed(p, SP_CT_REV, &k);
	h = ct_map_lookup(&k, ct);
	reply_dir = false;
	if (!h || ct_expired(h, now)) {
		/* About a reply we reverse-NATed: the client's tuple. */
		k.dir = SP_CT_FWD;
		h = ct_map_lookup(&k, ct);
		if (!h || ct_expired(h, now))
			return SP_CONTINUE;
		reply_dir = true;
	}

	/* Every pointer, bounded and checked. The quote needs its addresses
	 * and ports (RFC 792's 8 bytes); its checksums only if present. */
	isum = data + csum;
	in_ports = data + in_l4;
	if ((void *)(isum + 1) > data_end || (void *)(in_ports + 2) > data_end)
		goto fail;
	if (v4) {
		struct iphdr *oh = data + l3, *ih = data + in_l3;

		if ((void *)(oh + 1) > data_end || (void *)(ih + 1) > data_end)
			goto fail;
		o_l3sum = &oh->check;
		in_l3sum = &ih->check;
		__builtin_memset(&osrc, 0, sizeof(osrc));
		__builtin_memset(&odst, 0, sizeof(odst));
		osrc.addr[0] = oh->saddr;
		odst.addr[0] = oh->daddr;
		o_src = (__u8 *)&oh->saddr;
		o_dst = (__u8 *)&oh->daddr;
		in_src = (__u8 *)&ih->saddr;
		in_dst = (__u8 *)&ih->daddr;
	} else {
		struct ipv6hdr *oh = data + l3, *ih = data + in_l3;

		if ((void *)(oh + 1) > data_end || (void *)(ih + 1) > data_end)
			goto fail;
		__builtin_memcpy(&osrc, &oh->saddr, 16);
		__builtin_memcpy(&odst, &oh->daddr, 16);
		o_src = (__u8 *)&oh->saddr;
		o_dst = (__u8 *)&oh->daddr;
		in_src = (__u8 *)&ih->saddr;
		in_dst = (__u8 *)&ih->daddr;
	}
	if (p->proto == IPPROTO_UDP) {
		struct udphdr *uh = data + in_l4;

		if ((void *)(uh + 1) <= data_end && (!v4 || uh->check))
			in_l4sum = &uh->check;
	} else {
		struct tcphdr *th = data + in_l4;

		if ((void *)(th + 1) <= data_end)
			in_l4sum = &th->check;
	}
	/* The checksums inside the quote change too, and the ICMP checksum
	 * covers them: remember them to account for their change last. */
	if (in_l3sum)
		old_in_l3sum = *in_l3sum;
	if (in_l4sum)
		old_in_l4sum = *in_l4sum;

	if (!reply_dir) {
		/* quote: client -> backend  =>  client -> frontend */
		put_addr_csum(in_dst, &ct->nat_addr, alen, in_l3sum, in_l4sum, isum);
		icmp_put16(&in_ports[1], ct->nat_port, in_l4sum);
		if (ct->flags & SP_CT_F_HAIRPIN) {
			/* quote: hairpin (or node, SNAT) -> ...  =>  client ->
			 * ..., and the error goes to the client */
			put_addr_csum(in_src, &ct->nat_saddr, alen, in_l3sum, in_l4sum, isum);
			new_odst = ct->nat_saddr;
			set_odst = true;
		}
		if (ct->flags & SP_CT_F_SNAT) {
			__be32 a = in_ports[0], b = ct->nat_sport;

			icmp_put16(&in_ports[0], ct->nat_sport, in_l4sum);
			csum_apply(isum, &a, &b, 4);
		}
		/* The backend itself answered (a pod's port unreachable):
		 * from the frontend, as the client expects. Not for an SNAT
		 * flow: its frontend may be a NodePort, one of this node's
		 * addresses, which the stack drops as a martian source on a
		 * packet it forwards; the client's stack matches the error by
		 * its quote, whatever its outer source. */
		if (addr_eq(&osrc, &p->daddr) && !(ct->flags & SP_CT_F_SNAT)) {
			new_osrc = ct->nat_addr;
			set_osrc = true;
		}
	} else {
		/* quote: frontend -> client  =>  backend -> client (or,
		 * SNAT, backend -> node address and port) */
		put_addr_csum(in_src, &ct->nat_addr, alen, in_l3sum, in_l4sum, isum);
		icmp_put16(&in_ports[0], ct->nat_port, in_l4sum);
		if (ct->flags & SP_CT_F_SNAT) {
			__be32 a = in_ports[1], b = ct->nat_sport;

			put_addr_csum(in_dst, &ct->nat_saddr, alen, in_l3sum, in_l4sum, isum);
			icmp_put16(&in_ports[1], ct->nat_sport, in_l4sum);
			csum_apply(isum, &a, &b, 4);
		}
		new_odst = ct->nat_addr;
		set_odst = true;
	}
	/* Port changes in the quote, for the ICMP checksum (the put above
	 * adjusted only the quoted L4 checksum). */
	{
		__be32 a, b;

		if (!reply_dir) {
			a = p->dport;
			b = ct->nat_port;
		} else {
			a = p->sport;
			b = ct->nat_port;
		}
		csum_apply(isum, &a, &b, 4);
	}
	/* ... and the quoted checksums' own change. */
	if (in_l3sum) {
		__be32 a = old_in_l3sum, b = *in_l3sum;

		csum_apply(isum, &a, &b, 4);
	}
	if (in_l4sum) {
		__be32 a = old_in_l4sum, b = *in_l4sum;

		csum_apply(isum, &a, &b, 4);
	}
	/* The error's own addresses: the IPv4 header checksum, or the
	 * ICMPv6 pseudo-header. */
	if (set_osrc) {
		put_addr_csum(o_src, &new_osrc, alen, v4 ? o_l3sum : isum, NULL, NULL);
		osrc = new_osrc;
	}
	if (set_odst) {
		put_addr_csum(o_dst, &new_odst, alen, v4 ? o_l3sum : isum, NULL, NULL);
		odst = new_odst;
	}
	STAT_INC(st, icmp_translated);

	/* Forward the error as a packet of its own addresses. */
	p->saddr = osrc;
	p->daddr = odst;
	p->sport = 0;
	p->dport = 0;
	p->proto = v4 ? IPPROTO_ICMP : IPPROTO_ICMPV6;
	return fwd_after_nat(ctx, hook, p, st);
fail:
	reason_count(SP_R_NAT_FAILED, p->len);
	return SP_V_DROP;
}

/* One copy per family, each with its address length a constant. */
static __always_inline int handle_icmp_error(void *ctx, const int hook, struct sp_pkt *p,
					     struct sp_stats *st)
{
	if (p->family == SP_FAMILY_V4)
		return icmp_xlate(ctx, hook, p, st, true);
	return icmp_xlate(ctx, hook, p, st, false);
}

#endif /* SP_LIB_ICMP_H */
