// SPDX-License-Identifier: Apache-2.0
/* Loading, pinning and attaching the datapath. See dp.h. */
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>
#include <dirent.h>
#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/pkt_cls.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "svcplane.h"
#include "svcplane.skel.h"
#include "ct_gc.h"
#include "ct.h"
#include "dp.h"
#include "inspect.h"
#include "log.h"

/* TC filters are ours if they sit at this handle and priority. */
#define SP_TC_HANDLE 0x5350
#define SP_TC_PRIO 1

void sp_dp_opts_default(struct sp_dp_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->pin_dir = SP_PIN_DIR_DEFAULT;
	o->max_frontends = SP_MAX_FRONTENDS;
	o->max_svc_ids = SP_MAX_SVC_IDS;
	o->max_backends = SP_MAX_BACKENDS;
	o->max_src_ranges = SP_MAX_SRC_RANGES;
	o->ct_size = SP_CT_MAX;
	o->ct6_size = SP_CT6_MAX;
	o->maglev_chunks = SP_MAGLEV_CHUNKS;
	o->hash_seed = 0x5eed5eed;
	o->ct_syn_ns = 60ULL * 1000000000ULL;
	o->ct_est_ns = 21600ULL * 1000000000ULL;
	o->ct_close_ns = 10ULL * 1000000000ULL;
	o->ct_fin_ns = 120ULL * 1000000000ULL;
	o->ct_udp_ns = 60ULL * 1000000000ULL;
	o->reject_rate = 1000;
	sp_ip_parse("169.254.42.1", &o->hairpin4);
	sp_ip_parse("fd73:7670:6c61:6e65::1", &o->hairpin6);
	o->snat_port_min = 61000;
	o->snat_port_max = 65535;
	o->host_routing = true;
}

/* --cluster-cidr into the datapath's knobs: the network and the mask of a
 * prefix of len bits over n address bytes (wire order). */
static void cluster_prefix(uint8_t *net, uint8_t *mask, const struct sp_ip *ip, size_t n,
			   unsigned int len)
{
	size_t i;

	for (i = 0; i < n; i++, len = len > 8 ? len - 8 : 0) {
		mask[i] = len >= 8 ? 0xff : (uint8_t)(0xff << (8 - len));
		net[i] = ip->b[i] & mask[i];
	}
}

/* mkdir -p for a path inside bpffs (bpffs supports directories). */
static int mkdir_p(const char *path)
{
	char buf[PATH_MAX];
	size_t i, len = strlen(path);

	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0700) && errno != EEXIST)
			return -errno;
		buf[i] = i == len ? '\0' : '/';
	}
	return 0;
}

/* sp_dp_seed_reply_srcs's walk: the filter, and the count of sources put in. */
struct seed_ctx {
	int fd;
	uint32_t *seeded;
};

static int seed_one(const struct sp_ct_key *k, const struct sp_ct_val *v, void *arg)
{
	struct seed_ctx *c = arg;

	(void)v;
	if (k->dir != SP_CT_REV)
		return 0;
	if (bpf_map_update_elem(c->fd, NULL, &k->saddr, BPF_ANY)) {
		int err = -errno;

		pr_err("add a reply source to %s: %s", SP_MAP_REPLY_SRCS, strerror(-err));
		return err;
	}
	(*c->seeded)++;
	return 0;
}

int sp_dp_seed_reply_srcs(const struct sp_ct_maps *ct, int fd_srcs, uint32_t *seeded)
{
	struct seed_ctx c = { .fd = fd_srcs, .seeded = seeded };
	int err;

	*seeded = 0;
	err = sp_ct_foreach(ct, seed_one, &c);
	if (err)
		pr_err("walk conntrack for the reply sources: %s", strerror(-err));
	return err;
}

/* Conntrack tables of older versions, pinned under these names until
 * their entries are copied into sp_ct4 and sp_ct6. */
static const char *const ct_old_names[] = { SP_MAP_CT_OLD, SP_MAP_CT4_V1, SP_MAP_CT6_V1 };

