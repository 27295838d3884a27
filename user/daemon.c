// SPDX-License-Identifier: Apache-2.0
/*
 * `svcplane run`: load and attach the datapath, keep the maps equal to the
 * config file (or the Kubernetes API), follow pod interfaces as they come
 * and go, serve /healthz, /livez and /metrics. And `svcplane detach`.
 *
 * Exiting (SIGTERM, SIGINT, a crash, kill -9) leaves the datapath attached
 * and the maps pinned: traffic keeps flowing with the last state until a
 * new daemon takes over, which recovers the state from the maps and
 * rewrites only what differs. Only `svcplane detach` removes it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <getopt.h>
#include <ifaddrs.h>
#include <limits.h>
#include <malloc.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "svcplane.h"
#include "svcplane.skel.h"
#include "cli.h"
#include "config.h"
#include "config_dir.h"
#include "config_file.h"
#include "ct_gc.h"
#include "dp.h"
#include "health.h"
#include "http.h"
#include "inspect.h"
#include "k8s.h"
#include "log.h"
#include "maglev.h"
#include "metrics.h"
#include "resolve.h"
#include "sync.h"

#define MAX_IFACES 16
#define MAX_PATTERNS 8
#define MAX_NODE_ADDRS 64
#define MAX_NP_CIDRS 16

struct cidr {
	struct sp_ip net;
	unsigned int len;
};

struct run_opts {
	const char *config;
	const char *config_dir;
	const char *kubeconfig;
	bool in_cluster;
	const char *ifaces[MAX_IFACES];
	int n_ifaces;
	const char *patterns[MAX_PATTERNS];
	int n_patterns;
	struct sp_ip node_addrs[MAX_NODE_ADDRS];
	int n_node_addrs;
	struct cidr np_cidrs[MAX_NP_CIDRS]; /* --nodeport-addresses */
	int n_np_cidrs;
	bool np_primary; /* --nodeport-addresses primary */
	enum sp_xdp_mode xdp_mode;
	const char *metrics_addr;
	bool metrics_per_service; /* --metrics-per-service */
	const char *healthz_addr; /* kube-proxy's health server */
	uint32_t healthz_max_stale; /* seconds */
	const char *api_server; /* --k8s-api-server */
	const char *node_name;
	const char *proxy_name;
	uint32_t fixed_m;
	uint32_t ct_gc_interval; /* seconds; 0: no collector */
	uint32_t min_sync_ms; /* --min-sync-period */
	struct sp_dp_opts dp;
};

/* `svcplane run`'s options: getopt_long() is fed from this table, and
 * --help, the completion and the man page are printed from it (user/cli.c).
 * Defaults shown here are the ones parse_run_opts() sets. */
static const struct sp_opt run_opts_table[] = {
	SP_OPT_HEADING("Source of truth (default: the embedded demo config):"),
	{ "config", 'c', "FILE", "static config (YAML, see docs/CONFIG.md)", NULL },
	{ "config-dir", 1023, "DIR",
	  "static config in the *.yaml files of DIR, one or\n"
	  "more Services each; only changed files are read\n"
	  "again, a bad file keeps its last good state",
	  NULL },
	{ "kubeconfig", 'k', "FILE", "watch the Kubernetes API with this kubeconfig", NULL },
	{ "in-cluster", 'K', NULL, "watch the Kubernetes API with the pod's service account", NULL },
	{ "k8s-api-server", 1016, "URL",
	  "reach the API server here (https://10.0.0.1:6443), not\n"
	  "at KUBERNETES_SERVICE_HOST/_PORT: that is the kubernetes\n"
	  "Service's ClusterIP, which only svcplane programs",
	  NULL },
	{ "node-name", 1008, "NAME", "this node (default $NODE_NAME, else the hostname)", NULL },
	{ "proxy-name", 1009, "NAME",
	  "only Services labelled service.kubernetes.io/\n"
	  "service-proxy-name=NAME",
	  NULL },
	{ "min-sync-period", 1024, "D",
	  "least time between two applies of API changes, as\n"
	  "kube-proxy's flag: a change after a quiet period\n"
	  "applies at once, a burst at most once per D (100ms,\n"
	  "1s, 0; default " SP_STR(SP_K8S_MIN_SYNC_MS_DEFAULT) "ms)",
	  NULL },
	SP_OPT_HEADING("Attachment:"),
	{ "iface", 'i', "IFACE", "uplink (XDP + TC); repeatable, at least one", NULL },
	{ "pod-iface-pattern", 'p', "GLOB", "pod veths (TC), e.g. 'cali*'; followed as they come",
	  NULL },
	{ "node-address", 'a', "ADDR",
	  "address NodePorts answer on; repeatable\n"
	  "(default: the uplinks' addresses, plus the Node\n"
	  "object's addresses with the Kubernetes API)",
	  NULL },
	{ "nodeport-addresses", 1010, "CIDR[,CIDR...]|primary",
	  "serve NodePorts only on node addresses\n"
	  "inside these ranges, or only on the node's\n"
	  "primary address of each family (as kube-proxy's flag)",
	  NULL },
	{ "cluster-cidr", 1017, "CIDR[,CIDR]",
	  "the pods' addresses, one range per family (as\n"
	  "kube-proxy's flag): sources inside are never SNATed\n"
	  "and reach every endpoint of a Local Service",
	  NULL },
	{ "snat-ports", 1018, "MIN-MAX",
	  "source ports of SNATed external traffic to pods on\n"
	  "other nodes (default 61000-65535, above Linux's\n"
	  "ephemeral range; reserved in ip_local_reserved_ports\n"
	  "if it overlaps ip_local_port_range)",
	  NULL },
	{ "dsr", 1020, NULL,
	  "Direct Server Return for that traffic instead of\n"
	  "SNAT: the pod's node answers the client directly,\n"
	  "the client's address is kept; the frontend travels\n"
	  "in an IP option (8 bytes IPv4, 24 IPv6) on SYNs and\n"
	  "UDP datagrams. Every node must run with --dsr",
	  NULL },
	{ "bpffs-dir", 'd', "DIR", "pin directory (default " SP_PIN_DIR_DEFAULT ")", NULL },
	{ "xdp-mode", 'x', "MODE",
	  "auto (native, else generic with a warning), native,\n"
	  "generic (default auto). Generic serves more new\n"
	  "connections on a veth uplink (README, Limits). A\n"
	  "restart in the other mode re-attaches; auto keeps\n"
	  "what is attached",
	  "auto native generic" },
	{ "xdp-redirect", 'R', NULL,
	  "XDP redirects to the uplinks after a FIB lookup\n"
	  "instead of handing packets to the stack",
	  NULL },
	{ "host-routing", 1025, "on|off",
	  "deliver what XDP NATed for a pod on this node\n"
	  "straight into it from the uplink's TC program\n"
	  "(bpf_redirect_peer), and pod-to-local-pod likewise;\n"
	  "the host's netfilter and the routing stack do not\n"
	  "see that traffic (default on; off: the stack)",
	  "on off" },
	SP_OPT_HEADING("Datapath:"),
	{ "hash-seed", 's', "N", "flow hash seed, the same on every node (default 0x5eed5eed)",
	  NULL },
	{ "maglev-m", 'm', "M|adaptive",
	  "Maglev table size: a listed prime, or adaptive\n"
	  "(tiers 251..65537 4x apart, >= 80 x endpoints; default)",
	  "adaptive" },
	{ "max-services", 'S', "N",
	  "Service port ids (default " SP_STR(SP_MAX_SVC_IDS) "; frontends 1x)", NULL },
	{ "max-backends", 'B', "N", "distinct endpoints (default " SP_STR(SP_MAX_BACKENDS) ")",
	  NULL },
	{ "ct-size", 'C', "N",
	  "IPv4 conntrack entries, two per flow (default " SP_STR(SP_CT_MAX) ")", NULL },
	{ "ct-size-v6", 1040, "N",
	  "IPv6 conntrack entries, two per flow (default " SP_STR(SP_CT6_MAX) ")", NULL },
	{ "maglev-chunks", 'M', "N", "64-byte Maglev chunks (default " SP_STR(SP_MAGLEV_CHUNKS) ")",
	  NULL },
	{ "max-src-ranges", 1019, "N",
	  "loadBalancerSourceRanges CIDRs, all Service ports\n"
	  "and families together (default " SP_STR(SP_MAX_SRC_RANGES) ")",
	  NULL },
	{ "ct-timeout-syn", 1001, "S", "SYN sent, or adopted mid-stream and unanswered (default 60)",
	  NULL },
	{ "ct-timeout-established", 1002, "S", "(default 21600)", NULL },
	{ "ct-timeout-fin", 1011, "S", "half-closed (one FIN) and TIME_WAIT (default 120)", NULL },
	{ "ct-timeout-close", 1003, "S", "after a RST (default 10)", NULL },
	{ "ct-timeout-udp", 1004, "S", "(default 60)", NULL },
	{ "ct-gc-interval", 1012, "S",
	  "delete expired conntrack entries every S seconds,\n"
	  "down to 0.2 s as the table fills, and from half full\n"
	  "closed flows (RST, TIME_WAIT) early; 0: never (default 10)",
	  NULL },
	{ "reject-rate", 1013, "N",
	  "RST / ICMP answers for Services without endpoints,\n"
	  "per second per CPU; more are dropped and counted\n"
	  "(reject_rate_limited); 0: no limit (default 1000)",
	  NULL },
	{ "hairpin-v4", 1005, "ADDR", "source of hairpin flows (default 169.254.42.1)", NULL },
	{ "hairpin-v6", 1006, "ADDR", "(default fd73:7670:6c61:6e65::1)", NULL },
	SP_OPT_HEADING("Other:"),
	{ "metrics-addr", 1007, "ADDR:PORT",
	  "/healthz (ready), /livez and /metrics; [IPV6]:PORT\n"
	  "(default 127.0.0.1:9477; 'off')",
	  "off" },
	{ "metrics-per-service", 1021, "on|off",
	  "packets, bytes, new flows, rejects and drops\n"
	  "of each Service port in /metrics (default on; off\n"
	  "for huge clusters: one series per Service port each)",
	  "on off" },
	{ "healthz-addr", 1014, "ADDR:PORT",
	  "kube-proxy's health server, /healthz and /livez as JSON\n"
	  "(default " SP_HEALTHZ_ADDR_DEFAULT ", both families; 'off')",
	  "off" },
	{ "healthz-max-staleness", 1015, "S",
	  "503 once a change waits this long to be applied\n"
	  "(default " SP_STR(SP_HEALTHZ_MAX_STALENESS_DEFAULT) ")",
	  NULL },
	{ "verbose", 'v', NULL, "debug logging (each change applied, libbpf messages)", NULL },
	SP_OPT_HELP,
	SP_OPT_END,
};

static const struct sp_cmd_doc run_doc = {
	"run", NULL,
	"Load the datapath, attach it to the uplinks and pod interfaces, and keep its maps\n"
	"equal to the config file or the Kubernetes API. Stays in the foreground.\n"
	"SIGHUP or a change of the config file (or directory) applies it again, as a diff.\n"
	"Stopping the daemon leaves the datapath running; 'svcplane detach' removes it.",
	run_opts_table,
};

const struct sp_cmd_doc *sp_run_doc(void)
{
	return &run_doc;
}

