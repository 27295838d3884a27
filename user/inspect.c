// SPDX-License-Identifier: Apache-2.0
/*
 * Inspection subcommands: services, backends, conntrack, maglev, stats and
 * status. They read the maps the daemon pinned under --bpffs-dir and never
 * write them, so they are safe while the daemon syncs and the datapath
 * forwards. Nothing here is a snapshot: see ins_dump() for what that means.
 *
 * Layout: option parsing (one declarative table per command), output
 * helpers (addresses, aligned tables, JSON), map access, the Service view
 * shared by services/backends/maglev, then one section per command.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <json-c/json.h>
#include <linux/magic.h>

#include "cli.h"
#include "ct.h"
#include "ct_gc.h" /* sp_mono_ns */
#include "inspect.h"
#include "metrics.h"
#include "maglev.h"
#include "svcplane.h"
#include "monitor.h"
#include "trace.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define DIV_ROUND_UP(n, d) (((n) + (d) - 1) / (d))

#define INS_IP_LEN 48 /* an address alone: INET6_ADDRSTRLEN or "?family255" */
#define INS_ADDR_LEN 64 /* "[" address "]:65535" */
#define INS_FE_LEN 96 /* frontend: address:port/proto(ext) */
#define INS_NUM_LEN 24 /* a __u64 in decimal */
#define INS_MAX_KEY 64 /* largest key we walk (sp_ct6's, struct sp_ct_key, is 40) */
#define INS_MAX_OPTS 12
#define INS_MAX_COLS 12
#define INS_MAX_REASONS 1024 /* sanity bound on sp_reasons max_entries */

/* ------------------------------------------------------------------------ */
/* Options                                                                  */
/* ------------------------------------------------------------------------ */

/* What one invocation asked for. Options set fields through ins_opt.off. */
struct ins_ctx {
	const char *cmd; /* "services": prefix of every message */
	const char *dir; /* pin directory, without trailing '/' */
	const char *arg; /* the positional argument (maglev SVC, trace SRC) */
	const char *arg2; /* the second one (trace DST) */
	const char *iface; /* trace --iface */
	bool from_pod, from_host, external; /* trace */
	bool syn, established; /* trace */
	const char *service, *address, *types; /* monitor filters */
	unsigned long rate, count, seconds; /* monitor */
	bool json;
	bool table; /* maglev --table */
	bool all; /* stats --all */
	bool all_backends; /* services --all-backends */
	unsigned long limit; /* conntrack --limit, 0 = all */
	char dirbuf[PATH_MAX];
};

enum ins_opt_kind {
	INS_OPT_FLAG, /* sets a bool */
	INS_OPT_STR, /* stores optarg */
	INS_OPT_ULONG, /* parses a decimal number */
	INS_OPT_HELP,
};

struct ins_opt {
	const char *name; /* long name */
	int key; /* short name */
	enum ins_opt_kind kind;
	size_t off; /* field of struct ins_ctx */
	const char *metavar; /* argument name in --help, NULL if none */
	const char *help;
};

struct ins_cmd {
	const char *name;
	const char *args; /* positional usage, NULL if none */
	const char *summary;
	const char *details; /* extra --help paragraph, may be NULL */
	const struct ins_opt *opts; /* ends with a NULL name */
	const char *args2; /* a second positional argument, NULL if none */
};

#define INS_OPT_DIR                                                                        \
	{ "bpffs-dir", 'd', INS_OPT_STR, offsetof(struct ins_ctx, dir), "DIR",             \
	  "directory the daemon pinned its maps in (default " SP_PIN_DIR_DEFAULT ")" }
#define INS_OPT_JSON                                                                       \
	{ "json", 'j', INS_OPT_FLAG, offsetof(struct ins_ctx, json), NULL,                  \
	  "print JSON instead of a table" }
#define INS_OPT_HELP_ENTRY { "help", 'h', INS_OPT_HELP, 0, NULL, "show this help" }
#define INS_OPT_END { NULL }

/* Backends listed under a Service in the text view without --all-backends:
 * enough to see what it points at, short enough that 10,000 Services of
 * hundreds of endpoints stay a table one can page through. */
#define INS_TEXT_BACKENDS 8
#define INS_STR_(x) #x
#define INS_STR(x) INS_STR_(x)

static const struct ins_opt services_opts[] = {
	INS_OPT_DIR,
	INS_OPT_JSON,
	{ "all-backends", 'A', INS_OPT_FLAG, offsetof(struct ins_ctx, all_backends), NULL,
	  "list every backend under a Service (default: the first " INS_STR(
		  INS_TEXT_BACKENDS) " and a count)" },
	INS_OPT_HELP_ENTRY,
	INS_OPT_END,
};

/* The commands without options of their own. */
static const struct ins_opt plain_opts[] = {
	INS_OPT_DIR, INS_OPT_JSON, INS_OPT_HELP_ENTRY, INS_OPT_END,
};

static const struct ins_opt conntrack_opts[] = {
	INS_OPT_DIR,
	INS_OPT_JSON,
	{ "limit", 'n', INS_OPT_ULONG, offsetof(struct ins_ctx, limit), "N",
	  "show at most N entries, oldest first (default: all)" },
	INS_OPT_HELP_ENTRY,
	INS_OPT_END,
};

static const struct ins_opt maglev_opts[] = {
	INS_OPT_DIR,
	INS_OPT_JSON,
	{ "table", 't', INS_OPT_FLAG, offsetof(struct ins_ctx, table), NULL,
	  "also dump the M table entries" },
	INS_OPT_HELP_ENTRY,
	INS_OPT_END,
};

static const struct ins_opt stats_opts[] = {
	INS_OPT_DIR,
	INS_OPT_JSON,
	{ "all", 'a', INS_OPT_FLAG, offsetof(struct ins_ctx, all), NULL,
	  "also list reasons whose counters are zero" },
	INS_OPT_HELP_ENTRY,
	INS_OPT_END,
};

static const struct ins_opt trace_opts[] = {
	INS_OPT_DIR,
	INS_OPT_JSON,
	{ "iface", 'i', INS_OPT_STR, offsetof(struct ins_ctx, iface), "IF",
	  "the interface the packet arrives on (default: the daemon's first uplink)" },
	{ "external", 'e', INS_OPT_FLAG, offsetof(struct ins_ctx, external), NULL,
	  "from outside, arriving on an uplink: sp_xdp, then sp_tc_uplink (the default)" },
	{ "from-pod", 'p', INS_OPT_FLAG, offsetof(struct ins_ctx, from_pod), NULL,
	  "from a pod: sp_tc_ingress (IF: the pod's host-side veth)" },
	{ "from-host", 'H', INS_OPT_FLAG, offsetof(struct ins_ctx, from_host), NULL,
	  "from a process of this host: sp_tc_egress on the uplink" },
	{ "syn", 's', INS_OPT_FLAG, offsetof(struct ins_ctx, syn), NULL,
	  "TCP: a SYN opening a connection (the default)" },
	{ "established", 'E', INS_OPT_FLAG, offsetof(struct ins_ctx, established), NULL,
	  "TCP: an ACK of a running connection" },
	INS_OPT_HELP_ENTRY,
	INS_OPT_END,
};

static const struct ins_cmd trace_cmd = {
	"trace", "SRC[:PORT]",
	"Show what the datapath would do with one packet, decision by decision.",
	"The packet runs through the real datapath code (a dry-run copy, loaded on\n"
	"demand) with BPF_PROG_TEST_RUN, over the daemon's live maps and with its\n"
	"settings; it writes no conntrack or affinity entry, claims no SNAT port\n"
	"and counts nothing. SRC is ADDR[:PORT] (default port 40000); DST is\n"
	"ADDR:PORT/tcp or ADDR:PORT/udp; IPv6 as [ADDR]:PORT. Prints the frontend\n"
	"matched (or why none), conntrack, traffic policy, affinity, Maglev slot and\n"
	"backend, SNAT/DSR, each program's verdict and the packet it leaves with, or\n"
	"the drop reason. Exit status: 0 when traced, whatever the verdict.",
	trace_opts,
	"DST:PORT/PROTO",
};

static const struct ins_opt monitor_opts[] = {
	INS_OPT_DIR,
	INS_OPT_JSON,
	{ "service", 's', INS_OPT_STR, offsetof(struct ins_ctx, service), "SVC",
	  "only events of Service ports whose name contains SVC (or svc_id SVC)" },
	{ "address", 'a', INS_OPT_STR, offsetof(struct ins_ctx, address), "IP",
	  "only events whose client, frontend or backend is IP" },
	{ "type", 't', INS_OPT_STR, offsetof(struct ins_ctx, types), "LIST",
	  "only these types: new, reject, drop, ct-lost (comma-separated)" },
	{ "rate", 'r', INS_OPT_ULONG, offsetof(struct ins_ctx, rate), "N",
	  "at most N events a second from the datapath (default 1000; more are counted lost)" },
	{ "count", 'n', INS_OPT_ULONG, offsetof(struct ins_ctx, count), "N",
	  "stop after printing N events" },
	{ "seconds", 'T', INS_OPT_ULONG, offsetof(struct ins_ctx, seconds), "S",
	  "stop after S seconds (default: at Ctrl-C)" },
	INS_OPT_HELP_ENTRY,
	INS_OPT_END,
};

static const struct ins_cmd monitor_cmd = {
	"monitor", NULL, "Stream datapath events as they happen, as `cilium monitor` does.",
	"Events: new (a new flow: Service port and backend), reject (an answer for a\n"
	"Service without endpoints), drop (with its reason, as `svcplane stats` counts\n"
	"it), ct-lost (a live flow's other conntrack entry was found evicted). The\n"
	"datapath emits them only while a monitor runs: it opens a gate for a few\n"
	"seconds at a time and renews it, and closes it on exit (one monitor at a time\n"
	"is the supported use: the first to exit closes it for all). Filters apply\n"
	"here, after the rate limit. JSON: one object a line.",
	monitor_opts,
};

static const struct ins_cmd services_cmd = {
	"services", NULL,
	"List Service ports: frontends, backends, Maglev table size and counters.",
	"Frontends: VIP:port/proto; *:PORT/proto is a NodePort on every node address;\n"
	"(ext) marks a LoadBalancer ingress IP or externalIP.\n"
	"The table lists the first " INS_STR(INS_TEXT_BACKENDS) " backends of a Service and how many "
	"more it has;\n--json and --all-backends list them all.\n"
	"A row whose backends say \"deleted\" (\"deleted\": true in JSON) holds the TCP\n"
	"frontends of a deleted Service or port, kept only for the connections\n"
	"established through them until none is left.",
	services_opts,
};

static const struct ins_cmd backends_cmd = {
	"backends", NULL, "List backends (endpoints) and how many Service ports use each.",
	NULL, services_opts,
};

static const struct ins_cmd conntrack_cmd = {
	"conntrack", NULL, "List connection tracking entries (both directions of each flow).",
	"EXPIRES is the time left before an idle entry dies.", conntrack_opts,
};

static const struct ins_cmd maglev_cmd = {
	"maglev", "SVC",
	"Show the Maglev table of one Service port: size, share per backend, digest.",
	"SVC is a svc_id, a name as `svcplane services` prints it\n"
	"(namespace/name:port/proto/v4), or a prefix of one ending before ':' or '/'\n"
	"(namespace/name). The digest depends only on which backend each entry names,\n"
	"so equal digests on two nodes mean they pick the same backend for every flow.",
	maglev_opts,
};

static const struct ins_cmd stats_cmd = {
	"stats", NULL,
	"Show datapath counters (summed over CPUs) and drop/pass reasons. Each counter is\n"
	"shown in total and per program: XDP (sp_xdp, uplinks), POD (sp_tc_ingress, pod\n"
	"veths), HOST (sp_tc_egress, host traffic leaving uplinks) and UPLINK_TC\n"
	"(sp_tc_uplink: rejects XDP left to TC); JSON: counters and by_hook.",
	NULL, stats_opts,
};

static const struct ins_cmd status_cmd = {
	"status", NULL,
	"Show the pin directory, pinned maps, attached programs and the daemon state.",
	"Exit status: 0 when the daemon runs and is ready, non-zero otherwise.",
	plain_opts,
};

/*
 * The inspection commands as user/cli.c documents them (bash completion, man
 * page): their own option tables, read into struct sp_opt once. NULL if name
 * is not an inspection command.
 */
const struct sp_cmd_doc *sp_inspect_doc(const char *name)
{
	static const struct ins_cmd *const cmds[] = { &services_cmd, &backends_cmd,
						       &conntrack_cmd, &maglev_cmd,
						       &stats_cmd, &status_cmd,
						       &trace_cmd, &monitor_cmd };
	enum { N = sizeof(cmds) / sizeof(cmds[0]) };
	static struct sp_opt opts[N][INS_MAX_OPTS + 1];
	static struct sp_cmd_doc docs[N];
	static char text[N][1024], args[N][64];
	size_t i, n;

	for (i = 0; i < N && strcmp(cmds[i]->name, name); i++)
		;
	if (i == N)
		return NULL;
	if (!docs[i].name) {
		const struct ins_cmd *c = cmds[i];

		for (n = 0; c->opts[n].name && n < INS_MAX_OPTS; n++)
			opts[i][n] = (struct sp_opt){ c->opts[n].name, c->opts[n].key,
						      c->opts[n].metavar, c->opts[n].help, NULL };
		snprintf(text[i], sizeof(text[i]), "%s%s%s", c->summary, c->details ? "\n\n" : "",
			 c->details ? c->details : "");
		snprintf(args[i], sizeof(args[i]), "%s%s%s", c->args ? c->args : "",
			 c->args2 ? " " : "", c->args2 ? c->args2 : "");
		docs[i] = (struct sp_cmd_doc){ c->name, c->args ? args[i] : NULL, text[i],
					       opts[i] };
	}
	return &docs[i];
}

