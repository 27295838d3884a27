/* SPDX-License-Identifier: Apache-2.0 */
/*
 * svcplane ABI: everything the BPF datapath and user space must agree on.
 * Map key/value layouts, flags, capacity defaults and map names.
 *
 * Plain C types only (linux/types.h), no libbpf or kernel includes, so both
 * clang -target bpf and the user-space compiler build it. Every struct has
 * explicit padding: keys are zeroed before lookup and must hash the same
 * on both sides.
 */
#ifndef SVCPLANE_ABI_H
#define SVCPLANE_ABI_H

#include <linux/types.h>

/* Where maps and programs are pinned unless --bpffs-dir says otherwise. */
#define SP_PIN_DIR_DEFAULT "/sys/fs/bpf/svcplane"

/* ---- Capacities: defaults; the daemon may resize maps before load. ---- */
#ifndef SP_MAX_FRONTENDS
#define SP_MAX_FRONTENDS 65536 /* VIP:port:proto keys in sp_services */
#endif
#ifndef SP_MAX_SVC_IDS
#define SP_MAX_SVC_IDS 65536 /* Service ports (stats slots in sp_svc_stats) */
#endif
#ifndef SP_MAX_BACKENDS
#define SP_MAX_BACKENDS 262144 /* distinct endpoint address:port pairs */
#endif
#ifndef SP_CT_MAX
#define SP_CT_MAX 524288 /* IPv4 conntrack entries, sp_ct4 (each flow takes two) */
#endif
#ifndef SP_CT6_MAX
#define SP_CT6_MAX 131072 /* IPv6 conntrack entries, sp_ct6 (each flow takes two) */
#endif
#ifndef SP_MAGLEV_CHUNKS
#define SP_MAGLEV_CHUNKS 524288 /* 64-byte chunks of Maglev regions (32 MiB) */
#endif
#ifndef SP_MAX_NODE_ADDRS
#define SP_MAX_NODE_ADDRS 256 /* node addresses NodePorts are served on */
#endif
#ifndef SP_AFFINITY_MAX
#define SP_AFFINITY_MAX 65536 /* sessionAffinity: ClientIP (Service, client) pairs */
#endif
#ifndef SP_MAX_SVC_BACKENDS
#define SP_MAX_SVC_BACKENDS 262144 /* (Service, backend) pairs of affinity Services */
#endif
#ifndef SP_MAX_SRC_RANGES
#define SP_MAX_SRC_RANGES 65536 /* loadBalancerSourceRanges CIDRs, all Services */
#endif
/* sp_reply_srcs, a Bloom filter of the addresses replies come from: its
 * size in addresses at a false-positive rate near 1% (more only raise the
 * rate: a false positive costs the conntrack lookup it would have saved). */
#ifndef SP_REPLY_SRC_MAX
#define SP_REPLY_SRC_MAX 65536
#endif
#define SP_REPLY_SRC_HASHES 2 /* hash functions of that filter (map_extra) */
#ifndef SP_MAX_TX_PORTS
#define SP_MAX_TX_PORTS 1024 /* devices XDP may redirect to */
#endif
#ifndef SP_MAX_POD_IFACES
#define SP_MAX_POD_IFACES 4096 /* pod veths host routing delivers into */
#endif

/* XDP's note to the uplink's TC program, in the packet's metadata (4
 * bytes, bpf/lib/host_route.h): NATed, route it into its pod. An unlikely
 * value, so a note some other XDP program left is not taken for ours. */
#define SP_META_HOST_ROUTE 0x53506872u /* "SPhr" */

/* Maglev table sizes: primes from this list only (see user/maglev.c). */
#define SP_MAGLEV_M_MIN 251
#define SP_MAGLEV_M_MAX 131071
/* A fixed size that suits most Services; the daemon defaults to adaptive
 * sizing (--maglev-m adaptive: tiers 251, 1021, 4093, 16381, 65537, the
 * smallest >= 80 x N; see user/maglev.c). */
#define SP_MAGLEV_M_DEFAULT 16381

/*
 * A Maglev region is a run of consecutive chunks in sp_maglev holding, as
 * 16-bit words: first the Service's backend ids (2 words each, low half
 * first, in canonical order), then the M table entries, each an index
 * into that backend list. Two words per id keep ids 32-bit while entries
 * stay 16-bit; a backend id pair never straddles a chunk (chunk length is
 * even), so resolving an entry costs two array lookups.
 */
#define SP_MAGLEV_CHUNK_WORDS 32
struct sp_maglev_chunk {
	__u16 w[SP_MAGLEV_CHUNK_WORDS];
};

/* Address families as stored in keys (not AF_* so the BPF side needs no libc). */
#define SP_FAMILY_V4 4
#define SP_FAMILY_V6 6

/* An IPv4 address lives in addr[0]; addr[1..3] are zero. Wire order. */
struct sp_addr {
	__be32 addr[4];
};

/*
 * sp_services key: one frontend. For NodePorts the address is all-zero and
 * the datapath uses it only when the packet's destination is in
 * sp_node_addrs, so NodePorts are served on every node address without one
 * key per address.
 */
struct sp_svc_key {
	struct sp_addr addr;
	__be16 port;
	__u8 proto; /* IPPROTO_TCP / IPPROTO_UDP */
	__u8 family; /* SP_FAMILY_* */
};

