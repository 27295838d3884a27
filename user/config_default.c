// SPDX-License-Identifier: Apache-2.0
/*
 * The embedded default config: what `svcplane run` serves when given no
 * --config, and what `make demo` runs on.
 *
 * It belongs to the demo's namespace cluster (scripts/lib/cluster.sh):
 *  - the uplink between the external client (10.10.0.2, fd00:10::2) and
 *    node "node-a" (10.10.0.1, fd00:10::1): 10.10.0.0/24, fd00:10::/64.
 *    The LoadBalancer IPs 10.10.0.100 and fd00:10::100 come from that
 *    network, as MetalLB would hand them out; the client routes them to
 *    node-a, whose XDP program answers for them;
 *  - the Service CIDRs 10.96.0.0/16 and fd00:96::/112 (ClusterIPs). They
 *    exist on no interface: only the datapath knows them;
 *  - node-a's pods 10.244.0.11-13 and fd00:244::11-13, each behind its own
 *    veth with a /32 (/128) route as Calico sets up, each serving HTTP on
 *    8080 and UDP on 5353. The NodePort 30080 answers on 10.10.0.1.
 * demo/web shows LoadBalancer, NodePort and ClusterIP traffic, demo/dns
 * UDP, and demo/empty, a Service without endpoints, the immediate TCP RST
 * kube-proxy's REJECT gives.
 */
#include "config.h"

const char sp_default_config[] =
	"# svcplane embedded default config (docs/CONFIG.md describes the format).\n"
	"services:\n"
	"  - name: web\n"
	"    namespace: demo\n"
	"    type: LoadBalancer\n"
	"    clusterIPs: [10.96.0.10, \"fd00:96::10\"]\n"
	"    loadBalancerIPs: [10.10.0.100, \"fd00:10::100\"]\n"
	"    ports:\n"
	"      - {name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30080}\n"
	"  - name: dns\n"
	"    namespace: demo\n"
	"    type: ClusterIP\n"
	"    clusterIPs: [10.96.0.53, \"fd00:96::53\"]\n"
	"    ports:\n"
	"      - {name: dns, protocol: UDP, port: 53, targetPort: 5353}\n"
	"  - name: empty\n"
	"    namespace: demo\n"
	"    type: ClusterIP\n"
	"    clusterIPs: [10.96.0.99, \"fd00:96::99\"]\n"
	"    ports:\n"
	"      - {name: http, protocol: TCP, port: 80, targetPort: 8080}\n"
	"endpointSlices:\n"
	"  - name: web-v4\n"
	"    namespace: demo\n"
	"    serviceName: web\n"
	"    addressType: IPv4\n"
	"    ports: [{name: http, protocol: TCP, port: 8080}]\n"
	"    endpoints:\n"
	"      - {addresses: [10.244.0.11], conditions: {ready: true}, nodeName: node-a}\n"
	"      - {addresses: [10.244.0.12], conditions: {ready: true}, nodeName: node-a}\n"
	"      - {addresses: [10.244.0.13], conditions: {ready: true}, nodeName: node-a}\n"
	"  - name: web-v6\n"
	"    namespace: demo\n"
	"    serviceName: web\n"
	"    addressType: IPv6\n"
	"    ports: [{name: http, protocol: TCP, port: 8080}]\n"
	"    endpoints:\n"
	"      - {addresses: [\"fd00:244::11\"], conditions: {ready: true}, nodeName: node-a}\n"
	"      - {addresses: [\"fd00:244::12\"], conditions: {ready: true}, nodeName: node-a}\n"
	"      - {addresses: [\"fd00:244::13\"], conditions: {ready: true}, nodeName: node-a}\n"
	"  - name: dns-v4\n"
	"    namespace: demo\n"
	"    serviceName: dns\n"
	"    addressType: IPv4\n"
	"    ports: [{name: dns, protocol: UDP, port: 5353}]\n"
	"    endpoints:\n"
	"      - {addresses: [10.244.0.11], conditions: {ready: true}, nodeName: node-a}\n"
	"      - {addresses: [10.244.0.12], conditions: {ready: true}, nodeName: node-a}\n"
	"      - {addresses: [10.244.0.13], conditions: {ready: true}, nodeName: node-a}\n"
	"  - name: dns-v6\n"
	"    namespace: demo\n"
	"    serviceName: dns\n"
	"    addressType: IPv6\n"
	"    ports: [{name: dns, protocol: UDP, port: 5353}]\n"
	"    endpoints:\n"
	"      - {addresses: [\"fd00:244::11\"], conditions: {ready: true}, nodeName: node-a}\n"
	"      - {addresses: [\"fd00:244::12\"], conditions: {ready: true}, nodeName: node-a}\n"
	"      - {addresses: [\"fd00:244::13\"], conditions: {ready: true}, nodeName: node-a}\n";
