// SPDX-License-Identifier: Apache-2.0
/*
 * The subcommands and what is generated from their option tables: each
 * command's --help, the bash completion script (`svcplane completion bash`)
 * and the man page (`svcplane man`). All three read the same struct sp_opt
 * tables, so an option cannot be in one and missing from another
 * (selftests/user/test_docs.sh checks it from the outside).
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include "cli.h"

#define INS_DOC(cmd)                                           \
	static const struct sp_cmd_doc *doc_##cmd(void)        \
	{                                                      \
		return sp_inspect_doc(#cmd);                   \
	}
INS_DOC(services)
INS_DOC(backends)
INS_DOC(conntrack)
INS_DOC(maglev)
INS_DOC(stats)
INS_DOC(status)

static const struct sp_cmd_doc *doc_completion(void);
static const struct sp_cmd_doc *doc_man(void);

const struct sp_cmd sp_cmds[] = {
	{ "run", cmd_run, "load the datapath, attach it and keep the maps in sync (the daemon)",
	  sp_run_doc },
	{ "services", cmd_services, "list Services: frontends, backends, Maglev size, counters",
	  doc_services },
	{ "backends", cmd_backends, "list backends (endpoint address:port) and their users",
	  doc_backends },
	{ "conntrack", cmd_conntrack, "list connection-tracking entries", doc_conntrack },
	{ "maglev", cmd_maglev, "show one Service's Maglev table: size, shares, digest",
	  doc_maglev },
	{ "stats", cmd_stats, "global counters and drop reasons", doc_stats },
	{ "status", cmd_status, "is the daemon running, what is pinned and attached", doc_status },
	{ "check-config", cmd_check_config, "validate a config file and exit",
	  sp_check_config_doc },
	{ "detach", cmd_detach, "remove programs from every interface and unpin everything",
	  sp_detach_doc },
	{ "completion", cmd_completion, "print the bash completion script", doc_completion },
	{ "man", cmd_man, "print the manual page (svcplane.8)", doc_man },
};
const size_t sp_n_cmds = sizeof(sp_cmds) / sizeof(sp_cmds[0]);

/* A letter or digit short option (the others are long-only values >= 256). */
static bool has_short(const struct sp_opt *o)
{
	return o->key > 0 && o->key < 128 && isalnum(o->key);
}

int sp_opts_getopt(const struct sp_opt *t, struct option *lo, size_t nlo, char *so, size_t nso)
{
	size_t n = 0, s = 0;

	for (; t->name || t->help; t++) {
		if (!t->name)
			continue;
		if (n + 1 >= nlo || s + 3 >= nso)
			return -E2BIG;
		lo[n].name = t->name;
		lo[n].has_arg = t->metavar ? required_argument : no_argument;
		lo[n].flag = NULL;
		lo[n].val = t->key;
		n++;
		if (has_short(t)) {
			so[s++] = (char)t->key;
			if (t->metavar)
				so[s++] = ':';
		}
	}
	memset(&lo[n], 0, sizeof(lo[n]));
	so[s] = '\0';
	return 0;
}

/* "-c, --config FILE" or "    --dsr": the left column of --help. */
static void opt_lhs(const struct sp_opt *o, char *buf, size_t len)
{
	if (has_short(o))
		snprintf(buf, len, "-%c, --%s%s%s", o->key, o->name, o->metavar ? " " : "",
			 o->metavar ? o->metavar : "");
	else
		snprintf(buf, len, "    --%s%s%s", o->name, o->metavar ? " " : "",
			 o->metavar ? o->metavar : "");
}

/* Help text starts at this column; a longer left column pushes the first
 * line two spaces past its end, and the next lines stay here. */
#define HELP_COL 31

