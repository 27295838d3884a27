// SPDX-License-Identifier: Apache-2.0
/*
 * Model -> desired datapath state (user/resolve.c): frontends per family,
 * port matching through EndpointSlices, the readiness fallback, proxy-name
 * filtering, traffic policies, duplicate frontends and stable ids.
 * Models are written as config YAML (user/config.c) and, where the test
 * needs something the config file rejects, edited after parsing.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>

#include "test.h"
#include "svcplane.h"
#include "config.h"
#include "model.h"
#include "resolve.h"

struct warns {
	char buf[8192];
	size_t len;
	int n;
};

static void collect(void *arg, const char *msg)
{
	struct warns *w = arg;
	int r;

	w->n++;
	r = snprintf(w->buf + w->len, sizeof(w->buf) - w->len, "%s\n", msg);
	if (r > 0 && w->len + (size_t)r < sizeof(w->buf))
		w->len += (size_t)r;
}

/* With load_sorted, load() gives models sorted and flagged as the
 * Kubernetes watcher's view is (model.h, sorted), so sp_resolve_some
 * takes its binary searches instead of its walks. */
static bool load_sorted;

static bool load(const char *yaml, struct sp_model *m)
{
	char err[512];
	int rc;

	memset(m, 0, sizeof(*m));
	rc = sp_config_parse_buf(yaml, strlen(yaml), "test.yaml", m, err, sizeof(err));
	if (!rc && load_sorted)
		sp_model_sort(m);
	return ASSERT_EQ(rc, 0, err);
}

/* Resolve with node and proxy names (either may be NULL); warnings go to w. */
static bool resolve(const struct sp_model *m, const char *node, const char *proxy,
		    struct sp_desired *d, struct warns *w)
{
	struct sp_resolve_opts o = { .node_name = node, .proxy_name = proxy };

	memset(w, 0, sizeof(*w));
	return ASSERT_EQ(sp_resolve(m, &o, d, collect, w), 0, "sp_resolve");
}

static const struct sp_want_svc *find(const struct sp_desired *d, const char *id)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		if (!strcmp(d->svc[i].id, id))
			return &d->svc[i];
	return NULL;
}

static bool ip_is(const struct sp_ip *ip, const char *s)
{
	struct sp_ip want;

	return !sp_ip_parse(s, &want) && !sp_ip_cmp(ip, &want);
}

/* Does w have a frontend s:port with these flags? */
static bool has_fe(const struct sp_want_svc *w, const char *s, uint16_t port, uint16_t flags)
{
	size_t i;

	for (i = 0; w && i < w->n_fe; i++)
		if (ip_is(&w->fe[i].ip, s) && w->fe[i].port == port && w->fe[i].flags == flags)
			return true;
	return false;
}

/* Backend i is s:port with weight wt? */
static bool be_is(const struct sp_want_svc *w, size_t i, const char *s, uint16_t port, uint16_t wt)
{
	return w && i < w->n_be && ip_is(&w->be[i].ip, s) && w->be[i].port == port &&
	       w->be[i].weight == wt;
}

static void test_default_config(void)
{
	static const char *const ids[] = {
		"demo/dns:dns/udp/v4",	  "demo/dns:dns/udp/v6",  "demo/empty:http/tcp/v4",
		"demo/empty:http/tcp/v6", "demo/web:http/tcp/v4", "demo/web:http/tcp/v6",
	};
	const struct sp_want_svc *w;
	struct sp_desired d = { 0 };
	struct sp_model m;
	struct warns wr;
	size_t i;

	if (!load(sp_default_config, &m))
		return;
	if (!resolve(&m, "node-a", NULL, &d, &wr))
		goto out;
	ASSERT_EQ(wr.n, 0, "no warnings");
	if (!ASSERT_EQ(d.n, 6, "want_svcs"))
		goto out;
	for (i = 0; i < 6; i++)
		ASSERT_STREQ(d.svc[i].id, ids[i], "sorted ids");

	w = find(&d, "demo/web:http/tcp/v4");
	ASSERT_EQ(w->proto, IPPROTO_TCP, "web proto");
	ASSERT_EQ(w->family, SP_FAMILY_V4, "web family");
	ASSERT_EQ(w->flags, 0, "web flags");
	ASSERT_EQ(w->n_fe, 3, "web v4 frontends");
	ASSERT_TRUE(has_fe(w, "10.96.0.10", 80, 0), "clusterIP frontend");
	ASSERT_TRUE(has_fe(w, "10.10.0.100", 80, SP_SVC_F_EXTERNAL), "LB frontend");
	ASSERT_TRUE(has_fe(w, "0.0.0.0", 30080, SP_SVC_F_NODEPORT), "NodePort wildcard");
	ASSERT_EQ(w->n_be, 3, "web v4 backends");
	ASSERT_TRUE(be_is(w, 0, "10.244.0.11", 8080, 1) && be_is(w, 1, "10.244.0.12", 8080, 1) &&
			    be_is(w, 2, "10.244.0.13", 8080, 1),
		    "web v4 backends, canonical order");

	w = find(&d, "demo/web:http/tcp/v6");
	ASSERT_EQ(w->family, SP_FAMILY_V6, "web v6 family");
	ASSERT_EQ(w->n_fe, 3, "web v6 frontends");
	ASSERT_TRUE(has_fe(w, "fd00:96::10", 80, 0), "v6 clusterIP");
	ASSERT_TRUE(has_fe(w, "fd00:10::100", 80, SP_SVC_F_EXTERNAL), "v6 LB IP");
	ASSERT_TRUE(has_fe(w, "::", 30080, SP_SVC_F_NODEPORT), "v6 NodePort wildcard");
	ASSERT_TRUE(be_is(w, 2, "fd00:244::13", 8080, 1), "v6 backend");

	w = find(&d, "demo/dns:dns/udp/v4");
	ASSERT_EQ(w->proto, IPPROTO_UDP, "dns proto");
	ASSERT_EQ(w->n_fe, 1, "dns frontends");
	ASSERT_TRUE(has_fe(w, "10.96.0.53", 53, 0), "dns clusterIP");
	ASSERT_TRUE(be_is(w, 0, "10.244.0.11", 5353, 1), "dns backend port from the slice");

	w = find(&d, "demo/empty:http/tcp/v6");
	ASSERT_EQ(w->n_fe, 1, "empty frontends");
	ASSERT_EQ(w->n_be, 0, "empty: no backends (reject)");
out:
	sp_desired_free(&d);
	sp_model_free(&m);
}

