#!/bin/bash
# soak.sh: connection integrity under load (issue 9), `make soak`. Not part
# of `make test`: it runs for minutes and loads both cores.
#
# In a namespace cluster (scripts/lib/cluster.sh) with svcplane on the node
# and a conntrack table sized to force pressure (--ct-size, default 16,384
# entries: 8,192 flows):
#  - churn: connbench opens new TCP connections to an LB address for
#    SOAK_SECONDS (default 240) with heavy client-port reuse (one source
#    address, the server closes first, so the client's kernel hands the same
#    ports out again within a second while the node's conntrack still holds
#    their closing flows). Every failed connection is an error.
#  - idle: SOAK_IDLE (default 1,000) long-lived connections to the same
#    address, opened before the churn, silent for SOAK_SILENCE seconds
#    (default 60, during the churn), then each server pushes one line
#    unasked; every one of them must arrive.
#  - un-NATed packets: an nftables counter in the client's namespace counts
#    every TCP packet arriving from a pod address (10.244.0.0/16) instead of
#    the LB address. It must stay 0.
# Ends with "N passed, N failed" over those three checks, and the figures.
set -u
cd "$(dirname "$0")/.."
REPO=$PWD
OUT=${OUT:-build}
SOAK_SECONDS=${SOAK_SECONDS:-240}
SOAK_IDLE=${SOAK_IDLE:-1000}
SOAK_SILENCE=${SOAK_SILENCE:-60}
SOAK_CT=${SOAK_CT:-16384}
VIP=10.10.0.190
# shellcheck source=lib/cluster.sh
. "$REPO/scripts/lib/cluster.sh"

[ "$(id -u)" = 0 ] || { echo "soak: needs root (network namespaces)" >&2; exit 2; }
TOOLS="$REPO/$OUT/tools"
for t in connbench echo_server; do
	[ -x "$TOOLS/$t" ] || { echo "soak: $TOOLS/$t missing (make)" >&2; exit 2; }
done
cl_install_traps
cl_find_bin || { echo "soak: no svcplane binary (make)" >&2; exit 2; }
cluster_up --pods 2 || exit 1
cl_client_route "$VIP" || exit 1
LOG="$CL_TMP/svcplane.log"
CONFIG="$CL_TMP/config.yaml"

# Backends: echo_server (one answer per connection, then it closes) on 7080,
# and a push server on 7081: each connection sends "wait S", and S seconds
# later gets "push <pod>" without asking again.
PUSH_PY='
import asyncio, sys
pod = sys.argv[1]
async def conn(r, w):
    try:
        line = await r.readline()
        s = float(line.split()[1])
        w.write(b"ready\n")
        await w.drain()
        await asyncio.sleep(s)
        w.write(("push %s\n" % pod).encode())
        await w.drain()
        await r.read()  # until the client closes
    except Exception:
        pass
    finally:
        w.close()
async def main():
    srv = await asyncio.start_server(conn, "0.0.0.0", 7081, backlog=4096)
    async with srv:
        await srv.serve_forever()
asyncio.run(main())
'
for p in pod1 pod2; do
	cl_bg "${CL_POD_NS[$p]}" "$CL_TMP/$p-echo.log" "$TOOLS/echo_server" --port 7080 --threads 1
	cl_bg "${CL_POD_NS[$p]}" "$CL_TMP/$p-push.log" "$CL_PY" -c "$PUSH_PY" "$p"
	cl_wait_listener "${CL_POD_NS[$p]}" tcp 7080 && cl_wait_listener "${CL_POD_NS[$p]}" tcp 7081 ||
		exit 1
done
for p in pod1 pod2; do in_pod "$p" sysctl -qw net.core.somaxconn=4096; done

cat >"$CONFIG" <<EOF
services:
  - name: soak
    namespace: demo
    type: LoadBalancer
    clusterIPs: [10.96.0.90]
    loadBalancerIPs: [$VIP]
    ports:
      - {name: echo, protocol: TCP, port: 80, targetPort: 7080}
      - {name: push, protocol: TCP, port: 81, targetPort: 7081}
endpointSlices:
  - name: soak-v4
    namespace: demo
    serviceName: soak
    addressType: IPv4
    ports: [{name: echo, protocol: TCP, port: 7080}, {name: push, protocol: TCP, port: 7081}]
    endpoints:
      - {addresses: [${CL_POD_V4[pod1]}], conditions: {ready: true}, nodeName: node-a}
      - {addresses: [${CL_POD_V4[pod2]}], conditions: {ready: true}, nodeName: node-a}
