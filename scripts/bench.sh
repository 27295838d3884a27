#!/bin/bash
# svcplane benchmarks, side by side with kube-proxy's iptables and nftables
# modes and the machine's limit, in one run on this machine (issue 5).
# `make bench` runs it; QUICK=1 for the short version (< 5 min; full < 20; the
# multinode part takes < 3 and < 8 of those).
#
# Parts: 1 per-packet cost (bench_pkt, BPF_PROG_TEST_RUN), 2 packet rate
# (pktgen, XDP live frames), 3 new TCP connections (connbench + echo_server),
# 4 control plane (time to program N Services and one endpoint change),
# 5 memory, and the part "multinode" (scripts/bench/multinode.sh: external
# client -> LoadBalancer IP -> pod on another node, conn/s and Mpps, written
# as section 8). Every figure is the median of several runs with min and max;
# ratios compare figures of this same run. Writes docs/BENCHMARKS.md and
# docs/bench/*.png (gnuplot). Benchmarks print figures; a slow run never
# fails the script. Everything runs in namespaces named spb<PID>-*, removed
# on every exit path (see scripts/bench/topo.sh).
#
# Modes, per N: svcplane (config file; XDP DNAT, the stack forwards to the
# pod), svcplane-k8s (the same datapath fed from scripts/k8s-test-apiserver.py:
# control plane only), svcplane-redirect (--xdp-redirect, XDP forwards both
# ways: traffic only), svcplane-generic (--xdp-mode generic: connections
# only), iptables, nftables, limit (a drop-only XDP program); direct (no
# Service) and the redirect ceiling once.
#
# Part "scale" (issue 11; section 9): SCALE_NS Services (default 100,000) of
# E endpoints from the config file: start -> ready, memory, `svcplane
# services`, traffic to the Service under test, the per-packet cost at that
# N, and the Maglev disruption sweep (maglev_bench --sweep).
#
# Knobs: QUICK=1; BENCH_KEEP=1 keeps the raw results (the path is printed);
# BENCH_PARTS=pkt, net, multinode or scale (a comma list; default all four)
# runs those parts: with multinode or scale alone, only section 8 or 9 of
# the doc is replaced; host (never by default: scripts/bench/host-compare.sh)
# writes section 10; SCALE_NS="10000 100000" (a list of N for scale);
# BENCH_DOC, BENCH_PLOTS: output paths.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
OUT=${OUT:-build}
case $OUT in /*) ;; *) OUT="$ROOT/$OUT" ;; esac
QUICK=${QUICK:-}
[ "$QUICK" = 0 ] && QUICK=
TOOLS=${TOOLS:-$OUT/tools}
SP_BIN=${SP_BIN:-$OUT/svcplane}
GEN=$ROOT/scripts/bench
DOC=${BENCH_DOC:-$ROOT/docs/BENCHMARKS.md}
PLOTS=${BENCH_PLOTS:-$ROOT/docs/bench}
E=10

if [ -n "$QUICK" ]; then
	NS_LIST=(1 1000)
	PKT_NS=1,1000,100000 PKT_REPEAT=200000 PKT_RUNS=3 PKT_FLOWS=100000
	RUNS=3 PG_DUR=0.7 CB_DUR=1
else
	NS_LIST=(1 100 1000 10000)
	PKT_NS=1,100,1000,10000,100000 PKT_REPEAT=1000000 PKT_RUNS=5 PKT_FLOWS=1000000
	RUNS=3 PG_DUR=1.5 CB_DUR=2
fi
LOAD_TIMEOUT=${LOAD_TIMEOUT:-300} # seconds, per iptables-restore / nft -f load

[ "$(id -u)" = 0 ] || { echo "bench: must run as root (namespaces, BPF)" >&2; exit 1; }
source "$GEN/topo.sh"
RES=$(mktemp -d /tmp/svcplane-bench.XXXXXX)
PKT_PIN=/sys/fs/bpf/svcplane-bench-$$
SP_PIN="$TOPO_BPFFS/svcplane"
SP_PID=
cleanup() {
	if [ -n "$SP_PID" ]; then sp_stop; fi
	topo_down
	rm -f "/run/svcplane/$(printf '%s' "$SP_PIN" | tr / _).pid" # the daemon's lock file
	rm -rf "$PKT_PIN"
	if [ -n "${BENCH_KEEP:-}" ]; then say "bench: raw results kept in $RES"; else rm -rf "$RES"; fi
}
trap cleanup EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT TERM

say() { printf '%s\n' "$*" >&2; }
now() { date +%s.%N; }
elapsed_ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }
# rec PART N MODE METRIC VALUE: one raw figure of one run, into RAW (the
# report's raw.tsv; the scale part keeps its own).
RAW="$RES/raw.tsv"
rec() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RAW"; }
# kv LINE KEY: the value of key=value in a tool's output line.
kv() { printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1; }

have_tools=1
for t in bench_pkt pktgen connbench echo_server; do
	[ -x "$TOOLS/$t" ] || { say "bench: $TOOLS/$t missing (run make)"; have_tools=0; }
done
[ $have_tools = 1 ] || exit 1
have_sp=0
[ -x "$SP_BIN" ] && have_sp=1
have_k8s=1
for t in python3 curl openssl; do
	command -v $t >/dev/null || { say "bench: $t missing: no svcplane-k8s figures"; have_k8s=0; }
done
[ $have_sp = 1 ] || say "bench: $SP_BIN missing: svcplane columns stay empty"
T0=$(now)
echo "$(cut -d' ' -f1-3 /proc/loadavg)" >"$RES/load-start"
echo "$LOAD_TIMEOUT" >"$RES/load-timeout"

# ---- Part 1: per-packet cost -------------------------------------------------
part_pkt() {
	say "== per-packet cost (BPF_PROG_TEST_RUN, N=$PKT_NS, repeat $PKT_REPEAT x $PKT_RUNS)"
	# In a network namespace of its own: sp_xdp's FIB lookups see no real routes.
	unshare --net "$TOOLS/bench_pkt" --services "$PKT_NS" --endpoints $E --repeat "$PKT_REPEAT" \
		--runs "$PKT_RUNS" --flows "$PKT_FLOWS" --pin-root "$PKT_PIN" >"$RES/pkt.txt" 2>"$RES/pkt.err"
	local rc=$?
	cat "$RES/pkt.txt" >&2
	[ $rc = 0 ] || { say "bench: bench_pkt exited $rc:"; sed 's/^/  /' "$RES/pkt.err" >&2; }
	rm -rf "$PKT_PIN"
}

# ---- Topology helpers ---------------------------------------------------------
UMAC=
# PASS: "pass" attaches an XDP_PASS program to up0 (a veth takes XDP frames
# only with one); "redirect" one that redirects every frame to spv1, the pod's
# veth, rewriting nothing (the ceiling of XDP forwarding on this path).
pg() { # pktgen MODE N DST DPORT SINK_NS SINK_IF SINK_PORT [PASS]
	local mode=$1 n=$2 dst=$3 dport=$4 sns=$5 sif=$6 sport=$7 pass=${8:-} r line extra=()
	[ -n "$pass" ] && extra=(--pass-netns "/run/netns/$TN_NS" --pass-ifname up0)
	[ "$pass" = redirect ] && extra+=(--pass-redirect spv1)
	# Counted at the sink's TC ingress: packets that host routing delivers
	# with bpf_redirect_peer never meet an XDP program on the pod's eth0
	# (they arrive as skbs). The limit alone drops in XDP on the uplink.
	[ "$mode" != limit ] && extra+=(--sink-tc)
	for ((r = 0; r < RUNS; r++)); do
		line=$(ip netns exec "$TC_NS" "$TOOLS/pktgen" --tx-ifname cl0 --dst-mac "$UMAC" \
			--src-ip "$CLIENT_IP" --dst-ip "$dst" --dport "$dport" --sink-netns "/run/netns/$sns" \
			--sink-ifname "$sif" --sink-port "$sport" --duration "$PG_DUR" --warmup 0.2 \
			"${extra[@]}" 2>>"$RES/pktgen.err") || { say "  pktgen $mode N=$n failed"; continue; }
		say "  pktgen $mode N=$n: $line"
		rec pps "$n" "$mode" mpps "$(kv "$line" rx_mpps)"
	done
}

# connbench MODE N ADDR PORT: the client closes first (echo_server
# --client-closes) and spreads its connections over many source addresses,
# so no run meets a TIME_WAIT left by an earlier connection: kube-proxy's
# rules masquerade this off-cluster client to the node address with random
# ports, and with the server closing first those tuples met the backend's
# TIME_WAIT sockets (a stale ACK, an RST and a 10 ms to 1 s retry).
cb() {
	local mode=$1 n=$2 addr=$3 port=$4 r line
	for ((r = 0; r < RUNS; r++)); do
		line=$(ip netns exec "$TC_NS" "$TOOLS/connbench" --addr "$addr" --port "$port" --threads 2 \
			--duration "$CB_DUR" --timeout 1 --src "$CLIENT_SRC" --src-count "$CLIENT_SRC_COUNT" \
			--client-closes 2>>"$RES/connbench.err") ||
			{ say "  connbench $mode N=$n failed: $line"; continue; }
		say "  connbench $mode N=$n: $line"
		rec conn "$n" "$mode" cps "$(kv "$line" conn_per_s)"
		rec conn "$n" "$mode" p50 "$(kv "$line" connect_p50_us)"
		rec conn "$n" "$mode" p99 "$(kv "$line" connect_p99_us)"
		rec conn "$n" "$mode" errors "$(kv "$line" errors)"
	done
}

# ---- svcplane -----------------------------------------------------------------
SP_LOG=
sp_alive() { [ -n "$SP_PID" ] && [ -r "/proc/$SP_PID/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$SP_PID/status" 2>/dev/null; }
# sp_xdp_on DEV [generic]: sp_xdp is attached to DEV (in generic mode).
sp_xdp_on() {
	local l
	l=$(ip -n "$TN_NS" link show dev "$1" 2>/dev/null)
	grep -q 'prog/xdp.* name sp_xdp' <<<"$l" && { [ "${2:-}" != generic ] || grep -q 'xdpgeneric' <<<"$l"; }
}

# sp_cp UNTIL PROTO [--config FILE | --exec CMD [--match STR]]: make a change
# and time it with `bench_pkt --cp-wait` (in the node namespace): install FILE
# as the daemon's config file by rename, as an operator would (the daemon
# watches the file; a SIGHUP would force the whole parse that a change by
# rename avoids, docs/CONFIG.md), or run CMD (a POST to the
# test API server); then wait until the Service under test's PROTO key is
# present / absent / changed in sp_services and the daemon has logged the
# apply (one whose line contains STR). With neither, only waits for the key.
# Prints "cp map_ms=.. log_ms=.. apply_ms=.."; fails on a timeout or if the
# daemon is gone.
sp_cp() {
	local until=$1 proto=$2 args=()
	shift 2
	sp_alive || { say "  svcplane daemon exited:"; tail -n 3 "$SP_LOG" | sed 's/^/    /' >&2; return 1; }
	case ${1:-} in
	--config)
		cp "$2" "$RES/sp.yaml.tmp" || return 1
		args=(--install "$RES/sp.yaml.tmp:$RES/sp.yaml" --log "$SP_LOG") ;;
	--exec)
		args=(--exec "$2" --log "$SP_LOG")
		[ "${3:-}" = --match ] && args+=(--log-match "$4") ;;
	esac
	ip netns exec "$TN_NS" "$TOOLS/bench_pkt" --cp-wait --map "$SP_PIN/sp_services" \
		--vip 10.96.0.1 --vport 80 --proto "$proto" --until "$until" --timeout 120 \
		"${args[@]}" 2>>"$RES/cp.err"
}

# sp_start MODE N SOURCE...: the daemon in the node namespace; waits until
# `svcplane status` says ready. SOURCE: --config FILE or --kubeconfig FILE ...
#   svcplane, svcplane-k8s: uplink up0, pod veths spv* (TC): XDP DNATs, the
#     stack forwards
#   svcplane-generic: as svcplane, with --xdp-mode generic on the uplink
#   svcplane-redirect: --xdp-redirect with up0 and spv1 both as uplinks, so
#     XDP forwards both directions itself (see the report's notes)
sp_start() {
	local mode=$1 n=$2 i args=(--iface up0 --pod-iface-pattern 'spv*')
	shift 2
	[ "$mode" = svcplane-redirect ] && args=(--iface up0 --iface spv1 --xdp-redirect)
	[ "$mode" = svcplane-generic ] && args+=(--xdp-mode generic)
	SP_LOG="$RES/daemon-$mode-$n.log"
	topo_bg "$TN_NS" "$SP_LOG" "$SP_BIN" run "$@" "${args[@]}" --bpffs-dir "$SP_PIN" \
		--max-services $((2 * n + 64)) --max-backends $((2 * n * E + 64))
	SP_PID=$TOPO_LAST_PID
	for ((i = 0; i < ${SP_READY_TRIES:-600}; i++)); do
		ip netns exec "$TN_NS" "$SP_BIN" status --bpffs-dir "$SP_PIN" >/dev/null 2>&1 && return 0
		kill -0 "$SP_PID" 2>/dev/null || break
		sleep 0.1
	done
	say "  svcplane ($mode) did not become ready:"
	tail -5 "$SP_LOG" | sed 's/^/    /' >&2
	return 1
}

sp_stop() {
	[ -n "$SP_PID" ] && topo_kill "$SP_PID"
	SP_PID=
	ip netns exec "$TN_NS" "$SP_BIN" detach --bpffs-dir "$SP_PIN" >/dev/null 2>&1
	# Belt and braces: nothing of ours may stay on the node's devices.
	local d
	for d in up0 spv1; do
		ip -n "$TN_NS" link set "$d" xdp off 2>/dev/null
		tc -n "$TN_NS" qdisc del dev "$d" clsact 2>/dev/null
	done
	rm -rf "$SP_PIN"
	return 0
}

# rec_cp MODE N WHAT LINE [SYNC]: the figures of one sp_cp line: end to end
# (the daemon's log line, else the map change) and, with SYNC, the daemon's
# own apply time.
rec_cp() {
	local mode=$1 n=$2 what=$3 line=$4 e2e
	e2e=$(kv "$line" log_ms)
	case $e2e in "" | -*) e2e=$(kv "$line" map_ms) ;; esac
	rec cp "$n" "$mode" "${what}_ms" "$e2e"
	[ -n "${5:-}" ] || return 0
	case $(kv "$line" apply_ms) in "" | -*) ;; *) rec cp "$n" "$mode" "${what}_sync_ms" "$(kv "$line" apply_ms)" ;; esac
}

sp_memory() { # N [PART]: BPF map memory and the daemon's RSS with N Services programmed
	local n=$1 part=${2:-mem} mem=0 f b
	for f in "$SP_PIN"/sp_*; do
		b=$(bpftool -j map show pinned "$f" 2>/dev/null | sed -n 's/.*"bytes_memlock":\([0-9]*\).*/\1/p')
		mem=$((mem + ${b:-0}))
		printf '%s\t%s\n' "$(basename "$f")" "${b:-0}" >>"$RES/memlock-$n.tsv"
	done
	rec "$part" "$n" svcplane memlock_mib "$(awk -v b=$mem 'BEGIN { printf "%.2f", b / 1048576 }')"
	rec "$part" "$n" svcplane rss_mib "$(awk '/^VmRSS/ { printf "%.2f", $2 / 1024 }' "/proc/$SP_PID/status")"
	rec "$part" "$n" svcplane hwm_mib "$(awk '/^VmHWM/ { printf "%.2f", $2 / 1024 }' "/proc/$SP_PID/status")"
	say "  svcplane N=$n memory: maps $(awk -v b=$mem 'BEGIN { printf "%.1f", b / 1048576 }') MiB," \
		"$(grep -E '^Vm(RSS|HWM)' "/proc/$SP_PID/status" | tr -s ' \t' ' ' | tr '\n' ' ')"
}

