#!/bin/bash
# loadBalancerSourceRanges (README row 12): a LoadBalancer Service whose
# ranges hold the client (10.10.0.2 / fd00:10::2) answers it on its LB IPs;
# with ranges that leave the client out, its new connections to the LB IPs
# get no answer (dropped: a timeout, not a refusal), `svcplane stats` counts
# them under src_range_denied and the Service's drops, while its NodePort
# still answers; with the client's range back, the LB IPs answer again.
. "$(dirname "$0")/lib.sh"

e2e_cases allowed-v4 allowed-v6 frontend-flagged denied-v4 denied-v6 denied-counted \
	denied-service-drops nodeport-unaffected reopened-v4 reopened-v6

e2e_begin --pods 2
LB4=10.10.0.160 LB6=fd00:10::160
cl_client_route "$LB4" && cl_client_route "$LB6" || e2e_abort "client routes"
PORTS='[{name: http, protocol: TCP, port: 8080}]'

# config RANGES-YAML: the Service with these loadBalancerSourceRanges.
config() {
	echo "services:"
	yaml_service e2e web LoadBalancer "[10.96.0.60, fd00:96::60]" "[$LB4, $LB6]" \
		"{name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30160}"
	echo "    loadBalancerSourceRanges: $1"
	echo "endpointSlices:"
	yaml_slices e2e web web "$PORTS" pod1 pod2
}

# reason NAME: packets counted under drop reason NAME (0 if none yet).
reason() {
	sp "$E2E_NODE" stats --json --all 2>/dev/null |
		"$CL_PY" -c 'import json,sys; print(json.load(sys.stdin)["reasons"]["'"$1"'"]["packets"])' \
			2>/dev/null || echo 0
}
# drops ADDR: the drops counter of the Service port with frontend ADDR.
drops() {
	sp "$E2E_NODE" services --json 2>/dev/null | "$CL_PY" -c '
import json, sys
for s in json.load(sys.stdin):
    if any(f.get("address") == sys.argv[1] for f in s.get("frontends", [])):
        print(s["stats"]["drops"]); break
else:
    print(0)' "$1" 2>/dev/null || echo 0
}
# lb_flagged: every LB frontend carries source_ranges, no other does.
lb_flagged() {
	sp "$E2E_NODE" services --json 2>/dev/null | "$CL_PY" -c '
import json, sys
lb = set(sys.argv[1:])
fes = [f for s in json.load(sys.stdin) for f in s.get("frontends", [])]
ok = fes and all(f.get("source_ranges") == (f.get("address") in lb) for f in fes)
sys.exit(0 if ok else 1)' "$LB4" "$LB6"
}
# no_answer ADDR: one connection to ADDR:80 times out (dropped, not refused).
no_answer() { [[ $(cl_connect "$CL_CLIENT" "$1" 80) == "ERR TIMEOUT"* ]]; }
answers() { [[ $(cl_http "$CL_CLIENT" "$1" 80) == pod* ]]; }

config "[10.10.0.0/24, \"fd00:10::/64\"]" | e2e_write_config
e2e_start_daemon || e2e_abort "svcplane did not become ready"

e2e_http_n "$CL_CLIENT" "$LB4" 80 4
e2e_expect_all allowed-v4 4 1 "pod1 pod2"
e2e_http_n "$CL_CLIENT" "$LB6" 80 4
e2e_expect_all allowed-v6 4 1 "pod1 pod2"
check frontend-flagged "svcplane services --json: source_ranges not exactly on the LB IPs" lb_flagged

# Ranges without the client (both families given, neither holds it).
r0=$(reason src_range_denied) d0=$(drops "$LB4")
config "[192.0.2.0/24, \"2001:db8::/32\"]" | e2e_write_config
e2e_reload
cl_until 10 no_answer "$LB4" || note "the LB IP still answered 10 s after the reload"
for fam in v4 v6; do
	[ $fam = v4 ] && a=$LB4 || a=$LB6
	out=$(cl_connect "$CL_CLIENT" "$a" 80)
	if [[ $out == "ERR TIMEOUT"* ]]; then
		pass "denied-$fam"
	else
		fail "denied-$fam" "expected no answer from $a:80 (dropped), got: $out"
	fi
done
r1=$(reason src_range_denied) d1=$(drops "$LB4")
check denied-counted "src_range_denied went from $r0 to $r1 packets" [ "$r1" -gt "$r0" ]
check denied-service-drops "the Service's drops went from $d0 to $d1" [ "$d1" -gt "$d0" ]
e2e_http_n "$CL_CLIENT" 10.10.0.1 30160 4
e2e_expect_all nodeport-unaffected 4 1 "pod1 pod2"

# The client's ranges back: the LB IPs answer again.
config "[10.10.0.0/24, \"fd00:10::/64\"]" | e2e_write_config
e2e_reload
cl_until 10 answers "$LB4" || note "the LB IP did not answer within 10 s of the reload"
cl_until 10 answers "$LB6" || note "the v6 LB IP did not answer within 10 s of the reload"
e2e_http_n "$CL_CLIENT" "$LB4" 80 4
e2e_expect_all reopened-v4 4 1 "pod1 pod2"
e2e_http_n "$CL_CLIENT" "$LB6" 80 4
e2e_expect_all reopened-v6 4 1 "pod1 pod2"
