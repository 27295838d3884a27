#!/bin/bash
# Rows 9 to 12 of DESIGN.md on three nodes (issue 8): an external client
# behind a router that sends LoadBalancer IP #1 to every node by ECMP
# (MetalLB's BGP mode) and LoadBalancer IP #2 to node-a (its L2 mode); one
# svcplane daemon per node, all reading one config file whose endpoints
# carry their nodeName. Topology: cl_multinode_up in scripts/lib/cluster.sh
# and docs/TESTING.md.
#
#   pods   pa1 pa2 on node-a, pb1 pb2 on node-b, pc1 on node-c
#   web      LoadBalancer LB1 (ECMP) + LB2, TCP 80 nodePort 30080, echo 90
#            nodePort 30090, UDP 53 nodePort 30080; pa1 pb1 pc1
#   local-X  (X = a, b, c) NodePort 3108N (N = 1, 2, 3), echo 95 nodePort
#            3118N, UDP 85; one pod on node X (local-a also on LB2:85)
#   spread   LoadBalancer LB1:82, both traffic policies Local; pa1 pb1 pc1:
#            every node answers with its own pod, which shows the ECMP spread
#   elocal   LoadBalancer LB2:81, nodePort 31090, externalTrafficPolicy Local;
#            pa1 (moved to pb1 by the test)
#   ilocal   ClusterIP, internalTrafficPolicy Local; pa1 pb1
#   lbsr     LoadBalancer LB2:84; pa1; loadBalancerSourceRanges set by the test
#
# Some cases need datapath features that are not there yet (SNAT, --dsr,
# --snat-ports, healthCheckNodePort, loadBalancerSourceRanges, drops for
# Local policies without local endpoints): they fail, saying what they saw,
# until those land. This script is therefore not in the default `make test`
# list yet: `make test-multinode` runs it.
. "$(dirname "$0")/lib.sh"

FAMS="ipv4 ipv6"
PROTOS="tcp udp"
for f in $FAMS; do
	e2e_cases "routing-$f"
	for p in $PROTOS; do
		e2e_cases "ecmp-spread-$f-$p" "cluster-local-$f-$p" "cluster-remote-$f-$p" \
			"cluster-mixed-$f-$p" "etp-local-answer-$f-$p" "etp-local-drop-$f-$p" \
			"itp-local-$f-$p" "itp-local-none-$f-$p"
	done
done
for f in $FAMS; do e2e_cases "ecmp-conns-survive-$f"; done
for f in $FAMS; do e2e_cases "etp-local-healthcheck-$f" "etp-local-move-$f"; done
for f in $FAMS; do
	for p in $PROTOS; do e2e_cases "lbsr-allowed-$f-$p" "lbsr-denied-$f-$p"; done
done
for f in $FAMS; do for p in $PROTOS; do e2e_cases "dsr-$f-$p"; done; done
for f in $FAMS; do e2e_cases "snat-exhaustion-$f"; done

# ---- set-up ----------------------------------------------------------------------

if [ "$(id -u)" != 0 ]; then
	for c in "${E2E_CASES[@]}"; do skip "$c" "needs root (network namespaces)"; done
	exit 0
fi
cl_install_traps
trap 'mn_end' EXIT
mn_end() {
	local rc=$? ns
	e2e_fail_rest "not reached (the script stopped early, status $rc)"
	if [ $E2E_FAILS -gt 0 ]; then
		for ns in "${CL_NODES[@]}"; do
			[ -s "${SP_NODE_LOG[$ns]:-}" ] || continue
			echo "    --- ${CL_NODE_NAME[$ns]}: svcplane log (last 8 lines) ---"
			tail -n 8 "${SP_NODE_LOG[$ns]}" | cut -c1-240 | sed 's/^/    | /'
		done
	fi
	cluster_down
	note "($E2E_NAME: $((SECONDS - E2E_T0))s)"
}
cl_find_bin || e2e_abort "no svcplane binary at $SP_BIN (build it first: make)"
cl_multinode_up || e2e_abort "building the three-node cluster failed (see above)"
A=${CL_NODES[0]} B=${CL_NODES[1]} C=${CL_NODES[2]}
CFG="$CL_TMP/config.yaml"

# addr FAMILY WHAT: an address of WHAT (a node namespace, a pod, client,
# lb1, lb2) in FAMILY (ipv4, ipv6).
addr() {
	local f=$1 w=$2
	case $w in
	client) [ "$f" = ipv4 ] && echo "$CL_EXT_V4" || echo "$CL_EXT_V6" ;;
	lb1) [ "$f" = ipv4 ] && echo "$CL_LB1_V4" || echo "$CL_LB1_V6" ;;
	lb2) [ "$f" = ipv4 ] && echo "$CL_LB2_V4" || echo "$CL_LB2_V6" ;;
	"$CL_PREFIX"-*) [ "$f" = ipv4 ] && echo "${CL_NODE_V4[$w]}" || echo "${CL_NODE_V6[$w]}" ;;
	*) [ "$f" = ipv4 ] && echo "${CL_POD_V4[$w]}" || echo "${CL_POD_V6[$w]}" ;;
	esac
}

