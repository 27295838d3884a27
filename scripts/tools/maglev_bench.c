// SPDX-License-Identifier: Apache-2.0
/*
 * maglev_bench: figures for user/maglev.c, one result a line, as
 * "maglev_<what> key=value ...", so scripts/bench.sh can grep them:
 *   maglev_build     build time of one table (median, min, max of runs)
 *   maglev_mem       memory of one Service's table and its sp_maglev region
 *   maglev_services  memory and build time for many Services at once
 *   maglev_disrupt   share of the table moved beyond the changed backend's own
 *   maglev_resize    share of flows moved when adaptive M changes size
 *   maglev_sweep     adding / removing one endpoint for every N = 1..1000 at
 *                    the adaptive M: share of the flows of the endpoints that
 *                    stayed that moved, worst per tier and overall
 *   maglev_tail      the same on random address sets: how often one change
 *                    moves more than 1/N + 4%
 *
 * Usage: maglev_bench [--quick] [--sweep]
 *   --quick: fewer runs, for smoke tests; --sweep: only the figures of the
 *   bench's scale part (maglev_services, maglev_sweep, maglev_tail,
 *   maglev_resize)
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "svcplane.h"
#include "maglev.h"

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Backend k of Service s: 10.x.y.z:8080, distinct for every (s, k). */
static void make_backend(struct sp_mg_backend *b, uint32_t s, uint32_t k)
{
	uint32_t v = s * 1000003u + k + 1;

	memset(b, 0, sizeof(*b));
	b->ip.family = SP_FAMILY_V4;
	b->ip.b[0] = 10;
	b->ip.b[1] = v >> 16;
	b->ip.b[2] = v >> 8;
	b->ip.b[3] = v;
	b->port = 8080;
	b->weight = 1;
}

static struct sp_mg_backend *make_set(uint32_t s, size_t n)
{
	struct sp_mg_backend *b = calloc(n + 1, sizeof(*b));
	size_t k;

	if (!b)
		return NULL;
	for (k = 0; k < n; k++)
		make_backend(&b[k], s, k);
	sp_maglev_canonical(b, n);
	return b;
}

/* Bytes of the sp_maglev region (include/svcplane.h): 2 words per backend id, then M. */
static uint64_t region_chunks(size_t n, uint32_t m)
{
	uint64_t words = 2 * (uint64_t)n + m;

	return (words + SP_MAGLEV_CHUNK_WORDS - 1) / SP_MAGLEV_CHUNK_WORDS;
}

static int bench_build(size_t n, uint32_t m, int runs)
{
	struct sp_mg_backend *b = make_set(0, n);
	uint16_t *t = malloc(m * sizeof(*t));
	double *us = calloc(runs, sizeof(*us));
	int i, err = -ENOMEM;

	if (!b || !t || !us)
		goto out;
	err = sp_maglev_build(b, n, m, t); /* warm up caches and the allocator */
	for (i = 0; i < runs && !err; i++) {
		double t0 = now_us();

		err = sp_maglev_build(b, n, m, t);
		us[i] = now_us() - t0;
	}
	if (err) {
		fprintf(stderr, "maglev_bench: build N=%zu M=%u: %s\n", n, m, strerror(-err));
		goto out;
	}
	qsort(us, runs, sizeof(*us), cmp_double);
	printf("maglev_build M=%u N=%zu runs=%d median_us=%.1f min_us=%.1f max_us=%.1f\n", m, n,
	       runs, us[runs / 2], us[0], us[runs - 1]);
out:
	free(us);
	free(t);
	free(b);
	return err;
}

static void print_mem(size_t n, uint32_t m, const char *mode)
{
	printf("maglev_mem mode=%s N=%zu M=%u table_bytes=%llu region_bytes=%llu build_scratch_bytes=%zu\n",
	       mode, n, m, 2ull * m, 64 * (unsigned long long)region_chunks(n, m), 10 * n);
}