/* getopt_long()'s arrays for a table of at most SP_MAX_OPTS options. */
#define SP_MAX_OPTS 64

static int parse_u32(const char *opt, const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end || end == s || v < min || v > max) {
		fprintf(stderr, "svcplane run: %s: '%s' is not a number from %u to %u\n", opt, s,
			min, max);
		return -EINVAL;
	}
	*out = (uint32_t)v;
	return 0;
}

/*
 * A duration as kube-proxy writes it, in whole milliseconds: "100ms", "1s",
 * "1.5s" or "0" (a bare number other than 0 is ambiguous and refused).
 * 0 or -EINVAL.
 */
static int parse_duration_ms(const char *opt, const char *s, uint32_t max_ms, uint32_t *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (!errno && end != s && v >= 0) {
		if (!strcmp(end, "ms") || (!*end && v == 0))
			;
		else if (!strcmp(end, "s"))
			v *= 1000;
		else
			v = -1;
		if (v >= 0 && v <= max_ms) {
			*out = (uint32_t)(v + 0.5);
			return 0;
		}
	}
	fprintf(stderr, "svcplane run: %s: '%s' is not a duration from 0 to %us (e.g. 100ms, 1s)\n",
		opt, s, max_ms / 1000);
	return -EINVAL;
}

/* "10.0.0.0/8,fd00::/64": appended to out[*n] (at most max). 0 or -EINVAL. */
static int parse_cidrs(const char *opt, const char *arg, struct cidr *out, int *n, int max)
{
	char *copy = strdup(arg), *tok, *save = NULL;
	int err = 0;

	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *slash = strchr(tok, '/'), *end;
		struct cidr *c = &out[*n];
		unsigned long len;

		if (*n == max || !slash) {
			err = -EINVAL;
			break;
		}
		*slash = '\0';
		errno = 0;
		len = strtoul(slash + 1, &end, 10);
		if (sp_ip_parse(tok, &c->net) || errno || *end || end == slash + 1 ||
		    len > (c->net.family == 4 ? 32u : 128u)) {
			err = -EINVAL;
			break;
		}
		c->len = len;
		(*n)++;
	}
	if (err)
		fprintf(stderr, "svcplane run: %s '%s': expected CIDR[,CIDR...] "
				"(at most %d), e.g. 10.0.0.0/8,fd00::/64\n",
			opt, arg, max);
	free(copy);
	return err;
}

/* --cluster-cidr: one range per family at most, as kube-proxy's flag. */
static int parse_cluster_cidr(const char *arg, struct sp_dp_opts *dp)
{
	struct cidr c[2];
	int n = 0, i, err;

	err = parse_cidrs("--cluster-cidr", arg, c, &n, 2);
	if (err)
		return err;
	for (i = 0; i < n; i++) {
		uint8_t *len = c[i].net.family == 4 ? &dp->cluster4_len : &dp->cluster6_len;

		if (*len || !c[i].len) {
			fprintf(stderr, "svcplane run: --cluster-cidr '%s': one non-empty range per "
					"family at most, e.g. 10.244.0.0/16,fd00:244::/56\n",
				arg);
			return -EINVAL;
		}
		*len = c[i].len;
		if (c[i].net.family == 4)
			dp->cluster4 = c[i].net;
		else
			dp->cluster6 = c[i].net;
	}
	return 0;
}

/* "61000-65535": 1024 <= MIN <= MAX <= 65535. 0 or -EINVAL. */
static int parse_port_range(const char *opt, const char *arg, uint32_t *min, uint32_t *max)
{
	unsigned int a, b;
	int used = 0;

	if (sscanf(arg, "%u-%u%n", &a, &b, &used) != 2 || arg[used] || a < 1024 || a > b ||
	    b > 65535) {
		fprintf(stderr, "svcplane run: %s '%s': expected MIN-MAX with 1024 <= MIN <= MAX "
				"<= 65535, e.g. 61000-65535\n",
			opt, arg);
		return -EINVAL;
	}
	*min = a;
	*max = b;
	return 0;
}

/* Is ip inside c? */
static bool cidr_contains(const struct cidr *c, const struct sp_ip *ip)
{
	unsigned int full = c->len / 8, rest = c->len % 8;

	if (c->net.family != ip->family)
		return false;
	if (memcmp(c->net.b, ip->b, full))
		return false;
	return !rest || ((c->net.b[full] ^ ip->b[full]) & (0xff << (8 - rest))) == 0;
}

