// SPDX-License-Identifier: Apache-2.0
/*
 * Map sync (user/sync.c) against real BPF maps created here with the ABI's
 * layouts (no program needed): diffing, the order of the table switch,
 * recovery of the state after a restart, and capacity errors that keep the
 * last good state.
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "svcplane.h"
#include "log.h"
#include "maglev.h"
#include "resolve.h"
#include "sync.h"
#include "test.h"

struct maps {
	struct sp_sync_maps m;
};

/*
 * Every map write user/sync.c makes, counted here rather than by sp_sync's
 * own statistics: these definitions take the place of libbpf's for the
 * objects linked into this binary (an executable's symbols win over a
 * shared library's) and pass each call on to libbpf. Atomic, in case a
 * helper thread of a large apply ever writes a map.
 */
static size_t map_writes;

#define PASS_ON(ret, name, ...)                                                            \
	do {                                                                               \
		static ret(*real)();                                                       \
		ret(*r_)() = __atomic_load_n(&real, __ATOMIC_RELAXED);                     \
		if (!r_) {                                                                 \
			r_ = (ret(*)())dlsym(RTLD_NEXT, #name);                            \
			__atomic_store_n(&real, r_, __ATOMIC_RELAXED);                     \
		}                                                                          \
		__atomic_add_fetch(&map_writes, 1, __ATOMIC_RELAXED);                      \
		return r_ ? r_(__VA_ARGS__) : -ENOSYS;                                     \
	} while (0)

int bpf_map_update_elem(int fd, const void *key, const void *value, __u64 flags)
{
	PASS_ON(int, bpf_map_update_elem, fd, key, value, flags);
}

int bpf_map_delete_elem(int fd, const void *key)
{
	PASS_ON(int, bpf_map_delete_elem, fd, key);
}

int bpf_map_update_batch(int fd, const void *keys, const void *values, __u32 *count,
			 const struct bpf_map_batch_opts *opts)
{
	PASS_ON(int, bpf_map_update_batch, fd, keys, values, count, opts);
}

int bpf_map_delete_batch(int fd, const void *keys, __u32 *count,
			 const struct bpf_map_batch_opts *opts)
{
	PASS_ON(int, bpf_map_delete_batch, fd, keys, count, opts);
}

static int mk(enum bpf_map_type t, size_t k, size_t v, uint32_t n, uint32_t flags)
{
	LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = flags);

	return bpf_map_create(t, NULL, k, v, n, &o);
}

/* sp_maglev's flags: 0, or BPF_F_MMAPABLE as the daemon's maps have it
 * (main runs the tests that write tables both ways). */
static uint32_t maglev_flags;

static int maps_create(struct maps *x, uint32_t chunks, uint32_t svc_ids, uint32_t backends)
{
	memset(x, 0, sizeof(*x));
	x->m.fd_services = mk(BPF_MAP_TYPE_HASH, sizeof(struct sp_svc_key), sizeof(struct sp_svc),
			      svc_ids * 4, BPF_F_NO_PREALLOC);
	/* As the daemon's (bpf/maps.h): an array of ids 1 .. backends. */
	x->m.fd_backends = mk(BPF_MAP_TYPE_ARRAY, 4, sizeof(struct sp_backend), backends + 1,
			      BPF_F_MMAPABLE);
	x->m.fd_maglev = mk(BPF_MAP_TYPE_ARRAY, 4, sizeof(struct sp_maglev_chunk), chunks,
			    maglev_flags);
	x->m.fd_svc_meta = mk(BPF_MAP_TYPE_HASH, 4, sizeof(struct sp_svc_meta), svc_ids,
			      BPF_F_NO_PREALLOC);
	x->m.fd_svc_stats = mk(BPF_MAP_TYPE_PERCPU_ARRAY, 4, sizeof(struct sp_svc_stats), svc_ids, 0);
	x->m.fd_node_addrs = mk(BPF_MAP_TYPE_HASH, sizeof(struct sp_node_addr_key), 1, 16, 0);
	x->m.fd_dst_filter = mk(BPF_MAP_TYPE_ARRAY, 4, sizeof(struct sp_dst_filter), 1,
				BPF_F_MMAPABLE);
	x->m.maglev_chunks = chunks;
	x->m.max_svc_ids = svc_ids;
	x->m.max_backends = backends;
	x->m.fixed_m = 0;
	if (x->m.fd_services < 0 || x->m.fd_backends < 0 || x->m.fd_maglev < 0 ||
	    x->m.fd_svc_meta < 0 || x->m.fd_svc_stats < 0 || x->m.fd_node_addrs < 0 ||
	    x->m.fd_dst_filter < 0)
		return -1;
	return 0;
}

static void maps_close(struct maps *x)
{
	close(x->m.fd_services);
	close(x->m.fd_backends);
	close(x->m.fd_maglev);
	close(x->m.fd_svc_meta);
	close(x->m.fd_svc_stats);
	close(x->m.fd_node_addrs);
	close(x->m.fd_dst_filter);
}

/* One map's whole content: its key/value pairs, sorted by key. */
struct dump {
	size_t n, rec; /* records, bytes per record (key then value) */
	char *buf;
};

static int rec_cmp_ksz;
static int rec_cmp(const void *a, const void *b)
{
	return memcmp(a, b, rec_cmp_ksz);
}

static int map_dump(int fd, struct dump *d)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);
	size_t vsz, cap = 0;
	char k[64], next[64];
	void *pk = NULL;
	char *p;

	memset(d, 0, sizeof(*d));
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len) || info.key_size > sizeof(k))
		return -1;
	vsz = info.value_size;
	if (info.type == BPF_MAP_TYPE_PERCPU_ARRAY || info.type == BPF_MAP_TYPE_PERCPU_HASH)
		vsz = ((vsz + 7) & ~7UL) * libbpf_num_possible_cpus();
	d->rec = info.key_size + vsz;
	while (bpf_map_get_next_key(fd, pk, next) == 0) {
		if (d->n == cap) {
			cap = cap ? 2 * cap : 256;
			p = realloc(d->buf, cap * d->rec);
			if (!p)
				return -1;
			d->buf = p;
		}
		p = d->buf + d->n * d->rec;
		/* valgrind cannot tell what a lookup writes (a PERCPU value's size) */
		memset(p, 0, d->rec);
		memcpy(p, next, info.key_size);
		if (bpf_map_lookup_elem(fd, next, p + info.key_size))
			return -1;
		memcpy(k, next, info.key_size);
		pk = k;
		d->n++;
	}
	rec_cmp_ksz = info.key_size;
	if (d->n)
		qsort(d->buf, d->n, d->rec, rec_cmp);
	return 0;
}

#define N_DUMPS 6
/* Every map sync writes, dumped. 0, or -1 if one could not be read. */
static int maps_dump(const struct maps *x, struct dump *d)
{
	const int fds[N_DUMPS] = { x->m.fd_services, x->m.fd_backends,  x->m.fd_maglev,
				   x->m.fd_svc_meta, x->m.fd_svc_stats, x->m.fd_node_addrs };
	int i, err = 0;

	for (i = 0; i < N_DUMPS; i++)
		err = map_dump(fds[i], &d[i]) ?: err;
	return err;
}

/* The name of the first map whose content differs between a and b, or NULL. */
static const char *maps_differ(const struct dump *a, const struct dump *b)
{
	static const char *const names[N_DUMPS] = { "sp_services", "sp_backends",  "sp_maglev",
						    "sp_svc_meta", "sp_svc_stats", "sp_node_addrs" };
	int i;

	for (i = 0; i < N_DUMPS; i++)
		if (a[i].n != b[i].n || a[i].rec != b[i].rec ||
		    (a[i].n && memcmp(a[i].buf, b[i].buf, a[i].n * a[i].rec)))
			return names[i];
	return NULL;
}

static void dumps_free(struct dump *d)
{
	int i;

	for (i = 0; i < N_DUMPS; i++)
		free(d[i].buf);
}

static size_t count_keys(int fd, size_t ksz)
{
	char k[64], next[64];
	void *pk = NULL;
	size_t n = 0;

	while (bpf_map_get_next_key(fd, pk, next) == 0) {
		memcpy(k, next, ksz);
		pk = k;
		n++;
	}
	return n;
}

/* Backends in sp_backends: an array, whose entries of family 0 hold none. */
static size_t count_backends(int fd)
{
	struct sp_backend b;
	__u32 k, next, *pk = NULL;
	size_t n = 0;

	while (bpf_map_get_next_key(fd, pk, &next) == 0) {
		k = next;
		pk = &k;
		if (!bpf_map_lookup_elem(fd, &k, &b) && b.family)
			n++;
	}
	return n;
}

/* The chunks of every live table, from sp_svc_meta: what
 * sp_sync_maglev_chunks_used must say once nothing is only retired. */
static size_t meta_chunks(const struct maps *x)
{
	struct sp_svc_meta meta;
	__u32 k, next, *pk = NULL;
	size_t n = 0;

	while (bpf_map_get_next_key(x->m.fd_svc_meta, pk, &next) == 0) {
		k = next;
		pk = &k;
		if (!bpf_map_lookup_elem(x->m.fd_svc_meta, &k, &meta))
			n += meta.region_chunks;
	}
	return n;
}

/* A desired Service with one ClusterIP frontend 10.96.0.<vip> and backends
 * 10.244.0.<b> for each b in bes (terminated by 0), port 8080. */
