// SPDX-License-Identifier: Apache-2.0
/*
 * The datapath's multi-node paths (bpf/lib/snat.h), with BPF_PROG_TEST_RUN
 * in a private network namespace whose veth holds this "node's" addresses
 * (10.1.0.1, fd00:1::1) and a neighbour for the remote backend (10.1.0.11,
 * fd00:1::11):
 *  - SNAT out: an outside client's SYN to an external frontend whose
 *    backend is on another node: sp_xdp leaves it untouched for sp_tc_uplink
 *    (snat_to_tc), which DNATs it, rewrites its source to the node's
 *    address and a --snat-ports port, and redirects it;
 *  - SNAT reverse: the backend's answer to that port through sp_xdp gets
 *    the frontend as source and the client back as destination;
 *  - the established flow keeps its port;
 *  - no SNAT for a --cluster-cidr source or a local backend;
 *  - port exhaustion: a 2-port range takes 2 flows, the third is dropped
 *    and counted snat_exhausted;
 *  - externalTrafficPolicy: Local: an empty local set with endpoints
 *    elsewhere is dropped (no_local_endpoint) by XDP, never rejected; a pod
 *    reaching the Local frontend uses the cluster view (all endpoints).
 * Every rewritten packet's checksums are verified by recomputation.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/pkt_cls.h>

#include "dp_fixture.h"
#include "test.h"

#define NODE4 "10.1.0.1"
#define NODE6 "fd00:1::1"
#define BE4 "10.1.0.11"
#define BE6 "fd00:1::11"
#define VIP4 "198.51.100.10"
#define VIP6 "2001:db8:5::10"
#define CLIENT4 "203.0.113.5"
#define CLIENT6 "2001:db8:c::5"

static int sh(const char *cmd)
{
	int rc = system(cmd);

	return rc == 0 ? 0 : -1;
}

static int write_file(const char *path, const char *s)
{
	FILE *f = fopen(path, "w");
	int rc;

	if (!f)
		return -1;
	rc = fputs(s, f) < 0 ? -1 : 0;
	return fclose(f) ? -1 : rc;
}

/* The private netns: forwarding on, a veth with the node's addresses and
 * the remote backend as a permanent neighbour. */
static int netns_up(void)
{
	if (unshare(CLONE_NEWNET)) {
		fprintf(stderr, "unshare(CLONE_NEWNET): %s\n", strerror(errno));
		return -1;
	}
	if (write_file("/proc/sys/net/ipv4/conf/all/forwarding", "1") ||
	    write_file("/proc/sys/net/ipv6/conf/all/forwarding", "1"))
		return -1;
	return sh("ip link set lo up && ip link add spm0 type veth peer name spm1 && "
		  "ip addr add " NODE4 "/16 dev spm0 && ip -6 addr add " NODE6 "/64 dev spm0 nodad && "
		  "ip link set spm0 up && ip link set spm1 up && "
		  "ip neigh replace " BE4 " lladdr 02:00:00:00:00:bb dev spm0 nud permanent && "
		  "ip -6 neigh replace " BE6 " lladdr 02:00:00:00:00:bb dev spm0 nud permanent");
}

/* Set the flags of frontend (family, vip, port, tcp) and of backend id. */
static int set_flags(struct fx_dp *d, int family, const char *vip, uint16_t port, uint16_t fflags,
		     uint32_t be_id, uint8_t bflags)
{
	struct sp_svc_key k;
	struct sp_svc v;
	struct sp_backend b;

	memset(&k, 0, sizeof(k));
	k.addr = fx_addr(family, vip);
	k.port = htons(port);
	k.proto = IPPROTO_TCP;
	k.family = (uint8_t)family;
	if (bpf_map_lookup_elem(bpf_map__fd(d->skel->maps.sp_services), &k, &v))
		return -1;
	v.flags = fflags;
	if (bpf_map_update_elem(bpf_map__fd(d->skel->maps.sp_services), &k, &v, BPF_EXIST))
		return -1;
	if (!be_id)
		return 0;
	if (bpf_map_lookup_elem(bpf_map__fd(d->skel->maps.sp_backends), &be_id, &b))
		return -1;
	b.flags = bflags;
	return bpf_map_update_elem(bpf_map__fd(d->skel->maps.sp_backends), &be_id, &b, BPF_EXIST);
}

