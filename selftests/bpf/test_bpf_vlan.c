// SPDX-License-Identifier: Apache-2.0
/*
 * VLAN-tagged frames (issue 9, item 9): a frame carrying an 802.1Q tag, or
 * two (802.1ad outer, 802.1Q inner: QinQ), in its data is parsed past the
 * tags and NATed as the same frame untagged would be, with its tags kept
 * byte for byte; it goes to the stack (which knows the VLAN device), never
 * redirected. A third tag, or a frame cut inside a tag, passes untouched.
 *
 * XDP sees tags on NICs that do not strip them (veths never do); the TC
 * hooks run the same parser. Each case runs through sp_xdp, sp_tc_ingress
 * and sp_tc_egress; every rewritten frame is compared with the untagged
 * frame's expected rewrite with the tags put back, and its checksums are
 * recomputed from scratch.
 */
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>

#include "dp_fixture.h"
#include "test.h"

#define VIP4 "10.96.0.10"
#define BE4 "10.1.0.11"
#define CLI4 "10.20.0.2"
#define VIP6 "fd00:96::10"
#define BE6 "fd00:1::11"
#define CLI6 "fd00:20::2"

static struct fx_dp d;

struct prog {
	const char *name;
	struct bpf_program *p;
	bool tc;
};

/* Put tags (outermost first) after the MAC addresses of p. 0 or -1. */
static int vlan_push(struct pkt *p, const uint16_t *tpids, int n)
{
	int i;

	if (p->len + 4u * n > sizeof(p->data))
		return -1;
	memmove(p->data + 12 + 4 * n, p->data + 12, p->len - 12);
	for (i = 0; i < n; i++) {
		pkt_put16(p->data + 12 + 4 * i, tpids[i]);
		pkt_put16(p->data + 14 + 4 * i, (uint16_t)(100 + i)); /* VLAN ids 100, 101 */
	}
	p->len += 4u * n;
	return 0;
}

/* The frame without its n tags (for the checksum walk, which expects
 * Ethernet then IP). */
static void vlan_pop(const struct pkt *in, int n, struct pkt *out)
{
	memcpy(out->data, in->data, 12);
	memcpy(out->data + 12, in->data + 12 + 4 * n, in->len - 12 - 4 * n);
	out->len = in->len - 4u * n;
}

static uint32_t slot_of(const struct prog *pr)
{
	return !pr->tc ? SP_SLOT_XDP : pr->p == d.skel->progs.sp_tc_ingress ? SP_SLOT_POD :
									     SP_SLOT_HOST;
}

/* in, with tags, must come out as want (its untagged rewrite) with the
 * same tags, handed to the stack, checksums right. */
static bool expect_rewrite(const struct prog *pr, const struct pkt_spec *in,
			   const struct pkt_spec *want, const uint16_t *tpids, int n)
{
	uint64_t stack0 = fx_stat(&d, slot_of(pr), offsetof(struct sp_stats, to_stack));
	struct pkt fin, got, w, bare;
	char why[128];
	int v;

	if (!ASSERT_EQ(pkt_build(in, &fin), 0, "build the input") ||
	    !ASSERT_EQ(vlan_push(&fin, tpids, n), 0, "tag the input") ||
	    !ASSERT_EQ(pkt_build(want, &w), 0, "build the expected frame") ||
	    !ASSERT_EQ(vlan_push(&w, tpids, n), 0, "tag the expected frame"))
		return false;
	v = fx_run(pr->p, &fin, &got);
	if (!ASSERT_EQ(v, pr->tc ? TC_ACT_OK : XDP_PASS, "verdict: to the stack"))
		return false;
	if (!ASSERT_EQ(pkt_diff(&w, got.data, got.len, NULL), -1,
		       "output is the expected rewrite, tags kept")) {
		pkt_hexdump(stderr, "want", w.data, w.len);
		pkt_hexdump(stderr, "got", got.data, got.len);
		return false;
	}
	vlan_pop(&got, n, &bare);
	if (!pkt_csums_ok(bare.data, bare.len, why, sizeof(why))) {
		fprintf(stderr, "  output checksums: %s\n", why);
		return ASSERT_TRUE(false, "checksums recomputed from scratch");
	}
	return ASSERT_EQ(fx_stat(&d, slot_of(pr), offsetof(struct sp_stats, to_stack)), stack0 + 1,
			 "counted to_stack (not redirected)");
}

/* in, with tags, must come out byte-identical and passed; counted under
 * stat field off (if non-zero) or reason (if >= 0). */
