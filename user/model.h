/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The internal model: Services and EndpointSlices as Kubernetes describes
 * them. Both sources of truth (the static config file, user/config.c, and
 * the Kubernetes API, user/k8s.c) fill a struct sp_model; resolve.c turns
 * it into the flat desired state the map sync writes. Keeping the source
 * model close to the API means the two sources share every semantic rule.
 *
 * All strings and arrays are heap-owned by the model; sp_model_free()
 * releases everything.
 */
#ifndef SP_MODEL_H
#define SP_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An address: family is 4 or 6 (SP_FAMILY_*), bytes in network order. */
struct sp_ip {
	uint8_t family;
	uint8_t b[16]; /* IPv4 uses b[0..3] */
};

/* A CIDR: the network address (host bits zero) and the prefix length. */
struct sp_cidr {
	struct sp_ip ip;
	uint8_t plen; /* 0-32 (IPv4) or 0-128 (IPv6) */
};

enum sp_svc_type {
	SP_SVC_CLUSTER_IP = 0,
	SP_SVC_NODE_PORT,
	SP_SVC_LOAD_BALANCER,
};

struct sp_svc_port {
	char *name; /* may be "" for a single unnamed port */
	uint8_t proto; /* IPPROTO_TCP or IPPROTO_UDP */
	uint16_t port;
	uint16_t node_port; /* 0 = none */
	uint16_t target_port; /* numeric targetPort, 0 if named or absent */
	char *target_port_name; /* named targetPort, NULL if numeric */
};

struct sp_service {
	char *ns;
	char *name;
	enum sp_svc_type type;
	bool headless; /* clusterIP: None (ignored by the proxy) */
	struct sp_ip *cluster_ips;
	size_t n_cluster_ips;
	struct sp_ip *external_ips;
	size_t n_external_ips;
	struct sp_ip *lb_ips; /* status.loadBalancer.ingress[].ip */
	size_t n_lb_ips;
	struct sp_svc_port *ports;
	size_t n_ports;
	bool etp_local; /* externalTrafficPolicy: Local */
	bool itp_local; /* internalTrafficPolicy: Local */
	bool affinity_client_ip; /* sessionAffinity: ClientIP */
	uint32_t affinity_timeout; /* seconds (default 10800) */
	char *proxy_name; /* label service.kubernetes.io/service-proxy-name, or NULL */
	char *resource_version; /* from the API; NULL for the config file */
	/* spec.healthCheckNodePort (type LoadBalancer, externalTrafficPolicy
	 * Local): where this node says whether it has local endpoints; 0 = none */
	uint16_t health_check_node_port;
	/* spec.loadBalancerSourceRanges (or the annotation
	 * service.beta.kubernetes.io/load-balancer-source-ranges when the
	 * field is empty), both families; empty: open to everyone. */
	struct sp_cidr *src_ranges;
	size_t n_src_ranges;
};

struct sp_ep_port {
	char *name; /* "" when unnamed */
	uint8_t proto;
	uint16_t port;
};

/*
 * Where an endpoint is: its node and its topology hints. A cluster has a
 * handful of distinct ones, repeated on every endpoint, so each is
 * interned once (sp_ep_set_topo) and an endpoint keeps one pointer: 16 B
 * less per endpoint (1.6 MiB at 100,000 endpoints) than three.
 */
struct sp_ep_topo {
	const char *node_name; /* interned (sp_intern); may be NULL */
	/* Topology hints (hints.forZones[].name, hints.forNodes[].name), each a
	 * comma-separated list (no name can hold a comma), interned; NULL:
	 * none. */
	const char *zone_hints;
	const char *node_hints;
};

struct sp_endpoint {
	struct sp_ip addr; /* first address of the endpoint */
	bool ready; /* conditions.ready (nil counts as true) */
	bool serving; /* conditions.serving (nil = ready) */
	bool terminating; /* conditions.terminating (nil = false) */
	/* Interned, never freed; NULL: no node name and no hints. Read it with
	 * sp_ep_node() and friends. */
	const struct sp_ep_topo *topo;
};

