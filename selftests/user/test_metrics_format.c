// SPDX-License-Identifier: Apache-2.0
/*
 * /metrics formatting (user/metrics.c): histogram buckets, the text format
 * (every family with HELP and TYPE, no series twice), label escaping, the
 * per-Service labels and their sums read from real maps, and the
 * EndpointSlice trigger time the network programming histogram starts from.
 * (e2e/test_metrics.sh scrapes a running daemon; this binary has another
 * name so that a CASE of one never selects the other.)
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <json-c/json.h>

#include "svcplane.h"
#include "k8s.h"
#include "metrics.h"
#include "test.h"

/* The page for s, as one malloc'ed string. */
static char *page(const struct sp_metrics_snap *s)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	sp_metrics_write(f, s);
	fclose(f);
	return buf;
}

static void test_hist_buckets(void)
{
	const struct sp_hist_bounds *b = &sp_hist_sync_seconds;
	struct sp_hist h;

	memset(&h, 0, sizeof(h));
	sp_hist_observe(&h, b, 0.001); /* on a bound: that bucket (le is <=) */
	sp_hist_observe(&h, b, 0.0011);
	sp_hist_observe(&h, b, 0);
	sp_hist_observe(&h, b, 100); /* past the last bound: +Inf only */
	sp_hist_observe(&h, b, NAN); /* ignored */
	ASSERT_EQ(h.bucket[0], 2, "le=0.001 holds 0 and 0.001");
	ASSERT_EQ(h.bucket[1], 1, "le=0.002 holds 0.0011");
	ASSERT_EQ(h.bucket[b->n], 1, "+Inf holds 100");
	ASSERT_EQ(h.count, 4, "count (NaN left out)");
	ASSERT_TRUE(fabs(h.sum - 100.0021) < 1e-9, "sum");
	ASSERT_EQ(sp_hist_sync_seconds.n, 15, "kube-proxy's 15 sync buckets");
	ASSERT_EQ(sp_hist_netprog_seconds.n, 80, "kube-proxy's 80 network programming buckets");
	ASSERT_TRUE(sp_hist_netprog_seconds.le[79] == 300, "last netprog bound 5 min");
}

static void test_hist_output(void)
{
	struct sp_metrics_snap s;
	char *p;

	memset(&s, 0, sizeof(s));
	sp_hist_observe(&s.sync_hist, &sp_hist_sync_seconds, 0.0005);
	sp_hist_observe(&s.sync_hist, &sp_hist_sync_seconds, 0.0015);
	sp_hist_observe(&s.sync_hist, &sp_hist_sync_seconds, 20);
	p = page(&s);
	if (!ASSERT_TRUE(p, "page"))
		return;
	/* Cumulative counts, +Inf equal to _count. */
	ASSERT_CONTAINS(p, "kubeproxy_sync_proxy_rules_duration_seconds_bucket{le=\"0.001\"} 1\n",
			"first bucket");
	ASSERT_CONTAINS(p, "kubeproxy_sync_proxy_rules_duration_seconds_bucket{le=\"0.002\"} 2\n",
			"cumulative");
	ASSERT_CONTAINS(p, "kubeproxy_sync_proxy_rules_duration_seconds_bucket{le=\"16.384\"} 2\n",
			"last bound");
	ASSERT_CONTAINS(p, "kubeproxy_sync_proxy_rules_duration_seconds_bucket{le=\"+Inf\"} 3\n",
			"+Inf");
	ASSERT_CONTAINS(p, "kubeproxy_sync_proxy_rules_duration_seconds_count 3\n", "count");
	ASSERT_CONTAINS(p, "kubeproxy_sync_proxy_rules_duration_seconds_sum 20.002\n", "sum");
	ASSERT_CONTAINS(p, "kubeproxy_network_programming_duration_seconds_bucket{le=\"0.25\"} 0\n",
			"empty histogram still listed");
	free(p);
}

/* The family a sample line belongs to: its name, without a histogram's
 * _bucket/_sum/_count when TYPE says histogram. */
