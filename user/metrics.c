// SPDX-License-Identifier: Apache-2.0
/*
 * /metrics: the table of metric families and the Prometheus text format
 * (see metrics.h).
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "log.h"
#include "metrics.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- sp_stats fields (also `svcplane stats`) ------------------------------------ */

#define F(f, h) { #f, offsetof(struct sp_stats, f), h }
const struct sp_stat_field sp_stat_fields[] = {
	F(rx_packets, "Packets seen by any hook"),
	F(rx_bytes, "Bytes seen by any hook"),
	F(not_service, "Packets passed untouched: no conntrack entry, no Service"),
	F(svc_packets, "Packets to a Service frontend (DNATed or rejected)"),
	F(new_flows, "New flows given a backend by Maglev"),
	F(ct_fwd_hits, "Packets of known flows, client to backend"),
	F(ct_rev_hits, "Replies reverse-NATed"),
	F(ct_backend_gone, "Conntrack hits whose backend was removed: backend chosen again"),
	F(hairpin, "Flows whose source was rewritten to the hairpin address"),
	F(rejects, "TCP RST / ICMP unreachable sent for a Service without endpoints"),
	F(redirects, "Packets forwarded with bpf_redirect"),
	F(to_stack, "Packets handed to the kernel stack after NAT"),
	F(ipv4_options, "IPv4 packets with options"),
	F(ipv6_ext_hdrs, "IPv6 packets with extension headers walked"),
	F(frag_first, "First fragments handled"),
	F(ct_insert_fail, "Conntrack inserts that failed"),
	F(ct_partner_miss,
	  "Flows found with their other conntrack entry missing (the LRU evicted a live flow, "
	  "or a collector race): recreated"),
	F(ct_adopted, "TCP packets of no known flow adopted mid-stream"),
	F(icmp_translated, "ICMP errors about a NATed flow, translated"),
	F(frag_later_natted, "Later fragments given their first fragment's NAT"),
	F(snat_flows, "New flows of external clients SNATed to a backend on another node"),
	F(snat_to_tc, "Packets XDP left to the uplink's TC program for SNAT"),
	F(local_short_circuit,
	  "New flows of internal clients to an externalTrafficPolicy: Local frontend, sent to "
	  "all endpoints"),
	F(ct_clash_remapped, "New flows whose reply tuple was taken, given another source port"),
	F(dsr_flows, "New flows sent to another node with Direct Server Return"),
	F(dsr_ingress, "Packets carrying the DSR option whose conntrack entry was made or refreshed"),
	F(dsr_fallback_snat, "New flows that could not carry the DSR option and were SNATed"),
	F(ct_seq_ignored,
	  "TCP FIN or RST far from where its sender was last seen in sequence space: NATed, "
	  "conntrack state left as it was"),
	F(peer_redirects, "Packets to a pod on this node delivered into it with bpf_redirect_peer"),
	F(peer_fallbacks,
	  "Packets XDP noted for host routing that the stack delivered (no neighbour yet, not a "
	  "pod veth, TTL 1)"),
};
#undef F
const size_t sp_n_stat_fields = ARRAY_LEN(sp_stat_fields);
_Static_assert(ARRAY_LEN(sp_stat_fields) * sizeof(__u64) == sizeof(struct sp_stats),
	       "every sp_stats field has a name");

/* ---- Histograms ------------------------------------------------------------------ */

/* kube-proxy's ExponentialBuckets(0.001, 2, 15). */
static const double sync_le[] = { 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128,
				  0.256, 0.512, 1.024, 2.048, 4.096, 8.192, 16.384 };
const struct sp_hist_bounds sp_hist_sync_seconds = { sync_le, ARRAY_LEN(sync_le) };

/* kube-proxy's: 0.25 s, 0.5 s, then every second to 59 s, every 5 s to
 * 115 s, every 30 s to 5 min (80 bounds). */
