#!/bin/bash
# A Service deleted while connections through it are open, as kube-proxy
# handles it: it deletes its DNAT rules but leaves the kernel's TCP
# conntrack entries (it clears only UDP's), so an established TCP
# connection keeps working as long as its endpoint answers, while new
# connections get no Service. svcplane keeps the deleted Service's TCP
# frontends (SP_SVC_F_GONE) until its conntrack collector finds no flow
# through them, then deletes them.
#
#   gone  LoadBalancer 10.96.0.41 fd00:96::41 | LB 10.10.0.141
#         TCP 90->9090 (echo), TCP 80->8080 (http), UDP 53->5353; pod1 pod2
#   keep  ClusterIP 10.96.0.43, TCP 80->8080; pod3 (must be untouched)
# Long-lived connections: client -> 10.10.0.141:90 (XDP on the uplink),
# pod5 -> 10.96.0.41:90 and pod5 -> [fd00:96::41]:90 (TC on the pod's veth).
# Short conntrack timeouts and a 1 s collector, so the frontends go within
# seconds of the connections' close.
. "$(dirname "$0")/lib.sh"

STREAMS="lb v4 v6"
for s in $STREAMS; do e2e_cases "tcp-$s-connection-survives-deletion"; done
e2e_cases new-connections-get-no-service other-service-untouched udp-flow-ends-with-deletion \
	inspect-shows-retained-frontends unused-frontends-released-first \
	retained-frontends-released-after-close

e2e_begin --pods 5
cl_client_route 10.10.0.141 || e2e_abort "client route"

config() { # [with-gone]
	echo "services:"
	if [ "${1:-}" = with-gone ]; then
		cat <<EOF
  - name: gone
    namespace: e2e
    type: LoadBalancer
    clusterIPs: [10.96.0.41, fd00:96::41]
    loadBalancerIPs: [10.10.0.141]
    ports:
      - {name: echo, protocol: TCP, port: 90, targetPort: 9090}
      - {name: http, protocol: TCP, port: 80, targetPort: 8080}
      - {name: dns, protocol: UDP, port: 53, targetPort: 5353}
EOF
	fi
	cat <<EOF
  - name: keep
    namespace: e2e
    type: ClusterIP
    clusterIPs: [10.96.0.43]
    ports:
      - {name: http, protocol: TCP, port: 80, targetPort: 8080}
endpointSlices:
EOF
	if [ "${1:-}" = with-gone ]; then
		yaml_slices e2e gone gone '[{name: echo, protocol: TCP, port: 9090}, {name: http, protocol: TCP, port: 8080}, {name: dns, protocol: UDP, port: 5353}]' \
			pod1 pod2
	fi
	yaml_slices e2e keep keep '[{name: http, protocol: TCP, port: 8080}]' pod3
}

config with-gone | e2e_write_config
e2e_start_daemon --ct-gc-interval 1 --ct-timeout-fin 2 --ct-timeout-close 2 ||
	e2e_abort "svcplane did not become ready"
NODE=$E2E_NODE
P5=${CL_POD_NS[pod5]}

declare -A SRC VIP SPID BACKEND
SRC[lb]=$CL_CLIENT VIP[lb]=10.10.0.141
SRC[v4]=$P5 VIP[v4]=10.96.0.41
SRC[v6]=$P5 VIP[v6]=fd00:96::41
for s in $STREAMS; do
	cl_stream_start "${SRC[$s]}" "${VIP[$s]}" 90 "$CL_TMP/stream-$s"
	SPID[$s]=$CL_STREAM_PID
done
lines() { grep -c . "$1" 2>/dev/null; }
for s in $STREAMS; do
	cl_until 30 has_lines "$CL_TMP/stream-$s" 3
	BACKEND[$s]=$(head -1 "$CL_TMP/stream-$s" | cut -d' ' -f1)
	note "$s: ${VIP[$s]}:90 on ${BACKEND[$s]:-nothing} ($(lines "$CL_TMP/stream-$s") lines)"
done
# A UDP flow, from a fixed port, answered before the deletion.
UDP_SPORT=45053
udp_before=$(cl_udp "$P5" 10.96.0.41 53 1 $UDP_SPORT)

# Delete the Service.
config | e2e_write_config
e2e_reload
no_service() { ! cl_http_many "$P5" 10.96.0.41 80 1 | grep -q '^pod'; }
cl_until 10 no_service || note "10.96.0.41:80 still answers 10 s after the deletion"

# New connections, through the frontends the open connections keep (port
# 90), from outside and from a pod, IPv4 and IPv6: no Service any more,
# so no answer at all; in particular no refusal, which is what a Service
# without endpoints answers.
: >"$CL_TMP/new"
cl_connect "$CL_CLIENT" 10.10.0.141 90 >>"$CL_TMP/new"
cl_connect "$P5" 10.96.0.41 90 >>"$CL_TMP/new"
cl_connect "$P5" fd00:96::41 90 >>"$CL_TMP/new"
if [ "$(grep -c '^ERR' "$CL_TMP/new")" -ne 3 ] || grep -q ECONNREFUSED "$CL_TMP/new"; then
	fail new-connections-get-no-service "want 3 failures, none refused: $(tr '\n' ' ' <"$CL_TMP/new")"
