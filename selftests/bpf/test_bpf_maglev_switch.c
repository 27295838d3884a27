// SPDX-License-Identifier: Apache-2.0
/*
 * "A packet sees the whole old table or the whole new one, never a freed
 * backend" (README, docs/MAGLEV.md), under load: one thread sends new flows
 * to a Service through sp_xdp (BPF_PROG_TEST_RUN) while another applies
 * thousands of backend-set changes to that Service through sp_sync_apply,
 * the daemon's own path. Consecutive sets differ in size, and every second
 * change replaces every backend, so their ids are freed and reused.
 *
 * Each packet is checked against the generations it could have seen: the
 * last one whose apply had returned before the packet was sent, up to the
 * one being applied when it came back. It must be DNATed (XDP_PASS) to a
 * backend of one of those sets: never dropped for a missing table entry or
 * backend, never sent to an address no set in that window holds.
 *
 * Both loops are bounded by counts, not time: the applier waits (bounded)
 * for at least one packet between two applies, so every generation is
 * probed however the two threads are scheduled.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dp_fixture.h"
#include "log.h"
#include "maglev.h"
#include "resolve.h"
#include "sync.h"
#include "test.h"

#define GENERATIONS 20000 /* backend-set changes applied */
#define MAX_PACKETS 1000000 /* bound on the packet loop */
#define FINAL_PACKETS 200 /* after the last apply: all on the last set */
#define MAX_BAD_SHOWN 5
#define CHUNKS 128 /* sp_maglev: room for 3 tables, so freed chunks are soon reused */

/*
 * Generation g's backends: 10.244.A.1 .. 10.244.A.N, port 8080, with
 * A = (g / 2) % 3 and N = 2 + (g * 5) % 11. From an even g to the next odd
 * one the set grows or shrinks; from an odd g to the next even one every
 * backend is replaced.
 */
static int gen_a(long g)
{
	return (int)((g / 2) % 3);
}

static int gen_n(long g)
{
	return 2 + (int)((g * 5) % 11);
}

static bool in_gen(long g, int a, int b)
{
	return a == gen_a(g) && b >= 1 && b <= gen_n(g);
}

static void want_gen(struct sp_want_svc *w, long g)
{
	int i, n = gen_n(g);
	char a[32];

	memset(w, 0, sizeof(*w));
	snprintf(w->id, sizeof(w->id), "t/web:http/tcp/v4");
	w->proto = IPPROTO_TCP;
	w->family = SP_FAMILY_V4;
	w->fe = calloc(1, sizeof(*w->fe));
	w->n_fe = 1;
	sp_ip_parse("10.96.0.10", &w->fe[0].ip);
	w->fe[0].port = 80;
	w->be = calloc(n, sizeof(*w->be));
	w->n_be = n;
	for (i = 0; i < n; i++) {
		snprintf(a, sizeof(a), "10.244.%d.%d", gen_a(g), i + 1);
		sp_ip_parse(a, &w->be[i].ip);
		w->be[i].port = 8080;
		w->be[i].weight = 1;
	}
	sp_maglev_canonical(w->be, n);
}

static int apply_gen(struct sp_sync *s, long g)
{
	struct sp_desired d = { 0 };
	int err;

	d.svc = calloc(1, sizeof(*d.svc));
	if (!d.svc)
		return -ENOMEM;
	d.n = 1;
	want_gen(&d.svc[0], g);
	err = sp_sync_apply(s, &d, NULL);
	sp_desired_free(&d);
	return err;
}

struct run {
	struct fx_dp dp;
	struct sp_sync *sync;
	/* generation whose apply has returned / has started */
	atomic_long done, started;
	atomic_long packets; /* packets sent so far */
	atomic_bool applier_done, sender_done;
	int apply_err;
	long applies;
	/* the sender's findings */
	long sent, bad, during_apply, in_new_set;
	char first_bad[MAX_BAD_SHOWN][160];
};

