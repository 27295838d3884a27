// SPDX-License-Identifier: Apache-2.0
/*
 * From the source model to the desired datapath state, with kube-proxy's
 * rules (https://kubernetes.io/docs/reference/networking/virtual-ips/):
 *
 *  - Headless Services are ignored (ExternalName never reaches the model).
 *  - Services carrying the label service.kubernetes.io/service-proxy-name
 *    belong to another proxy and are skipped; with --proxy-name NAME, only
 *    the Services whose label value is NAME are handled.
 *  - One sp_want_svc per (Service, port, IP family), for each family the
 *    Service has a clusterIP of. Frontends: the clusterIP (flags 0), the
 *    externalIPs and, for type LoadBalancer, the status ingress IPs
 *    (SP_SVC_F_EXTERNAL) of that family, and for NodePort/LoadBalancer
 *    with a nodePort a wildcard with the all-zero address
 *    (SP_SVC_F_NODEPORT). Addresses of a family without a clusterIP are
 *    ignored with a warning, as kube-proxy does.
 *  - Backends: the endpoints of every EndpointSlice of the Service (same
 *    namespace and serviceName) with the same address family, whose slice
 *    port has the Service port's name and protocol; the slice's port
 *    number is the backend port (targetPort is resolved through the
 *    slice). Merged across slices and de-duplicated by address:port.
 *  - Readiness (KEP-1669): ready endpoints get weight 1. If none is ready,
 *    serving+terminating ones get weight 1 instead. Otherwise
 *    serving+terminating endpoints stay in the set with weight 0: no new
 *    flow goes to them, but established flows (whose conntrack entry
 *    names the backend id) keep working until the endpoint is gone.
 *    Anything else (not ready and not serving) is left out.
 *  - Traffic policies, per kind of frontend (kube-proxy's topology.go):
 *    internal frontends (clusterIPs) follow internalTrafficPolicy,
 *    external ones (externalIPs, LoadBalancer IPs, NodePorts)
 *    externalTrafficPolicy. Local keeps the endpoints whose nodeName is
 *    this node's (--node-name; without one, Local cannot be told from
 *    Cluster and acts as Cluster), and the readiness rules apply to that
 *    set on its own (its terminating fallback is separate). When the two
 *    policies give the same set (both Cluster, both Local, or no external
 *    frontend) one want_svc holds every frontend under the port's id;
 *    otherwise the internal frontends keep the id and the external ones
 *    get a want_svc of their own, "<id>/ext", with its own table.
 *  - A Local set that is empty while the Service has endpoints elsewhere
 *    is SP_SVC_F_DROP_EMPTY: the datapath drops (kube-proxy's "has no
 *    local endpoints"), where a Service without any endpoint is rejected.
 *  - externalTrafficPolicy: Local marks the external frontends
 *    SP_SVC_F_LOCAL_ONLY, and "<id>/all" holds the same frontends again in
 *    the cluster view (SP_SVC_F_CLUSTER_VIEW, SP_FAMILY_VIEW keys) with
 *    every endpoint: inside clients (pods, the host, --cluster-cidr) use
 *    it, as kube-proxy short-circuits them to the cluster-wide chain.
 *  - Topology (kube-proxy's topology.go, KEP-2433/KEP-4444/KEP-3015): in
 *    the sets that are not Local, when every ready endpoint has node hints
 *    (hints.forNodes) and one is for this node, new flows go only to the
 *    endpoints hinted for this node; else the same with zone hints and the
 *    node's zone (its topology.kubernetes.io/zone label); else to every
 *    ready endpoint. The EndpointSlice controller writes the hints for
 *    trafficDistribution (PreferSameZone/PreferClose, PreferSameNode) and
 *    the topology-mode annotation. Endpoints left out keep weight 0.
 *  - An endpoint with a nodeName other than this node's is remote
 *    (SP_BE_F_REMOTE): external traffic to it is SNATed (lib/snat.h).
 *  - sessionAffinity: ClientIP sets SP_SVC_F_AFFINITY and the timeout.
 *  - loadBalancerSourceRanges: as kube-proxy, per family: the ranges of the
 *    want_svc's family go with it and its LoadBalancer ingress frontends
 *    get SP_SVC_F_SRC_RANGES; a family with no range is open (kube-proxy
 *    builds no firewall for it). clusterIPs, externalIPs and NodePorts are
 *    never filtered. An address that is both an externalIP and an LB
 *    ingress IP keeps the filter (the LB frontend is added first, so it
 *    wins the duplicate), as kube-proxy's nftables mode filters it.
 *  - Two want_svcs claiming the same frontend: the first by id keeps it,
 *    the other loses that frontend (and is dropped if none is left).
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svcplane.h"
#include "maglev.h"
#include "model.h"
#include "resolve.h"

/* sp_svc.n is 16 bits and Maglev entries index the backend list. */
#define MAX_BACKENDS 65535

enum rank {
	RANK_OTHER = 0,	      /* neither ready nor serving: left out */
	RANK_TERMINATING = 1, /* serving and terminating */
	RANK_READY = 2,
};

/* Topology hints of a candidate, as seen from this node (struct cand.topo). */
enum {
	TOPO_ZONE_HINTS = 1, /* it has zone hints */
	TOPO_ZONE_MATCH = 2, /* one of them is this node's zone */
	TOPO_NODE_HINTS = 4,
	TOPO_NODE_MATCH = 8, /* hinted for this node */
};

struct cand {
	struct sp_ip ip;
	uint16_t port;
	uint8_t rank;
	uint8_t topo; /* TOPO_* */
	bool remote; /* nodeName known and not this node's */
};

struct rctx {
	const struct sp_model *m;
	const struct sp_resolve_opts *o;
	sp_warn_fn warn;
	void *warn_arg;
	const struct sp_slice **slices; /* sorted by namespace, serviceName */
	size_t n_slices;
	struct cand *cand;
	size_t n_cand, cap_cand;
	struct sp_desired d;
	size_t cap_svc;
};

