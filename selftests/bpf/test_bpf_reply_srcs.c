// SPDX-License-Identifier: Apache-2.0
/*
 * sp_reply_srcs, the filter of the addresses replies come from (bpf/maps.h),
 * through BPF_PROG_TEST_RUN: a new flow puts its backend's address in
 * before its REV entry, and its reply is reverse-NATed; the client's
 * address is not there. A REV entry the datapath did not write (as a version
 * from before the filter left in the pinned conntrack) is not looked up
 * until its source is seeded from conntrack (sp_dp_seed_reply_srcs), and
 * sp_dp_load seeds the filter when it finds conntrack pinned without it.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "test.h"
#include "dp_fixture.h"
#include "dp.h"

#define VIP "10.96.0.1"
#define BE "10.244.0.11"
#define CLIENT "10.0.0.1"
#define OLD_CLIENT "10.0.0.2"
#define OLD_BE "10.244.0.12" /* the backend of the flow the datapath never saw */
#define OLD_PORT 9090

static struct fx_dp dp;

/* True if the filter behind fd may hold addr. */
static bool src_maybe(int fd, const char *addr)
{
	struct sp_addr a = fx_addr(4, addr);

	return bpf_map_lookup_elem(fd, NULL, &a) == 0;
}

/* Run a TCP ACK from src:sport to dst:dport through sp_xdp; true if it
 * left as want_src:want_sport -> dst:dport (every byte, checksums
 * recomputed from scratch by pkt_build). */
static bool reply_as(const char *src, uint16_t sport, const char *dst, uint16_t dport,
		     const char *want_src, uint16_t want_sport)
{
	struct pkt_spec in = { .family = 4, .proto = IPPROTO_TCP, .saddr = src, .daddr = dst,
			       .sport = sport, .dport = dport, .tcp_flags = PKT_ACK, .seq = 7 };
	struct pkt_spec want = in;
	struct pkt out, exp;
	int v;

	want.saddr = want_src;
	want.sport = want_sport;
	v = fx_run_spec(dp.skel->progs.sp_xdp, &in, &out);
	if (!ASSERT_EQ(v, XDP_PASS, "verdict") || !ASSERT_EQ(pkt_build(&want, &exp), 0, "build"))
		return false;
	return out.len == exp.len && !memcmp(out.data, exp.data, exp.len);
}

/* Put the two entries of a flow OLD_CLIENT:3000 -> VIP:80 -> OLD_BE:OLD_PORT
 * into conntrack (ct), as a datapath from before the filter wrote them. */
static int old_flow(const struct sp_ct_maps *ct)
{
	struct sp_ct_key k;
	struct sp_ct_val v;

	memset(&k, 0, sizeof(k));
	memset(&v, 0, sizeof(v));
	k.saddr = fx_addr(4, OLD_BE);
	k.daddr = fx_addr(4, OLD_CLIENT);
	k.sport = htons(OLD_PORT);
	k.dport = htons(3000);
	k.proto = IPPROTO_TCP;
	k.family = SP_FAMILY_V4;
	k.dir = SP_CT_REV;
	v.nat_addr = fx_addr(4, VIP);
	v.nat_port = htons(80);
	v.nat_saddr = fx_addr(4, OLD_CLIENT);
	v.nat_sport = htons(3000);
	v.backend_id = 1;
	v.svc_id = 1;
	v.state = SP_CT_ESTABLISHED;
	v.created = fx_mono_ns();
	v.expires = v.created + 3600 * 1000000000ULL;
	if (sp_ct_update(ct, &k, &v, BPF_ANY))
		return -1;
	k.saddr = fx_addr(4, OLD_CLIENT);
	k.daddr = fx_addr(4, VIP);
	k.sport = htons(3000);
	k.dport = htons(80);
	k.dir = SP_CT_FWD;
	v.nat_addr = fx_addr(4, OLD_BE);
	v.nat_port = htons(OLD_PORT);
	memset(&v.nat_saddr, 0, sizeof(v.nat_saddr));
	v.nat_sport = 0;
	return sp_ct_update(ct, &k, &v, BPF_ANY) ? -1 : 0;
}

