#!/usr/bin/python3
"""Integration tests of vigil-relay: PROTOCOL.md sections 2, 3 and 5 against a
running vigild. Sentinels are the python client (the fixture segments, both
keyframes) or real vigil-sentinel processes; proctors are proctor.py. Bytes
that reach a proctor are compared with what the sentinel sent. Relay runs as
two workers (relay.workers: 2) but in Idle and Expiry, whose rules are each
worker's alone; test_workers.py tests what crosses them."""
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import websocket

sys.path.insert(0, os.path.dirname(__file__))
from proctor import Closed, Proctor  # noqa: E402
from vigil import BUILD, SOURCE, VIGILCTL, Vigil, alive  # noqa: E402
from wsclient import Client  # noqa: E402

FIX = os.path.join(SOURCE, "tests", "data", "fmp4")
SENTINEL = os.path.join(BUILD, "deploy", "vigil-sentinel")
STOKEN, PTOKEN = "sentinel-secret", "proctor-secret"
AUTH = """auth:
  sentinel: required
  tokens:
    - { name: s1, role: sentinel, token: "sentinel-secret" }
    - { name: p1, role: proctor, token: "proctor-secret" }
    - { name: a1, role: archivist, token: "archivist-secret" }
    - { name: old, role: proctor, token: "expired-secret", expires: 2020-01-01T00:00:00Z }
"""


def fixture(name):
    with open(os.path.join(FIX, name), "rb") as f:
        return f.read()


INIT, SEG0, SEG1 = fixture("init.mp4"), fixture("seg0.m4s"), fixture("seg1.m4s")
SEGS = (SEG0, SEG1)
DURATION = 100


def kill_relay(v):
    """SIGKILL to every relay worker (the proctors' is one of them): {name: pid}."""
    pids = {w["name"]: w["pid"] for w in v.workers()}
    for pid in pids.values():
        os.kill(pid, signal.SIGKILL)
    return pids


class Base(unittest.TestCase):
    def proctor(self, **kw):
        p = Proctor(self.purl, **kw)
        self.addCleanup(p.close)
        return p

    def registered_proctor(self, **kw):
        p = self.proctor(**kw)
        ack = p.register(PTOKEN, name="desk")
        self.assertRegex(ack["proctorId"], r"^[0-9a-f-]{36}$")
        return p

    def sentinel(self, name="cam", **kw):
        s = Client(self.surl)
        self.addCleanup(s.close)
        ack = s.register(STOKEN, name=name, **kw)
        return s, ack

    def sync(self, s):
        """Everything the sentinel sent before is in the ring once pong is back."""
        s.send("sentinel.ping", {})
        while s.recv()["type"] != "server.pong":
            pass

    def stream(self, s, first, n):
        # 100 ms each: a burst of them stays under proctor_queue_seconds
        for seq in range(first, first + n):
            s.send("sentinel.segment", {"sequence": seq, "data": SEGS[seq % 2],
                                        "duration": DURATION})
        self.sync(s)

    def media(self, p, sid, timeout=10):
        """The next server.init or server.segment of sentinel sid."""
        msg, _ = p.wait(lambda m: m["type"] in ("server.init", "server.segment", "server.skip")
                        and m["payload"]["sentinelId"] == sid, timeout, "media of " + sid)
        if msg["type"] != "server.skip":
            self.assertTrue(msg["_binary"], "media must come as a binary frame")
        return msg["type"], msg["payload"]

    def assert_init(self, p, ack):
        t, m = self.media(p, ack["sentinelId"])
        self.assertEqual(t, "server.init", m)
        self.assertEqual(m["data"], INIT)
        self.assertEqual(m["sessionId"], ack["sessionId"])
        self.assertTrue(m["codec"].startswith("avc1."), m["codec"])
        self.assertGreater(m["width"], 0)
        self.assertGreater(m["height"], 0)

    def assert_segments(self, p, ack, seqs):
        for seq in seqs:
            t, m = self.media(p, ack["sentinelId"])
            self.assertEqual(t, "server.segment", m.get("sequence"))
            self.assertEqual(m["sequence"], seq)
            self.assertEqual(m["data"], SEGS[seq % 2])
            self.assertEqual(m["sessionId"], ack["sessionId"])
            self.assertIs(m["keyframe"], True)
            self.assertEqual(m["duration"], DURATION)


