// SPDX-License-Identifier: Apache-2.0
/*
 * Packet fuzzer for the datapath: every input is one frame, run through
 * one of the programs (the first byte picks sp_xdp, sp_tc_ingress,
 * sp_tc_egress or sp_tc_uplink) with BPF_PROG_TEST_RUN, on a datapath
 * loaded once without pinning in a private network namespace, with a few
 * Services (selftests/bpf/dp_fixture.h). Conntrack and the fragment map are
 * emptied before every frame, so each frame is judged alone:
 *
 *  - a frame to no frontend of the fixture comes out byte-identical (with no
 *    flow, nothing else may be rewritten);
 *  - a rewritten frame keeps its length (only rejects, which TC answers,
 *    may change it), and if its IP and L4 checksums were valid on the way
 *    in they are valid on the way out (pkt.h recomputes them from scratch);
 *  - nothing fails to run.
 * A broken invariant aborts, so libFuzzer keeps the input.
 *
 * `make fuzz` builds and runs it with the parser fuzzers; seeds are frames
 * pkt.h builds (selftests/fuzz/corpus/bpf_pkt/), written by
 * `fuzz_bpf_pkt --write-seeds DIR`.
 */
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/pkt_cls.h>

#include "dp_fixture.h"

static struct fx_dp dp;
static struct bpf_program *progs[4];

/* The fixture's frontends: (family, address, port, proto). */
static const struct {
	int family;
	const char *addr;
	uint16_t port;
	uint8_t proto;
} fes[] = {
	{ 4, "10.96.0.10", 80, IPPROTO_TCP },	 { 4, "10.96.0.10", 53, IPPROTO_UDP },
	{ 6, "fd00:96::10", 80, IPPROTO_TCP },	 { 6, "fd00:96::10", 53, IPPROTO_UDP },
	{ 4, "10.96.0.20", 80, IPPROTO_TCP }, /* no endpoint */
};