else
	note "new connections: $(tr '\n' ' ' <"$CL_TMP/new")"
	pass new-connections-get-no-service
fi
e2e_http_n "$P5" 10.96.0.43 80 10
e2e_expect_all other-service-untouched 10 1 pod3

# UDP: the flow ends with its Service (kube-proxy clears UDP entries).
udp_after=$(cl_udp "$P5" 10.96.0.41 53 1 $UDP_SPORT)
if [[ $udp_before != pod[12] ]]; then
	fail udp-flow-ends-with-deletion "no answer before the deletion: $udp_before"
elif [[ $udp_after == pod* ]]; then
	fail udp-flow-ends-with-deletion "the same flow (port $UDP_SPORT) still answered by $udp_after"
else
	pass udp-flow-ends-with-deletion
fi

# svcplane services: the frontends the connections use, retained, marked
# deleted, with no backends. (Port 80's, which no connection uses, go at
# the collector's first pass: they may be listed or not by now.)
ins=$(sp "$NODE" services --json 2>&1)
retained=$(jq -r '[.[] | select(.deleted) | .frontends[] | select(.port == 90) | "\(.address):\(.port)/\(.protocol)"] | sort | join(" ")' <<<"$ins" 2>&1)
want="10.10.0.141:90/tcp 10.96.0.41:90/tcp fd00:96::41:90/tcp"
if [ "$retained" != "$want" ]; then
	fail inspect-shows-retained-frontends "retained: '$retained', want '$want' (${ins:0:300})"
elif jq -e '[.[] | select(.deleted) | .backend_count] | any(. != 0)' <<<"$ins" >/dev/null; then
	fail inspect-shows-retained-frontends "a retained frontend lists backends"
else
	pass inspect-shows-retained-frontends
fi

# The collector tells the frontends apart: port 80's, which no connection
# uses, go (within 20 s) while port 90's stay for the open connections.
retained_ports() {
	sp "$NODE" services --json 2>/dev/null |
		jq -r '[.[] | select(.deleted) | .frontends[] | .port] | unique | map(tostring) | join(" ")'
}
only_90() { [ "$(retained_ports)" = 90 ]; }
if cl_until 20 only_90; then
	pass unused-frontends-released-first
else
	fail unused-frontends-released-first "retained ports 20 s after the deletion: '$(retained_ports)', want '90'"
fi

# The connections: 3 more replies each after the deletion (waited for, up
# to 30 s), all from the first backend, in sequence.
declare -A AFTER GOT
for s in $STREAMS; do AFTER[$s]=$(lines "$CL_TMP/stream-$s"); done
for s in $STREAMS; do
	GOT[$s]=1
	cl_until 30 has_lines "$CL_TMP/stream-$s" $((AFTER[$s] + 3)) || GOT[$s]=0
done
log_before=$(wc -l <"$E2E_LOG")
for s in $STREAMS; do
	f="$CL_TMP/stream-$s"
	alive=1
	kill -0 "${SPID[$s]}" 2>/dev/null || alive=0
	cl_stream_stop "$f" "${SPID[$s]}"
	n=$(lines "$f")
	wrong=$(grep -vc "^${BACKEND[$s]} [0-9]*\$" "$f")
	last=$(tail -1 "$f" | cut -d' ' -f2)
	c="tcp-$s-connection-survives-deletion"
	if [ -z "${BACKEND[$s]}" ]; then
		fail "$c" "the connection never got a reply: $(head -c 200 "$f.err")"
	elif [ $alive = 0 ]; then
		fail "$c" "the connection closed after $n lines: $(head -c 200 "$f.err")"
	elif [ "${GOT[$s]}" = 0 ]; then
		fail "$c" "no 3 more replies within 30 s of the deletion ($((n - AFTER[$s])) after ${AFTER[$s]})"
	elif [ "$wrong" -ne 0 ] || [ "$last" != "$n" ]; then
		fail "$c" "$wrong of $n replies not from ${BACKEND[$s]}, last $last"
	else
		pass "$c"
	fi
done

# Closed: FIN, TIME_WAIT (2 s), collected, then a pass that finds no flow
# through the frontends: they go, logged, within 20 s.
gone_from_maps() {
	! sp "$NODE" services --json 2>/dev/null | jq -e 'any(.[]; .deleted)' >/dev/null
}
if ! cl_until 20 gone_from_maps; then
	fail retained-frontends-released-after-close "still retained 20 s after the close: $(sp "$NODE" services 2>&1 | grep -A1 deleted | head -4 | tr '\n' ' ')"
elif ! tail -n "+$((log_before + 1))" "$E2E_LOG" | grep -q 'frontend(s) of deleted Services: .*(0 still kept)'; then
	fail retained-frontends-released-after-close "no log line for the last: $(grep -i 'of deleted Services' "$E2E_LOG" | tail -3 | tr '\n' ' ')"
else
	e2e_http_n "$P5" 10.96.0.43 80 5
	e2e_expect_all retained-frontends-released-after-close 5 1 pod3
fi
