#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The Kubernetes client against scripts/k8s-test-apiserver.py on 127.0.0.1:
# paginated list, watch, bookmarks, 410 relist with changes made while
# disconnected, API server restart mid-watch, stalled and cut streams,
# malformed objects among good ones, 401, token rotation (in-cluster),
# client certificates and embedded CA data; 429 with Retry-After, 504 "Too
# large resource version" and transient 403s (the server's "fail").
#
# The driver is $OUT/tests/test_k8s_client in driver mode: it writes every
# snapshot it receives to a JSON file that the checks below poll (bounded).
# Prints one PASS:/FAIL:/SKIP: line per case. Everything runs on 127.0.0.1
# and is removed on exit.
set -u
OUT=${OUT:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SRV=$ROOT/scripts/k8s-test-apiserver.py
CLIENT=${K8S_CLIENT:-$ROOT/$OUT/tests/test_k8s_client}
# Debian's interpreter: a version manager's shim can cost a second per call.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

if [ ! -x "$CLIENT" ]; then
	echo "SKIP: test_k8s_watch: $CLIENT is not built"
	exit 0
fi
for c in openssl curl "$PY"; do
	if ! command -v "$c" >/dev/null; then
		echo "SKIP: test_k8s_watch: $c is not installed"
		exit 0
	fi
done

tmp=$(mktemp -d /tmp/test_k8s_watch.XXXXXX)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null
	done
	[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

failed=0
pass() { echo "PASS: test_k8s_watch: $1"; }
fail() {
	echo "FAIL: test_k8s_watch: $1"
	failed=1
}

# ---- the API server ----
"$PY" "$SRV" serve --dir "$tmp/srv" --bookmark-interval 0.5 >"$tmp/srv.log" 2>&1 &
pids+=($!)
for _ in $(seq 200); do
	[ -s "$tmp/srv/ready" ] && break
	sleep 0.1
done
if [ ! -s "$tmp/srv/ready" ]; then
	fail "test API server did not start"
	cat "$tmp/srv.log"
	exit 1
fi
ADMIN=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["admin_port"])' "$tmp/srv/ready")
API=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["api_port"])' "$tmp/srv/ready")

adm() { # VERB [JSON]
	curl -sf --max-time 15 -X POST -H 'Content-Type: application/json' -d "${2:-{\}}" \
		"http://127.0.0.1:$ADMIN/$1" >/dev/null
}
ctl() { "$PY" "$SRV" ctl "$ADMIN" "$@" >/dev/null; }
raw() { # apply a raw object (JSON text), unvalidated
	curl -sf --max-time 15 -X POST -H 'Content-Type: application/json' --data-binary "$1" \
		"http://127.0.0.1:$ADMIN/apply" >/dev/null
}

# start_client NAME [driver args...]: snapshots go to $tmp/NAME.json
start_client() {
	local name=$1
	shift
	"$CLIENT" --dump "$tmp/$name.json" --run-seconds 180 --idle-timeout 3 --backoff-max 800 \
		--min-sync 50 "$@" >"$tmp/$name.log" 2>&1 &
	pids+=($!)
	eval "PID_$name=$!"
}

# expect NAME TIMEOUT PYTHON-EXPR: poll the snapshot until EXPR holds.
# In EXPR: d (the snapshot), svc(key), eps(service_key) -> endpoint dicts,
# addrs(service_key) -> sorted ready addresses, st (stats), server() (admin state).
expect() {
	"$PY" - "$tmp/$1.json" "$2" "$3" "$ADMIN" <<'EOF'
import json, sys, time, urllib.request
path, timeout, expr, admin = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
def server():
    with urllib.request.urlopen("http://127.0.0.1:%s/state" % admin, timeout=5) as r:
        return json.load(r)
end = time.monotonic() + timeout
last = None
while True:
    try:
        with open(path) as f:
            d = json.load(f)
        svcs = {s["key"]: s for s in d["services"]}
        def svc(k): return svcs.get(k)
        def eps(k):
            ns = k.split("/")[0]
            return [e for s in d["slices"] if s["service"] == k.split("/")[1]
                    and s["key"].startswith(ns + "/") for e in s["endpoints"]]
        def addrs(k): return sorted(e["addr"] for e in eps(k) if e["ready"])
        st = d["stats"]
        if eval("(" + expr + ")"):
            sys.exit(0)
        last = "seq %d: %d services %s, stats %s" % (d["seq"], len(svcs), sorted(svcs), st)
    except (OSError, ValueError, KeyError) as e:
        last = repr(e)
    if time.monotonic() > end:
        sys.stderr.write("  expected: %s\n  last seen: %s\n" % (expr, last))
        sys.exit(1)
    time.sleep(0.1)
EOF
}

