#!/bin/bash
# Start the real control plane (scripts/k8s-real/lib.sh) by hand, for
# exploring: scripts/k8s-real/up.sh [DIR [NODE-NS]] (DIR default
# build/k8s-real/run). It keeps running after this script returns; stop it
# with scripts/k8s-real/down.sh DIR. Tests use the lib directly (kr_up/kr_down
# in their traps) and never this pair.
set -u
. "$(dirname "$0")/lib.sh"
DIR=${1:-$KR_REPO/${OUT:-build}/k8s-real/run}
if [ -e "$DIR/netns" ]; then
	echo "k8s-real: $DIR is in use (namespace $(cat "$DIR/netns")); run down.sh $DIR first" >&2
	exit 1
fi
trap 'kr_down; rm -f "$DIR/netns"; exit 1' INT TERM
if ! kr_up "$DIR" "${2:-}"; then
	kr_down
	rm -f "$DIR/netns"
	exit 1
fi
trap - INT TERM
cat <<EOF2
k8s-real: up in namespace $KR_NS (API https://$KR_API_ADDR:$KR_PORT, logs in $DIR)
  ip netns exec $KR_NS curl --cacert $DIR/pki/ca.crt --cert $DIR/pki/admin.crt \\
      --key $DIR/pki/admin.key https://127.0.0.1:$KR_PORT/readyz
  stop: scripts/k8s-real/down.sh $DIR
EOF2
