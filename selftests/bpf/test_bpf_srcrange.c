// SPDX-License-Identifier: Apache-2.0
/*
 * loadBalancerSourceRanges in the datapath (bpf/lib/srcrange.h), through
 * sp_xdp, sp_tc_ingress and sp_tc_egress alike, with BPF_PROG_TEST_RUN:
 *
 *  - a client inside a range of the Service (v4 /24 and /32, v6 /64)
 *    reaching its LB IP is DNATed; the output frame is rebuilt from
 *    scratch and every checksum recomputed;
 *  - a client outside is dropped, counted src_range_denied and in the
 *    Service's drops;
 *  - the same client reaching the same Service's clusterIP or NodePort
 *    (frontends without SP_SVC_F_SRC_RANGES), or the LB IP of a Service
 *    without ranges, is DNATed: the filter is per frontend;
 *  - a range is the Service's own (another svc_id's range does not open
 *    it) and of its own family (a v4 0.0.0.0/0 does not open a v6 LB IP);
 *  - as with kube-proxy, only new flows are filtered: a flow established
 *    before its range went away keeps going, a new one is dropped;
 *  - a Service without endpoints: a denied client is dropped (XDP does
 *    not leave it to TC), an allowed one is passed on (XDP) / rejected (TC).
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include "dp_fixture.h"
#include "test.h"

#define LB4 "192.0.2.100"
#define LB4_OPEN "192.0.2.101" /* a Service without ranges */
#define LB4_EMPTY "192.0.2.102" /* ranges, no endpoint */
#define CIP4 "10.96.0.10"
#define NODE4 "172.16.0.2"
#define LB6 "2001:db8:42::100"
#define BE4 "10.1.0.11"
#define BE4_OPEN "10.1.0.12"
#define BE6 "fd00:1::11"
#define NODEPORT 30080

#define SVC4 1
#define SVC6 2
#define SVC_OPEN 3
#define SVC_EMPTY 4
#define SVC_OTHER 9 /* has a range holding the denied client; no frontend */

static struct fx_dp d;

struct prog {
	const char *name;
	struct bpf_program *p;
	bool tc;
};

/* Add (or with del, remove) one range of svc_id. 0 or -1. */
static int range(uint32_t svc_id, int family, const char *net, uint32_t plen, bool del)
{
	struct sp_src_range_key k;
	uint8_t one = 1;
	int fd = bpf_map__fd(d.skel->maps.sp_src_ranges);

	memset(&k, 0, sizeof(k));
	k.prefixlen = SP_SRC_RANGE_PREFIX_BITS + plen;
	k.svc_id = svc_id;
	k.family = (uint8_t)family;
	k.addr = fx_addr(family, net);
	if (del)
		return bpf_map_delete_elem(fd, &k) ? -1 : 0;
	return bpf_map_update_elem(fd, &k, &one, BPF_ANY) ? -1 : 0;
}

/* Set the flags of an existing frontend. 0 or -1. */
static int fe_flags(int family, const char *vip, uint16_t port, uint16_t flags)
{
	int fd = bpf_map__fd(d.skel->maps.sp_services);
	struct sp_svc_key k;
	struct sp_svc v;

	memset(&k, 0, sizeof(k));
	if (vip)
		k.addr = fx_addr(family, vip);
	k.port = htons(port);
	k.proto = IPPROTO_TCP;
	k.family = (uint8_t)family;
	if (bpf_map_lookup_elem(fd, &k, &v))
		return -1;
	v.flags = flags;
	return bpf_map_update_elem(fd, &k, &v, BPF_ANY) ? -1 : 0;
}

