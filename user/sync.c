// SPDX-License-Identifier: Apache-2.0
/*
 * Map sync: see sync.h for the contract. The order of writes is what makes
 * every update safe for packets in flight:
 *   1. new backends into sp_backends (nothing points at them yet);
 *   2. the new Maglev region into free chunks of sp_maglev (ditto);
 *   3. one sp_services update per frontend: the switch;
 *   4. only then: free the old region, delete frontends and backends that
 *      nothing uses any more.
 * A packet therefore sees the whole old table or the whole new one, and a
 * backend id in any table it can read always resolves.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <search.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/membarrier.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "svcplane.h"
#include "log.h"
#include "maglev.h"
#include "sync.h"

struct app_be {
	struct sp_ip ip;
	uint16_t port; /* host order */
	uint32_t id;
	uint32_t refs; /* applied Services whose region lists it */
	uint8_t flags; /* SP_BE_F_* as written */
	bool queued; /* on the gc list (refs reached 0 since the last collection) */
	uint64_t gen; /* the generation its refs last reached 0 in (see struct sp_sync) */
};

struct app_svc {
	char id[SP_SVC_NAME_LEN];
	uint32_t svc_id;
	uint32_t region, chunks, m; /* chunks == 0: no region */
	uint16_t n, flags;
	uint32_t affinity_timeout;
	struct sp_mg_backend *be; /* n, canonical */
	uint32_t *be_ids; /* n */
	struct sp_svc_key *fe; /* frontends as written */
	uint16_t *fe_flags;
	size_t n_fe;
	struct sp_svc_key *fe_old; /* frontends before this apply, for the deletion pass */
	size_t n_fe_old;
	int seen;
	/* sp_src_ranges entries as written, sorted by range_key_cmp */
	struct sp_src_range_key *ranges;
	size_t n_ranges;
};

/*
 * Map writes queued to go out together, one bpf_map_update_batch per map
 * instead of one syscall per entry (a start at 10,000 Services writes
 * 100,000 backends). Written in order, so a later write of the same key
 * wins, as it would one at a time.
 */
struct wbatch {
	const char *name; /* the map, for messages */
	const char *full_hint; /* appended when it is full (E2BIG), or "" */
	int fd;
	uint32_t ksz, vsz, n, cap;
	uint8_t *keys, *vals;
	/* An array map created with BPF_F_MMAPABLE (sp_maglev): big batches
	 * are copied through a mapping of the span they cover instead of the
	 * bpf(2) batch, which copies and checks element by element. -1: not
	 * tried yet, 0: not mmapable (an array pinned by an older version, or
	 * a test's map), 1: mmapable. */
	int mmapable;
	uint64_t mmap_writes; /* elements written through a mapping */
};

struct sp_sync {
	struct sp_sync_maps maps;
	/*
	 * The order that makes a switch safe (see the top of this file) holds
	 * between the batches: the staging ones (backends, Maglev chunks,
	 * counters to zero: nothing points at them yet) always go out before
	 * the frontend writes that point at them, and the deletions that must
	 * follow a switch (old ranges, affinity pairs, retired regions) wait
	 * until the frontend batch is out (flush_writes).
	 */
	struct wbatch wb_backends, wb_chunks, wb_stats, wb_fe, wb_meta;
	struct wbatch wb_live; /* sp_svc_live (maps.fd_svc_live > 0) */
	int write_err; /* first failed write of a staging or metadata batch in this apply */
	void *svcs; /* tsearch tree of struct app_svc * by id */
	void *bes; /* tsearch tree of struct app_be * by identity */
	size_t n_svcs, n_bes;
	uint8_t *chunk_used; /* maglev_chunks entries */
	uint32_t n_chunks_used; /* of them, in use (for /metrics, without a walk) */
	uint32_t chunk_cursor;
	uint8_t *svc_id_used; /* max_svc_ids entries */
	/* No svc_id below this is free: the lowest free one is allocated, as
	 * before, without a walk from 0 each time (which made the first apply
	 * of 100,000 Services quadratic: 5 of its 10 s). */
	uint32_t svc_id_lo;
	uint8_t *be_id_used; /* max_backends + 1 entries, id 0 unused */
	uint32_t be_cursor;
	struct sp_svc_key *orphans; /* frontends found at start with no Service */
	size_t n_orphans;
	/* sp_src_ranges entries found at start with no recovered Service */
	struct sp_src_range_key *range_orphans;
	size_t n_range_orphans;
	struct sp_node_addr_key *node_addrs;
	size_t n_node_addrs;
	/* Backends whose refs reached 0: collected after a grace period. A
	 * list, so an apply with one change does not walk every backend. */
	struct app_be **gc;
	size_t n_gc, gc_cap;
	/* Regions no frontend points at any more (chunks == 0: the svc_id
	 * `first` of a removed Service), in the order they were retired:
	 * freed once no datapath program can still be reading them. */
	struct retired {
		uint32_t first, chunks;
		uint64_t gen;
	} *retired;
	size_t n_retired, retired_cap;
	/*
	 * Deferred reclamation. What a switch unlinks (an old region, the
	 * svc_id of a removed Service, a backend no table lists) is tagged with
	 * the current generation. At the end of an apply that retired
	 * something, the generation is handed to the reclaimer thread, which
	 * waits for one grace period (wait_for_datapath) covering everything
	 * retired up to it and publishes it as completed; the next apply, or
	 * sp_sync_reclaim(), frees what is covered. The apply itself never
	 * waits, except when an allocation finds only retired room
	 * (flush_retired). Without the thread (it could not be started), every
	 * apply waits at its end, as before.
	 */
	uint64_t gen; /* tag for what is retired now; starts at 1 */
	bool gen_used; /* something was retired under gen */
	struct {
		pthread_t thread;
		pthread_mutex_t lock;
		pthread_cond_t cond; /* a new request, or stop */
		uint64_t requested, completed; /* generations; under lock */
		bool stop, running, inited;
		int efd; /* counts grace periods ended: readable when one has (sync.h) */
	} rc;
	struct sp_sync_stats *cur_st; /* the current apply's statistics, or NULL */
	/* A large apply's tables built ahead (struct pre), and the index of
	 * the desired Service being applied in it. */
	struct pre *pre;
	size_t pre_i;
	uint64_t tables_ahead; /* tables taken from a helper */
	bool ahead_only; /* sp_sync_set_ahead_only */
	bool full_done; /* a full apply has run: orphans from the recovery are gone */
	/* sp_dst_filter (maps.fd_dst_filter > 0), mapped while an apply, a
	 * node address change or the start writes it, NULL between them (its
	 * 128 KiB would count in the daemon's RSS). Bits are set before the
	 * frontend or node address they stand for is written; a deletion only
	 * counts in dstf_stale, and the bitmap is recomputed from what is
	 * left once deletions reach an eighth of the Services (dstf_settle):
	 * a stale bit costs a packet two lookups, never a wrong answer. */
	struct sp_dst_filter *dstf;
	size_t dstf_stale;
	/* Frontends of applied Services, as last written (the old ones of an
	 * apply in progress aside): what the room for retained frontends is
	 * measured against. */
	size_t n_fe_applied;
	/* Retained frontends (see "retained frontends" below), sorted by key;
	 * seq tells two retentions of one key apart. */
	struct sp_retained_fe *ret;
	size_t n_ret, ret_cap;
	uint64_t ret_seq; /* the last sequence number given to one */
	uint64_t ret_changes; /* changes of the set, for sp_sync_retained_changes */
	uint32_t *ret_refs; /* per svc_id: retained frontends holding it */
	/* per svc_id: its Service is gone, the id waits for its last retained
	 * frontend to go before it is released */
	uint8_t *ret_held;
	bool ret_full_warned;
	bool retain; /* sp_sync_set_retain: someone collects unused ones */
};

static int svc_cmp(const void *a, const void *b)
{
	return strcmp(((const struct app_svc *)a)->id, ((const struct app_svc *)b)->id);
}

static int be_cmp(const void *pa, const void *pb)
{
	const struct app_be *a = pa, *b = pb;
	int c = sp_ip_cmp(&a->ip, &b->ip);

	if (c)
		return c;
	return (int)a->port - (int)b->port;
}

static void to_key_addr(const struct sp_ip *ip, struct sp_addr *a)
{
	memset(a, 0, sizeof(*a));
	memcpy(a->addr, ip->b, ip->family == SP_FAMILY_V4 ? 4 : 16);
}

static void from_key_addr(const struct sp_addr *a, uint8_t family, struct sp_ip *ip)
{
	memset(ip, 0, sizeof(*ip));
	ip->family = family;
	memcpy(ip->b, a->addr, family == SP_FAMILY_V4 ? 4 : 16);
}

static struct app_svc *find_svc(struct sp_sync *s, const char *id)
{
	struct app_svc key, **r;

	snprintf(key.id, sizeof(key.id), "%s", id);
	r = tfind(&key, &s->svcs, svc_cmp);
	return r ? *r : NULL;
}

static struct app_be *find_be(struct sp_sync *s, const struct sp_ip *ip, uint16_t port)
{
	struct app_be key = { .ip = *ip, .port = port }, **r;

	r = tfind(&key, &s->bes, be_cmp);
	return r ? *r : NULL;
}

/* ---- batched writes -------------------------------------------------------- */

static void wbatch_init(struct wbatch *b, const char *name, const char *full_hint, int fd,
			uint32_t ksz, uint32_t vsz)
{
	uint32_t cap = (256u << 10) / (ksz + vsz); /* about 256 KiB of keys and values */

	b->name = name;
	b->full_hint = full_hint;
	b->fd = fd;
	b->ksz = ksz;
	b->vsz = vsz;
	b->cap = cap < 64 ? 64 : cap > 8192 ? 8192 : cap;
	b->mmapable = 0;
}

/*
 * Below this many elements a batch goes through bpf(2): a mapping costs a
 * page-table set-up and a TLB shoot-down at munmap, about what 32 chunk
 * writes cost (one Service's table at M = 1021 is 33 chunks).
 */
#define WB_MMAP_MIN 32
/* The widest span mapped at once: bounds the RSS a mapping adds (its
 * pages count as the daemon's while mapped) on a fragmented map. */
#define WB_MMAP_SPAN (4u << 20)

/* The distance between an array map's elements in its mapping: each is
 * 8-byte aligned (sp_backends' 20-byte values are 24 bytes apart). */
static size_t array_stride(size_t vsz)
{
	return (vsz + 7) / 8 * 8;
}

/*
 * Write b's elements (u32 array indexes) through a shared mapping of the
 * pages they span. 0 when done, 1 when it cannot be (not mmapable, too
 * wide, no mapping): the caller uses bpf(2). The datapath cannot see a
 * half-written element that matters: staging writes only fill regions
 * nothing points at yet, and the frontend writes that switch to them come
 * after this returns (the munmap and the bpf(2) call order the stores).
 */
static int wbatch_write_mmap(struct wbatch *b)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), stride = array_stride(b->vsz), off, end, i;
	uint32_t lo = UINT32_MAX, hi = 0;
	uint8_t *p;

	if (b->mmapable == 0 || b->ksz != sizeof(__u32) || b->n < WB_MMAP_MIN)
		return 1;
	for (i = 0; i < b->n; i++) {
		uint32_t k;

		memcpy(&k, b->keys + i * sizeof(k), sizeof(k));
		lo = k < lo ? k : lo;
		hi = k > hi ? k : hi;
	}
	off = (size_t)lo * stride / pg * pg;
	end = ((size_t)hi + 1) * stride;
	end = (end + pg - 1) / pg * pg;
	if (end - off > WB_MMAP_SPAN)
		return 1;
	p = mmap(NULL, end - off, PROT_READ | PROT_WRITE, MAP_SHARED, b->fd, (off_t)off);
	if (p == MAP_FAILED) {
		/* Not mmapable: said once, then bpf(2) for good. */
		if (b->mmapable < 0)
			pr_debug("%s: no writable mapping (%s): written with bpf(2)", b->name,
				 strerror(errno));
		b->mmapable = 0;
		return 1;
	}
	b->mmapable = 1;
	for (i = 0; i < b->n; i++) {
		uint32_t k;

		memcpy(&k, b->keys + i * sizeof(k), sizeof(k));
		memcpy(p + (size_t)k * stride - off, b->vals + i * b->vsz, b->vsz);
	}
	__atomic_thread_fence(__ATOMIC_RELEASE);
	munmap(p, end - off);
	b->mmap_writes += b->n;
	b->n = 0;
	return 0;
}

static void wbatch_free(struct wbatch *b)
{
	free(b->keys);
	free(b->vals);
	b->keys = b->vals = NULL;
	b->n = 0;
}

/*
 * Write what b holds: one bpf_map_update_batch (elements in order, BPF_ANY),
 * or, if that fails (a kernel without batch operations for this map type,
 * or an element that does not go in), every element again one at a time,
 * each failure logged. Returns 0 or the first error; *ok (may be NULL)
 * gets the number of elements written.
 */
