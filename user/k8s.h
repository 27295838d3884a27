/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Kubernetes source of truth: list+watch of Services, EndpointSlices and
 * this node's Node object, turned into the same struct sp_model the static
 * config fills (model.h). Semantics (port-name matching, readiness fallback,
 * proxy-name filtering, traffic policies) are NOT applied here: resolve.c
 * applies them to both sources alike. This module parses objects faithfully.
 *
 * Three layers:
 *   k8s_json.c    Kubernetes JSON objects -> model structs (pure, unit-tested)
 *   k8s_config.c  kubeconfig / in-cluster configuration
 *   k8s.c         the watcher thread: HTTP (libcurl), stream decoding, object
 *                 store, relist/backoff, snapshots to the daemon (at most one
 *                 per minimum sync interval)
 */
#ifndef SP_K8S_H
#define SP_K8S_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "model.h"

struct json_object;

/* ---- Logging ---- */

/* 0 is deliberately not a level: a zeroed sp_k8s_opts leaves the level alone. */
enum sp_k8s_log_level {
	SP_K8S_LOG_ERR = 1,
	SP_K8S_LOG_WARN,
	SP_K8S_LOG_INFO,
	SP_K8S_LOG_DEBUG,
};

/* Messages up to this level are printed (stderr); default SP_K8S_LOG_INFO. */
void sp_k8s_set_log_level(int level);

/* printf into err[errlen] when err is not NULL (the modules' error style). */
void sp_k8s_errf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- JSON -> model (k8s_json.c) ---- */

/* Returned by the parsers for a valid object the proxy does not handle
 * (ExternalName Services, FQDN or unlabelled EndpointSlices). */
#define SP_K8S_IGNORED 1

/* Non-fatal remarks about an object that was still accepted (SCTP port skipped). */
typedef void (*sp_k8s_warn_fn)(void *arg, const char *msg);

/*
 * Parse a v1 Service into *out (zeroed first; on success the caller frees it
 * with sp_service_free). Returns 0, SP_K8S_IGNORED (out left empty) or
 * -EINVAL with a message naming the object in err, or -ENOMEM.
 */
int sp_k8s_parse_service(struct json_object *obj, struct sp_service *out, sp_k8s_warn_fn warn,
			 void *warn_arg, char *err, size_t errlen);
/* Same for a discovery.k8s.io/v1 EndpointSlice (caller frees with sp_slice_free). */
int sp_k8s_parse_slice(struct json_object *obj, struct sp_slice *out, sp_k8s_warn_fn warn,
		       void *warn_arg, char *err, size_t errlen);
/*
 * A v1 Node's InternalIP and ExternalIP addresses (status.addresses), the
 * InternalIPs first, each kind in API order, de-duplicated: the first
 * address of each family is the node's primary one. *addrs is malloc'ed (NULL when there are none).
 * Returns 0, -EINVAL or -ENOMEM.
 */
int sp_k8s_parse_node(struct json_object *obj, struct sp_ip **addrs, size_t *n,
		      sp_k8s_warn_fn warn, void *warn_arg, char *err, size_t errlen);

/*
 * A v1 Node's zone, its label topology.kubernetes.io/zone, into *zone
 * (malloc'ed; NULL without one): for topology hints. 0 or -ENOMEM.
 */
int sp_k8s_node_zone(struct json_object *obj, char **zone);

/*
 * Is a v1 Node on its way out: metadata.deletionTimestamp set, or tainted
 * ToBeDeletedByClusterAutoscaler? (kube-proxy's /healthz then says 503, so
 * load balancers drain the node first.) Malformed parts count as neither.
 */
bool sp_k8s_node_leaving(struct json_object *obj);

/*
 * An RFC 3339 time as the API writes it ("2024-05-01T10:00:00Z", with
 * optional fraction and offset) in CLOCK_REALTIME ns. 0 or -EINVAL.
 */
int sp_k8s_parse_time(const char *s, int64_t *ns);
/* An EndpointSlice's endpoints.kubernetes.io/last-change-trigger-time in
 * ns, or 0 when absent or malformed (it only feeds a metric). */
int64_t sp_k8s_trigger_time(struct json_object *slice);

/* "namespace/name" of an object from its metadata, into buf. Returns 0 or -EINVAL. */
int sp_k8s_object_key(struct json_object *obj, char *buf, size_t len);

/*
 * Add the objects of a JSON text to *m: one Service or EndpointSlice, or a
 * List of them (ServiceList, EndpointSliceList, or v1 List with kinds on the
 * items). Bad objects are reported through warn and skipped; the count of
 * skipped objects is returned (>= 0), or -EINVAL if the text is not JSON /
 * not a known kind, or -ENOMEM. Used by tests and offline tools.
 */
int sp_k8s_model_add_json(struct sp_model *m, const char *json, sp_k8s_warn_fn warn,
			  void *warn_arg);

/* Deep copies (model.h has no copy helpers). Return 0 or -ENOMEM; dst zeroed on failure. */
int sp_k8s_service_dup(struct sp_service *dst, const struct sp_service *src);
int sp_k8s_slice_dup(struct sp_slice *dst, const struct sp_slice *src);

