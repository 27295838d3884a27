// SPDX-License-Identifier: Apache-2.0
/*
 * Maglev lookup tables (Eisenbud et al., "Maglev: A Fast and Reliable
 * Software Network Load Balancer", NSDI 2016, section 3.4).
 *
 * Each backend has a preference list over the M slots, a permutation given
 * by an offset and a skip drawn from two independent hashes of its identity:
 *   permutation[j] = (offset + j * skip) % M,
 *   offset = h1(identity) % M, skip = h2(identity) % (M - 1) + 1.
 * M is prime, so every skip in [1, M-1] visits all M slots. Backends take
 * turns; on its turn a backend claims the first slot of its list that is
 * still empty. Because a backend's list depends only on its own identity,
 * removing or adding one backend leaves most other slots where they were.
 *
 * Things every node must agree on for its tables to be byte-identical, and
 * which are therefore part of the cluster-wide contract (changing any of
 * them makes nodes running different versions disagree during an upgrade):
 * the identity encoding (mg_key), the hash and its two seeds, the prime
 * list, the turn order (canonical order), and the weighted schedule.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "svcplane.h"
#include "maglev.h"

/*
 * The listed table sizes, for --maglev-m: primes spaced about 2^(1/3) =
 * 1.26x apart (the largest prime at or below 2^k, 2^k * 1.26 and
 * 2^k * 1.59), so a fixed size can be chosen closely. 65537 replaces
 * 65521 because it is the size the paper evaluates; 16381 is the default
 * (SP_MAGLEV_M_DEFAULT). The entries are 16-bit, so any of these fits.
 */
static const uint32_t mg_primes[] = {
	251,   317,   401,   509,   643,   811,   1021,  1289,   1621,   2039,
	2579,  3229,  4093,  5153,  6491,  8191,  10321, 13003,  16381,  20641,
	26003, 32749, 41281, 52009, 65537, 82567, 104021, 131071,
};

#define MG_NPRIMES (sizeof(mg_primes) / sizeof(mg_primes[0]))

/* Entries are uint16_t indexes, so at most 65535 backends (0..65534) and
 * 0xffff is free to mark an empty slot while the table fills. */
#define MG_MAX_BACKENDS 65535
#define MG_EMPTY 0xffff

/*
 * Identity encoding: family (1 byte), address (16 bytes, an IPv4 address in
 * the first 4 and zeros after, whatever the caller left there), port
 * (2 bytes, network order). Sorting, hashing and the digest all use it, so
 * stray bytes behind an IPv4 address can never make two nodes differ.
 */
#define MG_KEY_LEN 19

static void mg_key(const struct sp_mg_backend *b, uint8_t key[MG_KEY_LEN])
{
	size_t alen = b->ip.family == SP_FAMILY_V4 ? 4 : 16;

	memset(key, 0, MG_KEY_LEN);
	key[0] = b->ip.family;
	memcpy(key + 1, b->ip.b, alen);
	key[17] = b->port >> 8;
	key[18] = b->port & 0xff;
}

/*
 * The two seeds, fixed for every node and every version (see the top of
 * the file). They are the fractional bits of pi and e, so nobody has to
 * wonder where they came from.
 */
#define MG_SEED_OFFSET 0x243f6a8885a308d3ULL
#define MG_SEED_SKIP 0xb7e151628aed2a6bULL

/*
 * A bijective 64-bit mixer: xor-shifts fold the high bits down, odd
 * multipliers (the golden ratio and sqrt(3), fractional bits) spread every
 * input bit over the high bits. Each input bit flips about half the output
 * bits, which is what makes h1 and h2 behave as independent hashes when
 * they start from different seeds.
 */
static uint64_t mg_mix(uint64_t x)
{
	x ^= x >> 32;
	x *= 0x9e3779b97f4a7c15ULL;
	x ^= x >> 29;
	x *= 0xbb67ae8584caa73bULL;
	x ^= x >> 32;
	return x;
}

