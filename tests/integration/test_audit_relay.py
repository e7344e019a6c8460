#!/usr/bin/python3
"""What relay and ingest write to the audit log (issue 16; PROTOCOL.md section
9, docs/audit.md "What each stage records") against a real vigild: one
live.view per proctor, sentinel and session, with its actor, role, remote and
times; a relay killed mid-view records its views when it starts again; the
writer killed while relay emits loses and doubles nothing; refused tokens are
recorded, bounded and counted; no token is ever written. Every test checks
the chain with the Python of docs/audit.md."""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import websocket

sys.path.insert(0, os.path.dirname(__file__))
from proctor import Closed, Proctor  # noqa: E402
from vigil import BUILD, SOURCE, VIGILCTL, Vigil, alive, read_tree  # noqa: E402
from wsclient import Client  # noqa: E402

SENTINEL = os.path.join(BUILD, "deploy", "vigil-sentinel")
FIX = os.path.join(SOURCE, "tests", "data", "fmp4")
ST, PT, P2T, P3T, XT = ("sentinel-secret-r", "proctor-secret-r1", "proctor-secret-r2",
                        "proctor-secret-r3", "expired-secret-r")
TOKENS = (ST, PT, P2T, P3T, XT)
AUTH = """auth:
  sentinel: required
  tokens:
    - { name: cams, role: sentinel, token: "%s" }
    - { name: desk-1, role: proctor, token: "%s" }
    - { name: desk-2, role: proctor, token: "%s" }
    - { name: desk-3, role: proctor, token: "%s" }
    - { name: old, role: proctor, token: "%s", expires: 2020-01-01T00:00:00Z }
""" % TOKENS


def fixture(name):
    with open(os.path.join(FIX, name), "rb") as f:
        return f.read()


INIT, SEGS = fixture("init.mp4"), (fixture("seg0.m4s"), fixture("seg1.m4s"))


def now_ms():
    return int(time.time() * 1000)


def until(pred, timeout=20, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.05)


def close_code(p):
    """The close code a proctor gets; python3-websocket refuses 1012 (service
    restart) as a code it does not know."""
    try:
        return p.expect_close()[0][0]
    except websocket.WebSocketProtocolException as e:
        if "close opcode" not in str(e):
            raise
        return 1012


def verify_script():
    """The offline check, as docs/audit.md gives it (so the doc stays right)."""
    with open(os.path.join(SOURCE, "docs", "audit.md")) as f:
        doc = f.read()
    script = doc.split("```python\n", 1)[1].split("```", 1)[0]
    path = os.path.join(tempfile.mkdtemp(prefix="vigil-audit-"), "verify.py")
    with open(path, "w") as f:
        f.write(script)
    return path


