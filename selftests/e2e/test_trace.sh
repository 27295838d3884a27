#!/bin/bash
# `svcplane trace` against a running daemon: a packet to a Service is
# explained (frontend, Maglev, backend) and leaves DNATed to one of the
# Service's pods; a packet to no Service is passed untouched with the reason;
# a packet from outside loadBalancerSourceRanges shows the drop reason; an
# ACK of a live connection finds its conntrack entry and the backend that
# really serves it; a pod's packet goes through the pod veth's program; the
# traces leave no conntrack entry and no counter behind; bad arguments get
# a clear error and exit status 2.
# `svcplane monitor` against the same daemon: a real new flow, a real drop
# (with its reason) and the address filter, each from its JSON events.
. "$(dirname "$0")/lib.sh"

e2e_cases hit-v4 hit-v6 miss drop-reason drop-not-new from-pod json established-hit \
	no-side-effects bad-args monitor-new-flow monitor-drop monitor-filter monitor-bad-args

e2e_begin --pods 2
PORTS='[{name: http, protocol: TCP, port: 8080}]'
ECHO='[{name: echo, protocol: TCP, port: 9090}]'
VIP4=10.96.0.70 VIP6=fd00:96::70 LB4=10.10.0.170 EMPTY=10.96.0.71 ECHO4=10.96.0.72
{
	echo "services:"
	yaml_service e2e web LoadBalancer "[$VIP4, $VIP6]" "[$LB4]" \
		"{name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30170}"
	echo "    loadBalancerSourceRanges: [192.0.2.0/24]"
	yaml_service e2e empty ClusterIP "[$EMPTY]" "" "{name: http, protocol: TCP, port: 80}"
	yaml_service e2e echo ClusterIP "[$ECHO4]" "" \
		"{name: echo, protocol: TCP, port: 9090, targetPort: 9090}"
	echo "endpointSlices:"
	yaml_slices e2e web web "$PORTS" pod1 pod2
	yaml_addr_slice e2e empty empty 4 "$PORTS"
	yaml_slices e2e echo echo "$ECHO" pod1 pod2
} | e2e_write_config
e2e_start_daemon || e2e_abort "svcplane did not become ready"
cl_client_route "$LB4" || e2e_abort "client route to the LB IP"

OUT="$CL_TMP/trace.out"
PODS4="${CL_POD_V4[pod1]}|${CL_POD_V4[pod2]}"
PODS6="${CL_POD_V6[pod1]}|${CL_POD_V6[pod2]}"

# tr ARGS...: svcplane trace on the node into $OUT (stdout and stderr);
# returns its exit status.
tr() { sp "$E2E_NODE" trace "$@" >"$OUT" 2>&1; }
# has REGEX: $OUT has a line matching REGEX (extended).
has() { grep -Eq -- "$1" "$OUT"; }
# expect CASE REGEX...: PASS if $OUT matches every REGEX, else FAIL naming
# the first that does not and showing the output.
expect() {
	local c=$1 re
	shift
	for re in "$@"; do
		if ! has "$re"; then
			fail "$c" "no line matching /$re/ in the trace"
			sed 's/^/    | /' "$OUT"
			return
		fi
	done
	pass "$c"
}

tr 10.10.0.2 $VIP4:80/tcp
expect hit-v4 '^sp_xdp$' 'frontend +matched .*e2e/web:http/tcp/v4' 'conntrack +miss: a new flow' \
	'maglev +flow hash' "backend +[0-9]+: ($PODS4):8080 on this node" 'verdict +XDP_PASS$' \
	"packet +TCP 10\.10\.0\.2:40000 -> ($PODS4):8080 \[SYN\]$"

tr "[fd00:10::2]:41000" "[$VIP6]:80/tcp"
expect hit-v6 'frontend +matched .*e2e/web:http/tcp/v6' \
	"packet +TCP \[fd00:10::2\]:41000 -> \[($PODS6)\]:8080 \[SYN\]$"

tr 10.10.0.2 10.96.0.99:80/tcp
expect miss 'frontend +none: not a Service address' 'not a Service frontend and not a reply' \
	'verdict +XDP_PASS$' 'packet .*10\.96\.0\.99:80 \[SYN\] \(unchanged\)$'

