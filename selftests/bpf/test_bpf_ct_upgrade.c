// SPDX-License-Identifier: Apache-2.0
/*
 * The upgrade from a single conntrack table (sp_ct, struct sp_ct_key for
 * both families), and from sp_ct4/sp_ct6 with the older 64-byte values, to
 * sp_ct4 and sp_ct6 with compact values (include/svcplane.h): sp_dp_load
 * copies the pinned old table's entries into the new ones before anything
 * is attached, without overwriting what the new tables hold already, and
 * leaves them in the old table, which the old programs still use; it
 * seeds the reply-source filter from what it copied. The daemon's second
 * pass (sp_dp_ct_upgrade(dp, true)), once the old programs are replaced,
 * copies what they added meanwhile and unpins the old table. A copied
 * flow's reply is reverse-NATed by the new programs.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "test.h"
#include "dp_fixture.h"
#include "dp.h"

#define VIP4 "10.96.0.1"
#define BE4 "10.244.0.12"
#define CLIENT4 "10.0.0.2"
#define VIP6 "fd00::96:1"
#define BE6 "fd00::244:12"
#define CLIENT6 "fd00::2"

static char dir[128];

static void unpin_dir(void)
{
	char path[512];
	struct dirent *e;
	DIR *dd = opendir(dir);

	while (dd && (e = readdir(dd))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	if (dd)
		closedir(dd);
	rmdir(dir);
}

/* A small datapath pinned under dir (named with tag and the pid), and
 * where the old table's pin goes. */
static void small_dp(const char *tag, struct sp_dp_opts *o, char *old_path, size_t len)
{
	snprintf(dir, sizeof(dir), "/sys/fs/bpf/sp-test-ct-upgrade-%s%d", tag, (int)getpid());
	snprintf(old_path, len, "%s/%s", dir, SP_MAP_CT_OLD);
	sp_dp_opts_default(o);
	o->pin_dir = dir;
	o->ct_size = o->ct6_size = 4096;
	o->max_frontends = o->max_svc_ids = o->max_backends = 1024;
	o->maglev_chunks = 1024;
	o->max_src_ranges = 64;
	o->host_routing = false; /* no metadata before the frame: compared whole */
}

/* The FWD and REV entries of an established flow client:3000 -> vip:80 ->
 * be:9090 of family fam, backend id backend. */
static void flow(int fam, const char *client, const char *vip, const char *be, __u32 backend,
		 struct sp_ct_key *fk, struct sp_ct_val *fv, struct sp_ct_key *rk,
		 struct sp_ct_val *rv)
{
	__u64 now = fx_mono_ns();

	memset(fk, 0, sizeof(*fk));
	memset(fv, 0, sizeof(*fv));
	fk->saddr = fx_addr(fam, client);
	fk->daddr = fx_addr(fam, vip);
	fk->sport = htons(3000);
	fk->dport = htons(80);
	fk->proto = IPPROTO_TCP;
	fk->family = fam == 4 ? SP_FAMILY_V4 : SP_FAMILY_V6;
	fk->dir = SP_CT_FWD;
	fv->nat_addr = fx_addr(fam, be);
	fv->nat_port = htons(9090);
	fv->backend_id = backend;
	fv->svc_id = 1;
	fv->state = SP_CT_ESTABLISHED;
	/* As the new tables keep them (SP_CT_TIME_SHIFT units), so that a
	 * copy reads back the same: a deadline as the last ns of its unit,
	 * the creation as the first. */
	fv->expires = (now + 3600ULL * 1000000000ULL) | ((1ULL << SP_CT_TIME_SHIFT) - 1);
	fv->created = now & ~((1ULL << SP_CT_TIME_SHIFT) - 1);
	*rk = *fk;
	rk->saddr = fv->nat_addr;
	rk->daddr = fk->saddr;
	rk->sport = fv->nat_port;
	rk->dport = fk->sport;
	rk->dir = SP_CT_REV;
	*rv = *fv;
	rv->nat_addr = fk->daddr;
	rv->nat_port = fk->dport;
	rv->nat_saddr = fk->saddr;
	rv->nat_sport = fk->sport;
}

/* True if m holds exactly v at k. */
static bool holds(const struct sp_ct_maps *m, const struct sp_ct_key *k, const struct sp_ct_val *v)
{
	struct sp_ct_val got;

	return sp_ct_lookup(m, k, &got) == 0 && !memcmp(&got, v, sizeof(got));
}