static void __attribute__((format(printf, 2, 3))) rwarn(struct rctx *r, const char *fmt, ...)
{
	char msg[320];
	va_list ap;

	if (!r->warn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	r->warn(r->warn_arg, msg);
}

static const char *proto_str(uint8_t proto)
{
	return proto == IPPROTO_UDP ? "udp" : "tcp";
}

static int slice_key_cmp(const char *ns, const char *name, const struct sp_slice *s)
{
	int c = strcmp(ns, s->ns ? s->ns : "");

	return c ? c : strcmp(name, s->service_name ? s->service_name : "");
}

static int slice_sort_cmp(const void *pa, const void *pb)
{
	const struct sp_slice *a = *(const struct sp_slice *const *)pa;

	return slice_key_cmp(a->ns ? a->ns : "", a->service_name ? a->service_name : "",
			     *(const struct sp_slice *const *)pb);
}

/* First slice of Service ns/name in r->slices (binary search), or the end. */
static size_t slices_lower(const struct rctx *r, const char *ns, const char *name)
{
	size_t lo = 0, hi = r->n_slices, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (slice_key_cmp(ns, name, r->slices[mid]) > 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int cand_push(struct rctx *r, const struct sp_ip *ip, uint16_t port, uint8_t rank,
		     uint8_t topo, bool remote)
{
	struct cand *v;

	if (r->n_cand == r->cap_cand) {
		size_t cap = r->cap_cand ? r->cap_cand * 2 : 64;

		v = reallocarray(r->cand, cap, sizeof(*v));
		if (!v)
			return -ENOMEM;
		r->cand = v;
		r->cap_cand = cap;
	}
	r->cand[r->n_cand++] =
		(struct cand){ .ip = *ip, .port = port, .rank = rank, .topo = topo, .remote = remote };
	return 0;
}

static int cand_cmp(const void *pa, const void *pb)
{
	const struct cand *a = pa, *b = pb;
	int c = sp_ip_cmp(&a->ip, &b->ip);

	if (c)
		return c;
	return a->port < b->port ? -1 : a->port > b->port;
}

static uint8_t ep_rank(const struct sp_endpoint *ep)
{
	/* Kubernetes never reports ready && terminating; if it did, ready wins. */
	if (ep->ready)
		return RANK_READY;
	if (ep->serving && ep->terminating)
		return RANK_TERMINATING;
	return RANK_OTHER;
}

/* Is name one of the comma-separated list's names? */
static bool in_list(const char *list, const char *name)
{
	size_t n = name ? strlen(name) : 0;
	const char *p = list;

	if (!list || !n)
		return false;
	while (*p) {
		const char *end = strchrnul(p, ',');

		if ((size_t)(end - p) == n && !memcmp(p, name, n))
			return true;
		p = *end ? end + 1 : end;
	}
	return false;
}

static uint8_t ep_topo(const struct rctx *r, const struct sp_endpoint *ep)
{
	const struct sp_ep_topo *h = ep->topo;
	uint8_t t = 0;

	if (h && h->zone_hints)
		t |= TOPO_ZONE_HINTS |
		     (in_list(h->zone_hints, r->o ? r->o->zone : NULL) ? TOPO_ZONE_MATCH : 0);
	if (h && h->node_hints)
		t |= TOPO_NODE_HINTS |
		     (in_list(h->node_hints, r->o ? r->o->node_name : NULL) ? TOPO_NODE_MATCH : 0);
	return t;
}

/*
 * Which hints this node follows for a set (kube-proxy's topology.go): the
 * node hints when every ready endpoint has some and one is for this node,
 * else the zone hints under the same rule, else none. Returns the TOPO_*
 * bit an endpoint needs to take new flows, 0 for "every ready endpoint".
 * Only the ready ones count: when none is ready there is no topology and
 * the serving-terminating fallback uses them all.
 */
static uint8_t topology_mode(const struct cand *c, size_t n)
{
	bool ready = false, all_node = true, node_match = false;
	bool all_zone = true, zone_match = false;
	size_t i;

	for (i = 0; i < n; i++) {
		if (c[i].rank != RANK_READY)
			continue;
		ready = true;
		all_node &= !!(c[i].topo & TOPO_NODE_HINTS);
		node_match |= !!(c[i].topo & TOPO_NODE_MATCH);
		all_zone &= !!(c[i].topo & TOPO_ZONE_HINTS);
		zone_match |= !!(c[i].topo & TOPO_ZONE_MATCH);
	}
	if (!ready)
		return 0;
	if (all_node && node_match)
		return TOPO_NODE_MATCH;
	if (all_zone && zone_match)
		return TOPO_ZONE_MATCH;
	return 0;
}

/*
 * Gather the candidate endpoints of Service port p in family fam into
 * r->cand. only_local keeps the endpoints on opts->node_name.
 */
static int gather(struct rctx *r, const struct sp_service *s, const struct sp_svc_port *p,
		  uint8_t fam, bool only_local)
{
	const struct sp_slice *sl;
	const struct sp_endpoint *ep;
	size_t i, j, k, with_family = 0, matched = 0;
	bool remote;
	int rc;

	r->n_cand = 0;
	for (i = slices_lower(r, s->ns, s->name); i < r->n_slices; i++) {
		sl = r->slices[i];
		if (slice_key_cmp(s->ns, s->name, sl))
			break;
		if (sl->family != fam)
			continue;
		/* A slice without endpoints (the controller's placeholder for a
		 * Service without pods, or default/kubernetes emptied by an API
		 * server shutting down) has no ports either: empty, not a
		 * port mismatch worth a warning. */
		if (!sl->n_endpoints)
			continue;
		with_family++;
		for (j = 0; j < sl->n_ports; j++)
			if (sl->ports[j].proto == p->proto && sl->ports[j].port &&
			    !strcmp(sl->ports[j].name ? sl->ports[j].name : "",
				    p->name ? p->name : ""))
				break;
		if (j == sl->n_ports)
			continue;
		matched++;
		for (k = 0; k < sl->n_endpoints; k++) {
			ep = &sl->endpoints[k];
			if (ep->addr.family != fam) {
				rwarn(r,
				      "EndpointSlice %s/%s: endpoint address of the wrong family "
				      "for addressType IPv%u: skipped",
				      sl->ns, sl->name, fam);
				continue;
			}
			remote = r->o && r->o->node_name && sp_ep_node(ep) &&
				 strcmp(sp_ep_node(ep), r->o->node_name);
			if (only_local && (!sp_ep_node(ep) || remote))
				continue;
			rc = cand_push(r, &ep->addr, sl->ports[j].port, ep_rank(ep),
				       only_local ? 0 : ep_topo(r, ep), remote);
			if (rc)
				return rc;
		}
	}
	if (with_family && !matched)
		rwarn(r,
		      "Service %s/%s port \"%s\" (%s, IPv%u): no EndpointSlice has a port of "
		      "that name and protocol, so it has no endpoints",
		      s->ns, s->name, p->name ? p->name : "", proto_str(p->proto), fam);
	return 0;
}

/*
 * Turn r->cand into the backend list of w: de-duplicate by address:port
 * keeping the best condition, apply the readiness rules, canonical order.
 */
static int backends(struct rctx *r, const struct sp_service *s, struct sp_want_svc *w)
{
	size_t i, n = 0;
	bool any_ready = false;
	uint8_t mode;
	uint16_t wt;

	if (!r->n_cand)
		return 0;
	qsort(r->cand, r->n_cand, sizeof(*r->cand), cand_cmp);
	for (i = 0; i < r->n_cand; i++) {
		if (n && !cand_cmp(&r->cand[n - 1], &r->cand[i])) {
			if (r->cand[i].rank > r->cand[n - 1].rank)
				r->cand[n - 1].rank = r->cand[i].rank;
			r->cand[n - 1].remote &= r->cand[i].remote;
			/* Hinted if both copies are; matching if either does. */
			r->cand[n - 1].topo =
				(r->cand[n - 1].topo & r->cand[i].topo &
				 (TOPO_ZONE_HINTS | TOPO_NODE_HINTS)) |
				((r->cand[n - 1].topo | r->cand[i].topo) &
				 (TOPO_ZONE_MATCH | TOPO_NODE_MATCH));
			continue;
		}
		r->cand[n++] = r->cand[i];
	}
	r->n_cand = n;
	for (i = 0; i < n; i++)
		any_ready |= r->cand[i].rank == RANK_READY;
	mode = topology_mode(r->cand, n);
	w->be = calloc(n, sizeof(*w->be));
	if (!w->be)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		if (r->cand[i].rank == RANK_OTHER)
			continue;
		/* Ready endpoints the topology gives to other nodes or zones
		 * stay with weight 0, as terminating ones do: their
		 * established flows keep going, new ones go by the hints. */
		if (any_ready)
			wt = r->cand[i].rank == RANK_READY &&
					     (!mode || (r->cand[i].topo & mode)) ?
				     1 :
				     0;
		else
			wt = 1;
		if (w->n_be == MAX_BACKENDS) {
			rwarn(r, "Service %s/%s: more than %u endpoints; the rest are left out",
			      s->ns, s->name, MAX_BACKENDS);
			break;
		}
		/* Field by field into calloc'ed memory: padding stays zero for memcmp users. */
		w->be[w->n_be].ip = r->cand[i].ip;
		w->be[w->n_be].flags = r->cand[i].remote ? SP_BE_F_REMOTE : 0;
		w->be[w->n_be].port = r->cand[i].port;
		w->be[w->n_be].weight = wt;
		w->n_be++;
	}
	sp_maglev_canonical(w->be, w->n_be);
	return 0;
}

/*
 * "namespace/name:port/tcp/v4". Kubernetes names can make this longer
 * than the id field; then it is cut and ends in "~" and a hash of the
 * whole id, which keeps it unique and stable across restarts.
 */
static void make_id(char *id, size_t len, const struct sp_service *s, const struct sp_svc_port *p,
		    uint8_t fam, const char *suffix)
{
	char full[512];
	int n;

	n = snprintf(full, sizeof(full), "%s/%s:%s/%s/v%u%s", s->ns, s->name,
		     p->name ? p->name : "", proto_str(p->proto), fam, suffix);
	if (n >= 0 && (size_t)n < len) {
		memcpy(id, full, (size_t)n + 1);
		return;
	}
	n = snprintf(id, len, "%.*s~%016llx", (int)(len - 18), full,
		     (unsigned long long)sp_fnv1a(full));
	(void)n;
}

static int fe_push(struct sp_want_svc *w, size_t *cap, const struct sp_ip *ip, uint16_t port,
		   uint16_t flags)
{
	struct sp_want_fe *v;

	if (w->n_fe == *cap) {
		size_t nc = *cap ? *cap * 2 : 4;

		v = reallocarray(w->fe, nc, sizeof(*v));
		if (!v)
			return -ENOMEM;
		w->fe = v;
		*cap = nc;
	}
	v = &w->fe[w->n_fe++];
	memset(v, 0, sizeof(*v)); /* padding too, for memcmp users */
	v->ip = *ip;
	v->port = port;
	v->flags = flags;
	return 0;
}

static bool ip_is_zero(const struct sp_ip *ip)
{
	static const uint8_t zero[16];

	return !memcmp(ip->b, zero, sizeof(zero));
}

/* Frontends of w from one address list; zero addresses would alias NodePort wildcards. */
static int add_fes(struct rctx *r, const struct sp_service *s, struct sp_want_svc *w, size_t *cap,
		   const struct sp_ip *ips, size_t n, uint16_t port, uint16_t flags)
{
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		if (ips[i].family != w->family)
			continue;
		if (ip_is_zero(&ips[i])) {
			rwarn(r,
			      "Service %s/%s: the unspecified address is not a valid Service "
			      "address: skipped",
			      s->ns, s->name);
			continue;
		}
		rc = fe_push(w, cap, &ips[i], port, flags);
		if (rc)
			return rc;
	}
	return 0;
}

static bool has_family(const struct sp_ip *ips, size_t n, uint8_t fam)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (ips[i].family == fam)
			return true;
	return false;
}

