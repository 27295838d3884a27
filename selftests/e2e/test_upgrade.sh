#!/bin/bash
# A rolling upgrade with real binaries, from an older version to this one,
# which keeps IPv4 and IPv6 flows in sp_ct4 and sp_ct6 with compact values
# (include/svcplane.h). The older version (UPGRADE_FROM in the Makefile)
# is either the last with a single conntrack table (sp_ct, d71be34) or the
# last with sp_ct4/sp_ct6 of 64-byte values (504ed1b), which this version
# moves aside to sp_ct4_v1/sp_ct6_v1 to pin its own tables under the names.
# The older daemon (SP_OLD_BIN, built by `make test-upgrade`) serves two
# long-lived TCP connections, an IPv4 one from outside to the LoadBalancer
# address (XDP) and an IPv6 one from a pod to the ClusterIP (TC); it stops
# (SIGTERM: the datapath stays), and this version's daemon starts over its
# pins. Both connections must go on with their replies reverse-NATed (a
# reply with the pod's address would reset them), their entries must be
# in the new tables, and the old tables unpinned once the new programs are
# in (user/dp.c sp_dp_ct_upgrade). Not in `make test`: it needs the older
# build (NOT_IN_GROUP in scripts/run-tests.sh); .ci/run runs it.
#
#   web  LoadBalancer 10.96.0.10 fd00:96::10 | LB 10.10.0.100
#        TCP 80->8080 (http), TCP 90->9090 (echo); endpoints pod1 pod2
. "$(dirname "$0")/lib.sh"

e2e_cases upgrade-old-daemon-runs upgrade-ipv4-stream-kept upgrade-ipv6-stream-kept \
	upgrade-server-push-reverse-nat upgrade-entries-in-new-tables upgrade-old-table-unpinned \
	upgrade-new-connections

if [ -z "${SP_OLD_BIN:-}" ] || [ ! -x "$SP_OLD_BIN" ]; then
	# Not a skip: run through `make test-upgrade`, which builds it.
	e2e_fail_rest "no older svcplane binary at SP_OLD_BIN='${SP_OLD_BIN:-}' (make test-upgrade builds it)"
	exit 1
fi

e2e_begin --pods 2
{
	cat <<EOF
services:
  - name: web
    namespace: demo
    type: LoadBalancer
    clusterIPs: [10.96.0.10, fd00:96::10]
    loadBalancerIPs: [10.10.0.100]
    ports:
      - {name: http, protocol: TCP, port: 80, targetPort: 8080}
      - {name: echo, protocol: TCP, port: 90, targetPort: 9090}
      - {name: push, protocol: TCP, port: 81, targetPort: 7081}
endpointSlices:
EOF
	yaml_slices demo web web '[{name: http, protocol: TCP, port: 8080}, {name: echo, protocol: TCP, port: 9090}, {name: push, protocol: TCP, port: 7081}]' \
		pod1 pod2
} | e2e_write_config

# A server that speaks first: on each connection it answers "ready", then
# says "push <pod>" once the file $1 exists, without being asked again. A
# stream's client talks first, and a client packet of a flow with no
# conntrack entry is adopted (a backend picked again, both entries made),
# which would hide lost entries; a reply that comes first needs the REV
# entry the older daemon made.
PUSH_PY='
import asyncio, os, sys
go, pod = sys.argv[1], sys.argv[2]
async def conn(r, w):
    try:
        await r.readline()
        w.write(b"ready\n")
        await w.drain()
        for _ in range(6000):  # 600 s at most
            if os.path.exists(go):
                break
            await asyncio.sleep(0.1)
        w.write(("push %s\n" % pod).encode())
        await w.drain()
        await r.read()
    except Exception:
        pass
    finally:
        w.close()
async def main():
    srv = await asyncio.start_server(conn, "0.0.0.0", 7081)
    async with srv:
        await srv.serve_forever()
