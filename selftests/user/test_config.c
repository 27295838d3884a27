// SPDX-License-Identifier: Apache-2.0
/*
 * Config file parser and validator (user/config.c) and the model helpers
 * (user/model.c). Bad inputs are table-driven: each is written to a file
 * and must fail with a message naming that file, the line, and a phrase
 * naming the problem, and must leave the caller's model untouched.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <unistd.h>

#include "test.h"
#include "svcplane.h"
#include "cli.h"
#include "config.h"
#include "model.h"

/* Write text to a new file under /tmp; path gets its name. */
static bool write_tmp(const char *text, size_t len, char *path, size_t pathlen)
{
	ssize_t w;
	int fd;

	snprintf(path, pathlen, "/tmp/svcplane-test-config-XXXXXX.yaml");
	fd = mkstemps(path, 5);
	if (!ASSERT_TRUE(fd >= 0, "mkstemps"))
		return false;
	w = write(fd, text, len);
	close(fd);
	return ASSERT_EQ(w, (ssize_t)len, "write test file");
}

/* A prefix most cases share: one valid Service, on lines 1-5. */
#define SVC_HEAD                                                                                   \
	"services:\n"                                                                              \
	"  - name: web\n"                                                                          \
	"    clusterIP: 10.96.0.10\n"                                                              \
	"    ports:\n"                                                                             \
	"      - {name: http, port: 80}\n"

/* SVC_HEAD plus a slice header on lines 6-10; endpoints may follow on 11. */
#define SLICE_HEAD                                                                                 \
	SVC_HEAD                                                                                   \
	"endpointSlices:\n"                                                                        \
	"  - name: web-1\n"                                                                        \
	"    serviceName: web\n"                                                                   \
	"    addressType: IPv4\n"                                                                  \
	"    ports: [{name: http, port: 8080}]\n"

struct bad_case {
	const char *name;
	const char *yaml;
	int line;
	const char *phrase;
	/* Where on that line the column must point: the first occurrence of
	 * this text (the offending node); "" for column 1. */
	const char *at;
};

/* The 1-based column of the first `at` on line `line` of yaml, or -1. */
static int want_column(const char *yaml, int line, const char *at)
{
	const char *l = yaml, *end, *hit;
	int i;

	for (i = 1; i < line && l; i++) {
		l = strchr(l, '\n');
		if (l)
			l++;
	}
	if (!l)
		return -1;
	end = strchr(l, '\n');
	if (!end)
		end = l + strlen(l);
	hit = l;
	if (*at) {
		hit = memmem(l, (size_t)(end - l), at, strlen(at));
		if (!hit)
			return -1;
	}
	return (int)(hit - l) + 1;
}