static void test_reply_srcs_new_flow(void)
{
	int fd = bpf_map__fd(dp.skel->maps.sp_reply_srcs);
	struct pkt_spec syn = { .family = 4, .proto = IPPROTO_TCP, .saddr = CLIENT, .daddr = VIP,
				.sport = 1000, .dport = 80, .tcp_flags = PKT_SYN };
	struct pkt out;

	ASSERT_TRUE(!src_maybe(fd, BE), "backend not in the filter before its first flow");
	ASSERT_EQ(fx_run_spec(dp.skel->progs.sp_xdp, &syn, &out), XDP_PASS, "SYN to the VIP");
	ASSERT_TRUE(src_maybe(fd, BE), "the backend's address after the SYN");
	ASSERT_TRUE(!src_maybe(fd, CLIENT), "not the client's");
	ASSERT_TRUE(reply_as(BE, 8080, CLIENT, 1000, VIP, 80), "reply from the VIP:80");
}

static void test_reply_srcs_seed(void)
{
	struct sp_ct_maps ct = fx_ct(&dp);
	int fd = bpf_map__fd(dp.skel->maps.sp_reply_srcs);
	uint32_t seeded = 0;

	if (!ASSERT_EQ(old_flow(&ct), 0, "write the old flow's entries"))
		return;
	/* Not in the filter: passed as it came (that is what an upgrade
	 * would do to the flows before it, without the seed). */
	ASSERT_TRUE(reply_as(OLD_BE, OLD_PORT, OLD_CLIENT, 3000, OLD_BE, OLD_PORT),
		    "unseeded: the reply passes untouched");
	ASSERT_EQ(sp_dp_seed_reply_srcs(&ct, fd, &seeded), 0, "seed from conntrack");
	/* The old flow's, and the new flow's if test_reply_srcs_new_flow ran. */
	ASSERT_TRUE(seeded >= 1 && seeded <= 2, "REV entries seeded");
	ASSERT_TRUE(src_maybe(fd, OLD_BE), "the old flow's source after the seed");
	ASSERT_TRUE(reply_as(OLD_BE, OLD_PORT, OLD_CLIENT, 3000, VIP, 80),
		    "seeded: the reply from the VIP:80");
}

/* Remove every pin under dir, then dir (no subdirectories: sp_dp_load
 * attaches nothing). */
static void unpin_dir(const char *dir)
{
	char path[512];
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.') {
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			unlink(path);
		}
	closedir(d);
	rmdir(dir);
}

/* An upgrade: conntrack pinned, sp_reply_srcs not (as a version from
 * before the filter leaves them). sp_dp_load seeds the new filter from
 * conntrack. */
static void test_reply_srcs_load_seeds(void)
{
	char dir[128], path[256];
	struct sp_dp_opts o;
	struct sp_dp d;
	int fd;

	snprintf(dir, sizeof(dir), "/sys/fs/bpf/sp-test-reply-srcs-%d", (int)getpid());
	sp_dp_opts_default(&o);
	o.pin_dir = dir;
	o.ct_size = 4096;
	o.ct6_size = 4096;
	o.max_frontends = o.max_svc_ids = o.max_backends = 1024;
	o.maglev_chunks = 1024;
	o.max_src_ranges = 64;
	if (!ASSERT_EQ(sp_dp_load(&d, &o), 0, "first load"))
		goto out;
	ASSERT_EQ(old_flow(&d.ct), 0, "write the old flow's entries");
	sp_dp_close(&d);
	snprintf(path, sizeof(path), "%s/%s", dir, SP_MAP_REPLY_SRCS);
	if (!ASSERT_EQ(unlink(path), 0, "unpin the filter (the older version had none)"))
		goto out;
	if (!ASSERT_EQ(sp_dp_load(&d, &o), 0, "load over the older version's pins"))
		goto out;
	fd = bpf_map__fd(d.skel->maps.sp_reply_srcs);
	ASSERT_TRUE(src_maybe(fd, OLD_BE), "the pinned flow's source in the new filter");
	ASSERT_TRUE(access(path, F_OK) == 0, "the filter pinned");
	sp_dp_close(&d);
out:
	unpin_dir(dir);
}

int main(void)
{
	libbpf_set_print(fx_quiet_print);
	if (geteuid()) {
		sp_test_skip("test_bpf_reply_srcs", "needs root (BPF_PROG_TEST_RUN)");
		return sp_test_exit();
	}
	if (!ASSERT_EQ(fx_open(&dp, 4096, 0), 0, "load the test's datapath") ||
	    !ASSERT_EQ(fx_service(&dp, 4, IPPROTO_TCP, VIP, 80, BE, 8080, 1), 0, "svc")) {
		sp_test_report("reply_srcs/setup", false);
		goto out;
	}
	RUN_TEST(test_reply_srcs_new_flow);
	RUN_TEST(test_reply_srcs_seed);
	RUN_TEST(test_reply_srcs_load_seeds);
out:
	if (dp.skel)
		fx_close(&dp);
	return sp_test_exit();
}
