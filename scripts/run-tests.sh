#!/bin/bash
# svcplane test runner. Runs the groups or single tests named on the command
# line (default: every group), counts the PASS/FAIL/SKIP lines every test
# prints, and ends with "N passed, N failed, N skipped".
# A test binary or script that exits non-zero without printing a FAIL line
# counts as one failure, so a crash is never silent. A skipped case fails the
# run too, unless ALLOW_SKIP=1: a test that could not run proves nothing.
set -u

usage() {
	cat <<'EOF'
Usage: scripts/run-tests.sh [TEST...]

Each TEST is a group or one test file:
  unit                 user-space unit tests (build/tests/test_*, selftests/user/*.sh)
  bpf                  BPF_PROG_TEST_RUN tests (build/tests/test_bpf_*)
  e2e                  end-to-end namespace tests (selftests/e2e/test_*.sh,
                       except test_multinode.sh, test_k8s_real.sh,
                       test_image.sh and test_upgrade.sh: name them, or make
                       test-multinode / test-k8s / test-image / test-upgrade)
  FILE                 one test, by file name, with or without its directory and
                       extension: test_config, e2e/test_reload.sh, test_reload
With no TEST, all three groups run.

Environment:
  OUT=DIR              build output directory (default: build)
  CASE=SUBSTRING       only cases whose name contains SUBSTRING: C tests run
                       only those (SP_TEST_CASE), and only their result lines
                       count; e2e scripts run whole, only matching lines count
  VALGRIND=1           run the unit test binaries under valgrind
  ALLOW_SKIP=1         do not fail the run when a case was skipped
                       (CI never sets it)

Through make: make test TESTS='e2e/test_reload.sh' CASE=sighup
EOF
}

OUT=${OUT:-build}
CASE=${CASE:-}
case ${1:-} in -h | --help) usage; exit 0 ;; esac
args=("$@")
[ ${#args[@]} -eq 0 ] && args=(unit bpf e2e)
log=$(mktemp /tmp/svcplane-tests.XXXXXX)
trap 'rm -f "$log" "$log.cur"' EXIT
pass=0 fail=0 skip=0

# counted KIND FILE: how many KIND (PASS/FAIL/SKIP) result lines FILE holds
# that CASE selects.
counted() {
	awk -v k="$1: " -v c="$CASE" \
		'index($0, k) == 1 && index(substr($0, length(k) + 1), c) { n++ } END { print n + 0 }' "$2"
}

run_one() { # name, command...
	local name=$1; shift
	local t0=$EPOCHREALTIME
	echo "== $name"
	SP_TEST_CASE=$CASE "$@" > >(tee "$log.cur") 2>&1
	local rc=$?
	wait
	local p f s
	p=$(counted PASS "$log.cur") f=$(counted FAIL "$log.cur") s=$(counted SKIP "$log.cur")
	if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "FAIL: $name: exited $rc without reporting a failure${CASE:+ matching CASE=$CASE}"
		f=1
		echo "FAIL: $name: exited $rc" >>"$log.cur"
	fi
	if [ $((p + f + s)) -eq 0 ]; then
		echo "FAIL: $name: reported no test${CASE:+ matching CASE=$CASE}"
		f=1
		echo "FAIL: $name: reported no test" >>"$log.cur"
	fi
	pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
	grep -E '^(FAIL|SKIP): ' "$log.cur" | sed "s|^|  [$name] |" >> "$log"
	printf '   (%s: %ss)\n' "$name" "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')"
	rm -f "$log.cur"
}

# Every test, as "group path", in the order the groups run.
all_tests() {
	local t
	for t in "$OUT"/tests/test_*; do
		[ -x "$t" ] || continue
		case $(basename "$t") in test_bpf_*) continue ;; esac
		echo "unit $t"
	done
	for t in selftests/user/*.sh; do [ -x "$t" ] && echo "unit $t"; done
	for t in "$OUT"/tests/test_bpf_*; do [ -x "$t" ] && echo "bpf $t"; done
	for t in selftests/e2e/test_*.sh; do [ -x "$t" ] && echo "e2e $t"; done
}

# e2e scripts that run only when named, not in the e2e group:
# test_multinode.sh (three nodes, about 3 minutes: make test-multinode),
# which keeps make test under 10 minutes (and see .ci/run);
# test_k8s_real.sh needs the real control plane built first (make test-k8s);
# test_image.sh needs podman and the image built first (make test-image);
# test_upgrade.sh needs an older version's daemon built (make test-upgrade).
NOT_IN_GROUP="test_multinode.sh test_k8s_real.sh test_image.sh test_upgrade.sh"

run_test() { # group path
	local g=$1 t=$2
	case $g in
	unit)
		if [[ $t == *.sh ]]; then
			run_one "$(basename "$t")" env OUT="$OUT" "$t"
		elif [ -n "${VALGRIND:-}" ]; then
			run_one "$(basename "$t") (valgrind)" valgrind -q --error-exitcode=99 --leak-check=full \
				--suppressions=selftests/valgrind.supp \
				--errors-for-leak-kinds=definite "$t"
		else
			run_one "$(basename "$t")" "$t"
		fi
		;;
	bpf) run_one "$(basename "$t")" "$t" ;;
	e2e) run_one "$(basename "$t")" env OUT="$OUT" "$t" ;;
	esac
}

mapfile -t tests < <(all_tests)
for a in "${args[@]}"; do
	case $a in
	unit | bpf | e2e)
		for e in "${tests[@]}"; do
			[ "${e%% *}" = "$a" ] || continue
			[[ " $NOT_IN_GROUP " == *" $(basename "${e#* }") "* ]] && continue
			run_test "${e%% *}" "${e#* }"
		done
		;;
	*)
		want=$(basename "$a"); want=${want%.sh}; want=${want%.c}
		found=0
		for e in "${tests[@]}"; do
			[ "$(basename "${e#* }" .sh)" = "$want" ] || continue
			run_test "${e%% *}" "${e#* }"
			found=1
		done
		if [ $found -eq 0 ]; then
			echo "FAIL: $a: no such test group or test (see --help; build first: make)"
			fail=$((fail + 1))
			echo "  FAIL: $a: no such test" >>"$log"
		fi
		;;
	esac
done

echo
if [ -s "$log" ]; then
	echo "Not passed:"
	cat "$log"
fi
if [ $skip -gt 0 ] && [ "${ALLOW_SKIP:-0}" != 1 ]; then
	echo "FAIL: $skip case(s) skipped (listed above): a skipped case proves nothing;"
	echo "      fix what it needs, or set ALLOW_SKIP=1 to accept skips"
fi
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ] && { [ $skip -eq 0 ] || [ "${ALLOW_SKIP:-0}" = 1 ]; }