const char *sp_node_name_default(const char *given)
{
	static char host[HOST_NAME_MAX + 1];
	const char *env = getenv("NODE_NAME");
	char *c;

	if (given && *given)
		return given;
	if (env && *env)
		return env;
	if (gethostname(host, sizeof(host)) || !host[0])
		return NULL;
	host[sizeof(host) - 1] = '\0';
	/* As kubelet names the Node (and kube-proxy finds it): lowercase. */
	for (c = host; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c += 'a' - 'A';
	return host;
}

static int parse_run_opts(int argc, char **argv, struct run_opts *o)
{
	struct option lo[SP_MAX_OPTS];
	char so[2 * SP_MAX_OPTS + 1];
	uint32_t v;
	int c, err = 0;

	memset(o, 0, sizeof(*o));
	sp_dp_opts_default(&o->dp);
	o->ct_gc_interval = 10;
	o->metrics_addr = "127.0.0.1:9477";
	o->metrics_per_service = true;
	o->healthz_addr = SP_HEALTHZ_ADDR_DEFAULT;
	o->healthz_max_stale = SP_HEALTHZ_MAX_STALENESS_DEFAULT;
	o->min_sync_ms = SP_K8S_MIN_SYNC_MS_DEFAULT;
	if (sp_opts_getopt(run_opts_table, lo, SP_MAX_OPTS, so, sizeof(so)))
		return -E2BIG; /* a table larger than SP_MAX_OPTS: a build mistake */
	optind = 1;
	while ((c = getopt_long(argc, argv, so, lo, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->config = optarg;
			break;
		case 'k':
			o->kubeconfig = optarg;
			break;
		case 'K':
			o->in_cluster = true;
			break;
		case 'i':
			if (o->n_ifaces == MAX_IFACES) {
				fprintf(stderr, "svcplane run: at most %d --iface\n", MAX_IFACES);
				return -EINVAL;
			}
			if (strlen(optarg) >= IFNAMSIZ) {
				fprintf(stderr, "svcplane run: --iface '%s': name too long\n", optarg);
				return -EINVAL;
			}
			o->ifaces[o->n_ifaces++] = optarg;
			break;
		case 'p':
			if (o->n_patterns == MAX_PATTERNS) {
				fprintf(stderr, "svcplane run: at most %d --pod-iface-pattern\n",
					MAX_PATTERNS);
				return -EINVAL;
			}
			o->patterns[o->n_patterns++] = optarg;
			break;
		case 'a':
			if (o->n_node_addrs == MAX_NODE_ADDRS ||
			    sp_ip_parse(optarg, &o->node_addrs[o->n_node_addrs])) {
				fprintf(stderr, "svcplane run: --node-address '%s': not an address\n",
					optarg);
				return -EINVAL;
			}
			o->n_node_addrs++;
			break;
		case 'd':
			o->dp.pin_dir = optarg;
			break;
		case 'x':
			if (!strcmp(optarg, "auto"))
				o->xdp_mode = SP_XDP_AUTO;
			else if (!strcmp(optarg, "native"))
				o->xdp_mode = SP_XDP_NATIVE;
			else if (!strcmp(optarg, "generic"))
				o->xdp_mode = SP_XDP_GENERIC;
			else {
				fprintf(stderr,
					"svcplane run: --xdp-mode '%s': expected auto, native or generic\n",
					optarg);
				return -EINVAL;
			}
			break;
		case 'R':
			o->dp.xdp_redirect = true;
			break;
		case 's':
			err = parse_u32("--hash-seed", optarg, 0, UINT32_MAX, &o->dp.hash_seed);
			break;
		case 'm':
			if (!strcmp(optarg, "adaptive")) {
				o->fixed_m = 0;
			} else if (parse_u32("--maglev-m", optarg, SP_MAGLEV_M_MIN, SP_MAGLEV_M_MAX,
					     &o->fixed_m) ||
				   !sp_maglev_m_valid(o->fixed_m)) {
				fprintf(stderr,
					"svcplane run: --maglev-m %s: not one of the listed primes "
					"(see docs/MAGLEV.md) or 'adaptive'\n",
					optarg);
				return -EINVAL;
			}
			break;
		case 'S':
			err = parse_u32("--max-services", optarg, 1, 1 << 24, &o->dp.max_svc_ids);
			o->dp.max_frontends = o->dp.max_svc_ids;
			break;
		case 'B':
			err = parse_u32("--max-backends", optarg, 1, 1 << 24, &o->dp.max_backends);
			break;
		case 1019:
			err = parse_u32("--max-src-ranges", optarg, 1, 1 << 24,
					&o->dp.max_src_ranges);
			break;
		case 'C':
			err = parse_u32("--ct-size", optarg, 1024, 1 << 28, &o->dp.ct_size);
			break;
		case 1040:
			err = parse_u32("--ct-size-v6", optarg, 1024, 1 << 28, &o->dp.ct6_size);
			break;
		case 'M':
			err = parse_u32("--maglev-chunks", optarg, 16, 1 << 26, &o->dp.maglev_chunks);
			break;
		case 1001:
		case 1002:
		case 1003:
		case 1004:
		case 1011:
			err = parse_u32("--ct-timeout-*", optarg, 1, 7 * 86400, &v);
			if (!err) {
				uint64_t ns = (uint64_t)v * 1000000000ULL;

				if (c == 1001)
					o->dp.ct_syn_ns = ns;
				else if (c == 1002)
					o->dp.ct_est_ns = ns;
				else if (c == 1003)
					o->dp.ct_close_ns = ns;
				else if (c == 1011)
					o->dp.ct_fin_ns = ns;
				else
					o->dp.ct_udp_ns = ns;
			}
			break;
		case 1012:
			err = parse_u32("--ct-gc-interval", optarg, 0, 3600, &o->ct_gc_interval);
			break;
		case 1013:
			err = parse_u32("--reject-rate", optarg, 0, 10000000, &o->dp.reject_rate);
			break;
		case 1005:
		case 1006: {
			struct sp_ip *ip = c == 1005 ? &o->dp.hairpin4 : &o->dp.hairpin6;

			if (sp_ip_parse(optarg, ip) || ip->family != (c == 1005 ? 4 : 6)) {
				fprintf(stderr, "svcplane run: %s '%s': not an IPv%d address\n",
					c == 1005 ? "--hairpin-v4" : "--hairpin-v6", optarg,
					c == 1005 ? 4 : 6);
				return -EINVAL;
			}
			break;
		}
		case 1007:
			o->metrics_addr = optarg;
			break;
		case 1008:
			o->node_name = optarg;
			break;
		case 1009:
			o->proxy_name = optarg;
			break;
		case 1010:
			if (!strcmp(optarg, "primary")) {
				o->np_primary = true;
				o->n_np_cidrs = 0;
				break;
			}
			o->np_primary = false;
			err = parse_cidrs("--nodeport-addresses", optarg, o->np_cidrs, &o->n_np_cidrs,
					  MAX_NP_CIDRS);
			break;
		case 1017:
			err = parse_cluster_cidr(optarg, &o->dp);
			break;
		case 1018:
			err = parse_port_range("--snat-ports", optarg, &o->dp.snat_port_min,
					       &o->dp.snat_port_max);
			break;
		case 1014:
			o->healthz_addr = optarg;
			break;
		case 1015:
			err = parse_u32("--healthz-max-staleness", optarg, 1, 86400,
					&o->healthz_max_stale);
			break;
		case 1016:
			if (strncmp(optarg, "https://", 8) && strncmp(optarg, "http://", 7)) {
				fprintf(stderr, "svcplane run: --k8s-api-server '%s': expected a URL, "
						"e.g. https://10.0.0.1:6443\n",
					optarg);
				return -EINVAL;
			}
			o->api_server = optarg;
			break;
		case 1021:
			if (strcmp(optarg, "on") && strcmp(optarg, "off")) {
				fprintf(stderr,
					"svcplane run: --metrics-per-service: '%s' is not on or off\n",
					optarg);
				return -EINVAL;
			}
			o->metrics_per_service = !strcmp(optarg, "on");
			break;
		case 1020:
			o->dp.dsr = true;
			break;
		case 1025:
			if (strcmp(optarg, "on") && strcmp(optarg, "off")) {
				fprintf(stderr, "svcplane run: --host-routing: '%s' is not on or off\n",
					optarg);
				return -EINVAL;
			}
			o->dp.host_routing = !strcmp(optarg, "on");
			break;
		case 1023:
			o->config_dir = optarg;
			break;
		case 1024:
			err = parse_duration_ms("--min-sync-period", optarg, 3600 * 1000,
						&o->min_sync_ms);
			break;
		case 'v':
			sp_log_level = SP_LOG_DEBUG;
			break;
		case 'h':
			sp_cmd_usage(stdout, &run_doc);
			exit(0);
		default:
			sp_cmd_usage(stderr, &run_doc);
			return -EINVAL;
		}
		if (err)
			return err;
	}
	if (optind < argc) {
		fprintf(stderr, "svcplane run: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (!o->n_ifaces) {
		fprintf(stderr, "svcplane run: at least one --iface is needed (the uplink)\n");
		return -EINVAL;
	}
	if ((o->config || o->config_dir) && (o->kubeconfig || o->in_cluster)) {
		fprintf(stderr, "svcplane run: --config%s and the Kubernetes API are exclusive\n",
			o->config ? "" : "-dir");
		return -EINVAL;
	}
	if (o->config && o->config_dir) {
		fprintf(stderr, "svcplane run: --config and --config-dir are exclusive\n");
		return -EINVAL;
	}
	if (o->api_server && !o->kubeconfig && !o->in_cluster) {
		fprintf(stderr, "svcplane run: --k8s-api-server needs --in-cluster or --kubeconfig\n");
		return -EINVAL;
	}
	o->node_name = sp_node_name_default(o->node_name);
	return 0;
}

/* ---- state shared by the loop ---------------------------------------------- */

struct daemon {
	struct run_opts *o;
	int pidfd; /* locked pid file; gets "ready" once synced and attached */
	bool announced;
	struct sp_dp dp;
	struct sp_sync *sync;
	struct sp_sync_maps sm; /* the maps sync writes, with their capacities */
	struct stat cfg_stat;
	struct sp_config_dir *cdir; /* --config-dir */
	struct sp_config_file *cfile; /* --config, or the embedded default */
	/* What the last apply wrote, when it wrote all of it (prev_ok): the
	 * next apply writes only the Services that differ from it. */
	struct sp_desired prev;
	bool prev_ok;
	/* An apply failed before it wrote anything: the maps hold an older
	 * model than the one the source's next list of changed Services is
	 * relative to, so that list is not enough: the next apply resolves
	 * everything (and diffs against prev). */
	bool names_stale;
	char *zone; /* the Node's topology.kubernetes.io/zone (Kubernetes source) */
	bool synced; /* a full state from the source has been applied */
	bool attached; /* uplinks and existing pods have the programs */
	uint64_t applies, apply_errors;
	double last_apply_ms;
	/* Where a start's time went (ms since cmd_run began), for the ready
	 * line: what the issue-11 start figure is made of. 0: not reached. */
	struct {
		double t0, config, loaded, programs, recovered, applied, attached;
		double parse_ms; /* the config file's parse, beside the program load */
	} start;
	/* Kubernetes snapshots arrive on the watcher thread. */
	pthread_mutex_t k8s_lock;
	struct sp_k8s_update *k8s_pending;
	bool k8s_superseded; /* a pending snapshot was replaced before it was applied */
	int k8s_efd;
	/* Conntrack collector (its own thread; gc_lock guards what follows). */
	pthread_t gc_thread;
	bool gc_running;
	int gc_stop_efd; /* written to stop the collector */
	pthread_mutex_t gc_lock;
	struct sp_ct_gc_stats gc_last;
	uint64_t gc_runs, gc_deleted, gc_early, gc_errors;
	bool gc_pressure; /* live entries >= 90% of capacity at the last pass */
	/* Retained frontends (sync.h): the loop's copy for the collector
	 * (ret_snap), and what the collector's last pass found no flow
	 * through (ret_unused), for the loop to delete. */
	struct sp_retained_fe *ret_snap, *ret_unused;
	size_t n_ret_snap, n_ret_unused;
	bool ret_unused_set;
	uint64_t ret_snap_changes; /* the loop's own: sync's count at the copy */
	/* What the HTTP server threads read, published by the loop (the only
	 * writer of the maps and of the fields above) after each apply. */
	pthread_mutex_t pub_lock;
	/* kube-proxy's health servers (health.h; their own locks). */
	struct sp_proxy_health ph;
	struct sp_http *proxy_http;
	bool proxy_http_wanted;
	struct sp_svc_health *svc_health;
	struct sp_k8s *k8s; /* the watcher, for its live counters; NULL with a config file */
	struct {
		bool synced;
		size_t n_services, n_backends;
		uint64_t applies, apply_errors;
		double last_apply_ms;
		/* kube-proxy's sync metrics (metrics.h) */
		struct sp_hist sync_hist, netprog_hist;
		double last_sync_ts, last_queued_ts;
		/* Service / endpoint changes: applied so far (the Kubernetes
		 * source's count as of the last applied snapshot; with a config
		 * file, what each apply changed). */
		uint64_t svc_changes, slice_changes;
		uint64_t no_local_internal, no_local_external;
		uint64_t maglev_bytes;
	} pub;
};

/* Copy what /healthz and /metrics show into d->pub (see struct daemon). */
static void publish(struct daemon *d)
{
	pthread_mutex_lock(&d->pub_lock);
	d->pub.synced = d->synced;
	d->pub.n_services = d->sync ? sp_sync_n_services(d->sync) : 0;
	d->pub.n_backends = d->sync ? sp_sync_n_backends(d->sync) : 0;
	d->pub.applies = d->applies;
	d->pub.apply_errors = d->apply_errors;
	d->pub.last_apply_ms = d->last_apply_ms;
	d->pub.maglev_bytes =
		d->sync ? sp_sync_maglev_chunks_used(d->sync) * sizeof(struct sp_maglev_chunk) : 0;
	pthread_mutex_unlock(&d->pub_lock);
}

/*
 * The conntrack collector: one pass, then wait for the next (shorter as the
 * table fills) or for the stop signal. A table that stays nearly full of
 * live flows cannot be helped by collecting: that is logged (once per
 * episode) and shown in /metrics and `svcplane status` as pressure.
 */
/* New flows the datapath has created so far, over every hook and CPU
 * (each one took two conntrack entries). 0 if unreadable. */
static uint64_t gc_new_flows(struct daemon *d, struct sp_stats *pc, int ncpu)
{
	uint64_t n = 0;
	__u32 k;
	int c;

	for (k = 0; pc && k < SP_SLOTS; k++) {
		if (bpf_map_lookup_elem(bpf_map__fd(d->dp.skel->maps.sp_stats), &k, pc))
			continue;
		for (c = 0; c < ncpu; c++)
			n += pc[c].new_flows;
	}
	return n;
}

/* The collector looks at the datapath's new-flow counter this often, to
 * start a pass early when a burst is filling the table. */
#define GC_TICK_MS 200

/*
 * The conntrack collector: a pass every interval (shorter as the table
 * fills, see sp_ct_gc_next_ms), or as soon as the new flows since the last
 * pass could have filled a quarter of the table: a burst must not fill it
 * between two passes, or the LRU evicts live flows (the idle ones first).
 * A table that stays nearly full of live flows cannot be helped by
 * collecting: that is logged (once per episode) and shown in /metrics and
 * `svcplane status` as pressure.
 */
/*
 * One collector pass, which also looks for flows through the retained
 * frontends the loop last copied (ret_snap): those it finds none for are
 * left in ret_unused for the loop to delete (retained_exchange). Every one
 * in the copy was retained before the pass began, and no new flow starts
 * through a retained frontend, so one complete pass that meets none of its
 * flows proves it has none.
 */
static int gc_pass(struct daemon *d, bool early, struct sp_ct_gc_stats *st)
{
	struct sp_retained_fe *snap = NULL, *unused = NULL;
	struct sp_svc_key *keys = NULL;
	struct sp_ct_gc_watch w = { 0 };
	size_t n = 0, i, n_unused = 0;
	bool *seen = NULL;
	int err;

	pthread_mutex_lock(&d->gc_lock);
	if (d->n_ret_snap) {
		snap = malloc(d->n_ret_snap * sizeof(*snap));
		if (snap) {
			memcpy(snap, d->ret_snap, d->n_ret_snap * sizeof(*snap));
			n = d->n_ret_snap;
		}
	}
	pthread_mutex_unlock(&d->gc_lock);
	if (n) {
		keys = calloc(n, sizeof(*keys));
		seen = calloc(n, sizeof(*seen));
		if (keys && seen) {
			for (i = 0; i < n; i++)
				keys[i] = snap[i].key;
			w.keys = keys;
			w.n = n;
			w.seen = seen;
		}
	}
	err = sp_ct_gc_watch(&d->dp.ct, bpf_program__fd(d->dp.skel->progs.sp_ct_reap),
			     sp_mono_ns(), 1000000000ULL, early, w.n ? &w : NULL, st);
	/* Only a complete pass proves anything. */
	if (!err && w.n) {
		for (i = 0; i < n; i++)
			if (!seen[i])
				snap[n_unused++] = snap[i];
		unused = snap;
		snap = NULL;
		pthread_mutex_lock(&d->gc_lock);
		free(d->ret_unused);
		d->ret_unused = unused;
		d->n_ret_unused = n_unused;
		d->ret_unused_set = true;
		pthread_mutex_unlock(&d->gc_lock);
	}
	free(snap);
	free(keys);
	free(seen);
	return err;
}

/*
 * In the loop: delete the retained frontends the collector's last pass
 * found unused, and give it a new copy of the list when the list changed.
 */
static void retained_exchange(struct daemon *d)
{
	struct sp_retained_fe *unused = NULL, *copy = NULL;
	size_t n_unused = 0, n_copy = 0, done;
	bool got;

	if (!d->sync || !d->gc_running)
		return;
	pthread_mutex_lock(&d->gc_lock);
	got = d->ret_unused_set;
	unused = d->ret_unused;
	n_unused = d->n_ret_unused;
	d->ret_unused = NULL;
	d->n_ret_unused = 0;
	d->ret_unused_set = false;
	pthread_mutex_unlock(&d->gc_lock);
	if (got && n_unused) {
		done = sp_sync_retained_unused(d->sync, unused, n_unused);
		if (done)
			pr_info("deleted %zu frontend(s) of deleted Services: no established "
				"connection goes through them any more (%zu still kept)",
				done, sp_sync_n_retained(d->sync));
	}
	free(unused);
	if (sp_sync_retained_changes(d->sync) == d->ret_snap_changes)
		return;
	if (sp_sync_retained(d->sync, &copy, &n_copy))
		return; /* no memory: again at the next tick */
	d->ret_snap_changes = sp_sync_retained_changes(d->sync);
	pthread_mutex_lock(&d->gc_lock);
	free(d->ret_snap);
	d->ret_snap = copy;
	d->n_ret_snap = n_copy;
	pthread_mutex_unlock(&d->gc_lock);
}

static void *gc_main(void *arg)
{
	struct daemon *d = arg;
	unsigned int wait_ms = d->o->ct_gc_interval * 1000, since_ms = 0;
	int ncpu = libbpf_num_possible_cpus();
	struct sp_stats *pc = ncpu > 0 ? calloc(ncpu, sizeof(*pc)) : NULL;
	uint64_t flows_at_pass = gc_new_flows(d, pc, ncpu);
	/* flows: a quarter of the smaller table's entries */
	uint64_t burst = (d->o->dp.ct_size < d->o->dp.ct6_size ? d->o->dp.ct_size
							       : d->o->dp.ct6_size) / 8;
	bool early = false;

	for (;;) {
		struct pollfd p = { .fd = d->gc_stop_efd, .events = POLLIN };
		struct sp_ct_gc_stats st;
		uint64_t flows;
		bool pressure, in_burst;
		int err;

		if (poll(&p, 1, GC_TICK_MS) != 0)
			break; /* stop (or a poll error: stop too) */
		since_ms += GC_TICK_MS;
		flows = gc_new_flows(d, pc, ncpu);
		in_burst = flows - flows_at_pass >= burst;
		if (since_ms < wait_ms && !in_burst)
			continue;
		since_ms = 0;
		flows_at_pass = flows;
		/* A burst is pressure to come: drop closed flows early now. */
		err = gc_pass(d, early || in_burst, &st);
		pressure = st.fill_max && st.fill_live * 10 >= st.fill_max * 9;
		pthread_mutex_lock(&d->gc_lock);
		if (pressure && !d->gc_pressure)
			pr_warn("conntrack pressure: %llu live entries of %llu in a table after "
				"collecting; new flows now evict live ones (raise --ct-size or "
				"--ct-size-v6)",
				(unsigned long long)st.fill_live, (unsigned long long)st.fill_max);
		d->gc_last = st;
		d->gc_runs++;
		d->gc_deleted += st.deleted;
		d->gc_early += st.early;
		d->gc_pressure = pressure;
		if (err)
			d->gc_errors++;
		pthread_mutex_unlock(&d->gc_lock);
		if (err)
			pr_warn("conntrack collector: %s", strerror(-err));
		else
			pr_debug("conntrack collector: %llu entries, %llu deleted (%llu closed "
				 "flows early), %.1f ms",
				 (unsigned long long)st.scanned, (unsigned long long)st.deleted,
				 (unsigned long long)st.early, st.ms);
		wait_ms = sp_ct_gc_next_ms(&st, d->o->ct_gc_interval);
		early = sp_ct_gc_early_drop(&st);
	}
	free(pc);
	return NULL;
}

static int gc_start(struct daemon *d)
{
	int err;

	if (!d->o->ct_gc_interval)
		return 0;
	d->gc_stop_efd = eventfd(0, EFD_CLOEXEC);
	if (d->gc_stop_efd < 0) {
		err = -errno;
		pr_err("conntrack collector: eventfd: %s", strerror(-err));
		return err;
	}
	err = -pthread_create(&d->gc_thread, NULL, gc_main, d);
	if (err) {
		pr_err("conntrack collector: pthread_create: %s", strerror(-err));
		close(d->gc_stop_efd);
		d->gc_stop_efd = -1;
		return err;
	}
	d->gc_running = true;
	return 0;
}

static void gc_stop(struct daemon *d)
{
	uint64_t one = 1;

	if (!d->gc_running)
		return;
	if (write(d->gc_stop_efd, &one, sizeof(one)) != sizeof(one))
		pr_warn("conntrack collector: stop: %s", strerror(errno));
	pthread_join(d->gc_thread, NULL);
	close(d->gc_stop_efd);
	d->gc_running = false;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int64_t real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void resolve_warn(void *arg, const char *msg)
{
	(void)arg;
	pr_warn("%s", msg);
}

/*
 * Service ports whose traffic policy left them no endpoint on this node
 * while they have some elsewhere (dropped: kube-proxy's "no local
 * endpoints"), by policy: a table with clusterIPs follows
 * internalTrafficPolicy, one with external frontends
 * externalTrafficPolicy (a table may hold both when both are Local).
 */
static void count_no_local(const struct sp_desired *want, uint64_t *internal, uint64_t *external)
{
	size_t i, j;

	*internal = *external = 0;
	for (i = 0; i < want->n; i++) {
		const struct sp_want_svc *w = &want->svc[i];
		bool in = false, ext = false;

		if (!(w->flags & SP_SVC_F_DROP_EMPTY))
			continue;
		for (j = 0; j < w->n_fe; j++) {
			if (w->fe[j].flags & (SP_SVC_F_NODEPORT | SP_SVC_F_EXTERNAL))
				ext = true;
			else
				in = true;
		}
		*internal += in;
		*external += ext;
	}
}

/*
 * What /metrics says about an apply (under pub_lock; publish() follows):
 * its duration, and when it applied (ok), its time, the changes it
 * carried, and for a Kubernetes snapshot (u) the time from each
 * EndpointSlice change's trigger time to now, when the maps have it.
 */
static void metrics_applied(struct daemon *d, const struct sp_desired *want,
			    const struct sp_sync_stats *st, const struct sp_k8s_update *u, bool ok)
{
	double now = real_ns() / 1e9;
	size_t i;

	pthread_mutex_lock(&d->pub_lock);
	sp_hist_observe(&d->pub.sync_hist, &sp_hist_sync_seconds, d->last_apply_ms / 1e3);
	if (ok) {
		d->pub.last_sync_ts = now;
		count_no_local(want, &d->pub.no_local_internal, &d->pub.no_local_external);
		if (u) {
			d->pub.svc_changes = u->stats.svc_changes;
			d->pub.slice_changes = u->stats.slice_changes;
			/* A trigger time ahead of our clock (skew with the
			 * control plane) is no measurement: left out. */
			for (i = 0; i < u->n_triggers; i++)
				if (now >= u->triggers[i] / 1e9)
					sp_hist_observe(&d->pub.netprog_hist,
							&sp_hist_netprog_seconds,
							now - u->triggers[i] / 1e9);
		} else {
			d->pub.svc_changes += st->svc_added + st->svc_removed;
			d->pub.slice_changes += st->svc_rebuilt;
		}
	}
	pthread_mutex_unlock(&d->pub_lock);
}

/*
 * Resolve and apply a model. The model stays the caller's. With whole (the
 * config file source), a model that does not fit the maps' capacities is
 * refused as a whole, as a bad file is, and the running state stays:
 * returns -EFBIG. Otherwise what does not fit is skipped Service by
 * Service (-ENOSPC), as the Kubernetes source needs: the API cannot be
 * refused, and the rest of the cluster should still be served.
 */
static int apply_model(struct daemon *d, const struct sp_model *m, const char *what, bool whole,
		       const char *const *names, size_t n_names, const struct sp_k8s_update *u)
{
	struct sp_resolve_opts ro = { .node_name = d->o->node_name,
				      .zone = d->zone,
				      .proxy_name = d->o->proxy_name };
	struct sp_desired want = { 0 };
	struct sp_sync_stats st;
	double t0 = now_ms(), t_resolved, t_synced;
	const char **ids = NULL;
	size_t n_ids = 0;
	bool some = false;
	int err;

	/* With the names of the Services that changed since the last complete
	 * apply, only those are resolved again (the rest is moved over from
	 * d->prev, which then holds their old entries for the diff). */
	if (names && d->prev_ok && !d->names_stale) {
		err = sp_resolve_some(m, &ro, &d->prev, names, n_names, &want, &ids, &n_ids,
				      resolve_warn, NULL);
		some = !err;
		if (err < 0) {
			pr_err("%s: resolve: %s; keeping the running state", what, strerror(-err));
			d->names_stale = true;
			return err;
		}
	}
	err = some ? 0 : sp_resolve(m, &ro, &want, resolve_warn, NULL);
	t_resolved = now_ms();
	if (err) {
		pr_err("%s: resolve: %s; keeping the running state", what, strerror(-err));
		d->names_stale = true;
		return err;
	}
	if (whole) {
		char msg[256];

		err = sp_sync_check_capacity(&d->sm, &want, msg, sizeof(msg));
		if (err) {
			/* At start there is no running state: the caller exits. */
			pr_err("%s: %s%s", what, err == -ENOSPC ? msg : strerror(-err),
			       d->synced ? "; keeping the running state" : "");
			sp_desired_free(&want);
			free(ids);
			if (some) { /* d->prev gave its entries away: a full pass next */
				sp_desired_free(&d->prev);
				d->prev_ok = false;
			}
			d->names_stale = true;
			return err == -ENOSPC ? -EFBIG : err;
		}
	}
	if (some) {
		err = sp_sync_apply_ids(d->sync, &want, ids, n_ids, &st);
		free(ids);
	} else if (d->prev_ok) {
		err = sp_desired_diff(&d->prev, &want, &ids, &n_ids);
		if (!err) {
			err = sp_sync_apply_ids(d->sync, &want, ids, n_ids, &st);
			free(ids);
		}
	} else {
		err = sp_sync_apply(d->sync, &want, &st);
	}
	t_synced = now_ms();
	/* Some Services not fitting (-ENOSPC, logged and counted) still leaves
	 * the source's state applied as far as it can be: trying again would
	 * not change it. Anything else is a failed sync for /healthz. */
	if (!err || err == -ENOSPC) {
		sp_proxy_health_updated(&d->ph, real_ns());
		sp_svc_health_sync(d->svc_health, m, d->o->node_name, d->o->proxy_name);
	}
	d->last_apply_ms = now_ms() - t0;
	d->applies++;
	if (err)
		d->apply_errors++;
	metrics_applied(d, &want, &st, u, !err || err == -ENOSPC);
	pr_info("%s applied in %.1f ms (resolve %.1f%s, maps %.1f): %zu Service port(s), %zu "
		"backend(s); +%zu -%zu services, %zu rebuilt, %zu frontend write(s), %zu "
		"delete(s)%s",
		what, d->last_apply_ms, t_resolved - t0,
		some ? " of the changed Services only" : "", t_synced - t_resolved,
		sp_sync_n_services(d->sync), sp_sync_n_backends(d->sync), st.svc_added,
		st.svc_removed, st.svc_rebuilt, st.fe_written, st.fe_deleted,
		err ? " (with errors, see above)" : "");
	/* Anything short of a complete apply: the next one is a full pass. */
	sp_desired_free(&d->prev);
	d->prev = want;
	d->prev_ok = !err;
	d->names_stale = false;
	publish(d);
	return err;
}

/*
 * Give the heap that a whole parse or a full resolve used back to the
 * kernel. glibc keeps freed memory for reuse (and threads' arenas trim
 * only at their top), so without this the daemon's RSS stays at its peak
 * (at 10,000 Services the parse, its claims and the second desired state
 * are tens of MiB that the steady state never needs again). Not after an
 * incremental change: those free little, and the walk over the free
 * chunks would only add to their latency.
 */
static void trim_heap(void)
{
	malloc_trim(0);
}

/* Load the config file (or the embedded default) into d->cfile, naming it
 * in what. On failure err says file, line and problem (the caller logs it)
 * and d->cfile keeps its last good model. */
static int load_config(struct daemon *d, const char *why, char *what, size_t wlen, char *err,
		       size_t errlen)
{
	struct sp_config_file_stats st;
	double t0 = now_ms();
	int rc;

	if (d->o->config)
		rc = sp_config_file_load(d->cfile, err, errlen);
	else
		rc = sp_config_file_parse_buf(d->cfile, sp_default_config,
					      strlen(sp_default_config), err, errlen);
	if (rc)
		return rc;
	sp_config_file_stats(d->cfile, &st);
	/* Which parse it was: the incremental reload's figure (issue 11). */
	if (st.incremental)
		snprintf(what, wlen, "%s (%s; %zu of %zu item(s) parsed again, %.1f ms)",
			 d->o->config ? d->o->config : "embedded default config", why, st.parsed,
			 st.items, now_ms() - t0);
	else
		snprintf(what, wlen, "%s (%s; whole file parsed%s, %.1f ms%s%s)",
			 d->o->config ? d->o->config : "embedded default config", why,
			 st.threads > 1 ? " by items on several threads" : "", now_ms() - t0,
			 st.n_whole > 1 && st.why_whole ? ": " : "",
			 st.n_whole > 1 && st.why_whole ? st.why_whole : "");
	return 0;
}

/* Load and apply the config again. On a bad file the running state stays
 * and the error names file, line and problem. After a load that parsed
 * only the changed items, only their Services are resolved again; with
 * force (SIGHUP), everything is parsed and resolved again. */
static int apply_config(struct daemon *d, const char *why, bool force)
{
	const char *const *names = NULL;
	char err[512], what[PATH_MAX + 160];
	size_t n_names = 0;
	int ret;

	pthread_mutex_lock(&d->pub_lock);
	d->pub.last_queued_ts = real_ns() / 1e9;
	pthread_mutex_unlock(&d->pub_lock);
	if (force)
		sp_config_file_reset(d->cfile);
	ret = load_config(d, why, what, sizeof(what), err, sizeof(err));
	if (ret) {
		pr_err("%s; keeping the running state", err);
		return ret;
	}
	if (sp_config_file_changed(d->cfile, &names, &n_names) == 0)
		return apply_model(d, sp_config_file_model(d->cfile), what, true, names, n_names,
				   NULL);
	ret = apply_model(d, sp_config_file_model(d->cfile), what, true, NULL, 0, NULL);
	trim_heap();
	return ret;
}

/* A file of the config directory that is refused (it keeps its last good state). */
static void config_dir_report(void *arg, const char *msg)
{
	(void)arg;
	pr_err("%s", msg);
}

/* Look at the config directory again and apply its model if it changed
 * (always with force: SIGHUP). Files that are refused are reported and keep
 * their last good state; the others apply. */
static int apply_config_dir(struct daemon *d, const char *why, bool force)
{
	char err[1024], what[PATH_MAX + 96];
	const char *const *names;
	size_t bad, n_names;
	int rc;

	rc = sp_config_dir_scan(d->cdir, false, config_dir_report, NULL, err, sizeof(err));
	if (rc < 0) {
		pr_err("%s; keeping the running state", err);
		return rc;
	}
	if (!rc && !force)
		return 0;
	sp_proxy_health_queued(&d->ph, sp_mono_ns());
	bad = sp_config_dir_n_bad(d->cdir);
	if (bad)
		snprintf(what, sizeof(what), "%s (%s; %zu file(s), %zu refused)",
			 d->o->config_dir, why, sp_config_dir_n_files(d->cdir), bad);
	else
		snprintf(what, sizeof(what), "%s (%s; %zu file(s))", d->o->config_dir, why,
			 sp_config_dir_n_files(d->cdir));
	/* SIGHUP: everything again; otherwise the Services of the files that changed. */
	if (!force && !sp_config_dir_changed(d->cdir, &names, &n_names))
		return apply_model(d, sp_config_dir_model(d->cdir), what, true, names, n_names,
				   NULL);
	rc = apply_model(d, sp_config_dir_model(d->cdir), what, true, NULL, 0, NULL);
	trim_heap();
	return rc;
}

/*
 * Wake the loop when the config file or directory changes: inotify on the
 * directory, since a file replaced by rename (editors, ConfigMap volumes,
 * the atomic way to write a config) is a new inode that a watch on the old
 * one never reports. Close after write, renames, deletes and attribute
 * changes; not every write, so a file being written is not read half-way.
 * The once-a-second stat of the loop stays as the fallback (inotify is not
 * available on every file system). Returns the fd or -errno.
 */
static int config_watch(const struct run_opts *o)
{
	char dir[PATH_MAX];
	const char *slash;
	int fd, err;

	if (o->config_dir) {
		snprintf(dir, sizeof(dir), "%s", o->config_dir);
	} else {
		slash = strrchr(o->config, '/');
		if (!slash)
			snprintf(dir, sizeof(dir), ".");
		else if (slash == o->config)
			snprintf(dir, sizeof(dir), "/");
		else
			snprintf(dir, sizeof(dir), "%.*s", (int)(slash - o->config), o->config);
	}
	fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (inotify_add_watch(fd, dir,
			      IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ATTRIB) <
	    0) {
		err = -errno;
		close(fd);
		pr_warn("watch %s for changes: %s; looking once a second instead", dir,
			strerror(-err));
		return err;
	}
	return fd;
}

/* Drain the inotify events: what changed is found by stat, not from them. */
static void config_watch_drain(int fd)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

/* ---- node addresses ---------------------------------------------------------- */

/* The addresses NodePorts answer on: --node-address, else every address of
 * the uplinks (IPv6 link-local excluded: not a place clients connect to). */
static int sync_node_addrs(struct daemon *d, const struct sp_ip *extra, size_t n_extra)
{
	struct sp_ip addrs[MAX_NODE_ADDRS * 2];
	struct ifaddrs *ifa, *i;
	size_t n = 0, k;
	int j;

	for (j = 0; j < d->o->n_node_addrs; j++)
		addrs[n++] = d->o->node_addrs[j];
	for (k = 0; k < n_extra && n < MAX_NODE_ADDRS * 2; k++)
		addrs[n++] = extra[k];
	if (!d->o->n_node_addrs && !getifaddrs(&ifa)) {
		for (i = ifa; i && n < MAX_NODE_ADDRS * 2; i = i->ifa_next) {
			bool up = false;

			if (!i->ifa_addr)
				continue;
			for (j = 0; j < d->o->n_ifaces; j++)
				up |= !strcmp(i->ifa_name, d->o->ifaces[j]);
			if (!up)
				continue;
			if (i->ifa_addr->sa_family == AF_INET) {
				addrs[n].family = 4;
				memset(addrs[n].b, 0, 16);
				memcpy(addrs[n].b, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, 4);
				n++;
			} else if (i->ifa_addr->sa_family == AF_INET6) {
				struct in6_addr *a6 = &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;

				if (IN6_IS_ADDR_LINKLOCAL(a6))
					continue;
				addrs[n].family = 6;
				memcpy(addrs[n].b, a6, 16);
				n++;
			}
		}
		freeifaddrs(ifa);
	}
	if (d->o->np_primary) {
		/* --nodeport-addresses primary: the first address of each
		 * family, from the Node object when there is one (InternalIP
		 * first: kubelet's primary node IP), else from the list above
		 * (--node-address, or the uplinks' addresses in their order). */
		const struct sp_ip *src = n_extra ? extra : addrs;
		size_t n_src = n_extra ? n_extra : n;
		struct sp_ip prim[2];
		size_t kept = 0;

		for (k = 0; k < n_src && kept < 2; k++)
			if (!kept || prim[0].family != src[k].family)
				prim[kept++] = src[k];
		memcpy(addrs, prim, kept * sizeof(*prim));
		n = kept;
	} else if (d->o->n_np_cidrs) {
		/* --nodeport-addresses: keep only addresses inside a range. */
		size_t kept = 0;

		for (k = 0; k < n; k++) {
			bool in = false;

			for (j = 0; j < d->o->n_np_cidrs; j++)
				in |= cidr_contains(&d->o->np_cidrs[j], &addrs[k]);
			if (in)
				addrs[kept++] = addrs[k];
		}
		n = kept;
	}
	return sp_sync_node_addrs(d->sync, addrs, n);
}

/* ---- pod interfaces over netlink ----------------------------------------------- */

static bool is_pod_iface(const struct run_opts *o, const char *name)
{
	int i;

	for (i = 0; i < o->n_patterns; i++)
		if (!fnmatch(o->patterns[i], name, 0))
			return true;
	return false;
}

static void attach_existing_pods(struct daemon *d)
{
	struct if_nameindex *ifs = if_nameindex(), *i;

	for (i = ifs; i && i->if_index; i++)
		if (is_pod_iface(d->o, i->if_name))
			sp_dp_attach_pod(&d->dp, i->if_name);
	if (ifs)
		if_freenameindex(ifs);
}

static int netlink_open(void)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK };
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);

	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/* New links matching the pattern get the TC program. A deleted link takes
 * its filters with it; only its host-routing entry is ours to remove. */
static void netlink_read(struct daemon *d, int fd)
{
	char buf[16384];
	ssize_t len;

	while ((len = recv(fd, buf, sizeof(buf), 0)) > 0) {
		struct nlmsghdr *nh;

		for (nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, (size_t)len);
		     nh = NLMSG_NEXT(nh, len)) {
			struct ifinfomsg *ifi = NLMSG_DATA(nh);
			struct rtattr *rta = IFLA_RTA(ifi);
			int rlen = IFLA_PAYLOAD(nh);
			char name[IFNAMSIZ] = "";

			if (nh->nlmsg_type != RTM_NEWLINK && nh->nlmsg_type != RTM_DELLINK)
				continue;
			for (; RTA_OK(rta, rlen); rta = RTA_NEXT(rta, rlen))
				if (rta->rta_type == IFLA_IFNAME)
					snprintf(name, sizeof(name), "%s", (char *)RTA_DATA(rta));
			if (!name[0] || !is_pod_iface(d->o, name))
				continue;
			if (nh->nlmsg_type == RTM_DELLINK) {
				pr_info("%s: pod interface gone", name);
				sp_dp_forget_pod(&d->dp, ifi->ifi_index);
				continue;
			}
			/* NEWLINK also comes for state changes: attaching again
			 * just replaces our filter with itself. */
			sp_dp_attach_pod(&d->dp, name);
		}
	}
}

/* ---- metrics and health ---------------------------------------------------------- */

/*
 * Everything /metrics shows, at this moment: the loop's published state
 * (pub_lock), the collector's last pass (gc_lock), the Kubernetes
 * watcher's live counters (for the pending changes), the process's memory
 * and the counter maps.
 */
static int metrics_snap(struct daemon *d, struct sp_metrics_snap *s)
{
	struct sp_metrics_fds fds = {
		.stats = bpf_map__fd(d->dp.skel->maps.sp_stats),
		.reasons = bpf_map__fd(d->dp.skel->maps.sp_reasons),
		.svc_stats = bpf_map__fd(d->dp.skel->maps.sp_svc_stats),
		.svc_meta = bpf_map__fd(d->dp.skel->maps.sp_svc_meta),
	};
	struct sp_k8s_stats ks;

	memset(s, 0, sizeof(*s));
	pthread_mutex_lock(&d->pub_lock);
	s->synced = d->pub.synced;
	s->services = d->pub.n_services;
	s->backends = d->pub.n_backends;
	s->applies = d->pub.applies;
	s->apply_errors = d->pub.apply_errors;
	s->last_apply_s = d->pub.last_apply_ms / 1e3;
	s->sync_hist = d->pub.sync_hist;
	s->netprog_hist = d->pub.netprog_hist;
	s->last_sync_ts = d->pub.last_sync_ts;
	s->last_queued_ts = d->pub.last_queued_ts;
	s->svc_changes = d->pub.svc_changes;
	s->slice_changes = d->pub.slice_changes;
	s->no_local_internal = d->pub.no_local_internal;
	s->no_local_external = d->pub.no_local_external;
	s->maglev_bytes = d->pub.maglev_bytes;
	pthread_mutex_unlock(&d->pub_lock);
	/* Seen by the watcher but not in an applied snapshot yet; the total
	 * counts them too, as kube-proxy's does. */
	if (d->k8s) {
		sp_k8s_get_stats(d->k8s, &ks);
		s->svc_pending = ks.svc_changes - s->svc_changes;
		s->slice_pending = ks.slice_changes - s->slice_changes;
		s->svc_changes = ks.svc_changes;
		s->slice_changes = ks.slice_changes;
	}
	s->maglev_capacity_bytes = (uint64_t)d->sm.maglev_chunks * sizeof(struct sp_maglev_chunk);
	pthread_mutex_lock(&d->gc_lock);
	s->ct_capacity = (uint64_t)d->o->dp.ct_size + d->o->dp.ct6_size;
	s->gc_known = d->gc_runs > 0;
	s->ct_entries = d->gc_last.live;
	s->snat_ports = d->gc_last.snat_live;
	s->ct_pressure = d->gc_pressure;
	s->gc_last_s = d->gc_last.ms / 1e3;
	s->gc_runs = d->gc_runs;
	s->gc_deleted = d->gc_deleted;
	s->gc_errors = d->gc_errors;
	s->gc_early = d->gc_early;
	pthread_mutex_unlock(&d->gc_lock);
	sp_metrics_read_rss(&s->rss_bytes, &s->rss_peak_bytes);
	s->per_service = d->o->metrics_per_service;
	return sp_metrics_read_maps(s, &fds);
}

/*
 * The --metrics-addr server's handler (on its own thread; reads d->pub, the
 * collector's figures under gc_lock and the counter maps). /healthz is
 * readiness (synced); /livez only says the daemon answers, so a daemon
 * waiting for an unreachable API server at boot is not restarted in a loop
 * by a liveness probe (its datapath is pinned and serving the last state
 * anyway).
 */
static int metrics_handle(void *arg, const char *path, struct sp_http_reply *r)
{
	struct daemon *d = arg;
	struct sp_metrics_snap snap;
	bool synced;
	FILE *f;

	pthread_mutex_lock(&d->pub_lock);
	synced = d->pub.synced;
	pthread_mutex_unlock(&d->pub_lock);
	r->content_type = "text/plain; version=0.0.4";
	if (!strcmp(path, "/healthz")) {
		r->status = synced ? 200 : 503;
		return sp_http_printf(r, "%s\n", synced ? "ok" : "not synced");
	}
	if (!strcmp(path, "/livez"))
		return sp_http_printf(r, "alive\n");
	if (strcmp(path, "/metrics")) {
		r->status = 404;
		return sp_http_printf(r, "svcplane: GET /healthz, /livez or /metrics\n");
	}
	if (metrics_snap(d, &snap)) {
		sp_metrics_snap_free(&snap);
		return -ENOMEM;
	}
	f = open_memstream(&r->body, &r->len);
	if (f)
		sp_metrics_write(f, &snap);
	sp_metrics_snap_free(&snap);
	return !f || fclose(f) ? -ENOMEM : 0;
}

/* Start the --metrics-addr server. NULL when 'off' or when the port is
 * taken (logged; the daemon runs without it, as before); *err is set on
 * a bad address or another bind failure, which stop the daemon. */
static struct sp_http *metrics_start(struct daemon *d, int *err)
{
	struct sp_http_limits lim = SP_HTTP_LIMITS_DEFAULT;
	struct sockaddr_storage sa;
	struct sp_http *h;
	socklen_t len;
	int ret;

	*err = 0;
	ret = sp_http_parse_addr(d->o->metrics_addr, &sa, &len);
	if (ret == 1)
		return NULL;
	if (ret) {
		pr_err("--metrics-addr %s: expected ADDRESS:PORT, [IPV6]:PORT or off",
		       d->o->metrics_addr);
		*err = -EINVAL;
		return NULL;
	}
	h = sp_http_start("metrics", &sa, len, &lim, metrics_handle, d, SP_LOG_WARN, &ret);
	if (!h && ret != -EADDRINUSE)
		*err = ret;
	else if (!h)
		pr_warn("metrics on %s: %s; serving none", d->o->metrics_addr, strerror(-ret));
	return h;
}

static int proxy_health_handle(void *arg, const char *path, struct sp_http_reply *r)
{
	struct daemon *d = arg;

	return sp_proxy_health_reply(&d->ph, path, sp_mono_ns(), real_ns(), r);
}

/* (Re)start kube-proxy's health server. A bad address is an error; a port
 * that cannot be bound is logged once and tried again by the loop. */
static int proxy_health_start(struct daemon *d, bool retry)
{
	struct sp_http_limits lim = SP_HTTP_LIMITS_DEFAULT;
	struct sockaddr_storage sa;
	socklen_t len;
	int ret;

	ret = sp_http_parse_addr(d->o->healthz_addr, &sa, &len);
	if (ret == 1)
		return 0;
	if (ret) {
		pr_err("--healthz-addr %s: expected ADDRESS:PORT, [IPV6]:PORT or off",
		       d->o->healthz_addr);
		return -EINVAL;
	}
	d->proxy_http_wanted = true;
	d->proxy_http = sp_http_start("proxy health server", &sa, len, &lim, proxy_health_handle,
				      d, retry ? SP_LOG_DEBUG : SP_LOG_WARN, &ret);
	if (!d->proxy_http && !retry)
		pr_warn("proxy health server on %s: not serving for now; trying again every "
			"second",
			d->o->healthz_addr);
	else if (d->proxy_http && retry)
		pr_info("proxy health server on %s: serving now", d->o->healthz_addr);
	return 0;
}

/* ---- Kubernetes ---------------------------------------------------------------- */

/* Runs on the watcher thread: park the newest snapshot (an older one not
 * yet applied is folded into it: coalescing) and wake the loop. */
static void k8s_on_update(void *arg, struct sp_k8s_update *u)
{
	struct daemon *d = arg;
	uint64_t one = 1;

	sp_proxy_health_queued(&d->ph, sp_mono_ns());
	pthread_mutex_lock(&d->pub_lock);
	d->pub.last_queued_ts = real_ns() / 1e9;
	pthread_mutex_unlock(&d->pub_lock);
	pthread_mutex_lock(&d->k8s_lock);
	if (d->k8s_pending) {
		/* Its changed Services join the newer list; without memory
		 * they are lost with it, and the next apply resolves all. */
		if (d->k8s_superseded || sp_k8s_update_merge(u, d->k8s_pending))
			d->k8s_superseded = true;
		sp_k8s_update_free(d->k8s_pending);
	}
	d->k8s_pending = u;
	pthread_mutex_unlock(&d->k8s_lock);
	if (write(d->k8s_efd, &one, sizeof(one)) < 0)
		pr_debug("k8s: eventfd write: %s", strerror(errno));
}

/* A snapshot with this many changed Services (a list) is followed by trim_heap(). */
#define TRIM_AFTER_CHANGES 1000

static void k8s_apply_pending(struct daemon *d)
{
	const struct sp_model *m;
	struct sp_k8s_update *u;
	int ret;
	bool superseded;
	uint64_t v;
	size_t i;

	if (read(d->k8s_efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		pr_debug("k8s: eventfd read: %s", strerror(errno));
	pthread_mutex_lock(&d->k8s_lock);
	u = d->k8s_pending;
	d->k8s_pending = NULL;
	superseded = d->k8s_superseded;
	d->k8s_superseded = false;
	pthread_mutex_unlock(&d->k8s_lock);
	if (!u)
		return;
	if (u->node_known) {
		sync_node_addrs(d, u->node_addrs, u->n_node_addrs);
		sp_proxy_health_node(&d->ph, !u->node_leaving);
		/* Topology hints are read against the zone: a new zone is a
		 * new view of every Service (resolved whole below). */
		if (!!d->zone != !!u->node_zone ||
		    (d->zone && strcmp(d->zone, u->node_zone))) {
			pr_info("k8s: node zone %s -> %s", d->zone ? d->zone : "(none)",
				u->node_zone ? u->node_zone : "(none)");
			free(d->zone);
			d->zone = u->node_zone;
			u->node_zone = NULL;
			superseded = true;
		}
	}
	for (i = 0; i < u->n_changed; i++)
		pr_debug("k8s: Service %s changed", u->changed[i]);
	/* The Services that changed since the last snapshot applied: the
	 * snapshot's list (with those of the ones it absorbed), unless one was
	 * lost. They are read from the watcher's model, which holds still
	 * while we resolve: no copy of it is made. */
	m = sp_k8s_model_lock(d->k8s);
	ret = apply_model(d, m, "Kubernetes API snapshot", false,
			  superseded ? NULL : (const char *const *)u->changed,
			  superseded ? 0 : u->n_changed, u);
	sp_k8s_model_unlock(d->k8s);
	/* The first snapshot (and a relist's or a lost list's full pass)
	 * resolved everything: the lists' JSON and that pass are garbage. */
	if (superseded || !d->synced || u->n_changed >= TRIM_AFTER_CHANGES)
		trim_heap();
	if (!ret) {
		d->synced = true;
		publish(d);
	}
	sp_k8s_update_free(u);
}

/*
 * In-cluster without --k8s-api-server, the API server is reached at
 * KUBERNETES_SERVICE_HOST: the kubernetes Service's ClusterIP, which only
 * works once svcplane itself has programmed it. A node with no pinned
 * Service state (first start, after `svcplane detach`) cannot get there:
 * say so, and how to fix it, while it is the case (the watcher keeps
 * retrying, and a pinned state from an earlier run makes it work).
 */
static void bootstrap_hint(struct daemon *d)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");

	if (!d->o->in_cluster || d->o->api_server || d->synced || !d->sync ||
	    sp_sync_n_services(d->sync))
		return;
	pr_warn("no Service state is pinned under %s yet, so the API server's ClusterIP "
		"(KUBERNETES_SERVICE_HOST=%s) is not programmed and cannot be reached from "
		"this node until svcplane has synced: start svcplane with --k8s-api-server "
		"https://ADDRESS:PORT of the API server itself (see docs/KUBERNETES.md); "
		"retrying meanwhile",
		d->o->dp.pin_dir, host ? host : "(unset)");
}

/* ---- pid file ------------------------------------------------------------------ */

/* Take the pid file lock: one daemon per pin directory. Returns the fd (held
 * for the daemon's life) or -errno. */
static int pidfile_lock(const char *pin_dir)
{
	char path[PATH_MAX];
	int fd, err;

	err = sp_pidfile_path(pin_dir, path, sizeof(path));
	if (err)
		return err;
	if (mkdir(SP_RUN_DIR, 0755) && errno != EEXIST) {
		err = -errno;
		pr_err("create %s: %s", SP_RUN_DIR, strerror(-err));
		return err;
	}
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		err = -errno;
		pr_err("open pid file %s: %s", path, strerror(-err));
		return err;
	}
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		err = -errno;
		pr_err("another svcplane daemon holds %s (pin directory %s)", path, pin_dir);
		close(fd);
		return err == -EWOULDBLOCK ? -EBUSY : err;
	}
	if (ftruncate(fd, 0) == 0)
		dprintf(fd, "%d\n", getpid());
	return fd;
}

