// SPDX-License-Identifier: Apache-2.0
/*
 * bench_pkt: per-packet cost of sp_xdp with BPF_PROG_TEST_RUN.
 *
 * For each N (--services, default 1,100,1000,10000,100000) it loads a fresh
 * copy of the datapath with its maps pinned under a private directory
 * (--pin-root, default /sys/fs/bpf/svcplane-bench-PID, removed at exit; never
 * the daemon's directory), fills N Services with E endpoints each directly
 * into the maps (round-robin Maglev tables of size --m), and times:
 *
 *   floor      bench_pass alone: the cheapest XDP program
 *   wrap0/1    bench_wrap -> bench_pass: the wrapper's own cost (0: restore
 *              the frame; 1: restore and give it a new source address/port)
 *   nosvc      a packet to no Service (passed untouched)
 *   new        a new flow every packet (TCP SYN, distinct 5-tuple)
 *   est1       one established flow (TCP ACK, conntrack hit)
 *   estmany    --flows established flows, cycled (conntrack hits)
 *   reply      the backend's reply, reverse-NATed to the VIP
 *
 * bench_wrap (selftests/bpf/bench_wrap.bpf.c) restores the frame the
 * datapath rewrote on the previous repetition and tail-calls sp_xdp. Each
 * case is checked once (verdict, rewritten addresses) and after the timed
 * runs by the datapath's own counters (new_flows, ct_fwd_hits, ...), so a
 * figure is marked check=ok only when it timed the intended path.
 *
 * Output, one line per case and N:
 *   pkt case=new n=1000 ns_median=.. ns_min=.. ns_max=.. runs=5 check=ok
 *
 * A second mode times the daemon's control plane for scripts/bench.sh:
 *
 *   bench_pkt --cp-wait --map PIN/sp_services --vip A --vport P --proto tcp|udp
 *             --until present|absent|changed [--install TMP:CONFIG] [--hup PID]
 *             [--exec CMD] [--log FILE [--log-match STR]] [--timeout S]
 *
 * reads the key VIP:P/proto of the pinned sp_services map, then makes the
 * change: renames TMP onto CONFIG (the new config file) and sends SIGHUP to
 * PID, or runs CMD (sh -c; e.g. a POST to the test API server; its own time
 * counts). It then polls the map every 100 us until the key is there, gone,
 * or holds another value. With --log it also waits for the daemon's next
 * "applied in X ms" line (written once the whole change is in the maps)
 * that contains STR (--log-match; for a burst applied in several steps).
 * Prints
 *   cp map_ms=.. log_ms=.. apply_ms=..
 * map_ms and log_ms count from the change; apply_ms is the daemon's own
 * figure (map sync alone, without reading and parsing its input).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "svcplane.h"
#include "svcplane.skel.h"
#include "bench_wrap.skel.h"

#define E_DEFAULT 10
#define MAX_RUNS 31
#define CLIENT_IP "192.168.77.2"
#define NEWFLOW_BASE "100.64.0.1" /* sources of the new-flow case */
#define MANY_BASE "100.96.0.1" /* sources of the established-flows case */

struct cfg {
	long services[16];
	int nservices;
	int e, m, runs;
	long repeat, flows;
	char pin_root[256];
	int verbose;
};

struct bench {
	struct svcplane_bpf *sp;
	struct bench_wrap_bpf *wr;
	int ncpu;
	long n;
};

static int libbpf_quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

static __u32 ip4(const char *s)
{
	struct in_addr a;

	inet_pton(AF_INET, s, &a);
	return a.s_addr;
}

/* Same addressing as scripts/bench/addr.awk: Service i's VIP and endpoints. */
static __u32 vip(long i)
{
	return htonl((10u << 24) + (96u << 16) + (__u32)i + 1);
}

static __u32 ep_addr(long i, int j, int e)
{
	if (i == 0)
		return htonl((10u << 24) + (244u << 16) + 11 + j);
	return htonl((172u << 24) + (16u << 16) + (__u32)(i * e + j));
}