static const double netprog_le[] = {
	0.25, 0.5, 1,	2,   3,	  4,   5,   6,	 7,   8,   9,	10,  11,  12,  13,  14,
	15,   16,  17,	18,  19,  20,  21,  22,	 23,  24,  25,	26,  27,  28,  29,  30,
	31,   32,  33,	34,  35,  36,  37,  38,	 39,  40,  41,	42,  43,  44,  45,  46,
	47,   48,  49,	50,  51,  52,  53,  54,	 55,  56,  57,	58,  59,  60,  65,  70,
	75,   80,  85,	90,  95,  100, 105, 110, 115, 120, 150, 180, 210, 240, 270, 300,
};
const struct sp_hist_bounds sp_hist_netprog_seconds = { netprog_le, ARRAY_LEN(netprog_le) };
_Static_assert(ARRAY_LEN(netprog_le) <= SP_HIST_MAX_BUCKETS, "sp_hist holds every bucket");

void sp_hist_observe(struct sp_hist *h, const struct sp_hist_bounds *b, double v)
{
	size_t i;

	if (isnan(v))
		return;
	for (i = 0; i < b->n && v > b->le[i]; i++)
		;
	h->bucket[i]++;
	h->count++;
	h->sum += v;
}

/* ---- Labels ---------------------------------------------------------------------- */

const char *sp_metrics_label_escape(const char *v, char *buf, size_t len)
{
	size_t o = 0;

	for (; *v && o + 3 <= len; v++) {
		if (*v == '\\' || *v == '"') {
			buf[o++] = '\\';
			buf[o++] = *v;
		} else if (*v == '\n') {
			buf[o++] = '\\';
			buf[o++] = 'n';
		} else {
			buf[o++] = *v;
		}
	}
	if (len)
		buf[o < len ? o : len - 1] = '\0';
	return buf;
}

/* Copy [s, e) into dst (size SP_SVC_NAME_LEN; names are shorter). */
static void span_copy(char *dst, const char *s, const char *e)
{
	size_t n = (size_t)(e - s);

	if (n >= SP_SVC_NAME_LEN)
		n = SP_SVC_NAME_LEN - 1;
	memcpy(dst, s, n);
	dst[n] = '\0';
}

int sp_svc_metric_labels(const char *name, struct sp_svc_metric *m)
{
	const char *slash = strchr(name, '/'), *colon, *proto, *fam;

	if (!slash || slash == name)
		return -EINVAL;
	colon = strchr(slash + 1, ':');
	if (!colon || colon == slash + 1)
		return -EINVAL;
	proto = strchr(colon + 1, '/');
	if (!proto)
		return -EINVAL;
	fam = strchr(proto + 1, '/');
	if (!fam || fam - (proto + 1) >= (ptrdiff_t)sizeof(m->proto) || fam == proto + 1)
		return -EINVAL;
	if (strncmp(fam, "/v4", 3) && strncmp(fam, "/v6", 3))
		return -EINVAL;
	if (fam[3] && strcmp(fam + 3, "/ext") && strcmp(fam + 3, "/all"))
		return -EINVAL;
	span_copy(m->ns, name, slash);
	span_copy(m->service, slash + 1, colon);
	span_copy(m->port, colon + 1, proto);
	memcpy(m->proto, proto + 1, (size_t)(fam - (proto + 1)));
	m->proto[fam - (proto + 1)] = '\0';
	return 0;
}

static int svc_metric_cmp(const void *pa, const void *pb)
{
	const struct sp_svc_metric *a = pa, *b = pb;
	int c = strcmp(a->ns, b->ns);

	c = c ?: strcmp(a->service, b->service);
	c = c ?: strcmp(a->port, b->port);
	return c ?: strcmp(a->proto, b->proto);
}

/* ---- Reading the maps ------------------------------------------------------------ */

/* Sum a PERCPU value of words __u64 over ncpu CPUs (in buf) into out. */
static void percpu_sum(const void *buf, int ncpu, size_t words, __u64 *out)
{
	const __u64 *v = buf;
	size_t w;
	int c;

	memset(out, 0, words * sizeof(*out));
	for (c = 0; c < ncpu; c++)
		for (w = 0; w < words; w++)
			out[w] += v[(size_t)c * words + w];
}

