#!/usr/bin/python3
"""Relay benchmark (issue 4): tests/bench_relay (S sentinels at about 1 Mbit/s
and P proctors with K subscriptions each, in one process so that latency is on
one clock) against a real vigild. Adds the relay's CPU % (from /proc over the
measured window), its RSS (from its heartbeats) and, measured in the same run
for scale, loopback TCP bandwidth on this machine.

  tests/bench_relay.py [--sentinels 50] [--proctors 200] [--subs 4] [--seconds 20]
  tests/bench_relay.py --sweep   # proctors 200, 400, 800...: where p99 passes 50 ms

No assertion on timings: the figures go into docs/benchmarks.md."""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "integration"))
sys.path.insert(0, os.path.dirname(__file__))
from vigil import BUILD, SOURCE, Vigil  # noqa: E402
from benchlib import loopback_mb_s, proc_cpu_seconds  # noqa: E402

BENCH = os.path.join(BUILD, "tests", "bench_relay")
PTOKEN = "bench-proctor-secret"
P99_LIMIT_MS = 50.0
SWEEP_ROUNDS = 5
SWEEP_SECONDS = 600


def run_once(args, proctors):
    """One vigild, one bench_relay run; its JSON plus relay CPU % and RSS."""
    auth = ("auth:\n  sentinel: none\n  tokens:\n"
            '    - { name: bench, role: proctor, token: "%s" }\n' % PTOKEN)
    v = Vigil(extra=auth,
              limits="max_sentinels: %d, max_proctors: %d, max_message_bytes: 8MiB" % (
                  args.sentinels + 10, proctors + 10),
              timeouts="idle: 600s")
    v.ring_size = "512MiB"
    v.write_config()
    v.start()
    bench = None
    try:
        cmd = [BENCH, "--sentinel-url", v.url("ingest", "/sentinel"),
               "--proctor-url", v.url("relay", "/proctor"), "--token", PTOKEN,
               "--sentinels", str(args.sentinels), "--proctors", str(proctors),
               "--subs", str(args.subs), "--warmup", str(args.warmup),
               "--seconds", str(args.seconds),
               "--fixtures", os.path.join(SOURCE, "tests", "data", "fmp4")]
        bench = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # bench_relay writes "measuring" and "measured" on stderr around its window;
        # it bounds its own setup and run, so these reads end.
        other = []

        def line_until(word):
            for line in bench.stderr:
                if line.strip() == word:
                    return True
                other.append(line.rstrip())
            return False

        rss, stop = [], threading.Event()

        def sample_rss():
            while not stop.wait(1.0):
                try:
                    hb = v.stage("relay").get("heartbeat") or {}
                except AssertionError:
                    continue
                if "memBytes" in hb:
                    rss.append(hb["memBytes"])

        cpu0 = t0 = cpu1 = t1 = None
        if line_until("measuring"):
            pids = v.pids()
            relay_pid = pids["relay"]
            cpu0, t0 = proc_cpu_seconds(relay_pid), time.monotonic()
            other0 = (proc_cpu_seconds(pids["ingest"]), proc_cpu_seconds(bench.pid))
            sampler = threading.Thread(target=sample_rss)
            sampler.start()
            try:
                if line_until("measured"):
                    cpu1, t1 = proc_cpu_seconds(relay_pid), time.monotonic()
                    other1 = (proc_cpu_seconds(pids["ingest"]), proc_cpu_seconds(bench.pid))
            finally:
                stop.set()
                sampler.join()
        out, err = bench.communicate(timeout=args.seconds + 120)
        other += err.splitlines()
        if bench.returncode != 0 or cpu1 is None:
            raise RuntimeError("bench_relay failed (%s): %s\nvigild: %s" % (
                bench.returncode, "\n".join(other[-20:]), v.log()[-3000:]))
        if v.pids()["relay"] != relay_pid:
            raise RuntimeError("the relay restarted during the run: " + v.log()[-3000:])
        res = json.loads(out)
        res["relayCpuPercent"] = round(100 * (cpu1 - cpu0) / (t1 - t0), 1)
        # For reading the figures: bench_relay is one thread and must stay well
        # below 100 % for the latencies to be the relay's.
        res["ingestCpuPercent"] = round(100 * (other1[0] - other0[0]) / (t1 - t0), 1)
        res["benchCpuPercent"] = round(100 * (other1[1] - other0[1]) / (t1 - t0), 1)
        res["relayRssMiB"] = round(max(rss) / 1048576, 1) if rss else None
        if other:
            res["stderr"] = other[-5:]
        return res
    finally:
        if bench is not None and bench.poll() is None:
            bench.kill()
            bench.wait(30)
        v.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sentinels", type=int, default=50)
    ap.add_argument("--proctors", type=int, default=200)
    ap.add_argument("--subs", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--sweep", action="store_true")
    args = ap.parse_args()

    if not args.sweep:
        result = run_once(args, args.proctors)
        result["loopbackTcpMBPerS"] = round(loopback_mb_s(), 0)
        print(json.dumps(result, indent=2))
        return
    rounds, knee = [], None
    start = time.monotonic()
    proctors = args.proctors
    for _ in range(SWEEP_ROUNDS):
        if time.monotonic() - start + args.warmup + args.seconds + 60 > SWEEP_SECONDS:
            break
        try:
            res = run_once(args, proctors)
        except (RuntimeError, AssertionError, subprocess.TimeoutExpired) as e:
            rounds.append({"proctors": proctors, "error": str(e)[-500:]})
            break
        rounds.append(res)
        if res["latencyMsP99"] > P99_LIMIT_MS:
            knee = res
            break
        proctors *= 2
    loopback = loopback_mb_s()
    under = [r for r in rounds if "error" not in r and r["latencyMsP99"] <= P99_LIMIT_MS]
    print(json.dumps({
        "rounds": rounds,
        # The client is one thread: when benchCpuPercent nears 100 in a round, that
        # round measures bench_relay rather than the relay.
        "proctorsUnderLimit": under[-1]["proctors"] if under else None,
        "p99LimitMs": P99_LIMIT_MS,
        "fanOutAtLimit": knee["proctors"] * knee["subscriptions"] if knee else None,
        "proctorsAtLimit": knee["proctors"] if knee else None,
        "deliveredMBPerSAtLimit": knee["deliveredMBPerS"] if knee else None,
        "loopbackTcpMBPerS": round(loopback, 0),
    }, indent=2))


if __name__ == "__main__":
    main()