/* One v4-only, one v6-only and one dual-stack Service; stray-family addresses ignored. */
static void test_dual_stack(void)
{
	static const char yaml[] =
		"services:\n"
		"  - {name: v4, type: NodePort, clusterIPs: [10.96.0.1],\n"
		"     externalIPs: [192.0.2.1, \"2001:db8::1\"],\n"
		"     ports: [{port: 80, nodePort: 30001}]}\n"
		"  - {name: v6, clusterIPs: [\"fd00::2\"], ports: [{port: 80}]}\n"
		"  - {name: ds, clusterIPs: [\"fd00::3\", 10.96.0.3], ports: [{port: 80}]}\n"
		"endpointSlices:\n"
		"  - {name: v4-a, serviceName: v4, addressType: IPv4, ports: [{port: 8080}],\n"
		"     endpoints: [{addresses: [10.0.0.1]}]}\n"
		"  - {name: v4-b, serviceName: v4, addressType: IPv6, ports: [{port: 8080}],\n"
		"     endpoints: [{addresses: [\"fd00::a\"]}]}\n"
		"  - {name: ds-a, serviceName: ds, addressType: IPv6, ports: [{port: 8080}],\n"
		"     endpoints: [{addresses: [\"fd00::b\"]}]}\n"
		"  - {name: ds-b, serviceName: ds, addressType: IPv4, ports: [{port: 8080}],\n"
		"     endpoints: [{addresses: [10.0.0.2]}, {addresses: [10.0.0.3]}]}\n";
	const struct sp_want_svc *w;
	struct sp_desired d = { 0 };
	struct sp_model m;
	struct warns wr;

	if (!load(yaml, &m))
		return;
	if (!resolve(&m, NULL, NULL, &d, &wr))
		goto out;
	ASSERT_EQ(d.n, 4, "v4, v6 and two for ds");
	ASSERT_TRUE(find(&d, "default/v4:/tcp/v4") && !find(&d, "default/v4:/tcp/v6"), "v4 only");
	ASSERT_TRUE(find(&d, "default/v6:/tcp/v6") && !find(&d, "default/v6:/tcp/v4"), "v6 only");
	w = find(&d, "default/v4:/tcp/v4");
	ASSERT_EQ(w->n_fe, 3, "clusterIP, v4 externalIP, NodePort: no v6 externalIP");
	ASSERT_TRUE(has_fe(w, "0.0.0.0", 30001, SP_SVC_F_NODEPORT), "v4 NodePort only");
	ASSERT_EQ(w->n_be, 1, "v4 backends only");
	ASSERT_CONTAINS(wr.buf, "default/v4: IPv6 external/LoadBalancer addresses ignored",
			"stray v6 externalIP warned");
	w = find(&d, "default/ds:/tcp/v4");
	ASSERT_EQ(w->n_be, 2, "ds v4 backends");
	ASSERT_TRUE(has_fe(w, "10.96.0.3", 80, 0), "ds v4 clusterIP");
	w = find(&d, "default/ds:/tcp/v6");
	ASSERT_TRUE(be_is(w, 0, "fd00::b", 8080, 1), "ds v6 backend");
	w = find(&d, "default/v6:/tcp/v6");
	ASSERT_EQ(w->n_be, 0, "v6: no slices");
out:
	sp_desired_free(&d);
	sp_model_free(&m);
}

/* Service ports meet slice ports by name and protocol; the slice's number wins. */
static void test_port_matching(void)
{
	static const char yaml[] =
		"services:\n"
		"  - name: multi\n"
		"    clusterIP: 10.96.0.1\n"
		"    ports:\n"
		"      - {name: http, port: 80, targetPort: 1234}\n"
		"      - {name: metrics, port: 9000, targetPort: metrics}\n"
		"      - {name: dns, port: 53, protocol: UDP}\n"
		"      - {name: nomatch, port: 81}\n"
		"  - {name: single, clusterIP: 10.96.0.2, ports: [{port: 80, targetPort: 8080}]}\n"
		"  - {name: namedonly, clusterIP: 10.96.0.3, ports: [{port: 80, name: web}]}\n"
		"  - {name: emptied, clusterIP: 10.96.0.4, ports: [{port: 443, name: https}]}\n"
		"endpointSlices:\n"
		"  - name: multi-1\n"
		"    serviceName: multi\n"
		"    addressType: IPv4\n"
		"    ports:\n"
		"      - {name: metrics, port: 9090}\n"
		"      - {name: dns, port: 5353, protocol: TCP}\n"
		"      - {name: http, port: 8080}\n"
		"    endpoints: [{addresses: [10.0.0.1]}]\n"
		"  - name: single-1\n"
		"    serviceName: single\n"
		"    addressType: IPv4\n"
		"    ports: [{port: 8081}]\n"
		"    endpoints: [{addresses: [10.0.0.2]}]\n"
		"  - name: namedonly-1\n"
		"    serviceName: namedonly\n"
		"    addressType: IPv4\n"
		"    ports: [{port: 8080}]\n"
		"    endpoints: [{addresses: [10.0.0.3]}]\n"
		/* What kube-apiserver leaves in default/kubernetes when it
		 * shuts down, and the controller's placeholder for a Service
		 * without pods: no endpoints, no ports. Empty, not broken. */
		"  - {name: emptied-1, serviceName: emptied, addressType: IPv4, endpoints: []}\n";
	struct sp_desired d = { 0 };
	struct sp_model m;
	struct warns wr;

	if (!load(yaml, &m))
		return;
	if (!resolve(&m, NULL, NULL, &d, &wr))
		goto out;
	ASSERT_TRUE(be_is(find(&d, "default/multi:http/tcp/v4"), 0, "10.0.0.1", 8080, 1),
		    "named port: slice number wins over numeric targetPort");
	ASSERT_TRUE(be_is(find(&d, "default/multi:metrics/tcp/v4"), 0, "10.0.0.1", 9090, 1),
		    "named port with named targetPort");
	ASSERT_EQ(find(&d, "default/multi:dns/udp/v4")->n_be, 0, "same name, other protocol");
	ASSERT_EQ(find(&d, "default/multi:nomatch/tcp/v4")->n_be, 0, "no slice port of that name");
	ASSERT_TRUE(be_is(find(&d, "default/single:/tcp/v4"), 0, "10.0.0.2", 8081, 1),
		    "unnamed port matches the unnamed slice port");
	ASSERT_EQ(find(&d, "default/namedonly:web/tcp/v4")->n_be, 0,
		  "named port does not match an unnamed slice port");
	ASSERT_CONTAINS(wr.buf, "default/multi port \"nomatch\" (tcp, IPv4): no EndpointSlice",
			"warned: nomatch");
	ASSERT_CONTAINS(wr.buf, "default/multi port \"dns\" (udp, IPv4)", "warned: dns");
	ASSERT_CONTAINS(wr.buf, "default/namedonly port \"web\"", "warned: namedonly");
	ASSERT_EQ(find(&d, "default/emptied:https/tcp/v4")->n_be, 0, "emptied slice");
	ASSERT_TRUE(!strstr(wr.buf, "default/emptied"), "no warning for an empty slice");
	ASSERT_EQ(wr.n, 3, "warnings");
out:
	sp_desired_free(&d);
	sp_model_free(&m);
}

#define READINESS_SVC                                                                              \
	"services:\n"                                                                              \
	"  - {name: s, clusterIP: 10.96.0.1, ports: [{port: 80}]}\n"                               \
	"endpointSlices:\n"                                                                        \
	"  - name: s-1\n"                                                                          \
	"    serviceName: s\n"                                                                     \
	"    addressType: IPv4\n"                                                                  \
	"    ports: [{port: 8080}]\n"                                                              \
	"    endpoints:\n"

#define EP(addr, ready, serving, term)                                                             \
	"      - {addresses: [" addr "], conditions: {ready: " ready ", serving: " serving         \
	", terminating: " term "}}\n"

/* KEP-1669: ready first; serving+terminating only when nothing is ready. */
static void test_readiness(void)
{
	static const struct {
		const char *name, *eps;
		size_t n_be;
		const char *be[3];
		uint16_t wt[3];
	} cases[] = {
		{ "all ready",
		  EP("10.0.0.2", "true", "true", "false") EP("10.0.0.1", "true", "true", "false"),
		  2,
		  { "10.0.0.1", "10.0.0.2" },
		  { 1, 1 } },
		{ "ready wins, terminating kept at weight 0, not-serving left out",
		  EP("10.0.0.1", "true", "true", "false") EP("10.0.0.2", "false", "true", "true")
			  EP("10.0.0.3", "false", "false", "true"),
		  2,
		  { "10.0.0.1", "10.0.0.2" },
		  { 1, 0 } },
		{ "none ready: serving+terminating take new flows",
		  EP("10.0.0.3", "false", "true", "true") EP("10.0.0.1", "false", "false", "true")
			  EP("10.0.0.2", "false", "false", "false"),
		  1,
		  { "10.0.0.3" },
		  { 1 } },
		{ "nothing serving: no backends",
		  EP("10.0.0.1", "false", "false", "true")
			  EP("10.0.0.2", "false", "false", "false"),
		  0,
		  {},
		  {} },
		{ "serving but not terminating and not ready: left out",
		  EP("10.0.0.1", "false", "true", "false") EP("10.0.0.2", "false", "true", "true"),
		  1,
		  { "10.0.0.2" },
		  { 1 } },
	};
	char yaml[2048];
	size_t i, j;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct sp_want_svc *w;
		struct sp_desired d = { 0 };
		struct sp_model m;
		struct warns wr;

		snprintf(yaml, sizeof(yaml), "%s%s", READINESS_SVC, cases[i].eps);
		if (!load(yaml, &m))
			continue;
		if (resolve(&m, NULL, NULL, &d, &wr)) {
			w = find(&d, "default/s:/tcp/v4");
			if (ASSERT_EQ(w->n_be, cases[i].n_be, cases[i].name))
				for (j = 0; j < cases[i].n_be; j++)
					ASSERT_TRUE(
						be_is(w, j, cases[i].be[j], 8080, cases[i].wt[j]),
						cases[i].name);
		}
		sp_desired_free(&d);
		sp_model_free(&m);
	}
}

