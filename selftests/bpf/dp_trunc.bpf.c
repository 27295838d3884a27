// SPDX-License-Identifier: Apache-2.0
/*
 * Test helper for test_bpf_datapath: cut an skb short, then tail-call the
 * TC program under test. BPF_PROG_TEST_RUN refuses an skb whose IP header
 * is incomplete, yet TC ingress does see such frames (ip_rcv only drops
 * them afterwards); this is how the test still feeds them to the datapath.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

/* Slot 0: the program under test. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} trunc_target SEC(".maps");

__u32 trunc_len; /* set by user space before each run */

/* Verdicts that no TC program returns, so the test can tell them apart. */
#define TRUNC_CHANGE_TAIL_FAILED 0x7e57
#define TRUNC_TAIL_CALL_FAILED 0x7e58

SEC("tc")
int trunc_tc(struct __sk_buff *skb)
{
	if (bpf_skb_change_tail(skb, trunc_len, 0))
		return TRUNC_CHANGE_TAIL_FAILED;
	bpf_tail_call(skb, &trunc_target, 0);
	return TRUNC_TAIL_CALL_FAILED;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
