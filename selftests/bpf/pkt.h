/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Packet builders and checksum verifiers for the datapath tests and the
 * benchmarks (user space only).
 *
 * A frame is described by a struct pkt_spec in host order (addresses as
 * strings, ports and sequence numbers as plain integers); pkt_build() turns
 * it into bytes in wire order and computes every checksum from scratch.
 * The expected output of a NAT is built the same way from the spec with
 * the rewritten addresses and ports, so it never shares an incremental
 * update with the code under test. pkt_csums_ok() recomputes every
 * checksum of any frame from scratch and says which one is wrong.
 *
 * Everything is static inline so a test or a benchmark includes this one
 * header and nothing else.
 */
#ifndef SP_SELFTEST_PKT_H
#define SP_SELFTEST_PKT_H

/* netinet/in.h before the linux/ headers: it tells linux/libc-compat.h
 * not to define struct in6_addr a second time. */
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#define PKT_MAX 2048 /* largest frame the helpers build */
#define PKT_EXT_MAX 16 /* IPv6 extension headers in one spec */

/* TCP flag bits (byte 13 of the header). */
#define PKT_FIN 0x01
#define PKT_SYN 0x02
#define PKT_RST 0x04
#define PKT_PSH 0x08
#define PKT_ACK 0x10

/* IPv4 fragment bits (host order). */
#define PKT_IP_DF 0x4000
#define PKT_IP_MF 0x2000
#define PKT_IP_OFFMASK 0x1fff

#define PKT_ICMP_DEST_UNREACH 3
#define PKT_ICMP_PORT_UNREACH 3
#define PKT_ICMPV6_DEST_UNREACH 1
#define PKT_ICMPV6_PORT_UNREACH 4

enum pkt_frag {
	PKT_FRAG_NONE = 0,
	PKT_FRAG_FIRST, /* offset 0, MF set: carries the L4 header */
	PKT_FRAG_LATER, /* offset > 0: no L4 header */
	PKT_FRAG_ATOMIC, /* IPv6 only: fragment header with offset 0 and M clear */
};

struct pkt {
	uint32_t len;
	uint8_t data[PKT_MAX];
};

/*
 * What to build. Zero is a sensible default for every field except
 * family, proto and the addresses.
 */
struct pkt_spec {
	uint8_t family; /* 4 or 6 */
	uint8_t proto; /* IPPROTO_TCP or IPPROTO_UDP (anything else: payload only) */
	const char *saddr, *daddr; /* textual addresses */
	uint16_t sport, dport; /* host order */
	/* TCP */
	uint8_t tcp_flags; /* PKT_SYN | ... */
	uint32_t seq, ack;
	uint16_t win;
	uint8_t tcp_optlen; /* bytes of TCP options: MSS then NOPs (multiple of 4, <= 40) */
	/* payload: payload_len bytes of a pattern seeded by payload_seed */
	uint16_t payload_len;
	uint8_t payload_seed;
	/* IP */
	uint8_t ttl; /* 0: 64 (also the IPv6 hop limit) */
	uint8_t tos; /* IPv4 TOS / IPv6 traffic class */
	uint16_t ip_id;
	bool df;
	uint8_t ip_optlen; /* IPv4 options: Router Alert then NOPs (multiple of 4, <= 40) */
	bool ihl_set; /* write ihl instead of the right IHL (malformed-header tests) */
	uint8_t version; /* non-zero: write this IP version instead of the family's */
	uint8_t ihl;
	/* IPv6 extension headers in order: IPPROTO_HOPOPTS (which is 0, hence
	 * the count), IPPROTO_DSTOPTS, IPPROTO_ROUTING */
	uint8_t n_ext;
	uint8_t ext[PKT_EXT_MAX];
	/* fragments (IPv6: a fragment header after the ext[] headers) */
	uint8_t frag; /* enum pkt_frag */
	uint16_t frag_bytes; /* FIRST/LATER: bytes of the L4 datagram this fragment carries */
	uint16_t frag_off8; /* LATER: fragment offset in 8-byte units */
	bool frag_more; /* LATER: MF / M set */
	uint32_t frag_id;
	bool udp_csum_zero; /* IPv4 UDP sent without a checksum */
	/* L2 */
	uint16_t ethertype; /* non-zero: override */
	const uint8_t *smac, *dmac; /* NULL: PKT_SMAC / PKT_DMAC */
	uint32_t trunc; /* non-zero: cut the frame to this many bytes */
};

