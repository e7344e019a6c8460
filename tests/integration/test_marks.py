#!/usr/bin/python3
"""Marks (issue 12; PROTOCOL.md section 8, docs/protocol.md "Marks",
docs/httpd.md "Marks") against a real vigild: proctor.mark on relay's
/proctor and server.mark to the maker and to every proctor subscribed to the
sentinel; every refusal of section 8 with its server.error and nothing stored;
GET and POST .../marks (bodies read whole, the connection kept); the marks in
the playlist as EXT-X-DATERANGE, read by hls.js's parser and by ffprobe; in
the evidence manifest; gone with the session's hard delete; one audit record
each. Then what archive's state does to a mark: kill -9 right after
server.mark loses nothing; an archive that is stopped is refused at once
(503); one that hangs is given up after 5 s and stores nothing when it wakes.
And relay's rewind: startFrom "oldest" goes back buffer_seconds, not the
whole ring."""
import glob
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from proctor import Proctor  # noqa: E402
from test_audit_relay import INIT, SEGS, now_ms, until  # noqa: E402
from vigil import SOURCE, Vigil, alive  # noqa: E402
from wsclient import Client  # noqa: E402

HLS_MJS = os.path.join(SOURCE, "httpd", "web", "node_modules", "hls.js", "dist", "hls.mjs")
DATERANGES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "clients",
                          "dateranges.mjs")
P1, P2, P3, AT = "proctor-mark-1", "proctor-mark-2", "proctor-mark-3", "archivist-mark"
AUTH = """auth:
  sentinel: none
  tokens:
    - { name: desk-1, role: proctor, token: "%s" }
    - { name: "desk \\"2\\", hall B", role: proctor, token: "%s" }
    - { name: desk-3, role: proctor, token: "%s" }
    - { name: records, role: archivist, token: "%s" }
""" % (P1, P2, P3, AT)
BUFFER_S = 4  # buffer_seconds of the first class: the rewind's window
UUID_RE = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
MARK_KEYS = ["markId", "sentinelId", "sessionId", "at", "by", "kind", "note"]
# A note with everything a playlist's quoted-string cannot hold, and more.
HARD_NOTE = ('he said "look", then left,\nback at 10:02; 100% sure\r\ttab '
             '\u2028\u0085 \u00e9\u20ac\U0001f600')


def read_all(sk):
    """What the server sends until it closes the connection."""
    got = b""
    while True:
        chunk = sk.recv(65536)
        if not chunk:
            return got
        got += chunk