static int u32_cmp(const void *a, const void *b)
{
	__u32 x = *(const __u32 *)a, y = *(const __u32 *)b;

	return x < y ? -1 : x > y;
}

/* Every svc_id in sp_svc_meta, with its counters, summed per label set. */
static int read_services(struct sp_metrics_snap *s, const struct sp_metrics_fds *fds, int ncpu,
			 void *pcpu)
{
	struct bpf_map_info info;
	__u32 *ids = NULL, key, next, ilen = sizeof(info);
	size_t n = 0, cap = 0, i, j, max;
	struct sp_svc_metric *out;
	int err = 0;

	/* Keys first (the map may change under us: the walk can restart and
	 * repeat some, so they are sorted and made unique, and it is bounded
	 * by twice the map's size), then values. */
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fds->svc_meta, &info, &ilen))
		return 0; /* not a map: no per-Service series */
	max = (size_t)info.max_entries * 2;
	for (err = bpf_map_get_next_key(fds->svc_meta, NULL, &next);
	     !err && n < max; err = bpf_map_get_next_key(fds->svc_meta, &key, &next)) {
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 256;
			__u32 *ni = realloc(ids, nc * sizeof(*ids));

			if (!ni) {
				free(ids);
				return -ENOMEM;
			}
			ids = ni;
			cap = nc;
		}
		ids[n++] = next;
		key = next;
	}
	if (n)
		qsort(ids, n, sizeof(*ids), u32_cmp);
	out = calloc(n ? n : 1, sizeof(*out));
	if (!out) {
		free(ids);
		return -ENOMEM;
	}
	for (i = 0, j = 0; i < n; i++) {
		struct sp_svc_meta meta;

		if (i && ids[i] == ids[i - 1])
			continue;
		if (bpf_map_lookup_elem(fds->svc_meta, &ids[i], &meta))
			continue; /* removed meanwhile */
		meta.name[sizeof(meta.name) - 1] = '\0';
		if (sp_svc_metric_labels(meta.name, &out[j])) {
			pr_debug("metrics: svc_id %u: unexpected name \"%s\", skipped", ids[i],
				 meta.name);
			continue;
		}
		if (bpf_map_lookup_elem(fds->svc_stats, &ids[i], pcpu))
			continue;
		percpu_sum(pcpu, ncpu, sizeof(struct sp_svc_stats) / 8, (__u64 *)&out[j].st);
		j++;
	}
	free(ids);
	/* One series per label set: families and policy tables summed. */
	if (j)
		qsort(out, j, sizeof(*out), svc_metric_cmp);
	for (i = 0, n = 0; i < j; i++) {
		if (n && !svc_metric_cmp(&out[n - 1], &out[i])) {
			__u64 *dst = (__u64 *)&out[n - 1].st;
			const __u64 *src = (const __u64 *)&out[i].st;
			size_t w;

			for (w = 0; w < sizeof(out[i].st) / 8; w++)
				dst[w] += src[w];
			continue;
		}
		if (n != i)
			out[n] = out[i];
		n++;
	}
	s->svcs = out;
	s->n_svcs = n;
	return 0;
}