/* sp_svc.flags */
#define SP_SVC_F_NODEPORT (1u << 0) /* key is a NodePort wildcard */
#define SP_SVC_F_EXTERNAL (1u << 1) /* LoadBalancer ingress IP or externalIP */
#define SP_SVC_F_AFFINITY (1u << 2) /* sessionAffinity: ClientIP (modelled) */
/* An external frontend of a Service with externalTrafficPolicy: Local (its
 * backends are this node's only). Traffic from inside the cluster (a pod,
 * this host, a source in --cluster-cidr) uses the frontend's entry in the
 * cluster view instead (all endpoints), as kube-proxy short-circuits it. */
#define SP_SVC_F_LOCAL_ONLY (1u << 3)
/* The backend set is empty because of a Local traffic policy while the
 * Service has endpoints on other nodes: drop (kube-proxy's "has no local
 * endpoints"), never reject. */
#define SP_SVC_F_DROP_EMPTY (1u << 4)
/* The key is in the cluster view (SP_FAMILY_VIEW set in its family). */
#define SP_SVC_F_CLUSTER_VIEW (1u << 5)

/*
 * The cluster view: or'ed into sp_svc_key.family, a second key space for
 * the external frontends of externalTrafficPolicy: Local Services, holding
 * the all-endpoints backend set that internal clients use. A parsed packet
 * never has this bit in its family, so it never matches by accident.
 */
#define SP_FAMILY_VIEW 0x80
/* A LoadBalancer ingress IP of a Service with loadBalancerSourceRanges (of
 * this family): new flows only from sources in sp_src_ranges. */
#define SP_SVC_F_SRC_RANGES (1u << 6)
/*
 * A TCP frontend that no Service has any more (the Service deleted, or the
 * port removed from it), kept while connections established through it
 * live. kube-proxy deletes its DNAT rules but leaves the kernel's
 * conntrack entries of TCP flows (it clears only UDP's), so an established
 * connection to a deleted Service keeps working as long as its endpoint
 * answers; svcplane does the same. On this key only a packet of a
 * conntrack flow that does not open a connection is served; anything else
 * passes untranslated, as to no Service. n = 0, no Maglev region; svc_id
 * is the old Service's, kept unused by others until the key goes. The
 * daemon deletes the key once a conntrack pass finds no flow through it
 * (user/sync.c, "retained frontends").
 */
#define SP_SVC_F_GONE (1u << 7)

/*
 * sp_services value. Replaced with one map update when the backend set
 * changes, which is what makes a table switch atomic: a packet sees either
 * the old region or the new one, never a mix.
 */
struct sp_svc {
	__u32 svc_id; /* index into sp_svc_stats; stable per Service port */
	__u32 region; /* first chunk of the Maglev region in sp_maglev */
	__u32 m; /* Maglev table size (prime); 0 when n == 0 */
	__u16 n; /* backends in the region; 0 = reject new flows */
	__u16 flags; /* SP_SVC_F_* */
	__u32 affinity_timeout; /* seconds, with SP_SVC_F_AFFINITY */
	__u32 pad;
};

/* sp_backends value, keyed by a __u32 backend id chosen by user space. */
struct sp_backend {
	struct sp_addr addr;
	__be16 port;
	__u8 family;
	__u8 flags; /* SP_BE_F_* */
};

/* sp_backend.flags: the endpoint is on another node (its EndpointSlice
 * nodeName is not this node's). External traffic to it is SNATed (or sent
 * with DSR), so that its reply comes back through this node. */
#define SP_BE_F_REMOTE (1u << 0)

/*
 * sessionAffinity: ClientIP. sp_affinity remembers, per Service port and
 * client address, the backend of the client's last new flow; the datapath
 * reuses it for the client's next new flow until `expires`, if the backend
 * is still one of the Service's (sp_svc_backends, kept by user space for
 * affinity Services only), as kube-proxy's "recent" match does.
 */
struct sp_aff_key {
	__u32 svc_id;
	__u8 family;
	__u8 pad[3];
	struct sp_addr client;
};

struct sp_aff_val {
	__u32 backend_id;
	__u32 pad;
	__u64 expires; /* bpf_ktime_get_ns() deadline */
};

/* sp_svc_backends key (value: __u8, unused): backend_id is in svc_id's table. */
struct sp_svc_be_key {
	__u32 svc_id;
	__u32 backend_id;
};

/*
 * sp_src_ranges (LPM trie) key: one loadBalancerSourceRanges CIDR of one
 * Service port. prefixlen counts every bit after itself: the 64 bits of
 * svc_id, family and pad, then the CIDR's own prefix length, so a lookup
 * with SP_SRC_RANGE_KEY_BITS and the client's address answers "is this
 * client inside one of this Service's ranges" in one lookup. Value: __u8,
 * unused. pad is zero on both sides (it is matched like the rest).
 */
struct sp_src_range_key {
	__u32 prefixlen;
	__u32 svc_id;
	__u8 family; /* SP_FAMILY_* */
	__u8 pad[3];
	struct sp_addr addr; /* the range's network address (host bits zero) */
};
#define SP_SRC_RANGE_PREFIX_BITS 64 /* svc_id, family, pad */
#define SP_SRC_RANGE_KEY_BITS (SP_SRC_RANGE_PREFIX_BITS + 128)

