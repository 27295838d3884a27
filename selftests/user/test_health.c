// SPDX-License-Identifier: Apache-2.0
/*
 * The health servers' answers without sockets (user/health.c): kube-proxy's
 * proxy health JSON, staleness and node eligibility, the Service health
 * check's status, body and headers, local endpoint counting, the node name
 * fallback, and sp_http_parse_addr.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include "test.h"
#include "cli.h"
#include "config.h"
#include "health.h"
#include "http.h"

#define S 1000000000ULL
/* 2024-05-01 10:00:00.5 UTC */
#define T0 (1714557600LL * 1000000000LL + 500000000LL)

static const char *hdr(const struct sp_http_reply *r, const char *name)
{
	int i;

	for (i = 0; i < r->n_hdr; i++)
		if (!strcmp(r->hdr[i].name, name))
			return r->hdr[i].value;
	return "";
}

static void reply_free(struct sp_http_reply *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
}

static void test_time_format(void)
{
	char b[64];

	sp_health_time_str(T0, b, sizeof(b));
	ASSERT_STREQ(b, "2024-05-01 10:00:00.5 +0000 UTC", "fraction without trailing zeros");
	sp_health_time_str(T0 - 500000000LL + 123, b, sizeof(b));
	ASSERT_STREQ(b, "2024-05-01 10:00:00.000000123 +0000 UTC", "nanoseconds");
	sp_health_time_str(T0 - 500000000LL, b, sizeof(b));
	ASSERT_STREQ(b, "2024-05-01 10:00:00 +0000 UTC", "whole second: no dot");
	sp_health_time_str(0, b, sizeof(b));
	ASSERT_STREQ(b, "0001-01-01 00:00:00 +0000 UTC", "never: Go's zero time");
}

static void test_proxy_health(void)
{
	struct sp_proxy_health h;
	struct sp_http_reply r = { 0 };

	sp_proxy_health_init(&h, 60);
	/* Starting, nothing applied, the first change 10 s old: healthy. */
	sp_proxy_health_queued(&h, 100 * S);
	ASSERT_EQ(sp_proxy_health_reply(&h, "/healthz", 110 * S, T0, &r), 0, "reply");
	ASSERT_EQ(r.status, 200, "young pending change: 200");
	ASSERT_STREQ(r.content_type, "application/json", "Content-Type");
	ASSERT_STREQ(hdr(&r, "X-Content-Type-Options"), "nosniff", "nosniff");
	ASSERT_STREQ(r.body,
		     "{\"lastUpdated\": \"2024-05-01 10:00:00.5 +0000 UTC\",\"currentTime\": "
		     "\"2024-05-01 10:00:00.5 +0000 UTC\", \"nodeEligible\": true}",
		     "healthy body: lastUpdated is now");
	reply_free(&r);
	/* 60 s without applying it: 503 on both, lastUpdated the zero time. */
	sp_proxy_health_reply(&h, "/healthz", 160 * S, T0, &r);
	ASSERT_EQ(r.status, 503, "change waiting 60 s: 503");
	ASSERT_STREQ(r.body,
		     "{\"lastUpdated\": \"0001-01-01 00:00:00 +0000 UTC\",\"currentTime\": "
		     "\"2024-05-01 10:00:00.5 +0000 UTC\", \"nodeEligible\": true}",
		     "stale body");
	reply_free(&r);
	sp_proxy_health_reply(&h, "/livez", 160 * S, T0, &r);
	ASSERT_EQ(r.status, 503, "livez stale: 503");
	ASSERT_STREQ(r.body,
		     "{\"lastUpdated\": \"0001-01-01 00:00:00 +0000 UTC\",\"currentTime\": "
		     "\"2024-05-01 10:00:00.5 +0000 UTC\"}",
		     "livez body");
	reply_free(&r);
	ASSERT_TRUE(!sp_proxy_health_healthy(&h, 160 * S), "not healthy");
	/* Applied: healthy; a new change ages from its own arrival. */
	sp_proxy_health_updated(&h, T0 - 7 * (int64_t)S);
	ASSERT_TRUE(sp_proxy_health_healthy(&h, 1000 * S), "applied, nothing waiting");
	sp_proxy_health_queued(&h, 1000 * S);
	sp_proxy_health_queued(&h, 1050 * S); /* the oldest counts */
	ASSERT_TRUE(sp_proxy_health_healthy(&h, 1059 * S), "59 s");
	ASSERT_TRUE(!sp_proxy_health_healthy(&h, 1060 * S), "60 s");
	sp_proxy_health_reply(&h, "/healthz", 1060 * S, T0, &r);
	ASSERT_CONTAINS(r.body, "\"lastUpdated\": \"2024-05-01 09:59:53.5 +0000 UTC\"",
			"unhealthy: the last applied state's time");
	reply_free(&r);
	sp_proxy_health_updated(&h, T0);
	/* The node leaving: /healthz 503, /livez still 200. */
	sp_proxy_health_node(&h, false);
	sp_proxy_health_reply(&h, "/healthz", 1061 * S, T0, &r);
	ASSERT_EQ(r.status, 503, "node not eligible: healthz 503");
	ASSERT_CONTAINS(r.body, "\"nodeEligible\": false}", "nodeEligible false");
	reply_free(&r);
	sp_proxy_health_reply(&h, "/livez", 1061 * S, T0, &r);
	ASSERT_EQ(r.status, 200, "node not eligible: livez 200");
	reply_free(&r);
	sp_proxy_health_reply(&h, "/metrics", 1061 * S, T0, &r);
	ASSERT_EQ(r.status, 404, "other path 404");
	reply_free(&r);
	sp_proxy_health_destroy(&h);
}

