// SPDX-License-Identifier: Apache-2.0
/*
 * Maglev table tests: the prime list and table-size rule, balance, weights,
 * disruption against the paper's minimal-disruption claim, order
 * independence inside one process and across two, a golden digest that
 * pins the algorithm, and bad input.
 *
 * Run with "--digest SEED" the binary prints the digests of a fixed set of
 * tables built from inputs shuffled with SEED and exits: the cross-process
 * test runs itself that way.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "svcplane.h"
#include "maglev.h"
#include "test.h"

/* Small deterministic PRNG (xorshift64*) for shuffles: no libc state. */
static uint64_t rnd_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

static void shuffle(struct sp_mg_backend *b, size_t n, uint64_t seed)
{
	uint64_t s = seed | 1;
	size_t i;

	for (i = n; i > 1; i--) {
		size_t j = rnd_next(&s) % i;
		struct sp_mg_backend t = b[i - 1];

		b[i - 1] = b[j];
		b[j] = t;
	}
}

static void set_ip(struct sp_mg_backend *b, const char *addr, uint16_t port, uint16_t weight)
{
	int fam = strchr(addr, ':') ? AF_INET6 : AF_INET;

	memset(b, 0, sizeof(*b));
	b->ip.family = fam == AF_INET6 ? SP_FAMILY_V6 : SP_FAMILY_V4;
	if (inet_pton(fam, addr, b->ip.b) != 1) {
		fprintf(stderr, "bad test address %s\n", addr);
		abort();
	}
	b->port = port;
	b->weight = weight;
}

/*
 * Backend k of a made-up Service: pod-like addresses that differ in few
 * bits from one another (the hard case for a hash), IPv4 from 10.244.0.0, or
 * IPv6 in fd00:10:244::/64 when v6. Distinct k give distinct addresses, so a
 * k above a set's range makes a backend that is not in it.
 */
static void make_backend(struct sp_mg_backend *b, size_t k, bool v6, uint16_t weight)
{
	char buf[64];

	if (v6)
		snprintf(buf, sizeof(buf), "fd00:10:244::%zx:%zx", k >> 16, k & 0xffff);
	else
		snprintf(buf, sizeof(buf), "10.%zu.%zu.%zu", 244 + (k >> 16), (k >> 8) & 0xff,
			 k & 0xff);
	set_ip(b, buf, 8080, weight);
}

static struct sp_mg_backend *make_set(size_t n, uint16_t weight)
{
	struct sp_mg_backend *b = calloc(n ? n : 1, sizeof(*b));
	size_t k;

	if (!b)
		abort();
	for (k = 0; k < n; k++)
		make_backend(&b[k], k + 1, false, weight);
	sp_maglev_canonical(b, n);
	return b;
}

static uint16_t *build(const struct sp_mg_backend *b, size_t n, uint32_t m, int *err)
{
	uint16_t *t = malloc(m * sizeof(*t));

	if (!t)
		abort();
	*err = sp_maglev_build(b, n, m, t);
	return t;
}

static void count_entries(const uint16_t *t, uint32_t m, size_t n, uint32_t *cnt)
{
	uint32_t e;

	memset(cnt, 0, n * sizeof(*cnt));
	for (e = 0; e < m; e++)
		if (t[e] < n)
			cnt[t[e]]++;
}

static bool same_backend(const struct sp_mg_backend *a, const struct sp_mg_backend *b)
{
	return a->ip.family == b->ip.family && a->port == b->port &&
	       !memcmp(a->ip.b, b->ip.b, sizeof(a->ip.b));
}

static bool is_prime(uint32_t v)
{
	uint32_t d;

	if (v < 2)
		return false;
	for (d = 2; d * d <= v; d++)
		if (v % d == 0)
			return false;
	return true;
}

static void test_prime_list(void)
{
	size_t n, i;
	const uint32_t *p = sp_maglev_primes(&n);
	bool has_default = false, has_16381 = false, has_65537 = false;

	if (!ASSERT_TRUE(p && n > 10, "list"))
		return;
	ASSERT_EQ(p[0], SP_MAGLEV_M_MIN, "first prime");
	ASSERT_EQ(p[n - 1], SP_MAGLEV_M_MAX, "last prime");
	for (i = 0; i < n; i++) {
		ASSERT_TRUE(is_prime(p[i]), "listed value is prime");
		ASSERT_TRUE(sp_maglev_m_valid(p[i]), "listed value is valid");
		if (i)
			ASSERT_TRUE(p[i] > p[i - 1], "ascending");
		/* Steps of about 1.26x: the adaptive rule wastes little. */
		if (i)
			ASSERT_LE((double)p[i] / p[i - 1], 1.3, "step between listed primes");
		has_default |= p[i] == SP_MAGLEV_M_DEFAULT;
		has_16381 |= p[i] == 16381;
		has_65537 |= p[i] == 65537;
	}
	ASSERT_TRUE(has_default && has_16381 && has_65537, "default, 16381, 65537 listed");
	ASSERT_TRUE(!sp_maglev_m_valid(0), "0 invalid");
	ASSERT_TRUE(!sp_maglev_m_valid(250), "250 invalid");
	ASSERT_TRUE(!sp_maglev_m_valid(65521), "unlisted prime invalid");
	ASSERT_TRUE(!sp_maglev_m_valid(131073), "beyond max invalid");
}

