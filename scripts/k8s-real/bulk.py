#!/usr/bin/python3
# Many API requests at once, for the scale cases of test_k8s_real.sh (1,000
# Pods, 10,000 Services): one curl per object would take minutes, since each
# pays a process start and a TLS handshake. This sends them over a few
# keep-alive HTTPS connections in parallel, as cluster admin.
#
# Usage (in the control plane's namespace):
#   bulk.py URL CA CERT KEY [THREADS] < requests
# Each input line is one request: "METHOD PATH KIND BODY", KIND being json
# (application/json), apply (server-side apply, as kr_apply) or merge (JSON
# merge patch), BODY one line of JSON. Requests run in any order, so a
# caller that needs an order (a Pod before its status) makes two calls.
# Prints "N requests, M failed, S s" and the first failures; exits 1 if any
# request failed (an HTTP status other than 2xx, or no answer after 3 tries).
import http.client
import ssl
import sys
import threading
import time
import urllib.parse

KINDS = {
    "json": "application/json",
    "apply": "application/apply-patch+yaml",
    "merge": "application/merge-patch+json",
}


def main():
    if len(sys.argv) < 5:
        print("usage: bulk.py URL CA CERT KEY [THREADS] < requests", file=sys.stderr)
        return 2
    url = urllib.parse.urlsplit(sys.argv[1])
    ctx = ssl.create_default_context(cafile=sys.argv[2])
    ctx.load_cert_chain(sys.argv[3], sys.argv[4])
    nthreads = int(sys.argv[5]) if len(sys.argv) > 5 else 4
    reqs = []
    for n, line in enumerate(sys.stdin, 1):
        parts = line.rstrip("\n").split(" ", 3)
        if len(parts) != 4 or parts[2] not in KINDS:
            print("bulk.py: line %d: want METHOD PATH KIND BODY" % n, file=sys.stderr)
            return 2
        reqs.append(parts)
    lock = threading.Lock()
    state = {"next": 0, "failed": []}

    def take():
        with lock:
            i = state["next"]
            state["next"] += 1
            return reqs[i] if i < len(reqs) else None

    def worker():
        conn = None
        while True:
            r = take()
            if r is None:
                break
            method, path, kind, body = r
            if kind == "apply":
                path += ("&" if "?" in path else "?") + "fieldManager=svcplane-e2e&force=true"
            why = None
            # A connection the server closed (idle timeout, GOAWAY) is
            # reopened: up to 3 tries per request, never more.
            for _ in range(3):
                try:
                    if conn is None:
                        conn = http.client.HTTPSConnection(url.hostname, url.port, context=ctx,
                                                           timeout=60)
                    conn.request(method, path, body=body.encode(),
                                 headers={"Content-Type": KINDS[kind]})
                    resp = conn.getresponse()
                    data = resp.read()
                    why = None if 200 <= resp.status < 300 else \
                        "HTTP %d: %s" % (resp.status, data[:200].decode(errors="replace"))
                    break
                except (OSError, http.client.HTTPException) as e:
                    why = "%s: %s" % (type(e).__name__, e)
                    conn = None
            if why:
                with lock:
                    state["failed"].append("%s %s: %s" % (method, path, why))

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    failed = state["failed"]
    print("%d requests, %d failed, %.1f s" % (len(reqs), len(failed), time.monotonic() - t0))
    for f in failed[:3]:
        print("  " + f)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
