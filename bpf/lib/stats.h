/* SPDX-License-Identifier: Apache-2.0 */
/* Counters: global (sp_stats), per reason (sp_reasons), per Service (sp_svc_stats). */
#ifndef SP_LIB_STATS_H
#define SP_LIB_STATS_H

#include "common.h"
#include "maps.h"
#include "trace.h"

/* The dry run (lib/trace.h) finds no counter, so it bumps none. */
#ifdef SP_DRYRUN
#define sp_counters_lookup(map, key) ((void)(key), (void *)0)
#else
#define sp_counters_lookup(map, key) bpf_map_lookup_elem(map, key)
#endif

/* The counters of hook slot (enum sp_stats_slot) on this CPU. */
static __always_inline struct sp_stats *stats_get(__u32 slot)
{
	return sp_counters_lookup(&sp_stats, &slot);
}

/* The slot of a pipeline hook (the uplink TC and lo programs name theirs). */
#define hook_slot(hook)                                                                    \
	((hook) == HOOK_XDP ? SP_SLOT_XDP : (hook) == HOOK_TC_INGRESS ? SP_SLOT_POD : SP_SLOT_HOST)

/* st may be NULL (it never is for a PERCPU array of one, but the verifier
 * cannot know that). */
#define STAT_INC(st, field)                                                                \
	do {                                                                               \
		if (st)                                                                    \
			(st)->field++;                                                     \
	} while (0)

/* Count a packet under a reason: every drop and every pass-without-NAT of a
 * packet we could not parse goes through here, never silently. */
static __always_inline void reason_count(enum sp_reason r, __u32 len)
{
	__u32 key = r;
	struct sp_reason_count *c = sp_counters_lookup(&sp_reasons, &key);

	SP_TRACE(SP_T_REASON, 0, 0, r, 0, 0);
	if (c) {
		c->packets++;
		c->bytes += len;
	}
}

static __always_inline struct sp_svc_stats *svc_stats_get(__u32 svc_id)
{
	return sp_counters_lookup(&sp_svc_stats, &svc_id);
}

#endif /* SP_LIB_STATS_H */