/* True if the old table (fd, keyed by struct sp_ct_key) holds exactly v at k. */
static bool old_holds(int fd, const struct sp_ct_key *k, const struct sp_ct_val *v)
{
	struct sp_ct_val got;

	return bpf_map_lookup_elem(fd, k, &got) == 0 && !memcmp(&got, v, sizeof(got));
}

static void test_ct_upgrade(void)
{
	struct sp_ct_key f4, r4, f6, r6, late;
	struct sp_ct_val fv4, rv4, fv6, rv6, newer, late_v;
	struct pkt_spec in = { .family = 4, .proto = IPPROTO_TCP, .saddr = BE4, .daddr = CLIENT4,
			       .sport = 9090, .dport = 3000, .tcp_flags = PKT_ACK, .seq = 7 };
	struct pkt_spec want = in;
	char old_path[256], srcs_path[256];
	struct sp_dp_opts o;
	struct pkt out, exp;
	struct sp_dp d;
	int fd = -1;

	small_dp("", &o, old_path, sizeof(old_path));
	snprintf(srcs_path, sizeof(srcs_path), "%s/%s", dir, SP_MAP_REPLY_SRCS);
	flow(4, CLIENT4, VIP4, BE4, 1, &f4, &fv4, &r4, &rv4);
	flow(6, CLIENT6, VIP6, BE6, 2, &f6, &fv6, &r6, &rv6);

	/* The new tables exist and hold one entry at an old key already:
	 * the new datapath made it, and it wins. */
	if (!ASSERT_EQ(sp_dp_load(&d, &o), 0, "first load"))
		goto out;
	newer = fv4;
	newer.backend_id = 99;
	ASSERT_EQ(sp_ct_update(&d.ct, &f4, &newer, BPF_ANY), 0, "a newer FWD entry");
	sp_dp_close(&d);

	/* The older version's single table, and no filter (older still). */
	fd = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, SP_MAP_CT_OLD, sizeof(struct sp_ct_key),
			    sizeof(struct sp_ct_val), 4096, NULL);
	if (!ASSERT_TRUE(fd >= 0, "create the old table"))
		goto out;
	ASSERT_EQ(bpf_map_update_elem(fd, &f4, &fv4, BPF_ANY), 0, "old v4 FWD");
	ASSERT_EQ(bpf_map_update_elem(fd, &r4, &rv4, BPF_ANY), 0, "old v4 REV");
	ASSERT_EQ(bpf_map_update_elem(fd, &f6, &fv6, BPF_ANY), 0, "old v6 FWD");
	ASSERT_EQ(bpf_map_update_elem(fd, &r6, &rv6, BPF_ANY), 0, "old v6 REV");
	if (!ASSERT_EQ(bpf_obj_pin(fd, old_path), 0, "pin the old table") ||
	    !ASSERT_EQ(unlink(srcs_path), 0, "unpin the filter"))
		goto out;

	if (!ASSERT_EQ(sp_dp_load(&d, &o), 0, "load over the old table"))
		goto out;
	ASSERT_TRUE(holds(&d.ct, &r4, &rv4), "v4 REV copied into sp_ct4");
	ASSERT_TRUE(holds(&d.ct, &f4, &newer), "v4 FWD: the new table's entry kept");
	ASSERT_TRUE(holds(&d.ct, &f6, &fv6), "v6 FWD copied into sp_ct6");
	ASSERT_TRUE(holds(&d.ct, &r6, &rv6), "v6 REV copied into sp_ct6");
	ASSERT_EQ(sp_ct_count(&d.ct), 4, "4 entries in the new tables");
	ASSERT_TRUE(old_holds(fd, &r4, &rv4) && old_holds(fd, &f4, &fv4) &&
			    old_holds(fd, &r6, &rv6) && old_holds(fd, &f6, &fv6),
		    "the old table left whole for the old programs, still attached");
	ASSERT_EQ(access(old_path, F_OK), 0, "the old table pinned until the second pass");

	/* The copied flow's reply, through the new program: its source is in
	 * the filter seeded after the copy, its REV entry in sp_ct4. */
	want.saddr = VIP4;
	want.sport = 80;
	ASSERT_EQ(fx_run_spec(d.skel->progs.sp_xdp, &in, &out), XDP_PASS, "reply verdict");
	if (ASSERT_EQ(pkt_build(&want, &exp), 0, "build the expected reply"))
		ASSERT_TRUE(out.len == exp.len && !memcmp(out.data, exp.data, exp.len),
			    "the copied flow's reply is reverse-NATed to the VIP");

	/* What the old programs add before they are replaced: copied by the
	 * second pass, which unpins the old table. */
	late = f4;
	late.sport = htons(3001);
	late_v = fv4;
	ASSERT_EQ(bpf_map_update_elem(fd, &late, &late_v, BPF_ANY), 0, "a late old entry");
	ASSERT_EQ(sp_dp_ct_upgrade(&d, true), 0, "second pass");
	ASSERT_TRUE(holds(&d.ct, &late, &late_v), "the late entry copied");
	ASSERT_TRUE(access(old_path, F_OK) != 0 && errno == ENOENT, "the old table unpinned");
	ASSERT_EQ(sp_dp_ct_upgrade(&d, true), 0, "nothing to do without an old table");
	sp_dp_close(&d);
	ASSERT_EQ(sp_dp_load(&d, &o), 0, "a later load");
	ASSERT_EQ(sp_ct_count(&d.ct), 5, "the tables kept across it");
	sp_dp_close(&d);
