#!/bin/bash
# kube-proxy's health servers (user/health.c on user/http.c): the Service
# health-check node port of an externalTrafficPolicy: Local LoadBalancer
# Service (200 with a local endpoint, 503 without, following the config
# file), the proxy health server on :10256, bad requests, 1,000 concurrent
# probes, and the /metrics server that moved onto the same library.
# The daemon gets no --node-name and no $NODE_NAME: it runs in a UTS
# namespace whose hostname is "Health-Node", so "this node" is the
# lowercased hostname (the --help promise).
. "$(dirname "$0")/lib.sh"

e2e_cases node-name-from-hostname local-endpoint-200 local-endpoint-200-ipv6 \
	endpoint-moved-503 endpoint-back-200 proxy-healthz proxy-livez \
	bad-request-garbage bad-request-method bad-request-post bad-request-big-header \
	still-answers-after-bad concurrent-1000 metrics-unchanged stale-503 stale-recovers \
	port-closed-when-unneeded

e2e_begin --pods 2
HCNP=30500
NODE4=10.10.0.1
PROBE="$E2E_DIR/health_probe.py"
HOSTNAME_IN_NS=Health-Node
THIS_NODE=health-node

# write_config NODENAME [HCNP]: the eTP Local LoadBalancer Service "web"
# with pod1 as its endpoint on NODENAME (both families).
write_config() {
	local node=$1 hcnp=${2-$HCNP} fam
	{
		cat <<YAML
services:
  - name: web
    namespace: demo
    type: LoadBalancer
    clusterIPs: [10.96.0.70, fd00:96::70]
    loadBalancerIPs: [192.0.2.70]
    externalTrafficPolicy: Local
YAML
		[ -n "$hcnp" ] && echo "    healthCheckNodePort: $hcnp"
		cat <<YAML
    ports:
      - {name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30470}
endpointSlices:
YAML
		for fam in 4 6; do
			yaml_slice_head demo web "web-v$fam" $fam '[{name: http, protocol: TCP, port: 8080}]' 1
			if [ $fam = 4 ]; then a=${CL_POD_V4[pod1]}; else a=${CL_POD_V6[pod1]}; fi
			echo "      - {addresses: [\"$a\"], conditions: {ready: true}, nodeName: $node}"
		done
	} | e2e_write_config
}

# The binary, run in a UTS namespace with its own hostname, without NODE_NAME.
WRAP="$CL_TMP/svcplane-uts"
cat >"$WRAP" <<SH
#!/bin/sh
unset NODE_NAME
exec unshare --uts sh -c 'hostname $HOSTNAME_IN_NS && exec "\$0" "\$@"' "$SP_BIN" "\$@"
SH
chmod +x "$WRAP"
SP_BIN=$WRAP

write_config "$THIS_NODE"
e2e_start_daemon --healthz-max-staleness 2 || e2e_abort "svcplane did not start"

hc() { in_client "$CL_PY" "$PROBE" get "$1"; }
hc_until() { # TIMEOUT URL PREFIX: poll (bounded) until the answer starts with PREFIX
	cl_until "$1" eval "[[ \"\$(hc '$2')\" == '$3'* ]]"
}
J200='{ "service": { "namespace": "demo", "name": "web" }, "localEndpoints": 1, "serviceProxyHealthy": true }'
J503='{ "service": { "namespace": "demo", "name": "web" }, "localEndpoints": 0, "serviceProxyHealthy": true }'

# Health check with the endpoint on this node (found by the hostname).
cl_until 5 in_client "$CL_PY" -c "import socket; socket.create_connection(('$NODE4', $HCNP), 1)" 2>/dev/null
out=$(hc "http://$NODE4:$HCNP/healthz")
want="200|application/json|nosniff|1|$J200"
check node-name-from-hostname "answer '$out': the daemon did not take '$THIS_NODE' (hostname $HOSTNAME_IN_NS) as its node" \
	test "${out%%|*}" = 200
check local-endpoint-200 "got '$out', want '$want'" test "$out" = "$want"
out6=$(hc "http://[fd00:10::1]:$HCNP/")
check local-endpoint-200-ipv6 "got '$out6', want '$want'" test "$out6" = "$want"