/*
 * sp_dst_filter (datapath reads, daemon writes; not pinned): one bit per
 * hash of a destination address, set for every address that may be a
 * frontend (each address of a sp_services key, and each of sp_node_addrs,
 * where NodePorts are). A packet whose destination's bit is clear is for no
 * Service, which the datapath then knows from one inlined array read
 * instead of two hash lookups (sp_services, then sp_node_addrs): most of a
 * node's traffic (pod to pod, host, replies) is not for a Service. A set
 * bit only means "look": bits are shared and cleared lazily, so false
 * positives cost those lookups and nothing else. 2^20 bits (128 KiB):
 * with 10,000 frontend addresses about 1% of other addresses share a bit.
 */
#define SP_DSTF_LOG2 20
#define SP_DSTF_WORDS (1u << (SP_DSTF_LOG2 - 6))
struct sp_dst_filter {
	__u64 w[SP_DSTF_WORDS];
};

/* The bit of address a (an IPv4 address is addr[0], the rest zero): a
 * multiplicative hash, the same in the datapath and in user space. */
static inline __attribute__((always_inline)) __u32 sp_dstf_bit(const struct sp_addr *a)
{
	__u32 x = a->addr[0] ^ (a->addr[1] * 0x85ebca6bu) ^ (a->addr[2] * 0xc2b2ae35u) ^
		  (a->addr[3] * 0x27d4eb2fu);

	return (x * 0x9e3779b1u) >> (32 - SP_DSTF_LOG2);
}

/* Where bit b lives in struct sp_dst_filter: its word (masked, so that the
 * verifier sees the index in bounds) and its mask in that word. */
#define SP_DSTF_WORD(b) (((b) >> 6) & (SP_DSTF_WORDS - 1))
#define SP_DSTF_MASK(b) (1ULL << ((b) & 63))

/* sp_node_addrs key: an address of this node (value: __u8, unused). */
struct sp_node_addr_key {
	struct sp_addr addr;
	__u8 family;
	__u8 pad[3];
};

/*
 * Conntrack. Each NATed flow owns two entries in one LRU hash:
 *  - SP_CT_FWD keyed by the client's original tuple (client -> VIP), giving
 *    the backend to DNAT to (and the hairpin source, if any);
 *  - SP_CT_REV keyed by the reply tuple as it arrives (backend -> client, or
 *    backend -> hairpin address), giving what to restore.
 * One table per address family: sp_ct4, keyed by struct sp_ct4_key (16
 * bytes), and sp_ct6, keyed by struct sp_ct_key (40). An established
 * packet's lookup hashes and compares the whole key, so IPv4 flows, most
 * of the traffic, pay for 16 bytes, not 40 (docs/BENCHMARKS.md section
 * 13). The programs and user space (user/ct.h) both work with struct
 * sp_ct_key and narrow it to the IPv4 key at the map.
 */
#define SP_CT_FWD 0
#define SP_CT_REV 1

struct sp_ct_key {
	struct sp_addr saddr;
	struct sp_addr daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;
	__u8 dir; /* SP_CT_FWD / SP_CT_REV */
	__u8 pad;
};

/* sp_ct4's key: struct sp_ct_key of an IPv4 flow without the family and
 * the unused 12 bytes of each address. */
struct sp_ct4_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 dir; /* SP_CT_FWD / SP_CT_REV */
	__u8 pad[2];
};

/* k (an IPv4 flow's key) narrowed to sp_ct4's key: the datapath at the
 * map (bpf/lib/ct.h), user space in user/ct.c. */
static inline __attribute__((always_inline)) void sp_ct4_key_narrow(const struct sp_ct_key *k,
								  struct sp_ct4_key *k4)
{
	k4->saddr = k->saddr.addr[0];
	k4->daddr = k->daddr.addr[0];
	k4->sport = k->sport;
	k4->dport = k->dport;
	k4->proto = k->proto;
	k4->dir = k->dir;
	k4->pad[0] = 0;
	k4->pad[1] = 0;
}

/*
 * sp_ct_val.state: one state per flow, held identically by both entries
 * (a packet that changes it writes both). Modelled on nf_conntrack's TCP
 * states, with its meaning of each timeout (see bpf/lib/ct.h).
 */
enum sp_ct_state {
	SP_CT_NEW = 0, /* TCP SYN seen, no answer yet (SYN_SENT); UDP always */
	SP_CT_ESTABLISHED = 1,
	SP_CT_CLOSING = 2, /* RST seen (nf_conntrack's CLOSE) */
	SP_CT_FIN_WAIT = 3, /* FIN seen from one side only: half-closed */
	SP_CT_TIME_WAIT = 4, /* FIN seen from both sides */
};

/* sp_ct_val.flags (the same in both entries of a flow) */
/* The source address was rewritten (FWD nat_saddr): to the hairpin address,
 * or with SP_CT_F_SNAT to this node's address. */
#define SP_CT_F_HAIRPIN (1u << 0)
#define SP_CT_F_NODEPORT (1u << 1)
#define SP_CT_F_FIN_ORIG (1u << 2) /* the client sent a FIN */
#define SP_CT_F_FIN_REPLY (1u << 3) /* the backend sent a FIN */
#define SP_CT_F_UNREPLIED (1u << 4) /* adopted mid-stream, nothing seen back yet */
/* External traffic to a backend on another node: source address and port
 * rewritten to this node's address and a port of --snat-ports (FWD
 * nat_saddr, nat_sport), so the reply comes back here (with HAIRPIN). */
