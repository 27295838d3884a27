// SPDX-License-Identifier: Apache-2.0
/*
 * Benchmark wrapper for BPF_PROG_TEST_RUN (scripts/tools/bench_pkt.c).
 *
 * With `repeat`, the kernel runs the program again and again on the SAME
 * buffer, which the datapath has already rewritten (DNAT). bench_wrap puts
 * the packet back first: it copies a template over the frame, optionally
 * gives it a fresh source address and port from a run counter (a new flow
 * every run, or one of `nflows` flows in turn), then tail-calls the program
 * under test from bench_target[0]. bench_pass is the floor: the cheapest
 * XDP program there is. User space times bench_wrap -> bench_pass too, so
 * the wrapper's own cost can be subtracted.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define BENCH_TMPL_MAX 128

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} bench_target SEC(".maps");

/* Set by user space between runs (the .bss is mmapped). */
unsigned char tmpl[BENCH_TMPL_MAX]; /* frame to restore before every run */
__u32 tmpl_len; /* bytes of tmpl to copy, 1..BENCH_TMPL_MAX */
__u32 vary; /* 0: template as is; 1: new source addr/port per run */
__u32 nflows; /* with vary: cycle over this many flows; 0 = never repeat */
__u32 saddr_off; /* offset of the IPv4 source address */
__u32 sport_off; /* offset of the L4 source port */
__u32 l4csum_off; /* offset of the L4 checksum (0: none, e.g. UDP csum 0) */
__u32 ipcsum_off; /* offset of the IPv4 header checksum */
__u64 seq; /* runs so far (one CPU runs the test, so no atomics) */
__u64 tail_fail; /* tail calls that fell through */

/* RFC 1624 incremental update of a one's complement checksum field at
 * p[off] for a 16-bit word changing from `from` to `to` (raw, wire order). */
static __always_inline void csum_replace2(unsigned char *p, __u16 from, __u16 to)
{
	__u16 *c = (__u16 *)p;
	__u32 s = (__u16)~*c;

	s += (__u16)~from;
	s += to;
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	*c = ~s;
}

SEC("xdp")
int bench_wrap(struct xdp_md *ctx)
{
	__u32 len = tmpl_len;
	void *data, *data_end;

	if (len == 0 || len > BENCH_TMPL_MAX)
		return XDP_ABORTED;
	if (bpf_xdp_store_bytes(ctx, 0, tmpl, len))
		return XDP_ABORTED;

	if (vary) {
		__u64 f = nflows ? seq % nflows : seq;
		__u16 old_a_hi, old_a_lo, old_p, new_a_hi, new_a_lo, new_p;
		unsigned char *pkt;
		__u32 a, o;

		seq++;
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		pkt = data;
		/* Offsets are user-set: bound each before use. */
		o = saddr_off & 0x7f;
		if (pkt + o + 4 > (unsigned char *)data_end)
			return XDP_ABORTED;
		old_a_hi = *(__u16 *)(pkt + o);
		old_a_lo = *(__u16 *)(pkt + o + 2);
		/* 60000 ports per source address, then the next address. */
		a = (((__u32)(old_a_hi & 0xff) << 24) | ((__u32)(old_a_hi >> 8) << 16) |
		     ((__u32)(old_a_lo & 0xff) << 8) | (old_a_lo >> 8)) + (__u32)(f / 60000);
		new_a_hi = (__u16)(((a >> 24) & 0xff) | (((a >> 16) & 0xff) << 8));
		new_a_lo = (__u16)(((a >> 8) & 0xff) | ((a & 0xff) << 8));
		*(__u16 *)(pkt + o) = new_a_hi;
		*(__u16 *)(pkt + o + 2) = new_a_lo;

		o = sport_off & 0x7f;
		if (pkt + o + 2 > (unsigned char *)data_end)
			return XDP_ABORTED;
		old_p = *(__u16 *)(pkt + o);
		new_p = (__u16)(1024 + f % 60000);
		new_p = (__u16)((new_p >> 8) | (new_p << 8));
		*(__u16 *)(pkt + o) = new_p;

		o = ipcsum_off & 0x7f;
		if (pkt + o + 2 > (unsigned char *)data_end)
			return XDP_ABORTED;
		csum_replace2(pkt + o, old_a_hi, new_a_hi);
		csum_replace2(pkt + o, old_a_lo, new_a_lo);
		if (l4csum_off) {
			o = l4csum_off & 0x7f;
			if (pkt + o + 2 > (unsigned char *)data_end)
				return XDP_ABORTED;
			csum_replace2(pkt + o, old_a_hi, new_a_hi);
			csum_replace2(pkt + o, old_a_lo, new_a_lo);
			csum_replace2(pkt + o, old_p, new_p);
		}
	}
	bpf_tail_call(ctx, &bench_target, 0);
	tail_fail++;
	return XDP_ABORTED;
}

SEC("xdp")
int bench_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
