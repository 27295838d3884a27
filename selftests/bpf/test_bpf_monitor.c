// SPDX-License-Identifier: Apache-2.0
/*
 * The monitor's datapath side (bpf/lib/monitor.h) through BPF_PROG_TEST_RUN:
 * with the gate closed (the default) nothing reaches the ring buffer; open,
 * a new flow, a reject and a drop each give one event with the packet's
 * tuple, Service, backend and reason; over the gate's rate an event is
 * counted lost instead; a lease that ran out closes the gate; a flow whose
 * reply entry was evicted reports it (ct-lost) when its next packet comes.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/pkt_cls.h>

#include "test.h"
#include "dp_fixture.h"

#define VIP "10.96.0.1"
#define EMPTY "10.96.0.2"
#define BE "10.244.0.11"

static struct fx_dp dp;
static struct ring_buffer *rb;
static struct sp_mon_ev got[8];
static int n_got;

static int on_ev(void *ctx, void *data, size_t size)
{
	(void)ctx;
	if (n_got < 8 && size >= sizeof(got[0]))
		memcpy(&got[n_got], data, sizeof(got[0]));
	n_got++;
	return 0;
}

/* Run one TCP packet from 10.0.0.1:sport to dst:80 through prog; then
 * collect what reached the ring. Returns the verdict. */
static int run_pkt(const struct bpf_program *prog, const char *dst, uint16_t sport, uint8_t flags)
{
	struct pkt_spec s = { .family = 4, .proto = IPPROTO_TCP, .saddr = "10.0.0.1",
			      .daddr = dst, .sport = sport, .dport = 80, .tcp_flags = flags };
	struct pkt out;
	int v;

	n_got = 0;
	v = fx_run_spec(prog, &s, &out);
	ring_buffer__consume(rb);
	return v;
}

static void gate(__u64 until, __u32 rate)
{
	memset(&dp.skel->bss->sp_monitor, 0, sizeof(dp.skel->bss->sp_monitor));
	dp.skel->bss->sp_monitor.rate = rate;
	dp.skel->bss->sp_monitor.until = until;
}

static void test_monitor_off_by_default(void)
{
	ASSERT_EQ(dp.skel->bss->sp_monitor.until, 0, "gate closed after load");
	ASSERT_EQ(run_pkt(dp.skel->progs.sp_xdp, VIP, 1000, PKT_SYN), XDP_PASS, "new flow");
	ASSERT_EQ(n_got, 0, "no event while closed");
	ASSERT_EQ(run_pkt(dp.skel->progs.sp_tc_ingress, EMPTY, 1001, PKT_ACK), TC_ACT_SHOT, "drop");
	ASSERT_EQ(n_got, 0, "no event for a drop while closed");
}

static void test_monitor_events(void)
{
	struct sp_addr vip = fx_addr(4, VIP);

	gate(fx_mono_ns() + 60 * 1000000000ULL, 0);
	ASSERT_EQ(run_pkt(dp.skel->progs.sp_xdp, VIP, 2000, PKT_SYN), XDP_PASS, "new flow");
	if (ASSERT_EQ(n_got, 1, "one event for the new flow")) {
		ASSERT_EQ(got[0].type, SP_MON_NEW_FLOW, "type new");
		ASSERT_EQ(got[0].svc_id, 1, "svc_id");
		ASSERT_EQ(got[0].backend_id, 1, "backend_id");
		ASSERT_EQ(got[0].hook, SP_TH_XDP, "hook");
		ASSERT_EQ(ntohs(got[0].sport), 2000, "client port");
		ASSERT_EQ(memcmp(&got[0].daddr, &vip, sizeof(vip)), 0, "frontend as it arrived");
	}
	/* The flow's next packet is no new flow. */
	ASSERT_EQ(run_pkt(dp.skel->progs.sp_xdp, VIP, 2000, PKT_ACK), XDP_PASS, "same flow");
	ASSERT_EQ(n_got, 0, "no event for a tracked flow's packet");
	ASSERT_EQ(run_pkt(dp.skel->progs.sp_tc_ingress, EMPTY, 2001, PKT_ACK), TC_ACT_SHOT, "drop");
	if (ASSERT_EQ(n_got, 1, "one event for the drop")) {
		ASSERT_EQ(got[0].type, SP_MON_DROP, "type drop");
		ASSERT_EQ(got[0].reason, SP_R_REJECT_NOT_NEW, "reason");
		ASSERT_EQ(got[0].svc_id, 2, "svc_id");
		ASSERT_EQ(got[0].hook, SP_TH_TC_INGRESS, "hook");
	}
	run_pkt(dp.skel->progs.sp_tc_ingress, EMPTY, 2002, PKT_SYN);
	if (ASSERT_EQ(n_got, 1, "one event for the reject"))
		ASSERT_EQ(got[0].type, SP_MON_REJECT, "type reject");
}

