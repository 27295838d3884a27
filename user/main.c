// SPDX-License-Identifier: Apache-2.0
/*
 * svcplane: one binary, subcommands (the table is in user/cli.c). main() is
 * the only place that turns a -errno into an exit status.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "cli.h"
#include "log.h"

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "Usage: svcplane COMMAND [OPTIONS]\n\n"
		   "An eBPF/XDP Service dataplane that replaces kube-proxy.\n\nCommands:\n");
	for (i = 0; i < sp_n_cmds; i++)
		fprintf(f, "  %-13s %s\n", sp_cmds[i].name, sp_cmds[i].summary);
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
	for (i = 0; i < sp_n_cmds; i++) {
		if (strcmp(argv[1], sp_cmds[i].name))
			continue;
		err = sp_cmds[i].fn(argc - 1, argv + 1);
		if (err == -EINVAL)
			return 2; /* usage or input error, already reported */
		return err ? 1 : 0;
	}
	fprintf(stderr, "svcplane: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return 2;
}
