#!/bin/bash
# Build the real control plane pinned in selftests/k8s-real/go.mod
# (kube-apiserver, kube-controller-manager, etcd) into $OUT/k8s-real/bin/.
# Skips when all three binaries are there and newer than go.mod/go.sum (the
# cache: a cold build takes many minutes on 2 cores). Only Go modules are
# downloaded (from the Go module proxy, into the module cache).
#
# Usage: scripts/k8s-real/build.sh [--force]
set -eu
REPO=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-build}
case $OUT in /*) ;; *) OUT=$REPO/$OUT ;; esac
SRC=$REPO/selftests/k8s-real
BIN=$OUT/k8s-real/bin
BINS="kube-apiserver kube-controller-manager etcd"

force=0
[ "${1:-}" = --force ] && force=1

fresh() {
	local b
	for b in $BINS; do
		[ -x "$BIN/$b" ] || return 1
		[ "$BIN/$b" -nt "$SRC/go.mod" ] && [ "$BIN/$b" -nt "$SRC/go.sum" ] || return 1
	done
}
if [ $force = 0 ] && fresh; then
	echo "k8s-real: binaries up to date in $BIN"
	exit 0
fi

# Go as the machine has it (/usr/local/go), also when PATH lacks it.
command -v go >/dev/null || PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null || { echo "k8s-real: go is not installed (/usr/local/go/bin/go)" >&2; exit 1; }
mkdir -p "$BIN"
t0=$SECONDS
echo "k8s-real: building $BINS ($(go version | cut -d' ' -f3)) into $BIN; a cold build takes minutes"
cd "$SRC"
# -mod=mod: the module is not vendored; go.sum pins every module's hash.
# Build into a temporary directory and move into place, so an interrupted
# build never leaves a binary that passes fresh().
tmp=$(mktemp -d "$BIN/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
GOFLAGS=-mod=mod go build -trimpath -ldflags=-s -o "$tmp/" \
	k8s.io/kubernetes/cmd/kube-apiserver \
	k8s.io/kubernetes/cmd/kube-controller-manager \
	./etcd
for b in $BINS; do mv -f "$tmp/$b" "$BIN/$b"; done
echo "k8s-real: built in $((SECONDS - t0)) s: $(cd "$BIN" && du -ch $BINS | tail -1 | cut -f1)"
