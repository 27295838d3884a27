#!/bin/bash
# test-stress.sh [RUNS]: `make test`'s runner RUNS times (default 5) in a row
# while stress-ng keeps both cores busy (--cpu 2), as issue 9 asks: a test
# that passes only on an idle machine depends on its speed, which is a
# defect. Stops at the first failing run. Ends with "N passed, N failed"
# counting runs. stress-ng is stopped on every exit path.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-build}
RUNS=${1:-5}
command -v stress-ng >/dev/null || { echo "test-stress: stress-ng is missing (scripts/deps.sh --stress)" >&2; exit 2; }
LOG=$(mktemp -d /tmp/svcplane-stress.XXXXXX)
stress-ng --cpu 2 --timeout 4h --quiet &
SPID=$!
trap 'kill $SPID 2>/dev/null; wait $SPID 2>/dev/null' EXIT INT TERM
ok=0 bad=0
for ((i = 1; i <= RUNS; i++)); do
	t0=$SECONDS
	OUT=$OUT VALGRIND=1 scripts/run-tests.sh >"$LOG/run$i.log" 2>&1
	rc=$?
	echo "run $i: $(tail -n 1 "$LOG/run$i.log") ($((SECONDS - t0)) s, with stress-ng --cpu 2)"
	if [ $rc -ne 0 ]; then
		bad=$((bad + 1))
		echo "run $i failed; its log: $LOG/run$i.log"
		grep -E '^(FAIL|SKIP): ' "$LOG/run$i.log" | sed 's/^/  /'
		break
	fi
	ok=$((ok + 1))
done
[ $bad -eq 0 ] && rm -rf "$LOG"
echo "$ok passed, $bad failed"
[ $bad -eq 0 ]
