# shellcheck shell=bash
# The benchmark's own small topology, sourced by scripts/bench.sh:
#
#   client ns                node ns                         pod ns
#   cl0 192.168.77.2/24 ---- up0 192.168.77.1/24            eth0 10.244.0.11..21/32
#   local 198.18.0.0/20      forwarding, /32 routes  spv1 ---- default via 169.254.1.1
#   routes 10.96.0.0/12,     to the pod (Calico-like, proxy ARP),
#   10.244.0.0/16 via .1     198.18.0.0/20 via .2
#
# One pod namespace holds all endpoint addresses of the Service under test
# (10.244.0.11.. ; see addr.awk), so one echo_server answers for all of them.
# connbench spreads its connections over the 4094 client addresses of
# 198.18.0.0/20 (RFC 2544's benchmarking range; a local route in the client
# namespace), so a 4-tuple does not come back while the server or conntrack
# still hold it in TIME_WAIT (see scripts/tools/connbench.c).
#
# The two senders (cl0, the pod's eth0) compute TCP checksums in software
# (tx off), and their veths have GRO on, for every mode alike: a frame that
# XDP redirects to a veth (svcplane --xdp-redirect) loses the skb's
# CHECKSUM_PARTIAL state, so a locally built packet would arrive with a
# partial checksum (frames from a real NIC carry full ones), and a veth takes
# redirected XDP frames only with GRO on or an XDP program of its own.
#
# Names carry the PID: spb<PID>-{c,n,p}. topo_down removes everything
# (namespaces, the private bpffs mount, background processes) and is safe to
# call twice; bench.sh runs it from its EXIT/INT/TERM trap.

TOPO_ID=${TOPO_ID:-$$}
TC_NS="spb$TOPO_ID-c"
TN_NS="spb$TOPO_ID-n"
TP_NS="spb$TOPO_ID-p"
TOPO_RUN="/run/svcplane-bench-$TOPO_ID"
TOPO_BPFFS="$TOPO_RUN/bpffs" # private bpffs: `ip netns exec` hides /sys/fs/bpf
TOPO_PIDS=()
CLIENT_IP=192.168.77.2
NODE_IP=192.168.77.1
POD_FIRST=11 # 10.244.0.11
POD_COUNT=11 # E endpoints + one for the endpoint change
# shellcheck disable=SC2034 # used by bench.sh
CLIENT_SRC=198.18.0.1 # connbench sources: CLIENT_SRC and the next ones
# shellcheck disable=SC2034
CLIENT_SRC_COUNT=4094

