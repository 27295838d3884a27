// SPDX-License-Identifier: Apache-2.0
/*
 * Programs of scripts/tools/ct_bench.c: what the size of a conntrack entry
 * costs in an LRU hash, before anyone rebuilds conntrack around it (issue
 * 10's "memory per flow" and the per-packet rows that hash the 40-byte
 * key). Two maps of the same kind as sp_ct:
 *
 *   ct_wide     today's entry: struct sp_ct_key (40 bytes: two 16-byte
 *               addresses, ports, proto, family, dir) and a 64-byte value
 *   ct_compact  an IPv4-only entry: a 16-byte key (two addresses, ports,
 *               proto and dir) and a 32-byte value
 *
 * ct_run walks `n` keys spread over `keys` with a multiplicative hash (so
 * consecutive steps land far apart in the table, as packets of a million
 * flows do) and either looks each up, reading the value's first and last
 * words as the datapath reads its fields, or inserts it (BPF_ANY). The
 * loop is bpf_loop, so the time per step includes the same callback cost
 * for both layouts.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct key_wide {
	__u32 w[10];
};

struct val_wide {
	__u64 w[8];
};

struct key_compact {
	__u32 w[4];
};

struct val_compact {
	__u64 w[4];
};

/* max_entries set by ct_bench before load */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1);
	__type(key, struct key_wide);
	__type(value, struct val_wide);
} ct_wide SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1);
	__type(key, struct key_compact);
	__type(value, struct val_compact);
} ct_compact SEC(".maps");

enum { CT_LOOKUP = 0, CT_INSERT = 1 };

struct ct_args {
	__u32 n; /* steps */
	__u32 keys; /* keys are base .. base + keys - 1, visited scattered */
	__u32 base;
	__u32 op; /* CT_LOOKUP or CT_INSERT */
	__u32 compact; /* 1: ct_compact, 0: ct_wide */
	__u32 pad; /* out: bpf_loop's return */
	__u64 hits; /* out: lookups that found their key */
	__u64 sum; /* out: what the lookups read, so they are not optimised away */
};

/* i * P mod keys, in 64 bits: a permutation of 0 .. keys - 1 as i goes
 * over them (P = 2654435761 is a prime above any key count), so a fill
 * writes every key once and neighbouring steps land far apart. */
static __always_inline __u32 key_of(const struct ct_args *a, __u32 i)
{
	return a->base + (__u32)(((__u64)i * 2654435761ull) % a->keys);
}

static long step(__u32 i, void *ctx)
{
	struct ct_args *a = ctx;
	__u32 f = key_of(a, i);

	if (a->compact) {
		struct key_compact k = { .w = { f, 0x0a600001, 0x50000000 | (f & 0xffff), 0x0106 } };

		if (a->op == CT_LOOKUP) {
			struct val_compact *v = bpf_map_lookup_elem(&ct_compact, &k);

			if (v) {
				a->hits++;
				a->sum += v->w[0] + v->w[3];
			}
		} else {
			struct val_compact v = { .w = { f, 0, 0, 1 } };

			bpf_map_update_elem(&ct_compact, &k, &v, BPF_ANY);
		}
		return 0;
	}
	/* The IPv4 flow in today's layout: the address in the first word of
	 * each 16-byte address, the rest zero, as struct sp_addr holds it. */
	struct key_wide k = { .w = { f, 0, 0, 0, 0x0a600001, 0, 0, 0, 0x50000000 | (f & 0xffff),
				     0x000106 } };

	if (a->op == CT_LOOKUP) {
		struct val_wide *v = bpf_map_lookup_elem(&ct_wide, &k);

		if (v) {
			a->hits++;
			a->sum += v->w[0] + v->w[7];
		}
	} else {
		struct val_wide v = { .w = { f, 0, 0, 0, 0, 0, 0, 1 } };

		bpf_map_update_elem(&ct_wide, &k, &v, BPF_ANY);
	}
	return 0;
}

SEC("syscall")
int ct_run(struct ct_args *args)
{
	struct ct_args a = *args;
	/* Loaded on its own, zero-extended: passed as a.n, clang handed
	 * bpf_loop the 64-bit word holding n and keys, and the inlined
	 * helper's 64-bit bound check refused it (-E2BIG). */
	__u64 n = args->n;

	args->pad = (__u32)bpf_loop(n, step, &a, 0);
	args->hits = a.hits;
	args->sum = a.sum;
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
