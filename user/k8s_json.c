// SPDX-License-Identifier: Apache-2.0
/*
 * Kubernetes JSON objects -> the source model (model.h).
 *
 * The parsers are faithful, not clever: they copy what the object says and
 * apply only the API's own defaulting rules for absent fields (documented in
 * the API reference for Service v1 and EndpointSlice discovery.k8s.io/v1).
 * kube-proxy's semantics (port-name matching, readiness fallback, proxy-name
 * filtering, traffic policies) live in resolve.c, shared with the config file.
 *
 * An object that is structurally wrong (a missing name, a bad address, a port
 * out of range, an unknown enum value) is rejected as a whole with -EINVAL:
 * the caller keeps the last good version, so a half-parsed object never
 * reaches the datapath. Only things the proxy deliberately does not support
 * (an SCTP port) are skipped inside an otherwise accepted object.
 *
 * JSON is handled with json-c: its json_tokener parses incrementally, which
 * the watch stream needs (see k8s.c); the same object API serves here.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "k8s.h"

#define LABEL_PROXY_NAME "service.kubernetes.io/service-proxy-name"
#define LABEL_SERVICE_NAME "kubernetes.io/service-name"
#define ANNOTATION_SRC_RANGES "service.beta.kubernetes.io/load-balancer-source-ranges"
/* Default sessionAffinityConfig.clientIP.timeoutSeconds (API reference: 3 hours). */
#define AFFINITY_TIMEOUT_DEFAULT 10800
#define AFFINITY_TIMEOUT_MAX 86400

void sp_k8s_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}
#define errf sp_k8s_errf

static void warnf(sp_k8s_warn_fn warn, void *arg, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void warnf(sp_k8s_warn_fn warn, void *arg, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!warn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	warn(arg, msg);
}

/* Member key of obj, or NULL when absent or JSON null (the API's "nil"). */
static struct json_object *jget(struct json_object *obj, const char *key)
{
	struct json_object *v;

	if (!obj || !json_object_is_type(obj, json_type_object))
		return NULL;
	if (!json_object_object_get_ex(obj, key, &v))
		return NULL;
	return v; /* NULL for JSON null */
}

static bool jis(struct json_object *v, enum json_type t)
{
	return v && json_object_is_type(v, t);
}

/* String member: 0 with *out set (NULL when absent), -EINVAL if not a string. */
static int jstr(struct json_object *obj, const char *key, const char **out)
{
	struct json_object *v = jget(obj, key);

	*out = NULL;
	if (!v)
		return 0;
	if (!jis(v, json_type_string))
		return -EINVAL;
	*out = json_object_get_string(v);
	return 0;
}

/* Integer member in [lo, hi]: 0 with *out (unchanged when absent), -EINVAL otherwise. */
static int jint(struct json_object *obj, const char *key, int64_t lo, int64_t hi, int64_t *out)
{
	struct json_object *v = jget(obj, key);
	int64_t x;

	if (!v)
		return 0;
	if (!jis(v, json_type_int))
		return -EINVAL;
	x = json_object_get_int64(v);
	if (x < lo || x > hi)
		return -EINVAL;
	*out = x;
	return 0;
}


/* Days from 1970-01-01 to y-m-d (proleptic Gregorian): timegm() without
 * the TZ environment it depends on. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

int sp_k8s_parse_time(const char *s, int64_t *ns)
{
	static const unsigned mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	unsigned Y, M, D, h, m, sec, oh = 0, om = 0;
	int64_t frac = 0, scale = 100000000, off = 0;
	int n = 0;

	if (!s || sscanf(s, "%4u-%2u-%2u%n", &Y, &M, &D, &n) != 3 || n != 10 ||
	    (s[10] != 'T' && s[10] != 't') ||
	    sscanf(s + 11, "%2u:%2u:%2u%n", &h, &m, &sec, &n) != 3 || n != 8)
		return -EINVAL;
	if (M < 1 || M > 12 || D < 1 || D > mdays[M - 1] || h > 23 || m > 59 || sec > 60)
		return -EINVAL;
	s += 19;
	if (*s == '.') {
		if (s[1] < '0' || s[1] > '9')
			return -EINVAL;
		for (s++; *s >= '0' && *s <= '9'; s++, scale /= 10)
			frac += (*s - '0') * scale; /* digits past ns add 0 */
	}
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		if (sscanf(s + 1, "%2u:%2u%n", &oh, &om, &n) != 2 || n != 5 || oh > 23 || om > 59)
			return -EINVAL;
		off = (*s == '+' ? 1 : -1) * (int64_t)(oh * 3600 + om * 60);
		s += 6;
	} else {
		return -EINVAL;
	}
	if (*s)
		return -EINVAL;
	*ns = ((days_from_civil(Y, M, D) * 86400 + h * 3600 + m * 60 + sec) - off) *
		      1000000000LL +
	      frac;
	return 0;
}

