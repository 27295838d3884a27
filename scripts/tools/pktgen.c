// SPDX-License-Identifier: Apache-2.0
/*
 * pktgen: a packet-rate benchmark of the project's own.
 *
 * Sends UDP frames with BPF_PROG_RUN in BPF_F_TEST_XDP_LIVE_FRAMES mode: the
 * kernel runs pktgen_tx (selftests/bpf/bench_pktgen.bpf.c) on each frame,
 * which returns XDP_TX, so the frame leaves through --tx-ifname (the client
 * side of the uplink veth) and arrives at the node. A counting XDP program
 * (sink_count) attached to --sink-ifname in --sink-netns counts what gets
 * through and drops it (--sink-tc: a TC ingress program instead, which also
 * sees packets handed to the device by bpf_redirect_peer, where a veth's XDP
 * program never runs). Prints one line of figures per run:
 *
 *   sent=N received=N seconds=S tx_mpps=X rx_mpps=Y
 *
 * Run it inside the client namespace (ip netns exec CLIENT pktgen ...).
 * Namespaces are given as paths (/run/netns/NAME); the tool enters them with
 * setns() to attach its programs and comes back.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <net/if.h>
#include <arpa/inet.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/if_link.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "bench_pktgen.skel.h"

struct opts {
	const char *tx_ifname;
	const char *dst_mac;
	const char *src_ip, *dst_ip;
	int dport;
	int sink_port;
	int flows;
	int size;
	double duration;
	double warmup;
	const char *sink_netns, *sink_ifname;
	const char *pass_netns, *pass_ifname;
	const char *redirect_ifname; /* --pass-redirect: node_redirect instead of node_pass */
	int sink_tc; /* the sink at TC ingress, not XDP */
	int verbose;
};

struct attach {
	int nsfd; /* -1: current namespace */
	int ifindex;
	int attached;
	int tc; /* 0: XDP; 1: TC ingress filter; 2: that and the clsact qdisc we made */
};

static volatile sig_atomic_t stop;
static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int libbpf_quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int parse_mac(const char *s, unsigned char mac[6])
{
	unsigned int b[6];
	int i;

	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6)
		return -EINVAL;
	for (i = 0; i < 6; i++)
		mac[i] = (unsigned char)b[i];
	return 0;
}

static int if_mac(const char *ifname, unsigned char mac[6])
{
	struct ifreq ifr = {};
	int fd, err = 0;

	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0)
		err = -errno;
	else
		memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	close(fd);
	return err;
}

static __u16 ip_csum(const void *hdr, int len)
{
	const __u16 *p = hdr;
	__u32 s = 0;

	for (; len > 1; len -= 2)
		s += *p++;
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

/* Build the UDP frame in buf; returns its length or -errno. */
static int build_frame(const struct opts *o, unsigned char *buf, int cap)
{
	struct ethhdr *eth = (void *)buf;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	int len = o->size, err;

	if (len < (int)(sizeof(*eth) + sizeof(*ip) + sizeof(*udp)) || len > cap)
		return -EINVAL;
	memset(buf, 0, len);
	err = parse_mac(o->dst_mac, eth->h_dest);
	if (err) {
		fprintf(stderr, "pktgen: bad --dst-mac '%s'\n", o->dst_mac);
		return err;
	}
	err = if_mac(o->tx_ifname, eth->h_source);
	if (err) {
		fprintf(stderr, "pktgen: MAC address of %s: %s\n", o->tx_ifname, strerror(-err));
		return err;
	}
	eth->h_proto = htons(ETH_P_IP);
	ip->version = 4;
	ip->ihl = 5;
	ip->ttl = 64;
	ip->protocol = IPPROTO_UDP;
	ip->tot_len = htons(len - sizeof(*eth));
	if (inet_pton(AF_INET, o->src_ip, &ip->saddr) != 1 ||
	    inet_pton(AF_INET, o->dst_ip, &ip->daddr) != 1) {
		fprintf(stderr, "pktgen: bad --src-ip or --dst-ip\n");
		return -EINVAL;
	}
	ip->check = ip_csum(ip, sizeof(*ip));
	udp->source = htons(10000);
	udp->dest = htons(o->dport);
	udp->len = htons(len - sizeof(*eth) - sizeof(*ip));
	udp->check = 0; /* none: pktgen_tx rewrites the source port freely */
	return len;
}

#define SINK_TC_HANDLE 0x5047 /* "PG" */

/* TC ingress filter prog_fd on a->ifindex; the clsact qdisc is made if
 * missing (and then removed again by detach_in). 0 or -errno. */
static int tc_attach(struct attach *a, int prog_fd)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = a->ifindex, .attach_point = BPF_TC_INGRESS);
	LIBBPF_OPTS(bpf_tc_opts, to, .handle = SINK_TC_HANDLE, .priority = 1, .prog_fd = prog_fd);
	int err = bpf_tc_hook_create(&hook);

	if (err && err != -EEXIST)
		return err;
	if (!err)
		a->tc = 2;
	err = bpf_tc_attach(&hook, &to);
	if (err && a->tc == 2) {
		hook.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
		bpf_tc_hook_destroy(&hook);
		a->tc = 1;
	}
	return err;
}