check() { # CASE NAME TIMEOUT EXPR
	if expect "$2" "$3" "$4"; then pass "$1"; else fail "$1"; fi
}

# ---- fixtures: 7 Services (pages of 3), slices, a node ----
for i in 1 2 3 4 5 6 7; do
	ctl svc default "web$i" "10.96.0.1$i" "http:80::8080"
done
ctl slice default web1-abc web1 10.244.1.1,10.244.1.2,10.244.1.3/notready http:8080 --node node-a
ctl slice default web2-abc web2 10.244.2.1 http:8080
ctl svc shop dual 10.96.1.1,fd00:96::1 http:80::http --type NodePort
ctl slice shop dual-v4 dual 10.244.3.1/terminating http:8080
ctl slice shop dual-v6 dual fd00:244::1 http:8080
ctl svc default mine 10.96.2.1 http:80 --label service.kubernetes.io/service-proxy-name=svcplane
raw '{"kind":"Service","metadata":{"name":"ext","namespace":"default"},"spec":{"type":"ExternalName","externalName":"db.example.com"}}'
raw '{"kind":"Service","metadata":{"name":"hl","namespace":"default"},"spec":{"clusterIP":"None","clusterIPs":["None"],"ports":[{"port":5432,"protocol":"TCP"}]}}'
ctl node node-a 192.168.50.10 fd00:50::10
ctl node node-b 192.168.50.11

start_client main --kubeconfig "$tmp/srv/kubeconfig" --node-name node-a --page-limit 3
check "initial paginated list" main 20 \
	'len(d["services"]) == 10 and svc("default/web7") and svc("shop/dual") and
	 server()["counters"].get("list_services", 0) >= 4'
check "ExternalName ignored, headless marked" main 5 \
	'svc("default/ext") is None and svc("default/hl")["headless"] and not svc("default/hl")["clusterIPs"]'
check "dual-stack Service and slices" main 5 \
	'svc("shop/dual")["clusterIPs"] == ["10.96.1.1", "fd00:96::1"] and svc("shop/dual")["type"] == "NodePort" and
	 sorted(e["addr"] for e in eps("shop/dual")) == ["10.244.3.1", "fd00:244::1"] and
	 [e for e in eps("shop/dual") if e["addr"] == "10.244.3.1"][0]["terminating"] and
	 svc("shop/dual")["ports"][0]["targetPortName"] == "http"'
check "conditions and nodeName" main 5 \
	'addrs("default/web1") == ["10.244.1.1", "10.244.1.2"] and eps("default/web1")[0]["node"] == "node-a"'
check "node addresses (this node only)" main 5 \
	'd["nodeAddrs"] == ["192.168.50.10", "fd00:50::10"] and d["nodeKnown"]'
check "proxy-name label" main 5 'svc("default/mine")["proxyName"] == "svcplane"'

# ---- watch ----
ctl svc default new1 10.96.3.1 dns:53:UDP
ctl slice default new1-x new1 10.244.9.1 dns:53:UDP
ctl slice default web1-abc web1 10.244.1.1,10.244.1.2,10.244.1.3,10.244.1.4 http:8080
ctl del Service default web7
check "watch: add, scale up, delete" main 10 \
	'svc("default/new1") and svc("default/new1")["ports"][0]["protocol"] == "UDP" and
	 addrs("default/web1") == ["10.244.1.1", "10.244.1.2", "10.244.1.3", "10.244.1.4"] and
	 svc("default/web7") is None'
