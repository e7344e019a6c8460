#!/usr/bin/python3
"""Integration tests of vigil-httpd (PROTOCOL.md section 6) against a running
vigild: every route's status, headers and bytes, compared with what the
sentinel sent (the fixture segments through the python client, or a real
vigil-sentinel for ffprobe, ffmpeg and the snapshot); Range cases of RFC 9110;
auth (none, wrong role, expired, revoked); traversal forms and limits; a
session the test writes into data_dir itself (the archive layout of
docs/archive.md) and its deletion through archive."""
import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import uuid
from urllib.parse import unquote

sys.path.insert(0, os.path.dirname(__file__))
from vigil import BUILD, SOURCE, Vigil, until  # noqa: E402
from proctor import Proctor  # noqa: E402
from wsclient import Client  # noqa: E402

FIX = os.path.join(SOURCE, "tests", "data", "fmp4")
SENTINEL = os.path.join(BUILD, "deploy", "vigil-sentinel")
PT, AT, OT, XT, RT = ("proctor-secret", "archivist-secret", "operator-secret", "expired-secret",
                      "revoke-me-secret")
AUTH = """auth:
  sentinel: none
  tokens:
    - { name: p1, role: proctor, token: "proctor-secret" }
    - { name: a1, role: archivist, token: "archivist-secret" }
    - { name: o1, role: operator, token: "operator-secret" }
    - { name: old, role: proctor, token: "expired-secret", expires: 2020-01-01T00:00:00Z }
    - { name: rv, role: operator, token: "revoke-me-secret" }
"""


def fixture(name):
    with open(os.path.join(FIX, name), "rb") as f:
        return f.read()


INIT, SEG0, SEG1 = fixture("init.mp4"), fixture("seg0.m4s"), fixture("seg1.m4s")


def sha(b):
    return hashlib.sha256(b).hexdigest()



def rebased(data, by):
    """A segment as an export that starts by timescale units later sends it:
    every tfdt (version 0 or 1) less by, the rest byte for byte (issue 14)."""
    out = bytearray(data)

    def walk(off, end):
        while off + 8 <= end:
            size, typ = struct.unpack(">I4s", out[off:off + 8])
            if size < 8:
                return
            if typ in (b"moof", b"traf"):
                walk(off + 8, off + size)
            elif typ == b"tfdt":
                if out[off + 8] == 1:
                    v = struct.unpack(">Q", out[off + 12:off + 20])[0]
                    out[off + 12:off + 20] = struct.pack(">Q", max(v - by, 0))
                else:
                    v = struct.unpack(">I", out[off + 12:off + 16])[0]
                    out[off + 12:off + 16] = struct.pack(">I", max(v - by, 0))
            off += size
    walk(0, len(out))
    return bytes(out)


def tfdt_of(data):
    """The first tfdt value of a segment."""
    off = 0
    while off + 8 <= len(data):
        size, typ = struct.unpack(">I4s", data[off:off + 8])
        if typ in (b"moof", b"traf"):
            off += 8
            continue
        if typ == b"tfdt":
            return (struct.unpack(">Q", data[off + 12:off + 20])[0] if data[off + 8] == 1
                    else struct.unpack(">I", data[off + 12:off + 16])[0])
        off += size
    return None


CONTAINERS = (b"moov", b"trak", b"mdia", b"minf", b"stbl", b"moof", b"traf")


def boxes(data, path=()):
    """Every box of an MP4 as (path, offset, size), walking the containers."""
    def walk(off, end, at):
        while off + 8 <= end:
            size, typ = struct.unpack(">I4s", data[off:off + 8])
            if size == 1:
                size = struct.unpack(">Q", data[off + 8:off + 16])[0]
            elif size == 0:
                size = end - off
            if size < 8 or off + size > end:
                raise AssertionError("bad box at %d" % off)
            yield at + (typ,), off, size
            if typ in CONTAINERS:
                yield from walk(off + 8, off + size, at + (typ,))
            off += size
    return list(walk(0, len(data), path))


def stsd(data):
    _, off, size = next(b for b in boxes(data) if b[0][-1] == b"stsd")
    return off, size


def stsd_entries(data):
    off, _ = stsd(data)
    return struct.unpack(">I", data[off + 12:off + 16])[0]


def init_entry_len(data):
    off, _ = stsd(data)
    return struct.unpack(">I", data[off + 16:off + 20])[0]


def tfhd_sample_desc(data):
    """Each tfhd's sample_description_index, None where it has none."""
    out = []
    for p, off, size in boxes(data):
        if p[-1] == b"tfhd":
            flags = struct.unpack(">I", data[off + 8:off + 12])[0] & 0xFFFFFF
            base = 16 + (8 if flags & 1 else 0)
            out.append(struct.unpack(">I", data[off + base:off + base + 4])[0]
                       if flags & 2 else None)
    return out


def frames_of(data):
    """Samples in the truns of a segment."""
    return sum(struct.unpack(">I", data[off + 12:off + 16])[0]
               for p, off, size in boxes(data) if p[-1] == b"trun")


def decoded_frames(path):
    """Frames ffmpeg decodes from a file, which must decode without an error."""
    res = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-fps_mode", "passthrough",
                          "-f", "framemd5", "-"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    return sum(1 for ln in res.stdout.splitlines() if ln and not ln.startswith("#"))


def probe(path):
    """ffprobe's start_time and duration of a file, in seconds."""
    res = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                          "format=start_time,duration", "-of", "json", path],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    f = json.loads(res.stdout)["format"]
    return float(f["start_time"]), float(f["duration"])


def index_lines(path):
    try:
        with open(path) as f:
            return f.read().count("\n")
    except FileNotFoundError:
        return 0


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(next(x for x in f if x.startswith("RssAnon:")).split()[1])


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


def write_session(data, ended=True, torn=True):
    """A session written by hand in the archive's layout (docs/archive.md)."""
    sid, sess = str(uuid.uuid4()), str(uuid.uuid4())
    d = os.path.join(data, sid, sess)
    os.makedirs(d)
    with open(os.path.join(data, sid, "sentinel.json"), "w") as f:
        json.dump({"sentinelId": sid, "name": "disk-cam", "updated": 1}, f)
    now = int(time.time() * 1000)
    with open(os.path.join(d, "session.json"), "w") as f:
        json.dump({"sentinelId": sid, "sessionId": sess, "name": "disk-cam",
                   "codec": "avc1.64000d", "width": 160, "height": 90, "timescale": 90000,
                   "startTime": now - 5000, "endTime": now - 1000 if ended else None,
                   "inits": 1}, f)
    for name, blob in (("init.mp4", INIT), ("000000.m4s", SEG0), ("000001.m4s", SEG1)):
        with open(os.path.join(d, name), "wb") as f:
            f.write(blob)
    with open(os.path.join(d, "index.jsonl"), "w") as f:
        for i, seg in enumerate((SEG0, SEG1)):
            f.write(json.dumps({"sequence": i, "startTime": now - 5000 + 100 * i,
                                "duration": 100, "bytes": len(seg), "keyframe": True,
                                "init": 0, "sha256": sha(seg)}) + "\n")
        if torn:  # a line still being written is not listed
            f.write('{"sequence":2,"startTime":1,"dur')
    return sid, sess, "/api/sentinels/%s/sessions/%s" % (sid, sess)


