/* SPDX-License-Identifier: Apache-2.0 */
/*
 * From the source model (model.h) to the desired datapath state: one
 * sp_want_svc per (Service, port, IP family), with its frontends and its
 * backends, following kube-proxy's rules (see resolve.c). The map sync
 * (user/sync.c) diffs this against what is in the maps.
 */
#ifndef SP_RESOLVE_H
#define SP_RESOLVE_H

#include <stddef.h>
#include <stdint.h>
#include "maglev.h"
#include "model.h"

struct sp_want_fe {
	struct sp_ip ip; /* all-zero bytes (with family) for a NodePort wildcard */
	uint16_t port; /* host order */
	uint16_t flags; /* SP_SVC_F_* from include/svcplane.h */
};

struct sp_want_svc {
	/* Stable identity, also the sp_svc_meta name:
	 * "namespace/name:portname/tcp|udp/v4|v6" (portname may be empty). */
	char id[112];
	uint8_t proto;
	uint8_t family;
	uint16_t flags; /* SP_SVC_F_AFFINITY, SP_SVC_F_DROP_EMPTY: apply to all frontends */
	uint32_t affinity_timeout;
	struct sp_want_fe *fe;
	size_t n_fe;
	/* Canonical order (sp_maglev_canonical), de-duplicated; weight 1 for
	 * endpoints taking new flows, 0 for ones that only keep old flows. */
	struct sp_mg_backend *be;
	size_t n_be;
	/* loadBalancerSourceRanges of this family, sorted, de-duplicated;
	 * with any, the LB ingress frontends carry SP_SVC_F_SRC_RANGES. */
	struct sp_cidr *src_ranges;
	size_t n_src_ranges;
};

struct sp_desired {
	struct sp_want_svc *svc; /* sorted by id */
	size_t n;
	/* Two Services claimed one id or frontend (the warnings said which
	 * lost): only a full resolve settles that again. */
	bool clashed;
};

struct sp_resolve_opts {
	const char *node_name; /* for *TrafficPolicy: Local; may be NULL */
	const char *zone; /* this node's topology.kubernetes.io/zone, or NULL */
	const char *proxy_name; /* --proxy-name, or NULL */
};

/*
 * Resolve a model. Problems that concern one object (a port that matches
 * nothing, a duplicate frontend claimed by two Services) are reported
 * through warn (may be NULL) and that object is skipped; the rest resolves.
 * Returns 0 or -ENOMEM.
 */
typedef void (*sp_warn_fn)(void *arg, const char *msg);
int sp_resolve(const struct sp_model *m, const struct sp_resolve_opts *o, struct sp_desired *out,
	       sp_warn_fn warn, void *warn_arg);
void sp_desired_free(struct sp_desired *d);
/*
 * The ids of the Services that differ between two desired states (added,
 * removed or changed), sorted, into *ids (malloc'ed; the strings are old's
 * and new's). For sp_sync_apply_ids. 0 or -ENOMEM.
 */
int sp_desired_diff(const struct sp_desired *old, const struct sp_desired *new,
		    const char ***ids, size_t *n);
/*
 * Resolve only the Services named in names ("namespace/name", sorted as
 * strcmp sorts; what the source says changed since prev was resolved from
 * the model it had then), taking the other Services' entries from prev.
 * On success *out is the whole desired state (what sp_resolve would give),
 * the other Services' entries are moved out of prev, which keeps the listed
 * ones' old entries, and *ids lists the ids that differ (malloc'ed array;
 * the strings are prev's and out's) for sp_sync_apply_ids. Returns 0, 1
 * when it cannot (a frontend or id clash, now or in prev: prev and out are
 * untouched, run sp_resolve), or -ENOMEM (untouched too).
 */
int sp_resolve_some(const struct sp_model *m, const struct sp_resolve_opts *o,
		    struct sp_desired *prev, const char *const *names, size_t n_names,
		    struct sp_desired *out, const char ***ids, size_t *n_ids, sp_warn_fn warn,
		    void *warn_arg);

#endif /* SP_RESOLVE_H */