/*
 * Many Services of n endpoints each: the sp_maglev space they take against
 * its default capacity, and the time to build all their tables (a full
 * resync) and one of them (what an endpoint change costs on the CPU).
 */
static int bench_services(uint32_t services, size_t n, uint32_t fixed_m, const char *mode)
{
	uint32_t m = sp_maglev_pick_m(n, fixed_m), s;
	uint64_t chunks = region_chunks(n, m) * services;
	uint16_t *t = malloc(m * sizeof(*t));
	struct sp_mg_backend *b;
	double t0, total = 0;
	int err = 0;

	printf("maglev_services mode=%s services=%u N=%u M=%u region_bytes=%llu total_bytes=%llu chunks=%llu capacity_chunks=%u fits=%s\n",
	       mode, services, (unsigned)n, m, 64 * (unsigned long long)region_chunks(n, m),
	       64 * (unsigned long long)chunks, (unsigned long long)chunks, SP_MAGLEV_CHUNKS,
	       chunks <= SP_MAGLEV_CHUNKS ? "yes" : "no");
	if (!t)
		return -ENOMEM;
	for (s = 0; s < services && !err; s++) {
		b = make_set(s, n);
		if (!b) {
			err = -ENOMEM;
			break;
		}
		t0 = now_us();
		err = sp_maglev_build(b, n, m, t);
		total += now_us() - t0;
		free(b);
	}
	free(t);
	if (err) {
		fprintf(stderr, "maglev_bench: build %u Services: %s\n", services, strerror(-err));
		return err;
	}
	printf("maglev_services_build mode=%s services=%u N=%u M=%u total_ms=%.1f per_service_us=%.1f\n",
	       mode, services, (unsigned)n, m, total / 1e3, total / services);
	return 0;
}

static bool same_backend(const struct sp_mg_backend *a, const struct sp_mg_backend *b)
{
	return a->ip.family == b->ip.family && a->port == b->port &&
	       !memcmp(a->ip.b, b->ip.b, sizeof(a->ip.b));
}

/* Slots whose backend changed, other than to or from 'changed': percent of M. */
static double extra_pct(const struct sp_mg_backend *a, const uint16_t *ta,
			const struct sp_mg_backend *b, const uint16_t *tb, uint32_t m,
			const struct sp_mg_backend *changed)
{
	uint32_t e, moved = 0;

	for (e = 0; e < m; e++)
		if (!same_backend(&a[ta[e]], &b[tb[e]]) && !same_backend(&a[ta[e]], changed) &&
		    !same_backend(&b[tb[e]], changed))
			moved++;
	return 100.0 * moved / m;
}

/* Remove backend n/2, then add a new one: extra share moved, each way. */
static int bench_disrupt(size_t n, uint32_t m)
{
	struct sp_mg_backend *a = make_set(0, n), *b = calloc(n + 1, sizeof(*b)), added;
	uint16_t *ta = malloc(m * sizeof(*ta)), *tb = malloc(m * sizeof(*tb));
	double rm = 0, add = 0;
	size_t i, k;
	int err = -ENOMEM;

	if (!a || !b || !ta || !tb)
		goto out;
	err = sp_maglev_build(a, n, m, ta);
	for (i = 0, k = 0; i < n; i++)
		if (i != n / 2)
			b[k++] = a[i];
	if (!err)
		err = sp_maglev_build(b, n - 1, m, tb);
	if (!err)
		rm = extra_pct(a, ta, b, tb, m, &a[n / 2]);
	make_backend(&added, 1, 0);
	memcpy(b, a, n * sizeof(*b));
	b[n] = added;
	sp_maglev_canonical(b, n + 1);
	if (!err)
		err = sp_maglev_build(b, n + 1, m, tb);
	if (!err)
		add = extra_pct(a, ta, b, tb, m, &added);
	if (err)
		fprintf(stderr, "maglev_bench: disruption N=%zu M=%u: %s\n", n, m, strerror(-err));
	else
		printf("maglev_disrupt M=%u N=%zu remove_extra_pct=%.3f add_extra_pct=%.3f\n", m, n,
		       rm, add);
out:
	free(a);
	free(b);
	free(ta);
	free(tb);
	return err;
}

