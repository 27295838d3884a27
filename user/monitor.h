/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `svcplane monitor`: a live stream of datapath events (bpf/lib/monitor.h)
 * from the pinned ring buffer sp_events. The datapath writes events only
 * while the gate in its .bss is open; this opens it for SP_MON_LEASE_S
 * seconds at a time and renews it every second, and closes it on exit, so a
 * monitor killed with -9 leaves the datapath silent again within seconds.
 */
#ifndef SP_MONITOR_H
#define SP_MONITOR_H

#include <stdbool.h>

#define SP_MON_LEASE_S 5
#define SP_MON_RATE_DEFAULT 1000 /* events a second, all CPUs together */

struct sp_mon_req {
	const char *dir; /* the daemon's pin directory */
	const char *service; /* NULL, a svc_id, or a substring of the Service port's name */
	const char *address; /* NULL or an address: client, frontend or backend */
	const char *types; /* NULL or a list of new,reject,drop,ct-lost */
	unsigned long rate; /* events a second (0: SP_MON_RATE_DEFAULT) */
	unsigned long count; /* stop after printing this many (0: never) */
	unsigned long seconds; /* stop after this long (0: never; SIGINT stops too) */
	bool json; /* one JSON object a line */
};

/* Run the monitor until count, seconds or a signal. Returns 0, -EINVAL for
 * a bad filter, or -errno (what failed in err). */
int sp_monitor_run(const struct sp_mon_req *r, char *err, size_t errlen);

#endif /* SP_MONITOR_H */
