#!/usr/bin/python3
"""Hostile clients against every listener of a running vigil (issue 15).

Each case sends exact bytes (tests/integration/hostile.py) to ingest, relay
or httpd and compares what comes back with the answer PROTOCOL.md gives: the
table CASES below holds the expected answer of every case. After each case
the stage's pid is the one it had (no crash, no restart) and, in the plain
build, its RSS is back within 1 MiB of what it was before the case. A real
vigil-sentinel streams into ingest through the whole suite; at the end its
one session holds every segment it sent, without a gap.

Answers are written as:
  ("http", (s1, s2, ...))   the HTTP statuses, in order, until the server closed
  ("101", proto)            upgraded; proto is the Sec-WebSocket-Protocol answered
  ("ws", code, (types))     upgraded; the close code after these message types
                            (events that come on their own clock are left out)
  ("sent",)                 bytes sent and the connection dropped by the client
"""
import base64
import json
import os
import random
import signal
import subprocess
import sys
import time
import unittest

import msgpack

sys.path.insert(0, os.path.dirname(__file__))
import auditlog as A  # noqa: E402
import hostile as H  # noqa: E402
from vigil import BUILD, SOURCE, Vigil, alive  # noqa: E402

STOKEN, PTOKEN, OTOKEN = "sentinel-secret", "proctor-secret", "operator-secret"
AUTH = """auth:
  sentinel: required
  tokens:
    - { name: s1, role: sentinel, token: "%s" }
    - { name: p1, role: proctor, token: "%s" }
    - { name: o1, role: operator, token: "%s" }
""" % (STOKEN, PTOKEN, OTOKEN)
SENTINEL = os.path.join(BUILD, "deploy", "vigil-sentinel")
SANITIZED = os.environ.get("VIGIL_SANITIZE") == "1"
CENSUS = os.environ.get("HOSTILE_CENSUS") == "1"
INIT = open(os.path.join(SOURCE, "tests", "data", "fmp4", "init.mp4"), "rb").read()
RSS_SLACK_KIB = 1024
ASYNC = {"server.status", "server.sentinel.online", "server.sentinel.offline",
         "server.token.expiring", "server.metrics"}

WS = {
    "ingest": {"path": "/sentinel", "proto": "vigil-sentinel", "reg": "sentinel.register",
               "token": STOKEN, "ack": "server.registration.ack"},
    "relay": {"path": "/proctor", "proto": "vigil-proctor", "reg": "proctor.register",
              "token": PTOKEN, "ack": "server.registration.ack"},
    # the operator console, on httpd's listener
    "console": {"path": "/api/ws", "proto": "vigil-operator", "reg": "operator.auth",
                "token": OTOKEN, "ack": "server.auth.success"},
}
# The listener each WebSocket endpoint is on.
LISTENER = {"ingest": "ingest", "relay": "relay", "console": "httpd", "httpd": "httpd"}


# ---- what a case does -------------------------------------------------------

def http_case(data):
    def run(t, addr):
        c = H.Conn(addr)
        c.send(data)
        got = c.http_answers()
        c.close()
        return ("http", tuple(a[0] for a in got if a[0] != "after-close"))
    return run


def head_case(data):
    """HEAD requests: answers without bodies."""
    def run(t, addr):
        c = H.Conn(addr)
        c.send(data)
        got = c.http_answers(head=True)
        c.close()
        return ("http", tuple(a[0] for a in got if a[0] != "after-close"))
    return run


def drop_case(data):
    def run(t, addr):
        c = H.Conn(addr)
        c.send(data)
        c.close()
        return ("sent",)
    return run


def silent_case(data=b""):
    """Sends a part of a head (or nothing), then waits for the server."""
    return http_case(data)


def upgrade_status(path, extra="", key=H.KEY):
    def run(t, addr):
        c = H.Conn(addr)
        c.send(H.upgrade_request(path, extra=extra, key=key))
        status, hdr = c.http_head()
        c.close()
        if status == 101:
            return ("101", hdr.get("sec-websocket-protocol"))
        return ("http", (status,))
    return run


def env(type_, payload=None):
    e = {"type": type_, "timestamp": int(time.time())}
    if payload is not None:
        e["payload"] = payload
    return e


def register(stage, **extra):
    p = {"token": WS[stage]["token"], "version": 1}
    p.update(extra)
    return H.text(env(WS[stage]["reg"], p))


def ws_case(stage, frames, registered=False, bye=False, extra="", timeout=H.WAIT):
    """Upgrades, optionally registers, sends frames (bytes or callables
    returning bytes), optionally a close 1000, and reports the close."""
    def run(t, addr):
        c = H.ws_open(addr, WS[stage]["path"], extra=extra)
        types = []
        if registered:
            c.send(register(stage))
            types.append(c.next_message()["type"])
        for f in frames:
            c.send(f() if callable(f) else f)
        if bye:
            c.send(H.frame(0x8, b"\x03\xe8bye"))
        msgs, close = c.messages(timeout)
        c.close()
        types += [m.get("type") for m in msgs if m.get("type") not in ASYNC]
        return ("ws", close[0] if close else None, tuple(types))
    return run


# ---- the table ----------------------------------------------------------------

