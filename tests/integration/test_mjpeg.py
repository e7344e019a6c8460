#!/usr/bin/python3
"""Integration tests of live.mjpeg (PROTOCOL.md section 6, docs/httpd.md "Live
MJPEG") against a running vigild with real vigil-sentinels: ffprobe reads the
stream; a client of our own checks the framing part by part and measures the
rate; metrics show one decoder shared by two clients and gone after them; a
client that never reads costs no memory and is dropped; bad arguments, roles
and tokens; the stream's clean ends (token revoked, sentinel offline past the
grace, session deleted, httpd restarted) and a new session on the same
stream."""
import http.client
import glob
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from vigil import BUILD, Vigil  # noqa: E402
from wsclient import Client  # noqa: E402
from recording import encode  # noqa: E402

SENTINEL = os.path.join(BUILD, "deploy", "vigil-sentinel")
PT, AT, OT, ST, RT = ("proctor-secret", "archivist-secret", "operator-secret", "sentinel-secret",
                      "revoke-me-secret")
AUTH = """auth:
  sentinel: none
  tokens:
    - { name: p1, role: proctor, token: "proctor-secret" }
    - { name: a1, role: archivist, token: "archivist-secret" }
    - { name: o1, role: operator, token: "operator-secret" }
    - { name: s1, role: sentinel, token: "sentinel-secret" }
    - { name: old, role: proctor, token: "expired-secret", expires: 2020-01-01T00:00:00Z }
    - { name: rv, role: proctor, token: "revoke-me-secret" }
"""
BOUNDARY = b"vigil-mjpeg-frame"
GRACE_S = 10  # MJPEG_GRACE_MS
IDLE_S = 10   # timeouts.idle of this instance: a client that takes nothing is dropped
STALLED = 6   # clients that never read, at once


def until(pred, timeout=15, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.1)


