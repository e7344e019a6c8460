#!/usr/bin/python3
"""Thumbnails of archived sessions (docs/httpd.md, "Thumbnails") against a
running vigild: recordings of real H.264 (recording.py) written into data_dir
before it starts, one with a 12 s gap. Checked: the listing (slots, times,
gaps, size); a thumbnail is a whole JPEG of 160x90 with its headers (ETag,
304, HEAD); the second request is served from the file cached in the
session's directory (the same bytes and inode, httpd's counters), and a torn
cache file is made again; bad and out-of-range requests get their precise
status and text, and so do bad tokens; a thumbnail of a segment still only in
memory is 503 until archive stored it; served thumbnails are history reads in
the audit log; a hard delete removes the cached files with the session, even
while thumbnails are being made, and every thumbnail route answers 404
after it."""
import http.client
import json
import os
import shutil
import sys
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from vigil import Vigil, http_req  # noqa: E402
from recording import encode, write_session  # noqa: E402
from test_httpd import INIT, SEG0, SEG1, jpeg_size, until  # noqa: E402
from wsclient import Client  # noqa: E402

PT, AT, OT, ST = "proctor-secret", "archivist-secret", "operator-secret", "sentinel-secret"
AUTH = """auth:
  sentinel: none
  tokens:
    - { name: p1, role: proctor, token: "proctor-secret" }
    - { name: a1, role: archivist, token: "archivist-secret" }
    - { name: o1, role: operator, token: "operator-secret" }
    - { name: s1, role: sentinel, token: "sentinel-secret" }
"""
THUMB = "thumb-10s-160-%06d.jpg"


