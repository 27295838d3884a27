// SPDX-License-Identifier: Apache-2.0
/* Conntrack's two tables as one: see ct.h. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "ct.h"

#define CT_BATCH 4096 /* entries per lookup syscall */

void sp_ct_key_of4(const struct sp_ct4_key *k4, struct sp_ct_key *k)
{
	memset(k, 0, sizeof(*k));
	k->saddr.addr[0] = k4->saddr;
	k->daddr.addr[0] = k4->daddr;
	k->sport = k4->sport;
	k->dport = k4->dport;
	k->proto = k4->proto;
	k->family = SP_FAMILY_V4;
	k->dir = k4->dir;
}

/* The table of k's family and k as its key (in *k4 for sp_ct4). */
static int table_of(const struct sp_ct_maps *m, const struct sp_ct_key *k, struct sp_ct4_key *k4,
		    const void **key)
{
	if (k->family == SP_FAMILY_V4) {
		sp_ct4_key_narrow(k, k4);
		*key = k4;
		return m->fd4;
	}
	*key = k;
	return m->fd6;
}

int sp_ct_lookup(const struct sp_ct_maps *m, const struct sp_ct_key *k, struct sp_ct_val *v)
{
	struct sp_ct4_key k4;
	const void *key;
	int fd = table_of(m, k, &k4, &key);

	return bpf_map_lookup_elem(fd, key, v) ? -errno : 0;
}

int sp_ct_update(const struct sp_ct_maps *m, const struct sp_ct_key *k, const struct sp_ct_val *v,
		 uint64_t flags)
{
	struct sp_ct4_key k4;
	const void *key;
	int fd = table_of(m, k, &k4, &key);

	return bpf_map_update_elem(fd, key, v, flags) ? -errno : 0;
}

int sp_ct_delete(const struct sp_ct_maps *m, const struct sp_ct_key *k)
{
	struct sp_ct4_key k4;
	const void *key;
	int fd = table_of(m, k, &k4, &key);

	return bpf_map_delete_elem(fd, key) ? -errno : 0;
}

int sp_ct_foreach_fd(int fd, uint8_t family, sp_ct_fn fn, void *arg)
{
	LIBBPF_OPTS(bpf_map_batch_opts, bo);
	size_t ksz = family == SP_FAMILY_V4 ? sizeof(struct sp_ct4_key) : sizeof(struct sp_ct_key);
	struct bpf_map_info info;
	__u32 ilen = sizeof(info), token = 0;
	struct sp_ct_val *vals;
	bool first = true;
	void *keys;
	int err = 0;

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &ilen))
		return -errno;
	if (info.key_size != ksz || info.value_size != sizeof(struct sp_ct_val))
		return -EINVAL;
	/* calloc: the kernel fills these, which valgrind cannot see. */
	keys = calloc(CT_BATCH, ksz);
	vals = calloc(CT_BATCH, sizeof(*vals));
	if (!keys || !vals) {
		err = -ENOMEM;
		goto out;
	}
	for (;;) {
		__u32 count = CT_BATCH, i;
		int rc = bpf_map_lookup_batch(fd, first ? NULL : &token, &token, keys, vals, &count,
					      &bo);

		if (rc && errno != ENOENT) {
			err = -errno;
			goto out;
		}
		first = false;
		for (i = 0; i < count && !err; i++) {
			const void *kp = (const char *)keys + i * ksz;
			struct sp_ct_key k;

			if (family == SP_FAMILY_V4)
				sp_ct_key_of4(kp, &k);
			else
				memcpy(&k, kp, sizeof(k));
			err = fn(&k, &vals[i], arg);
		}
		if (err || rc) /* rc: ENOENT, that was the last batch */
			break;
	}
out:
	free(keys);
	free(vals);
	return err;
}

int sp_ct_foreach(const struct sp_ct_maps *m, sp_ct_fn fn, void *arg)
{
	return sp_ct_foreach_fd(m->fd4, SP_FAMILY_V4, fn, arg) ?:
	       sp_ct_foreach_fd(m->fd6, 0, fn, arg);
}

static int count_one(const struct sp_ct_key *k, const struct sp_ct_val *v, void *arg)
{
	(void)k;
	(void)v;
	(*(long *)arg)++;
	return 0;
}

long sp_ct_count(const struct sp_ct_maps *m)
{
	long n = 0;
	int err = sp_ct_foreach(m, count_one, &n);

	return err ? err : n;
}

/* Keys of one walk, deleted after it (a delete during a batch walk may
 * make it skip or repeat entries). */
struct ct_keys {
	struct sp_ct_key *k;
	size_t n, cap;
};

static int collect_key(const struct sp_ct_key *k, const struct sp_ct_val *v, void *arg)
{
	struct ct_keys *ks = arg;

	(void)v;
	if (ks->n == ks->cap) {
		size_t nc = ks->cap ? ks->cap * 2 : 1024;
		struct sp_ct_key *nk = realloc(ks->k, nc * sizeof(*nk));

		if (!nk)
			return -ENOMEM;
		ks->k = nk;
		ks->cap = nc;
	}
	ks->k[ks->n++] = *k;
	return 0;
}

int sp_ct_flush(const struct sp_ct_maps *m)
{
	struct ct_keys ks = { 0 };
	int err = sp_ct_foreach(m, collect_key, &ks);
	size_t i;

	for (i = 0; !err && i < ks.n; i++) {
		err = sp_ct_delete(m, &ks.k[i]);
		if (err == -ENOENT) /* gone meanwhile */
			err = 0;
	}
	free(ks.k);
	return err;
}

uint64_t sp_ct_table_capacity(int fd)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len))
		return 0;
	return info.max_entries;
}

uint64_t sp_ct_capacity(const struct sp_ct_maps *m)
{
	return sp_ct_table_capacity(m->fd4) + sp_ct_table_capacity(m->fd6);
}

int sp_ct_open_pinned(const char *dir, struct sp_ct_maps *m)
{
	char path[PATH_MAX];
	int err;

	snprintf(path, sizeof(path), "%s/%s", dir, SP_MAP_CT4);
	m->fd4 = bpf_obj_get(path);
	if (m->fd4 < 0)
		return -errno;
	snprintf(path, sizeof(path), "%s/%s", dir, SP_MAP_CT6);
	m->fd6 = bpf_obj_get(path);
	if (m->fd6 < 0) {
		err = -errno;
		close(m->fd4);
		m->fd4 = -1;
		return err;
	}
	return 0;
}

void sp_ct_close(struct sp_ct_maps *m)
{
	if (m->fd4 >= 0)
		close(m->fd4);
	if (m->fd6 >= 0)
		close(m->fd6);
	m->fd4 = m->fd6 = -1;
}

struct copy_ctx {
	const struct sp_ct_maps *m;
	uint64_t copied;
};

static int copy_one(const struct sp_ct_key *k, const struct sp_ct_val *v, void *arg)
{
	struct copy_ctx *c = arg;
	int err;

	if (k->family != SP_FAMILY_V4 && k->family != SP_FAMILY_V6)
		return 0; /* no entry of ours */
	err = sp_ct_update(c->m, k, v, BPF_NOEXIST);
	if (!err)
		c->copied++;
	return err == -EEXIST ? 0 : err;
}

int sp_ct_copy_from(const struct sp_ct_maps *m, int old_fd, uint64_t *copied)
{
	struct copy_ctx c = { .m = m };
	int err = sp_ct_foreach_fd(old_fd, 0, copy_one, &c);

	*copied = c.copied;
	return err;
}
