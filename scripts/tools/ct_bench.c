// SPDX-License-Identifier: Apache-2.0
/*
 * ct_bench: what the size of a conntrack entry costs in an LRU hash, today's
 * layout against a compact IPv4 one, in the kernel, side by side in one run
 * (issue 10: "memory per flow", and the per-packet rows that hash the
 * 40-byte key). The programs are selftests/bpf/bench_ctmap.bpf.c.
 *
 * For each layout: an LRU hash of 2 x --flows entries (a flow has two, as
 * in sp_ct; an eighth more room), filled in scattered order, then, --runs
 * times, the layouts alternated:
 *   hot      --steps lookups of one key (the hash and compare alone, as an
 *            established flow's packets meet them: est1)
 *   lookup   --steps lookups scattered over every key (cache and TLB misses,
 *            as a million flows' packets meet them: estmany)
 *   insert   --steps inserts of new keys into the full table (each evicts,
 *            as a new flow does once the table is full: new)
 * and prints one line per layout with the memlock of its map (the kernel's
 * figure, from /proc/self/fdinfo), that per entry of its capacity and per
 * flow (two entries), and the median ns per step of each. Every step runs in a bpf_loop callback, which costs the two
 * layouts alike. Needs root (BPF).
 *
 *   ctmap layout=wide key=40 value=64 memlock_mib=.. bytes_per_entry=.. bytes_per_flow=..
 *         fill_ns=.. hot_ns=.. lookup_ns=.. insert_ns=.. runs=..
 */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "bench_ctmap.skel.h"

#define MAX_RUNS 15

struct ct_args {
	__u32 n, keys, base, op, compact, pad;
	__u64 hits, sum;
};

enum { CT_LOOKUP = 0, CT_INSERT = 1 };

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* One ct_run; returns ns per step, or -1. */
static double run(int prog_fd, struct ct_args *a)
{
	/* A syscall program's context is copied back into ctx_in. */
	LIBBPF_OPTS(bpf_test_run_opts, o, .ctx_in = a, .ctx_size_in = sizeof(*a));
	double t0 = now_ns();

	if (bpf_prog_test_run_opts(prog_fd, &o)) {
		fprintf(stderr, "ct_bench: BPF_PROG_TEST_RUN: %s\n", strerror(errno));
		return -1;
	}
	if ((int)a->pad < 0 || a->pad != a->n) {
		fprintf(stderr, "ct_bench: bpf_loop ran %d of %u steps\n", (int)a->pad, a->n);
		return -1;
	}
	return (now_ns() - t0) / a->n;
}

/* One run of lookups; ns per step, or -1 if it failed or a key was missing
 * (every key looked up was filled). */