static const struct bad_case bad_cases[] = {
	/* YAML itself */
	{ "syntax_unclosed_flow", "services:\n  - name: web\n    ports: [{port: 80]\n", 3,
	  "YAML syntax error", "]" },
	{ "syntax_tab_indent", "services:\n\t- name: web\n", 2, "YAML syntax error", "\t" },
	{ "syntax_bad_indent", "services:\n  - name: web\n   clusterIP: 10.96.0.10\n", 3,
	  "YAML syntax error", "clusterIP" },
	{ "invalid_utf8", "services:\n  - name: w\xff\n", 2, "invalid leading UTF-8", "\xff" },
	{ "alias", "services:\n  - &a {name: web}\n  - *a\n", 3, "aliases", "*a" },
	{ "two_documents", "services: []\n---\nservices: []\n", 2, "more than one YAML document", "---" },
	{ "empty_file", "", 1, "empty", "" },
	{ "only_comments", "# nothing here\n", 1, "empty", "#" },
	{ "nul_in_string", SVC_HEAD "    namespace: \"a\\0b\"\n", 6, "NUL character", "\"a\\0b\"" },
	{ "top_level_list", "- services\n", 1, "expected a mapping", "- services" },
	{ "duplicate_key", SVC_HEAD "    name: other\n", 6, "duplicate field \"name\"", "name: other" },
	/* Unknown fields, at every level */
	{ "unknown_top_field", "service: []\n", 1, "unknown field \"service\"", "service" },
	{ "unknown_service_field", SVC_HEAD "    clusterIp: 10.96.0.11\n", 6,
	  "unknown field \"clusterIp\"", "clusterIp" },
	{ "unknown_port_field", SVC_HEAD "      - {name: x, port: 81, nodeport: 30001}\n", 6,
	  "unknown field \"nodeport\"", "nodeport" },
	{ "unknown_slice_field", SLICE_HEAD "    endpoint: []\n", 11,
	  "unknown field \"endpoint\"", "endpoint" },
	{ "unknown_endpoint_field",
	  SLICE_HEAD "    endpoints:\n      - addresses: [10.244.0.1]\n"
		     "        hostName: a\n",
	  13, "unknown field \"hostName\"", "hostName" },
	{ "unknown_condition",
	  SLICE_HEAD "    endpoints:\n      - addresses: [10.244.0.1]\n"
		     "        conditions: {ready: true, healthy: true}\n",
	  13, "unknown field \"healthy\"", "healthy" },
	{ "unknown_slice_port_field",
	  SLICE_HEAD "    endpoints: []\n  - name: web-2\n"
		     "    serviceName: web\n    addressType: IPv4\n"
		     "    ports: [{port: 1, targetPort: 2}]\n",
	  15, "unknown field \"targetPort\"", "targetPort" },
	/* Wrong shapes */
	{ "services_not_list", "services: {name: web}\n", 1, "expected a list", "{name: web}" },
	{ "service_not_mapping", "services:\n  - web\n", 2, "expected a mapping", "web" },
	{ "clusterips_scalar", "services:\n  - name: web\n    clusterIPs: 10.96.0.10\n", 3,
	  "expected a list", "10.96.0.10" },
	/* Addresses */
	{ "bad_cluster_ip",
	  "services:\n  - name: web\n    clusterIP: 10.96.0.300\n"
	  "    ports: [{port: 80}]\n",
	  3, "not an IPv4 or IPv6 address", "10.96.0.300" },
	{ "cidr_cluster_ip",
	  "services:\n  - name: web\n    clusterIP: 10.96.0.0/16\n"
	  "    ports: [{port: 80}]\n",
	  3, "not an IPv4 or IPv6 address", "10.96.0.0/16" },
	{ "bad_cluster_ips_v6",
	  "services:\n  - name: web\n    clusterIPs: [10.96.0.1, \"fd00:::1\"]\n"
	  "    ports: [{port: 80}]\n",
	  3, "not an IPv4 or IPv6 address", "\"fd00:::1\"" },
	{ "bad_external_ip", SVC_HEAD "    externalIPs: [192.0.2.1, example.com]\n", 6,
	  "\"example.com\" is not an IPv4 or IPv6 address", "example.com" },
	{ "bad_lb_ip",
	  "services:\n  - name: web\n    type: LoadBalancer\n"
	  "    clusterIP: 10.96.0.10\n    loadBalancerIPs:\n      - 1.2.3\n"
	  "    ports: [{port: 80}]\n",
	  6, "not an IPv4 or IPv6 address", "1.2.3" },
	{ "unspecified_ip", SVC_HEAD "    externalIPs: [\"::\"]\n", 6, "unspecified address", "\"::\"" },
	{ "bad_endpoint_ip", SLICE_HEAD "    endpoints:\n      - addresses: [10.244.0.256]\n", 12,
	  "not an IPv4 or IPv6 address", "10.244.0.256" },
	{ "endpoint_family_mismatch",
	  SLICE_HEAD "    endpoints:\n"
		     "      - addresses: [\"fd00:244::1\"]\n",
	  12, "address family mismatch", "\"fd00:244::1\"" },
	{ "endpoint_family_mismatch_v6",
	  SVC_HEAD "endpointSlices:\n  - name: web-1\n"
		   "    serviceName: web\n    addressType: IPv6\n"
		   "    endpoints: [{addresses: [10.244.0.1]}]\n",
	  10, "address family mismatch", "10.244.0.1" },
	{ "endpoint_no_address", SLICE_HEAD "    endpoints:\n      - addresses: []\n", 12,
	  "at least one address", "[]" },
	{ "cluster_ips_same_family",
	  "services:\n  - name: web\n"
	  "    clusterIPs: [10.96.0.1, 10.96.0.2]\n    ports: [{port: 80}]\n",
	  3, "two IPv4 addresses", "10.96.0.2" },
	{ "cluster_ips_three",
	  "services:\n  - name: web\n"
	  "    clusterIPs: [10.96.0.1, \"fd00::1\", 10.96.0.3]\n"
	  "    ports: [{port: 80}]\n",
	  3, "at most two addresses", "10.96.0.3" },
	{ "cluster_ip_mismatch",
	  "services:\n  - name: web\n    clusterIP: 10.96.0.1\n"
	  "    clusterIPs: [10.96.0.2]\n    ports: [{port: 80}]\n",
	  4, "clusterIP and clusterIPs[0] differ", "[10.96.0.2]" },
	{ "cluster_ips_none_mixed", "services:\n  - name: web\n    clusterIPs: [None, 10.96.0.1]\n",
	  3, "must be the only entry", "None" },
	{ "lb_ips_not_lb", SVC_HEAD "    loadBalancerIPs: [198.51.100.1]\n", 6,
	  "loadBalancerIPs requires type LoadBalancer", "[198.51.100.1]" },
	{ "src_ranges_not_lb", SVC_HEAD "    loadBalancerSourceRanges: [10.0.0.0/8]\n", 6,
	  "loadBalancerSourceRanges requires type LoadBalancer", "[10.0.0.0/8]" },
	{ "src_range_no_prefix",
	  SVC_HEAD "    type: LoadBalancer\n    loadBalancerSourceRanges:\n"
		   "      - 10.10.0.0/24\n      - 10.20.0.1\n",
	  9, "\"10.20.0.1\" is not a CIDR", "10.20.0.1" },
	{ "src_range_bad_prefix",
	  SVC_HEAD "    type: LoadBalancer\n    loadBalancerSourceRanges: [\"fd00::/129\"]\n", 7,
	  "is not a CIDR", "\"fd00::/129\"" },
	{ "src_range_v4_prefix_33",
	  SVC_HEAD "    type: LoadBalancer\n    loadBalancerSourceRanges: [10.0.0.0/33]\n", 7,
	  "is not a CIDR", "10.0.0.0/33" },
	{ "src_range_garbage",
	  SVC_HEAD "    type: LoadBalancer\n    loadBalancerSourceRanges: [\"10.0.0.0/8 \"]\n", 7,
	  "is not a CIDR", "\"10.0.0.0/8 \"" },
	{ "src_ranges_not_list",
	  SVC_HEAD "    type: LoadBalancer\n    loadBalancerSourceRanges: 10.0.0.0/8\n", 7,
	  "expected a list", "10.0.0.0/8" },
	{ "headless_lb", "services:\n  - name: web\n    type: LoadBalancer\n    clusterIP: None\n",
	  3, "requires type ClusterIP", "LoadBalancer" },
	/* Ports */
	{ "port_zero", SVC_HEAD "      - {name: b, port: 0}\n", 6, "0 is out of range (1-65535)", "0}" },
	{ "port_too_big", SVC_HEAD "      - {name: b, port: 65536}\n", 6,
	  "65536 is out of range (1-65535)", "65536" },
	{ "port_negative", SVC_HEAD "      - {name: b, port: -1}\n", 6,
	  "expected a decimal integer", "-1" },
	{ "port_quoted", SVC_HEAD "      - {name: b, port: \"81\"}\n", 6, "expected an integer", "\"81\"" },
	{ "port_leading_zero", SVC_HEAD "      - {name: b, port: 080}\n", 6,
	  "expected a decimal integer", "080" },
	{ "port_huge", SVC_HEAD "      - {name: b, port: 99999999999999}\n", 6,
	  "expected a decimal integer", "99999999999999" },
	{ "target_port_range", SVC_HEAD "      - {name: b, port: 81, targetPort: 70000}\n", 6,
	  "70000 is out of range", "70000" },
	{ "target_port_bad_name", SVC_HEAD "      - {name: b, port: 81, targetPort: Web_Port}\n", 6,
	  "neither a port number", "Web_Port" },
	{ "node_port_range",
	  "services:\n  - name: web\n    type: NodePort\n"
	  "    clusterIP: 10.96.0.10\n    ports:\n"
	  "      - {port: 80, nodePort: 65536}\n",
	  6, "65536 is out of range", "65536" },
	{ "node_port_on_cluster_ip", SVC_HEAD "      - {name: b, port: 81, nodePort: 30081}\n", 6,
	  "nodePort requires type NodePort or LoadBalancer", "30081" },
	{ "slice_port_range",
	  SVC_HEAD "endpointSlices:\n  - name: web-1\n"
		   "    serviceName: web\n    addressType: IPv4\n"
		   "    ports: [{name: http, port: 0}]\n",
	  10, "0 is out of range", "0}" },
	{ "missing_port_number", SVC_HEAD "      - {name: b, targetPort: 8081}\n", 6,
	  "missing required field \"port\"", "{name: b" },
	{ "unnamed_ports",
	  "services:\n  - name: web\n    clusterIP: 10.96.0.10\n    ports:\n"
	  "      - {port: 80}\n      - {port: 81}\n",
	  5, "must name each one", "{port: 80}" },
	{ "duplicate_port_name", SVC_HEAD "      - {name: http, port: 81}\n", 6,
	  "duplicate port name \"http\"", "{name: http, port: 81}" },
	{ "duplicate_port_number", SVC_HEAD "      - {name: other, port: 80}\n", 6,
	  "duplicate port 80/TCP", "{name: other" },
	{ "duplicate_slice_port",
	  SLICE_HEAD "  - name: web-2\n    serviceName: web\n"
		     "    addressType: IPv4\n"
		     "    ports: [{name: a, port: 1}, {name: a, port: 2}]\n",
	  14, "duplicate port name \"a\"", "{name: a, port: 2}" },
	{ "no_ports", "services:\n  - name: web\n    clusterIP: 10.96.0.10\n    ports: []\n", 4,
	  "at least one port", "[]" },
	/* Enumerations */
	{ "unknown_protocol", SVC_HEAD "      - {name: b, port: 81, protocol: ICMP}\n", 6,
	  "unknown protocol \"ICMP\"", "ICMP" },
	{ "lowercase_protocol", SVC_HEAD "      - {name: b, port: 81, protocol: tcp}\n", 6,
	  "unknown protocol \"tcp\"", "tcp}" },
	{ "sctp", SVC_HEAD "      - {name: b, port: 81, protocol: SCTP}\n", 6,
	  "SCTP is not supported", "SCTP" },
	{ "unknown_type", SVC_HEAD "    type: Internal\n", 6, "unknown Service type \"Internal\"", "Internal" },
	{ "external_name", SVC_HEAD "    type: ExternalName\n", 6,
	  "ExternalName is not supported", "ExternalName" },
	{ "unknown_etp", SVC_HEAD "    externalTrafficPolicy: Global\n", 6,
	  "unknown traffic policy \"Global\"", "Global" },
	{ "unknown_itp", SVC_HEAD "    internalTrafficPolicy: local\n", 6,
	  "unknown traffic policy \"local\"", "local" },
	{ "unknown_affinity", SVC_HEAD "    sessionAffinity: Cookie\n", 6,
	  "unknown session affinity \"Cookie\"", "Cookie" },
	{ "affinity_timeout_zero", SVC_HEAD "    sessionAffinityTimeoutSeconds: 0\n", 6,
	  "0 is out of range (1-86400)", "0" },
	{ "affinity_timeout_big", SVC_HEAD "    sessionAffinityTimeoutSeconds: 86401\n", 6,
	  "86401 is out of range (1-86400)", "86401" },
	{ "unknown_address_type",
	  SVC_HEAD "endpointSlices:\n  - name: web-1\n"
		   "    serviceName: web\n    addressType: IPv5\n",
	  9, "unknown addressType \"IPv5\"", "IPv5" },
	{ "fqdn_address_type",
	  SVC_HEAD "endpointSlices:\n  - name: web-1\n"
		   "    serviceName: web\n    addressType: FQDN\n",
	  9, "FQDN is not supported", "FQDN" },
	{ "bad_bool",
	  SLICE_HEAD "    endpoints:\n      - addresses: [10.244.0.1]\n"
		     "        conditions: {ready: yes}\n",
	  13, "expected true or false", "yes" },
	/* Names */
	{ "bad_service_name", "services:\n  - name: Web\n", 2, "invalid name \"Web\"", "Web" },
	{ "bad_namespace", SVC_HEAD "    namespace: a/b\n", 6, "invalid name \"a/b\"", "a/b" },
	{ "bad_port_name", SVC_HEAD "      - {name: \"a:b\", port: 81}\n", 6,
	  "invalid name \"a:b\"", "\"a:b\"" },
	{ "bad_node_name",
	  SLICE_HEAD "    endpoints:\n      - addresses: [10.244.0.1]\n"
		     "        nodeName: Node_A\n",
	  13, "invalid name \"Node_A\"", "Node_A" },
	/* Missing required fields */
	{ "missing_service_name", "services:\n  - clusterIP: 10.96.0.10\n    ports: [{port: 80}]\n",
	  2, "missing required field \"name\"", "clusterIP" },
	{ "missing_cluster_ip", "services:\n  - name: web\n    ports: [{port: 80}]\n", 2,
	  "missing required field \"clusterIPs\"", "name" },
	{ "missing_ports", "services:\n  - name: web\n    clusterIP: 10.96.0.10\n", 2,
	  "missing required field \"ports\"", "name" },
	{ "null_ports", "services:\n  - name: web\n    clusterIP: 10.96.0.10\n    ports:\n", 2,
	  "missing required field \"ports\"", "name" },
	{ "missing_slice_name",
	  SVC_HEAD "endpointSlices:\n  - serviceName: web\n"
		   "    addressType: IPv4\n",
	  7, "missing required field \"name\"", "serviceName" },
	{ "missing_service_name_in_slice",
	  SVC_HEAD "endpointSlices:\n  - name: web-1\n"
		   "    addressType: IPv4\n",
	  7, "missing required field \"serviceName\"", "name" },
	{ "missing_address_type",
	  SVC_HEAD "endpointSlices:\n  - name: web-1\n"
		   "    serviceName: web\n",
	  7, "missing required field \"addressType\"", "name" },
	{ "missing_addresses", SLICE_HEAD "    endpoints:\n      - nodeName: node-a\n", 12,
	  "missing required field \"addresses\"", "nodeName" },
	{ "missing_slice_port_number",
	  SVC_HEAD "endpointSlices:\n  - name: web-1\n"
		   "    serviceName: web\n    addressType: IPv4\n"
		   "    ports: [{name: http}]\n",
	  10, "missing required field \"port\"", "{name: http}" },
	/* Uniqueness across the file */
	{ "duplicate_service",
	  SVC_HEAD "  - name: web\n    clusterIP: 10.96.0.11\n"
		   "    ports: [{name: http, port: 80}]\n",
	  6, "duplicate Service name \"default/web\"", "web" },
	{ "duplicate_vip_cluster_ip",
	  SVC_HEAD "  - name: other\n    clusterIP: 10.96.0.10\n"
		   "    ports: [{port: 80}]\n",
	  7, "duplicate VIP 10.96.0.10:80/TCP: already used by Service default/web", "10.96.0.10" },
	{ "duplicate_vip_external_ip",
	  SVC_HEAD "  - name: other\n    clusterIP: 10.96.0.11\n"
		   "    externalIPs: [10.96.0.10]\n"
		   "    ports: [{port: 80}]\n",
	  8, "duplicate VIP 10.96.0.10:80/TCP", "10.96.0.10" },
	{ "duplicate_vip_lb_ip",
	  SVC_HEAD "    externalIPs: [192.0.2.1]\n"
		   "  - name: lb\n    type: LoadBalancer\n"
		   "    clusterIP: 10.96.0.11\n"
		   "    loadBalancerIPs: [192.0.2.1]\n"
		   "    ports: [{port: 80}]\n",
	  10, "duplicate VIP 192.0.2.1:80/TCP", "192.0.2.1" },
	{ "duplicate_vip_v6",
	  "services:\n  - name: a\n    clusterIPs: [\"fd00::10\"]\n"
	  "    ports: [{port: 53, protocol: UDP}]\n"
	  "  - name: b\n    clusterIPs: [\"fd00:0::10\"]\n"
	  "    ports: [{port: 53, protocol: UDP}]\n",
	  6, "duplicate VIP [fd00::10]:53/UDP", "\"fd00:0::10\"" },
	{ "duplicate_vip_same_service", SVC_HEAD "    externalIPs: [10.96.0.10]\n", 6,
	  "this Service already uses it", "10.96.0.10" },
	{ "duplicate_node_port",
	  "services:\n  - name: a\n    type: NodePort\n"
	  "    clusterIP: 10.96.0.10\n    ports: [{port: 80, nodePort: 30080}]\n"
	  "  - name: b\n    type: NodePort\n    clusterIP: 10.96.0.11\n"
	  "    ports: [{port: 81, nodePort: 30080}]\n",
	  9, "duplicate nodePort 30080/TCP: already used by Service default/a", "30080" },
	{ "hcnp_needs_load_balancer",
	  "services:\n  - name: a\n    type: NodePort\n    externalTrafficPolicy: Local\n"
	  "    clusterIP: 10.96.0.10\n    healthCheckNodePort: 30100\n"
	  "    ports: [{port: 80}]\n",
	  6, "healthCheckNodePort may only be set when type is LoadBalancer and "
	     "externalTrafficPolicy is Local", "30100" },
	{ "hcnp_needs_local",
	  "services:\n  - name: a\n    type: LoadBalancer\n"
	  "    clusterIP: 10.96.0.10\n    healthCheckNodePort: 30100\n"
	  "    ports: [{port: 80}]\n",
	  5, "may only be set when type is LoadBalancer", "30100" },
	{ "hcnp_range",
	  "services:\n  - name: a\n    type: LoadBalancer\n    externalTrafficPolicy: Local\n"
	  "    clusterIP: 10.96.0.10\n    healthCheckNodePort: 70000\n"
	  "    ports: [{port: 80}]\n",
	  6, "healthCheckNodePort", "70000" },
	{ "hcnp_is_a_node_port",
	  "services:\n  - name: a\n    type: NodePort\n"
	  "    clusterIP: 10.96.0.10\n    ports: [{port: 80, nodePort: 30100}]\n"
	  "  - name: b\n    type: LoadBalancer\n    externalTrafficPolicy: Local\n"
	  "    clusterIP: 10.96.0.11\n    healthCheckNodePort: 30100\n"
	  "    ports: [{port: 81}]\n",
	  10, "duplicate nodePort 30100/TCP: already used by Service default/a", "30100" },
	{ "duplicate_slice",
	  SLICE_HEAD "  - name: web-1\n    serviceName: web\n"
		     "    addressType: IPv6\n",
	  11, "duplicate EndpointSlice name \"default/web-1\"", "web-1" },
	{ "slice_without_service",
	  SVC_HEAD "endpointSlices:\n  - name: web-1\n"
		   "    serviceName: wbe\n    addressType: IPv4\n",
	  8, "serviceName \"wbe\" matches no Service", "wbe" },
	{ "slice_other_namespace",
	  SVC_HEAD "endpointSlices:\n  - name: web-1\n"
		   "    namespace: prod\n"
		   "    serviceName: web\n    addressType: IPv4\n",
	  9, "matches no Service in namespace \"prod\"", "web" },
};

