#!/bin/bash
# svcplane benchmarks, side by side with kube-proxy's iptables and nftables
# modes and the machine's limit, in one run on this machine (issue 5).
# `make bench` runs it; QUICK=1 for the short version (< 3 min; full < 15).
#
# Parts: 1 per-packet cost (bench_pkt, BPF_PROG_TEST_RUN), 2 packet rate
# (pktgen, XDP live frames), 3 new TCP connections (connbench + echo_server),
# 4 control plane (time to program N Services and one endpoint change),
# 5 memory. Every figure is the median of several runs with min and max;
# ratios compare figures of this same run. Writes docs/BENCHMARKS.md and
# docs/bench/*.png (gnuplot). Benchmarks print figures; a slow run never
# fails the script. Everything runs in namespaces named spb<PID>-*, removed
# on every exit path (see scripts/bench/topo.sh).
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

[ "$(id -u)" = 0 ] || { echo "bench: must run as root (namespaces, BPF)" >&2; exit 1; }
source "$GEN/topo.sh"
RES=$(mktemp -d /tmp/svcplane-bench.XXXXXX)
PKT_PIN=/sys/fs/bpf/svcplane-bench-$$
SP_PIN="$TOPO_BPFFS/svcplane"
SP_PID=
cleanup() {
	if [ -n "$SP_PID" ]; then topo_kill "$SP_PID"; fi
	topo_down
	rm -rf "$PKT_PIN" "$RES"
}
trap cleanup EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT TERM

say() { printf '%s\n' "$*" >&2; }
now() { date +%s.%N; }
elapsed_ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }
# rec PART N MODE METRIC VALUE: one raw figure of one run.
rec() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RES/raw.tsv"; }
# kv LINE KEY: the value of key=value in a tool's output line.
kv() { printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1; }

have_tools=1
for t in bench_pkt pktgen connbench echo_server; do
	[ -x "$TOOLS/$t" ] || { say "bench: $TOOLS/$t missing (run make)"; have_tools=0; }
done
[ $have_tools = 1 ] || exit 1
have_sp=0
[ -x "$SP_BIN" ] && have_sp=1
[ $have_sp = 1 ] || say "bench: $SP_BIN missing: svcplane columns stay empty"
T0=$(now)
echo "$(cut -d' ' -f1-3 /proc/loadavg)" >"$RES/load-start"

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
pg() { # pktgen MODE N DST DPORT SINK_NS SINK_IF SINK_PORT [PASS]
	local mode=$1 n=$2 dst=$3 dport=$4 sns=$5 sif=$6 sport=$7 pass=${8:-} r line extra=()
	[ -n "$pass" ] && extra=(--pass-netns "/run/netns/$TN_NS" --pass-ifname up0)
	for ((r = 0; r < RUNS; r++)); do
		line=$(ip netns exec "$TC_NS" "$TOOLS/pktgen" --tx-ifname cl0 --dst-mac "$UMAC" \
			--src-ip "$CLIENT_IP" --dst-ip "$dst" --dport "$dport" --sink-netns "/run/netns/$sns" \
			--sink-ifname "$sif" --sink-port "$sport" --duration "$PG_DUR" --warmup 0.2 \
			"${extra[@]}" 2>>"$RES/pktgen.err") || { say "  pktgen $mode N=$n failed"; continue; }
		say "  pktgen $mode N=$n: $line"
		rec pps "$n" "$mode" mpps "$(kv "$line" rx_mpps)"
	done
}

cb() { # connbench MODE N ADDR PORT
	local mode=$1 n=$2 addr=$3 port=$4 r line
	for ((r = 0; r < RUNS; r++)); do
		line=$(ip netns exec "$TC_NS" "$TOOLS/connbench" --addr "$addr" --port "$port" --threads 2 \
			--duration "$CB_DUR" --timeout 1 2>>"$RES/connbench.err") ||
			{ say "  connbench $mode N=$n failed: $line"; continue; }
		say "  connbench $mode N=$n: $line"
		rec conn "$n" "$mode" cps "$(kv "$line" conn_per_s)"
		rec conn "$n" "$mode" p50 "$(kv "$line" connect_p50_us)"
		rec conn "$n" "$mode" p99 "$(kv "$line" connect_p99_us)"
		rec conn "$n" "$mode" errors "$(kv "$line" errors)"
	done
}