static void want_free(struct sp_want_svc *w)
{
	free(w->fe);
	free(w->be);
	free(w->src_ranges);
	w->fe = NULL;
	w->be = NULL;
	w->src_ranges = NULL;
}

static int cidr_cmp_v(const void *a, const void *b)
{
	return sp_cidr_cmp(a, b);
}

/* The Service's source ranges of w's family into w, sorted, de-duplicated. */
static int want_src_ranges(const struct sp_service *s, struct sp_want_svc *w)
{
	size_t i, n = 0;

	for (i = 0; i < s->n_src_ranges; i++)
		n += s->src_ranges[i].ip.family == w->family;
	if (!n)
		return 0;
	w->src_ranges = calloc(n, sizeof(*w->src_ranges));
	if (!w->src_ranges)
		return -ENOMEM;
	for (i = 0, n = 0; i < s->n_src_ranges; i++)
		if (s->src_ranges[i].ip.family == w->family)
			w->src_ranges[n++] = s->src_ranges[i];
	qsort(w->src_ranges, n, sizeof(*w->src_ranges), cidr_cmp_v);
	for (i = 0, w->n_src_ranges = 0; i < n; i++)
		if (!w->n_src_ranges ||
		    sp_cidr_cmp(&w->src_ranges[w->n_src_ranges - 1], &w->src_ranges[i]))
			w->src_ranges[w->n_src_ranges++] = w->src_ranges[i];
	return 0;
}

