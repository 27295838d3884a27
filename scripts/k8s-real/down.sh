#!/bin/bash
# Stop what scripts/k8s-real/up.sh DIR started: its processes (by the PIDs it
# recorded, TERM then KILL) and its network namespace. Removes DIR.
set -u
REPO=$(cd "$(dirname "$0")/../.." && pwd)
DIR=${1:-$REPO/${OUT:-build}/k8s-real/run}
[ -e "$DIR/netns" ] || { echo "k8s-real: nothing running from $DIR" >&2; exit 0; }
ns=$(cat "$DIR/netns")
pids=$(cat "$DIR/pids" 2>/dev/null)
for p in $pids; do kill -TERM "$p" 2>/dev/null; done
for ((i = 0; i < 50; i++)); do
	alive=0
	for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
	[ $alive = 0 ] && break
	sleep 0.1
done
for p in $pids; do kill -KILL "$p" 2>/dev/null; done
case $ns in spk*-cp) ip netns delete "$ns" 2>/dev/null ;; esac
rm -rf "$DIR"
echo "k8s-real: stopped ($ns)"
