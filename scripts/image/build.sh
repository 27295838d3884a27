#!/bin/bash
# Build svcplane's image with podman (Containerfile), without a registry.
#
# The base (BASE_IMAGE, default localhost/svcplane-base:bookworm) is made
# here when podman does not have it: a minimal Debian 12 root from
# debootstrap, fetched from the Debian mirror this host's apt uses, trimmed
# as debian:bookworm-slim is and `podman import`ed. It is kept in podman's
# storage, so later builds reuse it (and podman's layer cache) and fetch
# nothing but what changed. REBASE=1 makes it again.
# BASE_IMAGE=docker.io/library/debian:bookworm-slim uses a registry's image
# instead (podman pulls it).
#
#   IMAGE       the tag to build (default localhost/svcplane:latest)
#   BASE_IMAGE  the Containerfile's BASE
#   DEBIAN_MIRROR  where debootstrap fetches from (default: the host's apt source)
set -eu
cd "$(dirname "$0")/../.."
IMAGE=${IMAGE:-localhost/svcplane:latest}
LOCAL_BASE=localhost/svcplane-base:bookworm
BASE_IMAGE=${BASE_IMAGE:-$LOCAL_BASE}
. scripts/image/podman.sh

# The first Debian archive URI in this host's apt sources (deb822 or
# one-line format), skipping the security archive.
host_mirror() {
	local f
	for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -r "$f" ] || continue
		case $f in
		*.sources) awk '/^URIs:/ { for (i = 2; i <= NF; i++) print $i }' "$f" ;;
		*) awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' "$f" ;;
		esac
	done | grep -v -- '-security' | head -1
}

make_base() {
	local mirror root t0=$SECONDS
	mirror=${DEBIAN_MIRROR:-$(host_mirror)}
	[ -n "$mirror" ] || { echo "image: no Debian mirror in /etc/apt/sources*; set DEBIAN_MIRROR" >&2; exit 1; }
	root=$(mktemp -d /var/tmp/svcplane-base.XXXXXX)
	# shellcheck disable=SC2064 # expand $root now
	trap "rm -rf '$root'" EXIT
	echo "image: making $LOCAL_BASE with debootstrap from $mirror"
	debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1 || {
		tail -20 "$root.log" >&2
		echo "image: debootstrap failed (log: $root.log)" >&2
		exit 1
	}
	rm -f "$root.log"
	# What debian:bookworm-slim leaves out, and keeps out of later installs:
	# documentation, man pages, translations, apt's caches.
	cat >"$root/etc/dpkg/dpkg.cfg.d/svcplane-slim" <<'SLIM'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
SLIM
	cat >"$root/etc/apt/apt.conf.d/svcplane-slim" <<'SLIM'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
SLIM
	find "$root/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
	find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
	rm -rf "$root"/usr/share/{man,info,locale,lintian}/* "$root"/var/lib/apt/lists/* \
		"$root"/var/cache/apt/* "$root"/var/log/*.log "$root"/var/log/apt/*
	tar -C "$root" --numeric-owner -c . |
		"${PODMAN[@]}" import --change 'CMD ["/bin/bash"]' - "$LOCAL_BASE" >/dev/null
	rm -rf "$root"
	trap - EXIT
	echo "image: $LOCAL_BASE made in $((SECONDS - t0)) s"
}

if [ "$BASE_IMAGE" = "$LOCAL_BASE" ]; then
	if [ "${REBASE:-0}" = 1 ] || ! "${PODMAN[@]}" image exists "$LOCAL_BASE"; then
		make_base
	else
		echo "image: reusing $LOCAL_BASE (REBASE=1 makes it again)"
	fi
fi
# --network=host: apt in the build reaches the mirror as the host does (its
# /etc/hosts and resolver), with no container network to set up.
"${PODMAN[@]}" build "${PODMAN_RUN_OPTS[@]}" --network=host --build-arg "BASE=$BASE_IMAGE" -f Containerfile -t "$IMAGE" .
"${PODMAN[@]}" image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' "$IMAGE"