EOF
sp_start "${CL_NODES[0]}" "$LOG" --config "$CONFIG" --ct-size "$SOAK_CT"
sp_wait_ready "${CL_NODES[0]}" "$SP_PID" 20 "$LOG" 0 || { tail "$LOG"; exit 1; }

# The client's witness: TCP from a pod address means a reply lost its NAT.
in_client nft -f - <<EOF
table inet soak {
	chain in {
		type filter hook input priority 0;
		ip saddr 10.244.0.0/16 meta l4proto tcp counter
	}
}
EOF
unnated() { in_client nft list chain inet soak in | awk '/counter/ { for (i = 1; i <= NF; i++) if ($i == "packets") print $(i + 1) }'; }

# The idle connections: opened first, then silent while the churn runs.
IDLE_PY='
import selectors, socket, sys, time
vip, n, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
sel = selectors.DefaultSelector()
socks, opened = [], 0
for i in range(n):
    s = socket.socket()
    s.settimeout(10)
    try:
        s.connect((vip, 81))
        s.sendall(b"wait %f\n" % wait)
        if s.recv(6) != b"ready\n":
            raise OSError("no ready")
    except OSError as e:
        print("open error", e, flush=True)
        continue
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
    socks.append(s)
print("opened %d" % len(socks), flush=True)
got, deadline = 0, time.monotonic() + wait + 120
buf = {}
while got < len(socks) and time.monotonic() < deadline:
    for key, _ in sel.select(timeout=5):
        try:
            d = key.fileobj.recv(100)
        except OSError:
            d = b""
        if d.startswith(b"push"):
            got += 1
        sel.unregister(key.fileobj)
print("pushed %d of %d" % (got, len(socks)), flush=True)
'
in_client "$CL_PY" -c "$IDLE_PY" "$VIP" "$SOAK_IDLE" "$SOAK_SILENCE" >"$CL_TMP/idle.out" 2>&1 &
IDLE_PID=$!
CL_BG_PIDS+=("$IDLE_PID")
for ((i = 0; i < 600; i++)); do
	grep -q '^opened' "$CL_TMP/idle.out" 2>/dev/null && break
	sleep 0.2
done
echo "soak: $(grep '^opened' "$CL_TMP/idle.out" || echo 'idle connections not opened')"

echo "soak: churn for $SOAK_SECONDS s, conntrack $SOAK_CT entries ..."
churn=$(in_client "$TOOLS/connbench" --addr "$VIP" --port 80 --threads 2 \
	--duration "$SOAK_SECONDS" --timeout 5 2>"$CL_TMP/connbench.err")
echo "soak: connbench: $churn"
wait "$IDLE_PID"
idle=$(grep '^pushed' "$CL_TMP/idle.out")
echo "soak: idle: ${idle:-no result}"
echo "soak: conntrack: $(sp "${CL_NODES[0]}" status | grep '^conntrack')"
sp "${CL_NODES[0]}" stats | grep -E '^(new_flows|ct_partner_miss|ct_adopted|ct_insert_fail) ' |
	sed 's/^/soak:   /'
sp "${CL_NODES[0]}" stats | sed -n '/^REASON/,$p' | sed 's/^/soak:   /'

pass=0 failed=0
res() { if [ "$1" = ok ]; then echo "PASS: soak/$2"; pass=$((pass + 1)); else echo "FAIL: soak/$2: $3"; failed=$((failed + 1)); fi; }
conns=$(echo "$churn" | sed -n 's/.*conns=\([0-9]*\).*/\1/p')
errs=$(echo "$churn" | sed -n 's/.*errors=\([0-9]*\).*/\1/p')
if [ -n "$conns" ] && [ "${conns:-0}" -gt 0 ] && [ "${errs:-1}" -eq 0 ]; then
	res ok churn-no-failed-connection
else
	res bad churn-no-failed-connection "$churn $(head -3 "$CL_TMP/connbench.err")"
fi
opened=$(sed -n 's/^opened \([0-9]*\)/\1/p' "$CL_TMP/idle.out")
if [[ $idle == "pushed $SOAK_IDLE of $SOAK_IDLE" ]] && [ "${opened:-0}" -eq "$SOAK_IDLE" ]; then
	res ok idle-connections-get-pushed-data
else
	res bad idle-connections-get-pushed-data "${idle:-none} (opened ${opened:-0})"
fi
u=$(unnated)
if [ "${u:-x}" = 0 ]; then res ok no-unnated-packet; else res bad no-unnated-packet "${u:-?} TCP packets from pod addresses reached the client"; fi
echo "$pass passed, $failed failed"
[ $failed -eq 0 ]
