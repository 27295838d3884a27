// SPDX-License-Identifier: Apache-2.0
/*
 * `svcplane monitor` (see monitor.h): open the datapath's event gate, read
 * the ring buffer, filter and print. Filters run here: the datapath emits
 * every event (up to --rate) while the gate is open.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <json-c/json.h>
#include <linux/in.h>

#include "monitor.h"
#include "trace.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static volatile sig_atomic_t mon_stop;

static void mon_signal(int sig)
{
	(void)sig;
	mon_stop = 1;
}

struct mon {
	const struct sp_mon_req *r;
	int meta_fd, backends_fd;
	unsigned int types; /* bit per enum sp_mon_type; 0: all */
	bool have_addr;
	uint8_t addr_family;
	struct sp_addr addr;
	unsigned long printed;
	__u64 mono_to_real; /* add to a monotonic ns time for the wall clock */
};

static const char *const type_names[] = { NULL, "new", "reject", "drop", "ct-lost" };
static const char *const reason_names[] = SP_REASON_NAMES;
static const char *const hook_names[] = { "xdp", "pod", "host", "uplink-tc" };

static __u64 clock_ns(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
}

static int parse_types(const char *s, unsigned int *out)
{
	char buf[128], *tok, *save = NULL;
	size_t i;

	*out = 0;
	if (!s)
		return 0;
	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		for (i = 1; i < ARRAY_SIZE(type_names); i++)
			if (!strcmp(tok, type_names[i]))
				break;
		if (i == ARRAY_SIZE(type_names))
			return -EINVAL;
		*out |= 1u << i;
	}
	return *out ? 0 : -EINVAL;
}

static bool svc_name(const struct mon *m, __u32 id, char *buf, size_t len)
{
	struct sp_svc_meta meta;

	if (m->meta_fd >= 0 && !bpf_map_lookup_elem(m->meta_fd, &id, &meta)) {
		meta.name[sizeof(meta.name) - 1] = '\0';
		snprintf(buf, len, "%s", meta.name);
		return true;
	}
	snprintf(buf, len, "svc %u", id);
	return false;
}

static bool backend_of(const struct mon *m, __u32 id, struct sp_backend *b)
{
	/* An array: family 0 holds no backend. */
	return id && m->backends_fd >= 0 && !bpf_map_lookup_elem(m->backends_fd, &id, b) &&
	       b->family;
}

static void fmt_ep(uint8_t family, const struct sp_addr *a, __be16 port, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	inet_ntop(family == SP_FAMILY_V6 ? AF_INET6 : AF_INET, a->addr, ip, sizeof(ip));
	snprintf(buf, len, family == SP_FAMILY_V6 ? "[%s]:%u" : "%s:%u", ip, ntohs(port));
}

static bool addr_is(const struct mon *m, uint8_t family, const struct sp_addr *a)
{
	return family == m->addr_family && !memcmp(a, &m->addr, sizeof(*a));
}