static void test_monitor_rate(void)
{
	/* One event a second: the bucket starts full (one token), so of two
	 * new flows back to back the second is counted lost. */
	gate(fx_mono_ns() + 60 * 1000000000ULL, 1);
	run_pkt(dp.skel->progs.sp_xdp, VIP, 3000, PKT_SYN);
	ASSERT_EQ(n_got, 1, "first event passes");
	run_pkt(dp.skel->progs.sp_xdp, VIP, 3001, PKT_SYN);
	ASSERT_EQ(n_got, 0, "second event over the rate");
	ASSERT_EQ(dp.skel->bss->sp_monitor.lost, 1, "counted lost");
}

/* sp_ct_foreach: the REV entry of the client port 5000's flow, into arg;
 * ends the walk there. */
static int find_rev_5000(const struct sp_ct_key *k, const struct sp_ct_val *v, void *arg)
{
	(void)v;
	if (k->dir != SP_CT_REV || ntohs(k->dport) != 5000)
		return 0;
	*(struct sp_ct_key *)arg = *k;
	return 1;
}

static void test_monitor_ct_lost(void)
{
	struct sp_ct_maps ct = fx_ct(&dp);
	struct sp_ct_key k;
	bool found = false;

	gate(fx_mono_ns() + 60 * 1000000000ULL, 0);
	run_pkt(dp.skel->progs.sp_xdp, VIP, 5000, PKT_SYN);
	ASSERT_EQ(n_got, 1, "new flow");
	/* Evict the flow's REV entry, as a full LRU would (deleted after
	 * the walk, not during it). */
	if (sp_ct_foreach(&ct, find_rev_5000, &k) == 1)
		found = !sp_ct_delete(&ct, &k);
	if (!ASSERT_TRUE(found, "the flow's reply entry deleted"))
		return;
	/* The ACK moves the flow to ESTABLISHED and finds its partner gone. */
	run_pkt(dp.skel->progs.sp_xdp, VIP, 5000, PKT_ACK);
	if (ASSERT_EQ(n_got, 1, "one event")) {
		ASSERT_EQ(got[0].type, SP_MON_CT_LOST, "type ct-lost");
		ASSERT_EQ(got[0].backend_id, 1, "backend_id");
		ASSERT_EQ(ntohs(got[0].sport), 5000, "client port");
	}
}

static void test_monitor_lease_expired(void)
{
	gate(fx_mono_ns() - 1000000000ULL, 0);
	run_pkt(dp.skel->progs.sp_xdp, VIP, 4000, PKT_SYN);
	ASSERT_EQ(n_got, 0, "no event after the lease ran out");
}

int main(void)
{
	libbpf_set_print(fx_quiet_print);
	if (geteuid()) {
		sp_test_skip("test_bpf_monitor", "needs root (BPF_PROG_TEST_RUN)");
		return sp_test_exit();
	}
	if (!ASSERT_EQ(fx_open(&dp, 0, 0), 0, "load the test's datapath") ||
	    !ASSERT_EQ(fx_service(&dp, 4, IPPROTO_TCP, VIP, 80, BE, 8080, 1), 0, "svc") ||
	    !ASSERT_EQ(fx_service(&dp, 4, IPPROTO_TCP, EMPTY, 80, NULL, 0, 2), 0, "empty svc")) {
		sp_test_report("monitor/setup", false);
		goto out;
	}
	rb = ring_buffer__new(bpf_map__fd(dp.skel->maps.sp_events), on_ev, NULL, NULL);
	if (!ASSERT_TRUE(rb, "ring buffer")) {
		sp_test_report("monitor/setup", false);
		goto out;
	}
	RUN_TEST(test_monitor_off_by_default);
	RUN_TEST(test_monitor_events);
	RUN_TEST(test_monitor_rate);
	RUN_TEST(test_monitor_ct_lost);
	RUN_TEST(test_monitor_lease_expired);
out:
	ring_buffer__free(rb);
	if (dp.skel)
		fx_close(&dp);
	return sp_test_exit();
}
