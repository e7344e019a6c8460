#!/usr/bin/python3
"""The operator console, /api/ws on httpd (issue 11; PROTOCOL.md section 7),
against a real vigild: operator.auth and every refusal the other sockets
give, both encodings, the pushes, and each request with its answer."""
import http.client
import json
import os
import sys
import time
import unittest

SANITIZED = os.environ.get("VIGIL_SANITIZE") == "1"

import msgpack

sys.path.insert(0, os.path.dirname(__file__))
from console_client import Operator, Closed  # noqa: E402
from test_ops import StageDir, rss_kib  # noqa: E402
from proctor import Proctor  # noqa: E402
from vigil import Vigil  # noqa: E402
from wsclient import Client  # noqa: E402

OTOKEN, O2TOKEN, PTOKEN, ATOKEN = "operator-secret", "operator2-secret", "proctor-secret", \
    "archivist-secret"
SHARED = "shared-operator-secret"  # one token a sentinel, a proctor and an operator all use
AUTH = """auth:
  sentinel: required
  tokens:
    - { name: ops, role: operator, token: "%s" }
    - { name: ops2, role: operator, token: "%s" }
    - { name: p1, role: proctor, token: "%s" }
    - { name: a1, role: archivist, token: "%s" }
    - { name: shared, role: operator, token: "%s" }
""" % (OTOKEN, O2TOKEN, PTOKEN, ATOKEN, SHARED)


