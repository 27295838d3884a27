// SPDX-License-Identifier: Apache-2.0
/*
 * The static config file source: YAML shaped like Kubernetes Services and
 * EndpointSlices (docs/CONFIG.md), parsed with libyaml into struct sp_model.
 *
 * Two passes over the input: the event parser first, only to find syntax
 * errors, aliases, extra documents and excessive nesting with their exact
 * position; then the document loader, whose node tree we walk against a
 * fixed schema. (One pass would mean building the node tree from events
 * ourselves: yaml_parser_load has no hook to stop it early.) Every
 * error names the file, the line and column of the offending node, the
 * path to it (services[0].ports[1].port) and the problem; the first error
 * stops the parse and the caller's model is left as it was.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "svcplane.h"
#include "cli.h"
#include "config.h"
#include "maglev.h"
#include "model.h"
#include "resolve.h"
#include "sync.h"

#define PATH_LEN 96
/*
 * Lists and mappings nested deeper than this are refused in the first pass.
 * The format needs 6 levels; libyaml's scanner is quadratic in flow depth
 * (100,000 "[" took two minutes) and its loader allocates per level.
 */
#define CFG_MAX_DEPTH 64
#define DEFAULT_NAMESPACE "default"
#define AFFINITY_TIMEOUT_DEFAULT 10800 /* Kubernetes' default: 3 hours */
#define AFFINITY_TIMEOUT_MAX 86400     /* Kubernetes' limit: 1 day */
#define LABEL_PROXY_NAME "service.kubernetes.io/service-proxy-name"

enum claim_kind {
	CK_SVC_NAME,   /* namespace/name of a Service */
	CK_SLICE_NAME, /* namespace/name of an EndpointSlice */
	CK_VIP,	       /* address:port/protocol of a clusterIP, externalIP or LB IP */
	CK_NODEPORT,   /* nodePort/protocol */
	CK_MAX,
};

/*
 * Something that must be unique across the file, remembered with where it
 * was written so that a duplicate can point at both places.
 */
struct claim {
	const char *ns, *name; /* CK_*_NAME: owned by the model being built */
	uint8_t key[20];       /* CK_VIP, CK_NODEPORT: family, address, port, protocol */
	size_t seq;	       /* order of appearance in the file */
	size_t owner;	       /* index of the Service or slice */
	size_t part;	       /* sp_config_parts_check: index of the file */
	yaml_mark_t mark;
	char path[PATH_LEN];
};

struct claims {
	struct claim *v;
	size_t n, cap;
};

struct cfg {
	const char *name; /* what messages call the input */
	const char *buf;
	size_t len;
	yaml_document_t doc;
	struct sp_model m; /* being built; handed out only when complete */
	struct claims cl[CK_MAX];
	size_t seq;
	char *err;
	size_t errlen;
	/* Part of a directory (sp_config_part_load): a slice's Service may be
	 * in another file, so a slice naming none here is not an error. */
	bool part;
	/* Where each item of "services" and "endpointSlices" starts (the
	 * byte offset of its node), in model order; NULL: not wanted. Left
	 * incomplete (items->whole false) when the tree walk parsed the file. */
	struct sp_config_items *items;
};

