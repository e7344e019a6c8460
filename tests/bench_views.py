#!/usr/bin/python3
"""What relay's views' state file (docs/audit.md "What each stage records")
costs with many proctors: 200 proctors each watching the same 4 sentinels
(vigil-sentinel --count 4), then the file's writes and bytes a second from
relay's heartbeat (stats.views) in two phases: steady watching, and churn
(each proctor drops and takes back one sentinel every 5 s); the file's size;
then a kill -9 of relay with all 800 views open and the time until the
restarted relay has recorded them. Prints one line per phase.

  VIGIL_BUILD_DIR=build python3 tests/bench_views.py [PROCTORS] [SECONDS]
  (SECONDS: the steady phase, default 20; the churn lasts three times as long)
"""
import glob
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "integration"))
from proctor import Proctor  # noqa: E402
from vigil import BUILD, Vigil  # noqa: E402

PROCTORS = int(sys.argv[1]) if len(sys.argv) > 1 else 200
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 20
AUTH = """auth:
  sentinel: required
  tokens:
    - { name: cams, role: sentinel, token: "bench-sentinel" }
    - { name: desks, role: proctor, token: "bench-proctor" }
"""


def views(v):
    hb = v.stage("relay").get("heartbeat") or {}
    return dict(hb.get("stats", {}).get("views", {}), pid=v.stage("relay")["pid"])


def pump(ps, seconds, each=None):
    """Reads (and throws away) what the proctors get for seconds; each(i, p)
    is called for every proctor once a second."""
    sel = selectors.DefaultSelector()
    for p in ps:
        p.ws.sock.setblocking(False)
        sel.register(p.ws.sock, selectors.EVENT_READ)
    end = time.monotonic() + seconds
    tick = time.monotonic()
    while time.monotonic() < end:
        for key, _ in sel.select(0.1):
            try:
                key.fileobj.recv(1 << 20)
            except BlockingIOError:
                pass
        if time.monotonic() >= tick:
            tick += 1
            for i, p in enumerate(ps):
                p.ws.sock.setblocking(True)
                p.send("proctor.ping", {})  # the idle rule
                if each:
                    each(i, p)
                p.ws.sock.setblocking(False)
    for p in ps:
        sel.unregister(p.ws.sock)
        p.ws.sock.setblocking(True)


def rate(v, fn, seconds):
    before = views(v)
    t0 = time.monotonic()
    fn()
    time.sleep(1.2)  # the next heartbeat
    after = views(v)
    dt = time.monotonic() - t0
    return {k: (after[k] - before[k]) / dt for k in ("fileWrites", "fileBytes")}, after


def main():
    v = Vigil(extra=AUTH, limits="max_message_bytes: 2MiB, max_connections_per_ip: 1000, "
              "max_proctors: 1000").start()
    try:
        surl, purl = v.url("ingest", "/sentinel"), v.url("relay", "/proctor")
        tmp = tempfile.mkdtemp(dir=v.dir)
        sen = subprocess.Popen([os.path.join(BUILD, "deploy", "vigil-sentinel"), "--url", surl,
                                "--token", "bench-sentinel", "--count", "4", "--name", "b",
                                "--size", "160x120", "--bitrate", "100", "--fps", "5",
                                "--state", tmp + "/id"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        first = Proctor(purl)
        first.register("bench-proctor")
        ids = set()
        while len(ids) < 4:
            msg, _ = first.wait(lambda m: m["type"] == "server.sentinel.online", 30)
            ids.add(msg["payload"]["sentinel"]["sentinelId"])
        ids = sorted(ids)
        first.close()
        ps = []
        for _ in range(PROCTORS):
            p = Proctor(purl)
            p.register("bench-proctor")
            p.send("proctor.subscribe", {"sentinelIds": ids})
            ps.append(p)
        pump(ps, 3)
        steady, st = rate(v, lambda: pump(ps, SECONDS), SECONDS)
        print("steady, %d proctors x %d views: %.1f writes/s, %.0f bytes/s (open %d)" % (
            PROCTORS, len(ids), steady["fileWrites"], steady["fileBytes"], st["open"]))

        def churn(i, p):
            if (int(time.monotonic()) + i) % 5 == 0:
                one = ids[i % len(ids)]
                p.send("proctor.unsubscribe", {"sentinelIds": [one]})
                p.send("proctor.subscribe", {"sentinelIds": [one]})
        # long enough for a compaction (the file at four times its live views)
        churned, st = rate(v, lambda: pump(ps, 3 * SECONDS, churn), 3 * SECONDS)
        print("churn, each proctor one view again every 5 s (%.0f views/s): %.1f writes/s, "
              "%.0f bytes/s; %d compactions in %.0f s, the last %.1f ms" % (
                  PROCTORS / 5, churned["fileWrites"], churned["fileBytes"],
                  st["compactions"], 3 * SECONDS, st["compactUs"] / 1000))
        size = os.path.getsize(os.path.join(v.dir, "data", "audit", "relay-0.views"))
        print("state file with %d views open: %d bytes" % (st["open"], size))
        # every view open again, then kill -9 relay
        for p in ps:
            p.send("proctor.subscribe", {"sentinelIds": ids})
        pump(ps, 2)
        audit = os.path.join(v.dir, "data", "audit")

        def n_views():
            n = 0
            for f in glob.glob(os.path.join(audit, "audit-*.jsonl")):
                with open(f) as fh:
                    n += sum(1 for line in fh if '"action":"live.view"' in line)
            return n
        before = n_views()
        pid = v.stage("relay")["pid"]
        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        while n_views() < before + PROCTORS * len(ids):
            if time.monotonic() - t0 > 60:
                raise SystemExit("the killed relay's views were not recorded in 60 s")
            time.sleep(0.02)
        print("kill -9 with %d views open: all recorded %.2f s after the kill "
              "(vigild's restart included)" % (PROCTORS * len(ids), time.monotonic() - t0))
        for p in ps:
            p.close()
        sen.terminate()
        sen.wait(30)
    finally:
        v.stop()


if __name__ == "__main__":
    main()
