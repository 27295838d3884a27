#!/bin/bash
# The daemon may die or be restarted at any time without dropping traffic:
# programs stay attached and maps stay pinned while it is away, and a new
# daemon picks them up without flushing conntrack. Then `svcplane detach`
# must remove everything: no program on any interface, no pin.
#
#   web  LoadBalancer 10.96.0.10 fd00:96::10 | LB 10.10.0.100 fd00:10::100
#        TCP 80->8080 (http), TCP 90->9090 (echo); endpoints pod1 pod2 pod3
. "$(dirname "$0")/lib.sh"

e2e_cases kill9-loop-lb-ipv4 kill9-loop-clusterip-ipv6 kill9-long-lived-connection \
	conntrack-kept-across-restart sigterm-keeps-datapath \
	detach-exit-status detach-no-xdp detach-no-tc detach-no-pins detach-traffic-untouched

e2e_begin --pods 3
{
	cat <<EOF
services:
  - name: web
    namespace: demo
    type: LoadBalancer
    clusterIPs: [10.96.0.10, fd00:96::10]
    loadBalancerIPs: [10.10.0.100, fd00:10::100]
    ports:
      - {name: http, protocol: TCP, port: 80, targetPort: 8080}
      - {name: echo, protocol: TCP, port: 90, targetPort: 9090}
endpointSlices:
EOF
	yaml_slices demo web web '[{name: http, protocol: TCP, port: 8080}, {name: echo, protocol: TCP, port: 9090}]' \
		pod1 pod2 pod3
} | e2e_write_config
e2e_start_daemon || e2e_abort "svcplane did not become ready"
NODE=$E2E_NODE
P1=${CL_POD_NS[pod1]}

# ct_entries_for_port PORT: conntrack entries (from the pinned sp_ct map)
# whose source or destination port is PORT; -1 if the map cannot be read.
ct_entries_for_port() {
	ip netns exec "$NODE" bpftool -j map dump pinned "$CL_PINDIR/sp_ct" 2>/dev/null |
		"$CL_PY" -c '
import json, sys
port = int(sys.argv[1])
want = {port, ((port & 0xff) << 8) | (port >> 8)}  # __be16 shown as a host-order number
try:
    entries = json.load(sys.stdin)
except ValueError:
    print(-1); sys.exit()
n = 0
for e in entries:
    k = e.get("formatted", {}).get("key", {})
    if k.get("sport") in want or k.get("dport") in want:
        n += 1
print(n)' "$1"
}