/* Slices of one Service are merged; an endpoint in two slices counts once, at its best. */
static void test_merge_dedup(void)
{
	static const char yaml[] = READINESS_SVC EP("10.0.0.1", "false", "false", "false")
		EP("10.0.0.2", "true", "true",
		   "false") "  - name: s-2\n"
			    "    serviceName: s\n"
			    "    addressType: IPv4\n"
			    "    ports: [{port: 8080}]\n"
			    "    endpoints:\n" EP("10.0.0.1", "true", "true", "false")
				    EP("10.0.0.2", "true", "true", "false")
					    EP("10.0.0.3", "true", "true",
					       "false") "  - name: s-3\n"
							"    serviceName: s\n"
							"    addressType: IPv4\n"
							"    ports: [{port: 8081}]\n"
							"    endpoints:\n" EP("10.0.0.3", "true",
									      "true", "false");
	const struct sp_want_svc *w;
	struct sp_desired d = { 0 };
	struct sp_model m;
	struct warns wr;

	if (!load(yaml, &m))
		return;
	if (!resolve(&m, NULL, NULL, &d, &wr))
		goto out;
	w = find(&d, "default/s:/tcp/v4");
	if (!ASSERT_EQ(w->n_be, 4, "three addresses, one on two ports"))
		goto out;
	ASSERT_TRUE(be_is(w, 0, "10.0.0.1", 8080, 1), "not ready in one slice, ready in another");
	ASSERT_TRUE(be_is(w, 1, "10.0.0.2", 8080, 1), "duplicate merged");
	ASSERT_TRUE(be_is(w, 2, "10.0.0.3", 8080, 1) && be_is(w, 3, "10.0.0.3", 8081, 1),
		    "same address, other port: distinct backends");
out:
	sp_desired_free(&d);
	sp_model_free(&m);
}

static void test_proxy_name(void)
{
	static const char yaml[] =
		"services:\n"
		"  - {name: mine, clusterIP: 10.96.0.1, ports: [{port: 80}],\n"
		"     labels: {service.kubernetes.io/service-proxy-name: svcplane}}\n"
		"  - {name: theirs, clusterIP: 10.96.0.2, ports: [{port: 80}],\n"
		"     labels: {service.kubernetes.io/service-proxy-name: other}}\n"
		"  - {name: blank, clusterIP: 10.96.0.3, ports: [{port: 80}],\n"
		"     labels: {service.kubernetes.io/service-proxy-name: \"\"}}\n"
		"  - {name: plain, clusterIP: 10.96.0.4, ports: [{port: 80}], labels: {app: x}}\n";
	struct sp_desired d = { 0 };
	struct sp_model m;
	struct warns wr;

	if (!load(yaml, &m))
		return;
	if (resolve(&m, NULL, NULL, &d, &wr)) {
		ASSERT_EQ(d.n, 1, "without --proxy-name: only unlabelled Services");
		ASSERT_TRUE(find(&d, "default/plain:/tcp/v4") != NULL, "plain");
	}
	sp_desired_free(&d);
	if (resolve(&m, NULL, "svcplane", &d, &wr)) {
		ASSERT_EQ(d.n, 1, "with --proxy-name: only the matching label");
		ASSERT_TRUE(find(&d, "default/mine:/tcp/v4") != NULL, "mine");
	}
	sp_desired_free(&d);
	if (resolve(&m, NULL, "nobody", &d, &wr))
		ASSERT_EQ(d.n, 0, "no Service carries that name");
	sp_desired_free(&d);
	sp_model_free(&m);
}

/*
 * Two Services claiming one frontend (the config file refuses this, the
 * Kubernetes source may see it): the first by id keeps it, the other is
 * warned about and keeps its other frontends, or is dropped without any.
 */
static void test_duplicate_frontend(void)
{
	static const char yaml[] =
		"services:\n"
		"  - {name: b, type: NodePort, clusterIP: 10.96.0.2, externalIPs: [192.0.2.2],\n"
		"     ports: [{port: 80, nodePort: 30002}]}\n"
		"  - {name: a, clusterIP: 10.96.0.1, externalIPs: [192.0.2.1],\n"
		"     ports: [{port: 80}]}\n"
		"  - {name: c, type: NodePort, clusterIP: 10.96.0.3,\n"
		"     ports: [{port: 80, nodePort: 30003}]}\n"
		"  - {name: z, clusterIP: 10.96.0.9, ports: [{port: 80}]}\n";
	const struct sp_want_svc *a, *b, *c;
	struct sp_desired d = { 0 };
	struct sp_model m;
	struct warns wr;

	if (!load(yaml, &m))
		return;
	/* b's clusterIP and a's externalIP become a's clusterIP; c's nodePort, b's; z's IP, a's. */
	m.services[0].cluster_ips[0] = m.services[1].cluster_ips[0];
	m.services[1].external_ips[0] = m.services[0].cluster_ips[0];
	m.services[2].ports[0].node_port = 30002;
	m.services[3].cluster_ips[0] = m.services[1].cluster_ips[0];
	if (!resolve(&m, NULL, NULL, &d, &wr))
		goto out;
	a = find(&d, "default/a:/tcp/v4");
	b = find(&d, "default/b:/tcp/v4");
	c = find(&d, "default/c:/tcp/v4");
	if (!ASSERT_TRUE(a && b && c, "a, b and c resolved"))
		goto out;
	ASSERT_EQ(a->n_fe, 1, "a: clusterIP once (its externalIP duplicated it)");
	ASSERT_TRUE(has_fe(a, "10.96.0.1", 80, 0), "a keeps the clusterIP");
	ASSERT_EQ(b->n_fe, 2, "b: lost the clusterIP to a");
	ASSERT_TRUE(has_fe(b, "192.0.2.2", 80, SP_SVC_F_EXTERNAL), "b keeps its externalIP");
	ASSERT_TRUE(has_fe(b, "0.0.0.0", 30002, SP_SVC_F_NODEPORT), "b keeps its nodePort");
	ASSERT_EQ(c->n_fe, 1, "c: lost the nodePort to b");
	ASSERT_TRUE(has_fe(c, "10.96.0.3", 80, 0), "c keeps its clusterIP");
	ASSERT_TRUE(!find(&d, "default/z:/tcp/v4"), "z: nothing left, dropped");
	ASSERT_EQ(d.n, 3, "a, b, c");
	ASSERT_CONTAINS(wr.buf,
			"default/b:/tcp/v4: frontend 10.96.0.1 port 80 is already claimed by "
			"default/a:/tcp/v4",
			"warned: b");
	ASSERT_CONTAINS(wr.buf, "default/a:/tcp/v4: frontend 10.96.0.1 port 80 listed twice",
			"warned: a");
	ASSERT_CONTAINS(wr.buf, "frontend 0.0.0.0 port 30002 is already claimed by default/b",
			"warned: c");
	ASSERT_CONTAINS(wr.buf, "default/z:/tcp/v4: every frontend is claimed", "warned: z");
out:
	sp_desired_free(&d);
	sp_model_free(&m);
}

