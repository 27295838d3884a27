/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One config file kept parsed between loads (`svcplane run --config FILE`):
 * a change to one Service of a 10,000-Service file costs that Service, not
 * the file. After a parse of the whole file (user/config.c, the reference),
 * each item of "services" and "endpointSlices" is remembered by a 128-bit
 * hash of its text, with its parsed result. The next load cuts the new text
 * into items with a line scan, parses again only the items whose text is
 * new, and takes the others' results as they are; the checks across items
 * (names, VIPs, nodePorts unique; each slice's Service in the file) run on
 * the whole result. Anything the scan is not sure of, or any problem at all,
 * means a parse of the whole file, so the result and every error message
 * are the whole parse's. A whole load (the first, or one the scan is not
 * sure of) is tried by items too, all of them, on several threads when
 * the file is large (the daemon's start at 10,000 Services), with the same
 * fall-back to the one-pass parse.
 */
#ifndef SP_CONFIG_FILE_H
#define SP_CONFIG_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include "model.h"

struct sp_config_file;

/* name: what messages call the file (its path for sp_config_file_load). 0 or -ENOMEM. */
int sp_config_file_new(const char *name, struct sp_config_file **out);
void sp_config_file_free(struct sp_config_file *cf);

/*
 * Read the file (its name) and parse it. 0: the model is the file's now;
 * -EINVAL (err: FILE:LINE:COLUMN: ...), -ENOMEM or -errno: the model is
 * the last good one, as it was.
 */
int sp_config_file_load(struct sp_config_file *cf, char *err, size_t errlen);
/* The same, from len bytes of YAML (the file's new content). */
int sp_config_file_parse_buf(struct sp_config_file *cf, const char *buf, size_t len, char *err,
			     size_t errlen);

/*
 * For tests: read the file, and take a text from memory, in pieces of this
 * many bytes (0: 256 KiB pieces from the file, a text from memory whole),
 * so that lines and items cut by a piece's end are exercised.
 */
void sp_config_file_set_chunk(struct sp_config_file *cf, size_t chunk);

/* Make the next load parse the whole file (SIGHUP: everything again). */
void sp_config_file_reset(struct sp_config_file *cf);

/* The last good model (empty before the first good load); valid until the next load or free. */
const struct sp_model *sp_config_file_model(const struct sp_config_file *cf);
/*
 * After a load that returned 0: "namespace/name" of every Service whose
 * entries in the model may have changed, sorted, unique (for
 * sp_resolve_some); valid until the next load. Returns 0, or 1 when that
 * load parsed the whole file (no list: resolve everything).
 */
int sp_config_file_changed(const struct sp_config_file *cf, const char *const **names, size_t *n);

/* What the last load did. */
struct sp_config_file_stats {
	bool incremental; /* only the changed items were parsed */
	size_t items; /* items in the file */
	size_t parsed; /* of which parsed again (all of them for a whole parse) */
	/* Threads that parsed them: a whole load parses the items of a large
	 * file side by side when the line scan can cut it (1: one pass). */
	unsigned int threads;
	/* Why the whole file was parsed (a whole load), or NULL. */
	const char *why_whole;
	/* Loads so far that were incremental, and whole. */
	unsigned long long n_incremental, n_whole;
};
void sp_config_file_stats(const struct sp_config_file *cf, struct sp_config_file_stats *st);

#endif /* SP_CONFIG_FILE_H */
