#!/usr/bin/python3
"""live.mjpeg's cost (docs/httpd.md, "Live MJPEG"): one vigil-sentinel (640x360,
15 fps), then httpd's CPU (percent of one core, from /proc/PID/stat), its
RssAnon and each client's observed rate while N clients watch for SECONDS.
Scenarios: no client, 1 client, 10 clients of one width, 10 clients over 4
widths and 3 rates, 1 reader beside 10 clients that never read. Figures vary
with the machine's load: run it on a quiet one.

  VIGIL_BUILD_DIR=build python3 tests/bench_mjpeg.py [SECONDS]"""
import os
import re
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "integration"))
from vigil import BUILD, Vigil  # noqa: E402

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 15
AUTH = """auth:
  sentinel: none
  tokens:
    - { name: p1, role: proctor, token: "p" }
"""
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(next(x for x in f if x.startswith("RssAnon:")).split()[1])


class Client(threading.Thread):
    """Reads a stream and counts whole parts (or never reads at all)."""

    def __init__(self, addr, path, read=True):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        if not read:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(addr)
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: b\r\n\r\n" % path).encode())
        self.read, self.times, self.stop = read, [], False

    def run(self):
        buf = b""
        while self.read and not self.stop:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                return
            buf += chunk
            while True:
                m = re.search(rb"Content-Length: (\d+)\r\n\r\n", buf)
                if not m or len(buf) < m.end() + int(m.group(1)):
                    break
                buf = buf[m.end() + int(m.group(1)):]
                self.times.append(time.monotonic())

    def rate(self, t0):
        ts = [t for t in self.times if t >= t0]
        return (len(ts) - 1) / (ts[-1] - ts[0]) if len(ts) > 1 else 0.0


def scenario(v, sid, name, specs):
    addr = v.stage("httpd")["listen"].rsplit(":", 1)
    addr = (addr[0], int(addr[1]))
    pid = v.stage("httpd")["pid"]
    clients = [Client(addr, "/api/sentinels/%s/live.mjpeg?token=p&%s" % (sid, q), read)
               for q, read in specs]
    for c in clients:
        c.start()
    time.sleep(3)  # warm-up: decoders start, the first parts catch up
    t0, c0, r0 = time.monotonic(), cpu_s(pid), rss_kib(pid)
    time.sleep(SECONDS)
    t1, c1, r1 = time.monotonic(), cpu_s(pid), rss_kib(pid)
    rates = ["%.2f" % c.rate(t0) for c in clients if c.read]
    for c in clients:
        c.stop = True
        c.sock.close()
    print("%-34s cpu %5.1f%%  RssAnon %6d -> %6d KiB  fps %s" % (
        name, 100 * (c1 - c0) / (t1 - t0), r0, r1, " ".join(rates) or "-"), flush=True)
    time.sleep(2)  # the decoder stops before the next scenario


def main():
    v = Vigil(extra=AUTH)
    v.start()
    sent = subprocess.Popen([os.path.join(BUILD, "deploy", "vigil-sentinel"), "--url",
                             v.url("ingest", "/sentinel"), "--name", "bench", "--size",
                             "640x360", "--fps", "15", "--state", v.dir + "/bench.id"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import json
        import urllib.request
        host = v.stage("httpd")["listen"]
        for _ in range(100):
            req = urllib.request.Request("http://%s/api/sentinels" % host,
                                         headers={"Authorization": "Bearer p"})
            s = [x for x in json.load(urllib.request.urlopen(req, timeout=5))
                 if x["online"] and x["lastSequence"] >= 0]
            if s:
                break
            time.sleep(0.2)
        sid = s[0]["sentinelId"]
        print("one vigil-sentinel 640x360 15 fps; %.0f s per scenario" % SECONDS)
        scenario(v, sid, "no client", [])
        scenario(v, sid, "1 client, 5 fps", [("fps=5", True)])
        scenario(v, sid, "10 clients, 5 fps, one width", [("fps=5", True)] * 10)
        mixed = [("fps=%s&width=%d" % (f, w), True) for f, w in
                 [(5, 640), (1, 640), (2, 320), (5, 320), (1, 320), (2, 160), (5, 160),
                  (1, 96), (2, 96), (5, 96)]]
        scenario(v, sid, "10 clients, 4 widths, 1-5 fps", mixed)
        scenario(v, sid, "1 reader + 10 that never read", [("fps=5", True)] +
                 [("fps=5", False)] * 10)
    finally:
        sent.terminate()
        sent.wait(30)
        v.stop()


if __name__ == "__main__":
    main()
