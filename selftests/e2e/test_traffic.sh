#!/bin/bash
# Rows 1, 2, 3, 5, 6, 7 and 8 of DESIGN.md's "Traffic that must work" on
# one node: real curl / socket clients through every kind of Service
# address, TCP and UDP, IPv4 and IPv6, with svcplane attached to the
# node's uplink and pod veths.
#
#   web    LoadBalancer  10.96.0.10 fd00:96::10 | LB 10.10.0.100 fd00:10::100 |
#                        externalIP 10.10.0.200 fd00:10::200 |
#                        TCP 80->8080 nodePort 30080, UDP 53->5353 nodePort 30053
#                        endpoints pod1 pod2 pod3
#   self   ClusterIP     10.96.0.20 fd00:96::20, TCP 80->8080, UDP 53->5353,
#                        only endpoint pod1 (pod1 calling it is hairpin)
#   empty  LoadBalancer  10.96.0.99 fd00:96::99 | LB 10.10.0.199 fd00:10::199,
#                        TCP 80 nodePort 30099, UDP 53 nodePort 30098;
#                        its one endpoint (pod2) is not ready
#   sticky LoadBalancer  10.96.0.30 | LB 10.10.0.130, TCP 80->8080,
#                        sessionAffinity ClientIP (default timeout, 3 h)
#   brief  LoadBalancer  10.96.0.31 | LB 10.10.0.131, TCP 80->8080,
#                        sessionAffinity ClientIP, timeoutSeconds 1
#                        (sticky and brief: endpoints pod1 pod2 pod3)
. "$(dirname "$0")/lib.sh"

NODE_ADDRS="10.10.0.1 10.10.1.1 fd00:10::1 fd00:11::1"
e2e_cases \
	lb-ipv4-tcp lb-ipv6-tcp lb-ipv4-udp lb-ipv6-udp \
	externalip-ipv4-tcp externalip-ipv6-tcp externalip-ipv4-udp externalip-ipv6-udp
for a in $NODE_ADDRS; do e2e_cases "nodeport-tcp-$a" "nodeport-udp-$a"; done
e2e_cases \
	pod-clusterip-ipv4-tcp pod-clusterip-ipv6-tcp pod-clusterip-ipv4-udp pod-clusterip-ipv6-udp \
	pod-sees-client-address \
	hairpin-ipv4-tcp hairpin-ipv6-tcp hairpin-ipv4-udp hairpin-ipv6-udp \
	host-clusterip-ipv4-tcp host-clusterip-ipv6-tcp host-clusterip-ipv4-udp host-clusterip-ipv6-udp \
	empty-pod-ipv4-tcp-rst empty-pod-ipv6-tcp-rst empty-pod-ipv4-udp-unreach empty-pod-ipv6-udp-unreach \
	empty-lb-ipv4-tcp-rst empty-lb-ipv6-tcp-rst empty-lb-ipv4-udp-unreach empty-lb-ipv6-udp-unreach \
	empty-host-ipv4-tcp-rst empty-host-ipv6-tcp-rst empty-host-ipv4-udp-unreach \
	empty-host-ipv6-udp-unreach
for a in $NODE_ADDRS; do e2e_cases "empty-nodeport-tcp-rst-$a" "empty-nodeport-udp-unreach-$a"; done
e2e_cases affinity-clientip-sticks affinity-timeout-expires \
	non-service-traffic-untouched

e2e_begin --pods 3 --second-node-addr
for v in 10.10.0.200 fd00:10::200 10.10.0.199 fd00:10::199 10.10.0.130 10.10.0.131; do cl_client_route "$v" || e2e_abort "client route to $v"; done

PORTS_SVC='
      - {name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30080}
      - {name: dns, protocol: UDP, port: 53, targetPort: 5353, nodePort: 30053}'