# A stream and two request loops run through the kill and the restart.
# Nothing here counts what happened within a fixed time: each phase waits
# (up to WAIT s) for a number of requests to have been made, so a slow
# machine only takes longer.
WAIT=60
cl_stream_start "$CL_CLIENT" 10.10.0.100 90 "$CL_TMP/stream"
STREAM_PID=$CL_STREAM_PID
cl_loop_start "$CL_CLIENT" 10.10.0.100 80 "$CL_TMP/loop4"
LOOP4=$CL_LOOP_PID
cl_loop_start "$P1" fd00:96::10 80 "$CL_TMP/loop6"
LOOP6=$CL_LOOP_PID
cl_until $WAIT has_lines "$CL_TMP/stream" 3
BACKEND=$(head -1 "$CL_TMP/stream" | cut -d' ' -f1)
sport=$(in_client ss -Htn state established dst 10.10.0.100 dport = :90 | awk '{print $3}' | head -1)
sport=${sport##*:}
ct_before=$(ct_entries_for_port "${sport:-0}")
note "long-lived connection from port ${sport:-?} is on ${BACKEND:-nothing}; $ct_before conntrack entries for it"

lines() { grep -c . "$1" 2>/dev/null; }
# grown FILE FROM N WHEN: wait (up to WAIT s) until FILE holds FROM + N lines;
# if it does not, say so in GROWN_WHY (several phases may fall short).
GROWN_WHY=""
grown() {
	cl_until $WAIT has_lines "$1" $(($2 + $3)) && return 0
	GROWN_WHY+="$(basename "$1"): $(($(lines "$1") - $2)) of $3 $4 within $WAIT s; "
	return 1
}
LOOP_MIN=5
grown "$CL_TMP/loop4" 0 $LOOP_MIN "requests before kill -9"
grown "$CL_TMP/loop6" 0 $LOOP_MIN "requests before kill -9"
kill -KILL "$SP_PID"
wait "$SP_PID" 2>/dev/null
k4=$(lines "$CL_TMP/loop4") k6=$(lines "$CL_TMP/loop6") ks=$(lines "$CL_TMP/stream")
note "killed svcplane (-9) after $k4 + $k6 requests; waiting for $LOOP_MIN more per loop without a daemon"
grown "$CL_TMP/loop4" "$k4" $LOOP_MIN "requests with no daemon"
grown "$CL_TMP/loop6" "$k6" $LOOP_MIN "requests with no daemon"
grown "$CL_TMP/stream" "$ks" 3 "stream replies with no daemon"
ct_down=$(ct_entries_for_port "${sport:-0}")
restart_ok=1
e2e_start_daemon || restart_ok=0
ct_after=$(ct_entries_for_port "${sport:-0}")
r4=$(lines "$CL_TMP/loop4") r6=$(lines "$CL_TMP/loop6") rs=$(lines "$CL_TMP/stream")
grown "$CL_TMP/loop4" "$r4" $LOOP_MIN "requests after the restart"
grown "$CL_TMP/loop6" "$r6" $LOOP_MIN "requests after the restart"
# kill9-long-lived-connection: the stream must go on after the new daemon
# is up, not only survive until it starts.
STREAM_AFTER=5
stream_after_ok=1
cl_until $WAIT has_lines "$CL_TMP/stream" $((rs + STREAM_AFTER)) || stream_after_ok=0
cl_loop_stop "$CL_TMP/loop4" "$LOOP4"
cl_loop_stop "$CL_TMP/loop6" "$LOOP6"

loop_result() { # CASE FILE
	local n bad
	n=$(grep -c . "$2")
	bad=$(grep -c '^ERR' "$2")
	if [ $restart_ok = 0 ]; then
		fail "$1" "svcplane did not come back after kill -9"
	elif [ "$bad" -ne 0 ]; then
		fail "$1" "$bad of $n requests failed, first: $(grep -m1 '^ERR' "$2")"
	elif [[ $GROWN_WHY == *"$(basename "$2"):"* ]]; then
		fail "$1" "too few requests were made: $GROWN_WHY"
	else
		note "$1: $n requests ($LOOP_MIN or more before, during and after the daemon's absence), all answered"
		pass "$1"
	fi
}
loop_result kill9-loop-lb-ipv4 "$CL_TMP/loop4"
loop_result kill9-loop-clusterip-ipv6 "$CL_TMP/loop6"

if [ -z "$sport" ] || [ "$ct_before" -le 0 ] 2>/dev/null; then
	fail conntrack-kept-across-restart "could not find the connection's entries in sp_ct (port '${sport}', count '${ct_before}')"
else
	check conntrack-kept-across-restart \
		"entries for the connection: $ct_before before kill -9, $ct_down while down, $ct_after after restart" \
		test "$ct_after" -ge "$ct_before" -a "$ct_down" -ge "$ct_before"
fi

# The daemon exits on SIGTERM and leaves the datapath serving (an upgrade).
if [ $restart_ok = 0 ]; then
	fail sigterm-keeps-datapath "no daemon to stop (the restart failed)"
else
kill -TERM "$SP_PID"
for ((i = 0; i < 50; i++)); do kill -0 "$SP_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$SP_PID" 2>/dev/null; then
	fail sigterm-keeps-datapath "svcplane still running 5 s after SIGTERM"
	cl_kill_pid "$SP_PID"
else
	e2e_http_n "$CL_CLIENT" 10.10.0.100 80 10
	e2e_expect_all sigterm-keeps-datapath 10 1 "pod1 pod2 pod3"
fi
fi

alive=1
kill -0 "$STREAM_PID" 2>/dev/null || alive=0
cl_stream_stop "$CL_TMP/stream" "$STREAM_PID"
n=$(grep -c . "$CL_TMP/stream")
wrong=$(grep -vc "^$BACKEND [0-9]*\$" "$CL_TMP/stream")
last=$(tail -1 "$CL_TMP/stream" | cut -d' ' -f2)
if [ -z "$BACKEND" ] || [ $alive = 0 ] || [ "$wrong" -ne 0 ] || [ "$last" != "$n" ] ||
	[ $restart_ok = 0 ] || [ $stream_after_ok = 0 ]; then
	fail kill9-long-lived-connection "alive=$alive, $n replies ($((n - rs)) after the restart, want >= $STREAM_AFTER within $WAIT s; restart ok=$restart_ok), $wrong not from ${BACKEND:-?}, last=$last: $(head -c 200 "$CL_TMP/stream.err" | tr '\n' ' ')"
else
	note "stream: $n replies from $BACKEND, $((n - rs)) after the new daemon was ready"
	pass kill9-long-lived-connection
fi

# Detach: with the daemon stopped (the datapath still serving), `svcplane
# detach` removes every program and pin. The same per-device inspection runs
# before and after: before, it must see the XDP program, the TC programs and
# the pins, so that an empty result after detach means something.
XDP_SEEN="" TC_SEEN="" PINS_SEEN=""
inspect_node() {
	local ifc dir f b
	XDP_SEEN=$(ip -n "$NODE" -d link show | grep -E 'xdp|prog/' | tr -s ' ' | tr '\n' ';')
	TC_SEEN=""
	for ifc in $(ip -n "$NODE" -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -v '^lo$'); do
		for dir in ingress egress; do
			f=$(tc -n "$NODE" filter show dev "$ifc" "$dir" 2>/dev/null)
			[ -n "$f" ] && TC_SEEN+="$ifc/$dir: $(echo "$f" | head -2 | tr '\n' ' ');"
		done
	done
	# TCX links (kernel >= 6.6) do not show in `tc filter`; bpftool lists
	# them, and every program on a device (a device line: "NAME(IFINDEX) ...").
	b=$(ip netns exec "$NODE" bpftool net show 2>&1 | grep -E '^[^[:space:]:]+\([0-9]+\)' | tr '\n' ';')
	[ -n "$b" ] && TC_SEEN+="bpftool net: $b"
	PINS_SEEN=$(find "$CL_PINDIR" -mindepth 1 2>/dev/null | head -5 | tr '\n' ' ')
}

have_bpftool=1
command -v bpftool >/dev/null || have_bpftool=0
# Before detach: the datapath answers the LoadBalancer IP (no daemon runs),
# and the inspection sees what is attached.
vip_before=$(cl_http "$CL_CLIENT" 10.10.0.100 80)
inspect_node
xdp_before=$XDP_SEEN tc_before=$TC_SEEN pins_before=$PINS_SEEN
note "before detach: LB IP answered by '$vip_before'; xdp: ${xdp_before:0:80}; tc: ${tc_before:0:120}"

out=$(sp "$NODE" detach 2>&1)
rc=$?
check detach-exit-status "svcplane detach exited $rc: $out" test $rc -eq 0
inspect_node
if [ -z "$xdp_before" ]; then
	fail detach-no-xdp "no XDP program seen even before detach: the check cannot tell"
else
	check detach-no-xdp "still attached: $XDP_SEEN" test -z "$XDP_SEEN"
fi
if [ $have_bpftool = 0 ]; then
	fail detach-no-tc "bpftool not found (a dependency: make deps); TCX links cannot be checked"
elif [ -z "$tc_before" ]; then
	fail detach-no-tc "no TC program seen even before detach: the check cannot tell"
else
	check detach-no-tc "still attached: $TC_SEEN" test -z "$TC_SEEN"
fi
if [ -z "$pins_before" ]; then
	fail detach-no-pins "nothing pinned under $CL_PINDIR even before detach: the check cannot tell"
else
	check detach-no-pins "still pinned: $PINS_SEEN" test -z "$PINS_SEEN"
fi
# After detach, pod-to-pod traffic still flows, and the LoadBalancer IP,
# which only the datapath answered a moment ago, is answered by no pod
# (it is nobody's address; 3 s is a bound on a reply, not on speed).
{
	cl_http "$P1" 10.244.0.12 8080
	cl_http "${CL_POD_NS[pod2]}" fd00:244::13 8080
} >"$CL_TMP/direct"
vip_after=$(cl_http "$CL_CLIENT" 10.10.0.100 80)
note "after detach: LB IP: $vip_after"
if [ "$(tr '\n' ' ' <"$CL_TMP/direct")" != "pod2 pod3 " ]; then
	fail detach-traffic-untouched "pod-to-pod after detach: $(tr '\n' ' ' <"$CL_TMP/direct")"
elif [[ $vip_before != pod* ]]; then
	fail detach-traffic-untouched "the LoadBalancer IP was not answered before detach ('$vip_before'): the check cannot tell"
elif [[ $vip_after != ERR* ]]; then
	fail detach-traffic-untouched "the LoadBalancer IP is still answered after detach, by '$vip_after'"
else
	pass detach-traffic-untouched
fi