static void __attribute__((format(printf, 2, 3))) ins_err(const struct ins_ctx *c,
							   const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "svcplane %s: ", c->cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void ins_usage(const struct ins_cmd *cmd, FILE *f)
{
	const struct ins_opt *o;
	char lhs[64];
	int w = 0;

	fprintf(f, "Usage: svcplane %s [OPTIONS]%s%s%s%s\n%s\n", cmd->name, cmd->args ? " " : "",
		cmd->args ? cmd->args : "", cmd->args2 ? " " : "", cmd->args2 ? cmd->args2 : "",
		cmd->summary);
	if (cmd->details)
		fprintf(f, "\n%s\n", cmd->details);
	for (o = cmd->opts; o->name; o++) {
		int n = snprintf(lhs, sizeof(lhs), "-%c, --%s%s%s", o->key, o->name,
				 o->metavar ? " " : "", o->metavar ? o->metavar : "");
		if (n > w)
			w = n;
	}
	fprintf(f, "\nOptions:\n");
	for (o = cmd->opts; o->name; o++) {
		snprintf(lhs, sizeof(lhs), "-%c, --%s%s%s", o->key, o->name, o->metavar ? " " : "",
			 o->metavar ? o->metavar : "");
		fprintf(f, "  %-*s  %s\n", w, lhs, o->help);
	}
}

static const struct ins_opt *ins_find_opt(const struct ins_cmd *cmd, int key)
{
	const struct ins_opt *o;

	for (o = cmd->opts; o->name; o++)
		if (o->key == key)
			return o;
	return NULL;
}

/* Say what was wrong with the option getopt_long() just refused. */
static void ins_bad_opt(const struct ins_ctx *c, const struct ins_cmd *cmd, int ret, int argc,
			char **argv)
{
	const char *a = optind >= 1 && optind <= argc ? argv[optind - 1] : "?";
	const struct ins_opt *o = ins_find_opt(cmd, optopt);
	size_t len;

	if (ret == ':') {
		if (o)
			ins_err(c, "option --%s needs an argument (%s)", o->name, o->metavar);
		else
			ins_err(c, "option '%s' needs an argument", a);
	} else if (!optopt) {
		ins_err(c, "unknown option '%s' (see svcplane %s --help)", a, cmd->name);
	} else if (o && !strncmp(a, "--", 2) && (len = strlen(o->name)) &&
		   !strncmp(a + 2, o->name, len) && a[2 + len] == '=') {
		ins_err(c, "option --%s takes no argument", o->name);
	} else {
		ins_err(c, "unknown option '-%c' (see svcplane %s --help)", optopt, cmd->name);
	}
}

/* Parse a decimal count: digits only, no sign, no overflow. */
static int ins_parse_ulong(const char *s, unsigned long *out)
{
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	*out = strtoul(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	return 0;
}

/*
 * Parse argv (argv[0] is the subcommand) by cmd's option table into *c.
 * Returns 0, 1 when --help was printed (the command then returns 0), or
 * -EINVAL after saying what was wrong.
 */
static int ins_parse(const struct ins_cmd *cmd, int argc, char **argv, struct ins_ctx *c)
{
	struct option lo[INS_MAX_OPTS + 1];
	char so[3 * INS_MAX_OPTS + 2], *p = so;
	const struct ins_opt *o;
	unsigned long ul;
	size_t n = 0, len;
	int ret;

	memset(c, 0, sizeof(*c));
	c->cmd = cmd->name;
	c->dir = SP_PIN_DIR_DEFAULT;

	memset(lo, 0, sizeof(lo));
	*p++ = ':'; /* report a missing argument as ':' rather than '?' */
	for (o = cmd->opts; o->name && n < INS_MAX_OPTS; o++, n++) {
		bool arg = o->kind == INS_OPT_STR || o->kind == INS_OPT_ULONG;

		lo[n].name = o->name;
		lo[n].has_arg = arg ? required_argument : no_argument;
		lo[n].val = o->key;
		*p++ = (char)o->key;
		if (arg)
			*p++ = ':';
	}
	*p = '\0';

	optind = 0; /* glibc: full re-initialisation, so commands can run twice */
	opterr = 0;
	while ((ret = getopt_long(argc, argv, so, lo, NULL)) != -1) {
		o = ret == '?' || ret == ':' ? NULL : ins_find_opt(cmd, ret);
		if (!o) {
			ins_bad_opt(c, cmd, ret, argc, argv);
			return -EINVAL;
		}
		switch (o->kind) {
		case INS_OPT_FLAG:
			*(bool *)((char *)c + o->off) = true;
			break;
		case INS_OPT_STR:
			*(const char **)((char *)c + o->off) = optarg;
			break;
		case INS_OPT_ULONG:
			if (ins_parse_ulong(optarg, &ul)) {
				ins_err(c, "--%s: '%s' is not a number", o->name, optarg);
				return -EINVAL;
			}
			*(unsigned long *)((char *)c + o->off) = ul;
			break;
		case INS_OPT_HELP:
			ins_usage(cmd, stdout);
			return 1;
		}
	}

	if (cmd->args && optind < argc)
		c->arg = argv[optind++];
	if (cmd->args2 && optind < argc)
		c->arg2 = argv[optind++];
	if (optind < argc) {
		ins_err(c, "unexpected argument '%s' (see svcplane %s --help)", argv[optind],
			cmd->name);
		return -EINVAL;
	}
	if (cmd->args && (!c->arg || !*c->arg)) {
		ins_err(c, "missing %s (see svcplane %s --help)", cmd->args, cmd->name);
		return -EINVAL;
	}
	if (cmd->args2 && (!c->arg2 || !*c->arg2)) {
		ins_err(c, "missing %s (see svcplane %s --help)", cmd->args2, cmd->name);
		return -EINVAL;
	}

	len = strlen(c->dir);
	while (len > 1 && c->dir[len - 1] == '/')
		len--;
	if (!len || len >= sizeof(c->dirbuf)) {
		ins_err(c, "--bpffs-dir: '%s' is not a usable directory name", c->dir);
		return -EINVAL;
	}
	memcpy(c->dirbuf, c->dir, len);
	c->dirbuf[len] = '\0';
	c->dir = c->dirbuf;
	return 0;
}

/* Flush what a command printed; a failed write is an error too. */
static int ins_flush(const struct ins_ctx *c)
{
	int err;

	if (fflush(stdout) == 0 && !ferror(stdout))
		return 0;
	err = errno ? -errno : -EIO;
	ins_err(c, "write output: %s", strerror(-err));
	return err;
}

/* ------------------------------------------------------------------------ */
/* Printing: addresses, growable strings, aligned tables, JSON              */
/* ------------------------------------------------------------------------ */

static bool addr_is_zero(const struct sp_addr *a)
{
	return !(a->addr[0] | a->addr[1] | a->addr[2] | a->addr[3]);
}

static const char *family_str(__u8 family)
{
	return family == SP_FAMILY_V4 ? "ipv4" : family == SP_FAMILY_V6 ? "ipv6" : "unknown";
}

/* "10.0.0.1", "fd00::1" (no brackets, no port). Returns buf. */
static const char *fmt_ip(const struct sp_addr *a, __u8 family, char *buf, size_t len)
{
	if (family != SP_FAMILY_V4 && family != SP_FAMILY_V6)
		snprintf(buf, len, "?family%u", family);
	else if (!inet_ntop(family == SP_FAMILY_V4 ? AF_INET : AF_INET6, a->addr, buf, len))
		snprintf(buf, len, "?");
	return buf;
}

/* "10.0.0.1:80", "[fd00::1]:80"; port in wire order. Returns buf. */
static const char *fmt_ipport(const struct sp_addr *a, __u8 family, __be16 port, char *buf,
			      size_t len)
{
	char ip[INS_IP_LEN];

	fmt_ip(a, family, ip, sizeof(ip));
	snprintf(buf, len, family == SP_FAMILY_V6 ? "[%s]:%u" : "%s:%u", ip, ntohs(port));
	return buf;
}

static const char *fmt_be(const struct sp_backend *b, char *buf, size_t len)
{
	return fmt_ipport(&b->addr, b->family, b->port, buf, len);
}

static const char *proto_str(__u8 proto, char *buf, size_t len)
{
	switch (proto) {
	case IPPROTO_TCP:
		return "tcp";
	case IPPROTO_UDP:
		return "udp";
	case IPPROTO_SCTP:
		return "sctp";
	}
	snprintf(buf, len, "proto%u", proto);
	return buf;
}

/* Frontend kinds, in the order they are listed. */
enum fe_kind { FE_CLUSTER, FE_EXTERNAL, FE_NODEPORT };
static const char *const fe_kind_names[] = { "cluster", "external", "nodeport" };

static enum fe_kind fe_kind(const struct sp_svc *v)
{
	if (v->flags & SP_SVC_F_NODEPORT)
		return FE_NODEPORT;
	return v->flags & SP_SVC_F_EXTERNAL ? FE_EXTERNAL : FE_CLUSTER;
}

/* A frontend no Service has any more, kept for its established TCP
 * connections (SP_SVC_F_GONE). */
static bool fe_gone(const struct sp_svc *v)
{
	return (v->flags & SP_SVC_F_GONE) != 0;
}

/* A NodePort wildcard frontend: served on every node address. */
static bool fe_is_wildcard(const struct sp_svc_key *k, const struct sp_svc *v)
{
	return (v->flags & SP_SVC_F_NODEPORT) && addr_is_zero(&k->addr);
}

/* "10.96.0.10:80/tcp", "*:30080/tcp", "203.0.113.7:80/tcp(ext)", and for an LB
 * IP filtered by loadBalancerSourceRanges "203.0.113.8:80/tcp(ext,ranges)".
 * Returns buf. */
static const char *fmt_frontend(const struct sp_svc_key *k, const struct sp_svc *v, char *buf,
				size_t len)
{
	char ap[INS_ADDR_LEN], pb[12];

	if (fe_is_wildcard(k, v))
		snprintf(ap, sizeof(ap), "*:%u", ntohs(k->port));
	else
		fmt_ipport(&k->addr, k->family, k->port, ap, sizeof(ap));
	snprintf(buf, len, "%s/%s%s", ap, proto_str(k->proto, pb, sizeof(pb)),
		 fe_kind(v) != FE_EXTERNAL		 ? "" :
		 v->flags & SP_SVC_F_SRC_RANGES ? "(ext,ranges)" :
						  "(ext)");
	return buf;
}

/* A growable string; out of memory sticks in .oom and is checked once. */
struct sbuf {
	char *s;
	size_t len, cap;
	bool oom;
};

static void __attribute__((format(printf, 2, 3))) sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	size_t room, cap;
	char *s;
	int n;

	while (!b->oom) {
		room = b->cap - b->len;
		va_start(ap, fmt);
		n = vsnprintf(b->s ? b->s + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			break;
		}
		if ((size_t)n < room) {
			b->len += n;
			break;
		}
		for (cap = b->cap ? b->cap : 128; cap - b->len <= (size_t)n; cap *= 2)
			;
		s = realloc(b->s, cap);
		if (!s) {
			b->oom = true;
			break;
		}
		b->s = s;
		b->cap = cap;
	}
}

static const char *sb_str(const struct sbuf *b)
{
	return b->s ? b->s : "";
}

/*
 * An aligned plain-text table: measure every row, then print the header
 * and every row again. Columns are separated by two spaces; 'r' columns
 * are right-aligned; the last column is never padded.
 */
struct tab {
	int ncols;
	const char *const *head;
	const char *align; /* one 'l' or 'r' per column */
	size_t w[INS_MAX_COLS];
};

static void tab_init(struct tab *t, const char *const *head, int ncols, const char *align)
{
	int i;

	t->ncols = ncols < INS_MAX_COLS ? ncols : INS_MAX_COLS;
	t->head = head;
	t->align = align;
	for (i = 0; i < t->ncols; i++)
		t->w[i] = strlen(head[i]);
}

static void tab_measure(struct tab *t, const char *const *cells)
{
	int i;

	for (i = 0; i < t->ncols; i++)
		if (strlen(cells[i]) > t->w[i])
			t->w[i] = strlen(cells[i]);
}

static void tab_row(const struct tab *t, const char *const *cells)
{
	int i;

	for (i = 0; i < t->ncols; i++) {
		bool last = i == t->ncols - 1;
		int w = (int)t->w[i];

		if (t->align[i] == 'r')
			printf("%*s", w, cells[i]);
		else
			printf("%-*s", last ? 0 : w, cells[i]);
		fputs(last ? "\n" : "  ", stdout);
	}
}

static void tab_head(const struct tab *t)
{
	tab_row(t, t->head);
}

/* Add v under k; v == NULL means json-c ran out of memory. Returns 0 or -ENOMEM. */
static int jset(struct json_object *o, const char *k, struct json_object *v)
{
	if (!v)
		return -ENOMEM;
	if (json_object_object_add(o, k, v)) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

static int jset_null(struct json_object *o, const char *k)
{
	return json_object_object_add(o, k, NULL) ? -ENOMEM : 0;
}

static int jpush(struct json_object *a, struct json_object *v)
{
	if (!v)
		return -ENOMEM;
	if (json_object_array_add(a, v)) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

#define jstr(s) json_object_new_string(s)
#define ju64(v) json_object_new_uint64(v)
#define ji64(v) json_object_new_int64(v)
#define jbool(v) json_object_new_boolean(v)

/* Print o pretty and release it. Returns 0 or -ENOMEM. */
static int jprint(const struct ins_ctx *c, struct json_object *o)
{
	const char *s;

	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
						      JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!s) {
		ins_err(c, "format JSON: %s", strerror(ENOMEM));
		json_object_put(o);
		return -ENOMEM;
	}
	puts(s);
	json_object_put(o);
	return 0;
}

/* {"address": "10.0.0.1", "port": 80, "family": "ipv4"} into o. */
static int jset_ipport(struct json_object *o, const struct sp_addr *a, __u8 family, __be16 port)
{
	char ip[INS_ADDR_LEN];
	int err = 0;

	err = err ?: jset(o, "address", jstr(fmt_ip(a, family, ip, sizeof(ip))));
	err = err ?: jset(o, "port", ji64(ntohs(port)));
	err = err ?: jset(o, "family", jstr(family_str(family)));
	return err;
}

/* ------------------------------------------------------------------------ */
/* Map access                                                               */
/* ------------------------------------------------------------------------ */

enum ins_map {
	INS_SERVICES,
	INS_BACKENDS,
	INS_MAGLEV,
	INS_CT4,
	INS_CT6,
	INS_NODE_ADDRS,
	INS_STATS,
	INS_REASONS,
	INS_SVC_STATS,
	INS_SVC_META,
	INS_NMAPS,
};

/* What bpf/maps.h declares: a pinned map must match before we read it. */
static const struct ins_map_abi {
	const char *name;
	enum bpf_map_type type;
	__u32 key_size;
	__u32 value_size;
} ins_abi[INS_NMAPS] = {
	[INS_SERVICES] = { SP_MAP_SERVICES, BPF_MAP_TYPE_HASH, sizeof(struct sp_svc_key),
			   sizeof(struct sp_svc) },
	[INS_BACKENDS] = { SP_MAP_BACKENDS, BPF_MAP_TYPE_ARRAY, sizeof(__u32),
			   sizeof(struct sp_backend) },
	[INS_MAGLEV] = { SP_MAP_MAGLEV, BPF_MAP_TYPE_ARRAY, sizeof(__u32),
			 sizeof(struct sp_maglev_chunk) },
	[INS_CT4] = { SP_MAP_CT4, BPF_MAP_TYPE_LRU_HASH, sizeof(struct sp_ct4_key),
		      sizeof(struct sp_ct4_val) },
	[INS_CT6] = { SP_MAP_CT6, BPF_MAP_TYPE_LRU_HASH, sizeof(struct sp_ct_key),
		      sizeof(struct sp_ct_entry) },
	[INS_NODE_ADDRS] = { SP_MAP_NODE_ADDRS, BPF_MAP_TYPE_HASH, sizeof(struct sp_node_addr_key),
			     sizeof(__u8) },
	[INS_STATS] = { SP_MAP_STATS, BPF_MAP_TYPE_PERCPU_ARRAY, sizeof(__u32),
			sizeof(struct sp_stats) },
	[INS_REASONS] = { SP_MAP_REASONS, BPF_MAP_TYPE_PERCPU_ARRAY, sizeof(__u32),
			  sizeof(struct sp_reason_count) },
	[INS_SVC_STATS] = { SP_MAP_SVC_STATS, BPF_MAP_TYPE_PERCPU_ARRAY, sizeof(__u32),
			    sizeof(struct sp_svc_stats) },
	[INS_SVC_META] = { SP_MAP_SVC_META, BPF_MAP_TYPE_HASH, sizeof(__u32),
			   sizeof(struct sp_svc_meta) },
};

/* Per-CPU values are summed field by field: they must be all __u64. */
_Static_assert(sizeof(struct sp_stats) % 8 == 0, "sp_stats is __u64 fields");
_Static_assert(sizeof(struct sp_reason_count) % 8 == 0, "sp_reason_count is __u64 fields");
_Static_assert(sizeof(struct sp_svc_stats) % 8 == 0, "sp_svc_stats is __u64 fields");
_Static_assert(sizeof(struct sp_ct_key) <= INS_MAX_KEY, "INS_MAX_KEY covers every key");
_Static_assert(SP_MAGLEV_CHUNK_WORDS % 2 == 0, "a backend id never straddles a chunk");

static const char *map_type_str(__u32 type, char *buf, size_t len)
{
	const char *s = libbpf_bpf_map_type_str(type);

	if (s)
		return s;
	snprintf(buf, len, "type%u", type);
	return buf;
}

/* Does a pinned map match ins_abi[m]? Returns 0, or -EPROTO with why filled in. */
static int abi_check(enum ins_map m, const struct bpf_map_info *info, char *why, size_t len)
{
	const struct ins_map_abi *a = &ins_abi[m];
	char t1[24], t2[24];

	if (info->type != (__u32)a->type)
		snprintf(why, len, "type %s, expected %s", map_type_str(info->type, t1, sizeof(t1)),
			 map_type_str(a->type, t2, sizeof(t2)));
	else if (info->key_size != a->key_size)
		snprintf(why, len, "key size %u, expected %u", info->key_size, a->key_size);
	else if (info->value_size != a->value_size)
		snprintf(why, len, "value size %u, expected %u", info->value_size, a->value_size);
	else
		return 0;
	return -EPROTO;
}

/* What to add to "open pinned map X: <error>" so the reader knows what to do. */
static const char *open_hint(int err)
{
	if (err == -ENOENT)
		return " (is the daemon running? try --bpffs-dir)";
	if (err == -EPERM || err == -EACCES)
		return " (needs root or CAP_BPF)";
	return "";
}

static int pin_path(const struct ins_ctx *c, const char *name, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s", c->dir, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Pinned maps opened so far, and what the Service view collected. */
struct svc_rec {
	struct sp_svc_key k;
	struct sp_svc v;
};

struct be_rec {
	__u32 id;
	struct sp_backend b;
};

struct meta_rec {
	__u32 id;
	struct sp_svc_meta m;
};

struct svc_view {
	__u32 svc_id;
	const char *name; /* from sp_svc_meta; NULL when it has none */
	const struct svc_rec *fe; /* its frontends, sorted by kind then address */
	size_t n_fe;
	struct sp_svc v; /* shape (region, m, n, flags) from the first frontend */
	__u32 *ids; /* v.n backend ids from the region; NULL if n == 0 or unreadable */
	__u32 *entries; /* v.n: table entries per backend (0: draining, weight 0) */
	bool ids_bad; /* region could not be read */
	struct sp_svc_stats st;
};

struct ins_state {
	const struct ins_ctx *c;
	int fd[INS_NMAPS];
	struct bpf_map_info info[INS_NMAPS];
	int ncpus;
	void *pcpu; /* ncpus * value buffer for per-CPU lookups */
	struct svc_rec *fe;
	size_t n_fe;
	struct be_rec *be; /* sorted by id */
	size_t n_be;
	struct meta_rec *meta; /* sorted by id */
	size_t n_meta;
	struct svc_view *views; /* sorted by name, then svc_id */
	size_t n_views;
};

static void ins_state_init(struct ins_state *st, const struct ins_ctx *c)
{
	int i;

	memset(st, 0, sizeof(*st));
	st->c = c;
	for (i = 0; i < INS_NMAPS; i++)
		st->fd[i] = -1;
}

static void ins_state_free(struct ins_state *st)
{
	size_t i;

	for (i = 0; i < INS_NMAPS; i++)
		if (st->fd[i] >= 0)
			close(st->fd[i]);
	for (i = 0; i < st->n_views; i++) {
		free(st->views[i].ids);
		free(st->views[i].entries);
	}
	free(st->views);
	free(st->fe);
	free(st->be);
	free(st->meta);
	free(st->pcpu);
}

/*
 * Open pinned map m (once) and check it has the layout this binary reads:
 * a map from another ABI version would print garbage. Returns 0 or -errno,
 * after saying what failed.
 */
static int ins_open(struct ins_state *st, enum ins_map m)
{
	const struct ins_ctx *c = st->c;
	__u32 len = sizeof(st->info[m]);
	char path[PATH_MAX], why[96];
	int fd, err;

	if (st->fd[m] >= 0)
		return 0;
	err = pin_path(c, ins_abi[m].name, path, sizeof(path));
	if (err) {
		ins_err(c, "pin path %s/%s: %s", c->dir, ins_abi[m].name, strerror(-err));
		return err;
	}
	fd = bpf_obj_get(path);
	if (fd < 0) {
		err = fd;
		ins_err(c, "open pinned map %s: %s%s", path, strerror(-err), open_hint(err));
		return err;
	}
	memset(&st->info[m], 0, sizeof(st->info[m]));
	err = bpf_obj_get_info_by_fd(fd, &st->info[m], &len);
	if (err) {
		ins_err(c, "get info of map %s: %s", path, strerror(-err));
		close(fd);
		return err;
	}
	err = abi_check(m, &st->info[m], why, sizeof(why));
	if (err) {
		ins_err(c, "pinned map %s: %s (daemon built from another svcplane version?)", path,
			why);
		close(fd);
		return err;
	}
	st->fd[m] = fd;
	return 0;
}

/*
 * Room for one more element of sz bytes in arr (n used, *cap allocated),
 * doubling from `first` when full. Returns the array (perhaps moved), or
 * NULL when out of memory (arr is then untouched and still owned).
 */
static void *grow_array(void *arr, size_t n, size_t *cap, size_t sz, size_t first)
{
	size_t ncap;

	if (n < *cap)
		return arr;
	ncap = *cap ? 2 * *cap : first;
	arr = reallocarray(arr, ncap, sz);
	if (arr)
		*cap = ncap;
	return arr;
}

/* Append a zeroed element to the typed array *arrp of *np elements: a
 * pointer to it, or NULL when out of memory. */
#define APPEND_ZEROED(arrp, np, capp, first)                                               \
	({                                                                                 \
		typeof(*(arrp)) ___a = grow_array(*(arrp), *(np), (capp), sizeof(**(arrp)), \
						  (first));                                \
		if (___a) {                                                                \
			*(arrp) = ___a;                                                    \
			memset(&___a[*(np)], 0, sizeof(*___a));                            \
		}                                                                          \
		___a ? &___a[(*(np))++] : NULL;                                            \
	})

/* Where key and value sit in a record type (see INS_LAYOUT). */
struct ins_layout {
	size_t size;
	size_t koff, ksz;
	size_t voff, vsz;
};

#define INS_LAYOUT(type, k, v)                                                             \
	{ sizeof(type), offsetof(type, k), sizeof(((type *)0)->k), offsetof(type, v),       \
	  sizeof(((type *)0)->v) }

static int cmp_rec_key(const void *a, const void *b, void *arg)
{
	const struct ins_layout *l = arg;

	return memcmp((const char *)a + l->koff, (const char *)b + l->koff, l->ksz);
}

/*
 * Read every entry of hash map m into a new array of records laid out as l,
 * sorted by key bytes, each key once. Returns 0 or -errno.
 *
 * The walk is not a snapshot. An entry deleted between get_next_key and
 * lookup is skipped. If the key we hold is deleted meanwhile (LRU eviction
 * in conntrack), the kernel restarts from the first key, so an entry may come
 * twice: the sort drops duplicates. The walk stops after max_entries records,
 * or after 4 * max_entries steps if the map keeps changing under us.
 */
/* Entries per BPF_MAP_LOOKUP_BATCH call. */
#define INS_BATCH 4096

/* The kernel or the map type has no batch lookup: ENOTSUPP (524) is the
 * kernel's own code, which reaches user space as it is. */
static bool batch_unsupported(int err)
{
	return err == -EINVAL || err == -EOPNOTSUPP || err == -524;
}

/*
 * The records of map m by BPF_MAP_LOOKUP_BATCH (Linux 5.6): a system call
 * per INS_BATCH entries instead of two per entry, which is most of what
 * `services` costs at 10,000 Services and 100,000 backends. Appends to
 * *recs (*n records, *cap allocated). Returns 0, -EOPNOTSUPP if the first
 * call says batches are not supported (the caller walks key by key), or
 * -errno after saying what failed.
 */
static int ins_dump_batch(struct ins_state *st, enum ins_map m, const struct ins_layout *l,
			  unsigned char **recs, size_t *n, size_t *cap)
{
	size_t max = st->info[m].max_entries, i;
	/* Zeroed, tokens too: valgrind does not know what this command
	 * writes, and would call every record read from it undefined. */
	unsigned char *keys = calloc(INS_BATCH, l->ksz), *vals = calloc(INS_BATCH, l->vsz);
	__u64 in_tok[INS_MAX_KEY / 8] = { 0 }, out_tok[INS_MAX_KEY / 8] = { 0 };
	const struct ins_ctx *c = st->c;
	unsigned char *tmp, *rec;
	bool first = true;
	int err = -ENOMEM;

	if (!keys || !vals)
		goto out;
	for (;;) {
		LIBBPF_OPTS(bpf_map_batch_opts, o);
		__u32 count = INS_BATCH;

		err = bpf_map_lookup_batch(st->fd[m], first ? NULL : in_tok, out_tok, keys, vals,
					   &count, &o);
		if (err && err != -ENOENT) {
			if (first && batch_unsupported(err)) {
				err = -EOPNOTSUPP;
				goto out;
			}
			ins_err(c, "read map %s/%s: %s", c->dir, ins_abi[m].name, strerror(-err));
			goto out;
		}
		/* -ENOENT: the last batch, count entries in it. */
		for (i = 0; i < count; i++) {
			tmp = grow_array(*recs, *n, cap, l->size, 64);
			if (!tmp) {
				err = -ENOMEM;
				ins_err(c, "read map %s: %s", ins_abi[m].name, strerror(ENOMEM));
				goto out;
			}
			*recs = tmp;
			rec = tmp + *n * l->size;
			memset(rec, 0, l->size);
			memcpy(rec + l->koff, keys + i * l->ksz, l->ksz);
			memcpy(rec + l->voff, vals + i * l->vsz, l->vsz);
			++*n;
		}
		/* A map that grows while we read cannot keep us reading. */
		if (err == -ENOENT || !count || *n >= max + INS_BATCH) {
			err = 0;
			break;
		}
		memcpy(in_tok, out_tok, sizeof(in_tok));
		first = false;
	}
out:
	free(keys);
	free(vals);
	return err;
}

static int ins_dump(struct ins_state *st, enum ins_map m, const struct ins_layout *l, void **out,
		    size_t *n_out)
{
	unsigned char key[INS_MAX_KEY], prev[INS_MAX_KEY], *recs = NULL, *rec, *tmp;
	size_t max = st->info[m].max_entries, n = 0, cap = 0, steps = 0, i, j;
	const struct ins_ctx *c = st->c;
	bool first = true, walk;
	int err;

	err = ins_dump_batch(st, m, l, &recs, &n, &cap);
	if (err && err != -EOPNOTSUPP)
		goto fail;
	/* Without batches: key by key (recs is then still empty). */
	walk = err == -EOPNOTSUPP;
	while (walk && n < max && steps++ < 4 * max + 16) {
		err = bpf_map_get_next_key(st->fd[m], first ? NULL : prev, key);
		if (err == -ENOENT)
			break;
		if (err) {
			ins_err(c, "walk map %s/%s: %s", c->dir, ins_abi[m].name, strerror(-err));
			goto fail;
		}
		memcpy(prev, key, l->ksz);
		first = false;
		tmp = grow_array(recs, n, &cap, l->size, 64);
		if (!tmp) {
			err = -ENOMEM;
			ins_err(c, "read map %s: %s", ins_abi[m].name, strerror(-err));
			goto fail;
		}
		recs = tmp;
		rec = recs + n * l->size;
		memset(rec, 0, l->size);
		memcpy(rec + l->koff, key, l->ksz);
		err = bpf_map_lookup_elem(st->fd[m], key, rec + l->voff);
		if (err == -ENOENT)
			continue; /* deleted since get_next_key */
		if (err) {
			ins_err(c, "read map %s/%s entry: %s", c->dir, ins_abi[m].name,
				strerror(-err));
			goto fail;
		}
		n++;
	}
	if (n > 1) {
		/* Sorted and de-duplicated: a batch or a walk that raced with
		 * the daemon may have seen an entry twice. */
		qsort_r(recs, n, l->size, cmp_rec_key, (void *)l);
		for (i = 1, j = 1; i < n; i++) {
			if (!cmp_rec_key(recs + i * l->size, recs + (j - 1) * l->size, (void *)l))
				continue;
			if (i != j)
				memcpy(recs + j * l->size, recs + i * l->size, l->size);
			j++;
		}
		n = j;
	}
	*out = recs;
	*n_out = n;
	return 0;
fail:
	free(recs);
	return err;
}

/*
 * Sum the per-CPU values at key in PERCPU array m (all fields __u64) into
 * out (value_size bytes). A key past the end reads as zero. Returns 0 or -errno.
 */
static int ins_percpu(struct ins_state *st, enum ins_map m, __u32 key, void *out)
{
	size_t vsz = ins_abi[m].value_size, words = vsz / 8, cpu, w;
	const struct ins_ctx *c = st->c;
	__u64 sum[32] = { 0 }, v;
	int err;

	_Static_assert(sizeof(struct sp_stats) <= sizeof(sum), "sum holds every value");
	if (!st->ncpus) {
		err = libbpf_num_possible_cpus();
		if (err < 0) {
			ins_err(c, "count possible CPUs: %s", strerror(-err));
			return err;
		}
		st->ncpus = err;
	}
	if (!st->pcpu) {
		/* Big enough for any of our per-CPU values (each rounded to 8 bytes). */
		st->pcpu = calloc(st->ncpus, sizeof(sum));
		if (!st->pcpu) {
			ins_err(c, "read map %s: %s", ins_abi[m].name, strerror(ENOMEM));
			return -ENOMEM;
		}
	}
	err = bpf_map_lookup_elem(st->fd[m], &key, st->pcpu);
	if (err == -ENOENT) {
		memset(out, 0, vsz);
		return 0;
	}
	if (err) {
		ins_err(c, "read map %s/%s key %u: %s", c->dir, ins_abi[m].name, key,
			strerror(-err));
		return err;
	}
	for (cpu = 0; cpu < (size_t)st->ncpus; cpu++) {
		for (w = 0; w < words; w++) {
			memcpy(&v, (char *)st->pcpu + cpu * vsz + w * 8, 8);
			sum[w] += v;
		}
	}
	memcpy(out, sum, vsz);
	return 0;
}

/*
 * The chunks of a region in one BPF_MAP_LOOKUP_BATCH (an array's batch
 * starts after the key in_batch names): one system call per Service
 * instead of one per 64 bytes. Returns 0 if it read them all, else
 * non-zero and the caller reads chunk by chunk (which reports errors).
 */
static int ins_read_chunks_batch(struct ins_state *st, __u32 region, size_t chunks, __u16 *out,
				 size_t nwords)
{
	struct sp_maglev_chunk *ch = calloc(chunks, sizeof(*ch));
	__u32 *keys = calloc(chunks, sizeof(*keys)), prev = region - 1, next = 0, count = chunks;
	LIBBPF_OPTS(bpf_map_batch_opts, o);
	int err = -ENOMEM;

	if (ch && keys) {
		err = bpf_map_lookup_batch(st->fd[INS_MAGLEV], region ? &prev : NULL, &next, keys,
					   ch, &count, &o);
		if (err == -ENOENT && count == chunks)
			err = 0; /* the region ends the map */
		if (!err && (count != chunks || keys[0] != region))
			err = -EIO;
		if (!err)
			memcpy(out, ch, nwords * sizeof(*out));
	}
	free(ch);
	free(keys);
	return err;
}

/*
 * Read the first nwords 16-bit words of the Maglev region starting at chunk
 * region into out. Returns 0 or -errno (-ERANGE if it lies past sp_maglev).
 */
static int ins_read_region(struct ins_state *st, __u32 region, size_t nwords, __u16 *out)
{
	size_t max = st->info[INS_MAGLEV].max_entries, chunks, i, k;
	const struct ins_ctx *c = st->c;
	struct sp_maglev_chunk ch;
	__u32 key;
	int err;

	chunks = DIV_ROUND_UP(nwords, SP_MAGLEV_CHUNK_WORDS);
	if (region >= max || chunks > max - region) {
		ins_err(c, "Maglev region at chunk %u (%zu chunk%s) lies past the end of %s "
			   "(%zu chunks)",
			region, chunks, chunks == 1 ? "" : "s", SP_MAP_MAGLEV, max);
		return -ERANGE;
	}
	if (!ins_read_chunks_batch(st, region, chunks, out, nwords))
		return 0;
	for (i = 0; i < chunks; i++) {
		key = region + (__u32)i;
		err = bpf_map_lookup_elem(st->fd[INS_MAGLEV], &key, &ch);
		if (err) {
			ins_err(c, "read %s/%s chunk %u: %s", c->dir, SP_MAP_MAGLEV, key,
				strerror(-err));
			return err;
		}
		k = nwords - i * SP_MAGLEV_CHUNK_WORDS;
		if (k > SP_MAGLEV_CHUNK_WORDS)
			k = SP_MAGLEV_CHUNK_WORDS;
		memcpy(out + i * SP_MAGLEV_CHUNK_WORDS, ch.w, k * sizeof(__u16));
	}
	return 0;
}

/* Backend id i of a region: two words, low half first. */
static __u32 region_id(const __u16 *words, size_t i)
{
	return (__u32)words[2 * i] | (__u32)words[2 * i + 1] << 16;
}

/* ------------------------------------------------------------------------ */
/* The Service view: frontends grouped by svc_id, with names and backends    */
/* ------------------------------------------------------------------------ */

static int cmp_fe(const void *a, const void *b)
{
	const struct svc_rec *x = a, *y = b;

	if (x->v.svc_id != y->v.svc_id)
		return x->v.svc_id < y->v.svc_id ? -1 : 1;
	/* a removed port's retained frontends apart from the live ones */
	if (fe_gone(&x->v) != fe_gone(&y->v))
		return fe_gone(&x->v) ? 1 : -1;
	if (fe_kind(&x->v) != fe_kind(&y->v))
		return (int)fe_kind(&x->v) - (int)fe_kind(&y->v);
	if (x->k.family != y->k.family)
		return (int)x->k.family - (int)y->k.family;
	return memcmp(&x->k, &y->k, sizeof(x->k)); /* wire order: numeric */
}

static int cmp_u32_first(const void *a, const void *b)
{
	__u32 x, y;

	memcpy(&x, a, sizeof(x));
	memcpy(&y, b, sizeof(y));
	return x < y ? -1 : x > y;
}

static int cmp_view(const void *a, const void *b)
{
	const struct svc_view *x = a, *y = b;
	int r;

	if (x->name && y->name && (r = strcmp(x->name, y->name)))
		return r;
	if (!x->name != !y->name)
		return x->name ? -1 : 1; /* unnamed last */
	return x->svc_id < y->svc_id ? -1 : x->svc_id > y->svc_id;
}

static const struct be_rec *find_backend(const struct ins_state *st, __u32 id)
{
	if (!st->n_be)
		return NULL; /* bsearch() wants a non-NULL base */
	return bsearch(&id, st->be, st->n_be, sizeof(*st->be), cmp_u32_first);
}

static const struct meta_rec *find_meta(const struct ins_state *st, __u32 id)
{
	if (!st->n_meta)
		return NULL;
	return bsearch(&id, st->meta, st->n_meta, sizeof(*st->meta), cmp_u32_first);
}

/* qsort() for arrays that may be empty (and NULL). */
static void sort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
	if (n > 1)
		qsort(base, n, size, cmp);
}

#define INS_W_IDS (1u << 0) /* read each Service's backend ids from its region */
#define INS_W_STATS (1u << 1) /* read sp_svc_stats */

/*
 * Build st->views: one per svc_id found in sp_services, named from
 * sp_svc_meta, with backends (INS_W_IDS) and counters (INS_W_STATS).
 * A region that cannot be read is reported and leaves that view's ids
 * NULL (ids_bad): one broken Service does not hide the others.
 * Returns 0 or -errno.
 */
static int ins_load_views(struct ins_state *st, unsigned int what)
{
	static const struct ins_layout svc_l = INS_LAYOUT(struct svc_rec, k, v);
	static const struct ins_layout be_l = INS_LAYOUT(struct be_rec, id, b);
	static const struct ins_layout meta_l = INS_LAYOUT(struct meta_rec, id, m);
	const struct meta_rec *mr;
	struct svc_view *v;
	__u16 *words;
	size_t i, j, n;
	int err;

	err = ins_open(st, INS_SERVICES);
	err = err ?: ins_open(st, INS_BACKENDS);
	err = err ?: ins_open(st, INS_SVC_META);
	if (!err && (what & INS_W_IDS))
		err = ins_open(st, INS_MAGLEV);
	if (!err && (what & INS_W_STATS))
		err = ins_open(st, INS_SVC_STATS);
	err = err ?: ins_dump(st, INS_SERVICES, &svc_l, (void **)&st->fe, &st->n_fe);
	err = err ?: ins_dump(st, INS_BACKENDS, &be_l, (void **)&st->be, &st->n_be);
	err = err ?: ins_dump(st, INS_SVC_META, &meta_l, (void **)&st->meta, &st->n_meta);
	if (err)
		return err;
	/* An array: the entries of family 0 hold no backend. */
	for (i = j = 0; i < st->n_be; i++)
		if (st->be[i].b.family)
			st->be[j++] = st->be[i];
	st->n_be = j;
	/* Keys are host-order __u32: byte order is not numeric order. */
	sort(st->be, st->n_be, sizeof(*st->be), cmp_u32_first);
	sort(st->meta, st->n_meta, sizeof(*st->meta), cmp_u32_first);
	for (i = 0; i < st->n_meta; i++)
		st->meta[i].m.name[SP_SVC_NAME_LEN - 1] = '\0';
	/* A cluster-view key (an externalTrafficPolicy: Local Service's
	 * "/all" set) is the frontend's own address and family; its value
	 * says it is the view (SP_SVC_F_CLUSTER_VIEW). */
	for (i = 0; i < st->n_fe; i++)
		st->fe[i].k.family &= (__u8)~SP_FAMILY_VIEW;
	sort(st->fe, st->n_fe, sizeof(*st->fe), cmp_fe);

	for (i = 0, n = 0; i < st->n_fe; i++)
		if (!i || st->fe[i].v.svc_id != st->fe[i - 1].v.svc_id ||
		    fe_gone(&st->fe[i].v) != fe_gone(&st->fe[i - 1].v))
			n++;
	st->views = calloc(n ? n : 1, sizeof(*st->views));
	if (!st->views) {
		ins_err(st->c, "read Services: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	for (i = 0; i < st->n_fe; i = j) {
		for (j = i + 1; j < st->n_fe && st->fe[j].v.svc_id == st->fe[i].v.svc_id &&
				fe_gone(&st->fe[j].v) == fe_gone(&st->fe[i].v);
		     j++)
			;
		v = &st->views[st->n_views++];
		v->svc_id = st->fe[i].v.svc_id;
		v->fe = &st->fe[i];
		v->n_fe = j - i;
		v->v = st->fe[i].v;
		mr = find_meta(st, v->svc_id);
		v->name = mr ? mr->m.name : NULL;
	}

	for (i = 0; i < st->n_views; i++) {
		v = &st->views[i];
		if (what & INS_W_STATS) {
			err = ins_percpu(st, INS_SVC_STATS, v->svc_id, &v->st);
			if (err)
				return err;
		}
		if (!(what & INS_W_IDS) || !v->v.n)
			continue;
		/* The ids and the table: the entry counts tell an active backend
		 * from a draining one (terminating, weight 0: no new flows). */
		words = calloc(2 * (size_t)v->v.n + v->v.m, sizeof(*words));
		v->ids = calloc(v->v.n, sizeof(*v->ids));
		v->entries = calloc(v->v.n, sizeof(*v->entries));
		if (!words || !v->ids || !v->entries) {
			free(words);
			ins_err(st->c, "read Maglev regions: %s", strerror(ENOMEM));
			return -ENOMEM;
		}
		if (ins_read_region(st, v->v.region, 2 * (size_t)v->v.n + v->v.m, words)) {
			free(v->ids);
			v->ids = NULL;
			v->ids_bad = true;
		} else {
			for (j = 0; j < v->v.n; j++)
				v->ids[j] = region_id(words, j);
			for (j = 0; j < v->v.m; j++)
				if (words[2 * v->v.n + j] < v->v.n)
					v->entries[words[2 * v->v.n + j]]++;
		}
		free(words);
	}
	sort(st->views, st->n_views, sizeof(*st->views), cmp_view);
	return 0;
}

static const char *view_name(const struct svc_view *v, char *buf, size_t len)
{
	if (v->name && *v->name)
		return v->name;
	if (fe_gone(&v->v))
		snprintf(buf, len, "(deleted Service, svc_id %u)", v->svc_id);
	else
		snprintf(buf, len, "(svc_id %u: no metadata)", v->svc_id);
	return buf;
}

/* ------------------------------------------------------------------------ */
/* services                                                                 */
/* ------------------------------------------------------------------------ */

static int services_json(struct ins_state *st)
{
	struct json_object *arr, *o = NULL, *a = NULL, *e = NULL;
	char pb[12], name[64];
	const struct be_rec *be;
	size_t i, j;
	int err = 0;

	arr = json_object_new_array();
	if (!arr)
		return -ENOMEM;
	for (i = 0; i < st->n_views && !err; i++) {
		const struct svc_view *v = &st->views[i];
		const struct sp_svc_key *k0 = &v->fe[0].k;

		o = json_object_new_object();
		err = jpush(arr, o);
		if (!err && v->name)
			err = jset(o, "name", jstr(view_name(v, name, sizeof(name))));
		else if (!err)
			err = jset_null(o, "name");
		err = err ?: jset(o, "svc_id", ji64(v->svc_id));
		err = err ?: jset(o, "family", jstr(family_str(k0->family)));
		err = err ?: jset(o, "protocol", jstr(proto_str(k0->proto, pb, sizeof(pb))));
		err = err ?: jset(o, "frontends", a = json_object_new_array());
		for (j = 0; j < v->n_fe && !err; j++) {
			const struct svc_rec *f = &v->fe[j];

			err = jpush(a, e = json_object_new_object());
			err = err ?: jset_ipport(e, &f->k.addr, f->k.family, f->k.port);
			if (!err && fe_is_wildcard(&f->k, &f->v))
				err = jset(e, "address", jstr("*")); /* replaces 0.0.0.0 / :: */
			err = err ?: jset(e, "protocol",
					  jstr(proto_str(f->k.proto, pb, sizeof(pb))));
			err = err ?: jset(e, "kind", jstr(fe_kind_names[fe_kind(&f->v)]));
			/* new flows only from loadBalancerSourceRanges (sp_src_ranges) */
			err = err ?: jset(e, "source_ranges",
					  jbool(!!(f->v.flags & SP_SVC_F_SRC_RANGES)));
		}
		/* kept for established connections only (SP_SVC_F_GONE) */
		err = err ?: jset(o, "deleted", jbool(fe_gone(&v->v)));
		err = err ?: jset(o, "backend_count", ji64(v->v.n));
		if (!err && v->ids_bad)
			err = jset_null(o, "backends");
		else
			err = err ?: jset(o, "backends", a = json_object_new_array());
		for (j = 0; v->ids && j < v->v.n && !err; j++) {
			err = jpush(a, e = json_object_new_object());
			err = err ?: jset(e, "id", ji64(v->ids[j]));
			err = err ?: jset(e, "maglev_entries", ji64(v->entries[j]));
			be = find_backend(st, v->ids[j]);
			if (be) {
				err = err ?: jset_ipport(e, &be->b.addr, be->b.family, be->b.port);
			} else {
				err = err ?: jset_null(e, "address");
				err = err ?: jset(e, "missing", jbool(true));
			}
		}
		err = err ?: jset(o, "maglev_m", ji64(v->v.m));
		err = err ?: jset(o, "region", ji64(v->v.region));
		err = err ?: jset(o, "session_affinity",
				  jbool(!!(v->v.flags & SP_SVC_F_AFFINITY)));
		err = err ?: jset(o, "local_only", jbool(!!(v->v.flags & SP_SVC_F_LOCAL_ONLY)));
		if (!err && (v->v.flags & SP_SVC_F_AFFINITY))
			err = jset(o, "affinity_timeout", ji64(v->v.affinity_timeout));
		err = err ?: jset(o, "stats", e = json_object_new_object());
		err = err ?: jset(e, "packets", ju64(v->st.packets));
		err = err ?: jset(e, "bytes", ju64(v->st.bytes));
		err = err ?: jset(e, "new_flows", ju64(v->st.new_flows));
		err = err ?: jset(e, "rejects", ju64(v->st.rejects));
		err = err ?: jset(e, "drops", ju64(v->st.drops));
	}
	if (err) {
		json_object_put(arr);
		ins_err(st->c, "build JSON: %s", strerror(-err));
		return err;
	}
	return jprint(st->c, arr);
}

/* "10.244.1.5:8080 (id 3), ..." for the line under a Service: at most
 * INS_TEXT_BACKENDS of them unless --all-backends, then how many more. */
static void fmt_view_backends(const struct ins_state *st, const struct svc_view *v,
			      struct sbuf *b)
{
	size_t j, show = v->v.n;
	char ap[INS_ADDR_LEN];
	const struct be_rec *be;

	if (v->ids_bad) {
		sb_printf(b, "unreadable (see the error above)");
		return;
	}
	if (fe_gone(&v->v)) {
		sb_printf(b, "none: deleted from the Service, kept only for the TCP connections "
			     "established through it until none is left");
		return;
	}
	if (!v->v.n) {
		sb_printf(b, "none: new connections are rejected");
		return;
	}
	if (!st->c->all_backends && show > INS_TEXT_BACKENDS)
		show = INS_TEXT_BACKENDS;
	for (j = 0; j < show; j++) {
		be = find_backend(st, v->ids[j]);
		if (be)
			sb_printf(b, "%s%s (id %u%s)", j ? ", " : "", fmt_be(&be->b, ap, sizeof(ap)),
				  v->ids[j], v->entries[j] ? "" : ", draining: no new flows");
		else
			sb_printf(b, "%s(missing id %u)", j ? ", " : "", v->ids[j]);
	}
	if (show < v->v.n)
		sb_printf(b, " ... and %zu more of %u (--all-backends)", v->v.n - show, v->v.n);
}

static int services_text(struct ins_state *st)
{
	static const char *const head[] = { "NAME",    "ID",        "N",       "M",
					    "PACKETS", "BYTES",     "NEW_FLOWS", "REJECTS",
					    "DROPS",   "FRONTENDS" };
	char id[INS_NUM_LEN], n[INS_NUM_LEN], m[INS_NUM_LEN], pk[INS_NUM_LEN], by[INS_NUM_LEN];
	char nf[INS_NUM_LEN], rj[INS_NUM_LEN], dr[INS_NUM_LEN], name[64], fe[INS_FE_LEN];
	struct sbuf *fes = NULL, bes = { 0 };
	struct tab t;
	size_t i, j;
	int pass, err = 0;

	if (!st->n_views) {
		printf("no services in %s/%s\n", st->c->dir, SP_MAP_SERVICES);
		return 0;
	}
	fes = calloc(st->n_views, sizeof(*fes));
	if (!fes)
		goto oom;
	for (i = 0; i < st->n_views; i++) {
		const struct svc_view *v = &st->views[i];

		for (j = 0; j < v->n_fe; j++)
			sb_printf(&fes[i], "%s%s", j ? ", " : "",
				  fmt_frontend(&v->fe[j].k, &v->fe[j].v, fe, sizeof(fe)));
		if (fes[i].oom)
			goto oom;
	}

	tab_init(&t, head, ARRAY_SIZE(head), "lrrrrrrrrl");
	for (pass = 0; pass < 2; pass++) {
		if (pass)
			tab_head(&t);
		for (i = 0; i < st->n_views; i++) {
			const struct svc_view *v = &st->views[i];
			const char *cells[] = { view_name(v, name, sizeof(name)), id, n, m, pk, by,
						nf, rj, dr, sb_str(&fes[i]) };

			snprintf(id, sizeof(id), "%u", v->svc_id);
			snprintf(n, sizeof(n), "%u", v->v.n);
			snprintf(m, sizeof(m), "%u", v->v.m);
			snprintf(pk, sizeof(pk), "%llu", (unsigned long long)v->st.packets);
			snprintf(by, sizeof(by), "%llu", (unsigned long long)v->st.bytes);
			snprintf(nf, sizeof(nf), "%llu", (unsigned long long)v->st.new_flows);
			snprintf(rj, sizeof(rj), "%llu", (unsigned long long)v->st.rejects);
			snprintf(dr, sizeof(dr), "%llu", (unsigned long long)v->st.drops);
			if (!pass) {
				tab_measure(&t, cells);
				continue;
			}
			tab_row(&t, cells);
			bes.len = 0;
			fmt_view_backends(st, v, &bes);
			if (bes.oom)
				goto oom;
			printf("    backends: %s\n", sb_str(&bes));
		}
	}
	goto out;
oom:
	err = -ENOMEM;
	ins_err(st->c, "format table: %s", strerror(ENOMEM));
out:
	for (i = 0; fes && i < st->n_views; i++)
		free(fes[i].s);
	free(fes);
	free(bes.s);
	return err;
}

int cmd_services(int argc, char **argv)
{
	struct ins_state st;
	struct ins_ctx c;
	int err;

	err = ins_parse(&services_cmd, argc, argv, &c);
	if (err)
		return err > 0 ? 0 : err;
	ins_state_init(&st, &c);
	err = ins_load_views(&st, INS_W_IDS | INS_W_STATS);
	if (!err)
		err = c.json ? services_json(&st) : services_text(&st);
	ins_state_free(&st);
	return err ?: ins_flush(&c);
}

/* ------------------------------------------------------------------------ */
/* backends                                                                 */
/* ------------------------------------------------------------------------ */

static int cmp_u32(const void *a, const void *b)
{
	__u32 x = *(const __u32 *)a, y = *(const __u32 *)b;

	return x < y ? -1 : x > y;
}

/* refs[i]: how many Service ports list st->be[i] in their region. Returns 0 or -ENOMEM. */
static int count_refs(const struct ins_state *st, size_t *refs)
{
	const struct be_rec *be;
	__u32 *ids;
	size_t i, j;

	for (i = 0; i < st->n_views; i++) {
		const struct svc_view *v = &st->views[i];

		if (!v->ids)
			continue;
		ids = malloc(v->v.n * sizeof(*ids));
		if (!ids)
			return -ENOMEM;
		memcpy(ids, v->ids, v->v.n * sizeof(*ids));
		sort(ids, v->v.n, sizeof(*ids), cmp_u32);
		for (j = 0; j < v->v.n; j++) {
			if (j && ids[j] == ids[j - 1])
				continue; /* count a Service once */
			be = find_backend(st, ids[j]);
			if (be)
				refs[be - st->be]++;
		}
		free(ids);
	}
	return 0;
}

int cmd_backends(int argc, char **argv)
{
	static const char *const head[] = { "ID", "ADDRESS", "FAMILY", "SERVICES" };
	char id[INS_NUM_LEN], ap[INS_ADDR_LEN], refs_s[INS_NUM_LEN];
	struct json_object *arr = NULL, *o = NULL;
	struct ins_state st;
	struct ins_ctx c;
	size_t *refs = NULL, i;
	struct tab t;
	int err, pass;

	err = ins_parse(&backends_cmd, argc, argv, &c);
	if (err)
		return err > 0 ? 0 : err;
	ins_state_init(&st, &c);
	err = ins_load_views(&st, INS_W_IDS);
	if (err)
		goto out;
	refs = calloc(st.n_be ? st.n_be : 1, sizeof(*refs));
	if (!refs || count_refs(&st, refs)) {
		err = -ENOMEM;
		ins_err(&c, "count Service references: %s", strerror(ENOMEM));
		goto out;
	}

	if (c.json) {
		arr = json_object_new_array();
		err = arr ? 0 : -ENOMEM;
		for (i = 0; i < st.n_be && !err; i++) {
			const struct be_rec *b = &st.be[i];

			err = jpush(arr, o = json_object_new_object());
			err = err ?: jset(o, "id", ji64(b->id));
			err = err ?: jset_ipport(o, &b->b.addr, b->b.family, b->b.port);
			err = err ?: jset(o, "services", ji64(refs[i]));
		}
		if (err) {
			json_object_put(arr);
			ins_err(&c, "build JSON: %s", strerror(-err));
			goto out;
		}
		err = jprint(&c, arr);
		goto out;
	}

	if (!st.n_be) {
		printf("no backends in %s/%s\n", c.dir, SP_MAP_BACKENDS);
		goto out;
	}
	tab_init(&t, head, ARRAY_SIZE(head), "rllr");
	for (pass = 0; pass < 2; pass++) {
		if (pass)
			tab_head(&t);
		for (i = 0; i < st.n_be; i++) {
			const struct be_rec *b = &st.be[i];
			const char *cells[] = { id, fmt_be(&b->b, ap, sizeof(ap)),
						family_str(b->b.family), refs_s };

			snprintf(id, sizeof(id), "%u", b->id);
			snprintf(refs_s, sizeof(refs_s), "%zu", refs[i]);
			if (pass)
				tab_row(&t, cells);
			else
				tab_measure(&t, cells);
		}
	}
out:
	free(refs);
	ins_state_free(&st);
	return err ?: ins_flush(&c);
}

/* ------------------------------------------------------------------------ */
/* conntrack                                                                */
/* ------------------------------------------------------------------------ */

struct ct_rec {
	struct sp_ct_key k;
	struct sp_ct_val v;
};

/* The entries of sp_ct4 and sp_ct6 as read, made ct_recs after the dump
 * (user/ct.h: keys and values in user space's form). */
struct ct4_raw {
	struct sp_ct4_key k;
	struct sp_ct4_val v;
};

struct ct6_raw {
	struct sp_ct_key k;
	struct sp_ct_entry v;
};

/* Both tables' entries, as ct_rec: 0 or -errno (said). */
static int ct_dump_all(struct ins_state *st, struct ct_rec **out, size_t *n_out)
{
	static const struct ins_layout ct6_l = INS_LAYOUT(struct ct6_raw, k, v);
	static const struct ins_layout ct4_l = INS_LAYOUT(struct ct4_raw, k, v);
	uint64_t now = sp_mono_ns();
	struct ct4_raw *r4 = NULL;
	struct ct6_raw *r6 = NULL;
	struct ct_rec *recs;
	size_t n4 = 0, n6 = 0, i;
	int err;

	err = ins_open(st, INS_CT4) ?: ins_open(st, INS_CT6);
	err = err ?: ins_dump(st, INS_CT4, &ct4_l, (void **)&r4, &n4);
	err = err ?: ins_dump(st, INS_CT6, &ct6_l, (void **)&r6, &n6);
	if (err)
		goto out;
	recs = calloc(n6 + n4 + 1, sizeof(*recs));
	if (!recs) {
		err = -ENOMEM;
		ins_err(st->c, "read conntrack: %s", strerror(-err));
		goto out;
	}
	for (i = 0; i < n6; i++) {
		recs[i].k = r6[i].k;
		sp_ct_val_of(&r6[i].v, now, &recs[i].v);
	}
	for (i = 0; i < n4; i++) {
		sp_ct_key_of4(&r4[i].k, &recs[n6 + i].k);
		sp_ct_val_of4(&r4[i].v, now, &recs[n6 + i].v);
	}
	*out = recs;
	*n_out = n6 + n4;
out:
	free(r4);
	free(r6);
	return err;
}

static const char *const ct_state_names[] = {
	[SP_CT_NEW] = "NEW",
	[SP_CT_ESTABLISHED] = "ESTABLISHED",
	[SP_CT_CLOSING] = "CLOSING",
	[SP_CT_FIN_WAIT] = "FIN_WAIT",
	[SP_CT_TIME_WAIT] = "TIME_WAIT",
};

static const char *ct_state_str(__u8 s, char *buf, size_t len)
{
	if (s < ARRAY_SIZE(ct_state_names) && ct_state_names[s])
		return ct_state_names[s];
	snprintf(buf, len, "state%u", s);
	return buf;
}

/* Oldest first; the two entries of a flow share 'created' and sit together. */
static int cmp_ct(const void *a, const void *b)
{
	const struct ct_rec *x = a, *y = b;

	if (x->v.created != y->v.created)
		return x->v.created < y->v.created ? -1 : 1;
	if (x->k.dir != y->k.dir)
		return (int)x->k.dir - (int)y->k.dir;
	return memcmp(&x->k, &y->k, sizeof(x->k));
}

/* The rewrite an entry applies: "dst=B:p", "dst=B:p src=H" (FWD), "src=VIP:p[ dst=C:p]" (REV). */
static const char *fmt_ct_nat(const struct ct_rec *r, char *buf, size_t len)
{
	char a[INS_ADDR_LEN], b[INS_ADDR_LEN];
	bool hp = r->v.flags & SP_CT_F_HAIRPIN;
	__u8 f = r->k.family;

	if (r->k.dir == SP_CT_FWD) {
		fmt_ipport(&r->v.nat_addr, f, r->v.nat_port, a, sizeof(a));
		snprintf(buf, len, "dst=%s%s%s", a, hp ? " src=" : "",
			 !hp ? "" :
			 (r->v.flags & SP_CT_F_SNAT) ?
			       fmt_ipport(&r->v.nat_saddr, f, r->v.nat_sport, b, sizeof(b)) :
			       fmt_ip(&r->v.nat_saddr, f, b, sizeof(b)));
	} else {
		fmt_ipport(&r->v.nat_addr, f, r->v.nat_port, a, sizeof(a));
		snprintf(buf, len, "src=%s%s%s", a, hp ? " dst=" : "",
			 hp ? fmt_ipport(&r->v.nat_saddr, f, r->v.nat_sport, b, sizeof(b)) : "");
	}
	return buf;
}

static const char *fmt_ct_flags(__u8 flags, char *buf, size_t len)
{
	/* SNAT sets HAIRPIN too (the source address is rewritten): name it once. */
	const char *src = (flags & SP_CT_F_REMAP)   ? "port-remap" :
			  (flags & SP_CT_F_SNAT)    ? "snat" :
			  (flags & SP_CT_F_HAIRPIN) ? "hairpin" :
						      "";

	snprintf(buf, len, "%s%s%s%s%s", src, *src && (flags & SP_CT_F_NODEPORT) ? "," : "",
		 flags & SP_CT_F_NODEPORT ? "nodeport" : "",
		 (flags & SP_CT_F_DSR) && (*src || (flags & SP_CT_F_NODEPORT)) ? "," : "",
		 flags & SP_CT_F_DSR ? "dsr" : "");
	if (!*buf)
		snprintf(buf, len, "-");
	return buf;
}

/* Signed nanoseconds from now to t (both CLOCK_MONOTONIC, as bpf_ktime_get_ns()). */
static long long ns_until(__u64 t, __u64 now)
{
	return t >= now ? (long long)(t - now) : -(long long)(now - t);
}

static int ct_json_entry(struct json_object *arr, const struct ct_rec *r, __u64 now)
{
	struct json_object *o = NULL, *e = NULL;
	bool hp = r->v.flags & SP_CT_F_HAIRPIN;
	char ip[INS_ADDR_LEN], pb[12], sb[12];
	__u8 f = r->k.family;
	int err;

	err = jpush(arr, o = json_object_new_object());
	err = err ?: jset(o, "direction", jstr(r->k.dir == SP_CT_FWD ? "fwd" : "rev"));
	err = err ?: jset(o, "protocol", jstr(proto_str(r->k.proto, pb, sizeof(pb))));
	err = err ?: jset(o, "family", jstr(family_str(f)));
	err = err ?: jset(o, "source", e = json_object_new_object());
	err = err ?: jset(e, "address", jstr(fmt_ip(&r->k.saddr, f, ip, sizeof(ip))));
	err = err ?: jset(e, "port", ji64(ntohs(r->k.sport)));
	err = err ?: jset(o, "destination", e = json_object_new_object());
	err = err ?: jset(e, "address", jstr(fmt_ip(&r->k.daddr, f, ip, sizeof(ip))));
	err = err ?: jset(e, "port", ji64(ntohs(r->k.dport)));
	err = err ?: jset(o, "state", jstr(ct_state_str(r->v.state, sb, sizeof(sb))));
	/* What the entry rewrites, named after the packet fields. */
	err = err ?: jset(o, "nat", e = json_object_new_object());
	if (r->k.dir == SP_CT_FWD) {
		err = err ?: jset(e, "daddr", jstr(fmt_ip(&r->v.nat_addr, f, ip, sizeof(ip))));
		err = err ?: jset(e, "dport", ji64(ntohs(r->v.nat_port)));
		if (hp)
			err = err ?: jset(e, "saddr",
					  jstr(fmt_ip(&r->v.nat_saddr, f, ip, sizeof(ip))));
		if (r->v.flags & SP_CT_F_SNAT)
			err = err ?: jset(e, "sport", ji64(ntohs(r->v.nat_sport)));
	} else {
		err = err ?: jset(e, "saddr", jstr(fmt_ip(&r->v.nat_addr, f, ip, sizeof(ip))));
		err = err ?: jset(e, "sport", ji64(ntohs(r->v.nat_port)));
		if (hp) {
			err = err ?: jset(e, "daddr",
					  jstr(fmt_ip(&r->v.nat_saddr, f, ip, sizeof(ip))));
			err = err ?: jset(e, "dport", ji64(ntohs(r->v.nat_sport)));
		}
	}
	err = err ?: jset(o, "backend_id", ji64(r->v.backend_id));
	err = err ?: jset(o, "svc_id", ji64(r->v.svc_id));
	err = err ?: jset(o, "expires_in", ji64(ns_until(r->v.expires, now) / 1000000000));
	err = err ?: jset(o, "expired", jbool(r->v.expires <= now));
	err = err ?: jset(o, "age", ji64(-ns_until(r->v.created, now) / 1000000000));
	err = err ?: jset(o, "hairpin", jbool(hp && !(r->v.flags & SP_CT_F_SNAT)));
	err = err ?: jset(o, "snat", jbool(!!(r->v.flags & SP_CT_F_SNAT)));
	err = err ?: jset(o, "nodeport", jbool(!!(r->v.flags & SP_CT_F_NODEPORT)));
	return err;
}

int cmd_conntrack(int argc, char **argv)
{
	static const char *const head[] = { "DIR",   "PROTO",   "SOURCE", "DESTINATION",
					    "STATE", "BACKEND", "SVC",    "EXPIRES",
					    "FLAGS", "NAT" };
	char pb[12], sb[12], src[INS_ADDR_LEN], dst[INS_ADDR_LEN], be[INS_NUM_LEN];
	char svc[INS_NUM_LEN], exp[INS_NUM_LEN], flags[24], nat[2 * INS_ADDR_LEN + 16];
	struct json_object *arr;
	struct ct_rec *recs = NULL;
	struct ins_state st;
	struct timespec ts;
	size_t n = 0, shown, i;
	struct ins_ctx c;
	struct tab t;
	int err, pass;
	__u64 now;

	err = ins_parse(&conntrack_cmd, argc, argv, &c);
	if (err)
		return err > 0 ? 0 : err;
	ins_state_init(&st, &c);
	err = ct_dump_all(&st, &recs, &n);
	if (err)
		goto out;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (__u64)ts.tv_sec * 1000000000ull + (__u64)ts.tv_nsec;
	sort(recs, n, sizeof(*recs), cmp_ct);
	shown = c.limit && c.limit < n ? c.limit : n;

	if (c.json) {
		arr = json_object_new_array();
		err = arr ? 0 : -ENOMEM;
		for (i = 0; i < shown && !err; i++)
			err = ct_json_entry(arr, &recs[i], now);
		if (err) {
			json_object_put(arr);
			ins_err(&c, "build JSON: %s", strerror(-err));
			goto out;
		}
		err = jprint(&c, arr);
		goto out;
	}

	if (!n) {
		printf("no conntrack entries in %s/%s and %s/%s\n", c.dir, SP_MAP_CT4, c.dir,
		       SP_MAP_CT6);
		goto out;
	}
	tab_init(&t, head, ARRAY_SIZE(head), "lllllrrrll");
	for (pass = 0; pass < 2; pass++) {
		if (pass)
			tab_head(&t);
		for (i = 0; i < shown; i++) {
			const struct ct_rec *r = &recs[i];
			const char *cells[] = {
				r->k.dir == SP_CT_FWD ? "fwd" : "rev",
				proto_str(r->k.proto, pb, sizeof(pb)),
				fmt_ipport(&r->k.saddr, r->k.family, r->k.sport, src, sizeof(src)),
				fmt_ipport(&r->k.daddr, r->k.family, r->k.dport, dst, sizeof(dst)),
				ct_state_str(r->v.state, sb, sizeof(sb)),
				be,
				svc,
				exp,
				fmt_ct_flags(r->v.flags, flags, sizeof(flags)),
				fmt_ct_nat(r, nat, sizeof(nat)),
			};

			snprintf(be, sizeof(be), "%u", r->v.backend_id);
			snprintf(svc, sizeof(svc), "%u", r->v.svc_id);
			if (r->v.expires <= now)
				snprintf(exp, sizeof(exp), "expired");
			else
				snprintf(exp, sizeof(exp), "%llus",
					 (unsigned long long)((r->v.expires - now) / 1000000000));
			if (pass)
				tab_row(&t, cells);
			else
				tab_measure(&t, cells);
		}
	}
	if (shown < n)
		printf("(%zu of %zu entries shown; --limit 0 shows all)\n", shown, n);
out:
	free(recs);
	ins_state_free(&st);
	return err ?: ins_flush(&c);
}

/* ------------------------------------------------------------------------ */
/* maglev                                                                   */
/* ------------------------------------------------------------------------ */

/*
 * The digest must be the one the daemon computes when it builds a table,
 * so this hands the map data to sp_maglev_digest() (user/maglev.c) rather
 * than hashing on its own: one definition of the bytes, no drift.
 */
int sp_inspect_digest(const struct sp_backend *slots, size_t n, const uint16_t *table, uint32_t m,
		      uint64_t *digest)
{
	struct sp_mg_backend *b;
	size_t i;

	b = calloc(n ? n : 1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		b[i].ip.family = slots[i].family;
		memcpy(b[i].ip.b, slots[i].addr.addr,
		       slots[i].family == SP_FAMILY_V4 ? 4 : sizeof(b[i].ip.b));
		b[i].port = ntohs(slots[i].port);
	}
	*digest = sp_maglev_digest(b, n, table, m);
	free(b);
	return 0;
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/* Does q name n: equal, or a prefix ending at a ':' or '/' boundary? */
static bool name_matches(const char *n, const char *q)
{
	size_t ql = strlen(q);

	if (strncmp(n, q, ql))
		return false;
	return !n[ql] || n[ql] == ':' || n[ql] == '/' || q[ql - 1] == ':' || q[ql - 1] == '/';
}

/*
 * Find the Service port q names: a svc_id, an exact sp_svc_meta name, or a
 * prefix of names (see name_matches). Returns 0 with *out set, -ENOENT, or
 * -EINVAL when several match (after listing them).
 */
static int find_view(struct ins_state *st, const char *q, struct svc_view **out)
{
	const struct ins_ctx *c = st->c;
	unsigned long id;
	size_t i, hits = 0;
	char name[64];

	if (all_digits(q) && !ins_parse_ulong(q, &id)) {
		for (i = 0; i < st->n_views; i++) {
			if (st->views[i].svc_id == id) {
				*out = &st->views[i];
				return 0;
			}
		}
	}
	for (i = 0; i < st->n_views; i++) {
		if (st->views[i].name && !strcmp(st->views[i].name, q)) {
			*out = &st->views[i];
			return 0;
		}
	}
	for (i = 0; i < st->n_views; i++) {
		if (st->views[i].name && name_matches(st->views[i].name, q)) {
			*out = &st->views[i];
			hits++;
		}
	}
	if (hits == 1)
		return 0;
	if (!hits) {
		ins_err(c, "no Service port matches '%s' (see svcplane services)", q);
		return -ENOENT;
	}
	ins_err(c, "'%s' matches %zu Service ports; name one of:", q, hits);
	for (i = 0; i < st->n_views; i++)
		if (st->views[i].name && name_matches(st->views[i].name, q))
			fprintf(stderr, "  %s (svc_id %u)\n",
				view_name(&st->views[i], name, sizeof(name)), st->views[i].svc_id);
	return -EINVAL;
}

/* One backend of the table being shown. */
struct mg_slot {
	__u32 id;
	bool missing; /* id not in sp_backends */
	size_t entries;
};

static int maglev_json(struct ins_state *st, const struct svc_view *v, const struct mg_slot *sl,
		       const struct sp_backend *be, const __u16 *table, size_t invalid,
		       uint64_t digest)
{
	struct json_object *o, *a = NULL, *e = NULL;
	__u32 n = v->v.n, m = v->v.m, i;
	char hex[20], name[64];
	int err = 0;

	o = json_object_new_object();
	if (!o)
		return -ENOMEM;
	snprintf(hex, sizeof(hex), "%016" PRIx64, (uint64_t)digest);
	if (v->name)
		err = jset(o, "name", jstr(view_name(v, name, sizeof(name))));
	else
		err = jset_null(o, "name");
	err = err ?: jset(o, "svc_id", ji64(v->svc_id));
	err = err ?: jset(o, "region", ji64(v->v.region));
	err = err ?: jset(o, "region_chunks",
			  ji64(DIV_ROUND_UP(2 * (size_t)n + m, SP_MAGLEV_CHUNK_WORDS)));
	err = err ?: jset(o, "maglev_m", ji64(m));
	err = err ?: jset(o, "n", ji64(n));
	err = err ?: jset(o, "digest", jstr(hex));
	err = err ?: jset(o, "invalid_entries", ji64(invalid));
	err = err ?: jset(o, "backends", a = json_object_new_array());
	for (i = 0; i < n && !err; i++) {
		err = jpush(a, e = json_object_new_object());
		err = err ?: jset(e, "slot", ji64(i));
		err = err ?: jset(e, "id", ji64(sl[i].id));
		if (sl[i].missing) {
			err = err ?: jset_null(e, "address");
			err = err ?: jset(e, "missing", jbool(true));
		} else {
			err = err ?: jset_ipport(e, &be[i].addr, be[i].family, be[i].port);
		}
		err = err ?: jset(e, "entries", ji64(sl[i].entries));
		err = err ?: jset(e, "share", json_object_new_double(m ? (double)sl[i].entries /
									     m : 0.0));
	}
	if (st->c->table) {
		err = err ?: jset(o, "table", a = json_object_new_array());
		for (i = 0; i < m && !err; i++)
			err = jpush(a, table[i] < n ? ji64(sl[table[i]].id) : ji64(-1));
	}
	if (err) {
		json_object_put(o);
		ins_err(st->c, "build JSON: %s", strerror(-err));
		return err;
	}
	return jprint(st->c, o);
}

/* The backend in slot s as text, or why there is none. */
static const char *slot_addr(const struct mg_slot *sl, const struct sp_backend *be, __u32 n,
			     __u32 s, char *buf, size_t len)
{
	if (s >= n)
		return "(invalid)";
	return sl[s].missing ? "(missing)" : fmt_be(&be[s], buf, len);
}

static void maglev_text(struct ins_state *st, const struct svc_view *v, const struct mg_slot *sl,
			const struct sp_backend *be, const __u16 *table, size_t invalid,
			uint64_t digest)
{
	static const char *const head[] = { "SLOT", "ID", "BACKEND", "ENTRIES", "SHARE" };
	static const char *const thead[] = { "INDEX", "SLOT", "ID", "BACKEND" };
	char slot[INS_NUM_LEN], id[INS_NUM_LEN], ap[INS_ADDR_LEN], ent[INS_NUM_LEN];
	char share[16], idx[INS_NUM_LEN], name[64];
	__u32 n = v->v.n, m = v->v.m, i;
	struct tab t;
	int pass;

	printf("service  %s\n", view_name(v, name, sizeof(name)));
	printf("svc_id   %u\n", v->svc_id);
	printf("region   chunk %u (%zu chunks)\n", v->v.region,
	       n ? DIV_ROUND_UP(2 * (size_t)n + m, SP_MAGLEV_CHUNK_WORDS) : (size_t)0);
	printf("M        %u\n", m);
	printf("N        %u\n", n);
	printf("digest   %016" PRIx64 "\n", (uint64_t)digest);
	if (invalid)
		printf("invalid  %zu entries point past the backend list\n", invalid);
	if (!n) {
		printf("\nno backends: new connections are rejected\n");
		return;
	}
	putchar('\n');
	tab_init(&t, head, ARRAY_SIZE(head), "rrlrr");
	for (pass = 0; pass < 2; pass++) {
		if (pass)
			tab_head(&t);
		for (i = 0; i < n; i++) {
			const char *addr = slot_addr(sl, be, n, i, ap, sizeof(ap));
			const char *cells[] = { slot, id, addr, ent, share };

			snprintf(slot, sizeof(slot), "%u", i);
			snprintf(id, sizeof(id), "%u", sl[i].id);
			snprintf(ent, sizeof(ent), "%zu", sl[i].entries);
			snprintf(share, sizeof(share), "%.2f%%",
				 m ? 100.0 * (double)sl[i].entries / m : 0.0);
			if (pass)
				tab_row(&t, cells);
			else
				tab_measure(&t, cells);
		}
	}
	if (!st->c->table)
		return;
	putchar('\n');
	tab_init(&t, thead, ARRAY_SIZE(thead), "rrrl");
	for (pass = 0; pass < 2; pass++) {
		if (pass)
			tab_head(&t);
		for (i = 0; i < m; i++) {
			bool ok = table[i] < n;
			const char *cells[] = { idx, slot, ok ? id : "-",
						slot_addr(sl, be, n, table[i], ap, sizeof(ap)) };

			snprintf(idx, sizeof(idx), "%u", i);
			snprintf(slot, sizeof(slot), "%u", table[i]);
			snprintf(id, sizeof(id), "%u", ok ? sl[table[i]].id : 0);
			if (pass)
				tab_row(&t, cells);
			else
				tab_measure(&t, cells);
		}
	}
}

int cmd_maglev(int argc, char **argv)
{
	struct sp_backend *be = NULL;
	const struct be_rec *br;
	struct mg_slot *sl = NULL;
	__u16 *words = NULL;
	struct svc_view *v;
	struct ins_state st;
	size_t invalid = 0, nwords;
	struct ins_ctx c;
	uint64_t digest;
	__u32 n, m, i;
	int err;

	err = ins_parse(&maglev_cmd, argc, argv, &c);
	if (err)
		return err > 0 ? 0 : err;
	ins_state_init(&st, &c);
	err = ins_load_views(&st, 0);
	err = err ?: ins_open(&st, INS_MAGLEV);
	err = err ?: find_view(&st, c.arg, &v);
	if (err)
		goto out;
	n = v->v.n;
	m = n ? v->v.m : 0;
	nwords = 2 * (size_t)n + m;
	words = calloc(nwords ? nwords : 1, sizeof(*words));
	sl = calloc(n ? n : 1, sizeof(*sl));
	be = calloc(n ? n : 1, sizeof(*be));
	if (!words || !sl || !be) {
		err = -ENOMEM;
		ins_err(&c, "read Maglev table: %s", strerror(-err));
		goto out;
	}
	if (nwords) {
		err = ins_read_region(&st, v->v.region, nwords, words);
		if (err)
			goto out;
	}
	for (i = 0; i < n; i++) {
		sl[i].id = region_id(words, i);
		br = find_backend(&st, sl[i].id);
		if (br)
			be[i] = br->b;
		else
			sl[i].missing = true;
	}
	for (i = 0; i < m; i++) {
		__u16 s = words[2 * (size_t)n + i];

		if (s < n)
			sl[s].entries++;
		else
			invalid++;
	}
	err = sp_inspect_digest(be, n, words + 2 * (size_t)n, m, &digest);
	if (err) {
		ins_err(&c, "digest of the Maglev table: %s", strerror(-err));
		goto out;
	}
	if (c.json)
		err = maglev_json(&st, v, sl, be, words + 2 * (size_t)n, invalid, digest);
	else
		maglev_text(&st, v, sl, be, words + 2 * (size_t)n, invalid, digest);
out:
	free(words);
	free(sl);
	free(be);
	ins_state_free(&st);
	return err ?: ins_flush(&c);
}

/* ------------------------------------------------------------------------ */
/* stats                                                                    */
/* ------------------------------------------------------------------------ */

static const char *const reason_names[] = SP_REASON_NAMES;
_Static_assert(ARRAY_SIZE(reason_names) == SP_R_MAX, "SP_REASON_NAMES covers enum sp_reason");

static const char *reason_name(__u32 r, char *buf, size_t len)
{
	if (r < ARRAY_SIZE(reason_names))
		return reason_names[r];
	snprintf(buf, len, "reason_%u", r); /* from a newer datapath */
	return buf;
}

/* sp_stat_fields (metrics.c) names the counters, as /metrics does. */
static __u64 stat_get(const struct sp_stats *s, size_t i)
{
	__u64 v;

	memcpy(&v, (const char *)s + sp_stat_fields[i].off, sizeof(v));
	return v;
}

static void stat_add(struct sp_stats *s, size_t i, __u64 v)
{
	__u64 cur = stat_get(s, i) + v;

	memcpy((char *)s + sp_stat_fields[i].off, &cur, sizeof(cur));
}

int cmd_stats(int argc, char **argv)
{
	static const char *const slot_names[] = SP_SLOT_NAMES;
	static const char *const head[] = { "COUNTER", "TOTAL", "XDP", "POD", "HOST",
					    "UPLINK_TC" };
	struct sp_stats slot[SP_SLOTS];
	char sv[SP_SLOTS][INS_NUM_LEN];
	__u32 k, nslots;
	struct json_object *bh = NULL, *sh = NULL;
	static const char *const rhead[] = { "REASON", "PACKETS", "BYTES" };
	char val[INS_NUM_LEN], pk[INS_NUM_LEN], by[INS_NUM_LEN], rn[24];
	struct json_object *o = NULL, *cnt = NULL, *rs = NULL, *e = NULL;
	struct sp_reason_count *rc = NULL;
	struct ins_state st;
	struct sp_stats s;
	struct ins_ctx c;
	size_t i, nr, shown = 0;
	struct tab t;
	int err, pass;

	err = ins_parse(&stats_cmd, argc, argv, &c);
	if (err)
		return err > 0 ? 0 : err;
	ins_state_init(&st, &c);
	err = ins_open(&st, INS_STATS);
	err = err ?: ins_open(&st, INS_REASONS);
	if (err)
		goto out;
	/* One struct per hook (enum sp_stats_slot); a map from an older
	 * datapath may have fewer slots. The totals are their sum. */
	nslots = st.info[INS_STATS].max_entries;
	if (nslots > SP_SLOTS)
		nslots = SP_SLOTS;
	memset(&s, 0, sizeof(s));
	memset(slot, 0, sizeof(slot));
	for (k = 0; k < nslots && !err; k++) {
		err = ins_percpu(&st, INS_STATS, k, &slot[k]);
		for (i = 0; i < sp_n_stat_fields && !err; i++)
			stat_add(&s, i, stat_get(&slot[k], i));
	}
	if (err)
		goto out;
	nr = st.info[INS_REASONS].max_entries;
	if (nr > INS_MAX_REASONS)
		nr = INS_MAX_REASONS;
	rc = calloc(nr ? nr : 1, sizeof(*rc));
	if (!rc) {
		err = -ENOMEM;
		ins_err(&c, "read %s: %s", SP_MAP_REASONS, strerror(-err));
		goto out;
	}
	for (i = 0; i < nr && !err; i++)
		err = ins_percpu(&st, INS_REASONS, (__u32)i, &rc[i]);
	if (err)
		goto out;

	if (c.json) {
		o = json_object_new_object();
		err = o ? 0 : -ENOMEM;
		err = err ?: jset(o, "counters", cnt = json_object_new_object());
		for (i = 0; i < sp_n_stat_fields && !err; i++)
			err = jset(cnt, sp_stat_fields[i].name, ju64(stat_get(&s, i)));
		/* the same counters, per hook: which program did the work */
		err = err ?: jset(o, "by_hook", bh = json_object_new_object());
		for (k = 0; k < nslots && !err; k++) {
			err = jset(bh, slot_names[k], sh = json_object_new_object());
			for (i = 0; i < sp_n_stat_fields && !err; i++)
				err = jset(sh, sp_stat_fields[i].name, ju64(stat_get(&slot[k], i)));
		}
		err = err ?: jset(o, "reasons", rs = json_object_new_object());
		for (i = 0; i < nr && !err; i++) {
			if (!c.all && !rc[i].packets && !rc[i].bytes)
				continue;
			err = jset(rs, reason_name(i, rn, sizeof(rn)),
				   e = json_object_new_object());
			err = err ?: jset(e, "packets", ju64(rc[i].packets));
			err = err ?: jset(e, "bytes", ju64(rc[i].bytes));
		}
		if (err) {
			json_object_put(o);
			ins_err(&c, "build JSON: %s", strerror(-err));
			goto out;
		}
		err = jprint(&c, o);
		goto out;
	}

	tab_init(&t, head, 2 + nslots, "lrrrrr");
	for (pass = 0; pass < 2; pass++) {
		if (pass)
			tab_head(&t);
		for (i = 0; i < sp_n_stat_fields; i++) {
			const char *cells[] = { sp_stat_fields[i].name, val, sv[0], sv[1], sv[2], sv[3] };

			snprintf(val, sizeof(val), "%llu", (unsigned long long)stat_get(&s, i));
			for (k = 0; k < SP_SLOTS; k++)
				snprintf(sv[k], sizeof(sv[k]), "%llu",
					 k < nslots ? (unsigned long long)stat_get(&slot[k], i) : 0ULL);
			if (pass)
				tab_row(&t, cells);
			else
				tab_measure(&t, cells);
		}
	}
	putchar('\n');
	tab_init(&t, rhead, ARRAY_SIZE(rhead), "lrr");
	for (pass = 0; pass < 2; pass++) {
		if (pass)
			tab_head(&t);
		for (i = 0; i < nr; i++) {
			const char *cells[] = { reason_name(i, rn, sizeof(rn)), pk, by };

			if (!c.all && !rc[i].packets && !rc[i].bytes)
				continue;
			shown += pass;
			snprintf(pk, sizeof(pk), "%llu", (unsigned long long)rc[i].packets);
			snprintf(by, sizeof(by), "%llu", (unsigned long long)rc[i].bytes);
			if (pass)
				tab_row(&t, cells);
			else
				tab_measure(&t, cells);
		}
	}
	if (!shown)
		printf("(no reason counted a packet; --all lists them all)\n");
out:
	free(rc);
	ins_state_free(&st);
	return err ?: ins_flush(&c);
}

/* ------------------------------------------------------------------------ */
/* status                                                                   */
/* ------------------------------------------------------------------------ */

int sp_pidfile_path(const char *pin_dir, char *buf, size_t len)
{
	static const char pre[] = SP_RUN_DIR "/", suf[] = ".pid";
	size_t n, i;

	if (!pin_dir || !buf)
		return -EINVAL;
	n = strlen(pin_dir);
	while (n > 1 && pin_dir[n - 1] == '/')
		n--;
	if (!n)
		return -EINVAL;
	if (n + sizeof(suf) - 1 > NAME_MAX || sizeof(pre) - 1 + n + sizeof(suf) > len)
		return -ENAMETOOLONG;
	memcpy(buf, pre, sizeof(pre) - 1);
	for (i = 0; i < n; i++)
		buf[sizeof(pre) - 1 + i] = pin_dir[i] == '/' ? '_' : pin_dir[i];
	memcpy(buf + sizeof(pre) - 1 + n, suf, sizeof(suf));
	return 0;
}

struct st_map {
	bool pinned;
	int err; /* opening failed other than with -ENOENT */
	char type[24];
	__u32 max_entries, key_size, value_size;
	long long entries; /* -1: not counted (arrays) */
	char check[96];
};

struct st_link {
	char pin[NAME_MAX + 1];
	char type[24];
	__u32 id, prog_id, ifindex;
	char ifname[IF_NAMESIZE];
	char prog[BPF_OBJ_NAME_LEN];
};

struct st_xdp {
	char ifname[IF_NAMESIZE];
	__u32 ifindex, prog_id;
	const char *mode;
	char prog[BPF_OBJ_NAME_LEN];
};

struct st_info {
	char pidfile[PATH_MAX];
	bool dir_exists, bpffs;
	int dir_errno; /* why stat() failed, when it did */
	bool running, stale, pid_alive;
	bool synced; /* the pid file's second line says "ready" (see daemon.c) */
	long pid;
	size_t n_pinned;
	int first_err; /* first map that could not be opened, other than -ENOENT */
	bool ready;
	struct st_map maps[INS_NMAPS];
	struct st_link *links;
	size_t n_links;
	struct st_xdp *xdp;
	size_t n_xdp;
};

static bool type_is_hash(__u32 t)
{
	return t == BPF_MAP_TYPE_HASH || t == BPF_MAP_TYPE_LRU_HASH ||
	       t == BPF_MAP_TYPE_PERCPU_HASH || t == BPF_MAP_TYPE_LRU_PERCPU_HASH ||
	       t == BPF_MAP_TYPE_DEVMAP_HASH;
}

/* Entries in a hash map by walking its keys (approximate while it changes). */
static long long count_keys(int fd, __u32 ksz, __u32 max)
{
	unsigned char *key = calloc(2, ksz ? ksz : 1), *next;
	size_t n = 0, steps = 0;
	int err = 0;

	if (!key)
		return -ENOMEM;
	next = key + ksz;
	while (n < max && steps++ < 4 * (size_t)max + 16) {
		err = bpf_map_get_next_key(fd, n ? key : NULL, next);
		if (err)
			break;
		memcpy(key, next, ksz);
		n++;
	}
	free(key);
	return err && err != -ENOENT ? err : (long long)n;
}

static void status_maps(const struct ins_ctx *c, struct st_info *si)
{
	struct bpf_map_info info;
	char path[PATH_MAX];
	__u32 len;
	int m, fd, err;

	for (m = 0; m < INS_NMAPS; m++) {
		struct st_map *sm = &si->maps[m];

		sm->entries = -1;
		if (pin_path(c, ins_abi[m].name, path, sizeof(path)))
			continue;
		fd = bpf_obj_get(path);
		if (fd < 0) {
			if (fd != -ENOENT) {
				sm->err = fd;
				si->first_err = si->first_err ?: fd;
				ins_err(c, "open pinned map %s: %s%s", path, strerror(-fd),
					open_hint(fd));
			}
			continue;
		}
		sm->pinned = true;
		si->n_pinned++;
		memset(&info, 0, sizeof(info));
		len = sizeof(info);
		err = bpf_obj_get_info_by_fd(fd, &info, &len);
		if (err) {
			sm->err = err;
			ins_err(c, "get info of map %s: %s", path, strerror(-err));
			close(fd);
			continue;
		}
		snprintf(sm->type, sizeof(sm->type), "%s",
			 libbpf_bpf_map_type_str(info.type) ?: "?");
		sm->max_entries = info.max_entries;
		sm->key_size = info.key_size;
		sm->value_size = info.value_size;
		if (!abi_check(m, &info, sm->check, sizeof(sm->check)))
			snprintf(sm->check, sizeof(sm->check), "ok");
		if (type_is_hash(info.type)) {
			sm->entries = count_keys(fd, info.key_size, info.max_entries);
			if (sm->entries < 0) {
				ins_err(c, "count entries of %s: %s", path,
					strerror((int)-sm->entries));
				sm->entries = -1;
			}
		}
		close(fd);
	}
}

/* Name of BPF program id (up to 15 characters), or "" if it is gone. Returns 0 or -errno. */
int sp_prog_name(__u32 id, char *buf, size_t len)
{
	struct bpf_prog_info info;
	__u32 ilen = sizeof(info);
	int fd, err;

	buf[0] = '\0';
	fd = bpf_prog_get_fd_by_id(id);
	if (fd < 0)
		return fd;
	memset(&info, 0, sizeof(info));
	err = bpf_obj_get_info_by_fd(fd, &info, &ilen);
	if (!err)
		snprintf(buf, len, "%s", info.name);
	close(fd);
	return err;
}

/* Is fd a BPF link (rather than a pinned map or program)? */
static bool fd_is_link(int fd)
{
	char lpath[64], target[64];
	ssize_t n;

	snprintf(lpath, sizeof(lpath), "/proc/self/fd/%d", fd);
	n = readlink(lpath, target, sizeof(target) - 1);
	if (n < 0)
		return false;
	target[n] = '\0';
	return strstr(target, "bpf_link") || strstr(target, "bpf-link");
}

static int cmp_link(const void *a, const void *b)
{
	return strcmp(((const struct st_link *)a)->pin, ((const struct st_link *)b)->pin);
}

/* Links pinned under DIR/links/ (the daemon pins XDP links as xdp_<ifname>). */
static int status_links(const struct ins_ctx *c, struct st_info *si)
{
	char dpath[PATH_MAX], path[PATH_MAX + NAME_MAX + 2];
	struct bpf_link_info info;
	struct st_link *l;
	size_t cap = 0;
	struct dirent *de;
	__u32 len;
	DIR *d;
	int fd, err;

	if (pin_path(c, "links", dpath, sizeof(dpath)))
		return 0;
	d = opendir(dpath);
	if (!d) {
		if (errno == ENOENT)
			return 0;
		err = -errno;
		ins_err(c, "list pinned links in %s: %s", dpath, strerror(-err));
		return 0; /* status goes on */
	}
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || de->d_type == DT_DIR)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dpath, de->d_name);
		fd = bpf_obj_get(path);
		if (fd < 0) {
			ins_err(c, "open pinned link %s: %s", path, strerror(-fd));
			continue;
		}
		if (!fd_is_link(fd)) {
			close(fd);
			continue;
		}
		l = APPEND_ZEROED(&si->links, &si->n_links, &cap, 8);
		if (!l) {
			close(fd);
			closedir(d);
			ins_err(c, "list pinned links: %s", strerror(ENOMEM));
			return -ENOMEM;
		}
		snprintf(l->pin, sizeof(l->pin), "%s", de->d_name);
		memset(&info, 0, sizeof(info));
		len = sizeof(info);
		err = bpf_obj_get_info_by_fd(fd, &info, &len);
		close(fd);
		if (err) {
			ins_err(c, "get info of link %s: %s", path, strerror(-err));
			snprintf(l->type, sizeof(l->type), "?");
			continue;
		}
		snprintf(l->type, sizeof(l->type), "%s",
			 libbpf_bpf_link_type_str(info.type) ?: "unknown");
		l->id = info.id;
		l->prog_id = info.prog_id;
		if (info.type == BPF_LINK_TYPE_XDP) {
			l->ifindex = info.xdp.ifindex;
			if (!l->ifindex || !if_indextoname(l->ifindex, l->ifname))
				snprintf(l->ifname, sizeof(l->ifname), "%s",
					 l->ifindex ? "?" : "(gone)");
		}
		sp_prog_name(l->prog_id, l->prog, sizeof(l->prog));
	}
	closedir(d);
	sort(si->links, si->n_links, sizeof(*si->links), cmp_link);
	return 0;
}

/* Our XDP programs (name "sp_*") on the interfaces of this network namespace. */
static int status_xdp(const struct ins_ctx *c, struct st_info *si)
{
	struct if_nameindex *ifs, *i;
	struct st_xdp *x;
	size_t cap = 0;
	int k, err;

	ifs = if_nameindex();
	if (!ifs) {
		ins_err(c, "list network interfaces: %s", strerror(errno));
		return 0;
	}
	for (i = ifs; i->if_index; i++) {
		LIBBPF_OPTS(bpf_xdp_query_opts, q);
		struct {
			__u32 id;
			const char *mode;
		} ids[3];

		err = bpf_xdp_query((int)i->if_index, 0, &q);
		if (err) {
			ins_err(c, "query XDP on %s: %s", i->if_name, strerror(-err));
			continue;
		}
		ids[0].id = q.drv_prog_id;
		ids[0].mode = "native";
		ids[1].id = q.skb_prog_id;
		ids[1].mode = "generic";
		ids[2].id = q.hw_prog_id;
		ids[2].mode = "offload";
		for (k = 0; k < 3; k++) {
			char name[BPF_OBJ_NAME_LEN];

			if (!ids[k].id || sp_prog_name(ids[k].id, name, sizeof(name)) ||
			    strncmp(name, "sp_", 3))
				continue;
			x = APPEND_ZEROED(&si->xdp, &si->n_xdp, &cap, 8);
			if (!x) {
				if_freenameindex(ifs);
				ins_err(c, "list XDP programs: %s", strerror(ENOMEM));
				return -ENOMEM;
			}
			snprintf(x->ifname, sizeof(x->ifname), "%s", i->if_name);
			x->ifindex = i->if_index;
			x->prog_id = ids[k].id;
			x->mode = ids[k].mode;
			memcpy(x->prog, name, sizeof(x->prog));
		}
	}
	if_freenameindex(ifs);
	return 0;
}

/*
 * Does some process hold a lock on the file at path? Read from /proc/locks
 * without taking the lock ourselves (even a shared lock for an instant
 * could make a starting daemon's LOCK_EX | LOCK_NB fail). Returns 1, 0, or
 * -1 when it cannot tell.
 */
static int file_locked(const char *path)
{
	unsigned int maj, min;
	unsigned long ino;
	char line[256], *tok, *save;
	struct stat sb;
	int found = 0;
	FILE *f;

	if (stat(path, &sb))
		return -1;
	f = fopen("/proc/locks", "r");
	if (!f)
		return -1;
	/* "1: FLOCK  ADVISORY  WRITE 1234 00:1a:5678 0 EOF": the device:inode field. */
	while (!found && fgets(line, sizeof(line), f)) {
		for (tok = strtok_r(line, " \t\n", &save); tok && !found;
		     tok = strtok_r(NULL, " \t\n", &save)) {
			if (sscanf(tok, "%x:%x:%lu", &maj, &min, &ino) == 3 &&
			    maj == major(sb.st_dev) && min == minor(sb.st_dev) && ino == sb.st_ino)
				found = 1;
		}
	}
	fclose(f);
	return found;
}

/*
 * Is the daemon of this pin directory alive? Its pid file names it and the
 * daemon holds an flock on the file for its whole life: a pid that still
 * exists but whose file nobody locks was reused by another process.
 */
static void status_daemon(const struct ins_ctx *c, struct st_info *si)
{
	char proc[64], line[32];
	FILE *f;
	char *end;
	int err;

	err = sp_pidfile_path(c->dir, si->pidfile, sizeof(si->pidfile));
	if (err) {
		ins_err(c, "pid file name for %s: %s", c->dir, strerror(-err));
		si->pidfile[0] = '\0';
		return;
	}
	f = fopen(si->pidfile, "r");
	if (!f) {
		if (errno != ENOENT)
			ins_err(c, "read pid file %s: %s", si->pidfile, strerror(errno));
		return;
	}
	if (fgets(line, sizeof(line), f)) {
		errno = 0;
		si->pid = strtol(line, &end, 10);
		if (errno || end == line || si->pid <= 0 || si->pid > INT_MAX)
			si->pid = 0;
		/* The daemon adds "ready" once its first full sync is applied and
		 * its programs are attached (a restart starts without it). */
		si->synced = fgets(line, sizeof(line), f) && !strncmp(line, "ready", 5);
	}
	fclose(f);
	if (!si->pid) {
		ins_err(c, "pid file %s holds no pid", si->pidfile);
		return;
	}
	snprintf(proc, sizeof(proc), "/proc/%ld", si->pid);
	si->pid_alive = access(proc, F_OK) == 0;
	si->running = si->pid_alive && file_locked(si->pidfile) != 0;
	si->stale = !si->running;
}

/* The first map that is not usable, or NULL. */
static const char *status_first_unpinned(const struct st_info *si)
{
	int m;

	for (m = 0; m < INS_NMAPS; m++)
		if (!si->maps[m].pinned || si->maps[m].err)
			return ins_abi[m].name;
	return NULL;
}

/* The status of conntrack table m (INS_CT4, INS_CT6), or NULL if it was not read. */
static const struct st_map *status_ct(const struct st_info *si, enum ins_map m)
{
	return si->maps[m].pinned && !si->maps[m].err && si->maps[m].entries >= 0 ? &si->maps[m] :
										    NULL;
}

/* Conntrack at 90% or more of its capacity: the LRU is evicting, or about
 * to, and what it evicts may be live (the daemon's collector removes the
 * expired entries first; what remains is live). */
static bool status_ct_pressure(const struct st_map *ct)
{
	return ct && ct->max_entries && ct->entries * 10 >= (long long)ct->max_entries * 9;
}

/* Either table under pressure. */
static bool status_ct_pressure_any(const struct st_info *si)
{
	return status_ct_pressure(status_ct(si, INS_CT4)) ||
	       status_ct_pressure(status_ct(si, INS_CT6));
}

static int status_json(const struct ins_ctx *c, const struct st_info *si)
{
	struct json_object *o, *a = NULL, *e = NULL;
	const struct st_map *sm;
	size_t i;
	int err = 0;

	o = json_object_new_object();
	if (!o)
		return -ENOMEM;
	err = err ?: jset(o, "pin_dir", jstr(c->dir));
	err = err ?: jset(o, "pin_dir_exists", jbool(si->dir_exists));
	err = err ?: jset(o, "bpffs", jbool(si->bpffs));
	err = err ?: jset(o, "pid_file", jstr(si->pidfile));
	err = err ?: jset(o, "running", jbool(si->running));
	err = err ?: jset(o, "synced", jbool(si->synced));
	if (si->pid)
		err = err ?: jset(o, "pid", ji64(si->pid));
	else
		err = err ?: jset_null(o, "pid");
	err = err ?: jset(o, "ready", jbool(si->ready));
	err = err ?: jset(o, "ct_pressure", jbool(status_ct_pressure_any(si)));
	err = err ?: jset(o, "maps", a = json_object_new_array());
	for (i = 0; i < INS_NMAPS && !err; i++) {
		sm = &si->maps[i];
		err = jpush(a, e = json_object_new_object());
		err = err ?: jset(e, "name", jstr(ins_abi[i].name));
		err = err ?: jset(e, "pinned", jbool(sm->pinned));
		if (!sm->pinned || sm->err)
			continue;
		err = err ?: jset(e, "type", jstr(sm->type));
		err = err ?: jset(e, "max_entries", ji64(sm->max_entries));
		if (sm->entries >= 0)
			err = err ?: jset(e, "entries", ji64(sm->entries));
		else
			err = err ?: jset_null(e, "entries");
		err = err ?: jset(e, "key_size", ji64(sm->key_size));
		err = err ?: jset(e, "value_size", ji64(sm->value_size));
		err = err ?: jset(e, "abi_ok", jbool(!strcmp(sm->check, "ok")));
		if (strcmp(sm->check, "ok"))
			err = err ?: jset(e, "abi_problem", jstr(sm->check));
	}
	err = err ?: jset(o, "links", a = json_object_new_array());
	for (i = 0; i < si->n_links && !err; i++) {
		const struct st_link *l = &si->links[i];

		err = jpush(a, e = json_object_new_object());
		err = err ?: jset(e, "pin", jstr(l->pin));
		err = err ?: jset(e, "type", jstr(l->type));
		err = err ?: jset(e, "link_id", ji64(l->id));
		err = err ?: jset(e, "prog_id", ji64(l->prog_id));
		err = err ?: jset(e, "prog_name", jstr(l->prog));
		if (l->ifname[0]) {
			err = err ?: jset(e, "ifindex", ji64(l->ifindex));
			err = err ?: jset(e, "ifname", jstr(l->ifname));
		}
	}
	err = err ?: jset(o, "xdp", a = json_object_new_array());
	for (i = 0; i < si->n_xdp && !err; i++) {
		const struct st_xdp *x = &si->xdp[i];

		err = jpush(a, e = json_object_new_object());
		err = err ?: jset(e, "ifname", jstr(x->ifname));
		err = err ?: jset(e, "ifindex", ji64(x->ifindex));
		err = err ?: jset(e, "mode", jstr(x->mode));
		err = err ?: jset(e, "prog_id", ji64(x->prog_id));
		err = err ?: jset(e, "prog_name", jstr(x->prog));
	}
	if (err) {
		json_object_put(o);
		ins_err(c, "build JSON: %s", strerror(-err));
		return err;
	}
	return jprint(c, o);
}

static void status_text(const struct ins_ctx *c, const struct st_info *si)
{
	static const char *const mhead[] = { "MAP",	"PINNED",  "TYPE",
					     "MAX_ENTRIES", "ENTRIES", "CHECK" };
	static const char *const lhead[] = { "LINK", "TYPE", "INTERFACE", "PROG_ID", "PROGRAM" };
	static const char *const xhead[] = { "INTERFACE", "MODE", "PROG_ID", "PROGRAM" };
	char max[INS_NUM_LEN], ent[INS_NUM_LEN], pid[INS_NUM_LEN];
	struct tab t;
	size_t i;
	int pass;

	if (!si->dir_exists && si->dir_errno && si->dir_errno != ENOENT)
		printf("pin dir   %s (cannot access: %s)\n", c->dir, strerror(si->dir_errno));
	else
		printf("pin dir   %s%s\n", c->dir,
		       !si->dir_exists ? " (does not exist)" :
		       si->bpffs       ? " (bpffs)" :
					 " (not on bpffs)");
	if (si->running)
		printf("daemon    running (pid %ld)\n", si->pid);
	else if (si->stale)
		printf("daemon    not running (stale pid file: pid %ld %s)\n", si->pid,
		       si->pid_alive ? "does not hold its lock" : "is gone");
	else
		printf("daemon    not running\n");
	printf("pid file  %s\n", si->pidfile[0] ? si->pidfile : "-");
	if (si->ready)
		printf("state     ready\n");
	else if (!si->n_pinned)
		printf("state     not ready: nothing pinned\n");
	else if (!si->running)
		printf("state     not ready: daemon not running "
		       "(pinned maps and links stay in force)\n");
	else if (status_first_unpinned(si))
		printf("state     not ready: %s not pinned\n", status_first_unpinned(si));
	else
		printf("state     not ready: the daemon is starting (first sync not applied yet)\n");
	for (i = 0; i < 2; i++) {
		const struct st_map *ct = status_ct(si, i ? INS_CT6 : INS_CT4);

		if (!ct)
			continue;
		printf("conntrack %s %lld of %u entries (%.0f%%)%s\n", i ? "ipv6" : "ipv4",
		       ct->entries, ct->max_entries,
		       ct->max_entries ? 100.0 * (double)ct->entries / ct->max_entries : 0.0,
		       !status_ct_pressure(ct) ? "" :
		       i ? ": PRESSURE, new flows evict live ones (raise --ct-size-v6)" :
			   ": PRESSURE, new flows evict live ones (raise --ct-size)");
	}
	putchar('\n');

	if (!si->n_pinned && !si->first_err) {
		printf("no pinned maps at %s\n", c->dir);
	} else {
		tab_init(&t, mhead, ARRAY_SIZE(mhead), "lllrrl");
		for (pass = 0; pass < 2; pass++) {
			if (pass)
				tab_head(&t);
			for (i = 0; i < INS_NMAPS; i++) {
				const struct st_map *sm = &si->maps[i];
				bool ok = sm->pinned && !sm->err;
				const char *pinned = sm->err ? "error" : sm->pinned ? "yes" : "no";
				const char *cells[] = { ins_abi[i].name,
							pinned,
							ok ? sm->type : "-",
							ok ? max : "-",
							ok && sm->entries >= 0 ? ent : "-",
							ok ? sm->check : "-" };

				snprintf(max, sizeof(max), "%u", sm->max_entries);
				snprintf(ent, sizeof(ent), "%lld", sm->entries);
				if (pass)
					tab_row(&t, cells);
				else
					tab_measure(&t, cells);
			}
		}
	}

	putchar('\n');
	if (!si->n_links) {
		printf("no pinned links in %s/links\n", c->dir);
	} else {
		tab_init(&t, lhead, ARRAY_SIZE(lhead), "lllrl");
		for (pass = 0; pass < 2; pass++) {
			if (pass)
				tab_head(&t);
			for (i = 0; i < si->n_links; i++) {
				const struct st_link *l = &si->links[i];
				const char *cells[] = { l->pin, l->type,
							l->ifname[0] ? l->ifname : "-", pid,
							l->prog[0] ? l->prog : "-" };

				snprintf(pid, sizeof(pid), "%u", l->prog_id);
				if (pass)
					tab_row(&t, cells);
				else
					tab_measure(&t, cells);
			}
		}
	}

	putchar('\n');
	if (!si->n_xdp) {
		printf("no sp_* XDP program on any interface of this network namespace\n");
		return;
	}
	tab_init(&t, xhead, ARRAY_SIZE(xhead), "llrl");
	for (pass = 0; pass < 2; pass++) {
		if (pass)
			tab_head(&t);
		for (i = 0; i < si->n_xdp; i++) {
			const struct st_xdp *x = &si->xdp[i];
			const char *cells[] = { x->ifname, x->mode, pid, x->prog };

			snprintf(pid, sizeof(pid), "%u", x->prog_id);
			if (pass)
				tab_row(&t, cells);
			else
				tab_measure(&t, cells);
		}
	}
}

int cmd_status(int argc, char **argv)
{
	struct st_info *si;
	struct statfs sfs;
	struct ins_ctx c;
	struct stat sb;
	int err;

	err = ins_parse(&status_cmd, argc, argv, &c);
	if (err)
		return err > 0 ? 0 : err;
	si = calloc(1, sizeof(*si));
	if (!si) {
		ins_err(&c, "status: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	si->dir_exists = stat(c.dir, &sb) == 0 && S_ISDIR(sb.st_mode);
	si->dir_errno = si->dir_exists ? 0 : errno;
	si->bpffs = si->dir_exists && statfs(c.dir, &sfs) == 0 &&
		    (unsigned long)sfs.f_type == (unsigned long)BPF_FS_MAGIC;
	status_daemon(&c, si);
	if (si->dir_exists)
		status_maps(&c, si);
	/*
	 * Ready: the daemon runs, has said so in its pid file (first sync
	 * applied, programs attached), and every map is pinned. libbpf pins
	 * the maps one by one while the daemon loads, so sp_services alone can
	 * be there before the datapath is. (A layout mismatch only concerns
	 * this CLI: it shows in CHECK but does not make the node unready.)
	 */
	si->ready = si->running && si->synced && si->n_pinned == INS_NMAPS &&
		    !status_first_unpinned(si);
	err = si->dir_exists ? status_links(&c, si) : 0;
	err = err ?: status_xdp(&c, si);
	if (err)
		goto out;
	if (c.json)
		err = status_json(&c, si);
	else
		status_text(&c, si);
	err = err ?: ins_flush(&c);
	if (err)
		goto out;
	/* Exit status: 0 only when ready (see status_cmd). */
	if (!si->n_pinned && !si->dir_exists && si->dir_errno && si->dir_errno != ENOENT)
		err = -si->dir_errno;
	else if (!si->n_pinned)
		err = si->first_err ?: -ENOENT;
	else if (!si->running)
		err = -ESRCH;
	else if (!si->ready)
		err = -EAGAIN;
out:
	free(si->links);
	free(si->xdp);
	free(si);
	return err;
}

/* ------------------------------------------------------------------------ */
/* trace (the work is in user/trace.c)                                      */
/* ------------------------------------------------------------------------ */

int cmd_trace(int argc, char **argv)
{
	struct sp_trace_result *res = NULL;
	struct sp_trace_req r;
	struct ins_ctx c;
	uint8_t sfam, proto;
	char why[256];
	int err;

	err = ins_parse(&trace_cmd, argc, argv, &c);
	if (err)
		return err < 0 ? err : 0;
	memset(&r, 0, sizeof(r));
	r.dir = c.dir;
	r.iface = c.iface;
	if (c.external + c.from_pod + c.from_host > 1) {
		ins_err(&c, "--external, --from-pod and --from-host exclude each other");
		return -EINVAL;
	}
	r.from = c.from_pod ? SP_TRACE_POD : c.from_host ? SP_TRACE_HOST : SP_TRACE_EXTERNAL;
	if (c.syn && c.established) {
		ins_err(&c, "--syn and --established exclude each other");
		return -EINVAL;
	}
	r.established = c.established;
	if (sp_trace_parse_endpoint(c.arg, false, &sfam, &r.src, &r.sport, &proto, why,
				    sizeof(why))) {
		ins_err(&c, "source %s", why);
		return -EINVAL;
	}
	if (sp_trace_parse_endpoint(c.arg2, true, &r.family, &r.dst, &r.dport, &r.proto, why,
				    sizeof(why))) {
		ins_err(&c, "destination %s", why);
		return -EINVAL;
	}
	if (sfam != r.family) {
		ins_err(&c, "source and destination must be of one family (IPv4 or IPv6)");
		return -EINVAL;
	}
	if (r.proto != IPPROTO_TCP && (c.syn || c.established)) {
		ins_err(&c, "--syn and --established are for TCP");
		return -EINVAL;
	}
	if (!r.sport)
		r.sport = SP_TRACE_DEFAULT_SPORT;
	res = calloc(1, sizeof(*res));
	if (!res) {
		ins_err(&c, "%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	err = sp_trace_run(&r, res, why, sizeof(why));
	if (err)
		ins_err(&c, "%s", why);
	else
		err = sp_trace_print(&r, res, c.json);
	free(res);
	return err;
}

/* ------------------------------------------------------------------------ */
/* monitor (the work is in user/monitor.c)                                  */
/* ------------------------------------------------------------------------ */

int cmd_monitor(int argc, char **argv)
{
	struct sp_mon_req r;
	struct ins_ctx c;
	char why[512] = "";
	int err;

	err = ins_parse(&monitor_cmd, argc, argv, &c);
	if (err)
		return err < 0 ? err : 0;
	memset(&r, 0, sizeof(r));
	r.dir = c.dir;
	r.service = c.service;
	r.address = c.address;
	r.types = c.types;
	r.rate = c.rate;
	r.count = c.count;
	r.seconds = c.seconds;
	r.json = c.json;
	if (c.rate > 1000000) {
		ins_err(&c, "--rate: at most 1000000 events a second");
		return -EINVAL;
	}
	err = sp_monitor_run(&r, why, sizeof(why));
	if (err)
		ins_err(&c, "%s", why);
	return err ?: ins_flush(&c);
}