static void want_svc(struct sp_want_svc *w, const char *id, int vip, const int *bes)
{
	size_t n = 0, i;

	memset(w, 0, sizeof(*w));
	snprintf(w->id, sizeof(w->id), "%s", id);
	w->proto = IPPROTO_TCP;
	w->family = SP_FAMILY_V4;
	w->fe = calloc(1, sizeof(*w->fe));
	w->n_fe = 1;
	w->fe[0].ip.family = 4;
	w->fe[0].ip.b[0] = 10;
	w->fe[0].ip.b[1] = 96;
	w->fe[0].ip.b[3] = vip;
	w->fe[0].port = 80;
	while (bes[n])
		n++;
	w->be = calloc(n ? n : 1, sizeof(*w->be));
	w->n_be = n;
	for (i = 0; i < n; i++) {
		w->be[i].ip.family = 4;
		w->be[i].ip.b[0] = 10;
		w->be[i].ip.b[1] = 244;
		w->be[i].ip.b[3] = bes[i];
		w->be[i].port = 8080;
		w->be[i].weight = 1;
	}
	sp_maglev_canonical(w->be, n);
}

static int lookup_fe(struct maps *x, int vip, struct sp_svc *out)
{
	struct sp_svc_key k;

	memset(&k, 0, sizeof(k));
	((uint8_t *)k.addr.addr)[0] = 10;
	((uint8_t *)k.addr.addr)[1] = 96;
	((uint8_t *)k.addr.addr)[3] = vip;
	k.port = htons(80);
	k.proto = IPPROTO_TCP;
	k.family = SP_FAMILY_V4;
	return bpf_map_lookup_elem(x->m.fd_services, &k, out);
}

static const int B123[] = { 11, 12, 13, 0 };
static const int B1234[] = { 11, 12, 13, 14, 0 };
static const int B0[] = { 0 };
#define DEFAULT_CAP                                                                                \
	{ .max_svc_ids = SP_MAX_SVC_IDS, .max_frontends = SP_MAX_SVC_IDS,                          \
	  .max_backends = SP_MAX_BACKENDS, .maglev_chunks = SP_MAGLEV_CHUNKS }

static void test_add_change_remove(void)
{
	struct maps x;
	struct sp_sync *s = NULL;
	struct sp_desired d = { 0 };
	struct sp_sync_stats st;
	struct sp_svc v1, v2, v3;

	if (!ASSERT_EQ(maps_create(&x, 4096, 64, 256), 0, "create maps"))
		return;
	if (!ASSERT_EQ(sp_sync_new(&x.m, &s), 0, "sp_sync_new"))
		goto out;
	d.svc = calloc(2, sizeof(*d.svc));
	d.n = 2;
	want_svc(&d.svc[0], "a/x:p/tcp/v4", 10, B123);
	want_svc(&d.svc[1], "a/y:p/tcp/v4", 11, B123);
	ASSERT_EQ(sp_sync_apply(s, &d, &st), 0, "apply 1");
	ASSERT_EQ(st.svc_added, 2, "services added");
	ASSERT_EQ(st.be_added, 3, "backends shared by both Services");
	ASSERT_EQ(count_backends(x.m.fd_backends), 3, "sp_backends entries");
	if (!ASSERT_EQ(lookup_fe(&x, 10, &v1), 0, "frontend written"))
		goto out;
	ASSERT_EQ(v1.n, 3, "n");
	ASSERT_TRUE(sp_maglev_m_valid(v1.m), "m is a listed prime");
	ASSERT_TRUE(meta_chunks(&x) > 0, "tables have chunks");
	ASSERT_EQ(sp_sync_maglev_chunks_used(s), meta_chunks(&x), "chunks used: both tables");

	/* Same desired state again: nothing is written. */
	map_writes = 0;
	ASSERT_EQ(sp_sync_apply(s, &d, &st), 0, "apply same");
	ASSERT_EQ(map_writes, 0, "map updates and deletes by a no-op apply");
	ASSERT_EQ(st.fe_written + st.svc_rebuilt + st.be_added + st.be_deleted, 0,
		  "no-op apply writes nothing");

	/* Scale one Service up: only it is rebuilt, into a new region. */
	sp_desired_free(&d);
	d.svc = calloc(2, sizeof(*d.svc));
	d.n = 2;
	want_svc(&d.svc[0], "a/x:p/tcp/v4", 10, B1234);
	want_svc(&d.svc[1], "a/y:p/tcp/v4", 11, B123);
	ASSERT_EQ(sp_sync_apply(s, &d, &st), 0, "apply 2");
	ASSERT_EQ(st.svc_rebuilt, 1, "one Service rebuilt");
	ASSERT_EQ(st.fe_written, 1, "one frontend switched");
	ASSERT_EQ(st.be_added, 1, "one backend added");
	lookup_fe(&x, 10, &v2);
	ASSERT_EQ(v2.n, 4, "n after scale-up");
	ASSERT_NEQ(v2.region, v1.region, "new table in a new region (old one stays until switch)");
	ASSERT_EQ(v2.svc_id, v1.svc_id, "svc_id kept");
	ASSERT_TRUE(sp_sync_maglev_chunks_used(s) > meta_chunks(&x),
		    "chunks used: x's old table is still there");
	lookup_fe(&x, 11, &v3);

	/* Remove Service y and a backend of x: backend 14 is still used by x,
	 * 11..13 by x; nothing is deleted except y. */
	sp_desired_free(&d);
	d.svc = calloc(1, sizeof(*d.svc));
	d.n = 1;
	want_svc(&d.svc[0], "a/x:p/tcp/v4", 10, B0);
	ASSERT_EQ(sp_sync_apply(s, &d, &st), 0, "apply 3");
	ASSERT_EQ(st.svc_removed, 1, "y removed");
	ASSERT_EQ(st.fe_deleted, 1, "y's frontend deleted");
	/* Deleted only after a grace period, which the apply does not wait
	 * for: a packet that read y's or x's old table may still use them. */
	ASSERT_EQ(st.be_deleted, 0, "backends deleted by the apply itself");
	ASSERT_EQ(count_backends(x.m.fd_backends), 4, "sp_backends right after the apply");
	sp_sync_flush(s, &st);
	ASSERT_EQ(st.be_deleted, 4, "every backend unreferenced is deleted");
	ASSERT_EQ(count_backends(x.m.fd_backends), 0, "sp_backends empty");
	ASSERT_TRUE(lookup_fe(&x, 11, &v3) != 0, "y's frontend gone");
	lookup_fe(&x, 10, &v2);
	ASSERT_EQ(v2.n, 0, "x has no backend: rejects");
	ASSERT_EQ(count_keys(x.m.fd_svc_meta, 4), 1, "one meta entry");
	ASSERT_EQ(sp_sync_maglev_chunks_used(s), 0, "chunks used: none after the flush");
out:
	sp_desired_free(&d);
	sp_sync_free(s);
	maps_close(&x);
}

/* A restarted daemon recovers the state: the same desired state writes
 * nothing, so conntrack and in-flight tables are untouched. "Nothing" is
 * checked outside sp_sync: no map update or delete reaches libbpf, and
 * every map holds byte for byte what it held before (a Service written
 * again with the same values would also zero its counters). */
static void test_restart_recovery(void)
{
	struct maps x;
	struct sp_sync *s = NULL, *s2 = NULL;
	struct sp_desired d = { 0 };
	struct sp_sync_stats st;
	struct sp_svc before, after;
	struct dump d0[N_DUMPS] = { 0 }, d1[N_DUMPS] = { 0 };
	struct sp_svc_stats pcpu[256] = { 0 };
	const char *differ;
	size_t chunks_before;
	__u32 id;

	if (!ASSERT_EQ(maps_create(&x, 4096, 64, 256), 0, "create maps"))
		return;
	d.svc = calloc(2, sizeof(*d.svc));
	d.n = 2;
	want_svc(&d.svc[0], "a/x:p/tcp/v4", 10, B1234);
	want_svc(&d.svc[1], "a/y:p/tcp/v4", 11, B0);
	if (!ASSERT_EQ(sp_sync_new(&x.m, &s), 0, "first daemon"))
		goto out;
	ASSERT_EQ(sp_sync_apply(s, &d, &st), 0, "first apply");
	lookup_fe(&x, 10, &before);
	chunks_before = sp_sync_maglev_chunks_used(s);
	ASSERT_NEQ(chunks_before, 0, "Maglev chunks in use");
	sp_sync_free(s);
	s = NULL;
	/* Traffic counted while the daemon was away (the datapath's writes). */
	if (!ASSERT_TRUE(libbpf_num_possible_cpus() <= 256, "CPUs fit the buffer"))
		goto out;
	pcpu[0].packets = 7;
	id = before.svc_id;
	if (!ASSERT_EQ(bpf_map_update_elem(x.m.fd_svc_stats, &id, pcpu, BPF_ANY), 0,
		       "count packets for x"))
		goto out;
	if (!ASSERT_EQ(maps_dump(&x, d0), 0, "dump the maps before the restart"))
		goto out;

	map_writes = 0;
	if (!ASSERT_EQ(sp_sync_new(&x.m, &s2), 0, "second daemon recovers"))
		goto out;
	ASSERT_EQ(sp_sync_n_services(s2), 2, "services recovered");
	ASSERT_EQ(sp_sync_maglev_chunks_used(s2), chunks_before, "Maglev chunks in use recovered");
	ASSERT_EQ(sp_sync_n_backends(s2), 4, "backends recovered");
	ASSERT_EQ(sp_sync_maglev_chunks_used(s2), meta_chunks(&x), "chunks used, recovered");
	ASSERT_EQ(sp_sync_apply(s2, &d, &st), 0, "apply after restart");
	ASSERT_EQ(map_writes, 0, "map updates and deletes by the restarted daemon");
	if (ASSERT_EQ(maps_dump(&x, d1), 0, "dump the maps after the restart")) {
		differ = maps_differ(d0, d1);
		ASSERT_TRUE(differ == NULL, "every map unchanged by the restart");
		if (differ)
			fprintf(stderr, "    %s changed\n", differ);
	}
	ASSERT_EQ(st.fe_written + st.fe_deleted + st.svc_rebuilt + st.be_added + st.be_deleted +
			  st.svc_added + st.svc_removed,
		  0, "nothing rewritten after restart");
	lookup_fe(&x, 10, &after);
	ASSERT_EQ(after.region, before.region, "region untouched");
	ASSERT_EQ(after.svc_id, before.svc_id, "svc_id untouched");
out:
	dumps_free(d0);
	dumps_free(d1);
	sp_desired_free(&d);
	sp_sync_free(s);
	sp_sync_free(s2);
	maps_close(&x);
}