#define LOCAL_SLICE(svc)                                                                           \
	"  - name: " svc "-1\n"                                                                    \
	"    serviceName: " svc "\n"                                                               \
	"    addressType: IPv4\n"                                                                  \
	"    ports: [{port: 8080}]\n"                                                              \
	"    endpoints:\n"                                                                         \
	"      - {addresses: [10.0.0.1], nodeName: node-a}\n"                                      \
	"      - {addresses: [10.0.0.2], nodeName: node-b}\n"                                      \
	"      - {addresses: [10.0.0.3]}\n"

/*
 * Per-frontend backend sets (kube-proxy's topology.go): clusterIPs follow
 * internalTrafficPolicy, external frontends externalTrafficPolicy, each set
 * with its own table; an eTP Local Service gets the cluster view of its
 * external frontends with every endpoint, for inside clients.
 */
static void test_traffic_policy(void)
{
	static const char yaml[] =
		"services:\n"
		"  - {name: itp, clusterIP: 10.96.0.1, internalTrafficPolicy: Local,\n"
		"     ports: [{port: 80}]}\n"
		"  - {name: itp-ext, clusterIP: 10.96.0.2, internalTrafficPolicy: Local,\n"
		"     externalIPs: [192.0.2.2], ports: [{port: 80}]}\n"
		"  - {name: both, type: NodePort, clusterIP: 10.96.0.3,\n"
		"     internalTrafficPolicy: Local,\n"
		"     externalTrafficPolicy: Local, ports: [{port: 80, nodePort: 30003}]}\n"
		"  - {name: etp, type: NodePort, clusterIP: 10.96.0.4,\n"
		"     externalTrafficPolicy: Local,\n"
		"     ports: [{port: 80, nodePort: 30004}]}\n"
		"  - {name: aff, clusterIP: 10.96.0.5, sessionAffinity: ClientIP,\n"
		"     sessionAffinityTimeoutSeconds: 60, ports: [{port: 80}]}\n"
		"  - {name: plain, type: NodePort, clusterIP: 10.96.0.6,\n"
		"     ports: [{port: 80, nodePort: 30006}]}\n"
		"endpointSlices:\n" LOCAL_SLICE("itp") LOCAL_SLICE("itp-ext") LOCAL_SLICE("both")
			LOCAL_SLICE("etp") LOCAL_SLICE("plain");
	const struct sp_want_svc *w;
	struct sp_desired d = { 0 };
	struct sp_model m;
	struct warns wr;

	if (!load(yaml, &m))
		return;
	if (resolve(&m, "node-a", NULL, &d, &wr)) {
		w = find(&d, "default/itp:/tcp/v4");
		ASSERT_TRUE(w && w->n_be == 1 && be_is(w, 0, "10.0.0.1", 8080, 1),
			    "itp Local, clusterIP only: node-a's endpoint only");
		ASSERT_EQ(w ? w->flags : 99, 0, "itp: a local endpoint: no DROP_EMPTY");
		/* itp Local + Cluster external: two sets. */
		w = find(&d, "default/itp-ext:/tcp/v4");
		ASSERT_TRUE(w && w->n_fe == 1 && has_fe(w, "10.96.0.2", 80, 0) && w->n_be == 1 &&
				    be_is(w, 0, "10.0.0.1", 8080, 1),
			    "itp-ext: the clusterIP keeps the id, node-a's endpoint only");
		w = find(&d, "default/itp-ext:/tcp/v4/ext");
		ASSERT_TRUE(w && w->n_fe == 1 && has_fe(w, "192.0.2.2", 80, SP_SVC_F_EXTERNAL) &&
				    w->n_be == 3,
			    "itp-ext/ext: the externalIP, all endpoints");
		ASSERT_TRUE(!find(&d, "default/itp-ext:/tcp/v4/all"), "itp-ext: no cluster view");
		/* Both Local: one set, and the cluster view. */
		w = find(&d, "default/both:/tcp/v4");
		ASSERT_TRUE(w && w->n_be == 1 && be_is(w, 0, "10.0.0.1", 8080, 1) && w->n_fe == 2,
			    "both Local: one set, node-a's endpoint only");
		ASSERT_TRUE(w && has_fe(w, "10.96.0.3", 80, 0) &&
				    has_fe(w, "0.0.0.0", 30003,
					   SP_SVC_F_NODEPORT | SP_SVC_F_LOCAL_ONLY),
			    "both: LOCAL_ONLY on the NodePort only");
		w = find(&d, "default/both:/tcp/v4/all");
		ASSERT_TRUE(w && w->n_fe == 1 && w->n_be == 3 &&
				    has_fe(w, "0.0.0.0", 30003,
					   SP_SVC_F_NODEPORT | SP_SVC_F_CLUSTER_VIEW),
			    "both/all: the NodePort in the cluster view, all endpoints");
		/* etp Local + itp Cluster: two sets and the view. */
		w = find(&d, "default/etp:/tcp/v4");
		ASSERT_TRUE(w && w->n_fe == 1 && w->n_be == 3 && has_fe(w, "10.96.0.4", 80, 0),
			    "etp: the clusterIP with all endpoints");
		w = find(&d, "default/etp:/tcp/v4/ext");
		ASSERT_TRUE(w && w->n_fe == 1 && w->n_be == 1 && be_is(w, 0, "10.0.0.1", 8080, 1) &&
				    has_fe(w, "0.0.0.0", 30004,
					   SP_SVC_F_NODEPORT | SP_SVC_F_LOCAL_ONLY),
			    "etp/ext: the NodePort, LOCAL_ONLY, node-a's endpoint only");
		ASSERT_TRUE(find(&d, "default/etp:/tcp/v4/all") != NULL, "etp: a cluster view");
		w = find(&d, "default/aff:/tcp/v4");
		ASSERT_EQ(w ? w->flags : 0, SP_SVC_F_AFFINITY, "affinity flag");
		ASSERT_EQ(w ? w->affinity_timeout : 0, 60, "affinity timeout");
		/* Cluster/Cluster: one set as before, remote endpoints marked. */
		w = find(&d, "default/plain:/tcp/v4");
		ASSERT_TRUE(w && w->n_fe == 2 && w->n_be == 3, "plain: one set, every frontend");
		ASSERT_TRUE(w && w->be[0].flags == 0 && w->be[1].flags == SP_BE_F_REMOTE &&
				    w->be[2].flags == 0,
			    "node-b's endpoint is remote; one without nodeName is not");
		ASSERT_TRUE(!find(&d, "default/plain:/tcp/v4/ext"), "plain: no split");
	}
	sp_desired_free(&d);
	if (resolve(&m, "node-c", NULL, &d, &wr)) {
		w = find(&d, "default/both:/tcp/v4");
		ASSERT_TRUE(w && w->n_be == 0 && w->flags == SP_SVC_F_DROP_EMPTY,
			    "no local endpoint, endpoints elsewhere: empty, DROP_EMPTY");
		w = find(&d, "default/etp:/tcp/v4/ext");
		ASSERT_TRUE(w && w->n_be == 0 && w->flags == SP_SVC_F_DROP_EMPTY,
			    "etp/ext on node-c: DROP_EMPTY");
		w = find(&d, "default/plain:/tcp/v4");
		ASSERT_TRUE(w && w->be[0].flags == SP_BE_F_REMOTE && w->be[1].flags == SP_BE_F_REMOTE,
			    "node-c: node-a's and node-b's endpoints are remote");
	}
	sp_desired_free(&d);
	if (resolve(&m, NULL, NULL, &d, &wr)) {
		w = find(&d, "default/both:/tcp/v4");
		ASSERT_TRUE(w && w->n_be == 3 && w->n_fe == 2, "node unknown: all endpoints, one set");
		ASSERT_TRUE(!find(&d, "default/both:/tcp/v4/all"), "node unknown: no view");
		w = find(&d, "default/plain:/tcp/v4");
		ASSERT_TRUE(w && !w->be[0].flags && !w->be[1].flags && !w->be[2].flags,
			    "node unknown: nothing is remote");
	}
	sp_desired_free(&d);
	sp_model_free(&m);
}

/* A Service with no endpoint anywhere is rejected, not dropped, even
 * under a Local policy (kube-proxy: "has no endpoints"). */
static void test_local_no_endpoints(void)
{
	static const char yaml[] = "services:\n"
				   "  - {name: lonely, type: NodePort, clusterIP: 10.96.0.9,\n"
				   "     externalTrafficPolicy: Local, internalTrafficPolicy: Local,\n"
				   "     ports: [{port: 80, nodePort: 30009}]}\n";
	const struct sp_want_svc *w;
	struct sp_desired d = { 0 };
	struct sp_model m;
	struct warns wr;

	if (!load(yaml, &m))
		return;
	if (resolve(&m, "node-a", NULL, &d, &wr)) {
		w = find(&d, "default/lonely:/tcp/v4");
		ASSERT_TRUE(w && w->n_be == 0 && w->flags == 0, "no endpoint at all: no DROP_EMPTY");
	}
	sp_desired_free(&d);
	sp_model_free(&m);
}

/* What the proxy ignores: headless Services, LB IPs and nodePorts of the wrong type. */
static void test_ignored(void)
{
	static const char yaml[] =
		"services:\n"
		"  - {name: headless, clusterIP: None, ports: [{port: 80}]}\n"
		"  - {name: lb, type: LoadBalancer, clusterIP: 10.96.0.2,\n"
		"     loadBalancerIPs: [198.51.100.2], ports: [{port: 80, nodePort: 30002}]}\n"
		"  - {name: sctp, clusterIP: 10.96.0.3, ports: [{port: 80}]}\n"
		"endpointSlices:\n"
		"  - {name: headless-1, serviceName: headless, addressType: IPv4,\n"
		"     ports: [{port: 80}], endpoints: [{addresses: [10.0.0.1]}]}\n";
	const struct sp_want_svc *w;
	struct sp_desired d = { 0 };
	struct sp_model m;
	struct warns wr;

	if (!load(yaml, &m))
		return;
	/* As the Kubernetes source could hand over: type changed, status not yet cleared. */
	m.services[1].type = SP_SVC_CLUSTER_IP;
	m.services[2].ports[0].proto = 132; /* IPPROTO_SCTP */
	if (!resolve(&m, NULL, NULL, &d, &wr))
		goto out;
	ASSERT_EQ(d.n, 1, "only lb");
	w = find(&d, "default/lb:/tcp/v4");
	ASSERT_TRUE(w && w->n_fe == 1 && has_fe(w, "10.96.0.2", 80, 0),
		    "ClusterIP type: no LB IP, no nodePort");
	ASSERT_CONTAINS(wr.buf, "default/sctp port \"\": protocol 132 is not supported",
			"SCTP warned");
out:
	sp_desired_free(&d);
	sp_model_free(&m);
}

/* Ids too long for the field are cut and keep a hash of the whole: still unique. */
static void test_long_ids(void)
{
	char yaml[2048], ns[64], name[64];
	struct sp_desired d = { 0 };
	struct sp_model m;
	struct warns wr;
	size_t i;

	memset(ns, 'n', 63);
	ns[63] = '\0';
	memset(name, 's', 62);
	name[62] = '\0';
	snprintf(yaml, sizeof(yaml),
		 "services:\n"
		 "  - {name: %sa, namespace: %s, clusterIP: 10.96.0.1,\n"
		 "     ports: [{name: %s, port: 80}]}\n"
		 "  - {name: %sb, namespace: %s, clusterIP: 10.96.0.2,\n"
		 "     ports: [{name: %s, port: 80}]}\n",
		 name, ns, ns, name, ns, ns);
	if (!load(yaml, &m))
		return;
	if (resolve(&m, NULL, NULL, &d, &wr) && ASSERT_EQ(d.n, 2, "two")) {
		for (i = 0; i < 2; i++) {
			ASSERT_LE(strlen(d.svc[i].id), sizeof(d.svc[i].id) - 1, "fits");
			ASSERT_CONTAINS(d.svc[i].id, "~", "hash marker");
		}
		ASSERT_TRUE(strcmp(d.svc[0].id, d.svc[1].id), "distinct");
		ASSERT_EQ(strncmp(d.svc[0].id, "nnnn", 4), 0, "prefix kept");
	}
	sp_desired_free(&d);
	sp_model_free(&m);
}

static bool desired_equal(const struct sp_desired *a, const struct sp_desired *b)
{
	size_t i, j;

	if (a->n != b->n)
		return false;
	for (i = 0; i < a->n; i++) {
		const struct sp_want_svc *x = &a->svc[i], *y = &b->svc[i];

		if (strcmp(x->id, y->id) || x->flags != y->flags || x->n_fe != y->n_fe ||
		    x->n_be != y->n_be || x->proto != y->proto || x->family != y->family)
			return false;
		for (j = 0; j < x->n_fe; j++)
			if (sp_ip_cmp(&x->fe[j].ip, &y->fe[j].ip) ||
			    x->fe[j].port != y->fe[j].port || x->fe[j].flags != y->fe[j].flags)
				return false;
		for (j = 0; j < x->n_be; j++)
			if (sp_ip_cmp(&x->be[j].ip, &y->be[j].ip) ||
			    x->be[j].port != y->be[j].port || x->be[j].weight != y->be[j].weight)
				return false;
	}
	return true;
}

/* The output depends on the model's content, never on the order it came in. */
static void test_order_independent(void)
{
	struct sp_desired d1 = { 0 }, d2 = { 0 };
	struct sp_service ts;
	struct sp_endpoint te;
	struct sp_slice tl;
	struct sp_model m;
	struct warns wr;
	size_t i, n;

	if (!load(sp_default_config, &m))
		return;
	if (!resolve(&m, NULL, NULL, &d1, &wr))
		goto out;
	/* Reverse Services, slices, endpoints and each Service's LB IPs. */
	for (i = 0, n = m.n_services; i < n / 2; i++) {
		ts = m.services[i];
		m.services[i] = m.services[n - 1 - i];
		m.services[n - 1 - i] = ts;
	}
	for (i = 0, n = m.n_slices; i < n / 2; i++) {
		tl = m.slices[i];
		m.slices[i] = m.slices[n - 1 - i];
		m.slices[n - 1 - i] = tl;
	}
	te = m.slices[0].endpoints[0];
	m.slices[0].endpoints[0] = m.slices[0].endpoints[2];
	m.slices[0].endpoints[2] = te;
	for (i = 0; i < m.n_services; i++) {
		if (m.services[i].n_lb_ips == 2) {
			struct sp_ip t = m.services[i].lb_ips[0];

			m.services[i].lb_ips[0] = m.services[i].lb_ips[1];
			m.services[i].lb_ips[1] = t;
		}
	}
	if (resolve(&m, NULL, NULL, &d2, &wr))
		ASSERT_TRUE(desired_equal(&d1, &d2), "same output");
out:
	sp_desired_free(&d1);
	sp_desired_free(&d2);
	sp_model_free(&m);
}

/*
 * loadBalancerSourceRanges: the flag on LB ingress frontends only (not the
 * clusterIP, externalIPs or NodePort), the ranges of each family with the
 * want_svc of that family (sorted, de-duplicated), a family without a
 * range left open as kube-proxy does, and an address that is both an
 * externalIP and an LB IP filtered.
 */
static void test_src_ranges(void)
{
	static const char yaml[] =
		"services:\n"
		"  - name: web\n"
		"    type: LoadBalancer\n"
		"    clusterIPs: [10.96.0.10, \"fd00:96::10\"]\n"
		"    externalIPs: [192.0.2.10, 192.0.2.11, \"2001:db8::10\"]\n"
		"    loadBalancerIPs: [198.51.100.10, 198.51.100.11, \"2001:db8::20\"]\n"
		"    loadBalancerSourceRanges: [10.10.0.0/24, 10.9.0.0/16, 10.10.0.0/24]\n"
		"    ports: [{port: 80, nodePort: 30080}]\n"
		"  - name: open\n"
		"    type: LoadBalancer\n"
		"    clusterIP: 10.96.0.20\n"
		"    loadBalancerIPs: [198.51.100.20]\n"
		"    ports: [{port: 80}]\n"
		"  - name: nolb\n"
		"    type: LoadBalancer\n"
		"    clusterIP: 10.96.0.30\n"
		"    loadBalancerSourceRanges: [10.10.0.0/24]\n"
		"    ports: [{port: 80}]\n";
	const uint16_t ext = SP_SVC_F_EXTERNAL, lbr = SP_SVC_F_EXTERNAL | SP_SVC_F_SRC_RANGES;
	const struct sp_want_svc *w;
	struct sp_desired d = { 0 };
	struct sp_model m;
	struct warns wr;
	char buf[64];

	if (!load(yaml, &m))
		return;
	/* The API allows what the file refuses: one address as both. */
	m.services[0].external_ips[1] = m.services[0].lb_ips[1];
	if (!resolve(&m, "node-a", NULL, &d, &wr))
		goto out;
	w = find(&d, "default/web:/tcp/v4");
	if (!ASSERT_TRUE(w, "web v4"))
		goto out;
	ASSERT_EQ(w->n_fe, 5, "web v4 frontends");
	ASSERT_TRUE(has_fe(w, "10.96.0.10", 80, 0), "clusterIP unfiltered");
	ASSERT_TRUE(has_fe(w, "192.0.2.10", 80, ext), "externalIP unfiltered");
	ASSERT_TRUE(has_fe(w, "0.0.0.0", 30080, SP_SVC_F_NODEPORT), "NodePort unfiltered");
	ASSERT_TRUE(has_fe(w, "198.51.100.10", 80, lbr), "LB IP filtered");
	ASSERT_TRUE(has_fe(w, "198.51.100.11", 80, lbr), "LB IP that is an externalIP too: filtered");
	if (ASSERT_EQ(w->n_src_ranges, 2, "v4 ranges, de-duplicated")) {
		ASSERT_STREQ(sp_cidr_str(&w->src_ranges[0], buf, sizeof(buf)), "10.9.0.0/16",
			     "sorted");
		ASSERT_STREQ(sp_cidr_str(&w->src_ranges[1], buf, sizeof(buf)), "10.10.0.0/24",
			     "sorted");
	}
	/* No IPv6 range: kube-proxy builds no firewall for that family. */
	w = find(&d, "default/web:/tcp/v6");
	if (ASSERT_TRUE(w, "web v6")) {
		ASSERT_TRUE(has_fe(w, "2001:db8::20", 80, ext), "v6 LB IP open");
		ASSERT_EQ(w->n_src_ranges, 0, "no v6 ranges");
	}
	w = find(&d, "default/open:/tcp/v4");
	if (ASSERT_TRUE(w, "open")) {
		ASSERT_TRUE(has_fe(w, "198.51.100.20", 80, ext), "no ranges: open");
		ASSERT_EQ(w->n_src_ranges, 0, "no ranges");
	}
	/* Ranges but no LB IP yet: nothing to write. */
	w = find(&d, "default/nolb:/tcp/v4");
	if (ASSERT_TRUE(w, "nolb"))
		ASSERT_EQ(w->n_src_ranges, 0, "no flagged frontend, no ranges kept");
out:
	sp_desired_free(&d);
	sp_model_free(&m);
}

static void test_empty_model(void)
{
	struct sp_model m = { 0 };
	struct sp_desired d = { 0 };

	ASSERT_EQ(sp_resolve(&m, NULL, &d, NULL, NULL), 0, "no opts, no warn callback");
	ASSERT_EQ(d.n, 0, "empty");
	sp_desired_free(&d);
	sp_desired_free(NULL);
}

/* Service NAME on VIP:80 with one slice of endpoint EP (YAML list items). */
#define RS_SVC(name, vip) "  - {name: " name ", clusterIP: " vip ", ports: [{name: http, port: 80}]}\n"
#define RS_SLICE(name, ep)                                                                         \
	"  - {name: " name "-1, serviceName: " name ", addressType: IPv4,\n"                        \
	"     ports: [{name: http, port: 8080}], endpoints: [{addresses: [" ep "]}]}\n"

/*
 * sp_resolve_some, given the Services that changed, gives what a full
 * resolve gives, and the ids that differ; a frontend clash is left to the
 * full resolve.
 */
static void test_resolve_some(void)
{
	static const char *const names[] = { "default/b", "default/c", "default/d" };
	struct sp_model a = { 0 }, b = { 0 }, c = { 0 };
	struct sp_desired da = { 0 }, db = { 0 }, prev = { 0 }, out = { 0 }, dc = { 0 };
	const char **ids = NULL, **want_ids = NULL;
	size_t n_ids, n_want, i;
	struct warns w;
	int rc;

	if (!load("services:\n" RS_SVC("a", "10.96.1.1") RS_SVC("b", "10.96.1.2")
			  RS_SVC("c", "10.96.1.3") "endpointSlices:\n" RS_SLICE("a", "10.244.0.1")
			  RS_SLICE("b", "10.244.0.2") RS_SLICE("c", "10.244.0.3"),
		  &a) ||
	    /* b's endpoint changes, c goes, d comes; a stays. */
	    !load("services:\n" RS_SVC("d", "10.96.1.4") RS_SVC("b", "10.96.1.2")
			  RS_SVC("a", "10.96.1.1") "endpointSlices:\n" RS_SLICE("a", "10.244.0.1")
			  RS_SLICE("b", "10.244.0.22") RS_SLICE("d", "10.244.0.4"),
		  &b) ||
	    /* d takes a's address: a clash with a Service that did not change. */
	    !load("services:\n" RS_SVC("a", "10.96.1.1") RS_SVC("b", "10.96.1.2")
			  RS_SVC("c", "10.96.1.3") "endpointSlices:\n" RS_SLICE("a", "10.244.0.1"),
		  &c))
		goto out;
	c.services[2].cluster_ips[0].b[3] = 1; /* c on 10.96.1.1 too (the file refuses that) */
	if (!resolve(&a, NULL, NULL, &da, &w) || !resolve(&b, NULL, NULL, &db, &w) ||
	    !resolve(&a, NULL, NULL, &prev, &w))
		goto out;
	if (!ASSERT_EQ(sp_desired_diff(&da, &db, &want_ids, &n_want), 0, "full diff"))
		goto out;
	rc = sp_resolve_some(&b, NULL, &prev, names, 3, &out, &ids, &n_ids, collect, &w);
	if (!ASSERT_EQ(rc, 0, "resolve some"))
		goto out;
	/* The same desired state as the full resolve, and the same ids. */
	free(ids);
	ids = NULL;
	if (ASSERT_EQ(sp_desired_diff(&db, &out, &ids, &n_ids), 0, "compare"))
		ASSERT_EQ(n_ids, 0, "nothing differs from the full resolve");
	ASSERT_EQ(out.n, db.n, "as many entries");
	free(ids);
	ids = NULL;
	sp_desired_free(&out);
	sp_desired_free(&prev);
	if (!resolve(&a, NULL, NULL, &prev, &w))
		goto out;
	rc = sp_resolve_some(&b, NULL, &prev, names, 3, &out, &ids, &n_ids, collect, &w);
	if (ASSERT_EQ(rc, 0, "again") && ASSERT_EQ(n_ids, n_want, "ids that differ")) {
		for (i = 0; i < n_ids; i++)
			ASSERT_STREQ(ids[i], want_ids[i], "id");
	}
	ASSERT_EQ(prev.n, 2, "prev keeps the old entries of b and c only");
	ASSERT_TRUE(find(&out, "default/a:http/tcp/v4") != NULL, "a carried over");

	/* A clash with a Service that is not listed: for the full resolve. */
	sp_desired_free(&prev);
	sp_desired_free(&out);
	if (!resolve(&a, NULL, NULL, &prev, &w))
		goto out;
	free(ids);
	ids = NULL;
	rc = sp_resolve_some(&c, NULL, &prev, names, 3, &out, &ids, &n_ids, collect, &w);
	ASSERT_EQ(rc, 1, "a clash: not incremental");
	ASSERT_EQ(prev.n, 3, "prev untouched");
	/* And after a full resolve that had a clash, never incremental. */
	if (resolve(&c, NULL, NULL, &dc, &w)) {
		ASSERT_TRUE(dc.clashed, "the full resolve saw the clash");
		rc = sp_resolve_some(&a, NULL, &dc, names, 3, &out, &ids, &n_ids, collect, &w);
		ASSERT_EQ(rc, 1, "prev had a clash: not incremental");
	}
out:
	free(ids);
	free(want_ids);
	sp_desired_free(&da);
	sp_desired_free(&db);
	sp_desired_free(&dc);
	sp_desired_free(&prev);
	sp_desired_free(&out);
	sp_model_free(&a);
	sp_model_free(&b);
	sp_model_free(&c);
}

