# shellcheck shell=bash
# A throwaway Kubernetes-like cluster built from network namespaces, for the
# demo and the end-to-end tests. Source it, then call cluster_up.
#
#   client (external)          node-a                          pods
#   +-----------------+        +---------------------------+   +-------------------+
#   | br0 10.10.0.2   |--veth--| up0 10.10.0.1 fd00:10::1  |   | pod1 eth0         |
#   |     fd00:10::2  |        |     (+ 10.10.1.1 with     |---|  10.244.0.11/32   |
#   | routes: VIPs -> |        |      --second-node-addr)  |spv|  fd00:244::11/128 |
#   |   10.10.0.1     |        | default -> client         |   |  dflt 169.254.1.1 |
#   +-----------------+        | 10.244.0.11/32 dev spv1.. |   +-------------------+
#                              +---------------------------+   (pod2, pod3, ...)
#
# The client's side of the uplink is a bridge, so a second node (row 4 of
# DESIGN.md) joins the same L2 segment: `cluster_up --nodes 2` adds node-b
# (10.10.0.3) with pods podb1.. (10.244.1.11..) and routes each node's pod
# CIDR via the other (cl_add_node, cl_add_pod, cl_route_pods compose
# other layouts). The daemon helpers (sp, sp_start) take the node namespace.
#
# Used as: cluster_up; in_client / in_node / in_pod POD CMD...; clients
# cl_http, cl_http_many, cl_udp, cl_connect, cl_stream_start, cl_loop_start;
# the daemon sp_start, sp_wait_ready, sp NODE SUBCOMMAND; cluster_down.
#
# Every name carries CL_ID (the PID by default): namespaces are "sp<ID>-...".
# Interfaces are created directly inside our namespaces, never in the
# caller's, so their short names cannot clash with the machine's own and the
# machine's interfaces, routes and firewall are never touched.
#
# Everything is removed by cluster_down, which cl_install_traps runs on EXIT,
# INT and TERM. Every wait is bounded by an iteration count and by time.

CL_ID=${CL_ID:-$$}
CL_PREFIX="sp$CL_ID"
CL_TMP="/run/svcplane-e2e-$CL_ID"
CL_BPFFS="$CL_TMP/bpffs" # a private bpffs instance (see cl_mount_bpffs)
CL_PINDIR="$CL_BPFFS/svcplane"
CL_CLIENT="$CL_PREFIX-client"
CL_POD_IF_PATTERN='spv*'
CL_VERBOSE=${CL_VERBOSE:-0}

CL_NAMESPACES=() # every namespace we created, in creation order
CL_NODES=()      # node namespaces
CL_PODS=()       # pod names (pod1, pod2, ...)
CL_BG_PIDS=()    # background processes we started (clients, daemons)
declare -A CL_POD_NS CL_POD_NODE CL_POD_V4 CL_POD_V6 CL_POD_HOSTIF
declare -A CL_NODE_V4 CL_NODE_V6 CL_NODE_UPLINK
# Per-node daemons (sp_node_start): pin directory, node name, PID, log.
declare -A CL_NODE_NAME CL_NODE_PINDIR SP_NODE_PID SP_NODE_LOG
# Where the nodes' uplinks are plugged in (the namespace holding bridge br0)
# and their default gateway: the client itself for cluster_up, a segment
# namespace and the router for cl_multinode_up.
CL_SEG_NS=""
CL_NODE_GW4=10.10.0.2
CL_NODE_GW6=fd00:10::2
CL_DOWN_DONE=0

# The system interpreter: a version manager's shim on PATH can take 0.3 s a start.
CL_PY=/usr/bin/python3
[ -x "$CL_PY" ] || CL_PY=python3

cl_log() { [ "$CL_VERBOSE" = 1 ] && echo "cluster: $*" >&2; return 0; }
cl_err() { echo "cluster: $*" >&2; }

# Run a command, complaining with its text if it fails. Returns its status.
cl_run() {
	local out rc
	out=$("$@" 2>&1)
	rc=$?
	if [ $rc -ne 0 ]; then
		cl_err "failed ($rc): $*"
		[ -n "$out" ] && cl_err "  $out"
	elif [ -n "$out" ]; then
		cl_log "$out"
	fi
	return $rc
}

# in_ns NS CMD...: run CMD inside network namespace NS.
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
in_client() { ip netns exec "$CL_CLIENT" "$@"; }
# in_node CMD...: in the first node (in_ns for the others).
in_node() { ip netns exec "${CL_NODES[0]}" "$@"; }
in_pod() { local p=$1; shift; ip netns exec "${CL_POD_NS[$p]}" "$@"; }

# cl_sysctls NS KEY=VALUE...: set sysctls inside NS.
cl_sysctls() {
	local ns=$1; shift
	local kv
	for kv in "$@"; do
		cl_run ip netns exec "$ns" sysctl -qw "$kv" || return 1
	done
}

# cl_new_ns NAME: create a namespace with lo up and IPv6 DAD off (addresses
# are usable at once; nothing else on these links could own them).
cl_new_ns() {
	local ns=$1
	cl_run ip netns add "$ns" || return 1
	CL_NAMESPACES+=("$ns")
	cl_run ip -n "$ns" link set lo up || return 1
	cl_sysctls "$ns" net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
		net.ipv6.conf.default.accept_ra=0
}