# ---- svcplane -----------------------------------------------------------------
# The sp_services key of the Service under test (10.96.0.1:80), as bpftool hex.
sp_key() { # tcp|udp
	local p=06
	[ "$1" = udp ] && p=11
	echo "0a 60 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00 50 $p 04"
}
# Prints the value (JSON) when the key is there, nothing otherwise.
sp_lookup() {
	local v
	# shellcheck disable=SC2046 # the key is a list of hex bytes
	v=$(bpftool -j map lookup pinned "$SP_PIN/sp_services" key hex $(sp_key "$1") 2>/dev/null) &&
		printf '%s\n' "$v"
}
sp_alive() { [ -n "$SP_PID" ] && [ -r "/proc/$SP_PID/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$SP_PID/status" 2>/dev/null; }
# sp_wait COND PROTO [OLD]: poll (bounded, 20 s) until the key is present
# (COND=present), absent, or its value differs from OLD (COND=changed).
# Fails at once if the daemon is gone.
sp_wait() {
	local cond=$1 proto=$2 old=${3:-} i v deadline=$((SECONDS + 20))
	for ((i = 0; i < 20000 && SECONDS < deadline; i++)); do
		sp_alive || { say "  svcplane daemon exited:"; tail -q -n 3 "$RES"/daemon-*.log | sed 's/^/    /' >&2; return 1; }
		v=$(sp_lookup "$proto")
		case $cond in
		present) [ -n "$v" ] && return 0 ;;
		absent) [ -z "$v" ] && return 0 ;;
		changed) [ -n "$v" ] && [ "$v" != "$old" ] && return 0 ;;
		esac
	done
	return 1
}
sp_apply() {
	sp_alive || return 1
	cp "$1" "$RES/sp.yaml.tmp" && mv "$RES/sp.yaml.tmp" "$RES/sp.yaml" && kill -HUP "$SP_PID"
}

sp_start() {
	"$GEN/gen-config.sh" 0 $E >"$RES/sp.yaml"
	local n=$1
	topo_bg "$TN_NS" "$RES/daemon-$n.log" "$SP_BIN" run --config "$RES/sp.yaml" --iface up0 \
		--pod-iface-pattern 'spv*' --bpffs-dir "$SP_PIN" --max-services $((2 * n + 64)) \
		--max-backends $((2 * n * E + 64))
	SP_PID=$TOPO_LAST_PID
	local i
	for ((i = 0; i < 150; i++)); do
		ip netns exec "$TN_NS" "$SP_BIN" status --bpffs-dir "$SP_PIN" >/dev/null 2>&1 && return 0
		kill -0 "$SP_PID" 2>/dev/null || break
		sleep 0.1
	done
	say "  svcplane did not become ready:"
	tail -5 "$RES/daemon-$n.log" | sed 's/^/    /' >&2
	return 1
}

sp_stop() {
	[ -n "$SP_PID" ] && topo_kill "$SP_PID"
	SP_PID=
	ip netns exec "$TN_NS" "$SP_BIN" detach --bpffs-dir "$SP_PIN" >/dev/null 2>&1
	# Belt and braces: nothing of ours may stay on the node's devices.
	ip -n "$TN_NS" link set up0 xdp off 2>/dev/null
	ip -n "$TN_NS" link set spv1 xdp off 2>/dev/null
	tc -n "$TN_NS" qdisc del dev up0 clsact 2>/dev/null
	tc -n "$TN_NS" qdisc del dev spv1 clsact 2>/dev/null
	rm -rf "$SP_PIN"
	return 0
}

mode_svcplane() {
	local n=$1 r t0 old
	[ $have_sp = 1 ] || return 0
	sp_start "$n" || { sp_stop; return 0; }
	for ((r = 0; r < RUNS; r++)); do
		t0=$(now)
		sp_apply "$RES/cfg-tcp.yaml"
		sp_wait present tcp || { say "  svcplane: N=$n not programmed within 20 s"; break; }
		rec cp "$n" svcplane full_ms "$(elapsed_ms "$t0" "$(now)")"
		old=$(sp_lookup tcp)
		t0=$(now)
		sp_apply "$RES/cfg-tcp-change.yaml"
		sp_wait changed tcp "$old" || { say "  svcplane: change not applied within 20 s"; break; }
		rec cp "$n" svcplane change_ms "$(elapsed_ms "$t0" "$(now)")"
		if [ $r = 0 ]; then # memory with N Services programmed
			local mem=0 f b
			for f in "$SP_PIN"/sp_*; do
				b=$(bpftool -j map show pinned "$f" 2>/dev/null | sed -n 's/.*"bytes_memlock":\([0-9]*\).*/\1/p')
				mem=$((mem + ${b:-0}))
			done
			rec mem "$n" svcplane memlock_mib "$(awk -v b=$mem 'BEGIN { printf "%.2f", b / 1048576 }')"
			rec mem "$n" svcplane rss_mib "$(awk '/^VmRSS/ { printf "%.2f", $2 / 1024 }' /proc/$SP_PID/status)"
		fi
		sp_apply "$RES/cfg-empty.yaml"
		sp_wait absent tcp || { say "  svcplane: empty config not applied within 20 s"; break; }
	done
	say "  svcplane N=$n control plane done"
	if ! ip netns exec "$TN_NS" bpftool net show dev up0 2>/dev/null | grep -q sp_xdp; then
		say "  svcplane: no sp_xdp on up0; the traffic parts are skipped"
		sp_stop
		return 0
	fi
	sp_apply "$RES/cfg-tcp.yaml" && sp_wait present tcp && cb svcplane "$n" 10.96.0.1 80
	sp_apply "$RES/cfg-udp.yaml" && sp_wait present udp &&
		pg svcplane "$n" 10.96.0.1 80 "$TP_NS" eth0 8080
	sp_stop
}

