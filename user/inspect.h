/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inspection subcommands (services, backends, conntrack, maglev, stats,
 * status; declared in cli.h) and the few helpers they share with the
 * daemon. The commands only read the maps pinned under --bpffs-dir.
 */
#ifndef SP_INSPECT_H
#define SP_INSPECT_H

#include <stddef.h>
#include <stdint.h>
#include "svcplane.h"

/* Where the daemon keeps its pid file (bpffs cannot hold regular files). */
#define SP_RUN_DIR "/run/svcplane"

/*
 * The daemon's pid file for pin directory pin_dir: SP_RUN_DIR "/" + pin_dir
 * with trailing slashes dropped and every '/' replaced by '_' + ".pid", e.g.
 * "/sys/fs/bpf/svcplane" -> "/run/svcplane/_sys_fs_bpf_svcplane.pid".
 * The daemon writes it (and holds it while running); `svcplane status`
 * reads it. Returns 0, -EINVAL for an empty pin_dir or -ENAMETOOLONG.
 */
int sp_pidfile_path(const char *pin_dir, char *buf, size_t len);

/*
 * Digest of a Maglev table as read from the maps, as `svcplane maglev`
 * prints it: slots[0..n) are the Service's backends in region order,
 * table[0..m) the entries (indexes into slots). It is sp_maglev_digest()
 * (user/maglev.c) of the same table: 64-bit FNV-1a over, for each entry in
 * order, family byte, 16 address bytes (IPv4 in the first 4, rest zero) and
 * port in network order, so nodes with the same table print the same value.
 * An entry past the list hashes as 19 zero bytes. Returns 0 or -ENOMEM.
 */
int sp_inspect_digest(const struct sp_backend *slots, size_t n, const uint16_t *table, uint32_t m,
		      uint64_t *digest);

/* The name of BPF program id into buf (empty on error). Returns 0 or
 * -errno. Ours all start with "sp_". */
int sp_prog_name(__u32 id, char *buf, size_t len);

#endif /* SP_INSPECT_H */