# cl_until TIMEOUT_S CMD...: run CMD every 0.1 s until it succeeds, at most
# TIMEOUT_S seconds and TIMEOUT_S*10 tries. Returns 0 on success, 1 on timeout.
cl_until() {
	local timeout=$1; shift
	local tries=$((timeout * 10)) deadline=$((SECONDS + timeout + 1)) i
	for ((i = 0; i < tries && SECONDS <= deadline; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

# cl_wait_listener NS PROTO PORT [TIMEOUT_S]: wait until something in NS
# listens on PORT (PROTO tcp or udp).
cl_listening() {
	local ns=$1 proto=$2 port=$3 flag=-ltn
	[ "$proto" = udp ] && flag=-lun
	ip netns exec "$ns" ss -H $flag "sport = :$port" | grep -q .
}
cl_wait_listener() {
	cl_until "${4:-5}" cl_listening "$1" "$2" "$3" && return 0
	cl_err "nothing listens on $2/$3 in $1"
	return 1
}

# cl_bg NS LOGFILE CMD...: start CMD in the background inside NS, output to
# LOGFILE; remember its PID (in CL_LAST_PID) so cluster_down ends it.
cl_bg() {
	local ns=$1 log=$2; shift 2
	ip netns exec "$ns" "$@" >"$log" 2>&1 </dev/null &
	CL_LAST_PID=$!
	CL_BG_PIDS+=("$CL_LAST_PID")
}

# cl_mount_bpffs: a bpffs instance of our own, outside /sys because
# `ip netns exec` mounts a fresh /sys and would hide /sys/fs/bpf. Pins made
# there vanish with the unmount in cluster_down.
cl_mount_bpffs() {
	mkdir -p "$CL_BPFFS" || return 1
	mountpoint -q "$CL_BPFFS" && return 0
	cl_run mount -t bpf bpf "$CL_BPFFS"
}

# cl_add_client: the external client namespace, with a bridge br0 standing
# for the L2 segment every node's uplink is plugged into.
cl_add_client() {
	cl_new_ns "$CL_CLIENT" || return 1
	cl_run ip -n "$CL_CLIENT" link add br0 type bridge || return 1
	# No STP and no forwarding delay: ports forward as soon as they are up.
	cl_run ip -n "$CL_CLIENT" link set br0 type bridge stp_state 0 forward_delay 0 || return 1
	cl_run ip -n "$CL_CLIENT" addr add 10.10.0.2/24 dev br0 || return 1
	cl_run ip -n "$CL_CLIENT" addr add fd00:10::2/64 dev br0 nodad || return 1
	cl_run ip -n "$CL_CLIENT" link set br0 up
}

# cl_add_node NAME ADDR4 ADDR6: a node namespace "sp<ID>-NAME" whose uplink
# up0 (ADDR4/24, ADDR6/64) is plugged into bridge br0 of CL_SEG_NS (default:
# the client's). The node's default routes point at CL_NODE_GW4/6 (default:
# the client), so host-originated packets to a ClusterIP leave through up0,
# where svcplane's TC egress program sees them.
cl_add_node() {
	local name=$1 a4=$2 a6=$3
	local ns="$CL_PREFIX-$name" port seg=${CL_SEG_NS:-$CL_CLIENT}
	port="up-$name" # the bridge port in the segment's namespace
	port=${port:0:15}
	cl_new_ns "$ns" || return 1
	CL_NODES+=("$ns")
	CL_NODE_NAME[$ns]=$name
	CL_NODE_V4[$ns]=$a4
	CL_NODE_V6[$ns]=$a6
	CL_NODE_UPLINK[$ns]=up0
	# A node forwards between its uplink and its pods. rp_filter must not be
	# strict (1): a pod's reply is reverse-NATed to a VIP source, and a VIP
	# has no route back through the pod's veth, so the strict reverse-path
	# check would drop it. So 0: the kernel uses max(all, interface), and
	# interfaces made later start from "default".
	cl_sysctls "$ns" net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
		net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 || return 1
	cl_run ip -n "$ns" link add up0 type veth peer name "$port" netns "$seg" || return 1
	cl_run ip -n "$ns" addr add "$a4/24" dev up0 || return 1
	cl_run ip -n "$ns" addr add "$a6/64" dev up0 nodad || return 1
	cl_run ip -n "$seg" link set "$port" master br0 || return 1
	# A real uplink receives frames with complete checksums from the wire. A
	# veth peer with tx checksum offload would hand XDP CHECKSUM_PARTIAL
	# packets whose checksum field holds only the pseudo-header sum, so
	# offload is off on the segment's side (and on the bridge in front of it).
	cl_run ip netns exec "$seg" ethtool -K "$port" tx off || return 1
	cl_run ip netns exec "$seg" ethtool -K br0 tx off || return 1
	# GRO on a veth gives it a NAPI instance, which veth needs to accept
	# frames that XDP_TX / XDP_REDIRECT send towards it, as a NIC would.
	cl_run ip netns exec "$seg" ethtool -K "$port" gro on || return 1
	cl_run ip -n "$seg" link set "$port" up || return 1
	cl_run ip -n "$ns" link set up0 up || return 1
	cl_run ip -n "$ns" route add default via "$CL_NODE_GW4" dev up0 || return 1
	cl_run ip -n "$ns" -6 route add default via "$CL_NODE_GW6" dev up0 || return 1
	cl_log "node $ns: up0 $a4 $a6"
}

# cl_add_node_addr NODE ADDR4/PFX ADDR6/PFX CLIENT4/PFX CLIENT6/PFX: one more
# subnet on the node's uplink (and the client's side of it), so the node has
# more than one address to serve NodePorts on.
cl_add_node_addr() {
	local ns=$1
	cl_run ip -n "$ns" addr add "$2" dev up0 || return 1
	cl_run ip -n "$ns" addr add "$3" dev up0 nodad || return 1
	cl_run ip -n "$CL_CLIENT" addr add "$4" dev br0 || return 1
	cl_run ip -n "$CL_CLIENT" addr add "$5" dev br0 nodad
}

# cl_client_route PREFIX [NODE]: the client reaches PREFIX (a VIP or a VIP
# range, v4 or v6) through NODE's uplink address, as a router announcing
# LoadBalancer IPs (MetalLB in BGP mode) or a static route would arrange.
cl_client_route() {
	local pfx=$1 ns=${2:-${CL_NODES[0]}}
	if [[ $pfx == *:* ]]; then
		cl_run ip -n "$CL_CLIENT" -6 route replace "$pfx" via "${CL_NODE_V6[$ns]}" dev br0
	else
		cl_run ip -n "$CL_CLIENT" route replace "$pfx" via "${CL_NODE_V4[$ns]}" dev br0
	fi
}

# The backend every pod runs, one process per pod: HTTP on 8080 (answers
# "<pod> <peer address>"), a line echo on 9090 for long-lived connections
# (each line comes back as "<pod> <line>"), and UDP on 5353 (one datagram in,
# "<pod> <peer address>" out). All sockets are dual-stack. Tests tell from
# the first word which backend served them, and from the second which source
# address the backend saw. Each HTTP request and UDP datagram is also logged
# to the pod's server log ($CL_TMP/POD-server.log) as "http|udp PEER TOKEN"
# (TOKEN: the request path, or the datagram's first word), so a test can tell
# "no pod saw it" (dropped on the way) from "a pod answered but the answer
# was lost" (cl_pods_saw).
CL_SERVER_PY='
import socket, socketserver, sys, threading

pod = sys.argv[1]
log_lock = threading.Lock()

def peer(addr):
    host = addr[0]
    return host[7:] if host.startswith("::ffff:") and "." in host else host

def log(kind, who, token):
    with log_lock:
        print("%s %s %s" % (kind, who, token), flush=True)

class Http(socketserver.StreamRequestHandler):
    def handle(self):
        first = b""
        for i in range(100):  # request line and headers, up to the blank line
            line = self.rfile.readline()
            if i == 0:
                first = line
            if not line or line in (b"\r\n", b"\n"):
                break
        words = first.split()
        log("http", peer(self.client_address),
            words[1].decode(errors="replace").lstrip("/") if len(words) > 1 else "-")
        body = ("%s %s\n" % (pod, peer(self.client_address))).encode()
        self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))

class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(pod.encode() + b" " + line)

class Udp(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request[1]
        words = self.request[0].split()
        log("udp", peer(self.client_address),
            words[-1].decode(errors="replace") if words else "-")
        sock.sendto(("%s %s\n" % (pod, peer(self.client_address))).encode(), self.client_address)

class DualStack:
    address_family = socket.AF_INET6
    allow_reuse_address = True
    daemon_threads = True
    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

class Tcp(DualStack, socketserver.ThreadingTCPServer):
    # socketserver listens with a backlog of 5. A burst of a few hundred
    # connections (the ECMP test opens 400 at once) overflows that accept
    # queue on a loaded machine; the pod kernel then drops handshakes and
    # data silently, and connections the client counts as up never echo
    # (seen in packet captures: every packet reached the pod). Servers in
    # real pods listen with somaxconn (4096); so do these.
    request_queue_size = 4096

class Dgram(DualStack, socketserver.UDPServer):
    pass

servers = [Tcp(("::", 8080), Http), Tcp(("::", 9090), Echo), Dgram(("::", 5353), Udp)]
for s in servers[1:]:
    threading.Thread(target=s.serve_forever, daemon=True).start()
print("%s: serving on tcp/8080 tcp/9090 udp/5353" % pod, flush=True)
servers[0].serve_forever()
'

# cl_start_servers POD: start the backend servers in POD (see CL_SERVER_PY).
cl_start_servers() {
	cl_bg "${CL_POD_NS[$1]}" "$CL_TMP/$1-server.log" "$CL_PY" -c "$CL_SERVER_PY" "$1"
}

# cl_wait_servers [POD...]: wait until the servers of every POD (default: all) listen.
cl_wait_servers() {
	local pod ns
	[ $# -eq 0 ] && set -- "${CL_PODS[@]}"
	for pod in "$@"; do
		ns=${CL_POD_NS[$pod]}
		cl_wait_listener "$ns" tcp 8080 && cl_wait_listener "$ns" tcp 9090 &&
			cl_wait_listener "$ns" udp 5353 || return 1
	done
}

# cl_add_pod NODE POD ADDR4 ADDR6: a pod namespace "sp<ID>-POD" wired to
# NODE as Calico does it: a veth pair whose host side (spv-POD) has no
# address but a /32 and a /128 route to the pod; the pod side (eth0) has
# the /32 and /128 and a default route through a link-local gateway that the
# host side answers for (proxy ARP for 169.254.1.1, fe80::1 on the host side).
# Starts the pod's backend servers (cl_wait_servers waits for them).
cl_add_pod() {
	local node=$1 pod=$2 a4=$3 a6=$4
	local ns="$CL_PREFIX-$pod" hif="spv-$pod"
	hif=${hif:0:15}
	cl_new_ns "$ns" || return 1
	CL_PODS+=("$pod")
	CL_POD_NS[$pod]=$ns
	CL_POD_NODE[$pod]=$node
	CL_POD_V4[$pod]=$a4
	CL_POD_V6[$pod]=$a6
	CL_POD_HOSTIF[$pod]=$hif
	cl_run ip -n "$node" link add "$hif" type veth peer name eth0 netns "$ns" || return 1
	# Host side. proxy_delay 0: answer the pod's ARP for the gateway at once
	# instead of after a random delay of up to 0.8 s.
	cl_sysctls "$node" "net.ipv4.conf.$hif.proxy_arp=1" "net.ipv4.conf.$hif.rp_filter=0" \
		"net.ipv4.neigh.$hif.proxy_delay=0" || return 1
	cl_run ip -n "$node" addr add fe80::1/64 dev "$hif" nodad || return 1
	cl_run ip -n "$node" link set "$hif" up || return 1
	cl_run ip -n "$node" route add "$a4/32" dev "$hif" scope link || return 1
	cl_run ip -n "$node" -6 route add "$a6/128" dev "$hif" || return 1
	# Pod side. GRO: see cl_add_node (lets the datapath XDP_REDIRECT here).
	cl_run ip -n "$ns" addr add "$a4/32" dev eth0 || return 1
	cl_run ip -n "$ns" addr add "$a6/128" dev eth0 nodad || return 1
	cl_run ip netns exec "$ns" ethtool -K eth0 gro on || return 1
	cl_run ip -n "$ns" link set eth0 up || return 1
	cl_run ip -n "$ns" route add 169.254.1.1 dev eth0 scope link || return 1
	cl_run ip -n "$ns" route add default via 169.254.1.1 dev eth0 || return 1
	cl_run ip -n "$ns" -6 route add default via fe80::1 dev eth0 || return 1
	cl_start_servers "$pod"
	cl_log "pod $pod on $node: $a4 $a6 (host side $hif)"
}

# cl_route_pods NODE PREFIX4 PREFIX6 VIA-NODE: NODE reaches the pod CIDRs of
# another node through that node's uplink address, as a CNI's routes (or
# BGP) would arrange between nodes.
cl_route_pods() {
	local ns=$1 via=$4
	cl_run ip -n "$ns" route add "$2" via "${CL_NODE_V4[$via]}" dev up0 || return 1
	cl_run ip -n "$ns" -6 route add "$3" via "${CL_NODE_V6[$via]}" dev up0
}

# cluster_up [--pods N] [--second-node-addr] [--nodes 2 [--pods-b N]]: the
# cluster of the demo and the tests: the client, node-a (10.10.0.1,
# fd00:10::1), pods pod1..N (N defaults to 3, at most 9) at 10.244.0.11.. /
# fd00:244::11.. on node-a.
#  --second-node-addr  node-a also has 10.10.1.1/24 and fd00:11::1/64 (the
#                      client 10.10.1.2, fd00:11::2) to serve NodePorts on
#  --nodes 2           a second node, node-b (10.10.0.3, fd00:10::3), with
#                      pods podb1..M (--pods-b, default 1) at 10.244.1.11.. /
#                      fd00:244:1::11..; each node routes the other's pod
#                      CIDR (10.244.X.0/24, fd00:244:X::/64... with X = 0 for
#                      node-a written fd00:244::/64) through its uplink
# The client routes the Service ranges 10.96.0.0/16, fd00:96::/64 and the
# demo's LoadBalancer IPs via node-a; tests add their own with
# cl_client_route. Returns non-zero (having said why) if any step fails;
# the caller's trap cleans up what was made.
cluster_up() {
	local npods=3 second=0 nodes=1 npods_b=1 i
	while [ $# -gt 0 ]; do
		case $1 in
		--pods) npods=$2; shift 2 ;;
		--pods-b) npods_b=$2; shift 2 ;;
		--nodes) nodes=$2; shift 2 ;;
		--second-node-addr) second=1; shift ;;
		*) cl_err "cluster_up: unknown option $1"; return 2 ;;
		esac
	done
	if [ "$(id -u)" != 0 ]; then
		cl_err "must run as root (network namespaces, bpffs)"
		return 1
	fi
	if [ "$npods" -gt 9 ] || [ "$npods_b" -gt 9 ] || [ "$nodes" -gt 2 ]; then
		cl_err "cluster_up: at most 2 nodes and 9 pods per node"
		return 2
	fi
	local tool
	for tool in ip ethtool curl socat ss "$CL_PY"; do
		command -v "$tool" >/dev/null || { cl_err "missing tool: $tool (make deps)"; return 1; }
	done
	mkdir -p "$CL_TMP" || return 1
	cl_mount_bpffs || return 1
	cl_add_client || return 1
	cl_add_node node-a 10.10.0.1 fd00:10::1 || return 1
	local a=${CL_NODES[0]}
	if [ $second = 1 ]; then
		cl_add_node_addr "$a" 10.10.1.1/24 fd00:11::1/64 10.10.1.2/24 fd00:11::2/64 || return 1
	fi
	for ((i = 1; i <= npods; i++)); do
		cl_add_pod "$a" "pod$i" "10.244.0.$((10 + i))" "fd00:244::$((10 + i))" || return 1
	done
	if [ "$nodes" = 2 ]; then
		cl_add_node node-b 10.10.0.3 fd00:10::3 || return 1
		local b=${CL_NODES[1]}
		for ((i = 1; i <= npods_b; i++)); do
			cl_add_pod "$b" "podb$i" "10.244.1.$((10 + i))" "fd00:244:1::$((10 + i))" || return 1
		done
		cl_route_pods "$a" 10.244.1.0/24 fd00:244:1::/64 "$b" || return 1
		cl_route_pods "$b" 10.244.0.0/24 fd00:244::/64 "$a" || return 1
	fi
	cl_wait_servers || return 1
	local pfx
	for pfx in 10.96.0.0/16 fd00:96::/64 10.10.0.100/32 fd00:10::100/128; do
		cl_client_route "$pfx" || return 1
	done
}