static const uint8_t PKT_SMAC[ETH_ALEN] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 };
static const uint8_t PKT_DMAC[ETH_ALEN] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x02 };

/* ---- checksums ---- */

/* Add len bytes as big-endian 16-bit words to a 32-bit ones' complement accumulator. */
static inline uint32_t pkt_sum16(uint32_t sum, const void *buf, size_t len)
{
	const uint8_t *b = buf;
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)b[i] << 8 | b[i + 1];
	if (len & 1)
		sum += (uint32_t)b[len - 1] << 8;
	return sum;
}

static inline uint16_t pkt_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* Pseudo-header sum (RFC 768/793 for IPv4, RFC 8200 8.1 for IPv6). */
static inline uint32_t pkt_pseudo_sum(int family, const void *saddr, const void *daddr,
				      uint8_t proto, uint32_t len)
{
	size_t alen = family == 4 ? 4 : 16;
	uint32_t sum = 0;

	sum = pkt_sum16(sum, saddr, alen);
	sum = pkt_sum16(sum, daddr, alen);
	sum += proto;
	sum += len >> 16;
	sum += len & 0xffff;
	return sum;
}

static inline void pkt_put16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v & 0xff;
}

static inline void pkt_put32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static inline uint16_t pkt_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t pkt_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Parse a textual address of the given family into 4 or 16 bytes. */
static inline bool pkt_addr(int family, const char *s, uint8_t *out)
{
	return s && inet_pton(family == 4 ? AF_INET : AF_INET6, s, out) == 1;
}

/* ---- builders ---- */

/* The L4 datagram (header + payload) with its checksum over the pseudo-header. */
static inline int pkt_build_l4(const struct pkt_spec *s, const uint8_t *sa, const uint8_t *da,
			       uint8_t *l4, uint32_t *l4len)
{
	uint32_t hl = 0, i, n;

	if (s->proto == IPPROTO_TCP) {
		if (s->tcp_optlen % 4 || s->tcp_optlen > 40)
			return -1;
		hl = 20 + s->tcp_optlen;
		memset(l4, 0, hl);
		pkt_put16(l4, s->sport);
		pkt_put16(l4 + 2, s->dport);
		pkt_put32(l4 + 4, s->seq);
		pkt_put32(l4 + 8, s->ack);
		l4[12] = (uint8_t)((hl / 4) << 4);
		l4[13] = s->tcp_flags;
		pkt_put16(l4 + 14, s->win);
		if (s->tcp_optlen) {
			memset(l4 + 20, 1, s->tcp_optlen); /* NOPs */
			l4[20] = 2; /* MSS 1460 */
			l4[21] = 4;
			pkt_put16(l4 + 22, 1460);
		}
	} else if (s->proto == IPPROTO_UDP) {
		hl = 8;
		memset(l4, 0, hl);
		pkt_put16(l4, s->sport);
		pkt_put16(l4 + 2, s->dport);
	}
	n = hl + s->payload_len;
	if (n > PKT_MAX - 200)
		return -1;
	for (i = 0; i < s->payload_len; i++)
		l4[hl + i] = (uint8_t)(s->payload_seed + i * 7 + 1);

	if (s->proto == IPPROTO_TCP) {
		uint32_t sum = pkt_pseudo_sum(s->family, sa, da, IPPROTO_TCP, n);

		pkt_put16(l4 + 16, (uint16_t)~pkt_fold(pkt_sum16(sum, l4, n)));
	} else if (s->proto == IPPROTO_UDP) {
		pkt_put16(l4 + 4, (uint16_t)n);
		if (!(s->udp_csum_zero && s->family == 4)) {
			uint32_t sum = pkt_pseudo_sum(s->family, sa, da, IPPROTO_UDP, n);
			uint16_t c = (uint16_t)~pkt_fold(pkt_sum16(sum, l4, n));

			pkt_put16(l4 + 6, c ? c : 0xffff);
		}
	}
	*l4len = n;
	return 0;
}