/* Move frontend (family, vip, port) to the cluster view's key space. */
static int to_view(struct fx_dp *d, int family, const char *vip, uint16_t port)
{
	int fd = bpf_map__fd(d->skel->maps.sp_services);
	struct sp_svc_key k;
	struct sp_svc v;

	memset(&k, 0, sizeof(k));
	k.addr = fx_addr(family, vip);
	k.port = htons(port);
	k.proto = IPPROTO_TCP;
	k.family = (uint8_t)family;
	if (bpf_map_lookup_elem(fd, &k, &v) || bpf_map_delete_elem(fd, &k))
		return -1;
	k.family |= SP_FAMILY_VIEW;
	v.flags |= SP_SVC_F_CLUSTER_VIEW;
	return bpf_map_update_elem(fd, &k, &v, BPF_NOEXIST);
}

/* Counter at offset off of struct sp_stats in slot, summed over CPUs. */
static uint64_t stat_of(struct fx_dp *d, uint32_t slot, size_t off)
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
#define STAT(d, slot, f) stat_of(d, slot, offsetof(struct sp_stats, f))

static uint64_t ct_count(struct fx_dp *d)
{
	int fd = bpf_map__fd(d->skel->maps.sp_ct);
	struct sp_ct_key k, next, *prev = NULL;
	uint64_t n = 0;

	while (!bpf_map_get_next_key(fd, prev, &next) && n < 100000) {
		k = next;
		prev = &k;
		n++;
	}
	return n;
}

/* The addresses and ports of a frame, and whether its checksums hold. */
struct seen {
	char saddr[INET6_ADDRSTRLEN], daddr[INET6_ADDRSTRLEN];
	uint16_t sport, dport;
	bool csum_ok;
	char why[160];
};

static bool look(const struct pkt *p, struct seen *s)
{
	struct pkt_info pi;

	memset(s, 0, sizeof(*s));
	if (!pkt_parse(p->data, p->len, &pi, s->why, sizeof(s->why)) || !pi.l4)
		return false;
	if (pi.family == 4) {
		inet_ntop(AF_INET, p->data + pi.l3 + 12, s->saddr, sizeof(s->saddr));
		inet_ntop(AF_INET, p->data + pi.l3 + 16, s->daddr, sizeof(s->daddr));
	} else {
		inet_ntop(AF_INET6, p->data + pi.l3 + 8, s->saddr, sizeof(s->saddr));
		inet_ntop(AF_INET6, p->data + pi.l3 + 24, s->daddr, sizeof(s->daddr));
	}
	s->sport = pkt_get16(p->data + pi.l4);
	s->dport = pkt_get16(p->data + pi.l4 + 2);
	s->csum_ok = pkt_csums_ok(p->data, p->len, s->why, sizeof(s->why));
	return true;
}

static struct pkt_spec tcp(int fam, const char *sa, uint16_t sp, const char *da, uint16_t dp,
			   uint8_t flags)
{
	struct pkt_spec s = { .family = (uint8_t)fam, .proto = IPPROTO_TCP, .saddr = sa,
			      .daddr = da, .sport = sp, .dport = dp, .tcp_flags = flags,
			      .seq = 100, .ack = flags & PKT_ACK ? 200 : 0, .win = 1000,
			      .payload_len = flags & PKT_SYN ? 0 : 32 };

	return s;
}

/* A datapath with Service 1: VIP:80 -> backend:8080 (id 1), an external
 * frontend whose backend is remote. */