static int wbatch_write(struct wbatch *b, size_t *ok)
{
	uint32_t count = b->n, i;
	int err = 0;

	LIBBPF_OPTS(bpf_map_batch_opts, bo);
	if (ok)
		*ok = 0;
	if (!b->n)
		return 0;
	if (wbatch_write_mmap(b) == 0) {
		if (ok)
			*ok = count;
		return 0;
	}
	if (bpf_map_update_batch(b->fd, b->keys, b->vals, &count, &bo) == 0) {
		if (ok)
			*ok = b->n;
		b->n = 0;
		return 0;
	}
	/* How far the batch got is not reliable when the operation is not
	 * supported at all: all again (idempotent). */
	for (i = 0; i < b->n; i++) {
		const uint8_t *k = b->keys + (size_t)i * b->ksz;
		int e;

		if (!bpf_map_update_elem(b->fd, k, b->vals + (size_t)i * b->vsz, BPF_ANY)) {
			if (ok)
				(*ok)++;
			continue;
		}
		e = errno;
		err = err ?: -e;
		if (b->ksz == sizeof(__u32))
			pr_err("write entry %u of %s: %s%s", *(const __u32 *)k, b->name,
			       strerror(e), e == E2BIG ? b->full_hint : "");
		else
			pr_err("write to %s: %s%s", b->name, strerror(e),
			       e == E2BIG ? b->full_hint : "");
	}
	b->n = 0;
	return err;
}

static int flush_writes(struct sp_sync *s);
static void ret_forget(struct sp_sync *s, const struct sp_svc_key *k);
static void dstf_add(struct sp_sync *s, const struct sp_addr *a);
static void dstf_settle(struct sp_sync *s);
static void dstf_unmap(struct sp_sync *s);

/*
 * The batches' buffers (256 KiB each) back to the heap: at the end of an
 * apply the empty ones (between applies they held 1.3 MiB of the daemon's
 * RSS for nothing, and the next apply allocates only what it queues), at
 * sp_sync_free all of them.
 */
static void free_batches(struct sp_sync *s, bool only_empty)
{
	struct wbatch *all[] = { &s->wb_backends, &s->wb_chunks, &s->wb_stats, &s->wb_fe,
				 &s->wb_meta, &s->wb_live };
	size_t i;

	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (!only_empty || !all[i]->n)
			wbatch_free(all[i]);
}

/* Queue one write (BPF_ANY) to b's map, writing the batch first if it is
 * full. Without memory for a batch, the write is made at once (after
 * whatever must precede it). 0 or -errno (logged). */
static int wbatch_add(struct sp_sync *s, struct wbatch *b, const void *key, const void *val)
{
	if (b->n == b->cap) {
		/* A frontend batch needs what it points at written first. */
		int err = b == &s->wb_fe ? flush_writes(s) : wbatch_write(b, NULL);

		if (err && !s->write_err && b != &s->wb_fe)
			s->write_err = err;
	}
	if (!b->keys) {
		b->keys = malloc((size_t)b->cap * b->ksz);
		b->vals = malloc((size_t)b->cap * b->vsz);
		if (!b->keys || !b->vals) {
			wbatch_free(b);
			if (b == &s->wb_fe)
				flush_writes(s);
			if (bpf_map_update_elem(b->fd, key, val, BPF_ANY)) {
				int err = -errno;

				pr_err("write to %s: %s%s", b->name, strerror(-err),
				       err == -E2BIG ? b->full_hint : "");
				return err;
			}
			if (b == &s->wb_fe && s->cur_st)
				s->cur_st->fe_written++;
			return 0;
		}
	}
	memcpy(b->keys + (size_t)b->n * b->ksz, key, b->ksz);
	memcpy(b->vals + (size_t)b->n * b->vsz, val, b->vsz);
	b->n++;
	return 0;
}

/*
 * Everything queued, in the order that keeps switches safe: what tables
 * point at, then the frontends (the switches), then the metadata. Staging
 * writes cannot fail for room (backend ids and chunk indexes are in range
 * by construction), only for kernel memory: that is logged and fails the
 * apply (s->write_err), as a failed write did before batching, but the
 * switch has happened. A frontend that cannot be written (sp_services
 * full) keeps its previous value, logged, as before batching.
 */
static int flush_writes(struct sp_sync *s)
{
	struct wbatch *staging[] = { &s->wb_backends, &s->wb_chunks, &s->wb_stats, &s->wb_live };
	size_t i, ok;
	int err = 0, e;

	for (i = 0; i < sizeof(staging) / sizeof(staging[0]); i++) {
		e = wbatch_write(staging[i], NULL);
		err = err ?: e;
	}
	wbatch_write(&s->wb_fe, &ok);
	if (s->cur_st)
		s->cur_st->fe_written += ok;
	e = wbatch_write(&s->wb_meta, NULL);
	err = err ?: e;
	if (err && !s->write_err)
		s->write_err = err;
	return err;
}

/* ---- allocators ---------------------------------------------------------- */

/* Mark n chunks from first used (or free), keeping the count of used ones. */
static void chunks_mark(struct sp_sync *s, uint32_t first, uint32_t n, bool used)
{
	uint32_t i;

	for (i = first; i < first + n; i++) {
		s->n_chunks_used += used && !s->chunk_used[i];
		s->n_chunks_used -= !used && s->chunk_used[i];
		s->chunk_used[i] = used;
	}
}

/* First fit from a rotating cursor over the chunk bitmap. */
static int region_alloc_once(struct sp_sync *s, uint32_t chunks, uint32_t *out)
{
	uint32_t total = s->maps.maglev_chunks, tried = 0, start = s->chunk_cursor, run = 0, i;

	if (chunks == 0 || chunks > total)
		return -ENOSPC;
	for (i = start; tried < total + chunks; i++, tried++) {
		if (i >= total) {
			i = 0;
			run = 0;
		}
		if (s->chunk_used[i]) {
			run = 0;
			continue;
		}
		if (++run == chunks) {
			uint32_t first = i + 1 - chunks;

			chunks_mark(s, first, chunks, true);
			s->chunk_cursor = i + 1 < total ? i + 1 : 0;
			*out = first;
			return 0;
		}
	}
	return -ENOSPC;
}

static void region_free(struct sp_sync *s, uint32_t first, uint32_t chunks)
{
	if (chunks && first + chunks <= s->maps.maglev_chunks)
		chunks_mark(s, first, chunks, false);
}

static void flush_retired(struct sp_sync *s);

/* A region; when only retired chunks would make room, wait for them. */
static int region_alloc(struct sp_sync *s, uint32_t chunks, uint32_t *out)
{
	int err = region_alloc_once(s, chunks, out);

	if (err != -ENOSPC || !s->n_retired)
		return err;
	flush_retired(s);
	return region_alloc_once(s, chunks, out);
}

/* Something a switch unlinked: chunks of a region (chunks > 0), or the
 * svc_id `first` of a removed Service (chunks == 0). Freed once a grace
 * period covers its generation (free_retired). */
static void retire(struct sp_sync *s, uint32_t first, uint32_t chunks)
{
	if (s->n_retired == s->retired_cap) {
		size_t cap = s->retired_cap ? 2 * s->retired_cap : 16;
		struct retired *r = realloc(s->retired, cap * sizeof(*r));

		if (!r) {
			/* No memory to defer: leak until restart rather than
			 * free under a reader. */
			pr_warn("cannot defer freeing %s %u: %s",
				chunks ? "Maglev region at chunk" : "svc_id", first, strerror(ENOMEM));
			return;
		}
		s->retired = r;
		s->retired_cap = cap;
	}
	s->retired[s->n_retired].first = first;
	s->retired[s->n_retired].chunks = chunks;
	s->retired[s->n_retired].gen = s->gen;
	s->n_retired++;
	s->gen_used = true;
}

static void region_retire(struct sp_sync *s, uint32_t first, uint32_t chunks)
{
	if (chunks)
		retire(s, first, chunks);
}

/*
 * Wait until every datapath program that could have read the maps before
 * now has finished. A packet reads a Service's sp_services value, then its
 * region, then the backend: if a switch happens between, it still holds
 * the old region and backend ids, which must not be freed (and reused by
 * another Service, or deleted) under it. BPF programs run inside RCU
 * read-side sections, and membarrier(MEMBARRIER_CMD_GLOBAL) is
 * synchronize_rcu(): one grace period, from well under a millisecond to
 * tens of milliseconds on a loaded machine. Called from the reclaimer
 * thread, or by the apply itself only when it needs retired room.
 */
static int membarrier_grace(void)
{
	return (int)syscall(__NR_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0);
}

static int (*grace_fn)(void) = membarrier_grace;

void sp_sync_set_grace(int (*fn)(void))
{
	grace_fn = fn ? fn : membarrier_grace;
}

static void wait_for_datapath(void)
{
	static atomic_bool warned;

	if (grace_fn() == 0)
		return;
	if (!atomic_exchange(&warned, true))
		pr_warn("membarrier(MEMBARRIER_CMD_GLOBAL): %s; waiting 100 ms instead before "
			"freeing what the datapath may still read",
			strerror(errno));
	usleep(100000);
}

static void be_gc(struct sp_sync *s, uint64_t upto);
static void live_set(struct sp_sync *s, uint32_t id, bool live);

static void svc_id_release(struct sp_sync *s, uint32_t id)
{
	s->svc_id_used[id] = 0;
	live_set(s, id, false);
	if (id < s->svc_id_lo)
		s->svc_id_lo = id;
}

/* Free what was retired in generations up to upto (UINT64_MAX: all). */
static void free_retired(struct sp_sync *s, uint64_t upto)
{
	size_t i;

	for (i = 0; i < s->n_retired && s->retired[i].gen <= upto; i++) {
		const struct retired *r = &s->retired[i];

		if (r->chunks)
			region_free(s, r->first, r->chunks);
		else if (r->first < s->maps.max_svc_ids)
			svc_id_release(s, r->first);
	}
	if (i) {
		memmove(s->retired, s->retired + i, (s->n_retired - i) * sizeof(*s->retired));
		s->n_retired -= i;
		/* The released ids' sp_svc_live bits now, not with the next
		 * apply's writes (there may be none for a while). */
		wbatch_write(&s->wb_live, NULL); /* a failure is logged there */
	}
	be_gc(s, upto);
}

static uint64_t grace_completed(struct sp_sync *s)
{
	uint64_t c;

	pthread_mutex_lock(&s->rc.lock);
	c = s->rc.completed;
	pthread_mutex_unlock(&s->rc.lock);
	return c;
}

/* Free what a finished grace period covers; never waits. */
static void reclaim_done(struct sp_sync *s)
{
	if (s->rc.running && (s->n_retired || s->n_gc))
		free_retired(s, grace_completed(s));
}

/*
 * Wait for a grace period here and free everything retired so far: for
 * an allocation that finds only retired room, and for sp_sync_flush.
 * Everything retired is unlinked already (retire() runs after the
 * switch), so one grace period from now covers it all.
 */
static void flush_retired(struct sp_sync *s)
{
	if (!s->n_retired && !s->n_gc)
		return;
	/* Queued frontend writes are the switches that unlink it. */
	flush_writes(s);
	wait_for_datapath();
	free_retired(s, UINT64_MAX);
}

/* End of an apply: have a grace period started for what it retired. */
static void retire_commit(struct sp_sync *s)
{
	flush_writes(s); /* the switches first (flush_retired says why) */
	if (!s->gen_used)
		return;
	if (!s->rc.running) {
		flush_retired(s);
	} else {
		pthread_mutex_lock(&s->rc.lock);
		s->rc.requested = s->gen;
		pthread_cond_signal(&s->rc.cond);
		pthread_mutex_unlock(&s->rc.lock);
	}
	s->gen++;
	s->gen_used = false;
}

/* The reclaimer thread: one grace period per request, covering every
 * generation requested so far (requests that arrive during one wait are
 * served together by the next). */
static void *reclaimer_main(void *arg)
{
	struct sp_sync *s = arg;
	uint64_t want;

	pthread_mutex_lock(&s->rc.lock);
	for (;;) {
		while (!s->rc.stop && s->rc.requested <= s->rc.completed)
			pthread_cond_wait(&s->rc.cond, &s->rc.lock);
		if (s->rc.stop)
			break;
		want = s->rc.requested;
		pthread_mutex_unlock(&s->rc.lock);
		wait_for_datapath();
		pthread_mutex_lock(&s->rc.lock);
		s->rc.completed = want;
		if (s->rc.efd >= 0) {
			/* Wake the loop (sync.h). If the counter were full,
			 * it would be readable already. */
			uint64_t one = 1;
			ssize_t w = write(s->rc.efd, &one, sizeof(one));

			(void)w;
		}
	}
	pthread_mutex_unlock(&s->rc.lock);
	return NULL;
}