/* The wanted state of four Services: a/w..a/z on VIPs 9..12, sorted by id. */
static void four(struct sp_desired *d, const int *w, const int *x, const int *y, const int *z)
{
	const int *bes[4] = { w, x, y, z };
	const char *ids[4] = { "a/w:p/tcp/v4", "a/x:p/tcp/v4", "a/y:p/tcp/v4", "a/z:p/tcp/v4" };
	size_t i;

	d->svc = calloc(4, sizeof(*d->svc));
	d->n = 0;
	for (i = 0; i < 4; i++)
		if (bes[i])
			want_svc(&d->svc[d->n++], ids[i], 9 + (int)i, bes[i]);
}

/*
 * sp_sync_apply_ids with the diff of two desired states writes what a full
 * apply writes, map by map, and nothing for the Services it is not given:
 * one changed Service costs that Service's writes, never a walk's.
 */
static void test_apply_ids(void)
{
	static const int B5[] = { 15, 0 }, B56[] = { 15, 16, 0 }, B7[] = { 17, 0 };
	struct maps x, y;
	struct sp_sync *s = NULL, *t = NULL;
	struct sp_desired d1 = { 0 }, d2 = { 0 };
	struct dump dx[N_DUMPS] = { 0 }, dy[N_DUMPS] = { 0 };
	struct sp_sync_stats st;
	struct sp_svc v;
	const char **ids = NULL, *differ;
	size_t n_ids, full_writes;

	if (!ASSERT_EQ(maps_create(&x, 4096, 64, 256), 0, "create maps") ||
	    !ASSERT_EQ(maps_create(&y, 4096, 64, 256), 0, "create twin maps"))
		return;
	if (!ASSERT_EQ(sp_sync_new(&x.m, &s), 0, "sp_sync_new") ||
	    !ASSERT_EQ(sp_sync_new(&y.m, &t), 0, "sp_sync_new twin"))
		goto out;
	/* w, x, y; then x scales up, y goes, z comes; w stays as it was. */
	four(&d1, B123, B5, B7, NULL);
	four(&d2, B123, B56, NULL, B7);
	ASSERT_EQ(sp_sync_apply(s, &d1, &st), 0, "first apply (full)");
	ASSERT_EQ(sp_sync_apply(t, &d1, &st), 0, "twin: first apply (full)");
	if (!ASSERT_EQ(sp_desired_diff(&d1, &d2, &ids, &n_ids), 0, "diff"))
		goto out;
	if (ASSERT_EQ(n_ids, 3, "x, y, z differ")) {
		ASSERT_STREQ(ids[0], "a/x:p/tcp/v4", "x");
		ASSERT_STREQ(ids[1], "a/y:p/tcp/v4", "y");
		ASSERT_STREQ(ids[2], "a/z:p/tcp/v4", "z");
	}
	map_writes = 0;
	ASSERT_EQ(sp_sync_apply(t, &d2, &st), 0, "twin: the change, full apply");
	full_writes = map_writes;
	map_writes = 0;
	ASSERT_EQ(sp_sync_apply_ids(s, &d2, ids, n_ids, &st), 0, "the change, listed ids");
	ASSERT_EQ(map_writes, full_writes, "as many map writes as the full apply");
	ASSERT_TRUE(map_writes > 0, "and some");
	ASSERT_EQ(st.svc_rebuilt, 1, "x rebuilt");
	ASSERT_EQ(st.svc_added, 1, "z added");
	ASSERT_EQ(st.svc_removed, 1, "y removed");
	if (ASSERT_EQ(maps_dump(&x, dx), 0, "dump") && ASSERT_EQ(maps_dump(&y, dy), 0, "dump twin")) {
		differ = maps_differ(dx, dy);
		ASSERT_TRUE(differ == NULL, "every map as the full apply left it");
		if (differ)
			fprintf(stderr, "    %s differs\n", differ);
	}
	ASSERT_EQ(sp_sync_n_services(s), 3, "w, x, z");

	/* A Service left out of the list is not looked at, even if it changed. */
	free(ids);
	ids = NULL;
	sp_desired_free(&d1);
	four(&d1, B0, B56, NULL, B7); /* w loses its backends */
	map_writes = 0;
	ASSERT_EQ(sp_sync_apply_ids(s, &d1, NULL, 0, &st), 0, "nothing listed");
	ASSERT_EQ(map_writes, 0, "nothing written");
	if (ASSERT_EQ(lookup_fe(&x, 9, &v), 0, "w's frontend"))
		ASSERT_EQ(v.n, 3, "w keeps its backends");
out:
	free(ids);
	dumps_free(dx);
	dumps_free(dy);
	sp_desired_free(&d1);
	sp_desired_free(&d2);
	sp_sync_free(s);
	sp_sync_free(t);
	maps_close(&x);
	maps_close(&y);
}

/* Chunks a region of n backends and m entries takes (header, then table). */
static uint32_t region_chunks_of(const struct sp_svc *v)
{
	return (2 * v->n + v->m + SP_MAGLEV_CHUNK_WORDS - 1) / SP_MAGLEV_CHUNK_WORDS;
}

/* A changed table is written beside the live one, never over it: a packet
 * that read the old sp_services value reads a whole old table. Here each
 * change keeps N (so M and the size too), where a table written in place
 * would fit exactly. */
static void test_table_beside_old(void)
{
	struct maps x;
	struct sp_sync *s = NULL;
	struct sp_desired d = { 0 };
	struct sp_sync_stats st;
	struct sp_svc v1, v2;
	int bes[4] = { 11, 12, 13, 0 }, round, overlaps = 0;

	if (!ASSERT_EQ(maps_create(&x, 4096, 64, 256), 0, "create maps"))
		return;
	if (!ASSERT_EQ(sp_sync_new(&x.m, &s), 0, "sp_sync_new"))
		goto out;
	d.svc = calloc(1, sizeof(*d.svc));
	d.n = 1;
	want_svc(&d.svc[0], "a/x:p/tcp/v4", 10, bes);
	ASSERT_EQ(sp_sync_apply(s, &d, &st), 0, "first apply");
	if (!ASSERT_EQ(lookup_fe(&x, 10, &v1), 0, "frontend written"))
		goto out;
	for (round = 0; round < 20; round++) {
		bes[2] = 14 + round; /* one backend replaced: N stays 3 */
		sp_desired_free(&d);
		d.svc = calloc(1, sizeof(*d.svc));
		d.n = 1;
		want_svc(&d.svc[0], "a/x:p/tcp/v4", 10, bes);
		if (!ASSERT_EQ(sp_sync_apply(s, &d, &st), 0, "apply a change") ||
		    !ASSERT_EQ(lookup_fe(&x, 10, &v2), 0, "frontend still there"))
			goto out;
		ASSERT_EQ(st.svc_rebuilt, 1, "table rebuilt");
		ASSERT_EQ(v2.m, v1.m, "same M");
		if (v2.region < v1.region + region_chunks_of(&v1) &&
		    v1.region < v2.region + region_chunks_of(&v2)) {
			fprintf(stderr, "  round %d: new table at chunks %u+%u over the live one at %u+%u\n",
				round, v2.region, region_chunks_of(&v2), v1.region,
				region_chunks_of(&v1));
			overlaps++;
		}
		v1 = v2;
	}
	ASSERT_EQ(overlaps, 0, "new tables written over the live one");
out:
	sp_desired_free(&d);
	sp_sync_free(s);
	maps_close(&x);
}

