// SPDX-License-Identifier: Apache-2.0
/*
 * Tests of the inspection subcommands (user/inspect.c). Builds the maps of
 * bpf/maps.h by hand with bpf_map_create() (same types, key and value
 * sizes), pins them in a fresh directory under /sys/fs/bpf, fills a few
 * Services, backends, Maglev regions, conntrack entries and counters, then
 * runs cmd_* with --bpffs-dir on it and checks the text and JSON output.
 * Everything is removed on every exit path (atexit and fatal signals).
 * Needs root and bpffs; prints SKIP otherwise.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <json-c/json.h>
#include <linux/magic.h>

#include "cli.h"
#include "ct.h"
#include "inspect.h"
#include "svcplane.h"
#include "test.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define NSEC 1000000000ull

/* The maps of bpf/maps.h, restated here so the test checks the CLI against them. */
static const struct tmap {
	const char *name;
	enum bpf_map_type type;
	__u32 key_size, value_size, max_entries, flags;
} tmaps[] = {
	{ SP_MAP_SERVICES, BPF_MAP_TYPE_HASH, sizeof(struct sp_svc_key), sizeof(struct sp_svc), 64,
	  BPF_F_NO_PREALLOC },
	/* An array as the daemon's; big enough for backend id 70,000 (below). */
	{ SP_MAP_BACKENDS, BPF_MAP_TYPE_ARRAY, sizeof(__u32), sizeof(struct sp_backend), 70001,
	  BPF_F_MMAPABLE },
	{ SP_MAP_MAGLEV, BPF_MAP_TYPE_ARRAY, sizeof(__u32), sizeof(struct sp_maglev_chunk), 64, 0 },
	{ SP_MAP_CT4, BPF_MAP_TYPE_LRU_HASH, sizeof(struct sp_ct4_key), sizeof(struct sp_ct4_val),
	  1024, 0 },
	{ SP_MAP_CT6, BPF_MAP_TYPE_LRU_HASH, sizeof(struct sp_ct_key), sizeof(struct sp_ct_entry),
	  512, 0 },
	{ SP_MAP_NODE_ADDRS, BPF_MAP_TYPE_HASH, sizeof(struct sp_node_addr_key), sizeof(__u8), 16,
	  0 },
	{ SP_MAP_STATS, BPF_MAP_TYPE_PERCPU_ARRAY, sizeof(__u32), sizeof(struct sp_stats), 1, 0 },
	{ SP_MAP_REASONS, BPF_MAP_TYPE_PERCPU_ARRAY, sizeof(__u32), sizeof(struct sp_reason_count),
	  SP_R_MAX, 0 },
	{ SP_MAP_SVC_STATS, BPF_MAP_TYPE_PERCPU_ARRAY, sizeof(__u32), sizeof(struct sp_svc_stats),
	  64, 0 },
	{ SP_MAP_SVC_META, BPF_MAP_TYPE_HASH, sizeof(__u32), sizeof(struct sp_svc_meta), 64,
	  BPF_F_NO_PREALLOC },
};
enum { T_SERVICES, T_BACKENDS, T_MAGLEV, T_CT4, T_CT6, T_NODE, T_STATS, T_REASONS, T_SVC_STATS,
       T_META, T_NMAPS };
_Static_assert(ARRAY_SIZE(tmaps) == T_NMAPS, "one entry per map");

static int fds[T_NMAPS], blank_fds[T_NMAPS];
static char dir[64]; /* /sys/fs/bpf/sp-test-inspect-XXXXXX */
static char empty_dir[128], bad_dir[128], blank_dir[128], pidfile[PATH_MAX], bad_pidfile[PATH_MAX];
static bool made_run_dir;
static pid_t main_pid;
static int ncpus;
static __u64 t_now;

/* ---- cleanup: on exit and on fatal signals, in the main process only ---- */

static void rm_tree(const char *path)
{
	char child[PATH_MAX];
	struct dirent *de;
	struct stat sb;
	DIR *d;

	if (lstat(path, &sb))
		return;
	if (!S_ISDIR(sb.st_mode)) {
		unlink(path);
		return;
	}
	d = opendir(path);
	if (d) {
		while ((de = readdir(d))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			snprintf(child, sizeof(child), "%s/%s", path, de->d_name);
			rm_tree(child);
		}
		closedir(d);
	}
	rmdir(path);
}

static void cleanup(void)
{
	int i;

	if (getpid() != main_pid)
		return;
	for (i = 0; i < T_NMAPS; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		if (blank_fds[i] >= 0)
			close(blank_fds[i]);
		fds[i] = blank_fds[i] = -1;
	}
	if (dir[0])
		rm_tree(dir);
	dir[0] = '\0';
	if (pidfile[0])
		unlink(pidfile);
	if (bad_pidfile[0])
		unlink(bad_pidfile);
	if (made_run_dir)
		rmdir(SP_RUN_DIR); /* only if still empty */
	made_run_dir = false;
}

static void on_signal(int sig)
{
	cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* ---- running a command with its output captured ---- */

static char *slurp(FILE *f)
{
	long n;
	char *s;

	fflush(f);
	n = ftell(f);
	s = calloc(1, n > 0 ? n + 1 : 1);
	if (s && n > 0) {
		rewind(f);
		if (fread(s, 1, n, f) != (size_t)n)
			s[0] = '\0';
	}
	return s;
}

struct out {
	int ret;
	char *o; /* stdout */
	char *e; /* stderr */
};

static void out_free(struct out *r)
{
	free(r->o);
	free(r->e);
	r->o = r->e = NULL;
}

/* Run fn with argv = the NULL-terminated strings; capture stdout and stderr. */
static struct out run(int (*fn)(int, char **), const char *a0, ...)
{
	struct out r = { 0 };
	char *argv[16];
	int argc = 0, so, se;
	FILE *fo, *fe;
	const char *a;
	va_list ap;

	argv[argc++] = (char *)a0;
	va_start(ap, a0);
	while ((a = va_arg(ap, const char *)) && argc < 15)
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;

	fo = tmpfile();
	fe = tmpfile();
	if (!fo || !fe) {
		perror("tmpfile");
		exit(1);
	}
	fflush(stdout);
	fflush(stderr);
	so = dup(1);
	se = dup(2);
	dup2(fileno(fo), 1);
	dup2(fileno(fe), 2);
	r.ret = fn(argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(so, 1);
	dup2(se, 2);
	close(so);
	close(se);
	r.o = slurp(fo);
	r.e = slurp(fe);
	fclose(fo);
	fclose(fe);
	return r;
}

/* Parse r->o as JSON; logs the text on failure. */
static struct json_object *parse_json(const struct out *r)
{
	struct json_object *j = json_tokener_parse(r->o);

	if (!j)
		fprintf(stderr, "  not JSON:\n%s\n", r->o);
	return j;
}

static struct json_object *jget(struct json_object *o, const char *k)
{
	struct json_object *v = NULL;

	if (!o || !json_object_object_get_ex(o, k, &v))
		return NULL;
	return v;
}

static long long jint(struct json_object *o, const char *k)
{
	struct json_object *v = jget(o, k);

	return v ? json_object_get_int64(v) : -12345;
}

static const char *jstring(struct json_object *o, const char *k)
{
	struct json_object *v = jget(o, k);

	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static bool jtrue(struct json_object *o, const char *k)
{
	struct json_object *v = jget(o, k);

	return v && json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
}

/* ---- fixture ---- */

static struct sp_addr a4(const char *s)
{
	struct sp_addr a = { 0 };

	inet_pton(AF_INET, s, &a.addr[0]);
	return a;
}

static struct sp_addr a6(const char *s)
{
	struct sp_addr a = { 0 };

	inet_pton(AF_INET6, s, a.addr);
	return a;
}

static int put(int m, const void *k, const void *v)
{
	int err = bpf_map_update_elem(fds[m], k, v, BPF_ANY);

	if (err)
		fprintf(stderr, "  update %s: %s\n", tmaps[m].name, strerror(-err));
	return err;
}

static int put_fe(struct sp_addr addr, __u8 family, __u16 port, __u8 proto, __u32 svc_id,
		  __u32 region, __u32 m, __u16 n, __u16 flags)
{
	struct sp_svc_key k = { .addr = addr, .port = htons(port), .proto = proto,
				.family = family };
	struct sp_svc v = { .svc_id = svc_id, .region = region, .m = m, .n = n, .flags = flags };

	return put(T_SERVICES, &k, &v);
}

static int put_be(__u32 id, struct sp_addr addr, __u8 family, __u16 port)
{
	struct sp_backend b = { .addr = addr, .port = htons(port), .family = family };

	return put(T_BACKENDS, &id, &b);
}

static int put_meta(__u32 id, const char *name, __u32 m, __u16 n, __u32 region)
{
	struct sp_svc_meta v = { .m = m, .n = n, .region = region };

	snprintf(v.name, sizeof(v.name), "%s", name);
	v.region_chunks = (2 * n + m + SP_MAGLEV_CHUNK_WORDS - 1) / SP_MAGLEV_CHUNK_WORDS;
	return put(T_META, &id, &v);
}

/* Write a region: ids (low half first), then the m entries. */
static int put_region(__u32 region, const __u32 *ids, __u16 n, const __u16 *table, __u32 m)
{
	__u16 words[64 * SP_MAGLEV_CHUNK_WORDS] = { 0 };
	size_t nw = 2 * (size_t)n + m, i;
	struct sp_maglev_chunk ch;
	__u32 key;

	for (i = 0; i < n; i++) {
		words[2 * i] = ids[i] & 0xffff;
		words[2 * i + 1] = ids[i] >> 16;
	}
	memcpy(words + 2 * n, table, m * sizeof(*table));
	for (i = 0; i * SP_MAGLEV_CHUNK_WORDS < nw; i++) {
		key = region + i;
		memcpy(ch.w, words + i * SP_MAGLEV_CHUNK_WORDS, sizeof(ch.w));
		if (put(T_MAGLEV, &key, &ch))
			return -1;
	}
	return 0;
}

/* Per-CPU value: cpu0 gets *first, every other CPU gets *rest. */
static int put_percpu(int m, __u32 key, const void *first, const void *rest, size_t sz)
{
	char *buf = calloc(ncpus, sz);
	int i, err;

	if (!buf)
		return -ENOMEM;
	for (i = 0; i < ncpus; i++)
		memcpy(buf + i * sz, i ? rest : first, sz);
	err = put(m, &key, buf);
	free(buf);
	return err;
}

static int put_ct(const char *s, __u16 sport, const char *d, __u16 dport, __u8 family, __u8 proto,
		  __u8 dir_, const char *nat, __u16 nat_port, const char *nat_s, __u16 nat_sport,
		  __u32 backend, __u32 svc, __u8 state, __u8 flags, long long exp_s,
		  long long age_s)
{
	struct sp_addr (*conv)(const char *) = family == SP_FAMILY_V4 ? a4 : a6;
	struct sp_ct_key k = { .saddr = conv(s), .daddr = conv(d), .sport = htons(sport),
			       .dport = htons(dport), .proto = proto, .family = family,
			       .dir = dir_ };
	struct sp_ct_val v = { .nat_addr = conv(nat), .nat_port = htons(nat_port),
			       .nat_sport = htons(nat_sport), .backend_id = backend,
			       .svc_id = svc, .state = state, .flags = flags };

	struct sp_ct_maps m = { .fd4 = fds[T_CT4], .fd6 = fds[T_CT6] };
	int err;

	if (nat_s)
		v.nat_saddr = conv(nat_s);
	v.expires = t_now + exp_s * (long long)NSEC;
	v.created = t_now - age_s * (long long)NSEC;
	/* Each family in its own table, in its layout (user/ct.h). */
	err = sp_ct_update(&m, &k, &v, BPF_ANY);
	if (err)
		fprintf(stderr, "  update conntrack: %s\n", strerror(-err));
	return err;
}

/* svc 1's table: slot 0 for e % 5 in {0,1,2}, else slot 1: 151 and 100 entries of 251. */
static __u16 svc1_table[251];
/* svc 5's: e % 7 == 0 points past its 2 backends (36 entries), else slot e % 2 (108, 107). */
static __u16 svc5_table[251];

static int fill(void)
{
	static const __u32 ids1[] = { 3, 70000 }, ids2[] = { 5 }, ids4[] = { 3 };
	static const __u32 ids5[] = { 3, 4242 };
	static __u16 zeros[251];
	struct sp_svc_stats ss = { .packets = 100, .bytes = 6000, .new_flows = 7, .drops = 1 };
	struct sp_svc_stats rj = { .rejects = 2 };
	struct sp_stats s0 = { .rx_packets = 10, .ct_insert_fail = 1 }, s1 = { .rx_packets = 10 };
	struct sp_reason_count r0 = { .packets = 3, .bytes = 180 }, r1 = { 0 };
	struct timespec ts;
	int err = 0, i;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	t_now = (__u64)ts.tv_sec * NSEC + ts.tv_nsec;
	for (i = 0; i < 251; i++) {
		svc1_table[i] = i % 5 < 3 ? 0 : 1;
		svc5_table[i] = i % 7 ? i % 2 : 7;
	}

	/* svc 1: v4 tcp, ClusterIP + external + NodePort, two backends (one id > 16 bits). */
	err = err ?: put_fe(a4("10.96.0.10"), SP_FAMILY_V4, 80, IPPROTO_TCP, 1, 0, 251, 2, 0);
	err = err ?: put_fe(a4("203.0.113.7"), SP_FAMILY_V4, 80, IPPROTO_TCP, 1, 0, 251, 2,
			    SP_SVC_F_EXTERNAL);
	err = err ?: put_fe(a4("0.0.0.0"), SP_FAMILY_V4, 30080, IPPROTO_TCP, 1, 0, 251, 2,
			    SP_SVC_F_NODEPORT);
	err = err ?: put_region(0, ids1, 2, svc1_table, 251);
	err = err ?: put_meta(1, "default/web:http/tcp/v4", 251, 2, 0);
	/* svc 2: the same Service port over IPv6. */
	err = err ?: put_fe(a6("fd00::10"), SP_FAMILY_V6, 80, IPPROTO_TCP, 2, 8, 251, 1, 0);
	err = err ?: put_fe(a6("::"), SP_FAMILY_V6, 30080, IPPROTO_TCP, 2, 8, 251, 1,
			    SP_SVC_F_NODEPORT);
	err = err ?: put_region(8, ids2, 1, zeros, 251);
	err = err ?: put_meta(2, "default/web:http/tcp/v6", 251, 1, 8);
	/* svc 3: UDP, no ready endpoint. */
	err = err ?: put_fe(a4("10.96.0.53"), SP_FAMILY_V4, 53, IPPROTO_UDP, 3, 0, 0, 0, 0);
	err = err ?: put_meta(3, "kube-system/dns:dns/udp/v4", 0, 0, 0);
	/* svc 4: a name that "default/web" must not match; shares backend 3. */
	err = err ?: put_fe(a4("10.96.0.20"), SP_FAMILY_V4, 80, IPPROTO_TCP, 4, 16, 251, 1, 0);
	err = err ?: put_region(16, ids4, 1, zeros, 251);
	err = err ?: put_meta(4, "default/web2:http/tcp/v4", 251, 1, 16);
	/* svc 5: a backend id missing from sp_backends, entries past the list. */
	err = err ?: put_fe(a4("10.96.0.30"), SP_FAMILY_V4, 80, IPPROTO_TCP, 5, 24, 251, 2, 0);
	err = err ?: put_region(24, ids5, 2, svc5_table, 251);
	err = err ?: put_meta(5, "default/broken:http/tcp/v4", 251, 2, 24);
	/* svc 6: a region that runs past the end of sp_maglev. */
	err = err ?: put_fe(a4("10.96.0.40"), SP_FAMILY_V4, 80, IPPROTO_TCP, 6, 64, 251, 1, 0);
	err = err ?: put_meta(6, "default/badregion:http/tcp/v4", 251, 1, 64);
	/* svc 9: no metadata. */
	err = err ?: put_fe(a4("10.96.0.99"), SP_FAMILY_V4, 443, IPPROTO_TCP, 9, 0, 0, 0, 0);

	err = err ?: put_be(3, a4("10.244.1.5"), SP_FAMILY_V4, 8080);
	err = err ?: put_be(70000, a4("10.244.2.7"), SP_FAMILY_V4, 8080);
	err = err ?: put_be(5, a6("fd00:244::5"), SP_FAMILY_V6, 8080);
	err = err ?: put_be(9, a4("10.244.3.9"), SP_FAMILY_V4, 80); /* unreferenced */

	err = err ?: put_percpu(T_SVC_STATS, 1, &ss, &ss, sizeof(ss));
	err = err ?: put_percpu(T_SVC_STATS, 3, &rj, &rj, sizeof(rj));
	err = err ?: put_percpu(T_STATS, 0, &s0, &s1, sizeof(s0));
	err = err ?: put_percpu(T_REASONS, SP_R_NO_BACKEND, &r0, &r1, sizeof(r0));

	/* A flow (both directions), a hairpin flow, an expired IPv6 entry. */
	err = err ?: put_ct("192.168.1.2", 40000, "10.96.0.10", 80, SP_FAMILY_V4, IPPROTO_TCP,
			    SP_CT_FWD, "10.244.1.5", 8080, NULL, 0, 3, 1, SP_CT_ESTABLISHED, 0,
			    60, 5);
	err = err ?: put_ct("10.244.1.5", 8080, "192.168.1.2", 40000, SP_FAMILY_V4, IPPROTO_TCP,
			    SP_CT_REV, "10.96.0.10", 80, "192.168.1.2", 40000, 3, 1,
			    SP_CT_ESTABLISHED, 0, 60, 5);
	err = err ?: put_ct("10.244.1.5", 41000, "10.96.0.10", 80, SP_FAMILY_V4, IPPROTO_TCP,
			    SP_CT_FWD, "10.244.1.5", 8080, "169.254.7.1", 0, 3, 1, SP_CT_NEW,
			    SP_CT_F_HAIRPIN, 30, 1);
	err = err ?: put_ct("fd00::99", 5353, "fd00::10", 80, SP_FAMILY_V6, IPPROTO_TCP, SP_CT_FWD,
			    "fd00:244::5", 8080, NULL, 0, 5, 2, SP_CT_CLOSING, 0, -10, 100);
	return err;
}

/* Create every map of tmaps[] into out[] and pin it under d. Returns 0 or -1. */
static int create_maps(const char *d, int *out)
{
	char path[PATH_MAX];
	int i;

	for (i = 0; i < T_NMAPS; i++) {
		LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = tmaps[i].flags);

		out[i] = bpf_map_create(tmaps[i].type, tmaps[i].name, tmaps[i].key_size,
					tmaps[i].value_size, tmaps[i].max_entries, &o);
		if (out[i] < 0) {
			fprintf(stderr, "create map %s: %s\n", tmaps[i].name, strerror(-out[i]));
			return -1;
		}
		snprintf(path, sizeof(path), "%s/%s", d, tmaps[i].name);
		if (bpf_obj_pin(out[i], path)) {
			fprintf(stderr, "pin %s: %s\n", path, strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* Create, pin and fill every map in a fresh directory. Returns 0 or -1. */
static int setup(void)
{
	struct tmap bad;
	char path[PATH_MAX];
	int i, fd;

	snprintf(dir, sizeof(dir), "/sys/fs/bpf/sp-test-inspect-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp on bpffs");
		dir[0] = '\0';
		return -1;
	}
	if (create_maps(dir, fds))
		return -1;
	/* Every map but empty; an empty directory; an sp_services of another value size. */
	snprintf(blank_dir, sizeof(blank_dir), "%s/blank", dir);
	snprintf(empty_dir, sizeof(empty_dir), "%s/empty", dir);
	snprintf(bad_dir, sizeof(bad_dir), "%s/bad/", dir); /* trailing '/' on purpose */
	if (mkdir(blank_dir, 0700) || mkdir(empty_dir, 0700) || mkdir(bad_dir, 0700)) {
		perror("mkdir on bpffs");
		return -1;
	}
	if (create_maps(blank_dir, blank_fds))
		return -1;
	for (i = 0; i < T_NMAPS; i++) {
		close(blank_fds[i]);
		blank_fds[i] = -1;
	}
	bad = tmaps[T_SERVICES];
	fd = bpf_map_create(bad.type, bad.name, bad.key_size, bad.value_size + 4, 4, NULL);
	snprintf(path, sizeof(path), "%s%s", bad_dir, bad.name);
	if (fd < 0 || bpf_obj_pin(fd, path)) {
		fprintf(stderr, "pin %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	if (sp_pidfile_path(dir, pidfile, sizeof(pidfile)) ||
	    sp_pidfile_path(bad_dir, bad_pidfile, sizeof(bad_pidfile))) {
		fprintf(stderr, "pid file path for %s\n", dir);
		return -1;
	}
	return fill();
}

/* Reference FNV-1a over (family, 16 address bytes, port in wire order) per entry. */
static uint64_t ref_digest(const struct sp_backend *const *per_entry, size_t m)
{
	uint64_t h = 0xcbf29ce484222325ull;
	unsigned char rec[19];
	size_t e, i;

	for (e = 0; e < m; e++) {
		memset(rec, 0, sizeof(rec));
		rec[0] = per_entry[e]->family;
		memcpy(rec + 1, per_entry[e]->addr.addr, 16);
		memcpy(rec + 17, &per_entry[e]->port, 2);
		for (i = 0; i < sizeof(rec); i++)
			h = (h ^ rec[i]) * 0x100000001b3ull;
	}
	return h;
}

/* ---- tests ---- */

static void test_pidfile_path(void)
{
	char buf[64];

	ASSERT_EQ(sp_pidfile_path("/sys/fs/bpf/svcplane", buf, sizeof(buf)), 0, "default");
	ASSERT_STREQ(buf, "/run/svcplane/_sys_fs_bpf_svcplane.pid", "default path");
	ASSERT_EQ(sp_pidfile_path("/sys/fs/bpf/svcplane//", buf, sizeof(buf)), 0, "trailing /");
	ASSERT_STREQ(buf, "/run/svcplane/_sys_fs_bpf_svcplane.pid", "trailing / dropped");
	ASSERT_EQ(sp_pidfile_path("/sys/fs/bpf/svcplane", buf, 20), -ENAMETOOLONG, "short buf");
	ASSERT_EQ(sp_pidfile_path("", buf, sizeof(buf)), -EINVAL, "empty");
}

static void test_digest(void)
{
	struct sp_backend be[2] = {
		{ .addr = a4("10.244.1.5"), .port = htons(8080), .family = SP_FAMILY_V4 },
		{ .addr = a6("fd00::1"), .port = htons(80), .family = SP_FAMILY_V6 },
	};
	struct sp_backend swapped[2] = { be[1], be[0] };
	const struct sp_backend *per[5];
	__u16 t1[5] = { 0, 1, 1, 0, 1 }, t2[5];
	uint64_t d1 = 0, d2 = 0, d3 = 0, d0 = 0;
	size_t i;

	for (i = 0; i < 5; i++) {
		per[i] = &be[t1[i]];
		t2[i] = !t1[i];
	}
	/* Stray bytes behind an IPv4 address must not change anything. */
	be[0].addr.addr[2] = 0xdeadbeef;
	ASSERT_EQ(sp_inspect_digest(be, 2, t1, 5, &d1), 0, "digest");
	be[0].addr.addr[2] = 0;
	ASSERT_EQ(d1, ref_digest(per, 5), "matches the reference definition");
	/* Same backend per entry through another slot order: same digest. */
	ASSERT_EQ(sp_inspect_digest(swapped, 2, t2, 5, &d2), 0, "digest");
	ASSERT_EQ(d2, d1, "by identity, not index");
	ASSERT_EQ(sp_inspect_digest(be, 2, t2, 5, &d3), 0, "digest");
	ASSERT_NEQ(d3, d1, "different table");
	ASSERT_EQ(sp_inspect_digest(be, 2, t1, 0, &d0), 0, "digest");
	ASSERT_EQ(d0, 0xcbf29ce484222325ull, "empty table");
}

static void test_args(void)
{
	struct out r;

	r = run(cmd_services, "services", "--help", NULL);
	ASSERT_EQ(r.ret, 0, "services --help");
	ASSERT_CONTAINS(r.o, "Usage: svcplane services", "usage");
	ASSERT_CONTAINS(r.o, "--bpffs-dir DIR", "usage lists --bpffs-dir");
	out_free(&r);

	r = run(cmd_maglev, "maglev", "-h", NULL);
	ASSERT_EQ(r.ret, 0, "maglev -h");
	ASSERT_CONTAINS(r.o, "Usage: svcplane maglev [OPTIONS] SVC", "maglev usage");
	ASSERT_CONTAINS(r.o, "--table", "maglev usage lists --table");
	out_free(&r);

	r = run(cmd_stats, "stats", "--bogus", NULL);
	ASSERT_EQ(r.ret, -EINVAL, "unknown long option");
	ASSERT_CONTAINS(r.e, "svcplane stats: unknown option '--bogus'", "message");
	out_free(&r);

	r = run(cmd_backends, "backends", "-x", NULL);
	ASSERT_EQ(r.ret, -EINVAL, "unknown short option");
	ASSERT_CONTAINS(r.e, "unknown option '-x'", "message");
	out_free(&r);

	r = run(cmd_conntrack, "conntrack", "--limit", "ten", NULL);
	ASSERT_EQ(r.ret, -EINVAL, "bad --limit");
	ASSERT_CONTAINS(r.e, "--limit: 'ten' is not a number", "message");
	out_free(&r);

	r = run(cmd_conntrack, "conntrack", "--limit=-1", NULL);
	ASSERT_EQ(r.ret, -EINVAL, "negative --limit");
	out_free(&r);

	r = run(cmd_conntrack, "conntrack", "--limit", NULL);
	ASSERT_EQ(r.ret, -EINVAL, "--limit without argument");
	ASSERT_CONTAINS(r.e, "option --limit needs an argument", "message");
	out_free(&r);

	r = run(cmd_stats, "stats", "--json=yes", NULL);
	ASSERT_EQ(r.ret, -EINVAL, "flag with an argument");
	ASSERT_CONTAINS(r.e, "option --json takes no argument", "message");
	out_free(&r);

	r = run(cmd_maglev, "maglev", "--bpffs-dir", dir, NULL);
	ASSERT_EQ(r.ret, -EINVAL, "maglev without SVC");
	ASSERT_CONTAINS(r.e, "svcplane maglev: missing SVC", "message");
	out_free(&r);

	r = run(cmd_services, "services", "--bpffs-dir", dir, "extra", NULL);
	ASSERT_EQ(r.ret, -EINVAL, "stray argument");
	ASSERT_CONTAINS(r.e, "unexpected argument 'extra'", "message");
	out_free(&r);
}

static void test_missing_maps(void)
{
	char want[256];
	struct out r;

	r = run(cmd_services, "services", "-d", empty_dir, NULL);
	ASSERT_EQ(r.ret, -ENOENT, "services on an empty dir");
	snprintf(want, sizeof(want),
		 "svcplane services: open pinned map %s/sp_services: No such file or directory "
		 "(is the daemon running? try --bpffs-dir)",
		 empty_dir);
	ASSERT_CONTAINS(r.e, want, "message names the map and hints");
	out_free(&r);

	r = run(cmd_stats, "stats", "--bpffs-dir", "/nonexistent/dir", NULL);
	ASSERT_EQ(r.ret, -ENOENT, "stats on a missing dir");
	ASSERT_CONTAINS(r.e, "/nonexistent/dir/sp_stats", "message names the path");
	out_free(&r);

	r = run(cmd_services, "services", "--bpffs-dir", bad_dir, NULL);
	ASSERT_EQ(r.ret, -EPROTO, "ABI mismatch");
	snprintf(want, sizeof(want), "sp_services: value size %zu, expected %zu",
		 sizeof(struct sp_svc) + 4, sizeof(struct sp_svc));
	ASSERT_CONTAINS(r.e, want, "says what differs");
	out_free(&r);
}

/* Every map pinned but empty: a node with no Service yet. */
static void test_empty_maps(void)
{
	struct json_object *j;
	struct out r;

	r = run(cmd_services, "services", "--bpffs-dir", blank_dir, NULL);
	ASSERT_EQ(r.ret, 0, "services");
	ASSERT_CONTAINS(r.o, "no services in", "says so");
	out_free(&r);
	r = run(cmd_services, "services", "--bpffs-dir", blank_dir, "--json", NULL);
	ASSERT_EQ(r.ret, 0, "services --json");
	j = parse_json(&r);
	ASSERT_TRUE(j && json_object_is_type(j, json_type_array) && !json_object_array_length(j),
		    "empty array");
	json_object_put(j);
	out_free(&r);
	r = run(cmd_backends, "backends", "--bpffs-dir", blank_dir, NULL);
	ASSERT_EQ(r.ret, 0, "backends");
	ASSERT_CONTAINS(r.o, "no backends in", "says so");
	out_free(&r);
	r = run(cmd_conntrack, "conntrack", "--bpffs-dir", blank_dir, NULL);
	ASSERT_EQ(r.ret, 0, "conntrack");
	ASSERT_CONTAINS(r.o, "no conntrack entries in", "says so");
	out_free(&r);
	r = run(cmd_maglev, "maglev", "--bpffs-dir", blank_dir, "1", NULL);
	ASSERT_EQ(r.ret, -ENOENT, "maglev of nothing");
	out_free(&r);
	r = run(cmd_stats, "stats", "--bpffs-dir", blank_dir, NULL);
	ASSERT_EQ(r.ret, 0, "stats");
	ASSERT_CONTAINS(r.o, "(no reason counted a packet", "says so");
	out_free(&r);
}

static void test_services_text(void)
{
	const char *line, *nl, *hdr;
	size_t col, rows = 0;
	struct out r;

	r = run(cmd_services, "services", "--bpffs-dir", dir, NULL);
	if (!ASSERT_EQ(r.ret, 0, "services"))
		fprintf(stderr, "%s", r.e);
	ASSERT_CONTAINS(r.o, "default/web:http/tcp/v4", "name");
	ASSERT_CONTAINS(r.o, "10.96.0.10:80/tcp, 203.0.113.7:80/tcp(ext), *:30080/tcp",
			"frontends: cluster, external, NodePort wildcard");
	ASSERT_CONTAINS(r.o, "[fd00::10]:80/tcp, *:30080/tcp", "IPv6 frontends");
	ASSERT_CONTAINS(r.o, "backends: 10.244.1.5:8080 (id 3), 10.244.2.7:8080 (id 70000)",
			"backends resolved, 32-bit id");
	ASSERT_CONTAINS(r.o, "backends: [fd00:244::5]:8080 (id 5)", "IPv6 backend");
	ASSERT_CONTAINS(r.o, "none: new connections are rejected", "empty Service");
	ASSERT_CONTAINS(r.o, "(svc_id 9: no metadata)", "Service without metadata");

	/* Every row starts FRONTENDS where the header does. */
	hdr = r.o;
	ASSERT_TRUE(!strncmp(hdr, "NAME ", 5), "header first");
	col = strstr(hdr, "FRONTENDS") ? (size_t)(strstr(hdr, "FRONTENDS") - hdr) : 0;
	for (line = strchr(hdr, '\n'); line && line[1]; line = nl) {
		line++;
		nl = strchr(line, '\n');
		if (!strncmp(line, "    backends:", 13))
			continue;
		rows++;
		ASSERT_TRUE(nl && (size_t)(nl - line) > col && line[col - 1] == ' ' &&
				    line[col] != ' ',
			    "FRONTENDS column aligned");
	}
	ASSERT_EQ(rows, 7, "one row per Service port");
	ASSERT_CONTAINS(r.o, "backends: 10.244.1.5:8080 (id 3), (missing id 4242)", "missing id");
	ASSERT_CONTAINS(r.o, "backends: unreadable", "region past the end");
	ASSERT_CONTAINS(r.e,
			"svcplane services: Maglev region at chunk 64 (8 chunks) lies past the end",
			"region error reported");
	out_free(&r);
}

/*
 * A Service of 12 backends, in maps of its own (a "many" directory beside
 * the fixture, so the fixture's counts stay): the text view lists 8 and
 * says how many more, --all-backends and --json list all 12.
 */
static void test_services_many_backends(void)
{
	char many[PATH_MAX];
	int saved[T_NMAPS], mfds[T_NMAPS], err = 0, i;
	__u32 ids[12];
	__u16 table[251];
	struct json_object *j, *be;
	struct out r;

	for (i = 0; i < T_NMAPS; i++)
		mfds[i] = -1;
	snprintf(many, sizeof(many), "%s/many", dir);
	if (!ASSERT_EQ(mkdir(many, 0700), 0, "mkdir many") ||
	    !ASSERT_EQ(create_maps(many, mfds), 0, "create maps"))
		goto out;
	for (i = 0; i < 251; i++)
		table[i] = i % 12;
	/* put_*() write to fds[]: point it at the new maps while filling them. */
	memcpy(saved, fds, sizeof(saved));
	memcpy(fds, mfds, sizeof(fds));
	for (i = 0; i < 12; i++) {
		char a[32];

		ids[i] = 100 + i;
		snprintf(a, sizeof(a), "10.244.9.%d", i + 1);
		err = err ?: put_be(ids[i], a4(a), SP_FAMILY_V4, 8080);
	}
	err = err ?: put_fe(a4("10.96.0.12"), SP_FAMILY_V4, 80, IPPROTO_TCP, 1, 0, 251, 12, 0);
	err = err ?: put_region(0, ids, 12, table, 251);
	err = err ?: put_meta(1, "default/many:http/tcp/v4", 251, 12, 0);
	memcpy(fds, saved, sizeof(fds));
	if (!ASSERT_EQ(err, 0, "fill"))
		goto out;

	r = run(cmd_services, "services", "--bpffs-dir", many, NULL);
	ASSERT_EQ(r.ret, 0, "services");
	ASSERT_CONTAINS(r.o, "10.244.9.8:8080 (id 107) ... and 4 more of 12 (--all-backends)\n",
			"8 listed, then the count");
	ASSERT_TRUE(!strstr(r.o, "10.244.9.9:"), "the 9th is not listed");
	out_free(&r);

	r = run(cmd_services, "services", "--bpffs-dir", many, "--all-backends", NULL);
	ASSERT_EQ(r.ret, 0, "services --all-backends");
	ASSERT_CONTAINS(r.o, "10.244.9.11:8080 (id 110), 10.244.9.12:8080 (id 111)\n",
			"all 12 listed");
	ASSERT_TRUE(!strstr(r.o, "more of"), "no count");
	out_free(&r);

	r = run(cmd_services, "services", "--bpffs-dir", many, "--json", NULL);
	ASSERT_EQ(r.ret, 0, "services --json");
	j = parse_json(&r);
	be = j ? jget(json_object_array_get_idx(j, 0), "backends") : NULL;
	ASSERT_EQ(be ? json_object_array_length(be) : 0, 12, "JSON lists all 12");
	json_object_put(j);
	out_free(&r);
out:
	for (i = 0; i < T_NMAPS; i++)
		if (mfds[i] >= 0)
			close(mfds[i]);
}

static void test_services_json(void)
{
	struct json_object *j, *s, *fe, *be, *st;
	struct out r;

	r = run(cmd_services, "services", "--json", "--bpffs-dir", dir, NULL);
	ASSERT_EQ(r.ret, 0, "services --json");
	j = parse_json(&r);
	if (!ASSERT_TRUE(j && json_object_is_type(j, json_type_array), "array"))
		goto out;
	ASSERT_EQ(json_object_array_length(j), 7, "seven Service ports");
	/* Sorted by name ('2' sorts before ':'), unnamed last. */
	ASSERT_STREQ(jstring(json_object_array_get_idx(j, 2), "name"), "default/web2:http/tcp/v4",
		     "sorted by name");
	s = json_object_array_get_idx(j, 3);
	ASSERT_STREQ(jstring(s, "name"), "default/web:http/tcp/v4", "sorted by name");
	ASSERT_EQ(jint(s, "svc_id"), 1, "svc_id");
	ASSERT_EQ(jint(s, "maglev_m"), 251, "maglev_m");
	ASSERT_EQ(jint(s, "backend_count"), 2, "n");
	fe = jget(s, "frontends");
	if (ASSERT_EQ(fe ? json_object_array_length(fe) : 0, 3, "frontends")) {
		ASSERT_STREQ(jstring(json_object_array_get_idx(fe, 0), "address"), "10.96.0.10",
			     "fe0");
		ASSERT_STREQ(jstring(json_object_array_get_idx(fe, 0), "kind"), "cluster", "k0");
		ASSERT_STREQ(jstring(json_object_array_get_idx(fe, 1), "kind"), "external", "k1");
		ASSERT_STREQ(jstring(json_object_array_get_idx(fe, 2), "address"), "*", "fe2");
		ASSERT_STREQ(jstring(json_object_array_get_idx(fe, 2), "kind"), "nodeport", "k2");
		ASSERT_EQ(jint(json_object_array_get_idx(fe, 2), "port"), 30080, "nodeport");
		ASSERT_STREQ(jstring(json_object_array_get_idx(fe, 2), "protocol"), "tcp", "proto");
	}
	be = jget(s, "backends");
	if (ASSERT_EQ(be ? json_object_array_length(be) : 0, 2, "backends")) {
		ASSERT_EQ(jint(json_object_array_get_idx(be, 0), "id"), 3, "be0 id");
		ASSERT_EQ(jint(json_object_array_get_idx(be, 1), "id"), 70000, "be1 id");
		ASSERT_STREQ(jstring(json_object_array_get_idx(be, 1), "address"), "10.244.2.7",
			     "be1 address");
		ASSERT_EQ(jint(json_object_array_get_idx(be, 1), "port"), 8080, "be1 port");
	}
	st = jget(s, "stats");
	ASSERT_EQ(jint(st, "packets"), 100LL * ncpus, "packets summed over CPUs");
	ASSERT_EQ(jint(st, "bytes"), 6000LL * ncpus, "bytes");
	ASSERT_EQ(jint(st, "new_flows"), 7LL * ncpus, "new_flows");
	ASSERT_EQ(jint(st, "rejects"), 0, "rejects");

	s = json_object_array_get_idx(j, 4);
	ASSERT_STREQ(jstring(s, "family"), "ipv6", "v6 after v4");
	ASSERT_STREQ(jstring(json_object_array_get_idx(jget(s, "backends"), 0), "address"),
		     "fd00:244::5", "v6 backend");
	s = json_object_array_get_idx(j, 5);
	ASSERT_STREQ(jstring(s, "name"), "kube-system/dns:dns/udp/v4", "dns");
	ASSERT_EQ(jint(jget(s, "stats"), "rejects"), 2LL * ncpus, "dns rejects");
	ASSERT_EQ(json_object_array_length(jget(s, "backends")), 0, "no backends");
	s = json_object_array_get_idx(j, 6);
	ASSERT_TRUE(jget(s, "name") == NULL && json_object_object_get_ex(s, "name", NULL),
		    "name null without metadata");
	ASSERT_EQ(jint(s, "svc_id"), 9, "unnamed last");
out:
	json_object_put(j);
	out_free(&r);
}

static void test_backends(void)
{
	static const struct {
		long long id, refs;
		const char *addr, *family;
	} want[] = {
		{ 3, 3, "10.244.1.5", "ipv4" },
		{ 5, 1, "fd00:244::5", "ipv6" },
		{ 9, 0, "10.244.3.9", "ipv4" },
		{ 70000, 1, "10.244.2.7", "ipv4" },
	};
	struct json_object *j, *b;
	struct out r;
	size_t i;

	r = run(cmd_backends, "backends", "--bpffs-dir", dir, "--json", NULL);
	ASSERT_EQ(r.ret, 0, "backends --json");
	j = parse_json(&r);
	if (ASSERT_TRUE(j && json_object_is_type(j, json_type_array), "array") &&
	    ASSERT_EQ(json_object_array_length(j), ARRAY_SIZE(want), "count")) {
		for (i = 0; i < ARRAY_SIZE(want); i++) {
			b = json_object_array_get_idx(j, i);
			ASSERT_EQ(jint(b, "id"), want[i].id, "id (sorted)");
			ASSERT_EQ(jint(b, "services"), want[i].refs, "Services using it");
			ASSERT_STREQ(jstring(b, "address"), want[i].addr, "address");
			ASSERT_STREQ(jstring(b, "family"), want[i].family, "family");
		}
	}
	json_object_put(j);
	out_free(&r);

	r = run(cmd_backends, "backends", "--bpffs-dir", dir, NULL);
	ASSERT_EQ(r.ret, 0, "backends");
	ASSERT_CONTAINS(r.o, "   ID  ADDRESS             FAMILY  SERVICES\n", "header aligned");
	ASSERT_CONTAINS(r.o, "    5  [fd00:244::5]:8080  ipv6           1", "IPv6 row");
	ASSERT_CONTAINS(r.o, "70000  10.244.2.7:8080     ipv4           1", "row");
	out_free(&r);
}

/* Whole seconds since fill() read the clock, rounded up: how far an age or
 * a time left computed from t_now may have moved by now, however slow the
 * machine (valgrind) was between set-up and check. */
static long long secs_since_fill(void)
{
	struct timespec ts;
	__u64 now;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (__u64)ts.tv_sec * NSEC + ts.tv_nsec;
	return (long long)((now - t_now + NSEC - 1) / NSEC);
}

static void test_conntrack(void)
{
	struct json_object *j, *e;
	long long late;
	struct out r;

	r = run(cmd_conntrack, "conntrack", "--bpffs-dir", dir, "--json", NULL);
	ASSERT_EQ(r.ret, 0, "conntrack --json");
	j = parse_json(&r);
	if (!ASSERT_TRUE(j && json_object_is_type(j, json_type_array), "array") ||
	    !ASSERT_EQ(json_object_array_length(j), 4, "entries"))
		goto out;
	e = json_object_array_get_idx(j, 0); /* oldest: the expired IPv6 entry */
	ASSERT_STREQ(jstring(e, "family"), "ipv6", "oldest first");
	ASSERT_STREQ(jstring(e, "state"), "CLOSING", "state");
	ASSERT_TRUE(jtrue(e, "expired"), "expired");
	ASSERT_LE(jint(e, "expires_in"), -9, "negative time left");
	ASSERT_STREQ(jstring(jget(e, "source"), "address"), "fd00::99", "source");
	e = json_object_array_get_idx(j, 1);
	ASSERT_STREQ(jstring(e, "direction"), "fwd", "fwd before rev");
	ASSERT_STREQ(jstring(e, "state"), "ESTABLISHED", "state");
	ASSERT_STREQ(jstring(jget(e, "nat"), "daddr"), "10.244.1.5", "DNAT target");
	ASSERT_EQ(jint(jget(e, "nat"), "dport"), 8080, "DNAT port");
	ASSERT_EQ(jint(e, "backend_id"), 3, "backend id");
	ASSERT_EQ(jint(e, "svc_id"), 1, "svc id");
	/* Set up 60 s left and 5 s old (fill()); both move with the clock. */
	late = secs_since_fill();
	ASSERT_TRUE(jint(e, "expires_in") >= 58 - late && jint(e, "expires_in") <= 60, "time left");
	ASSERT_TRUE(jint(e, "age") >= 5 && jint(e, "age") <= 5 + late, "age");
	if (late > 1)
		fprintf(stderr, "  (conntrack checked %llds after set-up)\n", late);
	e = json_object_array_get_idx(j, 2);
	ASSERT_STREQ(jstring(e, "direction"), "rev", "rev");
	ASSERT_STREQ(jstring(jget(e, "nat"), "saddr"), "10.96.0.10", "reverse NAT source");
	ASSERT_EQ(jint(jget(e, "nat"), "sport"), 80, "reverse NAT port");
	e = json_object_array_get_idx(j, 3);
	ASSERT_TRUE(jtrue(e, "hairpin"), "hairpin flag");
	ASSERT_STREQ(jstring(jget(e, "nat"), "saddr"), "169.254.7.1", "hairpin source");
	ASSERT_STREQ(jstring(e, "state"), "NEW", "state NEW");
out:
	json_object_put(j);
	out_free(&r);

	r = run(cmd_conntrack, "conntrack", "--bpffs-dir", dir, "--json", "--limit", "2", NULL);
	ASSERT_EQ(r.ret, 0, "--limit 2");
	j = parse_json(&r);
	ASSERT_EQ(j ? json_object_array_length(j) : 0, 2, "limited");
	json_object_put(j);
	out_free(&r);

	r = run(cmd_conntrack, "conntrack", "-d", dir, "-n", "3", NULL);
	ASSERT_EQ(r.ret, 0, "conntrack");
	ASSERT_CONTAINS(r.o, "DIR  PROTO  SOURCE", "header");
	ASSERT_CONTAINS(r.o, "[fd00::99]:5353", "IPv6 tuple in brackets");
	ASSERT_CONTAINS(r.o, "expired", "expired entry");
	ASSERT_CONTAINS(r.o, "ESTABLISHED", "state");
	ASSERT_CONTAINS(r.o, "dst=10.244.1.5:8080", "NAT target");
	ASSERT_CONTAINS(r.o, "src=10.96.0.10:80", "reverse NAT");
	ASSERT_CONTAINS(r.o, "(3 of 4 entries shown", "says it was limited");
	ASSERT_TRUE(!strstr(r.o, "hairpin"), "newest entry cut by --limit");
	out_free(&r);
}

static void test_maglev(void)
{
	const struct sp_backend *per[251];
	struct sp_backend b3 = { .addr = a4("10.244.1.5"), .port = htons(8080),
				 .family = SP_FAMILY_V4 };
	struct sp_backend b7 = { .addr = a4("10.244.2.7"), .port = htons(8080),
				 .family = SP_FAMILY_V4 };
	struct json_object *j, *be, *t;
	char hex[20], want[64];
	struct out r;
	size_t i;

	for (i = 0; i < 251; i++)
		per[i] = svc1_table[i] ? &b7 : &b3;
	snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)ref_digest(per, 251));

	r = run(cmd_maglev, "maglev", "--bpffs-dir", dir, "default/web", NULL);
	ASSERT_EQ(r.ret, -EINVAL, "ambiguous prefix");
	ASSERT_CONTAINS(r.e, "'default/web' matches 2 Service ports", "says ambiguous");
	ASSERT_CONTAINS(r.e, "default/web:http/tcp/v4 (svc_id 1)", "lists v4");
	ASSERT_CONTAINS(r.e, "default/web:http/tcp/v6 (svc_id 2)", "lists v6");
	ASSERT_TRUE(!strstr(r.e, "web2"), "prefix stops at a boundary");
	out_free(&r);

	r = run(cmd_maglev, "maglev", "--bpffs-dir", dir, "nope/none", NULL);
	ASSERT_EQ(r.ret, -ENOENT, "unknown Service");
	ASSERT_CONTAINS(r.e, "no Service port matches 'nope/none'", "message");
	out_free(&r);

	r = run(cmd_maglev, "maglev", "--bpffs-dir", dir, "default/web2", "--json", NULL);
	ASSERT_EQ(r.ret, 0, "unique prefix");
	j = parse_json(&r);
	ASSERT_EQ(jint(j, "svc_id"), 4, "default/web2 is svc 4");
	json_object_put(j);
	out_free(&r);

	r = run(cmd_maglev, "maglev", "--bpffs-dir", dir, "--json", "--table", "1", NULL);
	ASSERT_EQ(r.ret, 0, "maglev by svc_id");
	j = parse_json(&r);
	ASSERT_STREQ(jstring(j, "name"), "default/web:http/tcp/v4", "name");
	ASSERT_EQ(jint(j, "maglev_m"), 251, "M");
	ASSERT_EQ(jint(j, "n"), 2, "N");
	ASSERT_STREQ(jstring(j, "digest"), hex, "digest by backend identity");
	ASSERT_EQ(jint(j, "invalid_entries"), 0, "no invalid entries");
	be = jget(j, "backends");
	if (ASSERT_EQ(be ? json_object_array_length(be) : 0, 2, "backends")) {
		ASSERT_EQ(jint(json_object_array_get_idx(be, 0), "entries"), 151, "slot 0");
		ASSERT_EQ(jint(json_object_array_get_idx(be, 1), "entries"), 100, "slot 1");
		ASSERT_EQ(jint(json_object_array_get_idx(be, 1), "id"), 70000, "slot 1 id");
	}
	t = jget(j, "table");
	if (ASSERT_EQ(t ? json_object_array_length(t) : 0, 251, "table")) {
		ASSERT_EQ(json_object_get_int64(json_object_array_get_idx(t, 0)), 3, "entry 0");
		ASSERT_EQ(json_object_get_int64(json_object_array_get_idx(t, 3)), 70000, "entry 3");
	}
	json_object_put(j);
	out_free(&r);

	r = run(cmd_maglev, "maglev", "--bpffs-dir", dir, "default/web:http/tcp/v4", NULL);
	ASSERT_EQ(r.ret, 0, "maglev by full name");
	snprintf(want, sizeof(want), "digest   %s\n", hex);
	ASSERT_CONTAINS(r.o, want, "digest line");
	ASSERT_CONTAINS(r.o, "M        251\n", "M line");
	ASSERT_CONTAINS(r.o, "SLOT     ID  BACKEND          ENTRIES   SHARE", "header");
	ASSERT_CONTAINS(r.o, "   1  70000  10.244.2.7:8080      100  39.84%", "share row");
	ASSERT_TRUE(!strstr(r.o, "INDEX"), "no table without --table");
	out_free(&r);

	r = run(cmd_maglev, "maglev", "--bpffs-dir", dir, "-t", "default/web:http/tcp/v6", NULL);
	ASSERT_EQ(r.ret, 0, "maglev --table");
	ASSERT_CONTAINS(r.o, "INDEX  SLOT  ID  BACKEND", "table header");
	ASSERT_CONTAINS(r.o, "\n  250     0   5  [fd00:244::5]:8080\n", "last entry");
	out_free(&r);

	r = run(cmd_maglev, "maglev", "--bpffs-dir", dir, "default/broken", "--json", NULL);
	ASSERT_EQ(r.ret, 0, "maglev with a missing backend");
	j = parse_json(&r);
	ASSERT_EQ(jint(j, "invalid_entries"), 36, "entries past the list");
	be = jget(j, "backends");
	if (ASSERT_EQ(be ? json_object_array_length(be) : 0, 2, "backends")) {
		ASSERT_EQ(jint(json_object_array_get_idx(be, 0), "entries"), 108, "slot 0");
		ASSERT_EQ(jint(json_object_array_get_idx(be, 1), "entries"), 107, "slot 1");
		ASSERT_EQ(jint(json_object_array_get_idx(be, 1), "id"), 4242, "missing id");
		ASSERT_TRUE(json_object_object_get_ex(json_object_array_get_idx(be, 1), "address",
						      &t) && !t,
			    "missing backend has a null address");
		ASSERT_TRUE(jtrue(json_object_array_get_idx(be, 1), "missing"), "marked missing");
	}
	json_object_put(j);
	out_free(&r);

	r = run(cmd_maglev, "maglev", "--bpffs-dir", dir, "default/broken:http/tcp/v4", NULL);
	ASSERT_EQ(r.ret, 0, "maglev text with a missing backend");
	ASSERT_CONTAINS(r.o, "invalid  36 entries point past the backend list", "invalid line");
	ASSERT_CONTAINS(r.o, "4242  (missing)", "missing row");
	out_free(&r);

	r = run(cmd_maglev, "maglev", "--bpffs-dir", dir, "6", NULL);
	ASSERT_EQ(r.ret, -ERANGE, "region past the end of sp_maglev");
	ASSERT_CONTAINS(r.e, "region at chunk 64 (8 chunks) lies past the end of sp_maglev (64",
			"says where");
	out_free(&r);

	r = run(cmd_maglev, "maglev", "--bpffs-dir", dir, "kube-system/dns", NULL);
	ASSERT_EQ(r.ret, 0, "Service without backends");
	ASSERT_CONTAINS(r.o, "no backends: new connections are rejected", "says so");
	out_free(&r);
}

static void test_stats(void)
{
	struct json_object *j, *rs;
	struct out r;

	r = run(cmd_stats, "stats", "--bpffs-dir", dir, "--json", NULL);
	ASSERT_EQ(r.ret, 0, "stats --json");
	j = parse_json(&r);
	ASSERT_EQ(jint(jget(j, "counters"), "rx_packets"), 10LL * ncpus, "summed over CPUs");
	ASSERT_EQ(jint(jget(j, "counters"), "ct_insert_fail"), 1, "cpu 0 only");
	ASSERT_EQ(jint(jget(j, "counters"), "rejects"), 0, "zero counter present");
	rs = jget(j, "reasons");
	ASSERT_EQ(rs ? json_object_object_length(rs) : 0, 1, "zero reasons skipped");
	ASSERT_EQ(jint(jget(rs, "no_backend"), "packets"), 3, "no_backend packets");
	ASSERT_EQ(jint(jget(rs, "no_backend"), "bytes"), 180, "no_backend bytes");
	json_object_put(j);
	out_free(&r);

	r = run(cmd_stats, "stats", "--bpffs-dir", dir, "--json", "--all", NULL);
	j = parse_json(&r);
	rs = jget(j, "reasons");
	ASSERT_EQ(rs ? json_object_object_length(rs) : 0, SP_R_MAX, "--all lists every reason");
	ASSERT_TRUE(jget(rs, "fib_failed") != NULL, "last reason by name");
	json_object_put(j);
	out_free(&r);

	r = run(cmd_stats, "stats", "--bpffs-dir", dir, NULL);
	ASSERT_EQ(r.ret, 0, "stats");
	ASSERT_CONTAINS(r.o, "COUNTER", "header");
	ASSERT_CONTAINS(r.o, "\nct_insert_fail", "field names");
	ASSERT_CONTAINS(r.o, "\nno_backend", "reason");
	ASSERT_TRUE(!strstr(r.o, "trunc_l2"), "zero reason skipped");
	out_free(&r);
}

static void test_status(void)
{
	struct json_object *j, *maps, *m;
	char want[256];
	struct out r;
	size_t i;
	FILE *f;

	r = run(cmd_status, "status", "--bpffs-dir", empty_dir, NULL);
	ASSERT_EQ(r.ret, -ENOENT, "nothing pinned");
	snprintf(want, sizeof(want), "no pinned maps at %s", empty_dir);
	ASSERT_CONTAINS(r.o, want, "says no pinned maps");
	ASSERT_CONTAINS(r.o, "not running", "says not running");
	out_free(&r);

	r = run(cmd_status, "status", "--bpffs-dir", "/nonexistent/dir", "--json", NULL);
	ASSERT_EQ(r.ret, -ENOENT, "missing dir");
	j = parse_json(&r);
	ASSERT_TRUE(j && !jtrue(j, "pin_dir_exists") && !jtrue(j, "running"), "json says so");
	json_object_put(j);
	out_free(&r);

	r = run(cmd_status, "status", "--bpffs-dir", dir, "--json", NULL);
	ASSERT_EQ(r.ret, -ESRCH, "maps but no daemon");
	j = parse_json(&r);
	ASSERT_TRUE(jtrue(j, "bpffs"), "on bpffs");
	ASSERT_TRUE(!jtrue(j, "running") && !jtrue(j, "ready"), "not running, not ready");
	ASSERT_STREQ(jstring(j, "pid_file"), pidfile, "pid file");
	maps = jget(j, "maps");
	if (ASSERT_EQ(maps ? json_object_array_length(maps) : 0, T_NMAPS, "maps")) {
		for (i = 0; i < T_NMAPS; i++) {
			m = json_object_array_get_idx(maps, i);
			ASSERT_TRUE(jtrue(m, "pinned") && jtrue(m, "abi_ok"), tmaps[i].name);
			ASSERT_EQ(jint(m, "max_entries"), tmaps[i].max_entries, "max_entries");
		}
		ASSERT_EQ(jint(json_object_array_get_idx(maps, 0), "entries"), 10, "frontends");
		ASSERT_EQ(jint(json_object_array_get_idx(maps, T_CT4), "entries"), 3,
			  "ct4 entries");
		ASSERT_EQ(jint(json_object_array_get_idx(maps, T_CT6), "entries"), 1,
			  "ct6 entries");
	}
	json_object_put(j);
	out_free(&r);

	/* A pid file naming a live process (us): running and ready. */
	if (mkdir(SP_RUN_DIR, 0755) == 0)
		made_run_dir = true;
	f = fopen(pidfile, "w");
	if (!ASSERT_TRUE(f != NULL, "write pid file"))
		return;
	fprintf(f, "%d\n", (int)getpid());
	fflush(f);
	/* Alive but not holding the lock: a reused pid, so not running. */
	r = run(cmd_status, "status", "--bpffs-dir", dir, NULL);
	ASSERT_EQ(r.ret, -ESRCH, "unlocked pid file");
	ASSERT_CONTAINS(r.o, "does not hold its lock", "says why");
	out_free(&r);
	/* Locked as the daemon does. */
	if (!ASSERT_EQ(flock(fileno(f), LOCK_EX | LOCK_NB), 0, "lock pid file")) {
		fclose(f);
		return;
	}
	/* Locked but the daemon has not said "ready" yet: still starting. */
	r = run(cmd_status, "status", "--bpffs-dir", dir, NULL);
	ASSERT_EQ(r.ret, -EAGAIN, "running, first sync not applied");
	ASSERT_CONTAINS(r.o, "the daemon is starting", "says why");
	out_free(&r);
	/* The daemon's second line once synced and attached. */
	fprintf(f, "ready\n");
	fflush(f);
	r = run(cmd_status, "status", "--bpffs-dir", dir, NULL);
	fclose(f); /* drops the lock */
	ASSERT_EQ(r.ret, 0, "running and ready");
	snprintf(want, sizeof(want), "daemon    running (pid %d)", (int)getpid());
	ASSERT_CONTAINS(r.o, want, "running");
	ASSERT_CONTAINS(r.o, "state     ready", "ready");
	ASSERT_CONTAINS(r.o, "sp_ct4         yes     lru_hash", "map row");
	ASSERT_CONTAINS(r.o, "sp_ct6         yes     lru_hash", "map row");
	ASSERT_CONTAINS(r.o, "conntrack ipv4 3 of 1024 entries (0%)\n", "IPv4 table's fill");
	ASSERT_CONTAINS(r.o, "conntrack ipv6 1 of 512 entries (0%)\n", "IPv6 table's fill");
	out_free(&r);

	/* A running daemon with only part of its maps pinned (bad_dir): not ready. */
	f = fopen(bad_pidfile, "w");
	if (ASSERT_TRUE(f != NULL, "write pid file") &&
	    ASSERT_EQ(flock(fileno(f), LOCK_EX | LOCK_NB), 0, "lock pid file")) {
		fprintf(f, "%d\n", (int)getpid());
		fflush(f);
		r = run(cmd_status, "status", "--bpffs-dir", bad_dir, NULL);
		ASSERT_EQ(r.ret, -EAGAIN, "running, not ready");
		ASSERT_CONTAINS(r.o, "state     not ready: sp_backends not pinned", "says which");
		snprintf(want, sizeof(want), "value size %zu, expected %zu",
			 sizeof(struct sp_svc) + 4, sizeof(struct sp_svc));
		ASSERT_CONTAINS(r.o, want, "CHECK column");
		out_free(&r);
	}
	if (f)
		fclose(f);
	unlink(bad_pidfile);

	/* A stale pid file. */
	f = fopen(pidfile, "w");
	if (f) {
		fprintf(f, "%d\n", INT_MAX - 1);
		fclose(f);
	}
	r = run(cmd_status, "status", "--bpffs-dir", dir, NULL);
	ASSERT_EQ(r.ret, -ESRCH, "stale pid file");
	ASSERT_CONTAINS(r.o, "not running (stale pid file: pid 2147483646 is gone)", "says stale");
	ASSERT_CONTAINS(r.o, "state     not ready: daemon not running", "state says why");
	out_free(&r);
	unlink(pidfile);
}

/*
 * In a child with its own network namespace: attach a tiny "sp_" XDP
 * program to lo through a link pinned as DIR/links/xdp_lo and check that
 * status finds both. Exit 0 pass, 77 skip, 1 fail.
 */
static int child_links(void)
{
	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = XDP_PASS },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	struct json_object *j = NULL, *l, *x;
	char links[128], pin[160];
	int prog = -1, link = -1, ifindex, rc = 1, failed = sp_test_failed_asserts;
	struct out r = { 0 };

	if (unshare(CLONE_NEWNET)) {
		fprintf(stderr, "  unshare(CLONE_NEWNET): %s\n", strerror(errno));
		return 77;
	}
	ifindex = if_nametoindex("lo");
	prog = bpf_prog_load(BPF_PROG_TYPE_XDP, "sp_test_xdp", "GPL", insns, 2, NULL);
	if (prog < 0) {
		fprintf(stderr, "  load XDP program: %s\n", strerror(-prog));
		return 77;
	}
	link = bpf_link_create(prog, ifindex, BPF_XDP, NULL);
	if (link < 0) {
		fprintf(stderr, "  attach XDP link to lo: %s\n", strerror(-link));
		close(prog);
		return 77;
	}
	snprintf(links, sizeof(links), "%s/links", dir);
	snprintf(pin, sizeof(pin), "%s/xdp_lo", links);
	if (mkdir(links, 0700) || bpf_obj_pin(link, pin)) {
		fprintf(stderr, "  pin link %s: %s\n", pin, strerror(errno));
		goto out;
	}
	r = run(cmd_status, "status", "--bpffs-dir", dir, "--json", NULL);
	j = parse_json(&r);
	l = json_object_array_get_idx(jget(j, "links"), 0);
	x = json_object_array_get_idx(jget(j, "xdp"), 0);
	ASSERT_STREQ(jstring(l, "pin"), "xdp_lo", "pinned link");
	ASSERT_STREQ(jstring(l, "type"), "xdp", "link type");
	ASSERT_STREQ(jstring(l, "ifname"), "lo", "link interface");
	ASSERT_STREQ(jstring(l, "prog_name"), "sp_test_xdp", "link program");
	ASSERT_STREQ(jstring(x, "ifname"), "lo", "XDP on lo");
	ASSERT_STREQ(jstring(x, "mode"), "generic", "XDP mode");
	ASSERT_STREQ(jstring(x, "prog_name"), "sp_test_xdp", "XDP program");
	json_object_put(j);
	out_free(&r);
	r = run(cmd_status, "status", "--bpffs-dir", dir, NULL);
	ASSERT_CONTAINS(r.o, "xdp_lo  xdp   lo", "link row");
	ASSERT_CONTAINS(r.o, "lo         generic", "XDP row");
	rc = sp_test_failed_asserts != failed;
out:
	out_free(&r);
	unlink(pin);
	rmdir(links);
	close(link);
	close(prog);
	return rc;
}

/* The entries of a table keyed by struct sp_ct_key (a bounded walk). */
static __u32 ct6_entries(int fd)
{
	struct sp_ct_key k, next;
	__u32 n = 0;
	int err;

	for (err = bpf_map_get_next_key(fd, NULL, &next); !err && n < 1u << 20;
	     err = bpf_map_get_next_key(fd, &k, &next)) {
		k = next;
		n++;
	}
	return n;
}

/*
 * An IPv6 table at 90% or more: its line says so and names its own flag,
 * the IPv4 line does not, and the JSON's ct_pressure is set. The table is
 * a fresh LRU hash pinned in place of the fixture's for this case, filled
 * from one CPU: an LRU hash hands each CPU its free entries in batches,
 * and an insert on a CPU whose batch ran out evicts even while another
 * CPU still holds free ones, so filled from CPUs the scheduler chose it
 * once kept 334 of the 462 entries put in. The fixture's table is put
 * back after.
 */
static void test_status_ct_pressure(void)
{
	struct sp_ct_entry v = { .expires = sp_ct_time(t_now + 60 * (long long)NSEC) };
	__u32 i, max = tmaps[T_CT6].max_entries, n = max * 9 / 10 + 1;
	char want[160], path[PATH_MAX];
	cpu_set_t was, one;
	struct json_object *j;
	struct sp_ct_key k;
	struct out r;
	bool pinned_one = false;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, SP_MAP_CT6);
	fd = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, SP_MAP_CT6, sizeof(k), sizeof(v), max, NULL);
	if (!ASSERT_TRUE(fd >= 0, "a fresh sp_ct6") || !ASSERT_EQ(unlink(path), 0, "unpin") ||
	    !ASSERT_EQ(bpf_obj_pin(fd, path), 0, "pin the fresh table"))
		goto out;
	if (!sched_getaffinity(0, sizeof(was), &was)) {
		CPU_ZERO(&one);
		CPU_SET(sched_getcpu(), &one);
		pinned_one = !sched_setaffinity(0, sizeof(one), &one);
	}
	memset(&k, 0, sizeof(k));
	k.family = SP_FAMILY_V6;
	k.proto = IPPROTO_UDP;
	k.saddr.addr[0] = htonl(0xfd000077);
	for (i = 0; i < n; i++) {
		k.saddr.addr[3] = htonl(i);
		if (!ASSERT_EQ(bpf_map_update_elem(fd, &k, &v, BPF_NOEXIST), 0, "fill sp_ct6"))
			break;
	}
	if (pinned_one)
		sched_setaffinity(0, sizeof(was), &was);
	if (!ASSERT_EQ(ct6_entries(fd), n, "the table holds every entry put in"))
		goto out;
	r = run(cmd_status, "status", "--bpffs-dir", dir, NULL);
	snprintf(want, sizeof(want),
		 "conntrack ipv6 %u of %u entries (%.0f%%): PRESSURE, new flows evict live ones "
		 "(raise --ct-size-v6)\n",
		 n, max, 100.0 * n / max);
	ASSERT_CONTAINS(r.o, want, "the IPv6 table's pressure, and its flag");
	ASSERT_CONTAINS(r.o, "conntrack ipv4 3 of 1024 entries (0%)\n", "IPv4's line unchanged");
	out_free(&r);
	r = run(cmd_status, "status", "--bpffs-dir", dir, "--json", NULL);
	j = parse_json(&r);
	ASSERT_TRUE(j && jtrue(j, "ct_pressure"), "json ct_pressure");
	json_object_put(j);
	out_free(&r);
out:
	/* The fixture's table back under its name. */
	unlink(path);
	ASSERT_EQ(bpf_obj_pin(fds[T_CT6], path), 0, "pin the fixture's sp_ct6 again");
	if (fd >= 0)
		close(fd);
}

static void test_status_links(void)
{
	int status = 0;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid == 0)
		_exit(child_links());
	if (!ASSERT_TRUE(pid > 0, "fork") || !ASSERT_EQ(waitpid(pid, &status, 0), pid, "wait"))
		return;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
		sp_test_skip("test_status_links", "cannot attach XDP in a new network namespace");
		return;
	}
	sp_test_report("test_status_links", WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGSEGV, SIGABRT, SIGBUS };
	struct statfs sfs;
	size_t i;

	main_pid = getpid();
	for (i = 0; i < T_NMAPS; i++)
		fds[i] = blank_fds[i] = -1;
	RUN_TEST(test_pidfile_path);
	RUN_TEST(test_digest);
	if (geteuid() != 0 || statfs("/sys/fs/bpf", &sfs) ||
	    (unsigned long)sfs.f_type != (unsigned long)BPF_FS_MAGIC) {
		sp_test_skip("test_inspect", "needs root and bpffs");
		return sp_test_exit();
	}
	ncpus = libbpf_num_possible_cpus();
	atexit(cleanup);
	for (i = 0; i < ARRAY_SIZE(sigs); i++)
		signal(sigs[i], on_signal);
	if (ncpus <= 0 || setup()) {
		sp_test_report("test_inspect_setup", false);
		return sp_test_exit();
	}
	RUN_TEST(test_args);
	RUN_TEST(test_missing_maps);
	RUN_TEST(test_empty_maps);
	RUN_TEST(test_services_text);
	RUN_TEST(test_services_json);
	RUN_TEST(test_services_many_backends);
	RUN_TEST(test_backends);
	RUN_TEST(test_conntrack);
	RUN_TEST(test_maglev);
	RUN_TEST(test_stats);
	RUN_TEST(test_status);
	RUN_TEST(test_status_ct_pressure);
	test_status_links();
	return sp_test_exit();
}
