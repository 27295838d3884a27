// SPDX-License-Identifier: Apache-2.0
/*
 * Kubernetes JSON -> model (user/k8s_json.c). Objects are written in the
 * shape of the Kubernetes 1.30 API reference (Service v1, EndpointSlice
 * discovery.k8s.io/v1, Node v1). Single quotes stand for double quotes so
 * the fixtures stay readable.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "k8s.h"
#include "test.h"

static char warnings[4096];
static int n_warnings;

static void collect_warn(void *arg, const char *msg)
{
	(void)arg;
	n_warnings++;
	strncat(warnings, msg, sizeof(warnings) - strlen(warnings) - 2);
	strcat(warnings, "\n");
}

static void reset_warnings(void)
{
	warnings[0] = 0;
	n_warnings = 0;
}

/* Fixture text with ' for ", parsed. Caller puts the object. */
static struct json_object *J(const char *text)
{
	char *s = strdup(text), *p;
	struct json_object *o;

	for (p = s; *p; p++)
		if (*p == '\'')
			*p = '"';
	o = json_tokener_parse(s);
	if (!o)
		fprintf(stderr, "  fixture is not JSON: %s\n", s);
	free(s);
	return o;
}

static const char *ipstr(const struct sp_ip *ip)
{
	static char buf[4][64];
	static int i;

	i = (i + 1) % 4;
	return sp_ip_str(ip, buf[i], sizeof(buf[i]));
}

static int parse_svc(const char *text, struct sp_service *s, char *err, size_t errlen)
{
	struct json_object *o = J(text);
	int ret;

	reset_warnings();
	ret = sp_k8s_parse_service(o, s, collect_warn, NULL, err, errlen);
	json_object_put(o);
	return ret;
}

static int parse_slice(const char *text, struct sp_slice *s, char *err, size_t errlen)
{
	struct json_object *o = J(text);
	int ret;

	reset_warnings();
	ret = sp_k8s_parse_slice(o, s, collect_warn, NULL, err, errlen);
	json_object_put(o);
	return ret;
}

static const char *FULL_SVC =
	"{'kind':'Service','apiVersion':'v1',"
	"'metadata':{'name':'web','namespace':'shop','uid':'6b1c0c1e-0000-4000-8000-000000000001',"
	"  'resourceVersion':'4711','creationTimestamp':'2024-05-01T10:00:00Z',"
	"  'labels':{'app':'web','service.kubernetes.io/service-proxy-name':'svcplane'}},"
	"'spec':{'ports':[{'name':'http','protocol':'TCP','port':80,'targetPort':'http-alt','nodePort':30080},"
	"                 {'name':'dns','protocol':'UDP','port':53,'targetPort':5353,'nodePort':30053}],"
	"  'selector':{'app':'web'},'clusterIP':'10.96.0.10','clusterIPs':['10.96.0.10'],"
	"  'type':'LoadBalancer','externalIPs':['192.0.2.7','2001:db8::7'],"
	"  'sessionAffinity':'ClientIP','sessionAffinityConfig':{'clientIP':{'timeoutSeconds':600}},"
	"  'externalTrafficPolicy':'Local','healthCheckNodePort':31000,"
	"  'ipFamilies':['IPv4'],'ipFamilyPolicy':'SingleStack','allocateLoadBalancerNodePorts':true,"
	"  'internalTrafficPolicy':'Local'},"
	"'status':{'loadBalancer':{'ingress':[{'ip':'198.51.100.20','ipMode':'VIP'},"
	"  {'hostname':'lb.example.com'},{'ip':'198.51.100.21','ipMode':'Proxy'},{'ip':'2001:db8::20'}]}}}";

static void test_full_service(void)
{
	struct sp_service s;
	char err[256] = "";

	if (!ASSERT_EQ(parse_svc(FULL_SVC, &s, err, sizeof(err)), 0, "parse"))
		return;
	ASSERT_STREQ(s.ns, "shop", "namespace");
	ASSERT_STREQ(s.name, "web", "name");
	ASSERT_STREQ(s.resource_version, "4711", "resourceVersion");
	ASSERT_STREQ(s.proxy_name, "svcplane", "proxy-name label");
	ASSERT_EQ(s.type, SP_SVC_LOAD_BALANCER, "type");
	ASSERT_EQ(s.headless, false, "headless");
	if (ASSERT_EQ(s.n_cluster_ips, 1, "clusterIPs"))
		ASSERT_STREQ(ipstr(&s.cluster_ips[0]), "10.96.0.10", "clusterIP");
	if (ASSERT_EQ(s.n_external_ips, 2, "externalIPs")) {
		ASSERT_STREQ(ipstr(&s.external_ips[0]), "192.0.2.7", "externalIPs[0]");
		ASSERT_STREQ(ipstr(&s.external_ips[1]), "2001:db8::7", "externalIPs[1]");
	}
	/* hostname-only and ipMode Proxy ingress entries are not VIPs of ours */
	if (ASSERT_EQ(s.n_lb_ips, 2, "LB ingress IPs")) {
		ASSERT_STREQ(ipstr(&s.lb_ips[0]), "198.51.100.20", "ingress[0]");
		ASSERT_STREQ(ipstr(&s.lb_ips[1]), "2001:db8::20", "ingress[3]");
	}
	if (ASSERT_EQ(s.n_ports, 2, "ports")) {
		ASSERT_STREQ(s.ports[0].name, "http", "port 0 name");
		ASSERT_EQ(s.ports[0].proto, IPPROTO_TCP, "port 0 proto");
		ASSERT_EQ(s.ports[0].port, 80, "port 0");
		ASSERT_EQ(s.ports[0].node_port, 30080, "nodePort 0");
		ASSERT_EQ(s.ports[0].target_port, 0, "named targetPort has no number");
		ASSERT_STREQ(s.ports[0].target_port_name, "http-alt", "targetPort name");
		ASSERT_EQ(s.ports[1].proto, IPPROTO_UDP, "port 1 proto");
		ASSERT_EQ(s.ports[1].target_port, 5353, "numeric targetPort");
		ASSERT_TRUE(s.ports[1].target_port_name == NULL, "no targetPort name");
	}
	ASSERT_EQ(s.etp_local, true, "externalTrafficPolicy Local");
	ASSERT_EQ(s.health_check_node_port, 31000, "healthCheckNodePort");
	ASSERT_EQ(s.itp_local, true, "internalTrafficPolicy Local");
	ASSERT_EQ(s.affinity_client_ip, true, "sessionAffinity ClientIP");
	ASSERT_EQ(s.affinity_timeout, 600, "affinity timeout");
	ASSERT_EQ(n_warnings, 0, "no warnings");
	sp_service_free(&s);
}