/* Intern node, zones and nodes (each may be NULL) and the three together
 * into e->topo (NULL when all are). 0 or -ENOMEM (e unchanged). */
int sp_ep_set_topo(struct sp_endpoint *e, const char *node, const char *zones, const char *nodes);

static inline const char *sp_ep_node(const struct sp_endpoint *e)
{
	return e->topo ? e->topo->node_name : NULL;
}

static inline const char *sp_ep_zone_hints(const struct sp_endpoint *e)
{
	return e->topo ? e->topo->zone_hints : NULL;
}

static inline const char *sp_ep_node_hints(const struct sp_endpoint *e)
{
	return e->topo ? e->topo->node_hints : NULL;
}

struct sp_slice {
	char *ns;
	char *name;
	char *service_name; /* label kubernetes.io/service-name */
	uint8_t family; /* addressType IPv4 -> 4, IPv6 -> 6 */
	struct sp_ep_port *ports;
	size_t n_ports;
	struct sp_endpoint *endpoints;
	size_t n_endpoints;
	char *resource_version;
};

struct sp_model {
	struct sp_service *services;
	size_t n_services;
	struct sp_slice *slices;
	size_t n_slices;
	/*
	 * Set by a source that keeps its arrays sorted (the Kubernetes
	 * watcher's view): services by (ns, name), slices by (ns,
	 * service_name, name), strcmp order, a NULL service_name as "". Then
	 * sp_resolve_some finds a Service's objects by binary search instead
	 * of a walk over all of them.
	 */
	bool sorted;
};

void sp_model_free(struct sp_model *m);
/*
 * The order of a sorted model (sorted above): (ns, svc, name), strcmp
 * order, a NULL svc as "" (a Service's own key has none). The qsort
 * comparators of Services and slices follow it, and sp_model_sort puts a
 * model in it and flags it.
 */
int sp_model_key_cmp(const char *ns, const char *svc, const char *name, const char *ns2,
		     const char *svc2, const char *name2);
int sp_service_order(const void *a, const void *b);
int sp_slice_order(const void *a, const void *b);
void sp_model_sort(struct sp_model *m);
/*
 * One copy of s for the whole process, never freed: a node name repeats
 * on every endpoint of a node (100,000 endpoints on a few hundred nodes),
 * and the set of names is about as small as the cluster. Thread-safe.
 * Returns the copy, or NULL on -ENOMEM.
 */
const char *sp_intern(const char *s);
/* 64-bit FNV-1a of a string: hash tables, and ids too long to keep whole
 * (resolve.c: part of an id, so its value must never change). */
uint64_t sp_fnv1a(const char *s);
void sp_service_free(struct sp_service *s);
void sp_slice_free(struct sp_slice *s);

/* Parse "10.0.0.1" or "fd00::1" into *ip. Returns 0 or -EINVAL. */
int sp_ip_parse(const char *s, struct sp_ip *ip);
/* Format into buf (at least 46 bytes). Returns buf. */
const char *sp_ip_str(const struct sp_ip *ip, char *buf, size_t len);
int sp_ip_cmp(const struct sp_ip *a, const struct sp_ip *b);
/*
 * Parse "10.0.0.0/8" or "fd00::/64" into *c, host bits cleared (as
 * Kubernetes' own parser does: "10.0.0.1/8" is 10.0.0.0/8). The prefix
 * length is required. Returns 0 or -EINVAL.
 */
int sp_cidr_parse(const char *s, struct sp_cidr *c);
/* "10.0.0.0/8" into buf (at least 50 bytes). Returns buf. */
const char *sp_cidr_str(const struct sp_cidr *c, char *buf, size_t len);
int sp_cidr_cmp(const struct sp_cidr *a, const struct sp_cidr *b);

#endif /* SP_MODEL_H */
