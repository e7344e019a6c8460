#!/usr/bin/python3
"""Operator console benchmark (issue 11): with 20 sentinels (bench_relay) and
200 proctors (bench_proctor, 4 subscriptions each) connected,
  1. the time from operator.stage.set { relay, restart } to its server.result
     (vigild answers once relay runs again with a new pid);
  2. the time from a log line written by a stage to its server.console at an
     operator: flood.py beside archive writes 1,000 lines at 200 a second, each
     stamped (ms) when written (in vigil's log format, or for the one in ten
     that is GStreamer-style, "written MS" at its end); received minus
     stamped, p50/p99;
  3. httpd's CPU with 10 operators following the console during a flood of
     1,000 lines a second, against the same flood with none.
No assertion on timings: the figures go into docs/benchmarks.md.
  tests/bench_console.py [--restarts 5]"""
import argparse
import os
import re
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "integration"))
sys.path.insert(0, HERE)
from benchlib import proc_cpu_seconds  # noqa: E402
from console_client import Operator  # noqa: E402
from test_ops import StageDir  # noqa: E402
from vigil import BUILD, SOURCE, Vigil  # noqa: E402

OTOKEN, PTOKEN = "bench-operator-secret", "bench-proctor-secret"
SENTINELS, PROCTORS, SUBS = 20, 200, 4
STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3})Z")
WRITTEN = re.compile(r" written (\d+)$")


def pct(v, p):
    v = sorted(v)
    return v[min(int(p * (len(v) - 1) + 0.5), len(v) - 1)] if v else 0.0


def line_ms(line):
    """The unix ms a log line was stamped with (UTC, ms)."""
    m = STAMP.match(line)
    if not m:
        m = WRITTEN.search(line)
        return int(m.group(1)) if m else None
    return int(time.mktime(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")) - time.timezone) \
        * 1000 + int(m.group(2))


class Load:
    """bench_relay's sentinels and bench_proctor's proctors, for a window."""

    def __init__(self, v, seconds):
        self.tmp = v.dir
        ids = os.path.join(self.tmp, "ids")
        start = int(time.time() * 1000) + 8000
        common = ["--sentinels", str(SENTINELS), "--start-ms", str(start),
                  "--end-ms", str(start + seconds * 1000)]
        self.procs = [subprocess.Popen(
            [os.path.join(BUILD, "tests", "bench_relay"), "--sentinel-url",
             v.url("ingest", "/sentinel"), "--ids-out", ids, "--fixtures",
             os.path.join(SOURCE, "tests", "data", "fmp4")] + common,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        deadline = time.monotonic() + 10
        while not os.path.exists(ids):
            if time.monotonic() > deadline:
                raise RuntimeError("the sentinels did not register")
            time.sleep(0.05)
        self.proctor_err = os.path.join(self.tmp, "proctors.err")
        with open(self.proctor_err, "w") as err:
            self.procs.append(subprocess.Popen(
                [os.path.join(BUILD, "tests", "bench_proctor"), "--url",
                 v.url("relay", "/proctor"), "--subs", str(SUBS), "--token", PTOKEN,
                 "--ids", ids, "--first", "0", "--count", str(PROCTORS)] + common,
                stdout=subprocess.DEVNULL, stderr=err))
        deadline = time.monotonic() + 10
        while "ready" not in open(self.proctor_err).read():
            if time.monotonic() > deadline:
                raise RuntimeError("the proctors did not subscribe")
            time.sleep(0.05)

    def stop(self):
        for p in self.procs:
            p.kill()
            p.wait()


def follower(url, out, stop, stages=None):
    """An operator following the console (stages None: every stage)."""
    o = Operator(url)
    o.auth(OTOKEN)
    o.send("operator.console", {} if stages is None else {"stages": list(stages)})
    o.result("operator.console")

    def run():
        last_ping = time.monotonic()
        while not stop.is_set():
            try:
                msg = o.recv(1)
            except Exception:  # noqa: BLE001: a timeout, or the end
                continue
            if msg["type"] == "server.console" and "flood" in msg["payload"]["line"]:
                out.append((time.time() * 1000, msg["payload"]["line"]))
            if time.monotonic() - last_ping > 5:
                o.send("operator.ping")
                last_ping = time.monotonic()
        o.close()
    t = threading.Thread(target=run)
    t.start()
    return t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--restarts", type=int, default=5)
    args = ap.parse_args()
    stages = StageDir()
    v = Vigil(extra="auth:\n  sentinel: none\n  tokens:\n"
              '    - { name: ops, role: operator, token: "%s" }\n'
              '    - { name: bench, role: proctor, token: "%s" }\n' % (OTOKEN, PTOKEN),
              limits="max_sentinels: %d, max_proctors: %d, max_message_bytes: 8MiB, "
                     "max_connections_per_ip: 0" % (SENTINELS + 10, PROCTORS + 10),
              timeouts="idle: 600s", env=stages.env())
    v.ring_size = "256MiB"
    v.write_config()
    v.start()
    url = "ws://%s/api/ws" % v.stage("httpd")["listen"]
    load = None
    try:
        load = Load(v, 600)
        # 2. log line to console
        got, stop = [], threading.Event()
        t = follower(url, got, stop, ["archive"])
        n, _ = stages.flood(200, 5)
        deadline = time.monotonic() + 10
        while len(got) < n and time.monotonic() < deadline:
            time.sleep(0.1)
        stop.set()
        t.join()
        lat = [rx - line_ms(line) for rx, line in got if line_ms(line) is not None]
        print("log line -> server.console: %d lines written, %d stamped ones received; "
              "p50 %.1f ms, p99 %.1f ms, max %.1f ms" % (
                  n, len(lat), pct(lat, .5), pct(lat, .99), max(lat) if lat else 0))
        # 3. httpd's CPU, 10 followers against none, the same flood
        hpid = v.stage("httpd")["pid"]
        cpu = {}
        for k in (0, 10):
            outs = [[] for _ in range(k)]
            stop = threading.Event()
            ts = [follower(url, outs[i], stop) for i in range(k)]
            c0, t0 = proc_cpu_seconds(hpid), time.monotonic()
            n, _ = stages.flood(1000, 10)
            cpu[k] = (proc_cpu_seconds(hpid) - c0) / (time.monotonic() - t0) * 100
            stop.set()
            for t in ts:
                t.join()
            got_k = sum(len(o) for o in outs)
            print("flood of %d lines at 1,000/s, %2d operators following: httpd %.1f %% of a "
                  "core%s" % (n, k, cpu[k], "" if k == 0 else ", %d lines delivered in all" % got_k))
        print("httpd's extra CPU for 10 operators: %.1f points" % (cpu[10] - cpu[0]))
        # 1. stage.set restart relay (the proctors are cut off by the first)
        o = Operator(url)
        o.auth(OTOKEN)
        times = []
        for i in range(args.restarts):
            t0 = time.monotonic()
            o.send("operator.stage.set", {"stage": "relay", "state": "restart"})
            r = o.result("operator.stage.set", timeout=40)
            times.append((time.monotonic() - t0) * 1000)
            assert r.get("status") == "OK", r
            print("restart relay #%d%s: server.result after %.0f ms (pid %d)" % (
                i + 1, " (200 proctors, 20 sentinels connected)" if i == 0 else "",
                times[-1], r["pid"]))
        o.close()
        print("restart relay: median %.0f ms over %d" % (pct(times, .5), len(times)))
    finally:
        if load is not None:
            load.stop()
        v.stop()
        stages.remove()


if __name__ == "__main__":
    main()
