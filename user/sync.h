/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Keeping the maps equal to the desired state (resolve.h), as a diff:
 * only Services whose backends or frontends changed are written, and a
 * Service's new Maglev table goes into a fresh region that is switched in
 * with one sp_services update per frontend; the old region and removed
 * backends are released only after the switch and a grace period. State is recovered from the
 * pinned maps at start, so a restarted daemon rewrites nothing that did
 * not change and conntrack is never flushed.
 */
#ifndef SP_SYNC_H
#define SP_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "model.h"
#include "resolve.h"

struct sp_sync_maps {
	int fd_services, fd_backends, fd_maglev, fd_svc_meta, fd_svc_stats, fd_node_addrs;
	/* sp_svc_backends (sessionAffinity); <= 0: not kept (tools and tests
	 * that build maps without it). */
	int fd_svc_backends;
	uint32_t max_frontends; /* max_entries of sp_services; 0: not checked */
	uint32_t maglev_chunks; /* max_entries of sp_maglev */
	uint32_t max_svc_ids; /* max_entries of sp_svc_meta / sp_svc_stats */
	uint32_t max_backends; /* max_entries of sp_backends */
	uint32_t fixed_m; /* --maglev-m, 0 = adaptive */
	/* sp_src_ranges (loadBalancerSourceRanges); <= 0: not kept, and a
	 * Service with ranges is refused (its filter could not be written). */
	int fd_src_ranges;
	uint32_t max_src_ranges; /* max_entries of sp_src_ranges; 0: not checked */
	/* sp_dst_filter (mmapable); <= 0: not kept (tools and tests whose
	 * maps have no datapath reading them). */
	int fd_dst_filter;
	/* sp_svc_live (mmapable, new at every start); <= 0: not kept. */
	int fd_svc_live;
};

struct sp_sync_stats {
	size_t svc_rebuilt; /* Services whose table was rebuilt */
	size_t svc_added, svc_removed;
	size_t fe_written, fe_deleted;
	size_t fe_retained; /* TCP frontends kept for established connections */
	size_t be_added, be_deleted;
	size_t errors; /* Services skipped for lack of room (logged) */
};

struct sp_sync;

/* Create the sync state and recover what the maps hold. 0 or -errno. */
int sp_sync_new(const struct sp_sync_maps *maps, struct sp_sync **out);
void sp_sync_free(struct sp_sync *s);
/*
 * Make the maps equal to d. A Service that does not fit (capacity) is
 * skipped with an error and keeps its previous state; the others apply.
 * Returns 0, or -ENOSPC if something was skipped, or -errno on map failure.
 */
int sp_sync_apply(struct sp_sync *s, const struct sp_desired *d, struct sp_sync_stats *st);
/*
 * The same for the Services whose ids are listed (sorted, e.g. by
 * sp_desired_diff): those in d are applied, those not in d removed, the
 * others not looked at. The result equals sp_sync_apply's when every
 * Service that differs from the last apply is listed. Before the first
 * full apply it is one (orphans found at start need it).
 */
int sp_sync_apply_ids(struct sp_sync *s, const struct sp_desired *d, const char *const *ids,
		      size_t n_ids, struct sp_sync_stats *st);
/*
 * Whether d fits the capacities in maps (only the sizes are read) when
 * applied as a whole: Service ids, frontends, distinct backends and Maglev
 * chunks (for chunks a lower bound: free chunks may be fragmented).
 * Returns 0, or -ENOSPC with one line in err naming what does not fit, how
 * much it needs, what the maps hold and the flag that raises it, or
 * -ENOMEM. The config file source refuses such a file as a whole; the
 * Kubernetes source applies what fits (sp_sync_apply).
 */
int sp_sync_check_capacity(const struct sp_sync_maps *maps, const struct sp_desired *d, char *err,
			   size_t errlen);