class Console(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.v = Vigil(extra=AUTH, timeouts="register: 2s, idle: 4s")
        cls.v.start()
        cls.url = "ws://%s/api/ws" % cls.v.stage("httpd")["listen"]

    @classmethod
    def tearDownClass(cls):
        cls.v.stop()

    def op(self, token=OTOKEN, binary=False):
        o = Operator(self.url)
        self.addCleanup(o.close)
        if token is not None:
            self.ack = o.auth(token, binary=binary)
        return o

    def test_auth_success_in_both_encodings(self):
        for binary in (False, True):
            o = self.op(binary=binary)
            self.assertEqual(len(self.ack["operatorId"]), 36)
            self.assertIsNone(self.ack["expiresAt"])
            # the pushes: status and metrics, as JSON text frames
            msg, _ = o.wait(lambda m: m["type"] == "server.status", 5, "server.status")
            self.assertFalse(msg["_binary"])
            st = msg["payload"]
            self.assertEqual(set(st["stages"]), {"ingest", "relay", "archive", "httpd"})
            self.assertEqual(st["stages"]["httpd"], "running")
            self.assertEqual(st["state"], "running")
            msg, _ = o.wait(lambda m: m["type"] == "server.metrics", 5, "server.metrics")
            m = msg["payload"]
            for k in ("cpuPercent", "memBytes", "connections", "loopAvgS", "loopMaxS",
                      "loopMinS"):
                self.assertIn(k, m["stages"]["httpd"])
            self.assertGreater(m["ring"]["sizeBytes"], 0)

    def test_pushes_every_second(self):
        o = self.op()
        t = []
        # one at the sign-in and one with vigild's first answer; then a second apart
        for _ in range(2):
            o.wait(lambda m: m["type"] == "server.status", 5, "server.status")
        while len(t) < 4:
            msg, _ = o.wait(lambda m: m["type"] == "server.status", 5, "server.status")
            t.append(time.monotonic())
            o.send("operator.ping")  # under timeouts.idle (4 s here)
        gaps = [b - a for a, b in zip(t, t[1:])]
        self.assertTrue(all(0.5 < g < 2.0 for g in gaps), gaps)

    def test_refusals(self):
        cases = [
            ({"token": PTOKEN}, 3001, "not valid"),
            ({"token": ATOKEN}, 3001, "not valid"),
            ({"token": "nope"}, 3001, "Invalid token"),
            ({}, 3001, None),
            ({"token": OTOKEN, "version": 2}, 3002, "Unsupported version 2"),
            ({"token": OTOKEN, "version": "1"}, 3002, "version"),
        ]
        for payload, code, text in cases:
            o = Operator(self.url)
            self.addCleanup(o.close)
            o.send("operator.auth", payload)
            rej = o.expect("server.registration.reject")
            (got, reason), _ = o.expect_close()
            self.assertEqual(got, code, payload)
            self.assertEqual(reason, rej["reason"])
            if text:
                self.assertIn(text, reason, payload)
        # another message first
        o = Operator(self.url)
        self.addCleanup(o.close)
        o.send("operator.stats")
        o.expect("server.registration.reject")
        self.assertEqual(o.expect_close()[0][0], 3001)
        # nothing at all: 3003 after timeouts.register
        o = Operator(self.url)
        self.addCleanup(o.close)
        (code, reason), _ = o.expect_close(timeout=10)
        self.assertEqual(code, 3003, reason)
        self.assertIn("operator.auth", reason)

    def test_envelope_rules(self):
        o = self.op()
        o.send("operator.ping")
        self.assertIsInstance(o.expect("server.pong")["time"], int)
        o.send("operator.nothing")
        err = o.expect("server.error")
        self.assertEqual(err["ref"], "operator.nothing")
        o.send("operator.stats")
        m = o.expect("server.metrics", skip=("server.status",))
        self.assertIn("stages", m)
        o.ws.send("{not json")
        (code, _), _ = o.expect_close()
        self.assertEqual(code, 3006)
        o = self.op()
        o.ws.send_binary(msgpack.packb({"type": "operator.ping",
                                        "payload": {"x": "y" * (3 << 20)}}))
        (code, _), _ = o.expect_close()
        self.assertEqual(code, 1009)

    def test_auth_refresh(self):
        o = self.op()
        o.send("operator.auth.refresh", {"token": O2TOKEN})
        r = o.result("operator.auth.refresh")
        self.assertEqual(r["status"], "OK")
        self.assertIsNone(r["expiresAt"])
        for tok in (PTOKEN, "nope"):
            o.send("operator.auth.refresh", {"token": tok})
            self.assertIn("error", o.result("operator.auth.refresh"), tok)
        o.send("operator.ping")
        o.expect("server.pong")

    def test_idle_closes_with_3003(self):
        o = self.op()
        (code, reason), _ = o.expect_close(timeout=15)
        self.assertEqual(code, 3003, reason)

    def test_bad_requests_get_an_error_and_the_connection_stays(self):
        o = self.op()
        for payload in ({"stage": "nope", "state": "restart"}, {"stage": "relay"},
                        {"stage": "relay", "state": "pause"}, {"stage": 1, "state": "stop"},
                        {"stage": "httpd", "state": "stop"}):
            o.send("operator.stage.set", payload)
            self.assertIn("error", o.result("operator.stage.set"), payload)
        for payload in ({"stage": "x"}, {"stage": "relay", "lines": 0},
                        {"stage": "relay", "lines": 1001}, {"stage": "relay", "lines": "5"}):
            o.send("operator.logs", payload)
            self.assertIn("error", o.result("operator.logs"), payload)
        for payload in ({"stages": ["x"]}, {"stages": "relay"}, {"level": "loud"}):
            o.send("operator.console", payload)
            self.assertIn("error", o.result("operator.console"), payload)
        for payload in ({}, {"config": 5}):
            o.send("operator.config.update", payload)
            self.assertIn("error", o.result("operator.config.update"), payload)
        for payload in ({}, {"token": ""}, {"token": "not-a-token"}):
            o.send("operator.token.revoke", payload)
            self.assertIn("error", o.result("operator.token.revoke"), payload)
        for payload in ({}, {"in": -1}, {"in": 3601}, {"in": "5"}):
            o.send("operator.shutdown", payload)
            self.assertIn("error", o.result("operator.shutdown"), payload)
        o.send("operator.ping")
        o.expect("server.pong")

    def test_revoke_closes_every_socket_of_that_token(self):
        """A sentinel, a proctor and a second operator signed in with one
        token are all closed with 3004 within a second of the revocation;
        the others stay; the token is refused from then on."""
        s = Client("ws://%s/sentinel" % self.v.stage("ingest")["listen"])
        self.addCleanup(s.close)
        s.register(SHARED, name="revoke-me")
        p = Proctor("ws://%s/proctor" % self.v.stage("relay")["listen"])
        self.addCleanup(p.close)
        p.register(SHARED)
        other = Proctor("ws://%s/proctor" % self.v.stage("relay")["listen"])
        self.addCleanup(other.close)
        other.register(PTOKEN)
        o2 = self.op(SHARED)
        o = self.op()
        o.send("operator.token.revoke", {"token": SHARED})
        t0 = time.monotonic()
        self.assertEqual(o.result("operator.token.revoke")["status"], "OK")
        for who, c in (("operator", o2), ("proctor", p)):
            (code, reason), _ = c.expect_close(timeout=5)
            self.assertEqual((code, reason), (3004, "Token revoked"), who)
        (code, reason) = s.expect_close(timeout=5)[0]
        self.assertEqual((code, reason), (3004, "Token revoked"), "sentinel")
        self.assertLess(time.monotonic() - t0, 1.0)
        # the others stay
        other.send("proctor.ping")
        other.wait(lambda m: m["type"] == "server.pong", 5, "the other proctor's pong")
        o.send("operator.ping")
        o.expect("server.pong")
        # refused from now on, on every socket and over HTTP
        again = Operator(self.url)
        self.addCleanup(again.close)
        again.send("operator.auth", {"token": SHARED})
        self.assertIn("revoked", again.expect("server.registration.reject")["reason"])
        c = http.client.HTTPConnection(*self.v.stage("httpd")["listen"].rsplit(":", 1))
        c.request("GET", "/api/status", headers={"Authorization": "Bearer " + SHARED})
        r = c.getresponse()
        self.assertEqual((r.status, r.read()), (401, b'{"error":"Token revoked"}'))
        c.close()
        # lifted: it works again
        self.v.ctl("revoke", "--lift", "shared")
        until_ok = time.monotonic() + 5
        while True:
            again = Operator(self.url)
            try:
                again.auth(SHARED)
                again.close()
                break
            except Exception:
                again.close()
                if time.monotonic() > until_ok:
                    raise
                time.sleep(0.1)
        # an operator who revokes their own token hears the result, then 3004
        me = self.op(SHARED)
        me.send("operator.token.revoke", {"token": SHARED})
        self.assertEqual(me.result("operator.token.revoke")["status"], "OK")
        self.assertEqual(me.expect_close(timeout=5)[0], (3004, "Token revoked"))
        self.v.ctl("revoke", "--lift", "shared")

    def test_config_update_applies_live_keys_and_refuses_a_bad_one_whole(self):
        o = self.op()
        relay = "ws://%s/proctor" % self.v.stage("relay")["listen"]
        o.send("operator.config.update", {"config": {"limits": {"max_proctors": "lots"},
                                                     "timeouts": {"idle": "9s"}}})
        res = o.result("operator.config.update")
        self.assertIn("limits.max_proctors", res["error"])
        self.assertIn("expected", res["error"])
        # nothing changed: the idle timeout is still the file's
        st, cfg = self.http_json("/api/config", OTOKEN)
        self.assertEqual(cfg["timeouts"]["idle"], 4000)
        w = self.v.watch()
        self.addCleanup(w.close)
        o.send("operator.config.update", {"config": {"limits": {"max_proctors": 1},
                                                     "ring": {"size": "128MiB"}}})
        res = o.result("operator.config.update")
        self.assertEqual(res["status"], "OK", res)
        self.assertEqual(res["applied"], ["limits.max_proctors"])
        self.assertEqual(res["restartRequired"], ["ring.size"])
        self.addCleanup(lambda: self.v.ctl("reload"))
        w.wait(lambda e: e.get("type") == "config.reloaded" and e.get("from") == "relay",
               what="relay's config.reloaded")
        first = Proctor(relay)
        self.addCleanup(first.close)
        first.register(PTOKEN)
        second = Proctor(relay)
        self.addCleanup(second.close)
        second.send("proctor.register", {"token": PTOKEN})
        self.assertEqual(second.expect("server.registration.reject")["reason"], "Server busy")
        self.assertEqual(second.expect_close()[0][0], 3007)
        st, cfg = self.http_json("/api/config", OTOKEN)
        self.assertEqual(cfg["limits"]["max_proctors"], 1)

    def http_json(self, path, token):
        c = http.client.HTTPConnection(*self.v.stage("httpd")["listen"].rsplit(":", 1))
        c.request("GET", path, headers={"Authorization": "Bearer " + token})
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, json.loads(body)


class ConsoleFlood(unittest.TestCase):
    """archive's stderr carries a flood (flood.py beside it, test_ops's
    StageDir): an operator who reads gets the lines and the pushes, one who
    reads nothing costs httpd no memory and is told what it lost."""

    @classmethod
    def setUpClass(cls):
        cls.stages = StageDir()
        cls.v = Vigil(extra=AUTH, env=cls.stages.env()).start()
        cls.url = "ws://%s/api/ws" % cls.v.stage("httpd")["listen"]

    @classmethod
    def tearDownClass(cls):
        cls.v.stop()
        cls.stages.remove()

    def test_a_console_that_does_not_read_loses_lines_not_memory(self):
        reader = Operator(self.url)
        self.addCleanup(reader.close)
        reader.auth(OTOKEN)
        reader.send("operator.console", {"stages": ["archive"]})
        self.assertEqual(reader.result("operator.console")["status"], "OK")
        stalled = Operator(self.url, rcvbuf=4096)
        self.addCleanup(stalled.close)
        stalled.auth(O2TOKEN)
        stalled.send("operator.console", {})
        stalled.result("operator.console")
        pid = self.v.stage("httpd")["pid"]
        before = rss_kib(pid)
        got = {"lines": 0, "status": 0}

        def read_meanwhile():
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                msg = reader.recv(5)
                if msg["type"] == "server.console" and "flood" in msg["payload"]["line"]:
                    got["lines"] += 1
                elif msg["type"] == "server.status":
                    got["status"] += 1
                    reader.send("operator.ping")
        n, _ = self.stages.flood(5000, 4, read_meanwhile)
        grew = rss_kib(pid) - before
        sys.stderr.write("console flood: %d lines written, the reader got %d in 4 s and %d "
                         "status pushes; httpd's RSS grew %d KiB\n" % (
                             n, got["lines"], got["status"], grew))
        self.assertGreater(got["lines"], 1000)
        self.assertGreaterEqual(got["status"], 2)  # the pushes kept coming
        if not SANITIZED:
            self.assertLess(grew, 4096)
        # the stalled one reads at last: what it lost is said, in a line of httpd's
        stalled.send("operator.ping")
        msg, _ = stalled.wait(lambda m: m["type"] == "server.console" and
                              m["payload"]["stage"] == "httpd" and
                              "lines dropped" in m["payload"]["line"], 30, "the dropped notice")
        self.assertEqual(msg["payload"]["level"], "warn")
        self.assertEqual(self.v.stage("httpd")["pid"], pid)


if __name__ == "__main__":
    unittest.main(verbosity=2)
