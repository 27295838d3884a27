#!/bin/bash
# Generate a svcplane config (YAML, docs/CONFIG.md) with N ClusterIP Services
# of E endpoints each: the same Services, addresses and endpoints as
# gen-iptables.sh and gen-nft.sh (see addr.awk), Service 0 written last.
#
# usage: gen-config.sh [--change] N E [PROTOS]
#   PROTOS: the ports of the Service under test: tcp (default), udp or tcp,udp.
#   --change: Service 0's last endpoint replaced, as in the other generators.
#   N = 0 gives an empty config.
set -eu
change=0
if [ "${1:-}" = --change ]; then change=1; shift; fi
N=${1:?usage: gen-config.sh [--change] N E [PROTOS]}
E=${2:?usage: gen-config.sh [--change] N E [PROTOS]}
P=${3:-tcp}
here=$(dirname "$0")
prog='
function ports(i, tp,   x, s, p) { # YAML flow list of Service i ports (tp: with targetPort)
	s = ""
	for (x = 1; x <= nports(i); x++) {
		p = port_proto(i, x)
		s = s (x > 1 ? ", " : "") "{name: " p ", protocol: " toupper(p) ", port: " (tp ? "80, targetPort: 8080" : "8080") "}"
	}
	return "[" s "]"
}
BEGIN {
	init_protos()
	if (N == 0) { print "services: []"; print "endpointSlices: []"; exit }
	print "services:"
	for (k = 0; k < N; k++) {
		i = svc_at(k)
		printf "  - {name: svc%d, namespace: bench, type: ClusterIP, clusterIPs: [%s], ports: %s}\n", i, vip(i), ports(i, 1)
	}
	print "endpointSlices:"
	for (k = 0; k < N; k++) {
		i = svc_at(k)
		printf "  - name: svc%d-a\n    namespace: bench\n    serviceName: svc%d\n    addressType: IPv4\n    ports: %s\n    endpoints:\n", i, i, ports(i, 0)
		for (j = 0; j < E; j++)
			printf "      - {addresses: [%s], conditions: {ready: true}}\n", ep_now(i, j)
	}
}'
exec awk -v N="$N" -v E="$E" -v PROTOS="$P" -v CHANGE="$change" "$(cat "$here/addr.awk")$prog"
