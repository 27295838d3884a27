/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Service lookup and Maglev backend selection. Constant work per packet:
 * one bit of sp_dst_filter, then (only if it is set) at most two hash
 * lookups to find the Service, two array lookups into its
 * Maglev region and one array lookup for the backend, whatever the number
 * of Services or endpoints.
 */
#ifndef SP_LIB_LB_H
#define SP_LIB_LB_H

#include "common.h"
#include "maps.h"
#include "parse.h"

/* Seed of the flow hash. The same on every node (--hash-seed), so two nodes
 * with the same endpoints send a flow to the same backend. */
const volatile __u32 cfg_hash_seed = 0x5eed5eed;

/* False if p's destination is certainly no frontend (sp_dst_filter). The
 * dry run, which may observe a daemon from before the filter (user/trace.c),
 * looks anyway. Tested by the callers of svc_lookup, as
 * `dst_maybe_frontend(p) ? svc_lookup(p) : NULL`: inside svc_lookup its
 * early return was one more path for the verifier to walk through the
 * rest of the pipeline (sp_tc_ingress 56k -> 69k instructions). */
static __always_inline bool dst_maybe_frontend(const struct sp_pkt *p)
{
	struct sp_dst_filter *f;
	__u32 zero = 0, b;

	if (SP_DRY)
		return true;
	f = bpf_map_lookup_elem(&sp_dst_filter, &zero);
	if (!f)
		return true;
	b = sp_dstf_bit(&p->daddr);
	return (f->w[SP_DSTF_WORD(b)] & SP_DSTF_MASK(b)) != 0;
}

/*
 * Find the Service frontend of a packet: exact (VIP, port, proto) first,
 * then the NodePort wildcard when the destination is one of this node's
 * addresses. Returns NULL when the packet is not for a Service.
 */
static __always_inline struct sp_svc *svc_lookup(const struct sp_pkt *p)
{
	struct sp_svc_key k;
	struct sp_node_addr_key nk;
	struct sp_svc *svc;

	__builtin_memset(&k, 0, sizeof(k));
	k.addr = p->daddr;
	k.port = p->dport;
	k.proto = p->proto;
	k.family = p->family;
	svc = bpf_map_lookup_elem(&sp_services, &k);
	if (svc) {
		SP_TRACE(SP_T_FRONTEND, SP_TFE_EXACT, 0, svc->svc_id, svc->flags, svc->n);
		return svc;
	}

	__builtin_memset(&nk, 0, sizeof(nk));
	nk.addr = p->daddr;
	nk.family = p->family;
	if (!bpf_map_lookup_elem(&sp_node_addrs, &nk)) {
		SP_TRACE(SP_T_FRONTEND, SP_TFE_NONE, 0, 0, 0, 0);
		return NULL;
	}
	__builtin_memset(&k.addr, 0, sizeof(k.addr));
	svc = bpf_map_lookup_elem(&sp_services, &k);
	if (svc && (svc->flags & SP_SVC_F_NODEPORT)) {
		SP_TRACE(SP_T_FRONTEND, SP_TFE_NODEPORT, 0, svc->svc_id, svc->flags, svc->n);
		return svc;
	}
	SP_TRACE(SP_T_FRONTEND, SP_TFE_NODE_NO_PORT, 0, 0, 0, 0);
	return NULL;
}

static __always_inline __u32 rol32(__u32 x, int r)
{
	return (x << r) | (x >> (32 - r));
}

static __always_inline __u32 hash_word(__u32 h, __u32 w)
{
	w *= 0xcc9e2d51;
	w = rol32(w, 15);
	w *= 0x1b873593;
	h ^= w;
	h = rol32(h, 13);
	return h * 5 + 0xe6546b64;
}

/*
 * Hash of the flow's 5-tuple with the shared seed (a murmur3-style mix of
 * ten 32-bit words). Direction matters: only client -> VIP tuples are
 * hashed.
 */
