// SPDX-License-Identifier: Apache-2.0
/* Conntrack garbage collection: see ct_gc.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <netinet/in.h>
#include <bpf/bpf.h>

#include "svcplane.h"
#include "ct_gc.h"

#define GC_BATCH 4096 /* entries per lookup syscall */

uint64_t sp_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/*
 * Delete the entries dead[0..n) whose values are still exactly what the
 * pass read (vals): between the read and the delete, the datapath may have
 * replaced one with a new flow on the same tuple (a client reusing its
 * port as soon as the old connection closed), and deleting that would
 * cut the new flow's replies off their reverse NAT. A per-key check and
 * delete, not a batch: it shrinks that window from the whole pass to a
 * few microseconds, and the datapath restores a REV entry it finds missing
 * (ct_partner_miss) for what remains of it.
 */
static int delete_keys(int fd, const struct sp_reap_item *dead, uint32_t n, uint64_t *deleted)
{
	struct sp_ct_val now;
	uint32_t i;

	for (i = 0; i < n; i++) {
		if (bpf_map_lookup_elem(fd, &dead[i].key, &now))
			continue; /* gone already */
		if (memcmp(&now, &dead[i].val, sizeof(now)))
			continue; /* replaced or refreshed since the read */
		if (bpf_map_delete_elem(fd, &dead[i].key) == 0)
			(*deleted)++;
		else if (errno != ENOENT)
			return -errno;
	}
	return 0;
}

/* The same through the datapath's reaper program (reap_fd), in batches. */
static int reap_keys(int reap_fd, const struct sp_reap_item *dead, uint32_t n,
		     uint64_t *deleted)
{
	struct sp_reap_args *a = calloc(1, sizeof(*a));
	uint32_t done = 0;
	int err = 0;

	if (!a)
		return -ENOMEM;
	while (done < n && !err) {
		/* A syscall program writes its results back into ctx_in. */
		LIBBPF_OPTS(bpf_test_run_opts, o, .ctx_in = a, .ctx_size_in = sizeof(*a));

		a->n = n - done < SP_REAP_BATCH ? n - done : SP_REAP_BATCH;
		a->deleted = 0;
		memcpy(a->items, dead + done, a->n * sizeof(*dead));
		if (bpf_prog_test_run_opts(reap_fd, &o))
			err = -errno;
		else
			*deleted += a->deleted;
		done += a->n;
	}
	free(a);
	return err;
}

static int svc_key_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct sp_svc_key));
}

/* Mark the watched frontend a live FWD entry's flow came in through: its
 * original destination, or the NodePort wildcard of its port. */
static void watch_mark(const struct sp_ct_gc_watch *w, const struct sp_ct_key *k,
		       const struct sp_ct_val *v)
{
	struct sp_svc_key fe;
	const struct sp_svc_key *hit;

	if (k->dir != SP_CT_FWD || k->proto != IPPROTO_TCP)
		return;
	memset(&fe, 0, sizeof(fe));
	fe.port = k->dport;
	fe.proto = k->proto;
	fe.family = k->family;
	if (!(v->flags & SP_CT_F_NODEPORT))
		fe.addr = k->daddr;
	hit = bsearch(&fe, w->keys, w->n, sizeof(*w->keys), svc_key_cmp);
	if (hit)
		w->seen[hit - w->keys] = true;
}

int sp_ct_gc(int fd, int reap_fd, uint64_t now_ns, uint64_t grace_ns, bool early_drop,
	     struct sp_ct_gc_stats *st)
{
	return sp_ct_gc_watch(fd, reap_fd, now_ns, grace_ns, early_drop, NULL, st);
}

int sp_ct_gc_watch(int fd, int reap_fd, uint64_t now_ns, uint64_t grace_ns, bool early_drop,
		   const struct sp_ct_gc_watch *w, struct sp_ct_gc_stats *st)
{
	LIBBPF_OPTS(bpf_map_batch_opts, bo);
	struct bpf_map_info info;
	__u32 ilen = sizeof(info);
	struct sp_ct_key *keys = NULL;
	struct sp_ct_val *vals = NULL;
	struct sp_reap_item *dead = NULL; /* what the pass read, to delete */
	uint32_t n_dead = 0, cap_dead = 0, token = 0;
	uint64_t t0 = sp_mono_ns();
	bool first = true;
	int err = 0;

	memset(st, 0, sizeof(*st));
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &ilen))
		return -errno;
	if (info.key_size != sizeof(struct sp_ct_key) || info.value_size != sizeof(struct sp_ct_val))
		return -EINVAL;
	st->max_entries = info.max_entries;
	/* calloc: the kernel fills these, which valgrind cannot see. */
	keys = calloc(GC_BATCH, sizeof(*keys));
	vals = calloc(GC_BATCH, sizeof(*vals));
	if (!keys || !vals) {
		err = -ENOMEM;
		goto out;
	}
	for (;;) {
		uint32_t count = GC_BATCH, i;
		int rc = bpf_map_lookup_batch(fd, first ? NULL : &token, &token, keys, vals, &count,
					      &bo);

		if (rc && errno != ENOENT) {
			err = -errno;
			goto out;
		}
		first = false;
		st->scanned += count;
		for (i = 0; i < count; i++) {
			bool closed = vals[i].state == SP_CT_CLOSING ||
				      vals[i].state == SP_CT_TIME_WAIT;

			if (vals[i].expires + grace_ns >= now_ns && !(early_drop && closed)) {
				st->snat_live += keys[i].dir == SP_CT_FWD &&
						 (vals[i].flags & SP_CT_F_SNAT);
				if (w && w->n)
					watch_mark(w, &keys[i], &vals[i]);
				continue;
			}
			if (vals[i].expires + grace_ns >= now_ns)
				st->early++;
			if (n_dead == cap_dead) {
				uint32_t nc = cap_dead ? cap_dead * 2 : GC_BATCH;
				struct sp_reap_item *nd = realloc(dead, (size_t)nc * sizeof(*dead));

				if (!nd) {
					err = -ENOMEM;
					goto out;
				}
				dead = nd;
				cap_dead = nc;
			}
			dead[n_dead].key = keys[i];
			dead[n_dead++].val = vals[i];
		}
		if (rc) /* ENOENT: that was the last batch */
			break;
	}
	st->expired = n_dead;
	if (reap_fd >= 0)
		err = reap_keys(reap_fd, dead, n_dead, &st->deleted);
	else
		err = delete_keys(fd, dead, n_dead, &st->deleted);
out:
	st->live = st->scanned - st->expired;
	st->ms = (double)(sp_mono_ns() - t0) / 1e6;
	free(keys);
	free(vals);
	free(dead);
	return err;
}

bool sp_ct_gc_early_drop(const struct sp_ct_gc_stats *last)
{
	return last->max_entries && last->live * 2 >= last->max_entries;
}

unsigned int sp_ct_gc_next_ms(const struct sp_ct_gc_stats *st, unsigned int interval_s)
{
	uint64_t cap = st->max_entries ? st->max_entries : 1;
	uint64_t used = st->live;
	unsigned int ms = interval_s * 1000;

	if (used * 4 >= cap * 3)
		return 200;
	if (used * 2 >= cap)
		return ms > 1000 ? 1000 : ms;
	if (used * 4 >= cap)
		return ms > 2000 ? 2000 : ms;
	return ms;
}