static void reclaimer_start(struct sp_sync *s)
{
	int err;

	pthread_mutex_init(&s->rc.lock, NULL);
	pthread_cond_init(&s->rc.cond, NULL);
	s->rc.inited = true;
	s->rc.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); /* optional: -1 is fine */
	err = pthread_create(&s->rc.thread, NULL, reclaimer_main, s);
	if (err) {
		pr_warn("start the map sync's reclaimer thread: %s; every change will wait for "
			"the datapath itself",
			strerror(err));
		return;
	}
	s->rc.running = true;
}

static void reclaimer_stop(struct sp_sync *s)
{
	if (!s->rc.running)
		return;
	pthread_mutex_lock(&s->rc.lock);
	s->rc.stop = true;
	pthread_cond_signal(&s->rc.cond);
	pthread_mutex_unlock(&s->rc.lock);
	pthread_join(s->rc.thread, NULL);
	s->rc.running = false;
}

/*
 * sp_svc_live[id]: set when an id is allocated (before any frontend names
 * it: the batch is staging, written first), cleared when it is released
 * (after a grace period). While it is set, the datapath serves the
 * established TCP flows of that id from conntrack without the Service
 * lookup (bpf/maps.h).
 */
static void live_set(struct sp_sync *s, uint32_t id, bool live)
{
	__u32 v = live;

	if (s->maps.fd_svc_live > 0)
		wbatch_add(s, &s->wb_live, &id, &v);
}

static int svc_id_alloc(struct sp_sync *s, uint32_t *out)
{
	uint32_t i;
	int pass;

	/* The second pass after waiting for what is only retired. */
	for (pass = 0; pass < 2; pass++) {
		for (i = s->svc_id_lo; i < s->maps.max_svc_ids; i++) {
			if (!s->svc_id_used[i]) {
				s->svc_id_used[i] = 1;
				s->svc_id_lo = i + 1;
				live_set(s, i, true);
				*out = i;
				return 0;
			}
		}
		s->svc_id_lo = s->maps.max_svc_ids;
		if (!s->n_retired)
			break;
		flush_retired(s);
	}
	return -ENOSPC;
}

static int be_id_alloc(struct sp_sync *s, uint32_t *out)
{
	uint32_t max = s->maps.max_backends, i, id;
	int pass;

	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < max; i++) {
			id = (s->be_cursor + i) % max + 1;
			if (!s->be_id_used[id]) {
				s->be_id_used[id] = 1;
				s->be_cursor = id % max;
				*out = id;
				return 0;
			}
		}
		if (!s->n_gc)
			break;
		flush_retired(s);
	}
	return -ENOSPC;
}

/* Zero a Service's per-CPU counters so a reused svc_id starts clean. */
static void svc_stats_reset(struct sp_sync *s, uint32_t svc_id)
{
	void *zero;

	if (!s->wb_stats.vsz) /* the number of CPUs is unknown */
		return;
	zero = calloc(1, s->wb_stats.vsz);
	if (!zero)
		return;
	wbatch_add(s, &s->wb_stats, &svc_id, zero);
	free(zero);
}

/* ---- backends -------------------------------------------------------------- */

/* Write backend b's value at id in sp_backends: a new one (BPF_ANY) is
 * queued (flush_writes), a changed one (BPF_EXIST) written at once, after
 * what is queued. 0 or -errno, logged. */
static int be_write(struct sp_sync *s, uint32_t id, const struct sp_mg_backend *b, uint64_t flag)
{
	struct sp_backend v;
	int err;

	memset(&v, 0, sizeof(v));
	to_key_addr(&b->ip, &v.addr);
	v.port = htons(b->port);
	v.family = b->ip.family;
	v.flags = b->flags;
	if (flag == BPF_ANY)
		return wbatch_add(s, &s->wb_backends, &id, &v);
	/* It may still be queued itself. */
	err = wbatch_write(&s->wb_backends, NULL);
	if (err && !s->write_err)
		s->write_err = err;
	if (!bpf_map_update_elem(s->maps.fd_backends, &id, &v, flag))
		return 0;
	err = -errno;
	pr_err("write backend %u to sp_backends: %s", id, strerror(-err));
	return err;
}

/* Remove backend id from sp_backends: an array, so its entry is zeroed
 * (family 0: no backend, to the datapath and to a recovery). */
static void be_clear(struct sp_sync *s, uint32_t id)
{
	struct sp_backend z;

	memset(&z, 0, sizeof(z));
	if (bpf_map_update_elem(s->maps.fd_backends, &id, &z, BPF_ANY))
		pr_warn("remove backend %u from sp_backends: %s", id, strerror(errno));
}

/* Take a reference on a backend, creating (and writing) it if new. */
static int be_get(struct sp_sync *s, const struct sp_mg_backend *b, uint32_t *id,
		  struct sp_sync_stats *st)
{
	struct app_be *be = find_be(s, &b->ip, b->port);
	int err;

	if (be) {
		/* The same endpoint, now seen on another node (or the node name
		 * learned): one atomic update of its value. */
		if (be->flags != b->flags) {
			err = be_write(s, be->id, b, BPF_EXIST);
			if (err)
				return err;
			be->flags = b->flags;
		}
		be->refs++;
		*id = be->id;
		return 0;
	}
	be = calloc(1, sizeof(*be));
	if (!be)
		return -ENOMEM;
	be->ip = b->ip;
	be->port = b->port;
	err = be_id_alloc(s, &be->id);
	if (err) {
		free(be);
		pr_err("backend table full (%u): raise --max-backends", s->maps.max_backends);
		return err;
	}
	be->flags = b->flags;
	err = be_write(s, be->id, b, BPF_ANY);
	if (err) {
		s->be_id_used[be->id] = 0;
		free(be);
		return err;
	}
	if (!tsearch(be, &s->bes, be_cmp)) {
		s->be_id_used[be->id] = 0;
		free(be);
		return -ENOMEM;
	}
	s->n_bes++;
	be->refs = 1;
	*id = be->id;
	if (st)
		st->be_added++;
	return 0;
}

/* Queue a backend for collection (at most once), tagged with the
 * generation its refs reached 0 in: a backend taken again and dropped
 * again later waits for that later grace period. */
static void gc_queue(struct sp_sync *s, struct app_be *be)
{
	be->gen = s->gen;
	s->gen_used = true;
	if (be->queued)
		return;
	if (s->n_gc == s->gc_cap) {
		size_t cap = s->gc_cap ? s->gc_cap * 2 : 64;
		struct app_be **n = realloc(s->gc, cap * sizeof(*n));

		if (!n)
			return; /* it stays in the map: a leak of one entry, not a fault */
		s->gc = n;
		s->gc_cap = cap;
	}
	be->queued = true;
	s->gc[s->n_gc++] = be;
}

static void be_put(struct sp_sync *s, const struct sp_ip *ip, uint16_t port)
{
	struct app_be *be = find_be(s, ip, port);

	if (be && be->refs && --be->refs == 0)
		gc_queue(s, be);
}

/* Delete the queued backends that nobody took again since they were
 * queued and whose generation is up to upto; the others wait. */
static void be_gc(struct sp_sync *s, uint64_t upto)
{
	size_t i, k = 0;

	for (i = 0; i < s->n_gc; i++) {
		struct app_be *be = s->gc[i];

		if (be->refs) {
			be->queued = false;
			continue;
		}
		if (be->gen > upto) {
			s->gc[k++] = be;
			continue;
		}
		be_clear(s, be->id);
		s->be_id_used[be->id] = 0;
		tdelete(be, &s->bes, be_cmp);
		s->n_bes--;
		free(be);
		if (s->cur_st)
			s->cur_st->be_deleted++;
	}
	s->n_gc = k;
}

/* ---- regions --------------------------------------------------------------- */

static uint32_t region_chunks(uint32_t n, uint32_t m)
{
	return (2 * n + m + SP_MAGLEV_CHUNK_WORDS - 1) / SP_MAGLEV_CHUNK_WORDS;
}

static int mg_be_cmp(const void *pa, const void *pb)
{
	const struct sp_mg_backend *a = pa, *b = pb;
	int c = sp_ip_cmp(&a->ip, &b->ip);

	return c ? c : (int)a->port - (int)b->port;
}

int sp_sync_check_capacity(const struct sp_sync_maps *maps, const struct sp_desired *d, char *err,
			   size_t errlen)
{
	struct sp_mg_backend *be;
	uint64_t n_fe = 0, chunks = 0, n_ranges = 0;
	size_t n_be = 0, distinct = 0, i, j;

	if (d->n > maps->max_svc_ids) {
		snprintf(err, errlen,
			 "%zu Service ports need as many Service ids, the maps hold %u: raise "
			 "--max-services",
			 d->n, maps->max_svc_ids);
		return -ENOSPC;
	}
	for (i = 0; i < d->n; i++) {
		const struct sp_want_svc *w = &d->svc[i];

		n_fe += w->n_fe;
		n_be += w->n_be;
		n_ranges += w->n_src_ranges;
		if (w->n_be)
			chunks += region_chunks(w->n_be, sp_maglev_pick_m(w->n_be, maps->fixed_m));
	}
	if (maps->max_frontends && n_fe > maps->max_frontends) {
		snprintf(err, errlen,
			 "%llu frontends (address:port/protocol), sp_services holds %u: raise "
			 "--max-services",
			 (unsigned long long)n_fe, maps->max_frontends);
		return -ENOSPC;
	}
	if (maps->max_src_ranges && n_ranges > maps->max_src_ranges) {
		snprintf(err, errlen,
			 "%llu loadBalancerSourceRanges entries (CIDR per Service port and "
			 "family), sp_src_ranges holds %u: raise --max-src-ranges",
			 (unsigned long long)n_ranges, maps->max_src_ranges);
		return -ENOSPC;
	}
	if (chunks > maps->maglev_chunks) {
		snprintf(err, errlen,
			 "the Maglev tables need %llu chunks, sp_maglev holds %u: raise "
			 "--maglev-chunks",
			 (unsigned long long)chunks, maps->maglev_chunks);
		return -ENOSPC;
	}
	/* A backend shared by Services takes one entry: count distinct ones. */
	if (n_be <= maps->max_backends)
		return 0;
	be = malloc(n_be * sizeof(*be));
	if (!be)
		return -ENOMEM;
	for (i = 0, n_be = 0; i < d->n; i++)
		for (j = 0; j < d->svc[i].n_be; j++)
			be[n_be++] = d->svc[i].be[j];
	qsort(be, n_be, sizeof(*be), mg_be_cmp);
	for (i = 0; i < n_be; i++)
		distinct += !i || mg_be_cmp(&be[i - 1], &be[i]);
	free(be);
	if (distinct > maps->max_backends) {
		snprintf(err, errlen,
			 "%zu distinct backends (endpoint address:port), sp_backends holds %u: raise "
			 "--max-backends",
			 distinct, maps->max_backends);
		return -ENOSPC;
	}
	return 0;
}

/* Queue ids and table for chunks [first, first + chunks). */
static int region_write(struct sp_sync *s, uint32_t first, uint32_t chunks, const uint32_t *ids,
			uint32_t n, const uint16_t *table, uint32_t m)
{
	struct sp_maglev_chunk *buf = calloc(chunks, sizeof(*buf));
	uint32_t i, key;
	int err = 0;

	if (!buf) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		uint16_t *w = &buf[0].w[0];

		w[2 * i] = ids[i] & 0xffff;
		w[2 * i + 1] = ids[i] >> 16;
	}
	for (i = 0; i < m; i++)
		(&buf[0].w[0])[2 * n + i] = table[i];
	for (i = 0; i < chunks && !err; i++) {
		key = first + i;
		err = wbatch_add(s, &s->wb_chunks, &key, &buf[i]);
	}
out:
	free(buf);
	return err;
}

/* ---- sessionAffinity membership -------------------------------------------- */

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Add (svc_id, id) for every id: before the switch, so a remembered
 * backend is never refused by the new table for want of its pair. */
static int members_add(struct sp_sync *s, uint32_t svc_id, const uint32_t *ids, size_t n)
{
	struct sp_svc_be_key k = { .svc_id = svc_id };
	__u8 one = 1;
	size_t i;

	if (s->maps.fd_svc_backends <= 0)
		return 0;
	for (i = 0; i < n; i++) {
		k.backend_id = ids[i];
		if (bpf_map_update_elem(s->maps.fd_svc_backends, &k, &one, BPF_ANY)) {
			pr_err("write sp_svc_backends: %s", strerror(errno));
			return -errno;
		}
	}
	return 0;
}

/* Remove (svc_id, id) for the old ids not in keep[0..n_keep) (after the
 * switch). keep may be NULL: remove them all. */
