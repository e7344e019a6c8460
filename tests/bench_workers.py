#!/usr/bin/python3
"""Relay workers benchmark (issue 13): what each delivered byte costs the relay,
next to what the kernel's own copy costs, in one run.

- Relay CPU seconds per delivered GB at 800 and at 3,200 streams (proctors x
  subscriptions; tests/bench_relay.py's sentinels and proctors), next to the
  CPU seconds per GB that iperf3's sender spends over loopback (128 KiB writes,
  about a segment's size) in the same run. Target: relay within 1.5x.
- At 800 streams: relay's own share of the latency (publication in the ring to
  the last byte handed to the socket, from the workers' heartbeat histograms)
  and sentinel-send to proctor-receive, p50 and p99.
- Relay's RSS per worker at 3,200 streams (target: under 64 MiB plus its
  queues).
  tests/bench_workers.py [--workers 2] [--seconds 15]
No assertion: the figures go into docs/benchmarks.md, with the machine's load
average, since the machine may be shared."""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import bench_relay  # noqa: E402
from benchlib import free_port, loopback_mb_s  # noqa: E402


def iperf3_sender(seconds=5, length="128K"):
    """CPU seconds per GB of iperf3's sender over loopback, and its MB/s."""
    port = free_port()
    srv = subprocess.Popen(["iperf3", "-s", "-1", "--forceflush", "-p", str(port), "-B",
                            "127.0.0.1"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        # Listening once it says so (a probe would be its one client, -1).
        for line in srv.stdout:
            if "listening" in line:
                break
        out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds),
                              "-l", length, "-J"], capture_output=True, text=True,
                             timeout=seconds + 30)
    finally:
        srv.stdout.read()
        srv.wait(timeout=30)
    res = json.loads(out.stdout)
    end = res["end"]
    sent = end["sum_sent"]
    # host_total: the sender's user + system CPU over the run, % of one core.
    cpu_s = end["cpu_utilization_percent"]["host_total"] / 100 * sent["seconds"]
    return {"iperf3SenderCpuSPerGB": round(cpu_s / (sent["bytes"] / 1e9), 3),
            "iperf3MBPerS": round(sent["bytes"] / sent["seconds"] / 1e6, 0),
            "iperf3WriteBytes": length}


def round_at(args, streams):
    a = argparse.Namespace(sentinels=args.sentinels, subs=4, seconds=args.seconds,
                           warmup=args.warmup, proctor_procs=args.proctor_procs,
                           workers=args.workers)
    res = bench_relay.run_split(a, streams // a.subs)
    gb = res["deliveredMBPerS"] * res["seconds"] / 1000
    cpu = res["relayCpuSeconds"]
    res["relayCpuSPerGB"] = round(cpu / gb, 3) if cpu is not None and gb > 0 else None
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sentinels", type=int, default=50)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--proctor-procs", type=int, default=2)
    ap.add_argument("--streams", type=int, nargs="+", default=[800, 3200])
    args = ap.parse_args()

    load0 = os.getloadavg()
    rounds = {}
    for streams in args.streams:
        res = round_at(args, streams)
        keep = ("relayCpuSPerGB", "relayCpuPercent", "relayWorkerCpuPercent", "deliveredMBPerS",
                "latencyMsP50", "latencyMsP99", "relayFanoutUsP50", "relayFanoutUsP99",
                "relayFeedUsP99", "relayWorkerRssMiB", "benchCpuPercent", "missing", "skips",
                "closed", "benchLoopLagMsMax")
        rounds[str(streams)] = {k: res.get(k) for k in keep}
    ref = iperf3_sender()
    out = {"workers": args.workers, "sentinels": args.sentinels, "seconds": args.seconds,
           "loadAverageBefore": [round(x, 2) for x in load0],
           "loadAverageAfter": [round(x, 2) for x in os.getloadavg()],
           "cores": os.cpu_count(), "streams": rounds, **ref,
           "loopbackTcpMBPerS": round(loopback_mb_s(), 0)}
    for r in rounds.values():
        if r["relayCpuSPerGB"] is not None:
            r["relayOverIperf3"] = round(r["relayCpuSPerGB"] / ref["iperf3SenderCpuSPerGB"], 2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
