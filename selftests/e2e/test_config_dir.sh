#!/bin/bash
# `svcplane run --config-dir DIR`: every *.yaml file of DIR is served. A
# file renamed into place applies without SIGHUP; a bad file is reported
# with its name and line and keeps its last good state while another file
# changed with it still applies; a removed file takes its Service along.
# Three ClusterIP Services, one per file, reached from pod1:
#   s1 10.96.0.41:80 (a.yaml)   s2 10.96.0.42:80 (b.yaml)   s3 10.96.0.43:80 (c.yaml)
. "$(dirname "$0")/lib.sh"

e2e_cases dir-serves-every-file change-applies-without-sighup bad-file-reported \
	bad-file-keeps-state other-file-applies removed-file-removes-service

e2e_begin --pods 3
DIR=$CL_TMP/conf.d
mkdir -p "$DIR" || e2e_abort "mkdir $DIR"
CLIENT=${CL_POD_NS[pod1]}

# put FILE: stdin becomes DIR/FILE the way the docs ask (a dot name, then a rename).
put() { cat >"$DIR/.$1.tmp" && mv "$DIR/.$1.tmp" "$DIR/$1"; }
# svc NAME VIP POD...: a ClusterIP Service on VIP:80 to the pods' 8080.
svc() {
	local name=$1 vip=$2
	shift 2
	echo "services:"
	yaml_service e2e "$name" ClusterIP "[$vip]" "" "{name: http, protocol: TCP, port: 80, targetPort: 8080}"
	echo "endpointSlices:"
	yaml_slices e2e "$name" "$name" '[{name: http, protocol: TCP, port: 8080}]' "$@"
}
# answered_by VIP POD: every one of 10 requests answered, only by POD.
answered_by() {
	e2e_http_n "$CLIENT" "$1" 80 10
	[ "$E2E_OK" = 10 ] && [ "$E2E_BACKENDS" = "$2" ]
}

svc s1 10.96.0.41 pod2 | put a.yaml
svc s2 10.96.0.42 pod2 | put b.yaml
from=$(wc -l <"$E2E_LOG" 2>/dev/null || echo 0)
sp_start "$E2E_NODE" "$E2E_LOG" --config-dir "$DIR"
sp_wait_ready "$E2E_NODE" "$SP_PID" 20 "$E2E_LOG" "$from" || e2e_abort "svcplane did not become ready"

if answered_by 10.96.0.41 pod2 && answered_by 10.96.0.42 pod2; then
	pass dir-serves-every-file
else
	fail dir-serves-every-file "s1 or s2 not served by pod2: $E2E_OK/10 by '$E2E_BACKENDS' $E2E_FIRST_ERR"
fi

# b.yaml changes (s2 moves to pod3): applied with no signal.
svc s2 10.96.0.42 pod3 | put b.yaml
if cl_until 10 answered_by 10.96.0.42 pod3; then
	pass change-applies-without-sighup
else
	fail change-applies-without-sighup "s2 not moved to pod3 within 10 s: $E2E_OK/10 by '$E2E_BACKENDS'"
fi

# A bad a.yaml (s1 to pod3, and a port out of range) and a new c.yaml, together.
log_before=$(wc -l <"$E2E_LOG")
svc s1 10.96.0.41 pod3 | sed 's/port: 80,/port: 70000,/' | put a.yaml
svc s3 10.96.0.43 pod2 | put c.yaml
grep -q 'port: 70000,' "$DIR/a.yaml" || note "could not break a.yaml (no 'port: 80,')"
bad_msg() { tail -n "+$((log_before + 1))" "$E2E_LOG" | grep -m1 -E '/a\.yaml:[0-9]+:[0-9]+: .*last good state is kept'; }
cl_until 10 bad_msg
msg=$(bad_msg)
check bad-file-reported "no log line naming a.yaml:LINE:COLUMN and the kept state" test -n "$msg"
[ -n "$msg" ] && note "daemon said: $msg"
if cl_until 10 answered_by 10.96.0.43 pod2; then
	pass other-file-applies
else
	fail other-file-applies "s3 (c.yaml) not served by pod2: $E2E_OK/10 by '$E2E_BACKENDS' $E2E_FIRST_ERR"
fi
if answered_by 10.96.0.41 pod2; then
	pass bad-file-keeps-state
else
	fail bad-file-keeps-state "s1 not served by pod2 alone any more: $E2E_OK/10 by '$E2E_BACKENDS'"
fi

# b.yaml removed: s2 is gone (no Service: the address answers nothing).
rm -f "$DIR/b.yaml"
gone() { ! sp "$E2E_NODE" services 2>/dev/null | grep -q 'e2e/s2:'; }
if cl_until 10 gone; then
	pass removed-file-removes-service
else
	fail removed-file-removes-service "svcplane services still lists s2: $(sp "$E2E_NODE" services 2>&1 | grep 'e2e/s2:' | head -2)"
fi
