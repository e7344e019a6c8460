#!/usr/bin/python3
"""Integration tests of vigil-archive (issue 5, docs/archive.md) against a
running vigild: what sentinels send lands on disk byte for byte (checked with
sha256 against the sentinel's own bytes, the ring and the index); SIGKILLs of
archive lose nothing and list nothing half-written; a full disk is survived;
retention by age and size spares live sessions and stops before deleting
more than half; deletion over the bus, refused for a live session.

Sizes are trimmed for CI: 10 sentinels for about 20 s (not a minute) in the
identity test, 10 sentinels and 20 kills in about 35 s in the crash campaign."""
import glob
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from vigil import BUILD, SOURCE, Vigil, until  # noqa: E402
from wsclient import Client  # noqa: E402

SENTINEL = os.path.join(BUILD, "deploy", "vigil-sentinel")
FIX = os.path.join(SOURCE, "tests", "data", "fmp4")
NOAUTH = "auth: { sentinel: none }\n"


def read(path):
    with open(path, "rb") as f:
        return f.read()


def sha(data):
    return hashlib.sha256(data).hexdigest()


INIT, SEG0, SEG1 = (read(os.path.join(FIX, n)) for n in ("init.mp4", "seg0.m4s", "seg1.m4s"))



def index(sdir):
    """The complete lines of index.jsonl, as a reader must take them."""
    try:
        text = read(os.path.join(sdir, "index.jsonl")).decode()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.split("\n")[:-1]]


def seg_name(seq):
    return "%06d.m4s" % seq


def sessions(data):
    """{sessionId: (sentinelId, dir)} of every session directory under data."""
    out = {}
    for sdir in glob.glob(os.path.join(data, "*", "*")):
        if os.path.isdir(sdir) and not os.path.basename(os.path.dirname(sdir)).startswith("."):
            out[os.path.basename(sdir)] = (os.path.basename(os.path.dirname(sdir)), sdir)
    return out


def craft(data, sentinel, session, start, end, nseg, seg_bytes, name="crafted"):
    """A session as archive writes it (used to test retention without streaming for
    days): session.json, init.mp4, segments and a matching index."""
    sdir = os.path.join(data, sentinel, session)
    os.makedirs(sdir)
    with open(os.path.join(data, sentinel, "sentinel.json"), "w") as f:
        json.dump({"sentinelId": sentinel, "name": name, "updated": start}, f)
    with open(os.path.join(sdir, "session.json"), "w") as f:
        json.dump({"sentinelId": sentinel, "sessionId": session, "name": name,
                   "codec": "avc1.64000b", "width": 160, "height": 120, "timescale": 3000,
                   "startTime": start, "endTime": end, "inits": 1}, f)
    with open(os.path.join(sdir, "init.mp4"), "wb") as f:
        f.write(INIT)
    with open(os.path.join(sdir, "index.jsonl"), "w") as f:
        for seq in range(nseg):
            body = os.urandom(seg_bytes)
            with open(os.path.join(sdir, seg_name(seq)), "wb") as g:
                g.write(body)
            f.write(json.dumps({"sequence": seq, "startTime": start + seq * 1000,
                                "duration": 1000, "bytes": seg_bytes, "keyframe": True,
                                "init": 0, "sha256": sha(body)}) + "\n")
    # Written when it ended: archive checks such a session in the background.
    os.utime(os.path.join(sdir, "index.jsonl"), (end / 1000, end / 1000))
    return sdir


def new_id():
    import uuid
    return str(uuid.uuid4())


