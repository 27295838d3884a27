#!/bin/bash
# The container image (Containerfile, `make image`) does what the DaemonSet
# asks of it: `svcplane --help` and `check-config` run in it, and `svcplane
# run` in it, with the DaemonSet's securityContext (not privileged, every
# capability dropped but those deploy/daemonset.yaml adds, read-only root,
# no privilege escalation, the node's bpffs mounted at /sys/fs/bpf), loads
# the datapath, attaches XDP to the node's uplink and serves a Service.
# `make test-image` builds the image first; this script only runs it
# (IMAGE, default localhost/svcplane:latest). Not in the e2e group
# (scripts/run-tests.sh, NOT_IN_GROUP): it needs podman (scripts/deps.sh
# --image).
#
#   web  LoadBalancer 10.96.0.10 | LB 10.10.0.100, TCP 80->8080, endpoint pod1
. "$(dirname "$0")/lib.sh"

IMAGE=${IMAGE:-localhost/svcplane:latest}
DS="$REPO/deploy/daemonset.yaml"

e2e_cases image-help image-check-config run-capabilities run-ready run-xdp-attached \
	run-serves detach-in-image

command -v podman >/dev/null || e2e_abort "podman is not installed (scripts/deps.sh --image, or make test-image)"
# shellcheck source=../../scripts/image/podman.sh
. "$REPO/scripts/image/podman.sh"
"${PODMAN[@]}" image exists "$IMAGE" || e2e_abort "no image $IMAGE (make image, or make test-image)"
# podman run with the options this machine needs (scripts/image/podman.sh).
prun() { "${PODMAN[@]}" run "${PODMAN_RUN_OPTS[@]}" "$@"; }

# ---- without a datapath ----
out=$(prun --rm --network=none "$IMAGE" --help 2>&1)
rc=$?
check image-help "svcplane --help in $IMAGE exited $rc: $(head -3 <<<"$out" | tr '\n' ' ')" \
	bash -c '[ "$1" = 0 ] && grep -q "^Usage: svcplane COMMAND" <<<"$2"' _ "$rc" "$out"

# The example of docs/CONFIG.md ("Shape"), the first YAML block there.
EXAMPLE=$(mktemp /tmp/sp$$-example.XXXXXX.yaml)
trap 'rm -f "$EXAMPLE"' EXIT
awk '/^```yaml/ { on = 1; next } on && /^```/ { exit } on' "$REPO/docs/CONFIG.md" >"$EXAMPLE"
out=$(prun --rm --network=none -v "$EXAMPLE:/etc/svcplane/config.yaml:ro" "$IMAGE" \
	check-config /etc/svcplane/config.yaml 2>&1)
rc=$?
check image-check-config "check-config on docs/CONFIG.md's example exited $rc: $out" \
	bash -c '[ "$1" = 0 ] && grep -q ": ok (1 services, 1 endpoint slices)" <<<"$2"' _ "$rc" "$out"

# ---- the daemon, as the DaemonSet runs it ----
# The DaemonSet's securityContext and mounts, read from the manifest itself.
caps=$(sed -n 's/^ *add: *\[\(.*\)\].*/\1/p' "$DS" | tr -d '" ' | tr ',' ' ')
grep -q '^ *privileged: false' "$DS" && grep -q 'drop: \["ALL"\]' "$DS" &&
	grep -q '^ *readOnlyRootFilesystem: true' "$DS" &&
	grep -q '^ *allowPrivilegeEscalation: false' "$DS" && [ -n "$caps" ] ||
	e2e_abort "deploy/daemonset.yaml: no securityContext of the expected shape (privileged: false, drop ALL, add [...], readOnlyRootFilesystem, allowPrivilegeEscalation)"