/* Out of Maglev room: the Service keeps its previous table, others apply. */
static void test_capacity_keeps_last_good(void)
{
	struct maps x;
	struct sp_sync *s = NULL;
	struct sp_desired d = { 0 };
	struct sp_sync_stats st;
	struct sp_svc v;
	int many[200];
	int i;

	/* 3 backends at M=251 take 9 chunks; 40 chunks hold 4 such tables. */
	if (!ASSERT_EQ(maps_create(&x, 40, 64, 1024), 0, "create maps"))
		return;
	if (!ASSERT_EQ(sp_sync_new(&x.m, &s), 0, "sp_sync_new"))
		goto out;
	d.svc = calloc(1, sizeof(*d.svc));
	d.n = 1;
	want_svc(&d.svc[0], "a/x:p/tcp/v4", 10, B123);
	ASSERT_EQ(sp_sync_apply(s, &d, &st), 0, "small table fits");
	sp_desired_free(&d);

	for (i = 0; i < 199; i++)
		many[i] = i + 1;
	many[199] = 0;
	d.svc = calloc(1, sizeof(*d.svc));
	d.n = 1;
	want_svc(&d.svc[0], "a/x:p/tcp/v4", 10, many);
	sp_log_level = SP_LOG_ERR - 1; /* the expected error is not noise in test output */
	ASSERT_EQ(sp_sync_apply(s, &d, &st), -ENOSPC, "big table does not fit");
	sp_log_level = SP_LOG_INFO;
	ASSERT_EQ(st.errors, 1, "one Service skipped");
	lookup_fe(&x, 10, &v);
	ASSERT_EQ(v.n, 3, "previous table still in force");
	sp_sync_flush(s, NULL); /* the big table's backends wait for a grace period */
	ASSERT_EQ(count_backends(x.m.fd_backends), 3, "no backend leaked");
out:
	sp_desired_free(&d);
	sp_sync_free(s);
	maps_close(&x);
}

/* A frontend moving from one Service to another in one apply is not lost
 * by the deletion pass. */
static void test_frontend_moves(void)
{
	struct maps x;
	struct sp_sync *s = NULL;
	struct sp_desired d = { 0 };
	struct sp_sync_stats st;
	struct sp_svc v1, v2;

	if (!ASSERT_EQ(maps_create(&x, 4096, 64, 256), 0, "create maps"))
		return;
	if (!ASSERT_EQ(sp_sync_new(&x.m, &s), 0, "sp_sync_new"))
		goto out;
	d.svc = calloc(1, sizeof(*d.svc));
	d.n = 1;
	want_svc(&d.svc[0], "a/old:p/tcp/v4", 10, B123);
	sp_sync_apply(s, &d, &st);
	lookup_fe(&x, 10, &v1);
	sp_desired_free(&d);
	d.svc = calloc(1, sizeof(*d.svc));
	d.n = 1;
	want_svc(&d.svc[0], "a/new:p/tcp/v4", 10, B1234);
	ASSERT_EQ(sp_sync_apply(s, &d, &st), 0, "apply");
	if (ASSERT_EQ(lookup_fe(&x, 10, &v2), 0, "frontend still there"))
		ASSERT_EQ(v2.n, 4, "now the new Service's");
	ASSERT_EQ(sp_sync_n_services(s), 1, "old Service removed");
out:
	sp_desired_free(&d);
	sp_sync_free(s);
	maps_close(&x);
}

/*
 * sp_sync_check_capacity: what the config source refuses as a whole. Only
 * the capacities of the maps are read, so no maps (and no root) needed.
 * 70,000 Services passed check-config silently with 65,536 Service ids.
 */
/* Free what want_svc()/want_ranges() allocated in w. */
static void want_release(struct sp_want_svc *w)
{
	free(w->fe);
	free(w->be);
	free(w->src_ranges);
	memset(w, 0, sizeof(*w));
}

/* Make w's frontend an LB IP filtered by the given CIDRs (NULL-terminated). */
static void want_ranges(struct sp_want_svc *w, const char *const *cidrs)
{
	size_t n = 0;

	while (cidrs[n])
		n++;
	free(w->src_ranges);
	w->src_ranges = calloc(n ? n : 1, sizeof(*w->src_ranges));
	w->n_src_ranges = n;
	while (n--)
		sp_cidr_parse(cidrs[n], &w->src_ranges[n]);
	w->fe[0].flags = SP_SVC_F_EXTERNAL;
	if (w->n_src_ranges)
		w->fe[0].flags |= SP_SVC_F_SRC_RANGES;
}

/* Is client (v4 text) inside one of svc_id's ranges in the LPM map? */
static bool lpm_allows(int fd, uint32_t svc_id, const char *client)
{
	struct sp_src_range_key k;
	uint8_t v;

	memset(&k, 0, sizeof(k));
	k.prefixlen = SP_SRC_RANGE_KEY_BITS;
	k.svc_id = svc_id;
	k.family = SP_FAMILY_V4;
	inet_pton(AF_INET, client, k.addr.addr);
	return bpf_map_lookup_elem(fd, &k, &v) == 0;
}

/*
 * loadBalancerSourceRanges in sp_src_ranges: written with the Service,
 * diffed (a changed range costs one add and one delete, an unchanged
 * Service nothing), recovered after a restart with nothing rewritten,
 * removed with the ranges or the Service, stray entries of no Service
 * deleted by the first apply.
 */
static void test_src_ranges(void)
{
	static const char *const r1[] = { "10.10.0.0/24", "10.20.0.0/16", NULL };
	static const char *const r2[] = { "10.10.0.0/24", "10.30.0.0/16", NULL };
	static const char *const none[] = { NULL };
	const size_t ksz = sizeof(struct sp_src_range_key);
	struct sp_src_range_key stray;
	struct sp_sync *s = NULL;
	struct sp_desired d = { 0 };
	struct sp_sync_stats st;
	struct maps x;
	struct sp_svc v;
	uint8_t one = 1;
	int fd;

	if (!ASSERT_EQ(maps_create(&x, 4096, 64, 256), 0, "create maps"))
		return;
	{
		LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = BPF_F_NO_PREALLOC);

		fd = bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, NULL, ksz, 1, 64, &o);
	}
	if (!ASSERT_TRUE(fd >= 0, "create the LPM trie"))
		goto out;
	x.m.fd_src_ranges = fd;
	x.m.max_src_ranges = 64;
	if (!ASSERT_EQ(sp_sync_new(&x.m, &s), 0, "sp_sync_new"))
		goto out;
	d.svc = calloc(2, sizeof(*d.svc));
	d.n = 2;
	want_svc(&d.svc[0], "a/x:p/tcp/v4", 10, B123);
	want_svc(&d.svc[1], "a/y:p/tcp/v4", 11, B123);
	want_ranges(&d.svc[0], r1);
	ASSERT_EQ(sp_sync_apply(s, &d, &st), 0, "apply with ranges");
	ASSERT_EQ(count_keys(fd, ksz), 2, "two entries");
	if (!ASSERT_EQ(lookup_fe(&x, 10, &v), 0, "frontend"))
		goto out;
	ASSERT_TRUE(v.flags & SP_SVC_F_SRC_RANGES, "frontend flagged");
	ASSERT_TRUE(lpm_allows(fd, v.svc_id, "10.10.0.7"), "10.10.0.7 allowed");
	ASSERT_TRUE(lpm_allows(fd, v.svc_id, "10.20.99.1"), "10.20.99.1 allowed");
	ASSERT_TRUE(!lpm_allows(fd, v.svc_id, "10.30.0.1"), "10.30.0.1 denied");
	{
		struct sp_sync_maps small = x.m;
		char err[256] = "";

		small.max_src_ranges = 1;
		ASSERT_EQ(sp_sync_check_capacity(&small, &d, err, sizeof(err)), -ENOSPC,
			  "two ranges do not fit one entry");
		ASSERT_CONTAINS(err, "raise --max-src-ranges", "the message names the flag");
		small.max_src_ranges = 2;
		ASSERT_EQ(sp_sync_check_capacity(&small, &d, err, sizeof(err)), 0, "two fit two");
	}

	map_writes = 0;
	ASSERT_EQ(sp_sync_apply(s, &d, &st), 0, "apply same");
	ASSERT_EQ(map_writes, 0, "an unchanged Service with ranges writes nothing");

	want_ranges(&d.svc[0], r2);
	map_writes = 0;
	ASSERT_EQ(sp_sync_apply(s, &d, &st), 0, "apply changed range");
	ASSERT_EQ(map_writes, 2, "one range added, one deleted, nothing else");
	ASSERT_EQ(st.fe_written, 0, "frontends not rewritten");
	ASSERT_TRUE(!lpm_allows(fd, v.svc_id, "10.20.99.1"), "old range gone");
	ASSERT_TRUE(lpm_allows(fd, v.svc_id, "10.30.0.1"), "new range in");

	/* A restart: recovered from the map, nothing rewritten; a stray
	 * entry of no Service is removed by the first apply. */
	sp_sync_free(s);
	s = NULL;
	memset(&stray, 0, sizeof(stray));
	stray.prefixlen = SP_SRC_RANGE_PREFIX_BITS + 8;
	stray.svc_id = 50;
	stray.family = SP_FAMILY_V4;
	((uint8_t *)stray.addr.addr)[0] = 10;
	ASSERT_EQ(bpf_map_update_elem(fd, &stray, &one, BPF_ANY), 0, "stray entry");
	if (!ASSERT_EQ(sp_sync_new(&x.m, &s), 0, "restarted"))
		goto out;
	map_writes = 0;
	ASSERT_EQ(sp_sync_apply(s, &d, &st), 0, "apply after restart");
	ASSERT_EQ(map_writes, 1, "only the stray entry deleted");
	ASSERT_EQ(count_keys(fd, ksz), 2, "the Service's two entries kept");

	want_ranges(&d.svc[0], none);
	ASSERT_EQ(sp_sync_apply(s, &d, &st), 0, "apply without ranges");
	ASSERT_EQ(count_keys(fd, ksz), 0, "entries removed with the ranges");
	lookup_fe(&x, 10, &v);
	ASSERT_TRUE(!(v.flags & SP_SVC_F_SRC_RANGES), "flag cleared");

	want_ranges(&d.svc[0], r1);
	ASSERT_EQ(sp_sync_apply(s, &d, &st), 0, "ranges again");
	ASSERT_EQ(count_keys(fd, ksz), 2, "two entries");
	/* x removed (y stays): its entries go with it */
	want_release(&d.svc[0]);
	d.svc[0] = d.svc[1];
	memset(&d.svc[1], 0, sizeof(d.svc[1]));
	d.n = 1;
	ASSERT_EQ(sp_sync_apply(s, &d, &st), 0, "remove the Service");
	ASSERT_EQ(count_keys(fd, ksz), 0, "a removed Service leaves no entry");
