#!/bin/bash
# Generate the table that kube-proxy's nftables mode programs for N Services
# with E endpoints each, as an `nft -f` script. Written from the layout
# documented by Kubernetes (a service-ips verdict map keyed by
# address . protocol . port, a chain per Service picking an endpoint with
# `numgen random mod E vmap`, a chain per endpoint that DNATs), not from
# kube-proxy's code.
#
# usage: gen-nft.sh [--change] N E [PROTOS]
#   PROTOS: the ports of the Service under test: tcp (default), udp or tcp,udp.
#   default: the whole table, for `nft -f` from empty.
#   --change: the transaction kube-proxy sends for one endpoint change of the
#     Service under test: add the new endpoint chains, rewrite the Service's
#     port chains, delete the removed endpoint's chains.
#
# Addressing: see addr.awk (Service under test: 10.96.0.1:80 -> 10.244.0.11..:8080).
set -eu
change=0
if [ "${1:-}" = --change ]; then change=1; shift; fi
N=${1:?usage: gen-nft.sh [--change] N E [PROTOS]}
E=${2:?usage: gen-nft.sh [--change] N E [PROTOS]}
P=${3:-tcp}
here=$(dirname "$0")
prog='
function svc_chain(i, p) {
	return "service-" h16(p == "udp" ? "U" : "S", i, 0) "-bench/svc" i "/" p "/" p
}
function ep_chain(i, p, a,   q) {
	split(a, q, ".")
	return "endpoint-" h16(p == "udp" ? "F" : "E", i, q[3] * 256 + q[4]) "-bench/svc" i "/" p "/" p "__" a "/8080"
}
function svc_rules(i, p,   j, s) {
	printf "add rule ip kube-proxy %s ip daddr %s %s dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade\n", svc_chain(i, p), vip(i), p
	s = ""
	for (j = 0; j < E; j++)
		s = s (j ? ", " : "") j " : goto " ep_chain(i, p, ep_now(i, j))
	printf "add rule ip kube-proxy %s numgen random mod %d vmap { %s }\n", svc_chain(i, p), E, s
}
function ep_rules(i, p, a) {
	printf "add chain ip kube-proxy %s\n", ep_chain(i, p, a)
	printf "add rule ip kube-proxy %s ip saddr %s jump mark-for-masquerade\n", ep_chain(i, p, a), a
	printf "add rule ip kube-proxy %s meta l4proto %s dnat to %s:8080\n", ep_chain(i, p, a), p, a
}
BEGIN {
	init_protos()
	if (CHANGE) {
		for (x = 1; x <= NPROTO; x++) {
			p = PROTO[x]
			ep_rules(0, p, ep_now(0, E - 1))
			printf "flush chain ip kube-proxy %s\n", svc_chain(0, p)
			svc_rules(0, p)
			printf "flush chain ip kube-proxy %s\n", ep_chain(0, p, ep(0, E - 1))
			printf "delete chain ip kube-proxy %s\n", ep_chain(0, p, ep(0, E - 1))
		}
		exit
	}
	print "add table ip kube-proxy { comment \"rules for kube-proxy\" ; }"
	print "add chain ip kube-proxy mark-for-masquerade"
	print "add rule ip kube-proxy mark-for-masquerade meta mark set meta mark | 0x4000"
	print "add chain ip kube-proxy masquerading"
	print "add rule ip kube-proxy masquerading meta mark & 0x4000 == 0 return"
	print "add rule ip kube-proxy masquerading meta mark set meta mark ^ 0x4000"
	print "add rule ip kube-proxy masquerading masquerade fully-random"
	print "add chain ip kube-proxy filter-forward { type filter hook forward priority -110 ; policy accept ; }"
	print "add rule ip kube-proxy filter-forward ct state invalid drop"
	print "add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; policy accept ; }"
	print "add chain ip kube-proxy nat-output { type nat hook output priority -100 ; policy accept ; }"
	print "add chain ip kube-proxy nat-postrouting { type nat hook postrouting priority 100 ; policy accept ; }"
	print "add chain ip kube-proxy services"
	print "add rule ip kube-proxy nat-prerouting jump services"
	print "add rule ip kube-proxy nat-output jump services"
	print "add rule ip kube-proxy nat-postrouting jump masquerading"
	print "add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment \"ClusterIP, ExternalIP and LoadBalancer IP traffic\" ; }"
	print "add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips"
	for (k = 0; k < N; k++) {
		i = svc_at(k)
		for (x = 1; x <= nports(i); x++) {
			p = port_proto(i, x)
			for (j = 0; j < E; j++)
				ep_rules(i, p, ep(i, j))
			printf "add chain ip kube-proxy %s\n", svc_chain(i, p)
			svc_rules(i, p)
		}
	}
	# One add-element command for the whole map (nft evaluates each command
	# against the set, so an element per command is quadratic), printed
	# piece by piece (building it as one awk string is quadratic too).
	printf "add element ip kube-proxy service-ips {"
	for (k = 0; k < N; k++) {
		i = svc_at(k)
		for (x = 1; x <= nports(i); x++) {
			p = port_proto(i, x)
			printf "%s %s . %s . 80 : goto %s", (k || x > 1) ? "," : "", vip(i), p, svc_chain(i, p)
		}
	}
	print " }"
}'
exec awk -v N="$N" -v E="$E" -v PROTOS="$P" -v CHANGE="$change" "$(cat "$here/addr.awk")$prog"