static __u16 csum_fold(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

static __u32 csum_add(__u32 s, const void *p, int len)
{
	const __u16 *w = p;

	for (; len > 1; len -= 2)
		s += *w++;
	return s;
}

/* An Ethernet/IPv4/TCP frame without payload; checksums filled in. */
static int build_tcp(unsigned char *buf, __u32 saddr, __u16 sport, __u32 daddr, __u16 dport,
		     __u8 flags)
{
	struct ethhdr *eth = (void *)buf;
	struct iphdr *ip = (void *)(eth + 1);
	struct tcphdr *tcp = (void *)(ip + 1);
	struct { __u32 s, d; __u8 z, p; __u16 l; } ph;
	int len = sizeof(*eth) + sizeof(*ip) + sizeof(*tcp);

	memset(buf, 0, len);
	memcpy(eth->h_dest, "\x02\x00\x00\x00\x00\x02", 6);
	memcpy(eth->h_source, "\x02\x00\x00\x00\x00\x01", 6);
	eth->h_proto = htons(ETH_P_IP);
	ip->version = 4;
	ip->ihl = 5;
	ip->ttl = 64;
	ip->protocol = IPPROTO_TCP;
	ip->tot_len = htons(sizeof(*ip) + sizeof(*tcp));
	ip->saddr = saddr;
	ip->daddr = daddr;
	ip->check = csum_fold(csum_add(0, ip, sizeof(*ip)));
	tcp->source = htons(sport);
	tcp->dest = htons(dport);
	tcp->seq = htonl(1000);
	tcp->ack_seq = htonl((flags & 0x10) ? 2000 : 0);
	tcp->doff = 5;
	((__u8 *)tcp)[13] = flags;
	tcp->window = htons(65535);
	ph.s = saddr;
	ph.d = daddr;
	ph.z = 0;
	ph.p = IPPROTO_TCP;
	ph.l = htons(sizeof(*tcp));
	tcp->check = csum_fold(csum_add(csum_add(0, &ph, sizeof(ph)), tcp, sizeof(*tcp)));
	return len;
}

#define TCP_SYN 0x02
#define TCP_ACK 0x10

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Sum of one field of struct sp_stats over every CPU. */
static int read_stats(struct bench *b, struct sp_stats *sum)
{
	struct sp_stats *v = calloc(b->ncpu, sizeof(*v));
	__u32 k = 0;
	int i, err = 0;

	if (!v)
		return -ENOMEM;
	memset(sum, 0, sizeof(*sum));
	if (bpf_map_lookup_elem(bpf_map__fd(b->sp->maps.sp_stats), &k, v)) {
		err = -errno;
		goto out;
	}
	for (i = 0; i < b->ncpu; i++) {
		__u64 *s = (__u64 *)sum, *x = (__u64 *)&v[i];

		for (size_t f = 0; f < sizeof(*sum) / sizeof(__u64); f++)
			s[f] += x[f];
	}
out:
	free(v);
	return err;
}

/* Set the wrapper's template and mode. */
static void wrap_set(struct bench *b, const unsigned char *pkt, int len, int vary, long nflows)
{
	struct bench_wrap_bpf__bss *bss = b->wr->bss;

	memcpy(bss->tmpl, pkt, len);
	bss->tmpl_len = len;
	bss->vary = vary;
	bss->nflows = (__u32)nflows;
	bss->saddr_off = sizeof(struct ethhdr) + offsetof(struct iphdr, saddr);
	bss->ipcsum_off = sizeof(struct ethhdr) + offsetof(struct iphdr, check);
	bss->sport_off = sizeof(struct ethhdr) + sizeof(struct iphdr) + offsetof(struct tcphdr, source);
	bss->l4csum_off = sizeof(struct ethhdr) + sizeof(struct iphdr) + offsetof(struct tcphdr, check);
}

/* One BPF_PROG_TEST_RUN: returns the kernel's mean ns per repetition (< 0: -errno). */
static double run(int prog_fd, const unsigned char *pkt, int len, long repeat, __u32 *retval,
		  unsigned char *out, __u32 *out_len)
{
	unsigned char in[256];
	LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = in, .data_size_in = len,
		    .data_out = out, .data_size_out = out ? 256 : 0, .repeat = (int)repeat);

	memcpy(in, pkt, len);
	if (bpf_prog_test_run_opts(prog_fd, &t))
		return -errno;
	if (retval)
		*retval = t.retval;
	if (out_len)
		*out_len = t.data_size_out;
	return t.duration;
}

static const char *vname(__u32 v)
{
	static const char *n[] = { "ABORTED", "DROP", "PASS", "TX", "REDIRECT" };

	return v < 5 ? n[v] : "?";
}

/* Report a case: `runs` timed repetitions of `repeat` packets. */
static void report(const char *name, long n, double *ns, int runs, const char *check)
{
	double s[MAX_RUNS];

	memcpy(s, ns, sizeof(double) * runs);
	qsort(s, runs, sizeof(double), cmp_dbl);
	printf("pkt case=%s n=%ld ns_median=%.1f ns_min=%.1f ns_max=%.1f runs=%d check=%s\n", name, n,
	       s[runs / 2], s[0], s[runs - 1], runs, check);
	fflush(stdout);
}

