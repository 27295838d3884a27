#!/bin/bash
# host-compare.sh [--doc FILE] [BASE-REV]: host routing (bpf/lib/host_route.h)
# measured against BASE-REV (default main), side by side in one run: builds
# BASE-REV's daemon in a git worktree under build/compare-REV (kept for the
# next run), then runs bench.sh's part "host" (packet rate and new TCP
# connections to a pod on the node: direct, BASE-REV, this tree with host
# routing on and off, the limit; the modes alternated in every round).
# HOST_NS (default "1 10000") and HOST_ROUNDS (default 3) pass through.
# With --doc FILE, section 10 of FILE is replaced (or added); without, the
# section is printed.
set -eu
cd "$(dirname "$0")/../.."
DOC=""
if [ "${1:-}" = --doc ]; then
	DOC=$2
	shift 2
fi
BASE=${1:-main}
OUT=${OUT:-build}
REV=$(git rev-parse --short "$BASE")
WT="$OUT/compare-$REV"

[ "$(id -u)" = 0 ] || { echo "host-compare: needs root (namespaces, BPF)" >&2; exit 1; }
make -s OUT="$OUT" all >/dev/null
if [ ! -x "$WT/build/svcplane" ]; then
	echo "building $BASE ($REV) in $WT ..." >&2
	rm -rf "$WT"
	git worktree prune
	git worktree add --detach "$WT" "$REV" >/dev/null
	make -s -C "$WT" OUT=build build/svcplane >/dev/null
fi
tmp=""
if [ -z "$DOC" ]; then
	tmp=$(mktemp /tmp/svcplane-hostcmp.XXXXXX)
	trap 'rm -f "$tmp"' EXIT
	echo "## 10." >"$tmp"
	DOC=$tmp
fi
BENCH_PARTS=host BASE_SP_BIN="$PWD/$WT/build/svcplane" BASE_REV="$BASE ($REV)" \
	BENCH_DOC="$DOC" OUT="$OUT" scripts/bench.sh
[ -z "$tmp" ] || cat "$tmp"
