/* SPDX-License-Identifier: Apache-2.0 */
/*
 * External traffic on a multi-node cluster: who is "inside", which backend
 * set an inside client gets for an externalTrafficPolicy: Local frontend,
 * and the source NAT that brings the reply of a backend on another node
 * back through this node.
 *
 * Inside clients are pods (the pod veth hook), this host (the uplink's TC
 * egress) and sources in --cluster-cidr arriving on an uplink (pods of
 * other nodes), as kube-proxy's --cluster-cidr local detection. They keep
 * their address (no SNAT), and reach every endpoint of a Local Service
 * through its external frontends (kube-proxy's short-circuit).
 *
 * SNAT, as kube-proxy's masquerade of externalTrafficPolicy: Cluster, but
 * only where it is needed (as Cilium): an outside client to an external
 * frontend (LB IP, externalIP, NodePort) whose chosen backend is on another
 * node. The source becomes this node's address on the interface the packet
 * leaves by (the FIB's choice of source, as the kernel's masquerade) and a
 * port of --snat-ports, which is outside the kernel's ephemeral range
 * (ip_local_port_range) so it never collides with the node's own
 * connections. The port is the one the REV entry claims: a reply tuple
 * (backend, node address, port) belongs to one flow at a time.
 */
#ifndef SP_LIB_SNAT_H
#define SP_LIB_SNAT_H

#include "common.h"
#include "maps.h"
#include "parse.h"

/* --cluster-cidr, one range per family, set before load. A zero mask
 * means no range of that family. Wire order. */
const volatile __be32 cfg_cluster_v4_net = 0;
const volatile __be32 cfg_cluster_v4_mask = 0;
const volatile __be32 cfg_cluster_v6_net[4] = { 0, 0, 0, 0 };
const volatile __be32 cfg_cluster_v6_mask[4] = { 0, 0, 0, 0 };

/* --snat-ports MIN-MAX (host order). The default, 61000-65535, lies above
 * Linux's default ephemeral range 32768-60999. */
const volatile __u32 cfg_snat_port_min = 61000;
const volatile __u32 cfg_snat_port_max = 65535;

/* Ports tried for one new flow before giving up (snat_exhausted). The
 * probes are spread at random over the range: with a quarter of it in use
 * all 16 are taken once in 4 billion flows; at three quarters once in 100. */
#ifndef SP_SNAT_TRIES
#define SP_SNAT_TRIES 16
#endif

/* BPF_FIB_LOOKUP_SRC (Linux 6.7): the lookup also returns the source
 * address the kernel would choose. An enum in linux/bpf.h, which the
 * headers of Debian 12 (6.1) do not have yet. */
#define SP_FIB_LOOKUP_SRC (1U << 4)

static __always_inline bool in_cluster_cidr(const struct sp_pkt *p)
{
	const struct sp_addr *a = &p->saddr;

	if (p->family == SP_FAMILY_V4)
		return cfg_cluster_v4_mask && (a->addr[0] & cfg_cluster_v4_mask) == cfg_cluster_v4_net;
	return (cfg_cluster_v6_mask[0] | cfg_cluster_v6_mask[1] | cfg_cluster_v6_mask[2] |
		cfg_cluster_v6_mask[3]) &&
	       (a->addr[0] & cfg_cluster_v6_mask[0]) == cfg_cluster_v6_net[0] &&
	       (a->addr[1] & cfg_cluster_v6_mask[1]) == cfg_cluster_v6_net[1] &&
	       (a->addr[2] & cfg_cluster_v6_mask[2]) == cfg_cluster_v6_net[2] &&
	       (a->addr[3] & cfg_cluster_v6_mask[3]) == cfg_cluster_v6_net[3];
}

/* An inside client: a pod or this host (every hook but the uplinks'), or a
 * --cluster-cidr source arriving on an uplink. */
