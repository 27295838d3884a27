#!/bin/bash
# SNAT of external traffic and --cluster-cidr, through the daemon, on one
# node: the endpoints' nodeName says "node-b" while the node is node-a, so
# for svcplane they are remote and an outside client reaching the Service's
# NodePort or LoadBalancer IP is SNATed to the node's address and a
# --snat-ports port (the pods happen to be local, so the replies come back
# and the connection works either way). The pod must see the node's
# address. With --cluster-cidr covering the client, it is an inside client
# and the pod sees its real address. The ClusterIP is never SNATed.
# test_multinode.sh covers the real three-node case.
. "$(dirname "$0")/lib.sh"

e2e_cases bad-snat-ports-refused bad-cluster-cidr-refused snat-nodeport-ipv4 snat-nodeport-ipv6 \
	snat-lb-ipv4 snat-port-in-range snat-counted cluster-cidr-not-snated-ipv4 \
	cluster-cidr-not-snated-ipv6 local-nodename-not-snated

e2e_begin --pods 2
in_client ip route replace 10.90.0.0/24 via 10.10.0.1 2>/dev/null
PORTS='[{name: http, protocol: TCP, port: 8080}]'

# write NODENAME: Service web (NodePort 30080, LB IP 10.90.0.10) with pod1
# and pod2 on NODENAME.
write() {
	{
		cat <<YAML
services:
  - name: web
    namespace: demo
    type: LoadBalancer
    clusterIPs: [10.96.0.10, fd00:96::10]
    loadBalancerIPs: [10.90.0.10]
    ports:
      - {name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30080}
endpointSlices:
YAML
		yaml_slices demo web web "$PORTS" pod1 pod2 | sed "s/nodeName: node-a/nodeName: $1/"
	} | e2e_write_config
}
write node-b

# refused CASE ARGS...: the daemon refuses ARGS at start (exit 2, naming
# the option).
refused() {
	local out rc
	out=$(ip netns exec "$E2E_NODE" "$SP_BIN" run --iface up0 --bpffs-dir "$CL_PINDIR" \
		--config "$E2E_CONFIG" "${@:2}" 2>&1)
	rc=$?
	[ $rc = 2 ] && [[ $out == *"$2"* ]] && return 0
	note "$1: '${*:2}': expected exit 2 naming $2, got $rc: $out"
	return 1
}
if refused bad-snat-ports-refused --snat-ports 70000-70001 &&
	refused bad-snat-ports-refused --snat-ports 2000-1000; then
	pass bad-snat-ports-refused
else
	fail bad-snat-ports-refused "a bad --snat-ports was not refused (see above)"
fi
check bad-cluster-cidr-refused "two IPv4 --cluster-cidr ranges were not refused" \
	refused bad-cluster-cidr-refused --cluster-cidr 10.0.0.0/8,10.1.0.0/16

e2e_start_daemon --snat-ports 62000-62999 || e2e_abort "daemon did not start"

# peer_of NS ADDR PORT: "<pod> <peer address>" of one HTTP request.
peer_of() {
	ip netns exec "$1" curl -sS -g --connect-timeout 2 --max-time 3 "$(cl_url "$2" "$3")" 2>&1
}
# expect_peer CASE NS ADDR PORT WANT-PEER
expect_peer() {
	local out
	out=$(peer_of "$2" "$3" "$4")
	if [ "${out#* }" = "$5" ]; then
		pass "$1"
	else
		fail "$1" "$3:$4 answered '$out', expected the pod to see $5"
	fi
}
expect_peer snat-nodeport-ipv4 "$CL_CLIENT" 10.10.0.1 30080 10.10.0.1
expect_peer snat-nodeport-ipv6 "$CL_CLIENT" fd00:10::1 30080 fd00:10::1
expect_peer snat-lb-ipv4 "$CL_CLIENT" 10.90.0.10 80 10.10.0.1
ports=$(sp "$E2E_NODE" conntrack --json 2>/dev/null | "$CL_PY" -c '
import json, sys
d = json.load(sys.stdin)
rows = d if isinstance(d, list) else d.get("entries", [])
print(" ".join(str(r["nat"]["sport"]) for r in rows if r.get("snat") and r["direction"] == "fwd"))' 2>&1)
ok=1
for p in $ports; do
	[[ $p =~ ^[0-9]+$ ]] && [ "$p" -ge 62000 ] && [ "$p" -le 62999 ] || ok=0
done
check snat-port-in-range "SNAT ports in conntrack: '$ports', expected some, all in 62000-62999" \
	test "$ok" = 1 -a -n "$ports"
n=$(sp "$E2E_NODE" stats --json | "$CL_PY" -c 'import json,sys; print(json.load(sys.stdin)["counters"]["snat_flows"])')
check snat-counted "snat_flows is '$n', expected 3 or more" test "${n:-0}" -ge 3

# --cluster-cidr with the client inside: an inside client, never SNATed.
kill "$SP_PID"
wait "$SP_PID" 2>/dev/null
e2e_start_daemon --cluster-cidr 10.10.0.0/24,fd00:10::/64 || e2e_abort "daemon did not restart"
expect_peer cluster-cidr-not-snated-ipv4 "$CL_CLIENT" 10.10.0.1 30080 10.10.0.2
expect_peer cluster-cidr-not-snated-ipv6 "$CL_CLIENT" fd00:10::1 30080 fd00:10::2

# The endpoints on this node again: local, no SNAT without --cluster-cidr.
kill "$SP_PID"
wait "$SP_PID" 2>/dev/null
write node-a
e2e_start_daemon || e2e_abort "daemon did not restart"
expect_peer local-nodename-not-snated "$CL_CLIENT" 10.10.0.1 30080 10.10.0.2
e2e_end