# Config file: control plane, memory, then the traffic parts.
mode_svcplane() {
	local n=$1 r line
	[ $have_sp = 1 ] || return 0
	sp_start svcplane "$n" --config "$RES/sp.yaml" || { sp_stop; return 0; }
	for ((r = 0; r < RUNS; r++)); do
		line=$(sp_cp present tcp --config "$RES/cfg.yaml") || { say "  svcplane: N=$n not programmed: $line"; break; }
		say "  svcplane N=$n from empty: $line"
		rec_cp svcplane "$n" full "$line" sync
		line=$(sp_cp changed tcp --config "$RES/cfg-change.yaml") || { say "  svcplane: change not applied: $line"; break; }
		say "  svcplane N=$n one endpoint change: $line"
		rec_cp svcplane "$n" change "$line" sync
		[ $r = 0 ] && sp_memory "$n"
		line=$(sp_cp absent tcp --config "$RES/cfg-empty.yaml") || { say "  svcplane: empty config not applied: $line"; break; }
	done
	sp_traffic svcplane "$n" up0
	sp_stop
}

mode_svcplane_redirect() {
	local n=$1
	[ $have_sp = 1 ] || return 0
	cp "$RES/cfg.yaml" "$RES/sp.yaml"
	sp_start svcplane-redirect "$n" --config "$RES/sp.yaml" || { sp_stop; return 0; }
	sp_traffic svcplane-redirect "$n" up0 spv1
	sp_stop
}