static __always_inline bool src_internal(const struct sp_pkt *p)
{
	return !p->uplink || in_cluster_cidr(p);
}

/* The frontend's entry in the cluster view (all endpoints), for an inside
 * client of an externalTrafficPolicy: Local frontend; NULL if none. */
static __always_inline struct sp_svc *svc_view_lookup(const struct sp_pkt *p,
						      const struct sp_svc *svc)
{
	struct sp_svc_key k;

	__builtin_memset(&k, 0, sizeof(k));
	if (!(svc->flags & SP_SVC_F_NODEPORT))
		k.addr = p->daddr;
	k.port = p->dport;
	k.proto = p->proto;
	k.family = p->family | SP_FAMILY_VIEW;
	return bpf_map_lookup_elem(&sp_services, &k);
}

/* Needs SNAT: an outside client, an external frontend, a remote backend. */
static __always_inline bool snat_needed(const struct sp_pkt *p, const struct sp_svc *svc,
					const struct sp_backend *be)
{
	return (svc->flags & (SP_SVC_F_EXTERNAL | SP_SVC_F_NODEPORT)) &&
	       (be->flags & SP_BE_F_REMOTE) && !src_internal(p);
}

/*
 * This node's address toward backend address dst: the source the FIB
 * gives for the route out. The lookup's parameters live in the per-CPU
 * scratch area: the pipeline's stack is at its limit. Returns 0 or
 * SP_R_FIB_FAILED.
 */
static __always_inline int snat_source(struct __sk_buff *skb, const struct sp_pkt *p,
				       const struct sp_addr *dst, struct sp_addr *out)
{
	__u32 zero = 0;
	struct bpf_fib_lookup *f = bpf_map_lookup_elem(&sp_scratch, &zero);
	int rc;

	if (!f)
		return SP_R_FIB_FAILED;
	__builtin_memset(f, 0, sizeof(*f));
	f->l4_protocol = p->proto;
	f->ifindex = skb->ifindex;
	__builtin_memset(out, 0, sizeof(*out));
	if (p->family == SP_FAMILY_V4) {
		f->family = 2; /* AF_INET */
		f->ipv4_dst = dst->addr[0];
	} else {
		f->family = 10; /* AF_INET6 */
		__builtin_memcpy(f->ipv6_dst, dst->addr, 16);
	}
	rc = bpf_fib_lookup(skb, f, sizeof(*f), SP_FIB_LOOKUP_SRC);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return SP_R_FIB_FAILED;
	if (p->family == SP_FAMILY_V4) {
		out->addr[0] = f->ipv4_src;
		if (!out->addr[0])
			return SP_R_FIB_FAILED;
	} else {
		__builtin_memcpy(out->addr, f->ipv6_src, 16);
		if (!(out->addr[0] | out->addr[1] | out->addr[2] | out->addr[3]))
			return SP_R_FIB_FAILED;
	}
	return 0;
}

static __always_inline __u32 snat_span(void)
{
	__u32 span = cfg_snat_port_max - cfg_snat_port_min + 1;

	return span && span <= 65536 ? span : 1;
}

/*
 * The n-th port tried for a flow: from a random point, in random strides
 * (double hashing). Successive ports from the flow's hash, as first done,
 * made runs of taken ports (primary clustering): with a third of the
 * range in use, 1 flow in 1,000 found 8 in a row taken (make bench part 8).
 */
static __always_inline __be16 snat_port(__u32 r, __u32 n)
{
	__u32 span = snat_span(), start = r % span;
	/* 1 .. span-1 (with 2 ports, the other one); from r's high half, so
	 * one random word is all a flow's probes keep live (the stack of the
	 * pipeline is at its limit). */
	__u32 step = span > 1 ? 1 + (r >> 16) % (span - 1) : 0;

	return bpf_htons((__u16)(cfg_snat_port_min + (start + n * step) % span));
}

#endif /* SP_LIB_SNAT_H */
