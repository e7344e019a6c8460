#!/usr/bin/python3
"""Archive benchmark (issue 5): N simulated sentinels (vigil-sentinel --count N,
default 200 at 1000 kbit/s) into a real vigild whose archive writes to data_dir
on the disk under the test's temporary directory. Reports, from archive's
heartbeats and /proc: sustained MB/s and segments/s to disk, the fsync time
per segment (wall time of the group-committed fsync batches divided by the
segments), write latency (ring read to durable index line), the backlog
behind the ring's head, archive CPU % and RSS; and, measured in the same run
on the same disk for scale, `dd oflag=dsync` with the average segment size as
block size (one synchronous write per block, as a naive archive would do).

  tests/bench_archive.py [--count 200] [--bitrate 1000] [--seconds 20]

No assertion on timings: the figures go into docs/benchmarks.md."""
import argparse
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "integration"))
sys.path.insert(0, os.path.dirname(__file__))
from vigil import BUILD, Vigil  # noqa: E402
from benchlib import proc_cpu_seconds  # noqa: E402

SENTINEL = os.path.join(BUILD, "deploy", "vigil-sentinel")


def dd_dsync(directory, block, count):
    """dd of count blocks with O_DSYNC; returns (MB/s, ms per block)."""
    path = os.path.join(directory, "dd.bin")
    res = subprocess.run(["dd", "if=/dev/zero", "of=" + path, "bs=%d" % block,
                          "count=%d" % count, "oflag=dsync"],
                         capture_output=True, text=True, timeout=300)
    os.unlink(path)
    m = re.search(r"copied, ([0-9.]+) s", res.stderr)
    if res.returncode != 0 or m is None:
        raise RuntimeError("dd: " + res.stderr)
    secs = float(m.group(1))
    return block * count / secs / 1e6, secs * 1000 / count


def hb(v):
    return (v.stage("archive").get("heartbeat") or {})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--bitrate", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=20)
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
        log = open(v.dir + "/sentinel.log", "w")
        sent = subprocess.Popen([SENTINEL, "--url", v.url("ingest", "/sentinel"),
                                 "--count", str(args.count), "--bitrate", str(args.bitrate),
                                 "--name", "bench", "--state", os.path.join(v.dir, "state"),
                                 "--duration", str(args.warmup + args.seconds + 10)],
                                stdout=subprocess.DEVNULL, stderr=log)
        online = 0
        while online < args.count:  # every simulated sentinel registered
            w.wait(lambda e: e.get("type") == "sentinel.online", timeout=60)
            online += 1
        # Encoder, ring and archive reach steady state; 200 sessions starting at once
        # cost archive 5 fsyncs each (directories, sentinel.json, session.json), so
        # it starts behind: the peak backlog of the warm-up is reported apart.
        warm_backlog = []
        t_end = time.monotonic() + args.warmup
        while time.monotonic() < t_end:
            warm_backlog.append(hb(v).get("stats", {}).get("backlog", 0))
            time.sleep(0.5)
        pid = v.pids()["archive"]
        h0, cpu0, t0 = hb(v), proc_cpu_seconds(pid), time.monotonic()
        lat_avg, lat_max, backlog, rss = [], [], [], []
        last = None
        while time.monotonic() < t0 + args.seconds:
            h = hb(v)
            if h.get("uptimeMs") != last and "stats" in h:
                last = h["uptimeMs"]
                s = h["stats"]
                if s["writeLatencyAvgMs"] > 0:
                    lat_avg.append(s["writeLatencyAvgMs"])
                    lat_max.append(s["writeLatencyMaxMs"])
                backlog.append(s["backlog"])
                rss.append(h["memBytes"])
            time.sleep(1.0)  # one sample per heartbeat period
        h1, cpu1, t1 = hb(v), proc_cpu_seconds(pid), time.monotonic()
        s0, s1 = h0["stats"], h1["stats"]
        dt = (h1["uptimeMs"] - h0["uptimeMs"]) / 1000
        segs = s1["segmentsWritten"] - s0["segmentsWritten"]
        nbytes = s1["bytesWritten"] - s0["bytesWritten"]
        avg_seg = int(nbytes / segs) if segs else 131072
        data = os.path.join(v.dir, "data")
        dd_mb, dd_ms = dd_dsync(data, avg_seg, 200)
        result = {
            "sentinels": args.count, "bitrateKbit": args.bitrate, "seconds": round(dt, 1),
            "segmentsPerS": round(segs / dt, 1), "mbPerS": round(nbytes / dt / 1e6, 2),
            "avgSegmentBytes": avg_seg,
            "fsyncsPerSegment": round((s1["fsyncs"] - s0["fsyncs"]) / segs, 2) if segs else None,
            "fsyncMsPerSegment": round((s1["fsyncMs"] - s0["fsyncMs"]) / segs, 3) if segs
            else None,
            "writeLatencyMsAvg": round(sum(lat_avg) / len(lat_avg), 1) if lat_avg else None,
            "writeLatencyMsMax": round(max(lat_max), 1) if lat_max else None,
            "backlogMax": max(backlog) if backlog else None,
            "warmupBacklogMax": max(warm_backlog) if warm_backlog else None,
            "lost": s1["lost"], "enospc": s1["enospc"],
            "archiveCpuPercent": round(100 * (cpu1 - cpu0) / (t1 - t0), 1),
            "archiveRssMiB": round(max(rss) / 1048576, 1) if rss else None,
            "ddDsyncMBPerS": round(dd_mb, 2), "ddDsyncMsPerBlock": round(dd_ms, 2),
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
