// SPDX-License-Identifier: Apache-2.0
/*
 * Conntrack garbage collection (user/ct_gc.c) against the kernel's LRU.
 *
 *  gc/deletes_expired_only   a pass deletes exactly the entries past their
 *                            deadline and keeps the others, over several
 *                            lookup batches of both tables (sp_ct4 and
 *                            sp_ct6), and judges pressure by the fuller.
 *  gc/idle_flow_survives_churn
 *                            an idle established flow, then 20,000 short
 *                            flows through sp_xdp into a 1,024-entry table
 *                            (each closed by RST, so dead at once): with the
 *                            collector running every 128 flows, the idle
 *                            flow's reply is still reverse-NATed.
 *  gc/watch_frontends       a pass marks the frontends that live TCP flows
 *                            came in through (retained frontends of deleted
 *                            Services), and no others.
 *  gc/dsr_lone_entries       a DSR flow's single entry (FWD or REV, no
 *                            partner) is deleted on its own deadline.
 *  gc/control_without_collector
 *                            the same churn without the collector evicts the
 *                            idle flow (its reply leaves un-NATed): what the
 *                            previous case guards against really happens.
 *
 * The skeleton is loaded without pinning, in a private network namespace.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "dp_fixture.h"
#include "test.h"
#include "ct_gc.h"

#define CT_SIZE 1024
#define CHURN 20000
#define GC_EVERY 128
#define VIP "10.96.0.10"
#define BACKEND "10.1.0.11"
#define CLIENT "10.1.0.7"

static struct sp_addr v4(const char *s)
{
	return fx_addr(4, s);
}

/* Two LRU tables of conntrack's layouts, as sp_ct4 (cap4 entries) and
 * sp_ct6 (cap6): what the collector walks, without a datapath. 0 or -1. */
static int ct_maps_create(const char *name, uint32_t cap4, uint32_t cap6, struct sp_ct_maps *m)
{
	LIBBPF_OPTS(bpf_map_create_opts, mo);

	m->fd4 = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, name, sizeof(struct sp_ct4_key),
				sizeof(struct sp_ct4_val), cap4, &mo);
	m->fd6 = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, name, sizeof(struct sp_ct_key),
				sizeof(struct sp_ct_entry), cap6, &mo);
	if (m->fd4 < 0 || m->fd6 < 0) {
		sp_ct_close(m);
		return -1;
	}
	return 0;
}

struct left {
	uint64_t now;
	uint32_t n, dead;
};

/* sp_ct_foreach: count the entries left, and those among them past their
 * deadline. */
static int count_left(const struct sp_ct_key *k, const struct sp_ct_val *v, void *arg)
{
	struct left *l = arg;

	(void)k;
	l->n++;
	l->dead += v->expires <= l->now;
	return 0;
}

/*
 * n entries, every other pair IPv6 so both tables hold some in several
 * lookup batches. sp_ct6 has half sp_ct4's capacity: with about as many
 * live entries it is the fuller table, the one the pass reports as the
 * fill (what early drop and the pass interval go by).
 */