static int __attribute__((format(printf, 4, 5)))
cfg_err(struct cfg *c, yaml_mark_t mark, const char *path, const char *fmt, ...)
{
	va_list ap;
	int off;

	if (!c->err || !c->errlen)
		return -EINVAL;
	off = snprintf(c->err, c->errlen, "%s:%zu:%zu: ", c->name, mark.line + 1, mark.column + 1);
	if (path && *path && off >= 0 && (size_t)off < c->errlen)
		off += snprintf(c->err + off, c->errlen - off, "%s: ", path);
	if (off >= 0 && (size_t)off < c->errlen) {
		va_start(ap, fmt);
		vsnprintf(c->err + off, c->errlen - off, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static int cfg_nomem(struct cfg *c)
{
	if (c->err && c->errlen)
		snprintf(c->err, c->errlen, "%s: out of memory", c->name);
	return -ENOMEM;
}

/*
 * Path helpers: snprintf's result (truncated to len, so a long path is not
 * a warning). Every field of every item gets its path before it is read,
 * in case it is wrong: 20,000 items make a million of them, and vsnprintf
 * was 8% of the parse. The conversions paths use (%s, %zu, %u) are written
 * here; any other one goes to vsnprintf.
 */
static void __attribute__((format(printf, 3, 4))) pathf(char *dst, size_t len, const char *fmt, ...)
{
	char num[24];
	const char *f, *s;
	size_t o = 0, n;
	unsigned long long v;
	va_list ap, ap0;

	if (!len)
		return;
	va_start(ap, fmt);
	va_copy(ap0, ap);
	for (f = fmt; *f; f++) {
		if (*f != '%') {
			if (o + 1 < len)
				dst[o++] = *f;
			continue;
		}
		if (f[1] == 's') {
			s = va_arg(ap, const char *);
			f++;
		} else if (f[1] == 'u' || (f[1] == 'z' && f[2] == 'u')) {
			v = f[1] == 'u' ? va_arg(ap, unsigned int) : va_arg(ap, size_t);
			f += f[1] == 'u' ? 1 : 2;
			n = sizeof(num);
			num[--n] = '\0';
			do
				num[--n] = (char)('0' + v % 10);
			while ((v /= 10));
			s = num + n;
		} else {
			vsnprintf(dst, len, fmt, ap0);
			goto out;
		}
		n = strlen(s);
		if (n > len - 1 - o)
			n = len - 1 - o;
		memcpy(dst + o, s, n);
		o += n;
	}
	dst[o] = '\0';
out:
	va_end(ap0);
	va_end(ap);
}

static yaml_node_t *cfg_node(struct cfg *c, int idx)
{
	return yaml_document_get_node(&c->doc, idx);
}

static bool node_is_null(const yaml_node_t *n)
{
	const char *v = (const char *)n->data.scalar.value;

	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
	       !strcmp(v, "NULL");
}

static const char *node_kind(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_SCALAR_NODE:
		return node_is_null(n) ? "an empty value" : "a scalar";
	case YAML_SEQUENCE_NODE:
		return "a list";
	case YAML_MAPPING_NODE:
		return "a mapping";
	default:
		return "nothing";
	}
}

/* ---- Scalars ---- */

static int get_scalar(struct cfg *c, int idx, const char *path, const char **out)
{
	yaml_node_t *n = cfg_node(c, idx);

	if (n->type != YAML_SCALAR_NODE)
		return cfg_err(c, n->start_mark, path, "expected a string, got %s", node_kind(n));
	/* A "\0" escape would silently cut the string short in C. */
	if (strlen((const char *)n->data.scalar.value) != n->data.scalar.length)
		return cfg_err(c, n->start_mark, path, "contains a NUL character");
	*out = (const char *)n->data.scalar.value;
	return 0;
}

static int dup_str(struct cfg *c, const char *s, char **out)
{
	*out = strdup(s);
	return *out ? 0 : cfg_nomem(c);
}

/*
 * Integers must be plain decimal: "80" in quotes is a string in YAML (and
 * kubectl rejects it), and "080" would be octal to a YAML 1.1 reader.
 */
static int get_uint(struct cfg *c, int idx, const char *path, uint32_t min, uint32_t max,
		    uint32_t *out)
{
	yaml_node_t *n = cfg_node(c, idx);
	const char *v = (const char *)n->data.scalar.value;
	uint64_t x = 0;
	size_t i;

	if (n->type != YAML_SCALAR_NODE)
		return cfg_err(c, n->start_mark, path, "expected an integer, got %s", node_kind(n));
	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return cfg_err(c, n->start_mark, path, "expected an integer, got the string \"%s\"",
			       v);
	for (i = 0; v[i]; i++) {
		if (v[i] < '0' || v[i] > '9' || i >= 10 || (i == 1 && v[0] == '0'))
			return cfg_err(c, n->start_mark, path,
				       "expected a decimal integer, got \"%s\"", v);
		x = x * 10 + (uint64_t)(v[i] - '0');
	}
	if (!i)
		return cfg_err(c, n->start_mark, path, "expected an integer, got an empty value");
	if (x < min || x > max)
		return cfg_err(c, n->start_mark, path, "%llu is out of range (%u-%u)",
			       (unsigned long long)x, min, max);
	*out = (uint32_t)x;
	return 0;
}

/* YAML 1.2 core booleans only; "yes"/"on" are YAML 1.1 and easy to misread. */
static int get_bool(struct cfg *c, int idx, const char *path, bool *out)
{
	static const char *const t[] = { "true", "True", "TRUE" }, *const f[] = { "false", "False",
										  "FALSE" };
	yaml_node_t *n = cfg_node(c, idx);
	const char *v = (const char *)n->data.scalar.value;
	size_t i;

	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		goto bad;
	for (i = 0; i < 3; i++) {
		if (!strcmp(v, t[i])) {
			*out = true;
			return 0;
		}
		if (!strcmp(v, f[i])) {
			*out = false;
			return 0;
		}
	}
bad:
	if (n->type != YAML_SCALAR_NODE)
		return cfg_err(c, n->start_mark, path, "expected true or false, got %s",
			       node_kind(n));
	return cfg_err(c, n->start_mark, path, "expected true or false, got \"%s\"", v);
}

/* One of names[]; the message lists them. */
static int get_enum(struct cfg *c, int idx, const char *path, const char *what,
		    const char *const *names, size_t n, int *out)
{
	char expected[128] = "";
	const char *v;
	size_t i, off = 0;
	int rc;

	rc = get_scalar(c, idx, path, &v);
	if (rc)
		return rc;
	for (i = 0; i < n; i++) {
		if (!strcmp(v, names[i])) {
			*out = (int)i;
			return 0;
		}
		off += snprintf(expected + off, sizeof(expected) - off, "%s%s", i ? ", " : "",
				names[i]);
		if (off >= sizeof(expected))
			break;
	}
	return cfg_err(c, cfg_node(c, idx)->start_mark, path, "unknown %s \"%s\" (expected %s)",
		       what, v, expected);
}

/* ---- Names ---- */

enum name_kind {
	NAME_DNS1035,	/* Service names: [a-z]([-a-z0-9]*[a-z0-9])?, at most 63 */
	NAME_DNS1123,	/* namespaces, port names: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 */
	NAME_SUBDOMAIN, /* slice and node names: dot-separated DNS-1123 labels, at most 253 */
	NAME_IANA_SVC,	/* named targetPort: at most 15, at least one letter, no "--" */
};

static bool is_label(const char *s, size_t len, bool alpha_first)
{
	size_t i;

	if (!len || len > 63)
		return false;
	for (i = 0; i < len; i++) {
		char ch = s[i];
		bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');

		if (!alnum && ch != '-')
			return false;
		if ((i == 0 || i == len - 1) && !alnum)
			return false;
	}
	return !alpha_first || (s[0] >= 'a' && s[0] <= 'z');
}

static bool name_ok(const char *s, enum name_kind k)
{
	size_t len = strlen(s), i;
	const char *p, *dot;
	bool letter = false;

	switch (k) {
	case NAME_DNS1035:
		return is_label(s, len, true);
	case NAME_DNS1123:
		return is_label(s, len, false);
	case NAME_SUBDOMAIN:
		if (!len || len > 253)
			return false;
		for (p = s; (dot = strchr(p, '.')); p = dot + 1)
			if (!is_label(p, (size_t)(dot - p), false))
				return false;
		return is_label(p, strlen(p), false);
	case NAME_IANA_SVC:
		if (len > 15 || !is_label(s, len, false) || strstr(s, "--"))
			return false;
		for (i = 0; i < len; i++)
			letter |= s[i] >= 'a' && s[i] <= 'z';
		return letter;
	}
	return false;
}

static const char *name_rule(enum name_kind k)
{
	switch (k) {
	case NAME_DNS1035:
		return "a DNS-1035 label: at most 63 lowercase letters, digits or '-', "
		       "starting with a letter and ending with a letter or digit";
	case NAME_DNS1123:
		return "a DNS-1123 label: at most 63 lowercase letters, digits or '-', "
		       "starting and ending with a letter or digit";
	case NAME_SUBDOMAIN:
		return "a DNS-1123 subdomain: dot-separated DNS-1123 labels, "
		       "at most 253 characters";
	case NAME_IANA_SVC:
		return "an IANA service name: at most 15 lowercase letters, digits or '-', "
		       "with at least one letter";
	}
	return "";
}

/*
 * Names end up in Service ids ("namespace/name:port/tcp/v4"), so besides
 * matching Kubernetes they keep '/' and ':' out of the parts.
 */
static int get_name(struct cfg *c, int idx, const char *path, enum name_kind k, char **out)
{
	const char *v;
	int rc;

	rc = get_scalar(c, idx, path, &v);
	if (rc)
		return rc;
	if (!name_ok(v, k))
		return cfg_err(c, cfg_node(c, idx)->start_mark, path,
			       "invalid name \"%s\": must be %s", v, name_rule(k));
	return dup_str(c, v, out);
}

/* ---- Mappings and lists ---- */

/*
 * Check that idx is a mapping whose keys are all in fields[] and appear at
 * most once; vals[i] gets the value node of fields[i], or 0 when the field
 * is absent or null (Kubernetes treats null as unset).
 */
static int map_fields(struct cfg *c, int idx, const char *path, const char *what,
		      const char *const *fields, size_t nf, int *vals)
{
	yaml_node_t *n = cfg_node(c, idx), *k, *v;
	yaml_mark_t seen[32];
	yaml_node_pair_t *pr;
	char known[256];
	size_t i, off;

	if (n->type != YAML_MAPPING_NODE)
		return cfg_err(c, n->start_mark, path, "expected a mapping (%s), got %s", what,
			       node_kind(n));
	for (i = 0; i < nf; i++) {
		vals[i] = 0;
		seen[i].line = SIZE_MAX;
	}
	for (pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
		k = cfg_node(c, pr->key);
		v = cfg_node(c, pr->value);
		if (k->type != YAML_SCALAR_NODE)
			return cfg_err(c, k->start_mark, path, "%s keys must be strings, got %s",
				       what, node_kind(k));
		for (i = 0; i < nf; i++)
			if (!strcmp((const char *)k->data.scalar.value, fields[i]))
				break;
		if (i == nf) {
			for (i = 0, off = 0; i < nf && off < sizeof(known); i++)
				off += snprintf(known + off, sizeof(known) - off, "%s%s",
						i ? ", " : "", fields[i]);
			return cfg_err(c, k->start_mark, path,
				       "unknown field \"%s\" in %s (known fields: %s)",
				       (const char *)k->data.scalar.value, what, known);
		}
		if (seen[i].line != SIZE_MAX)
			return cfg_err(c, k->start_mark, path,
				       "duplicate field \"%s\" (first at line %zu)", fields[i],
				       seen[i].line + 1);
		seen[i] = k->start_mark;
		if (!node_is_null(v))
			vals[i] = pr->value;
	}
	return 0;
}

static int need(struct cfg *c, int map_idx, const char *path, const char *what, const int *vals,
		const char *const *fields, size_t i)
{
	if (vals[i])
		return 0;
	return cfg_err(c, cfg_node(c, map_idx)->start_mark, path,
		       "missing required field \"%s\" in %s", fields[i], what);
}

static int get_seq(struct cfg *c, int idx, const char *path, yaml_node_item_t **items, size_t *n)
{
	yaml_node_t *nd = cfg_node(c, idx);

	if (nd->type != YAML_SEQUENCE_NODE)
		return cfg_err(c, nd->start_mark, path, "expected a list, got %s", node_kind(nd));
	*items = nd->data.sequence.items.start;
	*n = (size_t)(nd->data.sequence.items.top - nd->data.sequence.items.start);
	return 0;
}

/* ---- Claims: what must be unique across the file ---- */

static struct claim *claim_add(struct cfg *c, enum claim_kind k, size_t owner, yaml_mark_t mark,
			       const char *path)
{
	struct claims *cl = &c->cl[k];
	struct claim *v;

	if (cl->n == cl->cap) {
		size_t cap = cl->cap ? cl->cap * 2 : 64;

		v = reallocarray(cl->v, cap, sizeof(*v));
		if (!v)
			return NULL;
		cl->v = v;
		cl->cap = cap;
	}
	v = &cl->v[cl->n++];
	memset(v, 0, sizeof(*v));
	v->seq = c->seq++;
	v->owner = owner;
	v->mark = mark;
	pathf(v->path, sizeof(v->path), "%s", path);
	return v;
}

static int claim_key_cmp(const struct claim *a, const struct claim *b)
{
	int r;

	if (a->name) {
		r = strcmp(a->ns, b->ns);
		return r ? r : strcmp(a->name, b->name);
	}
	return memcmp(a->key, b->key, sizeof(a->key));
}

static int claim_cmp(const void *pa, const void *pb)
{
	const struct claim *a = pa, *b = pb;
	int r = claim_key_cmp(a, b);

	if (r)
		return r;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/*
 * Sort the claims of one kind and find the duplicate that comes first in
 * the file; *dup and *first point at it and at the claim it repeats.
 * Sorting keeps this O(n log n) for configs with many thousand Services.
 */
static bool claims_dup(struct claims *cl, const struct claim **dup, const struct claim **first)
{
	size_t i, start = 0;

	*dup = NULL;
	if (cl->n < 2)
		return false;
	qsort(cl->v, cl->n, sizeof(*cl->v), claim_cmp);
	for (i = 1; i < cl->n; i++) {
		if (claim_key_cmp(&cl->v[i], &cl->v[start])) {
			start = i;
			continue;
		}
		if (!*dup || cl->v[i].seq < (*dup)->seq) {
			*dup = &cl->v[i];
			*first = &cl->v[start];
		}
	}
	return *dup != NULL;
}

static const char *proto_name(uint8_t proto)
{
	return proto == IPPROTO_UDP ? "UDP" : "TCP";
}

static int claim_vip(struct cfg *c, size_t si, const struct sp_ip *ip, yaml_mark_t mark,
		     const char *path)
{
	const struct sp_service *s = &c->m.services[si];
	struct claim *cl;
	size_t i;

	for (i = 0; i < s->n_ports; i++) {
		cl = claim_add(c, CK_VIP, si, mark, path);
		if (!cl)
			return cfg_nomem(c);
		cl->key[0] = ip->family;
		memcpy(&cl->key[1], ip->b, 16);
		cl->key[17] = s->ports[i].port >> 8;
		cl->key[18] = s->ports[i].port & 0xff;
		cl->key[19] = s->ports[i].proto;
	}
	return 0;
}

/* ---- Addresses ---- */

static int get_ip(struct cfg *c, int idx, const char *path, struct sp_ip *ip)
{
	static const uint8_t zero[16];
	const char *v;
	int rc;

	rc = get_scalar(c, idx, path, &v);
	if (rc)
		return rc;
	if (sp_ip_parse(v, ip))
		return cfg_err(c, cfg_node(c, idx)->start_mark, path,
			       "\"%s\" is not an IPv4 or IPv6 address", v);
	/* The all-zero address is what NodePort wildcard frontends use. */
	if (!memcmp(ip->b, zero, sizeof(zero)))
		return cfg_err(c, cfg_node(c, idx)->start_mark, path,
			       "\"%s\" is the unspecified address, not a usable address", v);
	return 0;
}

/*
 * A list of addresses. With claim set, each address is registered as a
 * VIP for every port of Service si.
 */
static int get_ip_list(struct cfg *c, int idx, const char *path, struct sp_ip **out, size_t *n,
		       bool claim, size_t si)
{
	char ip_path[PATH_LEN];
	yaml_node_item_t *it;
	size_t cnt, i;
	int rc;

	rc = get_seq(c, idx, path, &it, &cnt);
	if (rc)
		return rc;
	*out = calloc(cnt ? cnt : 1, sizeof(**out));
	if (!*out)
		return cfg_nomem(c);
	*n = cnt;
	for (i = 0; i < cnt; i++) {
		pathf(ip_path, sizeof(ip_path), "%s[%zu]", path, i);
		rc = get_ip(c, it[i], ip_path, &(*out)[i]);
		if (!rc && claim)
			rc = claim_vip(c, si, &(*out)[i], cfg_node(c, it[i])->start_mark, ip_path);
		if (rc)
			return rc;
	}
	return 0;
}

/*
 * loadBalancerSourceRanges: a list of CIDRs of either family (host bits
 * are cleared, as Kubernetes does). Unlike the API source, which skips
 * an invalid CIDR with a warning as kube-proxy does, a file with one is
 * refused: its author is there to fix it.
 */
static int get_cidr_list(struct cfg *c, int idx, const char *path, struct sp_cidr **out,
			 size_t *n)
{
	char p[PATH_LEN];
	yaml_node_item_t *it;
	const char *v;
	size_t cnt, i;
	int rc;

	rc = get_seq(c, idx, path, &it, &cnt);
	if (rc)
		return rc;
	*out = calloc(cnt ? cnt : 1, sizeof(**out));
	if (!*out)
		return cfg_nomem(c);
	*n = cnt;
	for (i = 0; i < cnt; i++) {
		pathf(p, sizeof(p), "%s[%zu]", path, i);
		rc = get_scalar(c, it[i], p, &v);
		if (rc)
			return rc;
		if (sp_cidr_parse(v, &(*out)[i]))
			return cfg_err(c, cfg_node(c, it[i])->start_mark, p,
				       "\"%s\" is not a CIDR (address/prefix length, e.g. "
				       "203.0.113.0/24 or 2001:db8::/32)",
				       v);
	}
	return 0;
}

/* ---- Services ---- */

enum {
	SF_NAME,
	SF_NAMESPACE,
	SF_LABELS,
	SF_TYPE,
	SF_CLUSTER_IP,
	SF_CLUSTER_IPS,
	SF_EXTERNAL_IPS,
	SF_LB_IPS,
	SF_ETP,
	SF_ITP,
	SF_AFFINITY,
	SF_AFFINITY_TIMEOUT,
	SF_PORTS,
	SF_HCNP,
	SF_SRC_RANGES,
	SF_MAX,
};

static const char *const svc_fields[SF_MAX] = {
	[SF_NAME] = "name",
	[SF_NAMESPACE] = "namespace",
	[SF_LABELS] = "labels",
	[SF_TYPE] = "type",
	[SF_CLUSTER_IP] = "clusterIP",
	[SF_CLUSTER_IPS] = "clusterIPs",
	[SF_EXTERNAL_IPS] = "externalIPs",
	[SF_LB_IPS] = "loadBalancerIPs",
	[SF_ETP] = "externalTrafficPolicy",
	[SF_ITP] = "internalTrafficPolicy",
	[SF_AFFINITY] = "sessionAffinity",
	[SF_AFFINITY_TIMEOUT] = "sessionAffinityTimeoutSeconds",
	[SF_PORTS] = "ports",
	[SF_HCNP] = "healthCheckNodePort",
	[SF_SRC_RANGES] = "loadBalancerSourceRanges",
};

enum { SPF_NAME, SPF_PROTOCOL, SPF_PORT, SPF_TARGET_PORT, SPF_NODE_PORT, SPF_MAX };

static const char *const svc_port_fields[SPF_MAX] = {
	[SPF_NAME] = "name",	      [SPF_PROTOCOL] = "protocol",
	[SPF_PORT] = "port",	      [SPF_TARGET_PORT] = "targetPort",
	[SPF_NODE_PORT] = "nodePort",
};

static const char *const proto_names[] = { "TCP", "UDP" };
static const uint8_t proto_nums[] = { IPPROTO_TCP, IPPROTO_UDP };

static int get_proto(struct cfg *c, int idx, const char *path, uint8_t *proto)
{
	const char *v;
	int rc, i;

	if (!idx) {
		*proto = IPPROTO_TCP; /* Kubernetes' default */
		return 0;
	}
	rc = get_scalar(c, idx, path, &v);
	if (rc)
		return rc;
	if (!strcmp(v, "SCTP"))
		return cfg_err(c, cfg_node(c, idx)->start_mark, path,
			       "protocol SCTP is not supported (TCP or UDP)");
	rc = get_enum(c, idx, path, "protocol", proto_names, 2, &i);
	if (rc)
		return rc;
	*proto = proto_nums[i];
	return 0;
}

/* The labels mapping: any string pairs; only the proxy-name label means anything here. */
static int get_labels(struct cfg *c, int idx, const char *path, char **proxy_name)
{
	yaml_node_t *n = cfg_node(c, idx), *k, *v, *k2;
	char lpath[PATH_LEN];
	yaml_node_pair_t *pr, *pr2;
	const char *val;
	int rc;

	if (n->type != YAML_MAPPING_NODE)
		return cfg_err(c, n->start_mark, path, "expected a mapping of labels, got %s",
			       node_kind(n));
	for (pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
		k = cfg_node(c, pr->key);
		v = cfg_node(c, pr->value);
		rc = get_scalar(c, pr->key, path, &val);
		if (rc)
			return rc;
		for (pr2 = n->data.mapping.pairs.start; pr2 < pr; pr2++) {
			k2 = cfg_node(c, pr2->key);
			if (!strcmp((const char *)k2->data.scalar.value, val))
				return cfg_err(c, k->start_mark, path,
					       "duplicate label \"%s\" (first at line %zu)", val,
					       k2->start_mark.line + 1);
		}
		pathf(lpath, sizeof(lpath), "%s.\"%s\"", path, (const char *)k->data.scalar.value);
		/* A null label value is an empty one, as in Kubernetes. */
		val = "";
		if (!node_is_null(v)) {
			rc = get_scalar(c, pr->value, lpath, &val);
			if (rc)
				return rc;
		}
		if (strcmp((const char *)k->data.scalar.value, LABEL_PROXY_NAME))
			continue;
		rc = dup_str(c, val, proxy_name);
		if (rc)
			return rc;
	}
	return 0;
}

/* One Service port; *np_mark gets the position of its nodePort, if any. */
static int parse_svc_port(struct cfg *c, int idx, const char *path, struct sp_service *s,
			  struct sp_svc_port *p, yaml_mark_t *np_mark)
{
	char fp[PATH_LEN];
	int v[SPF_MAX], rc;
	uint32_t x;
	const char *tp;
	yaml_node_t *tn;

	rc = map_fields(c, idx, path, "Service port", svc_port_fields, SPF_MAX, v);
	if (rc)
		return rc;
	if (v[SPF_NAME]) {
		pathf(fp, sizeof(fp), "%s.name", path);
		rc = get_name(c, v[SPF_NAME], fp, NAME_DNS1123, &p->name);
	} else {
		rc = dup_str(c, "", &p->name);
	}
	if (rc)
		return rc;
	pathf(fp, sizeof(fp), "%s.protocol", path);
	rc = get_proto(c, v[SPF_PROTOCOL], fp, &p->proto);
	if (rc)
		return rc;
	rc = need(c, idx, path, "Service port", v, svc_port_fields, SPF_PORT);
	if (rc)
		return rc;
	pathf(fp, sizeof(fp), "%s.port", path);
	rc = get_uint(c, v[SPF_PORT], fp, 1, 65535, &x);
	if (rc)
		return rc;
	p->port = (uint16_t)x;
	/* targetPort: a number, or the name of a container port; default: port. */
	p->target_port = p->port;
	if (v[SPF_TARGET_PORT]) {
		pathf(fp, sizeof(fp), "%s.targetPort", path);
		tn = cfg_node(c, v[SPF_TARGET_PORT]);
		if (tn->type == YAML_SCALAR_NODE &&
		    tn->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
		    tn->data.scalar.value[0] >= '0' && tn->data.scalar.value[0] <= '9') {
			rc = get_uint(c, v[SPF_TARGET_PORT], fp, 1, 65535, &x);
			if (rc)
				return rc;
			p->target_port = (uint16_t)x;
		} else {
			rc = get_scalar(c, v[SPF_TARGET_PORT], fp, &tp);
			if (rc)
				return rc;
			if (!name_ok(tp, NAME_IANA_SVC))
				return cfg_err(c, tn->start_mark, fp,
					       "\"%s\" is neither a port number (1-65535) nor a "
					       "port name (%s)",
					       tp, name_rule(NAME_IANA_SVC));
			rc = dup_str(c, tp, &p->target_port_name);
			if (rc)
				return rc;
			p->target_port = 0;
		}
	}
	if (v[SPF_NODE_PORT]) {
		pathf(fp, sizeof(fp), "%s.nodePort", path);
		if (s->type == SP_SVC_CLUSTER_IP)
			return cfg_err(c, cfg_node(c, v[SPF_NODE_PORT])->start_mark, fp,
				       "nodePort requires type NodePort or LoadBalancer");
		/*
		 * Any port is accepted: Kubernetes' 30000-32767 is only its
		 * default allocation range (--service-node-port-range).
		 */
		rc = get_uint(c, v[SPF_NODE_PORT], fp, 1, 65535, &x);
		if (rc)
			return rc;
		p->node_port = (uint16_t)x;
		*np_mark = cfg_node(c, v[SPF_NODE_PORT])->start_mark;
	}
	return 0;
}

static int parse_svc_ports(struct cfg *c, int svc_idx, int idx, const char *path, size_t si)
{
	struct sp_service *s = &c->m.services[si];
	char pp[PATH_LEN];
	yaml_node_item_t *it;
	struct sp_svc_port *p, *q;
	yaml_mark_t np_mark;
	struct claim *cl;
	size_t n, i, j;
	int rc;

	if (!idx) {
		/* Headless Services carry no VIP, so their ports are optional. */
		if (s->headless)
			return 0;
		return cfg_err(c, cfg_node(c, svc_idx)->start_mark, path,
			       "missing required field \"ports\" in Service");
	}
	pathf(pp, sizeof(pp), "%s.ports", path);
	rc = get_seq(c, idx, pp, &it, &n);
	if (rc)
		return rc;
	if (!n && !s->headless)
		return cfg_err(c, cfg_node(c, idx)->start_mark, pp,
			       "a Service needs at least one port");
	s->ports = calloc(n ? n : 1, sizeof(*s->ports));
	if (!s->ports)
		return cfg_nomem(c);
	s->n_ports = n;
	for (i = 0; i < n; i++) {
		pathf(pp, sizeof(pp), "%s.ports[%zu]", path, i);
		p = &s->ports[i];
		rc = parse_svc_port(c, it[i], pp, s, p, &np_mark);
		if (rc)
			return rc;
		/* Kubernetes' rules: names are required when there are several, and unique. */
		if (n > 1 && !*p->name)
			return cfg_err(c, cfg_node(c, it[i])->start_mark, pp,
				       "missing required field \"name\" in Service port: "
				       "a Service with several ports must name each one");
		for (j = 0; j < i; j++) {
			q = &s->ports[j];
			if (*p->name && !strcmp(p->name, q->name))
				return cfg_err(c, cfg_node(c, it[i])->start_mark, pp,
					       "duplicate port name \"%s\" (also ports[%zu])",
					       p->name, j);
			if (p->port == q->port && p->proto == q->proto)
				return cfg_err(c, cfg_node(c, it[i])->start_mark, pp,
					       "duplicate port %u/%s (also ports[%zu])", p->port,
					       proto_name(p->proto), j);
		}
		if (p->node_port && !s->headless) {
			pathf(pp, sizeof(pp), "%s.ports[%zu].nodePort", path, i);
			cl = claim_add(c, CK_NODEPORT, si, np_mark, pp);
			if (!cl)
				return cfg_nomem(c);
			cl->key[0] = p->node_port >> 8;
			cl->key[1] = p->node_port & 0xff;
			cl->key[2] = p->proto;
		}
	}
	return 0;
}

/*
 * clusterIP / clusterIPs, as in Kubernetes: clusterIPs is the full list
 * (one address per family), clusterIP its first entry, "None" = headless.
 * Either may be given; when both are, they must agree.
 */
static int parse_cluster_ips(struct cfg *c, int svc_idx, const int *v, const char *path,
			     struct sp_service *s)
{
	char fp[PATH_LEN], ip_path[PATH_LEN];
	struct sp_ip single = { 0 };
	bool single_none = false;
	yaml_node_item_t *it;
	const char *str;
	size_t n, i;
	int rc;

	if (!v[SF_CLUSTER_IP] && !v[SF_CLUSTER_IPS])
		return cfg_err(c, cfg_node(c, svc_idx)->start_mark, path,
			       "missing required field \"clusterIPs\" (or \"clusterIP\") in "
			       "Service; use \"None\" for a headless Service");
	if (v[SF_CLUSTER_IP]) {
		pathf(fp, sizeof(fp), "%s.clusterIP", path);
		rc = get_scalar(c, v[SF_CLUSTER_IP], fp, &str);
		if (rc)
			return rc;
		if (!strcmp(str, "None"))
			single_none = true;
		else if ((rc = get_ip(c, v[SF_CLUSTER_IP], fp, &single)))
			return rc;
	}
	if (!v[SF_CLUSTER_IPS]) {
		s->headless = single_none;
		if (single_none)
			return 0;
		s->cluster_ips = calloc(1, sizeof(*s->cluster_ips));
		if (!s->cluster_ips)
			return cfg_nomem(c);
		s->cluster_ips[0] = single;
		s->n_cluster_ips = 1;
		return 0;
	}
	pathf(fp, sizeof(fp), "%s.clusterIPs", path);
	rc = get_seq(c, v[SF_CLUSTER_IPS], fp, &it, &n);
	if (rc)
		return rc;
	if (!n)
		return cfg_err(c, cfg_node(c, v[SF_CLUSTER_IPS])->start_mark, fp,
			       "needs at least one address (or \"None\")");
	for (i = 0; i < n; i++) {
		yaml_node_t *in = cfg_node(c, it[i]);

		if (in->type == YAML_SCALAR_NODE &&
		    !strcmp((const char *)in->data.scalar.value, "None")) {
			if (n > 1) {
				pathf(ip_path, sizeof(ip_path), "%s[%zu]", fp, i);
				return cfg_err(c, in->start_mark, ip_path,
					       "\"None\" (headless) must be the only entry");
			}
			s->headless = true;
		}
	}
	if (v[SF_CLUSTER_IP] && single_none != s->headless)
		return cfg_err(c, cfg_node(c, v[SF_CLUSTER_IPS])->start_mark, fp,
			       "clusterIP and clusterIPs[0] differ (clusterIPs[0] must equal "
			       "clusterIP)");
	if (s->headless)
		return 0;
	rc = get_ip_list(c, v[SF_CLUSTER_IPS], fp, &s->cluster_ips, &s->n_cluster_ips, false, 0);
	if (rc)
		return rc;
	if (n > 2)
		return cfg_err(c, cfg_node(c, it[2])->start_mark, fp,
			       "at most two addresses (one IPv4 and one IPv6)");
	if (n == 2 && s->cluster_ips[0].family == s->cluster_ips[1].family)
		return cfg_err(c, cfg_node(c, it[1])->start_mark, fp,
			       "two IPv%u addresses: a dual-stack Service has one IPv4 and one "
			       "IPv6 clusterIP",
			       s->cluster_ips[0].family);
	if (v[SF_CLUSTER_IP] && sp_ip_cmp(&single, &s->cluster_ips[0]))
		return cfg_err(c, cfg_node(c, v[SF_CLUSTER_IPS])->start_mark, fp,
			       "clusterIP and clusterIPs[0] differ (clusterIPs[0] must equal "
			       "clusterIP)");
	return 0;
}

/* Register the clusterIPs as VIPs, with the position of each address. */
static int claim_cluster_ips(struct cfg *c, const int *v, const char *path, size_t si)
{
	const struct sp_service *s = &c->m.services[si];
	char ip_path[PATH_LEN];
	yaml_node_t *n;
	size_t i;
	int rc;

	if (!v[SF_CLUSTER_IPS]) {
		pathf(ip_path, sizeof(ip_path), "%s.clusterIP", path);
		return claim_vip(c, si, &s->cluster_ips[0],
				 cfg_node(c, v[SF_CLUSTER_IP])->start_mark, ip_path);
	}
	n = cfg_node(c, v[SF_CLUSTER_IPS]);
	for (i = 0; i < s->n_cluster_ips; i++) {
		pathf(ip_path, sizeof(ip_path), "%s.clusterIPs[%zu]", path, i);
		rc = claim_vip(c, si, &s->cluster_ips[i],
			       cfg_node(c, n->data.sequence.items.start[i])->start_mark, ip_path);
		if (rc)
			return rc;
	}
	return 0;
}

static const char *const type_names[] = { "ClusterIP", "NodePort", "LoadBalancer" };
static const char *const policy_names[] = { "Cluster", "Local" };
static const char *const affinity_names[] = { "None", "ClientIP" };

static int parse_service(struct cfg *c, int idx, size_t si)
{
	struct sp_service *s = &c->m.services[si];
	char path[PATH_LEN], fp[PATH_LEN];
	const char *str;
	int v[SF_MAX], rc, e;
	uint32_t x;
	struct claim *cl;

	pathf(path, sizeof(path), "services[%zu]", si);
	rc = map_fields(c, idx, path, "Service", svc_fields, SF_MAX, v);
	if (rc)
		return rc;
	rc = need(c, idx, path, "Service", v, svc_fields, SF_NAME);
	if (rc)
		return rc;
	pathf(fp, sizeof(fp), "%s.name", path);
	rc = get_name(c, v[SF_NAME], fp, NAME_DNS1035, &s->name);
	if (rc)
		return rc;
	if (v[SF_NAMESPACE]) {
		pathf(fp, sizeof(fp), "%s.namespace", path);
		rc = get_name(c, v[SF_NAMESPACE], fp, NAME_DNS1123, &s->ns);
	} else {
		rc = dup_str(c, DEFAULT_NAMESPACE, &s->ns);
	}
	if (rc)
		return rc;
	pathf(fp, sizeof(fp), "%s.name", path);
	cl = claim_add(c, CK_SVC_NAME, si, cfg_node(c, v[SF_NAME])->start_mark, fp);
	if (!cl)
		return cfg_nomem(c);
	cl->ns = s->ns;
	cl->name = s->name;

	if (v[SF_LABELS]) {
		pathf(fp, sizeof(fp), "%s.labels", path);
		rc = get_labels(c, v[SF_LABELS], fp, &s->proxy_name);
		if (rc)
			return rc;
	}
	s->type = SP_SVC_CLUSTER_IP;
	if (v[SF_TYPE]) {
		pathf(fp, sizeof(fp), "%s.type", path);
		rc = get_scalar(c, v[SF_TYPE], fp, &str);
		if (rc)
			return rc;
		if (!strcmp(str, "ExternalName"))
			return cfg_err(c, cfg_node(c, v[SF_TYPE])->start_mark, fp,
				       "type ExternalName is not supported: it is a DNS alias "
				       "with no virtual IP to proxy");
		rc = get_enum(c, v[SF_TYPE], fp, "Service type", type_names, 3, &e);
		if (rc)
			return rc;
		s->type = (enum sp_svc_type)e;
	}
	rc = parse_cluster_ips(c, idx, v, path, s);
	if (rc)
		return rc;
	if (s->headless && s->type != SP_SVC_CLUSTER_IP)
		return cfg_err(c, cfg_node(c, v[SF_TYPE])->start_mark, path,
			       "clusterIP \"None\" (headless) requires type ClusterIP");
	rc = parse_svc_ports(c, idx, v[SF_PORTS], path, si);
	if (rc)
		return rc;
	/* Headless Services are ignored by the proxy: their addresses claim nothing. */
	if (!s->headless) {
		rc = claim_cluster_ips(c, v, path, si);
		if (rc)
			return rc;
	}
	if (v[SF_EXTERNAL_IPS]) {
		pathf(fp, sizeof(fp), "%s.externalIPs", path);
		rc = get_ip_list(c, v[SF_EXTERNAL_IPS], fp, &s->external_ips, &s->n_external_ips,
				 !s->headless, si);
		if (rc)
			return rc;
	}
	if (v[SF_LB_IPS]) {
		pathf(fp, sizeof(fp), "%s.loadBalancerIPs", path);
		if (s->type != SP_SVC_LOAD_BALANCER)
			return cfg_err(c, cfg_node(c, v[SF_LB_IPS])->start_mark, fp,
				       "loadBalancerIPs requires type LoadBalancer");
		rc = get_ip_list(c, v[SF_LB_IPS], fp, &s->lb_ips, &s->n_lb_ips, true, si);
		if (rc)
			return rc;
	}
	if (v[SF_SRC_RANGES]) {
		pathf(fp, sizeof(fp), "%s.loadBalancerSourceRanges", path);
		if (s->type != SP_SVC_LOAD_BALANCER)
			return cfg_err(c, cfg_node(c, v[SF_SRC_RANGES])->start_mark, fp,
				       "loadBalancerSourceRanges requires type LoadBalancer");
		rc = get_cidr_list(c, v[SF_SRC_RANGES], fp, &s->src_ranges, &s->n_src_ranges);
		if (rc)
			return rc;
	}
	if (v[SF_ETP]) {
		pathf(fp, sizeof(fp), "%s.externalTrafficPolicy", path);
		rc = get_enum(c, v[SF_ETP], fp, "traffic policy", policy_names, 2, &e);
		if (rc)
			return rc;
		s->etp_local = e == 1;
	}
	if (v[SF_ITP]) {
		pathf(fp, sizeof(fp), "%s.internalTrafficPolicy", path);
		rc = get_enum(c, v[SF_ITP], fp, "traffic policy", policy_names, 2, &e);
		if (rc)
			return rc;
		s->itp_local = e == 1;
	}
	if (v[SF_AFFINITY]) {
		pathf(fp, sizeof(fp), "%s.sessionAffinity", path);
		rc = get_enum(c, v[SF_AFFINITY], fp, "session affinity", affinity_names, 2, &e);
		if (rc)
			return rc;
		s->affinity_client_ip = e == 1;
	}
	s->affinity_timeout = AFFINITY_TIMEOUT_DEFAULT;
	if (v[SF_AFFINITY_TIMEOUT]) {
		pathf(fp, sizeof(fp), "%s.sessionAffinityTimeoutSeconds", path);
		rc = get_uint(c, v[SF_AFFINITY_TIMEOUT], fp, 1, AFFINITY_TIMEOUT_MAX, &x);
		if (rc)
			return rc;
		s->affinity_timeout = x;
	}
	if (v[SF_HCNP]) {
		/* As Kubernetes' validation: only a LoadBalancer Service with
		 * externalTrafficPolicy Local needs a health check, and the port
		 * comes from the node port range, so no nodePort may share it. */
		pathf(fp, sizeof(fp), "%s.healthCheckNodePort", path);
		rc = get_uint(c, v[SF_HCNP], fp, 1, 65535, &x);
		if (rc)
			return rc;
		if (s->type != SP_SVC_LOAD_BALANCER || !s->etp_local)
			return cfg_err(c, cfg_node(c, v[SF_HCNP])->start_mark, fp,
				       "healthCheckNodePort may only be set when type is "
				       "LoadBalancer and externalTrafficPolicy is Local");
		s->health_check_node_port = x;
		cl = claim_add(c, CK_NODEPORT, si, cfg_node(c, v[SF_HCNP])->start_mark, fp);
		if (!cl)
			return cfg_nomem(c);
		cl->key[0] = x >> 8;
		cl->key[1] = x & 0xff;
		cl->key[2] = IPPROTO_TCP;
	}
	return 0;
}

/* ---- EndpointSlices ---- */

enum { LF_NAME, LF_NAMESPACE, LF_SERVICE_NAME, LF_ADDRESS_TYPE, LF_PORTS, LF_ENDPOINTS, LF_MAX };

static const char *const slice_fields[LF_MAX] = {
	[LF_NAME] = "name",
	[LF_NAMESPACE] = "namespace",
	[LF_SERVICE_NAME] = "serviceName",
	[LF_ADDRESS_TYPE] = "addressType",
	[LF_PORTS] = "ports",
	[LF_ENDPOINTS] = "endpoints",
};

enum { EPF_NAME, EPF_PROTOCOL, EPF_PORT, EPF_MAX };
static const char *const ep_port_fields[EPF_MAX] = { "name", "protocol", "port" };

enum { EF_ADDRESSES, EF_CONDITIONS, EF_NODE_NAME, EF_MAX };
static const char *const ep_fields[EF_MAX] = { "addresses", "conditions", "nodeName" };

enum { CF_READY, CF_SERVING, CF_TERMINATING, CF_MAX };
static const char *const cond_fields[CF_MAX] = { "ready", "serving", "terminating" };

static const char *const addr_type_names[] = { "IPv4", "IPv6" };

static int parse_slice_ports(struct cfg *c, int idx, const char *path, struct sp_slice *sl)
{
	char pp[PATH_LEN], fp[PATH_LEN];
	yaml_node_item_t *it;
	struct sp_ep_port *p;
	size_t n, i, j;
	int v[EPF_MAX], rc;
	uint32_t x;

	pathf(pp, sizeof(pp), "%s.ports", path);
	rc = get_seq(c, idx, pp, &it, &n);
	if (rc)
		return rc;
	sl->ports = calloc(n ? n : 1, sizeof(*sl->ports));
	if (!sl->ports)
		return cfg_nomem(c);
	sl->n_ports = n;
	for (i = 0; i < n; i++) {
		p = &sl->ports[i];
		pathf(pp, sizeof(pp), "%s.ports[%zu]", path, i);
		rc = map_fields(c, it[i], pp, "EndpointSlice port", ep_port_fields, EPF_MAX, v);
		if (rc)
			return rc;
		if (v[EPF_NAME]) {
			pathf(fp, sizeof(fp), "%s.name", pp);
			rc = get_name(c, v[EPF_NAME], fp, NAME_DNS1123, &p->name);
		} else {
			rc = dup_str(c, "", &p->name);
		}
		if (rc)
			return rc;
		pathf(fp, sizeof(fp), "%s.protocol", pp);
		rc = get_proto(c, v[EPF_PROTOCOL], fp, &p->proto);
		if (rc)
			return rc;
		rc = need(c, it[i], pp, "EndpointSlice port", v, ep_port_fields, EPF_PORT);
		if (rc)
			return rc;
		pathf(fp, sizeof(fp), "%s.port", pp);
		rc = get_uint(c, v[EPF_PORT], fp, 1, 65535, &x);
		if (rc)
			return rc;
		p->port = (uint16_t)x;
		/* Ports are matched to the Service's by name and protocol: those must be unique. */
		for (j = 0; j < i; j++)
			if (!strcmp(p->name, sl->ports[j].name) && p->proto == sl->ports[j].proto)
				return cfg_err(
					c, cfg_node(c, it[i])->start_mark, pp,
					"duplicate port name \"%s\" for %s (also ports[%zu])",
					p->name, proto_name(p->proto), j);
	}
	return 0;
}

static int parse_conditions(struct cfg *c, int idx, const char *path, struct sp_endpoint *ep)
{
	char fp[PATH_LEN];
	int v[CF_MAX], rc;

	/* Kubernetes: ready unset = true; serving unset = ready; terminating unset = false. */
	ep->ready = true;
	ep->terminating = false;
	if (idx) {
		rc = map_fields(c, idx, path, "endpoint conditions", cond_fields, CF_MAX, v);
		if (rc)
			return rc;
		if (v[CF_READY]) {
			pathf(fp, sizeof(fp), "%s.ready", path);
			rc = get_bool(c, v[CF_READY], fp, &ep->ready);
			if (rc)
				return rc;
		}
		ep->serving = ep->ready;
		if (v[CF_SERVING]) {
			pathf(fp, sizeof(fp), "%s.serving", path);
			rc = get_bool(c, v[CF_SERVING], fp, &ep->serving);
			if (rc)
				return rc;
		}
		if (v[CF_TERMINATING]) {
			pathf(fp, sizeof(fp), "%s.terminating", path);
			rc = get_bool(c, v[CF_TERMINATING], fp, &ep->terminating);
			if (rc)
				return rc;
		}
		return 0;
	}
	ep->serving = ep->ready;
	return 0;
}

static int parse_endpoint(struct cfg *c, int idx, const char *path, struct sp_slice *sl,
			  struct sp_endpoint *ep)
{
	char fp[PATH_LEN], ap[PATH_LEN];
	yaml_node_item_t *it;
	struct sp_ip ip;
	size_t n, i;
	int v[EF_MAX], rc;

	rc = map_fields(c, idx, path, "endpoint", ep_fields, EF_MAX, v);
	if (rc)
		return rc;
	rc = need(c, idx, path, "endpoint", v, ep_fields, EF_ADDRESSES);
	if (rc)
		return rc;
	pathf(fp, sizeof(fp), "%s.addresses", path);
	rc = get_seq(c, v[EF_ADDRESSES], fp, &it, &n);
	if (rc)
		return rc;
	if (!n)
		return cfg_err(c, cfg_node(c, v[EF_ADDRESSES])->start_mark, fp,
			       "an endpoint needs at least one address");
	/* Only the first address is used (as kube-proxy does); all must be valid. */
	for (i = 0; i < n; i++) {
		pathf(ap, sizeof(ap), "%s[%zu]", fp, i);
		rc = get_ip(c, it[i], ap, &ip);
		if (rc)
			return rc;
		if (ip.family != sl->family)
			return cfg_err(c, cfg_node(c, it[i])->start_mark, ap,
				       "address family mismatch: %s is an IPv%u address but the "
				       "slice's addressType is IPv%u",
				       (const char *)cfg_node(c, it[i])->data.scalar.value,
				       ip.family, sl->family);
		if (!i)
			ep->addr = ip;
	}
	pathf(fp, sizeof(fp), "%s.conditions", path);
	rc = parse_conditions(c, v[EF_CONDITIONS], fp, ep);
	if (rc)
		return rc;
	if (v[EF_NODE_NAME]) {
		char *node;

		pathf(fp, sizeof(fp), "%s.nodeName", path);
		rc = get_name(c, v[EF_NODE_NAME], fp, NAME_SUBDOMAIN, &node);
		if (rc)
			return rc;
		rc = sp_ep_set_topo(ep, node, NULL, NULL);
		free(node);
		if (rc)
			return cfg_nomem(c);
	}
	return 0;
}

/*
 * A slice for a Service the file does not define is almost always a typo in
 * a static file (the Kubernetes source tolerates it: objects arrive in any
 * order). Needs the Service name claims sorted, which check_dups did
 * before any slice is parsed.
 */
static bool slice_service_exists(const struct cfg *c, const struct sp_slice *sl)
{
	struct claim key = { .ns = sl->ns, .name = sl->service_name };
	const struct claims *cl = &c->cl[CK_SVC_NAME];
	size_t lo = 0, hi = cl->n, mid;
	int r;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		r = claim_key_cmp(&key, &cl->v[mid]);
		if (!r)
			return true;
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return false;
}

static int parse_slice(struct cfg *c, int idx, size_t li)
{
	struct sp_slice *sl = &c->m.slices[li];
	char path[PATH_LEN], fp[PATH_LEN];
	yaml_node_item_t *it;
	struct claim *cl;
	size_t n, i;
	int v[LF_MAX], rc, e;

	pathf(path, sizeof(path), "endpointSlices[%zu]", li);
	rc = map_fields(c, idx, path, "EndpointSlice", slice_fields, LF_MAX, v);
	if (rc)
		return rc;
	rc = need(c, idx, path, "EndpointSlice", v, slice_fields, LF_NAME);
	if (!rc)
		rc = need(c, idx, path, "EndpointSlice", v, slice_fields, LF_SERVICE_NAME);
	if (!rc)
		rc = need(c, idx, path, "EndpointSlice", v, slice_fields, LF_ADDRESS_TYPE);
	if (rc)
		return rc;
	pathf(fp, sizeof(fp), "%s.name", path);
	rc = get_name(c, v[LF_NAME], fp, NAME_SUBDOMAIN, &sl->name);
	if (rc)
		return rc;
	if (v[LF_NAMESPACE]) {
		pathf(fp, sizeof(fp), "%s.namespace", path);
		rc = get_name(c, v[LF_NAMESPACE], fp, NAME_DNS1123, &sl->ns);
	} else {
		rc = dup_str(c, DEFAULT_NAMESPACE, &sl->ns);
	}
	if (rc)
		return rc;
	pathf(fp, sizeof(fp), "%s.name", path);
	cl = claim_add(c, CK_SLICE_NAME, li, cfg_node(c, v[LF_NAME])->start_mark, fp);
	if (!cl)
		return cfg_nomem(c);
	cl->ns = sl->ns;
	cl->name = sl->name;
	pathf(fp, sizeof(fp), "%s.serviceName", path);
	rc = get_name(c, v[LF_SERVICE_NAME], fp, NAME_DNS1035, &sl->service_name);
	if (rc)
		return rc;
	if (!c->part && !slice_service_exists(c, sl))
		return cfg_err(c, cfg_node(c, v[LF_SERVICE_NAME])->start_mark, fp,
			       "serviceName \"%s\" matches no Service in namespace \"%s\"",
			       sl->service_name, sl->ns);
	pathf(fp, sizeof(fp), "%s.addressType", path);
	{
		yaml_node_t *at = cfg_node(c, v[LF_ADDRESS_TYPE]);

		if (at->type == YAML_SCALAR_NODE &&
		    !strcmp((const char *)at->data.scalar.value, "FQDN"))
			return cfg_err(c, at->start_mark, fp,
				       "addressType FQDN is not supported (IPv4 or IPv6)");
	}
	rc = get_enum(c, v[LF_ADDRESS_TYPE], fp, "addressType", addr_type_names, 2, &e);
	if (rc)
		return rc;
	sl->family = e ? SP_FAMILY_V6 : SP_FAMILY_V4;
	if (v[LF_PORTS]) {
		rc = parse_slice_ports(c, v[LF_PORTS], path, sl);
		if (rc)
			return rc;
	}
	if (!v[LF_ENDPOINTS])
		return 0;
	pathf(fp, sizeof(fp), "%s.endpoints", path);
	rc = get_seq(c, v[LF_ENDPOINTS], fp, &it, &n);
	if (rc)
		return rc;
	sl->endpoints = calloc(n ? n : 1, sizeof(*sl->endpoints));
	if (!sl->endpoints)
		return cfg_nomem(c);
	sl->n_endpoints = n;
	for (i = 0; i < n; i++) {
		pathf(fp, sizeof(fp), "%s.endpoints[%zu]", path, i);
		rc = parse_endpoint(c, it[i], fp, sl, &sl->endpoints[i]);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- Whole-file checks ---- */

static void vip_str(const struct claim *cl, char *buf, size_t len)
{
	struct sp_ip ip = { .family = cl->key[0] };
	char a[INET6_ADDRSTRLEN];

	memcpy(ip.b, &cl->key[1], 16);
	sp_ip_str(&ip, a, sizeof(a));
	pathf(buf, len, ip.family == SP_FAMILY_V6 ? "[%s]:%u/%s" : "%s:%u/%s", a,
	      (unsigned int)(cl->key[17] << 8 | cl->key[18]), proto_name(cl->key[19]));
}

static int check_dups(struct cfg *c, enum claim_kind k)
{
	const struct claim *d, *f;
	const struct sp_service *fs;
	char vip[64];

	if (!claims_dup(&c->cl[k], &d, &f))
		return 0;
	switch (k) {
	case CK_SVC_NAME:
		return cfg_err(c, d->mark, d->path,
			       "duplicate Service name \"%s/%s\" (first defined at %s, line %zu)",
			       d->ns, d->name, f->path, f->mark.line + 1);
	case CK_SLICE_NAME:
		return cfg_err(
			c, d->mark, d->path,
			"duplicate EndpointSlice name \"%s/%s\" (first defined at %s, line %zu)",
			d->ns, d->name, f->path, f->mark.line + 1);
	case CK_VIP:
		fs = &c->m.services[f->owner];
		vip_str(d, vip, sizeof(vip));
		if (f->owner == d->owner)
			return cfg_err(
				c, d->mark, d->path,
				"duplicate VIP %s: this Service already uses it at %s (line %zu)",
				vip, f->path, f->mark.line + 1);
		return cfg_err(c, d->mark, d->path,
			       "duplicate VIP %s: already used by Service %s/%s at %s (line %zu)",
			       vip, fs->ns, fs->name, f->path, f->mark.line + 1);
	case CK_NODEPORT:
		fs = &c->m.services[f->owner];
		return cfg_err(c, d->mark, d->path,
			       "duplicate nodePort %u/%s: already used by Service %s/%s at %s "
			       "(line %zu)",
			       (unsigned int)(d->key[0] << 8 | d->key[1]), proto_name(d->key[2]),
			       fs->ns, fs->name, f->path, f->mark.line + 1);
	case CK_MAX:
		break;
	}
	return -EINVAL;
}

enum { TF_SERVICES, TF_SLICES, TF_MAX };
static const char *const top_fields[TF_MAX] = { "services", "endpointSlices" };

static int parse_root(struct cfg *c)
{
	yaml_node_t *root = yaml_document_get_root_node(&c->doc);
	yaml_node_item_t *svcs = NULL, *sls = NULL;
	size_t n_svcs = 0, n_sls = 0, i;
	int v[TF_MAX], rc;

	yaml_mark_t start = { 0 };

	/* "---" alone makes a document with no node. */
	if (!root)
		return cfg_err(c, start, NULL,
			       "the file has no content (expected a mapping with "
			       "\"services\" and \"endpointSlices\")");
	rc = map_fields(c, (int)(root - c->doc.nodes.start) + 1, "", "the top level", top_fields,
			TF_MAX, v);
	if (rc)
		return rc;
	if (v[TF_SERVICES]) {
		rc = get_seq(c, v[TF_SERVICES], "services", &svcs, &n_svcs);
		if (rc)
			return rc;
	}
	if (v[TF_SLICES]) {
		rc = get_seq(c, v[TF_SLICES], "endpointSlices", &sls, &n_sls);
		if (rc)
			return rc;
	}
	c->m.services = calloc(n_svcs ? n_svcs : 1, sizeof(*c->m.services));
	c->m.slices = calloc(n_sls ? n_sls : 1, sizeof(*c->m.slices));
	if (!c->m.services || !c->m.slices)
		return cfg_nomem(c);
	/* Zeroed entries free cleanly, so the counts can be set before parsing. */
	c->m.n_services = n_svcs;
	c->m.n_slices = n_sls;
	for (i = 0; i < n_svcs; i++) {
		rc = parse_service(c, svcs[i], i);
		if (rc)
			return rc;
	}
	rc = check_dups(c, CK_SVC_NAME);
	if (!rc)
		rc = check_dups(c, CK_VIP);
	if (!rc)
		rc = check_dups(c, CK_NODEPORT);
	if (rc)
		return rc;
	for (i = 0; i < n_sls; i++) {
		rc = parse_slice(c, sls[i], i);
		if (rc)
			return rc;
	}
	return check_dups(c, CK_SLICE_NAME);
}

/* ---- Entry points ---- */

/* libyaml's reader errors carry a byte offset, not a line: count lines up to it. */
static yaml_mark_t offset_mark(const struct cfg *c, size_t off)
{
	yaml_mark_t m = { .index = off };
	size_t i;

	for (i = 0; i < off && i < c->len; i++) {
		if (c->buf[i] == '\n') {
			m.line++;
			m.column = 0;
		} else {
			m.column++;
		}
	}
	return m;
}

static int syntax_err(struct cfg *c, const yaml_parser_t *p)
{
	const char *problem = p->problem ? p->problem : "unknown problem";

	switch (p->error) {
	case YAML_MEMORY_ERROR:
		return cfg_nomem(c);
	case YAML_READER_ERROR:
		if (p->problem_value >= 0)
			return cfg_err(c, offset_mark(c, p->problem_offset), NULL,
				       "YAML syntax error: %s (byte 0x%02x)", problem,
				       p->problem_value);
		return cfg_err(c, offset_mark(c, p->problem_offset), NULL, "YAML syntax error: %s",
			       problem);
	default:
		if (p->context)
			return cfg_err(c, p->problem_mark, NULL,
				       "YAML syntax error: %s (%s at line %zu)", problem,
				       p->context, p->context_mark.line + 1);
		return cfg_err(c, p->problem_mark, NULL, "YAML syntax error: %s", problem);
	}
}

/*
 * First pass, over events: syntax errors, aliases, document count and
 * nesting depth, each with its exact position. Aliases are refused because
 * the node tree would share the aliased node, so "a billion laughs" would
 * cost a billion walks, and because nothing in the format needs them. The
 * depth cap stops the scan at the first node too deep, before libyaml's
 * per-level costs add up.
 */
static int cfg_scan(struct cfg *c)
{
	yaml_mark_t start = { 0 };
	yaml_event_type_t type;
	yaml_parser_t p;
	yaml_event_t ev;
	int docs = 0, depth = 0, rc = 0;

	if (!yaml_parser_initialize(&p))
		return cfg_nomem(c);
	yaml_parser_set_input_string(&p, (const unsigned char *)c->buf, c->len);
	do {
		if (!yaml_parser_parse(&p, &ev)) {
			rc = syntax_err(c, &p);
			break;
		}
		type = ev.type;
		if (type == YAML_ALIAS_EVENT)
			rc = cfg_err(c, ev.start_mark, NULL,
				     "YAML aliases (*%s) are not supported; write the value out",
				     (const char *)ev.data.alias.anchor);
		else if (type == YAML_DOCUMENT_START_EVENT && ++docs > 1)
			rc = cfg_err(
				c, ev.start_mark, NULL,
				"more than one YAML document (\"---\"); put everything in one");
		else if ((type == YAML_SEQUENCE_START_EVENT || type == YAML_MAPPING_START_EVENT) &&
			 ++depth > CFG_MAX_DEPTH)
			rc = cfg_err(c, ev.start_mark, NULL,
				     "lists and mappings nested more than %d deep; the format "
				     "needs at most 6",
				     CFG_MAX_DEPTH);
		else if (type == YAML_SEQUENCE_END_EVENT || type == YAML_MAPPING_END_EVENT)
			depth--;
		yaml_event_delete(&ev);
	} while (!rc && type != YAML_STREAM_END_EVENT);
	yaml_parser_delete(&p);
	if (!rc && !docs)
		rc = cfg_err(c, start, NULL,
			     "the file is empty (expected a mapping with \"services\" and "
			     "\"endpointSlices\")");
	return rc;
}

/* Parse c->buf as a whole document tree (two passes, see cfg_run). */
static int cfg_run_tree(struct cfg *c)
{
	yaml_parser_t p;
	int rc;

	rc = cfg_scan(c);
	if (rc)
		return rc;
	if (!yaml_parser_initialize(&p))
		return cfg_nomem(c);
	yaml_parser_set_input_string(&p, (const unsigned char *)c->buf, c->len);
	if (!yaml_parser_load(&p, &c->doc)) {
		rc = syntax_err(c, &p);
	} else {
		rc = parse_root(c);
		yaml_document_delete(&c->doc);
	}
	yaml_parser_delete(&p);
	return rc;
}

/*
 * The one-pass parse: one item of "services" or "endpointSlices" at a time.
 * The events of an item are built into a small document of its own, which
 * the schema walk (parse_service, parse_slice) reads as it would read the
 * whole tree, and which is freed before the next item: the parse never
 * holds more than one item's tree. The checks of cfg_scan (syntax,
 * aliases, depth, one document) are made on the same events.
 */
struct stream {
	struct cfg *c;
	yaml_parser_t p;
	yaml_event_t ev; /* the current event (owned until next()) */
	bool have; /* ev holds an event */
	bool bad_events; /* next() failed: the stream cannot go on */
	int docs, depth;
	/* Slices that came before the end of "services": they are parsed
	 * once every Service is known, as in the tree walk. */
	yaml_document_t *held;
	size_t n_held, cap_held;
};

/* The next event into s->ev, with cfg_scan's checks. 0 or -errno. */
static int next_checked(struct stream *s)
{
	yaml_event_type_t t;

	if (s->have)
		yaml_event_delete(&s->ev);
	s->have = false;
	if (!yaml_parser_parse(&s->p, &s->ev))
		return syntax_err(s->c, &s->p);
	s->have = true;
	t = s->ev.type;
	if (t == YAML_ALIAS_EVENT)
		return cfg_err(s->c, s->ev.start_mark, NULL,
			       "YAML aliases (*%s) are not supported; write the value out",
			       (const char *)s->ev.data.alias.anchor);
	if (t == YAML_DOCUMENT_START_EVENT && ++s->docs > 1)
		return cfg_err(s->c, s->ev.start_mark, NULL,
			       "more than one YAML document (\"---\"); put everything in one");
	if ((t == YAML_SEQUENCE_START_EVENT || t == YAML_MAPPING_START_EVENT) &&
	    ++s->depth > CFG_MAX_DEPTH)
		return cfg_err(s->c, s->ev.start_mark, NULL,
			       "lists and mappings nested more than %d deep; the format needs at "
			       "most 6",
			       CFG_MAX_DEPTH);
	if (t == YAML_SEQUENCE_END_EVENT || t == YAML_MAPPING_END_EVENT)
		s->depth--;
	return 0;
}

static int next(struct stream *s)
{
	int rc = next_checked(s);

	s->bad_events |= rc != 0;
	return rc;
}

/* "!" is the non-specific tag, which the loader resolves to the default too. */
static yaml_char_t *ev_tag(yaml_char_t *tag)
{
	return tag && strcmp((const char *)tag, "!") ? tag : NULL;
}

/*
 * The item documents are built here rather than through libyaml's
 * yaml_document_add_*: those copy every scalar and give every node a copy
 * of its tag (which the schema walk never reads), and each new document
 * allocates a node array big enough to make glibc consolidate its free
 * lists, once per item: a third of the parse was malloc and free. A
 * scalar node takes its event's value instead (the event lets go of it),
 * nodes have no tag, and a run of items reuses one document (doc_clear).
 * Everything in such a document is malloc'ed or NULL, as in libyaml's
 * own, so yaml_document_delete frees it as well.
 */

/* Free what the nodes hold and empty the document, keeping its node array. */
static void doc_clear(yaml_document_t *doc)
{
	yaml_node_t *n;

	for (n = doc->nodes.start; n && n < doc->nodes.top; n++) {
		free(n->tag);
		if (n->type == YAML_SCALAR_NODE)
			free(n->data.scalar.value);
		else if (n->type == YAML_SEQUENCE_NODE)
			free(n->data.sequence.items.start);
		else if (n->type == YAML_MAPPING_NODE)
			free(n->data.mapping.pairs.start);
	}
	doc->nodes.top = doc->nodes.start;
}

/* A new node (zeroed but for type and marks); its id, or 0 for no memory. */
static int doc_node(yaml_document_t *doc, yaml_node_type_t type, const yaml_event_t *e)
{
	yaml_node_t *n;

	if (doc->nodes.top == doc->nodes.end) {
		size_t cap = doc->nodes.end - doc->nodes.start, used = cap;

		cap = cap ? 2 * cap : 64;
		n = realloc(doc->nodes.start, cap * sizeof(*n));
		if (!n)
			return 0;
		doc->nodes.start = n;
		doc->nodes.top = n + used;
		doc->nodes.end = n + cap;
	}
	n = doc->nodes.top++;
	memset(n, 0, sizeof(*n));
	n->type = type;
	n->start_mark = e->start_mark;
	n->end_mark = e->end_mark;
	return (int)(n - doc->nodes.start) + 1;
}

/* Room for one more entry of size sz in a list (start, top, end as libyaml
 * keeps them); grown by doubling. 1, or 0 for no memory. */
static int doc_room(void **start, void **top, void **end, size_t sz)
{
	size_t used = ((char *)*top - (char *)*start) / sz, cap;
	void *nv;

	if (*top != *end)
		return 1;
	cap = used ? 2 * used : 8;
	nv = realloc(*start, cap * sz);
	if (!nv)
		return 0;
	*start = nv;
	*top = (char *)nv + used * sz;
	*end = (char *)nv + cap * sz;
	return 1;
}

static int doc_push_item(yaml_node_t *seq, int id)
{
	if (!doc_room((void **)&seq->data.sequence.items.start,
		      (void **)&seq->data.sequence.items.top, (void **)&seq->data.sequence.items.end,
		      sizeof(yaml_node_item_t)))
		return 0;
	*seq->data.sequence.items.top++ = id;
	return 1;
}

static int doc_push_pair(yaml_node_t *map, int key, int value)
{
	if (!doc_room((void **)&map->data.mapping.pairs.start,
		      (void **)&map->data.mapping.pairs.top, (void **)&map->data.mapping.pairs.end,
		      sizeof(yaml_node_pair_t)))
		return 0;
	map->data.mapping.pairs.top->key = key;
	map->data.mapping.pairs.top->value = value;
	map->data.mapping.pairs.top++;
	return 1;
}

/*
 * Build the node that starts at the current event, and everything under
 * it, into doc: a new one (zeroed here), or with reuse the one the last
 * call built into (emptied here). The caller frees it with doc_clear and
 * free(doc->nodes.start), or yaml_document_delete, also on error. Ends
 * with the node's last event current. 0 or -errno.
 */
static int build_item(struct stream *s, yaml_document_t *doc, bool reuse)
{
	int stack[CFG_MAX_DEPTH + 1], key[CFG_MAX_DEPTH + 1], top = 0, id, rc;
	yaml_event_t *e = &s->ev;
	yaml_node_t *node;

	if (reuse)
		doc_clear(doc);
	else
		memset(doc, 0, sizeof(*doc));
	doc->start_implicit = doc->end_implicit = 1;
	for (;;) {
		switch (e->type) {
		case YAML_SCALAR_EVENT:
			id = doc_node(doc, YAML_SCALAR_NODE, e);
			if (id) {
				node = &doc->nodes.start[id - 1];
				node->data.scalar.value = e->data.scalar.value;
				node->data.scalar.length = e->data.scalar.length;
				node->data.scalar.style = e->data.scalar.style;
				e->data.scalar.value = NULL; /* the node's now */
			}
			break;
		case YAML_SEQUENCE_START_EVENT:
			id = doc_node(doc, YAML_SEQUENCE_NODE, e);
			if (id)
				doc->nodes.start[id - 1].data.sequence.style =
					e->data.sequence_start.style;
			break;
		case YAML_MAPPING_START_EVENT:
			id = doc_node(doc, YAML_MAPPING_NODE, e);
			if (id)
				doc->nodes.start[id - 1].data.mapping.style =
					e->data.mapping_start.style;
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			id = stack[--top];
			doc->nodes.start[id - 1].end_mark = e->end_mark;
			if (!top)
				return 0;
			goto next;
		default: /* the parser only gives node events inside a node */
			return cfg_err(s->c, e->start_mark, NULL, "unexpected YAML event");
		}
		if (!id)
			return cfg_nomem(s->c);
		if (top) {
			yaml_node_t *parent = &doc->nodes.start[stack[top - 1] - 1];
			int ok = 1;

			if (parent->type == YAML_SEQUENCE_NODE)
				ok = doc_push_item(parent, id);
			else if (!key[top - 1])
				key[top - 1] = id;
			else if ((ok = doc_push_pair(parent, key[top - 1], id)))
				key[top - 1] = 0;
			if (!ok)
				return cfg_nomem(s->c);
		}
		if (e->type == YAML_SCALAR_EVENT) {
			if (!top)
				return 0;
		} else {
			/* next() has refused deeper nesting already. */
			key[top] = 0;
			stack[top++] = id;
		}
next:
		rc = next(s);
		if (rc)
			return rc;
	}
}

/* Hold a slice's document for later (moved: *doc is the holder's now). */
static int hold(struct stream *s, yaml_document_t *doc)
{
	if (s->n_held == s->cap_held) {
		size_t cap = s->cap_held ? s->cap_held * 2 : 16;
		yaml_document_t *v = reallocarray(s->held, cap, sizeof(*v));

		if (!v)
			return cfg_nomem(s->c);
		s->held = v;
		s->cap_held = cap;
	}
	s->held[s->n_held++] = *doc;
	return 0;
}

/* Room for one more Service or slice, zeroed (frees cleanly), counted. */
static int grow(struct cfg *c, bool slice, size_t *cap)
{
	size_t n = slice ? c->m.n_slices : c->m.n_services;

	if (n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;

		if (slice) {
			struct sp_slice *v = reallocarray(c->m.slices, ncap, sizeof(*v));

			if (!v)
				return cfg_nomem(c);
			c->m.slices = v;
		} else {
			struct sp_service *v = reallocarray(c->m.services, ncap, sizeof(*v));

			if (!v)
				return cfg_nomem(c);
			c->m.services = v;
		}
		*cap = ncap;
	}
	if (slice)
		memset(&c->m.slices[c->m.n_slices++], 0, sizeof(*c->m.slices));
	else
		memset(&c->m.services[c->m.n_services++], 0, sizeof(*c->m.services));
	return 0;
}

/* Parse one item's document as the Service or slice at index i. */
static int parse_item(struct cfg *c, yaml_document_t *doc, bool slice, size_t i)
{
	int rc;

	c->doc = *doc;
	rc = slice ? parse_slice(c, 1, i) : parse_service(c, 1, i);
	memset(&c->doc, 0, sizeof(c->doc));
	return rc;
}

/* After the last Service: what must be unique among them. */
static int services_done(struct cfg *c)
{
	int rc = check_dups(c, CK_SVC_NAME);

	if (!rc)
		rc = check_dups(c, CK_VIP);
	if (!rc)
		rc = check_dups(c, CK_NODEPORT);
	return rc;
}

/* Note where an item's node starts (struct cfg's items). 0 or -ENOMEM. */
static int item_mark(struct cfg *c, bool slice, yaml_mark_t mark)
{
	struct sp_config_items *it = c->items;
	size_t *n = slice ? &it->n_slices : &it->n_services;
	size_t *cap = slice ? &it->cap_slices : &it->cap_services;
	size_t **v = slice ? &it->slice_off : &it->service_off;

	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		size_t *nv = reallocarray(*v, ncap, sizeof(*nv));

		if (!nv)
			return cfg_nomem(c);
		*v = nv;
		*cap = ncap;
	}
	(*v)[(*n)++] = mark.index;
	return 0;
}

/*
 * The one pass. Returns 0, -errno, or 1 when the top level is not the
 * plain shape (a mapping with "services" and "endpointSlices", each at most
 * once, each a list or empty): the caller then parses the tree, whose walk
 * has the messages for every odd shape.
 */
static int stream_parse(struct stream *s)
{
	struct cfg *c = s->c;
	size_t cap_svc = 0, cap_sl = 0, i;
	bool seen[TF_MAX] = { false }, svcs_done = false;
	yaml_document_t doc;
	int rc, f;

	do { /* stream start, document start */
		rc = next(s);
		if (rc)
			return rc;
	} while (s->ev.type == YAML_STREAM_START_EVENT);
	if (s->ev.type == YAML_STREAM_END_EVENT) {
		yaml_mark_t start = { 0 };

		return cfg_err(c, start, NULL,
			       "the file is empty (expected a mapping with \"services\" and "
			       "\"endpointSlices\")");
	}
	rc = next(s); /* the root node */
	if (rc)
		return rc;
	if (s->ev.type != YAML_MAPPING_START_EVENT)
		return 1;
	for (;;) {
		rc = next(s);
		if (rc)
			return rc;
		if (s->ev.type == YAML_MAPPING_END_EVENT)
			break;
		if (s->ev.type != YAML_SCALAR_EVENT)
			return 1;
		for (f = 0; f < TF_MAX; f++)
			if (!strcmp((const char *)s->ev.data.scalar.value, top_fields[f]))
				break;
		if (f == TF_MAX || seen[f])
			return 1;
		seen[f] = true;
		rc = next(s);
		if (rc)
			return rc;
		if (s->ev.type == YAML_SCALAR_EVENT) {
			yaml_node_t n = { .type = YAML_SCALAR_NODE };

			n.data.scalar.value = s->ev.data.scalar.value;
			n.data.scalar.style = s->ev.data.scalar.style;
			if (!node_is_null(&n))
				return 1;
		} else if (s->ev.type != YAML_SEQUENCE_START_EVENT) {
			return 1;
		} else {
			for (;;) {
				rc = next(s);
				if (rc)
					return rc;
				if (s->ev.type == YAML_SEQUENCE_END_EVENT)
					break;
				rc = build_item(s, &doc, false);
				if (!rc && c->items)
					rc = item_mark(c, f == TF_SLICES, doc.nodes.start[0].start_mark);
				if (!rc && f == TF_SLICES && !svcs_done) {
					rc = hold(s, &doc);
					if (!rc)
						continue;
				}
				if (!rc)
					rc = grow(c, f == TF_SLICES, f == TF_SLICES ? &cap_sl : &cap_svc);
				if (!rc)
					rc = parse_item(c, &doc, f == TF_SLICES,
							f == TF_SLICES ? c->m.n_slices - 1 :
									 c->m.n_services - 1);
				yaml_document_delete(&doc);
				if (rc)
					return rc;
			}
		}
		if (f == TF_SERVICES) {
			svcs_done = true;
			rc = services_done(c);
			if (rc)
				return rc;
		}
	}
	if (!svcs_done) {
		svcs_done = true;
		rc = services_done(c);
		if (rc)
			return rc;
	}
	/* Slices written before the Services. */
	for (i = 0; i < s->n_held; i++) {
		rc = grow(c, true, &cap_sl);
		if (!rc)
			rc = parse_item(c, &s->held[i], true, c->m.n_slices - 1);
		if (rc)
			return rc;
	}
	rc = check_dups(c, CK_SLICE_NAME);
	if (rc)
		return rc;
	/* As the tree walk hands them out: arrays even when empty. */
	if ((!c->m.services && !(c->m.services = calloc(1, sizeof(*c->m.services)))) ||
	    (!c->m.slices && !(c->m.slices = calloc(1, sizeof(*c->m.slices)))))
		return cfg_nomem(c);
	/* The rest of the stream: only the end, or a second document. */
	do {
		rc = next(s);
	} while (!rc && s->ev.type != YAML_STREAM_END_EVENT);
	return rc;
}

/*
 * Parse c->buf into c->m, leaving the claims in c->cl. 0 or -errno (c->err).
 * One pass over the events as a rule; a file whose top level is not the
 * plain shape is parsed again as a whole tree (cfg_run_tree) for the
 * message, so odd shapes cost two passes, and only on their way to an error.
 */
static int cfg_run(struct cfg *c)
{
	struct stream s = { .c = c };
	size_t i;
	int rc, k;

	if (c->err && c->errlen)
		c->err[0] = '\0';
	if (!yaml_parser_initialize(&s.p))
		return cfg_nomem(c);
	yaml_parser_set_input_string(&s.p, (const unsigned char *)c->buf, c->len);
	rc = stream_parse(&s);
	/* As the two passes did: a problem of the YAML itself anywhere in the
	 * file comes before a problem of the content (which may be its effect,
	 * a field cut off by a bad indent). */
	if (rc == -EINVAL && !s.bad_events && !(s.have && s.ev.type == YAML_STREAM_END_EVENT)) {
		int r;

		/* (After the stream's end libyaml gives empty events forever.) */
		while (!(r = next(&s)) && s.ev.type != YAML_STREAM_END_EVENT &&
		       s.ev.type != YAML_NO_EVENT)
			;
		rc = r ? r : rc;
	}
	if (s.have)
		yaml_event_delete(&s.ev);
	yaml_parser_delete(&s.p);
	for (i = 0; i < s.n_held; i++)
		yaml_document_delete(&s.held[i]);
	free(s.held);
	if (rc != 1) {
		if (c->items)
			c->items->whole = !rc;
		return rc;
	}
	sp_model_free(&c->m);
	for (k = 0; k < CK_MAX; k++)
		c->cl[k].n = 0;
	c->seq = 0;
	return cfg_run_tree(c);
}

static void claims_free(struct claims *cl)
{
	int k;

	for (k = 0; k < CK_MAX; k++)
		free(cl[k].v);
}

int sp_config_parse_buf(const char *buf, size_t len, const char *name, struct sp_model *out,
			char *err, size_t errlen)
{
	return sp_config_parse_buf_items(buf, len, name, out, NULL, err, errlen);
}

void sp_config_items_free(struct sp_config_items *it)
{
	free(it->service_off);
	free(it->slice_off);
	memset(it, 0, sizeof(*it));
}

int sp_config_parse_buf_items(const char *buf, size_t len, const char *name, struct sp_model *out,
			      struct sp_config_items *items, char *err, size_t errlen)
{
	struct cfg c = {
		.name = name ? name : "<config>",
		.buf = buf,
		.len = len,
		.err = err,
		.errlen = errlen,
		.items = items,
	};
	int rc;

	if (items) {
		items->n_services = items->n_slices = 0;
		items->whole = false;
	}
	rc = cfg_run(&c);

	if (!rc) {
		*out = c.m;
		memset(&c.m, 0, sizeof(c.m));
	}
	sp_model_free(&c.m);
	claims_free(c.cl);
	return rc;
}

/*
 * One item of a list, alone: buf is "<indent>- ..." and the lines that
 * follow it, a block list of exactly one entry at that column, parsed as
 * the one pass parses an item in place (same events, same checks, the same
 * nesting depth counted from the file's root mapping). The slice's Service
 * is not looked up (the caller checks that across the file).
 */
int sp_config_parse_items(const char *buf, size_t len, bool slice, size_t n, const size_t *starts,
			  struct sp_service *svc, struct sp_slice *sl)
{
	struct cfg c = { .name = "", .buf = buf, .len = len, .part = true };
	struct stream s = { .c = &c };
	yaml_document_t doc = { 0 };
	size_t i, done = 0, at;
	int rc, k;

	if (!n)
		return -EINVAL;
	if (!yaml_parser_initialize(&s.p))
		return -ENOMEM;
	yaml_parser_set_input_string(&s.p, (const unsigned char *)buf, len);
	s.depth = 1; /* in the file, the root mapping holds the list */
	rc = next(&s);
	if (!rc && s.ev.type != YAML_STREAM_START_EVENT)
		rc = -EINVAL;
	if (!rc)
		rc = next(&s);
	if (!rc && (s.ev.type != YAML_DOCUMENT_START_EVENT || !s.ev.data.document_start.implicit))
		rc = -EINVAL;
	if (!rc)
		rc = next(&s);
	if (!rc && (s.ev.type != YAML_SEQUENCE_START_EVENT ||
		    s.ev.data.sequence_start.style != YAML_BLOCK_SEQUENCE_STYLE ||
		    s.ev.data.sequence_start.anchor || ev_tag(s.ev.data.sequence_start.tag)))
		rc = -EINVAL;
	/* Exactly n entries, each starting in its own item's text (libyaml
	 * counts characters, the caller bytes: the same in ASCII), and
	 * nothing after them. */
	for (i = 0; !rc && i < n; i++) {
		rc = next(&s);
		if (!rc && s.ev.type == YAML_SEQUENCE_END_EVENT)
			rc = -EINVAL;
		if (rc)
			break;
		at = s.ev.start_mark.index;
		if (n > 1 && (at < starts[i] || (i + 1 < n && at >= starts[i + 1]))) {
			rc = -EINVAL;
			break;
		}
		rc = build_item(&s, &doc, i > 0);
		if (!rc) {
			if (slice) {
				c.m.slices = &sl[i];
				c.m.n_slices = 1;
			} else {
				c.m.services = &svc[i];
				c.m.n_services = 1;
			}
			rc = parse_item(&c, &doc, slice, 0);
			done = i + 1;
		}
		for (k = 0; k < CK_MAX; k++)
			c.cl[k].n = 0;
	}
	if (!rc)
		rc = next(&s);
	if (!rc && s.ev.type != YAML_SEQUENCE_END_EVENT)
		rc = -EINVAL;
	if (!rc)
		rc = next(&s);
	if (!rc && s.ev.type != YAML_DOCUMENT_END_EVENT)
		rc = -EINVAL;
	if (!rc)
		rc = next(&s);
	if (!rc && s.ev.type != YAML_STREAM_END_EVENT)
		rc = -EINVAL;
	doc_clear(&doc);
	free(doc.nodes.start);
	if (s.have)
		yaml_event_delete(&s.ev);
	yaml_parser_delete(&s.p);
	for (k = 0; k < CK_MAX; k++)
		free(c.cl[k].v);
	c.m.services = NULL;
	c.m.slices = NULL;
	if (rc) { /* what was filled in goes; the caller's entries are zeroed again */
		for (i = 0; i < n && i <= done; i++) {
			if (slice) {
				sp_slice_free(&sl[i]);
				memset(&sl[i], 0, sizeof(sl[i]));
			} else {
				sp_service_free(&svc[i]);
				memset(&svc[i], 0, sizeof(svc[i]));
			}
		}
	}
	return rc;
}

int sp_config_parse_item(const char *buf, size_t len, bool slice, struct sp_service *svc,
			 struct sp_slice *sl)
{
	static const size_t start;

	return sp_config_parse_items(buf, len, slice, 1, &start, svc, sl);
}

/* The whole file at path into *buf (malloc'ed) and *len. 0 or -errno with err. */
int sp_config_read_file(const char *path, char **out, size_t *out_len, char *err, size_t errlen)
{
	size_t len = 0, cap = 64 << 10;
	char *buf = NULL, *nbuf;
	struct stat st;
	ssize_t r;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st)) {
		rc = -errno;
		snprintf(err, errlen, "%s: cannot stat: %s", path, strerror(-rc));
		goto out;
	}
	/* A regular file's size is known: refuse it before reading a byte. */
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > SP_CONFIG_MAX_BYTES) {
		rc = -EFBIG;
		snprintf(err, errlen,
			 "%s: %llu bytes is larger than the %u MiB limit, refusing to parse", path,
			 (unsigned long long)st.st_size, SP_CONFIG_MAX_BYTES >> 20);
		goto out;
	}
	if (S_ISREG(st.st_mode) && st.st_size > 0)
		cap = (size_t)st.st_size + 1;
	/* Read until EOF rather than trusting st_size: pipes and /proc report 0. */
	for (;;) {
		if (!buf || len == cap) {
			if (buf)
				cap *= 2;
			nbuf = realloc(buf, cap);
			if (!nbuf) {
				rc = -ENOMEM;
				snprintf(err, errlen, "%s: out of memory", path);
				goto out;
			}
			buf = nbuf;
		}
		r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			snprintf(err, errlen, "%s: cannot read: %s", path, strerror(-rc));
			goto out;
		}
		if (!r)
			break;
		len += (size_t)r;
		if (len > SP_CONFIG_MAX_BYTES) {
			rc = -EFBIG;
			snprintf(err, errlen, "%s: larger than the %u MiB limit, refusing to parse",
				 path, SP_CONFIG_MAX_BYTES >> 20);
			goto out;
		}
	}
out:
	close(fd);
	if (rc) {
		free(buf);
		return rc;
	}
	*out = buf;
	*out_len = len;
	return 0;
}

