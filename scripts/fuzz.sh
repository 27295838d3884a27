#!/bin/bash
# Run each libFuzzer target given (build/fuzz/fuzz_NAME) for FUZZ_TIME
# seconds, starting from a copy of its committed seeds
# (selftests/fuzz/corpus/NAME/) in $OUT/fuzz/corpus/NAME, which keeps what
# the fuzzer adds between runs. A crash, leak, UB report or timeout leaves
# the input as $OUT/fuzz/NAME-crash-* (or -leak-, -timeout-) and fails the
# run once every target has had its turn. The fuzzer's log is
# $OUT/fuzz/NAME.log.
#
# FUZZ_RUNS=N instead runs each target N inputs from a fixed seed
# (FUZZ_SEED, default 1): the same inputs on any machine at any speed, as
# CI needs (a timed run explores more where the machine is faster, so its
# findings would depend on the machine). FUZZ_TIME, if given too, still
# bounds each target's time (default 1200 s then).
set -u
OUT=${OUT:-build}
FUZZ_RUNS=${FUZZ_RUNS:-}
if [ -n "$FUZZ_RUNS" ]; then
	FUZZ_TIME=${FUZZ_TIME:-1200}
	bound=(-runs="$FUZZ_RUNS" -seed="${FUZZ_SEED:-1}" -max_total_time="$FUZZ_TIME")
	what="$FUZZ_RUNS runs, seed ${FUZZ_SEED:-1}"
else
	FUZZ_TIME=${FUZZ_TIME:-60}
	bound=(-max_total_time="$FUZZ_TIME")
	what="$FUZZ_TIME s"
fi
failed=()
for bin in "$@"; do
	name=$(basename "$bin")
	name=${name#fuzz_}
	corpus="$OUT/fuzz/corpus/$name"
	log="$OUT/fuzz/$name.log"
	mkdir -p "$corpus"
	[ -d "selftests/fuzz/corpus/$name" ] && cp -n "selftests/fuzz/corpus/$name"/* "$corpus"/ 2>/dev/null
	printf '  %-8s %s (%s)\n' FUZZ "$name" "$what"
	# -timeout: an input taking 10 s is a finding (quadratic parsing), not patience.
	if "$bin" "${bound[@]}" -timeout=10 -print_final_stats=1 \
		-artifact_prefix="$OUT/fuzz/$name-" "$corpus" >"$log" 2>&1; then
		grep -E '^stat::number_of_executed_units|^Done' "$log" | tail -1 | sed 's/^/           /'
	else
		failed+=("$name")
		echo "  $name: FAILED; the end of $log:" >&2
		grep -E -A12 '^==[0-9]+==ERROR|runtime error|ALARM|Test unit written' "$log" | head -40 >&2
	fi
done
if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz: ${failed[*]} failed; inputs are under $OUT/fuzz/" >&2
	exit 1
fi
echo "fuzz: no crash in $# target(s), $what each"
