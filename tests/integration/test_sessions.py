#!/usr/bin/python3
"""GET /api/sessions (PROTOCOL.md section 6, issue 14 item 9) against a running
vigild: 50 sessions of 10 sentinels written into data_dir in the archive's
layout before it starts, one of them hard-deleted through archive, a live
session of a real vigil-sentinel, first only in the ring (archive stopped),
then on disk, and a deleted session that the ring still holds. Checked: the
order (newest first, equal starts by sessionId), every field, each filter and
combinations, pages of 7 followed through the Link header (every session
once, no Link on the last page, the filters kept and no token in it, a
session that appears meanwhile neither skipped into nor repeated), 400 for
each bad filter, 401 and 403."""
import base64
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import unittest
import uuid
from urllib.parse import urlsplit, parse_qs

sys.path.insert(0, os.path.dirname(__file__))
from vigil import Vigil  # noqa: E402
from wsclient import Client  # noqa: E402
from test_httpd import INIT, SEG0, SEG1, SENTINEL, sha, until  # noqa: E402

PT, AT, OT, ST = "proctor-secret", "archivist-secret", "operator-secret", "sentinel-secret"
AUTH = """auth:
  sentinel: none
  tokens:
    - { name: p1, role: proctor, token: "proctor-secret" }
    - { name: a1, role: archivist, token: "archivist-secret" }
    - { name: o1, role: operator, token: "operator-secret" }
    - { name: s1, role: sentinel, token: "sentinel-secret" }
"""
HOUR = 3600 * 1000
KEYS = {"sentinelId", "name", "sessionId", "startTime", "endTime", "segments", "bytes",
        "durationMs"}
LIVE_NAME = "Live-Cam-Z"


def sentinel_name(i):
    return ("Hall-A-%02d" if i < 5 else "lab-b-%02d") % i