/* Fill N Services x E endpoints into the maps, in batches. */
static int fill(struct bench *b, const struct cfg *c)
{
	long n = b->n, i, nb = n * c->e, k;
	int e = c->e, words = 2 * e + c->m, chunks = (words + SP_MAGLEV_CHUNK_WORDS - 1) /
							     SP_MAGLEV_CHUNK_WORDS;
	__u32 *keys = NULL;
	struct sp_backend *bv = NULL;
	struct sp_maglev_chunk *mv = NULL;
	struct sp_svc_key *sk = NULL;
	struct sp_svc *sv = NULL;
	struct sp_dst_filter *dstf = NULL;
	__u32 cnt, zero = 0;
	int err = 0;
	LIBBPF_OPTS(bpf_map_batch_opts, bo);

	keys = calloc(n * chunks > nb ? n * chunks : nb, sizeof(*keys));
	bv = calloc(nb, sizeof(*bv));
	mv = calloc(n * chunks, sizeof(*mv));
	sk = calloc(n, sizeof(*sk));
	sv = calloc(n, sizeof(*sv));
	if (!keys || !bv || !mv || !sk || !sv) {
		err = -ENOMEM;
		goto out;
	}
	for (k = 0; k < nb; k++) {
		keys[k] = (__u32)k + 1;
		bv[k].addr.addr[0] = ep_addr(k / e, (int)(k % e), e);
		bv[k].port = htons(8080);
		bv[k].family = SP_FAMILY_V4;
	}
	cnt = (__u32)nb;
	if (bpf_map_update_batch(bpf_map__fd(b->sp->maps.sp_backends), keys, bv, &cnt, &bo)) {
		err = -errno;
		fprintf(stderr, "bench_pkt: fill sp_backends: %s\n", strerror(errno));
		goto out;
	}
	for (i = 0; i < n; i++) {
		__u16 *w = mv[i * chunks].w; /* the region's chunks are contiguous */
		int j;

		for (j = 0; j < e; j++) {
			__u32 id = (__u32)(i * e + j) + 1;

			w[2 * j] = (__u16)id;
			w[2 * j + 1] = (__u16)(id >> 16);
		}
		for (j = 0; j < c->m; j++) /* round robin: the harness needs no Maglev */
			w[2 * e + j] = (__u16)(j % e);
		sk[i].addr.addr[0] = vip(i);
		sk[i].port = htons(80);
		sk[i].proto = IPPROTO_TCP;
		sk[i].family = SP_FAMILY_V4;
		sv[i].svc_id = (__u32)i;
		sv[i].region = (__u32)(i * chunks);
		sv[i].m = c->m;
		sv[i].n = (__u16)e;
	}
	for (k = 0; k < n * chunks; k++)
		keys[k] = (__u32)k;
	cnt = (__u32)(n * chunks);
	if (bpf_map_update_batch(bpf_map__fd(b->sp->maps.sp_maglev), keys, mv, &cnt, &bo)) {
		err = -errno;
		fprintf(stderr, "bench_pkt: fill sp_maglev: %s\n", strerror(errno));
		goto out;
	}
	/* The destination filter's bits, as the daemon's sync sets them
	 * before it writes the frontends. */
	dstf = calloc(1, sizeof(*dstf));
	if (!dstf) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		__u32 bit = sp_dstf_bit(&sk[i].addr);

		dstf->w[SP_DSTF_WORD(bit)] |= SP_DSTF_MASK(bit);
	}
	if (bpf_map_update_elem(bpf_map__fd(b->sp->maps.sp_dst_filter), &zero, dstf, BPF_ANY)) {
		err = -errno;
		fprintf(stderr, "bench_pkt: fill sp_dst_filter: %s\n", strerror(errno));
		goto out;
	}
	/* Every svc_id live, as the daemon's sync marks them allocated: an
	 * established packet takes the conntrack-first path. */
	for (k = 0; k < n; k++) {
		__u32 id = (__u32)k, one = 1;

		if (bpf_map_update_elem(bpf_map__fd(b->sp->maps.sp_svc_live), &id, &one, BPF_ANY)) {
			err = -errno;
			fprintf(stderr, "bench_pkt: fill sp_svc_live: %s\n", strerror(errno));
			goto out;
		}
	}
	cnt = (__u32)n;
	if (bpf_map_update_batch(bpf_map__fd(b->sp->maps.sp_services), sk, sv, &cnt, &bo)) {
		err = -errno;
		fprintf(stderr, "bench_pkt: fill sp_services: %s\n", strerror(errno));
		goto out;
	}