static void members_del(struct sp_sync *s, uint32_t svc_id, const uint32_t *old, size_t n_old,
			const uint32_t *keep, size_t n_keep)
{
	struct sp_svc_be_key k = { .svc_id = svc_id };
	uint32_t *sorted = NULL;
	size_t i;

	if (s->maps.fd_svc_backends <= 0 || !n_old)
		return;
	if (keep && n_keep) {
		sorted = malloc(n_keep * sizeof(*sorted));
		if (!sorted)
			return; /* stale pairs only keep a dead affinity alive longer */
		memcpy(sorted, keep, n_keep * sizeof(*sorted));
		qsort(sorted, n_keep, sizeof(*sorted), cmp_u32);
	}
	for (i = 0; i < n_old; i++) {
		if (sorted && bsearch(&old[i], sorted, n_keep, sizeof(*sorted), cmp_u32))
			continue;
		k.backend_id = old[i];
		bpf_map_delete_elem(s->maps.fd_svc_backends, &k);
	}
	free(sorted);
}

/* ---- loadBalancerSourceRanges --------------------------------------------- */

static int range_key_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct sp_src_range_key));
}

/* The sp_src_ranges keys of w's ranges under svc_id, sorted. 0 or -ENOMEM. */
static int want_range_keys(const struct sp_want_svc *w, uint32_t svc_id,
			   struct sp_src_range_key **out, size_t *n)
{
	struct sp_src_range_key *k;
	size_t i;

	*out = NULL;
	*n = 0;
	if (!w->n_src_ranges)
		return 0;
	k = calloc(w->n_src_ranges, sizeof(*k));
	if (!k)
		return -ENOMEM;
	for (i = 0; i < w->n_src_ranges; i++) {
		k[i].prefixlen = SP_SRC_RANGE_PREFIX_BITS + w->src_ranges[i].plen;
		k[i].svc_id = svc_id;
		k[i].family = w->src_ranges[i].ip.family;
		to_key_addr(&w->src_ranges[i].ip, &k[i].addr);
	}
	qsort(k, w->n_src_ranges, sizeof(*k), range_key_cmp);
	*out = k;
	*n = w->n_src_ranges;
	return 0;
}

static bool same_ranges(const struct app_svc *a, const struct sp_src_range_key *k, size_t n)
{
	return a->n_ranges == n && (!n || !memcmp(a->ranges, k, n * sizeof(*k)));
}

/* Delete the keys of del[] that are not in keep[] (sorted; may be NULL). */
static void ranges_del(struct sp_sync *s, const struct sp_src_range_key *del, size_t n_del,
		       const struct sp_src_range_key *keep, size_t n_keep)
{
	size_t i;

	for (i = 0; i < n_del; i++) {
		if (keep && bsearch(&del[i], keep, n_keep, sizeof(*keep), range_key_cmp))
			continue;
		if (bpf_map_delete_elem(s->maps.fd_src_ranges, &del[i]) && errno != ENOENT)
			pr_warn("delete svc_id %u range from sp_src_ranges: %s", del[i].svc_id,
				strerror(errno));
	}
}

/*
 * Write the keys of add[] that a does not have yet: before the switch, so
 * a frontend that gets SP_SVC_F_SRC_RANGES never finds its ranges
 * missing. While a Service's ranges change, the union of old and new is
 * open for the moment between this and ranges_del() after the switch;
 * the other order would drop allowed clients instead. On failure, what
 * was added is removed again. 0 or -errno.
 */
static int ranges_add(struct sp_sync *s, const struct app_svc *a, const char *id,
		      const struct sp_src_range_key *add, size_t n_add)
{
	__u8 one = 1;
	size_t i;
	int err;

	if (!n_add)
		return 0;
	if (s->maps.fd_src_ranges <= 0) {
		pr_err("%s: has loadBalancerSourceRanges but sp_src_ranges is not available", id);
		return -EOPNOTSUPP;
	}
	for (i = 0; i < n_add; i++) {
		if (a->ranges &&
		    bsearch(&add[i], a->ranges, a->n_ranges, sizeof(*add), range_key_cmp))
			continue;
		if (bpf_map_update_elem(s->maps.fd_src_ranges, &add[i], &one, BPF_ANY)) {
			err = -errno;
			pr_err("%s: write loadBalancerSourceRanges to sp_src_ranges: %s%s", id,
			       strerror(-err),
			       err == -ENOSPC || err == -E2BIG ?
				       " (table full: raise --max-src-ranges)" :
				       "");
			ranges_del(s, add, i, a->ranges, a->n_ranges);
			return err == -E2BIG ? -ENOSPC : err;
		}
	}
	return 0;
}

/* ---- Services -------------------------------------------------------------- */

static void app_svc_free(struct app_svc *a)
{
	if (!a)
		return;
	free(a->ranges);
	free(a->be);
	free(a->be_ids);
	free(a->fe);
	free(a->fe_flags);
	free(a->fe_old);
	free(a);
}

static int fe_key_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct sp_svc_key));
}

static void want_fe_key(const struct sp_want_svc *w, const struct sp_want_fe *f,
			struct sp_svc_key *k)
{
	memset(k, 0, sizeof(*k));
	to_key_addr(&f->ip, &k->addr);
	k->port = htons(f->port);
	k->proto = w->proto;
	k->family = w->family | ((f->flags & SP_SVC_F_CLUSTER_VIEW) ? SP_FAMILY_VIEW : 0);
}

static bool same_backends(const struct app_svc *a, const struct sp_want_svc *w, uint32_t m)
{
	size_t i;

	if (a->n != w->n_be || a->m != m || !a->chunks != !w->n_be)
		return false;
	for (i = 0; i < w->n_be; i++) {
		const struct sp_mg_backend *x = &a->be[i], *y = &w->be[i];

		if (sp_ip_cmp(&x->ip, &y->ip) || x->port != y->port ||
		    (x->weight > 0) != (y->weight > 0) || x->flags != y->flags)
			return false;
	}
	return true;
}

/* Same frontends with the same flags and affinity as written last time? */
static bool same_frontends(const struct app_svc *a, const struct sp_want_svc *w)
{
	struct sp_svc_key k;
	size_t i;

	if (a->n_fe != w->n_fe || a->affinity_timeout != w->affinity_timeout)
		return false;
	for (i = 0; i < w->n_fe; i++) {
		want_fe_key(w, &w->fe[i], &k);
		if (memcmp(&k, &a->fe[i], sizeof(k)) || a->fe_flags[i] != (w->fe[i].flags | w->flags))
			return false;
	}
	return true;
}

static int meta_write(struct sp_sync *s, const struct app_svc *a)
{
	struct sp_svc_meta meta;

	memset(&meta, 0, sizeof(meta));
	snprintf(meta.name, sizeof(meta.name), "%s", a->id);
	meta.m = a->m;
	meta.n = a->n;
	meta.region = a->region;
	meta.region_chunks = a->chunks;
	return wbatch_add(s, &s->wb_meta, &a->svc_id, &meta);
}

/*
 * The Maglev tables of a large apply (the first at start: 10,000 tables,
 * about half of its time on one CPU) are built by helper threads a little
 * ahead of the apply, which takes each table when it gets to its Service
 * (stage_table), or builds it itself if no helper has started it yet. A
 * table is a function of the backends and M alone, so who builds it makes
 * no difference. Helpers stay at most PRE_AHEAD tables ahead, which bounds
 * the memory of tables waiting to be taken. Small applies (a change) build
 * their few tables themselves.
 */
#define PRE_MIN 256 /* tables to build below which no helper is started */
#define PRE_MAX_THREADS 3
#define PRE_AHEAD 128
#define PRE_LEAD 4 /* nearer the apply than this, a helper skips ahead */

enum { PRE_FREE, PRE_CLAIMED, PRE_DONE };

struct pre {
	const struct sp_desired *d;
	uint32_t *m; /* per desired Service: its M if a helper may build its table, else 0 */
	uint16_t **table; /* built tables (NULL: the build failed; stage_table says why) */
	int *state; /* PRE_* (atomic) */
	size_t next; /* the next table for a helper (atomic) */
	size_t pos; /* where the apply is (atomic) */
	bool stop; /* (atomic) */
	size_t lead; /* PRE_LEAD, or 0 when the apply waits for every table (ahead_only) */
	size_t alloc_end; /* buffers allocated for the tables before this one */
	pthread_t th[PRE_MAX_THREADS];
	size_t n_th;
};

static void *pre_worker(void *arg)
{
	struct pre *p = arg;
	const struct timespec nap = { .tv_nsec = 50000 };
	size_t i, pos;
	int free_;

	for (;;) {
		i = __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED);
		if (i >= p->d->n)
			return NULL;
		/* Close to the apply, it would get there while we build (and
		 * wait for us): leave those to it, and go further ahead. */
		pos = __atomic_load_n(&p->pos, __ATOMIC_ACQUIRE);
		if (i < pos + p->lead) {
			size_t want = pos + p->lead, cur = i + 1;

			while (cur < want && !__atomic_compare_exchange_n(&p->next, &cur, want,
									  false, __ATOMIC_RELAXED,
									  __ATOMIC_RELAXED))
				;
			continue;
		}
		while (i >= __atomic_load_n(&p->pos, __ATOMIC_ACQUIRE) + PRE_AHEAD) {
			if (__atomic_load_n(&p->stop, __ATOMIC_RELAXED))
				return NULL;
			nanosleep(&nap, NULL);
		}
		if (__atomic_load_n(&p->stop, __ATOMIC_RELAXED))
			return NULL;
		free_ = PRE_FREE;
		if (!p->m[i] || !__atomic_compare_exchange_n(&p->state[i], &free_, PRE_CLAIMED,
							      false, __ATOMIC_ACQUIRE,
							      __ATOMIC_RELAXED))
			continue;
		/* Into the buffer the apply's thread allocated (pre_window): a
		 * helper that allocated would get a malloc arena of its own,
		 * which stays resident after the apply (0.4 MiB). */
		if (p->table[i] && sp_maglev_build(p->d->svc[i].be, p->d->svc[i].n_be, p->m[i],
						   p->table[i])) {
			free(p->table[i]);
			p->table[i] = NULL;
		}
		__atomic_store_n(&p->state[i], PRE_DONE, __ATOMIC_RELEASE);
	}
}

/*
 * The apply is at i: the buffers of the tables a helper may build now
 * (up to PRE_AHEAD ahead), allocated here, before the helpers are told.
 * A buffer that cannot be allocated is a table the apply builds itself.
 */
static void pre_window(struct sp_sync *s, size_t i)
{
	struct pre *p = s->pre;
	size_t k, end;

	if (!p)
		return;
	end = i + PRE_AHEAD < p->d->n ? i + PRE_AHEAD : p->d->n;
	for (k = p->alloc_end > i ? p->alloc_end : i; k < end; k++)
		if (p->m[k])
			p->table[k] = malloc(p->m[k] * sizeof(**p->table));
	p->alloc_end = end;
	__atomic_store_n(&p->pos, i, __ATOMIC_RELEASE);
}

static void pre_stop(struct sp_sync *s)
{
	struct pre *p = s->pre;
	size_t i;

	if (!p)
		return;
	__atomic_store_n(&p->stop, true, __ATOMIC_RELAXED);
	for (i = 0; i < p->n_th; i++)
		pthread_join(p->th[i], NULL);
	for (i = 0; i < p->d->n; i++)
		free(p->table[i]);
	free(p->m);
	free(p->table);
	free(p->state);
	free(p);
	s->pre = NULL;
}

/* Start the helpers for the tables of d that this apply builds, if many. */
static void pre_start(struct sp_sync *s, const struct sp_desired *d)
{
	struct pre *p;
	size_t i, need = 0, want;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (cpus < 2 || d->n < PRE_MIN)
		return;
	p = calloc(1, sizeof(*p));
	if (!p)
		return;
	p->d = d;
	p->lead = s->ahead_only ? 0 : PRE_LEAD;
	p->m = calloc(d->n, sizeof(*p->m));
	p->table = calloc(d->n, sizeof(*p->table));
	p->state = calloc(d->n, sizeof(*p->state));
	if (!p->m || !p->table || !p->state)
		goto none;
	/* The tables apply_svc will build: new Services, other backends. */
	for (i = 0; i < d->n; i++) {
		const struct sp_want_svc *w = &d->svc[i];
		uint32_t m = w->n_be ? sp_maglev_pick_m(w->n_be, s->maps.fixed_m) : 0;
		const struct app_svc *a;

		if (!m || w->n_be > 0xffff)
			continue;
		a = find_svc(s, w->id);
		if (a && same_backends(a, w, m))
			continue;
		p->m[i] = m;
		need++;
	}
	if (need < PRE_MIN)
		goto none;
	/* The apply's own thread builds too (what no helper has started). */
	want = (size_t)cpus - 1 < PRE_MAX_THREADS ? (size_t)cpus - 1 : PRE_MAX_THREADS;
	s->pre = p;
	pre_window(s, 0);
	for (p->n_th = 0; p->n_th < want; p->n_th++)
		if (pthread_create(&p->th[p->n_th], NULL, pre_worker, p))
			break;
	if (!p->n_th)
		pre_stop(s);
	return;
none:
	free(p->m);
	free(p->table);
	free(p->state);
	free(p);
}