static int open_dp(struct fx_dp *d, int fam, uint32_t pmin, uint32_t pmax, bool cluster_cidr)
{
	const char *vip = fam == 4 ? VIP4 : VIP6, *be = fam == 4 ? BE4 : BE6;

	if (fx_prepare(d, 0, 0))
		return -1;
	d->skel->rodata->cfg_snat_port_min = pmin;
	d->skel->rodata->cfg_snat_port_max = pmax;
	if (cluster_cidr) {
		/* 203.0.113.0/24: the "client" is a pod of another node */
		((volatile uint8_t *)&d->skel->rodata->cfg_cluster_v4_net)[0] = 203;
		((volatile uint8_t *)&d->skel->rodata->cfg_cluster_v4_net)[1] = 0;
		((volatile uint8_t *)&d->skel->rodata->cfg_cluster_v4_net)[2] = 113;
		d->skel->rodata->cfg_cluster_v4_mask = htonl(0xffffff00);
	}
	if (fx_load(d) || fx_service(d, fam, IPPROTO_TCP, vip, 80, be, 8080, 1) ||
	    set_flags(d, fam, vip, 80, SP_SVC_F_EXTERNAL, 1, SP_BE_F_REMOTE))
		return -1;
	return 0;
}

/*
 * The backend's port unreachable about the SNATed packet out (quoting the
 * node's address and port) reaches the client about the packet it sent:
 * from the frontend, quoting client:40000 -> frontend:80.
 */
static bool icmp_about_snat(struct fx_dp *d, int fam, const struct pkt *snated)
{
	const char *vip = fam == 4 ? VIP4 : VIP6, *client = fam == 4 ? CLIENT4 : CLIENT6;
	uint32_t q = fam == 4 ? 28 : 48, l3 = ETH_HLEN, in = ETH_HLEN + (fam == 4 ? 28 : 48);
	char qs[INET6_ADDRSTRLEN], qd[INET6_ADDRSTRLEN], why[160] = "";
	struct pkt err, out;
	struct seen x;
	bool ok = true;
	int v;

	ok &= ASSERT_EQ(pkt_build_unreach(snated, q, &err), 0, "build the error");
	v = fx_run(d->skel->progs.sp_xdp, &err, &out);
	ok &= ASSERT_EQ(v, XDP_PASS, "error passed on");
	memset(&x, 0, sizeof(x));
	inet_ntop(fam == 4 ? AF_INET : AF_INET6, out.data + l3 + (fam == 4 ? 12 : 8), x.saddr,
		  sizeof(x.saddr));
	inet_ntop(fam == 4 ? AF_INET : AF_INET6, out.data + l3 + (fam == 4 ? 16 : 24), x.daddr,
		  sizeof(x.daddr));
	inet_ntop(fam == 4 ? AF_INET : AF_INET6, out.data + in + (fam == 4 ? 12 : 8), qs,
		  sizeof(qs));
	inet_ntop(fam == 4 ? AF_INET : AF_INET6, out.data + in + (fam == 4 ? 16 : 24), qd,
		  sizeof(qd));
	ok &= ASSERT_STREQ(x.saddr, vip, "error from the frontend");
	ok &= ASSERT_STREQ(x.daddr, client, "error to the client");
	ok &= ASSERT_STREQ(qs, client, "quote: from the client");
	ok &= ASSERT_STREQ(qd, vip, "quote: to the frontend");
	ok &= ASSERT_EQ(pkt_get16(out.data + in + (fam == 4 ? 20 : 40)), 40000, "quote: client port");
	ok &= ASSERT_EQ(pkt_get16(out.data + in + (fam == 4 ? 22 : 42)), 80, "quote: frontend port");
	ok &= ASSERT_TRUE(pkt_csums_ok(out.data, out.len, why, sizeof(why)), why);
	return ok;
}