static void sentinel_model(struct sp_model *m)
{
	memset(m, 0xA5, sizeof(*m));
}

static void test_bad_inputs(void)
{
	char path[64], err[512], want[128], name[96];
	int col;
	struct sp_model m, sentinel;
	size_t i;
	int rc;

	sentinel_model(&sentinel);
	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *bc = &bad_cases[i];
		int before = sp_test_failed_asserts;

		snprintf(name, sizeof(name), "test_bad_input_%s", bc->name);
		if (!sp_test_selected(name))
			continue;
		/* A case that cannot be run fails: it must not vanish from the count. */
		if (!write_tmp(bc->yaml, strlen(bc->yaml), path, sizeof(path))) {
			fprintf(stderr, "  %s: cannot write the input file\n", name);
			sp_test_report(name, false);
			continue;
		}
		sentinel_model(&m);
		err[0] = '\0';
		rc = sp_config_load(path, &m, err, sizeof(err));
		if (ASSERT_EQ(rc, -EINVAL, bc->name)) {
			col = want_column(bc->yaml, bc->line, bc->at);
			if (!ASSERT_TRUE(col > 0, "the case's `at` text is on its line"))
				fprintf(stderr, "  %s: \"%s\" not on line %d\n", bc->name, bc->at,
					bc->line);
			snprintf(want, sizeof(want), "%s:%d:%d: ", path, bc->line, col);
			if (!ASSERT_TRUE(!strncmp(err, want, strlen(want)), "file:line:column: prefix"))
				fprintf(stderr, "  %s: want prefix \"%s\", got \"%s\"\n", bc->name,
					want, err);
			ASSERT_CONTAINS(err, bc->phrase, bc->name);
			ASSERT_TRUE(!memcmp(&m, &sentinel, sizeof(m)), "model untouched on error");
		} else if (!rc) {
			sp_model_free(&m);
		}
		unlink(path);
		sp_test_report(name, sp_test_failed_asserts == before);
	}
}