static struct sp_want_svc *svc_new(struct rctx *r)
{
	struct sp_want_svc *v;

	if (r->d.n == r->cap_svc) {
		size_t cap = r->cap_svc ? r->cap_svc * 2 : 16;

		v = reallocarray(r->d.svc, cap, sizeof(*v));
		if (!v)
			return NULL;
		r->d.svc = v;
		r->cap_svc = cap;
	}
	v = &r->d.svc[r->d.n++];
	memset(v, 0, sizeof(*v));
	return v;
}

/* Which frontends a backend set gets. */
enum {
	FE_INTERNAL = 1u << 0, /* clusterIPs */
	FE_EXTERNAL = 1u << 1, /* externalIPs, LoadBalancer IPs, the NodePort */
	FE_VIEW = 1u << 2,     /* the external ones again, in the cluster view */
};

/* Does Service port p have an external frontend in family fam? */
static bool has_external(const struct sp_service *s, const struct sp_svc_port *p, uint8_t fam)
{
	return has_family(s->external_ips, s->n_external_ips, fam) ||
	       (s->type == SP_SVC_LOAD_BALANCER && has_family(s->lb_ips, s->n_lb_ips, fam)) ||
	       (s->type != SP_SVC_CLUSTER_IP && p->node_port);
}

/* Does Service port p have a ready or serving endpoint anywhere? */
static int has_any_endpoint(struct rctx *r, const struct sp_service *s,
			    const struct sp_svc_port *p, uint8_t fam, bool *out)
{
	size_t i;
	int rc = gather(r, s, p, fam, false);

	*out = false;
	for (i = 0; !rc && i < r->n_cand; i++)
		*out |= r->cand[i].rank != RANK_OTHER;
	return rc;
}

/*
 * One want_svc of Service port p in family fam: the frontends of the kinds
 * in fes, the endpoints on this node only when only_local. ext_flags go on
 * the external frontends.
 */
static int resolve_set(struct rctx *r, const struct sp_service *s, const struct sp_svc_port *p,
		       uint8_t fam, const char *suffix, unsigned int fes, bool only_local,
		       uint16_t ext_flags)
{
	static const struct sp_ip zero4 = { .family = SP_FAMILY_V4 },
				  zero6 = { .family = SP_FAMILY_V6 };
	uint16_t ext = SP_SVC_F_EXTERNAL | ext_flags, np = SP_SVC_F_NODEPORT | ext_flags;
	struct sp_want_svc *w;
	bool any, filtered = false;
	size_t cap = 0, i;
	int rc = 0;

	if (fes & FE_VIEW) {
		ext |= SP_SVC_F_CLUSTER_VIEW;
		np |= SP_SVC_F_CLUSTER_VIEW;
	}
	w = svc_new(r);
	if (!w)
		return -ENOMEM;
	make_id(w->id, sizeof(w->id), s, p, fam, suffix);
	w->proto = p->proto;
	w->family = fam;
	if (s->affinity_client_ip) {
		w->flags |= SP_SVC_F_AFFINITY;
		w->affinity_timeout = s->affinity_timeout;
	}
	if (fes & FE_INTERNAL)
		rc = add_fes(r, s, w, &cap, s->cluster_ips, s->n_cluster_ips, p->port, 0);
	if (!rc && (fes & (FE_EXTERNAL | FE_VIEW))) {
		/* LB IPs first: an address that is also an externalIP keeps the
		 * LB IP's source ranges (dedup keeps the first), as kube-proxy's
		 * nftables mode filters it. */
		if (s->type == SP_SVC_LOAD_BALANCER) {
			rc = want_src_ranges(s, w);
			if (!rc)
				rc = add_fes(r, s, w, &cap, s->lb_ips, s->n_lb_ips, p->port,
					     ext | (w->n_src_ranges ? SP_SVC_F_SRC_RANGES : 0));
		}
		if (!rc)
			rc = add_fes(r, s, w, &cap, s->external_ips, s->n_external_ips, p->port,
				     ext);
		if (!rc && s->type != SP_SVC_CLUSTER_IP && p->node_port)
			rc = fe_push(w, &cap, fam == SP_FAMILY_V4 ? &zero4 : &zero6, p->node_port,
				     np);
	}
	if (rc)
		return rc;
	if (!w->n_fe) {
		/* Its only clusterIP of this family was unusable (warned above). */
		want_free(w);
		r->d.n--;
		return 0;
	}
	for (i = 0; i < w->n_fe; i++)
		filtered |= !!(w->fe[i].flags & SP_SVC_F_SRC_RANGES);
	if (!filtered) {
		/* No LB ingress IP of this family: nothing would read them. */
		free(w->src_ranges);
		w->src_ranges = NULL;
		w->n_src_ranges = 0;
	}
	rc = gather(r, s, p, fam, only_local);
	if (!rc)
		rc = backends(r, s, w);
	if (rc || !only_local || w->n_be)
		return rc;
	/* w may move when the array grows: nothing is added below. */
	rc = has_any_endpoint(r, s, p, fam, &any);
	if (!rc && any)
		w->flags |= SP_SVC_F_DROP_EMPTY;
	return rc;
}

static int resolve_port_family(struct rctx *r, const struct sp_service *s,
			       const struct sp_svc_port *p, uint8_t fam)
{
	bool known = r->o && r->o->node_name, ext = has_external(s, p, fam);
	bool itp = known && s->itp_local, etp = known && ext && s->etp_local;
	uint16_t ext_flags = etp ? SP_SVC_F_LOCAL_ONLY : 0;
	int rc;

	if (!ext || itp == etp)
		rc = resolve_set(r, s, p, fam, "", FE_INTERNAL | FE_EXTERNAL, itp, ext_flags);
	else {
		rc = resolve_set(r, s, p, fam, "", FE_INTERNAL, itp, 0);
		if (!rc)
			rc = resolve_set(r, s, p, fam, "/ext", FE_EXTERNAL, etp, ext_flags);
	}
	if (!rc && etp)
		rc = resolve_set(r, s, p, fam, "/all", FE_VIEW, false, 0);
	return rc;
}