out:
	sp_desired_free(&d);
	sp_sync_free(s);
	maps_close(&x);
	if (fd >= 0)
		close(fd);
}

/*
 * A start fills the maps with batch operations: 200 new Services of 3
 * backends out of 250 addresses (1,050 entries and 1,800 Maglev chunks to
 * write) take one bpf_map_update_batch per map, not one update per entry,
 * and every entry is there afterwards.
 */
static void test_first_apply_batched(void)
{
	enum { NS = 200 };
	struct maps x;
	struct sp_sync *s = NULL;
	struct sp_desired d = { 0 };
	struct sp_sync_stats st;
	struct sp_svc v;
	char id[64];
	int i, bes[4];

	if (!ASSERT_EQ(maps_create(&x, 4096, 256, 1024), 0, "create maps"))
		return;
	if (!ASSERT_EQ(sp_sync_new(&x.m, &s), 0, "sp_sync_new"))
		goto out;
	d.svc = calloc(NS, sizeof(*d.svc));
	d.n = NS;
	for (i = 0; i < NS; i++) {
		snprintf(id, sizeof(id), "a/s%03d:p/tcp/v4", i);
		bes[0] = 1 + i; /* 1..200, 51..250 and 101..250, 1..50 */
		bes[1] = 1 + (i + 50) % 250;
		bes[2] = 1 + (i + 100) % 250;
		bes[3] = 0;
		want_svc(&d.svc[i], id, i + 1, bes); /* canonical order: want_svc sorts */
	}
	map_writes = 0;
	ASSERT_EQ(sp_sync_apply(s, &d, &st), 0, "first apply");
	/* sp_maglev, sp_svc_stats, sp_services, sp_svc_meta; sp_backends (an
	 * mmapable array, as the daemon's) and a mmapable sp_maglev (1,800
	 * chunks) are written through a mapping. */
	if (maglev_flags & BPF_F_MMAPABLE) {
		ASSERT_EQ(map_writes, 3, "map write calls (one batch per map but sp_maglev)");
		ASSERT_EQ(sp_sync_maglev_mmap_writes(s), NS * 9, "chunks written through a mapping");
	} else {
		ASSERT_EQ(map_writes, 4, "map write calls (one batch per map)");
		ASSERT_EQ(sp_sync_maglev_mmap_writes(s), 0, "chunks written through a mapping");
	}
	ASSERT_EQ(st.svc_added, NS, "Services added");
	ASSERT_EQ(st.fe_written, NS, "frontends written");
	ASSERT_EQ(count_keys(x.m.fd_services, sizeof(struct sp_svc_key)), NS, "sp_services entries");
	ASSERT_EQ(count_backends(x.m.fd_backends), 250, "sp_backends entries (shared ones once)");
	ASSERT_EQ(count_keys(x.m.fd_svc_meta, 4), NS, "sp_svc_meta entries");
	if (ASSERT_EQ(lookup_fe(&x, NS, &v), 0, "the last Service's frontend"))
		ASSERT_EQ(v.n, 3, "its backends");
out:
	sp_desired_free(&d);
	sp_sync_free(s);
	maps_close(&x);
}

/*
 * A large apply's tables are built by helper threads ahead of it
 * (sync.c struct pre): every Service's table in sp_maglev must be the one
 * sp_maglev_build gives for its backends, whoever built it (the apply or a
 * helper as they meet, or, with ahead_only and two CPUs or more, helpers
 * only), and its backends (more than one batch of them) must all be in
 * sp_backends.
 */
static void tables_built_ahead(bool ahead_only)
{
	enum { NS = 600 };
	struct maps x;
	struct sp_sync *s = NULL;
	struct sp_desired d = { 0 };
	struct sp_sync_stats st;
	struct sp_maglev_chunk *ch = NULL;
	uint16_t *want = NULL;
	char id[64];
	int i, j, n, bes[24], bad = 0, bad_be = 0;

	if (!ASSERT_EQ(maps_create(&x, 131072, 1024, 16384), 0, "create maps"))
		return;
	if (!ASSERT_EQ(sp_sync_new(&x.m, &s), 0, "sp_sync_new"))
		goto out;
	sp_sync_set_ahead_only(s, ahead_only);
	d.svc = calloc(NS, sizeof(*d.svc));
	d.n = NS;
	for (i = 0; i < NS; i++) {
		/* 16 to 20 backends of its own, 10.<200 + j>.<i>: 10,800 in
		 * all, more than a batch of sp_backends (8,192) */
		n = 16 + i % 5;
		for (j = 0; j < n; j++)
			bes[j] = 1;
		bes[n] = 0;
		snprintf(id, sizeof(id), "a/s%03d:p/tcp/v4", i);
		want_svc(&d.svc[i], id, 1, bes);
		d.svc[i].fe[0].ip.b[2] = (uint8_t)(i >> 8); /* 10.96.<i> */
		d.svc[i].fe[0].ip.b[3] = (uint8_t)i;
		for (j = 0; j < n; j++) {
			d.svc[i].be[j].ip.b[1] = (uint8_t)(200 + j);
			d.svc[i].be[j].ip.b[2] = (uint8_t)(i >> 8);
			d.svc[i].be[j].ip.b[3] = (uint8_t)i;
		}
		sp_maglev_canonical(d.svc[i].be, d.svc[i].n_be);
	}
	ASSERT_EQ(sp_sync_apply(s, &d, &st), 0, "first apply");
	ASSERT_EQ(st.svc_added, NS, "Services added");
	if (ahead_only && sysconf(_SC_NPROCESSORS_ONLN) >= 2)
		ASSERT_EQ(sp_sync_tables_ahead(s), NS, "tables built by helpers");
	for (i = 0; i < NS; i++) {
		struct sp_svc_key k;
		struct sp_svc v;
		uint32_t c, chunks, m;
		const uint16_t *w;

		memset(&k, 0, sizeof(k));
		((uint8_t *)k.addr.addr)[0] = 10;
		((uint8_t *)k.addr.addr)[1] = 96;
		((uint8_t *)k.addr.addr)[2] = (uint8_t)(i >> 8);
		((uint8_t *)k.addr.addr)[3] = (uint8_t)i;
		k.port = htons(80);
		k.proto = IPPROTO_TCP;
		k.family = SP_FAMILY_V4;
		if (!ASSERT_EQ(bpf_map_lookup_elem(x.m.fd_services, &k, &v), 0, "frontend"))
			break;
		m = v.m;
		n = (int)d.svc[i].n_be;
		chunks = (2 * (uint32_t)n + m + SP_MAGLEV_CHUNK_WORDS - 1) / SP_MAGLEV_CHUNK_WORDS;
		free(ch);
		free(want);
		ch = calloc(chunks, sizeof(*ch));
		want = calloc(m, sizeof(*want));
		if (!ASSERT_TRUE(ch && want, "memory"))
			break;
		for (c = 0; c < chunks; c++) {
			uint32_t key = v.region + c;

			if (bpf_map_lookup_elem(x.m.fd_maglev, &key, &ch[c]))
				break;
		}
		if (!ASSERT_EQ(c, chunks, "region read") ||
		    !ASSERT_EQ(sp_maglev_build(d.svc[i].be, (size_t)n, m, want), 0, "build"))
			break;
		w = &ch[0].w[2 * n];
		if (memcmp(w, want, m * sizeof(*want)))
			bad++;
		/* and the ids before the table name the backends */
		for (j = 0; j < n; j++) {
			uint32_t be_id = ch[0].w[2 * j] | (uint32_t)ch[0].w[2 * j + 1] << 16;
			struct sp_backend b;

			if (bpf_map_lookup_elem(x.m.fd_backends, &be_id, &b) ||
			    memcmp(b.addr.addr, d.svc[i].be[j].ip.b, 4) ||
			    b.port != htons(d.svc[i].be[j].port))
				bad_be++;
		}
	}
	ASSERT_EQ(bad, 0, "tables that differ from sp_maglev_build's");
	ASSERT_EQ(bad_be, 0, "backends not in sp_backends as listed");
	ASSERT_EQ(count_backends(x.m.fd_backends), 600 * 18, "sp_backends entries");
out:
	free(ch);
	free(want);
	sp_desired_free(&d);
	sp_sync_free(s);
	maps_close(&x);
}

static void test_tables_built_ahead(void)
{
	tables_built_ahead(false);
	tables_built_ahead(true);
}

/*
 * Deferred reclamation, with a grace period the test controls: the
 * reclaimer thread's waits end only when a ticket is given; a wait on the
 * applying thread (an allocation that needs retired room) ends at once
 * and is counted.
 */
static pthread_t test_main_thread;
static atomic_int grace_tickets, grace_main_calls, grace_thread_in, grace_thread_done,
	grace_timeouts;
