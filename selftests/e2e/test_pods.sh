#!/bin/bash
# Pods come and go: the daemon follows pod veths over netlink. A pod whose
# veth appears after the daemon started gets the TC program and reaches its
# Services (IPv4 and IPv6, with and without hairpin); a veth that goes away
# is forgotten without disturbing the others.
. "$(dirname "$0")/lib.sh"

e2e_cases late-pod-attached late-pod-clusterip-ipv4 late-pod-clusterip-ipv6 \
	late-pod-hairpin pod-removed-logged pod-removed-others-unaffected second-late-pod \
	health-endpoints

e2e_begin --pods 2
PORTS='[{name: http, protocol: TCP, port: 8080}]'
{
	cat <<YAML
services:
  - name: web
    namespace: demo
    type: ClusterIP
    clusterIPs: [10.96.0.10, fd00:96::10]
    ports:
      - {name: http, protocol: TCP, port: 80, targetPort: 8080}
  - name: late
    namespace: demo
    type: ClusterIP
    clusterIPs: [10.96.0.30, fd00:96::30]
    ports:
      - {name: http, protocol: TCP, port: 80, targetPort: 8080}
endpointSlices:
YAML
	yaml_slices demo web web "$PORTS" pod1 pod2
	# The late pod's own Service: it does not exist yet when the daemon
	# starts (its endpoint address is simply unreachable until then).
	CL_POD_V4[pod3]=10.244.0.13 CL_POD_V6[pod3]=fd00:244::13
	yaml_slices demo late late "$PORTS" pod3
} | e2e_write_config
e2e_start_daemon || e2e_abort "daemon did not start"

# A TC filter of ours on DEV's ingress (bounded wait).
has_sp_filter() { tc -n "$E2E_NODE" filter show dev "$1" ingress 2>/dev/null | grep -q sp_tc_ingress; }

cl_add_pod "$E2E_NODE" pod3 10.244.0.13 fd00:244::13 || e2e_abort "adding pod3"
cl_wait_servers || e2e_abort "pod3's servers"
if cl_until 5 has_sp_filter "${CL_POD_HOSTIF[pod3]}"; then
	pass late-pod-attached
else
	fail late-pod-attached "no sp_tc_ingress on ${CL_POD_HOSTIF[pod3]} 5 s after it appeared"
fi

e2e_http_n "${CL_POD_NS[pod3]}" 10.96.0.10 80 10
e2e_expect_all late-pod-clusterip-ipv4 10 1 "pod1 pod2"
e2e_http_n "${CL_POD_NS[pod3]}" fd00:96::10 80 10
e2e_expect_all late-pod-clusterip-ipv6 10 1 "pod1 pod2"
# pod3 reaching itself through its own Service: needs the hairpin rewrite
# on its (late) veth.
e2e_http_n "${CL_POD_NS[pod3]}" 10.96.0.30 80 3
e2e_expect_all late-pod-hairpin 3 1 "pod3"

ip -n "$E2E_NODE" link del "${CL_POD_HOSTIF[pod3]}"
if cl_until 5 grep -q "${CL_POD_HOSTIF[pod3]}: pod interface gone" "$E2E_LOG"; then
	pass pod-removed-logged
else
	fail pod-removed-logged "no 'pod interface gone' for ${CL_POD_HOSTIF[pod3]} in the log"
fi
if kill -0 "$SP_PID" 2>/dev/null; then
	e2e_http_n "${CL_POD_NS[pod1]}" 10.96.0.10 80 6
	e2e_expect_all pod-removed-others-unaffected 6 1 "pod1 pod2"
else
	fail pod-removed-others-unaffected "the daemon exited"
fi

cl_add_pod "$E2E_NODE" pod4 10.244.0.14 fd00:244::14 || e2e_abort "adding pod4"
cl_wait_servers || e2e_abort "pod4's servers"
if cl_until 5 has_sp_filter "${CL_POD_HOSTIF[pod4]}"; then
	e2e_http_n "${CL_POD_NS[pod4]}" 10.96.0.10 80 6
	e2e_expect_all second-late-pod 6 1 "pod1 pod2"
else
	fail second-late-pod "no sp_tc_ingress on ${CL_POD_HOSTIF[pod4]}: $(tc -n "$E2E_NODE" filter show dev "${CL_POD_HOSTIF[pod4]}" ingress 2>&1 | tr "\n" " ")"
fi

# The daemon's HTTP endpoints (readiness, liveness, Prometheus metrics).
h=$(e2e_http_status "$E2E_NODE" http://127.0.0.1:9477/healthz)
l=$(e2e_http_status "$E2E_NODE" http://127.0.0.1:9477/livez)
m=$(ip netns exec "$E2E_NODE" curl -s -m 2 http://127.0.0.1:9477/metrics)
if [ "$h" = "200 ok" ] && [ "$l" = "200 alive" ] && [[ $m == *"svcplane_up 1"* ]] &&
	[[ $m == *"svcplane_new_flows_total "* ]] && [[ $m == *'reason="no_backend"'* ]]; then
	pass health-endpoints
else
	fail health-endpoints "healthz '$h', livez '$l', metrics: $(echo "$m" | head -3 | tr '\n' ' ')"
fi