static void test_pick_m(void)
{
	static const size_t ns[] = { 0, 1, 2, 3, 4, 10, 12, 13, 51, 52, 100, 204, 205, 1000, 65535 };
	size_t nt, i, j, crossings = 0;
	const uint32_t *t = sp_maglev_tiers(&nt);
	char what[96];

	/* Tiers: listed, at least 4x apart, so crossings are rare. */
	ASSERT_EQ(nt, 5, "five tiers");
	ASSERT_EQ(t[0], SP_MAGLEV_M_MIN, "first tier is the smallest listed prime");
	for (i = 0; i < nt; i++) {
		ASSERT_TRUE(sp_maglev_m_valid(t[i]), "tier is a listed prime");
		if (i)
			ASSERT_TRUE((double)t[i] / t[i - 1] >= 4.0, "tiers at least 4x apart");
	}
	for (i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
		uint32_t m = sp_maglev_pick_m(ns[i], 0), expect = t[nt - 1];

		/* The rule, spelt out: smallest tier >= 80 N, else the largest. */
		for (j = 0; j < nt; j++) {
			if (t[j] >= (uint64_t)ns[i] * 80) {
				expect = t[j];
				break;
			}
		}
		snprintf(what, sizeof(what), "adaptive M for N=%zu", ns[i]);
		ASSERT_EQ(m, expect, what);
	}
	ASSERT_EQ(sp_maglev_pick_m(3, 0), 251, "N=3");
	ASSERT_EQ(sp_maglev_pick_m(4, 0), 1021, "N=4");
	ASSERT_EQ(sp_maglev_pick_m(10, 0), 1021, "N=10");
	ASSERT_EQ(sp_maglev_pick_m(12, 0), 1021, "N=12");
	ASSERT_EQ(sp_maglev_pick_m(13, 0), 4093, "N=13");
	ASSERT_EQ(sp_maglev_pick_m(100, 0), 16381, "N=100");
	ASSERT_EQ(sp_maglev_pick_m(205, 0), 65537, "N=205");
	ASSERT_EQ(sp_maglev_pick_m(1000, 0), 65537, "N=1000");
	ASSERT_EQ(sp_maglev_pick_m(65535, 0), 65537, "N=65535 cap");
	/* From 1 to 1,000 endpoints, M changes at four N only. */
	for (i = 1; i < 1000; i++)
		crossings += sp_maglev_pick_m(i, 0) != sp_maglev_pick_m(i + 1, 0);
	ASSERT_EQ(crossings, 4, "M changes 4 times for N = 1..1000");
	ASSERT_EQ(sp_maglev_pick_m(3, 65537), 65537, "fixed M");
	ASSERT_EQ(sp_maglev_pick_m(3000, SP_MAGLEV_M_DEFAULT), SP_MAGLEV_M_DEFAULT,
		  "fixed M regardless of N");
	ASSERT_EQ(sp_maglev_pick_m(3, 65521), 0, "unlisted fixed M");
}

/* Equal weights: every count is floor(M/N) or ceil(M/N). */
static void check_balance(size_t n, uint32_t m, uint16_t weight)
{
	struct sp_mg_backend *b = make_set(n, weight);
	uint32_t *cnt = calloc(n, sizeof(*cnt));
	uint32_t lo = m / n, hi = (m + n - 1) / n, e;
	uint16_t *t;
	size_t i;
	int err;
	char what[96];

	t = build(b, n, m, &err);
	snprintf(what, sizeof(what), "build N=%zu M=%u w=%u", n, m, weight);
	if (!ASSERT_EQ(err, 0, what))
		goto out;
	for (e = 0; e < m; e++)
		if (!ASSERT_TRUE(t[e] < n, "entry names a backend"))
			goto out;
	count_entries(t, m, n, cnt);
	for (i = 0; i < n; i++) {
		snprintf(what, sizeof(what), "N=%zu M=%u backend %zu count %u in [%u,%u]", n, m, i,
			 cnt[i], lo, hi);
		if (!ASSERT_TRUE(cnt[i] >= lo && cnt[i] <= hi, what))
			break;
	}
out:
	free(t);
	free(cnt);
	free(b);
}

static void test_balance(void)
{
	static const size_t ns[] = { 1, 2, 3, 10, 100, 1000 };
	size_t i;

	for (i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
		check_balance(ns[i], sp_maglev_pick_m(ns[i], 0), 1);
		if (ns[i] <= 655)
			check_balance(ns[i], 65537, 1);
	}
}