class Base(unittest.TestCase):
    def stats(self, v):
        return until(lambda: (v.stage("archive").get("heartbeat") or {}).get("stats"), 10,
                        "archive's heartbeat")

    def stat_at_least(self, v, key, n):
        return until(lambda: self.stats(v)[key] >= n, 10, "%s >= %d" % (key, n))

    def logs(self, v):
        return v.ctl("logs", "archive", "--lines", "1000").stdout

    def delete(self, v, sentinel, session, ref):
        ans = v.request(cmd="send", to="archive", type="session.delete",
                        body={"sentinelId": sentinel, "sessionId": session, "ref": ref})
        self.assertTrue(ans["ok"], ans)
        # The answer goes to httpd on the bus; archive logs each one as well.
        return until(lambda: [ln for ln in self.logs(v).splitlines()
                                 if "session.delete ref %d:" % ref in ln],
                        15, "archive's answer to ref %d" % ref)[0]

    def python_sentinel(self, v, name):
        """A sentinel speaking the protocol with known bytes (tests/data/fmp4)."""
        c = Client(v.url("ingest", "/sentinel"))
        self.addCleanup(c.close)
        ack = c.register(None, name=name)
        return c, ack

    def check_session(self, sdir, ring_segs=None):
        """Every index line has its file, of its size and checksum; no torn line;
        the bytes are those the ring holds, where it still holds them."""
        raw = read(os.path.join(sdir, "index.jsonl"))
        self.assertTrue(raw == b"" or raw.endswith(b"\n"), sdir)
        entries = index(sdir)
        seqs = [e["sequence"] for e in entries]
        self.assertEqual(seqs, sorted(set(seqs)), "sequences ascend without repeats")
        for e in entries:
            body = read(os.path.join(sdir, seg_name(e["sequence"])))
            self.assertEqual((len(body), sha(body)), (e["bytes"], e["sha256"]), e)
            if ring_segs is not None and e["sequence"] in ring_segs:
                self.assertEqual(e["sha256"], ring_segs[e["sequence"]]["sha256"])
                self.assertEqual(e["startTime"], ring_segs[e["sequence"]]["startTime"])
                self.assertEqual(e["duration"], ring_segs[e["sequence"]]["duration"])
                self.assertEqual(e["keyframe"], ring_segs[e["sequence"]]["keyframe"])
        # A temporary file is there for the instant of an atomic replace (the
        # session's end rewrites session.json); one that stays is a leftover.
        until(lambda: glob.glob(os.path.join(sdir, "*.tmp")) == [], 10,
                 "no temporary file left in " + sdir)
        return entries