ctl slice default web1-abc web1 10.244.1.1,10.244.1.2/terminating http:8080
check "watch: endpoint terminating, scale down" main 10 \
	'addrs("default/web1") == ["10.244.1.1"] and len(eps("default/web1")) == 2'
ctl svc default web3 10.96.0.13 http:80::8080 --type LoadBalancer --lb 198.51.100.3
check "watch: ClusterIP -> LoadBalancer" main 10 \
	'svc("default/web3")["type"] == "LoadBalancer" and svc("default/web3")["lbIPs"] == ["198.51.100.3"]'
ctl svc default web3 10.96.0.13 http:80::8080
check "watch: LoadBalancer -> ClusterIP" main 10 \
	'svc("default/web3")["type"] == "ClusterIP" and not svc("default/web3")["lbIPs"]'
# A slice moved to another Service: the view keeps a Service's slices
# together (model.h, sorted), so it must leave web2's place for web4's.
ctl slice default web2-abc web4 10.244.2.1 http:8080
check "watch: slice relabelled to another Service" main 10 \
	'not eps("default/web2") and addrs("default/web4") == ["10.244.2.1"] and
	 len([s for s in d["slices"] if s["key"] == "default/web2-abc"]) == 1'
ctl slice default web2-abc web2 10.244.2.1 http:8080
check "watch: slice relabelled back" main 10 \
	'not eps("default/web4") and addrs("default/web2") == ["10.244.2.1"] and
	 len([s for s in d["slices"] if s["key"] == "default/web2-abc"]) == 1'
ctl node node-a 192.168.50.10 192.168.50.20
check "watch: node addresses change" main 10 'd["nodeAddrs"] == ["192.168.50.10", "192.168.50.20"]'
check "bookmarks received" main 10 'st["bookmarks"] >= 1'

# ---- malformed objects among good ones ----
raw '{"kind":"Service","metadata":{"name":"bad1","namespace":"default"},"spec":{"clusterIP":"10.96.0.999","ports":[{"port":80}]}}'
raw '{"kind":"Service","metadata":{"name":"web2","namespace":"default"},"spec":{"clusterIP":"10.96.0.12","ports":[{"port":99999}]}}'
raw '{"kind":"EndpointSlice","metadata":{"name":"web2-abc","namespace":"default","labels":{"kubernetes.io/service-name":"web2"}},"addressType":"IPv4","ports":[{"name":"http","port":8080}],"endpoints":[{"addresses":["not-an-ip"]},{"addresses":["10.244.2.7"]}]}'
ctl svc default good1 10.96.4.1 http:80
# A bad Service is skipped whole (its last good version stays); a bad
# endpoint is skipped alone: the slice's other endpoints apply.
check "malformed objects skipped, last good state kept" main 10 \
	'svc("default/good1") and svc("default/bad1") is None and
	 svc("default/web2")["ports"][0]["port"] == 80 and addrs("default/web2") == ["10.244.2.7"] and
	 st["bad_objects"] >= 2'
if grep -q "default/bad1" "$tmp/main.log"; then
	pass "warning names the bad object"
else
	fail "warning names the bad object"
fi
if grep -q "EndpointSlice default/web2-abc: endpoints\[0\].addresses\[0\].*endpoint skipped" "$tmp/main.log"; then
	pass "warning names the skipped endpoint"
else
	fail "warning names the skipped endpoint"
fi
# Fix web2 again so later relists compare against a good object.
ctl svc default web2 10.96.0.12 http:80::8080
ctl slice default web2-abc web2 10.244.2.1 http:8080

# stat NAME: a counter from the main client's last snapshot.
stat() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["stats"][sys.argv[2]])' "$tmp/main.json" "$1"; }
# keys_now: the Services of the main client's last snapshot, sorted, comma-separated.
keys_now() { "$PY" -c 'import json,sys; print(",".join(sorted(s["key"] for s in json.load(open(sys.argv[1]))["services"])))' "$tmp/main.json"; }