# ---- Three nodes behind a router (cl_multinode_up) -------------------------------
#
#  client 10.20.0.2          router                      segment (bridge br0)
#  fd00:20::2   ---eth0/ext0--- 10.20.0.1 | 10.10.0.254 ---+--- node-a 10.10.0.11 fd00:10::11
#  default via router           fd00:20::1 | fd00:10::fe  +--- node-b 10.10.0.12 fd00:10::12
#                               LB1 -> a,b,c (ECMP, L4)   +--- node-c 10.10.0.13 fd00:10::13
#                               LB2 -> a                   pods: pa* 10.244.0.x, pb* 10.244.1.x,
#                                                                pc* 10.244.2.x (fd00:244:N::x)
# The client is outside: it has no address on the segment, and every packet
# it sends to a node goes through the router (so through ECMP for LB1).
CL_ROUTER_V4=10.10.0.254 CL_ROUTER_V6=fd00:10::fe
CL_EXT_V4=10.20.0.2 CL_EXT_V6=fd00:20::2           # the client
CL_EXT_GW4=10.20.0.1 CL_EXT_GW6=fd00:20::1         # the router's side of it
CL_LB1_V4=10.99.0.1 CL_LB1_V6=fd00:99::1           # ECMP to every node (BGP mode)
CL_LB2_V4=10.99.0.2 CL_LB2_V6=fd00:99::2           # node-a only (L2 mode)
CL_ROUTER="$CL_PREFIX-router"