static const struct sp_service *find_svc(const struct sp_model *m, const char *ns, const char *name)
{
	size_t i;

	for (i = 0; i < m->n_services; i++)
		if (!strcmp(m->services[i].ns, ns) && !strcmp(m->services[i].name, name))
			return &m->services[i];
	return NULL;
}

static bool ip_is(const struct sp_ip *ip, const char *s)
{
	struct sp_ip want;

	return !sp_ip_parse(s, &want) && !sp_ip_cmp(ip, &want);
}

static void test_default_config(void)
{
	struct sp_model m = { 0 };
	const struct sp_service *web, *dns, *empty;
	char err[512];
	size_t i, n_ep = 0;
	int rc;

	rc = sp_config_parse_buf(sp_default_config, strlen(sp_default_config),
				 SP_DEFAULT_CONFIG_NAME, &m, err, sizeof(err));
	if (!ASSERT_EQ(rc, 0, err))
		return;
	ASSERT_EQ(m.n_services, 3, "services");
	ASSERT_EQ(m.n_slices, 4, "slices");
	web = find_svc(&m, "demo", "web");
	dns = find_svc(&m, "demo", "dns");
	empty = find_svc(&m, "demo", "empty");
	if (!ASSERT_TRUE(web && dns && empty, "demo/web, demo/dns, demo/empty"))
		goto out;
	ASSERT_EQ(web->type, SP_SVC_LOAD_BALANCER, "web type");
	ASSERT_EQ(web->n_cluster_ips, 2, "web clusterIPs");
	ASSERT_TRUE(ip_is(&web->cluster_ips[0], "10.96.0.10"), "web v4 clusterIP");
	ASSERT_TRUE(ip_is(&web->cluster_ips[1], "fd00:96::10"), "web v6 clusterIP");
	ASSERT_EQ(web->n_lb_ips, 2, "web LB IPs");
	ASSERT_TRUE(ip_is(&web->lb_ips[0], "10.10.0.100"), "web v4 LB IP");
	ASSERT_TRUE(ip_is(&web->lb_ips[1], "fd00:10::100"), "web v6 LB IP");
	if (ASSERT_EQ(web->n_ports, 1, "web ports")) {
		ASSERT_STREQ(web->ports[0].name, "http", "web port name");
		ASSERT_EQ(web->ports[0].proto, IPPROTO_TCP, "web proto");
		ASSERT_EQ(web->ports[0].port, 80, "web port");
		ASSERT_EQ(web->ports[0].target_port, 8080, "web targetPort");
		ASSERT_EQ(web->ports[0].node_port, 30080, "web nodePort");
	}
	ASSERT_EQ(dns->type, SP_SVC_CLUSTER_IP, "dns type");
	if (ASSERT_EQ(dns->n_ports, 1, "dns ports")) {
		ASSERT_EQ(dns->ports[0].proto, IPPROTO_UDP, "dns proto");
		ASSERT_EQ(dns->ports[0].port, 53, "dns port");
		ASSERT_EQ(dns->ports[0].target_port, 5353, "dns targetPort");
	}
	ASSERT_TRUE(ip_is(&empty->cluster_ips[0], "10.96.0.99"), "empty v4 clusterIP");
	ASSERT_TRUE(ip_is(&empty->cluster_ips[1], "fd00:96::99"), "empty v6 clusterIP");
	for (i = 0; i < m.n_slices; i++) {
		ASSERT_TRUE(strcmp(m.slices[i].service_name, "empty"), "no slice for empty");
		n_ep += m.slices[i].n_endpoints;
		if (m.slices[i].n_endpoints) {
			ASSERT_TRUE(m.slices[i].endpoints[0].ready, "ready");
			ASSERT_STREQ(sp_ep_node(&m.slices[i].endpoints[0]), "node-a", "nodeName");
		}
	}
	ASSERT_EQ(n_ep, 12, "endpoints over all slices");
out:
	sp_model_free(&m);
}