out:
	if (fd >= 0)
		close(fd);
	unpin_dir();
}

/*
 * sp_ct4 and sp_ct6 of the version before the compact values (64-byte
 * struct sp_ct_val values, under the same names): the load moves them
 * aside (SP_MAP_CT4_V1, SP_MAP_CT6_V1), pins the new tables under the
 * names, copies the entries; the old tables stay whole for the old
 * programs until the second pass copies what they added and unpins them.
 */
static void test_ct_upgrade_v1_tables(void)
{
	struct sp_ct_key f4, r4, f6, r6, late;
	struct sp_ct_val fv4, rv4, fv6, rv6, got;
	struct pkt_spec in = { .family = 4, .proto = IPPROTO_TCP, .saddr = BE4, .daddr = CLIENT4,
			       .sport = 9090, .dport = 3000, .tcp_flags = PKT_ACK, .seq = 7 };
	struct pkt_spec want = in;
	char old_path[256], p4[256], p6[256], a4[256], a6[256];
	struct sp_ct4_key k4;
	struct sp_dp_opts o;
	struct pkt out, exp;
	struct sp_dp d;
	int fd4 = -1, fd6 = -1;

	small_dp("v1-", &o, old_path, sizeof(old_path));
	snprintf(p4, sizeof(p4), "%s/%s", dir, SP_MAP_CT4);
	snprintf(p6, sizeof(p6), "%s/%s", dir, SP_MAP_CT6);
	snprintf(a4, sizeof(a4), "%s/%s", dir, SP_MAP_CT4_V1);
	snprintf(a6, sizeof(a6), "%s/%s", dir, SP_MAP_CT6_V1);
	flow(4, CLIENT4, VIP4, BE4, 1, &f4, &fv4, &r4, &rv4);
	flow(6, CLIENT6, VIP6, BE6, 2, &f6, &fv6, &r6, &rv6);
	if (!ASSERT_EQ(mkdir(dir, 0700), 0, "pin dir"))
		return;
	fd4 = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, SP_MAP_CT4, sizeof(struct sp_ct4_key),
			     SP_CT_VAL_V1_SIZE, o.ct_size, NULL);
	fd6 = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, SP_MAP_CT6, sizeof(struct sp_ct_key),
			     SP_CT_VAL_V1_SIZE, o.ct6_size, NULL);
	if (!ASSERT_TRUE(fd4 >= 0 && fd6 >= 0, "create the older tables"))
		goto out;
	sp_ct4_key_narrow(&f4, &k4);
	ASSERT_EQ(bpf_map_update_elem(fd4, &k4, &fv4, BPF_ANY), 0, "old v4 FWD");
	sp_ct4_key_narrow(&r4, &k4);
	ASSERT_EQ(bpf_map_update_elem(fd4, &k4, &rv4, BPF_ANY), 0, "old v4 REV");
	ASSERT_EQ(bpf_map_update_elem(fd6, &f6, &fv6, BPF_ANY), 0, "old v6 FWD");
	ASSERT_EQ(bpf_map_update_elem(fd6, &r6, &rv6, BPF_ANY), 0, "old v6 REV");
	if (!ASSERT_EQ(bpf_obj_pin(fd4, p4), 0, "pin the older sp_ct4") ||
	    !ASSERT_EQ(bpf_obj_pin(fd6, p6), 0, "pin the older sp_ct6"))
		goto out;

	if (!ASSERT_EQ(sp_dp_load(&d, &o), 0, "load over the older tables"))
		goto out;
	ASSERT_EQ(bpf_map__value_size(d.skel->maps.sp_ct4), sizeof(struct sp_ct4_val),
		  "sp_ct4 pinned anew, with 32-byte values");
	ASSERT_EQ(bpf_map__value_size(d.skel->maps.sp_ct6), sizeof(struct sp_ct_entry),
		  "sp_ct6 pinned anew, with 56-byte values");
	ASSERT_TRUE(holds(&d.ct, &f4, &fv4) && holds(&d.ct, &r4, &rv4), "v4 entries copied");
	ASSERT_TRUE(holds(&d.ct, &f6, &fv6) && holds(&d.ct, &r6, &rv6), "v6 entries copied");
	ASSERT_EQ(sp_ct_count(&d.ct), 4, "4 entries in the new tables");
	ASSERT_TRUE(access(a4, F_OK) == 0 && access(a6, F_OK) == 0,
		    "the older tables pinned aside until the second pass");
	sp_ct4_key_narrow(&r4, &k4);
	ASSERT_TRUE(bpf_map_lookup_elem(fd4, &k4, &got) == 0 && !memcmp(&got, &rv4, sizeof(got)) &&
			    old_holds(fd6, &r6, &rv6),
		    "the older tables left whole for the old programs");

	/* The copied flow's reply, through the new program. */
	want.saddr = VIP4;
	want.sport = 80;
	ASSERT_EQ(fx_run_spec(d.skel->progs.sp_xdp, &in, &out), XDP_PASS, "reply verdict");
	if (ASSERT_EQ(pkt_build(&want, &exp), 0, "build the expected reply"))
		ASSERT_TRUE(out.len == exp.len && !memcmp(out.data, exp.data, exp.len),
			    "the copied flow's reply is reverse-NATed to the VIP");

	/* An entry the old programs add meanwhile: the second pass. */
	late = f4;
	late.sport = htons(3001);
	sp_ct4_key_narrow(&late, &k4);
	ASSERT_EQ(bpf_map_update_elem(fd4, &k4, &fv4, BPF_ANY), 0, "a late old entry");
	ASSERT_EQ(sp_dp_ct_upgrade(&d, true), 0, "second pass");
	ASSERT_TRUE(holds(&d.ct, &late, &fv4), "the late entry copied");
	ASSERT_TRUE(access(a4, F_OK) != 0 && access(a6, F_OK) != 0, "the older tables unpinned");
	sp_dp_close(&d);
	ASSERT_EQ(sp_dp_load(&d, &o), 0, "a later load");
	ASSERT_EQ(sp_ct_count(&d.ct), 5, "the tables kept across it");
	sp_dp_close(&d);