# ---- 410 Gone: changes while disconnected, then a relist (never a flush) ----
relists_before=$(stat relists_gone)
updates_before=$(wc -l <"$tmp/main.json.log")
keys_before=$(keys_now)
adm down
sleep 0.5
ctl del Service default web4
ctl svc default offline1 10.96.5.1 http:80
ctl slice default web2-abc web2 10.244.2.1,10.244.2.2 http:8080
adm compact
adm up
check "410 Gone: relist applies changes made while disconnected" main 20 \
	'svc("default/web4") is None and svc("default/offline1") and
	 addrs("default/web2") == ["10.244.2.1", "10.244.2.2"] and st["relists_gone"] > '"$relists_before"
# Every snapshot since the disconnect holds exactly the Services before it
# or exactly those after the relist (web4 gone, offline1 added): none
# dropped, none half-way.
keys_after=$("$PY" -c 'import sys; k = set(sys.argv[1].split(",")) - {"default/web4"}; k.add("default/offline1"); print(",".join(sorted(k)))' "$keys_before")
if [[ ",$keys_before," != *",default/web4,"* ]] || [ "$(tr ',' '\n' <<<"$keys_before" | grep -c .)" -ne 11 ]; then
	fail "410 Gone: no snapshot dropped state during the relist"
	echo "  before the disconnect: expected 11 Services with default/web4, got: $keys_before" >&2
elif tail -n +"$((updates_before + 1))" "$tmp/main.json.log" | "$PY" -c '
import sys
ok = {tuple(sorted(a.split(","))) for a in sys.argv[1:3]}
bad = 0
for line in sys.stdin:
    keys = [f[5:] for f in line.split() if f.startswith("keys=")]
    got = tuple(sorted(keys[0].split(","))) if keys and keys[0] else ()
    if got not in ok:
        sys.stderr.write("  snapshot with other Services: %s" % line)
        bad = 1
sys.exit(bad)' "$keys_before" "$keys_after"; then
	pass "410 Gone: no snapshot dropped state during the relist"
else
	fail "410 Gone: no snapshot dropped state during the relist"
	echo "  want either $keys_before or $keys_after" >&2
fi

# ---- 410 as an HTTP status on the watch request ----
relists_before=$(stat relists_gone)
adm config '{"watch_gone_http": true}'
adm down
ctl svc default offline2 10.96.5.2 http:80
adm compact
adm up
check "410 as HTTP status: relist" main 20 \
	'svc("default/offline2") is not None and st["relists_gone"] > '"$relists_before"
adm config '{"watch_gone_http": false}'

# ---- API server restart mid-watch (no compaction: resume from the resourceVersion) ----
adm restart '{"down_ms": 1500}'
ctl svc default after-restart 10.96.6.1 http:80
check "API server restart mid-watch" main 20 'svc("default/after-restart") is not None'

# ---- a stream cut mid-event ----
# (the snapshot is fresh: it holds after-restart, delivered after the
# re-watch that followed the restart)
drops_before=$(stat watch_drops)
adm end-streams '{"abort": true}'
ctl svc default after-cut 10.96.6.2 http:80
check "stream cut mid-event: re-watch" main 15 \
	'svc("default/after-cut") is not None and st["watch_drops"] > '"$drops_before"

# ---- a stalled stream (no bytes, no bookmarks) ----
adm stall '{"on": true}'
ctl svc default after-stall 10.96.6.3 http:80
check "stalled stream detected, re-watched" main 20 'svc("default/after-stall") is not None'
adm stall '{"on": false}'

# ---- 401 without a token ----
start_client notoken --kubeconfig "$tmp/srv/kubeconfig-notoken"
for _ in $(seq 100); do
	grep -q "HTTP 401" "$tmp/notoken.log" && break
	sleep 0.1
