#!/bin/bash
# svcplane against a REAL control plane (issue 12): etcd, kube-apiserver and
# kube-controller-manager built from the official Go modules
# (selftests/k8s-real/go.mod, scripts/k8s-real/build.sh) run in a namespace
# of their own, linked to node-a by a veth (scripts/k8s-real/lib.sh).
#
# - The ServiceAccount and exactly deploy/serviceaccount.yaml,
#   clusterrole.yaml and clusterrolebinding.yaml are applied (server-side
#   apply, as `kubectl apply --server-side`); svcplane runs with a token of
#   that ServiceAccount from the TokenRequest API, so a verb missing from the
#   ClusterRole fails the test.
# - The Node and the Pods are API objects; the harness plays kubelet: it marks
#   each Pod Running/Ready through the status subresource with its namespace's
#   addresses, and the real EndpointSlice controller writes the slices.
# - Services are applied without clusterIP or nodePort: what the apiserver
#   allocated is read back and must carry real traffic.
# Run with make test-k8s (it builds the control plane first); not in the e2e
# group of make test (scripts/run-tests.sh, NOT_IN_GROUP).
# K8S_REAL_LOGS=DIR keeps svcplane's and the components' logs in DIR.
. "$(dirname "$0")/lib.sh"
# shellcheck source=../../scripts/k8s-real/lib.sh
. "$REPO/scripts/k8s-real/lib.sh"

e2e_cases control-plane-up rbac-manifests-applied token-request \
	endpointslices-by-controller daemon-syncs-with-deploy-rbac \
	clusterip-allocated-v4 clusterip-allocated-v6 host-to-clusterip nodeport-allocated \
	pod-not-ready-removed service-deleted deleted-service-slices-collected \
	apiserver-down-keeps-traffic apiserver-restart-resumes-watch never-writes-to-api

for b in etcd kube-apiserver kube-controller-manager; do
	if [ ! -x "$KR_BIN/$b" ]; then
		# Not a skip: make test-k8s builds them first; a missing binary
		# here means the build step was left out.
		for c in "${E2E_CASES[@]}"; do fail "$c" "no $KR_BIN/$b (scripts/k8s-real/build.sh)"; done
		exit 1
	fi
done

e2e_begin --pods 3
NODE=$E2E_NODE
KR_ID=$CL_ID
KR_NS="spk$KR_ID-cp"