class TestThumbs(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.v = Vigil(extra=AUTH)
        cls.data = os.path.join(cls.v.dir, "data")
        clip = encode(10, 640, 360)
        start = int(time.time() * 1000) - 3600 * 1000
        cls.sid = str(uuid.uuid4())
        # A: 80 s of video with a 12 s gap after its 40th second (slots 4 and 5 in it).
        cls.a = str(uuid.uuid4())
        cls.a_segs, cls.a_meta = write_session(cls.data, cls.sid, cls.a, clip, 80, start,
                                               gaps=[(39, 12000)])
        # B and C: deleted by the tests.
        cls.b, cls.c = str(uuid.uuid4()), str(uuid.uuid4())
        write_session(cls.data, cls.sid, cls.b, clip, 30, start + 200000)
        write_session(cls.data, cls.sid, cls.c, clip, 200, start + 400000)
        cls.v.start()
        cls.host, port = cls.v.stage("httpd")["listen"].rsplit(":", 1)
        cls.port = int(port)

    @classmethod
    def tearDownClass(cls):
        cls.v.stop()

    def req(self, method, path, token=PT, headers=None):
        return http_req(self.host, self.port, method, path, token, headers)

    def base(self, sess, sid=None):
        return "/api/sentinels/%s/sessions/%s" % (sid or self.sid, sess)

    def error(self, path, status, token=PT):
        st, hd, body = self.req("GET", path, token)
        self.assertEqual(st, status, body)
        self.assertEqual(hd["content-type"], "application/json")
        return json.loads(body)["error"]

    def stats(self):
        """httpd's counters from its last heartbeat (none before the first)."""
        def get():
            st, _, body = self.req("GET", "/api/metrics", OT)
            self.assertEqual(st, 200, body)
            return json.loads(body)["stages"]["httpd"].get("stats")
        return until(get, 10, "httpd's heartbeat")

    def test_listing(self):
        st, hd, body = self.req("GET", self.base(self.a) + "/thumbs")
        self.assertEqual(st, 200, body)
        j = json.loads(body)
        first = self.a_segs[0]["startTime"]
        self.assertEqual((j["sentinelId"], j["sessionId"], j["every"], j["width"], j["height"]),
                         (self.sid, self.a, 10000, 160, 90))
        # 92 s from the first segment's start to the last one's end: 10 slots;
        # 40 s and 50 s fall in the gap from 40 s to 52 s.
        self.assertEqual(j["count"], 10)
        self.assertEqual([t["n"] for t in j["thumbs"]], [0, 1, 2, 3, 6, 7, 8, 9])
        self.assertEqual([t["at"] for t in j["thumbs"]],
                         [first + 10000 * n for n in (0, 1, 2, 3, 6, 7, 8, 9)])
        self.assertEqual(j["gaps"], [{"from": first + 40000, "to": first + 52000}])

    def test_jpeg(self):
        path = self.base(self.a) + "/thumbs/7.jpg"
        st, hd, body = self.req("GET", path)
        self.assertEqual(st, 200, body)
        self.assertEqual(hd["content-type"], "image/jpeg")
        self.assertEqual(int(hd["content-length"]), len(body))
        self.assertEqual(body[:2], b"\xff\xd8")
        self.assertEqual(body[-2:], b"\xff\xd9")
        self.assertEqual(jpeg_size(body), (160, 90))
        self.assertIn("immutable", hd["cache-control"])
        st, hd2, head = self.req("HEAD", path)
        self.assertEqual((st, head, hd2["content-length"], hd2["etag"]),
                         (200, b"", str(len(body)), hd["etag"]))
        st, _, _ = self.req("GET", path, headers={"If-None-Match": hd["etag"]})
        self.assertEqual(st, 304)
        # Slot 6 is the first after the gap: its picture is after it, not before.
        st, _, body6 = self.req("GET", self.base(self.a) + "/thumbs/6.jpg")
        self.assertEqual((st, jpeg_size(body6)), (200, (160, 90)))

    def test_cache(self):
        path = self.base(self.a) + "/thumbs/2.jpg"
        cached = os.path.join(self.data, self.sid, self.a, THUMB % 2)
        self.assertFalse(os.path.exists(cached))
        before = self.stats()
        st, _, first = self.req("GET", path)
        self.assertEqual(st, 200, first)
        with open(cached, "rb") as f:
            self.assertEqual(f.read(), first)
        ino = os.stat(cached).st_ino
        st, _, second = self.req("GET", path)
        self.assertEqual((st, second), (200, first))
        self.assertEqual(os.stat(cached).st_ino, ino, "the cached file was made again")
        after = until(lambda: (lambda s: s if s["thumbnailsFromCache"] > before[
            "thumbnailsFromCache"] else None)(self.stats()), 10, "the heartbeat's counters")
        self.assertEqual(after["thumbnailsMade"], before["thumbnailsMade"] + 1)
        # A torn cache file (a crash during a write that was not fsynced) is made again.
        with open(cached, "r+b") as f:
            f.truncate(100)
        st, _, third = self.req("GET", path)
        self.assertEqual((st, third), (200, first))
        with open(cached, "rb") as f:
            self.assertEqual(f.read(), first)

    def test_bad_requests(self):
        b = self.base(self.a)
        for n in ("01", "1e1", "-1", "+1", "x", "99999999999999999999", "1.5"):
            self.assertEqual(self.error(b + "/thumbs/%s.jpg" % n, 400),
                             "the thumbnail's number is not a canonical decimal integer")
        self.assertIn("session %s has 10 (0 to 9)" % self.a, self.error(b + "/thumbs/10.jpg", 404))
        self.assertIn("has 10", self.error(b + "/thumbs/123456.jpg", 404))
        first = self.a_segs[0]["startTime"]
        self.assertEqual(self.error(b + "/thumbs/4.jpg", 404),
                         "no thumbnail 4: the recording has a gap there, from %d to %d (unix ms)"
                         % (first + 40000, first + 52000))
        self.assertIn("gap", self.error(b + "/thumbs/5.jpg", 404))
        for path in (b + "/thumbs/0.png", b + "/thumbs/.jpg", b + "/thumbs/0.jpg/x",
                     b + "/thumbs/", self.base(str(uuid.uuid4())) + "/thumbs/0.jpg",
                     self.base(self.a, str(uuid.uuid4())) + "/thumbs",
                     self.base(str(uuid.uuid4())) + "/thumbs"):
            self.error(path, 404)
        self.assertEqual(self.error(self.base("not-a-uuid") + "/thumbs/0.jpg", 400),
                         "sessionId is not a UUID")
        self.assertEqual(self.error(b + "/thumbs/0.jpg", 401, None), "Missing token")
        self.assertEqual(self.error(b + "/thumbs/0.jpg", 401, "wrong"), "Invalid token")
        self.assertEqual(self.error(b + "/thumbs", 403, ST), "Token not valid for proctors")
        st, hd, _ = self.req("DELETE", b + "/thumbs/0.jpg", AT)
        self.assertEqual((st, hd["allow"]), (405, "GET, HEAD"))
        # A playlist token reads its session's media, not its thumbnails.
        st, _, pl = self.req("GET", b + "/playlist.m3u8?token=" + PT, None)
        self.assertEqual(st, 200, pl)
        cap = next(x for x in pl.decode().split("token=")[1:]).split()[0].split("&")[0]
        self.assertIn("Playlist token not valid here",
                      self.error(b + "/thumbs/0.jpg?token=" + cap, 403, None))

    def test_not_archived_yet(self):
        self.v.ctl("stop", "archive")
        try:
            s = Client(self.v.url("ingest", "/sentinel"))
            self.addCleanup(s.close)
            ack = s.register(name="ring-only")
            s.send("sentinel.init", {"data": INIT})
            now = int(time.time() * 1000)
            for i, seg in enumerate((SEG0, SEG1)):
                s.send("sentinel.segment", {"sequence": i, "data": seg, "duration": 100,
                                            "startTime": now + 100 * i})
            base = self.base(ack["sessionId"], ack["sentinelId"])
            until(lambda: self.req("GET", base + "/thumbs")[0] == 200 and json.loads(
                self.req("GET", base + "/thumbs")[2])["thumbs"], 10, "the ring's session")
            st, hd, body = self.req("GET", base + "/thumbs/0.jpg")
            self.assertEqual((st, hd.get("retry-after")), (503, "1"), body)
            self.assertIn("not archived yet", json.loads(body)["error"])
        finally:
            self.v.ctl("start", "archive")
        st, _, body = until(lambda: (lambda x: x if x[0] == 200 else None)(
            self.req("GET", base + "/thumbs/0.jpg")), 15, "the segment archived")
        self.assertEqual(jpeg_size(body), (160, 120))  # the fixture's own width: not enlarged

    def audit(self, session):
        st, _, body = self.req("GET", "/api/audit?sentinelId=%s&action=history.read,delete"
                               % self.sid, OT)
        self.assertEqual(st, 200, body)
        return [r for r in map(json.loads, body.decode().splitlines())
                if r.get("sessionId") == session]

    def test_delete(self):
        b = self.base(self.b)
        d = os.path.join(self.data, self.sid, self.b)
        for n in (0, 1, 2):
            st, _, body = self.req("GET", b + "/thumbs/%d.jpg" % n)
            self.assertEqual(st, 200, body)
        self.assertEqual(sorted(x for x in os.listdir(d) if x.startswith("thumb-")),
                         [THUMB % n for n in (0, 1, 2)])
        st, _, body = self.req("DELETE", b, AT)
        self.assertEqual(st, 204, body)
        self.assertFalse(os.path.exists(d))
        self.assertEqual([x for x in os.listdir(self.data) if x.startswith(".deleting")], [])
        for path in (b + "/thumbs", b + "/thumbs/0.jpg", b + "/thumbs/1.jpg"):
            self.error(path, 404)
        # The thumbnails were recorded as reads of the session, before its delete.
        recs = self.audit(self.b)
        self.assertEqual([r["action"] for r in recs], ["history.read", "delete"], recs)
        self.assertEqual((recs[0]["actor"], recs[0]["requests"]), ("p1", 3))

    def test_delete_while_decoding(self):
        b = self.base(self.c)
        d = os.path.join(self.data, self.sid, self.c)
        answers, lock = [], threading.Lock()

        def fetch(n):
            try:
                st, hd, _ = self.req("GET", b + "/thumbs/%d.jpg" % n)
            except (OSError, http.client.HTTPException) as e:
                st, hd = repr(e), {}
            with lock:
                answers.append((n, st, hd.get("retry-after")))

        threads = [threading.Thread(target=fetch, args=(n,)) for n in range(20)]
        for t in threads:
            t.start()
        until(lambda: any(x.startswith("thumb-") for x in os.listdir(d)), 10, "a first thumbnail")
        st, _, body = self.req("DELETE", b, AT)
        for t in threads:
            t.join(60)
        self.assertEqual(st, 204, body)
        self.assertFalse(os.path.exists(d), os.listdir(d) if os.path.exists(d) else None)
        self.assertEqual([x for x in os.listdir(self.data) if x.startswith(".deleting")], [])
        # Each one made, refused for now (the queue), or gone with the session.
        for n, st, retry in answers:
            self.assertTrue(st in (200, 404) or (st == 503 and retry is not None), (n, st))
        self.assertEqual(len(answers), 20)
        self.error(b + "/thumbs/0.jpg", 404)
        self.assertFalse(os.path.exists(d))


if __name__ == "__main__":
    unittest.main(verbosity=2)
