"""A proctor-side WebSocket client for the tests (python3-websocket): registers
on /proctor, sends requests as JSON text or MessagePack binary frames, and reads
events (JSON text) and media (MessagePack binary) back, with the close code."""
import json
import socket
import time

import msgpack
import websocket

from wsclient import Closed, to_json

__all__ = ["Proctor", "Closed"]


class Proctor:
    def __init__(self, url, timeout=10, rcvbuf=None, sslopt=None):
        sockopt = []
        if rcvbuf is not None:
            # Set before connect, so the window stays small: a proctor that reads nothing.
            sockopt.append((socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf))
        self.ws = websocket.create_connection(url, timeout=timeout, sockopt=sockopt,
                                             sslopt=sslopt)
        self.closed = None
        self.binary_types = set()  # types that came as binary frames

    def send(self, type_, payload=None, binary=False):
        env = {"type": type_, "timestamp": int(time.time())}
        if payload is not None:
            env["payload"] = payload
        if binary:
            self.ws.send_binary(msgpack.packb(env, use_bin_type=True))
        else:
            self.ws.send(json.dumps(to_json(env)))

    def recv(self, timeout=10):
        """The next message as a dict ("_binary" tells the frame kind)."""
        self.ws.settimeout(timeout)
        while True:
            opcode, data = self.ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_TEXT:
                msg = json.loads(data.decode())
                msg["_binary"] = False
                return msg
            if opcode == websocket.ABNF.OPCODE_BINARY:
                msg = msgpack.unpackb(data, raw=False)
                msg["_binary"] = True
                return msg
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
                self.closed = (code, data[2:].decode(errors="replace"))
                raise Closed(*self.closed)

    def expect(self, type_, timeout=10, skip=("server.status",)):
        """The next message of type_, passing over periodic events in skip."""
        while True:
            msg = self.recv(timeout)
            if msg["type"] in skip and msg["type"] != type_:
                continue
            assert msg["type"] == type_, "expected %s, got %s" % (type_, msg)
            assert isinstance(msg.get("timestamp"), int), msg
            return msg.get("payload", {})

    def wait(self, pred, timeout=15, what="message"):
        """Reads until pred(msg) holds; returns that message and the ones before."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out waiting for %s; saw %s" % (
                    what, [m["type"] for m in seen][-20:]))
            try:
                msg = self.recv(left)
            except websocket.WebSocketTimeoutException:
                continue
            if pred(msg):
                return msg, seen
            seen.append(msg)

    def expect_close(self, timeout=15):
        before = []
        try:
            while True:
                before.append(self.recv(timeout))
        except Closed as c:
            return (c.code, c.reason), before

    def register(self, token, binary=False, **extra):
        payload = dict(extra)
        if token is not None:
            payload["token"] = token
        self.send("proctor.register", payload, binary=binary)
        return self.expect("server.registration.ack")

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass
