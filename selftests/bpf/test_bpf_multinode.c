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
 *    reaching the Local frontend uses the cluster view (all endpoints);
 *  - DSR (--dsr, two datapaths: node A the client reached, node B the
 *    backend's): A DNATs and inserts the option (every byte checked), B
 *    makes the REV entry from it, B's pod hook sends the reply from the
 *    frontend; later TCP packets go plain, UDP datagrams always optioned;
 *    what cannot carry the option (own options / extension headers, over
 *    the MTU with it) is SNATed and counted dsr_fallback_snat.
 * Every rewritten packet's checksums are verified by recomputation.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
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

/* Set the flags of frontend (family, vip, port, proto) and of backend id (0: none). */
static int set_flags_p(struct fx_dp *d, int family, uint8_t proto, const char *vip, uint16_t port,
		       uint16_t fflags, uint32_t be_id, uint8_t bflags)
{
	struct sp_svc_key k;
	struct sp_svc v;
	struct sp_backend b;

	memset(&k, 0, sizeof(k));
	k.addr = fx_addr(family, vip);
	k.port = htons(port);
	k.proto = proto;
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

/* set_flags_p for a TCP frontend. */
static int set_flags(struct fx_dp *d, int family, const char *vip, uint16_t port, uint16_t fflags,
		     uint32_t be_id, uint8_t bflags)
{
	return set_flags_p(d, family, IPPROTO_TCP, vip, port, fflags, be_id, bflags);
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

#define STAT(d, slot, f) fx_stat(d, slot, offsetof(struct sp_stats, f))

/* Entries in both conntrack tables of d (0 if unreadable). */
static uint64_t ct_count(struct fx_dp *d)
{
	struct sp_ct_maps m = fx_ct(d);
	long n = sp_ct_count(&m);

	return n < 0 ? 0 : (uint64_t)n;
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
 * quoting client:40000 -> frontend:80, from the backend's own address (for
 * an SNAT flow the outer source is not rewritten to the frontend, which
 * may be a local address the stack would drop; the client matches the
 * error by its quote).
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
	ok &= ASSERT_STREQ(x.saddr, fam == 4 ? BE4 : BE6, "error from the backend");
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
	/* The client resets its first connection: its port is free for a new
	 * flow at once (it used to be held for --ct-timeout-close/-fin). */
	s = tcp(4, CLIENT4, 40000, VIP4, 80, PKT_RST);
	s.payload_len = 0;
	pkt_build(&s, &in);
	ok &= ASSERT_EQ(fx_run(d.skel->progs.sp_tc_uplink, &in, &out), TC_ACT_REDIRECT,
			"the RST goes to the backend");
	s = tcp(4, CLIENT4, 40003, VIP4, 80, PKT_SYN);
	pkt_build(&s, &in);
	ok &= ASSERT_EQ(fx_run(d.skel->progs.sp_tc_uplink, &in, &out), TC_ACT_REDIRECT,
			"a new flow takes the closed flow's port");
	ok &= ASSERT_EQ(fx_reason_packets(&d, SP_R_SNAT_EXHAUSTED), 1, "no new snat_exhausted");
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

/* ---- DSR (--dsr, bpf/lib/dsr.h) ---- */

/* Node A: Services 1 (TCP VIP:80 -> backend:8080) and 2 (UDP VIP:53 ->
 * backend:5353), external, their backends remote; --dsr. */
static int open_dsr_a(struct fx_dp *d, int fam)
{
	const char *vip = fam == 4 ? VIP4 : VIP6, *be = fam == 4 ? BE4 : BE6;

	if (fx_prepare(d, 0, 0))
		return -1;
	d->skel->rodata->cfg_dsr = 1;
	if (fx_load(d) || fx_service(d, fam, IPPROTO_TCP, vip, 80, be, 8080, 1) ||
	    set_flags(d, fam, vip, 80, SP_SVC_F_EXTERNAL, 1, SP_BE_F_REMOTE) ||
	    fx_service(d, fam, IPPROTO_UDP, vip, 53, be, 5353, 2))
		return -1;
	return set_flags_p(d, fam, IPPROTO_UDP, vip, 53, SP_SVC_F_EXTERNAL, 2, SP_BE_F_REMOTE);
}

struct ct_entry {
	struct sp_ct_key k;
	struct sp_ct_val v;
};

/* sp_ct_foreach: keep the first entry met and end the walk. */
static int ct_first(const struct sp_ct_key *k, const struct sp_ct_val *v, void *arg)
{
	struct ct_entry *e = arg;

	e->k = *k;
	e->v = *v;
	return 1;
}

/* The only conntrack entry of d (in either table), in *k / *v. */
static bool ct_only(struct fx_dp *d, struct sp_ct_key *k, struct sp_ct_val *v)
{
	struct sp_ct_maps m = fx_ct(d);
	struct ct_entry e;

	if (ct_count(d) != 1 || sp_ct_foreach(&m, ct_first, &e) != 1)
		return false;
	*k = e.k;
	*v = e.v;
	return true;
}

/*
 * The DSR option of frame o (an output of node A): in place, every byte,
 * the header lengths grown by it, everything after it equal to the frame
 * natted (the same frame without option, as node A would have sent it
 * plain), checksums recomputed.
 */
static bool dsr_option_ok(int fam, const struct pkt *o, const struct pkt *plain, uint16_t fport,
			  const char *faddr)
{
	uint32_t l3 = ETH_HLEN, hl = fam == 4 ? 20 : 40, ol = fam == 4 ? 8 : 24;
	const uint8_t *d = o->data, *opt = d + l3 + hl;
	uint8_t a[16];
	char why[160] = "";
	bool ok = true;

	ok &= ASSERT_EQ(o->len, plain->len + ol, "frame grown by the option");
	if (!ok)
		return false;
	ok &= ASSERT_TRUE(!memcmp(d, plain->data, l3), "Ethernet header kept");
	ok &= ASSERT_TRUE(!memcmp(opt + ol, plain->data + l3 + hl, plain->len - l3 - hl),
			  "TCP/UDP header and payload unchanged");
	pkt_addr(fam, faddr, a);
	if (fam == 4) {
		ok &= ASSERT_EQ(d[l3], 0x47, "version 4, IHL 7");
		ok &= ASSERT_EQ(pkt_get16(d + l3 + 2), pkt_get16(plain->data + l3 + 2) + 8,
				"tot_len + 8");
		ok &= ASSERT_TRUE(!memcmp(d + l3 + 4, plain->data + l3 + 4, 6) &&
					  !memcmp(d + l3 + 12, plain->data + l3 + 12, 8),
				  "id, frag, ttl, protocol, addresses kept");
		ok &= ASSERT_EQ(opt[0], 0x9e, "option type 0x9e");
		ok &= ASSERT_EQ(opt[1], 8, "option length 8");
		ok &= ASSERT_EQ(pkt_get16(opt + 2), fport, "option: frontend port");
		ok &= ASSERT_TRUE(!memcmp(opt + 4, a, 4), "option: frontend address");
	} else {
		ok &= ASSERT_TRUE(!memcmp(d + l3, plain->data + l3, 4), "version, class, label kept");
		ok &= ASSERT_EQ(pkt_get16(d + l3 + 4), pkt_get16(plain->data + l3 + 4) + 24,
				"payload_len + 24");
		ok &= ASSERT_EQ(d[l3 + 6], IPPROTO_DSTOPTS, "next header: destination options");
		ok &= ASSERT_TRUE(!memcmp(d + l3 + 7, plain->data + l3 + 7, 33),
				  "hop limit, addresses kept");
		ok &= ASSERT_EQ(opt[0], plain->data[l3 + 6], "then the original next header");
		ok &= ASSERT_EQ(opt[1], 2, "hdr ext len 2 (24 bytes)");
		ok &= ASSERT_EQ(opt[2], 0x1e, "option type 0x1e");
		ok &= ASSERT_EQ(opt[3], 18, "option length 18");
		ok &= ASSERT_EQ(pkt_get16(opt + 4), fport, "option: frontend port");
		ok &= ASSERT_TRUE(!memcmp(opt + 6, a, 16), "option: frontend address");
		ok &= ASSERT_TRUE(opt[22] == 1 && opt[23] == 0, "PadN of 2");
	}
	ok &= ASSERT_TRUE(pkt_csums_ok(d, o->len, why, sizeof(why)), why);
	return ok;
}

/*
 * Node A and node B, two datapaths with --dsr: the client's SYN through A
 * (DNAT + option, FWD entry only), then through B's uplink (REV entry
 * from the option), the pod's SYN-ACK through B's pod hook (from the
 * frontend, to the client); the ACK through A (plain DNAT, established);
 * UDP datagrams (the option every time).
 */
static void test_dsr(int fam)
{
	const char *vip = fam == 4 ? VIP4 : VIP6, *be = fam == 4 ? BE4 : BE6,
		   *client = fam == 4 ? CLIENT4 : CLIENT6;
	struct fx_dp a, b;
	struct pkt_spec s, n;
	struct pkt in, out, plain, opt;
	struct sp_ct_key k;
	struct sp_ct_val v;
	struct sp_addr want;
	struct seen x;
	char name[64];
	bool ok;
	int r, i;

	memset(&b, 0, sizeof(b));
	snprintf(name, sizeof(name), "multinode/dsr_v%d", fam);
	ok = ASSERT_EQ(open_dsr_a(&a, fam), 0, "node A datapath");
	if (fx_prepare(&b, 0, 0) == 0) {
		b.skel->rodata->cfg_dsr = 1;
		ok &= ASSERT_EQ(fx_load(&b), 0, "node B datapath");
	} else {
		ok = false;
	}
	if (!ok)
		goto out;

	/* node A: the SYN */
	s = tcp(fam, client, 40000, vip, 80, PKT_SYN);
	n = pkt_spec_nat(&s, NULL, 0, be, 8080);
	ok &= ASSERT_EQ(pkt_build(&s, &in), 0, "build SYN");
	ok &= ASSERT_EQ(pkt_build(&n, &plain), 0, "build the DNATed SYN");
	r = fx_run(a.skel->progs.sp_xdp, &in, &opt);
	ok &= ASSERT_EQ(r, XDP_PASS, "A: SYN passed to the stack");
	ok &= dsr_option_ok(fam, &opt, &plain, 80, vip);
	ok &= ASSERT_TRUE(look(&opt, &x), "A: SYN parses");
	ok &= ASSERT_TRUE(!strcmp(x.saddr, client) && x.sport == 40000 && !strcmp(x.daddr, be) &&
				  x.dport == 8080,
			  "A: DNAT to the backend, client kept");
	ok &= ASSERT_TRUE(ct_only(&a, &k, &v), "A: one conntrack entry");
	ok &= ASSERT_TRUE(k.dir == SP_CT_FWD && (v.flags & SP_CT_F_DSR) && v.state == SP_CT_NEW,
			  "A: the FWD entry, DSR, NEW");
	ok &= ASSERT_EQ(STAT(&a, SP_SLOT_XDP, dsr_flows), 1, "A: dsr_flows");
	ok &= ASSERT_EQ(STAT(&a, SP_SLOT_XDP, snat_to_tc), 0, "A: nothing left to TC");
	/* the uplink's TC program after XDP: not its business */
	r = fx_run(a.skel->progs.sp_tc_uplink, &opt, &out);
	ok &= ASSERT_TRUE(r == TC_ACT_OK && out.len == opt.len &&
				  !memcmp(out.data, opt.data, opt.len),
			  "A: uplink TC leaves it alone");

	/* node B: the optioned SYN on its uplink */
	r = fx_run(b.skel->progs.sp_xdp, &opt, &out);
	ok &= ASSERT_EQ(r, XDP_PASS, "B: SYN passed on to the pod");
	ok &= ASSERT_TRUE(out.len == opt.len && !memcmp(out.data, opt.data, opt.len),
			  "B: unchanged (option left in)");
	ok &= ASSERT_EQ(STAT(&b, SP_SLOT_XDP, dsr_ingress), 1, "B: dsr_ingress");
	ok &= ASSERT_TRUE(ct_only(&b, &k, &v), "B: one conntrack entry");
	want = fx_addr(fam, be);
	ok &= ASSERT_TRUE(k.dir == SP_CT_REV && !memcmp(&k.saddr, &want, sizeof(want)),
			  "B: key from the pod");
	want = fx_addr(fam, client);
	ok &= ASSERT_TRUE(!memcmp(&k.daddr, &want, sizeof(want)) &&
				  ntohs(k.sport) == 8080 && ntohs(k.dport) == 40000,
			  "B: REV key pod:8080 -> client:40000");
	want = fx_addr(fam, vip);
	ok &= ASSERT_TRUE(!memcmp(&v.nat_addr, &want, sizeof(want)) && ntohs(v.nat_port) == 80 &&
				  (v.flags & SP_CT_F_DSR) && ntohs(v.nat_sport) == 40000,
			  "B: REV value restores the frontend");

	/* node B: the pod's SYN-ACK through the pod veth hook */
	s = tcp(fam, be, 8080, client, 40000, PKT_SYN | PKT_ACK);
	ok &= ASSERT_EQ(pkt_build(&s, &in), 0, "build SYN-ACK");
	r = fx_run(b.skel->progs.sp_tc_ingress, &in, &out);
	/* no route to the client in this netns: to the stack, rewritten */
	ok &= ASSERT_EQ(r, TC_ACT_OK, "B: SYN-ACK reverse-NATed");
	ok &= ASSERT_TRUE(look(&out, &x), "B: SYN-ACK parses");
	ok &= ASSERT_TRUE(!strcmp(x.saddr, vip) && x.sport == 80 && !strcmp(x.daddr, client) &&
				  x.dport == 40000,
			  "B: from the frontend to the client");
	ok &= ASSERT_TRUE(x.csum_ok, x.why);
	ok &= ASSERT_EQ(STAT(&b, SP_SLOT_POD, ct_partner_miss), 0, "B: no partner expected");
	ok &= ASSERT_TRUE(ct_only(&b, &k, &v) && v.state == SP_CT_ESTABLISHED,
			  "B: still one entry, established");

	/* node A: the client's ACK: plain DNAT, and the flow established */
	s = tcp(fam, client, 40000, vip, 80, PKT_ACK);
	n = pkt_spec_nat(&s, NULL, 0, be, 8080);
	pkt_build(&s, &in);
	pkt_build(&n, &plain);
	r = fx_run(a.skel->progs.sp_xdp, &in, &out);
	ok &= ASSERT_EQ(r, XDP_PASS, "A: ACK passed");
	ok &= ASSERT_EQ(pkt_diff(&plain, out.data, out.len, NULL), -1, "A: ACK DNATed, no option");
	ok &= ASSERT_TRUE(ct_only(&a, &k, &v) && v.state == SP_CT_ESTABLISHED &&
				  !(v.flags & SP_CT_F_UNREPLIED),
			  "A: still one entry, established");
	ok &= ASSERT_EQ(STAT(&a, SP_SLOT_XDP, ct_partner_miss), 0, "A: no partner expected");

	/* UDP: every datagram carries the option; one flow */
	for (i = 0; i < 2; i++) {
		s = (struct pkt_spec){ .family = (uint8_t)fam, .proto = IPPROTO_UDP,
				       .saddr = client, .daddr = vip, .sport = 41000,
				       .dport = 53, .payload_len = 40 };
		n = pkt_spec_nat(&s, NULL, 0, be, 5353);
		pkt_build(&s, &in);
		pkt_build(&n, &plain);
		r = fx_run(a.skel->progs.sp_xdp, &in, &out);
		ok &= ASSERT_EQ(r, XDP_PASS, "A: datagram passed");
		ok &= dsr_option_ok(fam, &out, &plain, 53, vip);
		r = fx_run(b.skel->progs.sp_xdp, &out, &opt);
		ok &= ASSERT_EQ(r, XDP_PASS, "B: datagram passed");
	}
	ok &= ASSERT_EQ(STAT(&a, SP_SLOT_XDP, dsr_flows), 2, "A: one more DSR flow");
	ok &= ASSERT_EQ(STAT(&b, SP_SLOT_XDP, dsr_ingress), 3, "B: each datagram seen");
	ok &= ASSERT_EQ(ct_count(&a), 2, "A: two FWD entries");
	ok &= ASSERT_EQ(ct_count(&b), 2, "B: two REV entries");
	s = (struct pkt_spec){ .family = (uint8_t)fam, .proto = IPPROTO_UDP, .saddr = be,
			       .daddr = client, .sport = 5353, .dport = 41000, .payload_len = 60 };
	pkt_build(&s, &in);
	r = fx_run(b.skel->progs.sp_tc_ingress, &in, &out);
	ok &= ASSERT_TRUE(look(&out, &x) && !strcmp(x.saddr, vip) && x.sport == 53 &&
				  !strcmp(x.daddr, client) && x.dport == 41000,
			  "B: UDP answer from the frontend");
	ok &= ASSERT_TRUE(x.csum_ok, x.why);
out:
	if (a.skel)
		fx_close(&a);
	if (b.skel)
		fx_close(&b);
	sp_test_report(name, ok);
}

/*
 * What cannot carry the option is SNATed (dsr_fallback_snat): a SYN with
 * IPv4 options / an IPv6 extension header of its own, and a UDP datagram
 * that the option would take over the MTU of the device it came in by.
 */
static void test_dsr_fallback(int fam)
{
	const char *vip = fam == 4 ? VIP4 : VIP6, *client = fam == 4 ? CLIENT4 : CLIENT6,
		   *node = fam == 4 ? NODE4 : NODE6;
	LIBBPF_OPTS(bpf_test_run_opts, o);
	struct xdp_md md;
	struct pkt_spec s;
	struct pkt in, out;
	struct seen x;
	struct fx_dp a;
	char name[64];
	bool ok;
	int r;

	snprintf(name, sizeof(name), "multinode/dsr_fallback_v%d", fam);
	ok = ASSERT_EQ(open_dsr_a(&a, fam), 0, "datapath");
	if (!ok)
		goto out;
	s = tcp(fam, client, 40000, vip, 80, PKT_SYN);
	if (fam == 4) {
		s.ip_optlen = 4;
	} else {
		s.n_ext = 1;
		s.ext[0] = IPPROTO_DSTOPTS;
	}
	ok &= ASSERT_EQ(pkt_build(&s, &in), 0, "build SYN with options");
	r = fx_run(a.skel->progs.sp_xdp, &in, &out);
	ok &= ASSERT_TRUE(r == XDP_PASS && out.len == in.len && !memcmp(out.data, in.data, in.len),
			  "XDP leaves it to TC untouched");
	ok &= ASSERT_EQ(STAT(&a, SP_SLOT_XDP, dsr_fallback_snat), 1, "dsr_fallback_snat");
	ok &= ASSERT_EQ(STAT(&a, SP_SLOT_XDP, dsr_flows), 0, "no DSR flow");
	r = fx_run(a.skel->progs.sp_tc_uplink, &in, &out);
	ok &= ASSERT_EQ(r, TC_ACT_REDIRECT, "TC SNATs it");
	ok &= ASSERT_TRUE(look(&out, &x) && !strcmp(x.saddr, node) && x.sport >= 61000,
			  "source: the node's address and port");
	ok &= ASSERT_TRUE(x.csum_ok, x.why);

	/* a 1500-byte datagram (the MTU of spm0) arriving on spm0 */
	s = (struct pkt_spec){ .family = (uint8_t)fam, .proto = IPPROTO_UDP, .saddr = client,
			       .daddr = vip, .sport = 41000, .dport = 53,
			       .payload_len = fam == 4 ? 1472 : 1452 };
	ok &= ASSERT_EQ(pkt_build(&s, &in), 0, "build big datagram");
	memset(&md, 0, sizeof(md));
	md.data_end = in.len;
	md.ingress_ifindex = if_nametoindex("spm0");
	o.data_in = in.data;
	o.data_size_in = in.len;
	o.data_out = out.data;
	o.data_size_out = sizeof(out.data);
	o.ctx_in = &md;
	o.ctx_size_in = sizeof(md);
	o.repeat = 1;
	ok &= ASSERT_EQ(bpf_prog_test_run_opts(bpf_program__fd(a.skel->progs.sp_xdp), &o), 0,
			"run on spm0");
	ok &= ASSERT_TRUE(o.retval == XDP_PASS && o.data_size_out == in.len &&
				  !memcmp(out.data, in.data, in.len),
			  "over the MTU with the option: left to TC untouched");
	ok &= ASSERT_EQ(STAT(&a, SP_SLOT_XDP, dsr_fallback_snat), 2, "dsr_fallback_snat again");
	/* exactly the MTU with the option: DSR */
	s.payload_len -= fam == 4 ? 8 : 24;
	pkt_build(&s, &in);
	o.data_size_in = in.len;
	o.data_size_out = sizeof(out.data);
	md.data_end = in.len;
	ok &= ASSERT_EQ(bpf_prog_test_run_opts(bpf_program__fd(a.skel->progs.sp_xdp), &o), 0,
			"run on spm0");
	ok &= ASSERT_TRUE(o.retval == XDP_PASS && o.data_size_out == in.len + (fam == 4 ? 8 : 24),
			  "fits with the option: DSR");
	ok &= ASSERT_EQ(STAT(&a, SP_SLOT_XDP, dsr_flows), 1, "dsr_flows");
out:
	if (a.skel)
		fx_close(&a);
	sp_test_report(name, ok);
}

/*
 * A fragmented UDP datagram of an SNAT flow: the first fragment is SNATed
 * by TC (XDP leaves it), and so is the later one, whose source becomes the
 * node's address (the stack would drop it as a martian after XDP).
 */
static void test_snat_fragments(void)
{
	struct pkt_spec s = { .family = 4, .proto = IPPROTO_UDP, .saddr = CLIENT4, .daddr = VIP4,
			      .sport = 40000, .dport = 53, .payload_len = 400, .ip_id = 0x4242 };
	struct pkt in, out;
	struct seen x;
	struct fx_dp d;
	char sa[INET_ADDRSTRLEN], da[INET_ADDRSTRLEN];
	bool ok;
	int v;

	ok = ASSERT_EQ(fx_prepare(&d, 0, 0), 0, "open");
	ok = ok && ASSERT_EQ(fx_load(&d), 0, "load");
	ok = ok && ASSERT_EQ(fx_service(&d, 4, IPPROTO_UDP, VIP4, 53, BE4, 5353, 1), 0, "svc");
	if (!ok)
		goto out;
	ok &= ASSERT_EQ(set_flags_p(&d, 4, IPPROTO_UDP, VIP4, 53, SP_SVC_F_EXTERNAL, 1,
				    SP_BE_F_REMOTE),
			0, "external, backend remote");
	s.frag = PKT_FRAG_FIRST;
	s.frag_bytes = 208;
	pkt_build(&s, &in);
	v = fx_run(d.skel->progs.sp_xdp, &in, &out);
	ok &= ASSERT_TRUE(v == XDP_PASS && !memcmp(out.data, in.data, in.len),
			  "XDP leaves the first fragment");
	v = fx_run(d.skel->progs.sp_tc_uplink, &in, &out);
	ok &= ASSERT_TRUE(v == TC_ACT_REDIRECT && look(&out, &x) && !strcmp(x.saddr, NODE4) &&
				  !strcmp(x.daddr, BE4),
			  "TC SNATs the first fragment");
	s.frag = PKT_FRAG_LATER;
	s.frag_bytes = 200;
	s.frag_off8 = 26;
	pkt_build(&s, &in);
	v = fx_run(d.skel->progs.sp_xdp, &in, &out);
	ok &= ASSERT_TRUE(v == XDP_PASS && !memcmp(out.data, in.data, in.len),
			  "XDP leaves the later fragment");
	v = fx_run(d.skel->progs.sp_tc_uplink, &in, &out);
	inet_ntop(AF_INET, out.data + ETH_HLEN + 12, sa, sizeof(sa));
	inet_ntop(AF_INET, out.data + ETH_HLEN + 16, da, sizeof(da));
	ok &= ASSERT_EQ(v, TC_ACT_REDIRECT, "TC sends the later fragment on");
	ok &= ASSERT_STREQ(sa, NODE4, "later fragment: from the node");
	ok &= ASSERT_STREQ(da, BE4, "later fragment: to the backend");
	ok &= ASSERT_EQ(STAT(&d, SP_SLOT_UPLINK_TC, frag_later_natted), 1, "frag_later_natted");
	{
		char why[160] = "";

		ok &= ASSERT_TRUE(pkt_csums_ok(out.data, out.len, why, sizeof(why)), why);
	}
out:
	if (d.skel)
		fx_close(&d);
	sp_test_report("multinode/snat_fragments", ok);
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
	test_snat_fragments();
	test_dsr(4);
	test_dsr(6);
	test_dsr_fallback(4);
	test_dsr_fallback(6);
	return sp_test_exit();
}