int sp_config_load(const char *path, struct sp_model *out, char *err, size_t errlen)
{
	size_t len;
	char *buf;
	int rc;

	rc = sp_config_read_file(path, &buf, &len, err, errlen);
	if (rc)
		return rc;
	rc = sp_config_parse_buf(buf, len, path, out, err, errlen);
	free(buf);
	return rc;
}

/* ---- Files of a directory (--config-dir) ---- */

struct sp_config_part {
	char *name; /* the file, as messages call it */
	struct sp_model m;
	struct claims cl[CK_MAX]; /* what the file claims, with line and path */
};

int sp_config_part_load(const char *path, struct sp_config_part **out, char *err, size_t errlen)
{
	struct cfg c = { .name = path, .err = err, .errlen = errlen, .part = true };
	struct sp_config_part *p;
	char *buf;
	int rc;

	rc = sp_config_read_file(path, &buf, &c.len, err, errlen);
	if (rc)
		return rc;
	c.buf = buf;
	rc = cfg_run(&c);
	free(buf);
	p = rc ? NULL : calloc(1, sizeof(*p));
	if (!rc && (!p || !(p->name = strdup(path)))) {
		free(p);
		rc = cfg_nomem(&c);
	}
	if (rc) {
		sp_model_free(&c.m);
		claims_free(c.cl);
		return rc;
	}
	p->m = c.m;
	memcpy(p->cl, c.cl, sizeof(p->cl));
	*out = p;
	return 0;
}

