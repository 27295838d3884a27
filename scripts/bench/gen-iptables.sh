#!/bin/bash
# Generate the nat (and the small filter) ruleset that kube-proxy's iptables
# mode programs for N Services with E endpoints each, in iptables-restore
# format. Written from the layout documented by Kubernetes (KUBE-SERVICES ->
# KUBE-SVC-* -> KUBE-SEP-*, KUBE-MARK-MASQ, KUBE-POSTROUTING), not from
# kube-proxy's code.
#
# usage: gen-iptables.sh [--change] N E [tcp|udp]
#   default: the full ruleset, for `iptables-restore` from empty.
#   --change: what kube-proxy's partial sync writes for one endpoint change of
#     the Service under test, for `iptables-restore --noflush`: the whole
#     KUBE-SERVICES chain (always rewritten), that Service's chain, the new
#     endpoint chain, and the deletion of the removed endpoint's chain.
#
# Addressing: see addr.awk. The Service under test is VIP 10.96.0.1:80 with
# endpoints 10.244.0.11.. port 8080, and is the LAST rule of KUBE-SERVICES.
set -eu
change=0
if [ "${1:-}" = --change ]; then change=1; shift; fi
N=${1:?usage: gen-iptables.sh [--change] N E [tcp|udp]}
E=${2:?usage: gen-iptables.sh [--change] N E [tcp|udp]}
P=${3:-tcp}
here=$(dirname "$0")
prog='
function svc_chain(i) { return "KUBE-SVC-" h16("S", i, 0) }
function sep_chain(i, a,   q) { split(a, q, "."); return "KUBE-SEP-" h16("E", i, q[3] * 256 + q[4]) }
function svc_rules(i,   j, a, c) {
	c = "\"bench/svc" i ":p\""
	printf "-A %s ! -s 10.244.0.0/16 -d %s/32 -p %s -m comment --comment \"bench/svc%d:p cluster IP\" -m %s --dport 80 -j KUBE-MARK-MASQ\n", svc_chain(i), vip(i), P, i, P
	for (j = 0; j < E; j++) {
		a = ep_now(i, j)
		if (j < E - 1)
			printf "-A %s -m comment --comment \"bench/svc%d:p -> %s:8080\" -m statistic --mode random --probability %.11f -j %s\n", svc_chain(i), i, a, 1 / (E - j), sep_chain(i, a)
		else
			printf "-A %s -m comment --comment \"bench/svc%d:p -> %s:8080\" -j %s\n", svc_chain(i), i, a, sep_chain(i, a)
	}
}
function sep_rules(i, a) {
	printf "-A %s -s %s/32 -m comment --comment bench/svc%d:p -j KUBE-MARK-MASQ\n", sep_chain(i, a), a, i
	printf "-A %s -p %s -m comment --comment bench/svc%d:p -m %s -j DNAT --to-destination %s:8080\n", sep_chain(i, a), P, i, P, a
}
function services_chain(   k, i) {
	for (k = 0; k < N; k++) {
		i = svc_at(k)
		printf "-A KUBE-SERVICES -d %s/32 -p %s -m comment --comment \"bench/svc%d:p cluster IP\" -m %s --dport 80 -j %s\n", vip(i), P, i, P, svc_chain(i)
	}
	print "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"
}
BEGIN {
	if (CHANGE) {
		print "*nat"
		print ":KUBE-SERVICES - [0:0]"
		print ":" svc_chain(0) " - [0:0]"
		print ":" sep_chain(0, ep_now(0, E - 1)) " - [0:0]"
		# declared (so flushed) before its deletion: nf_tables deletes only empty chains
		print ":" sep_chain(0, ep(0, E - 1)) " - [0:0]"
		services_chain()
		svc_rules(0)
		sep_rules(0, ep_now(0, E - 1))
		print "-X " sep_chain(0, ep(0, E - 1))
		print "COMMIT"
		exit
	}
	print "*filter"
	print ":KUBE-FORWARD - [0:0]"
	print "-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD"
	print "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP"
	print "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark 0x4000/0x4000 -j ACCEPT"
	print "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
	print "COMMIT"
	print "*nat"
	print ":KUBE-SERVICES - [0:0]"
	print ":KUBE-NODEPORTS - [0:0]"
	print ":KUBE-POSTROUTING - [0:0]"
	print ":KUBE-MARK-MASQ - [0:0]"
	for (i = 0; i < N; i++) {
		print ":" svc_chain(i) " - [0:0]"
		for (j = 0; j < E; j++)
			print ":" sep_chain(i, ep(i, j)) " - [0:0]"
	}
	print "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"
	print "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"
	print "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING"
	print "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000"
	print "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN"
	print "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000"
	print "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully"
	services_chain()
	for (i = 0; i < N; i++) {
		svc_rules(i)
		for (j = 0; j < E; j++)
			sep_rules(i, ep(i, j))
	}
	print "COMMIT"
}'
exec awk -v N="$N" -v E="$E" -v P="$P" -v CHANGE="$change" "$(cat "$here/addr.awk")$prog"
