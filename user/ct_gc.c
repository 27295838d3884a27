// SPDX-License-Identifier: Apache-2.0
/* Conntrack garbage collection: see ct_gc.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <netinet/in.h>
#include <bpf/bpf.h>

#include "svcplane.h"
#include "ct.h"
#include "ct_gc.h"

#define GC_BATCH 4096 /* room for dead entries, grown by doubling */

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
static int delete_keys(const struct sp_ct_maps *m, const struct sp_reap_item *dead, uint32_t n,
		       uint64_t *deleted)
{
	uint64_t clock = sp_mono_ns();
	struct sp_ct_entry cur;
	struct sp_ct_val now;
	uint32_t i;
	int err;

	for (i = 0; i < n; i++) {
		if (sp_ct_lookup(m, &dead[i].key, &now))
			continue; /* gone already */
		sp_ct_entry_of(&now, clock, &cur);
		if (memcmp(&cur, &dead[i].val, sizeof(cur)))
			continue; /* replaced or refreshed since the read */
		err = sp_ct_delete(m, &dead[i].key);
		if (!err)
			(*deleted)++;
		else if (err != -ENOENT)
			return err;
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

int sp_ct_gc(const struct sp_ct_maps *m, int reap_fd, uint64_t now_ns, uint64_t grace_ns,
	     bool early_drop, struct sp_ct_gc_stats *st)
{
	return sp_ct_gc_watch(m, reap_fd, now_ns, grace_ns, early_drop, NULL, st);
}

/* One pass's state, over both tables. */
struct gc_pass {
	uint64_t now_ns, grace_ns;
	uint64_t clock_ns; /* the clock (now_ns may be a test's) */
	bool early_drop;
	const struct sp_ct_gc_watch *w;
	struct sp_ct_gc_stats *st;
	uint64_t live[2]; /* per table: sp_ct4, sp_ct6 */
	struct sp_reap_item *dead; /* what the pass read, to delete */
	uint32_t n_dead, cap_dead;
};

static int gc_entry(const struct sp_ct_key *k, const struct sp_ct_val *v, void *arg)
{
	struct gc_pass *g = arg;
	bool closed = v->state == SP_CT_CLOSING || v->state == SP_CT_TIME_WAIT;

	g->st->scanned++;
	if (v->expires + g->grace_ns >= g->now_ns && !(g->early_drop && closed)) {
		g->live[k->family != SP_FAMILY_V4]++;
		g->st->snat_live += k->dir == SP_CT_FWD && (v->flags & SP_CT_F_SNAT);
		if (g->w && g->w->n)
			watch_mark(g->w, k, v);
		return 0;
	}
	if (v->expires + g->grace_ns >= g->now_ns)
		g->st->early++;
	if (g->n_dead == g->cap_dead) {
		uint32_t nc = g->cap_dead ? g->cap_dead * 2 : GC_BATCH;
		struct sp_reap_item *nd = realloc(g->dead, (size_t)nc * sizeof(*nd));

		if (!nd)
			return -ENOMEM;
		g->dead = nd;
		g->cap_dead = nc;
	}
	g->dead[g->n_dead].key = *k;
	/* The reaper compares it with the entry as the datapath reads it. */
	sp_ct_entry_of(v, g->clock_ns, &g->dead[g->n_dead++].val);
	return 0;
}

/* The fullest table's live entries and capacity: what pressure is judged
 * by (a full IPv4 table evicts whatever room the IPv6 one has left). */
static void gc_fill(struct sp_ct_gc_stats *st, const uint64_t live[2], const uint64_t cap[2])
{
	int t = 0;

	if (cap[1] && (!cap[0] || live[1] * cap[0] > live[0] * cap[1]))
		t = 1;
	st->fill_live = live[t];
	st->fill_max = cap[t];
}

int sp_ct_gc_watch(const struct sp_ct_maps *m, int reap_fd, uint64_t now_ns, uint64_t grace_ns,
		   bool early_drop, const struct sp_ct_gc_watch *w, struct sp_ct_gc_stats *st)
{
	uint64_t t0 = sp_mono_ns(), cap[2];
	struct gc_pass g = { .now_ns = now_ns, .grace_ns = grace_ns, .clock_ns = t0,
			     .early_drop = early_drop, .w = w, .st = st };
	int err;

	memset(st, 0, sizeof(*st));
	cap[0] = sp_ct_table_capacity(m->fd4);
	cap[1] = sp_ct_table_capacity(m->fd6);
	if (!cap[0] || !cap[1])
		return -EBADF;
	st->max_entries = cap[0] + cap[1];
	err = sp_ct_foreach(m, gc_entry, &g);
	if (err)
		goto out;
	st->expired = g.n_dead;
	if (reap_fd >= 0)
		err = reap_keys(reap_fd, g.dead, g.n_dead, &st->deleted);
	else
		err = delete_keys(m, g.dead, g.n_dead, &st->deleted);
out:
	st->live = st->scanned - st->expired;
	gc_fill(st, g.live, cap);
	st->ms = (double)(sp_mono_ns() - t0) / 1e6;
	free(g.dead);
	return err;
}

bool sp_ct_gc_early_drop(const struct sp_ct_gc_stats *last)
{
	return last->fill_max && last->fill_live * 2 >= last->fill_max;
}

unsigned int sp_ct_gc_next_ms(const struct sp_ct_gc_stats *st, unsigned int interval_s)
{
	uint64_t cap = st->fill_max ? st->fill_max : 1;
	uint64_t used = st->fill_live;
	unsigned int ms = interval_s * 1000;

	if (used * 4 >= cap * 3)
		return 200;
	if (used * 2 >= cap)
		return ms > 1000 ? 1000 : ms;
	if (used * 4 >= cap)
		return ms > 2000 ? 2000 : ms;
	return ms;
}