#define SP_CT_F_SNAT (1u << 5)
/* With SP_CT_F_SNAT: only the source port was remapped (the address is the
 * client's own), because another live flow owned the reply tuple. */
#define SP_CT_F_REMAP (1u << 7)
/* Direct Server Return (--dsr): external traffic to a backend on another
 * node, sent there with the client's address kept and the frontend in an
 * IP option / IPv6 destination option (see bpf/lib/dsr.h). A DSR flow has
 * ONE entry per node, not two: FWD on the node the client reached (the
 * replies never pass it), REV on the backend's node (made from the
 * option; its client packets are not tracked there). Neither has a
 * partner to keep in step. */
#define SP_CT_F_DSR (1u << 6)

/*
 * The DSR option (--dsr): how the node a client reached tells the
 * backend's node which frontend a DNATed packet was sent to, so that the
 * backend's node can give the pod's replies that frontend as their source.
 * A wire format between nodes, fixed like the maps' layouts.
 *  IPv4: one option right after the 20-byte header (IHL 7): type 0x9E (RFC
 *  4727 experimental, copied flag set), length 8, port (2), address (4).
 *  IPv6: a Destination Options header right after the fixed header: next
 *  header, hdr ext len 2 (24 bytes), option 0x1E (RFC 4727 experimental,
 *  "skip if unknown"), length 18, port (2), address (16), PadN of 2.
 */
#define SP_DSR_OPT4_TYPE 0x9e
#define SP_DSR_OPT4_LEN 8
#define SP_DSR_OPT6_TYPE 0x1e
#define SP_DSR_OPT6_DATA_LEN 18
#define SP_DSR_OPT6_LEN 24 /* the whole Destination Options header */

/* sp_ct_val.seq_hint: a sequence number in units of 128 KiB, with a bit
 * saying one was recorded. */
#define SP_CT_SEQ_SHIFT 17
#define SP_CT_SEQ_KNOWN 0x8000
#define SP_CT_SEQ_MASK 0x7fff

/*
 * What a flow's entry says, as user space reads and writes it (user/ct.h):
 * addresses of either family, times in nanoseconds of CLOCK_MONOTONIC.
 * It is also the value of the single sp_ct table of versions before
 * sp_ct4/sp_ct6, and of those two tables in the versions before their
 * compact values (SP_CT_VAL_V1_SIZE), which an upgrade copies from
 * (user/dp.c). The maps hold struct sp_ct4_val and struct sp_ct_entry.
 */
struct sp_ct_val {
	/* FWD: backend address/port to DNAT to. REV: the VIP and port to restore as source. */
	struct sp_addr nat_addr;
	/* FWD: new source (hairpin or SNAT) when SP_CT_F_HAIRPIN. REV: client address to restore as destination. */
	struct sp_addr nat_saddr;
	__be16 nat_port;
	/* FWD with SP_CT_F_SNAT: the new source port. REV: the client's port
	 * (restored as destination port with SP_CT_F_SNAT). */
	__be16 nat_sport;
	__u32 backend_id; /* FWD: checked against sp_backends on every hit */
	__u32 svc_id;
	__u8 state; /* enum sp_ct_state */
	__u8 flags; /* SP_CT_F_* */
	/* TCP: where the sender of this entry's direction (FWD: the client,
	 * REV: the backend) was last seen in its sequence space, as
	 * SP_CT_SEQ_KNOWN | seq >> SP_CT_SEQ_SHIFT; 0 until a packet is seen.
	 * A FIN or RST far from it does not move the state (lib/ct.h). */
	__u16 seq_hint;
	__u64 expires; /* bpf_ktime_get_ns() deadline; past it the entry is dead */
	__u64 created; /* bpf_ktime_get_ns() at creation */
};
#define SP_CT_VAL_V1_SIZE 64 /* sizeof(struct sp_ct_val): the older tables' value */

/*
 * Conntrack times as the maps hold them: 32 bits of CLOCK_MONOTONIC in
 * units of 2^SP_CT_TIME_SHIFT ns (16.8 ms), which is what lets an IPv4
 * flow's value fit 32 bytes (docs/BENCHMARKS.md section 16). A deadline
 * seconds to hours long needs no finer unit: an entry outlives its
 * deadline by at most one unit. The count wraps every 2.3 years of
 * uptime, so two times are compared in serial arithmetic (RFC 1982), right
 * while they are less than 1.1 years apart: timeouts are at most 7 days
 * (--ct-timeout-*), and the collector removes an expired entry within
 * minutes.
 */
#define SP_CT_TIME_SHIFT 24

static inline __attribute__((always_inline)) __u32 sp_ct_time(__u64 ns)
{
	return (__u32)(ns >> SP_CT_TIME_SHIFT);
}

/* True if time a is later than time b. */
static inline __attribute__((always_inline)) int sp_ct_time_after(__u32 a, __u32 b)
{
	return (__s32)(a - b) > 0;
}

/*
 * The part of a conntrack value both families share, first in both (what
 * a packet of an established flow reads and updates in place: the
 * datapath keeps a pointer to it, whichever table the entry is in). The
 * fields are those of struct sp_ct_val, the times in SP_CT_TIME_SHIFT
 * units. Listed once, here, and spliced into each value so that its
 * fields are the value's own (v->state) and the whole is one struct too
 * (v->h).
 */