static void tc_detach(struct attach *a)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = a->ifindex, .attach_point = BPF_TC_INGRESS);
	LIBBPF_OPTS(bpf_tc_opts, to, .handle = SINK_TC_HANDLE, .priority = 1);

	bpf_tc_detach(&hook, &to);
	if (a->tc == 2) {
		hook.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
		bpf_tc_hook_destroy(&hook);
	}
}

/* Enter namespace ns (a path; NULL: stay where we are), its fd in *fd (-1
 * for NULL; the caller closes it, even on an error). Returns 0 or -errno. */
static int ns_enter(const char *ns, int *fd)
{
	int err;

	*fd = -1;
	if (!ns)
		return 0;
	*fd = open(ns, O_RDONLY | O_CLOEXEC);
	if (*fd < 0) {
		err = -errno;
		fprintf(stderr, "pktgen: open netns %s: %s\n", ns, strerror(errno));
		return err;
	}
	if (setns(*fd, CLONE_NEWNET) < 0) {
		err = -errno;
		fprintf(stderr, "pktgen: enter netns %s: %s\n", ns, strerror(errno));
		return err;
	}
	return 0;
}

/* Back to the namespace home after ns_enter(ns). Returns 0 or -errno. */
static int ns_leave(int home, const char *ns)
{
	if (ns && setns(home, CLONE_NEWNET) < 0) {
		fprintf(stderr, "pktgen: back to home netns: %s\n", strerror(errno));
		return -errno;
	}
	return 0;
}

/* The index of ifname in namespace ns (a path; NULL: this one), or -errno. */
static int ifindex_in(int home, const char *ns, const char *ifname)
{
	int fd, idx, err;

	err = ns_enter(ns, &fd);
	if (fd >= 0)
		close(fd);
	if (err)
		return err;
	idx = (int)if_nametoindex(ifname);
	if (!idx) {
		err = -errno;
		fprintf(stderr, "pktgen: interface %s: %s\n", ifname, strerror(errno));
	}
	return ns_leave(home, ns) ?: (err ? err : idx);
}

/* Enter namespace ns (NULL: stay) and attach prog to ifname in native mode
 * (a->tc: at TC ingress), then go back to the namespace home. a->nsfd keeps
 * the namespace for detach_in. Returns 0 or -errno. */
static int attach_in(int home, const char *ns, const char *ifname, int prog_fd, struct attach *a)
{
	int err;

	a->attached = 0;
	err = ns_enter(ns, &a->nsfd);
	if (err)
		return err;
	a->ifindex = if_nametoindex(ifname);
	if (!a->ifindex) {
		err = -errno;
		fprintf(stderr, "pktgen: interface %s: %s\n", ifname, strerror(errno));
	} else {
		err = a->tc ? tc_attach(a, prog_fd) :
			      bpf_xdp_attach(a->ifindex, prog_fd, XDP_FLAGS_DRV_MODE, NULL);
		if (err)
			fprintf(stderr, "pktgen: attach %s to %s: %s\n", a->tc ? "TC" : "XDP", ifname,
				strerror(-err));
		else
			a->attached = 1;
	}
	return ns_leave(home, ns) ?: err;
}

static void detach_in(int home, struct attach *a)
{
	if (a->attached) {
		if (a->nsfd >= 0 && setns(a->nsfd, CLONE_NEWNET) < 0)
			return;
		if (a->tc)
			tc_detach(a);
		else
			bpf_xdp_detach(a->ifindex, XDP_FLAGS_DRV_MODE, NULL);
		if (a->nsfd >= 0)
			setns(home, CLONE_NEWNET);
	}
	if (a->nsfd >= 0)
		close(a->nsfd);
	a->attached = 0;
	a->nsfd = -1;
}