static int parse(const char *yaml, struct sp_model *m, char *err, size_t errlen)
{
	memset(m, 0, sizeof(*m));
	return sp_config_parse_buf(yaml, strlen(yaml), "test.yaml", m, err, errlen);
}

/* Everything the format accepts, and the Kubernetes defaults it fills in. */
static void test_full_service(void)
{
	static const char yaml[] =
		"# a comment\n"
		"services:\n"
		"  - name: web\n"
		"    namespace: prod\n"
		"    labels:\n"
		"      app: web\n"
		"      service.kubernetes.io/service-proxy-name: svcplane\n"
		"    type: LoadBalancer\n"
		"    clusterIP: 10.96.0.10\n"
		"    clusterIPs: [10.96.0.10, \"fd00:96::10\"]\n"
		"    externalIPs: [192.0.2.10, \"2001:db8::10\"]\n"
		"    loadBalancerIPs: [198.51.100.10]\n"
		"    externalTrafficPolicy: Local\n"
		"    internalTrafficPolicy: Local\n"
		"    healthCheckNodePort: 30100\n"
		"    sessionAffinity: ClientIP\n"
		"    sessionAffinityTimeoutSeconds: 600\n"
		"    ports:\n"
		"      - {name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30080}\n"
		"      - {name: dns, protocol: UDP, port: 53, targetPort: dns-port,\n"
		"         nodePort: 30080}\n"
		"      - name: https\n"
		"        port: 443\n"
		"endpointSlices:\n"
		"  - name: web-abc\n"
		"    namespace: prod\n"
		"    serviceName: web\n"
		"    addressType: IPv6\n"
		"    ports: [{name: http, protocol: TCP, port: 8080}, {port: 9}]\n"
		"    endpoints:\n"
		"      - addresses: [\"fd00:244::1\", \"fd00:244::2\"]\n"
		"        conditions: {ready: false, serving: true, terminating: true}\n"
		"        nodeName: node-a.example\n"
		"      - addresses: [\"fd00:244::3\"]\n"
		"        conditions: {ready: ~}\n"
		"      - addresses: [\"fd00:244::4\"]\n"
		"        conditions: {ready: false}\n"
		"  - {name: empty, namespace: prod, serviceName: web, addressType: IPv4}\n";
	const struct sp_service *s;
	const struct sp_slice *sl;
	struct sp_model m;
	char err[512];

	if (!ASSERT_EQ(parse(yaml, &m, err, sizeof(err)), 0, err))
		return;
	s = &m.services[0];
	ASSERT_STREQ(s->ns, "prod", "namespace");
	ASSERT_STREQ(s->proxy_name, "svcplane", "proxy-name label");
	ASSERT_EQ(s->type, SP_SVC_LOAD_BALANCER, "type");
	ASSERT_EQ(s->n_cluster_ips, 2, "clusterIPs");
	ASSERT_EQ(s->n_external_ips, 2, "externalIPs");
	ASSERT_TRUE(ip_is(&s->external_ips[1], "2001:db8::10"), "externalIPs[1]");
	ASSERT_EQ(s->n_lb_ips, 1, "LB IPs");
	ASSERT_TRUE(s->etp_local && s->itp_local, "traffic policies");
	ASSERT_EQ(s->health_check_node_port, 30100, "healthCheckNodePort");
	ASSERT_TRUE(s->affinity_client_ip, "affinity");
	ASSERT_EQ(s->affinity_timeout, 600, "affinity timeout");
	ASSERT_EQ(s->n_ports, 3, "ports");
	ASSERT_EQ(s->ports[1].target_port, 0, "named targetPort: no number");
	ASSERT_STREQ(s->ports[1].target_port_name, "dns-port", "named targetPort");
	ASSERT_EQ(s->ports[1].node_port, 30080, "same nodePort, other protocol");
	ASSERT_EQ(s->ports[2].proto, IPPROTO_TCP, "default protocol");
	ASSERT_EQ(s->ports[2].target_port, 443, "default targetPort = port");
	ASSERT_TRUE(s->ports[2].target_port_name == NULL, "no targetPort name");
	ASSERT_EQ(s->resource_version == NULL, 1, "no resourceVersion");
	if (!ASSERT_EQ(m.n_slices, 2, "slices"))
		goto out;
	sl = &m.slices[0];
	ASSERT_EQ(sl->family, SP_FAMILY_V6, "addressType");
	ASSERT_EQ(sl->n_ports, 2, "slice ports");
	ASSERT_STREQ(sl->ports[1].name, "", "unnamed slice port");
	ASSERT_EQ(sl->ports[1].proto, IPPROTO_TCP, "slice port default protocol");
	if (ASSERT_EQ(sl->n_endpoints, 3, "endpoints")) {
		ASSERT_TRUE(ip_is(&sl->endpoints[0].addr, "fd00:244::1"), "first address used");
		ASSERT_TRUE(!sl->endpoints[0].ready && sl->endpoints[0].serving &&
				    sl->endpoints[0].terminating,
			    "terminating conditions");
		ASSERT_STREQ(sp_ep_node(&sl->endpoints[0]), "node-a.example", "nodeName");
		ASSERT_TRUE(sl->endpoints[1].ready && sl->endpoints[1].serving &&
				    !sl->endpoints[1].terminating,
			    "null ready = ready, serving follows ready");
		ASSERT_TRUE(sp_ep_node(&sl->endpoints[1]) == NULL, "no nodeName");
		ASSERT_TRUE(!sl->endpoints[2].ready && !sl->endpoints[2].serving,
			    "serving follows ready=false");
	}
	ASSERT_EQ(m.slices[1].n_endpoints, 0, "slice without endpoints");
	ASSERT_EQ(m.slices[1].n_ports, 0, "slice without ports");
out:
	sp_model_free(&m);
}