/*
 * Say in the pid file that the first full state is applied and the programs
 * are attached: `svcplane status` (and so readiness probes and tests) wait
 * for this, not for the maps, which a restarted daemon finds pinned at once.
 */
static void announce_ready(struct daemon *d)
{
	if (d->announced || !d->synced || !d->attached)
		return;
	if (ftruncate(d->pidfd, 0) || lseek(d->pidfd, 0, SEEK_SET) ||
	    dprintf(d->pidfd, "%d\nready\n", getpid()) < 0) {
		pr_warn("mark the pid file ready: %s", strerror(errno));
		return;
	}
	d->announced = true;
	/* Each figure is the time since the previous step; the config file
	 * is parsed while the programs load (parse: 0 with the Kubernetes
	 * source, whose first state comes after the attach). */
	pr_info("ready: state applied, datapath attached (%.0f ms after start: before the load %.0f, "
		"programs loaded %.0f and config parsed %.0f side by side: %.0f, pinned state "
		"%.0f, first apply %.0f, attach %.0f)",
		now_ms() - d->start.t0, d->start.config - d->start.t0,
		d->start.loaded - d->start.config, d->start.parse_ms,
		d->start.programs - d->start.config, d->start.recovered - d->start.programs,
		d->start.applied ? d->start.applied - d->start.recovered : 0,
		d->start.attached - (d->start.applied ?: d->start.recovered));
}