# The first configuration with generic XDP on the uplink (section 3): new TCP
# connections only. The generator's XDP frames reach a veth only when it has
# a native XDP program (or GRO), so part 2 has no generic row.
mode_svcplane_generic() {
	local n=$1
	[ $have_sp = 1 ] || return 0
	cp "$RES/cfg.yaml" "$RES/sp.yaml"
	sp_start svcplane-generic "$n" --config "$RES/sp.yaml" || { sp_stop; return 0; }
	if ! sp_xdp_on up0 generic; then
		say "  svcplane-generic: no generic XDP program on up0; skipped"
	elif sp_cp present tcp >/dev/null; then
		cb svcplane-generic "$n" 10.96.0.1 80
	else
		say "  svcplane-generic: Service under test not in sp_services; skipped"
	fi
	sp_stop
}

# The Kubernetes API source: scripts/k8s-test-apiserver.py in the node
# namespace, holding the 2N objects before the daemon starts. From empty: the
# daemon's "running:" log line (programs loaded and attached) to its first
# applied snapshot (list in pages, parse, resolve, write the maps). Then one
# EndpointSlice change (and back) per run, POSTed to the server.
API_PID=
log_ts() { # FILE PATTERN: seconds of the day of the first line matching PATTERN
	grep -m1 -e "$2" "$1" 2>/dev/null | cut -d' ' -f1 | awk -F: 'NF == 3 { printf "%.3f\n", $1 * 3600 + $2 * 60 + $3 }'
}
mode_svcplane_k8s() {
	local n=$1 r line dir adm i post t_run t_app
	dir="$RES/api-$n"
	[ $have_sp = 1 ] && [ $have_k8s = 1 ] || return 0
	"$GEN/gen-k8s.py" "$n" $E tcp,udp >"$RES/k8s.json" &&
		"$GEN/gen-k8s.py" --change "$n" $E tcp,udp >"$RES/k8s-change.json" &&
		"$GEN/gen-k8s.py" --slice0 "$n" $E tcp,udp >"$RES/k8s-slice0.json" ||
		{ say "  svcplane-k8s: gen-k8s.py failed"; return 0; }
	mkdir -p "$dir"
	topo_bg "$TN_NS" "$RES/apiserver-$n.log" python3 "$ROOT/scripts/k8s-test-apiserver.py" serve \
		--dir "$dir" --history 1000 --bookmark-interval 5
	API_PID=$TOPO_LAST_PID
	for ((i = 0; i < 200; i++)); do
		[ -s "$dir/ready" ] && break
		kill -0 "$API_PID" 2>/dev/null || break
		sleep 0.1
	done
	adm=$(sed -n 's/.*"admin_port": *\([0-9]*\).*/\1/p' "$dir/ready" 2>/dev/null)
	post="curl -sf -o /dev/null --max-time 300 -X POST -H Content-Type:application/json http://127.0.0.1:$adm/apply --data-binary @"
	if [ -z "$adm" ] || ! ip netns exec "$TN_NS" sh -c "${post}$RES/k8s.json"; then
		say "  svcplane-k8s: the test API server did not start or take the objects:"
		tail -3 "$RES/apiserver-$n.log" | sed 's/^/    /' >&2
		topo_kill "$API_PID"
		return 0
	fi
	if sp_start svcplane-k8s "$n" --kubeconfig "$dir/kubeconfig" --node-name bench-node; then
		t_run=$(log_ts "$SP_LOG" ' info: running: ')
		t_app=$(log_ts "$SP_LOG" 'Kubernetes API snapshot applied')
		line=$(grep -m1 'Kubernetes API snapshot applied' "$SP_LOG")
		if [ -n "$t_run" ] && [ -n "$t_app" ]; then
			rec cp "$n" svcplane-k8s full_ms "$(awk -v a="$t_run" -v b="$t_app" 'BEGIN { d = b - a; if (d < 0) d += 86400; printf "%.1f", d * 1000 }')"
			rec cp "$n" svcplane-k8s full_sync_ms "$(printf '%s\n' "$line" | sed -n 's/.* applied in \([0-9.]*\) ms.*/\1/p')"
			say "  svcplane-k8s N=$n first sync: $(printf '%s\n' "$line" | cut -d' ' -f3-)"
		fi
		for ((r = 0; r < RUNS; r++)); do
			# A change after a quiet period: one right after the
			# last apply waits out --min-sync-period (100 ms) first.
			sleep 0.3
			line=$(sp_cp changed tcp --exec "${post}$RES/k8s-change.json") ||
				{ say "  svcplane-k8s: change not applied: $line"; break; }
			say "  svcplane-k8s N=$n one endpoint change: $line"
			rec_cp svcplane-k8s "$n" change "$line" sync
			line=$(sp_cp changed tcp --exec "${post}$RES/k8s-slice0.json") ||
				{ say "  svcplane-k8s: change back not applied: $line"; break; }
		done
	fi
	sp_stop
	topo_kill "$API_PID"
	API_PID=
}