/* loadBalancerSourceRanges: both families in one list, host bits cleared. */
static void test_src_ranges(void)
{
	static const char yaml[] = "services:\n"
				   "  - name: web\n"
				   "    type: LoadBalancer\n"
				   "    clusterIPs: [10.96.0.10, \"fd00:96::10\"]\n"
				   "    loadBalancerIPs: [198.51.100.10]\n"
				   "    loadBalancerSourceRanges:\n"
				   "      - 10.10.0.0/24\n"
				   "      - \"2001:db8:1::/48\"\n"
				   "      - 203.0.113.77/16\n"
				   "      - 0.0.0.0/0\n"
				   "    ports: [{port: 80}]\n";
	const struct sp_service *s;
	struct sp_model m;
	char err[512], buf[64];

	if (!ASSERT_EQ(sp_config_parse_buf(yaml, strlen(yaml), "t.yaml", &m, err, sizeof(err)), 0,
		       "parse"))
		return;
	s = &m.services[0];
	if (ASSERT_EQ(s->n_src_ranges, 4, "four ranges")) {
		ASSERT_STREQ(sp_cidr_str(&s->src_ranges[0], buf, sizeof(buf)), "10.10.0.0/24",
			     "v4 range");
		ASSERT_STREQ(sp_cidr_str(&s->src_ranges[1], buf, sizeof(buf)), "2001:db8:1::/48",
			     "v6 range in the same list");
		ASSERT_STREQ(sp_cidr_str(&s->src_ranges[2], buf, sizeof(buf)), "203.0.0.0/16",
			     "host bits cleared");
		ASSERT_STREQ(sp_cidr_str(&s->src_ranges[3], buf, sizeof(buf)), "0.0.0.0/0",
			     "everything");
	}
	sp_model_free(&m);
}

/* sp_cidr_parse: what Kubernetes accepts, and the usual mistakes. */
static void test_cidr_parse(void)
{
	static const struct {
		const char *in, *out; /* out NULL: refused */
	} cases[] = {
		{ "10.0.0.0/8", "10.0.0.0/8" },	      { "10.1.2.3/32", "10.1.2.3/32" },
		{ "10.1.2.3/31", "10.1.2.2/31" },     { "10.255.255.255/9", "10.128.0.0/9" },
		{ "::/0", "::/0" },		      { "fd00::1:2/112", "fd00::1:0/112" },
		{ "fd00:ff::/9", "fd00::/9" },	      { "10.0.0.0", NULL },
		{ "10.0.0.0/", NULL },		      { "10.0.0.0/33", NULL },
		{ "fd00::/129", NULL },		      { "10.0.0.0/08", NULL },
		{ "10.0.0.0/-1", NULL },	      { "10.0.0.0/8/8", NULL },
		{ " 10.0.0.0/8", NULL },	      { "", NULL },
		{ "/8", NULL },
	};
	struct sp_cidr c;
	char buf[64];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = sp_cidr_parse(cases[i].in, &c);

		if (!cases[i].out) {
			if (!ASSERT_EQ(rc, -EINVAL, "refused"))
				fprintf(stderr, "  input \"%s\"\n", cases[i].in);
			continue;
		}
		if (ASSERT_EQ(rc, 0, "parsed"))
			ASSERT_STREQ(sp_cidr_str(&c, buf, sizeof(buf)), cases[i].out, cases[i].in);
	}
}

static void test_defaults(void)
{
	static const char yaml[] = "services:\n"
				   "  - name: a\n"
				   "    clusterIP: 10.96.0.1\n"
				   "    ports: [{port: 80}]\n"
				   "endpointSlices:\n"
				   "  - name: a-1\n"
				   "    serviceName: a\n"
				   "    addressType: IPv4\n"
				   "    endpoints: [{addresses: [10.0.0.1]}]\n";
	const struct sp_service *s;
	const struct sp_endpoint *ep;
	struct sp_model m;
	char err[512];

	if (!ASSERT_EQ(parse(yaml, &m, err, sizeof(err)), 0, err))
		return;
	s = &m.services[0];
	ASSERT_STREQ(s->ns, "default", "default namespace");
	ASSERT_EQ(s->type, SP_SVC_CLUSTER_IP, "default type");
	ASSERT_STREQ(s->ports[0].name, "", "unnamed port");
	ASSERT_EQ(s->ports[0].target_port, 80, "targetPort defaults to port");
	ASSERT_EQ(s->affinity_timeout, 10800, "default affinity timeout");
	ASSERT_TRUE(!s->affinity_client_ip && !s->etp_local && !s->itp_local && !s->headless,
		    "default flags");
	ASSERT_TRUE(s->proxy_name == NULL, "no proxy name");
	ep = &m.slices[0].endpoints[0];
	ASSERT_TRUE(ep->ready && ep->serving && !ep->terminating, "no conditions: ready");
	sp_model_free(&m);
}

static void test_empty_and_minimal(void)
{
	struct sp_model m;
	char err[512];

	ASSERT_EQ(parse("{}\n", &m, err, sizeof(err)), 0, err);
	ASSERT_EQ(m.n_services + m.n_slices, 0, "nothing");
	sp_model_free(&m);
	ASSERT_EQ(parse("services: []\nendpointSlices: []\n", &m, err, sizeof(err)), 0, err);
	sp_model_free(&m);
	ASSERT_EQ(parse("services:\nendpointSlices: ~\n", &m, err, sizeof(err)), 0, err);
	sp_model_free(&m);
}

static void test_headless(void)
{
	static const char yaml[] = "services:\n"
				   "  - {name: a, clusterIP: None}\n"
				   "  - {name: b, clusterIPs: [None], ports: [{port: 80}]}\n"
				   "  - {name: c, clusterIP: None, clusterIPs: [None]}\n"
				   "  - {name: d, clusterIP: None, externalIPs: [10.0.0.1],\n"
				   "     ports: [{port: 80}]}\n"
				   "  - {name: e, clusterIP: 10.0.0.1, ports: [{port: 80}]}\n";
	struct sp_model m;
	char err[512];
	size_t i;

	if (!ASSERT_EQ(parse(yaml, &m, err, sizeof(err)), 0, err))
		return;
	for (i = 0; i < 4; i++) {
		ASSERT_TRUE(m.services[i].headless, "headless");
		ASSERT_EQ(m.services[i].n_cluster_ips, 0, "no clusterIPs");
	}
	/* A headless Service is ignored, so its externalIP claims nothing. */
	ASSERT_TRUE(!m.services[4].headless, "e not headless");
	sp_model_free(&m);
}

/* Same address on other ports or protocols, same name in other namespaces: all fine. */
static void test_not_duplicates(void)
{
	static const char yaml[] =
		"services:\n"
		"  - {name: a, clusterIP: 10.96.0.1, ports: [{port: 80}]}\n"
		"  - {name: b, clusterIP: 10.96.0.2, externalIPs: [10.96.0.1],\n"
		"     ports: [{port: 81}]}\n"
		"  - {name: c, clusterIP: 10.96.0.3, externalIPs: [10.96.0.1],\n"
		"     ports: [{port: 80, protocol: UDP}]}\n"
		"  - {name: a, namespace: other, clusterIP: 10.96.0.4, ports: [{port: 80}]}\n"
		"  - {name: n1, type: NodePort, clusterIP: 10.96.0.5,\n"
		"     ports: [{port: 80, nodePort: 30080}]}\n"
		"  - {name: n2, type: NodePort, clusterIP: 10.96.0.6,\n"
		"     ports: [{port: 80, protocol: UDP, nodePort: 30080}]}\n"
		"endpointSlices:\n"
		"  - {name: s, serviceName: a, addressType: IPv4}\n"
		"  - {name: s, namespace: other, serviceName: a, addressType: IPv4}\n";
	struct sp_model m;
	char err[512];

	ASSERT_EQ(parse(yaml, &m, err, sizeof(err)), 0, err);
	sp_model_free(&m);
}

