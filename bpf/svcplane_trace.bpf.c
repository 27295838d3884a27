// SPDX-License-Identifier: Apache-2.0
/*
 * The datapath of `svcplane trace`: bpf/svcplane.bpf.c compiled again with
 * SP_DRYRUN, which writes no shared map and records each decision
 * (bpf/lib/trace.h). Never attached: user/trace.c loads it on demand over
 * the daemon's pinned maps and runs packets through it with
 * BPF_PROG_TEST_RUN.
 */
#define SP_DRYRUN 1
#include "svcplane.bpf.c"
