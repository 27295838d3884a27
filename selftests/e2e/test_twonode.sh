#!/bin/bash
# Row 4 of DESIGN.md: a pod reaching a ClusterIP whose backends are on
# another node. Both nodes run svcplane with the same config. The client's
# node DNATs on the pod veth (TC) and routes the packet to the other node;
# the reply comes back through the client's node, whose XDP on the uplink
# holds the reverse conntrack entry and restores the ClusterIP as source.
# Also the node itself (host network) reaching the remote backends.
. "$(dirname "$0")/lib.sh"

e2e_cases pod-remote-ipv4-tcp pod-remote-ipv6-tcp pod-remote-ipv4-udp pod-remote-ipv6-udp \
	host-remote-ipv4-tcp host-remote-ipv6-tcp host-remote-ipv4-udp host-remote-ipv6-udp \
	mixed-local-and-remote reverse-nat-on-uplink

e2e_begin --pods 2 --nodes 2 --pods-b 2
NODE_B=${CL_NODES[1]}
PORTS='[{name: http, protocol: TCP, port: 8080}, {name: dns, protocol: UDP, port: 5353}]'
{
	cat <<YAML
services:
  - name: remote
    namespace: demo
    type: ClusterIP
    clusterIPs: [10.96.0.40, fd00:96::40]
    ports:
      - {name: http, protocol: TCP, port: 80, targetPort: 8080}
      - {name: dns, protocol: UDP, port: 53, targetPort: 5353}
  - name: mixed
    namespace: demo
    type: ClusterIP
    clusterIPs: [10.96.0.41, fd00:96::41]
    ports:
      - {name: http, protocol: TCP, port: 80, targetPort: 8080}
      - {name: dns, protocol: UDP, port: 53, targetPort: 5353}
endpointSlices:
YAML
	yaml_slices demo remote remote "$PORTS" podb1 podb2
	yaml_slices demo mixed mixed "$PORTS" pod2 podb1
} | e2e_write_config
e2e_start_daemon || e2e_abort "daemon on node-a did not start"
# node-b: the same config, its own pin directory (one daemon per directory).
PIN_B="$CL_BPFFS/svcplane-b"
ip netns exec "$NODE_B" "$SP_BIN" run --iface up0 --pod-iface-pattern "$CL_POD_IF_PATTERN" \
	--bpffs-dir "$PIN_B" --config "$E2E_CONFIG" >>"$CL_TMP/svcplane-b.log" 2>&1 </dev/null &
PID_B=$!
CL_BG_PIDS+=("$PID_B")
cl_until 20 ip netns exec "$NODE_B" "$SP_BIN" status --bpffs-dir "$PIN_B" ||
	e2e_abort "daemon on node-b did not become ready: $(tail -3 "$CL_TMP/svcplane-b.log")"

e2e_http_n "${CL_POD_NS[pod1]}" 10.96.0.40 80 12
e2e_expect_all pod-remote-ipv4-tcp 12 2 "podb1 podb2"
e2e_http_n "${CL_POD_NS[pod1]}" fd00:96::40 80 12
e2e_expect_all pod-remote-ipv6-tcp 12 2 "podb1 podb2"
e2e_udp_n "${CL_POD_NS[pod1]}" 10.96.0.40 53 8
e2e_expect_all pod-remote-ipv4-udp 8 1 "podb1 podb2"
e2e_udp_n "${CL_POD_NS[pod1]}" fd00:96::40 53 8
e2e_expect_all pod-remote-ipv6-udp 8 1 "podb1 podb2"
e2e_http_n "$E2E_NODE" 10.96.0.40 80 8
e2e_expect_all host-remote-ipv4-tcp 8 1 "podb1 podb2"
e2e_http_n "$E2E_NODE" fd00:96::40 80 8
e2e_expect_all host-remote-ipv6-tcp 8 1 "podb1 podb2"
e2e_udp_n "$E2E_NODE" 10.96.0.40 53 8
e2e_expect_all host-remote-ipv4-udp 8 1 "podb1 podb2"
e2e_udp_n "$E2E_NODE" fd00:96::40 53 8
e2e_expect_all host-remote-ipv6-udp 8 1 "podb1 podb2"
e2e_http_n "${CL_POD_NS[pod1]}" 10.96.0.41 80 16
e2e_expect_all mixed-local-and-remote 16 2 "pod2 podb1"
# The replies of the remote flows were reverse-NATed by node-a's XDP: its
# own slot of the counters, not the total the pod veths' TC adds to.
rev=$(sp "$E2E_NODE" stats --json 2>/dev/null |
	"$CL_PY" -c 'import json,sys; print(json.load(sys.stdin)["by_hook"]["xdp"]["ct_rev_hits"])' 2>/dev/null)
check reverse-nat-on-uplink "node-a's XDP counted ${rev:-no} reverse-NAT hits" [ "${rev:-0}" -gt 0 ]