void sp_cmd_usage(FILE *f, const struct sp_cmd_doc *d)
{
	const struct sp_opt *o;
	bool first = true;
	char lhs[96];

	fprintf(f, "Usage: svcplane %s [OPTIONS]%s%s\n\n%s\n", d->name, d->args ? " " : "",
		d->args ? d->args : "", d->text);
	for (o = d->opts; o->name || o->help; o++) {
		const char *h = o->help, *nl;
		int col;

		if (!o->name) {
			fprintf(f, "\n%s\n", o->help);
			first = false;
			continue;
		}
		if (first) {
			fprintf(f, "\nOptions:\n");
			first = false;
		}
		opt_lhs(o, lhs, sizeof(lhs));
		col = fprintf(f, "  %s", lhs);
		fprintf(f, "%*s", col < HELP_COL - 1 ? HELP_COL - col : 2, "");
		for (;;) {
			nl = strchr(h, '\n');
			fprintf(f, "%.*s\n", nl ? (int)(nl - h) : (int)strlen(h), h);
			if (!nl)
				break;
			h = nl + 1;
			fprintf(f, "%*s", HELP_COL, "");
		}
	}
}

/* ---- bash completion ---------------------------------------------------------------- */

/* What completes an option's argument (or a positional one): a bash
 * compgen argument list, or NULL for nothing to offer. */
static const char *compgen_for(const char *metavar, const char *choices, char *buf, size_t len)
{
	const char *c;

	if (choices) {
		snprintf(buf, len, "-W '%s'", choices);
		return buf;
	}
	if (!metavar)
		return NULL;
	if (!strcmp(metavar, "FILE"))
		return "-f";
	if (!strcmp(metavar, "DIR"))
		return "-d";
	if (!strcmp(metavar, "IFACE"))
		return "-W \"$(ls /sys/class/net 2>/dev/null)\"";
	for (c = metavar; *c; c++)
		if (!islower((unsigned char)*c) && *c != ' ' && *c != '-')
			return NULL;
	snprintf(buf, len, "-W '%s'", metavar); /* literal words ("bash") */
	return buf;
}

static void completion_cmd(FILE *f, const struct sp_cmd_doc *d)
{
	const struct sp_opt *o;
	const char *cg;
	char buf[256];
	bool any = false, free_form = false;

	fprintf(f, "\t%s)\n", d->name);
	/* After an option that takes an argument: what completes it. */
	for (o = d->opts; o->name || o->help; o++) {
		if (!o->name || !o->metavar)
			continue;
		cg = compgen_for(o->metavar, o->choices, buf, sizeof(buf));
		if (!cg) {
			free_form = true;
			continue;
		}
		fprintf(f, "%s\t\t", any ? "" : "\t\tcase $prev in\n");
		any = true;
		if (has_short(o))
			fprintf(f, "-%c | ", o->key);
		fprintf(f, "--%s) _svcplane_reply %s; return ;;\n", o->name, cg);
	}
	if (free_form) {
		/* Addresses, numbers, names: nothing to offer. */
		fprintf(f, "%s\t\t", any ? "" : "\t\tcase $prev in\n");
		any = false;
		for (o = d->opts; o->name || o->help; o++) {
			if (!o->name || !o->metavar || compgen_for(o->metavar, o->choices, buf, sizeof(buf)))
				continue;
			if (has_short(o))
				fprintf(f, "%s-%c", any ? " | " : "", o->key);
			fprintf(f, "%s--%s", any || has_short(o) ? " | " : "", o->name);
			any = true;
		}
		fprintf(f, ") return ;;\n");
	}
	if (any)
		fprintf(f, "\t\tesac\n");
	fprintf(f, "\t\topts='");
	any = false;
	for (o = d->opts; o->name || o->help; o++) {
		if (!o->name)
			continue;
		if (has_short(o))
			fprintf(f, "%s-%c", any ? " " : "", o->key);
		fprintf(f, "%s--%s", any || has_short(o) ? " " : "", o->name);
		any = true;
	}
	fprintf(f, "'\n");
	cg = d->args ? compgen_for(d->args, NULL, buf, sizeof(buf)) : NULL;
	if (cg)
		fprintf(f, "\t\targs=(%s)\n", cg);
	fprintf(f, "\t\t;;\n");
}