/* Set endpoint addr's hints in slice 0 (the config file has no hints). */
static void set_hints(struct sp_model *m, const char *addr, const char *zones, const char *nodes)
{
	struct sp_ip ip;
	size_t i;

	if (sp_ip_parse(addr, &ip))
		return;
	for (i = 0; i < m->slices[0].n_endpoints; i++) {
		struct sp_endpoint *e = &m->slices[0].endpoints[i];

		if (sp_ip_cmp(&e->addr, &ip))
			continue;
		ASSERT_EQ(sp_ep_set_topo(e, sp_ep_node(e), zones, nodes), 0, "set hints");
	}
}

/*
 * Topology hints (kube-proxy's topology.go): node hints when every ready
 * endpoint has some and one is for this node, else zone hints under the
 * same rule, else every ready endpoint. Endpoints left out keep weight 0.
 */
static void test_topology(void)
{
	static const struct {
		const char *name, *zone, *node;
		/* hints of 10.0.0.1..4: zones, nodes (NULL: none) */
		const char *zh[4], *nh[4];
		uint16_t wt[4]; /* weights of 10.0.0.1..4 (4 is not ready when 9) */
	} cases[] = {
		{ "zone hints, this zone on .1 and .2",
		  "z1", "node-a", { "z1", "z1", "z2", "z2" }, {}, { 1, 1, 0, 0 } },
		{ "an endpoint hinted for two zones",
		  "z2", "node-a", { "z1", "z1,z2", "z3", "z1" }, {}, { 0, 1, 0, 0 } },
		{ "one ready endpoint without hints: no topology",
		  "z1", "node-a", { "z1", "z1", "z2", NULL }, {}, { 1, 1, 1, 1 } },
		{ "no endpoint hinted for this zone: no topology",
		  "z3", "node-a", { "z1", "z1", "z2", "z2" }, {}, { 1, 1, 1, 1 } },
		{ "the node has no zone: no topology",
		  NULL, "node-a", { "z1", "z1", "z2", "z2" }, {}, { 1, 1, 1, 1 } },
		{ "node hints win over zone hints",
		  "z1", "node-a", { "z1", "z1", "z2", "z2" },
		  { "node-b", "node-a", "node-c", "node-a" }, { 0, 1, 0, 1 } },
		{ "node hints for other nodes only: zone hints apply",
		  "z2", "node-a", { "z1", "z1", "z2", "z2" },
		  { "node-b", "node-b", "node-c", "node-c" }, { 0, 0, 1, 1 } },
		{ "node hints on some endpoints only: zone hints apply",
		  "z1", "node-a", { "z1", "z2", "z2", "z2" },
		  { "node-a", NULL, NULL, NULL }, { 1, 0, 0, 0 } },
		{ "without a node name node hints never match",
		  "z1", NULL, { "z1", "z2", "z2", "z2" },
		  { "node-a", "node-a", "node-a", "node-a" }, { 1, 0, 0, 0 } },
		{ "a name that only starts like the zone does not match",
		  "z1", "node-a", { "z10", "z1x", "z2", "z1,z2" }, {}, { 0, 0, 0, 1 } },
	};
	static const char yaml[] = READINESS_SVC EP("10.0.0.1", "true", "true", "false")
		EP("10.0.0.2", "true", "true", "false") EP("10.0.0.3", "true", "true", "false")
			EP("10.0.0.4", "true", "true", "false");
	static const char *const addrs[4] = { "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4" };
	size_t i, j;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sp_resolve_opts o = { .node_name = cases[i].node, .zone = cases[i].zone };
		const struct sp_want_svc *w;
		struct sp_desired d = { 0 };
		struct sp_model m;

		if (!load(yaml, &m))
			continue;
		for (j = 0; j < 4; j++)
			set_hints(&m, addrs[j], cases[i].zh[j], cases[i].nh[j]);
		if (ASSERT_EQ(sp_resolve(&m, &o, &d, NULL, NULL), 0, cases[i].name)) {
			w = find(&d, "default/s:/tcp/v4");
			if (ASSERT_TRUE(w && w->n_be == 4, cases[i].name))
				for (j = 0; j < 4; j++)
					ASSERT_TRUE(be_is(w, j, addrs[j], 8080, cases[i].wt[j]),
						    cases[i].name);
		}
		sp_desired_free(&d);
		sp_model_free(&m);
	}
}

/* Only ready endpoints decide; with none ready the serving-terminating
 * fallback takes them all, hints or not; Local sets ignore hints. */