static int on_event(void *ctx, void *data, size_t size)
{
	struct mon *m = ctx;
	const struct sp_mon_ev *e = data;
	char name[SP_SVC_NAME_LEN + 16], src[64], dst[64], be[64] = "", when[32];
	struct sp_backend b;
	bool have_be;
	time_t secs;
	struct tm tm;
	__u64 real;

	if (size < sizeof(*e) || e->type >= ARRAY_SIZE(type_names) || !type_names[e->type])
		return 0;
	if (m->types && !(m->types & (1u << e->type)))
		return 0;
	svc_name(m, e->svc_id, name, sizeof(name));
	have_be = backend_of(m, e->backend_id, &b);
	if (m->r->service) {
		char idbuf[16];

		snprintf(idbuf, sizeof(idbuf), "%u", e->svc_id);
		if (strcmp(m->r->service, idbuf) && !strstr(name, m->r->service))
			return 0;
	}
	if (m->have_addr && !addr_is(m, e->family, &e->saddr) &&
	    !addr_is(m, e->family, &e->daddr) && !(have_be && addr_is(m, b.family, &b.addr)))
		return 0;
	fmt_ep(e->family, &e->saddr, e->sport, src, sizeof(src));
	fmt_ep(e->family, &e->daddr, e->dport, dst, sizeof(dst));
	if (have_be)
		fmt_ep(b.family, &b.addr, b.port, be, sizeof(be));
	real = e->ts + m->mono_to_real;
	secs = (time_t)(real / 1000000000ULL);
	localtime_r(&secs, &tm);
	strftime(when, sizeof(when), "%H:%M:%S", &tm);
	if (m->r->json) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "time_ns", json_object_new_int64((int64_t)real));
		json_object_object_add(o, "type", json_object_new_string(type_names[e->type]));
		json_object_object_add(o, "hook", json_object_new_string(
							  e->hook < ARRAY_SIZE(hook_names) ?
								  hook_names[e->hook] : "?"));
		json_object_object_add(o, "protocol", json_object_new_string(
							      e->proto == IPPROTO_TCP ? "tcp" : "udp"));
		json_object_object_add(o, "source", json_object_new_string(src));
		json_object_object_add(o, "destination", json_object_new_string(dst));
		json_object_object_add(o, "svc_id", json_object_new_int64(e->svc_id));
		json_object_object_add(o, "service", json_object_new_string(name));
		if (e->type == SP_MON_NEW_FLOW || e->type == SP_MON_CT_LOST) {
			json_object_object_add(o, "backend_id", json_object_new_int64(e->backend_id));
			json_object_object_add(o, "backend", have_be ? json_object_new_string(be) : NULL);
		}
		if (e->type == SP_MON_DROP || e->type == SP_MON_REJECT)
			json_object_object_add(o, "reason", json_object_new_string(
								    e->reason < SP_R_MAX ?
									    reason_names[e->reason] : "?"));
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
									 JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
	} else {
		printf("%s.%03u %-7s %-9s %s %s -> %s  %s", when,
		       (unsigned int)(real / 1000000ULL % 1000), type_names[e->type],
		       e->hook < ARRAY_SIZE(hook_names) ? hook_names[e->hook] : "?",
		       e->proto == IPPROTO_TCP ? "TCP" : "UDP", src, dst, name);
		if (e->type == SP_MON_NEW_FLOW || e->type == SP_MON_CT_LOST)
			printf(" -> %s (backend %u)", have_be ? be : "?", e->backend_id);
		if (e->type == SP_MON_DROP || e->type == SP_MON_REJECT)
			printf(" (%s)", e->reason < SP_R_MAX ? reason_names[e->reason] : "?");
		printf("\n");
	}
	fflush(stdout);
	m->printed++;
	if (m->r->count && m->printed >= m->r->count)
		mon_stop = 1;
	return 0;
}

/* The gate of the daemon's programs: its .bss map and where sp_monitor
 * lies in it. */
struct gate {
	struct sp_global_map g;
	__u32 off;
	__u32 prog_id;
};

static int gate_find(const char *dir, struct gate *gt, char *err, size_t errlen)
{
	const struct btf_var_secinfo *v;
	__u32 prog_id, ifindex;
	int ret;

	if (sp_live_prog(dir, 0, &prog_id, &ifindex)) {
		snprintf(err, errlen, "no program of the daemon found (no XDP link under %s/links): "
				      "is `svcplane run` running with this --bpffs-dir?",
			 dir);
		return -ENOENT;
	}
	if (gt->g.fd > 0 && gt->prog_id == prog_id)
		return 0;
	sp_global_map_close(&gt->g);
	ret = sp_global_map_open(prog_id, ".bss", &gt->g, err, errlen);
	if (ret)
		return ret;
	v = sp_global_var(gt->g.btf, gt->g.sec, "sp_monitor");
	if (!v || v->size != sizeof(struct sp_mon_gate) ||
	    v->offset + v->size > gt->g.info.value_size) {
		snprintf(err, errlen, "the daemon's datapath has no monitor gate (an older "
				      "version?)");
		sp_global_map_close(&gt->g);
		return -EPROTO;
	}
	gt->off = v->offset;
	gt->prog_id = prog_id;
	return 0;
}

/* Open the gate until now + lease seconds (0: close it) at rate; returns
 * the events lost so far (over the rate or the ring full), or -errno. The
 * datapath's bucket fields may be overwritten by a race: a token more or
 * less. */