int sp_metrics_read_maps(struct sp_metrics_snap *s, const struct sp_metrics_fds *fds)
{
	int ncpu = libbpf_num_possible_cpus(), err = 0;
	size_t vmax = sizeof(struct sp_stats);
	__u64 sum[sizeof(struct sp_stats) / 8];
	void *pcpu;
	__u32 k;

	_Static_assert(sizeof(struct sp_stats) % 8 == 0, "sp_stats is __u64 fields");
	_Static_assert(sizeof(struct sp_reason_count) % 8 == 0, "sp_reason_count is __u64 fields");
	_Static_assert(sizeof(struct sp_svc_stats) % 8 == 0, "sp_svc_stats is __u64 fields");
	_Static_assert(sizeof(struct sp_svc_stats) <= sizeof(struct sp_stats), "vmax");
	_Static_assert(sizeof(struct sp_reason_count) <= sizeof(struct sp_stats), "vmax");
	if (ncpu <= 0) {
		pr_debug("metrics: count possible CPUs: %s", strerror(-ncpu));
		return 0;
	}
	pcpu = calloc((size_t)ncpu, vmax);
	if (!pcpu)
		return -ENOMEM;
	memset(&s->dp, 0, sizeof(s->dp));
	s->dp_known = fds->stats >= 0;
	for (k = 0; s->dp_known && k < SP_SLOTS; k++) {
		size_t w;

		if (bpf_map_lookup_elem(fds->stats, &k, pcpu)) {
			pr_debug("metrics: read sp_stats slot %u: %s", k, strerror(errno));
			s->dp_known = false;
			break;
		}
		percpu_sum(pcpu, ncpu, ARRAY_LEN(sum), sum);
		for (w = 0; w < ARRAY_LEN(sum); w++)
			((__u64 *)&s->dp)[w] += sum[w];
	}
	s->reasons_known = fds->reasons >= 0;
	for (k = 0; s->reasons_known && k < SP_R_MAX; k++) {
		if (bpf_map_lookup_elem(fds->reasons, &k, pcpu)) {
			pr_debug("metrics: read sp_reasons %u: %s", k, strerror(errno));
			s->reasons_known = false;
			break;
		}
		percpu_sum(pcpu, ncpu, sizeof(s->reasons[k]) / 8, (__u64 *)&s->reasons[k]);
	}
	if (s->per_service && fds->svc_meta >= 0 && fds->svc_stats >= 0)
		err = read_services(s, fds, ncpu, pcpu);
	free(pcpu);
	return err;
}

void sp_metrics_read_rss(uint64_t *rss, uint64_t *peak)
{
	long page = sysconf(_SC_PAGESIZE);
	unsigned long long size, res, kb;
	char line[256];
	FILE *f;

	*rss = *peak = 0;
	f = fopen("/proc/self/statm", "re");
	if (f) {
		if (fscanf(f, "%llu %llu", &size, &res) == 2 && page > 0)
			*rss = res * (uint64_t)page;
		fclose(f);
	}
	/* The high-water mark: statm has none. */
	f = fopen("/proc/self/status", "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %llu kB", &kb) == 1)
			*peak = kb * 1024;
	fclose(f);
}

void sp_metrics_snap_free(struct sp_metrics_snap *s)
{
	free(s->svcs);
	s->svcs = NULL;
	s->n_svcs = 0;
}

/* ---- The table ------------------------------------------------------------------- */

enum emit {
	E_U64, /* a uint64_t field of the snapshot */
	E_F64, /* a double field */
	E_BOOL, /* a bool field, as 0 or 1 */
	E_HIST, /* a struct sp_hist field, with bounds */
	E_NOLOCAL, /* traffic_policy="internal|external" */
	E_REASON, /* reason="...": a struct sp_reason_count field */
	E_SVC, /* per Service: a struct sp_svc_stats field */
	E_DP, /* every sp_stat_fields entry, one family each */
};

/* When a family is on the page at all. */
enum cond {
	C_ALWAYS,
	C_GC, /* a conntrack collector pass has run */
	C_DP, /* sp_stats was read */
	C_REASONS, /* sp_reasons was read */
	C_SVC, /* --metrics-per-service */
};

struct metric_def {
	const char *name;
	const char *type; /* counter, gauge, histogram */
	const char *help;
	enum emit emit;
	enum cond cond;
	size_t off; /* into the snapshot (or the E_REASON / E_SVC struct) */
	const struct sp_hist_bounds *bounds; /* E_HIST */
};

