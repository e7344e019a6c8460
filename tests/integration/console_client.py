"""An operator-side client of the console (/api/ws, PROTOCOL.md section 7),
on the proctor client's WebSocket plumbing: operator.auth, requests, and the
pushes (server.status, server.metrics every second) passed over unless asked
for. An Operator speaks one encoding: JSON text frames, or MessagePack
binary frames with binary=True (ENCODINGS names both, for tests that run
once per encoding); the server answers in JSON text either way."""
from proctor import Closed, Proctor

__all__ = ["Operator", "Closed", "PUSHES", "ENCODINGS"]

PUSHES = ("server.status", "server.metrics")
ENCODINGS = (("json", False), ("msgpack", True))


class Operator(Proctor):
    def __init__(self, url, binary=False, **kw):
        super().__init__(url, **kw)
        self.binary = binary

    def send(self, type_, payload=None, binary=None):
        super().send(type_, payload, self.binary if binary is None else binary)

    def expect(self, type_, timeout=10, skip=PUSHES):
        return super().expect(type_, timeout, skip)

    def auth(self, token, binary=None, **extra):
        payload = dict(extra)
        if token is not None:
            payload["token"] = token
        self.send("operator.auth", payload, binary=binary)
        return self.expect("server.auth.success")

    def result(self, ref, timeout=10):
        """The next server.result (pushes and console lines passed over)."""
        msg, _ = self.wait(lambda m: m["type"] == "server.result", timeout,
                           "server.result for " + ref)
        p = msg["payload"]
        assert p["ref"] == ref, p
        return p