static void test_snat(int fam)
{
	const char *vip = fam == 4 ? VIP4 : VIP6, *be = fam == 4 ? BE4 : BE6,
		   *node = fam == 4 ? NODE4 : NODE6, *client = fam == 4 ? CLIENT4 : CLIENT6;
	char name[64];
	struct pkt_spec s;
	struct pkt in, out;
	struct seen x;
	struct fx_dp d;
	uint16_t port = 0;
	bool ok;
	int v;

	snprintf(name, sizeof(name), "multinode/snat_v%d", fam);
	ok = ASSERT_EQ(open_dp(&d, fam, 61000, 65535, false), 0, "datapath");
	if (!ok)
		goto out;
	s = tcp(fam, client, 40000, vip, 80, PKT_SYN);
	ok &= ASSERT_EQ(pkt_build(&s, &in), 0, "build SYN");
	v = fx_run(d.skel->progs.sp_xdp, &in, &out);
	ok &= ASSERT_EQ(v, XDP_PASS, "XDP passes the SYN on");
	ok &= ASSERT_TRUE(out.len == in.len && !memcmp(out.data, in.data, in.len),
			  "XDP leaves it untouched");
	ok &= ASSERT_EQ(STAT(&d, SP_SLOT_XDP, snat_to_tc), 1, "XDP counted snat_to_tc");
	ok &= ASSERT_EQ(ct_count(&d), 0, "XDP created no conntrack entry");

	v = fx_run(d.skel->progs.sp_tc_uplink, &in, &out);
	ok &= ASSERT_EQ(v, TC_ACT_REDIRECT, "TC redirects the SNATed SYN");
	ok &= ASSERT_TRUE(look(&out, &x), "SNATed SYN parses");
	ok &= ASSERT_STREQ(x.daddr, be, "DNAT to the backend");
	ok &= ASSERT_EQ(x.dport, 8080, "backend port");
	ok &= ASSERT_STREQ(x.saddr, node, "source: the node's address");
	ok &= ASSERT_TRUE(x.sport >= 61000, "source port from --snat-ports");
	ok &= ASSERT_TRUE(x.csum_ok, x.why);
	port = x.sport;
	ok &= ASSERT_EQ(STAT(&d, SP_SLOT_UPLINK_TC, snat_flows), 1, "snat_flows");
	ok &= icmp_about_snat(&d, fam, &out);
	ok &= ASSERT_EQ(ct_count(&d), 2, "FWD and REV entries");

	/* the backend's SYN-ACK, to the node's port: XDP leaves it to TC
	 * (for a NodePort the frontend is a local address, which the stack
	 * would take for a martian source), TC reverse-NATs it */
	s = tcp(fam, be, 8080, node, port, PKT_SYN | PKT_ACK);
	ok &= ASSERT_EQ(pkt_build(&s, &in), 0, "build SYN-ACK");
	v = fx_run(d.skel->progs.sp_xdp, &in, &out);
	ok &= ASSERT_TRUE(v == XDP_PASS && out.len == in.len && !memcmp(out.data, in.data, in.len),
			  "XDP leaves the reply untouched");
	v = fx_run(d.skel->progs.sp_tc_uplink, &in, &out);
	/* no route to the client in this netns: to the stack, rewritten */
	ok &= ASSERT_EQ(v, TC_ACT_OK, "TC reverse-NATs the reply");
	ok &= ASSERT_TRUE(look(&out, &x), "reply parses");
	ok &= ASSERT_STREQ(x.saddr, vip, "reply from the frontend");
	ok &= ASSERT_EQ(x.sport, 80, "frontend port");
	ok &= ASSERT_STREQ(x.daddr, client, "reply to the client");
	ok &= ASSERT_EQ(x.dport, 40000, "client port");
	ok &= ASSERT_TRUE(x.csum_ok, x.why);

	/* the client's next packet keeps the port */
	s = tcp(fam, client, 40000, vip, 80, PKT_ACK);
	ok &= ASSERT_EQ(pkt_build(&s, &in), 0, "build ACK");
	v = fx_run(d.skel->progs.sp_xdp, &in, &out);
	ok &= ASSERT_TRUE(v == XDP_PASS && !memcmp(out.data, in.data, in.len),
			  "XDP leaves the established flow to TC");
	v = fx_run(d.skel->progs.sp_tc_uplink, &in, &out);
	ok &= ASSERT_EQ(v, TC_ACT_REDIRECT, "TC redirects the ACK");
	ok &= ASSERT_TRUE(look(&out, &x), "ACK parses");
	ok &= ASSERT_TRUE(!strcmp(x.saddr, node) && x.sport == port && !strcmp(x.daddr, be),
			  "same SNAT port and backend");
	ok &= ASSERT_TRUE(x.csum_ok, x.why);
	ok &= ASSERT_EQ(ct_count(&d), 2, "still one flow");
	ok &= ASSERT_EQ(STAT(&d, SP_SLOT_UPLINK_TC, svc_packets), 0,
			"TC does not count what XDP counted");
	ok &= ASSERT_EQ(STAT(&d, SP_SLOT_XDP, svc_packets), 2, "XDP counted both packets");
out:
	if (d.skel)
		fx_close(&d);
	sp_test_report(name, ok);
}