static void test_defaults(void)
{
	struct sp_service s;
	char err[256] = "";

	/* Minimal object: no type, protocol, policies or affinity (API defaults apply). */
	if (!ASSERT_EQ(parse_svc("{'metadata':{'name':'a','namespace':'default'},"
				 "'spec':{'clusterIP':'10.96.1.1','ports':[{'port':8080}]}}",
				 &s, err, sizeof(err)),
		       0, "parse"))
		return;
	ASSERT_EQ(s.type, SP_SVC_CLUSTER_IP, "type defaults to ClusterIP");
	ASSERT_EQ(s.n_cluster_ips, 1, "clusterIP without clusterIPs");
	ASSERT_EQ(s.ports[0].proto, IPPROTO_TCP, "protocol defaults to TCP");
	ASSERT_STREQ(s.ports[0].name, "", "unnamed port");
	ASSERT_EQ(s.ports[0].target_port, 0, "absent targetPort");
	ASSERT_EQ(s.affinity_client_ip, false, "no affinity");
	ASSERT_EQ(s.affinity_timeout, 10800, "default affinity timeout");
	ASSERT_EQ(s.etp_local || s.itp_local, false, "Cluster policies");
	ASSERT_TRUE(s.proxy_name == NULL, "no proxy name");
	ASSERT_TRUE(s.resource_version == NULL, "no resourceVersion");
	sp_service_free(&s);
}

static void test_dual_stack(void)
{
	struct sp_service s;
	char err[256] = "";

	if (!ASSERT_EQ(parse_svc("{'metadata':{'name':'ds','namespace':'default'},'spec':{'type':'NodePort',"
				 "'clusterIP':'fd00:10::5','clusterIPs':['fd00:10::5','10.96.0.5'],"
				 "'ipFamilies':['IPv6','IPv4'],'ipFamilyPolicy':'RequireDualStack',"
				 "'ports':[{'name':'h','port':80,'targetPort':80,'nodePort':31111}]}}",
				 &s, err, sizeof(err)),
		       0, "parse"))
		return;
	ASSERT_EQ(s.type, SP_SVC_NODE_PORT, "NodePort");
	if (ASSERT_EQ(s.n_cluster_ips, 2, "both families")) {
		ASSERT_EQ(s.cluster_ips[0].family, 6, "primary family");
		ASSERT_STREQ(ipstr(&s.cluster_ips[0]), "fd00:10::5", "v6 clusterIP");
		ASSERT_STREQ(ipstr(&s.cluster_ips[1]), "10.96.0.5", "v4 clusterIP");
	}
	sp_service_free(&s);

	/* ipFamilies that contradicts clusterIPs is a bad object */
	ASSERT_EQ(parse_svc("{'metadata':{'name':'ds2','namespace':'default'},'spec':{"
			    "'clusterIPs':['10.96.0.5','fd00::5'],'ipFamilies':['IPv6','IPv4'],"
			    "'ports':[{'port':80}]}}",
			    &s, err, sizeof(err)),
		  -EINVAL, "mismatched ipFamilies");
	ASSERT_CONTAINS(err, "default/ds2", "message names the object");
}

static void test_ignored_and_headless(void)
{
	struct sp_service s;
	char err[256] = "";

	ASSERT_EQ(parse_svc("{'metadata':{'name':'ext','namespace':'default'},'spec':{"
			    "'type':'ExternalName','externalName':'db.example.com'}}",
			    &s, err, sizeof(err)),
		  SP_K8S_IGNORED, "ExternalName is ignored");
	ASSERT_TRUE(s.name == NULL, "ignored leaves nothing allocated");

	if (!ASSERT_EQ(parse_svc("{'metadata':{'name':'hl','namespace':'default'},'spec':{"
				 "'clusterIP':'None','clusterIPs':['None'],'ports':[{'port':5432}]}}",
				 &s, err, sizeof(err)),
		       0, "headless parses"))
		return;
	ASSERT_EQ(s.headless, true, "headless marked");
	ASSERT_EQ(s.n_cluster_ips, 0, "no cluster IPs");
	sp_service_free(&s);
}

