#!/usr/bin/python3
"""Audit log benchmark (issue 16): what recording an export before its first
byte costs. On one keep-alive connection, alternately, GET export.mp4 with
`Range: bytes=0-0` (recorded: the request waits until archive fsynced its
record) and HEAD export.mp4 (the same plan, cached after the first request,
and no record): time to the status line, p50/p90/p99 of each, and the
difference. Then the same GETs while 5 threads make records as fast as they
can (refused tokens, 20 records/s each stage; history reads) to show the
batching at work. Then --deletes hard deletes of sessions written by hand
(docs/archive.md "Deletion": the intent, the record fsynced, then the
removal), time to the 204. Bounded: --requests pairs (default 300). No
assertion on timings: the figures go into docs/benchmarks.md.
  tests/bench_audit.py [--requests 300] [--deletes 100]"""
import argparse
import http.client
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "integration"))
from test_httpd import write_session  # noqa: E402
from vigil import Vigil  # noqa: E402

AT, PT = "bench-archivist-secret", "bench-proctor-secret"
AUTH = """auth:
  sentinel: none
  tokens:
    - { name: a1, role: archivist, token: "%s" }
    - { name: p1, role: proctor, token: "%s" }
""" % (AT, PT)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def ttfb(conn, method, path, headers):
    t0 = time.perf_counter()
    conn.request(method, path, headers=headers)
    r = conn.getresponse()
    t = time.perf_counter() - t0
    r.read()
    return r.status, t * 1000


def run(host, port, base, n):
    c = http.client.HTTPConnection(host, port, timeout=30)
    h = {"Authorization": "Bearer " + AT}
    ttfb(c, "GET", base + "/export.mp4", h)  # the plan, made once
    get, head = [], []
    for _ in range(n):
        st, t = ttfb(c, "GET", base + "/export.mp4", dict(h, Range="bytes=0-0"))
        assert st == 206, st
        get.append(t)
        st, t = ttfb(c, "HEAD", base + "/export.mp4", h)
        assert st == 200, st
        head.append(t)
    c.close()
    return get, head


def line(name, xs):
    return "%-44s p50 %6.2f ms  p90 %6.2f ms  p99 %6.2f ms  (%d)" % (
        name, pct(xs, 50), pct(xs, 90), pct(xs, 99), len(xs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--deletes", type=int, default=100)
    a = ap.parse_args()
    v = Vigil(extra=AUTH)
    data = os.path.join(v.dir, "data")
    sid, sess, base = write_session(data, torn=False)
    doomed = [write_session(data, torn=False)[2] for _ in range(a.deletes)]
    v.start()
    try:
        host, port = v.stage("httpd")["listen"].rsplit(":", 1)
        port = int(port)
        get, head = run(host, port, base, a.requests)
        print(line("GET export.mp4 (recorded, fsynced first)", get))
        print(line("HEAD export.mp4 (no record)", head))
        print("the record's cost at the first byte: p50 %+.2f ms, p99 %+.2f ms" % (
            pct(get, 50) - pct(head, 50), pct(get, 99) - pct(head, 99)))

        stop = time.monotonic() + 60
        done = threading.Event()

        def reads():
            c = http.client.HTTPConnection(host, port, timeout=30)
            hh = {"Authorization": "Bearer " + PT}
            while not done.is_set() and time.monotonic() < stop:
                c.request("GET", base + "/segments/0.m4s", headers=hh)
                c.getresponse().read()
            c.close()
        threads = [threading.Thread(target=reads) for _ in range(5)]
        for t in threads:
            t.start()
        try:
            get2, _ = run(host, port, base, a.requests)
        finally:
            done.set()
            for t in threads:
                t.join()
        print(line("GET export.mp4 beside 5 readers", get2))
        dels = []
        c = http.client.HTTPConnection(host, port, timeout=30)
        for path in doomed:
            st, t = ttfb(c, "DELETE", path, {"Authorization": "Bearer " + AT})
            assert st == 204, st
            dels.append(t)
        c.close()
        if dels:
            print(line("DELETE (intent, record fsynced, removal)", dels))
        st = v.status()
        arch = next(s for s in st["stages"] if s["name"] == "archive")
        stats = (arch.get("heartbeat") or {}).get("stats") or {}
        print("writer: %d records, last fdatasync %.2f ms" % (
            stats.get("auditSeq", 0), stats.get("auditFsyncMs", 0)))
    finally:
        v.stop()


if __name__ == "__main__":
    main()