static atomic_bool grace_open;

static int fake_grace(void)
{
	int i;

	if (pthread_equal(pthread_self(), test_main_thread)) {
		grace_main_calls++;
		return 0;
	}
	grace_thread_in++;
	for (i = 0; i < 10000; i++) { /* at most 10 s */
		int t = atomic_load(&grace_tickets);

		if (atomic_load(&grace_open) ||
		    (t > 0 && atomic_compare_exchange_strong(&grace_tickets, &t, t - 1))) {
			grace_thread_done++;
			return 0;
		}
		usleep(1000);
	}
	grace_timeouts++;
	return 0;
}

/* Wait (at most 10 s) until the counter c reaches n. */
static bool grace_wait(atomic_int *c, int n)
{
	int i;

	for (i = 0; i < 10000 && atomic_load(c) < n; i++)
		usleep(1000);
	return atomic_load(c) >= n;
}

static bool backend_present(struct maps *x, int b)
{
	struct sp_backend v;
	__u32 k, next;
	void *pk = NULL;

	while (bpf_map_get_next_key(x->m.fd_backends, pk, &next) == 0) {
		k = next;
		pk = &k;
		if (!bpf_map_lookup_elem(x->m.fd_backends, &k, &v) && v.addr.addr[0] == htonl(0x0af40000 | b))
			return true;
	}
	return false;
}

static void apply_one(struct sp_sync *s, const int *bes, const char *what)
{
	struct sp_desired d = { 0 };

	d.svc = calloc(1, sizeof(*d.svc));
	d.n = 1;
	want_svc(&d.svc[0], "a/x:p/tcp/v4", 10, bes);
	ASSERT_EQ(sp_sync_apply(s, &d, NULL), 0, what);
	sp_desired_free(&d);
}

static void test_deferred_reclaim(void)
{
	static const int B124[] = { 11, 12, 14, 0 }, B125[] = { 11, 12, 15, 0 };
	struct maps x, y;
	struct sp_sync *s = NULL, *t = NULL;
	struct sp_sync_stats st;
	bool x_up = false, y_up = false;

	test_main_thread = pthread_self();
	grace_tickets = grace_main_calls = grace_thread_in = grace_thread_done = grace_timeouts = 0;
	grace_open = false;
	sp_sync_set_grace(fake_grace);
	if (!ASSERT_EQ(maps_create(&x, 4096, 64, 256), 0, "create maps"))
		goto out;
	x_up = true;
	if (!ASSERT_EQ(sp_sync_new(&x.m, &s), 0, "sp_sync_new"))
		goto out;
	/* 13 dropped (generation 1), taken again (2), dropped again (3). */
	apply_one(s, B123, "apply 11 12 13");
	apply_one(s, B124, "apply 11 12 14: 13 retired");
	ASSERT_TRUE(backend_present(&x, 13), "13 kept until a grace period ends");
	/* The grace period for generation 1 has begun: what follows is not
	 * covered by it. */
	if (!ASSERT_TRUE(grace_wait(&grace_thread_in, 1), "the reclaimer waits for generation 1"))
		goto out;
	apply_one(s, B123, "apply 11 12 13: 13 taken again, 14 retired");
	apply_one(s, B124, "apply 11 12 14: 13 retired again, 14 taken again");
	ASSERT_EQ(grace_main_calls, 0, "grace periods awaited by the applies themselves");
	/* The first grace period ends: it covers generation 1 only. */
	grace_tickets = 1;
	if (!ASSERT_TRUE(grace_wait(&grace_thread_done, 1), "the reclaimer ended a grace period"))
		goto out;
	sp_sync_reclaim(s, &st);
	ASSERT_TRUE(backend_present(&x, 13), "13, dropped again since, outlives the first grace period");
	ASSERT_TRUE(backend_present(&x, 14), "14 kept (in use)");
	grace_open = true;
	sp_sync_flush(s, &st);
	ASSERT_TRUE(!backend_present(&x, 13), "13 deleted once its last grace period ended");
	ASSERT_EQ(count_backends(x.m.fd_backends), 3, "11 12 14 left");

	/* Room only in retired chunks: the apply waits for it, once. 3
	 * backends at M=251 take 9 chunks: 18 hold the live table and one. */
	grace_open = false;
	grace_tickets = 0;
	grace_main_calls = 0;
	if (!ASSERT_EQ(maps_create(&y, 18, 64, 256), 0, "create small maps"))
		goto out;
	y_up = true;
	if (!ASSERT_EQ(sp_sync_new(&y.m, &t), 0, "sp_sync_new"))
		goto out;
	apply_one(t, B123, "small: first table");
	ASSERT_EQ(sp_sync_maglev_chunks_used(t), 9, "chunks in use: one table");
	apply_one(t, B124, "small: second table beside it");
	ASSERT_EQ(sp_sync_maglev_chunks_used(t), 18, "chunks in use: the live and the retired one");
	ASSERT_EQ(grace_main_calls, 0, "no wait while free chunks remain");
	apply_one(t, B125, "small: third table in the first one's chunks");
	ASSERT_EQ(grace_main_calls, 1, "one wait for the retired chunks");
	ASSERT_EQ(sp_sync_maglev_chunks_used(t), 18, "chunks in use: the first table's reused");
out:
	grace_open = true;
	sp_sync_free(s);
	sp_sync_free(t);
	sp_sync_set_grace(NULL);
	ASSERT_EQ(grace_timeouts, 0, "fake grace periods that timed out");
	if (x_up)
		maps_close(&x);
	if (y_up)
		maps_close(&y);
}

static void test_check_capacity(void)
{
	static const struct {
		const char *name;
		size_t n_svc;
		const int *bes[2]; /* backends of even and odd Services */
		struct sp_sync_maps cap;
		int rc;
		const char *phrase;
	} cases[] = {
		{ "default_ids_full", SP_MAX_SVC_IDS, { B0, B0 }, DEFAULT_CAP, 0, NULL },
		{ "default_70000_services", 70000, { B0, B0 }, DEFAULT_CAP, -ENOSPC,
		  "70000 Service ports need as many Service ids, the maps hold 65536: raise "
		  "--max-services" },
		{ "frontends", 2, { B0, B0 }, { .max_svc_ids = 8, .max_frontends = 1,
		  .max_backends = 8, .maglev_chunks = 64 }, -ENOSPC,
		  "2 frontends (address:port/protocol), sp_services holds 1: raise --max-services" },
		{ "frontends_unchecked", 2, { B0, B0 }, { .max_svc_ids = 8, .max_backends = 8,
		  .maglev_chunks = 64 }, 0, NULL },
		{ "shared_backends_count_once", 3, { B123, B123 }, { .max_svc_ids = 8,
		  .max_backends = 3, .maglev_chunks = 64 }, 0, NULL },
		{ "backends", 2, { B123, B1234 }, { .max_svc_ids = 8, .max_backends = 3,
		  .maglev_chunks = 64 }, -ENOSPC,
		  "4 distinct backends (endpoint address:port), sp_backends holds 3: raise "
		  "--max-backends" },
		/* 3 backends at M=251: (2 * 3 + 251) / 32 rounded up is 9 chunks. */
		{ "maglev_chunks", 1, { B123, B123 }, { .max_svc_ids = 8, .max_backends = 8,
		  .maglev_chunks = 8 }, -ENOSPC,
		  "the Maglev tables need 9 chunks, sp_maglev holds 8: raise --maglev-chunks" },
		{ "maglev_chunks_fit", 1, { B123, B123 }, { .max_svc_ids = 8, .max_backends = 8,
		  .maglev_chunks = 9 }, 0, NULL },
	};
	size_t i, j;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sp_desired d = { 0 };
		char err[256] = "", id[64];

		d.svc = calloc(cases[i].n_svc, sizeof(*d.svc));
		if (!ASSERT_TRUE(d.svc, "calloc"))
			return;
		d.n = cases[i].n_svc;
		for (j = 0; j < d.n; j++) {
			snprintf(id, sizeof(id), "a/s%zu:p/tcp/v4", j);
			want_svc(&d.svc[j], id, (int)(j % 250) + 1, cases[i].bes[j % 2]);
		}
		if (ASSERT_EQ(sp_sync_check_capacity(&cases[i].cap, &d, err, sizeof(err)),
			      cases[i].rc, cases[i].name) &&
		    cases[i].phrase)
			ASSERT_STREQ(err, cases[i].phrase, cases[i].name);
		sp_desired_free(&d);
	}
}

/* 4 address bytes as the datapath sees them (struct sp_addr, IPv4). */
static struct sp_addr addr4(int a, int b, int c, int d)
{
	struct sp_addr r;

	memset(&r, 0, sizeof(r));
	((uint8_t *)r.addr)[0] = (uint8_t)a;
	((uint8_t *)r.addr)[1] = (uint8_t)b;
	((uint8_t *)r.addr)[2] = (uint8_t)c;
	((uint8_t *)r.addr)[3] = (uint8_t)d;
	return r;
}

/*
 * sp_dst_filter: the bit of every frontend and node address is set before
 * it is written; bits of deleted ones go once enough is deleted, but never
 * a bit another live address shares; a restart fills a new filter from
 * the pinned sp_services before anything is applied.
 */