static void completion_bash(FILE *f)
{
	size_t i;

	fprintf(f, "# bash completion for svcplane(8). Generated by `svcplane completion bash`\n"
		   "# from the option tables that `svcplane COMMAND --help` prints.\n"
		   "# shellcheck shell=bash\n\n"
		   "_svcplane_reply() { mapfile -t COMPREPLY < <(compgen \"$@\" -- \"$cur\"); }\n\n"
		   "_svcplane() {\n"
		   "\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}\n"
		   "\tlocal opts='' args=()\n"
		   "\tCOMPREPLY=()\n"
		   "\tif [ \"$COMP_CWORD\" -eq 1 ]; then\n"
		   "\t\t_svcplane_reply -W '--help --version");
	for (i = 0; i < sp_n_cmds; i++)
		fprintf(f, " %s", sp_cmds[i].name);
	fprintf(f, "'\n\t\treturn\n\tfi\n\tcase ${COMP_WORDS[1]} in\n");
	for (i = 0; i < sp_n_cmds; i++)
		completion_cmd(f, sp_cmds[i].doc());
	fprintf(f, "\t*) return ;;\n\tesac\n"
		   "\tif [[ $cur == -* ]] || [ ${#args[@]} -eq 0 ]; then\n"
		   "\t\t_svcplane_reply -W \"$opts\"\n"
		   "\telse\n"
		   "\t\t_svcplane_reply \"${args[@]}\"\n"
		   "\tfi\n"
		   "}\n"
		   "complete -F _svcplane svcplane\n");
}

static const struct sp_opt completion_opts[] = {
	SP_OPT_HELP,
	SP_OPT_END,
};

static const struct sp_cmd_doc completion_doc = {
	"completion", "bash",
	"Print the bash completion script for svcplane, generated from the option\n"
	"tables each command's --help comes from. Use it with\n"
	"  source <(svcplane completion bash)\n"
	"or install it as /usr/share/bash-completion/completions/svcplane\n"
	"(`make install` does).",
	completion_opts,
};

static const struct sp_cmd_doc *doc_completion(void)
{
	return &completion_doc;
}

/* Parse a generator's argv: only --help. Returns 1 after --help, 0, or
 * -EINVAL after saying what was wrong. */
static int gen_parse(const struct sp_cmd_doc *d, int argc, char **argv)
{
	struct option lo[4];
	char so[8];
	int c;

	if (sp_opts_getopt(d->opts, lo, 4, so, sizeof(so)))
		return -EINVAL;
	optind = 0;
	while ((c = getopt_long(argc, argv, so, lo, NULL)) != -1) {
		if (c == 'h') {
			sp_cmd_usage(stdout, d);
			return 1;
		}
		fprintf(stderr, "Try 'svcplane %s --help'.\n", d->name);
		return -EINVAL;
	}
	return 0;
}

int cmd_completion(int argc, char **argv)
{
	int err = gen_parse(&completion_doc, argc, argv);

	if (err)
		return err > 0 ? 0 : err;
	if (optind != argc - 1 || strcmp(argv[optind], "bash")) {
		fprintf(stderr, "svcplane completion: expected 'bash' (the only shell supported)\n");
		return -EINVAL;
	}
	completion_bash(stdout);
	return fflush(stdout) ? -errno : 0;
}

/* ---- man page ----------------------------------------------------------------------- */

/* Text for roff: backslashes and hyphens escaped, no line starting with a
 * control character. With join, newlines become spaces (help text is
 * wrapped for a terminal; man wraps it again). */
static void roff_text(FILE *f, const char *s, bool join)
{
	bool bol = true;
	char prev = 0;

	for (; *s; prev = *s++) {
		if (bol && (*s == '.' || *s == '\''))
			fputs("\\&", f);
		bol = false;
		switch (*s) {
		case '\\':
			fputs("\\e", f);
			break;
		case '-':
			fputs("\\-", f);
			break;
		case '\n':
			/* "service.kubernetes.io/\nservice-proxy-name" is one word */
			if (!join)
				fputc('\n', f);
			else if (prev != '/')
				fputc(' ', f);
			bol = !join;
			break;
		default:
			fputc(*s, f);
		}
	}
}

