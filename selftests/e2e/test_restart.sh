#!/bin/bash
# The daemon may die or be restarted at any time without dropping traffic:
# programs stay attached and maps stay pinned while it is away, and a new
# daemon picks them up without flushing conntrack: it swaps its programs
# into the pinned XDP link and the TC filters in place, and rewrites
# nothing in the maps for an unchanged config (all read with bpftool and
# tc, not with svcplane). Then `svcplane detach` must remove everything:
# no program on any interface, no pin.
#
#   web  LoadBalancer 10.96.0.10 fd00:96::10 | LB 10.10.0.100 fd00:10::100
#        TCP 80->8080 (http), TCP 90->9090 (echo); endpoints pod1 pod2 pod3
. "$(dirname "$0")/lib.sh"

e2e_cases old-maglev-pin-reused old-counters-pin-recreated old-backends-hash-migrated kill9-loop-lb-ipv4 kill9-loop-clusterip-ipv6 kill9-long-lived-connection \
	conntrack-kept-across-restart restart-xdp-link-updated restart-tc-replaced-in-place \
	restart-rewrites-nothing sigterm-keeps-datapath \
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
# An upgrade: sp_maglev pinned by a version before it was mmapable
# (bpf/maps.h). The daemon must take the pin as it is (libbpf refuses a
# pin whose flags differ) and write its tables with bpf(2), so every case
# below also runs on that fallback. And sp_stats pinned by a version with
# other counters: created anew (user/dp.c reconcile_pin). And sp_backends
# pinned as the hash it was before it became an array, with one backend
# (id 7, 10.1.2.3:8080): moved aside, copied into the new array, unpinned
# (user/dp.c backends_hash_aside).
mkdir -p "$CL_PINDIR" &&
	bpftool map create "$CL_PINDIR/sp_maglev" type array key 4 value 64 entries 524288 \
		name sp_maglev &&
	bpftool map create "$CL_PINDIR/sp_stats" type percpu_array key 4 value 8 entries 4 \
		name sp_stats &&
	bpftool map create "$CL_PINDIR/sp_backends" type hash key 4 value 20 entries 262144 \
		name sp_backends flags 1 &&
	bpftool map update pinned "$CL_PINDIR/sp_backends" key 7 0 0 0 \
		value 10 1 2 3 0 0 0 0 0 0 0 0 0 0 0 0 0x1f 0x90 4 0 ||
	e2e_abort "could not pin an old-style sp_maglev, sp_stats and sp_backends"
e2e_start_daemon || e2e_abort "svcplane did not become ready"
NODE=$E2E_NODE
P1=${CL_POD_NS[pod1]}

# ---- old-maglev-pin-reused --------------------------------------------------
flags=$(bpftool -j map show pinned "$CL_PINDIR/sp_maglev" 2>&1)
if ! grep -q 'sp_maglev: the pinned map lacks flags 0x400: kept as it is' "$E2E_LOG"; then
	fail old-maglev-pin-reused "the daemon did not say it kept the old pin: $(grep -m2 -i maglev "$E2E_LOG")"
elif ! grep -q '"flags":0\b' <<<"$flags"; then
	fail old-maglev-pin-reused "the pinned sp_maglev is not the old one: $flags"
else
	e2e_http_n "$CL_CLIENT" 10.10.0.100 80 20
	e2e_expect_all old-maglev-pin-reused 20 3 "pod1 pod2 pod3"
fi
stats=$(bpftool -j map show pinned "$CL_PINDIR/sp_stats" 2>&1)
if ! grep -q 'sp_stats: pinned by another version (value 8 B x 4, now' "$E2E_LOG"; then
	fail old-counters-pin-recreated "the daemon did not say it replaced the old sp_stats: $(grep -m2 sp_stats "$E2E_LOG")"
elif grep -q '"bytes_value":8,' <<<"$stats"; then
	fail old-counters-pin-recreated "the old sp_stats is still pinned: $stats"
elif ! sp "$NODE" stats 2>&1 | grep -q .; then
	fail old-counters-pin-recreated "svcplane stats reads nothing"