/*
 * The config file at start, parsed on a thread of its own while the main
 * thread loads the programs: at 10,000 Services each takes a CPU for a
 * second or more, and neither needs the other until the first apply.
 */
struct start_parse {
	struct daemon *d;
	char *what;
	size_t wlen;
	char msg[512];
	int err;
	double ms; /* how long the parse took */
};

static void *start_parse_main(void *arg)
{
	struct start_parse *p = arg;
	double t0 = now_ms();

	p->err = load_config(p->d, "start", p->what, p->wlen, p->msg, sizeof(p->msg));
	p->ms = now_ms() - t0;
	return NULL;
}

/* ---- the loop ---------------------------------------------------------------------- */

static bool config_changed(struct daemon *d)
{
	struct stat st;

	if (!d->o->config || stat(d->o->config, &st))
		return false;
	if (st.st_mtim.tv_sec == d->cfg_stat.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == d->cfg_stat.st_mtim.tv_nsec && st.st_size == d->cfg_stat.st_size &&
	    st.st_ino == d->cfg_stat.st_ino)
		return false;
	d->cfg_stat = st;
	return true;
}

/*
 * The SNAT ports must never be the source port of one of the node's own
 * connections: a reply to that connection would match a SNAT flow. The
 * default range lies above Linux's ephemeral range; if the node's
 * ip_local_port_range reaches into it, the range is added to
 * ip_local_reserved_ports (as Cilium reserves its NodePort range), which
 * the kernel then never picks for an automatic bind. Per network namespace.
 */