static void test_deletes_expired_only(void)
{
	struct sp_ct_gc_stats st;
	struct sp_ct_maps m;
	uint64_t now = sp_mono_ns();
	uint32_t i, n = 10000, live6 = 0;
	struct left left = { .now = now };
	struct sp_ct_key k;
	struct sp_ct_val v;
	bool ok = true;
	int err;

	if (!ASSERT_EQ(ct_maps_create("gc_test", 4 * n, 2 * n, &m), 0,
		       "create LRU maps of the conntrack layouts")) {
		sp_test_report("gc/deletes_expired_only", false);
		return;
	}
	for (i = 0; i < n && ok; i++) {
		bool v6 = (i >> 1) & 1;

		memset(&k, 0, sizeof(k));
		memset(&v, 0, sizeof(v));
		if (v6) {
			k.saddr.addr[0] = htonl(0xfd000000);
			k.saddr.addr[3] = htonl(i);
		} else {
			k.saddr.addr[0] = htonl(0x0a000000 + i);
		}
		k.sport = htons(1000 + i % 50000);
		k.proto = IPPROTO_TCP;
		k.family = v6 ? SP_FAMILY_V6 : SP_FAMILY_V4;
		k.dir = i % 2;
		/* every third entry is dead; one just now (a unit of the
		 * maps' clock ago, SP_CT_TIME_SHIFT), one long ago */
		v.expires = i % 3 == 0 ? (i % 2 ? now - (1ULL << SP_CT_TIME_SHIFT) : 1) :
					 now + 60000000000ULL;
		live6 += v6 && i % 3 != 0;
		ok = ASSERT_EQ(sp_ct_update(&m, &k, &v, BPF_NOEXIST), 0, "insert");
	}
	err = sp_ct_gc(&m, -1, now, 0, false, &st);
	ok = ASSERT_EQ(err, 0, "sp_ct_gc") && ok;
	ok = ASSERT_EQ(st.scanned, n, "scanned") && ok;
	ok = ASSERT_EQ(st.expired, (n + 2) / 3, "expired") && ok;
	ok = ASSERT_EQ(st.deleted, (n + 2) / 3, "deleted") && ok;
	ok = ASSERT_EQ(st.max_entries, 4 * n + 2 * n, "max_entries: both tables") && ok;
	ok = ASSERT_EQ(st.fill_max, 2 * n, "fill_max: sp_ct6, the fuller") && ok;
	ok = ASSERT_EQ(st.fill_live, live6, "fill_live: sp_ct6's live entries") && ok;
	/* what is left: exactly the live ones */
	ok = ASSERT_EQ(sp_ct_foreach(&m, count_left, &left), 0, "walk what is left") && ok;
	ok = ASSERT_EQ(left.n, n - (n + 2) / 3, "entries left") && ok;
	ok = ASSERT_TRUE(left.n == n - (n + 2) / 3 && !left.dead && ok, "only live entries left") &&
	     ok;
	/* a second pass finds nothing to do */
	err = sp_ct_gc(&m, -1, now, 0, false, &st);
	ok = ASSERT_EQ(st.deleted, 0, "second pass deletes nothing") && ok;
	sp_ct_close(&m);
	sp_test_report("gc/deletes_expired_only", ok);
}

/* Early drop: closed flows (RST, TIME_WAIT) go before their deadline,
 * live ones (established, half-closed, setting up) stay. */
static void test_early_drop(void)
{
	static const __u8 states[] = { SP_CT_NEW, SP_CT_ESTABLISHED, SP_CT_CLOSING, SP_CT_FIN_WAIT,
				       SP_CT_TIME_WAIT };
	struct sp_ct_gc_stats st;
	struct sp_ct_maps m;
	uint64_t now = sp_mono_ns();
	struct sp_ct_key k;
	struct sp_ct_val v;
	uint32_t i;
	bool ok = true;

	if (!ASSERT_EQ(ct_maps_create("gc_early", 1024, 1024, &m), 0,
		       "create LRU maps of the conntrack layouts")) {
		sp_test_report("gc/early_drop_closed_flows_only", false);
		return;
	}
	for (i = 0; i < 5; i++) {
		memset(&k, 0, sizeof(k));
		memset(&v, 0, sizeof(v));
		k.sport = htons(1000 + i);
		k.proto = IPPROTO_TCP;
		k.family = SP_FAMILY_V4;
		v.state = states[i];
		v.expires = now + 100000000000ULL; /* alive for 100 s */
		ok = ASSERT_EQ(sp_ct_update(&m, &k, &v, BPF_NOEXIST), 0, "insert") && ok;
	}
	ok = ASSERT_EQ(sp_ct_gc(&m, -1, now, 0, false, &st), 0, "pass without early drop") && ok;
	ok = ASSERT_EQ(st.deleted, 0, "nothing expired, nothing deleted") && ok;
	ok = ASSERT_EQ(sp_ct_gc(&m, -1, now, 0, true, &st), 0, "pass with early drop") && ok;
	ok = ASSERT_EQ(st.early, 2, "CLOSING and TIME_WAIT dropped early") && ok;
	ok = ASSERT_EQ(st.deleted, 2, "deleted") && ok;
	for (i = 0; i < 5; i++) {
		bool closed = states[i] == SP_CT_CLOSING || states[i] == SP_CT_TIME_WAIT;

		memset(&k, 0, sizeof(k));
		k.sport = htons(1000 + i);
		k.proto = IPPROTO_TCP;
		k.family = SP_FAMILY_V4;
		ok = ASSERT_EQ(sp_ct_lookup(&m, &k, &v) == 0, !closed,
			       "live flows kept, closed ones gone") &&
		     ok;
	}
	sp_ct_close(&m);
	sp_test_report("gc/early_drop_closed_flows_only", ok);
}