out:
	free(dstf);
	free(keys);
	free(bv);
	free(mv);
	free(sk);
	free(sv);
	return err;
}

static int setup(struct bench *b, const struct cfg *c, long n)
{
	int chunks = (2 * c->e + c->m + SP_MAGLEV_CHUNK_WORDS - 1) / SP_MAGLEV_CHUNK_WORDS;
	LIBBPF_OPTS(bpf_object_open_opts, oo, .pin_root_path = c->pin_root);
	__u32 k = 0;
	int fd, err;

	memset(b, 0, sizeof(*b));
	b->n = n;
	b->ncpu = libbpf_num_possible_cpus();
	b->sp = svcplane_bpf__open_opts(&oo);
	if (!b->sp) {
		fprintf(stderr, "bench_pkt: open svcplane object: %s\n", strerror(errno));
		return -errno;
	}
	bpf_map__set_max_entries(b->sp->maps.sp_services, n + 16);
	bpf_map__set_max_entries(b->sp->maps.sp_backends, n * c->e + 16);
	bpf_map__set_max_entries(b->sp->maps.sp_maglev, n * chunks + 16);
	bpf_map__set_max_entries(b->sp->maps.sp_svc_stats, n + 16);
	bpf_map__set_max_entries(b->sp->maps.sp_svc_meta, n + 16);
	bpf_map__set_max_entries(b->sp->maps.sp_svc_live, n + 16);
	/* Two entries per flow, and room so LRU eviction never hits the
	 * established flows being cycled (the new-flow case runs last).
	 * Every flow here is IPv4, so only sp_ct4 needs the room: sp_ct6
	 * keeps its default size rather than preallocating millions of
	 * entries no packet uses. */
	bpf_map__set_max_entries(b->sp->maps.sp_ct4, (__u32)(4 * c->flows + 65536));
	err = svcplane_bpf__load(b->sp);
	if (err) {
		fprintf(stderr, "bench_pkt: load svcplane object (pins under %s): %s\n",
			c->pin_root, strerror(-err));
		return err;
	}
	err = fill(b, c);
	if (err)
		return err;
	b->wr = bench_wrap_bpf__open_and_load();
	if (!b->wr) {
		fprintf(stderr, "bench_pkt: load bench_wrap: %s\n", strerror(errno));
		return -errno;
	}
	fd = bpf_program__fd(b->sp->progs.sp_xdp);
	if (bpf_map_update_elem(bpf_map__fd(b->wr->maps.bench_target), &k, &fd, 0)) {
		err = -errno;
		fprintf(stderr, "bench_pkt: put sp_xdp in the wrapper's prog array: %s\n",
			strerror(errno));
		return err;
	}
	return 0;
}

static void teardown(struct bench *b)
{
	if (b->sp)
		bpf_object__unpin_maps(b->sp->obj, NULL);
	bench_wrap_bpf__destroy(b->wr);
	svcplane_bpf__destroy(b->sp);
	memset(b, 0, sizeof(*b));
}

static int set_target(struct bench *b, int fd)
{
	__u32 k = 0;

	return bpf_map_update_elem(bpf_map__fd(b->wr->maps.bench_target), &k, &fd, 0) ? -errno : 0;
}

/* Times `runs` x `repeat` of the wrapper with the current template. */
static int timed(struct bench *b, const struct cfg *c, const unsigned char *pkt, int len, long repeat,
		 double *ns)
{
	int r, fd = bpf_program__fd(b->wr->progs.bench_wrap);

	for (r = 0; r < c->runs; r++) {
		ns[r] = run(fd, pkt, len, repeat, NULL, NULL, NULL);
		if (ns[r] < 0) {
			fprintf(stderr, "bench_pkt: BPF_PROG_TEST_RUN: %s\n", strerror((int)-ns[r]));
			return (int)ns[r];
		}
	}
	return 0;
}

static int is_backend_of0(__u32 a, int e)
{
	for (int j = 0; j < e; j++)
		if (a == ep_addr(0, j, e))
			return 1;
	return 0;
}