done
if [ ! -e "$tmp/notoken.json" ] && grep -q "HTTP 401" "$tmp/notoken.log"; then
	pass "401 without a token: error logged, no snapshot"
else
	fail "401 without a token: error logged, no snapshot"
	cat "$tmp/notoken.log" >&2
fi
kill "$PID_notoken" 2>/dev/null

# ---- client certificate and embedded CA ----
start_client cert --kubeconfig "$tmp/srv/kubeconfig-cert"
check "client certificate (data) authenticates" cert 15 'svc("default/after-stall") is not None'
start_client cadata --kubeconfig "$tmp/srv/kubeconfig-cadata"
check "certificate-authority-data" cadata 15 'svc("default/after-stall") is not None'
kill "$PID_cert" "$PID_cadata" 2>/dev/null

# ---- in-cluster configuration with token rotation ----
mkdir -p "$tmp/sa"
cp "$tmp/srv/ca.crt" "$tmp/sa/ca.crt"
cp "$tmp/srv/token" "$tmp/sa/token"
KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT=$API start_client incluster --sa-dir "$tmp/sa"
check "in-cluster configuration" incluster 15 'svc("default/after-stall") is not None'
adm tokens '{"tokens": ["rotated-token"]}'
echo rotated-token >"$tmp/sa/token.new"
mv "$tmp/sa/token.new" "$tmp/sa/token"
adm end-streams
ctl svc default after-rotation 10.96.6.4 http:80
check "token file re-read after rotation" incluster 20 'svc("default/after-rotation") is not None'

# ---- the main client (old token) was refused meanwhile, then recovers ----
adm tokens '{"tokens": ["svcplane-test-token", "rotated-token"]}'
check "recovers after 401s without losing state" main 20 \
	'svc("default/after-rotation") is not None and svc("default/web1") is not None'

# ---- --min-sync-period: a change after a quiet period at once, a burst coalesced ----
# A client of its own with a 6 s interval. Counted in snapshots, not timed:
# the change after a quiet period must come well before an interval could
# have passed (it did not wait for one), and five changes made together
# within the interval come as one snapshot (one sync), not five.
start_client coal --kubeconfig "$tmp/srv/kubeconfig" --min-sync 6000
check "min-sync: first snapshot" coal 20 'svc("default/after-rotation") is not None'
sleep 6.5 # a quiet period longer than the interval
n0=$(wc -l <"$tmp/coal.json.log")
ctl svc default quiet1 10.96.7.1 http:80
check "min-sync: a change after a quiet period applies at once" coal 4 'svc("default/quiet1") is not None'
n1=$(wc -l <"$tmp/coal.json.log")
# The five in one request to the fake server (one after the other in its
# history, five watch events): five ctl runs could take longer than the
# interval on a loaded machine and then rightly make two snapshots.
burst=
for i in 1 2 3 4 5; do
	burst="$burst${burst:+,}{\"kind\":\"Service\",\"metadata\":{\"name\":\"burst$i\",\"namespace\":\"default\"},\"spec\":{\"clusterIP\":\"10.96.7.1$i\",\"ports\":[{\"name\":\"http\",\"port\":80}]}}"
done
raw "[$burst]"
check "min-sync: every change of the burst arrives" coal 20 \
	'all(svc("default/burst%d" % i) for i in range(1, 6))'
n2=$(wc -l <"$tmp/coal.json.log")
if [ "$n1" -eq $((n0 + 1)) ] && [ "$n2" -eq $((n1 + 1)) ]; then
	pass "min-sync: one snapshot for the change, one for the burst of five"
else
	fail "min-sync: one snapshot for the change, one for the burst of five"
	echo "  snapshots: $n0 before the change, $n1 after it, $n2 after the burst (want +1, +1)" >&2
	tail -n +"$((n0 + 1))" "$tmp/coal.json.log" | cut -c1-200 >&2
fi
kill "$PID_coal" 2>/dev/null

