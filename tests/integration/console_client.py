"""An operator-side client of the console (/api/ws, PROTOCOL.md section 7),
on the proctor client's WebSocket plumbing: operator.auth, requests, and the
pushes (server.status, server.metrics every second) passed over unless asked
for."""
from proctor import Closed, Proctor

__all__ = ["Operator", "Closed", "PUSHES"]

PUSHES = ("server.status", "server.metrics")


class Operator(Proctor):
    def expect(self, type_, timeout=10, skip=PUSHES):
        return super().expect(type_, timeout, skip)

    def auth(self, token, binary=False, **extra):
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
