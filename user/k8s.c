// SPDX-License-Identifier: Apache-2.0
/*
 * The Kubernetes watcher: one thread that lists and then watches Services,
 * EndpointSlices and this node's Node object, keeps the objects in a store
 * keyed by namespace/name, and tells the daemon what changed, no more
 * often than the minimum sync interval. The daemon reads the objects from
 * the watcher's model under a lock instead of a copy (a copy of 10,000
 * Services per event cost tens of milliseconds).
 *
 * Transport: libcurl's multi interface drives the (up to) three streams from
 * one thread, so the store needs no lock and curl_multi_wakeup() gives a
 * clean stop. TLS is always verified (CA from the kubeconfig or the
 * service-account ca.crt).
 *
 * Wire protocol (Kubernetes API concepts, "Efficient detection of changes"):
 *   list:  GET <path>?limit=N[&continue=TOKEN]  -> a *List, possibly in pages;
 *          every page carries the same metadata.resourceVersion.
 *   watch: GET <path>?watch=true&resourceVersion=RV&allowWatchBookmarks=true
 *          -> a chunked stream of {"type":..., "object":...} lines.
 *   ERROR events carry a Status; code 410 ("Expired"/"too old resource
 *   version") means history before RV is gone and the client must relist.
 *
 * Robustness rules (issue 4):
 *   - A dropped stream is re-watched from the last resourceVersion seen
 *     (bookmarks keep that fresh) after a jittered exponential backoff.
 *   - 410 Gone: relist into a side store and swap it in when complete; the
 *     difference is logged and published. Nothing is flushed meanwhile.
 *   - A malformed object is skipped with a warning; its last good version
 *     stays. An unreachable API server changes nothing: the last snapshot
 *     stays in force in the datapath until the API answers again.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "k8s.h"

/* ---- Logging ---- */

static int log_level = SP_K8S_LOG_INFO;

void sp_k8s_set_log_level(int level)
{
	__atomic_store_n(&log_level, level, __ATOMIC_RELAXED);
}