class Archive(Base):
    """One vigild for the streaming, identity and deletion tests."""

    @classmethod
    def setUpClass(cls):
        cls.v = Vigil(extra=NOAUTH)
        cls.v.ring_size = "64MiB"
        cls.v.write_config()
        cls.v.start()
        cls.data = os.path.join(cls.v.dir, "data")

    @classmethod
    def tearDownClass(cls):
        cls.v.stop()

    def test_sentinel_bytes_on_disk_with_a_second_init(self):
        w = self.v.watch()
        self.addCleanup(w.close)
        c, ack = self.python_sentinel(self.v, "known-bytes")
        sid, ses = ack["sentinelId"], ack["sessionId"]
        c.send("sentinel.init", {"data": INIT})
        c.send("sentinel.segment", {"sequence": 0, "data": SEG0})
        c.send("sentinel.segment", {"sequence": 1, "data": SEG1, "startTime": 1234,
                                    "duration": 999, "keyframe": False})
        sdir = os.path.join(self.data, sid, ses)
        # The ring's table holds a sentinel's latest init only: the first must be
        # stored before the second replaces it (docs/archive.md, "Init files").
        until(lambda: os.path.exists(os.path.join(sdir, "init.mp4")), 15, "init.mp4")
        c.send("sentinel.init", {"data": INIT + b"\0\0\0\x08free"})  # a new init generation
        c.send("sentinel.segment", {"sequence": 2, "data": SEG0})
        until(lambda: len(index(sdir)) == 3, 15, "three index lines")
        meta = json.loads(read(os.path.join(sdir, "session.json")))
        self.assertEqual((meta["sentinelId"], meta["sessionId"], meta["name"], meta["endTime"],
                          meta["inits"], meta["codec"], meta["width"], meta["height"],
                          meta["timescale"]),
                         (sid, ses, "known-bytes", None, 2, "avc1.64000b", 160, 120, 3000))
        self.assertEqual(read(os.path.join(sdir, "init.mp4")), INIT)
        self.assertEqual(read(os.path.join(sdir, "init-1.mp4")), INIT + b"\0\0\0\x08free")
        entries = self.check_session(sdir)
        self.assertEqual([(e["sequence"], e["sha256"], e["bytes"], e["init"]) for e in entries],
                         [(0, sha(SEG0), len(SEG0), 0), (1, sha(SEG1), len(SEG1), 0),
                          (2, sha(SEG0), len(SEG0), 1)])
        self.assertEqual((entries[1]["startTime"], entries[1]["duration"],
                          entries[1]["keyframe"]), (1234, 999, False))
        self.assertTrue(entries[0]["keyframe"])
        sj = json.loads(read(os.path.join(self.data, sid, "sentinel.json")))
        self.assertEqual((sj["sentinelId"], sj["name"]), (sid, "known-bytes"))
        # live: a delete is refused and changes nothing
        line = self.delete(self.v, sid, ses, 4109)
        self.assertIn("409", line)
        self.assertTrue(os.path.isdir(sdir))
        c.send("sentinel.bye", {})
        c.expect_close()
        off = w.wait(lambda e: e.get("type") == "sentinel.offline" and
                     e["body"]["sessionId"] == ses, what="offline")
        until(lambda: json.loads(read(os.path.join(sdir, "session.json")))["endTime"],
                 15, "endTime in session.json")
        meta = json.loads(read(os.path.join(sdir, "session.json")))
        self.assertEqual(meta["endTime"], off["body"]["endedAt"])
        # ended: deleted completely, with the sentinel's directory (its only session)
        line = self.delete(self.v, sid, ses, 4110)
        self.assertIn("204", line)
        self.assertFalse(os.path.exists(os.path.join(self.data, sid)))
        self.assertEqual(glob.glob(os.path.join(self.data, ".deleting-*")), [])
        # A restarted archive reads the ring from its tail, which still holds the
        # session: it must not store it again.
        pid = self.v.pids()["archive"]
        self.v.ctl("restart", "archive")
        until(lambda: (self.v.stage("archive").get("heartbeat") or {}).get("pid") not in
                 (None, pid) and self.stats(self.v)["backlog"] == 0, 20, "archive back")
        self.assertTrue(any(d["kind"] == "segment" and d["sessionId"] == ses
                            for d in self.v.ring_dump()), "the ring still has it")
        self.assertFalse(os.path.exists(os.path.join(self.data, sid)))
        # and again: it is gone
        self.assertIn("404", self.delete(self.v, sid, ses, 4111))
        self.assertIn("404", self.delete(self.v, "not-a-uuid", ses, 4112))

    def test_ten_vigil_sentinels_byte_identical(self):
        w = self.v.watch()
        self.addCleanup(w.close)
        tmp = tempfile.mkdtemp(dir=self.v.dir)
        seconds = 20
        res = subprocess.run([SENTINEL, "--url", self.v.url("ingest", "/sentinel"),
                              "--name", "ident", "--count", "10", "--size", "320x180",
                              "--bitrate", "200", "--duration", str(seconds),
                              "--state", tmp + "/id"],
                             capture_output=True, text=True, timeout=seconds + 60)
        self.assertEqual(res.returncode, 0, res.stderr[-3000:])
        dump = self.v.ring_dump()
        ents = {d["sessionId"]: d for d in dump
                if d["kind"] == "sentinel" and d["name"].startswith("ident-")}
        self.assertEqual(len(ents), 10)
        for ses, ent in ents.items():
            sdir = os.path.join(self.data, ent["sentinelId"], ses)
            last = ent["lastSequence"]
            self.assertGreaterEqual(last, seconds - 3)
            until(lambda: (index(sdir) or [{"sequence": -1}])[-1]["sequence"] == last, 30,
                     "segments 0..%d of %s on disk" % (last, ent["name"]))
            ring = {d["sequence"]: d for d in dump
                    if d["kind"] == "segment" and d["sessionId"] == ses}
            self.assertEqual(sorted(ring), list(range(last + 1)), "the ring holds them all")
            entries = self.check_session(sdir, ring)
            self.assertEqual([e["sequence"] for e in entries], list(range(last + 1)))
            self.assertEqual(sha(read(os.path.join(sdir, "init.mp4"))), ent["initSha256"])
            meta = until(lambda: (lambda m: m if m["endTime"] else None)(
                json.loads(read(os.path.join(sdir, "session.json")))), 15, "endTime")
            self.assertEqual((meta["codec"], meta["width"], meta["height"]),
                             (ent["codec"], 320, 180))
        # The one encoder's bytes: the same sequence has the same bytes in every session.
        by_seq = {}
        for ses, ent in ents.items():
            for e in index(os.path.join(self.data, ent["sentinelId"], ses)):
                by_seq.setdefault(e["sequence"], set()).add(e["sha256"])
        self.assertTrue(any(len(s) == 1 for s in by_seq.values()))
        # What is stored plays: init and segments of one session decode.
        ses, ent = next(iter(ents.items()))
        sdir = os.path.join(self.data, ent["sentinelId"], ses)
        path = os.path.join(tmp, "whole.mp4")
        with open(path, "wb") as f:
            f.write(read(os.path.join(sdir, "init.mp4")))
            for e in index(sdir):
                f.write(read(os.path.join(sdir, seg_name(e["sequence"]))))
        probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0",
                                "-show_entries", "stream=codec_name,width,height",
                                "-of", "csv=p=0", path],
                               capture_output=True, text=True, timeout=60)
        self.assertEqual((probe.returncode, probe.stdout.strip()), (0, "h264,320,180"),
                         probe.stderr)
        st = self.stats(self.v)
        for key in ("segmentsWritten", "bytesWritten", "writeLatencyAvgMs", "writeLatencyMaxMs",
                    "backlog", "diskFreeBytes", "sessionsLive", "retentionDeleted", "enospc"):
            self.assertIn(key, st)
        self.assertGreaterEqual(st["segmentsWritten"], 10 * (seconds - 3))
        self.assertGreater(st["diskFreeBytes"], 0)
        self.assertEqual(st["lost"], 0)