# Kubernetes' readOnlyRootFilesystem gives no tmpfs anywhere (podman's
# --read-only would put one on /run and /tmp): what the daemon writes needs
# a volume of the manifest.
SEC=(--cap-drop ALL --security-opt no-new-privileges --read-only --read-only-tmpfs=false)
for c in $caps; do SEC+=(--cap-add "$c"); done
seccomp=$(sed -n '/seccompProfile:/,/type:/s/^ *type: *\([A-Za-z]*\).*/\1/p' "$DS")
case ${seccomp:-RuntimeDefault} in
Unconfined) SEC+=(--security-opt seccomp=unconfined) ;;
RuntimeDefault) ;; # podman's default profile
*) e2e_abort "deploy/daemonset.yaml: seccompProfile type '$seccomp' is not one this test knows" ;;
esac
note "DaemonSet: capabilities $caps, seccomp ${seccomp:-RuntimeDefault (not set)}"

e2e_begin --pods 1
NODE=$E2E_NODE
CTR="sp$$-svcplane"
trap 'rm -f "$EXAMPLE"; "${PODMAN[@]}" rm -f -t 0 "$CTR" >/dev/null 2>&1; e2e_end' EXIT
{
	echo "services:"
	yaml_service demo web LoadBalancer "[10.96.0.10]" "[10.10.0.100]" \
		"{name: http, protocol: TCP, port: 80, targetPort: 8080}"
	echo "endpointSlices:"
	yaml_slices demo web web '[{name: http, protocol: TCP, port: 8080}]' pod1
} | e2e_write_config

# Capability names by number (linux/capability.h), to read CapEff.
CAPS=(CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP
	LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER
	SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE
	SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP
	MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF
	CHECKPOINT_RESTORE)
cap_names() { # hex mask -> sorted names
	local m=$((0x$1)) i
	for ((i = 0; i < ${#CAPS[@]}; i++)); do
		(((m >> i) & 1)) && echo "${CAPS[$i]}"
	done | sort | tr '\n' ' '
}
# What the container can get: the DaemonSet's set within this machine's
# bounding set (a runtime cannot grant more; podman leaves out the rest).
bnd=$(cap_names "$(awk '/^CapBnd:/ { print $2 }' /proc/self/status)")
want="" missing=""
for c in $caps; do
	if [[ " $bnd " == *" $c "* ]]; then want+="$c "; else missing+="$c "; fi
done
want=$(tr ' ' '\n' <<<"$want" | grep . | sort | tr '\n' ' ')
[ -n "$missing" ] && note "not in this machine's capability bounding set, so not in the container either: $missing(the daemon runs with less than the DaemonSet grants)"

# As the DaemonSet: the node's network (here: the node namespace) and each
# volume the manifest mounts, from the test's stand-in for it: the node's
# bpffs is the test's private instance, /run/svcplane a directory of the
# test. The config comes as a file (the manifest uses the API).
MOUNTS=(-v "$E2E_CONFIG:/etc/svcplane/config.yaml:ro")
mkdir -p "$CL_TMP/run-svcplane"
for m in $(sed -n 's/^ *mountPath: *//p' "$DS"); do
	case $m in
	/sys/fs/bpf) MOUNTS+=(-v "$CL_BPFFS:/sys/fs/bpf") ;;
	/sys/fs/cgroup) MOUNTS+=(-v "/sys/fs/cgroup:/sys/fs/cgroup:ro") ;;
	/run/svcplane) MOUNTS+=(-v "$CL_TMP/run-svcplane:/run/svcplane") ;;
	*) e2e_abort "deploy/daemonset.yaml mounts $m: this test has no stand-in for it" ;;
	esac
done
: >>"$E2E_LOG"
from=$(wc -l <"$E2E_LOG")
"${PODMAN[@]}" run "${PODMAN_RUN_OPTS[@]}" -d --name "$CTR" --network "ns:/run/netns/$NODE" \
	"${SEC[@]}" "${MOUNTS[@]}" -e NODE_NAME=node-a "$IMAGE" run --config /etc/svcplane/config.yaml --iface up0 \
	--pod-iface-pattern "$CL_POD_IF_PATTERN" --healthz-addr off >/dev/null ||
	e2e_abort "podman run of $IMAGE failed (see above)"
