// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target: the watcher's stream handling (user/k8s.c) without
 * HTTP. The bytes go through the incremental stream decoder into the list
 * and watch-event handlers and the object store, then into a snapshot, as
 * curl's write callback would feed them.
 *
 * Input: one control byte, then the body. Control bits 0-1 pick the
 * resource (Services, EndpointSlices, the Node "node-a"), bit 2 starts with
 * a list (else a watch), bits 3-7 the size of the pieces the body arrives
 * in (0: all at once). A NUL byte in the body ends the list: it is
 * finished and the rest is the watch stream.
 *
 * k8s.c is included so its static handlers can be reached; the target
 * links every other object but k8s.o.
 */
#include "../../user/k8s.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int feed(struct watch *w, const char *p, size_t len, size_t piece)
{
	size_t off, n;
	int ret;

	for (off = 0; off < len; off += n) {
		n = piece && len - off > piece ? piece : len - off;
		ret = sp_k8s_stream_feed(w->stream, p + off, n);
		if (ret)
			return ret;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum res_kind kinds[4] = { RES_SVC, RES_SLICE, RES_NODE, RES_SVC };
	struct sp_k8s_update *u;
	const char *body, *nul;
	struct sp_k8s *k;
	struct watch *w;
	size_t len, piece;
	uint8_t ctl;
	int ret = 0;

	if (!size)
		return 0;
	ctl = data[0];
	body = (const char *)data + 1;
	len = size - 1;
	piece = (size_t)(ctl >> 3) * 7;
	sp_k8s_set_log_level(SP_K8S_LOG_ERR);

	k = calloc(1, sizeof(*k));
	if (!k)
		return 0;
	store_init(&k->changed, RES_SET);
	watch_init(k, RES_SVC, "services", "/api/v1/services");
	watch_init(k, RES_SLICE, "endpointslices", "/apis/discovery.k8s.io/v1/endpointslices");
	watch_init(k, RES_NODE, "node", "/api/v1/nodes");
	k->node_name = strdup("node-a");
	w = &k->w[kinds[ctl & 3]];
	w->stream = sp_k8s_stream_new(on_value, w);
	if (!k->node_name || !w->stream)
		goto out;

	if (ctl & 4) {
		w->phase = PH_LIST;
		nul = memchr(body, 0, len);
		ret = feed(w, body, nul ? (size_t)(nul - body) : len, piece);
		if (ret || !w->list_page_ok)
			goto out;
		finish_list(w);
		if (!nul)
			goto snapshot;
		len -= (size_t)(nul + 1 - body);
		body = nul + 1;
		sp_k8s_stream_reset(w->stream);
	}
	w->phase = PH_WATCH;
	feed(w, body, len, piece);
snapshot:
	u = build_update(k);
	if (u)
		sp_k8s_update_free(u);
out:
	k8s_free(k);
	return 0;
}
