#!/usr/bin/python3
"""GET /api/sessions over a large archive (issue 14, item 9): a real vigild
whose data_dir gets N synthetic sessions (default 10,000 of 500 sentinels, 60
index lines each: a minute of 1 s segments) written in the archive's layout
while archive is stopped (its repair would drop index lines whose segment
files this script does not write). Times, on one keep-alive connection:
the first listing after httpd started (every session.json read, one page's
indexes), the same again (the cache), limit=1000, a name filter, a time
range, the walk through every page of 1,000 (every index read once), and the
first page after every index and session.json changed. Also httpd's
anonymous RSS before and after.
  tests/bench_sessions.py [--sessions 10000] [--sentinels 500] [--lines 60] [--runs 20]
No assertion on timings: the figures go into docs/httpd.md."""
import argparse
import hashlib
import http.client
import json
import os
import statistics
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "integration"))
from vigil import Vigil  # noqa: E402

TOKEN = "bench-proctor-secret"
HOUR = 3600 * 1000


def write_archive(data, sessions, sentinels, lines):
    """sessions sessions spread over sentinels sentinels, every one ended."""
    now = int(time.time() * 1000)
    sha = hashlib.sha256(b"bench").hexdigest()
    line = ('{"sequence":%d,"startTime":%d,"duration":1000,"bytes":123456,'
            '"keyframe":true,"init":0,"sha256":"' + sha + '"}\n')
    sids = [str(uuid.uuid4()) for _ in range(sentinels)]
    for i, sid in enumerate(sids):
        os.makedirs(os.path.join(data, sid))
        with open(os.path.join(data, sid, "sentinel.json"), "w") as f:
            json.dump({"sentinelId": sid, "name": "hall-%03d" % i, "updated": 1}, f)
    for k in range(sessions):
        sid, sess = sids[k % sentinels], str(uuid.uuid4())
        d = os.path.join(data, sid, sess)
        os.mkdir(d)
        start = now - (sessions - k) * HOUR // 10
        with open(os.path.join(d, "session.json"), "w") as f:
            json.dump({"sentinelId": sid, "sessionId": sess, "name": "hall-%03d" % (
                k % sentinels), "codec": "avc1.64001f", "width": 1280, "height": 720,
                "timescale": 90000, "startTime": start, "endTime": start + lines * 1000,
                "inits": 1}, f)
        with open(os.path.join(d, "index.jsonl"), "w") as f:
            f.write("".join(line % (s, start + 1000 * s) for s in range(lines)))
    return now


def touch_all(data):
    """Every session.json rewritten as archive does (temp, rename) and one
    line appended to every index: the caches must notice both."""
    for sid in os.listdir(data):
        sdir = os.path.join(data, sid)
        if not os.path.isdir(sdir):
            continue
        for sess in os.listdir(sdir):
            d = os.path.join(sdir, sess)
            if not os.path.isdir(d):
                continue
            with open(os.path.join(d, "session.json")) as f:
                meta = json.load(f)
            meta["endTime"] += 1000
            with open(os.path.join(d, "session.json.tmp"), "w") as f:
                json.dump(meta, f)
            os.rename(os.path.join(d, "session.json.tmp"), os.path.join(d, "session.json"))
            with open(os.path.join(d, "index.jsonl"), "rb+") as f:
                last = f.read().splitlines()[-1]
                e = json.loads(last)
                e["sequence"] += 1
                e["startTime"] += 1000
                f.write(json.dumps(e, separators=(",", ":")).encode() + b"\n")


class Client:
    def __init__(self, hostport):
        host, port = hostport.rsplit(":", 1)
        self.c = http.client.HTTPConnection(host, int(port), timeout=600)

    def get(self, path):
        t0 = time.perf_counter()
        self.c.request("GET", path, headers={"Authorization": "Bearer " + TOKEN})
        r = self.c.getresponse()
        body = r.read()
        ms = (time.perf_counter() - t0) * 1000
        if r.status != 200:
            raise SystemExit("%s: %d %s" % (path, r.status, body[:200]))
        return ms, r.getheader("Link"), json.loads(body)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(next(x for x in f if x.startswith("RssAnon:")).split()[1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=10000)
    ap.add_argument("--sentinels", type=int, default=500)
    ap.add_argument("--lines", type=int, default=60)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    v = Vigil(extra="auth:\n  sentinel: none\n  tokens:\n"
                    '    - { name: bench, role: proctor, token: "%s" }\n' % TOKEN,
              timeouts="idle: 600s")
    try:
        v.start()
        w = v.watch()
        if not v.request(cmd="stop", stage="archive")["ok"]:
            raise SystemExit("archive did not stop")
        w.wait_state("archive", "down")
        w.close()
        data = os.path.join(v.dir, "data")
        t0 = time.monotonic()
        now = write_archive(data, args.sessions, args.sentinels, args.lines)
        print("wrote %d sessions of %d sentinels, %d index lines each, in %.1f s" % (
            args.sessions, args.sentinels, args.lines, time.monotonic() - t0))
        pid = v.stage("httpd")["pid"]
        rss0 = rss_kib(pid)
        c = Client(v.stage("httpd")["listen"])
        rows = []

        def warm(what, path):
            c.get(path)
            ms = [c.get(path)[0] for _ in range(args.runs)]
            rows.append((what, "%.1f" % statistics.median(ms), "%.1f" % max(ms)))

        ms, _, page = c.get("/api/sessions")
        if len(page) != min(100, args.sessions):
            raise SystemExit("the first page has %d entries" % len(page))
        rows.append(("first listing after start (limit 100)", "%.1f" % ms, ""))
        warm("again (limit 100, cached)", "/api/sessions")
        ms, _, page = c.get("/api/sessions?limit=1000")
        rows.append(("limit 1000, first time", "%.1f" % ms, ""))
        warm("limit 1000, cached", "/api/sessions?limit=1000")
        warm("name=hall-007 (%d matches)" % len(c.get("/api/sessions?name=hall-007&limit=1000")[2]),
             "/api/sessions?name=hall-007&limit=1000")
        lo = now - args.sessions * HOUR // 20
        warm("from/to: the newest half, limit 100",
             "/api/sessions?from=%d&to=%d" % (lo, now))
        # every page of 1,000: each index is read once
        t0 = time.perf_counter()
        path, seen, pages = "/api/sessions?limit=1000", 0, 0
        while path is not None:
            _, link, page = c.get(path)
            seen += len(page)
            pages += 1
            path = link[1:link.index(">")] if link else None
        if seen != args.sessions:
            raise SystemExit("the pages held %d sessions, not %d" % (seen, args.sessions))
        rows.append(("every page of 1000 (%d pages), indexes read once" % pages,
                     "%.1f" % ((time.perf_counter() - t0) * 1000), ""))
        warm("every page read: limit 100 again", "/api/sessions")
        rss1 = rss_kib(pid)
        touch_all(data)
        ms, _, page = c.get("/api/sessions")
        if page[0]["segments"] != args.lines + 1:
            raise SystemExit("the appended index line was not counted: %s" % page[0])
        rows.append(("after every session.json and index changed (limit 100)", "%.1f" % ms, ""))
        print("\n| request | median ms | max ms |")
        print("|---|---:|---:|")
        for r in rows:
            print("| %s | %s | %s |" % r)
        print("\nhttpd RssAnon: %d KiB before, %d KiB after (%d sessions cached); %d cores" % (
            rss0, rss1, args.sessions, os.cpu_count()))
    finally:
        v.stop()


if __name__ == "__main__":
    main()
