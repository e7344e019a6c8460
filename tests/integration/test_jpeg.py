#!/usr/bin/python3
"""Integration tests of legacy JPEG sentinels (sentinel.frame, seed 000;
issue 14, item 6) against a running vigild: an hour of batches (a batch a
second by the envelope's timestamps, two frames each) sent as fast as ingest
takes them becomes segments of one second with frames of 500 ms, in the ring,
over HTTP and in ffprobe's eyes; bad batches get their server.error and the
stream keeps its pace."""
import json
import http.client
import os
import subprocess
import sys
import tempfile
import time
import unittest

import msgpack

sys.path.insert(0, os.path.dirname(__file__))
from test_httpd import frames_of  # noqa: E402
from vigil import Vigil  # noqa: E402
from wsclient import Client  # noqa: E402

# An hour at 2 fps. VIGIL_JPEG_SECONDS shortens it by hand (the test's figures
# hold for any length).
SECONDS = int(os.environ.get("VIGIL_JPEG_SECONDS", "3600"))
PT = "proctor-secret"
AUTH = """auth:
  sentinel: none
  tokens:
    - { name: p1, role: proctor, token: "proctor-secret" }
"""


def small_jpegs(tmp, n=2):
    """n frames of a moving ball, 160x120, a couple of KiB each."""
    subprocess.run(["gst-launch-1.0", "-q", "videotestsrc", "pattern=ball",
                    "num-buffers=%d" % n, "!", "video/x-raw,width=160,height=120", "!",
                    "jpegenc", "!", "multifilesink", "location=%s/f%%02d.jpg" % tmp],
                   check=True, timeout=60)
    out = []
    for i in range(n):
        with open("%s/f%02d.jpg" % (tmp, i), "rb") as f:
            out.append(f.read())
    return out


def batch(sentinel_id, timestamp, first_index, frames, indexes=None):
    """One sentinel.frame envelope as MessagePack; timestamp None: none sent."""
    env = {"type": "sentinel.frame", "payload": {"frames": [
        {"sentinelId": sentinel_id, "frameId": "f%d" % i,
         "index": i if indexes is None else indexes[k], "data": data}
        for k, (i, data) in enumerate(enumerate(frames, first_index))]}}
    if timestamp is not None:
        env["timestamp"] = timestamp
    return msgpack.packb(env, use_bin_type=True)


