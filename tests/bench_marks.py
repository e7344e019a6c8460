#!/usr/bin/python3
"""How long a mark takes (issue 12, "Measured"): from a proctor's
proctor.mark sent to server.mark at a second proctor subscribed to the
sentinel, one mark after the other, p50/p99/max over N marks; each mark is
appended to marks.jsonl and fdatasynced, and its audit record made durable,
before relay sends server.mark (docs/archive.md "Marks"). Twice: with archive
idle, and with archive writing the segments of SENTINELS vigil-sentinels at
the same time (a mark waits for the writer's batch in hand). Then the same
for POST .../marks (request sent to 201 read, one keep-alive connection).

  VIGIL_BUILD_DIR=build python3 tests/bench_marks.py [N] [SENTINELS]
"""
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "integration"))
from proctor import Proctor  # noqa: E402
from vigil import BUILD, SOURCE, Vigil  # noqa: E402
from wsclient import Client  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 300
SENTINELS = int(sys.argv[2]) if len(sys.argv) > 2 else 20
AUTH = """auth:
  sentinel: none
  tokens:
    - { name: desk-1, role: proctor, token: "bench-proctor-1" }
    - { name: desk-2, role: proctor, token: "bench-proctor-2" }
"""
FIX = os.path.join(SOURCE, "tests", "data", "fmp4")


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))]


def line(what, ms):
    return "%s: %d marks, p50 %.2f ms, p99 %.2f ms, max %.2f ms" % (
        what, len(ms), pct(ms, 0.50), pct(ms, 0.99), max(ms))


def relay_round(maker, watcher, sid, n):
    """n marks one after the other: sent by maker, seen by watcher (ms each)."""
    out = []
    for i in range(n):
        note = "bench %d" % i
        t0 = time.perf_counter()
        maker.send("proctor.mark", {"sentinelId": sid, "note": note})
        msg, _ = watcher.wait(lambda m: m["type"] in ("server.mark", "server.error"), 30,
                              "server.mark")
        out.append((time.perf_counter() - t0) * 1000)
        if msg["type"] != "server.mark" or msg["payload"]["mark"]["note"] != note:
            raise SystemExit("unexpected answer: %s" % msg)
        msg, _ = maker.wait(lambda m: m["type"] in ("server.mark", "server.error"), 30,
                            "the maker's answer")
        if msg["type"] != "server.mark":
            raise SystemExit("the maker got %s" % msg)
        if i % 50 == 49:  # the idle rule: both send now and then
            for p in (maker, watcher):
                p.send("proctor.ping", {})
                p.wait(lambda m: m["type"] == "server.pong", 30, "pong")
    return out


def post_round(v, path, start, n):
    host, port = v.stage("httpd")["listen"].rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=30)
    hd = {"Authorization": "Bearer bench-proctor-1", "Content-Type": "application/json"}
    out = []
    for i in range(n):
        body = json.dumps({"at": start, "note": "post %d" % i})
        t0 = time.perf_counter()
        c.request("POST", path, body, hd)
        r = c.getresponse()
        r.read()
        out.append((time.perf_counter() - t0) * 1000)
        if r.status != 201:
            raise SystemExit("POST answered %d" % r.status)
    c.close()
    return out


def main():
    v = Vigil(extra=AUTH, limits="max_message_bytes: 2MiB, max_connections_per_ip: 1000")
    v.ring_size = "256MiB"
    v.write_config()
    v.start()
    sen = None
    try:
        s = Client(v.url("ingest", "/sentinel"))
        ack = s.register(name="marked")
        with open(os.path.join(FIX, "init.mp4"), "rb") as f:
            s.send("sentinel.init", {"data": f.read()})
        with open(os.path.join(FIX, "seg0.m4s"), "rb") as f:
            s.send("sentinel.segment", {"sequence": 0, "data": f.read(), "duration": 100})
        s.send("sentinel.ping", {})
        while s.recv()["type"] != "server.pong":
            pass
        purl = v.url("relay", "/proctor")
        maker, watcher = Proctor(purl), Proctor(purl)
        maker.register("bench-proctor-1")
        watcher.register("bench-proctor-2")
        watcher.send("proctor.subscribe", {"sentinelIds": [ack["sentinelId"]]})
        watcher.send("proctor.ping", {})
        watcher.wait(lambda m: m["type"] == "server.pong", 30, "pong")
        relay_round(maker, watcher, ack["sentinelId"], 10)  # warm up (directories, files)
        idle = relay_round(maker, watcher, ack["sentinelId"], N)
        print(line("proctor.mark -> server.mark at a second proctor, archive idle", idle))
        tmp = tempfile.mkdtemp(dir=v.dir)
        sen = subprocess.Popen([os.path.join(BUILD, "deploy", "vigil-sentinel"), "--url",
                                v.url("ingest", "/sentinel"), "--count", str(SENTINELS),
                                "--name", "load", "--size", "320x180", "--bitrate", "500",
                                "--fps", "10", "--state", tmp + "/id"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60:
            st = (v.stage("archive").get("heartbeat") or {}).get("stats", {})
            if st.get("sessionsLive", 0) >= SENTINELS + 1 and st.get("segmentsWritten", 0) > 0:
                break
            time.sleep(0.5)
        before = (v.stage("archive").get("heartbeat") or {}).get("stats", {})
        t0 = time.monotonic()
        busy = relay_round(maker, watcher, ack["sentinelId"], N)
        elapsed = time.monotonic() - t0
        after = (v.stage("archive").get("heartbeat") or {}).get("stats", {})
        print(line("the same while archive writes %d sentinels' segments (%.0f segments/s)" % (
            SENTINELS, (after.get("segmentsWritten", 0) - before.get("segmentsWritten", 0)) /
            elapsed), busy))
        meta = os.path.join(v.dir, "data", ack["sentinelId"], ack["sessionId"], "session.json")
        with open(meta) as f:
            start = json.load(f)["startTime"]
        path = "/api/sentinels/%s/sessions/%s/marks" % (ack["sentinelId"], ack["sessionId"])
        posts = post_round(v, path, start, N // 3)
        print(line("POST .../marks -> 201 (one keep-alive connection), same load", posts))
    finally:
        if sen is not None:
            sen.terminate()
            sen.wait(30)
        v.stop()


if __name__ == "__main__":
    main()