static int ct_upgrade_one(struct sp_dp *dp, const char *name, bool last)
{
	char path[PATH_MAX];
	uint64_t copied = 0;
	int fd, err;

	snprintf(path, sizeof(path), "%s/%s", dp->pin_dir, name);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	err = sp_ct_copy_from(&dp->ct, fd, &copied);
	close(fd);
	if (err) {
		pr_err("copy the entries of %s into %s and %s: %s%s", path, SP_MAP_CT4, SP_MAP_CT6,
		       strerror(-err),
		       err == -EINVAL ? " (its layout is another version's: 'svcplane detach' "
					"removes it, with every connection it tracks)" :
					"");
		return err;
	}
	pr_info("%s: %llu conntrack entries copied into %s and %s%s", path,
		(unsigned long long)copied, SP_MAP_CT4, SP_MAP_CT6,
		last ? "; unpinned (freed with the last old program)" :
		       " (again once the programs are attached)");
	if (last && unlink(path)) {
		err = -errno;
		pr_warn("unpin %s: %s", path, strerror(-err));
	}
	return 0;
}

int sp_dp_ct_upgrade(struct sp_dp *dp, bool last)
{
	size_t i;
	int err;

	for (i = 0; i < sizeof(ct_old_names) / sizeof(ct_old_names[0]); i++) {
		err = ct_upgrade_one(dp, ct_old_names[i], last);
		if (err)
			return err;
	}
	return 0;
}

/* Each table's name and the name it is moved aside to. */
static const char *const ct_v1_names[2][2] = { { SP_MAP_CT4, SP_MAP_CT4_V1 },
					       { SP_MAP_CT6, SP_MAP_CT6_V1 } };

/*
 * sp_ct4 and sp_ct6 pinned by a version from before their compact values
 * (SP_CT_VAL_V1_SIZE-byte values): moved aside to SP_MAP_CT4_V1 and
 * SP_MAP_CT6_V1 before the load, so that the load pins the new tables
 * under the names, and copied from there (sp_dp_ct_upgrade). The old
 * programs keep using the old tables until the new ones replace them. A
 * table of any other layout is left where it is, and the load fails on
 * it with libbpf's complaint and our hint. *moved: which were moved (bit
 * 0 sp_ct4, bit 1 sp_ct6), for ct_v1_restore after a failed load.
 */
static int ct_v1_aside(const char *pin_dir, unsigned int *moved)
{
	char path[PATH_MAX], aside[PATH_MAX];
	struct bpf_map_info info;
	__u32 len;
	int i, fd, err;

	*moved = 0;
	for (i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", pin_dir, ct_v1_names[i][0]);
		snprintf(aside, sizeof(aside), "%s/%s", pin_dir, ct_v1_names[i][1]);
		fd = bpf_obj_get(path);
		if (fd < 0)
			continue;
		len = sizeof(info);
		memset(&info, 0, sizeof(info));
		err = bpf_obj_get_info_by_fd(fd, &info, &len) ? -errno : 0;
		close(fd);
		if (err || info.value_size != SP_CT_VAL_V1_SIZE)
			continue;
		/* The new name must be free: a table there is an earlier
		 * start's, not copied yet, and would be lost. */
		if (access(aside, F_OK) == 0) {
			pr_err("%s: a table of the older layout, and %s too: copy one by hand or "
			       "run 'svcplane detach' (which drops every tracked connection)",
			       path, aside);
			return -EEXIST;
		}
		if (rename(path, aside)) {
			err = -errno;
			pr_err("move %s aside: %s", path, strerror(-err));
			return err;
		}
		*moved |= 1u << i;
		pr_info("%s: the table of an older version (values of %u B): moved to %s, its "
			"entries are copied into the new table",
			path, info.value_size, aside);
	}
	return 0;
}

/* The moved tables back under their names, after a failed load. */
static void ct_v1_restore(const char *pin_dir, unsigned int moved)
{
	char path[PATH_MAX], aside[PATH_MAX];
	int i;

	for (i = 0; i < 2; i++) {
		if (!(moved & (1u << i)))
			continue;
		snprintf(path, sizeof(path), "%s/%s", pin_dir, ct_v1_names[i][0]);
		snprintf(aside, sizeof(aside), "%s/%s", pin_dir, ct_v1_names[i][1]);
		unlink(path); /* a new table pinned before the failure, if any */
		if (rename(aside, path))
			pr_warn("put %s back: %s", path, strerror(errno));
	}
}

/*
 * sp_backends pinned by a version from before it was an array (a hash of
 * the same keys and values): moved aside to "sp_backends_old_hash" (bpffs
 * takes no dot in a name) before the load, so that the load pins a new
 * array, and copied into it after the load (before anything is attached
 * or synced: the recovery reads it).
 * The old programs keep the old map until the new ones replace them. On a
 * failed load the old pin is put back. *out: the old map's fd, or -1 when
 * there is none to migrate.
 */
