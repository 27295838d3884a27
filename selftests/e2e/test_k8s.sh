#!/bin/bash
# The daemon in Kubernetes mode, end to end: scripts/k8s-test-apiserver.py
# runs inside the node namespace (on its 127.0.0.1, random ports) and
# `svcplane run --kubeconfig` watches it. Every case changes objects through
# the server's admin port and ends with a check of the pinned maps
# (`svcplane services --json`) AND of real traffic, naming the pods that
# answered.
#
#   web   ClusterIP 10.96.10.1 fd00:96::a01; http 80->8080, echo 90->9090,
#         dns 53->5353/UDP; slices web-v4, web-v6 (listed at start), web-v4b
#   edge  ClusterIP 10.96.20.1 <-> LoadBalancer 10.10.0.150, nodePort 30080;
#         http 80->8080; slice edge-v4 (pod3)
#   good  ClusterIP 10.96.30.1 (created among malformed objects; pod4)
#   late  ClusterIP 10.96.50.1 (created while the API server is away; pod4)
#   moved ClusterIP 10.96.40.1, labelled service-proxy-name (pod2)
#   topo  ClusterIP 10.96.60.1; slice topo-v4 (pod1-3) with topology hints
#   Node node-a: InternalIP 10.10.0.1, ExternalIP 10.10.1.1. The daemon gets
#   --node-address 10.10.0.1 only, so NodePorts answer on 10.10.1.1 only
#   because the Node object lists it.
. "$(dirname "$0")/lib.sh"

e2e_cases first-snapshot-gates-readiness initial-list-programmed create-service-via-watch \
	scale-up-second-slice scale-down network-programming-latency not-ready-endpoint-skipped \
	ready-preferred-over-terminating terminating-used-when-none-ready \
	terminating-keeps-established-connection \
	no-serving-endpoint-rejected clusterip-to-loadbalancer nodeport-on-node-object-addresses \
	node-address-removed loadbalancer-to-clusterip malformed-object-skipped \
	apiserver-down-keeps-state apiserver-restart-resumes-watch long-lived-across-api-restart \
	gone-relist-applies-offline-changes gone-relist-no-flush topology-zone-hints \
	topology-zone-label-change topology-node-hints topology-no-hints-everywhere \
	delete-service k8s-api-server-flag \
	proxy-label-other-ignored proxy-label-removed-adopted proxy-label-added-dropped \
	restart-with-api-down-keeps-state proxy-name-flag-ignores-unlabelled \
	proxy-name-flag-adopts-labelled \
	proxy-name-flag-label-removed never-writes-to-api

APISRV=$REPO/scripts/k8s-test-apiserver.py
command -v openssl >/dev/null || {
	for c in "${E2E_CASES[@]}"; do skip "$c" "openssl is not installed (make deps)"; done
	exit 0
}

e2e_begin --pods 4 --second-node-addr
NODE=$E2E_NODE
APIDIR=$CL_TMP/api
APILOG=$CL_TMP/apiserver.log
cl_client_route 10.10.0.150 || e2e_abort "client route to the LoadBalancer IP"

k8s_end() {
	local rc=$?
	if [ "$E2E_FAILS" -gt 0 ] && [ -s "$APILOG" ]; then
		echo "    --- test API server log (last 10 lines) ---"
		tail -n 10 "$APILOG" | sed 's/^/    | /'
	fi
	(exit $rc)
	e2e_end
}
trap k8s_end EXIT

# ---- the API server, in the node namespace ------------------------------------

cl_bg "$NODE" "$APILOG" "$CL_PY" "$APISRV" serve --dir "$APIDIR" --bookmark-interval 0.5
API_PID=$CL_LAST_PID
cl_until 15 test -s "$APIDIR/ready" || e2e_abort "the test API server did not start: $(tail -3 "$APILOG")"
ready_field() { "$CL_PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$APIDIR/ready" "$1"; }
ADMIN=$(ready_field admin_port)
KUBECONFIG_FILE=$APIDIR/kubeconfig
note "test API server pid $API_PID: api port $(ready_field api_port), admin port $ADMIN"

# ctl VERB ARGS...: the server's ctl builders (svc, slice, node, del); adm VERB
# [JSON]: a raw admin call (apply, down, up, compact, ...). Both from the node
# namespace, where the admin port is. A failed call fails the current case
# (why): what the case then checks was never set up.
ctl() {
	local out
	out=$(in_node timeout 20 "$CL_PY" "$APISRV" ctl "$ADMIN" "$@" 2>&1) && return 0
	why "ctl $* failed: $(echo "$out" | tail -2 | tr '\n' ' ')"
	return 1
}
adm() {
	local out
	out=$(in_node curl -sS -f --max-time 15 -X POST -H 'Content-Type: application/json' \
		--data-binary "${2:-{\}}" "http://127.0.0.1:$ADMIN/$1" 2>&1) && return 0
	why "admin $1 failed: $(echo "$out" | tail -2 | tr '\n' ' ')"
	return 1
}