/* One IPv6 extension header of type t at p, followed by nh. Returns its length. */
static inline uint32_t pkt_put_ext(uint8_t *p, uint8_t t, uint8_t nh)
{
	if (t == IPPROTO_DSTOPTS) {
		/* 16 bytes (hdr ext len 1): PadN of 12 bytes */
		memset(p, 0, 16);
		p[0] = nh;
		p[1] = 1;
		p[2] = 1; /* PadN */
		p[3] = 12;
		return 16;
	}
	memset(p, 0, 8);
	p[0] = nh;
	p[1] = 0;
	if (t == IPPROTO_ROUTING) {
		p[2] = 0; /* type 0, segments left 0: processed as if absent */
		p[3] = 0;
	} else { /* hop-by-hop: PadN of 4 bytes */
		p[2] = 1;
		p[3] = 4;
	}
	return 8;
}

/*
 * Build the frame described by s into p. Returns 0, or -1 for a spec it
 * cannot build (bad address, sizes).
 */
static inline int pkt_build(const struct pkt_spec *s, struct pkt *p)
{
	uint8_t sa[16], da[16], l4[PKT_MAX];
	uint32_t l4len = 0, off, data_len, data_off = 0, i, next;
	uint8_t *d = p->data;

	memset(p, 0, sizeof(*p));
	if ((s->family != 4 && s->family != 6) || !pkt_addr(s->family, s->saddr, sa) ||
	    !pkt_addr(s->family, s->daddr, da))
		return -1;
	if (pkt_build_l4(s, sa, da, l4, &l4len))
		return -1;

	/* Which part of the L4 datagram this frame carries. */
	data_len = l4len;
	if (s->frag == PKT_FRAG_FIRST || s->frag == PKT_FRAG_LATER) {
		if (!s->frag_bytes || s->frag_bytes > l4len)
			return -1;
		if (s->frag == PKT_FRAG_FIRST && s->frag_bytes % 8)
			return -1;
		data_len = s->frag_bytes;
		/* A later fragment carries bytes from the middle of the
		 * datagram; we reuse its first bytes, so the fragment starts
		 * with what looks like a TCP/UDP header to the Service: a
		 * datapath that parses it anyway gets caught. */
	}

	memcpy(d, s->dmac ? s->dmac : PKT_DMAC, ETH_ALEN);
	memcpy(d + 6, s->smac ? s->smac : PKT_SMAC, ETH_ALEN);
	pkt_put16(d + 12, s->ethertype ? s->ethertype : (s->family == 4 ? ETH_P_IP : ETH_P_IPV6));
	off = ETH_HLEN;

	if (s->family == 4) {
		uint32_t hl = 20 + s->ip_optlen;
		uint16_t fo = s->df ? PKT_IP_DF : 0;

		if (s->ip_optlen % 4 || s->ip_optlen > 40 || s->frag == PKT_FRAG_ATOMIC)
			return -1;
		if (s->frag == PKT_FRAG_FIRST)
			fo |= PKT_IP_MF;
		if (s->frag == PKT_FRAG_LATER)
			fo |= (s->frag_off8 & PKT_IP_OFFMASK) | (s->frag_more ? PKT_IP_MF : 0);
		memset(d + off, 0, hl);
		d[off] = (uint8_t)(((s->version ? s->version : 4) << 4) |
				   ((s->ihl_set ? s->ihl : hl / 4) & 0xf));
		d[off + 1] = s->tos;
		pkt_put16(d + off + 2, (uint16_t)(hl + data_len));
		pkt_put16(d + off + 4, s->ip_id);
		pkt_put16(d + off + 6, fo);
		d[off + 8] = s->ttl ? s->ttl : 64;
		d[off + 9] = s->proto;
		memcpy(d + off + 12, sa, 4);
		memcpy(d + off + 16, da, 4);
		if (s->ip_optlen) {
			memset(d + off + 20, 1, s->ip_optlen); /* NOPs */
			d[off + 20] = 0x94; /* Router Alert, value 0 */
			d[off + 21] = 4;
		}
		pkt_put16(d + off + 10, (uint16_t)~pkt_fold(pkt_sum16(0, d + off, hl)));
		off += hl;
	} else {
		uint32_t ip6 = off, n = 0, ext_len = 0;
		uint8_t types[PKT_EXT_MAX + 1];

		if (s->n_ext > PKT_EXT_MAX)
			return -1;
		for (i = 0; i < s->n_ext; i++)
			types[n++] = s->ext[i];
		if (s->frag != PKT_FRAG_NONE)
			types[n++] = IPPROTO_FRAGMENT;
		memset(d + off, 0, 40);
		d[off] = (uint8_t)(((s->version ? s->version : 6) << 4) | (s->tos >> 4));
		d[off + 1] = (uint8_t)(s->tos << 4);
		d[off + 6] = n ? types[0] : s->proto;
		d[off + 7] = s->ttl ? s->ttl : 64;
		memcpy(d + off + 8, sa, 16);
		memcpy(d + off + 24, da, 16);
		off += 40;
		for (i = 0; i < n; i++) {
			next = i + 1 < n ? types[i + 1] : s->proto;
			if (types[i] == IPPROTO_FRAGMENT) {
				uint16_t fo = 0;

				if (s->frag == PKT_FRAG_FIRST)
					fo = 1;
				if (s->frag == PKT_FRAG_LATER)
					fo = (uint16_t)(s->frag_off8 << 3) | (s->frag_more ? 1 : 0);
				memset(d + off, 0, 8);
				d[off] = (uint8_t)next;
				pkt_put16(d + off + 2, fo);
				pkt_put32(d + off + 4, s->frag_id);
				off += 8;
				ext_len += 8;
			} else {
				uint32_t l = pkt_put_ext(d + off, types[i], (uint8_t)next);

				off += l;
				ext_len += l;
			}
		}
		pkt_put16(d + ip6 + 4, (uint16_t)(ext_len + data_len));
	}
	if (off + data_len > PKT_MAX)
		return -1;
	memcpy(d + off, l4 + data_off, data_len);
	p->len = off + data_len;
	if (s->trunc && s->trunc < p->len)
		p->len = s->trunc;
	return 0;
}