tr 10.10.0.2 $LB4:80/tcp
expect drop-reason 'frontend +matched .*source-ranges' 'verdict +XDP_DROP \(src_range_denied\)$'

# An ACK to a Service without endpoints: XDP leaves it to TC, which drops
# it (kube-proxy's REJECT answers new connections only).
tr 10.10.0.2 $EMPTY:80/tcp --established
expect drop-not-new 'XDP leaves the reject' '^sp_tc_uplink$' \
	'verdict +TC_ACT_SHOT \(reject_not_new\)$'

tr --from-pod --iface "${CL_POD_HOSTIF[pod1]}" "${CL_POD_V4[pod1]}" $VIP4:80/tcp
expect from-pod 'program +TC ingress on the pod' 'frontend +matched .*e2e/web' \
	"packet +TCP .* -> ($PODS4):8080"

if tr --json 10.10.0.2 $VIP4:80/tcp && "$CL_PY" -c '
import json, sys
t = json.load(open(sys.argv[1]))
r = t["runs"][0]
fe = [d for d in r["decisions"] if d["step"] == "frontend"]
assert r["program"] == "sp_xdp" and r["verdict"] == "XDP_PASS", r
assert fe and fe[0]["match"] == "exact" and "e2e/web" in fe[0]["service"], fe
assert r["packet_out"]["dport"] == 8080 and r["packet_out"]["checksums_ok"], r["packet_out"]
assert t["reason"] is None and t["from"] == "external"
' "$OUT" 2>"$OUT.err"; then
	pass json
else
	fail json "unexpected JSON: $(head -c 300 "$OUT.err")"
fi

