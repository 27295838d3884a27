#!/bin/bash
# The cost of a /metrics scrape at scale: N ClusterIP Services (default
# 10,000) of 4 endpoints from the config file (gen-config.sh), scraped 3
# times with --metrics-per-service on and then off (docs/METRICS.md).
#
#   scripts/bench/metrics-scale.sh [N]
#
# Prints one line per scrape (time, bytes), then the page's series, the
# daemon's RSS and promtool's findings. Runs in a network namespace of its
# own with a private bpffs; removes both on exit.
set -u
N=${1:-10000}
here=$(cd "$(dirname "$0")" && pwd)
BIN=${SP_BIN:-$here/../../${OUT:-build}/svcplane}
NS=spms$$ TMP=$(mktemp -d /tmp/svcplane-metrics-scale.XXXXXX)
PIN=$TMP/bpffs LOG=$TMP/svcplane.log
pid=""
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	ip netns exec "$NS" "$BIN" detach --bpffs-dir "$PIN/sp" >/dev/null 2>&1
	umount "$PIN" 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
[ -x "$BIN" ] || { echo "no svcplane binary at $BIN (make first)" >&2; exit 1; }
"$here/gen-config.sh" "$N" 4 >"$TMP/config.yaml" || exit 1
ip netns add "$NS" || exit 1
ip -n "$NS" link set lo up
ip -n "$NS" link add up0 type veth peer name up1
ip -n "$NS" link set up0 up && ip -n "$NS" link set up1 up
ip -n "$NS" addr add 10.10.0.1/24 dev up0
mkdir -p "$PIN" && mount -t bpf bpf "$PIN" || exit 1
for mode in on off; do
	ip netns exec "$NS" "$BIN" run --iface up0 --xdp-mode generic --bpffs-dir "$PIN/sp" \
		--config "$TMP/config.yaml" --metrics-per-service $mode >"$LOG" 2>&1 &
	pid=$!
	for ((i = 0; i < 600; i++)); do
		grep -q ' ready: ' "$LOG" && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	grep -q ' ready: ' "$LOG" || { echo "the daemon did not get ready (pid $pid: $(kill -0 $pid 2>&1 && echo running || echo exited)):" >&2; cat "$LOG" >&2; exit 1; }
	for k in 1 2 3; do
		ip netns exec "$NS" curl -s -o "$TMP/page" -w "N=$N per-service $mode: %{time_total} s, %{size_download} bytes\n" \
			http://127.0.0.1:9477/metrics
	done
	echo "  $(grep -vc '^#' "$TMP/page") series; RSS $(awk '$1 == "process_resident_memory_bytes" { print $2 }' "$TMP/page") bytes"
	echo "  promtool: $(promtool check metrics <"$TMP/page" 2>&1 | tr '\n' ' ')"
	kill "$pid"
	wait "$pid" 2>/dev/null
	pid=""
done