/* Runs every case for one N. */
static int bench_one(const struct cfg *c, long n)
{
	unsigned char pkt[128], out[256];
	struct iphdr *oip = (void *)(out + sizeof(struct ethhdr));
	struct tcphdr *otcp = (void *)(oip + 1);
	struct sp_stats s0, s1;
	double ns[MAX_RUNS];
	struct bench b;
	__u32 ret, olen, backend = 0;
	char chk[160];
	int len, err, wfd;

	err = setup(&b, c, n);
	if (err)
		goto out;
	wfd = bpf_program__fd(b.wr->progs.bench_wrap);

	/* floor: bench_pass alone */
	len = build_tcp(pkt, ip4(CLIENT_IP), 40000, vip(0), 80, TCP_ACK);
	for (int r = 0; r < c->runs; r++)
		ns[r] = run(bpf_program__fd(b.wr->progs.bench_pass), pkt, len, c->repeat, NULL, NULL,
			    NULL);
	report("floor", n, ns, c->runs, "ok");

	/* wrapper overhead */
	set_target(&b, bpf_program__fd(b.wr->progs.bench_pass));
	wrap_set(&b, pkt, len, 0, 0);
	timed(&b, c, pkt, len, c->repeat, ns);
	report("wrap0", n, ns, c->runs, "ok");
	wrap_set(&b, pkt, len, 1, 0);
	timed(&b, c, pkt, len, c->repeat, ns);
	report("wrap1", n, ns, c->runs, "ok");
	set_target(&b, bpf_program__fd(b.sp->progs.sp_xdp));

	/* nosvc: to a pod address, port 8080: not a Service */
	len = build_tcp(pkt, ip4(CLIENT_IP), 40000, ip4("10.244.1.1"), 8080, TCP_ACK);
	wrap_set(&b, pkt, len, 0, 0);
	run(wfd, pkt, len, 1, &ret, out, &olen);
	snprintf(chk, sizeof(chk), "%s", ret == XDP_PASS && !memcmp(out, pkt, len) ? "ok" : "FAIL");
	if (strcmp(chk, "ok"))
		fprintf(stderr, "bench_pkt: nosvc: verdict %s, output %s\n", vname(ret),
			memcmp(out, pkt, len) ? "rewritten" : "untouched");
	read_stats(&b, &s0);
	timed(&b, c, pkt, len, c->repeat, ns);
	read_stats(&b, &s1);
	if (s1.not_service - s0.not_service < (__u64)c->repeat * c->runs)
		snprintf(chk, sizeof(chk), "FAIL(not_service+%llu)",
			 (unsigned long long)(s1.not_service - s0.not_service));
	report("nosvc", n, ns, c->runs, chk);

	/* est1: one flow, opened with a SYN, then ACKs */
	len = build_tcp(pkt, ip4(CLIENT_IP), 40000, vip(0), 80, TCP_SYN);
	wrap_set(&b, pkt, len, 0, 0);
	run(wfd, pkt, len, 1, &ret, out, &olen);
	backend = oip->daddr;
	if (!is_backend_of0(oip->daddr, c->e) || otcp->dest != htons(8080) ||
	    (ret != XDP_PASS && ret != XDP_TX && ret != XDP_REDIRECT)) {
		fprintf(stderr, "bench_pkt: SYN to the VIP: verdict %s, to %s:%u (want a backend:8080)\n",
			vname(ret), inet_ntoa(*(struct in_addr *)&oip->daddr), ntohs(otcp->dest));
		snprintf(chk, sizeof(chk), "FAIL");
	} else {
		snprintf(chk, sizeof(chk), "ok");
	}
	len = build_tcp(pkt, ip4(CLIENT_IP), 40000, vip(0), 80, TCP_ACK);
	wrap_set(&b, pkt, len, 0, 0);
	read_stats(&b, &s0);
	timed(&b, c, pkt, len, c->repeat, ns);
	read_stats(&b, &s1);
	if (s1.ct_fwd_hits - s0.ct_fwd_hits < (__u64)c->repeat * c->runs ||
	    s1.new_flows != s0.new_flows)
		snprintf(chk, sizeof(chk), "FAIL(ct_fwd_hits+%llu,new_flows+%llu)",
			 (unsigned long long)(s1.ct_fwd_hits - s0.ct_fwd_hits),
			 (unsigned long long)(s1.new_flows - s0.new_flows));
	report("est1", n, ns, c->runs, chk);

	/* reply: backend:8080 -> client:40000, reverse-NATed to VIP:80 */
	len = build_tcp(pkt, backend, 8080, ip4(CLIENT_IP), 40000, TCP_ACK);
	wrap_set(&b, pkt, len, 0, 0);
	run(wfd, pkt, len, 1, &ret, out, &olen);
	if (oip->saddr != vip(0) || otcp->source != htons(80)) {
		fprintf(stderr, "bench_pkt: reply: verdict %s, from %s:%u (want the VIP:80)\n",
			vname(ret), inet_ntoa(*(struct in_addr *)&oip->saddr), ntohs(otcp->source));
		snprintf(chk, sizeof(chk), "FAIL");
	} else {
		snprintf(chk, sizeof(chk), "ok");
	}
	read_stats(&b, &s0);
	timed(&b, c, pkt, len, c->repeat, ns);
	read_stats(&b, &s1);
	if (s1.ct_rev_hits - s0.ct_rev_hits < (__u64)c->repeat * c->runs)
		snprintf(chk, sizeof(chk), "FAIL(ct_rev_hits+%llu)",
			 (unsigned long long)(s1.ct_rev_hits - s0.ct_rev_hits));
	report("reply", n, ns, c->runs, chk);

	/* estmany: open --flows flows with SYNs, then cycle ACKs over them */
	len = build_tcp(pkt, ip4(MANY_BASE), 1024, vip(0), 80, TCP_SYN);
	wrap_set(&b, pkt, len, 1, c->flows);
	b.wr->bss->seq = 0;
	read_stats(&b, &s0);
	run(wfd, pkt, len, c->flows, &ret, NULL, NULL);
	read_stats(&b, &s1);
	snprintf(chk, sizeof(chk), "ok");
	if (s1.new_flows - s0.new_flows != (__u64)c->flows) {
		fprintf(stderr, "bench_pkt: opening %ld flows made %llu new flows\n", c->flows,
			(unsigned long long)(s1.new_flows - s0.new_flows));
		snprintf(chk, sizeof(chk), "FAIL(open)");
	}
	len = build_tcp(pkt, ip4(MANY_BASE), 1024, vip(0), 80, TCP_ACK);
	wrap_set(&b, pkt, len, 1, c->flows);
	b.wr->bss->seq = 0;
	read_stats(&b, &s0);
	timed(&b, c, pkt, len, c->repeat, ns);
	read_stats(&b, &s1);
	if (s1.ct_fwd_hits - s0.ct_fwd_hits < (__u64)c->repeat * c->runs ||
	    s1.new_flows != s0.new_flows)
		snprintf(chk, sizeof(chk), "FAIL(ct_fwd_hits+%llu,new_flows+%llu)",
			 (unsigned long long)(s1.ct_fwd_hits - s0.ct_fwd_hits),
			 (unsigned long long)(s1.new_flows - s0.new_flows));
	report("estmany", n, ns, c->runs, chk);

	/* new: a distinct 5-tuple every packet */
	len = build_tcp(pkt, ip4(NEWFLOW_BASE), 1024, vip(0), 80, TCP_SYN);
	wrap_set(&b, pkt, len, 1, 0);
	b.wr->bss->seq = 0;
	read_stats(&b, &s0);
	timed(&b, c, pkt, len, c->repeat, ns);
	read_stats(&b, &s1);
	snprintf(chk, sizeof(chk), "ok");
	if (s1.new_flows - s0.new_flows < (__u64)c->repeat * c->runs)
		snprintf(chk, sizeof(chk), "FAIL(new_flows+%llu)",
			 (unsigned long long)(s1.new_flows - s0.new_flows));
	report("new", n, ns, c->runs, chk);
	if (b.wr->bss->tail_fail)
		fprintf(stderr, "bench_pkt: %llu tail calls failed\n",
			(unsigned long long)b.wr->bss->tail_fail);
out:
	teardown(&b);
	return err;
}