static int backends_hash_aside(const char *pin_dir, uint32_t max_backends, int *out)
{
	char path[PATH_MAX], aside[PATH_MAX];
	struct bpf_map_info info;
	__u32 len = sizeof(info), k, next, *prev = NULL;
	int fd;

	*out = -1;
	snprintf(path, sizeof(path), "%s/%s", pin_dir, SP_MAP_BACKENDS);
	snprintf(aside, sizeof(aside), "%s/%s_old_hash", pin_dir, SP_MAP_BACKENDS);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return 0;
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len) || info.type != BPF_MAP_TYPE_HASH ||
	    info.key_size != sizeof(__u32) || info.value_size != sizeof(struct sp_backend)) {
		close(fd);
		return 0;
	}
	/* Every id must fit the array. */
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		k = next;
		prev = &k;
		if (k > max_backends) {
			pr_err("%s: pinned by an older version with backend id %u, past "
			       "--max-backends %u: raise it to at least that for the upgrade",
			       path, k, max_backends);
			close(fd);
			return -ERANGE;
		}
	}
	if (rename(path, aside)) {
		int err = -errno;

		pr_err("move %s aside: %s", path, strerror(-err));
		close(fd);
		return err;
	}
	pr_info("%s: a hash pinned by an older version: its backends are copied into the array",
		path);
	*out = fd;
	return 0;
}

/* Copy the old hash's backends into the new array, then forget the old
 * pin. 0 or -errno (the caller then puts the old pin back). */
static int backends_hash_copy(const char *pin_dir, int old_fd, int new_fd)
{
	char aside[PATH_MAX];
	struct sp_backend b;
	__u32 k, next, *prev = NULL, n = 0;
	int err;

	while (bpf_map_get_next_key(old_fd, prev, &next) == 0) {
		k = next;
		prev = &k;
		if (bpf_map_lookup_elem(old_fd, &k, &b))
			continue;
		if (bpf_map_update_elem(new_fd, &k, &b, BPF_ANY)) {
			err = -errno;
			pr_err("copy backend %u into %s: %s", k, SP_MAP_BACKENDS, strerror(-err));
			return err;
		}
		n++;
	}
	snprintf(aside, sizeof(aside), "%s/%s_old_hash", pin_dir, SP_MAP_BACKENDS);
	if (unlink(aside))
		pr_warn("unpin %s: %s", aside, strerror(errno));
	pr_info("%s: %u backends copied from the older version's hash", SP_MAP_BACKENDS, n);
	return 0;
}

/* The old pin back where it was, after a failed load. */
static void backends_hash_restore(const char *pin_dir)
{
	char path[PATH_MAX], aside[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", pin_dir, SP_MAP_BACKENDS);
	snprintf(aside, sizeof(aside), "%s/%s_old_hash", pin_dir, SP_MAP_BACKENDS);
	unlink(path); /* a new array pinned before the failure, if any */
	if (rename(aside, path))
		pr_warn("put %s back: %s", path, strerror(errno));
}

/*
 * A map pinned by another version, whose definition differs from this
 * one's: libbpf refuses such a pin, and the load fails until 'svcplane
 * detach', which flushes conntrack. Two cases need not fail a rolling
 * upgrade:
 * - optional: flags this version adds that change nothing for the
 *   datapath (BPF_F_MMAPABLE on sp_maglev). The flag comes off the
 *   definition, the pin is reused, user space does without it.
 * - resettable: maps of counters and soft state (sp_stats grows a
 *   counter). The pin is removed and the map created anew: the old
 *   programs keep their own reference until the new ones replace them,
 *   and the counters start again from 0 (Prometheus reads a reset).
 * Maps whose content conntrack depends on (Services, backends, tables,
 * conntrack itself) stay strict.
 */
static void reconcile_pin(struct bpf_map *m, const char *pin_dir, __u32 optional, bool resettable)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info), want_flags = bpf_map__map_flags(m);
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", pin_dir, bpf_map__name(m));
	fd = bpf_obj_get(path);
	if (fd < 0)
		return;
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
		close(fd);
		return;
	}
	close(fd);
	if ((want_flags & optional) && !(info.map_flags & optional & want_flags)) {
		pr_info("%s: the pinned map lacks flags 0x%x: kept as it is", path,
			want_flags & optional & ~info.map_flags);
		want_flags &= ~(optional & ~info.map_flags);
		bpf_map__set_map_flags(m, want_flags);
	}
	if (!resettable)
		return;
	if (info.type != bpf_map__type(m) || info.key_size != bpf_map__key_size(m) ||
	    info.value_size != bpf_map__value_size(m) ||
	    info.max_entries != bpf_map__max_entries(m) || info.map_flags != want_flags) {
		pr_info("%s: pinned by another version (value %u B x %u, now %u B x %u): created "
			"anew, its counters start from 0",
			path, info.value_size, info.max_entries, bpf_map__value_size(m),
			bpf_map__max_entries(m));
		if (unlink(path))
			pr_warn("unpin %s: %s", path, strerror(errno));
	}
}