# Object helpers. Endpoint specs are pod names, POD/notready or POD/terminating.
PORTS_WEB=(http:80::8080 echo:90::9090 dns:53:UDP:5353)
SPORTS_WEB=(http:8080 echo:9090 dns:5353:UDP)
eps4() { local s out=""; for s in "$@"; do out+="${CL_POD_V4[${s%%/*}]}${s#"${s%%/*}"},"; done; echo "${out%,}"; }
eps6() { local s out=""; for s in "$@"; do out+="${CL_POD_V6[${s%%/*}]}${s#"${s%%/*}"},"; done; echo "${out%,}"; }
web_v4() { ctl slice e2e web-v4 web "$(eps4 "$@")" "${SPORTS_WEB[@]}" --node node-a; }

# ---- map state ----------------------------------------------------------------

PODS_JSON=$(for p in "${CL_PODS[@]}"; do
	printf '"%s":"%s","%s":"%s",' "${CL_POD_V4[$p]}" "$p" "${CL_POD_V6[$p]}" "$p"
done)
PODS_JSON="{${PODS_JSON%,}}"

# maps_py CMD ARGS...: small readers of the inspection commands' JSON. Text
# that is not the JSON expected prints "unparsable ...", which matches no
# expected value: it is never read as an empty list.
MAPS_PY='
import json, sys
def load(text, what, kind=list):
    try:
        v = json.loads(text)
    except ValueError:
        v = None
    if not isinstance(v, kind):
        print("unparsable %s: %r" % (what, text[:100]))
        sys.exit(0)
    return v
def addr(a, port):
    return ("[%s]:%d" if ":" in a else "%s:%d") % (a, port)
cmd = sys.argv[1]
if cmd == "line":  # NAME PODS-JSON SERVICES-JSON MAGLEV-JSON
    name, pods, svcs = sys.argv[2], json.loads(sys.argv[3]), load(sys.argv[4], "services --json")
    svc = [s for s in svcs if s.get("name") == name]
    if svc:
        mg = load(sys.argv[5], "maglev --json", dict)
        fe = sorted(addr(f["address"], f["port"]) for f in svc[0]["frontends"])
        be = sorted(pods.get(b.get("address"), b.get("address") or "missing") + ":%d" % b.get("port", 0) +
                    ("~" if b["entries"] == 0 else "") for b in mg.get("backends", []))
        print("fe=%s be=%s" % (" ".join(fe), " ".join(be)))
elif cmd == "count":  # SERVICES-JSON on stdin
    print(len(load(sys.stdin.read(), "services --json")))
elif cmd == "summary":  # SERVICES-JSON on stdin: names and backend addresses
    print(json.dumps(sorted((s["name"], sorted(b.get("address") or "missing" for b in s.get("backends") or []))
                            for s in load(sys.stdin.read(), "services --json"))))
elif cmd == "node-addrs":  # bpftool -j dump of sp_node_addrs on stdin: IPv4 keys
    out = []
    for e in load(sys.stdin.read(), "bpftool map dump"):
        k = [int(b, 16) for b in e["key"]]
        if k[16] == 4:
            out.append("%d.%d.%d.%d" % tuple(k[:4]))
    print(" ".join(sorted(out)))
'
maps_py() { "$CL_PY" -c "$MAPS_PY" "$@"; }

# svc_line NAME: "fe=<frontends> be=<backends>" of the Service port NAME
# ("e2e/web:http/tcp/v4") in the pinned maps, each list sorted; backends as
# POD:PORT, with a "~" suffix for one that has no Maglev entry (weight 0: a
# terminating endpoint kept for its established flows only). Prints nothing
# if NAME is not in the maps.
svc_line() {
	maps_py line "$1" "$PODS_JSON" "$(sp "$NODE" services --json 2>/dev/null)" \
		"$(sp "$NODE" maglev --json "$1" 2>/dev/null)"
}
sorted_words() { tr ' ' '\n' | grep . | LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//'; }

WHY=""
why() { WHY="${WHY:+$WHY; }$*"; }
verdict() { # CASE: PASS if nothing went wrong since the last verdict
	if [ -z "$WHY" ]; then pass "$1"; else fail "$1" "$WHY"; fi
	WHY=""
}

# ck_map NAME FRONTENDS BACKENDS [TIMEOUT]: wait (bounded) until the maps hold
# exactly these frontends and backends for NAME; FRONTENDS "-" means NAME
# must be absent.
map_is() { [ "$(svc_line "$1")" = "$2" ]; }
ck_map() {
	local name=$1 want t=${4:-10}
	if [ "$2" = - ]; then
		want=""
	else
		want="fe=$(echo "$2" | sorted_words) be=$(echo "$3" | sorted_words)"
	fi
	cl_until "$t" map_is "$name" "$want" && return 0
	why "maps: $name: expected '${want:-absent}', saw '$(svc_line "$name")'"
	return 1
}

# http_n NS ADDR PORT N: N HTTP requests from one process in NS, each on a
# new connection (a new source port), as cl_http_many prints them (a python
# loop: a curl per request costs ~50x more on a loaded machine).
HTTP_N_PY='
import socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
bad = 0
for i in range(n):
    if bad >= 3:
        print("ERR not tried after 3 failures")
        continue
    t0 = time.monotonic()
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect((host, port))
        s.sendall(b"GET / HTTP/1.0\r\nHost: svc\r\n\r\n")
        data = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            data += b
        body = data.split(b"\r\n\r\n", 1)[1].split()
        print(body[0].decode() if body else "ERR empty answer")
    except (OSError, IndexError) as e:
        bad += 1
        print("ERR #%d at %s (%dms): %s" % (i + 1, time.strftime("%T"),
              (time.monotonic() - t0) * 1000, e))
    finally:
        s.close()
'
http_n() {
	ip netns exec "$1" "$CL_PY" -c "$HTTP_N_PY" "$2" "$3" "$4" >"$CL_TMP/results"
	e2e_count <"$CL_TMP/results"
}

# ck_traffic http|udp NS ADDR PORT N MIN-BACKENDS ALLOWED: N requests, all
# answered, by at least MIN-BACKENDS distinct pods, all in ALLOWED.
ck_traffic() {
	local kind=$1 ns=$2 addr=$3 port=$4 n=$5 min=$6 allowed=$7 b nb from
	if [ "$kind" = http ]; then http_n "$ns" "$addr" "$port" "$n"; else e2e_udp_n "$ns" "$addr" "$port" "$n"; fi
	from=${ns#"$CL_PREFIX-"}
	note "$from -> $addr:$port/$kind: $E2E_OK/$n answered, by: $(grep -v '^ERR' "$CL_TMP/results" | cl_tally | tr '\n' ' ')"
	nb=$(echo "$E2E_BACKENDS" | wc -w)
	if [ "$E2E_OK" -ne "$n" ]; then
		why "$from -> $addr:$port/$kind: $E2E_OK of $n answered; first error: $E2E_FIRST_ERR"
		return 1
	fi
	if [ "$nb" -lt "$min" ]; then
		why "$from -> $addr:$port/$kind: answered by $nb pod(s) ($E2E_BACKENDS), expected at least $min"
		return 1
	fi
	for b in $E2E_BACKENDS; do
		if [[ " $allowed " != *" $b "* ]]; then
			why "$from -> $addr:$port/$kind: answered by $b, expected only: $allowed"
			return 1
		fi
	done
}

# ck_unanswered NS ADDR PORT: nothing answers a TCP connection (the VIP is
# not programmed: it is nobody's address, the SYN goes unanswered or comes
# back as ICMP unreachable). Only that counts: a refusal (RST: a REJECT
# left behind), a connection that then fails, or any other curl error is
# not "unanswered". ck_refused: the connection is refused within a second
# (REJECT, or the node's kernel).
ck_unanswered() {
	local out rc
	out=$(ip netns exec "$1" curl -sS -g --connect-timeout 2 --max-time 3 "$(cl_url "$2" "$3")" 2>&1)
	rc=$?
	if [ $rc -eq 0 ]; then
		why "${1#"$CL_PREFIX-"} -> $2:$3: answered by ${out%% *}, expected no answer"
		return 1
	fi
	# curl 28 in the connect phase ("Failed to connect ... Timeout"): no
	# SYN-ACK; 7 with "No route"/"unreachable": ICMP unreachable.
	if { [ $rc -eq 28 ] && [[ $out == *"Failed to connect"* ]]; } ||
		{ [ $rc -eq 7 ] && [[ $out == *"No route"* || $out == *"nreachable"* ]]; }; then
		note "${1#"$CL_PREFIX-"} -> $2:$3: not answered, as expected (curl $rc: $(echo "$out" | head -1 | cut -c1-70))"
		return 0
	fi
	why "${1#"$CL_PREFIX-"} -> $2:$3: expected no answer, got curl exit $rc: $(echo "$out" | head -1)"
	return 1
}
ck_refused() {
	local out
	out=$(cl_connect "$1" "$2" "$3")
	if [[ $out =~ ^ERR\ ECONNREFUSED\ ([0-9]+)ms ]] && [ "${BASH_REMATCH[1]}" -lt 1000 ]; then
		note "${1#"$CL_PREFIX-"} -> $2:$3: $out"
		return 0
	fi
	why "${1#"$CL_PREFIX-"} -> $2:$3: expected ECONNREFUSED within 1 s, got: ${out:-nothing}"
	return 1
}

# node_addrs: the addresses in the pinned sp_node_addrs map, sorted (IPv4 only).
node_addrs() {
	in_node bpftool -j map dump pinned "$CL_PINDIR/sp_node_addrs" 2>/dev/null | maps_py node-addrs
}
node_addrs_are() { [ "$(node_addrs)" = "$1" ]; }

# log_since LINE PATTERN: the daemon logged PATTERN after line LINE.
log_since() { tail -n "+$(($1 + 1))" "$E2E_LOG" | grep -q -- "$2"; }
log_lines() { wc -l <"$E2E_LOG"; }

# start_k8s_daemon [ARGS...]: the daemon in Kubernetes mode; waits (bounded)
# for its "running:" line only (programs attached), not for readiness: the
# first snapshot may be held back on purpose.
daemon_running() { kill -0 "$SP_PID" 2>/dev/null && sp_logged_running "$E2E_LOG" "$DAEMON_FROM"; }
start_k8s_daemon() {
	echo "=== svcplane run --kubeconfig $* ($(date +%T.%N | cut -c1-12))" >>"$E2E_LOG"
	DAEMON_FROM=$(log_lines)
	sp_start "$NODE" "$E2E_LOG" -v --kubeconfig "$KUBECONFIG_FILE" --node-name node-a \
		--node-address 10.10.0.1 "$@"
	cl_until 30 daemon_running && return 0
	if kill -0 "$SP_PID" 2>/dev/null; then
		note "svcplane runs but logged no 'running:' within 30 s; its log, without libbpf's:"
		tail -n "+$DAEMON_FROM" "$E2E_LOG" | grep -v '^libbpf' | head -20 | sed 's/^/    | /'
	else
		wait "$SP_PID"
		note "svcplane exited with status $?"
	fi
	return 1
}
snapshot_applied() { log_since "$DAEMON_FROM" 'Kubernetes API snapshot applied'; }
# healthz: "CODE BODY" of /healthz: "200 ok" when ready, "503 not synced" before.
healthz() { e2e_http_status "$NODE" http://127.0.0.1:9477/healthz; }

# ---- objects present before the daemon starts (the initial list) ---------------

ctl node node-a 10.10.0.1 10.10.1.1
ctl svc e2e web 10.96.10.1,fd00:96::a01 "${PORTS_WEB[@]}"
web_v4 pod1 pod2
ctl slice e2e web-v6 web "$(eps6 pod1 pod2)" "${SPORTS_WEB[@]}" --node node-a

# ---- case: the first snapshot gates readiness ---------------------------------
# The API is down when the daemon starts: it runs (programs attached) but is
# not synced, and programs nothing, until Services, slices and the Node have
# all been listed.
adm down
start_k8s_daemon || e2e_abort "svcplane (Kubernetes mode) did not start"
sleep 1
h_before=$(healthz)
st_before=$(sp_ready "$NODE" && echo ready || echo "not ready")
n_before=$(sp "$NODE" services --json 2>/dev/null | maps_py count)
note "API down: /healthz '$h_before', svcplane status '$st_before', $n_before Service port(s) in the maps"
[ "$h_before" = "503 not synced" ] || why "/healthz before the first snapshot: '$h_before', expected '503 not synced'"
[ "$st_before" = "not ready" ] || why "svcplane status says ready before the first snapshot"
[ "$n_before" = 0 ] || why "$n_before Service port(s) programmed before the first snapshot"
snapshot_applied && why "a snapshot was applied with the API server down"
adm up
cl_until 15 snapshot_applied || why "no 'Kubernetes API snapshot applied' within 15 s of the API coming up"
cl_until 5 test "$(healthz)" = "200 ok" || why "/healthz says '$(healthz)' after the first snapshot, expected '200 ok'"
cl_until 5 sp_ready "$NODE" || why "svcplane status not ready after the first snapshot"
note "$(grep -m1 'Kubernetes API snapshot applied' <(tail -n "+$DAEMON_FROM" "$E2E_LOG") | cut -c1-150)"
verdict first-snapshot-gates-readiness

# ---- case: what was listed is programmed ---------------------------------------
ck_map e2e/web:http/tcp/v4 "10.96.10.1:80" "pod1:8080 pod2:8080" &&
	ck_map e2e/web:dns/udp/v4 "10.96.10.1:53" "pod1:5353 pod2:5353" &&
	ck_map e2e/web:http/tcp/v6 "[fd00:96::a01]:80" "pod1:8080 pod2:8080" &&
	ck_map e2e/web:echo/tcp/v4 "10.96.10.1:90" "pod1:9090 pod2:9090"
ck_traffic http "$CL_CLIENT" 10.96.10.1 80 16 2 "pod1 pod2"
ck_traffic http "$CL_CLIENT" fd00:96::a01 80 10 1 "pod1 pod2"
ck_traffic udp "${CL_POD_NS[pod4]}" 10.96.10.1 53 10 1 "pod1 pod2"
verdict initial-list-programmed

# ---- case: a Service and its slice created while the daemon watches -------------
ctl svc e2e edge 10.96.20.1 http:80::8080
ctl slice e2e edge-v4 edge "$(eps4 pod3)" http:8080 --node node-a
ck_map e2e/edge:http/tcp/v4 "10.96.20.1:80" "pod3:8080" &&
	ck_traffic http "${CL_POD_NS[pod1]}" 10.96.20.1 80 10 1 "pod3"
verdict create-service-via-watch

# ---- scale up (a second slice, merged), scale down ------------------------------
ctl slice e2e web-v4b web "$(eps4 pod3 pod4)" "${SPORTS_WEB[@]}" --node node-a
ck_map e2e/web:http/tcp/v4 "10.96.10.1:80" "pod1:8080 pod2:8080 pod3:8080 pod4:8080" &&
	ck_traffic http "$CL_CLIENT" 10.96.10.1 80 20 3 "pod1 pod2 pod3 pod4"
verdict scale-up-second-slice

ctl del EndpointSlice e2e web-v4b
web_v4 pod2
ck_map e2e/web:http/tcp/v4 "10.96.10.1:80" "pod2:8080" &&
	ck_traffic http "$CL_CLIENT" 10.96.10.1 80 10 1 "pod2"
verdict scale-down

# ---- kube-proxy's network programming latency ------------------------------------
# Two slices in one apply, each with endpoints.kubernetes.io/last-change-trigger-time:
# one 2 s ago (measured: from then to the maps, so at least 2 s), one from
# before the daemon started (left out, as kube-proxy does). The histogram
# gets exactly one sample; endpoint changes +2, service changes +0.
metrics() { in_node curl -sS -m 5 http://127.0.0.1:9477/metrics; }
mval() { awk -v s="$2" '$1 == s { print $2; f = 1 } END { if (!f) print "none" }' <<<"$1"; }
NP=kubeproxy_network_programming_duration_seconds
EC=kubeproxy_sync_proxy_rules_endpoint_changes_total
SC=kubeproxy_sync_proxy_rules_service_changes_total
m0=$(metrics)
trig=$(date -u -d '-2 seconds' +%Y-%m-%dT%H:%M:%S.%6NZ)
slices=$("$CL_PY" -c '
import json, sys
def sl(name, ip, t):
    return {"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
            "metadata": {"name": name, "namespace": "e2e",
                         "labels": {"kubernetes.io/service-name": "web"},
                         "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": t}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}, "nodeName": "node-a"}],
            "ports": [{"name": "http", "protocol": "TCP", "port": 8080}]}
print(json.dumps([sl("web-v4c", sys.argv[1], sys.argv[3]), sl("web-v4d", sys.argv[2], "2020-01-01T00:00:00Z")]))
' "${CL_POD_V4[pod3]}" "${CL_POD_V4[pod4]}" "$trig")
adm apply "$slices"
if ck_map e2e/web:http/tcp/v4 "10.96.10.1:80" "pod2:8080 pod3:8080 pod4:8080"; then
	m1=$(metrics)
	n=$(( $(mval "$m1" ${NP}_count) - $(mval "$m0" ${NP}_count) ))
	sum=$(awk -v a="$(mval "$m0" ${NP}_sum)" -v b="$(mval "$m1" ${NP}_sum)" 'BEGIN { printf "%.3f", b - a }')
	ec=$(( $(mval "$m1" $EC) - $(mval "$m0" $EC) )) sc=$(( $(mval "$m1" $SC) - $(mval "$m0" $SC) ))
	b1=$(( $(mval "$m1" "${NP}_bucket{le=\"1\"}") - $(mval "$m0" "${NP}_bucket{le=\"1\"}") ))
	note "network programming: +$n sample(s), +$sum s (bucket le=1 +$b1); endpoint changes +$ec, service changes +$sc"
	[ "$n" = 1 ] || why "network programming samples +$n, expected +1 (the 2020 trigger time is older than the daemon)"
	awk -v s="$sum" 'BEGIN { exit !(s >= 2 && s < 60) }' || why "network programming latency $sum s, expected 2 s and a little"
	[ "$b1" = 0 ] || why "a sample of at least 2 s landed in the le=1 bucket"
	[ "$ec" = 2 ] || why "endpoint changes +$ec, expected +2"
	[ "$sc" = 0 ] || why "service changes +$sc, expected +0"
fi
ctl del EndpointSlice e2e web-v4c
ctl del EndpointSlice e2e web-v4d
ck_map e2e/web:http/tcp/v4 "10.96.10.1:80" "pod2:8080"
verdict network-programming-latency

# ---- endpoint conditions (KEP-1669) ----------------------------------------------
web_v4 pod1 pod2/notready
ck_map e2e/web:http/tcp/v4 "10.96.10.1:80" "pod1:8080" &&
	ck_traffic http "$CL_CLIENT" 10.96.10.1 80 10 1 "pod1"
verdict not-ready-endpoint-skipped

# A long-lived connection on one endpoint (X), which then starts terminating
# while the other (Y) is ready: X keeps its established flow (weight 0 in
# the maps) but gets no new one.
web_v4 pod1 pod2
ck_map e2e/web:echo/tcp/v4 "10.96.10.1:90" "pod1:9090 pod2:9090" || note "$WHY"
WHY=""
cl_stream_start "$CL_CLIENT" 10.96.10.1 90 "$CL_TMP/tstream"
TSTREAM_PID=$CL_STREAM_PID
cl_until 30 has_lines "$CL_TMP/tstream" 2
X=$(head -1 "$CL_TMP/tstream" | cut -d' ' -f1)
case $X in pod1) Y=pod2 ;; *) X=pod2 Y=pod1 ;; esac
note "long-lived connection client -> 10.96.10.1:90 is on $X; $X starts terminating"
web_v4 "$Y" "$X/terminating"
ck_map e2e/web:http/tcp/v4 "10.96.10.1:80" "$Y:8080 $X:8080~" &&
	ck_map e2e/web:echo/tcp/v4 "10.96.10.1:90" "$Y:9090 $X:9090~" &&
	ck_traffic http "$CL_CLIENT" 10.96.10.1 80 10 1 "$Y"
verdict ready-preferred-over-terminating

web_v4 "$Y/notready" "$X/terminating"
ck_map e2e/web:http/tcp/v4 "10.96.10.1:80" "$X:8080" &&
	ck_traffic http "$CL_CLIENT" 10.96.10.1 80 10 1 "$X"
verdict terminating-used-when-none-ready

# The connection must go on after all these changes: wait (bounded, not
# timed) for 3 more replies.
n_changed=$(grep -c . "$CL_TMP/tstream")
cl_until 60 has_lines "$CL_TMP/tstream" $((n_changed + 3)) ||
	why "no 3 more replies within 60 s after the endpoint changes ($n_changed before)"
alive=1
kill -0 "$TSTREAM_PID" 2>/dev/null || alive=0
cl_stream_stop "$CL_TMP/tstream" "$TSTREAM_PID"
n=$(grep -c . "$CL_TMP/tstream")
wrong=$(grep -vc "^$X [0-9]*\$" "$CL_TMP/tstream")
note "long-lived connection: $n replies ($((n - n_changed)) after the changes), $wrong not from $X"
[ $alive = 1 ] || why "the connection closed after $n lines: $(head -c 200 "$CL_TMP/tstream.err")"
[ "$wrong" -eq 0 ] || why "$wrong of $n replies not from $X"
if [ "$(tail -1 "$CL_TMP/tstream" | cut -d' ' -f2)" != "$n" ]; then
	why "replies missing: $n lines, last '$(tail -1 "$CL_TMP/tstream")'"
fi
verdict terminating-keeps-established-connection

web_v4 pod1/notready pod2/notready
ck_map e2e/web:http/tcp/v4 "10.96.10.1:80" "" && ck_refused "$CL_CLIENT" 10.96.10.1 80
verdict no-serving-endpoint-rejected

web_v4 pod1 pod2
ck_map e2e/web:http/tcp/v4 "10.96.10.1:80" "pod1:8080 pod2:8080" || note "restoring web: $WHY"
WHY=""

# ---- Service type ClusterIP -> LoadBalancer (NodePort on Node addresses) -> ClusterIP ----
ctl svc e2e edge 10.96.20.1 http:80::8080:30080 --type LoadBalancer --lb 10.10.0.150
ck_map e2e/edge:http/tcp/v4 "10.96.20.1:80 10.10.0.150:80 *:30080" "pod3:8080" &&
	ck_traffic http "$CL_CLIENT" 10.10.0.150 80 10 1 "pod3" &&
	ck_traffic http "$CL_CLIENT" 10.10.0.1 30080 5 1 "pod3" &&
	ck_traffic http "$CL_CLIENT" 10.96.20.1 80 5 1 "pod3"
verdict clusterip-to-loadbalancer

cl_until 5 node_addrs_are "10.10.0.1 10.10.1.1" ||
	why "sp_node_addrs holds '$(node_addrs)', expected 10.10.0.1 (--node-address) and 10.10.1.1 (Node object)"
ck_traffic http "$CL_CLIENT" 10.10.1.1 30080 5 1 "pod3"
verdict nodeport-on-node-object-addresses

ctl node node-a 10.10.0.1
cl_until 5 node_addrs_are "10.10.0.1" || why "sp_node_addrs holds '$(node_addrs)' after the Node lost 10.10.1.1"
ck_refused "$CL_CLIENT" 10.10.1.1 30080
ck_traffic http "$CL_CLIENT" 10.10.0.1 30080 5 1 "pod3"
verdict node-address-removed
ctl node node-a 10.10.0.1 10.10.1.1

ctl svc e2e edge 10.96.20.1 http:80::8080
ck_map e2e/edge:http/tcp/v4 "10.96.20.1:80" "pod3:8080" &&
	ck_traffic http "$CL_CLIENT" 10.96.20.1 80 5 1 "pod3" &&
	ck_unanswered "$CL_CLIENT" 10.10.0.150 80 &&
	ck_refused "$CL_CLIENT" 10.10.0.1 30080
verdict loadbalancer-to-clusterip

# ---- malformed objects among good ones -------------------------------------------
from=$(log_lines)
adm apply '{"kind":"Service","metadata":{"name":"bad1","namespace":"e2e"},"spec":{"type":"ClusterIP","clusterIP":"10.96.0.999","clusterIPs":["10.96.0.999"],"ports":[{"name":"http","port":80,"protocol":"TCP","targetPort":8080}]}}'
adm apply '{"kind":"EndpointSlice","metadata":{"name":"edge-v4","namespace":"e2e","labels":{"kubernetes.io/service-name":"edge"}},"addressType":"IPv4","endpoints":[{"addresses":["not-an-ip"],"conditions":{"ready":true}},{"addresses":["'"${CL_POD_V4[pod2]}"'"],"conditions":{"ready":true},"nodeName":"node-a"}],"ports":[{"name":"http","port":8080,"protocol":"TCP"}]}'
adm apply '{"kind":"Service","metadata":{"name":"bad2","namespace":"e2e"},"spec":{"type":"ClusterIP","clusterIP":"10.96.0.98","clusterIPs":["10.96.0.98"],"ports":[{"name":"http","port":99999,"protocol":"TCP"}]}}'
ctl svc e2e good 10.96.30.1 http:80::8080
ctl slice e2e good-v4 good "$(eps4 pod4)" http:8080 --node node-a
ck_map e2e/good:http/tcp/v4 "10.96.30.1:80" "pod4:8080" &&
	ck_traffic http "$CL_CLIENT" 10.96.30.1 80 5 1 "pod4"
ck_map e2e/bad1:http/tcp/v4 - && ck_map e2e/bad2:http/tcp/v4 -
# A bad Service leaves its last good version in force; the bad endpoint of
# edge-v4's update is skipped alone: its good endpoint (pod2) applies.
ck_map e2e/edge:http/tcp/v4 "10.96.20.1:80" "pod2:8080" &&
	ck_traffic http "$CL_CLIENT" 10.96.20.1 80 5 1 "pod2"
for obj in e2e/bad1 e2e/bad2 e2e/edge-v4; do
	log_since "$from" "$obj" || why "no warning naming $obj in the daemon log"
done
kill -0 "$SP_PID" 2>/dev/null || why "svcplane exited"
verdict malformed-object-skipped
note "daemon said: $(tail -n "+$((from + 1))" "$E2E_LOG" | grep -m1 'e2e/bad1' | cut -c1-140)"
ctl slice e2e edge-v4 edge "$(eps4 pod3)" http:8080 --node node-a # good again

# ---- the API server goes away mid-watch and comes back -----------------------------
# A long-lived connection and the maps must not notice the outage; a change
# made while the server is down (kept in its event history) and one made
# after it is back are both applied.
cl_stream_start "$CL_CLIENT" 10.96.10.1 90 "$CL_TMP/stream"
STREAM_PID=$CL_STREAM_PID
cl_until 30 has_lines "$CL_TMP/stream" 3
STREAM_BE=$(head -1 "$CL_TMP/stream" | cut -d' ' -f1)
note "long-lived connection client -> 10.96.10.1:90 is on ${STREAM_BE:-nothing}"
from=$(log_lines)
maps_before=$(sp "$NODE" services --json | maps_py summary)
adm down
# The stream gets replies while the server is down (waited for, bounded).
n_down=$(grep -c . "$CL_TMP/stream")
cl_until 60 has_lines "$CL_TMP/stream" $((n_down + 3)) ||
	why "the long-lived connection got no 3 replies within 60 s of the API server going down"
ck_traffic http "$CL_CLIENT" 10.96.10.1 80 10 1 "pod1 pod2"
ck_traffic http "$CL_CLIENT" 10.96.30.1 80 5 1 "pod4"
maps_down=$(sp "$NODE" services --json | maps_py summary)
[[ $maps_before == unparsable* ]] && why "before the outage: $maps_before"
[ "$maps_down" = "$maps_before" ] || why "the maps changed while the API server was down: $maps_down"
kill -0 "$SP_PID" 2>/dev/null || why "svcplane exited"
verdict apiserver-down-keeps-state

web_v4 pod1 pod2 pod3 # made while the server is down
adm up
ck_map e2e/web:http/tcp/v4 "10.96.10.1:80" "pod1:8080 pod2:8080 pod3:8080" 20 &&
	ck_traffic http "$CL_CLIENT" 10.96.10.1 80 24 3 "pod1 pod2 pod3"
ctl del Service e2e good # made after it is back
ck_map e2e/good:http/tcp/v4 - 15
log_since "$from" 're-watching from resourceVersion' || why "no 're-watching from resourceVersion' in the log"
log_since "$from" '(410): relisting' && why "relisted, though the server kept the events (expected a resumed watch)"
verdict apiserver-restart-resumes-watch

# ... and after it is back and the changes are applied.
n_up=$(grep -c . "$CL_TMP/stream")
cl_until 60 has_lines "$CL_TMP/stream" $((n_up + 3)) ||
	why "the long-lived connection got no 3 replies within 60 s after the API server came back"
alive=1
kill -0 "$STREAM_PID" 2>/dev/null || alive=0
cl_stream_stop "$CL_TMP/stream" "$STREAM_PID"
n=$(grep -c . "$CL_TMP/stream")
wrong=$(grep -vc "^$STREAM_BE [0-9]*\$" "$CL_TMP/stream")
if [ -z "$STREAM_BE" ]; then
	why "the long-lived connection never got a reply: $(head -c 200 "$CL_TMP/stream.err")"
elif [ $alive = 0 ]; then
	why "the long-lived connection closed after $n lines: $(head -c 200 "$CL_TMP/stream.err")"
elif [ "$wrong" -ne 0 ]; then
	why "$wrong of $n replies not from $STREAM_BE"
elif [ "$(tail -1 "$CL_TMP/stream" | cut -d' ' -f2)" != "$n" ]; then
	why "replies missing: $n lines, last $(tail -1 "$CL_TMP/stream")"
fi
note "long-lived connection: $n replies, all from $STREAM_BE: $([ "$wrong" = 0 ] && echo yes || echo no)"
verdict long-lived-across-api-restart

# ---- 410 Gone: changes while disconnected, history compacted, relist ---------------
# New connections run through the whole outage and relist: none may fail.
cl_loop_start "$CL_CLIENT" 10.96.10.1 80 "$CL_TMP/loop"
LOOP_PID=$CL_LOOP_PID
from=$(log_lines)
cl_until 60 has_lines "$CL_TMP/loop" 3 || why "the request loop made no 3 requests within 60 s"
adm down
# Requests run while the server is down (waited for, bounded).
n_down=$(grep -c . "$CL_TMP/loop")
cl_until 60 has_lines "$CL_TMP/loop" $((n_down + 3)) ||
	why "no 3 requests within 60 s while the API server was down"
ctl del Service e2e edge
ctl del EndpointSlice e2e edge-v4
ctl svc e2e late 10.96.50.1 http:80::8080
ctl slice e2e late-v4 late "$(eps4 pod4)" http:8080 --node node-a
web_v4 pod2 pod3
adm compact
adm up
ck_map e2e/web:http/tcp/v4 "10.96.10.1:80" "pod2:8080 pod3:8080" 20 &&
	ck_traffic http "$CL_CLIENT" 10.96.10.1 80 16 2 "pod2 pod3"
ck_map e2e/late:http/tcp/v4 "10.96.50.1:80" "pod4:8080" 5 &&
	ck_traffic http "$CL_CLIENT" 10.96.50.1 80 5 1 "pod4"
ck_map e2e/edge:http/tcp/v4 - 5 && ck_unanswered "$CL_CLIENT" 10.96.20.1 80
log_since "$from" '(410): relisting' || why "no '(410): relisting' in the daemon log"
verdict gone-relist-applies-offline-changes

# ... and after the relist (waited for, bounded).
n_relist=$(grep -c . "$CL_TMP/loop")
cl_until 60 has_lines "$CL_TMP/loop" $((n_relist + 3)) ||
	why "no 3 requests within 60 s after the relist"
cl_loop_stop "$CL_TMP/loop" "$LOOP_PID"
n=$(grep -c . "$CL_TMP/loop")
errs=$(grep -c '^ERR' "$CL_TMP/loop")
others=$(grep -v '^ERR' "$CL_TMP/loop" | grep -vc '^pod[123]$')
note "requests through the outage and relist: $n, failed $errs; by: $(cl_tally <"$CL_TMP/loop" | grep -v ERR | tr '\n' ' ')"
[ "$errs" -eq 0 ] || why "$errs of $n requests failed: $(grep -m2 '^ERR' "$CL_TMP/loop" | tr '\n' ' ')"
[ "$others" -eq 0 ] || why "$others answers not from pod1-pod3"
if tail -n "+$((from + 1))" "$E2E_LOG" | grep -q ' 0 Service port(s)'; then
	why "a snapshot with no Services was applied during the relist"
fi
verdict gone-relist-no-flush

# ---- topology hints (kube-proxy's topology.go) ----------------------------------------
# The Node's zone label against the slice's hints, as the EndpointSlice
# controller writes them for trafficDistribution: PreferClose / PreferSameNode.
node_zone() { # ZONE: node-a's object with that zone label (addresses as before)
	adm apply '{"kind":"Node","apiVersion":"v1","metadata":{"name":"node-a","labels":{"kubernetes.io/hostname":"node-a","topology.kubernetes.io/zone":"'"$1"'"}},"spec":{},"status":{"addresses":[{"type":"InternalIP","address":"10.10.0.1"},{"type":"ExternalIP","address":"10.10.1.1"}]}}'
}
topo_slice() { # HINTS-OF-POD1 HINTS-OF-POD2 HINTS-OF-POD3: each a JSON "hints" value or null
	adm apply '{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"name":"topo-v4","namespace":"e2e","labels":{"kubernetes.io/service-name":"topo"}},"addressType":"IPv4","ports":[{"name":"http","protocol":"TCP","port":8080}],"endpoints":[{"addresses":["'"${CL_POD_V4[pod1]}"'"],"conditions":{"ready":true},"nodeName":"node-a","hints":'"$1"'},{"addresses":["'"${CL_POD_V4[pod2]}"'"],"conditions":{"ready":true},"nodeName":"node-a","hints":'"$2"'},{"addresses":["'"${CL_POD_V4[pod3]}"'"],"conditions":{"ready":true},"nodeName":"node-a","hints":'"$3"'}]}'
}
ZA='{"forZones":[{"name":"zone-a"}]}'
ZB='{"forZones":[{"name":"zone-b"}]}'
node_zone zone-a
ctl svc e2e topo 10.96.60.1 http:80::8080
topo_slice "$ZA" "$ZB" "$ZB"
# "~": in the set with weight 0 (no new flows), see svc_line.
ck_map e2e/topo:http/tcp/v4 10.96.60.1:80 "pod1:8080 pod2:8080~ pod3:8080~" &&
	ck_traffic http "$CL_CLIENT" 10.96.60.1 80 12 1 "pod1"
verdict topology-zone-hints

# The node moves to zone-b: every Service is resolved again for it.
node_zone zone-b
ck_map e2e/topo:http/tcp/v4 10.96.60.1:80 "pod1:8080~ pod2:8080 pod3:8080" &&
	ck_traffic http "$CL_CLIENT" 10.96.60.1 80 12 2 "pod2 pod3"
log_since "$DAEMON_FROM" "node zone zone-a -> zone-b" || why "the zone change is not logged"
verdict topology-zone-label-change

# Node hints win when every endpoint has them and one is for this node.
topo_slice '{"forZones":[{"name":"zone-b"}],"forNodes":[{"name":"node-b"}]}' \
	'{"forZones":[{"name":"zone-b"}],"forNodes":[{"name":"node-b"}]}' \
	'{"forZones":[{"name":"zone-b"}],"forNodes":[{"name":"node-a"}]}'
ck_map e2e/topo:http/tcp/v4 10.96.60.1:80 "pod1:8080~ pod2:8080~ pod3:8080" &&
	ck_traffic http "$CL_CLIENT" 10.96.60.1 80 12 1 "pod3"
verdict topology-node-hints

# One ready endpoint without hints: no topology, every endpoint.
topo_slice "$ZA" "$ZB" null
ck_map e2e/topo:http/tcp/v4 10.96.60.1:80 "pod1:8080 pod2:8080 pod3:8080" &&
	ck_traffic http "$CL_CLIENT" 10.96.60.1 80 30 2 "pod1 pod2 pod3"
verdict topology-no-hints-everywhere
ctl del Service e2e topo
ctl del EndpointSlice e2e topo-v4

# ---- delete -------------------------------------------------------------------------
ctl del Service e2e web
ctl del EndpointSlice e2e web-v4
ctl del EndpointSlice e2e web-v6
for p in http/tcp/v4 echo/tcp/v4 dns/udp/v4 http/tcp/v6 dns/udp/v6; do
	ck_map "e2e/web:$p" - 10 || break
done
ck_unanswered "$CL_CLIENT" 10.96.10.1 80
ck_traffic http "$CL_CLIENT" 10.96.50.1 80 5 1 "pod4" # the others stay
verdict delete-service

# ---- service-proxy-name without --proxy-name: the label hands a Service to another proxy ----
ctl svc e2e moved 10.96.40.1 http:80::8080 --label service.kubernetes.io/service-proxy-name=other
ctl slice e2e moved-v4 moved "$(eps4 pod2)" http:8080 --node node-a
ctl svc e2e marker 10.96.40.2 http:80::8080 # a later event, to know "moved" was seen
cl_until 10 map_is e2e/marker:http/tcp/v4 "fe=10.96.40.2:80 be=" || why "marker Service not programmed"
ck_map e2e/moved:http/tcp/v4 - 1 && ck_unanswered "$CL_CLIENT" 10.96.40.1 80
verdict proxy-label-other-ignored

ctl svc e2e moved 10.96.40.1 http:80::8080
ck_map e2e/moved:http/tcp/v4 "10.96.40.1:80" "pod2:8080" &&
	ck_traffic http "$CL_CLIENT" 10.96.40.1 80 5 1 "pod2"
verdict proxy-label-removed-adopted

ctl svc e2e moved 10.96.40.1 http:80::8080 --label service.kubernetes.io/service-proxy-name=other
ck_map e2e/moved:http/tcp/v4 - && ck_unanswered "$CL_CLIENT" 10.96.40.1 80
verdict proxy-label-added-dropped

# ---- a daemon restart while the API server is down, then --proxy-name svcplane ---------
# The new daemon finds the pinned state and keeps it (traffic flows, no
# flush, not ready) until it has listed everything; then, with --proxy-name
# svcplane, only Services labelled svcplane stay.
adm down
kill -TERM "$SP_PID"
for _ in $(seq 30); do kill -0 "$SP_PID" 2>/dev/null || break; sleep 0.1; done
cl_kill_pid "$SP_PID"
if start_k8s_daemon --proxy-name svcplane; then
	sleep 0.5
	ck_map e2e/late:http/tcp/v4 "10.96.50.1:80" "pod4:8080" 1 &&
		ck_traffic http "$CL_CLIENT" 10.96.50.1 80 5 1 "pod4"
	snapshot_applied && why "a snapshot was applied with the API server down"
	sp_ready "$NODE" && why "svcplane status says ready before the first snapshot"
	h=$(healthz)
	[ "$h" = "503 not synced" ] || why "/healthz says '$h' before the first snapshot, expected '503 not synced'"
else
	why "svcplane --proxy-name svcplane did not start"
fi
verdict restart-with-api-down-keeps-state

adm up
if ! cl_until 15 snapshot_applied; then
	why "no snapshot applied by the daemon with --proxy-name"
elif ! cl_until 5 sp_ready "$NODE"; then
	why "svcplane status not ready after the first snapshot"
fi
ck_map e2e/late:http/tcp/v4 - && ck_unanswered "$CL_CLIENT" 10.96.50.1 80
ck_map e2e/moved:http/tcp/v4 - 1
verdict proxy-name-flag-ignores-unlabelled

ctl svc e2e moved 10.96.40.1 http:80::8080 --label service.kubernetes.io/service-proxy-name=svcplane
ck_map e2e/moved:http/tcp/v4 "10.96.40.1:80" "pod2:8080" &&
	ck_traffic http "$CL_CLIENT" 10.96.40.1 80 5 1 "pod2"
verdict proxy-name-flag-adopts-labelled

ctl svc e2e moved 10.96.40.1 http:80::8080
ck_map e2e/moved:http/tcp/v4 - && ck_unanswered "$CL_CLIENT" 10.96.40.1 80
verdict proxy-name-flag-label-removed

# ---- --k8s-api-server: the API server's address from the command line ----
# A kubeconfig whose server is a port nothing listens on, and the real
# address in --k8s-api-server: the daemon must reach the API through the
# flag (as a new node reaches the API server before the kubernetes
# Service's ClusterIP, which svcplane itself programs, works).
ctl svc e2e moved 10.96.40.1 http:80::8080 --label service.kubernetes.io/service-proxy-name=svcplane
ck_map e2e/moved:http/tcp/v4 "10.96.40.1:80" "pod2:8080" 10
kill -TERM "$SP_PID"
for _ in $(seq 30); do kill -0 "$SP_PID" 2>/dev/null || break; sleep 0.1; done
cl_kill_pid "$SP_PID"
real_server=$(awk '$1 == "server:" {print $2; exit}' "$KUBECONFIG_FILE")
# (kubeconfigs take https:// servers only)
sed 's#^\( *server: \).*#\1https://127.0.0.1:9#' "$KUBECONFIG_FILE" >"$APIDIR/kubeconfig-dead"
ctl svc e2e moved 10.96.40.2 http:80::8080 --label service.kubernetes.io/service-proxy-name=svcplane
if [ -z "$real_server" ]; then
	why "no server: line in $KUBECONFIG_FILE"
elif KUBECONFIG_FILE=$APIDIR/kubeconfig-dead start_k8s_daemon --proxy-name svcplane \
	--k8s-api-server "$real_server"; then
	cl_until 20 snapshot_applied || why "no snapshot applied through --k8s-api-server $real_server"
	# the change made while the daemon was down (a new clusterIP): read
	# through the flag, not kept from the pinned state
	ck_map e2e/moved:http/tcp/v4 "10.96.40.2:80" "pod2:8080" 10
	log_since "$DAEMON_FROM" '127\.0\.0\.1:9[^0-9]' && why "the daemon used the kubeconfig's dead server"
else
	why "the daemon did not start with --k8s-api-server"
fi
verdict k8s-api-server-flag

# docs/KUBERNETES.md: svcplane only reads the API (list, watch, get), never
# writes. The test API server refuses and counts every POST, PUT, PATCH and
# DELETE, over all the daemons of this script (its counters survive its
# restarts); it must also have seen the reads, or the count means nothing.
api_state=$(in_node curl -sS --max-time 15 "http://127.0.0.1:$ADMIN/state" 2>&1)
counts=$("$CL_PY" -c '
import json, sys
c = json.loads(sys.argv[1])["counters"]
reads = sum(v for k, v in c.items() if k.startswith(("list_", "watch_")))
writes = {k: v for k, v in c.items() if k.startswith("write")}
print(reads, c.get("writes", 0), json.dumps(writes))' "$api_state" 2>&1)
read -r n_reads n_writes writes_detail <<<"$counts"
if ! [[ $n_reads =~ ^[0-9]+$ ]]; then
	why "could not read the API server's counters: ${api_state:0:200} ${counts:0:200}"
elif [ "$n_reads" -eq 0 ]; then
	why "the API server counted no list or watch: the write count cannot tell"
elif [ "$n_writes" -ne 0 ]; then
	why "svcplane sent $n_writes write request(s) to the API: $writes_detail"
else
	note "the API server saw $n_reads lists and watches and no write"
fi
verdict never-writes-to-api
