#!/bin/bash
# Figures that need no traffic, for issues 3 and 4: Maglev table builds
# (build/tools/maglev_bench), the map sync with N Services loaded
# (build/tools/sync_bench: one endpoint change rebuilds one Service), and
# the Kubernetes list+watch path at scale (scripts/bench/k8s-scale.sh).
# Appends a section to the report DOC and prints the raw key=value lines.
#   extra.sh DOC        (QUICK=1: smaller N, fewer runs)
set -u
DOC=$1
OUT=${OUT:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
RAW=$(mktemp /tmp/svcplane-extra.XXXXXX)
trap 'rm -f "$RAW" "$RAW.md"' EXIT

if [ "${QUICK:-}" = 1 ]; then
	N=2000 MG=(--quick) RUNS=5
else
	N=10000 MG=() RUNS=11
fi
echo "== Maglev builds, map sync and Kubernetes scale (N=$N)"
"$OUT/tools/maglev_bench" "${MG[@]}" >>"$RAW" 2>/dev/null || echo "  maglev_bench failed" >&2
"$OUT/tools/sync_bench" --services "$N" --endpoints 10 --runs "$RUNS" >>"$RAW" 2>/dev/null ||
	echo "  sync_bench failed" >&2
OUT=$OUT timeout 600 "$HERE/k8s-scale.sh" -n "$N" -e 10 -r 5 2>/dev/null | sed 's/^/k8s /' >>"$RAW" ||
	echo "  k8s-scale.sh failed" >&2
cat "$RAW"

val() { # LINE-PREFIX KEY: the KEY=value of the first raw line starting with PREFIX
	grep -m1 "^$1" "$RAW" | tr ' ' '\n' | sed -n "s/^$2=//p"
}
k8s() { grep -m1 "^k8s $1=" "$RAW" | cut -d= -f2; }

{
	echo "## 6. Maglev tables and the control plane at scale"
	echo
	echo "Maglev table build in user space (build/tools/maglev_bench; median, min–max, µs):"
	echo
	echo "| M | N | build µs |"
	echo "|---|---|---|"
	grep '^maglev_build ' "$RAW" | while read -r _ m n _ med min max; do
		echo "| ${m#M=} | ${n#N=} | ${med#median_us=} (${min#min_us=}–${max#max_us=}) |"
	done
	echo
	echo "Memory of one Service's table with adaptive M: N=3 $(val 'maglev_mem mode=adaptive N=3 ' region_bytes) B," \
		"N=10 $(val 'maglev_mem mode=adaptive N=10 ' region_bytes) B;" \
		"10,000 Services of 10 endpoints: $(val 'maglev_services mode=adaptive' total_bytes) B."
	echo
	echo "Map sync against real BPF maps (build/tools/sync_bench), $N Services × 10 endpoints:" \
		"programming all from empty $(val sync_full ms) ms; one endpoint change" \
		"$(val 'sync_change ' median_ms) ms median ($(val 'sync_change ' min_ms)–$(val 'sync_change ' max_ms))" \
		"as a full apply, rebuilding exactly one Service; as the daemon applies it (the diff, then" \
		"only that Service: the figure issue 11 asks to be under 1 ms)" \
		"$(val 'sync_change_ids ' median_ms) ms median ($(val 'sync_change_ids ' min_ms)–$(val 'sync_change_ids ' max_ms))."
	echo
	echo "Kubernetes API (scripts/bench/k8s-scale.sh: the test API server in a namespace," \
		"the daemon listing $N Services × 10 endpoints at start):"
	echo
	echo "| figure | value |"
	echo "|---|---|"
	echo "| first full sync (daemon start → snapshot applied) | $(k8s k8s_first_sync_s) s |"
	echo "| until \`svcplane status\` ready | $(k8s k8s_ready_s) s |"
	echo "| one endpoint change → datapath (median) | $(k8s k8s_endpoint_change_ms) ms |"
	echo "| daemon's apply of that change | $(k8s k8s_endpoint_change_apply_ms) ms |"
	echo "| daemon RSS | $(k8s k8s_daemon_rss_mib) MiB |"
} >"$RAW.md"
# In place of an earlier section 6, else before section 7 or 8 (doc-section.sh).
"$HERE/doc-section.sh" 6 "$RAW.md" "$DOC"
rm -f "$RAW.md"