def jpeg_size(b):
    """(width, height) from a JPEG's SOF marker."""
    i = 2
    while i + 9 < len(b):
        if b[i] != 0xFF:
            raise AssertionError("not a JPEG marker at %d" % i)
        marker, length = b[i + 1], struct.unpack(">H", b[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            h, w = struct.unpack(">HH", b[i + 5:i + 9])
            return w, h
        i += 2 + length
    raise AssertionError("no SOF marker")


def fmp4(width, height, seconds=2):
    """An init segment and one-second keyframe segments of a test pattern, as
    tests/data/fmp4/make.sh makes the fixtures, at any size."""
    return encode(seconds, width, height, fps=30, kbit=None)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(next(x for x in f if x.startswith("RssAnon:")).split()[1])


class Stream:
    """One live.mjpeg client on a raw socket: the response head, then every part
    checked against the framing of docs/httpd.md, with the time it arrived."""

    def __init__(self, host, port, path, rcvbuf=None, timeout=15):
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect((host, port))
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: test\r\n\r\n" % path).encode())
        self.buf = b""
        self.eof = False
        self.opened = False
        self.ended = False
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            if not self._fill(deadline):
                raise AssertionError("no response head: %r" % self.buf[:300])
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.strip().lower(): v.strip()
                        for k, v in (x.split(":", 1) for x in lines[1:])}

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([self.sock], [], [], left)[0]:
            return False
        try:
            chunk = self.sock.recv(1 << 16)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def _need(self, n, deadline):
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise AssertionError("stream cut (eof %s) with %r" % (self.eof, self.buf[:80]))
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def part(self, timeout=10):
        """(arrival time, JPEG) of the next part; None after the close delimiter
        and the connection's end."""
        deadline = time.monotonic() + timeout
        if not self.opened:
            assert self._need(len(BOUNDARY) + 4, deadline) == b"--" + BOUNDARY + b"\r\n"
            self.opened = True
        else:
            # the delimiter went out with the last JPEG: now its suffix
            suffix = self._need(2, deadline)
            if suffix == b"--":
                assert self._need(2, deadline) == b"\r\n"
                while self._fill(deadline):
                    pass
                assert self.eof and self.buf == b"", "bytes after the close delimiter"
                self.ended = True
                return None
            assert suffix == b"\r\n", suffix
        while b"\r\n\r\n" not in self.buf:
            if not self._fill(deadline):
                if self.buf == b"" and self.eof:
                    raise AssertionError("connection ended without a close delimiter")
                raise AssertionError("no part head within %ss: %r" % (timeout, self.buf[:80]))
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        fields = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        assert fields["Content-Type"] == "image/jpeg", fields
        jpeg = self._need(int(fields["Content-Length"]), deadline)
        t = time.monotonic()
        assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9", "not a whole JPEG"
        assert self._need(len(BOUNDARY) + 4, deadline) == b"\r\n--" + BOUNDARY
        return t, jpeg

    def parts_for(self, seconds):
        out, end = [], time.monotonic() + seconds
        while time.monotonic() < end:
            p = self.part(timeout=max(end - time.monotonic(), 0.1) + 5)
            if p is None:
                break
            out.append(p)
        return out

    def wait_end(self, timeout):
        """Reads parts until the clean end; the seconds that took."""
        t0 = time.monotonic()
        while self.part(timeout=timeout) is not None:
            assert time.monotonic() - t0 < timeout, "the stream did not end in %ss" % timeout
        return time.monotonic() - t0

    def close(self):
        self.sock.close()


def rate(parts):
    """Parts per second between the first and the last of parts."""
    return (len(parts) - 1) / (parts[-1][0] - parts[0][0])


class Base(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.v = Vigil(extra=AUTH, timeouts="idle: %ds" % IDLE_S)
        cls.v.start()
        cls.host, port = cls.v.stage("httpd")["listen"].rsplit(":", 1)
        cls.port = int(port)
        cls.procs = []
        cls.cam = cls.sentinel("cam", "640x360")

    @classmethod
    def tearDownClass(cls):
        for p in cls.procs:
            if p.poll() is None:
                p.terminate()
                p.wait(30)
        cls.v.stop()

    @classmethod
    def start_sentinel(cls, name, size):
        p = subprocess.Popen([SENTINEL, "--url", cls.v.url("ingest", "/sentinel"), "--name", name,
                              "--size", size, "--fps", "15", "--bitrate", "400",
                              "--state", os.path.join(cls.v.dir, name + ".id")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cls.procs.append(p)
        return p

    @classmethod
    def sentinel(cls, name, size):
        """A vigil-sentinel, once its first segment is in: its listing entry."""
        proc = cls.start_sentinel(name, size)
        me = until(lambda: [x for x in cls.listing() if x["name"] == name and x["online"] and
                            x["lastSequence"] >= 0], timeout=30, what=name + " online")[0]
        me["proc"] = proc
        return me

    @classmethod
    def req(cls, method, path, token=PT):
        c = http.client.HTTPConnection(cls.host, cls.port, timeout=15)
        c.request(method, path, headers={"Authorization": "Bearer " + token} if token else {})
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body

    @classmethod
    def listing(cls):
        st, _, body = cls.req("GET", "/api/sentinels")
        assert st == 200, body
        return json.loads(body)

    def path(self, sid=None, token=PT, **args):
        q = "&".join("%s=%s" % kv for kv in args.items())
        return "/api/sentinels/%s/live.mjpeg?token=%s%s" % (sid or self.cam["sentinelId"], token,
                                                           "&" + q if q else "")

    def open(self, **kw):
        rcvbuf = kw.pop("rcvbuf", None)
        s = Stream(self.host, self.port, self.path(**kw), rcvbuf=rcvbuf)
        self.addCleanup(s.close)
        self.assertEqual(s.status, 200, s.buf[:200])
        return s

    def stats(self):
        st, _, body = self.req("GET", "/api/metrics", OT)
        self.assertEqual(st, 200, body)
        return json.loads(body)["stages"]["httpd"].get("stats") or {}

    def wait_stats(self, what, **want):
        """Until httpd's heartbeat figures (a second or two late) say want."""
        return until(lambda: (lambda s: s if all(s.get(k) == v for k, v in want.items())
                              else None)(self.stats()), timeout=20, what=what)


class TestStream(Base):
    def views(self):
        """The live.mjpeg views in the audit log."""
        out = []
        for f in sorted(glob.glob(os.path.join(self.v.dir, "data", "audit", "audit-*.jsonl"))):
            with open(f) as fh:
                out += [json.loads(x) for x in fh if x.strip()]
        return [r for r in out if r["action"] == "live.view" and r.get("via") == "live.mjpeg"]

    def test_a_stream_is_a_live_view_in_the_audit_log(self):
        """PROTOCOL.md section 9: watching live.mjpeg is a live view, recorded
        with its from and to when the stream ends."""
        views = self.views
        before = len(views())
        t0 = int(time.time() * 1000)
        s = self.open()
        s.part()
        s.close()
        t1 = int(time.time() * 1000)
        rec = until(lambda: views()[before:] or None, what="the live.view record")
        self.assertEqual(len(rec), 1, rec)
        rec = rec[0]
        self.assertEqual((rec["actor"], rec["role"], rec["remote"]), ("p1", "proctor", "127.0.0.1"))
        self.assertEqual(rec["sentinelId"], self.cam["sentinelId"])
        self.assertEqual(rec["sessionId"], self.cam["sessionId"])
        self.assertLessEqual(t0, rec["from"])
        self.assertLessEqual(rec["from"], rec["to"])
        self.assertLessEqual(rec["to"], t1 + 2000)

    def test_b_httpd_killed_mid_view_records_it_when_back(self):
        """PROTOCOL.md section 9: a view is recorded even when the stage that
        served it is killed: httpd's journal (docs/audit.md) has it."""
        journal = os.path.join(self.v.dir, "data", "audit", "httpd.views")
        before = len(self.views())
        t0 = int(time.time() * 1000)
        s = self.open()
        s.part()
        self.assertTrue(os.path.exists(journal))  # written before the first byte
        w = self.v.watch()
        self.addCleanup(w.close)
        pid = self.v.stage("httpd")["pid"]
        killed = int(time.time() * 1000)
        os.kill(pid, signal.SIGKILL)
        w.wait_state("httpd", "running", not_pid=pid, timeout=30)
        rec = until(lambda: self.views()[before:] or None, what="the killed view's record")
        self.assertEqual(len(rec), 1, rec)
        rec = rec[0]
        self.assertEqual((rec["actor"], rec["role"], rec["remote"]), ("p1", "proctor", "127.0.0.1"))
        self.assertEqual((rec["sentinelId"], rec["sessionId"]),
                         (self.cam["sentinelId"], self.cam["sessionId"]))
        # "to" is the last time the killed process said it was alive
        self.assertLessEqual(t0, rec["from"])
        self.assertLessEqual(rec["from"], rec["to"])
        self.assertLessEqual(rec["to"], killed)
        self.assertEqual(rec["time"], rec["to"])
        until(lambda: not os.path.exists(journal), what="the journal removed once recorded")
        self.assertIsNotNone(self.open(fps=5).part())

    def test_ffprobe_reads_frames_of_the_asked_width(self):
        url = "http://%s:%d%s" % (self.host, self.port, self.path(fps=5, width=320))
        res = subprocess.run(["ffprobe", "-v", "error", "-f", "mpjpeg", "-read_intervals", "%+#6",
                              "-show_entries", "stream=codec_name:frame=width,height",
                              "-of", "json", url], capture_output=True, text=True, timeout=60)
        self.assertEqual(res.returncode, 0, res.stderr)
        out = json.loads(res.stdout)
        self.assertEqual(out["streams"][0]["codec_name"], "mjpeg")
        self.assertGreaterEqual(len(out["frames"]), 6)
        for f in out["frames"]:
            self.assertEqual((f["width"], f["height"]), (320, 180))
        # ffmpeg takes N frames and stops
        res = subprocess.run(["ffmpeg", "-v", "error", "-f", "mpjpeg", "-i", url, "-frames:v",
                              "5", "-f", "null", "-"], capture_output=True, text=True,
                             timeout=60)
        self.assertEqual(res.returncode, 0, res.stderr)

    def test_framing_headers_sizes_and_rate(self):
        s = self.open(fps=2, width=160)
        self.assertEqual(s.headers["content-type"],
                         "multipart/x-mixed-replace; boundary=" + BOUNDARY.decode())
        self.assertEqual(s.headers["cache-control"], "no-store")
        self.assertEqual(s.headers["connection"], "close")
        self.assertNotIn("content-length", s.headers)
        self.assertNotIn("transfer-encoding", s.headers)
        parts = s.parts_for(5)
        for _, jpeg in parts:
            self.assertEqual(jpeg_size(jpeg), (160, 90))
        # the first part or two catch up with the live edge; then the pace holds
        steady = parts[2:]
        self.assertGreaterEqual(len(steady), 5, [round(t, 2) for t, _ in parts])
        self.assertLess(abs(rate(steady) - 2) / 2, 0.4, [round(t, 2) for t, _ in parts])
        # the video's own size by default, and at 5 fps
        s = self.open(fps=5)
        parts = s.parts_for(4)
        self.assertEqual(jpeg_size(parts[0][1]), (640, 360))
        steady = parts[2:]
        self.assertLess(abs(rate(steady) - 5) / 5, 0.4, [round(t, 2) for t, _ in parts])
        # the pictures change (the test pattern's clock)
        self.assertGreater(len({jpeg for _, jpeg in parts}), len(parts) // 2)

    def test_two_clients_one_decoder_stopped_after_the_last(self):
        self.wait_stats("no stream left by other tests", mjpegClients=0, mjpegDecoders=0)
        a, b = self.open(fps=5), self.open(fps=1, width=320)
        self.assertIsNotNone(a.part())
        self.assertIsNotNone(b.part())
        self.wait_stats("one decoder for two clients", mjpegClients=2, mjpegDecoders=1,
                        mjpegEncoders=2)
        # both keep getting pictures while the other does
        self.assertGreaterEqual(len(a.parts_for(2)), 5)
        self.assertGreaterEqual(len(b.parts_for(2)), 1)
        a.close()
        self.wait_stats("one client left", mjpegClients=1, mjpegDecoders=1, mjpegEncoders=1)
        b.close()
        st = self.wait_stats("the decoder stopped", mjpegClients=0, mjpegDecoders=0,
                             mjpegEncoders=0)
        self.assertGreater(st["mjpegFrames"], 0)
        st, _, body = self.req("GET", "/metrics", OT)
        text = body.decode()
        for name in ("vigil_http_mjpeg_clients 0", "vigil_http_mjpeg_decoders 0",
                     "vigil_http_mjpeg_frames_total ", "vigil_http_mjpeg_frames_dropped_total ",
                     "# TYPE vigil_http_mjpeg_frames_total counter"):
            self.assertIn(name, text)

    def test_clients_that_never_read(self):
        """They cost httpd no memory (only the newest frame waits for each, in a
        buffer shared with every client), get fewer frames, leave the others'
        rate alone, and are dropped after timeouts.idle."""
        pid = self.v.stage("httpd")["pid"]
        reader = self.open(fps=5)
        got, stop = [], threading.Event()

        def read():
            while not stop.is_set():
                p = reader.part()
                if p is None:
                    return
                got.append(p)
        t = threading.Thread(target=read)
        t.start()
        self.addCleanup(t.join)
        self.addCleanup(stop.set)
        stalled = [self.open(fps=5, rcvbuf=4096) for _ in range(STALLED)]
        until(lambda: len(got) >= 3, what="the reader's first parts")
        before = self.wait_stats("every client in", mjpegClients=STALLED + 1)
        rss0 = rss_kib(pid)
        # A measurement over time, not a wait for an event: a queue per client
        # would hold STALLED x 5 fps x this many seconds of JPEGs (~25 KB each).
        time.sleep(IDLE_S - 2)
        rss1 = rss_kib(pid)
        grew = rss1 - rss0
        if os.environ.get("VIGIL_SANITIZE") != "1":  # ASan's quarantine keeps what is freed
            self.assertLess(grew, 4096, "httpd grew by %d KiB" % grew)
        st = self.wait_stats("the stalled clients dropped", mjpegClients=1)
        dropped = st["mjpegFramesDropped"] - before["mjpegFramesDropped"]
        print("\n%d stalled clients for %d s: httpd's RssAnon %d -> %d KiB, %d frames dropped"
              % (STALLED, IDLE_S - 2, rss0, rss1, dropped), file=sys.stderr)
        self.assertGreater(dropped, STALLED * (IDLE_S - 2) * 5 // 2, st)
        stop.set()
        t.join()
        steady = [p for p in got if p[0] > got[0][0] + 1]
        self.assertLess(abs(rate(steady) - 5) / 5, 0.4, [round(p[0], 2) for p in got])
        # what a stalled client finally reads is the start of the stream, then the
        # connection's end (it was cut: no close delimiter is owed to it)
        s = stalled[0]
        s.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        deadline = time.monotonic() + 10
        while s._fill(deadline):
            pass
        self.assertTrue(s.eof)
        self.assertTrue(s.buf.startswith(b"--" + BOUNDARY + b"\r\n") or s.buf == b"",
                        s.buf[:100])
        self.v.ctl("status")  # and httpd still answers the others
        self.assertEqual(self.req("GET", "/health", None)[0], 200)


class TestRequests(Base):
    def test_bad_arguments_are_400(self):
        for args in ({"fps": "0"}, {"fps": "5.5"}, {"fps": "x"}, {"fps": ""}, {"fps": "1e0"},
                     {"fps": "-1"}, {"width": "15"}, {"width": "17"}, {"width": "0"},
                     {"width": "1280"}, {"width": "0x40"}, {"width": "0640"}):
            st, hd, body = self.req("GET", self.path(**args), None)
            self.assertEqual(st, 400, (args, body))
            self.assertEqual(hd["content-type"], "application/json")
            self.assertIn("error", json.loads(body))
        st, _, body = self.req("GET", self.path(width="1280"), None)
        self.assertIn("above the video's 640", json.loads(body)["error"])
        for args in ({"fps": "0.1"}, {"fps": "5"}, {"fps": "2.5", "width": "16"},
                     {"width": "640"}):
            self.assertEqual(self.req("HEAD", self.path(**args), None)[0], 200, args)

    def test_auth_roles_and_head(self):
        base = "/api/sentinels/%s/live.mjpeg" % self.cam["sentinelId"]
        st, hd, body = self.req("GET", base, None)
        self.assertEqual((st, json.loads(body)["error"]), (401, "Missing token"))
        self.assertTrue(hd["www-authenticate"].startswith("Bearer"))
        st, _, body = self.req("GET", base, "expired-secret")
        self.assertEqual((st, json.loads(body)["error"]), (401, "Token expired"))
        self.assertEqual(self.req("GET", base, ST)[0], 403)  # the sentinel role may not
        for tok in (PT, AT, OT):  # proctor, and the roles above it (PROTOCOL.md section 6)
            st, hd, body = self.req("HEAD", base, tok)
            self.assertEqual((st, body), (200, b""), tok)
            self.assertTrue(hd["content-type"].startswith("multipart/x-mixed-replace; boundary="))
            self.assertEqual(hd["cache-control"], "no-store")
            self.assertNotIn("content-length", hd)
        # HEAD keeps the connection: a second request on it is answered
        c = http.client.HTTPConnection(self.host, self.port, timeout=15)
        for _ in range(2):
            c.request("HEAD", base, headers={"Authorization": "Bearer " + PT})
            r = c.getresponse()
            r.read()
            self.assertEqual(r.status, 200)
        c.close()
        st, _, body = self.req("GET", "/api/sentinels/%s/live.mjpeg" % uuid.uuid4())
        self.assertEqual(st, 404, body)
        self.assertIn("error", json.loads(body))
        st, _, body = self.req("GET", "/api/sentinels/not-a-uuid/live.mjpeg")
        self.assertEqual(st, 400, body)
        self.assertEqual(self.req("POST", base)[0], 405)

    def test_over_a_cap_is_503_with_retry_after(self):
        """4 widths per sentinel: a fifth is refused until one is free."""
        before = self.stats().get("mjpegRefused", 0)
        streams = [self.open(width=w) for w in (320, 160, 96, 64)]
        st, hd, body = self.req("GET", self.path(width=32), None)
        self.assertEqual(st, 503, body)
        self.assertEqual(hd["retry-after"], "5")
        self.assertEqual(hd["content-type"], "application/json")
        self.assertIn("4 widths per sentinel", json.loads(body)["error"])
        self.assertIsNotNone(self.open(width=160).part())  # a width in use is shared
        self.wait_stats("the refusal counted", mjpegRefused=before + 1)
        streams[0].close()
        until(lambda: (lambda x: x.close() or x.status == 200)(
            Stream(self.host, self.port, self.path(width=32))), what="a free width")

    def test_revoked_token_ends_the_stream(self):
        s = self.open(token=RT)
        self.assertIsNotNone(s.part())
        ans = self.v.request(cmd="send", to="httpd", type="token.revoke", body={"token": RT})
        self.assertTrue(ans["ok"], ans)
        self.assertLess(s.wait_end(5), 5, "the stream outlived its revoked token")
        self.assertTrue(s.ended)
        st, _, body = self.req("GET", self.path(token=RT), None)
        self.assertEqual((st, json.loads(body)["error"]), (401, "Token revoked"))


class TestLife(Base):
    def test_new_session_goes_on_then_offline_ends_after_the_grace(self):
        b = self.sentinel("cam-b", "320x180")
        s = self.open(sid=b["sentinelId"], fps=5)
        self.assertIsNotNone(s.part())
        # a reconnect is a new session (at a new size): the stream goes on
        b["proc"].terminate()
        self.assertEqual(b["proc"].wait(30), 0)
        self.start_sentinel("cam-b", "256x144")
        until(lambda: [x for x in self.listing() if x["sentinelId"] == b["sentinelId"] and
                       x["online"] and x["sessionId"] != b["sessionId"] and
                       x["lastSequence"] >= 0], timeout=30, what="cam-b's new session")
        sizes = [jpeg_size(p[1]) for p in s.parts_for(3)]
        self.assertIn((256, 144), sizes, sizes)
        self.assertEqual(sizes[-1], (256, 144))
        # offline for good: the stream ends cleanly after the grace
        self.procs[-1].terminate()
        self.assertEqual(self.procs[-1].wait(30), 0)
        waited = s.wait_end(GRACE_S + 5)
        self.assertTrue(s.ended)
        self.assertGreater(waited, GRACE_S - 2)
        self.assertLess(waited, GRACE_S + 5)
        st, _, body = self.req("GET", self.path(sid=b["sentinelId"]))
        self.assertEqual(st, 404, body)

    def test_a_new_init_goes_on_at_the_new_size(self):
        """A new init in the session (new encoder settings, here a new size):
        the decoder starts again at its first join point, the stream goes on."""
        small, big = fmp4(160, 120), fmp4(320, 240)
        py = Client(self.v.url("ingest", "/sentinel"))
        self.addCleanup(py.close)
        ack = py.register(name="py-cam")
        seq = iter(range(100))

        def send(init, segs):
            py.send("sentinel.init", {"data": init})
            for seg in segs:
                py.send("sentinel.segment", {"sequence": next(seq), "data": seg})
        send(*small)
        until(lambda: [x for x in self.listing() if x["sentinelId"] == ack["sentinelId"] and
                       x["lastSequence"] >= 1], what="py-cam's segments")
        s = self.open(sid=ack["sentinelId"], fps=5)
        self.assertEqual(jpeg_size(s.part()[1]), (160, 120))
        send(*big)
        sizes = set()
        until(lambda: sizes.add(jpeg_size(s.part()[1])) or (320, 240) in sizes,
              what="a picture at the new size")

    def test_deleted_session_ends_the_stream_at_once(self):
        c = self.sentinel("cam-c", "320x180")
        s = self.open(sid=c["sentinelId"], fps=5)
        self.assertIsNotNone(s.part())
        c["proc"].terminate()
        self.assertEqual(c["proc"].wait(30), 0)
        t0 = time.monotonic()
        base = "/api/sentinels/%s/sessions" % c["sentinelId"]
        until(lambda: [x for x in json.loads(self.req("GET", base)[2])
                       if x["sessionId"] == c["sessionId"] and x["endTime"] is not None],
              what="the session's end on disk")
        self.assertLess(time.monotonic() - t0, GRACE_S - 3, "archive too slow for this test")
        st, _, body = self.req("DELETE", base + "/" + c["sessionId"], AT)
        self.assertEqual(st, 204, body)
        self.assertLess(s.wait_end(3), 3, "the stream outlived its deleted session")
        self.assertEqual(self.req("GET", self.path(sid=c["sentinelId"]))[0], 404)

    def test_zz_httpd_restart_ends_streams_cleanly(self):
        s = self.open(fps=5)
        self.assertIsNotNone(s.part())
        w = self.v.watch()
        self.addCleanup(w.close)
        pid = self.v.stage("httpd")["pid"]
        self.v.ctl("restart", "httpd")
        s.wait_end(10)
        self.assertTrue(s.ended)
        w.wait_state("httpd", "running", not_pid=pid, timeout=30)
        self.assertIsNotNone(self.open(fps=5).part())


if __name__ == "__main__":
    unittest.main(verbosity=2)