PORTS_SLICE='[{name: http, protocol: TCP, port: 8080}, {name: dns, protocol: UDP, port: 5353}]'
{
	cat <<EOF
services:
  - name: web
    namespace: demo
    type: LoadBalancer
    clusterIPs: [10.96.0.10, fd00:96::10]
    externalIPs: [10.10.0.200, fd00:10::200]
    loadBalancerIPs: [10.10.0.100, fd00:10::100]
    ports:$PORTS_SVC
  - name: self
    namespace: demo
    type: ClusterIP
    clusterIPs: [10.96.0.20, fd00:96::20]
    ports:
      - {name: http, protocol: TCP, port: 80, targetPort: 8080}
      - {name: dns, protocol: UDP, port: 53, targetPort: 5353}
  - name: empty
    namespace: demo
    type: LoadBalancer
    clusterIPs: [10.96.0.99, fd00:96::99]
    loadBalancerIPs: [10.10.0.199, fd00:10::199]
    ports:
      - {name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30099}
      - {name: dns, protocol: UDP, port: 53, targetPort: 5353, nodePort: 30098}
  - name: sticky
    namespace: demo
    type: LoadBalancer
    clusterIPs: [10.96.0.30]
    loadBalancerIPs: [10.10.0.130]
    sessionAffinity: ClientIP
    ports:
      - {name: http, protocol: TCP, port: 80, targetPort: 8080}
  - name: brief
    namespace: demo
    type: LoadBalancer
    clusterIPs: [10.96.0.31]
    loadBalancerIPs: [10.10.0.131]
    sessionAffinity: ClientIP
    sessionAffinityTimeoutSeconds: 1
    ports:
      - {name: http, protocol: TCP, port: 80, targetPort: 8080}
endpointSlices:
EOF
	yaml_slices demo web web "$PORTS_SLICE" pod1 pod2 pod3
	yaml_slices demo self self "$PORTS_SLICE" pod1
	yaml_slices demo empty empty "$PORTS_SLICE" pod2:notready
	yaml_slices demo sticky sticky "$PORTS_SLICE" pod1 pod2 pod3
	yaml_slices demo brief brief "$PORTS_SLICE" pod1 pod2 pod3
} | e2e_write_config
e2e_start_daemon || e2e_abort "svcplane did not become ready"

CLIENT=$CL_CLIENT
P1=${CL_POD_NS[pod1]}
NODE=$E2E_NODE
ALL="pod1 pod2 pod3"

# Row 1 (and 6, 7): the external client through the LoadBalancer IPs and
# externalIPs. 30 new connections from random source ports should reach
# all three backends (the chance that Maglev leaves one out is ~3*(2/3)^30).
e2e_http_n "$CLIENT" 10.10.0.100 80 30
e2e_expect_all lb-ipv4-tcp 30 3 "$ALL"
e2e_http_n "$CLIENT" fd00:10::100 80 30
e2e_expect_all lb-ipv6-tcp 30 3 "$ALL"
e2e_udp_n "$CLIENT" 10.10.0.100 53 20
e2e_expect_all lb-ipv4-udp 20 2 "$ALL"
e2e_udp_n "$CLIENT" fd00:10::100 53 20
e2e_expect_all lb-ipv6-udp 20 2 "$ALL"
e2e_http_n "$CLIENT" 10.10.0.200 80 10
e2e_expect_all externalip-ipv4-tcp 10 1 "$ALL"
e2e_http_n "$CLIENT" fd00:10::200 80 10
e2e_expect_all externalip-ipv6-tcp 10 1 "$ALL"
e2e_udp_n "$CLIENT" 10.10.0.200 53 10
e2e_expect_all externalip-ipv4-udp 10 1 "$ALL"
e2e_udp_n "$CLIENT" fd00:10::200 53 10
e2e_expect_all externalip-ipv6-udp 10 1 "$ALL"

# Row 2: NodePort on every node address, not only the first.
for a in $NODE_ADDRS; do
	e2e_http_n "$CLIENT" "$a" 30080 10
	e2e_expect_all "nodeport-tcp-$a" 10 1 "$ALL"
	e2e_udp_n "$CLIENT" "$a" 30053 10
	e2e_expect_all "nodeport-udp-$a" 10 1 "$ALL"
done

# Row 3: pod -> ClusterIP with the backends on the same node.
e2e_http_n "$P1" 10.96.0.10 80 30
e2e_expect_all pod-clusterip-ipv4-tcp 30 3 "$ALL"
e2e_http_n "$P1" fd00:96::10 80 30
e2e_expect_all pod-clusterip-ipv6-tcp 30 3 "$ALL"
e2e_udp_n "$P1" 10.96.0.10 53 20
e2e_expect_all pod-clusterip-ipv4-udp 20 2 "$ALL"
e2e_udp_n "$P1" fd00:96::10 53 20
e2e_expect_all pod-clusterip-ipv6-udp 20 2 "$ALL"