# sp_traffic MODE N DEV...: with the Service under test in the maps and
# sp_xdp on every DEV, new connections and the packet rate.
sp_traffic() {
	local mode=$1 n=$2 d line
	shift 2
	for d in "$@"; do
		sp_xdp_on "$d" || { say "  $mode: no sp_xdp on $d; traffic parts skipped"; return 0; }
	done
	if [ "$mode" = svcplane ]; then
		line=$(sp_cp present tcp --config "$RES/cfg.yaml") ||
			{ say "  $mode: N=$n not programmed: $line"; return 0; }
	fi
	sp_cp present tcp >/dev/null && sp_cp present udp >/dev/null ||
		{ say "  $mode: Service under test not in sp_services; traffic parts skipped"; return 0; }
	cb "$mode" "$n" 10.96.0.1 80
	pg "$mode" "$n" 10.96.0.1 80 "$TP_NS" eth0 8080
}

# ---- iptables / nftables --------------------------------------------------------
mode_rules() { # iptables|nftables N
	local m=$1 n=$2 r t0 load change ok=0 rc
	if [ "$m" = iptables ]; then
		load=(iptables-restore) change=(iptables-restore --noflush)
	else
		load=(nft -f -) change=(nft -f -)
	fi
	# At 10,000 Services one nft -f takes minutes (it grows as N^2 on this
	# kernel) and iptables-restore most of one: one run there, bounded by
	# LOAD_TIMEOUT, keeps `make bench` under 20 minutes (the report says so).
	local cp_runs=$RUNS
	[ "$n" -ge 10000 ] && cp_runs=1
	for ((r = 0; r < cp_runs; r++)); do
		topo_flush_rules
		t0=$(now)
		# bounded: a load that takes longer is reported as timed out
		timeout "$LOAD_TIMEOUT" ip netns exec "$TN_NS" "${load[@]}" <"$RES/$m.rules"
		rc=$?
		if [ $rc = 124 ]; then
			say "  $m: load of N=$n timed out after $LOAD_TIMEOUT s"
			rec cp "$n" "$m" full_timeout_s "$LOAD_TIMEOUT"
			ok=0
			break
		fi
		[ $rc = 0 ] || { say "  $m: load failed"; ok=0; break; }
		rec cp "$n" "$m" full_ms "$(elapsed_ms "$t0" "$(now)")"
		t0=$(now)
		ip netns exec "$TN_NS" "${change[@]}" <"$RES/$m-change.rules" || { say "  $m: change failed"; ok=0; break; }
		rec cp "$n" "$m" change_ms "$(elapsed_ms "$t0" "$(now)")"
		ok=1
	done
	say "  $m N=$n control plane: $(awk -F'\t' -v n="$n" -v m="$m" '$1 == "cp" && $2 == n && $3 == m { printf "%s=%s ", $4, $5 }' "$RES/raw.tsv")"
	# The traffic runs against the rule set as the last change left it.
	if [ $ok = 1 ]; then
		ip netns exec "$TN_NS" conntrack -F >/dev/null 2>&1
		cb "$m" "$n" 10.96.0.1 80
		pg "$m" "$n" 10.96.0.1 80 "$TP_NS" eth0 8080 pass
	fi
	topo_flush_rules
}