# ---- the config --------------------------------------------------------------------

# What the test changes between phases.
WEB_EPS="pa1 pb1 pc1" # web's endpoints
ELOCAL_EP=pa1          # elocal's only endpoint
WITH_HC=0              # elocal gets healthCheckNodePort 31091
LBSR=""                # lbsr's loadBalancerSourceRanges (a flow list), "" for none

SLICE_PORTS='[{name: http, protocol: TCP, port: 8080}, {name: echo, protocol: TCP, port: 9090}, {name: dns, protocol: UDP, port: 5353}]'

# mn_slices SERVICE POD...: an IPv4 and an IPv6 EndpointSlice with the pods
# as ready endpoints, each with the name of the node it runs on.
mn_slices() {
	local svc=$1 fam pod a; shift
	for fam in 4 6; do
		yaml_slice_head mn "$svc" "$svc-v$fam" "$fam" "$SLICE_PORTS" $#
		for pod in "$@"; do
			if [ $fam = 4 ]; then a=${CL_POD_V4[$pod]}; else a=${CL_POD_V6[$pod]}; fi
			echo "      - {addresses: [\"$a\"], conditions: {ready: true}, nodeName: ${CL_NODE_NAME[${CL_POD_NODE[$pod]}]}}"
		done
	done
}

# mn_ports HTTP ECHO DNS [NODEPORT-HTTP NODEPORT-ECHO]: a Service's ports.
mn_ports() {
	local nh="" ne=""
	[ -n "${4:-}" ] && nh=", nodePort: $4" ne=", nodePort: $5"
	echo "    ports:"
	echo "      - {name: http, protocol: TCP, port: $1, targetPort: 8080$nh}"
	echo "      - {name: echo, protocol: TCP, port: $2, targetPort: 9090$ne}"
	echo "      - {name: dns, protocol: UDP, port: $3, targetPort: 5353$nh}"
}

# mn_svc NAME TYPE CLUSTER-IPS LB-IPS [LINE...]: a Service's head, LINEs
# (more fields, "key: value") included; LB-IPS "" for none.
mn_svc() {
	local l
	echo "  - name: $1"
	echo "    namespace: mn"
	echo "    type: $2"
	echo "    clusterIPs: $3"
	[ -n "$4" ] && echo "    loadBalancerIPs: $4"
	shift 4
	for l in "$@"; do echo "    $l"; done
}

mn_config() {
	local x n=1 lb1 lb2
	lb1="[$CL_LB1_V4, \"$CL_LB1_V6\"]" lb2="[$CL_LB2_V4, \"$CL_LB2_V6\"]"
	echo "services:"
	mn_svc web LoadBalancer '[10.96.1.10, "fd00:96::1:10"]' \
		"[$CL_LB1_V4, \"$CL_LB1_V6\", $CL_LB2_V4, \"$CL_LB2_V6\"]"
	mn_ports 80 90 53 30080 30090
	for x in a b c; do
		if [ $x = a ]; then
			mn_svc local-a LoadBalancer '[10.96.1.21, "fd00:96::1:21"]' "$lb2"
		else
			mn_svc "local-$x" NodePort "[10.96.1.2$n, \"fd00:96::1:2$n\"]" ""
		fi
		mn_ports 85 95 85 "3108$n" "3118$n"
		n=$((n + 1))
	done
	mn_svc spread LoadBalancer '[10.96.1.30, "fd00:96::1:30"]' "$lb1" \
		"externalTrafficPolicy: Local" "internalTrafficPolicy: Local"
	mn_ports 82 92 82
	if [ "$WITH_HC" = 1 ]; then
		mn_svc elocal LoadBalancer '[10.96.1.31, "fd00:96::1:31"]' "$lb2" \
			"externalTrafficPolicy: Local" "healthCheckNodePort: 31091"
	else
		mn_svc elocal LoadBalancer '[10.96.1.31, "fd00:96::1:31"]' "$lb2" \
			"externalTrafficPolicy: Local"
	fi
	mn_ports 81 91 81 31090 31190
	mn_svc ilocal ClusterIP '[10.96.1.40, "fd00:96::1:40"]' "" "internalTrafficPolicy: Local"
	mn_ports 80 90 53
	if [ -n "$LBSR" ]; then
		mn_svc lbsr LoadBalancer '[10.96.1.50, "fd00:96::1:50"]' "$lb2" \
			"loadBalancerSourceRanges: $LBSR"
	else
		mn_svc lbsr LoadBalancer '[10.96.1.50, "fd00:96::1:50"]' "$lb2"
	fi
	mn_ports 84 94 84
	echo "endpointSlices:"
	# shellcheck disable=SC2086 # a list of pod names
	mn_slices web $WEB_EPS
	mn_slices local-a pa1
	mn_slices local-b pb1
	mn_slices local-c pc1
	mn_slices spread pa1 pb1 pc1
	mn_slices elocal "$ELOCAL_EP"
	mn_slices ilocal pa1 pb1
	mn_slices lbsr pa1
}

