#!/usr/bin/python3
"""Reading the audit log (docs/audit.md, "Reading it"): a log of --records
records (default 1,000,000, about 360 bytes each, one a second: 12 day
files) written by tests/integration/auditlog.py into a fresh data_dir, then
vigil-httpd started by hand on it. Measured, each the median of --runs:

  GET /api/audit/verify           records/s and MB/s of the chain check
  GET /api/audit                  the whole log streamed: MB/s, records/s
  GET /api/audit?sentinelId=&action=   every record read, few sent: records/s
  docs/audit.md's offline script  on the same log, for reference
  SHA-256 alone                   OpenSSL over the same bytes, in this process

and httpd's RSS before and after. Figures go in docs/benchmarks.md.
(`meson test -C build --benchmark --suite bench audit-read --verbose`.)"""
import argparse
import glob
import hashlib
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "integration"))
import auditlog as A  # noqa: E402
from test_audit_read import OT, SENTINELS, Httpd, rss_kib  # noqa: E402
from vigil import SOURCE  # noqa: E402


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        v = f.read().rsplit(")", 1)[1].split()
    return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")


def timed_get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    t0 = time.monotonic()
    c.request("GET", path, headers={"Authorization": "Bearer " + OT})
    r = c.getresponse()
    n = 0
    body = b""
    while True:
        chunk = r.read(1 << 20)
        if not chunk:
            break
        n += len(chunk)
        if len(body) < 4096:
            body += chunk[:4096]
    dt = time.monotonic() - t0
    c.close()
    assert r.status == 200, body
    return dt, n, body


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="vigil-bench-audit-")
    h = None
    try:
        d = os.path.join(root, "data", "audit")
        t0 = time.monotonic()
        A.generate(A.AuditLog(d, keep=False), a.records, 1796083200000, 1000,
                   sentinels=SENTINELS)
        gen_s = time.monotonic() - t0
        files = sorted(glob.glob(d + "/audit-*.jsonl"))
        size = sum(os.path.getsize(f) for f in files)
        print("log: %d records, %d files, %.1f MB (%.0f bytes a record), written in %.1f s" % (
            a.records, len(files), size / 1e6, size / a.records, gen_s))
        h = Httpd(root)
        pid = h.proc.pid
        rss0 = rss_kib(pid)

        runs, cpu = [], []
        for _ in range(a.runs):
            c0 = cpu_s(pid)
            runs.append(timed_get(h.port, "/api/audit/verify"))
            cpu.append(cpu_s(pid) - c0)
        v = json.loads(runs[-1][2])
        assert v["ok"] and v["records"] == a.records, v
        s = statistics.median(r[0] for r in runs)
        c = statistics.median(cpu)
        print("verify: %.2f s median of %s: %.0f records/s, %.0f MB/s; httpd CPU %.2f s "
              "(%.0f records per CPU second)" % (
                  s, ", ".join("%.2f" % r[0] for r in runs), a.records / s, size / s / 1e6, c,
                  a.records / c))

        runs = [timed_get(h.port, "/api/audit") for _ in range(a.runs)]
        assert runs[-1][1] == size
        s = statistics.median(r[0] for r in runs)
        print("stream, no filter: %.2f s median: %.0f MB/s, %.0f records/s" % (
            s, size / s / 1e6, a.records / s))

        q = "/api/audit?sentinelId=%s&action=export" % SENTINELS[0]
        runs = [timed_get(h.port, q) for _ in range(a.runs)]
        s = statistics.median(r[0] for r in runs)
        print("stream, sentinelId and action (%d KB sent): %.2f s median: %.0f records/s read" % (
            runs[-1][1] // 1000, s, a.records / s))
        q = "/api/audit?from=%d&to=%d" % (1796083200000 + 86400000, 1796083200000 + 2 * 86400000)
        runs = [timed_get(h.port, q) for _ in range(a.runs)]
        s = statistics.median(r[0] for r in runs)
        print("stream, one day of from/to (%.1f MB sent, 3 of %d files read): %.2f s" % (
            runs[-1][1] / 1e6, len(files), s))
        rss1 = rss_kib(pid)
        print("httpd RSS: %d KiB at the start, %d KiB after" % (rss0, rss1))

        t0 = time.monotonic()
        res = subprocess.run(["/usr/bin/python3", "-c", A.doc_script(SOURCE), d],
                             capture_output=True, text=True)
        s = time.monotonic() - t0
        print("docs/audit.md's script: %.1f s, %.0f records/s (%s)" % (
            s, a.records / s, res.stdout.strip() or res.stderr.strip()))
        data = b"".join(open(f, "rb").read() for f in files)
        lines = data.split(b"\n")[:-1]
        t0 = time.monotonic()
        for ln in lines:
            hashlib.sha256(ln).digest()
        s = time.monotonic() - t0
        print("SHA-256 of every line (Python's hashlib, OpenSSL): %.2f s, %.0f lines/s" % (
            s, len(lines) / s))
    finally:
        if h is not None:
            h.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