part_net() {
	local n
	say "== topology"
	topo_up || { say "bench: topology failed"; return 1; }
	UMAC=$(topo_mac "$TN_NS" up0)
	topo_bg "$TP_NS" "$RES/echo.log" "$TOOLS/echo_server" --port 8080 --threads 2 --client-closes
	sleep 0.3
	say "== direct (no Service in between)"
	cb direct 0 10.244.0.11 8080
	pg direct 0 10.244.0.11 8080 "$TP_NS" eth0 8080 pass
	say "== redirect ceiling (an XDP program on up0 that only redirects to spv1)"
	pg ceiling 0 10.244.0.11 8080 "$TP_NS" eth0 8080 redirect
	for n in "${NS_LIST[@]}"; do
		say "== N=$n Services x $E endpoints ($(elapsed_ms "$T0" "$(now)" | cut -d. -f1) ms so far)"
		# One rule set / config per N: the Service under test has a TCP and
		# a UDP port 80, so the same load serves connbench and pktgen.
		"$GEN/gen-iptables.sh" "$n" $E tcp,udp >"$RES/iptables.rules"
		"$GEN/gen-iptables.sh" --change "$n" $E tcp,udp >"$RES/iptables-change.rules"
		"$GEN/gen-nft.sh" "$n" $E tcp,udp >"$RES/nftables.rules"
		"$GEN/gen-nft.sh" --change "$n" $E tcp,udp >"$RES/nftables-change.rules"
		"$GEN/gen-config.sh" "$n" $E tcp,udp >"$RES/cfg.yaml"
		"$GEN/gen-config.sh" --change "$n" $E tcp,udp >"$RES/cfg-change.yaml"
		"$GEN/gen-config.sh" 0 $E >"$RES/cfg-empty.yaml"
		cp "$RES/cfg-empty.yaml" "$RES/sp.yaml"
		mode_svcplane "$n"
		mode_svcplane_k8s "$n"
		mode_svcplane_redirect "$n"
		mode_svcplane_generic "$n"
		mode_rules iptables "$n"
		mode_rules nftables "$n"
		say "  limit: the generator into an XDP program that only drops"
		pg limit "$n" 10.96.0.1 80 "$TN_NS" up0 0
	done
}