/*
 * The spec of the same frame after a NAT: the given addresses and ports
 * replace the originals (NULL / 0 keep them).
 */
static inline struct pkt_spec pkt_spec_nat(const struct pkt_spec *s, const char *saddr,
					   uint16_t sport, const char *daddr, uint16_t dport)
{
	struct pkt_spec r = *s;

	if (saddr)
		r.saddr = saddr;
	if (sport)
		r.sport = sport;
	if (daddr)
		r.daddr = daddr;
	if (dport)
		r.dport = dport;
	return r;
}

/*
 * The TCP RST a host answers s with (RFC 793 "Reset Generation"): addresses,
 * ports and MACs swapped, no options, no payload. With ACK in s the reset
 * takes its sequence number from s's ACK field; otherwise it has sequence 0,
 * ACK set and ack = seq + SYN + FIN + payload. IP id 0, TTL 64, window 0.
 */
static inline struct pkt_spec pkt_spec_rst(const struct pkt_spec *s)
{
	struct pkt_spec r;

	memset(&r, 0, sizeof(r));
	r.family = s->family;
	r.proto = IPPROTO_TCP;
	r.saddr = s->daddr;
	r.daddr = s->saddr;
	r.sport = s->dport;
	r.dport = s->sport;
	r.smac = s->dmac ? s->dmac : PKT_DMAC;
	r.dmac = s->smac ? s->smac : PKT_SMAC;
	if (s->tcp_flags & PKT_ACK) {
		r.tcp_flags = PKT_RST;
		r.seq = s->ack;
	} else {
		r.tcp_flags = PKT_RST | PKT_ACK;
		r.ack = s->seq + s->payload_len + !!(s->tcp_flags & PKT_SYN) +
			!!(s->tcp_flags & PKT_FIN);
	}
	return r;
}