def rand(n, seed):
    return random.Random(seed).randbytes(n)


def ws_random_after_handshake(seed):
    """Random bytes whose first two decide a protocol error, so that the
    answer is known: reserved bits, an unknown opcode, a lone continuation,
    no mask or a bad control frame."""
    r = random.Random(seed)
    while True:
        b = r.randbytes(64)
        fin, rsv, op, mask, n = b[0] >> 7, (b[0] >> 4) & 7, b[0] & 15, b[1] >> 7, b[1] & 127
        if rsv or op not in (0, 1, 2, 8, 9, 10) or op == 0 or not mask or \
                (op >= 8 and (n > 125 or not fin)):
            return b


def json_pad_register(stage, size):
    """A register message of exactly size bytes (JSON padded with spaces)."""
    base = json.dumps(env(WS[stage]["reg"], {"token": WS[stage]["token"], "version": 1}))
    return (base + " " * (size - len(base))).encode()


def fragments(pieces, opcode=0x1):
    out = []
    for i, p in enumerate(pieces):
        out.append(H.frame(opcode if i == 0 else 0x0, p, fin=i == len(pieces) - 1))
    return b"".join(out)


def nested_msgpack(depth):
    return b"\x81\xa1a" * depth + b"\xc0"


def nested_json(depth):
    return b"[" * depth + b"]" * depth


