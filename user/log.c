// SPDX-License-Identifier: Apache-2.0
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <bpf/libbpf.h>
#include "log.h"

int sp_log_level = SP_LOG_INFO;

static const char *const level_names[] = { "error", "warning", "info", "debug" };

void sp_log(int level, const char *fmt, ...)
{
	struct timespec ts;
	struct tm tm;
	va_list ap;

	if (level > sp_log_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	/* One line, whole: stderr is unbuffered, so each call below is a
	 * write of its own, and another thread's line (the Kubernetes
	 * watcher's) could land between the prefix and the message (the
	 * e2e tests' wait for "info: running:" then missed it). The stream's
	 * lock holds other threads' stdio on stderr off until the newline. */
	flockfile(stderr);
	fprintf(stderr, "%02d:%02d:%02d.%03ld %s: ", tm.tm_hour, tm.tm_min, tm.tm_sec,
		ts.tv_nsec / 1000000, level_names[level < 0 ? 0 : level > 3 ? 3 : level]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	funlockfile(stderr);
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	/* libbpf is chatty and its warnings are usually explained by our own
	 * error message; show it only with -v. */
	if (sp_log_level < SP_LOG_DEBUG)
		return 0;
	(void)level;
	return vfprintf(stderr, fmt, ap);
}

void sp_log_setup_libbpf(void)
{
	libbpf_set_print(libbpf_print);
}