class Base(unittest.TestCase):
    """A vigild per class and the clients the tests use."""
    vigil_args = {}
    extra = ""

    @classmethod
    def setUpClass(cls):
        cls.v = Vigil(extra=AUTH + cls.extra, **cls.vigil_args).start()
        cls.purl = cls.v.url("relay", "/proctor")
        cls.surl = cls.v.url("ingest", "/sentinel")
        cls.http = cls.v.stage("httpd")["listen"]
        cls.data = os.path.join(cls.v.dir, "data")

    @classmethod
    def tearDownClass(cls):
        cls.v.stop()

    # -- clients --

    def proctor(self, token=P1):
        p = Proctor(self.purl)
        self.addCleanup(p.close)
        p.register(token, name="desk")
        return p

    def sentinel(self, name="cam", segments=2, t0=None):
        """A sentinel online with an init and a few segments, in the ring once
        the pong is back; t0: the first segment's startTime."""
        s = Client(self.surl)
        self.addCleanup(s.close)
        ack = s.register(name=name)
        s.send("sentinel.init", {"data": INIT})
        t0 = t0 if t0 is not None else now_ms()
        for seq in range(segments):
            s.send("sentinel.segment", {"sequence": seq, "data": SEGS[seq % 2],
                                        "duration": 100, "startTime": t0 + 100 * seq})
        self.sync(s)
        return s, ack

    def start_of(self, ack):
        """The session's startTime, from its session.json once archive made it."""
        path = os.path.join(self.data, ack["sentinelId"], ack["sessionId"], "session.json")

        def read():
            try:
                with open(path) as f:
                    return json.load(f)["startTime"]
            except (OSError, ValueError, KeyError):
                return None
        return until(read, 20, "session.json of " + ack["sessionId"])

    def sync(self, s):
        s.send("sentinel.ping", {})
        while s.recv()["type"] != "server.pong":
            pass

    def end(self, s, ack):
        """The sentinel says bye; returns once archive has ended the session."""
        s.send("sentinel.bye", {})
        meta = os.path.join(self.data, ack["sentinelId"], ack["sessionId"], "session.json")

        def ended():
            try:
                with open(meta) as f:
                    return json.load(f).get("endTime") is not None
            except (OSError, ValueError):
                return False
        until(ended, 30, "archive's end of the session")
        with open(meta) as f:
            return json.load(f)

    def subscribe(self, p, sid):
        p.send("proctor.subscribe", {"sentinelIds": [sid]})
        self.pong(p)

    def pong(self, p):
        """Everything p sent before has been handled once the pong is back;
        returns the messages that came before it."""
        p.send("proctor.ping", {})
        return p.wait(lambda m: m["type"] == "server.pong", what="pong")[1]

    def answer(self, p, timeout=15):
        """The server.mark or server.error that answers p's proctor.mark."""
        msg, _ = p.wait(lambda m: m["type"] in ("server.mark", "server.error"), timeout,
                        "an answer to proctor.mark")
        return msg["type"], msg["payload"]

    def mark(self, p, payload, binary=False):
        p.send("proctor.mark", payload, binary=binary)
        t, body = self.answer(p)
        self.assertEqual(t, "server.mark", body)
        self.assertEqual(list(body["mark"]), MARK_KEYS)
        return body["mark"]

    def refused(self, p, payload, code, reason=None, binary=False):
        p.send("proctor.mark", payload, binary=binary)
        t, body = self.answer(p)
        self.assertEqual(t, "server.error", body)
        self.assertEqual((body["code"], body["ref"]), (code, "proctor.mark"), body)
        if reason is not None:
            self.assertIn(reason, body["reason"])
        return body

    def base(self, ack):
        return "/api/sentinels/%s/sessions/%s" % (ack["sentinelId"], ack["sessionId"])

    def request(self, method, path, body=None, token=P1, headers=None):
        """(status, headers with lower-case names, body) over a new connection."""
        hd = dict(headers or {})
        if token is not None:
            hd["Authorization"] = "Bearer " + token
        req = urllib.request.Request("http://" + self.http + path, data=body, method=method,
                                     headers=hd)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        except urllib.error.HTTPError as e:
            with e:
                return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()

    def post(self, ack, doc, token=P1):
        body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        st, _, out = self.request("POST", self.base(ack) + "/marks", body, token,
                                  {"Content-Type": "application/json"})
        return st, json.loads(out) if out else None

    def listed(self, ack, token=P1):
        st, _, out = self.request("GET", self.base(ack) + "/marks", token=token)
        self.assertEqual(st, 200, out)
        return json.loads(out)

    def stored(self, ack):
        """The lines of the session's marks.jsonl, as archive wrote them."""
        path = os.path.join(self.data, ack["sentinelId"], ack["sessionId"], "marks.jsonl")
        try:
            with open(path, "rb") as f:
                return [json.loads(ln) for ln in f.read().split(b"\n") if ln]
        except FileNotFoundError:
            return []

    def audit(self, action="mark"):
        out = []
        for f in sorted(glob.glob(os.path.join(self.data, "audit", "audit-*.jsonl"))):
            with open(f, "rb") as fh:
                out += [json.loads(ln) for ln in fh.read().split(b"\n") if ln]
        return [r for r in out if r["action"] == action]

    def assert_recorded(self, mark, actor, role):
        """One audit record of the mark, made durable before its answer."""
        recs = [r for r in self.audit() if r.get("markId") == mark["markId"]]
        self.assertEqual(len(recs), 1, recs)
        r = recs[0]
        self.assertEqual(list(r)[:9], ["seq", "time", "actor", "role", "remote", "action",
                                       "sentinelId", "sessionId", "markId"], r)
        self.assertEqual((r["actor"], r["role"], r["remote"], r["sentinelId"], r["sessionId"]),
                         (actor, role, "127.0.0.1", mark["sentinelId"], mark["sessionId"]))


