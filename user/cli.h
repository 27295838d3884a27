/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Subcommands of the svcplane binary. Each takes the arguments after the
 * subcommand name (argv[0] is the subcommand) and returns 0 or -errno;
 * only main() turns that into an exit code. Each prints its own --help.
 */
#ifndef SP_CLI_H
#define SP_CLI_H

int cmd_run(int argc, char **argv); /* user/daemon.c */
int cmd_detach(int argc, char **argv); /* user/daemon.c */
int cmd_services(int argc, char **argv); /* user/inspect.c */
int cmd_backends(int argc, char **argv);
int cmd_conntrack(int argc, char **argv);
int cmd_maglev(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_trace(int argc, char **argv); /* user/inspect.c, user/trace.c */
int cmd_monitor(int argc, char **argv); /* user/inspect.c, user/monitor.c */
int cmd_check_config(int argc, char **argv); /* user/config.c: validate a file and exit */

/* `run`'s node name: given (--node-name), else $NODE_NAME, else the
 * hostname lowercased, as kubelet names the Node; NULL if none. */
const char *sp_node_name_default(const char *given);

#endif /* SP_CLI_H */