class Crash(Base):
    def test_sigkill_campaign(self):
        """SIGKILL archive 20 times at random moments while 10 sentinels stream."""
        v = Vigil(extra=NOAUTH)
        v.ring_size = "64MiB"
        v.write_config()
        v.start()
        self.addCleanup(v.stop)
        data = os.path.join(v.dir, "data")
        w = v.watch()
        self.addCleanup(w.close)
        tmp = tempfile.mkdtemp(dir=v.dir)
        seconds = 30
        sent = subprocess.Popen([SENTINEL, "--url", v.url("ingest", "/sentinel"), "--name",
                                 "crash", "--count", "10", "--size", "320x180", "--bitrate",
                                 "200", "--duration", str(seconds), "--state", tmp + "/id"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.addCleanup(sent.stderr.close)
        self.addCleanup(lambda: sent.poll() is None and sent.kill())
        rnd = random.Random(int(os.environ.get("VIGIL_SEED", "5")))
        pid = v.pids()["archive"]
        ingest_pid = v.pids()["ingest"]
        for kill in range(20):
            # The random moment (not a synchronisation): every other kill within
            # 0.15 s of the restart, while archive repairs and catches up from the
            # ring; the others anywhere in the next 1.2 s of streaming.
            time.sleep(rnd.uniform(0.0, 0.15) if kill % 2 else rnd.uniform(0.15, 1.2))
            os.kill(pid, signal.SIGKILL)
            ev = w.wait(lambda e: e.get("event") == "stage" and e.get("stage") == "archive" and
                        e.get("state") in ("backoff", "failed", "starting", "running") and
                        e.get("pid") != pid, 15, "archive down after kill %d" % kill)
            if ev["state"] in ("backoff", "failed"):
                # vigild's backoff grows to 10 s; start it now rather than wait (it
                # may have started by itself meanwhile: the answer is then an error).
                # Before every other restart archive stays down a little, so that it
                # has a catch-up to do when it is killed again soon after.
                if kill % 2 == 0:
                    time.sleep(rnd.uniform(0.2, 1.0))
                v.request(cmd="start", stage="archive")
            ev = w.wait_state("archive", "running", timeout=20, not_pid=pid)
            pid = ev["pid"]
        self.assertEqual(sent.wait(seconds + 60), 0, sent.stderr.read()[-3000:])
        self.assertEqual(v.pids()["ingest"], ingest_pid, "ingest never noticed")
        dump = v.ring_dump()
        ents = {d["sessionId"]: d for d in dump
                if d["kind"] == "sentinel" and d["name"].startswith("crash-")}
        self.assertEqual(len(ents), 10)
        for ses, ent in ents.items():
            sdir = os.path.join(data, ent["sentinelId"], ses)
            last = ent["lastSequence"]
            until(lambda: (index(sdir) or [{"sequence": -1}])[-1]["sequence"] == last, 30,
                     "segments up to %d of %s" % (last, ent["name"]))
            ring = {d["sequence"]: d for d in dump
                    if d["kind"] == "segment" and d["sessionId"] == ses}
            self.assertEqual(sorted(ring), list(range(last + 1)), "the ring holds them all")
            entries = self.check_session(sdir, ring)
            self.assertEqual([e["sequence"] for e in entries], list(range(last + 1)),
                             "every segment from the first to the last")
            self.assertEqual(sha(read(os.path.join(sdir, "init.mp4"))), ent["initSha256"])
            # only the layout's files: no unlisted segment, no temp file
            names = set(os.listdir(sdir))
            self.assertEqual(names - {seg_name(s) for s in range(last + 1)},
                             {"init.mp4", "index.jsonl", "session.json"})
            meta = until(lambda: json.loads(read(os.path.join(sdir, "session.json")))
                            if json.loads(read(os.path.join(sdir, "session.json")))["endTime"]
                            else None, 15, "endTime of %s" % ent["name"])
            self.assertGreaterEqual(meta["endTime"], meta["startTime"])
        self.assertEqual(self.stats(v)["lost"], 0)


class Repair(Base):
    def test_torn_state_repaired_and_caught_up_from_the_ring(self):
        """What a kill in the middle of a batch can leave (and worse), made on
        purpose while archive is stopped: a torn index line, a listed segment
        whose file is gone or of the wrong size, a stray temp file. Restarted,
        archive lists only what is whole and stores the rest again from the ring."""
        v = Vigil(extra=NOAUTH).start()
        self.addCleanup(v.stop)
        data = os.path.join(v.dir, "data")
        w = v.watch()
        self.addCleanup(w.close)
        c, ack = self.python_sentinel(v, "repair-me")
        sdir = os.path.join(data, ack["sentinelId"], ack["sessionId"])
        body = {}
        c.send("sentinel.init", {"data": INIT})
        for seq in range(6):
            body[seq] = SEG0 if seq % 2 == 0 else SEG1
            c.send("sentinel.segment", {"sequence": seq, "data": body[seq]})
        until(lambda: len(index(sdir)) == 6, 15, "six segments")
        self.assertTrue(v.request(cmd="stop", stage="archive")["ok"])
        w.wait_state("archive", "down")
        raw = read(os.path.join(sdir, "index.jsonl"))
        with open(os.path.join(sdir, "index.jsonl"), "wb") as f:
            f.write(raw[:len(raw) - 40])  # the last line torn
        os.unlink(os.path.join(sdir, seg_name(3)))
        with open(os.path.join(sdir, seg_name(4)), "wb") as f:
            f.write(b"short")
        with open(os.path.join(sdir, seg_name(6) + ".tmp"), "wb") as f:
            f.write(b"half a segment")
        for seq in (6, 7):  # while archive is down: only the ring has them
            body[seq] = SEG0
            c.send("sentinel.segment", {"sequence": seq, "data": body[seq]})
        c.send("sentinel.ping", {})
        c.expect("server.pong")
        self.assertTrue(v.request(cmd="start", stage="archive")["ok"])
        until(lambda: [e["sequence"] for e in index(sdir)] == list(range(8)), 20,
                 "segments 0..7 listed again")
        entries = self.check_session(sdir)
        self.assertEqual([(e["sequence"], e["sha256"]) for e in entries],
                         [(seq, sha(body[seq])) for seq in range(8)])
        logs = self.logs(v)
        # 3 and 4 dropped, 5's line torn; 4 (short), 5 (unlisted now) and the .tmp removed
        self.assertIn("repaired: 2 index entries dropped, 3 files removed, a torn index line "
                      "cut", logs)
        self.assertEqual(read(os.path.join(sdir, "init.mp4")), INIT)
        self.assertIsNone(json.loads(read(os.path.join(sdir, "session.json")))["endTime"])


    def test_session_ended_while_archive_was_down(self):
        """The sentinel.offline went by while archive was down: on start the
        session ends at its last segment's startTime + duration."""
        v = Vigil(extra=NOAUTH).start()
        self.addCleanup(v.stop)
        w = v.watch()
        self.addCleanup(w.close)
        c, ack = self.python_sentinel(v, "gone-meanwhile")
        sdir = os.path.join(v.dir, "data", ack["sentinelId"], ack["sessionId"])
        c.send("sentinel.init", {"data": INIT})
        c.send("sentinel.segment", {"sequence": 0, "data": SEG0, "startTime": 1000000,
                                    "duration": 1000})
        until(lambda: len(index(sdir)) == 1, 15, "the first segment")
        self.assertTrue(v.request(cmd="stop", stage="archive")["ok"])
        w.wait_state("archive", "down")
        c.send("sentinel.segment", {"sequence": 1, "data": SEG1, "startTime": 1001000,
                                    "duration": 999})
        c.send("sentinel.bye", {})
        c.expect_close()
        w.wait(lambda e: e.get("type") == "sentinel.offline" and
               e["body"]["sessionId"] == ack["sessionId"], what="offline")
        self.assertTrue(v.request(cmd="start", stage="archive")["ok"])
        # ended at once (at segment 0's end), then moved on by segment 1, which only
        # the ring had
        until(lambda: len(index(sdir)) == 2, 15, "segment 1 from the ring")
        until(lambda: json.loads(read(os.path.join(sdir, "session.json")))["endTime"] ==
                 1001000 + 999, 15, "endTime = the last segment's startTime + duration")
        self.assertEqual([e["sequence"] for e in self.check_session(sdir)], [0, 1])


class Retention(Base):
    def test_age_and_size_with_a_live_session(self):
        v = Vigil(extra=NOAUTH + "archive: { retention_days: 30, max_bytes: 1MiB, min_free: 0 }\n")
        data = os.path.join(v.dir, "data")
        now = int(time.time() * 1000)
        day = 86400 * 1000
        a = new_id()
        old = craft(data, a, new_id(), now - 45 * day, now - 40 * day, 2, 100000)
        recent = [craft(data, a, new_id(), now - (10 - i) * day, now - (10 - i) * day + 60000,
                        3, 100000) for i in range(4)]
        # a stray file archive did not write, and leftovers of a crash
        with open(os.path.join(recent[1], "notes.txt"), "w") as f:
            f.write("not archive's")
        with open(os.path.join(recent[2], "000009.m4s.tmp"), "wb") as f:
            f.write(b"torn")
        with open(os.path.join(recent[2], "index.jsonl"), "a") as f:
            f.write('{"sequence":3,"startTi')
        v.start()
        self.addCleanup(v.stop)
        c, ack = self.python_sentinel(v, "live-one")
        c.send("sentinel.init", {"data": INIT})
        c.send("sentinel.segment", {"sequence": 0, "data": SEG0})
        live = os.path.join(data, ack["sentinelId"], ack["sessionId"])
        until(lambda: len(index(live)) == 1, 15, "the live session's segment")
        # age: the 40-days-old session; size: the oldest recent one (1.2 MB + init
        # and index > 1 MiB), no more.
        until(lambda: not os.path.exists(old) and not os.path.exists(recent[0]), 20,
                 "retention by age and size")
        logs = self.logs(v)
        # Sessions whose index did not change lately are checked after the
        # catch-up has started (the torn one changed: it was repaired at once).
        self.assertIn("catalogue: 5 sessions in %s, 4 of them to be checked in the background"
                      % data, logs)
        self.assertIn("catalogue complete", logs)
        self.assertIn("older than retention_days", logs)
        self.assertIn("archive above max_bytes", logs)
        for sdir in recent[1:] + [live]:
            self.assertTrue(os.path.isdir(sdir), sdir)
        self.assertTrue(os.path.exists(os.path.join(recent[1], "notes.txt")))
        # the crash leftovers were repaired at start
        self.assertFalse(os.path.exists(os.path.join(recent[2], "000009.m4s.tmp")))
        self.assertEqual(len(self.check_session(recent[2])), 3)
        # the live session survives a max_bytes far below its size too
        c.send("sentinel.bye", {})
        c.expect_close()
        self.stat_at_least(v, "retentionDeleted", 2)

    def test_a_pass_that_would_delete_more_than_half_stops(self):
        v = Vigil(extra=NOAUTH + "archive: { retention_days: 0, max_bytes: 1MiB, min_free: 0 }\n")
        data = os.path.join(v.dir, "data")
        now = int(time.time() * 1000)
        crafted = [craft(data, new_id(), new_id(), now - (5 - i) * 3600000,
                         now - (5 - i) * 3600000 + 60000, 4, 200000) for i in range(3)]
        v.start()
        self.addCleanup(v.stop)
        until(lambda: "retention stopped" in self.logs(v), 20, "the guard's log line")
        for sdir in crafted:
            self.assertTrue(os.path.isdir(sdir), sdir)
        self.assertEqual(self.stats(v)["retentionDeleted"], 0)
        # A reload with a sane limit applies at once: the oldest goes, no more.
        v.extra = NOAUTH + "archive: { retention_days: 0, max_bytes: 2MiB, min_free: 0 }\n"
        v.write_config()
        v.ctl("reload")
        until(lambda: not os.path.exists(crafted[0]), 20, "the oldest session deleted")
        self.assertTrue(os.path.isdir(crafted[1]) and os.path.isdir(crafted[2]))
        self.stat_at_least(v, "retentionDeleted", 1)


def mount_tmpfs(test, v, size):
    """data_dir on a tmpfs of its own (as root; skipped otherwise), unmounted
    at the end of the test."""
    data = os.path.join(v.dir, "data")
    os.makedirs(data)
    mnt = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", data],
                         capture_output=True, text=True)
    if mnt.returncode != 0:
        shutil.rmtree(v.dir, ignore_errors=True)
        test.skipTest("cannot mount a tmpfs here (%s): needs root or CAP_SYS_ADMIN" %
                      mnt.stderr.strip())
    test.addCleanup(subprocess.run, ["umount", "-l", data])
    return data


class DiskFull(Base):
    def test_enospc_on_a_small_tmpfs(self):
        """A 4 MiB tmpfs fills: retention frees what it may (the ended sessions),
        then the disk stays full with live sessions only, and a 2 MiB ring
        overruns the waiting archive: the lost segments are named. (No floor
        here: archive.min_free keeps a disk from filling; this is what
        happens when it fills all the same.)"""
        v = Vigil(extra=NOAUTH + "archive: { min_free: 0 }\n",
                  limits="max_message_bytes: 512KiB")
        v.ring_size = "2MiB"
        v.write_config()
        data = mount_tmpfs(self, v, "4m")
        now = int(time.time() * 1000)
        old = [craft(data, new_id(), new_id(), now - (9 - i) * 3600000,
                     now - (9 - i) * 3600000 + 60000, 5, 200000) for i in range(2)]
        v.start()
        self.addCleanup(v.stop)
        pids = v.pids()
        tmp = tempfile.mkdtemp(dir=v.dir)
        seconds = 30  # stopped as soon as the disk full has been seen through
        sent = subprocess.Popen([SENTINEL, "--url", v.url("ingest", "/sentinel"), "--name",
                                 "filler", "--count", "8", "--size", "320x180", "--bitrate",
                                 "1500", "--duration", str(seconds), "--state", tmp + "/id"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.addCleanup(sent.stderr.close)
        self.addCleanup(lambda: sent.poll() is None and sent.kill())
        st = until(lambda: (lambda s: s if s["enospc"] > 0 and s["retentionDeleted"] >= 2
                               and s["lost"] > 0 else None)(self.stats(v)), seconds - 5,
                      "ENOSPC, retention and lost segments")
        self.assertTrue(st["stalled"])
        self.assertIsNone(sent.poll(), "the sentinels still stream")
        # /health says so (it answered 200 all along before).
        host, port = v.stage("httpd")["listen"].rsplit(":", 1)

        def unhealthy():
            c = http.client.HTTPConnection(host, int(port), timeout=15)
            c.request("GET", "/health")
            r = c.getresponse()
            body = r.read()
            c.close()
            return json.loads(body) if r.status == 503 else None
        self.assertEqual(until(unhealthy, 10, "/health 503")["error"],
                         "archive cannot write to its disk")
        self.assertEqual(v.pids(), pids, "no stage restarted")
        logs = self.logs(v)
        self.assertIn("DISK FULL", logs)
        self.assertIn("disk full", logs)  # retention's reason
        self.assertFalse(any(os.path.exists(d) for d in old))
        dump = v.ring_dump()
        ents = [d for d in dump if d["kind"] == "sentinel" and d["name"].startswith("filler-")]
        self.assertEqual(len(ents), 8)
        lost = re.findall(r"segments (\d+)\.\.(\d+) of session ([0-9a-f-]{36})/([0-9a-f-]{36}) "
                          r"were overwritten in the ring before archive stored them: lost", logs)
        self.assertTrue(lost, logs[-3000:])
        by_session = {e["sessionId"]: e for e in ents}
        for first, last, sentinel, session in lost:
            self.assertEqual(by_session[session]["sentinelId"], sentinel)
            self.assertLessEqual(int(first), int(last))
        for ent in ents:
            self.assertTrue(ent["online"])
            sdir = os.path.join(data, ent["sentinelId"], ent["sessionId"])
            self.assertTrue(os.path.isdir(sdir), "a live session is never deleted")
            ring = {d["sequence"]: d for d in dump
                    if d["kind"] == "segment" and d["sessionId"] == ent["sessionId"]}
            entries = self.check_session(sdir, ring)  # nothing partial listed
            named = [(int(a), int(b)) for a, b, _, s in lost if s == ent["sessionId"]]
            for e in entries:  # what is listed was not reported lost
                self.assertFalse(any(a <= e["sequence"] <= b for a, b in named), e)
        sent.send_signal(signal.SIGTERM)  # the sentinels say bye
        self.assertEqual(sent.wait(30), 0)
        self.assertIn("0 dropped", sent.stderr.read())  # ingest kept accepting


OP = "floor-operator-1"


class Floor(Base):
    """archive.min_free on a small tmpfs: the oldest ended sessions go before
    the disk fills, and /health says when archive cannot write."""

    def http(self, v, path):
        host, port = v.stage("httpd")["listen"].rsplit(":", 1)
        c = http.client.HTTPConnection(host, int(port), timeout=15)
        c.request("GET", path, headers={"Authorization": "Bearer " + OP})
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, body

    def test_streams_to_the_floor_and_writing_never_fails(self):
        v = Vigil(extra=NOAUTH + "archive: { min_free: 10MiB }\n",
                  limits="max_message_bytes: 512KiB")
        data = mount_tmpfs(self, v, "16m")
        now = int(time.time() * 1000)
        # Five ended sessions of 1 MB, oldest first, one with a file archive
        # did not write (which stays): about 1 MiB above the floor.
        old = [craft(data, new_id(), new_id(), now - (9 - i) * 3600000,
                     now - (9 - i) * 3600000 + 60000, 4, 250000) for i in range(5)]
        with open(os.path.join(old[0], "notes.txt"), "w") as f:
            f.write("not archive's")
        v.start()
        self.addCleanup(v.stop)
        tmp = tempfile.mkdtemp(dir=v.dir)
        sent = subprocess.Popen([SENTINEL, "--url", v.url("ingest", "/sentinel"), "--name",
                                 "filler", "--count", "6", "--size", "320x180", "--bitrate",
                                 "2000", "--quiet", "--state", tmp + "/id"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.addCleanup(sent.stderr.close)
        self.addCleanup(lambda: sent.poll() is None and sent.kill())
        # The floor is reached: the oldest ended sessions go, in order.
        t0 = time.monotonic()
        st = until(lambda: (lambda s: s if s["minFreeDeleted"] >= 2 else None)(
            self.stats(v)), 120, "two sessions deleted for archive.min_free")
        reached = time.monotonic() - t0
        sent.send_signal(signal.SIGTERM)
        self.assertEqual(sent.wait(30), 0, sent.stderr.read()[-3000:])
        st = self.stats(v)
        self.assertEqual(st["minFreeBytes"], 10 << 20)
        self.assertGreater(st["ingestBytesPerS"], 0)
        self.assertEqual((st["enospc"], st["lost"], st["stalled"]), (0, 0, False),
                         "writing never failed")
        gone = [not os.path.exists(os.path.join(d, "session.json")) for d in old]
        n = gone.count(True)
        self.assertGreaterEqual(n, 2)
        self.assertEqual(gone, [True] * n + [False] * (5 - n), "the oldest first")
        self.assertEqual(st["minFreeDeleted"], n)
        # archive removed its own files only
        left = glob.glob(os.path.join(data, ".deleting-*", "notes.txt"))
        self.assertEqual(len(left), 1, os.listdir(data))
        logs = self.logs(v)
        self.assertIn("is below archive.min_free", logs)
        self.assertEqual(logs.count(": disk below archive.min_free"), n, logs[-3000:])
        self.assertNotIn("DISK FULL", logs)
        # Every live session of the filler is whole on disk.
        live = [d for d in glob.glob(os.path.join(data, "*", "*", "session.json"))
                if json.loads(read(d))["name"].startswith("filler-")]
        self.assertEqual(len(live), 6)
        for d in live:
            self.assertGreater(len(self.check_session(os.path.dirname(d))), 0)
        print("\nfloor test: the floor reached after %.0f s; %d sessions deleted, %d segments "
              "written, ingest %.0f kB/s" % (reached, n, st["segmentsWritten"],
                                             st["ingestBytesPerS"] / 1000), file=sys.stderr)

    def test_health_says_when_archive_cannot_write(self):
        v = Vigil(extra=NOAUTH[:-2] + ", tokens: [ { name: op, role: operator, token: %s } ] }\n"
                  "archive: { min_free: 3MiB }\n" % OP, limits="max_message_bytes: 512KiB")
        data = mount_tmpfs(self, v, "8m")
        v.start()
        self.addCleanup(v.stop)
        metrics = until(lambda: (lambda m: m if "vigil_archive_min_free_bytes %d\n" % (3 << 20)
                                 in m else None)(self.http(v, "/metrics")[1].decode()), 20,
                        "archive's first heartbeat in /metrics")
        self.assertEqual(self.http(v, "/health"), (200, b"ok"))
        self.assertIn("vigil_archive_writable 1\n", metrics)
        self.assertIn("vigil_archive_below_min_free 0\n", metrics)
        self.assertIn("vigil_archive_min_free_bytes %d\n" % (3 << 20), metrics)

        def health(want):
            st, body = self.http(v, "/health")
            return json.loads(body) if st == 503 and want in body.decode() else None
        # A file archive did not write takes the disk below the floor: nothing
        # archive may delete brings it back.
        fill = os.path.join(data, "filler.bin")
        with open(fill, "wb") as f:
            f.write(b"\0" * (6 << 20))
        t0 = time.monotonic()
        body = until(lambda: health("below archive.min_free"), 20, "/health below the floor")
        self.assertEqual(body["error"], "archive's disk is below archive.min_free")
        self.assertRegex(body["archive"], r"^\d+ bytes free, the floor is %d" % (3 << 20))
        below_s = time.monotonic() - t0
        metrics = self.http(v, "/metrics")[1].decode()
        self.assertIn("vigil_archive_below_min_free 1\n", metrics)
        self.assertIn("vigil_archive_writable 1\n", metrics)
        st, body = self.http(v, "/api/status")
        self.assertEqual(json.loads(body)["state"], "degraded")
        # Then full: archive cannot write a byte.
        with open(os.path.join(data, "filler2.bin"), "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
            except OSError:
                pass
        t0 = time.monotonic()
        body = until(lambda: health("cannot write"), 20, "/health: archive cannot write")
        full_s = time.monotonic() - t0
        self.assertEqual(body["error"], "archive cannot write to its disk")
        self.assertIn("the disk is full", body["archive"])
        self.assertIn("vigil_archive_writable 0\n", self.http(v, "/metrics")[1].decode())
        os.unlink(fill)
        os.unlink(os.path.join(data, "filler2.bin"))
        until(lambda: self.http(v, "/health")[0] == 200, 20, "/health 200 again")
        # The default, auto: 5 % of the volume while nothing streams (two hours
        # at the ingest rate once that is more); a share; both live.
        v.ctl("config", "set", "archive.min_free", "auto")
        until(lambda: self.stats(v)["minFreeBytes"] == (8 << 20) // 20, 20,
              "5 %% of 8 MiB (%s)" % self.stats(v)["minFreeBytes"])
        v.ctl("config", "set", "archive.min_free", "12.5%")
        until(lambda: self.stats(v)["minFreeBytes"] == (8 << 20) // 8, 20, "12.5 % of 8 MiB")
        print("\n/health said it %.1f s after the disk went below the floor, %.1f s after "
              "it filled" % (below_s, full_s), file=sys.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