#define SP_CT_HDR_FIELDS                                                                   \
	__be16 nat_port;                                                                   \
	__be16 nat_sport;                                                                  \
	__u32 backend_id;                                                                  \
	__u32 svc_id;                                                                      \
	__u8 state;                                                                        \
	__u8 flags;                                                                        \
	__u16 seq_hint;                                                                    \
	__u32 expires; /* past it the entry is dead (sp_ct_time_after) */                  \
	__u32 created

struct sp_ct_hdr {
	SP_CT_HDR_FIELDS;
};

/* sp_ct4's value (32 bytes): an IPv4 flow's addresses in 4 bytes each. */
struct sp_ct4_val {
	union {
		struct {
			SP_CT_HDR_FIELDS;
		};
		struct sp_ct_hdr h;
	};
	__be32 nat_addr;
	__be32 nat_saddr;
};

/* sp_ct6's value (56 bytes), and the form in which the datapath reads an
 * entry of either table (an IPv4 address in the first word of each
 * struct sp_addr, the rest zero). */
struct sp_ct_entry {
	union {
		struct {
			SP_CT_HDR_FIELDS;
		};
		struct sp_ct_hdr h;
	};
	struct sp_addr nat_addr;
	struct sp_addr nat_saddr;
};

/*
 * sp_frags (datapath only, not pinned): the NAT a datagram's first
 * fragment got, for its later fragments, keyed by what every fragment
 * carries as it arrives.
 */
#ifndef SP_FRAG_MAX
#define SP_FRAG_MAX 16384 /* datagrams in flight */
#endif
#define SP_FRAG_TIMEOUT_NS (30ULL * 1000000000ULL) /* Linux's ipfrag_time */
struct sp_frag_key {
	struct sp_addr saddr;
	struct sp_addr daddr;
	__be32 id;
	__u8 proto;
	__u8 family;
	__u8 pad[2];
};
struct sp_frag_val {
	struct sp_addr saddr; /* rewrite the source to this */
	struct sp_addr daddr; /* and the destination to this */
	__u64 expires;
	__u32 flags; /* SP_FRAG_F_* */
	__u32 pad;
};
/* The datagram's flow is SNATed (SP_CT_F_SNAT): XDP leaves its later
 * fragments to the uplink's TC program, as the flow's other packets. */
#define SP_FRAG_F_TC (1u << 0)
/*
 * The conntrack collector's reaper (sp_ct_reap, a BPF_PROG_TYPE_SYSCALL
 * program run with BPF_PROG_TEST_RUN): each item is an entry as the
 * collector read it; the program deletes it only if its value is still
 * exactly that, in the kernel, so the window in which the datapath can
 * replace it with a new flow in between is nanoseconds, not a syscall.
 */
#define SP_REAP_BATCH 32 /* unrolled in the program: keep it small */

struct sp_reap_item {
	struct sp_ct_key key;
	struct sp_ct_entry val; /* as the datapath reads it (user/ct.h: sp_ct_entry_of) */
};

struct sp_reap_args {
	__u32 n; /* items given */
	__u32 deleted; /* out: items deleted */
	struct sp_reap_item items[SP_REAP_BATCH];
};

/*
 * Counters: sp_stats holds one struct sp_stats per CPU for each hook
 * (slot), so every packet is attributed to the program that handled it;
 * the totals are the sum of the slots.
 */
enum sp_stats_slot {
	SP_SLOT_XDP = 0, /* sp_xdp on uplinks */
	SP_SLOT_POD = 1, /* sp_tc_ingress on pod veths */
	SP_SLOT_HOST = 2, /* sp_tc_egress on uplinks: host-originated traffic */
	SP_SLOT_UPLINK_TC = 3, /* sp_tc_uplink: rejects XDP left to TC */
	SP_SLOTS = 4,
};
#define SP_SLOT_NAMES { "xdp", "pod", "host", "uplink_tc" }

