#!/bin/bash
# xdp-veth.sh [ROUNDS] [SECONDS]: what an XDP program costs new TCP connections
# on a veth uplink by merely being there (issue 10's connections/s goal).
#
# On bench.sh's topology (scripts/bench/topo.sh: client -> node uplink up0 ->
# pod, over veths), connbench connects straight to the pod's address with no
# Service and no svcplane, in three configurations alternated in every round
# (default 5 rounds of 2 s):
#   none      nothing attached: the stack forwarding alone (bench.sh's *direct*)
#   native    an XDP program that only returns XDP_PASS, native mode, on up0
#   generic   the same program in generic (skb) mode on up0
# and prints the median conn/s of each and its ratio to *none*.
#
# Why it matters: a veth hands its XDP program a frame only after copying
# any skb that is cloned or short of XDP_PACKET_HEADROOM, which every TCP
# segment a local socket sends is (TCP keeps the original for
# retransmission), and then turns it back into an skb. A NIC's driver runs
# XDP on its receive buffers, before any skb exists. So on a veth uplink the
# native XDP hook alone takes its share of the connections/s that bench.sh
# part 3 and host-compare.sh measure as svcplane's "no svc" cost, whatever
# the program does. Uses build/tests/bench_pktgen.bpf.o (node_pass), pinned in
# the topology's private bpffs; everything is removed on exit.
set -u
cd "$(dirname "$0")/../.."
ROUNDS=${1:-5}
DUR=${2:-2}
OUT=${OUT:-build}
TOOLS=$PWD/$OUT/tools
OBJ=$PWD/$OUT/tests/bench_pktgen.bpf.o
RES=$(mktemp -d /tmp/svcplane-xdpveth.XXXXXX)
[ "$(id -u)" = 0 ] || { echo "xdp-veth: needs root (namespaces, BPF)" >&2; exit 1; }
make -s OUT="$OUT" all >/dev/null || exit 1
# shellcheck source=scripts/bench/topo.sh
source scripts/bench/topo.sh
trap 'topo_down; rm -rf "$RES"' EXIT
trap 'exit 1' INT TERM
topo_up || { echo "xdp-veth: topology failed" >&2; exit 1; }
topo_bg "$TP_NS" "$RES/echo.log" "$TOOLS/echo_server" --port 8080 --threads 2 --client-closes
sleep 0.3
PIN="$TOPO_BPFFS/xdpveth"
bpftool prog loadall "$OBJ" "$PIN" >/dev/null || { echo "xdp-veth: load $OBJ failed" >&2; exit 1; }

node_bpftool() { nsenter --net="/run/netns/$TN_NS" bpftool "$@"; }
cb() { # MODE: one connbench run, its conn/s appended to RES/MODE
	local line
	line=$(ip netns exec "$TC_NS" "$TOOLS/connbench" --addr 10.244.0.11 --port 8080 \
		--threads 2 --duration "$DUR" --timeout 1 --src "$CLIENT_SRC" \
		--src-count "$CLIENT_SRC_COUNT" --client-closes 2>>"$RES/connbench.err") || {
		echo "  connbench $1 failed" >&2
		return 0
	}
	line=$(sed -n 's/.*conn_per_s=\([0-9.]*\).*/\1/p' <<<"$line")
	echo "  $1: $line conn/s" >&2
	echo "$line" >>"$RES/$1"
}
median() { sort -n "$1" | awk '{v[NR] = $1} END {if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

for ((r = 1; r <= ROUNDS; r++)); do
	echo "== round $r of $ROUNDS" >&2
	cb none
	node_bpftool net attach xdpdrv pinned "$PIN/node_pass" dev up0 || exit 1
	cb native
	node_bpftool net detach xdpdrv dev up0
	node_bpftool net attach xdpgeneric pinned "$PIN/node_pass" dev up0 || exit 1
	cb generic
	node_bpftool net detach xdpgeneric dev up0
done
none=$(median "$RES/none")
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-8s %10s %8s\n' mode 'conn/s' '/ none'
for m in none native generic; do
	[ -s "$RES/$m" ] || continue
	v=$(median "$RES/$m")
	printf '%-8s %10.0f %8.2f\n' "$m" "$v" "$(awk -v a="$v" -v b="$none" 'BEGIN {print b ? a / b : 0}')"
done