/* No SNAT: a --cluster-cidr source, or a backend on this node. */
static void test_no_snat(void)
{
	struct pkt_spec s;
	struct pkt in, out;
	struct seen x;
	struct fx_dp d;
	bool ok;
	int v;

	ok = ASSERT_EQ(open_dp(&d, 4, 61000, 65535, true), 0, "datapath");
	if (!ok)
		goto out;
	s = tcp(4, "203.0.113.7", 40000, VIP4, 80, PKT_SYN);
	ok &= ASSERT_EQ(pkt_build(&s, &in), 0, "build");
	v = fx_run(d.skel->progs.sp_xdp, &in, &out);
	ok &= ASSERT_EQ(v, XDP_PASS, "XDP NATs and passes");
	ok &= ASSERT_TRUE(look(&out, &x), "parses");
	ok &= ASSERT_TRUE(!strcmp(x.saddr, "203.0.113.7") && x.sport == 40000 &&
				  !strcmp(x.daddr, BE4),
			  "cluster-cidr source kept, DNATed in XDP");
	ok &= ASSERT_EQ(STAT(&d, SP_SLOT_XDP, snat_to_tc), 0, "not left to TC");
	/* the backend is local now: an outside client is not SNATed either */
	ok &= ASSERT_EQ(set_flags(&d, 4, VIP4, 80, SP_SVC_F_EXTERNAL, 1, 0), 0, "local backend");
	s = tcp(4, CLIENT4, 40001, VIP4, 80, PKT_SYN);
	ok &= ASSERT_EQ(pkt_build(&s, &in), 0, "build");
	v = fx_run(d.skel->progs.sp_xdp, &in, &out);
	ok &= ASSERT_TRUE(look(&out, &x), "parses");
	ok &= ASSERT_TRUE(v == XDP_PASS && !strcmp(x.saddr, CLIENT4) && !strcmp(x.daddr, BE4),
			  "local backend: DNAT only, client address kept");
	ok &= ASSERT_TRUE(x.csum_ok, x.why);
out:
	if (d.skel)
		fx_close(&d);
	sp_test_report("multinode/no_snat_inside_or_local", ok);
}

/* A 2-port range: two flows get ports, the third is dropped and counted. */
static void test_exhausted(void)
{
	struct pkt_spec s;
	struct pkt in, out;
	struct fx_dp d;
	bool ok;
	int i, v[3];

	ok = ASSERT_EQ(open_dp(&d, 4, 61000, 61001, false), 0, "datapath");
	if (!ok)
		goto out;
	for (i = 0; i < 3; i++) {
		s = tcp(4, CLIENT4, (uint16_t)(40000 + i), VIP4, 80, PKT_SYN);
		pkt_build(&s, &in);
		v[i] = fx_run(d.skel->progs.sp_tc_uplink, &in, &out);
	}
	ok &= ASSERT_TRUE(v[0] == TC_ACT_REDIRECT && v[1] == TC_ACT_REDIRECT,
			  "two flows take the two ports");
	ok &= ASSERT_EQ(v[2], TC_ACT_SHOT, "the third is dropped");
	ok &= ASSERT_EQ(fx_reason_packets(&d, SP_R_SNAT_EXHAUSTED), 1, "counted snat_exhausted");
	ok &= ASSERT_EQ(ct_count(&d), 4, "nothing left behind by the failure");
out:
	if (d.skel)
		fx_close(&d);
	sp_test_report("multinode/snat_exhausted", ok);
}

