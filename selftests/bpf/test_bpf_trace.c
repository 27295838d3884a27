// SPDX-License-Identifier: Apache-2.0
/*
 * `svcplane trace` at the BPF_PROG_TEST_RUN level (user/trace.c, the dry-run
 * datapath of bpf/lib/trace.h). A datapath of the test's own (dp_fixture.h)
 * holds Services and one real flow (a SYN run through the normal program,
 * so that the traced packets would change its state); its maps are pinned in a private directory as the daemon
 * pins them. Then traces of a new flow (IPv4 TCP, IPv6 UDP, from a pod), an
 * established packet, a reply, a drop and a reject: each one's decisions and
 * output packet are checked (the packet with pkt.h's own parser and checksum
 * check). Every pinned map is dumped before and after the series and must
 * be byte-for-byte the same: the dry run writes nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/pkt_cls.h>

#include "test.h"
#include "dp_fixture.h"
#include "trace.h"

#define VIP4 "10.96.0.1"
#define VIP6 "fd00:96::1"
#define EMPTY4 "10.96.0.2"
#define BE4 "10.244.0.11"
#define BE6 "fd00:244::11"
#define CLIENT4 "10.0.0.1"

static struct fx_dp dp;
static char pin_dir[64];
static __u32 settings_prog;

/* ---- map dumps --------------------------------------------------------- */

struct dump {
	char name[32];
	size_t n, rec; /* records, bytes per record (key + every CPU's value) */
	uint8_t *data;
};

static size_t cmp_len;
static int cmp_rec(const void *a, const void *b)
{
	return memcmp(a, b, cmp_len);
}

static bool is_percpu(__u32 t)
{
	return t == BPF_MAP_TYPE_PERCPU_HASH || t == BPF_MAP_TYPE_PERCPU_ARRAY ||
	       t == BPF_MAP_TYPE_LRU_PERCPU_HASH;
}

/* Every (key, value) of the map, sorted, so that two dumps compare with
 * memcmp whatever order the kernel walks them in. 0 or -1. */
static int dump_map(const struct bpf_map *m, struct dump *d)
{
	int fd = bpf_map__fd(m), ncpu = libbpf_num_possible_cpus();
	struct bpf_map_info info;
	__u32 len = sizeof(info);
	uint8_t key[256], next[256];
	size_t vsz, cap = 0;
	bool first = true;

	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "%s", bpf_map__name(m));
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len) || info.key_size > sizeof(key) || ncpu <= 0)
		return -1;
	vsz = is_percpu(info.type) ? ((info.value_size + 7) & ~7u) * (size_t)ncpu : info.value_size;
	d->rec = info.key_size + vsz;
	while (!bpf_map_get_next_key(fd, first ? NULL : key, next)) {
		first = false;
		memcpy(key, next, info.key_size);
		if (d->n == cap) {
			uint8_t *p = realloc(d->data, (cap = cap ? 2 * cap : 64) * d->rec);

			if (!p)
				return -1;
			d->data = p;
		}
		memcpy(d->data + d->n * d->rec, key, info.key_size);
		if (bpf_map_lookup_elem(fd, key, d->data + d->n * d->rec + info.key_size))
			continue; /* gone since (nothing runs here but us) */
		d->n++;
	}
	cmp_len = d->rec;
	if (d->n)
		qsort(d->data, d->n, d->rec, cmp_rec);
	return 0;
}

/* Dump every map of the fixture that is pinned (out[] of n). 0 or -1. */
static int dump_all(struct dump *out, size_t max, size_t *n)
{
	struct bpf_map *m;

	*n = 0;
	bpf_object__for_each_map(m, dp.skel->obj) {
		if (strncmp(bpf_map__name(m), "sp_", 3) || !bpf_map__is_pinned(m))
			continue;
		if (*n == max || dump_map(m, &out[*n]))
			return -1;
		(*n)++;
	}
	return 0;
}

static void free_dumps(struct dump *d, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(d[i].data);
}

/* ---- set-up: Services, a real flow, pins ------------------------------ */

static int run_real(const struct pkt_spec *s)
{
	struct pkt out;

	return fx_run_spec(dp.skel->progs.sp_xdp, s, &out);
}

