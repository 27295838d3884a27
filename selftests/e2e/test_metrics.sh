#!/bin/bash
# /metrics of a running daemon: the page passes `promtool check metrics`,
# every family has HELP and TYPE, and the counters move with real traffic:
# the per-Service counters of the Service that got requests (and not of
# another), the reason and per-Service counters of a rejected and of a
# dropped connection, kube-proxy's sync metrics after a config change.
# --metrics-per-service off removes the per-Service series. The Grafana
# dashboard in deploy/ is valid JSON and every metric it queries is on the page.
. "$(dirname "$0")/lib.sh"

e2e_cases promtool-clean help-and-type-every-family service-counters-moved \
	other-service-unmoved reject-counted drop-counted no-local-endpoints-gauge \
	sync-metrics-after-change resident-memory conntrack-and-maglev dashboard-json \
	dashboard-metrics-exist every-family-documented stats-counters-on-page per-service-off

DASH=$REPO/deploy/grafana-dashboard.json
DOC=$REPO/docs/METRICS.md
e2e_begin --pods 2
PORTS='[{name: http, protocol: TCP, port: 8080}]'
SVC_PORT='{name: http, protocol: TCP, port: 80, targetPort: 8080}'
# idle-extra: the endpoints of "idle" after the config change.
write_config() {
	{
		echo "services:"
		yaml_service demo web ClusterIP "[10.96.0.10]" "" "$SVC_PORT"
		yaml_service demo idle ClusterIP "[10.96.0.11]" "" "$SVC_PORT"
		yaml_service demo empty ClusterIP "[10.96.0.20]" "" "$SVC_PORT"
		yaml_service demo local ClusterIP "[10.96.0.30]" "" "$SVC_PORT"
		echo "    internalTrafficPolicy: Local"
		echo "endpointSlices:"
		yaml_addr_slice demo web web-v4 4 "$PORTS" "${CL_POD_V4[pod1]}" "${CL_POD_V4[pod2]}"
		yaml_addr_slice demo idle idle-v4 4 "$PORTS" "${CL_POD_V4[pod1]}" "$@"
		yaml_addr_slice demo empty empty-v4 4 "$PORTS"
		# The only endpoint of "local" is on another node: this node drops.
		yaml_slice_head demo local local-v4 4 "$PORTS" 1
		echo "      - {addresses: [\"${CL_POD_V4[pod2]}\"], conditions: {ready: true}, nodeName: node-b}"
	} | e2e_write_config
}
write_config
DAEMON_ARGS=(--ct-gc-interval 1 --ct-size 4096 --ct-size-v6 2048)
e2e_start_daemon "${DAEMON_ARGS[@]}" || e2e_abort "daemon did not start"
CLIENT=${CL_POD_NS[pod1]}

