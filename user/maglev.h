/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Maglev lookup tables (Eisenbud et al., NSDI 2016, section 3.4).
 * A table of M (prime) 16-bit entries, each an index into the Service's
 * backend list in canonical order. The table depends only on the set of
 * backends (identity = family, address, port) and their weights, never on
 * the order they were given in.
 */
#ifndef SP_MAGLEV_H
#define SP_MAGLEV_H

#include <stddef.h>
#include <stdint.h>
#include "model.h"

struct sp_mg_backend {
	struct sp_ip ip;
	/* SP_BE_F_* for sp_backends (this node's view of the endpoint); not
	 * part of its identity, so every node builds the same table. */
	uint8_t flags;
	uint16_t port; /* host order */
	uint16_t weight; /* 0 = gets no entries (terminating) */
};

/* The listed primes, ascending; *n gets the count. */
const uint32_t *sp_maglev_primes(size_t *n);
/* True if m is one of the listed primes. */
int sp_maglev_m_valid(uint32_t m);
/* The adaptive tiers (listed primes about 4x apart), ascending. */
const uint32_t *sp_maglev_tiers(size_t *n);
/*
 * Table size for a Service with n backends: fixed_m if non-zero (must be
 * listed), else adaptive: the smallest tier >= 80 * n (251 up to 3
 * backends, 1021 up to 12, 4093 up to 51, 16381 up to 204, 65537 from 205
 * on). A function of n alone, so every node agrees.
 */
uint32_t sp_maglev_pick_m(size_t n, uint32_t fixed_m);
/* Sort into canonical order (family, address bytes, port) in place. */
void sp_maglev_canonical(struct sp_mg_backend *b, size_t n);
/*
 * Fill table[0..m) for backends b[0..n) (canonical order, n <= 65535,
 * at least one positive weight). Returns 0, or -EINVAL on bad input.
 */
int sp_maglev_build(const struct sp_mg_backend *b, size_t n, uint32_t m, uint16_t *table);
/*
 * Of the slots of table ta (backends a[0..na)) whose backend is also in
 * b[0..nb) (by identity), *stayed counts them and *moved those that name
 * another backend in tb. Both lists canonical, both tables of m entries.
 * Returns 0, -EINVAL or -ENOMEM.
 */
int sp_maglev_moved(const struct sp_mg_backend *a, size_t na, const uint16_t *ta,
		    const struct sp_mg_backend *b, size_t nb, const uint16_t *tb, uint32_t m,
		    uint32_t *stayed, uint32_t *moved);
/*
 * Digest of a table by backend identity (not index), so two nodes with the
 * same backends print the same value. 64-bit FNV-1a over, for each entry,
 * the family, address and port of the backend it names.
 */
uint64_t sp_maglev_digest(const struct sp_mg_backend *b, size_t n, const uint16_t *table,
			  uint32_t m);

#endif /* SP_MAGLEV_H */