static void *applier(void *arg)
{
	struct run *r = arg;
	long g, mark;
	int err;

	for (g = 1; g <= GENERATIONS; g++) {
		/* At least one packet since the previous apply (or the sender
		 * has stopped): every generation gets probed. */
		mark = atomic_load(&r->packets);
		while (atomic_load(&r->packets) == mark && !atomic_load(&r->sender_done))
			sched_yield();
		atomic_store(&r->started, g);
		err = apply_gen(r->sync, g);
		if (err) {
			r->apply_err = err;
			break;
		}
		atomic_store(&r->done, g);
		r->applies++;
	}
	atomic_store(&r->applier_done, true);
	return NULL;
}

/* Send SYN number i (a flow of its own); the verdict, and in *a, *b the
 * third and fourth octets of the address it was DNATed to (-1 if none). */
static int send_syn(struct run *r, long i, int *a, int *b, int *port)
{
	struct pkt out;
	struct pkt_info pi;
	char saddr[32], why[128];
	struct pkt_spec s = {
		.family = 4,
		.proto = IPPROTO_TCP,
		.daddr = "10.96.0.10",
		.dport = 80,
		.tcp_flags = PKT_SYN,
		.seq = 1,
		.win = 1000,
	};
	int v;

	snprintf(saddr, sizeof(saddr), "100.64.%ld.%ld", (i >> 8) & 0xff, i & 0xff);
	s.saddr = saddr;
	s.sport = (uint16_t)(10000 + (i >> 16));
	*a = *b = *port = -1;
	v = fx_run_spec(r->dp.skel->progs.sp_xdp, &s, &out);
	if (v != XDP_PASS || !pkt_parse(out.data, out.len, &pi, why, sizeof(why)) ||
	    pi.family != 4 || !pi.l4)
		return v;
	if (out.data[pi.l3 + 16] == 10 && out.data[pi.l3 + 17] == 244) {
		*a = out.data[pi.l3 + 18];
		*b = out.data[pi.l3 + 19];
	}
	*port = pkt_get16(out.data + pi.l4 + 2);
	return v;
}

/* Send one packet and judge it against generations lo..hi (read around it). */
static void probe(struct run *r, long i, bool final)
{
	long lo, hi, g;
	int v, a, b, port;
	bool ok = false;

	lo = atomic_load(&r->done);
	v = send_syn(r, i, &a, &b, &port);
	hi = final ? lo : atomic_load(&r->started);
	atomic_fetch_add(&r->packets, 1);
	r->sent++;
	if (hi != lo)
		r->during_apply++;
	for (g = lo; v == XDP_PASS && port == 8080 && g <= hi && !ok; g++)
		ok = in_gen(g, a, b);
	if (ok && hi != lo && in_gen(hi, a, b) && !in_gen(lo, a, b))
		r->in_new_set++;
	if (ok)
		return;
	if (r->bad < MAX_BAD_SHOWN)
		snprintf(r->first_bad[r->bad], sizeof(r->first_bad[0]),
			 "packet %ld (generations %ld..%ld%s): verdict %d (XDP_PASS is 2), DNAT to 10.244.%d.%d:%d",
			 i, lo, hi, final ? ", after the last apply" : "", v, a, b, port);
	r->bad++;
}

static void *sender(void *arg)
{
	struct run *r = arg;
	long i;

	for (i = 0; i < MAX_PACKETS && !atomic_load(&r->applier_done); i++)
		probe(r, i, false);
	atomic_store(&r->sender_done, true);
	return NULL;
}

