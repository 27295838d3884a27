// SPDX-License-Identifier: Apache-2.0
/*
 * BPF unit tests of the datapath (bpf/svcplane.bpf.c) with BPF_PROG_TEST_RUN.
 *
 * Table-driven: each row has a name, an input frame built by pkt.h from a
 * host-order spec, the expected outcome (NAT to an expected frame, pass
 * unchanged, reject, drop), the counters that must move by exactly one,
 * the drop/pass reasons allowed, and what conntrack must hold afterwards.
 * The same table runs through every program of the skeleton (sp_xdp,
 * sp_tc_ingress, sp_tc_egress, sp_tc_uplink); per-program differences
 * (XDP leaves rejects to TC, the uplink hook only answers rejects, ...)
 * are applied by row_expect(). Expected frames are rebuilt from scratch
 * with the rewritten addresses, and every checksum of every output frame
 * is recomputed from scratch by pkt_csums_ok().
 *
 * Outside the table: Maglev spread and entry resolution, TC and XDP
 * forwarding through the FIB once a veth with routes exists, and a second
 * load of the skeleton on the pinned maps (what a restarted daemon does).
 * Frames too short for the skb flavour of BPF_PROG_TEST_RUN reach the TC
 * programs through dp_trunc.bpf.c, which cuts them and tail-calls.
 *
 * Hermetic: the test runs in a private network namespace (FIB lookups see
 * no route unless a test adds one) and pins the skeleton's maps under a
 * fresh /sys/fs/bpf/sp-ut-XXXXXX, removed on every exit path, including
 * signals. SP_TEST_VERBOSE=1 shows libbpf's info messages.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pkt.h"

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "ct.h"
#include "svcplane.h"
#include "sync.h"
#include "test.h"
#include "svcplane.skel.h"
#include "dp_trunc.skel.h"

#ifndef BPF_FS_MAGIC
#define BPF_FS_MAGIC 0xcafe4a11
#endif

#define NSEC_PER_SEC 1000000000ULL
/* Timeouts given to the datapath: all different, so a test can tell
 * which one an entry got. */
#define T_SYN (61 * NSEC_PER_SEC)
#define T_EST (7201 * NSEC_PER_SEC)
#define T_CLOSE (11 * NSEC_PER_SEC)
#define T_FIN (181 * NSEC_PER_SEC)
#define T_UDP (121 * NSEC_PER_SEC)

#define HAIRPIN_V4 "169.254.42.1" /* cfg_hairpin_v4 default */
#define HAIRPIN_V6 "fd73:7670:6c61:6e65::1" /* cfg_hairpin_v6 default */
#define MAGLEV_M 251
#define CT_TEST_SIZE 4096 /* sp_ct4 and sp_ct6 entries each: a few dozen are used, flushed often */
#define BE_TEST_SIZE (SP_MAX_BACKENDS + 1) /* sp_backends (an array): the default (ids up to 196,607 are used) */

/* ------------------------------------------------------------------ */
/* Pin directory and cleanup on every exit path                        */
/* ------------------------------------------------------------------ */

static struct svcplane_bpf *skel;
static struct dp_trunc_bpf *trunc_skel; /* cuts an skb short, then tail-calls the program */
static char pin_dir[64];
static int watchdog_fd = -1; /* write end of the pipe the pin watchdog waits on */
static pid_t watchdog_pid;

/* Remove every file under the pin dir, then the dir. */
static void remove_pin_dir(bool verbose)
{
	DIR *d;
	struct dirent *e;
	char path[512];

	d = opendir(pin_dir);
	if (d) {
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", pin_dir, e->d_name);
			if (unlink(path) && verbose)
				fprintf(stderr, "  unlink %s: %s\n", path, strerror(errno));
		}
		closedir(d);
	}
	if (rmdir(pin_dir) && verbose)
		fprintf(stderr, "  rmdir %s: %s\n", pin_dir, strerror(errno));
}

/*
 * A child that removes the pin dir once we are gone, however we go: it
 * waits for EOF on a pipe whose only write end we hold, which the kernel
 * closes even when we die of SIGKILL or SIGPIPE. It ignores the signals a
 * terminal or `kill -- -PGID` sends, so it outlives us by a moment.
 */
static int start_pin_watchdog(void)
{
	int p[2], fd;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC)) {
		fprintf(stderr, "pipe: %s\n", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "fork: %s\n", strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		ssize_t n;
		char c;

		signal(SIGINT, SIG_IGN);
		signal(SIGTERM, SIG_IGN);
		signal(SIGHUP, SIG_IGN);
		signal(SIGQUIT, SIG_IGN);
		signal(SIGPIPE, SIG_IGN);
		close(p[1]);
		/* no stdio: the test runner waits for every writer of its pipe */
		fd = open("/dev/null", O_RDWR);
		if (fd >= 0) {
			dup2(fd, 0);
			dup2(fd, 1);
			dup2(fd, 2);
		}
		do
			n = read(p[0], &c, 1);
		while (n > 0 || (n < 0 && errno == EINTR));
		remove_pin_dir(false);
		_exit(0);
	}
	close(p[0]);
	watchdog_fd = p[1];
	watchdog_pid = pid;
	return 0;
}

/* Destroy the skeletons, remove the pin dir, stop the watchdog. */
static void cleanup(void)
{
	if (trunc_skel) {
		dp_trunc_bpf__destroy(trunc_skel);
		trunc_skel = NULL;
	}
	if (skel) {
		svcplane_bpf__destroy(skel);
		skel = NULL;
	}
	if (pin_dir[0])
		remove_pin_dir(true);
	pin_dir[0] = 0;
	if (watchdog_fd >= 0) {
		close(watchdog_fd); /* the watchdog finds nothing left and exits */
		waitpid(watchdog_pid, NULL, 0);
		watchdog_fd = -1;
	}
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG || (level == LIBBPF_INFO && !getenv("SP_TEST_VERBOSE")))
		return 0;
	return vfprintf(stderr, fmt, ap);
}

/* ------------------------------------------------------------------ */
/* Map helpers                                                         */
/* ------------------------------------------------------------------ */

static int fd_dst_filter;
static int fd_services, fd_backends, fd_maglev, fd_node_addrs, fd_stats, fd_reasons,
	fd_svc_stats;
static struct sp_ct_maps ct_maps; /* sp_ct4, sp_ct6: through user/ct.h, which picks the table */
static int ncpus;

static struct sp_addr addr_of(int family, const char *s)
{
	struct sp_addr a;

	memset(&a, 0, sizeof(a));
	if (!pkt_addr(family, s, (uint8_t *)a.addr)) {
		fprintf(stderr, "bad address in test table: %s\n", s);
		abort();
	}
	return a;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts); /* bpf_ktime_get_ns() clock */
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + ts.tv_nsec;
}

/* Write a Maglev region: the backend ids, then m entries, each `pick`
 * (pick >= 0) or i % n (pick < 0). */
static int write_region(uint32_t region, const uint32_t *ids, uint32_t n, uint32_t m, int pick)
{
	uint32_t words = 2 * n + m, ch, i;
	struct sp_maglev_chunk c;

	for (ch = 0; ch * SP_MAGLEV_CHUNK_WORDS < words; ch++) {
		uint32_t key = region + ch;

		memset(&c, 0, sizeof(c));
		for (i = 0; i < SP_MAGLEV_CHUNK_WORDS; i++) {
			uint32_t w = ch * SP_MAGLEV_CHUNK_WORDS + i;

			if (w >= words)
				break;
			if (w < 2 * n)
				c.w[i] = (w & 1) ? ids[w / 2] >> 16 : ids[w / 2] & 0xffff;
			else
				c.w[i] = pick >= 0 ? (uint16_t)pick : (uint16_t)((w - 2 * n) % n);
		}
		if (bpf_map_update_elem(fd_maglev, &key, &c, BPF_ANY)) {
			fprintf(stderr, "  write sp_maglev[%u]: %s\n", key, strerror(errno));
			return -1;
		}
	}
	return 0;
}

