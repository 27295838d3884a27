#!/bin/bash
# pkt-compare.sh [--doc FILE] [BASE-REV] [ROUNDS]: per-packet cost and verifier work of
# this tree against BASE-REV (default f59fab9, before the datapath
# restructuring), side by side in one run, so that a noisy machine affects
# both alike.
#
# Builds BASE-REV's bench_pkt and test_bpf_verifier in a git worktree under
# build/compare-REV (kept for the next run), then alternates the two
# bench_pkt binaries ROUNDS times (default 3) at N = 1 and 10,000 Services of
# 4 endpoints, each in a network namespace of its own. Prints one line per
# case with the median over rounds (each round itself a median of 3 runs),
# raw and net of the wrapper (wrap0 for packets the datapath rewrites in
# place, as bench_pkt's own report does) and their ratio, then each side's verified
# instructions per program (bpf_prog_info.verified_insns). With --doc FILE,
# also replaces FILE's section "7." (or adds it) with these figures:
# `make bench` does that for docs/BENCHMARKS.md.
set -eu
cd "$(dirname "$0")/../.."
DOC=""
if [ "${1:-}" = --doc ]; then
	DOC=$2
	shift 2
fi
BASE=${1:-f59fab9}
ROUNDS=${2:-3}
OUT=${OUT:-build}
WT="$OUT/compare-$BASE"
RES=$(mktemp -d /tmp/svcplane-pktcmp.XXXXXX)
trap 'rm -rf "$RES"' EXIT

[ "$(id -u)" = 0 ] || { echo "pkt-compare: needs root (BPF_PROG_TEST_RUN, unshare)" >&2; exit 1; }
make -s OUT="$OUT" all >/dev/null
if [ ! -x "$WT/build/tools/bench_pkt" ]; then
	echo "building $BASE in $WT ..." >&2
	rm -rf "$WT"
	git worktree prune
	git worktree add --detach "$WT" "$BASE" >/dev/null
	# The verifier-budget test came with the restructuring: give an older
	# base tree its first version (today's sets options, such as host
	# routing, that an older skeleton does not have).
	first=$(git log --diff-filter=A --format=%h -- selftests/bpf/test_bpf_verifier.c | tail -1)
	[ -e "$WT/selftests/bpf/test_bpf_verifier.c" ] ||
		git show "$first:selftests/bpf/test_bpf_verifier.c" >"$WT/selftests/bpf/test_bpf_verifier.c"
	make -s -C "$WT" OUT=build all >/dev/null
fi

for ((r = 1; r <= ROUNDS; r++)); do
	for side in base new; do
		bin="$OUT/tools/bench_pkt"
		[ $side = base ] && bin="$WT/build/tools/bench_pkt"
		unshare --net "$bin" --services 1,10000 --endpoints 4 --repeat 300000 --runs 3 \
			--flows 100000 --pin-root "/sys/fs/bpf/svcplane-pktcmp-$$" 2>/dev/null |
			sed "s/^/$side /" >>"$RES/pkt"
	done
done

# side case n median -> one median per (side, case, n)
report() {
awk '{ split($3, c, "="); split($4, n, "="); split($5, m, "=");
       print $1, c[2], n[2], m[2] }' "$RES/pkt" | sort -k1,1 -k2,2 -k3,3n -k4,4n >"$RES/all"
awk '
{ k = $1 " " $2 " " $3; v[k, ++cnt[k]] = $4 }
END {
	for (k in cnt) {
		n = cnt[k]
		# values arrive sorted (sort -k4n above), so the middle one is the median
		med[k] = v[k, int((n + 1) / 2)]
	}
	split("nosvc est1 reply estmany new", cases, " ")
	printf "%-8s %6s %12s %12s %12s %12s %8s\n", "case", "N", "base ns", "new ns", "base net", "new net", "new/base"
	for (i = 1; i <= 5; i++) {
		for (ni = 1; ni <= 2; ni++) {
			N = ni == 1 ? 1 : 10000
			b = med["base " cases[i] " " N]; w = med["new " cases[i] " " N]
			wb = med["base wrap0 " N]; ww = med["new wrap0 " N]
			if (cases[i] == "new") { wb = med["base wrap1 " N]; ww = med["new wrap1 " N] }
			# the ratio of the net figures (wrapper excluded); in brackets, or awk
			# takes ">" for a redirection
			printf "%-8s %6d %12.0f %12.0f %12.0f %12.0f %8.2f\n", cases[i], N, b, w, b - wb, w - ww,
			       (b - wb > 0 ? (w - ww) / (b - wb) : 0)
		}
	}
}' "$RES/all"

echo
echo "verified instructions (bpf_prog_info.verified_insns), default configuration:"
for side in base new; do
	t="$OUT/tests/test_bpf_verifier"
	[ $side = base ] && t="$WT/build/tests/test_bpf_verifier"
	"$t" 2>/dev/null | awk -v s=$side '/^  default sp_/ { printf "  %-4s %-14s %s\n", s, $2, $3 }'
	"$t" >/dev/null 2>&1 || true # (the base may fail the budget: that is the point)
done
}
report | tee "$RES/report"

[ -n "$DOC" ] || exit 0
{
	echo "## 7. Per-packet cost and verifier work against $BASE"
	echo
	echo "scripts/bench/pkt-compare.sh, $(date -u '+%Y-%m-%d %H:%M UTC'), commit" \
		"$(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' + local changes'), load" \
		"$(cut -d' ' -f1-3 /proc/loadavg): bench_pkt of both revisions alternated $ROUNDS times in" \
		"one run, N Services of 4 endpoints, ns per packet (median of rounds; \"net\" subtracts" \
		"the restoring wrapper, wrap0, or wrap1 for new flows)."
	echo
	echo '```'
	cat "$RES/report"
	echo '```'
} >"$RES/section"
# In place of an earlier section 7, else before section 8 (doc-section.sh).
scripts/bench/doc-section.sh 7 "$RES/section" "$DOC"
echo "pkt-compare: section 7 written to $DOC"