static void man_cmd(FILE *f, const struct sp_cmd *c)
{
	const struct sp_cmd_doc *d = c->doc();
	const struct sp_opt *o;

	fputs(".SS \"svcplane ", f);
	roff_text(f, d->name, false);
	fputs(" [OPTIONS]", f);
	if (d->args) {
		fputs(" ", f);
		roff_text(f, d->args, false);
	}
	fputs("\"\n", f);
	fputs(".nf\n", f);
	roff_text(f, d->text, false);
	fputs("\n.fi\n", f);
	for (o = d->opts; o->name || o->help; o++) {
		if (!o->name) {
			fputs(".PP\n\\fI", f);
			roff_text(f, o->help, true);
			fputs("\\fR\n", f);
			continue;
		}
		fputs(".TP\n", f);
		if (has_short(o))
			fprintf(f, "\\fB\\-%c\\fR, ", o->key);
		fputs("\\fB\\-\\-", f);
		roff_text(f, o->name, false);
		fputs("\\fR", f);
		if (o->metavar) {
			fputs(" \\fI", f);
			roff_text(f, o->metavar, false);
			fputs("\\fR", f);
		}
		fputs("\n", f);
		roff_text(f, o->help, true);
		fputs("\n", f);
	}
}

static void man_page(FILE *f)
{
	size_t i;

	fputs(".\\\" Generated by `svcplane man` from the option tables of `svcplane COMMAND --help`.\n"
	      ".TH SVCPLANE 8 \"\" \"svcplane 0.1.0\" \"System Administration\"\n"
	      ".SH NAME\n"
	      "svcplane \\- an eBPF/XDP Service dataplane that replaces kube\\-proxy\n"
	      ".SH SYNOPSIS\n"
	      ".B svcplane\n"
	      ".I COMMAND\n"
	      "[\\fIOPTIONS\\fR]\n"
	      ".SH DESCRIPTION\n"
	      "svcplane makes Kubernetes Service addresses (ClusterIP, NodePort, LoadBalancer IP,\n"
	      "externalIP) work on a node with XDP and TC programs: a packet to a Service is\n"
	      "rewritten to one of its ready endpoints, chosen with a Maglev table, and replies\n"
	      "are rewritten back. The daemon (\\fBsvcplane run\\fR) keeps the BPF maps equal to a\n"
	      "static config file or to the Kubernetes API; the other commands read the maps it\n"
	      "pinned.\n"
	      ".SH COMMANDS\n",
	      f);
	for (i = 0; i < sp_n_cmds; i++) {
		fputs(".TP\n\\fB", f);
		roff_text(f, sp_cmds[i].name, false);
		fputs("\\fR\n", f);
		roff_text(f, sp_cmds[i].summary, true);
		fputs("\n", f);
	}
	fputs(".SH OPTIONS\n", f);
	for (i = 0; i < sp_n_cmds; i++)
		man_cmd(f, &sp_cmds[i]);
	fputs(".SH FILES\n"
	      ".TP\n/sys/fs/bpf/svcplane/\n"
	      "the pinned maps and links (\\fB\\-\\-bpffs\\-dir\\fR)\n"
	      ".TP\n/run/svcplane/\n"
	      "the daemon's pid file and lock, one per pin directory\n"
	      ".SH EXIT STATUS\n"
	      "0 on success, 2 for a usage or input error, 1 for any other failure.\n"
	      ".SH SEE ALSO\n"
	      ".BR bpftool (8),\n"
	      ".BR ip (8);\n"
	      "README.md, docs/CONFIG.md and docs/KUBERNETES.md in the source tree.\n",
	      f);
}

static const struct sp_opt man_opts[] = {
	SP_OPT_HELP,
	SP_OPT_END,
};

static const struct sp_cmd_doc man_doc = {
	"man", NULL,
	"Print svcplane's manual page (roff), generated from the option tables each\n"
	"command's --help comes from. Read it with `svcplane man | man -l -`;\n"
	"`make install` installs it as svcplane.8.",
	man_opts,
};

static const struct sp_cmd_doc *doc_man(void)
{
	return &man_doc;
}

int cmd_man(int argc, char **argv)
{
	int err = gen_parse(&man_doc, argc, argv);

	if (err)
		return err > 0 ? 0 : err;
	if (optind != argc) {
		fprintf(stderr, "svcplane man: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	man_page(stdout);
	return fflush(stdout) ? -errno : 0;
}
