// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target: the config file parser (user/config.c), then resolve,
 * as `svcplane check-config` does. Besides memory errors, leaks and UB, it
 * checks one promise of config.h: a refused file gets a message that starts
 * with the file's name (FILE:LINE:COLUMN).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
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

	rc = sp_config_parse_buf((const char *)data, size, NAME, &m, err, sizeof(err));
	if (rc == -EINVAL && strncmp(err, NAME ":", strlen(NAME) + 1))
		abort(); /* an error that does not say where */
	if (rc)
		return 0;
	if (!sp_resolve(&m, &ro, &d, NULL, NULL))
		sp_desired_free(&d);
	sp_model_free(&m);
	return 0;
}
