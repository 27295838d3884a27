#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A small Kubernetes API server for svcplane's tests (python3 standard library only).

It speaks the wire protocol the svcplane client uses, as the Kubernetes API
reference and "API concepts" pages describe it:

  * HTTPS with a CA and server certificate generated at start (openssl CLI);
    a bearer token or a client certificate signed by that CA is required
    (401 with a v1 Status otherwise).
  * GET /api/v1/services, /apis/discovery.k8s.io/v1/endpointslices,
    /api/v1/nodes (and the namespaced / single-object forms): Lists with
    metadata.resourceVersion, paginated with limit/continue (pages come from a
    snapshot taken at the first page, as etcd's MVCC gives the real server).
  * ?watch=true: a chunked stream of newline-delimited {"type","object"}
    events (ADDED, MODIFIED, DELETED, BOOKMARK with allowWatchBookmarks,
    ERROR with a 410 Status when the resourceVersion is older than the
    bounded event history). fieldSelector metadata.name/metadata.namespace.
  * Items in a typed List carry no kind/apiVersion; objects in watch events
    and single GETs do (as the real server encodes them).

Tests drive it through a plain-HTTP admin port on 127.0.0.1 (see ADMIN below)
or the `ctl` sub-command:

  k8s-test-apiserver.py serve --dir DIR     start; writes DIR/ready (JSON) when up
  k8s-test-apiserver.py ctl PORT VERB [ARGS...]   talk to the admin port

Admin verbs (POST /VERB with a JSON body, answers JSON):
  apply {object}                   create or update (ADDED/MODIFIED); stored as given
  delete {kind,namespace,name}     DELETED event
  compact {}                       drop all event history (old watches get 410)
  end-streams {abort:bool}         end open watches (cleanly, or cut mid-stream)
  stall {on:bool}                  open watches stop sending (new ones are not stalled)
  down {} / up {}                  close / reopen the API listener, killing connections
  restart {down_ms}                down, wait, up (same port, same data)
  tokens {tokens:[...]}            accepted bearer tokens
  config {bookmark_interval, watch_gone_http, history}
  fail {code, count, retry_after, watch_only}
                                   answer the next COUNT GETs (watches only with
                                   watch_only) with CODE: 429 or 503 with Retry-After
                                   (seconds), 403, or 504 "Too large resource
                                   version" as kube-apiserver words it
  state (GET)                      resourceVersion, counters, open streams

The API itself only reads: a POST, PUT, PATCH or DELETE to it is refused
(403, as RBAC without write verbs would) and counted ("writes" and
"write_<METHOD>" in the counters), so a test can check that a client
never writes.

Known differences from kube-apiserver (make test-k8s runs the real one,
selftests/e2e/test_k8s_real.sh; docs/KUBERNETES.md lists what it found):
  * objects are stored as given: no validation, defaulting, or ClusterIP
    and NodePort allocation; no EndpointSlice controller and no garbage
    collector (a test writes slices and deletes them itself);
  * bookmarks every --bookmark-interval seconds (kube-apiserver: about a
    minute); the event history survives "restart" (a restarted
    kube-apiserver starts a new watch cache, so resumed watches get 410);
  * HTTP/1.1 only, no gzip; 401/403/429/503/504 only when armed by "fail"
    or "tokens" (the real server gives 403 while its RBAC cache syncs after
    a start, 429 from API Priority and Fairness, 504 when its cache is
    behind the resourceVersion asked for);
  * streams end by closing the connection on "down"/"end-streams" with
    abort, as a stopping kube-apiserver does.
"""
import argparse
import base64
import collections
import copy
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer

# plural -> (kind, apiVersion, namespaced, list path prefix)
RESOURCES = {
    "services": ("Service", "v1", True, "/api/v1"),
    "endpointslices": ("EndpointSlice", "discovery.k8s.io/v1", True, "/apis/discovery.k8s.io/v1"),
    "nodes": ("Node", "v1", False, "/api/v1"),
}
KIND_TO_PLURAL = {v[0]: k for k, v in RESOURCES.items()}


def status(code, reason, message):
    """A v1 Status object, the body of every API error."""
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def now_rfc3339():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class State:
    """Objects, the event history and the knobs, under one condition variable."""

    def __init__(self, history):
        self.cond = threading.Condition()
        self.rv = 1000
        self.objects = {p: {} for p in RESOURCES}
        self.history = collections.deque()  # (rv, plural, type, object)
        self.history_max = history
        self.compacted = self.rv  # events with rv <= compacted are gone
        self.snapshots = collections.OrderedDict()  # list continue snapshots
        self.tokens = set()
        self.bookmark_interval = 1.0
        self.watch_gone_http = False
        self.end_epoch = 0
        self.end_abort = False
        self.stall_epoch = 0  # streams started before this epoch are stalled
        self.stalled = False
        self.stream_epoch = 0
        self.counters = collections.Counter()
        self.open_streams = 0
        self.fail = None  # {code, count, retry_after, watch_only}: see "fail"
        self.requests = []  # [monotonic time, "list"/"watch", plural, fault code or 0] of recent GETs
        # resourceVersion -> time.monotonic() (CLOCK_MONOTONIC, comparable
        # across processes) when its watch event was first written to a
        # client: where a benchmark's "event -> maps" starts (GET /sent?rv=N).
        self.sent_at = {}

    def record(self, plural, typ, obj):
        self.history.append((self.rv, plural, typ, copy.deepcopy(obj)))
        while len(self.history) > self.history_max:
            old = self.history.popleft()
            self.compacted = old[0]
        self.cond.notify_all()

    def apply(self, obj):
        kind = obj.get("kind")
        plural = KIND_TO_PLURAL.get(kind)
        if not plural:
            raise ValueError("unknown kind %r" % kind)
        md = obj.setdefault("metadata", {})
        if not isinstance(md, dict) or not md.get("name"):
            raise ValueError("metadata.name required")
        if RESOURCES[plural][2]:
            md.setdefault("namespace", "default")
        key = (md.get("namespace", ""), md["name"])
        obj["apiVersion"] = RESOURCES[plural][1]
        with self.cond:
            old = self.objects[plural].get(key)
            self.rv += 1
            md["resourceVersion"] = str(self.rv)
            if old:
                md["uid"] = old["metadata"]["uid"]
                md["creationTimestamp"] = old["metadata"]["creationTimestamp"]
                md["generation"] = old["metadata"].get("generation", 1) + 1
            else:
                md.setdefault("uid", str(uuid.uuid4()))
                md.setdefault("creationTimestamp", now_rfc3339())
                md["generation"] = 1
            self.objects[plural][key] = obj
            self.record(plural, "MODIFIED" if old else "ADDED", obj)
            return self.rv

    def delete(self, kind, ns, name):
        plural = KIND_TO_PLURAL.get(kind) or kind
        with self.cond:
            obj = self.objects.get(plural, {}).pop((ns or "", name), None)
            if obj is None:
                return None
            self.rv += 1
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = str(self.rv)
            self.record(plural, "DELETED", obj)
            return self.rv

    def compact(self):
        with self.cond:
            self.history.clear()
            self.compacted = self.rv
            self.snapshots.clear()
            self.cond.notify_all()


def cut(conn):
    """Shut the TCP connection under an SSLSocket without touching its TLS state
    (SSLSocket.shutdown() would drop the TLS layer and let the handler read
    ciphertext as the next request)."""
    try:
        raw = socket.socket(fileno=os.dup(conn.fileno()))
    except OSError:
        return
    try:
        raw.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    raw.close()


def selector_match(obj, ns, fsel):
    md = obj.get("metadata", {})
    if ns is not None and md.get("namespace") != ns:
        return False
    for term in fsel:
        k, _, v = term.partition("=")
        if k == "metadata.name" and md.get("name") != v:
            return False
        if k == "metadata.namespace" and md.get("namespace") != v:
            return False
    return True


def list_item(obj):
    """Items of a typed List omit kind and apiVersion. A shallow copy is
    enough: a stored object is never modified in place (apply stores a new
    one, delete copies before stamping the resourceVersion), and this keeps a
    list of 10,000 Services cheap (scripts/bench/k8s-scale.sh)."""
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


class ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "k8s-test-apiserver"

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("api: %s\n" % (fmt % args))

    def send_json(self, code, obj, headers=()):
        body = json.dumps(obj).encode()
        self.send_response(code)
        for h in headers:
            self.send_header(*h)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def authorized(self):
        st = self.server.state
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and auth[7:] in st.tokens:
            return True
        try:
            if self.connection.getpeercert():
                return True  # verified against our CA by the TLS layer
        except (AttributeError, ValueError):
            pass
        return False

    def refuse_write(self):
        st = self.server.state
        with st.cond:
            st.counters["writes"] += 1
            st.counters["write_" + self.command] += 1
        n = int(self.headers.get("Content-Length", "0") or 0)
        if n:
            self.rfile.read(n)
        self.send_json(403, status(403, "Forbidden", "the test API server is read-only"))

    do_POST = do_PUT = do_PATCH = do_DELETE = refuse_write

    def do_GET(self):
        st = self.server.state
        if not self.authorized():
            with st.cond:
                st.counters["unauthorized"] += 1
            self.send_json(401, status(401, "Unauthorized", "Unauthorized"))
            return
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query)
        parts = [p for p in url.path.split("/") if p]
        if url.path in ("/version", "/healthz", "/readyz"):
            self.send_json(200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0-svcplane-test"})
            return
        route = self.route(parts)
        if not route:
            self.send_json(404, status(404, "NotFound", "the server could not find the requested resource"))
            return
        plural, ns, name = route
        fsel = [t for t in q.get("fieldSelector", [""])[0].split(",") if t]
        watching = q.get("watch", ["false"])[0] in ("true", "1")
        if not name and self.injected_fault(plural, watching):
            return
        if name:
            with st.cond:
                obj = st.objects[plural].get((ns or "", name))
                obj = copy.deepcopy(obj)
            if obj is None:
                self.send_json(404, status(404, "NotFound", '%s "%s" not found' % (plural, name)))
            else:
                self.send_json(200, obj)
            return
        if q.get("watch", ["false"])[0] in ("true", "1"):
            self.watch(plural, ns, fsel, q)
        else:
            self.list(plural, ns, fsel, q)

    def injected_fault(self, plural, watching):
        """Record the request; answer it with the armed fault (admin "fail"), if any."""
        st = self.server.state
        with st.cond:
            st.requests.append([time.monotonic(), "watch" if watching else "list", plural, 0])
            del st.requests[:-200]
            f = st.fail
            if not f or f["count"] <= 0 or (f.get("watch_only") and not watching):
                return False
            f["count"] -= 1
            st.requests[-1][3] = f["code"]
            st.counters["faults"] += 1
            st.counters["fault_%d" % f["code"]] += 1
        code, ra = f["code"], f.get("retry_after")
        headers = [("Retry-After", str(ra))] if ra is not None else []
        if code == 504:
            # kube-apiserver's words (apimachinery NewTooLargeResourceVersionError).
            body = status(504, "Timeout", "Too large resource version: 999999999, current: %d" % st.rv)
            body["details"] = {"causes": [{"reason": "ResourceVersionTooLarge",
                                           "message": "Too large resource version"}],
                               "retryAfterSeconds": 1}
        elif code == 403:
            body = status(403, "Forbidden", 'services is forbidden: User "test" cannot watch '
                          'resource "%s" at the cluster scope' % plural)
        else:
            body = status(code, "TooManyRequests" if code == 429 else "ServiceUnavailable",
                          "too many requests, please try again later")
        self.send_json(code, body, headers)
        return True

    def route(self, parts):
        # /api/v1[/namespaces/NS]/PLURAL[/NAME] or /apis/discovery.k8s.io/v1/...
        if parts[:2] == ["api", "v1"]:
            rest = parts[2:]
        elif parts[:3] == ["apis", "discovery.k8s.io", "v1"]:
            rest = parts[3:]
        else:
            return None
        ns = None
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] in RESOURCES:
            ns, rest = rest[1], rest[2:]
        if not rest or rest[0] not in RESOURCES or len(rest) > 2:
            return None
        plural = rest[0]
        prefix = RESOURCES[plural][3]
        if ("/" + "/".join(parts)).find(prefix) != 0:
            return None
        return plural, ns, rest[1] if len(rest) == 2 else None

    def list(self, plural, ns, fsel, q):
        st = self.server.state
        kind, api_version = RESOURCES[plural][0], RESOURCES[plural][1]
        limit = int(q.get("limit", ["0"])[0] or 0)
        cont = q.get("continue", [""])[0]
        with st.cond:
            st.counters["list_" + plural] += 1
            if cont:
                try:
                    tok = json.loads(base64.urlsafe_b64decode(cont.encode()))
                    snap = st.snapshots[tok["id"]]
                    off, rv = tok["off"], tok["rv"]
                except (ValueError, KeyError, TypeError):
                    st.counters["gone"] += 1
                    self.send_json(410, status(
                        410, "Expired",
                        "The provided continue parameter is too old to display a consistent "
                        "list result. You can start a new list without the continue parameter."))
                    return
            else:
                snap = [list_item(o) for k, o in sorted(st.objects[plural].items())
                        if selector_match(o, ns, fsel)]
                off, rv = 0, st.rv
            page = snap[off:off + limit] if limit else snap[off:]
            md = {"resourceVersion": str(rv)}
            if limit and off + limit < len(snap):
                sid = str(uuid.uuid4())
                st.snapshots[sid] = snap
                while len(st.snapshots) > 64:
                    st.snapshots.popitem(last=False)
                md["continue"] = base64.urlsafe_b64encode(json.dumps(
                    {"id": sid, "off": off + limit, "rv": rv}).encode()).decode()
                md["remainingItemCount"] = len(snap) - off - limit
        self.send_json(200, {"kind": kind + "List", "apiVersion": api_version,
                             "metadata": md, "items": page})

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def event(self, typ, obj):
        self.chunk(json.dumps({"type": typ, "object": obj}).encode() + b"\n")

    def watch(self, plural, ns, fsel, q):
        st = self.server.state
        kind, api_version = RESOURCES[plural][0], RESOURCES[plural][1]
        rv_s = q.get("resourceVersion", [""])[0]
        bookmarks = q.get("allowWatchBookmarks", ["false"])[0] == "true"
        timeout = float(q.get("timeoutSeconds", ["1800"])[0] or 1800)
        with st.cond:
            st.counters["watch_" + plural] += 1
            my_epoch = st.stream_epoch
            st.stream_epoch += 1
            end_epoch = st.end_epoch
            try:
                pos = int(rv_s) if rv_s not in ("", "0") else None
            except ValueError:
                self.send_json(400, status(400, "BadRequest", "invalid resourceVersion %r" % rv_s))
                return
            gone = pos is not None and pos < st.compacted
            if gone:
                st.counters["gone"] += 1
                msg = "too old resource version: %d (%d)" % (pos, st.compacted + 1)
                if st.watch_gone_http:
                    self.send_json(410, status(410, "Expired", msg))
                    return
            initial = []
            if pos is None:
                # "Any" resourceVersion: synthetic ADDED events for the current state.
                initial = [copy.deepcopy(o) for k, o in sorted(st.objects[plural].items())
                           if selector_match(o, ns, fsel)]
                pos = st.rv
            st.open_streams += 1
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if gone:
                # The real server answers 200 and then an ERROR event.
                self.event("ERROR", status(410, "Expired", msg))
                self.chunk(b"")
                return
            for o in initial:
                self.event("ADDED", o)
            self.stream(plural, kind, api_version, ns, fsel, pos, bookmarks, timeout,
                        my_epoch, end_epoch)
        except (BrokenPipeError, ConnectionError, ssl.SSLError, OSError):
            pass
        finally:
            with st.cond:
                st.open_streams -= 1
                st.cond.notify_all()

    def stream(self, plural, kind, api_version, ns, fsel, pos, bookmarks, timeout, my_epoch,
               end_epoch):
        st = self.server.state
        deadline = time.monotonic() + timeout
        last_sent = time.monotonic()
        sent = pos  # the newest resourceVersion this client has been told about
        abort = False
        while True:
            with st.cond:
                st.cond.wait(0.2)
                if self.server.dead:
                    return
                if st.end_epoch != end_epoch:
                    abort = st.end_abort
                    break
                if st.stalled and my_epoch < st.stall_epoch:
                    continue
                if pos < st.compacted:
                    # Events this watcher had not seen yet were compacted away.
                    st.counters["gone"] += 1
                    gone = True
                else:
                    gone = False
                    evs = [(r, t, copy.deepcopy(o)) for (r, p, t, o) in st.history
                           if r > pos and p == plural and selector_match(o, ns, fsel)]
                    pos = st.rv  # every event up to here has been considered
                interval = st.bookmark_interval
            if gone:
                self.event("ERROR", status(410, "Expired", "too old resource version"))
                self.chunk(b"")
                return
            for r, t, o in evs:
                self.event(t, o)
                if r not in st.sent_at:
                    if len(st.sent_at) >= 4096:
                        st.sent_at.clear()
                    st.sent_at[r] = time.monotonic()
                sent = r
                last_sent = time.monotonic()
            # Bookmarks double as keep-alives, so send them even when
            # nothing changed (a client may treat silence as a stall).
            if bookmarks and interval > 0 and time.monotonic() - last_sent >= interval:
                self.event("BOOKMARK", {"kind": kind, "apiVersion": api_version,
                                        "metadata": {"resourceVersion": str(pos)}})
                sent = pos
                last_sent = time.monotonic()
                with st.cond:
                    st.counters["bookmarks"] += 1
            if time.monotonic() >= deadline:
                self.chunk(b"")
                return
        if abort:
            # Cut mid-event: half a JSON object and no terminating chunk.
            self.chunk(b'{"type":"MODIFIED","object":{"kind":')
            cut(self.connection)
            self.close_connection = True
            return
        else:
            self.chunk(b"")
        self.close_connection = True


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, state, ctx, verbose):
        self.state, self.ctx, self.verbose = state, ctx, verbose
        self.conns = set()
        self.conns_lock = threading.Lock()
        self.dead = False
        super().__init__(addr, ApiHandler)

    def handle_error(self, request, client_address):
        # Clients vanish mid-stream all the time in these tests.
        if self.verbose:
            super().handle_error(request, client_address)

    def process_request_thread(self, request, client_address):
        # TLS handshake in the connection's own thread, so a slow client
        # cannot hold up accept().
        try:
            request.settimeout(10)
            request = self.ctx.wrap_socket(request, server_side=True)
            request.settimeout(None)
        except (ssl.SSLError, OSError) as e:
            if self.verbose:
                sys.stderr.write("api: TLS handshake failed: %s\n" % e)
            request.close()
            return
        with self.conns_lock:
            self.conns.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.conns_lock:
                self.conns.discard(request)

    def kill_connections(self):
        with self.conns_lock:
            conns = list(self.conns)
        for c in conns:
            cut(c)


class Api:
    """The HTTPS listener, which can be taken down and brought back on the same port."""

    def __init__(self, state, ctx, port, verbose):
        self.state, self.ctx, self.verbose = state, ctx, verbose
        self.port = port
        self.srv = None
        self.lock = threading.Lock()

    def up(self):
        with self.lock:
            if self.srv:
                return
            for _ in range(50):
                try:
                    self.srv = ApiServer(("127.0.0.1", self.port), self.state, self.ctx, self.verbose)
                    break
                except OSError:
                    time.sleep(0.1)
            else:
                raise RuntimeError("cannot bind 127.0.0.1:%d again" % self.port)
            self.port = self.srv.server_address[1]
            threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def down(self):
        with self.lock:
            srv, self.srv = self.srv, None
        if not srv:
            return
        srv.dead = True
        srv.shutdown()
        srv.server_close()
        srv.kill_connections()
        with self.state.cond:
            self.state.cond.notify_all()


class AdminHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("admin: %s\n" % (fmt % args))

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        st = self.server.state
        if self.path == "/state":
            with st.cond:
                self.reply(200, {"rv": st.rv, "compacted": st.compacted,
                                 "counters": dict(st.counters), "open_streams": st.open_streams,
                                 "requests": st.requests,
                                 "objects": {p: len(v) for p, v in st.objects.items()}})
            return
        if self.path.startswith("/sent?rv="):
            try:
                rv = int(self.path[len("/sent?rv="):])
            except ValueError:
                self.reply(400, {"error": "rv must be a number"})
                return
            t = st.sent_at.get(rv)
            self.reply(200 if t is not None else 404, {"rv": rv, "sent": t})
            return
        self.reply(404, {"error": "no such admin endpoint"})

    def do_POST(self):
        st, api = self.server.state, self.server.api
        n = int(self.headers.get("Content-Length", "0") or 0)
        raw = self.rfile.read(n) if n else b"{}"
        try:
            body = json.loads(raw or b"{}")
        except ValueError as e:
            self.reply(400, {"error": "bad JSON: %s" % e})
            return
        verb = self.path.strip("/")
        try:
            if verb == "apply":
                objs = body if isinstance(body, list) else [body]
                rv = None
                for o in objs:
                    rv = st.apply(o)
                self.reply(200, {"rv": rv})
            elif verb == "delete":
                rv = st.delete(body["kind"], body.get("namespace", "default"), body["name"])
                self.reply(200 if rv else 404, {"rv": rv})
            elif verb == "compact":
                st.compact()
                self.reply(200, {"compacted": st.compacted})
            elif verb == "end-streams":
                with st.cond:
                    st.end_abort = bool(body.get("abort"))
                    st.end_epoch += 1
                    st.cond.notify_all()
                self.reply(200, {})
            elif verb == "stall":
                with st.cond:
                    st.stalled = bool(body.get("on", True))
                    st.stall_epoch = st.stream_epoch
                    st.cond.notify_all()
                self.reply(200, {})
            elif verb == "down":
                api.down()
                self.reply(200, {})
            elif verb == "up":
                api.up()
                self.reply(200, {})
            elif verb == "restart":
                api.down()
                time.sleep(float(body.get("down_ms", 300)) / 1000)
                api.up()
                self.reply(200, {})
            elif verb == "tokens":
                with st.cond:
                    st.tokens = set(body["tokens"])
                self.reply(200, {})
            elif verb == "fail":
                with st.cond:
                    st.fail = {"code": int(body["code"]), "count": int(body.get("count", 1)),
                               "retry_after": body.get("retry_after"),
                               "watch_only": bool(body.get("watch_only"))}
                self.reply(200, {})
            elif verb == "config":
                with st.cond:
                    if "bookmark_interval" in body:
                        st.bookmark_interval = float(body["bookmark_interval"])
                    if "watch_gone_http" in body:
                        st.watch_gone_http = bool(body["watch_gone_http"])
                    if "history" in body:
                        st.history_max = int(body["history"])
                self.reply(200, {})
            else:
                self.reply(404, {"error": "unknown verb %r" % verb})
        except (ValueError, KeyError, TypeError, RuntimeError) as e:
            self.reply(400, {"error": str(e)})


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def make_pki(d):
    """CA, server certificate for 127.0.0.1/localhost, and a client certificate."""
    ca_key, ca = os.path.join(d, "ca.key"), os.path.join(d, "ca.crt")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=svcplane-test-ca")
    ext = os.path.join(d, "server.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    cext = os.path.join(d, "client.ext")
    with open(cext, "w") as f:
        f.write("extendedKeyUsage=clientAuth\n")
    for name, subj, e in (("server", "/CN=localhost", ext),
                          ("client", "/O=system:nodes/CN=system:node:test", cext)):
        key, csr, crt = (os.path.join(d, name + s) for s in (".key", ".csr", ".crt"))
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", key, "-out", csr, "-subj", subj)
        openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
                "-out", crt, "-days", "2", "-extfile", e)
    return ca


def b64file(path):
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


def write_kubeconfigs(d, port, token):
    server = "https://127.0.0.1:%d" % port
    cluster = ("clusters:\n- name: test\n  cluster:\n    server: %s\n"
               "    certificate-authority: ca.crt\n" % server)
    ctx = "contexts:\n- name: test\n  context:\n    cluster: test\n    user: u\n"
    head = "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
    files = {
        "kubeconfig": "users:\n- name: u\n  user:\n    token: %s\n" % token,
        "kubeconfig-tokenfile": "users:\n- name: u\n  user:\n    tokenFile: token\n",
        "kubeconfig-cert": "users:\n- name: u\n  user:\n    client-certificate-data: %s\n"
                           "    client-key-data: %s\n" % (b64file(os.path.join(d, "client.crt")),
                                                          b64file(os.path.join(d, "client.key"))),
        "kubeconfig-notoken": "users:\n- name: u\n  user: {}\n",
    }
    for name, users in files.items():
        with open(os.path.join(d, name), "w") as f:
            f.write(head + cluster + ctx + users)
    # The same cluster with the CA embedded, for the -data path.
    with open(os.path.join(d, "kubeconfig-cadata"), "w") as f:
        f.write(head + "clusters:\n- name: test\n  cluster:\n    server: %s\n"
                "    certificate-authority-data: %s\n" % (server, b64file(os.path.join(d, "ca.crt")))
                + ctx + files["kubeconfig"])
    with open(os.path.join(d, "token"), "w") as f:
        f.write(token + "\n")


def serve(args):
    d = args.dir
    os.makedirs(d, exist_ok=True)
    ca = make_pki(d)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(d, "server.crt"), os.path.join(d, "server.key"))
    ctx.load_verify_locations(ca)
    ctx.verify_mode = ssl.CERT_OPTIONAL  # client certificates authenticate too
    state = State(args.history)
    state.tokens = {args.token}
    state.bookmark_interval = args.bookmark_interval
    api = Api(state, ctx, args.api_port, args.verbose)
    api.up()
    admin = ThreadingHTTPServer(("127.0.0.1", args.admin_port), AdminHandler)
    admin.daemon_threads = True
    admin.state, admin.api, admin.verbose = state, api, args.verbose
    write_kubeconfigs(d, api.port, args.token)
    info = {"api_port": api.port, "admin_port": admin.server_address[1], "ca": ca,
            "kubeconfig": os.path.join(d, "kubeconfig"), "dir": d, "pid": os.getpid()}
    tmp = os.path.join(d, "ready.tmp")
    with open(tmp, "w") as f:
        json.dump(info, f)
    os.rename(tmp, os.path.join(d, "ready"))
    print("READY %s" % json.dumps(info), flush=True)
    try:
        admin.serve_forever()
    except KeyboardInterrupt:
        pass


# ---- ctl: a tiny client for the admin port, with object builders ----

def svc_obj(ns, name, cluster_ip, ports, typ="ClusterIP", labels=None, lb=None, extra=None):
    """A v1 Service as the API server returns it (after defaulting)."""
    ips = cluster_ip.split(",") if cluster_ip else []
    spec = {"ports": [], "selector": {"app": name}, "type": typ, "sessionAffinity": "None",
            "internalTrafficPolicy": "Cluster"}
    if ips:
        spec["clusterIP"], spec["clusterIPs"] = ips[0], ips
        spec["ipFamilies"] = ["IPv6" if ":" in ip else "IPv4" for ip in ips]
        spec["ipFamilyPolicy"] = "RequireDualStack" if len(ips) > 1 else "SingleStack"
    for p in ports:
        # "name:port[:proto[:targetPort[:nodePort]]]"
        f = p.split(":")
        sp = {"name": f[0], "protocol": f[2] if len(f) > 2 and f[2] else "TCP", "port": int(f[1])}
        if len(f) > 3 and f[3]:
            sp["targetPort"] = int(f[3]) if f[3].isdigit() else f[3]
        else:
            sp["targetPort"] = sp["port"]
        if len(f) > 4 and f[4]:
            sp["nodePort"] = int(f[4])
        spec["ports"].append(sp)
    if typ in ("NodePort", "LoadBalancer"):
        spec["externalTrafficPolicy"] = "Cluster"
    if extra:
        spec.update(extra)
    md = {"name": name, "namespace": ns}
    if labels:
        md["labels"] = labels
    obj = {"kind": "Service", "apiVersion": "v1", "metadata": md, "spec": spec,
           "status": {"loadBalancer": {}}}
    if lb:
        obj["status"]["loadBalancer"]["ingress"] = [{"ip": ip, "ipMode": "VIP"} for ip in lb]
    return obj


def slice_obj(ns, name, service, addrs, ports, node=None):
    """A discovery.k8s.io/v1 EndpointSlice. addrs: "ip[:ready|notready|terminating]"."""
    family = "IPv6" if addrs and ":" in addrs[0].split("/")[0] and addrs[0].count(":") > 1 else "IPv4"
    eps = []
    for a in addrs:
        ip, _, cond = a.partition("/")
        c = {"ready": True, "serving": True, "terminating": False}
        if cond == "notready":
            c = {"ready": False, "serving": False, "terminating": False}
        elif cond == "terminating":
            c = {"ready": False, "serving": True, "terminating": True}
        elif cond == "nil":
            c = {}
        ep = {"addresses": [ip], "conditions": c}
        if node:
            ep["nodeName"] = node
        eps.append(ep)
    sports = []
    for p in ports:
        f = p.split(":")
        sports.append({"name": f[0], "protocol": f[2] if len(f) > 2 and f[2] else "TCP",
                       "port": int(f[1])})
    return {"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
            "metadata": {"name": name, "namespace": ns, "generateName": service + "-",
                         "labels": {"kubernetes.io/service-name": service,
                                    "endpointslice.kubernetes.io/managed-by":
                                        "endpointslice-controller.k8s.io"}},
            "addressType": family, "endpoints": eps, "ports": sports}


def node_obj(name, addrs):
    return {"kind": "Node", "apiVersion": "v1",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {},
            "status": {"addresses": [{"type": "InternalIP" if i == 0 else "ExternalIP",
                                      "address": a} for i, a in enumerate(addrs)] +
                       [{"type": "Hostname", "address": name}]}}


def ctl(args):
    port, verb, rest = args.port, args.verb, args.args
    body = None
    if verb == "svc":      # svc NS NAME CLUSTERIPS PORT... [--type T] [--label k=v] [--lb IP]
        p = argparse.ArgumentParser(prog="ctl svc")
        p.add_argument("ns"), p.add_argument("name"), p.add_argument("ips")
        p.add_argument("ports", nargs="*")
        p.add_argument("--type", default="ClusterIP")
        p.add_argument("--label", action="append", default=[])
        p.add_argument("--lb", action="append", default=[])
        a = p.parse_args(rest)
        labels = dict(kv.split("=", 1) for kv in a.label)
        verb, body = "apply", svc_obj(a.ns, a.name, a.ips, a.ports, a.type, labels, a.lb)
    elif verb == "slice":  # slice NS NAME SERVICE ADDRS(comma) PORT... [--node N]
        p = argparse.ArgumentParser(prog="ctl slice")
        p.add_argument("ns"), p.add_argument("name"), p.add_argument("service")
        p.add_argument("addrs"), p.add_argument("ports", nargs="*")
        p.add_argument("--node")
        a = p.parse_args(rest)
        addrs = [x for x in a.addrs.split(",") if x]
        verb, body = "apply", slice_obj(a.ns, a.name, a.service, addrs, a.ports, a.node)
    elif verb == "node":   # node NAME IP...
        verb, body = "apply", node_obj(rest[0], rest[1:])
    elif verb == "del":    # del KIND NS NAME
        verb, body = "delete", {"kind": rest[0], "namespace": rest[1], "name": rest[2]}
    elif verb == "state":
        body = None
    else:
        body = json.loads(rest[0]) if rest else {}
    url = "http://127.0.0.1:%d/%s" % (port, verb)
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if data is None else "POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            sys.stdout.write(r.read().decode() + "\n")
    except urllib.error.HTTPError as e:
        sys.stdout.write(e.read().decode() + "\n")
        sys.exit(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--dir", required=True, help="where certificates and kubeconfigs go")
    s.add_argument("--api-port", type=int, default=0)
    s.add_argument("--admin-port", type=int, default=0)
    s.add_argument("--token", default="svcplane-test-token")
    s.add_argument("--history", type=int, default=1000, help="events kept for watches")
    s.add_argument("--bookmark-interval", type=float, default=1.0)
    s.add_argument("-v", "--verbose", action="store_true")
    c = sub.add_parser("ctl")
    c.add_argument("port", type=int)
    c.add_argument("verb")
    c.add_argument("args", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    if args.cmd == "serve":
        serve(args)
    else:
        ctl(args)


if __name__ == "__main__":
    main()
