/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The dry run of `svcplane trace` (user/trace.c). bpf/svcplane_trace.bpf.c
 * compiles the whole datapath again with SP_DRYRUN defined, and this header
 * turns that copy into an observer of the daemon's maps:
 *  - no map is written: bpf_map_update_elem() and bpf_map_delete_elem()
 *    write nothing (an update with BPF_NOEXIST still fails on an existing
 *    key, so an SNAT port claim probes as it would), the counters are
 *    never found (stats.h), and conntrack entries found by lookup are not
 *    advanced in place (ct.h);
 *  - SP_TRACE() appends each decision to sp_trace_buf (bpf/maps.h), a
 *    global of the object's own .bss: no stack (the call chain's is at its
 *    512-byte limit), and one buffer per loaded copy.
 * Maps the dry-run object does not share with the daemon (the per-CPU
 * scratch area, the reject rate bucket, fragments, the devmap) are its own.
 * In the normal build SP_TRACE() expands to nothing and SP_DRY is 0, so the
 * programs the daemon loads are unchanged, instruction for instruction.
 */
#ifndef SP_LIB_TRACE_H
#define SP_LIB_TRACE_H

#include "common.h"
#include "maps.h"

#ifdef SP_DRYRUN
#define SP_DRY 1

static __always_inline void sp_trace_add(__u16 step, __u8 x, __u8 y, __u32 a, __u32 b, __u32 c,
					 const struct sp_addr *addr)
{
	__u32 n = sp_trace_buf.n;
	struct sp_trace_ev *e;

	sp_trace_buf.n = n + 1;
	if (n >= SP_TRACE_MAX)
		return;
	/* The mask is the bound the verifier sees: hidden from clang, which
	 * would otherwise drop it after the test above and index with a copy
	 * of n the verifier has not bounded (it did once a caller changed). */
	asm volatile("" : "+r"(n));
	e = &sp_trace_buf.ev[n & (SP_TRACE_MAX - 1)];
	e->step = step;
	e->x = x;
	e->y = y;
	e->a = a;
	e->b = b;
	e->c = c;
	if (addr)
		e->addr = *addr;
	else
		__builtin_memset(&e->addr, 0, sizeof(e->addr));
}

#define SP_TRACE(step, x, y, a, b, c) sp_trace_add(step, x, y, a, b, c, NULL)
#define SP_TRACE_ADDR(step, x, y, a, b, c, addr) sp_trace_add(step, x, y, a, b, c, addr)

/* An update writes nothing; with BPF_NOEXIST it fails (-EEXIST) where the
 * real one would. */
static __always_inline long sp_dry_update(void *map, const void *key, __u64 flags)
{
	if (flags == BPF_NOEXIST && bpf_map_lookup_elem(map, key))
		return -17;
	return 0;
}
#define bpf_map_update_elem(map, key, val, flags) sp_dry_update(map, key, flags)
#define bpf_map_delete_elem(map, key) ((void)(map), (void)(key), 0L)

#else /* the datapath the daemon loads */
#define SP_DRY 0
#define SP_TRACE(step, x, y, a, b, c)                                                      \
	do {                                                                               \
	} while (0)
#define SP_TRACE_ADDR(step, x, y, a, b, c, addr)                                           \
	do {                                                                               \
	} while (0)
#endif

#endif /* SP_LIB_TRACE_H */