asyncio.run(main())
'
# The client: connect, ask, read "ready" (printed), then wait up to 60 s
# for the push and print it, or what went wrong.
PUSH_CLIENT_PY='
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(b"hello\n")
f = s.makefile("rb")
print(f.readline().decode().strip(), flush=True)
s.settimeout(60)
try:
    print(f.readline().decode().strip() or "closed", flush=True)
except OSError as e:
    print("error %s" % e, flush=True)
'
for p in pod1 pod2; do
	cl_bg "${CL_POD_NS[$p]}" "$CL_TMP/$p-push.log" "$CL_PY" -c "$PUSH_PY" "$CL_TMP/push.go" "$p"
	cl_wait_listener "${CL_POD_NS[$p]}" tcp 7081 || e2e_abort "no push server in $p"
done
NEW_BIN=$SP_BIN
P1=${CL_POD_NS[pod1]}
WAIT=60
lines() { grep -c . "$1" 2>/dev/null; }

# ---- upgrade-old-daemon-runs ------------------------------------------------
SP_BIN=$SP_OLD_BIN
if ! e2e_start_daemon; then
	e2e_fail_rest "the older daemon ($SP_OLD_BIN) did not become ready"
	exit 1
fi
# value_size MAP: the value size of a pinned map, or nothing.
value_size() {
	ip netns exec "$E2E_NODE" bpftool -j map show pinned "$CL_PINDIR/$1" 2>/dev/null |
		"$CL_PY" -c 'import json, sys; print(json.load(sys.stdin).get("bytes_value", ""))' 2>/dev/null
}
# Which older layout the older daemon pinned, and the tables this version
# copies from (and must unpin).
if [ -e "$CL_PINDIR/sp_ct" ] && [ ! -e "$CL_PINDIR/sp_ct4" ]; then
	OLD_TABLES="sp_ct"
	pass upgrade-old-daemon-runs
elif [ ! -e "$CL_PINDIR/sp_ct" ] && [ "$(value_size sp_ct4)" = 64 ] && [ "$(value_size sp_ct6)" = 64 ]; then
	OLD_TABLES="sp_ct4_v1 sp_ct6_v1"
	pass upgrade-old-daemon-runs
else
	OLD_TABLES="sp_ct sp_ct4_v1 sp_ct6_v1"
	fail upgrade-old-daemon-runs "the older daemon should pin sp_ct, or sp_ct4 and sp_ct6 of 64-byte values: $(ls "$CL_PINDIR" | tr '\n' ' ') (sp_ct4: $(value_size sp_ct4) B)"
fi
note "the older daemon's conntrack: $OLD_TABLES"

# Two long-lived connections through the older datapath.
cl_stream_start "$CL_CLIENT" 10.10.0.100 90 "$CL_TMP/stream4"
cl_stream_start "$P1" fd00:96::10 90 "$CL_TMP/stream6"
cl_bg "$CL_CLIENT" "$CL_TMP/push.out" "$CL_PY" -c "$PUSH_CLIENT_PY" 10.10.0.100 81
cl_until $WAIT has_lines "$CL_TMP/stream4" 3
cl_until $WAIT has_lines "$CL_TMP/stream6" 3
cl_until $WAIT has_lines "$CL_TMP/push.out" 1
s4=$(lines "$CL_TMP/stream4") s6=$(lines "$CL_TMP/stream6")
note "streams through the older daemon: $s4 (IPv4) and $s6 (IPv6) replies"

# The older daemon goes (SIGTERM leaves the datapath), this one comes.
kill -TERM "$SP_PID"
wait "$SP_PID" 2>/dev/null
SP_BIN=$NEW_BIN
up=1
e2e_start_daemon || up=0