/*
 * What an apply unlinks (old Maglev regions, backends no table lists, the
 * svc_ids of removed Services) stays in place until a grace period has
 * let every packet that could still read it finish. The apply does not
 * wait for it: a reclaimer thread does, and the next apply frees what it
 * covered. sp_sync_reclaim() frees what is covered now, never waiting (the
 * daemon's tick); sp_sync_flush() waits for a grace period and frees
 * everything retired (tests, before reading what an apply removed).
 * Backends they delete are added to st->be_deleted (st may be NULL).
 */
void sp_sync_reclaim(struct sp_sync *s, struct sp_sync_stats *st);
/* An eventfd (non-blocking) that becomes readable when a grace period
 * ends, so a loop can call sp_sync_reclaim() then (read it empty first);
 * -1 if there is none (without the thread every apply frees its own). */
int sp_sync_reclaim_fd(const struct sp_sync *s);
void sp_sync_flush(struct sp_sync *s, struct sp_sync_stats *st);
/*
 * Tests: how a grace period is awaited (default: membarrier(2) with
 * MEMBARRIER_CMD_GLOBAL; NULL restores it). fn returns 0 once every
 * datapath program running when it was called has finished; it is called
 * from the reclaimer thread, or from the applying thread when an
 * allocation needs retired room. For every sp_sync.
 */
void sp_sync_set_grace(int (*fn)(void));
/* Replace the set of node addresses NodePorts answer on. */
int sp_sync_node_addrs(struct sp_sync *s, const struct sp_ip *a, size_t n);
/*
 * sp_dst_filter for tools and tests that write sp_services or sp_node_addrs
 * themselves: set the bit of address a in the map (fd), by bpf(2). 0 or
 * -errno. sp_sync_dst_filter_has: whether a's bit is set in s's map.
 */
int sp_sync_dst_filter_add(int fd, const struct sp_addr *a);
bool sp_sync_dst_filter_has(const struct sp_sync *s, const struct sp_addr *a);
/*
 * Retained frontends: TCP frontends no Service wants any more, kept (with
 * SP_SVC_F_GONE) while established connections run through them, as
 * kube-proxy keeps a deleted Service's TCP connections. The daemon's
 * conntrack collector looks for flows through a copy of the list
 * (sp_sync_retained) and hands back those it found none for, which are
 * deleted unless they changed since (seq). sp_sync_retained_changes moves
 * whenever the list does (the daemon then takes a new copy).
 */
struct sp_retained_fe {
	struct sp_svc_key key;
	uint32_t svc_id;
	uint64_t seq;
};
/* Retain frontends (off by default: only with a collector to report
 * the unused ones; retained ones found at start are then deleted by the
 * first full apply). */
void sp_sync_set_retain(struct sp_sync *s, bool on);
size_t sp_sync_n_retained(const struct sp_sync *s);
uint64_t sp_sync_retained_changes(const struct sp_sync *s);
/* A copy sorted by key (memcmp order), freed by the caller. 0 or -ENOMEM. */
int sp_sync_retained(const struct sp_sync *s, struct sp_retained_fe **out, size_t *n);
/* Delete the listed ones no flow uses (unless changed since). Returns how
 * many were deleted. */
size_t sp_sync_retained_unused(struct sp_sync *s, const struct sp_retained_fe *unused, size_t n);
/* Number of Services and backends currently applied. */
size_t sp_sync_n_services(const struct sp_sync *s);
size_t sp_sync_n_backends(const struct sp_sync *s);
/* Chunks of sp_maglev in use (live tables and ones not yet released). */
size_t sp_sync_maglev_chunks_used(const struct sp_sync *s);
/* Maglev chunks written through a mapping of sp_maglev (BPF_F_MMAPABLE)
 * rather than bpf(2), since the start: for tests and the benchmark. */
uint64_t sp_sync_maglev_mmap_writes(const struct sp_sync *s);
/* Maglev tables built by helper threads ahead of a large apply, since the
 * start: for tests and the benchmark. */
uint64_t sp_sync_tables_ahead(const struct sp_sync *s);
/* For tests: the apply waits for the helpers' table instead of building
 * it itself (so that every table comes from a helper, whatever the
 * scheduler does). */
void sp_sync_set_ahead_only(struct sp_sync *s, bool on);

#endif /* SP_SYNC_H */