/*
 * The ICMP port unreachable (IPv4 type 3 code 3; IPv6 type 1 code 4) a host
 * answers the UDP frame orig with: MACs swapped, from orig's destination to
 * orig's source, TTL 64, IP id 0, quoting orig's IP header (with options or
 * extension headers) and the first 8 bytes after it. Returns 0 or -1.
 */
static inline int pkt_build_unreach(const struct pkt *orig, uint32_t quote_len, struct pkt *p)
{
	const uint8_t *o = orig->data;
	uint8_t *d = p->data;
	int v4 = pkt_get16(o + 12) == ETH_P_IP;
	uint32_t off = ETH_HLEN, l4len = 8 + quote_len, sum;

	memset(p, 0, sizeof(*p));
	if (quote_len > orig->len - ETH_HLEN || ETH_HLEN + 40 + l4len > PKT_MAX)
		return -1;
	memcpy(d, o + 6, ETH_ALEN);
	memcpy(d + 6, o, ETH_ALEN);
	memcpy(d + 12, o + 12, 2);
	if (v4) {
		d[off] = 0x45;
		pkt_put16(d + off + 2, (uint16_t)(20 + l4len));
		d[off + 8] = 64;
		d[off + 9] = IPPROTO_ICMP;
		memcpy(d + off + 12, o + ETH_HLEN + 16, 4);
		memcpy(d + off + 16, o + ETH_HLEN + 12, 4);
		pkt_put16(d + off + 10, (uint16_t)~pkt_fold(pkt_sum16(0, d + off, 20)));
		off += 20;
		d[off] = PKT_ICMP_DEST_UNREACH;
		d[off + 1] = PKT_ICMP_PORT_UNREACH;
		memcpy(d + off + 8, o + ETH_HLEN, quote_len);
		pkt_put16(d + off + 2, (uint16_t)~pkt_fold(pkt_sum16(0, d + off, l4len)));
	} else {
		d[off] = 0x60;
		pkt_put16(d + off + 4, (uint16_t)l4len);
		d[off + 6] = IPPROTO_ICMPV6;
		d[off + 7] = 64;
		memcpy(d + off + 8, o + ETH_HLEN + 24, 16);
		memcpy(d + off + 24, o + ETH_HLEN + 8, 16);
		off += 40;
		d[off] = PKT_ICMPV6_DEST_UNREACH;
		d[off + 1] = PKT_ICMPV6_PORT_UNREACH;
		memcpy(d + off + 8, o + ETH_HLEN, quote_len);
		sum = pkt_pseudo_sum(6, d + ETH_HLEN + 8, d + ETH_HLEN + 24, IPPROTO_ICMPV6, l4len);
		pkt_put16(d + off + 2, (uint16_t)~pkt_fold(pkt_sum16(sum, d + off, l4len)));
	}
	p->len = off + l4len;
	return 0;
}

/* ---- parsing and verification ---- */

struct pkt_info {
	int family; /* 4, 6, or 0 when not IP */
	uint32_t l3; /* offset of the IP header */
	uint32_t l3_len; /* IP header (+ options / extension headers) */
	uint32_t l4; /* offset of the L4 header (0 if none) */
	uint32_t l4_len; /* L4 bytes per the IP length fields */
	uint8_t proto;
	bool frag_first, frag_later;
};

/*
 * The length of the frame's L2 header: Ethernet and up to two VLAN tags
 * (802.1Q, 802.1ad) in the data, as the datapath's parser walks them
 * (bpf/lib/parse.h); *et is the EtherType after them (a third tag's TPID
 * when there are three: not IP, as the datapath sees it). 0 if the frame
 * is cut short inside it.
 */
static inline uint32_t pkt_l2_len(const uint8_t *d, uint32_t len, uint16_t *et)
{
	uint32_t off = ETH_HLEN;
	int i;

	if (len < ETH_HLEN)
		return 0;
	*et = pkt_get16(d + 12);
	for (i = 0; i < 2 && (*et == ETH_P_8021Q || *et == ETH_P_8021AD); i++) {
		if (off + 4 > len)
			return 0;
		*et = pkt_get16(d + off + 2);
		off += 4;
	}
	return off;
}

