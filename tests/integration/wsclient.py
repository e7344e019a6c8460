"""A sentinel-side WebSocket client for the tests (python3-websocket): sends
envelopes as JSON text or MessagePack binary frames and reports what comes
back, including the close code and reason."""
import base64
import json
import struct
import time

import msgpack
import websocket
from websocket import ABNF


class Closed(Exception):
    def __init__(self, code, reason):
        super().__init__("closed %s %r" % (code, reason))
        self.code = code
        self.reason = reason


class Client:
    def __init__(self, url, timeout=10, sslopt=None):
        self.ws = websocket.create_connection(url, timeout=timeout, sslopt=sslopt)
        self.closed = None

    def send(self, type_, payload=None, binary=True, timestamp=True):
        env = {"type": type_}
        if timestamp:
            env["timestamp"] = int(time.time())
        if payload is not None:
            env["payload"] = payload
        if binary:
            self.ws.send_binary(msgpack.packb(env, use_bin_type=True))
        else:
            self.ws.send(json.dumps(to_json(env)))

    def send_raw(self, data, binary=True):
        if binary:
            self.ws.send_binary(data)
        else:
            self.ws.send(data)

    def send_fragments(self, parts, binary=True):
        opcode = ABNF.OPCODE_BINARY if binary else ABNF.OPCODE_TEXT
        for i, part in enumerate(parts):
            op = opcode if i == 0 else ABNF.OPCODE_CONT
            self.ws.send_frame(ABNF.create_frame(part, op, fin=int(i == len(parts) - 1)))

    def recv(self, timeout=10):
        """The next message as a dict; raises Closed when the server closes."""
        self.ws.settimeout(timeout)
        while True:
            opcode, data = self.ws.recv_data(control_frame=True)
            if opcode == ABNF.OPCODE_TEXT:
                return json.loads(data.decode())
            if opcode == ABNF.OPCODE_BINARY:
                return msgpack.unpackb(data, raw=False)
            if opcode == ABNF.OPCODE_CLOSE:
                code = struct.unpack(">H", data[:2])[0] if len(data) >= 2 else None
                self.closed = (code, data[2:].decode(errors="replace"))
                raise Closed(*self.closed)

    def expect(self, type_, timeout=10):
        msg = self.recv(timeout)
        assert msg["type"] == type_, "expected %s, got %s" % (type_, msg)
        assert isinstance(msg.get("timestamp"), int), msg
        return msg.get("payload", {})

    def expect_close(self, timeout=15):
        """Reads until the close; returns (code, reason) and the messages before it."""
        before = []
        try:
            while True:
                before.append(self.recv(timeout))
        except Closed as c:
            return (c.code, c.reason), before

    def register(self, token=None, binary=True, **extra):
        payload = dict(extra)
        if token is not None:
            payload["token"] = token
        payload.setdefault("version", 1)
        self.send("sentinel.register", payload, binary=binary)
        return self.expect("server.registration.ack")

    def ping(self, payload=b""):
        self.ws.ping(payload)

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass


def to_json(obj):
    """bytes -> base64 strings, as the protocol's JSON form carries them."""
    if isinstance(obj, bytes):
        return base64.b64encode(obj).decode()
    if isinstance(obj, dict):
        return {k: to_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_json(v) for v in obj]
    return obj
