// SPDX-License-Identifier: Apache-2.0
/*
 * Verifier budget: every program of the datapath must verify in under
 * SP_VERIFIER_BUDGET processed instructions (the kernel's limit is 1M), so
 * there is room for what comes next. The figure is the kernel's own
 * (bpf_prog_info.verified_insns), read after a real load of the skeleton in
 * each configuration that changes the code the verifier sees
 * (cfg_xdp_redirect, cfg_dsr, cfg_host_routing; the daemon's defaults
 * first). Maps are not pinned: nothing is left
 * behind, and a daemon running on this machine is never touched.
 *
 * Prints one "  <config> <prog> verified_insns=N" line per program, which
 * scripts/bench.sh reads too.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "svcplane.h"
#include "test.h"
#include "svcplane.skel.h"

#ifndef SP_VERIFIER_BUDGET
#define SP_VERIFIER_BUDGET 150000
#endif

static int quiet_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_WARN)
		return vfprintf(stderr, fmt, ap);
	return 0;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void check_config(const char *cfg, bool xdp_redirect, bool dsr, bool host_routing)
{
	struct svcplane_bpf *skel;
	struct bpf_program *prog;
	struct bpf_map *map;
	char name[128];
	double t0;
	int err;

	skel = svcplane_bpf__open();
	snprintf(name, sizeof(name), "verifier/%s/load", cfg);
	if (!skel) {
		sp_test_report(name, false);
		return;
	}
	/* No pinning: this test must not meet (or leave) pinned maps. */
	bpf_object__for_each_map(map, skel->obj)
		bpf_map__set_pin_path(map, NULL);
	skel->rodata->cfg_xdp_redirect = xdp_redirect;
	skel->rodata->cfg_dsr = dsr;
	skel->rodata->cfg_host_routing = host_routing;
	t0 = now_ms();
	err = svcplane_bpf__load(skel);
	if (err) {
		fprintf(stderr, "  load (%s): %s\n", cfg, strerror(-err));
		sp_test_report(name, false);
		goto out;
	}
	printf("  %s load_ms=%.0f\n", cfg, now_ms() - t0);
	sp_test_report(name, true);

	bpf_object__for_each_program(prog, skel->obj) {
		struct bpf_prog_info info;
		__u32 len = sizeof(info);
		bool ok;

		memset(&info, 0, sizeof(info));
		snprintf(name, sizeof(name), "verifier/%s/%s", cfg, bpf_program__name(prog));
		err = bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len);
		if (err) {
			fprintf(stderr, "  info %s: %s\n", bpf_program__name(prog), strerror(-err));
			sp_test_report(name, false);
			continue;
		}
		printf("  %s %s verified_insns=%u xlated_bytes=%u\n", cfg, bpf_program__name(prog),
		       info.verified_insns, info.xlated_prog_len);
		ok = ASSERT_TRUE(info.verified_insns > 0, "kernel reports verified_insns");
		ok = ASSERT_LE(info.verified_insns, SP_VERIFIER_BUDGET, name) && ok;
		sp_test_report(name, ok);
	}
out:
	svcplane_bpf__destroy(skel);
}

int main(void)
{
	libbpf_set_print(quiet_print);
	check_config("default", false, false, true);
	check_config("xdp-redirect", true, false, true);
	check_config("dsr", false, true, true);
	check_config("dsr-xdp-redirect", true, true, true);
	check_config("no-host-routing", false, false, false);
	return sp_test_exit();
}
