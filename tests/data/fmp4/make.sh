#!/bin/sh
# Regenerates the fMP4 fixtures of test_fmp4 and fuzz_fmp4 with a real encoder
# (GStreamer: x264enc + mp4mux), then splits the fragmented file at top-level box
# boundaries into init.mp4 (ftyp+moov) and seg0.m4s, seg1.m4s (moof+mdat each).
#
# What the committed files hold (ffprobe; test_fmp4 asserts the same):
#   codec avc1.64000b (H.264 High, level 1.1), 160x120, 30 fps, 60 frames,
#   track 1, mdhd timescale 3000, trex defaults 0 (duration, size, flags),
#   2 fragments of 30 samples (100 ticks each: 3000 ticks = 1000 ms), each
#   starting at an IDR (key-int-max=30); tfdt 0 and 3000; every trun carries
#   per-sample duration, size and flags (0x00000040 sync, 0x000100c0 non-sync).
# mp4mux stamps creation times, so a rerun gives different bytes (same content).
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

gst-launch-1.0 -q videotestsrc num-buffers=60 pattern=ball \
	! video/x-raw,format=I420,width=160,height=120,framerate=30/1 \
	! x264enc key-int-max=30 tune=zerolatency bitrate=32 speed-preset=faster threads=1 \
	! video/x-h264,profile=high ! h264parse \
	! mp4mux fragment-duration=1000 streamable=true ! filesink location="$tmp/out.mp4"

python3 - "$tmp/out.mp4" <<'PY'
import struct, sys

data = open(sys.argv[1], 'rb').read()
boxes, off = [], 0
while off < len(data):
    size, kind = struct.unpack('>I4s', data[off:off + 8])
    assert size >= 8, 'unexpected box size %d' % size
    boxes.append((kind.decode(), data[off:off + size]))
    off += size
kinds = [k for k, _ in boxes]
assert kinds[:2] == ['ftyp', 'moov'], kinds
pairs = [(boxes[i][1] + boxes[i + 1][1]) for i in range(2, len(boxes) - 1)
         if kinds[i] == 'moof' and kinds[i + 1] == 'mdat']
assert len(pairs) >= 2, kinds
open('init.mp4', 'wb').write(boxes[0][1] + boxes[1][1])
for i, seg in enumerate(pairs[:2]):
    open('seg%d.m4s' % i, 'wb').write(seg)
print('init.mp4 %d bytes, seg0.m4s %d bytes, seg1.m4s %d bytes'
      % (len(boxes[0][1]) + len(boxes[1][1]), len(pairs[0]), len(pairs[1])))
PY