class Legacy(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.v = Vigil(extra=AUTH)
        # the whole hour stays in the ring (a few KiB a segment, 16 KiB of
        # ring per descriptor): the dump sees every segment
        cls.v.ring_size = "128MiB"
        cls.v.write_config()
        cls.v.start()
        cls.tmp = tempfile.mkdtemp(dir=cls.v.dir)
        cls.jpegs = small_jpegs(cls.tmp)
        cls.host, port = cls.v.stage("httpd")["listen"].rsplit(":", 1)
        cls.port = int(port)

    @classmethod
    def tearDownClass(cls):
        cls.v.stop()

    def register(self, timestamp):
        c = Client(self.v.url("ingest", "/sentinel"))
        self.addCleanup(c.close)
        c.send_raw(msgpack.packb({"type": "sentinel.register", "timestamp": timestamp,
                                  "payload": {"version": 1}}, use_bin_type=True))
        return c, c.expect("server.registration.ack")

    def end(self, c, w, ack):
        """bye, then the offline event: ingest has flushed the encoder by then."""
        c.send("sentinel.bye", {})
        self.assertEqual(c.expect_close(timeout=60)[0], (1000, "Session ended by the sentinel"))
        ev = w.wait(lambda e: e.get("type") == "sentinel.offline" and
                    e["body"]["sessionId"] == ack["sessionId"], timeout=60, what="offline")
        return ev["body"]["lastSequence"]

    def segments(self, ack, last, out=None):
        """The session's entry and segments in the ring, once the last is in."""
        dump = self.v.ring_dump(out=out)
        ent = [d for d in dump if d["kind"] == "sentinel" and d["sessionId"] == ack["sessionId"]]
        segs = [d for d in dump if d["kind"] == "segment" and d["sessionId"] == ack["sessionId"]]
        self.assertEqual(len(ent), 1)
        self.assertEqual(segs[-1]["sequence"], last)
        return ent[0], segs

    def http_bytes(self, path):
        c = http.client.HTTPConnection(self.host, self.port, timeout=30)
        c.request("GET", path, headers={"Authorization": "Bearer " + PT})
        r = c.getresponse()
        body = r.read()
        c.close()
        self.assertEqual(r.status, 200, body[:200])
        return body

    def http_json(self, path):
        c = http.client.HTTPConnection(self.host, self.port, timeout=30)
        c.request("GET", path, headers={"Authorization": "Bearer " + PT})
        r = c.getresponse()
        body = r.read()
        c.close()
        self.assertEqual(r.status, 200, body[:300])
        return json.loads(body)

    def assert_pace(self, segs, t0_ms, slack=0):
        """Segments of a second, each a join point, one after the other
        (within slack ms: startTime and duration are rounded apart)."""
        self.assertEqual([s["sequence"] for s in segs], list(range(len(segs))))
        self.assertTrue(all(s["keyframe"] for s in segs))
        off = [s for s in segs if abs(s["duration"] - 1000) > 100]
        self.assertEqual(off, [])
        self.assertEqual(segs[0]["startTime"], t0_ms)
        for a, b in zip(segs, segs[1:]):
            self.assertLessEqual(abs(b["startTime"] - a["startTime"] - a["duration"]), slack,
                                 (a, b))

    def test_an_hour_at_2_fps(self):
        t0 = int(time.time()) - SECONDS  # the hour just past, as a backlog replayed
        w = self.v.watch()
        c, ack = self.register(t0)
        started = time.monotonic()
        for k in range(SECONDS):
            # frames 2k and 2k+1, sent at the end of second k
            c.send_raw(batch(ack["sentinelId"], t0 + k + 1, 2 * k, self.jpegs))
        last = self.end(c, w, ack)
        sent_s = time.monotonic() - started
        w.close()
        out = tempfile.mkdtemp(dir=self.v.dir)
        ent, segs = self.segments(ack, last, out)
        self.assertTrue(ent["codec"].startswith("avc1."), ent)
        self.assertEqual((ent["width"], ent["height"], ent["timescale"]), (160, 120, 90000))
        # 7200 frames of 500 ms: 3600 segments of one second
        self.assertLessEqual(abs(len(segs) - SECONDS), 2, len(segs))
        self.assert_pace(segs, t0 * 1000)
        durations = sorted({s["duration"] for s in segs})
        # the same over HTTP (served from memory, or from disk once archived)
        listing = self.http_json("/api/sentinels/%s/sessions/%s/segments" %
                                 (ack["sentinelId"], ack["sessionId"]))["segments"]
        self.assertEqual([(g["sequence"], g["startTime"], g["duration"]) for g in listing],
                         [(s["sequence"], s["startTime"], s["duration"]) for s in segs])
        # ffprobe on the stream as an export has it: every frame 500 ms
        path = os.path.join(out, "all.mp4")
        with open(path, "wb") as f:
            with open("%s/%d-init.mp4" % (out, ent["slot"]), "rb") as g:
                f.write(g.read())
            for s in segs:
                with open("%s/%d-%d.m4s" % (out, s["slot"], s["index"]), "rb") as g:
                    f.write(g.read())
        probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0",
                                "-show_entries", "packet=pts_time,flags:format=duration",
                                "-of", "json", path],
                               capture_output=True, text=True, timeout=120)
        self.assertEqual(probe.returncode, 0, probe.stderr[-2000:])
        probed = json.loads(probe.stdout)
        packets = probed["packets"]
        self.assertEqual(len(packets), 2 * SECONDS)
        pts = [float(p["pts_time"]) for p in packets]
        self.assertEqual(pts[0], 0.0)
        self.assertEqual([round(b - a, 3) for a, b in zip(pts, pts[1:])],
                         [0.5] * (len(pts) - 1))
        # the last frame too: the file lasts its 7200 frames of 500 ms
        self.assertEqual(float(probed["format"]["duration"]), float(SECONDS))
        keys = [i for i, p in enumerate(packets) if p["flags"].startswith("K")]
        self.assertEqual(keys, list(range(0, 2 * SECONDS, 2)))
        sys.stderr.write("\n  %d batches sent in %.1f s; %d segments, durations %s ms\n" % (
            SECONDS, sent_s, len(segs), durations))

    def ingest_stats(self, until=None):
        """ingest's counters from its heartbeat (once a second), once
        until(stats) holds."""
        deadline = time.monotonic() + 15
        while True:
            stats = (self.v.stage("ingest").get("heartbeat") or {}).get("stats") or {}
            if until is None or (stats and until(stats)):
                return stats
            if time.monotonic() > deadline:
                raise AssertionError("ingest's heartbeat never showed it: %s" % stats)
            time.sleep(0.1)  # the heartbeat's pace; vigild has no event for it

    def test_backpressure_loses_nothing(self):
        """Batches of 500 frames (2 ms each) overrun the encoder's backlog
        bound at once: the connection is paused and resumed, every frame is
        encoded, no segment is dropped."""
        before = self.ingest_stats(lambda s: "jpegPauses" in s)
        t0 = int(time.time()) - 100
        w = self.v.watch()
        c, ack = self.register(t0)
        frames = (self.jpegs * 250)[:500]
        for k in range(12):
            c.send_raw(batch(ack["sentinelId"], t0 + k + 1, 500 * k, frames))
        last = self.end(c, w, ack)
        w.close()
        _, segs = self.segments(ack, last)
        self.assertEqual(len(segs), 12)
        self.assert_pace(segs, t0 * 1000)
        # every frame is a sample of the session's segments, as HTTP serves them
        base = "/api/sentinels/%s/sessions/%s" % (ack["sentinelId"], ack["sessionId"])
        samples = sum(frames_of(self.http_bytes(base + "/segments/%d.m4s" % g["sequence"]))
                      for g in segs)
        self.assertEqual(samples, 6000)
        after = self.ingest_stats(lambda s: s["jpegPauses"] > before["jpegPauses"])
        self.assertEqual(after["jpegDropped"], 0)

    def test_a_frame_that_does_not_decode(self):
        """Bytes no decoder takes: the frame before stays on screen, the
        timeline and the join points hold."""
        t0 = int(time.time()) - 100
        w = self.v.watch()
        c, ack = self.register(t0)
        for k in range(8):
            frames = [b"\xff\xd8 not a JPEG", self.jpegs[1]] if k == 4 else self.jpegs
            c.send_raw(batch(ack["sentinelId"], t0 + k + 1, 2 * k, frames))
        c.send("sentinel.ping", {})
        c.expect("server.pong")  # no server.error for it
        last = self.end(c, w, ack)
        w.close()
        _, segs = self.segments(ack, last)
        self.assertTrue(all(s["keyframe"] for s in segs))
        self.assertEqual(segs[0]["startTime"], t0 * 1000)
        self.assertEqual(sum(s["duration"] for s in segs), 8000)
        for a, b in zip(segs, segs[1:]):
            self.assertEqual(b["startTime"], a["startTime"] + a["duration"])
        # the frame before the bad one (3.5 s) lasts until the next (4.5 s),
        # which is the keyframe nearest a second after 3.0 s; keyframes a
        # second apart from there on
        self.assertEqual([s["duration"] for s in segs], [1000, 1000, 1000, 1500, 1000, 1000, 1500])

    def test_bad_batches_get_their_answer_and_the_pace_holds(self):
        t0 = int(time.time()) - 100
        w = self.v.watch()
        c, ack = self.register(t0)
        sid, one = ack["sentinelId"], self.jpegs
        index = 0

        def good(ts, frames=one):
            nonlocal index
            c.send_raw(batch(sid, ts, index, frames))
            index += len(frames)

        def error(raw):
            c.send_raw(raw)
            return c.expect("server.error")

        for k in range(1, 6):
            good(t0 + k)
        # a frame without an index: 400 naming it, the other frame is encoded
        env = msgpack.unpackb(batch(sid, t0 + 6, index, one), raw=False)
        del env["payload"]["frames"][1]["index"]
        err = error(msgpack.packb(env, use_bin_type=True))
        self.assertEqual((err["code"], err["ref"]), (400, "sentinel.frame"))
        self.assertEqual(err["reason"], "frames[1] needs an integer index (the frames' order); "
                                        "1 of 2 frames dropped")
        index += 2
        # 10,000 frames in one batch: 413, nothing encoded, the connection stays
        err = error(batch(sid, t0 + 7, index, [b"\xff\xd8\xff\xd9"] * 10000))
        self.assertEqual(err["code"], 413)
        self.assertEqual(err["reason"], "a batch holds at most 1000 frames, this one 10000; "
                                        "none was encoded")
        good(t0 + 7)
        # the same batch again: 409, dropped
        err = error(batch(sid, t0 + 7, index - 2, one))
        self.assertEqual(err["code"], 409)
        self.assertEqual(err["reason"], "index %d is not above the last one (%d); "
                                        "2 repeated frames dropped" % (index - 2, index - 1))
        # out of order within a batch: put in index order, no error
        c.send_raw(batch(sid, t0 + 8, index, list(reversed(one)), [index + 1, index]))
        index += 2
        # the sentinel's clock steps back an hour, then a batch without a
        # timestamp: no error, the stream keeps its pace
        for k in range(9, 14):
            good(t0 + k - 3600)
        # the sentinel's pace, not synchronisation: a batch without a
        # timestamp is placed by its arrival, a second after the last one
        c.send("sentinel.ping", {})
        c.expect("server.pong")
        time.sleep(1.0)
        good(None)
        for k in range(15, 20):
            good(t0 + k - 3600)
        c.send("sentinel.ping", {})
        c.expect("server.pong")  # no server.error came before it
        last = self.end(c, w, ack)
        w.close()
        _, segs = self.segments(ack, last)
        self.assertEqual(len(segs), 19)
        self.assert_pace(segs, t0 * 1000, slack=1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