static struct pkt_spec tcp(const char *sa, uint16_t sp, const char *da, uint16_t dp, uint8_t fl)
{
	struct pkt_spec s = { .family = 4, .proto = IPPROTO_TCP, .saddr = sa, .daddr = da,
			      .sport = sp, .dport = dp, .tcp_flags = fl, .seq = 1, .ack = 1,
			      .win = 1000 };

	return s;
}

/* Source address (IPv4, wire order) of an Ethernet + IPv4 frame. */
static uint32_t frame_saddr(const struct pkt *p)
{
	uint32_t a;

	memcpy(&a, p->data + 14 + 12, 4);
	return a;
}

/*
 * The idle flow, the churn (collecting every GC_EVERY flows, or never), and
 * then the idle flow's reply. Returns 1 if the reply left from the VIP
 * (reverse-NATed), 0 if not, -1 on a set-up failure.
 */
static int churn(bool collect, uint64_t *deleted)
{
	struct pkt_spec s;
	struct pkt out;
	struct fx_dp d;
	const struct bpf_program *xdp;
	char client[32];
	uint32_t i;
	int ret = -1;

	*deleted = 0;
	/* Flows closed by RST are dead at once (1 us), to within the unit the
	 * maps keep deadlines in (SP_CT_TIME_SHIFT): the collector, judging
	 * two units ahead, may take them. */
	if (fx_open(&d, CT_SIZE, 1000) ||
	    fx_service(&d, 4, IPPROTO_TCP, VIP, 80, BACKEND, 8080, 1)) {
		fprintf(stderr, "  load the datapath: %s\n", strerror(errno));
		goto out;
	}
	xdp = d.skel->progs.sp_xdp;
	s = tcp(CLIENT, 40000, VIP, 80, PKT_SYN);
	if (fx_run_spec(xdp, &s, &out) != XDP_PASS)
		goto out;
	s = tcp(BACKEND, 8080, CLIENT, 40000, PKT_SYN | PKT_ACK);
	if (fx_run_spec(xdp, &s, &out) != XDP_PASS || frame_saddr(&out) != v4(VIP).addr[0])
		goto out;
	s = tcp(CLIENT, 40000, VIP, 80, PKT_ACK);
	if (fx_run_spec(xdp, &s, &out) != XDP_PASS)
		goto out;
	for (i = 0; i < CHURN; i++) {
		snprintf(client, sizeof(client), "10.2.%u.%u", (i >> 8) & 0xff, i & 0xff);
		s = tcp(client, (uint16_t)(10000 + i % 50000), VIP, 80, PKT_SYN);
		if (fx_run_spec(xdp, &s, &out) != XDP_PASS)
			goto out;
		s.tcp_flags = PKT_RST;
		if (fx_run_spec(xdp, &s, &out) != XDP_PASS)
			goto out;
		if (collect && i % GC_EVERY == GC_EVERY - 1) {
			struct sp_ct_maps m = fx_ct(&d);
			struct sp_ct_gc_stats st;

			if (sp_ct_gc(&m, bpf_program__fd(d.skel->progs.sp_ct_reap),
				     sp_mono_ns() + (2ULL << SP_CT_TIME_SHIFT), 0, false, &st))
				goto out;
			*deleted += st.deleted;
		}
	}
	/* the backend pushes data on the idle connection */
	s = tcp(BACKEND, 8080, CLIENT, 40000, PKT_ACK | PKT_PSH);
	s.payload_len = 100;
	if (fx_run_spec(xdp, &s, &out) != XDP_PASS)
		goto out;
	ret = frame_saddr(&out) == v4(VIP).addr[0];
out:
	fx_close(&d);
	return ret;
}