# ---- upgrade-ipv4-stream-kept, upgrade-ipv6-stream-kept ----------------------
# Each must go on after the new daemon is ready: 5 more replies on the
# same connection (socat ends the stream when the connection is reset,
# which a reply leaving with the pod's address, or a DNAT to another
# backend, would cause).
stream_case() { # CASE FILE BEFORE
	local n
	n=$(lines "$2")
	cl_until $WAIT has_lines "$2" $((n + 5))
	n=$(lines "$2")
	if [ $up = 0 ]; then
		fail "$1" "this version's daemon did not become ready"
	elif [ "$n" -lt $(($3 + 5)) ]; then
		fail "$1" "$((n - $3)) replies after the old daemon stopped, within $WAIT s (want 5; $(tail -c 200 "$2.err" 2>/dev/null))"
	else
		note "$1: $((n - $3)) more replies on the same connection"
		pass "$1"
	fi
}
stream_case upgrade-ipv4-stream-kept "$CL_TMP/stream4" "$s4"
stream_case upgrade-ipv6-stream-kept "$CL_TMP/stream6" "$s6"

# ---- upgrade-server-push-reverse-nat -------------------------------------------
# Only now may the server speak: its push is the connection's first packet
# through this version's datapath.
touch "$CL_TMP/push.go"
cl_until $WAIT has_lines "$CL_TMP/push.out" 2
push=$(tr '\n' ' ' <"$CL_TMP/push.out")
if [[ $push == "ready push pod"* ]]; then
	pass upgrade-server-push-reverse-nat
else
	fail upgrade-server-push-reverse-nat "the client got '${push:-nothing}' (want ready, then push from its pod)"
fi

# ---- upgrade-entries-in-new-tables -------------------------------------------
# The connections' FWD entries, read with bpftool: the IPv4 one in sp_ct4
# (no family field in its key), the IPv6 one in sp_ct6.
fwd_to_90() { # MAP: FWD entries of TCP flows to port 90, one per line
	ip netns exec "$E2E_NODE" bpftool -j map dump pinned "$CL_PINDIR/$1" 2>/dev/null |
		"$CL_PY" -c '
import json, sys
try:
    entries = json.load(sys.stdin)
except ValueError:
    sys.exit()
for e in entries:
    k = e.get("formatted", {}).get("key", {})
    if k.get("dir") == 0 and k.get("proto") == 6 and k.get("dport") in (90, 23040):
        print(json.dumps(k, sort_keys=True))'
}
f4=$(fwd_to_90 sp_ct4) f6=$(fwd_to_90 sp_ct6)
v4=$(value_size sp_ct4) v6=$(value_size sp_ct6)
if [ -n "$f4" ] && [ -n "$f6" ] && [ "$v4" = 32 ] && [ "$v6" = 56 ]; then
	pass upgrade-entries-in-new-tables
else
	fail upgrade-entries-in-new-tables "sp_ct4 (${v4:-?} B values, want 32): '${f4:-none}', sp_ct6 (${v6:-?} B, want 56): '${f6:-none}'"
fi

# ---- upgrade-old-table-unpinned ----------------------------------------------
left=""
for t in sp_ct sp_ct4_v1 sp_ct6_v1; do
	[ -e "$CL_PINDIR/$t" ] && left="$left $t"
done
copied=0
for t in $OLD_TABLES; do
	grep -q "/$t: [0-9]* conntrack entries copied into sp_ct4 and sp_ct6; unpinned" "$E2E_LOG" &&
		copied=$((copied + 1))
done
if [ -n "$left" ]; then
	fail upgrade-old-table-unpinned "still pinned after the new daemon attached:$left"
elif [ "$copied" != "$(echo $OLD_TABLES | wc -w)" ]; then
	fail upgrade-old-table-unpinned "the second copy logged for $copied of $OLD_TABLES: $(grep -m3 'conntrack entries copied' "$E2E_LOG")"
else
	note "$(grep 'conntrack entries copied' "$E2E_LOG" | sed 's/^/    | /')"
	pass upgrade-old-table-unpinned
fi

# ---- upgrade-new-connections --------------------------------------------------
e2e_http_n "$CL_CLIENT" 10.10.0.100 80 10
e2e_expect_all upgrade-new-connections 10 2 "pod1 pod2"
