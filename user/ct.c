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
#include "ct_gc.h"

#define CT_BATCH 4096 /* entries per lookup syscall */

_Static_assert(sizeof(struct sp_ct_val) == SP_CT_VAL_V1_SIZE, "the older tables' value");
_Static_assert(sizeof(struct sp_ct_hdr) == 24, "conntrack value header");
_Static_assert(sizeof(struct sp_ct4_val) == 32, "sp_ct4's value");
_Static_assert(sizeof(struct sp_ct_entry) == 56, "sp_ct6's value");

/* How far from now a time given in ns may be put into a map's 32-bit
 * count (SP_CT_TIME_SHIFT units) before it is clamped: a quarter of the
 * count's range, about 208 days, so that a test's "expired long ago" (0)
 * or "never" (UINT64_MAX) stays so whatever the machine's uptime. */
#define CT_TIME_REACH (1LL << 30)

static uint32_t time_narrow(uint64_t ns, uint64_t now)
{
	int64_t d = (int64_t)(ns >> SP_CT_TIME_SHIFT) - (int64_t)(now >> SP_CT_TIME_SHIFT);

	if (d < -CT_TIME_REACH)
		d = -CT_TIME_REACH;
	if (d > CT_TIME_REACH)
		d = CT_TIME_REACH;
	return sp_ct_time(now) + (uint32_t)d;
}

/* A map's time t as ns, placed within 1.1 years of now: the first ns of
 * its unit, or with last the last one. A deadline is read as the last, so
 * that user space's "expired: expires < now" agrees with the datapath's
 * sp_ct_time_after(now, expires) to the nanosecond. Both narrow back to t. */
static uint64_t time_widen(uint32_t t, uint64_t now, bool last)
{
	int64_t u = (int64_t)(now >> SP_CT_TIME_SHIFT) + (int32_t)(t - sp_ct_time(now));

	if (u < 0)
		return 0;
	return ((uint64_t)u << SP_CT_TIME_SHIFT) + (last ? (1ULL << SP_CT_TIME_SHIFT) - 1 : 0);
}

static void hdr_of(const struct sp_ct_val *v, uint64_t now, struct sp_ct_hdr *h)
{
	h->nat_port = v->nat_port;
	h->nat_sport = v->nat_sport;
	h->backend_id = v->backend_id;
	h->svc_id = v->svc_id;
	h->state = v->state;
	h->flags = v->flags;
	h->seq_hint = v->seq_hint;
	h->expires = time_narrow(v->expires, now);
	h->created = time_narrow(v->created, now);
}

static void val_of_hdr(const struct sp_ct_hdr *h, uint64_t now, struct sp_ct_val *v)
{
	memset(v, 0, sizeof(*v));
	v->nat_port = h->nat_port;
	v->nat_sport = h->nat_sport;
	v->backend_id = h->backend_id;
	v->svc_id = h->svc_id;
	v->state = h->state;
	v->flags = h->flags;
	v->seq_hint = h->seq_hint;
	v->expires = time_widen(h->expires, now, true);
	v->created = time_widen(h->created, now, false);
}

void sp_ct_entry_of(const struct sp_ct_val *v, uint64_t now, struct sp_ct_entry *e)
{
	memset(e, 0, sizeof(*e));
	hdr_of(v, now, &e->h);
	e->nat_addr = v->nat_addr;
	e->nat_saddr = v->nat_saddr;
}

void sp_ct_val_of(const struct sp_ct_entry *e, uint64_t now, struct sp_ct_val *v)
{
	val_of_hdr(&e->h, now, v);
	v->nat_addr = e->nat_addr;
	v->nat_saddr = e->nat_saddr;
}

static void ct4_val_of(const struct sp_ct_val *v, uint64_t now, struct sp_ct4_val *v4)
{
	memset(v4, 0, sizeof(*v4));
	hdr_of(v, now, &v4->h);
	v4->nat_addr = v->nat_addr.addr[0];
	v4->nat_saddr = v->nat_saddr.addr[0];
}

