/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Includes, return conventions and the hook abstraction every library
 * header shares.
 *
 * Return convention: a stage returns a final verdict (>= 0, one of SP_V_*)
 * or SP_CONTINUE (-1). Entry points translate SP_V_* into XDP_* / TC_ACT_*.
 *
 * Hook abstraction: code shared by XDP and TC takes (void *ctx, const int
 * hook). Functions are __always_inline and hook is a compile-time constant
 * at every call site, so clang folds the branches and each program only
 * carries its own side (the same idea as Cilium's __ctx_buff, without a
 * second compilation of the sources).
 */
#ifndef SP_LIB_COMMON_H
#define SP_LIB_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "svcplane.h"

/* From linux/icmp.h and linux/icmpv6.h, which pull in libc headers that
 * do not build for -target bpf. */
#define ICMP_DEST_UNREACH 3
#define ICMP_PORT_UNREACH 3
#define ICMPV6_DEST_UNREACH 1
#define ICMPV6_PORT_UNREACH 4
struct icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be32 un;
};
struct icmp6hdr {
	__u8 icmp6_type;
	__u8 icmp6_code;
	__sum16 icmp6_cksum;
	__be32 un;
};

#define SP_CONTINUE (-1)
enum sp_verdict {
	SP_V_PASS = 0, /* hand to the stack (possibly rewritten) */
	SP_V_DROP = 1,
	SP_V_REDIRECT = 2, /* bpf_redirect*() already called; its return value stands */
	SP_V_NOT_OURS = 3, /* parsed fine, not TCP/UDP over IP: passed (counted not_service) */
	/* XDP only: DNAT done, now insert the DSR option (sp_dsr_xdp). Far
	 * from every XDP_*, TC_ACT_* and redirect helper's return value. */
	SP_V_DSR = 64,
};

enum sp_hook {
	HOOK_XDP = 0,
	HOOK_TC_INGRESS = 1,
	HOOK_TC_EGRESS = 2,
};

#define is_tc(hook) ((hook) != HOOK_XDP)

/* Bounds for every loop and every variable offset (verifier needs both). */
#ifndef SP_MAX_IPV6_EXT_HDRS
#define SP_MAX_IPV6_EXT_HDRS 6 /* extension headers walked before giving up */
#endif
#define SP_MAX_L4_OFF 512 /* no header we rewrite lies beyond this offset */
#define SP_OFF_MASK 1023 /* covers every offset <= SP_MAX_L4_OFF + a TCP header */

/*
 * Bound a packet offset for the verifier. After parsing, the pipeline runs
 * in a global function where the offsets in struct sp_pkt are unknown
 * scalars; a pointer built from one needs a bounded range before it can
 * be checked against data_end. The mask is done in asm because clang
 * otherwise drops it after a range check on a copy and adds the unmasked
 * register to the packet pointer. It never changes an offset the parser
 * produced (all <= SP_MAX_L4_OFF + 20).
 */
static __always_inline __u32 off_bound(__u32 off)
{
	asm volatile("%[o] &= %[m]" : [o] "+r"(off) : [m] "i"(SP_OFF_MASK));
	return off;
}

static __always_inline void *ctx_data(void *ctx, const int hook)
{
	if (is_tc(hook))
		return (void *)(long)((struct __sk_buff *)ctx)->data;
	return (void *)(long)((struct xdp_md *)ctx)->data;
}

static __always_inline void *ctx_data_end(void *ctx, const int hook)
{
	if (is_tc(hook))
		return (void *)(long)((struct __sk_buff *)ctx)->data_end;
	return (void *)(long)((struct xdp_md *)ctx)->data_end;
}

static __always_inline __u32 ctx_len(void *ctx, const int hook)
{
	if (is_tc(hook))
		return ((struct __sk_buff *)ctx)->len;
	return ctx_data_end(ctx, hook) - ctx_data(ctx, hook);
}

static __always_inline __u32 ctx_ifindex(void *ctx, const int hook)
{
	if (is_tc(hook))
		return ((struct __sk_buff *)ctx)->ifindex;
	return ((struct xdp_md *)ctx)->ingress_ifindex;
}

/* Header bytes TC wants in the skb's linear area before parsing (Ethernet,
 * IP with options or extension headers, TCP/UDP). */
#define SP_PULL_LEN 256

/* Make the headers directly readable: an skb may carry them in fragments. */
static __always_inline void tc_pull_headers(struct __sk_buff *skb)
{
	__u32 want = skb->len < SP_PULL_LEN ? skb->len : SP_PULL_LEN;

	if (skb->data_end - skb->data < want)
		bpf_skb_pull_data(skb, want);
}

/*
 * The clock of conntrack and affinity deadlines: CLOCK_MONOTONIC_COARSE
 * (bpf_ktime_get_coarse_ns, Linux 5.11). Deadlines are seconds long, so a
 * tick of resolution costs nothing, and the coarse read is several times
 * cheaper than bpf_ktime_get_ns on the per-packet path. User space (the
 * collector, the CLI) compares with CLOCK_MONOTONIC, which is never
 * behind it: the collector allows a second of grace.
 */
static __always_inline __u64 sp_now(void)
{
	return bpf_ktime_get_coarse_ns();
}

static __always_inline bool addr_eq(const struct sp_addr *a, const struct sp_addr *b)
{
	return a->addr[0] == b->addr[0] && a->addr[1] == b->addr[1] &&
	       a->addr[2] == b->addr[2] && a->addr[3] == b->addr[3];
}

#endif /* SP_LIB_COMMON_H */