else
	pass old-counters-pin-recreated
fi

# ---- old-backends-hash-migrated --------------------------------------------
bes=$(bpftool -j map show pinned "$CL_PINDIR/sp_backends" 2>&1)
if ! grep -q 'sp_backends: a hash pinned by an older version' "$E2E_LOG" ||
	! grep -q 'sp_backends: 1 backends copied' "$E2E_LOG"; then
	fail old-backends-hash-migrated "the daemon did not say it copied the old hash: $(grep -m3 sp_backends "$E2E_LOG")"
elif ! grep -q '"type":"array"' <<<"$bes"; then
	fail old-backends-hash-migrated "the pinned sp_backends is not an array: $bes"
elif [ -e "$CL_PINDIR/sp_backends_old_hash" ]; then
	fail old-backends-hash-migrated "the old hash is still pinned aside"
else
	e2e_http_n "$CL_CLIENT" 10.96.0.10 80 20
	e2e_expect_all old-backends-hash-migrated 20 3 "pod1 pod2 pod3"
fi

# ct_entries_for_port PORT FRONTEND_PORT: the two IPv4 TCP conntrack entries
# (from the pinned sp_ct4 map, IPv4's table, read with bpftool, not with svcplane) of the
# flow from client port PORT to a frontend on FRONTEND_PORT: FWD with those
# ports, REV to PORT restoring FRONTEND_PORT. One line each: the key, then
# what must not change while the flow lives: its NAT, backend, Service and
# creation time. A flushed and refilled entry (the flow adopted mid-stream)
# has a new `created`. Both ports are needed: the request loops' flows from
# the same client may use PORT too (once they did, and four entries
# matched). Prints "ERR ..." if the map cannot be read.
ct_entries_for_port() {
	ip netns exec "$NODE" bpftool -j map dump pinned "$CL_PINDIR/sp_ct4" 2>/dev/null |
		"$CL_PY" -c '
import json, sys
def be16(p):  # a __be16 as bpftool shows it: a host-order number, either way round
    return {p, ((p & 0xff) << 8) | (p >> 8)}
want, front = be16(int(sys.argv[1])), be16(int(sys.argv[2]))
try:
    entries = json.load(sys.stdin)
except ValueError:
    print("ERR cannot read sp_ct4"); sys.exit()
def flat(d):
    # The header of the value is an anonymous union (SP_CT_HDR_FIELDS in
    # include/svcplane.h), which bpftool shows as a nested object: its
    # fields are those of the value itself.
    out = {}
    for n, x in d.items():
        if isinstance(x, dict) and n not in ("nat_addr", "nat_saddr"):
            for n2, x2 in flat(x).items():
                out.setdefault(n2, x2)
        else:
            out[n] = x
    return out
out = []
for e in entries:
    k = e.get("formatted", {}).get("key", {})
    v = flat(e.get("formatted", {}).get("value", {}))
    # The connection is TCP: another protocol may use the same port
    # number. (IPv6 flows, which once matched too, are in sp_ct6.)
    if k.get("proto") != 6:
        continue
    fwd = k.get("dir") == 0 and k.get("sport") in want and k.get("dport") in front
    rev = k.get("dir") == 1 and k.get("dport") in want and v.get("nat_port") in front
    if fwd or rev:
        keep = {f: v.get(f) for f in ("nat_addr", "nat_saddr", "nat_port", "nat_sport",
                                       "backend_id", "svc_id", "created")}
        out.append(json.dumps(k, sort_keys=True) + " -> " + json.dumps(keep, sort_keys=True))
for l in sorted(out):
    print(l)' "$1" "$2"
}
n_entries() { grep -c ' -> ' <<<"$1"; }

