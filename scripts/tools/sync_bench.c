// SPDX-License-Identifier: Apache-2.0
/*
 * Control-plane cost of the map sync (user/sync.c) against real BPF maps:
 * time to program N Services of E endpoints from empty, and the time to
 * apply one endpoint change when N Services are loaded, with proof that
 * only that Service was rebuilt: as a full apply (every Service compared)
 * and as the daemon applies it, the diff of the desired states and only
 * the Services that differ (sp_sync_apply_ids). Neither waits for the
 * datapath to be done with the old table (a membarrier): sync.c's
 * reclaimer thread does, and an apply frees what earlier ones retired
 * whose wait has ended. Prints "key=value" lines for bench.sh.
 *
 *   sync_bench [--services N] [--endpoints E] [--runs R]
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "svcplane.h"
#include "log.h"
#include "maglev.h"
#include "resolve.h"
#include "sync.h"

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int mk(enum bpf_map_type t, size_t k, size_t v, uint32_t n, uint32_t flags)
{
	LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = flags);

	return bpf_map_create(t, NULL, k, v, n, &o);
}

/* Service i: ClusterIP 10.96.x.y:80 -> E endpoints 10.(128+i/65536).(i/256%256).(i%256)
 * ports 8080+j; endpoint change = the last endpoint's port moves. */
