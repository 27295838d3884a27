#!/bin/bash
# Generate a svcplane config (YAML, docs/CONFIG.md) with N ClusterIP Services
# of E endpoints each: the same Services, addresses and endpoints as
# gen-iptables.sh and gen-nft.sh (see addr.awk), Service 0 written last.
#
# usage: gen-config.sh [--change] N E [tcp|udp]
#   --change: Service 0's last endpoint replaced, as in the other generators.
#   N = 0 gives an empty config.
set -eu
change=0
if [ "${1:-}" = --change ]; then change=1; shift; fi
N=${1:?usage: gen-config.sh [--change] N E [tcp|udp]}
E=${2:?usage: gen-config.sh [--change] N E [tcp|udp]}
P=$(echo "${3:-tcp}" | tr a-z A-Z)
here=$(dirname "$0")
prog='
BEGIN {
	if (N == 0) { print "services: []"; print "endpointSlices: []"; exit }
	print "services:"
	for (k = 0; k < N; k++) {
		i = svc_at(k)
		printf "  - {name: svc%d, namespace: bench, type: ClusterIP, clusterIPs: [%s], ports: [{name: p, protocol: %s, port: 80, targetPort: 8080}]}\n", i, vip(i), P
	}
	print "endpointSlices:"
	for (k = 0; k < N; k++) {
		i = svc_at(k)
		printf "  - name: svc%d-a\n    namespace: bench\n    serviceName: svc%d\n    addressType: IPv4\n    ports: [{name: p, protocol: %s, port: 8080}]\n    endpoints:\n", i, i, P
		for (j = 0; j < E; j++)
			printf "      - {addresses: [%s], conditions: {ready: true}}\n", ep_now(i, j)
	}
}'
exec awk -v N="$N" -v E="$E" -v P="$P" -v CHANGE="$change" "$(cat "$here/addr.awk")$prog"
