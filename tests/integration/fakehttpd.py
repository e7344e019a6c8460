#!/usr/bin/python3
"""A stand-in for vigil-httpd on the bus, for the tests of the console's bus
messages before httpd sends them: vigild starts it as httpd (it is
vigil-httpd in VIGIL_STAGE_DIR), it says hello, sends a heartbeat every
second and exits on "stop", like a stage.

It listens on $FAKE_HTTPD_SOCK (a Unix stream socket) for one test at a time,
one JSON object per line:
    {"send": {"type": T, "body": {...}}}   put T on the bus to vigild
    {"read": false}                          stop reading the bus (a slow httpd)
    {"read": true}                           read it again
and writes every bus message it reads to the test as one JSON line
{"type", "from", "to", "body", "size"} (size: the packet's bytes)."""
import json
import os
import select
import socket
import sys
import time

import msgpack


def run_dir(argv):
    config = argv[argv.index("--config") + 1]
    with open(config) as f:
        for line in f:
            if line.startswith("run_dir:"):
                return line.split(":", 1)[1].strip()
    raise SystemExit(2)


def packet(type_, body):
    return msgpack.packb({"type": type_, "from": "httpd", "to": "vigild", "body": body},
                         use_bin_type=True)


def main():
    # The test's socket first: once vigild says the stages are up, it is there.
    path = os.environ["FAKE_HTTPD_SOCK"]
    if os.path.exists(path):
        os.unlink(path)
    lsn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsn.bind(path)
    lsn.listen(1)
    bus = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    bus.connect(os.path.join(run_dir(sys.argv), "bus.sock"))
    bus.send(packet("hello", {"stage": "httpd", "pid": os.getpid(), "version": "0.1.0"}))
    test, buf, reading = None, b"", True
    start = last_beat = time.monotonic()
    while True:
        rd = [lsn] + ([test] if test else []) + ([bus] if reading else [])
        ready, _, _ = select.select(rd, [], [], 0.2)
        now = time.monotonic()
        if now - last_beat >= 1:  # kept up while not reading: a slow httpd is alive
            last_beat = now
            bus.send(packet("heartbeat", {"pid": os.getpid(), "uptimeMs":
                                          int((now - start) * 1000), "loopAvgS": 0.0,
                                          "loopMaxS": 0.0, "loopMinS": 0.0}))
        if lsn in ready:
            if test:
                test.close()
            test, _ = lsn.accept()
            buf = b""
        if test in ready:
            chunk = test.recv(65536)
            if not chunk:
                test.close()
                test = None
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                req = json.loads(line)
                if "send" in req:
                    bus.send(packet(req["send"]["type"], req["send"]["body"]))
                if "read" in req:
                    reading = req["read"]
        if bus in ready:
            data = bus.recv(1 << 17)
            if not data:
                return 1
            msg = msgpack.unpackb(data, raw=False)
            if msg["type"] == "stop":
                return 0
            if test:
                msg["size"] = len(data)
                test.sendall((json.dumps(msg) + "\n").encode())


if __name__ == "__main__":
    sys.exit(main())
