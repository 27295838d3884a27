#!/bin/bash
# Config reloads while traffic flows. Long-lived TCP connections (one line
# every 0.2 s through the line-echo servers) must keep their backend while
# the Service's endpoint set changes around them: two endpoints are added
# and the other original endpoint is removed (SIGHUP after rewriting the
# file). New connections must then use only the new set. A bad file must
# leave the running state alone; a rewritten file applies without SIGHUP.
#
# Four LoadBalancer Services s1..s4, one per long-lived connection, so each
# connection's "other" endpoint can be removed independently:
#   s<i>  clusterIPs 10.96.0.3<i> fd00:96::3<i>, LB 10.10.0.13<i> fd00:10::13<i>
#         TCP 90->9090 (echo), TCP 80->8080 (http); endpoints pod1 pod2 at first
#   s1: client -> 10.10.0.131:90      s2: client -> [fd00:10::132]:90
#   s3: pod5 -> 10.96.0.33:90         s4: pod5 -> [fd00:96::34]:90
. "$(dirname "$0")/lib.sh"

STREAMS="1 2 3 4"
for i in $STREAMS; do e2e_cases "long-lived-s$i-keeps-backend"; done
e2e_cases new-flows-avoid-removed-backend new-flows-reach-added-backends \
	bad-config-keeps-state bad-config-reported reload-on-file-change reload-parses-changed-items

e2e_begin --pods 5
for i in $STREAMS; do
	cl_client_route "10.10.0.13$i" && cl_client_route "fd00:10::13$i" || e2e_abort "client routes"
done

# config ENDPOINTS-OF-s1 ENDPOINTS-OF-s2 ...: each argument a comma-separated pod list.
config() {
	local i=0 eps
	echo "services:"
	for i in $STREAMS; do
		cat <<EOF
  - name: s$i
    namespace: e2e
    type: LoadBalancer
    clusterIPs: [10.96.0.3$i, fd00:96::3$i]
    loadBalancerIPs: [10.10.0.13$i, fd00:10::13$i]
    ports:
      - {name: echo, protocol: TCP, port: 90, targetPort: 9090}
      - {name: http, protocol: TCP, port: 80, targetPort: 8080}
EOF
	done
	echo "endpointSlices:"
	for i in $STREAMS; do
		eps=$1
		shift
		# shellcheck disable=SC2086
		yaml_slices e2e "s$i" "s$i" \
			'[{name: echo, protocol: TCP, port: 9090}, {name: http, protocol: TCP, port: 8080}]' \
			${eps//,/ }
	done
}

config pod1,pod2 pod1,pod2 pod1,pod2 pod1,pod2 | e2e_write_config
e2e_start_daemon || e2e_abort "svcplane did not become ready"

declare -A SRC VIP
SRC[1]=$CL_CLIENT VIP[1]=10.10.0.131
SRC[2]=$CL_CLIENT VIP[2]=fd00:10::132
SRC[3]=${CL_POD_NS[pod5]} VIP[3]=10.96.0.33
SRC[4]=${CL_POD_NS[pod5]} VIP[4]=fd00:96::34
declare -A SPID BACKEND OTHER
for i in $STREAMS; do
	cl_stream_start "${SRC[$i]}" "${VIP[$i]}" 90 "$CL_TMP/stream$i"
	SPID[$i]=$CL_STREAM_PID
done
lines() { grep -c . "$1" 2>/dev/null; }
for i in $STREAMS; do
	cl_until 30 has_lines "$CL_TMP/stream$i" 3
	BACKEND[$i]=$(head -1 "$CL_TMP/stream$i" | cut -d' ' -f1)
	case ${BACKEND[$i]} in
	pod1) OTHER[$i]=pod2 ;;
	pod2) OTHER[$i]=pod1 ;;
	*) OTHER[$i]=pod2 ;;
	esac
	note "s$i: long-lived connection ${SRC[$i]#"$CL_PREFIX-"} -> ${VIP[$i]}:90 is on ${BACKEND[$i]:-nothing}" \
		"($(lines "$CL_TMP/stream$i") lines); removing ${OTHER[$i]}"
done

# Add pod3 and pod4, remove the endpoint that is not carrying the connection.
config "${BACKEND[1]},pod3,pod4" "${BACKEND[2]},pod3,pod4" "${BACKEND[3]},pod3,pod4" \
	"${BACKEND[4]},pod3,pod4" | e2e_write_config
