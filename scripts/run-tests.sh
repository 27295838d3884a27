#!/bin/bash
# svcplane test runner. Runs the groups named on the command line
# (unit, bpf, e2e; default all), counts the PASS/FAIL/SKIP lines every test
# prints, and ends with "N passed, N failed, N skipped".
# A test binary or script that exits non-zero without printing a FAIL line
# counts as one failure, so a crash is never silent.
set -u
OUT=${OUT:-build}
groups=("$@")
[ ${#groups[@]} -eq 0 ] && groups=(unit bpf e2e)
log=$(mktemp /tmp/svcplane-tests.XXXXXX)
trap 'rm -f "$log"' EXIT
pass=0 fail=0 skip=0

run_one() { # name, command...
	local name=$1; shift
	local t0=$EPOCHREALTIME
	echo "== $name"
	"$@" > >(tee "$log.cur") 2>&1
	local rc=$?
	wait
	local p=$(grep -c '^PASS: ' "$log.cur") f=$(grep -c '^FAIL: ' "$log.cur") s=$(grep -c '^SKIP: ' "$log.cur")
	if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "FAIL: $name: exited $rc without reporting a failure"
		f=1
	fi
	if [ $((p + f + s)) -eq 0 ]; then
		echo "FAIL: $name: reported no test"
		f=1
	fi
	pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
	grep -E '^(FAIL|SKIP): ' "$log.cur" | sed "s|^|  [$name] |" >> "$log"
	printf '   (%s: %ss)\n' "$name" "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')"
	rm -f "$log.cur"
}

for g in "${groups[@]}"; do
	case $g in
	unit)
		for t in "$OUT"/tests/test_*; do
			[ -x "$t" ] || continue
			case $(basename "$t") in test_bpf_*) continue ;; esac
			if [ -n "${VALGRIND:-}" ]; then
				run_one "$(basename "$t") (valgrind)" valgrind -q --error-exitcode=99 --leak-check=full \
					--suppressions=selftests/valgrind.supp \
					--errors-for-leak-kinds=definite "$t"
			else
				run_one "$(basename "$t")" "$t"
			fi
		done
		for t in selftests/user/*.sh; do
			[ -x "$t" ] && run_one "$(basename "$t")" env OUT="$OUT" "$t"
		done
		;;
	bpf)
		for t in "$OUT"/tests/test_bpf_*; do
			[ -x "$t" ] && run_one "$(basename "$t")" "$t"
		done
		;;
	e2e)
		for t in selftests/e2e/test_*.sh; do
			[ -x "$t" ] && run_one "$(basename "$t")" env OUT="$OUT" "$t"
		done
		;;
	*) echo "unknown test group: $g (unit, bpf, e2e)" >&2; exit 2 ;;
	esac
done

echo
if [ -s "$log" ]; then
	echo "Not passed:"
	cat "$log"
fi
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