def write_sessions(data, base):
    """10 sentinels, 5 ended sessions each, 1 to 3 segments a session. Two
    sessions start at the same time (the order then goes by sessionId); one
    was recorded under the sentinel's old name."""
    sessions = []
    for i in range(10):
        sid = str(uuid.uuid4())
        os.makedirs(os.path.join(data, sid))
        with open(os.path.join(data, sid, "sentinel.json"), "w") as f:
            json.dump({"sentinelId": sid, "name": sentinel_name(i), "updated": 1}, f)
        for j in range(5):
            sess = str(uuid.uuid4())
            start = base + (j * 10 + (0 if (i, j) == (1, 0) else i)) * HOUR
            name = "Old-Name-02" if (i, j) == (2, 0) else sentinel_name(i)
            d = os.path.join(data, sid, sess)
            os.makedirs(d)
            segs = [(SEG0, SEG1, SEG0)[k] for k in range(1 + (i + j) % 3)]
            durs = [1000 + 10 * i + k for k in range(len(segs))]
            with open(os.path.join(d, "session.json"), "w") as f:
                json.dump({"sentinelId": sid, "sessionId": sess, "name": name,
                           "codec": "avc1.64000d", "width": 160, "height": 90,
                           "timescale": 90000, "startTime": start,
                           "endTime": start + HOUR // 2, "inits": 1}, f)
            with open(os.path.join(d, "init.mp4"), "wb") as f:
                f.write(INIT)
            with open(os.path.join(d, "index.jsonl"), "w") as idx:
                for k, (seg, dur) in enumerate(zip(segs, durs)):
                    with open(os.path.join(d, "%06d.m4s" % k), "wb") as f:
                        f.write(seg)
                    idx.write(json.dumps({"sequence": k, "startTime": start + 1000 * k,
                                          "duration": dur, "bytes": len(seg),
                                          "keyframe": True, "init": 0,
                                          "sha256": sha(seg)}) + "\n")
            sessions.append({"sentinelId": sid, "name": name, "sessionId": sess,
                             "startTime": start, "endTime": start + HOUR // 2,
                             "segments": len(segs), "bytes": sum(len(s) for s in segs),
                             "durationMs": sum(durs)})
    return sessions


def newest_first(entries):
    return sorted(entries, key=lambda e: (-e["startTime"], e["sessionId"]))


def next_link(headers):
    link = headers.get("link")
    if link is None:
        return None
    m = re.fullmatch(r'<([^>]+)>; rel="next"', link)
    assert m, link
    return m.group(1)


class TestSessions(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.v = Vigil(extra=AUTH)
        cls.data = os.path.join(cls.v.dir, "data")
        # 5 days back: within archive's default retention (30 days)
        cls.base = int(time.time() * 1000) - 5 * 24 * HOUR
        cls.written = write_sessions(cls.data, cls.base)
        cls.deleted = cls.written[-1]  # lab-b-09's last: archive knows it from its start
        cls.sentinel = None
        cls.v.start()
        cls.host, port = cls.v.stage("httpd")["listen"].rsplit(":", 1)
        cls.port = int(port)
        try:
            cls.live_phases()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def live_phases(cls):
        """Before the delete, the deletable session is listed; then a real
        sentinel streams while archive is stopped (its session is only in the
        ring), and archive comes back and writes it."""
        d = cls.deleted
        cls.listed_before_delete = d["sessionId"] in [
            e["sessionId"] for e in cls.list_all()]
        cls.delete_status = cls.call("DELETE", "/api/sentinels/%s/sessions/%s" % (
            d["sentinelId"], d["sessionId"]), AT)[0]
        w = cls.v.watch()
        try:
            assert cls.v.request(cmd="stop", stage="archive")["ok"]
            w.wait_state("archive", "down")
            cls.sentinel = subprocess.Popen(
                [SENTINEL, "--url", cls.v.url("ingest", "/sentinel"), "--name", LIVE_NAME,
                 "--size", "160x90", "--fps", "5", "--duration", "300",
                 "--state", os.path.join(cls.v.dir, "sentinel.id")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            cls.ring_entry = until(lambda: [e for e in cls.list_all()
                                            if e["name"] == LIVE_NAME and e["segments"] >= 2],
                                   timeout=30, what="the live session from the ring")[0]
            cls.live_dir = os.path.join(cls.data, cls.ring_entry["sentinelId"],
                                        cls.ring_entry["sessionId"])
            cls.ring_only = not os.path.exists(cls.live_dir)
            assert cls.v.request(cmd="start", stage="archive")["ok"]
            w.wait_state("archive", "running")
        finally:
            w.close()
        until(lambda: os.path.exists(os.path.join(cls.live_dir, "index.jsonl")), timeout=30,
              what="archive writing the live session")

    @classmethod
    def tearDownClass(cls):
        if cls.sentinel is not None:
            cls.sentinel.send_signal(signal.SIGTERM)
            try:
                cls.sentinel.wait(15)
            except subprocess.TimeoutExpired:
                cls.sentinel.kill()
                cls.sentinel.wait()
        cls.v.stop()

    @classmethod
    def call(cls, method, path, token=PT, headers=None):
        c = http.client.HTTPConnection(cls.host, cls.port, timeout=30)
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        c.request(method, path, headers=h)
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body

    @classmethod
    def list_all(cls, query=""):
        st, hd, body = cls.call("GET", "/api/sessions?limit=1000" + query)
        assert st == 200, body
        assert "link" not in hd, hd
        return json.loads(body)

    def expected(self, pred=lambda e: True):
        """The sessions written on disk and still there, that pass pred, newest first."""
        return newest_first([e for e in self.written if e is not self.deleted and pred(e)])

    def disk_ids(self, entries):
        return [e["sessionId"] for e in entries if e["name"] != LIVE_NAME]

    def test_a_hard_deleted_session_is_not_listed(self):
        self.assertTrue(self.listed_before_delete)
        self.assertEqual(self.delete_status, 204)
        self.assertNotIn(self.deleted["sessionId"], [e["sessionId"] for e in self.list_all()])

    def test_a_deleted_session_still_in_the_ring_is_not_listed(self):
        """The ring's table still names the session as its sentinel's last one
        and holds its segments; only httpd's memory of the delete hides it."""
        s = Client(self.v.url("ingest", "/sentinel"))
        self.addCleanup(s.close)
        ack = s.register(name="gone-cam")
        s.send("sentinel.init", {"data": INIT})
        for i, seg in enumerate((SEG0, SEG1)):
            s.send("sentinel.segment", {"sequence": i, "data": seg, "duration": 100})
        s.send("sentinel.bye")
        sess = ack["sessionId"]
        path = "/api/sentinels/%s/sessions/%s" % (ack["sentinelId"], sess)
        until(lambda: [e for e in self.list_all("&name=gone-cam") if e["sessionId"] == sess
                       and e["endTime"] is not None and e["segments"] == 2],
              what="the ended session listed")
        until(lambda: self.call("DELETE", path, AT)[0] == 204, what="the delete")
        self.assertTrue([d for d in self.v.ring_dump()
                         if d["kind"] == "segment" and d["sessionId"] == sess])
        self.assertEqual(self.list_all("&name=gone-cam"), [])
        self.assertNotIn(sess, [e["sessionId"] for e in self.list_all()])

    def test_a_live_session_from_the_ring_then_from_disk(self):
        ring = self.ring_entry
        self.assertTrue(self.ring_only, "archive was stopped: the session was only in the ring")
        self.assertEqual(set(ring), KEYS)
        self.assertIsNone(ring["endTime"])
        self.assertGreater(ring["bytes"], 0)
        self.assertGreater(ring["durationMs"], 0)
        # Now on disk, and still in the ring: listed once, newest, with the same
        # figures as the sentinel's own listing (both merge the ring's segments).
        sid, sess = ring["sentinelId"], ring["sessionId"]

        def same_figures():
            all_ = self.list_all()
            mine = [e for e in all_ if e["sessionId"] == sess]
            own = [e for e in json.loads(self.call(
                "GET", "/api/sentinels/%s/sessions" % sid)[2]) if e["sessionId"] == sess]
            if len(mine) != 1 or len(own) != 1:
                return None
            a, b = mine[0], own[0]
            keys = ("startTime", "endTime", "segments", "bytes", "durationMs")
            return (all_, a) if [a[k] for k in keys] == [b[k] for k in keys] else None
        all_, now = until(same_figures, timeout=20, what="the same figures in both listings")
        self.assertEqual(all_[0]["sessionId"], sess)
        self.assertEqual((now["sentinelId"], now["name"], now["startTime"]),
                         (sid, LIVE_NAME, ring["startTime"]))
        self.assertIsNone(now["endTime"])
        self.assertGreaterEqual(now["segments"], ring["segments"])
        self.assertEqual(self.call("GET", "/api/sessions?live=true")[2],
                         self.call("GET", "/api/sessions?live=true&name=live-CAM")[2])
        live = json.loads(self.call("GET", "/api/sessions?live=true")[2])
        self.assertEqual([e["sessionId"] for e in live], [sess])

    def test_order_and_fields(self):
        got = self.list_all()
        for e in got:
            self.assertEqual(set(e), KEYS, e)
        self.assertEqual(got[0]["name"], LIVE_NAME)  # started last
        self.assertEqual([e for e in got if e["name"] != LIVE_NAME], self.expected())
        starts = [e["startTime"] for e in got]
        self.assertEqual(starts, sorted(starts, reverse=True))
        # default limit 100 covers all 50; HEAD carries no body
        st, hd, body = self.call("GET", "/api/sessions")
        self.assertEqual((st, hd["content-type"]), (200, "application/json"))
        self.assertEqual(json.loads(body), got)
        self.assertNotIn("link", hd)
        st, hd, body = self.call("HEAD", "/api/sessions")
        self.assertEqual((st, body), (200, b""))
        # the session recorded under the sentinel's old name carries that name
        old = [e for e in got if e["name"] == "Old-Name-02"]
        self.assertEqual(len(old), 1)

    def test_filters(self):
        cases = {
            "&name=hall-a": lambda e: "hall-a" in e["name"].lower(),
            "&name=LAB-B-0": lambda e: "lab-b-0" in e["name"].lower(),
            "&name=old-name": lambda e: e["name"] == "Old-Name-02",
            "&name=Hall%2Da": lambda e: "hall-a" in e["name"].lower(),  # decoded
            "&name=nobody": lambda e: False,
            "&live=false": lambda e: True,
        }
        # a window whose ends fall exactly on a session's end and another's start
        first, last = self.written[7], self.written[18]  # hours 12 and 33 after base
        lo, hi = first["endTime"], last["startTime"]
        cases["&from=%d&to=%d" % (lo, hi)] = \
            lambda e: e["startTime"] <= hi and e["endTime"] >= lo
        cases["&from=%d" % lo] = lambda e: e["endTime"] >= lo
        cases["&to=%d" % hi] = lambda e: e["startTime"] <= hi
        cases["&from=%d&to=%d" % (lo, lo)] = \
            lambda e: e["startTime"] <= lo <= e["endTime"]
        cases["&name=hall&live=false&from=%d&to=%d" % (lo, hi)] = \
            lambda e: "hall" in e["name"].lower() and e["startTime"] <= hi and \
            e["endTime"] >= lo
        for query, pred in cases.items():
            got = self.list_all(query)
            want = self.expected(pred)
            self.assertEqual(self.disk_ids(got), [e["sessionId"] for e in want], query)
            self.assertGreater(len(want) + (query == "&name=nobody"), 0, query)
            if "live=false" in query or "to=" in query:
                self.assertNotIn(LIVE_NAME, [e["name"] for e in got], query)
        # the live session runs on: any range that reaches now holds it
        got = self.list_all("&from=%d" % (int(time.time() * 1000) - 1000))
        self.assertEqual([e["name"] for e in got], [LIVE_NAME])

    def test_pages_of_7_through_the_link_header(self):
        for query, token_in_query in (("", False), ("name=hall&live=false&from=%d" % (
                self.base + HOUR), True)):
            want = [e["sessionId"] for e in self.list_all("&" + query if query else "")]
            path = "/api/sessions?limit=7" + ("&" + query if query else "")
            seen, pages, added = [], 0, None
            while path is not None:
                if token_in_query:  # the token must not travel on into the next link
                    st, hd, body = self.call("GET", path + "&token=" + PT, token=None)
                else:
                    st, hd, body = self.call("GET", path)
                self.assertEqual(st, 200, body)
                page = json.loads(body)
                pages += 1
                seen += [e["sessionId"] for e in page]
                path = next_link(hd)
                if path is None:
                    self.assertLessEqual(len(page), 7)
                    break
                self.assertEqual(len(page), 7)
                self.assertNotIn("token", path)
                args = parse_qs(urlsplit(path).query, keep_blank_values=True)
                self.assertEqual(urlsplit(path).path, "/api/sessions")
                self.assertEqual(args["limit"], ["7"])
                for k, v in parse_qs(query).items():
                    self.assertEqual(args[k], v, path)
                cursor = args["cursor"][0]
                self.assertRegex(cursor, r"^[A-Za-z0-9_-]+$")  # base64url, nothing to escape
                if added is None:
                    # a session that starts now appears between two pages: it
                    # belongs before the pages already read, so it is neither
                    # in the next ones nor does it shift them
                    added = self.add_session()
            self.assertEqual(seen, want, query)
            self.assertEqual(len(set(seen)), len(seen))
            self.assertEqual(pages, (len(want) + 6) // 7)
            shutil.rmtree(os.path.dirname(added))

    def add_session(self):
        sid = str(uuid.uuid4())
        d = os.path.join(self.data, sid, str(uuid.uuid4()))
        os.makedirs(d)
        start = int(time.time() * 1000)
        with open(os.path.join(d, "session.json"), "w") as f:
            json.dump({"sentinelId": sid, "sessionId": os.path.basename(d),
                       "name": "hall-late", "startTime": start, "endTime": start + 1}, f)
        return d

    def test_bad_filters_are_400(self):
        good = base64.urlsafe_b64encode(b"%d,%s" % (self.base, str(uuid.uuid4()).encode()))
        self.assertEqual(self.call("GET", "/api/sessions?cursor=" + good.decode().rstrip("="))[0],
                         200)
        bad = ["from=x", "to=1.5", "from=-1", "from=10&to=9", "to=", "live=yes", "live=TRUE",
               "live=", "limit=0", "limit=1001", "limit=abc", "limit=", "limit=-3",
               "cursor=", "cursor=!!!", "cursor=" + base64.urlsafe_b64encode(b"nope").decode(),
               "cursor=" + base64.urlsafe_b64encode(b"12,not-an-id").decode(),
               "cursor=" + base64.urlsafe_b64encode(
                   b"x,%s" % str(uuid.uuid4()).encode()).decode(),
               "cursor=" + base64.b64encode(b"\xfb\xff\xfe" * 20).decode(),
               "name=" + "n" * 200]
        for q in bad:
            st, hd, body = self.call("GET", "/api/sessions?" + q)
            self.assertEqual(st, 400, (q, body))
            self.assertEqual(hd["content-type"], "application/json", q)
            self.assertIsInstance(json.loads(body)["error"], str, q)

    def test_auth(self):
        st, hd, body = self.call("GET", "/api/sessions", token=None)
        self.assertEqual((st, json.loads(body)["error"]), (401, "Missing token"))
        self.assertEqual(self.call("GET", "/api/sessions", token="wrong")[0], 401)
        st, _, body = self.call("GET", "/api/sessions", token=ST)
        self.assertEqual(st, 403, body)
        self.assertIn("error", json.loads(body))
        for token in (PT, AT, OT):
            self.assertEqual(self.call("GET", "/api/sessions?limit=1", token=token)[0], 200)


if __name__ == "__main__":
    unittest.main(verbosity=2)