/* A common weight other than 1 must not change anything. */
static void test_equal_weights_any_value(void)
{
	struct sp_mg_backend *b1 = make_set(10, 1), *b7 = make_set(10, 7);
	uint16_t *t1, *t7;
	int e1, e7;

	t1 = build(b1, 10, 1021, &e1);
	t7 = build(b7, 10, 1021, &e7);
	if (ASSERT_EQ(e1, 0, "build w=1") && ASSERT_EQ(e7, 0, "build w=7"))
		ASSERT_TRUE(!memcmp(t1, t7, 1021 * sizeof(*t1)), "w=7 table equals w=1 table");
	check_balance(10, 1021, 7);
	check_balance(100, 65537, 65535);
	free(t1);
	free(t7);
	free(b1);
	free(b7);
}

/*
 * Weighted: each count within one entry per weight unit of its share,
 * |count - M w / W| <= w; weight 0 gets nothing.
 */
static double check_weights(const uint16_t *weights, size_t n, uint32_t m)
{
	struct sp_mg_backend *b = calloc(n, sizeof(*b));
	uint32_t *cnt = calloc(n, sizeof(*cnt));
	uint64_t total = 0;
	double worst = 0;
	uint16_t *t;
	size_t i;
	int err;
	char what[128];

	for (i = 0; i < n; i++) {
		make_backend(&b[i], i + 1, i % 2, weights[i]);
		total += weights[i];
	}
	sp_maglev_canonical(b, n);
	t = build(b, n, m, &err);
	if (!ASSERT_EQ(err, 0, "weighted build"))
		goto out;
	count_entries(t, m, n, cnt);
	for (i = 0; i < n; i++) {
		double share = (double)m * b[i].weight / total;
		double dev = cnt[i] > share ? cnt[i] - share : share - cnt[i];

		snprintf(what, sizeof(what), "M=%u weight %u: count %u vs share %.1f", m,
			 b[i].weight, cnt[i], share);
		if (!b[i].weight)
			ASSERT_EQ(cnt[i], 0, what);
		else
			ASSERT_LE(dev, b[i].weight, what);
		if (b[i].weight && dev / b[i].weight > worst)
			worst = dev / b[i].weight;
	}
out:
	free(t);
	free(cnt);
	free(b);
	return worst;
}