# ---- Part host: host routing against a base build (section 10) ------------------
# Not in the default parts: scripts/bench/host-compare.sh builds the base
# daemon (BASE_SP_BIN, e.g. main's) and runs this part alone. On part 2/3's
# topology, per N of HOST_NS (default "1 10000") and for HOST_ROUNDS rounds
# (default 3): direct, the base daemon, this daemon (host routing on, its
# default), this daemon with --host-routing=off, and the limit, one
# connbench and one pktgen run each, the modes alternated within each round
# so that load from elsewhere falls on all of them alike. pktgen counts at
# the pod's TC ingress, as in every part (pg): bpf_redirect_peer puts the
# packet into the device past its XDP hook, and a pod runs no XDP program
# anyway (the stack path then takes the veth's backlog queue, as it does in
# a real pod). The section is written by scripts/bench/host-report.sh.
HOST_NS=${HOST_NS:-1 10000}
HOST_ROUNDS=${HOST_ROUNDS:-3}
host_mode() { # MODE N BIN [ARGS...]: one daemon, one cb and pg run
	local mode=$1 n=$2 bin=$3
	shift 3
	cp "$RES/cfg.yaml" "$RES/sp.yaml"
	SP_BIN=$bin sp_start "$mode" "$n" --config "$RES/sp.yaml" "$@" || { sp_stop; return 0; }
	sp_traffic "$mode" "$n" up0
	# host-on also to the backend address: svcplane's programs attached but
	# no Service in the way, to tell their fixed cost (XDP on a veth
	# uplink, TC on the pod veth) from the Service's (NAT, conntrack).
	[ "$mode" = host-on ] && cb host-nosvc "$n" 10.244.0.11 8080
	sp_stop
}

part_host() {
	local n r runs=$RUNS
	[ -x "${BASE_SP_BIN:-}" ] || { say "bench: part host needs BASE_SP_BIN (scripts/bench/host-compare.sh)"; return 0; }
	[ $have_sp = 1 ] || return 0
	if ! ip netns pids "$TN_NS" >/dev/null 2>&1; then
		say "== topology"
		topo_up || { say "bench: topology failed"; return 1; }
		UMAC=$(topo_mac "$TN_NS" up0)
		topo_bg "$TP_NS" "$RES/echo.log" "$TOOLS/echo_server" --port 8080 --threads 2 --client-closes
		sleep 0.3
	fi
	echo "${BASE_REV:-the base build}" >"$RES/base-rev"
	RUNS=1
	for n in $HOST_NS; do
		"$GEN/gen-config.sh" "$n" $E tcp,udp >"$RES/cfg.yaml"
		for ((r = 0; r < HOST_ROUNDS; r++)); do
			say "== host routing: N=$n round $((r + 1)) of $HOST_ROUNDS"
			cb direct "$n" 10.244.0.11 8080
			pg direct "$n" 10.244.0.11 8080 "$TP_NS" eth0 8080 pass
			host_mode host-base "$n" "$BASE_SP_BIN"
			host_mode host-on "$n" "$SP_BIN"
			host_mode host-off "$n" "$SP_BIN" --host-routing=off
			pg limit "$n" 10.96.0.1 80 "$TN_NS" up0 0
		done
	done
	RUNS=$runs
	"$GEN/host-report.sh" "$RES" >"$RES/host.md" || say "bench: host-report.sh failed"
}