# cl_add_router: the segment namespace (bridge br0, no address), the router
# (seg0 on the segment, ext0 towards the client) and the client behind it.
# The router forwards, has no reverse-path filter (replies of direct server
# return carry a Service address as source) and hashes multipath routes on
# the L4 ports (fib_multipath_hash_policy=1), as a BGP router in front of
# MetalLB would, so each connection of one client may land on another node.
cl_add_router() {
	local seg=$CL_SEG_NS
	cl_new_ns "$seg" || return 1
	cl_run ip -n "$seg" link add br0 type bridge || return 1
	cl_run ip -n "$seg" link set br0 type bridge stp_state 0 forward_delay 0 || return 1
	cl_run ip -n "$seg" link set br0 up || return 1
	cl_new_ns "$CL_ROUTER" || return 1
	cl_sysctls "$CL_ROUTER" net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
		net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
		net.ipv4.fib_multipath_hash_policy=1 net.ipv6.fib_multipath_hash_policy=1 || return 1
	cl_run ip -n "$CL_ROUTER" link add seg0 type veth peer name up-router netns "$seg" || return 1
	cl_run ip -n "$seg" link set up-router master br0 || return 1
	# Checksums complete on the wire, as for the nodes' ports (cl_add_node).
	cl_run ip netns exec "$seg" ethtool -K up-router tx off || return 1
	cl_run ip netns exec "$seg" ethtool -K up-router gro on || return 1
	cl_run ip -n "$seg" link set up-router up || return 1
	cl_run ip -n "$CL_ROUTER" addr add "$CL_ROUTER_V4/24" dev seg0 || return 1
	cl_run ip -n "$CL_ROUTER" addr add "$CL_ROUTER_V6/64" dev seg0 nodad || return 1
	cl_run ip -n "$CL_ROUTER" link set seg0 up || return 1
	cl_new_ns "$CL_CLIENT" || return 1
	# A packet keeps its socket's hash (skb->hash) across veths, and the
	# router's multipath choice uses that hash when set, instead of the
	# ports. TCP draws a new hash after a retransmission timeout
	# (net.core.txrehash), so a retransmitted SYN or segment could go to
	# another node, which a router hashing the wire's headers never does.
	# Off in the client, so each connection stays on one path.
	cl_sysctls "$CL_CLIENT" net.core.txrehash=0 || return 1
	cl_run ip -n "$CL_ROUTER" link add ext0 type veth peer name eth0 netns "$CL_CLIENT" || return 1
	cl_run ip netns exec "$CL_CLIENT" ethtool -K eth0 tx off || return 1
	cl_run ip -n "$CL_ROUTER" addr add "$CL_EXT_GW4/24" dev ext0 || return 1
	cl_run ip -n "$CL_ROUTER" addr add "$CL_EXT_GW6/64" dev ext0 nodad || return 1
	cl_run ip -n "$CL_ROUTER" link set ext0 up || return 1
	cl_run ip -n "$CL_CLIENT" addr add "$CL_EXT_V4/24" dev eth0 || return 1
	cl_run ip -n "$CL_CLIENT" addr add "$CL_EXT_V6/64" dev eth0 nodad || return 1
	cl_run ip -n "$CL_CLIENT" link set eth0 up || return 1
	cl_run ip -n "$CL_CLIENT" route add default via "$CL_EXT_GW4" dev eth0 || return 1
	cl_run ip -n "$CL_CLIENT" -6 route add default via "$CL_EXT_GW6" dev eth0
}

