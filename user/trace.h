/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `svcplane trace`: what the datapath would do with one packet. The packet
 * is built here and run with BPF_PROG_TEST_RUN through a dry-run copy of
 * the datapath (bpf/svcplane_trace.bpf.c) loaded over the daemon's pinned
 * maps and with the daemon's load-time settings: the real program logic on
 * the live state, writing nothing (bpf/lib/trace.h says how). Each program
 * run returns its verdict, the packet it produced and its decisions.
 */
#ifndef SP_TRACE_H
#define SP_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include "svcplane.h"

/* Where the packet comes from, which decides the programs it meets. */
enum sp_trace_from {
	SP_TRACE_EXTERNAL = 0, /* arrives on an uplink: sp_xdp, then sp_tc_uplink on XDP_PASS */
	SP_TRACE_POD, /* leaves a pod: sp_tc_ingress on its host-side veth */
	SP_TRACE_HOST, /* a host process: sp_tc_egress on the uplink */
};

struct sp_trace_req {
	const char *dir; /* the daemon's pin directory */
	const char *iface; /* NULL: the interface of the daemon's first XDP link */
	enum sp_trace_from from;
	uint8_t family; /* SP_FAMILY_* */
	uint8_t proto; /* IPPROTO_TCP / IPPROTO_UDP */
	bool established; /* TCP: an ACK of a running connection, not a SYN */
	struct sp_addr src, dst; /* wire order */
	uint16_t sport, dport; /* host order */
	/* The program whose settings (.rodata) to use; 0: the daemon's, found
	 * through its XDP link. Tests without a daemon give their own. */
	uint32_t settings_prog_id;
};

#define SP_TRACE_DEFAULT_SPORT 40000 /* SRC without a port */
#define SP_TRACE_PKT_MAX 512
#define SP_TRACE_RUNS 2

struct sp_trace_run {
	char prog[32]; /* program name, e.g. "sp_xdp" */
	bool xdp;
	int retval; /* XDP_* or TC_ACT_* */
	uint32_t out_len;
	uint8_t out[SP_TRACE_PKT_MAX];
	struct sp_trace_buf buf; /* the decisions, in order */
};

struct sp_trace_result {
	char ifname[32];
	uint32_t ifindex;
	uint32_t in_len;
	uint8_t in[SP_TRACE_PKT_MAX];
	int n_runs;
	struct sp_trace_run runs[SP_TRACE_RUNS];
};

/*
 * Parse "ADDR[:PORT]" (want_port 0), "ADDR:PORT/PROTO" (want_port 1); IPv6
 * as [ADDR]:PORT. Fills the family, address, port (host order, 0 if none)
 * and protocol (0 if none). Returns 0 or -EINVAL with a reason in why.
 */
int sp_trace_parse_endpoint(const char *s, bool want_port, uint8_t *family, struct sp_addr *a,
			    uint16_t *port, uint8_t *proto, char *why, size_t len);

/* Run the trace. Returns 0, or -errno with what failed in err. */
int sp_trace_run(const struct sp_trace_req *r, struct sp_trace_result *res, char *err,
		 size_t errlen);

/*
 * Helpers shared with `svcplane monitor` (user/monitor.c).
 *
 * sp_live_prog: a program of the daemon pinned under dir, from its XDP
 * links (dir/links): the one on want_ifindex if there is one, else any;
 * *ifindex is that link's interface. Returns 0 or -ENOENT.
 */
int sp_live_prog(const char *dir, __u32 want_ifindex, __u32 *prog_id, __u32 *ifindex);

/* A global-data map (".rodata", ".bss") of a loaded program, read once. */
struct sp_global_map {
	int fd;
	struct bpf_map_info info;
	void *value; /* info.value_size bytes, as read */
	struct btf *btf;
	const struct btf_type *sec; /* its DATASEC */
};

/* Open program prog_id's map whose name ends with sec and read it.
 * Returns 0 or -errno (what failed in err). */
int sp_global_map_open(__u32 prog_id, const char *sec, struct sp_global_map *g, char *err,
		       size_t errlen);
void sp_global_map_close(struct sp_global_map *g);
/* The variable called name in DATASEC sec, or NULL. */
const struct btf_var_secinfo *sp_global_var(const struct btf *btf, const struct btf_type *sec,
					    const char *name);

/* Print the result as text or JSON to stdout. Returns 0 or -errno. */
int sp_trace_print(const struct sp_trace_req *r, const struct sp_trace_result *res, bool json);

#endif /* SP_TRACE_H */
