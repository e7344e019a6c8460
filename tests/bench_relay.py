#!/usr/bin/python3
"""Relay benchmark (issue 4): S sentinels at about 1 Mbit/s (tests/bench_relay,
one process) and P proctors with K subscriptions each (tests/bench_proctor, in
--proctor-procs processes) against a real vigild. They share one measurement
window, given as wall-clock times; latency is CLOCK_REALTIME on the proctor when
a server.segment is complete minus the startTime the sentinel stamped right
before its write (same host, same clock, +-0.5 ms from the ms stamp). Adds the
relay's CPU % (from /proc over the window), its RSS and its own figure for the
time from a segment's publication in the ring to its last byte handed to the
kernel (from its heartbeats), every load process's CPU % and, measured in the
same run for scale, loopback TCP bandwidth on this machine.
  tests/bench_relay.py [--sentinels 50] [--proctors 200] [--subs 4] [--seconds 20]
                       [--proctor-procs 2]
  tests/bench_relay.py --sweep   # proctors 200, 400, 800...: where p99 passes 50 ms
  --workers N: relay.workers (default 1); relay's CPU is its workers' summed,
  its RSS the largest worker's (each worker's in relayWorkerRssMiB)
No assertion on timings: the figures go into docs/benchmarks.md."""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "integration"))
sys.path.insert(0, os.path.dirname(__file__))
from vigil import BUILD, SOURCE, Vigil  # noqa: E402
from benchlib import loopback_mb_s, proc_cpu_seconds  # noqa: E402

BENCH = os.path.join(BUILD, "tests", "bench_relay")
FLOOD = os.environ.get("VIGIL_BENCH_FLOOD") or os.path.join(BUILD, "tests", "bench_flood")
PROCTORS = os.path.join(BUILD, "tests", "bench_proctor")
PTOKEN = "bench-proctor-secret"
P99_LIMIT_MS = 50.0
SWEEP_ROUNDS = 5
SWEEP_SECONDS = 600
SETUP_SECONDS = 10  # split mode: every connection registered and subscribed by then


def start_vigil(args, proctors):
    auth = ("auth:\n  sentinel: none\n  tokens:\n"
            '    - { name: bench, role: proctor, token: "%s" }\n' % PTOKEN)
    # Every load process connects from 127.0.0.1, hundreds at once: no cap per
    # address nor on handshakes (512 would refuse a round's proctors with 503),
    # but in the flood benchmark (default_caps) the caps are the defaults.
    caps = "" if getattr(args, "default_caps", False) else \
        ", max_connections_per_ip: 0, max_handshakes: 1000000"
    v = Vigil(extra=auth,
              limits="max_sentinels: %d, max_proctors: %d, max_message_bytes: 8MiB%s" % (
                  args.sentinels + 10, proctors + 10, caps),
              timeouts="idle: 600s", workers=getattr(args, "workers", 1))
    v.ring_size = "512MiB"
    v.write_config()
    v.start()
    return v


def run_once(args, proctors):
    return run_split(args, proctors)


def pct(sorted_values, p):
    """As bench_relay.c's br_pct."""
    n = len(sorted_values)
    if n == 0:
        return 0.0
    return sorted_values[min(int(p * (n - 1) + 0.5), n - 1)]


def bucket_high(low):
    """The upper bound of common/lat.c's bucket whose lowest value is low."""
    if low < 16:
        return low + 1
    e = low.bit_length() - 1
    return low + (1 << (e - 3))


def hist_window(first, last):
    """p50, p99 (bucket upper bounds, us) and count of the samples that arrived
    between two cumulative [[low, count], ...] histograms."""
    before = dict((lo, n) for lo, n in first)
    diff = sorted((lo, n - before.get(lo, 0)) for lo, n in last)
    total = sum(n for _, n in diff)
    out = []
    for p in (0.50, 0.99):
        want, seen = max(1, int(p * total + 0.5)), 0
        for lo, n in diff:
            seen += n
            if seen >= want:
                out.append(bucket_high(lo))
                break
        else:
            out.append(0)
    return out[0], out[1], total


def hist_sum(hists):
    """The workers' cumulative [[low, count], ...] histograms as one."""
    total = {}
    for h in hists:
        for lo, n in h:
            total[lo] = total.get(lo, 0) + n
    return sorted(total.items())


def cpu_or_none(pid):
    try:
        return proc_cpu_seconds(pid)
    except (OSError, ValueError, IndexError):
        return None


