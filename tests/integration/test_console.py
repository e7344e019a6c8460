#!/usr/bin/python3
"""The operator console, /api/ws on httpd (issue 11; PROTOCOL.md section 7),
against a real vigild: operator.auth and every refusal the other sockets
give, the pushes, and each request with its answer, each sent as JSON text
frames and again as MessagePack binary frames (ENCODINGS; one subTest each).
ConsoleFlood has archive's log lines in hand (flood.py beside it), and its
start held on demand; ConsoleEnd has short-lived tokens, then shuts vigil
down."""
import http.client
import json
import os
import sys
import time
import unittest

SANITIZED = os.environ.get("VIGIL_SANITIZE") == "1"

import msgpack

sys.path.insert(0, os.path.dirname(__file__))
from console_client import ENCODINGS, Operator  # noqa: E402
from test_ops import StageDir, rss_kib  # noqa: E402
from proctor import Proctor  # noqa: E402
from vigil import Vigil  # noqa: E402
from wsclient import Client  # noqa: E402

OTOKEN, O2TOKEN, PTOKEN, ATOKEN = "operator-secret", "operator2-secret", "proctor-secret", \
    "archivist-secret"
# one token a sentinel, a proctor and an operator all use, one per encoding
SHARED = {False: ("shared", "shared-operator-secret"), True: ("shared2", "shared2-secret")}
AUTH = """auth:
  sentinel: required
  tokens:
    - { name: ops, role: operator, token: "%s" }
    - { name: ops2, role: operator, token: "%s" }
    - { name: p1, role: proctor, token: "%s" }
    - { name: a1, role: archivist, token: "%s" }
""" % (OTOKEN, O2TOKEN, PTOKEN, ATOKEN) + "".join(
    '    - { name: %s, role: operator, token: "%s" }\n' % nt for nt in SHARED.values())


class OperatorCase(unittest.TestCase):
    """Operators on cls.url, and a test body run once per encoding."""

    def op(self, token=OTOKEN, binary=False, **kw):
        """An operator speaking that encoding, signed in (token None: not)."""
        o = Operator(self.url, binary=binary, **kw)
        self.addCleanup(o.close)
        if token is not None:
            self.ack = o.auth(token)
        return o

    def both(self, body):
        """body(binary) as JSON text frames, then as MessagePack binary frames."""
        for name, binary in ENCODINGS:
            with self.subTest(encoding=name):
                body(binary)

    def refused_proctor(self):
        """relay writes a line of its own, at info: a proctor with a bad token."""
        p = Proctor("ws://%s/proctor" % self.v.stage("relay")["listen"])
        p.send("proctor.register", {"token": "wrong-%d" % time.monotonic_ns()})
        p.expect_close()
        p.close()


def is_line(m, stage=None, text=None):
    return m["type"] == "server.console" and (stage is None or m["payload"]["stage"] == stage) \
        and (text is None or text in m["payload"]["line"])