# ---- Part multinode: through two nodes (scripts/bench/multinode.sh) -----------
# Namespaces of its own (spb<PID>-m*), so part 2/3's topology goes first.
part_multinode() {
	topo_down
	MN_ID=$$ OUT="$OUT" TOOLS="$TOOLS" SP_BIN="$SP_BIN" QUICK="$QUICK" \
		"$GEN/multinode.sh" --section "$RES/multinode.md" ||
		say "bench: multinode.sh exited $?"
}

# ---- Part scale: 100,000 Services (issue 11), written as section 9 -----------
# Per N of SCALE_NS, on part 2/3's topology: the config file of N Services x E
# endpoints, the daemon started on it with maps sized for it (sp_maglev from
# check-config's own count); start -> `svcplane status` ready; map memory and
# RSS; `svcplane services` (text, --json) timed; the Service under test
# (svc0, the real pods) served: connbench and pktgen as in parts 2 and 3; a
# few Services from the middle and the end of the file looked up in
# sp_services. Then bench_pkt (part 1's harness) at the largest N, and
# maglev_bench --sweep. Figures go to $RES/scale.tsv, the section to
# $RES/scale.md.
SCALE_NS=${SCALE_NS:-100000}
# 4 endpoints each (issue 11's 10,000 Services had 4-10): 100,000 Services of
# 10 make a 95 MB file, beyond the config file's 64 MiB limit.
SCALE_E=${SCALE_E:-4}
scale_chunks() { # CONFIG: sp_maglev chunks its tables need, as svcplane counts them
	"$SP_BIN" check-config --max-services 4000000 --max-backends 16000000 --maglev-chunks 16 \
		"$1" >"$RES/scale-check.out" 2>&1
	sed -n 's/.*the Maglev tables need \([0-9]*\) chunks.*/\1/p' "$RES/scale-check.out" | head -1
}
scale_vip() { # I: Service i's ClusterIP (scripts/bench/addr.awk's vip())
	local v=$(($1 + 1))
	echo "10.$((96 + v / 65536)).$((v / 256 % 256)).$((v % 256))"
}
# scale_time NAME N CMD...: run CMD 3 times; record NAME_ms (wall) and
# NAME_cpu_ms (user + system: on a busy machine the wall time is mostly
# waiting for a CPU).
scale_time() {
	local name=$1 n=$2 r t0 ms cpu TIMEFORMAT='%U %S'
	shift 2
	for ((r = 0; r < 3; r++)); do
		t0=$(now)
		{ time "$@" >"$RES/scale-$name-$n.out" 2>&1; } 2>"$RES/scale-$name-$n.time" ||
			{ say "  $name N=$n failed:"; tail -3 "$RES/scale-$name-$n.out" >&2; return 1; }
		ms=$(elapsed_ms "$t0" "$(now)")
		cpu=$(awk '{ printf "%.1f", ($1 + $2) * 1000 }' "$RES/scale-$name-$n.time")
		rec scale "$n" svcplane "${name}_ms" "$ms"
		rec scale "$n" svcplane "${name}_cpu_ms" "$cpu"
	done
	say "  $name N=$n: $ms ms ($cpu ms CPU), $(wc -l <"$RES/scale-$name-$n.out") lines," \
		"$(wc -c <"$RES/scale-$name-$n.out") bytes"
}
part_scale() {
	local n chunks t0 i ok line E=$SCALE_E
	[ $have_sp = 1 ] || { say "bench: scale part needs $SP_BIN"; return 0; }
	RAW="$RES/scale.tsv"
	if ! ip netns list | grep -qx "$TN_NS\( .*\)\?"; then
		say "== topology"
		topo_up || { say "bench: topology failed"; RAW="$RES/raw.tsv"; return 1; }
		UMAC=$(topo_mac "$TN_NS" up0)
		topo_bg "$TP_NS" "$RES/echo.log" "$TOOLS/echo_server" --port 8080 --threads 2 --client-closes
		sleep 0.3
	fi
	for n in $SCALE_NS; do
		say "== scale: N=$n Services x $E endpoints ($(elapsed_ms "$T0" "$(now)" | cut -d. -f1) ms so far)"
		"$GEN/gen-config.sh" "$n" $E tcp,udp >"$RES/cfg.yaml"
		cp "$RES/cfg.yaml" "$RES/sp.yaml"
		chunks=$(scale_chunks "$RES/cfg.yaml")
		[ -n "$chunks" ] || { say "  check-config gave no chunk count: $(head -c 300 "$RES/scale-check.out")"; continue; }
		rec scale "$n" svcplane endpoints "$E"
		rec scale "$n" svcplane config_mib "$(awk -v b="$(wc -c <"$RES/cfg.yaml")" 'BEGIN { printf "%.1f", b / 1048576 }')"
		rec scale "$n" svcplane maglev_chunks_needed "$chunks"
		rec scale "$n" svcplane maglev_table_mib "$(awk -v c="$chunks" 'BEGIN { printf "%.2f", c * 64 / 1048576 }')"
		t0=$(now)
		# Room for one table switch on top (docs/MAGLEV.md).
		# Up to 5 minutes to ready (0.1 s polls): 100,000 Services on a loaded 2-core VM.
		if ! SP_READY_TRIES=3000 sp_start svcplane-scale "$n" --config "$RES/sp.yaml" \
			--maglev-chunks $((chunks + 4096)); then
			sp_stop
			continue
		fi
		rec scale "$n" svcplane ready_ms "$(elapsed_ms "$t0" "$(now)")"
		say "  start -> ready: $(elapsed_ms "$t0" "$(now)") ms; $(grep -m1 -o 'applied.*' "$SP_LOG" | head -c 200)"
		sp_memory "$n" scale
		scale_time services "$n" ip netns exec "$TN_NS" "$SP_BIN" services --bpffs-dir "$SP_PIN"
		scale_time services_json "$n" ip netns exec "$TN_NS" "$SP_BIN" services --json --bpffs-dir "$SP_PIN"
		# A few Services besides the one under test, across the file.
		ok=0
		for i in 1 $((n / 2)) $((n - 1)); do
			[ "$i" -ge 1 ] && [ "$i" -lt "$n" ] || continue
			line=$(ip netns exec "$TN_NS" "$TOOLS/bench_pkt" --cp-wait --map "$SP_PIN/sp_services" \
				--vip "$(scale_vip "$i")" --vport 80 --proto tcp --until present --timeout 10 2>&1) &&
				ok=$((ok + 1)) || say "  svc$i ($(scale_vip "$i")) not in sp_services: $line"
		done
		rec scale "$n" svcplane others_present "$ok"
		sp_traffic svcplane-scale "$n" up0
		sp_stop
	done
	n=${SCALE_NS##* }
	say "== scale: per-packet cost at N=$n (bench_pkt, repeat $PKT_REPEAT x $PKT_RUNS)"
	unshare --net "$TOOLS/bench_pkt" --services "$n" --endpoints $E --repeat "$PKT_REPEAT" \
		--runs "$PKT_RUNS" --flows "$PKT_FLOWS" --pin-root "$PKT_PIN" >"$RES/scale-pkt.txt" 2>"$RES/scale-pkt.err" ||
		{ say "bench: bench_pkt exited $?:"; sed 's/^/  /' "$RES/scale-pkt.err" >&2; }
	cat "$RES/scale-pkt.txt" >&2
	rm -rf "$PKT_PIN"
	say "== scale: Maglev disruption, N = 1..1000 (maglev_bench --sweep)"
	"$TOOLS/maglev_bench" --sweep ${QUICK:+--quick} >"$RES/scale-maglev.txt" 2>&1 ||
		say "bench: maglev_bench --sweep failed"
	cat "$RES/scale-maglev.txt" >&2
	RAW="$RES/raw.tsv"
	"$GEN/scale-report.sh" "$RES" >"$RES/scale.md" || say "bench: scale-report.sh failed"
}

# BENCH_PARTS (default pkt,net,multinode,scale) runs a subset, for working on the scripts.
PARTS=,${BENCH_PARTS:-pkt,net,multinode,scale},
case $PARTS in *,pkt,*) part_pkt ;; esac
case $PARTS in *,net,*) part_net ;; esac
case $PARTS in *,host,*) part_host ;; esac
case $PARTS in *,scale,*) part_scale ;; esac
case $PARTS in *,multinode,*) part_multinode ;; esac
case $PARTS in
*,pkt,* | *,net,*)
	say "== writing $DOC and $PLOTS/*.png ($(elapsed_ms "$T0" "$(now)" | cut -d. -f1) ms in all)"
	echo "$(cut -d' ' -f1-3 /proc/loadavg)" >"$RES/load-end"
	awk -v a="$T0" -v b="$(now)" 'BEGIN { printf "%d\n", b - a }' >"$RES/duration"
	date -u '+%Y-%m-%d %H:%M UTC' >"$RES/date"
	"$GEN/report.sh" "$RES" "$DOC" "$PLOTS" "${QUICK:+quick}"
	;;
esac
if [ -s "$RES/multinode.md" ]; then
	say "== section 8 (multinode) into $DOC"
	"$GEN/doc-section.sh" 8 "$RES/multinode.md" "$DOC"
fi
if [ -s "$RES/host.md" ]; then
	say "== section 10 (host routing) into $DOC"
	"$GEN/doc-section.sh" 10 "$RES/host.md" "$DOC"
fi
if [ -s "$RES/scale.md" ]; then
	say "== section 9 (scale) into $DOC"
	"$GEN/doc-section.sh" 9 "$RES/scale.md" "$DOC"
fi
