#!/usr/bin/python3
"""HTTP benchmark (issue 6): wrk (32 connections, 2 threads, 5 s a run) fetches
a 1 MiB segment and a 100 MiB export.mp4 (an init and 100 segments of 1 MiB)
from vigil-httpd, and the same bytes as plain files from nginx (one worker,
sendfile on, access log off, a config of its own in a temp dir on 127.0.0.1)
on the same disk, in the same run. The files are in the page cache (each run
is preceded by a warm-up fetch), so this measures the servers, not the disk.
Prints req/s and MB/s side by side and vigil's share of nginx's throughput.
  tests/bench_httpd.py [--seconds 5] [--connections 32]
No assertion on timings: the figures go into docs/benchmarks.md."""
import argparse
import hashlib
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "integration"))
sys.path.insert(0, os.path.dirname(__file__))
from vigil import Vigil  # noqa: E402
from benchlib import free_port, loopback_mb_s  # noqa: E402

TOKEN = "bench-archivist-secret"
MIB = 1 << 20
N_SEGS = 100


def write_archive(data):
    """One ended session in the archive's layout: init + N_SEGS segments of 1 MiB."""
    sid, sess = str(uuid.uuid4()), str(uuid.uuid4())
    d = os.path.join(data, sid, sess)
    os.makedirs(d)
    with open(os.path.join(data, sid, "sentinel.json"), "w") as f:
        json.dump({"sentinelId": sid, "name": "bench", "updated": 1}, f)
    now = int(time.time() * 1000)
    with open(os.path.join(d, "session.json"), "w") as f:
        json.dump({"sentinelId": sid, "sessionId": sess, "name": "bench", "codec": "avc1.64001f",
                   "width": 1280, "height": 720, "timescale": 90000,
                   "startTime": now - N_SEGS * 1000, "endTime": now, "inits": 1}, f)
    init = os.urandom(1024)
    with open(os.path.join(d, "init.mp4"), "wb") as f:
        f.write(init)
    export = [init]
    with open(os.path.join(d, "index.jsonl"), "w") as idx:
        for i in range(N_SEGS):
            seg = os.urandom(MIB)
            export.append(seg)
            with open(os.path.join(d, "%06d.m4s" % i), "wb") as f:
                f.write(seg)
            idx.write(json.dumps({"sequence": i, "startTime": now - (N_SEGS - i) * 1000,
                                  "duration": 1000, "bytes": MIB, "keyframe": True, "init": 0,
                                  "sha256": hashlib.sha256(seg).hexdigest()}) + "\n")
    return sid, sess, b"".join(export)


def start_nginx(tmp, root):
    port = free_port()
    user = ""
    if os.geteuid() == 0:  # as root nginx would switch to nobody, who cannot read the temp dirs
        user = "user %s;\n" % pwd.getpwuid(os.geteuid()).pw_name
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(user + """daemon off;
worker_processes 1;
pid %(t)s/nginx.pid;
error_log %(t)s/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  client_body_temp_path %(t)s/body;
  proxy_temp_path %(t)s/proxy;
  fastcgi_temp_path %(t)s/fastcgi;
  uwsgi_temp_path %(t)s/uwsgi;
  scgi_temp_path %(t)s/scgi;
  types { video/mp4 mp4 m4s; }
  server { listen 127.0.0.1:%(p)d; root %(r)s; }
}
""" % {"t": tmp, "p": port, "r": root})
    proc = subprocess.Popen(["nginx", "-c", conf, "-p", tmp], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("nginx did not start: %s" % proc.stderr.read().decode())
            time.sleep(0.05)


def fetch(url):
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + TOKEN})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read()


UNITS = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}


def wrk(url, seconds, conns):
    res = subprocess.run(["wrk", "-t2", "-c%d" % conns, "-d%ds" % seconds, "--timeout", "30s",
                          "-H", "Authorization: Bearer " + TOKEN, url],
                         capture_output=True, text=True, timeout=seconds + 60)
    if res.returncode != 0:
        raise SystemExit("wrk failed: " + res.stderr)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", res.stdout).group(1))
    m = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", res.stdout)
    mbs = float(m.group(1)) * UNITS[m.group(2)] / 1e6
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", res.stdout)
    if errors:
        raise SystemExit("wrk saw %s error responses from %s" % (errors.group(1), url))
    return rps, mbs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=32)
    args = ap.parse_args()
    v = Vigil(extra="auth:\n  sentinel: none\n  tokens:\n"
                    '    - { name: bench, role: archivist, token: "%s" }\n' % TOKEN,
              timeouts="idle: 120s")
    tmp = tempfile.mkdtemp(prefix="vigil-bench-http-")
    nginx = None
    try:
        data = os.path.join(v.dir, "data")
        sid, sess, export = write_archive(data)
        with open(os.path.join(tmp, "export.mp4"), "wb") as f:  # the same disk as data_dir
            f.write(export)
        v.start()
        nginx, nport = start_nginx(tmp, data)
        shutil.move(os.path.join(tmp, "export.mp4"), os.path.join(data, "export.mp4"))
        base = "http://%s/api/sentinels/%s/sessions/%s" % (v.stage("httpd")["listen"], sid, sess)
        urls = {
            ("segment 1 MiB", "vigil-httpd"): base + "/segments/7.m4s",
            ("segment 1 MiB", "nginx"): "http://127.0.0.1:%d/%s/%s/000007.m4s" % (nport, sid, sess),
            ("export 100 MiB", "vigil-httpd"): base + "/export.mp4",
            ("export 100 MiB", "nginx"): "http://127.0.0.1:%d/export.mp4" % nport,
        }
        # Same bytes from both before anything is timed (and the page cache is warm).
        for what in ("segment 1 MiB", "export 100 MiB"):
            a, b = fetch(urls[(what, "vigil-httpd")]), fetch(urls[(what, "nginx")])
            if a != b:
                raise SystemExit("%s: vigil-httpd and nginx sent different bytes" % what)
        rows = {}
        for key, url in urls.items():
            rows[key] = wrk(url, args.seconds, args.connections)
        lo = loopback_mb_s()
        print("| what | server | req/s | MB/s | vs nginx |")
        print("|---|---|---:|---:|---:|")
        for what in ("segment 1 MiB", "export 100 MiB"):
            ng = rows[(what, "nginx")][1]
            for srv in ("vigil-httpd", "nginx"):
                rps, mbs = rows[(what, srv)]
                print("| %s | %s | %.1f | %.0f | %.0f %% |" % (what, srv, rps, mbs,
                                                           100 * mbs / ng))
        print("\n%d connections, wrk -t2, %d s a run; loopback TCP (one stream) %.0f MB/s; "
              "%d cores" % (args.connections, args.seconds, lo, os.cpu_count()))
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait(10)
            nginx.stderr.close()
        v.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
