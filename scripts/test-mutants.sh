#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Mutation check (make test-mutants): does each README claim have a test
# that a broken build fails? Each selftests/mutants/NAME.patch breaks one
# claim on purpose, in two header lines and a small diff:
#
#   # claim: what the README promises
#   # guard: TEST [CASE]     the test (run-tests.sh name) and case substring
#
# For each patch, in a scratch copy of the tree (under /tmp, the build
# output copied along so only what the patch touches is rebuilt): apply
# it, build, run the guard. The guard must fail ("killed"); a mutant whose
# guard passes "survived" and fails this check, as does one that no longer
# applies or builds. First, every guard runs once on the unmutated copy:
# a guard that fails there could not tell anything, and its mutants count
# as failures too.
#
# Usage: scripts/test-mutants.sh [NAME-SUBSTRING...]   (OUT=build; needs root)
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-build}
MUT_DIR=$ROOT/selftests/mutants

case ${1:-} in -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac

patches=()
for p in "$MUT_DIR"/*.patch; do
	[ -e "$p" ] || continue
	n=$(basename "$p" .patch)
	if [ $# -gt 0 ]; then
		keep=0
		for f in "$@"; do [[ $n == *"$f"* ]] && keep=1; done
		[ $keep = 1 ] || continue
	fi
	patches+=("$p")
done
if [ ${#patches[@]} -eq 0 ]; then
	echo "test-mutants: no mutant selected in $MUT_DIR"
	exit 1
fi
if [ ! -x "$ROOT/$OUT/svcplane" ]; then
	echo "test-mutants: build first (make)"
	exit 1
fi

WORK=$(mktemp -d /tmp/svcplane-mutants.XXXXXX)
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The tree without .git, with its build output (timestamps kept, so make
# only rebuilds what a patch touches).
mkdir -p "$WORK/base"
tar -C "$ROOT" --exclude=./.git --exclude="./$OUT" --exclude=./build-asan -cf - . |
	tar -C "$WORK/base" -xf - || exit 1
cp -a "$ROOT/$OUT" "$WORK/base/$OUT" || exit 1

field() { sed -n "s/^# $2: *//p" "$1" | head -1; }

# run_guard DIR TEST CASE LOG: the guard in tree DIR; 0 if it passed.
run_guard() {
	(cd "$1" && OUT=$OUT CASE=$3 scripts/run-tests.sh "$2") >"$4" 2>&1
}

failed=0
declare -A BASE_OK
echo "== test-mutants: ${#patches[@]} mutant(s); guards first run on the unmutated tree"
for p in "${patches[@]}"; do
	g=$(field "$p" guard)
	t=${g%% *}
	[ -n "${BASE_OK[$t]:-}" ] && continue
	# The whole test, not one case: a guard must pass on a good build.
	if run_guard "$WORK/base" "$t" "" "$WORK/base-$(basename "$t").log"; then
		BASE_OK[$t]=1
		echo "  baseline $t: passes"
	else
		BASE_OK[$t]=0
		echo "  baseline $t: FAILS on the unmutated tree:"
		grep -E '^FAIL|passed, ' "$WORK/base-$(basename "$t").log" | head -5 | sed 's/^/    /'
	fi
done

for p in "${patches[@]}"; do
	n=$(basename "$p" .patch)
	claim=$(field "$p" claim)
	g=$(field "$p" guard)
	t=${g%% *}
	c=""
	[[ $g == *" "* ]] && c=${g#* }
	if [ -z "$t" ]; then
		echo "FAIL: mutant/$n: no '# guard:' line"
		failed=$((failed + 1))
		continue
	fi
	if [ "${BASE_OK[$t]}" != 1 ]; then
		echo "FAIL: mutant/$n: its guard $t fails on the unmutated tree, so it cannot judge"
		failed=$((failed + 1))
		continue
	fi
	m=$WORK/m-$n
	cp -a "$WORK/base" "$m" || exit 1
	if ! (cd "$m" && patch -p1 -s --no-backup-if-mismatch <"$p") >"$m.patch.log" 2>&1; then
		echo "FAIL: mutant/$n: the patch no longer applies: $(head -2 "$m.patch.log" | tr '\n' ' ')"
		failed=$((failed + 1))
		rm -rf "$m"
		continue
	fi
	if ! nice -n 10 make -C "$m" OUT="$OUT" all >"$m.build.log" 2>&1; then
		echo "FAIL: mutant/$n: the mutated tree does not build: $(grep -m2 -E 'error' "$m.build.log" | tr '\n' ' ')"
		failed=$((failed + 1))
		rm -rf "$m"
		continue
	fi
	if run_guard "$m" "$t" "$c" "$m.test.log"; then
		echo "FAIL: mutant/$n: survived: $t${c:+ (cases matching '$c')} passed with the claim broken ($claim)"
		failed=$((failed + 1))
	else
		first=$(grep -m1 '^FAIL' "$m.test.log" | cut -c1-160)
		echo "PASS: mutant/$n: killed by $t${c:+ ($c)}: $first"
	fi
	rm -rf "$m"
done
echo "$((${#patches[@]} - failed)) of ${#patches[@]} mutants killed"
[ $failed -eq 0 ]