static void klog(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void klog(int level, const char *fmt, ...)
{
	static const char *const names[] = { "", "error", "warning", "info", "debug" };
	char buf[1024];
	va_list ap;

	if (level > __atomic_load_n(&log_level, __ATOMIC_RELAXED))
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* One write per line so concurrent loggers do not interleave. */
	fprintf(stderr, "svcplane: k8s: %s: %s\n", names[level < 1 ? 1 : level > 4 ? 4 : level],
		buf);
}

static void warn_cb(void *arg, const char *msg)
{
	(void)arg;
	klog(SP_K8S_LOG_WARN, "%s", msg);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- Backoff ---- */

static __thread uint64_t rng_state;

static uint64_t rng_next(void)
{
	if (!rng_state)
		rng_state = (now_ms() << 20) ^ ((uint64_t)getpid() << 1) ^ (uintptr_t)&rng_state ^ 1;
	/* xorshift64: jitter only, nothing secret. */
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

unsigned sp_k8s_backoff_ms(unsigned attempt, unsigned min_ms, unsigned max_ms)
{
	uint64_t d = min_ms ? min_ms : 1;

	/* Doubling, capped; full-range jitter in [d/2, d] spreads a fleet of
	 * nodes reconnecting after an API server restart. */
	while (attempt-- && d < max_ms)
		d <<= 1;
	if (d > max_ms)
		d = max_ms;
	return (unsigned)(d / 2 + rng_next() % (d - d / 2 + 1));
}

/* ---- Stream decoding ---- */

/* Kubernetes objects nest deeper than json-c's default of 32 once
 * managedFields are included. */
#define JSON_DEPTH 128

struct sp_k8s_stream {
	struct json_tokener *tok;
	sp_k8s_value_fn cb;
	void *arg;
	bool partial;
	size_t value_bytes; /* of the value being parsed */
	size_t max_value;
};

struct sp_k8s_stream *sp_k8s_stream_new(sp_k8s_value_fn cb, void *arg)
{
	struct sp_k8s_stream *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->tok = json_tokener_new_ex(JSON_DEPTH);
	if (!s->tok) {
		free(s);
		return NULL;
	}
	s->cb = cb;
	s->arg = arg;
	s->max_value = SP_K8S_MAX_VALUE;
	return s;
}

void sp_k8s_stream_set_max(struct sp_k8s_stream *s, size_t max_bytes)
{
	s->max_value = max_bytes;
}

void sp_k8s_stream_reset(struct sp_k8s_stream *s)
{
	json_tokener_reset(s->tok);
	s->partial = false;
	s->value_bytes = 0;
}

void sp_k8s_stream_free(struct sp_k8s_stream *s)
{
	if (!s)
		return;
	json_tokener_free(s->tok);
	free(s);
}

bool sp_k8s_stream_partial(const struct sp_k8s_stream *s)
{
	return s->partial;
}

/*
 * json_tokener keeps its state between calls, so a value may arrive split
 * at any byte across curl's chunks; no line buffer and no copy of the
 * stream is needed. Between values we skip the newlines ourselves so
 * "partial" means exactly "inside a value".
 */
int sp_k8s_stream_feed(struct sp_k8s_stream *s, const char *buf, size_t len)
{
	while (len) {
		struct json_object *v;
		enum json_tokener_error e;
		size_t used;
		int ret;

		if (!s->partial) {
			while (len && (*buf == '\n' || *buf == '\r' || *buf == ' ' || *buf == '\t')) {
				buf++;
				len--;
			}
			if (!len)
				break;
		}
		v = json_tokener_parse_ex(s->tok, buf, (int)(len > (1u << 30) ? 1u << 30 : len));
		e = json_tokener_get_error(s->tok);
		if (e == json_tokener_continue) {
			s->partial = true;
			used = json_tokener_get_parse_end(s->tok);
			s->value_bytes += used;
			if (s->value_bytes > s->max_value) {
				sp_k8s_stream_reset(s);
				return -EMSGSIZE;
			}
			if (used >= len)
				return 0;
			buf += used;
			len -= used;
			continue;
		}
		if (e != json_tokener_success) {
			sp_k8s_stream_reset(s);
			return -EBADMSG;
		}
		used = json_tokener_get_parse_end(s->tok);
		buf += used;
		len -= used;
		if (s->value_bytes + used > s->max_value) {
			sp_k8s_stream_reset(s);
			json_object_put(v);
			return -EMSGSIZE;
		}
		sp_k8s_stream_reset(s);
		ret = s->cb(s->arg, v);
		json_object_put(v);
		if (ret)
			return ret;
	}
	return 0;
}

/* ---- Object store: a small chained hash keyed by "namespace/name" ---- */

enum res_kind { RES_SVC = 0, RES_SLICE, RES_NODE, RES_N, RES_SET = RES_N };

struct entry {
	struct entry *next;
	char *key;
	/* metadata.resourceVersion: the object's own resource_version for
	 * Services and EndpointSlices (one copy), owned here for Nodes. */
	char *rv;
	/* EndpointSlices: endpoints.kubernetes.io/last-change-trigger-time
	 * (CLOCK_REALTIME ns), 0 when absent. */
	int64_t trigger_ns;
	union {
		struct sp_service svc;
		struct sp_slice slice;
		struct {
			struct sp_ip *addrs;
			size_t n;
			bool leaving; /* sp_k8s_node_leaving */
			char *zone; /* sp_k8s_node_zone */
		} node;
	};
};

struct store {
	enum res_kind kind;
	struct entry **b;
	size_t nb, n;
};

static void entry_free(enum res_kind kind, struct entry *e)
{
	if (!e)
		return;
	if (kind == RES_SVC)
		sp_service_free(&e->svc);
	else if (kind == RES_SLICE)
		sp_slice_free(&e->slice);
	else if (kind == RES_NODE) {
		free(e->node.addrs);
		free(e->node.zone);
	}
	free(e->key);
	if (kind != RES_SVC && kind != RES_SLICE)
		free(e->rv);
	free(e);
}

/* e->rv for an entry whose object is parsed or copied. 0 or -ENOMEM. */
static int entry_set_rv(enum res_kind kind, struct entry *e, const char *rv)
{
	if (kind == RES_SVC)
		e->rv = e->svc.resource_version;
	else if (kind == RES_SLICE)
		e->rv = e->slice.resource_version;
	else if (rv && !(e->rv = strdup(rv)))
		return -ENOMEM;
	return 0;
}

static void store_init(struct store *s, enum res_kind kind)
{
	memset(s, 0, sizeof(*s));
	s->kind = kind;
}

static void store_clear(struct store *s)
{
	size_t i;

	for (i = 0; i < s->nb; i++) {
		struct entry *e = s->b[i], *n;

		for (; e; e = n) {
			n = e->next;
			entry_free(s->kind, e);
		}
	}
	free(s->b);
	store_init(s, s->kind);
}

static struct entry **store_slot(struct store *s, const char *key)
{
	struct entry **p;

	if (!s->nb)
		return NULL;
	for (p = &s->b[sp_fnv1a(key) & (s->nb - 1)]; *p; p = &(*p)->next)
		if (!strcmp((*p)->key, key))
			return p;
	return p;
}

static struct entry *store_get(struct store *s, const char *key)
{
	struct entry **p = store_slot(s, key);

	return p ? *p : NULL;
}

/* Insert or replace (the old entry is freed). Returns 0 or -ENOMEM (e untouched). */
static int store_put(struct store *s, struct entry *e)
{
	struct entry **p;

	if (s->n + 1 > s->nb * 2) {
		size_t nb = s->nb ? s->nb * 4 : 64, i;
		struct entry **b = calloc(nb, sizeof(*b));

		if (!b)
			return -ENOMEM;
		for (i = 0; i < s->nb; i++) {
			struct entry *x = s->b[i], *n;

			for (; x; x = n) {
				n = x->next;
				x->next = b[sp_fnv1a(x->key) & (nb - 1)];
				b[sp_fnv1a(x->key) & (nb - 1)] = x;
			}
		}
		free(s->b);
		s->b = b;
		s->nb = nb;
	}
	p = store_slot(s, e->key);
	if (*p) {
		e->next = (*p)->next;
		entry_free(s->kind, *p);
		*p = e;
		return 0;
	}
	e->next = NULL;
	*p = e;
	s->n++;
	return 0;
}

/* Unlink and return the entry for key (caller frees), or NULL. */
static struct entry *store_take(struct store *s, const char *key)
{
	struct entry **p = store_slot(s, key), *e;

	if (!p || !*p)
		return NULL;
	e = *p;
	*p = e->next;
	e->next = NULL;
	s->n--;
	return e;
}

#define store_foreach(s, e, i)                   \
	for ((i) = 0; (i) < (s)->nb; (i)++)      \
		for ((e) = (s)->b[i]; (e); (e) = (e)->next)

/*
 * A zeroed entry with room for kind's member of the union only: a slice
 * does not pay for a Service's larger struct (64 B each, 0.6 MiB of RSS at
 * 10,000 slices). Nothing copies whole entries, so the tail may be absent.
 */
static struct entry *entry_alloc(enum res_kind kind)
{
	size_t sz = kind == RES_SVC	? offsetof(struct entry, svc) + sizeof(struct sp_service) :
		    kind == RES_SLICE	? offsetof(struct entry, slice) + sizeof(struct sp_slice) :
					  sizeof(struct entry);

	return calloc(1, sz);
}

/* Add a key to a set store; duplicates are fine. */
static void set_add(struct store *set, const char *key)
{
	struct entry *e;

	if (store_get(set, key))
		return;
	e = calloc(1, sizeof(*e));
	if (!e || !(e->key = strdup(key)) || store_put(set, e)) {
		/* Only the change log loses an entry; the snapshot itself is intact. */
		if (e)
			free(e->key);
		free(e);
	}
}

/* ---- The watcher ---- */

enum phase { PH_IDLE = 0, PH_LIST, PH_WATCH };

struct watch {
	struct sp_k8s *k;
	enum res_kind kind;
	const char *what; /* "services", for messages */
	const char *path;
	char *selector; /* fieldSelector value, or NULL */
	enum phase phase; /* request type in flight or next */
	bool running; /* a request is in flight */
	bool synced; /* a complete list has been applied */
	bool relist; /* next request starts a fresh list */
	unsigned page_limit; /* list page size: halved when a page is too big */
	char *rv; /* newest resourceVersion seen */
	char *cont; /* list continue token */
	struct store store; /* what the API says */
	struct store pending; /* list in progress */
	bool list_page_ok;
	CURL *easy;
	struct curl_slist *hdrs;
	struct sp_k8s_stream *stream;
	long http_code;
	char body[2048]; /* start of a non-2xx body (a Status) */
	size_t body_len;
	int stream_err;
	bool gone; /* ERROR 410 seen on the stream */
	uint64_t next_start; /* earliest start of the next request (monotonic ms) */
	uint64_t started;
	unsigned attempt;
	unsigned events;
	bool too_large; /* ERROR 504 "Too large resource version" seen */
	uint64_t refused_since; /* first of consecutive 401/403 answers (monotonic ms), or 0 */
};

struct sp_k8s {
	struct sp_k8s_opts o;
	/*
	 * The Services and EndpointSlices of the stores as a struct sp_model,
	 * sorted by namespace/name: shallow copies, whose strings and arrays
	 * belong to the store entries. The watcher changes a store and the
	 * view together with model_lock held; readers on other threads hold it
	 * (sp_k8s_model_lock). An event costs a binary search and at most a
	 * memmove of this array, never a copy of the objects.
	 */
	pthread_mutex_t model_lock;
	struct sp_model view;
	size_t view_cap[2]; /* room in view.services, view.slices */
	char *node_name;
	struct sp_k8s_config cfg;
	CURLM *multi;
	pthread_t thread;
	bool stop;
	struct watch w[RES_N];
	int n_watch;
	sp_k8s_update_fn cb;
	void *cb_arg;
	struct sp_k8s_stats st;
	bool dirty;
	bool published; /* a snapshot has been handed over (last_publish is valid) */
	uint64_t last_publish;
	struct store changed; /* Service keys changed since the last snapshot */
	/* Trigger times of the EndpointSlice changes since the last snapshot
	 * (kubeproxy_network_programming_duration_seconds), at most
	 * MAX_TRIGGERS; those from before the watcher started are left out,
	 * as kube-proxy does (they would measure the proxy's downtime). */
	int64_t *triggers;
	size_t n_triggers;
	int64_t start_ns;
	char *token; /* current bearer token */
	struct stat token_st; /* of token_file when last read */
};

#define STAT_INC(k, f) __atomic_fetch_add(&(k)->st.f, 1, __ATOMIC_RELAXED)

void sp_k8s_get_stats(struct sp_k8s *k, struct sp_k8s_stats *st)
{
	const uint64_t *src = (const uint64_t *)&k->st;
	uint64_t *dst = (uint64_t *)st;
	size_t i;

	for (i = 0; i < sizeof(*st) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

const struct sp_model *sp_k8s_model_lock(struct sp_k8s *k)
{
	pthread_mutex_lock(&k->model_lock);
	return &k->view;
}

void sp_k8s_model_unlock(struct sp_k8s *k)
{
	pthread_mutex_unlock(&k->model_lock);
}

/* ---- The view (struct sp_k8s) ---- */

/* An object's place in the view is its place in a sorted model
 * (sp_model_key_cmp): a Service's slices are one run. */
static void view_name(const struct sp_model *m, enum res_kind kind, size_t i, const char **ns,
		      const char **svc, const char **name)
{
	*ns = kind == RES_SVC ? m->services[i].ns : m->slices[i].ns;
	*svc = kind == RES_SVC ? NULL : m->slices[i].service_name;
	*name = kind == RES_SVC ? m->services[i].name : m->slices[i].name;
}

static size_t view_n(const struct sp_model *m, enum res_kind kind)
{
	return kind == RES_SVC ? m->n_services : m->n_slices;
}

/* Where ns/[svc/]name is or would go in the view; *found says which. */
static size_t view_find(const struct sp_model *m, enum res_kind kind, const char *ns,
			const char *svc, const char *name, bool *found)
{
	size_t lo = 0, hi = view_n(m, kind);
	const char *a, *b, *sv;
	int c = 1;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		view_name(m, kind, mid, &a, &sv, &b);
		c = sp_model_key_cmp(a, sv, b, ns, svc, name);
		if (!c) {
			lo = mid;
			break;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = !c;
	return lo;
}

/* Room for one more object of kind in the view. 0 or -ENOMEM. */
static int view_reserve(struct sp_k8s *k, enum res_kind kind)
{
	size_t *cap = &k->view_cap[kind == RES_SLICE], ncap;
	void *v;

	if (view_n(&k->view, kind) < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 64;
	if (kind == RES_SVC)
		v = reallocarray(k->view.services, ncap, sizeof(struct sp_service));
	else
		v = reallocarray(k->view.slices, ncap, sizeof(struct sp_slice));
	if (!v)
		return -ENOMEM;
	if (kind == RES_SVC)
		k->view.services = v;
	else
		k->view.slices = v;
	*cap = ncap;
	return 0;
}

/*
 * Where e's object goes in the view: the view's array for its kind (NULL
 * for a Node, which has none), its count and element size, and the
 * object's slot (*found: an older version is there).
 */
static char *view_slot(struct sp_model *m, enum res_kind kind, const struct entry *e,
		       size_t **n, size_t *sz, size_t *i, bool *found)
{
	const char *ns, *svc = NULL, *name;
	char *base;

	if (kind == RES_SVC) {
		base = (char *)m->services;
		*n = &m->n_services;
		*sz = sizeof(struct sp_service);
		ns = e->svc.ns;
		name = e->svc.name;
	} else if (kind == RES_SLICE) {
		base = (char *)m->slices;
		*n = &m->n_slices;
		*sz = sizeof(struct sp_slice);
		ns = e->slice.ns;
		svc = e->slice.service_name;
		name = e->slice.name;
	} else {
		return NULL;
	}
	*i = view_find(m, kind, ns, svc, name, found);
	return base;
}

/* The view gets e's object (replacing its older version). Room must have
 * been reserved (view_reserve). */
static void view_put(struct sp_k8s *k, enum res_kind kind, const struct entry *e)
{
	size_t *n, sz, i;
	bool found;
	char *v = view_slot(&k->view, kind, e, &n, &sz, &i, &found);

	if (!v)
		return;
	if (!found) {
		memmove(v + (i + 1) * sz, v + i * sz, (*n - i) * sz);
		(*n)++;
	}
	memcpy(v + i * sz, kind == RES_SVC ? (const void *)&e->svc : (const void *)&e->slice, sz);
}

/* e's object leaves the view (before e is freed). */
static void view_del(struct sp_k8s *k, enum res_kind kind, const struct entry *e)
{
	size_t *n, sz, i;
	bool found;
	char *v = view_slot(&k->view, kind, e, &n, &sz, &i, &found);

	if (!v || !found)
		return;
	(*n)--;
	memmove(v + i * sz, v + (i + 1) * sz, (*n - i) * sz);
}


/*
 * A view of kind for the objects of s (a list about to replace the store):
 * a sorted array, into *out (NULL when s is empty). The caller installs it
 * with view_install. 0 or -ENOMEM.
 */
static int view_build(enum res_kind kind, const struct store *s, void **out)
{
	size_t sz = kind == RES_SVC ? sizeof(struct sp_service) : sizeof(struct sp_slice), i, n = 0;
	char *v = NULL;
	struct entry *e;

	*out = NULL;
	if (!s->n)
		return 0;
	v = calloc(s->n, sz);
	if (!v)
		return -ENOMEM;
	for (i = 0; i < s->nb; i++)
		for (e = s->b[i]; e; e = e->next)
			memcpy(v + n++ * sz, kind == RES_SVC ? (const void *)&e->svc :
							     (const void *)&e->slice,
			       sz);
	qsort(v, n, sz, kind == RES_SVC ? sp_service_order : sp_slice_order);
	*out = v;
	return 0;
}

static void view_install(struct sp_k8s *k, enum res_kind kind, void *v, size_t n)
{
	if (kind == RES_SVC) {
		free(k->view.services);
		k->view.services = v;
		k->view.n_services = n;
	} else {
		free(k->view.slices);
		k->view.slices = v;
		k->view.n_slices = n;
	}
	k->view_cap[kind == RES_SLICE] = n;
}

static void mark_dirty(struct sp_k8s *k)
{
	k->dirty = true;
}

/* The Service an entry belongs to, "ns/name", into buf; false for nodes. */
static bool entry_service(enum res_kind kind, const struct entry *e, char *buf, size_t len)
{
	if (kind == RES_SVC)
		snprintf(buf, len, "%s/%s", e->svc.ns, e->svc.name);
	else if (kind == RES_SLICE)
		snprintf(buf, len, "%s/%s", e->slice.ns, e->slice.service_name);
	else
		return false;
	return true;
}

/* More trigger times than this between two snapshots (a relist of a huge
 * cluster) are not kept: the histogram would be dominated by one event. */
#define MAX_TRIGGERS 4096

static int64_t real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/*
 * A Service or EndpointSlice (e, the new version; NULL when deleted) was
 * added, changed or deleted: count it (kube-proxy's *_changes_total) and
 * keep the slice's trigger time.
 */
static void count_change(struct sp_k8s *k, enum res_kind kind, const struct entry *e)
{
	if (kind == RES_SVC)
		STAT_INC(k, svc_changes);
	else if (kind == RES_SLICE)
		STAT_INC(k, slice_changes);
	if (kind != RES_SLICE || !e || e->trigger_ns < k->start_ns)
		return;
	if (!k->triggers) {
		k->triggers = malloc(MAX_TRIGGERS * sizeof(*k->triggers));
		if (!k->triggers)
			return; /* only the latency metric loses a sample */
	}
	if (k->n_triggers < MAX_TRIGGERS)
		k->triggers[k->n_triggers++] = e->trigger_ns;
}

static void note_changed(struct sp_k8s *k, enum res_kind kind, const struct entry *e)
{
	char name[512];

	if (e && entry_service(kind, e, name, sizeof(name)))
		set_add(&k->changed, name);
	mark_dirty(k);
}

static bool ips_differ(const struct sp_ip *a, size_t na, const struct sp_ip *b, size_t nb)
{
	return na != nb || (na && memcmp(a, b, na * sizeof(*a)));
}

static size_t count_ready(const struct sp_slice *s)
{
	size_t i, n = 0;

	for (i = 0; i < s->n_endpoints; i++)
		n += s->endpoints[i].ready;
	return n;
}

/* A short "what changed" for the debug log. */
static void describe_change(enum res_kind kind, const struct entry *o, const struct entry *n,
			    char *buf, size_t len)
{
	size_t off = 0;

#define ADD(...)                                                                      \
	do {                                                                          \
		if (off < len)                                                        \
			off += (size_t)snprintf(buf + off, len - off, __VA_ARGS__); \
	} while (0)
	buf[0] = 0;
	if (!o || !n) {
		ADD("%s", !o ? "added" : "deleted");
	} else if (kind == RES_SVC) {
		const struct sp_service *a = &o->svc, *b = &n->svc;

		if (a->type != b->type)
			ADD(" type %d->%d", a->type, b->type);
		if (ips_differ(a->cluster_ips, a->n_cluster_ips, b->cluster_ips, b->n_cluster_ips))
			ADD(" clusterIPs");
		if (ips_differ(a->external_ips, a->n_external_ips, b->external_ips,
			       b->n_external_ips))
			ADD(" externalIPs");
		if (ips_differ(a->lb_ips, a->n_lb_ips, b->lb_ips, b->n_lb_ips))
			ADD(" loadBalancer %zu->%zu", a->n_lb_ips, b->n_lb_ips);
		if (a->n_ports != b->n_ports)
			ADD(" ports %zu->%zu", a->n_ports, b->n_ports);
		if (a->n_src_ranges != b->n_src_ranges ||
		    (a->n_src_ranges && memcmp(a->src_ranges, b->src_ranges,
					       a->n_src_ranges * sizeof(*a->src_ranges))))
			ADD(" loadBalancerSourceRanges %zu->%zu", a->n_src_ranges,
			    b->n_src_ranges);
		if (a->etp_local != b->etp_local || a->itp_local != b->itp_local)
			ADD(" trafficPolicy");
		if (a->affinity_client_ip != b->affinity_client_ip ||
		    a->affinity_timeout != b->affinity_timeout)
			ADD(" sessionAffinity");
		if (!!a->proxy_name != !!b->proxy_name ||
		    (a->proxy_name && strcmp(a->proxy_name, b->proxy_name)))
			ADD(" proxy-name %s->%s", a->proxy_name ? a->proxy_name : "-",
			    b->proxy_name ? b->proxy_name : "-");
		if (!off)
			ADD(" updated");
	} else if (kind == RES_SLICE) {
		ADD(" endpoints %zu->%zu (ready %zu->%zu)", o->slice.n_endpoints,
		    n->slice.n_endpoints, count_ready(&o->slice), count_ready(&n->slice));
	} else {
		ADD(" addresses %zu->%zu%s zone %s->%s", o->node.n, n->node.n,
		    n->node.leaving ? " (leaving)" : "", o->node.zone ? o->node.zone : "-",
		    n->node.zone ? n->node.zone : "-");
	}
#undef ADD
}

static void log_change(struct watch *w, const char *key, const struct entry *o,
		       const struct entry *n)
{
	char desc[256];

	if (__atomic_load_n(&log_level, __ATOMIC_RELAXED) < SP_K8S_LOG_DEBUG)
		return;
	describe_change(w->kind, o, n, desc, sizeof(desc));
	klog(SP_K8S_LOG_DEBUG, "%s %s:%s%s (rv %s)", w->what, key, desc[0] == ' ' ? "" : " ",
	     desc, n && n->rv ? n->rv : o && o->rv ? o->rv : "-");
}

/*
 * Parse one object of w's kind into a new entry. Returns 0 with *out,
 * SP_K8S_IGNORED (valid but not ours), -EINVAL (bad; warned), -ENOMEM.
 */
static int parse_entry(struct watch *w, struct json_object *obj, const char *key,
		       struct entry **out)
{
	struct json_object *md, *rvo;
	struct entry *e;
	char err[512] = "";
	int ret;

	*out = NULL;
	e = entry_alloc(w->kind);
	if (!e || !(e->key = strdup(key))) {
		free(e);
		return -ENOMEM;
	}
	if (w->kind == RES_SVC)
		ret = sp_k8s_parse_service(obj, &e->svc, warn_cb, NULL, err, sizeof(err));
	else if (w->kind == RES_SLICE)
		ret = sp_k8s_parse_slice(obj, &e->slice, warn_cb, NULL, err, sizeof(err));
	else if (!(ret = sp_k8s_parse_node(obj, &e->node.addrs, &e->node.n, warn_cb, NULL, err,
					   sizeof(err)))) {
		e->node.leaving = sp_k8s_node_leaving(obj);
		ret = sp_k8s_node_zone(obj, &e->node.zone);
		if (ret)
			free(e->node.addrs);
	}
	if (ret) {
		if (ret == -EINVAL) {
			STAT_INC(w->k, bad_objects);
			klog(SP_K8S_LOG_WARN, "skipping bad object: %s (last good version kept)", err);
		}
		free(e->key);
		free(e);
		return ret;
	}
	if (entry_set_rv(w->kind, e,
			 json_object_object_get_ex(obj, "metadata", &md) &&
					 json_object_object_get_ex(md, "resourceVersion", &rvo) &&
					 json_object_is_type(rvo, json_type_string) ?
				 json_object_get_string(rvo) :
				 NULL)) {
		entry_free(w->kind, e);
		return -ENOMEM;
	}
	if (w->kind == RES_SLICE)
		e->trigger_ns = sp_k8s_trigger_time(obj);
	*out = e;
	return 0;
}

/* A deep copy of an entry, or NULL on -ENOMEM. */
static struct entry *entry_dup(enum res_kind kind, const struct entry *o)
{
	struct entry *e = entry_alloc(kind);
	int ret = 0;

	if (!e)
		return NULL;
	if (kind == RES_SVC) {
		ret = sp_k8s_service_dup(&e->svc, &o->svc);
	} else if (kind == RES_SLICE) {
		ret = sp_k8s_slice_dup(&e->slice, &o->slice);
	} else {
		e->node.leaving = o->node.leaving;
		if (o->node.zone && !(e->node.zone = strdup(o->node.zone)))
			ret = -ENOMEM;
		if (o->node.n) {
			e->node.addrs = malloc(o->node.n * sizeof(struct sp_ip));
			if (e->node.addrs) {
				memcpy(e->node.addrs, o->node.addrs,
				       o->node.n * sizeof(struct sp_ip));
				e->node.n = o->node.n;
			} else {
				ret = -ENOMEM;
			}
		}
	}
	if (ret) {
		if (kind == RES_NODE) {
			free(e->node.zone);
			free(e->node.addrs);
		}
		free(e);
		return NULL;
	}
	e->key = strdup(o->key);
	e->trigger_ns = o->trigger_ns;
	if (!e->key || entry_set_rv(kind, e, o->rv)) {
		entry_free(kind, e);
		return NULL;
	}
	return e;
}

static const char *jstr_at(struct json_object *o, const char *a, const char *b)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, a, &v))
		return NULL;
	if (b && !json_object_object_get_ex(v, b, &v))
		return NULL;
	return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static int set_str(char **dst, const char *src)
{
	char *n = src ? strdup(src) : NULL;

	if (src && !n)
		return -ENOMEM;
	free(*dst);
	*dst = n;
	return 0;
}

/* One page of a list: items into w->pending. Runs from the stream decoder. */
static int on_list_page(void *arg, struct json_object *doc)
{
	struct watch *w = arg;
	struct json_object *items;
	const char *kind = jstr_at(doc, "kind", NULL), *rv, *cont;
	size_t i, n;

	if (!kind || strlen(kind) < 4 || strcmp(kind + strlen(kind) - 4, "List") ||
	    !json_object_object_get_ex(doc, "items", &items) ||
	    (items && !json_object_is_type(items, json_type_array))) {
		klog(SP_K8S_LOG_WARN, "list %s: the answer is not a List", w->what);
		return -EPROTO;
	}
	rv = jstr_at(doc, "metadata", "resourceVersion");
	cont = jstr_at(doc, "metadata", "continue");
	if (!rv || !*rv) {
		klog(SP_K8S_LOG_WARN, "list %s: no metadata.resourceVersion", w->what);
		return -EPROTO;
	}
	if (set_str(&w->rv, rv) || set_str(&w->cont, cont && *cont ? cont : NULL))
		return -ENOMEM;
	n = items ? json_object_array_length(items) : 0;
	for (i = 0; i < n; i++) {
		struct json_object *it = json_object_array_get_idx(items, i);
		struct entry *e, *old;
		char key[512];
		int ret;

		if (sp_k8s_object_key(it, key, sizeof(key))) {
			STAT_INC(w->k, bad_objects);
			klog(SP_K8S_LOG_WARN, "list %s: item %zu has no metadata.name, skipped",
			     w->what, i);
			continue;
		}
		ret = parse_entry(w, it, key, &e);
		if (ret == -ENOMEM)
			return ret;
		if (ret == -EINVAL) {
			/* Keep the last good version across the relist. */
			old = store_get(&w->store, key);
			if (!old)
				continue;
			e = entry_dup(w->kind, old);
			if (!e)
				return -ENOMEM;
			ret = 0;
		}
		if (ret)
			continue; /* ignored kind of object */
		if (store_put(&w->pending, e)) {
			entry_free(w->kind, e);
			return -ENOMEM;
		}
	}
	w->list_page_ok = true;
	return 0;
}

/*
 * The list is complete: swap it in. Whatever differs from the store is a
 * change that happened while we were not watching (or the first sync).
 */
static int finish_list(struct watch *w)
{
	struct sp_k8s *k = w->k;
	struct entry *e, *o;
	size_t i, added = 0, changed = 0, deleted = 0;
	bool view = w->kind == RES_SVC || w->kind == RES_SLICE;
	void *v = NULL;

	if (view && view_build(w->kind, &w->pending, &v)) {
		klog(SP_K8S_LOG_ERR, "list %s: out of memory; listing again", w->what);
		store_clear(&w->pending);
		return -ENOMEM;
	}
	store_foreach(&w->store, o, i) {
		if (!store_get(&w->pending, o->key)) {
			log_change(w, o->key, o, NULL);
			count_change(k, w->kind, NULL);
			note_changed(k, w->kind, o);
			deleted++;
		}
	}
	store_foreach(&w->pending, e, i) {
		o = store_get(&w->store, e->key);
		if (o && o->rv && e->rv && !strcmp(o->rv, e->rv))
			continue;
		log_change(w, e->key, o, e);
		count_change(k, w->kind, e);
		note_changed(k, w->kind, o);
		note_changed(k, w->kind, e);
		if (o)
			changed++;
		else
			added++;
	}
	/* The store and its view change together, for readers of the model. */
	pthread_mutex_lock(&k->model_lock);
	if (view)
		view_install(k, w->kind, v, w->pending.n);
	store_clear(&w->store);
	w->store = w->pending;
	pthread_mutex_unlock(&k->model_lock);
	store_init(&w->pending, w->kind);
	if (!w->synced)
		mark_dirty(k); /* the first sync publishes even an empty cluster */
	klog(w->synced ? SP_K8S_LOG_INFO : SP_K8S_LOG_DEBUG,
	     "%s listed at resourceVersion %s: %zu objects (%zu added, %zu changed, %zu deleted)",
	     w->what, w->rv, w->store.n, added, changed, deleted);
	w->synced = true;
	STAT_INC(k, lists);
	return 0;
}

/*
 * A Status saying the requested resourceVersion is newer than the server's
 * cache ("Too large resource version", 504 Timeout with the cause
 * ResourceVersionTooLarge): the server is behind, e.g. a restarted API
 * server whose watch cache started from an older etcd member, or a
 * restored etcd. Waiting does not help if the server never catches up, so
 * this relists, as client-go's reflector does (IsTooLargeResourceVersion).
 */
static bool status_too_large(struct json_object *st)
{
	struct json_object *code, *det, *causes;
	const char *msg = jstr_at(st, "message", NULL);
	size_t i, n;

	if (!json_object_object_get_ex(st, "code", &code) || json_object_get_int64(code) != 504)
		return false;
	if (msg && strstr(msg, "Too large resource version"))
		return true;
	if (!json_object_object_get_ex(st, "details", &det) ||
	    !json_object_object_get_ex(det, "causes", &causes) ||
	    !json_object_is_type(causes, json_type_array))
		return false;
	n = json_object_array_length(causes);
	for (i = 0; i < n; i++) {
		const char *r = jstr_at(json_object_array_get_idx(causes, i), "reason", NULL);

		if (r && !strcmp(r, "ResourceVersionTooLarge"))
			return true;
	}
	return false;
}

/* Into the store and the view (replacing an older version, which is
 * freed). 0 or -ENOMEM (nothing changed, e still the caller's). */
static int put_entry(struct watch *w, struct entry *e)
{
	struct sp_k8s *k = w->k;
	bool view = w->kind == RES_SVC || w->kind == RES_SLICE;
	int ret;

	struct entry *old;

	pthread_mutex_lock(&k->model_lock);
	ret = view ? view_reserve(k, w->kind) : 0;
	if (ret)
		goto out;
	/* The view first: it finds the older version by its names, which
	 * store_put frees. Out, then in: a slice moves when its Service
	 * label changes. */
	old = store_get(&w->store, e->key);
	if (view) {
		if (old)
			view_del(k, w->kind, old);
		view_put(k, w->kind, e);
	}
	ret = store_put(&w->store, e);
	if (ret && view) {
		view_del(k, w->kind, e);
		if (old)
			view_put(k, w->kind, old);
	}
out:
	pthread_mutex_unlock(&k->model_lock);
	return ret;
}

/* Out of the store and the view: the entry (the caller frees it), or NULL. */
static struct entry *take_entry(struct watch *w, const char *key)
{
	struct sp_k8s *k = w->k;
	struct entry *e;

	pthread_mutex_lock(&k->model_lock);
	e = store_take(&w->store, key);
	if (e && (w->kind == RES_SVC || w->kind == RES_SLICE))
		view_del(k, w->kind, e);
	pthread_mutex_unlock(&k->model_lock);
	return e;
}

/* Apply one watch event. Runs from the stream decoder. */
static int on_event(void *arg, struct json_object *ev)
{
	struct watch *w = arg;
	struct sp_k8s *k = w->k;
	struct json_object *obj;
	const char *type = jstr_at(ev, "type", NULL), *rv;
	struct entry *e = NULL, *old;
	char key[512];
	int ret;

	if (!type || !json_object_object_get_ex(ev, "object", &obj) ||
	    !json_object_is_type(obj, json_type_object)) {
		klog(SP_K8S_LOG_WARN, "watch %s: malformed event, dropping the stream", w->what);
		return -EPROTO;
	}
	if (!strcmp(type, "ERROR")) {
		struct json_object *code;
		const char *msg = jstr_at(obj, "message", NULL);
		int64_t c = json_object_object_get_ex(obj, "code", &code) ?
				    json_object_get_int64(code) :
				    0;

		if (c == 410) {
			klog(SP_K8S_LOG_INFO, "watch %s: %s (410): relisting", w->what,
			     msg ? msg : "resource version expired");
			w->gone = true;
			return -ECANCELED;
		}
		if (status_too_large(obj)) {
			klog(SP_K8S_LOG_INFO, "watch %s: %s (504): relisting", w->what,
			     msg ? msg : "too large resource version");
			w->too_large = true;
			return -ECANCELED;
		}
		klog(SP_K8S_LOG_WARN, "watch %s: error event %lld: %s", w->what, (long long)c,
		     msg ? msg : "(no message)");
		return -EPROTO;
	}
	rv = jstr_at(obj, "metadata", "resourceVersion");
	if (!strcmp(type, "BOOKMARK")) {
		/* Only the resourceVersion is meaningful in a bookmark. */
		STAT_INC(k, bookmarks);
		if (rv && *rv && set_str(&w->rv, rv))
			return -ENOMEM;
		return 0;
	}
	if (sp_k8s_object_key(obj, key, sizeof(key))) {
		STAT_INC(k, bad_objects);
		klog(SP_K8S_LOG_WARN, "watch %s: %s event for an object without a name, skipped",
		     w->what, type);
		goto done;
	}
	if (!strcmp(type, "ADDED") || !strcmp(type, "MODIFIED")) {
		ret = parse_entry(w, obj, key, &e);
		if (ret == -ENOMEM)
			return ret;
		if (ret == -EINVAL)
			goto done;
		old = store_get(&w->store, key);
		if (ret == SP_K8S_IGNORED) {
			/* Valid, but no longer ours (e.g. became ExternalName). */
			old = take_entry(w, key);
			if (old) {
				log_change(w, key, old, NULL);
				count_change(k, w->kind, NULL);
				note_changed(k, w->kind, old);
				entry_free(w->kind, old);
			}
			goto done;
		}
		if (old && old->rv && e->rv && !strcmp(old->rv, e->rv)) {
			entry_free(w->kind, e);
			goto done;
		}
		log_change(w, key, old, e);
		count_change(k, w->kind, e);
		note_changed(k, w->kind, old); /* a slice may have moved between Services */
		note_changed(k, w->kind, e);
		if (put_entry(w, e)) {
			entry_free(w->kind, e);
			return -ENOMEM;
		}
	} else if (!strcmp(type, "DELETED")) {
		old = take_entry(w, key);
		if (old) {
			log_change(w, key, old, NULL);
			count_change(k, w->kind, NULL);
			note_changed(k, w->kind, old);
			entry_free(w->kind, old);
		}
	} else {
		klog(SP_K8S_LOG_WARN, "watch %s: unknown event type \"%s\", ignored", w->what, type);
	}
done:
	STAT_INC(k, events);
	w->events++;
	/* Consumed, even if skipped: never ask for it again. */
	if (rv && *rv && set_str(&w->rv, rv))
		return -ENOMEM;
	return 0;
}

static int on_value(void *arg, struct json_object *v)
{
	struct watch *w = arg;

	return w->phase == PH_LIST ? on_list_page(arg, v) : on_event(arg, v);
}

static size_t on_data(char *p, size_t sz, size_t nm, void *arg)
{
	struct watch *w = arg;
	size_t len = sz * nm;

	if (!w->http_code)
		curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &w->http_code);
	if (w->http_code != 200) {
		size_t room = sizeof(w->body) - 1 - w->body_len;

		if (len < room)
			room = len;
		memcpy(w->body + w->body_len, p, room);
		w->body_len += room;
		w->body[w->body_len] = 0;
		return len;
	}
	w->stream_err = sp_k8s_stream_feed(w->stream, p, len);
	/* Returning short makes curl abort the transfer (CURLE_WRITE_ERROR). */
	return w->stream_err ? 0 : len;
}

/* Re-read the token file if it changed (projected tokens rotate hourly). */
static void refresh_token(struct sp_k8s *k)
{
	struct stat st;
	char buf[16384];
	ssize_t n;
	FILE *f;

	if (k->cfg.token || !k->cfg.token_file)
		return;
	if (stat(k->cfg.token_file, &st)) {
		klog(SP_K8S_LOG_WARN, "token file %s: %s (keeping the last token)",
		     k->cfg.token_file, strerror(errno));
		return;
	}
	if (k->token && st.st_ino == k->token_st.st_ino && st.st_size == k->token_st.st_size &&
	    st.st_mtim.tv_sec == k->token_st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == k->token_st.st_mtim.tv_nsec)
		return;
	f = fopen(k->cfg.token_file, "r");
	if (!f) {
		klog(SP_K8S_LOG_WARN, "token file %s: %s (keeping the last token)",
		     k->cfg.token_file, strerror(errno));
		return;
	}
	n = (ssize_t)fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		n--;
	if (n <= 0)
		return;
	buf[n] = 0;
	if (set_str(&k->token, buf))
		return;
	k->token_st = st;
	klog(SP_K8S_LOG_DEBUG, "read token from %s", k->cfg.token_file);
}

static void end_request(struct watch *w)
{
	if (w->easy) {
		curl_multi_remove_handle(w->k->multi, w->easy);
		curl_easy_cleanup(w->easy);
		w->easy = NULL;
	}
	curl_slist_free_all(w->hdrs);
	w->hdrs = NULL;
	w->running = false;
}

static int add_query(char *url, size_t len, CURL *c, const char *name, const char *val)
{
	char *esc = curl_easy_escape(c, val, 0);
	size_t off = strlen(url);

	if (!esc)
		return -ENOMEM;
	snprintf(url + off, len - off, "%c%s=%s", strchr(url, '?') ? '&' : '?', name, esc);
	curl_free(esc);
	return strlen(url) + 1 < len ? 0 : -E2BIG;
}

static int start_request(struct watch *w)
{
	struct sp_k8s *k = w->k;
	struct sp_k8s_config *c = &k->cfg;
	char url[4096], hdr[16500], num[32];
	const char *tok;
	unsigned tmo;
	int ret = 0;

	w->easy = curl_easy_init();
	if (!w->easy)
		return -ENOMEM;
	if (w->relist || !w->rv)
		w->phase = PH_LIST;
	if (w->phase == PH_LIST && w->relist) {
		/* A fresh list: forget a half-done one. */
		store_clear(&w->pending);
		free(w->cont);
		w->cont = NULL;
		w->relist = false;
	}
	snprintf(url, sizeof(url), "%s%s", c->server, w->path);
	if (w->selector)
		ret = add_query(url, sizeof(url), w->easy, "fieldSelector", w->selector);
	if (w->phase == PH_LIST) {
		/* No resourceVersion: a consistent (quorum) read, paged at one RV. */
		snprintf(num, sizeof(num), "%u", w->page_limit ?: k->o.page_limit);
		ret = ret ?: add_query(url, sizeof(url), w->easy, "limit", num);
		if (w->cont)
			ret = ret ?: add_query(url, sizeof(url), w->easy, "continue", w->cont);
		tmo = 300;
		w->list_page_ok = false;
	} else {
		tmo = k->o.watch_timeout_s ? k->o.watch_timeout_s : 300 + (unsigned)(rng_next() % 300);
		snprintf(num, sizeof(num), "%u", tmo);
		ret = ret ?: add_query(url, sizeof(url), w->easy, "watch", "true");
		ret = ret ?: add_query(url, sizeof(url), w->easy, "allowWatchBookmarks", "true");
		ret = ret ?: add_query(url, sizeof(url), w->easy, "resourceVersion", w->rv);
		ret = ret ?: add_query(url, sizeof(url), w->easy, "timeoutSeconds", num);
		/* The server ends the watch after timeoutSeconds; this is only a backstop. */
		tmo += 30;
		w->events = 0;
		STAT_INC(k, watches);
	}
	if (ret)
		goto fail;

	refresh_token(k);
	tok = c->token ? c->token : k->token;
	w->hdrs = curl_slist_append(NULL, "Accept: application/json");
	if (w->hdrs && tok) {
		struct curl_slist *h;

		snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", tok);
		h = curl_slist_append(w->hdrs, hdr);
		if (h)
			w->hdrs = h;
		else
			ret = -ENOMEM;
		explicit_bzero(hdr, sizeof(hdr));
	}
	if (!w->hdrs || ret) {
		ret = -ENOMEM;
		goto fail;
	}

	curl_easy_setopt(w->easy, CURLOPT_URL, url);
	curl_easy_setopt(w->easy, CURLOPT_HTTPHEADER, w->hdrs);
	curl_easy_setopt(w->easy, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(w->easy, CURLOPT_WRITEDATA, w);
	curl_easy_setopt(w->easy, CURLOPT_PRIVATE, w);
	curl_easy_setopt(w->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(w->easy, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(w->easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(w->easy, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(w->easy, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(w->easy, CURLOPT_TIMEOUT, (long)tmo);
	/* A stalled stream (no byte, not even a bookmark) is dropped and re-watched. */
	curl_easy_setopt(w->easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(w->easy, CURLOPT_LOW_SPEED_TIME, (long)k->o.idle_timeout_s);
	curl_easy_setopt(w->easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(w->easy, CURLOPT_ACCEPT_ENCODING, "");
	/*
	 * HTTP/2 when the server offers it (ALPN; kube-apiserver does), and
	 * the three watches multiplexed on one connection, as client-go's
	 * shared transport does: PIPEWAIT makes a transfer that starts while
	 * the first connection is still being set up wait for it instead of
	 * opening its own. Over HTTP/1.1 each transfer still gets its own.
	 */
	curl_easy_setopt(w->easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(w->easy, CURLOPT_PIPEWAIT, 1L);
	if (getenv("SVCPLANE_CURL_VERBOSE"))
		curl_easy_setopt(w->easy, CURLOPT_VERBOSE, 1L);
	if (c->ca_file)
		curl_easy_setopt(w->easy, CURLOPT_CAINFO, c->ca_file);
	if (c->ca_pem) {
		struct curl_blob b = { c->ca_pem, c->ca_pem_len, CURL_BLOB_COPY };

		curl_easy_setopt(w->easy, CURLOPT_CAINFO_BLOB, &b);
	}
	if (c->cert_file)
		curl_easy_setopt(w->easy, CURLOPT_SSLCERT, c->cert_file);
	if (c->key_file)
		curl_easy_setopt(w->easy, CURLOPT_SSLKEY, c->key_file);
	if (c->cert_pem) {
		struct curl_blob b = { c->cert_pem, c->cert_pem_len, CURL_BLOB_COPY };

		curl_easy_setopt(w->easy, CURLOPT_SSLCERT_BLOB, &b);
		curl_easy_setopt(w->easy, CURLOPT_SSLCERTTYPE, "PEM");
	}
	if (c->key_pem) {
		struct curl_blob b = { c->key_pem, c->key_pem_len, CURL_BLOB_COPY };

		curl_easy_setopt(w->easy, CURLOPT_SSLKEY_BLOB, &b);
		curl_easy_setopt(w->easy, CURLOPT_SSLKEYTYPE, "PEM");
	}

	w->http_code = 0;
	w->body_len = 0;
	w->body[0] = 0;
	w->stream_err = 0;
	w->gone = false;
	w->too_large = false;
	sp_k8s_stream_reset(w->stream);
	w->started = now_ms();
	if (curl_multi_add_handle(k->multi, w->easy) != CURLM_OK) {
		ret = -ENOMEM;
		goto fail;
	}
	w->running = true;
	klog(SP_K8S_LOG_DEBUG, "%s %s", w->phase == PH_LIST ? "list" : "watch", url);
	return 0;
fail:
	end_request(w);
	return ret;
}

static void schedule(struct watch *w, bool backoff)
{
	struct sp_k8s *k = w->k;

	if (!backoff) {
		w->next_start = now_ms();
		return;
	}
	w->next_start = now_ms() + sp_k8s_backoff_ms(w->attempt, k->o.backoff_min_ms,
						     k->o.backoff_max_ms);
	if (w->attempt < 31)
		w->attempt++;
}

/* The message of a Status body, for logs. */
static void status_message(struct watch *w, char *buf, size_t len)
{
	struct json_object *st = json_tokener_parse(w->body);
	const char *m = st ? jstr_at(st, "message", NULL) : NULL;

	/* Precision, not just len: a long body is cut on purpose for the log. */
	snprintf(buf, len, "%.*s", (int)(len ? len - 1 : 0),
		 m ? m : w->body_len ? w->body : "(no body)");
	json_object_put(st);
}

/*
 * A 401 or 403: while a (re)started API server's authenticator and RBAC
 * caches sync it refuses valid requests for a few seconds, so refusals are
 * logged as probably transient first, and as a problem of the token or the
 * ClusterRole once they have gone on for REFUSED_GRACE_MS.
 */
#define REFUSED_GRACE_MS 30000

static void log_refused(struct watch *w, bool listing, long code, const char *msg)
{
	uint64_t now = now_ms(), t;

	if (!w->refused_since)
		w->refused_since = now;
	t = now - w->refused_since;
	if (t >= REFUSED_GRACE_MS)
		klog(SP_K8S_LOG_ERR, "%s %s: HTTP %ld for %llu s: %s (%s)",
		     listing ? "list" : "watch", w->what, code, (unsigned long long)t / 1000, msg,
		     code == 401 ? "check the token" : "check the ClusterRole: list/watch/get");
	else
		klog(w->refused_since == now ? SP_K8S_LOG_WARN : SP_K8S_LOG_DEBUG,
		     "%s %s: HTTP %ld: %s (retrying: an API server that is starting refuses "
		     "requests until its caches sync; an error if it lasts %d s)",
		     listing ? "list" : "watch", w->what, code, msg, REFUSED_GRACE_MS / 1000);
}

/*
 * How a watch ends when the server goes away between events: a stopping
 * kube-apiserver closes its connections without ending the chunked
 * response (curl: "Transferred a partial file"), resets its HTTP/2
 * streams or the connection. With no event half-read nothing is lost:
 * the watch resumes from the last resourceVersion, so this is information,
 * not a warning.
 */
static bool closed_by_server(CURLcode res)
{
	return res == CURLE_PARTIAL_FILE || res == CURLE_HTTP2 || res == CURLE_HTTP2_STREAM ||
	       res == CURLE_RECV_ERROR || res == CURLE_GOT_NOTHING;
}

static void request_done(struct watch *w, CURLcode res)
{
	struct sp_k8s *k = w->k;
	long code = 0;
	curl_off_t retry_after = 0;
	char msg[512];
	bool listing = w->phase == PH_LIST;
	uint64_t lived = now_ms() - w->started;

	curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_getinfo(w->easy, CURLINFO_RETRY_AFTER, &retry_after);
	end_request(w);
	if (code && code != 401 && code != 403)
		w->refused_since = 0;

	if (!w->too_large && code == 504 && w->body_len) {
		struct json_object *st = json_tokener_parse(w->body);

		w->too_large = st && status_too_large(st);
		json_object_put(st);
		if (w->too_large) {
			status_message(w, msg, sizeof(msg));
			klog(SP_K8S_LOG_INFO, "%s %s: %s (504): relisting",
			     listing ? "list" : "watch", w->what, msg);
		}
	}
	if (w->too_large) {
		/* Relist after a backoff: the server may catch up meanwhile. */
		STAT_INC(k, http_errors);
		w->relist = true;
		w->phase = PH_LIST;
		schedule(w, true);
		return;
	}
	if (w->gone || code == 410) {
		/* History is gone (watch) or the continue token expired (list). */
		STAT_INC(k, relists_gone);
		w->relist = true;
		w->phase = PH_LIST;
		schedule(w, false);
		return;
	}
	if (res == CURLE_OK && code != 200) {
		status_message(w, msg, sizeof(msg));
		STAT_INC(k, http_errors);
		if (code == 401 || code == 403)
			log_refused(w, listing, code, msg);
		else
			klog(SP_K8S_LOG_WARN, "%s %s: HTTP %ld: %s%s", listing ? "list" : "watch",
			     w->what, code, msg, retry_after > 0 ? " (the server asks to wait)" : "");
		if (listing)
			w->relist = true;
		schedule(w, true);
		/*
		 * Retry-After (429 from API Priority and Fairness, 503 from a
		 * server shutting down): not sooner than the server asks, but
		 * never longer than the backoff cap, whatever it says.
		 */
		if (retry_after > 0) {
			uint64_t ra = (uint64_t)retry_after * 1000;

			if (ra > k->o.backoff_max_ms)
				ra = k->o.backoff_max_ms;
			if (w->next_start < now_ms() + ra)
				w->next_start = now_ms() + ra;
		}
		return;
	}
	if (res == CURLE_OPERATION_TIMEDOUT && !listing) {
		/* LOW_SPEED_TIME: not even a bookmark for idle_timeout_s. */
		klog(SP_K8S_LOG_WARN, "watch %s: no data for %us, assuming a stalled stream",
		     w->what, k->o.idle_timeout_s);
	} else if (!listing && closed_by_server(res) && !sp_k8s_stream_partial(w->stream)) {
		/* Logged below, with the re-watch: not an error of its own. */
	} else if (res != CURLE_OK && !(res == CURLE_WRITE_ERROR && w->stream_err)) {
		STAT_INC(k, http_errors);
		klog(SP_K8S_LOG_WARN, "%s %s: %s", listing ? "list" : "watch", w->what,
		     curl_easy_strerror(res));
	}
	if (listing) {
		if (res != CURLE_OK || !w->list_page_ok || sp_k8s_stream_partial(w->stream)) {
			if (w->stream_err == -EBADMSG || (res == CURLE_OK && !w->list_page_ok))
				klog(SP_K8S_LOG_WARN, "list %s: bad or truncated answer", w->what);
			if (w->stream_err == -EMSGSIZE) {
				unsigned lim = w->page_limit ?: k->o.page_limit;

				/* Smaller pages until one fits; one object
				 * alone over the cap cannot be taken. */
				w->page_limit = lim > 1 ? lim / 2 : 1;
				klog(SP_K8S_LOG_ERR,
				     "list %s: a page of %u objects is over %zu bytes, the most one "
				     "answer may take: listing again with pages of %u (the last "
				     "good state stays)",
				     w->what, lim, k->o.max_value ?: (size_t)SP_K8S_MAX_VALUE,
				     w->page_limit);
			}
			w->relist = true;
			schedule(w, true);
			return;
		}
		if (w->cont) {
			schedule(w, false); /* next page */
			return;
		}
		if (finish_list(w)) {
			w->relist = true;
			schedule(w, true);
			return;
		}
		w->attempt = 0;
		w->phase = PH_WATCH;
		schedule(w, false);
		return;
	}
	/*
	 * A watch ended. The server closes watches after timeoutSeconds: come
	 * straight back. A stream that failed, was cut mid-event or died young
	 * without delivering anything backs off so a flapping server is not
	 * hammered.
	 */
	if (res != CURLE_OK || w->stream_err || sp_k8s_stream_partial(w->stream)) {
		bool closed = closed_by_server(res) && !sp_k8s_stream_partial(w->stream);

		STAT_INC(k, watch_drops);
		if (w->stream_err == -EBADMSG)
			klog(SP_K8S_LOG_WARN, "watch %s: malformed JSON on the stream", w->what);
		else if (w->stream_err == -EMSGSIZE)
			klog(SP_K8S_LOG_ERR,
			     "watch %s: an event over %zu bytes, the most one object may take: "
			     "not applied; listing again (the last good state stays)",
			     w->what, k->o.max_value ?: (size_t)SP_K8S_MAX_VALUE);
		/* The same resourceVersion would send the same event again. */
		if (w->stream_err == -EMSGSIZE)
			w->relist = true;
		else if (res == CURLE_OK)
			klog(SP_K8S_LOG_WARN, "watch %s: stream cut short", w->what);
		klog(SP_K8S_LOG_INFO, "watch %s: %s%s%sre-watching from resourceVersion %s", w->what,
		     closed ? "the server closed the stream (" : "",
		     closed ? curl_easy_strerror(res) : "", closed ? "); " : "", w->rv);
		if (w->events)
			w->attempt = 0;
		schedule(w, true);
		return;
	}
	if (w->events || lived >= 1000) {
		w->attempt = 0;
		schedule(w, false);
	} else {
		schedule(w, true);
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void sp_k8s_update_free(struct sp_k8s_update *u)
{
	size_t i;

	if (!u)
		return;
	free(u->node_addrs);
	free(u->node_zone);
	for (i = 0; i < u->n_changed; i++)
		free(u->changed[i]);
	free(u->changed);
	free(u->triggers);
	free(u);
}

int sp_k8s_update_merge(struct sp_k8s_update *newer, const struct sp_k8s_update *older)
{
	size_t n = newer->n_changed + older->n_changed, i = 0, j = 0, k = 0;
	char **v = calloc(n ? n : 1, sizeof(*v));
	bool *copied = calloc(n ? n : 1, sizeof(*copied));
	int64_t *t = NULL;

	if (!v || !copied)
		goto fail;
	if (older->n_triggers) {
		t = malloc((newer->n_triggers + older->n_triggers) * sizeof(*t));
		if (!t)
			goto fail;
	}
	/* Both lists are sorted: merge them, one copy of each name. */
	while (i < newer->n_changed || j < older->n_changed) {
		int c = i == newer->n_changed ? 1 :
			j == older->n_changed ? -1 :
						strcmp(newer->changed[i], older->changed[j]);

		if (c <= 0) {
			v[k++] = newer->changed[i++];
			j += !c;
			continue;
		}
		copied[k] = true;
		if (!(v[k++] = strdup(older->changed[j++])))
			goto fail;
	}
	if (t) {
		memcpy(t, older->triggers, older->n_triggers * sizeof(*t));
		if (newer->n_triggers)
			memcpy(t + older->n_triggers, newer->triggers,
			       newer->n_triggers * sizeof(*t));
		free(newer->triggers);
		newer->triggers = t;
		newer->n_triggers += older->n_triggers;
	}
	free(newer->changed);
	newer->changed = v;
	newer->n_changed = k;
	free(copied);
	return 0;
fail:
	for (i = 0; v && copied && i < k; i++)
		if (copied[i])
			free(v[i]);
	free(v);
	free(copied);
	free(t);
	return -ENOMEM;
}

/* What changed since the last snapshot, and a pointer to the model.
 * Returns NULL on -ENOMEM. */
static struct sp_k8s_update *build_update(struct sp_k8s *k)
{
	struct sp_k8s_update *u = calloc(1, sizeof(*u));
	struct entry *e;
	size_t i;

	if (!u)
		return NULL;
	u->model = &k->view;
	if (k->changed.n && !(u->changed = calloc(k->changed.n, sizeof(char *))))
		goto fail;
	store_foreach(&k->changed, e, i) {
		if (!(u->changed[u->n_changed] = strdup(e->key)))
			goto fail;
		u->n_changed++;
	}
	if (k->n_triggers) {
		u->triggers = malloc(k->n_triggers * sizeof(*u->triggers));
		if (!u->triggers)
			goto fail;
		memcpy(u->triggers, k->triggers, k->n_triggers * sizeof(*u->triggers));
		u->n_triggers = k->n_triggers;
	}
	if (k->n_watch > RES_NODE) {
		e = store_get(&k->w[RES_NODE].store, k->node_name);
		u->node_known = e != NULL;
		u->node_leaving = e && e->node.leaving;
		if (e && e->node.zone && !(u->node_zone = strdup(e->node.zone)))
			goto fail;
		if (e && e->node.n) {
			u->node_addrs = malloc(e->node.n * sizeof(*u->node_addrs));
			if (!u->node_addrs)
				goto fail;
			memcpy(u->node_addrs, e->node.addrs, e->node.n * sizeof(*u->node_addrs));
			u->n_node_addrs = e->node.n;
		}
	}
	/* Sorted, so consumers and logs see a stable order whatever the hash. */
	if (u->n_changed)
		qsort(u->changed, u->n_changed, sizeof(char *), cmp_str);
	return u;
fail:
	sp_k8s_update_free(u);
	return NULL;
}

/*
 * When the next snapshot may go out: kube-proxy's model (its
 * BoundedFrequencyRunner behind --min-sync-period). A change after a quiet
 * period goes out at once; changes that follow within min_sync_ms of the
 * last snapshot wait for the interval's end and go out together, so a burst
 * costs at most one snapshot per interval whatever its size, and no change
 * waits longer than the interval (plus the time to build and apply).
 */
static uint64_t next_publish(const struct sp_k8s *k)
{
	return k->published ? k->last_publish + k->o.min_sync_ms : 0;
}

/* Publish a snapshot if something changed and the interval allows it. */
static void maybe_publish(struct sp_k8s *k, uint64_t now)
{
	struct sp_k8s_update *u;
	int i;

	if (!k->dirty)
		return;
	/* Never publish Services without their slices (or vice versa): that
	 * would reject traffic for Services whose endpoints are merely unlisted. */
	for (i = 0; i < k->n_watch; i++)
		if (!k->w[i].synced)
			return;
	if (now < next_publish(k))
		return;
	u = build_update(k);
	if (!u) {
		klog(SP_K8S_LOG_ERR, "out of memory building a snapshot; will retry");
		/* Not before a default interval from now, even with no minimum. */
		k->published = true;
		k->last_publish = now + SP_K8S_MIN_SYNC_MS_DEFAULT;
		return;
	}
	k->dirty = false;
	k->published = true;
	k->last_publish = now;
	store_clear(&k->changed);
	k->n_triggers = 0;
	STAT_INC(k, updates);
	sp_k8s_get_stats(k, &u->stats);
	klog(SP_K8S_LOG_DEBUG, "snapshot: %zu services, %zu slices, %zu changed",
	     u->model->n_services, u->model->n_slices, u->n_changed);
	k->cb(k->cb_arg, u);
}

/* How long the loop may sleep: until the next start or the end of the sync interval. */
static long poll_timeout(struct sp_k8s *k, uint64_t now)
{
	uint64_t t = now + 1000;
	int i;

	for (i = 0; i < k->n_watch; i++)
		if (!k->w[i].running && k->w[i].next_start < t)
			t = k->w[i].next_start;
	if (k->dirty && next_publish(k) < t)
		t = next_publish(k);
	return t <= now ? 0 : (long)(t - now);
}

static void *run(void *arg)
{
	struct sp_k8s *k = arg;
	sigset_t all;
	int i, running;

	/* Signals belong to the daemon's main thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);

	while (!__atomic_load_n(&k->stop, __ATOMIC_ACQUIRE)) {
		uint64_t now = now_ms();
		CURLMsg *m;
		int left;

		for (i = 0; i < k->n_watch; i++) {
			struct watch *w = &k->w[i];
			int ret;

			if (w->running || now < w->next_start)
				continue;
			ret = start_request(w);
			if (ret) {
				klog(SP_K8S_LOG_ERR, "%s: cannot start a request: %s", w->what,
				     strerror(-ret));
				schedule(w, true);
			}
		}
		curl_multi_perform(k->multi, &running);
		while ((m = curl_multi_info_read(k->multi, &left))) {
			struct watch *w = NULL;

			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&w);
			if (w)
				request_done(w, m->data.result);
		}
		now = now_ms();
		maybe_publish(k, now);
		curl_multi_poll(k->multi, NULL, 0, (int)poll_timeout(k, now), NULL);
	}
	return NULL;
}

static void watch_init(struct sp_k8s *k, enum res_kind kind, const char *what, const char *path)
{
	struct watch *w = &k->w[k->n_watch++];

	w->k = k;
	w->kind = kind;
	w->what = what;
	w->path = path;
	w->phase = PH_LIST;
	w->relist = true;
	store_init(&w->store, kind);
	store_init(&w->pending, kind);
}

static void watch_free(struct watch *w)
{
	end_request(w);
	store_clear(&w->store);
	store_clear(&w->pending);
	sp_k8s_stream_free(w->stream);
	free(w->selector);
	free(w->rv);
	free(w->cont);
}

static void k8s_free(struct sp_k8s *k)
{
	int i;

	for (i = 0; i < k->n_watch; i++)
		watch_free(&k->w[i]);
	if (k->multi)
		curl_multi_cleanup(k->multi);
	store_clear(&k->changed);
	free(k->triggers);
	/* The view's objects were the stores' (freed with them). */
	free(k->view.services);
	free(k->view.slices);
	pthread_mutex_destroy(&k->model_lock);
	sp_k8s_config_free(&k->cfg);
	free(k->token);
	free(k->node_name);
	free(k);
}

struct sp_k8s *sp_k8s_start(const struct sp_k8s_opts *o, sp_k8s_update_fn on_update, void *arg,
			    char *err, size_t errlen)
{
	struct sp_k8s *k;
	int i, ret;

	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
		snprintf(err, errlen, "cannot initialise libcurl");
		return NULL;
	}
	k = calloc(1, sizeof(*k));
	if (!k) {
		snprintf(err, errlen, "out of memory");
		goto err_global;
	}
	k->o = *o;
	k->o.min_sync_ms = o->min_sync_ms < 0 ? SP_K8S_MIN_SYNC_MS_DEFAULT : o->min_sync_ms;
	k->o.page_limit = o->page_limit ?: 500;
	k->o.idle_timeout_s = o->idle_timeout_s ?: 120;
	k->o.backoff_min_ms = o->backoff_min_ms ?: 250;
	k->o.backoff_max_ms = o->backoff_max_ms ?: 30000;
	if (k->o.backoff_max_ms < k->o.backoff_min_ms)
		k->o.backoff_max_ms = k->o.backoff_min_ms;
	k->o.kubeconfig = k->o.sa_dir = k->o.node_name = NULL; /* not kept */
	if (o->log_level)
		sp_k8s_set_log_level(o->log_level);
	k->cb = on_update;
	k->cb_arg = arg;
	k->start_ns = real_ns();
	store_init(&k->changed, RES_SET);
	pthread_mutex_init(&k->model_lock, NULL);
	k->view.sorted = true;

	if (o->kubeconfig)
		ret = sp_k8s_config_kubeconfig(&k->cfg, o->kubeconfig, err, errlen);
	else
		ret = sp_k8s_config_incluster_server(&k->cfg, o->sa_dir, o->api_server, err,
						     errlen);
	if (!ret && o->kubeconfig && o->api_server) {
		free(k->cfg.server);
		k->cfg.server = strdup(o->api_server);
		ret = k->cfg.server ? 0 : -ENOMEM;
	}
	if (ret)
		goto err_free;
	if (k->cfg.tls_server_name)
		klog(SP_K8S_LOG_WARN, "tls-server-name \"%s\" is not supported and is ignored",
		     k->cfg.tls_server_name);

	watch_init(k, RES_SVC, "services", "/api/v1/services");
	watch_init(k, RES_SLICE, "endpointslices", "/apis/discovery.k8s.io/v1/endpointslices");
	if (o->node_name && *o->node_name) {
		k->node_name = strdup(o->node_name);
		watch_init(k, RES_NODE, "node", "/api/v1/nodes");
		/* A list+watch narrowed to one object by a field selector: the
		 * standard way to watch a single Node. */
		if (!k->node_name || asprintf(&k->w[RES_NODE].selector, "metadata.name=%s",
					      o->node_name) < 0) {
			k->w[RES_NODE].selector = NULL;
			snprintf(err, errlen, "out of memory");
			goto err_free;
		}
	}
	for (i = 0; i < k->n_watch; i++) {
		k->w[i].stream = sp_k8s_stream_new(on_value, &k->w[i]);
		if (!k->w[i].stream) {
			snprintf(err, errlen, "out of memory");
			goto err_free;
		}
		if (o->max_value)
			sp_k8s_stream_set_max(k->w[i].stream, o->max_value);
	}
	k->multi = curl_multi_init();
	if (!k->multi) {
		snprintf(err, errlen, "cannot create a libcurl multi handle");
		goto err_free;
	}
	ret = pthread_create(&k->thread, NULL, run, k);
	if (ret) {
		snprintf(err, errlen, "cannot start the Kubernetes watcher thread: %s",
			 strerror(ret));
		goto err_free;
	}
	klog(SP_K8S_LOG_INFO, "watching %s%s%s", k->cfg.server, k->node_name ? " for node " : "",
	     k->node_name ? k->node_name : "");
	return k;

err_free:
	k8s_free(k);
err_global:
	curl_global_cleanup();
	return NULL;
}

void sp_k8s_stop(struct sp_k8s *k)
{
	if (!k)
		return;
	__atomic_store_n(&k->stop, true, __ATOMIC_RELEASE);
	curl_multi_wakeup(k->multi);
	pthread_join(k->thread, NULL);
	k8s_free(k);
	curl_global_cleanup();
}