class Base(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.web = tempfile.mkdtemp(prefix="vigil-web-")
        os.makedirs(os.path.join(cls.web, "assets", "sub"))
        with open(os.path.join(cls.web, "index.html"), "w") as f:
            f.write("<!doctype html><title>test app</title>\n")
        with open(os.path.join(cls.web, "assets", "app.js"), "w") as f:
            f.write("console.log('app');\n")
        os.symlink("/etc/passwd", os.path.join(cls.web, "assets", "leak.txt"))
        os.environ["VIGIL_WEB_ROOT"] = cls.web
        cls.v = Vigil(extra=AUTH, timeouts="idle: 3s")
        cls.data = os.path.join(cls.v.dir, "data")
        # archive deletes only sessions it knows: this one is there before it starts
        cls.deletable = write_session(cls.data, torn=False)
        cls.v.start()
        cls.host, port = cls.v.stage("httpd")["listen"].rsplit(":", 1)
        cls.port = int(port)

    @classmethod
    def tearDownClass(cls):
        del os.environ["VIGIL_WEB_ROOT"]
        cls.v.stop()
        shutil.rmtree(cls.web, ignore_errors=True)

    def req(self, method, path, token=None, headers=None):
        c = http.client.HTTPConnection(self.host, self.port, timeout=15)
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        c.request(method, path, headers=h)
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body

    def get(self, path, token=PT, **kw):
        return self.req("GET", path, token, **kw)

    def json_ok(self, path, token=PT):
        st, hd, body = self.get(path, token)
        self.assertEqual(st, 200, body)
        self.assertEqual(hd["content-type"], "application/json")
        return json.loads(body)

    def raw(self, data, timeout=15):
        """Sends raw bytes; returns everything the server sent until it closed."""
        s = socket.create_connection((self.host, self.port), timeout=timeout)
        s.sendall(data)
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
                if b"\r\n\r\n" in out and b"connection: close" not in out.lower():
                    head, _, rest = out.partition(b"\r\n\r\n")
                    for line in head.split(b"\r\n"):
                        if line.lower().startswith(b"content-length:"):
                            if len(rest) >= int(line.split(b":")[1]):
                                s.close()
                                return out
        except ConnectionResetError:
            pass
        s.close()
        return out

    def live_sentinel(self, name):
        """A python sentinel that sent the fixture init and two segments."""
        s = Client(self.v.url("ingest", "/sentinel"))
        self.addCleanup(s.close)
        ack = s.register(name=name)
        s.send("sentinel.init", {"data": INIT})
        for i, seg in enumerate((SEG0, SEG1)):
            s.send("sentinel.segment", {"sequence": i, "data": seg, "duration": 100,
                                        "startTime": 1_700_000_000_000 + 100 * i})
        base = "/api/sentinels/%s/sessions/%s" % (ack["sentinelId"], ack["sessionId"])
        until(lambda: len(self.json_ok(base + "/segments")["segments"]) == 2, what="2 segments")
        return s, ack, base


class TestStatus(Base):
    def test_health_status_metrics_config(self):
        st, hd, body = self.get("/health", None)
        self.assertEqual((st, body), (200, b"ok"))
        self.assertTrue(hd["content-type"].startswith("text/plain"))
        status = self.json_ok("/api/status")
        self.assertEqual(status["state"], "running")
        self.assertEqual(set(status["stages"]), {"ingest", "relay", "archive", "httpd"})
        self.assertGreater(status["stages"]["ingest"]["pid"], 0)
        # heartbeats reach vigild every second; metrics carry them once there
        m = until(lambda: (lambda j: j if j["stages"]["httpd"]["memBytes"] > 0 else None)(
            self.json_ok("/api/metrics", OT)), what="heartbeat figures in /api/metrics")
        for name in ("ingest", "relay", "archive", "httpd"):
            for key in ("cpuPercent", "memBytes", "connections", "loopAvgS", "loopMaxS",
                        "loopMinS"):
                self.assertIn(key, m["stages"][name])
        self.assertGreater(m["ring"]["sizeBytes"], 0)
        st, hd, body = self.get("/metrics", OT)
        self.assertEqual(st, 200)
        self.assertTrue(hd["content-type"].startswith("text/plain; version=0.0.4"))
        text = body.decode()
        for needle in ('vigil_stage_up{stage="archive",state="running"} 1',
                       "# TYPE vigil_stage_memory_bytes gauge", "vigil_sentinels_online ",
                       "vigil_ring_bytes_written_total ", "vigil_archive_bytes_total ",
                       "vigil_proctors_connected ", "vigil_relay_skips_total "):
            self.assertIn(needle, text)
        for line in text.splitlines():  # every sample line is "name{labels} number"
            if not line.startswith("#"):
                float(line.rsplit(" ", 1)[1])
        cfg = self.json_ok("/api/config", OT)
        self.assertEqual(cfg["auth"]["tokens"][0]["token"], "***")
        st, _, body = self.get("/api/config", OT)
        for secret in (PT, AT, OT, XT):
            self.assertNotIn(secret.encode(), body)

    def test_health_names_a_stage_that_is_down(self):
        w = self.v.watch()
        self.addCleanup(w.close)
        self.assertTrue(self.v.request(cmd="stop", stage="relay")["ok"])
        w.wait_state("relay", "down")
        try:
            st, hd, body = until(lambda: (lambda r: r if r[0] == 503 else None)(
                self.get("/health", None)), what="/health 503")
            self.assertEqual(hd["content-type"], "application/json")
            self.assertEqual(json.loads(body)["stages"], {"relay": "down"})
            self.assertEqual(self.json_ok("/api/status")["state"], "degraded")
        finally:
            self.v.request(cmd="start", stage="relay")
            w.wait_state("relay", "running")
        until(lambda: self.get("/health", None)[0] == 200, what="/health 200 again")


class TestAuth(Base):
    def test_auth_cases(self):
        path = "/api/sentinels"
        st, hd, body = self.get(path, None)
        self.assertEqual(st, 401)
        self.assertEqual(json.loads(body), {"error": "Missing token"})
        self.assertTrue(hd["www-authenticate"].startswith("Bearer"))
        st, _, body = self.get(path, "no-such-token")
        self.assertEqual((st, json.loads(body)["error"]), (401, "Invalid token"))
        st, _, body = self.get(path, XT)
        self.assertEqual((st, json.loads(body)["error"]), (401, "Token expired"))
        st, _, body = self.get("/metrics", PT)  # proctor on an operator route
        self.assertEqual(st, 403)
        self.assertIn("error", json.loads(body))
        st, _, _ = self.get(path + "?token=" + PT, None)
        self.assertEqual(st, 200)
        st, _, _ = self.get(path, None, headers={"Authorization": "Basic " + PT})
        self.assertEqual(st, 401)
        # revoked over the bus (the operator console's token.revoke)
        self.assertEqual(self.get("/api/config", RT)[0], 200)
        ans = self.v.request(cmd="send", to="httpd", type="token.revoke", body={"token": RT})
        self.assertTrue(ans["ok"], ans)
        st, _, body = until(lambda: (lambda r: r if r[0] == 401 else None)(
            self.get("/api/config", RT)), what="revoked token refused")
        self.assertEqual(json.loads(body)["error"], "Token revoked")

    def test_methods(self):
        sid, sess = uuid.uuid4(), uuid.uuid4()
        st, hd, body = self.req("POST", "/api/sentinels", PT)
        self.assertEqual(st, 405)
        self.assertEqual(hd["allow"], "GET, HEAD")
        self.assertIn("error", json.loads(body))
        st, hd, _ = self.get("/api/sentinels/%s/sessions/%s" % (sid, sess), AT)
        self.assertEqual((st, hd["allow"]), (405, "DELETE"))
        st, _, _ = self.req("DELETE", "/api/sentinels/%s/sessions/%s" % (sid, sess), PT)
        self.assertEqual(st, 403)


class TestLive(Base):
    def test_live_listing_bytes_etag_head(self):
        s, ack, base = self.live_sentinel("live-a")
        sents = {x["sentinelId"]: x for x in self.json_ok("/api/sentinels")}
        me = sents[ack["sentinelId"]]
        self.assertTrue(me["online"])
        self.assertEqual((me["sessionId"], me["name"], me["lastSequence"]),
                         (ack["sessionId"], "live-a", 1))
        sessions = self.json_ok("/api/sentinels/%s/sessions" % ack["sentinelId"])
        mine = [x for x in sessions if x["sessionId"] == ack["sessionId"]]
        self.assertEqual(len(mine), 1)
        self.assertIsNone(mine[0]["endTime"])
        self.assertEqual((mine[0]["segments"], mine[0]["bytes"]), (2, len(SEG0) + len(SEG1)))
        segs = self.json_ok(base + "/segments")
        self.assertEqual((segs["sentinelId"], segs["sessionId"]),
                         (ack["sentinelId"], ack["sessionId"]))
        self.assertEqual([(x["sequence"], x["bytes"], x["duration"], x["startTime"])
                          for x in segs["segments"]],
                         [(0, len(SEG0), 100, 1_700_000_000_000),
                          (1, len(SEG1), 100, 1_700_000_000_100)])
        for path, want in (("/init.mp4", INIT), ("/segments/0.m4s", SEG0),
                           ("/segments/1.m4s", SEG1)):
            st, hd, body = self.get(base + path)
            self.assertEqual(st, 200, body)
            self.assertEqual(body, want)
            self.assertEqual(hd["content-type"], "video/mp4")
            self.assertEqual(int(hd["content-length"]), len(want))
            self.assertEqual(hd["etag"], '"%s"' % sha(want))
            self.assertEqual(hd["accept-ranges"], "bytes")
            st, hd2, body = self.req("HEAD", base + path, PT)
            self.assertEqual((st, body, hd2["content-length"], hd2["etag"]),
                             (200, b"", str(len(want)), hd["etag"]))
            st, _, body = self.get(base + path, headers={"If-None-Match": hd["etag"]})
            self.assertEqual((st, body), (304, b""))
        for path in ("/segments/7.m4s", "/init.mp4?init=3"):
            st, hd, body = self.get(base + path)
            self.assertEqual(st, 404)
            self.assertIn("error", json.loads(body))
        st, _, body = self.get(base.replace(ack["sessionId"], str(uuid.uuid4())) + "/segments")
        self.assertEqual(st, 404)
        st, _, body = self.get(base + "/segments/01.m4s")
        self.assertEqual(st, 400)
        # a live session is not deleted, and has no manifest yet
        st, _, body = self.req("DELETE", base, AT)
        self.assertEqual(st, 409, body)
        st, _, body = self.get(base + "/manifest.json", AT)
        self.assertEqual(st, 409, body)
        self.assertIn("error", json.loads(body))

    def test_a_hard_delete_forgets_the_session_in_memory_too(self):
        """From the 204 on, every route of the session answers 404 although its
        segments are still in the ring, and so after httpd restarts."""
        s, ack, base = self.live_sentinel("forget-me")
        sid, sess = ack["sentinelId"], ack["sessionId"]
        s.send("sentinel.bye")
        until(lambda: [x for x in self.json_ok("/api/sentinels/%s/sessions" % sid)
                       if x["sessionId"] == sess and x["endTime"] is not None],
              what="the session's end on disk")
        routes = [base + "/segments", base + "/init.mp4", base + "/segments/0.m4s",
                  base + "/segments/1.m4s", base + "/playlist.m3u8", base + "/export.mp4",
                  base + "/manifest.json"]
        # the manifest once archive has the session's end and every segment
        until(lambda: self.get(base + "/manifest.json", AT)[0] == 200, what="the manifest")
        for path in routes:  # served before: from the ring and the disk
            self.assertEqual(self.get(path, AT)[0], 200, path)
        st, _, body = self.req("DELETE", base, AT)
        self.assertEqual(st, 204, body)

        def gone():
            for path in routes:
                st, _, body = self.get(path, AT)
                self.assertEqual(st, 404, (path, body[:200]))
                self.assertIn("error", json.loads(body))
            st, _, body = self.get("/api/sentinels/%s/sessions" % sid)
            if st == 200:
                self.assertNotIn(sess, [x["sessionId"] for x in json.loads(body)])
            listed = [x for x in self.json_ok("/api/sentinels") if x["sentinelId"] == sid]
            self.assertNotIn(sess, [x["sessionId"] for x in listed])
            self.assertEqual(self.get("/api/sentinels/%s/snapshot.jpg" % sid)[0], 404)
        gone()
        # the ring still holds the segments: only httpd's memory of the delete stops them
        dump = self.v.ring_dump()
        self.assertTrue([d for d in dump if d["kind"] == "segment" and d["sessionId"] == sess])
        pid = self.v.stage("httpd")["pid"]
        w = self.v.watch()
        self.v.ctl("restart", "httpd")
        w.wait_state("httpd", "running", not_pid=pid)
        w.close()
        until(lambda: self.get("/health", None)[0] == 200, what="httpd back")
        gone()

    def test_ring_only_segments_then_the_same_from_disk(self):
        w = self.v.watch()
        self.addCleanup(w.close)
        self.assertTrue(self.v.request(cmd="stop", stage="archive")["ok"])
        w.wait_state("archive", "down")
        try:
            s, ack, base = self.live_sentinel("ring-only")
            d = os.path.join(self.data, ack["sentinelId"], ack["sessionId"])
            self.assertFalse(os.path.exists(os.path.join(d, "000000.m4s")))
            tags = {}
            for path, want in (("/init.mp4", INIT), ("/segments/0.m4s", SEG0),
                               ("/segments/1.m4s", SEG1)):
                st, hd, body = self.get(base + path)
                self.assertEqual((st, body), (200, want), path)
                tags[path] = hd["etag"]
            # an export is recorded before it is served (PROTOCOL.md section 9):
            # with archive, the audit log's writer, down, none leaves
            st, hd, body = self.get(base + "/export.mp4", AT)
            self.assertEqual(st, 503, body)
            self.assertIn("audit log", json.loads(body)["error"])
            self.assertEqual(hd["retry-after"], "5")
            # the figures reach /api/metrics with httpd's next heartbeat
            until(lambda: (self.json_ok("/api/metrics", OT)["stages"]["httpd"]["stats"] or {}).get(
                "segmentsFromRing", 0) >= 2, what="segmentsFromRing >= 2 in httpd's stats")
            # archive is down: a DELETE gets no answer, and says so
            sid, sess, dbase = write_session(self.data, torn=False)
            st, hd, body = self.req("DELETE", dbase, AT)
            self.assertEqual(st, 503, body)
            self.assertEqual(json.loads(body), {"error": "the archive did not answer"})
        finally:
            self.v.request(cmd="start", stage="archive")
            w.wait_state("archive", "running")
        # archive catches up from the ring: the same bytes and tags, now from disk
        until(lambda: index_lines(os.path.join(d, "index.jsonl")) == 2,
              what="archive's catch-up")
        for path, want in (("/init.mp4", INIT), ("/segments/0.m4s", SEG0),
                           ("/segments/1.m4s", SEG1)):
            st, hd, body = self.get(base + path)
            self.assertEqual((st, body, hd["etag"]), (200, want, tags[path]), path)
        st, _, body = self.get(base + "/export.mp4", AT)
        self.assertEqual((st, body), (200, INIT + SEG0 + SEG1))

    def test_new_init_generation(self):
        s = Client(self.v.url("ingest", "/sentinel"))
        self.addCleanup(s.close)
        ack = s.register(name="re-init")
        s.send("sentinel.init", {"data": INIT})
        s.send("sentinel.segment", {"sequence": 0, "data": SEG0, "duration": 100})
        # the ring keeps only the newest init: archive stores generation 0 first
        until(lambda: os.path.exists(os.path.join(self.data, ack["sentinelId"],
                                                  ack["sessionId"], "init.mp4")),
              what="init 0 archived")
        s.send("sentinel.init", {"data": INIT})  # new encoder settings: generation 1
        s.send("sentinel.segment", {"sequence": 1, "data": SEG1, "duration": 100})
        base = "/api/sentinels/%s/sessions/%s" % (ack["sentinelId"], ack["sessionId"])
        segs = until(lambda: (lambda j: j if len(j) == 2 else None)(
            self.json_ok(base + "/segments")["segments"]), what="2 segments")
        self.assertEqual([x["init"] for x in segs], [0, 1])
        for q in ("", "?init=1"):
            st, _, body = self.get(base + "/init.mp4" + q)
            self.assertEqual((st, body), (200, INIT), q)
        self.assertEqual(self.get(base + "/init.mp4?init=x")[0], 400)
        text = self.get(base + "/playlist.m3u8")[2].decode()
        self.assertIn('#EXT-X-MAP:URI="init.mp4"\n', text)
        self.assertIn('#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="init.mp4?init=1"\n', text)
        self.assertNotIn("#EXT-X-ENDLIST", text)  # live
        # one playable file across the new init: two sample entries, and the
        # later segment names the second in its tfhd (issue 14, item 5)
        st, hd, body = self.get(base + "/export.mp4", AT)
        self.assertEqual(st, 200, body[:200])
        self.assertEqual(len(body), len(INIT) + init_entry_len(INIT) + len(SEG0) + len(SEG1) + 4)
        self.assertEqual(stsd_entries(body), 2)
        self.assertEqual(tfhd_sample_desc(body), [None, 2])
        path = os.path.join(self.v.dir, "export-reinit.mp4")
        with open(path, "wb") as f:
            f.write(body)
        self.assertEqual(decoded_frames(path), frames_of(SEG0) + frames_of(SEG1))
        self.assertIn("repr-digest", hd)
        self.assertEqual(hd["repr-digest"],
                         "sha-256=:%s:" % base64.b64encode(hashlib.sha256(body).digest()).decode())
        # a later part starts at 0: seg1's tfdt (3000) moves back, nothing else
        self.assertEqual(tfdt_of(SEG1), 3000)
        self.assertEqual(self.get(base + "/export.mp4?from=1", AT)[2], INIT + rebased(SEG1, 3000))

    def test_range_cases(self):
        s, ack, base = self.live_sentinel("range-a")
        url, n = base + "/segments/0.m4s", len(SEG0)
        etag = self.get(url)[1]["etag"]
        cases = [
            ("bytes=0-9", 206, SEG0[0:10], "bytes 0-9/%d" % n),
            ("bytes=-10", 206, SEG0[-10:], "bytes %d-%d/%d" % (n - 10, n - 1, n)),
            ("bytes=100-", 206, SEG0[100:], "bytes 100-%d/%d" % (n - 1, n)),
            ("bytes=5-%d" % (n + 1000), 206, SEG0[5:], "bytes 5-%d/%d" % (n - 1, n)),
            ("bytes=%d-" % n, 416, None, "bytes */%d" % n),
            ("bytes=-0", 416, None, "bytes */%d" % n),
            ("bytes=9-1", 200, SEG0, None),
            ("bytes=abc", 200, SEG0, None),
            ("lines=1-2", 200, SEG0, None),
            ("bytes=0-1,5-6", 200, SEG0, None),
        ]
        for rng, status, want, cr in cases:
            st, hd, body = self.get(url, headers={"Range": rng})
            self.assertEqual(st, status, rng)
            self.assertEqual(hd.get("content-range"), cr, rng)
            if want is not None:
                self.assertEqual(body, want, rng)
                self.assertEqual(int(hd["content-length"]), len(want), rng)
            else:
                self.assertIn("error", json.loads(body))
        st, _, body = self.get(url, headers={"Range": "bytes=0-9", "If-Range": etag})
        self.assertEqual((st, body), (206, SEG0[:10]))
        st, _, body = self.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'})
        self.assertEqual((st, body), (200, SEG0))


class TestRecorded(Base):
    def test_export_playlist_snapshot_of_a_real_stream(self):
        proc = subprocess.Popen([SENTINEL, "--url", self.v.url("ingest", "/sentinel"),
                                 "--duration", "5", "--size", "320x180", "--name", "ffcam"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.addCleanup(proc.stderr.close)
        self.addCleanup(proc.kill)
        sent = until(lambda: [x for x in self.json_ok("/api/sentinels")
                              if x["name"] == "ffcam" and x["lastSequence"] >= 0],
                     what="the sentinel's first segment")[0]
        sid, sess = sent["sentinelId"], sent["sessionId"]
        # the snapshot while online: a JPEG of the sentinel's size
        st, hd, jpg = self.get("/api/sentinels/%s/snapshot.jpg" % sid)
        self.assertEqual(st, 200, jpg[:200])
        self.assertEqual(hd["content-type"], "image/jpeg")
        self.assertEqual(jpg[:2], b"\xff\xd8")
        self.assertEqual(jpeg_size(jpg), (320, 180))
        self.assertEqual(proc.wait(30), 0, proc.stderr.read()[-2000:])
        base = "/api/sentinels/%s/sessions/%s" % (sid, sess)
        # ended and archived: endTime set, every segment from disk
        until(lambda: [x for x in self.json_ok("/api/sentinels/%s/sessions" % sid)
                       if x["sessionId"] == sess and x["endTime"] is not None],
              what="the session's end")
        segs = self.json_ok(base + "/segments")["segments"]
        self.assertGreaterEqual(len(segs), 3)
        init = self.get(base + "/init.mp4")[2]
        parts = [self.get(base + "/segments/%d.m4s" % g["sequence"])[2] for g in segs]
        self.assertEqual([len(p) for p in parts], [g["bytes"] for g in segs])
        st, hd, body = self.get(base + "/export.mp4", AT)
        self.assertEqual(st, 200, body[:200])
        self.assertEqual(body, init + b"".join(parts))
        self.assertEqual(int(hd["content-length"]), len(body))
        # RFC 9530: the whole file's SHA-256 with it, and the same again
        digest = "sha-256=:%s:" % base64.b64encode(hashlib.sha256(body).digest()).decode()
        self.assertEqual(hd["repr-digest"], digest)
        st, hd2, again = self.get(base + "/export.mp4", AT)
        self.assertEqual((st, again, hd2["repr-digest"], hd2["etag"]),
                         (200, body, digest, hd["etag"]))
        self.assertTrue(hd["content-disposition"].startswith("attachment; filename="))
        self.assertEqual(self.get(base + "/export.mp4", PT)[0], 403)
        # Range across the init/segment boundary of the export
        a, b = len(init) - 5, len(init) + 20
        st, hd, part = self.get(base + "/export.mp4", AT, headers={"Range": "bytes=%d-%d" % (a, b)})
        self.assertEqual((st, part), (206, body[a:b + 1]))
        self.assertNotIn("repr-digest", hd)  # only with the whole representation
        # from/to: a subset, starting at a join point, and at time 0: each
        # fragment's decode time moved back by the first one's (issue 14)
        st, hd, sub = self.get(base + "/export.mp4?from=1&to=2", AT)
        by = tfdt_of(parts[1])
        self.assertGreater(by, 0)
        self.assertEqual((st, sub), (200, init + rebased(parts[1], by) + rebased(parts[2], by)))
        self.assertRegex(hd["content-disposition"],
                         r'^attachment; filename="ffcam-\d{8}T\d{6}Z\.mp4"$')
        path = os.path.join(self.v.dir, "export-part.mp4")
        with open(path, "wb") as f:
            f.write(sub)
        start, dur = probe(path)
        want = (segs[1]["duration"] + segs[2]["duration"]) / 1000
        self.assertLess(abs(start), 0.05, start)
        self.assertLess(abs(dur - want), 0.2, (dur, want))
        # the archive's own bytes are untouched
        self.assertEqual(self.get(base + "/segments/%d.m4s" % segs[1]["sequence"])[2], parts[1])
        # a Range inside the moved part gives the moved bytes
        a = len(init) + 10
        st, _, part = self.get(base + "/export.mp4?from=1&to=2", AT,
                               headers={"Range": "bytes=%d-%d" % (a, a + 200)})
        self.assertEqual((st, part), (206, sub[a:a + 201]))
        self.assertEqual(self.get(base + "/export.mp4?from=x", AT)[0], 400)
        self.assertEqual(self.get(base + "/export.mp4?from=1&start=5", AT)[0], 400)
        self.assertEqual(self.get(base + "/export.mp4?from=9999", AT)[0], 404)
        path = os.path.join(self.v.dir, "export.mp4")
        with open(path, "wb") as f:
            f.write(body)
        res = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration",
                              "-of", "json", path], capture_output=True, text=True, timeout=60)
        self.assertEqual(res.returncode, 0, res.stderr)
        dur = float(json.loads(res.stdout)["format"]["duration"]) * 1000
        want = sum(g["duration"] for g in segs)
        self.assertLessEqual(abs(dur - want), max(g["duration"] for g in segs), (dur, want))
        self.check_manifest(sid, sess, base, init, segs, parts, body)
        # the playlist, ended: ffmpeg reads it to the end
        st, hd, pl = self.get(base + "/playlist.m3u8")
        self.assertEqual(st, 200)
        self.assertEqual(hd["content-type"], "application/vnd.apple.mpegurl")
        text = pl.decode()
        self.assertTrue(text.startswith("#EXTM3U\n"))
        for tag in ("#EXT-X-MAP:URI=\"init.mp4\"", "#EXT-X-TARGETDURATION:",
                    "#EXT-X-PROGRAM-DATE-TIME:", "#EXT-X-ENDLIST"):
            self.assertIn(tag, text)
        self.assertEqual(text.count("#EXTINF:"), len(segs))
        url = "http://%s:%d%s/playlist.m3u8?token=%s" % (self.host, self.port, base, PT)
        res = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", url, "-map", "0",
                              "-c", "copy", "-f", "mp4", "-y",
                              os.path.join(self.v.dir, "hls.mp4")],
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(res.returncode, 0, res.stderr[-2000:])
        res = subprocess.run(["ffprobe", "-v", "error", "-count_packets", "-show_entries",
                              "stream=nb_read_packets", "-of", "json",
                              os.path.join(self.v.dir, "hls.mp4")],
                             capture_output=True, text=True, timeout=60)
        hls_packets = int(json.loads(res.stdout)["streams"][0]["nb_read_packets"])
        res = subprocess.run(["ffprobe", "-v", "error", "-count_packets", "-show_entries",
                              "stream=nb_read_packets", "-of", "json", path],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(hls_packets, int(json.loads(res.stdout)["streams"][0]["nb_read_packets"]))

    def check_manifest(self, sid, sess, base, init, segs, parts, export):
        """manifest.json: every digest it gives is the one of the bytes served
        and of the file archive wrote (issue 14, item 7)."""
        def sha(b):
            return hashlib.sha256(b).hexdigest()

        def disk(name):
            with open(os.path.join(self.data, sid, sess, name), "rb") as f:
                return f.read()
        self.assertEqual(self.get(base + "/manifest.json", PT)[0], 403)
        self.assertEqual(self.get(base + "/manifest.json", None)[0], 401)
        st, hd, raw = self.get(base + "/manifest.json", AT)
        self.assertEqual(st, 200, raw[:300])
        self.assertEqual(hd["content-type"], "application/json")
        m = json.loads(raw)
        self.assertEqual((m["sentinelId"], m["sessionId"], m["name"], m["marks"]),
                         (sid, sess, "ffcam", []))
        self.assertIsNotNone(m["endTime"])
        self.assertTrue(m["codec"].startswith("avc1."), m["codec"])
        self.assertEqual([i["init"] for i in m["inits"]], [0])
        self.assertEqual(m["inits"][0]["sha256"], sha(init))
        self.assertEqual(m["inits"][0]["sha256"], sha(disk("init.mp4")))
        self.assertEqual(m["inits"][0]["bytes"], len(init))
        self.assertEqual([g["sequence"] for g in m["segments"]], [g["sequence"] for g in segs])
        for g, part in zip(m["segments"], parts):
            self.assertEqual(g["sha256"], sha(part), g)
            self.assertEqual(g["sha256"], sha(disk("%06d.m4s" % g["sequence"])), g)
            self.assertEqual(g["bytes"], len(part))
            self.assertEqual(self.get(base + "/" + g["url"])[2], part)
        self.assertEqual((m["export"]["sha256"], m["export"]["bytes"]), (sha(export), len(export)))
        st, hd, again = self.get(base + "/" + m["export"]["url"], AT)
        self.assertEqual(hd["etag"], m["export"]["etag"])
        self.assertEqual(hd["repr-digest"], "sha-256=:%s:" % base64.b64encode(
            bytes.fromhex(m["export"]["sha256"])).decode())
        # the same recording, the same manifest, byte for byte
        self.assertEqual(self.get(base + "/manifest.json", AT)[2], raw)

    def test_export_across_a_frame_rate_change(self):
        """A proctor's fps change makes the sentinel send a new init; the whole
        session still exports as one file that decodes from end to end."""
        proc = subprocess.Popen([SENTINEL, "--url", self.v.url("ingest", "/sentinel"),
                                 "--duration", "6", "--size", "320x180", "--fps", "15",
                                 "--name", "fpscam"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.addCleanup(proc.stderr.close)
        self.addCleanup(proc.kill)
        sent = until(lambda: [x for x in self.json_ok("/api/sentinels")
                              if x["name"] == "fpscam" and x["lastSequence"] >= 0],
                     what="the sentinel's first segment")[0]
        sid, sess = sent["sentinelId"], sent["sessionId"]
        base = "/api/sentinels/%s/sessions/%s" % (sid, sess)
        p = Proctor(self.v.url("relay", "/proctor"))
        self.addCleanup(p.close)
        p.register(PT)
        p.send("proctor.fps.change", {"sentinelId": sid, "framerate": 5})
        until(lambda: any(g["init"] == 1 for g in self.json_ok(base + "/segments")["segments"]),
              what="a segment after the new init")
        self.assertEqual(proc.wait(30), 0, proc.stderr.read()[-2000:])
        until(lambda: [x for x in self.json_ok("/api/sentinels/%s/sessions" % sid)
                       if x["sessionId"] == sess and x["endTime"] is not None],
              what="the session's end")
        segs = self.json_ok(base + "/segments")["segments"]
        gens = sorted({g["init"] for g in segs})
        self.assertEqual(gens, [0, 1])
        st, hd, body = self.get(base + "/export.mp4", AT)
        self.assertEqual(st, 200, body[:300])
        self.assertEqual(stsd_entries(body), 2)
        # every fragment of the later init names the second sample entry
        descs = tfhd_sample_desc(body)
        self.assertEqual(descs, [None if g["init"] == 0 else 2 for g in segs])
        self.assertEqual(hd["repr-digest"],
                         "sha-256=:%s:" % base64.b64encode(hashlib.sha256(body).digest()).decode())
        path = os.path.join(self.v.dir, "export-fps.mp4")
        with open(path, "wb") as f:
            f.write(body)
        self.assertEqual(decoded_frames(path), frames_of(body))
        start, dur = probe(path)
        want = sum(g["duration"] for g in segs) / 1000
        self.assertLess(abs(dur - want), 0.5, (dur, want))
        # the manifest names both inits, each with its digest, and the export's
        m = json.loads(self.get(base + "/manifest.json", AT)[2])
        self.assertEqual([i["init"] for i in m["inits"]], [0, 1])
        for i in m["inits"]:
            self.assertEqual(i["sha256"],
                             hashlib.sha256(self.get(base + "/" + i["url"])[2]).hexdigest())
        self.assertEqual(m["export"]["sha256"], hashlib.sha256(body).hexdigest())
        # the frame rate did change: the later fragments' samples last 200 ms
        res = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v",
                              "-show_entries", "packet=duration_time", "-of", "csv=p=0", path],
                             capture_output=True, text=True, timeout=60)
        durs = [round(float(x), 3) for x in res.stdout.split()]
        self.assertIn(0.2, durs[-5:], durs[-10:])


NODE_FETCH_20 = r"""
// Node's http with its default agent (which pools connections): 20 GETs in a
// row, each waiting for the last; prints the statuses and what each body hashed to.
const http = require('http');
const crypto = require('crypto');
const [host, port, path, token, close] = process.argv.slice(2);
async function one() {
  return new Promise((resolve, reject) => {
    const headers = { Authorization: 'Bearer ' + token };
    if (close === 'close') headers.Connection = 'close';
    http.get({ host, port, path, headers }, (res) => {
      const h = crypto.createHash('sha256');
      res.on('data', (d) => h.update(d));
      res.on('end', () => resolve(res.statusCode + ' ' + h.digest('hex')));
    }).on('error', reject);
  });
}
(async () => {
  const out = [];
  for (let i = 0; i < 20; i++) out.push(await one());
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(String(e)); process.exit(1); });
"""


class TestClients(Base):
    """Clients no one here wrote, the way people use them (issue 14, item 1)."""

    def test_node_http_default_agent_20_requests(self):
        sid, sess, base = write_session(self.data, torn=False)
        script = os.path.join(self.v.dir, "fetch20.js")
        with open(script, "w") as f:
            f.write(NODE_FETCH_20)
        for mode in ("close", "keep-alive"):
            res = subprocess.run(["node", script, self.host, str(self.port),
                                  base + "/segments/1.m4s", PT, mode],
                                 capture_output=True, text=True, timeout=60)
            self.assertEqual(res.returncode, 0, (mode, res.stderr[-2000:]))
            self.assertEqual(json.loads(res.stdout), ["200 " + sha(SEG1)] * 20, mode)

    def test_python_http_client_one_kept_alive_connection(self):
        sid, sess, base = write_session(self.data, torn=False)
        c = http.client.HTTPConnection(self.host, self.port, timeout=15)
        self.addCleanup(c.close)
        socks = set()
        for i in range(20):
            c.request("GET", base + "/segments/%d.m4s" % (i % 2),
                      headers={"Authorization": "Bearer " + PT})
            r = c.getresponse()
            self.assertEqual((r.status, sha(r.read())), (200, sha((SEG0, SEG1)[i % 2])))
            self.assertIsNone(r.getheader("Connection"))
            socks.add(id(c.sock))
        self.assertEqual(len(socks), 1)  # one connection for all 20
        c.request("GET", "/health", headers={"Connection": "close"})
        r = c.getresponse()
        self.assertEqual((r.status, r.getheader("Connection")), (200, "close"))
        r.read()
        # HTTP/1.0 without keep-alive: answered with Connection: close, then closed
        out = self.raw(b"GET /health HTTP/1.0\r\n\r\n")
        head = out.split(b"\r\n\r\n")[0]
        self.assertIn(b"\r\nConnection: close", head)
        self.assertTrue(out.endswith(b"ok"), out[-100:])


class TestDisk(Base):
    def test_archived_session_from_disk(self):
        sid, sess, base = write_session(self.data)
        sents = {x["sentinelId"]: x for x in self.json_ok("/api/sentinels")}
        self.assertEqual((sents[sid]["online"], sents[sid]["name"], sents[sid]["sessionId"],
                          sents[sid]["lastSequence"]), (False, "disk-cam", sess, 1))
        sessions = self.json_ok("/api/sentinels/%s/sessions" % sid)
        self.assertEqual([(x["sessionId"], x["segments"], x["bytes"], x["durationMs"])
                          for x in sessions], [(sess, 2, len(SEG0) + len(SEG1), 200)])
        self.assertIsNotNone(sessions[0]["endTime"])
        self.assertEqual([x["sequence"] for x in self.json_ok(base + "/segments")["segments"]],
                         [0, 1])
        self.assertEqual(self.get(base + "/segments/1.m4s")[2], SEG1)
        self.assertEqual(self.get(base + "/segments/2.m4s")[0], 404)
        st, _, body = self.get(base + "/export.mp4", AT)
        self.assertEqual((st, body), (200, INIT + SEG0 + SEG1))
        text = self.get(base + "/playlist.m3u8?token=" + PT, None)[2].decode()
        links = [x for x in text.splitlines() if x.startswith("segments/")]
        self.assertEqual([x.split("?token=")[0] for x in links],
                         ["segments/0.m4s", "segments/1.m4s"])
        # the links carry a playlist token of their own, never the caller's
        caps = {unquote(x.split("?token=")[1]) for x in links}
        self.assertEqual(len(caps), 1)
        self.assertTrue(caps.pop().startswith("hc1."))
        self.assertNotIn(PT, text)
        self.assertIn('#EXT-X-MAP:URI="init.mp4?token=hc1.', text)
        self.assertTrue(text.endswith("#EXT-X-ENDLIST\n"))
        self.assertEqual(self.get("/api/sentinels/%s/sessions" % uuid.uuid4())[0], 404)

    def test_delete_through_archive(self):
        sid, sess, base = self.deletable
        self.assertEqual(self.get(base + "/segments")[0], 200)
        st, _, body = self.req("DELETE", base, AT)
        self.assertEqual((st, body), (204, b""))
        self.assertFalse(os.path.exists(os.path.join(self.data, sid, sess)))
        self.assertEqual(self.get(base + "/segments")[0], 404)
        st, _, body = self.req("DELETE", base, AT)
        self.assertEqual(st, 404)
        self.assertIn("error", json.loads(body))


class TestSafety(Base):
    def test_traversal_forms(self):
        sid = str(uuid.uuid4())
        paths = ["/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/%252e%252e/etc/passwd",
                 "/..%2f..%2fetc%2fpasswd", "/assets/..%2f..%2f..%2fetc/passwd",
                 "/api/sentinels/%2e%2e%2f%2e%2e/sessions", "/index.html%00.js",
                 "/api/sentinels/" + sid + "%2Fsessions", "/assets/leak.txt",
                 "/assets/sub", "/assets/", "/.%2e/etc/passwd", "/%5c..%5cetc/passwd",
                 "/api/sentinels/..%252f..%252f/sessions"]
        for p in paths:
            out = self.raw(("GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                            "Connection: close\r\n\r\n" % (p, PT)).encode())
            status = int(out.split(b" ", 2)[1]) if out.startswith(b"HTTP/1.1 ") else None
            self.assertIn(status, (None, 400, 403, 404), (p, out[:300]))
            self.assertNotIn(b"root:", out, p)

    def test_symlinks_in_the_archive_lead_nowhere(self):
        """A symlink in data_dir, as a file of a session, as a session or as a
        whole sentinel directory, is never followed: 404, and nothing of what
        it points to is served."""
        outside = tempfile.mkdtemp(prefix="vigil-outside-")
        secret = b"SECRET-OUTSIDE-DATA_DIR\n" * 100
        with open(os.path.join(outside, "secret"), "wb") as f:
            f.write(secret)
        # files of a real session
        sid, sess, base = write_session(self.data, torn=False)
        d = os.path.join(self.data, sid, sess)
        os.unlink(os.path.join(d, "init.mp4"))
        os.symlink("/etc/passwd", os.path.join(d, "init.mp4"))
        os.unlink(os.path.join(d, "000001.m4s"))
        os.symlink(os.path.join(outside, "secret"), os.path.join(d, "000001.m4s"))
        os.mkfifo(os.path.join(outside, "fifo"))
        os.unlink(os.path.join(d, "000000.m4s"))
        os.symlink(os.path.join(outside, "fifo"), os.path.join(d, "000000.m4s"))
        for path in ("/init.mp4", "/segments/1.m4s", "/segments/0.m4s"):
            st, _, body = self.get(base + path, PT)
            self.assertEqual(st, 404, (path, body[:200]))
            self.assertNotIn(b"root:", body)
            self.assertNotIn(b"SECRET", body)
        st, _, body = self.get(base + "/export.mp4", AT)
        self.assertNotIn(b"SECRET", body)
        self.assertNotIn(b"root:", body)
        # a session directory and a sentinel directory that are symlinks
        osid, osess, obase = write_session(outside, torn=False)
        os.symlink(os.path.join(outside, osid, osess), os.path.join(self.data, sid, osess))
        lsid = str(uuid.uuid4())
        os.symlink(os.path.join(outside, osid), os.path.join(self.data, lsid))
        for path in ("/api/sentinels/%s/sessions/%s/segments" % (sid, osess),
                     "/api/sentinels/%s/sessions/%s/init.mp4" % (sid, osess),
                     "/api/sentinels/%s/sessions/%s/segments/0.m4s" % (sid, osess),
                     "/api/sentinels/%s/sessions/%s/segments" % (lsid, osess),
                     "/api/sentinels/%s/sessions" % lsid):
            st, _, body = self.get(path, PT)
            self.assertEqual(st, 404, (path, body[:200]))
        st, _, body = self.get("/api/sentinels/%s/sessions" % sid, PT)
        self.assertEqual([x["sessionId"] for x in json.loads(body)], [sess])
        st, _, body = self.get("/api/sentinels", PT)
        self.assertNotIn(lsid, [x["sentinelId"] for x in json.loads(body)])
        # archive restarted (it repairs every session it finds) leaves the
        # outside untouched
        before = {n: open(os.path.join(outside, osid, osess, n), "rb").read()
                  for n in ("index.jsonl", "session.json")}
        pid = self.v.stage("archive")["pid"]
        w = self.v.watch()
        self.v.ctl("restart", "archive")
        w.wait_state("archive", "running", not_pid=pid)
        w.close()
        self.assertEqual(self.get("/health", None)[0], 200)
        for n, blob in before.items():
            with open(os.path.join(outside, osid, osess, n), "rb") as f:
                self.assertEqual(f.read(), blob, n)
        with open(os.path.join(outside, "secret"), "rb") as f:
            self.assertEqual(f.read(), secret)

    def test_static_files(self):
        st, hd, body = self.get("/", None)
        self.assertEqual((st, hd["content-type"]), (200, "text/html; charset=utf-8"))
        self.assertIn(b"test app", body)
        st, hd, body = self.get("/assets/app.js", None)
        self.assertEqual((st, hd["content-type"], body),
                         (200, "text/javascript; charset=utf-8", b"console.log('app');\n"))
        self.assertEqual(self.get("/missing.js", None)[0], 404)

    def test_limits_and_idle_clients(self):
        # past the request-target's and a header field's limits (8 KiB): the
        # status says which, then the connection closes
        out = self.raw(b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 414 "), out[:200])
        self.assertIn(b"Connection: close\r\n", out)
        out = self.raw(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20000 +
                       b"\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 431 "), out[:200])
        # a path within it but past ROUTE_PATH_MAX: 414 too
        out = self.raw(b"GET /" + b"a" * 3000 + b" HTTP/1.1\r\nHost: x\r\n"
                       b"Connection: close\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 414 "), out[:200])
        self.assertTrue(out.endswith(b'{"error":"the path is over 1024 bytes"}'), out[-200:])
        # a client that sends half a request and then nothing gets 408 and is dropped
        s = socket.create_connection((self.host, self.port), timeout=30)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        got = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        self.assertTrue(got.startswith(b"HTTP/1.1 408 "), got[:200])
        s.close()
        # and so is an idle keep-alive connection, after its answer
        s = socket.create_connection((self.host, self.port), timeout=30)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while b"\r\n\r\nok" not in got:
            got += s.recv(4096)
        self.assertEqual(s.recv(4096), b"")
        s.close()
        # the server still answers
        self.assertEqual(self.get("/health", None)[0], 200)

    def test_reader_that_stops_reading_is_dropped(self):
        big = os.urandom(1 << 20)
        sid, sess, base = write_session(self.data, torn=False)
        d = os.path.join(self.data, sid, sess)
        with open(os.path.join(d, "index.jsonl"), "a") as f:
            for i in range(2, 34):  # 32 MiB more: far beyond every socket buffer
                with open(os.path.join(d, "%06d.m4s" % i), "wb") as g:
                    g.write(big)
                f.write(json.dumps({"sequence": i, "startTime": 1, "duration": 100,
                                    "bytes": len(big), "keyframe": False, "init": 0,
                                    "sha256": sha(big)}) + "\n")
        # read whole, a 33 MiB export costs httpd no memory of that order
        pid = self.v.stage("httpd")["pid"]
        rss0 = rss_kib(pid)
        st, hd, body = self.get(base + "/export.mp4", AT)
        self.assertEqual((st, len(body)), (200, int(hd["content-length"])))
        self.assertEqual(body[-len(big):], big)
        grew = rss_kib(pid) - rss0
        self.assertLess(grew, 8 << 10, "httpd grew by %d KiB" % grew)
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect((self.host, self.port))
        s.sendall(("GET %s/export.mp4 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                   "\r\n" % (base, AT)).encode())
        # httpd's count of open connections at its last heartbeat (between this
        # test's short requests) shows the stalled reader, then drops it
        def conns():
            return self.json_ok("/api/metrics", OT)["stages"]["httpd"]["connections"]
        until(lambda: conns() >= 1, timeout=30, what="the stalled reader counted")
        until(lambda: conns() == 0, timeout=30, what="the stalled reader dropped")
        got = b""
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)  # now take what is queued
        s.settimeout(15)
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            got += chunk
        s.close()
        head, _, body = got.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head[:200])
        length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))
        self.assertEqual(length, len(INIT) + len(SEG0) + len(SEG1) + 32 * len(big))
        self.assertLess(len(body), length)


