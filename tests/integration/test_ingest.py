#!/usr/bin/python3
"""Integration tests of vigil-ingest: PROTOCOL.md sections 2 to 4 against a
running vigild, with a real WebSocket client; bytes compared with what the
ring holds (read back by ringdump, a separate reader process)."""
import glob
import hashlib
import os
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from vigil import SOURCE, Vigil  # noqa: E402
from wsclient import Client, Closed  # noqa: E402

FIX = os.path.join(SOURCE, "tests", "data", "fmp4")
TOKEN = "sentinel-secret"
AUTH = """auth:
  sentinel: required
  tokens:
    - { name: s1, role: sentinel, token: "sentinel-secret" }
    - { name: p1, role: proctor, token: "proctor-secret" }
    - { name: old, role: sentinel, token: "expired-secret", expires: 2020-01-01T00:00:00Z }
"""


def read(path):
    with open(path, "rb") as f:
        return f.read()


def fixture(name):
    return read(os.path.join(FIX, name))


def sha(data):
    return hashlib.sha256(data).hexdigest()


INIT, SEG0, SEG1 = fixture("init.mp4"), fixture("seg0.m4s"), fixture("seg1.m4s")


class Ingest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.v = Vigil(extra=AUTH, limits="max_sentinels: 3, max_message_bytes: 1MiB",
                      timeouts="register: 2s, idle: 3s").start()
        cls.url = cls.v.url("ingest", "/sentinel")

    @classmethod
    def tearDownClass(cls):
        cls.v.stop()

    def client(self):
        c = Client(self.url)
        self.addCleanup(c.close)
        return c

    def registered(self, binary=True, **kw):
        c = self.client()
        ack = c.register(TOKEN, binary=binary, **kw)
        return c, ack

    def assert_refused(self, c, code, reason):
        (got, text), before = c.expect_close()
        self.assertEqual(got, code, (text, before))
        self.assertEqual(text, reason)
        rejects = [m for m in before if m["type"] == "server.registration.reject"]
        self.assertEqual([m["payload"]["reason"] for m in rejects], [reason])

    # -- registration ---------------------------------------------------------

    def test_register_ack_in_both_encodings(self):
        for binary in (True, False):
            c, ack = self.registered(binary=binary, name="Hall A / seat 14")
            self.assertRegex(ack["sentinelId"], r"^[0-9a-f-]{36}$")
            self.assertRegex(ack["sessionId"], r"^[0-9a-f-]{36}$")
            self.assertNotEqual(ack["sentinelId"], ack["sessionId"])
            self.assertEqual(ack["maxMessageBytes"], 1 << 20)
            self.assertEqual(ack["heartbeatSeconds"], 1)
            c.close()

    def test_identity_kept_and_new_session_each_time(self):
        c, first = self.registered()
        c.send("sentinel.bye", {})
        self.assertEqual(c.expect_close()[0], (1000, "Session ended by the sentinel"))
        c2, second = self.registered(sentinelId=first["sentinelId"])
        self.assertEqual(second["sentinelId"], first["sentinelId"])
        self.assertNotEqual(second["sessionId"], first["sessionId"])

    def test_refusals_with_reject_and_close_code(self):
        cases = [
            ({"version": 1}, 3001, "Missing token"),
            ({"version": 1, "token": "nope"}, 3001, "Invalid token"),
            ({"version": 1, "token": "proctor-secret"}, 3001, "Token not valid for sentinels"),
            ({"version": 1, "token": "expired-secret"}, 3001, "Token expired"),
            ({"version": 2, "token": TOKEN}, 3002, "Unsupported version 2 (this server speaks 1)"),
            ({"token": TOKEN, "sentinelId": "not-a-uuid"}, 3006,
             "sentinelId must be a UUID this server assigned"),
        ]
        for payload, code, reason in cases:
            for binary in (True, False):
                c = self.client()
                c.send("sentinel.register", payload, binary=binary)
                self.assert_refused(c, code, reason)

    def test_first_message_must_be_register(self):
        c = self.client()
        c.send("sentinel.ping", {})
        self.assert_refused(c, 3001, "The first message must be sentinel.register")

    def test_no_register_in_time_is_3003(self):
        c = self.client()
        t0 = time.monotonic()
        (code, reason), _ = c.expect_close()
        self.assertEqual((code, reason), (3003, "No sentinel.register within 2000 ms"))
        self.assertGreaterEqual(time.monotonic() - t0, 1.9)

    def test_seed_empty_register_when_auth_is_off(self):
        v = Vigil(extra="auth: { sentinel: none }\n").start()
        try:
            c = Client(v.url("ingest", "/sentinel"))
            c.send_raw('{"type":"sentinel.register","timestamp":1696969420}', binary=False)
            ack = c.expect("server.registration.ack")
            self.assertRegex(ack["sentinelId"], r"^[0-9a-f-]{36}$")
            c.close()
        finally:
            v.stop()

    def test_busy_after_max_sentinels(self):
        clients = [self.registered()[0] for _ in range(3)]
        c = self.client()
        c.send("sentinel.register", {"token": TOKEN})
        self.assert_refused(c, 3007, "Server busy")
        for x in clients:
            x.send("sentinel.bye", {})
            x.expect_close()

    def test_second_connection_replaces_the_first(self):
        w = self.v.watch()
        a, ack = self.registered()
        b = self.client()
        b.register(TOKEN, sentinelId=ack["sentinelId"])
        self.assertEqual(a.expect_close()[0], (3008, "Replaced by a newer connection"))
        ev = w.wait(lambda e: e.get("type") == "sentinel.offline" and
                    e["body"]["sessionId"] == ack["sessionId"], what="offline of replaced")
        self.assertEqual(ev["body"]["reason"], "replaced")
        b.send("sentinel.ping", {})
        self.assertIsInstance(b.expect("server.pong")["time"], int)
        w.close()

    # -- keepalive, malformed, oversize ---------------------------------------

    def test_idle_is_3003_and_pings_count_as_activity(self):
        quiet, _ = self.registered()
        pinging, _ = self.registered()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 4.5:  # past the 3 s idle limit
            pinging.ping(b"x")
            time.sleep(0.5)  # the pace of the client's pings, not synchronisation
        self.assertEqual(quiet.expect_close()[0], (3003, "Nothing received for 3000 ms"))
        pinging.send("sentinel.ping", {})
        pinging.expect("server.pong")

    def test_malformed_envelopes_close_3006(self):
        bad = [
            (b"\xc1", True),                       # never-used msgpack byte
            (b"\x93\x01\x02\x03", True),           # an array, not a map
            (b"\xdf\xff\xff\xff\xff", True),       # map announcing 2^32-1 entries
            ('{"type":', False),                   # truncated JSON
            ('{"payload":{}}', False),             # no type
            ('{"type":"x","payload":[1]}', False),  # payload not a map
            ('{"type":"sentinel.init","payload":{"data":"%%%"}}', False),  # bad base64
        ]
        for data, binary in bad:
            c = self.client()
            c.register(TOKEN)
            c.send_raw(data, binary=binary)
            (code, reason), _ = c.expect_close()
            self.assertEqual(code, 3006, (data, reason))
            self.assertTrue(reason.startswith("Malformed envelope: "), reason)

    def test_oversize_message_closes_1009(self):
        c, _ = self.registered()
        c.send_raw(b"\x00" * ((1 << 20) + 1))
        (code, reason), _ = c.expect_close()
        self.assertEqual(code, 1009)
        self.assertIn("exceeds the limit of 1048576 bytes", reason)

    def test_oversize_across_fragments_closes_1009(self):
        c, _ = self.registered()
        c.send_fragments([b"\x00" * (400 << 10)] * 3 + [b"\x00"])
        (code, reason), _ = c.expect_close()
        self.assertEqual(code, 1009, reason)

    def test_fragmented_message_within_limit_is_one_message(self):
        import msgpack
        c, _ = self.registered()
        data = msgpack.packb({"type": "sentinel.ping", "payload": {}})
        c.send_fragments([data[:3], data[3:7], data[7:]])
        c.expect("server.pong")

    # -- errors that keep the connection --------------------------------------

    def test_server_errors_keep_the_connection(self):
        c, _ = self.registered()
        cases = [
            ("sentinel.teleport", {}, 404, "sentinel.teleport"),
            ("sentinel.segment", {"sequence": 0, "data": SEG0}, 412, "sentinel.segment"),
            ("sentinel.init", {"data": b"\x00\x00\x00\x08free"}, 400, "sentinel.init"),
            ("sentinel.init", {}, 400, "sentinel.init"),
            ("sentinel.register", {"token": TOKEN}, 409, "sentinel.register"),
        ]
        for type_, payload, code, ref in cases:
            c.send(type_, payload)
            err = c.expect("server.error")
            self.assertEqual((err["code"], err["ref"]), (code, ref), err)
            self.assertTrue(err["reason"])
        c.send("sentinel.init", {"data": INIT})
        c.send("sentinel.segment", {"sequence": 5, "data": SEG0})
        for payload, code in [({"sequence": 5, "data": SEG1}, 409),
                              ({"sequence": 4, "data": SEG1}, 409),
                              ({"sequence": 6, "data": b"garbage!"}, 400),
                              ({"sequence": 6, "data": INIT}, 400),
                              ({"sequence": "6", "data": SEG1}, 400),
                              ({"sequence": 6, "data": SEG1, "keyframe": "yes"}, 400)]:
            c.send("sentinel.segment", payload)
            self.assertEqual(c.expect("server.error")["code"], code, payload)
        c.send("sentinel.segment", {"sequence": 6, "data": SEG1})
        c.send("sentinel.ping", {})
        c.expect("server.pong")  # the segment was accepted silently, then the pong

    def test_bus_control_messages_reach_the_sentinel(self):
        c, ack = self.registered()
        other, _ = self.registered()
        ans = self.v.request(cmd="send", to="ingest", type="keyframe.request",
                             body={"sentinelId": ack["sentinelId"]})
        self.assertTrue(ans["ok"], ans)
        self.assertEqual(c.expect("server.keyframe.request"), {})
        ans = self.v.request(cmd="send", to="ingest", type="fps.change",
                             body={"sentinelId": ack["sentinelId"], "framerate": 0.2})
        self.assertTrue(ans["ok"], ans)
        self.assertEqual(c.expect("server.fps.change"), {"framerate": 0.2})
        # an unknown sentinel: nothing is sent to anyone
        self.v.request(cmd="send", to="ingest", type="keyframe.request",
                       body={"sentinelId": "00000000-0000-4000-8000-000000000000"})
        for x in (c, other):
            x.send("sentinel.ping", {})
            x.expect("server.pong")

    def test_a_request_of_an_ended_session_is_not_asked_of_the_next(self):
        c, ack = self.registered()
        self.v.request(cmd="send", to="ingest", type="keyframe.request",
                       body={"sentinelId": ack["sentinelId"]})
        self.assertEqual(c.expect("server.keyframe.request"), {})
        # No join point follows: ingest would ask again two segment durations
        # (2 s) later. The session ends first; the next one, in the same slot,
        # starts with a join point of its own and is not asked.
        c.send("sentinel.bye", {})
        self.assertEqual(c.expect_close()[0][0], 1000)
        c2, _ = self.registered(sentinelId=ack["sentinelId"])
        t0 = time.monotonic()
        while time.monotonic() - t0 < 3.5:  # past the 2 s of the re-ask
            c2.send("sentinel.ping", {})
            c2.expect("server.pong")  # fails on a server.keyframe.request
            time.sleep(0.5)  # the pace of the client's pings, not synchronisation

    # -- into the ring ---------------------------------------------------------

    def test_bytes_into_the_ring_are_identical(self):
        w = self.v.watch()
        for binary in (True, False):
            c, ack = self.registered(binary=binary, name="identity")
            w.wait(lambda e: e.get("type") == "sentinel.online" and
                   e["body"]["sessionId"] == ack["sessionId"], what="online")
            c.send("sentinel.init", {"data": INIT}, binary=binary)
            c.send("sentinel.segment", {"sequence": 0, "data": SEG0}, binary=binary)
            c.send("sentinel.segment", {"sequence": 1, "data": SEG1, "startTime": 1234,
                                        "duration": 999, "keyframe": False}, binary=binary)
            c.send("sentinel.ping", {}, binary=binary)
            c.expect("server.pong")
            dump = self.v.ring_dump()
            ent = [d for d in dump if d["kind"] == "sentinel" and
                   d["sessionId"] == ack["sessionId"]]
            self.assertEqual(len(ent), 1)
            ent = ent[0]
            self.assertEqual((ent["codec"], ent["width"], ent["height"], ent["timescale"]),
                             ("avc1.64000b", 160, 120, 3000))
            self.assertEqual((ent["initSha256"], ent["initGen"], ent["online"]),
                             (sha(INIT), 1, True))
            self.assertEqual(ent["lastSequence"], 1)
            segs = [d for d in dump if d["kind"] == "segment" and
                    d["sessionId"] == ack["sessionId"]]
            self.assertEqual([(s["sequence"], s["sha256"], s["len"]) for s in segs],
                             [(0, sha(SEG0), len(SEG0)), (1, sha(SEG1), len(SEG1))])
            # derived from the moof when absent, the sentinel's word when given
            self.assertEqual((segs[0]["duration"], segs[0]["keyframe"]), (1000, True))
            self.assertLess(abs(segs[0]["startTime"] - time.time() * 1000), 60000)
            self.assertEqual((segs[1]["duration"], segs[1]["keyframe"], segs[1]["startTime"]),
                             (999, False, 1234))
            c.send("sentinel.bye", {}, binary=binary)
            c.expect_close()
            ev = w.wait(lambda e: e.get("type") == "sentinel.offline" and
                        e["body"]["sessionId"] == ack["sessionId"], what="offline")
            self.assertEqual(ev["body"]["lastSequence"], 1)
            self.assertGreaterEqual(ev["body"]["endedAt"], ev["body"]["startedAt"])
        w.close()

    def test_legacy_jpeg_frames_become_a_decodable_stream(self):
        tmp = tempfile.mkdtemp()
        self.addCleanup(subprocess.run, ["rm", "-rf", tmp])
        subprocess.run(["gst-launch-1.0", "-q", "videotestsrc", "num-buffers=12", "!",
                        "video/x-raw,width=320,height=240", "!", "jpegenc", "!",
                        "multifilesink", "location=%s/f%%02d.jpg" % tmp], check=True, timeout=60)
        frames = [read(p) for p in sorted(glob.glob(tmp + "/f*.jpg"))]
        self.assertEqual(len(frames), 12)
        c, ack = self.registered(name="legacy")
        head = len([d for d in self.v.ring_dump() if d["kind"] == "segment"])
        for i in range(0, 12, 3):  # a batch of three frames, every 0.4 s
            c.send("sentinel.frame", {"frames": [
                {"sentinelId": ack["sentinelId"], "frameId": "f%d" % j, "index": j,
                 "data": frames[j]} for j in range(i, i + 3)]}, binary=(i % 2 == 0))
            time.sleep(0.4)  # the legacy sentinel's sending pace
        dump = self.v.ring_dump(wait=head + 1, out=tmp)
        ent = [d for d in dump if d["kind"] == "sentinel" and d["sessionId"] == ack["sessionId"]]
        self.assertEqual(len(ent), 1)
        self.assertTrue(ent[0]["codec"].startswith("avc1."), ent)
        self.assertEqual((ent[0]["width"], ent[0]["height"]), (320, 240))
        segs = [d for d in dump if d["kind"] == "segment" and d["sessionId"] == ack["sessionId"]]
        self.assertGreaterEqual(len(segs), 1)
        self.assertTrue(all(s["keyframe"] for s in segs))
        with open(tmp + "/stream.mp4", "wb") as out:
            out.write(read("%s/%d-init.mp4" % (tmp, ent[0]["slot"])))
            for s in segs:
                out.write(read("%s/%d-%d.m4s" % (tmp, s["slot"], s["index"])))
        probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams",
                                "v:0", "-show_entries", "stream=codec_name,width,height,"
                                "nb_read_frames", "-of", "csv=p=0", tmp + "/stream.mp4"],
                               capture_output=True, text=True, timeout=60)
        self.assertEqual(probe.returncode, 0, probe.stderr)
        codec, width, height, frames_read = probe.stdout.strip().split(",")
        self.assertEqual((codec, width, height), ("h264", "320", "240"))
        self.assertGreaterEqual(int(frames_read), 1)
        c.send("sentinel.bye", {})
        c.expect_close()


