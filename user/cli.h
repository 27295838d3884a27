/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Subcommands of the svcplane binary. Each takes the arguments after the
 * subcommand name (argv[0] is the subcommand) and returns 0 or -errno;
 * only main() turns that into an exit code. Each prints its own --help.
 */
#ifndef SP_CLI_H
#define SP_CLI_H

#include <getopt.h>
#include <stddef.h>
#include <stdio.h>

#define SP_STR_(x) #x
#define SP_STR(x) SP_STR_(x) /* a numeric default macro, as text in a help string */

/*
 * One option of a command: what getopt_long() parses, what --help prints,
 * and what the bash completion and the man page (`svcplane completion`,
 * `svcplane man`, user/cli.c) are generated from, so none can drift from
 * another. A table ends with SP_OPT_END; an entry with no name is a heading
 * that starts a group of options.
 */
struct sp_opt {
	const char *name; /* long name, without "--"; NULL: a heading */
	int key; /* getopt_long's value: the short option if a letter, else >= 256 */
	const char *metavar; /* the argument (FILE, DIR, IFACE, N...); NULL: takes none */
	const char *help; /* lines separated by '\n' (80 columns in --help) */
	const char *choices; /* the words the argument may be, for completion; NULL: by
			      * metavar (FILE, DIR, IFACE) or none */
};

#define SP_OPT_HEADING(text) { NULL, 0, NULL, text, NULL }
#define SP_OPT_HELP { "help", 'h', NULL, "show this help", NULL }
#define SP_OPT_END { NULL, 0, NULL, NULL, NULL }

/* A command as `svcplane COMMAND --help` and the man page present it. */
struct sp_cmd_doc {
	const char *name;
	const char *args; /* positional arguments after [OPTIONS], NULL if none; a
			   * lowercase word is literal (completion offers it) */
	const char *text; /* what it does: paragraphs, lines of at most 80 columns */
	const struct sp_opt *opts;
};

/* The subcommands, in the order `svcplane --help` lists them (user/cli.c). */
struct sp_cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
	const struct sp_cmd_doc *(*doc)(void);
};
extern const struct sp_cmd sp_cmds[];
extern const size_t sp_n_cmds;

/* Fill getopt_long()'s arrays from t: lo (nlo entries, the last zeroed) and
 * the short options in so (nso bytes). 0 or -E2BIG. */
int sp_opts_getopt(const struct sp_opt *t, struct option *lo, size_t nlo, char *so, size_t nso);
/* Print `svcplane NAME --help` from the command's doc. */
void sp_cmd_usage(FILE *f, const struct sp_cmd_doc *d);

int cmd_run(int argc, char **argv); /* user/daemon.c */
int cmd_detach(int argc, char **argv); /* user/daemon.c */
int cmd_services(int argc, char **argv); /* user/inspect.c */
int cmd_backends(int argc, char **argv);
int cmd_conntrack(int argc, char **argv);
int cmd_maglev(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_check_config(int argc, char **argv); /* user/config.c: validate a file and exit */
int cmd_completion(int argc, char **argv); /* user/cli.c: the bash completion script */
int cmd_man(int argc, char **argv); /* user/cli.c: the man page, svcplane.8 */

/* Each command's doc, from its option table. */
const struct sp_cmd_doc *sp_run_doc(void); /* user/daemon.c */
const struct sp_cmd_doc *sp_detach_doc(void);
const struct sp_cmd_doc *sp_check_config_doc(void); /* user/config.c */
const struct sp_cmd_doc *sp_inspect_doc(const char *name); /* user/inspect.c; NULL if none */

/* `run`'s node name: given (--node-name), else $NODE_NAME, else the
 * hostname lowercased, as kubelet names the Node; NULL if none. */
const char *sp_node_name_default(const char *given);

#endif /* SP_CLI_H */