static __always_inline __u32 flow_hash(const struct sp_pkt *p)
{
	__u32 h = cfg_hash_seed;

	h = hash_word(h, p->saddr.addr[0]);
	h = hash_word(h, p->saddr.addr[1]);
	h = hash_word(h, p->saddr.addr[2]);
	h = hash_word(h, p->saddr.addr[3]);
	h = hash_word(h, p->daddr.addr[0]);
	h = hash_word(h, p->daddr.addr[1]);
	h = hash_word(h, p->daddr.addr[2]);
	h = hash_word(h, p->daddr.addr[3]);
	h = hash_word(h, ((__u32)p->sport << 16) | p->dport);
	h = hash_word(h, p->proto);
	h ^= 40;
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/* Word w of the region starting at chunk region, or -1 if it is missing. */
static __always_inline int maglev_word(__u32 region, __u32 w, __u16 *out, __u16 *next)
{
	__u32 key = region + w / SP_MAGLEV_CHUNK_WORDS;
	struct sp_maglev_chunk *c = bpf_map_lookup_elem(&sp_maglev, &key);
	__u32 i = w & (SP_MAGLEV_CHUNK_WORDS - 1);

	if (!c)
		return -1;
	*out = c->w[i];
	if (next)
		*next = c->w[(i | 1) & (SP_MAGLEV_CHUNK_WORDS - 1)];
	return 0;
}

/*
 * Pick a backend for a new flow from the Service's current Maglev region.
 * Returns the backend id in *id, or an enum sp_reason on failure.
 */
static __always_inline int maglev_pick(const struct sp_svc *svc, __u32 hash, __u32 *id)
{
	__u32 n = svc->n, m = svc->m, region = svc->region;
	__u16 e, lo, hi;

	if (n == 0 || m == 0)
		return SP_R_NO_BACKEND;
	if (maglev_word(region, 2 * n + hash % m, &e, NULL))
		return SP_R_MAGLEV_MISS;
	if (e >= n)
		return SP_R_MAGLEV_MISS;
	/* 2e is even, so the id's two halves sit in one chunk at i and i|1. */
	if (maglev_word(region, 2 * (__u32)e, &lo, &hi))
		return SP_R_MAGLEV_MISS;
	*id = (__u32)lo | ((__u32)hi << 16);
	SP_TRACE(SP_T_MAGLEV, 0, 0, hash, hash % m, *id);
	return 0;
}

/*
 * sessionAffinity: ClientIP. Global (not inlined, not static) on purpose:
 * the verifier checks a global function once, on its own, instead of
 * walking its branches again inside every path of the caller; inlined, it
 * pushed sp_xdp past the verifier's instruction limit.
 *
 * sp_affinity_get returns the backend id remembered for the key's client
 * if the entry is alive and the backend is still in the Service's table,
 * else 0 (ids start at 1).
 */
__noinline int sp_affinity_get(struct sp_aff_key *k, __u64 now)
{
	struct sp_svc_be_key bk;
	struct sp_aff_val *v;

	if (!k)
		return 0;
	v = bpf_map_lookup_elem(&sp_affinity, k);
	if (!v || now > v->expires)
		return 0;
	bk.svc_id = k->svc_id;
	bk.backend_id = v->backend_id;
	if (!bpf_map_lookup_elem(&sp_svc_backends, &bk))
		return 0;
	return v->backend_id;
}

/* Remember (or refresh) the client's backend until now + timeout_s: the
 * timeout runs from the client's last new flow, as with kube-proxy. */
__noinline int sp_affinity_set(struct sp_aff_key *k, __u32 id, __u64 now, __u32 timeout_s)
{
	struct sp_aff_val v;

	if (!k)
		return 0;
	__builtin_memset(&v, 0, sizeof(v));
	v.backend_id = id;
	v.expires = now + (__u64)timeout_s * 1000000000ULL;
	return bpf_map_update_elem(&sp_affinity, k, &v, BPF_ANY);
}

static __always_inline void affinity_key(const struct sp_svc *svc, const struct sp_pkt *p,
					 struct sp_aff_key *k)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->svc_id = svc->svc_id;
	k->family = p->family;
	k->client = p->saddr;
}

#endif /* SP_LIB_LB_H */
