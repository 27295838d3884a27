/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Conntrack garbage collection. Each table (sp_ct4, sp_ct6) is an LRU: when it is full, the
 * kernel evicts the least recently used entries, live or not. Nothing in
 * the datapath deletes an expired entry (it only ignores it), so without a
 * collector a table full of dead flows would evict live ones. The daemon
 * deletes expired entries in batches, often enough that the table never
 * fills while dead entries remain (see sp_ct_gc_next_interval).
 */
#ifndef SP_CT_GC_H
#define SP_CT_GC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sp_ct_gc_stats {
	uint64_t scanned; /* entries read */
	uint64_t expired; /* entries past their deadline (+ grace), or dropped early */
	uint64_t early; /* of those, closed flows dropped before their deadline */
	uint64_t deleted; /* of those, deleted by us (others went meanwhile) */
	uint64_t live; /* scanned - expired */
	/* Live flows holding a --snat-ports port: FWD entries with
	 * SP_CT_F_SNAT (one per flow; its REV partner holds the same port). */
	uint64_t snat_live;
	uint64_t max_entries; /* both tables' capacity */
	/* The fullest table (by live entries over capacity): its live
	 * entries and its capacity, what the pass intervals and early drop
	 * go by. */
	uint64_t fill_live, fill_max;
	double ms; /* how long the pass took */
};

/*
 * One pass over both conntrack tables (m, user/ct.h): delete every entry whose deadline
 * is more than grace_ns before now_ns (CLOCK_MONOTONIC, which the
 * datapath's coarse clock never runs ahead of). With early_drop, also the
 * entries of flows that are closed (RST, or FINs both ways: TIME_WAIT)
 * whatever their deadline, as nf_conntrack's early drop sacrifices what
 * is least worth keeping when the table is full: under pressure the LRU
 * would otherwise evict the least recently used entries, which are the
 * idle established flows. An entry is deleted only if its value is still
 * what the pass read (the datapath may have replaced it with a new flow on
 * the same tuple): by the datapath's sp_ct_reap program (reap_fd, the
 * check and the delete nanoseconds apart), or with reap_fd < 0 (a map
 * that is not the datapath's own) from here, a lookup and a delete apart.
 * Returns 0 or -errno; *st is filled either way.
 */
struct sp_ct_maps;
int sp_ct_gc(const struct sp_ct_maps *m, int reap_fd, uint64_t now_ns, uint64_t grace_ns,
	     bool early_drop, struct sp_ct_gc_stats *st);

/*
 * The same pass, also looking for flows through some frontends: keys[0..n)
 * sorted in memcmp order (the retained frontends of user/sync.c); seen[i]
 * is set when a live FWD entry of a TCP flow came in through keys[i] (its
 * original destination, or the NodePort wildcard of its port). seen is
 * left as it was for the others: the caller clears it first.
 */
struct sp_svc_key;
struct sp_ct_gc_watch {
	const struct sp_svc_key *keys;
	size_t n;
	bool *seen;
};
int sp_ct_gc_watch(const struct sp_ct_maps *m, int reap_fd, uint64_t now_ns, uint64_t grace_ns,
		   bool early_drop, const struct sp_ct_gc_watch *w, struct sp_ct_gc_stats *st);

/* Early drop is worth it from half full (of live entries at the last pass). */
bool sp_ct_gc_early_drop(const struct sp_ct_gc_stats *last);

/*
 * Milliseconds until the next pass after one that left st: the configured
 * interval while the table is under a quarter full, shorter as it fills
 * (1 s from half full, 200 ms from three quarters), so that new-flow
 * bursts meet free entries and not evictions.
 */
unsigned int sp_ct_gc_next_ms(const struct sp_ct_gc_stats *st, unsigned int interval_s);

/* CLOCK_MONOTONIC in ns. */
uint64_t sp_mono_ns(void);

#endif /* SP_CT_GC_H */