# Pod to ClusterIP is not SNATed: another pod serving pod1 sees pod1's address.
others=$(ip netns exec "$P1" bash -c 'for i in 1 2 3 4 5 6 7 8 9 10; do
	curl -s --max-time 2 http://10.96.0.10/; done' | grep -v '^pod1 ')
bad=$(echo "$others" | awk 'NF && $2 != "10.244.0.11"' | sort -u | tr '\n' ';')
check pod-sees-client-address "other backends saw: ${bad:-no answer from pod2/pod3}" \
	test -n "$others" -a -z "$bad"

# Row 3, hairpin: pod1 reaches itself through "self", whose only endpoint it is.
e2e_http_n "$P1" 10.96.0.20 80 5
e2e_expect_all hairpin-ipv4-tcp 5 1 pod1
e2e_http_n "$P1" fd00:96::20 80 5
e2e_expect_all hairpin-ipv6-tcp 5 1 pod1
e2e_udp_n "$P1" 10.96.0.20 53 5
e2e_expect_all hairpin-ipv4-udp 5 1 pod1
e2e_udp_n "$P1" fd00:96::20 53 5
e2e_expect_all hairpin-ipv6-udp 5 1 pod1

# Row 5: a host-network process (in the node namespace) -> ClusterIP. Its
# packets leave through the uplink's TC egress.
e2e_http_n "$NODE" 10.96.0.10 80 10
e2e_expect_all host-clusterip-ipv4-tcp 10 1 "$ALL"
e2e_http_n "$NODE" fd00:96::10 80 10
e2e_expect_all host-clusterip-ipv6-tcp 10 1 "$ALL"
e2e_udp_n "$NODE" 10.96.0.10 53 10
e2e_expect_all host-clusterip-ipv4-udp 10 1 "$ALL"
e2e_udp_n "$NODE" fd00:96::10 53 10
e2e_expect_all host-clusterip-ipv6-udp 10 1 "$ALL"

# Row 8: no ready endpoint -> refused at once (TCP RST, ICMP port unreachable).
e2e_refused empty-pod-ipv4-tcp-rst tcp "$P1" 10.96.0.99 80
e2e_refused empty-pod-ipv6-tcp-rst tcp "$P1" fd00:96::99 80
e2e_refused empty-pod-ipv4-udp-unreach udp "$P1" 10.96.0.99 53
e2e_refused empty-pod-ipv6-udp-unreach udp "$P1" fd00:96::99 53
e2e_refused empty-lb-ipv4-tcp-rst tcp "$CLIENT" 10.10.0.199 80
e2e_refused empty-lb-ipv6-tcp-rst tcp "$CLIENT" fd00:10::199 80
e2e_refused empty-lb-ipv4-udp-unreach udp "$CLIENT" 10.10.0.199 53
e2e_refused empty-lb-ipv6-udp-unreach udp "$CLIENT" fd00:10::199 53
e2e_refused empty-host-ipv4-tcp-rst tcp "$NODE" 10.96.0.99 80
e2e_refused empty-host-ipv6-tcp-rst tcp "$NODE" fd00:96::99 80
e2e_refused empty-host-ipv4-udp-unreach udp "$NODE" 10.96.0.99 53
e2e_refused empty-host-ipv6-udp-unreach udp "$NODE" fd00:96::99 53
# ... and on its NodePorts, on every node address.
for a in $NODE_ADDRS; do
	e2e_refused "empty-nodeport-tcp-rst-$a" tcp "$CLIENT" "$a" 30099
	e2e_refused "empty-nodeport-udp-unreach-$a" udp "$CLIENT" "$a" 30098
done

# sessionAffinity: ClientIP. One client's 20 new connections all reach one
# backend (without affinity, 30 reach all three: lb-ipv4-tcp above; by
# chance 20 would share one backend with probability 3 * (1/3)^20).
e2e_http_n "$CLIENT" 10.10.0.130 80 20
if [ "$E2E_OK" -eq 20 ] && [ "$(wc -w <<<"$E2E_BACKENDS")" -ne 1 ]; then
	fail affinity-clientip-sticks "20 connections of one client reached $E2E_BACKENDS, not one backend"
else
	e2e_expect_all affinity-clientip-sticks 20 1 "$ALL"
fi
# timeoutSeconds: with 1 s, a connection 2 s after the last one is a new
# choice (Maglev on its own hash). Sleeping longer than the timeout can
# only make the entry more expired; 8 such connections that all reach
# the same backend would mean the remembered one never expired (chance
# 3 * (1/3)^8 if it did). Each must be answered.
: >"$CL_TMP/brief"
for i in 1 2 3 4 5 6 7 8; do
	cl_http "$CLIENT" 10.10.0.131 80 >>"$CL_TMP/brief"
	sleep 2
done
e2e_count <"$CL_TMP/brief"
e2e_expect_all affinity-timeout-expires 8 2 "$ALL"

# Traffic that is not for a Service passes untouched: pod to pod and node
# to pod by address, both families.
{
	cl_http "$P1" 10.244.0.12 8080
	cl_http "$P1" fd00:244::13 8080
	cl_http "$NODE" 10.244.0.12 8080
	cl_udp "$P1" fd00:244::12 5353
} >"$CL_TMP/direct"
check non-service-traffic-untouched "expected pod2 pod3 pod2 pod2, got: $(tr '\n' ' ' <"$CL_TMP/direct")" \
	test "$(tr '\n' ' ' <"$CL_TMP/direct")" = "pod2 pod3 pod2 pod2 "

kill -0 "$SP_PID" 2>/dev/null || note "svcplane is no longer running"