scrape() { ip netns exec "$E2E_NODE" curl -sS -m 5 http://127.0.0.1:9477/metrics; }
# val PAGE SERIES: the value of one series (name and labels exactly as on
# the page), or "none".
val() { awk -v s="$2" '$1 == s { print $2; f = 1 } END { if (!f) print "none" }' <<<"$1"; }
svc() { echo "svcplane_service_$1_total{namespace=\"demo\",service=\"$2\",port=\"http\",protocol=\"tcp\"}"; }
reason() { echo "svcplane_reason_packets_total{reason=\"$1\"}"; }
# delta BEFORE AFTER SERIES: AFTER's value minus BEFORE's ("none" if either lacks it).
delta() {
	local a b
	a=$(val "$1" "$3") b=$(val "$2" "$3")
	if [ "$a" = none ] || [ "$b" = none ]; then echo none; else echo $((b - a)); fi
}

# promtool's lint, less the one finding kube-proxy's own naming gives: its
# kubeproxy_sync_proxy_rules_no_local_endpoints_total is a gauge, kept so
# that kube-proxy dashboards and alerts work unchanged.
PROMTOOL_KNOWN='kubeproxy_sync_proxy_rules_no_local_endpoints_total non-counter metrics should not have "_total" suffix'
promtool_findings() {
	local out
	out=$(promtool check metrics 2>&1 <<<"$1")
	grep -vxF "$PROMTOOL_KNOWN" <<<"$out" | grep .
}
# Every sample's family (histogram suffixes folded) has exactly one HELP and
# one TYPE line; prints the families that do not.
missing_help_type() {
	awk '
		/^# HELP / { help[$3]++; next }
		/^# TYPE / { type[$3] = $4; ntype[$3]++; next }
		/^#/ || !NF { next }
		{
			n = $1; sub(/\{.*/, "", n)
			f = n
			if (n ~ /_(bucket|sum|count)$/) { b = n; sub(/_(bucket|sum|count)$/, "", b); if (type[b] == "histogram") f = b }
			if (help[f] != 1 || ntype[f] != 1) bad[f] = 1
		}
		END { for (f in bad) print f }' <<<"$1"
}

M0=$(scrape)
if ! command -v promtool >/dev/null; then
	fail promtool-clean "promtool is missing: scripts/deps.sh installs Debian's prometheus package"
elif [ -z "$M0" ]; then
	fail promtool-clean "nothing scraped"
elif f=$(promtool_findings "$M0"); then
	fail promtool-clean "promtool check metrics: $(head -5 <<<"$f" | tr '\n' ';')"
else
	pass promtool-clean
fi
bad=$(missing_help_type "$M0")
check help-and-type-every-family "families without one HELP and one TYPE: $(echo $bad | cut -c1-300)" \
	test -n "$M0" -a -z "$bad"

# 6 requests to web: 6 new flows of web (one connection each), none of idle.
e2e_http_n "$CLIENT" 10.96.0.10 80 6
[ "$E2E_OK" -eq 6 ] || note "only $E2E_OK of 6 requests answered: $E2E_FIRST_ERR"
M1=$(scrape)
nf=$(delta "$M0" "$M1" "$(svc new_flows web)") pk=$(delta "$M0" "$M1" "$(svc packets web)")
by=$(delta "$M0" "$M1" "$(svc bytes web)") gnf=$(delta "$M0" "$M1" svcplane_new_flows_total)
check service-counters-moved "web: new flows +$nf (want +6), packets +$pk (want >= 6 x 3: SYN, ACK, request), bytes +$by, all new flows +$gnf" \
	eval '[ "$nf" = 6 ] && [ "$pk" != none ] && [ "$pk" -ge 18 ] && [ "$by" != none ] && [ "$by" -gt 0 ] && [ "$gnf" -ge 6 ]'
ipk=$(delta "$M0" "$M1" "$(svc packets idle)") inf=$(delta "$M0" "$M1" "$(svc new_flows idle)")
check other-service-unmoved "idle: packets +$ipk, new flows +$inf (want +0, and listed)" \
	eval '[ "$ipk" = 0 ] && [ "$inf" = 0 ]'

# A Service without endpoints: refused (RST), counted as no_backend.
out=$(cl_connect "$CLIENT" 10.96.0.20 80)
M2=$(scrape)
rj=$(delta "$M1" "$M2" "$(svc rejects empty)") nb=$(delta "$M1" "$M2" "$(reason no_backend)")
check reject-counted "connect: $out; empty's rejects +$rj, no_backend +$nb (want >= 1 each)" \
	eval '[[ $out == "ERR ECONNREFUSED"* ]] && [ "$rj" != none ] && [ "$rj" -ge 1 ] && [ "$nb" -ge 1 ]'

# internalTrafficPolicy: Local with the only endpoint on node-b: dropped
# (the client times out), counted as no_local_endpoint.
out=$(cl_connect "$CLIENT" 10.96.0.30 80)
M3=$(scrape)
dr=$(delta "$M2" "$M3" "$(svc drops local)") nl=$(delta "$M2" "$M3" "$(reason no_local_endpoint)")
check drop-counted "connect: $out; local's drops +$dr, no_local_endpoint +$nl (want >= 1 each)" \
	eval '[[ $out == "ERR TIMEOUT"* ]] && [ "$dr" != none ] && [ "$dr" -ge 1 ] && [ "$nl" -ge 1 ]'
gi=$(val "$M3" 'kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy="internal"}')
ge=$(val "$M3" 'kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy="external"}')
check no-local-endpoints-gauge "internal $gi (want 1: Service local), external $ge (want 0)" \
	eval '[ "$gi" = 1 ] && [ "$ge" = 0 ]'

# A config change (idle gets pod2): one more sync, of a changed endpoint
# set, at a recent time. The daemon sees the file change by itself (inotify
# on its directory); a SIGHUP as well would be a second (empty) sync.
SYNCS=kubeproxy_sync_proxy_rules_duration_seconds_count
n0=$(val "$M3" $SYNCS)
write_config "${CL_POD_V4[pod2]}"
synced_more() { [ "$(val "$(scrape)" $SYNCS)" -gt "$n0" ]; }
cl_until 10 synced_more || note "no sync counted 10 s after the change"
M4=$(scrape)
now=$(date +%s)
ts=$(val "$M4" kubeproxy_sync_proxy_rules_last_timestamp_seconds)
ec=$(delta "$M3" "$M4" kubeproxy_sync_proxy_rules_endpoint_changes_total)
sy=$(delta "$M3" "$M4" svcplane_sync_total)
check sync-metrics-after-change "syncs +$(delta "$M3" "$M4" $SYNCS) (svcplane_sync_total +$sy), endpoint changes +$ec, last sync $ts (now $now)" \
	eval '[ "$(delta "$M3" "$M4" $SYNCS)" = 1 ] && [ "$sy" = 1 ] && [ "$ec" = 1 ] &&
		[ "${ts%.*}" -le "$now" ] && [ "${ts%.*}" -ge $((now - 15)) ]'

# RSS as the kernel reports it for the daemon's process (same order: the
# two reads are a moment apart).
rss=$(val "$M4" process_resident_memory_bytes)
kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$SP_PID/status" 2>/dev/null)
peak=$(val "$M4" svcplane_resident_memory_peak_bytes)
check resident-memory "process_resident_memory_bytes $rss, VmRSS ${kb:-?} kB, peak $peak" \
	eval '[ -n "$kb" ] && [ "$rss" != none ] && [ "$rss" -ge $((kb * 1024 / 2)) ] &&
		[ "$rss" -le $((kb * 1024 * 2)) ] && [ "$peak" -ge "$rss" ]'

cap=$(val "$M4" svcplane_ct_capacity) ent=$(val "$M4" svcplane_ct_entries)
snat=$(val "$M4" svcplane_snat_ports_in_use)
mb=$(val "$M4" svcplane_maglev_memory_bytes) mc=$(val "$M4" svcplane_maglev_capacity_bytes)
check conntrack-and-maglev "ct capacity $cap (want 6144: --ct-size 4096 + --ct-size-v6 2048), entries $ent, SNAT ports $snat (want 0: no SNAT here), Maglev $mb of $mc bytes (want 0 < in use < capacity)" \
	eval '[ "$cap" = 6144 ] && [ "$ent" != none ] && [ "$snat" = 0 ] && [ "$mb" != none ] &&
		[ "$mb" -gt 0 ] && [ "$mb" -lt "$mc" ]'

# The dashboard: JSON, and each metric name in its queries is on the page.
if out=$(python3 -m json.tool "$DASH" 2>&1 >/dev/null); then
	pass dashboard-json
else
	fail dashboard-json "$DASH: $out"
fi
names=$(python3 -c '
import json, re, sys
d = json.load(open(sys.argv[1]))
seen = set()
for p in d.get("panels", []):
    for t in p.get("targets", []):
        seen.update(re.findall(r"\b((?:kubeproxy|svcplane|process)_[a-z0-9_]+)", t.get("expr", "")))
print(" ".join(sorted(seen)))' "$DASH" 2>/dev/null)
missing=""
for n in $names; do
	grep -q "^$n[{ ]" <<<"$M4" || missing+=" $n"
done
check dashboard-metrics-exist "queried but not on the page:${missing:- (no metric found in the dashboard)}" \
	eval '[ -n "$names" ] && [ -z "$missing" ]'

# docs/METRICS.md names every family, except the sp_stats counters, which
# are exactly `svcplane stats`'s (one table): svcplane_<counter>_total each.
counters=$(sp "$E2E_NODE" stats --json 2>/dev/null | python3 -c '
import json, sys
print(" ".join(sorted(json.load(sys.stdin)["counters"])))' 2>/dev/null)
fams=$(awk '/^# TYPE / { print $3 }' <<<"$M4")
undoc="" stat_fams=""
for f in $fams; do
	c=${f#svcplane_} c=${c%_total}
	if [[ " $counters " == *" $c "* ]] && [ "$f" = "svcplane_${c}_total" ]; then
		stat_fams+=" $c"
	elif ! grep -qF -e "\`$f\`" -e "\`$f{" "$DOC"; then
		undoc+=" $f"
	fi
done
check every-family-documented "on the page, not in docs/METRICS.md:$undoc" test -z "$undoc"
check stats-counters-on-page "svcplane stats counters: '$counters'; on the page: '${stat_fams# }'" \
	test -n "$counters" -a "$counters" = "$(echo $stat_fams | tr ' ' '\n' | LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//')"

# --metrics-per-service off: the same page without the per-Service series.
kill -TERM "$SP_PID"
wait "$SP_PID" 2>/dev/null
if e2e_start_daemon "${DAEMON_ARGS[@]}" --metrics-per-service off; then
	M5=$(scrape)
	n=$(grep -c '^svcplane_service_' <<<"$M5")
	f=$(promtool_findings "$M5")
	check per-service-off "$n svcplane_service_ series (want 0); promtool: ${f:-clean}; svcplane_up $(val "$M5" svcplane_up)" \
		eval '[ "$n" = 0 ] && [ -z "$f" ] && [ "$(val "$M5" svcplane_up)" = 1 ]'
else
	fail per-service-off "the daemon did not start with --metrics-per-service off"
fi