#define SNAP(f) offsetof(struct sp_metrics_snap, f)
static const struct metric_def defs[] = {
	/* kube-proxy's (pkg/proxy/metrics), same names, types and buckets. */
	{ "kubeproxy_sync_proxy_rules_duration_seconds", "histogram",
	  "SyncProxyRules latency in seconds: one apply of the source's state to the maps "
	  "(resolve, diff, map writes)",
	  E_HIST, C_ALWAYS, SNAP(sync_hist), &sp_hist_sync_seconds },
	{ "kubeproxy_network_programming_duration_seconds", "histogram",
	  "In Cluster Network Programming Latency in seconds: from an EndpointSlice's "
	  "endpoints.kubernetes.io/last-change-trigger-time to its change being in the maps",
	  E_HIST, C_ALWAYS, SNAP(netprog_hist), &sp_hist_netprog_seconds },
	{ "kubeproxy_sync_proxy_rules_last_timestamp_seconds", "gauge",
	  "The last time proxy rules were successfully synced", E_F64, C_ALWAYS,
	  SNAP(last_sync_ts) },
	{ "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds", "gauge",
	  "The last time a sync of proxy rules was queued", E_F64, C_ALWAYS,
	  SNAP(last_queued_ts) },
	{ "kubeproxy_sync_proxy_rules_endpoint_changes_total", "counter",
	  "Cumulative proxy rules Endpoint changes (EndpointSlice events; with a config file, "
	  "Service ports whose endpoints changed)",
	  E_U64, C_ALWAYS, SNAP(slice_changes) },
	{ "kubeproxy_sync_proxy_rules_endpoint_changes_pending", "gauge",
	  "Pending proxy rules Endpoint changes", E_U64, C_ALWAYS, SNAP(slice_pending) },
	{ "kubeproxy_sync_proxy_rules_service_changes_total", "counter",
	  "Cumulative proxy rules Service changes (Service events; with a config file, Service "
	  "ports added or removed)",
	  E_U64, C_ALWAYS, SNAP(svc_changes) },
	{ "kubeproxy_sync_proxy_rules_service_changes_pending", "gauge",
	  "Pending proxy rules Service changes", E_U64, C_ALWAYS, SNAP(svc_pending) },
	/* A gauge named _total, as kube-proxy has it (promtool's lint says so;
	 * the tests allow exactly this one). */
	{ "kubeproxy_sync_proxy_rules_no_local_endpoints_total", "gauge",
	  "Number of services with a Local traffic policy and no endpoints (per Service port and "
	  "IP family)",
	  E_NOLOCAL, C_ALWAYS, 0 },
	{ "process_resident_memory_bytes", "gauge", "Resident memory size in bytes", E_U64,
	  C_ALWAYS, SNAP(rss_bytes) },

	/* svcplane's own: the daemon. */
	{ "svcplane_up", "gauge", "1 once a full state from the source is applied (readiness)",
	  E_BOOL, C_ALWAYS, SNAP(synced) },
	{ "svcplane_services", "gauge", "Service ports (per IP family and policy table) in the maps",
	  E_U64, C_ALWAYS, SNAP(services) },
	{ "svcplane_backends", "gauge", "Distinct backends (address, port) in the maps", E_U64,
	  C_ALWAYS, SNAP(backends) },
	{ "svcplane_sync_total", "counter", "Applies of the source's state to the maps", E_U64,
	  C_ALWAYS, SNAP(applies) },
	{ "svcplane_sync_errors_total", "counter",
	  "Applies that failed or skipped a Service (capacity)", E_U64, C_ALWAYS,
	  SNAP(apply_errors) },
	{ "svcplane_last_sync_duration_seconds", "gauge",
	  "Duration of the last apply (svcplane_last_sync_milliseconds before)", E_F64, C_ALWAYS,
	  SNAP(last_apply_s) },
	{ "svcplane_resident_memory_peak_bytes", "gauge",
	  "Peak resident memory size of the daemon in bytes (VmHWM)", E_U64, C_ALWAYS,
	  SNAP(rss_peak_bytes) },
	{ "svcplane_maglev_memory_bytes", "gauge",
	  "Bytes of sp_maglev holding Maglev tables (64-byte chunks in use)", E_U64, C_ALWAYS,
	  SNAP(maglev_bytes) },
	{ "svcplane_maglev_capacity_bytes", "gauge", "Size of sp_maglev in bytes (--maglev-chunks)",
	  E_U64, C_ALWAYS, SNAP(maglev_capacity_bytes) },

	/* Conntrack. */
	{ "svcplane_ct_capacity", "gauge", "Conntrack entries sp_ct4 and sp_ct6 hold (--ct-size + --ct-size-v6; 2 per flow)",
	  E_U64, C_ALWAYS, SNAP(ct_capacity) },
	{ "svcplane_ct_entries", "gauge", "Live conntrack entries at the last collector pass",
	  E_U64, C_GC, SNAP(ct_entries) },
	{ "svcplane_ct_pressure", "gauge",
	  "1 when live entries filled 90% of the table after the last collector pass", E_BOOL,
	  C_GC, SNAP(ct_pressure) },
	{ "svcplane_snat_ports_in_use", "gauge",
	  "SNAT source ports (--snat-ports) held by live flows at the last collector pass", E_U64,
	  C_GC, SNAP(snat_ports) },
	{ "svcplane_ct_gc_last_duration_seconds", "gauge",
	  "Duration of the last collector pass (svcplane_ct_gc_last_milliseconds before)", E_F64,
	  C_GC, SNAP(gc_last_s) },
	{ "svcplane_ct_gc_runs_total", "counter", "Conntrack collector passes", E_U64, C_ALWAYS,
	  SNAP(gc_runs) },
	{ "svcplane_ct_gc_deleted_total", "counter",
	  "Conntrack entries deleted by the collector (expired, or closed flows dropped early)",
	  E_U64, C_ALWAYS, SNAP(gc_deleted) },
	{ "svcplane_ct_gc_errors_total", "counter", "Collector passes that failed", E_U64,
	  C_ALWAYS, SNAP(gc_errors) },
	{ "svcplane_ct_gc_early_drops_total", "counter",
	  "Entries of closed flows (RST, TIME_WAIT) evicted before their deadline because the "
	  "table was half full",
	  E_U64, C_ALWAYS, SNAP(gc_early) },

	/* The datapath: sp_stats (svcplane_<field>_total), sp_reasons, sp_svc_stats. */
	{ "svcplane_", "counter", NULL, E_DP, C_DP, 0 },
	{ "svcplane_reason_packets_total", "counter",
	  "Packets dropped, rejected or passed without NAT, by reason (svcplane stats)", E_REASON,
	  C_REASONS, offsetof(struct sp_reason_count, packets) },
	{ "svcplane_reason_bytes_total", "counter",
	  "Bytes dropped, rejected or passed without NAT, by reason", E_REASON, C_REASONS,
	  offsetof(struct sp_reason_count, bytes) },
	{ "svcplane_service_packets_total", "counter", "Packets to the Service port's frontends",
	  E_SVC, C_SVC, offsetof(struct sp_svc_stats, packets) },
	{ "svcplane_service_bytes_total", "counter", "Bytes to the Service port's frontends",
	  E_SVC, C_SVC, offsetof(struct sp_svc_stats, bytes) },
	{ "svcplane_service_new_flows_total", "counter", "New flows to the Service port", E_SVC,
	  C_SVC, offsetof(struct sp_svc_stats, new_flows) },
	{ "svcplane_service_rejects_total", "counter",
	  "Packets to the Service port answered with a reject (no endpoint)", E_SVC, C_SVC,
	  offsetof(struct sp_svc_stats, rejects) },
	{ "svcplane_service_drops_total", "counter", "Packets to the Service port dropped", E_SVC,
	  C_SVC, offsetof(struct sp_svc_stats, drops) },
};
#undef SNAP

