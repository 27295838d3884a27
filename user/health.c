// SPDX-License-Identifier: Apache-2.0
/*
 * kube-proxy's proxy health server and Service health checks (health.h),
 * on the HTTP servers of http.c.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ct_gc.h"
#include "health.h"
#include "log.h"

/* ---- proxy health ---------------------------------------------------------------- */

void sp_proxy_health_init(struct sp_proxy_health *h, unsigned int max_stale_s)
{
	memset(h, 0, sizeof(*h));
	pthread_mutex_init(&h->lock, NULL);
	h->max_stale_ns = (uint64_t)max_stale_s * 1000000000ULL;
	/* As kube-proxy: eligible while starting, until the Node says otherwise. */
	h->node_eligible = true;
}

void sp_proxy_health_destroy(struct sp_proxy_health *h)
{
	pthread_mutex_destroy(&h->lock);
}

void sp_proxy_health_queued(struct sp_proxy_health *h, uint64_t mono_now)
{
	pthread_mutex_lock(&h->lock);
	if (!h->pending) {
		h->pending = true;
		h->pending_since = mono_now;
	}
	pthread_mutex_unlock(&h->lock);
}

void sp_proxy_health_updated(struct sp_proxy_health *h, int64_t real_now)
{
	pthread_mutex_lock(&h->lock);
	h->pending = false;
	h->last_updated = real_now;
	pthread_mutex_unlock(&h->lock);
}

void sp_proxy_health_node(struct sp_proxy_health *h, bool eligible)
{
	pthread_mutex_lock(&h->lock);
	h->node_eligible = eligible;
	pthread_mutex_unlock(&h->lock);
}

static bool healthy_locked(const struct sp_proxy_health *h, uint64_t mono_now)
{
	return !h->pending || mono_now - h->pending_since < h->max_stale_ns;
}

bool sp_proxy_health_healthy(struct sp_proxy_health *h, uint64_t mono_now)
{
	bool ok;

	pthread_mutex_lock(&h->lock);
	ok = healthy_locked(h, mono_now);
	pthread_mutex_unlock(&h->lock);
	return ok;
}

void sp_health_time_str(int64_t real_ns, char *buf, size_t len)
{
	time_t sec = real_ns / 1000000000LL;
	long frac = real_ns % 1000000000LL;
	char date[32], fs[16] = "";
	struct tm tm;
	int i;

	if (real_ns <= 0) {
		/* Go's zero time: no state was ever applied. */
		snprintf(buf, len, "0001-01-01 00:00:00 +0000 UTC");
		return;
	}
	gmtime_r(&sec, &tm);
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
	if (frac) {
		/* ".999999999": trailing zeros dropped, as Go prints it */
		snprintf(fs, sizeof(fs), ".%09ld", frac);
		for (i = strlen(fs) - 1; i > 0 && fs[i] == '0'; i--)
			fs[i] = '\0';
	}
	snprintf(buf, len, "%s%s +0000 UTC", date, fs);
}

/* Content-Type and nosniff, as every kube-proxy health answer has. */
static void json_headers(struct sp_http_reply *r)
{
	r->content_type = "application/json";
	sp_http_add_header(r, "X-Content-Type-Options", "nosniff");
}

int sp_proxy_health_reply(struct sp_proxy_health *h, const char *path, uint64_t mono_now,
			  int64_t real_now, struct sp_http_reply *r)
{
	char last[48], now[48];
	bool healthy, eligible, livez = !strcmp(path, "/livez");
	int64_t last_updated;

	if (!livez && strcmp(path, "/healthz")) {
		r->status = 404;
		r->content_type = "text/plain";
		return sp_http_printf(r, "404 page not found: /healthz or /livez\n");
	}
	pthread_mutex_lock(&h->lock);
	healthy = healthy_locked(h, mono_now);
	eligible = h->node_eligible;
	last_updated = h->last_updated;
	pthread_mutex_unlock(&h->lock);
	if (!livez)
		healthy = healthy && eligible;
	/* As kube-proxy (for compatibility with its older releases):
	 * lastUpdated is the current time while healthy. */
	if (healthy)
		last_updated = real_now;
	sp_health_time_str(last_updated, last, sizeof(last));
	sp_health_time_str(real_now, now, sizeof(now));
	json_headers(r);
	r->status = healthy ? 200 : 503;
	if (livez)
		return sp_http_printf(r, "{\"lastUpdated\": \"%s\",\"currentTime\": \"%s\"}", last,
				      now);
	return sp_http_printf(r, "{\"lastUpdated\": \"%s\",\"currentTime\": \"%s\", "
				 "\"nodeEligible\": %s}",
			      last, now, eligible ? "true" : "false");
}

/* ---- Service health checks --------------------------------------------------------- */

/* JSON string content: namespaces and names are DNS labels, so nothing to
 * escape in practice; anything outside [a-z0-9.-] is dropped to be safe. */
static void json_name(const char *in, char *out, size_t len)
{
	size_t o = 0;

	for (; *in && o + 1 < len; in++)
		if ((*in >= 'a' && *in <= 'z') || (*in >= '0' && *in <= '9') || *in == '-' ||
		    *in == '.' || (*in >= 'A' && *in <= 'Z'))
			out[o++] = *in;
	out[o] = '\0';
}