static int setup(void)
{
	struct sp_node_addr_key nk;
	uint8_t one = 1;

	if (fx_open(&d, 0, 0) ||
	    fx_service(&d, 4, IPPROTO_TCP, LB4, 80, BE4, 8080, SVC4) ||
	    fx_service(&d, 4, IPPROTO_TCP, CIP4, 80, BE4, 8080, SVC4) ||
	    fx_service(&d, 4, IPPROTO_TCP, "0.0.0.0", NODEPORT, BE4, 8080, SVC4) ||
	    fx_service(&d, 6, IPPROTO_TCP, LB6, 80, BE6, 8080, SVC6) ||
	    fx_service(&d, 4, IPPROTO_TCP, LB4_OPEN, 80, BE4_OPEN, 8080, SVC_OPEN) ||
	    fx_service(&d, 4, IPPROTO_TCP, LB4_EMPTY, 80, NULL, 0, SVC_EMPTY))
		return -1;
	if (fe_flags(4, LB4, 80, SP_SVC_F_EXTERNAL | SP_SVC_F_SRC_RANGES) ||
	    fe_flags(4, "0.0.0.0", NODEPORT, SP_SVC_F_NODEPORT) ||
	    fe_flags(6, LB6, 80, SP_SVC_F_EXTERNAL | SP_SVC_F_SRC_RANGES) ||
	    fe_flags(4, LB4_OPEN, 80, SP_SVC_F_EXTERNAL) ||
	    fe_flags(4, LB4_EMPTY, 80, SP_SVC_F_EXTERNAL | SP_SVC_F_SRC_RANGES))
		return -1;
	if (range(SVC4, 4, "10.10.0.0", 24, false) || range(SVC4, 4, "198.51.100.7", 32, false) ||
	    range(SVC6, 6, "fd00:10::", 64, false) || range(SVC6, 4, "0.0.0.0", 0, false) ||
	    range(SVC_EMPTY, 4, "10.10.0.0", 24, false) ||
	    range(SVC_OTHER, 4, "203.0.113.0", 24, false) ||
	    range(SVC_OTHER, 6, "fd00:20::", 64, false))
		return -1;
	memset(&nk, 0, sizeof(nk));
	nk.addr = fx_addr(4, NODE4);
	nk.family = 4;
	if (sp_sync_dst_filter_add(bpf_map__fd(d.skel->maps.sp_dst_filter), &nk.addr))
		return -1;
	return bpf_map_update_elem(bpf_map__fd(d.skel->maps.sp_node_addrs), &nk, &one, BPF_ANY) ?
		       -1 :
		       0;
}

static uint64_t svc_drops(uint32_t svc_id)
{
	int n = libbpf_num_possible_cpus(), i;
	struct sp_svc_stats s[n > 0 ? n : 1];
	uint64_t sum = 0;

	if (n <= 0 || bpf_map_lookup_elem(bpf_map__fd(d.skel->maps.sp_svc_stats), &svc_id, s))
		return 0;
	for (i = 0; i < n; i++)
		sum += s[i].drops;
	return sum;
}

static struct pkt_spec syn(int family, const char *src, uint16_t sport, const char *dst,
			   uint16_t dport)
{
	struct pkt_spec s = { .family = (uint8_t)family, .proto = IPPROTO_TCP, .saddr = src,
			      .daddr = dst, .sport = sport, .dport = dport,
			      .tcp_flags = PKT_SYN, .seq = 1000, .win = 1000,
			      .payload_len = 7, .payload_seed = 3 };

	return s;
}

/* in must come out DNATed to be:bport, passed on, checksums right. */
static bool expect_nat(const struct prog *pr, const struct pkt_spec *in, const char *be,
		       uint16_t bport)
{
	struct pkt_spec ws = *in;
	struct pkt got, want;
	char why[128];
	int v;

	ws.daddr = be;
	ws.dport = bport;
	v = fx_run_spec(pr->p, in, &got);
	if (!ASSERT_EQ(v, pr->tc ? TC_ACT_OK : XDP_PASS, "verdict: DNATed and passed on") ||
	    !ASSERT_EQ(pkt_build(&ws, &want), 0, "build the expected frame"))
		return false;
	if (!ASSERT_EQ(pkt_diff(&want, got.data, got.len, NULL), -1,
		       "output frame is the expected DNATed frame"))
		return false;
	if (!pkt_csums_ok(got.data, got.len, why, sizeof(why))) {
		fprintf(stderr, "  output checksums: %s\n", why);
		return ASSERT_TRUE(false, "checksums recomputed from scratch");
	}
	return true;
}

/* in must be dropped, counted src_range_denied and in svc_id's drops. */
static bool expect_denied(const struct prog *pr, const struct pkt_spec *in, uint32_t svc_id)
{
	uint64_t r0 = fx_reason_packets(&d, SP_R_SRC_RANGE_DENIED), d0 = svc_drops(svc_id);
	struct pkt got;
	int v;

	v = fx_run_spec(pr->p, in, &got);
	return ASSERT_EQ(v, pr->tc ? TC_ACT_SHOT : XDP_DROP, "verdict: dropped") &&
	       ASSERT_EQ(fx_reason_packets(&d, SP_R_SRC_RANGE_DENIED), r0 + 1,
			 "counted src_range_denied") &&
	       ASSERT_EQ(svc_drops(svc_id), d0 + 1, "counted in the Service's drops");
}

