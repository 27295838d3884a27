/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The loaded datapath: the BPF object with its maps pinned under one
 * directory, and its attachments. Pinning is what lets the datapath run on
 * while the daemon is gone (restart, upgrade, kill -9): maps are reused by
 * name on the next load, XDP links are pinned under DIR/links, and TC
 * filters live in the kernel until detached.
 */
#ifndef SP_DP_H
#define SP_DP_H

#include <stdbool.h>
#include <stdint.h>
#include "model.h"

enum sp_xdp_mode { SP_XDP_AUTO = 0, SP_XDP_NATIVE, SP_XDP_GENERIC };

struct sp_dp_opts {
	const char *pin_dir;
	uint32_t max_frontends;
	uint32_t max_svc_ids;
	uint32_t max_backends;
	uint32_t ct_size;
	uint32_t maglev_chunks;
	uint32_t hash_seed;
	uint64_t ct_syn_ns, ct_est_ns, ct_close_ns, ct_fin_ns, ct_udp_ns;
	struct sp_ip hairpin4, hairpin6;
	bool xdp_redirect;
	uint32_t reject_rate; /* reject answers per second per CPU; 0: no limit */
	/* --cluster-cidr: at most one range per family; len 0 = none. */
	struct sp_ip cluster4, cluster6;
	uint8_t cluster4_len, cluster6_len;
	uint32_t snat_port_min, snat_port_max; /* --snat-ports */
	uint32_t max_src_ranges; /* sp_src_ranges entries */
	bool dsr; /* --dsr: Direct Server Return instead of SNAT (bpf/lib/dsr.h) */
	bool host_routing; /* --host-routing: local pods from TC (bpf/lib/host_route.h) */
};

struct svcplane_bpf;

struct sp_dp {
	struct svcplane_bpf *skel;
	char pin_dir[256];
	int fd_services, fd_backends, fd_maglev, fd_ct, fd_node_addrs, fd_tx_ports, fd_svc_meta;
	int fd_pod_ifaces;
	uint32_t maglev_chunks;
	uint32_t max_svc_ids;
	bool maps_reused; /* true if maps were already pinned (a restart) */
};

/* Fill defaults from include/svcplane.h. */
void sp_dp_opts_default(struct sp_dp_opts *o);
/* Open, size, configure and load the object, reusing pinned maps. 0 or -errno. */
int sp_dp_load(struct sp_dp *dp, const struct sp_dp_opts *o);
void sp_dp_close(struct sp_dp *dp);
/* Put the source address of every REV entry of conntrack (fd_ct, ct_max entries at
 * most) into the reply-source filter fd_srcs (sp_reply_srcs); *seeded
 * counts them. sp_dp_load does it when it finds sp_ct pinned but not the
 * filter (an upgrade). 0 or -errno. */
int sp_dp_seed_reply_srcs(int fd_ct, int fd_srcs, uint32_t ct_max, uint32_t *seeded);
/* Uplink: XDP (sp_xdp) + TC ingress (sp_tc_uplink) + TC egress (sp_tc_egress). */
int sp_dp_attach_uplink(struct sp_dp *dp, const char *ifname, enum sp_xdp_mode mode);
/* Pod veth (host side): TC ingress (sp_tc_ingress), and a target of host
 * routing (sp_pod_ifaces). */
int sp_dp_attach_pod(struct sp_dp *dp, const char *ifname);
/* A pod veth is gone: no longer a target of host routing. */
void sp_dp_forget_pod(struct sp_dp *dp, int ifindex);
/* Add a device XDP may redirect to (--xdp-redirect). */
int sp_dp_add_tx_port(struct sp_dp *dp, const char *ifname);
/* Remove our programs from every interface of this namespace and unpin all
 * under pin_dir. 0 or -errno (the first error; it goes on after errors). */
int sp_dp_detach_all(const char *pin_dir);

#endif /* SP_DP_H */