int sp_dp_load(struct sp_dp *dp, const struct sp_dp_opts *o)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo);
	struct svcplane_bpf *skel;
	char path[PATH_MAX], srcs_path[PATH_MAX];
	bool ct_reused, srcs_new;
	unsigned int ct_moved = 0;
	uint32_t seeded;
	uint64_t t0;
	int err, old_backends = -1;

	memset(dp, 0, sizeof(*dp));
	snprintf(dp->pin_dir, sizeof(dp->pin_dir), "%s", o->pin_dir);
	err = mkdir_p(o->pin_dir);
	if (err) {
		pr_err("create pin directory %s: %s (is bpffs mounted there?)", o->pin_dir,
		       strerror(-err));
		return err;
	}
	snprintf(path, sizeof(path), "%s/%s", o->pin_dir, SP_MAP_SERVICES);
	dp->maps_reused = access(path, F_OK) == 0;
	snprintf(path, sizeof(path), "%s/%s", o->pin_dir, SP_MAP_CT4);
	ct_reused = access(path, F_OK) == 0;
	snprintf(path, sizeof(path), "%s/%s", o->pin_dir, SP_MAP_CT_OLD);
	ct_reused = ct_reused || access(path, F_OK) == 0;
	snprintf(srcs_path, sizeof(srcs_path), "%s/%s", o->pin_dir, SP_MAP_REPLY_SRCS);
	srcs_new = access(srcs_path, F_OK) != 0;

	oo.pin_root_path = o->pin_dir;
	skel = svcplane_bpf__open_opts(&oo);
	if (!skel) {
		err = -errno;
		pr_err("open BPF object: %s", strerror(-err));
		return err;
	}
	bpf_map__set_max_entries(skel->maps.sp_services, o->max_frontends);
	bpf_map__set_max_entries(skel->maps.sp_svc_stats, o->max_svc_ids);
	bpf_map__set_max_entries(skel->maps.sp_svc_meta, o->max_svc_ids);
	bpf_map__set_max_entries(skel->maps.sp_svc_live, o->max_svc_ids);
	/* Ids 1 .. max_backends index the array (0 is never used). */
	bpf_map__set_max_entries(skel->maps.sp_backends, o->max_backends + 1);
	bpf_map__set_max_entries(skel->maps.sp_src_ranges, o->max_src_ranges);
	bpf_map__set_max_entries(skel->maps.sp_ct4, o->ct_size);
	bpf_map__set_max_entries(skel->maps.sp_ct6, o->ct6_size);
	bpf_map__set_max_entries(skel->maps.sp_maglev, o->maglev_chunks);
	reconcile_pin(skel->maps.sp_maglev, o->pin_dir, BPF_F_MMAPABLE, false);
	reconcile_pin(skel->maps.sp_stats, o->pin_dir, 0, true);
	reconcile_pin(skel->maps.sp_reasons, o->pin_dir, 0, true);
	reconcile_pin(skel->maps.sp_svc_stats, o->pin_dir, 0, true);
	err = backends_hash_aside(o->pin_dir, o->max_backends, &old_backends);
	if (err) {
		svcplane_bpf__destroy(skel);
		return err;
	}
	err = ct_v1_aside(o->pin_dir, &ct_moved);
	if (err) {
		ct_v1_restore(o->pin_dir, ct_moved);
		if (old_backends >= 0) {
			backends_hash_restore(o->pin_dir);
			close(old_backends);
		}
		svcplane_bpf__destroy(skel);
		return err;
	}

	skel->rodata->cfg_hash_seed = o->hash_seed;
	skel->rodata->cfg_ct_syn_ns = o->ct_syn_ns;
	skel->rodata->cfg_ct_est_ns = o->ct_est_ns;
	skel->rodata->cfg_ct_close_ns = o->ct_close_ns;
	skel->rodata->cfg_ct_fin_ns = o->ct_fin_ns;
	skel->rodata->cfg_ct_udp_ns = o->ct_udp_ns;
	skel->rodata->cfg_xdp_redirect = o->xdp_redirect;
	skel->rodata->cfg_reject_rate = o->reject_rate;
	memcpy((void *)&skel->rodata->cfg_hairpin_v4, o->hairpin4.b, 4);
	memcpy((void *)skel->rodata->cfg_hairpin_v6, o->hairpin6.b, 16);
	if (o->cluster4_len)
		cluster_prefix((void *)&skel->rodata->cfg_cluster_v4_net,
			       (void *)&skel->rodata->cfg_cluster_v4_mask, &o->cluster4, 4,
			       o->cluster4_len);
	if (o->cluster6_len)
		cluster_prefix((void *)skel->rodata->cfg_cluster_v6_net,
			       (void *)skel->rodata->cfg_cluster_v6_mask, &o->cluster6, 16,
			       o->cluster6_len);
	skel->rodata->cfg_snat_port_min = o->snat_port_min;
	skel->rodata->cfg_snat_port_max = o->snat_port_max;
	skel->rodata->cfg_dsr = o->dsr;
	skel->rodata->cfg_host_routing = o->host_routing;

	t0 = sp_mono_ns();
	err = svcplane_bpf__load(skel);
	if (!err) /* most of a start at small N: the verifier (docs/BENCHMARKS.md) */
		pr_info("BPF programs loaded and verified in %.0f ms",
			(double)(sp_mono_ns() - t0) / 1e6);
	if (err) {
		pr_err("load BPF programs: %s%s", strerror(-err),
		       dp->maps_reused ? " (pinned maps under the pin directory may come from an "
					 "incompatible version or other sizes: compare the "
					 "--max-*/--ct-size flags, or run 'svcplane detach')"
				       : " (run with -v for the verifier log)");
		if (old_backends >= 0) {
			backends_hash_restore(o->pin_dir);
			close(old_backends);
		}
		ct_v1_restore(o->pin_dir, ct_moved);
		svcplane_bpf__destroy(skel);
		return err;
	}
	if (old_backends >= 0) {
		err = backends_hash_copy(o->pin_dir, old_backends,
					 bpf_map__fd(skel->maps.sp_backends));
		close(old_backends);
		if (err) {
			backends_hash_restore(o->pin_dir);
			svcplane_bpf__destroy(skel);
			return err;
		}
	}
	dp->ct.fd4 = bpf_map__fd(skel->maps.sp_ct4);
	dp->ct.fd6 = bpf_map__fd(skel->maps.sp_ct6);
	/* Conntrack from a version with a single table (SP_MAP_CT_OLD), or
	 * with sp_ct4/sp_ct6 of the older layout (moved aside above): its
	 * entries are copied into this load's tables before any program of
	 * this load is attached, and left in place, where the old programs,
	 * still attached, keep finding them (a reply whose REV entry was
	 * gone would leave without its reverse NAT). What they add meanwhile
	 * is copied once they are replaced (sp_dp_ct_upgrade(dp, true), by
	 * the daemon), and the old table unpinned. */
	err = sp_dp_ct_upgrade(dp, false);
	if (err) {
		svcplane_bpf__destroy(skel);
		return err;
	}
	/* Conntrack from a version without sp_reply_srcs (bpf/maps.h): the
	 * replies of its flows would skip their reverse NAT until their
	 * sources are in the filter. Done before any program of this load is
	 * attached. A flow the old programs create meanwhile still has its
	 * reply source in the filter if its backend had any flow at all. */
	if (ct_reused && srcs_new) {
		err = sp_dp_seed_reply_srcs(&dp->ct, bpf_map__fd(skel->maps.sp_reply_srcs),
					    &seeded);
		if (err) {
			/* Unpinned, so that the next start seeds it again. */
			unlink(srcs_path);
			svcplane_bpf__destroy(skel);
			return err;
		}
		pr_info("%s: %u reply sources from the pinned conntrack", SP_MAP_REPLY_SRCS,
			seeded);
	}
	dp->skel = skel;
	dp->fd_services = bpf_map__fd(skel->maps.sp_services);
	dp->fd_backends = bpf_map__fd(skel->maps.sp_backends);
	dp->fd_maglev = bpf_map__fd(skel->maps.sp_maglev);
	dp->fd_node_addrs = bpf_map__fd(skel->maps.sp_node_addrs);
	dp->fd_tx_ports = bpf_map__fd(skel->maps.sp_tx_ports);
	dp->fd_svc_meta = bpf_map__fd(skel->maps.sp_svc_meta);
	dp->fd_pod_ifaces = bpf_map__fd(skel->maps.sp_pod_ifaces);
	dp->maglev_chunks = bpf_map__max_entries(skel->maps.sp_maglev);
	dp->max_svc_ids = bpf_map__max_entries(skel->maps.sp_svc_meta);
	if (dp->maglev_chunks != o->maglev_chunks)
		pr_warn("reusing pinned sp_maglev with %u chunks (asked for %u)", dp->maglev_chunks,
			o->maglev_chunks);
	return 0;
}