/* The worst of one tier of the sweep. */
struct sweep_worst {
	double add_extra, rm, rm_sum;
	size_t add_n, rm_n, changes, rm_count;
};

static int sweep_one(const struct sp_mg_backend *small, const uint16_t *ts,
		     const struct sp_mg_backend *big, const uint16_t *tbig, size_t n, uint32_t m,
		     struct sweep_worst *w)
{
	uint32_t st, mv;
	double add, rm;
	int err;

	err = sp_maglev_moved(small, n - 1, ts, big, n, tbig, m, &st, &mv);
	add = st ? (double)mv / st - 1.0 / n : 0;
	err = err ?: sp_maglev_moved(big, n, tbig, small, n - 1, ts, m, &st, &mv);
	rm = st ? (double)mv / st : 0;
	if (err)
		return err;
	if (!w->add_n || add > w->add_extra)
		w->add_extra = add, w->add_n = n;
	if (!w->rm_n || rm > w->rm)
		w->rm = rm, w->rm_n = n;
	w->rm_sum += rm;
	w->rm_count++;
	w->changes += 2;
	return 0;
}

static void sweep_print(const char *what, uint32_t m, size_t lo, size_t hi,
			const struct sweep_worst *w)
{
	printf("maglev_sweep %s M=%u N=%zu..%zu changes=%zu add_worst_extra_pct=%.2f add_worst_n=%zu "
	       "rm_worst_pct=%.2f rm_worst_n=%zu rm_mean_pct=%.2f bound=1/N+4%%\n",
	       what, m, lo, hi, w->changes, 100 * w->add_extra, w->add_n, 100 * w->rm, w->rm_n,
	       w->rm_count ? 100 * w->rm_sum / w->rm_count : 0.0);
}

/*
 * For every N from 1 to nmax at the adaptive M: endpoint N added to
 * endpoints 1..N-1 and removed again, and the middle endpoint removed and
 * added back. The share of the flows of the endpoints that stayed that
 * moved: an addition must move 1/N (printed as the share beyond that), a
 * removal none. Per tier (a run of N with one M) and overall; the N where
 * M changes are tier crossings (maglev_resize measures those).
 */
static int bench_sweep(size_t nmax)
{
	struct sp_mg_backend *all = make_set(0, nmax), *b = calloc(nmax, sizeof(*b));
	uint16_t *prev = malloc(SP_MAGLEV_M_MAX * sizeof(*prev));
	uint16_t *cur = malloc(SP_MAGLEV_M_MAX * sizeof(*cur));
	uint16_t *tb = malloc(SP_MAGLEV_M_MAX * sizeof(*tb)), *t;
	struct sweep_worst tier = { 0 }, total = { 0 };
	size_t n, i, k, lo = 1, crossings = 0;
	uint32_t prev_m = 0;
	int err = -ENOMEM;

	if (!all || !b || !prev || !cur || !tb)
		goto out;
	for (n = 1, err = 0; n <= nmax && !err; n++) {
		uint32_t m = sp_maglev_pick_m(n, 0);

		if (n > 1 && m != prev_m) {
			sweep_print("tier", prev_m, lo, n - 1, &tier);
			memset(&tier, 0, sizeof(tier));
			lo = n;
			crossings++;
		}
		err = sp_maglev_build(all, n, m, cur);
		if (!err && n > 1 && m == prev_m) {
			for (i = 0, k = 0; i < n; i++)
				if (i != n / 2)
					b[k++] = all[i];
			err = sp_maglev_build(b, n - 1, m, tb);
			err = err ?: sweep_one(b, tb, all, cur, n, m, &tier);
			err = err ?: sweep_one(all, prev, all, cur, n, m, &tier);
			err = err ?: sweep_one(b, tb, all, cur, n, m, &total);
			err = err ?: sweep_one(all, prev, all, cur, n, m, &total);
		}
		t = prev;
		prev = cur;
		cur = t;
		prev_m = m;
	}
	if (err) {
		fprintf(stderr, "maglev_bench: sweep N=%zu: %s\n", n - 1, strerror(-err));
		goto out;
	}
	sweep_print("tier", prev_m, lo, nmax, &tier);
	printf("maglev_sweep all N=1..%zu crossings=%zu changes=%zu add_worst_extra_pct=%.2f "
	       "add_worst_n=%zu rm_worst_pct=%.2f rm_worst_n=%zu rm_mean_pct=%.2f\n",
	       nmax, crossings, total.changes, 100 * total.add_extra, total.add_n, 100 * total.rm,
	       total.rm_n, total.rm_count ? 100 * total.rm_sum / total.rm_count : 0.0);
out:
	free(all);
	free(b);
	free(prev);
	free(cur);
	free(tb);
	return err;
}