def ws_cases(stage):
    P, proto = WS[stage]["path"], WS[stage]["proto"]
    ack = WS[stage]["ack"]
    cases = []

    def add(name, run, expect):
        cases.append((stage, name, run, expect))

    # the WebSocket handshake (RFC 6455 section 4.2) and its HTTP refusals
    for path, st in (("/x", 404), ("/", 404), (P + "/", 404), (P + "x", 404),
                     (P.upper(), 404), ("/" + P, 404), ("/.." + P, 404), ("/health", 404),
                     (P + "%00", 400), ("*", 404), ("/%zz", 404)):
        add("upgrade to %r" % path, upgrade_status(path), ("http", (st,)))
    add("upgrade with a query", upgrade_status(P + "?x=1"), ("101", None))
    add("upgrade in absolute form", upgrade_status("http://127.0.0.1" + P), ("101", None))
    for label, key in (("missing", None), ("short", "abc"), ("not base64", "!" * 24),
                       ("15 bytes", base64.b64encode(b"k" * 15).decode()),
                       ("17 bytes", base64.b64encode(b"k" * 17).decode())):
        add("Sec-WebSocket-Key %s" % label,
            http_case(H.upgrade_request(P, key=key)), ("http", (400,)))
    add("two Sec-WebSocket-Keys", http_case(H.upgrade_request(P, extra="Sec-WebSocket-Key: "
                                                              + H.KEY + "\r\n")),
        ("http", (400,)))
    for v in ("8", "12", "14", "abc", None):
        add("Sec-WebSocket-Version %s" % v, http_case(H.upgrade_request(P, version=v)),
            ("http", (426,)))
    add("two Sec-WebSocket-Versions",
        http_case(H.upgrade_request(P, extra="Sec-WebSocket-Version: 13\r\n")),
        ("http", (426,)))
    add("unknown subprotocol", upgrade_status(P, "Sec-WebSocket-Protocol: foo, bar\r\n"),
        ("101", None))
    add("ours among unknown subprotocols",
        upgrade_status(P, "Sec-WebSocket-Protocol: foo, %s\r\n" % proto), ("101", proto))
    add("permessage-deflate asked for, then an RSV1 frame",
        ws_case(stage, [H.frame(0x1, b"x", rsv=4)],
                extra="Sec-WebSocket-Extensions: permessage-deflate\r\n"), ("ws", 1002, ()))
    for m in ("POST", "PUT", "DELETE", "OPTIONS", "PATCH"):
        add("upgrade on %s" % m, http_case(H.upgrade_request(P, method=m)), ("http", (405,)))
    add("upgrade on HEAD (no body in the answer)", http_case(H.upgrade_request(P, method="HEAD")),
        ("http", (405,)))
    add("no Upgrade field", http_case(H.upgrade_request(P, upgrade=None)), ("http", (426,)))
    add("no Connection field", http_case(H.upgrade_request(P, connection=None)), ("http", (426,)))
    add("Upgrade: h2c", http_case(H.upgrade_request(P, upgrade="h2c")), ("http", (426,)))
    add("Connection: keep-alive only",
        http_case(H.upgrade_request(P, connection="keep-alive")), ("http", (426,)))
    add("plain GET of the endpoint", http_case(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % P.encode()),
        ("http", (426,)))
    add("upgrade with a body", http_case(H.upgrade_request(P, extra="Content-Length: 5\r\n")
                                         + b"hello"), ("http", (400,)))
    add("upgrade with Transfer-Encoding",
        http_case(H.upgrade_request(P, extra="Transfer-Encoding: chunked\r\n")), ("http", (400,)))
    add("upgrade without Host", http_case(H.upgrade_request(P, host=None)), ("http", (400,)))
    add("upgrade over HTTP/1.0",
        http_case(H.upgrade_request(P).replace(b"HTTP/1.1", b"HTTP/1.0", 1)), ("http", (400,)))
    cases.extend((stage, n, r, e) for n, r, e in corpus(P))

    # a connection dropped at every byte of the handshake
    req = H.upgrade_request(P)
    for i in range(1, len(req)):
        add("dropped after %d bytes of the handshake" % i, drop_case(req[:i]), ("sent",))

    # frames: closes (RFC 6455 section 5.5.1, 7.4)
    add("close before the register", ws_case(stage, [H.frame(0x8, b"\x03\xe8bye")]),
        ("ws", 1000, ()))
    for code in (3000, 4999, 1001):
        add("close %d before the register" % code,
            ws_case(stage, [H.frame(0x8, code.to_bytes(2, "big"))]), ("ws", code, ()))
    add("empty close", ws_case(stage, [H.frame(0x8, b"")]), ("ws", 1000, ()))
    add("close of one byte", ws_case(stage, [H.frame(0x8, b"\x03")]), ("ws", 1002, ()))
    for code in (0, 999, 1004, 1005, 1006, 1015, 2999, 5000, 65535):
        add("close with code %d" % code,
            ws_case(stage, [H.frame(0x8, code.to_bytes(2, "big"))]), ("ws", 1002, ()))
    add("close reason not UTF-8", ws_case(stage, [H.frame(0x8, b"\x03\xe8\xff")]),
        ("ws", 1007, ()))
    for seed in range(6):
        add("random bytes after the handshake #%d" % seed,
            ws_case(stage, [ws_random_after_handshake(seed)]), ("ws", 1002, ()))
    # lengths
    add("declared length 2^63", ws_case(stage, [H.frame(0x2, b"", length=1 << 63)]),
        ("ws", 1002, ()))
    # the size is checked when the frame's first byte arrives (nothing is
    # allocated before that)
    add("declared length 2^63-1", ws_case(stage, [H.frame(0x2, b"x", length=(1 << 63) - 1)]),
        ("ws", 1009, ()))
    add("declared length 2^32", ws_case(stage, [H.frame(0x2, b"x", length=1 << 32)]),
        ("ws", 1009, ()))
    add("65 KiB before the register", ws_case(stage, [H.frame(0x2, b"x", length=65 << 10)]),
        ("ws", 1009, ()))
    add("declared length 2^32, then silence",
        ws_case(stage, [H.frame(0x2, b"", length=1 << 32)]), ("ws", 3003, ()))
    add("100 bytes in the 16-bit form",
        ws_case(stage, [H.frame(0x1, b"a" * 100, length_form=16)]), ("ws", 1002, ()))
    add("1000 bytes in the 64-bit form",
        ws_case(stage, [H.frame(0x1, b"a" * 1000, length_form=64)]), ("ws", 1002, ()))
    add("a register of exactly 64 KiB",
        ws_case(stage, [H.frame(0x1, json_pad_register(stage, 65536))], bye=True),
        ("ws", 1000, (ack,)))
    add("10,000 one-byte fragments of a register",
        ws_case(stage, [lambda: fragments([bytes([b]) for b in
                                                 json_pad_register(stage, 10000)])], bye=True),
        ("ws", 1000, (ack,)))
    # UTF-8 (RFC 6455 section 8.1)
    for label, bad in (("0xff", b"\xff"), ("overlong", b"\xc0\xaf"),
                       ("surrogate", b"\xed\xa0\x80"), ("past U+10FFFF", b"\xf4\x90\x80\x80"),
                       ("truncated", b"\xe2\x82"), ("overlong 3 bytes", b"\xe0\x80\xaf")):
        add("text not UTF-8 (%s)" % label,
            ws_case(stage, [H.frame(0x1, b'{"type":"' + bad + b'"}')]), ("ws", 1007, ()))
    reg = json.dumps(env(WS[stage]["reg"], {"token": WS[stage]["token"], "version": 1,
                                             "name": "Saal \u00e9"}), ensure_ascii=False).encode()
    cut = reg.index(b"\xc3") + 1
    add("UTF-8 split across fragments", ws_case(stage, [fragments([reg[:cut], reg[cut:]])],
                                                bye=True), ("ws", 1000, (ack,)))
    # masking (RFC 6455 section 5.1), control frames, opcodes, reserved bits
    for op, label in ((0x1, "text"), (0x2, "binary"), (0x9, "ping"), (0x8, "close")):
        add("unmasked %s frame" % label,
            ws_case(stage, [H.frame(op, b"\x03\xe8" if op == 8 else b"{}", mask=False)]),
            ("ws", 1002, ()))
    add("ping of 126 bytes", ws_case(stage, [H.frame(0x9, b"p" * 126)]), ("ws", 1002, ()))
    add("close of 126 bytes", ws_case(stage, [H.frame(0x8, b"\x03\xe8" + b"c" * 124)]),
        ("ws", 1002, ()))
    add("fragmented ping", ws_case(stage, [H.frame(0x9, b"p", fin=False)]), ("ws", 1002, ()))
    add("ping of 125 bytes answered",
        ws_case(stage, [H.frame(0x9, b"p" * 125)], bye=True), ("ws", 1000, ("frame",)))
    add("unsolicited pong, then a register",
        ws_case(stage, [H.frame(0xA, b"x"), register(stage)], bye=True), ("ws", 1000, (ack,)))
    for op in (3, 4, 5, 6, 7, 11, 12, 13, 14, 15):
        add("opcode %d" % op, ws_case(stage, [H.frame(op, b"x")]), ("ws", 1002, ()))
    for rsv in (1, 2, 4):
        add("reserved bits %d" % rsv, ws_case(stage, [H.frame(0x1, b"{}", rsv=rsv)]),
            ("ws", 1002, ()))
    add("continuation with no message", ws_case(stage, [H.frame(0x0, b"x")]), ("ws", 1002, ()))
    add("new message inside a fragmented one",
        ws_case(stage, [H.frame(0x1, b"{", fin=False), H.frame(0x1, b"}")]), ("ws", 1002, ()))
    add("ping between fragments",
        ws_case(stage, [lambda: H.frame(0x1, reg[:5], fin=False) + H.frame(0x9, b"hi") +
                        H.frame(0x0, reg[5:])], bye=True), ("ws", 1000, ("frame", ack)))
    # envelopes
    add("msgpack map nested 10,000 deep", ws_case(stage, [H.frame(0x2, nested_msgpack(10000))]),
        ("ws", 3006, ()))
    add("JSON nested 100,000 deep before the register",
        ws_case(stage, [H.frame(0x1, nested_json(100000))]), ("ws", 1009, ()))
    add("JSON nested 1,000 deep", ws_case(stage, [H.frame(0x1, nested_json(1000))]),
        ("ws", 3006, ()))
    add("JSON nested 100,000 deep after the register",
        ws_case(stage, [H.frame(0x1, nested_json(100000))], registered=True), ("ws", 3006, (ack,)))
    add("msgpack nested 10,000 deep after the register",
        ws_case(stage, [H.frame(0x2, nested_msgpack(10000))], registered=True),
        ("ws", 3006, (ack,)))
    add("not an envelope", ws_case(stage, [H.frame(0x1, b"[1,2]")]), ("ws", 3006, ()))
    add("text that is not JSON", ws_case(stage, [H.frame(0x1, b"hello")]), ("ws", 3006, ()))
    add("binary that is not msgpack", ws_case(stage, [H.frame(0x2, b"\xc1")]), ("ws", 3006, ()))
    add("over max_message_bytes after the register",
        ws_case(stage, [H.frame(0x2, b"x", length=(2 << 20) + 1)], registered=True),
        ("ws", 1009, (ack,)))
    # registration
    reject = "server.registration.reject"
    add("first message not a register", ws_case(stage, [H.text(env("x.ping"))]),
        ("ws", 3001, (reject,)))
    add("register without a token", ws_case(stage, [H.text(env(WS[stage]["reg"], {}))]),
        ("ws", 3001, (reject,)))
    add("register with a wrong token", ws_case(stage, [register(stage, token="nope")]),
        ("ws", 3001, (reject,)))
    add("register with a token of the wrong type", ws_case(stage, [register(stage, token=7)]),
        ("ws", 3001, (reject,)))
    add("register with version 2", ws_case(stage, [register(stage, version=2)]),
        ("ws", 3002, (reject,)))
    add("register with version \"1\"", ws_case(stage, [register(stage, version="1")]),
        ("ws", 3002, (reject,)))
    add("register twice", ws_case(stage, [register(stage)], registered=True, bye=True),
        ("ws", 1000, (ack, "server.error")))
    add("unknown type after the register",
        ws_case(stage, [H.text(env("x.unknown"))], registered=True, bye=True),
        ("ws", 1000, (ack, "server.error")))
    add("a silent WebSocket (no register)", ws_case(stage, [], timeout=10),
        ("ws", 3003, ()))
    return cases