void sp_dp_close(struct sp_dp *dp)
{
	if (dp->skel)
		svcplane_bpf__destroy(dp->skel);
	dp->skel = NULL;
}

/*
 * Attach prog to a TC hook of ifindex, replacing our previous filter at the
 * same handle/priority (a restart swaps programs without a gap). The clsact
 * qdisc may exist already (-EEXIST is fine).
 */
static int tc_attach(int ifindex, const char *ifname, enum bpf_tc_attach_point where,
		     struct bpf_program *prog)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = where);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = SP_TC_HANDLE, .priority = SP_TC_PRIO,
		    .flags = BPF_TC_F_REPLACE, .prog_fd = bpf_program__fd(prog));
	int err;

	err = bpf_tc_hook_create(&hook);
	if (err && err != -EEXIST) {
		pr_err("create clsact qdisc on %s: %s", ifname, strerror(-err));
		return err;
	}
	err = bpf_tc_attach(&hook, &opts);
	if (err) {
		pr_err("attach TC %s program %s to %s: %s",
		       where == BPF_TC_INGRESS ? "ingress" : "egress", bpf_program__name(prog),
		       ifname, strerror(-err));
		return err;
	}
	return 0;
}

static int tc_detach(int ifindex, enum bpf_tc_attach_point where)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = where);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = SP_TC_HANDLE, .priority = SP_TC_PRIO);

	return bpf_tc_detach(&hook, &opts);
}