static void snat_reserve_ports(const struct sp_dp_opts *dp)
{
	const char *range = "/proc/sys/net/ipv4/ip_local_port_range",
		   *resv = "/proc/sys/net/ipv4/ip_local_reserved_ports";
	char old[4096] = "", buf[4200];
	unsigned int lo = 0, hi = 0;
	FILE *f = fopen(range, "r");
	int n;

	if (!f)
		return;
	n = fscanf(f, "%u %u", &lo, &hi);
	fclose(f);
	if (n != 2 || hi < dp->snat_port_min || lo > dp->snat_port_max)
		return;
	f = fopen(resv, "r");
	if (f) {
		if (!fgets(old, sizeof(old), f))
			old[0] = '\0';
		fclose(f);
	}
	old[strcspn(old, "\n")] = '\0';
	snprintf(buf, sizeof(buf), "%s%s%u-%u", old, old[0] ? "," : "", dp->snat_port_min,
		 dp->snat_port_max);
	f = fopen(resv, "w");
	n = f ? fputs(buf, f) : -1;
	if (f && fclose(f))
		n = -1;
	if (n < 0) {
		pr_warn("--snat-ports %u-%u overlaps ip_local_port_range %u-%u and could not be "
			"reserved in %s: the node's own connections may take these ports",
			dp->snat_port_min, dp->snat_port_max, lo, hi, resv);
		return;
	}
	pr_info("--snat-ports %u-%u overlaps ip_local_port_range %u-%u: reserved in "
		"ip_local_reserved_ports",
		dp->snat_port_min, dp->snat_port_max, lo, hi);
}

