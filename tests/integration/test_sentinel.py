#!/usr/bin/python3
"""Integration tests of vigil-sentinel against a running vigild: what it
streams reaches the ring as the protocol says, in both encodings, as N
simulated sentinels, and as a legacy JPEG sentinel; and the stream decodes."""
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from vigil import BUILD, Vigil  # noqa: E402

SENTINEL = os.path.join(BUILD, "deploy", "vigil-sentinel")


class Sentinel(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.v = Vigil(extra="auth: { sentinel: none }\n").start()

    @classmethod
    def tearDownClass(cls):
        cls.v.stop()

    def run_sentinel(self, *args, seconds=5):
        tmp = tempfile.mkdtemp(dir=self.v.dir)
        res = subprocess.run([SENTINEL, "--url", self.v.url("ingest", "/sentinel"),
                              "--duration", str(seconds), "--state", tmp + "/id",
                              "--size", "320x180"] + list(args),
                             capture_output=True, text=True, timeout=seconds + 60)
        self.assertEqual(res.returncode, 0, res.stderr[-3000:])
        return res

    def streams(self, name_prefix):
        dump = self.v.ring_dump()
        ents = {d["sessionId"]: d for d in dump
                if d["kind"] == "sentinel" and d["name"].startswith(name_prefix)}
        segs = {}
        for d in dump:
            if d["kind"] == "segment" and d["sessionId"] in ents:
                segs.setdefault(d["sessionId"], []).append(d)
        return ents, segs

    def check_stream(self, ent, segs, width=320, height=180):
        self.assertTrue(ent["codec"].startswith("avc1."), ent)
        self.assertEqual((ent["width"], ent["height"], ent["initGen"]), (width, height, 1))
        self.assertFalse(ent["online"])  # it said bye
        seqs = [s["sequence"] for s in segs]
        self.assertEqual(seqs, sorted(seqs))
        self.assertEqual(seqs[0], 0)
        self.assertGreaterEqual(len(segs), 3)
        self.assertEqual(ent["lastSequence"], seqs[-1])
        return seqs

    def test_one_sentinel_one_second_keyframe_segments(self):
        self.run_sentinel("--name", "single", seconds=6)
        ents, segs = self.streams("single")
        self.assertEqual(len(ents), 1)
        (sid, ent), = ents.items()
        self.check_stream(ent, segs[sid])
        for s in segs[sid]:
            self.assertTrue(s["keyframe"], s)
            self.assertAlmostEqual(s["duration"], 1000, delta=100)

    def test_json_encoding(self):
        self.run_sentinel("--name", "jsonmode", "--json", seconds=5)
        ents, segs = self.streams("jsonmode")
        (sid, ent), = ents.items()
        self.check_stream(ent, segs[sid])

    def test_count_simulates_distinct_sentinels_with_the_same_bytes(self):
        self.run_sentinel("--name", "fleet", "--count", "4", seconds=5)
        ents, segs = self.streams("fleet")
        self.assertEqual(len(ents), 4)
        self.assertEqual(len({e["sentinelId"] for e in ents.values()}), 4)
        self.assertEqual(len({e["slot"] for e in ents.values()}), 4)
        self.assertEqual(len({e["initSha256"] for e in ents.values()}), 1)  # one encoder
        by_seq = {}
        for sid, ent in ents.items():
            self.check_stream(ent, segs[sid])
            for s in segs[sid]:
                by_seq.setdefault(s["sequence"], set()).add(s["sha256"])
        shared = [seq for seq, shas in by_seq.items() if len(shas) == 1]
        self.assertTrue(shared, by_seq)

    def test_state_file_keeps_the_identity(self):
        tmp = tempfile.mkdtemp(dir=self.v.dir)
        ids = []
        for _ in range(2):
            subprocess.run([SENTINEL, "--url", self.v.url("ingest", "/sentinel"), "--name",
                            "keeper", "--duration", "2", "--state", tmp + "/id"],
                           check=True, capture_output=True, timeout=60)
            ents, _ = self.streams("keeper")
            ids.append({e["sentinelId"] for e in ents.values()})
        self.assertEqual(len(ids[0]), 1)
        self.assertEqual(ids[0], ids[1])

    def test_legacy_jpeg_sentinel(self):
        self.run_sentinel("--name", "oldcam", "--legacy-jpeg", "--fps", "5", seconds=5)
        ents, segs = self.streams("oldcam")
        (sid, ent), = ents.items()
        self.check_stream(ent, segs[sid])
        self.assertTrue(all(s["keyframe"] for s in segs[sid]))

    def test_stream_decodes(self):
        self.run_sentinel("--name", "decode", seconds=4)
        out = tempfile.mkdtemp(dir=self.v.dir)
        ents, segs = self.streams("decode")
        (sid, ent), = ents.items()
        self.v.ring_dump(out=out)
        path = out + "/all.mp4"
        with open(path, "wb") as f:
            with open("%s/%d-init.mp4" % (out, ent["slot"]), "rb") as g:
                f.write(g.read())
            for s in segs[sid]:
                with open("%s/%d-%d.m4s" % (out, s["slot"], s["index"]), "rb") as g:
                    f.write(g.read())
        probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams",
                                "v:0", "-show_entries", "stream=codec_name,width,height,"
                                "nb_read_frames", "-of", "csv=p=0", path],
                               capture_output=True, text=True, timeout=60)
        self.assertEqual(probe.returncode, 0, probe.stderr)
        codec, width, height, frames = probe.stdout.strip().split(",")
        self.assertEqual((codec, width, height), ("h264", "320", "180"))
        self.assertGreaterEqual(int(frames), 15 * (len(segs[sid]) - 1))

    def test_usage_errors_exit_2(self):
        for args in ([], ["--url", "ws://x/sentinel", "--count", "0"],
                     ["--url", "ws://x/sentinel", "--size", "big"]):
            res = subprocess.run([SENTINEL] + args, capture_output=True, text=True, timeout=30)
            self.assertEqual(res.returncode, 2, (args, res.stderr))


if __name__ == "__main__":
    unittest.main(verbosity=2)
