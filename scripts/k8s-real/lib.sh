# shellcheck shell=bash
# A real Kubernetes control plane (etcd, kube-apiserver,
# kube-controller-manager built by scripts/k8s-real/build.sh) inside a network
# namespace of its own, for make test-k8s. Source it, then:
#
#   kr_up DIR [NODE-NS]   start everything, state (certificates, etcd data,
#                         logs, kubeconfigs) under DIR; with NODE-NS, link the
#                         control plane's namespace to NODE-NS by a veth so the
#                         API server is reachable from there at $KR_API_ADDR
#   kr_api ARGS...        curl the API server as cluster admin (from inside
#                         the control plane's namespace): kr_api -X GET /api/v1/nodes
#   kr_apply PATH FILE    server-side apply of a YAML or JSON manifest to PATH
#   kr_bulk [THREADS]     many requests at once (scale cases; bulk.py)
#   kr_stop_apiserver / kr_start_apiserver   restart kube-apiserver (faults)
#   kr_down               end every process started and remove the namespace
#
#   control-plane ns "spk<ID>-cp"             node ns (NODE-NS)
#   +-----------------------------------+      +------------------+
#   | etcd       127.0.0.1:2379         |      |                  |
#   | apiserver  0.0.0.0:6443           |      |                  |
#   | kcm        (talks to 127.0.0.1)   |      |                  |
#   | kapi0 10.10.9.1/30 ---------------+-veth-+ kapi0 10.10.9.2/30|
#   +-----------------------------------+      +------------------+
#
# Why a namespace of its own and not the node's: the node namespace runs
# svcplane's datapath, and the control plane is not part of what it serves
# (a real control plane sits on other hosts); the veth is the node's path to
# it, as the API server's real address is in a cluster (--k8s-api-server).
# The API server advertises 10.10.9.1, so the `kubernetes` Service gets an
# EndpointSlice with 10.10.9.1:6443 like any other.
#
# Nothing listens outside these namespaces; every wait is bounded; kr_down is
# safe to call twice and from traps.

KR_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KR_BIN=${KR_BIN:-$KR_REPO/${OUT:-build}/k8s-real/bin}
KR_ID=${KR_ID:-$$}
KR_NS="spk$KR_ID-cp"
KR_API_ADDR=10.10.9.1
KR_NODE_SIDE_ADDR=10.10.9.2
KR_PORT=6443
KR_SVC_CIDRS=10.96.0.0/16,fd00:96::/108
KR_NODEPORTS=30000-32767
KR_DIR=""
KR_PIDS=()
KR_APISERVER_PID=""
KR_NS_MADE=0
KR_LINKED_NS=""

kr_log() { echo "k8s-real: $*" >&2; }

# kr_openssl ARGS...: openssl, quiet unless it fails.
kr_openssl() {
	local out
	out=$(openssl "$@" 2>&1) || { kr_log "openssl $1 failed: $out"; return 1; }
}

# kr_cert NAME SUBJECT EXT: a key and a certificate signed by the CA in
# KR_DIR, with the extensions EXT (an openssl extension section body).
kr_cert() {
	local d=$KR_DIR/pki n=$1
	kr_openssl genrsa -out "$d/$n.key" 2048 || return 1
	kr_openssl req -new -key "$d/$n.key" -subj "$2" -out "$d/$n.csr" || return 1
	printf '%s\n' "$3" >"$d/$n.ext"
	kr_openssl x509 -req -in "$d/$n.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
		-days 2 -sha256 -extfile "$d/$n.ext" -out "$d/$n.crt" || return 1
}

# kr_pki: CA, API serving certificate, admin client certificate,
# service-account signing key pair.
kr_pki() {
	local d=$KR_DIR/pki
	mkdir -p "$d" || return 1
	kr_openssl genrsa -out "$d/ca.key" 2048 || return 1
	kr_openssl req -x509 -new -key "$d/ca.key" -subj "/CN=svcplane-test-ca" -days 2 -sha256 \
		-out "$d/ca.crt" || return 1
	kr_cert apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:$KR_API_ADDR,IP:10.96.0.1,IP:fd00:96::1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" || return 1
	# system:masters: the harness itself and kube-controller-manager (the
	# test is about svcplane's identity, not the controllers').
	kr_cert admin "/O=system:masters/CN=kubernetes-admin" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth" || return 1
	kr_openssl genrsa -out "$d/sa.key" 2048 || return 1
	kr_openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" || return 1
	cat >"$KR_DIR/admin.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: real
  cluster:
    server: https://127.0.0.1:$KR_PORT
    certificate-authority: pki/ca.crt
users:
- name: admin
  user:
    client-certificate: pki/admin.crt
    client-key: pki/admin.key
contexts:
- name: real
  context: {cluster: real, user: admin}
current-context: real
EOF
}

