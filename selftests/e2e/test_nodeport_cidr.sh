#!/bin/bash
# --nodeport-addresses: NodePorts answer only on node addresses inside the
# given ranges (kube-proxy's flag of the same name); other node addresses
# are plain host addresses for that port. A bad range is refused at start.
# `--nodeport-addresses primary` keeps one address per family: here, with
# no Node object, the uplink's first (10.10.0.1, and the first global IPv6
# address as the kernel lists it).
. "$(dirname "$0")/lib.sh"

e2e_cases bad-cidr-refused nodeport-inside-range-v4 nodeport-inside-range-v6 \
	nodeport-outside-range-v4 nodeport-outside-range-v6 node-addrs-map \
	primary-nodeport-v4 primary-not-secondary-v4 primary-node-addrs-map

e2e_begin --pods 2 --second-node-addr
PORTS='[{name: http, protocol: TCP, port: 8080}]'
{
	cat <<YAML
services:
  - name: web
    namespace: demo
    type: NodePort
    clusterIPs: [10.96.0.10, fd00:96::10]
    ports:
      - {name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30080}
endpointSlices:
YAML
	yaml_slices demo web web "$PORTS" pod1 pod2
} | e2e_write_config

out=$(ip netns exec "$E2E_NODE" "$SP_BIN" run --iface up0 --bpffs-dir "$CL_PINDIR" \
	--config "$E2E_CONFIG" --nodeport-addresses 10.10.0.0/33 2>&1)
rc=$?
if [ $rc = 2 ] && [[ $out == *"--nodeport-addresses '10.10.0.0/33'"* ]]; then
	pass bad-cidr-refused
else
	fail bad-cidr-refused "expected exit 2 naming the bad range, got $rc: $out"
fi

# Only the first uplink subnet of each family (the second node address,
# 10.10.1.1 / fd00:11::1, is outside).
e2e_start_daemon --nodeport-addresses 10.10.0.0/24,fd00:10::/64 || e2e_abort "daemon did not start"

e2e_http_n "$CL_CLIENT" 10.10.0.1 30080 4
e2e_expect_all nodeport-inside-range-v4 4 1 "pod1 pod2"
e2e_http_n "$CL_CLIENT" fd00:10::1 30080 4
e2e_expect_all nodeport-inside-range-v6 4 1 "pod1 pod2"
# Outside: nothing listens on the node itself, so the node's own stack
# refuses the connection (RST) instead of a pod answering.
for fam in v4 v6; do
	[ $fam = v4 ] && a=10.10.1.1 || a=fd00:11::1
	out=$(cl_connect "$CL_CLIENT" "$a" 30080)
	if [[ $out == "ERR ECONNREFUSED"* ]]; then
		pass "nodeport-outside-range-$fam"
	else
		fail "nodeport-outside-range-$fam" "expected the node to refuse $a:30080, got: $out"
	fi
done
n=$(bpftool map dump pinned "$CL_PINDIR/sp_node_addrs" 2>/dev/null | grep -c '"family"')
check node-addrs-map "sp_node_addrs holds $n entries, expected 2 (one per family)" [ "$n" = 2 ]

# ---- --nodeport-addresses primary ----
kill -TERM "$SP_PID"
for ((i = 0; i < 100; i++)); do kill -0 "$SP_PID" 2>/dev/null || break; sleep 0.1; done
wait "$SP_PID" 2>/dev/null
e2e_start_daemon --nodeport-addresses primary || e2e_abort "daemon did not start with primary"
e2e_http_n "$CL_CLIENT" 10.10.0.1 30080 4
e2e_expect_all primary-nodeport-v4 4 1 "pod1 pod2"
out=$(cl_connect "$CL_CLIENT" 10.10.1.1 30080)
if [[ $out == "ERR ECONNREFUSED"* ]]; then
	pass primary-not-secondary-v4
else
	fail primary-not-secondary-v4 "expected the node to refuse 10.10.1.1:30080, got: $out"
fi
v6=$(ip netns exec "$E2E_NODE" ip -6 -o addr show dev up0 scope global | awk '{print $4; exit}')
dump=$(bpftool -j map dump pinned "$CL_PINDIR/sp_node_addrs" 2>/dev/null)
got=$(printf '%s' "$dump" | "$CL_PY" -c '
import ipaddress, json, sys
out = []
for e in json.load(sys.stdin):
    b = bytes(int(x, 16) for x in e["key"])  # struct sp_node_addr_key: addr[16], family
    out.append(str(ipaddress.ip_address(b[:4] if b[16] == 4 else b[:16])))
print(" ".join(sorted(out)))' 2>&1)
want="10.10.0.1 ${v6%/*}"
check primary-node-addrs-map "sp_node_addrs holds '$got', expected '$want'" [ "$got" = "$want" ]
[ "$got" = "$want" ] || printf "%s\n" "$dump" >&2