/* Little-endian load of up to 8 bytes, the same on every host. */
static uint64_t mg_load(const uint8_t *p, size_t len)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < len; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* Seeded hash of an identity: mix each 64-bit word into the state. */
static uint64_t mg_hash(const uint8_t key[MG_KEY_LEN], uint64_t seed)
{
	uint64_t h = seed;
	size_t off;

	for (off = 0; off < MG_KEY_LEN; off += 8) {
		size_t len = MG_KEY_LEN - off < 8 ? MG_KEY_LEN - off : 8;

		h = mg_mix(h ^ mg_load(key + off, len));
	}
	return mg_mix(h ^ MG_KEY_LEN);
}

const uint32_t *sp_maglev_primes(size_t *n)
{
	if (n)
		*n = MG_NPRIMES;
	return mg_primes;
}

int sp_maglev_m_valid(uint32_t m)
{
	size_t i;

	for (i = 0; i < MG_NPRIMES; i++)
		if (mg_primes[i] == m)
			return 1;
	return 0;
}

/*
 * Adaptive tiers: listed primes about 4x apart. A Service takes the
 * smallest tier with M >= MG_TIER_RATIO x N (the largest above that), so
 * each backend's share stays within 1/80 of fair and adding or removing
 * one backend inside a tier moves, beyond the 1/N the new backend must
 * take, about 1-3% of the other backends' slots (measured for every N from
 * 1 to 1,000 by selftests/user/test_maglev.c; above 4% for 1-4% of random
 * address sets at N <= 12, see maglev_bench's maglev_tail). Tiers 4x apart
 * mean the table changes size (and remaps nearly every flow) only when N
 * crosses 3/4, 12/13, 51/52 or 204/205, instead of at every 1.26x step.
 *
 * M is a function of N alone, with no hysteresis: every node must pick the
 * same M from the same endpoints with no knowledge of what the others saw
 * before (a node that rebooted and lost its pins, a node that joined), or
 * nodes behind ECMP would disagree for as long as N stays in the band.
 * docs/MAGLEV.md ("Table size") has the trade-off.
 */
static const uint32_t mg_tiers[] = { 251, 1021, 4093, 16381, 65537 };
#define MG_NTIERS (sizeof(mg_tiers) / sizeof(mg_tiers[0]))
#define MG_TIER_RATIO 80

const uint32_t *sp_maglev_tiers(size_t *n)
{
	if (n)
		*n = MG_NTIERS;
	return mg_tiers;
}

/*
 * An unlisted fixed_m gives 0, which no table accepts: the configuration
 * should have been checked with sp_maglev_m_valid() when it was read.
 * n == 0 follows the rule too (the smallest tier), though no table is
 * built for a Service without backends.
 */
uint32_t sp_maglev_pick_m(size_t n, uint32_t fixed_m)
{
	uint64_t want = (uint64_t)n * MG_TIER_RATIO;
	size_t i;

	if (fixed_m)
		return sp_maglev_m_valid(fixed_m) ? fixed_m : 0;
	for (i = 0; i + 1 < MG_NTIERS; i++)
		if (mg_tiers[i] >= want)
			return mg_tiers[i];
	return mg_tiers[MG_NTIERS - 1];
}

/*
 * Canonical order: identity key (family, address, port), then weight so
 * that even duplicate identities have one order. Two entries that compare
 * equal are then identical in every field the table depends on.
 */
static int mg_cmp(const struct sp_mg_backend *a, const struct sp_mg_backend *b)
{
	uint8_t ka[MG_KEY_LEN], kb[MG_KEY_LEN];
	int c;

	mg_key(a, ka);
	mg_key(b, kb);
	c = memcmp(ka, kb, MG_KEY_LEN);
	if (c)
		return c;
	return (a->weight > b->weight) - (a->weight < b->weight);
}

static int mg_qsort_cmp(const void *a, const void *b)
{
	return mg_cmp(a, b);
}