static void test_dst_filter(void)
{
	/* 10.3.142.161 and 10.16.0.0 share a bit (found by search). */
	const struct sp_addr a = addr4(10, 3, 142, 161), b = addr4(10, 16, 0, 0),
			     c = addr4(10, 96, 0, 12), other = addr4(10, 96, 0, 99),
			     node = addr4(192, 168, 1, 5);
	struct sp_ip nip = { .family = 4, .b = { 192, 168, 1, 5 } };
	struct sp_desired d = { 0 };
	struct sp_sync *s = NULL, *s2 = NULL;
	struct maps x;
	int fresh;

	if (!ASSERT_EQ(sp_dstf_bit(&a), sp_dstf_bit(&b), "the two addresses share a bit"))
		return;
	if (!ASSERT_EQ(maps_create(&x, 4096, 64, 256), 0, "create maps"))
		return;
	if (!ASSERT_EQ(sp_sync_new(&x.m, &s), 0, "sp_sync_new"))
		goto out;
	d.svc = calloc(3, sizeof(*d.svc));
	d.n = 3;
	want_svc(&d.svc[0], "a/a:p/tcp/v4", 1, B123);
	want_svc(&d.svc[1], "a/b:p/tcp/v4", 2, B123);
	want_svc(&d.svc[2], "a/c:p/tcp/v4", 12, B123);
	memcpy(d.svc[0].fe[0].ip.b, ((const uint8_t *)a.addr), 4);
	memcpy(d.svc[1].fe[0].ip.b, ((const uint8_t *)b.addr), 4);
	ASSERT_TRUE(!sp_sync_dst_filter_has(s, &c), "no bit before anything is written");
	ASSERT_EQ(sp_sync_apply(s, &d, NULL), 0, "apply three Services");
	ASSERT_EQ(sp_sync_node_addrs(s, &nip, 1), 0, "node address");
	ASSERT_TRUE(sp_sync_dst_filter_has(s, &a), "frontend a's bit");
	ASSERT_TRUE(sp_sync_dst_filter_has(s, &b), "frontend b's bit");
	ASSERT_TRUE(sp_sync_dst_filter_has(s, &c), "frontend c's bit");
	ASSERT_TRUE(sp_sync_dst_filter_has(s, &node), "node address's bit");
	ASSERT_TRUE(!sp_sync_dst_filter_has(s, &other), "no bit for an address never written");

	/* Keep b only: 2 of 3 deleted is past an eighth, so the bitmap is
	 * recomputed; a's bit is b's, so it stays. */
	sp_desired_free(&d);
	d.svc = calloc(1, sizeof(*d.svc));
	d.n = 1;
	want_svc(&d.svc[0], "a/b:p/tcp/v4", 2, B123);
	memcpy(d.svc[0].fe[0].ip.b, ((const uint8_t *)b.addr), 4);
	ASSERT_EQ(sp_sync_apply(s, &d, NULL), 0, "apply b alone");
	ASSERT_TRUE(!sp_sync_dst_filter_has(s, &c), "c's bit cleared");
	ASSERT_TRUE(sp_sync_dst_filter_has(s, &b), "b's bit kept");
	ASSERT_TRUE(sp_sync_dst_filter_has(s, &a), "the bit a shares with b kept");
	ASSERT_TRUE(sp_sync_dst_filter_has(s, &node), "node address's bit kept");
	ASSERT_EQ(sp_sync_node_addrs(s, NULL, 0), 0, "no node address");
	ASSERT_TRUE(!sp_sync_dst_filter_has(s, &node), "node address's bit cleared");
	sp_sync_free(s);
	s = NULL;

	/* A restart: a new (empty) filter, as the daemon's unpinned map. */
	fresh = mk(BPF_MAP_TYPE_ARRAY, 4, sizeof(struct sp_dst_filter), 1, BPF_F_MMAPABLE);
	if (!ASSERT_TRUE(fresh >= 0, "new filter map"))
		goto out;
	close(x.m.fd_dst_filter);
	x.m.fd_dst_filter = fresh;
	if (ASSERT_EQ(sp_sync_new(&x.m, &s2), 0, "restart")) {
		ASSERT_TRUE(sp_sync_dst_filter_has(s2, &b), "recovered frontend's bit, before any apply");
		ASSERT_TRUE(!sp_sync_dst_filter_has(s2, &c), "no bit for what was deleted");
	}
out:
	sp_sync_free(s);
	sp_sync_free(s2);
	sp_desired_free(&d);
	maps_close(&x);
}

/* n desired TCP Services "r/<vip>" at 10.96.0.<vip>, vips[0..n), and one
 * UDP Service at 10.96.0.<udp_vip> unless 0. */
static void want_set(struct sp_desired *d, const int *vips, size_t n, int udp_vip)
{
	char id[32];
	size_t i;

	sp_desired_free(d);
	d->svc = calloc(n + 1, sizeof(*d->svc));
	d->n = 0;
	for (i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "r/%03d", vips[i]);
		want_svc(&d->svc[d->n++], id, vips[i], B123);
	}
	if (udp_vip) {
		want_svc(&d->svc[d->n], "u/udp", udp_vip, B123);
		d->svc[d->n++].proto = IPPROTO_UDP;
	}
}

static bool udp_fe_present(struct maps *x, int vip)
{
	struct sp_svc_key k;
	struct sp_svc v;

	memset(&k, 0, sizeof(k));
	k.addr = addr4(10, 96, 0, vip);
	k.port = htons(80);
	k.proto = IPPROTO_UDP;
	k.family = SP_FAMILY_V4;
	return bpf_map_lookup_elem(x->m.fd_services, &k, &v) == 0;
}

/*
 * A deleted Service's TCP frontend is retained (SP_SVC_F_GONE, no
 * backends) for its established connections until the collector reports
 * it unused; its svc_id is not given to another Service meanwhile; a UDP
 * frontend is deleted at once. A report about an older retention of the
 * same key deletes nothing; a Service taking the key back overwrites it;
 * a restart keeps what was retained; room for wanted frontends comes
 * first.
 */
