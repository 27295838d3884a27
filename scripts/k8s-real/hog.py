#!/usr/bin/python3
# Holding API Priority and Fairness seats for test_k8s_real.sh's 429 case.
# A request keeps its seat for as long as the API server works on it, and
# a create that waits on a validating admission webhook keeps it for as long
# as the webhook takes: so a slow webhook and a client sending such creates
# back to back keep a priority level's seats taken, and every other request
# of that level is rejected (429) while they run.
#
#   hog.py webhook PORT CERT KEY DELAY_S
#       an HTTPS admission webhook on 127.0.0.1:PORT that allows everything
#       after DELAY_S seconds
#   hog.py hog URL CA TOKEN THREADS STOPFILE
#       THREADS loops creating ConfigMaps (label e2e-hog) in namespace e2e
#       as the bearer TOKEN until STOPFILE exists; prints "dispatched N,
#       rejected M (429)" when it stops. Each loop stops after 2,000 requests.
import http.client
import http.server
import json
import os
import ssl
import sys
import threading
import time
import urllib.parse


def webhook(port, cert, key, delay):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            review = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            time.sleep(delay)
            body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                               "response": {"uid": review["request"]["uid"],
                                            "allowed": True}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.serve_forever()


def hog(url, ca, token, nthreads, stopfile):
    u = urllib.parse.urlsplit(url)
    ctx = ssl.create_default_context(cafile=ca)
    counts = {"ok": 0, "429": 0, "other": 0}
    lock = threading.Lock()

    def loop(t):
        conn = None
        for i in range(2000):
            if os.path.exists(stopfile):
                break
            cm = {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"generateName": "hog-", "namespace": "e2e",
                               "labels": {"e2e-hog": "yes"}}}
            try:
                if conn is None:
                    conn = http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=60)
                conn.request("POST", "/api/v1/namespaces/e2e/configmaps", body=json.dumps(cm),
                             headers={"Content-Type": "application/json",
                                      "Authorization": "Bearer " + token})
                resp = conn.getresponse()
                resp.read()
                kind = "ok" if resp.status < 300 else "429" if resp.status == 429 else "other"
            except (OSError, http.client.HTTPException):
                kind, conn = "other", None
            with lock:
                counts[kind] += 1
            if kind != "ok":
                time.sleep(0.02)

    threads = [threading.Thread(target=loop, args=(t,)) for t in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("dispatched %d, rejected %d (429), other %d" % (counts["ok"], counts["429"],
                                                          counts["other"]), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["webhook"] and len(sys.argv) == 6:
        webhook(int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5]))
    elif sys.argv[1:2] == ["hog"] and len(sys.argv) == 7:
        hog(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6])
    else:
        print("usage: see the top of hog.py", file=sys.stderr)
        sys.exit(2)