class TestTls(unittest.TestCase):
    def test_https_when_a_certificate_is_configured(self):
        v = Vigil(extra=AUTH)
        os.environ["VIGIL_WEB_ROOT"] = os.path.join(v.dir, "no-web-app")
        try:
            cert, key = v.dir + "/cert.pem", v.dir + "/key.pem"
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-keyout", key, "-out", cert, "-days", "1", "-subj",
                            "/CN=127.0.0.1"], check=True, capture_output=True, timeout=60)
            v.extra += "tls: { cert: %s, key: %s }\n" % (cert, key)
            v.write_config()
            sid, sess, base = write_session(os.path.join(v.dir, "data"), torn=False)
            v.start()
            host, port = v.stage("httpd")["listen"].rsplit(":", 1)
            ctx = ssl.create_default_context(cafile=cert)
            ctx.check_hostname = False
            for path, hdrs, want, status in (
                    ("/segments/1.m4s", {}, SEG1, 200),
                    ("/export.mp4", {}, INIT + SEG0 + SEG1, 200),
                    ("/export.mp4", {"Range": "bytes=10-"}, (INIT + SEG0 + SEG1)[10:], 206)):
                c = http.client.HTTPSConnection(host, int(port), timeout=15, context=ctx)
                c.request("GET", base + path,
                          headers=dict(hdrs, Authorization="Bearer " + AT))
                r = c.getresponse()
                self.assertEqual((r.status, r.read()), (status, want), path)
                c.close()
            c = http.client.HTTPConnection(host, int(port), timeout=5)
            try:  # plain HTTP to the TLS listener: never served
                c.request("GET", "/health")
                st = c.getresponse().status
            except (OSError, http.client.HTTPException):
                st = None
            self.assertNotEqual(st, 200)
            # a client offering h2 gets HTTP/1.1
            actx = ssl.create_default_context(cafile=cert)
            actx.check_hostname = False
            actx.set_alpn_protocols(["h2", "http/1.1"])
            with actx.wrap_socket(socket.create_connection((host, int(port)), timeout=15)) as t:
                self.assertIn(t.selected_alpn_protocol(), ("http/1.1", None))
            # no web app built: / says so
            c = http.client.HTTPSConnection(host, int(port), timeout=15, context=ctx)
            c.request("GET", "/")
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            self.assertIn(b"The web app is not built", r.read())
            c.close()
            c.close()
        finally:
            del os.environ["VIGIL_WEB_ROOT"]
            v.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
