#!/usr/bin/env python3
"""Probes for test_health.sh (run inside the client namespace).

  health_probe.py get URL            one GET: "CODE|CONTENT-TYPE|NOSNIFF|WEIGHT|BODY" (body on one line)
  health_probe.py raw HOST PORT KIND one bad request (garbage, method, bigheader):
                                     the status code answered, or ERR ...
  health_probe.py many HOST PORT N   N concurrent GETs (asyncio, 30 s at most):
                                     "ok=K bad=B first=..." (ok: a 200 or 503 with JSON)
"""
import asyncio
import json
import socket
import sys
import urllib.error
import urllib.request


def get(url):
    try:
        r = urllib.request.urlopen(url, timeout=5)
        code, h, body = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        code, h, body = e.code, e.headers, e.read()
    except Exception as e:  # noqa: BLE001 (report anything)
        print(f"000|||ERR {e}")
        return
    body = " ".join(body.decode(errors="replace").split())
    print(f"{code}|{h.get('Content-Type', '')}|{h.get('X-Content-Type-Options', '')}|"
          f"{h.get('X-Load-Balancing-Endpoint-Weight', '')}|{body}")


def raw(host, port, kind):
    reqs = {
        "garbage": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 hello \r\n\r\n",
        "method": b"DELETE /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "post": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
        "bigheader": b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 +
                     b"\r\nConnection: close\r\n\r\n",
    }
    try:
        s = socket.create_connection((host, int(port)), timeout=5)
        try:
            s.sendall(reqs[kind])
        except OSError:
            pass  # the server may answer and close before all is sent
        data = b""
        while len(data) < 65536:
            try:
                chunk = s.recv(4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
        s.close()
    except OSError as e:
        print(f"ERR {e}")
        return
    line = data.split(b"\r\n", 1)[0].decode(errors="replace")
    parts = line.split()
    print(parts[1] if len(parts) > 1 and line.startswith("HTTP/") else f"ERR answer '{line[:60]}'")


async def one(host, port):
    try:
        r, w = await asyncio.open_connection(host, port)
        w.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await w.drain()
        data = await r.read()
        w.close()
    except OSError as e:
        return f"ERR {e}"
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split()
    if len(status) < 2 or status[1] not in (b"200", b"503"):
        return f"ERR status {head[:40]!r}"
    try:
        json.loads(body)
    except ValueError:
        return f"ERR body {body[:40]!r}"
    return "ok"


async def many(host, port, n):
    tasks = [asyncio.wait_for(one(host, port), 30) for _ in range(n)]
    res = await asyncio.gather(*tasks, return_exceptions=True)
    res = [r if isinstance(r, str) else f"ERR {type(r).__name__}" for r in res]
    bad = [r for r in res if r != "ok"]
    print(f"ok={len(res) - len(bad)} bad={len(bad)} first={bad[0] if bad else '-'}")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "get":
        get(sys.argv[2])
    elif cmd == "raw":
        raw(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        asyncio.run(asyncio.wait_for(many(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])), 60))