e2e_reload

# Wait (bounded) until new connections to s1 reach an added endpoint.
reached() { cl_http_many "$CL_CLIENT" 10.10.0.131 80 10 | grep -q '^pod[34]$'; }
cl_until 8 reached || note "s1 never answered from pod3/pod4 within 8 s of SIGHUP"

: >"$CL_TMP/removed_hits"
: >"$CL_TMP/added_miss"
for i in $STREAMS; do
	case $i in
	1) e2e_http_n "$CL_CLIENT" 10.10.0.131 80 20 ;;
	2) e2e_http_n "$CL_CLIENT" fd00:10::132 80 20 ;;
	3) e2e_http_n "${SRC[3]}" 10.96.0.33 80 20 ;;
	4) e2e_http_n "${SRC[4]}" fd00:96::34 80 20 ;;
	esac
	note "s$i after reload: $E2E_OK/20 answered by: $E2E_BACKENDS ${E2E_FIRST_ERR:+(first error: $E2E_FIRST_ERR)}"
	[[ " $E2E_BACKENDS " == *" ${OTHER[$i]} "* ]] && echo "s$i:${OTHER[$i]}" >>"$CL_TMP/removed_hits"
	[ "$E2E_OK" -eq 20 ] || echo "s$i:$E2E_OK/20 answered" >>"$CL_TMP/removed_hits"
	[[ " $E2E_BACKENDS " == *" pod3 "* || " $E2E_BACKENDS " == *" pod4 "* ]] ||
		echo "s$i:only $E2E_BACKENDS" >>"$CL_TMP/added_miss"
done
check new-flows-avoid-removed-backend "removed backend still used / failures: $(tr '\n' ' ' <"$CL_TMP/removed_hits")" \
	test ! -s "$CL_TMP/removed_hits"
check new-flows-reach-added-backends "no new connection reached pod3/pod4: $(tr '\n' ' ' <"$CL_TMP/added_miss")" \
	test ! -s "$CL_TMP/added_miss"

# A bad file: s1's port 90 out of range, in a file that also changes s2
# (pod3 removed) and s3 (pod5 added). It is rejected whole, with a message
# naming the file: the daemon stays, and every map the config writes holds
# exactly what it held before (s1's own entries, the broken port's
# included, and the other Services': a partial apply would change them).
good=$(cat "$E2E_CONFIG")
maps_good=$(e2e_maps_dump)
log_before=$(wc -l <"$E2E_LOG")
config "${BACKEND[1]},pod3,pod4" "${BACKEND[2]},pod4" "${BACKEND[3]},pod3,pod4,pod5" \
	"${BACKEND[4]},pod3,pod4" | sed '0,/port: 90,/s//port: 70000,/' | e2e_write_config
grep -q 'port: 70000,' "$E2E_CONFIG" || note "could not break the config file (no 'port: 90,')"
e2e_reload
# The message must name the file and the place: "config.yaml:LINE:COLUMN: ...".
bad_msg() { tail -n "+$((log_before + 1))" "$E2E_LOG" | grep -m1 -E 'config\.yaml:[0-9]+:'; }
cl_until 3 bad_msg
msg=$(bad_msg)
check bad-config-reported "no log line naming config.yaml:LINE: after the bad reload" test -n "$msg"
[ -n "$msg" ] && note "daemon said: $msg"
# The daemon logs the error once it has given up on the file (nothing is
# applied after it), so the maps can be read now.
maps_bad=$(e2e_maps_dump)
e2e_http_n "$CL_CLIENT" 10.10.0.131 80 10
if ! kill -0 "$SP_PID" 2>/dev/null; then
	fail bad-config-keeps-state "svcplane exited after the bad config"
elif [ -z "$msg" ]; then
	fail bad-config-keeps-state "the daemon did not report the bad file: cannot tell when to look"
elif [ "$(grep -vc '^==' <<<"$maps_good")" -lt 8 ] || [[ $maps_good == *ERR* ]]; then
	fail bad-config-keeps-state "the maps could not be read before the bad file: ${maps_good:0:300}"
