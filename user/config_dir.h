/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A directory of config files (`svcplane run --config-dir DIR`): every
 * *.yaml file in it (names starting with "." excluded) holds one or more
 * Services and EndpointSlices in the config file's format (docs/CONFIG.md).
 * A scan parses only the files whose inode, size or modification time
 * changed; the others keep their parsed state. A file that does not parse,
 * or that claims a name, VIP or nodePort another file already has, keeps
 * its last good state (nothing, for a new file) and is reported. The model
 * is every file's good state together, in file name order.
 */
#ifndef SP_CONFIG_DIR_H
#define SP_CONFIG_DIR_H

#include <stdbool.h>
#include <stddef.h>
#include "model.h"
#include "resolve.h"

/* Files in one directory, at most. */
#define SP_CONFIG_DIR_MAX_FILES 100000

struct sp_config_dir;

/* Remember dir (nothing is read yet). 0 or -ENOMEM. */
int sp_config_dir_new(const char *dir, struct sp_config_dir **out);
void sp_config_dir_free(struct sp_config_dir *cd);

/*
 * Look at the directory again. A file that cannot be used is reported
 * through report (one line: FILE:LINE:COLUMN: where: problem, and that its
 * last good state is kept) and keeps that state. With strict (the first
 * scan at start, which has no good state to keep) the first such file is
 * an error instead: returns -EINVAL with the line in err, and the state is
 * left as it was. Returns 1 if the model changed, 0 if not, or -errno (the
 * directory cannot be read: err says why; the state stays).
 */
int sp_config_dir_scan(struct sp_config_dir *cd, bool strict, sp_warn_fn report, void *arg,
		       char *err, size_t errlen);

/* Every file's good state together; valid until the next scan or free. */
const struct sp_model *sp_config_dir_model(const struct sp_config_dir *cd);
/*
 * After a scan that returned 1: "namespace/name" of every Service whose
 * entries in the model may have changed (those of the files that changed,
 * before and after, and those their slices name), sorted, unique; valid
 * until the next scan. For sp_resolve_some. 0, or -ENOMEM if the list
 * could not be made whole (resolve everything then).
 */
int sp_config_dir_changed(const struct sp_config_dir *cd, const char *const **names, size_t *n);
/* Files in use, and of those how many are refused (keeping an older state or none). */
size_t sp_config_dir_n_files(const struct sp_config_dir *cd);
size_t sp_config_dir_n_bad(const struct sp_config_dir *cd);

#endif /* SP_CONFIG_DIR_H */