int64_t sp_k8s_trigger_time(struct json_object *slice)
{
	struct json_object *md, *ann, *v;
	int64_t ns;

	if (!json_object_object_get_ex(slice, "metadata", &md) ||
	    !json_object_object_get_ex(md, "annotations", &ann) ||
	    !json_object_object_get_ex(ann, "endpoints.kubernetes.io/last-change-trigger-time",
				       &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    sp_k8s_parse_time(json_object_get_string(v), &ns))
		return 0;
	return ns;
}

/* Array member: 0 with *out (NULL when absent or null), -EINVAL if not an array. */
static int jarr(struct json_object *obj, const char *key, struct json_object **out)
{
	struct json_object *v = jget(obj, key);

	*out = NULL;
	if (!v)
		return 0;
	if (!jis(v, json_type_array))
		return -EINVAL;
	*out = v;
	return 0;
}

static size_t jlen(struct json_object *arr)
{
	return arr ? json_object_array_length(arr) : 0;
}

int sp_k8s_object_key(struct json_object *obj, char *buf, size_t len)
{
	struct json_object *md = jget(obj, "metadata");
	const char *ns = NULL, *name = NULL;

	if (jstr(md, "namespace", &ns) || jstr(md, "name", &name) || !name || !*name)
		return -EINVAL;
	/* Nodes are cluster-scoped: their key is the bare name. */
	if (ns && *ns)
		snprintf(buf, len, "%s/%s", ns, name);
	else
		snprintf(buf, len, "%s", name);
	return 0;
}

/* The name of an object for messages, even when it is malformed. */
static void object_label(struct json_object *obj, char *buf, size_t len)
{
	if (sp_k8s_object_key(obj, buf, len))
		snprintf(buf, len, "(unnamed)");
}

static int dupstr(char **dst, const char *s)
{
	*dst = strdup(s ? s : "");
	return *dst ? 0 : -ENOMEM;
}

/* metadata: namespace, name, resourceVersion and one label. */
static int parse_meta(struct json_object *obj, const char *label_key, char **ns, char **name,
		      char **rv, char **label, const char *what, const char *id, char *err,
		      size_t errlen)
{
	struct json_object *md = jget(obj, "metadata"), *labels;
	const char *sns, *sname, *srv, *slabel = NULL;

	if (!jis(md, json_type_object)) {
		errf(err, errlen, "%s %s: no metadata", what, id);
		return -EINVAL;
	}
	if (jstr(md, "namespace", &sns) || !sns || !*sns || jstr(md, "name", &sname) || !sname ||
	    !*sname) {
		errf(err, errlen, "%s %s: metadata.namespace and metadata.name must be strings", what,
		     id);
		return -EINVAL;
	}
	if (jstr(md, "resourceVersion", &srv)) {
		errf(err, errlen, "%s %s: metadata.resourceVersion is not a string", what, id);
		return -EINVAL;
	}
	labels = jget(md, "labels");
	if (labels && !jis(labels, json_type_object)) {
		errf(err, errlen, "%s %s: metadata.labels is not an object", what, id);
		return -EINVAL;
	}
	if (labels && jstr(labels, label_key, &slabel)) {
		errf(err, errlen, "%s %s: label %s is not a string", what, id, label_key);
		return -EINVAL;
	}
	if (dupstr(ns, sns) || dupstr(name, sname) || (srv && dupstr(rv, srv)) ||
	    (slabel && dupstr(label, slabel)))
		return -ENOMEM;
	return 0;
}

/* Parse an IP string; *what names the field for the message. */
static int parse_ip(const char *s, struct sp_ip *ip, const char *kind, const char *id,
		    const char *field, char *err, size_t errlen)
{
	if (!s || sp_ip_parse(s, ip)) {
		errf(err, errlen, "%s %s: %s: bad IP address \"%s\"", kind, id, field,
		     s ? s : "(not a string)");
		return -EINVAL;
	}
	return 0;
}

/* An array of IP strings (externalIPs, clusterIPs) into a fresh array. */
static int parse_ip_array(struct json_object *arr, struct sp_ip **out, size_t *n, const char *id,
			  const char *field, char *err, size_t errlen)
{
	size_t i, cnt = jlen(arr);
	struct sp_ip *ips;

	*out = NULL;
	*n = 0;
	if (!cnt)
		return 0;
	ips = calloc(cnt, sizeof(*ips));
	if (!ips)
		return -ENOMEM;
	for (i = 0; i < cnt; i++) {
		struct json_object *v = json_object_array_get_idx(arr, i);
		const char *s = jis(v, json_type_string) ? json_object_get_string(v) : NULL;
		char f[64];

		snprintf(f, sizeof(f), "%s[%zu]", field, i);
		if (parse_ip(s, &ips[i], "Service", id, f, err, errlen)) {
			free(ips);
			return -EINVAL;
		}
	}
	*out = ips;
	*n = cnt;
	return 0;
}

/* "TCP"/"UDP" (absent: TCP, the API default). 0 = SCTP (skip), -EINVAL = unknown. */
static int parse_proto(struct json_object *obj, uint8_t *proto)
{
	const char *p;

	if (jstr(obj, "protocol", &p))
		return -EINVAL;
	if (!p || !strcmp(p, "TCP"))
		*proto = IPPROTO_TCP;
	else if (!strcmp(p, "UDP"))
		*proto = IPPROTO_UDP;
	else if (!strcmp(p, "SCTP"))
		*proto = 0;
	else
		return -EINVAL;
	return 0;
}

static int parse_svc_ports(struct json_object *spec, struct sp_service *s, const char *id,
			   sp_k8s_warn_fn warn, void *warn_arg, char *err, size_t errlen)
{
	struct json_object *arr;
	size_t i, cnt;

	if (jarr(spec, "ports", &arr)) {
		errf(err, errlen, "Service %s: spec.ports is not an array", id);
		return -EINVAL;
	}
	cnt = jlen(arr);
	if (!cnt)
		return 0;
	s->ports = calloc(cnt, sizeof(*s->ports));
	if (!s->ports)
		return -ENOMEM;
	for (i = 0; i < cnt; i++) {
		struct json_object *p = json_object_array_get_idx(arr, i), *tp;
		struct sp_svc_port *sp = &s->ports[s->n_ports];
		int64_t port = 0, node_port = 0;
		const char *name;
		uint8_t proto;

		if (!jis(p, json_type_object)) {
			errf(err, errlen, "Service %s: spec.ports[%zu] is not an object", id, i);
			return -EINVAL;
		}
		if (jstr(p, "name", &name)) {
			errf(err, errlen, "Service %s: spec.ports[%zu].name is not a string", id, i);
			return -EINVAL;
		}
		if (parse_proto(p, &proto)) {
			errf(err, errlen, "Service %s: spec.ports[%zu]: unknown protocol", id, i);
			return -EINVAL;
		}
		if (jint(p, "port", 1, 65535, &port) || !port) {
			errf(err, errlen, "Service %s: spec.ports[%zu].port must be 1-65535", id, i);
			return -EINVAL;
		}
		if (jint(p, "nodePort", 0, 65535, &node_port)) {
			errf(err, errlen, "Service %s: spec.ports[%zu].nodePort must be 0-65535", id,
			     i);
			return -EINVAL;
		}
		if (!proto) {
			/* The datapath handles TCP and UDP only; the rest of the
			 * Service still works. */
			warnf(warn, warn_arg, "Service %s: port %s/%lld: SCTP is not supported, skipped",
			      id, name ? name : "", (long long)port);
			continue;
		}
		/* targetPort is IntOrString: a number, or the name of a container
		 * port resolved per endpoint through the EndpointSlice ports. */
		tp = jget(p, "targetPort");
		if (jis(tp, json_type_int)) {
			int64_t t = json_object_get_int64(tp);

			if (t < 1 || t > 65535) {
				errf(err, errlen, "Service %s: spec.ports[%zu].targetPort must be 1-65535",
				     id, i);
				return -EINVAL;
			}
			sp->target_port = (uint16_t)t;
		} else if (jis(tp, json_type_string)) {
			if (!*json_object_get_string(tp)) {
				errf(err, errlen, "Service %s: spec.ports[%zu].targetPort is empty", id,
				     i);
				return -EINVAL;
			}
			if (dupstr(&sp->target_port_name, json_object_get_string(tp)))
				return -ENOMEM;
		} else if (tp) {
			errf(err, errlen, "Service %s: spec.ports[%zu].targetPort is neither a number nor a string",
			     id, i);
			return -EINVAL;
		}
		if (dupstr(&sp->name, name))
			return -ENOMEM;
		sp->proto = proto;
		sp->port = (uint16_t)port;
		sp->node_port = (uint16_t)node_port;
		s->n_ports++;
	}
	return 0;
}

/* "Cluster" (or absent) -> false, "Local" -> true. */
static int parse_policy(struct json_object *spec, const char *key, bool *local)
{
	const char *v;

	if (jstr(spec, key, &v))
		return -EINVAL;
	if (!v || !strcmp(v, "Cluster"))
		*local = false;
	else if (!strcmp(v, "Local"))
		*local = true;
	else
		return -EINVAL;
	return 0;
}

static int parse_svc_spec(struct json_object *obj, struct sp_service *s, const char *id,
			  sp_k8s_warn_fn warn, void *warn_arg, char *err, size_t errlen)
{
	struct json_object *spec = jget(obj, "spec"), *arr, *cfg;
	const char *type, *cip, *aff;
	int64_t timeout = AFFINITY_TIMEOUT_DEFAULT;
	int64_t hcnp = 0;
	size_t i;
	int ret;

	if (!jis(spec, json_type_object)) {
		errf(err, errlen, "Service %s: no spec", id);
		return -EINVAL;
	}
	if (jstr(spec, "type", &type)) {
		errf(err, errlen, "Service %s: spec.type is not a string", id);
		return -EINVAL;
	}
	if (!type || !strcmp(type, "ClusterIP")) {
		s->type = SP_SVC_CLUSTER_IP;
	} else if (!strcmp(type, "NodePort")) {
		s->type = SP_SVC_NODE_PORT;
	} else if (!strcmp(type, "LoadBalancer")) {
		s->type = SP_SVC_LOAD_BALANCER;
	} else if (!strcmp(type, "ExternalName")) {
		/* A DNS CNAME served by the cluster DNS; no proxying. */
		return SP_K8S_IGNORED;
	} else {
		errf(err, errlen, "Service %s: unknown spec.type \"%s\"", id, type);
		return -EINVAL;
	}

	/*
	 * clusterIPs (dual-stack, 1.20+) is authoritative; clusterIP equals its
	 * first entry. Old servers send only clusterIP. "None" means headless:
	 * DNS returns the endpoints directly and the proxy does nothing.
	 */
	if (jstr(spec, "clusterIP", &cip) || jarr(spec, "clusterIPs", &arr)) {
		errf(err, errlen, "Service %s: bad spec.clusterIP/clusterIPs", id);
		return -EINVAL;
	}
	if ((cip && !strcmp(cip, "None")) ||
	    (jlen(arr) && jis(json_object_array_get_idx(arr, 0), json_type_string) &&
	     !strcmp(json_object_get_string(json_object_array_get_idx(arr, 0)), "None"))) {
		s->headless = true;
	} else if (jlen(arr)) {
		ret = parse_ip_array(arr, &s->cluster_ips, &s->n_cluster_ips, id, "spec.clusterIPs",
				     err, errlen);
		if (ret)
			return ret;
	} else if (cip && *cip) {
		s->cluster_ips = calloc(1, sizeof(*s->cluster_ips));
		if (!s->cluster_ips)
			return -ENOMEM;
		if (parse_ip(cip, s->cluster_ips, "Service", id, "spec.clusterIP", err, errlen))
			return -EINVAL;
		s->n_cluster_ips = 1;
	}
	/* ipFamilies mirrors clusterIPs; check it agrees rather than trust either blindly. */
	if (jarr(spec, "ipFamilies", &arr)) {
		errf(err, errlen, "Service %s: spec.ipFamilies is not an array", id);
		return -EINVAL;
	}
	for (i = 0; i < jlen(arr); i++) {
		struct json_object *f = json_object_array_get_idx(arr, i);
		const char *fs = jis(f, json_type_string) ? json_object_get_string(f) : "";
		int fam = !strcmp(fs, "IPv4") ? 4 : !strcmp(fs, "IPv6") ? 6 : 0;

		if (!fam) {
			errf(err, errlen, "Service %s: spec.ipFamilies[%zu]: unknown family \"%s\"",
			     id, i, fs);
			return -EINVAL;
		}
		if (i < s->n_cluster_ips && s->cluster_ips[i].family != fam) {
			errf(err, errlen, "Service %s: spec.ipFamilies[%zu] is %s but clusterIPs[%zu] is not",
			     id, i, fs, i);
			return -EINVAL;
		}
	}

	if (jarr(spec, "externalIPs", &arr)) {
		errf(err, errlen, "Service %s: spec.externalIPs is not an array", id);
		return -EINVAL;
	}
	ret = parse_ip_array(arr, &s->external_ips, &s->n_external_ips, id, "spec.externalIPs", err,
			     errlen);
	if (ret)
		return ret;

	ret = parse_svc_ports(spec, s, id, warn, warn_arg, err, errlen);
	if (ret)
		return ret;

	if (parse_policy(spec, "externalTrafficPolicy", &s->etp_local)) {
		errf(err, errlen, "Service %s: spec.externalTrafficPolicy must be Cluster or Local",
		     id);
		return -EINVAL;
	}
	if (jint(spec, "healthCheckNodePort", 0, 65535, &hcnp)) {
		errf(err, errlen, "Service %s: spec.healthCheckNodePort must be 0-65535", id);
		return -EINVAL;
	}
	s->health_check_node_port = (uint16_t)hcnp;
	if (parse_policy(spec, "internalTrafficPolicy", &s->itp_local)) {
		errf(err, errlen, "Service %s: spec.internalTrafficPolicy must be Cluster or Local",
		     id);
		return -EINVAL;
	}

	if (jstr(spec, "sessionAffinity", &aff) || (aff && strcmp(aff, "None") &&
						    strcmp(aff, "ClientIP"))) {
		errf(err, errlen, "Service %s: spec.sessionAffinity must be None or ClientIP", id);
		return -EINVAL;
	}
	cfg = jget(jget(spec, "sessionAffinityConfig"), "clientIP");
	if (jint(cfg, "timeoutSeconds", 1, AFFINITY_TIMEOUT_MAX, &timeout)) {
		errf(err, errlen, "Service %s: sessionAffinityConfig.clientIP.timeoutSeconds must be 1-%d",
		     id, AFFINITY_TIMEOUT_MAX);
		return -EINVAL;
	}
	s->affinity_client_ip = aff && !strcmp(aff, "ClientIP");
	s->affinity_timeout = (uint32_t)timeout;
	return 0;
}

/* Append the CIDR in s[0..len) to s->src_ranges (room for it was made),
 * trimmed of spaces; an invalid one is skipped with a warning. */
static void add_src_range(struct sp_service *svc, const char *s, size_t len, const char *id,
			  const char *where, sp_k8s_warn_fn warn, void *warn_arg)
{
	char buf[64];

	while (len && (*s == ' ' || *s == '\t'))
		s++, len--;
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (!len)
		return;
	if (len < sizeof(buf)) {
		memcpy(buf, s, len);
		buf[len] = 0;
		if (!sp_cidr_parse(buf, &svc->src_ranges[svc->n_src_ranges])) {
			svc->n_src_ranges++;
			return;
		}
	}
	warnf(warn, warn_arg, "Service %s: %s: invalid CIDR \"%.*s\" ignored", id, where,
	      (int)(len < 64 ? len : 64), s);
}

/*
 * spec.loadBalancerSourceRanges, or when that is empty the annotation
 * service.beta.kubernetes.io/load-balancer-source-ranges (comma-separated),
 * which Kubernetes' own helper (GetLoadBalancerSourceRanges) honours; it
 * restricts, so honouring it is the safe side (kube-proxy itself reads the
 * field only). As kube-proxy does, spaces around a CIDR are trimmed and an
 * invalid CIDR is skipped with a warning while the valid ones apply.
 */
static int parse_src_ranges(struct json_object *obj, struct sp_service *s, const char *id,
			    sp_k8s_warn_fn warn, void *warn_arg, char *err, size_t errlen)
{
	struct json_object *arr, *ann;
	const char *a = NULL, *p, *comma;
	size_t i, cnt, n;

	if (jarr(jget(obj, "spec"), "loadBalancerSourceRanges", &arr)) {
		errf(err, errlen, "Service %s: spec.loadBalancerSourceRanges is not an array", id);
		return -EINVAL;
	}
	cnt = jlen(arr);
	for (i = 0; i < cnt; i++) {
		if (!jis(json_object_array_get_idx(arr, i), json_type_string)) {
			errf(err, errlen,
			     "Service %s: spec.loadBalancerSourceRanges[%zu] is not a string", id, i);
			return -EINVAL;
		}
	}
	if (cnt) {
		s->src_ranges = calloc(cnt, sizeof(*s->src_ranges));
		if (!s->src_ranges)
			return -ENOMEM;
		for (i = 0; i < cnt; i++) {
			struct json_object *v = json_object_array_get_idx(arr, i);

			add_src_range(s, json_object_get_string(v),
				      (size_t)json_object_get_string_len(v), id,
				      "spec.loadBalancerSourceRanges", warn, warn_arg);
		}
		return 0;
	}
	ann = jget(jget(obj, "metadata"), "annotations");
	if (ann && jis(ann, json_type_object) && jstr(ann, ANNOTATION_SRC_RANGES, &a)) {
		errf(err, errlen, "Service %s: annotation %s is not a string", id,
		     ANNOTATION_SRC_RANGES);
		return -EINVAL;
	}
	if (!a || !*a)
		return 0;
	for (n = 1, p = a; (p = strchr(p, ',')); p++)
		n++;
	s->src_ranges = calloc(n, sizeof(*s->src_ranges));
	if (!s->src_ranges)
		return -ENOMEM;
	for (p = a;; p = comma + 1) {
		comma = strchr(p, ',');
		add_src_range(s, p, comma ? (size_t)(comma - p) : strlen(p), id,
			      "annotation " ANNOTATION_SRC_RANGES, warn, warn_arg);
		if (!comma)
			break;
	}
	return 0;
}

/* status.loadBalancer.ingress[].ip (hostname-only entries are for DNS-based LBs). */
static int parse_svc_status(struct json_object *obj, struct sp_service *s, const char *id,
			    char *err, size_t errlen)
{
	struct json_object *lb = jget(jget(obj, "status"), "loadBalancer"), *arr;
	size_t i, cnt;

	if (jarr(lb, "ingress", &arr)) {
		errf(err, errlen, "Service %s: status.loadBalancer.ingress is not an array", id);
		return -EINVAL;
	}
	cnt = jlen(arr);
	if (!cnt)
		return 0;
	s->lb_ips = calloc(cnt, sizeof(*s->lb_ips));
	if (!s->lb_ips)
		return -ENOMEM;
	for (i = 0; i < cnt; i++) {
		struct json_object *ing = json_object_array_get_idx(arr, i);
		const char *ip, *mode;
		char f[64];

		if (!jis(ing, json_type_object) || jstr(ing, "ip", &ip) ||
		    jstr(ing, "ipMode", &mode)) {
			errf(err, errlen, "Service %s: status.loadBalancer.ingress[%zu] is malformed",
			     id, i);
			return -EINVAL;
		}
		/*
		 * ipMode Proxy (KEP-1860, beta in 1.30): the load balancer
		 * terminates or proxies the traffic and sends it on to the nodes,
		 * so the node must NOT claim the ingress IP as a local VIP.
		 */
		if (!ip || (mode && !strcmp(mode, "Proxy")))
			continue;
		snprintf(f, sizeof(f), "status.loadBalancer.ingress[%zu].ip", i);
		if (parse_ip(ip, &s->lb_ips[s->n_lb_ips], "Service", id, f, err, errlen))
			return -EINVAL;
		s->n_lb_ips++;
	}
	return 0;
}

int sp_k8s_parse_service(struct json_object *obj, struct sp_service *out, sp_k8s_warn_fn warn,
			 void *warn_arg, char *err, size_t errlen)
{
	char id[320];
	int ret;

	memset(out, 0, sizeof(*out));
	object_label(obj, id, sizeof(id));
	if (!jis(obj, json_type_object)) {
		errf(err, errlen, "Service: not a JSON object");
		return -EINVAL;
	}
	ret = parse_meta(obj, LABEL_PROXY_NAME, &out->ns, &out->name, &out->resource_version,
			 &out->proxy_name, "Service", id, err, errlen);
	if (!ret)
		ret = parse_svc_spec(obj, out, id, warn, warn_arg, err, errlen);
	if (!ret)
		ret = parse_svc_status(obj, out, id, err, errlen);
	if (!ret && out->type == SP_SVC_LOAD_BALANCER)
		ret = parse_src_ranges(obj, out, id, warn, warn_arg, err, errlen);
	if (ret == -ENOMEM)
		errf(err, errlen, "Service %s: out of memory", id);
	if (ret)
		sp_service_free(out);
	return ret;
}

static int parse_conditions(struct json_object *ep, struct sp_endpoint *e)
{
	struct json_object *c = jget(ep, "conditions"), *v;

	if (c && !jis(c, json_type_object))
		return -EINVAL;
	/*
	 * discovery.k8s.io/v1 EndpointConditions: a nil ready "should be
	 * interpreted as ready"; a nil serving likewise ("unknown state ...
	 * interpret as ready", i.e. the value of ready); a nil terminating
	 * as "not terminating".
	 */
	v = jget(c, "ready");
	if (v && !jis(v, json_type_boolean))
		return -EINVAL;
	e->ready = v ? json_object_get_boolean(v) : true;
	v = jget(c, "serving");
	if (v && !jis(v, json_type_boolean))
		return -EINVAL;
	e->serving = v ? json_object_get_boolean(v) : e->ready;
	v = jget(c, "terminating");
	if (v && !jis(v, json_type_boolean))
		return -EINVAL;
	e->terminating = v ? json_object_get_boolean(v) : false;
	return 0;
}

/*
 * hints.forZones / hints.forNodes: the names joined with commas into *out
 * (NULL when there are none). -EINVAL when malformed, -ENOMEM.
 */
static int parse_hint_names(struct json_object *hints, const char *key, const char **out)
{
	struct json_object *arr;
	size_t i, n, len = 0;
	char *buf;

	*out = NULL;
	if (jarr(hints, key, &arr))
		return -EINVAL;
	n = jlen(arr);
	for (i = 0; i < n; i++) {
		const char *name;

		if (jstr(json_object_array_get_idx(arr, i), "name", &name) || !name || !*name ||
		    strchr(name, ','))
			return -EINVAL;
		len += strlen(name) + 1;
	}
	if (!len)
		return 0;
	buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	for (i = 0, len = 0; i < n; i++) {
		const char *name = NULL;

		jstr(json_object_array_get_idx(arr, i), "name", &name);
		len += (size_t)sprintf(buf + len, "%s%s", len ? "," : "", name);
	}
	*out = sp_intern(buf);
	free(buf);
	return *out ? 0 : -ENOMEM;
}

/* One endpoints[i] into *e: 0, -EINVAL with the reason in why, -ENOMEM. */
static int parse_endpoint(struct json_object *ep, uint8_t family, const char *at, size_t i,
			  struct sp_endpoint *e, const char *id, sp_k8s_warn_fn warn,
			  void *warn_arg, char *why, size_t whylen)
{
	struct json_object *addrs, *a0, *hints;
	const char *node, *zones = NULL, *nodes = NULL;
	char f[64];
	int rc;

	memset(e, 0, sizeof(*e));
	if (!jis(ep, json_type_object) || jarr(ep, "addresses", &addrs) || !jlen(addrs)) {
		errf(why, whylen, "EndpointSlice %s: endpoints[%zu] has no addresses", id, i);
		return -EINVAL;
	}
	/* All addresses of an endpoint are fungible (API reference);
	 * consumers use the first. */
	a0 = json_object_array_get_idx(addrs, 0);
	snprintf(f, sizeof(f), "endpoints[%zu].addresses[0]", i);
	if (parse_ip(jis(a0, json_type_string) ? json_object_get_string(a0) : NULL, &e->addr,
		     "EndpointSlice", id, f, why, whylen))
		return -EINVAL;
	if (e->addr.family != family) {
		errf(why, whylen, "EndpointSlice %s: %s is not an %s address", id, f, at);
		return -EINVAL;
	}
	if (parse_conditions(ep, e)) {
		errf(why, whylen, "EndpointSlice %s: endpoints[%zu].conditions is malformed", id, i);
		return -EINVAL;
	}
	if (jstr(ep, "nodeName", &node)) {
		errf(why, whylen, "EndpointSlice %s: endpoints[%zu].nodeName is not a string", id, i);
		return -EINVAL;
	}
	/* Malformed hints count as none: the endpoint still serves, and one
	 * endpoint without hints turns topology off for its Service
	 * (kube-proxy's rule), which is the safe way to be wrong. */
	hints = jget(ep, "hints");
	if (hints && jis(hints, json_type_object)) {
		rc = parse_hint_names(hints, "forZones", &zones);
		rc = rc ?: parse_hint_names(hints, "forNodes", &nodes);
		if (rc == -ENOMEM)
			return -ENOMEM; /* interned strings are never freed */
		if (rc) {
			zones = nodes = NULL;
			warnf(warn, warn_arg,
			      "EndpointSlice %s: endpoints[%zu].hints is malformed: ignored", id, i);
		}
	} else if (hints) {
		warnf(warn, warn_arg, "EndpointSlice %s: endpoints[%zu].hints is malformed: ignored",
		      id, i);
	}
	return sp_ep_set_topo(e, node, zones, nodes);
}

static int parse_slice_body(struct json_object *obj, struct sp_slice *s, const char *id,
			    sp_k8s_warn_fn warn, void *warn_arg, char *err, size_t errlen)
{
	struct json_object *arr;
	const char *at;
	size_t i, cnt;

	if (jstr(obj, "addressType", &at) || !at) {
		errf(err, errlen, "EndpointSlice %s: addressType missing", id);
		return -EINVAL;
	}
	if (!strcmp(at, "IPv4")) {
		s->family = 4;
	} else if (!strcmp(at, "IPv6")) {
		s->family = 6;
	} else if (!strcmp(at, "FQDN")) {
		/* Deprecated, and never produced for Services with selectors. */
		return SP_K8S_IGNORED;
	} else {
		errf(err, errlen, "EndpointSlice %s: unknown addressType \"%s\"", id, at);
		return -EINVAL;
	}

	if (jarr(obj, "ports", &arr)) {
		errf(err, errlen, "EndpointSlice %s: ports is not an array", id);
		return -EINVAL;
	}
	cnt = jlen(arr);
	if (cnt && !(s->ports = calloc(cnt, sizeof(*s->ports))))
		return -ENOMEM;
	for (i = 0; i < cnt; i++) {
		struct json_object *p = json_object_array_get_idx(arr, i);
		struct sp_ep_port *ep = &s->ports[s->n_ports];
		const char *name;
		int64_t port = 0;
		uint8_t proto;

		if (!jis(p, json_type_object) || jstr(p, "name", &name) || parse_proto(p, &proto) ||
		    jint(p, "port", 1, 65535, &port)) {
			errf(err, errlen, "EndpointSlice %s: ports[%zu] is malformed", id, i);
			return -EINVAL;
		}
		/*
		 * A nil port means "all ports" (the slice's consumer decides);
		 * kube-proxy cannot DNAT to that, nor can we. SCTP is not ours.
		 */
		if (!port || !proto) {
			warnf(warn, warn_arg, "EndpointSlice %s: ports[%zu] (%s) skipped: %s", id, i,
			      name ? name : "", !port ? "no port number" : "SCTP is not supported");
			continue;
		}
		if (dupstr(&ep->name, name))
			return -ENOMEM;
		ep->proto = proto;
		ep->port = (uint16_t)port;
		s->n_ports++;
	}

	if (jarr(obj, "endpoints", &arr)) {
		errf(err, errlen, "EndpointSlice %s: endpoints is not an array", id);
		return -EINVAL;
	}
	cnt = jlen(arr);
	if (cnt && !(s->endpoints = calloc(cnt, sizeof(*s->endpoints))))
		return -ENOMEM;
	for (i = 0; i < cnt; i++) {
		struct sp_endpoint *e = &s->endpoints[s->n_endpoints];
		char why[256] = "";
		int rc;

		/* One bad endpoint is skipped, not the slice: its other
		 * endpoints are as good as they were (the API server validates
		 * slices, so this is a server or a writer gone wrong). */
		rc = parse_endpoint(json_object_array_get_idx(arr, i), s->family, at, i, e, id,
				    warn, warn_arg, why, sizeof(why));
		if (rc == -ENOMEM)
			return rc;
		if (rc) {
			warnf(warn, warn_arg, "%s: endpoint skipped", why);
			continue;
		}
		s->n_endpoints++;
	}
	return 0;
}

int sp_k8s_parse_slice(struct json_object *obj, struct sp_slice *out, sp_k8s_warn_fn warn,
		       void *warn_arg, char *err, size_t errlen)
{
	char id[320];
	int ret;

	memset(out, 0, sizeof(*out));
	object_label(obj, id, sizeof(id));
	if (!jis(obj, json_type_object)) {
		errf(err, errlen, "EndpointSlice: not a JSON object");
		return -EINVAL;
	}
	ret = parse_meta(obj, LABEL_SERVICE_NAME, &out->ns, &out->name, &out->resource_version,
			 &out->service_name, "EndpointSlice", id, err, errlen);
	/* Slices without the label belong to no Service (kube-proxy ignores them too). */
	if (!ret && (!out->service_name || !*out->service_name))
		ret = SP_K8S_IGNORED;
	if (!ret)
		ret = parse_slice_body(obj, out, id, warn, warn_arg, err, errlen);
	if (ret == -ENOMEM)
		errf(err, errlen, "EndpointSlice %s: out of memory", id);
	if (ret)
		sp_slice_free(out);
	return ret;
}

int sp_k8s_parse_node(struct json_object *obj, struct sp_ip **addrs, size_t *n,
		      sp_k8s_warn_fn warn, void *warn_arg, char *err, size_t errlen)
{
	struct json_object *arr;
	struct sp_ip *ips = NULL;
	size_t i, j, cnt, k = 0;
	char id[320];

	(void)warn;
	(void)warn_arg;
	*addrs = NULL;
	*n = 0;
	object_label(obj, id, sizeof(id));
	if (!jis(obj, json_type_object) || jarr(jget(obj, "status"), "addresses", &arr)) {
		errf(err, errlen, "Node %s: status.addresses is malformed", id);
		return -EINVAL;
	}
	cnt = jlen(arr);
	if (cnt && !(ips = calloc(cnt, sizeof(*ips))))
		return -ENOMEM;
	/* InternalIPs first, then ExternalIPs, each in API order: the first
	 * of each family is then the node's primary address, as kubelet
	 * reports it and kube-proxy's `--nodeport-addresses primary` takes it. */
	for (i = 0; i < 2 * cnt; i++) {
		struct json_object *a = json_object_array_get_idx(arr, i % cnt);
		const char *type, *addr;
		char f[64];

		if (!jis(a, json_type_object) || jstr(a, "type", &type) || jstr(a, "address", &addr) ||
		    !type) {
			errf(err, errlen, "Node %s: status.addresses[%zu] is malformed", id, i % cnt);
			goto fail;
		}
		/* Hostname and the DNS kinds are names, not addresses to serve on. */
		if (strcmp(type, i < cnt ? "InternalIP" : "ExternalIP"))
			continue;
		snprintf(f, sizeof(f), "status.addresses[%zu].address", i % cnt);
		if (parse_ip(addr, &ips[k], "Node", id, f, err, errlen))
			goto fail;
		for (j = 0; j < k && sp_ip_cmp(&ips[j], &ips[k]); j++)
			;
		if (j == k)
			k++;
	}
	if (!k) {
		free(ips);
		ips = NULL;
	}
	*addrs = ips;
	*n = k;
	return 0;
fail:
	free(ips);
	return -EINVAL;
}

int sp_k8s_node_zone(struct json_object *obj, char **zone)
{
	struct json_object *labels = jget(jget(obj, "metadata"), "labels");
	const char *z = NULL;

	*zone = NULL;
	if (jstr(labels, "topology.kubernetes.io/zone", &z) || !z || !*z)
		return 0;
	*zone = strdup(z);
	return *zone ? 0 : -ENOMEM;
}

bool sp_k8s_node_leaving(struct json_object *obj)
{
	struct json_object *md = jget(obj, "metadata"), *taints = NULL, *ts;
	size_t i;

	ts = jget(md, "deletionTimestamp");
	if (ts && jis(ts, json_type_string) && *json_object_get_string(ts))
		return true;
	if (jarr(jget(obj, "spec"), "taints", &taints) || !taints)
		return false;
	for (i = 0; i < jlen(taints); i++) {
		const char *key = NULL;
		struct json_object *t = json_object_array_get_idx(taints, i);

		if (jis(t, json_type_object) && !jstr(t, "key", &key) && key &&
		    !strcmp(key, "ToBeDeletedByClusterAutoscaler"))
			return true;
	}
	return false;
}

/* ---- Deep copies ---- */

static int dup_opt(char **dst, const char *src)
{
	*dst = NULL;
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -ENOMEM;
}

static int dup_mem(void **dst, const void *src, size_t n, size_t size)
{
	*dst = NULL;
	if (!n)
		return 0;
	*dst = malloc(n * size);
	if (!*dst)
		return -ENOMEM;
	memcpy(*dst, src, n * size);
	return 0;
}

int sp_k8s_service_dup(struct sp_service *d, const struct sp_service *s)
{
	size_t i;

	*d = *s;
	d->ns = d->name = d->proxy_name = d->resource_version = NULL;
	d->cluster_ips = d->external_ips = d->lb_ips = NULL;
	d->src_ranges = NULL;
	d->ports = NULL;
	d->n_ports = 0;
	if (dup_opt(&d->ns, s->ns) || dup_opt(&d->name, s->name) ||
	    dup_opt(&d->proxy_name, s->proxy_name) ||
	    dup_opt(&d->resource_version, s->resource_version) ||
	    dup_mem((void **)&d->cluster_ips, s->cluster_ips, s->n_cluster_ips, sizeof(struct sp_ip)) ||
	    dup_mem((void **)&d->external_ips, s->external_ips, s->n_external_ips,
		    sizeof(struct sp_ip)) ||
	    dup_mem((void **)&d->lb_ips, s->lb_ips, s->n_lb_ips, sizeof(struct sp_ip)) ||
	    dup_mem((void **)&d->src_ranges, s->src_ranges, s->n_src_ranges,
		    sizeof(struct sp_cidr)))
		goto fail;
	if (s->n_ports && !(d->ports = calloc(s->n_ports, sizeof(*d->ports))))
		goto fail;
	for (i = 0; i < s->n_ports; i++) {
		d->ports[i] = s->ports[i];
		d->ports[i].name = d->ports[i].target_port_name = NULL;
		d->n_ports++;
		if (dup_opt(&d->ports[i].name, s->ports[i].name) ||
		    dup_opt(&d->ports[i].target_port_name, s->ports[i].target_port_name))
			goto fail;
	}
	return 0;
fail:
	sp_service_free(d);
	return -ENOMEM;
}

int sp_k8s_slice_dup(struct sp_slice *d, const struct sp_slice *s)
{
	size_t i;

	*d = *s;
	d->ns = d->name = d->service_name = d->resource_version = NULL;
	d->ports = NULL;
	d->endpoints = NULL;
	d->n_ports = d->n_endpoints = 0;
	if (dup_opt(&d->ns, s->ns) || dup_opt(&d->name, s->name) ||
	    dup_opt(&d->service_name, s->service_name) ||
	    dup_opt(&d->resource_version, s->resource_version))
		goto fail;
	if (s->n_ports && !(d->ports = calloc(s->n_ports, sizeof(*d->ports))))
		goto fail;
	for (i = 0; i < s->n_ports; i++) {
		d->ports[i] = s->ports[i];
		d->ports[i].name = NULL;
		d->n_ports++;
		if (dup_opt(&d->ports[i].name, s->ports[i].name))
			goto fail;
	}
	if (s->n_endpoints && !(d->endpoints = calloc(s->n_endpoints, sizeof(*d->endpoints))))
		goto fail;
	for (i = 0; i < s->n_endpoints; i++) {
		d->endpoints[i] = s->endpoints[i]; /* the node name is interned */
		d->n_endpoints++;
	}
	return 0;
fail:
	sp_slice_free(d);
	return -ENOMEM;
}

/* ---- Whole documents ---- */

static int model_push_service(struct sp_model *m, struct sp_service *s)
{
	struct sp_service *n = realloc(m->services, (m->n_services + 1) * sizeof(*n));

	if (!n)
		return -ENOMEM;
	m->services = n;
	m->services[m->n_services++] = *s;
	return 0;
}

static int model_push_slice(struct sp_model *m, struct sp_slice *s)
{
	struct sp_slice *n = realloc(m->slices, (m->n_slices + 1) * sizeof(*n));

	if (!n)
		return -ENOMEM;
	m->slices = n;
	m->slices[m->n_slices++] = *s;
	return 0;
}

/* One object of a known kind into *m. Returns 0 (added or ignored), -EINVAL, -ENOMEM. */
static int add_object(struct sp_model *m, struct json_object *obj, const char *kind,
		      sp_k8s_warn_fn warn, void *warn_arg)
{
	char err[512];
	int ret;

	if (!strcmp(kind, "Service")) {
		struct sp_service s;

		ret = sp_k8s_parse_service(obj, &s, warn, warn_arg, err, sizeof(err));
		if (!ret && (ret = model_push_service(m, &s)))
			sp_service_free(&s);
	} else if (!strcmp(kind, "EndpointSlice")) {
		struct sp_slice s;

		ret = sp_k8s_parse_slice(obj, &s, warn, warn_arg, err, sizeof(err));
		if (!ret && (ret = model_push_slice(m, &s)))
			sp_slice_free(&s);
	} else {
		snprintf(err, sizeof(err), "unsupported kind \"%s\"", kind);
		ret = -EINVAL;
	}
	if (ret == -EINVAL)
		warnf(warn, warn_arg, "skipped: %s", err);
	return ret < 0 ? ret : 0;
}

int sp_k8s_model_add_json(struct sp_model *m, const char *json, sp_k8s_warn_fn warn,
			  void *warn_arg)
{
	struct json_object *doc, *items;
	const char *kind = NULL, *ikind;
	int ret = 0, skipped = 0;
	size_t i, len;

	doc = json_tokener_parse(json);
	if (!jis(doc, json_type_object) || jstr(doc, "kind", &kind) || !kind) {
		json_object_put(doc);
		return -EINVAL;
	}
	len = strlen(kind);
	if (len >= 4 && !strcmp(kind + len - 4, "List")) {
		if (jarr(doc, "items", &items)) {
			json_object_put(doc);
			return -EINVAL;
		}
		for (i = 0; i < jlen(items); i++) {
			struct json_object *it = json_object_array_get_idx(items, i);
			char k[64];

			/* Typed lists omit kind on their items; a v1 List carries it. */
			if (!strcmp(kind, "List")) {
				if (jstr(it, "kind", &ikind) || !ikind)
					ikind = "";
				snprintf(k, sizeof(k), "%s", ikind);
			} else {
				snprintf(k, sizeof(k), "%.*s", (int)(len - 4), kind);
			}
			ret = add_object(m, it, k, warn, warn_arg);
			if (ret == -ENOMEM)
				break;
			skipped += ret == -EINVAL;
		}
	} else {
		ret = add_object(m, doc, kind, warn, warn_arg);
		skipped += ret == -EINVAL;
	}
	json_object_put(doc);
	return ret == -ENOMEM ? -ENOMEM : skipped;
}
