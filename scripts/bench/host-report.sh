#!/bin/bash
# host-report.sh RES: section 10 of docs/BENCHMARKS.md from the raw figures
# (RES/raw.tsv) of bench.sh's part "host": per N, the median (min-max) over
# the rounds of each mode, and the ratios the issue asks for.
set -eu
RES=$1
RAW="$RES/raw.tsv"
[ -s "$RAW" ] || { echo "host-report: no $RAW" >&2; exit 1; }

# stat PART N MODE METRIC: "median (min–max)", or "-" without figures.
stat() {
	awk -F'\t' -v p="$1" -v n="$2" -v m="$3" -v k="$4" \
		'$1 == p && $2 == n && $3 == m && $4 == k && $5 != "" { print $5 }' "$RAW" |
		sort -g | awk '{ v[NR] = $1 } END {
			if (!NR) { print "-"; exit }
			med = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			if (v[1] == v[NR]) printf "%g\n", med
			else printf "%g (%g–%g)\n", med, v[1], v[NR] }'
}
med() { stat "$@" | awk '{ print $1 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f\n", a / b }'; }

ns=$(awk -F'\t' '$1 == "pps" || $1 == "conn" { print $2 }' "$RAW" | sort -nu | grep -v '^0$' || true)
rounds=$(awk -F'\t' '$1 == "pps" && $3 == "host-on" { c[$2]++ } END { for (n in c) print c[n] }' "$RAW" | sort -n | head -1)

cat <<EOF
## 10. Host routing: local pods from TC (bpf_redirect_peer)

\`scripts/bench/host-compare.sh $(cat "$RES/base-rev" 2>/dev/null || echo BASE)\` ($(date -u '+%Y-%m-%d %H:%M UTC'), load at start
$(cut -d' ' -f1-3 "$RES/load-start" 2>/dev/null)): the topology and tools of parts 2 and 3 (client → node → pod
over veths, the Service's endpoints in one pod on the node), $rounds rounds per N, each round
running every mode once in turn, so the builds are measured side by side: *direct*
(the backend address, no Service), *base* ($(cat "$RES/base-rev" 2>/dev/null || echo the base build)'s daemon: XDP DNATs, the stack
delivers), *host* (this build, $(git rev-parse --short HEAD)$(git diff --quiet HEAD 2>/dev/null || echo ' + local changes'), host routing on: the uplink's TC program delivers with
bpf_redirect_peer), *host off* (this build with \`--host-routing=off\`), *limit* (the
generator into a drop-only XDP program). Median (min–max) over the rounds. Compare
ratios within this section: the absolute rates follow the machine's load at the time
(compare the limit with part 2's).

Packet rate (Mpps, pktgen, 64-byte UDP to VIP:80), counted at the pod's TC ingress
(\`pktgen --sink-tc\`), not by an XDP program on the pod's eth0 as in part 2:
bpf_redirect_peer puts the packet into the device past its XDP hook, and without an XDP
program there the stack's packets cross the veth's backlog queue, as in a real pod. So
*direct* and *base* are lower here than in part 2; *limit* is part 2's (XDP drop on the
uplink).

| N | direct | base | host | host off | limit | host / base | host / direct | base / direct | host / limit |
|---|---|---|---|---|---|---|---|---|---|
EOF
for n in $ns; do
	d=$(med pps "$n" direct mpps) b=$(med pps "$n" host-base mpps) h=$(med pps "$n" host-on mpps)
	l=$(med pps "$n" limit mpps)
	printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$n" \
		"$(stat pps "$n" direct mpps)" "$(stat pps "$n" host-base mpps)" \
		"$(stat pps "$n" host-on mpps)" "$(stat pps "$n" host-off mpps)" \
		"$(stat pps "$n" limit mpps)" "$(ratio "$h" "$b")" "$(ratio "$h" "$d")" \
		"$(ratio "$b" "$d")" "$(ratio "$h" "$l")"
done
cat <<EOF

New TCP connections per second (connbench, 2 threads, client closes first). *no svc* is
this build's daemon running (host routing on) while the client connects to the backend
address: svcplane's programs on the path but no Service, so *no svc / direct* is their
fixed cost on these veths and *host / no svc* the Service's own (NAT, conntrack):

| N | direct | no svc | base | host | host off | host / base | host / direct | base / direct | no svc / direct | host / no svc |
|---|---|---|---|---|---|---|---|---|---|---|
EOF
for n in $ns; do
	d=$(med conn "$n" direct cps) b=$(med conn "$n" host-base cps) h=$(med conn "$n" host-on cps)
	x=$(med conn "$n" host-nosvc cps)
	printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$n" \
		"$(stat conn "$n" direct cps)" "$(stat conn "$n" host-nosvc cps)" \
		"$(stat conn "$n" host-base cps)" \
		"$(stat conn "$n" host-on cps)" "$(stat conn "$n" host-off cps)" \
		"$(ratio "$h" "$b")" "$(ratio "$h" "$d")" "$(ratio "$b" "$d")" "$(ratio "$x" "$d")" \
		"$(ratio "$h" "$x")"
done
cat <<EOF

connect() latency p50 / p99, µs:

| N | direct | no svc | base | host | host off |
|---|---|---|---|---|---|
EOF
for n in $ns; do
	lat() { echo "$(med conn "$n" "$1" p50) / $(med conn "$n" "$1" p99)"; }
	printf '| %s | %s | %s | %s | %s | %s |\n' "$n" "$(lat direct)" "$(lat host-nosvc)" \
		"$(lat host-base)" "$(lat host-on)" "$(lat host-off)"
done
