// SPDX-License-Identifier: Apache-2.0
/* Conntrack garbage collection: see ct_gc.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

/* Delete keys[0..n): in batches, stepping over a key that went away
 * meanwhile (the datapath replaced it, or LRU evicted it). */
static int delete_keys(int fd, struct sp_ct_key *keys, uint32_t n, uint64_t *deleted)
{
	LIBBPF_OPTS(bpf_map_batch_opts, bo);
	uint32_t done = 0;

	while (done < n) {
		uint32_t count = n - done;
		int err = bpf_map_delete_batch(fd, keys + done, &count, &bo);

		*deleted += count;
		done += count;
		if (!err)
			continue;
		err = -errno;
		if (err != -ENOENT)
			return err;
		done++; /* the missing key */
	}
	return 0;
}

int sp_ct_gc(int fd, uint64_t now_ns, uint64_t grace_ns, struct sp_ct_gc_stats *st)
{
	LIBBPF_OPTS(bpf_map_batch_opts, bo);
	struct bpf_map_info info;
	__u32 ilen = sizeof(info);
	struct sp_ct_key *keys = NULL, *dead = NULL;
	struct sp_ct_val *vals = NULL;
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
			if (vals[i].expires + grace_ns >= now_ns)
				continue;
			if (n_dead == cap_dead) {
				uint32_t nc = cap_dead ? cap_dead * 2 : GC_BATCH;
				struct sp_ct_key *nd = realloc(dead, (size_t)nc * sizeof(*dead));

				if (!nd) {
					err = -ENOMEM;
					goto out;
				}
				dead = nd;
				cap_dead = nc;
			}
			dead[n_dead++] = keys[i];
		}
		if (rc) /* ENOENT: that was the last batch */
			break;
	}
	st->expired = n_dead;
	err = delete_keys(fd, dead, n_dead, &st->deleted);
out:
	st->live = st->scanned - st->expired;
	st->ms = (double)(sp_mono_ns() - t0) / 1e6;
	free(keys);
	free(vals);
	free(dead);
	return err;
}

unsigned int sp_ct_gc_next_interval(const struct sp_ct_gc_stats *st, unsigned int interval_s)
{
	uint64_t cap = st->max_entries ? st->max_entries : 1;
	uint64_t used = st->live;

	if (used * 2 >= cap)
		return 1;
	if (used * 4 >= cap)
		return interval_s > 2 ? 2 : interval_s;
	return interval_s;
}
