// SPDX-License-Identifier: Apache-2.0
/*
 * The Kubernetes client (user/k8s.c, user/k8s_config.c).
 *
 * Without arguments: self-contained unit cases (kubeconfig and in-cluster
 * configuration, base64, the incremental stream decoder, backoff, start/stop
 * against an API server that is not there).
 *
 * With arguments it is the driver of selftests/user/test_k8s_watch.sh: it
 * runs the real watcher against scripts/k8s-test-apiserver.py and writes
 * every snapshot it receives as JSON to --dump FILE (atomically, by rename)
 * and one summary line per snapshot to FILE.log, until SIGTERM or
 * --run-seconds.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <getopt.h>

#include <json-c/json.h>

#include "k8s.h"
#include "test.h"

/* ---- driver mode ---- */

static volatile sig_atomic_t stop_flag;
static const char *dump_path;
static unsigned seq;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static struct json_object *ips_json(const struct sp_ip *ips, size_t n)
{
	struct json_object *a = json_object_new_array();
	char buf[64];
	size_t i;

	for (i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(sp_ip_str(&ips[i], buf, sizeof(buf))));
	return a;
}

static const char *proto_str(uint8_t p)
{
	return p == 6 ? "TCP" : p == 17 ? "UDP" : "?";
}

static struct json_object *update_json(const struct sp_k8s_update *u)
{
	struct json_object *root = json_object_new_object(), *svcs = json_object_new_array();
	struct json_object *slices = json_object_new_array(), *changed = json_object_new_array();
	struct json_object *st = json_object_new_object();
	static const char *const types[] = { "ClusterIP", "NodePort", "LoadBalancer" };
	size_t i, j;
	char buf[64];