/*
 * DSR flows have one entry per node (FWD on the node the client reached,
 * REV on the backend's): each is collected on its own deadline, through
 * the datapath's reaper as the daemon does, and a live one is never taken
 * for half of a broken pair.
 */
static void test_dsr_lone_entries(void)
{
	uint64_t now = sp_mono_ns();
	struct sp_ct_gc_stats st;
	struct sp_ct_key k[4];
	struct sp_ct_val v;
	struct sp_ct_maps m;
	struct fx_dp d;
	uint32_t i;
	bool ok;

	ok = ASSERT_EQ(fx_open(&d, 0, 0), 0, "datapath");
	if (!ok)
		goto out;
	m = fx_ct(&d);
	for (i = 0; i < 4; i++) {
		memset(&k[i], 0, sizeof(k[i]));
		memset(&v, 0, sizeof(v));
		k[i].saddr = v4(i & 1 ? BACKEND : CLIENT);
		k[i].daddr = v4(i & 1 ? CLIENT : VIP);
		k[i].sport = htons(i & 1 ? 8080 : 40000 + i);
		k[i].dport = htons(i & 1 ? 40000 + i : 80);
		k[i].proto = IPPROTO_TCP;
		k[i].family = SP_FAMILY_V4;
		k[i].dir = i & 1 ? SP_CT_REV : SP_CT_FWD;
		v.flags = SP_CT_F_DSR;
		v.state = SP_CT_ESTABLISHED;
		/* 0, 1: expired 10 s ago; 2, 3: alive for 100 s */
		v.expires = i < 2 ? now - 10000000000ULL : now + 100000000000ULL;
		ok &= ASSERT_EQ(sp_ct_update(&m, &k[i], &v, BPF_NOEXIST), 0, "insert");
	}
	ok &= ASSERT_EQ(sp_ct_gc(&m, bpf_program__fd(d.skel->progs.sp_ct_reap), now, 0, true, &st),
			0, "pass");
	ok &= ASSERT_EQ(st.deleted, 2, "the two expired lone entries deleted");
	for (i = 0; i < 4; i++)
		ok &= ASSERT_EQ(sp_ct_lookup(&m, &k[i], &v) == 0, i >= 2,
				"expired gone, live kept");
out:
	if (d.skel)
		fx_close(&d);
	sp_test_report("gc/dsr_lone_entries", ok);
}

static int svc_key_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct sp_svc_key));
}

/*
 * A pass looking for flows through frontends (the retained ones of a
 * deleted Service): a live FWD entry of a TCP flow marks its original
 * destination, or with SP_CT_F_NODEPORT the wildcard of its port; an
 * expired entry, a REV entry, a UDP flow mark nothing.
 */