# ---- iptables / nftables --------------------------------------------------------
mode_rules() { # iptables|nftables N
	local m=$1 n=$2 r t0 load change
	if [ "$m" = iptables ]; then
		load=(iptables-restore) change=(iptables-restore --noflush)
	else
		load=(nft -f -) change=(nft -f -)
	fi
	# Loading 10,000 Services takes iptables-restore and nft a minute or more:
	# one run there keeps `make bench` under 15 minutes (noted in the report).
	local cp_runs=$RUNS
	[ "$n" -ge 10000 ] && cp_runs=1
	for ((r = 0; r < cp_runs; r++)); do
		topo_flush_rules
		t0=$(now)
		ip netns exec "$TN_NS" "${load[@]}" <"$RES/$m-tcp.rules" || { say "  $m: load failed"; break; }
		rec cp "$n" "$m" full_ms "$(elapsed_ms "$t0" "$(now)")"
		t0=$(now)
		ip netns exec "$TN_NS" "${change[@]}" <"$RES/$m-tcp-change.rules" || { say "  $m: change failed"; break; }
		rec cp "$n" "$m" change_ms "$(elapsed_ms "$t0" "$(now)")"
	done
	say "  $m N=$n control plane done"
	cb "$m" "$n" 10.96.0.1 80
	topo_flush_rules
	ip netns exec "$TN_NS" "${load[@]}" <"$RES/$m-udp.rules" && pg "$m" "$n" 10.96.0.1 80 "$TP_NS" eth0 8080 pass
	topo_flush_rules
}

part_net() {
	local n
	say "== topology"
	topo_up || { say "bench: topology failed"; return 1; }
	UMAC=$(topo_mac "$TN_NS" up0)
	topo_bg "$TP_NS" "$RES/echo.log" "$TOOLS/echo_server" --port 8080 --threads 2
	sleep 0.3
	say "== direct (no Service in between)"
	cb direct 0 10.244.0.11 8080
	pg direct 0 10.244.0.11 8080 "$TP_NS" eth0 8080 pass
	for n in "${NS_LIST[@]}"; do
		say "== N=$n Services x $E endpoints ($(elapsed_ms "$T0" "$(now)" | cut -d. -f1) ms so far)"
		"$GEN/gen-iptables.sh" "$n" $E tcp >"$RES/iptables-tcp.rules"
		"$GEN/gen-iptables.sh" --change "$n" $E tcp >"$RES/iptables-tcp-change.rules"
		"$GEN/gen-iptables.sh" "$n" $E udp >"$RES/iptables-udp.rules"
		"$GEN/gen-nft.sh" "$n" $E tcp >"$RES/nftables-tcp.rules"
		"$GEN/gen-nft.sh" --change "$n" $E tcp >"$RES/nftables-tcp-change.rules"
		"$GEN/gen-nft.sh" "$n" $E udp >"$RES/nftables-udp.rules"
		"$GEN/gen-config.sh" "$n" $E tcp >"$RES/cfg-tcp.yaml"
		"$GEN/gen-config.sh" --change "$n" $E tcp >"$RES/cfg-tcp-change.yaml"
		"$GEN/gen-config.sh" "$n" $E udp >"$RES/cfg-udp.yaml"
		"$GEN/gen-config.sh" 0 $E >"$RES/cfg-empty.yaml"
		mode_svcplane "$n"
		mode_rules iptables "$n"
		mode_rules nftables "$n"
		say "  limit: the generator into an XDP program that only drops"
		pg limit "$n" 10.96.0.1 80 "$TN_NS" up0 0
	done
}

part_pkt
part_net
say "== writing $DOC and $PLOTS/*.png ($(elapsed_ms "$T0" "$(now)" | cut -d. -f1) ms in all)"
echo "$(cut -d' ' -f1-3 /proc/loadavg)" >"$RES/load-end"
"$GEN/report.sh" "$RES" "$DOC" "$PLOTS" "${QUICK:+quick}"
