/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Rewriting addresses and ports with incremental checksum updates.
 *
 * XDP writes through packet pointers and updates checksums itself with
 * bpf_csum_diff (RFC 1624: HC' = ~(~HC + ~m + m')). TC uses the skb helpers
 * because an skb may be CHECKSUM_PARTIAL (host-originated, or sent by a pod
 * over a veth): its L4 checksum field then holds only the pseudo-header
 * sum, and bpf_l4_csum_replace(BPF_F_PSEUDO_HDR) updates it the right way
 * while a plain incremental update would corrupt it. XDP cannot see that
 * state, which is why pod veths get the TC program (see README, Limits).
 */
#ifndef SP_LIB_NAT_H
#define SP_LIB_NAT_H

#include "common.h"
#include "parse.h"

#define CSUM_MANGLED_0 ((__sum16)0xffff)

static __always_inline __u16 csum_fold32(__u32 c)
{
	c = (c & 0xffff) + (c >> 16);
	c = (c & 0xffff) + (c >> 16);
	return (__u16)~c;
}

/*
 * XDP: apply the difference between from[] and to[] (len bytes, a multiple
 * of 4, at most 16) to the checksum field at *sum, RFC 1624's
 * HC' = ~(~HC + ~m + m'), folded inline: cheaper than a bpf_csum_diff call
 * for the 4 and 16 bytes we rewrite.
 */
static __always_inline void csum_apply(__sum16 *sum, const __be32 *from, const __be32 *to,
				       __u32 len)
{
	__u64 acc = (__u16)~*sum;
	__u32 i;

	for (i = 0; i < 4; i++) {
		if (i * 4 >= len)
			break;
		acc += (__u32)~from[i];
		acc += to[i];
	}
	acc = (acc & 0xffffffff) + (acc >> 32);
	acc = (acc & 0xffffffff) + (acc >> 32);
	*sum = csum_fold32((__u32)acc);
}

/*
 * Replace the address of len bytes (4 or 16, a constant) at ap with *to,
 * adjusting up to three checksums that cover it (NULL: none). Through a
 * packet pointer, for packets whose checksums are complete (ICMP errors,
 * fragments): both XDP and TC.
 */
static __always_inline void put_addr_csum(__u8 *ap, const struct sp_addr *to, __u32 len,
					  __sum16 *s1, __sum16 *s2, __sum16 *s3)
{
	struct sp_addr old;

	__builtin_memset(&old, 0, sizeof(old));
	if (len == 4)
		__builtin_memcpy(&old, ap, 4);
	else
		__builtin_memcpy(&old, ap, 16);
	if (s1)
		csum_apply(s1, old.addr, to->addr, len);
	if (s2)
		csum_apply(s2, old.addr, to->addr, len);
	if (s3)
		csum_apply(s3, old.addr, to->addr, len);
	if (len == 4)
		__builtin_memcpy(ap, to, 4);
	else
		__builtin_memcpy(ap, to, 16);
}

/*
 * Rewrite the source (is_dst false) or destination address of the packet to
 * *addr, with IP and L4 checksums. Returns 0 or -1 (counted by the caller).
 */