static void test_watch(void)
{
	struct {
		const char *dst;
		__u16 dport;
		__u8 proto, dir, flags;
		bool live;
	} e[] = {
		{ "10.96.0.80", 80, IPPROTO_TCP, SP_CT_FWD, 0, true }, /* marks fe 0 */
		{ "10.96.0.81", 80, IPPROTO_TCP, SP_CT_FWD, 0, false }, /* expired: not fe 1 */
		{ "10.96.0.82", 80, IPPROTO_TCP, SP_CT_REV, 0, true }, /* REV: not fe 2 */
		{ "10.96.0.83", 80, IPPROTO_UDP, SP_CT_FWD, 0, true }, /* UDP: not fe 3 */
		{ "172.16.0.2", 30090, IPPROTO_TCP, SP_CT_FWD, SP_CT_F_NODEPORT, true }, /* fe 4 */
	};
	const char *fe_addr[] = { "10.96.0.80", "10.96.0.81", "10.96.0.82", "10.96.0.83", NULL };
	const bool want[] = { true, false, false, false, true };
	struct sp_svc_key keys[5];
	bool seen[5] = { false };
	struct sp_ct_gc_watch w = { keys, 5, seen };
	struct sp_ct_gc_stats st;
	struct sp_ct_maps m;
	uint64_t now = sp_mono_ns();
	struct sp_ct_key k;
	struct sp_ct_val v;
	size_t i, j;
	bool ok = true;

	if (!ASSERT_EQ(ct_maps_create("gc_watch", 1024, 1024, &m), 0,
		       "create LRU maps of the conntrack layouts")) {
		sp_test_report("gc/watch_frontends", false);
		return;
	}
	for (i = 0; i < 5; i++) {
		memset(&k, 0, sizeof(k));
		memset(&v, 0, sizeof(v));
		k.saddr = v4(CLIENT);
		k.daddr = v4(e[i].dst);
		k.sport = htons(40000 + i);
		k.dport = htons(e[i].dport);
		k.proto = e[i].proto;
		k.family = SP_FAMILY_V4;
		k.dir = e[i].dir;
		v.flags = e[i].flags;
		v.expires = e[i].live ? now + 100000000000ULL : 1;
		ok = ASSERT_EQ(sp_ct_update(&m, &k, &v, BPF_NOEXIST), 0, "insert") && ok;
		memset(&keys[i], 0, sizeof(keys[i]));
		if (fe_addr[i])
			keys[i].addr = v4(fe_addr[i]);
		keys[i].port = htons(e[i].dport);
		keys[i].proto = IPPROTO_TCP;
		keys[i].family = SP_FAMILY_V4;
	}
	qsort(keys, 5, sizeof(keys[0]), svc_key_cmp);
	ok = ASSERT_EQ(sp_ct_gc_watch(&m, -1, now, 0, false, &w, &st), 0, "pass") && ok;
	for (i = 0; i < 5; i++) {
		struct sp_svc_key want_k;

		memset(&want_k, 0, sizeof(want_k));
		if (fe_addr[i])
			want_k.addr = v4(fe_addr[i]);
		want_k.port = htons(e[i].dport);
		want_k.proto = IPPROTO_TCP;
		want_k.family = SP_FAMILY_V4;
		for (j = 0; j < 5 && memcmp(&keys[j], &want_k, sizeof(want_k)); j++)
			;
		ok = ASSERT_TRUE(j < 5, "key found") && ok;
		if (j < 5)
			ok = ASSERT_EQ(seen[j], want[i], e[i].dst) && ok;
	}
	sp_ct_close(&m);
	sp_test_report("gc/watch_frontends", ok);
}

int main(void)
{
	uint64_t deleted;
	int r;

	libbpf_set_print(fx_quiet_print);
	if (unshare(CLONE_NEWNET)) {
		fprintf(stderr, "unshare(CLONE_NEWNET): %s\n", strerror(errno));
		sp_test_report("gc/setup", false);
		return 1;
	}
	test_deletes_expired_only();
	test_early_drop();
	test_dsr_lone_entries();
	test_watch();

	r = churn(true, &deleted);
	printf("  with the collector: %llu dead entries deleted, idle reply %s\n",
	       (unsigned long long)deleted, r == 1 ? "reverse-NATed" : "NOT reverse-NATed");
	sp_test_report("gc/idle_flow_survives_churn",
		       ASSERT_EQ(r, 1, "idle flow's reply reverse-NATed after 20,000 flows") &&
			       ASSERT_TRUE(deleted >= 2 * (CHURN - GC_EVERY), "dead flows deleted"));

	r = churn(false, &deleted);
	printf("  without the collector: idle reply %s\n",
	       r == 1 ? "reverse-NATed" : "NOT reverse-NATed (evicted)");
	sp_test_report("gc/control_without_collector",
		       ASSERT_EQ(r, 0, "without the collector the LRU evicts the idle flow"));
	return sp_test_exit();
}