static double run_lookups(int prog_fd, struct ct_args *a, const char *what)
{
	double ns;

	a->hits = 0;
	ns = run(prog_fd, a);
	if (ns >= 0 && a->hits != a->n) {
		fprintf(stderr, "ct_bench: %s lookups found %llu of %u\n", what,
			(unsigned long long)a->hits, a->n);
		return -1;
	}
	return ns;
}

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return a < b ? -1 : a > b;
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The kernel's memlock figure for map fd, in bytes (0 if unknown). */
static unsigned long long memlock_of(int fd)
{
	char path[64], line[256];
	unsigned long long v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "memlock: %llu", &v) == 1)
			break;
	fclose(f);
	return v;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: ct_bench [--flows N] [--steps N] [--runs K] [--percpu-lru]\n"
		   "Conntrack entry size in an LRU hash: 40-byte key + 64-byte value (today's\n"
		   "sp_ct) against 16 + 32 (a compact IPv4 entry), in one run. Defaults: 1000000\n"
		   "flows (2 entries each), 4000000 steps, 3 runs. --percpu-lru: both maps\n"
		   "with BPF_F_NO_COMMON_LRU (an LRU list per CPU, each with 1/NCPU of the\n"
		   "entries: sized NCPU times, run on CPU 0). Needs root.\n");
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "flows", required_argument, NULL, 'f' },
		{ "steps", required_argument, NULL, 's' },
		{ "runs", required_argument, NULL, 'r' },
		{ "percpu-lru", no_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	long flows = 1000000, steps = 4000000, entries;
	int runs = 3, c, err = 0, layout, prog, r;
	bool percpu = false;
	double hot[2][MAX_RUNS], look[2][MAX_RUNS], ins[2][MAX_RUNS], fill[2];
	struct bench_ctmap_bpf *skel;
	struct ct_args a;

	while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (c) {
		case 'f': flows = atol(optarg); break;
		case 's': steps = atol(optarg); break;
		case 'r': runs = atoi(optarg); break;
		case 'p': percpu = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	/* bpf_loop takes at most 1 << 23 steps per call. */
	if (flows < 1 || flows > (1 << 22) || steps < 1 || steps > (1 << 23) || runs < 1 ||
	    runs > MAX_RUNS) {
		fprintf(stderr, "ct_bench: --flows 1..%d, --steps 1..%d, --runs 1..%d\n", 1 << 22,
			1 << 23, MAX_RUNS);
		return 2;
	}
	skel = bench_ctmap_bpf__open();
	if (!skel) {
		fprintf(stderr, "ct_bench: open BPF object: %s\n", strerror(errno));
		return 1;
	}
	/* An eighth more room than the entries: an LRU hash evicts before it
	 * is quite full (each CPU keeps free nodes of its own). */
	entries = 2 * flows + flows / 4;
	/* Per-CPU lists split the entries between the CPUs, and a flow's
	 * entries come from the list of the CPU that inserts them: as many
	 * times the room, and this process kept on one CPU, so that the
	 * flows fit as they do in the common list. */
	if (percpu) {
		cpu_set_t one;

		entries *= libbpf_num_possible_cpus();
		CPU_ZERO(&one);
		CPU_SET(0, &one);
		if (sched_setaffinity(0, sizeof(one), &one))
			fprintf(stderr, "ct_bench: sched_setaffinity: %s\n", strerror(errno));
	}
	if (bpf_map__set_max_entries(skel->maps.ct_wide, (__u32)entries) ||
	    bpf_map__set_max_entries(skel->maps.ct_compact, (__u32)entries) ||
	    (percpu && (bpf_map__set_map_flags(skel->maps.ct_wide, BPF_F_NO_COMMON_LRU) ||
			bpf_map__set_map_flags(skel->maps.ct_compact, BPF_F_NO_COMMON_LRU)))) {
		fprintf(stderr, "ct_bench: size the maps: %s\n", strerror(errno));
		err = 1;
		goto out;
	}
	err = bench_ctmap_bpf__load(skel);
	if (err) {
		fprintf(stderr, "ct_bench: load BPF object: %s\n", strerror(-err));
		err = 1;
		goto out;
	}
	/* Both tables filled, then the runs alternate the layouts, so a
	 * change in the machine's load falls on both alike. */
	prog = bpf_program__fd(skel->progs.ct_run);
	for (layout = 0; layout < 2; layout++) {
		memset(&a, 0, sizeof(a));
		a.compact = (__u32)layout;
		a.op = CT_INSERT;
		a.n = a.keys = (__u32)(2 * flows);
		fill[layout] = run(prog, &a);
		if (fill[layout] < 0) {
			err = 1;
			goto out;
		}
	}
	for (r = 0; r < runs && !err; r++) {
		for (layout = 0; layout < 2; layout++) {
			memset(&a, 0, sizeof(a));
			a.compact = (__u32)layout;
			a.op = CT_LOOKUP;
			a.n = (__u32)steps;
			a.keys = 1;
			hot[layout][r] = run_lookups(prog, &a, "hot");
			a.keys = (__u32)(2 * flows);
			look[layout][r] = run_lookups(prog, &a, "scattered");
			if (hot[layout][r] < 0 || look[layout][r] < 0)
				err = 1;
			/* New keys above every key used so far: each evicts. */
			a.op = CT_INSERT;
			a.base = (__u32)(2 * flows + r * steps);
			a.keys = (__u32)steps;
			ins[layout][r] = run(prog, &a);
			if (ins[layout][r] < 0)
				err = 1;
			/* Back to the filled keys for the next run's lookups. */
			a.base = 0;
			a.keys = a.n = (__u32)(2 * flows);
			if (run(prog, &a) < 0)
				err = 1;
		}
	}
	if (err)
		goto out;
	for (layout = 0; layout < 2; layout++) {
		unsigned long long ml = memlock_of(bpf_map__fd(layout ? skel->maps.ct_compact :
									 skel->maps.ct_wide));

		printf("ctmap layout=%s key=%d value=%d memlock_mib=%.1f bytes_per_entry=%.0f "
		       "bytes_per_flow=%.0f fill_ns=%.1f hot_ns=%.1f lookup_ns=%.1f insert_ns=%.1f runs=%d\n",
		       layout ? "compact" : "wide", layout ? 16 : 40, layout ? 32 : 64, ml / 1048576.0,
		       (double)ml / entries, 2.0 * ml / entries, fill[layout],
		       median(hot[layout], runs), median(look[layout], runs), median(ins[layout], runs),
		       runs);
	}
out:
	bench_ctmap_bpf__destroy(skel);
	return err;
}
