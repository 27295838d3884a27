/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every map of the datapath, in one place. User space (user/maps.c) writes
 * all of them except conntrack (sp_ct4, sp_ct6) and the stats, which only
 * the datapath writes.
 * Sizes are defaults from include/svcplane.h; the daemon resizes them with
 * bpf_map__set_max_entries() before load (--max-services, --ct-size, ...).
 * All are pinned by name (LIBBPF_PIN_BY_NAME) so they outlive the daemon.
 */
#ifndef SP_MAPS_H
#define SP_MAPS_H

#include "svcplane.h"

/* Frontends: (VIP, port, proto) -> Service port. Written by the daemon. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SP_MAX_FRONTENDS);
	__type(key, struct sp_svc_key);
	__type(value, struct sp_svc);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sp_services SEC(".maps");

/* Backend id -> endpoint address:port. Written by the daemon. An array
 * indexed by the id (1 .. --max-backends; 0 is never used): a lookup is an
 * inlined bounds check, not a hash, and the daemon writes a first apply's
 * 100,000 backends through a mapping instead of as many hash inserts. An
 * entry whose family is 0 holds no backend (never written, or removed). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SP_MAX_BACKENDS + 1);
	__type(key, __u32);
	__type(value, struct sp_backend);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sp_backends SEC(".maps");

/* Maglev regions (see SP_MAGLEV_CHUNK_WORDS). Written by the daemon only
 * into regions no sp_svc points at yet. Mmapable so that the daemon copies
 * whole tables in (user/sync.c wbatch_write_mmap: the first apply of 10,000
 * Services writes 20 MB); lookups are inlined as for any array. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SP_MAGLEV_CHUNKS);
	__type(key, __u32);
	__type(value, struct sp_maglev_chunk);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sp_maglev SEC(".maps");

/* Connection tracking, both directions of every NATed flow, one table per
 * address family (include/svcplane.h; lib/ct.h picks the table). Written
 * by the datapath; LRU so a full table evicts the oldest instead of
 * failing. max_entries set to --ct-size and --ct-size-v6 at load. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SP_CT_MAX);
	__type(key, struct sp_ct4_key);
	__type(value, struct sp_ct4_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sp_ct4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SP_CT6_MAX);
	__type(key, struct sp_ct_key);
	__type(value, struct sp_ct_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sp_ct6 SEC(".maps");

/*
 * Every address a reply may come from: the source of the key of some REV
 * entry in conntrack (a backend, or a pod that got a DSR packet). A packet to
 * no frontend from any other address is no reply of ours and skips the
 * reply's conntrack lookup: traffic between pods that are no backends,
 * host traffic and the like pay a Bloom filter test instead. The filter
 * answers "maybe" or "certainly not" and takes no deletions: addresses
 * stay after their flows end, and past SP_REPLY_SRC_MAX of them its false
 * positives grow, which costs only that lookup. Value: struct sp_addr (an
 * IPv4 address in addr[0], the rest zero). Written by the datapath before
 * it inserts a REV entry (lib/ct.h), and by the daemon once, from
 * conntrack, when it finds conntrack pinned but not this map (an upgrade:
 * user/dp.c).
 * Pinned: it must outlive the daemon as conntrack does.
 */