# mn_apply: write the config (atomically) and wait (bounded, 10 s) until every
# running daemon has applied or refused it. Returns 1 if one refused it or
# did not react; MN_WHY then says which and why.
mn_apply() {
	local ns i
	local -A before
	local refused="" reason=""
	MN_WHY=""
	for ns in "${CL_NODES[@]}"; do before[$ns]=$(sp_node_applies "$ns"); done
	mn_config >"$CFG.tmp" && mv "$CFG.tmp" "$CFG"
	for ns in "${CL_NODES[@]}"; do
		for ((i = 0; i < 100; i++)); do
			[ "$(sp_node_applies "$ns")" -gt "${before[$ns]}" ] && break
			sleep 0.1
		done
		if [ "$(sp_node_applies "$ns")" -le "${before[$ns]}" ]; then
			MN_WHY+="${CL_NODE_NAME[$ns]} did not reload the config within 10 s; "
		elif tail -n "+$((${SP_NODE_FROM[$ns]} + 1))" "${SP_NODE_LOG[$ns]}" |
			grep -E ' applied in |keeping the running state' | tail -1 |
			grep -q 'keeping the running state'; then
			refused+="${CL_NODE_NAME[$ns]} "
			[ -n "$reason" ] || reason=$(sp_node_why "$ns")
		fi
	done
	[ -n "$refused" ] && MN_WHY+="refused by ${refused% }: $reason"
	MN_WHY=${MN_WHY%; }
	[ -z "$MN_WHY" ]
}

# mn_start_all [ARGS...]: (re)start the three daemons with extra ARGS.
# Returns 1 if one did not start; MN_WHY says which and why.
mn_start_all() {
	local ns
	MN_WHY=""
	for ns in "${CL_NODES[@]}"; do
		if ! sp_node_restart "$ns" "$CFG" "$@"; then
			MN_WHY+="${CL_NODE_NAME[$ns]}: svcplane run $* did not start: $(sp_node_why "$ns"); "
		fi
	done
	MN_WHY=${MN_WHY%; }
	[ -z "$MN_WHY" ]
}

# ---- probes and verdicts ------------------------------------------------------------

# A probe spec is one target checked against a rule. mn_spec adds one to the
# current batch; mn_run runs the batch (one probe client per source
# namespace, all at once); mn_judge then gives each case of the batch its
# verdict from its specs' results.
MN_N=0
declare -A MN_CASE MN_SRC MN_SPEC MN_RULE MN_ALLOWED MN_RES MN_TAG MN_OUT MN_SYNS MN_MIN MN_SEEN CONNS_PID
MN_BATCH=0

# mn_spec CASE SRC-NS RULE ALLOWED PROTO HOST PORT N. RULE is one of
#   peer=ADDR        answered by a pod of ALLOWED ("*": any) that saw ADDR
#   snat=NODE,ADDR   answered by a pod of ALLOWED; a pod on NODE (the node
#                    that received the packet) saw ADDR (the client), a pod
#                    on another node saw NODE's address
#   ecmp=ADDR        answered by a pod of ALLOWED that saw ADDR (the client)
#                    or the address of a node other than its own (the one
#                    the router chose, which SNATed)
#   drop             no answer within the timeout, no RST / ICMP error, and
#                    no pod saw the request
#   refused          ECONNREFUSED (RST / ICMP unreachable)
mn_spec() {
	MN_CASE[$MN_N]=$1 MN_SRC[$MN_N]=$2 MN_RULE[$MN_N]=$3 MN_ALLOWED[$MN_N]=$4
	MN_SPEC[$MN_N]="$5,$6,$7,$8"
	MN_N=$((MN_N + 1))
}