class Marks(Base):
    # Two relay workers: archive's answer must reach the maker's worker, and
    # a mark the proctors of every worker.
    vigil_args = {"workers": 2}
    extra = "buffer_seconds: %d\n" % BUFFER_S

    # -- proctor.mark ------------------------------------------------------------

    def test_mark_goes_to_the_maker_and_every_subscriber(self):
        s, ack = self.sentinel()
        sid = ack["sentinelId"]
        maker, watcher, other = self.proctor(P1), self.proctor(P2), self.proctor(P3)
        self.subscribe(watcher, sid)
        _, ack2 = self.sentinel("elsewhere")
        self.subscribe(other, ack2["sentinelId"])
        before = now_ms()
        m = self.mark(maker, {"sentinelId": sid, "note": "looked at a phone"})
        self.assertRegex(m["markId"], UUID_RE)
        self.assertEqual((m["sentinelId"], m["sessionId"], m["by"], m["kind"], m["note"]),
                         (sid, ack["sessionId"], "desk-1", "note", "looked at a phone"))
        self.assertTrue(before <= m["at"] <= now_ms(), m)  # at defaults to now
        # the subscriber gets the same mark; the other proctor none
        _, seen = watcher.wait(lambda x: x["type"] == "server.mark", what="server.mark")
        self.assertEqual(_["payload"]["mark"], m)
        self.assertFalse([x for x in self.pong(other) if x["type"] == "server.mark"])
        # stored before the answer, listed, recorded once
        self.assertEqual(self.stored(ack), [m])
        self.assertEqual(self.listed(ack), [m])
        self.assert_recorded(m, "desk-1", "proctor")
        # a subscriber's own mark, with every field, in a binary frame
        at = self.start_of(ack) + 1
        m2 = self.mark(watcher, {"sentinelId": sid.upper(), "at": at, "kind": "incident",
                                 "note": HARD_NOTE}, binary=True)
        self.assertEqual((m2["at"], m2["kind"], m2["note"], m2["by"], m2["sentinelId"]),
                         (at, "incident", HARD_NOTE, 'desk "2", hall B', sid))
        # ... reaches it once (not twice for being maker and subscriber)
        self.assertFalse([x for x in self.pong(watcher) if x["type"] == "server.mark"])
        self.assertEqual(self.listed(ack), [m2, m])  # oldest first
        self.assert_recorded(m2, 'desk "2", hall B', "proctor")

    def test_refusals_store_nothing(self):
        s, ack = self.sentinel()
        sid = ack["sentinelId"]
        p = self.proctor()
        start = self.start_of(ack)
        cases = [
            ({"sentinelId": str(uuid.uuid4()), "note": "x"}, 404, "unknown sentinel"),
            ({"sentinelId": "00000000-0000-0000-0000-000000000000", "note": "x"}, 404,
             "unknown sentinel"),
            ({"sentinelId": "not-a-uuid", "note": "x"}, 400, "sentinelId"),
            ({"sentinelId": 5, "note": "x"}, 400, "sentinelId"),
            ({"note": "x"}, 400, "sentinelId"),
            ({"sentinelId": sid, "note": "x", "at": start - 1}, 400, "outside session"),
            ({"sentinelId": sid, "note": "x", "at": now_ms() + 60000}, 400, "outside session"),
            ({"sentinelId": sid, "note": "x", "at": "now"}, 400, "at must be an integer"),
            ({"sentinelId": sid, "note": "x", "at": 1.5}, 400, "at must be an integer"),
            ({"sentinelId": sid, "note": "x", "kind": "alarm"}, 400, "kind must be"),
            ({"sentinelId": sid, "note": "x", "kind": "Note"}, 400, "kind must be"),
            ({"sentinelId": sid, "note": "x", "kind": 2}, 400, "kind must be"),
            ({"sentinelId": sid}, 400, "needs note"),
            ({"sentinelId": sid, "note": None}, 400, "needs note"),
            ({"sentinelId": sid, "note": ["x"]}, 400, "needs note"),
            ({"sentinelId": sid, "note": "x" * 501}, 400, "over 500 bytes"),
            ({"sentinelId": sid, "note": "\u20ac" * 167}, 400, "over 500 bytes"),  # 501 bytes
            ({"sentinelId": sid, "note": "a\u0000b"}, 400, "NUL"),
        ]
        for payload, code, reason in cases:
            for binary in (False, True):
                with self.subTest(payload=payload, binary=binary):
                    self.refused(p, payload, code, reason, binary)
        # bytes are no note, UTF-8 or not (MessagePack bin)
        self.refused(p, {"sentinelId": sid, "note": b"\xff\xfe"}, 400, "needs note", True)
        self.refused(p, {"sentinelId": sid, "note": b"ok"}, 400, "needs note", True)
        self.assertEqual(self.stored(ack), [])
        self.assertEqual(self.audit(), [m for m in self.audit() if m["sentinelId"] != sid])
        # the limits themselves are fine: 500 bytes (250 two-byte characters)
        m = self.mark(p, {"sentinelId": sid, "note": "\u00e9" * 250, "kind": "suspicious",
                          "at": start})
        self.assertEqual(len(m["note"].encode()), 500)
        self.assertEqual(self.stored(ack), [m])
        # a str that is not UTF-8 is no envelope at all (docs/protocol.md): 3006
        bad = Proctor(self.purl)
        self.addCleanup(bad.close)
        bad.register(P1)
        env = (b"\x82\xa4type\xacproctor.mark\xa7payload\x82\xaasentinelId\xd9\x24" +
               sid.encode() + b"\xa4note\xa2\xff\xfe")
        bad.ws.send_binary(env)
        (code, _), _ = bad.expect_close()
        self.assertEqual(code, 3006)
        # the proctor that was refused so often still marks
        self.mark(p, {"sentinelId": sid, "note": "still here"})

    def test_offline_sentinel_is_refused(self):
        s, ack = self.sentinel()
        p = self.proctor()
        self.end(s, ack)
        body = self.refused(p, {"sentinelId": ack["sentinelId"], "note": "late"}, 409,
                            "offline")
        self.assertIn("POST", body["reason"])  # where to go instead
        self.assertEqual(self.stored(ack), [])

    def test_waiting_marks_are_bounded_per_proctor(self):
        """Eight marks of one proctor may wait for archive at once; sent in one
        burst, the ninth and after may be 429 (or stored, when archive was
        quick): never lost, and every answer comes."""
        _, ack = self.sentinel()
        p = self.proctor()
        for i in range(40):
            p.send("proctor.mark", {"sentinelId": ack["sentinelId"], "note": "burst %d" % i})
        answers = [self.answer(p) for _ in range(40)]
        ok = [b["mark"]["note"] for t, b in answers if t == "server.mark"]
        busy = [b for t, b in answers if t == "server.error"]
        self.assertTrue(all(b["code"] == 429 for b in busy), busy)
        self.assertGreaterEqual(len(ok), 8)
        self.assertEqual(sorted(m["note"] for m in self.stored(ack)), sorted(ok))

    # -- HTTP ----------------------------------------------------------------------

    def test_post_and_get(self):
        s, ack = self.sentinel()
        watcher = self.proctor(P2)
        self.subscribe(watcher, ack["sentinelId"])
        start = self.start_of(ack)
        st, m = self.post(ack, {"at": start + 20, "kind": "suspicious", "note": HARD_NOTE},
                          AT)
        self.assertEqual(st, 201, m)
        self.assertEqual(list(m), MARK_KEYS)
        self.assertEqual((m["at"], m["kind"], m["note"], m["by"], m["sessionId"]),
                         (start + 20, "suspicious", HARD_NOTE, "records", ack["sessionId"]))
        # a mark of the live session made over HTTP reaches its watchers too
        msg, _ = watcher.wait(lambda x: x["type"] == "server.mark", what="server.mark")
        self.assertEqual(msg["payload"]["mark"], m)
        self.assert_recorded(m, "records", "archivist")
        # an earlier moment marked later is listed first (oldest first)
        st, early = self.post(ack, {"at": start, "note": ""})
        self.assertEqual((st, early["kind"], early["by"]), (201, "note", "desk-1"))
        self.assertEqual(self.listed(ack), [early, m])
        self.assertEqual(self.stored(ack), [m, early])  # the file keeps the order of storing
        # HEAD: the headers of the same answer
        st, hd, body = self.request("HEAD", self.base(ack) + "/marks")
        self.assertEqual((st, body, hd["content-type"]), (200, b"", "application/json"))
        bad = [
            (b"", 400, "not JSON"),
            (b"{not json", 400, "not JSON"),
            (b"[1]", 400, "JSON object"),
            (b'{"note": "x"}', 400, "at must be"),
            (b'{"at": 1.5e12, "note": "x"}', 400, "at must be"),
            (b'{"at": "%d", "note": "x"}' % start, 400, "at must be"),
            (b'{"at": %d}' % start, 400, "note must be"),
            (b'{"at": %d, "note": 7}' % start, 400, "note must be"),
            (b'{"at": %d, "note": "x", "kind": "alarm"}' % start, 400, "kind must be"),
            (b'{"at": %d, "note": "%s"}' % (start, b"x" * 501), 400, "over 500 bytes"),
            (b'{"at": %d, "note": "a\\u0000b"}' % start, 400, "not JSON"),
            (b'{"at": %d, "note": "\xff"}' % start, 400, "not JSON"),
            (b'{"at": %d, "at": %d, "note": "x"}' % (start, start), 400, "not JSON"),
            (b'{"at": %d, "note": "x"}' % (start - 1), 400, "outside session"),
            (b'{"at": %d, "note": "x"}' % (now_ms() + 60000), 400, "outside session"),
        ]
        for body, code, why in bad:
            with self.subTest(body=body):
                st, out = self.post(ack, body)
                self.assertEqual(st, code, out)
                self.assertIn(why, out["error"])
        # unknown session, unknown sentinel, malformed ids, the body's bound
        other = dict(ack, sessionId=str(uuid.uuid4()))
        self.assertEqual(self.post(other, {"at": start, "note": "x"})[0], 404)
        other = dict(ack, sentinelId=str(uuid.uuid4()))
        self.assertEqual(self.post(other, {"at": start, "note": "x"})[0], 404)
        self.assertEqual(self.request("GET", self.base(other) + "/marks")[0], 404)
        self.assertEqual(self.request("POST", "/api/sentinels/x/sessions/y/marks", b"{}")[0],
                         400)
        st, out = self.post(ack, b" " * (16 * 1024 + 1))
        self.assertEqual(st, 413, out)
        # roles and methods
        self.assertEqual(self.post(ack, {"at": start, "note": "x"}, token=None)[0], 401)
        self.assertEqual(self.post(ack, {"at": start, "note": "x"}, token="nope")[0], 401)
        st, hd, _ = self.request("PUT", self.base(ack) + "/marks", b"{}")
        self.assertEqual((st, hd.get("allow")), (405, "GET, HEAD, POST"))
        st, hd, _ = self.request("POST", self.base(ack) + "/playlist.m3u8", b"{}")
        self.assertEqual((st, hd.get("allow")), (405, "GET, HEAD"))
        self.assertEqual(self.listed(ack), [early, m])
        self.assertEqual(len(self.stored(ack)), 2)

    def test_post_keeps_the_connection_and_reads_split_bodies(self):
        """A POST's body is read whole, however it arrives, and the connection
        serves the next request (http.client would reconnect by itself: the
        connects are counted); a body that never comes is 408."""
        _, ack = self.sentinel()
        start = self.start_of(ack)
        host, port = self.http.rsplit(":", 1)
        # a body announced and not sent: 408 once the head's time (10 s) is up;
        # it runs while the rest of the test does
        body = json.dumps({"at": start, "note": "in pieces"}).encode()
        head = ("POST %s/marks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                "Content-Length: %d\r\n\r\n" % (self.base(ack), P1, len(body))).encode()
        slow = socket.create_connection((host, int(port)), timeout=30)
        self.addCleanup(slow.close)
        slow.sendall(head + body[:3])
        connects = [0]

        class Counted(http.client.HTTPConnection):
            def connect(self):
                connects[0] += 1
                super().connect()

        c = Counted(host, int(port), timeout=15)
        hd = {"Authorization": "Bearer " + P1, "Content-Type": "application/json"}
        notes = []
        for i in range(3):
            notes.append("kept %d" % i)
            c.request("POST", self.base(ack) + "/marks",
                      json.dumps({"at": start, "note": notes[-1]}), hd)
            r = c.getresponse()
            self.assertEqual(r.status, 201, r.read())
            r.read()
            c.request("GET", self.base(ack) + "/marks", headers=hd)
            r = c.getresponse()
            self.assertEqual([m["note"] for m in json.loads(r.read())], notes)
        c.close()
        self.assertEqual(connects[0], 1)
        # by hand: the head, then the body in three pieces, a GET behind it
        get = ("GET %s/marks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
               "Connection: close\r\n\r\n" % (self.base(ack), P1)).encode()
        sk = socket.create_connection((host, int(port)), timeout=15)
        # pauses so that each piece is its own read in httpd: not waiting for anything
        for piece in (head, body[:5], body[5:9], body[9:] + get):
            sk.sendall(piece)
            time.sleep(0.1)
        got = read_all(sk)
        sk.close()
        self.assertTrue(got.startswith(b"HTTP/1.1 201 "), got[:200])
        second = got[got.index(b"HTTP/1.1 200 "):]
        notes.append("in pieces")
        self.assertEqual([m["note"] for m in json.loads(second.split(b"\r\n\r\n", 1)[1])],
                         notes)
        # curl asking first (Expect: 100-continue) is told to go on
        res = subprocess.run(
            ["curl", "-sS", "-v", "--expect100-timeout", "30", "-H", "Expect: 100-continue",
             "-H", "Authorization: Bearer " + P1, "-H", "Content-Type: application/json",
             "--data-binary", json.dumps({"at": start, "note": "curl"}),
             "http://%s%s/marks" % (self.http, self.base(ack))],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("< HTTP/1.1 100 Continue", res.stderr)
        self.assertIn("< HTTP/1.1 201 Created", res.stderr)
        self.assertEqual(json.loads(res.stdout)["note"], "curl")
        notes.append("curl")
        got = read_all(slow)
        self.assertTrue(got.startswith(b"HTTP/1.1 408 "), got[:200])
        self.assertEqual(len(self.stored(ack)), len(notes))

    # -- the playlist, the manifest, the delete ---------------------------------

    def test_playlist_manifest_and_delete(self):
        t0 = now_ms()
        s, ack = self.sentinel("ended", segments=6, t0=t0)
        p = self.proctor(P2)
        live = self.mark(p, {"sentinelId": ack["sentinelId"], "kind": "suspicious",
                             "note": HARD_NOTE})
        # the live playlist has it already
        st, _, pl = self.request("GET", self.base(ack) + "/playlist.m3u8")
        self.assertEqual(st, 200)
        self.assertIn('ID="%s"' % live["markId"], pl.decode())
        meta = self.end(s, ack)
        st, ended = self.post(ack, {"at": meta["endTime"], "kind": "incident",
                                    "note": 'a "quoted", comma'}, AT)
        self.assertEqual(st, 201, ended)
        st, out = self.post(ack, {"at": meta["endTime"] + 1, "note": "after"})
        self.assertEqual(st, 400, out)
        marks = sorted([live, ended], key=lambda m: m["at"])
        self.assertEqual(self.listed(ack), marks)
        # the playlist: one DATERANGE per mark, each a single line
        st, _, pl = self.request("GET", self.base(ack) + "/playlist.m3u8")
        text = pl.decode()
        lines = [ln for ln in text.split("\n") if ln.startswith("#EXT-X-DATERANGE:")]
        self.assertEqual(len(lines), 2, text)
        self.assertIn("#EXT-X-PROGRAM-DATE-TIME:", text)
        self.assertTrue(all(c not in ln for ln in lines for c in "\r\u2028\u0085"), lines)
        # hls.js's own parser reads them back, texts and all
        res = subprocess.run(["node", DATERANGES, HLS_MJS], input=pl, capture_output=True,
                             timeout=60)
        self.assertEqual(res.returncode, 0, res.stderr.decode()[-2000:])
        got = json.loads(res.stdout)
        self.assertEqual((got["hasProgramDateTime"], got["error"], got["fragments"]),
                         (True, None, 6), got)
        want = [{"id": m["markId"], "class": "vigil.mark",
                 "startDate": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(m["at"] // 1000))
                 + ".%03dZ" % (m["at"] % 1000), "valid": True, "kind": m["kind"],
                 "note": m["note"], "by": m["by"]} for m in marks]
        self.assertEqual(sorted(got["dateRanges"], key=lambda d: d["startDate"]), want)
        # ffprobe reads the playlist (its HLS demuxer) without a warning
        url = "http://%s%s/playlist.m3u8?token=%s" % (self.http, self.base(ack), P1)
        res = subprocess.run(["ffprobe", "-v", "warning", "-show_entries", "format=duration",
                              "-of", "json", url], capture_output=True, text=True, timeout=60)
        self.assertEqual((res.returncode, res.stderr), (0, ""))
        self.assertAlmostEqual(float(json.loads(res.stdout)["format"]["duration"]), 0.6,
                               delta=0.05)
        # the manifest's marks: the list's
        st, _, man = self.request("GET", self.base(ack) + "/manifest.json", token=AT)
        self.assertEqual(st, 200, man)
        self.assertEqual(json.loads(man)["marks"], marks)
        # the hard delete: every route of the session 404, POST 409, nothing on disk
        st, _, _ = self.request("DELETE", self.base(ack), token=AT)
        self.assertEqual(st, 204)
        self.assertEqual(self.request("GET", self.base(ack) + "/marks")[0], 404)
        st, out = self.post(ack, {"at": meta["startTime"], "note": "too late"}, AT)
        self.assertEqual(st, 409, out)
        self.assertIn("deleted", out["error"])
        self.assertFalse(os.path.exists(os.path.join(self.data, ack["sentinelId"],
                                                     ack["sessionId"])))
        for f in glob.glob(os.path.join(self.data, "**", "marks.jsonl*"), recursive=True):
            self.assertNotIn(ack["sessionId"], f)
        self.refused(p, {"sentinelId": ack["sentinelId"], "note": "x"}, 409, "offline")

    # -- live rewind (PROTOCOL.md section 5) -------------------------------------

    def test_oldest_is_buffer_seconds_back_not_the_whole_ring(self):
        """A sentinel's 60 s in the ring (one-second segments, each a join
        point): "oldest" starts BUFFER_S seconds before the live edge, where
        the whole ring would give the first segment."""
        s = Client(self.surl)
        self.addCleanup(s.close)
        ack = s.register(name="rewind")
        s.send("sentinel.init", {"data": INIT})
        t0 = now_ms() - 60000
        for seq in range(60):
            s.send("sentinel.segment", {"sequence": seq, "data": SEGS[seq % 2],
                                        "duration": 1000, "startTime": t0 + 1000 * seq})
        self.sync(s)
        ring = [e for e in self.v.ring_dump() if e["kind"] == "segment" and
                e["sessionId"] == ack["sessionId"]]
        self.assertEqual(min(e["sequence"] for e in ring), 0)  # the ring holds all 60
        p = self.proctor()
        p.send("proctor.subscribe", {"sentinelIds": [ack["sentinelId"]],
                                     "startFrom": "oldest"})
        seqs = []
        while len(seqs) < BUFFER_S:
            msg, _ = p.wait(lambda m: m["type"] == "server.segment", what="a segment")
            seqs.append(msg["payload"]["sequence"])
        # the edge is t0 + 60 s: BUFFER_S back is segment 60 - BUFFER_S
        self.assertEqual(seqs, list(range(60 - BUFFER_S, 60)))
        s.send("sentinel.segment", {"sequence": 60, "data": SEGS[0], "duration": 1000,
                                    "startTime": t0 + 60000})
        msg, _ = p.wait(lambda m: m["type"] == "server.segment", what="the live segment")
        self.assertEqual(msg["payload"]["sequence"], 60)


class Archive(Base):
    """What archive's state does to marks. Heartbeats are given 60 s so that a
    SIGSTOPped archive is not killed by vigild meanwhile."""
    vigil_args = {"heartbeat": "60s"}

    def test_1_kill9_after_server_mark_loses_nothing(self):
        _, ack = self.sentinel()
        p = self.proctor()
        w = self.v.watch()
        self.addCleanup(w.close)
        pid = self.v.stage("archive")["pid"]
        marks = [self.mark(p, {"sentinelId": ack["sentinelId"], "note": "n%d" % i})
                 for i in range(3)]
        os.kill(pid, signal.SIGKILL)  # the instant after the last server.mark
        w.wait_state("archive", "running", timeout=30, not_pid=pid)
        self.assertFalse(alive(pid))
        self.assertEqual(self.stored(ack), marks)
        self.assertEqual(self.listed(ack), marks)
        for m in marks:
            self.assert_recorded(m, "desk-1", "proctor")
        # and the restarted archive takes the next one
        after = self.mark(p, {"sentinelId": ack["sentinelId"], "note": "after"})
        self.assertEqual(self.listed(ack), marks + [after])

    def test_2_stopped_archive_is_refused_at_once(self):
        _, ack = self.sentinel()
        p = self.proctor()
        self.v.ctl("stop", "archive")  # returns once it is down
        # relay hears of it with the stage's state: a clear answer, no wait
        until(lambda: self.status_of(p) != "running", 10, "relay to hear archive stopped")
        t = time.monotonic()
        body = self.refused(p, {"sentinelId": ack["sentinelId"], "note": "x"}, 503,
                            "not stored")
        self.assertLess(time.monotonic() - t, 3)
        self.assertIn("archive", body["reason"])
        # POST: the same at once (httpd hears the stage's state too)
        t = time.monotonic()
        st, out = self.post(ack, {"at": now_ms(), "note": "x"})
        self.assertEqual(st, 503, out)
        self.assertLess(time.monotonic() - t, 3)
        self.v.ctl("start", "archive")
        until(lambda: self.status_of(p) == "running", 10, "relay to hear archive runs")
        self.assertEqual(self.stored(ack), [])
        m = self.mark(p, {"sentinelId": ack["sentinelId"], "note": "back"})
        self.assertEqual(self.listed(ack), [m])

    def status_of(self, p):
        msg, _ = p.wait(lambda m: m["type"] == "server.status", what="server.status")
        return msg["payload"]["stages"]["archive"]

    def test_3_hung_archive_is_given_up_and_stores_nothing(self):
        _, ack = self.sentinel()
        p = self.proctor()
        pid = self.v.stage("archive")["pid"]
        os.kill(pid, signal.SIGSTOP)
        try:
            t = time.monotonic()
            body = self.refused(p, {"sentinelId": ack["sentinelId"], "note": "lost"}, 503,
                                "did not confirm")
            waited = time.monotonic() - t
            self.assertGreater(waited, 4)  # relay asked again meanwhile
            self.assertIn("not stored", body["reason"])
        finally:
            os.kill(pid, signal.SIGCONT)
        # archive now reads the requests it missed: all past their deadline
        m = self.mark(p, {"sentinelId": ack["sentinelId"], "note": "kept"})
        self.assertEqual(self.stored(ack), [m])
        self.assertEqual([r["markId"] for r in self.audit() if r["sessionId"] ==
                          ack["sessionId"]], [m["markId"]])
        log = self.v.log()
        self.assertIn("after its sender gave up", log)


if __name__ == "__main__":
    unittest.main(verbosity=2)
