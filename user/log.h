/* SPDX-License-Identifier: Apache-2.0 */
/* Logging to stderr with a level; -v raises it to debug. */
#ifndef SP_LOG_H
#define SP_LOG_H

enum sp_log_level { SP_LOG_ERR = 0, SP_LOG_WARN, SP_LOG_INFO, SP_LOG_DEBUG };

extern int sp_log_level;

void sp_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Route libbpf's own messages through sp_log, demoted to debug. */
void sp_log_setup_libbpf(void);

#define pr_err(...) sp_log(SP_LOG_ERR, __VA_ARGS__)
#define pr_warn(...) sp_log(SP_LOG_WARN, __VA_ARGS__)
#define pr_info(...) sp_log(SP_LOG_INFO, __VA_ARGS__)
#define pr_debug(...) sp_log(SP_LOG_DEBUG, __VA_ARGS__)

#endif /* SP_LOG_H */