class Relay(Base):
    @classmethod
    def setUpClass(cls):
        cls.v = Vigil(extra=AUTH, limits="max_message_bytes: 2MiB, proctor_queue_seconds: 1",
                      timeouts="register: 2s", workers=2).start()
        cls.purl = cls.v.url("relay", "/proctor")
        cls.surl = cls.v.url("ingest", "/sentinel")

    @classmethod
    def tearDownClass(cls):
        cls.v.stop()

    # -- registration ---------------------------------------------------------

    def assert_refused(self, p, code, reason):
        (got, text), before = p.expect_close()
        self.assertEqual((got, text), (code, reason), before)
        rejects = [m for m in before if m["type"] == "server.registration.reject"]
        self.assertEqual([m["payload"]["reason"] for m in rejects], [reason])

    def test_register_ack_in_both_encodings(self):
        for binary in (False, True):
            p = self.proctor()
            ack = p.register(PTOKEN, binary=binary, version=1, name="Desk 1")
            self.assertRegex(ack["proctorId"], r"^[0-9a-f-]{36}$")
            self.assertEqual(ack["role"], "proctor")
            p.close()

    def test_register_ack_names_the_role(self):
        # The web app offers exports only to archivists (issue 12, item 9).
        p = self.proctor()
        self.assertEqual(p.register("archivist-secret")["role"], "archivist")

    def test_refusals_with_reject_and_close_code(self):
        cases = [
            ({}, 3001, "Missing token"),
            ({"token": "nope"}, 3001, "Invalid token"),
            ({"token": STOKEN}, 3001, "Token not valid for proctors"),
            ({"token": "expired-secret"}, 3001, "Token expired"),
            ({"token": PTOKEN, "version": 2}, 3002,
             "Unsupported version 2 (this server speaks 1)"),
        ]
        for payload, code, reason in cases:
            for binary in (False, True):
                p = self.proctor()
                p.send("proctor.register", payload, binary=binary)
                self.assert_refused(p, code, reason)

    def test_first_message_must_be_register(self):
        p = self.proctor()
        p.send("proctor.list", {})
        self.assert_refused(p, 3001, "The first message must be proctor.register")

    def test_no_register_in_time_is_3003(self):
        p = self.proctor()
        (code, reason), _ = p.expect_close()
        self.assertEqual((code, reason), (3003, "No proctor.register within 2000 ms"))

    def test_malformed_and_oversize(self):
        p = self.registered_proctor()
        p.ws.send("{not json")
        (code, reason), _ = p.expect_close()
        self.assertEqual(code, 3006)
        self.assertTrue(reason.startswith("Malformed envelope"), reason)
        p = self.registered_proctor()
        p.ws.send_binary(b"\0" * (2 * 1024 * 1024 + 1))
        (code, _), _ = p.expect_close()
        self.assertEqual(code, 1009)

    def test_unknown_type_is_an_error_and_keeps_the_connection(self):
        p = self.registered_proctor()
        p.send("proctor.dance", {})
        err = p.expect("server.error")
        self.assertEqual((err["code"], err["ref"]), (404, "proctor.dance"))
        p.send("proctor.ping", {})
        self.assertIn("time", p.expect("server.pong"))

    # -- list and events --------------------------------------------------------

    def test_list_and_online_offline_events(self):
        p = self.registered_proctor()
        s, ack = self.sentinel(name="listed")
        on = p.wait(lambda m: m["type"] == "server.sentinel.online" and
                    m["payload"]["sentinel"]["sentinelId"] == ack["sentinelId"])[0]["payload"]
        self.assertEqual(on["sentinel"]["name"], "listed")
        self.assertIs(on["sentinel"]["online"], True)
        s.send("sentinel.init", {"data": INIT})
        self.stream(s, 0, 2)
        p.send("proctor.list")
        lst = p.expect("server.sentinels", skip=("server.status", "server.sentinel.online",
                                                 "server.sentinel.offline"))
        mine = [x for x in lst["sentinels"] if x["sentinelId"] == ack["sentinelId"]]
        self.assertEqual(len(mine), 1)
        e = mine[0]
        self.assertEqual(set(e), {"sentinelId", "name", "sessionId", "online", "codec", "width",
                                  "height", "startedAt", "lastSequence", "bitrate"})
        self.assertEqual((e["name"], e["sessionId"], e["online"], e["lastSequence"]),
                         ("listed", ack["sessionId"], True, 1))
        self.assertTrue(e["codec"].startswith("avc1."))
        self.assertGreater(e["startedAt"], 1.6e12)
        self.assertGreater(e["bitrate"], 0)
        s.send("sentinel.bye", {})
        off = p.wait(lambda m: m["type"] == "server.sentinel.offline" and
                     m["payload"]["sentinelId"] == ack["sentinelId"])[0]["payload"]
        self.assertEqual(off["sessionId"], ack["sessionId"])
        self.assertIsInstance(off["reason"], str)

    def test_status_every_second(self):
        p = self.registered_proctor()
        st = p.expect("server.status", timeout=5)
        self.assertIn(st["state"], ("running", "degraded"))
        self.assertEqual(set(st["stages"]), {"ingest", "relay", "archive", "httpd"})
        self.assertEqual(st["stages"]["relay"], "running")
        self.assertGreaterEqual(st["proctors"], 1)
        p.expect("server.status", timeout=5)

    # -- subscriptions ----------------------------------------------------------

    def test_subscribe_latest_and_oldest(self):
        s, ack = self.sentinel()
        s.send("sentinel.init", {"data": INIT})
        self.stream(s, 0, 3)
        latest, oldest = self.registered_proctor(), self.registered_proctor()
        latest.send("proctor.subscribe", {"sentinelIds": [ack["sentinelId"]]})
        oldest.send("proctor.subscribe", {"sentinelIds": [ack["sentinelId"]],
                                          "startFrom": "oldest"})
        self.assert_init(latest, ack)
        self.assert_segments(latest, ack, [2])
        self.assert_init(oldest, ack)
        self.assert_segments(oldest, ack, [0, 1, 2])
        self.stream(s, 3, 4)
        self.assert_segments(latest, ack, [3, 4, 5, 6])
        self.assert_segments(oldest, ack, [3, 4, 5, 6])
        latest.send("proctor.unsubscribe", {"sentinelIds": [ack["sentinelId"]]})
        latest.send("proctor.ping", {})
        latest.expect("server.pong")
        self.stream(s, 7, 1)
        self.assert_segments(oldest, ack, [7])
        latest.send("proctor.ping", {})
        msg, _ = latest.wait(lambda m: m["type"] in ("server.pong", "server.segment"))
        self.assertEqual(msg["type"], "server.pong")

    def test_subscribe_without_join_point_asks_for_a_keyframe(self):
        s, ack = self.sentinel()
        s.send("sentinel.init", {"data": INIT})
        self.sync(s)
        p = self.registered_proctor()
        p.send("proctor.subscribe", {"sentinelIds": [ack["sentinelId"]]})
        self.assert_init(p, ack)
        self.assertEqual(s.expect("server.keyframe.request"), {})
        self.stream(s, 0, 1)
        self.assert_segments(p, ack, [0])

    def test_keyframe_request_is_repeated_until_a_join_point_comes(self):
        s, ack = self.sentinel()
        s.send("sentinel.init", {"data": INIT})
        self.sync(s)
        p = self.registered_proctor()
        p.send("proctor.subscribe", {"sentinelIds": [ack["sentinelId"]]})
        self.assert_init(p, ack)
        self.assertEqual(s.expect("server.keyframe.request"), {})
        # The sentinel ignores it: a segment it calls no join point (100 ms long).
        s.send("sentinel.segment", {"sequence": 0, "data": SEG0, "duration": DURATION,
                                    "keyframe": False})
        t0 = time.monotonic()
        self.assertEqual(s.expect("server.keyframe.request", timeout=5), {})
        # asked again after two segment durations, throttled to one a second
        self.assertGreaterEqual(time.monotonic() - t0, 0.5)
        self.stream(s, 1, 1)
        self.assert_segments(p, ack, [1])

    def test_subscribe_before_online(self):
        s, ack = self.sentinel()
        s.send("sentinel.bye", {})
        s.expect_close()
        p = self.registered_proctor()
        p.send("proctor.subscribe", {"sentinelIds": [ack["sentinelId"]]})
        p.send("proctor.ping", {})
        # the first sentinel's offline event may come before the pong
        p.wait(lambda m: m["type"] == "server.pong", what="server.pong")
        s2, ack2 = self.sentinel(sentinelId=ack["sentinelId"])
        s2.send("sentinel.init", {"data": INIT})
        self.stream(s2, 0, 2)
        self.assert_init(p, ack2)
        self.assert_segments(p, ack2, [0, 1])

    def test_new_init_mid_stream_gets_a_fresh_init(self):
        s, ack = self.sentinel()
        s.send("sentinel.init", {"data": INIT})
        self.stream(s, 0, 1)
        p = self.registered_proctor()
        p.send("proctor.subscribe", {"sentinelIds": [ack["sentinelId"]]})
        self.assert_init(p, ack)
        self.assert_segments(p, ack, [0])
        self.stream(s, 1, 1)
        self.assert_segments(p, ack, [1])
        s.send("sentinel.init", {"data": INIT})
        self.stream(s, 2, 1)
        self.assert_init(p, ack)
        self.assert_segments(p, ack, [2])

    def test_bad_subscribe_is_an_error(self):
        p = self.registered_proctor()
        p.send("proctor.subscribe", {"sentinelIds": ["nope"]})
        self.assertEqual(p.expect("server.error")["code"], 400)
        p.send("proctor.subscribe", {"sentinelIds": [], "startFrom": "middle"})
        self.assertEqual(p.expect("server.error")["code"], 400)

    # -- control requests -------------------------------------------------------

    def test_keyframe_and_fps_requests_reach_the_sentinel(self):
        s, ack = self.sentinel()
        p = self.registered_proctor()
        p.send("proctor.keyframe.request", {"sentinelId": ack["sentinelId"]})
        self.assertEqual(s.expect("server.keyframe.request"), {})
        p.send("proctor.fps.change", {"sentinelId": ack["sentinelId"], "framerate": 0.5})
        self.assertEqual(s.expect("server.fps.change"), {"framerate": 0.5})
        # merged: three more within the second make one more, a second later
        t0 = time.monotonic()
        for _ in range(3):
            p.send("proctor.keyframe.request", {"sentinelId": ack["sentinelId"]})
        self.assertEqual(s.expect("server.keyframe.request"), {})
        self.assertGreater(time.monotonic() - t0, 0.5)
        self.sync(s)
        p.send("proctor.keyframe.request", {"sentinelId": "00000000-0000-4000-8000-000000000000"})
        # the sentinel's online event may come first, as the bus carries it
        err, _ = p.wait(lambda m: m["type"] == "server.error", 10, "server.error")
        self.assertEqual(err["payload"]["code"], 404)

    # -- slow proctors ----------------------------------------------------------

    def test_slow_proctor_is_skipped_and_does_not_delay_the_other(self):
        tmp = tempfile.mkdtemp(dir=self.v.dir)
        fast = self.registered_proctor()
        slow = self.registered_proctor(rcvbuf=4096)
        sen = subprocess.Popen([SENTINEL, "--url", self.surl, "--token", STOKEN, "--name",
                                "heavy", "--state", tmp + "/id", "--size", "640x360",
                                "--bitrate", "6000", "--fps", "30", "--duration", "14"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(sen.kill)
        on = fast.wait(lambda m: m["type"] == "server.sentinel.online" and
                       m["payload"]["sentinel"]["name"] == "heavy", 20)[0]
        sid = on["payload"]["sentinel"]["sentinelId"]
        for p in (fast, slow):
            p.send("proctor.subscribe", {"sentinelIds": [sid]})
        seqs = []
        msg, _ = fast.wait(lambda m: m["type"] == "server.init", 20)
        while True:
            msg, _ = fast.wait(lambda m: m["type"] in ("server.segment", "server.skip",
                                                        "server.sentinel.offline"), 30)
            self.assertNotEqual(msg["type"], "server.skip", msg)
            if msg["type"] == "server.sentinel.offline":
                break
            seqs.append(msg["payload"]["sequence"])
        self.assertEqual(sen.wait(30), 0)
        self.assertGreaterEqual(len(seqs), 8)
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))))
        skip, _ = slow.wait(lambda m: m["type"] == "server.skip", 60, "server.skip")
        self.assertEqual(skip["payload"]["sentinelId"], sid)
        self.assertLessEqual(skip["payload"]["fromSequence"], skip["payload"]["toSequence"])
        # Bounded memory: the slow proctor's backlog is dropped, not kept. Relay's
        # private RSS stays under the issue's 64 MiB plus the queues' bound
        # ((proctor_queue_seconds + 1) x max_message_bytes per subscription).
        for relay in self.v.workers():
            with open("/proc/%d/maps" % relay["pid"]) as f:
                sanitized = "libasan" in f.read()  # ASan's shadow and quarantine are not ours
            if not sanitized:
                self.assertLess(relay["heartbeat"]["memBytes"], (64 + 2 * 2 * 2) << 20)