# svc_packets: "SVC_ID PACKETS" per Service in sp_svc_meta, its packet
# counter in sp_svc_stats summed over CPUs (bpftool, one lookup per id).
# A Service the daemon writes again as new starts from zeroed counters, so
# a counter that goes down across a restart means a rewrite that leaves
# the other maps looking the same.
svc_packets() {
	ip netns exec "$NODE" "$CL_PY" - "$CL_PINDIR" <<'PY'
import json, subprocess, sys
d = sys.argv[1]
def bt(*a):
    return json.loads(subprocess.run(["bpftool", "-j"] + list(a), capture_output=True,
                                     text=True).stdout or "null")
for e in bt("map", "dump", "pinned", d + "/sp_svc_meta") or []:
    i = e["formatted"]["key"] if "formatted" in e else int(e["key"][0], 16)
    v = bt("map", "lookup", "pinned", d + "/sp_svc_stats", "key",
           *[str((i >> s) & 0xff) for s in (0, 8, 16, 24)])
    vals = (v or {}).get("formatted", {}).get("values") or []
    print(i, sum(c.get("value", {}).get("packets", 0) for c in vals))
PY
}

# attach_snapshot: what is attached on the node, read with bpftool and tc
# (not with svcplane), one sorted line per attachment point:
#   xdp PIN link=ID prog=ID        a pinned XDP link (bpftool link show pinned)
#   tc DEV DIR pref=P handle=H prog=ID   a TC filter (tc -j filter show)
attach_snapshot() {
	local f ifc dir
	for f in "$CL_PINDIR"/links/xdp_*; do
		[ -e "$f" ] || continue
		ip netns exec "$NODE" bpftool -j link show pinned "$f" 2>/dev/null |
			"$CL_PY" -c '
import json, sys
try:
    l = json.load(sys.stdin)
except ValueError:
    l = {}
print("xdp %s link=%s prog=%s" % (sys.argv[1], l.get("id"), l.get("prog_id")))' "$(basename "$f")"
	done
	for ifc in $(ip -n "$NODE" -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -v '^lo$'); do
		for dir in ingress egress; do
			tc -n "$NODE" -j filter show dev "$ifc" "$dir" 2>/dev/null | "$CL_PY" -c '
import json, sys
try:
    fs = json.load(sys.stdin)
except ValueError:
    fs = []
for f in fs:
    o = f.get("options") or {}
    if "handle" not in o:
        continue  # the per-priority header line
    print("tc %s %s pref=%s handle=%s prog=%s" % (sys.argv[1], sys.argv[2], f.get("pref"),
          o.get("handle"), (o.get("prog") or {}).get("id")))' "$ifc" "$dir"
		done
	done | sort
}

