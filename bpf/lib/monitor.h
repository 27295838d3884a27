/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `svcplane monitor`: datapath events (new flows, rejects, drops with their
 * reason, live flows that lost their reply entry) into the ring buffer
 * sp_events, rate-limited, and only while the monitor holds the gate open
 * (struct sp_mon_gate in include/svcplane.h).
 *
 * Cost when nobody monitors: SP_MONITOR() at an event site is one load of
 * the gate from the .bss and a branch not taken; event sites are new flows
 * and drops, not every packet. The work is in a global function, verified
 * once, whose frame stays empty: the call chain's stack is at its limit.
 * The dry run of `svcplane trace` (lib/trace.h) emits nothing.
 */
#ifndef SP_LIB_MONITOR_H
#define SP_LIB_MONITOR_H

#include "common.h"
#include "maps.h"
#include "parse.h"
#include "trace.h"

#define SP_MON_NSEC 1000000000ULL

/* The gate's token bucket: true if one more event fits the rate. Shared
 * by every CPU without a lock: a race gains or loses a token, which a
 * rate limit for humans can afford. */
static __always_inline bool sp_monitor_take(__u64 now)
{
	__u64 rate = sp_monitor.rate, elapsed, credit;

	if (!rate)
		return true;
	elapsed = now - sp_monitor.last;
	if (!sp_monitor.last || elapsed > SP_MON_NSEC)
		elapsed = SP_MON_NSEC;
	credit = sp_monitor.credit + elapsed * rate;
	if (credit > rate * SP_MON_NSEC)
		credit = rate * SP_MON_NSEC;
	sp_monitor.last = now;
	if (credit < SP_MON_NSEC) {
		sp_monitor.credit = credit;
		return false;
	}
	sp_monitor.credit = credit - SP_MON_NSEC;
	return true;
}

/*
 * Emit one event about packet p (as it arrived): what = type | reason << 8
 * | hook << 16. Global (checked once, on its own); p may be NULL to the
 * verifier. Returns 0.
 */
__noinline int sp_monitor_emit(const struct sp_pkt *p, __u32 what, __u32 svc_id, __u32 backend_id)
{
	struct sp_mon_ev *e;
	__u64 now;

	if (!p)
		return 0;
	now = sp_now();
	if (now >= sp_monitor.until)
		return 0;
	if (!sp_monitor_take(now)) {
		__sync_fetch_and_add(&sp_monitor.lost, 1);
		return 0;
	}
	e = bpf_ringbuf_reserve(&sp_events, sizeof(*e), 0);
	if (!e) {
		__sync_fetch_and_add(&sp_monitor.lost, 1);
		return 0;
	}
	e->ts = now;
	e->type = what & 0xff;
	e->reason = (what >> 8) & 0xff;
	/* The uplink's TC program runs the TC ingress pipeline. */
	e->hook = (what >> 16) == HOOK_TC_INGRESS && p->uplink ? SP_TH_TC_UPLINK : what >> 16;
	e->family = p->family;
	e->proto = p->proto;
	e->tcp_flags = p->tcp_flags;
	e->pad[0] = 0;
	e->pad[1] = 0;
	e->svc_id = svc_id;
	e->backend_id = backend_id;
	e->saddr = p->saddr;
	e->daddr = p->daddr;
	e->sport = p->sport;
	e->dport = p->dport;
	e->pad2 = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

#define SP_MONITOR(p, type, reason, hook, svc_id, backend_id)                              \
	do {                                                                               \
		if (!SP_DRY && sp_monitor.until)                                           \
			sp_monitor_emit(p, (type) | (reason) << 8 | (hook) << 16, svc_id,  \
					backend_id);                                       \
	} while (0)

#endif /* SP_LIB_MONITOR_H */
