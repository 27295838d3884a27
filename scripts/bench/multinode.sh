#!/bin/bash
# External client -> LoadBalancer IP -> pod on ANOTHER node (DESIGN.md row 9,
# issue 8): new TCP connections per second and packets per second through two
# nodes, for every mode in the same topology, alternated round by round so a
# noisy machine affects all alike. Part "multinode" of scripts/bench.sh.
#
# usage: multinode.sh [--section FILE] [--doc FILE]
#   --section FILE: write the report section ("## 8. ...") to FILE
#   --doc FILE: replace (or add) section 8 of FILE with it (doc-section.sh)
#   QUICK=1: 3 rounds of 1 s / 0.7 s runs (< 3 min); else 5 rounds of 2 s / 1.5 s.
#
#   client ns (mc)           node A ns (ma)            node B ns (mb)          pod ns (mp)
#   cl0 192.168.77.2 ------- up0 192.168.77.1
#   LB 10.99.0.1/32 and      up1 10.10.0.1 ----------- up0 10.10.0.2
#   10.244.0.0/16 via A      10.244.1.0/24 via B       spv1 ------------------ eth0 10.244.1.11..14/32
#   cl1 192.168.78.2 ------------------------------------ dsr0 192.168.78.1
#   local 198.18.0.0/20      198.18.0.0/20 via cl0     198.18.0.0/20 via A (via cl1 with --dsr)
#
# Modes (node A receives the LB IP; the Service's endpoints are all on B):
#   direct           the client connects to the pod address, routed by A and
#                    B with no rule and no program: the reference
#   svcplane-snat    a daemon per node (--node-name, endpoints with nodeName):
#                    A DNATs and SNATs to its up1 address and a port of
#                    --snat-ports in TC on the uplink; replies come back to A
#   svcplane-dsr     both daemons with --dsr; B answers the client itself
#                    over dsr0 (only if `svcplane run --help` lists --dsr)
#   iptables         kube-proxy's iptables layout for an externalTrafficPolicy:
#                    Cluster LoadBalancer IP (KUBE-EXT-* marks for masquerade,
#                    KUBE-SVC-*/KUBE-SEP-* DNAT, KUBE-POSTROUTING masquerades),
#                    on both nodes as kube-proxy runs everywhere; no svcplane
#   nftables         kube-proxy's nftables layout of the same (service-ips
#                    map -> external-* chain -> mark-for-masquerade + service-*
#                    chain), on both nodes
#
# Tools: connbench + echo_server (as part 3 of bench.sh: the client closes
# first, sources spread over 198.18.0.0/20), pktgen (as part 2: 64-byte UDP,
# 64 flows, XDP live frames out of the client's cl0, counted by an XDP
# program on the pod's eth0; one way, so no reply path is measured by it).
# Names carry the PID: spb<PID>-m{c,a,b,p}; removed on every exit path.
# Benchmarks print figures: a slow or failed run never fails the script.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-build}
case $OUT in /*) ;; *) OUT="$ROOT/$OUT" ;; esac
TOOLS=${TOOLS:-$OUT/tools}
SP_BIN=${SP_BIN:-$OUT/svcplane}
QUICK=${QUICK:-}
[ "$QUICK" = 0 ] && QUICK=
SECTION="" DOC=""
while [ $# -gt 0 ]; do
	case $1 in
	--section) SECTION=$2; shift 2 ;;
	--doc) DOC=$2; shift 2 ;;
	*) echo "usage: multinode.sh [--section FILE] [--doc FILE]" >&2; exit 2 ;;
	esac
done
if [ -n "$QUICK" ]; then ROUNDS=3 CB_DUR=1 PG_DUR=0.7; else ROUNDS=5 CB_DUR=2 PG_DUR=1.5; fi

ID=${MN_ID:-$$}
MC="spb$ID-mc" MA="spb$ID-ma" MB="spb$ID-mb" MP="spb$ID-mp"
RUN="/run/svcplane-bench-mn-$ID"
BPFFS="$RUN/bpffs" # private bpffs: `ip netns exec` hides /sys/fs/bpf
LB=10.99.0.1
POD_FIRST=11 POD_COUNT=4 # endpoints 10.244.1.11..14, all on node B
CLIENT_SRC=198.18.0.1 CLIENT_SRC_COUNT=4094
RES=$(mktemp -d /tmp/svcplane-mnbench.XXXXXX)
PIDS=()
declare -A SP_PID

say() { printf '%s\n' "$*" >&2; }
now() { date +%s.%N; }
rec() { printf '%s\t%s\t%s\n' "$@" >>"$RES/raw.tsv"; } # MODE METRIC VALUE
kv() { printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1; }
mac() { ip -n "$1" -o link show "$2" | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p'; }

bg() { # NS LOG CMD...: in the background, remembered for the cleanup
	local ns=$1 log=$2; shift 2
	ip netns exec "$ns" "$@" >"$log" 2>&1 </dev/null &
	LAST_PID=$!
	PIDS+=("$LAST_PID")
}
kill_pid() { # PID: TERM, then KILL after a bounded wait. Only our own PIDs.
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

DOWN=0
mn_down() {
	local p ns
	[ $DOWN = 1 ] && return 0
	DOWN=1
	for p in "${PIDS[@]}"; do kill_pid "$p"; done
	for ns in "$MP" "$MB" "$MA" "$MC"; do ip netns del "$ns" 2>/dev/null; done
	if mountpoint -q "$BPFFS" 2>/dev/null; then umount "$BPFFS" 2>/dev/null || umount -l "$BPFFS"; fi
	rm -rf "$RUN"
	rm -f "/run/svcplane/$(printf '%s' "$BPFFS" | tr / _)"_*.pid # the daemons' lock files
	if [ -n "${BENCH_KEEP:-}" ]; then say "multinode: raw results kept in $RES"; else rm -rf "$RES"; fi
	return 0
}
trap mn_down EXIT
trap 'echo "multinode: interrupted" >&2; exit 130' INT TERM

# ---- topology ---------------------------------------------------------------------
mn_up() {
	local i ns pmac
	mkdir -p "$BPFFS" || return 1
	mountpoint -q "$BPFFS" || mount -t bpf bpf "$BPFFS" || return 1
	for ns in "$MC" "$MA" "$MB" "$MP"; do
		ip netns add "$ns" && ip -n "$ns" link set lo up || return 1
	done
	ip -n "$MC" link add cl0 type veth peer name up0 netns "$MA" || return 1
	ip -n "$MC" link add cl1 type veth peer name dsr0 netns "$MB" || return 1
	ip -n "$MA" link add up1 type veth peer name up0 netns "$MB" || return 1
	ip -n "$MB" link add spv1 type veth peer name eth0 netns "$MP" || return 1
	# client: sources in 198.18.0.0/20 (as part 3), the LB IP and the pods via A
	ip -n "$MC" addr add 192.168.77.2/24 dev cl0 && ip -n "$MC" link set cl0 up || return 1
	ip -n "$MC" addr add 192.168.78.2/24 dev cl1 && ip -n "$MC" link set cl1 up || return 1
	ip -n "$MC" route add "$LB/32" via 192.168.77.1 dev cl0 || return 1
	ip -n "$MC" route add 10.244.0.0/16 via 192.168.77.1 dev cl0 || return 1
	ip -n "$MC" route add local 198.18.0.0/20 dev lo || return 1
	ip netns exec "$MC" sysctl -qw net.ipv4.ip_local_port_range="1024 65535" \
		net.ipv4.tcp_tw_reuse=1 net.ipv4.conf.all.rp_filter=0 \
		net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.cl1.rp_filter=0 || return 1
	# nodes: forwarding, no reverse-path filter (DSR replies carry the LB IP)
	for ns in "$MA" "$MB"; do
		ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
			net.ipv4.conf.default.rp_filter=0 || return 1
	done
	ip -n "$MA" addr add 192.168.77.1/24 dev up0 && ip -n "$MA" link set up0 up || return 1
	ip -n "$MA" addr add 10.10.0.1/24 dev up1 && ip -n "$MA" link set up1 up || return 1
	ip -n "$MA" route add 10.244.1.0/24 via 10.10.0.2 dev up1 || return 1
	ip -n "$MA" route add 198.18.0.0/20 via 192.168.77.2 dev up0 || return 1
	ip -n "$MB" addr add 10.10.0.2/24 dev up0 && ip -n "$MB" link set up0 up || return 1
	ip -n "$MB" addr add 192.168.78.1/24 dev dsr0 && ip -n "$MB" link set dsr0 up || return 1
	ip -n "$MB" link set spv1 up || return 1
	ip netns exec "$MB" sysctl -qw net.ipv4.conf.spv1.proxy_arp=1 net.ipv4.conf.spv1.rp_filter=0 \
		net.ipv4.conf.up0.rp_filter=0 net.ipv4.conf.dsr0.rp_filter=0 || return 1
	mn_client_route via-a || return 1
	# pod: all endpoint addresses on one interface, Calico-style default route
	ip -n "$MP" link set eth0 up || return 1
	for ((i = POD_FIRST; i < POD_FIRST + POD_COUNT; i++)); do
		ip -n "$MP" addr add "10.244.1.$i/32" dev eth0 || return 1
		ip -n "$MB" route add "10.244.1.$i/32" dev spv1 || return 1
	done
	ip -n "$MP" route add 169.254.1.1 dev eth0 scope link || return 1
	ip -n "$MP" route add default via 169.254.1.1 dev eth0 || return 1
	ip netns exec "$MP" sysctl -qw net.core.somaxconn=4096 net.ipv4.tcp_max_syn_backlog=4096 || return 1
	# Permanent neighbours: no ARP between the generator and the pod.
	pmac=$(mac "$MP" eth0)
	for ((i = POD_FIRST; i < POD_FIRST + POD_COUNT; i++)); do
		ip -n "$MB" neigh replace "10.244.1.$i" lladdr "$pmac" dev spv1 nud permanent || return 1
	done
	ip -n "$MP" neigh replace 169.254.1.1 lladdr "$(mac "$MB" spv1)" dev eth0 nud permanent || return 1
	ip -n "$MC" neigh replace 192.168.77.1 lladdr "$(mac "$MA" up0)" dev cl0 nud permanent || return 1
	ip -n "$MA" neigh replace 192.168.77.2 lladdr "$(mac "$MC" cl0)" dev up0 nud permanent || return 1
	ip -n "$MA" neigh replace 10.10.0.2 lladdr "$(mac "$MB" up0)" dev up1 nud permanent || return 1
	ip -n "$MB" neigh replace 10.10.0.1 lladdr "$(mac "$MA" up1)" dev up0 nud permanent || return 1
	ip -n "$MB" neigh replace 192.168.78.2 lladdr "$(mac "$MC" cl1)" dev dsr0 nud permanent || return 1
	# As topo.sh: software checksums on the senders, GRO on every veth end
	# that XDP may redirect frames to.
	ip netns exec "$MC" ethtool -K cl0 tx off gro on >/dev/null || return 1
	ip netns exec "$MC" ethtool -K cl1 tx off gro on >/dev/null || return 1
	ip netns exec "$MP" ethtool -K eth0 tx off gro on >/dev/null || return 1
	ip netns exec "$MA" ethtool -K up1 gro on >/dev/null || return 1
	ip netns exec "$MB" ethtool -K up0 gro on >/dev/null || return 1
	ip netns exec "$MB" ethtool -K spv1 gro on >/dev/null || return 1
	ip netns exec "$MB" ethtool -K dsr0 gro on >/dev/null || return 1
}

# mn_client_route via-a|direct: node B's way back to the client: through
# node A (every mode but DSR) or over its own link to the client (DSR).
mn_client_route() {
	if [ "$1" = direct ]; then
		ip -n "$MB" route replace 198.18.0.0/20 via 192.168.78.2 dev dsr0 &&
			ip -n "$MB" route replace 192.168.77.0/24 via 192.168.78.2 dev dsr0
	else
		ip -n "$MB" route replace 198.18.0.0/20 via 10.10.0.1 dev up0 &&
			ip -n "$MB" route replace 192.168.77.0/24 via 10.10.0.1 dev up0
	fi
}

# ---- the Service -------------------------------------------------------------------
# A LoadBalancer Service (externalTrafficPolicy: Cluster, the default) with
# TCP and UDP port 80 -> 8080 on the four endpoints, all on node-b.
sp_config() {
	local i
	echo "services:"
	echo "  - {name: lb, namespace: bench, type: LoadBalancer, clusterIPs: [10.96.0.1], loadBalancerIPs: [$LB],"
	echo "     ports: [{name: tcp, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30080},"
	echo "             {name: udp, protocol: UDP, port: 80, targetPort: 8080, nodePort: 30080}]}"
	echo "endpointSlices:"
	echo "  - name: lb-a"
	echo "    namespace: bench"
	echo "    serviceName: lb"
	echo "    addressType: IPv4"
	echo "    ports: [{name: tcp, protocol: TCP, port: 8080}, {name: udp, protocol: UDP, port: 8080}]"
	echo "    endpoints:"
	for ((i = POD_FIRST; i < POD_FIRST + POD_COUNT; i++)); do
		echo "      - {addresses: [10.244.1.$i], conditions: {ready: true}, nodeName: node-b}"
	done
}

# kube-proxy's iptables layout for this Service's LoadBalancer IP (from the
# layout Kubernetes documents, as gen-iptables.sh): external traffic is
# marked for masquerade in KUBE-EXT-*, then KUBE-SVC-* picks an endpoint.
ipt_rules() {
	local p i j n=$POD_COUNT sep
	echo "*filter"
	echo ":KUBE-FORWARD - [0:0]"
	echo "-A FORWARD -j KUBE-FORWARD"
	echo "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP"
	echo "-A KUBE-FORWARD -m mark --mark 0x4000/0x4000 -j ACCEPT"
	echo "-A KUBE-FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
	echo "COMMIT"
	echo "*nat"
	echo ":KUBE-SERVICES - [0:0]"
	echo ":KUBE-NODEPORTS - [0:0]"
	echo ":KUBE-POSTROUTING - [0:0]"
	echo ":KUBE-MARK-MASQ - [0:0]"
	for p in tcp udp; do
		echo ":KUBE-SVC-${p^^}LB - [0:0]"
		echo ":KUBE-EXT-${p^^}LB - [0:0]"
		for ((i = 0; i < n; i++)); do echo ":KUBE-SEP-${p^^}$i - [0:0]"; done
	done
	echo "-A PREROUTING -j KUBE-SERVICES"
	echo "-A OUTPUT -j KUBE-SERVICES"
	echo "-A POSTROUTING -j KUBE-POSTROUTING"
	echo "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000"
	echo "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN"
	echo "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000"
	echo "-A KUBE-POSTROUTING -j MASQUERADE --random-fully"
	for p in tcp udp; do
		echo "-A KUBE-SERVICES -d 10.96.0.1/32 -p $p -m $p --dport 80 -j KUBE-SVC-${p^^}LB"
		echo "-A KUBE-SERVICES -d $LB/32 -p $p -m $p --dport 80 -j KUBE-EXT-${p^^}LB"
		echo "-A KUBE-EXT-${p^^}LB -j KUBE-MARK-MASQ"
		echo "-A KUBE-EXT-${p^^}LB -j KUBE-SVC-${p^^}LB"
		echo "-A KUBE-SVC-${p^^}LB ! -s 10.244.0.0/16 -d 10.96.0.1/32 -p $p -m $p --dport 80 -j KUBE-MARK-MASQ"
		for ((i = 0; i < n; i++)); do
			sep="KUBE-SEP-${p^^}$i"
			if ((i < n - 1)); then
				echo "-A KUBE-SVC-${p^^}LB -m statistic --mode random --probability $(awk -v k=$((n - i)) 'BEGIN { printf "%.11f", 1 / k }') -j $sep"
			else
				echo "-A KUBE-SVC-${p^^}LB -j $sep"
			fi
			j=$((POD_FIRST + i))
			echo "-A $sep -s 10.244.1.$j/32 -j KUBE-MARK-MASQ"
			echo "-A $sep -p $p -m $p -j DNAT --to-destination 10.244.1.$j:8080"
		done
	done
	echo "-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"
	echo "COMMIT"
}

# kube-proxy's nftables layout of the same (as gen-nft.sh).
nft_rules() {
	local p i n=$POD_COUNT s
	echo "add table ip kube-proxy"
	echo "add chain ip kube-proxy mark-for-masquerade"
	echo "add rule ip kube-proxy mark-for-masquerade meta mark set meta mark | 0x4000"
	echo "add chain ip kube-proxy masquerading"
	echo "add rule ip kube-proxy masquerading meta mark & 0x4000 == 0 return"
	echo "add rule ip kube-proxy masquerading meta mark set meta mark ^ 0x4000"
	echo "add rule ip kube-proxy masquerading masquerade fully-random"
	echo "add chain ip kube-proxy filter-forward { type filter hook forward priority -110 ; policy accept ; }"
	echo "add rule ip kube-proxy filter-forward ct state invalid drop"
	echo "add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; policy accept ; }"
	echo "add chain ip kube-proxy nat-output { type nat hook output priority -100 ; policy accept ; }"
	echo "add chain ip kube-proxy nat-postrouting { type nat hook postrouting priority 100 ; policy accept ; }"
	echo "add chain ip kube-proxy services"
	echo "add rule ip kube-proxy nat-prerouting jump services"
	echo "add rule ip kube-proxy nat-output jump services"
	echo "add rule ip kube-proxy nat-postrouting jump masquerading"
	echo "add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }"
	echo "add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips"
	for p in tcp udp; do
		s=""
		for ((i = 0; i < n; i++)); do
			echo "add chain ip kube-proxy endpoint-$p-$i"
			echo "add rule ip kube-proxy endpoint-$p-$i ip saddr 10.244.1.$((POD_FIRST + i)) jump mark-for-masquerade"
			echo "add rule ip kube-proxy endpoint-$p-$i meta l4proto $p dnat to 10.244.1.$((POD_FIRST + i)):8080"
			s+="${s:+, }$i : goto endpoint-$p-$i"
		done
		echo "add chain ip kube-proxy service-$p"
		echo "add rule ip kube-proxy service-$p ip daddr 10.96.0.1 $p dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade"
		echo "add rule ip kube-proxy service-$p numgen random mod $n vmap { $s }"
		echo "add chain ip kube-proxy external-$p"
		echo "add rule ip kube-proxy external-$p jump mark-for-masquerade"
		echo "add rule ip kube-proxy external-$p goto service-$p"
		echo "add element ip kube-proxy service-ips { 10.96.0.1 . $p . 80 : goto service-$p, $LB . $p . 80 : goto external-$p }"
	done
}

flush_rules() {
	local ns
	for ns in "$MA" "$MB"; do
		ip netns exec "$ns" iptables -t nat -F 2>/dev/null
		ip netns exec "$ns" iptables -t nat -X 2>/dev/null
		ip netns exec "$ns" iptables -t filter -F 2>/dev/null
		ip netns exec "$ns" iptables -t filter -X 2>/dev/null
		ip netns exec "$ns" nft flush ruleset 2>/dev/null
		ip netns exec "$ns" conntrack -F >/dev/null 2>&1
	done
	return 0
}

# ---- svcplane ----------------------------------------------------------------------
HAVE_DSR=0
sp_pin() { echo "$BPFFS/svcplane-$1"; }
sp_alive() { kill -0 "${SP_PID[$1]:-0}" 2>/dev/null; }

# sp_up NODE-NS NAME MODE IFACE...: the daemon of one node, until `svcplane
# status` says ready and its log says running.
sp_up() {
	local ns=$1 name=$2 mode=$3 i args=(); shift 3
	for i in "$@"; do args+=(--iface "$i"); done
	[ "$mode" = svcplane-dsr ] && args+=(--dsr)
	bg "$ns" "$RES/daemon-$mode-$name.log" "$SP_BIN" run --config "$RES/sp.yaml" \
		--node-name "$name" --cluster-cidr 10.244.0.0/16 --pod-iface-pattern 'spv*' \
		--bpffs-dir "$(sp_pin "$name")" --metrics-addr off "${args[@]}"
	SP_PID[$ns]=$LAST_PID
	for ((i = 0; i < 200; i++)); do
		if ip netns exec "$ns" "$SP_BIN" status --bpffs-dir "$(sp_pin "$name")" >/dev/null 2>&1 &&
			grep -q ' running: ' "$RES/daemon-$mode-$name.log"; then
			return 0
		fi
		sp_alive "$ns" || break
		sleep 0.1
	done
	say "  $mode: svcplane on $name did not become ready:"
	tail -3 "$RES/daemon-$mode-$name.log" | sed 's/^/    /' >&2
	return 1
}

sp_down() { # NODE-NS NAME
	local d
	[ -n "${SP_PID[$1]:-}" ] && kill_pid "${SP_PID[$1]}"
	SP_PID[$1]=""
	ip netns exec "$1" "$SP_BIN" detach --bpffs-dir "$(sp_pin "$2")" >/dev/null 2>&1
	for d in up0 up1 dsr0 spv1; do # nothing of ours may stay on the devices
		ip -n "$1" link set "$d" xdp off 2>/dev/null
		tc -n "$1" qdisc del dev "$d" clsact 2>/dev/null
	done
	rm -rf "$(sp_pin "$2")"
	return 0
}

# sp_report NODE-NS NAME: the node's SNATed flows and its non-zero reasons
# (svcplane stats), to show which path the svcplane runs took and what, if
# anything, was dropped.
sp_report() {
	ip netns exec "$1" "$SP_BIN" stats --json --bpffs-dir "$(sp_pin "$2")" 2>/dev/null |
		python3 -c 'import json, sys
d = json.load(sys.stdin)
r = " ".join("%s=%s" % (k, v.get("packets")) for k, v in sorted(d.get("reasons", {}).items()))
print("snat_flows=%s reasons: %s" % (d.get("counters", {}).get("snat_flows", "?"), r or "none"))' \
		2>/dev/null || echo "stats unavailable"
}

# sp_drops NODE-NS NAME: the packets of the node's reasons whose name says drop
# or snat (snat_exhausted: no free --snat-ports port for a new flow).
sp_drops() {
	ip netns exec "$1" "$SP_BIN" stats --json --bpffs-dir "$(sp_pin "$2")" 2>/dev/null |
		python3 -c 'import json, sys
r = json.load(sys.stdin).get("reasons", {})
print(sum(v.get("packets", 0) for k, v in r.items() if "snat" in k or "drop" in k))' 2>/dev/null
}

# ---- modes ---------------------------------------------------------------------------
# mode_on MODE: set the nodes up for MODE; fails (having said why) if it could not.
mode_on() {
	case $1 in
	direct) return 0 ;;
	svcplane-snat | svcplane-dsr)
		[ "$1" = svcplane-dsr ] && { mn_client_route direct || return 1; }
		sp_up "$MA" node-a "$1" up0 up1 && sp_up "$MB" node-b "$1" up0 dsr0 ;;
	iptables)
		ip netns exec "$MA" iptables-restore <"$RES/iptables.rules" &&
			ip netns exec "$MB" iptables-restore <"$RES/iptables.rules" ;;
	nftables)
		ip netns exec "$MA" nft -f "$RES/nftables.rules" &&
			ip netns exec "$MB" nft -f "$RES/nftables.rules" ;;
	esac
}

mode_off() {
	case $1 in
	svcplane-snat | svcplane-dsr)
		sp_down "$MA" node-a
		sp_down "$MB" node-b
		mn_client_route via-a ;;
	iptables | nftables) flush_rules ;;
	esac
	return 0
}

# One connbench run (the same options as bench.sh's part 3).
cb() {
	local mode=$1 addr=$2 port=$3 line
	line=$(ip netns exec "$MC" "$TOOLS/connbench" --addr "$addr" --port "$port" --threads 2 \
		--duration "$CB_DUR" --timeout 1 --src "$CLIENT_SRC" --src-count "$CLIENT_SRC_COUNT" \
		--client-closes 2>>"$RES/connbench.err") || { say "  connbench $mode failed: $line"; return 0; }
	say "  connbench $mode: $line"
	rec "$mode" cps "$(kv "$line" conn_per_s)"
	rec "$mode" p50 "$(kv "$line" connect_p50_us)"
	rec "$mode" p99 "$(kv "$line" connect_p99_us)"
	rec "$mode" errors "$(kv "$line" errors)"
	rec "$mode" secs "$(kv "$line" seconds)"
}

# One pktgen run (as bench.sh's part 2), into the pod's eth0. Node A's up0
# needs an XDP program to take XDP frames: svcplane's own, else XDP_PASS.
pg() {
	local mode=$1 dst=$2 dport=$3 line extra=()
	case $mode in svcplane-*) ;; *) extra=(--pass-netns "/run/netns/$MA" --pass-ifname up0) ;; esac
	line=$(ip netns exec "$MC" "$TOOLS/pktgen" --tx-ifname cl0 --dst-mac "$(mac "$MA" up0)" \
		--src-ip 192.168.77.2 --dst-ip "$dst" --dport "$dport" --sink-netns "/run/netns/$MP" \
		--sink-ifname eth0 --sink-port 8080 --duration "$PG_DUR" --warmup 0.2 \
		"${extra[@]}" 2>>"$RES/pktgen.err") || { say "  pktgen $mode failed"; return 0; }
	say "  pktgen $mode: $line"
	rec "$mode" mpps "$(kv "$line" rx_mpps)"
}

# ---- run ---------------------------------------------------------------------------------
T0=$(now)
[ "$(id -u)" = 0 ] || { say "multinode: must run as root (namespaces, BPF)"; exit 1; }
for t in connbench echo_server pktgen; do
	[ -x "$TOOLS/$t" ] || { say "multinode: $TOOLS/$t missing (run make)"; exit 1; }
done
MODES=(direct)
if [ -x "$SP_BIN" ]; then
	MODES+=(svcplane-snat)
	if "$SP_BIN" run --help 2>&1 | grep -q -- --dsr; then HAVE_DSR=1; MODES+=(svcplane-dsr); fi
else
	say "multinode: $SP_BIN missing: no svcplane figures"
fi
MODES+=(iptables nftables)
say "== multinode: client -> LB IP on node A -> pod on node B ($ROUNDS rounds: ${MODES[*]})"
[ $HAVE_DSR = 1 ] || say "  dsr: not built (svcplane run --help lists no --dsr)"
mn_up || { say "multinode: topology failed"; exit 1; }
sp_config >"$RES/sp.yaml"
ipt_rules >"$RES/iptables.rules"
nft_rules >"$RES/nftables.rules"
bg "$MP" "$RES/echo.log" "$TOOLS/echo_server" --port 8080 --threads 2 --client-closes
sleep 0.3
for ((r = 1; r <= ROUNDS; r++)); do
	say "  round $r of $ROUNDS"
	for m in "${MODES[@]}"; do
		if ! mode_on "$m"; then
			say "  $m: set-up failed; no figures this round"
			mode_off "$m"
			continue
		fi
		dst=$LB port=80
		[ "$m" = direct ] && dst=10.244.1.$POD_FIRST port=8080
		cb "$m" "$dst" "$port"
		pg "$m" "$dst" "$port"
		case $m in
		svcplane-*)
			say "  $m: node A $(sp_report "$MA" node-a); node B $(sp_report "$MB" node-b)"
			da=$(sp_drops "$MA" node-a) db=$(sp_drops "$MB" node-b)
			rec "$m" sp_drops "$((${da:-0} + ${db:-0}))"
			;;
		esac
		mode_off "$m"
	done
done
SECS=$(awk -v a="$T0" -v b="$(now)" 'BEGIN { printf "%d", b - a }')

# ---- report ------------------------------------------------------------------------
# sum.tsv: MODE METRIC median min max n
sort -k1,1 -k2,2 -k3,3g "$RES/raw.tsv" 2>/dev/null | awk -F'\t' '
	$3 != "" { k = $1 "\t" $2; v[k, ++n[k]] = $3 }
	END { for (k in n) printf "%s\t%s\t%s\t%s\t%d\n", k, v[k, int((n[k] + 1) / 2)], v[k, 1], v[k, n[k]], n[k] }' \
	>"$RES/sum.tsv"
get() { awk -F'\t' -v m="$1" -v k="$2" -v f="${3:-3}" '$1 == m && $2 == k { print $f }' "$RES/sum.tsv"; }
cell() { # MODE METRIC: "median (min–max)"
	local med
	med=$(get "$1" "$2")
	[ -n "$med" ] || { echo "-"; return; }
	if [ "$(get "$1" "$2" 4)" = "$(get "$1" "$2" 5)" ]; then echo "$med"; else
		echo "$med ($(get "$1" "$2" 4)–$(get "$1" "$2" 5))"
	fi
}
ratio() { # MODE-A MODE-B METRIC
	awk -v a="$(get "$1" "$3")" -v b="$(get "$2" "$3")" \
		'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2f\n", a / b }'
}
label() {
	case $1 in
	direct) echo "direct (pod address, no NAT)" ;;
	svcplane-snat) echo "svcplane, SNAT" ;;
	svcplane-dsr) echo "svcplane, --dsr" ;;
	*) echo "$1 (masquerade)" ;;
	esac
}
{
	echo "## 8. External client → LoadBalancer IP → pod on another node"
	echo
	echo "scripts/bench/multinode.sh (part \`multinode\` of bench.sh), $(date -u '+%Y-%m-%d %H:%M UTC')," \
		"commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' + local changes')," \
		"${QUICK:+QUICK, }$ROUNDS rounds with the modes alternated in each, $SECS s," \
		"load $(cut -d' ' -f1-3 /proc/loadavg) at the end."
	echo
	echo "DESIGN.md row 9 (externalTrafficPolicy: Cluster): the client's route for the"
	echo "LoadBalancer IP points at node A; the Service's 4 endpoints are all on node B (one"
	echo "pod namespace behind B's veth). Client → A, A → B and the client ↔ B link (used by"
	echo "DSR replies) are veth pairs; every mode runs in the same namespaces."
	echo
	echo "- *svcplane, SNAT*: a daemon per node (\`--node-name\`, endpoints with \`nodeName\`,"
	echo "  \`--cluster-cidr 10.244.0.0/16\`; A on up0 and up1, B on up0 and its client link)."
	echo "  A's XDP picks the endpoint; TC on A's uplink towards B DNATs and SNATs to A's"
	echo "  address and a port of --snat-ports (default); A reverse-NATs the replies."
	if [ $HAVE_DSR = 1 ]; then
		echo "- *svcplane, --dsr*: both daemons with \`--dsr\`; B answers the client over its own"
		echo "  link (B's route to the client), client address kept."
	else
		echo "- *svcplane, --dsr*: not built (this binary's \`svcplane run --help\` lists no \`--dsr\`)."
	fi
	echo "- *iptables*, *nftables*: kube-proxy's layouts for an eTP Cluster LoadBalancer IP,"
	echo "  written in scripts/bench/multinode.sh (iptables: KUBE-SERVICES → KUBE-EXT-* →"
	echo "  KUBE-MARK-MASQ + KUBE-SVC-* → KUBE-SEP-* DNAT, KUBE-POSTROUTING MASQUERADE"
	echo "  --random-fully; nftables: service-ips map → external-* → mark-for-masquerade +"
	echo "  service-* numgen vmap → endpoint-* dnat, masquerade fully-random), loaded on both"
	echo "  nodes as kube-proxy runs everywhere; svcplane not loaded."
	echo "- *direct*: the client connects to a pod address, routed by A and B, no NAT and no"
	echo "  rules: the reference."
	echo
	echo "conn/s: connbench as in part 3 (2 threads, the client closes first, 4094 source"
	echo "addresses). Mpps: pktgen as in part 2 (64-byte UDP, 64 flows, XDP live frames out"
	echo "of the client's veth, counted by an XDP program on the pod's eth0): one way only,"
	echo "through A and B; replies are not part of that figure."
	echo
	echo "| mode | conn/s | connect p50 / p99 µs | failed conns, worst run | Mpps |"
	echo "|---|---|---|---|---|"
	for m in direct svcplane-snat svcplane-dsr iptables nftables; do
		if [ "$m" = svcplane-dsr ] && [ $HAVE_DSR = 0 ]; then
			echo "| $(label $m) | dsr: not built | - | - | dsr: not built |"
			continue
		fi
		echo "| $(label $m) | $(cell $m cps) | $(get $m p50 3) / $(get $m p99 3) | $(get $m errors 5) | $(cell $m mpps) |"
	done
	echo
	echo "svcplane starts afresh (new daemons, empty maps) for each of its runs. Reasons"
	echo "counted by svcplane on A and B whose name says drop or snat, worst run:"
	echo "SNAT $(get svcplane-snat sp_drops 5)$([ $HAVE_DSR = 1 ] && echo ", --dsr $(get svcplane-dsr sp_drops 5)")" \
		"(snat_exhausted: no free port among the 16 that a new flow probes at random in"
	echo "--snat-ports, default 61000-65535, of ports held by open flows (a closed flow frees"
	echo "its port at once); the client's SYN is then dropped and retried after 1 s;"
	echo "\`BENCH_KEEP=1\` keeps the per-run lines)."
	echo "connbench counts conn/s over its whole run, including the wait for connections that"
	echo "fail (1 s timeout): its runs of $CB_DUR s lasted up to $(get svcplane-snat secs 5) s with svcplane SNAT," \
		"$(get iptables secs 5) s with iptables, $(get nftables secs 5) s with nftables$([ $HAVE_DSR = 1 ] && echo ", $(get svcplane-dsr secs 5) s with --dsr")."
	echo
	echo "Ratios of medians (this run):"
	echo
	echo "| | conn/s vs iptables | vs nftables | vs direct | Mpps vs iptables | vs nftables | vs direct |"
	echo "|---|---|---|---|---|---|---|"
	for m in svcplane-snat svcplane-dsr iptables nftables; do
		if [ "$m" = svcplane-dsr ] && [ $HAVE_DSR = 0 ]; then
			echo "| $(label $m) | dsr: not built | | | | | |"
			continue
		fi
		echo "| $(label $m) | $(ratio $m iptables cps) | $(ratio $m nftables cps) | $(ratio $m direct cps) |" \
			"$(ratio $m iptables mpps) | $(ratio $m nftables mpps) | $(ratio $m direct mpps) |"
	done
} >"$RES/section.md"
cat "$RES/section.md" >&2
[ -n "$SECTION" ] && cp "$RES/section.md" "$SECTION"
if [ -n "$DOC" ]; then
	"$ROOT/scripts/bench/doc-section.sh" 8 "$RES/section.md" "$DOC" &&
		say "multinode: section 8 written to $DOC"
fi
exit 0