class Base(unittest.TestCase):
    """A vigild per class, with two relay workers (each its views' state file,
    audit/relay-<worker>.views); helpers that read its audit directory."""
    vigil_args = {"workers": 2}

    @classmethod
    def setUpClass(cls):
        cls.v = Vigil(extra=AUTH, **cls.vigil_args).start()
        cls.audit = os.path.join(cls.v.dir, "data", "audit")
        cls.purl = cls.v.url("relay", "/proctor")
        cls.surl = cls.v.url("ingest", "/sentinel")
        cls.verify = verify_script()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(os.path.dirname(cls.verify), ignore_errors=True)
        cls.v.stop()

    def records(self):
        out = []
        for f in sorted(glob.glob(os.path.join(self.audit, "audit-*.jsonl"))):
            with open(f, "rb") as fh:
                out += [json.loads(line) for line in fh.read().split(b"\n") if line]
        return out

    def last_seq(self):
        recs = self.records()
        return recs[-1]["seq"] if recs else 0

    def since(self, seq, action=None, **match):
        return [r for r in self.records() if r["seq"] > seq and
                (action is None or r["action"] == action) and
                all(r.get(k) == v for k, v in match.items())]

    def wait_records(self, seq, n, action, timeout=20, **match):
        """Exactly n records of action after seq once n are there (none more
        after a short wait: a double would come with the first ones)."""
        recs = until(lambda: (lambda r: r if len(r) >= n else None)(
            self.since(seq, action, **match)), timeout, "%d %s records" % (n, action))
        time.sleep(0.3)
        recs = self.since(seq, action, **match)
        self.assertEqual(len(recs), n, recs)
        return recs

    def check_chain(self):
        res = subprocess.run([sys.executable, self.verify, self.audit], capture_output=True,
                             text=True, timeout=60)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        recs = self.records()
        self.assertEqual([r["seq"] for r in recs], list(range(1, len(recs) + 1)))
        ids = [r["id"] for r in recs]
        self.assertEqual(len(ids), len(set(ids)), "a record written twice")
        keys = [list(r)[:6] for r in recs]
        self.assertTrue(all(k == ["seq", "time", "actor", "role", "remote", "action"]
                            for k in keys), keys)
        return recs

    def no_tokens(self):
        """No token in any file of data_dir (the audit log, the views' state
        file, the archive) nor in vigild's log."""
        blobs = [("vigild's log", self.v.log().encode())]
        blobs += read_tree(os.path.join(self.v.dir, "data"))
        for name, blob in blobs:
            for t in TOKENS + getattr(self, "bad_tokens", ()):
                self.assertNotIn(t.encode(), blob, "a token in " + name)

    def assert_view(self, rec, actor, sid, session, after, before):
        self.assertEqual([k for k in rec][:10], [
            "seq", "time", "actor", "role", "remote", "action", "sentinelId", "sessionId",
            "from", "to"], rec)
        self.assertEqual((rec["actor"], rec["role"], rec["remote"], rec["action"]),
                         (actor, "proctor", "127.0.0.1", "live.view"), rec)
        self.assertEqual((rec["sentinelId"], rec["sessionId"]), (sid, session), rec)
        self.assertLessEqual(after, rec["from"], rec)
        self.assertLessEqual(rec["from"], rec["to"], rec)
        self.assertLessEqual(rec["to"], before, rec)
        self.assertEqual(rec["time"], rec["to"], rec)

    # -- clients --

    def proctor(self, token=PT):
        p = Proctor(self.purl)
        self.addCleanup(p.close)
        if token is not None:
            p.register(token, name="desk")
        return p

    def sentinel(self, name="cam", **kw):
        s = Client(self.surl)
        self.addCleanup(s.close)
        ack = s.register(ST, name=name, **kw)
        s.send("sentinel.init", {"data": INIT})
        return s, ack

    def stream(self, s, first, n=1):
        for seq in range(first, first + n):
            s.send("sentinel.segment", {"sequence": seq, "data": SEGS[seq % 2],
                                        "duration": 100})
        s.send("sentinel.ping", {})
        while s.recv()["type"] != "server.pong":
            pass

    def media(self, p, sid, timeout=10):
        msg, _ = p.wait(lambda m: m["type"] == "server.segment" and
                        m["payload"]["sentinelId"] == sid, timeout, "a segment of " + sid)
        return msg["payload"]

    def watch(self, p, s, ack, seq):
        """p subscribes to s's sentinel and gets segment seq."""
        p.send("proctor.subscribe", {"sentinelIds": [ack["sentinelId"]]})
        # subscribed once the answer to a later message is back
        p.send("proctor.ping", {})
        p.wait(lambda m: m["type"] == "server.pong", what="pong")
        self.stream(s, seq)
        self.assertEqual(self.media(p, ack["sentinelId"])["sequence"], seq)

    def relay_views(self):
        """The views' figures of every relay worker, summed; None until each
        has sent a heartbeat."""
        out = {}
        for w in self.v.workers():
            views = ((w.get("heartbeat") or {}).get("stats") or {}).get("views")
            if views is None:
                return None
            for k, n in views.items():
                out[k] = out.get(k, 0) + n
        return out

    def view_files(self):
        return glob.glob(os.path.join(self.audit, "relay-*.views"))

    def kill_relay(self):
        """SIGKILL to every worker (the proctors' are among them): {name: pid}."""
        pids = {w["name"]: w["pid"] for w in self.v.workers()}
        for pid in pids.values():
            os.kill(pid, signal.SIGKILL)
        return pids

    def wait_restarted(self, w, pids):
        back = set()
        w.wait(lambda e: e.get("stage") in pids and e.get("state") == "running" and
               e.get("pid") != pids[e["stage"]] and (back.add(e["stage"]) or back == set(pids)),
               timeout=30, what="every relay worker running again")