# kr_bg LOG CMD...: CMD in the background in the control plane's namespace.
kr_bg() {
	local log=$1; shift
	ip netns exec "$KR_NS" "$@" >"$log" 2>&1 </dev/null &
	KR_PIDS+=($!)
	echo $! >>"$KR_DIR/pids"
}

kr_bg_append() {
	local log=$1; shift
	ip netns exec "$KR_NS" "$@" >>"$log" 2>&1 </dev/null &
	KR_PIDS+=($!)
	echo $! >>"$KR_DIR/pids"
}

# kr_until TIMEOUT_S WHAT CMD...: run CMD every 0.2 s until it succeeds, at
# most TIMEOUT_S seconds (by the clock and by count). Says WHAT on time-out.
kr_until() {
	local t=$1 what=$2 i deadline; shift 2
	deadline=$((SECONDS + t))
	for ((i = 0; i < t * 5 && SECONDS <= deadline; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	kr_log "timed out after ${t}s waiting for $what"
	return 1
}

# kr_api CURL-ARGS... PATH: one request to the API server as admin, from the
# control plane's namespace. PATH is the last argument. Prints the body;
# fails (curl -f) on an HTTP error, printing the error body on stderr.
kr_api() {
	local path=${*: -1} d=$KR_DIR/pki out rc
	out=$(ip netns exec "$KR_NS" curl -sS --max-time 20 --cacert "$d/ca.crt" \
		--cert "$d/admin.crt" --key "$d/admin.key" -w '\n%{http_code}' \
		"${@:1:$#-1}" "https://127.0.0.1:$KR_PORT$path" 2>&1)
	rc=$?
	local code=${out##*$'\n'}
	out=${out%$'\n'*}
	if [ $rc -ne 0 ] || [ "${code:0:1}" != 2 ]; then
		echo "HTTP $code: $(echo "$out" | tr -s ' \n' ' ' | cut -c1-400)" >&2
		return 1
	fi
	echo "$out"
}

# kr_apply PATH FILE: server-side apply (what `kubectl apply --server-side`
# sends) of the manifest FILE (YAML or JSON, "-" for stdin) to the object
# PATH (/api/v1/namespaces/kube-system/serviceaccounts/svcplane).
kr_apply() {
	kr_api -X PATCH -H 'Content-Type: application/apply-patch+yaml' --data-binary "@$2" \
		"$1?fieldManager=svcplane-e2e&force=true"
}

# kr_merge_patch PATH FILE: a JSON merge patch (RFC 7386) of FILE to PATH,
# for what server-side apply refuses: Node status.addresses is a list map
# keyed by type in the apply schema, so two InternalIPs (a dual-stack
# node, as kubelet reports it with a plain update) cannot be applied.
kr_merge_patch() {
	kr_api -X PATCH -H 'Content-Type: application/merge-patch+json' --data-binary "@$2" "$1"
}

# kr_bulk [THREADS] < REQUESTS: many requests at once as admin, over a few
# keep-alive connections (scripts/k8s-real/bulk.py says the input format).
# Prints one summary line ("N requests, M failed, S s"); fails if any failed.
kr_bulk() {
	local d=$KR_DIR/pki
	ip netns exec "$KR_NS" "${CL_PY:-python3}" "$KR_REPO/scripts/k8s-real/bulk.py" \
		"https://127.0.0.1:$KR_PORT" "$d/ca.crt" "$d/admin.crt" "$d/admin.key" "${1:-4}"
}

kr_etcd_healthy() { ip netns exec "$KR_NS" curl -sf --max-time 2 http://127.0.0.1:2379/health; }
kr_api_ready() { kr_api /readyz; }
# The controller manager is up (informers synced, controllers running) once
# its serviceaccount controller has made the `default` ServiceAccount.
kr_kcm_ready() { kr_api /api/v1/namespaces/default/serviceaccounts/default; }

# kr_link NODE-NS: the veth from the control plane's namespace to NODE-NS.
kr_link() {
	ip -n "$KR_NS" link add kapi0 type veth peer name kapi0 netns "$1" || return 1
	ip -n "$KR_NS" addr add "$KR_API_ADDR/30" dev kapi0 || return 1
	ip -n "$1" addr add "$KR_NODE_SIDE_ADDR/30" dev kapi0 || return 1
	ip -n "$KR_NS" link set kapi0 up || return 1
	ip -n "$1" link set kapi0 up || return 1
	KR_LINKED_NS=$1
}

# kr_start_apiserver: kube-apiserver in the background (its PID in
# KR_APISERVER_PID; the log is appended to, so a restart keeps the first
# run's lines). Does not wait: see kr_api_ready.
kr_start_apiserver() {
	local p=$KR_DIR/pki
	kr_bg_append "$KR_DIR/kube-apiserver.log" "$KR_BIN/kube-apiserver" \
		--etcd-servers=http://127.0.0.1:2379 \
		--bind-address=0.0.0.0 --secure-port=$KR_PORT --advertise-address=$KR_API_ADDR \
		--tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" \
		--client-ca-file="$p/ca.crt" \
		--service-account-issuer=https://kubernetes.default.svc.cluster.local \
		--service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
		--service-cluster-ip-range=$KR_SVC_CIDRS --service-node-port-range=$KR_NODEPORTS \
		--authorization-mode=RBAC,Node --profiling=false --v=1
	KR_APISERVER_PID=${KR_PIDS[-1]}
}

# kr_stop_apiserver: TERM kube-apiserver (KILL after 10 s) and wait for it,
# as for a restart or an upgrade of the control plane.
kr_stop_apiserver() {
	local i
	kill -TERM "$KR_APISERVER_PID" 2>/dev/null || return 0
	for ((i = 0; i < 100; i++)); do
		kill -0 "$KR_APISERVER_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$KR_APISERVER_PID" 2>/dev/null
	wait "$KR_APISERVER_PID" 2>/dev/null
	return 0
}

# kr_up DIR [NODE-NS]: see the top of this file. Returns non-zero (having
# said why, with the log's last lines) if any part does not start in time.
kr_up() {
	KR_DIR=$1
	local b
	for b in etcd kube-apiserver kube-controller-manager; do
		[ -x "$KR_BIN/$b" ] || { kr_log "no $KR_BIN/$b (run scripts/k8s-real/build.sh)"; return 1; }
	done
	command -v openssl >/dev/null || { kr_log "openssl is not installed"; return 1; }
	mkdir -p "$KR_DIR" && KR_DIR=$(cd "$KR_DIR" && pwd) || return 1
	echo "$KR_NS" >"$KR_DIR/netns"
	kr_pki || return 1
	ip netns add "$KR_NS" || return 1
	KR_NS_MADE=1
	ip -n "$KR_NS" link set lo up || return 1
	if [ -n "${2:-}" ]; then
		kr_link "$2" || return 1
	else
		ip -n "$KR_NS" addr add "$KR_API_ADDR/32" dev lo || return 1
	fi

	# etcd: one member, loopback only; no fsync (test data, and it keeps a
	# busy 2-core machine from stalling the API server on disk flushes).
	kr_bg "$KR_DIR/etcd.log" "$KR_BIN/etcd" --name e2e --data-dir "$KR_DIR/etcd" \
		--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
		--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster e2e=http://127.0.0.1:2380 --unsafe-no-fsync --log-level warn
	kr_until 30 "etcd /health" kr_etcd_healthy || { kr_tail etcd; return 1; }

	kr_start_apiserver
	kr_until 90 "kube-apiserver /readyz" kr_api_ready || { kr_tail kube-apiserver; return 1; }

	local p=$KR_DIR/pki
	kr_bg "$KR_DIR/kube-controller-manager.log" "$KR_BIN/kube-controller-manager" \
		--kubeconfig="$KR_DIR/admin.kubeconfig" \
		--controllers=endpointslice-controller,serviceaccount-controller,serviceaccount-token-controller,garbage-collector-controller \
		--service-account-private-key-file="$p/sa.key" --root-ca-file="$p/ca.crt" \
		--use-service-account-credentials=false --leader-elect=false --secure-port=0 \
		--profiling=false --v=1
	kr_until 60 "kube-controller-manager (the default ServiceAccount)" kr_kcm_ready ||
		{ kr_tail kube-controller-manager; return 1; }
}

# kr_tail NAME: the last lines of a component's log, indented.
kr_tail() {
	[ -s "$KR_DIR/$1.log" ] || return 0
	echo "    --- $1 log (last 8 lines) ---" >&2
	tail -n 8 "$KR_DIR/$1.log" | cut -c1-300 | sed 's/^/    | /' >&2
}

# kr_down: TERM then KILL every process we started (by PID), then every
# process left in our namespace, then delete the namespace (which removes
# the veth). The data under KR_DIR is left for the caller to remove.
kr_down() {
	local pid i
	for pid in "${KR_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
	for ((i = 0; i < 50; i++)); do
		local alive=0
		for pid in "${KR_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
		[ $alive = 0 ] && break
		sleep 0.1
	done
	for pid in "${KR_PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	KR_PIDS=()
	if [ "$KR_NS_MADE" = 1 ]; then
		for pid in $(ip netns pids "$KR_NS" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
		ip netns delete "$KR_NS" 2>/dev/null
		KR_NS_MADE=0
	fi
	return 0
}