/* ---- Connection configuration (k8s_config.c) ---- */

/* Default in-cluster secrets directory. */
#define SP_K8S_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

struct sp_k8s_config {
	char *server; /* "https://host:port", no trailing slash */
	/* Trust: a CA file, or PEM bytes from certificate-authority-data. */
	char *ca_file;
	char *ca_pem;
	size_t ca_pem_len;
	/* Credentials: a token (literal) or a token file re-read when it changes. */
	char *token;
	char *token_file;
	/* Client certificate: files or PEM bytes. */
	char *cert_file, *key_file;
	char *cert_pem, *key_pem;
	size_t cert_pem_len, key_pem_len;
	char *tls_server_name; /* SNI/verification name override, or NULL */
};

/*
 * Load the current context of a kubeconfig file (YAML). Relative paths in it
 * are relative to the file's directory, as kubectl does. Returns 0 or -errno
 * with a message in err naming the file and the problem.
 */
int sp_k8s_config_kubeconfig(struct sp_k8s_config *c, const char *path, char *err, size_t errlen);
/*
 * In-cluster configuration: KUBERNETES_SERVICE_HOST/_PORT, and token and
 * ca.crt under sa_dir (NULL: SP_K8S_SA_DIR). Returns 0 or -errno with err.
 */
int sp_k8s_config_incluster(struct sp_k8s_config *c, const char *sa_dir, char *err, size_t errlen);
/* The same with server ("https://host:port") in place of KUBERNETES_SERVICE_HOST/_PORT
 * when not NULL: a node that has no Service state yet cannot reach the API
 * server through the kubernetes Service's ClusterIP, which svcplane programs. */
int sp_k8s_config_incluster_server(struct sp_k8s_config *c, const char *sa_dir, const char *server,
				   char *err, size_t errlen);
void sp_k8s_config_free(struct sp_k8s_config *c);

/* Decode base64 (RFC 4648, whitespace ignored). *out is NUL-terminated for
 * convenience. Returns 0, -EINVAL or -ENOMEM. */
int sp_k8s_base64_decode(const char *in, char **out, size_t *outlen);

/* ---- Stream decoding (k8s.c) ---- */

/*
 * Incremental decoder of a stream of concatenated JSON values (the
 * newline-delimited watch stream, or one List body arriving in pieces).
 * Feed it bytes as they come; it calls cb for each complete top-level value.
 * cb returns 0 to continue or -errno to stop (propagated by feed).
 */
struct sp_k8s_stream;
typedef int (*sp_k8s_value_fn)(void *arg, struct json_object *value);
struct sp_k8s_stream *sp_k8s_stream_new(sp_k8s_value_fn cb, void *arg);
/* Returns 0, -EBADMSG on malformed JSON (the stream must be dropped),
 * -EMSGSIZE for a value over the cap (sp_k8s_stream_set_max), or cb's error. */
int sp_k8s_stream_feed(struct sp_k8s_stream *s, const char *buf, size_t len);
/* True if a value is partly received (a stream that ends here was cut short). */
bool sp_k8s_stream_partial(const struct sp_k8s_stream *s);
/*
 * The most bytes one value (a watch event, a list page) may take: one that
 * grows past it is dropped and feed returns -EMSGSIZE, so a broken or
 * hostile server cannot make the daemon allocate without bound. Default
 * SP_K8S_MAX_VALUE; kube-apiserver keeps objects under 1.5 MiB (etcd's
 * limit), so a page of 500 is far below it in any real cluster.
 */
#define SP_K8S_MAX_VALUE (64u << 20)
void sp_k8s_stream_set_max(struct sp_k8s_stream *s, size_t max_bytes);
void sp_k8s_stream_reset(struct sp_k8s_stream *s);
void sp_k8s_stream_free(struct sp_k8s_stream *s);

/* Jittered exponential backoff: attempt 0, 1, 2... -> a delay in
 * [d/2, d] where d = min(min_ms << attempt, max_ms). */
unsigned sp_k8s_backoff_ms(unsigned attempt, unsigned min_ms, unsigned max_ms);

/* ---- The watcher (k8s.c) ---- */

/*
 * kube-proxy's --iptables-min-sync-period defaults to 1 s because one
 * iptables-restore at scale takes seconds (and its IPVS mode's is 0). Our
 * apply of one snapshot costs milliseconds to tens of them at 10,000
 * Services, so a tenth of a second bounds its share of a core under
 * constant churn to a fraction while the second change of a burst waits at
 * most 0.1 s; the first change after a quiet period never waits.
 */
#define SP_K8S_MIN_SYNC_MS_DEFAULT 100