class Console(OperatorCase):
    @classmethod
    def setUpClass(cls):
        cls.v = Vigil(extra=AUTH, timeouts="register: 2s, idle: 4s")
        cls.v.start()
        cls.url = "ws://%s/api/ws" % cls.v.stage("httpd")["listen"]

    @classmethod
    def tearDownClass(cls):
        cls.v.stop()

    def test_auth_success(self):
        def body(binary):
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
        self.both(body)

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

        def body(binary):
            for payload, code, text in cases:
                o = self.op(None, binary)
                o.send("operator.auth", payload)
                rej = o.expect("server.registration.reject")
                (got, reason), _ = o.expect_close()
                self.assertEqual(got, code, payload)
                self.assertEqual(reason, rej["reason"])
                if text:
                    self.assertIn(text, reason, payload)
            # another message first
            o = self.op(None, binary)
            o.send("operator.stats")
            o.expect("server.registration.reject")
            self.assertEqual(o.expect_close()[0][0], 3001)
        self.both(body)
        # nothing at all: 3003 after timeouts.register
        o = self.op(None)
        (code, reason), _ = o.expect_close(timeout=10)
        self.assertEqual(code, 3003, reason)
        self.assertIn("operator.auth", reason)

    def test_envelope_rules(self):
        def body(binary):
            o = self.op(binary=binary)
            o.send("operator.ping")
            self.assertIsInstance(o.expect("server.pong")["time"], int)
            o.send("operator.nothing")
            err = o.expect("server.error")
            self.assertEqual(err["ref"], "operator.nothing")
            o.send("operator.stats")
            m = o.expect("server.metrics", skip=("server.status",))
            self.assertIn("stages", m)
            # not an envelope, in this encoding: 3006
            if binary:
                o.ws.send_binary(msgpack.packb(["not", "an envelope"]))
            else:
                o.ws.send("{not json")
            (code, _), _ = o.expect_close()
            self.assertEqual(code, 3006)
            # over limits.max_message_bytes (2 MiB here): 1009
            o = self.op(binary=binary)
            big = {"type": "operator.ping", "payload": {"x": "y" * (3 << 20)}}
            if binary:
                o.ws.send_binary(msgpack.packb(big))
            else:
                o.ws.send(json.dumps(big))
            (code, _), _ = o.expect_close()
            self.assertEqual(code, 1009)
        self.both(body)

    def test_auth_refresh(self):
        def body(binary):
            o = self.op(binary=binary)
            o.send("operator.auth.refresh", {"token": O2TOKEN})
            r = o.result("operator.auth.refresh")
            self.assertEqual(r["status"], "OK")
            self.assertIsNone(r["expiresAt"])
            for tok in (PTOKEN, "nope"):
                o.send("operator.auth.refresh", {"token": tok})
                self.assertIn("error", o.result("operator.auth.refresh"), tok)
            o.send("operator.ping")
            o.expect("server.pong")
        self.both(body)

    def test_idle_closes_with_3003(self):
        o = self.op()
        (code, reason), _ = o.expect_close(timeout=15)
        self.assertEqual(code, 3003, reason)

    def test_bad_requests_get_an_error_and_the_connection_stays(self):
        def body(binary):
            o = self.op(binary=binary)
            for payload in ({"stage": "nope", "state": "restart"}, {"stage": "relay"},
                            {"stage": "relay", "state": "pause"},
                            {"stage": 1, "state": "stop"}, {"stage": "httpd", "state": "stop"}):
                o.send("operator.stage.set", payload)
                self.assertIn("error", o.result("operator.stage.set"), payload)
            # vigild's own lines are not among the stages' (docs/httpd.md)
            for payload in ({"stage": "x"}, {"stage": "vigild"}, {"stage": "relay", "lines": 0},
                            {"stage": "relay", "lines": 1001},
                            {"stage": "relay", "lines": "5"}):
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
            for payload in ({}, {"in": -1}, {"in": 3601}, {"in": "5"}, {"in": -0.5},
                            {"in": 3600.5}):
                o.send("operator.shutdown", payload)
                self.assertIn("error", o.result("operator.shutdown"), payload)
            o.send("operator.ping")
            o.expect("server.pong")
        self.both(body)

    def test_logs_answer_the_last_lines(self):
        """operator.logs { relay, 5 }: five server.console, oldest first, the
        last five vigild keeps of relay (a line relay just wrote among them),
        then server.result { lines: 5 }."""
        def body(binary):
            o = self.op(binary=binary)
            # a line of relay's, seen as it comes (then no more following)
            o.send("operator.console", {"stages": ["relay"]})
            self.assertEqual(o.result("operator.console")["status"], "OK")
            self.refused_proctor()
            msg, _ = o.wait(lambda m: is_line(m, "relay", "proctor registration refused"), 15,
                            "relay's line")
            fresh = msg["payload"]
            o.send("operator.console", {"stages": []})
            o.result("operator.console")
            o.send("operator.logs", {"stage": "relay", "lines": 5})
            res, seen = o.wait(lambda m: m["type"] == "server.result", 10, "operator.logs")
            self.assertEqual(res["payload"], {"ref": "operator.logs", "status": "OK",
                                              "lines": 5})
            got = [m["payload"] for m in seen if m["type"] == "server.console"]
            self.assertEqual(len(got), 5, got)
            self.assertIn(fresh, got)
            for line in got:
                self.assertEqual(line["stage"], "relay")
                self.assertIn(line["level"], ("debug", "info", "warn", "error"))
                self.assertIsInstance(line["time"], int)
            self.assertEqual([x["time"] for x in got], sorted(x["time"] for x in got))
            # five in a row of vigild's buffer of relay's lines, as vigilctl reads it
            kept = self.v.request(cmd="logs", stage="relay", lines=1000)["lines"]
            texts = [x["line"] for x in got]
            self.assertTrue(any(kept[i:i + 5] == texts for i in range(len(kept))),
                            (texts, kept[-10:]))
        self.both(body)

    def test_revoke_closes_every_socket_of_that_token(self):
        """A sentinel, a proctor and a second operator signed in with one
        token are all closed with 3004 within a second of the revocation;
        the others stay; the token is refused from then on."""
        def body(binary):
            name, shared = SHARED[binary]
            s = Client("ws://%s/sentinel" % self.v.stage("ingest")["listen"])
            self.addCleanup(s.close)
            s.register(shared, name="revoke-me")
            p = Proctor("ws://%s/proctor" % self.v.stage("relay")["listen"])
            self.addCleanup(p.close)
            p.register(shared)
            other = Proctor("ws://%s/proctor" % self.v.stage("relay")["listen"])
            self.addCleanup(other.close)
            other.register(PTOKEN)
            o2 = self.op(shared, binary)
            o = self.op(binary=binary)
            o.send("operator.token.revoke", {"token": shared})
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
            again = self.op(None, binary)
            again.send("operator.auth", {"token": shared})
            self.assertIn("revoked", again.expect("server.registration.reject")["reason"])
            c = http.client.HTTPConnection(*self.v.stage("httpd")["listen"].rsplit(":", 1))
            c.request("GET", "/api/status", headers={"Authorization": "Bearer " + shared})
            r = c.getresponse()
            self.assertEqual((r.status, r.read()), (401, b'{"error":"Token revoked"}'))
            c.close()
            # lifted: it works again
            self.v.ctl("revoke", "--lift", name)
            until_ok = time.monotonic() + 5
            while True:
                again = Operator(self.url, binary=binary)
                try:
                    again.auth(shared)
                    again.close()
                    break
                except Exception:
                    again.close()
                    if time.monotonic() > until_ok:
                        raise
                    time.sleep(0.1)
            # an operator who revokes their own token hears the result, then 3004
            me = self.op(shared, binary)
            me.send("operator.token.revoke", {"token": shared})
            self.assertEqual(me.result("operator.token.revoke")["status"], "OK")
            self.assertEqual(me.expect_close(timeout=5)[0], (3004, "Token revoked"))
            self.v.ctl("revoke", "--lift", name)
        self.both(body)

    def test_config_update_applies_live_keys_and_refuses_a_bad_one_whole(self):
        relay = "ws://%s/proctor" % self.v.stage("relay")["listen"]
        self.addCleanup(lambda: self.v.ctl("reload"))

        def body(binary):
            o = self.op(binary=binary)
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
            w.wait(lambda e: e.get("type") == "config.reloaded" and e.get("from") == "relay",
                   what="relay's config.reloaded")
            first = Proctor(relay)
            self.addCleanup(first.close)
            first.register(PTOKEN)
            second = Proctor(relay)
            self.addCleanup(second.close)
            second.send("proctor.register", {"token": PTOKEN})
            self.assertEqual(second.expect("server.registration.reject")["reason"],
                             "Server busy")
            self.assertEqual(second.expect_close()[0][0], 3007)
            st, cfg = self.http_json("/api/config", OTOKEN)
            self.assertEqual(cfg["limits"]["max_proctors"], 1)
            # back to the file's, relay included, for the next encoding
            first.close()
            self.v.ctl("reload")
            w.wait(lambda e: e.get("type") == "config.reloaded" and e.get("from") == "relay",
                   what="relay's config.reloaded after the reload")
        self.both(body)

    def http_json(self, path, token):
        c = http.client.HTTPConnection(*self.v.stage("httpd")["listen"].rsplit(":", 1))
        c.request("GET", path, headers={"Authorization": "Bearer " + token})
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, json.loads(body)


