// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target: the kubeconfig loader (user/k8s_config.c). It reads a
 * path, so each input is written to one memfd and loaded through
 * /proc/self/fd/N (relative paths in it then resolve against
 * /proc/self/fd, which nothing opens).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "k8s.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	static int fd = -1;
	struct sp_k8s_config c;
	char err[512];

	if (fd < 0) {
		fd = memfd_create("kubeconfig", 0);
		if (fd < 0)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	if (!sp_k8s_config_kubeconfig(&c, path, err, sizeof(err)))
		sp_k8s_config_free(&c);
	return 0;
}