/*
 * The sweep uses one address set; Maglev's extra churn depends on the
 * backends' hashes, so here: sets random addresses of n endpoints, one
 * random endpoint removed. Prints the mean share moved beyond 1/n (the
 * removal seen as the addition the other way) and how many of the sets
 * exceeded 4% beyond.
 */
static int bench_tail(size_t n, int sets)
{
	uint32_t m = sp_maglev_pick_m(n, 0), st, mv;
	struct sp_mg_backend *a = calloc(n, sizeof(*a)), *b = calloc(n, sizeof(*b));
	uint16_t *ta = malloc(m * sizeof(*ta)), *tb = malloc(m * sizeof(*tb));
	uint64_t x = 0x2545f4914f6cdd1dULL ^ n;
	double sum = 0, worst = 0;
	int over = 0, t, err = -ENOMEM;
	size_t i, k, victim;

	if (!a || !b || !ta || !tb)
		goto out;
	for (t = 0, err = 0; t < sets && !err; t++) {
		for (i = 0; i < n; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			make_backend(&a[i], (uint32_t)(x >> 40), (uint32_t)x & 0xffff);
		}
		sp_maglev_canonical(a, n);
		victim = x % n;
		for (i = 0, k = 0; i < n; i++)
			if (i != victim)
				b[k++] = a[i];
		err = sp_maglev_build(a, n, m, ta);
		err = err ?: sp_maglev_build(b, n - 1, m, tb);
		err = err ?: sp_maglev_moved(b, n - 1, tb, a, n, ta, m, &st, &mv);
		if (!err && st) {
			double extra = (double)mv / st - 1.0 / n;

			sum += extra;
			worst = extra > worst ? extra : worst;
			over += extra > 0.04;
		}
	}
	if (err)
		fprintf(stderr, "maglev_bench: tail N=%zu: %s\n", n, strerror(-err));
	else
		printf("maglev_tail M=%u N=%zu sets=%d mean_extra_pct=%.2f worst_extra_pct=%.2f "
		       "over_4pct=%d over_4pct_share=%.1f%%\n",
		       m, n, sets, 100 * sum / sets, 100 * worst, over, 100.0 * over / sets);
out:
	free(a);
	free(b);
	free(ta);
	free(tb);
	return err;
}

/*
 * Adaptive M is a pure function of N (it must be: every node has to pick
 * the same M without knowing the others' history), so when N crosses a
 * threshold the table changes size and a flow's slot, hash % M, changes
 * with it. Measure how many flows change backend then, against the same
 * change at a fixed M. Flows are uniform 64-bit hashes.
 */
