/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A datapath for a test of its own: the svcplane skeleton loaded without
 * pinning (nothing left behind, no daemon's maps touched), with Services
 * of one backend each written straight into its maps, and frames run
 * through its programs with BPF_PROG_TEST_RUN. For tests that need a few
 * flows, not test_bpf_datapath's whole fixture.
 */
#ifndef SP_DP_FIXTURE_H
#define SP_DP_FIXTURE_H

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "ct.h"
#include "pkt.h"
#include "svcplane.h"
#include "svcplane.skel.h"
#include "sync.h"

#define FX_MAGLEV_M 251

struct fx_dp {
	struct svcplane_bpf *skel;
	uint32_t next_region;
};

/* libbpf's log: warnings only (libbpf_set_print). */
static inline int fx_quiet_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return level == LIBBPF_WARN ? vfprintf(stderr, fmt, ap) : 0;
}

/* CLOCK_MONOTONIC in ns: bpf_ktime_get_ns()'s clock, for conntrack times. */
static inline __u64 fx_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
}

static inline struct sp_addr fx_addr(int family, const char *s)
{
	struct sp_addr a;

	memset(&a, 0, sizeof(a));
	inet_pton(family == 4 ? AF_INET : AF_INET6, s, a.addr);
	return a;
}

/* Open the datapath (not loaded yet: its rodata knobs may be set) with
 * conntrack tables of ct_size entries each, sp_ct4 and sp_ct6 (0:
 * default), and the RST timeout close_ns (0: default). Returns 0 or -1. */
static inline int fx_prepare(struct fx_dp *d, uint32_t ct_size, uint64_t close_ns)
{
	struct bpf_map *m;

	memset(d, 0, sizeof(*d));
	d->skel = svcplane_bpf__open();
	if (!d->skel)
		return -1;
	bpf_object__for_each_map(m, d->skel->obj)
		bpf_map__set_pin_path(m, NULL);
	if (ct_size) {
		bpf_map__set_max_entries(d->skel->maps.sp_ct4, ct_size);
		bpf_map__set_max_entries(d->skel->maps.sp_ct6, ct_size);
	}
	bpf_map__set_max_entries(d->skel->maps.sp_maglev, 256);
	if (close_ns)
		d->skel->rodata->cfg_ct_close_ns = close_ns;
	return 0;
}

static inline int fx_load(struct fx_dp *d)
{
	return svcplane_bpf__load(d->skel) ? -1 : 0;
}

/* fx_prepare + fx_load. */
static inline int fx_open(struct fx_dp *d, uint32_t ct_size, uint64_t close_ns)
{
	return fx_prepare(d, ct_size, close_ns) ?: fx_load(d);
}

static inline void fx_close(struct fx_dp *d)
{
	svcplane_bpf__destroy(d->skel);
	d->skel = NULL;
}

/* Mark svc_id live or not in sp_svc_live, as the daemon's sync does while
 * it is allocated (the pipeline's conntrack-first path trusts its flows). */
static inline int fx_svc_live(struct fx_dp *d, uint32_t svc_id, bool live)
{
	uint32_t v = live;

	return bpf_map_update_elem(bpf_map__fd(d->skel->maps.sp_svc_live), &svc_id, &v, BPF_ANY);
}

/* Service VIP:port/proto -> backend:bport, backend id = svc_id; with
 * backend NULL, a Service with no ready endpoint. 0 or -1. */
