// SPDX-License-Identifier: Apache-2.0
/*
 * Programs of the packet-rate benchmark (scripts/tools/pktgen.c).
 *
 * pktgen_tx runs under BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES: each
 * run writes the Ethernet/IPv4/UDP headers from `hdr` (pages come back from
 * the stack rewritten: forwarding changes the MACs and the TTL), gives the
 * frame a source port from a counter (one of `nflows` flows) and returns
 * XDP_TX, which the kernel turns into a transmission on the
 * ingress device given in the context (the client's veth), so the frame
 * arrives at the node's uplink.
 *
 * sink_count sits where the packets end up: it counts and drops IPv4 UDP/TCP
 * packets to `sink_port` (or every IPv4 packet when sink_port is 0) and passes
 * everything else (ARP, ...); sink_count_tc does the same at TC ingress. node_pass is an XDP_PASS program for the node's
 * uplink in the iptables/nftables runs: a veth receives XDP frames from its
 * peer only when it has an XDP program (or GRO) enabled. node_redirect
 * (pktgen --pass-redirect) redirects every frame to one device, rewriting
 * nothing: the most any XDP forwarder can get through this path, the
 * ceiling against which svcplane's --xdp-redirect is measured.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct sink_count {
	__u64 packets;
	__u64 bytes;
	__u64 passed; /* not matching: handed on */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sink_count);
} sink_counts SEC(".maps");

#define PKTGEN_HDR_LEN 42 /* Ethernet + IPv4 without options + UDP */
unsigned char hdr[PKTGEN_HDR_LEN]; /* set by user space before load */
__u32 nflows = 1; /* pktgen_tx: distinct source ports to cycle over */
__u64 tx_seq;
const volatile __u16 sink_port; /* host order; 0 = any IPv4 */
__u32 redirect_ifindex; /* node_redirect's target, set after load */

SEC("xdp")
int pktgen_tx(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	__u32 n = nflows ? nflows : 1;

	if (bpf_xdp_store_bytes(ctx, 0, hdr, PKTGEN_HDR_LEN))
		return XDP_ABORTED;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	ip = (void *)(eth + 1);
	udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > data_end)
		return XDP_ABORTED;
	/* UDP checksum is 0 (none) in the template, so no fix-up needed. */
	udp->source = bpf_htons((__u16)(10000 + tx_seq++ % n));
	return XDP_TX;
}

/* Count a packet the sink takes (true: drop it) or one it hands on. */
static __always_inline bool sink_take(void *data, void *data_end)
{
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *l4;
	struct sink_count *c;
	__u32 k = 0;

	c = bpf_map_lookup_elem(&sink_counts, &k);
	if (!c)
		return false;
	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		goto pass;
	if (sink_port) {
		if (ip->protocol != IPPROTO_UDP && ip->protocol != IPPROTO_TCP)
			goto pass;
		l4 = (void *)ip + ip->ihl * 4;
		if ((void *)(l4 + 1) > data_end || l4->dest != bpf_htons(sink_port))
			goto pass;
	}
	c->packets++;
	c->bytes += data_end - data;
	return true;
pass:
	c->passed++;
	return false;
}

SEC("xdp")
int sink_count(struct xdp_md *ctx)
{
	return sink_take((void *)(long)ctx->data, (void *)(long)ctx->data_end) ? XDP_DROP :
										   XDP_PASS;
}

/* The same at TC ingress (pktgen --sink-tc): a packet handed to the device
 * with bpf_redirect_peer (host routing) never meets the veth's XDP program,
 * only the device's ingress hook. 64-byte frames sit in the linear area. */
SEC("tc")
int sink_count_tc(struct __sk_buff *skb)
{
	return sink_take((void *)(long)skb->data, (void *)(long)skb->data_end) ? TC_ACT_SHOT :
										     TC_ACT_OK;
}

SEC("xdp")
int node_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("xdp")
int node_redirect(struct xdp_md *ctx)
{
	return bpf_redirect(redirect_ifindex, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
