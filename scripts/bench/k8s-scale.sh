#!/bin/bash
# Issue 4's scale figure: N Services (default 10,000) with E endpoints each
# (default 10), served by scripts/k8s-test-apiserver.py, listed (paginated)
# and programmed by `svcplane run --kubeconfig` in a network namespace.
#
#   scripts/bench/k8s-scale.sh [-n SERVICES] [-e ENDPOINTS] [-r RUNS] [-u] [-f]
#     -u  each Service also gets a UDP port (2N Service ports)
#     -f  the config file source instead (`svcplane run --config`): the same
#         Services in one YAML file, a change is the file replaced (rename)
#     -D K  a config directory instead (`svcplane run --config-dir`): files of
#         K Services each, a change is the one file with the changed Service
#         replaced (rename)
#
# Prints plain key=value lines on stdout (progress goes to stderr):
#   k8s_services, k8s_endpoints_per_service, k8s_service_ports
#   k8s_load_s                 posting the 2N objects to the test API server (not svcplane)
#   k8s_first_sync_s           `svcplane run` started (objects already in the API) ->
#                              the first full snapshot applied to the maps (the daemon's log)
#   k8s_ready_s                the same start -> `svcplane status` ready
#   k8s_list_and_apply_s       of which: daemon "running:" (programs loaded and attached) ->
#                              snapshot applied (list 2N objects in pages of 500, parse, apply)
#   k8s_first_apply_ms         the daemon's own time to apply that snapshot (resolve + maps)
#   k8s_bpf_load_ms            of the start: loading and verifying the BPF programs (its log)
#   k8s_endpoint_change_ms     median over RUNS of: one EndpointSlice change posted to the
#                              API -> the Service's sp_services value replaced in the
#                              pinned map (polled with bpf(2) every 0.5 ms), i.e. new flows
#                              use the new backend set (_min, _max alongside)
#   k8s_endpoint_change_apply_ms  median of the daemon's apply time for those changes
#   k8s_event_to_maps_ms       median of the same changes from the moment the API server
#                              wrote the watch event (its /sent admin endpoint) to the map:
#                              the daemon's whole part (read, parse, coalesce, apply)
#   k8s_daemon_rss_mib         the daemon's resident memory with everything programmed
#   k8s_daemon_peak_mib        its peak resident memory (VmHWM) so far
# With -f the keys start with file_, with -D dir_ (no _load_s, _list_and_apply_s).
#
# Everything runs in namespaces spk<PID>-{n,c} (a node with an uplink up0
# and a peer) and a private bpffs under /run/svcplane-k8s-scale-<PID>; all of
# it, the daemon and the API server are removed on every exit path. No
# packet leaves the namespaces (the endpoints are addresses only).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-build}
case $OUT in /*) ;; *) OUT="$ROOT/$OUT" ;; esac
SP_BIN=${SP_BIN:-$OUT/svcplane}
APISRV=$ROOT/scripts/k8s-test-apiserver.py
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

N=${K8S_SCALE_N:-10000}
E=${K8S_SCALE_E:-10}
RUNS=${K8S_SCALE_RUNS:-5}
UDP=0
SRC=k8s
PER_FILE=0
while getopts "n:e:r:ufD:h" o; do
	case $o in
	n) N=$OPTARG ;;
	e) E=$OPTARG ;;
	r) RUNS=$OPTARG ;;
	u) UDP=1 ;;
	f) SRC=file ;;
	D) SRC=dir PER_FILE=$OPTARG ;;
	*) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
	esac
done

say() { printf '%s\n' "$*" >&2; }
die() { say "k8s-scale: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (namespaces, BPF)"
[ -x "$SP_BIN" ] || die "no svcplane binary at $SP_BIN (run make)"
for t in "$PY" openssl curl ip; do
	command -v "$t" >/dev/null || die "$t is not installed (make deps)"
done
if ! [ "$N" -ge 1 ] 2>/dev/null || [ "$N" -gt 100000 ]; then die "-n must be 1..100000"; fi
if ! [ "$E" -ge 1 ] 2>/dev/null || [ "$E" -gt 100 ]; then die "-e must be 1..100"; fi

ID=$$
NS_N="spk$ID-n"
NS_C="spk$ID-c"
RUN="/run/svcplane-k8s-scale-$ID"
BPFFS="$RUN/bpffs"
PIN="$BPFFS/svcplane"
LOG="$RUN/svcplane.log"
API_PID=
SP_PID=

kill_pid() { # PID: TERM, up to 3 s, then KILL
	local i
	kill -0 "$1" 2>/dev/null || return 0
	kill -TERM "$1" 2>/dev/null
	for ((i = 0; i < 30; i++)); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	return 0
}
cleanup() {
	local ns pid
	[ -n "$SP_PID" ] && kill_pid "$SP_PID"
	[ -n "$API_PID" ] && kill_pid "$API_PID"
	for ns in "$NS_N" "$NS_C"; do
		# Anything else left in our namespaces was started by this script.
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	done
	if mountpoint -q "$BPFFS" 2>/dev/null; then
		umount "$BPFFS" 2>/dev/null || umount -l "$BPFFS" 2>/dev/null
	fi
	rm -rf "$RUN"
	rm -f "/run/svcplane/${PIN//\//_}.pid" # the daemon's lock file
}
trap cleanup EXIT
trap 'say "k8s-scale: interrupted"; exit 130' INT TERM

# ---- topology: a node namespace with an uplink, its peer --------------------------
mkdir -p "$BPFFS" || die "mkdir $BPFFS"
mount -t bpf bpf "$BPFFS" || die "mount bpffs on $BPFFS"
topo() {
	ip netns add "$NS_N" && ip netns add "$NS_C" &&
		ip -n "$NS_N" link set lo up && ip -n "$NS_C" link set lo up &&
		ip -n "$NS_N" link add up0 type veth peer name up0p netns "$NS_C" &&
		ip -n "$NS_N" addr add 192.168.78.1/24 dev up0 &&
		ip -n "$NS_C" addr add 192.168.78.2/24 dev up0p &&
		ip -n "$NS_N" link set up0 up && ip -n "$NS_C" link set up0p up
}
topo || die "setting up the namespaces failed"

# ---- objects -----------------------------------------------------------------------
say "k8s-scale: generating $N Services x $E endpoints"
"$PY" - "$N" "$E" "$UDP" "$RUN" "$SRC" "$PER_FILE" <<'EOF' || die "generating objects failed"
import json, os, sys
n, e, udp, d, src = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4], sys.argv[5]
per_file = int(sys.argv[6])

def ip4(base, i):
    return "%d.%d.%d.%d" % (base[0], base[1] + (i >> 16), (i >> 8) & 255, i & 255)

def svc(i):
    ports = [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}]
    if udp:
        ports.append({"name": "dns", "protocol": "UDP", "port": 53, "targetPort": 5353})
    ip = ip4((10, 96), i + 1)
    return {"kind": "Service", "apiVersion": "v1",
            "metadata": {"name": "svc-%05d" % i, "namespace": "bench"},
            "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip],
                     "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                     "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
                     "selector": {"app": "svc-%05d" % i}, "ports": ports},
            "status": {"loadBalancer": {}}}

def slc(i, first=None):
    addrs = [ip4((10, 128), i * e + k + 1) for k in range(e)]
    if first:
        addrs[0] = first
    ports = [{"name": "http", "protocol": "TCP", "port": 8080}]
    if udp:
        ports.append({"name": "dns", "protocol": "UDP", "port": 5353})
    return {"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
            "metadata": {"name": "svc-%05d-abcde" % i, "namespace": "bench",
                         "generateName": "svc-%05d-" % i,
                         "labels": {"kubernetes.io/service-name": "svc-%05d" % i,
                                    "endpointslice.kubernetes.io/managed-by":
                                        "endpointslice-controller.k8s.io"}},
            "addressType": "IPv4", "ports": ports,
            "endpoints": [{"addresses": [a], "nodeName": "bench-node",
                           "conditions": {"ready": True, "serving": True, "terminating": False}}
                          for a in addrs]}

node = {"kind": "Node", "apiVersion": "v1", "metadata": {"name": "bench-node"}, "spec": {},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.168.78.1"},
                                 {"type": "Hostname", "address": "bench-node"}]}}
def yaml_svc(i):  # the same Service and slice in the config file's shape (docs/CONFIG.md)
    o, ports = svc(i), []
    for p in o["spec"]["ports"]:
        ports.append("{name: %s, protocol: %s, port: %d, targetPort: %d}" %
                     (p["name"], p["protocol"], p["port"], p["targetPort"]))
    return "  - {name: %s, namespace: bench, clusterIPs: [%s], ports: [%s]}\n" % (
        o["metadata"]["name"], o["spec"]["clusterIP"], ", ".join(ports))

def yaml_slice(i, first=None):
    o = slc(i, first)
    ports = ", ".join("{name: %s, protocol: %s, port: %d}" % (p["name"], p["protocol"], p["port"])
                      for p in o["ports"])
    eps = ", ".join("{addresses: [%s], conditions: {ready: true}, nodeName: bench-node}" %
                    x["addresses"][0] for x in o["endpoints"])
    return ("  - {name: %s, namespace: bench, serviceName: svc-%05d, addressType: IPv4, "
            "ports: [%s], endpoints: [%s]}\n" % (o["metadata"]["name"], i, ports, eps))

c = n // 2
def config(path, changed, first=0, last=n):
    with open(path, "w") as f:
        f.write("services:\n")
        f.writelines(yaml_svc(i) for i in range(first, last))
        f.write("endpointSlices:\n")
        f.writelines(yaml_slice(i, "10.250.0.1" if i == changed else None)
                     for i in range(first, last))
if src == "file":
    config(d + "/config.yaml", -1)
    config(d + "/change.yaml", c)  # endpoint 0 of Service c replaced
    config(d + "/back.yaml", -1)
elif src == "dir":
    os.mkdir(d + "/cfg")
    for first in range(0, n, per_file):
        config(d + "/cfg/svc-%05d.yaml" % (first // per_file), -1, first, min(n, first + per_file))
    first = c // per_file * per_file  # the file of Service c
    config(d + "/change.yaml", c, first, min(n, first + per_file))
    config(d + "/back.yaml", -1, first, min(n, first + per_file))
    with open(d + "/changed-file", "w") as f:
        f.write("svc-%05d.yaml\n" % (c // per_file))
else:
    with open(d + "/objects.json", "w") as f:
        json.dump([node] + [svc(i) for i in range(n)] + [slc(i) for i in range(n)], f)
    with open(d + "/change.json", "w") as f:  # endpoint 0 of Service c replaced
        json.dump(slc(c, "10.250.0.1"), f)
    with open(d + "/back.json", "w") as f:
        json.dump(slc(c), f)
with open(d + "/target", "w") as f:
    f.write("bench/svc-%05d:http/tcp/v4 %s\n" % (c, ip4((10, 96), c + 1)))
EOF
read -r TARGET VIP <"$RUN/target"

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }
# The log line of an applied state, and how the daemon is started, per source.
if [ "$SRC" = file ]; then
	P=file
	APPLIED=' applied in '
	mkdir -p "$RUN/cfg" && cp "$RUN/config.yaml" "$RUN/cfg/svc.yaml" || die "copying the config failed"
	SRC_ARGS=(--config "$RUN/cfg/svc.yaml")
	CHANGED=svc.yaml
elif [ "$SRC" = dir ]; then
	P=dir
	APPLIED=' applied in '
	SRC_ARGS=(--config-dir "$RUN/cfg")
	read -r CHANGED <"$RUN/changed-file"
else
	P=k8s
	APPLIED='Kubernetes API snapshot applied'
	SRC_ARGS=(--kubeconfig "$RUN/api/kubeconfig")
	# Above the default capacities (65,536 Service ports, 262,144 backends,
	# 524,288 Maglev chunks): maps sized for N, with room for one table
	# switch per Service (docs/MAGLEV.md). M is the adaptive tier for E.
	if [ $((N * E)) -gt 200000 ] || [ "$N" -gt 30000 ]; then
		m=251
		for t in 1021 4093 16381 65537; do [ "$m" -ge $((E * 80)) ] || m=$t; done
		SRC_ARGS+=(--max-services $((2 * N + 64)) --max-backends $((2 * N * E + 64))
			--maglev-chunks $((2 * N * ((m * 2 + 63) / 64) + 4096)))
	fi
	# ---- the API server, in the node namespace ------------------------------------
	ip netns exec "$NS_N" "$PY" "$APISRV" serve --dir "$RUN/api" --bookmark-interval 5 \
		--history 1000 >"$RUN/apiserver.log" 2>&1 </dev/null &
	API_PID=$!
	for ((i = 0; i < 300; i++)); do
		[ -s "$RUN/api/ready" ] && break
		kill -0 "$API_PID" 2>/dev/null || break
		sleep 0.1
	done
	[ -s "$RUN/api/ready" ] || die "the test API server did not start: $(tail -3 "$RUN/apiserver.log")"
	ADMIN=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["admin_port"])' "$RUN/api/ready")
	t0=$(now)
	ip netns exec "$NS_N" curl -sf -o /dev/null --max-time 600 -X POST -H 'Content-Type: application/json' \
		--data-binary @"$RUN/objects.json" "http://127.0.0.1:$ADMIN/apply" ||
		die "posting the objects to the test API server failed"
	t1=$(now)
	say "k8s-scale: $((2 * N + 1)) objects in the API server ($(secs "$t0" "$t1") s)"
fi

# ---- first sync ------------------------------------------------------------------------
applied() { grep -q -e "$APPLIED" "$LOG" 2>/dev/null; }
# The daemon writes "ready" into its pid file once the first state is applied
# and the programs are attached (what `svcplane status` reads), polled every 10 ms.
PIDFILE="/run/svcplane/${PIN//\//_}.pid"
ready() { grep -qx ready "$PIDFILE" 2>/dev/null; }
t_start=$(now)
ip netns exec "$NS_N" "$SP_BIN" run --iface up0 --bpffs-dir "$PIN" "${SRC_ARGS[@]}" \
	--node-name bench-node >"$LOG" 2>&1 </dev/null &
SP_PID=$!
t_applied='' t_ready=''
for ((i = 0; i < 30000; i++)); do # 0.01 s steps: at most 5 minutes
	kill -0 "$SP_PID" 2>/dev/null || break
	if [ -z "$t_applied" ] && applied; then t_applied=$(now); fi
	if [ -n "$t_applied" ] && ready; then t_ready=$(now); break; fi
	sleep 0.01
done
if [ -z "$t_ready" ]; then
	say "k8s-scale: svcplane did not sync within 5 minutes; its log:"
	grep -v '^libbpf' "$LOG" | tail -15 >&2
	exit 1
fi
first_apply=$(grep -m1 -e "$APPLIED" "$LOG" | sed -n 's/.* applied in \([0-9.]*\) ms.*/\1/p')
say "k8s-scale: $(grep -m1 -e "$APPLIED" "$LOG")"
say "k8s-scale: $(grep -m1 -e ' info: ready: ' "$LOG" | sed 's/.* info: //')"
grep -q 'with errors' "$LOG" && say "k8s-scale: WARNING: the daemon reported errors: $(grep -m3 'error\|ENOSPC\|full' "$LOG" | tr '\n' ' ')"
# HH:MM:SS.mmm of the daemon's "running:" and first "applied" lines -> seconds between.
list_apply=$(grep -m1 -e ' info: running: ' "$LOG" | cut -d' ' -f1; grep -m1 -e "$APPLIED" "$LOG" | cut -d' ' -f1)
list_apply=$(printf '%s\n' "$list_apply" | awk -F: 'NF == 3 { t[++n] = $1 * 3600 + $2 * 60 + $3 }
	END { if (n == 2) { d = t[2] - t[1]; if (d < 0) d += 86400; printf "%.2f", d } }')
ports=$(grep -m1 -e "$APPLIED" "$LOG" | sed -n 's/.*: \([0-9]*\) Service port(s).*/\1/p')
want=$((N * (1 + UDP)))
[ "${ports:-0}" = "$want" ] || say "k8s-scale: WARNING: $ports Service port(s) programmed, expected $want"

# ---- one endpoint change -> the datapath -------------------------------------------------
# The poller (in the node namespace) reads the Service's sp_services value
# through bpf(2), posts the change to the admin port, and polls until the
# value is replaced (new Maglev region: new flows use the new backend set).
POLL_PY='
import ctypes, json, os, platform, socket, struct, sys, time, urllib.request
pin, admin, body, vip, port = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
NR = {"x86_64": 321, "aarch64": 280}.get(platform.machine(), 321)
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def bpf(cmd, attr):
    buf = ctypes.create_string_buffer(attr.ljust(128, b"\0"))
    r = libc.syscall(NR, cmd, buf, 128)
    if r < 0:
        raise OSError(ctypes.get_errno(), "bpf(%d)" % cmd)
    return r
path = ctypes.create_string_buffer((pin + "/sp_services").encode())
fd = bpf(7, struct.pack("=QII", ctypes.addressof(path), 0, 0))  # BPF_OBJ_GET
key = ctypes.create_string_buffer(socket.inet_aton(vip) + bytes(12) + struct.pack("!H", port) +
                                  bytes([6, 4]), 20)
val = ctypes.create_string_buffer(24)
lookup = struct.pack("=IIQQQ", fd, 0, ctypes.addressof(key), ctypes.addressof(val), 0)
def value():
    bpf(1, lookup)  # BPF_MAP_LOOKUP_ELEM
    return val.raw
before = value()
if admin.startswith("rename:"):  # the config file source: put the prepared file in place
    t0 = time.monotonic()
    os.rename(body, admin[len("rename:"):])
else:
    data = open(body, "rb").read()
    req = urllib.request.Request("http://127.0.0.1:%d/apply" % int(admin), data=data,
                                 method="POST", headers={"Content-Type": "application/json"})
    t0 = time.monotonic()
    rv = json.loads(urllib.request.urlopen(req, timeout=30).read())["rv"]
t_post = time.monotonic()
while time.monotonic() - t0 < 60:
    if value() != before:
        t1 = time.monotonic()
        ev = ""
        if not admin.startswith("rename:"):
            # When the API server wrote the watch event (time.monotonic() is
            # CLOCK_MONOTONIC in both processes): the part of the daemon alone.
            sent = json.loads(urllib.request.urlopen(
                "http://127.0.0.1:%d/sent?rv=%d" % (int(admin), rv), timeout=30).read())["sent"]
            ev = " event_ms=%.1f" % ((t1 - sent) * 1000)
        print("change_ms=%.1f post_ms=%.1f%s" % ((t1 - t0) * 1000, (t_post - t0) * 1000, ev))
        sys.exit(0)
    time.sleep(0.0005)
print("change_ms=timeout")
sys.exit(1)
'
# One change (BODY: change or back) and the time until it is in the map. The
# config file's replacement (or the directory's file) is written beforehand,
# then renamed into place.
poll_change() {
	if [ "$SRC" != k8s ]; then
		cp "$RUN/$1.yaml" "$RUN/cfg/.next.yaml" || return 1
		ip netns exec "$NS_N" "$PY" -c "$POLL_PY" "$PIN" "rename:$RUN/cfg/$CHANGED" \
			"$RUN/cfg/.next.yaml" "$VIP" 80
	else
		ip netns exec "$NS_N" "$PY" -c "$POLL_PY" "$PIN" "$ADMIN" "$RUN/$1.json" "$VIP" 80
	fi
}
sleep 1 # let the first sync settle (a late snapshot would count as the change)
changes=() applies=() events=()
for ((r = 0; r < RUNS; r++)); do
	for body in change back; do
		from=$(wc -l <"$LOG")
		out=$(poll_change "$body") ||
			die "run $r ($body): the change did not reach the map: $out"
		ms=$(printf '%s\n' "$out" | sed -n 's/.*change_ms=\([0-9.]*\).*/\1/p')
		# The daemon's own apply time for this change (its log line may follow the map write).
		for ((i = 0; i < 40; i++)); do
			a=$(tail -n "+$((from + 1))" "$LOG" | grep -m1 -e "$APPLIED" |
				sed -n 's/.* applied in \([0-9.]*\) ms.*/\1/p')
			[ -n "$a" ] && break
			sleep 0.05
		done
		[ "$body" = change ] && [ "$r" = 0 ] &&
			say "k8s-scale: $(tail -n "+$((from + 1))" "$LOG" | grep -m1 -e "$APPLIED")"
		say "k8s-scale: run $((r + 1)) $body: $out daemon_apply_ms=${a:-?}"
		changes+=("$ms")
		ev=$(printf '%s\n' "$out" | sed -n 's/.*event_ms=\([0-9.]*\).*/\1/p')
		[ -n "$ev" ] && events+=("$ev")
		[ -n "$a" ] && applies+=("$a")
		sleep 0.3
	done
done
# Sanity: the changed Service's Maglev table names the new backend after a "change".
poll_change change >/dev/null
if ! ip netns exec "$NS_N" "$SP_BIN" maglev --bpffs-dir "$PIN" "$TARGET" 2>/dev/null | grep -q '10\.250\.0\.1:8080'; then
	say "k8s-scale: WARNING: $TARGET does not show the new backend 10.250.0.1:8080"
fi

rss=$(awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$SP_PID/status" 2>/dev/null)
peak=$(awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$SP_PID/status" 2>/dev/null)
echo "${P}_services=$N"
echo "${P}_endpoints_per_service=$E"
echo "${P}_service_ports=${ports:-0}"
[ "$SRC" = k8s ] && echo "k8s_load_s=$(secs "$t0" "$t1")"
echo "${P}_first_sync_s=$(secs "$t_start" "$t_applied")"
echo "${P}_ready_s=$(secs "$t_start" "$t_ready")"
[ "$SRC" = k8s ] && echo "k8s_list_and_apply_s=${list_apply:-}"
echo "${P}_first_apply_ms=${first_apply:-}"
echo "${P}_bpf_load_ms=$(sed -n 's/.*BPF programs loaded and verified in \([0-9.]*\) ms.*/\1/p' "$LOG" | head -1)"
echo "${P}_endpoint_change_ms=$(printf '%s\n' "${changes[@]}" | median)"
echo "${P}_endpoint_change_ms_min=$(printf '%s\n' "${changes[@]}" | sort -n | head -1)"
echo "${P}_endpoint_change_ms_max=$(printf '%s\n' "${changes[@]}" | sort -n | tail -1)"
echo "${P}_endpoint_change_apply_ms=$(printf '%s\n' "${applies[@]}" | median)"
[ "$SRC" = k8s ] && echo "k8s_event_to_maps_ms=$(printf '%s\n' "${events[@]}" | median)"
echo "${P}_daemon_rss_mib=${rss:-}"
echo "${P}_daemon_peak_mib=${peak:-}"