static long long gate_set(struct gate *gt, unsigned int lease_s, __u32 rate)
{
	struct sp_mon_gate *s;
	__u32 zero = 0;

	if (bpf_map_lookup_elem(gt->g.fd, &zero, gt->g.value))
		return -errno;
	s = (struct sp_mon_gate *)((char *)gt->g.value + gt->off);
	s->until = lease_s ? clock_ns(CLOCK_MONOTONIC) + lease_s * 1000000000ULL : 0;
	s->rate = rate;
	if (bpf_map_update_elem(gt->g.fd, &zero, gt->g.value, BPF_EXIST))
		return -errno;
	return (long long)s->lost;
}

int sp_monitor_run(const struct sp_mon_req *r, char *err, size_t errlen)
{
	struct mon m = { .r = r, .meta_fd = -1, .backends_fd = -1 };
	struct gate gt = { .g = { .fd = -1 } };
	struct ring_buffer *rb = NULL;
	char path[PATH_MAX];
	struct sigaction sa;
	__u32 rate = (__u32)(r->rate ? r->rate : SP_MON_RATE_DEFAULT);
	__u64 start = clock_ns(CLOCK_MONOTONIC), renewed = 0;
	long long lost0 = -1, lost;
	int fd, ret;

	if (parse_types(r->types, &m.types)) {
		snprintf(err, errlen, "--type: '%s': a list of new, reject, drop, ct-lost",
			 r->types);
		return -EINVAL;
	}
	if (r->address) {
		if (inet_pton(AF_INET, r->address, m.addr.addr) == 1)
			m.addr_family = SP_FAMILY_V4;
		else if (inet_pton(AF_INET6, r->address, m.addr.addr) == 1)
			m.addr_family = SP_FAMILY_V6;
		else {
			snprintf(err, errlen, "--address: '%s' is not an IPv4 or IPv6 address",
				 r->address);
			return -EINVAL;
		}
		m.have_addr = true;
	}
	snprintf(path, sizeof(path), "%s/%s", r->dir, SP_MAP_EVENTS);
	fd = bpf_obj_get(path);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "open %s: %s (is the daemon running, and new enough?)", path,
			 strerror(-ret));
		return ret;
	}
	rb = ring_buffer__new(fd, on_event, &m, NULL);
	close(fd);
	if (!rb) {
		ret = -errno;
		snprintf(err, errlen, "read ring buffer %s: %s", path, strerror(-ret));
		return ret;
	}
	snprintf(path, sizeof(path), "%s/%s", r->dir, SP_MAP_SVC_META);
	m.meta_fd = bpf_obj_get(path);
	snprintf(path, sizeof(path), "%s/%s", r->dir, SP_MAP_BACKENDS);
	m.backends_fd = bpf_obj_get(path);
	m.mono_to_real = clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_MONOTONIC);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = mon_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	mon_stop = 0;
	ret = 0;
	while (!mon_stop) {
		__u64 now = clock_ns(CLOCK_MONOTONIC);

		if (r->seconds && now - start >= r->seconds * 1000000000ULL)
			break;
		/* Renew the lease each second; a restarted daemon's new
		 * programs (a new .bss) are found again here. */
		if (now - renewed >= 1000000000ULL) {
			ret = gate_find(r->dir, &gt, err, errlen);
			lost = ret ? ret : gate_set(&gt, SP_MON_LEASE_S, rate);
			if (lost < 0) {
				ret = (int)lost;
				if (!*err)
					snprintf(err, errlen, "open the monitor gate: %s",
						 strerror(-ret));
				break;
			}
			if (lost0 >= 0 && lost > lost0 && !r->json)
				fprintf(stderr, "svcplane monitor: %lld event(s) lost (over --rate %u "
						"or the ring full)\n",
					lost - lost0, rate);
			lost0 = lost;
			renewed = now;
		}
		ret = ring_buffer__poll(rb, 200);
		if (ret == -EINTR) {
			ret = 0;
			continue;
		}
		if (ret < 0) {
			snprintf(err, errlen, "poll the ring buffer: %s", strerror(-ret));
			break;
		}
		ret = 0;
	}
	if (gt.g.fd >= 0)
		gate_set(&gt, 0, rate);
	sp_global_map_close(&gt.g);
	ring_buffer__free(rb);
	if (m.meta_fd >= 0)
		close(m.meta_fd);
	if (m.backends_fd >= 0)
		close(m.backends_fd);
	return ret;
}