static void unpin_all(void)
{
	struct bpf_map *m;

	bpf_object__for_each_map(m, dp.skel->obj)
		if (bpf_map__is_pinned(m))
			bpf_map__unpin(m, NULL);
	rmdir(pin_dir);
}

static bool setup(void)
{
	struct pkt_spec syn = { .family = 4, .proto = IPPROTO_TCP, .saddr = CLIENT4,
				.daddr = VIP4, .sport = 1000, .dport = 80, .tcp_flags = PKT_SYN };
	struct bpf_prog_info info;
	__u32 len = sizeof(info);
	struct bpf_map *m;
	char path[128];
	bool ok;

	ok = ASSERT_EQ(fx_open(&dp, 0, 0), 0, "load the test's datapath");
	ok = ok && ASSERT_EQ(fx_service(&dp, 4, IPPROTO_TCP, VIP4, 80, BE4, 8080, 1), 0, "svc v4");
	ok = ok && ASSERT_EQ(fx_service(&dp, 6, IPPROTO_UDP, VIP6, 53, BE6, 5353, 2), 0, "svc v6");
	ok = ok && ASSERT_EQ(fx_service(&dp, 4, IPPROTO_TCP, EMPTY4, 80, NULL, 0, 3), 0, "empty");
	if (!ok)
		return false;
	/* One flow, opened through the real program (state NEW). */
	if (!ASSERT_EQ(run_real(&syn), XDP_PASS, "real SYN"))
		return false;
	memset(&info, 0, sizeof(info));
	if (!ASSERT_EQ(bpf_obj_get_info_by_fd(bpf_program__fd(dp.skel->progs.sp_xdp), &info, &len),
		       0, "program id"))
		return false;
	settings_prog = info.id;
	/* Pinned as the daemon pins them: by name, in one directory. */
	snprintf(pin_dir, sizeof(pin_dir), "/sys/fs/bpf/sp-test-trace-%d", (int)getpid());
	if (!ASSERT_EQ(mkdir(pin_dir, 0700), 0, "mkdir under /sys/fs/bpf (bpffs mounted?)"))
		return false;
	bpf_object__for_each_map(m, dp.skel->obj) {
		if (strncmp(bpf_map__name(m), "sp_", 3) || !strcmp(bpf_map__name(m), "sp_tx_ports"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", pin_dir, bpf_map__name(m));
		if (!ASSERT_EQ(bpf_map__pin(m, path), 0, path))
			return false;
	}
	return true;
}

/* ---- traces ---------------------------------------------------------- */

static struct sp_trace_result res;

/* Trace from -> to (ADDR[:PORT] / ADDR:PORT/PROTO). true if it ran. */
static bool trace(enum sp_trace_from from, const char *src, const char *dst, bool est)
{
	struct sp_trace_req r;
	char err[256];
	uint8_t fam, proto;
	int ret;

	memset(&r, 0, sizeof(r));
	r.dir = pin_dir;
	r.iface = "lo";
	r.from = from;
	r.established = est;
	r.settings_prog_id = settings_prog;
	if (!ASSERT_EQ(sp_trace_parse_endpoint(src, false, &fam, &r.src, &r.sport, &proto, err,
					       sizeof(err)), 0, src) ||
	    !ASSERT_EQ(sp_trace_parse_endpoint(dst, true, &r.family, &r.dst, &r.dport, &r.proto,
					       err, sizeof(err)), 0, dst))
		return false;
	if (!r.sport)
		r.sport = SP_TRACE_DEFAULT_SPORT;
	ret = sp_trace_run(&r, &res, err, sizeof(err));
	if (ret)
		fprintf(stderr, "  trace %s %s: %s\n", src, dst, err);
	return ASSERT_EQ(ret, 0, "sp_trace_run");
}

/* The first decision of run i with this step (and x, if x >= 0), or NULL. */
static const struct sp_trace_ev *ev(int i, int step, int x)
{
	const struct sp_trace_run *r = &res.runs[i];
	__u32 k;

	for (k = 0; k < r->buf.n && k < SP_TRACE_MAX; k++)
		if (r->buf.ev[k].step == step && (x < 0 || r->buf.ev[k].x == x))
			return &r->buf.ev[k];
	return NULL;
}

/* Run i's output is a valid frame from src to dst (textual, with ports). */
static bool out_is(int i, int family, const char *src, uint16_t sport, const char *dst,
		   uint16_t dport)
{
	const struct sp_trace_run *r = &res.runs[i];
	uint8_t sa[16], da[16];
	struct pkt_info pi;
	char why[128];
	size_t al = family == 4 ? 4 : 16;
	uint32_t a = family == 4 ? 12 : 8;

	if (!ASSERT_TRUE(pkt_parse(r->out, r->out_len, &pi, why, sizeof(why)), why) ||
	    !ASSERT_TRUE(pkt_csums_ok(r->out, r->out_len, why, sizeof(why)), why))
		return false;
	pkt_addr(family, src, sa);
	pkt_addr(family, dst, da);
	return ASSERT_EQ(memcmp(r->out + pi.l3 + a, sa, al), 0, "output source address") &&
	       ASSERT_EQ(memcmp(r->out + pi.l3 + a + al, da, al), 0, "output destination") &&
	       ASSERT_EQ(pkt_get16(r->out + pi.l4), sport, "output source port") &&
	       ASSERT_EQ(pkt_get16(r->out + pi.l4 + 2), dport, "output destination port");
}

static void test_trace_new_flow(void)
{
	const struct sp_trace_ev *e;

	if (!trace(SP_TRACE_EXTERNAL, "10.0.0.2:2000", VIP4 ":80/tcp", false))
		return;
	ASSERT_EQ(res.n_runs, 2, "sp_xdp, then sp_tc_uplink on XDP_PASS");
	ASSERT_EQ(res.runs[0].retval, XDP_PASS, "verdict");
	ASSERT_TRUE(ev(0, SP_T_HOOK, SP_TH_XDP), "hook recorded");
	e = ev(0, SP_T_FRONTEND, SP_TFE_EXACT);
	ASSERT_TRUE(e && e->a == 1 && e->c == 1, "frontend: svc 1, one backend");
	ASSERT_TRUE(ev(0, SP_T_CT_FWD, SP_TCT_MISS), "conntrack miss");
	e = ev(0, SP_T_MAGLEV, -1);
	ASSERT_TRUE(e && e->c == 1 && e->b < FX_MAGLEV_M, "maglev: slot < M, backend 1");
	e = ev(0, SP_T_CT_CREATE, -1);
	ASSERT_TRUE(e && e->x == 0, "flow would be created");
	out_is(0, 4, "10.0.0.2", 2000, BE4, 8080);
	/* sp_tc_uplink sees the DNATed packet: not its business. */
	ASSERT_TRUE(ev(1, SP_T_NOT_OURS, SP_TP_NO_SERVICE), "uplink TC passes it");
	ASSERT_EQ(res.runs[1].retval, TC_ACT_OK, "uplink TC verdict");
}

static void test_trace_established(void)
{
	const struct sp_trace_ev *e;

	if (!trace(SP_TRACE_EXTERNAL, CLIENT4 ":1000", VIP4 ":80/tcp", true))
		return;
	e = ev(0, SP_T_CT_FWD, SP_TCT_HIT);
	ASSERT_TRUE(e && e->y == SP_CT_NEW && e->a == 1, "hit, NEW (a SYN seen), backend 1");
	/* The ACK moves the flow on (the real program would write both
	 * entries); the dry run only says so. */
	e = ev(0, SP_T_CT_NEXT, -1);
	ASSERT_TRUE(e && e->y == SP_CT_ESTABLISHED, "the ACK would make it ESTABLISHED");
	ASSERT_TRUE(!ev(0, SP_T_MAGLEV, -1), "no Maglev pick for a tracked flow");
	out_is(0, 4, CLIENT4, 1000, BE4, 8080);
}

static void test_trace_reply(void)
{
	if (!trace(SP_TRACE_EXTERNAL, BE4 ":8080", CLIENT4 ":1000/tcp", true))
		return;
	ASSERT_TRUE(ev(0, SP_T_CT_REV, SP_TCT_HIT), "reply entry hit");
	ASSERT_TRUE(ev(0, SP_T_RNAT, -1), "reverse NAT");
	out_is(0, 4, VIP4, 80, CLIENT4, 1000);
}

static void test_trace_drop(void)
{
	const struct sp_trace_ev *e;

	/* A mid-stream packet to a Service without endpoints: XDP leaves it
	 * to TC, which drops it (no RST for a packet of no connection). */
	if (!trace(SP_TRACE_EXTERNAL, "10.0.0.3", EMPTY4 ":80/tcp", true))
		return;
	ASSERT_TRUE(ev(0, SP_T_NOT_OURS, SP_TP_EMPTY_TO_TC), "XDP leaves it to TC");
	if (!ASSERT_EQ(res.n_runs, 2, "uplink TC ran"))
		return;
	e = ev(1, SP_T_REASON, -1);
	ASSERT_TRUE(e && e->a == SP_R_REJECT_NOT_NEW, "reason reject_not_new");
	ASSERT_EQ(res.runs[1].retval, TC_ACT_SHOT, "dropped");
}

static void test_trace_reject(void)
{
	if (!trace(SP_TRACE_EXTERNAL, "10.0.0.3:3000", EMPTY4 ":80/tcp", false) ||
	    !ASSERT_EQ(res.n_runs, 2, "uplink TC ran"))
		return;
	ASSERT_TRUE(ev(1, SP_T_REJECT, -1), "reject decided");
	ASSERT_EQ(res.runs[1].retval, TC_ACT_REDIRECT, "the RST is sent back");
	out_is(1, 4, EMPTY4, 80, "10.0.0.3", 3000);
}

static void test_trace_v6_udp_from_pod(void)
{
	const struct sp_trace_ev *e;

	if (!trace(SP_TRACE_POD, "[fd00:244::20]:4000", "[" VIP6 "]:53/udp", false))
		return;
	ASSERT_EQ(res.n_runs, 1, "sp_tc_ingress only");
	ASSERT_TRUE(ev(0, SP_T_HOOK, SP_TH_TC_INGRESS), "pod veth hook");
	e = ev(0, SP_T_FRONTEND, SP_TFE_EXACT);
	ASSERT_TRUE(e && e->a == 2, "frontend svc 2");
	e = ev(0, SP_T_BACKEND, -1);
	ASSERT_TRUE(e && e->a == 2, "backend 2");
	out_is(0, 6, "fd00:244::20", 4000, BE6, 5353);
}

static void test_trace_no_side_effects(struct dump *before, size_t nb)
{
	struct dump after[32];
	size_t na = 0, i;

	if (!ASSERT_EQ(dump_all(after, 32, &na), 0, "dump after") ||
	    !ASSERT_EQ(na, nb, "same maps"))
		goto out;
	for (i = 0; i < na; i++) {
		bool same = before[i].n == after[i].n && before[i].rec == after[i].rec &&
			    (!before[i].n ||
			     !memcmp(before[i].data, after[i].data, before[i].n * before[i].rec));

		if (!same)
			fprintf(stderr, "  %s changed: %zu entries before, %zu after\n",
				before[i].name, before[i].n, after[i].n);
		ASSERT_TRUE(same, before[i].name);
	}
out:
	free_dumps(after, na);
}

int main(void)
{
	struct dump before[32];
	size_t nb = 0;

	libbpf_set_print(fx_quiet_print);
	if (geteuid()) {
		sp_test_skip("test_bpf_trace", "needs root (BPF_PROG_TEST_RUN, bpffs)");
		return sp_test_exit();
	}
	if (!setup()) {
		sp_test_report("trace/setup", false);
		goto out;
	}
	if (!ASSERT_EQ(dump_all(before, 32, &nb), 0, "dump before"))
		goto out;
	/* Every check runs; the map comparison covers them all. */
	RUN_TEST(test_trace_new_flow);
	RUN_TEST(test_trace_established);
	RUN_TEST(test_trace_reply);
	RUN_TEST(test_trace_drop);
	RUN_TEST(test_trace_reject);
	RUN_TEST(test_trace_v6_udp_from_pod);
	if (sp_test_selected("test_trace_no_side_effects")) {
		int b = sp_test_failed_asserts;

		test_trace_no_side_effects(before, nb);
		sp_test_report("test_trace_no_side_effects", sp_test_failed_asserts == b);
	}
out:
	free_dumps(before, nb);
	if (dp.skel) {
		unpin_all();
		fx_close(&dp);
	}
	return sp_test_exit();
}