# cl_router_route PREFIX NODE...: the router sends PREFIX (v4 or v6) to the
# uplink address of each NODE: one nexthop, or an ECMP route over several.
cl_router_route() {
	local pfx=$1 fam=-4 n hops=(); shift
	[[ $pfx == *:* ]] && fam=-6
	for n in "$@"; do
		if [ $fam = -6 ]; then
			hops+=(nexthop via "${CL_NODE_V6[$n]}" dev seg0)
		else
			hops+=(nexthop via "${CL_NODE_V4[$n]}" dev seg0)
		fi
	done
	if [ $# -eq 1 ]; then
		cl_run ip -n "$CL_ROUTER" "$fam" route replace "$pfx" "${hops[@]:1}"
	else
		cl_run ip -n "$CL_ROUTER" "$fam" route replace "$pfx" "${hops[@]}"
	fi
}

# cl_multinode_up [--pods-a N] [--pods-b N] [--pods-c N]: the topology drawn
# above: node-a, node-b, node-c (CL_NODES[0..2]) with pods pa1.., pb1..,
# pc1.. (default 2, 2 and 1; at most 9 each) at 10.244.X.11.. /
# fd00:244:X::11.. (X = 0, 1, 2; node-a's written fd00:244::), each node
# routing the others' pod CIDRs through their uplinks; the router with LB1
# by ECMP over the three nodes and LB2 to node-a; the client behind the
# router. Daemons are not started (sp_node_start). Returns non-zero (having
# said why) if any step fails; the caller's trap cleans up what was made.
cl_multinode_up() {
	local -A npods=([a]=2 [b]=2 [c]=1)
	local i x k n ns tool
	while [ $# -gt 0 ]; do
		case $1 in
		--pods-a | --pods-b | --pods-c) npods[${1#--pods-}]=$2; shift 2 ;;
		*) cl_err "cl_multinode_up: unknown option $1"; return 2 ;;
		esac
	done
	if [ "$(id -u)" != 0 ]; then
		cl_err "must run as root (network namespaces, bpffs)"
		return 1
	fi
	for x in a b c; do
		if ! [[ ${npods[$x]} =~ ^[0-9]$ ]]; then
			cl_err "cl_multinode_up: 0 to 9 pods per node"
			return 2
		fi
	done
	for tool in ip ethtool curl socat ss "$CL_PY"; do
		command -v "$tool" >/dev/null || { cl_err "missing tool: $tool (make deps)"; return 1; }
	done
	mkdir -p "$CL_TMP" || return 1
	cl_mount_bpffs || return 1
	CL_SEG_NS="$CL_PREFIX-seg"
	CL_NODE_GW4=$CL_ROUTER_V4 CL_NODE_GW6=$CL_ROUTER_V6
	cl_add_router || return 1
	k=0
	for x in a b c; do
		cl_add_node "node-$x" "10.10.0.$((11 + k))" "fd00:10::$((11 + k))" || return 1
		ns=${CL_NODES[$k]}
		for ((i = 1; i <= npods[$x]; i++)); do
			if [ $k = 0 ]; then n="fd00:244::$((10 + i))"; else n="fd00:244:$k::$((10 + i))"; fi
			cl_add_pod "$ns" "p$x$i" "10.244.$k.$((10 + i))" "$n" || return 1
		done
		k=$((k + 1))
	done
	for ((i = 0; i < 3; i++)); do
		for ((k = 0; k < 3; k++)); do
			[ $i = $k ] && continue
			if [ $k = 0 ]; then n=fd00:244::/64; else n="fd00:244:$k::/64"; fi
			cl_route_pods "${CL_NODES[$i]}" "10.244.$k.0/24" "$n" "${CL_NODES[$k]}" || return 1
		done
	done
	cl_router_route "$CL_LB1_V4/32" "${CL_NODES[@]}" || return 1
	cl_router_route "$CL_LB1_V6/128" "${CL_NODES[@]}" || return 1
	cl_router_route "$CL_LB2_V4/32" "${CL_NODES[0]}" || return 1
	cl_router_route "$CL_LB2_V6/128" "${CL_NODES[0]}" || return 1
	for n in "${CL_PODS[@]}"; do cl_pod_count_syns "$n" || return 1; done
	cl_wait_servers
}

# cl_pod_count_syns POD: count, in POD's own namespace, the TCP SYNs that
# reach its HTTP server (port 8080) or echo server (9090): a TCP
# connection that was forwarded to a pod but whose answer never made it
# back leaves no line in the server's log, only this count (cl_pod_syns).
cl_pod_count_syns() {
	printf '%s\n' 'table inet cl_watch {' '  counter syns { }' '  chain input {' \
		'    type filter hook input priority filter; policy accept;' \
		'    tcp dport { 8080, 9090 } tcp flags & (syn | ack) == syn counter name syns' \
		'  }' '}' | cl_run ip netns exec "${CL_POD_NS[$1]}" nft -f -
}

# cl_pod_syns POD: how many SYNs POD has received on 8080 and 9090.
cl_pod_syns() {
	ip netns exec "${CL_POD_NS[$1]}" nft list counter inet cl_watch syns 2>/dev/null |
		awk '$1 == "packets" { print $2; n = 1 } END { if (!n) print "?" }'
}

# cl_kill_pid PID: TERM, wait up to 2 s, then KILL. Only for PIDs we started.
cl_kill_pid() {
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < 20; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

# cluster_down: end what we started, delete our namespaces (which removes
# their interfaces, and with them any XDP/TC attachment), unmount our bpffs
# (which drops any pin left behind) and remove CL_TMP. Safe to call twice
# and after a partial cluster_up.
cluster_down() {
	[ "$CL_DOWN_DONE" = 1 ] && return 0
	CL_DOWN_DONE=1
	local pid ns i
	for pid in "${CL_BG_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null
	done
	# Anything else still running inside our namespaces was started by us
	# (servers, clients): end it by PID before the delete,
	# since a namespace lives on while a process is in it.
	for ns in "${CL_NAMESPACES[@]}"; do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			kill -TERM "$pid" 2>/dev/null
		done
	done
	for ((i = 0; i < 20; i++)); do
		local alive=0
		for ns in "${CL_NAMESPACES[@]}"; do
			[ -n "$(ip netns pids "$ns" 2>/dev/null)" ] && alive=1
		done
		[ $alive = 0 ] && break
		sleep 0.1
	done
	for ns in "${CL_NAMESPACES[@]}"; do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			kill -KILL "$pid" 2>/dev/null
		done
	done
	for pid in "${CL_BG_PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	# Reverse order: pods before the node their veths belong to.
	for ((i = ${#CL_NAMESPACES[@]} - 1; i >= 0; i--)); do
		ip netns del "${CL_NAMESPACES[$i]}" 2>/dev/null
	done
	if mountpoint -q "$CL_BPFFS" 2>/dev/null; then
		umount "$CL_BPFFS" 2>/dev/null || umount -l "$CL_BPFFS" 2>/dev/null ||
			cl_err "could not unmount $CL_BPFFS"
	fi
	case $CL_TMP in
	/run/svcplane-e2e-*) rm -rf "$CL_TMP" ;;
	esac
	# The daemon's pid file for our pin directory (see user/inspect.h), left
	# behind when it was killed with -9.
	# Every pin directory under our private bpffs counts (a test may run a
	# second daemon, e.g. node-b's, in a directory of its own).
	local pidfiles=${CL_BPFFS//\//_}
	rm -f "/run/svcplane/$pidfiles"_*.pid
	return 0
}

# cl_install_traps: cluster_down on every way out. INT/TERM exit with the
# conventional status, which runs the EXIT trap.
cl_install_traps() {
	trap 'cluster_down' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# ---- Clients ----------------------------------------------------------------

# cl_url ADDR PORT [PATH]: an http URL, with brackets for IPv6.
cl_url() {
	if [[ $1 == *:* ]]; then echo "http://[$1]:$2${3:-/}"; else echo "http://$1:$2${3:-/}"; fi
}

# cl_http NS ADDR PORT: one HTTP request from NS; prints the body's first
# word (the pod that answered) or "ERR <curl message>". Returns curl's status.
cl_http() {
	local ns=$1 out rc
	out=$(ip netns exec "$ns" curl -sS -g --connect-timeout 2 --max-time 3 "$(cl_url "$2" "$3")" 2>&1)
	rc=$?
	if [ $rc -eq 0 ]; then
		echo "${out%% *}"
	else
		echo "ERR $(echo "$out" | head -1)"
	fi
	return $rc
}

# cl_http_many NS ADDR PORT N: N requests from NS (one process in NS, one curl
# each, each its own connection); one line per request as cl_http prints.
# After 3 failures the rest are not tried (each could cost a 2 s timeout)
# and print "ERR not tried".
cl_http_many() {
	local ns=$1 url
	url=$(cl_url "$2" "$3")
	ip netns exec "$ns" bash -c '
		bad=0
		for ((i = 0; i < $2; i++)); do
			if [ $bad -ge 3 ]; then
				echo "ERR not tried after 3 failures"
			elif out=$(curl -sS -g --connect-timeout 2 --max-time 3 "$1" 2>&1); then
				echo "${out%% *}"
			else
				echo "ERR #$((i + 1)) at $(date +%T.%N | cut -c1-12): $(echo "$out" | head -1)"
				bad=$((bad + 1))
			fi
		done' _ "$url" "$4"
}

# cl_tally: reads cl_http/cl_udp lines on stdin, prints "name count" per
# distinct answer, sorted by name.
cl_tally() { sort | uniq -c | awk '{c=$1; $1=""; sub(/^ /,""); print $0, c}'; }

# The small socket client used where curl and socat cannot say precisely what
# happened (UDP answers vs ICMP errors, how fast a refusal came).
# Subcommands:
#   udp HOST PORT [N [SPORT]]
#                       N queries, each from a new connected socket (so a
#                       new source port, unless SPORT is given: then that
#                       one, the same flow each time); prints the reply's
#                       first word or "ERR <reason> <ms>ms"; gives up after
#                       3 failures.
#   connect HOST PORT   one TCP connect; prints "OK <ms>ms" or "ERR <reason> <ms>ms".
# Timeouts are 2 s; reasons are errno names (ECONNREFUSED) or TIMEOUT.
CL_CLIENT_PY='
import errno, socket, sys, time

def fam(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET

def err(e, t0):
    name = "TIMEOUT" if isinstance(e, socket.timeout) else errno.errorcode.get(e.errno, str(e))
    return "ERR %s %dms" % (name, (time.monotonic() - t0) * 1000)

def err_n(e, t0, i):  # as err(), with which query and when
    return "%s (#%d at %s)" % (err(e, t0), i + 1, time.strftime("%H:%M:%S"))

def udp(host, port, n, sport=0):
    bad = 0
    for i in range(n):
        if bad >= 3:
            print("ERR not tried after 3 failures", flush=True)
            continue
        t0 = time.monotonic()
        s = socket.socket(fam(host), socket.SOCK_DGRAM)
        s.settimeout(2)
        try:
            if sport:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("::" if ":" in host else "0.0.0.0", sport))
            s.connect((host, port))
            s.send(b"query %d\n" % i)
            print(s.recv(512).decode().split()[0], flush=True)
        except OSError as e:
            print(err_n(e, t0, i), flush=True)
            bad += 1
        finally:
            s.close()

def connect(host, port):
    t0 = time.monotonic()
    s = socket.socket(fam(host), socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect((host, port))
        print("OK %dms" % ((time.monotonic() - t0) * 1000))
    except OSError as e:
        print(err(e, t0))
    finally:
        s.close()

cmd, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if cmd == "udp":
    udp(host, port, int(sys.argv[4]) if len(sys.argv) > 4 else 1,
        int(sys.argv[5]) if len(sys.argv) > 5 else 0)
elif cmd == "connect":
    connect(host, port)
else:
    sys.exit("unknown command " + cmd)
'

# cl_udp NS HOST PORT [N [SPORT]]: N UDP queries from NS (see CL_CLIENT_PY).
cl_udp() { ip netns exec "$1" "$CL_PY" -c "$CL_CLIENT_PY" udp "$2" "$3" "${4:-1}" ${5:+"$5"}; }
# cl_connect NS HOST PORT: one TCP connect from NS (see CL_CLIENT_PY).
cl_connect() { ip netns exec "$1" "$CL_PY" -c "$CL_CLIENT_PY" connect "$2" "$3"; }

# cl_stream_start NS HOST PORT OUTFILE: a long-lived TCP connection from NS to
# the echo servers (port 9090 on the pods): socat sends a numbered line every
# 0.2 s and OUTFILE collects the replies ("pod2 17"), socat's errors go to
# OUTFILE.err. Stops when cl_stream_stop is called. Sets CL_STREAM_PID.
cl_stream_start() {
	local ns=$1 host=$2 port=$3 out=$4 addr
	if [[ $host == *:* ]]; then addr="TCP6:[$host]:$port"; else addr="TCP4:$host:$port"; fi
	rm -f "$out.stop"
	ip netns exec "$ns" bash -c '
		stop=$1; shift
		for ((i = 1; i <= 3000; i++)); do
			[ -e "$stop" ] && break
			echo "$i"
			sleep 0.2
		done | socat -t 2 - "$1"' _ "$out.stop" "$addr" >"$out" 2>"$out.err" &
	CL_STREAM_PID=$!
	CL_BG_PIDS+=("$CL_STREAM_PID")
}

# cl_stream_stop OUTFILE PID: ask the stream to end and wait (bounded).
cl_stream_stop() {
	local out=$1 pid=$2 i
	touch "$out.stop"
	for ((i = 0; i < 40; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	cl_kill_pid "$pid"
}

# cl_loop_start NS ADDR PORT OUTFILE [MAX]: HTTP requests from NS back to
# back (a new curl, so a new connection, each), one result line per request
# in OUTFILE as cl_http prints it, until cl_loop_stop (at most MAX requests,
# default 3000). Sets CL_LOOP_PID.
cl_loop_start() {
	local ns=$1 url out=$4
	url=$(cl_url "$2" "$3")
	rm -f "$out.stop"
	ip netns exec "$ns" bash -c '
		for ((i = 0; i < $3; i++)); do
			[ -e "$2" ] && break
			if out=$(curl -sS -g --connect-timeout 2 --max-time 3 "$1" 2>&1); then
				echo "${out%% *}"
			else
				echo "ERR $(date +%T.%N | cut -c1-12) $(echo "$out" | head -1)"
			fi
		done' _ "$url" "$out.stop" "${5:-3000}" >"$out" 2>&1 &
	CL_LOOP_PID=$!
	CL_BG_PIDS+=("$CL_LOOP_PID")
}

# cl_loop_stop OUTFILE PID: end a loop (bounded wait).
cl_loop_stop() { cl_stream_stop "$@"; }

# The probe client of multi-node tests: requests to several targets at once,
# each answer as the backend servers give it ("<pod> <peer address>"), and
# each request tagged with a token the pods log (CL_SERVER_PY), so a test
# can also ask whether any pod saw it (cl_pods_saw).
# Arguments: TAG TIMEOUT MAX-FAIL SPEC..., SPEC = PROTO,HOST,PORT,N (tcp: an
#       HTTP GET /TOKEN on a new connection; udp: "query TOKEN" from a new
#       socket). The SPECs run in parallel, each its N requests in turn,
#       giving up after MAX-FAIL failures. Prints, in SPEC order, one line
#       per request: "SPEC-INDEX TOKEN RESULT", where TOKEN is TAG-INDEX-I and
#       RESULT is "<pod> <peer>" or "ERR <reason> <ms>ms <stage>" (reason: an
#       errno name or TIMEOUT; stage: connect, answer).
CL_PROBE_PY='
import errno, socket, sys, threading, time

def fam(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET

def one(proto, host, port, token, timeout):
    t0 = time.monotonic()
    stage = "connect"
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(fam(host), kind)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        stage = "answer"
        if proto == "tcp":
            s.sendall(b"GET /%s HTTP/1.0\r\nHost: svc\r\n\r\n" % token.encode())
            data = b""
            while len(data) < 65536:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            body = data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""
        else:
            s.send(b"query %s\n" % token.encode())
            body = s.recv(512)
        words = body.decode(errors="replace").split()
        if len(words) < 2:
            return "ERR EMPTY %dms %s" % ((time.monotonic() - t0) * 1000, stage)
        return "%s %s" % (words[0], words[1])
    except OSError as e:
        name = "TIMEOUT" if isinstance(e, socket.timeout) else errno.errorcode.get(e.errno, str(e))
        return "ERR %s %dms %s" % (name, (time.monotonic() - t0) * 1000, stage)
    finally:
        s.close()

def run(idx, spec, out):
    proto, host, port, n = spec.split(",")
    bad = 0
    for i in range(int(n)):
        token = "%s-%d-%d" % (tag, idx, i)
        if bad >= maxfail:
            out.append("%d %s ERR not-tried 0ms after-failures" % (idx, token))
            continue
        r = one(proto, host, int(port), token, timeout)
        bad += r.startswith("ERR")
        out.append("%d %s %s" % (idx, token, r))

tag, timeout, maxfail = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
specs = sys.argv[4:]
outs = [[] for _ in specs]
threads = [threading.Thread(target=run, args=(i, sp, outs[i])) for i, sp in enumerate(specs)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for o in outs:
    for line in o:
        print(line)
'

# cl_probe NS TAG TIMEOUT MAX-FAIL SPEC...: run the probe client in NS (see CL_PROBE_PY).
cl_probe() { local ns=$1; shift; ip netns exec "$ns" "$CL_PY" -c "$CL_PROBE_PY" "$@" 2>&1; }

# cl_pods_saw TOKEN-PREFIX: the pods that logged a request whose token
# starts with TOKEN-PREFIX, as "POD KIND PEER TOKEN" lines (none: nothing).
cl_pods_saw() {
	local pod
	for pod in "${CL_PODS[@]}"; do
		awk -v p="$pod" -v t="$1" 'index($3, t) == 1 { print p, $0 }' \
			"$CL_TMP/$pod-server.log" 2>/dev/null
	done
}

# Many long-lived TCP connections from one process, for "established
# connections survive" checks (cl_conns_start). Arguments HOST PORT N
# STATUS MAX-SECONDS. Opens N connections to the echo servers (port 9090 on
# the pods) at once and gives them 5 s to connect; writes "connected K of N"
# to STATUS; then, every 0.3 s, sends a numbered line on each connected one
# and collects the echoes ("<pod> <line>"), until STATUS.stop exists or
# MAX-SECONDS passed; then waits up to 10 s for the outstanding echoes and
# writes STATUS.json: n, connected, broken (closed, reset, echoes missing at
# the end, or answered by another pod than at first), rounds, backends
# (connections per pod) and the first errors.
CL_CONNS_PY='
import errno, json, os, select, socket, sys, time

host, port, n, status, maxsec = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
t0 = time.monotonic()

class Conn:
    def __init__(self, i):
        self.i, self.sent, self.got, self.buf = i, 0, 0, b""
        self.backend, self.state, self.err = None, "connecting", ""
        self.s = socket.socket(family, socket.SOCK_STREAM)
        self.s.setblocking(False)
        try:
            self.s.connect((host, port))
        except BlockingIOError:
            pass
        except OSError as e:
            self.fail("failed", e)

    def fail(self, state, e):
        self.state = state
        self.err = errno.errorcode.get(e.errno, str(e)) if isinstance(e, OSError) else str(e)

def write(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)

conns = [Conn(i) for i in range(n)]
byfd = {c.s.fileno(): c for c in conns}
poller = select.poll()
for c in conns:
    if c.state == "connecting":
        poller.register(c.s, select.POLLOUT)
deadline = time.monotonic() + 5
while any(c.state == "connecting" for c in conns) and time.monotonic() < deadline:
    for fd, ev in poller.poll(200):
        c = byfd[fd]
        if c.state != "connecting":
            continue
        poller.unregister(fd)
        e = c.s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if e:
            c.fail("failed", OSError(e, os.strerror(e)))
        else:
            c.state = "up"
for c in conns:
    if c.state == "connecting":
        poller.unregister(c.s)
        c.state, c.err = "failed", "TIMEOUT"
up = [c for c in conns if c.state == "up"]
write(status, "connected %d of %d\n" % (len(up), n))
poller = select.poll()
for c in up:
    poller.register(c.s, select.POLLIN)

def read_for(seconds):
    end = time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        if left <= 0 or not any(c.state == "up" and c.got < c.sent for c in up):
            return
        for fd, ev in poller.poll(int(left * 1000) + 1):
            c = byfd[fd]
            if c.state != "up":
                continue
            try:
                data = c.s.recv(65536)
            except BlockingIOError:
                continue
            except OSError as e:
                c.fail("broken", e)
                poller.unregister(fd)
                continue
            if not data:
                c.fail("broken", "EOF (closed by the other side)")
                poller.unregister(fd)
                continue
            c.buf += data
            while b"\n" in c.buf:
                line, c.buf = c.buf.split(b"\n", 1)
                who = line.split()[0].decode(errors="replace") if line.split() else "?"
                if c.backend is None:
                    c.backend = who
                elif who != c.backend:
                    c.fail("broken", "answered by %s after %s" % (who, c.backend))
                c.got += 1

rounds = 0
while not os.path.exists(status + ".stop") and time.monotonic() - t0 < maxsec:
    rounds += 1
    for c in up:
        if c.state != "up":
            continue
        try:
            c.s.send(b"%d %d\n" % (c.i, rounds))
            c.sent += 1
        except BlockingIOError:
            pass
        except OSError as e:
            c.fail("broken", e)
    read_for(0.3)
read_for(10)
for c in up:
    if c.state == "up" and c.got < c.sent:
        c.fail("broken", "%d of %d echoes missing at the end" % (c.sent - c.got, c.sent))
backends = {}
for c in up:
    backends[c.backend or "none"] = backends.get(c.backend or "none", 0) + 1
def sport(c):
    try:
        return c.s.getsockname()[1]
    except OSError:
        return 0
errors = ["#%d sport %d %s: %s" % (c.i, sport(c), c.state, c.err) for c in conns if c.state != "up"]
bad_sports = [sport(c) for c in conns if c.state != "up"]
for c in conns:
    c.s.close()
write(status + ".json", json.dumps({
    "n": n, "connected": len(up), "broken": sum(c.state == "broken" for c in up),
    "rounds": rounds, "backends": backends, "errors": errors[:5], "bad_sports": bad_sports}) + "\n")
'

# cl_conns_start NS HOST PORT N STATUS [MAX-SECONDS]: N long-lived
# connections from NS in the background (see CL_CONNS_PY; at most
# MAX-SECONDS, default 120). Sets CL_CONNS_PID.
cl_conns_start() {
	local ns=$1 host=$2 port=$3 n=$4 st=$5 max=${6:-120}
	rm -f "$st" "$st.stop" "$st.json"
	ip netns exec "$ns" "$CL_PY" -c "$CL_CONNS_PY" "$host" "$port" "$n" "$st" "$max" \
		>"$st.log" 2>&1 </dev/null &
	CL_CONNS_PID=$!
	CL_BG_PIDS+=("$CL_CONNS_PID")
}

# cl_conns_stop STATUS PID: ask them to end, wait (bounded: the drain takes
# at most 10 s) for STATUS.json; prints it (nothing if it never came).
cl_conns_stop() {
	local st=$1 pid=$2 i
	touch "$st.stop"
	for ((i = 0; i < 150; i++)); do
		[ -s "$st.json" ] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	cl_kill_pid "$pid"
	cat "$st.json" 2>/dev/null
}

# ---- The daemon ---------------------------------------------------------------

# SP_BIN: the svcplane binary (absolute, since we run it from namespaces).
cl_find_bin() {
	local repo
	repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
	SP_BIN=${SP_BIN:-$repo/${OUT:-build}/svcplane}
	case $SP_BIN in /*) ;; *) SP_BIN="$PWD/$SP_BIN" ;; esac
	[ -x "$SP_BIN" ]
}

# sp NODE-NS SUBCOMMAND ARGS...: an inspection command against our pins
# (the node's own pin directory if its daemon was started by sp_node_start).
sp() {
	local ns=$1 sub=$2; shift 2
	ip netns exec "$ns" "$SP_BIN" "$sub" --bpffs-dir "${CL_NODE_PINDIR[$ns]:-$CL_PINDIR}" "$@"
}

# sp_start NODE-NS LOG ARGS...: `svcplane run` in the background in NODE-NS
# on its uplink and pod veths, pinning under CL_PINDIR; extra ARGS (e.g.
# --config FILE) are appended. Sets SP_PID.
sp_start() {
	local ns=$1 log=$2; shift 2
	# The node's name, as a DaemonSet sets NODE_NAME: the configs' endpoints
	# say nodeName: node-a, and an endpoint on another node is SNATed.
	NODE_NAME=${SP_NODE_NAME:-node-a} ip netns exec "$ns" "$SP_BIN" run --iface up0 --pod-iface-pattern "$CL_POD_IF_PATTERN" \
		--bpffs-dir "$CL_PINDIR" "$@" >>"$log" 2>&1 </dev/null &
	SP_PID=$!
	CL_BG_PIDS+=("$SP_PID")
}

# sp_ready NODE-NS: does `svcplane status` say the daemon is up and synced?
# (It exits 0 exactly then.)
sp_ready() { sp "$1" status >/dev/null 2>&1; }

# sp_logged_running LOG FROM-LINE: has the daemon logged, after line
# FROM-LINE of LOG, that it is running (config applied, interfaces attached)?
sp_logged_running() { tail -n "+$(($2 + 1))" "$1" 2>/dev/null | grep -q ' running: '; }

# sp_wait_ready NODE-NS PID [TIMEOUT_S [LOG FROM-LINE]]: wait (bounded) until
# ready; fails at once if the daemon process PID has exited. With LOG, also
# wait for the daemon's "running:" log line after FROM-LINE: `svcplane
# status` reports ready as soon as the maps are pinned, which can be
# seconds before the config is applied and the programs are attached (and
# at once after a restart, from the previous daemon's pins).
sp_wait_ready() {
	local ns=$1 pid=$2 timeout=${3:-15} log=${4:-} from=${5:-0} i deadline
	deadline=$((SECONDS + timeout + 1))
	for ((i = 0; i < timeout * 10 && SECONDS <= deadline; i++)); do
		if sp_ready "$ns" && { [ -z "$log" ] || sp_logged_running "$log" "$from"; }; then
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# ---- One daemon per node (multi-node clusters) ----------------------------------

declare -A SP_NODE_FROM # log line each node's current daemon started after

# sp_node_start NODE-NS CONFIG [ARGS...]: the daemon of one node of a
# multi-node cluster: `svcplane run --config CONFIG --node-name NAME` on the
# node's uplink and pod veths, pinning in a directory of its own
# ($CL_BPFFS/svcplane-NAME, which `sp NODE-NS ...` then reads), logging to
# $CL_TMP/svcplane-NAME.log (SP_NODE_LOG); extra ARGS appended. Waits
# (bounded, 20 s) until it is ready and has logged "running". Returns 1 if it
# exits first or is not ready in time; sp_node_why says why.
sp_node_start() {
	local ns=$1 cfg=$2; shift 2
	local name=${CL_NODE_NAME[$ns]} log pid
	CL_NODE_PINDIR[$ns]="$CL_BPFFS/svcplane-$name"
	log="$CL_TMP/svcplane-$name.log"
	SP_NODE_LOG[$ns]=$log
	echo "=== svcplane run $* ($(date +%T.%N | cut -c1-12))" >>"$log"
	SP_NODE_FROM[$ns]=$(wc -l <"$log")
	ip netns exec "$ns" "$SP_BIN" run --iface up0 --pod-iface-pattern "$CL_POD_IF_PATTERN" \
		--bpffs-dir "${CL_NODE_PINDIR[$ns]}" --config "$cfg" --node-name "$name" "$@" \
		>>"$log" 2>&1 </dev/null &
	pid=$!
	SP_NODE_PID[$ns]=$pid
	CL_BG_PIDS+=("$pid")
	sp_wait_ready "$ns" "$pid" 20 "$log" "${SP_NODE_FROM[$ns]}"
}

# sp_node_stop NODE-NS: end the node's daemon (TERM; the datapath stays
# attached and its maps pinned, as after any daemon exit).
sp_node_stop() {
	local pid=${SP_NODE_PID[$1]:-}
	[ -n "$pid" ] && cl_kill_pid "$pid"
	SP_NODE_PID[$1]=""
}

# sp_node_restart NODE-NS CONFIG [ARGS...]: stop, then sp_node_start.
sp_node_restart() {
	sp_node_stop "$1"
	sp_node_start "$@"
}

# sp_node_why NODE-NS: the last error or warning lines the node's current
# daemon logged, on one line (why it did not start, or refused a config).
sp_node_why() {
	local log=${SP_NODE_LOG[$1]:-}
	[ -n "$log" ] || return 0
	tail -n "+$((${SP_NODE_FROM[$1]:-0} + 1))" "$log" 2>/dev/null |
		grep -iE 'error|unrecognized|invalid|unknown|refus|fail|keeping' | tail -n 1 |
		cut -c1-220
}

# sp_node_applies NODE-NS: how many times the node's current daemon has
# applied a config or refused one (to wait for a reload: sp_node_wait_apply).
sp_node_applies() {
	tail -n "+$((${SP_NODE_FROM[$1]:-0} + 1))" "${SP_NODE_LOG[$1]}" 2>/dev/null |
		grep -cE ' applied in |keeping the running state'
}