static int read_sink(int map_fd, __u64 *packets)
{
	int ncpu = libbpf_num_possible_cpus(), i;
	struct { __u64 packets, bytes, passed; } *v;
	__u32 k = 0;

	if (ncpu < 1)
		return -EINVAL;
	v = calloc(ncpu, sizeof(*v));
	if (!v)
		return -ENOMEM;
	if (bpf_map_lookup_elem(map_fd, &k, v)) {
		free(v);
		return -errno;
	}
	*packets = 0;
	for (i = 0; i < ncpu; i++)
		*packets += v[i].packets;
	free(v);
	return 0;
}

/* Send for `secs` seconds (or until a signal); returns frames sent. */
static long long send_for(int prog_fd, int ifindex, unsigned char *frame, int len, double secs,
			  int *err)
{
	/* The kernel wants data_end to match the frame length. */
	struct xdp_md ctx = { .data_end = len, .ingress_ifindex = ifindex };
	double end = now_s() + secs;
	long long sent = 0;
	int i;

	*err = 0;
	/* Bounded: each call takes well under a second; stop at the deadline. */
	for (i = 0; i < 1000000 && !stop && now_s() < end; i++) {
		LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = frame, .data_size_in = len,
			    .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .repeat = 1 << 16,
			    .flags = BPF_F_TEST_XDP_LIVE_FRAMES, .batch_size = 64);
		if (bpf_prog_test_run_opts(prog_fd, &t)) {
			*err = -errno;
			fprintf(stderr, "pktgen: BPF_PROG_RUN live frames: %s\n", strerror(errno));
			break;
		}
		sent += 1 << 16;
	}
	return sent;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pktgen --tx-ifname IF --dst-mac MAC --src-ip A --dst-ip B --dport P\n"
		"              --sink-netns PATH --sink-ifname IF [--sink-port P] [--sink-tc]\n"
		"              [--pass-netns PATH --pass-ifname IF] [--flows N] [--size BYTES]\n"
		"              [--pass-redirect IF] [--duration S] [--warmup S] [-v]\n"
		"Sends UDP frames out of IF (XDP live frames) and counts them at the sink.\n"
		"--sink-port 0 counts every IPv4 packet (use it for the drop-only limit).\n"
		"--pass-ifname attaches an XDP_PASS program (a veth needs one to take XDP frames).\n"
		"--pass-redirect IF attaches instead one that redirects every frame to IF (in the\n"
		"same namespace), rewriting nothing: the ceiling of any XDP forwarder on this path.\n"
		"--sink-tc counts at the sink's TC ingress instead of its XDP (packets put into\n"
		"the device by bpf_redirect_peer never meet its XDP program).\n");
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "tx-ifname", required_argument, NULL, 't' },
		{ "dst-mac", required_argument, NULL, 'm' },
		{ "src-ip", required_argument, NULL, 's' },
		{ "dst-ip", required_argument, NULL, 'd' },
		{ "dport", required_argument, NULL, 'p' },
		{ "sink-netns", required_argument, NULL, 'N' },
		{ "sink-ifname", required_argument, NULL, 'I' },
		{ "sink-port", required_argument, NULL, 'P' },
		{ "pass-netns", required_argument, NULL, 'A' },
		{ "pass-ifname", required_argument, NULL, 'B' },
		{ "pass-redirect", required_argument, NULL, 'R' },
		{ "sink-tc", no_argument, NULL, 'T' },
		{ "flows", required_argument, NULL, 'f' },
		{ "size", required_argument, NULL, 'z' },
		{ "duration", required_argument, NULL, 'D' },
		{ "warmup", required_argument, NULL, 'W' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	struct opts o = { .dport = 80, .sink_port = 8080, .flows = 64, .size = 64,
			  .duration = 2, .warmup = 0.3 };
	struct attach sink = { .nsfd = -1 }, pass = { .nsfd = -1 };
	struct bench_pktgen_bpf *skel = NULL;
	unsigned char frame[2048];
	__u64 before = 0, after = 0;
	long long sent;
	double t0, t1;
	int c, len, home = -1, err = 0, tx_ifindex;

	while ((c = getopt_long(argc, argv, "vh", lopts, NULL)) != -1) {
		switch (c) {
		case 't': o.tx_ifname = optarg; break;
		case 'm': o.dst_mac = optarg; break;
		case 's': o.src_ip = optarg; break;
		case 'd': o.dst_ip = optarg; break;
		case 'p': o.dport = atoi(optarg); break;
		case 'N': o.sink_netns = optarg; break;
		case 'I': o.sink_ifname = optarg; break;
		case 'P': o.sink_port = atoi(optarg); break;
		case 'A': o.pass_netns = optarg; break;
		case 'B': o.pass_ifname = optarg; break;
		case 'R': o.redirect_ifname = optarg; break;
		case 'T': o.sink_tc = 1; break;
		case 'f': o.flows = atoi(optarg); break;
		case 'z': o.size = atoi(optarg); break;
		case 'D': o.duration = atof(optarg); break;
		case 'W': o.warmup = atof(optarg); break;
		case 'v': o.verbose = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!o.tx_ifname || !o.dst_mac || !o.src_ip || !o.dst_ip || !o.sink_ifname ||
	    o.duration <= 0 || o.duration > 600 || o.flows < 1) {
		usage(stderr);
		return 2;
	}
	if (!o.verbose)
		libbpf_set_print(libbpf_quiet);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	len = build_frame(&o, frame, sizeof(frame));
	if (len < 0)
		return 1;
	tx_ifindex = if_nametoindex(o.tx_ifname);
	if (!tx_ifindex) {
		fprintf(stderr, "pktgen: interface %s: %s\n", o.tx_ifname, strerror(errno));
		return 1;
	}
	home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (home < 0) {
		fprintf(stderr, "pktgen: open own netns: %s\n", strerror(errno));
		return 1;
	}
	skel = bench_pktgen_bpf__open();
	if (!skel) {
		fprintf(stderr, "pktgen: open BPF object: %s\n", strerror(errno));
		err = -errno;
		goto out;
	}
	skel->rodata->sink_port = (__u16)o.sink_port;
	skel->bss->tx_seq = 0;
	skel->data->nflows = o.flows;
	memcpy(skel->bss->hdr, frame, sizeof(skel->bss->hdr));
	err = bench_pktgen_bpf__load(skel);
	if (err) {
		fprintf(stderr, "pktgen: load BPF object: %s\n", strerror(-err));
		goto out;
	}
	sink.tc = o.sink_tc;
	err = attach_in(home, o.sink_netns, o.sink_ifname,
			bpf_program__fd(o.sink_tc ? skel->progs.sink_count_tc :
						    skel->progs.sink_count),
			&sink);
	if (err)
		goto out;
	if (o.redirect_ifname && !o.pass_ifname) {
		fprintf(stderr, "pktgen: --pass-redirect needs --pass-ifname\n");
		err = -EINVAL;
		goto out;
	}
	if (o.redirect_ifname) {
		err = ifindex_in(home, o.pass_netns, o.redirect_ifname);
		if (err < 0)
			goto out;
		skel->bss->redirect_ifindex = (__u32)err;
		err = 0;
	}
	if (o.pass_ifname) {
		err = attach_in(home, o.pass_netns, o.pass_ifname,
				bpf_program__fd(o.redirect_ifname ? skel->progs.node_redirect :
								    skel->progs.node_pass),
				&pass);
		if (err)
			goto out;
	}
	/* Warm up: neighbour entries, conntrack, caches. */
	send_for(bpf_program__fd(skel->progs.pktgen_tx), tx_ifindex, frame, len, o.warmup, &err);
	if (err)
		goto out;
	err = read_sink(bpf_map__fd(skel->maps.sink_counts), &before);
	if (err)
		goto out;
	t0 = now_s();
	sent = send_for(bpf_program__fd(skel->progs.pktgen_tx), tx_ifindex, frame, len,
			o.duration, &err);
	/* Let the last frames in flight (veth rings, softirq backlog) land. */
	usleep(20000);
	t1 = now_s();
	if (err)
		goto out;
	err = read_sink(bpf_map__fd(skel->maps.sink_counts), &after);
	if (err)
		goto out;
	printf("sent=%lld received=%llu seconds=%.3f tx_mpps=%.3f rx_mpps=%.3f\n", sent,
	       (unsigned long long)(after - before), t1 - t0, sent / (t1 - t0) / 1e6,
	       (after - before) / (t1 - t0) / 1e6);
out:
	detach_in(home, &pass);
	detach_in(home, &sink);
	bench_pktgen_bpf__destroy(skel);
	if (home >= 0)
		close(home);
	return err ? 1 : 0;
}