static void test_switch_under_traffic(void)
{
	static const uint32_t drops[] = { SP_R_MAGLEV_MISS, SP_R_BACKEND_MISS, SP_R_NO_BACKEND,
					  SP_R_CT_FULL,	    SP_R_NAT_FAILED,   SP_R_CT_CLASH };
	static const char *const drop_names[] = { "maglev_miss", "backend_miss", "no_backend",
						  "ct_full",	 "nat_failed",	 "ct_clash" };
	struct run *r = calloc(1, sizeof(*r));
	struct sp_sync_maps m;
	pthread_t ta, ts;
	bool ta_up = false, ts_up = false;
	long i, base;
	size_t k;
	char what[64];

	if (!ASSERT_TRUE(r != NULL, "allocate"))
		return;
	if (!ASSERT_EQ(fx_prepare(&r->dp, 65536, 0), 0, "open the datapath"))
		goto out;
	bpf_map__set_max_entries(r->dp.skel->maps.sp_maglev, CHUNKS);
	if (!ASSERT_EQ(fx_load(&r->dp), 0, "load the datapath"))
		goto out;
	m = (struct sp_sync_maps){
		.fd_services = bpf_map__fd(r->dp.skel->maps.sp_services),
		.fd_backends = bpf_map__fd(r->dp.skel->maps.sp_backends),
		.fd_maglev = bpf_map__fd(r->dp.skel->maps.sp_maglev),
		.fd_svc_meta = bpf_map__fd(r->dp.skel->maps.sp_svc_meta),
		.fd_svc_stats = bpf_map__fd(r->dp.skel->maps.sp_svc_stats),
		.fd_node_addrs = bpf_map__fd(r->dp.skel->maps.sp_node_addrs),
		.fd_dst_filter = bpf_map__fd(r->dp.skel->maps.sp_dst_filter),
		.fd_svc_backends = bpf_map__fd(r->dp.skel->maps.sp_svc_backends),
		.maglev_chunks = CHUNKS,
		.max_svc_ids = bpf_map__max_entries(r->dp.skel->maps.sp_svc_meta),
		.max_backends = bpf_map__max_entries(r->dp.skel->maps.sp_backends) - 1,
		.fixed_m = 0,
	};
	if (!ASSERT_EQ(sp_sync_new(&m, &r->sync), 0, "sync state"))
		goto out;
	if (!ASSERT_EQ(apply_gen(r->sync, 0), 0, "apply generation 0"))
		goto out;
	sp_log_level = SP_LOG_WARN; /* thousands of applies: keep the output short */

	ts_up = ASSERT_EQ(pthread_create(&ts, NULL, sender, r), 0, "start the sender");
	if (ts_up)
		ta_up = ASSERT_EQ(pthread_create(&ta, NULL, applier, r), 0, "start the applier");
	if (!ta_up)
		atomic_store(&r->applier_done, true);
	if (ts_up)
		pthread_join(ts, NULL);
	if (ta_up)
		pthread_join(ta, NULL);
	sp_log_level = SP_LOG_INFO;

	/* Settled: new flows land on the last set only. */
	base = r->sent + 1;
	for (i = 0; i < FINAL_PACKETS; i++)
		probe(r, base + i, true);

	fprintf(stderr,
		"  %ld applies, %ld packets; %ld sent while an apply ran, %ld of them already on "
		"the new set\n",
		r->applies, r->sent, r->during_apply, r->in_new_set);
	ASSERT_EQ(r->apply_err, 0, "every apply succeeded");
	ASSERT_EQ(r->applies, GENERATIONS, "generations applied");
	for (i = 0; i < r->bad && i < MAX_BAD_SHOWN; i++)
		fprintf(stderr, "  %s\n", r->first_bad[i]);
	ASSERT_EQ(r->bad, 0, "packets not DNATed to a backend of a set they could see");
	for (k = 0; k < sizeof(drops) / sizeof(drops[0]); k++) {
		snprintf(what, sizeof(what), "packets dropped as %s", drop_names[k]);
		ASSERT_EQ(fx_reason_packets(&r->dp, drops[k]), 0, what);
	}
out:
	sp_sync_free(r->sync);
	if (r->dp.skel)
		fx_close(&r->dp);
	free(r);
}

int main(void)
{
	if (geteuid() != 0) {
		sp_test_skip("test_switch_under_traffic", "needs root to load BPF programs");
		return 0;
	}
	RUN_TEST(test_switch_under_traffic);
	return sp_test_exit();
}