class Restart(Base):
    @classmethod
    def setUpClass(cls):
        cls.v = Vigil(extra=AUTH, limits="max_proctors: 2, max_message_bytes: 2MiB",
                      workers=2).start()
        cls.purl = cls.v.url("relay", "/proctor")
        cls.surl = cls.v.url("ingest", "/sentinel")

    @classmethod
    def tearDownClass(cls):
        cls.v.stop()

    def test_busy_after_max_proctors(self):
        a, b = self.registered_proctor(), self.registered_proctor()
        # The limit is the server's: each worker knows the other's proctors
        # from vigild, which says them as soon as they change.
        deadline = time.monotonic() + 10
        while sum((s.get("heartbeat") or {}).get("connections", 0)
                  for s in self.v.workers()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        c = self.proctor()
        c.send("proctor.register", {"token": PTOKEN})
        (code, reason), before = c.expect_close()
        self.assertEqual((code, reason), (3007, "Server busy"))
        a.send("proctor.bye", {})
        self.assertEqual(a.expect_close()[0], (1000, "Session ended by the proctor"))
        b.close()

    def test_relay_killed_sentinels_stay_proctor_resubscribes(self):
        s, ack = self.sentinel()
        s.send("sentinel.init", {"data": INIT})
        self.stream(s, 0, 1)
        p = self.registered_proctor()
        p.send("proctor.subscribe", {"sentinelIds": [ack["sentinelId"]]})
        self.assert_init(p, ack)
        self.assert_segments(p, ack, [0])
        w = self.v.watch()
        self.addCleanup(w.close)
        pids = kill_relay(self.v)
        self.stream(s, 1, 2)  # the sentinel keeps streaming and gets its pong
        with self.assertRaises((Closed, websocket.WebSocketException, OSError)):
            while True:
                p.recv(10)
        back = set()
        w.wait(lambda e: e.get("stage") in pids and e.get("state") == "running" and
               e.get("pid") != pids[e["stage"]] and (back.add(e["stage"]) or back == set(pids)),
               timeout=30, what="every relay worker running again")
        for pid in pids.values():
            self.assertFalse(alive(pid))
        self.stream(s, 3, 1)
        p2 = self.registered_proctor()
        p2.send("proctor.subscribe", {"sentinelIds": [ack["sentinelId"]]})
        self.assert_init(p2, ack)
        self.assert_segments(p2, ack, [3])
        self.stream(s, 4, 1)
        self.assert_segments(p2, ack, [4])


    def test_relay_killed_while_ten_sentinels_stream(self):
        """Invariant 2 with real vigil-sentinel processes: killing relay disconnects
        no sentinel, and a proctor that connects again gets every stream back."""
        w = self.v.watch()
        self.addCleanup(w.close)
        tmp = tempfile.mkdtemp(dir=self.v.dir)
        proc = subprocess.Popen([SENTINEL, "--url", self.surl, "--token", STOKEN, "--count", "10",
                                 "--name", "hall", "--size", "160x120", "--bitrate", "100",
                                 "--duration", "90", "--state", tmp + "/id"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(proc.wait, 30)
        self.addCleanup(proc.terminate)
        ids = set()
        while len(ids) < 10:
            ev = w.wait(lambda e: e.get("type") == "sentinel.online" and
                        e["body"]["name"].startswith("hall-"), timeout=60, what="online")
            ids.add(ev["body"]["sentinelId"])
        offline = []

        def note_offline(e):
            if e.get("type") == "sentinel.offline" and e["body"]["sentinelId"] in ids:
                offline.append(e)

        def every_stream(p):
            p.send("proctor.subscribe", {"sentinelIds": sorted(ids)})
            got = set()
            while got != ids:
                msg, _ = p.wait(lambda m: m["type"] == "server.segment", 30, "segments")
                got.add(msg["payload"]["sentinelId"])

        p = self.registered_proctor()
        every_stream(p)
        pids = kill_relay(self.v)
        back = set()
        w.wait(lambda e: note_offline(e) or (e.get("stage") in pids and
                                            e.get("state") == "running" and
                                            e.get("pid") != pids[e["stage"]] and
                                            (back.add(e["stage"]) or back == set(pids))),
               timeout=30, what="relay running again")
        p.close()
        every_stream(self.registered_proctor())
        # Every event up to now has passed once ingest's reload answer comes back.
        self.assertEqual(self.v.ctl("reload").returncode, 0)
        w.wait(lambda e: note_offline(e) or (e.get("type") == "config.reloaded" and
                                            e["from"] == "ingest"), what="ingest's reload")
        self.assertEqual(offline, [], "a sentinel went offline when relay was killed")
        self.assertIsNone(proc.poll(), "vigil-sentinel ended")


class Idle(Base):
    @classmethod
    def setUpClass(cls):
        cls.v = Vigil(extra=AUTH, timeouts="idle: 2s").start()
        cls.purl = cls.v.url("relay", "/proctor")

    @classmethod
    def tearDownClass(cls):
        cls.v.stop()

    def test_idle_is_3003_and_pings_count_as_activity(self):
        keep, lapse = self.registered_proctor(), self.registered_proctor()
        t0 = time.monotonic()
        while True:
            keep.ws.ping()  # a WebSocket ping every half second keeps keep alive
            try:
                lapse.recv(0.5)
            except websocket.WebSocketTimeoutException:
                continue
            except Closed as c:
                self.assertEqual((c.code, c.reason), (3003, "Nothing received for 2000 ms"))
                break
        self.assertGreaterEqual(time.monotonic() - t0, 1.5)
        keep.send("proctor.ping", {})
        keep.expect("server.pong")


class Expiry(Base):
    """A token that expires about a minute after the start: warned at once."""

    @classmethod
    def setUpClass(cls):
        # Within the 60 s of warning from the start, so the test waits for the
        # expiry only (a minute was a third of this file's run time).
        cls.expires = int(time.time()) + 12
        soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(cls.expires))
        cls.v = Vigil(extra=AUTH + '    - { name: soon, role: proctor, token: "soon-secret", '
                      'expires: %s }\n' % soon, timeouts="idle: 300s").start()
        cls.purl = cls.v.url("relay", "/proctor")
        cls.surl = cls.v.url("ingest", "/sentinel")

    @classmethod
    def tearDownClass(cls):
        cls.v.stop()

    def test_expiring_token_refresh_or_3004(self):
        keep, lapse = self.proctor(), self.proctor()
        for p in (keep, lapse):
            p.register("soon-secret")
            ev = p.expect("server.token.expiring", timeout=20)
            self.assertEqual(ev["expiresAt"], self.expires * 1000)
        keep.send("proctor.auth.refresh", {"token": "nope"})
        err = keep.expect("server.error")
        self.assertEqual((err["code"], err["ref"]), (401, "proctor.auth.refresh"))
        keep.send("proctor.auth.refresh", {"token": PTOKEN})
        (code, reason), _ = lapse.expect_close(timeout=30)
        self.assertEqual((code, reason), (3004, "Token expired"))
        keep.send("proctor.ping", {})
        keep.expect("server.pong")


class Revocation(Base):
    """token.revoke on the bus (the operator console's operator.token.revoke)."""

    @classmethod
    def setUpClass(cls):
        cls.v = Vigil(extra=AUTH + '    - { name: p2, role: proctor, token: "revoke-me" }\n'
                      '    - { name: s2, role: sentinel, token: "revoke-cam" }\n',
                      workers=2).start()
        cls.purl = cls.v.url("relay", "/proctor")
        cls.surl = cls.v.url("ingest", "/sentinel")

    @classmethod
    def tearDownClass(cls):
        cls.v.stop()

    def test_revoked_token_closes_its_connections_with_3004_only(self):
        gone, stays = self.proctor(), self.proctor()
        gone.register("revoke-me")
        stays.register(PTOKEN)
        cam = Client(self.surl)
        self.addCleanup(cam.close)
        cam.register("revoke-cam")
        other, _ = self.sentinel()
        # the operator's way: vigilctl revoke, the token on stdin
        for token in ("revoke-me", "revoke-cam"):
            res = subprocess.run([VIGILCTL, "--config", self.v.config, "revoke"],
                                 input=token + "\n", text=True, capture_output=True, timeout=30)
            self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(gone.expect_close()[0], (3004, "Token revoked"))
        self.assertEqual(cam.expect_close()[0], (3004, "Token revoked"))
        # the others go on; the revoked token is refused from now on
        stays.send("proctor.ping", {})
        stays.wait(lambda m: m["type"] == "server.pong", what="server.pong")  # after events
        other.send("sentinel.ping", {})
        other.expect("server.pong")
        again = self.proctor()
        again.send("proctor.register", {"token": "revoke-me"})
        rej = again.expect("server.registration.reject")
        self.assertEqual(rej["reason"], "Token revoked")
        self.assertEqual(again.expect_close()[0], (3001, "Token revoked"))


class Overrun(Base):
    """The relay stopped (SIGSTOP) while the ring wraps: its feed is overrun."""

    @classmethod
    def setUpClass(cls):
        cls.v = Vigil(extra=AUTH, heartbeat="60s", workers=2).start()
        cls.purl = cls.v.url("relay", "/proctor")
        cls.surl = cls.v.url("ingest", "/sentinel")

    @classmethod
    def tearDownClass(cls):
        cls.v.stop()

    def test_overrun_is_a_skip_then_the_stream_goes_on(self):
        s, ack = self.sentinel()
        s.send("sentinel.init", {"data": INIT})
        self.stream(s, 0, 1)
        p = self.registered_proctor()
        p.send("proctor.subscribe", {"sentinelIds": [ack["sentinelId"]]})
        self.assert_init(p, ack)
        self.assert_segments(p, ack, [0])
        pids = [w["pid"] for w in self.v.workers()]  # the proctor's is one of them
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            self.stream(s, 1, 1500)  # more than the ring's 1024 descriptors
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        t, skip = self.media(p, ack["sentinelId"], timeout=20)
        self.assertEqual(t, "server.skip", skip)
        self.assertEqual(skip["fromSequence"], 1)
        self.assertGreater(skip["toSequence"], 400, skip)
        expect = skip["toSequence"] + 1
        while expect <= 1500:
            t, m = self.media(p, ack["sentinelId"], timeout=20)
            if t == "server.skip":  # a queue over proctor_queue_seconds, also fine
                self.assertEqual(m["fromSequence"], expect)
                expect = m["toSequence"] + 1
            elif t == "server.segment":
                self.assertEqual(m["sequence"], expect)
                self.assertEqual(m["data"], SEGS[expect % 2])
                expect += 1


class RelayTls(unittest.TestCase):
    def test_wss_when_a_certificate_is_configured(self):
        v = Vigil(extra=AUTH)
        try:
            cert, key = v.dir + "/cert.pem", v.dir + "/key.pem"
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-keyout", key, "-out", cert, "-days", "1", "-subj",
                            "/CN=127.0.0.1"], check=True, capture_output=True, timeout=60)
            v.extra += "tls: { cert: %s, key: %s }\n" % (cert, key)
            v.write_config()
            v.start()
            url = v.url("relay", "/proctor").replace("ws://", "wss://")
            p = Proctor(url, sslopt={"ca_certs": cert, "check_hostname": False})
            self.assertRegex(p.register(PTOKEN)["proctorId"], r"^[0-9a-f-]{36}$")
            p.close()
            with self.assertRaises(Exception):  # plain ws to a TLS listener
                Proctor(v.url("relay", "/proctor"), timeout=5).register(PTOKEN)
        finally:
            v.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