static void test_service_reply(void)
{
	struct sp_http_reply r = { 0 };

	ASSERT_EQ(sp_svc_health_reply("demo", "web", 2, true, &r), 0, "reply");
	ASSERT_EQ(r.status, 200, "local endpoints and healthy: 200");
	ASSERT_STREQ(r.content_type, "application/json", "Content-Type");
	ASSERT_STREQ(hdr(&r, "X-Content-Type-Options"), "nosniff", "nosniff");
	ASSERT_STREQ(hdr(&r, "X-Load-Balancing-Endpoint-Weight"), "2", "weight");
	ASSERT_STREQ(r.body,
		     "{\n\t\"service\": {\n\t\t\"namespace\": \"demo\",\n\t\t\"name\": \"web\"\n\t},"
		     "\n\t\"localEndpoints\": 2,\n\t\"serviceProxyHealthy\": true\n}",
		     "kube-proxy's body");
	reply_free(&r);
	sp_svc_health_reply("demo", "web", 0, true, &r);
	ASSERT_EQ(r.status, 503, "no local endpoint: 503");
	ASSERT_STREQ(hdr(&r, "X-Load-Balancing-Endpoint-Weight"), "0", "weight 0");
	reply_free(&r);
	sp_svc_health_reply("demo", "web", 3, false, &r);
	ASSERT_EQ(r.status, 503, "proxy unhealthy: 503");
	ASSERT_CONTAINS(r.body, "\"serviceProxyHealthy\": false", "unhealthy in the body");
	reply_free(&r);
	sp_svc_health_reply("de\"mo", "w\\eb", 1, true, &r);
	ASSERT_CONTAINS(r.body, "\"namespace\": \"demo\"", "quotes never reach the JSON");
	ASSERT_CONTAINS(r.body, "\"name\": \"web\"", "backslashes never reach the JSON");
	reply_free(&r);
}