def corpus(P):
    """libwebsockets' attack corpus and its kin, for any listener: the
    expected statuses are the same on all three."""
    p = P.encode()
    out = []
    for seed in range(5):
        data = rand(80, seed)
        if data[:1].isalpha():  # a letter would start a method: keep it garbage
            data = b"\x01" + data[1:]
        out.append(("80 random bytes #%d" % seed, http_case(data), ("http", (400,))))
    out.append(("640 KiB of random data", http_case(b"\x01" + rand(640 << 10, 99)),
                ("http", (400,))))
    out.append(("oversized header name",
                http_case(b"GET " + p + b" HTTP/1.1\r\nHost: x\r\n" + b"X" * (10 << 10) +
                          b": v\r\n\r\n"), ("http", (431,))))
    for kib in (9, 16, 100):
        out.append(("request line of %d KiB" % kib,
                    http_case(b"GET /" + b"a" * (kib << 10) + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
                    ("http", (414,))))
    out.append(("header of 16 KiB",
                http_case(b"GET " + p + b" HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * (16 << 10) +
                          b"\r\n\r\n"), ("http", (431,))))
    out.append(("100 KiB of headers",
                http_case(b"GET " + p + b" HTTP/1.1\r\nHost: x\r\n" +
                          b"".join(b"X-%03d: %s\r\n" % (i, b"v" * 1000) for i in range(100)) +
                          b"\r\n"), ("http", (431,))))
    out.append(("200 small headers",
                http_case(b"GET " + p + b" HTTP/1.1\r\nHost: x\r\n" +
                          b"".join(b"X-%03d: v\r\n" % i for i in range(200)) + b"\r\n"),
                ("http", (431,))))
    out.append(("missing method", http_case(p + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
                ("http", (400,))))
    out.append(("repeated method", http_case(b"GET GET " + p + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
                ("http", (400,))))
    out.append(("unknown method", http_case(b"BREW " + p + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
                ("http", (400,))))
    out.append(("NUL byte in the request line",
                http_case(b"GET /a\x00b HTTP/1.1\r\nHost: x\r\n\r\n"), ("http", (400,))))
    out.append(("header without a colon",
                http_case(b"GET " + p + b" HTTP/1.1\r\nHost: x\r\nFoo\r\n\r\n"), ("http", (400,))))
    out.append(("space before a header's colon",
                http_case(b"GET " + p + b" HTTP/1.1\r\nHost : x\r\n\r\n"), ("http", (400,))))
    # HTTP/0.9 is not spoken: the line waits for its version, then times out
    out.append(("HTTP/0.9 request", http_case(b"GET " + p + b"\r\n"), ("http", (408,))))
    out.append(("HTTP/2 preface", http_case(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
                ("http", (400,))))
    out.append(("a request with no Host", http_case(b"GET " + p + b" HTTP/1.1\r\n\r\n"),
                ("http", (400,))))
    out.append(("Transfer-Encoding: chunked",
                http_case(b"GET " + p + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                          b"\r\n\r\n0\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n"),
                ("http", (400,))))
    out.append(("Content-Length and Transfer-Encoding",
                http_case(b"POST " + p + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /health HTTP/1.1\r\n"
                          b"Host: x\r\n\r\n"), ("http", (400,))))
    out.append(("Transfer-Encoding: gzip",
                http_case(b"GET " + p + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"),
                ("http", (501,))))
    out.append(("Content-Length over 1 MiB",
                http_case(b"POST " + p + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n"),
                ("http", (413,))))
    out.append(("half a head, then silence",
                silent_case(b"GET " + p + b" HTTP/1.1\r\nHost: x\r\n"), ("http", (408,))))
    return out


def httpd_cases():
    cases = []

    def add(name, run, expect):
        cases.append(("httpd", name, run, expect))

    for n, r, e in corpus("/health"):
        if n == "half a head, then silence":
            e = ("http", (408,))
        add(n, r, e)
    get = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    last = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    add("8 pipelined GETs", http_case(get * 7 + last), ("http", (200,) * 8))
    add("a payload after the request", http_case(get + b"xxxxxxxx"), ("http", (200, 400)))
    add("a body announced, then a hidden request in it",
        http_case(b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 34\r\n\r\n"
                  b"GET /api/config HTTP/1.1\r\nHost: x\r\n\r\n"), ("http", (200,)))
    add("NUL byte as %00 in the path",
        http_case(b"GET /api/sentinels/x/sessions/y/segments/1.m4s%00.jpg HTTP/1.1\r\n"
                  b"Host: x\r\n\r\n"), ("http", (400,)))
    add("a Range of 1,000 parts",
        http_case(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nRange: bytes=" +
                  b",".join([b"0-0"] * 1000) + b"\r\n\r\n"), ("http", (200,)))
    add("HTTP/1.0 without keep-alive", http_case(b"GET /health HTTP/1.0\r\n\r\n"),
        ("http", (200,)))
    add("Connection: close", http_case(last), ("http", (200,)))
    for path, st in ((b"/x", 404), (b"/proctor", 404)):
        add("upgrade to %s" % path.decode(), http_case(H.upgrade_request(path.decode())),
            ("http", (st,)))
    add("POST /health", http_case(b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"),
        ("http", (405,)))
    add("OPTIONS *", http_case(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"), ("http", (400,)))
    add("two Hosts", http_case(b"GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        ("http", (400,)))
    add("an idle keep-alive connection", silent_case(), ("http", ()))
    for name, data, expect in audit_cases():
        add(name, (head_case if data.startswith(b"HEAD") else http_case)(data),
            ("http", expect))
    for i in range(1, len(get)):
        add("dropped after %d bytes of a request" % i, drop_case(get[:i]), ("sent",))
    return cases


def audit_cases():
    """The audit log's routes (PROTOCOL.md section 6): their query parsing,
    roles, and the streamed (chunked) answer among pipelined requests."""
    def req(target, token=OTOKEN, version=b"HTTP/1.1", method=b"GET", close=True):
        return (method + b" " + target + b" " + version + b"\r\nHost: x\r\n" +
                (b"Authorization: Bearer " + token.encode() + b"\r\n" if token else b"") +
                (b"Connection: close\r\n" if close else b"") + b"\r\n")
    a = b"/api/audit"
    many = b"&".join(b"x%d=%d" % (i, i) for i in range(800))
    return [
        ("audit: no query", req(a), (200,)),
        ("audit: every filter", req(a + b"?from=1&to=2&sentinelId=0b6c1f2e-8d3a-4c5b-9e7f-"
                                     b"112233445566&actor=a&action=mark,export&limit=5"),
         (200,)),
        ("audit: 800 unknown arguments", req(a + b"?" + many), (200,)),
        ("audit: HEAD", req(a, method=b"HEAD"), (200,)),
        ("audit: HTTP/1.0", req(a, version=b"HTTP/1.0", close=False), (200,)),
        ("audit: a stream, then /health, pipelined",
         req(a, close=False) + b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close"
                               b"\r\n\r\n", (200, 200)),
        ("audit: no token", req(a, token=None), (401,)),
        ("audit: a proctor's token", req(a, token=PTOKEN), (403,)),
        ("audit: a sentinel's token", req(a, token=STOKEN), (403,)),
        ("audit: from=-1", req(a + b"?from=-1"), (400,)),
        ("audit: from after to", req(a + b"?from=9&to=8"), (400,)),
        ("audit: from past int64", req(a + b"?from=99999999999999999999999"), (400,)),
        ("audit: from=1e3", req(a + b"?from=1e3"), (400,)),
        ("audit: an empty value", req(a + b"?actor="), (400,)),
        ("audit: a name without a value", req(a + b"?action"), (400,)),
        ("audit: %00 in a value", req(a + b"?actor=a%00b"), (400,)),
        ("audit: a bad percent-encoding", req(a + b"?actor=%g0"), (400,)),
        ("audit: a cut percent-encoding", req(a + b"?actor=a%2"), (400,)),
        ("audit: an 8 KB value", req(a + b"?actor=" + b"v" * 8000), (400,)),
        ("audit: 1,000 action names", req(a + b"?action=" + b",".join([b"a"] * 1000)), (400,)),
        ("audit: action given twice", req(a + b"?action=a&action=b"), (400,)),
        ("audit: a sentinelId that is no UUID", req(a + b"?sentinelId=../../etc"), (400,)),
        ("audit: limit=0", req(a + b"?limit=0"), (400,)),
        ("audit: limit past int64", req(a + b"?limit=99999999999999999999"), (400,)),
        ("audit verify", req(a + b"/verify"), (200,)),
        ("audit verify with arguments", req(a + b"/verify?from=-1&x"), (200,)),
        ("audit verify without a token", req(a + b"/verify", token=None), (401,)),
        ("audit verify with a proctor's token", req(a + b"/verify", token=PTOKEN), (403,)),
        ("audit: POST", req(a, method=b"POST"), (405,)),
        ("audit: a trailing slash", req(a + b"/"), (404,)),
    ]


def ingest_data_cases():
    """After the register and an init: the segment fields of PROTOCOL.md section 4."""
    cases = []
    ack = WS["ingest"]["ack"]

    def seg(**fields):
        p = {"sequence": 0, "data": b"\x00\x00\x00\x08moof"}
        p.update(fields)
        return H.binary(env("sentinel.segment", p))

    init = H.binary(env("sentinel.init", {"data": INIT}))
    for label, f, expect in (
            ("sequence 2^63", seg(sequence=1 << 63), ("ws", 3006, (ack,))),
            ("sequence -1", seg(sequence=-1), ("ws", 1000, (ack, "server.error"))),
            ("sequence 1.5", seg(sequence=1.5), ("ws", 1000, (ack, "server.error"))),
            ("sequence as a string", seg(sequence="7"), ("ws", 1000, (ack, "server.error"))),
            ("data as a msgpack str", H.frame(0x2, msgpack.packb(
                env("sentinel.segment", {"sequence": 0, "data": "text"}), use_bin_type=True)),
             ("ws", 3006, (ack,))),
            ("data as an integer", seg(data=5), ("ws", 1000, (ack, "server.error"))),
            ("data as a map", seg(data={"a": 1}), ("ws", 1000, (ack, "server.error"))),
            ("data that is not moof+mdat", seg(data=b"garbage!"),
             ("ws", 1000, (ack, "server.error"))),
            ("startTime as a string", seg(startTime="now"), ("ws", 1000, (ack, "server.error"))),
            ("init data that is not an init", H.binary(env("sentinel.init", {"data": b"zz"})),
             ("ws", 1000, (ack, "server.error")))):
        cases.append(("ingest", "after an init: " + label,
                      ws_case("ingest", [init, f], registered=True, bye=True), expect))
    cases.append(("ingest", "a segment before any init",
                  ws_case("ingest", [seg()], registered=True, bye=True),
                  ("ws", 1000, (ack, "server.error"))))
    return cases


def relay_data_cases():
    cases = []
    ack = WS["relay"]["ack"]
    err = ("ws", 1000, (ack, "server.error"))

    def sub(**p):
        return H.text(env("proctor.subscribe", p))

    many = ["%08x-0000-4000-8000-000000000000" % i for i in range(40000)]
    for label, f, expect in (
            ("subscribe to a string", sub(sentinelIds="x"), err),
            ("subscribe to numbers", sub(sentinelIds=[1, 2]), err),
            ("subscribe to a non-UUID", sub(sentinelIds=["not-a-uuid"]), err),
            ("subscribe from \"middle\"", sub(sentinelIds=[], startFrom="middle"), err),
            ("subscribe to 40,000 sentinels", lambda: sub(sentinelIds=many), err),
            ("keyframe request for nobody",
             H.text(env("proctor.keyframe.request", {"sentinelId": many[0]})), err),
            ("fps change to -1",
             H.text(env("proctor.fps.change", {"sentinelId": many[0], "framerate": -1})), err),
            ("fps change to a string",
             H.text(env("proctor.fps.change", {"sentinelId": many[0], "framerate": "x"})), err),
            ("list", H.text(env("proctor.list")), ("ws", 1000, (ack, "server.sentinels")))):
        cases.append(("relay", label, ws_case("relay", [f], registered=True, bye=True), expect))
    return cases


CASES = (ws_cases("ingest") + ingest_data_cases() + ws_cases("relay") + relay_data_cases() +
         httpd_cases() + ws_cases("console"))


class Hostile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.v = Vigil(extra=AUTH, limits="max_message_bytes: 2MiB",
                      timeouts="register: 2s, idle: 3s")
        cls.v.ring_size = "64MiB"
        cls.v.write_config()
        # an audit log, so that /api/audit's answers carry records
        A.generate(A.AuditLog(os.path.join(cls.v.dir, "data", "audit")), 2000,
                   int(time.time() * 1000) - 3 * 86400 * 1000, 100000)
        cls.v.start()
        st = cls.v.request(cmd="status")["stages"]
        cls.pid = {s["name"]: s["pid"] for s in st}
        cls.addr = {s["name"]: s["listen"] for s in st}
        cls.sentinel = subprocess.Popen(
            [SENTINEL, "--url", "ws://%s/sentinel" % cls.addr["ingest"], "--token", STOKEN,
             "--name", "Hall H / seat 1", "--size", "320x180", "--bitrate", "200",
             "--duration", "3600", "--state", os.path.join(cls.v.dir, "sentinel.id")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        cls.peak = {}
        cls.tally = {}

    @classmethod
    def tearDownClass(cls):
        if cls.sentinel.poll() is None:
            cls.sentinel.kill()
        cls.sentinel.wait()
        cls.sentinel.stderr.close()
        cls.v.stop()
        sys.stderr.write("hostile: %d cases; largest RSS growth after a case: %s\n" % (
            len(CASES), ", ".join("%s %d KiB" % kv for kv in sorted(cls.peak.items()))))

    def run_case(self, stage, run, expect):
        stage = LISTENER[stage]
        if CENSUS:
            return self.census(stage, run, expect)
        pid = self.pid[stage]
        before = H.rss_kib(pid)
        got = run(self, self.addr[stage])
        self.assertEqual(got, expect)
        self.assertTrue(alive(pid), "%s (pid %d) died" % (stage, pid))
        grew = H.rss_kib(pid) - before
        self.peak[stage] = max(self.peak.get(stage, 0), grew)
        if not SANITIZED:
            self.assertLess(grew, RSS_SLACK_KIB, "%s grew by %d KiB" % (stage, grew))

    def census(self, stage, run, expect):
        """HOSTILE_CENSUS=1: every case runs whatever happens, against any
        build (an old one included), and the counts are printed at the end."""
        pid = self.pid[stage]
        try:
            got = run(self, self.addr[stage])
            outcome = "as expected" if got == expect else "other answer"
        except H.Hang:
            outcome = "hung"
        except Exception:  # noqa: BLE001: a reset or a malformed answer
            outcome = "other answer"
        time.sleep(0.05)  # a crash right after the answer shows up here, not in the next case
        if not alive(pid):
            outcome = "crashed"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # the restarted stage's pid
                try:
                    st = {s["name"]: s for s in self.v.request(cmd="status")["stages"]}
                    if st[stage]["state"] == "failed":  # crash loop: start it again
                        self.v.request(cmd="start", stage=stage)
                    if st[stage]["state"] == "running" and st[stage]["pid"] != pid:
                        self.pid[stage] = st[stage]["pid"]
                        break
                except Exception:  # noqa: BLE001
                    pass
                time.sleep(0.2)
        Hostile.tally.setdefault(outcome, []).append("%s: %s" % (stage, CASE_NAMES[id(run)]))
        sys.stderr.write("census-case: %s: %s: %s\n" % (outcome, stage, CASE_NAMES[id(run)]))
        sys.stderr.flush()

    def test_zy_a_flood_of_one_line_does_not_wipe_the_log(self):
        """200 refused registrations: ingest writes 20 of its lines about them
        and then one that counts the rest, so the operator's view keeps what
        came before."""
        if CENSUS:
            return
        for _ in range(200):
            c = H.ws_open(self.addr["ingest"], "/sentinel")
            c.send(register("ingest", token="wrong"))
            c.messages()
            c.close()
        deadline = time.monotonic() + 20
        while True:
            lines = self.v.request(cmd="logs", stage="ingest", lines=1000)["lines"]
            refused = [ln for ln in lines if "registration refused (3001)" in ln]
            summary = [ln for ln in lines if "more lines like \"registration refused" in ln]
            if summary or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertTrue(summary, lines[-30:])
        self.assertLessEqual(len(refused), 40)  # 20 per 5 s window
        self.assertRegex(summary[-1], r"\d+ more lines like")

    def test_zz_pids_unchanged_and_the_sentinel_lost_nothing(self):
        if CENSUS:
            for k, v in sorted(self.tally.items()):
                sys.stderr.write("census: %d %s\n" % (len(v), k))
                if k in ("crashed", "hung"):
                    for n in v:
                        sys.stderr.write("census:   %s\n" % n)
            return
        st = self.v.request(cmd="status")["stages"]
        self.assertEqual({s["name"]: s["pid"] for s in st}, self.pid)
        self.assertIsNone(self.sentinel.poll(), "the sentinel stopped")
        self.sentinel.send_signal(signal.SIGINT)  # it says bye
        self.sentinel.wait(30)
        dump = self.v.ring_dump()
        ents = [d for d in dump if d["kind"] == "sentinel" and d["name"] == "Hall H / seat 1"]
        self.assertEqual(len(ents), 1, "the sentinel reconnected: %s" % ents)
        mine = [d for d in dump if d["kind"] == "segment" and d["slot"] == ents[0]["slot"]]
        self.assertEqual({d["sessionId"] for d in mine}, {ents[0]["sessionId"]},
                         "the sentinel's session was cut")
        seqs = [d["sequence"] for d in mine]
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))), "a gap")
        self.assertEqual(seqs[0], 0)
        self.assertEqual(seqs[-1], ents[0]["lastSequence"])
        sys.stderr.write("hostile: the sentinel sent %d segments, all in the ring\n" % len(seqs))


class Caps(unittest.TestCase):
    """limits.max_connections_per_ip and limits.max_handshakes on every
    listener: the connection over a cap gets its status before anything is
    read, is counted in /metrics, and clients within the caps go on."""

    @classmethod
    def setUpClass(cls):
        cls.v = Vigil(extra=AUTH, limits="max_message_bytes: 2MiB, max_connections_per_ip: 8, "
                      "max_handshakes: 12",
                      timeouts="register: 20s, idle: 20s")
        cls.v.start()
        st = cls.v.request(cmd="status")["stages"]
        cls.addr = {s["name"]: s["listen"] for s in st}

    @classmethod
    def tearDownClass(cls):
        cls.v.stop()

    def hold(self, stage, n, source):
        held = []
        for _ in range(n):
            c = H.Conn(self.addr[stage], source=source)
            c.send(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never finished
            held.append(c)
        return held

    def refused_status(self, stage, source):
        c = H.Conn(self.addr[stage], source=source)
        status, hdr = c.http_head()
        c.close()
        return status, hdr.get("retry-after")

    def test_per_address_then_handshakes(self):
        for stage in ("ingest", "relay", "httpd"):
            held = self.hold(stage, 8, "127.0.0.21")
            self.addCleanup(lambda h=held: [c.close() for c in h])
            self.assertEqual(self.refused_status(stage, "127.0.0.21"), (429, "1"), stage)
            # other addresses still get in, up to the handshake cap (12 in all)
            held += self.hold(stage, 4, "127.0.0.22")
            self.assertEqual(self.refused_status(stage, "127.0.0.23"), (503, "1"), stage)
            # a real client finishes its handshake once the others are gone
            for c in held:
                c.close()
            deadline = time.monotonic() + 10
            while True:
                try:
                    if stage == "httpd":
                        c = H.Conn(self.addr[stage])
                        c.send(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                        self.assertEqual([a[0] for a in c.http_answers()], [200])
                    else:
                        c = H.ws_open(self.addr[stage], WS[stage]["path"])
                        c.send(register(stage))
                        self.assertEqual(c.next_message()["type"], WS[stage]["ack"])
                    c.close()
                    break
                except AssertionError:
                    if time.monotonic() > deadline:  # the closes reach the server at once
                        raise
                    time.sleep(0.1)
        deadline = time.monotonic() + 10
        while True:  # the next heartbeats carry the counts to /metrics
            c = H.Conn(self.addr["httpd"])
            c.send(("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                    "Authorization: Bearer %s\r\n\r\n" % OTOKEN).encode())
            (st, _, body), = c.http_answers()
            text = body.decode()
            values = dict(ln.rsplit(" ", 1) for ln in text.splitlines()
                          if ln.startswith("vigil_listener_refused"))
            # one of each per listener, or more where the real client's first
            # try met a cap before the held connections' closes were read
            ok = all(float(values.get('vigil_listener_refused_%s_total{stage="%s"}' % (k, s),
                                      0)) >= 1
                     for s in ("ingest", "relay", "httpd") for k in ("per_ip", "handshakes"))
            if ok or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertTrue(ok, [ln for ln in text.splitlines() if "listener" in ln])


def _make(i, stage, name, run, expect):
    def test(self):
        self.run_case(stage, run, expect)
    test.__doc__ = "%s: %s -> %s" % (stage, name, expect)
    return test


CASE_NAMES = {id(c[2]): c[1] for c in CASES}
for _i, (_stage, _name, _run, _expect) in enumerate(CASES):
    setattr(Hostile, "test_%03d_%s" % (_i, _stage), _make(_i, _stage, _name, _run, _expect))


if __name__ == "__main__":
    unittest.main(verbosity=1)