real_end() {
	local rc=$?
	if [ "$E2E_FAILS" -gt 0 ] && [ -n "$KR_DIR" ]; then
		kr_tail kube-apiserver 2>&1
		kr_tail kube-controller-manager 2>&1
	fi
	kr_down
	if [ -n "${K8S_REAL_LOGS:-}" ] && mkdir -p "$K8S_REAL_LOGS"; then
		cp "$E2E_LOG" "$KR_DIR"/*.log "$K8S_REAL_LOGS/" 2>/dev/null
		note "logs kept in $K8S_REAL_LOGS"
	fi
	(exit $rc)
	e2e_end
}
trap real_end EXIT

T0=$SECONDS
if kr_up "$CL_TMP/k8s" "$NODE" 2>"$CL_TMP/kr_up.err"; then
	pass control-plane-up
	note "control plane ready in $((SECONDS - T0)) s (namespace $KR_NS, API $KR_API_ADDR:$KR_PORT)"
else
	sed 's/^/    /' "$CL_TMP/kr_up.err"
	e2e_abort "the control plane did not start: $(head -1 "$CL_TMP/kr_up.err")"
fi

# jq-less JSON reads: json_get EXPR reads one JSON document on stdin and
# prints EXPR evaluated on it as "d" (a str; lists are space-joined).
json_get() {
	"$CL_PY" -c 'import json,sys
d = json.load(sys.stdin)
v = eval(sys.argv[1])
print(" ".join(map(str, v)) if isinstance(v, list) else v)' "$1"
}

# ---- RBAC and the ServiceAccount, exactly as deploy/ has them -------------------

why_apply=""
kr_apply /api/v1/namespaces/kube-system/serviceaccounts/svcplane "$REPO/deploy/serviceaccount.yaml" \
	>/dev/null 2>"$CL_TMP/apply.err" || why_apply+="serviceaccount.yaml: $(cat "$CL_TMP/apply.err") "
kr_apply /apis/rbac.authorization.k8s.io/v1/clusterroles/svcplane "$REPO/deploy/clusterrole.yaml" \
	>/dev/null 2>"$CL_TMP/apply.err" || why_apply+="clusterrole.yaml: $(cat "$CL_TMP/apply.err") "
kr_apply /apis/rbac.authorization.k8s.io/v1/clusterrolebindings/svcplane \
	"$REPO/deploy/clusterrolebinding.yaml" \
	>/dev/null 2>"$CL_TMP/apply.err" || why_apply+="clusterrolebinding.yaml: $(cat "$CL_TMP/apply.err") "
if [ -z "$why_apply" ]; then pass rbac-manifests-applied; else
	e2e_abort "applying deploy/: ${why_apply:0:400}"
fi

# A token for the ServiceAccount (what kubelet projects into the pod).
TOKEN=$(echo '{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"expirationSeconds":3600}}' |
	kr_api -X POST -H 'Content-Type: application/json' --data-binary @- \
		/api/v1/namespaces/kube-system/serviceaccounts/svcplane/token 2>"$CL_TMP/token.err" |
	json_get 'd["status"]["token"]')
if [ -n "$TOKEN" ] && [ "${#TOKEN}" -gt 100 ]; then pass token-request; else
	e2e_abort "TokenRequest for kube-system/svcplane: $(head -c 300 "$CL_TMP/token.err")"
fi
KUBECONFIG_SP=$CL_TMP/svcplane.kubeconfig
cat >"$KUBECONFIG_SP" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: real
  cluster:
    server: https://$KR_API_ADDR:$KR_PORT
    certificate-authority: $KR_DIR/pki/ca.crt
users:
- name: svcplane
  user:
    token: $TOKEN
contexts:
- name: real
  context: {cluster: real, user: svcplane}
current-context: real
EOF

# ---- Node, Pods (the harness's "kubelet"), Services -------------------------------

apply_or_why() { # CASE-less helper: PATH FILE; says why on failure
	kr_apply "$1" "$2" 2>&1 >/dev/null | head -c 300
}
setup_err=""
setup_err+=$(printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: e2e}\n' |
	apply_or_why /api/v1/namespaces/e2e -)
setup_err+=$(printf 'apiVersion: v1\nkind: Node\nmetadata:\n  name: node-a\n  labels: {kubernetes.io/hostname: node-a}\n' |
	apply_or_why /api/v1/nodes/node-a -)
# Node status by merge patch, as kubelet (server-side apply refuses two
# InternalIP entries: see kr_merge_patch).
NOW=$(date -u +%FT%TZ)
setup_err+=$(kr_merge_patch /api/v1/nodes/node-a/status - 2>&1 >/dev/null <<EOF
{"status": {"addresses": [{"type": "InternalIP", "address": "10.10.0.1"},
  {"type": "InternalIP", "address": "fd00:10::1"}, {"type": "Hostname", "address": "node-a"}],
 "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "e2e",
  "lastHeartbeatTime": "$NOW", "lastTransitionTime": "$NOW"}]}}
EOF
)

# pod_apply POD: the Pod object for namespace POD, on node-a, app=web.
pod_apply() {
	cat <<EOF | apply_or_why "/api/v1/namespaces/e2e/pods/$1" -
apiVersion: v1
kind: Pod
metadata: {name: $1, namespace: e2e, labels: {app: web}}
spec:
  nodeName: node-a
  automountServiceAccountToken: false
  containers:
  - name: web
    image: registry.invalid/e2e:never-pulled
    ports:
    - {name: http, containerPort: 8080}
    - {name: dns, containerPort: 5353, protocol: UDP}
EOF
}
# kubelet_status POD READY: what kubelet would report for POD: Running,
# its namespace's addresses, Ready True or False.
kubelet_status() {
	local now
	now=$(date -u +%FT%TZ)
	cat <<EOF | apply_or_why "/api/v1/namespaces/e2e/pods/$1/status" -
apiVersion: v1
kind: Pod
metadata: {name: $1, namespace: e2e}
status:
  phase: Running
  hostIP: 10.10.0.1
  hostIPs: [{ip: 10.10.0.1}, {ip: "fd00:10::1"}]
  podIP: ${CL_POD_V4[$1]}
  podIPs: [{ip: ${CL_POD_V4[$1]}}, {ip: "${CL_POD_V6[$1]}"}]
  startTime: "$now"
  conditions:
  - {type: PodScheduled, status: "True", lastTransitionTime: "$now"}
  - {type: Initialized, status: "True", lastTransitionTime: "$now"}
  - {type: ContainersReady, status: "$2", lastTransitionTime: "$now"}
  - {type: Ready, status: "$2", lastTransitionTime: "$now"}
EOF
}
for p in "${CL_PODS[@]}"; do
	setup_err+=$(pod_apply "$p")
	setup_err+=$(kubelet_status "$p" True)
done

# Services: no clusterIP, no nodePort. web is dual-stack if the cluster is.
setup_err+=$(cat <<EOF | apply_or_why /api/v1/namespaces/e2e/services/web -
apiVersion: v1
kind: Service
metadata: {name: web, namespace: e2e}
spec:
  selector: {app: web}
  ipFamilyPolicy: PreferDualStack
  ports:
  - {name: http, port: 80, targetPort: http}
  - {name: dns, port: 53, protocol: UDP, targetPort: 5353}
EOF
)
setup_err+=$(cat <<EOF | apply_or_why /api/v1/namespaces/e2e/services/web-np -
apiVersion: v1
kind: Service
metadata: {name: web-np, namespace: e2e}
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {name: http, port: 8080, targetPort: 8080}
EOF
)
[ -z "$setup_err" ] || e2e_abort "creating the Node, Pods and Services: ${setup_err:0:400}"

WEB_IPS=$(kr_api /api/v1/namespaces/e2e/services/web | json_get 'd["spec"]["clusterIPs"]')
NP_PORT=$(kr_api /api/v1/namespaces/e2e/services/web-np | json_get 'd["spec"]["ports"][0]["nodePort"]')
WEB_V4=$(echo "$WEB_IPS" | tr ' ' '\n' | grep -m1 '\.')
WEB_V6=$(echo "$WEB_IPS" | tr ' ' '\n' | grep -m1 ':')
note "allocated: web clusterIPs $WEB_IPS, web-np nodePort $NP_PORT"

# slice_addrs SERVICE: the ready endpoint addresses of SERVICE's slices, as
# the real EndpointSlice controller wrote them, sorted.
slice_addrs() {
	kr_api "/apis/discovery.k8s.io/v1/namespaces/e2e/endpointslices?labelSelector=kubernetes.io/service-name=$1" |
		json_get 'sorted(a for s in d["items"] for e in (s.get("endpoints") or []) if e["conditions"].get("ready") for a in e["addresses"])'
}
want_all=$(for p in "${CL_PODS[@]}"; do echo "${CL_POD_V4[$p]}"; [ -n "$WEB_V6" ] && echo "${CL_POD_V6[$p]}"; done |
	LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//')
slices_are() { [ "$(slice_addrs "$1" | tr ' ' '\n' | LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//')" = "$2" ]; }
if cl_until 30 slices_are web "$want_all"; then pass endpointslices-by-controller; else
	fail endpointslices-by-controller "web's slices hold [$(slice_addrs web)], expected [$want_all]"
fi

# ---- svcplane, as the ServiceAccount ------------------------------------------

echo "=== svcplane run --kubeconfig ($(date +%T))" >>"$E2E_LOG"
sp_start "$NODE" "$E2E_LOG" --kubeconfig "$KUBECONFIG_SP" --node-name node-a ${SP_EXTRA_ARGS:-}
if sp_wait_ready "$NODE" "$SP_PID" 30 "$E2E_LOG" 0; then
	pass daemon-syncs-with-deploy-rbac
else
	note "svcplane log:"
	tail -n 15 "$E2E_LOG" | sed 's/^/    | /'
	e2e_abort "svcplane did not sync with the deploy/ RBAC"
fi

# How the watches reach the server: one TCP connection for the three
# watches would mean HTTP/2 multiplexing; three (what v1.36.3 shows today:
# the three transfers start together on one curl multi handle without
# CURLOPT_PIPEWAIT) means one connection each, whatever the protocol.
# Diagnostics only.
note "svcplane's TCP connections to the API server: $(ip netns exec "$NODE" ss -Htn state established \
	dst "$KR_API_ADDR:$KR_PORT" | wc -l) (Services, EndpointSlices and Node watched)"

PODS="${CL_PODS[*]}"
# Traffic needs the maps written; the first snapshot is applied at sync.
[ -n "$WEB_V4" ] || fail clusterip-allocated-v4 "web has no IPv4 clusterIP ($WEB_IPS)"
if [ -n "$WEB_V4" ]; then
	e2e_http_n "${CL_POD_NS[pod1]}" "$WEB_V4" 80 12
	e2e_expect_all clusterip-allocated-v4 12 2 "$PODS"
fi
if [ -z "$WEB_V6" ]; then
	fail clusterip-allocated-v6 "PreferDualStack gave no IPv6 clusterIP ($WEB_IPS): cluster not dual-stack"
else
	e2e_http_n "${CL_POD_NS[pod2]}" "$WEB_V6" 80 12
	e2e_expect_all clusterip-allocated-v6 12 2 "$PODS"
fi
if [ -n "$WEB_V4" ]; then
	e2e_http_n "$NODE" "$WEB_V4" 80 12
	e2e_expect_all host-to-clusterip 12 2 "$PODS"
else
	fail host-to-clusterip "no IPv4 clusterIP"
fi
if [ -n "$NP_PORT" ]; then
	e2e_http_n "$CL_CLIENT" 10.10.0.1 "$NP_PORT" 12
	e2e_expect_all nodeport-allocated 12 2 "$PODS"
else
	fail nodeport-allocated "web-np has no nodePort"
fi

# ---- changes through the controller ---------------------------------------------

# pod3 stops being Ready (kubelet's readiness probe fails): the controller
# marks its endpoint not ready and svcplane stops sending to it.
err=$(kubelet_status pod3 False)
want_12=$(for p in pod1 pod2; do echo "${CL_POD_V4[$p]}"; [ -n "$WEB_V6" ] && echo "${CL_POD_V6[$p]}"; done |
	LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//')
if [ -n "$err" ]; then
	fail pod-not-ready-removed "marking pod3 not ready: $err"
elif ! cl_until 30 slices_are web "$want_12"; then
	fail pod-not-ready-removed "the controller did not drop pod3: slices [$(slice_addrs web)]"
else
	sleep 1.5 # the daemon's coalescing (at most 1 s after the first event)
	e2e_http_n "${CL_POD_NS[pod1]}" "$WEB_V4" 80 16
	e2e_expect_all pod-not-ready-removed 16 2 "pod1 pod2"
fi

# Deleting the Service: the ClusterIP stops answering (no Service: not ours;
# the packet goes on unrouted and the connection fails).
gone() { ! cl_http "${CL_POD_NS[pod1]}" "$WEB_V4" 80 >/dev/null; }
if ! kr_api -X DELETE /api/v1/namespaces/e2e/services/web >/dev/null 2>"$CL_TMP/del.err"; then
	fail service-deleted "DELETE web: $(head -c 200 "$CL_TMP/del.err")"
elif cl_until 10 sh -c "! ip netns exec $NODE $SP_BIN services --bpffs-dir $CL_PINDIR --json | grep -q '\"e2e/web:'"; then
	if gone; then pass service-deleted; else fail service-deleted "web's ClusterIP still answers"; fi
else
	fail service-deleted "e2e/web is still in the maps 10 s after the delete"
fi
# ...and the garbage collector removes its slices (ownerReferences), as in
# a real cluster (without it, slices of deleted Services would pile up in
# what svcplane lists and watches).
no_slices() { [ -z "$(slice_addrs web)" ]; }
if cl_until 30 no_slices; then pass deleted-service-slices-collected; else
	fail deleted-service-slices-collected "web's slices still hold [$(slice_addrs web)] 30 s after the delete"
fi

# ---- kube-apiserver restart ------------------------------------------------------

# The API server goes away (an upgrade, a crash): established state keeps
# serving. When it comes back its watch cache is new (it starts from etcd's
# current revision), so a watch resumed from an older resourceVersion may be
# answered 410 Gone or "too large resource version": either way svcplane
# must converge on a Service created after the restart.
kr_stop_apiserver
e2e_http_n "$CL_CLIENT" 10.10.0.1 "$NP_PORT" 8
e2e_expect_all apiserver-down-keeps-traffic 8 2 "pod1 pod2"
T_UP=$SECONDS
kr_start_apiserver
if ! kr_until 90 "kube-apiserver /readyz after the restart" kr_api_ready 2>"$CL_TMP/restart.err"; then
	fail apiserver-restart-resumes-watch "$(cat "$CL_TMP/restart.err")"
else
	note "kube-apiserver ready again after $((SECONDS - T_UP)) s"
	err=$(cat <<EOF | apply_or_why /api/v1/namespaces/e2e/services/late -
apiVersion: v1
kind: Service
metadata: {name: late, namespace: e2e}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
EOF
)
	LATE_V4=$(kr_api /api/v1/namespaces/e2e/services/late 2>/dev/null | json_get 'd["spec"]["clusterIP"]')
	late_in_maps() { sp "$NODE" services --json 2>/dev/null | grep -q '"e2e/late:'; }
	T_UP=$SECONDS
	if [ -n "$err" ] || [ -z "$LATE_V4" ]; then
		fail apiserver-restart-resumes-watch "creating e2e/late after the restart: $err"
	elif ! cl_until 60 late_in_maps; then
		fail apiserver-restart-resumes-watch "e2e/late ($LATE_V4) not in the maps 60 s after it was created"
	else
		note "e2e/late in the maps $((SECONDS - T_UP)) s after it was created"
		# Its slice comes later: kube-controller-manager's informers were
		# cut by the restart too and relist with their own backoff.
		late_answers() { cl_http "${CL_POD_NS[pod1]}" "$LATE_V4" 80 >/dev/null; }
		cl_until 60 slices_are late "${CL_POD_V4[pod1]} ${CL_POD_V4[pod2]}" ||
			note "the controller wrote no slice for e2e/late in 60 s: [$(slice_addrs late)]"
		cl_until 20 late_answers
		note "e2e/late answers $((SECONDS - T_UP)) s after it was created"
		e2e_http_n "${CL_POD_NS[pod1]}" "$LATE_V4" 80 8
		e2e_expect_all apiserver-restart-resumes-watch 8 2 "pod1 pod2"
	fi
fi
grep -E 'k8s: (warn|error|info)' "$E2E_LOG" | grep -iE 'watch|410|gone|resource|relist|list' |
	tail -n 6 | cut -c1-200 | sed 's/^/    after restart: /'

# The daemon only reads: the API server's audit would say so; here the
# apiserver's own request log (v=1 logs no requests) is not enough, so ask
# RBAC: the ServiceAccount can do nothing but get/list/watch.
can() {
	echo "{\"apiVersion\":\"authorization.k8s.io/v1\",\"kind\":\"SubjectAccessReview\",\"spec\":{\"user\":\"system:serviceaccount:kube-system:svcplane\",\"resourceAttributes\":{\"verb\":\"$1\",\"resource\":\"$2\",\"group\":\"$3\"}}}" |
		kr_api -X POST -H 'Content-Type: application/json' --data-binary @- \
			/apis/authorization.k8s.io/v1/subjectaccessreviews | json_get 'd["status"].get("allowed", False)'
}
verdicts="$(can update services "") $(can create endpointslices discovery.k8s.io) $(can watch endpointslices discovery.k8s.io) $(can list nodes "")"
if [ "$verdicts" = "False False True True" ]; then pass never-writes-to-api; else
	fail never-writes-to-api "SubjectAccessReview update svc, create slices, watch slices, list nodes: $verdicts (want False False True True)"
fi

if kill -0 "$SP_PID" 2>/dev/null; then :; else note "svcplane exited during the test"; fi
grep -iE 'error|warn|fail' "$E2E_LOG" | grep -v '^===' | head -n 10 | sed 's/^/    log: /'