/* externalTrafficPolicy: Local. */
static void test_local(void)
{
	struct pkt_spec s;
	struct pkt in, out;
	struct seen x;
	struct fx_dp d;
	bool ok;
	int v;

	ok = ASSERT_EQ(fx_open(&d, 0, 0), 0, "datapath");
	/* Service 2: Local set empty, endpoints elsewhere */
	ok &= ASSERT_EQ(fx_service(&d, 4, IPPROTO_TCP, VIP4, 81, NULL, 0, 2), 0, "svc 2");
	ok &= ASSERT_EQ(set_flags(&d, 4, VIP4, 81, SP_SVC_F_EXTERNAL | SP_SVC_F_DROP_EMPTY, 0, 0),
			0, "DROP_EMPTY");
	/* Service 3: LOCAL_ONLY frontend to backend 3 (10.244.0.3); its
	 * cluster view to backend 4 (10.244.9.4). */
	ok &= ASSERT_EQ(fx_service(&d, 4, IPPROTO_TCP, VIP4, 82, "10.244.9.4", 8080, 4), 0, "v");
	ok &= ASSERT_EQ(to_view(&d, 4, VIP4, 82), 0, "view");
	ok &= ASSERT_EQ(fx_service(&d, 4, IPPROTO_TCP, VIP4, 82, "10.244.0.3", 8080, 3), 0, "s3");
	ok &= ASSERT_EQ(set_flags(&d, 4, VIP4, 82, SP_SVC_F_EXTERNAL | SP_SVC_F_LOCAL_ONLY, 0, 0),
			0, "LOCAL_ONLY");
	if (!ok)
		goto out;

	s = tcp(4, CLIENT4, 40000, VIP4, 81, PKT_SYN);
	pkt_build(&s, &in);
	v = fx_run(d.skel->progs.sp_xdp, &in, &out);
	ok &= ASSERT_EQ(v, XDP_DROP, "no local endpoint: XDP drops");
	ok &= ASSERT_EQ(fx_reason_packets(&d, SP_R_NO_LOCAL_ENDPOINT), 1, "no_local_endpoint");
	v = fx_run(d.skel->progs.sp_tc_ingress, &in, &out);
	ok &= ASSERT_EQ(v, TC_ACT_SHOT, "from a pod too: dropped, not rejected");
	ok &= ASSERT_EQ(fx_reason_packets(&d, SP_R_NO_BACKEND), 0, "never a reject");

	s = tcp(4, CLIENT4, 40001, VIP4, 82, PKT_SYN);
	pkt_build(&s, &in);
	v = fx_run(d.skel->progs.sp_xdp, &in, &out);
	ok &= ASSERT_TRUE(look(&out, &x) && v == XDP_PASS, "outside client: DNATed");
	ok &= ASSERT_STREQ(x.daddr, "10.244.0.3", "outside client: the local endpoint");
	s = tcp(4, "10.244.0.7", 40002, VIP4, 82, PKT_SYN);
	pkt_build(&s, &in);
	v = fx_run(d.skel->progs.sp_tc_ingress, &in, &out);
	ok &= ASSERT_TRUE(look(&out, &x), "pod client: DNATed");
	ok &= ASSERT_STREQ(x.daddr, "10.244.9.4", "pod client: the cluster view's endpoint");
	ok &= ASSERT_TRUE(x.csum_ok, x.why);
	ok &= ASSERT_EQ(STAT(&d, SP_SLOT_POD, local_short_circuit), 1, "local_short_circuit");
out:
	if (d.skel)
		fx_close(&d);
	sp_test_report("multinode/local_policy", ok);
}

/*
 * One client port to two frontends sharing a backend (issue 9): the second
 * flow's reply tuple is the first's, so it gets another source port (the
 * client's address stays), as nf_nat does; both flows' replies come from
 * their own frontend, to the client's real port. Through the pod hook
 * (TC) and XDP alike.
 */