# mn_probe_specs TIMEOUT SPEC-NUMBER...: run these specs (one probe client
# per source namespace, all at once) and fill their MN_RES and MN_TAG.
mn_probe_specs() {
	local timeout=$1 i src tag k=0 j n line pids=()
	local -A idx # source ns -> space-separated spec numbers
	shift
	MN_BATCH=$((MN_BATCH + 1))
	for i in "$@"; do idx[${MN_SRC[$i]}]+="$i "; done
	for src in "${!idx[@]}"; do
		local specs=()
		for i in ${idx[$src]}; do specs+=("${MN_SPEC[$i]}"); done
		tag="b$MN_BATCH.$k"
		# Each spec stops at its first failure: one settles an answer
		# check, and timeouts would add up (a drop check sends one).
		cl_probe "$src" "$tag" "$timeout" 1 "${specs[@]}" >"$CL_TMP/probe.$tag" &
		pids+=($!)
		n=0
		for i in ${idx[$src]}; do
			MN_TAG[$i]="$tag-$n-"
			MN_OUT[$i]="$CL_TMP/probe.$tag $n"
			n=$((n + 1))
		done
		k=$((k + 1))
	done
	for j in "${pids[@]}"; do wait "$j"; done
	for i in "$@"; do
		line=${MN_OUT[$i]}
		MN_RES[$i]=$(awk -v n="${line#* }" '$1 == n { $1 = ""; sub(/^ /, ""); print }' "${line% *}")
	done
}

# mn_syns: "POD:COUNT ..." for every pod (cl_pod_syns).
mn_syns() {
	local pod
	for pod in "${CL_PODS[@]}"; do printf '%s:%s ' "$pod" "$(cl_pod_syns "$pod")"; done
}