	for (i = 0; i < u->model->n_services; i++) {
		const struct sp_service *s = &u->model->services[i];
		struct json_object *o = json_object_new_object(), *ports = json_object_new_array();

		snprintf(buf, sizeof(buf), "%s/%s", s->ns, s->name);
		json_object_object_add(o, "key", json_object_new_string(buf));
		json_object_object_add(o, "type", json_object_new_string(types[s->type]));
		json_object_object_add(o, "headless", json_object_new_boolean(s->headless));
		json_object_object_add(o, "clusterIPs", ips_json(s->cluster_ips, s->n_cluster_ips));
		json_object_object_add(o, "externalIPs", ips_json(s->external_ips, s->n_external_ips));
		json_object_object_add(o, "lbIPs", ips_json(s->lb_ips, s->n_lb_ips));
		for (j = 0; j < s->n_ports; j++) {
			struct json_object *p = json_object_new_object();

			json_object_object_add(p, "name", json_object_new_string(s->ports[j].name));
			json_object_object_add(p, "protocol",
					       json_object_new_string(proto_str(s->ports[j].proto)));
			json_object_object_add(p, "port", json_object_new_int(s->ports[j].port));
			json_object_object_add(p, "nodePort", json_object_new_int(s->ports[j].node_port));
			json_object_object_add(p, "targetPort",
					       json_object_new_int(s->ports[j].target_port));
			if (s->ports[j].target_port_name)
				json_object_object_add(p, "targetPortName",
						       json_object_new_string(s->ports[j].target_port_name));
			json_object_array_add(ports, p);
		}
		json_object_object_add(o, "ports", ports);
		json_object_object_add(o, "etpLocal", json_object_new_boolean(s->etp_local));
		json_object_object_add(o, "itpLocal", json_object_new_boolean(s->itp_local));
		json_object_object_add(o, "affinity", json_object_new_boolean(s->affinity_client_ip));
		json_object_object_add(o, "affinityTimeout", json_object_new_int(s->affinity_timeout));
		if (s->proxy_name)
			json_object_object_add(o, "proxyName", json_object_new_string(s->proxy_name));
		if (s->resource_version)
			json_object_object_add(o, "rv", json_object_new_string(s->resource_version));
		json_object_array_add(svcs, o);
	}
	for (i = 0; i < u->model->n_slices; i++) {
		const struct sp_slice *s = &u->model->slices[i];
		struct json_object *o = json_object_new_object(), *eps = json_object_new_array();
		struct json_object *ports = json_object_new_array();

		snprintf(buf, sizeof(buf), "%s/%s", s->ns, s->name);
		json_object_object_add(o, "key", json_object_new_string(buf));
		json_object_object_add(o, "service", json_object_new_string(s->service_name));
		json_object_object_add(o, "family", json_object_new_int(s->family));
		for (j = 0; j < s->n_ports; j++) {
			struct json_object *p = json_object_new_object();

			json_object_object_add(p, "name", json_object_new_string(s->ports[j].name));
			json_object_object_add(p, "protocol",
					       json_object_new_string(proto_str(s->ports[j].proto)));
			json_object_object_add(p, "port", json_object_new_int(s->ports[j].port));
			json_object_array_add(ports, p);
		}
		for (j = 0; j < s->n_endpoints; j++) {
			const struct sp_endpoint *e = &s->endpoints[j];
			struct json_object *p = json_object_new_object();

			json_object_object_add(p, "addr",
					       json_object_new_string(sp_ip_str(&e->addr, buf, sizeof(buf))));
			json_object_object_add(p, "ready", json_object_new_boolean(e->ready));
			json_object_object_add(p, "serving", json_object_new_boolean(e->serving));
			json_object_object_add(p, "terminating", json_object_new_boolean(e->terminating));
			if (sp_ep_node(e))
				json_object_object_add(p, "node", json_object_new_string(sp_ep_node(e)));
			json_object_array_add(eps, p);
		}
		json_object_object_add(o, "ports", ports);
		json_object_object_add(o, "endpoints", eps);
		json_object_array_add(slices, o);
	}
	for (i = 0; i < u->n_changed; i++)
		json_object_array_add(changed, json_object_new_string(u->changed[i]));
#define STAT(f) json_object_object_add(st, #f, json_object_new_int64((int64_t)u->stats.f))
	STAT(lists);
	STAT(relists_gone);
	STAT(watches);
	STAT(watch_drops);
	STAT(events);
	STAT(bookmarks);
	STAT(bad_objects);
	STAT(http_errors);
	STAT(updates);
#undef STAT
	json_object_object_add(root, "seq", json_object_new_int((int)seq));
	json_object_object_add(root, "services", svcs);
	json_object_object_add(root, "slices", slices);
	json_object_object_add(root, "nodeKnown", json_object_new_boolean(u->node_known));
	json_object_object_add(root, "nodeAddrs", ips_json(u->node_addrs, u->n_node_addrs));
	json_object_object_add(root, "changed", changed);
	json_object_object_add(root, "stats", st);
	return root;
}

static void on_update(void *arg, struct sp_k8s_update *u)
{
	struct json_object *j;
	char tmp[4096], logp[4096];
	size_t i;
	FILE *f;

	(void)arg;
	seq++;
	j = update_json(u);
	snprintf(tmp, sizeof(tmp), "%s.tmp", dump_path);
	snprintf(logp, sizeof(logp), "%s.log", dump_path);
	if (json_object_to_file_ext(tmp, j, JSON_C_TO_STRING_PRETTY) || rename(tmp, dump_path))
		fprintf(stderr, "test_k8s_client: cannot write %s\n", dump_path);
	json_object_put(j);
	f = fopen(logp, "a");
	if (f) {
		fprintf(f, "update %u services=%zu slices=%zu nodeaddrs=%zu changed=", seq,
			u->model->n_services, u->model->n_slices, u->n_node_addrs);
		for (i = 0; i < u->n_changed; i++)
			fprintf(f, "%s%s", i ? "," : "", u->changed[i]);
		/* Which Services the snapshot holds, for checks on every update
		 * (the JSON dump keeps only the last one). */
		fprintf(f, " keys=");
		for (i = 0; i < u->model->n_services; i++)
			fprintf(f, "%s%s/%s", i ? "," : "", u->model->services[i].ns,
				u->model->services[i].name);
		fprintf(f, "\n");
		fclose(f);
	}
	sp_k8s_update_free(u);
}