struct sp_k8s_opts {
	const char *kubeconfig; /* NULL: in-cluster configuration */
	const char *sa_dir; /* in-cluster secrets dir; NULL: SP_K8S_SA_DIR */
	const char *node_name; /* watch this Node's addresses; NULL: none */
	/* Least time between two snapshots (--min-sync-period): a change after
	 * a quiet period goes out at once, the changes of a burst together at
	 * the interval's end. 0: none; < 0: SP_K8S_MIN_SYNC_MS_DEFAULT. */
	int min_sync_ms;
	unsigned page_limit; /* list page size; 0: 500 */
	size_t max_value; /* bytes one answer or event may take; 0: SP_K8S_MAX_VALUE */
	unsigned watch_timeout_s; /* server-side watch timeout; 0: random in [300, 600) */
	unsigned idle_timeout_s; /* drop a watch silent this long (stall); 0: 120 */
	unsigned backoff_min_ms; /* 0: 250 */
	unsigned backoff_max_ms; /* 0: 30000 */
	int log_level; /* SP_K8S_LOG_*, applied with sp_k8s_set_log_level(); 0: unchanged */
	/* "https://host:port": the API server, instead of the in-cluster
	 * KUBERNETES_SERVICE_HOST/_PORT or the kubeconfig's server; NULL: those */
	const char *api_server;
};

struct sp_k8s_stats {
	uint64_t lists; /* complete lists (initial and relists) */
	uint64_t relists_gone; /* relists forced by 410 Gone / Expired */
	uint64_t watches; /* watch requests started */
	uint64_t watch_drops; /* watches that ended with an error or were cut short */
	uint64_t events; /* watch events applied (ADDED/MODIFIED/DELETED) */
	uint64_t bookmarks;
	uint64_t bad_objects; /* objects skipped as malformed */
	uint64_t http_errors; /* non-2xx answers and transport failures */
	uint64_t updates; /* snapshots handed to the callback */
	/* Services / EndpointSlices added, changed or deleted (kube-proxy's
	 * sync_proxy_rules_{service,endpoint}_changes_total). */
	uint64_t svc_changes;
	uint64_t slice_changes;
};

/*
 * What changed since the last snapshot, handed to the callback. The
 * callback OWNS it and must release it with sp_k8s_update_free() (it may
 * keep it as long as it likes). The objects themselves are not copied:
 * they are the watcher's model, read under sp_k8s_model_lock(), so a
 * snapshot costs what changed, not what exists.
 */
struct sp_k8s_update {
	/* The watcher's model (all Services and EndpointSlices, sorted by
	 * ns/name): readable during the callback (the watcher thread changes
	 * nothing meanwhile), on any other thread only between
	 * sp_k8s_model_lock() and sp_k8s_model_unlock(), where it may already
	 * hold changes of the next snapshot (which will list them too). */
	const struct sp_model *model;
	struct sp_ip *node_addrs; /* this node's addresses (empty if unknown) */
	size_t n_node_addrs;
	bool node_known; /* the Node object has been seen */
	char *node_zone; /* its topology.kubernetes.io/zone label, or NULL */
	/* "namespace/name" of the Services whose object or slices changed since
	 * the previous snapshot (sorted; for logging). The first snapshot lists all. */
	char **changed;
	size_t n_changed;
	struct sp_k8s_stats stats;
	/* The Node is being deleted or tainted ToBeDeletedByClusterAutoscaler. */
	bool node_leaving;
	/* endpoints.kubernetes.io/last-change-trigger-time of each EndpointSlice
	 * change since the previous snapshot (CLOCK_REALTIME ns), for
	 * kubeproxy_network_programming_duration_seconds. */
	int64_t *triggers;
	size_t n_triggers;
};
void sp_k8s_update_free(struct sp_k8s_update *u);
/*
 * Fold an older snapshot that was never applied into a newer one: the
 * newer one then lists the Services and trigger times of both, so the
 * consumer still resolves only what changed. older is left as it was.
 * Returns 0 or -ENOMEM (newer unchanged).
 */
int sp_k8s_update_merge(struct sp_k8s_update *newer, const struct sp_k8s_update *older);

typedef void (*sp_k8s_update_fn)(void *arg, struct sp_k8s_update *u);

struct sp_k8s;

/*
 * Load the configuration and start the watcher thread. The first snapshot
 * is delivered once Services, EndpointSlices (and the Node, if node_name is
 * set) have all been listed completely, so the datapath never sees Services
 * without their endpoints. Later snapshots follow changes: at once after a
 * quiet period, at most one per min_sync_ms in a burst.
 * on_update runs on the watcher thread, never concurrently with itself, and
 * must not call sp_k8s_stop(). Returns NULL with a message in err on failure.
 */
struct sp_k8s *sp_k8s_start(const struct sp_k8s_opts *o, sp_k8s_update_fn on_update, void *arg,
			    char *err, size_t errlen);
/* Stop the thread (waits for a running callback), free everything. NULL is fine. */
void sp_k8s_stop(struct sp_k8s *k);
/* Counters so far (any thread). */
void sp_k8s_get_stats(struct sp_k8s *k, struct sp_k8s_stats *st);
/*
 * The watcher's model (see struct sp_k8s_update) for another thread: the
 * watcher applies no event until sp_k8s_model_unlock() (events wait in
 * the socket meanwhile). Never call it from the callback (the watcher
 * thread): read u->model there.
 */
const struct sp_model *sp_k8s_model_lock(struct sp_k8s *k);
void sp_k8s_model_unlock(struct sp_k8s *k);

#endif /* SP_K8S_H */