/* ---- control-plane timing (--cp-wait) ---------------------------------------------- */

struct cpw {
	const char *map, *vip, *proto, *until, *install, *log, *exec, *match;
	int vport, hup;
	double timeout;
};

static double mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* The daemon's figure from the first "applied in X ms" in buf, or -1. */
static double applied_ms(const char *buf)
{
	const char *p = strstr(buf, "applied in ");

	return p ? atof(p + strlen("applied in ")) : -1;
}

/* Runs --cp-wait; returns 0 when the condition (and the log line) came in time. */
static int cp_wait(const struct cpw *w)
{
	struct sp_svc_key key = {};
	struct sp_svc old = {}, cur;
	int fd, have_old, have, cond, err = 0;
	double t0, now, map_ms = -1, log_ms = -1, apply = -1;
	char buf[8192], *tmp = NULL, *dst;
	long off = 0, i;
	FILE *lf = NULL;

	if (inet_pton(AF_INET, w->vip, &key.addr.addr[0]) != 1 || w->vport < 1 || w->vport > 65535)
		return -EINVAL;
	key.port = htons((__u16)w->vport);
	key.proto = !strcmp(w->proto, "udp") ? IPPROTO_UDP : IPPROTO_TCP;
	key.family = SP_FAMILY_V4;
	cond = !strcmp(w->until, "present") ? 0 : !strcmp(w->until, "absent") ? 1 : 2;
	fd = bpf_obj_get(w->map);
	if (fd < 0) {
		fprintf(stderr, "bench_pkt: open pinned map %s: %s\n", w->map, strerror(errno));
		return -errno;
	}
	have_old = !bpf_map_lookup_elem(fd, &key, &old);
	if (w->log) {
		lf = fopen(w->log, "r");
		if (!lf || fseek(lf, 0, SEEK_END) || (off = ftell(lf)) < 0) {
			err = -errno;
			fprintf(stderr, "bench_pkt: log %s: %s\n", w->log, strerror(errno));
			goto out;
		}
	}
	t0 = mono_ms();
	if (w->exec) {
		int st = system(w->exec);

		if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st)) {
			err = -EIO;
			fprintf(stderr, "bench_pkt: --exec '%s' failed (status %d)\n", w->exec, st);
			goto out;
		}
	}
	if (w->install) {
		tmp = strdup(w->install);
		dst = tmp ? strchr(tmp, ':') : NULL;
		if (!dst) {
			err = -EINVAL;
			goto out;
		}
		*dst++ = '\0';
		if (rename(tmp, dst)) {
			err = -errno;
			fprintf(stderr, "bench_pkt: rename %s to %s: %s\n", tmp, dst, strerror(errno));
			goto out;
		}
	}
	if (w->hup > 0 && kill(w->hup, SIGHUP)) {
		err = -errno;
		fprintf(stderr, "bench_pkt: SIGHUP to %d: %s\n", w->hup, strerror(errno));
		goto out;
	}
	/* Bounded by the timeout and by an iteration cap (100 us per round). */
	for (i = 0; i < 10000000L; i++) {
		now = mono_ms();
		if (map_ms < 0) {
			have = !bpf_map_lookup_elem(fd, &key, &cur);
			if ((cond == 0 && have) || (cond == 1 && !have) ||
			    (cond == 2 && have && (!have_old || memcmp(&cur, &old, sizeof(cur)))))
				map_ms = now - t0;
		}
		if (lf && log_ms < 0) {
			size_t n;

			clearerr(lf);
			if (!fseek(lf, off, SEEK_SET) && (n = fread(buf, 1, sizeof(buf) - 1, lf)) > 0) {
				char *nl;

				buf[n] = '\0';
				/* consume whole lines only */
				while ((nl = strchr(buf, '\n'))) {
					*nl = '\0';
					off += nl - buf + 1;
					if (applied_ms(buf) >= 0 && (!w->match || strstr(buf, w->match))) {
						apply = applied_ms(buf);
						log_ms = now - t0;
						break;
					}
					memmove(buf, nl + 1, strlen(nl + 1) + 1);
				}
			}
		}
		if (map_ms >= 0 && (!lf || log_ms >= 0))
			break;
		if (now - t0 > w->timeout * 1e3) {
			err = -ETIMEDOUT;
			break;
		}
		usleep(100);
	}
	printf("cp map_ms=%.1f log_ms=%.1f apply_ms=%.1f\n", map_ms, log_ms, apply);
	if (err == -ETIMEDOUT)
		fprintf(stderr, "bench_pkt: --cp-wait: no %s%s within %.0f s\n",
			map_ms < 0 ? "map change" : "", map_ms < 0 ? "" : "\"applied in\" log line",
			w->timeout);