struct {
	__uint(type, BPF_MAP_TYPE_BLOOM_FILTER);
	__uint(max_entries, SP_REPLY_SRC_MAX);
	__type(value, struct sp_addr);
	__uint(map_extra, SP_REPLY_SRC_HASHES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sp_reply_srcs SEC(".maps");

/* sessionAffinity: ClientIP: the backend of a client's last new flow per
 * Service port. Written by the datapath; LRU, so a full table forgets the
 * least recently used clients (they get a Maglev pick). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SP_AFFINITY_MAX);
	__type(key, struct sp_aff_key);
	__type(value, struct sp_aff_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sp_affinity SEC(".maps");

/* Which backends belong to an affinity Service's current table, so a
 * remembered backend is checked in O(1). Written by the daemon (entries
 * added before a table switch, removed after). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SP_MAX_SVC_BACKENDS);
	__type(key, struct sp_svc_be_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sp_svc_backends SEC(".maps");

/* loadBalancerSourceRanges: (svc_id, family, CIDR) of every Service port
 * that has ranges of the family (struct sp_src_range_key). Read only for
 * frontends flagged SP_SVC_F_SRC_RANGES. Written by the daemon: a Service's
 * new ranges are added before its frontends are switched and the old ones
 * removed after. SP_MAX_SRC_RANGES entries, allocated as used. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SP_MAX_SRC_RANGES);
	__type(key, struct sp_src_range_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sp_src_ranges SEC(".maps");

/* The first test of "for a Service at all?" (include/svcplane.h). One
 * element, the whole bitmap, so a lookup of key 0 is inlined by the
 * verifier. Not pinned: the daemon fills a new one from sp_services and
 * sp_node_addrs at every start, before its programs are attached (an older
 * version's programs keep theirs). Mmapable: the daemon sets bits in
 * place. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sp_dst_filter);
	__uint(map_flags, BPF_F_MMAPABLE);
} sp_dst_filter SEC(".maps");

/* Addresses of this node: NodePorts are served on these. Written by the daemon. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SP_MAX_NODE_ADDRS);
	__type(key, struct sp_node_addr_key);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sp_node_addrs SEC(".maps");

/* Devices XDP may redirect to after a FIB lookup; others get XDP_PASS.
 * Written by the daemon (--xdp-redirect) at every start, so not pinned:
 * the kernel adds BPF_F_RDONLY_PROG to every devmap it creates (and
 * refuses that flag from user space), so a pinned one never matches its
 * declaration and libbpf 1.1 would refuse to reuse it after a restart. A
 * running program keeps its own instance alive until it is replaced. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, SP_MAX_TX_PORTS);
	__type(key, __u32);
	__type(value, __u32);
} sp_tx_ports SEC(".maps");

/* Host-side pod veths (ifindex -> 1) the daemon attached to: the only
 * devices host routing hands packets to with bpf_redirect_peer
 * (lib/host_route.h). Written by the daemon as it attaches and sees links
 * go; not pinned: a restarted daemon fills its own at start, and until its
 * programs replace the old ones those keep theirs. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SP_MAX_POD_IFACES);
	__type(key, __u32);
	__type(value, __u8);
} sp_pod_ifaces SEC(".maps");

/* Counters: one struct sp_stats per CPU for each hook (enum sp_stats_slot). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SP_SLOTS);
	__type(key, __u32);
	__type(value, struct sp_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sp_stats SEC(".maps");

/* Drop / pass-without-NAT counters by enum sp_reason. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SP_R_MAX);
	__type(key, __u32);
	__type(value, struct sp_reason_count);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sp_reasons SEC(".maps");

/*
 * Which svc_ids are allocated (value 1) by the daemon's sync: a Service
 * port's, or a deleted one's held for its retained frontends (user/sync.c).
 * An established TCP packet whose conntrack entry names a live svc_id is
 * served from the entry without the Service lookup (the pipeline's
 * conntrack-first path); any other goes through sp_services. Not pinned:
 * filled at every start from the recovered state before the programs are
 * attached, as sp_dst_filter. Mmapable: the sync's batches write it in
 * place. max_entries set to --max-services at load.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SP_MAX_SVC_IDS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(map_flags, BPF_F_MMAPABLE);
} sp_svc_live SEC(".maps");

/* Per Service port counters by svc_id. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SP_MAX_SVC_IDS);
	__type(key, __u32);
	__type(value, struct sp_svc_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sp_svc_stats SEC(".maps");

/* svc_id -> name and table shape, for the CLI and for daemon restarts.
 * Written by the daemon; never read by the datapath. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SP_MAX_SVC_IDS);
	__type(key, __u32);
	__type(value, struct sp_svc_meta);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sp_svc_meta SEC(".maps");

/*
 * Fragments: the NAT a datagram's first fragment got, for its later
 * fragments (which carry no ports to find their flow by), keyed by what
 * the fragments carry: addresses, protocol and IP id as they arrive.
 * Written and read by the datapath only; LRU, and an entry lives
 * SP_FRAG_TIMEOUT_NS (Linux's ipfrag_time), so a lost fragment costs
 * nothing. Not pinned: a datagram in flight across a restart loses its
 * later fragments, as it would across a reassembly timeout.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SP_FRAG_MAX);
	__type(key, struct sp_frag_key);
	__type(value, struct sp_frag_val);
} sp_frags SEC(".maps");

/* The rate limit of reject answers (lib/reject.h), one bucket per CPU.
 * Datapath only; not pinned. */
struct sp_reject_bucket {
	__u64 last; /* sp_now() of the last update */
	__u64 credit; /* ns-credits: 1e9 per answer */
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sp_reject_bucket);
} sp_reject_rl SEC(".maps");

/* Per-CPU scratch space for building reject replies: too big for the
 * 512-byte BPF stack. Datapath only; not pinned (nothing to keep). */
#define SP_SCRATCH_LEN 256
struct sp_scratch {
	__u8 b[SP_SCRATCH_LEN];
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sp_scratch);
} sp_scratch SEC(".maps");

/* `svcplane monitor`: events for user space, written only while the gate
 * below is open (lib/monitor.h). Pinned, so the monitor finds it. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, SP_MON_RING_SIZE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sp_events SEC(".maps");

/* The monitor's gate, in the .bss every program of the object shares:
 * written by `svcplane monitor` (user/monitor.c) through the map of the
 * running programs' .bss, read at each event site without a map lookup. */
struct sp_mon_gate sp_monitor;

#ifdef SP_DRYRUN
/* `svcplane trace` only (bpf/lib/trace.h): the decisions of one run, in the
 * dry-run object's own .bss. user/trace.c zeroes n before each run and
 * reads the events after it. */
struct sp_trace_buf sp_trace_buf;
#endif

#endif /* SP_MAPS_H */
