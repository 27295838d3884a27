# Sourced by the image scripts: how to run podman on this machine.
#
# Two things in some machines keep podman's defaults from starting any
# container (a VM's sandbox, a CI runner); each is detected, said once, and
# met with a podman option, not with a change to the host:
# - crun (Debian's default OCI runtime for podman, 1.8) refuses cgroup v1
#   hierarchies beside a cgroup v2 one that has controllers ("cgroups in
#   hybrid mode not supported, drop all controllers from cgroupv2"): runc
#   runs there.
# - Without CAP_SYS_RESOURCE, podman's default rlimits (RLIMIT_NOFILE and
#   RLIMIT_NPROC raised far above the caller's) cannot be set ("setrlimit
#   `RLIMIT_NPROC`: Operation not permitted"): ask for limits below ours.
# PODMAN is the podman command with the global options; PODMAN_RUN_OPTS the
# options for `podman run` and `podman build`.
PODMAN=(podman)
PODMAN_RUN_OPTS=()
# (cgroupfs files have no size: read them.)
v2ctl=$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null || true)
if [ -n "$v2ctl" ] && [ -d /sys/fs/cgroup/cpu ]; then
	echo "podman: cgroup v2 controllers ($v2ctl) beside cgroup v1: crun refuses that, using runc" >&2
	PODMAN+=(--runtime runc)
	PODMAN_RUN_OPTS+=(--runtime runc) # podman build does not take the global one
fi
if [ $(((0x$(awk '/^CapEff:/ { print $2 }' /proc/self/status) >> 24) & 1)) -eq 0 ]; then
	echo "podman: no CAP_SYS_RESOURCE here: containers get nofile and nproc limits of 4096, not podman's defaults" >&2
	PODMAN_RUN_OPTS+=(--ulimit nofile=4096:4096 --ulimit nproc=4096:4096)
fi