/*
 * The table of the Service being applied if a helper built it (moved to
 * the caller), else NULL: the caller builds it (a helper will not start
 * it now).
 */
static uint16_t *pre_take(struct sp_sync *s, uint32_t m)
{
	struct pre *p = s->pre;
	size_t i = s->pre_i;
	int free_ = PRE_FREE;
	uint16_t *t;

	if (!p || i >= p->d->n || p->m[i] != m)
		return NULL;
	if (!s->ahead_only &&
	    __atomic_compare_exchange_n(&p->state[i], &free_, PRE_CLAIMED, false,
					__ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
		free(p->table[i]); /* no helper will use it now */
		p->table[i] = NULL;
		return NULL;
	}
	/* A helper is building it: build it here too rather than wait (the
	 * helper may not even be running on a busy machine); its copy is
	 * freed with the rest. */
	while (__atomic_load_n(&p->state[i], __ATOMIC_ACQUIRE) != PRE_DONE) {
		if (!s->ahead_only)
			return NULL;
		sched_yield();
	}
	t = p->table[i];
	p->table[i] = NULL;
	s->tables_ahead += t != NULL;
	return t;
}

/*
 * Build and write the new table of a Service into a fresh region; on
 * success region, chunks and the id array describe it. Nothing the
 * datapath reads changes here.
 */
static int stage_table(struct sp_sync *s, const struct sp_want_svc *w, uint32_t m,
		       uint32_t *ids, uint32_t *region, uint32_t *chunks)
{
	uint16_t *table = NULL;
	int err;

	*region = 0;
	*chunks = 0;
	if (w->n_be == 0)
		return 0;
	table = pre_take(s, m);
	if (table)
		goto built;
	table = malloc(m * sizeof(*table));
	if (!table)
		return -ENOMEM;
	err = sp_maglev_build(w->be, w->n_be, m, table);
	if (err) {
		pr_err("%s: build Maglev table (M=%u, N=%zu): %s", w->id, m, w->n_be,
		       strerror(-err));
		goto out;
	}
built:
	*chunks = region_chunks(w->n_be, m);
	err = region_alloc(s, *chunks, region);
	if (err) {
		pr_err("%s: no room for a %u-chunk Maglev region in sp_maglev (%u chunks): "
		       "raise --maglev-chunks",
		       w->id, *chunks, s->maps.maglev_chunks);
		*chunks = 0;
		goto out;
	}
	err = region_write(s, *region, *chunks, ids, w->n_be, table, m);
	if (err) {
		region_free(s, *region, *chunks);
		*chunks = 0;
	}
out:
	free(table);
	return err;
}

/* Apply one desired Service. Returns 0 or -errno (the Service keeps its
 * previous state on error). */
static int apply_svc(struct sp_sync *s, const struct sp_want_svc *w, struct sp_sync_stats *st)
{
	struct app_svc *a = find_svc(s, w->id);
	bool created = false, rebuild;
	uint32_t m = w->n_be ? sp_maglev_pick_m(w->n_be, s->maps.fixed_m) : 0;
	uint32_t *ids = NULL, region = 0, chunks = 0;
	struct sp_src_range_key *rk = NULL;
	struct sp_svc_key *fe = NULL;
	uint16_t *fe_flags = NULL;
	bool ranges_added = false;
	size_t i, j, n_rk = 0;
	int err = 0;

	if (w->n_be > 0xffff) {
		pr_err("%s: %zu backends: at most 65535 per Service port", w->id, w->n_be);
		return -E2BIG;
	}
	if (!a) {
		a = calloc(1, sizeof(*a));
		if (!a)
			return -ENOMEM;
		snprintf(a->id, sizeof(a->id), "%s", w->id);
		err = svc_id_alloc(s, &a->svc_id);
		if (err) {
			pr_err("%s: no free Service id (%u in use): raise --max-services", w->id,
			       s->maps.max_svc_ids);
			free(a);
			return err;
		}
		svc_stats_reset(s, a->svc_id);
		created = true;
	}
	/* Turning affinity on or off changes what the table needs beside it
	 * (sp_svc_backends), so it counts as a rebuild. */
	rebuild = created || !same_backends(a, w, m) ||
		  ((a->flags ^ w->flags) & SP_SVC_F_AFFINITY);
	err = want_range_keys(w, a->svc_id, &rk, &n_rk);
	if (err)
		goto fail;
	if (!rebuild && same_frontends(a, w) && same_ranges(a, rk, n_rk)) {
		/* The common case of a full resync: nothing to do, nothing to
		 * write. */
		free(rk);
		a->seen = 1;
		return 0;
	}

	if (rebuild) {
		ids = calloc(w->n_be ? w->n_be : 1, sizeof(*ids));
		if (!ids) {
			err = -ENOMEM;
			goto fail;
		}
		for (i = 0; i < w->n_be; i++) {
			err = be_get(s, &w->be[i], &ids[i], st);
			if (err) {
				while (i--)
					be_put(s, &w->be[i].ip, w->be[i].port);
				goto fail;
			}
		}
		err = stage_table(s, w, m, ids, &region, &chunks);
		if (!err && (w->flags & SP_SVC_F_AFFINITY))
			err = members_add(s, a->svc_id, ids, w->n_be);
		if (err) {
			region_free(s, region, chunks);
			for (i = 0; i < w->n_be; i++)
				be_put(s, &w->be[i].ip, w->be[i].port);
			goto fail;
		}
	}

	err = ranges_add(s, a, w->id, rk, n_rk);
	if (err)
		goto fail_staged;
	ranges_added = true;

	/* The switch: every frontend gets the new value in one update each. */
	fe = calloc(w->n_fe ? w->n_fe : 1, sizeof(*fe));
	fe_flags = calloc(w->n_fe ? w->n_fe : 1, sizeof(*fe_flags));
	if (!fe || !fe_flags) {
		err = -ENOMEM;
		goto fail_staged;
	}
	for (i = 0; i < w->n_fe; i++) {
		struct sp_svc v;
		bool known = false;

		want_fe_key(w, &w->fe[i], &fe[i]);
		fe_flags[i] = w->fe[i].flags | w->flags;
		for (j = 0; !rebuild && j < a->n_fe; j++) {
			if (!memcmp(&a->fe[j], &fe[i], sizeof(fe[i])) &&
			    a->fe_flags[j] == fe_flags[i] &&
			    a->affinity_timeout == w->affinity_timeout)
				known = true;
		}
		if (known)
			continue;
		memset(&v, 0, sizeof(v));
		v.svc_id = a->svc_id;
		v.region = rebuild ? region : a->region;
		v.m = rebuild ? m : a->m;
		v.n = rebuild ? w->n_be : a->n;
		v.flags = fe_flags[i];
		v.affinity_timeout = w->affinity_timeout;
		/* Queued behind what the table points at (flush_writes); a
		 * frontend that cannot be written is logged there and keeps
		 * its old value, and the others of the Service are switched:
		 * each points at a complete table. */
		dstf_add(s, &fe[i].addr);
		ret_forget(s, &fe[i]); /* a frontend wanted again */
		wbatch_add(s, &s->wb_fe, &fe[i], &v);
	}

	if (rebuild) {
		/* After the switch: release the old table and backend refs
		 * (both freed for real once the datapath is done with them). */
		if (a->flags & SP_SVC_F_AFFINITY) {
			flush_writes(s); /* the switch first */
			members_del(s, a->svc_id, a->be_ids, a->n,
				    (w->flags & SP_SVC_F_AFFINITY) ? ids : NULL, w->n_be);
		}
		region_retire(s, a->region, a->chunks);
		for (i = 0; i < a->n; i++)
			be_put(s, &a->be[i].ip, a->be[i].port);
		free(a->be);
		free(a->be_ids);
		a->be = calloc(w->n_be ? w->n_be : 1, sizeof(*a->be));
		if (a->be && w->n_be)
			memcpy(a->be, w->be, w->n_be * sizeof(*a->be));
		a->be_ids = ids;
		ids = NULL;
		a->n = w->n_be;
		a->m = m;
		a->region = region;
		a->chunks = chunks;
		if (st && !created)
			st->svc_rebuilt++;
		pr_debug("%s: %s, %zu backend(s), M=%u, region %u+%u", w->id,
			 created ? "added" : "backends changed", w->n_be, m, region, chunks);
	}
	/* Ranges it no longer has: once no frontend can be reading them. */
	if (a->n_ranges && !same_ranges(a, rk, n_rk))
		flush_writes(s);
	ranges_del(s, a->ranges, a->n_ranges, rk, n_rk);
	free(a->ranges);
	a->ranges = rk;
	a->n_ranges = n_rk;
	rk = NULL;
	ranges_added = false;
	/* Frontends this Service no longer has are deleted by the caller
	 * once all Services are applied (another may have taken them). */
	a->flags = w->flags;
	a->affinity_timeout = w->affinity_timeout;
	a->seen = 1;
	if (created) {
		if (!tsearch(a, &s->svcs, svc_cmp)) {
			err = -ENOMEM;
			goto fail_staged;
		}
		s->n_svcs++;
		if (st)
			st->svc_added++;
	}
	/* Keep the previous frontend list for the deletion pass. */
	free(a->fe_old);
	a->fe_old = a->fe;
	a->n_fe_old = a->n_fe;
	free(a->fe_flags);
	a->fe = fe;
	a->fe_flags = fe_flags;
	s->n_fe_applied = s->n_fe_applied - a->n_fe + w->n_fe;
	a->n_fe = w->n_fe;
	/* The metadata only describes the table: unchanged tables cost no
	 * syscall, which keeps an apply with one change O(changes) in writes. */
	return rebuild ? meta_write(s, a) : 0;

fail_staged:
	if (rebuild) {
		region_free(s, region, chunks);
		for (i = 0; i < w->n_be; i++)
			be_put(s, &w->be[i].ip, w->be[i].port);
	}
	if (ranges_added)
		ranges_del(s, rk, n_rk, a->ranges, a->n_ranges);
fail:
	free(rk);
	free(ids);
	free(fe);
	free(fe_flags);
	if (created) {
		ranges_del(s, a->ranges, a->n_ranges, NULL, 0);
		free(a->ranges);
		svc_id_release(s, a->svc_id);
		free(a);
	}
	return err;
}

/* Remove a Service that is no longer desired (its frontends are handled by
 * the deletion pass). */
static void remove_svc(struct sp_sync *s, struct app_svc *a, struct sp_sync_stats *st)
{
	size_t i;

	if (a->flags & SP_SVC_F_AFFINITY)
		members_del(s, a->svc_id, a->be_ids, a->n, NULL, 0);
	for (i = 0; i < a->n; i++)
		be_put(s, &a->be[i].ip, a->be[i].port);
	region_retire(s, a->region, a->chunks);
	/* Its frontends are gone already (the deletion pass runs first). */
	ranges_del(s, a->ranges, a->n_ranges, NULL, 0);
	if (bpf_map_delete_elem(s->maps.fd_svc_meta, &a->svc_id) && errno != ENOENT)
		pr_warn("%s: delete sp_svc_meta entry: %s", a->id, strerror(errno));
	/* A packet that read its frontend may still count into its stats
	 * or look up its ranges: the id is reused only after a grace period;
	 * and only after its retained frontends are gone, whose connections
	 * still count into it. */
	if (s->ret_refs[a->svc_id])
		s->ret_held[a->svc_id] = 1;
	else
		retire(s, a->svc_id, 0);
	pr_debug("%s: removed", a->id);
	if (st)
		st->svc_removed++;
}

/* Sorted array of every desired frontend key, for the deletion pass. */
static int desired_keys(const struct sp_desired *d, struct sp_svc_key **out, size_t *n)
{
	size_t i, j, k = 0, total = 0;
	struct sp_svc_key *keys;

	for (i = 0; i < d->n; i++)
		total += d->svc[i].n_fe;
	keys = calloc(total ? total : 1, sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	for (i = 0; i < d->n; i++)
		for (j = 0; j < d->svc[i].n_fe; j++)
			want_fe_key(&d->svc[i], &d->svc[i].fe[j], &keys[k++]);
	qsort(keys, total, sizeof(*keys), fe_key_cmp);
	*out = keys;
	*n = total;
	return 0;
}

/* ---- retained frontends ---------------------------------------------------
 *
 * A TCP frontend that no Service wants any more is not deleted but kept
 * with SP_SVC_F_GONE (include/svcplane.h) while established connections
 * run through it: kube-proxy deletes its rules but leaves the kernel's TCP
 * conntrack entries, so such a connection keeps working as long as its
 * endpoint answers, and so it does here. The daemon's conntrack collector
 * reports the retained frontends no live flow goes through
 * (sp_sync_retained_unused), which are then deleted. Their svc_id stays
 * allocated until the last of them goes (its counters still count those
 * connections). They take room in sp_services that new frontends may need:
 * at most an eighth of it, and an apply that could need the room gives up
 * the oldest first (their connections then end as they did before).
 * UDP frontends are deleted at once, as kube-proxy clears UDP entries.
 */
static int ret_find(const struct sp_sync *s, const struct sp_svc_key *k, size_t *at)
{
	size_t lo = 0, hi = s->n_ret;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = fe_key_cmp(&s->ret[mid].key, k);

		if (!c) {
			*at = mid;
			return 1;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*at = lo;
	return 0;
}

/* Add k (retained for svc_id) to the list. 0, -EEXIST or -ENOMEM. */
static int ret_insert(struct sp_sync *s, const struct sp_svc_key *k, uint32_t svc_id)
{
	size_t at;

	if (ret_find(s, k, &at))
		return -EEXIST;
	if (s->n_ret == s->ret_cap) {
		size_t cap = s->ret_cap ? 2 * s->ret_cap : 16;
		struct sp_retained_fe *r = realloc(s->ret, cap * sizeof(*r));

		if (!r)
			return -ENOMEM;
		s->ret = r;
		s->ret_cap = cap;
	}
	memmove(s->ret + at + 1, s->ret + at, (s->n_ret - at) * sizeof(*s->ret));
	s->ret[at].key = *k;
	s->ret[at].svc_id = svc_id;
	s->ret[at].seq = ++s->ret_seq;
	s->n_ret++;
	s->ret_refs[svc_id]++;
	s->ret_changes++;
	return 0;
}

/* Drop entry at from the list, deleting its key from sp_services if
 * del (not when a new value replaces it); the svc_id of a gone Service
 * is released with its last one. */
static void ret_remove_at(struct sp_sync *s, size_t at, bool del)
{
	uint32_t id = s->ret[at].svc_id;

	if (del) {
		if (bpf_map_delete_elem(s->maps.fd_services, &s->ret[at].key) == 0)
			s->dstf_stale++;
		else if (errno != ENOENT)
			pr_warn("delete a retained frontend from sp_services: %s", strerror(errno));
	}
	memmove(s->ret + at, s->ret + at + 1, (s->n_ret - at - 1) * sizeof(*s->ret));
	s->n_ret--;
	s->ret_changes++;
	if (--s->ret_refs[id] == 0 && s->ret_held[id]) {
		s->ret_held[id] = 0;
		retire(s, id, 0);
	}
}

/* k is being written for a Service: no longer retained. */
static void ret_forget(struct sp_sync *s, const struct sp_svc_key *k)
{
	size_t at;

	if (s->n_ret && ret_find(s, k, &at))
		ret_remove_at(s, at, false);
}

static size_t ret_budget(const struct sp_sync *s)
{
	return s->maps.max_frontends ? s->maps.max_frontends / 8 : SIZE_MAX;
}

/* Give up the oldest retained frontends until `need` frontends, the
 * orphans and the retained ones fit in sp_services. */
static void ret_make_room(struct sp_sync *s, size_t need)
{
	size_t given = 0;

	while (s->n_ret && s->maps.max_frontends &&
	       need + s->n_orphans + s->n_ret > s->maps.max_frontends) {
		size_t i, old = 0;

		for (i = 1; i < s->n_ret; i++)
			if (s->ret[i].seq < s->ret[old].seq)
				old = i;
		ret_remove_at(s, old, true);
		given++;
	}
	if (given)
		pr_warn("sp_services needs the room of %zu frontend(s) kept for deleted Services' "
			"established connections: those connections end (raise --max-services)",
			given);
}

/*
 * Keep k, which no Service wants any more, as a retained frontend rather
 * than delete it: a TCP frontend (not a cluster-view key) while there is
 * room. True if kept.
 */
static bool fe_retain(struct sp_sync *s, const struct sp_svc_key *k, struct sp_sync_stats *st)
{
	struct sp_svc v, gone;
	size_t at;

	if (!s->retain || k->proto != IPPROTO_TCP || (k->family & SP_FAMILY_VIEW))
		return false;
	if (s->n_ret && ret_find(s, k, &at))
		return true; /* retained already (found so at start) */
	if (bpf_map_lookup_elem(s->maps.fd_services, k, &v) || v.svc_id >= s->maps.max_svc_ids)
		return false;
	if (s->n_ret >= ret_budget(s) ||
	    (s->maps.max_frontends &&
	     s->n_fe_applied + s->n_orphans + s->n_ret + 1 > s->maps.max_frontends)) {
		if (!s->ret_full_warned)
			pr_warn("no room to keep a deleted Service's frontend for its established "
				"connections (%zu kept): they end (raise --max-services)",
				s->n_ret);
		s->ret_full_warned = true;
		return false;
	}
	memset(&gone, 0, sizeof(gone));
	gone.svc_id = v.svc_id;
	gone.flags = SP_SVC_F_GONE | (v.flags & (SP_SVC_F_NODEPORT | SP_SVC_F_EXTERNAL));
	if (ret_insert(s, k, v.svc_id))
		return false;
	if (bpf_map_update_elem(s->maps.fd_services, k, &gone, BPF_EXIST)) {
		pr_warn("mark a deleted Service's frontend in sp_services: %s", strerror(errno));
		ret_find(s, k, &at);
		ret_remove_at(s, at, false);
		return false;
	}
	/* An orphan found at start has no Service holding its id. */
	if (!s->svc_id_used[v.svc_id]) {
		s->svc_id_used[v.svc_id] = 1;
		s->ret_held[v.svc_id] = 1;
		live_set(s, v.svc_id, true);
	}
	if (st)
		st->fe_retained++;
	return true;
}

void sp_sync_set_retain(struct sp_sync *s, bool on)
{
	s->retain = on;
}

size_t sp_sync_n_retained(const struct sp_sync *s)
{
	return s->n_ret;
}

uint64_t sp_sync_retained_changes(const struct sp_sync *s)
{
	return s->ret_changes;
}

int sp_sync_retained(const struct sp_sync *s, struct sp_retained_fe **out, size_t *n)
{
	struct sp_retained_fe *r = calloc(s->n_ret ? s->n_ret : 1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	memcpy(r, s->ret, s->n_ret * sizeof(*r));
	*out = r;
	*n = s->n_ret;
	return 0;
}

size_t sp_sync_retained_unused(struct sp_sync *s, const struct sp_retained_fe *unused, size_t n)
{
	size_t i, at, done = 0;

	for (i = 0; i < n; i++) {
		if (!ret_find(s, &unused[i].key, &at) || s->ret[at].seq != unused[i].seq)
			continue; /* replaced, or retained again since */
		ret_remove_at(s, at, true);
		done++;
	}
	if (done) {
		/* The released svc_ids' grace period, and the filter. */
		retire_commit(s);
		dstf_settle(s);
		dstf_unmap(s);
	}
	return done;
}

static void fe_delete_unless(struct sp_sync *s, const struct sp_svc_key *k,
			     const struct sp_svc_key *keep, size_t n_keep, struct sp_sync_stats *st)
{
	if (bsearch(k, keep, n_keep, sizeof(*k), fe_key_cmp))
		return;
	if (fe_retain(s, k, st))
		return;
	if (bpf_map_delete_elem(s->maps.fd_services, k) == 0) {
		s->dstf_stale++;
		if (st)
			st->fe_deleted++;
	} else if (errno != ENOENT) {
		pr_warn("delete frontend from sp_services: %s", strerror(errno));
	}
}

/* twalk has no user argument: collect the tree into an array first. */
static struct app_svc **walk_list;
static size_t walk_n;

static void collect_walk(const void *node, VISIT which, int depth)
{
	(void)depth;
	if (which == postorder || which == leaf)
		walk_list[walk_n++] = *(struct app_svc *const *)node;
}

static struct app_svc **all_svcs(struct sp_sync *s, size_t *n)
{
	walk_list = calloc(s->n_svcs ? s->n_svcs : 1, sizeof(*walk_list));
	walk_n = 0;
	if (walk_list && s->svcs)
		twalk(s->svcs, collect_walk);
	*n = walk_n;
	return walk_list;
}

/*
 * After the first apply: delete the sp_src_ranges entries found at start
 * that no Service owns now. Not before: until then an orphan frontend may
 * still point at them. A Service that took the same svc_id since may
 * have written the same key: that one stays.
 */
static void range_orphans_delete(struct sp_sync *s)
{
	struct app_svc **list, **by_id;
	const struct app_svc *a;
	size_t i, n;

	if (!s->n_range_orphans)
		return;
	by_id = calloc(s->maps.max_svc_ids, sizeof(*by_id));
	list = all_svcs(s, &n);
	for (i = 0; by_id && list && i < n; i++)
		by_id[list[i]->svc_id] = list[i];
	for (i = 0; by_id && list && i < s->n_range_orphans; i++) {
		const struct sp_src_range_key *k = &s->range_orphans[i];

		a = k->svc_id < s->maps.max_svc_ids ? by_id[k->svc_id] : NULL;
		if (a && a->ranges &&
		    bsearch(k, a->ranges, a->n_ranges, sizeof(*k), range_key_cmp))
			continue;
		bpf_map_delete_elem(s->maps.fd_src_ranges, k);
	}
	free(list);
	free(by_id);
	/* Out of memory: they stay until the next restart; harmless (nothing
	 * is flagged to read them). */
	free(s->range_orphans);
	s->range_orphans = NULL;
	s->n_range_orphans = 0;
}

/*
 * The deletion pass for one applied Service: the frontends it gave up in
 * this apply, and the Service itself (frontends, table, entry) unless
 * wanted. Frontends in keep (wanted by some Service) stay.
 */
static void settle_svc(struct sp_sync *s, struct app_svc *a, bool wanted,
		       const struct sp_svc_key *keep, size_t n_keep, struct sp_sync_stats *st)
{
	size_t j;

	for (j = 0; j < a->n_fe_old; j++)
		fe_delete_unless(s, &a->fe_old[j], keep, n_keep, st);
	free(a->fe_old);
	a->fe_old = NULL;
	a->n_fe_old = 0;
	if (wanted)
		return;
	for (j = 0; j < a->n_fe; j++)
		fe_delete_unless(s, &a->fe[j], keep, n_keep, st);
	s->n_fe_applied -= a->n_fe;
	remove_svc(s, a, st);
	tdelete(a, &s->svcs, svc_cmp);
	s->n_svcs--;
	app_svc_free(a);
}

void sp_sync_reclaim(struct sp_sync *s, struct sp_sync_stats *st)
{
	s->cur_st = st;
	reclaim_done(s);
	s->cur_st = NULL;
}

int sp_sync_reclaim_fd(const struct sp_sync *s)
{
	return s->rc.running ? s->rc.efd : -1;
}

void sp_sync_flush(struct sp_sync *s, struct sp_sync_stats *st)
{
	s->cur_st = st;
	flush_retired(s);
	s->cur_st = NULL;
}

/* bsearch over sp_want_svc by id: the key is the id string. */
static int want_id_key_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct sp_want_svc *)elem)->id);
}