static void family_of(const char *pg, const char *line, char *fam, size_t len)
{
	static const char *const sfx[] = { "_bucket", "_sum", "_count" };
	size_t n = strcspn(line, "{ "), i, l;
	char want[256];

	snprintf(fam, len, "%.*s", (int)n, line);
	for (i = 0; i < 3; i++) {
		l = strlen(sfx[i]);
		if (n <= l || strncmp(fam + n - l, sfx[i], l))
			continue;
		snprintf(want, sizeof(want), "# TYPE %.*s histogram\n", (int)(n - l), fam);
		if (strstr(pg, want))
			fam[n - l] = '\0';
	}
}

static int count_of(const char *hay, const char *needle)
{
	int n = 0;

	for (; (hay = strstr(hay, needle)); hay++)
		n++;
	return n;
}

static void test_help_and_type(void)
{
	struct sp_metrics_snap s;
	struct sp_svc_metric svc[2];
	char *p, *line, *save = NULL, *copy, fam[256], want[300];
	int samples = 0;

	memset(&s, 0, sizeof(s));
	memset(svc, 0, sizeof(svc));
	s.gc_known = s.dp_known = s.reasons_known = s.per_service = true;
	ASSERT_EQ(sp_svc_metric_labels("demo/web:http/tcp/v4", &svc[0]), 0, "labels");
	ASSERT_EQ(sp_svc_metric_labels("demo/dns:/udp/v6", &svc[1]), 0, "labels");
	svc[0].st.packets = 7;
	s.svcs = svc;
	s.n_svcs = 2;
	s.dp.new_flows = 3;
	s.reasons[SP_R_NO_BACKEND].packets = 2;
	p = page(&s);
	copy = p ? strdup(p) : NULL;
	if (!ASSERT_TRUE(p && copy, "page"))
		goto out;
	ASSERT_CONTAINS(p, "svcplane_new_flows_total 3\n", "an sp_stats counter");
	ASSERT_CONTAINS(p, "svcplane_reason_packets_total{reason=\"no_backend\"} 2\n", "a reason");
	ASSERT_CONTAINS(p,
			"svcplane_service_packets_total{namespace=\"demo\",service=\"web\","
			"port=\"http\",protocol=\"tcp\"} 7\n",
			"a Service port");
	ASSERT_CONTAINS(p, "service=\"dns\",port=\"\",protocol=\"udp\"} 0\n", "unnamed port");
	ASSERT_CONTAINS(p, "kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy="
			   "\"internal\"} 0\n", "no_local internal");
	ASSERT_CONTAINS(p, "process_resident_memory_bytes ", "RSS");
	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#')
			continue;
		samples++;
		family_of(p, line, fam, sizeof(fam));
		snprintf(want, sizeof(want), "# HELP %s ", fam);
		if (!ASSERT_EQ(count_of(p, want), 1, want))
			fprintf(stderr, "  for: %s\n", line);
		snprintf(want, sizeof(want), "# TYPE %s ", fam);
		if (!ASSERT_EQ(count_of(p, want), 1, want))
			fprintf(stderr, "  for: %s\n", line);
		/* No series twice: the whole line (name, labels) up to the value. */
		snprintf(want, sizeof(want), "\n%.*s ", (int)strcspn(line, " "), line);
		if (!ASSERT_EQ(count_of(p, want), 1, "series once"))
			fprintf(stderr, "  for: %s\n", line);
	}
	ASSERT_TRUE(samples > 100, "a full page");
	ASSERT_TRUE(!strstr(p, "# TYPE svcplane_sync_total gauge"), "counter type");
	s.per_service = false;
	free(p);
	p = page(&s);
	ASSERT_TRUE(p && !strstr(p, "svcplane_service_"), "--metrics-per-service off: none");
	s.gc_known = false;
	free(p);
	p = page(&s);
	ASSERT_TRUE(p && !strstr(p, "svcplane_ct_entries"), "no collector pass: no ct_entries");
out:
	free(p);
	free(copy);
}