static void test_topology_fallbacks(void)
{
	static const char ready_yaml[] = READINESS_SVC EP("10.0.0.1", "true", "true", "false")
		EP("10.0.0.2", "true", "true", "false") EP("10.0.0.3", "false", "true", "true");
	static const char term_yaml[] = READINESS_SVC EP("10.0.0.1", "false", "true", "true")
		EP("10.0.0.2", "false", "true", "true");
	static const char local_yaml[] =
		"services:\n"
		"  - {name: s, clusterIP: 10.96.0.1, internalTrafficPolicy: Local,\n"
		"     ports: [{port: 80}]}\n"
		"endpointSlices:\n"
		"  - name: s-1\n"
		"    serviceName: s\n"
		"    addressType: IPv4\n"
		"    ports: [{port: 8080}]\n"
		"    endpoints:\n"
		"      - {addresses: [10.0.0.1], nodeName: node-a}\n"
		"      - {addresses: [10.0.0.2], nodeName: node-b}\n";
	static const struct {
		const char *name, *yaml, *zone1, *zone2; /* hints of .1 and .2 */
		size_t n_be;
		uint16_t wt[3]; /* of 10.0.0.1, .2, .3 */
	} cases[] = {
		/* The terminating .3 has no hints: it does not turn topology off. */
		{ "a terminating endpoint without hints: zone z1 only", ready_yaml, "z1", "z2", 3,
		  { 1, 0, 0 } },
		{ "none ready: every serving-terminating endpoint, hints ignored", term_yaml, "z2",
		  "z1", 2, { 1, 1 } },
		{ "internalTrafficPolicy Local: this node's endpoint, hints ignored", local_yaml,
		  "z2", "z1", 1, { 1 } },
	};
	static const char *const addrs[3] = { "10.0.0.1", "10.0.0.2", "10.0.0.3" };
	struct sp_resolve_opts o = { .node_name = "node-a", .zone = "z1" };
	size_t i, j;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct sp_want_svc *w;
		struct sp_desired d = { 0 };
		struct sp_model m;

		if (!load(cases[i].yaml, &m))
			continue;
		set_hints(&m, "10.0.0.1", cases[i].zone1, NULL);
		set_hints(&m, "10.0.0.2", cases[i].zone2, NULL);
		if (ASSERT_EQ(sp_resolve(&m, &o, &d, NULL, NULL), 0, cases[i].name)) {
			w = find(&d, "default/s:/tcp/v4");
			if (ASSERT_TRUE(w && w->n_be == cases[i].n_be, cases[i].name))
				for (j = 0; j < cases[i].n_be; j++)
					ASSERT_TRUE(be_is(w, j, addrs[j], 8080, cases[i].wt[j]),
						    cases[i].name);
		}
		sp_desired_free(&d);
		sp_model_free(&m);
	}
}

/*
 * The endpoints of listed Services change and their ids stay: the new
 * entries take the old ones' places. Names whose order differs from their
 * ids' order ("default/b" < "default/b-x" but "default/b-x:" < "default/b:")
 * still get their own entries. Same result as the full resolve.
 */
static void test_resolve_some_in_place(void)
{
	static const char *const names[] = { "default/b", "default/b-x" };
	struct sp_model a = { 0 }, b = { 0 };
	struct sp_desired da = { 0 }, db = { 0 }, prev = { 0 }, out = { 0 };
	const char **ids = NULL, **want_ids = NULL;
	const struct sp_want_svc *w1, *w2;
	size_t n_ids, n_want, i;
	struct warns w;
	int rc;

	if (!load("services:\n" RS_SVC("a", "10.96.1.1") RS_SVC("b", "10.96.1.2")
			  RS_SVC("b-x", "10.96.1.3") RS_SVC("c", "10.96.1.4")
			  "endpointSlices:\n" RS_SLICE("a", "10.244.0.1") RS_SLICE("b", "10.244.0.2")
			  RS_SLICE("b-x", "10.244.0.3") RS_SLICE("c", "10.244.0.4"),
		  &a) ||
	    !load("services:\n" RS_SVC("a", "10.96.1.1") RS_SVC("b", "10.96.1.2")
			  RS_SVC("b-x", "10.96.1.3") RS_SVC("c", "10.96.1.4")
			  "endpointSlices:\n" RS_SLICE("a", "10.244.0.1") RS_SLICE("b", "10.244.0.22")
			  RS_SLICE("b-x", "10.244.0.33") RS_SLICE("c", "10.244.0.4"),
		  &b))
		goto out;
	if (!resolve(&a, NULL, NULL, &da, &w) || !resolve(&b, NULL, NULL, &db, &w) ||
	    !resolve(&a, NULL, NULL, &prev, &w))
		goto out;
	if (!ASSERT_EQ(sp_desired_diff(&da, &db, &want_ids, &n_want), 0, "full diff") ||
	    !ASSERT_EQ(n_want, 2, "b and b-x differ"))
		goto out;
	rc = sp_resolve_some(&b, NULL, &prev, names, 2, &out, &ids, &n_ids, collect, &w);
	if (!ASSERT_EQ(rc, 0, "resolve some"))
		goto out;
	if (ASSERT_EQ(n_ids, n_want, "ids that differ"))
		for (i = 0; i < n_ids; i++)
			ASSERT_STREQ(ids[i], want_ids[i], "id");
	ASSERT_EQ(out.n, db.n, "as many entries as the full resolve");
	for (i = 0; i < db.n && i < out.n; i++)
		ASSERT_STREQ(out.svc[i].id, db.svc[i].id, "entry id in order");
	free(ids);
	ids = NULL;
	if (ASSERT_EQ(sp_desired_diff(&db, &out, &ids, &n_ids), 0, "compare"))
		ASSERT_EQ(n_ids, 0, "nothing differs from the full resolve");
	ASSERT_EQ(prev.n, 2, "prev keeps the old entries of b and b-x only");
	w1 = find(&prev, "default/b:http/tcp/v4");
	w2 = find(&prev, "default/b-x:http/tcp/v4");
	if (ASSERT_TRUE(w1 && w1->n_be == 1, "b's old entry") &&
	    ASSERT_TRUE(w2 && w2->n_be == 1, "b-x's old entry")) {
		ASSERT_EQ(w1->be[0].ip.b[3], 2, "b's old backend");
		ASSERT_EQ(w2->be[0].ip.b[3], 3, "b-x's old backend");
	}
out:
	free(ids);
	free(want_ids);
	sp_desired_free(&da);
	sp_desired_free(&db);
	sp_desired_free(&prev);
	sp_desired_free(&out);
	sp_model_free(&a);
	sp_model_free(&b);
}

/* An endpoint's node and hints are one interned triple: equal triples
 * share it, none is NULL. */
static void test_ep_topo_interned(void)
{
	struct sp_endpoint a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };
	char node[16];

	snprintf(node, sizeof(node), "%s", "node-a"); /* not the literal's address */
	ASSERT_EQ(sp_ep_set_topo(&a, "node-a", "z1", NULL), 0, "a");
	ASSERT_EQ(sp_ep_set_topo(&b, node, "z1", NULL), 0, "b");
	ASSERT_EQ(sp_ep_set_topo(&c, "node-a", NULL, "z1"), 0, "c");
	ASSERT_EQ(sp_ep_set_topo(&d, NULL, NULL, NULL), 0, "d");
	ASSERT_TRUE(a.topo && a.topo == b.topo, "equal triples: one copy");
	ASSERT_TRUE(c.topo && c.topo != a.topo, "the same string as node hints: another");
	ASSERT_TRUE(d.topo == NULL, "nothing: NULL");
	ASSERT_STREQ(sp_ep_node(&b), "node-a", "node");
	ASSERT_STREQ(sp_ep_zone_hints(&b), "z1", "zones");
	ASSERT_TRUE(!sp_ep_node_hints(&b) && !sp_ep_zone_hints(&c), "absent hints");
	ASSERT_STREQ(sp_ep_node_hints(&c), "z1", "node hints");
	ASSERT_TRUE(!sp_ep_node(&d), "no node");
}

int main(void)
{
	RUN_TEST(test_ep_topo_interned);
	RUN_TEST(test_default_config);
	RUN_TEST(test_dual_stack);
	RUN_TEST(test_port_matching);
	RUN_TEST(test_readiness);
	RUN_TEST(test_merge_dedup);
	RUN_TEST(test_proxy_name);
	RUN_TEST(test_duplicate_frontend);
	RUN_TEST(test_traffic_policy);
	RUN_TEST(test_local_no_endpoints);
	RUN_TEST(test_ignored);
	RUN_TEST(test_long_ids);
	RUN_TEST(test_order_independent);
	RUN_TEST(test_src_ranges);
	RUN_TEST(test_empty_model);
	RUN_TEST(test_resolve_some);
	RUN_TEST(test_topology);
	RUN_TEST(test_topology_fallbacks);
	RUN_TEST(test_resolve_some_in_place);
	/* The same on sorted models (the Kubernetes source's). */
	load_sorted = true;
	RUN_TEST(test_resolve_some);
	RUN_TEST(test_resolve_some_in_place);
	return sp_test_exit();
}