static bool proxy_wanted(const struct rctx *r, const struct sp_service *s)
{
	const char *want = r->o ? r->o->proxy_name : NULL;

	if (want)
		return s->proxy_name && !strcmp(s->proxy_name, want);
	return !s->proxy_name;
}

static int resolve_service(struct rctx *r, const struct sp_service *s)
{
	static const uint8_t fams[] = { SP_FAMILY_V4, SP_FAMILY_V6 };
	const struct sp_svc_port *p;
	size_t i, f;
	int rc;

	if (s->headless || !proxy_wanted(r, s))
		return 0;
	for (f = 0; f < 2; f++) {
		if (has_family(s->cluster_ips, s->n_cluster_ips, fams[f]))
			continue;
		if (has_family(s->external_ips, s->n_external_ips, fams[f]) ||
		    (s->type == SP_SVC_LOAD_BALANCER &&
		     has_family(s->lb_ips, s->n_lb_ips, fams[f])))
			rwarn(r,
			      "Service %s/%s: IPv%u external/LoadBalancer addresses ignored: "
			      "the Service has no IPv%u clusterIP",
			      s->ns, s->name, fams[f], fams[f]);
	}
	for (i = 0; i < s->n_ports; i++) {
		p = &s->ports[i];
		if (!p->port) {
			rwarn(r, "Service %s/%s port \"%s\": port 0: skipped", s->ns, s->name,
			      p->name ? p->name : "");
			continue;
		}
		if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP) {
			rwarn(r, "Service %s/%s port \"%s\": protocol %u is not supported: skipped",
			      s->ns, s->name, p->name ? p->name : "", p->proto);
			continue;
		}
		for (f = 0; f < 2; f++) {
			if (!has_family(s->cluster_ips, s->n_cluster_ips, fams[f]))
				continue;
			rc = resolve_port_family(r, s, p, fams[f]);
			if (rc)
				return rc;
		}
	}
	return 0;
}

static int want_id_cmp(const void *pa, const void *pb)
{
	return strcmp(((const struct sp_want_svc *)pa)->id, ((const struct sp_want_svc *)pb)->id);
}

/* Drop entries whose id repeats (two Services of one name: the model allows it). */
static void drop_dup_ids(struct rctx *r)
{
	size_t i, n = 0;

	for (i = 0; i < r->d.n; i++) {
		if (n && !strcmp(r->d.svc[n - 1].id, r->d.svc[i].id)) {
			r->d.clashed = true;
			rwarn(r, "%s: defined twice; the second definition is ignored",
			      r->d.svc[i].id);
			want_free(&r->d.svc[i]);
			continue;
		}
		r->d.svc[n++] = r->d.svc[i];
	}
	r->d.n = n;
}

struct fe_ref {
	uint8_t key[20];  /* family, address, port, protocol */
	uint32_t svc, fe; /* indexes: want_svc (sorted by id) and its frontend */
};

static int fe_ref_cmp(const void *pa, const void *pb)
{
	const struct fe_ref *a = pa, *b = pb;
	int c = memcmp(a->key, b->key, sizeof(a->key));

	if (c)
		return c;
	if (a->svc != b->svc)
		return a->svc < b->svc ? -1 : 1;
	return a->fe < b->fe ? -1 : a->fe > b->fe;
}

static int fe_cmp(const void *pa, const void *pb)
{
	const struct sp_want_fe *a = pa, *b = pb;
	int c = sp_ip_cmp(&a->ip, &b->ip);

	if (c)
		return c;
	if (a->port != b->port)
		return a->port < b->port ? -1 : 1;
	return a->flags < b->flags ? -1 : a->flags > b->flags;
}

/* A frontend's identity: family (a cluster-view frontend has a key of its
 * own), address, port, protocol. */
static void fe_key(const struct sp_want_svc *w, const struct sp_want_fe *f, uint8_t key[20])
{
	key[0] = f->ip.family | ((f->flags & SP_SVC_F_CLUSTER_VIEW) ? SP_FAMILY_VIEW : 0);
	memcpy(&key[1], f->ip.b, 16);
	key[17] = f->port >> 8;
	key[18] = f->port & 0xff;
	key[19] = w->proto;
}

/*
 * A frontend (address, port, protocol) can key one sp_services entry
 * only. Sorting all frontends finds every clash in O(n log n); the
 * want_svc first by id keeps the frontend. Frontends are then put in
 * canonical order so the output depends only on the model's content.
 */
static int dedup_frontends(struct rctx *r)
{
	struct fe_ref *refs;
	size_t total = 0, i, j, n, k;
	struct sp_want_svc *w, *first;
	char a[INET6_ADDRSTRLEN];

	for (i = 0; i < r->d.n; i++)
		total += r->d.svc[i].n_fe;
	refs = calloc(total ? total : 1, sizeof(*refs));
	if (!refs)
		return -ENOMEM;
	for (i = 0, k = 0; i < r->d.n; i++) {
		w = &r->d.svc[i];
		for (j = 0; j < w->n_fe; j++, k++) {
			fe_key(w, &w->fe[j], refs[k].key);
			refs[k].svc = (uint32_t)i;
			refs[k].fe = (uint32_t)j;
		}
	}
	qsort(refs, total, sizeof(*refs), fe_ref_cmp);
	for (i = 1, k = 0; i < total; i++) {
		if (memcmp(refs[i].key, refs[k].key, sizeof(refs[k].key))) {
			k = i;
			continue;
		}
		w = &r->d.svc[refs[i].svc];
		first = &r->d.svc[refs[k].svc];
		r->d.clashed = true;
		sp_ip_str(&w->fe[refs[i].fe].ip, a, sizeof(a));
		if (w == first)
			rwarn(r, "%s: frontend %s port %u listed twice; kept once", w->id, a,
			      w->fe[refs[i].fe].port);
		else
			rwarn(r, "%s: frontend %s port %u is already claimed by %s; ignored here",
			      w->id, a, w->fe[refs[i].fe].port, first->id);
		/* Port 0 marks it for removal: a real frontend never has port 0. */
		w->fe[refs[i].fe].port = 0;
	}
	free(refs);

	for (i = 0, n = 0; i < r->d.n; i++) {
		w = &r->d.svc[i];
		for (j = 0, k = 0; j < w->n_fe; j++)
			if (w->fe[j].port)
				w->fe[k++] = w->fe[j];
		w->n_fe = k;
		if (!k) {
			rwarn(r, "%s: every frontend is claimed by another Service; skipped",
			      w->id);
			want_free(w);
			continue;
		}
		qsort(w->fe, w->n_fe, sizeof(*w->fe), fe_cmp);
		r->d.svc[n++] = *w;
	}
	r->d.n = n;
	return 0;
}