# ---- a cap on what one answer may cost: list pages over it are halved ----
# 4 KiB per answer (SP_K8S_MAX_VALUE is 64 MiB): a page of 64 Services is
# far over it, so the client lists again with smaller pages until they fit,
# and ends with every Service the main client has.
start_client capped --kubeconfig "$tmp/srv/kubeconfig" --page-limit 64 --max-value 4096
check "answer cap: smaller pages until they fit, every Service listed" capped 30 \
	"len(d['services']) == $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["services"]))' "$tmp/main.json")"
if grep -q "list services: a page of 64 objects is over 4096 bytes.*pages of 32" "$tmp/capped.log"; then
	pass "answer cap: the error says what and what next"
else
	fail "answer cap: the error says what and what next"
	tail -5 "$tmp/capped.log" >&2
fi
kill "$PID_capped" 2>/dev/null
# ---- answers kube-apiserver gives under load or while it starts ----
# Only the main client from here: the server's request log is then its own.
for c in notoken cert cadata incluster; do
	eval "p=\$PID_$c"
	kill "$p" 2>/dev/null
	wait "$p" 2>/dev/null
done
# after_fault CODE EXPR: the server's request log, r = the first faulted
# request answered CODE, nxt = the same resource's next request; EXPR must
# hold (bounded wait for nxt).
after_fault() {
	"$PY" - "$ADMIN" "$1" "$2" <<'EOF2'
import json, sys, time, urllib.request
admin, code, expr = sys.argv[1], int(sys.argv[2]), sys.argv[3]
end = time.monotonic() + 15
while True:
    with urllib.request.urlopen("http://127.0.0.1:%s/state" % admin, timeout=5) as r:
        reqs = json.load(r)["requests"]
    hit = [i for i, q in enumerate(reqs) if q[3] == code]
    if hit:
        r = reqs[hit[-1]]
        later = [q for q in reqs[hit[-1] + 1:] if q[2] == r[2]]
        if later:
            nxt = later[0]
            if eval(expr):
                sys.exit(0)
            sys.stderr.write("  after %s: next %s (%.2f s later)\n" % (r, nxt, nxt[0] - r[0]))
            sys.exit(1)
    if time.monotonic() > end:
        sys.stderr.write("  no request after the %d answer: %s\n" % (code, reqs[-6:]))
        sys.exit(1)
    time.sleep(0.1)
EOF2
}
# 429 with Retry-After: 1 (APF throttling): the next try waits for it (the
# test client's backoff cap, 800 ms, bounds the wait), where the backoff
# alone would come back after 125-250 ms.
adm fail '{"code": 429, "count": 1, "retry_after": 1, "watch_only": true}'
adm end-streams
if after_fault 429 'nxt[0] - r[0] >= 0.75'; then pass "429 Retry-After honoured"; else
	fail "429 Retry-After honoured"
fi
# 504 "Too large resource version": relist (a fresh consistent list), not
# the same watch again.
adm fail '{"code": 504, "count": 1, "watch_only": true}'
adm end-streams
if after_fault 504 'nxt[1] == "list"'; then pass "504 too large resource version: relist"; else
	fail "504 too large resource version: relist"
fi
# A couple of 403s (an API server whose RBAC cache is syncing): retried,
# logged as probably transient, not as a ClusterRole problem.
adm fail '{"code": 403, "count": 2, "watch_only": true}'
adm end-streams
ctl svc default after-403 10.96.6.5 http:80
if expect main 20 'svc("default/after-403") is not None' &&
	grep -q 'HTTP 403: .*retrying: an API server that is starting' "$tmp/main.log" &&
	! grep -q 'check the ClusterRole' "$tmp/main.log"; then
	pass "transient 403: retried, not reported as RBAC"
else
	fail "transient 403: retried, not reported as RBAC"
	grep 'HTTP 403' "$tmp/main.log" | head -3 >&2
fi

if [ $failed -ne 0 ]; then
	echo "--- server log" >&2
	tail -20 "$tmp/srv.log" >&2
	echo "--- main client log" >&2
	tail -30 "$tmp/main.log" >&2
fi
exit $failed