const struct sp_model *sp_config_part_model(const struct sp_config_part *p)
{
	return &p->m;
}

void sp_config_part_free(struct sp_config_part *p)
{
	if (!p)
		return;
	sp_model_free(&p->m);
	claims_free(p->cl);
	free(p->name);
	free(p);
}

static const char *const claim_what[CK_MAX] = {
	[CK_SVC_NAME] = "Service name",
	[CK_SLICE_NAME] = "EndpointSlice name",
	[CK_VIP] = "VIP",
	[CK_NODEPORT] = "nodePort",
};

int sp_config_parts_check(struct sp_config_part *const *parts, size_t n, size_t *bad, char *err,
			  size_t errlen)
{
	struct claims all = { 0 };
	const struct claim *d, *f;
	size_t i, j, seq;
	int k, rc = 0;

	for (k = 0; k < CK_MAX && !rc; k++) {
		all.n = 0;
		for (i = 0, seq = 0; i < n; i++)
			all.n += parts[i]->cl[k].n;
		if (all.n > all.cap) {
			struct claim *v = reallocarray(all.v, all.n, sizeof(*v));

			if (!v) {
				snprintf(err, errlen, "checking the config files: out of memory");
				rc = -ENOMEM;
				break;
			}
			all.v = v;
			all.cap = all.n;
		}
		/* Files in the caller's order: the duplicate reported is the
		 * claim of the later file, the earlier one is what it repeats. */
		for (i = 0, all.n = 0; i < n; i++) {
			for (j = 0; j < parts[i]->cl[k].n; j++, all.n++) {
				all.v[all.n] = parts[i]->cl[k].v[j];
				all.v[all.n].seq = seq++;
				all.v[all.n].part = i;
			}
		}
		if (!claims_dup(&all, &d, &f))
			continue;
		if (k == CK_SVC_NAME || k == CK_SLICE_NAME) {
			snprintf(err, errlen, "%s:%zu:%zu: %s: %s \"%s/%s\" is also defined in %s (line %zu)",
				 parts[d->part]->name, d->mark.line + 1, d->mark.column + 1, d->path,
				 claim_what[k], d->ns, d->name, parts[f->part]->name,
				 f->mark.line + 1);
		} else {
			char what[64];

			if (k == CK_VIP)
				vip_str(d, what, sizeof(what));
			else
				pathf(what, sizeof(what), "%u/%s",
				      (unsigned int)(d->key[0] << 8 | d->key[1]), proto_name(d->key[2]));
			snprintf(err, errlen, "%s:%zu:%zu: %s: %s %s is also used in %s (line %zu, %s)",
				 parts[d->part]->name, d->mark.line + 1, d->mark.column + 1, d->path,
				 claim_what[k], what, parts[f->part]->name, f->mark.line + 1,
				 f->path);
		}
		*bad = d->part;
		rc = -EINVAL;
	}
	free(all.v);
	return rc;
}