out:
	if (fd4 >= 0)
		close(fd4);
	if (fd6 >= 0)
		close(fd6);
	unpin_dir();
}

/* An old table of a layout this version cannot read (another value size):
 * the load fails and says so, rather than dropping its connections
 * unasked; the table stays pinned for the operator to decide. */
static void test_ct_upgrade_foreign_layout(void)
{
	char old_path[256];
	struct sp_dp_opts o;
	struct sp_dp d;
	int fd;

	small_dp("bad-", &o, old_path, sizeof(old_path));
	if (!ASSERT_EQ(mkdir(dir, 0700), 0, "pin dir"))
		return;
	fd = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, SP_MAP_CT_OLD, sizeof(struct sp_ct_key), 48,
			    1024, NULL);
	if (ASSERT_TRUE(fd >= 0, "create a table of another layout") &&
	    ASSERT_EQ(bpf_obj_pin(fd, old_path), 0, "pin it")) {
		ASSERT_EQ(sp_dp_load(&d, &o), -EINVAL, "the load refuses");
		ASSERT_EQ(access(old_path, F_OK), 0, "the old table left pinned");
	}
	if (fd >= 0)
		close(fd);
	unpin_dir();
}

int main(void)
{
	libbpf_set_print(fx_quiet_print);
	if (geteuid()) {
		sp_test_skip("test_bpf_ct_upgrade", "needs root (BPF maps and programs)");
		return sp_test_exit();
	}
	RUN_TEST(test_ct_upgrade);
	RUN_TEST(test_ct_upgrade_v1_tables);
	RUN_TEST(test_ct_upgrade_foreign_layout);
	return sp_test_exit();
}
