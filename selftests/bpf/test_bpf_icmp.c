// SPDX-License-Identifier: Apache-2.0
/*
 * ICMP and ICMPv6 errors about NATed flows (bpf/lib/icmp.h), through
 * sp_xdp and sp_tc_ingress, IPv4 and IPv6, TCP and UDP.
 *
 * Each error is built by pkt.h from the very frame the datapath emitted
 * (a DNATed request, or a reverse-NATed reply), as the host that answers
 * it would build it; what must come out is the same error built from the
 * frame before NAT: byte for byte, every checksum recomputed from scratch.
 *
 *  <fam>_<proto>/backend_unreachable      the backend answers the request
 *                                         with an error (a pod's UDP port
 *                                         unreachable): quote and source
 *                                         show the frontend to the client
 *  <fam>_<proto>/router_error             a router on the way to the backend
 *                                         (frag needed / packet too big):
 *                                         the quote shows the frontend, the
 *                                         router's address stays
 *  <fam>_<proto>/client_unreachable_reply the client's host answers a
 *                                         reverse-NATed reply: it goes to the
 *                                         backend, quoting the backend
 *  <fam>_<proto>/unrelated_error_untouched an error about no flow of ours
 *  <fam>_tcp/full_quote                   a quote long enough to hold the
 *                                         TCP checksum: that one too
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/pkt_cls.h>

#include "dp_fixture.h"
#include "test.h"

struct fam {
	int family;
	const char *client, *vip, *backend, *router, *other;
};

static const struct fam fams[] = {
	{ 4, "10.1.0.7", "10.96.0.10", "10.1.0.11", "10.1.0.1", "10.1.0.99" },
	{ 6, "fd00:1::7", "fd00:96::10", "fd00:1::11", "fd00:1::1", "fd00:1::99" },
};

static struct fx_dp dp;

/* Set the source address of an ICMP error frame (Ethernet + IPv4/IPv6, no
 * options) and recompute the checksums it is part of. */
static void set_src(struct pkt *p, int family, const char *addr)
{
	uint8_t a[16];
	uint32_t l4 = family == 4 ? ETH_HLEN + 20 : ETH_HLEN + 40, len = p->len - l4, sum;

	pkt_addr(family, addr, a);
	if (family == 4) {
		memcpy(p->data + ETH_HLEN + 12, a, 4);
		pkt_put16(p->data + ETH_HLEN + 10, 0);
		pkt_put16(p->data + ETH_HLEN + 10,
			  (uint16_t)~pkt_fold(pkt_sum16(0, p->data + ETH_HLEN, 20)));
		return;
	}
	memcpy(p->data + ETH_HLEN + 8, a, 16);
	pkt_put16(p->data + l4 + 2, 0);
	sum = pkt_pseudo_sum(6, p->data + ETH_HLEN + 8, p->data + ETH_HLEN + 24, IPPROTO_ICMPV6,
			     len);
	pkt_put16(p->data + l4 + 2, (uint16_t)~pkt_fold(pkt_sum16(sum, p->data + l4, len)));
}

/* Bytes of IP header + 8 of frame f: the quote RFC 792 asks for. */
static uint32_t short_quote(const struct pkt *f)
{
	struct pkt_info pi;
	char why[128];

	if (!pkt_parse(f->data, f->len, &pi, why, sizeof(why)))
		return 0;
	return pi.l3_len + 8;
}

/* Run err through prog and compare with want. */
static bool expect(const struct bpf_program *prog, bool tc, const struct pkt *err,
		   const struct pkt *want, const char *name)
{
	struct pkt out;
	char why[160];
	long d;
	int v = fx_run(prog, err, &out);
	bool ok = ASSERT_EQ(v, tc ? TC_ACT_OK : XDP_PASS, "verdict (to the stack)");

	if (!ASSERT_TRUE(pkt_csums_ok(out.data, out.len, why, sizeof(why)), "checksums"))
		fprintf(stderr, "  %s: %s\n", name, why);
	else if ((d = pkt_diff(want, out.data, out.len, NULL)) >= 0) {
		fprintf(stderr, "  %s: differs from the expected frame at byte %ld\n", name, d);
		pkt_hexdump(stderr, "want", want->data, want->len);
		pkt_hexdump(stderr, "got", out.data, out.len);
		ok = false;
	}
	return ok;
}