/* How XDP is attached to ifindex: XDP_ATTACHED_DRV (native), _SKB
 * (generic), ... or XDP_ATTACHED_NONE, also if the query fails. */
static int xdp_attached_mode(int ifindex)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);

	return bpf_xdp_query(ifindex, 0, &q) ? XDP_ATTACHED_NONE : q.attach_mode;
}

/* True if an XDP program is attached to ifindex in the mode other than the
 * one asked for (native or generic; auto accepts either). */
static bool xdp_mode_differs(int ifindex, enum sp_xdp_mode mode)
{
	if (mode == SP_XDP_AUTO)
		return false;
	return xdp_attached_mode(ifindex) ==
	       (mode == SP_XDP_GENERIC ? XDP_ATTACHED_DRV : XDP_ATTACHED_SKB);
}

/* True if ifname's driver is veth (ethtool's driver name). */
static bool is_veth(const char *ifname)
{
	struct ethtool_drvinfo info = { .cmd = ETHTOOL_GDRVINFO };
	struct ifreq ifr;
	bool veth = false;
	int fd;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	ifr.ifr_data = (void *)&info;
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	if (!ioctl(fd, SIOCETHTOOL, &ifr))
		veth = !strcmp(info.driver, "veth");
	close(fd);
	return veth;
}

/* Native XDP on a veth uplink: say what it costs and what to do instead
 * (README, Limits: the veth copies every cloned skb before the program
 * sees it, about a fifth of new connections per second here). */
static void xdp_veth_hint(int ifindex, const char *ifname)
{
	if (xdp_attached_mode(ifindex) != XDP_ATTACHED_DRV || !is_veth(ifname))
		return;
	pr_info("%s is a veth: native XDP there copies every locally built packet before the "
		"program sees it; --xdp-mode generic serves more connections/s on a veth "
		"(README, Limits)", ifname);
}

/*
 * XDP through a pinned bpf_link: the link keeps the program attached after
 * the daemon exits, and a restarted daemon swaps in its new program with
 * bpf_link_update() instead of detaching (no window without a program).
 */