static int set_service(int family, const char *vip, uint16_t port, uint8_t proto,
		       const struct sp_svc *v)
{
	struct sp_svc_key k;

	memset(&k, 0, sizeof(k));
	if (vip)
		k.addr = addr_of(family, vip);
	k.port = htons(port);
	k.proto = proto;
	k.family = (uint8_t)family;
	/* What the daemon's sync does before it writes a frontend. */
	if (sp_sync_dst_filter_add(fd_dst_filter, &k.addr) ||
	    bpf_map_update_elem(fd_services, &k, v, BPF_ANY)) {
		fprintf(stderr, "  write sp_services: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

static int set_backend(uint32_t id, int family, const char *addr, uint16_t port)
{
	struct sp_backend b;

	memset(&b, 0, sizeof(b));
	b.addr = addr_of(family, addr);
	b.port = htons(port);
	b.family = (uint8_t)family;
	if (bpf_map_update_elem(fd_backends, &id, &b, BPF_ANY)) {
		fprintf(stderr, "  write sp_backends[%u]: %s\n", id, strerror(errno));
		return -1;
	}
	return 0;
}

/* Delete every key of a hash map. */
static void map_flush(int fd, size_t key_size)
{
	uint8_t key[256], next[256];
	void *prev = NULL;

	/* Restart from the beginning after each delete: LRU iteration after a
	 * delete may skip entries. Maps here hold a few dozen entries. */
	while (bpf_map_get_next_key(fd, prev, next) == 0) {
		memcpy(key, next, key_size);
		bpf_map_delete_elem(fd, key);
		prev = NULL;
	}
}

/* sp_backends is an array: emptied by zeroing every entry (family 0: no
 * backend), in one batch. */
static void backends_flush(void)
{
	static struct sp_backend zero[BE_TEST_SIZE];
	static __u32 keys[BE_TEST_SIZE];
	__u32 i, n = BE_TEST_SIZE;
	LIBBPF_OPTS(bpf_map_batch_opts, bo);

	for (i = 0; i < n; i++)
		keys[i] = i;
	if (bpf_map_update_batch(fd_backends, keys, zero, &n, &bo))
		fprintf(stderr, "  empty sp_backends: %s\n", strerror(errno));
}

/* Remove backend id from sp_backends (zero its entry). */
static int backend_clear(uint32_t id)
{
	struct sp_backend zero;

	memset(&zero, 0, sizeof(zero));
	return bpf_map_update_elem(fd_backends, &id, &zero, BPF_ANY);
}

/* Empty both conntrack tables. */
static void ct_flush(void)
{
	int err = sp_ct_flush(&ct_maps);

	if (err)
		fprintf(stderr, "  empty conntrack: %s\n", strerror(-err));
}

/* Entries in both conntrack tables (0 if unreadable, as an empty walk). */
static int ct_count(void)
{
	long n = sp_ct_count(&ct_maps);

	if (n < 0) {
		fprintf(stderr, "  count conntrack: %s\n", strerror((int)-n));
		return 0;
	}
	return (int)n;
}

/* ------------------------------------------------------------------ */
/* The fixture: Services, backends, node addresses                     */
/* ------------------------------------------------------------------ */

struct fx_backend {
	uint32_t id;
	int family;
	const char *addr;
	uint16_t port;
};

static const struct fx_backend fx_backends[] = {
	{ 1, 4, "10.1.0.11", 8080 },	{ 2, 4, "10.1.0.12", 5353 },
	{ 3, 4, "10.1.0.13", 8443 },	{ 4, 4, "10.1.0.14", 8080 },
	{ 5, 4, "10.1.0.15", 5353 },	{ 9, 4, "10.1.0.5", 8080 },
	{ 70, 4, "10.1.0.70", 80 },	{ 81, 4, "10.1.0.31", 8080 },
	{ 82, 4, "10.1.0.32", 8080 },	{ 83, 4, "10.1.0.33", 8080 },
	/* ids with a high half, to check both 16-bit words are used */
	{ 51, 4, "10.1.0.51", 8080 },	{ 0x10034, 4, "10.1.0.52", 8080 },
	{ 0x2ffff, 4, "10.1.0.53", 8080 },
	{ 21, 6, "fd00:1::11", 8080 },	{ 22, 6, "fd00:1::12", 5353 },
	{ 23, 6, "fd00:1::13", 8443 },	{ 24, 6, "fd00:1::14", 8080 },
	{ 29, 6, "fd00:1::5", 8080 },	{ 91, 6, "fd00:1::31", 8080 },
	{ 92, 6, "fd00:1::32", 8080 },
};

struct fx_service {
	uint32_t svc_id;
	int family;
	uint8_t proto;
	const char *vip; /* NULL: NodePort wildcard */
	uint16_t port;
	uint16_t flags;
	uint32_t ids[4];
	uint16_t n;
	int pick; /* every table entry is this index; -1: entry i is i % n */
	uint32_t region; /* 0: svc_id * 16 */
};

#define TCP IPPROTO_TCP
#define UDP IPPROTO_UDP

static const struct fx_service fx_services[] = {
	{ 1, 4, TCP, "10.96.0.10", 80, 0, { 1 }, 1, 0 },
	{ 2, 4, UDP, "10.96.0.10", 53, 0, { 2 }, 1, 0 },
	{ 3, 4, TCP, "192.0.2.100", 443, SP_SVC_F_EXTERNAL, { 3 }, 1, 0 },
	{ 4, 4, TCP, NULL, 30080, SP_SVC_F_NODEPORT, { 4 }, 1, 0 },
	{ 5, 4, UDP, NULL, 30053, SP_SVC_F_NODEPORT, { 5 }, 1, 0 },
	{ 6, 4, TCP, "10.96.0.20", 80, 0, { 0 }, 0, 0 }, /* no ready endpoint */
	{ 7, 4, UDP, "10.96.0.20", 53, 0, { 0 }, 0, 0 }, /* no ready endpoint */
	{ 8, 4, TCP, "10.96.0.30", 80, 0, { 81 }, 1, 0 }, /* backend set changes */
	{ 9, 4, TCP, "10.96.0.40", 80, 0, { 9 }, 1, 0 }, /* hairpin */
	{ 10, 4, TCP, "10.96.0.50", 80, 0, { 51, 0x10034, 0x2ffff }, 3, -1 }, /* spread */
	{ 11, 4, TCP, "10.96.0.60", 80, 0, { 999 }, 1, 0 }, /* id not in sp_backends */
	{ 12, 4, TCP, "10.96.0.61", 80, 0, { 1 }, 1, 0, SP_MAGLEV_CHUNKS }, /* region missing */
	{ 13, 4, TCP, "10.96.0.70", 80, 0, { 70 }, 1, 0 }, /* same port */
	{ 14, 4, TCP, "10.96.0.11", 80, 0, { 1 }, 1, 0 }, /* shares service 1's backend */
	/* deleted during their flows (add_gone_rows) */
	{ 15, 4, TCP, "10.96.0.80", 80, 0, { 1 }, 1, 0 },
	{ 16, 4, UDP, "10.96.0.80", 53, 0, { 2 }, 1, 0 },
	{ 17, 4, TCP, NULL, 30090, SP_SVC_F_NODEPORT, { 4 }, 1, 0 },
	{ 30, 6, TCP, "fd00:96::80", 80, 0, { 21 }, 1, 0 },
	{ 18, 4, TCP, "10.96.0.82", 80, 0, { 1 }, 1, 0 }, /* ct-first (add_gone_rows) */
	{ 21, 6, TCP, "fd00:96::10", 80, 0, { 21 }, 1, 0 },
	{ 22, 6, UDP, "fd00:96::10", 53, 0, { 22 }, 1, 0 },
	{ 23, 6, TCP, "2001:db8:42::100", 443, SP_SVC_F_EXTERNAL, { 23 }, 1, 0 },
	{ 24, 6, TCP, NULL, 30080, SP_SVC_F_NODEPORT, { 24 }, 1, 0 },
	{ 26, 6, TCP, "fd00:96::20", 80, 0, { 0 }, 0, 0 },
	{ 27, 6, UDP, "fd00:96::20", 53, 0, { 0 }, 0, 0 },
	{ 28, 6, TCP, "fd00:96::30", 80, 0, { 91 }, 1, 0 },
	{ 29, 6, TCP, "fd00:96::40", 80, 0, { 29 }, 1, 0 },
};

static const struct {
	int family;
	const char *addr;
} fx_node_addrs[] = { { 4, "172.16.0.2" }, { 4, "172.16.1.2" }, { 6, "fd00:16::2" } };

static const struct fx_service *fx_find(uint32_t svc_id)
{
	size_t i;

	for (i = 0; i < sizeof(fx_services) / sizeof(fx_services[0]); i++)
		if (fx_services[i].svc_id == svc_id)
			return &fx_services[i];
	return NULL;
}

/* sp_svc_live[svc_id], as the daemon's sync keeps it. */
static int set_svc_live(uint32_t svc_id, bool live)
{
	uint32_t v = live;

	if (bpf_map_update_elem(bpf_map__fd(skel->maps.sp_svc_live), &svc_id, &v, BPF_ANY)) {
		fprintf(stderr, "  write sp_svc_live: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

static int fx_write_service(const struct fx_service *s)
{
	struct sp_svc v;

	memset(&v, 0, sizeof(v));
	v.svc_id = s->svc_id;
	v.region = s->region ? s->region : s->svc_id * 16;
	v.n = s->n;
	v.m = s->n ? MAGLEV_M : 0;
	v.flags = s->flags;
	if (s->n && !s->region && write_region(v.region, s->ids, s->n, MAGLEV_M, s->pick))
		return -1;
	if (set_svc_live(s->svc_id, true))
		return -1;
	return set_service(s->family, s->vip, s->port, s->proto, &v);
}

/* (Re)write the whole fixture and empty conntrack. */
static int fixture_reset(void)
{
	size_t i;
	uint8_t one = 1;

	ct_flush();
	map_flush(fd_services, sizeof(struct sp_svc_key));
	backends_flush();
	map_flush(fd_node_addrs, sizeof(struct sp_node_addr_key));
	for (i = 0; i < sizeof(fx_backends) / sizeof(fx_backends[0]); i++)
		if (set_backend(fx_backends[i].id, fx_backends[i].family, fx_backends[i].addr,
				fx_backends[i].port))
			return -1;
	for (i = 0; i < sizeof(fx_services) / sizeof(fx_services[0]); i++)
		if (fx_write_service(&fx_services[i]))
			return -1;
	for (i = 0; i < sizeof(fx_node_addrs) / sizeof(fx_node_addrs[0]); i++) {
		struct sp_node_addr_key k;

		memset(&k, 0, sizeof(k));
		k.addr = addr_of(fx_node_addrs[i].family, fx_node_addrs[i].addr);
		k.family = (uint8_t)fx_node_addrs[i].family;
		if (sp_sync_dst_filter_add(fd_dst_filter, &k.addr) ||
		    bpf_map_update_elem(fd_node_addrs, &k, &one, BPF_ANY)) {
			fprintf(stderr, "  write sp_node_addrs: %s\n", strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Counters                                                            */
/* ------------------------------------------------------------------ */

#define SF(x) { #x, offsetof(struct sp_stats, x) }
static const struct {
	const char *name;
	size_t off;
} stat_fields[] = {
	SF(rx_packets), SF(not_service),  SF(svc_packets),   SF(new_flows),
	SF(ct_fwd_hits), SF(ct_rev_hits), SF(ct_backend_gone), SF(hairpin),
	SF(rejects),	SF(redirects),	  SF(to_stack),	      SF(ipv4_options),
	SF(ipv6_ext_hdrs), SF(frag_first), SF(ct_insert_fail), SF(ct_partner_miss),
	SF(ct_adopted), SF(icmp_translated), SF(frag_later_natted), SF(snat_flows),
	SF(snat_to_tc), SF(local_short_circuit), SF(ct_clash_remapped), SF(dsr_flows),
	SF(dsr_ingress), SF(dsr_fallback_snat), SF(ct_seq_ignored),
};
#define N_STAT_FIELDS (sizeof(stat_fields) / sizeof(stat_fields[0]))

/* Bits for the counters of a row, in stat_fields order. */
enum {
	ST_RX = 1u << 0,
	ST_NOT_SVC = 1u << 1,
	ST_SVC = 1u << 2,
	ST_NEW = 1u << 3,
	ST_FWD_HIT = 1u << 4,
	ST_REV_HIT = 1u << 5,
	ST_BE_GONE = 1u << 6,
	ST_HAIRPIN = 1u << 7,
	ST_REJECT = 1u << 8,
	ST_REDIRECT = 1u << 9,
	ST_TO_STACK = 1u << 10,
	ST_V4OPT = 1u << 11,
	ST_V6EXT = 1u << 12,
	ST_FRAG1 = 1u << 13,
	ST_CT_FAIL = 1u << 14,
	ST_PARTNER_MISS = 1u << 15,
	ST_ADOPTED = 1u << 16,
	ST_ICMP = 1u << 17,
	ST_FRAG_NAT = 1u << 18,
	ST_SEQ_IGNORED = 1u << 26,
};

/* counted while parsing, by the hooks that count (not the quiet uplink hook) */
#define ST_PARSE (ST_V4OPT | ST_V6EXT | ST_FRAG1)

#define RB(r) (1u << (r)) /* a reason as a bit */

static const char *const reason_names[] = SP_REASON_NAMES;

/* Per-Service counter expectations. */
enum {
	SV_PKT = 1 << 0, /* packets +1, bytes + frame length */
	SV_NEW = 1 << 1,
	SV_REJECT = 1 << 2,
	SV_DROP = 1 << 3,
};

enum hook { H_XDP, H_TC_INGRESS, H_TC_EGRESS, H_TC_UPLINK };

struct snap {
	struct sp_stats st; /* the slot of the program under test */
	uint64_t others; /* every field of every other slot, summed */
	uint64_t rx_bytes;
	struct sp_reason_count rs[SP_R_MAX];
	struct sp_svc_stats svc;
};

static uint64_t field(const struct sp_stats *s, size_t off)
{
	return *(const uint64_t *)((const char *)s + off);
}

static int read_percpu(int fd, uint32_t key, void *sum, size_t size)
{
	size_t words = size / 8, c, i;
	uint64_t *vals = calloc((size_t)ncpus, size), *out = sum;

	if (!vals)
		return -1;
	memset(sum, 0, size);
	if (bpf_map_lookup_elem(fd, &key, vals)) {
		free(vals);
		return -1;
	}
	for (c = 0; c < (size_t)ncpus; c++)
		for (i = 0; i < words; i++)
			out[i] += vals[c * words + i];
	free(vals);
	return 0;
}

/* The sp_stats slot of the program under test (enum sp_stats_slot). */
static uint32_t cur_slot;

static uint32_t slot_of(enum hook h)
{
	return h == H_XDP ? SP_SLOT_XDP : h == H_TC_INGRESS ? SP_SLOT_POD :
	       h == H_TC_EGRESS ? SP_SLOT_HOST : SP_SLOT_UPLINK_TC;
}

static void take_snap(struct snap *s, uint32_t svc_id)
{
	struct sp_stats o;
	uint32_t r, k;
	size_t i;

	memset(s, 0, sizeof(*s));
	if (read_percpu(fd_stats, cur_slot, &s->st, sizeof(s->st)))
		fprintf(stderr, "  read sp_stats: %s\n", strerror(errno));
	for (k = 0; k < SP_SLOTS; k++) {
		if (k == cur_slot || read_percpu(fd_stats, k, &o, sizeof(o)))
			continue;
		for (i = 0; i < sizeof(o) / 8; i++)
			s->others += ((uint64_t *)&o)[i];
	}
	s->rx_bytes = s->st.rx_bytes;
	for (r = 0; r < SP_R_MAX; r++)
		if (read_percpu(fd_reasons, r, &s->rs[r], sizeof(s->rs[r])))
			fprintf(stderr, "  read sp_reasons[%u]: %s\n", r, strerror(errno));
	if (svc_id && read_percpu(fd_svc_stats, svc_id, &s->svc, sizeof(s->svc)))
		fprintf(stderr, "  read sp_svc_stats[%u]: %s\n", svc_id, strerror(errno));
}

/* ------------------------------------------------------------------ */
/* The table                                                           */
/* ------------------------------------------------------------------ */

enum expect {
	E_NAT, /* rewritten into `out`, passed on */
	E_SAME, /* passed byte-identical */
	E_REJECT, /* TC answers with a TCP RST / ICMP unreachable; XDP passes */
	E_DROP, /* dropped with a reason */
};

/* The flow's state afterwards: CT_x checks state SP_CT_x + 1 ... */
enum ct_want {
	CT_ANY = 0, /* not checked */
	CT_NEW,
	CT_EST,
	CT_CLOSING,
	CT_FIN_WAIT,
	CT_TIME_WAIT,
	CT_ADOPTED, /* ESTABLISHED with SP_CT_F_UNREPLIED: the SYN timeout */
};

struct row;
struct flow;
typedef int (*before_fn)(const struct row *r);

struct row {
	char name[96];
	struct pkt_spec in;
	enum expect exp;
	struct pkt_spec out; /* E_NAT: the expected frame */
	bool keep_ct; /* continue the previous rows' flows (else conntrack is emptied) */
	before_fn before; /* map changes made before the packet */
	uint32_t stats; /* counters that must grow by exactly 1 (ST_RX is implied) */
	uint32_t reasons; /* one of these reasons grows by 1 (0: none may grow) */
	uint32_t svc_id; /* per-Service counters to check (0: none) */
	uint32_t svc; /* SV_* */
	enum ct_want ct; /* state of the FWD entry of `in` afterwards */
	const struct flow *ct_of; /* a reply row: check the state of this flow instead */
	/* ct_detail: check both entries field by field (a flow just created or re-selected) */
	bool ct_detail;
	uint32_t backend_id;
	bool hairpin, nodeport;
	bool empty_svc; /* to a Service with no endpoint: XDP leaves it to TC */
	/* E_NAT of a later fragment: the expected frame is `in` with only the
	 * IP addresses of `out` (its payload, which holds the datagram's
	 * middle, is not rewritten) */
	bool l3_only;
	bool ttl_expiring; /* TTL 1, forwarded by TC ingress: to the stack, not redirected */
	/* 1 + enum hook: the row runs on that program only (its own behaviour) */
	int only;
};

#define MAX_ROWS 600
static struct row rows[MAX_ROWS];
static int nrows;

static struct row *add_row(const char *fmt, ...)
{
	struct row *r;
	va_list ap;

	if (nrows >= MAX_ROWS) {
		fprintf(stderr, "too many rows\n");
		abort();
	}
	r = &rows[nrows++];
	memset(r, 0, sizeof(*r));
	va_start(ap, fmt);
	vsnprintf(r->name, sizeof(r->name), fmt, ap);
	va_end(ap);
	return r;
}

/* A client -> Service flow and where it must go. */
struct flow {
	const char *name;
	int family;
	uint8_t proto;
	const char *client, *vip, *backend;
	uint16_t cport, vport, bport;
	uint32_t svc_id, backend_id;
	bool nodeport, hairpin;
};

static const struct flow tcp_flows[] = {
	{ "v4_clusterip", 4, TCP, "10.1.0.7", "10.96.0.10", "10.1.0.11", 40001, 80, 8080, 1, 1 },
	{ "v4_loadbalancer", 4, TCP, "198.51.100.7", "192.0.2.100", "10.1.0.13", 40002, 443, 8443,
	  3, 3 },
	{ "v4_nodeport_addr1", 4, TCP, "198.51.100.7", "172.16.0.2", "10.1.0.14", 40003, 30080,
	  8080, 4, 4, true },
	{ "v4_nodeport_addr2", 4, TCP, "198.51.100.8", "172.16.1.2", "10.1.0.14", 40004, 30080,
	  8080, 4, 4, true },
	{ "v4_hairpin", 4, TCP, "10.1.0.5", "10.96.0.40", "10.1.0.5", 40005, 80, 8080, 9, 9, false,
	  true },
	{ "v4_same_port", 4, TCP, "10.1.0.7", "10.96.0.70", "10.1.0.70", 40006, 80, 80, 13, 70 },
	{ "v6_clusterip", 6, TCP, "fd00:1::7", "fd00:96::10", "fd00:1::11", 40011, 80, 8080, 21,
	  21 },
	{ "v6_loadbalancer", 6, TCP, "2001:db8:100::7", "2001:db8:42::100", "fd00:1::13", 40012,
	  443, 8443, 23, 23 },
	{ "v6_nodeport", 6, TCP, "2001:db8:100::7", "fd00:16::2", "fd00:1::14", 40013, 30080, 8080,
	  24, 24, true },
	{ "v6_hairpin", 6, TCP, "fd00:1::5", "fd00:96::40", "fd00:1::5", 40014, 80, 8080, 29, 29,
	  false, true },
};

static const struct flow udp_flows[] = {
	{ "v4_udp_clusterip", 4, UDP, "10.1.0.7", "10.96.0.10", "10.1.0.12", 50001, 53, 5353, 2,
	  2 },
	{ "v4_udp_nodeport", 4, UDP, "198.51.100.7", "172.16.0.2", "10.1.0.15", 50002, 30053, 5353,
	  5, 5, true },
	{ "v6_udp_clusterip", 6, UDP, "fd00:1::7", "fd00:96::10", "fd00:1::12", 50003, 53, 5353, 22,
	  22 },
};

static const char *hairpin_of(int family)
{
	return family == 4 ? HAIRPIN_V4 : HAIRPIN_V6;
}

/* client -> frontend */
static struct pkt_spec flow_req(const struct flow *f, uint8_t flags, uint32_t seq, uint32_t ack,
				uint16_t payload)
{
	struct pkt_spec s = {
		.family = (uint8_t)f->family,
		.proto = f->proto,
		.saddr = f->client,
		.daddr = f->vip,
		.sport = f->cport,
		.dport = f->vport,
		.tcp_flags = flags,
		.seq = seq,
		.ack = ack,
		.win = 64240,
		.payload_len = payload,
		.payload_seed = (uint8_t)(seq + payload),
		.ip_id = (uint16_t)(0x1000 + seq),
		.df = true,
	};

	if (flags == PKT_SYN)
		s.tcp_optlen = 20; /* as Linux clients send: the RST/NAT code must not care */
	return s;
}

/* backend -> client (or -> hairpin address) */
static struct pkt_spec flow_reply(const struct flow *f, uint8_t flags, uint32_t seq, uint32_t ack,
				  uint16_t payload)
{
	struct pkt_spec s = flow_req(f, flags, seq, ack, payload);

	s.saddr = f->backend;
	s.sport = f->bport;
	s.daddr = f->hairpin ? hairpin_of(f->family) : f->client;
	s.dport = f->cport;
	s.tcp_optlen = 0;
	return s;
}

/* A client packet of flow f, DNATed. */
static struct row *flow_fwd_row(const struct flow *f, const char *step, struct pkt_spec in)
{
	struct row *r = add_row("%s/%s", f->name, step);

	r->in = in;
	r->exp = E_NAT;
	r->out = pkt_spec_nat(&in, f->hairpin ? hairpin_of(f->family) : NULL, 0, f->backend,
			      f->bport);
	r->keep_ct = true;
	r->svc_id = f->svc_id;
	r->svc = SV_PKT;
	r->stats = ST_SVC | ST_FWD_HIT | ST_TO_STACK;
	r->backend_id = f->backend_id;
	r->hairpin = f->hairpin;
	r->nodeport = f->nodeport;
	return r;
}

/* The first packet of flow f: a new flow, both conntrack entries checked. */
static struct row *flow_new_row(const struct flow *f, const char *step, struct pkt_spec in)
{
	struct row *r = flow_fwd_row(f, step, in);

	r->keep_ct = false;
	r->stats = ST_SVC | ST_NEW | ST_TO_STACK | (f->hairpin ? ST_HAIRPIN : 0);
	r->svc = SV_PKT | SV_NEW;
	r->ct_detail = true;
	return r;
}

/* A reply of flow f, reverse-NATed. */
static struct row *flow_rev_row(const struct flow *f, const char *step, struct pkt_spec in)
{
	struct row *r = add_row("%s/%s", f->name, step);

	r->in = in;
	r->exp = E_NAT;
	r->out = pkt_spec_nat(&in, f->vip, f->vport, f->hairpin ? f->client : NULL, 0);
	r->keep_ct = true;
	r->stats = ST_REV_HIT | ST_TO_STACK;
	r->hairpin = f->hairpin;
	return r;
}

static void add_tcp_flow_rows(const struct flow *f)
{
	struct row *r;

	r = flow_new_row(f, "syn", flow_req(f, PKT_SYN, 1000, 0, 0));
	r->ct = CT_NEW;
	flow_rev_row(f, "synack_reply", flow_reply(f, PKT_SYN | PKT_ACK, 5000, 1001, 0));
	r = flow_fwd_row(f, "ack_data", flow_req(f, PKT_ACK | PKT_PSH, 1001, 5001, 100));
	r->ct = CT_EST;
	flow_rev_row(f, "reply_data", flow_reply(f, PKT_ACK | PKT_PSH, 5001, 1101, 300));
	r = flow_fwd_row(f, "fin", flow_req(f, PKT_FIN | PKT_ACK, 1101, 5301, 0));
	r->ct = CT_FIN_WAIT;
	r = flow_rev_row(f, "fin_reply", flow_reply(f, PKT_FIN | PKT_ACK, 5301, 1102, 0));
	r->ct_of = f;
	r->ct = CT_TIME_WAIT;
	r = flow_fwd_row(f, "last_ack", flow_req(f, PKT_ACK, 1102, 5302, 0));
	r->ct = CT_TIME_WAIT; /* stays */
}

static void add_udp_flow_rows(const struct flow *f)
{
	struct row *r;
	struct pkt_spec s;

	r = flow_new_row(f, "request", flow_req(f, 0, 1, 0, 40));
	r->ct = CT_NEW;
	flow_rev_row(f, "reply", flow_reply(f, 0, 2, 0, 120));
	r = flow_fwd_row(f, "request2", flow_req(f, 0, 3, 0, 33));
	r->ct = CT_NEW; /* UDP entries stay NEW (SP_CT_NEW: "or UDP") */
	if (f->family == 4) {
		/* IPv4 UDP may carry no checksum: it must stay 0 after NAT. */
		s = flow_req(f, 0, 4, 0, 17);
		s.udp_csum_zero = true;
		flow_fwd_row(f, "request_no_checksum", s);
		s = flow_reply(f, 0, 5, 0, 9);
		s.udp_csum_zero = true;
		flow_rev_row(f, "reply_no_checksum", s);
	}
}

/* The UDP checksum field of a frame built from s (after NAT: out). */
static uint16_t udp_csum_of(const struct pkt_spec *s)
{
	struct pkt p;
	struct pkt_info pi;
	char why[128];

	if (pkt_build(s, &p) || !pkt_parse(p.data, p.len, &pi, why, sizeof(why)))
		return 0;
	return pkt_get16(p.data + pi.l4 + 6);
}

/*
 * UDP whose checksum after NAT computes to 0, which UDP must send as
 * 0xffff (0 means "no checksum"; RFC 768). Found by searching the client
 * port (requests) and the payload (replies).
 */
static void add_udp_csum_zero_rows(const struct flow *f0)
{
	struct flow f = *f0;
	struct pkt_spec in, out;
	struct row *r;
	uint32_t port, v;
	char step[64];

	for (v = 0; v < 4 * 45536; v++) {
		port = 20000 + v % 45536; /* the sum moves by one per port: vary the payload too */
		f.cport = (uint16_t)port;
		in = flow_req(&f, 0, 1, 0, (uint16_t)(24 + v / 45536));
		out = pkt_spec_nat(&in, NULL, 0, f.backend, f.bport);
		if (udp_csum_of(&out) == 0xffff)
			break;
	}
	if (v == 4 * 45536) {
		fprintf(stderr, "no client port found whose NATed checksum is 0\n");
		abort();
	}
	snprintf(step, sizeof(step), "request_nat_checksum_computes_to_0");
	r = flow_new_row(&f, step, in);
	r->ct = CT_NEW;
	for (v = 0; v < 65536; v++) {
		in = flow_reply(&f, 0, 1, 0, (uint16_t)(1 + (v >> 8)));
		in.payload_seed = (uint8_t)v;
		out = pkt_spec_nat(&in, f.vip, f.vport, NULL, 0);
		if (udp_csum_of(&out) == 0xffff)
			break;
	}
	if (v == 65536) {
		fprintf(stderr, "no reply payload found whose NATed checksum is 0\n");
		abort();
	}
	flow_rev_row(&f, "reply_nat_checksum_computes_to_0", in);
}

/* A single packet that must pass untouched. */
static struct row *same_row(const char *name, struct pkt_spec in, uint32_t stats,
			    uint32_t reasons)
{
	struct row *r = add_row("%s", name);

	r->in = in;
	r->exp = E_SAME;
	r->stats = stats;
	r->reasons = reasons;
	return r;
}

/* ---- before-hooks: map changes in the middle of a flow ---- */

static int ct_key_from_spec(const struct pkt_spec *s, uint8_t dir, struct sp_ct_key *k)
{
	memset(k, 0, sizeof(*k));
	k->saddr = addr_of(s->family, s->saddr);
	k->daddr = addr_of(s->family, s->daddr);
	k->sport = htons(s->sport);
	k->dport = htons(s->dport);
	k->proto = s->proto;
	k->family = s->family;
	k->dir = dir;
	return 0;
}

static bool cur_hook_tracks = true; /* false: the program under test creates no conntrack */

/* Set the deadline of the entry at k to d. -ENOENT if there is none. */
static int ct_entry_set_expires(const struct sp_ct_key *k, uint64_t d)
{
	struct sp_ct_val v;

	if (sp_ct_lookup(&ct_maps, k, &v))
		return -ENOENT;
	v.expires = d;
	return sp_ct_update(&ct_maps, k, &v, BPF_EXIST);
}

static int expire_entry(const struct row *r, uint8_t dir)
{
	struct sp_ct_key k;
	int err;

	ct_key_from_spec(&r->in, dir, &k);
	err = ct_entry_set_expires(&k, 1); /* long past */
	if (err == -ENOENT) {
		if (!cur_hook_tracks)
			return 0;
		fprintf(stderr, "  before: no %s entry to expire\n", dir == SP_CT_FWD ? "FWD" : "REV");
		return -1;
	}
	return err;
}

static int before_expire_fwd(const struct row *r)
{
	return expire_entry(r, SP_CT_FWD);
}

static int before_expire_rev(const struct row *r)
{
	return expire_entry(r, SP_CT_REV);
}

/* Service 8 (v4) / 28 (v6): a new region without the flow's backend. */
static int switch_region(uint32_t svc_id, uint32_t region, const uint32_t *ids, uint16_t n)
{
	const struct fx_service *s = fx_find(svc_id);
	struct sp_svc v;

	memset(&v, 0, sizeof(v));
	v.svc_id = svc_id;
	v.region = region;
	v.m = MAGLEV_M;
	v.n = n;
	if (write_region(region, ids, n, MAGLEV_M, 0))
		return -1;
	return set_service(s->family, s->vip, s->port, s->proto, &v);
}

static int before_region_b_v4(const struct row *r)
{
	static const uint32_t ids[] = { 82, 83 };

	(void)r;
	return switch_region(8, 4000, ids, 2);
}

static int before_region_b_v6(const struct row *r)
{
	static const uint32_t ids[] = { 92 };

	(void)r;
	return switch_region(28, 4020, ids, 1);
}

static int before_delete_81(const struct row *r)
{
	(void)r;
	return backend_clear(81);
}

static int before_delete_91(const struct row *r)
{
	(void)r;
	return backend_clear(91);
}

/* A backend that keeps its id but changes address (ids are reused). */
static int before_readdress_70(const struct row *r)
{
	(void)r;
	return set_backend(70, 4, "10.1.0.71", 80);
}

/* Conntrack keeps a flow on its backend across a change of the Service's
 * backend set; only the backend's removal re-selects. */
static void add_ct_change_rows(int family)
{
	const bool v4 = family == 4;
	const struct flow a = {
		v4 ? "v4_ctchange" : "v6_ctchange", family, TCP, v4 ? "10.1.0.7" : "fd00:1::7",
		v4 ? "10.96.0.30" : "fd00:96::30", v4 ? "10.1.0.31" : "fd00:1::31", 41001, 80,
		8080, v4 ? 8 : 28, v4 ? 81 : 91,
	};
	static struct flow b_kept[2];
	struct flow b = a, c = a;
	struct row *r;

	b.backend = v4 ? "10.1.0.32" : "fd00:1::32";
	b.backend_id = v4 ? 82 : 92;
	c = b;
	c.cport = 41002;

	r = flow_new_row(&a, "syn_to_A", flow_req(&a, PKT_SYN, 1000, 0, 0));
	r->ct = CT_NEW;
	flow_rev_row(&a, "synack_from_A", flow_reply(&a, PKT_SYN | PKT_ACK, 7000, 1001, 0));
	r = flow_fwd_row(&a, "ack_after_backend_set_changed_stays_on_A",
			 flow_req(&a, PKT_ACK, 1001, 7001, 10));
	r->before = v4 ? before_region_b_v4 : before_region_b_v6;
	r->ct = CT_EST;
	flow_rev_row(&a, "reply_from_A", flow_reply(&a, PKT_ACK, 7001, 1011, 50));
	/* a new connection goes by the new table */
	r = flow_new_row(&c, "new_flow_goes_to_B", flow_req(&c, PKT_SYN, 3000, 0, 0));
	r->keep_ct = true;
	r->ct = CT_NEW;
	/* A removed from the Service: the established connection keeps going
	 * to A (kube-proxy's conntrack does; A may still be running), counted
	 * ct_backend_gone; only a new connection picks from the new table. */
	r = flow_fwd_row(&a, "ack_after_A_removed_stays_on_A",
			 flow_req(&a, PKT_ACK, 1011, 7051, 10));
	r->before = v4 ? before_delete_81 : before_delete_91;
	r->stats |= ST_BE_GONE;
	r->ct = CT_EST;
	r = flow_rev_row(&a, "reply_from_A_after_removal", flow_reply(&a, PKT_ACK, 7051, 1021, 20));
	r = flow_fwd_row(&b, "syn_reusing_the_port_after_A_removed_goes_to_B",
			 flow_req(&b, PKT_SYN, 50000, 0, 0));
	r->stats = ST_SVC | ST_BE_GONE | ST_NEW | ST_TO_STACK;
	r->svc = SV_PKT | SV_NEW;
	r->ct = CT_NEW;
	r->ct_detail = true;
	r = flow_rev_row(&b, "synack_from_B", flow_reply(&b, PKT_SYN | PKT_ACK, 9000, 50001, 0));
	b_kept[v4 ? 0 : 1] = b; /* rows outlive this function */
	r->ct_of = &b_kept[v4 ? 0 : 1];
	r->ct = CT_EST;
}

/*
 * The Service of svc_id deleted. A TCP frontend stays as the daemon leaves
 * it (SP_SVC_F_GONE, no backends: its established connections go on); a
 * UDP one is deleted.
 */
static int service_gone(uint32_t svc_id)
{
	const struct fx_service *s = fx_find(svc_id);
	struct sp_svc_key k;
	struct sp_svc v;

	if (s->proto == UDP) {
		memset(&k, 0, sizeof(k));
		k.addr = addr_of(s->family, s->vip);
		k.port = htons(s->port);
		k.proto = s->proto;
		k.family = (uint8_t)s->family;
		return bpf_map_delete_elem(fd_services, &k) ? -1 : 0;
	}
	memset(&v, 0, sizeof(v));
	v.svc_id = svc_id;
	v.flags = SP_SVC_F_GONE | (s->flags & SP_SVC_F_NODEPORT);
	return set_service(s->family, s->vip, s->port, s->proto, &v);
}

/* The Service of the row's flow (r->svc_id) deleted. */
static int before_service_gone(const struct row *r)
{
	return service_gone(r->svc_id);
}

/* UDP Service 16: its row is no flow row (no svc_id: nothing counted). */
static int before_gone_16(const struct row *r)
{
	(void)r;
	return service_gone(16);
}

/* Service 18's frontend deleted outright (not retained), its svc_id still
 * allocated (as a Service's whose other ports live on). */
static int before_fe_deleted_18(const struct row *r)
{
	struct sp_svc_key k;

	(void)r;
	memset(&k, 0, sizeof(k));
	k.addr = addr_of(4, "10.96.0.82");
	k.port = htons(80);
	k.proto = TCP;
	k.family = 4;
	return bpf_map_delete_elem(fd_services, &k) ? -1 : 0;
}

static int before_svc_id_released_18(const struct row *r)
{
	(void)r;
	return set_svc_live(18, false);
}

/*
 * A Service deleted while connections through it are open. As under
 * kube-proxy (which deletes its rules but not the kernel's TCP conntrack
 * entries), an established TCP connection goes on, both ways, as long as
 * its endpoint answers; a new connection, or a packet of no flow, is no
 * Service's any more and passes untouched. UDP flows end with the Service
 * (kube-proxy clears UDP entries).
 */
static void add_gone_rows(void)
{
	static const struct flow tcp[] = {
		{ "v4_svc_deleted", 4, TCP, "10.1.0.7", "10.96.0.80", "10.1.0.11", 43001, 80, 8080,
		  15, 1 },
		{ "v6_svc_deleted", 6, TCP, "fd00:1::7", "fd00:96::80", "fd00:1::11", 43002, 80,
		  8080, 30, 21 },
		{ "v4_nodeport_deleted", 4, TCP, "198.51.100.9", "172.16.0.2", "10.1.0.14", 43003,
		  30090, 8080, 17, 4, true },
	};
	const struct flow u = { "v4_udp_svc_deleted", 4, UDP, "10.1.0.7", "10.96.0.80",
				"10.1.0.12", 43004, 53, 5353, 16, 2 };
	struct flow other;
	struct row *r;
	size_t i;

	for (i = 0; i < sizeof(tcp) / sizeof(tcp[0]); i++) {
		const struct flow *f = &tcp[i];

		r = flow_new_row(f, "syn", flow_req(f, PKT_SYN, 1000, 0, 0));
		r->ct = CT_NEW;
		flow_rev_row(f, "synack", flow_reply(f, PKT_SYN | PKT_ACK, 5000, 1001, 0));
		r = flow_fwd_row(f, "ack_after_deletion_still_dnated",
				 flow_req(f, PKT_ACK | PKT_PSH, 1001, 5001, 100));
		r->before = before_service_gone;
		r->ct = CT_EST;
		flow_rev_row(f, "reply_after_deletion_still_reverse_nated",
			     flow_reply(f, PKT_ACK | PKT_PSH, 5001, 1101, 300));
		/* a new connection from another port: no Service */
		other = *f;
		other.cport = (uint16_t)(f->cport + 100);
		r = add_row("%s/new_connection_passes_untouched", f->name);
		r->in = flow_req(&other, PKT_SYN, 7000, 0, 0);
		r->exp = E_SAME;
		r->keep_ct = true;
		r->stats = ST_NOT_SVC;
		/* mid-stream, of no flow: no Service either */
		r = add_row("%s/packet_of_no_flow_passes_untouched", f->name);
		r->in = flow_req(&other, PKT_ACK, 7001, 9000, 10);
		r->exp = E_SAME;
		r->keep_ct = true;
		r->stats = ST_NOT_SVC;
		/* and the established connection is still served */
		r = flow_fwd_row(f, "fin_still_dnated", flow_req(f, PKT_FIN | PKT_ACK, 1101, 5301, 0));
		r->ct = CT_FIN_WAIT;
	}

	/* The conntrack-first path: an established packet is served from its
	 * entry while the entry's svc_id is allocated, even without its
	 * frontend (only the Service path would miss); once the id is
	 * released, it goes by the Service path, which finds no frontend. */
	{
		const struct flow c = { "v4_ct_first", 4, TCP, "10.1.0.7", "10.96.0.82",
					"10.1.0.11", 43005, 80, 8080, 18, 1 };

		r = flow_new_row(&c, "syn", flow_req(&c, PKT_SYN, 1000, 0, 0));
		r->ct = CT_NEW;
		flow_rev_row(&c, "synack", flow_reply(&c, PKT_SYN | PKT_ACK, 5000, 1001, 0));
		r = flow_fwd_row(&c, "ack_served_from_conntrack_while_svc_id_live",
				 flow_req(&c, PKT_ACK, 1001, 5001, 10));
		r->before = before_fe_deleted_18;
		r->ct = CT_EST;
		r = add_row("%s/ack_after_svc_id_released_passes_untouched", c.name);
		r->in = flow_req(&c, PKT_ACK, 1011, 5001, 10);
		r->exp = E_SAME;
		r->keep_ct = true;
		r->before = before_svc_id_released_18;
		r->stats = ST_NOT_SVC;
	}

	r = flow_new_row(&u, "request", flow_req(&u, 0, 1, 0, 40));
	r->ct = CT_NEW;
	flow_rev_row(&u, "reply", flow_reply(&u, 0, 2, 0, 120));
	r = add_row("%s/request_after_deletion_passes_untouched", u.name);
	r->in = flow_req(&u, 0, 3, 0, 33);
	r->exp = E_SAME;
	r->keep_ct = true;
	r->before = before_gone_16;
	r->stats = ST_NOT_SVC;
}

static void add_ct_misc_rows(void)
{
	const struct flow f = { "v4_ctexpiry", 4, TCP, "10.1.0.8", "10.96.0.10", "10.1.0.11",
				42001, 80, 8080, 1, 1 };
	const struct flow g = { "v4_ctreaddress", 4, TCP, "10.1.0.8", "10.96.0.70", "10.1.0.71",
				42002, 80, 80, 13, 70 };
	const struct flow h = { "v4_ctrst", 4, TCP, "10.1.0.9", "10.96.0.10", "10.1.0.11", 42003,
				80, 8080, 1, 1 };
	const struct flow q = { "v4_ctreuse", 4, TCP, "10.1.0.9", "10.96.0.10", "10.1.0.11", 42004,
				80, 8080, 1, 1 };
	struct flow g0 = g;
	struct row *r;

	/* An expired FWD entry is dead: the next packet is a new flow. */
	r = flow_new_row(&f, "syn", flow_req(&f, PKT_SYN, 1000, 0, 0));
	r->ct = CT_NEW;
	r = flow_new_row(&f, "ack_after_fwd_expired_is_new_flow",
			 flow_req(&f, PKT_ACK, 1001, 5001, 0));
	r->keep_ct = true;
	r->before = before_expire_fwd;
	r->stats |= ST_ADOPTED;
	r->ct = CT_ADOPTED; /* mid-stream adoption, on the SYN timeout until answered */
	/* An expired REV entry: the reply is no longer ours. */
	r = add_row("v4_ctexpiry/reply_after_rev_expired_passes");
	r->in = flow_reply(&f, PKT_ACK, 5001, 1001, 0);
	r->exp = E_SAME;
	r->keep_ct = true;
	r->before = before_expire_rev;
	r->stats = ST_NOT_SVC;

	/* A backend id reused for a different address re-selects. */
	g0.backend = "10.1.0.70";
	r = flow_new_row(&g0, "syn", flow_req(&g0, PKT_SYN, 1000, 0, 0));
	r->ct = CT_NEW;
	/* (its connection keeps the address it was DNATed to) */
	r = flow_fwd_row(&g0, "ack_after_backend_id_readdressed_stays",
			 flow_req(&g0, PKT_ACK, 1001, 5001, 0));
	r->before = before_readdress_70;
	r->stats |= ST_BE_GONE;
	r->ct = CT_EST;
	/* a new connection from the same port goes to the new address */
	r = flow_fwd_row(&g, "syn_after_backend_id_readdressed_new_address",
			 flow_req(&g, PKT_SYN, 90000, 0, 0));
	r->stats = ST_SVC | ST_BE_GONE | ST_NEW | ST_TO_STACK;
	r->svc = SV_PKT | SV_NEW;
	r->ct = CT_NEW;
	r->ct_detail = true;

	/* RST closes. */
	r = flow_new_row(&h, "syn", flow_req(&h, PKT_SYN, 1000, 0, 0));
	r->ct = CT_NEW;
	r = flow_fwd_row(&h, "ack", flow_req(&h, PKT_ACK, 1001, 5001, 0));
	r->ct = CT_EST;
	r = flow_fwd_row(&h, "rst", flow_req(&h, PKT_RST | PKT_ACK, 1001, 5001, 0));
	r->ct = CT_CLOSING;
	flow_rev_row(&h, "rst_reply", flow_reply(&h, PKT_RST, 5001, 0, 0));

	/* A fresh SYN on the tuple of a closing connection starts a new flow. */
	r = flow_new_row(&q, "syn", flow_req(&q, PKT_SYN, 1000, 0, 0));
	r->ct = CT_NEW;
	r = flow_fwd_row(&q, "fin", flow_req(&q, PKT_FIN | PKT_ACK, 1001, 5001, 0));
	r->ct = CT_FIN_WAIT;
	r = flow_new_row(&q, "syn_reusing_closed_tuple_is_new_flow",
			 flow_req(&q, PKT_SYN, 90000, 0, 0));
	r->keep_ct = true;
	r->ct = CT_NEW;
}

/*
 * Connection integrity (issue 9): sequences that used to leave a reply
 * without its reverse NAT while the client's entry lived on.
 */
static void add_ct_integrity_rows(void)
{
	/* 1a: backend RST, then the client reconnects from the same port. */
	static const struct flow f = { "v4_rst_reuse", 4, TCP, "10.1.0.9", "10.96.0.10",
				       "10.1.0.11", 42010, 80, 8080, 1, 1 };
	/* 2: one client port to two frontends sharing a backend. */
	static const struct flow x = { "v4_clash_x", 4, TCP, "10.1.0.9", "10.96.0.10",
				       "10.1.0.11", 42011, 80, 8080, 1, 1 };
	/* 5: a host connection whose local port has a NodePort's number. */
	static const struct flow h = { "v4_host_port_30080", 4, TCP, "172.16.0.2", "10.96.0.10",
				       "10.1.0.11", 30080, 80, 8080, 1, 1 };
	/* 1c: a FIN or RST far from its sender's sequence numbers. */
	static const struct flow w = { "v4_seq_window", 4, TCP, "10.1.0.9", "10.96.0.10",
				       "10.1.0.11", 42012, 80, 8080, 1, 1 };
	/* 8: the shortest UDP frame (42 bytes, no payload). */
	static const struct flow u = { "v4_udp_empty", 4, UDP, "10.1.0.7", "10.96.0.10",
				       "10.1.0.12", 50011, 53, 5353, 2, 2 };
	struct pkt_spec s;
	struct row *r;

	r = flow_new_row(&f, "syn", flow_req(&f, PKT_SYN, 1000, 0, 0));
	r->ct = CT_NEW;
	flow_rev_row(&f, "synack", flow_reply(&f, PKT_SYN | PKT_ACK, 5000, 1001, 0));
	r = flow_fwd_row(&f, "ack", flow_req(&f, PKT_ACK, 1001, 5001, 0));
	r->ct = CT_EST;
	r = flow_rev_row(&f, "backend_rst", flow_reply(&f, PKT_RST | PKT_ACK, 5001, 1001, 0));
	r->ct_of = &f;
	r->ct = CT_CLOSING; /* both entries, not only the reply's */
	r = flow_new_row(&f, "client_syn_same_port_is_new_flow",
			 flow_req(&f, PKT_SYN, 77000, 0, 0));
	r->keep_ct = true;
	r->ct = CT_NEW;
	r = flow_rev_row(&f, "synack_after_reuse_reverse_natted",
			 flow_reply(&f, PKT_SYN | PKT_ACK, 99000, 77001, 0));
	r->ct_of = &f;
	r->ct = CT_EST;
	flow_rev_row(&f, "synack_retransmit_reverse_natted",
		     flow_reply(&f, PKT_SYN | PKT_ACK, 99000, 77001, 0));

	r = flow_new_row(&x, "syn", flow_req(&x, PKT_SYN, 1000, 0, 0));
	r->ct = CT_NEW;
	/* The same client port to frontend y (same backend) is remapped to
	 * another source port: test_bpf_multinode's clash_remap. */
	r = flow_rev_row(&x, "synack_still_from_first_frontend",
			 flow_reply(&x, PKT_SYN | PKT_ACK, 5000, 1001, 0));
	r->ct_of = &x;
	r->ct = CT_EST;
	r = flow_fwd_row(&x, "rst", flow_req(&x, PKT_RST, 1001, 0, 0));
	r->ct = CT_CLOSING;

	/* The answer to a host connection from local port 30080 is not a
	 * NodePort connection: neither its SYN-ACK nor its data. */
	s = flow_req(&h, PKT_SYN | PKT_ACK, 5000, 1001, 0);
	s.saddr = "203.0.113.5";
	s.sport = 443;
	s.daddr = "172.16.0.2";
	s.dport = 30080;
	s.tcp_optlen = 0;
	same_row("nodeport_port_of_host_connection/synack_not_dnatted", s, ST_NOT_SVC, 0);
	s.tcp_flags = PKT_ACK | PKT_PSH;
	s.payload_len = 100;
	same_row("nodeport_port_of_host_connection/data_not_dnatted", s, ST_NOT_SVC, 0);
	/* ... and a reply to such a host connection through a ClusterIP is
	 * reverse-NATed, not taken for a new NodePort flow. */
	r = flow_new_row(&h, "syn", flow_req(&h, PKT_SYN, 1000, 0, 0));
	r->ct = CT_NEW;
	flow_rev_row(&h, "synack_reverse_natted_not_nodeport",
		     flow_reply(&h, PKT_SYN | PKT_ACK, 5000, 1001, 0));
	flow_rev_row(&h, "data_reverse_natted_not_nodeport",
		     flow_reply(&h, PKT_ACK | PKT_PSH, 5001, 1001, 200));

	/* An RST or FIN far (over 32 MiB) from where its sender was last seen
	 * (a stale or blind one) is passed on, NATed, but leaves the flow
	 * ESTABLISHED: before the check, any RST closed it (10 s, and an
	 * SNAT flow's port was free at once). Both directions. */
	r = flow_new_row(&w, "syn", flow_req(&w, PKT_SYN, 1000, 0, 0));
	r->ct = CT_NEW;
	flow_rev_row(&w, "synack", flow_reply(&w, PKT_SYN | PKT_ACK, 5000, 1001, 0));
	r = flow_fwd_row(&w, "ack", flow_req(&w, PKT_ACK, 1001, 5001, 0));
	r->ct = CT_EST;
	r = flow_fwd_row(&w, "client_rst_1GiB_ahead_ignored",
			 flow_req(&w, PKT_RST, 1001u + (1u << 30), 0, 0));
	r->stats |= ST_SEQ_IGNORED;
	r->ct = CT_EST;
	r = flow_fwd_row(&w, "client_fin_40MiB_behind_ignored",
			 flow_req(&w, PKT_FIN | PKT_ACK, 1001u - (40u << 20), 5001, 0));
	r->stats |= ST_SEQ_IGNORED;
	r->ct = CT_EST;
	r = flow_rev_row(&w, "backend_rst_2GiB_away_ignored",
			 flow_reply(&w, PKT_RST | PKT_ACK, 5001u + (1u << 31), 1001, 0));
	r->stats |= ST_SEQ_IGNORED;
	r->ct_of = &w;
	r->ct = CT_EST;
	/* The record follows the sender: 40 MiB of data later, an RST at the
	 * start of the connection is stale, one at the new position counts. */
	r = flow_fwd_row(&w, "data_40MiB_later", flow_req(&w, PKT_ACK | PKT_PSH, 1001u + (40u << 20), 5001, 100));
	r->ct = CT_EST;
	r = flow_fwd_row(&w, "client_rst_at_start_now_stale",
			 flow_req(&w, PKT_RST, 1001, 0, 0));
	r->stats |= ST_SEQ_IGNORED;
	r->ct = CT_EST;
	r = flow_fwd_row(&w, "client_rst_in_window_closes",
			 flow_req(&w, PKT_RST, 1101u + (40u << 20), 0, 0));
	r->ct = CT_CLOSING;

	r = flow_new_row(&u, "request_42_bytes", flow_req(&u, 0, 1, 0, 0));
	r->ct = CT_NEW;
	flow_rev_row(&u, "reply_42_bytes", flow_reply(&u, 0, 2, 0, 0));
}

/* A later fragment of flow f's datagram (request, or reply when reply):
 * only its addresses change, as its first fragment's did. */
static struct row *frag_follow_row(const struct flow *f, const char *step, struct pkt_spec in,
				   bool reply)
{
	struct row *r = add_row("%s/%s", f->name, step);

	r->in = in;
	r->exp = E_NAT;
	r->out = reply ? pkt_spec_nat(&in, f->vip, 0, f->hairpin ? f->client : NULL, 0) :
			 pkt_spec_nat(&in, f->hairpin ? hairpin_of(f->family) : NULL, 0,
				      f->backend, 0);
	r->keep_ct = true;
	r->l3_only = true;
	r->stats = ST_FRAG_NAT | ST_TO_STACK;
	return r;
}

/* Service with no ready endpoint. */
static struct row *reject_row(const char *name, struct pkt_spec in, uint32_t svc_id)
{
	struct row *r = add_row("%s", name);

	r->in = in;
	r->exp = E_REJECT;
	r->stats = ST_SVC | ST_REJECT;
	r->reasons = RB(SP_R_NO_BACKEND);
	r->svc_id = svc_id;
	r->svc = SV_PKT | SV_REJECT;
	return r;
}

/* A TCP packet that does not open a connection, to a Service with no
 * endpoint: dropped with no answer (kube-proxy rejects new connections
 * only, and nothing answers an RST with an RST). */
static struct row *reject_not_new_row(const char *name, struct pkt_spec in, uint32_t svc_id)
{
	struct row *r = reject_row(name, in, svc_id);

	r->exp = E_DROP;
	r->empty_svc = true;
	r->stats = ST_SVC;
	r->reasons = RB(SP_R_REJECT_NOT_NEW);
	r->svc = SV_PKT | SV_DROP;
	return r;
}

static void add_reject_rows(void)
{
	struct pkt_spec s;
	const struct flow e4 = { "", 4, TCP, "10.1.0.7", "10.96.0.20", "", 43001, 80, 0, 6, 0 };
	const struct flow u4 = { "", 4, UDP, "10.1.0.7", "10.96.0.20", "", 43002, 53, 0, 7, 0 };
	const struct flow e6 = { "", 6, TCP, "fd00:1::7", "fd00:96::20", "", 43003, 80, 0, 26, 0 };
	const struct flow u6 = { "", 6, UDP, "fd00:1::7", "fd00:96::20", "", 43004, 53, 0, 27, 0 };

	s = flow_req(&e4, PKT_SYN, 77777, 0, 0);
	s.tcp_optlen = 0;
	reject_row("no_endpoint/v4_tcp_syn", s, 6);
	reject_row("no_endpoint/v4_tcp_syn_with_options", flow_req(&e4, PKT_SYN, 0xfffffff0, 0, 0),
		   6);
	reject_not_new_row("no_endpoint/v4_tcp_ack_data_not_answered",
			   flow_req(&e4, PKT_ACK | PKT_PSH, 500, 9000, 64), 6);
	reject_not_new_row("no_endpoint/v4_tcp_rst_not_answered", flow_req(&e4, PKT_RST, 500, 0, 0),
			   6);
	reject_not_new_row("no_endpoint/v4_tcp_rst_ack_not_answered",
			   flow_req(&e4, PKT_RST | PKT_ACK, 500, 9000, 0), 6);
	reject_not_new_row("no_endpoint/v4_tcp_synack_not_answered",
			   flow_req(&e4, PKT_SYN | PKT_ACK, 500, 9000, 0), 6);
	reject_row("no_endpoint/v4_udp", flow_req(&u4, 0, 1, 0, 0), 7);
	reject_row("no_endpoint/v4_udp_payload", flow_req(&u4, 0, 1, 0, 200), 7);
	s = flow_req(&u4, 0, 1, 0, 20);
	s.ip_optlen = 8;
	reject_row("no_endpoint/v4_udp_ip_options", s, 7)->stats |= ST_V4OPT;
	s.ip_optlen = 40; /* the longest quote: 60 + 8 bytes */
	reject_row("no_endpoint/v4_udp_ip_options_40", s, 7)->stats |= ST_V4OPT;
	s = flow_req(&e4, PKT_SYN, 4242, 0, 0);
	s.ip_optlen = 12;
	reject_row("no_endpoint/v4_tcp_syn_ip_options", s, 6)->stats |= ST_V4OPT;
	s = flow_req(&e6, PKT_SYN, 12345, 0, 0);
	reject_row("no_endpoint/v6_tcp_syn", s, 26);
	reject_row("no_endpoint/v6_udp", flow_req(&u6, 0, 1, 0, 0), 27);
	reject_row("no_endpoint/v6_udp_payload", flow_req(&u6, 0, 1, 0, 300), 27);
	s = flow_req(&u6, 0, 1, 0, 10);
	s.n_ext = 1;
	s.ext[0] = IPPROTO_HOPOPTS;
	reject_row("no_endpoint/v6_udp_hop_by_hop", s, 27)->stats |= ST_V6EXT;
	/* 6 x 16 bytes of extension headers: the quote is clamped to 124
	 * bytes (a mask once wrapped it to 16) */
	s.n_ext = 6;
	memset(s.ext, IPPROTO_DSTOPTS, 6);
	reject_row("no_endpoint/v6_udp_136_bytes_of_headers_quote_clamped", s, 27)->stats |=
		ST_V6EXT;
	s = flow_req(&e6, PKT_ACK, 1, 2, 0);
	reject_not_new_row("no_endpoint/v6_tcp_ack_not_answered", s, 26);
	reject_not_new_row("no_endpoint/v6_tcp_rst_not_answered", flow_req(&e6, PKT_RST, 1, 0, 0),
			   26);
}

static void add_malformed_rows(void)
{
	const struct flow t4 = tcp_flows[0], t6 = tcp_flows[6];
	const struct flow u4 = udp_flows[0], u6 = udp_flows[2];
	struct pkt_spec s;
	struct row *r;

	/* IPv4 options */
	s = flow_req(&t4, PKT_SYN, 1, 0, 0);
	s.ip_optlen = 4;
	r = flow_new_row(&t4, "syn_ipv4_options_4", s);
	r->stats |= ST_V4OPT;
	r->ct = CT_NEW;
	s.ip_optlen = 40;
	r = flow_new_row(&t4, "syn_ipv4_options_40", s);
	r->stats |= ST_V4OPT;
	s = flow_req(&u4, 0, 1, 0, 30);
	s.ip_optlen = 12;
	r = flow_new_row(&u4, "ipv4_options_12", s);
	r->stats |= ST_V4OPT;

	/* IP version disagreeing with the EtherType: never NATed as the
	 * EtherType's family */
	s = flow_req(&t4, PKT_SYN, 1, 0, 0);
	s.version = 6;
	same_row("malformed/v4_ethertype_version_6", s, 0, RB(SP_R_BAD_VERSION));
	s = flow_req(&t6, PKT_SYN, 1, 0, 0);
	s.version = 4;
	same_row("malformed/v6_ethertype_version_4", s, 0, RB(SP_R_BAD_VERSION));

	/* IHL */
	s = flow_req(&t4, PKT_SYN, 1, 0, 0);
	s.ihl_set = true;
	s.ihl = 4;
	same_row("malformed/v4_ihl_4", s, 0, RB(SP_R_BAD_IHL));
	s.ihl = 0;
	same_row("malformed/v4_ihl_0", s, 0, RB(SP_R_BAD_IHL));
	s.ihl = 15; /* 60 bytes of header in a 54-byte frame */
	s.tcp_optlen = 0;
	same_row("malformed/v4_ihl_15_beyond_frame", s, 0,
		 RB(SP_R_BAD_IHL) | RB(SP_R_TRUNC_L3));

	/* truncated at every layer (the frame keeps its original length fields) */
	s = flow_req(&t4, PKT_SYN, 1, 0, 0);
	s.tcp_optlen = 0;
	s.trunc = ETH_HLEN;
	same_row("truncated/v4_eth_only", s, 0, RB(SP_R_TRUNC_L3));
	s.trunc = ETH_HLEN + 10;
	same_row("truncated/v4_ip_header_half", s, 0, RB(SP_R_TRUNC_L3));
	s.trunc = ETH_HLEN + 19;
	same_row("truncated/v4_ip_header_less_1", s, 0, RB(SP_R_TRUNC_L3));
	s.ip_optlen = 8;
	s.trunc = ETH_HLEN + 24;
	same_row("truncated/v4_ip_options_cut", s, ST_V4OPT, RB(SP_R_TRUNC_L3))->stats = 0;
	s.ip_optlen = 0;
	s.trunc = ETH_HLEN + 20;
	same_row("truncated/v4_tcp_header_missing", s, 0, RB(SP_R_TRUNC_L4));
	s.trunc = ETH_HLEN + 20 + 10;
	same_row("truncated/v4_tcp_header_half", s, 0, RB(SP_R_TRUNC_L4));
	s.trunc = ETH_HLEN + 20 + 19;
	same_row("truncated/v4_tcp_header_less_1", s, 0, RB(SP_R_TRUNC_L4));
	s.ip_optlen = 4;
	s.trunc = ETH_HLEN + 24 + 12;
	same_row("truncated/v4_tcp_header_cut_after_options", s, ST_V4OPT, RB(SP_R_TRUNC_L4));
	s = flow_req(&u4, 0, 1, 0, 0);
	s.trunc = ETH_HLEN + 20 + 6;
	same_row("truncated/v4_udp_header_cut", s, 0, RB(SP_R_TRUNC_L4));
	s = flow_req(&t6, PKT_SYN, 1, 0, 0);
	s.tcp_optlen = 0;
	s.trunc = ETH_HLEN;
	same_row("truncated/v6_eth_only", s, 0, RB(SP_R_TRUNC_L3));
	s.trunc = ETH_HLEN + 20;
	same_row("truncated/v6_ip_header_half", s, 0, RB(SP_R_TRUNC_L3));
	s.trunc = ETH_HLEN + 39;
	same_row("truncated/v6_ip_header_less_1", s, 0, RB(SP_R_TRUNC_L3));
	s.trunc = ETH_HLEN + 40 + 12;
	same_row("truncated/v6_tcp_header_cut", s, 0, RB(SP_R_TRUNC_L4));
	s.n_ext = 1;
	s.ext[0] = IPPROTO_HOPOPTS;
	s.trunc = ETH_HLEN + 40 + 4;
	same_row("truncated/v6_hop_by_hop_cut", s, ST_V6EXT, RB(SP_R_TRUNC_L3));
	s.ext[0] = IPPROTO_DSTOPTS;
	s.trunc = ETH_HLEN + 40 + 12; /* 16-byte header cut after 12 */
	same_row("truncated/v6_dest_options_cut", s, ST_V6EXT,
		 RB(SP_R_TRUNC_L3) | RB(SP_R_TRUNC_L4));
	s.trunc = ETH_HLEN + 40 + 16 + 10;
	same_row("truncated/v6_tcp_header_cut_after_ext", s, ST_V6EXT, RB(SP_R_TRUNC_L4));
	s = flow_req(&u6, 0, 1, 0, 0);
	s.trunc = ETH_HLEN + 40 + 4;
	same_row("truncated/v6_udp_header_cut", s, 0, RB(SP_R_TRUNC_L4));

	/* IPv6 extension headers before TCP/UDP */
	{
		static const struct {
			const char *name;
			uint8_t n;
			uint8_t ext[PKT_EXT_MAX];
		} exts[] = {
			{ "hop_by_hop", 1, { IPPROTO_HOPOPTS } },
			{ "dest_options", 1, { IPPROTO_DSTOPTS } },
			{ "routing", 1, { IPPROTO_ROUTING } },
			{ "hop_dst_routing_dst", 4,
			  { IPPROTO_HOPOPTS, IPPROTO_DSTOPTS, IPPROTO_ROUTING, IPPROTO_DSTOPTS } },
		};
		size_t i;

		for (i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
			char step[64];

			s = flow_req(&t6, PKT_SYN, 1, 0, 0);
			memcpy(s.ext, exts[i].ext, sizeof(s.ext));
			s.n_ext = exts[i].n;
			snprintf(step, sizeof(step), "syn_ext_%s", exts[i].name);
			r = flow_new_row(&t6, step, s);
			r->stats |= ST_V6EXT;
			r->ct = CT_NEW;
		}
		s = flow_req(&u6, 0, 1, 0, 20);
		s.n_ext = 2;
		s.ext[0] = IPPROTO_HOPOPTS;
		s.ext[1] = IPPROTO_DSTOPTS;
		r = flow_new_row(&u6, "ext_hop_dst", s);
		r->stats |= ST_V6EXT;
		/* more than any walker bound we would ship (SP_MAX_IPV6_EXT_HDRS) */
		s = flow_req(&t6, PKT_SYN, 1, 0, 0);
		s.n_ext = 12;
		for (i = 0; i < 12; i++)
			s.ext[i] = IPPROTO_DSTOPTS;
		same_row("malformed/v6_12_ext_headers", s, ST_V6EXT, RB(SP_R_EXT_HDR_LIMIT));
	}

	/* fragments */
	s = flow_req(&u4, 0, 1, 0, 400);
	s.frag = PKT_FRAG_FIRST;
	s.frag_bytes = 208;
	s.ip_id = 0x4242;
	r = flow_new_row(&u4, "first_fragment", s);
	r->stats |= ST_FRAG1;
	/* Later fragments follow their first fragment's NAT (same addresses,
	 * protocol and IP id); one of no datagram we NATed passes. */
	s = flow_req(&u4, 0, 1, 0, 400);
	s.frag = PKT_FRAG_LATER;
	s.frag_bytes = 200;
	s.frag_off8 = 26;
	s.ip_id = 0x4242;
	frag_follow_row(&u4, "last_fragment_follows_first", s, false);
	s.frag_more = true;
	frag_follow_row(&u4, "middle_fragment_follows_first", s, false);
	s.ip_id = 0x4343;
	same_row("fragments/v4_udp_middle_fragment_of_unknown_datagram", s, 0,
		 RB(SP_R_FRAG_LATER))->keep_ct = true;
	/* the backend's answer, over the MTU: all of it from the VIP */
	s = flow_reply(&u4, 0, 2, 0, 1000);
	s.frag = PKT_FRAG_FIRST;
	s.frag_bytes = 504;
	s.ip_id = 0x5151;
	r = flow_rev_row(&u4, "reply_first_fragment", s);
	r->stats |= ST_FRAG1;
	s.frag = PKT_FRAG_LATER;
	s.frag_bytes = 504;
	s.frag_off8 = 63;
	s.frag_more = false;
	frag_follow_row(&u4, "reply_last_fragment_from_vip", s, true);
	s = flow_req(&t4, PKT_ACK | PKT_PSH, 1, 5001, 1200);
	s.frag = PKT_FRAG_FIRST;
	s.frag_bytes = 600;
	s.df = false;
	r = flow_new_row(&t4, "first_fragment", s);
	r->stats |= ST_FRAG1 | ST_ADOPTED;
	r->ct = CT_ADOPTED;
	s = flow_req(&t4, PKT_ACK, 1, 5001, 400);
	s.frag = PKT_FRAG_LATER;
	s.frag_bytes = 200;
	s.frag_off8 = 1; /* overlapping the TCP header: still not parsed */
	frag_follow_row(&t4, "later_fragment_offset_8_follows_first", s, false);
	s.ip_id = 0x4444;
	same_row("fragments/v4_tcp_later_fragment_of_unknown_datagram", s, 0,
		 RB(SP_R_FRAG_LATER))->keep_ct = true;
	s = flow_req(&u6, 0, 1, 0, 400);
	s.frag = PKT_FRAG_FIRST;
	s.frag_bytes = 208;
	s.frag_id = 0xabcdef;
	r = flow_new_row(&u6, "first_fragment", s);
	r->stats |= ST_FRAG1 | ST_V6EXT;
	s.frag = PKT_FRAG_LATER;
	s.frag_bytes = 200;
	s.frag_off8 = 26;
	frag_follow_row(&u6, "last_fragment_follows_first", s, false)->stats |= ST_V6EXT;
	s.frag_more = true;
	frag_follow_row(&u6, "middle_fragment_follows_first", s, false)->stats |= ST_V6EXT;
	s.frag_id = 0xabcdee;
	same_row("fragments/v6_udp_middle_fragment_of_unknown_datagram", s, ST_V6EXT,
		 RB(SP_R_FRAG_LATER))->keep_ct = true;
	s = flow_req(&u6, 0, 1, 0, 400);
	s.frag = PKT_FRAG_FIRST;
	s.frag_bytes = 208;
	s.frag_id = 0xabcdef;
	s.n_ext = 1;
	s.ext[0] = IPPROTO_HOPOPTS;
	r = flow_new_row(&u6, "first_fragment_after_hop_by_hop", s);
	r->stats |= ST_FRAG1 | ST_V6EXT;
	s.n_ext = 0;
	s.frag = PKT_FRAG_ATOMIC;
	r = flow_new_row(&u6, "atomic_fragment", s);
	r->stats |= ST_V6EXT;
}

static void add_not_service_rows(void)
{
	const struct flow t4 = tcp_flows[0], t6 = tcp_flows[6], u4 = udp_flows[0];
	struct pkt_spec s;

	s = flow_req(&t4, PKT_SYN, 1, 0, 0);
	s.dport = 81;
	same_row("not_service/v4_vip_other_port", s, ST_NOT_SVC, 0);
	s = flow_req(&u4, 0, 1, 0, 10);
	s.dport = 80; /* 10.96.0.10:80 is TCP only */
	same_row("not_service/v4_vip_port_other_protocol", s, ST_NOT_SVC, 0);
	s = flow_req(&t4, PKT_SYN, 1, 0, 0);
	s.daddr = "10.1.0.11";
	s.dport = 8080;
	same_row("not_service/v4_to_backend_directly", s, ST_NOT_SVC, 0);
	s = flow_reply(&t4, PKT_SYN | PKT_ACK, 1, 1, 0);
	same_row("not_service/v4_reply_without_conntrack", s, ST_NOT_SVC, 0);
	s = flow_req(&t4, PKT_SYN, 1, 0, 0);
	s.daddr = "10.200.0.1";
	s.dport = 30080;
	same_row("not_service/v4_nodeport_on_other_address", s, ST_NOT_SVC, 0);
	s.daddr = "172.16.0.2";
	s.dport = 30081;
	same_row("not_service/v4_node_address_other_port", s, ST_NOT_SVC, 0);
	s = flow_req(&u4, 0, 1, 0, 10);
	s.daddr = "172.16.0.2";
	s.dport = 30080; /* NodePort 30080 is TCP only */
	same_row("not_service/v4_nodeport_other_protocol", s, ST_NOT_SVC, 0);
	s = flow_req(&t6, PKT_SYN, 1, 0, 0);
	s.dport = 81;
	same_row("not_service/v6_vip_other_port", s, ST_NOT_SVC, 0);
	s.daddr = "fd00:16::3";
	s.dport = 30080;
	same_row("not_service/v6_nodeport_on_other_address", s, ST_NOT_SVC, 0);
	s = flow_req(&t4, PKT_SYN, 1, 0, 0);
	s.family = 6; /* the v4 VIP's bytes in a v6 packet never match the v4 key */
	s.saddr = "::ffff:10.1.0.7";
	s.daddr = "::ffff:10.96.0.10";
	same_row("not_service/v6_mapped_v4_vip", s, ST_NOT_SVC, 0);
	/* not TCP/UDP */
	s = flow_req(&t4, 0, 1, 0, 56);
	s.proto = IPPROTO_ICMP;
	same_row("not_service/v4_icmp_to_vip", s, ST_NOT_SVC, 0);
	s = flow_req(&t4, 0, 1, 0, 28);
	s.ethertype = ETH_P_ARP;
	same_row("not_service/arp", s, ST_NOT_SVC, 0);
}

static void add_drop_rows(void)
{
	const struct flow bm = { "v4_backend_missing", 4, TCP, "10.1.0.7", "10.96.0.60", "", 44001,
				 80, 0, 11, 999 };
	const struct flow mm = { "v4_maglev_region_missing", 4, TCP, "10.1.0.7", "10.96.0.61", "",
				 44002, 80, 0, 12, 0 };
	struct row *r;

	r = add_row("%s/syn_dropped", bm.name);
	r->in = flow_req(&bm, PKT_SYN, 1, 0, 0);
	r->exp = E_DROP;
	r->stats = ST_SVC;
	r->reasons = RB(SP_R_BACKEND_MISS);
	r->svc_id = bm.svc_id;
	r->svc = SV_PKT | SV_DROP;
	r = add_row("%s/syn_dropped", mm.name);
	r->in = flow_req(&mm, PKT_SYN, 1, 0, 0);
	r->exp = E_DROP;
	r->stats = ST_SVC;
	r->reasons = RB(SP_R_MAGLEV_MISS);
	r->svc_id = mm.svc_id;
	r->svc = SV_PKT | SV_DROP;
}

static void build_rows(void)
{
	size_t i;

	for (i = 0; i < sizeof(tcp_flows) / sizeof(tcp_flows[0]); i++)
		add_tcp_flow_rows(&tcp_flows[i]);
	for (i = 0; i < sizeof(udp_flows) / sizeof(udp_flows[0]); i++) {
		add_udp_flow_rows(&udp_flows[i]);
		add_udp_csum_zero_rows(&udp_flows[i]);
	}
	add_ct_change_rows(4);
	add_ct_change_rows(6);
	add_ct_misc_rows();
	add_gone_rows();
	add_ct_integrity_rows();
	add_reject_rows();
	add_not_service_rows();
	add_malformed_rows();
	add_drop_rows();
}

/* ------------------------------------------------------------------ */
/* Running a row through a program                                     */
/* ------------------------------------------------------------------ */


struct prog {
	const char *name;
	enum hook hook;
	struct bpf_program *p;
};

static bool fib_route; /* a route to the backends exists (else FIB lookups fail: private netns) */
static bool xdp_expect_redirect; /* XDP with cfg_xdp_redirect and the device in sp_tx_ports */

/* What a row means for one program. */
struct eff {
	int verdict;
	enum expect out; /* E_NAT: row->out; E_SAME; E_REJECT: reject frame; E_DROP: not compared */
	uint32_t stats, reasons, svc;
	uint32_t reasons_opt; /* may be counted (once), need not be */
	bool check_ct;
};

static struct eff row_expect(const struct row *r, enum hook h)
{
	bool tc = h != H_XDP;
	struct eff e = {
		.verdict = tc ? TC_ACT_OK : XDP_PASS,
		.out = r->exp,
		.stats = r->stats | ST_RX,
		.reasons = r->reasons,
		.svc = r->svc,
		.check_ct = true,
	};

	switch (r->exp) {
	case E_NAT:
	case E_SAME:
		break;
	case E_DROP:
		e.verdict = tc ? TC_ACT_SHOT : XDP_DROP;
		if (!tc && r->empty_svc) {
			e.verdict = XDP_PASS;
			e.out = E_SAME;
			e.stats = ST_RX | (r->stats & ST_PARSE);
			e.reasons = 0;
			e.svc = 0;
		}
		break;
	case E_REJECT:
		if (!tc) {
			/* XDP cannot answer on every device: it leaves the
			 * packet to TC, which counts it (once). */
			e.out = E_SAME;
			e.stats = ST_RX | (r->stats & ST_PARSE);
			e.reasons = 0;
			e.svc = 0;
		} else {
			e.verdict = TC_ACT_REDIRECT;
		}
		break;
	}
	if (h == H_XDP && r->exp == E_NAT && xdp_expect_redirect) {
		e.verdict = XDP_REDIRECT;
		e.stats = (e.stats & ~ST_TO_STACK) | ST_REDIRECT;
	}
	if ((h == H_TC_INGRESS || h == H_TC_EGRESS) && r->exp == E_NAT) {
		/* TC routes what it NATed (FIB lookup + bpf_redirect_neigh). */
		if (fib_route && !(r->ttl_expiring && h == H_TC_INGRESS)) {
			e.verdict = TC_ACT_REDIRECT;
			e.stats = (e.stats & ~ST_TO_STACK) | ST_REDIRECT;
		} else if (h == H_TC_EGRESS) {
			/* no route in our netns: leaves as routed, maybe counted */
			e.reasons_opt |= RB(SP_R_FIB_FAILED);
		}
	}
	if (h == H_TC_UPLINK) {
		/* Uplink TC runs after XDP: it only answers rejects, and
		 * counts nothing else (XDP counted the packet already). */
		e.check_ct = false;
		e.stats &= ~(ST_RX | ST_PARSE);
		if (r->exp != E_REJECT && !r->empty_svc) {
			e.verdict = TC_ACT_OK;
			e.out = E_SAME;
			e.stats = 0; /* no counter may move */
			e.reasons = 0;
			e.svc = 0;
		}
	}
	return e;
}

/* Bits of the reject frame a host may choose freely (checksums are
 * verified separately by recomputation). */
static void reject_ignore_mask(const struct pkt *want, const struct pkt_spec *in, uint8_t *ign)
{
	uint32_t l3 = ETH_HLEN, l4;

	memset(ign, 0, PKT_MAX);
	if (in->family == 4) {
		ign[l3 + 1] = 0xff; /* TOS */
		ign[l3 + 4] = ign[l3 + 5] = 0xff; /* id */
		ign[l3 + 6] = 0x40; /* DF */
		ign[l3 + 8] = 0xff; /* TTL */
		ign[l3 + 10] = ign[l3 + 11] = 0xff; /* header checksum */
		l4 = l3 + 20;
	} else {
		ign[l3] = 0x0f; /* traffic class, flow label */
		ign[l3 + 1] = ign[l3 + 2] = ign[l3 + 3] = 0xff;
		ign[l3 + 7] = 0xff; /* hop limit */
		l4 = l3 + 40;
	}
	if (l4 + 20 > want->len)
		return;
	if (in->proto == IPPROTO_TCP) {
		if (in->tcp_flags & PKT_ACK) {
			ign[l4 + 8] = ign[l4 + 9] = ign[l4 + 10] = ign[l4 + 11] = 0xff; /* ack */
			ign[l4 + 13] = PKT_ACK;
		} else {
			ign[l4 + 4] = ign[l4 + 5] = ign[l4 + 6] = ign[l4 + 7] = 0xff; /* seq */
		}
		ign[l4 + 14] = ign[l4 + 15] = 0xff; /* window */
		ign[l4 + 16] = ign[l4 + 17] = 0xff; /* checksum */
	} else {
		ign[l4 + 2] = ign[l4 + 3] = 0xff; /* checksum */
	}
}

static bool addr_is(const struct sp_addr *a, int family, const char *s)
{
	struct sp_addr b = addr_of(family, s);

	return memcmp(a, &b, sizeof(b)) == 0;
}

static char *addr_str(const struct sp_addr *a, int family, char *buf)
{
	inet_ntop(family == 4 ? AF_INET : AF_INET6, a->addr, buf, INET6_ADDRSTRLEN);
	return buf;
}

static uint64_t timeout_of(uint8_t proto, enum ct_want w)
{
	if (proto != IPPROTO_TCP)
		return T_UDP;
	switch (w) {
	case CT_EST:
		return T_EST;
	case CT_CLOSING:
		return T_CLOSE;
	case CT_FIN_WAIT:
	case CT_TIME_WAIT:
		return T_FIN;
	default:
		return T_SYN;
	}
}

/* FWD entry state and deadline; with ct_detail both entries field by field. */
static bool check_ct(const struct row *r, const char *name)
{
	static const char *const states[] = { "NEW",	  "ESTABLISHED", "CLOSING",
					      "FIN_WAIT", "TIME_WAIT",	 "ESTABLISHED (adopted)" };
	struct pkt_spec req = r->ct_of ? flow_req(r->ct_of, 0, 0, 0, 0) : r->in;
	const struct pkt_spec *in = &req;
	const int fam = in->family;
	struct sp_ct_key k;
	struct sp_ct_val v, rv;
	char b1[INET6_ADDRSTRLEN], b2[INET6_ADDRSTRLEN];
	uint64_t now = now_ns(), t;
	int want = r->ct == CT_ADOPTED ? SP_CT_ESTABLISHED : (int)r->ct - 1;
	int wname = (int)r->ct - 1;
	bool ok = true;

	if (r->ct == CT_ANY && !r->ct_detail)
		return true;
	ct_key_from_spec(in, SP_CT_FWD, &k);
	if (sp_ct_lookup(&ct_maps, &k, &v)) {
		fprintf(stderr, "  %s: no FWD conntrack entry for %s:%u -> %s:%u\n", name,
			in->saddr, in->sport, in->daddr, in->dport);
		return false;
	}
	if (r->ct != CT_ANY) {
		ok &= ASSERT_EQ(v.state, want,
				"FWD state (0 NEW, 1 ESTABLISHED, 2 CLOSING, 3 FIN_WAIT, 4 TIME_WAIT)");
		if (v.state != want)
			fprintf(stderr, "    expected %s\n", states[wname]);
		ok &= ASSERT_EQ(!!(v.flags & SP_CT_F_UNREPLIED), r->ct == CT_ADOPTED,
				"FWD SP_CT_F_UNREPLIED (adopted mid-stream, unanswered)");
		t = timeout_of(in->proto, r->ct);
		/* The maps keep deadlines in units of 2^SP_CT_TIME_SHIFT ns,
		 * read back as the last ns of the unit. */
		if (!(v.expires > now && v.expires <= now + t + (1ULL << SP_CT_TIME_SHIFT) &&
		      v.expires + 10 * NSEC_PER_SEC > now + t)) {
			fprintf(stderr, "  FWD expires in %.3fs, expected the %s timeout %.0fs\n",
				((double)v.expires - (double)now) / 1e9, states[wname],
				(double)t / 1e9);
			sp_test_failed_asserts++;
			ok = false;
		}
	}
	if (r->ct != CT_ANY) {
		/* One flow, one state: the REV entry, found from the FWD
		 * entry as the datapath finds it, holds the same state, flags
		 * and deadline. */
		memset(&k, 0, sizeof(k));
		k.saddr = v.nat_addr;
		k.daddr = (v.flags & SP_CT_F_HAIRPIN) ? v.nat_saddr : addr_of(fam, in->saddr);
		k.sport = v.nat_port;
		k.dport = htons(in->sport);
		k.proto = in->proto;
		k.family = (uint8_t)fam;
		k.dir = SP_CT_REV;
		if (sp_ct_lookup(&ct_maps, &k, &rv)) {
			fprintf(stderr, "  %s: the FWD entry has no REV entry\n", name);
			sp_test_failed_asserts++;
			return false;
		}
		ok &= ASSERT_EQ(rv.state, v.state, "REV state == FWD state");
		ok &= ASSERT_EQ(rv.flags, v.flags, "REV flags == FWD flags");
		ok &= ASSERT_EQ(rv.expires, v.expires, "REV deadline == FWD deadline");
	}
	if (!r->ct_detail)
		return ok;

	/* FWD: the backend to DNAT to */
	if (!addr_is(&v.nat_addr, fam, r->out.daddr)) {
		fprintf(stderr, "  FWD nat_addr %s, expected %s\n", addr_str(&v.nat_addr, fam, b1),
			r->out.daddr);
		sp_test_failed_asserts++;
		ok = false;
	}
	ok &= ASSERT_EQ(ntohs(v.nat_port), r->out.dport, "FWD nat_port");
	ok &= ASSERT_EQ(v.backend_id, r->backend_id, "FWD backend_id");
	ok &= ASSERT_EQ(v.svc_id, r->svc_id, "FWD svc_id");
	ok &= ASSERT_EQ(!!(v.flags & SP_CT_F_HAIRPIN), r->hairpin, "FWD SP_CT_F_HAIRPIN");
	ok &= ASSERT_EQ(!!(v.flags & SP_CT_F_NODEPORT), r->nodeport, "FWD SP_CT_F_NODEPORT");
	if (r->hairpin && !addr_is(&v.nat_saddr, fam, hairpin_of(fam))) {
		fprintf(stderr, "  FWD nat_saddr %s, expected the hairpin address %s\n",
			addr_str(&v.nat_saddr, fam, b1), hairpin_of(fam));
		sp_test_failed_asserts++;
		ok = false;
	}
	ok &= ASSERT_TRUE(v.created <= now && v.created + 60 * NSEC_PER_SEC > now,
			  "FWD created is a recent bpf_ktime_get_ns()");

	/* REV: keyed by the reply as it arrives */
	memset(&k, 0, sizeof(k));
	k.saddr = addr_of(fam, r->out.daddr);
	k.daddr = addr_of(fam, r->hairpin ? hairpin_of(fam) : in->saddr);
	k.sport = htons(r->out.dport);
	k.dport = htons(in->sport);
	k.proto = in->proto;
	k.family = (uint8_t)fam;
	k.dir = SP_CT_REV;
	if (sp_ct_lookup(&ct_maps, &k, &rv)) {
		fprintf(stderr, "  no REV conntrack entry for %s:%u -> %s:%u\n",
			addr_str(&k.saddr, fam, b1), r->out.dport, addr_str(&k.daddr, fam, b2),
			in->sport);
		sp_test_failed_asserts++;
		return false;
	}
	if (!addr_is(&rv.nat_addr, fam, in->daddr)) {
		fprintf(stderr, "  REV nat_addr %s, expected the frontend %s\n",
			addr_str(&rv.nat_addr, fam, b1), in->daddr);
		sp_test_failed_asserts++;
		ok = false;
	}
	ok &= ASSERT_EQ(ntohs(rv.nat_port), in->dport, "REV nat_port");
	ok &= ASSERT_EQ(rv.svc_id, r->svc_id, "REV svc_id");
	ok &= ASSERT_EQ(!!(rv.flags & SP_CT_F_HAIRPIN), r->hairpin, "REV SP_CT_F_HAIRPIN");
	if (r->hairpin) {
		if (!addr_is(&rv.nat_saddr, fam, in->saddr)) {
			fprintf(stderr, "  REV nat_saddr %s, expected the client %s\n",
				addr_str(&rv.nat_saddr, fam, b1), in->saddr);
			sp_test_failed_asserts++;
			ok = false;
		}
		ok &= ASSERT_EQ(ntohs(rv.nat_sport), in->sport, "REV nat_sport");
	}
	ok &= ASSERT_TRUE(rv.expires > now, "REV entry alive");
	return ok;
}

/* Every counter against what the row expects. */
static bool check_counters(const struct eff *e, const struct row *r, const struct snap *a,
			   const struct snap *b, uint32_t len)
{
	bool ok = true;
	size_t i;
	uint32_t n_reason = 0, rs;

	/* Attribution: only the program under test's slot may move. */
	if (b->others != a->others) {
		fprintf(stderr, "  counters of another program's slot moved (+%llu): not slot %u\n",
			(unsigned long long)(b->others - a->others), cur_slot);
		sp_test_failed_asserts++;
		ok = false;
	}
	for (i = 0; i < N_STAT_FIELDS; i++) {
		uint64_t d = field(&b->st, stat_fields[i].off) - field(&a->st, stat_fields[i].off);
		uint64_t want = (e->stats >> i) & 1;

		if (d != want) {
			fprintf(stderr, "  counter sp_stats.%s: expected +%llu, got +%llu\n",
				stat_fields[i].name, (unsigned long long)want,
				(unsigned long long)d);
			sp_test_failed_asserts++;
			ok = false;
		}
	}
	if (b->rx_bytes - a->rx_bytes != ((e->stats & ST_RX) ? len : 0)) {
		fprintf(stderr, "  counter sp_stats.rx_bytes: expected +%u, got +%llu\n",
			(e->stats & ST_RX) ? len : 0,
			(unsigned long long)(b->rx_bytes - a->rx_bytes));
		sp_test_failed_asserts++;
		ok = false;
	}
	for (rs = 0; rs < SP_R_MAX; rs++) {
		uint64_t d = b->rs[rs].packets - a->rs[rs].packets;

		if (!d)
			continue;
		if (!((e->reasons | e->reasons_opt) & RB(rs)) || d != 1) {
			fprintf(stderr, "  reason %s counted %llu time(s), not expected\n",
				reason_names[rs], (unsigned long long)d);
			sp_test_failed_asserts++;
			ok = false;
			continue;
		}
		if (e->reasons & RB(rs))
			n_reason++;
		if (b->rs[rs].bytes - a->rs[rs].bytes != len) {
			fprintf(stderr, "  reason %s bytes: expected +%u, got +%llu\n",
				reason_names[rs], len,
				(unsigned long long)(b->rs[rs].bytes - a->rs[rs].bytes));
			sp_test_failed_asserts++;
			ok = false;
		}
	}
	if (e->reasons && n_reason == 0) {
		fprintf(stderr, "  no reason counted; expected one of:");
		for (rs = 0; rs < SP_R_MAX; rs++)
			if (e->reasons & RB(rs))
				fprintf(stderr, " %s", reason_names[rs]);
		fprintf(stderr, "\n");
		sp_test_failed_asserts++;
		ok = false;
	}
	if (r->svc_id) {
		const struct sp_svc_stats *x = &a->svc, *y = &b->svc;

		ok &= ASSERT_EQ(y->packets - x->packets, !!(e->svc & SV_PKT),
				"sp_svc_stats.packets delta");
		ok &= ASSERT_EQ(y->bytes - x->bytes, (e->svc & SV_PKT) ? len : 0,
				"sp_svc_stats.bytes delta");
		ok &= ASSERT_EQ(y->new_flows - x->new_flows, !!(e->svc & SV_NEW),
				"sp_svc_stats.new_flows delta");
		ok &= ASSERT_EQ(y->rejects - x->rejects, !!(e->svc & SV_REJECT),
				"sp_svc_stats.rejects delta");
		ok &= ASSERT_EQ(y->drops - x->drops, !!(e->svc & SV_DROP),
				"sp_svc_stats.drops delta");
	}
	return ok;
}

static const char *verdict_name(enum hook h, int v)
{
	static char buf[32];

	if (h == H_XDP) {
		switch (v) {
		case XDP_ABORTED: return "XDP_ABORTED";
		case XDP_DROP: return "XDP_DROP";
		case XDP_PASS: return "XDP_PASS";
		case XDP_TX: return "XDP_TX";
		case XDP_REDIRECT: return "XDP_REDIRECT";
		}
	} else {
		switch (v) {
		case TC_ACT_OK: return "TC_ACT_OK";
		case TC_ACT_SHOT: return "TC_ACT_SHOT";
		case TC_ACT_REDIRECT: return "TC_ACT_REDIRECT";
		case TC_ACT_UNSPEC: return "TC_ACT_UNSPEC";
		}
	}
	snprintf(buf, sizeof(buf), "%d", v);
	return buf;
}

/* Run one frame; returns false if the kernel refused the run. */
static bool test_run(const struct prog *pg, const struct pkt *in, struct pkt *out,
		     uint32_t *verdict)
{
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in->data, .data_size_in = in->len,
		    .data_out = out->data, .data_size_out = sizeof(out->data), .repeat = 1);
	int err = bpf_prog_test_run_opts(bpf_program__fd(pg->p), &o);

	if (err) {
		err = errno;
		fprintf(stderr, "  BPF_PROG_TEST_RUN of %s on a %u-byte frame: %s\n", pg->name,
			in->len, strerror(err));
		errno = err;
		return false;
	}
	out->len = o.data_size_out;
	*verdict = o.retval;
	return true;
}

/* Run the untruncated frame of r through dp_trunc, which cuts it to
 * r->in.trunc bytes and tail-calls pg. */
static bool test_run_cut(const struct prog *pg, const struct row *r, struct pkt *out,
			 uint32_t *verdict)
{
	struct pkt_spec whole = r->in;
	static struct pkt in;
	uint32_t zero = 0;
	int fd = bpf_program__fd(pg->p);
	struct prog wrap = { "dp_trunc", H_TC_INGRESS, trunc_skel->progs.trunc_tc };

	whole.trunc = 0;
	if (pkt_build(&whole, &in))
		return false;
	trunc_skel->bss->trunc_len = r->in.trunc;
	if (bpf_map_update_elem(bpf_map__fd(trunc_skel->maps.trunc_target), &zero, &fd, BPF_ANY)) {
		fprintf(stderr, "  put %s in trunc_target: %s\n", pg->name, strerror(errno));
		return false;
	}
	if (!test_run(&wrap, &in, out, verdict))
		return false;
	if (*verdict == 0x7e57 || *verdict == 0x7e58) {
		fprintf(stderr, "  dp_trunc: %s failed\n",
			*verdict == 0x7e57 ? "bpf_skb_change_tail" : "the tail call");
		return false;
	}
	return true;
}

static void dump_case(const struct pkt *in, const struct pkt *want, const struct pkt *got,
		      long diff)
{
	pkt_hexdump(stderr, "input", in->data, in->len);
	if (want)
		pkt_hexdump(stderr, "expected", want->data, want->len);
	pkt_hexdump(stderr, "actual", got->data, got->len);
	if (diff >= 0)
		fprintf(stderr, "    first difference at offset %ld (0x%lx)\n", diff, diff);
}

/* Frame in with the IP addresses of spec to, and (IPv4) the header
 * checksum recomputed: what a later fragment must become. 0 or -1. */
static int l3_only_frame(const struct pkt *in, const struct pkt_spec *to, struct pkt *out)
{
	uint8_t *l3 = out->data + ETH_HLEN;

	*out = *in;
	if (to->family == 4) {
		if (!pkt_addr(4, to->saddr, l3 + 12) || !pkt_addr(4, to->daddr, l3 + 16))
			return -1;
		pkt_put16(l3 + 10, 0);
		pkt_put16(l3 + 10, (uint16_t)~pkt_fold(pkt_sum16(0, l3, (l3[0] & 0xf) * 4)));
		return 0;
	}
	return pkt_addr(6, to->saddr, l3 + 8) && pkt_addr(6, to->daddr, l3 + 24) ? 0 : -1;
}

static bool run_row(const struct prog *pg, const struct row *r)
{
	struct eff e = row_expect(r, pg->hook);
	static struct pkt in, want, got;
	static uint8_t ign[PKT_MAX];
	struct snap a, b;
	char name[160], why[200];
	uint32_t verdict = 0;
	bool ok = true;
	long diff = -1;
	int ct_before;

	snprintf(name, sizeof(name), "%s/%s", pg->name, r->name);
	cur_slot = slot_of(pg->hook);
	if (!r->keep_ct) {
		ct_flush();
		map_flush(bpf_map__fd(skel->maps.sp_frags), sizeof(struct sp_frag_key));
	}
	if (r->before && r->before(r)) {
		fprintf(stderr, "  %s: setting up the maps before the packet failed\n", name);
		sp_test_report(name, false);
		return false;
	}
	if (pkt_build(&r->in, &in)) {
		fprintf(stderr, "  %s: cannot build the input frame\n", name);
		sp_test_report(name, false);
		return false;
	}
	ct_before = ct_count();
	take_snap(&a, r->svc_id);
	if (pg->hook != H_XDP && in.len < ETH_HLEN + (r->in.family == 4 ? 20u : 40u)) {
		/* TC ingress does see such a frame (ip_rcv drops it later),
		 * but the skb flavour of BPF_PROG_TEST_RUN refuses it: run
		 * the whole frame through dp_trunc, which cuts it and
		 * tail-calls the program under test. */
		if (!test_run_cut(pg, r, &got, &verdict)) {
			sp_test_failed_asserts++;
			sp_test_report(name, false);
			return false;
		}
	} else if (!test_run(pg, &in, &got, &verdict)) {
		sp_test_failed_asserts++;
		sp_test_report(name, false);
		return false;
	}
	take_snap(&b, r->svc_id);

	if (verdict != (uint32_t)e.verdict) {
		fprintf(stderr, "  verdict: expected %s, got %s\n", verdict_name(pg->hook, e.verdict),
			verdict_name(pg->hook, (int)verdict));
		sp_test_failed_asserts++;
		ok = false;
	}

	switch (e.out) {
	case E_NAT:
		if (r->l3_only ? l3_only_frame(&in, &r->out, &want) : pkt_build(&r->out, &want)) {
			fprintf(stderr, "  cannot build the expected frame\n");
			ok = false;
			break;
		}
		diff = pkt_diff(&want, got.data, got.len, NULL);
		break;
	case E_SAME:
		want = in;
		diff = pkt_diff(&want, got.data, got.len, NULL);
		break;
	case E_REJECT:
		if (r->in.proto == IPPROTO_TCP) {
			struct pkt_spec rs = pkt_spec_rst(&r->in);

			pkt_build(&rs, &want);
		} else {
			struct pkt_info pi;

			pkt_parse(in.data, in.len, &pi, why, sizeof(why));
			/* the whole IP header(s) + 8 bytes, at most 124 */
			pkt_build_unreach(&in, pi.l3_len + 8 < 124 ? pi.l3_len + 8 : 124, &want);
		}
		reject_ignore_mask(&want, &r->in, ign);
		diff = pkt_diff(&want, got.data, got.len, ign);
		break;
	case E_DROP:
		break;
	}
	if (diff >= 0) {
		fprintf(stderr, "  output frame differs from the expected one%s:\n",
			e.out == E_REJECT ? " (ignoring TOS/id/DF/TTL/seq/window/checksum bytes)" :
			e.out == E_SAME ? " (must pass byte-identical)" : "");
		sp_test_failed_asserts++;
		ok = false;
	}
	if ((e.out == E_NAT || e.out == E_REJECT) && !pkt_csums_ok(got.data, got.len, why,
								  sizeof(why))) {
		fprintf(stderr, "  output checksums: %s\n", why);
		sp_test_failed_asserts++;
		ok = false;
		if (diff < 0)
			diff = pkt_diff(&want, got.data, got.len, NULL);
	}
	if (!ok)
		dump_case(&in, e.out == E_DROP ? NULL : &want, &got, diff);

	ok &= check_counters(&e, r, &a, &b, in.len);
	if (e.check_ct && (r->ct != CT_ANY || r->ct_detail))
		ok &= check_ct(r, name);
	if (r->exp == E_SAME || r->exp == E_DROP || r->exp == E_REJECT || !e.check_ct) {
		int ct_after = ct_count();

		if (ct_after != ct_before) {
			fprintf(stderr, "  conntrack entries: %d before, %d after; expected no change\n",
				ct_before, ct_after);
			sp_test_failed_asserts++;
			ok = false;
		}
	}
	sp_test_report(name, ok);
	return ok;
}

static void run_table(const struct prog *pg)
{
	int i;

	if (fixture_reset()) {
		sp_test_report(pg->name, false);
		return;
	}
	cur_hook_tracks = pg->hook != H_TC_UPLINK;
	cur_slot = slot_of(pg->hook);
	for (i = 0; i < nrows; i++) {
		if (rows[i].only && rows[i].only != 1 + (int)pg->hook)
			continue;
		/* sp_tc_uplink only answers rejects: every other row would
		 * assert the same early return. Rows that reach a Service
		 * without endpoints run there, and so do the first rows of each
		 * flow (a new flow, a reply), which must leave it untouched and
		 * uncounted. */
		if (pg->hook == H_TC_UPLINK && rows[i].exp != E_REJECT && !rows[i].empty_svc &&
		    !strstr(rows[i].name, "/syn") && !strstr(rows[i].name, "/synack_reply") &&
		    !strstr(rows[i].name, "/request"))
			continue;
		run_row(pg, &rows[i]);
	}
}

/* ------------------------------------------------------------------ */
/* Tests outside the table                                             */
/* ------------------------------------------------------------------ */

/*
 * Service 10 has three backends and a real i % 3 table: new flows spread
 * over all of them, each flow's DNAT matches its conntrack entry, and the
 * same tuple picks the same backend again once conntrack is gone (the
 * choice depends on the hash, not on state).
 */
static void test_maglev_spread(const struct prog *pg)
{
	static const char *const be[] = { "10.1.0.51", "10.1.0.52", "10.1.0.53" };
	static const uint32_t ids[] = { 51, 0x10034, 0x2ffff };
	const struct flow f = { "", 4, TCP, "10.1.0.7", "10.96.0.50", "", 0, 80, 8080, 10, 0 };
	struct pkt in, got, want;
	int hits[3] = { 0 }, first_pick = -1, i, j;
	char name[96], why[200];
	uint32_t verdict;
	bool ok = true;

	snprintf(name, sizeof(name), "%s/maglev_spread_3_backends", pg->name);
	fixture_reset();
	for (i = 0; i < 96 && ok; i++) {
		struct flow fi = f;
		struct pkt_spec s;
		struct sp_ct_key k;
		struct sp_ct_val v;
		int pick = -1;

		fi.cport = (uint16_t)(45000 + i);
		s = flow_req(&fi, PKT_SYN, (uint32_t)i, 0, 0);
		pkt_build(&s, &in);
		if (!test_run(pg, &in, &got, &verdict)) {
			ok = false;
			break;
		}
		ct_key_from_spec(&s, SP_CT_FWD, &k);
		if (!ASSERT_EQ(sp_ct_lookup(&ct_maps, &k, &v), 0, "FWD entry of the flow")) {
			ok = false;
			break;
		}
		for (j = 0; j < 3; j++)
			if (v.backend_id == ids[j])
				pick = j;
		if (!ASSERT_NEQ(pick, -1, "FWD backend_id is one of the Service's three")) {
			fprintf(stderr, "    backend_id 0x%x\n", v.backend_id);
			ok = false;
			break;
		}
		hits[pick]++;
		s = pkt_spec_nat(&s, NULL, 0, be[pick], 8080);
		pkt_build(&s, &want);
		if (pkt_diff(&want, got.data, got.len, NULL) >= 0 ||
		    !pkt_csums_ok(got.data, got.len, why, sizeof(why))) {
			fprintf(stderr, "  flow %d: output is not the DNAT to its CT backend %s\n", i,
				be[pick]);
			dump_case(&in, &want, &got, pkt_diff(&want, got.data, got.len, NULL));
			sp_test_failed_asserts++;
			ok = false;
		}
		if (i == 0)
			first_pick = pick;
	}
	for (j = 0; j < 3 && ok; j++)
		if (!ASSERT_TRUE(hits[j] > 0, "every backend gets some of 96 flows")) {
			fprintf(stderr, "    hits: %d %d %d\n", hits[0], hits[1], hits[2]);
			ok = false;
		}
	if (ok) {
		/* same tuple, conntrack emptied: same backend */
		struct flow f0 = f;
		struct pkt_spec s;

		f0.cport = 45000;
		ct_flush();
		s = flow_req(&f0, PKT_SYN, 0, 0, 0);
		pkt_build(&s, &in);
		s = pkt_spec_nat(&s, NULL, 0, be[first_pick], 8080);
		pkt_build(&s, &want);
		if (!test_run(pg, &in, &got, &verdict) ||
		    pkt_diff(&want, got.data, got.len, NULL) >= 0) {
			fprintf(stderr, "  the same tuple picked another backend without conntrack\n");
			dump_case(&in, &want, &got, pkt_diff(&want, got.data, got.len, NULL));
			sp_test_failed_asserts++;
			ok = false;
		}
	}
	if (ok)
		printf("  (%s: 96 flows -> %d / %d / %d)\n", name, hits[0], hits[1], hits[2]);
	sp_test_report(name, ok);
}

/* Sets the deadline of both entries of flow f (client packet s) to d. */
static bool ct_set_deadline(const struct pkt_spec *s, const struct pkt_spec *reply, uint64_t d)
{
	struct sp_ct_key fwd, rev;

	ct_key_from_spec(s, SP_CT_FWD, &fwd);
	ct_key_from_spec(reply, SP_CT_REV, &rev);
	return !ct_entry_set_expires(&fwd, d) && !ct_entry_set_expires(&rev, d);
}

/* The deadlines of both entries of the flow, or false if one is missing. */
static bool ct_deadlines(const struct pkt_spec *s, const struct pkt_spec *reply, uint64_t *fwd,
			 uint64_t *rev)
{
	struct sp_ct_key k;
	struct sp_ct_val v;

	ct_key_from_spec(s, SP_CT_FWD, &k);
	if (sp_ct_lookup(&ct_maps, &k, &v))
		return false;
	*fwd = v.expires;
	ct_key_from_spec(reply, SP_CT_REV, &k);
	if (sp_ct_lookup(&ct_maps, &k, &v))
		return false;
	*rev = v.expires;
	return true;
}

/*
 * An established flow's packets move its deadline only once it lags by
 * more than the slack (lib/ct.h ct_slack: a 256th of the timeout, 28 s of
 * the tests' 7201 s), and then in both entries. A deadline half a slack
 * behind stays where it is (with a flat second of slack it moved: the
 * second lookup and two writes per packet that made a million cycled
 * flows cost 700 ns a packet); two slacks behind, it moves to now + the
 * timeout in both entries.
 */
static void test_ct_slack(const struct prog *pg)
{
	const struct flow *f = &tcp_flows[0];
	const uint64_t slack = T_EST >> 8;
	struct pkt_spec syn = flow_req(f, PKT_SYN, 1000, 0, 0);
	struct pkt_spec synack = flow_reply(f, PKT_SYN | PKT_ACK, 5000, 1001, 0);
	struct pkt_spec ack = flow_req(f, PKT_ACK, 1001, 5001, 0);
	struct pkt in, got;
	uint64_t t0, set, fwd = 0, rev = 0;
	uint32_t verdict;
	char name[96];
	bool ok;

	snprintf(name, sizeof(name), "%s/ct_deadline_moves_past_its_slack", pg->name);
	fixture_reset();
	pkt_build(&syn, &in);
	ok = test_run(pg, &in, &got, &verdict);
	pkt_build(&synack, &in);
	ok = ok && test_run(pg, &in, &got, &verdict);
	pkt_build(&ack, &in);
	ok = ok && test_run(pg, &in, &got, &verdict);
	ok = ok && ASSERT_TRUE(ct_deadlines(&ack, &synack, &fwd, &rev), "both entries of the flow");

	/* Half a slack behind: the packet leaves both deadlines alone. */
	t0 = now_ns();
	set = t0 + T_EST - slack / 2;
	ok = ok && ASSERT_TRUE(ct_set_deadline(&ack, &synack, set), "set both deadlines");
	ok = ok && test_run(pg, &in, &got, &verdict);
	ok = ok && ct_deadlines(&ack, &synack, &fwd, &rev);
	/* As the maps keep it: the last ns of its 2^SP_CT_TIME_SHIFT ns unit. */
	set |= (1ULL << SP_CT_TIME_SHIFT) - 1;
	if (ok && (fwd != set || rev != set)) {
		fprintf(stderr, "  half a slack (%.1f s) behind, the deadlines moved: FWD %+.1f s, REV %+.1f s\n",
			slack / 2 / 1e9, ((double)fwd - (double)set) / 1e9, ((double)rev - (double)set) / 1e9);
		sp_test_failed_asserts++;
		ok = false;
	}

	/* Two slacks behind: both move to now + the timeout. */
	t0 = now_ns();
	set = t0 + T_EST - 2 * slack;
	ok = ok && ASSERT_TRUE(ct_set_deadline(&ack, &synack, set), "set both deadlines");
	ok = ok && test_run(pg, &in, &got, &verdict);
	ok = ok && ct_deadlines(&ack, &synack, &fwd, &rev);
	if (ok && (fwd < t0 + T_EST - 2 * NSEC_PER_SEC ||
		   fwd > now_ns() + T_EST + (1ULL << SP_CT_TIME_SHIFT) || rev != fwd)) {
		fprintf(stderr, "  two slacks behind: FWD at now %+.1f s, REV at now %+.1f s; want both at now + %.0f s\n",
			((double)fwd - (double)t0) / 1e9, ((double)rev - (double)t0) / 1e9, T_EST / 1e9);
		sp_test_failed_asserts++;
		ok = false;
	}
	sp_test_report(name, ok);
}

/* Every Maglev entry naming index 2: all flows go to the third backend,
 * whose id has a non-zero high half. */
static void test_maglev_entry_index(const struct prog *pg)
{
	static const uint32_t ids[] = { 51, 0x10034, 0x2ffff };
	const struct flow f = { "", 4, TCP, "10.1.0.7", "10.96.0.50", "10.1.0.53", 0, 80, 8080,
				10, 0x2ffff };
	struct pkt in, got, want;
	char name[96];
	uint32_t verdict;
	bool ok = true;
	int i;

	snprintf(name, sizeof(name), "%s/maglev_entries_index_2_high_id", pg->name);
	fixture_reset();
	ok = write_region(10 * 16, ids, 3, MAGLEV_M, 2) == 0;
	for (i = 0; i < 16 && ok; i++) {
		struct flow fi = f;
		struct pkt_spec s;

		fi.cport = (uint16_t)(46000 + i * 7);
		s = flow_req(&fi, PKT_SYN, 1, 0, 0);
		pkt_build(&s, &in);
		s = pkt_spec_nat(&s, NULL, 0, f.backend, 8080);
		pkt_build(&s, &want);
		if (!test_run(pg, &in, &got, &verdict) ||
		    pkt_diff(&want, got.data, got.len, NULL) >= 0) {
			fprintf(stderr, "  flow %d did not go to backend id 0x2ffff (10.1.0.53)\n", i);
			dump_case(&in, &want, &got, pkt_diff(&want, got.data, got.len, NULL));
			sp_test_failed_asserts++;
			ok = false;
		}
	}
	sp_test_report(name, ok);
}

static int sh(const char *cmd)
{
	int rc = system(cmd);

	if (rc)
		fprintf(stderr, "  `%s` failed (%d)\n", cmd, rc);
	return rc;
}

#define ROUTE_MAC "02:00:00:00:00:aa" /* the backends' neighbour entry */
static const uint8_t route_mac[ETH_ALEN] = { 0x02, 0, 0, 0, 0, 0xaa };

/* A veth in our private netns with routes and neighbours for backends
 * 10.1.0.11 and fd00:1::11, forwarding on (FIB lookups require it). */
static bool routes_up(void)
{
	return sh("ip link set lo up && ip link add spt0 type veth peer name spt1 && "
		  "ip addr add 10.1.0.1/16 dev spt0 && "
		  "ip -6 addr add fd00:1::1/64 dev spt0 nodad && "
		  "ip link set spt0 up && ip link set spt1 up && "
		  "ip neigh replace 10.1.0.11 lladdr " ROUTE_MAC " dev spt0 nud permanent && "
		  "ip -6 neigh replace fd00:1::11 lladdr " ROUTE_MAC " dev spt0 nud permanent") == 0;
}

/* A SYN of tcp_flows[idx] that must be DNATed and sent on by the FIB. */
static struct row *fib_row(int idx, const char *step)
{
	const struct flow *f = &tcp_flows[idx];
	static struct row fr;
	struct row *r = &fr;

	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s/%s", f->name, step);
	r->in = flow_req(f, PKT_SYN, 1000, 0, 0);
	r->exp = E_NAT;
	r->out = pkt_spec_nat(&r->in, NULL, 0, f->backend, f->bport);
	r->stats = ST_SVC | ST_NEW | ST_TO_STACK;
	r->svc_id = f->svc_id;
	r->svc = SV_PKT | SV_NEW;
	r->ct = CT_NEW;
	r->ct_detail = true;
	r->backend_id = f->backend_id;
	return r;
}

/*
 * TC routes the packets it NATed: with a route to the backend it
 * redirects (bpf_redirect_neigh); row_expect() turns the expectation into
 * a redirect.
 */
static void test_tc_fib_redirect(const struct prog *pg)
{
	const bool fwd = pg->hook == H_TC_INGRESS; /* pod traffic is forwarded */
	struct row *r;
	int i;

	fib_route = true;
	fixture_reset();
	for (i = 0; i < 2; i++) {
		/* the TTL / hop limit goes down by one where the stack's
		 * forwarding is skipped */
		r = fib_row(i ? 6 : 0, fwd ? "syn_with_route_to_backend_redirects_ttl_minus_1" :
					     "syn_with_route_to_backend_redirects");
		r->out.ttl = fwd ? 63 : 64;
		run_row(pg, r);
		/* TTL 1: to the stack, which answers time exceeded */
		r = fib_row(i ? 6 : 0, "syn_ttl_1_with_route");
		r->in.ttl = 1;
		r->out.ttl = 1;
		r->ttl_expiring = fwd;
		run_row(pg, r);
	}
	fib_route = false;
}

static int ifmac(const char *ifname, uint8_t *mac)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM, 0), err;

	if (fd < 0)
		return -1;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	err = ioctl(fd, SIOCGIFHWADDR, &ifr);
	close(fd);
	if (err)
		return -1;
	memcpy(mac, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
	return 0;
}

/*
 * XDP with cfg_xdp_redirect (--xdp-redirect): a second instance of the
 * datapath, loaded on the same pinned maps. The FIB finds spt0; while
 * spt0 is not in sp_tx_ports the packet goes to the stack, once it is the
 * frame leaves by XDP_REDIRECT with the neighbour's MACs and TTL / hop
 * limit decremented.
 */
/*
 * Make the declaration of map m match its pinned twin's flags. The kernel
 * adds BPF_F_RDONLY_PROG to every DEVMAP(_HASH) it creates but refuses the
 * flag at creation, so no declaration matches both a fresh and a pinned
 * devmap, and libbpf 1.1 will not reuse a pinned map whose flags differ
 * ("parameter mismatch"). Any loader that reuses a pinned devmap must do
 * this (bpf/maps.h may or may not pin sp_tx_ports; either way works here).
 */
static int adopt_pinned_flags(struct bpf_map *m)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);
	char path[128];
	int fd, err;

	snprintf(path, sizeof(path), "%s/%s", pin_dir, bpf_map__name(m));
	fd = bpf_obj_get(path);
	if (fd < 0)
		return 0; /* not pinned yet: created as declared */
	memset(&info, 0, sizeof(info));
	err = bpf_obj_get_info_by_fd(fd, &info, &len);
	close(fd);
	if (err)
		return err;
	return bpf_map__set_map_flags(m, info.map_flags);
}

/* A second instance of the datapath with cfg_xdp_redirect or
 * cfg_host_routing, loaded on our pinned maps as a restarted daemon would.
 * Returns it, or NULL with *err. */
static struct svcplane_bpf *open_second(int *err, bool xdp_redirect, bool host_routing)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo);
	struct svcplane_bpf *s2;
	struct bpf_map *m;

	*err = 0;
	oo.pin_root_path = pin_dir;
	s2 = svcplane_bpf__open_opts(&oo);
	if (!s2) {
		*err = -errno;
		return NULL;
	}
	s2->rodata->cfg_ct_syn_ns = T_SYN;
	s2->rodata->cfg_ct_est_ns = T_EST;
	s2->rodata->cfg_ct_close_ns = T_CLOSE;
	s2->rodata->cfg_ct_fin_ns = T_FIN;
	s2->rodata->cfg_reject_rate = 0; /* every reject row is answered */
	s2->rodata->cfg_ct_udp_ns = T_UDP;
	s2->rodata->cfg_xdp_redirect = xdp_redirect;
	s2->rodata->cfg_host_routing = host_routing;
	bpf_map__set_max_entries(s2->maps.sp_ct4, CT_TEST_SIZE);
	bpf_map__set_max_entries(s2->maps.sp_ct6, CT_TEST_SIZE);
	/* Not pinned: a restarted daemon fills its own from sp_services
	 * (user/sync.c); the test hands over the first instance's. */
	*err = bpf_map__reuse_fd(s2->maps.sp_dst_filter, fd_dst_filter);
	bpf_object__for_each_map(m, s2->obj) {
		enum bpf_map_type t = bpf_map__type(m);

		if ((t == BPF_MAP_TYPE_DEVMAP || t == BPF_MAP_TYPE_DEVMAP_HASH) &&
		    bpf_map__pin_path(m) && !*err) {
			*err = adopt_pinned_flags(m);
			if (*err)
				break;
		}
	}
	if (!*err)
		*err = svcplane_bpf__load(s2);
	if (*err) {
		svcplane_bpf__destroy(s2);
		return NULL;
	}
	return s2;
}

static void test_xdp_fib_redirect(void)
{
	static uint8_t spt0_mac[ETH_ALEN];
	struct svcplane_bpf *s2;
	uint32_t ifindex = if_nametoindex("spt0");
	struct prog pg = { "xdp_redirect", H_XDP, NULL };
	struct row *r;
	int i, err;

	if (!ifindex || ifmac("spt0", spt0_mac)) {
		sp_test_report("xdp_redirect/setup", false);
		return;
	}
	/* What a restarted daemon does: load again on the maps already pinned. */
	s2 = open_second(&err, true, false);
	sp_test_report("reload/skeleton_on_pinned_maps", !err);
	if (err) {
		fprintf(stderr, "  load the skeleton again on the maps pinned in %s: %s\n", pin_dir,
			strerror(-err));
		return;
	}
	pg.p = s2->progs.sp_xdp;

	fixture_reset();
	for (i = 0; i < 2; i++)
		run_row(&pg, fib_row(i ? 6 : 0, "syn_egress_device_not_in_tx_ports_to_stack"));

	/* s2's own map: sp_tx_ports may be pinned (shared) or per instance */
	if (bpf_map_update_elem(bpf_map__fd(s2->maps.sp_tx_ports), &ifindex, &ifindex,
				BPF_ANY)) {
		fprintf(stderr, "  add spt0 to sp_tx_ports: %s\n", strerror(errno));
		sp_test_report("xdp_redirect/tx_port", false);
	} else {
		xdp_expect_redirect = true;
		fixture_reset();
		for (i = 0; i < 2; i++) {
			r = fib_row(i ? 6 : 0, "syn_redirected_with_fib_macs_and_ttl");
			r->out.smac = spt0_mac;
			r->out.dmac = route_mac;
			r->out.ttl = 63;
			run_row(&pg, r);
		}
		xdp_expect_redirect = false;
		bpf_map_delete_elem(bpf_map__fd(s2->maps.sp_tx_ports), &ifindex);
	}
	svcplane_bpf__destroy(s2);
}

/*
 * Host routing (bpf/lib/host_route.h): with cfg_host_routing, sp_xdp
 * leaves its note (SP_META_HOST_ROUTE, 4 bytes of metadata) on a packet it
 * NATed and passed, and on no other. BPF_PROG_TEST_RUN returns the
 * metadata in front of the frame, its length in ctx_out.data. The uplink
 * TC program's side needs a real skb carrying metadata, which
 * BPF_PROG_TEST_RUN cannot build: selftests/e2e/test_host_routing.sh.
 */
static void run_note(const struct bpf_program *prog, const struct pkt_spec *spec, bool want_note,
		     const char *name)
{
	struct xdp_md ctx_in, ctx_out;
	static struct pkt in, out;
	__u32 magic = 0;
	bool ok;

	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in.data, .data_out = out.data,
		    .data_size_out = sizeof(out.data), .ctx_in = &ctx_in,
		    .ctx_size_in = sizeof(ctx_in), .ctx_out = &ctx_out,
		    .ctx_size_out = sizeof(ctx_out), .repeat = 1);
	if (pkt_build(spec, &in)) {
		sp_test_report(name, false);
		return;
	}
	memset(&ctx_in, 0, sizeof(ctx_in));
	memset(&ctx_out, 0, sizeof(ctx_out));
	ctx_in.data_end = in.len;
	o.data_size_in = in.len;
	ok = ASSERT_EQ(bpf_prog_test_run_opts(bpf_program__fd(prog), &o), 0, "test run");
	ok = ok && ASSERT_EQ(o.retval, XDP_PASS, "verdict");
	ok = ok && ASSERT_EQ(ctx_out.data, want_note ? sizeof(__u32) : 0, "metadata length");
	if (ok && want_note) {
		memcpy(&magic, out.data, sizeof(magic));
		ok = ASSERT_EQ(magic, SP_META_HOST_ROUTE, "note");
		/* the frame itself follows, NATed as without host routing */
		ok = ASSERT_EQ(o.data_size_out, in.len + sizeof(__u32), "frame length") && ok;
	}
	sp_test_report(name, ok);
}

static void test_xdp_host_route_note(void)
{
	struct svcplane_bpf *s2;
	struct pkt_spec other;
	char name[96];
	struct row *r;
	int i, err;

	s2 = open_second(&err, false, true);
	if (err) {
		fprintf(stderr, "  load with cfg_host_routing on the pinned maps: %s\n",
			strerror(-err));
		sp_test_report("host_route/load", false);
		return;
	}
	fixture_reset();
	for (i = 0; i < 2; i++) {
		r = fib_row(i ? 6 : 0, "host_route_note");
		snprintf(name, sizeof(name), "host_route/%s_natted_noted",
			 tcp_flows[i ? 6 : 0].name);
		run_note(s2->progs.sp_xdp, &r->in, true, name);
		/* the same flow's next packet, through its conntrack entry */
		r->in.tcp_flags = PKT_ACK;
		snprintf(name, sizeof(name), "host_route/%s_established_noted",
			 tcp_flows[i ? 6 : 0].name);
		run_note(s2->progs.sp_xdp, &r->in, true, name);
		/* not for any Service: passed as it came, no note */
		other = r->in;
		other.daddr = i ? "fd00:77::1" : "10.77.0.1";
		snprintf(name, sizeof(name), "host_route/%s_not_a_service_no_note",
			 i ? "v6" : "v4");
		run_note(s2->progs.sp_xdp, &other, false, name);
	}
	/* Off (the fixture's own instance): never a note. */
	r = fib_row(0, "host_route_off");
	run_note(skel->progs.sp_xdp, &r->in, false, "host_route/off_no_note");
	svcplane_bpf__destroy(s2);
	fixture_reset();
}

/* ------------------------------------------------------------------ */
/* Setup                                                               */
/* ------------------------------------------------------------------ */

static int write_file(const char *path, const char *val)
{
	FILE *f = fopen(path, "w");
	int err = 0;

	if (!f || fputs(val, f) < 0)
		err = -1;
	if (f && fclose(f))
		err = -1;
	if (err)
		fprintf(stderr, "write %s to %s: %s\n", val, path, strerror(errno));
	return err;
}

static int setup(void)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo);
	struct statfs fs;
	int err;

	/* A private netns: FIB lookups and test devices touch nothing of the
	 * host's. Forwarding on, as on every Kubernetes node (a new netns
	 * inherits the host's IPv4 setting otherwise, and FIB lookups answer
	 * differently with it off). */
	if (unshare(CLONE_NEWNET)) {
		fprintf(stderr, "unshare(CLONE_NEWNET): %s\n", strerror(errno));
		return -1;
	}
	if (write_file("/proc/sys/net/ipv4/conf/all/forwarding", "1") ||
	    write_file("/proc/sys/net/ipv6/conf/all/forwarding", "1"))
		return -1;
	if (statfs("/sys/fs/bpf", &fs) || fs.f_type != BPF_FS_MAGIC) {
		fprintf(stderr, "/sys/fs/bpf is not a bpffs mount (make deps mounts it)\n");
		return -1;
	}
	snprintf(pin_dir, sizeof(pin_dir), "/sys/fs/bpf/sp-ut-XXXXXX");
	if (!mkdtemp(pin_dir)) {
		fprintf(stderr, "mkdtemp %s: %s\n", pin_dir, strerror(errno));
		pin_dir[0] = 0;
		return -1;
	}
	if (start_pin_watchdog()) {
		rmdir(pin_dir);
		pin_dir[0] = 0;
		return -1;
	}

	libbpf_set_print(libbpf_print);
	oo.pin_root_path = pin_dir;
	skel = svcplane_bpf__open_opts(&oo);
	if (!skel) {
		fprintf(stderr, "open svcplane skeleton: %s\n", strerror(errno));
		return -1;
	}
	skel->rodata->cfg_ct_syn_ns = T_SYN;
	skel->rodata->cfg_ct_est_ns = T_EST;
	skel->rodata->cfg_ct_close_ns = T_CLOSE;
	skel->rodata->cfg_ct_fin_ns = T_FIN;
	skel->rodata->cfg_reject_rate = 0; /* every reject row is answered (test_bpf_reject_rate) */
	skel->rodata->cfg_ct_udp_ns = T_UDP;
	/* small maps: the test needs few entries and a fast flush */
	bpf_map__set_max_entries(skel->maps.sp_ct4, CT_TEST_SIZE);
	bpf_map__set_max_entries(skel->maps.sp_ct6, CT_TEST_SIZE);
	err = svcplane_bpf__load(skel);
	if (err) {
		fprintf(stderr, "load svcplane skeleton: %s (verifier log above)\n", strerror(-err));
		return -1;
	}
	trunc_skel = dp_trunc_bpf__open_and_load();
	if (!trunc_skel) {
		fprintf(stderr, "load dp_trunc skeleton: %s\n", strerror(errno));
		return -1;
	}
	fd_services = bpf_map__fd(skel->maps.sp_services);
	fd_backends = bpf_map__fd(skel->maps.sp_backends);
	fd_maglev = bpf_map__fd(skel->maps.sp_maglev);
	ct_maps.fd4 = bpf_map__fd(skel->maps.sp_ct4);
	ct_maps.fd6 = bpf_map__fd(skel->maps.sp_ct6);
	fd_node_addrs = bpf_map__fd(skel->maps.sp_node_addrs);
	fd_dst_filter = bpf_map__fd(skel->maps.sp_dst_filter);
	fd_stats = bpf_map__fd(skel->maps.sp_stats);
	fd_reasons = bpf_map__fd(skel->maps.sp_reasons);
	fd_svc_stats = bpf_map__fd(skel->maps.sp_svc_stats);
	ncpus = libbpf_num_possible_cpus();
	if (ncpus <= 0) {
		fprintf(stderr, "libbpf_num_possible_cpus: %s\n", strerror(-ncpus));
		return -1;
	}
	return 0;
}

/* Every map the object pins is pinned in our directory, the state maps at least. */
static void test_pins(void)
{
	static const char *const must[] = { SP_MAP_SERVICES, SP_MAP_BACKENDS, SP_MAP_MAGLEV,
					    SP_MAP_CT4, SP_MAP_CT6, SP_MAP_NODE_ADDRS,
					    SP_MAP_STATS };
	struct bpf_map *m;
	struct stat st;
	char path[128];
	size_t i;
	bool ok = true;

	bpf_object__for_each_map(m, skel->obj) {
		const char *pp = bpf_map__pin_path(m);

		if (!pp)
			continue;
		if (strncmp(pp, pin_dir, strlen(pin_dir)) || stat(pp, &st)) {
			fprintf(stderr, "  map %s: pinned at %s, expected under %s\n", bpf_map__name(m),
				pp, pin_dir);
			sp_test_failed_asserts++;
			ok = false;
		}
	}
	for (i = 0; i < sizeof(must) / sizeof(must[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", pin_dir, must[i]);
		if (stat(path, &st)) {
			fprintf(stderr, "  %s not pinned: %s\n", path, strerror(errno));
			sp_test_failed_asserts++;
			ok = false;
		}
	}
	sp_test_report("setup/maps_pinned_under_private_dir", ok);
}

int main(void)
{
	struct prog progs[] = {
		{ "xdp", H_XDP, NULL },
		{ "tc_ingress", H_TC_INGRESS, NULL },
		{ "tc_egress", H_TC_EGRESS, NULL },
		{ "tc_uplink", H_TC_UPLINK, NULL },
	};
	size_t i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (geteuid() != 0) {
		sp_test_skip("bpf_datapath", "needs root (BPF_PROG_TEST_RUN, bpffs)");
		return 0;
	}
	if (setup()) {
		sp_test_report("setup/load_datapath", false);
		cleanup();
		return 1;
	}
	progs[0].p = skel->progs.sp_xdp;
	progs[1].p = skel->progs.sp_tc_ingress;
	progs[2].p = skel->progs.sp_tc_egress;
	progs[3].p = skel->progs.sp_tc_uplink;
	test_pins();
	build_rows();
	for (i = 0; i < sizeof(progs) / sizeof(progs[0]); i++)
		run_table(&progs[i]);
	/* No row for SP_R_TRUNC_L2: BPF_PROG_TEST_RUN, bpf_xdp_adjust_tail and
	 * bpf_skb_change_tail all refuse frames shorter than an Ethernet
	 * header, so the check in parse_pkt() cannot be driven from here (a
	 * test that can never run would only be noise). */
	test_maglev_spread(&progs[0]);
	test_maglev_spread(&progs[1]);
	test_maglev_entry_index(&progs[0]);
	test_maglev_entry_index(&progs[1]);
	test_ct_slack(&progs[0]);
	test_ct_slack(&progs[1]);
	test_xdp_host_route_note();
	if (routes_up()) {
		test_tc_fib_redirect(&progs[1]);
		test_tc_fib_redirect(&progs[2]);
		test_xdp_fib_redirect();
		sh("ip link del spt0");
	} else {
		sp_test_skip("fib_redirect", "cannot set up a veth in the private netns");
	}
	cleanup();
	return sp_test_exit();
}
