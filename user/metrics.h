/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon's /metrics page (Prometheus text format 0.0.4). One table of
 * metric definitions (name, type, help, how to get the value) drives the
 * output: every family gets its HELP and TYPE lines from it, and a test
 * walks it. kube-proxy's metric names and meanings are kept where one
 * exists (pkg/proxy/metrics), so its dashboards and alerts work unchanged;
 * svcplane's own are under svcplane_. The datapath counters come from the
 * same field table as `svcplane stats` (sp_stat_fields).
 *
 * The daemon fills a struct sp_metrics_snap (its own state under its locks,
 * then the counter maps with sp_metrics_read_maps) and sp_metrics_write
 * formats it: formatting never touches a map or a lock, so it is tested on
 * its own.
 */
#ifndef SP_METRICS_H
#define SP_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "svcplane.h"

/* ---- sp_stats fields, shared with `svcplane stats` ---- */

struct sp_stat_field {
	const char *name; /* the struct field; svcplane_<name>_total in /metrics */
	size_t off; /* offsetof(struct sp_stats, name) */
	const char *help;
};
extern const struct sp_stat_field sp_stat_fields[];
extern const size_t sp_n_stat_fields;

/* ---- Histograms ---- */

#define SP_HIST_MAX_BUCKETS 80

/* Upper bounds (le) of each bucket, ascending; +Inf is implicit. */
struct sp_hist_bounds {
	const double *le;
	size_t n;
};

/* Per-bucket counts (not cumulative: the output adds them up). */
struct sp_hist {
	uint64_t bucket[SP_HIST_MAX_BUCKETS + 1]; /* [n] is +Inf only */
	uint64_t count;
	double sum;
};

/* kube-proxy's buckets: sync 1 ms x 2^0..14; network programming 0.25 s
 * to 5 min (finer below a minute). */
extern const struct sp_hist_bounds sp_hist_sync_seconds;
extern const struct sp_hist_bounds sp_hist_netprog_seconds;

/* Count value v (seconds) in h. NaN is ignored; negatives go to the first bucket. */
void sp_hist_observe(struct sp_hist *h, const struct sp_hist_bounds *b, double v);

/* ---- Per-Service counters ---- */

/* One Service port's counters: sp_svc_stats of every svc_id whose
 * sp_svc_meta name has these labels, summed (IP families, and the
 * separate tables of a traffic policy, "/ext" and "/all"). */
struct sp_svc_metric {
	char ns[SP_SVC_NAME_LEN], service[SP_SVC_NAME_LEN], port[SP_SVC_NAME_LEN];
	char proto[8];
	struct sp_svc_stats st;
};

/*
 * Split an sp_svc_meta name "namespace/name:portname/tcp|udp/v4|v6[/ext|/all]"
 * into m's labels (st untouched). Returns 0 or -EINVAL.
 */
int sp_svc_metric_labels(const char *name, struct sp_svc_metric *m);

/* ---- The snapshot that /metrics formats ---- */

struct sp_metrics_snap {
	/* The daemon (filled under its locks). */
	bool synced;
	uint64_t services, backends;
	uint64_t applies, apply_errors;
	double last_apply_s;
	double last_sync_ts; /* wall clock, seconds; 0: never */
	double last_queued_ts; /* wall clock, seconds; 0: never */
	struct sp_hist sync_hist, netprog_hist;
	uint64_t svc_changes, slice_changes; /* cumulative */
	uint64_t svc_pending, slice_pending;
	uint64_t no_local_internal, no_local_external;
	uint64_t maglev_bytes, maglev_capacity_bytes;
	/* The conntrack collector; gc_known once a pass has run. */
	uint64_t ct_capacity;
	bool gc_known;
	uint64_t ct_entries, snat_ports;
	bool ct_pressure;
	double gc_last_s;
	uint64_t gc_runs, gc_deleted, gc_errors, gc_early;
	/* The process. */
	uint64_t rss_bytes, rss_peak_bytes;
	/* The maps (sp_metrics_read_maps). */
	bool dp_known;
	struct sp_stats dp; /* every hook's slot, summed */
	bool reasons_known;
	struct sp_reason_count reasons[SP_R_MAX];
	bool per_service; /* --metrics-per-service: svcs below is wanted */
	struct sp_svc_metric *svcs; /* sorted by labels, malloc'ed */
	size_t n_svcs;
};

struct sp_metrics_fds {
	int stats, reasons, svc_stats, svc_meta; /* < 0: not read */
};

/*
 * Read the counter maps into s (dp, reasons, and per Service when
 * s->per_service). A map that cannot be read leaves its part out of the
 * page (logged at debug level). Returns 0 or -ENOMEM.
 */
int sp_metrics_read_maps(struct sp_metrics_snap *s, const struct sp_metrics_fds *fds);
/* RSS and peak RSS of this process (from /proc/self), 0 when unreadable. */
void sp_metrics_read_rss(uint64_t *rss, uint64_t *peak);
void sp_metrics_snap_free(struct sp_metrics_snap *s);

/* Write the page: every family of the table, each with HELP and TYPE. */
void sp_metrics_write(FILE *f, const struct sp_metrics_snap *s);

/* Escape a label value (backslash, double quote, newline) into buf.
 * Returns buf; a value that does not fit is cut. */
const char *sp_metrics_label_escape(const char *v, char *buf, size_t len);

#endif /* SP_METRICS_H */