static void head(FILE *f, const char *name, const char *suffix, const char *type,
		 const char *help)
{
	fprintf(f, "# HELP %s%s %s\n# TYPE %s%s %s\n", name, suffix, help, name, suffix, type);
}

static __u64 u64_at(const void *base, size_t off)
{
	__u64 v;

	memcpy(&v, (const char *)base + off, sizeof(v));
	return v;
}

static void emit_hist(FILE *f, const char *name, const struct sp_hist *h,
		      const struct sp_hist_bounds *b)
{
	uint64_t cum = 0;
	size_t i;

	for (i = 0; i < b->n; i++) {
		cum += h->bucket[i];
		fprintf(f, "%s_bucket{le=\"%.15g\"} %llu\n", name, b->le[i],
			(unsigned long long)cum);
	}
	cum += h->bucket[b->n];
	fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
	fprintf(f, "%s_sum %.15g\n%s_count %llu\n", name, h->sum, name,
		(unsigned long long)h->count);
}

static void emit_svc(FILE *f, const struct metric_def *d, const struct sp_metrics_snap *s)
{
	char ns[2 * SP_SVC_NAME_LEN], svc[2 * SP_SVC_NAME_LEN], port[2 * SP_SVC_NAME_LEN];
	size_t i;

	for (i = 0; i < s->n_svcs; i++) {
		const struct sp_svc_metric *m = &s->svcs[i];

		fprintf(f, "%s{namespace=\"%s\",service=\"%s\",port=\"%s\",protocol=\"%s\"} %llu\n",
			d->name, sp_metrics_label_escape(m->ns, ns, sizeof(ns)),
			sp_metrics_label_escape(m->service, svc, sizeof(svc)),
			sp_metrics_label_escape(m->port, port, sizeof(port)), m->proto,
			(unsigned long long)u64_at(&m->st, d->off));
	}
}