static void test_label_escape(void)
{
	char buf[64];

	ASSERT_STREQ(sp_metrics_label_escape("a\"b\\c\nd", buf, sizeof(buf)), "a\\\"b\\\\c\\nd",
		     "escaped");
	ASSERT_STREQ(sp_metrics_label_escape("abcdef", buf, 4), "ab", "cut, never overrun");
	ASSERT_STREQ(sp_metrics_label_escape("\"\"\"", buf, 6), "\\\"\\\"", "an escape is never cut in half");
}

static void test_svc_labels(void)
{
	static const char *const bad[] = { "noslash",	  "/web:http/tcp/v4", "demo/web/tcp/v4",
					   "demo/:x/tcp/v4", "demo/web:http/tcp/v5",
					   "demo/web:http/tcp/v4/xx", "demo/web:http/tcp",
					   "demo/web:http/toolongproto/v4" };
	struct sp_svc_metric m;
	size_t i;

	ASSERT_EQ(sp_svc_metric_labels("ns1/svc-a:dns/udp/v6/ext", &m), 0, "ext table");
	ASSERT_STREQ(m.ns, "ns1", "namespace");
	ASSERT_STREQ(m.service, "svc-a", "service");
	ASSERT_STREQ(m.port, "dns", "port");
	ASSERT_STREQ(m.proto, "udp", "protocol");
	ASSERT_EQ(sp_svc_metric_labels("a/b:/tcp/v4/all", &m), 0, "all table, unnamed port");
	ASSERT_STREQ(m.port, "", "unnamed port");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (!ASSERT_EQ(sp_svc_metric_labels(bad[i], &m), -EINVAL, "bad name"))
			fprintf(stderr, "  for: %s\n", bad[i]);
}

/* svc_ids of one Service port in two families and an /ext table sum into
 * one series; another port stays apart; a name of no known shape is left out. */
static void test_read_services(void)
{
	static const char *const names[] = { "demo/web:http/tcp/v4", "demo/web:http/tcp/v6",
					     "demo/web:http/tcp/v4/ext", "demo/web:https/tcp/v4",
					     "garbage" };
	int ncpu = libbpf_num_possible_cpus(), meta = -1, st = -1;
	struct sp_metrics_fds fds = { .stats = -1, .reasons = -1 };
	struct sp_metrics_snap s;
	struct sp_svc_stats *v = NULL;
	__u32 id;
	int c;

	memset(&s, 0, sizeof(s));
	meta = bpf_map_create(BPF_MAP_TYPE_HASH, NULL, 4, sizeof(struct sp_svc_meta), 16, NULL);
	st = bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, NULL, 4, sizeof(struct sp_svc_stats), 16,
			    NULL);
	if (!ASSERT_TRUE(meta >= 0 && st >= 0, "create maps (the tests run as root)"))
		goto out;
	v = calloc(ncpu, sizeof(*v));
	if (!ASSERT_TRUE(v, "calloc"))
		goto out;
	for (id = 0; id < 5; id++) {
		struct sp_svc_meta m;

		memset(&m, 0, sizeof(m));
		snprintf(m.name, sizeof(m.name), "%s", names[id]);
		ASSERT_EQ(bpf_map_update_elem(meta, &id, &m, BPF_ANY), 0, "meta");
		for (c = 0; c < ncpu; c++) {
			v[c].packets = 10 + id; /* per CPU: summed */
			v[c].drops = c == 0;
		}
		ASSERT_EQ(bpf_map_update_elem(st, &id, v, BPF_ANY), 0, "stats");
	}
	fds.svc_meta = meta;
	fds.svc_stats = st;
	s.per_service = true;
	if (!ASSERT_EQ(sp_metrics_read_maps(&s, &fds), 0, "read"))
		goto out;
	ASSERT_TRUE(!s.dp_known && !s.reasons_known, "maps not given: not known");
	if (!ASSERT_EQ(s.n_svcs, 2, "two label sets"))
		goto out;
	ASSERT_STREQ(s.svcs[0].port, "http", "sorted");
	ASSERT_EQ(s.svcs[0].st.packets, (10 + 11 + 12) * ncpu, "http: v4 + v6 + ext, every CPU");
	ASSERT_EQ(s.svcs[0].st.drops, 3, "drops");
	ASSERT_STREQ(s.svcs[1].port, "https", "https");
	ASSERT_EQ(s.svcs[1].st.packets, 13 * ncpu, "https alone");