int cmd_run(int argc, char **argv)
{
	struct run_opts o;
	struct daemon d = { 0 };
	char start_what[PATH_MAX + 160] = "";
	struct sp_k8s *k8s = NULL;
	struct sp_sync_maps sm;
	sigset_t mask;
	struct sp_http *metrics = NULL;
	int sfd = -1, nlfd = -1, lockfd = -1, cwfd = -1, err, i;
	bool stop = false, parsing = false;
	uint64_t last_retry = 0, retries = 0;
	struct start_parse sp = { 0 };
	pthread_t parse_thread;

	err = parse_run_opts(argc, argv, &o);
	if (err)
		return err;
	/* Block the signals we handle before anything else: a SIGHUP sent
	 * while we load must be queued for the loop, not kill the daemon. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* Blocks of 1 MiB and more (the config file's text, the model's and
	 * the desired state's arrays) get pages of their own, returned when
	 * freed. Left to itself glibc raises this threshold to the size of the
	 * largest block freed so far, so the next 10 MB read of the file lands
	 * in the heap and stays resident after an incremental change, which
	 * does not trim (see trim_heap). */
	mallopt(M_MMAP_THRESHOLD, 1 << 20);
	/* With the Kubernetes API, one malloc arena for every thread: the
	 * watcher thread's JSON and the sync's Maglev builds in arenas of
	 * their own left their freed pages resident after the first
	 * snapshot (k8s-scale -n 10000 -e 10: RSS 48.1 -> 47.5 MiB, peak 63
	 * -> 49 MiB), and they seldom allocate at the same moment. The
	 * config file's first parse runs items on parallel threads that do
	 * contend for one arena (its parse went from 0.29 to 0.46 s): left
	 * with glibc's default there. */
	if (o.kubeconfig || o.in_cluster)
		mallopt(M_ARENA_MAX, 1);
	d.o = &o;
	d.start.t0 = now_ms();
	d.k8s_efd = -1;
	d.gc_stop_efd = -1;
	pthread_mutex_init(&d.k8s_lock, NULL);
	pthread_mutex_init(&d.gc_lock, NULL);
	pthread_mutex_init(&d.pub_lock, NULL);
	sp_proxy_health_init(&d.ph, o.healthz_max_stale);
	/* The first state is a change waiting until it is applied. */
	sp_proxy_health_queued(&d.ph, sp_mono_ns());
	d.svc_health = sp_svc_health_new(&d.ph);
	if (!d.svc_health) {
		err = -ENOMEM;
		goto out;
	}

	lockfd = pidfile_lock(o.dp.pin_dir);
	if (lockfd < 0) {
		err = lockfd;
		goto out;
	}
	d.pidfd = lockfd;

	/* Load the source before touching the datapath: a bad file at start
	 * is an error, not an empty state. The model is applied below, once
	 * the maps are open, without reading the file again. */
	if (o.config_dir) {
		char msg[1024];

		err = sp_config_dir_new(o.config_dir, &d.cdir);
		if (!err)
			err = sp_config_dir_scan(d.cdir, true, NULL, NULL, msg, sizeof(msg));
		if (err < 0) {
			pr_err("%s", err == -ENOMEM ? strerror(ENOMEM) : msg);
			goto out;
		}
		snprintf(start_what, sizeof(start_what), "%s (start; %zu file(s))", o.config_dir,
			 sp_config_dir_n_files(d.cdir));
	} else if (!o.kubeconfig && !o.in_cluster) {
		if (o.config && stat(o.config, &d.cfg_stat)) {
			err = -errno;
			pr_err("config %s: %s", o.config, strerror(-err));
			goto out;
		}
		err = sp_config_file_new(o.config ? o.config : SP_DEFAULT_CONFIG_NAME, &d.cfile);
		if (err) {
			pr_err("%s", strerror(-err));
			goto out;
		}
		sp = (struct start_parse){ .d = &d, .what = start_what,
					   .wlen = sizeof(start_what) };
		parsing = pthread_create(&parse_thread, NULL, start_parse_main, &sp) == 0;
		if (!parsing) { /* then here, first */
			start_parse_main(&sp);
			if (sp.err) {
				pr_err("%s", sp.msg);
				err = sp.err;
				goto out;
			}
		}
	}

	d.start.config = now_ms();
	snat_reserve_ports(&o.dp);
	err = sp_dp_load(&d.dp, &o.dp);
	d.start.loaded = now_ms();
	if (parsing) {
		pthread_join(parse_thread, NULL);
		parsing = false;
		if (sp.err) {
			/* A bad file at start is an error, not an empty state:
			 * nothing was attached, and maps this start created are
			 * unpinned again (pinned ones it found stay as they were). */
			pr_err("%s", sp.msg);
			if (!err && !d.dp.maps_reused)
				bpf_object__unpin_maps(d.dp.skel->obj, NULL);
			err = sp.err;
			goto out;
		}
	}
	if (err)
		goto out;
	d.start.programs = now_ms(); /* the later of the two */
	d.start.parse_ms = sp.ms;
	if (d.dp.maps_reused)
		pr_info("reusing pinned maps under %s: conntrack and state kept", o.dp.pin_dir);
	sm = (struct sp_sync_maps){
		.fd_services = d.dp.fd_services,
		.fd_backends = d.dp.fd_backends,
		.fd_maglev = d.dp.fd_maglev,
		.fd_svc_meta = d.dp.fd_svc_meta,
		.fd_svc_stats = bpf_map__fd(d.dp.skel->maps.sp_svc_stats),
		.fd_node_addrs = d.dp.fd_node_addrs,
		.fd_dst_filter = bpf_map__fd(d.dp.skel->maps.sp_dst_filter),
		.fd_svc_live = bpf_map__fd(d.dp.skel->maps.sp_svc_live),
		.fd_svc_backends = bpf_map__fd(d.dp.skel->maps.sp_svc_backends),
		.maglev_chunks = d.dp.maglev_chunks,
		.max_svc_ids = d.dp.max_svc_ids,
		/* ids 1 .. max index the array (user/dp.c) */
		.max_backends = bpf_map__max_entries(d.dp.skel->maps.sp_backends) - 1,
		.max_frontends = bpf_map__max_entries(d.dp.skel->maps.sp_services),
		.fixed_m = o.fixed_m,
		.fd_src_ranges = bpf_map__fd(d.dp.skel->maps.sp_src_ranges),
		.max_src_ranges = bpf_map__max_entries(d.dp.skel->maps.sp_src_ranges),
	};
	d.sm = sm;
	err = sp_sync_new(&sm, &d.sync);
	if (err) {
		pr_err("read pinned state: %s", strerror(-err));
		goto out;
	}
	/* A deleted Service's TCP frontends stay for its established
	 * connections, while the collector is there to say when none is left. */
	sp_sync_set_retain(d.sync, o.ct_gc_interval > 0);
	d.start.recovered = now_ms();
	publish(&d);
	bootstrap_hint(&d);

	/* Maps first, then attach: a new program never sees empty maps. */
	if (!o.kubeconfig && !o.in_cluster) {
		/* A file that does not fit is an error at start too (-EFBIG). */
		err = apply_model(&d,
				  d.cdir ? sp_config_dir_model(d.cdir) : sp_config_file_model(d.cfile),
				  start_what, true, NULL, 0, NULL);
		trim_heap();
		if (err && err != -ENOSPC)
			goto out;
		d.synced = true;
		publish(&d);
		d.start.applied = now_ms();
	}
	err = sync_node_addrs(&d, NULL, 0);
	if (err)
		goto out;
	if (o.dp.dsr)
		pr_info("--dsr: external traffic to pods on other nodes uses Direct Server Return "
			"(every node must run with --dsr)");
	for (i = 0; i < o.n_ifaces; i++) {
		err = sp_dp_attach_uplink(&d.dp, o.ifaces[i], o.xdp_mode);
		if (err)
			goto out;
		if (o.dp.xdp_redirect)
			sp_dp_add_tx_port(&d.dp, o.ifaces[i]);
	}
	if (o.n_patterns) {
		nlfd = netlink_open();
		if (nlfd < 0) {
			err = nlfd;
			pr_err("netlink socket for link events: %s", strerror(-err));
			goto out;
		}
		attach_existing_pods(&d);
	}
	d.attached = true;
	d.start.attached = now_ms();
	/* The old programs are replaced: what they added to an older
	 * version's conntrack since the load is copied too, and its tables are
	 * unpinned. A failure leaves them pinned for the next start to finish. */
	if (sp_dp_ct_upgrade(&d.dp, true))
		pr_warn("conntrack of an older version left in %s (%s, %s, %s)", o.dp.pin_dir,
			SP_MAP_CT_OLD, SP_MAP_CT4_V1, SP_MAP_CT6_V1);

	if (o.kubeconfig || o.in_cluster) {
		struct sp_k8s_opts ko;
		char msg[512] = "";

		d.k8s_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (d.k8s_efd < 0) {
			err = -errno;
			goto out;
		}
		memset(&ko, 0, sizeof(ko));
		ko.kubeconfig = o.kubeconfig; /* NULL with --in-cluster */
		ko.node_name = o.node_name;
		ko.api_server = o.api_server;
		ko.min_sync_ms = (int)o.min_sync_ms;
		if (sp_log_level >= SP_LOG_DEBUG)
			sp_k8s_set_log_level(SP_K8S_LOG_DEBUG);
		k8s = sp_k8s_start(&ko, k8s_on_update, &d, msg, sizeof(msg));
		if (!k8s) {
			err = -EINVAL;
			pr_err("Kubernetes source: %s", msg);
			goto out;
		}
		d.k8s = k8s;
	}

	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	metrics = metrics_start(&d, &err);
	if (err)
		goto out;
	err = proxy_health_start(&d, false);
	if (err)
		goto out;
	pr_info("running: pin directory %s, %d uplink(s), %s", o.dp.pin_dir, o.n_ifaces,
		o.config ? o.config :
			   (o.config_dir ? o.config_dir :
					   (k8s ? "Kubernetes API" : "embedded default config")));
	err = gc_start(&d);
	if (err)
		goto out;
	if (!k8s && (o.config || o.config_dir))
		cwfd = config_watch(&o);
	announce_ready(&d);

	while (!stop) {
		struct pollfd p[5] = {
			{ .fd = sfd, .events = POLLIN },
			{ .fd = nlfd, .events = POLLIN },
			{ .fd = d.k8s_efd, .events = POLLIN },
			{ .fd = cwfd, .events = POLLIN },
			{ .fd = sp_sync_reclaim_fd(d.sync), .events = POLLIN },
		};
		bool tick = false;
		int n = poll(p, 5, 1000);

		if (n < 0 && errno != EINTR) {
			err = -errno;
			pr_err("poll: %s", strerror(-err));
			break;
		}
		if (p[0].revents & POLLIN) {
			struct signalfd_siginfo si;

			while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGHUP) {
					if (d.cdir) {
						apply_config_dir(&d, "SIGHUP", true);
					} else if (!k8s) {
						config_changed(&d);
						sp_proxy_health_queued(&d.ph, sp_mono_ns());
						apply_config(&d, "SIGHUP", true);
					}
				} else {
					pr_info("signal %d: exiting; the datapath stays attached "
						"('svcplane detach' removes it)",
						si.ssi_signo);
					stop = true;
				}
			}
		}
		if (nlfd >= 0 && (p[1].revents & POLLIN))
			netlink_read(&d, nlfd);
		/* A grace period has ended: free what it covers now, so the
		 * maps hold no removed backend longer than that (sync.h). */
		if (p[4].fd >= 0 && (p[4].revents & POLLIN)) {
			uint64_t ended;

			if (read(p[4].fd, &ended, sizeof(ended)) < 0 && errno != EAGAIN)
				pr_warn("read the map sync's reclaim event: %s", strerror(errno));
			sp_sync_reclaim(d.sync, NULL);
			publish(&d); /* the backend count and Maglev bytes */
		}
		if (d.k8s_efd >= 0 && (p[2].revents & POLLIN)) {
			k8s_apply_pending(&d);
			announce_ready(&d);
		}
		/* Ports that could not be bound: again, at most once a second. */
		if (sp_mono_ns() - last_retry >= 1000000000ULL) {
			tick = true;
			last_retry = sp_mono_ns();
			if (++retries % 30 == 0)
				bootstrap_hint(&d);
			sp_svc_health_retry(d.svc_health);
			/* Also here, in case the event above was missed. */
			sp_sync_reclaim(d.sync, NULL);
			retained_exchange(&d);
			if (d.proxy_http_wanted && !d.proxy_http)
				proxy_health_start(&d, true);
		}
		/* The config: when inotify says so, and once a second anyway. */
		if (cwfd >= 0 && (p[3].revents & POLLIN)) {
			config_watch_drain(cwfd);
			tick = true;
		}
		if (tick && d.cdir) {
			apply_config_dir(&d, "files changed", false);
		} else if (tick && !k8s && config_changed(&d)) {
			sp_proxy_health_queued(&d.ph, sp_mono_ns());
			apply_config(&d, "file changed", false);
		}
	}
	err = 0;