static int driver(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "kubeconfig", required_argument, NULL, 'k' },
		{ "sa-dir", required_argument, NULL, 's' },
		{ "node-name", required_argument, NULL, 'n' },
		{ "dump", required_argument, NULL, 'd' },
		{ "run-seconds", required_argument, NULL, 'r' },
		{ "idle-timeout", required_argument, NULL, 'i' },
		{ "watch-timeout", required_argument, NULL, 'w' },
		{ "min-sync", required_argument, NULL, 'b' },
		{ "page-limit", required_argument, NULL, 'p' },
		{ "backoff-max", required_argument, NULL, 'x' },
		{ "max-value", required_argument, NULL, 'm' },
		{ "verbose", no_argument, NULL, 'v' },
		{}
	};
	struct sp_k8s_opts o = { .log_level = SP_K8S_LOG_INFO };
	unsigned run_seconds = 60;
	struct sp_k8s *k;
	char err[512];
	int c;
	time_t end;

	while ((c = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
		switch (c) {
		case 'k': o.kubeconfig = optarg; break;
		case 's': o.sa_dir = optarg; break;
		case 'n': o.node_name = optarg; break;
		case 'd': dump_path = optarg; break;
		case 'r': run_seconds = (unsigned)atoi(optarg); break;
		case 'i': o.idle_timeout_s = (unsigned)atoi(optarg); break;
		case 'w': o.watch_timeout_s = (unsigned)atoi(optarg); break;
		case 'b': o.min_sync_ms = atoi(optarg); break;
		case 'p': o.page_limit = (unsigned)atoi(optarg); break;
		case 'x': o.backoff_max_ms = (unsigned)atoi(optarg); break;
		case 'm': o.max_value = (size_t)atol(optarg); break;
		case 'v': o.log_level = SP_K8S_LOG_DEBUG; break;
		default:
			fprintf(stderr, "usage: test_k8s_client [--kubeconfig F | --sa-dir D] --dump FILE ...\n");
			return 2;
		}
	}
	if (!dump_path) {
		fprintf(stderr, "test_k8s_client: --dump is required in driver mode\n");
		return 2;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	k = sp_k8s_start(&o, on_update, NULL, err, sizeof(err));
	if (!k) {
		fprintf(stderr, "test_k8s_client: %s\n", err);
		return 1;
	}
	end = time(NULL) + run_seconds;
	while (!stop_flag && time(NULL) < end)
		usleep(50 * 1000);
	sp_k8s_stop(k);
	return 0;
}

/* ---- unit mode ---- */

static char tmpdir[] = "/tmp/test_k8s_client.XXXXXX";

static void write_file(const char *name, const char *text)
{
	char p[256];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", tmpdir, name);
	f = fopen(p, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static int load_kc(const char *text, struct sp_k8s_config *c, char *err, size_t errlen)
{
	char p[256];

	write_file("kc", text);
	snprintf(p, sizeof(p), "%s/kc", tmpdir);
	return sp_k8s_config_kubeconfig(c, p, err, errlen);
}

#define KC_HEAD                                                                             \
	"apiVersion: v1\nkind: Config\ncurrent-context: dev\n"                              \
	"contexts:\n- name: other\n  context: {cluster: x, user: y}\n"                      \
	"- name: dev\n  context:\n    cluster: c1\n    user: u1\n    namespace: default\n"

static void test_base64(void)
{
	char *out;
	size_t n;

	if (ASSERT_EQ(sp_k8s_base64_decode("aGVs\nbG8h", &out, &n), 0, "decode")) {
		ASSERT_EQ(n, 6, "length");
		ASSERT_STREQ(out, "hello!", "text");
		free(out);
	}
	if (ASSERT_EQ(sp_k8s_base64_decode("aGk=", &out, &n), 0, "padded")) {
		ASSERT_STREQ(out, "hi", "padded text");
		free(out);
	}
	ASSERT_EQ(sp_k8s_base64_decode("aGk*", &out, &n), -EINVAL, "bad character");
	ASSERT_EQ(sp_k8s_base64_decode("a=Gk", &out, &n), -EINVAL, "data after padding");
}

static void test_kubeconfig_token(void)
{
	struct sp_k8s_config c;
	char err[512] = "", want[300];

	if (!ASSERT_EQ(load_kc(KC_HEAD "clusters:\n- name: c1\n  cluster:\n"
				       "    server: https://127.0.0.1:6443/\n"
				       "    certificate-authority: pki/ca.crt\n"
				       "users:\n- name: u1\n  user:\n    token: abc.def\n",
			       &c, err, sizeof(err)),
		       0, "load")) {
		fprintf(stderr, "  %s\n", err);
		return;
	}
	ASSERT_STREQ(c.server, "https://127.0.0.1:6443", "server, trailing slash dropped");
	snprintf(want, sizeof(want), "%s/pki/ca.crt", tmpdir);
	ASSERT_STREQ(c.ca_file, want, "CA path relative to the kubeconfig");
	ASSERT_STREQ(c.token, "abc.def", "token");
	ASSERT_TRUE(!c.cert_file && !c.cert_pem && !c.token_file, "nothing else");
	sp_k8s_config_free(&c);
}

static void test_kubeconfig_data(void)
{
	struct sp_k8s_config c;
	char err[512] = "";

	/* "LS0tQ0EtLS0=" is "---CA---", "Y2VydA==" "cert", "a2V5" "key" */
	if (!ASSERT_EQ(load_kc(KC_HEAD "clusters:\n- name: c1\n  cluster:\n"
				       "    server: https://[::1]:6443\n"
				       "    certificate-authority-data: LS0tQ0EtLS0=\n"
				       "users:\n- name: u1\n  user:\n"
				       "    client-certificate-data: Y2VydA==\n"
				       "    client-key-data: a2V5\n"
				       "    tokenFile: /run/token\n",
			       &c, err, sizeof(err)),
		       0, "load")) {
		fprintf(stderr, "  %s\n", err);
		return;
	}
	ASSERT_STREQ(c.ca_pem, "---CA---", "CA data");
	ASSERT_EQ(c.ca_pem_len, 8, "CA length");
	ASSERT_STREQ(c.cert_pem, "cert", "cert data");
	ASSERT_STREQ(c.key_pem, "key", "key data");
	ASSERT_STREQ(c.token_file, "/run/token", "absolute tokenFile kept");
	sp_k8s_config_free(&c);
}

static void trim_watchdog(int sig)
{
	static const char msg[] = "FAIL: test_kubeconfig_server_trim: still trimming after 120 s\n";

	(void)sig;
	if (write(STDOUT_FILENO, msg, sizeof(msg) - 1) < 0)
		_exit(2);
	_exit(1);
}

/*
 * Trailing slashes of the server URL are dropped, down to "https://". The
 * last case (200,000 slashes) is a fuzzer's: the trim called strlen per
 * slash, which takes minutes under valgrind; the watchdog turns that into
 * a failure instead of a hung run (it is about 100 times what the case
 * takes now).
 */
static void test_kubeconfig_server_trim(void)
{
	static const struct {
		const char *server, *want;
		size_t slashes; /* appended to server */
	} cases[] = {
		{ "https://h:6443", "https://h:6443", 0 },
		{ "https://h:6443/", "https://h:6443", 0 },
		{ "https://h:6443///", "https://h:6443", 0 },
		{ "https://h/prefix/", "https://h/prefix", 0 },
		{ "https:///", "https://", 0 },
		{ "https://h", "https://h", 200000 },
	};
	size_t i, len, off;
	char *text;

	signal(SIGALRM, trim_watchdog);
	alarm(120);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sp_k8s_config c;
		char err[512] = "";
		int rc;

		len = strlen(KC_HEAD) + strlen(cases[i].server) + cases[i].slashes + 128;
		text = malloc(len);
		if (!ASSERT_TRUE(text, "malloc"))
			break;
		off = (size_t)snprintf(text, len,
				       KC_HEAD "clusters:\n- name: c1\n  cluster:\n    server: %s",
				       cases[i].server);
		memset(text + off, '/', cases[i].slashes);
		strcpy(text + off + cases[i].slashes,
		       "\nusers:\n- name: u1\n  user:\n    token: t\n");
		rc = load_kc(text, &c, err, sizeof(err));
		free(text);
		if (!ASSERT_EQ(rc, 0, cases[i].server)) {
			fprintf(stderr, "  %s\n", err);
			continue;
		}
		ASSERT_STREQ(c.server, cases[i].want, cases[i].server);
		sp_k8s_config_free(&c);
	}
	alarm(0);
	signal(SIGALRM, SIG_DFL);
}

static void test_kubeconfig_errors(void)
{
	static const struct {
		const char *name, *text, *msg;
	} cases[] = {
		{ "no current-context", "apiVersion: v1\nclusters: []\n", "no current-context" },
		{ "missing context", "current-context: nope\ncontexts: []\n", "context \"nope\"" },
		{ "missing cluster", KC_HEAD "clusters: []\n", "cluster \"c1\"" },
		{ "http server",
		  KC_HEAD "clusters:\n- name: c1\n  cluster:\n    server: http://10.0.0.1\n",
		  "https://" },
		{ "insecure",
		  KC_HEAD "clusters:\n- name: c1\n  cluster:\n    server: https://h\n"
			  "    insecure-skip-tls-verify: true\n",
		  "insecure-skip-tls-verify" },
		{ "exec plugin",
		  KC_HEAD "clusters:\n- name: c1\n  cluster:\n    server: https://h\n"
			  "users:\n- name: u1\n  user:\n    exec:\n      command: aws\n",
		  "exec" },
		{ "cert without key",
		  KC_HEAD "clusters:\n- name: c1\n  cluster:\n    server: https://h\n"
			  "users:\n- name: u1\n  user:\n    client-certificate: c.crt\n",
		  "needs its key" },
		{ "bad base64",
		  KC_HEAD "clusters:\n- name: c1\n  cluster:\n    server: https://h\n"
			  "    certificate-authority-data: '%%%'\n",
		  "base64" },
		{ "YAML syntax", "current-context: [dev\n", "YAML error" },
		/* a fuzzer's: 80,000 of these took 25 s, quadratic in depth */
		{ "nested too deep",
		  "current-context: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n",
		  "kc:1:81: lists and mappings nested more than 64 deep" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sp_k8s_config c;
		char err[512] = "", name[128];
		bool ok;

		snprintf(name, sizeof(name), "test_kubeconfig_errors: %s", cases[i].name);
		if (!sp_test_selected(name))
			continue;
		ok = ASSERT_TRUE(load_kc(cases[i].text, &c, err, sizeof(err)) < 0, cases[i].name);
		ok = ASSERT_CONTAINS(err, cases[i].msg, cases[i].name) && ok;
		ok = ASSERT_CONTAINS(err, "/kc", "message names the file") && ok;
		sp_test_report(name, ok);
	}
}

/* A kubeconfig over 16 MiB is refused by its size (a sparse file). */
static void test_kubeconfig_too_big(void)
{
	struct sp_k8s_config c;
	char p[256], err[512] = "";
	FILE *f;

	snprintf(p, sizeof(p), "%s/big", tmpdir);
	f = fopen(p, "w");
	if (!ASSERT_TRUE(f, "create"))
		return;
	ASSERT_EQ(ftruncate(fileno(f), (16 << 20) + 1), 0, "ftruncate");
	fclose(f);
	ASSERT_EQ(sp_k8s_config_kubeconfig(&c, p, err, sizeof(err)), -EFBIG, "rc");
	ASSERT_CONTAINS(err, "big: 16777217 bytes is larger than the 16 MiB limit", "message");
	unlink(p);
}

static void test_incluster(void)
{
	struct sp_k8s_config c;
	char err[512] = "", want[300];

	unsetenv("KUBERNETES_SERVICE_HOST");
	ASSERT_EQ(sp_k8s_config_incluster(&c, tmpdir, err, sizeof(err)), -ENOENT, "not in a pod");
	ASSERT_CONTAINS(err, "KUBERNETES_SERVICE_HOST", "says why");
	setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	ASSERT_TRUE(sp_k8s_config_incluster(&c, tmpdir, err, sizeof(err)) < 0, "no token yet");
	ASSERT_CONTAINS(err, "token", "names the token file");
	write_file("token", "tok\n");
	write_file("ca.crt", "ca\n");
	if (ASSERT_EQ(sp_k8s_config_incluster(&c, tmpdir, err, sizeof(err)), 0, "in-cluster")) {
		ASSERT_STREQ(c.server, "https://[fd00::1]:443", "IPv6 host in brackets");
		snprintf(want, sizeof(want), "%s/token", tmpdir);
		ASSERT_STREQ(c.token_file, want, "token file");
		snprintf(want, sizeof(want), "%s/ca.crt", tmpdir);
		ASSERT_STREQ(c.ca_file, want, "ca.crt");
		sp_k8s_config_free(&c);
	}
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
}

struct collect {
	int n;
	char types[8][16];
};

static int collect_value(void *arg, struct json_object *v)
{
	struct collect *c = arg;
	struct json_object *t;

	if (c->n < 8 && json_object_object_get_ex(v, "type", &t))
		snprintf(c->types[c->n], sizeof(c->types[0]), "%s", json_object_get_string(t));
	c->n++;
	return 0;
}

static void test_stream(void)
{
	static const char text[] =
		"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\\n}\"}}}\n"
		"{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"7\"}}}\r\n"
		"\n{\"type\":\"DELETED\",\"object\":{\"x\":[1,2,{\"y\":null}]}}\n";
	size_t len = strlen(text), step;

	/* Every chunk size, down to one byte at a time: values split anywhere. */
	for (step = 1; step <= len; step += (step < 8 ? 1 : 13)) {
		struct collect c = { 0 };
		struct sp_k8s_stream *s = sp_k8s_stream_new(collect_value, &c);
		size_t off;
		int ret = 0;

		for (off = 0; off < len && !ret; off += step)
			ret = sp_k8s_stream_feed(s, text + off, len - off < step ? len - off : step);
		if (!ASSERT_EQ(ret, 0, "feed") || !ASSERT_EQ(c.n, 3, "three events") ||
		    !ASSERT_STREQ(c.types[1], "BOOKMARK", "order") ||
		    !ASSERT_EQ(sp_k8s_stream_partial(s), false, "nothing pending")) {
			fprintf(stderr, "  chunk size %zu\n", step);
			sp_k8s_stream_free(s);
			return;
		}
		sp_k8s_stream_free(s);
	}
	{
		struct collect c = { 0 };
		struct sp_k8s_stream *s = sp_k8s_stream_new(collect_value, &c);

		ASSERT_EQ(sp_k8s_stream_feed(s, "{\"type\":\"ADDED\",", 16), 0, "half");
		ASSERT_EQ(sp_k8s_stream_partial(s), true, "partial");
		ASSERT_EQ(sp_k8s_stream_feed(s, "]", 1), -EBADMSG, "malformed");
		sp_k8s_stream_reset(s);
		ASSERT_EQ(sp_k8s_stream_feed(s, "{}\n", 3), 0, "usable after reset");
		ASSERT_EQ(c.n, 1, "one value");
		sp_k8s_stream_free(s);
	}
	{
		/* The cap on one value: split or whole, it is refused before
		 * the callback sees it, and the stream is usable after. */
		static const char big[] = "{\"type\":\"ADDED\",\"object\":{\"pad\":\""
					  "0123456789012345678901234567890123456789\"}}\n";
		struct collect c = { 0 };
		struct sp_k8s_stream *s = sp_k8s_stream_new(collect_value, &c);
		size_t off;
		int ret = 0;

		sp_k8s_stream_set_max(s, 40);
		for (off = 0; off < sizeof(big) - 1 && !ret; off += 7)
			ret = sp_k8s_stream_feed(s, big + off,
						 sizeof(big) - 1 - off < 7 ? sizeof(big) - 1 - off : 7);
		ASSERT_EQ(ret, -EMSGSIZE, "a value over the cap, in pieces");
		ASSERT_EQ(c.n, 0, "not delivered");
		sp_k8s_stream_reset(s);
		ASSERT_EQ(sp_k8s_stream_feed(s, big, sizeof(big) - 1), -EMSGSIZE,
			  "a value over the cap, whole");
		ASSERT_EQ(c.n, 0, "not delivered either");
		sp_k8s_stream_reset(s);
		ASSERT_EQ(sp_k8s_stream_feed(s, "{\"type\":\"ADDED\"}\n", 17), 0, "a small one");
		ASSERT_EQ(c.n, 1, "delivered");
		sp_k8s_stream_set_max(s, sizeof(big));
		ASSERT_EQ(sp_k8s_stream_feed(s, big, sizeof(big) - 1), 0, "under a bigger cap");
		ASSERT_EQ(c.n, 2, "delivered");
		sp_k8s_stream_free(s);
	}
}

static void test_backoff(void)
{
	unsigned a, i;

	for (a = 0; a < 40; a++) {
		unsigned long long d = 250ULL << (a < 20 ? a : 20);

		if (d > 30000)
			d = 30000;
		for (i = 0; i < 50; i++) {
			unsigned v = sp_k8s_backoff_ms(a, 250, 30000);

			if (!ASSERT_TRUE(v >= d / 2 && v <= d, "within [d/2, d]")) {
				fprintf(stderr, "  attempt %u: %u not in [%llu, %llu]\n", a, v, d / 2, d);
				return;
			}
		}
	}
}

static int updates_seen;

static void count_update(void *arg, struct sp_k8s_update *u)
{
	(void)arg;
	updates_seen++;
	sp_k8s_update_free(u);
}

static void test_start_errors(void)
{
	struct sp_k8s_opts o = { .kubeconfig = "/nonexistent/kubeconfig" };
	char err[512] = "";

	ASSERT_TRUE(sp_k8s_start(&o, count_update, NULL, err, sizeof(err)) == NULL, "fails");
	ASSERT_CONTAINS(err, "/nonexistent/kubeconfig", "names the file");
}

/* An API server that refuses connections: no snapshot, errors counted, clean stop. */
static void test_unreachable(void)
{
	struct sp_k8s_opts o = { .log_level = SP_K8S_LOG_ERR, .backoff_min_ms = 50,
				 .backoff_max_ms = 100 };
	struct sp_k8s_stats st;
	struct sp_k8s *k;
	char err[512] = "", kc[300];
	struct timespec t0, t1;
	int i;

	write_file("ca.crt", "not a CA\n");
	write_file("kc", KC_HEAD "clusters:\n- name: c1\n  cluster:\n    server: https://127.0.0.1:1\n"
			 "    certificate-authority: ca.crt\nusers:\n- name: u1\n  user:\n    token: t\n");
	snprintf(kc, sizeof(kc), "%s/kc", tmpdir);
	o.kubeconfig = kc;
	k = sp_k8s_start(&o, count_update, NULL, err, sizeof(err));
	if (!ASSERT_TRUE(k != NULL, "starts")) {
		fprintf(stderr, "  %s\n", err);
		return;
	}
	/* Wait for the second failed try (bounded, generous: valgrind on a
	 * busy machine), rather than counting the tries made in a fixed time. */
	for (i = 0; i < 6000; i++) {
		sp_k8s_get_stats(k, &st);
		if (st.http_errors >= 2)
			break;
		usleep(10 * 1000);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	sp_k8s_stop(k);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ASSERT_EQ(updates_seen, 0, "no snapshot without a complete list");
	ASSERT_TRUE(st.http_errors >= 2, "retried with backoff (waited up to 60 s)");
	ASSERT_EQ(st.lists, 0, "nothing listed");
	/* Prompt: not a connect timeout or a long backoff (backoff_max_ms is
	 * 100 ms); 5 s leaves room for valgrind on a busy machine. */
	ASSERT_LE((t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9, 5.0, "stop is prompt");
	sp_k8s_set_log_level(SP_K8S_LOG_INFO);
}

int main(int argc, char **argv)
{
	char cmd[300];

	if (argc > 1)
		return driver(argc, argv);
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN_TEST(test_base64);
	RUN_TEST(test_kubeconfig_token);
	RUN_TEST(test_kubeconfig_data);
	RUN_TEST(test_kubeconfig_server_trim);
	test_kubeconfig_errors();
	RUN_TEST(test_kubeconfig_too_big);
	RUN_TEST(test_incluster);
	RUN_TEST(test_stream);
	RUN_TEST(test_backoff);
	RUN_TEST(test_start_errors);
	RUN_TEST(test_unreachable);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd))
		fprintf(stderr, "cannot remove %s\n", tmpdir);
	return sp_test_exit();
}