def run_split(args, proctors):
    """One vigild; one sentinel process, then args.proctor_procs proctor processes,
    one window for all; their JSON merged, plus CPU % of relay, ingest and each load
    process, and relay's RSS."""
    # A proctor process holds a descriptor per proctor: the soft limit (1024
    # on a stock login) goes up to the hard one, for the load processes.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    v = start_vigil(args, proctors)
    tmp = tempfile.mkdtemp(prefix="bench_relay.")
    procs = []  # (role, first, count, Popen, stdout path, stderr path, samples path)
    try:
        start_ms = int(time.time() * 1000) + (SETUP_SECONDS + args.warmup) * 1000
        end_ms = start_ms + args.seconds * 1000
        common = ["--sentinels", str(args.sentinels),
                  "--start-ms", str(start_ms), "--end-ms", str(end_ms)]
        ids = os.path.join(tmp, "ids")

        def spawn(role, first, count, cmd):
            name = "%s-%d" % (role, first)
            out = os.path.join(tmp, name + ".json")
            err = os.path.join(tmp, name + ".err")
            samples = os.path.join(tmp, name + ".samples")
            if role == "proctors":
                cmd = cmd + ["--samples", samples]
            with open(out, "w") as fo, open(err, "w") as fe:
                p = subprocess.Popen(cmd + ([] if role.startswith("flood") else common),
                                     stdout=fo, stderr=fe, stdin=subprocess.DEVNULL)
            procs.append((role, first, count, p, out, err, samples))
            return p

        def failure(what):
            tails = []
            for role, first, _, p, _, err, _ in procs:
                with open(err) as f:
                    tails.append("%s %d (rc %s): %s" % (role, first, p.poll(), f.read()[-600:]))
            try:
                relay_log = json.dumps(v.request(cmd="logs", stage="relay", lines=20))
            except (OSError, AssertionError, ValueError) as e:
                relay_log = "(not read: %s)" % e
            vigild = [ln for ln in v.log().splitlines() if "vigild[" in ln][-10:]
            return RuntimeError("%s\n%s\nrelay: %s\nvigild: %s" % (
                what, "\n".join(tails), relay_log[-3000:], "\n".join(vigild)))

        snt = spawn("sentinels", 0, args.sentinels,
                    [BENCH, "--sentinel-url", v.url("ingest", "/sentinel"), "--ids-out", ids,
                     "--fixtures", os.path.join(SOURCE, "tests", "data", "fmp4")])
        deadline = time.monotonic() + SETUP_SECONDS / 2
        while not os.path.exists(ids):
            if snt.poll() is not None or time.monotonic() > deadline:
                raise failure("the sentinels did not register in time")
            time.sleep(0.05)
        n = min(args.proctor_procs, proctors)
        for i in range(n):
            first = proctors * i // n
            count = proctors * (i + 1) // n - first
            spawn("proctors", first, count,
                  [PROCTORS, "--url", v.url("relay", "/proctor"), "--subs", str(args.subs),
                   "--token", PTOKEN, "--ids", ids, "--first", str(first),
                   "--count", str(count)])

        floods = []
        for spec in getattr(args, "flood", None) or []:
            stage, mode, count, rate = spec
            addr = v.stage(stage)["listen"]
            spawn("flood-%s-%s" % (stage, mode), 0, count,
                  [FLOOD, "--target", addr, "--count", str(count), "--mode", mode,
                   "--rate", str(rate), "--first-source", str(2 + 100 * len(floods) % 200),
                   "--sources", "50", "--seconds",
                   str(SETUP_SECONDS + args.warmup + args.seconds + 3)])
            floods.append(spec)

        pids = v.pids()
        # Every relay worker, then ingest, then the load processes.
        relays = sorted((w["name"], w["pid"]) for w in v.workers())
        n_relay = len(relays)
        watched = [pid for _, pid in relays] + [pids["ingest"]] + \
            [p.pid for _, _, _, p, _, _, _ in procs]

        def sleep_until(unix_ms):
            # Bounded: the window is at most SETUP_SECONDS + warmup + seconds ahead.
            left = unix_ms / 1000 - time.time()
            if left > 0:
                time.sleep(min(left, SETUP_SECONDS + args.warmup + args.seconds + 5))

        rss, stats, stop = [], [], threading.Event()

        def sample_rss():
            # Each worker's RSS; their stats together, once all have sent some.
            while not stop.wait(1.0):
                try:
                    hbs = [w.get("heartbeat") or {} for w in v.workers()]
                except AssertionError:
                    continue
                rss.append([hb.get("memBytes", 0) for hb in hbs])
                if all("fanoutHist" in (hb.get("stats") or {}) for hb in hbs):
                    stats.append([hb["stats"] for hb in hbs])

        sleep_until(start_ms)
        cpu0, t0 = [cpu_or_none(pid) for pid in watched], time.monotonic()
        sampler = threading.Thread(target=sample_rss)
        sampler.start()
        try:
            sleep_until(end_ms)
            cpu1, t1 = [cpu_or_none(pid) for pid in watched], time.monotonic()
        finally:
            stop.set()
            sampler.join()
        wait_until = time.monotonic() + 30  # the processes end 3 s after the window
        for _, _, _, p, _, _, _ in procs:
            try:
                p.wait(max(1.0, wait_until - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise failure("a load process did not end in time") from None
        if any(p.returncode != 0 for _, _, _, p, _, _, _ in procs):
            raise failure("a load process failed")
        if sorted((w["name"], w["pid"]) for w in v.workers()) != relays:
            raise RuntimeError("the relay restarted during the run: " + v.log()[-3000:])

        def cpu_pct(i):
            if cpu0[i] is None or cpu1[i] is None:
                return None
            return round(100 * (cpu1[i] - cpu0[i]) / (t1 - t0), 1)

        def relay_cpu_s():
            if any(cpu0[i] is None or cpu1[i] is None for i in range(n_relay)):
                return None
            return sum(cpu1[i] - cpu0[i] for i in range(n_relay))

        outs = []
        for _, _, _, _, out, _, _ in procs:
            with open(out) as f:
                outs.append(json.load(f))
        flood_outs = [(r[0], o) for r, o in zip(procs, outs) if r[0].startswith("flood")]
        ours = [(r, o) for r, o in zip(procs, outs) if not r[0].startswith("flood")]
        outs = [o for _, o in ours]
        s_out, p_outs = outs[0], outs[1:]
        samples = []
        for (role, _, _, _, _, _, path), _ in ours[1:]:
            with open(path) as f:
                samples.extend(float(x) for x in f.read().split())
        samples.sort()
        secs = s_out["seconds"]
        win_sent = s_out["windowSent"]
        expected = sum(win_sent[(p * args.subs + j) % args.sentinels]
                       for p in range(proctors) for j in range(args.subs))
        received = sum(o["received"] for o in p_outs)
        rx_bytes = sum(o["rxBytes"] for o in p_outs)
        res = {
            "sentinels": args.sentinels, "proctors": proctors, "subscriptions": args.subs,
            "segmentBytes": s_out["segmentBytes"], "seconds": secs,
            "latencyMsP50": round(pct(samples, 0.50), 2),
            "latencyMsP99": round(pct(samples, 0.99), 2),
            "latencyMsMax": round(samples[-1], 2) if samples else 0.0,
            "latencySamples": len(samples),
            "latencyClock": "CLOCK_REALTIME, startTime stamped in ms (+-0.5 ms)",
            "deliveredMBPerS": round(rx_bytes / secs / 1e6, 2),
            "deliveredSegmentsPerS": round(sum(o["rxSegments"] for o in p_outs) / secs, 1),
            "sentSegmentsPerS": s_out["sentSegmentsPerS"],
            "expected": expected, "missing": max(expected - received, 0),
            "skips": sum(o["skips"] for o in p_outs),
            "unmatched": sum(o["unmatched"] for o in p_outs),
            "sendDrops": s_out["sendDrops"], "partialWrites": s_out["partialWrites"],
            "closed": sum(o["closed"] for o in outs),
            "benchLoopLagMsMax": max(o["benchLoopLagMsMax"] for o in outs),
            "benchLoopLagsOver10Ms": sum(o["benchLoopLagsOver10Ms"] for o in outs),
            "relayWorkers": n_relay,
            "relayCpuPercent": (round(100 * relay_cpu_s() / (t1 - t0), 1)
                                if relay_cpu_s() is not None else None),
            "relayWorkerCpuPercent": [cpu_pct(i) for i in range(n_relay)],
            "relayCpuSeconds": relay_cpu_s(),
            "windowSeconds": round(t1 - t0, 2),
            "ingestCpuPercent": cpu_pct(n_relay),
        }
        load = []
        for i, ((role, first, count, _, _, _, _), o) in enumerate(zip(procs, outs)):
            if role.startswith("flood"):
                break
            entry = {"role": role, "first": first, "count": count,
                     "cpuPercent": cpu_pct(n_relay + 1 + i),
                     "loopLagMsMax": o["benchLoopLagMsMax"]}
            if role == "proctors":
                entry["latencyMsP99"] = o["latencyMsP99"]
            load.append(entry)
        first_flood = n_relay + 1 + len(load)
        for i, (role, o) in enumerate(flood_outs):
            o["cpuPercent"] = cpu_pct(first_flood + i)
            load.append(dict(role=role, **o))
        res["benchCpuPercent"] = round(sum(e["cpuPercent"] or 0 for e in load), 1)
        res["loadProcesses"] = load
        # The largest RSS of any worker, and each worker's.
        res["relayRssMiB"] = round(max(max(r) for r in rss) / 1048576, 1) if rss else None
        res["relayWorkerRssMiB"] = [round(max(r[i] for r in rss) / 1048576, 1)
                                    for i in range(len(rss[0]))] if rss else None
        # The relay's own share, from its workers' heartbeats' histograms over
        # the window: publication in the ring to the feed's read, and to the last
        # byte of each proctor's copy handed to the kernel.
        if len(stats) >= 2:
            res["relayPartialWrites"] = sum(b["partialWrites"] - a["partialWrites"]
                                            for a, b in zip(stats[0], stats[-1]))
            for key, name in (("feedHist", "relayFeed"), ("fanoutHist", "relayFanout")):
                p50, p99, n = hist_window(hist_sum(s[key] for s in stats[0]),
                                          hist_sum(s[key] for s in stats[-1]))
                res[name + "UsP50"], res[name + "UsP99"], res[name + "Samples"] = p50, p99, n
        other = []
        for _, _, _, _, _, err, _ in procs:
            with open(err) as f:
                other += [ln for ln in f.read().splitlines()
                          if ln not in ("ready", "measuring", "measured")]
        if other:
            res["stderr"] = other[-5:]
        return res
    finally:
        for _, _, _, p, _, _, _ in procs:
            if p.poll() is None:
                p.kill()
                p.wait(30)
        v.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sentinels", type=int, default=50)
    ap.add_argument("--proctors", type=int, default=200)
    ap.add_argument("--subs", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--proctor-procs", type=int, default=2,
                    help="proctor processes, besides one sentinel process")
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--workers", type=int, default=1, help="relay.workers (default 1)")
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
            rounds.append({"proctors": proctors, "error": str(e)[:1500]})
            break
        rounds.append(res)
        if res["latencyMsP99"] > P99_LIMIT_MS:
            knee = res
            break
        proctors *= 2
    # One more round halfway between the last under the limit and the first
    # over it places the limit closer than a factor of two.
    if knee is not None and len(rounds) >= 2 and "error" not in rounds[-2]:
        mid = (rounds[-2]["proctors"] + knee["proctors"]) // 2
        try:
            res = run_once(args, mid)
            rounds.append(res)
            if res["latencyMsP99"] > P99_LIMIT_MS:
                knee = res
        except (RuntimeError, AssertionError, subprocess.TimeoutExpired) as e:
            rounds.append({"proctors": mid, "error": str(e)[:1500]})
    loopback = loopback_mb_s()
    under = [r for r in rounds if "error" not in r and r["latencyMsP99"] <= P99_LIMIT_MS]
    print(json.dumps({
        "workers": args.workers,
        "rounds": rounds,
        # Each load process is one thread: when one of them nears 100 % CPU in a
        # round (loadProcesses), that round measures the load, not the relay.
        "proctorsUnderLimit": under[-1]["proctors"] if under else None,
        "p99LimitMs": P99_LIMIT_MS,
        "fanOutAtLimit": knee["proctors"] * knee["subscriptions"] if knee else None,
        "proctorsAtLimit": knee["proctors"] if knee else None,
        "deliveredMBPerSAtLimit": knee["deliveredMBPerS"] if knee else None,
        "p99MsAtLimit": knee["latencyMsP99"] if knee else None,
        "relayCpuPercentAtLimit": knee["relayCpuPercent"] if knee else None,
        "loadCpuPercentAtLimit": knee["benchCpuPercent"] if knee else None,
        "loopbackTcpMBPerS": round(loopback, 0),
    }, indent=2))


if __name__ == "__main__":
    main()