out:
	if (parsing)
		pthread_join(parse_thread, NULL);
	sp_http_stop(metrics); /* first: their handlers read what follows */
	sp_http_stop(d.proxy_http);
	sp_svc_health_free(d.svc_health);
	gc_stop(&d);
	sp_config_file_free(d.cfile);
	if (k8s)
		sp_k8s_stop(k8s);
	if (d.k8s_pending)
		sp_k8s_update_free(d.k8s_pending);
	if (d.k8s_efd >= 0)
		close(d.k8s_efd);
	if (sfd >= 0)
		close(sfd);
	if (nlfd >= 0)
		close(nlfd);
	if (cwfd >= 0)
		close(cwfd);
	sp_config_dir_free(d.cdir);
	sp_desired_free(&d.prev);
	free(d.zone);
	sp_sync_free(d.sync);
	sp_dp_close(&d.dp);
	if (lockfd >= 0)
		close(lockfd);
	pthread_mutex_destroy(&d.k8s_lock);
	free(d.ret_snap);
	free(d.ret_unused);
	pthread_mutex_destroy(&d.gc_lock);
	pthread_mutex_destroy(&d.pub_lock);
	sp_proxy_health_destroy(&d.ph);
	return err;
}

/* ---- detach ------------------------------------------------------------------------ */

static const struct sp_opt detach_opts[] = {
	{ "bpffs-dir", 'd', "DIR", "pin directory (default " SP_PIN_DIR_DEFAULT ")", NULL },
	{ "verbose", 'v', NULL, "debug logging", NULL },
	SP_OPT_HELP,
	SP_OPT_END,
};

static const struct sp_cmd_doc detach_doc = {
	"detach", NULL,
	"Remove svcplane's XDP and TC programs from every interface of this\n"
	"network namespace and unpin every map and link under DIR. Refuses while a\n"
	"daemon runs on DIR.",
	detach_opts,
};

const struct sp_cmd_doc *sp_detach_doc(void)
{
	return &detach_doc;
}

int cmd_detach(int argc, char **argv)
{
	struct option opts[8];
	char so[16];
	const char *dir = SP_PIN_DIR_DEFAULT;
	char path[PATH_MAX];
	int c, err, fd;

	if (sp_opts_getopt(detach_opts, opts, 8, so, sizeof(so)))
		return -E2BIG;
	optind = 1;
	while ((c = getopt_long(argc, argv, so, opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'v':
			sp_log_level = SP_LOG_DEBUG;
			break;
		case 'h':
			sp_cmd_usage(stdout, &detach_doc);
			return 0;
		default:
			fprintf(stderr, "Try 'svcplane detach --help'.\n");
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "svcplane detach: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	/* A running daemon would re-attach pods and rewrite maps. */
	if (!sp_pidfile_path(dir, path, sizeof(path)) &&
	    (fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
		if (flock(fd, LOCK_EX | LOCK_NB)) {
			fprintf(stderr, "svcplane detach: a daemon is running on %s; stop it first\n",
				dir);
			close(fd);
			return -EBUSY;
		}
		close(fd);
		unlink(path);
	}
	err = sp_dp_detach_all(dir);
	if (!err)
		printf("detached: programs removed, %s unpinned\n", dir);
	return err;
}