struct sp_stats {
	__u64 rx_packets; /* packets seen by any hook */
	__u64 rx_bytes;
	__u64 not_service; /* passed untouched: no CT entry, no Service */
	__u64 svc_packets; /* packets to a Service frontend (DNATed or rejected) */
	__u64 new_flows; /* backend chosen by Maglev */
	__u64 ct_fwd_hits;
	__u64 ct_rev_hits; /* replies reverse-NATed */
	__u64 ct_backend_gone; /* CT hit whose backend was removed: reselected */
	__u64 hairpin; /* flows whose source was rewritten to the hairpin address */
	__u64 rejects; /* TCP RST / ICMP unreachable sent for an empty Service */
	__u64 redirects; /* forwarded with bpf_redirect* */
	__u64 to_stack; /* handed to the kernel stack after NAT */
	__u64 ipv4_options; /* IPv4 packets with options (parsed by IHL) */
	__u64 ipv6_ext_hdrs; /* IPv6 packets with extension headers walked */
	__u64 frag_first; /* first fragments handled */
	__u64 ct_insert_fail;
	/* A state change found the flow's other entry missing (LRU
	 * eviction of a live flow, or a GC race): it was recreated. */
	__u64 ct_partner_miss;
	/* A TCP packet of no known flow was adopted mid-stream (a flow older
	 * than svcplane, or whose entries were lost). */
	__u64 ct_adopted;
	/* ICMP / ICMPv6 errors about a NATed flow, translated (quote and
	 * header) as nf_nat does. */
	__u64 icmp_translated;
	/* Later fragments given their first fragment's NAT. */
	__u64 frag_later_natted;
	/* New flows of external clients to a backend on another node whose
	 * source was rewritten to this node's address and a --snat-ports port. */
	__u64 snat_flows;
	/* Packets XDP left untouched for the uplink's TC program, which does
	 * their SNAT and forwards them itself (see sp_tc_uplink). */
	__u64 snat_to_tc;
	/* New flows of an internal client (pod, host, --cluster-cidr) to an
	 * external frontend of an externalTrafficPolicy: Local Service, sent
	 * to all endpoints as kube-proxy short-circuits them. */
	__u64 local_short_circuit;
	/* New flows whose reply tuple another live flow owned, given another
	 * source port as nf_nat does (they used to be dropped, ct_clash). */
	__u64 ct_clash_remapped;
	/* --dsr, on the node the client reached: new flows to a backend on
	 * another node sent with Direct Server Return (DNAT + option). */
	__u64 dsr_flows;
	/* --dsr, on the backend's node: packets carrying the DSR option
	 * whose conntrack entry (reverse NAT of the pod's replies) was made
	 * or refreshed. */
	__u64 dsr_ingress;
	/* --dsr: new flows that could not carry the option (IPv4 options or
	 * IPv6 extension headers of their own, a fragment, or over the MTU
	 * with it) and were SNATed instead. */
	__u64 dsr_fallback_snat;
	/* TCP FIN or RST whose sequence number lies far from where its
	 * sender was last seen (a stale or forged one): passed on, NATed as
	 * its flow, but the conntrack state left as it was. */
	__u64 ct_seq_ignored;
	/* Host routing (bpf/lib/host_route.h): packets to a pod on this node
	 * delivered into it with bpf_redirect_peer, by the uplink's TC
	 * program after XDP's NAT or by a pod veth's after its own. */
	__u64 peer_redirects;
	/* Packets XDP noted for host routing that went to the stack instead:
	 * no neighbour entry yet, a destination that is no pod veth of ours
	 * (a host-network endpoint, a remote one), TTL 1, a VLAN. */
	__u64 peer_fallbacks;
};

/*
 * Why a packet was dropped or passed without NAT: sp_reasons is a PERCPU
 * array indexed by this enum. Keep sp_reason_names (below) in step.
 */
enum sp_reason {
	SP_R_TRUNC_L2 = 0, /* shorter than an Ethernet header: passed */
	SP_R_TRUNC_L3, /* IP header cut short: passed, never rewritten */
	SP_R_TRUNC_L4, /* TCP/UDP header cut short: passed, never rewritten */
	SP_R_BAD_IHL, /* IPv4 IHL < 5: passed (IHL beyond the packet is trunc_l3) */
	SP_R_FRAG_LATER, /* non-first fragment of no datagram we NATed: passed */
	SP_R_EXT_HDR_LIMIT, /* more IPv6 extension headers than we walk: passed */
	SP_R_NO_BACKEND, /* Service with no ready endpoint: rejected */
	SP_R_REJECT_FAILED, /* could not build the reject: dropped */
	SP_R_MAGLEV_MISS, /* Maglev region entry missing: dropped */
	SP_R_BACKEND_MISS, /* backend id in table but not in sp_backends: dropped */
	SP_R_CT_FULL, /* conntrack insert failed: dropped */
	SP_R_NAT_FAILED, /* packet rewrite failed: dropped */
	SP_R_FIB_FAILED, /* egress redirect lookup failed: dropped */
	SP_R_CT_CLASH, /* reply tuple taken and no --snat-ports port free to remap: dropped */
	SP_R_REJECT_NOT_NEW, /* TCP non-SYN to a Service with no endpoint: dropped, no RST */
	SP_R_BAD_VERSION, /* IP version field disagrees with the EtherType: passed */
	SP_R_REJECT_RATE, /* answer for an empty Service over --reject-rate: dropped */
	SP_R_NO_LOCAL_ENDPOINT, /* Local traffic policy, no endpoint on this node: dropped */
	SP_R_SNAT_EXHAUSTED, /* no free --snat-ports port for the backend: dropped */
	SP_R_SRC_RANGE_DENIED, /* new flow to an LB IP from outside loadBalancerSourceRanges: dropped */
	SP_R_DSR_FAILED, /* inserting the DSR option failed (no headroom): dropped */
	SP_R_DSR_CLASH, /* DSR option for a reply tuple a live non-DSR flow owns: passed, no entry */
	SP_R_MAX,
};

#define SP_REASON_NAMES                                                                    \
	{                                                                                  \
		"trunc_l2", "trunc_l3", "trunc_l4", "bad_ihl", "frag_later",              \
			"ext_hdr_limit", "no_backend", "reject_failed", "maglev_miss",    \
			"backend_miss", "ct_full", "nat_failed", "fib_failed", "ct_clash",  \
			"reject_not_new", "bad_version", "reject_rate_limited",            \
			"no_local_endpoint", "snat_exhausted",                              \
			"src_range_denied", "dsr_failed", "dsr_clash",                     \
	}

struct sp_reason_count {
	__u64 packets;
	__u64 bytes;
};

/* Per Service port counters, PERCPU array indexed by sp_svc.svc_id. */
struct sp_svc_stats {
	__u64 packets;
	__u64 bytes;
	__u64 new_flows;
	__u64 rejects;
	__u64 drops;
};