static bool expect_untouched(const struct prog *pr, const struct pkt_spec *in,
			     const uint16_t *tpids, int n, uint32_t cut, size_t off, int reason)
{
	uint64_t s0 = off ? fx_stat(&d, slot_of(pr), off) : 0;
	uint64_t r0 = reason >= 0 ? fx_reason_packets(&d, (uint32_t)reason) : 0;
	struct pkt fin, got;
	bool ok;
	int v;

	if (!ASSERT_EQ(pkt_build(in, &fin), 0, "build the input") ||
	    !ASSERT_EQ(vlan_push(&fin, tpids, n), 0, "tag the input"))
		return false;
	if (cut)
		fin.len = cut;
	v = fx_run(pr->p, &fin, &got);
	ok = ASSERT_EQ(v, pr->tc ? TC_ACT_OK : XDP_PASS, "verdict: passed") &&
	     ASSERT_EQ(pkt_diff(&fin, got.data, got.len, NULL), -1, "byte-identical");
	if (off)
		ok &= ASSERT_EQ(fx_stat(&d, slot_of(pr), off), s0 + 1, "counted");
	if (reason >= 0)
		ok &= ASSERT_EQ(fx_reason_packets(&d, (uint32_t)reason), r0 + 1,
				"counted under its reason");
	return ok;
}

static struct pkt_spec tcp(int family, const char *src, uint16_t sport, const char *dst,
			   uint16_t dport, uint8_t flags)
{
	struct pkt_spec s = { .family = (uint8_t)family, .proto = IPPROTO_TCP, .saddr = src,
			      .daddr = dst, .sport = sport, .dport = dport, .tcp_flags = flags,
			      .seq = 1000, .ack = flags & PKT_ACK ? 5001 : 0, .win = 1000,
			      .payload_len = 9, .payload_seed = 5 };

	return s;
}

static const uint16_t DOT1Q[] = { ETH_P_8021Q };
static const uint16_t QINQ[] = { ETH_P_8021AD, ETH_P_8021Q };
static const uint16_t THREE[] = { ETH_P_8021AD, ETH_P_8021Q, ETH_P_8021Q };

/* A connection to VIP through tags: request DNATed, reply reverse-NATed. */
static bool flow(const struct prog *pr, int family, const uint16_t *tpids, int n)
{
	const char *vip = family == 4 ? VIP4 : VIP6, *be = family == 4 ? BE4 : BE6;
	const char *cli = family == 4 ? CLI4 : CLI6;
	struct pkt_spec req = tcp(family, cli, 40000, vip, 80, PKT_SYN);
	struct pkt_spec req_out = pkt_spec_nat(&req, NULL, 0, be, 8080);
	struct pkt_spec rep = tcp(family, be, 8080, cli, 40000, PKT_SYN | PKT_ACK);
	struct pkt_spec rep_out = pkt_spec_nat(&rep, vip, 80, NULL, 0);

	return expect_rewrite(pr, &req, &req_out, tpids, n) &&
	       expect_rewrite(pr, &rep, &rep_out, tpids, n);
}

static void run_prog(const struct prog *pr)
{
	struct pkt_spec s = tcp(4, CLI4, 40001, VIP4, 80, PKT_SYN);
	char name[96];
	bool ok;

#define CASE(n, body)                                                                      \
	do {                                                                               \
		snprintf(name, sizeof(name), "vlan/%s/%s", pr->name, n);                   \
		if (sp_test_selected(name)) {                                              \
			fx_ct_flush(&d);                                                        \
			ok = (body);                                                       \
			sp_test_report(name, ok);                                          \
		}                                                                          \
	} while (0)

	CASE("v4-dot1q-flow", flow(pr, 4, DOT1Q, 1));
	CASE("v6-dot1q-flow", flow(pr, 6, DOT1Q, 1));
	CASE("v4-qinq-flow", flow(pr, 4, QINQ, 2));
	CASE("v6-qinq-flow", flow(pr, 6, QINQ, 2));
	CASE("three-tags-not-ours",
	     expect_untouched(pr, &s, THREE, 3, 0, offsetof(struct sp_stats, not_service), -1));
	/* Cut inside the second tag: 12 bytes of MACs, 4 of the first tag, 2. */
	CASE("cut-in-tag-trunc-l2", expect_untouched(pr, &s, QINQ, 2, 18, 0, SP_R_TRUNC_L2));
	/* Cut after the tags, inside the IP header. */
	CASE("cut-in-ip-trunc-l3", expect_untouched(pr, &s, DOT1Q, 1, 30, 0, SP_R_TRUNC_L3));
#undef CASE
}

int main(void)
{
	struct prog progs[3];
	size_t i;

	if (unshare(CLONE_NEWNET)) {
		fprintf(stderr, "unshare(CLONE_NEWNET): %s\n", strerror(errno));
		sp_test_report("vlan/setup", false);
		return 1;
	}
	if (!ASSERT_EQ(fx_open(&d, 0, 0), 0, "load the datapath") ||
	    !ASSERT_EQ(fx_service(&d, 4, IPPROTO_TCP, VIP4, 80, BE4, 8080, 1), 0, "v4 Service") ||
	    !ASSERT_EQ(fx_service(&d, 6, IPPROTO_TCP, VIP6, 80, BE6, 8080, 2), 0, "v6 Service")) {
		sp_test_report("vlan/setup", false);
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