static int xdp_attach(struct sp_dp *dp, int ifindex, const char *ifname, enum sp_xdp_mode mode)
{
	char dir[320], path[PATH_MAX];
	int prog_fd = bpf_program__fd(dp->skel->progs.sp_xdp);
	int fd, err;

	snprintf(dir, sizeof(dir), "%s/links", dp->pin_dir);
	err = mkdir_p(dir);
	if (err) {
		pr_err("create %s: %s", dir, strerror(-err));
		return err;
	}
	snprintf(path, sizeof(path), "%s/xdp_%s", dir, ifname);
	fd = bpf_obj_get(path);
	if (fd >= 0 && xdp_mode_differs(ifindex, mode)) {
		/* A link keeps the mode it was created in, so a restart asked
		 * for the other mode replaces the link: one kernel call apart,
		 * packets meanwhile take the stack unprocessed. auto keeps what
		 * is attached (a restart must not open that gap). */
		pr_warn("%s: switching to %s XDP as asked: the program attached in the other mode "
			"is detached first, so packets pass unprocessed for an instant",
			ifname, mode == SP_XDP_GENERIC ? "generic" : "native");
		if (bpf_link_detach(fd))
			pr_warn("%s: detach the pinned XDP link: %s", ifname, strerror(errno));
		close(fd);
		unlink(path);
		fd = -1;
	}
	if (fd >= 0) {
		err = bpf_link_update(fd, prog_fd, NULL);
		close(fd);
		if (!err) {
			pr_info("%s: XDP program replaced in place (pinned link)", ifname);
			xdp_veth_hint(ifindex, ifname);
			return 0;
		}
		pr_warn("%s: update pinned XDP link: %s; re-attaching", ifname, strerror(errno));
		unlink(path);
	}

	LIBBPF_OPTS(bpf_link_create_opts, lo);
	if (mode != SP_XDP_GENERIC) {
		lo.flags = XDP_FLAGS_DRV_MODE;
		fd = bpf_link_create(prog_fd, ifindex, BPF_XDP, &lo);
		if (fd < 0 && mode == SP_XDP_NATIVE) {
			err = -errno;
			pr_err("attach XDP to %s: %s (driver lacks native XDP? try --xdp-mode=generic)",
			       ifname, strerror(-err));
			return err;
		}
		if (fd < 0)
			pr_warn("attach native XDP to %s: %s; falling back to generic XDP (slower)",
				ifname, strerror(errno));
	} else {
		fd = -1;
	}
	if (fd < 0) {
		lo.flags = XDP_FLAGS_SKB_MODE;
		fd = bpf_link_create(prog_fd, ifindex, BPF_XDP, &lo);
		if (fd < 0) {
			err = -errno;
			pr_err("attach XDP (generic) to %s: %s", ifname, strerror(-err));
			return err;
		}
	} else {
		pr_info("%s: native XDP", ifname);
		xdp_veth_hint(ifindex, ifname);
	}
	if (bpf_obj_pin(fd, path)) {
		err = -errno;
		pr_err("pin XDP link of %s at %s: %s", ifname, path, strerror(-err));
		close(fd);
		return err;
	}
	close(fd);
	return 0;
}

int sp_dp_attach_uplink(struct sp_dp *dp, const char *ifname, enum sp_xdp_mode mode)
{
	int ifindex = if_nametoindex(ifname);
	int err;

	if (!ifindex) {
		pr_err("uplink %s: no such interface", ifname);
		return -ENODEV;
	}
	err = xdp_attach(dp, ifindex, ifname, mode);
	if (!err)
		err = tc_attach(ifindex, ifname, BPF_TC_INGRESS, dp->skel->progs.sp_tc_uplink);
	if (!err)
		err = tc_attach(ifindex, ifname, BPF_TC_EGRESS, dp->skel->progs.sp_tc_egress);
	if (!err)
		pr_info("%s: attached as uplink (XDP + TC ingress/egress)", ifname);
	return err;
}

