// SPDX-License-Identifier: Apache-2.0
/*
 * The internal model (model.h): freeing and address helpers shared by the
 * config file source, the Kubernetes source and resolve.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svcplane.h"
#include "model.h"

void sp_service_free(struct sp_service *s)
{
	size_t i;

	if (!s)
		return;
	free(s->ns);
	free(s->name);
	free(s->cluster_ips);
	free(s->external_ips);
	free(s->lb_ips);
	for (i = 0; i < s->n_ports; i++) {
		free(s->ports[i].name);
		free(s->ports[i].target_port_name);
	}
	free(s->ports);
	free(s->proxy_name);
	free(s->resource_version);
	free(s->src_ranges);
	memset(s, 0, sizeof(*s));
}

void sp_slice_free(struct sp_slice *s)
{
	size_t i;

	if (!s)
		return;
	free(s->ns);
	free(s->name);
	free(s->service_name);
	for (i = 0; i < s->n_ports; i++)
		free(s->ports[i].name);
	free(s->ports);
	free(s->endpoints); /* node names and hints are interned (sp_intern) */
	free(s->resource_version);
	memset(s, 0, sizeof(*s));
}

uint64_t sp_fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s; s++) {
		h ^= (uint8_t)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/*
 * An interning set: an open-addressing hash set of pointers, grown at
 * half full, shared by every thread (the watcher parses on its own), its
 * entries never freed. The strings and the endpoint triples below are two.
 */
struct iset {
	pthread_mutex_t lock;
	void **v;
	size_t n, cap; /* cap a power of two */
	uint64_t (*hash)(const void *);
	bool (*eq)(const void *, const void *);
};

/* The slot of key in v: where it is or would go. */
static void **iset_slot(const struct iset *is, void **v, size_t cap, const void *key)
{
	size_t i = (size_t)is->hash(key) & (cap - 1);

	while (v[i] && !is->eq(v[i], key))
		i = (i + 1) & (cap - 1);
	return &v[i];
}

/*
 * The entry equal to key, or one made by dup(key) and added. NULL on
 * -ENOMEM. The lock is held throughout, so dup runs at most once per key.
 */
static void *iset_get(struct iset *is, const void *key, void *(*dup)(const void *))
{
	void **slot, *r = NULL;

	pthread_mutex_lock(&is->lock);
	if ((is->n + 1) * 2 > is->cap) {
		size_t cap = is->cap ? is->cap * 2 : 64, i;
		void **v = calloc(cap, sizeof(*v));

		if (!v)
			goto out;
		for (i = 0; i < is->cap; i++)
			if (is->v[i])
				*iset_slot(is, v, cap, is->v[i]) = is->v[i];
		free(is->v);
		is->v = v;
		is->cap = cap;
	}
	slot = iset_slot(is, is->v, is->cap, key);
	if (!*slot && (*slot = dup(key)))
		is->n++;
	r = *slot;
out:
	pthread_mutex_unlock(&is->lock);
	return r;
}

static uint64_t str_hash(const void *s)
{
	return sp_fnv1a(s);
}

static bool str_eq(const void *a, const void *b)
{
	return !strcmp(a, b);
}

static void *str_dup(const void *s)
{
	return strdup(s);
}

static struct iset strings = { .lock = PTHREAD_MUTEX_INITIALIZER, .hash = str_hash, .eq = str_eq };

const char *sp_intern(const char *s)
{
	return iset_get(&strings, s, str_dup);
}

/* The endpoint triples: their strings are interned, so their addresses
 * are their identity. */
static uint64_t topo_hash(const void *p)
{
	const struct sp_ep_topo *t = p;
	uint64_t h = ((uintptr_t)t->node_name * 0x9e3779b97f4a7c15ULL) ^
		     ((uintptr_t)t->zone_hints * 0xc2b2ae3d27d4eb4fULL) ^
		     ((uintptr_t)t->node_hints * 0x165667b19e3779f9ULL);

	return h ^ (h >> 29);
}

static bool topo_eq(const void *a, const void *b)
{
	const struct sp_ep_topo *x = a, *y = b;

	return x->node_name == y->node_name && x->zone_hints == y->zone_hints &&
	       x->node_hints == y->node_hints;
}

static void *topo_dup(const void *p)
{
	struct sp_ep_topo *t = malloc(sizeof(*t));

	if (t)
		*t = *(const struct sp_ep_topo *)p;
	return t;
}

static struct iset topos = { .lock = PTHREAD_MUTEX_INITIALIZER, .hash = topo_hash, .eq = topo_eq };

int sp_ep_set_topo(struct sp_endpoint *e, const char *node, const char *zones, const char *nodes)
{
	struct sp_ep_topo t = { 0 };
	const struct sp_ep_topo *r;

	if ((node && !(t.node_name = sp_intern(node))) ||
	    (zones && !(t.zone_hints = sp_intern(zones))) ||
	    (nodes && !(t.node_hints = sp_intern(nodes))))
		return -ENOMEM;
	if (!t.node_name && !t.zone_hints && !t.node_hints) {
		e->topo = NULL;
		return 0;
	}
	r = iset_get(&topos, &t, topo_dup);
	if (!r)
		return -ENOMEM;
	e->topo = r;
	return 0;
}

int sp_model_key_cmp(const char *ns, const char *svc, const char *name, const char *ns2,
		     const char *svc2, const char *name2)
{
	int c = strcmp(ns, ns2);

	if (!c)
		c = strcmp(svc ? svc : "", svc2 ? svc2 : "");
	return c ? c : strcmp(name, name2);
}

int sp_service_order(const void *a, const void *b)
{
	const struct sp_service *x = a, *y = b;

	return sp_model_key_cmp(x->ns, NULL, x->name, y->ns, NULL, y->name);
}

int sp_slice_order(const void *a, const void *b)
{
	const struct sp_slice *x = a, *y = b;

	return sp_model_key_cmp(x->ns, x->service_name, x->name, y->ns, y->service_name, y->name);
}

void sp_model_sort(struct sp_model *m)
{
	qsort(m->services, m->n_services, sizeof(*m->services), sp_service_order);
	qsort(m->slices, m->n_slices, sizeof(*m->slices), sp_slice_order);
	m->sorted = true;
}

void sp_model_free(struct sp_model *m)
{
	size_t i;

	if (!m)
		return;
	for (i = 0; i < m->n_services; i++)
		sp_service_free(&m->services[i]);
	free(m->services);
	for (i = 0; i < m->n_slices; i++)
		sp_slice_free(&m->slices[i]);
	free(m->slices);
	memset(m, 0, sizeof(*m));
}

/*
 * inet_pton() is strict enough for us: dotted quads with no leading zeros
 * for IPv4, RFC 4291 text for IPv6; no CIDR suffix, zone id or whitespace.
 */
int sp_ip_parse(const char *s, struct sp_ip *ip)
{
	memset(ip, 0, sizeof(*ip));
	if (!s)
		return -EINVAL;
	if (inet_pton(AF_INET, s, ip->b) == 1) {
		ip->family = SP_FAMILY_V4;
		return 0;
	}
	if (inet_pton(AF_INET6, s, ip->b) == 1) {
		ip->family = SP_FAMILY_V6;
		return 0;
	}
	memset(ip, 0, sizeof(*ip));
	return -EINVAL;
}

const char *sp_ip_str(const struct sp_ip *ip, char *buf, size_t len)
{
	int af = ip->family == SP_FAMILY_V4 ? AF_INET : ip->family == SP_FAMILY_V6 ? AF_INET6 : 0;

	if (!len)
		return buf;
	if (!af || !inet_ntop(af, ip->b, buf, len))
		snprintf(buf, len, "?");
	return buf;
}

/* Orders by family, then address bytes (only the 4 that IPv4 uses). */
int sp_ip_cmp(const struct sp_ip *a, const struct sp_ip *b)
{
	size_t n = a->family == SP_FAMILY_V4 ? 4 : 16;

	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	return memcmp(a->b, b->b, n);
}

int sp_cidr_parse(const char *s, struct sp_cidr *c)
{
	char buf[INET6_ADDRSTRLEN + 8], *slash, *end;
	unsigned long plen;
	size_t i, len;

	memset(c, 0, sizeof(*c));
	if (!s || (len = strlen(s)) >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, len + 1);
	slash = strchr(buf, '/');
	if (!slash || slash[1] < '0' || slash[1] > '9')
		return -EINVAL;
	*slash = 0;
	/* no leading zeros, no sign, no spaces: "/08" is not a prefix length */
	if (slash[1] == '0' && slash[2])
		return -EINVAL;
	plen = strtoul(slash + 1, &end, 10);
	if (*end || sp_ip_parse(buf, &c->ip))
		goto bad;
	if (plen > (c->ip.family == SP_FAMILY_V4 ? 32u : 128u))
		goto bad;
	c->plen = (uint8_t)plen;
	for (i = 0; i < 16; i++) {
		if (plen >= 8 * (i + 1))
			continue;
		c->ip.b[i] &= plen > 8 * i ? (uint8_t)(0xff << (8 - (plen - 8 * i))) : 0;
	}
	return 0;
bad:
	memset(c, 0, sizeof(*c));
	return -EINVAL;
}

const char *sp_cidr_str(const struct sp_cidr *c, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	if (len)
		snprintf(buf, len, "%s/%u", sp_ip_str(&c->ip, a, sizeof(a)), c->plen);
	return buf;
}

int sp_cidr_cmp(const struct sp_cidr *a, const struct sp_cidr *b)
{
	int r = sp_ip_cmp(&a->ip, &b->ip);

	if (r)
		return r;
	return a->plen < b->plen ? -1 : a->plen > b->plen;
}