static void test_weights(void)
{
	static const uint16_t ramp[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
	static const uint16_t mixed[] = { 0, 1, 1, 3, 100, 0, 2, 50 };
	static const uint16_t skewed[] = { 1, 1, 1, 1, 1000 };
	uint16_t many[200];
	double w = 0;
	size_t i;

	for (i = 0; i < 200; i++)
		many[i] = i % 4; /* a quarter weight 0 */
	w = fmax(w, check_weights(ramp, 10, 65537));
	w = fmax(w, check_weights(ramp, 10, 1021));
	w = fmax(w, check_weights(mixed, 8, 251));
	w = fmax(w, check_weights(mixed, 8, 16381));
	w = fmax(w, check_weights(skewed, 5, 1021));
	w = fmax(w, check_weights(many, 200, 20641));
	printf("# weights: worst |count - share| per weight unit %.3f\n", w);
}

/*
 * Entries that moved for another reason than the change itself: slots whose
 * backend differs between the two tables where neither the old nor the new
 * backend is the one removed or added. Compared by identity, since indexes
 * shift when the list changes. Returns the share of the table, in percent.
 */
static double extra_moved_pct(const struct sp_mg_backend *a, const uint16_t *ta,
			      const struct sp_mg_backend *b, const uint16_t *tb, uint32_t m,
			      const struct sp_mg_backend *changed)
{
	uint32_t e, moved = 0;

	for (e = 0; e < m; e++) {
		const struct sp_mg_backend *was = &a[ta[e]], *now = &b[tb[e]];

		if (!same_backend(was, now) && !same_backend(was, changed) &&
		    !same_backend(now, changed))
			moved++;
	}
	return 100.0 * moved / m;
}

/* Remove each of a few backends, and add a few new ones; worst extra share. */
static void check_disruption(size_t n, uint32_t m, double bound_pct)
{
	struct sp_mg_backend *a = make_set(n, 1), *b = calloc(n + 1, sizeof(*b));
	const size_t victims[] = { 0, n / 3, 2 * n / 3, n - 1 };
	const size_t newcomers[] = { n + 1, 3 * n + 7 };
	double worst_rm = 0, worst_add = 0;
	uint16_t *ta, *tb;
	size_t v, i, k;
	char what[96];
	int err;

	ta = build(a, n, m, &err);
	if (!ASSERT_EQ(err, 0, "base build"))
		goto out_ta;
	for (v = 0; v < sizeof(victims) / sizeof(victims[0]); v++) {
		/* Dropping one entry keeps canonical order. */
		for (i = 0, k = 0; i < n; i++)
			if (i != victims[v])
				b[k++] = a[i];
		tb = build(b, n - 1, m, &err);
		if (ASSERT_EQ(err, 0, "build without one"))
			worst_rm = fmax(worst_rm, extra_moved_pct(a, ta, b, tb, m, &a[victims[v]]));
		free(tb);
	}
	for (v = 0; v < sizeof(newcomers) / sizeof(newcomers[0]); v++) {
		struct sp_mg_backend added;

		make_backend(&added, newcomers[v], false, 1);
		memcpy(b, a, n * sizeof(*b));
		b[n] = added;
		sp_maglev_canonical(b, n + 1);
		tb = build(b, n + 1, m, &err);
		if (ASSERT_EQ(err, 0, "build with one more"))
			worst_add = fmax(worst_add, extra_moved_pct(a, ta, b, tb, m, &added));
		free(tb);
	}
	/* Beyond the removed or added backend's own entries. */
	printf("# disruption M=%u N=%zu: remove %.3f%%, add %.3f%% (bound %.0f%%)\n", m, n,
	       worst_rm, worst_add, bound_pct);
	snprintf(what, sizeof(what), "remove one of N=%zu at M=%u: extra %%", n, m);
	ASSERT_LE(worst_rm, bound_pct, what);
	snprintf(what, sizeof(what), "add one to N=%zu at M=%u: extra %%", n, m);
	ASSERT_LE(worst_add, bound_pct, what);
out_ta:
	free(ta);
	free(a);
	free(b);
}

static void test_disruption(void)
{
	check_disruption(100, 65537, 1.0);
	check_disruption(1000, 65537, 1.0);
	check_disruption(100, sp_maglev_pick_m(100, 0), 4.0);
	check_disruption(1000, sp_maglev_pick_m(1000, 0), 4.0);
}

/*
 * sp_maglev_moved against a count by identity, slot by slot, for a removal
 * from the middle and an addition (the backend every index shifts past).
 */
static void test_moved_count(void)
{
	struct sp_mg_backend *a = make_set(10, 1), *b = calloc(10, sizeof(*b));
	uint16_t *ta = NULL, *tb = NULL;
	uint32_t m = 1021, e, stayed, moved, want_st, want_mv;
	int ea, eb, pass;
	size_t i, k;

	for (i = 0, k = 0; i < 10; i++)
		if (i != 4)
			b[k++] = a[i];
	ta = build(a, 10, m, &ea);
	tb = build(b, 9, m, &eb);
	if (!ASSERT_EQ(ea, 0, "build") || !ASSERT_EQ(eb, 0, "build without one"))
		goto out;
	for (pass = 0; pass < 2; pass++) {
		/* pass 0: a -> b (one removed); pass 1: b -> a (one added) */
		const struct sp_mg_backend *x = pass ? b : a, *y = pass ? a : b;
		const uint16_t *tx = pass ? tb : ta, *ty = pass ? ta : tb;
		size_t nx = pass ? 9 : 10, ny = pass ? 10 : 9;

		want_st = want_mv = 0;
		for (e = 0; e < m; e++) {
			bool in_y = false;

			for (k = 0; k < ny; k++)
				in_y |= same_backend(&x[tx[e]], &y[k]);
			if (!in_y)
				continue;
			want_st++;
			want_mv += !same_backend(&x[tx[e]], &y[ty[e]]);
		}
		if (ASSERT_EQ(sp_maglev_moved(x, nx, tx, y, ny, ty, m, &stayed, &moved), 0,
			      "sp_maglev_moved"))
			ASSERT_TRUE(stayed == want_st && moved == want_mv && moved > 0,
				    pass ? "counts after an addition" : "counts after a removal");
	}
	ASSERT_EQ(sp_maglev_moved(a, 10, ta, b, 0, tb, m, &stayed, &moved), -EINVAL,
		  "empty list refused");
out:
	free(ta);
	free(tb);
	free(a);
	free(b);
}

/* The worst of the changes test_disruption_every_n checks. */
struct disrupt_worst {
	double add_extra, rm; /* add: share moved beyond 1/N; remove: share moved */
	size_t add_n, rm_n, checked;
};

/*
 * One endpoint more (S_N from b[0..n-1)) and, the other way, one fewer:
 * the share of the flows of the endpoints that stayed that moved, against
 * the bounds of test_disruption_every_n.
 */
static void check_one_change(const struct sp_mg_backend *small, const uint16_t *ts,
			     const struct sp_mg_backend *big, const uint16_t *tbig, size_t n,
			     uint32_t m, const char *which, struct disrupt_worst *w)
{
	uint32_t st_add = 0, mv_add = 0, st_rm = 0, mv_rm = 0;
	double add, rm;
	char what[128];

	if (!ASSERT_EQ(sp_maglev_moved(small, n - 1, ts, big, n, tbig, m, &st_add, &mv_add), 0,
		       "sp_maglev_moved, add") ||
	    !ASSERT_EQ(sp_maglev_moved(big, n, tbig, small, n - 1, ts, m, &st_rm, &mv_rm), 0,
		       "sp_maglev_moved, remove") ||
	    !ASSERT_TRUE(st_add && st_rm, "some flows stayed"))
		return;
	add = (double)mv_add / st_add;
	rm = (double)mv_rm / st_rm;
	snprintf(what, sizeof(what), "N=%zu M=%u add %s: moved %.4f <= 1/N + 4%%", n, m, which,
		 add);
	ASSERT_LE(add, 1.0 / n + 0.04, what);
	snprintf(what, sizeof(what), "N=%zu M=%u remove %s: moved %.4f <= 1/N + 4%%", n, m, which,
		 rm);
	ASSERT_LE(rm, 1.0 / n + 0.04, what);
	if (!w->add_n || add - 1.0 / n > w->add_extra)
		w->add_extra = add - 1.0 / n, w->add_n = n;
	if (!w->rm_n || rm > w->rm)
		w->rm = rm, w->rm_n = n;
	w->checked += 2;
}

/*
 * Issue 11's bound, for every N from 1 to 1,000 at the adaptive M: adding
 * or removing one endpoint moves at most 1/N + 4% of the flows of the
 * endpoints that stayed, N being the larger of the two counts, unless M
 * changes (a tier crossing, which test_pick_m counts). An addition must move
 * 1/N of them (the newcomer's share), so that check is the tight one: it
 * allows 4% beyond; a removal needs to move none, and moves about as much
 * as the addition beyond 1/N. Changes: the last endpoint in turn order for
 * every N, and the first and the middle one (every later endpoint's turn
 * shifts) for every N at M < 65537 and every 8th N at M = 65537 (N > 204,
 * where a build costs a millisecond natively and twenty under valgrind,
 * and the measured worst is a quarter of the bound), each both ways.
 *
 * This is one deterministic address set; on random ones the bound is a
 * high probability, not a certainty (docs/MAGLEV.md, maglev_bench's
 * maglev_tail lines).
 */
static void test_disruption_every_n(void)
{
	const size_t nmax = 1000;
	struct sp_mg_backend *all = make_set(nmax, 1), *b = calloc(nmax, sizeof(*b));
	uint16_t *prev = malloc(65537 * sizeof(*prev)), *cur = malloc(65537 * sizeof(*cur));
	uint16_t *tb = malloc(65537 * sizeof(*tb)), *t;
	struct disrupt_worst w = { 0 };
	uint32_t prev_m = 0;
	size_t n, v, i, k;

	if (!ASSERT_TRUE(all && b && prev && cur && tb, "alloc"))
		goto out;
	/* make_set(nmax) is 10.244.0.1 .. in canonical order, so its first n
	 * entries are make_set(n): S_N-1 is S_N without its last endpoint. */
	for (n = 1; n <= nmax; n++, prev_m = sp_maglev_pick_m(n - 1, 0)) {
		uint32_t m = sp_maglev_pick_m(n, 0);
		const size_t victims[] = { 0, n / 2 };

		if (!ASSERT_EQ(sp_maglev_build(all, n, m, cur), 0, "build S_N"))
			goto out;
		for (v = 0; n > 1 && m == prev_m && (m < 65537 || n % 8 == 0) &&
			    v < sizeof(victims) / sizeof(victims[0]);
		     v++) {
			for (i = 0, k = 0; i < n; i++)
				if (i != victims[v])
					b[k++] = all[i];
			if (!ASSERT_EQ(sp_maglev_build(b, n - 1, m, tb), 0, "build without one"))
				goto out;
			check_one_change(b, tb, all, cur, n, m, v ? "the middle one" : "the first",
					 &w);
		}
		if (n > 1 && m == prev_m)
			check_one_change(all, prev, all, cur, n, m, "the last", &w);
		t = prev;
		prev = cur;
		cur = t;
	}
	printf("# disruption N=1..%zu, %zu changes: worst add 1/N + %.2f%% at N=%zu, "
	       "worst remove %.2f%% at N=%zu\n",
	       nmax, w.checked, 100 * w.add_extra, w.add_n, 100 * w.rm, w.rm_n);
out:
	free(all);
	free(b);
	free(prev);
	free(cur);
	free(tb);
}

/*
 * A backend of weight 0 (terminating) takes no turn, so adding or removing
 * one moves no entry: same identities in every slot, same digest.
 */
static void test_weight_zero_moves_nothing(void)
{
	struct sp_mg_backend *a = make_set(20, 1), *b = calloc(21, sizeof(*b));
	uint16_t *ta, *tb;
	uint32_t e, m = 2039;
	int ea, eb;

	memcpy(b, a, 20 * sizeof(*b));
	set_ip(&b[20], "10.0.0.1", 8080, 0); /* sorts first: every index shifts */
	sp_maglev_canonical(b, 21);
	ta = build(a, 20, m, &ea);
	tb = build(b, 21, m, &eb);
	if (!ASSERT_EQ(ea, 0, "build") || !ASSERT_EQ(eb, 0, "build with weight 0"))
		goto out;
	for (e = 0; e < m; e++)
		if (!ASSERT_TRUE(same_backend(&a[ta[e]], &b[tb[e]]), "slot keeps its backend"))
			break;
	ASSERT_EQ(sp_maglev_digest(a, 20, ta, m), sp_maglev_digest(b, 21, tb, m),
		  "digest by identity, not index");
	ASSERT_TRUE(memcmp(ta, tb, m * sizeof(*ta)) != 0, "indexes did shift");
out:
	free(ta);
	free(tb);
	free(a);
	free(b);
}

/*
 * The inputs the determinism tests use: a dual-stack set with mixed weights
 * and one duplicate, a large equal-weight set, a tiny one.
 */
#define N_DIGESTS 3

static struct sp_mg_backend *digest_input(int which, size_t *n, uint32_t *m)
{
	struct sp_mg_backend *b;
	size_t i;

	switch (which) {
	case 0:
		*n = 101;
		*m = 10321; /* the adaptive M of 101 before the tiers: keeps the golden digest */
		b = calloc(*n, sizeof(*b));
		for (i = 0; i < 100; i++)
			make_backend(&b[i], i * 7 + 3, i % 3 == 0, i % 5);
		b[100] = b[42]; /* a duplicate must not make the result depend on order */
		break;
	case 1:
		*n = 1000;
		*m = 65537;
		b = make_set(*n, 1);
		break;
	default:
		*n = 3;
		*m = 251;
		b = calloc(*n, sizeof(*b));
		set_ip(&b[0], "10.0.0.1", 80, 1);
		set_ip(&b[1], "10.0.0.2", 80, 1);
		set_ip(&b[2], "fd00::1", 443, 1);
		break;
	}
	return b;
}

/* Build input 'which' from an order shuffled with seed; the table and digest. */
static int digest_of(int which, uint64_t seed, uint64_t *digest, uint16_t **table, uint32_t *pm)
{
	struct sp_mg_backend *b;
	uint16_t *t;
	uint32_t m;
	size_t n;
	int err;

	b = digest_input(which, &n, &m);
	shuffle(b, n, seed);
	sp_maglev_canonical(b, n);
	t = build(b, n, m, &err);
	if (!err)
		*digest = sp_maglev_digest(b, n, t, m);
	if (table && !err) {
		*table = t;
		*pm = m;
	} else {
		free(t);
	}
	free(b);
	return err;
}

static void test_order_independence(void)
{
	int which;

	for (which = 0; which < N_DIGESTS; which++) {
		uint16_t *ref = NULL, *t = NULL;
		uint64_t d0, d;
		uint32_t m, m2;
		uint64_t seed;

		if (!ASSERT_EQ(digest_of(which, 1, &d0, &ref, &m), 0, "reference build"))
			continue;
		for (seed = 2; seed < 12; seed++) {
			if (!ASSERT_EQ(digest_of(which, seed * 7919, &d, &t, &m2), 0, "build"))
				break;
			ASSERT_TRUE(!memcmp(ref, t, m * sizeof(*t)), "byte-identical table");
			ASSERT_EQ(d, d0, "same digest");
			free(t);
			t = NULL;
		}
		free(ref);
	}
}

/* Child side of the cross-process test: print the digests, one a line. */
static int print_digests(uint64_t seed)
{
	int which;

	for (which = 0; which < N_DIGESTS; which++) {
		uint64_t d;

		if (digest_of(which, seed, &d, NULL, NULL))
			return 1;
		printf("%016" PRIx64 "\n", d);
	}
	return 0;
}

/*
 * A separate process (fresh address space, other ASLR layout, other input
 * order) must produce the same digests: nothing may depend on pointers,
 * allocation order or process state.
 */
static void test_cross_process(void)
{
	char self[PATH_MAX], line[64];
	uint64_t mine[N_DIGESTS];
	int fds[2], status, which, got = 0;
	ssize_t len;
	FILE *f;
	pid_t pid;

	for (which = 0; which < N_DIGESTS; which++)
		if (!ASSERT_EQ(digest_of(which, 12345, &mine[which], NULL, NULL), 0, "build"))
			return;
	/* readlink, not execv("/proc/self/exe"): under valgrind the latter is valgrind. */
	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (!ASSERT_TRUE(len > 0, "readlink /proc/self/exe"))
		return;
	self[len] = '\0';
	if (!ASSERT_EQ(pipe(fds), 0, "pipe"))
		return;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		dup2(fds[1], STDOUT_FILENO);
		close(fds[0]);
		close(fds[1]);
		execl(self, self, "--digest", "987654321", (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	if (!ASSERT_TRUE(pid > 0, "fork")) {
		close(fds[0]);
		return;
	}
	f = fdopen(fds[0], "r");
	while (f && fgets(line, sizeof(line), f)) {
		uint64_t d = strtoull(line, NULL, 16);

		if (got < N_DIGESTS)
			ASSERT_EQ(d, mine[got], "digest from the other process");
		got++;
	}
	if (f)
		fclose(f);
	else
		close(fds[0]);
	ASSERT_EQ(waitpid(pid, &status, 0), pid, "waitpid");
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child exit status");
	ASSERT_EQ(got, N_DIGESTS, "digests from the other process");
}

/*
 * Pinned values. Every node of a cluster must build the same tables, also
 * while a rolling upgrade runs two svcplane versions side by side; these
 * fail if the identity encoding, hash, seeds, prime list or turn schedule
 * change. Change them only on purpose, and say so in the release notes.
 */
static void test_golden(void)
{
	static const uint64_t want[N_DIGESTS] = {
		0xf6d6dbc61cabde64ULL,
		0x9f158c9173ebd096ULL,
		0xc8c2fb12b90ae067ULL,
	};
	int which;

	for (which = 0; which < N_DIGESTS; which++) {
		uint64_t d = 0;

		if (ASSERT_EQ(digest_of(which, 1, &d, NULL, NULL), 0, "build"))
			if (!ASSERT_TRUE(d == want[which], "golden digest"))
				fprintf(stderr, "  input %d: digest %016" PRIx64 "\n", which, d);
	}
}

static void test_canonical_order(void)
{
	struct sp_mg_backend b[6];

	set_ip(&b[0], "fd00::1", 80, 1);
	set_ip(&b[1], "10.0.0.2", 80, 1);
	set_ip(&b[2], "10.0.0.1", 443, 1);
	set_ip(&b[3], "10.0.0.1", 80, 3);
	set_ip(&b[4], "10.0.0.1", 80, 1);
	set_ip(&b[5], "9.255.255.255", 65535, 1);
	sp_maglev_canonical(b, 6);
	ASSERT_EQ(b[0].ip.b[0], 9, "lowest address first");
	ASSERT_TRUE(b[1].ip.b[3] == 1 && b[1].port == 80 && b[1].weight == 1, "then port, weight");
	ASSERT_TRUE(b[2].ip.b[3] == 1 && b[2].port == 80 && b[2].weight == 3, "weight breaks ties");
	ASSERT_TRUE(b[3].ip.b[3] == 1 && b[3].port == 443, "port after address");
	ASSERT_EQ(b[4].ip.b[3], 2, "10.0.0.2");
	ASSERT_EQ(b[5].ip.family, SP_FAMILY_V6, "IPv6 after IPv4");
	sp_maglev_canonical(NULL, 0); /* no-op, no crash */
}

/* Bytes behind an IPv4 address are not part of its identity. */
static void test_ipv4_tail_ignored(void)
{
	struct sp_mg_backend clean[3], dirty[3];
	uint16_t tc[251], td[251];
	int i;

	set_ip(&clean[0], "10.1.0.1", 80, 1);
	set_ip(&clean[1], "10.1.0.2", 80, 1);
	set_ip(&clean[2], "10.1.0.3", 80, 1);
	memcpy(dirty, clean, sizeof(dirty));
	for (i = 0; i < 3; i++)
		memset(dirty[i].ip.b + 4, 0xa5 + i, 12);
	ASSERT_EQ(sp_maglev_build(clean, 3, 251, tc), 0, "build clean");
	ASSERT_EQ(sp_maglev_build(dirty, 3, 251, td), 0, "build with junk after IPv4");
	ASSERT_TRUE(!memcmp(tc, td, sizeof(tc)), "same table");
	ASSERT_EQ(sp_maglev_digest(clean, 3, tc, 251), sp_maglev_digest(dirty, 3, td, 251),
		  "same digest");
}

static void test_digest(void)
{
	struct sp_mg_backend b[3];
	uint16_t t[251];
	uint64_t d;

	set_ip(&b[0], "10.2.0.1", 80, 1);
	set_ip(&b[1], "10.2.0.2", 80, 1);
	set_ip(&b[2], "10.2.0.3", 80, 1);
	if (!ASSERT_EQ(sp_maglev_build(b, 3, 251, t), 0, "build"))
		return;
	d = sp_maglev_digest(b, 3, t, 251);
	ASSERT_EQ(sp_maglev_digest(b, 3, t, 251), d, "stable");
	t[100] = (t[100] + 1) % 3;
	ASSERT_NEQ(sp_maglev_digest(b, 3, t, 251), d, "one entry changed");
	t[100] = 7; /* out of range: hashed as a marker, never read */
	ASSERT_NEQ(sp_maglev_digest(b, 3, t, 251), d, "out-of-range entry");
	t[100] = 0;
	d = sp_maglev_digest(b, 3, t, 251);
	b[2].port = 81;
	ASSERT_NEQ(sp_maglev_digest(b, 3, t, 251), d, "other identity, same indexes");
	ASSERT_NEQ(sp_maglev_digest(b, 3, t, 250), d, "shorter table");
}

/*
 * The digest format, recomputed from its documentation (maglev.h and
 * inspect.h, which must agree): FNV-1a 64 over family, 16 address bytes
 * (IPv4 zero-padded), port in network order, per entry; an entry past the
 * list as 19 zero bytes.
 */
static uint64_t fnv_bytes(uint64_t h, const uint8_t *p, size_t len)
{
	while (len--) {
		h ^= *p++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static void test_digest_format(void)
{
	struct sp_mg_backend b[2];
	uint16_t t[251];
	uint64_t h = 0xcbf29ce484222325ULL;
	uint32_t e;

	set_ip(&b[0], "10.9.8.7", 0x1234, 1);
	set_ip(&b[1], "fd00::9", 53, 1);
	if (!ASSERT_EQ(sp_maglev_build(b, 2, 251, t), 0, "build"))
		return;
	t[7] = 2; /* names no backend */
	for (e = 0; e < 251; e++) {
		uint8_t key[19] = { 0 };

		if (t[e] < 2) {
			key[0] = b[t[e]].ip.family;
			memcpy(key + 1, b[t[e]].ip.b, b[t[e]].ip.family == SP_FAMILY_V4 ? 4 : 16);
			key[17] = b[t[e]].port >> 8;
			key[18] = b[t[e]].port & 0xff;
		}
		h = fnv_bytes(h, key, sizeof(key));
	}
	ASSERT_TRUE(sp_maglev_digest(b, 2, t, 251) == h, "digest as documented");
}

static void test_bad_input(void)
{
	struct sp_mg_backend b[3], tmp, *big;
	uint16_t t[251], *tbig;
	size_t i;

	set_ip(&b[0], "10.3.0.1", 80, 1);
	set_ip(&b[1], "10.3.0.2", 80, 1);
	set_ip(&b[2], "10.3.0.3", 80, 1);
	ASSERT_EQ(sp_maglev_build(b, 0, 251, t), -EINVAL, "n = 0");
	ASSERT_EQ(sp_maglev_build(NULL, 3, 251, t), -EINVAL, "no backends");
	ASSERT_EQ(sp_maglev_build(b, 3, 251, NULL), -EINVAL, "no table");
	ASSERT_EQ(sp_maglev_build(b, 3, 0, t), -EINVAL, "m = 0");
	ASSERT_EQ(sp_maglev_build(b, 3, 250, t), -EINVAL, "m not prime");
	ASSERT_EQ(sp_maglev_build(b, 3, 241, t), -EINVAL, "m prime, not listed");
	ASSERT_EQ(sp_maglev_build(b, 3, 65521, t), -EINVAL, "m prime, not listed");
	b[0].weight = b[1].weight = b[2].weight = 0;
	ASSERT_EQ(sp_maglev_build(b, 3, 251, t), -EINVAL, "all weights 0");
	b[0].weight = b[1].weight = b[2].weight = 1;
	b[1].ip.family = 0;
	ASSERT_EQ(sp_maglev_build(b, 3, 251, t), -EINVAL, "bad family");
	b[1].ip.family = SP_FAMILY_V4;
	b[1].port = 1; /* address sorts before port: still canonical */
	ASSERT_EQ(sp_maglev_build(b, 3, 251, t), 0, "canonical, port 1");
	b[1].port = 80;
	tmp = b[0];
	b[0] = b[1];
	b[1] = tmp;
	ASSERT_EQ(sp_maglev_build(b, 3, 251, t), -EINVAL, "not canonical order");
	sp_maglev_canonical(b, 3);
	ASSERT_EQ(sp_maglev_build(b, 3, 251, t), 0, "fixed up: builds");

	/* More backends than a 16-bit entry can name. */
	big = calloc(65536, sizeof(*big));
	tbig = malloc(131071 * sizeof(*tbig));
	if (!ASSERT_TRUE(big && tbig, "alloc"))
		goto out;
	for (i = 0; i < 65536; i++)
		make_backend(&big[i], i, false, 1);
	sp_maglev_canonical(big, 65536);
	ASSERT_EQ(sp_maglev_build(big, 65536, 131071, tbig), -EINVAL, "n = 65536");
out:
	free(big);
	free(tbig);
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--digest"))
		return print_digests(strtoull(argv[2], NULL, 0));

	RUN_TEST(test_prime_list);
	RUN_TEST(test_pick_m);
	RUN_TEST(test_canonical_order);
	RUN_TEST(test_balance);
	RUN_TEST(test_equal_weights_any_value);
	RUN_TEST(test_weights);
	RUN_TEST(test_weight_zero_moves_nothing);
	RUN_TEST(test_disruption);
	RUN_TEST(test_moved_count);
	RUN_TEST(test_disruption_every_n);
	RUN_TEST(test_order_independence);
	RUN_TEST(test_cross_process);
	RUN_TEST(test_golden);
	RUN_TEST(test_ipv4_tail_ignored);
	RUN_TEST(test_digest);
	RUN_TEST(test_digest_format);
	RUN_TEST(test_bad_input);
	return sp_test_exit();
}