static void die(const char *what)
{
	fprintf(stderr, "fuzz_bpf_pkt: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void map_empty(int fd, size_t ksz)
{
	uint8_t key[64], next[64];

	while (bpf_map_get_next_key(fd, NULL, next) == 0) {
		memcpy(key, next, ksz);
		if (bpf_map_delete_elem(fd, key))
			break;
	}
}

/*
 * Is the frame addressed to one of the fixture's frontends? Read from the
 * raw bytes, not through pkt_parse: a frame whose IP length fields do not
 * match its size is malformed to a receiving host, but still a frame to a
 * frontend that the datapath may rewrite (the stack drops it after).
 */
static bool to_frontend(const uint8_t *d, uint32_t len)
{
	uint32_t l2, off, dst, i, n;
	uint8_t proto, a[16];
	uint16_t et;
	int fam;

	/* after the VLAN tags the datapath walks (it serves tagged frames) */
	l2 = pkt_l2_len(d, len, &et);
	if (!l2 || len < l2 + 20)
		return false;
	if (et == ETH_P_IP) {
		if (pkt_get16(d + l2 + 6) & 0x1fff)
			return false; /* a later fragment: no ports */
		fam = 4;
		off = l2 + (d[l2] & 0xf) * 4u;
		proto = d[l2 + 9];
		dst = l2 + 16;
	} else if (et == ETH_P_IPV6 && len >= l2 + 40) {
		fam = 6;
		off = l2 + 40;
		proto = d[l2 + 6];
		dst = l2 + 24;
		for (n = 0; n < 16; n++) {
			if (proto != IPPROTO_HOPOPTS && proto != IPPROTO_DSTOPTS &&
			    proto != IPPROTO_ROUTING && proto != IPPROTO_FRAGMENT && proto != IPPROTO_AH)
				break;
			if (off + 8 > len)
				return false;
			if (proto == IPPROTO_FRAGMENT && (pkt_get16(d + off + 2) & 0xfff8))
				return false;
			i = proto == IPPROTO_FRAGMENT ? 8 :
			    proto == IPPROTO_AH	      ? (d[off + 1] + 2u) * 4 :
							(d[off + 1] + 1u) * 8;
			proto = d[off];
			off += i;
		}
	} else {
		return false;
	}
	if (off + 4 > len)
		return false;
	for (i = 0; i < sizeof(fes) / sizeof(fes[0]); i++) {
		if (fes[i].family != fam || fes[i].proto != proto ||
		    pkt_get16(d + off + 2) != fes[i].port || !pkt_addr(fam, fes[i].addr, a))
			continue;
		if (!memcmp(d + dst, a, fam == 4 ? 4 : 16))
			return true;
	}
	return false;
}

static int setup(void)
{
	if (unshare(CLONE_NEWNET))
		die("unshare(CLONE_NEWNET)");
	if (fx_prepare(&dp, 1024, 0))
		die("open the datapath");
	dp.skel->rodata->cfg_reject_rate = 0;
	if (fx_load(&dp))
		die("load the datapath");
	if (fx_service(&dp, 4, IPPROTO_TCP, "10.96.0.10", 80, "10.1.0.11", 8080, 1) ||
	    fx_service(&dp, 4, IPPROTO_UDP, "10.96.0.10", 53, "10.1.0.12", 5353, 2) ||
	    fx_service(&dp, 6, IPPROTO_TCP, "fd00:96::10", 80, "fd00:1::11", 8080, 3) ||
	    fx_service(&dp, 6, IPPROTO_UDP, "fd00:96::10", 53, "fd00:1::12", 5353, 4) ||
	    fx_service(&dp, 4, IPPROTO_TCP, "10.96.0.20", 80, NULL, 0, 5))
		die("write the fixture");
	progs[0] = dp.skel->progs.sp_xdp;
	progs[1] = dp.skel->progs.sp_tc_ingress;
	progs[2] = dp.skel->progs.sp_tc_egress;
	progs[3] = dp.skel->progs.sp_tc_uplink;
	return 0;
}

/* Seeds: frames of every shape the table tests use, one file each. */
static int write_seeds(const char *dir)
{
	static const struct pkt_spec specs[] = {
		{ .family = 4, .proto = IPPROTO_TCP, .saddr = "10.1.0.7", .daddr = "10.96.0.10",
		  .sport = 40000, .dport = 80, .tcp_flags = PKT_SYN, .seq = 1, .win = 1000 },
		{ .family = 4, .proto = IPPROTO_UDP, .saddr = "10.1.0.7", .daddr = "10.96.0.10",
		  .sport = 40001, .dport = 53, .payload_len = 30 },
		{ .family = 6, .proto = IPPROTO_TCP, .saddr = "fd00:1::7", .daddr = "fd00:96::10",
		  .sport = 40002, .dport = 80, .tcp_flags = PKT_SYN, .seq = 1, .win = 1000,
		  .n_ext = 1, .ext = { IPPROTO_HOPOPTS } },
		{ .family = 6, .proto = IPPROTO_UDP, .saddr = "fd00:1::7", .daddr = "fd00:96::10",
		  .sport = 40003, .dport = 53, .payload_len = 400, .frag = PKT_FRAG_FIRST,
		  .frag_bytes = 208, .frag_id = 7 },
		{ .family = 4, .proto = IPPROTO_UDP, .saddr = "10.1.0.7", .daddr = "10.96.0.10",
		  .sport = 40004, .dport = 53, .payload_len = 400, .frag = PKT_FRAG_LATER,
		  .frag_bytes = 200, .frag_off8 = 26, .ip_id = 9 },
		{ .family = 4, .proto = IPPROTO_TCP, .saddr = "10.1.0.7", .daddr = "10.96.0.20",
		  .sport = 40005, .dport = 80, .tcp_flags = PKT_SYN, .seq = 1, .win = 1000,
		  .ip_optlen = 8 },
		{ .family = 4, .proto = IPPROTO_TCP, .saddr = "10.1.0.11", .daddr = "10.1.0.7",
		  .sport = 8080, .dport = 40000, .tcp_flags = PKT_SYN | PKT_ACK, .seq = 1,
		  .win = 1000 },
	};
	struct pkt p, e;
	char path[512];
	size_t i;
	FILE *f;

	for (i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		uint8_t prog;

		if (pkt_build(&specs[i], &p))
			return -1;
		for (prog = 0; prog < 4; prog++) {
			snprintf(path, sizeof(path), "%s/seed-%zu-%u", dir, i, prog);
			f = fopen(path, "w");
			if (!f)
				return -1;
			fwrite(&prog, 1, 1, f);
			fwrite(p.data, 1, p.len, f);
			fclose(f);
		}
		/* tagged copies for XDP, which serves them: 802.1Q, then QinQ */
		if (specs[i].proto == IPPROTO_TCP && i < 3) {
			static const uint8_t tags[2][4] = { { 0x88, 0xa8, 0x00, 0x64 },
							    { 0x81, 0x00, 0x00, 0x0a } };
			int n;

			for (n = 1; n <= 2; n++) {
				snprintf(path, sizeof(path), "%s/seed-%zu-vlan%d", dir, i, n);
				f = fopen(path, "w");
				if (!f)
					return -1;
				fwrite("\0", 1, 1, f);
				fwrite(p.data, 1, 12, f);
				fwrite(tags[2 - n], 4, n, f);
				fwrite(p.data + 12, 1, p.len - 12, f);
				fclose(f);
			}
		}
		/* and an ICMP error quoting it */
		if (specs[i].proto == IPPROTO_UDP && !pkt_build_unreach(&p, 28, &e)) {
			snprintf(path, sizeof(path), "%s/seed-%zu-icmp", dir, i);
			f = fopen(path, "w");
			if (!f)
				return -1;
			fwrite("\0", 1, 1, f);
			fwrite(e.data, 1, e.len, f);
			fclose(f);
		}
	}
	return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	int i;

	for (i = 1; i + 1 < *argc; i++)
		if (!strcmp((*argv)[i], "--write-seeds"))
			exit(write_seeds((*argv)[i + 1]) ? 1 : 0);
	return setup();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pkt in, out;
	struct pkt_info pi;
	char why[160];
	bool parsed, csums_in, tc;
	int prog, v;

	if (size < 1 + ETH_HLEN || size - 1 > sizeof(in.data))
		return 0;
	prog = data[0] & 3;
	tc = prog != 0;
	memcpy(in.data, data + 1, size - 1);
	in.len = (uint32_t)(size - 1);
	map_empty(bpf_map__fd(dp.skel->maps.sp_ct4), sizeof(struct sp_ct4_key));
	map_empty(bpf_map__fd(dp.skel->maps.sp_ct6), sizeof(struct sp_ct_key));
	map_empty(bpf_map__fd(dp.skel->maps.sp_frags), sizeof(struct sp_frag_key));
	parsed = pkt_parse(in.data, in.len, &pi, why, sizeof(why));
	csums_in = parsed && pkt_csums_ok(in.data, in.len, why, sizeof(why));

	v = fx_run(progs[prog], &in, &out);
	if (v < 0 && errno == EINVAL)
		return 0; /* a frame the kernel's test harness refuses to build an skb of */
	if (v < 0)
		die("BPF_PROG_TEST_RUN");
	if (out.len == in.len && !memcmp(out.data, in.data, in.len))
		return 0; /* untouched: always fine */
	/* Rewritten. A TC reject answer replaces the frame: not judged here. */
	if (tc && v == TC_ACT_REDIRECT && out.len != in.len)
		return 0;
	if (!to_frontend(in.data, in.len)) {
		fprintf(stderr, "fuzz_bpf_pkt: program %d rewrote a frame to no frontend "
				"(verdict %d)\n", prog, v);
		pkt_hexdump(stderr, "in", in.data, in.len);
		pkt_hexdump(stderr, "out", out.data, out.len);
		abort();
	}
	if (out.len != in.len) {
		fprintf(stderr, "fuzz_bpf_pkt: program %d changed a frame's length %u -> %u\n",
			prog, in.len, out.len);
		abort();
	}
	if (csums_in && !pkt_csums_ok(out.data, out.len, why, sizeof(why))) {
		fprintf(stderr, "fuzz_bpf_pkt: program %d broke a checksum: %s\n", prog, why);
		pkt_hexdump(stderr, "in", in.data, in.len);
		pkt_hexdump(stderr, "out", out.data, out.len);
		abort();
	}
	return 0;
}