static inline int fx_service(struct fx_dp *d, int family, uint8_t proto, const char *vip,
			     uint16_t port, const char *backend, uint16_t bport, uint32_t svc_id)
{
	struct sp_svc_key sk;
	struct sp_svc sv;
	struct sp_backend be;
	struct sp_maglev_chunk c;
	uint32_t key, first = d->next_region, nchunks;

	memset(&sk, 0, sizeof(sk));
	sk.addr = fx_addr(family, vip);
	sk.port = htons(port);
	sk.proto = proto;
	sk.family = (uint8_t)family;
	memset(&sv, 0, sizeof(sv));
	sv.svc_id = svc_id;
	/* What the daemon's sync does before it writes a frontend: its
	 * address in the destination filter, its svc_id live. */
	if (sp_sync_dst_filter_add(bpf_map__fd(d->skel->maps.sp_dst_filter), &sk.addr) ||
	    fx_svc_live(d, svc_id, true))
		return -1;
	if (!backend)
		return bpf_map_update_elem(bpf_map__fd(d->skel->maps.sp_services), &sk, &sv,
					   BPF_ANY);
	memset(&be, 0, sizeof(be));
	be.addr = fx_addr(family, backend);
	be.port = htons(bport);
	be.family = (uint8_t)family;
	if (bpf_map_update_elem(bpf_map__fd(d->skel->maps.sp_backends), &svc_id, &be, BPF_ANY))
		return -1;
	/* region: words 0-1 the id, then M entries of index 0 */
	nchunks = (2 + FX_MAGLEV_M + SP_MAGLEV_CHUNK_WORDS - 1) / SP_MAGLEV_CHUNK_WORDS;
	for (key = first; key < first + nchunks; key++) {
		memset(&c, 0, sizeof(c));
		if (key == first) {
			c.w[0] = (uint16_t)svc_id;
			c.w[1] = (uint16_t)(svc_id >> 16);
		}
		if (bpf_map_update_elem(bpf_map__fd(d->skel->maps.sp_maglev), &key, &c, BPF_ANY))
			return -1;
	}
	d->next_region += nchunks;
	sv.region = first;
	sv.m = FX_MAGLEV_M;
	sv.n = 1;
	return bpf_map_update_elem(bpf_map__fd(d->skel->maps.sp_services), &sk, &sv, BPF_ANY);
}

/* Packets counted under drop/pass reason r, summed over CPUs (0 if unreadable). */
static inline uint64_t fx_reason_packets(struct fx_dp *d, uint32_t r)
{
	int n = libbpf_num_possible_cpus(), i;
	struct sp_reason_count c[n > 0 ? n : 1];
	uint64_t sum = 0;

	if (n <= 0 || bpf_map_lookup_elem(bpf_map__fd(d->skel->maps.sp_reasons), &r, c))
		return 0;
	for (i = 0; i < n; i++)
		sum += c[i].packets;
	return sum;
}

/* Counter at offset off of struct sp_stats in slot, summed over CPUs (0 if
 * unreadable). */
static inline uint64_t fx_stat(struct fx_dp *d, uint32_t slot, size_t off)
{
	int n = libbpf_num_possible_cpus(), i;
	struct sp_stats s[n > 0 ? n : 1];
	uint64_t sum = 0;

	if (n <= 0 || bpf_map_lookup_elem(bpf_map__fd(d->skel->maps.sp_stats), &slot, s))
		return 0;
	for (i = 0; i < n; i++)
		sum += *(uint64_t *)((char *)&s[i] + off);
	return sum;
}

/* The conntrack tables of d (loaded), for user/ct.h. */
static inline struct sp_ct_maps fx_ct(struct fx_dp *d)
{
	struct sp_ct_maps m = {
		.fd4 = bpf_map__fd(d->skel->maps.sp_ct4),
		.fd6 = bpf_map__fd(d->skel->maps.sp_ct6),
	};

	return m;
}

/* Empty both conntrack tables. */
static inline void fx_ct_flush(struct fx_dp *d)
{
	struct sp_ct_maps m = fx_ct(d);

	sp_ct_flush(&m);
}

/* Run frame in through prog; the output frame in *out. Returns the
 * verdict, or -1 if the run failed. */
static inline int fx_run(const struct bpf_program *prog, const struct pkt *in, struct pkt *out)
{
	LIBBPF_OPTS(bpf_test_run_opts, o);

	o.data_in = in->data;
	o.data_size_in = in->len;
	o.data_out = out->data;
	o.data_size_out = sizeof(out->data);
	o.repeat = 1;
	if (bpf_prog_test_run_opts(bpf_program__fd(prog), &o))
		return -1;
	out->len = o.data_size_out;
	return (int)o.retval;
}

/* Build spec s and run it. */
static inline int fx_run_spec(const struct bpf_program *prog, const struct pkt_spec *s,
			      struct pkt *out)
{
	struct pkt in;

	if (pkt_build(s, &in))
		return -1;
	return fx_run(prog, &in, out);
}

#endif /* SP_DP_FIXTURE_H */