/*
 * sp_svc_meta value, keyed by svc_id: what the inspection commands print and
 * what a restarted daemon uses to find its own svc_id allocation again.
 * Written by user space only; the datapath never reads it.
 */
#define SP_SVC_NAME_LEN 112
struct sp_svc_meta {
	char name[SP_SVC_NAME_LEN]; /* "namespace/name:portname/proto/v4|v6" */
	__u32 m; /* Maglev table size of the current region */
	__u16 n; /* backends in the current region */
	__u16 pad;
	__u32 region; /* current region (also in each sp_svc) */
	__u32 region_chunks; /* its length in chunks */
};

/*
 * `svcplane trace` (user/trace.c): bpf/svcplane_trace.bpf.c is the datapath
 * compiled again with SP_DRYRUN, in which nothing is written to a shared
 * map (bpf/lib/trace.h) and each decision is appended to a buffer in the
 * object's own .bss (one per loaded copy, so concurrent traces never mix):
 * one struct sp_trace_ev per step. Steps are append-only with explicit
 * values; what a, b, c, x, y and addr hold is said per step.
 */
enum sp_trace_step {
	SP_T_HOOK = 1, /* x: enum sp_trace_hook, a program starts */
	SP_T_REASON = 2, /* a: enum sp_reason counted (drop or pass without NAT) */
	SP_T_FRONTEND = 3, /* x: enum sp_trace_fe; a: svc_id, b: flags, c: n backends */
	SP_T_CT_FWD = 4, /* x: enum sp_trace_ct; y: state; a: backend id, b: flags; addr: backend */
	SP_T_CT_REV = 5, /* x: enum sp_trace_ct; y: state; a: svc_id, b: flags; addr: frontend */
	SP_T_CT_NEXT = 6, /* the packet moves the flow: y: state, b: flags */
	SP_T_BACKEND_GONE = 7, /* a: backend id; x: 1 kept (TCP mid-stream), 0 re-pick */
	SP_T_SRC_RANGE = 8, /* x: 1 allowed, 0 denied (loadBalancerSourceRanges) */
	SP_T_NOT_OURS = 9, /* x: enum sp_trace_pass: why the packet passes untouched */
	SP_T_VIEW = 10, /* Local policy, inside client: x: found; a: svc_id, c: n */
	SP_T_AFFINITY = 11, /* x: 1 remembered backend a, 0 none */
	SP_T_MAGLEV = 12, /* a: flow hash, b: slot (hash % m), c: backend id; x: 0 ok */
	SP_T_BACKEND = 13, /* a: backend id, b: flags, c: port (wire order); addr */
	SP_T_SNAT = 14, /* x: enum sp_trace_snat; addr: new source (x = SNAT_SOURCE) */
	SP_T_HAIRPIN = 15, /* addr: the hairpin source */
	SP_T_CT_CREATE = 16, /* x: 0 or an enum sp_reason; b: flags; c: SNAT port (wire) */
	SP_T_FWD = 17, /* x: enum sp_trace_fwd; a: FIB result, b: egress ifindex */
	SP_T_REJECT = 18, /* the packet becomes the reject answer (RST / ICMP unreachable) */
	SP_T_AFFINITY_SET = 19, /* a: backend id remembered for b seconds */
	SP_T_RNAT = 20, /* a reply is reverse-NATed: addr: new source (frontend), c: port */
	SP_T_CT_SEQ_IGNORED = 21, /* a FIN/RST far from the flow's sequence: state kept */
};

enum sp_trace_hook {
	SP_TH_XDP = 0,
	SP_TH_TC_INGRESS = 1, /* pod veth */
	SP_TH_TC_EGRESS = 2, /* uplink, host traffic */
	SP_TH_TC_UPLINK = 3, /* uplink ingress after XDP */
};

enum sp_trace_fe {
	SP_TFE_NONE = 0, /* no frontend, destination not a node address */
	SP_TFE_EXACT = 1, /* (address, port, proto) */
	SP_TFE_NODEPORT = 2, /* a node address and a NodePort */
	SP_TFE_NODE_NO_PORT = 3, /* a node address, no NodePort on the port */
};

enum sp_trace_ct {
	SP_TCT_MISS = 0,
	SP_TCT_HIT = 1,
	SP_TCT_EXPIRED = 2, /* found, past its deadline: treated as missing */
	SP_TCT_REOPEN = 3, /* found closing, and the packet is a SYN: a new flow */
};

enum sp_trace_pass {
	SP_TP_NODEPORT_NOT_NEW = 1, /* TCP non-SYN to a NodePort, no flow: a host socket's */
	SP_TP_EMPTY_TO_TC = 2, /* XDP leaves the reject of an empty Service to TC */
	SP_TP_SNAT_TO_TC = 3, /* XDP leaves an SNAT flow's packet to the uplink TC */
	SP_TP_NOT_TC_UPLINK = 4, /* the uplink TC handles only rejects and SNAT */
	SP_TP_REOPEN_REPLY = 5, /* a SYN on a closing flow's reply tuple: entry forgotten */
	SP_TP_NO_SERVICE = 6, /* not a frontend and not a reply we track */
	SP_TP_GONE_NOT_FLOW = 7, /* a deleted Service's frontend, no established flow */
};