int sp_svc_health_reply(const char *ns, const char *name, size_t local_endpoints,
			bool proxy_healthy, struct sp_http_reply *r)
{
	char n1[256], n2[256];

	json_name(ns, n1, sizeof(n1));
	json_name(name, n2, sizeof(n2));
	json_headers(r);
	sp_http_add_header(r, "X-Load-Balancing-Endpoint-Weight", "%zu", local_endpoints);
	r->status = local_endpoints && proxy_healthy ? 200 : 503;
	return sp_http_printf(r,
			      "{\n\t\"service\": {\n\t\t\"namespace\": \"%s\",\n\t\t\"name\": \"%s\"\n"
			      "\t},\n\t\"localEndpoints\": %zu,\n\t\"serviceProxyHealthy\": %s\n}",
			      n1, n2, local_endpoints, proxy_healthy ? "true" : "false");
}

bool sp_health_needs_check(const struct sp_service *s)
{
	return s->type == SP_SVC_LOAD_BALANCER && s->etp_local && s->health_check_node_port &&
	       !s->headless;
}

struct ep_key {
	struct sp_ip ip;
	uint16_t port;
	uint8_t proto;
};

size_t sp_health_local_endpoints(const struct sp_model *m, const struct sp_service *s,
				 const char *node_name)
{
	struct ep_key *seen = NULL, k;
	size_t n = 0, cap = 0, i, e, p, j, n4 = 0, n6 = 0;

	if (!node_name || !*node_name)
		return 0;
	for (i = 0; i < m->n_slices; i++) {
		const struct sp_slice *sl = &m->slices[i];

		if (!sl->service_name || strcmp(sl->service_name, s->name) || strcmp(sl->ns, s->ns))
			continue;
		for (e = 0; e < sl->n_endpoints; e++) {
			const struct sp_endpoint *ep = &sl->endpoints[e];

			if (!ep->ready || !sp_ep_node(ep) || strcmp(sp_ep_node(ep), node_name))
				continue;
			for (p = 0; p < sl->n_ports; p++) {
				memset(&k, 0, sizeof(k));
				k.ip = ep->addr;
				k.port = sl->ports[p].port;
				k.proto = sl->ports[p].proto;
				for (j = 0; j < n && memcmp(&seen[j], &k, sizeof(k)); j++)
					;
				if (j < n)
					continue;
				if (n == cap) {
					struct ep_key *nv;

					cap = cap ? cap * 2 : 16;
					nv = realloc(seen, cap * sizeof(*seen));
					if (!nv) {
						/* Counting is best effort under no memory:
						 * what was counted is a lower bound. */
						free(seen);
						return n4 > n6 ? n4 : n6;
					}
					seen = nv;
				}
				seen[n++] = k;
				if (k.ip.family == 4)
					n4++;
				else
					n6++;
			}
		}
	}
	free(seen);
	/* kube-proxy runs one proxier per family, each reporting its own
	 * family's count to the shared server: a dual-stack pod counts once. */
	return n4 > n6 ? n4 : n6;
}

struct hc_server {
	struct sp_svc_health *owner;
	char *ns, *name; /* immutable while it lives */
	uint16_t port;
	size_t local; /* owner->lock */
	struct sp_http *http; /* NULL: the port could not be bound yet */
	unsigned int failures;
};

struct sp_svc_health {
	pthread_mutex_t lock;
	struct sp_proxy_health *ph;
	struct hc_server **v;
	size_t n, cap;
};

struct sp_svc_health *sp_svc_health_new(struct sp_proxy_health *ph)
{
	struct sp_svc_health *sh = calloc(1, sizeof(*sh));

	if (!sh)
		return NULL;
	pthread_mutex_init(&sh->lock, NULL);
	sh->ph = ph;
	return sh;
}

/* The server's handler, on its own thread. */
static int hc_handle(void *arg, const char *path, struct sp_http_reply *r)
{
	struct hc_server *hc = arg;
	size_t local;

	(void)path; /* kube-proxy answers on every path */
	pthread_mutex_lock(&hc->owner->lock);
	local = hc->local;
	pthread_mutex_unlock(&hc->owner->lock);
	return sp_svc_health_reply(hc->ns, hc->name, local,
				   sp_proxy_health_healthy(hc->owner->ph, sp_mono_ns()), r);
}

/* Bind hc's port (the wildcard: both families, every node address). */
static void hc_open(struct hc_server *hc)
{
	struct sp_http_limits lim = SP_HTTP_LIMITS_DEFAULT;
	struct sockaddr_storage sa = { 0 };
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&sa;
	char what[320];
	int err;

	s6->sin6_family = AF_INET6;
	s6->sin6_addr = in6addr_any;
	s6->sin6_port = htons(hc->port);
	snprintf(what, sizeof(what), "health check of Service %s/%s", hc->ns, hc->name);
	/* The first failure is a warning, repeats are debug: retried each second. */
	hc->http = sp_http_start(what, &sa, sizeof(*s6), &lim, hc_handle, hc,
				 hc->failures ? SP_LOG_DEBUG : SP_LOG_WARN, &err);
	if (hc->http) {
		if (hc->failures)
			pr_info("%s: serving on port %u now", what, hc->port);
		else
			pr_debug("%s: serving on port %u", what, hc->port);
		hc->failures = 0;
	} else if (!hc->failures++) {
		pr_warn("%s: port %u not served for now; trying again every second", what,
			hc->port);
	}
}

