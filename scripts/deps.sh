#!/bin/bash
# Install every Debian package svcplane needs to build, test, demo and
# benchmark, and mount bpffs. `--check` only reports what is missing;
# `--fuzz` adds what `make fuzz` needs (clang's libFuzzer runtime);
# `--stress` what `make test-stress` needs (stress-ng); `--image` what
# `make image` and `make test-image` need (podman, and debootstrap to make
# the base image locally, without a registry).
set -eu
PKGS=(clang llvm make gcc libbpf-dev libelf-dev zlib1g-dev bpftool iproute2
      libjson-c-dev libcurl4-openssl-dev libssl-dev libyaml-dev libmicrohttpd-dev pkgconf
      iptables nftables conntrack socat ethtool curl python3 openssl
      valgrind gnuplot-nox procps groff-base prometheus)
check=0
for a in "$@"; do
	case "$a" in
	--check) check=1 ;;
	--fuzz) PKGS+=(libclang-rt-dev) ;;
	--stress) PKGS+=(stress-ng) ;;
	--image) PKGS+=(podman debootstrap runc) ;;
	*) echo "usage: $0 [--check] [--fuzz] [--stress] [--image]" >&2; exit 2 ;;
	esac
done
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
mounted=1
mount | grep -q ' /sys/fs/bpf type bpf' || mounted=0
if [ $check -eq 1 ]; then
	[ ${#missing[@]} -eq 0 ] && [ $mounted -eq 1 ] && exit 0
	echo "missing: ${missing[*]:-} ${mounted/1/}" >&2
	exit 1
fi
if [ ${#missing[@]} -gt 0 ]; then
	echo "deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ $mounted -eq 0 ]; then
	echo "deps: mounting bpffs at /sys/fs/bpf"
	mount -t bpf bpf /sys/fs/bpf
fi
