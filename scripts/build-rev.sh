#!/bin/bash
# build-rev.sh REV: build the svcplane daemon of git revision REV in a
# worktree at $OUT/compare-REV (kept: a second run reuses the build), for
# tests that need an older version's binary (make test-upgrade). The
# revision must be in this clone's history (a fresh clone has all of it).
set -eu
cd "$(dirname "$0")/.."
REV=${1:?usage: build-rev.sh REV}
OUT=${OUT:-build}
WT="$OUT/compare-$REV"
if [ -x "$WT/build/svcplane" ]; then
	exit 0
fi
git rev-parse --verify -q "$REV^{commit}" >/dev/null ||
	{ echo "build-rev: $REV is not a commit of this repository" >&2; exit 1; }
echo "building svcplane at $REV in $WT ..." >&2
rm -rf "$WT"
git worktree prune
git worktree add --detach "$WT" "$REV" >/dev/null
make -s -C "$WT" OUT=build build/svcplane >/dev/null
[ -x "$WT/build/svcplane" ] || { echo "build-rev: no $WT/build/svcplane" >&2; exit 1; }