static void hc_free(struct hc_server *hc)
{
	if (!hc)
		return;
	sp_http_stop(hc->http);
	free(hc->ns);
	free(hc->name);
	free(hc);
}

static bool proxy_wanted(const struct sp_service *s, const char *proxy_name)
{
	if (proxy_name)
		return s->proxy_name && !strcmp(s->proxy_name, proxy_name);
	return !s->proxy_name;
}

static const struct sp_service *find_wanted(const struct sp_model *m, const struct hc_server *hc,
					    const char *proxy_name)
{
	size_t i;

	for (i = 0; i < m->n_services; i++) {
		const struct sp_service *s = &m->services[i];

		if (!strcmp(s->ns, hc->ns) && !strcmp(s->name, hc->name) &&
		    sp_health_needs_check(s) && proxy_wanted(s, proxy_name))
			return s;
	}
	return NULL;
}

void sp_svc_health_sync(struct sp_svc_health *sh, const struct sp_model *m, const char *node_name,
			const char *proxy_name)
{
	struct hc_server **gone = NULL;
	size_t i, j, n_gone = 0, kept = 0;

	if (!sh)
		return;
	/* 1. Counts for the servers that stay; the others leave the list. */
	gone = calloc(sh->n ? sh->n : 1, sizeof(*gone));
	pthread_mutex_lock(&sh->lock);
	for (i = 0; i < sh->n; i++) {
		struct hc_server *hc = sh->v[i];
		const struct sp_service *s = find_wanted(m, hc, proxy_name);

		if (s && s->health_check_node_port == hc->port) {
			hc->local = sp_health_local_endpoints(m, s, node_name);
			sh->v[kept++] = hc;
		} else if (gone) {
			gone[n_gone++] = hc;
		} else {
			sh->v[kept++] = hc; /* no memory: close it next time */
		}
	}
	sh->n = kept;
	pthread_mutex_unlock(&sh->lock);
	/* 2. Close those (outside the lock: stopping waits for a handler that
	 * may be taking it), so a port moving to another Service is free. */
	for (i = 0; i < n_gone; i++) {
		pr_info("health check of Service %s/%s: closing port %u", gone[i]->ns,
			gone[i]->name, gone[i]->port);
		hc_free(gone[i]);
	}
	free(gone);
	/* 3. Open the new ones. */
	for (i = 0; i < m->n_services; i++) {
		const struct sp_service *s = &m->services[i];
		struct hc_server *hc;

		if (!sp_health_needs_check(s) || !proxy_wanted(s, proxy_name))
			continue;
		for (j = 0; j < sh->n; j++)
			if (!strcmp(sh->v[j]->ns, s->ns) && !strcmp(sh->v[j]->name, s->name))
				break;
		if (j < sh->n)
			continue;
		if (sh->n == sh->cap) {
			size_t cap = sh->cap ? sh->cap * 2 : 8;
			struct hc_server **nv = realloc(sh->v, cap * sizeof(*nv));

			if (!nv)
				break;
			pthread_mutex_lock(&sh->lock);
			sh->v = nv;
			sh->cap = cap;
			pthread_mutex_unlock(&sh->lock);
		}
		hc = calloc(1, sizeof(*hc));
		if (!hc || !(hc->ns = strdup(s->ns)) || !(hc->name = strdup(s->name))) {
			hc_free(hc);
			break;
		}
		hc->owner = sh;
		hc->port = s->health_check_node_port;
		hc->local = sp_health_local_endpoints(m, s, node_name);
		hc_open(hc);
		pthread_mutex_lock(&sh->lock);
		sh->v[sh->n++] = hc;
		pthread_mutex_unlock(&sh->lock);
	}
}

void sp_svc_health_retry(struct sp_svc_health *sh)
{
	size_t i;

	if (!sh)
		return;
	/* Only the loop changes the list and the http pointers: no lock. */
	for (i = 0; i < sh->n; i++)
		if (!sh->v[i]->http)
			hc_open(sh->v[i]);
}

void sp_svc_health_counts(struct sp_svc_health *sh, size_t *open, size_t *waiting)
{
	size_t i;

	*open = *waiting = 0;
	for (i = 0; sh && i < sh->n; i++)
		(*(sh->v[i]->http ? open : waiting))++;
}

void sp_svc_health_free(struct sp_svc_health *sh)
{
	size_t i;

	if (!sh)
		return;
	for (i = 0; i < sh->n; i++)
		hc_free(sh->v[i]);
	free(sh->v);
	pthread_mutex_destroy(&sh->lock);
	free(sh);
}