class ConsoleFlood(OperatorCase):
    """archive's stderr carries what flood.py beside it writes (test_ops's
    StageDir): a flood, which an operator who reads gets with the pushes,
    and which costs httpd no memory for one who reads nothing (told what it
    lost); lines of each level, for the console's filters. And archive's
    start can be held (in state starting) to see when a kill's result comes.
    A heartbeat of 10 s: vigild waits that long for a held start."""

    @classmethod
    def setUpClass(cls):
        cls.stages = StageDir()
        cls.v = Vigil(extra=AUTH, heartbeat="10s", env=cls.stages.env()).start()
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

    def test_console_filters_leave_out_other_stages_and_lower_levels(self):
        """Followers of archive at each level, and one of every stage: each
        gets archive's lines at or above its level, in order, and an
        archive-only one none of relay's, though relay's came first."""
        def body(binary):
            tag = "filters-%s-%d" % (binary, time.monotonic_ns())
            levels = ("debug", "info", "warn", "error")
            every = self.op(binary=binary)
            follows = {"every": (every, None, "info")}
            for name, stages, level in (("debug", ["archive", "relay"], "debug"),
                                        ("info", ["archive"], None),
                                        ("warn", ["archive"], "warn"),
                                        ("error", ["archive"], "error")):
                follows[name] = (self.op(binary=binary), stages, level or "info")
            for name, (o, stages, level) in follows.items():
                ask = {}
                if stages is not None:
                    ask["stages"] = stages
                if name != "info":  # info: the default
                    ask["level"] = level
                o.send("operator.console", ask)
                self.assertEqual(o.result("operator.console")["status"], "OK", name)
            # relay's line first: once every has it, httpd has passed it to
            # each follower (or not) before archive's lines below
            self.refused_proctor()
            every.wait(lambda m: is_line(m, "relay", "proctor registration refused"), 15,
                       "relay's line")
            for lv in levels:
                self.stages.say(lv, "%s %s" % (tag, lv))
            for name, (o, stages, level) in follows.items():
                last, seen = o.wait(lambda m: is_line(m, "archive", tag + " error"), 15,
                                    "%s's last line" % name)
                lines = [m["payload"] for m in seen + [last] if m["type"] == "server.console"]
                want = list(levels[levels.index(level):])
                self.assertEqual([x["level"] for x in lines if tag in x["line"]], want, name)
                # every line at or above the level, of the stages followed
                self.assertTrue(all(levels.index(x["level"]) >= levels.index(level)
                                    for x in lines), (name, lines))
                if stages is not None:
                    self.assertEqual({x["stage"] for x in lines} - set(stages), set(),
                                     (name, lines))
                if name != "every":  # every read relay's line above
                    relay = [x for x in lines if x["stage"] == "relay"]
                    self.assertEqual(bool(relay), name == "debug", (name, lines))
        self.both(body)

    def test_killed_stage_answers_once_back_with_a_new_pid(self):
        """operator.stage.set { archive, kill } with archive's next start
        held: statuses show it starting and no result comes; once let go,
        server.result carries the new pid, which vigild names as running,
        and a server.status saying so is pushed at the change (before an
        answer that vigild gives after it, not a second later)."""
        def body(binary):
            o = self.op(binary=binary)
            old = self.v.stage("archive")["pid"]
            self.stages.hold()
            self.addCleanup(self.stages.unhold)
            o.send("operator.stage.set", {"stage": "archive", "state": "kill"})
            held, seen = o.wait(lambda m: m["type"] == "server.status" and
                                m["payload"]["stages"]["archive"] == "starting", 15,
                                "a status with archive starting")
            # a second push while it is held: still no result
            _, more = o.wait(lambda m: m["type"] == "server.status", 5, "the next status")
            self.assertNotIn("server.result", [m["type"] for m in seen + more])
            self.assertEqual(self.v.stage("archive")["state"], "starting")
            self.stages.release()
            msg, seen = o.wait(lambda m: m["type"] == "server.result", 40, "the kill's result")
            res = msg["payload"]
            self.assertEqual((res["ref"], res["status"], res["stage"], res["state"]),
                             ("operator.stage.set", "OK", "archive", "kill"), res)
            self.assertNotEqual(res["pid"], old)
            self.assertGreater(res["pid"], 0)
            st = self.v.stage("archive")
            self.assertEqual((st["state"], st["pid"]), ("running", res["pid"]))
            # vigild told httpd of the change before its result, so httpd
            # asked for a status before this request reaches vigild: the
            # status (archive running) comes before operator.logs' answer
            o.send("operator.logs", {"stage": "archive", "lines": 1})
            msg, seen = o.wait(lambda m: m["type"] == "server.result", 10, "operator.logs")
            self.assertEqual(msg["payload"]["ref"], "operator.logs")
            statuses = [m["payload"]["stages"]["archive"] for m in seen
                        if m["type"] == "server.status"]
            self.assertTrue(statuses, "no server.status pushed at the change")
            self.assertEqual(statuses[0], "running")
        self.both(body)


