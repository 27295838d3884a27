# shellcheck shell=bash
# Shared by the end-to-end tests (selftests/e2e/test_*.sh): result lines,
# the cluster (scripts/lib/cluster.sh), the daemon's life cycle and config
# files. Each test prints exactly one line per case:
#   PASS: <script>/<case>
#   FAIL: <script>/<case>: <why>
#   SKIP: <script>/<case>: <why>
# and anything else it prints is indented diagnostics.

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$E2E_DIR/../.." && pwd)
# shellcheck source=../../scripts/lib/cluster.sh
. "$REPO/scripts/lib/cluster.sh"

E2E_NAME=$(basename "$0" .sh)
E2E_NAME=${E2E_NAME#test_}
E2E_CASES=()   # every case this script reports, declared up front
declare -A E2E_DONE
E2E_FAILS=0
E2E_T0=$SECONDS

# E2E_TIMING=1: after each result, how long since the previous one.
E2E_LAST=$(date +%s%N)
e2e_timing() {
	[ "${E2E_TIMING:-0}" = 1 ] || return 0
	local now
	now=$(date +%s%N)
	note "($(((now - E2E_LAST) / 1000000)) ms)"
	E2E_LAST=$now
}
pass() { E2E_DONE[$1]=1; echo "PASS: $E2E_NAME/$1"; e2e_timing; }
fail() {
	E2E_DONE[$1]=1
	E2E_FAILS=$((E2E_FAILS + 1))
	echo "FAIL: $E2E_NAME/$1: $2"
	e2e_timing
}
skip() { E2E_DONE[$1]=1; echo "SKIP: $E2E_NAME/$1: $2"; }
note() { echo "    $*"; }

# check CASE WHY-IF-FALSE CMD...: PASS if CMD succeeds, else FAIL with WHY.
check() {
	local c=$1 why=$2; shift 2
	if "$@"; then pass "$c"; else fail "$c" "$why"; fi
}

# e2e_cases CASE...: declare the cases, so that a failed set-up still
# reports every one of them (e2e_fail_rest) instead of going quiet.
e2e_cases() { E2E_CASES+=("$@"); }

# e2e_fail_rest WHY: FAIL every declared case not reported yet.
e2e_fail_rest() {
	local c
	for c in "${E2E_CASES[@]}"; do
		[ -n "${E2E_DONE[$c]:-}" ] || fail "$c" "$1"
	done
}

# e2e_abort WHY: the set-up failed; fail the rest and exit (e2e_end then
# shows the daemon's log).
e2e_abort() {
	e2e_fail_rest "$1"
	exit 1
}

E2E_LOG=""
# e2e_show_log [LINES]: the tail of the daemon's log, indented (diagnostics).
e2e_show_log() {
	[ -n "$E2E_LOG" ] && [ -s "$E2E_LOG" ] || return 0
	echo "    --- svcplane log (last ${1:-25} lines) ---"
	tail -n "${1:-25}" "$E2E_LOG" | sed 's/^/    | /'
}

# e2e_begin [cluster_up options]: root check, traps, the binary, the cluster.
e2e_begin() {
	if [ "$(id -u)" != 0 ]; then
		local c
		for c in "${E2E_CASES[@]}"; do skip "$c" "needs root (network namespaces)"; done
		exit 0
	fi
	cl_install_traps
	trap 'e2e_end' EXIT
	cl_find_bin || e2e_abort "no svcplane binary at $SP_BIN (build it first: make)"
	cluster_up "$@" || e2e_abort "building the namespace cluster failed (see above)"
	E2E_LOG="$CL_TMP/svcplane.log"
	E2E_CONFIG="$CL_TMP/config.yaml"
	E2E_NODE=${CL_NODES[0]}
}

# e2e_end: the EXIT trap: report what was not reached, remove everything.
e2e_end() {
	local rc=$?
	e2e_fail_rest "not reached (the script stopped early, status $rc)"
	[ $E2E_FAILS -gt 0 ] && e2e_show_log 40
	cluster_down
	note "($E2E_NAME: $((SECONDS - E2E_T0))s)"
}

# e2e_start_daemon [ARGS...]: `svcplane run --config $E2E_CONFIG` on the node
# (extra ARGS appended), then wait until it reports ready. Returns 1 if it
# does not become ready or dies.
e2e_start_daemon() {
	echo "=== svcplane run ($(date +%T.%N | cut -c1-12))" >>"$E2E_LOG"
	local from
	from=$(wc -l <"$E2E_LOG")
	sp_start "$E2E_NODE" "$E2E_LOG" --config "$E2E_CONFIG" "$@"
	if ! sp_wait_ready "$E2E_NODE" "$SP_PID" 20 "$E2E_LOG" "$from"; then
		if kill -0 "$SP_PID" 2>/dev/null; then
			note "svcplane is running but not ready after 20 s; status says:"
			sp "$E2E_NODE" status 2>&1 | sed 's/^/    | /'
		else
			wait "$SP_PID"
			note "svcplane exited with status $?"
		fi
		return 1
	fi
}

# e2e_reload: ask the daemon to apply the (rewritten) config file now.
e2e_reload() { kill -HUP "$SP_PID"; }

# ---- Config files -------------------------------------------------------------

# yaml_slice_head NS SERVICE SLICE-NAME FAMILY PORTS-YAML N-ENDPOINTS: an
# EndpointSlice up to its "endpoints:" line (an empty list when N is 0).
yaml_slice_head() {
	echo "  - name: $3"
	echo "    namespace: $1"
	echo "    serviceName: $2"
	echo "    addressType: IPv$4"
	echo "    ports: $5"
	if [ "$6" -eq 0 ]; then echo "    endpoints: []"; else echo "    endpoints:"; fi
}

# yaml_slices NS SERVICE SLICE-NAME PORTS-YAML ENDPOINT-SPEC...: an IPv4 and
# an IPv6 EndpointSlice for SERVICE with the given pods as ready endpoints.
# ENDPOINT-SPEC is a pod name (ready) or POD:notready.
yaml_slices() {
	local ns=$1 svc=$2 slice=$3 ports=$4; shift 4
	local fam pod ready spec
	for fam in 4 6; do
		yaml_slice_head "$ns" "$svc" "$slice-v$fam" "$fam" "$ports" $#
		for spec in "$@"; do
			pod=${spec%%:*}
			ready=true
			[ "$spec" != "$pod" ] && ready=false
			if [ $fam = 4 ]; then
				echo "      - addresses: [${CL_POD_V4[$pod]}]"
			else
				echo "      - addresses: [${CL_POD_V6[$pod]}]"
			fi
			echo "        conditions: {ready: $ready}"
			echo "        nodeName: node-a"
		done
	done
}

# yaml_service NS NAME TYPE CLUSTER-IPS LB-IPS PORT-YAML...: one Service of
# the config's "services:" list. CLUSTER-IPS and LB-IPS are YAML flow lists
# ("[10.96.0.50, fd00:96::50]"); LB-IPS "" for none. Each PORT-YAML is one
# flow mapping ({name: http, protocol: TCP, port: 80, targetPort: 8080}).
yaml_service() {
	local ns=$1 name=$2 type=$3 cips=$4 lbips=$5 p
	shift 5
	echo "  - name: $name"
	echo "    namespace: $ns"
	echo "    type: $type"
	echo "    clusterIPs: $cips"
	[ -n "$lbips" ] && echo "    loadBalancerIPs: $lbips"
	echo "    ports:"
	for p in "$@"; do echo "      - $p"; done
}

# yaml_addr_slice NS SERVICE SLICE-NAME FAMILY PORTS-YAML [ADDRESS...]: an
# EndpointSlice (IPv4 or IPv6: FAMILY 4 or 6) with the given addresses as
# ready endpoints on node-a, for endpoints that are not pods (the node's own
# address) or a slice with none.
yaml_addr_slice() {
	local ns=$1 svc=$2 slice=$3 fam=$4 ports=$5 a
	shift 5
	yaml_slice_head "$ns" "$svc" "$slice" "$fam" "$ports" $#
	for a in "$@"; do
		echo "      - {addresses: [\"$a\"], conditions: {ready: true}, nodeName: node-a}"
	done
}

# e2e_write_config: replace E2E_CONFIG with stdin atomically (a reader never
# sees half a file).
e2e_write_config() {
	cat >"$E2E_CONFIG.tmp" && mv "$E2E_CONFIG.tmp" "$E2E_CONFIG"
}

# has_lines FILE N: FILE has at least N non-empty lines (for cl_until,
# which must re-evaluate the count on every try).
has_lines() { [ "$(grep -c . "$1" 2>/dev/null)" -ge "$2" ]; }

# e2e_http_status NS URL: "CODE BODY" of one GET from NS, the body's lines
# joined by spaces ("200 ok", "503 not synced"); CODE is 000 when nothing
# answered. The status code is what probes (kubelet's) act on, so tests
# compare both.
e2e_http_status() {
	local out
	out=$(ip netns exec "$1" curl -s --max-time 5 -w '\n%{http_code}' "$2")
	echo "${out##*$'\n'} $(echo "${out%$'\n'*}" | tr '\n' ' ' | sed 's/ *$//')"
}

# ---- Traffic checks ----------------------------------------------------------

# Results of the last e2e_http_n / e2e_udp_n: how many answered, how many
# failed, the distinct backends, and the first error seen.
E2E_OK=0 E2E_BAD=0 E2E_BACKENDS="" E2E_FIRST_ERR=""

# e2e_stats_snap FILE: the node's per-hook counters now, as "hook.counter
# value" lines (svcplane stats --json).
e2e_stats_snap() {
	sp "$E2E_NODE" stats --json |
		"$CL_PY" -c '
import json, sys
d = json.load(sys.stdin)
for h, cs in d["by_hook"].items():
    for k, v in cs.items():
        print("%s.%s %d" % (h, k, v))' >"$1"
}
# e2e_stats_delta A B HOOK.COUNTER: how much HOOK.COUNTER grew from
# snapshot A to B (e2e_stats_snap).
e2e_stats_delta() {
	local a b
	a=$(awk -v k="$3" '$1 == k { print $2 }' "$1")
	b=$(awk -v k="$3" '$1 == k { print $2 }' "$2")
	echo $((${b:-0} - ${a:-0}))
}
e2e_count() { # reads result lines on stdin
	local lines
	lines=$(cat)
	E2E_OK=$(echo "$lines" | grep -vc '^ERR\|^$')
	E2E_BAD=$(echo "$lines" | grep -c '^ERR')
	E2E_BACKENDS=$(echo "$lines" | grep -v '^ERR\|^$' | sort -u | tr '\n' ' ' | sed 's/ $//')
	E2E_FIRST_ERR=$(echo "$lines" | grep -m1 '^ERR')
}

# e2e_http_n NS ADDR PORT N / e2e_udp_n NS ADDR PORT N: N requests, counted.
# (Through a file, not a pipe: the last part of a pipeline runs in a
# subshell and would lose the counts.)
e2e_http_n() { cl_http_many "$@" >"$CL_TMP/results"; e2e_count <"$CL_TMP/results"; }
e2e_udp_n() { cl_udp "$@" >"$CL_TMP/results"; e2e_count <"$CL_TMP/results"; }

# e2e_expect_all CASE N MIN-BACKENDS [ALLOWED-BACKENDS]: after e2e_http_n or
# e2e_udp_n: PASS if all N answered, from at least MIN-BACKENDS distinct
# backends, all of them in ALLOWED-BACKENDS (space-separated) when given.
e2e_expect_all() {
	local c=$1 n=$2 min=$3 allowed=${4:-} b nb
	nb=$(echo "$E2E_BACKENDS" | wc -w)
	if [ "$E2E_OK" -ne "$n" ]; then
		fail "$c" "$E2E_OK of $n answered; first error: $E2E_FIRST_ERR"
		return 1
	fi
	if [ "$nb" -lt "$min" ]; then
		fail "$c" "answers came from $nb backend(s) ($E2E_BACKENDS), expected at least $min"
		return 1
	fi
	if [ -n "$allowed" ]; then
		for b in $E2E_BACKENDS; do
			if [[ " $allowed " != *" $b "* ]]; then
				fail "$c" "answered by $b, expected only: $allowed"
				return 1
			fi
		done
	fi
	pass "$c"
}

# e2e_refused CASE tcp|udp NS ADDR PORT: PASS if the client sees
# ECONNREFUSED (TCP RST / ICMP port unreachable) within a second.
e2e_refused() {
	local c=$1 proto=$2 ns=$3 addr=$4 port=$5 out ms
	if [ "$proto" = tcp ]; then
		out=$(cl_connect "$ns" "$addr" "$port")
	else
		out=$(cl_udp "$ns" "$addr" "$port")
	fi
	if [[ $out =~ ^ERR\ ECONNREFUSED\ ([0-9]+)ms ]]; then
		ms=${BASH_REMATCH[1]}
		if [ "$ms" -lt 1000 ]; then pass "$c"; else fail "$c" "refused, but only after ${ms} ms"; fi
	else
		fail "$c" "expected ECONNREFUSED within 1 s, got: ${out:-nothing}"
	fi
}

# ---- Map state -----------------------------------------------------------------

# e2e_maps_dump: the maps the config writes (not conntrack or counters) on
# E2E_NODE, dumped with bpftool (not svcplane), one sorted line per entry
# under an "== MAP" header, for comparing states: "the running state is
# exactly what it was". sp_maglev is left out for size (32 MiB by
# default); a table written anew goes to a new region, which shows in
# sp_services. A map that cannot be read gives "ERR unreadable".
E2E_CONFIG_MAPS="sp_services sp_backends sp_svc_meta sp_svc_backends sp_node_addrs"
e2e_maps_dump() {
	local m
	for m in $E2E_CONFIG_MAPS; do
		echo "== $m"
		ip netns exec "$E2E_NODE" bpftool -j map dump pinned "$CL_PINDIR/$m" 2>&1 |
			"$CL_PY" -c '
import json, sys
try:
    es = json.load(sys.stdin)
except ValueError:
    print("ERR unreadable"); sys.exit()
for e in sorted(json.dumps(e.get("formatted", e), sort_keys=True) for e in es):
    print(e)'
	done
}

# e2e_maps_diff BEFORE AFTER: the first lines that differ between two
# e2e_maps_dump outputs, on one line ("" if none).
e2e_maps_diff() {
	diff <(echo "$1") <(echo "$2") | grep '^[<>]' | head -6 | cut -c1-200 | tr '\n' ' '
}