/* The error for an in-memory buffer names the buffer, not a file. */
static void test_parse_buf_name(void)
{
	struct sp_model m;
	char err[512];

	ASSERT_EQ(parse("services: 1\n", &m, err, sizeof(err)), -EINVAL, "rc");
	ASSERT_CONTAINS(err, "test.yaml:1:11: services: expected a list", "message");
	/* A tiny buffer is cut, never overrun. */
	memset(&m, 0, sizeof(m));
	ASSERT_EQ(sp_config_parse_buf("x: 1\n", 5, "n", &m, err, 4), -EINVAL, "rc");
	ASSERT_EQ(strlen(err), 3, "truncated message");
	ASSERT_EQ(sp_config_parse_buf("x: 1\n", 5, "n", &m, NULL, 0), -EINVAL, "no err buffer");
}

static void test_load_errors(void)
{
	struct sp_model m = { 0 };
	char err[512];

	ASSERT_EQ(sp_config_load("/nonexistent/svcplane.yaml", &m, err, sizeof(err)), -ENOENT,
		  "missing file");
	ASSERT_CONTAINS(err, "/nonexistent/svcplane.yaml: cannot open", "message");
	ASSERT_EQ(sp_config_load("/tmp", &m, err, sizeof(err)), -EISDIR, "directory");
	ASSERT_CONTAINS(err, "/tmp: cannot read", "message");
}

/*
 * A file over SP_CONFIG_MAX_BYTES is refused by its size, before any read
 * (a sparse file: reading it would take 64 MiB of memory and, under
 * valgrind, most of a minute).
 */
static void test_load_too_big(void)
{
	const off_t size = (off_t)SP_CONFIG_MAX_BYTES + 1;
	struct sp_model m = { 0 };
	char path[64], err[512], want[160];
	int fd;

	snprintf(path, sizeof(path), "/tmp/svcplane-test-config-XXXXXX.yaml");
	fd = mkstemps(path, 5);
	if (!ASSERT_TRUE(fd >= 0, "mkstemps"))
		return;
	if (!ASSERT_EQ(ftruncate(fd, size), 0, "ftruncate"))
		goto out;
	ASSERT_EQ(sp_config_load(path, &m, err, sizeof(err)), -EFBIG, "rc");
	snprintf(want, sizeof(want), "%s: %lld bytes is larger than the %u MiB limit", path,
		 (long long)size, SP_CONFIG_MAX_BYTES >> 20);
	ASSERT_CONTAINS(err, want, "message names the size and the limit");
out:
	close(fd);
	unlink(path);
}

/*
 * 100,000 nested "[" (200 KB) took libyaml two minutes: the first pass must
 * stop at the 65th level and say where it is.
 */
static void test_deep_nesting(void)
{
	const size_t n = 100000;
	char *buf = malloc(n + 16), err[512];
	struct sp_model m = { 0 };
	size_t off;

	if (!ASSERT_TRUE(buf, "malloc"))
		return;
	off = (size_t)sprintf(buf, "services: ");
	memset(buf + off, '[', n);
	off += n;
	ASSERT_EQ(sp_config_parse_buf(buf, off, "deep.yaml", &m, err, sizeof(err)), -EINVAL, "rc");
	/* Column 11 holds the first "[" (level 2), so level 65 is at column 74. */
	ASSERT_CONTAINS(err, "deep.yaml:1:74: lists and mappings nested more than 64 deep",
			"message");
	sp_model_free(&m);
	free(buf);
}

/* Big enough to need several reads and the sorted duplicate checks. */
static void test_many_services(void)
{
	const size_t n = 3000;
	size_t cap = n * 160 + 64, off = 0, i;
	char *buf = malloc(cap), err[512];
	struct sp_model m = { 0 };

	if (!ASSERT_TRUE(buf, "malloc"))
		return;
	off += snprintf(buf + off, cap - off, "services:\n");
	for (i = 0; i < n; i++)
		off += snprintf(
			buf + off, cap - off,
			"  - {name: s%zu, clusterIP: 10.%zu.%zu.1, externalIPs: [192.0.2.1],"
			" ports: [{port: %zu}]}\n",
			i, i / 256, i % 256, 1 + i);
	if (ASSERT_EQ(sp_config_parse_buf(buf, off, "big.yaml", &m, err, sizeof(err)), 0, err))
		ASSERT_EQ(m.n_services, n, "services");
	sp_model_free(&m);
	/* One clash among thousands is still found, at the right place. */
	off += snprintf(buf + off, cap - off,
			"  - {name: last, clusterIP: 10.200.0.1, externalIPs: [192.0.2.1],"
			" ports: [{port: 1500}]}\n");
	ASSERT_EQ(sp_config_parse_buf(buf, off, "big.yaml", &m, err, sizeof(err)), -EINVAL, "rc");
	ASSERT_CONTAINS(err, "big.yaml:3002:", "line");
	ASSERT_CONTAINS(err,
			"duplicate VIP 192.0.2.1:1500/TCP: already used by Service default/s1499",
			"message");
	free(buf);
}

static void test_ip_helpers(void)
{
	static const char *const bad[] = { "",		"1.2.3",	"1.2.3.4.5", "01.2.3.4",
					   "256.0.0.1", "10.0.0.0/8",	" 10.0.0.1", "10.0.0.1 ",
					   "fd00:::1",	"fe80::1%eth0", "hello",     "::g" };
	struct sp_ip a, b;
	char buf[64];
	size_t i;

	ASSERT_EQ(sp_ip_parse("10.1.2.3", &a), 0, "v4");
	ASSERT_EQ(a.family, SP_FAMILY_V4, "v4 family");
	ASSERT_TRUE(a.b[0] == 10 && a.b[3] == 3 && a.b[4] == 0, "v4 bytes");
	ASSERT_STREQ(sp_ip_str(&a, buf, sizeof(buf)), "10.1.2.3", "v4 str");
	ASSERT_EQ(sp_ip_parse("FD00:0:0::1", &b), 0, "v6");
	ASSERT_EQ(b.family, SP_FAMILY_V6, "v6 family");
	ASSERT_STREQ(sp_ip_str(&b, buf, sizeof(buf)), "fd00::1", "v6 canonical str");
	ASSERT_TRUE(sp_ip_cmp(&a, &b) < 0, "v4 sorts before v6");
	ASSERT_TRUE(sp_ip_cmp(&b, &a) > 0, "v6 after v4");
	ASSERT_EQ(sp_ip_parse("10.1.2.4", &b), 0, "v4 2");
	ASSERT_TRUE(sp_ip_cmp(&a, &b) < 0, "address order");
	b.b[3] = 3;
	b.b[9] = 7; /* bytes past an IPv4 address do not count */
	ASSERT_EQ(sp_ip_cmp(&a, &b), 0, "equal");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ASSERT_EQ(sp_ip_parse(bad[i], &a), -EINVAL, bad[i]);
		ASSERT_EQ(a.family, 0, "cleared on error");
	}
	ASSERT_EQ(sp_ip_parse(NULL, &a), -EINVAL, "NULL");
	a.family = 9;
	ASSERT_STREQ(sp_ip_str(&a, buf, sizeof(buf)), "?", "bad family");
}

/* Start capturing stream fno (stdout or stderr) into a temporary file;
 * returns the saved descriptor, or -1. */