/* ---- svcplane check-config ---- */

enum {
	OPT_NODE_NAME = 256,
	OPT_PROXY_NAME,
	OPT_MAX_SERVICES,
	OPT_MAX_BACKENDS,
	OPT_MAGLEV_CHUNKS,
	OPT_MAGLEV_M,
	OPT_MAX_SRC_RANGES,
};

/* getopt_long() is fed from this table; --help, the completion and the man
 * page are printed from it (user/cli.c). */
static const struct sp_opt check_opts[] = {
	{ "node-name", OPT_NODE_NAME, "NAME", "resolve traffic policies as node NAME would", NULL },
	{ "proxy-name", OPT_PROXY_NAME, "NAME", "resolve as `svcplane run --proxy-name NAME` would",
	  NULL },
	{ "max-services", OPT_MAX_SERVICES, "N",
	  "Service port ids (default " SP_STR(SP_MAX_SVC_IDS) ")", NULL },
	{ "max-backends", OPT_MAX_BACKENDS, "N",
	  "distinct endpoint address:port pairs (default " SP_STR(SP_MAX_BACKENDS) ")", NULL },
	{ "maglev-chunks", OPT_MAGLEV_CHUNKS, "N",
	  "64-byte Maglev chunks (default " SP_STR(SP_MAGLEV_CHUNKS) ")", NULL },
	{ "maglev-m", OPT_MAGLEV_M, "M|adaptive", "Maglev table size (default adaptive)",
	  "adaptive" },
	{ "max-src-ranges", OPT_MAX_SRC_RANGES, "N",
	  "loadBalancerSourceRanges CIDRs (default " SP_STR(SP_MAX_SRC_RANGES) ")", NULL },
	SP_OPT_HELP,
	SP_OPT_END,
};

