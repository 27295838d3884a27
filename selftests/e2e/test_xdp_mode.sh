#!/bin/bash
# --xdp-mode (README, `svcplane run --help`): auto attaches native XDP where
# the driver has it and falls back to generic XDP with a warning where it
# does not; native on a device without native XDP fails with a message that
# names the device and suggests generic. The node's uplink is a veth
# (native XDP); a bridge in the node namespace has none (and this kernel
# may lack the dummy driver).
# What is attached is read with `ip link`, not with svcplane.
#
#   web  LoadBalancer 10.96.0.10 | LB 10.10.0.100, TCP 80->8080, endpoint pod1
. "$(dirname "$0")/lib.sh"

e2e_cases xdp-auto-native-where-supported xdp-auto-falls-back-to-generic \
	xdp-auto-warns xdp-auto-serves xdp-native-veth-hint xdp-restart-switches-to-generic \
	xdp-restart-generic-serves xdp-generic-no-veth-hint xdp-restart-auto-keeps-mode \
	xdp-native-unsupported-fails-clearly

e2e_begin --pods 1
NODE=$E2E_NODE
NOXDP=spbr0
{
	cat <<EOF
services:
  - name: web
    namespace: demo
    type: LoadBalancer
    clusterIPs: [10.96.0.10]
    loadBalancerIPs: [10.10.0.100]
    ports:
      - {name: http, protocol: TCP, port: 80, targetPort: 8080}
endpointSlices:
EOF
	yaml_slices demo web web '[{name: http, protocol: TCP, port: 8080}]' pod1
} | e2e_write_config
# The bridge (no ports) lives in the node namespace and goes with it.
ip -n "$NODE" link add "$NOXDP" type bridge &&
	ip -n "$NODE" link set "$NOXDP" up &&
	ip -n "$NODE" addr add 10.20.0.1/24 dev "$NOXDP" || e2e_abort "could not create $NOXDP in the node namespace"

# stop_daemon: the running daemon stopped (TERM, bounded), its links left pinned.
stop_daemon() {
	kill -TERM "$SP_PID"
	cl_until 10 bash -c '! kill -0 "$1" 2>/dev/null' _ "$SP_PID" || cl_kill_pid "$SP_PID"
	wait "$SP_PID" 2>/dev/null
}

# xdp_of IFACE: the XDP attachment `ip link` shows on IFACE: "xdp" (native),
# "xdpgeneric", "xdpoffload" or "" (none).
xdp_of() {
	ip -n "$NODE" -o link show dev "$1" 2>/dev/null | grep -oE '\b(xdpgeneric|xdpoffload|xdpdrv|xdp)\b' | head -1
}

: >>"$E2E_LOG"
from=$(wc -l <"$E2E_LOG")
if ! e2e_start_daemon --iface "$NOXDP" --xdp-mode auto; then
	e2e_abort "svcplane --xdp-mode auto did not become ready with $NOXDP"
fi
up_mode=$(xdp_of up0)
br_mode=$(xdp_of "$NOXDP")
note "--xdp-mode auto: up0 (veth) has '$up_mode', $NOXDP has '$br_mode'"
check xdp-auto-native-where-supported "up0 (veth, native XDP) has '${up_mode:-nothing}', expected xdp (native)" \
	test "$up_mode" = xdp
check xdp-auto-falls-back-to-generic "$NOXDP (no native XDP) has '${br_mode:-nothing}', expected xdpgeneric" \
	test "$br_mode" = xdpgeneric
warn=$(tail -n "+$((from + 1))" "$E2E_LOG" | grep -m1 -iE "$NOXDP.*generic|generic.*$NOXDP")
[ -n "$warn" ] && note "daemon said: $warn"
check xdp-auto-warns "no log line about $NOXDP falling back to generic XDP" \
	bash -c '[[ $1 == *warn* ]]' _ "$warn"