/* Walk a frame the way a receiving host would. Returns false (with why) if malformed. */
static inline bool pkt_parse(const uint8_t *d, uint32_t len, struct pkt_info *pi, char *why,
			     size_t whylen)
{
	uint32_t l2;
	uint16_t et;

	memset(pi, 0, sizeof(*pi));
	l2 = pkt_l2_len(d, len, &et);
	if (!l2) {
		snprintf(why, whylen, "frame of %u bytes has no whole Ethernet header", len);
		return false;
	}
	pi->l3 = l2;
	if (et == ETH_P_IP) {
		const uint8_t *ip = d + l2;
		uint32_t hl, tot;
		uint16_t fo;

		pi->family = 4;
		if (len < l2 + 20) {
			snprintf(why, whylen, "IPv4 header cut at %u bytes", len);
			return false;
		}
		hl = (ip[0] & 0xf) * 4u;
		tot = pkt_get16(ip + 2);
		if ((ip[0] >> 4) != 4 || hl < 20 || tot < hl || l2 + tot > len) {
			snprintf(why, whylen, "bad IPv4 header: version %u ihl %u tot_len %u frame %u",
				 ip[0] >> 4, hl / 4, tot, len);
			return false;
		}
		fo = pkt_get16(ip + 6);
		pi->proto = ip[9];
		pi->l3_len = hl;
		pi->frag_first = (fo & PKT_IP_MF) && !(fo & PKT_IP_OFFMASK);
		pi->frag_later = fo & PKT_IP_OFFMASK;
		pi->l4 = l2 + hl;
		pi->l4_len = tot - hl;
		return true;
	}
	if (et == ETH_P_IPV6) {
		const uint8_t *ip = d + l2;
		uint32_t off = l2 + 40, end;
		uint8_t nh;
		int i;

		pi->family = 6;
		if (len < l2 + 40) {
			snprintf(why, whylen, "IPv6 header cut at %u bytes", len);
			return false;
		}
		end = l2 + 40 + pkt_get16(ip + 4);
		if ((ip[0] >> 4) != 6 || end > len) {
			snprintf(why, whylen, "bad IPv6 header: version %u payload end %u frame %u",
				 ip[0] >> 4, end, len);
			return false;
		}
		nh = ip[6];
		for (i = 0; i < 64; i++) {
			if (nh != IPPROTO_HOPOPTS && nh != IPPROTO_DSTOPTS && nh != IPPROTO_ROUTING &&
			    nh != IPPROTO_FRAGMENT)
				break;
			if (off + 8 > end) {
				snprintf(why, whylen, "IPv6 extension header cut at %u", off);
				return false;
			}
			if (nh == IPPROTO_FRAGMENT) {
				uint16_t fo = pkt_get16(d + off + 2);

				pi->frag_first = (fo & 1) && !(fo & 0xfff8);
				pi->frag_later = fo & 0xfff8;
				nh = d[off];
				off += 8;
			} else {
				uint32_t l = (d[off + 1] + 1u) * 8;

				nh = d[off];
				off += l;
			}
		}
		if (off > end) {
			snprintf(why, whylen, "IPv6 extension headers overrun the payload");
			return false;
		}
		pi->proto = nh;
		pi->l3_len = off - l2;
		pi->l4 = off;
		pi->l4_len = end - off;
		return true;
	}
	pi->family = 0;
	return true;
}

/*
 * Recompute every checksum of the frame from scratch and compare: IPv4
 * header, TCP / UDP (pseudo-header), ICMP, ICMPv6 (pseudo-header). The L4
 * checksum of a fragment covers the whole datagram, so it is not checked
 * here (compare with an expected frame instead). Returns false with why.
 */