enum sp_trace_snat {
	SP_TSN_NONE = 0,
	SP_TSN_SNAT = 1, /* outside client, external frontend, remote backend: SNAT */
	SP_TSN_DSR = 2, /* the same with --dsr: the DSR option instead */
	SP_TSN_DSR_FALLBACK = 3, /* --dsr, but the packet cannot carry the option */
	SP_TSN_SOURCE = 4, /* the SNAT source the FIB gave (addr) */
};

enum sp_trace_fwd {
	SP_TFW_STACK = 0, /* to the stack (a: FIB result if one was asked) */
	SP_TFW_REDIRECT = 1, /* bpf_redirect_neigh / XDP redirect to ifindex b */
	SP_TFW_LOCAL = 2, /* host to a local endpoint: to lo's ingress */
	SP_TFW_DSR = 3, /* XDP inserts the DSR option next */
	SP_TFW_PEER = 4, /* host routing: bpf_redirect_peer into pod veth b */
	SP_TFW_NOTE = 5, /* XDP passes it noted for host routing (lib/host_route.h) */
};

struct sp_trace_ev {
	__u16 step; /* enum sp_trace_step */
	__u8 x;
	__u8 y;
	__u32 a;
	__u32 b;
	__u32 c;
	struct sp_addr addr;
};

#define SP_TRACE_MAX 64 /* events kept per run (a power of two); more are counted lost */
struct sp_trace_buf {
	__u32 n; /* events written (may exceed SP_TRACE_MAX: the rest are lost) */
	__u32 pad;
	struct sp_trace_ev ev[SP_TRACE_MAX];
};

/*
 * `svcplane monitor` (user/monitor.c): datapath events in the ring buffer
 * sp_events, written only while the gate (struct sp_mon_gate, the
 * datapath's .bss) is open: the monitor opens it for a few seconds at a time
 * and keeps renewing it, so a killed monitor leaves the datapath silent.
 * Closed, an event site costs one load and a branch. Types are append-only.
 */
enum sp_mon_type {
	SP_MON_NEW_FLOW = 1, /* a new flow: svc_id, backend_id; the client's tuple */
	SP_MON_REJECT = 2, /* an answer for a Service without endpoints */
	SP_MON_DROP = 3, /* a drop with reason (enum sp_reason) */
	SP_MON_CT_LOST = 4, /* a live flow's other entry was gone (evicted); a client's packet restores it */
};

struct sp_mon_ev {
	__u64 ts; /* sp_now(): CLOCK_MONOTONIC_COARSE, ns */
	__u8 type; /* enum sp_mon_type */
	__u8 reason; /* enum sp_reason (SP_MON_DROP) */
	__u8 hook; /* enum sp_trace_hook */
	__u8 family;
	__u8 proto;
	__u8 tcp_flags;
	__u8 pad[2];
	__u32 svc_id;
	__u32 backend_id; /* SP_MON_NEW_FLOW, SP_MON_CT_LOST */
	struct sp_addr saddr, daddr; /* the packet as it arrived */
	__be16 sport, dport;
	__u32 pad2;
};

struct sp_mon_gate {
	__u64 until; /* events while sp_now() < until; 0: closed */
	__u32 rate; /* events a second at most (all CPUs together); 0: no limit */
	__u32 pad;
	__u64 last, credit; /* the rate's token bucket (ns-credits, 1e9 an event) */
	__u64 lost; /* events over the rate or not fitting the ring */
};
#define SP_MON_RING_SIZE (256 * 1024) /* bytes, a power of two */

/* Map names (also the pin file names under the pin directory). */
#define SP_MAP_SERVICES "sp_services"
#define SP_MAP_BACKENDS "sp_backends"
#define SP_MAP_MAGLEV "sp_maglev"
#define SP_MAP_CT4 "sp_ct4"
#define SP_MAP_CT6 "sp_ct6"
/* The single conntrack table of versions before sp_ct4/sp_ct6: its entries
 * are copied into those at start (user/dp.c), then it is unpinned. */
#define SP_MAP_CT_OLD "sp_ct"
/* sp_ct4 and sp_ct6 of the versions before their compact values (values
 * of SP_CT_VAL_V1_SIZE bytes), moved aside to these names at start so that
 * the load pins the new tables at theirs, then copied and unpinned as
 * SP_MAP_CT_OLD is (bpffs takes no dot in a name). */
#define SP_MAP_CT4_V1 "sp_ct4_v1"
#define SP_MAP_CT6_V1 "sp_ct6_v1"
#define SP_MAP_NODE_ADDRS "sp_node_addrs"
#define SP_MAP_STATS "sp_stats"
#define SP_MAP_REASONS "sp_reasons"
#define SP_MAP_SVC_STATS "sp_svc_stats"
#define SP_MAP_TX_PORTS "sp_tx_ports" /* not pinned: see bpf/maps.h */
#define SP_MAP_POD_IFACES "sp_pod_ifaces" /* not pinned: see bpf/maps.h */
#define SP_MAP_SVC_META "sp_svc_meta"
#define SP_MAP_AFFINITY "sp_affinity"
#define SP_MAP_SVC_BACKENDS "sp_svc_backends"
#define SP_MAP_SRC_RANGES "sp_src_ranges"
#define SP_MAP_EVENTS "sp_events"
#define SP_MAP_REPLY_SRCS "sp_reply_srcs"
#define SP_MAP_DST_FILTER "sp_dst_filter" /* not pinned: see bpf/maps.h */

#endif /* SVCPLANE_ABI_H */