# A live connection: its client port from `svcplane conntrack`, then an ACK
# on the same tuple must hit its entry and go to the pod that answers it.
STREAM="$CL_TMP/stream"
cl_stream_start "$CL_CLIENT" $ECHO4 9090 "$STREAM"
cl_until 10 has_lines "$STREAM" 2 || note "the echo connection did not answer"
flow=$(sp "$E2E_NODE" conntrack --json 2>/dev/null | "$CL_PY" -c '
import json, sys
for e in json.load(sys.stdin):
    if e.get("direction") == "fwd" and e["destination"]["address"] == sys.argv[1]:
        print(e["source"]["port"], e["nat"]["daddr"]); break' $ECHO4 2>/dev/null)
sport=${flow% *} served=$(awk 'END { print $1 }' "$STREAM")
if [ -z "$flow" ]; then
	fail established-hit "no conntrack entry for the echo connection"
	sp "$E2E_NODE" conntrack 2>&1 | sed 's/^/    | /'
else
	tr --established "10.10.0.2:$sport" $ECHO4:9090/tcp
	expect established-hit 'conntrack +hit: state ESTABLISHED' \
		"packet +TCP 10\.10\.0\.2:$sport -> ${CL_POD_V4[$served]//./\\.}:9090 \[ACK\]$"
fi
cl_stream_stop "$STREAM" "$CL_STREAM_PID"

# Traces write nothing: a new flow's trace adds no conntrack entry, and
# the Service's counters (no real traffic reaches it here) stay put.
state() {
	sp "$E2E_NODE" conntrack --json | "$CL_PY" -c 'import json,sys; print(len(json.load(sys.stdin)))'
	sp "$E2E_NODE" services --json | "$CL_PY" -c '
import json, sys
for s in json.load(sys.stdin):
    print(s.get("name"), s.get("stats"))'
}
before=$(state)
for i in 1 2 3; do
	tr "10.10.0.$((20 + i))" $VIP4:80/tcp
	tr "10.10.0.$((20 + i))" "[$VIP6]:80/udp"
	tr 10.10.0.2 $LB4:80/tcp
done
after=$(state)
if [ -n "$before" ] && [ "$before" = "$after" ]; then
	pass no-side-effects
else
	fail no-side-effects "conntrack or counters changed by traces: $before / $after"
fi

ok=1
for args in "10.10.0.2 $VIP4:80" "10.10.0.2 $VIP4:80/sctp" "10.10.0.2 fd00::1:80/tcp" \
	"10.10.0.2:0 $VIP4:80/tcp" "10.10.0.2 $VIP4:80/udp --syn" "--from-pod --from-host 1.2.3.4 $VIP4:80/tcp" \
	"10.10.0.2"; do
	# shellcheck disable=SC2086
	tr $args
	rc=$?
	if [ $rc -ne 2 ] || ! has '^svcplane trace: '; then
		ok=0
		note "trace $args: status $rc, output: $(head -1 "$OUT")"
	fi
done
[ $ok = 1 ] && pass bad-args || fail bad-args "a bad argument was not refused with status 2"

# ---- svcplane monitor ----------------------------------------------------

MON="$CL_TMP/monitor.out"
# mon_run N CMD... -- MONITOR-ARGS...: `svcplane monitor --json --count N
# --seconds 20 MONITOR-ARGS` in the background; CMD (traffic) is repeated,
# at most 20 times, until the monitor printed N events or exited (it opens
# the datapath's gate only once started, so the first tries may be missed).
mon_run() {
	local n=$1 i cmd=() pid
	shift
	while [ "$1" != -- ]; do cmd+=("$1"); shift; done
	shift
	sp "$E2E_NODE" monitor --json --count "$n" --seconds 20 "$@" >"$MON" 2>"$MON.err" &
	pid=$!
	CL_BG_PIDS+=("$pid")
	for ((i = 0; i < 20; i++)); do
		"${cmd[@]}" >/dev/null 2>&1
		has_lines "$MON" "$n" && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.3
	done
	cl_until 5 pid_gone "$pid"
	cl_kill_pid "$pid"
}
pid_gone() { ! kill -0 "$1" 2>/dev/null; }
# mon_check CASE PYTHON-ASSERTS: PASS if every JSON line of $MON satisfies
# the asserts (on e, the event) and there is at least one.
mon_check() {
	if "$CL_PY" -c '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert lines, "no event"
for e in lines:
'"$2"'
' "$MON" "${@:3}" 2>"$MON.py"; then
		pass "$1"
	else
		fail "$1" "$(tail -1 "$MON.py")"
		sed 's/^/    | /' "$MON" "$MON.err"
	fi
}

mon_run 1 cl_http "$CL_CLIENT" $VIP4 80 -- --type new --service e2e/web --address 10.10.0.2
mon_check monitor-new-flow '
    assert e["type"] == "new" and e["hook"] == "xdp", e
    assert e["service"] == "e2e/web:http/tcp/v4" and e["destination"] == sys.argv[2] + ":80", e
    assert e["source"].startswith("10.10.0.2:"), e
    assert e["backend"] in (sys.argv[3] + ":8080", sys.argv[4] + ":8080"), e' \
	$VIP4 "${CL_POD_V4[pod1]}" "${CL_POD_V4[pod2]}"

mon_run 1 cl_connect "$CL_CLIENT" $LB4 80 -- --type drop --service web
mon_check monitor-drop '
    assert e["type"] == "drop" and e["reason"] == "src_range_denied", e
    assert e["destination"] == sys.argv[2] + ":80", e' $LB4

# The address filter: each round opens a flow to the web Service first,
# then a connection to the empty one (a reject); with --address of the
# empty one's frontend, the first event printed must be its reject.
web_then_empty() {
	cl_http "$CL_CLIENT" $VIP4 80
	cl_connect "$CL_CLIENT" $EMPTY 80
}
mon_run 1 web_then_empty -- --address $EMPTY
mon_check monitor-filter '
    assert e["type"] == "reject" and e["destination"] == sys.argv[2] + ":80", e' $EMPTY

ok=1
for args in "--type bogus" "--address 10.0.0.300" "--rate x" "--rate 2000000"; do
	# shellcheck disable=SC2086
	sp "$E2E_NODE" monitor $args --seconds 1 >"$OUT" 2>&1
	rc=$?
	if [ $rc -ne 2 ] || ! has '^svcplane monitor: '; then
		ok=0
		note "monitor $args: status $rc, output: $(head -1 "$OUT")"
	fi
done
[ $ok = 1 ] && pass monitor-bad-args || fail monitor-bad-args "a bad argument was not refused with status 2"
