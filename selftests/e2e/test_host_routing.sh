#!/bin/bash
# Host routing (bpf/lib/host_route.h): what XDP NATs for a pod on this node
# is delivered into the pod by the uplink's TC program with
# bpf_redirect_peer, and a pod's packet to a local pod by its veth's TC
# program, without the stack. Proven three ways: the traffic works, the
# peer_redirects counters of the hook that delivered grow, and the
# host-side veth of the pod sends (almost) nothing: bpf_redirect_peer hands
# the packet to the pod's end of the veth, not to its host side's xmit.
# Then the fallback (a neighbour the node has not resolved: the stack
# delivers and resolves it, counted peer_fallbacks, and the next packets
# take the fast path again), and --host-routing=off (the stack again).
#
#   web  LoadBalancer 10.96.0.10 fd00:96::10 | LB 10.10.0.100 fd00:10::100,
#        TCP 80->8080, UDP 53->5353; one endpoint: pod1
. "$(dirname "$0")/lib.sh"

e2e_cases lb-ipv4-tcp-peer lb-ipv6-tcp-peer lb-ipv4-udp-peer lb-ipv6-udp-peer \
	peer-skips-host-veth pod-to-local-pod-peer \
	no-neigh-ipv4-falls-back no-neigh-ipv6-falls-back neigh-resolved-peer-again \
	off-uses-stack

e2e_begin --pods 2
PORTS_SLICE='[{name: http, protocol: TCP, port: 8080}, {name: dns, protocol: UDP, port: 5353}]'
{
	echo "services:"
	yaml_service demo web LoadBalancer "[10.96.0.10, fd00:96::10]" "[10.10.0.100, fd00:10::100]" \
		"{name: http, protocol: TCP, port: 80, targetPort: 8080}" \
		"{name: dns, protocol: UDP, port: 53, targetPort: 5353}"
	echo "endpointSlices:"
	yaml_slices demo web web "$PORTS_SLICE" pod1
} | e2e_write_config
e2e_start_daemon || e2e_abort "svcplane did not become ready"

CLIENT=$CL_CLIENT
NODE=$E2E_NODE
HIF1=${CL_POD_HOSTIF[pod1]}
N=10

# tx_of DEV: packets the node's DEV has sent.
tx_of() { ip netns exec "$NODE" cat "/sys/class/net/$1/statistics/tx_packets"; }
S="$CL_TMP/stats"

# expect_peer CASE HOOK MIN: after traffic that answered in full (checked
# by the caller), HOOK's peer_redirects grew by at least MIN and nothing
# fell back.
expect_peer() {
	local c=$1 h=$2 min=$3 d f
	d=$(e2e_stats_delta "$S.a" "$S.b" "$h.peer_redirects")
	f=$(e2e_stats_delta "$S.a" "$S.b" "$h.peer_fallbacks")
	if [ "$d" -ge "$min" ] && [ "$f" = 0 ]; then
		pass "$c"
	else
		fail "$c" "$h.peer_redirects +$d (expected >= $min), $h.peer_fallbacks +$f (expected 0)"
	fi
}

# all_answered N: the last e2e_http_n / e2e_udp_n got N answers.
all_answered() { [ "$E2E_OK" = "$1" ] && [ "$E2E_BAD" = 0 ]; }

# Warm-up: the node learns the pod's addresses (ARP, ND) through the stack.
e2e_http_n "$CLIENT" 10.10.0.100 80 2
e2e_http_n "$CLIENT" fd00:10::100 80 2

for fam in ipv4 ipv6; do
	vip=10.10.0.100
	[ $fam = ipv6 ] && vip=fd00:10::100
	e2e_stats_snap "$S.a"
	tx0=$(tx_of "$HIF1")
	e2e_http_n "$CLIENT" "$vip" 80 $N
	e2e_stats_snap "$S.b"
	tx1=$(tx_of "$HIF1")
	if all_answered $N; then
		# At least the SYN, the request and the last ACK of each.
		expect_peer "lb-$fam-tcp-peer" uplink_tc $((3 * N))
	else
		fail "lb-$fam-tcp-peer" "$E2E_OK of $N answered: $E2E_FIRST_ERR"
	fi
	[ $fam = ipv4 ] && TX_V4=$((tx1 - tx0))
	e2e_stats_snap "$S.a"
	e2e_udp_n "$CLIENT" "$vip" 53 $N
	e2e_stats_snap "$S.b"
	if all_answered $N; then
		expect_peer "lb-$fam-udp-peer" uplink_tc $N
	else
		fail "lb-$fam-udp-peer" "$E2E_OK of $N answered: $E2E_FIRST_ERR"
	fi
