"""Recordings written straight into data_dir in the archive's layout
(docs/archive.md), for the thumbnail test and the timeline benchmark: a clip of
real H.264 (GStreamer's x264enc, one-second fragments each starting with a
keyframe, as vigil-sentinel cuts them) repeated to any length, each repeat's
decode times moved on (tfdt) so that the whole plays as one stream, and index
lines whose times can jump to leave gaps."""
import hashlib
import json
import os
import struct
import subprocess
import tempfile


def encode(seconds, width, height, fps=15, kbit=300):
    """(init, [segment]) of a test pattern: ftyp+moov, then one moof+mdat per
    second. kbit None: x264enc's default bitrate."""
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "out.mp4")
        rate = ["bitrate=%d" % kbit] if kbit else []
        subprocess.run(["gst-launch-1.0", "-q", "videotestsrc", "num-buffers=%d" % (fps * seconds),
                        "pattern=ball", "!", "video/x-raw,format=I420,width=%d,height=%d,"
                        "framerate=%d/1" % (width, height, fps), "!", "x264enc",
                        "key-int-max=%d" % fps, "tune=zerolatency", "speed-preset=ultrafast"]
                       + rate + ["!", "h264parse", "!", "mp4mux", "fragment-duration=1000",
                                 "streamable=true", "!", "filesink", "location=" + out],
                       check=True, timeout=120)
        with open(out, "rb") as f:
            data = f.read()
    boxes, off = [], 0
    while off < len(data):
        size, kind = struct.unpack(">I4s", data[off:off + 8])
        boxes.append((kind, data[off:off + size]))
        off += size
    init = b"".join(b for k, b in boxes if k in (b"ftyp", b"moov"))
    segs = [boxes[i][1] + boxes[i + 1][1] for i in range(len(boxes) - 1)
            if boxes[i][0] == b"moof" and boxes[i + 1][0] == b"mdat"]
    return init, segs


def _child(buf, start, end, kind):
    off = start
    while off + 8 <= end:
        size, k = struct.unpack(">I4s", buf[off:off + 8])
        if k == kind:
            return off, off + size
        off += size
    raise ValueError("no %r box" % kind)


def tfdt(seg):
    """The first fragment's baseMediaDecodeTime."""
    moof = _child(seg, 0, len(seg), b"moof")
    traf = _child(seg, moof[0] + 8, moof[1], b"traf")
    box, _ = _child(seg, traf[0] + 8, traf[1], b"tfdt")
    if seg[box + 8] == 1:
        return struct.unpack(">Q", seg[box + 12:box + 20])[0]
    return struct.unpack(">I", seg[box + 12:box + 16])[0]


def moved(seg, delta, sequence):
    """seg with its decode time moved by delta and its mfhd numbered sequence + 1."""
    b = bytearray(seg)
    moof = _child(b, 0, len(b), b"moof")
    mfhd, _ = _child(b, moof[0] + 8, moof[1], b"mfhd")
    struct.pack_into(">I", b, mfhd + 12, (sequence + 1) & 0xFFFFFFFF)
    traf = _child(b, moof[0] + 8, moof[1], b"traf")
    box, _ = _child(b, traf[0] + 8, traf[1], b"tfdt")
    if b[box + 8] == 1:
        struct.pack_into(">Q", b, box + 12, struct.unpack(">Q", b[box + 12:box + 20])[0] + delta)
    else:
        struct.pack_into(">I", b, box + 12, struct.unpack(">I", b[box + 12:box + 16])[0] + delta)
    return bytes(b)


def codec(init):
    """The RFC 6381 string of an init's avcC, as ingest derives it."""
    i = init.index(b"avcC") + 4
    return "avc1.%02x%02x%02x" % (init[i + 1], init[i + 2], init[i + 3])


def write_session(data, sentinel, session, clip, seconds, start_ms, gaps=(), ended=True,
                  name="cam", width=640, height=360):
    """A session of `seconds` one-second segments made of clip (encode()'s),
    repeated. gaps: (after_segment, gap_ms) pairs, the sentinel's clock jumping
    forward after that segment. Returns its segments as the listing gives them
    ([{sequence, startTime, duration, bytes}]) and the session.json written."""
    init, segs = clip
    step = tfdt(segs[1]) - tfdt(segs[0]) if len(segs) > 1 else 0
    d = os.path.join(data, sentinel, session)
    os.makedirs(d, exist_ok=True)
    if not os.path.exists(os.path.join(data, sentinel, "sentinel.json")):
        with open(os.path.join(data, sentinel, "sentinel.json"), "w") as f:
            json.dump({"sentinelId": sentinel, "name": name, "updated": start_ms}, f)
    with open(os.path.join(d, "init.mp4"), "wb") as f:
        f.write(init)
    out, t, jumps = [], start_ms, dict(gaps)
    with open(os.path.join(d, "index.jsonl"), "w") as idx:
        for k in range(seconds):
            base = segs[k % len(segs)]
            seg = moved(base, (k // len(segs)) * len(segs) * step, k)
            with open(os.path.join(d, "%06d.m4s" % k), "wb") as f:
                f.write(seg)
            entry = {"sequence": k, "startTime": t, "duration": 1000, "bytes": len(seg),
                     "keyframe": True, "init": 0, "sha256": hashlib.sha256(seg).hexdigest()}
            idx.write(json.dumps(entry, separators=(",", ":")) + "\n")
            out.append(entry)
            t += 1000 + jumps.get(k, 0)
    meta = {"sentinelId": sentinel, "sessionId": session, "name": name, "codec": codec(init),
            "width": width, "height": height, "timescale": 90000, "startTime": start_ms,
            "endTime": t if ended else None, "inits": 1}
    with open(os.path.join(d, "session.json"), "w") as f:
        json.dump(meta, f, separators=(",", ":"))
    return out, meta


def main(argv=None):
    """recording.py DATA_DIR --sentinel ID --session ID --seconds N --start MS
    [--gap AFTER:MS ...] [--live] [--size WxH] [--clip SECONDS] [--name NAME]:
    writes one session and prints {"segments", "startTime", "endTime"} as JSON
    (for the browser test and the timeline benchmark, which are not Python)."""
    import argparse
    import sys
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("--sentinel", required=True)
    p.add_argument("--session", required=True)
    p.add_argument("--seconds", type=int, required=True)
    p.add_argument("--start", type=int, required=True)
    p.add_argument("--gap", action="append", default=[])
    p.add_argument("--live", action="store_true")
    p.add_argument("--size", default="640x360")
    p.add_argument("--clip", type=int, default=60)
    p.add_argument("--kbit", type=int, default=300)
    p.add_argument("--name", default="cam")
    a = p.parse_args(argv)
    w, h = (int(x) for x in a.size.split("x"))
    clip = encode(min(a.clip, a.seconds), w, h, kbit=a.kbit)
    gaps = [tuple(int(x) for x in g.split(":")) for g in a.gap]
    segs, meta = write_session(a.data, a.sentinel, a.session, clip, a.seconds, a.start, gaps=gaps,
                               ended=not a.live, name=a.name, width=w, height=h)
    json.dump({"segments": len(segs), "startTime": meta["startTime"],
               "endTime": meta["endTime"]}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