int sp_resolve(const struct sp_model *m, const struct sp_resolve_opts *o, struct sp_desired *out,
	       sp_warn_fn warn, void *warn_arg)
{
	struct rctx r = { .m = m, .o = o, .warn = warn, .warn_arg = warn_arg };
	size_t i;
	int rc = -ENOMEM;

	r.slices = calloc(m->n_slices ? m->n_slices : 1, sizeof(*r.slices));
	if (!r.slices)
		goto err;
	for (i = 0; i < m->n_slices; i++)
		r.slices[i] = &m->slices[i];
	r.n_slices = m->n_slices;
	qsort(r.slices, m->n_slices, sizeof(*r.slices), slice_sort_cmp);

	for (i = 0; i < m->n_services; i++) {
		rc = resolve_service(&r, &m->services[i]);
		if (rc)
			goto err;
	}
	if (r.d.n)
		qsort(r.d.svc, r.d.n, sizeof(*r.d.svc), want_id_cmp);
	drop_dup_ids(&r);
	rc = dedup_frontends(&r);
	if (rc)
		goto err;
	*out = r.d;
	free(r.cand);
	free(r.slices);
	return 0;
err:
	sp_desired_free(&r.d);
	free(r.cand);
	free(r.slices);
	return rc;
}

void sp_desired_free(struct sp_desired *d)
{
	size_t i;

	if (!d)
		return;
	for (i = 0; i < d->n; i++)
		want_free(&d->svc[i]);
	free(d->svc);
	d->svc = NULL;
	d->n = 0;
}

/* Whether two wanted Services are the same in every field the sync writes. */
static bool want_equal(const struct sp_want_svc *a, const struct sp_want_svc *b)
{
	size_t i;

	if (a->proto != b->proto || a->family != b->family || a->flags != b->flags ||
	    a->affinity_timeout != b->affinity_timeout || a->n_fe != b->n_fe ||
	    a->n_be != b->n_be || a->n_src_ranges != b->n_src_ranges)
		return false;
	for (i = 0; i < a->n_fe; i++)
		if (sp_ip_cmp(&a->fe[i].ip, &b->fe[i].ip) || a->fe[i].port != b->fe[i].port ||
		    a->fe[i].flags != b->fe[i].flags)
			return false;
	for (i = 0; i < a->n_be; i++)
		if (sp_ip_cmp(&a->be[i].ip, &b->be[i].ip) || a->be[i].port != b->be[i].port ||
		    a->be[i].weight != b->be[i].weight || a->be[i].flags != b->be[i].flags)
			return false;
	for (i = 0; i < a->n_src_ranges; i++)
		if (sp_cidr_cmp(&a->src_ranges[i], &b->src_ranges[i]))
			return false;
	return true;
}

/*
 * The ids that differ between old and new (both sorted by id: one merge
 * walk) into v (room for old->n + new->n). Returns how many.
 */
static size_t diff_walk(const struct sp_desired *old, const struct sp_desired *new,
			const char **v)
{
	size_t i = 0, j = 0, k = 0;
	int c;

	while (i < old->n || j < new->n) {
		c = i == old->n ? 1 : j == new->n ? -1 : strcmp(old->svc[i].id, new->svc[j].id);
		if (c < 0) {
			v[k++] = old->svc[i++].id;
		} else if (c > 0) {
			v[k++] = new->svc[j++].id;
		} else {
			if (!want_equal(&old->svc[i], &new->svc[j]))
				v[k++] = new->svc[j].id;
			i++;
			j++;
		}
	}
	return k;
}