static void fill(struct sp_desired *d, size_t n, size_t e, size_t changed)
{
	size_t i, j;

	d->n = n;
	d->svc = calloc(n, sizeof(*d->svc));
	for (i = 0; i < n; i++) {
		struct sp_want_svc *w = &d->svc[i];

		snprintf(w->id, sizeof(w->id), "bench/svc%06zu:p/tcp/v4", i);
		w->proto = 6;
		w->family = SP_FAMILY_V4;
		w->n_fe = 1;
		w->fe = calloc(1, sizeof(*w->fe));
		w->fe[0].ip.family = 4;
		w->fe[0].ip.b[0] = 10;
		w->fe[0].ip.b[1] = 96 + i / 65536;
		w->fe[0].ip.b[2] = i / 256 % 256;
		w->fe[0].ip.b[3] = i % 256;
		w->fe[0].port = 80;
		w->n_be = e;
		w->be = calloc(e, sizeof(*w->be));
		for (j = 0; j < e; j++) {
			w->be[j].ip.family = 4;
			w->be[j].ip.b[0] = 10;
			w->be[j].ip.b[1] = 128 + i / 65536;
			w->be[j].ip.b[2] = i / 256 % 256;
			w->be[j].ip.b[3] = i % 256;
			w->be[j].port = 8080 + j + (i == changed && j == e - 1 ? 100 : 0);
			w->be[j].weight = 1;
		}
		sp_maglev_canonical(w->be, e);
	}
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "services", required_argument, NULL, 'n' },
		{ "endpoints", required_argument, NULL, 'e' },
		{ "runs", required_argument, NULL, 'r' },
		{ "no-mmap", no_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	size_t n = 10000, e = 10, runs = 5, r;
	struct sp_sync_maps m = { 0 };
	struct sp_desired base = { 0 }, changed = { 0 };
	const struct sp_desired *cur;
	struct sp_sync_stats st;
	struct sp_sync *s = NULL;
	double t0, full = 0, *chg, *chg_ids;
	uint32_t maglev_flags = BPF_F_MMAPABLE; /* as the daemon's sp_maglev */
	int c, err = 1;

	while ((c = getopt_long(argc, argv, "n:e:r:h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			n = strtoul(optarg, NULL, 0);
			break;
		case 'e':
			e = strtoul(optarg, NULL, 0);
			break;
		case 'r':
			runs = strtoul(optarg, NULL, 0);
			break;
		case 'M':
			maglev_flags = 0;
			break;
		default:
			fprintf(c == 'h' ? stdout : stderr,
				"Usage: sync_bench [--services N] [--endpoints E] [--runs R] [--no-mmap]\n"
				"Times programming N Services of E endpoints into fresh BPF maps,\n"
				"then R single-endpoint changes with N Services loaded.\n"
				"--no-mmap: sp_maglev without BPF_F_MMAPABLE (tables through bpf(2)).\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (!n || !e || e > 1000 || n > 1000000 || !runs || runs > 1000) {
		fprintf(stderr, "sync_bench: out of range\n");
		return 2;
	}
	sp_log_level = SP_LOG_WARN;
	m.max_svc_ids = n + 16;
	m.max_backends = n * e + 16;
	m.maglev_chunks = (uint32_t)((n + 16) * ((2 * e + sp_maglev_pick_m(e, 0)) / 32 + 2) * 2);
	m.fd_services = mk(BPF_MAP_TYPE_HASH, sizeof(struct sp_svc_key), sizeof(struct sp_svc),
			   m.max_svc_ids, BPF_F_NO_PREALLOC);
	/* As the daemon's (bpf/maps.h): an array of ids 1 .. max. */
	m.fd_backends = mk(BPF_MAP_TYPE_ARRAY, 4, sizeof(struct sp_backend), m.max_backends + 1,
			   BPF_F_MMAPABLE);
	m.fd_maglev = mk(BPF_MAP_TYPE_ARRAY, 4, sizeof(struct sp_maglev_chunk), m.maglev_chunks,
			  maglev_flags);
	m.fd_svc_meta = mk(BPF_MAP_TYPE_HASH, 4, sizeof(struct sp_svc_meta), m.max_svc_ids,
			   BPF_F_NO_PREALLOC);
	m.fd_svc_stats = mk(BPF_MAP_TYPE_PERCPU_ARRAY, 4, sizeof(struct sp_svc_stats),
			    m.max_svc_ids, 0);
	m.fd_node_addrs = mk(BPF_MAP_TYPE_HASH, sizeof(struct sp_node_addr_key), 1, 16, 0);
	if (m.fd_services < 0 || m.fd_backends < 0 || m.fd_maglev < 0 || m.fd_svc_meta < 0 ||
	    m.fd_svc_stats < 0 || m.fd_node_addrs < 0) {
		fprintf(stderr, "sync_bench: create maps: %s (root needed)\n", strerror(errno));
		return 1;
	}
	chg = calloc(runs, sizeof(*chg));
	chg_ids = calloc(runs, sizeof(*chg_ids));
	fill(&base, n, e, (size_t)-1);
	fill(&changed, n, e, n / 2);
	if (!chg || !chg_ids || sp_sync_new(&m, &s))
		goto out;
	t0 = now_ms();
	if (sp_sync_apply(s, &base, &st)) {
		fprintf(stderr, "sync_bench: initial apply failed\n");
		goto out;
	}
	full = now_ms() - t0;
	printf("sync_full services=%zu endpoints=%zu ms=%.1f services_added=%zu backends=%zu\n", n,
	       e, full, st.svc_added, sp_sync_n_backends(s));
	for (r = 0; r < runs; r++) {
		t0 = now_ms();
		if (sp_sync_apply(s, r % 2 ? &base : &changed, &st)) {
			fprintf(stderr, "sync_bench: change apply failed\n");
			goto out;
		}
		chg[r] = now_ms() - t0;
		if (st.svc_rebuilt != 1 || st.fe_written != 1) {
			fprintf(stderr, "sync_bench: expected one rebuild and one frontend write, "
					"got %zu and %zu\n",
				st.svc_rebuilt, st.fe_written);
			goto out;
		}
	}
	qsort(chg, runs, sizeof(*chg), cmp_d);
	printf("sync_change services=%zu endpoints=%zu runs=%zu median_ms=%.2f min_ms=%.2f "
	       "max_ms=%.2f rebuilt_per_change=1\n",
	       n, e, runs, chg[runs / 2], chg[0], chg[runs - 1]);
	/* The maps hold what the last change of the loop above wrote. */
	cur = runs % 2 ? &changed : &base;
	for (r = 0; r < runs; r++) {
		const struct sp_desired *from = cur, *to = cur == &base ? &changed : &base;
		const char **ids;
		size_t n_ids;

		cur = to;
		t0 = now_ms();
		c = sp_desired_diff(from, to, &ids, &n_ids);
		if (!c) {
			c = sp_sync_apply_ids(s, to, ids, n_ids, &st);
			free(ids);
		}
		if (c) {
			fprintf(stderr, "sync_bench: listed apply failed: %s\n", strerror(-c));
			goto out;
		}
		chg_ids[r] = now_ms() - t0;
		if (n_ids != 1 || st.svc_rebuilt != 1 || st.fe_written != 1) {
			fprintf(stderr, "sync_bench: expected one id, one rebuild and one frontend "
					"write, got %zu, %zu and %zu\n",
				n_ids, st.svc_rebuilt, st.fe_written);
			goto out;
		}
	}
	qsort(chg_ids, runs, sizeof(*chg_ids), cmp_d);
	printf("sync_change_ids services=%zu endpoints=%zu runs=%zu median_ms=%.2f min_ms=%.2f "
	       "max_ms=%.2f\n",
	       n, e, runs, chg_ids[runs / 2], chg_ids[0], chg_ids[runs - 1]);
	err = 0;
out:
	free(chg);
	free(chg_ids);
	sp_desired_free(&base);
	sp_desired_free(&changed);
	sp_sync_free(s);
	return err;
}