done
# The stack would have sent each of those >= 3 N packets out of the pod
# veth's host side; a few ARP / ND probes may still go that way.
check peer-skips-host-veth "$HIF1 sent $TX_V4 packets for $N connections (expected < $N)" \
	[ "$TX_V4" -lt $N ]

# pod2 -> ClusterIP -> pod1, both on this node: pod2's veth (TC) NATs and
# delivers into pod1; pod1's veth reverse-NATs and delivers into pod2.
e2e_http_n "${CL_POD_NS[pod2]}" 10.96.0.10 80 2 # warm-up (neighbours)
e2e_stats_snap "$S.a"
e2e_http_n "${CL_POD_NS[pod2]}" 10.96.0.10 80 $N
e2e_stats_snap "$S.b"
if all_answered $N; then
	# Both directions: at least 3 packets each way per connection.
	expect_peer pod-to-local-pod-peer pod $((6 * N))
else
	fail pod-to-local-pod-peer "$E2E_OK of $N answered: $E2E_FIRST_ERR"
fi

# The node forgets pod1's neighbour entries: the FIB lookup says NO_NEIGH,
# the stack delivers (and resolves the address), counted peer_fallbacks.
for fam in ipv4 ipv6; do
	if [ $fam = ipv4 ]; then
		vip=10.10.0.100 pod=${CL_POD_V4[pod1]}
	else
		vip=fd00:10::100 pod=${CL_POD_V6[pod1]}
	fi
	ip -n "$NODE" neigh del "$pod" dev "$HIF1" 2>/dev/null
	e2e_stats_snap "$S.a"
	e2e_http_n "$CLIENT" "$vip" 80 1
	e2e_stats_snap "$S.b"
	f=$(e2e_stats_delta "$S.a" "$S.b" uplink_tc.peer_fallbacks)
	if all_answered 1 && [ "$f" -ge 1 ]; then
		pass "no-neigh-$fam-falls-back"
	else
		fail "no-neigh-$fam-falls-back" "$E2E_OK of 1 answered ($E2E_FIRST_ERR), uplink_tc.peer_fallbacks +$f (expected >= 1)"
	fi
done
# Resolved by the stack meanwhile: the fast path again.
e2e_stats_snap "$S.a"
e2e_http_n "$CLIENT" 10.10.0.100 80 $N
e2e_stats_snap "$S.b"
if all_answered $N; then
	expect_peer neigh-resolved-peer-again uplink_tc $((3 * N))
else
	fail neigh-resolved-peer-again "$E2E_OK of $N answered: $E2E_FIRST_ERR"
fi

# --host-routing=off: the stack delivers, nothing is noted or redirected.
kill -TERM "$SP_PID"
for ((i = 0; i < 50; i++)); do kill -0 "$SP_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$SP_PID" 2>/dev/null && cl_kill_pid "$SP_PID"
e2e_start_daemon --host-routing=off || e2e_abort "svcplane --host-routing=off did not become ready"
e2e_stats_snap "$S.a"
tx0=$(tx_of "$HIF1")
e2e_http_n "$CLIENT" 10.10.0.100 80 $N
ok=$E2E_OK
e2e_http_n "${CL_POD_NS[pod2]}" 10.96.0.10 80 $N
ok=$((ok + E2E_OK))
e2e_stats_snap "$S.b"
tx=$(($(tx_of "$HIF1") - tx0))
d=$(($(e2e_stats_delta "$S.a" "$S.b" uplink_tc.peer_redirects) + $(e2e_stats_delta "$S.a" "$S.b" pod.peer_redirects)))
f=$(e2e_stats_delta "$S.a" "$S.b" uplink_tc.peer_fallbacks)
if [ $ok = $((2 * N)) ] && [ $d = 0 ] && [ $f = 0 ] && [ $tx -ge $((3 * N)) ]; then
	pass off-uses-stack
else
	fail off-uses-stack "$ok of $((2 * N)) answered, peer_redirects +$d, peer_fallbacks +$f (expected 0, 0), $HIF1 sent $tx (expected >= $((3 * N)))"
fi