out:
	sp_metrics_snap_free(&s);
	free(v);
	if (meta >= 0)
		close(meta);
	if (st >= 0)
		close(st);
}

static void test_parse_time(void)
{
	static const char *const bad[] = { "2024-13-01T00:00:00Z", "2024-02-30T00:00:00Z",
					   "2024-05-01 10:00:00Z", "2024-05-01T10:00:00",
					   "2024-05-01T10:00:00.Z", "2024-05-01T10:00:00Zx",
					   "2024-05-01T24:00:00Z", "2024-05-01T10:00:00+2:00",
					   "", "x" };
	int64_t ns = 0;
	size_t i;

	ASSERT_EQ(sp_k8s_parse_time("2024-05-01T10:00:00Z", &ns), 0, "plain");
	ASSERT_EQ(ns, 1714557600LL * 1000000000LL, "2024-05-01T10:00:00Z");
	ASSERT_EQ(sp_k8s_parse_time("2024-05-01T10:00:00.5Z", &ns), 0, "fraction");
	ASSERT_EQ(ns, 1714557600LL * 1000000000LL + 500000000, ".5");
	ASSERT_EQ(sp_k8s_parse_time("2024-05-01T10:00:00.123456789123Z", &ns), 0, "long fraction");
	ASSERT_EQ(ns, 1714557600LL * 1000000000LL + 123456789, "digits past ns dropped");
	ASSERT_EQ(sp_k8s_parse_time("2024-05-01T12:00:00+02:00", &ns), 0, "offset");
	ASSERT_EQ(ns, 1714557600LL * 1000000000LL, "+02:00");
	ASSERT_EQ(sp_k8s_parse_time("2000-02-29T00:00:00Z", &ns), 0, "leap day");
	ASSERT_EQ(ns, 951782400LL * 1000000000LL, "2000-02-29");
	ASSERT_EQ(sp_k8s_parse_time("1969-12-31T23:59:59Z", &ns), 0, "before the epoch");
	ASSERT_EQ(ns, -1000000000LL, "1969");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (!ASSERT_EQ(sp_k8s_parse_time(bad[i], &ns), -EINVAL, "bad time"))
			fprintf(stderr, "  for: \"%s\"\n", bad[i]);
}

static void test_trigger_time(void)
{
	struct json_object *o;

	o = json_tokener_parse("{\"metadata\":{\"annotations\":{\"endpoints.kubernetes.io/"
			       "last-change-trigger-time\":\"2024-05-01T10:00:00Z\"}}}");
	ASSERT_EQ(sp_k8s_trigger_time(o), 1714557600LL * 1000000000LL, "annotation");
	json_object_put(o);
	o = json_tokener_parse("{\"metadata\":{\"annotations\":{\"endpoints.kubernetes.io/"
			       "last-change-trigger-time\":\"yesterday\"}}}");
	ASSERT_EQ(sp_k8s_trigger_time(o), 0, "malformed: none");
	json_object_put(o);
	o = json_tokener_parse("{\"metadata\":{\"name\":\"x\"}}");
	ASSERT_EQ(sp_k8s_trigger_time(o), 0, "absent: none");
	json_object_put(o);
}

int main(void)
{
	RUN_TEST(test_hist_buckets);
	RUN_TEST(test_hist_output);
	RUN_TEST(test_help_and_type);
	RUN_TEST(test_label_escape);
	RUN_TEST(test_svc_labels);
	RUN_TEST(test_read_services);
	RUN_TEST(test_parse_time);
	RUN_TEST(test_trigger_time);
	return sp_test_exit();
}
