#!/usr/bin/python3
"""Rolling restart benchmark (issue 13): tests/integration/test_workers.py's
rolling restart at a larger scale: P proctors (tests/bench_proctor --reconnect)
watching S sentinels (tests/bench_relay), `vigilctl restart relay` while they
stream. Prints how long each proctor took from its 1012 to its next segment
(max, average), the reconnections (a proctor that came back to a worker not
yet restarted sees a second 1012), what was missed (gaps: none expected while
the ring holds the time), refused or otherwise closed connections.
  tests/bench_rolling.py [--proctors 800] [--sentinels 50] [--workers 2]
No assertion on timings: the figures go into docs/benchmarks.md."""
import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "integration"))
from test_workers import AUTH, rolling_restart  # noqa: E402
from vigil import Vigil  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--proctors", type=int, default=800)
    ap.add_argument("--sentinels", type=int, default=50)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    v = Vigil(extra=AUTH.replace("sentinel: required", "sentinel: none"), workers=args.workers,
              limits="max_sentinels: %d, max_proctors: %d, max_message_bytes: 2MiB, "
              "max_connections_per_ip: 0" % (args.sentinels + 10, args.proctors + 10),
              timeouts="idle: 120s")
    v.ring_size = "256MiB"
    v.write_config()
    tmp = tempfile.mkdtemp(dir=v.dir)
    load0 = os.getloadavg()
    v.start()
    try:
        pro, sen, took, before, after, _ = rolling_restart(v, args.proctors, args.sentinels, tmp)
        refused = sum((w.get("heartbeat") or {}).get("stats", {}).get(k, 0)
                      for w in v.workers() for k in ("refusedPerIp", "refusedHandshakes"))
    finally:
        v.stop()
    print(json.dumps({
        "workers": args.workers, "proctors": args.proctors, "sentinels": args.sentinels,
        "restartSeconds": round(took, 2), "loadAverageBefore": [round(x, 2) for x in load0],
        "reconnections": pro["restarts"], "streamingAfter": pro["streaming"],
        "backMsMax": pro["backMsMax"], "backMsAvg": pro["backMsAvg"], "gaps": pro["gaps"],
        "missed": pro["missed"], "skips": pro["skips"], "failures": pro["failures"],
        "refused": refused, "sentinelsClosed": sen["closed"],
        "pidsChanged": all(before[k] != after[k] for k in before),
    }, indent=2))


if __name__ == "__main__":
    main()