static inline bool pkt_csums_ok(const uint8_t *d, uint32_t len, char *why, size_t whylen)
{
	struct pkt_info pi;
	const uint8_t *l4;
	uint32_t sum;
	uint16_t f;

	if (!pkt_parse(d, len, &pi, why, whylen))
		return false;
	if (!pi.family)
		return true;
	if (pi.family == 4) {
		f = pkt_fold(pkt_sum16(0, d + pi.l3, pi.l3_len));
		if (f != 0xffff) {
			snprintf(why, whylen, "IPv4 header checksum 0x%04x wrong (should be 0x%04x)",
				 pkt_get16(d + pi.l3 + 10),
				 (uint16_t)~pkt_fold(pkt_sum16(0, d + pi.l3, pi.l3_len) -
						     pkt_get16(d + pi.l3 + 10)));
			return false;
		}
	}
	if (pi.frag_first || pi.frag_later)
		return true;
	l4 = d + pi.l4;
	switch (pi.proto) {
	case IPPROTO_TCP:
		if (pi.l4_len < 20) {
			snprintf(why, whylen, "TCP header cut (%u bytes)", pi.l4_len);
			return false;
		}
		break;
	case IPPROTO_UDP:
		if (pi.l4_len < 8 || pkt_get16(l4 + 4) != pi.l4_len) {
			snprintf(why, whylen, "UDP length %u, IP says %u",
				 pi.l4_len >= 8 ? pkt_get16(l4 + 4) : 0, pi.l4_len);
			return false;
		}
		if (pi.family == 4 && pkt_get16(l4 + 6) == 0)
			return true; /* no checksum */
		break;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		if (pi.l4_len < 8) {
			snprintf(why, whylen, "ICMP header cut (%u bytes)", pi.l4_len);
			return false;
		}
		break;
	default:
		return true;
	}
	if (pi.proto == IPPROTO_ICMP)
		sum = 0;
	else if (pi.family == 4)
		sum = pkt_pseudo_sum(4, d + pi.l3 + 12, d + pi.l3 + 16, pi.proto, pi.l4_len);
	else
		sum = pkt_pseudo_sum(6, d + pi.l3 + 8, d + pi.l3 + 24, pi.proto, pi.l4_len);
	f = pkt_fold(pkt_sum16(sum, l4, pi.l4_len));
	if (f != 0xffff) {
		uint32_t coff = pi.proto == IPPROTO_TCP ? 16 : pi.proto == IPPROTO_UDP ? 6 : 2;
		uint16_t carried = pkt_get16(l4 + coff);
		uint16_t want = (uint16_t)~pkt_fold(pkt_sum16(sum, l4, pi.l4_len) + (uint16_t)~carried);

		snprintf(why, whylen, "%s checksum 0x%04x wrong (should be 0x%04x)",
			 pi.proto == IPPROTO_TCP ? "TCP" :
			 pi.proto == IPPROTO_UDP ? "UDP" :
			 pi.proto == IPPROTO_ICMP ? "ICMP" : "ICMPv6",
			 carried, want);
		return false;
	}
	return true;
}

/* ---- comparison and dumps ---- */

/*
 * Compare got with want, ignoring the bits set in ignore[] (NULL: none).
 * Returns the first differing offset, or -1 if equal (lengths included).
 */
static inline long pkt_diff(const struct pkt *want, const uint8_t *got, uint32_t got_len,
			    const uint8_t *ignore)
{
	uint32_t i, n = want->len < got_len ? want->len : got_len;

	for (i = 0; i < n; i++) {
		uint8_t m = ignore ? ignore[i] : 0;

		if ((want->data[i] ^ got[i]) & (uint8_t)~m)
			return i;
	}
	return want->len == got_len ? -1 : (long)n;
}

static inline void pkt_hexdump(FILE *f, const char *label, const uint8_t *d, uint32_t len)
{
	uint32_t i;

	fprintf(f, "    %s (%u bytes):", label, len);
	for (i = 0; i < len; i++) {
		if (i % 16 == 0)
			fprintf(f, "\n      %04x:", i);
		fprintf(f, " %02x", d[i]);
	}
	fprintf(f, "\n");
}

#endif /* SP_SELFTEST_PKT_H */