e2e_http_n "$CL_CLIENT" 10.10.0.100 80 5
e2e_expect_all xdp-auto-serves 5 1 pod1
# Native XDP on a veth costs connections (README, Limits): the daemon says
# so, and names the way out.
hint=$(tail -n "+$((from + 1))" "$E2E_LOG" | grep -m1 'up0 is a veth')
[ -n "$hint" ] && note "daemon said: $hint"
check xdp-native-veth-hint "no log line saying up0 is a veth with native XDP and pointing at --xdp-mode generic" \
	bash -c '[[ $1 == *"--xdp-mode generic"* ]]' _ "$hint"

# A restart keeps the pinned XDP links (no gap in service) and swaps the
# program in; a link keeps the mode it was made in, so a restart asked for
# the other mode must make a new one (README: --xdp-mode generic on veth
# uplinks), while auto keeps whatever is attached.
stop_daemon
from=$(wc -l <"$E2E_LOG")
if e2e_start_daemon --iface "$NOXDP" --xdp-mode generic; then
	up_mode=$(xdp_of up0)
	check xdp-generic-no-veth-hint "the veth hint was logged with generic XDP on up0" \
		bash -c '! tail -n "+$(($2 + 1))" "$1" | grep -q "up0 is a veth"' _ "$E2E_LOG" "$from"
	check xdp-restart-switches-to-generic "after a restart with --xdp-mode generic up0 has '${up_mode:-nothing}', expected xdpgeneric" \
		test "$up_mode" = xdpgeneric
	e2e_http_n "$CL_CLIENT" 10.10.0.100 80 5
	e2e_expect_all xdp-restart-generic-serves 5 1 pod1
	stop_daemon
	if e2e_start_daemon --iface "$NOXDP" --xdp-mode auto; then
		up_mode=$(xdp_of up0)
		check xdp-restart-auto-keeps-mode "after a restart with --xdp-mode auto up0 has '${up_mode:-nothing}', expected the xdpgeneric it had" \
			test "$up_mode" = xdpgeneric
	else
		fail xdp-restart-auto-keeps-mode "svcplane --xdp-mode auto did not become ready after the generic run"
	fi
else
	fail xdp-restart-switches-to-generic "svcplane --xdp-mode generic did not become ready after the native run"
	fail xdp-restart-generic-serves "no daemon"
	fail xdp-generic-no-veth-hint "no daemon"
	fail xdp-restart-auto-keeps-mode "no daemon"
fi

# native on the bridge: the daemon must fail (bounded wait), naming the
# device and pointing at generic XDP.
stop_daemon
sp "$NODE" detach >/dev/null 2>&1
from=$(wc -l <"$E2E_LOG")
sp_start "$NODE" "$E2E_LOG" --config "$E2E_CONFIG" --iface "$NOXDP" --xdp-mode native
NATIVE_PID=$SP_PID
exited=0
cl_until 30 bash -c '! kill -0 "$1" 2>/dev/null' _ "$NATIVE_PID" && exited=1
rc=0
if [ $exited = 1 ]; then
	wait "$NATIVE_PID"
	rc=$?
else
	cl_kill_pid "$NATIVE_PID"
fi
msg=$(tail -n "+$((from + 1))" "$E2E_LOG" | grep -m1 "attach XDP to $NOXDP")
[ -n "$msg" ] && note "daemon said: $msg"
if [ $exited = 0 ]; then
	fail xdp-native-unsupported-fails-clearly "svcplane --xdp-mode native still runs 30 s after start with $NOXDP"
elif [ "$rc" = 0 ]; then
	fail xdp-native-unsupported-fails-clearly "svcplane --xdp-mode native exited 0 with $NOXDP"
elif [[ $msg != *generic* ]]; then
	fail xdp-native-unsupported-fails-clearly "exit status $rc, but no 'attach XDP to $NOXDP: ... generic' message: $(tail -n "+$((from + 1))" "$E2E_LOG" | grep -m2 -i 'error' | tr '\n' ' ')"
else
	pass xdp-native-unsupported-fails-clearly
fi
sp "$NODE" detach >/dev/null 2>&1
