"""Raw-socket tools for the hostile-client suite: exact bytes on the wire,
including frames no WebSocket library would build (unmasked, reserved bits,
lengths that lie), and readers that report what came back: the HTTP answers
in order, or the WebSocket messages and the close code, or a bare close."""
import base64
import hashlib
import json
import os
import socket
import struct
import time

import msgpack

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def upgrade_request(path="/sentinel", method="GET", key=KEY, version="13", extra="",
                    upgrade="websocket", connection="Upgrade", host="127.0.0.1"):
    lines = ["%s %s HTTP/1.1" % (method, path)]
    if host is not None:
        lines.append("Host: %s" % host)
    if connection is not None:
        lines.append("Connection: %s" % connection)
    if upgrade is not None:
        lines.append("Upgrade: %s" % upgrade)
    if version is not None:
        lines.append("Sec-WebSocket-Version: %s" % version)
    if key is not None:
        lines.append("Sec-WebSocket-Key: %s" % key)
    head = "\r\n".join(lines) + "\r\n" + extra + "\r\n"
    return head.encode()


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def frame(opcode, payload=b"", fin=True, mask=True, rsv=0, length=None, length_form=None):
    """One client frame. length overrides the declared length; length_form
    forces the 7-bit, 16-bit (126) or 64-bit (127) form."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    form = length_form or (7 if n < 126 else 16 if n < 65536 else 64)
    mbit = 0x80 if mask else 0
    if form == 7:
        head = struct.pack("!BB", b0, mbit | n)
    elif form == 16:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + body


def text(obj):
    return frame(0x1, json.dumps(obj).encode())


def binary(obj):
    return frame(0x2, msgpack.packb(obj, use_bin_type=True))


class Hang(AssertionError):
    """The server neither answered nor closed in time."""


# HOSTILE_CENSUS runs against builds that hang: shorter waits there.
WAIT = 3 if os.environ.get("HOSTILE_CENSUS") == "1" else 8


class Conn:
    def __init__(self, addr, timeout=WAIT, source=None):
        host, port = addr.rsplit(":", 1)
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        if source is not None:
            self.s.bind((source, 0))
        self.s.connect((host, int(port)))
        self.buf = b""
        self.eof = False

    def send(self, data):
        try:
            self.s.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def fill(self, timeout=None):
        if timeout is not None:
            self.s.settimeout(timeout)
        try:
            chunk = self.s.recv(1 << 20)
        except socket.timeout:
            raise
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
        self.buf += chunk
        return chunk

    def read_all(self, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Hang("the server neither answered nor closed in %ss" % timeout)
            try:
                self.fill(left)
            except socket.timeout:
                continue
        return self.buf

    def http_head(self, timeout=WAIT):
        """The next HTTP answer's status and headers; the body is left in buf."""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            if self.eof:
                return None, {}
            if time.monotonic() > deadline:
                raise Hang("no answer in %ss" % timeout)
            try:
                self.fill(max(deadline - time.monotonic(), 0.01))
            except socket.timeout:
                continue
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        hdr = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            hdr[k.strip().lower()] = v.strip()
        return status, hdr

    def http_answers(self, timeout=WAIT, head=False):
        """Every HTTP answer until the server closes: [(status, headers, body)].
        head: the requests were HEAD (no body, whatever the headers say)."""
        out = []
        while True:
            status, hdr = self.http_head(timeout)
            if status is None:
                return out
            if head:
                out.append((status, hdr, b""))
            elif hdr.get("transfer-encoding", "").lower() == "chunked":
                out.append((status, hdr, self.chunked_body(timeout)))
            else:
                n = int(hdr.get("content-length", "0"))
                while len(self.buf) < n and not self.eof:
                    self.fill(timeout)
                out.append((status, hdr, self.buf[:n]))
                self.buf = self.buf[n:]
            if hdr.get("connection", "").lower() == "close":
                self.read_all(timeout)
                out.extend([("after-close", {}, self.buf)] if self.buf else [])
                return out

    def chunked_body(self, timeout=WAIT):
        """A body in chunked coding (RFC 9112 section 7.1), decoded."""
        body = b""
        while True:
            while b"\r\n" not in self.buf:
                if self.eof:
                    raise Hang("the chunked body ended early")
                self.fill(timeout)
            size, self.buf = self.buf.split(b"\r\n", 1)
            n = int(size.split(b";")[0], 16)
            while len(self.buf) < n + 2:
                if self.eof:
                    raise Hang("a chunk ended early")
                self.fill(timeout)
            if n == 0:  # no trailers here: the empty line
                self.buf = self.buf[2:]
                return body
            body += self.buf[:n]
            self.buf = self.buf[n + 2:]

    def frames(self, timeout=WAIT):
        """Server frames until a close frame or EOF: ([(opcode, payload)], close)
        where close is (code, reason), or None for a bare EOF."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            while True:
                f = self._take_frame()
                if f is None:
                    break
                op, payload = f
                if op == 0x8:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                    return got, (code, payload[2:].decode("utf-8", "replace"))
                got.append((op, payload))
            if self.eof:
                return got, None
            left = deadline - time.monotonic()
            if left <= 0:
                raise Hang("no close in %ss; got %r" % (timeout, got[-3:]))
            try:
                self.fill(left)
            except socket.timeout:
                continue

    def messages(self, timeout=WAIT):
        got, close = self.frames(timeout)
        msgs = []
        for op, p in got:
            if op == 0x1:
                msgs.append(json.loads(p))
            elif op == 0x2:
                msgs.append(msgpack.unpackb(p, raw=False))
            else:
                msgs.append({"type": "frame", "opcode": op, "payload": p})
        return msgs, close

    def next_message(self, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while True:
            f = self._take_frame()
            if f is not None:
                op, p = f
                if op == 0x1:
                    return json.loads(p)
                if op == 0x2:
                    return msgpack.unpackb(p, raw=False)
                if op == 0x8:
                    code = struct.unpack("!H", p[:2])[0] if len(p) >= 2 else 1005
                    raise AssertionError("closed %d %s" % (code, p[2:]))
                continue
            if self.eof:
                raise AssertionError("EOF while waiting for a message")
            self.fill(max(deadline - time.monotonic(), 0.01))

    def _take_frame(self):
        b = self.buf
        if len(b) < 2:
            return None
        n = b[1] & 0x7F
        off = 2
        if n == 126:
            if len(b) < 4:
                return None
            n = struct.unpack("!H", b[2:4])[0]
            off = 4
        elif n == 127:
            if len(b) < 10:
                return None
            n = struct.unpack("!Q", b[2:10])[0]
            off = 10
        if len(b) < off + n:
            return None
        self.buf = b[off + n:]
        return b[0] & 0x0F, b[off:off + n]

    def close(self):
        self.s.close()


def ws_open(addr, path, extra="", source=None):
    """A WebSocket after a checked 101, or AssertionError."""
    c = Conn(addr, source=source)
    c.send(upgrade_request(path, extra=extra))
    status, hdr = c.http_head()
    if status != 101 or hdr.get("sec-websocket-accept") != accept_for(KEY):
        raise AssertionError("upgrade answered %s %s" % (status, hdr))
    return c


def rss_kib(pid):
    """Private memory: the ring's shared pages, which every stage touches as
    it reads or writes them, are left out."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0