topo_up() {
	local i
	mkdir -p "$TOPO_BPFFS" || return 1
	mountpoint -q "$TOPO_BPFFS" || mount -t bpf bpf "$TOPO_BPFFS" || return 1
	ip netns add "$TC_NS" && ip netns add "$TN_NS" && ip netns add "$TP_NS" || return 1
	for i in "$TC_NS" "$TN_NS" "$TP_NS"; do ip -n "$i" link set lo up || return 1; done
	ip -n "$TC_NS" link add cl0 type veth peer name up0 netns "$TN_NS" || return 1
	ip -n "$TN_NS" link add spv1 type veth peer name eth0 netns "$TP_NS" || return 1
	# client
	ip -n "$TC_NS" addr add "$CLIENT_IP/24" dev cl0 && ip -n "$TC_NS" link set cl0 up || return 1
	ip -n "$TC_NS" route add 10.96.0.0/12 via "$NODE_IP" || return 1
	ip -n "$TC_NS" route add 10.244.0.0/16 via "$NODE_IP" || return 1
	ip netns exec "$TC_NS" sysctl -qw net.ipv4.ip_local_port_range="1024 65535" \
		net.ipv4.tcp_tw_reuse=1 || return 1
	# node
	ip -n "$TN_NS" addr add "$NODE_IP/24" dev up0 && ip -n "$TN_NS" link set up0 up || return 1
	ip -n "$TN_NS" link set spv1 up || return 1
	ip netns exec "$TN_NS" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
		net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.spv1.proxy_arp=1 \
		net.ipv4.conf.spv1.rp_filter=0 net.ipv4.conf.up0.rp_filter=0 || return 1
	# pod: all endpoint addresses on one interface, Calico-style default route
	ip -n "$TP_NS" link set eth0 up || return 1
	for ((i = POD_FIRST; i < POD_FIRST + POD_COUNT; i++)); do
		ip -n "$TP_NS" addr add "10.244.0.$i/32" dev eth0 || return 1
		ip -n "$TN_NS" route add "10.244.0.$i/32" dev spv1 || return 1
	done
	ip -n "$TP_NS" route add 169.254.1.1 dev eth0 scope link || return 1
	ip -n "$TP_NS" route add default via 169.254.1.1 dev eth0 || return 1
	ip netns exec "$TP_NS" sysctl -qw net.core.somaxconn=4096 \
		net.ipv4.tcp_max_syn_backlog=4096 || return 1
	# Permanent neighbours so no ARP stands between the generator and the pod.
	local pmac nmac umac
	pmac=$(topo_mac "$TP_NS" eth0) nmac=$(topo_mac "$TN_NS" spv1) umac=$(topo_mac "$TN_NS" up0)
	for ((i = POD_FIRST; i < POD_FIRST + POD_COUNT; i++)); do
		ip -n "$TN_NS" neigh replace "10.244.0.$i" lladdr "$pmac" dev spv1 nud permanent || return 1
	done
	ip -n "$TP_NS" neigh replace 169.254.1.1 lladdr "$nmac" dev eth0 nud permanent || return 1
	ip -n "$TC_NS" neigh replace "$NODE_IP" lladdr "$umac" dev cl0 nud permanent || return 1
	ip -n "$TN_NS" neigh replace "$CLIENT_IP" lladdr "$(topo_mac "$TC_NS" cl0)" dev up0 \
		nud permanent || return 1
	# connbench source addresses: local to the client, routed by the node
	ip -n "$TC_NS" route add local 198.18.0.0/20 dev lo || return 1
	ip -n "$TN_NS" route add 198.18.0.0/20 via "$CLIENT_IP" dev up0 || return 1
	# software checksums and GRO on both senders (see the top of this file)
	ip netns exec "$TC_NS" ethtool -K cl0 tx off gro on >/dev/null || return 1
	ip netns exec "$TP_NS" ethtool -K eth0 tx off gro on >/dev/null || return 1
}

topo_mac() { ip -n "$1" -o link show "$2" | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p'; }

# topo_bg NS LOG CMD...: run CMD in NS in the background; remembered for topo_down.
topo_bg() {
	local ns=$1 log=$2; shift 2
	ip netns exec "$ns" "$@" >"$log" 2>&1 </dev/null &
	TOPO_LAST_PID=$!
	TOPO_PIDS+=("$TOPO_LAST_PID")
}

# topo_kill PID: TERM, then KILL after a bounded wait. Only our own PIDs.
topo_kill() {
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

# Flush whatever kube-proxy-like rules a mode left in the node namespace.
topo_flush_rules() {
	ip netns exec "$TN_NS" iptables -t nat -F 2>/dev/null
	ip netns exec "$TN_NS" iptables -t nat -X 2>/dev/null
	ip netns exec "$TN_NS" iptables -t filter -F 2>/dev/null
	ip netns exec "$TN_NS" iptables -t filter -X 2>/dev/null
	ip netns exec "$TN_NS" nft flush ruleset 2>/dev/null
	ip netns exec "$TN_NS" conntrack -F >/dev/null 2>&1
	return 0
}

topo_down() {
	local p ns
	[ "${TOPO_DOWN_DONE:-0}" = 1 ] && return 0
	TOPO_DOWN_DONE=1
	for p in "${TOPO_PIDS[@]}"; do topo_kill "$p"; done
	for ns in "$TC_NS" "$TN_NS" "$TP_NS"; do
		ip netns del "$ns" 2>/dev/null
	done
	if mountpoint -q "$TOPO_BPFFS" 2>/dev/null; then umount "$TOPO_BPFFS"; fi
	rm -rf "$TOPO_RUN"
	return 0
}
