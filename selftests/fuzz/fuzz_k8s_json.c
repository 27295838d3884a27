// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target: Kubernetes JSON objects to the model (user/k8s_json.c).
 * The input is one JSON text: a Service, an EndpointSlice or a List of
 * them (sp_k8s_model_add_json), resolved as the daemon would; the same
 * object is also parsed as a Node.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "k8s.h"
#include "model.h"
#include "resolve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sp_resolve_opts ro = { .node_name = "node-a" };
	struct sp_desired d = { 0 };
	struct sp_model m = { 0 };
	struct json_object *o;
	struct sp_ip *addrs;
	char *text, err[512];
	size_t n;

	/* The parsers take C strings: the text ends at the first NUL. */
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	if (sp_k8s_model_add_json(&m, text, NULL, NULL) >= 0 &&
	    !sp_resolve(&m, &ro, &d, NULL, NULL))
		sp_desired_free(&d);
	sp_model_free(&m);
	o = json_tokener_parse(text);
	if (o && !sp_k8s_parse_node(o, &addrs, &n, NULL, NULL, err, sizeof(err)))
		free(addrs);
	json_object_put(o);
	free(text);
	return 0;
}