elif [ "$maps_bad" != "$maps_good" ]; then
	fail bad-config-keeps-state "the bad file changed the maps (a partial apply): $(e2e_maps_diff "$maps_good" "$maps_bad")"
else
	note "$(grep -vc '^==' <<<"$maps_good") entries of $E2E_CONFIG_MAPS unchanged by the bad file"
	e2e_expect_all bad-config-keeps-state 10 1 "${BACKEND[1]} pod3 pod4"
fi

# Rewrite the file without SIGHUP: s1 loses pod3 (the daemon watches the file).
echo "$good" | e2e_write_config # the good one again, then the change
sleep 0.3
log_before=$(wc -l <"$E2E_LOG")
config "${BACKEND[1]},pod4" "${BACKEND[2]},pod3,pod4" "${BACKEND[3]},pod3,pod4" \
	"${BACKEND[4]},pod3,pod4" | e2e_write_config
: >"$CL_TMP/fc"
no_pod3() {
	cl_http_many "$CL_CLIENT" 10.10.0.131 80 20 >"$CL_TMP/fc"
	! grep -q '^pod3$\|^ERR' "$CL_TMP/fc" && grep -q '^pod4$' "$CL_TMP/fc"
}
if cl_until 8 no_pod3; then
	pass reload-on-file-change
else
	fail reload-on-file-change "s1 still reaches pod3 (or fails) 8 s after the file changed: $(sort "$CL_TMP/fc" | uniq -c | tr '\n' ' ')"
fi
# That change touched two items of twelve (s1's IPv4 and IPv6 slices): only
# they were parsed, and only s1 resolved again (issue 11's incremental reload).
inc_line() {
	tail -n "+$((log_before + 1))" "$E2E_LOG" |
		grep -m1 'config\.yaml (file changed; 2 of 12 item(s) parsed again, [0-9.]* ms) applied in .*(resolve [0-9.]* of the changed Services only'
}
cl_until 3 inc_line
if [ -n "$(inc_line)" ]; then
	pass reload-parses-changed-items
else
	fail reload-parses-changed-items "no apply of 2 of 12 items with the changed Services only: $(tail -n "+$((log_before + 1))" "$E2E_LOG" | grep ' applied in ' | tail -2 | tr '\n' ' ')"
fi

# The long-lived connections: still open, every reply from the first
# backend, no line lost, and lines kept coming after the reloads: 3 more
# each, waited for (up to 60 s), not counted in a fixed time.
declare -A AFTER GOT_AFTER
for i in $STREAMS; do AFTER[$i]=$(lines "$CL_TMP/stream$i"); done
for i in $STREAMS; do
	GOT_AFTER[$i]=1
	cl_until 60 has_lines "$CL_TMP/stream$i" $((AFTER[$i] + 3)) || GOT_AFTER[$i]=0
done
for i in $STREAMS; do
	f="$CL_TMP/stream$i"
	alive=1
	kill -0 "${SPID[$i]}" 2>/dev/null || alive=0
	cl_stream_stop "$f" "${SPID[$i]}"
	n=$(lines "$f")
	wrong=$(grep -vc "^${BACKEND[$i]} [0-9]*\$" "$f")
	last=$(tail -1 "$f" | cut -d' ' -f2)
	err=$(head -c 300 "$f.err" | tr '\n' ' ')
	if [ -z "${BACKEND[$i]}" ]; then
		fail "long-lived-s$i-keeps-backend" "the connection never got a reply: $err"
	elif [ $alive = 0 ]; then
		fail "long-lived-s$i-keeps-backend" "the connection closed after $n lines: $err"
	elif [ "$wrong" -ne 0 ]; then
		fail "long-lived-s$i-keeps-backend" "$wrong of $n replies not from ${BACKEND[$i]}: $(grep -v "^${BACKEND[$i]} " "$f" | head -3 | tr '\n' ' ')"
	elif [ "$last" != "$n" ]; then
		fail "long-lived-s$i-keeps-backend" "replies not in sequence: $n lines, last is $last"
	elif [ "${GOT_AFTER[$i]}" = 0 ]; then
		fail "long-lived-s$i-keeps-backend" "no 3 more replies within 60 s after the reloads ($((n - AFTER[$i])) after ${AFTER[$i]})"
	else
		pass "long-lived-s$i-keeps-backend"
	fi
done