class Views(Base):
    def test_1_subscribe_unsubscribe_resubscribe_close(self):
        s, ack = self.sentinel()
        sid, session = ack["sentinelId"], ack["sessionId"]
        seq = self.last_seq()
        p = self.proctor()
        t0 = now_ms()
        self.watch(p, s, ack, 0)
        p.send("proctor.unsubscribe", {"sentinelIds": [sid]})
        p.send("proctor.ping", {})
        p.wait(lambda m: m["type"] == "server.pong", what="pong")
        t1 = now_ms()
        first = self.wait_records(seq, 1, "live.view", sentinelId=sid)[0]
        self.assert_view(first, "desk-1", sid, session, t0, t1)
        self.watch(p, s, ack, 1)
        p.close()
        second = self.wait_records(seq, 2, "live.view", sentinelId=sid)[1]
        self.assert_view(second, "desk-1", sid, session, t1, now_ms())
        # Unsubscribing from what is not watched, or twice, records nothing more.
        p = self.proctor()
        p.send("proctor.unsubscribe", {"sentinelIds": [sid]})
        p.close()
        self.wait_records(seq, 2, "live.view", sentinelId=sid)
        self.check_chain()
        self.no_tokens()

    def test_2_a_view_per_session(self):
        """The sentinel reconnects while the proctor stays subscribed: the view of
        the first session ends with it, the next session's is a new record; an
        offline sentinel is watched by nobody."""
        s, ack = self.sentinel()
        sid = ack["sentinelId"]
        seq = self.last_seq()
        p = self.proctor(P2T)
        t0 = now_ms()
        self.watch(p, s, ack, 0)
        s.send("sentinel.bye", {})
        p.wait(lambda m: m["type"] == "server.sentinel.offline" and
               m["payload"]["sentinelId"] == sid, what="offline")
        t1 = now_ms()
        first = self.wait_records(seq, 1, "live.view", sentinelId=sid)[0]
        self.assert_view(first, "desk-2", sid, ack["sessionId"], t0, t1)
        time.sleep(1.2)  # offline a while: not a view
        s2, ack2 = self.sentinel(sentinelId=sid)
        self.assertNotEqual(ack2["sessionId"], ack["sessionId"])
        t2 = now_ms()
        self.stream(s2, 0)
        self.assertEqual(self.media(p, sid)["sessionId"], ack2["sessionId"])
        p.close()
        recs = self.wait_records(seq, 2, "live.view", sentinelId=sid)
        self.assert_view(recs[1], "desk-2", sid, ack2["sessionId"], t1, now_ms())
        self.assertGreaterEqual(recs[1]["from"], t2 - 1000)
        # A subscription to a sentinel that never comes online: no record.
        p = self.proctor(P2T)
        p.send("proctor.subscribe", {"sentinelIds": ["00000000-0000-4000-8000-00000000abcd"]})
        p.close()
        s2.close()
        time.sleep(0.5)
        self.assertEqual(len(self.since(seq, "live.view", sentinelId=sid)), 2)
        self.assertEqual(self.since(seq, "live.view",
                                    sentinelId="00000000-0000-4000-8000-00000000abcd"), [])
        self.check_chain()

    def test_3_revocation_ends_the_view_and_refuses_the_token(self):
        s, ack = self.sentinel()
        sid = ack["sentinelId"]
        seq = self.last_seq()
        p = self.proctor(P3T)
        t0 = now_ms()
        self.watch(p, s, ack, 0)
        res = subprocess.run([VIGILCTL, "--config", self.v.config, "revoke"], input=P3T,
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(p.expect_close()[0], (3004, "Token revoked"))
        view = self.wait_records(seq, 1, "live.view", sentinelId=sid)[0]
        self.assert_view(view, "desk-3", sid, ack["sessionId"], t0, now_ms())
        q = self.proctor(None)
        q.send("proctor.register", {"token": P3T})
        self.assertEqual(q.expect_close()[0], (3001, "Token revoked"))
        refused = self.wait_records(seq, 1, "auth.failed", reason="Token revoked")[0]
        self.assertEqual((refused["actor"], refused["role"], refused["remote"],
                          refused["endpoint"]), ("desk-3", "proctor", "127.0.0.1", "/proctor"))
        self.check_chain()
        self.no_tokens()

    def test_4_refused_tokens(self):
        """Each refused proctor.register and sentinel.register for its token:
        auth.failed with the reason the client was given, and the token's name
        when the configuration knows it."""
        seq = self.last_seq()
        self.bad_tokens = ("no-such-token-r",)
        cases = [
            ("/proctor", {}, "Missing token", None, None),
            ("/proctor", {"token": "no-such-token-r"}, "Invalid token", None, None),
            ("/proctor", {"token": ST}, "Token not valid for proctors", "cams", "sentinel"),
            ("/proctor", {"token": XT}, "Token expired", "old", "proctor"),
            ("/sentinel", {}, "Missing token", None, None),
            ("/sentinel", {"token": "no-such-token-r"}, "Invalid token", None, None),
            ("/sentinel", {"token": PT}, "Token not valid for sentinels", "desk-1", "proctor"),
        ]
        for endpoint, payload, reason, _, _ in cases:
            if endpoint == "/proctor":
                c = self.proctor(None)
                c.send("proctor.register", payload)
            else:
                c = Client(self.surl)
                self.addCleanup(c.close)
                c.send("sentinel.register", payload)
            (code, text), _ = c.expect_close()
            self.assertEqual((code, text), (3001, reason))
        # Not for its token: no auth.failed.
        c = self.proctor(None)
        c.send("proctor.register", {"token": PT, "version": 2})
        self.assertEqual(c.expect_close()[0][0], 3002)
        c = self.proctor(None)
        c.send("proctor.list", {})
        self.assertEqual(c.expect_close()[0][0], 3001)
        recs = self.wait_records(seq, len(cases), "auth.failed")
        got = sorted((r["endpoint"], r["reason"], r["actor"], r["role"]) for r in recs)
        self.assertEqual(got, sorted((e, why, a, role) for e, _, why, a, role in cases))
        for r in recs:
            self.assertEqual(list(r)[:8], ["seq", "time", "actor", "role", "remote", "action",
                                           "endpoint", "reason"], r)
            self.assertEqual(r["remote"], "127.0.0.1")
            self.assertNotIn("suppressed", r)
        # A refused token refresh is one too.
        p = self.proctor()
        p.send("proctor.auth.refresh", {"token": XT})
        err = p.expect("server.error")
        self.assertEqual((err["code"], err["reason"]), (401, "Token expired"))
        refresh = self.wait_records(seq, len(cases) + 1, "auth.failed")[-1]
        self.assertEqual((refresh["actor"], refresh["reason"]), ("old", "Token expired"))
        self.check_chain()
        self.no_tokens()

    def test_5_clean_restart_records_every_view(self):
        """vigilctl restart relay: the proctors are closed (1012), their views
        recorded before relay exits, and the next relay finds nothing left."""
        s, ack = self.sentinel()
        sid = ack["sentinelId"]
        seq = self.last_seq()
        ps = [self.proctor(t) for t in (PT, P2T)]
        t0 = now_ms()
        for i, p in enumerate(ps):
            self.watch(p, s, ack, i)
        # vigilctl answers once every worker runs again, one after the other.
        self.assertEqual(self.v.ctl("restart", "relay").returncode, 0)
        for p in ps:
            self.assertEqual(close_code(p), 1012)
        recs = self.wait_records(seq, 2, "live.view", sentinelId=sid)
        self.assertEqual(sorted(r["actor"] for r in recs), ["desk-1", "desk-2"])
        for r in recs:
            self.assert_view(r, r["actor"], sid, ack["sessionId"], t0, now_ms())
        # Every record was confirmed before the old relay exited: nothing left.
        self.assertEqual(self.view_files(), [])
        stats = until(self.relay_views, what="relay's heartbeats")
        self.assertEqual(stats["recovered"], 0)
        self.check_chain()


class Killed(Base):
    def start_sentinel(self, name, count=1):
        tmp = tempfile.mkdtemp(dir=self.v.dir)
        proc = subprocess.Popen([SENTINEL, "--url", self.surl, "--token", ST, "--count",
                                 str(count), "--name", name, "--size", "160x120", "--bitrate",
                                 "100", "--fps", "5", "--duration", "120", "--state",
                                 tmp + "/id"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        self.addCleanup(proc.wait, 30)
        self.addCleanup(proc.terminate)
        return proc

    def online(self, p, prefix, n=1):
        ids = {}
        while len(ids) < n:
            msg, _ = p.wait(lambda m: m["type"] == "server.sentinel.online" and
                            m["payload"]["sentinel"]["name"].startswith(prefix), 30, "online")
            e = msg["payload"]["sentinel"]
            ids[e["sentinelId"]] = e["sessionId"]
        return ids

    def test_1_relay_killed_with_three_proctors_watching(self):
        """kill -9 relay mid-view: when vigild has restarted it, three live.view
        records with `to` no later than the kill and no earlier than the last
        moment the proctors were known to watch."""
        first = self.proctor()
        self.start_sentinel("killcam")
        (sid, session), = self.online(first, "killcam").items()
        seq = self.last_seq()
        ps = [first, self.proctor(P2T), self.proctor(P3T)]
        t0 = now_ms()
        for p in ps:
            p.send("proctor.subscribe", {"sentinelIds": [sid]})
        for p in ps:
            self.media(p, sid, timeout=30)
        watching = now_ms()  # all three had a segment: watching at least until now
        # the state file's alive line comes once a second: one after `watching`
        time.sleep(1.5)
        for p in ps:
            self.media(p, sid, timeout=30)
        w = self.v.watch()
        self.addCleanup(w.close)
        t_kill = now_ms()
        pids = self.kill_relay()
        for p in ps:
            with self.assertRaises((Closed, websocket.WebSocketException, OSError)):
                while True:
                    p.recv(10)
        self.wait_restarted(w, pids)
        for pid in pids.values():
            self.assertFalse(alive(pid))
        recs = self.wait_records(seq, 3, "live.view", sentinelId=sid)
        self.assertEqual(sorted(r["actor"] for r in recs), ["desk-1", "desk-2", "desk-3"])
        for r in recs:
            self.assert_view(r, r["actor"], sid, session, t0, t_kill)
            self.assertGreaterEqual(r["to"], watching, r)
        # Each worker recorded what its own file held.
        stats = until(lambda: (lambda v: v if v and v["recovered"] == 3 else None)(
            self.relay_views()), what="relay's heartbeats")
        until(lambda: self.relay_views()["waiting"] == 0, what="records confirmed")
        # confirmed, so the files are gone (no view since the restart)
        self.assertEqual(self.view_files(), [])
        self.assertEqual(stats["recovered"], 3)
        self.check_chain()
        self.no_tokens()

    def test_2_writer_killed_while_relay_emits(self):
        """kill -9 archive while proctors keep ending views: every view is
        recorded once when vigild has restarted the writer."""
        watcher = self.proctor()
        self.start_sentinel("churn", count=2)
        ids = sorted(self.online(watcher, "churn", 2))
        watcher.close()
        seq = self.last_seq()
        ps = [self.proctor(t) for t in (PT, P2T, P3T)]
        ended = 0
        pid = self.v.stage("archive")["pid"]
        w = self.v.watch()
        self.addCleanup(w.close)
        stop = time.monotonic() + 6
        killed = False
        while time.monotonic() < stop:
            for p in ps:
                p.send("proctor.subscribe", {"sentinelIds": ids})
            for p in ps:
                p.send("proctor.unsubscribe", {"sentinelIds": ids})
                ended += len(ids)
            for p in ps:  # in order: the unsubscribe was handled
                p.send("proctor.ping", {})
                p.wait(lambda m: m["type"] == "server.pong", what="pong")
            if not killed and time.monotonic() > stop - 4.5:
                os.kill(pid, signal.SIGKILL)
                killed = True
            time.sleep(0.05)
        w.wait_state("archive", "running", timeout=30, not_pid=pid)
        recs = [r for r in self.wait_records(seq, ended, "live.view", timeout=30)
                if r["sentinelId"] in ids]
        self.assertEqual(len(recs), ended)
        views = [(r["actor"], r["sentinelId"], r["from"], r["to"]) for r in recs]
        self.assertEqual(len(set(views)), ended, "a view recorded twice")
        self.check_chain()


class Flood(Base):
    """A stranger's 500 bad tokens on /proctor (and 100 on /sentinel): a
    bounded number of records, and every refusal counted."""
    # one after the other, faster than the closes end: over the per-address cap;
    # one worker: the bound of records a second is each process's
    vigil_args = {"limits": "max_message_bytes: 2MiB, max_connections_per_ip: 1000"}

    def flood(self, url, type_, n, prefix):
        for i in range(n):
            c = Client(url)
            c.send(type_, {"token": "%s-%d" % (prefix, i)}, binary=False)
            (code, _), _ = c.expect_close()
            self.assertEqual(code, 3001)
            c.close()

    def counted(self, seq, endpoint, n):
        recs = [r for r in self.since(seq, "auth.failed")
                if r.get("endpoint") in (endpoint, None)]
        # each record is its own refusal (the flood's tail is one without an
        # endpoint, standing for none) plus the ones suppressed before it
        total = sum(1 for r in recs if r.get("endpoint")) + \
            sum(r.get("suppressed", 0) for r in recs)
        return (recs, total) if total >= n else None

    def test_flood_is_bounded_and_counted(self):
        self.bad_tokens = ("flood-p-1", "flood-s-1", "flood-p-499")
        seq = self.last_seq()
        t0 = time.monotonic()
        self.flood(self.purl, "proctor.register", 500, "flood-p")
        took = time.monotonic() - t0
        recs, total = until(lambda: self.counted(seq, "/proctor", 500), what="500 counted")
        self.assertEqual(total, 500)
        # at most 20 a second, and the tail's one
        self.assertLessEqual(len(recs), 20 * (int(took) + 2) + 1)
        self.assertLess(len(recs), 500)
        self.assertTrue(any(r.get("suppressed", 0) > 0 for r in recs))
        self.assertTrue(all(r["actor"] is None for r in recs))
        seq = self.last_seq()
        self.flood(self.surl, "sentinel.register", 100, "flood-s")
        recs, total = until(lambda: self.counted(seq, "/sentinel", 100), what="100 counted")
        self.assertEqual(total, 100)
        self.assertLess(len(recs), 100)
        self.check_chain()
        self.no_tokens()


class Shutdown(Base):
    def test_vigild_stopping_records_every_view(self):
        """vigild stops every stage in order, archive last: the views of
        proctors still watching are on disk when vigild has exited, and no
        state file is left."""
        s, ack = self.sentinel()
        ps = [self.proctor(t) for t in (PT, P2T)]
        t0 = now_ms()
        for i, p in enumerate(ps):
            self.watch(p, s, ack, i)
        self.v.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.v.proc.wait(60), 0)
        t1 = now_ms()
        recs = [r for r in self.records() if r["action"] == "live.view"]
        self.assertEqual(sorted(r["actor"] for r in recs), ["desk-1", "desk-2"])
        for r in recs:
            self.assert_view(r, r["actor"], ack["sentinelId"], ack["sessionId"], t0, t1)
        self.assertEqual(self.view_files(), [])
        self.assertNotIn("not confirmed by the writer", self.v.log())
        self.check_chain()
        self.no_tokens()


class DualStack(unittest.TestCase):
    def test_ipv4_client_of_a_dual_stack_listener_is_ipv4(self):
        """remote is "127.0.0.1", not "::ffff:127.0.0.1", when relay listens on [::]."""
        v = Vigil(extra=AUTH)
        with open(v.config) as f:
            cfg = f.read()
        with open(v.config, "w") as f:
            f.write(cfg.replace('relay: "127.0.0.1:0"', 'relay: "[::]:0"'))
        try:
            v.start()
        except AssertionError as e:
            v.stop()
            self.skipTest("no IPv6 listener here: %s" % str(e)[-200:])
        self.addCleanup(v.stop)
        port = v.stage("relay")["listen"].rsplit(":", 1)[1]
        p = Proctor("ws://127.0.0.1:%s/proctor" % port)
        self.addCleanup(p.close)
        p.send("proctor.register", {"token": "dual-stack-r"})
        self.assertEqual(p.expect_close()[0][0], 3001)
        audit = os.path.join(v.dir, "data", "audit")

        def refused():
            for f in glob.glob(os.path.join(audit, "audit-*.jsonl")):
                with open(f) as fh:
                    for line in fh:
                        if '"auth.failed"' in line:
                            return json.loads(line)
            return None
        self.assertEqual(until(refused, what="auth.failed")["remote"], "127.0.0.1")


class SentinelAuthOff(unittest.TestCase):
    def test_no_auth_failed_when_sentinel_auth_is_none(self):
        v = Vigil(extra=AUTH.replace("sentinel: required", "sentinel: none")).start()
        self.addCleanup(v.stop)
        c = Client(v.url("ingest", "/sentinel"))
        self.addCleanup(c.close)
        c.register("whatever-r", name="open")
        c.send("sentinel.bye", {})
        c.expect_close()
        time.sleep(1.5)
        recs = []
        for f in glob.glob(os.path.join(v.dir, "data", "audit", "audit-*.jsonl")):
            with open(f) as fh:
                recs += [json.loads(line) for line in fh if line.strip()]
        self.assertEqual([r for r in recs if r["action"] == "auth.failed"], [])


if __name__ == "__main__":
    unittest.main()