static void test_clash_remap(int hook_xdp)
{
	const struct bpf_program *prog;
	struct pkt_spec s;
	struct pkt in, out;
	struct seen x;
	struct fx_dp d;
	uint16_t port = 0;
	bool ok;
	int v;

	ok = ASSERT_EQ(fx_open(&d, 0, 0), 0, "datapath");
	ok &= ASSERT_EQ(fx_service(&d, 4, IPPROTO_TCP, "10.96.0.10", 80, "10.244.0.3", 8080, 1), 0,
			"x");
	ok &= ASSERT_EQ(fx_service(&d, 4, IPPROTO_TCP, "10.96.0.11", 80, "10.244.0.3", 8080, 1), 0,
			"y");
	if (!ok)
		goto out;
	prog = hook_xdp ? d.skel->progs.sp_xdp : d.skel->progs.sp_tc_ingress;
	s = tcp(4, "10.1.0.9", 42011, "10.96.0.10", 80, PKT_SYN);
	pkt_build(&s, &in);
	fx_run(prog, &in, &out);
	ok &= ASSERT_TRUE(look(&out, &x) && x.sport == 42011, "x: the client's port");
	s = tcp(4, "10.1.0.9", 42011, "10.96.0.11", 80, PKT_SYN);
	pkt_build(&s, &in);
	v = fx_run(prog, &in, &out);
	ok &= ASSERT_TRUE(v != (hook_xdp ? XDP_DROP : TC_ACT_SHOT), "y: not dropped");
	ok &= ASSERT_TRUE(look(&out, &x), "y parses");
	ok &= ASSERT_TRUE(!strcmp(x.saddr, "10.1.0.9") && !strcmp(x.daddr, "10.244.0.3"),
			  "y: from the client's address to the backend");
	ok &= ASSERT_TRUE(x.sport >= 61000, "y: another source port");
	ok &= ASSERT_TRUE(x.csum_ok, x.why);
	port = x.sport;
	ok &= ASSERT_EQ(STAT(&d, hook_xdp ? SP_SLOT_XDP : SP_SLOT_POD, ct_clash_remapped), 1,
			"counted ct_clash_remapped");
	ok &= ASSERT_EQ(fx_reason_packets(&d, SP_R_CT_CLASH), 0, "no ct_clash drop");
	/* replies: to 42011 from x; to the remapped port from y, to 42011 */
	s = tcp(4, "10.244.0.3", 8080, "10.1.0.9", 42011, PKT_SYN | PKT_ACK);
	pkt_build(&s, &in);
	fx_run(prog, &in, &out);
	if (hook_xdp) /* XDP leaves a remapped flow's packets to TC; x's is its own */
		ok &= ASSERT_TRUE(look(&out, &x) && !strcmp(x.saddr, "10.96.0.10"), "x's reply");
	else
		ok &= ASSERT_TRUE(look(&out, &x) && !strcmp(x.saddr, "10.96.0.10") &&
					  x.dport == 42011,
				  "x's reply from x");
	s = tcp(4, "10.244.0.3", 8080, "10.1.0.9", port, PKT_SYN | PKT_ACK);
	pkt_build(&s, &in);
	fx_run(hook_xdp ? d.skel->progs.sp_tc_uplink : prog, &in, &out);
	ok &= ASSERT_TRUE(look(&out, &x), "y's reply parses");
	ok &= ASSERT_TRUE(!strcmp(x.saddr, "10.96.0.11") && x.sport == 80 && x.dport == 42011 &&
				  !strcmp(x.daddr, "10.1.0.9"),
			  "y's reply from y, to the client's real port");
	ok &= ASSERT_TRUE(x.csum_ok, x.why);
out:
	if (d.skel)
		fx_close(&d);
	sp_test_report(hook_xdp ? "multinode/clash_remap_xdp" : "multinode/clash_remap_pod", ok);
}

int main(void)
{
	if (netns_up()) {
		sp_test_report("multinode/setup", false);
		return sp_test_exit();
	}
	test_snat(4);
	test_snat(6);
	test_no_snat();
	test_exhausted();
	test_local();
	test_clash_remap(0);
	test_clash_remap(1);
	return sp_test_exit();
}
