/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Conntrack garbage collection. sp_ct is an LRU: when it is full, the
 * kernel evicts the least recently used entries, live or not. Nothing in
 * the datapath deletes an expired entry (it only ignores it), so without a
 * collector a table full of dead flows would evict live ones. The daemon
 * deletes expired entries in batches, often enough that the table never
 * fills while dead entries remain (see sp_ct_gc_next_interval).
 */
#ifndef SP_CT_GC_H
#define SP_CT_GC_H

#include <stdint.h>

struct sp_ct_gc_stats {
	uint64_t scanned; /* entries read */
	uint64_t expired; /* entries past their deadline (+ grace) */
	uint64_t deleted; /* of those, deleted by us (others went meanwhile) */
	uint64_t live; /* scanned - expired */
	uint32_t max_entries; /* the map's capacity */
	double ms; /* how long the pass took */
};

/*
 * One pass over the conntrack map at fd: delete every entry whose deadline
 * is more than grace_ns before now_ns (CLOCK_MONOTONIC, the clock of
 * bpf_ktime_get_ns). Returns 0 or -errno; *st is filled either way with
 * what was done.
 */
int sp_ct_gc(int fd, uint64_t now_ns, uint64_t grace_ns, struct sp_ct_gc_stats *st);

/*
 * Seconds until the next pass after one that left st: the configured
 * interval while the table is under a quarter full, shorter as it fills
 * (down to 1 s from half full), so that new-flow bursts meet free entries
 * and not evictions.
 */
unsigned int sp_ct_gc_next_interval(const struct sp_ct_gc_stats *st, unsigned int interval_s);

/* CLOCK_MONOTONIC in ns. */
uint64_t sp_mono_ns(void);

#endif /* SP_CT_GC_H */