static void run_prog(const struct prog *pr)
{
	char name[96];
	struct pkt_spec s;
	struct pkt got;
	uint64_t r0;
	bool ok;
	int v;

#define CASE(n, body)                                                                      \
	do {                                                                               \
		snprintf(name, sizeof(name), "srcrange/%s/%s", pr->name, n);               \
		if (sp_test_selected(name)) {                                              \
			fx_ct_flush(&d);                                                        \
			ok = (body);                                                       \
			sp_test_report(name, ok);                                          \
		}                                                                          \
	} while (0)

	s = syn(4, "10.10.0.2", 40000, LB4, 80);
	CASE("v4-allowed-by-24", expect_nat(pr, &s, BE4, 8080));
	s = syn(4, "198.51.100.7", 40000, LB4, 80);
	CASE("v4-allowed-by-32", expect_nat(pr, &s, BE4, 8080));
	s = syn(4, "198.51.100.8", 40000, LB4, 80);
	CASE("v4-denied-next-to-32", expect_denied(pr, &s, SVC4));
	/* 203.0.113.5 is in another Service's range only */
	s = syn(4, "203.0.113.5", 40000, LB4, 80);
	CASE("v4-denied-other-services-range", expect_denied(pr, &s, SVC4));
	s = syn(6, "fd00:10::2", 40000, LB6, 80);
	CASE("v6-allowed", expect_nat(pr, &s, BE6, 8080));
	/* SVC6 also holds a v4 0.0.0.0/0: another family never matches */
	s = syn(6, "fd00:20::2", 40000, LB6, 80);
	CASE("v6-denied", expect_denied(pr, &s, SVC6));
	s = syn(4, "203.0.113.5", 40000, CIP4, 80);
	CASE("clusterip-unfiltered", expect_nat(pr, &s, BE4, 8080));
	s = syn(4, "203.0.113.5", 40000, NODE4, NODEPORT);
	CASE("nodeport-unfiltered", expect_nat(pr, &s, BE4, 8080));
	s = syn(4, "203.0.113.5", 40000, LB4_OPEN, 80);
	CASE("service-without-ranges-unfiltered", expect_nat(pr, &s, BE4_OPEN, 8080));

	/* New flows only: the range goes away under an established flow. */
	snprintf(name, sizeof(name), "srcrange/%s/established-flow-kept", pr->name);
	if (sp_test_selected(name)) {
		fx_ct_flush(&d);
		s = syn(4, "10.10.0.3", 40001, LB4, 80);
		ok = expect_nat(pr, &s, BE4, 8080) &&
		     ASSERT_EQ(range(SVC4, 4, "10.10.0.0", 24, true), 0, "remove the range");
		s.tcp_flags = PKT_ACK;
		s.ack = 1;
		ok = ok && expect_nat(pr, &s, BE4, 8080);
		/* The ACK took the conntrack-first path, which never filters;
		 * again by the Service path (its svc_id not trusted there),
		 * where the filter must leave an established flow alone too. */
		ok = ok && ASSERT_EQ(fx_svc_live(&d, SVC4, false), 0, "svc_id not live");
		ok = ok && expect_nat(pr, &s, BE4, 8080);
		ok &= ASSERT_EQ(fx_svc_live(&d, SVC4, true), 0, "svc_id live again");
		s = syn(4, "10.10.0.3", 40002, LB4, 80);
		ok = ok && expect_denied(pr, &s, SVC4);
		ok &= ASSERT_EQ(range(SVC4, 4, "10.10.0.0", 24, false), 0, "restore the range");
		sp_test_report(name, ok);
	}

	/* No endpoint: the filter comes first (kube-proxy's firewall does). */
	s = syn(4, "203.0.113.5", 40000, LB4_EMPTY, 80);
	CASE("no-endpoint-denied-dropped", expect_denied(pr, &s, SVC_EMPTY));
	snprintf(name, sizeof(name), "srcrange/%s/no-endpoint-allowed-rejected", pr->name);
	if (sp_test_selected(name)) {
		fx_ct_flush(&d);
		r0 = fx_reason_packets(&d, SP_R_SRC_RANGE_DENIED);
		s = syn(4, "10.10.0.2", 40000, LB4_EMPTY, 80);
		v = fx_run_spec(pr->p, &s, &got);
		/* XDP leaves the answer to TC; TC answers with an RST */
		ok = ASSERT_EQ(v, pr->tc ? TC_ACT_REDIRECT : XDP_PASS, "verdict") &&
		     ASSERT_EQ(fx_reason_packets(&d, SP_R_SRC_RANGE_DENIED), r0,
			       "not counted src_range_denied");
		sp_test_report(name, ok);
	}
#undef CASE
}

int main(void)
{
	struct prog progs[3];
	size_t i;

	if (unshare(CLONE_NEWNET)) {
		fprintf(stderr, "unshare(CLONE_NEWNET): %s\n", strerror(errno));
		sp_test_report("srcrange/setup", false);
		return 1;
	}
	if (!ASSERT_EQ(setup(), 0, "load the datapath and write the fixture")) {
		sp_test_report("srcrange/setup", false);
		if (d.skel)
			fx_close(&d);
		return sp_test_exit();
	}
	progs[0] = (struct prog){ "xdp", d.skel->progs.sp_xdp, false };
	progs[1] = (struct prog){ "tc_ingress", d.skel->progs.sp_tc_ingress, true };
	progs[2] = (struct prog){ "tc_egress", d.skel->progs.sp_tc_egress, true };
	for (i = 0; i < 3; i++)
		run_prog(&progs[i]);
	fx_close(&d);
	return sp_test_exit();
}