int sp_desired_diff(const struct sp_desired *old, const struct sp_desired *new,
		    const char ***ids, size_t *n)
{
	const char **v = calloc(old->n + new->n ? old->n + new->n : 1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	*n = diff_walk(old, new, v);
	*ids = v;
	return 0;
}

/*
 * Order of a Service's "namespace/name" (ns, name) against a listed
 * "namespace/name" string, as strcmp orders the joined strings.
 */
static int listed_cmp(const char *ns, const char *name, const char *listed)
{
	size_t n = strlen(ns);
	int c = strncmp(ns, listed, n);

	if (c)
		return c;
	if (listed[n] != '/')
		return (unsigned char)'/' - (unsigned char)listed[n];
	return strcmp(name, listed + n + 1);
}

static bool is_listed(const char *ns, const char *name, const char *const *names, size_t n)
{
	size_t lo = 0, hi = n, mid;
	int c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = listed_cmp(ns, name, names[mid]);
		if (!c)
			return true;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return false;
}

/* The entries [lo, hi) of a desired state that belong to one Service. */
struct id_run {
	size_t lo, hi;
};

/* Does id start with "namespace/name:" for name ("namespace/name")? */
static int id_prefix_cmp(const char *id, const char *name, size_t len)
{
	int c = strncmp(id, name, len);

	if (c)
		return c;
	return (unsigned char)id[len] - (unsigned char)':';
}

/* Where the entries of Service name ("namespace/name") are in d (sorted by
 * id): the ids that start with "namespace/name:", found by binary search. */
static struct id_run id_run(const struct sp_desired *d, const char *name)
{
	size_t len = strlen(name), lo = 0, hi = d->n, mid;
	struct id_run run;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (id_prefix_cmp(d->svc[mid].id, name, len) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	run.lo = run.hi = lo;
	while (run.hi < d->n && !id_prefix_cmp(d->svc[run.hi].id, name, len))
		run.hi++;
	return run;
}

static int id_run_cmp(const void *a, const void *b)
{
	const struct id_run *x = a, *y = b;

	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	return x->hi < y->hi ? -1 : x->hi > y->hi;
}

/* Is index i in one of the runs (sorted, disjoint)? *c is a cursor into
 * them for ascending i, starting at 0. */
static bool in_runs(const struct id_run *runs, size_t n, size_t *c, size_t i)
{
	while (*c < n && runs[*c].hi <= i)
		(*c)++;
	return *c < n && runs[*c].lo <= i;
}

/* Do the new entries (sorted) carry exactly the ids of prev's runs, in order? */
static bool same_ids(const struct sp_desired *prev, const struct id_run *runs, size_t n_runs,
		     const struct sp_desired *new)
{
	size_t i, j, k = 0;

	for (i = 0; i < n_runs; i++)
		for (j = runs[i].lo; j < runs[i].hi; j++, k++)
			if (k >= new->n || strcmp(prev->svc[j].id, new->svc[k].id))
				return false;
	return k == new->n;
}

static int fe_key_cmp(const void *a, const void *b)
{
	return memcmp(a, b, 20);
}

/* Are all keys (sorted) frontends of prev's entries in runs? */
static bool only_old_keys(const struct sp_desired *prev, const struct id_run *runs, size_t n_runs,
			  uint8_t (*keys)[20], size_t n_keys)
{
	uint8_t(*old)[20] = NULL;
	size_t i, j, k, n = 0;
	bool all = true;

	for (i = 0; i < n_runs; i++)
		for (j = runs[i].lo; j < runs[i].hi; j++)
			n += prev->svc[j].n_fe;
	old = calloc(n ? n : 1, sizeof(*old));
	if (!old)
		return false; /* the walk decides */
	for (i = 0, k = 0; i < n_runs; i++)
		for (j = runs[i].lo; j < runs[i].hi; j++) {
			const struct sp_want_svc *w = &prev->svc[j];
			size_t f;

			for (f = 0; f < w->n_fe; f++)
				fe_key(w, &w->fe[f], old[k++]);
		}
	qsort(old, n, sizeof(*old), fe_key_cmp);
	for (i = 0; i < n_keys && all; i++)
		all = bsearch(keys[i], old, n, sizeof(*old), fe_key_cmp) != NULL;
	free(old);
	return all;
}

/* (ns, svc, name) against a sorted model's order (model.h, sorted). */
static int sorted_cmp(const char *ns, const char *svc, const char *name, const char *ns2,
		      size_t ns2_len, const char *svc2, const char *name2)
{
	int c = strncmp(ns, ns2, ns2_len);

	if (!c && ns[ns2_len])
		c = 1;
	if (!c)
		c = strcmp(svc ? svc : "", svc2);
	return c ? c : strcmp(name, name2);
}

/*
 * sp_resolve_some's selection on a sorted model: each listed Service and
 * the run of its slices by binary search, so a change costs O(log N) here
 * instead of a walk over every object (at 100,000 Services that walk was
 * most of a one-endpoint change). Returns 0, -ENOMEM or resolve's error.
 */
static int listed_sorted(struct rctx *r, const struct sp_model *m, const char *const *names,
			 size_t n_names)
{
	size_t i, lo, hi, mid, cap = 0;
	int rc;

	for (i = 0; i < n_names; i++) {
		const char *slash = strchr(names[i], '/'), *name;
		size_t ns_len;

		if (!slash)
			continue;
		ns_len = (size_t)(slash - names[i]);
		name = slash + 1;
		/* The slices: first (ns, name, "") and on while ns, name match. */
		for (lo = 0, hi = m->n_slices; lo < hi;) {
			const struct sp_slice *sl = &m->slices[(mid = lo + (hi - lo) / 2)];

			if (sorted_cmp(sl->ns ? sl->ns : "", sl->service_name, sl->name, names[i],
				       ns_len, name, "") < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (; lo < m->n_slices; lo++) {
			const struct sp_slice *sl = &m->slices[lo];
			const char *sns = sl->ns ? sl->ns : "";

			if (strncmp(sns, names[i], ns_len) || sns[ns_len] ||
			    strcmp(sl->service_name ? sl->service_name : "", name))
				break;
			if (r->n_slices == cap) {
				const struct sp_slice **v;

				cap = cap ? 2 * cap : 16;
				v = reallocarray(r->slices, cap, sizeof(*v));
				if (!v)
					return -ENOMEM;
				r->slices = v;
			}
			r->slices[r->n_slices++] = sl;
		}
	}
	if (r->n_slices)
		qsort(r->slices, r->n_slices, sizeof(*r->slices), slice_sort_cmp);
	for (i = 0; i < n_names; i++) {
		const char *slash = strchr(names[i], '/');
		size_t ns_len;

		if (!slash)
			continue;
		ns_len = (size_t)(slash - names[i]);
		for (lo = 0, hi = m->n_services; lo < hi;) {
			const struct sp_service *sv = &m->services[(mid = lo + (hi - lo) / 2)];

			if (sorted_cmp(sv->ns, NULL, sv->name, names[i], ns_len, "", slash + 1) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < m->n_services &&
		    !sorted_cmp(m->services[lo].ns, NULL, m->services[lo].name, names[i], ns_len,
				"", slash + 1)) {
			rc = resolve_service(r, &m->services[lo]);
			if (rc)
				return rc;
		}
	}
	return 0;
}

int sp_resolve_some(const struct sp_model *m, const struct sp_resolve_opts *o,
		    struct sp_desired *prev, const char *const *names, size_t n_names,
		    struct sp_desired *out, const char ***ids, size_t *n_ids, sp_warn_fn warn,
		    void *warn_arg)
{
	struct rctx r = { .m = m, .o = o, .warn = warn, .warn_arg = warn_arg };
	struct sp_want_svc *all = NULL;
	const char **v = NULL;
	uint8_t(*keys)[20] = NULL;
	struct id_run *runs = NULL;
	size_t i, j, k, c, n_keys = 0, n_old, n_new, n_kept, *npos = NULL;
	bool check;
	int rc = -ENOMEM;

	/* A clash decided by the order of every Service: only a full pass
	 * decides it again. */
	if (prev->clashed)
		return 1;
	if (m->sorted) {
		rc = listed_sorted(&r, m, names, n_names);
		if (rc)
			goto err;
	} else {
		r.slices = calloc(m->n_slices ? m->n_slices : 1, sizeof(*r.slices));
		if (!r.slices)
			goto err;
		for (i = 0; i < m->n_slices; i++)
			if (is_listed(m->slices[i].ns ? m->slices[i].ns : "",
				      m->slices[i].service_name ? m->slices[i].service_name : "",
				      names, n_names))
				r.slices[r.n_slices++] = &m->slices[i];
		qsort(r.slices, r.n_slices, sizeof(*r.slices), slice_sort_cmp);
		for (i = 0; i < m->n_services; i++) {
			if (!is_listed(m->services[i].ns, m->services[i].name, names, n_names))
				continue;
			rc = resolve_service(&r, &m->services[i]);
			if (rc)
				goto err;
		}
	}
	rc = -ENOMEM;
	if (r.d.n)
		qsort(r.d.svc, r.d.n, sizeof(*r.d.svc), want_id_cmp);
	drop_dup_ids(&r);
	if (dedup_frontends(&r))
		goto err;
	/* A new frontend that a kept Service has: a clash, for the full pass. */
	for (i = 0; i < r.d.n; i++)
		n_keys += r.d.svc[i].n_fe;
	keys = calloc(n_keys ? n_keys : 1, sizeof(*keys));
	if (!keys)
		goto err;
	for (i = 0, k = 0; i < r.d.n; i++)
		for (j = 0; j < r.d.svc[i].n_fe; j++)
			fe_key(&r.d.svc[i], &r.d.svc[i].fe[j], keys[k++]);
	qsort(keys, n_keys, sizeof(*keys), fe_key_cmp);
	/* prev's entries of the listed Services: their ids start with
	 * "namespace/name:", so each Service's are one run of the sorted
	 * array, found by binary search (never a walk over all of prev). */
	runs = calloc(n_names ? n_names : 1, sizeof(*runs));
	if (!runs)
		goto err;
	for (i = 0, n_old = 0; i < n_names; i++) {
		runs[i] = id_run(prev, names[i]);
		n_old += runs[i].hi - runs[i].lo;
	}
	/* In id order, which is not the names' order ("a/b-x:" < "a/b:"). */
	qsort(runs, n_names, sizeof(*runs), id_run_cmp);
	/* A kept Service that has one of the new frontends: a clash. Not
	 * possible when every new frontend was one of the listed Services'
	 * own (prev has no clash, so no kept Service had it): the common
	 * change, which then costs nothing here that grows with prev. */
	check = n_keys && !only_old_keys(prev, runs, n_names, keys, n_keys);
	for (i = 0, c = 0; check && i < prev->n && !r.d.clashed; i++) {
		const struct sp_want_svc *w = &prev->svc[i];
		uint8_t key[20];

		if (in_runs(runs, n_names, &c, i))
			continue;
		for (j = 0; j < w->n_fe && !r.d.clashed; j++) {
			fe_key(w, &w->fe[j], key);
			r.d.clashed = bsearch(key, keys, n_keys, sizeof(*keys), fe_key_cmp) != NULL;
		}
	}
	if (r.d.clashed) {
		rc = 1;
		goto err;
	}
	n_new = r.d.n;
	n_kept = prev->n - n_old;
	npos = calloc(n_new ? n_new : 1, sizeof(*npos));
	v = calloc(n_old + n_new ? n_old + n_new : 1, sizeof(*v));
	if (!npos || !v)
		goto err;
	if (same_ids(prev, runs, n_names, &r.d)) {
		/*
		 * The common change (endpoints of a Service whose ports stay):
		 * the new entries take the old ones' places in prev's array,
		 * which becomes out, and prev keeps only the old entries.
		 * What this costs depends on the change, not on prev->n.
		 */
		struct sp_want_svc *old = calloc(n_old ? n_old : 1, sizeof(*old));

		if (!old)
			goto err;
		for (i = 0, k = 0; i < n_names; i++)
			for (j = runs[i].lo; j < runs[i].hi; j++, k++) {
				old[k] = prev->svc[j];
				prev->svc[j] = r.d.svc[k];
				npos[k] = j;
			}
		*out = (struct sp_desired){ .svc = prev->svc, .n = prev->n };
		prev->svc = old;
		prev->n = n_old;
	} else {
		all = calloc(n_kept + n_new ? n_kept + n_new : 1, sizeof(*all));
		if (!all)
			goto err;
		/* Move: kept entries into all (merged with the new ones by
		 * id), the listed ones stay in prev, compacted. Nothing can
		 * fail from here. */
		for (i = 0, j = 0, k = 0, c = 0, n_old = 0; i < prev->n || j < n_new;) {
			bool take_new = i == prev->n ||
					(j < n_new && strcmp(r.d.svc[j].id, prev->svc[i].id) < 0);

			if (take_new) {
				npos[j] = k;
				all[k++] = r.d.svc[j++];
			} else if (in_runs(runs, n_names, &c, i)) {
				prev->svc[n_old++] = prev->svc[i++];
			} else {
				all[k++] = prev->svc[i++];
			}
		}
		prev->n = n_old;
		*out = (struct sp_desired){ .svc = all, .n = k };
	}
	free(r.d.svc);
	r.d.svc = NULL;
	r.d.n = 0;
	/* What differs: the listed Services' entries, old against new. */
	for (i = 0, j = 0, k = 0; i < prev->n || j < n_new;) {
		const struct sp_want_svc *ow = i < prev->n ? &prev->svc[i] : NULL;
		const struct sp_want_svc *nw = j < n_new ? &out->svc[npos[j]] : NULL;
		int d = !ow ? 1 : !nw ? -1 : strcmp(ow->id, nw->id);

		if (d < 0) {
			v[k++] = ow->id;
			i++;
		} else if (d > 0) {
			v[k++] = nw->id;
			j++;
		} else {
			if (!want_equal(ow, nw))
				v[k++] = nw->id;
			i++;
			j++;
		}
	}
	*n_ids = k;
	*ids = v;
	free(npos);
	free(runs);
	free(keys);
	free(r.cand);
	free(r.slices);
	return 0;
err:
	free(all);
	free(v);
	free(npos);
	free(runs);
	free(keys);
	sp_desired_free(&r.d);
	free(r.cand);
	free(r.slices);
	return rc;
}