static int bench_resize(size_t n)
{
	uint32_t m1 = sp_maglev_pick_m(n, 0), m2 = sp_maglev_pick_m(n + 1, 0);
	struct sp_mg_backend *b = make_set(0, n + 1), *a = NULL;
	uint16_t *t1 = malloc(m2 * sizeof(*t1)), *t2 = malloc(m2 * sizeof(*t2));
	uint16_t *t3 = malloc(m2 * sizeof(*t3));
	uint64_t x = 0x9e3779b97f4a7c15ULL, moved = 0, moved_fixed = 0;
	const uint32_t flows = 1000000;
	uint32_t f;
	int err = -ENOMEM;

	/* a = b without its last backend; b is canonical, so a is too. */
	a = calloc(n, sizeof(*a));
	if (!a || !b || !t1 || !t2 || !t3)
		goto out;
	memcpy(a, b, n * sizeof(*a));
	err = sp_maglev_build(a, n, m1, t1);
	if (!err)
		err = sp_maglev_build(b, n + 1, m2, t2);
	if (!err)
		err = sp_maglev_build(b, n + 1, m1, t3);
	if (err) {
		fprintf(stderr, "maglev_bench: resize N=%zu: %s\n", n, strerror(-err));
		goto out;
	}
	for (f = 0; f < flows; f++) {
		const struct sp_mg_backend *was;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		was = &a[t1[x % m1]];
		moved += !same_backend(was, &b[t2[x % m2]]);
		moved_fixed += !same_backend(was, &b[t3[x % m1]]);
	}
	printf("maglev_resize N=%zu->%zu M=%u->%u moved_pct=%.1f same_m_moved_pct=%.1f\n", n,
	       n + 1, m1, m2, 100.0 * moved / flows, 100.0 * moved_fixed / flows);
out:
	free(a);
	free(b);
	free(t1);
	free(t2);
	free(t3);
	return err;
}

int main(int argc, char **argv)
{
	static const size_t build_n[] = { 10, 100, 1000 };
	static const size_t mem_n[] = { 1, 3, 10, 100, 1000 };
	static const size_t tail_n[] = { 2, 3, 4, 8, 12, 13, 32, 51, 52, 204, 205, 1000 };
	bool quick = false, sweep = false;
	int runs, err = 0, a;
	size_t i, n;

	for (a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "--quick")) {
			quick = true;
		} else if (!strcmp(argv[a], "--sweep")) {
			sweep = true;
		} else {
			fprintf(stderr, "usage: %s [--quick] [--sweep]\n", argv[0]);
			return 2;
		}
	}
	runs = quick ? 5 : 31;
	for (i = 0; !sweep && i < sizeof(build_n) / sizeof(build_n[0]) && !err; i++)
		err = bench_build(build_n[i], 65537, runs);
	for (i = 0; !sweep && i < sizeof(build_n) / sizeof(build_n[0]) && !err; i++)
		err = bench_build(build_n[i], sp_maglev_pick_m(build_n[i], 0), runs);
	for (i = 0; !sweep && i < sizeof(mem_n) / sizeof(mem_n[0]); i++) {
		n = mem_n[i];
		print_mem(n, sp_maglev_pick_m(n, 0), "adaptive");
		print_mem(n, SP_MAGLEV_M_DEFAULT, "fixed");
	}
	if (!err)
		err = bench_services(10000, 10, 0, "adaptive");
	if (!err && !sweep)
		err = bench_services(quick ? 100 : 10000, 10, SP_MAGLEV_M_DEFAULT, "fixed");
	if (!err && !sweep)
		err = bench_disrupt(100, 65537);
	if (!err && !sweep)
		err = bench_disrupt(1000, 65537);
	if (!err && !sweep)
		err = bench_disrupt(100, sp_maglev_pick_m(100, 0));
	if (!err && !sweep)
		err = bench_disrupt(1000, sp_maglev_pick_m(1000, 0));
	if (!err)
		err = bench_sweep(1000);
	for (i = 0; i < sizeof(tail_n) / sizeof(tail_n[0]) && !err; i++)
		err = bench_tail(tail_n[i], tail_n[i] > 51 ? (quick ? 20 : 100) : (quick ? 200 : 1000));
	/* Where adaptive M changes between 1 and 1,000 endpoints. */
	for (n = 1; n < 1000 && !err; n++)
		if (sp_maglev_pick_m(n, 0) != sp_maglev_pick_m(n + 1, 0))
			err = bench_resize(n);
	return err ? 1 : 0;
}