# prog_ids_of PID: the ids of the BPF programs process PID holds open (from
# /proc/PID/fdinfo: a program's fd shows "prog_id:"), space-separated.
prog_ids_of() {
	grep -h '^prog_id:' /proc/"$1"/fdinfo/* 2>/dev/null | awk '{print $2}' | sort -u | tr '\n' ' '
}

# compare_attach BEFORE AFTER NEW-PROGS KIND: every KIND (xdp, tc) attachment
# point of BEFORE is still there with the same link id (xdp) or pref and
# handle (tc), and now runs a program of NEW-PROGS (the new daemon's) that
# is not the one it ran before. Prints what is wrong; nothing if all is well.
compare_attach() {
	"$CL_PY" - "$1" "$2" "$3" "$4" <<'PY'
import sys
before, after, new, kind = sys.argv[1], sys.argv[2], set(sys.argv[3].split()), sys.argv[4]
def parse(text):
    d = {}
    for line in text.splitlines():
        w = line.split()
        if not w or w[0] != kind:
            continue
        f = dict(x.split("=", 1) for x in w if "=" in x)
        place = " ".join(x for x in w[1:] if "=" not in x)
        d[place] = f
    return d
b, a = parse(before), parse(after)
errs = []
if not b:
    errs.append("no %s attachment seen before the restart: the check cannot tell" % kind)
for place, f in sorted(b.items()):
    g = a.get(place)
    if g is None:
        errs.append("%s: gone after the restart" % place)
        continue
    for k in ("link", "pref", "handle"):
        if k in f and f[k] != g.get(k):
            errs.append("%s: %s %s before, %s after (re-created, not updated in place)" %
                        (place, k, f[k], g.get(k)))
    if g.get("prog") == f.get("prog"):
        errs.append("%s: still runs the old daemon's program %s" % (place, f.get("prog")))
    elif g.get("prog") not in new:
        errs.append("%s: runs program %s, not one of the new daemon's (%s)" %
                    (place, g.get("prog"), " ".join(sorted(new))))
for place in sorted(set(a) - set(b)):
    errs.append("%s: appeared after the restart" % place)
print("; ".join(errs))
PY
}


# A stream and two request loops run through the kill and the restart.
# Nothing here counts what happened within a fixed time: each phase waits
# (up to WAIT s) for a number of requests to have been made, so a slow
# machine only takes longer.
WAIT=60
STREAM_PORT=90
cl_stream_start "$CL_CLIENT" 10.10.0.100 "$STREAM_PORT" "$CL_TMP/stream"
STREAM_PID=$CL_STREAM_PID
cl_loop_start "$CL_CLIENT" 10.10.0.100 80 "$CL_TMP/loop4"
LOOP4=$CL_LOOP_PID
cl_loop_start "$P1" fd00:96::10 80 "$CL_TMP/loop6"
LOOP6=$CL_LOOP_PID
cl_until $WAIT has_lines "$CL_TMP/stream" 3
BACKEND=$(head -1 "$CL_TMP/stream" | cut -d' ' -f1)
sport=$(in_client ss -Htn state established dst 10.10.0.100 dport = :$STREAM_PORT | awk '{print $3}' | head -1)
sport=${sport##*:}
ct_before=$(ct_entries_for_port "${sport:-0}" "$STREAM_PORT")
note "long-lived connection from port ${sport:-?} is on ${BACKEND:-nothing}; $(n_entries "$ct_before") conntrack entries for it"

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
# What the first daemon attached and wrote, to compare after the restart.
old_pid=$SP_PID
attach_before=$(attach_snapshot)
maps_before=$(e2e_maps_dump)
pkts_before=$(svc_packets)
# A TC filter deleted and added again ends up looking the same as one
# replaced in place; the netlink events tell them apart.
cl_bg "$NODE" "$CL_TMP/tcmon" tc monitor
TCMON_PID=$CL_LAST_PID
kill -KILL "$SP_PID"
wait "$SP_PID" 2>/dev/null
k4=$(lines "$CL_TMP/loop4") k6=$(lines "$CL_TMP/loop6") ks=$(lines "$CL_TMP/stream")
note "killed svcplane (-9) after $k4 + $k6 requests; waiting for $LOOP_MIN more per loop without a daemon"
grown "$CL_TMP/loop4" "$k4" $LOOP_MIN "requests with no daemon"
grown "$CL_TMP/loop6" "$k6" $LOOP_MIN "requests with no daemon"
grown "$CL_TMP/stream" "$ks" 3 "stream replies with no daemon"
ct_down=$(ct_entries_for_port "${sport:-0}" "$STREAM_PORT")
restart_ok=1
e2e_start_daemon || restart_ok=0
ct_after=$(ct_entries_for_port "${sport:-0}" "$STREAM_PORT")
attach_after=$(attach_snapshot)
maps_after=$(e2e_maps_dump)
pkts_after=$(svc_packets)
new_progs=$(prog_ids_of "$SP_PID")
old_progs_seen=""
[ "$SP_PID" != "$old_pid" ] || old_progs_seen="(the same daemon?)"
kill -TERM "$TCMON_PID" 2>/dev/null
wait "$TCMON_PID" 2>/dev/null
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

# The long-lived connection's two entries must be the same objects after
# the restart: same key, NAT, backend and creation time. A flush would let
# the live stream refill them (adopted mid-stream, with a new `created`),
# so counting entries could not tell.
if [ -z "$sport" ] || [ "$(n_entries "$ct_before")" -ne 2 ] || [[ $ct_before == ERR* ]]; then
	fail conntrack-kept-across-restart "could not find the connection's 2 entries in sp_ct4 (port '${sport}'): ${ct_before:-none}"
elif [ $restart_ok = 0 ]; then
	fail conntrack-kept-across-restart "svcplane did not come back after kill -9"
elif [ "$ct_down" != "$ct_before" ] || [ "$ct_after" != "$ct_before" ]; then
	fail conntrack-kept-across-restart "the connection's entries changed; before kill -9: ${ct_before//$'\n'/ | }; while down: ${ct_down//$'\n'/ | }; after restart: ${ct_after//$'\n'/ | }"
else
	note "conntrack: the connection's 2 entries (created $(grep -o '"created": [0-9]*' <<<"$ct_before" | head -1 | cut -d" " -f2)) unchanged across the restart"
	pass conntrack-kept-across-restart
fi

# The new daemon swaps its programs in: the pinned XDP link is the same
# link (same id) running the new daemon's program, and each TC filter
# keeps its priority and handle with the new program in it, replaced
# without a delete (tc monitor saw no "deleted filter").
if [ $restart_ok = 0 ]; then
	fail restart-xdp-link-updated "svcplane did not come back after kill -9"
	fail restart-tc-replaced-in-place "svcplane did not come back after kill -9"
else
	note "attached before: ${attach_before//$'\n'/ | }"
	note "attached after:  ${attach_after//$'\n'/ | }; new daemon's programs: $new_progs $old_progs_seen"
	why=$(compare_attach "$attach_before" "$attach_after" "$new_progs" xdp)
	check restart-xdp-link-updated "$why" test -z "$why"
	why=$(compare_attach "$attach_before" "$attach_after" "$new_progs" tc)
	deleted=$(grep -c '^deleted filter' "$CL_TMP/tcmon" 2>/dev/null)
	if [ "${deleted:-0}" -gt 0 ]; then
		why+="${why:+; }tc monitor saw $deleted filter deletion(s) during the restart: $(grep -m1 '^deleted filter' "$CL_TMP/tcmon")"
	fi
	check restart-tc-replaced-in-place "$why" test -z "$why"
fi

# An unchanged config rewrites nothing: every map the config writes holds
# exactly what it held under the first daemon (bpftool's dumps compared),
# and no Service's packet counter went back (a Service written again as
# new, even with the same values, gets zeroed counters).
pkts_went_back=$("$CL_PY" -c '
import sys
b = dict(l.split() for l in sys.argv[1].splitlines() if l.strip())
a = dict(l.split() for l in sys.argv[2].splitlines() if l.strip())
print(" ".join("svc %s: %s -> %s packets" % (i, b[i], a.get(i)) for i in sorted(b)
               if a.get(i) is None or int(a[i]) < int(b[i])))' "$pkts_before" "$pkts_after")
if [ $restart_ok = 0 ]; then
	fail restart-rewrites-nothing "svcplane did not come back after kill -9"
elif [ "$(grep -c . <<<"$maps_before")" -le "$(wc -w <<<"$E2E_CONFIG_MAPS")" ] || [[ $maps_before == *ERR* ]]; then
	fail restart-rewrites-nothing "the maps could not be read before the restart: ${maps_before:0:300}"
elif [ -z "$pkts_before" ] || [ -z "$(awk '$2 > 0' <<<"$pkts_before")" ]; then
	fail restart-rewrites-nothing "no Service counted packets before the restart: the check cannot tell ($pkts_before)"
elif [ -n "$pkts_went_back" ]; then
	fail restart-rewrites-nothing "per-Service counters went back across the restart (the Service was written again): $pkts_went_back"
elif [ "$maps_before" != "$maps_after" ]; then
	fail restart-rewrites-nothing "maps changed across the restart: $(e2e_maps_diff "$maps_before" "$maps_after")"
else
	note "$(grep -vc '^==' <<<"$maps_before") entries of $E2E_CONFIG_MAPS unchanged across the restart; packets per Service: ${pkts_before//$'\n'/, } before, ${pkts_after//$'\n'/, } after"
	pass restart-rewrites-nothing
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