static int capture_start(FILE *f, int fno, int *fd)
{
	char path[] = "/tmp/svcplane-test-out-XXXXXX";
	int saved;

	fflush(f);
	*fd = mkstemp(path);
	if (*fd < 0)
		return -1;
	unlink(path);
	saved = dup(fno);
	if (saved >= 0)
		dup2(*fd, fno);
	return saved;
}

/* Stop capturing; what was written goes to out. */
static void capture_end(FILE *f, int fno, int fd, int saved, char *out, size_t outlen)
{
	ssize_t n;

	fflush(f);
	dup2(saved, fno);
	close(saved);
	n = pread(fd, out, outlen - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
}

/* Run cmd_check_config with stdout captured into out and stderr into errout
 * (errout may be NULL: stderr then passes through). */
static int run_check2(char *const *argv, int argc, char *out, size_t outlen, char *errout,
		      size_t errlen)
{
	int fd_o, fd_e = -1, so, se = -1, rc;

	so = capture_start(stdout, STDOUT_FILENO, &fd_o);
	if (so < 0)
		return -999;
	if (errout) {
		se = capture_start(stderr, STDERR_FILENO, &fd_e);
		if (se < 0) {
			capture_end(stdout, STDOUT_FILENO, fd_o, so, out, outlen);
			return -999;
		}
	}
	rc = cmd_check_config(argc, (char **)argv);
	if (errout)
		capture_end(stderr, STDERR_FILENO, fd_e, se, errout, errlen);
	capture_end(stdout, STDOUT_FILENO, fd_o, so, out, outlen);
	return rc;
}

static int run_check(char *const *argv, int argc, char *out, size_t outlen)
{
	return run_check2(argv, argc, out, outlen, NULL, 0);
}

/* A Service port that matches no slice port: valid, with a warning. */
static const char warn_yaml[] = "services:\n"
				"  - name: web\n"
				"    clusterIP: 10.96.0.10\n"
				"    ports: [{name: http, port: 80}]\n"
				"endpointSlices:\n"
				"  - name: web-1\n"
				"    serviceName: web\n"
				"    addressType: IPv4\n"
				"    ports: [{name: other, port: 8080}]\n"
				"    endpoints: [{addresses: [10.244.0.1]}]\n";

static void test_check_config_cmd(void)
{
	char path[64], bad[64], warnf[64], out[4096], errout[4096], want[256];
	char *argv[4];

	warnf[0] = bad[0] = '\0';
	if (!write_tmp(sp_default_config, strlen(sp_default_config), path, sizeof(path)))
		return;
	if (!write_tmp("services: {}\n", 13, bad, sizeof(bad)))
		goto out;
	if (!write_tmp(warn_yaml, strlen(warn_yaml), warnf, sizeof(warnf)))
		goto out;
	argv[0] = "check-config";
	argv[1] = path;
	ASSERT_EQ(run_check2(argv, 2, out, sizeof(out), errout, sizeof(errout)), 0, "good file");
	snprintf(want, sizeof(want), "%s: ok (3 services, 4 endpoint slices)\n", path);
	ASSERT_STREQ(out, want, "output");
	ASSERT_STREQ(errout, "", "nothing on stderr for a good file");
	argv[1] = bad;
	ASSERT_EQ(run_check2(argv, 2, out, sizeof(out), errout, sizeof(errout)), -EINVAL,
		  "bad file");
	ASSERT_STREQ(out, "", "nothing on stdout for a bad file");
	snprintf(want, sizeof(want), "%s:1:11: services: expected a list, got a mapping\n", bad);
	ASSERT_STREQ(errout, want, "the error, on stderr");
	/* Warnings go to stderr, the verdict to stdout. */
	argv[1] = warnf;
	ASSERT_EQ(run_check2(argv, 2, out, sizeof(out), errout, sizeof(errout)), 0,
		  "file with a warning");
	snprintf(want, sizeof(want), "%s: ok (1 services, 1 endpoint slices)\n", warnf);
	ASSERT_STREQ(out, want, "only the verdict on stdout");
	snprintf(want, sizeof(want), "%s: warning: Service default/web port \"http\"", warnf);
	ASSERT_TRUE(!strncmp(errout, want, strlen(want)), "the warning, on stderr");
	ASSERT_CONTAINS(errout, "no EndpointSlice has a port of that name", "warning text");
	argv[1] = "--help";
	ASSERT_EQ(run_check(argv, 2, out, sizeof(out)), 0, "--help");
	ASSERT_CONTAINS(out, "Usage: svcplane check-config", "usage");
	ASSERT_EQ(run_check(argv, 1, out, sizeof(out)), -EINVAL, "no FILE");
	argv[1] = "--node-name";
	argv[2] = "node-a";
	argv[3] = path;
	ASSERT_EQ(run_check(argv, 4, out, sizeof(out)), 0, "--node-name");
	argv[1] = "--bogus";
	ASSERT_EQ(run_check(argv, 2, out, sizeof(out)), -EINVAL, "unknown option");
	/* The default config has 6 Service ports (3 Services, dual-stack). */
	argv[1] = "--max-services=5";
	argv[2] = path;
	ASSERT_EQ(run_check2(argv, 3, out, sizeof(out), errout, sizeof(errout)), -EINVAL,
		  "over --max-services");
	snprintf(want, sizeof(want),
		 "%s: 6 Service ports need as many Service ids, the maps hold 5: raise "
		 "--max-services (svcplane run refuses this file: it exits at start, and keeps the "
		 "running state on a reload)\n",
		 path);
	ASSERT_STREQ(errout, want, "capacity error");
	/* and 10 frontends, which --max-services sizes too */
	argv[1] = "--max-services=9";
	ASSERT_EQ(run_check2(argv, 3, out, sizeof(out), errout, sizeof(errout)), -EINVAL,
		  "over --max-services in frontends");
	ASSERT_CONTAINS(errout, ": 10 frontends (address:port/protocol), sp_services holds 9",
			"frontends error");
	argv[1] = "--max-services=10";
	ASSERT_EQ(run_check(argv, 3, out, sizeof(out)), 0, "at --max-services");
	argv[1] = "--maglev-chunks=16";
	ASSERT_EQ(run_check2(argv, 3, out, sizeof(out), errout, sizeof(errout)), -EINVAL,
		  "over --maglev-chunks");
	ASSERT_CONTAINS(errout, "chunks, sp_maglev holds 16: raise --maglev-chunks",
			"chunks error");
out:
	if (bad[0])
		unlink(bad);
	if (warnf[0])
		unlink(warnf);
	unlink(path);
}

int main(void)
{
	test_bad_inputs();
	RUN_TEST(test_default_config);
	RUN_TEST(test_full_service);
	RUN_TEST(test_defaults);
	RUN_TEST(test_src_ranges);
	RUN_TEST(test_cidr_parse);
	RUN_TEST(test_empty_and_minimal);
	RUN_TEST(test_headless);
	RUN_TEST(test_not_duplicates);
	RUN_TEST(test_parse_buf_name);
	RUN_TEST(test_load_errors);
	RUN_TEST(test_load_too_big);
	RUN_TEST(test_many_services);
	RUN_TEST(test_deep_nesting);
	RUN_TEST(test_ip_helpers);
	RUN_TEST(test_check_config_cmd);
	return sp_test_exit();
}