class ConsoleEnd(OperatorCase):
    """Token lifetimes (two tokens that expire soon), then operator.shutdown,
    which ends this class's vigild: test_z_ runs last."""

    @classmethod
    def setUpClass(cls):
        # soon: within the 60 s of warning from the start, so the test waits
        # for the expiry only; later: warned some seconds in.
        now = int(time.time())
        cls.soon, cls.later = now + 11, now + 68
        stamp = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
        cls.v = Vigil(extra=AUTH + (
            '    - { name: soon, role: operator, token: "soon-secret", expires: %s }\n'
            '    - { name: later, role: operator, token: "later-secret", expires: %s }\n'
            '    - { name: cam, role: sentinel, token: "cam-secret" }\n') % (
                stamp(cls.soon), stamp(cls.later)), timeouts="idle: 300s").start()
        cls.url = "ws://%s/api/ws" % cls.v.stage("httpd")["listen"]

    @classmethod
    def tearDownClass(cls):
        cls.v.stop()

    def test_a_token_expiring_refreshed_or_expired(self):
        """server.token.expiring 60 s ahead (not sooner), operator.auth.refresh
        saves a connection (in each encoding), server.token.expired then 3004
        ends one that did not refresh."""
        lapse = self.op("soon-secret")
        self.assertEqual(self.ack["expiresAt"], self.soon * 1000)
        keep = {binary: self.op("soon-secret", binary) for _, binary in ENCODINGS}
        early = self.op("later-secret", True)
        self.assertEqual(self.ack["expiresAt"], self.later * 1000)
        for o in [lapse] + list(keep.values()):
            ev = o.expect("server.token.expiring", timeout=20)
            self.assertEqual(ev["expiresAt"], self.soon * 1000)

        def refresh(binary):
            o = keep[binary]
            o.send("operator.auth.refresh", {"token": "nope"})
            self.assertIn("error", o.result("operator.auth.refresh"))
            o.send("operator.auth.refresh", {"token": OTOKEN})
            res = o.result("operator.auth.refresh")
            self.assertEqual((res["status"], res["expiresAt"]), ("OK", None))
        self.both(refresh)
        # later's warning: when it is 60 s away, not at the sign-in
        ev = early.expect("server.token.expiring", timeout=30)
        self.assertGreaterEqual(time.time(), self.later - 60)
        self.assertEqual(ev["expiresAt"], self.later * 1000)
        # soon's expiry: the notice, then 3004, not before its time
        (code, reason), before = lapse.expect_close(timeout=30)
        self.assertGreaterEqual(time.time(), self.soon)
        self.assertEqual((code, reason), (3004, "Token expired"))
        self.assertEqual(before[-1]["type"], "server.token.expired")
        self.assertEqual(before[-1].get("payload", {}), {})
        # the refreshed ones are past it and stay
        for o in keep.values():
            o.send("operator.ping")
            _, seen = o.wait(lambda m: m["type"] == "server.pong", 10, "server.pong")
            self.assertNotIn("server.token.expired", [m["type"] for m in seen])
        early.send("operator.ping")
        early.wait(lambda m: m["type"] == "server.pong", 10, "server.pong")

    def test_z_shutdown_tells_everyone_then_stops(self):
        """operator.shutdown { in: 2.5 }: its answer and every operator,
        proctor and sentinel get server.shutdown { at }, an operator who
        signs in later too; at `at` vigil stops, closing each with 1001."""
        cam = Client("ws://%s/sentinel" % self.v.stage("ingest")["listen"])
        self.addCleanup(cam.close)
        cam.register("cam-secret", name="shutdown")
        p = Proctor("ws://%s/proctor" % self.v.stage("relay")["listen"])
        self.addCleanup(p.close)
        p.register(PTOKEN)
        o, other = self.op(binary=True), self.op(O2TOKEN)
        t0 = time.time()
        o.send("operator.shutdown", {"in": 2.5})
        msg, first = o.wait(lambda m: m["type"] == "server.result", 10, "operator.shutdown")
        t1 = time.time()
        res = msg["payload"]
        self.assertEqual((res["ref"], res.get("status")), ("operator.shutdown", "OK"), res)
        at = res["at"]
        # vigild's clock when it took the request, 2.5 s on (a fraction kept)
        self.assertTrue(int(t0 * 1000) + 2500 <= at <= int(t1 * 1000) + 2501, (t0, at, t1))
        late = self.op()
        self.assertEqual(late.expect("server.shutdown")["at"], at)
        # in vigild's stop order: ingest, relay, httpd
        for who, c in (("sentinel", cam), ("proctor", p), ("operator", o),
                       ("other operator", other), ("late operator", late)):
            (code, reason), before = c.expect_close(timeout=30)
            c.close()
            self.assertGreaterEqual(time.time() * 1000, at, who)
            self.assertEqual(code, 1001, (who, reason))
            if c is o:  # the asker's notice may come before its answer
                before = first + [msg] + before
            notices = [m["payload"]["at"] for m in before if m["type"] == "server.shutdown"]
            if who != "late operator":  # its notice was read above
                self.assertEqual(notices, [at], who)
        self.assertEqual(self.v.proc.wait(30), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
