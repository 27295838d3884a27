#!/bin/bash
# The namespace cluster itself, without svcplane: plain routed traffic
# between client, node and pods works in both families (so a failure in the
# other e2e tests points at svcplane, not at the plumbing), and nothing of a
# cluster is left behind, also when its script is killed.
. "$(dirname "$0")/lib.sh"

e2e_cases pod-to-pod-ipv4 pod-to-pod-ipv6 node-to-pod-ipv4 node-to-pod-ipv6 udp-ipv4 udp-ipv6 \
	client-to-node-ipv4 client-to-node-ipv6 long-lived-connection \
	cross-node-pod-ipv4 cross-node-pod-ipv6 cleanup-on-exit cleanup-on-kill

# No daemon here, so no binary is needed: e2e_begin minus the binary check.
if [ "$(id -u)" != 0 ]; then
	for c in "${E2E_CASES[@]}"; do skip "$c" "needs root (network namespaces)"; done
	exit 0
fi
cl_install_traps
trap 'e2e_end' EXIT
cluster_up --pods 3 --second-node-addr --nodes 2 || e2e_abort "building the namespace cluster failed"
P1=${CL_POD_NS[pod1]}
NODE=${CL_NODES[0]}

e2e_http_n "$P1" 10.244.0.12 8080 3
e2e_expect_all pod-to-pod-ipv4 3 1 pod2
e2e_http_n "$P1" fd00:244::13 8080 3
e2e_expect_all pod-to-pod-ipv6 3 1 pod3
e2e_http_n "$NODE" 10.244.0.11 8080 3
e2e_expect_all node-to-pod-ipv4 3 1 pod1
e2e_http_n "$NODE" fd00:244::12 8080 3
e2e_expect_all node-to-pod-ipv6 3 1 pod2
e2e_udp_n "$P1" 10.244.0.13 5353 3
e2e_expect_all udp-ipv4 3 1 pod3
e2e_udp_n "$NODE" fd00:244::11 5353 3
e2e_expect_all udp-ipv6 3 1 pod1

# Nothing listens on the node: an immediate refusal proves the path both ways.
out=$(cl_connect "$CL_CLIENT" 10.10.1.1 1)
check client-to-node-ipv4 "expected ECONNREFUSED from 10.10.1.1, got: $out" \
	test "${out% *}" = "ERR ECONNREFUSED"
out=$(cl_connect "$CL_CLIENT" fd00:10::1 1)
check client-to-node-ipv6 "expected ECONNREFUSED from fd00:10::1, got: $out" \
	test "${out% *}" = "ERR ECONNREFUSED"

# The long-lived connection helper the reload/restart tests rely on.
# Waits (up to 60 s) for 4 echoed lines rather than counting them in 1 s.
cl_stream_start "$P1" 10.244.0.12 9090 "$CL_TMP/stream"
stream_pod2() { [ "$(grep -c '^pod2 [0-9]*$' "$CL_TMP/stream")" -ge "$1" ]; }
cl_until 60 stream_pod2 4
cl_stream_stop "$CL_TMP/stream" "$CL_STREAM_PID"
n=$(grep -c '^pod2 [0-9]*$' "$CL_TMP/stream")
lines=$(grep -c . "$CL_TMP/stream")
check long-lived-connection "expected >= 4 echoed lines from pod2 (waited up to 60 s) and no other, got $n of $lines: $(head -c 200 "$CL_TMP/stream.err")" \
	test "$n" -ge 4 -a "$n" -eq "$lines"

# Two nodes (for row 4 of DESIGN.md): pods reach pods on the other node.
e2e_http_n "$P1" 10.244.1.11 8080 3
e2e_expect_all cross-node-pod-ipv4 3 1 podb1
e2e_udp_n "${CL_POD_NS[podb1]}" fd00:244::12 5353 3
e2e_expect_all cross-node-pod-ipv6 3 1 pod2

# A cluster built by a child script, which exits normally / is killed with
# TERM in the middle of its work: its namespaces, mount and files must go.
leftovers() { # ID: what a cluster with that id left behind
	ip netns list | grep -o "^sp$1-[^ ]*"
	mount | grep -o "/run/svcplane-e2e-$1/[^ ]*"
	[ -e "/run/svcplane-e2e-$1" ] && echo "/run/svcplane-e2e-$1"
}
CHILD_SCRIPT='
		. "$1/scripts/lib/cluster.sh"
		cl_install_traps
		cluster_up --pods 1 >&2 || exit 1
		echo "$CL_ID"
		[ "$2" = kill ] || exit 0
		for ((i = 0; i < 6000; i++)); do sleep 0.1; done'
id=$(bash -c "$CHILD_SCRIPT" _ "$REPO" exit)
left=$(leftovers "$id")
check cleanup-on-exit "left behind: $left" test -n "$id" -a -z "$left"

bash -c "$CHILD_SCRIPT" _ "$REPO" kill >"$CL_TMP/child.id" &
cpid=$!
# The child sleeps until killed (at most 600 s): wait for its cluster,
# however long building it takes (bounded), then kill it mid-work.
cl_until 120 test -s "$CL_TMP/child.id"
kill -TERM "$cpid" 2>/dev/null
wait "$cpid" 2>/dev/null
id=$(cat "$CL_TMP/child.id")
left=$(leftovers "$id")
check cleanup-on-kill "left behind: $left" test -n "$id" -a -z "$left"