static void test_local_endpoints(void)
{
	static const char yaml[] =
		"services:\n"
		"  - {name: web, namespace: d, type: LoadBalancer, externalTrafficPolicy: Local,\n"
		"     healthCheckNodePort: 30500, clusterIPs: [10.96.0.1, \"fd00::1\"],\n"
		"     ports: [{name: a, port: 80}, {name: b, port: 81}]}\n"
		"  - {name: other, namespace: d, clusterIP: 10.96.0.2, ports: [{port: 80}]}\n"
		"endpointSlices:\n"
		"  - name: w4\n    namespace: d\n    serviceName: web\n    addressType: IPv4\n"
		"    ports: [{name: a, port: 8080}, {name: b, port: 8081}]\n"
		"    endpoints:\n"
		"      - {addresses: [10.0.0.1], nodeName: n1}\n"
		"      - {addresses: [10.0.0.2], nodeName: n1, conditions: {ready: false,\n"
		"         serving: true, terminating: true}}\n"
		"      - {addresses: [10.0.0.3], nodeName: n2}\n"
		"      - {addresses: [10.0.0.4]}\n"
		"  - name: w4b\n    namespace: d\n    serviceName: web\n    addressType: IPv4\n"
		"    ports: [{name: a, port: 8080}]\n"
		"    endpoints: [{addresses: [10.0.0.1], nodeName: n1}]\n"
		"  - name: w6\n    namespace: d\n    serviceName: web\n    addressType: IPv6\n"
		"    ports: [{name: a, port: 8080}]\n"
		"    endpoints: [{addresses: [\"fd00::1\"], nodeName: n1}]\n"
		"  - name: o\n    namespace: d\n    serviceName: other\n    addressType: IPv4\n"
		"    ports: [{port: 80}]\n"
		"    endpoints: [{addresses: [10.0.0.9], nodeName: n1}]\n";
	struct sp_model m = { 0 };
	char err[512];

	if (!ASSERT_EQ(sp_config_parse_buf(yaml, strlen(yaml), "t.yaml", &m, err, sizeof(err)), 0,
		       err))
		return;
	/* n1: 10.0.0.1 on two ports (the duplicate in w4b counts once); the
	 * terminating 10.0.0.2 does not count; IPv6 has 1, the larger is 2. */
	ASSERT_EQ(sp_health_local_endpoints(&m, &m.services[0], "n1"), 2, "n1");
	ASSERT_EQ(sp_health_local_endpoints(&m, &m.services[0], "n2"), 2, "n2: one pod, two ports");
	ASSERT_EQ(sp_health_local_endpoints(&m, &m.services[0], "n3"), 0, "n3");
	ASSERT_EQ(sp_health_local_endpoints(&m, &m.services[0], NULL), 0, "no node name");
	ASSERT_TRUE(sp_health_needs_check(&m.services[0]), "LB + Local + port: checked");
	ASSERT_TRUE(!sp_health_needs_check(&m.services[1]), "ClusterIP: no check");
	sp_model_free(&m);
}

static void test_parse_addr(void)
{
	struct sockaddr_storage sa;
	socklen_t len;

	ASSERT_EQ(sp_http_parse_addr("0.0.0.0:10256", &sa, &len), 0, "v4");
	ASSERT_EQ(sa.ss_family, AF_INET, "family");
	ASSERT_EQ(ntohs(((struct sockaddr_in *)&sa)->sin_port), 10256, "port");
	ASSERT_EQ(sp_http_parse_addr("[::1]:9477", &sa, &len), 0, "v6");
	ASSERT_EQ(sa.ss_family, AF_INET6, "family 6");
	ASSERT_EQ(sp_http_parse_addr("off", &sa, &len), 1, "off");
	ASSERT_EQ(sp_http_parse_addr("::1:9477", &sa, &len), -EINVAL, "v6 without brackets");
	ASSERT_EQ(sp_http_parse_addr("1.2.3.4:70000", &sa, &len), -EINVAL, "port range");
	ASSERT_EQ(sp_http_parse_addr("1.2.3.4", &sa, &len), -EINVAL, "no port");
	ASSERT_EQ(sp_http_parse_addr("host:80", &sa, &len), -EINVAL, "a name");
}

static void test_node_name(void)
{
	char host[256], *c;
	const char *saved = getenv("NODE_NAME");
	char *copy = saved ? strdup(saved) : NULL;

	ASSERT_STREQ(sp_node_name_default("given"), "given", "--node-name wins");
	setenv("NODE_NAME", "from-env", 1);
	ASSERT_STREQ(sp_node_name_default(NULL), "from-env", "then $NODE_NAME");
	unsetenv("NODE_NAME");
	if (ASSERT_EQ(gethostname(host, sizeof(host)), 0, "gethostname")) {
		for (c = host; *c; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c += 'a' - 'A';
		ASSERT_STREQ(sp_node_name_default(NULL), host, "then the hostname, lowercased");
	}
	if (copy)
		setenv("NODE_NAME", copy, 1);
	free(copy);
}

int main(void)
{
	RUN_TEST(test_time_format);
	RUN_TEST(test_proxy_health);
	RUN_TEST(test_service_reply);
	RUN_TEST(test_local_endpoints);
	RUN_TEST(test_parse_addr);
	RUN_TEST(test_node_name);
	return sp_test_exit();
}
