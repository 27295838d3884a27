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
#include "ct.h"

enum sp_xdp_mode { SP_XDP_AUTO = 0, SP_XDP_NATIVE, SP_XDP_GENERIC };

struct sp_dp_opts {
	const char *pin_dir;
	uint32_t max_frontends;
	uint32_t max_svc_ids;
	uint32_t max_backends;
	uint32_t ct_size; /* sp_ct4 entries (--ct-size) */
	uint32_t ct6_size; /* sp_ct6 entries (--ct-size-v6) */
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
	int fd_services, fd_backends, fd_maglev, fd_node_addrs, fd_tx_ports, fd_svc_meta;
	struct sp_ct_maps ct; /* sp_ct4, sp_ct6 (user/ct.h) */
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
/* Put the source address of every REV entry of conntrack (ct) into the
 * reply-source filter fd_srcs (sp_reply_srcs); *seeded counts them.
 * sp_dp_load does it when it finds conntrack pinned but not the filter (an
 * upgrade). 0 or -errno. */
int sp_dp_seed_reply_srcs(const struct sp_ct_maps *ct, int fd_srcs, uint32_t *seeded);
/*
 * An upgrade from a version with a single conntrack table (pinned as
 * SP_MAP_CT_OLD), or with sp_ct4/sp_ct6 of the older layout (moved aside
 * by sp_dp_load to SP_MAP_CT4_V1/SP_MAP_CT6_V1): copy their entries into
 * sp_ct4 and sp_ct6, so that no
 * established flow loses its NAT. sp_dp_load does it before attaching,
 * leaving the old table to the old programs; the daemon again with last
 * once its programs replaced them (they may have added entries
 * meanwhile), and that unpins the old table. 0 (also when there is none)
 * or -errno.
 */
int sp_dp_ct_upgrade(struct sp_dp *dp, bool last);
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