static const struct sp_cmd_doc check_doc = {
	"check-config", "FILE",
	"Validate a svcplane config file (format: docs/CONFIG.md) without touching the\n"
	"datapath. Prints \"FILE: ok (N services, M endpoint slices)\", or the first\n"
	"error as FILE:LINE:COLUMN: where: problem. Warnings about what the datapath\n"
	"would skip (a Service port that matches no slice port, ...) go to stderr.\n"
	"A file that does not fit the maps' capacities is an error, as `svcplane run`\n"
	"refuses it; the capacity options take the values given to `run`.",
	check_opts,
};

const struct sp_cmd_doc *sp_check_config_doc(void)
{
	return &check_doc;
}

/* A number option with the limits `svcplane run` gives it. 0 or -EINVAL. */
static int check_u32(const char *opt, const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end || end == s || v < min || v > max) {
		fprintf(stderr, "check-config: %s: '%s' is not a number from %u to %u\n", opt, s,
			min, max);
		return -EINVAL;
	}
	*out = (uint32_t)v;
	return 0;
}

static void check_warn(void *arg, const char *msg)
{
	fprintf(stderr, "%s: warning: %s\n", (const char *)arg, msg);
}

int cmd_check_config(int argc, char **argv)
{
	struct option opts[16];
	char so[8];
	/* The capacities `svcplane run` sizes its maps with (dp.c, daemon.c):
	 * --max-services sizes sp_services too. */
	struct sp_sync_maps cap = {
		.max_svc_ids = SP_MAX_SVC_IDS,
		.max_frontends = SP_MAX_SVC_IDS,
		.max_backends = SP_MAX_BACKENDS,
		.maglev_chunks = SP_MAGLEV_CHUNKS,
		.max_src_ranges = SP_MAX_SRC_RANGES,
	};
	struct sp_resolve_opts ro = { 0 };
	struct sp_desired d = { 0 };
	struct sp_model m = { 0 };
	char err[512];
	const char *path;
	int o, rc = 0;

	if (sp_opts_getopt(check_opts, opts, 16, so, sizeof(so)))
		return -E2BIG; /* a table too large for opts[]: a build mistake */
	optind = 0; /* glibc: full re-initialisation, main() may have used getopt */
	while ((o = getopt_long(argc, argv, so, opts, NULL)) != -1) {
		switch (o) {
		case OPT_NODE_NAME:
			ro.node_name = optarg;
			break;
		case OPT_PROXY_NAME:
			ro.proxy_name = optarg;
			break;
		case OPT_MAX_SERVICES:
			rc = check_u32("--max-services", optarg, 1, 1 << 24, &cap.max_svc_ids);
			cap.max_frontends = cap.max_svc_ids;
			break;
		case OPT_MAX_BACKENDS:
			rc = check_u32("--max-backends", optarg, 1, 1 << 24, &cap.max_backends);
			break;
		case OPT_MAX_SRC_RANGES:
			rc = check_u32("--max-src-ranges", optarg, 1, 1 << 24, &cap.max_src_ranges);
			break;
		case OPT_MAGLEV_CHUNKS:
			rc = check_u32("--maglev-chunks", optarg, 16, 1 << 26, &cap.maglev_chunks);
			break;
		case OPT_MAGLEV_M:
			if (!strcmp(optarg, "adaptive")) {
				cap.fixed_m = 0;
			} else if (check_u32("--maglev-m", optarg, SP_MAGLEV_M_MIN, SP_MAGLEV_M_MAX,
					     &cap.fixed_m) ||
				   !sp_maglev_m_valid(cap.fixed_m)) {
				fprintf(stderr, "check-config: --maglev-m %s: not one of the listed "
						"primes (see docs/MAGLEV.md) or 'adaptive'\n",
					optarg);
				return -EINVAL;
			}
			break;
		case 'h':
			sp_cmd_usage(stdout, &check_doc);
			return 0;
		default:
			fprintf(stderr, "Try 'svcplane check-config --help'.\n");
			return -EINVAL;
		}
		if (rc)
			return rc;
	}
	if (optind != argc - 1) {
		fprintf(stderr, "check-config: expected exactly one FILE; try --help\n");
		return -EINVAL;
	}
	path = argv[optind];
	rc = sp_config_load(path, &m, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "%s\n", err);
		return -EINVAL;
	}
	/* Resolving too shows what the datapath would skip, as warnings. */
	rc = sp_resolve(&m, &ro, &d, check_warn, (void *)path);
	if (rc) {
		fprintf(stderr, "%s: resolving the model: %s\n", path, strerror(-rc));
		rc = -EINVAL;
		goto out;
	}
	rc = sp_sync_check_capacity(&cap, &d, err, sizeof(err));
	if (rc) {
		fprintf(stderr,
			"%s: %s (svcplane run refuses this file: it exits at start, and keeps the "
			"running state on a reload)\n",
			path, rc == -ENOSPC ? err : strerror(-rc));
		sp_desired_free(&d);
		rc = -EINVAL;
		goto out;
	}
	printf("%s: ok (%zu services, %zu endpoint slices)\n", path, m.n_services, m.n_slices);
	sp_desired_free(&d);
out:
	sp_model_free(&m);
	return rc;
}
