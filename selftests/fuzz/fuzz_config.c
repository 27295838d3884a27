// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target: the config file parser (user/config.c), then resolve,
 * as `svcplane check-config` does. Besides memory errors, leaks and UB, it
 * checks one promise of config.h: a refused file gets a message that starts
 * with the file's name (FILE:LINE:COLUMN), and one of config_file.h: a
 * first load (by items when the file can be cut into them) refuses what
 * the whole parse refuses, with its message, and takes what it takes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config_file.h"
#include "model.h"
#include "resolve.h"

#define NAME "fuzz.yaml"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sp_resolve_opts ro = { .node_name = "node-a" };
	struct sp_desired d = { 0 };
	struct sp_model m = { 0 };
	char err[512];
	int rc;

	struct sp_config_file *cf;
	const struct sp_model *fm;
	char err2[512];
	int rc2;

	rc = sp_config_parse_buf((const char *)data, size, NAME, &m, err, sizeof(err));
	if (rc == -EINVAL && strncmp(err, NAME ":", strlen(NAME) + 1))
		abort(); /* an error that does not say where */
	if (!sp_config_file_new(NAME, &cf)) {
		rc2 = sp_config_file_parse_buf(cf, (const char *)data, size, err2, sizeof(err2));
		fm = sp_config_file_model(cf);
		if (rc2 != rc || (rc == -EINVAL && strcmp(err, err2)) ||
		    (!rc && (fm->n_services != m.n_services || fm->n_slices != m.n_slices)))
			abort(); /* the first load is not the whole parse */
		sp_config_file_free(cf);
	}
	if (rc)
		return 0;
	if (!sp_resolve(&m, &ro, &d, NULL, NULL))
		sp_desired_free(&d);
	sp_model_free(&m);
	return 0;
}