/* Start an apply: its statistics, no write error yet, and what a grace
 * period has covered since the last one freed. */
static void apply_begin(struct sp_sync *s, struct sp_sync_stats *st)
{
	if (st)
		memset(st, 0, sizeof(*st));
	s->cur_st = st;
	s->write_err = 0;
	reclaim_done(s);
}

/*
 * End an apply whose own result is err, also after a failure (what was
 * retired must be freed some day): a grace period for what it retired, a
 * failed staging or metadata write as its result if it had none (a full
 * map as -ENOSPC), the batches' buffers back.
 */
static int apply_end(struct sp_sync *s, int err)
{
	retire_commit(s);
	dstf_settle(s);
	dstf_unmap(s);
	if (!err && s->write_err)
		err = s->write_err == -E2BIG ? -ENOSPC : s->write_err;
	s->cur_st = NULL;
	free_batches(s, true);
	return err;
}

int sp_sync_apply(struct sp_sync *s, const struct sp_desired *d, struct sp_sync_stats *st)
{
	struct sp_svc_key *keep = NULL;
	struct app_svc **list;
	size_t i, n_keep = 0, n;
	int err, ret = 0;

	apply_begin(s, st);
	err = desired_keys(d, &keep, &n_keep);
	if (err)
		goto out;
	ret_make_room(s, n_keep);
	/* Found at start, with nobody to tell when they are unused. */
	while (!s->retain && s->n_ret)
		ret_remove_at(s, s->n_ret - 1, true);
	list = all_svcs(s, &n);
	if (!list) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++)
		list[i]->seen = 0;
	free(list);

	pre_start(s, d);
	for (i = 0; i < d->n; i++) {
		pre_window(s, i);
		s->pre_i = i;
		err = apply_svc(s, &d->svc[i], st);
		if (err) {
			struct app_svc *a = find_svc(s, d->svc[i].id);

			if (a)
				a->seen = 1; /* keep its last good state */
			if (st)
				st->errors++;
			ret = ret ?: (err == -ENOSPC || err == -E2BIG ? -ENOSPC : err);
		}
	}

	pre_stop(s);
	/* Deletion pass: frontends nobody wants, then Services nobody wants;
	 * after the switches (a frontend may have moved to another Service). */
	flush_writes(s);
	list = all_svcs(s, &n);
	if (!list) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		struct app_svc *a = list[i];

		settle_svc(s, a, a->seen, keep, n_keep, st);
	}
	free(list);
	for (i = 0; i < s->n_orphans; i++)
		fe_delete_unless(s, &s->orphans[i], keep, n_keep, st);
	free(s->orphans);
	s->orphans = NULL;
	s->n_orphans = 0;
	range_orphans_delete(s);
	s->full_done = true;
	err = ret;