static void run_case(const struct bpf_program *prog, const char *hook, bool tc,
		     const struct fam *f, uint8_t proto, uint16_t cport)
{
	const char *pn = proto == IPPROTO_TCP ? "tcp" : "udp";
	struct pkt_spec req = { .family = (uint8_t)f->family, .proto = proto, .saddr = f->client,
				.daddr = f->vip, .sport = cport, .dport = 80,
				.tcp_flags = PKT_SYN, .seq = 1000, .win = 64240,
				.payload_len = proto == IPPROTO_UDP ? 100 : 0, .df = true };
	struct pkt_spec rep = req;
	struct pkt r, r_nat, q, q_nat, err, want;
	char name[96];
	bool ok;

	rep.saddr = f->backend;
	rep.sport = 8080;
	rep.daddr = f->client;
	rep.dport = cport;
	rep.tcp_flags = PKT_SYN | PKT_ACK;
	rep.ack = 1001;

	/* the flow: a request DNATed, its reply reverse-NATed */
	ok = !pkt_build(&req, &r) && !pkt_build(&rep, &q);
	ok = ok && ASSERT_TRUE(fx_run(prog, &r, &r_nat) >= 0, "request") &&
	     ASSERT_TRUE(fx_run(prog, &q, &q_nat) >= 0, "reply");

	snprintf(name, sizeof(name), "%s/v%d_%s/backend_unreachable", hook, f->family, pn);
	ok = ok && !pkt_build_unreach(&r_nat, short_quote(&r_nat), &err) &&
	     !pkt_build_unreach(&r, short_quote(&r), &want);
	sp_test_report(name, ok && expect(prog, tc, &err, &want, name));

	snprintf(name, sizeof(name), "%s/v%d_%s/router_error", hook, f->family, pn);
	ok = !pkt_build_unreach(&r_nat, short_quote(&r_nat), &err) &&
	     !pkt_build_unreach(&r, short_quote(&r), &want);
	set_src(&err, f->family, f->router);
	set_src(&want, f->family, f->router);
	sp_test_report(name, ok && expect(prog, tc, &err, &want, name));

	if (proto == IPPROTO_TCP) {
		snprintf(name, sizeof(name), "%s/v%d_%s/full_quote", hook, f->family, pn);
		ok = !pkt_build_unreach(&r_nat, r_nat.len - ETH_HLEN, &err) &&
		     !pkt_build_unreach(&r, r.len - ETH_HLEN, &want);
		set_src(&err, f->family, f->router);
		set_src(&want, f->family, f->router);
		sp_test_report(name, ok && expect(prog, tc, &err, &want, name));
	}

	snprintf(name, sizeof(name), "%s/v%d_%s/client_unreachable_reply", hook, f->family, pn);
	ok = !pkt_build_unreach(&q_nat, short_quote(&q_nat), &err) &&
	     !pkt_build_unreach(&q, short_quote(&q), &want);
	sp_test_report(name, ok && expect(prog, tc, &err, &want, name));

	snprintf(name, sizeof(name), "%s/v%d_%s/unrelated_error_untouched", hook, f->family, pn);
	req.saddr = f->other;
	ok = !pkt_build(&req, &r) && !pkt_build_unreach(&r, short_quote(&r), &err);
	sp_test_report(name, ok && expect(prog, tc, &err, &err, name));
}

int main(void)
{
	size_t i;
	int h;

	if (unshare(CLONE_NEWNET)) {
		fprintf(stderr, "unshare(CLONE_NEWNET): %s\n", strerror(errno));
		sp_test_report("icmp/setup", false);
		return 1;
	}
	if (!ASSERT_EQ(fx_open(&dp, 0, 0), 0, "load the datapath")) {
		sp_test_report("icmp/setup", false);
		return 1;
	}
	for (i = 0; i < 2; i++) {
		const struct fam *f = &fams[i];

		if (fx_service(&dp, f->family, IPPROTO_TCP, f->vip, 80, f->backend, 8080,
			       (uint32_t)(10 * i + 1)) ||
		    fx_service(&dp, f->family, IPPROTO_UDP, f->vip, 80, f->backend, 8080,
			       (uint32_t)(10 * i + 2))) {
			sp_test_report("icmp/setup", false);
			return 1;
		}
	}
	for (h = 0; h < 2; h++) {
		const struct bpf_program *prog = h ? dp.skel->progs.sp_tc_ingress :
						     dp.skel->progs.sp_xdp;

		for (i = 0; i < 2; i++) {
			run_case(prog, h ? "tc_ingress" : "xdp", h, &fams[i], IPPROTO_TCP,
				 (uint16_t)(41000 + 10 * h + i));
			run_case(prog, h ? "tc_ingress" : "xdp", h, &fams[i], IPPROTO_UDP,
				 (uint16_t)(42000 + 10 * h + i));
		}
	}
	fx_close(&dp);
	return sp_test_exit();
}