class IngestConfig(unittest.TestCase):
    def test_reload_applies_new_tokens(self):
        v = Vigil(extra=AUTH).start()
        try:
            url = v.url("ingest", "/sentinel")
            w = v.watch()
            c = Client(url)
            c.send("sentinel.register", {"token": "fresh-secret"})
            (code, reason), _ = c.expect_close()
            self.assertEqual((code, reason), (3001, "Invalid token"))
            v.extra = AUTH.replace("sentinel-secret", "fresh-secret")
            v.write_config()
            self.assertEqual(v.ctl("reload").returncode, 0)
            ingest_pid = v.pids()["ingest"]
            ev = w.wait(lambda e: e.get("type") == "config.reloaded" and e["from"] == "ingest",
                        what="ingest's config.reloaded")
            self.assertEqual(ev["body"], {"ok": True})
            c = Client(url)
            self.assertRegex(c.register("fresh-secret")["sentinelId"], r"^[0-9a-f-]{36}$")
            c.close()
            c = Client(url)
            c.send("sentinel.register", {"token": TOKEN})
            self.assertEqual(c.expect_close()[0], (3001, "Invalid token"))
            self.assertEqual(v.pids()["ingest"], ingest_pid)  # no restart was needed
            w.close()
        finally:
            v.stop()


class IngestTls(unittest.TestCase):
    def test_wss_when_a_certificate_is_configured(self):
        v = Vigil(extra="auth: { sentinel: none }\n")
        try:
            cert, key = v.dir + "/cert.pem", v.dir + "/key.pem"
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-keyout", key, "-out", cert, "-days", "1", "-subj",
                            "/CN=127.0.0.1"], check=True, capture_output=True, timeout=60)
            v.extra += "tls: { cert: %s, key: %s }\n" % (cert, key)
            v.write_config()
            v.start()
            url = v.url("ingest", "/sentinel").replace("ws://", "wss://")
            c = Client(url, sslopt={"ca_certs": cert, "check_hostname": False})
            ack = c.register()
            self.assertRegex(ack["sentinelId"], r"^[0-9a-f-]{36}$")
            c.close()
            with self.assertRaises(Exception):  # plain ws to a TLS listener
                Client(v.url("ingest", "/sentinel"), timeout=5).register()
        finally:
            v.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
