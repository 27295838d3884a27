/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The static config file source: a YAML file shaped like the Kubernetes
 * Service and EndpointSlice objects, parsed into the same struct sp_model
 * the Kubernetes source fills. The format is documented in docs/CONFIG.md.
 *
 * Parsing is strict (unknown fields, bad addresses, duplicate VIPs and so
 * on are errors) and all-or-nothing: on error *out is left untouched, so
 * the caller keeps its last good model, and err holds one line of the form
 * "FILE:LINE:COLUMN: where: problem".
 */
#ifndef SP_CONFIG_H
#define SP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include "model.h"

/* Files larger than this are refused before parsing. */
#define SP_CONFIG_MAX_BYTES (64u << 20)

/*
 * Read and parse the file at path. Returns 0, -EINVAL for a bad file,
 * -ENOMEM, or the -errno of open/read (the message names the file).
 */
int sp_config_load(const char *path, struct sp_model *out, char *err, size_t errlen);

/* The whole file at path into *out (malloc'ed, freed by the caller) and
 * *len, refused above SP_CONFIG_MAX_BYTES. 0 or -errno (err names the file). */
int sp_config_read_file(const char *path, char **out, size_t *len, char *err, size_t errlen);

/*
 * Parse len bytes of YAML; name is what error messages call the input.
 * Returns 0, -EINVAL or -ENOMEM.
 */
int sp_config_parse_buf(const char *buf, size_t len, const char *name, struct sp_model *out,
			char *err, size_t errlen);

/*
 * For the incremental reload of a file (user/config_file.c): where each
 * item of "services" and "endpointSlices" starts, as the parse saw it.
 */
struct sp_config_items {
	/* libyaml's index (characters from the start) of each item's node,
	 * in model order */
	size_t *service_off, n_services, cap_services;
	size_t *slice_off, n_slices, cap_slices;
	bool whole; /* every item was noted (not when the tree walk parsed the file) */
};
/* sp_config_parse_buf, noting the items into *items (freed by the caller,
 * also on error, with sp_config_items_free). */
int sp_config_parse_buf_items(const char *buf, size_t len, const char *name, struct sp_model *out,
			      struct sp_config_items *items, char *err, size_t errlen);
void sp_config_items_free(struct sp_config_items *it);
/*
 * Parse one item of a list on its own: buf holds the item's lines, from
 * its "<indent>- " to the line before the next item, and nothing else.
 * Into *svc or, with slice, *sl (zeroed by the caller; zero again on
 * error). The slice's serviceName is not looked up. 0, -EINVAL (no
 * message: the caller parses the whole file for it) or -ENOMEM.
 */
int sp_config_parse_item(const char *buf, size_t len, bool slice, struct sp_service *svc,
			 struct sp_slice *sl);
/*
 * The same for n consecutive items of one list: buf holds their lines,
 * starts[i] is where item i starts in it (starts[0] == 0); into svc[0..n)
 * or sl[0..n) (zeroed by the caller; all zero again on error). With n > 1
 * the text must be ASCII (item i's entry is checked to start in its own
 * text, and libyaml counts characters).
 */
int sp_config_parse_items(const char *buf, size_t len, bool slice, size_t n, const size_t *starts,
			  struct sp_service *svc, struct sp_slice *sl);

/*
 * One file of a config directory (--config-dir, user/config_dir.c): parsed
 * as a config file, except that its slices may belong to Services of other
 * files. It keeps what it claims (names, VIPs, nodePorts, with lines) so
 * that files can be checked against each other.
 */
struct sp_config_part;
/* Read and parse the file at path. 0, -EINVAL (err: FILE:LINE:COL...), -ENOMEM, -errno. */
int sp_config_part_load(const char *path, struct sp_config_part **out, char *err, size_t errlen);
const struct sp_model *sp_config_part_model(const struct sp_config_part *p);
void sp_config_part_free(struct sp_config_part *p);
/*
 * Check files together: Service and EndpointSlice names, VIPs and nodePorts
 * unique across them. On a duplicate, *bad is the index of the later of the
 * two files in parts[] and err names both places; returns -EINVAL (or
 * -ENOMEM). 0 if they go together.
 */
int sp_config_parts_check(struct sp_config_part *const *parts, size_t n, size_t *bad, char *err,
			  size_t errlen);

/* The embedded default config used by the demo (user/config_default.c). */
extern const char sp_default_config[];
/* What error messages call it. */
#define SP_DEFAULT_CONFIG_NAME "<embedded default config>"

#endif /* SP_CONFIG_H */