out:
	free(keep);
	return apply_end(s, err);
}

/*
 * Apply the listed Services only (the caller knows what changed): the rest
 * is neither read nor written, so one change costs O(that change) whatever
 * the number of Services. Frontends a listed Service gives up are deleted
 * unless another listed Service takes them: an unlisted Service cannot
 * have (resolve gives each frontend one owner, and an unlisted one did not
 * change). Before the first full apply, the orphans found at start need
 * the full pass: that is done instead.
 */
int sp_sync_apply_ids(struct sp_sync *s, const struct sp_desired *d, const char *const *ids,
		      size_t n_ids, struct sp_sync_stats *st)
{
	struct sp_desired part = { 0 };
	struct sp_svc_key *keep = NULL;
	size_t i, n_keep = 0;
	int err, ret = 0;

	if (!s->full_done)
		return sp_sync_apply(s, d, st);
	apply_begin(s, st);
	/* The wanted entries of the listed ids (d is sorted by id). */
	part.svc = calloc(n_ids ? n_ids : 1, sizeof(*part.svc));
	if (!part.svc)
		return apply_end(s, -ENOMEM);
	for (i = 0; i < n_ids; i++) {
		const struct sp_want_svc *w = bsearch(ids[i], d->svc, d->n, sizeof(*d->svc),
						      want_id_key_cmp);

		if (w)
			part.svc[part.n++] = *w; /* shallow: only read */
	}
	err = desired_keys(&part, &keep, &n_keep);
	if (err) {
		free(part.svc);
		return apply_end(s, err);
	}
	ret_make_room(s, s->n_fe_applied + n_keep); /* at most this many */
	for (i = 0; i < part.n; i++) {
		err = apply_svc(s, &part.svc[i], st);
		if (err) {
			if (st)
				st->errors++;
			ret = ret ?: (err == -ENOSPC || err == -E2BIG ? -ENOSPC : err);
		}
	}
	flush_writes(s); /* the switches, before the deletions */
	for (i = 0; i < n_ids; i++) {
		struct app_svc *a = find_svc(s, ids[i]);
		bool wanted = bsearch(ids[i], part.svc, part.n, sizeof(*part.svc),
				      want_id_key_cmp) != NULL;

		if (!a)
			continue;
		settle_svc(s, a, wanted, keep, n_keep, st);
	}
	free(keep);
	free(part.svc);
	return apply_end(s, ret);
}

int sp_sync_node_addrs(struct sp_sync *s, const struct sp_ip *a, size_t n)
{
	struct sp_node_addr_key *keys = calloc(n ? n : 1, sizeof(*keys));
	__u8 one = 1;
	size_t i, j;
	int err = 0;

	if (!keys)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		to_key_addr(&a[i], &keys[i].addr);
		keys[i].family = a[i].family;
		dstf_add(s, &keys[i].addr);
		if (bpf_map_update_elem(s->maps.fd_node_addrs, &keys[i], &one, BPF_ANY)) {
			err = -errno;
			pr_err("write node address to sp_node_addrs: %s", strerror(-err));
		}
	}
	for (i = 0; i < s->n_node_addrs; i++) {
		bool keep = false;

		for (j = 0; j < n; j++)
			keep |= !memcmp(&s->node_addrs[i], &keys[j], sizeof(keys[j]));
		if (!keep) {
			bpf_map_delete_elem(s->maps.fd_node_addrs, &s->node_addrs[i]);
			s->dstf_stale++;
		}
	}
	free(s->node_addrs);
	s->node_addrs = keys;
	s->n_node_addrs = n;
	dstf_settle(s);
	dstf_unmap(s);
	if (!err && s->write_err) {
		err = s->write_err;
		s->write_err = 0;
	}
	return err;
}

/* ---- sp_dst_filter ------------------------------------------------------- */

static void dstf_set(struct sp_dst_filter *f, const struct sp_addr *a, bool atomic)
{
	uint32_t b;

	/* The NodePort wildcard's address (zero) is no destination: its
	 * packets go to node addresses, which have bits of their own. */
	if (!(a->addr[0] | a->addr[1] | a->addr[2] | a->addr[3]))
		return;
	b = sp_dstf_bit(a);
	if (atomic)
		__atomic_fetch_or(&f->w[SP_DSTF_WORD(b)], SP_DSTF_MASK(b), __ATOMIC_SEQ_CST);
	else
		f->w[SP_DSTF_WORD(b)] |= SP_DSTF_MASK(b);
}

/* The filter mapped (s->dstf), or false with the error logged and kept
 * as the apply's (a frontend written without its bit would take no
 * traffic). */
static bool dstf_map(struct sp_sync *s)
{
	void *p;

	if (s->dstf)
		return true;
	if (s->maps.fd_dst_filter <= 0)
		return false;
	p = mmap(NULL, sizeof(struct sp_dst_filter), PROT_READ | PROT_WRITE, MAP_SHARED,
		 s->maps.fd_dst_filter, 0);
	if (p == MAP_FAILED) {
		int err = -errno;

		pr_err("map sp_dst_filter: %s", strerror(-err));
		if (!s->write_err)
			s->write_err = err;
		return false;
	}
	s->dstf = p;
	return true;
}

static void dstf_unmap(struct sp_sync *s)
{
	if (s->dstf)
		munmap(s->dstf, sizeof(*s->dstf));
	s->dstf = NULL;
}

/* Before a frontend or node address with address a is written. */
static void dstf_add(struct sp_sync *s, const struct sp_addr *a)
{
	if (dstf_map(s))
		dstf_set(s->dstf, a, true);
}

/*
 * Recompute the bitmap from what is written (every Service's frontends,
 * the orphans found at start, the node addresses) and store the words that
 * changed. Bits only go: a bit still wanted is in the old word and in the
 * new one, and each 64-bit store is atomic, so the datapath never sees a
 * wanted bit clear. Only when enough was deleted for it to pay: O(Services)
 * once per Services / 8 deletions.
 */
static void dstf_settle(struct sp_sync *s)
{
	struct sp_dst_filter *nf;
	struct app_svc **list;
	size_t n, i, j;

	if (!s->dstf_stale || s->dstf_stale * 8 < s->n_svcs || !dstf_map(s))
		return;
	nf = calloc(1, sizeof(*nf));
	list = nf ? all_svcs(s, &n) : NULL;
	if (!list) {
		free(nf); /* kept stale: false positives only */
		return;
	}
	for (i = 0; i < n; i++)
		for (j = 0; j < list[i]->n_fe; j++)
			dstf_set(nf, &list[i]->fe[j].addr, false);
	free(list);
	for (i = 0; i < s->n_orphans; i++)
		dstf_set(nf, &s->orphans[i].addr, false);
	for (i = 0; i < s->n_ret; i++)
		dstf_set(nf, &s->ret[i].key.addr, false);
	for (i = 0; i < s->n_node_addrs; i++)
		dstf_set(nf, &s->node_addrs[i].addr, false);
	for (i = 0; i < SP_DSTF_WORDS; i++)
		if (s->dstf->w[i] != nf->w[i])
			__atomic_store_n(&s->dstf->w[i], nf->w[i], __ATOMIC_RELEASE);
	free(nf);
	s->dstf_stale = 0;
}

int sp_sync_dst_filter_add(int fd, const struct sp_addr *a)
{
	struct sp_dst_filter *f = malloc(sizeof(*f));
	__u32 zero = 0;
	int err = 0;

	if (!f)
		return -ENOMEM;
	if (bpf_map_lookup_elem(fd, &zero, f)) {
		err = -errno;
	} else {
		dstf_set(f, a, false);
		if (bpf_map_update_elem(fd, &zero, f, BPF_ANY))
			err = -errno;
	}
	free(f);
	return err;
}

bool sp_sync_dst_filter_has(const struct sp_sync *s, const struct sp_addr *a)
{
	struct sp_dst_filter *f = malloc(sizeof(*f));
	uint32_t b = sp_dstf_bit(a);
	__u32 zero = 0;
	bool set;

	set = f && s->maps.fd_dst_filter > 0 &&
	      !bpf_map_lookup_elem(s->maps.fd_dst_filter, &zero, f) &&
	      (f->w[SP_DSTF_WORD(b)] & SP_DSTF_MASK(b));
	free(f);
	return set;
}

/* ---- recovery from pinned maps ------------------------------------------ */

static int read_word(struct sp_sync *s, uint32_t region, uint32_t w, uint16_t *out)
{
	struct sp_maglev_chunk c;
	uint32_t key = region + w / SP_MAGLEV_CHUNK_WORDS;

	if (bpf_map_lookup_elem(s->maps.fd_maglev, &key, &c))
		return -errno;
	*out = c.w[w % SP_MAGLEV_CHUNK_WORDS];
	return 0;
}

/* Rebuild one Service from its sp_svc_meta entry and its region. */
static int recover_svc(struct sp_sync *s, uint32_t svc_id, const struct sp_svc_meta *meta)
{
	struct app_svc *a = calloc(1, sizeof(*a));
	uint32_t *count = NULL, i;
	int err = -ENOMEM;

	if (!a)
		return -ENOMEM;
	snprintf(a->id, sizeof(a->id), "%.*s", (int)sizeof(meta->name), meta->name);
	a->svc_id = svc_id;
	a->n = meta->n;
	a->m = meta->m;
	a->region = meta->region;
	a->chunks = meta->region_chunks;
	a->be = calloc(a->n ? a->n : 1, sizeof(*a->be));
	a->be_ids = calloc(a->n ? a->n : 1, sizeof(*a->be_ids));
	count = calloc(a->n ? a->n : 1, sizeof(*count));
	if (!a->be || !a->be_ids || !count)
		goto bad;
	err = -EINVAL;
	if (svc_id >= s->maps.max_svc_ids || (a->n && (!a->m || !a->chunks)) ||
	    a->region + a->chunks > s->maps.maglev_chunks ||
	    a->chunks < (a->n ? region_chunks(a->n, a->m) : 0))
		goto bad;
	for (i = 0; i < a->n; i++) {
		uint16_t lo = 0, hi = 0;
		struct sp_backend b;

		if (read_word(s, a->region, 2 * i, &lo) || read_word(s, a->region, 2 * i + 1, &hi))
			goto bad;
		a->be_ids[i] = lo | (uint32_t)hi << 16;
		if (bpf_map_lookup_elem(s->maps.fd_backends, &a->be_ids[i], &b) || !b.family)
			goto bad;
		from_key_addr(&b.addr, b.family, &a->be[i].ip);
		a->be[i].port = ntohs(b.port);
		a->be[i].flags = b.flags;
	}
	for (i = 0; i < a->m; i++) {
		uint16_t e = 0;

		if (read_word(s, a->region, 2 * a->n + i, &e) || e >= a->n)
			goto bad;
		count[e]++;
	}
	/* Weights are not stored: a backend with table entries had weight > 0,
	 * which is all the comparison with the desired state looks at. */
	for (i = 0; i < a->n; i++)
		a->be[i].weight = count[i] ? 1 : 0;
	free(count);
	if (!tsearch(a, &s->svcs, svc_cmp)) {
		app_svc_free(a);
		return -ENOMEM;
	}
	s->n_svcs++;
	s->svc_id_used[svc_id] = 1;
	chunks_mark(s, a->region, a->chunks, true);
	a->seen = 1;
	return 0;
bad:
	pr_warn("pinned state of %s (svc_id %u) is inconsistent: it will be rebuilt", a->id,
		svc_id);
	free(count);
	app_svc_free(a);
	return err;
}

/* Attach a frontend found in sp_services to its Service. */
static int recover_fe(struct sp_sync *s, const struct sp_svc_key *k, const struct sp_svc *v,
		      struct app_svc **by_id)
{
	struct app_svc *a = v->svc_id < s->maps.max_svc_ids ? by_id[v->svc_id] : NULL;
	struct sp_svc_key *fe;
	uint16_t *fl;