# The endpoint moves to another node: 503 within a bounded wait.
write_config other-node
want="503|application/json|nosniff|0|$J503"
if hc_until 3 "http://$NODE4:$HCNP/" "$want"; then pass endpoint-moved-503
else fail endpoint-moved-503 "after 3 s: '$(hc "http://$NODE4:$HCNP/")', want '$want'"; fi
write_config "$THIS_NODE"
want="200|application/json|nosniff|1|$J200"
if hc_until 3 "http://$NODE4:$HCNP/" "$want"; then pass endpoint-back-200
else fail endpoint-back-200 "after 3 s: '$(hc "http://$NODE4:$HCNP/")', want '$want'"; fi

# kube-proxy's proxy health server.
TS='"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:.]+ \+0000 UTC"'
out=$(hc "http://$NODE4:10256/healthz")
re="^200\|application/json\|nosniff\|\|\{\"lastUpdated\": $TS,\"currentTime\": $TS, \"nodeEligible\": true\}$"
check proxy-healthz "got '$out'" eval '[[ $out =~ $re ]]'
out=$(hc "http://[fd00:10::1]:10256/livez")
re="^200\|application/json\|nosniff\|\|\{\"lastUpdated\": $TS,\"currentTime\": $TS\}$"
check proxy-livez "got '$out'" eval '[[ $out =~ $re ]]'

# Bad requests get a 4xx, and the server goes on answering.
raw() { in_client "$CL_PY" "$PROBE" raw "$NODE4" "$1" "$2"; }
out=$(raw $HCNP garbage)
check bad-request-garbage "garbage bytes: '$out', want 400" test "$out" = 400
out=$(raw 10256 method)
check bad-request-method "DELETE: '$out', want 405" test "$out" = 405
out=$(raw $HCNP post)
check bad-request-post "POST: '$out', want 405" test "$out" = 405
out=$(raw $HCNP bigheader)
check bad-request-big-header "40 kB header: '$out', want 431 (or 400/413)" eval '[[ $out =~ ^(431|400|413)$ ]]'
out=$(hc "http://$NODE4:$HCNP/")
check still-answers-after-bad "after the bad requests: '$out'; daemon alive: $(kill -0 "$SP_PID" 2>/dev/null && echo yes || echo no)" \
	test "${out%%|*}" = 200

# 1,000 probes at once (more than the 512 connections served at once: the
# rest wait in the listen backlog).
out=$(ulimit -n 4096; in_client "$CL_PY" "$PROBE" many "$NODE4" $HCNP 1000)
check concurrent-1000 "$out" test "${out%% *}" = ok=1000

# The moved /metrics server: the same answers as before.
h=$(e2e_http_status "$E2E_NODE" http://127.0.0.1:9477/healthz)
l=$(e2e_http_status "$E2E_NODE" http://127.0.0.1:9477/livez)
m=$(in_node curl -s -m 2 -D - http://127.0.0.1:9477/metrics | tr -d '\r')
if [ "$h" = "200 ok" ] && [ "$l" = "200 alive" ] && [[ $m == *"Content-Type: text/plain; version=0.0.4"* ]] &&
	[[ $m == *"svcplane_up 1"* ]] && [[ $m == *"svcplane_services 6"* ]] &&
	[[ $m == *'reason="no_backend"'* ]]; then
	pass metrics-unchanged
else
	fail metrics-unchanged "healthz '$h', livez '$l', metrics: $(echo "$m" | head -8 | tr '\n' ' ')"
fi

# A change that cannot be applied (a broken file) for longer than
# --healthz-max-staleness (2 s): /healthz, and the Service's health, 503.
printf 'services: [\n' | e2e_write_config
want="503|application/json|nosniff|1|"
if cl_until 8 eval "[[ \"\$(hc http://$NODE4:10256/healthz)\" == 503* ]]" &&
	[[ "$(hc "http://$NODE4:$HCNP/")" == *'"serviceProxyHealthy": false }' ]]; then
	pass stale-503
else
	fail stale-503 "healthz '$(hc http://$NODE4:10256/healthz)', service '$(hc "http://$NODE4:$HCNP/")'"
fi
write_config "$THIS_NODE"
if hc_until 5 "http://$NODE4:10256/healthz" 200 && hc_until 3 "http://$NODE4:$HCNP/" "200|"; then
	pass stale-recovers
else
	fail stale-recovers "healthz '$(hc http://$NODE4:10256/healthz)', service '$(hc "http://$NODE4:$HCNP/")'"
fi

# Without healthCheckNodePort the port is closed.
write_config "$THIS_NODE" ""
if hc_until 3 "http://$NODE4:$HCNP/" "000|"; then pass port-closed-when-unneeded
else fail port-closed-when-unneeded "still answers: '$(hc "http://$NODE4:$HCNP/")'"; fi