static bool wanted(const struct metric_def *d, const struct sp_metrics_snap *s)
{
	switch (d->cond) {
	case C_GC:
		return s->gc_known;
	case C_DP:
		return s->dp_known;
	case C_REASONS:
		return s->reasons_known;
	case C_SVC:
		return s->per_service;
	default:
		return true;
	}
}

void sp_metrics_write(FILE *f, const struct sp_metrics_snap *s)
{
	static const char *const rnames[] = SP_REASON_NAMES;
	const struct metric_def *d;
	const char *p;
	char name[128];
	size_t i;
	int k;

	_Static_assert(ARRAY_LEN(rnames) == SP_R_MAX, "SP_REASON_NAMES covers enum sp_reason");
	for (d = defs; d < defs + ARRAY_LEN(defs); d++) {
		if (!wanted(d, s))
			continue;
		if (d->emit == E_DP) {
			for (i = 0; i < sp_n_stat_fields; i++) {
				snprintf(name, sizeof(name), "%s%s_total", d->name,
					 sp_stat_fields[i].name);
				head(f, name, "", d->type, sp_stat_fields[i].help);
				fprintf(f, "%s %llu\n", name,
					(unsigned long long)u64_at(&s->dp, sp_stat_fields[i].off));
			}
			continue;
		}
		head(f, d->name, "", d->type, d->help);
		p = (const char *)s + d->off;
		switch (d->emit) {
		case E_U64:
			fprintf(f, "%s %llu\n", d->name, (unsigned long long)u64_at(s, d->off));
			break;
		case E_F64:
			fprintf(f, "%s %.15g\n", d->name, *(const double *)p);
			break;
		case E_BOOL:
			fprintf(f, "%s %d\n", d->name, *(const bool *)p ? 1 : 0);
			break;
		case E_HIST:
			emit_hist(f, d->name, (const struct sp_hist *)p, d->bounds);
			break;
		case E_NOLOCAL:
			fprintf(f, "%s{traffic_policy=\"internal\"} %llu\n", d->name,
				(unsigned long long)s->no_local_internal);
			fprintf(f, "%s{traffic_policy=\"external\"} %llu\n", d->name,
				(unsigned long long)s->no_local_external);
			break;
		case E_REASON:
			for (k = 0; k < SP_R_MAX; k++)
				fprintf(f, "%s{reason=\"%s\"} %llu\n", d->name, rnames[k],
					(unsigned long long)u64_at(&s->reasons[k], d->off));
			break;
		case E_SVC:
			emit_svc(f, d, s);
			break;
		case E_DP:
			break;
		}
	}
}