static void test_retained(void)
{
	static const int xy[] = { 10, 11 }, x_only[] = { 10 }, xz[] = { 10, 13 },
			 xyz[] = { 10, 11, 13 }, many[] = { 20, 21, 22, 23, 24, 25, 26, 27 };
	struct sp_sync *s = NULL, *s2 = NULL;
	struct sp_retained_fe *r = NULL, *r2 = NULL;
	struct sp_desired d = { 0 };
	struct sp_sync_stats st;
	struct sp_svc vy, v, vz;
	size_t n = 0, n2 = 0;
	struct maps x;

	if (!ASSERT_EQ(maps_create(&x, 4096, 64, 256), 0, "create maps"))
		return;
	x.m.max_frontends = 64;
	if (!ASSERT_EQ(sp_sync_new(&x.m, &s), 0, "sp_sync_new"))
		goto out;
	sp_sync_set_retain(s, true);
	want_set(&d, xy, 2, 12);
	ASSERT_EQ(sp_sync_apply(s, &d, &st), 0, "apply x, y and a UDP Service");
	if (!ASSERT_EQ(lookup_fe(&x, 11, &vy), 0, "y's frontend"))
		goto out;

	want_set(&d, x_only, 1, 0);
	ASSERT_EQ(sp_sync_apply(s, &d, &st), 0, "apply x only");
	ASSERT_EQ(st.svc_removed, 2, "y and the UDP Service removed");
	ASSERT_EQ(st.fe_retained, 1, "y's TCP frontend retained");
	ASSERT_EQ(st.fe_deleted, 1, "the UDP frontend deleted");
	ASSERT_TRUE(!udp_fe_present(&x, 12), "UDP frontend gone from sp_services");
	if (ASSERT_EQ(lookup_fe(&x, 11, &v), 0, "y's frontend still in sp_services")) {
		ASSERT_EQ(v.flags, SP_SVC_F_GONE, "flagged gone");
		ASSERT_EQ(v.n, 0, "no backends");
		ASSERT_EQ(v.svc_id, vy.svc_id, "y's svc_id (its counters)");
	}
	ASSERT_EQ(sp_sync_n_retained(s), 1, "one retained");

	/* y's id stays taken after grace periods: a new Service gets another. */
	sp_sync_flush(s, &st);
	want_set(&d, xz, 2, 0);
	ASSERT_EQ(sp_sync_apply(s, &d, &st), 0, "apply x and a new z");
	sp_sync_flush(s, &st);
	if (ASSERT_EQ(lookup_fe(&x, 13, &vz), 0, "z's frontend"))
		ASSERT_NEQ(vz.svc_id, vy.svc_id, "z does not get y's held svc_id");

	/* The copy the collector works on; a stale report deletes nothing. */
	if (!ASSERT_EQ(sp_sync_retained(s, &r, &n), 0, "copy the list") || !ASSERT_EQ(n, 1, "1"))
		goto out;
	ASSERT_EQ(r[0].svc_id, vy.svc_id, "copy: svc_id");
	r[0].seq++;
	ASSERT_EQ(sp_sync_retained_unused(s, r, n), 0, "report of another retention: kept");
	r[0].seq--;

	/* A Service takes the key back: a live frontend again, not retained. */
	want_set(&d, xyz, 3, 0);
	ASSERT_EQ(sp_sync_apply(s, &d, &st), 0, "apply x, y again and z");
	if (ASSERT_EQ(lookup_fe(&x, 11, &v), 0, "y's frontend"))
		ASSERT_EQ(v.n, 3, "served again, with backends");
	ASSERT_EQ(sp_sync_n_retained(s), 0, "no longer retained");
	ASSERT_EQ(sp_sync_retained_unused(s, r, n), 0, "the old report: nothing deleted");
	if (ASSERT_EQ(lookup_fe(&x, 11, &v), 0, "y's frontend after the old report"))
		ASSERT_EQ(v.n, 3, "still served");

	/* Deleted again: retained anew; the old report still deletes nothing,
	 * a report of this retention does. */
	want_set(&d, xz, 2, 0);
	ASSERT_EQ(sp_sync_apply(s, &d, &st), 0, "apply x and z: y deleted again");
	ASSERT_EQ(sp_sync_n_retained(s), 1, "retained again");
	ASSERT_EQ(sp_sync_retained_unused(s, r, n), 0, "report of the first retention: kept");

	/* A restart keeps it (and its svc_id held). */
	ASSERT_EQ(sp_sync_new(&x.m, &s2), 0, "restart: sp_sync_new on the same maps");
	if (s2) {
		sp_sync_set_retain(s2, true);
		ASSERT_EQ(sp_sync_n_retained(s2), 1, "restart: recovered as retained");
		ASSERT_EQ(sp_sync_apply(s2, &d, &st), 0, "restart: first full apply");
		ASSERT_EQ(st.fe_deleted, 0, "restart: not deleted as an orphan");
		ASSERT_EQ(lookup_fe(&x, 11, &v), 0, "restart: still in sp_services");
		sp_sync_free(s2);
		s2 = NULL;
	}

	if (!ASSERT_EQ(sp_sync_retained(s, &r2, &n2), 0, "copy again") ||
	    !ASSERT_EQ(n2, 1, "one in the copy"))
		goto out;
	ASSERT_EQ(sp_sync_retained_unused(s, r2, n2), 1, "report of this retention: deleted");
	ASSERT_TRUE(lookup_fe(&x, 11, &v) != 0, "gone from sp_services");
	ASSERT_EQ(sp_sync_n_retained(s), 0, "none retained");

	/* Room: with 8 frontends' room, one of an eighth is retained at most,
	 * and given up when 8 wanted ones need the room. */
	x.m.max_frontends = 8;
	sp_sync_free(s);
	s = NULL;
	ASSERT_EQ(sp_sync_new(&x.m, &s), 0, "a daemon with room for 8 frontends");
	if (!s)
		goto out;
	sp_sync_set_retain(s, true);
	want_set(&d, xyz, 3, 0);
	ASSERT_EQ(sp_sync_apply(s, &d, &st), 0, "apply x, y and z");
	want_set(&d, xy, 0, 0);
	ASSERT_EQ(sp_sync_apply(s, &d, &st), 0, "apply nothing");
	ASSERT_EQ(st.fe_retained, 1, "one retained (an eighth of 8)");
	ASSERT_EQ(st.fe_deleted, 2, "the others deleted");
	want_set(&d, many, 8, 0);
	ASSERT_EQ(sp_sync_apply(s, &d, &st), 0, "apply 8 Services");
	ASSERT_EQ(st.fe_written, 8, "all 8 frontends written");
	ASSERT_EQ(sp_sync_n_retained(s), 0, "the retained one gave its room");
	ASSERT_EQ(count_keys(x.m.fd_services, sizeof(struct sp_svc_key)), 8,
		  "sp_services holds the 8");

	/* Without retention (no collector): deleted, and what was retained
	 * before goes with the first full apply. */
	sp_sync_set_retain(s, false);
	want_set(&d, many, 7, 0);
	ASSERT_EQ(sp_sync_apply(s, &d, &st), 0, "apply 7 without retention");
	ASSERT_EQ(st.fe_retained, 0, "nothing retained");
	ASSERT_EQ(st.fe_deleted, 1, "deleted");
out:
	free(r);
	free(r2);
	sp_desired_free(&d);
	sp_sync_free(s);
	sp_sync_free(s2);
	maps_close(&x);
}

static uint32_t live_of(int fd, uint32_t id)
{
	uint32_t v = 99;

	bpf_map_lookup_elem(fd, &id, &v);
	return v;
}

/*
 * sp_svc_live: an id is live from its allocation, through the grace
 * period after its Service goes, and while retained frontends hold it; a
 * new map at start is filled from what the recovery found taken.
 */
static void test_svc_live(void)
{
	static const int xy[] = { 10, 11 }, x_only[] = { 10 };
	struct sp_sync *s = NULL, *s2 = NULL;
	struct sp_desired d = { 0 };
	struct sp_sync_stats st;
	struct sp_svc vx, vy;
	struct maps x;
	int live2 = -1;

	if (!ASSERT_EQ(maps_create(&x, 4096, 64, 256), 0, "create maps"))
		return;
	x.m.fd_svc_live = mk(BPF_MAP_TYPE_ARRAY, 4, 4, 64, BPF_F_MMAPABLE);
	if (!ASSERT_TRUE(x.m.fd_svc_live >= 0, "create sp_svc_live") ||
	    !ASSERT_EQ(sp_sync_new(&x.m, &s), 0, "sp_sync_new"))
		goto out;
	sp_sync_set_retain(s, true);
	want_set(&d, xy, 2, 0);
	ASSERT_EQ(sp_sync_apply(s, &d, &st), 0, "apply x and y");
	if (!ASSERT_EQ(lookup_fe(&x, 10, &vx), 0, "x") || !ASSERT_EQ(lookup_fe(&x, 11, &vy), 0, "y"))
		goto out;
	ASSERT_EQ(live_of(x.m.fd_svc_live, vx.svc_id), 1, "x's id live");
	ASSERT_EQ(live_of(x.m.fd_svc_live, vy.svc_id), 1, "y's id live");

	/* y deleted: retained, its id held and live. */
	want_set(&d, x_only, 1, 0);
	ASSERT_EQ(sp_sync_apply(s, &d, &st), 0, "apply x only");
	sp_sync_flush(s, &st);
	ASSERT_EQ(live_of(x.m.fd_svc_live, vy.svc_id), 1, "held id still live");

	/* A restart with a new sp_svc_live: filled from the recovery. */
	live2 = mk(BPF_MAP_TYPE_ARRAY, 4, 4, 64, BPF_F_MMAPABLE);
	if (ASSERT_TRUE(live2 >= 0, "create a second sp_svc_live")) {
		struct sp_sync_maps m2 = x.m;

		m2.fd_svc_live = live2;
		ASSERT_EQ(sp_sync_new(&m2, &s2), 0, "restart");
		ASSERT_EQ(live_of(live2, vx.svc_id), 1, "restart: x's id live");
		ASSERT_EQ(live_of(live2, vy.svc_id), 1, "restart: held id live");
		ASSERT_EQ(live_of(live2, 63), 0, "restart: a free id is not");
		sp_sync_free(s2);
		s2 = NULL;
	}

	/* The retained frontend goes: after the grace period, the id is not live. */
	{
		struct sp_retained_fe *r = NULL;
		size_t n = 0;

		if (ASSERT_EQ(sp_sync_retained(s, &r, &n), 0, "copy") && ASSERT_EQ(n, 1, "one"))
			ASSERT_EQ(sp_sync_retained_unused(s, r, n), 1, "released");
		free(r);
	}
	sp_sync_flush(s, &st);
	ASSERT_EQ(live_of(x.m.fd_svc_live, vy.svc_id), 0, "released id not live");
	ASSERT_EQ(live_of(x.m.fd_svc_live, vx.svc_id), 1, "x's id still live");

	/* x deleted too, without retention: not live once the grace is over. */
	sp_sync_set_retain(s, false);
	want_set(&d, x_only, 0, 0);
	ASSERT_EQ(sp_sync_apply(s, &d, &st), 0, "apply nothing");
	sp_sync_flush(s, &st);
	ASSERT_EQ(live_of(x.m.fd_svc_live, vx.svc_id), 0, "x's id not live");
out:
	sp_desired_free(&d);
	sp_sync_free(s);
	sp_sync_free(s2);
	if (live2 >= 0)
		close(live2);
	if (x.m.fd_svc_live > 0)
		close(x.m.fd_svc_live);
	maps_close(&x);
}

int main(void)
{
	RUN_TEST(test_check_capacity);
	if (geteuid() != 0) {
		sp_test_skip("test_sync", "needs root to create BPF maps");
		return 0;
	}
	RUN_TEST(test_add_change_remove);
	RUN_TEST(test_restart_recovery);
	RUN_TEST(test_apply_ids);
	RUN_TEST(test_table_beside_old);
	RUN_TEST(test_capacity_keeps_last_good);
	RUN_TEST(test_frontend_moves);
	RUN_TEST(test_src_ranges);
	RUN_TEST(test_deferred_reclaim);
	RUN_TEST(test_first_apply_batched);
	RUN_TEST(test_dst_filter);
	RUN_TEST(test_retained);
	RUN_TEST(test_svc_live);
	RUN_TEST(test_tables_built_ahead);
	/* Again with sp_maglev mmapable, as the daemon creates it: big
	 * batches of chunks then go through a mapping (sync.c
	 * wbatch_write_mmap), and every table must read back the same. */
	maglev_flags = BPF_F_MMAPABLE;
	RUN_TEST(test_add_change_remove);
	RUN_TEST(test_restart_recovery);
	RUN_TEST(test_apply_ids);
	RUN_TEST(test_table_beside_old);
	RUN_TEST(test_frontend_moves);
	RUN_TEST(test_first_apply_batched);
	RUN_TEST(test_tables_built_ahead);
	return sp_test_exit();
}