static __always_inline int nat_addr(void *ctx, const int hook, struct sp_pkt *p, bool is_dst,
				    const struct sp_addr *addr)
{
	__u32 aoff;
	struct sp_addr old = is_dst ? p->daddr : p->saddr;
	bool udp = p->proto == IPPROTO_UDP;

	if (p->family == SP_FAMILY_V4)
		aoff = p->l3_off + (is_dst ? offsetof(struct iphdr, daddr) : offsetof(struct iphdr, saddr));
	else
		aoff = p->l3_off +
		       (is_dst ? offsetof(struct ipv6hdr, daddr) : offsetof(struct ipv6hdr, saddr));

	if (is_tc(hook)) {
		struct __sk_buff *skb = ctx;
		__u64 l4flags = BPF_F_PSEUDO_HDR | (udp ? BPF_F_MARK_MANGLED_0 : 0);

		if (p->family == SP_FAMILY_V4) {
			if (bpf_l4_csum_replace(skb, p->csum_off, old.addr[0], addr->addr[0],
						l4flags | 4))
				return -1;
			if (bpf_l3_csum_replace(skb, p->l3_off + offsetof(struct iphdr, check),
						old.addr[0], addr->addr[0], 4))
				return -1;
			return bpf_skb_store_bytes(skb, aoff, &addr->addr[0], 4, 0) ? -1 : 0;
		}
		__s64 diff = bpf_csum_diff(old.addr, 16, (__be32 *)addr->addr, 16, 0);

		if (bpf_l4_csum_replace(skb, p->csum_off, 0, diff, l4flags))
			return -1;
		return bpf_skb_store_bytes(skb, aoff, addr->addr, 16, 0) ? -1 : 0;
	}

	void *data = ctx_data(ctx, hook);
	void *data_end = ctx_data_end(ctx, hook);
	__sum16 *l4sum;
	__u8 *ap;

	if (aoff > SP_MAX_L4_OFF || p->csum_off > SP_MAX_L4_OFF)
		return -1;
	l4sum = data + off_bound(p->csum_off);
	if ((void *)(l4sum + 1) > data_end)
		return -1;
	ap = data + off_bound(aoff);
	/* Each family checks exactly the bytes it writes: a 42-byte UDP
	 * frame has its 4-byte IPv4 address in bounds, not 16 bytes from it. */
	if (p->family == SP_FAMILY_V4) {
		struct iphdr *iph = data + off_bound(p->l3_off);

		if ((void *)(ap + 4) > data_end || (void *)(iph + 1) > data_end)
			return -1;
		/* UDP over IPv4 may carry no checksum (0): leave it so. */
		if (!(udp && *l4sum == 0)) {
			csum_apply(l4sum, old.addr, (__be32 *)addr->addr, 4);
			if (udp && *l4sum == 0)
				*l4sum = CSUM_MANGLED_0;
		}
		csum_apply(&iph->check, old.addr, (__be32 *)addr->addr, 4);
		*(__be32 *)ap = addr->addr[0];
		return 0;
	}
	if ((void *)(ap + 16) > data_end)
		return -1;
	csum_apply(l4sum, old.addr, (__be32 *)addr->addr, 16);
	if (udp && *l4sum == 0)
		*l4sum = CSUM_MANGLED_0;
	__builtin_memcpy(ap, addr->addr, 16);
	return 0;
}

/* Rewrite the source or destination port. Returns 0 or -1. */
static __always_inline int nat_port(void *ctx, const int hook, struct sp_pkt *p, bool is_dst,
				    __be16 port)
{
	__be16 old = is_dst ? p->dport : p->sport;
	__u32 poff = p->l4_off + (is_dst ? 2 : 0); /* dest/source offsets are equal in TCP and UDP */
	bool udp = p->proto == IPPROTO_UDP;

	if (old == port)
		return 0;
	if (is_tc(hook)) {
		struct __sk_buff *skb = ctx;

		if (bpf_l4_csum_replace(skb, p->csum_off, old, port,
					(udp ? BPF_F_MARK_MANGLED_0 : 0) | 2))
			return -1;
		return bpf_skb_store_bytes(skb, poff, &port, 2, 0) ? -1 : 0;
	}

	void *data = ctx_data(ctx, hook);
	void *data_end = ctx_data_end(ctx, hook);
	__sum16 *l4sum;
	__be16 *pp;
	__be32 from = old, to = port;

	if (poff > SP_MAX_L4_OFF || p->csum_off > SP_MAX_L4_OFF)
		return -1;
	pp = data + off_bound(poff);
	l4sum = data + off_bound(p->csum_off);
	if ((void *)(pp + 1) > data_end || (void *)(l4sum + 1) > data_end)
		return -1;
	if (!(udp && p->family == SP_FAMILY_V4 && *l4sum == 0)) {
		csum_apply(l4sum, &from, &to, 4);
		if (udp && *l4sum == 0)
			*l4sum = CSUM_MANGLED_0;
	}
	*pp = port;
	return 0;
}

#endif /* SP_LIB_NAT_H */
