/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kube-proxy's health servers (pkg/proxy/healthcheck):
 *
 * - the proxy health server (--healthz-addr, :10256): /healthz and /livez
 *   say whether the maps follow the source. A change that stays unapplied
 *   longer than --healthz-max-staleness makes both 503; /healthz is also
 *   503 while this node's Node object is being deleted or is tainted
 *   ToBeDeletedByClusterAutoscaler (the node is not eligible).
 * - one server per Service health-check node port (LoadBalancer Services
 *   with externalTrafficPolicy Local): 200 when this node has a ready local
 *   endpoint for the Service and the proxy is healthy, else 503, so a load
 *   balancer sends the Service's traffic only to nodes that serve it locally.
 *
 * The state is written by the daemon's loop and read by the servers'
 * threads, under each object's lock. The reply builders take the clock as
 * arguments so tests check bodies, headers and status codes without sockets.
 */
#ifndef SP_HEALTH_H
#define SP_HEALTH_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "http.h"
#include "model.h"

/* kube-proxy's name for the Cluster Autoscaler's taint. */
#define SP_TAINT_TO_BE_DELETED "ToBeDeletedByClusterAutoscaler"
#define SP_HEALTHZ_ADDR_DEFAULT "0.0.0.0:10256"
#define SP_HEALTHZ_MAX_STALENESS_DEFAULT 60 /* seconds */

struct sp_proxy_health {
	pthread_mutex_t lock;
	uint64_t max_stale_ns;
	bool pending; /* a change of the source waits to be applied... */
	uint64_t pending_since; /* ...since then (CLOCK_MONOTONIC ns) */
	int64_t last_updated; /* CLOCK_REALTIME ns of the last applied state; 0: none */
	bool node_eligible; /* true until the Node object says otherwise */
};

void sp_proxy_health_init(struct sp_proxy_health *h, unsigned int max_stale_s);
void sp_proxy_health_destroy(struct sp_proxy_health *h);
/* A change arrived (config file, SIGHUP, API snapshot). The oldest
 * unapplied change is what ages. */
void sp_proxy_health_queued(struct sp_proxy_health *h, uint64_t mono_now);
/* The source's state is in the maps. */
void sp_proxy_health_updated(struct sp_proxy_health *h, int64_t real_now);
/* From the Node object: not being deleted, not tainted ToBeDeleted... */
void sp_proxy_health_node(struct sp_proxy_health *h, bool eligible);
/* Healthy (no change older than the limit waits)? Ignores the node. */
bool sp_proxy_health_healthy(struct sp_proxy_health *h, uint64_t mono_now);

/*
 * The proxy health server's answer for path at the given clocks: /healthz
 * and /livez as kube-proxy, JSON, 200 or 503; another path 404. Returns 0
 * or -ENOMEM.
 */
int sp_proxy_health_reply(struct sp_proxy_health *h, const char *path, uint64_t mono_now,
			  int64_t real_now, struct sp_http_reply *r);
/* Go's time.Time.String() of a UTC time ("2024-05-01 10:00:00.5 +0000 UTC"),
 * as kube-proxy prints lastUpdated and currentTime. */
void sp_health_time_str(int64_t real_ns, char *buf, size_t len);

/* A Service health check's answer (any path), as kube-proxy's. */
int sp_svc_health_reply(const char *ns, const char *name, size_t local_endpoints,
			bool proxy_healthy, struct sp_http_reply *r);

/*
 * Local endpoints of s, counted as kube-proxy does: distinct address:port
 * pairs of its EndpointSlices whose endpoint is ready and on node_name
 * (terminating endpoints are not ready, so they do not count), per IP
 * family; the larger family's count (kube-proxy's per-family proxiers each
 * report their own, so a dual-stack pod counts once).
 */
size_t sp_health_local_endpoints(const struct sp_model *m, const struct sp_service *s,
				 const char *node_name);
/* Does kube-proxy serve a health check for s (LoadBalancer, Local, a port)? */
bool sp_health_needs_check(const struct sp_service *s);

struct sp_svc_health;

struct sp_svc_health *sp_svc_health_new(struct sp_proxy_health *ph);
/*
 * After each applied state: open a server for every Service of m that needs
 * one (and that proxy_name selects, as resolve.c), close the ones no longer
 * wanted or moved to another port, and set every count. A port that cannot
 * be bound is logged and tried again by sp_svc_health_retry.
 */
void sp_svc_health_sync(struct sp_svc_health *sh, const struct sp_model *m, const char *node_name,
			const char *proxy_name);
/* Try again the ports that could not be bound. */
void sp_svc_health_retry(struct sp_svc_health *sh);
/* Servers open, and waiting for their port. */
void sp_svc_health_counts(struct sp_svc_health *sh, size_t *open, size_t *waiting);
void sp_svc_health_free(struct sp_svc_health *sh);

#endif /* SP_HEALTH_H */
