// SPDX-License-Identifier: Apache-2.0
/*
 * The rate limit of reject answers (--reject-rate, bpf/lib/reject.h): with
 * 3 answers per second per CPU, a burst of 12 SYNs to a Service with no
 * endpoint gets 3 RSTs (plus whatever the elapsed time earned, measured
 * around the burst, so the test does not depend on the machine's speed)
 * and the rest are dropped and counted reject_rate_limited. With the limit
 * off (0), every SYN is answered.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/pkt_cls.h>

#include "dp_fixture.h"
#include "test.h"

#define BURST 12

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* BURST SYNs from distinct ports; *answered gets the RSTs sent, *elapsed
 * the burst's duration. 0 or -1. */
static int burst(uint32_t rate, int *answered, uint64_t *limited, double *elapsed)
{
	struct fx_dp d;
	struct pkt out;
	double t0;
	int i, v, ret = -1;

	*answered = 0;
	if (fx_prepare(&d, 0, 0))
		goto out;
	d.skel->rodata->cfg_reject_rate = rate;
	if (fx_load(&d) || fx_service(&d, 4, IPPROTO_TCP, "10.96.0.20", 80, NULL, 0, 6))
		goto out;
	t0 = mono_s();
	for (i = 0; i < BURST; i++) {
		struct pkt_spec s = { .family = 4, .proto = IPPROTO_TCP, .saddr = "10.1.0.7",
				      .daddr = "10.96.0.20", .sport = (uint16_t)(43000 + i),
				      .dport = 80, .tcp_flags = PKT_SYN, .seq = 1, .win = 1000 };

		v = fx_run_spec(d.skel->progs.sp_tc_ingress, &s, &out);
		if (v == TC_ACT_REDIRECT)
			(*answered)++;
		else if (v != TC_ACT_SHOT)
			goto out;
	}
	*elapsed = mono_s() - t0;
	*limited = fx_reason_packets(&d, SP_R_REJECT_RATE);
	ret = 0;
out:
	if (d.skel)
		fx_close(&d);
	return ret;
}

int main(void)
{
	uint64_t limited;
	double elapsed;
	int answered, most;
	bool ok;

	if (unshare(CLONE_NEWNET)) {
		fprintf(stderr, "unshare(CLONE_NEWNET): %s\n", strerror(errno));
		sp_test_report("reject_rate/setup", false);
		return 1;
	}
	ok = ASSERT_EQ(burst(3, &answered, &limited, &elapsed), 0, "burst with --reject-rate 3");
	/* the bucket starts full (3), and earns 3 per second of the burst */
	most = 3 + (int)(elapsed * 3) + 1;
	printf("  rate 3/s: %d of %d answered in %.3f s, %llu dropped\n", answered, BURST, elapsed,
	       (unsigned long long)limited);
	ok = ok && ASSERT_TRUE(answered >= 3 && answered <= most, "answers: the burst, and no more") &&
	     ASSERT_EQ(limited, BURST - answered, "the others counted reject_rate_limited");
	sp_test_report("reject_rate/limited", ok);

	ok = ASSERT_EQ(burst(0, &answered, &limited, &elapsed), 0, "burst with --reject-rate 0");
	ok = ok && ASSERT_EQ(answered, BURST, "no limit: every SYN answered") &&
	     ASSERT_EQ(limited, 0, "nothing counted reject_rate_limited");
	sp_test_report("reject_rate/unlimited", ok);
	return sp_test_exit();
}