# mn_run [TIMEOUT]: run the batch; each request waits at most TIMEOUT seconds
# (default 2) for its answer. Everything runs at once, except the TCP drop
# checks of each case, which run afterwards, one case at a time: a
# forwarded connection whose answer is lost shows only in the pods' SYN
# counters (cl_pod_count_syns), which tell nothing about which case sent
# the SYN unless that case ran alone (MN_SYNS[CASE]: the pods that got SYNs).
mn_run() {
	local timeout=${1:-2} i c before after p
	local first=() cases=()
	local -A drops
	for ((i = 0; i < MN_N; i++)); do
		if [ "${MN_RULE[$i]}" = drop ] && [[ ${MN_SPEC[$i]} == tcp,* ]]; then
			c=${MN_CASE[$i]}
			[ -n "${drops[$c]:-}" ] || cases+=("$c")
			drops[$c]+="$i "
		else
			first+=("$i")
		fi
	done
	[ ${#first[@]} -gt 0 ] && mn_probe_specs "$timeout" "${first[@]}"
	for c in "${cases[@]}"; do
		before=$(mn_syns)
		# shellcheck disable=SC2086 # a list of spec numbers
		mn_probe_specs "$timeout" ${drops[$c]}
		after=$(mn_syns)
		MN_SYNS[$c]=""
		for p in $after; do
			[[ " $before " == *" $p "* ]] && continue
			MN_SYNS[$c]+="${p%%:*} "
		done
	done
}

# mn_check I: check spec I's results against its rule. Returns 0 if they
# hold, else prints why (one line).
mn_check() {
	local i=$1 rule=${MN_RULE[$1]} allowed=${MN_ALLOWED[$1]} line tok pod peer rest
	local target=${MN_SPEC[$1]%,*} saw
	target="${target/,/ }"
	saw=$(cl_pods_saw "${MN_TAG[$i]}" | awk '{ printf "%s%s saw %s from %s", (NR > 1 ? "; " : ""), $1, $4, $3 }')
	[ -n "${MN_RES[$i]}" ] || { echo "$target: no result from the probe client"; return 1; }
	while read -r tok pod peer rest; do
		case $rule in
		drop)
			if [ "$pod" != ERR ]; then
				echo "$target: answered by $pod (saw $peer), expected a drop"
				return 1
			fi
			if [ "$peer" != TIMEOUT ] && [ "$peer" != not-tried ]; then
				echo "$target: $peer ($rest) instead of a silent drop${saw:+ [$saw]}"
				return 1
			fi
			;;
		refused)
			if [ "$pod" != ERR ] || [ "$peer" != ECONNREFUSED ]; then
				echo "$target: expected ECONNREFUSED, got: $pod $peer $rest"
				return 1
			fi
			;;
		*)
			if [ "$pod" = ERR ]; then
				saw=$(cl_pods_saw "$tok" | awk '{ printf "%s%s saw it from %s", (NR > 1 ? "; " : ""), $1, $3 }')
				echo "$target: $peer $rest${saw:+ [but $saw]}"
				return 1
			fi
			if [ "$allowed" != "*" ] && [[ " $allowed " != *" $pod "* ]]; then
				echo "$target: answered by $pod, expected one of: $allowed"
				return 1
			fi
			MN_SEEN[${MN_CASE[$i]}]+="$pod "
			local want="" node fam=ipv4 pnode
			[[ $peer == *:* ]] && fam=ipv6
			pnode=${CL_POD_NODE[$pod]:-}
			case $rule in
			peer=*) want=${rule#peer=} ;;
			snat=*)
				node=${rule#snat=}
				want=${node#*,}
				node=${node%,*}
				[ "$pnode" != "$node" ] && want=$(addr "$fam" "$node")
				;;
			ecmp=*)
				want=${rule#ecmp=}
				if [ "$peer" != "$want" ]; then
					local n ok=0
					for n in "${CL_NODES[@]}"; do
						[ "$n" != "$pnode" ] && [ "$peer" = "$(addr "$fam" "$n")" ] && ok=1
					done
					[ $ok = 1 ] && want=$peer
				fi
				;;
			esac
			if [ "$peer" != "$want" ]; then
				echo "$target: $pod (on ${CL_NODE_NAME[$pnode]:-?}) saw $peer, expected $want"
				return 1
			fi
			;;
		esac
	done <<<"${MN_RES[$i]}"
	if [ "$rule" = drop ] && [ -n "$saw" ]; then
		echo "$target: no answer, but it was not dropped: $saw"
		return 1
	fi
	if [ "$rule" = drop ] && [ -n "${MN_SYNS[${MN_CASE[$i]}]:-}" ]; then
		echo "$target: no answer, but it was not dropped: the SYN reached ${MN_SYNS[${MN_CASE[$i]}]% }"
		return 1
	fi
	return 0
}

# mn_judge [WHY-ALL]: the verdict of every case in the batch, then a new
# batch. With WHY-ALL (a set-up problem), every case fails with it.
mn_judge() {
	local i c why n
	local -A bad order
	local cases=()
	for ((i = 0; i < MN_N; i++)); do
		c=${MN_CASE[$i]}
		[ -n "${order[$c]:-}" ] || { order[$c]=1; cases+=("$c"); }
		[ -n "${1:-}" ] && continue
		[ -n "${bad[$c]:-}" ] && continue
		why=$(mn_check "$i") || bad[$c]=$why
	done
	for c in "${cases[@]}"; do
		if [ -n "${1:-}" ]; then
			fail "$c" "$1"
		elif [ -n "${bad[$c]:-}" ]; then
			fail "$c" "${bad[$c]}"
		elif [ -n "${MN_MIN[$c]:-}" ] &&
			n=$(echo "${MN_SEEN[$c]:-}" | tr ' ' '\n' | sort -u | grep -c .) &&
			[ "$n" -lt "${MN_MIN[$c]}" ]; then
			fail "$c" "answers came from $n pod(s) ($(echo "${MN_SEEN[$c]:-}" | tr ' ' '\n' | sort -u | tr '\n' ' ')), expected at least ${MN_MIN[$c]}"
		else
			pass "$c"
		fi
	done
	MN_N=0
	MN_CASE=() MN_SRC=() MN_SPEC=() MN_RULE=() MN_ALLOWED=() MN_RES=() MN_TAG=() MN_OUT=()
	MN_SYNS=()
}

# ---- phase 1: what needs only routing and one node's view ------------------------

WEB_EPS="pa1 pb1 pc1" ELOCAL_EP=pa1 WITH_HC=0 LBSR=""
mn_config >"$CFG"
mn_start_all || e2e_abort "the daemons did not start: $MN_WHY"

for f in $FAMS; do
	cli=$(addr "$f" client)
	# The client reaches every node through the router (an unserved port:
	# the node's own RST), and pods reach pods on other nodes directly.
	for n in "${CL_NODES[@]}"; do
		mn_spec "routing-$f" "$CL_CLIENT" refused "*" tcp "$(addr "$f" "$n")" 1 1
	done
	mn_spec "routing-$f" "${CL_POD_NS[pa1]}" "peer=$(addr "$f" pa1)" pb1 tcp "$(addr "$f" pb1)" 8080 2
	mn_spec "routing-$f" "${CL_POD_NS[pb1]}" "peer=$(addr "$f" pb1)" pc1 udp "$(addr "$f" pc1)" 5353 2
	mn_spec "routing-$f" "${CL_POD_NS[pc1]}" "peer=$(addr "$f" pc1)" pa2 tcp "$(addr "$f" pa2)" 8080 2
	for p in $PROTOS; do
		port=82
		# The router hashes each new connection (new source port) onto a
		# node; "spread" answers with the receiving node's own pod.
		mn_spec "ecmp-spread-$f-$p" "$CL_CLIENT" "peer=$cli" "pa1 pb1 pc1" "$p" "$(addr "$f" lb1)" $port 24
		MN_MIN["ecmp-spread-$f-$p"]=3
		# eTP Cluster, the pod on the receiving node: the client's address.
		k=1
		for x in a b c; do
			n=${CL_NODES[$((k - 1))]}
			mn_spec "cluster-local-$f-$p" "$CL_CLIENT" "peer=$cli" "p${x}1" "$p" "$(addr "$f" "$n")" "3108$k" 3
			k=$((k + 1))
		done
		mn_spec "cluster-local-$f-$p" "$CL_CLIENT" "peer=$cli" pa1 "$p" "$(addr "$f" lb2)" 85 3
		# eTP Cluster, the pod on another node: the receiving node's address.
		for n in "${CL_NODES[@]}"; do
			k=1
			for x in a b c; do
				if [ "${CL_NODE_NAME[$n]}" != "node-$x" ]; then
					mn_spec "cluster-remote-$f-$p" "$CL_CLIENT" "snat=$n,$cli" "p${x}1" "$p" \
						"$(addr "$f" "$n")" "3108$k" 2
				fi
				k=$((k + 1))
			done
		done
		# eTP Cluster, endpoints on every node: LB1 (ECMP), LB2 (node-a), the
		# NodePort on every node.
		[ "$p" = udp ] && port=53 || port=80
		mn_spec "cluster-mixed-$f-$p" "$CL_CLIENT" "ecmp=$cli" "pa1 pb1 pc1" "$p" "$(addr "$f" lb1)" $port 12
		mn_spec "cluster-mixed-$f-$p" "$CL_CLIENT" "snat=$A,$cli" "pa1 pb1 pc1" "$p" "$(addr "$f" lb2)" $port 6
		for n in "${CL_NODES[@]}"; do
			mn_spec "cluster-mixed-$f-$p" "$CL_CLIENT" "snat=$n,$cli" "pa1 pb1 pc1" "$p" "$(addr "$f" "$n")" 30080 6
		done
		# eTP Local, the only endpoint (pa1) on node-a: node-a and LB2 (to
		# node-a) answer with the client's address, the others drop.
		mn_spec "etp-local-answer-$f-$p" "$CL_CLIENT" "peer=$cli" pa1 "$p" "$(addr "$f" "$A")" 31090 3
		mn_spec "etp-local-answer-$f-$p" "$CL_CLIENT" "peer=$cli" pa1 "$p" "$(addr "$f" lb2)" 81 3
		mn_spec "etp-local-drop-$f-$p" "$CL_CLIENT" drop "" "$p" "$(addr "$f" "$B")" 31090 1
		mn_spec "etp-local-drop-$f-$p" "$CL_CLIENT" drop "" "$p" "$(addr "$f" "$C")" 31090 1
		# iTP Local, endpoints pa1 (node-a) and pb1 (node-b): each node's
		# pods reach their own node's endpoint; node-c's get nothing.
		[ "$p" = udp ] && port=53 || port=80
		vip=10.96.1.40
		[ "$f" = ipv6 ] && vip=fd00:96::1:40
		mn_spec "itp-local-$f-$p" "${CL_POD_NS[pa2]}" "peer=$(addr "$f" pa2)" pa1 "$p" "$vip" $port 4
		mn_spec "itp-local-$f-$p" "${CL_POD_NS[pb2]}" "peer=$(addr "$f" pb2)" pb1 "$p" "$vip" $port 4
		mn_spec "itp-local-none-$f-$p" "${CL_POD_NS[pc1]}" drop "" "$p" "$vip" $port 1
	done
done
mn_run 2
mn_judge

# mn_diag: what each node's datapath counted (non-zero counters and drop
# reasons), for a failure's diagnosis.
mn_diag() {
	local n
	for n in "${CL_NODES[@]}"; do
		note "${CL_NODE_NAME[$n]}: $(sp "$n" stats --json 2>/dev/null | "$CL_PY" -c '
import json, sys
try:
    r = json.load(sys.stdin)
except ValueError:
    print("no stats"); sys.exit()
c = " ".join("%s=%s" % (k, v) for k, v in r.get("counters", {}).items() if v and k not in ("rx_bytes",))
d = " ".join("%s=%s" % (k, v.get("packets")) for k, v in r.get("reasons", {}).items() if v.get("packets"))
print(c + " | drops: " + (d or "none"))')"
	done
	local pod
	for pod in "${CL_PODS[@]}"; do
		note "pod $pod: $(ip netns exec "${CL_POD_NS[$pod]}" nstat -az 2>/dev/null | awk '$2 != 0 && ($1 ~ /Csum|InErrors|Retrans|Reset|Abort|OutRsts|InNoRoutes|Drop|Overflow|Syncookies/) {printf "%s=%s ", $1, $2}')"
	done
	for n in "${CL_NODES[@]}"; do
		note "node ${CL_NODE_NAME[$n]}: $(ip netns exec "$n" nstat -az 2>/dev/null | awk '$2 != 0 && ($1 ~ /Csum|InErrors|Martian|InNoRoutes|Drop|InAddrErrors|ForwDatagrams|OutNoRoutes/) {printf "%s=%s ", $1, $2}')"
	done
}

# ---- phase 2: established connections through ECMP survive endpoint changes ------

# 200 connections per family to web's echo port on LB1; node-b's endpoint
# (pb1) leaves web and comes back while they echo. Each must keep echoing,
# from the pod that answered it first.
for f in $FAMS; do
	cl_conns_start "$CL_CLIENT" "$(addr "$f" lb1)" 90 200 "$CL_TMP/conns-$f" 90
	CONNS_PID[$f]=$CL_CONNS_PID
done
for f in $FAMS; do
	cl_until 15 test -s "$CL_TMP/conns-$f" || note "conns-$f: no connect report after 15 s"
done
sleep 1
conns_why=""
WEB_EPS="pa1 pc1"
mn_apply || conns_why="removing pb1: $MN_WHY"
sleep 1.5
WEB_EPS="pa1 pb1 pc1"
mn_apply || conns_why+="${conns_why:+; }adding pb1 back: $MN_WHY"
sleep 1.5
for f in $FAMS; do
	res=$(cl_conns_stop "$CL_TMP/conns-$f" "${CONNS_PID[$f]}")
	note "conns-$f: $res"
	verdict=$(echo "$res" | "$CL_PY" -c '
import json, sys
try:
    r = json.load(sys.stdin)
except ValueError:
    print("no report from the connection client"); sys.exit()
bad = []
if r["connected"] != r["n"]:
    bad.append("%d of %d connected" % (r["connected"], r["n"]))
if r["broken"]:
    bad.append("%d broke" % r["broken"])
if not r["backends"].get("pb1"):
    bad.append("none went to pb1, whose removal was the point")
if r["rounds"] < 3:
    bad.append("only %d echo rounds" % r["rounds"])
if bad:
    print(", ".join(bad) + "; backends %s; first errors: %s" % (r["backends"], "; ".join(r["errors"])))
')
	[ -n "$conns_why" ] && verdict="${verdict:+$verdict; }config: $conns_why"
	if [ -z "$verdict" ]; then
		pass "ecmp-conns-survive-$f"
	else
		fail "ecmp-conns-survive-$f" "$verdict"
		mn_diag
	fi
done

# ---- phase 3: eTP Local health checks, and moving the only endpoint -------------

# hc_codes FAMILY: "A B C": the HTTP status of healthCheckNodePort on each
# node ("000": nothing answered).
hc_codes() {
	local n out=""
	for n in "${CL_NODES[@]}"; do
		out+="$(ip netns exec "$CL_CLIENT" curl -s -g -o /dev/null --max-time 2 -w '%{http_code}' \
			"$(cl_url "$(addr "$1" "$n")" 31091 /)") "
	done
	echo "${out% }"
}

# hc_wait FAMILY WANT [TRIES]: poll (bounded: TRIES, default 30, and 3 s)
# until hc_codes says WANT; MN_GOT is what it said last.
hc_wait() {
	local i got deadline=$((SECONDS + 4))
	for ((i = 0; i < ${3:-30} && SECONDS <= deadline; i++)); do
		got=$(hc_codes "$1")
		[ "$got" = "$2" ] && return 0
		sleep 0.1
	done
	MN_GOT=$got
	return 1
}

WITH_HC=1
hc_why=""
mn_apply || hc_why="config with healthCheckNodePort: $MN_WHY"
for f in $FAMS; do
	if hc_wait "$f" "200 503 503" "$([ -n "$hc_why" ] && echo 1)"; then
		[ -z "$hc_why" ] && pass "etp-local-healthcheck-$f" ||
			fail "etp-local-healthcheck-$f" "$hc_why"
	else
		fail "etp-local-healthcheck-$f" "node-a node-b node-c said $MN_GOT, expected 200 503 503${hc_why:+; $hc_why}"
	fi
done
# The only pod moves to node-b (in Kubernetes: a new pod, a new endpoint).
ELOCAL_EP=pb1
move_why=""
mn_apply || move_why="config moving the endpoint: $MN_WHY"
for f in $FAMS; do
	if ! hc_wait "$f" "503 200 503" "$([ -n "$move_why" ] && echo 1)"; then
		fail "etp-local-move-$f" "after the move node-a node-b node-c said $MN_GOT, expected 503 200 503${move_why:+; $move_why}"
		continue
	fi
	for p in $PROTOS; do
		mn_spec "etp-local-move-$f" "$CL_CLIENT" "peer=$(addr "$f" client)" pb1 "$p" "$(addr "$f" "$B")" 31090 2
		mn_spec "etp-local-move-$f" "$CL_CLIENT" drop "" "$p" "$(addr "$f" "$A")" 31090 1
	done
done
if [ "$MN_N" -gt 0 ]; then
	mn_run 2
	mn_judge "$move_why"
fi
ELOCAL_EP=pa1 WITH_HC=0

# ---- phase 4: loadBalancerSourceRanges --------------------------------------------

# lbsr_phase CASE-PREFIX RULE RANGES: lbsr with RANGES, then traffic from the
# client to LB2:84 checked against RULE.
lbsr_phase() {
	local c=$1 rule=$2 f p why=""
	LBSR=$3
	mn_apply || why="config with loadBalancerSourceRanges $3: $MN_WHY"
	for f in $FAMS; do
		for p in $PROTOS; do
			if [ "$rule" = drop ]; then
				mn_spec "$c-$f-$p" "$CL_CLIENT" drop "" "$p" "$(addr "$f" lb2)" 84 1
			else
				mn_spec "$c-$f-$p" "$CL_CLIENT" "peer=$(addr "$f" client)" pa1 "$p" "$(addr "$f" lb2)" 84 3
			fi
		done
	done
	if [ -n "$why" ]; then
		mn_judge "$why"
	else
		mn_run 2
		mn_judge
	fi
}
lbsr_phase lbsr-allowed "" "[192.0.2.0/24, 10.20.0.0/24, \"2001:db8::/64\", \"fd00:20::/64\"]"
lbsr_phase lbsr-denied drop "[192.0.2.0/24, \"2001:db8::/64\"]"
LBSR=""
mn_apply || note "restoring the config: $MN_WHY"

# ---- phase 5: direct server return --------------------------------------------------

for f in $FAMS; do
	cli=$(addr "$f" client)
	for p in $PROTOS; do
		# Remote pods through each node's NodePort, and web through ECMP:
		# the pod always sees the client.
		mn_spec "dsr-$f-$p" "$CL_CLIENT" "peer=$cli" pb1 "$p" "$(addr "$f" "$A")" 31082 2
		mn_spec "dsr-$f-$p" "$CL_CLIENT" "peer=$cli" pc1 "$p" "$(addr "$f" "$B")" 31083 2
		mn_spec "dsr-$f-$p" "$CL_CLIENT" "peer=$cli" pa1 "$p" "$(addr "$f" "$C")" 31081 2
		port=80
		[ "$p" = udp ] && port=53
		mn_spec "dsr-$f-$p" "$CL_CLIENT" "peer=$cli" "pa1 pb1 pc1" "$p" "$(addr "$f" lb1)" $port 9
	done
done
if mn_start_all --dsr; then
	mn_run 2
	mn_judge
else
	mn_judge "$MN_WHY"
fi
mn_start_all || e2e_abort "the daemons did not start again without --dsr: $MN_WHY"

# ---- phase 6: SNAT port exhaustion ------------------------------------------------------

# node-a SNATs with 4 ports; more connections than that to one remote pod
# (pb1's echo, through node-a's NodePort 31182 of local-b): the extra ones
# fail and are counted; once they close, new ones work again. Short
# conntrack timeouts so that closed flows give their ports back soon.
snat_why=""
sp_node_restart "$A" "$CFG" --snat-ports 61000-61003 --ct-timeout-fin 1 --ct-timeout-close 1 \
	--ct-gc-interval 1 ||
	snat_why="svcplane run --snat-ports 61000-61003 did not start on node-a: $(sp_node_why "$A")"

# snat_drops: the sum of node-a's drop reasons whose name contains "snat".
snat_drops() {
	sp "$A" stats --json 2>/dev/null | "$CL_PY" -c '
import json, sys
try:
    r = json.load(sys.stdin)["reasons"]
except (ValueError, KeyError):
    print(0); sys.exit()
print(sum(v.get("packets", 0) for k, v in r.items() if "snat" in k))'
}

for f in $FAMS; do
	if [ -n "$snat_why" ]; then
		fail "snat-exhaustion-$f" "$snat_why"
		continue
	fi
	st="$CL_TMP/snat-$f"
	cl_conns_start "$CL_CLIENT" "$(addr "$f" "$A")" 31182 8 "$st" 60
	pid=$CL_CONNS_PID
	if ! cl_until 15 test -s "$st"; then
		cl_conns_stop "$st" "$pid" >/dev/null
		fail "snat-exhaustion-$f" "the 8 connections did not report within 15 s"
		continue
	fi
	read -r _ ok _ _ <"$st"
	drops=$(snat_drops)
	res=$(cl_conns_stop "$st" "$pid")
	note "snat-$f: $res; snat drops on node-a: $drops"
	why=""
	[ "$ok" -ge 1 ] && [ "$ok" -le 4 ] || why="$ok of 8 connections got through 4 SNAT ports, expected 1 to 4"
	[ "${drops:-0}" -gt 0 ] || why+="${why:+; }no drop reason with \"snat\" counted on node-a"
	# After they closed: a new connection through node-a to pb1 (bounded).
	again=""
	for ((i = 0; i < 15; i++)); do
		again=$(cl_probe "$CL_CLIENT" "snat$f$i" 2 1 "tcp,$(addr "$f" "$A"),31082,1" | cut -d' ' -f3-)
		[[ $again == pb1\ * ]] && break
		sleep 1
	done
	[[ $again == pb1\ * ]] || why+="${why:+; }no new connection after they closed (15 s): $again"
	if [ -z "$why" ]; then pass "snat-exhaustion-$f"; else fail "snat-exhaustion-$f" "$why"; fi
done
