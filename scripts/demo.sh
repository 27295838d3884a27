#!/bin/bash
# `make demo`: svcplane on a throwaway cluster made of network namespaces.
# Builds the cluster, runs the daemon on its embedded default config, sends
# real traffic through each kind of Service address, shows where it went,
# and removes everything again (also on Ctrl-C or failure). Needs root.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/cluster.sh
. "$HERE/lib/cluster.sh"

if [ -t 1 ]; then B=$'\e[1m' D=$'\e[2m' N=$'\e[0m'; else B="" D="" N=""; fi
step() { printf '\n%s== %s%s\n' "$B" "$*" "$N"; }
say() { printf '   %s\n' "$*"; }
die() {
	printf '\ndemo: %s\n' "$*" >&2
	if [ -s "${LOG:-}" ]; then
		echo "--- svcplane log (last 20 lines) ---" >&2
		tail -n 20 "$LOG" >&2
	fi
	exit 1
}

[ "$(id -u)" = 0 ] || die "run me as root (I create network namespaces and attach BPF programs)"
cl_find_bin || die "no svcplane binary at $SP_BIN; build it with 'make' first"
cl_install_traps
T0=$SECONDS

cat <<EOF
${B}svcplane demo${N}: Kubernetes Services without kube-proxy, in eBPF.
A Service is a stable virtual address (ClusterIP, LoadBalancer IP, NodePort)
in front of pods that come and go. svcplane rewrites packets addressed to it
to one of the Service's pods in XDP/TC programs, and rewrites the replies back.
EOF

step "1. A throwaway cluster out of network namespaces"
cluster_up --pods 3 || die "could not build the cluster"
NODE=${CL_NODES[0]}
cat <<EOF
   external client  10.10.0.2   fd00:10::2
         |  (an uplink, as a node's NIC would be)
   node-a           10.10.0.1   fd00:10::1    runs svcplane
         |  (one veth per pod, a /32 route each, as Calico does)
   pod1 pod2 pod3   10.244.0.11-13   fd00:244::11-13
                    each serves HTTP on 8080 and UDP on 5353, answering with its name
EOF

step "2. Start svcplane on node-a with its embedded default config"
LOG=$CL_TMP/svcplane.log
say "svcplane run --iface up0 --pod-iface-pattern '$CL_POD_IF_PATTERN' --bpffs-dir $CL_PINDIR"
t=$SECONDS
sp_start "$NODE" "$LOG"
sp_wait_ready "$NODE" "$SP_PID" 20 "$LOG" 0 || die "svcplane did not become ready"
say "ready after $((SECONDS - t)) s: XDP and TC on the uplink, TC on each pod's veth. The config has:"
say "  demo/web    LoadBalancer 10.10.0.100 fd00:10::100, ClusterIP 10.96.0.10, NodePort 30080"
say "              TCP 80 -> pods' 8080"
say "  demo/dns    ClusterIP 10.96.0.53, UDP 53 -> pods' 5353"
say "  demo/empty  ClusterIP 10.96.0.99, TCP 80, no endpoints at all"

step "3. Send traffic through the Service addresses"
sample=$(in_client curl -s --max-time 2 http://10.10.0.100/)
say "One request first: client$ curl http://10.10.0.100/   ->   \"$sample\""
say "(the pod that answered, and the client address it saw: not NATed on the way in)"
echo
R=$CL_TMP/results
mkdir -p "$R"
say "Now, each request a new connection:"
say "  30 x HTTP  external client -> LoadBalancer 10.10.0.100:80   (XDP on the uplink)"
cl_http_many "$CL_CLIENT" 10.10.0.100 80 30 >"$R/lb4"
say "  10 x HTTP  external client -> LoadBalancer [fd00:10::100]:80 (IPv6)"
cl_http_many "$CL_CLIENT" fd00:10::100 80 10 >"$R/lb6"
say "  30 x HTTP  pod1 -> ClusterIP 10.96.0.10:80                  (TC on pod1's veth)"
cl_http_many "${CL_POD_NS[pod1]}" 10.96.0.10 80 30 >"$R/cip"
say "  10 x UDP   pod2 -> dns ClusterIP 10.96.0.53:53              (DNS-like request/reply)"
cl_udp "${CL_POD_NS[pod2]}" 10.96.0.53 53 10 >"$R/dns"
say "   5 x HTTP  external client -> NodePort 10.10.0.1:30080      (the node's own address)"
cl_http_many "$CL_CLIENT" 10.10.0.1 30080 5 >"$R/np"

step "4. Which pod answered"
count() { grep -cx "$1" "$R/$2"; }
printf '   %-10s %8s %8s %10s %8s %9s\n' backend "LB v4" "LB v6" ClusterIP "DNS/UDP" NodePort
for pod in pod1 pod2 pod3; do
	printf '   %-10s %8s %8s %10s %8s %9s\n' "$pod" "$(count "$pod" lb4)" "$(count "$pod" lb6)" \
		"$(count "$pod" cip)" "$(count "$pod" dns)" "$(count "$pod" np)"
done
failed=$(cat "$R"/* | grep -c '^ERR')
printf '   %-10s %8s %8s %10s %8s %9s\n' "failed" "$(grep -c '^ERR' "$R/lb4")" "$(grep -c '^ERR' "$R/lb6")" \
	"$(grep -c '^ERR' "$R/cip")" "$(grep -c '^ERR' "$R/dns")" "$(grep -c '^ERR' "$R/np")"
[ "$failed" -gt 0 ] && say "first failure: $(cat "$R"/* | grep -m1 '^ERR')"
say "Maglev hashing spreads connections over the pods; each connection stays on its pod."

step "5. A Service with no endpoints refuses at once, as kube-proxy's REJECT does"
out=$(in_pod pod1 curl -sS --max-time 3 http://10.96.0.99/ 2>&1)
say "pod1$ curl http://10.96.0.99/"
say "${D}$out${N}"
out=$(cl_connect "${CL_POD_NS[pod1]}" 10.96.0.99 80)
# shellcheck disable=SC2086 # split "ERR ECONNREFUSED 0ms" into words
set -- $out
say "A bare connect() from pod1: ${2:-?} after ${3%ms} ms. svcplane answered the SYN with a"
say "TCP RST; a UDP Service without endpoints answers with ICMP port unreachable."

step "6. What svcplane has programmed: svcplane services"
sp "$NODE" services 2>&1 | sed 's/^/   /'

step "7. Clean up"
cluster_down
say "namespaces, programs, pins: all gone. The demo took $((SECONDS - T0)) s."
[ "$failed" -eq 0 ] || exit 1