void sp_ct_val_of4(const struct sp_ct4_val *v4, uint64_t now, struct sp_ct_val *v)
{
	val_of_hdr(&v4->h, now, v);
	v->nat_addr.addr[0] = v4->nat_addr;
	v->nat_saddr.addr[0] = v4->nat_saddr;
}

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
	uint64_t now = sp_mono_ns();
	struct sp_ct4_val v4;
	struct sp_ct_entry e;
	struct sp_ct4_key k4;
	const void *key;
	int fd = table_of(m, k, &k4, &key);

	if (bpf_map_lookup_elem(fd, key, fd == m->fd4 ? (void *)&v4 : (void *)&e))
		return -errno;
	if (fd == m->fd4)
		sp_ct_val_of4(&v4, now, v);
	else
		sp_ct_val_of(&e, now, v);
	return 0;
}

int sp_ct_update(const struct sp_ct_maps *m, const struct sp_ct_key *k, const struct sp_ct_val *v,
		 uint64_t flags)
{
	uint64_t now = sp_mono_ns();
	struct sp_ct4_val v4;
	struct sp_ct_entry e;
	struct sp_ct4_key k4;
	const void *key;
	int fd = table_of(m, k, &k4, &key);

	if (fd == m->fd4)
		ct4_val_of(v, now, &v4);
	else
		sp_ct_entry_of(v, now, &e);
	return bpf_map_update_elem(fd, key, fd == m->fd4 ? (void *)&v4 : (void *)&e, flags) ?
		       -errno :
		       0;
}

int sp_ct_delete(const struct sp_ct_maps *m, const struct sp_ct_key *k)
{
	struct sp_ct4_key k4;
	const void *key;
	int fd = table_of(m, k, &k4, &key);

	return bpf_map_delete_elem(fd, key) ? -errno : 0;
}

int sp_ct_foreach_fd(int fd, sp_ct_fn fn, void *arg)
{
	LIBBPF_OPTS(bpf_map_batch_opts, bo);
	struct bpf_map_info info;
	__u32 ilen = sizeof(info), token = 0;
	size_t ksz, vsz;
	bool first = true, k4;
	void *keys, *vals;
	uint64_t now;
	int err = 0;

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &ilen))
		return -errno;
	ksz = info.key_size;
	vsz = info.value_size;
	k4 = ksz == sizeof(struct sp_ct4_key);
	if ((!k4 && ksz != sizeof(struct sp_ct_key)) ||
	    (vsz != SP_CT_VAL_V1_SIZE && vsz != (k4 ? sizeof(struct sp_ct4_val) :
						      sizeof(struct sp_ct_entry))))
		return -EINVAL;
	/* calloc: the kernel fills these, which valgrind cannot see. */
	keys = calloc(CT_BATCH, ksz);
	vals = calloc(CT_BATCH, vsz);
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
		now = sp_mono_ns();
		for (i = 0; i < count && !err; i++) {
			const void *kp = (const char *)keys + i * ksz;
			const void *vp = (const char *)vals + i * vsz;
			struct sp_ct_key k;
			struct sp_ct_val v;

			if (k4)
				sp_ct_key_of4(kp, &k);
			else
				memcpy(&k, kp, sizeof(k));
			if (vsz == SP_CT_VAL_V1_SIZE)
				memcpy(&v, vp, sizeof(v));
			else if (k4)
				sp_ct_val_of4(vp, now, &v);
			else
				sp_ct_val_of(vp, now, &v);
			err = fn(&k, &v, arg);
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
	return sp_ct_foreach_fd(m->fd4, fn, arg) ?: sp_ct_foreach_fd(m->fd6, fn, arg);
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
	int err = sp_ct_foreach_fd(old_fd, copy_one, &c);

	*copied = c.copied;
	return err;
}
