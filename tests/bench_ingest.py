#!/usr/bin/python3
"""Ingest benchmark: N simulated sentinels (vigil-sentinel --count N, default
200 at 1000 kbit/s) into a real vigild. Reports segments/s and MB/s into the
ring, ingest CPU % and RSS (from its heartbeats), the time from a segment's
last byte received to its being visible in the ring (p50, p99), and, measured
in the same run for scale, loopback TCP bandwidth on this machine.

  tests/bench_ingest.py [--count 200] [--bitrate 1000] [--seconds 30]

No assertion on timings: the figures go into docs/benchmarks.md."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "integration"))
sys.path.insert(0, os.path.dirname(__file__))
from vigil import BUILD, Vigil  # noqa: E402
from benchlib import loopback_mb_s, proc_cpu_seconds  # noqa: E402

SENTINEL = os.path.join(BUILD, "deploy", "vigil-sentinel")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--bitrate", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=10)
    args = ap.parse_args()

    v = Vigil(extra="auth: { sentinel: none }\n",
              limits="max_sentinels: %d, max_message_bytes: 8MiB" % (args.count + 10),
              timeouts="idle: 60s")
    v.ring_size = "512MiB"
    v.write_config()
    v.start()
    sent = None
    try:
        w = v.watch()
        sent = subprocess.Popen([SENTINEL, "--url", v.url("ingest", "/sentinel"),
                                 "--count", str(args.count), "--bitrate", str(args.bitrate),
                                 "--name", "bench", "--state", os.path.join(v.dir, "state"),
                                 "--duration", str(args.warmup + args.seconds + 5)],
                                stdout=subprocess.DEVNULL, stderr=open(v.dir + "/sentinel.log", "w"))
        online = 0
        try:
            while online < args.count:  # every simulated sentinel registered
                w.wait(lambda e: e.get("type") == "sentinel.online", timeout=60)
                online += 1
        except AssertionError:
            with open(v.dir + "/sentinel.log") as f:
                sys.stderr.write(f.read()[-3000:])
            raise
        time.sleep(args.warmup)  # let the encoder and the ring reach steady state
        ingest_pid = v.pids()["ingest"]
        st0, cpu0, sc0, t0 = v.stage("ingest"), proc_cpu_seconds(ingest_pid), \
            proc_cpu_seconds(sent.pid), time.monotonic()
        p50s, p99s, maxes, rss = [], [], [], []
        last_uptime = None
        deadline = t0 + args.seconds
        while time.monotonic() < deadline:
            hb = v.stage("ingest")["heartbeat"] or {}
            if hb.get("uptimeMs") != last_uptime and "stats" in hb:
                last_uptime = hb["uptimeMs"]
                lat = hb["stats"]["ringLatencyUs"]
                if lat["samples"]:
                    p50s.append(lat["p50"])
                    p99s.append(lat["p99"])
                    maxes.append(lat["max"])
                rss.append(hb["memBytes"])
            time.sleep(1.0)  # one sample per heartbeat period
        st1, cpu1, sc1, t1 = v.stage("ingest"), proc_cpu_seconds(ingest_pid), \
            proc_cpu_seconds(sent.pid), time.monotonic()
        s0, s1 = st0["heartbeat"]["stats"], st1["heartbeat"]["stats"]
        dt = (st1["heartbeat"]["uptimeMs"] - st0["heartbeat"]["uptimeMs"]) / 1000
        loop = loopback_mb_s()
        result = {
            "sentinels": args.count, "bitrateKbit": args.bitrate, "seconds": round(dt, 1),
            "segmentsPerS": round((s1["segments"] - s0["segments"]) / dt, 1),
            "mbPerS": round((s1["segmentBytes"] - s0["segmentBytes"]) / dt / 1e6, 2),
            "ingestCpuPercent": round(100 * (cpu1 - cpu0) / (t1 - t0), 1),
            "ingestRssMiB": round(max(rss) / 1048576, 1) if rss else None,
            "ringLatencyUsP50": int(statistics.median(p50s)) if p50s else None,
            "ringLatencyUsP99": max(p99s) if p99s else None,
            "ringLatencyUsMax": max(maxes) if maxes else None,
            "sentinelCpuPercent": round(100 * (sc1 - sc0) / (t1 - t0), 1),
            "errors": s1["errors"], "loopbackTcpMBPerS": round(loop, 0),
        }
        print(json.dumps(result, indent=2))
        w.close()
    finally:
        if sent is not None and sent.poll() is None:
            sent.terminate()
            sent.wait(30)
        v.stop()


if __name__ == "__main__":
    main()
