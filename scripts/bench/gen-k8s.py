#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Generate the benchmark's Services and EndpointSlices as Kubernetes objects
(a JSON list for the test API server's admin "apply" verb), the same Services,
addresses and endpoints as gen-config.sh, gen-iptables.sh and gen-nft.sh (see
addr.awk): N ClusterIP Services with E endpoints each, Service 0 (10.96.0.1,
one port 80 per protocol of PROTOS, endpoints 10.244.0.11..) last.

usage: gen-k8s.py [--change|--slice0] N E [PROTOS]
  --change: only Service 0's EndpointSlice, its last endpoint replaced.
  --slice0: only Service 0's EndpointSlice as it was (to undo --change).
The objects come from scripts/k8s-test-apiserver.py's own builders.
"""
import importlib.util
import json
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "apiserver", os.path.join(here, "..", "k8s-test-apiserver.py"))
api = importlib.util.module_from_spec(spec)
spec.loader.exec_module(api)

args = sys.argv[1:]
mode = args[0] if args and args[0] in ("--change", "--slice0") else ""
if mode:
    args = args[1:]
if len(args) < 2:
    sys.exit(__doc__)
N, E = int(args[0]), int(args[1])
protos = (args[2] if len(args) > 2 else "tcp").split(",")


def ip4(n):
    return "%d.%d.%d.%d" % (n >> 24 & 255, n >> 16 & 255, n >> 8 & 255, n & 255)


def vip(i):
    return ip4((10 << 24) + (96 << 16) + i + 1)


def ep(i, j, changed=False):
    if i == 0:
        return "10.244.0.%d" % (11 + (E if changed and j == E - 1 else j))
    return ip4((172 << 24) + (16 << 16) + i * E + j)


def ports(i):
    return protos if i == 0 else ["tcp"]


def service(i):
    return api.svc_obj("bench", "svc%d" % i, vip(i),
                       ["%s:80:%s:8080" % (p, p.upper()) for p in ports(i)])


def eslice(i, changed=False):
    return api.slice_obj("bench", "svc%d-a" % i, "svc%d" % i,
                         [ep(i, j, changed) for j in range(E)],
                         ["%s:8080:%s" % (p, p.upper()) for p in ports(i)])


order = [(k + 1) % N for k in range(N)]  # 1..N-1, then 0
if mode:
    objs = [eslice(0, mode == "--change")]
else:
    objs = [service(i) for i in order] + [eslice(i) for i in order]
sys.stdout.write(json.dumps(objs, separators=(",", ":")))
sys.stdout.write("\n")
