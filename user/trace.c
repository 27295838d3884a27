// SPDX-License-Identifier: Apache-2.0
/*
 * `svcplane trace` (see trace.h): load the dry-run datapath over the
 * daemon's pins, run one packet through the programs it would meet, and
 * explain each decision the programs recorded.
 *
 * Layout: endpoints and the packet, the daemon's settings (.rodata) and
 * maps, the runs, then the output (one formatter for text and JSON).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <json-c/json.h>
#include <linux/if_link.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>

#include "trace.h"
#include "svcplane_trace.skel.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------------ */
/* Endpoints and the packet                                                 */
/* ------------------------------------------------------------------------ */

static int parse_port(const char *s, size_t n, uint16_t *port)
{
	unsigned long v = 0;
	size_t i;

	if (!n || n > 5)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (!v || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

int sp_trace_parse_endpoint(const char *s, bool want_port, uint8_t *family, struct sp_addr *a,
			    uint16_t *port, uint8_t *proto, char *why, size_t len)
{
	char host[64];
	const char *rest = NULL, *slash;
	size_t hl;

	*port = 0;
	*proto = 0;
	memset(a, 0, sizeof(*a));
	if (!s || !*s) {
		snprintf(why, len, "empty");
		return -EINVAL;
	}
	if (s[0] == '[') { /* [v6]:port */
		const char *e = strchr(s, ']');

		if (!e) {
			snprintf(why, len, "'%s': missing ']'", s);
			return -EINVAL;
		}
		hl = (size_t)(e - s - 1);
		if (hl >= sizeof(host))
			goto bad_addr;
		memcpy(host, s + 1, hl);
		host[hl] = '\0';
		if (e[1] == ':')
			rest = e + 2;
		else if (e[1]) {
			snprintf(why, len, "'%s': expected ':' after ']'", s);
			return -EINVAL;
		}
	} else {
		const char *c = strchr(s, ':');

		/* One ':' is IPv4:port; more is a bare IPv6 address. */
		if (c && !strchr(c + 1, ':')) {
			hl = (size_t)(c - s);
			rest = c + 1;
		} else {
			hl = strcspn(s, "/");
			if (s[hl]) {
				snprintf(why, len, "'%s': a /PROTO needs a port (IPv6: [ADDR]:PORT/PROTO)",
					 s);
				return -EINVAL;
			}
		}
		if (hl >= sizeof(host))
			goto bad_addr;
		memcpy(host, s, hl);
		host[hl] = '\0';
	}
	if (inet_pton(AF_INET, host, a->addr) == 1) {
		*family = SP_FAMILY_V4;
	} else if (inet_pton(AF_INET6, host, a->addr) == 1) {
		*family = SP_FAMILY_V6;
	} else {
		goto bad_addr;
	}
	if (!rest) {
		if (want_port) {
			snprintf(why, len, "'%s': missing :PORT/PROTO", s);
			return -EINVAL;
		}
		return 0;
	}
	slash = strchr(rest, '/');
	if (parse_port(rest, slash ? (size_t)(slash - rest) : strlen(rest), port)) {
		snprintf(why, len, "'%s': port must be 1-65535", s);
		return -EINVAL;
	}
	if (!slash) {
		if (want_port) {
			snprintf(why, len, "'%s': missing /PROTO (tcp or udp)", s);
			return -EINVAL;
		}
		return 0;
	}
	if (!want_port) {
		snprintf(why, len, "'%s': the source takes no /PROTO", s);
		return -EINVAL;
	}
	if (!strcasecmp(slash + 1, "tcp")) {
		*proto = IPPROTO_TCP;
	} else if (!strcasecmp(slash + 1, "udp")) {
		*proto = IPPROTO_UDP;
	} else {
		snprintf(why, len, "'%s': protocol must be tcp or udp", s);
		return -EINVAL;
	}
	return 0;
bad_addr:
	snprintf(why, len, "'%s': not an IPv4 or IPv6 address", s);
	return -EINVAL;
}

/* Ones' complement sum of len bytes, 16-bit big-endian words. Not shared
 * with selftests/bpf/pkt.h on purpose: the tests check the frames built
 * here with that file's own, independent checksum code. */
static uint32_t csum_add(uint32_t sum, const uint8_t *b, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)b[i] << 8 | b[i + 1];
	if (len & 1)
		sum += (uint32_t)b[len - 1] << 8;
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* The pseudo-header sum of an L4 segment of len bytes. */
static uint32_t csum_pseudo(uint8_t family, const uint8_t *src, const uint8_t *dst, uint8_t proto,
			    uint32_t len)
{
	size_t alen = family == SP_FAMILY_V4 ? 4 : 16;
	uint32_t sum = csum_add(csum_add(0, src, alen), dst, alen);

	return sum + proto + (len >> 16) + (len & 0xffff);
}

#define TR_UDP_PAYLOAD "svcplane-trace\n"

/* Ethernet, IPv4/IPv6, TCP (SYN, or ACK with --established) or UDP with a
 * short payload; every checksum valid. Returns the length. */
static uint32_t build_packet(const struct sp_trace_req *r, uint8_t *buf)
{
	static const uint8_t dmac[6] = { 0x02, 0, 0, 0, 0, 0x02 }, smac[6] = { 0x02, 0, 0, 0, 0, 0x01 };
	bool v4 = r->family == SP_FAMILY_V4;
	uint32_t l3 = 14, l4 = l3 + (v4 ? 20 : 40), l4len, len;
	uint8_t *ip = buf + l3, *th = buf + l4;
	uint16_t c;

	memset(buf, 0, SP_TRACE_PKT_MAX);
	memcpy(buf, dmac, 6);
	memcpy(buf + 6, smac, 6);
	buf[12] = v4 ? 0x08 : 0x86;
	buf[13] = v4 ? 0x00 : 0xdd;
	l4len = r->proto == IPPROTO_TCP ? 20 : 8 + (uint32_t)strlen(TR_UDP_PAYLOAD);
	len = l4 + l4len;
	/* L4 */
	th[0] = (uint8_t)(r->sport >> 8);
	th[1] = (uint8_t)r->sport;
	th[2] = (uint8_t)(r->dport >> 8);
	th[3] = (uint8_t)r->dport;
	if (r->proto == IPPROTO_TCP) {
		th[4] = 0x10; /* seq 0x10000000 */
		if (r->established)
			th[11] = 1; /* ack_seq 1 */
		th[12] = 5 << 4;
		th[13] = r->established ? 0x10 : 0x02; /* ACK : SYN */
		th[14] = 0xff;
		th[15] = 0xff;
	} else {
		th[4] = (uint8_t)(l4len >> 8);
		th[5] = (uint8_t)l4len;
		memcpy(th + 8, TR_UDP_PAYLOAD, strlen(TR_UDP_PAYLOAD));
	}
	/* L3 */
	if (v4) {
		ip[0] = 0x45;
		ip[2] = (uint8_t)((20 + l4len) >> 8);
		ip[3] = (uint8_t)(20 + l4len);
		ip[6] = 0x40; /* DF */
		ip[8] = 64;
		ip[9] = r->proto;
		memcpy(ip + 12, r->src.addr, 4);
		memcpy(ip + 16, r->dst.addr, 4);
		c = csum_fold(csum_add(0, ip, 20));
		ip[10] = (uint8_t)(c >> 8);
		ip[11] = (uint8_t)c;
	} else {
		ip[0] = 0x60;
		ip[4] = (uint8_t)(l4len >> 8);
		ip[5] = (uint8_t)l4len;
		ip[6] = r->proto;
		ip[7] = 64;
		memcpy(ip + 8, r->src.addr, 16);
		memcpy(ip + 24, r->dst.addr, 16);
	}
	c = csum_fold(csum_add(csum_pseudo(r->family, (const uint8_t *)r->src.addr,
					   (const uint8_t *)r->dst.addr, r->proto, l4len),
			       th, l4len));
	if (r->proto == IPPROTO_UDP && !c)
		c = 0xffff;
	th[r->proto == IPPROTO_TCP ? 16 : 6] = (uint8_t)(c >> 8);
	th[r->proto == IPPROTO_TCP ? 17 : 7] = (uint8_t)c;
	return len;
}

/* A frame as the trace prints it. */
struct tr_pkt {
	bool ok; /* parsed as Ethernet + IP + TCP/UDP/ICMP */
	uint8_t family, proto, tcp_flags, icmp_type, icmp_code;
	bool csum_ok; /* IPv4 header and L4 checksums verify */
	bool dsr_opt; /* carries an IPv4 option or an IPv6 extension header */
	char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
	uint16_t sport, dport;
};

static void decode_packet(const uint8_t *b, uint32_t len, struct tr_pkt *o)
{
	uint32_t l3 = 14, l4, iplen, l4len;
	uint8_t nh;
	int hops = 0;

	memset(o, 0, sizeof(*o));
	if (len < l3 + 20)
		return;
	if (b[12] == 0x08 && b[13] == 0x00) {
		uint32_t ihl = (b[l3] & 0xf) * 4u;

		o->family = SP_FAMILY_V4;
		iplen = (uint32_t)b[l3 + 2] << 8 | b[l3 + 3];
		if (ihl < 20 || l3 + ihl > len || iplen < ihl || l3 + iplen > len)
			return;
		o->dsr_opt = ihl > 20;
		nh = b[l3 + 9];
		inet_ntop(AF_INET, b + l3 + 12, o->src, sizeof(o->src));
		inet_ntop(AF_INET, b + l3 + 16, o->dst, sizeof(o->dst));
		o->csum_ok = csum_fold(csum_add(0, b + l3, ihl)) == 0;
		l4 = l3 + ihl;
		l4len = iplen - ihl;
	} else if (b[12] == 0x86 && b[13] == 0xdd) {
		o->family = SP_FAMILY_V6;
		if (len < l3 + 40)
			return;
		iplen = 40 + ((uint32_t)b[l3 + 4] << 8 | b[l3 + 5]);
		if (l3 + iplen > len)
			return;
		inet_ntop(AF_INET6, b + l3 + 8, o->src, sizeof(o->src));
		inet_ntop(AF_INET6, b + l3 + 24, o->dst, sizeof(o->dst));
		o->csum_ok = true;
		nh = b[l3 + 6];
		l4 = l3 + 40;
		/* hop-by-hop, routing, destination options */
		while ((nh == 0 || nh == 43 || nh == 60) && hops++ < 8 && l4 + 8 <= l3 + iplen) {
			o->dsr_opt = true;
			nh = b[l4];
			l4 += (b[l4 + 1] + 1u) * 8;
		}
		if (l4 > l3 + iplen)
			return;
		l4len = l3 + iplen - l4;
	} else {
		return;
	}
	o->proto = nh;
	if ((nh == IPPROTO_TCP && l4len >= 20) || (nh == IPPROTO_UDP && l4len >= 8)) {
		o->sport = (uint16_t)(b[l4] << 8 | b[l4 + 1]);
		o->dport = (uint16_t)(b[l4 + 2] << 8 | b[l4 + 3]);
		if (nh == IPPROTO_TCP)
			o->tcp_flags = b[l4 + 13];
	} else if ((nh == IPPROTO_ICMP || nh == IPPROTO_ICMPV6) && l4len >= 8) {
		o->icmp_type = b[l4];
		o->icmp_code = b[l4 + 1];
	} else {
		return;
	}
	if (nh == IPPROTO_ICMP)
		o->csum_ok = o->csum_ok && csum_fold(csum_add(0, b + l4, l4len)) == 0;
	else if (!(nh == IPPROTO_UDP && !b[l4 + 6] && !b[l4 + 7] && o->family == SP_FAMILY_V4))
		o->csum_ok = o->csum_ok &&
			     csum_fold(csum_add(csum_pseudo(o->family, b + l3 + (o->family == 4 ? 12 : 8),
							    b + l3 + (o->family == 4 ? 16 : 24), nh,
							    l4len),
						b + l4, l4len)) == 0;
	o->ok = true;
}

/* "TCP 10.0.0.1:40000 -> 10.96.0.10:80 [SYN]" */
static void fmt_packet(const struct tr_pkt *k, char *buf, size_t len)
{
	const char *fmt = k->family == SP_FAMILY_V6 ? "[%s]:%u" : "%s:%u";
	char s[64], d[64], fl[32] = "";

	if (!k->ok) {
		snprintf(buf, len, "(not an IP packet we can read)");
		return;
	}
	if (k->proto == IPPROTO_ICMP || k->proto == IPPROTO_ICMPV6) {
		snprintf(buf, len, "%s %s -> %s type %u code %u%s",
			 k->proto == IPPROTO_ICMP ? "ICMP" : "ICMPv6", k->src, k->dst, k->icmp_type,
			 k->icmp_code,
			 (k->icmp_type == 3 && k->icmp_code == 3) ||
					 (k->icmp_type == 1 && k->icmp_code == 4) ?
				 " (port unreachable)" :
				 "");
		return;
	}
	snprintf(s, sizeof(s), fmt, k->src, k->sport);
	snprintf(d, sizeof(d), fmt, k->dst, k->dport);
	if (k->proto == IPPROTO_TCP)
		snprintf(fl, sizeof(fl), " [%s%s%s%s%s]", k->tcp_flags & 0x02 ? "SYN," : "",
			 k->tcp_flags & 0x10 ? "ACK," : "", k->tcp_flags & 0x04 ? "RST," : "",
			 k->tcp_flags & 0x01 ? "FIN," : "", k->tcp_flags & 0x08 ? "PSH," : "");
	if (fl[0] && fl[strlen(fl) - 2] == ',') {
		size_t n = strlen(fl);

		fl[n - 2] = ']';
		fl[n - 1] = '\0';
	}
	snprintf(buf, len, "%s %s -> %s%s", k->proto == IPPROTO_TCP ? "TCP" : "UDP", s, d, fl);
}

/* ------------------------------------------------------------------------ */
/* The daemon's programs, settings and maps                                 */
/* ------------------------------------------------------------------------ */

int sp_live_prog(const char *dir, __u32 want_ifindex, __u32 *prog_id, __u32 *ifindex)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int fd, found = -ENOENT;

	snprintf(path, sizeof(path), "%s/links", dir);
	d = opendir(path);
	if (!d)
		return -ENOENT;
	while ((de = readdir(d))) {
		struct bpf_link_info info;
		__u32 len = sizeof(info);

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/links/%s", dir, de->d_name);
		fd = bpf_obj_get(path);
		if (fd < 0)
			continue;
		memset(&info, 0, sizeof(info));
		if (!bpf_obj_get_info_by_fd(fd, &info, &len) && info.type == BPF_LINK_TYPE_XDP &&
		    info.prog_id && (found || info.xdp.ifindex == want_ifindex)) {
			*prog_id = info.prog_id;
			*ifindex = info.xdp.ifindex;
			found = 0;
		}
		close(fd);
		if (!found && want_ifindex && *ifindex == want_ifindex)
			break;
	}
	closedir(d);
	return found;
}

static const struct btf_type *datasec(const struct btf *btf, __u32 id)
{
	const struct btf_type *t = btf__type_by_id(btf, id);

	return t && btf_is_datasec(t) ? t : NULL;
}

void sp_global_map_close(struct sp_global_map *g)
{
	if (g->fd >= 0)
		close(g->fd);
	btf__free(g->btf);
	free(g->value);
	memset(g, 0, sizeof(*g));
	g->fd = -1;
}

int sp_global_map_open(__u32 prog_id, const char *sec, struct sp_global_map *g, char *err,
		       size_t errlen)
{
	__u32 ids[64], nmaps, i, len, zero = 0;
	size_t sl = strlen(sec);
	struct bpf_prog_info pinfo;
	int pfd, ret;

	memset(g, 0, sizeof(*g));
	g->fd = -1;
	pfd = bpf_prog_get_fd_by_id(prog_id);
	if (pfd < 0) {
		ret = -errno;
		snprintf(err, errlen, "open the daemon's program %u: %s", prog_id, strerror(-ret));
		return ret;
	}
	memset(&pinfo, 0, sizeof(pinfo));
	pinfo.nr_map_ids = ARRAY_SIZE(ids);
	pinfo.map_ids = (__u64)(unsigned long)ids;
	len = sizeof(pinfo);
	if (bpf_obj_get_info_by_fd(pfd, &pinfo, &len)) {
		ret = -errno;
		close(pfd);
		snprintf(err, errlen, "read program %u: %s", prog_id, strerror(-ret));
		return ret;
	}
	close(pfd);
	nmaps = pinfo.nr_map_ids < ARRAY_SIZE(ids) ? pinfo.nr_map_ids : ARRAY_SIZE(ids);
	for (i = 0; i < nmaps && g->fd < 0; i++) {
		size_t nl = 0;

		g->fd = bpf_map_get_fd_by_id(ids[i]);
		if (g->fd < 0)
			continue;
		memset(&g->info, 0, sizeof(g->info));
		len = sizeof(g->info);
		if (!bpf_obj_get_info_by_fd(g->fd, &g->info, &len))
			nl = strlen(g->info.name);
		if (nl >= sl && !strcmp(g->info.name + nl - sl, sec) && g->info.btf_id)
			break;
		close(g->fd);
		g->fd = -1;
	}
	if (g->fd < 0) {
		snprintf(err, errlen, "program %u has no %s map with BTF", prog_id, sec);
		return -ENOENT;
	}
	g->value = calloc(1, g->info.value_size);
	g->btf = btf__load_from_kernel_by_id(g->info.btf_id);
	g->sec = g->btf ? datasec(g->btf, g->info.btf_value_type_id) : NULL;
	if (!g->value || !g->sec || bpf_map_lookup_elem(g->fd, &zero, g->value)) {
		snprintf(err, errlen, "read the %s of program %u", sec, prog_id);
		sp_global_map_close(g);
		return -EIO;
	}
	return 0;
}

const struct btf_var_secinfo *sp_global_var(const struct btf *btf, const struct btf_type *sec,
					    const char *name)
{
	const struct btf_var_secinfo *v = btf_var_secinfos(sec);
	__u32 k;

	for (k = 0; k < btf_vlen(sec); k++, v++) {
		const struct btf_type *t = btf__type_by_id(btf, v->type);
		const char *n = t ? btf__name_by_offset(btf, t->name_off) : NULL;

		if (n && !strcmp(n, name))
			return v;
	}
	return NULL;
}

/*
 * Give the dry-run object the daemon's load-time settings (hash seed,
 * timeouts, --cluster-cidr, --dsr, ...): copy every variable of the live
 * program's .rodata into the same-named variable of ours, by BTF, so no
 * list of knobs is kept here. Without this a Maglev pick could differ.
 */
static int copy_rodata(struct svcplane_trace_bpf *skel, __u32 prog_id, char *err, size_t errlen)
{
	const struct btf *obtf = bpf_object__btf(skel->obj);
	const struct btf_type *os;
	struct sp_global_map live;
	void *ours = (void *)skel->rodata; /* the buffer libbpf loads from */
	size_t osize = sizeof(*skel->rodata);
	int ret, k, copied = 0;
	__u32 j;

	ret = sp_global_map_open(prog_id, ".rodata", &live, err, errlen);
	if (ret)
		return ret;
	k = btf__find_by_name_kind(obtf, ".rodata", BTF_KIND_DATASEC);
	os = k > 0 ? datasec(obtf, (__u32)k) : NULL;
	if (!os) {
		ret = -EIO;
		snprintf(err, errlen, "the dry-run datapath has no .rodata");
		goto out;
	}
	for (j = 0; j < btf_vlen(os); j++) {
		const struct btf_var_secinfo *ov = btf_var_secinfos(os) + j, *lv;
		const char *name = btf__name_by_offset(obtf, btf__type_by_id(obtf, ov->type)->name_off);

		lv = name ? sp_global_var(live.btf, live.sec, name) : NULL;
		if (!lv)
			continue;
		if (ov->size != lv->size || ov->offset + ov->size > osize ||
		    lv->offset + lv->size > live.info.value_size) {
			ret = -EPROTO;
			snprintf(err, errlen,
				 "setting %s differs between the daemon's datapath and this "
				 "binary's (upgrade one of them)",
				 name);
			goto out;
		}
		memcpy((char *)ours + ov->offset, (char *)live.value + lv->offset, lv->size);
		copied++;
	}
	ret = copied ? 0 : -EPROTO;
	if (!copied)
		snprintf(err, errlen, "no setting of the daemon's datapath matches this binary's");
out:
	sp_global_map_close(&live);
	return ret;
}

/* Every map the datapath pins is the daemon's own (bpf_map__reuse_fd);
 * the others (scratch, fragments, devmap, the trace buffer) are this
 * object's. Nothing is pinned or created under the pin directory. */
static int reuse_maps(struct svcplane_trace_bpf *skel, const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct bpf_map *m;
	int fd, ret;

	bpf_object__for_each_map(m, skel->obj) {
		bool pinned = bpf_map__pin_path(m) != NULL;

		bpf_map__set_pin_path(m, NULL);
		if (!pinned)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, bpf_map__name(m));
		fd = bpf_obj_get(path);
		/* The dry run never emits monitor events: a daemon from before
		 * `svcplane monitor` (no ring buffer pinned) can be traced. */
		if (fd < 0 && errno == ENOENT && !strcmp(bpf_map__name(m), SP_MAP_EVENTS))
			continue;
		/* Nor does it read the reply-source filter (bpf/lib/ct.h), which
		 * a daemon from before it does not have. */
		if (fd < 0 && errno == ENOENT && !strcmp(bpf_map__name(m), SP_MAP_REPLY_SRCS))
			continue;
		if (fd < 0) {
			ret = -errno;
			snprintf(err, errlen, "open pinned map %s: %s (is the daemon running with "
					      "--bpffs-dir %s?)",
				 path, strerror(-ret), dir);
			return ret;
		}
		ret = bpf_map__reuse_fd(m, fd);
		close(fd);
		if (ret) {
			snprintf(err, errlen, "use pinned map %s: %s", path, strerror(-ret));
			return ret;
		}
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* The runs                                                                 */
/* ------------------------------------------------------------------------ */

static int run_prog(struct svcplane_trace_bpf *skel, struct bpf_program *prog, bool xdp,
		    __u32 ifindex, const uint8_t *in, uint32_t in_len, struct sp_trace_run *run)
{
	LIBBPF_OPTS(bpf_test_run_opts, o);
	struct xdp_md xctx;
	struct __sk_buff sctx;
	int err;

	memset(run, 0, sizeof(*run));
	snprintf(run->prog, sizeof(run->prog), "%s", bpf_program__name(prog));
	run->xdp = xdp;
	o.data_in = in;
	o.data_size_in = in_len;
	o.data_out = run->out;
	o.data_size_out = sizeof(run->out);
	o.repeat = 1;
	if (xdp) {
		memset(&xctx, 0, sizeof(xctx));
		xctx.data_end = in_len;
		xctx.ingress_ifindex = ifindex;
		o.ctx_in = &xctx;
		o.ctx_size_in = sizeof(xctx);
		o.ctx_out = &xctx;
		o.ctx_size_out = sizeof(xctx);
	} else {
		memset(&sctx, 0, sizeof(sctx));
		sctx.ifindex = ifindex;
		o.ctx_in = &sctx;
		o.ctx_size_in = sizeof(sctx);
	}
	skel->bss->sp_trace_buf.n = 0;
	err = bpf_prog_test_run_opts(bpf_program__fd(prog), &o);
	if (err)
		return -errno;
	run->retval = (int)o.retval;
	run->out_len = o.data_size_out;
	/* The output starts with the metadata XDP left (host routing's note,
	 * bpf/lib/host_route.h), xctx.data bytes of it: the frame follows. */
	if (xdp && xctx.data && xctx.data <= run->out_len) {
		memmove(run->out, run->out + xctx.data, run->out_len - xctx.data);
		run->out_len -= xctx.data;
	}
	memcpy(&run->buf, &skel->bss->sp_trace_buf, sizeof(run->buf));
	return 0;
}

int sp_trace_run(const struct sp_trace_req *r, struct sp_trace_result *res, char *err,
		 size_t errlen)
{
	struct svcplane_trace_bpf *skel = NULL;
	struct bpf_program *prog, *first, *second = NULL;
	__u32 prog_id = 0, ifindex = 0, link_ifindex = 0;
	int ret;

	memset(res, 0, sizeof(*res));
	if (r->iface) {
		ifindex = if_nametoindex(r->iface);
		if (!ifindex) {
			snprintf(err, errlen, "--iface %s: %s", r->iface, strerror(errno));
			return -ENODEV;
		}
	}
	/* Every program of the daemon carries the same settings: the XDP
	 * link's program is the one to copy them from. */
	ret = sp_live_prog(r->dir, ifindex, &prog_id, &link_ifindex);
	if (!ret && !r->iface)
		ifindex = link_ifindex;
	if (r->settings_prog_id && r->iface) {
		prog_id = r->settings_prog_id;
		ret = 0;
	}
	if (ret && r->iface) {
		LIBBPF_OPTS(bpf_xdp_query_opts, q);

		if (!bpf_xdp_query((int)ifindex, 0, &q))
			prog_id = q.drv_prog_id ?: q.skb_prog_id;
		ret = prog_id ? 0 : -ENOENT;
	}
	if (ret) {
		snprintf(err, errlen,
			 "no program of the daemon found (no XDP link under %s/links%s%s): is "
			 "`svcplane run` running with this --bpffs-dir?",
			 r->dir, r->iface ? " and none on " : "", r->iface ? r->iface : "");
		return ret;
	}
	res->ifindex = ifindex;
	if (!if_indextoname(ifindex, res->ifname))
		snprintf(res->ifname, sizeof(res->ifname), "ifindex %u", ifindex);

	skel = svcplane_trace_bpf__open();
	if (!skel) {
		ret = -errno;
		snprintf(err, errlen, "open the dry-run datapath: %s", strerror(-ret));
		return ret;
	}
	ret = reuse_maps(skel, r->dir, err, errlen) ?: copy_rodata(skel, prog_id, err, errlen);
	if (ret)
		goto out;
	if (r->from == SP_TRACE_EXTERNAL) {
		first = skel->progs.sp_xdp;
		second = skel->progs.sp_tc_uplink;
	} else if (r->from == SP_TRACE_POD) {
		first = skel->progs.sp_tc_ingress;
	} else {
		first = skel->progs.sp_tc_egress;
	}
	/* Only the programs this packet meets: each costs a verification. */
	bpf_object__for_each_program(prog, skel->obj)
		bpf_program__set_autoload(prog, prog == first || prog == second);
	ret = svcplane_trace_bpf__load(skel);
	if (ret) {
		snprintf(err, errlen, "load the dry-run datapath: %s (run with -v for the "
				      "verifier's log)",
			 strerror(-ret));
		goto out;
	}
	res->in_len = build_packet(r, res->in);
	ret = run_prog(skel, first, first == skel->progs.sp_xdp, ifindex, res->in, res->in_len,
		       &res->runs[0]);
	if (ret) {
		snprintf(err, errlen, "run %s: %s", bpf_program__name(first), strerror(-ret));
		goto out;
	}
	res->n_runs = 1;
	/* What XDP passes goes on to the uplink's TC ingress, as in the kernel. */
	if (second && res->runs[0].retval == XDP_PASS) {
		ret = run_prog(skel, second, false, ifindex, res->runs[0].out, res->runs[0].out_len,
			       &res->runs[1]);
		if (ret) {
			snprintf(err, errlen, "run %s: %s", bpf_program__name(second),
				 strerror(-ret));
			goto out;
		}
		res->n_runs = 2;
	}
out:
	svcplane_trace_bpf__destroy(skel);
	return ret;
}

/* ------------------------------------------------------------------------ */
/* Output                                                                   */
/* ------------------------------------------------------------------------ */

/* Names of what the decisions refer to, read from the pins. */
struct tr_names {
	int meta_fd, backends_fd;
	uint8_t family;
};

static const char *const reason_names[] = SP_REASON_NAMES;

static void fmt_addr(uint8_t family, const struct sp_addr *a, char *buf, size_t len)
{
	if (!inet_ntop(family == SP_FAMILY_V4 ? AF_INET : AF_INET6, a->addr, buf, (socklen_t)len))
		snprintf(buf, len, "?");
}

static void fmt_addr_port(uint8_t family, const struct sp_addr *a, uint16_t port_be, char *buf,
			  size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	fmt_addr(family, a, ip, sizeof(ip));
	snprintf(buf, len, family == SP_FAMILY_V6 ? "[%s]:%u" : "%s:%u", ip, ntohs(port_be));
}

/* The Service port's name as `svcplane services` prints it, or "svc ID". */
static void svc_name(const struct tr_names *n, __u32 svc_id, char *buf, size_t len)
{
	struct sp_svc_meta m;

	if (n->meta_fd >= 0 && !bpf_map_lookup_elem(n->meta_fd, &svc_id, &m)) {
		m.name[sizeof(m.name) - 1] = '\0';
		snprintf(buf, len, "%s", m.name);
	} else {
		snprintf(buf, len, "svc %u", svc_id);
	}
}

static void backend_name(const struct tr_names *n, __u32 id, char *buf, size_t len)
{
	struct sp_backend b;
	char a[64];

	if (n->backends_fd >= 0 && !bpf_map_lookup_elem(n->backends_fd, &id, &b) && b.family) {
		fmt_addr_port(b.family, &b.addr, b.port, a, sizeof(a));
		snprintf(buf, len, "%s (backend %u%s)", a, id,
			 b.flags & SP_BE_F_REMOTE ? ", on another node" : ", on this node");
	} else {
		snprintf(buf, len, "backend %u (gone)", id);
	}
}

static void fmt_flags(char *buf, size_t len, unsigned int flags, const char *const *names,
		      size_t n)
{
	size_t i, o = 0;

	buf[0] = '\0';
	for (i = 0; i < n && o < len; i++)
		if (flags & (1u << i) && names[i])
			o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? "," : "", names[i]);
	if (!o)
		snprintf(buf, len, "-");
}

static const char *const svc_flag_names[] = {
	"nodeport", "external", "affinity", "traffic-policy-local", "drop-if-empty", "cluster-view",
	"source-ranges",
};
static const char *const ct_flag_names[] = {
	"hairpin", "nodeport", "fin-orig", "fin-reply", "unreplied", "snat", "dsr", "remap",
};
static const char *const ct_state_names[] = { "NEW", "ESTABLISHED", "CLOSING", "FIN_WAIT",
					      "TIME_WAIT" };

static const char *ct_state(unsigned int s)
{
	return s < ARRAY_SIZE(ct_state_names) ? ct_state_names[s] : "?";
}

static const char *hook_name(unsigned int h)
{
	static const char *const n[] = { "XDP on the uplink", "TC ingress on the pod's veth",
					 "TC egress on the uplink",
					 "TC ingress on the uplink, after XDP" };

	return h < ARRAY_SIZE(n) ? n[h] : "?";
}

static const char *fib_str(__u32 rc)
{
	static const char *const n[] = { "success", "blackhole", "unreachable", "prohibit",
					 "not forwarded (local)", "forwarding disabled",
					 "unsupported lwt", "no neighbour", "fragmentation needed" };

	return rc < ARRAY_SIZE(n) ? n[rc] : "?";
}

#define J(o, k, v) json_object_object_add(o, k, v)

/* One decision as a label, a sentence and a JSON object. */
static void fmt_event(const struct tr_names *n, const struct sp_trace_ev *e, const char **label,
		      char *t, size_t tl, struct json_object *j)
{
	char a[160], b[160], fl[128];
	uint8_t fam = n->family;

	switch (e->step) {
	case SP_T_HOOK:
		*label = "program";
		snprintf(t, tl, "%s", hook_name(e->x));
		J(j, "hook", json_object_new_string(hook_name(e->x)));
		break;
	case SP_T_REASON:
		*label = "reason";
		snprintf(t, tl, "%s", e->a < SP_R_MAX ? reason_names[e->a] : "?");
		J(j, "reason", json_object_new_string(e->a < SP_R_MAX ? reason_names[e->a] : "?"));
		break;
	case SP_T_FRONTEND: {
		static const char *const k[] = {
			"none: not a Service address and not a node address",
			"matched (address, port, protocol)", "matched a NodePort on a node address",
			"none: a node address, but no NodePort on this port/protocol"
		};

		*label = "frontend";
		J(j, "match", json_object_new_string(e->x == SP_TFE_EXACT    ? "exact" :
						     e->x == SP_TFE_NODEPORT ? "nodeport" :
						     e->x == SP_TFE_NONE     ? "none" :
									       "node-address-no-port"));
		if (e->x == SP_TFE_EXACT || e->x == SP_TFE_NODEPORT) {
			svc_name(n, e->a, a, sizeof(a));
			fmt_flags(fl, sizeof(fl), e->b, svc_flag_names, ARRAY_SIZE(svc_flag_names));
			snprintf(t, tl, "%s: %s (svc %u), %u backend%s, flags %s", k[e->x], a, e->a,
				 e->c, e->c == 1 ? "" : "s", fl);
			J(j, "svc_id", json_object_new_int64(e->a));
			J(j, "service", json_object_new_string(a));
			J(j, "backends", json_object_new_int64(e->c));
			J(j, "flags", json_object_new_string(fl));
		} else {
			snprintf(t, tl, "%s", e->x < ARRAY_SIZE(k) ? k[e->x] : "?");
		}
		break;
	}
	case SP_T_CT_FWD:
	case SP_T_CT_REV: {
		bool fwd = e->step == SP_T_CT_FWD;
		static const char *const r[] = { "miss", "hit", "expired", "closing, reopened" };

		*label = fwd ? "conntrack" : "reply?";
		J(j, "result", json_object_new_string(e->x < ARRAY_SIZE(r) ? r[e->x] : "?"));
		if (e->x == SP_TCT_MISS) {
			snprintf(t, tl, "%s", fwd ? "miss: a new flow" :
						    "no reply entry: not a reply of a NATed flow");
			break;
		}
		fmt_flags(fl, sizeof(fl), e->b, ct_flag_names, ARRAY_SIZE(ct_flag_names));
		if (fwd)
			backend_name(n, e->a, a, sizeof(a));
		else
			svc_name(n, e->a, a, sizeof(a));
		fmt_addr(fam, &e->addr, b, sizeof(b));
		snprintf(t, tl, "%s%s: state %s, flags %s, %s %s%s%s, expires in %us",
			 e->x == SP_TCT_HIT ? "hit" : e->x == SP_TCT_EXPIRED ? "expired" : "closing",
			 e->x == SP_TCT_REOPEN ? " (a SYN on a closing flow: a new flow)" :
			 e->x == SP_TCT_EXPIRED ? " (treated as missing)" : "",
			 ct_state(e->y), fl, fwd ? "to" : "reply of", a, fwd ? "" : ", frontend ",
			 fwd ? "" : b, e->c);
		J(j, "state", json_object_new_string(ct_state(e->y)));
		J(j, "flags", json_object_new_string(fl));
		J(j, fwd ? "backend_id" : "svc_id", json_object_new_int64(e->a));
		J(j, fwd ? "backend" : "frontend", json_object_new_string(fwd ? a : b));
		break;
	}
	case SP_T_CT_NEXT:
		*label = "conntrack";
		fmt_flags(fl, sizeof(fl), e->b, ct_flag_names, ARRAY_SIZE(ct_flag_names));
		snprintf(t, tl, "this packet moves the flow to %s, flags %s (not written: dry run)",
			 ct_state(e->y), fl);
		J(j, "state", json_object_new_string(ct_state(e->y)));
		J(j, "flags", json_object_new_string(fl));
		break;
	case SP_T_BACKEND_GONE:
		*label = "backend";
		backend_name(n, e->a, a, sizeof(a));
		snprintf(t, tl, "the flow's backend %s is no longer the Service's: %s", a,
			 e->x ? "kept (TCP mid-stream)" : "a new one is picked");
		J(j, "gone_backend_id", json_object_new_int64(e->a));
		J(j, "kept", json_object_new_boolean(e->x));
		break;
	case SP_T_SRC_RANGE:
		*label = "src-ranges";
		snprintf(t, tl, "client inside loadBalancerSourceRanges: allowed");
		break;
	case SP_T_NOT_OURS: {
		static const char *const w[] = {
			"?", "TCP non-SYN to a NodePort without a flow: a host socket's, passed",
			"no endpoint: XDP leaves the reject to the uplink's TC program",
			"SNAT flow: XDP leaves it to the uplink's TC program",
			"not for the uplink's TC program (XDP handled it): passed",
			"a SYN on a closing flow's reply tuple: the old entry is forgotten",
			"not a Service frontend and not a reply we track: passed untouched",
			("a deleted Service's frontend, kept only for its established TCP "
			 "connections, and this packet is none of theirs: passed untouched")
		};
		*label = "pass";
		snprintf(t, tl, "%s", e->x < ARRAY_SIZE(w) ? w[e->x] : "?");
		J(j, "why", json_object_new_string(t));
		break;
	}
	case SP_T_VIEW:
		*label = "policy";
		svc_name(n, e->a, a, sizeof(a));
		snprintf(t, tl, "externalTrafficPolicy Local, inside client: cluster view %s, "
				"%u backend%s",
			 a, e->c, e->c == 1 ? "" : "s");
		J(j, "cluster_view", json_object_new_string(a));
		J(j, "backends", json_object_new_int64(e->c));
		break;
	case SP_T_AFFINITY:
		*label = "affinity";
		if (e->x) {
			backend_name(n, e->a, a, sizeof(a));
			snprintf(t, tl, "sessionAffinity ClientIP: remembered %s", a);
			J(j, "backend_id", json_object_new_int64(e->a));
		} else {
			snprintf(t, tl, "sessionAffinity ClientIP: nothing remembered, Maglev picks");
		}
		break;
	case SP_T_AFFINITY_SET:
		*label = "affinity";
		snprintf(t, tl, "would remember backend %u for %us (not written: dry run)", e->a,
			 e->b);
		J(j, "backend_id", json_object_new_int64(e->a));
		J(j, "timeout_s", json_object_new_int64(e->b));
		break;
	case SP_T_MAGLEV:
		*label = "maglev";
		snprintf(t, tl, "flow hash 0x%08x, slot %u -> backend %u", e->a, e->b, e->c);
		J(j, "hash", json_object_new_int64(e->a));
		J(j, "slot", json_object_new_int64(e->b));
		J(j, "backend_id", json_object_new_int64(e->c));
		break;
	case SP_T_BACKEND:
		*label = "backend";
		fmt_addr_port(fam, &e->addr, (uint16_t)e->c, a, sizeof(a));
		snprintf(t, tl, "%u: %s%s", e->a, a,
			 e->b & SP_BE_F_REMOTE ? " on another node" : " on this node");
		J(j, "backend_id", json_object_new_int64(e->a));
		J(j, "address", json_object_new_string(a));
		J(j, "remote", json_object_new_boolean(e->b & SP_BE_F_REMOTE));
		break;
	case SP_T_SNAT: {
		static const char *const s[] = {
			"none",
			"outside client, external frontend, backend on another node: SNAT, which "
			"the uplink's TC program does",
			"outside client, backend on another node: DSR (the option carries the "
			"frontend)",
			"--dsr, but the packet cannot carry the option: SNAT instead",
		};
		*label = "snat";
		if (e->x == SP_TSN_SOURCE) {
			fmt_addr(fam, &e->addr, a, sizeof(a));
			snprintf(t, tl, "source becomes %s (this node's address toward the backend)",
				 a);
			J(j, "source", json_object_new_string(a));
		} else {
			snprintf(t, tl, "%s", e->x < ARRAY_SIZE(s) ? s[e->x] : "?");
		}
		J(j, "decision", json_object_new_string(e->x == SP_TSN_SOURCE ? "source" :
							e->x == SP_TSN_DSR	? "dsr" :
							e->x == SP_TSN_DSR_FALLBACK ? "dsr-fallback-snat" :
										    "snat"));
		break;
	}
	case SP_T_HAIRPIN:
		*label = "hairpin";
		fmt_addr(fam, &e->addr, a, sizeof(a));
		snprintf(t, tl, "the client is its own backend: source becomes %s", a);
		J(j, "source", json_object_new_string(a));
		break;
	case SP_T_CT_CREATE:
		*label = "conntrack";
		fmt_flags(fl, sizeof(fl), e->b, ct_flag_names, ARRAY_SIZE(ct_flag_names));
		if (e->x)
			snprintf(t, tl, "cannot create the flow: %s",
				 e->x < SP_R_MAX ? reason_names[e->x] : "?");
		else if (e->b & SP_CT_F_SNAT)
			snprintf(t, tl, "would create the flow (flags %s), SNAT port %u: a free one "
					"now; the real one is drawn at random (not written: dry run)",
				 fl, ntohs((uint16_t)e->c));
		else
			snprintf(t, tl, "would create the flow, both directions (flags %s; not "
					"written: dry run)",
				 fl);
		J(j, "flags", json_object_new_string(fl));
		if (e->x)
			J(j, "reason", json_object_new_string(e->x < SP_R_MAX ? reason_names[e->x] : "?"));
		if (e->b & SP_CT_F_SNAT)
			J(j, "snat_port", json_object_new_int64(ntohs((uint16_t)e->c)));
		break;
	case SP_T_FWD: {
		char ifn[IF_NAMESIZE] = "?";

		*label = "forward";
		if (e->x == SP_TFW_REDIRECT || e->x == SP_TFW_LOCAL || e->x == SP_TFW_PEER)
			if_indextoname(e->b, ifn);
		if (e->x == SP_TFW_REDIRECT)
			snprintf(t, tl, "FIB: %s; redirect out of %s", fib_str(e->a), ifn);
		else if (e->x == SP_TFW_PEER)
			snprintf(t, tl, "FIB: %s; host routing: into the pod behind %s "
					"(bpf_redirect_peer)",
				 fib_str(e->a), ifn);
		else if (e->x == SP_TFW_NOTE)
			snprintf(t, tl, "passed, noted for host routing: the uplink's TC program "
					"delivers it if its destination is a pod here");
		else if (e->x == SP_TFW_LOCAL)
			snprintf(t, tl, "local destination of a host packet: to lo's ingress");
		else
			snprintf(t, tl, "to the stack%s%s", e->a ? " (FIB: " : "",
				 e->a ? fib_str(e->a) : "");
		if (e->x == SP_TFW_STACK && e->a)
			snprintf(t + strlen(t), tl - strlen(t), ")");
		J(j, "to", json_object_new_string(e->x == SP_TFW_REDIRECT ? "redirect" :
						  e->x == SP_TFW_LOCAL	   ? "lo" :
						  e->x == SP_TFW_PEER	   ? "peer" :
						  e->x == SP_TFW_NOTE	   ? "tc" :
									     "stack"));
		if (e->x == SP_TFW_REDIRECT || e->x == SP_TFW_PEER)
			J(j, "ifname", json_object_new_string(ifn));
		break;
	}
	case SP_T_CT_SEQ_IGNORED:
		*label = "conntrack";
		snprintf(t, tl, "a FIN or RST far from the sender's sequence numbers: the flow's "
				"state is kept");
		break;
	case SP_T_REJECT:
		*label = "reject";
		snprintf(t, tl, "no ready endpoint: answered as kube-proxy's REJECT (TCP RST / "
				"ICMP port unreachable)");
		break;
	case SP_T_RNAT:
		*label = "reverse-nat";
		fmt_addr_port(fam, &e->addr, (uint16_t)e->c, a, sizeof(a));
		snprintf(t, tl, "a reply: source becomes the frontend %s", a);
		J(j, "source", json_object_new_string(a));
		break;
	default:
		*label = "step";
		snprintf(t, tl, "step %u (x=%u y=%u a=%u b=%u c=%u): from a newer datapath", e->step,
			 e->x, e->y, e->a, e->b, e->c);
		break;
	}
	J(j, "step", json_object_new_string(*label));
	J(j, "text", json_object_new_string(t));
}

static const char *verdict_name(bool xdp, int v)
{
	static const char *const x[] = { "XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX",
					 "XDP_REDIRECT" };

	if (xdp)
		return v >= 0 && v < (int)ARRAY_SIZE(x) ? x[v] : "XDP_?";
	switch (v) {
	case TC_ACT_OK:
		return "TC_ACT_OK";
	case TC_ACT_SHOT:
		return "TC_ACT_SHOT";
	case TC_ACT_REDIRECT:
		return "TC_ACT_REDIRECT";
	case TC_ACT_UNSPEC:
		return "TC_ACT_UNSPEC";
	default:
		return "TC_ACT_?";
	}
}

static const char *from_name(enum sp_trace_from f)
{
	return f == SP_TRACE_POD ? "pod" : f == SP_TRACE_HOST ? "host" : "external";
}

static struct json_object *packet_json(const uint8_t *b, uint32_t len, char *text, size_t tl)
{
	struct json_object *j = json_object_new_object();
	struct tr_pkt k;

	decode_packet(b, len, &k);
	fmt_packet(&k, text, tl);
	J(j, "text", json_object_new_string(text));
	J(j, "length", json_object_new_int64(len));
	if (k.ok) {
		J(j, "src", json_object_new_string(k.src));
		J(j, "dst", json_object_new_string(k.dst));
		if (k.proto == IPPROTO_TCP || k.proto == IPPROTO_UDP) {
			J(j, "sport", json_object_new_int(k.sport));
			J(j, "dport", json_object_new_int(k.dport));
		}
		J(j, "checksums_ok", json_object_new_boolean(k.csum_ok));
		if (!k.csum_ok)
			snprintf(text + strlen(text), tl - strlen(text), ", BAD CHECKSUM");
		if (k.dsr_opt)
			snprintf(text + strlen(text), tl - strlen(text), ", with DSR option");
	}
	return j;
}

int sp_trace_print(const struct sp_trace_req *r, const struct sp_trace_result *res, bool json)
{
	struct tr_names n = { .meta_fd = -1, .backends_fd = -1, .family = r->family };
	struct json_object *top = json_object_new_object(), *runs = json_object_new_array();
	char path[PATH_MAX], text[1024], pkt[256];
	const char *label, *reason = NULL;
	int i, ret = 0;
	__u32 k, cnt;

	snprintf(path, sizeof(path), "%s/%s", r->dir, SP_MAP_SVC_META);
	n.meta_fd = bpf_obj_get(path);
	snprintf(path, sizeof(path), "%s/%s", r->dir, SP_MAP_BACKENDS);
	n.backends_fd = bpf_obj_get(path);

	J(top, "from", json_object_new_string(from_name(r->from)));
	J(top, "iface", json_object_new_string(res->ifname));
	J(top, "packet_in", packet_json(res->in, res->in_len, pkt, sizeof(pkt)));
	if (!json)
		printf("trace: %s, %s client, on %s\n", pkt, from_name(r->from), res->ifname);
	for (i = 0; i < res->n_runs; i++) {
		const struct sp_trace_run *run = &res->runs[i];
		struct json_object *jr = json_object_new_object(), *ev = json_object_new_array();
		const char *run_reason = NULL;
		bool changed = run->out_len != res->in_len || memcmp(run->out, i ? res->runs[0].out :
									  res->in,
								      run->out_len);

		cnt = run->buf.n < SP_TRACE_MAX ? run->buf.n : SP_TRACE_MAX;
		if (!json)
			printf("\n%s\n", run->prog);
		for (k = 0; k < cnt; k++) {
			struct json_object *je = json_object_new_object();

			fmt_event(&n, &run->buf.ev[k], &label, text, sizeof(text), je);
			json_object_array_add(ev, je);
			if (run->buf.ev[k].step == SP_T_REASON && run->buf.ev[k].a < SP_R_MAX)
				run_reason = reason = reason_names[run->buf.ev[k].a];
			if (!json)
				printf("  %-12s %s\n", label, text);
		}
		if (run->buf.n > SP_TRACE_MAX && !json)
			printf("  (%u more decisions not recorded)\n", run->buf.n - SP_TRACE_MAX);
		J(jr, "program", json_object_new_string(run->prog));
		J(jr, "decisions", ev);
		J(jr, "verdict", json_object_new_string(verdict_name(run->xdp, run->retval)));
		J(jr, "reason", run_reason ? json_object_new_string(run_reason) : NULL);
		J(jr, "packet_out", packet_json(run->out, run->out_len, pkt, sizeof(pkt)));
		J(jr, "rewritten", json_object_new_boolean(changed));
		json_object_array_add(runs, jr);
		if (!json) {
			printf("  %-12s %s%s%s%s\n", "verdict", verdict_name(run->xdp, run->retval),
			       run_reason ? " (" : "", run_reason ? run_reason : "",
			       run_reason ? ")" : "");
			printf("  %-12s %s%s\n", "packet", pkt, changed ? "" : " (unchanged)");
		}
	}
	J(top, "runs", runs);
	J(top, "reason", reason ? json_object_new_string(reason) : NULL);
	if (json) {
		const char *s = json_object_to_json_string_ext(top, JSON_C_TO_STRING_PRETTY |
									    JSON_C_TO_STRING_NOSLASHESCAPE);
		printf("%s\n", s);
	}
	json_object_put(top);
	if (n.meta_fd >= 0)
		close(n.meta_fd);
	if (n.backends_fd >= 0)
		close(n.backends_fd);
	if (fflush(stdout) || ferror(stdout))
		ret = -EIO;
	return ret;
}