int sp_dp_attach_pod(struct sp_dp *dp, const char *ifname)
{
	__u32 ifindex = if_nametoindex(ifname);
	__u8 one = 1;
	int err;

	if (!ifindex)
		return -ENODEV; /* gone already: nothing to do */
	err = tc_attach(ifindex, ifname, BPF_TC_INGRESS, dp->skel->progs.sp_tc_ingress);
	if (err)
		return err;
	pr_info("%s: attached as pod interface (TC ingress)", ifname);
	/* A full map only costs the fast path: the stack delivers. */
	if (bpf_map_update_elem(dp->fd_pod_ifaces, &ifindex, &one, BPF_ANY))
		pr_warn("%s: add to %s: %s; host routing skips it (the stack delivers)", ifname,
			SP_MAP_POD_IFACES, strerror(errno));
	return 0;
}

void sp_dp_forget_pod(struct sp_dp *dp, int ifindex)
{
	__u32 key = ifindex;

	if (bpf_map_delete_elem(dp->fd_pod_ifaces, &key) && errno != ENOENT)
		pr_warn("remove ifindex %d from %s: %s", ifindex, SP_MAP_POD_IFACES,
			strerror(errno));
}

int sp_dp_add_tx_port(struct sp_dp *dp, const char *ifname)
{
	__u32 ifindex = if_nametoindex(ifname);

	if (!ifindex)
		return -ENODEV;
	if (bpf_map_update_elem(dp->fd_tx_ports, &ifindex, &ifindex, BPF_ANY)) {
		pr_err("add %s to sp_tx_ports: %s", ifname, strerror(errno));
		return -errno;
	}
	return 0;
}

/* Is the program behind this TC filter / XDP id one of ours ("sp_" prefix)? */
static bool prog_is_ours(__u32 prog_id)
{
	char name[BPF_OBJ_NAME_LEN];

	return !sp_prog_name(prog_id, name, sizeof(name)) && !strncmp(name, "sp_", 3);
}

/* Remove every pin under dir (files, then the directories), depth first. */
static int unpin_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[PATH_MAX];
	int err = 0;

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((e = readdir(d))) {
		struct stat st;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (lstat(path, &st))
			continue;
		if (S_ISDIR(st.st_mode)) {
			int e2 = unpin_tree(path);

			err = err ?: e2;
		} else if (unlink(path)) {
			err = err ?: -errno;
		}
	}
	closedir(d);
	if (rmdir(dir) && errno != ENOENT)
		err = err ?: -errno;
	return err;
}

int sp_dp_detach_all(const char *pin_dir)
{
	struct if_nameindex *ifs = if_nameindex(), *i;
	int err = 0;

	for (i = ifs; i && i->if_index; i++) {
		LIBBPF_OPTS(bpf_xdp_query_opts, q);
		LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = i->if_index);
		int dirs[] = { BPF_TC_INGRESS, BPF_TC_EGRESS };
		size_t k;

		for (k = 0; k < 2; k++) {
			LIBBPF_OPTS(bpf_tc_opts, to, .handle = SP_TC_HANDLE, .priority = SP_TC_PRIO);

			hook.attach_point = dirs[k];
			if (bpf_tc_query(&hook, &to) == 0 && prog_is_ours(to.prog_id)) {
				int e = tc_detach(i->if_index, dirs[k]);

				if (e)
					pr_err("detach TC from %s: %s", i->if_name, strerror(-e));
				else
					pr_info("%s: TC %s program removed", i->if_name,
						k ? "egress" : "ingress");
				err = err ?: e;
			}
		}
		/* XDP attached through a link goes away with the link's pin
		 * (below) once no fd holds it; one attached the legacy way is
		 * removed here if it is ours. */
		if (bpf_xdp_query(i->if_index, 0, &q) == 0 && q.prog_id && prog_is_ours(q.prog_id)) {
			char path[PATH_MAX];
			int fd;

			snprintf(path, sizeof(path), "%s/links/xdp_%s", pin_dir, i->if_name);
			fd = bpf_obj_get(path);
			if (fd >= 0) {
				/* Detach now rather than when the last reference goes. */
				if (bpf_link_detach(fd))
					pr_warn("detach XDP link of %s: %s", i->if_name,
						strerror(errno));
				close(fd);
			} else if (bpf_xdp_detach(i->if_index, 0, NULL)) {
				pr_warn("detach XDP from %s: %s", i->if_name, strerror(errno));
			}
			pr_info("%s: XDP program removed", i->if_name);
		}
	}
	if (ifs)
		if_freenameindex(ifs);
	{
		int e = unpin_tree(pin_dir);

		if (e)
			pr_err("unpin %s: %s", pin_dir, strerror(-e));
		err = err ?: e;
	}
	return err;
}