	/* Retained by the previous run: still, until the collector says. */
	if ((v->flags & SP_SVC_F_GONE) && v->svc_id < s->maps.max_svc_ids &&
	    ret_insert(s, k, v->svc_id) == 0) {
		if (!a) {
			s->svc_id_used[v->svc_id] = 1;
			s->ret_held[v->svc_id] = 1;
		}
		return 0;
	}
	if (!a || a->region != v->region || a->m != v->m || a->n != v->n) {
		/* Unknown or stale: deleted after the first apply unless wanted. */
		struct sp_svc_key *o = realloc(s->orphans, (s->n_orphans + 1) * sizeof(*o));

		if (!o)
			return -ENOMEM;
		s->orphans = o;
		s->orphans[s->n_orphans++] = *k;
		return 0;
	}
	fe = realloc(a->fe, (a->n_fe + 1) * sizeof(*fe));
	if (!fe)
		return -ENOMEM;
	a->fe = fe;
	fl = realloc(a->fe_flags, (a->n_fe + 1) * sizeof(*fl));
	if (!fl)
		return -ENOMEM;
	a->fe_flags = fl;
	a->fe[a->n_fe] = *k;
	a->fe_flags[a->n_fe] = v->flags;
	s->n_fe_applied++;
	a->affinity_timeout = v->affinity_timeout;
	/* Service-wide flags live in every frontend's value. */
	a->flags = v->flags & (SP_SVC_F_AFFINITY | SP_SVC_F_DROP_EMPTY);
	a->n_fe++;
	return 0;
}

/* After recovery: backends no recovered Service lists go on the gc list. */
static struct sp_sync *qu_sync;

static void qu_walk(const void *node, VISIT which, int depth)
{
	struct app_be *be = *(struct app_be *const *)node;

	(void)depth;
	if ((which == postorder || which == leaf) && be->refs == 0)
		gc_queue(qu_sync, be);
}

static void queue_unreferenced(struct sp_sync *s)
{
	qu_sync = s;
	twalk(s->bes, qu_walk);
	qu_sync = NULL;
}

/* sp_src_ranges entries to their Services (sorted), or to the orphans. */
static int recover_ranges(struct sp_sync *s, struct app_svc **by_id)
{
	struct sp_src_range_key k, next, *pk = NULL, *v;
	struct app_svc **list;
	struct app_svc *a;
	size_t i, n;

	if (s->maps.fd_src_ranges <= 0)
		return 0;
	while (bpf_map_get_next_key(s->maps.fd_src_ranges, pk, &next) == 0) {
		k = next;
		pk = &k;
		a = k.svc_id < s->maps.max_svc_ids ? by_id[k.svc_id] : NULL;
		if (a) {
			v = realloc(a->ranges, (a->n_ranges + 1) * sizeof(*v));
			if (!v)
				return -ENOMEM;
			a->ranges = v;
			a->ranges[a->n_ranges++] = k;
		} else {
			v = realloc(s->range_orphans, (s->n_range_orphans + 1) * sizeof(*v));
			if (!v)
				return -ENOMEM;
			s->range_orphans = v;
			s->range_orphans[s->n_range_orphans++] = k;
		}
	}
	list = all_svcs(s, &n);
	if (!list)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		if (list[i]->n_ranges)
			qsort(list[i]->ranges, list[i]->n_ranges, sizeof(*list[i]->ranges),
			      range_key_cmp);
	free(list);
	return 0;
}

/*
 * The node addresses a previous run left in the pinned map, as if this
 * process had written them: the first sp_sync_node_addrs() then deletes
 * those no longer wanted (an address the node lost, or one a new
 * --nodeport-addresses excludes), which would otherwise go on taking
 * NodePort traffic.
 */
static int recover_node_addrs(struct sp_sync *s)
{
	struct sp_node_addr_key *keys = calloc(SP_MAX_NODE_ADDRS, sizeof(*keys));
	size_t n = 0;

	if (!keys)
		return -ENOMEM;
	while (n < SP_MAX_NODE_ADDRS &&
	       !bpf_map_get_next_key(s->maps.fd_node_addrs, n ? &keys[n - 1] : NULL, &keys[n])) {
		dstf_add(s, &keys[n].addr);
		n++;
	}
	s->node_addrs = keys;
	s->n_node_addrs = n;
	return 0;
}

/* One entry of sp_backends found at start: taken into the tree, or
 * removed if it holds nothing usable. 0 or -ENOMEM. */
static int recover_backend(struct sp_sync *s, __u32 id, const struct sp_backend *b)
{
	struct app_be *be;

	if (!b->family || id == 0 || id > s->maps.max_backends)
		return 0;
	be = calloc(1, sizeof(*be));
	if (!be)
		return -ENOMEM;
	from_key_addr(&b->addr, b->family, &be->ip);
	be->port = ntohs(b->port);
	be->flags = b->flags;
	be->id = id;
	if (find_be(s, &be->ip, be->port) || !tsearch(be, &s->bes, be_cmp)) {
		/* A duplicate identity under two ids: keep the first; this one
		 * is removed now (nothing new can pick it). */
		be_clear(s, id);
		free(be);
		return 0;
	}
	s->be_id_used[id] = 1;
	s->n_bes++;
	return 0;
}

/*
 * The backends in sp_backends, an array of --max-backends + 1 entries
 * whatever is in use (262,145 by default), in which family 0 holds none,
 * read through a mapping (2 ms; 26-31 ms in bpf(2) batches). The array is
 * always mmapable: every version that made it an array made it so.
 */
static int recover_backends(struct sp_sync *s)
{
	size_t stride = array_stride(sizeof(struct sp_backend)),
	       len = ((size_t)s->maps.max_backends + 1) * stride;
	const uint8_t *p;
	uint32_t i;
	int err = 0;

	p = mmap(NULL, len, PROT_READ, MAP_SHARED, s->maps.fd_backends, 0);
	if (p == MAP_FAILED) {
		err = -errno;
		pr_err("map sp_backends: %s", strerror(-err));
		return err;
	}
	for (i = 1; i <= s->maps.max_backends && !err; i++)
		err = recover_backend(s, i, (const struct sp_backend *)(p + i * stride));
	munmap((void *)p, len);
	return err;
}

static int recover(struct sp_sync *s)
{
	struct app_svc **by_id = calloc(s->maps.max_svc_ids, sizeof(*by_id));
	struct app_svc **list;
	uint32_t key, next, *pkey = NULL;
	struct sp_svc_key fk, fnext, *pfk = NULL;
	size_t i, n;
	int err = 0;

	if (!by_id)
		return -ENOMEM;
	while (bpf_map_get_next_key(s->maps.fd_svc_meta, pkey, &next) == 0) {
		struct sp_svc_meta meta;

		key = next;
		pkey = &key;
		if (bpf_map_lookup_elem(s->maps.fd_svc_meta, &key, &meta))
			continue;
		err = recover_svc(s, key, &meta);
		if (err == -ENOMEM)
			goto out;
		err = 0;
	}
	list = all_svcs(s, &n);
	if (!list) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++)
		by_id[list[i]->svc_id] = list[i];
	free(list);
	while (bpf_map_get_next_key(s->maps.fd_services, pfk, &fnext) == 0) {
		struct sp_svc v;

		fk = fnext;
		pfk = &fk;
		if (bpf_map_lookup_elem(s->maps.fd_services, &fk, &v))
			continue;
		dstf_add(s, &fk.addr); /* whatever it is, it is served until deleted */
		err = recover_fe(s, &fk, &v, by_id);
		if (err)
			goto out;
	}
	err = recover_ranges(s, by_id);
	if (err)
		goto out;
	/* Backends: reference counts from the recovered regions; the rest
	 * are collected by the first apply. */
	err = recover_backends(s);
	if (err)
		goto out;
	list = all_svcs(s, &n);
	if (!list) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		size_t j;

		for (j = 0; j < list[i]->n; j++) {
			struct app_be *be = find_be(s, &list[i]->be[j].ip, list[i]->be[j].port);

			if (be)
				be->refs++;
		}
	}
	free(list);
	queue_unreferenced(s);
	err = recover_node_addrs(s);
	if (err)
		goto out;
	if (s->n_svcs)
		pr_info("recovered %zu Service port(s) and %zu backend(s) from pinned maps",
			s->n_svcs, s->n_bes);
out:
	free(by_id);
	return err;
}

int sp_sync_new(const struct sp_sync_maps *maps, struct sp_sync **out)
{
	struct sp_sync *s = calloc(1, sizeof(*s));
	int err, ncpu;

	if (!s)
		return -ENOMEM;
	s->maps = *maps;
	s->gen = 1;
	wbatch_init(&s->wb_backends, "sp_backends", " (table full: raise --max-backends)",
		    maps->fd_backends, sizeof(__u32), sizeof(struct sp_backend));
	s->wb_backends.mmapable = -1; /* an array: big batches through a mapping */
	wbatch_init(&s->wb_chunks, "sp_maglev", "", maps->fd_maglev, sizeof(__u32),
		    sizeof(struct sp_maglev_chunk));
	s->wb_chunks.mmapable = -1; /* found out at the first big batch */
	/* A per-CPU value is one slot per possible CPU, each 8-byte aligned. */
	ncpu = libbpf_num_possible_cpus();
	if (ncpu > 0)
		wbatch_init(&s->wb_stats, "sp_svc_stats", "", maps->fd_svc_stats, sizeof(__u32),
			    ncpu * ((sizeof(struct sp_svc_stats) + 7) / 8 * 8));
	wbatch_init(&s->wb_fe, "sp_services", " (table full: raise --max-services)",
		    maps->fd_services, sizeof(struct sp_svc_key), sizeof(struct sp_svc));
	wbatch_init(&s->wb_live, "sp_svc_live", "", maps->fd_svc_live, sizeof(__u32),
		    sizeof(__u32));
	s->wb_live.mmapable = -1; /* an array: big batches through a mapping */
	wbatch_init(&s->wb_meta, "sp_svc_meta", "", maps->fd_svc_meta, sizeof(__u32),
		    sizeof(struct sp_svc_meta));
	s->chunk_used = calloc(maps->maglev_chunks, 1);
	s->svc_id_used = calloc(maps->max_svc_ids, 1);
	s->be_id_used = calloc(maps->max_backends + 1, 1);
	s->ret_refs = calloc(maps->max_svc_ids ? maps->max_svc_ids : 1, sizeof(*s->ret_refs));
	s->ret_held = calloc(maps->max_svc_ids ? maps->max_svc_ids : 1, 1);
	if (!s->chunk_used || !s->svc_id_used || !s->be_id_used || !s->ret_refs || !s->ret_held) {
		sp_sync_free(s);
		return -ENOMEM;
	}
	/* sp_dst_filter, a new map (not pinned) at every start: filled by
	 * the recovery from what the pinned maps hold, then by every write. */
	if (maps->fd_dst_filter > 0 && !dstf_map(s)) {
		err = s->write_err;
		sp_sync_free(s);
		return err;
	}
	err = recover(s);
	/* sp_svc_live is new at every start: every id the recovery found
	 * taken (a Service's, or held by retained frontends). */
	if (!err && maps->fd_svc_live > 0) {
		uint32_t id;

		for (id = 0; id < maps->max_svc_ids; id++)
			if (s->svc_id_used[id])
				live_set(s, id, true);
		flush_writes(s);
		free_batches(s, true);
	}
	dstf_unmap(s);
	if (!err)
		err = s->write_err;
	if (err) {
		sp_sync_free(s);
		return err;
	}
	reclaimer_start(s);
	*out = s;
	return 0;
}

static void free_svc_node(void *p)
{
	app_svc_free(p);
}

void sp_sync_free(struct sp_sync *s)
{
	if (!s)
		return;
	/* Shutdown: finish what is retired (backends deleted from the map). */
	reclaimer_stop(s);
	if (s->full_done)
		flush_retired(s);
	if (s->rc.inited) {
		if (s->rc.efd >= 0)
			close(s->rc.efd);
		pthread_mutex_destroy(&s->rc.lock);
		pthread_cond_destroy(&s->rc.cond);
	}
	free_batches(s, false);
	tdestroy(s->svcs, free_svc_node);
	tdestroy(s->bes, free);
	free(s->chunk_used);
	free(s->svc_id_used);
	free(s->be_id_used);
	free(s->orphans);
	free(s->range_orphans);
	free(s->node_addrs);
	free(s->gc);
	free(s->retired);
	free(s->ret);
	free(s->ret_refs);
	free(s->ret_held);
	dstf_unmap(s);
	free(s);
}

size_t sp_sync_n_services(const struct sp_sync *s)
{
	return s->n_svcs;
}

size_t sp_sync_n_backends(const struct sp_sync *s)
{
	return s->n_bes;
}

uint64_t sp_sync_maglev_mmap_writes(const struct sp_sync *s)
{
	return s->wb_chunks.mmap_writes;
}

uint64_t sp_sync_tables_ahead(const struct sp_sync *s)
{
	return s->tables_ahead;
}

void sp_sync_set_ahead_only(struct sp_sync *s, bool on)
{
	s->ahead_only = on;
}

size_t sp_sync_maglev_chunks_used(const struct sp_sync *s)
{
	return s->n_chunks_used;
}
