/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Conntrack as user space sees it: the two tables of one datapath (sp_ct4
 * for IPv4 flows under a 16-byte key, sp_ct6 for IPv6; include/svcplane.h)
 * as one, keyed by struct sp_ct_key whatever the family. The collector,
 * `svcplane conntrack`, the upgrade from the single table of older
 * versions (a copy) and the tests all go through here, so that none of them knows
 * which table holds which flow.
 */
#ifndef SP_CT_H
#define SP_CT_H

#include <stdint.h>

#include "svcplane.h"

struct sp_ct_maps {
	int fd4; /* sp_ct4 */
	int fd6; /* sp_ct6 */
};

/* sp_ct4's key widened to struct sp_ct_key (narrowed: sp_ct4_key_narrow,
 * include/svcplane.h). */
void sp_ct_key_of4(const struct sp_ct4_key *k4, struct sp_ct_key *k);

/* The entry at k, in the table of k->family: 0 or -errno (-ENOENT: none). */
int sp_ct_lookup(const struct sp_ct_maps *m, const struct sp_ct_key *k, struct sp_ct_val *v);
/* flags: BPF_ANY, BPF_NOEXIST or BPF_EXIST. 0 or -errno. */
int sp_ct_update(const struct sp_ct_maps *m, const struct sp_ct_key *k, const struct sp_ct_val *v,
		 uint64_t flags);
int sp_ct_delete(const struct sp_ct_maps *m, const struct sp_ct_key *k);

/* An entry as the datapath reads it (struct sp_ct_entry, sp_ct6's value:
 * times in SP_CT_TIME_SHIFT units) from user space's form and back. now:
 * sp_mono_ns(), which places the maps' wrapping times in time. Each is
 * the other's inverse for a value read from a map. */
void sp_ct_entry_of(const struct sp_ct_val *v, uint64_t now, struct sp_ct_entry *e);
void sp_ct_val_of(const struct sp_ct_entry *e, uint64_t now, struct sp_ct_val *v);
/* An sp_ct4 value (struct sp_ct4_val) in user space's form. */
void sp_ct_val_of4(const struct sp_ct4_val *v4, uint64_t now, struct sp_ct_val *v);

/*
 * fn for every entry of both tables (sp_ct4 first), read in batches: an
 * entry added or removed during the walk may or may not be met, as with
 * any walk of a live hash. A non-zero return of fn ends the walk and is
 * returned; else 0, or -errno if a table cannot be read.
 */
typedef int (*sp_ct_fn)(const struct sp_ct_key *k, const struct sp_ct_val *v, void *arg);
int sp_ct_foreach(const struct sp_ct_maps *m, sp_ct_fn fn, void *arg);

/* The same over one table of any layout, told by its key and value sizes:
 * sp_ct4, sp_ct6, and the older versions' tables (their values
 * struct sp_ct_val: the single sp_ct, and sp_ct4/sp_ct6 before their
 * compact values). -EINVAL for a table of no such layout. */
int sp_ct_foreach_fd(int fd, sp_ct_fn fn, void *arg);

/* Entries in both tables, or -errno. */
long sp_ct_count(const struct sp_ct_maps *m);
/* Delete every entry of both tables: 0 or -errno. */
int sp_ct_flush(const struct sp_ct_maps *m);
/* Both tables' capacity, in entries (0 for a table not open), and one
 * table's (fd). */
uint64_t sp_ct_capacity(const struct sp_ct_maps *m);
uint64_t sp_ct_table_capacity(int fd);

/* Open the tables pinned under dir: 0 or -errno (nothing left open). */
int sp_ct_open_pinned(const char *dir, struct sp_ct_maps *m);
void sp_ct_close(struct sp_ct_maps *m);

/*
 * Copy every entry of the table at old_fd (an older version's, of any
 * layout sp_ct_foreach_fd reads) into m, leaving an
 * entry that m holds already as it is (the new datapath made it, or an
 * earlier copy). The old table is left as it is: the old programs use it
 * until they are replaced. *copied counts the entries copied. 0 or -errno.
 */
int sp_ct_copy_from(const struct sp_ct_maps *m, int old_fd, uint64_t *copied);

#endif /* SP_CT_H */
