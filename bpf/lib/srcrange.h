/* SPDX-License-Identifier: Apache-2.0 */
/*
 * loadBalancerSourceRanges: which clients may open flows to a Service's
 * LoadBalancer ingress IPs. kube-proxy filters only new connections (its
 * firewall rules sit behind "ct state new" in nftables mode, in the nat
 * table in iptables mode, which sees the first packet of a connection
 * only), so the caller asks only for packets of no known flow: an
 * established flow survives a change of the ranges, as with kube-proxy.
 */
#ifndef SP_LIB_SRCRANGE_H
#define SP_LIB_SRCRANGE_H

#include "common.h"
#include "maps.h"
#include "stats.h"

_Static_assert(sizeof(struct sp_src_range_key) <= SP_SCRATCH_LEN,
	       "the LPM key is built in sp_scratch");

/*
 * For a frontend flagged SP_SVC_F_SRC_RANGES: true (after counting the
 * packet under src_range_denied and the Service's drops) if p's source is
 * in none of the Service's ranges, so the caller drops it. One LPM lookup,
 * with the key in the per-CPU scratch buffer rather than on the pipeline's
 * stack, which is close to the verifier's 512-byte limit. No buffer (never
 * happens) denies: a filter that cannot be evaluated must not open.
 */
static __always_inline bool srcrange_denied(const struct sp_svc *svc, const struct sp_pkt *p,
					    struct sp_stats *st)
{
	struct sp_src_range_key *k;
	struct sp_svc_stats *ss;
	__u32 zero = 0;

	k = bpf_map_lookup_elem(&sp_scratch, &zero);
	if (k) {
		k->prefixlen = SP_SRC_RANGE_KEY_BITS;
		k->svc_id = svc->svc_id;
		k->family = p->family;
		k->pad[0] = 0;
		k->pad[1] = 0;
		k->pad[2] = 0;
		k->addr = p->saddr;
		if (bpf_map_lookup_elem(&sp_src_ranges, k)) {
			SP_TRACE(SP_T_SRC_RANGE, 1, 0, 0, 0, 0);
			return false;
		}
	}
	reason_count(SP_R_SRC_RANGE_DENIED, p->len);
	STAT_INC(st, svc_packets);
	ss = svc_stats_get(svc->svc_id);
	if (ss) {
		ss->packets++;
		ss->bytes += p->len;
		ss->drops++;
	}
	return true;
}

#endif /* SP_LIB_SRCRANGE_H */
