#!/bin/bash
# Which program did the work (issue 14 item 3). Each path of DESIGN.md's
# traffic table must be handled by its own hook, counted in that hook's
# slot of sp_stats (`svcplane stats --json`, by_hook), and not by another
# that happens to see the packet too (the uplink's TC egress sees every
# packet the node routes out, pod traffic included, so pod -> ClusterIP
# would "work" with the pod-veth program doing nothing).
#
#   web   ClusterIP 10.96.0.70, LB 10.10.0.170, TCP 80 -> 8080, pod1 pod2
#   empty ClusterIP 10.96.0.71, LB 10.10.0.171, TCP 80, no ready endpoint
#   kube  ClusterIP 10.96.0.72, TCP 443 -> 8080 on the node's own address
. "$(dirname "$0")/lib.sh"

e2e_cases \
	external-lb-new-flows-in-xdp external-lb-replies-in-pod-hook \
	pod-clusterip-new-flows-in-pod-hook-only host-clusterip-new-flows-in-host-hook-only \
	reject-answered-by-uplink-tc local-endpoint-through-host-hook

e2e_begin --pods 2
cl_client_route 10.10.0.170 || e2e_abort "client route"
cl_client_route 10.10.0.171 || e2e_abort "client route"
cl_bg "$E2E_NODE" "$CL_TMP/node-server.log" "$CL_PY" -c "$CL_SERVER_PY" node
cl_wait_listener "$E2E_NODE" tcp 8080 || e2e_abort "the node's own server does not listen"
HTTP='[{name: http, protocol: TCP, port: 8080}]'
{
	echo "services:"
	yaml_service demo web LoadBalancer "[10.96.0.70]" "[10.10.0.170]" \
		"{name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30170}"
	yaml_service demo empty LoadBalancer "[10.96.0.71]" "[10.10.0.171]" \
		"{name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30171}"
	yaml_service demo kube ClusterIP "[10.96.0.72]" "" \
		"{name: https, protocol: TCP, port: 443, targetPort: 8080}"
	echo "endpointSlices:"
	yaml_addr_slice demo web web-v4 4 "$HTTP" "${CL_POD_V4[pod1]}" "${CL_POD_V4[pod2]}"
	yaml_addr_slice demo empty empty-v4 4 "$HTTP"
	yaml_addr_slice demo kube kube-v4 4 '[{name: https, protocol: TCP, port: 8080}]' 10.10.0.1
} | e2e_write_config
e2e_start_daemon || e2e_abort "svcplane did not become ready"

# expect CASE A B HOOK.COUNTER=N...: PASS if every counter grew by exactly N
# (N may be "+" for "at least one").
expect() {
	local c=$1 a=$2 b=$3 why="" kv k n d
	shift 3
	for kv in "$@"; do
		k=${kv%=*} n=${kv#*=}
		d=$(e2e_stats_delta "$a" "$b" "$k")
		if [ "$n" = + ]; then
			[ "$d" -ge 1 ] || why+=" $k +$d (expected at least +1)"
		elif [ "$d" -ne "$n" ]; then
			why+=" $k +$d (expected +$n)"
		fi
	done
	if [ -z "$why" ]; then pass "$c"; else fail "$c" "counters:$why"; fi
}
S="$CL_TMP/stats"

# External client -> LB address: XDP on the uplink picks the backend; the
# pods' replies are reverse-NATed on their veths (TC ingress).
e2e_stats_snap "$S.0"
e2e_http_n "$CL_CLIENT" 10.10.0.170 80 5
e2e_stats_snap "$S.1"
if [ "$E2E_OK" -ne 5 ]; then
	fail external-lb-new-flows-in-xdp "$E2E_OK of 5 answered: $E2E_FIRST_ERR"
	fail external-lb-replies-in-pod-hook "no traffic"
else
	expect external-lb-new-flows-in-xdp "$S.0" "$S.1" xdp.new_flows=5 pod.new_flows=0 \
		host.new_flows=0
	expect external-lb-replies-in-pod-hook "$S.0" "$S.1" pod.ct_rev_hits=+ xdp.ct_rev_hits=0
fi

# Pod -> ClusterIP: the pod veth's TC ingress does the DNAT, not the
# uplink's TC egress (which the node's default route would also reach).
e2e_stats_snap "$S.2"
e2e_http_n "${CL_POD_NS[pod1]}" 10.96.0.70 80 5
e2e_stats_snap "$S.3"
if [ "$E2E_OK" -ne 5 ]; then
	fail pod-clusterip-new-flows-in-pod-hook-only "$E2E_OK of 5 answered: $E2E_FIRST_ERR"
else
	expect pod-clusterip-new-flows-in-pod-hook-only "$S.2" "$S.3" pod.new_flows=5 \
		host.new_flows=0 xdp.new_flows=0 host.svc_packets=0
fi

# Host process -> ClusterIP: the uplink's TC egress.
e2e_stats_snap "$S.4"
e2e_http_n "$E2E_NODE" 10.96.0.70 80 5
e2e_stats_snap "$S.5"
if [ "$E2E_OK" -ne 5 ]; then
	fail host-clusterip-new-flows-in-host-hook-only "$E2E_OK of 5 answered: $E2E_FIRST_ERR"
else
	expect host-clusterip-new-flows-in-host-hook-only "$S.4" "$S.5" host.new_flows=5 \
		pod.new_flows=0 xdp.new_flows=0
fi

# External client -> LB of an empty Service: XDP leaves the answer to the
# uplink's TC ingress, which sends the RST (and counts it once).
e2e_stats_snap "$S.6"
out=$(cl_connect "$CL_CLIENT" 10.10.0.171 80)
e2e_stats_snap "$S.7"
if [[ $out != "ERR ECONNREFUSED"* ]]; then
	fail reject-answered-by-uplink-tc "expected ECONNREFUSED, got: ${out:-nothing}"
else
	expect reject-answered-by-uplink-tc "$S.6" "$S.7" uplink_tc.rejects=1 xdp.rejects=0 \
		xdp.svc_packets=0
fi

# Host -> a Service whose endpoint is the node itself: the request and the
# reply both leave by the uplink's TC egress (the request hairpinned, the
# reply to the hairpin address), which hands each to lo after NAT.
e2e_stats_snap "$S.8"
out=$(in_node curl -s --max-time 5 http://10.96.0.72:443/ 2>&1)
e2e_stats_snap "$S.9"
if [[ $out != "node "* ]]; then
	fail local-endpoint-through-host-hook "GET http://10.96.0.72:443/ from the node: ${out:-no answer}"
else
	expect local-endpoint-through-host-hook "$S.8" "$S.9" host.ct_rev_hits=+ host.new_flows=1 \
		host.hairpin=1
fi
