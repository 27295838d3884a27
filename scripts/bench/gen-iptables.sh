#!/bin/bash
# Generate the nat (and the small filter) ruleset that kube-proxy's iptables
# mode programs for N Services with E endpoints each, in iptables-restore
# format. Written from the layout documented by Kubernetes (KUBE-SERVICES ->
# KUBE-SVC-* -> KUBE-SEP-*, KUBE-MARK-MASQ, KUBE-POSTROUTING), not from
# kube-proxy's code.
#
# usage: gen-iptables.sh [--change] N E [PROTOS]
#   PROTOS: the ports of the Service under test: tcp (default), udp or tcp,udp.
#   default: the full ruleset, for `iptables-restore` from empty.
#   --change: what kube-proxy's partial sync writes for one endpoint change of
#     the Service under test, for `iptables-restore --noflush`: the whole
#     KUBE-SERVICES chain (always rewritten), that Service's port chains, the
#     new endpoint chains, and the deletion of the removed endpoint's chains.
#
# Addressing: see addr.awk. The Service under test is VIP 10.96.0.1:80 with
# endpoints 10.244.0.11.. port 8080; its rules are the LAST of KUBE-SERVICES.
set -eu
change=0
if [ "${1:-}" = --change ]; then change=1; shift; fi
N=${1:?usage: gen-iptables.sh [--change] N E [PROTOS]}
E=${2:?usage: gen-iptables.sh [--change] N E [PROTOS]}
P=${3:-tcp}
here=$(dirname "$0")
prog='
function svc_chain(i, p) { return "KUBE-SVC-" h16(p == "udp" ? "U" : "S", i, 0) }
function sep_chain(i, p, a,   q) {
	split(a, q, ".")
	return "KUBE-SEP-" h16(p == "udp" ? "F" : "E", i, q[3] * 256 + q[4])
}
function svc_rules(i, p,   j, a) {
	printf "-A %s ! -s 10.244.0.0/16 -d %s/32 -p %s -m comment --comment \"bench/svc%d:%s cluster IP\" -m %s --dport 80 -j KUBE-MARK-MASQ\n", svc_chain(i, p), vip(i), p, i, p, p
	for (j = 0; j < E; j++) {
		a = ep_now(i, j)
		if (j < E - 1)
			printf "-A %s -m comment --comment \"bench/svc%d:%s -> %s:8080\" -m statistic --mode random --probability %.11f -j %s\n", svc_chain(i, p), i, p, a, 1 / (E - j), sep_chain(i, p, a)
		else
			printf "-A %s -m comment --comment \"bench/svc%d:%s -> %s:8080\" -j %s\n", svc_chain(i, p), i, p, a, sep_chain(i, p, a)
	}
}
function sep_rules(i, p, a) {
	printf "-A %s -s %s/32 -m comment --comment bench/svc%d:%s -j KUBE-MARK-MASQ\n", sep_chain(i, p, a), a, i, p
	printf "-A %s -p %s -m comment --comment bench/svc%d:%s -m %s -j DNAT --to-destination %s:8080\n", sep_chain(i, p, a), p, i, p, p, a
}
function services_chain(   k, i, x, p) {
	for (k = 0; k < N; k++) {
		i = svc_at(k)
		for (x = 1; x <= nports(i); x++) {
			p = port_proto(i, x)
			printf "-A KUBE-SERVICES -d %s/32 -p %s -m comment --comment \"bench/svc%d:%s cluster IP\" -m %s --dport 80 -j %s\n", vip(i), p, i, p, p, svc_chain(i, p)
		}
	}
	print "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"
}
BEGIN {
	init_protos()
	if (CHANGE) {
		print "*nat"
		print ":KUBE-SERVICES - [0:0]"
		for (x = 1; x <= NPROTO; x++) {
			p = PROTO[x]
			print ":" svc_chain(0, p) " - [0:0]"
			print ":" sep_chain(0, p, ep_now(0, E - 1)) " - [0:0]"
			# declared (so flushed) before its deletion: nf_tables deletes only empty chains
			print ":" sep_chain(0, p, ep(0, E - 1)) " - [0:0]"
		}
		services_chain()
		for (x = 1; x <= NPROTO; x++) {
			svc_rules(0, PROTO[x])
			sep_rules(0, PROTO[x], ep_now(0, E - 1))
		}
		for (x = 1; x <= NPROTO; x++)
			print "-X " sep_chain(0, PROTO[x], ep(0, E - 1))
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
	for (i = 0; i < N; i++)
		for (x = 1; x <= nports(i); x++) {
			p = port_proto(i, x)
			print ":" svc_chain(i, p) " - [0:0]"
			for (j = 0; j < E; j++)
				print ":" sep_chain(i, p, ep(i, j)) " - [0:0]"
		}
	print "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"
	print "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"
	print "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING"
	print "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000"
	print "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN"
	print "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000"
	print "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully"
	services_chain()
	for (i = 0; i < N; i++)
		for (x = 1; x <= nports(i); x++) {
			p = port_proto(i, x)
			svc_rules(i, p)
			for (j = 0; j < E; j++)
				sep_rules(i, p, ep(i, j))
		}
	print "COMMIT"
}'
exec awk -v N="$N" -v E="$E" -v PROTOS="$P" -v CHANGE="$change" "$(cat "$here/addr.awk")$prog"
