// SPDX-License-Identifier: Apache-2.0
/*
 * svcplane: one binary, subcommands. main() is the only place that turns
 * a -errno into an exit status.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "cli.h"
#include "log.h"

struct sp_cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct sp_cmd cmds[] = {
	{ "run", cmd_run, "load the datapath, attach it and keep the maps in sync (the daemon)" },
	{ "services", cmd_services, "list Services: frontends, backends, Maglev size, counters" },
	{ "backends", cmd_backends, "list backends (endpoint address:port) and their users" },
	{ "conntrack", cmd_conntrack, "list connection-tracking entries" },
	{ "maglev", cmd_maglev, "show one Service's Maglev table: size, shares, digest" },
	{ "stats", cmd_stats, "global counters and drop reasons" },
	{ "status", cmd_status, "is the daemon running, what is pinned and attached" },
	{ "trace", cmd_trace, "what the datapath would do with one packet, decision by decision" },
	{ "monitor", cmd_monitor, "stream datapath events: new flows, rejects, drops with reason" },
	{ "check-config", cmd_check_config, "validate a config file and exit" },
	{ "detach", cmd_detach, "remove programs from every interface and unpin everything" },
};

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "Usage: svcplane COMMAND [OPTIONS]\n\n"
		   "An eBPF/XDP Service dataplane that replaces kube-proxy.\n\nCommands:\n");
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(f, "  %-13s %s\n", cmds[i].name, cmds[i].summary);
	fprintf(f, "\nRun 'svcplane COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
	size_t i;
	int err;

	sp_log_setup_libbpf();
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("svcplane 0.1.0\n");
		return 0;
	}
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[1], cmds[i].name))
			continue;
		err = cmds[i].fn(argc - 1, argv + 1);
		if (err == -EINVAL)
			return 2; /* usage or input error, already reported */
		return err ? 1 : 0;
	}
	fprintf(stderr, "svcplane: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return 2;
}