out:
	free(tmp);
	if (lf)
		fclose(lf);
	close(fd);
	return err;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench_pkt [--services N,N,...] [--endpoints E] [--m PRIME] [--repeat R]\n"
		   "                 [--runs K] [--flows F] [--pin-root DIR] [-v]\n"
		   "       bench_pkt --cp-wait --map PIN/sp_services --vip A --vport P --proto tcp|udp\n"
		   "                 --until present|absent|changed [--install TMP:CONFIG] [--hup PID]\n"
		   "                 [--exec CMD] [--log FILE [--log-match STR]] [--timeout S]\n");
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "services", required_argument, NULL, 's' },
		{ "endpoints", required_argument, NULL, 'e' },
		{ "m", required_argument, NULL, 'm' },
		{ "repeat", required_argument, NULL, 'r' },
		{ "runs", required_argument, NULL, 'k' },
		{ "flows", required_argument, NULL, 'f' },
		{ "pin-root", required_argument, NULL, 'p' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "cp-wait", no_argument, NULL, 'W' },
		{ "map", required_argument, NULL, 1 },
		{ "vip", required_argument, NULL, 2 },
		{ "vport", required_argument, NULL, 3 },
		{ "proto", required_argument, NULL, 4 },
		{ "until", required_argument, NULL, 5 },
		{ "install", required_argument, NULL, 6 },
		{ "hup", required_argument, NULL, 7 },
		{ "log", required_argument, NULL, 8 },
		{ "timeout", required_argument, NULL, 9 },
		{ "exec", required_argument, NULL, 10 },
		{ "log-match", required_argument, NULL, 11 },
		{},
	};
	struct cpw w = { .vip = "10.96.0.1", .vport = 80, .proto = "tcp", .until = "present",
			 .timeout = 30 };
	int cpwait = 0;
	struct cfg c = { .e = E_DEFAULT, .m = 251, .runs = 5, .repeat = 1000000, .flows = 1000000 };
	const char *svcs = "1,100,1000,10000,100000";
	int opt, i, err = 0, made_dir = 0;

	while ((opt = getopt_long(argc, argv, "vh", lopts, NULL)) != -1) {
		switch (opt) {
		case 's': svcs = optarg; break;
		case 'e': c.e = atoi(optarg); break;
		case 'm': c.m = atoi(optarg); break;
		case 'r': c.repeat = atol(optarg); break;
		case 'k': c.runs = atoi(optarg); break;
		case 'f': c.flows = atol(optarg); break;
		case 'p': snprintf(c.pin_root, sizeof(c.pin_root), "%s", optarg); break;
		case 'v': c.verbose = 1; break;
		case 'h': usage(stdout); return 0;
		case 'W': cpwait = 1; break;
		case 1: w.map = optarg; break;
		case 2: w.vip = optarg; break;
		case 3: w.vport = atoi(optarg); break;
		case 4: w.proto = optarg; break;
		case 5: w.until = optarg; break;
		case 6: w.install = optarg; break;
		case 7: w.hup = atoi(optarg); break;
		case 8: w.log = optarg; break;
		case 9: w.timeout = atof(optarg); break;
		case 10: w.exec = optarg; break;
		case 11: w.match = optarg; break;
		default: usage(stderr); return 2;
		}
	}
	if (cpwait) {
		if (!w.map || w.timeout <= 0 || w.timeout > 3600 ||
		    (strcmp(w.until, "present") && strcmp(w.until, "absent") &&
		     strcmp(w.until, "changed"))) {
			usage(stderr);
			return 2;
		}
		return cp_wait(&w) ? 1 : 0;
	}
	for (char *s = strdup(svcs), *tok = strtok(s, ","); tok && c.nservices < 16;
	     tok = strtok(NULL, ","))
		c.services[c.nservices++] = atol(tok);
	if (c.e < 1 || c.e > 1000 || c.m < c.e || c.m > SP_MAGLEV_M_MAX || c.runs < 1 ||
	    c.runs > MAX_RUNS || c.repeat < 1 || c.repeat > 100000000 || c.flows < 1 ||
	    c.flows > 60000L * 200) {
		usage(stderr);
		return 2;
	}
	if (!c.pin_root[0])
		snprintf(c.pin_root, sizeof(c.pin_root), "/sys/fs/bpf/svcplane-bench-%d", getpid());
	if (!strcmp(c.pin_root, SP_PIN_DIR_DEFAULT)) {
		fprintf(stderr, "bench_pkt: refusing to pin into the daemon's %s\n", SP_PIN_DIR_DEFAULT);
		return 2;
	}
	if (mkdir(c.pin_root, 0700) == 0) {
		made_dir = 1;
	} else if (errno != EEXIST) {
		fprintf(stderr, "bench_pkt: mkdir %s: %s\n", c.pin_root, strerror(errno));
		return 1;
	}
	if (!c.verbose)
		libbpf_set_print(libbpf_quiet);
	for (i = 0; i < c.nservices && !err; i++) {
		if (c.services[i] < 1 || c.services[i] > 1000000) {
			fprintf(stderr, "bench_pkt: N=%ld out of range\n", c.services[i]);
			continue;
		}
		err = bench_one(&c, c.services[i]);
	}
	if (made_dir)
		rmdir(c.pin_root);
	return err ? 1 : 0;
}