static void test_sctp_skipped(void)
{
	struct sp_service s;
	char err[256] = "";

	if (!ASSERT_EQ(parse_svc("{'metadata':{'name':'mix','namespace':'default'},'spec':{"
				 "'clusterIP':'10.96.0.9','ports':[{'name':'s','protocol':'SCTP','port':9},"
				 "{'name':'t','protocol':'TCP','port':10}]}}",
				 &s, err, sizeof(err)),
		       0, "parse"))
		return;
	if (ASSERT_EQ(s.n_ports, 1, "SCTP port dropped"))
		ASSERT_STREQ(s.ports[0].name, "t", "TCP port kept");
	ASSERT_EQ(n_warnings, 1, "one warning");
	ASSERT_CONTAINS(warnings, "SCTP", "warning says why");
	ASSERT_CONTAINS(warnings, "default/mix", "warning names the object");
	sp_service_free(&s);
}

static void test_bad_services(void)
{
	static const struct {
		const char *name, *json, *msg;
	} cases[] = {
		{ "no metadata", "{'spec':{}}", "(unnamed)" },
		{ "no namespace", "{'metadata':{'name':'x'},'spec':{}}", "metadata" },
		{ "no spec", "{'metadata':{'name':'x','namespace':'d'}}", "no spec" },
		{ "bad clusterIP",
		  "{'metadata':{'name':'x','namespace':'d'},'spec':{'clusterIP':'10.96.0.300'}}",
		  "10.96.0.300" },
		{ "bad clusterIPs entry",
		  "{'metadata':{'name':'x','namespace':'d'},'spec':{'clusterIPs':['10.0.0.1',7]}}",
		  "clusterIPs[1]" },
		{ "unknown type", "{'metadata':{'name':'x','namespace':'d'},'spec':{'type':'Magic'}}",
		  "Magic" },
		{ "port out of range",
		  "{'metadata':{'name':'x','namespace':'d'},'spec':{'ports':[{'port':70000}]}}",
		  "ports[0].port" },
		{ "port missing", "{'metadata':{'name':'x','namespace':'d'},'spec':{'ports':[{}]}}",
		  "ports[0].port" },
		{ "port as string",
		  "{'metadata':{'name':'x','namespace':'d'},'spec':{'ports':[{'port':'80'}]}}",
		  "ports[0].port" },
		{ "unknown protocol",
		  "{'metadata':{'name':'x','namespace':'d'},'spec':{'ports':[{'port':1,'protocol':'ICMP'}]}}",
		  "protocol" },
		{ "targetPort 0",
		  "{'metadata':{'name':'x','namespace':'d'},'spec':{'ports':[{'port':1,'targetPort':0}]}}",
		  "targetPort" },
		{ "nodePort range",
		  "{'metadata':{'name':'x','namespace':'d'},'spec':{'ports':[{'port':1,'nodePort':-1}]}}",
		  "nodePort" },
		{ "externalIPs not array",
		  "{'metadata':{'name':'x','namespace':'d'},'spec':{'externalIPs':'1.2.3.4'}}",
		  "externalIPs" },
		{ "bad externalIP",
		  "{'metadata':{'name':'x','namespace':'d'},'spec':{'externalIPs':['nope']}}",
		  "nope" },
		{ "bad ingress IP",
		  "{'metadata':{'name':'x','namespace':'d'},'spec':{},'status':{'loadBalancer':{'ingress':[{'ip':'1.2.3'}]}}}",
		  "ingress[0]" },
		{ "bad policy",
		  "{'metadata':{'name':'x','namespace':'d'},'spec':{'externalTrafficPolicy':'Global'}}",
		  "externalTrafficPolicy" },
		{ "svc_hcnp_range",
		  "{'metadata':{'name':'x','namespace':'d'},'spec':{'healthCheckNodePort':65536}}",
		  "healthCheckNodePort" },
		{ "bad affinity",
		  "{'metadata':{'name':'x','namespace':'d'},'spec':{'sessionAffinity':'Cookie'}}",
		  "sessionAffinity" },
		{ "affinity timeout",
		  "{'metadata':{'name':'x','namespace':'d'},'spec':{'sessionAffinity':'ClientIP',"
		  "'sessionAffinityConfig':{'clientIP':{'timeoutSeconds':0}}}}",
		  "timeoutSeconds" },
		{ "proxy label not string",
		  "{'metadata':{'name':'x','namespace':'d','labels':{'service.kubernetes.io/service-proxy-name':1}},'spec':{}}",
		  "service-proxy-name" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sp_service s;
		char err[256] = "", name[128];
		bool ok;

		snprintf(name, sizeof(name), "test_bad_services: %s", cases[i].name);
		if (!sp_test_selected(name))
			continue;
		ok = ASSERT_EQ(parse_svc(cases[i].json, &s, err, sizeof(err)), -EINVAL, cases[i].name);
		ok = ASSERT_CONTAINS(err, cases[i].msg, cases[i].name) && ok;
		ok = ASSERT_TRUE(s.name == NULL && s.ports == NULL && s.cluster_ips == NULL,
				 "nothing left allocated") && ok;
		sp_test_report(name, ok);
	}
}

static const char *SLICE =
	"{'kind':'EndpointSlice','apiVersion':'discovery.k8s.io/v1',"
	"'metadata':{'name':'web-x7k2p','generateName':'web-','namespace':'shop','resourceVersion':'812',"
	"  'labels':{'endpointslice.kubernetes.io/managed-by':'endpointslice-controller.k8s.io',"
	"            'kubernetes.io/service-name':'web'},"
	"  'ownerReferences':[{'apiVersion':'v1','kind':'Service','name':'web','uid':'u1',"
	"                      'controller':true,'blockOwnerDeletion':true}]},"
	"'addressType':'IPv4',"
	"'endpoints':["
	"  {'addresses':['10.244.1.5'],'conditions':{'ready':true,'serving':true,'terminating':false},"
	"   'nodeName':'node-a','targetRef':{'kind':'Pod','namespace':'shop','name':'web-1','uid':'p1'},'zone':'z1'},"
	"  {'addresses':['10.244.2.6','10.244.2.99'],'conditions':{},'nodeName':'node-b'},"
	"  {'addresses':['10.244.2.7']},"
	"  {'addresses':['10.244.2.8'],'conditions':{'ready':false}},"
	"  {'addresses':['10.244.2.9'],'conditions':{'ready':false,'serving':true,'terminating':true}},"
	"  {'addresses':['10.244.2.10'],'conditions':{'ready':null,'serving':null,'terminating':null}}],"
	"'ports':[{'name':'http-alt','protocol':'TCP','port':8080,'appProtocol':'http'},"
	"  {'name':null,'protocol':'UDP','port':5353},{'name':'any'},{'name':'sc','protocol':'SCTP','port':9}]}";

static void test_slice(void)
{
	struct sp_slice s;
	char err[256] = "";

	if (!ASSERT_EQ(parse_slice(SLICE, &s, err, sizeof(err)), 0, "parse"))
		return;
	ASSERT_STREQ(s.ns, "shop", "namespace");
	ASSERT_STREQ(s.name, "web-x7k2p", "name");
	ASSERT_STREQ(s.service_name, "web", "service-name label");
	ASSERT_STREQ(s.resource_version, "812", "resourceVersion");
	ASSERT_EQ(s.family, 4, "addressType");
	if (ASSERT_EQ(s.n_ports, 2, "nil port and SCTP skipped")) {
		ASSERT_STREQ(s.ports[0].name, "http-alt", "port name");
		ASSERT_EQ(s.ports[0].port, 8080, "port");
		ASSERT_EQ(s.ports[0].proto, IPPROTO_TCP, "proto");
		ASSERT_STREQ(s.ports[1].name, "", "nil name is empty");
		ASSERT_EQ(s.ports[1].proto, IPPROTO_UDP, "udp");
	}
	ASSERT_EQ(n_warnings, 2, "two port warnings");
	if (!ASSERT_EQ(s.n_endpoints, 6, "endpoints"))
		goto out;
	ASSERT_STREQ(ipstr(&s.endpoints[0].addr), "10.244.1.5", "addr 0");
	ASSERT_STREQ(sp_ep_node(&s.endpoints[0]), "node-a", "nodeName");
	ASSERT_TRUE(s.endpoints[0].ready && s.endpoints[0].serving && !s.endpoints[0].terminating,
		    "explicit ready");
	ASSERT_STREQ(ipstr(&s.endpoints[1].addr), "10.244.2.6", "first address only");
	/* nil conditions: ready -> true, serving -> ready, terminating -> false */
	ASSERT_TRUE(s.endpoints[1].ready && s.endpoints[1].serving && !s.endpoints[1].terminating,
		    "empty conditions");
	ASSERT_TRUE(s.endpoints[2].ready && s.endpoints[2].serving && !s.endpoints[2].terminating,
		    "absent conditions");
	ASSERT_TRUE(sp_ep_node(&s.endpoints[2]) == NULL, "absent nodeName");
	ASSERT_TRUE(!s.endpoints[3].ready && !s.endpoints[3].serving && !s.endpoints[3].terminating,
		    "not ready, nil serving follows ready");
	ASSERT_TRUE(!s.endpoints[4].ready && s.endpoints[4].serving && s.endpoints[4].terminating,
		    "serving terminating");
	ASSERT_TRUE(s.endpoints[5].ready && s.endpoints[5].serving && !s.endpoints[5].terminating,
		    "explicit nulls");
out:
	sp_slice_free(&s);
}

static void test_slice_v6_and_ignored(void)
{
	struct sp_slice s;
	char err[256] = "";

	if (ASSERT_EQ(parse_slice("{'metadata':{'name':'w6','namespace':'d','labels':{'kubernetes.io/service-name':'w'}},"
				  "'addressType':'IPv6','endpoints':[{'addresses':['fd00:244::5']}],"
				  "'ports':[{'name':'','port':80,'protocol':'TCP'}]}",
				  &s, err, sizeof(err)),
		      0, "v6 slice")) {
		ASSERT_EQ(s.family, 6, "family");
		ASSERT_STREQ(ipstr(&s.endpoints[0].addr), "fd00:244::5", "v6 endpoint");
		sp_slice_free(&s);
	}
	/* no endpoints and no ports (a Service scaled to zero) is valid */
	if (ASSERT_EQ(parse_slice("{'metadata':{'name':'e','namespace':'d','labels':{'kubernetes.io/service-name':'w'}},"
				  "'addressType':'IPv4','endpoints':null,'ports':null}",
				  &s, err, sizeof(err)),
		      0, "empty slice")) {
		ASSERT_EQ(s.n_endpoints + s.n_ports, 0, "empty");
		sp_slice_free(&s);
	}
	ASSERT_EQ(parse_slice("{'metadata':{'name':'f','namespace':'d','labels':{'kubernetes.io/service-name':'w'}},"
			      "'addressType':'FQDN','endpoints':[{'addresses':['db.example.com']}]}",
			      &s, err, sizeof(err)),
		  SP_K8S_IGNORED, "FQDN ignored");
	ASSERT_EQ(parse_slice("{'metadata':{'name':'nolabel','namespace':'d'},'addressType':'IPv4','endpoints':[]}",
			      &s, err, sizeof(err)),
		  SP_K8S_IGNORED, "slice without service-name label ignored");
}

static void test_bad_slices(void)
{
	static const struct {
		const char *name, *json, *msg;
	} cases[] = {
		{ "no addressType",
		  "{'metadata':{'name':'s','namespace':'d','labels':{'kubernetes.io/service-name':'w'}},'endpoints':[]}",
		  "addressType" },
		{ "unknown addressType",
		  "{'metadata':{'name':'s','namespace':'d','labels':{'kubernetes.io/service-name':'w'}},'addressType':'IPX'}",
		  "IPX" },
		{ "port out of range",
		  "{'metadata':{'name':'s','namespace':'d','labels':{'kubernetes.io/service-name':'w'}},"
		  "'addressType':'IPv4','ports':[{'port':0}]}",
		  "ports[0]" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sp_slice s;
		char err[256] = "", name[128];
		bool ok;

		snprintf(name, sizeof(name), "test_bad_slices: %s", cases[i].name);
		if (!sp_test_selected(name))
			continue;
		ok = ASSERT_EQ(parse_slice(cases[i].json, &s, err, sizeof(err)), -EINVAL,
			       cases[i].name);
		ok = ASSERT_CONTAINS(err, cases[i].msg, cases[i].name) && ok;
		ok = ASSERT_CONTAINS(err, "d/s", "names the object") && ok;
		sp_test_report(name, ok);
	}
}

/*
 * A bad endpoint is skipped with a warning naming it; the slice's other
 * endpoints stay (one bad address must not take a Service's backends away).
 */
static void test_bad_endpoint_skipped(void)
{
	static const struct {
		const char *name, *ep, *msg;
	} cases[] = {
		{ "family mismatch", "{'addresses':['fd00::1']}", "not an IPv4" },
		{ "no addresses", "{'addresses':[]}", "endpoints[1] has no addresses" },
		{ "bad address", "{'addresses':['10.1.1']}", "10.1.1" },
		{ "ready not bool", "{'addresses':['10.1.1.9'],'conditions':{'ready':'yes'}}",
		  "endpoints[1].conditions" },
		{ "nodeName not a string", "{'addresses':['10.1.1.9'],'nodeName':5}",
		  "endpoints[1].nodeName" },
		{ "not an object", "'10.1.1.9'", "endpoints[1] has no addresses" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char json[1024], err[256] = "", name[128];
		struct sp_slice s;
		bool ok;

		snprintf(name, sizeof(name), "test_bad_endpoint_skipped: %s", cases[i].name);
		if (!sp_test_selected(name))
			continue;
		snprintf(json, sizeof(json),
			 "{'metadata':{'name':'s','namespace':'d','labels':{'kubernetes.io/"
			 "service-name':'w'}},'addressType':'IPv4','ports':[{'port':80}],"
			 "'endpoints':[{'addresses':['10.1.1.1']},%s,{'addresses':['10.1.1.3']}]}",
			 cases[i].ep);
		ok = ASSERT_EQ(parse_slice(json, &s, err, sizeof(err)), 0, cases[i].name);
		if (ok) {
			ok = ASSERT_EQ(s.n_endpoints, 2, "the two good endpoints stay") && ok;
			ok = ok && ASSERT_STREQ(ipstr(&s.endpoints[1].addr), "10.1.1.3", "in order");
			sp_slice_free(&s);
		}
		ok = ASSERT_CONTAINS(warnings, cases[i].msg, cases[i].name) && ok;
		ok = ASSERT_CONTAINS(warnings, "d/s", "names the slice") && ok;
		ok = ASSERT_CONTAINS(warnings, "endpoint skipped", "says what was done") && ok;
		sp_test_report(name, ok);
	}
}

/* endpoints[].hints: forZones and forNodes names, kept as comma lists. */
static void test_slice_hints(void)
{
	struct sp_slice s, d;
	char err[256] = "";

	if (!ASSERT_EQ(parse_slice("{'metadata':{'name':'s','namespace':'d','labels':{'kubernetes."
				   "io/service-name':'w'}},'addressType':'IPv4','ports':[{'port':80}],"
				   "'endpoints':["
				   "{'addresses':['10.1.1.1'],'hints':{'forZones':[{'name':'z1'},"
				   "{'name':'z2'}],'forNodes':[{'name':'node-a'}]}},"
				   "{'addresses':['10.1.1.2'],'hints':{'forZones':[{'name':'z1'}]}},"
				   "{'addresses':['10.1.1.3'],'hints':{'forZones':[{'nom':'z1'}]}},"
				   "{'addresses':['10.1.1.4'],'hints':'z1'},"
				   "{'addresses':['10.1.1.5'],'hints':{'forZones':[]}}]}",
				   &s, err, sizeof(err)),
		       0, err))
		return;
	if (ASSERT_EQ(s.n_endpoints, 5, "all endpoints kept")) {
		ASSERT_STREQ(sp_ep_zone_hints(&s.endpoints[0]), "z1,z2", "two zones");
		ASSERT_STREQ(sp_ep_node_hints(&s.endpoints[0]), "node-a", "a node");
		ASSERT_STREQ(sp_ep_zone_hints(&s.endpoints[1]), "z1", "one zone");
		ASSERT_TRUE(!sp_ep_node_hints(&s.endpoints[1]), "no node hints");
		ASSERT_TRUE(!sp_ep_zone_hints(&s.endpoints[2]) && !sp_ep_zone_hints(&s.endpoints[3]),
			    "malformed hints: none");
		ASSERT_TRUE(!sp_ep_zone_hints(&s.endpoints[4]), "an empty list: none");
		ASSERT_EQ(n_warnings, 2, "a warning per malformed hints");
		ASSERT_CONTAINS(warnings, "endpoints[2].hints is malformed", "names it");
		if (ASSERT_EQ(sp_k8s_slice_dup(&d, &s), 0, "dup")) {
			ASSERT_STREQ(sp_ep_zone_hints(&d.endpoints[0]), "z1,z2", "dup: zones");
			ASSERT_STREQ(sp_ep_node_hints(&d.endpoints[0]), "node-a", "dup: nodes");
			sp_slice_free(&d);
		}
	}
	sp_slice_free(&s);
}

/* The Node's zone label, and InternalIPs before ExternalIPs (primary first). */
static void test_node_zone_primary(void)
{
	struct json_object *o;
	struct sp_ip *a;
	char *zone;
	size_t n;
	char err[256] = "";

	o = J("{'metadata':{'name':'n','labels':{'topology.kubernetes.io/zone':'zone-a'}},"
	      "'status':{'addresses':[{'type':'ExternalIP','address':'203.0.113.10'},"
	      "{'type':'ExternalIP','address':'fd00:9::1'},"
	      "{'type':'InternalIP','address':'192.168.1.10'},"
	      "{'type':'InternalIP','address':'192.168.1.11'}]}}");
	if (ASSERT_EQ(sp_k8s_node_zone(o, &zone), 0, "zone")) {
		ASSERT_STREQ(zone, "zone-a", "the label");
		free(zone);
	}
	if (ASSERT_EQ(sp_k8s_parse_node(o, &a, &n, NULL, NULL, err, sizeof(err)), 0, err) &&
	    ASSERT_EQ(n, 4, "four")) {
		ASSERT_STREQ(ipstr(&a[0]), "192.168.1.10", "InternalIP first");
		ASSERT_STREQ(ipstr(&a[1]), "192.168.1.11", "then the next InternalIP");
		ASSERT_STREQ(ipstr(&a[2]), "203.0.113.10", "then ExternalIPs");
		ASSERT_STREQ(ipstr(&a[3]), "fd00:9::1", "in API order");
		free(a);
	}
	json_object_put(o);
	o = J("{'metadata':{'name':'n','labels':{'topology.kubernetes.io/zone':''}}}");
	ASSERT_EQ(sp_k8s_node_zone(o, &zone), 0, "empty label");
	ASSERT_TRUE(!zone, "an empty zone is none");
	json_object_put(o);
	o = J("{'metadata':{'name':'n','labels':{'topology.kubernetes.io/zone':7}}}");
	ASSERT_EQ(sp_k8s_node_zone(o, &zone), 0, "not a string");
	ASSERT_TRUE(!zone, "a zone that is not a string is none");
	json_object_put(o);
}

static void test_list_with_bad_item(void)
{
	struct sp_model m = { 0 };
	char *text = strdup(
		"{'kind':'ServiceList','apiVersion':'v1','metadata':{'resourceVersion':'99'},'items':["
		"{'metadata':{'name':'a','namespace':'d'},'spec':{'clusterIP':'10.96.0.1','ports':[{'port':80}]}},"
		"{'metadata':{'name':'bad','namespace':'d'},'spec':{'clusterIP':'10.96.0.999','ports':[{'port':80}]}},"
		"{'metadata':{'name':'x','namespace':'d'},'spec':{'type':'ExternalName','externalName':'e.com'}},"
		"{'metadata':{'name':'b','namespace':'d'},'spec':{'clusterIP':'10.96.0.2','ports':[{'port':81}]}}]}");
	char *p;
	int ret;

	for (p = text; *p; p++)
		if (*p == '\'')
			*p = '"';
	reset_warnings();
	ret = sp_k8s_model_add_json(&m, text, collect_warn, NULL);
	ASSERT_EQ(ret, 1, "one object skipped");
	ASSERT_CONTAINS(warnings, "d/bad", "warning names the bad object");
	if (ASSERT_EQ(m.n_services, 2, "good services kept")) {
		ASSERT_STREQ(m.services[0].name, "a", "first");
		ASSERT_STREQ(m.services[1].name, "b", "second");
	}
	sp_model_free(&m);

	/* A v1 List carries the kind on each item. */
	strcpy(text, "{\"kind\":\"List\",\"apiVersion\":\"v1\",\"items\":["
		     "{\"kind\":\"EndpointSlice\",\"metadata\":{\"name\":\"s\",\"namespace\":\"d\","
		     "\"labels\":{\"kubernetes.io/service-name\":\"a\"}},\"addressType\":\"IPv4\"},"
		     "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\",\"namespace\":\"d\"}}]}");
	ret = sp_k8s_model_add_json(&m, text, collect_warn, NULL);
	if (!ASSERT_EQ(ret, 1, "unknown kind skipped"))
		fprintf(stderr, "  warnings: %s\n", warnings);
	ASSERT_EQ(m.n_slices, 1, "slice added");
	ASSERT_EQ(sp_k8s_model_add_json(&m, "not json", NULL, NULL), -EINVAL, "garbage");
	sp_model_free(&m);
	free(text);
}

static void test_node(void)
{
	struct json_object *o;
	struct sp_ip *a;
	size_t n;
	char err[256] = "";

	o = J("{'kind':'Node','apiVersion':'v1','metadata':{'name':'node-a','resourceVersion':'5'},"
	      "'status':{'addresses':[{'type':'InternalIP','address':'192.168.1.10'},"
	      "{'type':'InternalIP','address':'fd00:1::10'},{'type':'Hostname','address':'node-a'},"
	      "{'type':'ExternalIP','address':'203.0.113.10'},{'type':'ExternalIP','address':'192.168.1.10'},"
	      "{'type':'InternalDNS','address':'node-a.cluster'}]}}");
	if (ASSERT_EQ(sp_k8s_parse_node(o, &a, &n, NULL, NULL, err, sizeof(err)), 0, "parse") &&
	    ASSERT_EQ(n, 3, "IPs, de-duplicated")) {
		ASSERT_STREQ(ipstr(&a[0]), "192.168.1.10", "InternalIP");
		ASSERT_STREQ(ipstr(&a[1]), "fd00:1::10", "v6 InternalIP");
		ASSERT_STREQ(ipstr(&a[2]), "203.0.113.10", "ExternalIP");
		free(a);
	}
	json_object_put(o);

	o = J("{'metadata':{'name':'node-b'},'status':{'addresses':[{'type':'InternalIP','address':'x'}]}}");
	ASSERT_EQ(sp_k8s_parse_node(o, &a, &n, NULL, NULL, err, sizeof(err)), -EINVAL, "bad address");
	ASSERT_CONTAINS(err, "node-b", "names the node");
	json_object_put(o);

	o = J("{'metadata':{'name':'node-c'},'status':{}}");
	ASSERT_EQ(sp_k8s_parse_node(o, &a, &n, NULL, NULL, err, sizeof(err)), 0, "no addresses yet");
	ASSERT_EQ(n, 0, "empty");
	json_object_put(o);
}

#define LB_SVC(meta_extra, spec_extra)                                                     \
	"{'kind':'Service','metadata':{'name':'web','namespace':'shop'" meta_extra "},"    \
	"'spec':{'type':'LoadBalancer','clusterIP':'10.96.0.10',"                          \
	"  'ports':[{'port':80}]" spec_extra "}}"

static bool range_is(const struct sp_cidr *c, const char *want)
{
	char buf[64];

	return ASSERT_STREQ(sp_cidr_str(c, buf, sizeof(buf)), want, "range");
}

/*
 * spec.loadBalancerSourceRanges: as kube-proxy, spaces trimmed, invalid
 * CIDRs skipped with a warning while the valid ones apply; the annotation
 * only when the field is empty; a structurally wrong field rejects the
 * object.
 */
static void test_src_ranges(void)
{
	struct sp_service s;
	char err[256] = "";

	if (ASSERT_EQ(parse_svc(LB_SVC("", ",'loadBalancerSourceRanges':['10.10.0.0/24',"
					 "' 2001:db8::/32 ','10.1.2.3/8']"),
				&s, err, sizeof(err)),
		      0, "both families") &&
	    ASSERT_EQ(s.n_src_ranges, 3, "three ranges")) {
		range_is(&s.src_ranges[0], "10.10.0.0/24");
		range_is(&s.src_ranges[1], "2001:db8::/32");
		range_is(&s.src_ranges[2], "10.0.0.0/8");
		ASSERT_EQ(n_warnings, 0, "no warning");
	}
	sp_service_free(&s);

	if (ASSERT_EQ(parse_svc(LB_SVC("", ",'loadBalancerSourceRanges':['10.10.0.0/24',"
					 "'10.20.0.1','bogus/8','','fd00::/64']"),
				&s, err, sizeof(err)),
		      0, "invalid CIDRs do not reject the Service") &&
	    ASSERT_EQ(s.n_src_ranges, 2, "the two valid ranges apply")) {
		range_is(&s.src_ranges[0], "10.10.0.0/24");
		range_is(&s.src_ranges[1], "fd00::/64");
		ASSERT_EQ(n_warnings, 2, "one warning per invalid CIDR (none for \"\")");
		ASSERT_CONTAINS(warnings, "invalid CIDR \"10.20.0.1\" ignored", "warning names it");
	}
	sp_service_free(&s);

	if (ASSERT_EQ(parse_svc(LB_SVC(",'annotations':{'service.beta.kubernetes.io/"
				       "load-balancer-source-ranges':' 10.10.0.0/24, fd00::/64,x'}",
				       ""),
				&s, err, sizeof(err)),
		      0, "annotation") &&
	    ASSERT_EQ(s.n_src_ranges, 2, "annotation ranges")) {
		range_is(&s.src_ranges[0], "10.10.0.0/24");
		range_is(&s.src_ranges[1], "fd00::/64");
		ASSERT_EQ(n_warnings, 1, "the invalid one warned");
	}
	sp_service_free(&s);

	if (ASSERT_EQ(parse_svc(LB_SVC(",'annotations':{'service.beta.kubernetes.io/"
				       "load-balancer-source-ranges':'192.0.2.0/24'}",
				       ",'loadBalancerSourceRanges':['10.10.0.0/24']"),
				&s, err, sizeof(err)),
		      0, "field and annotation") &&
	    ASSERT_EQ(s.n_src_ranges, 1, "the field wins"))
		range_is(&s.src_ranges[0], "10.10.0.0/24");
	sp_service_free(&s);

	ASSERT_EQ(parse_svc(LB_SVC("", ",'loadBalancerSourceRanges':'10.0.0.0/8'"), &s, err,
			    sizeof(err)),
		  -EINVAL, "not an array");
	ASSERT_CONTAINS(err, "loadBalancerSourceRanges is not an array", "error");
	ASSERT_EQ(parse_svc(LB_SVC("", ",'loadBalancerSourceRanges':[8]"), &s, err, sizeof(err)),
		  -EINVAL, "not a string");
	ASSERT_CONTAINS(err, "loadBalancerSourceRanges[0] is not a string", "error");
}

static void test_dup(void)
{
	struct sp_service s, d;
	struct sp_slice sl, dl;
	char err[256];

	if (!ASSERT_EQ(parse_svc(FULL_SVC, &s, err, sizeof(err)), 0, "parse svc"))
		return;
	if (ASSERT_EQ(sp_k8s_service_dup(&d, &s), 0, "dup svc")) {
		ASSERT_TRUE(d.name != s.name, "deep name");
		ASSERT_STREQ(d.ports[0].target_port_name, "http-alt", "deep port");
		ASSERT_EQ(d.n_lb_ips, 2, "lb ips");
		ASSERT_EQ(sp_ip_cmp(&d.external_ips[1], &s.external_ips[1]), 0, "ips equal");
		sp_service_free(&d);
	}
	sp_service_free(&s);
	if (!ASSERT_EQ(parse_svc(LB_SVC("", ",'loadBalancerSourceRanges':['10.10.0.0/24']"), &s,
				 err, sizeof(err)),
		       0, "parse svc with ranges"))
		return;
	if (ASSERT_EQ(sp_k8s_service_dup(&d, &s), 0, "dup svc with ranges")) {
		ASSERT_TRUE(d.src_ranges != s.src_ranges, "ranges not shared");
		if (ASSERT_EQ(d.n_src_ranges, 1, "ranges"))
			range_is(&d.src_ranges[0], "10.10.0.0/24");
		sp_service_free(&d);
	}
	sp_service_free(&s);
	if (!ASSERT_EQ(parse_slice(SLICE, &sl, err, sizeof(err)), 0, "parse slice"))
		return;
	if (ASSERT_EQ(sp_k8s_slice_dup(&dl, &sl), 0, "dup slice")) {
		ASSERT_EQ(dl.n_endpoints, 6, "endpoints");
		ASSERT_STREQ(sp_ep_node(&dl.endpoints[0]), "node-a", "deep node name");
		/* Node names are interned: one copy for every endpoint of a node. */
		ASSERT_TRUE(sp_ep_node(&dl.endpoints[0]) == sp_ep_node(&sl.endpoints[0]), "interned");
		ASSERT_TRUE(dl.endpoints != sl.endpoints, "endpoints not shared");
		sp_slice_free(&dl);
	}
	sp_slice_free(&sl);
}

static void test_object_key(void)
{
	struct json_object *o = J("{'metadata':{'name':'n','namespace':'ns'}}");
	char key[64];

	ASSERT_EQ(sp_k8s_object_key(o, key, sizeof(key)), 0, "key");
	ASSERT_STREQ(key, "ns/n", "namespaced key");
	json_object_put(o);
	o = J("{'metadata':{'name':'node-a'}}");
	sp_k8s_object_key(o, key, sizeof(key));
	ASSERT_STREQ(key, "node-a", "cluster-scoped key");
	json_object_put(o);
	o = J("{'metadata':{}}");
	ASSERT_EQ(sp_k8s_object_key(o, key, sizeof(key)), -EINVAL, "no name");
	json_object_put(o);
}

int main(void)
{
	RUN_TEST(test_full_service);
	RUN_TEST(test_defaults);
	RUN_TEST(test_dual_stack);
	RUN_TEST(test_ignored_and_headless);
	RUN_TEST(test_sctp_skipped);
	test_bad_services();
	RUN_TEST(test_slice);
	RUN_TEST(test_slice_v6_and_ignored);
	test_bad_slices();
	RUN_TEST(test_bad_endpoint_skipped);
	RUN_TEST(test_slice_hints);
	RUN_TEST(test_node_zone_primary);
	RUN_TEST(test_list_with_bad_item);
	RUN_TEST(test_node);
	RUN_TEST(test_src_ranges);
	RUN_TEST(test_dup);
	RUN_TEST(test_object_key);
	return sp_test_exit();
}
