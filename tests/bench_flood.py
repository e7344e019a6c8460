#!/usr/bin/python3
"""Connection floods against live video (issue 15): 20 real proctors (4
subscriptions each, tests/bench_proctor) watch 20 sentinels (tests/bench_relay)
through relay, three times in one run: alone, then while tests/bench_flood
holds 5,000 idle connections on each of the three listeners from 50 source
addresses each (about 400 new connections a second in all as the server
closes or refuses them), then while it holds 1,000 slow-header connections on
each. Prints each round's live latency (sentinel send to proctor receive)
p50/p99, relay's CPU and what the floods met (refusals, closes), and the
ratio of each flood round's p99 to the first; the three rounds run --repeat
times, interleaved, and the medians are reported (a p99 of 2 to 4 ms moves by
a millisecond from run to run here). No assertion on timings: the figures go
into docs/benchmarks.md.
  tests/bench_flood.py [--seconds 20] [--repeat 3]"""
import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(__file__))
import bench_relay  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--proctors", type=int, default=20)
    ap.add_argument("--sentinels", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3,
                    help="the three rounds this many times, interleaved; medians reported")
    args = ap.parse_args()
    configs = (
        ("alone", None),
        ("5000 idle per listener",
         [(st, "idle", 5000, 133) for st in ("ingest", "relay", "httpd")]),
        ("1000 slow-header per listener",
         [(st, "slow", 1000, 100) for st in ("ingest", "relay", "httpd")]))
    runs = {name: [] for name, _ in configs}
    for _ in range(min(args.repeat, 9)):
        for name, flood in configs:
            a = argparse.Namespace(sentinels=args.sentinels, subs=4, seconds=args.seconds,
                                   warmup=args.warmup, proctor_procs=1, flood=flood,
                                   default_caps=True)
            res = bench_relay.run_split(a, args.proctors)
            keep = {k: res.get(k) for k in (
                "latencyMsP50", "latencyMsP99", "latencyMsMax", "latencySamples", "missing",
                "skips", "relayCpuPercent", "ingestCpuPercent", "relayRssMiB",
                "benchCpuPercent", "relayFeedUsP50", "relayFeedUsP99", "relayFanoutUsP50",
                "relayFanoutUsP99")}
            keep["floods"] = [e for e in res["loadProcesses"] if e["role"].startswith("flood")]
            runs[name].append(keep)
    out = {}
    for name, rs in runs.items():
        out[name] = {
            "p50MsMedian": statistics.median(r["latencyMsP50"] for r in rs),
            "p99MsMedian": statistics.median(r["latencyMsP99"] for r in rs),
            "p99MsEach": [r["latencyMsP99"] for r in rs],
            "relayCpuPercentMedian": statistics.median(r["relayCpuPercent"] or 0 for r in rs),
            "missing": sum(r["missing"] for r in rs),
            "runs": rs,
        }
    base = out["alone"]["p99MsMedian"] or 1
    for r in out.values():
        r["p99RatioOfMedians"] = round(r["p99MsMedian"] / base, 2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