void sp_maglev_canonical(struct sp_mg_backend *b, size_t n)
{
	if (b && n > 1)
		qsort(b, n, sizeof(*b), mg_qsort_cmp);
}

/* Backends up to which sp_maglev_build's scratch is on its stack (1.25 KiB). */
#define MG_STACK_BACKENDS 128

/* Where a backend is in its permutation, and how far it steps. */
struct mg_perm {
	uint32_t next; /* (offset + j * skip) % M for the next j to try */
	uint32_t skip;
};

/*
 * One turn of backend i: claim the first empty slot of its permutation.
 * Slots never empty again once filled, so every slot before 'next' is
 * taken and the walk resumes there instead of at j = 0; that is the
 * paper's next[i], kept as a position rather than an index so each step
 * is one add (next + skip < 2 * SP_MAGLEV_M_MAX, no overflow). The caller
 * guarantees an empty slot exists, and the permutation visits all slots.
 */
static void mg_turn(struct mg_perm *p, uint16_t i, uint32_t m, uint16_t *table)
{
	uint32_t c = p->next;

	while (table[c] != MG_EMPTY) {
		c += p->skip;
		if (c >= m)
			c -= m;
	}
	table[c] = i;
	c += p->skip;
	if (c >= m)
		c -= m;
	p->next = c;
}

/*
 * Fill the table. Weighted turns: a round gives each backend as many turns
 * as its weight, spread over passes -- pass k gives one turn, in canonical
 * order, to every backend whose weight exceeds k. Equal weights thus give
 * exactly the paper's plain round robin whatever the common weight is (so
 * every backend gets floor(M/N) or ceil(M/N) entries), and a heavy backend
 * does not take all its turns in one burst ahead of the others. Every turn
 * fills exactly one slot, so entry counts equal turn counts: after R full
 * rounds backend i has R * w_i entries, and the last, partial round adds
 * at most w_i more, which keeps each count within w_i of M * w_i / W.
 *
 * Memory: 10 bytes per backend of scratch (permutation state and the list
 * of backends still active in the round) besides the table itself.
 * Returns 0, -EINVAL on bad input, -ENOMEM.
 */
int sp_maglev_build(const struct sp_mg_backend *b, size_t n, uint32_t m, uint16_t *table)
{
	struct mg_perm perm_st[MG_STACK_BACKENDS], *perm;
	uint16_t active_st[MG_STACK_BACKENDS], *active;
	uint32_t filled = 0;
	size_t i, na, npos = 0;

	if (!b || !table || n == 0 || n > MG_MAX_BACKENDS || !sp_maglev_m_valid(m))
		return -EINVAL;
	/*
	 * The turn order decides who wins a slot two backends both want, so it
	 * must be the same on every node: insist on canonical order rather
	 * than quietly build a table the other nodes do not have.
	 */
	for (i = 0; i < n; i++) {
		if (b[i].ip.family != SP_FAMILY_V4 && b[i].ip.family != SP_FAMILY_V6)
			return -EINVAL;
		if (i && mg_cmp(&b[i - 1], &b[i]) > 0)
			return -EINVAL;
		if (b[i].weight)
			npos++;
	}
	if (!npos)
		return -EINVAL;

	/* Most Services have a few backends: their scratch on the stack (no
	 * allocation, which in a helper thread of sync.c would also give that
	 * thread a malloc arena of its own). */
	if (n <= MG_STACK_BACKENDS) {
		perm = perm_st;
		active = active_st;
	} else {
		perm = malloc(n * sizeof(*perm));
		active = malloc(npos * sizeof(*active));
		if (!perm || !active) {
			free(perm);
			free(active);
			return -ENOMEM;
		}
	}
	for (i = 0; i < n; i++) {
		uint8_t key[MG_KEY_LEN];

		mg_key(&b[i], key);
		perm[i].next = mg_hash(key, MG_SEED_OFFSET) % m;
		perm[i].skip = mg_hash(key, MG_SEED_SKIP) % (m - 1) + 1;
	}
	for (i = 0; i < m; i++)
		table[i] = MG_EMPTY;

	for (;;) {
		uint32_t pass;

		/* A new round: every backend with a positive weight. */
		na = 0;
		for (i = 0; i < n; i++)
			if (b[i].weight)
				active[na++] = i;
		for (pass = 0; na; pass++) {
			size_t a, keep = 0;

			for (a = 0; a < na; a++) {
				uint16_t bi = active[a];

				mg_turn(&perm[bi], bi, m, table);
				if (++filled == m)
					goto out;
				/* Still has turns left in this round? */
				if (b[bi].weight > pass + 1)
					active[keep++] = bi;
			}
			na = keep;
		}
	}
out:
	if (perm != perm_st) {
		free(perm);
		free(active);
	}
	return 0;
}