cpid=$("${PODMAN[@]}" inspect -f '{{.State.Pid}}' "$CTR" 2>/dev/null)
ctr_log() { "${PODMAN[@]}" logs "$CTR" >"$E2E_LOG" 2>&1; }
eff=""
[ -n "$cpid" ] && [ "$cpid" != 0 ] && eff=$(awk '/^CapEff:/ { print $2 }' "/proc/$cpid/status" 2>/dev/null)
if [ -n "$eff" ]; then
	got=$(cap_names "$eff")
	note "svcplane in the container has: $got"
	check run-capabilities "the container's svcplane has capabilities '$got', expected '$want'" \
		test "$got" = "$want"
else
	fail run-capabilities "the container is not running: $("${PODMAN[@]}" logs "$CTR" 2>&1 | tail -3 | tr '\n' ' ')"
fi

# Ready: `svcplane status` in the container (as `kubectl exec` would run
# it; its pid file is the container's) and the "running:" log line, within
# 20 s.
ready=0
deadline=$((SECONDS + 20))
while [ $SECONDS -le $deadline ]; do
	ctr_log
	if "${PODMAN[@]}" exec "$CTR" /usr/local/sbin/svcplane status >/dev/null 2>&1 &&
		sp_logged_running "$E2E_LOG" "$from"; then
		ready=1
		break
	fi
	[ "$("${PODMAN[@]}" inspect -f '{{.State.Running}}' "$CTR" 2>/dev/null)" = true ] || break
	sleep 0.2
done
ctr_log
if [ $ready = 0 ] && [ "$("${PODMAN[@]}" inspect -f '{{.State.Running}}' "$CTR" 2>/dev/null)" = true ]; then
	note "svcplane status in the container says:"
	"${PODMAN[@]}" exec "$CTR" /usr/local/sbin/svcplane status 2>&1 | sed 's/^/    | /'
fi
check run-ready "svcplane in the container did not become ready within 20 s (state: $("${PODMAN[@]}" inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$CTR" 2>&1))" \
	test $ready = 1

# What is attached, read with the kernel's tools, not with svcplane.
xdp=$(ip -n "$NODE" -d link show dev up0 2>/dev/null | grep -oE 'prog/xdp id [0-9]+ name [a-z_]+' | head -1)
note "up0: ${xdp:-no XDP program}"
check run-xdp-attached "up0 in the node namespace has no XDP program named sp_xdp ('ip -d link' says: '${xdp:-nothing}')" \
	bash -c '[[ $1 == *"name sp_xdp"* ]]' _ "$xdp"

e2e_http_n "$CL_CLIENT" 10.10.0.100 80 5
e2e_expect_all run-serves 5 1 pod1

# Stopping the container leaves the datapath (as the daemon on a host does);
# `svcplane detach` in the image, with the same capabilities, removes it.
"${PODMAN[@]}" stop -t 10 "$CTR" >/dev/null 2>&1
out=$(prun --rm --network "ns:/run/netns/$NODE" "${SEC[@]}" "${MOUNTS[@]}" "$IMAGE" detach 2>&1)
rc=$?
left=$(ip -n "$NODE" -d link show dev up0 2>/dev/null | grep -oE 'prog/xdp id [0-9]+' | head -1)
pins=$(find "$CL_PINDIR" -mindepth 1 2>/dev/null | head -3 | tr '\n' ' ')
if [ -z "$xdp" ]; then
	fail detach-in-image "nothing was attached to detach (see run-xdp-attached)"
else
	check detach-in-image "svcplane detach in the image exited $rc ($out); XDP left: '${left:-none}', pins left: '${pins:-none}'" \
		bash -c '[ "$1" = 0 ] && [ -z "$2" ] && [ -z "$3" ]' _ "$rc" "$left" "$pins"
fi