/*
 * How many of the flows of the backends that stayed move when a table of
 * backends a[0..na) is replaced by one of b[0..nb), both canonical, both
 * of size m: *stayed counts a's slots whose backend is also in b (by
 * identity), *moved those of them that now name another backend. A merge
 * of the two sorted lists maps a's indexes to b's, so this is O(m + na +
 * nb). For the disruption test and maglev_bench. Returns 0, -EINVAL,
 * -ENOMEM.
 */
int sp_maglev_moved(const struct sp_mg_backend *a, size_t na, const uint16_t *ta,
		    const struct sp_mg_backend *b, size_t nb, const uint16_t *tb, uint32_t m,
		    uint32_t *stayed, uint32_t *moved)
{
	int32_t *to_b;
	size_t i = 0, j = 0;
	uint32_t e;

	if (!a || !b || !ta || !tb || !na || !nb || !stayed || !moved)
		return -EINVAL;
	to_b = malloc(na * sizeof(*to_b));
	if (!to_b)
		return -ENOMEM;
	while (i < na) {
		uint8_t ka[MG_KEY_LEN], kb[MG_KEY_LEN];
		int c = 1;

		mg_key(&a[i], ka);
		if (j < nb) {
			mg_key(&b[j], kb);
			c = memcmp(ka, kb, MG_KEY_LEN);
		}
		if (c > 0 && j < nb) {
			j++;
			continue;
		}
		to_b[i++] = c ? -1 : (int32_t)j;
	}
	*stayed = *moved = 0;
	for (e = 0; e < m; e++) {
		if (ta[e] >= na || to_b[ta[e]] < 0)
			continue;
		++*stayed;
		*moved += tb[e] != (uint32_t)to_b[ta[e]];
	}
	free(to_b);
	return 0;
}

#define MG_FNV_OFFSET 0xcbf29ce484222325ULL
#define MG_FNV_PRIME 0x100000001b3ULL

/*
 * FNV-1a 64 over the identity key (mg_key: family, 16 address bytes, port
 * in network order; 19 bytes) of the backend each entry names, entry 0
 * first. An entry naming no backend (index >= n) hashes as 19 zero bytes
 * (no valid identity has family 0), so a damaged table shows as a
 * different digest instead of a read out of bounds. sp_inspect_digest()
 * (user/inspect.h) computes the same from the pinned maps.
 */
uint64_t sp_maglev_digest(const struct sp_mg_backend *b, size_t n, const uint16_t *table,
			  uint32_t m)
{
	uint64_t h = MG_FNV_OFFSET;
	uint32_t e;
	size_t k;

	if (!table)
		return h;
	for (e = 0; e < m; e++) {
		uint8_t key[MG_KEY_LEN];

		if (b && table[e] < n)
			mg_key(&b[table[e]], key);
		else
			memset(key, 0, sizeof(key));
		for (k = 0; k < MG_KEY_LEN; k++) {
			h ^= key[k];
			h *= MG_FNV_PRIME;
		}
	}
	return h;
}
