#!/usr/bin/python3
"""Integration tests of relay.workers (issue 13): vigild's relay/0 .. relay/N-1
on the one relay socket. A rolling restart under load (real load processes:
tests/bench_relay's sentinels, tests/bench_proctor's proctors, which connect
again at a 1012 and count what they missed); what crosses workers (the
proctor count in server.status, /api/status and the metrics, the keyframe
requests merged in ingest, limits.max_proctors); a worker restarted or killed
alone."""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from console_client import Operator  # noqa: E402
from proctor import Closed, Proctor  # noqa: E402
from vigil import BUILD, SOURCE, Vigil, alive, until  # noqa: E402
from wsclient import Client  # noqa: E402

import websocket  # noqa: E402

SENTINELS_BIN = os.path.join(BUILD, "tests", "bench_relay")
PROCTORS_BIN = os.path.join(BUILD, "tests", "bench_proctor")
FIX = os.path.join(SOURCE, "tests", "data", "fmp4")
PTOKEN, OTOKEN, STOKEN = "proctor-secret", "operator-secret", "sentinel-secret"
AUTH = """auth:
  sentinel: required
  tokens:
    - { name: s1, role: sentinel, token: "sentinel-secret" }
    - { name: p1, role: proctor, token: "proctor-secret" }
    - { name: ops, role: operator, token: "operator-secret" }
"""
# The case is 200 proctors and 20 sentinels; tests/bench_rolling.py runs
# larger ones (VIGIL_ROLLING_PROCTORS, VIGIL_ROLLING_SENTINELS set them here too).
PROCTORS = int(os.environ.get("VIGIL_ROLLING_PROCTORS", "200"))
SENTINELS = int(os.environ.get("VIGIL_ROLLING_SENTINELS", "20"))


def close_code(p, timeout=15):
    """The close code a proctor gets; python3-websocket refuses 1012 (service
    restart) as a code it does not know."""
    try:
        return p.expect_close(timeout)[0][0]
    except websocket.WebSocketProtocolException as e:
        if "close opcode" not in str(e):
            raise
        return 1012



def rolling_restart(v, proctors, sentinels, tmp, restart=("restart", "relay"), before=None):
    """Sentinels and proctors (which come back after each 1012) stream through
    v; `vigilctl restart relay` once every proctor streams (and before() has
    run, if given). Returns the
    proctors' and the sentinels' figures and the seconds the restart took."""
    setup_s, before_s, after_s = 8 + proctors // 100, 2, 6
    start_ms = int(time.time() * 1000) + setup_s * 1000
    end_ms = start_ms + (before_s + after_s) * 1000
    window = ["--sentinels", str(sentinels), "--start-ms", str(start_ms), "--end-ms",
              str(end_ms)]
    ids = os.path.join(tmp, "ids")
    logs = {}

    def spawn(name, cmd):
        out, err = open(os.path.join(tmp, name + ".json"), "w"), \
            open(os.path.join(tmp, name + ".err"), "w")
        logs[name] = (out.name, err.name)
        p = subprocess.Popen(cmd + window, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        out.close()
        err.close()
        return p

    def tail(name):
        with open(logs[name][1]) as f:
            return f.read()[-2000:]

    procs = [spawn("sentinels", [SENTINELS_BIN, "--sentinel-url", v.url("ingest", "/sentinel"),
                                 "--ids-out", ids, "--fixtures", FIX,
                                 "--segment-bytes", "20000"])]
    try:
        until(lambda: os.path.exists(ids) or procs[0].poll() is not None, setup_s,
                 "the sentinels' ids")
        if procs[0].poll() is not None:
            raise AssertionError("bench_relay: " + tail("sentinels"))
        procs.append(spawn("proctors", [PROCTORS_BIN, "--url", v.url("relay", "/proctor"),
                                        "--token", PTOKEN, "--ids", ids, "--first", "0",
                                        "--count", str(proctors), "--subs", "1",
                                        "--reconnect"]))
        until(lambda: "ready" in tail("proctors") or procs[1].poll() is not None,
                 setup_s, "every proctor registered")
        # Each worker serves some, and each proctor has a segment before the restart.
        until(lambda: time.time() * 1000 >= start_ms + before_s * 1000, setup_s + before_s + 5,
                 "the restart's time")
        if before is not None:
            before()
        pids = {s["name"]: s["pid"] for s in v.workers()}
        t0 = time.monotonic()
        res = v.ctl(*restart)
        took = time.monotonic() - t0
        after = {s["name"]: s["pid"] for s in v.workers()}
        for p in procs:
            p.wait(timeout=(end_ms - time.time() * 1000) / 1000 + 20)
        for name, p in zip(("sentinels", "proctors"), procs):
            if p.returncode != 0:
                raise AssertionError("%s: rc %d: %s" % (name, p.returncode, tail(name)))
        with open(logs["proctors"][0]) as f:
            pro = json.load(f)
        pro["stderr"] = tail("proctors")[-600:]
        with open(logs["sentinels"][0]) as f:
            sen = json.load(f)
        return pro, sen, took, pids, after, res.stdout
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


class Rolling(unittest.TestCase):
    """Issue 13's rolling restart: every proctor back and streaming, no gap in
    what the ring still held, no connection refused, no sentinel dropped."""

    def test_rolling_restart_under_load(self):
        v = Vigil(extra=AUTH.replace("sentinel: required", "sentinel: none"), workers=2,
                  limits="max_sentinels: %d, max_proctors: %d, max_message_bytes: 2MiB, "
                  "max_connections_per_ip: 0" % (SENTINELS + 10, PROCTORS + 10),
                  timeouts="idle: 120s")
        tmp = tempfile.mkdtemp(dir=v.dir)
        v.start()
        try:
            # Once all are in, a handshake cap under each worker's share of
            # the proctors: their 1012s all at once would be refused by the
            # other worker; paced, none is.
            pro, sen, took, before, after, out = rolling_restart(
                v, PROCTORS, SENTINELS, tmp,
                before=lambda: v.ctl("config", "set", "limits.max_handshakes", str(PROCTORS // 4)))
            refused = sum((s.get("heartbeat") or {}).get("stats", {}).get(k, 0)
                          for s in v.workers() for k in ("refusedPerIp", "refusedHandshakes"))
        finally:
            v.stop()
        print(json.dumps(pro), file=sys.stderr)
        print("\nrolling restart of 2 workers, %d proctors, %d sentinels: %.2f s; back after "
              "their 1012 in %.0f ms at most (%.0f on average); %d reconnections, %d catch-up "
              "repeats" % (PROCTORS, SENTINELS, took, pro["backMsMax"], pro["backMsAvg"],
                           pro["restarts"], pro["repeats"]), file=sys.stderr)
        self.assertRegex(out, r"^relay running \(pids \d+, \d+\)")
        for name in before:
            self.assertNotEqual(before[name], after[name], name)
        # Every proctor was on a worker that restarted: one 1012 at least (two
        # when it came back to the worker restarted second).
        self.assertGreaterEqual(pro["restarts"], PROCTORS)
        # Each one streams again (back: a segment after its last 1012).
        self.assertEqual(pro["streaming"], PROCTORS, pro)
        self.assertEqual((pro["gaps"], pro["missed"], pro["skips"]), (0, 0, 0), pro)
        self.assertEqual((pro["failures"], pro["closed"]), (0, 0), pro)
        self.assertEqual(refused, 0)
        self.assertEqual(sen["closed"], 0, sen)


FIXTURE = {name: open(os.path.join(FIX, name), "rb").read()
           for name in ("init.mp4", "seg0.m4s")}


class Workers(unittest.TestCase):
    """One vigild with two relay workers, shared by the tests."""

    @classmethod
    def setUpClass(cls):
        cls.v = Vigil(extra=AUTH, workers=2, limits="max_message_bytes: 2MiB").start()
        cls.purl = cls.v.url("relay", "/proctor")
        cls.surl = cls.v.url("ingest", "/sentinel")

    @classmethod
    def tearDownClass(cls):
        cls.v.stop()

    def proctor(self):
        p = Proctor(self.purl)
        self.addCleanup(p.close)
        ack = p.register(PTOKEN)
        return p, ack["proctorId"]

    def worker_of(self, proctor_id):
        """The worker that logged the proctor's registration."""
        def look():
            lines = self.v.request(cmd="logs", stage="relay", lines=1000)["lines"]
            for line in lines:
                m = re.search(r" (relay/\d)\[\d+\] info: proctor %s " % proctor_id, line)
                if m:
                    return m.group(1)
            return None
        return until(look, 10, "proctor %s in relay's log" % proctor_id)

    def one_on_each(self):
        """Proctors registered until each worker has one: {worker: (proctor, id)}."""
        got = {}
        for _ in range(40):
            p, pid = self.proctor()
            w = self.worker_of(pid)
            if w in got:
                p.close()  # only the two stay
            got.setdefault(w, (p, pid))
            if len(got) == 2:
                return got
        raise AssertionError("40 proctors, all on %s" % list(got))

    def load(self):
        """Proctors per worker, from vigild's last heartbeats."""
        return {s["name"]: (s.get("heartbeat") or {}).get("connections")
                for s in self.v.workers()}

    def http(self, path):
        req = urllib.request.Request("http://%s%s" % (self.v.stage("httpd")["listen"], path),
                                     headers={"Authorization": "Bearer " + OTOKEN})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read().decode()

    def test_status_lists_each_worker(self):
        st = self.v.status()
        self.assertEqual([s["name"] for s in st["stages"]],
                         ["ingest", "relay/0", "relay/1", "archive", "httpd"])
        self.assertEqual([s.get("worker") for s in st["stages"]], [None, 0, 1, None, None])
        relay = [s for s in st["stages"] if s["name"].startswith("relay/")]
        self.assertEqual(len({s["pid"] for s in relay}), 2)
        self.assertEqual({s["listen"] for s in relay}, {self.v.stage("relay")["listen"]})
        text = self.v.ctl("status").stdout
        for name in ("relay/0", "relay/1"):
            self.assertRegex(text, r"(?m)^%s\s+running\s+\d+\s" % name)
        # A worker's lines carry its name; a stage's logs merge its workers'.
        lines = self.v.ctl("logs", "relay", "--lines", "1000").stdout.splitlines()
        for name in ("relay/0", "relay/1"):
            self.assertTrue(any(" %s[" % name in ln for ln in lines), name)
        one = self.v.ctl("logs", "relay/1", "--lines", "1000").stdout.splitlines()
        self.assertTrue(one and all(" relay/1[" in ln for ln in one), one[:3])
        for bad in ("relay/2", "relay/x", "ingest/0"):
            self.assertFalse(self.v.request(cmd="logs", stage=bad)["ok"], bad)
        self.assertEqual(self.v.ctl("restart", "relay/9", check=False).returncode, 2)

    def test_connections_spread_over_the_workers(self):
        """The kernel wakes one worker per connection (EPOLLEXCLUSIVE) and a
        worker that took one waits behind the others."""
        count = {}
        for _ in range(20):
            _, pid = self.proctor()
            w = self.worker_of(pid)
            count[w] = count.get(w, 0) + 1
        print("\n20 proctors, one after the other: %s" % sorted(count.items()), file=sys.stderr)
        self.assertEqual(set(count), {"relay/0", "relay/1"})

    def test_every_worker_counts_in_status_and_metrics(self):
        mine = self.one_on_each()
        p0 = mine["relay/0"][0]
        for _ in range(2):
            self.proctor()

        def total(load):
            return sum(n or 0 for n in load.values())

        # The four of this test, once those of the tests before are gone.
        n = until(lambda: total(self.load()) == 4 and 4, 15, "heartbeats")
        # server.status on a worker counts the other's proctors too.
        msg, _ = p0.wait(lambda m: m["type"] == "server.status" and
                         m["payload"]["proctors"] == n, 10, "server.status of every worker")
        self.assertEqual(msg["payload"]["stages"]["relay"], "running")
        st = until(lambda: (lambda j: j if j["proctors"] == n else None)(
            json.loads(self.http("/api/status"))), 10, "/api/status")
        self.assertEqual([w["name"] for w in st["stages"]["relay"]["workers"]],
                         ["relay/0", "relay/1"])
        self.assertEqual(st["stages"]["relay"]["state"], "running")
        m = json.loads(self.http("/api/metrics"))["stages"]["relay"]
        self.assertEqual(sum(w["connections"] for w in m["workers"]), m["connections"])
        self.assertEqual(m["stats"]["proctors"],
                         sum(w["stats"]["proctors"] for w in m["workers"]))
        prom = self.http("/metrics")
        for w in ("0", "1"):
            self.assertRegex(prom, r'(?m)^vigil_stage_connections\{stage="relay",worker="%s"\} '
                             r'\d+$' % w)
        self.assertRegex(prom, r"(?m)^vigil_proctors_connected %d$" % n)

    def test_max_proctors_is_the_servers_not_a_workers(self):
        mine = self.one_on_each()
        others = [p for p, _ in mine.values()]
        # Those of the tests before are gone: one proctor on each worker.
        until(lambda: self.load() == {"relay/0": 1, "relay/1": 1}, 15, "heartbeats")
        w = self.v.watch()
        self.addCleanup(w.close)
        self.assertTrue(self.v.request(cmd="config.set", key="limits.max_proctors",
                                       value="2")["ok"])
        seen = set()
        w.wait(lambda e: e.get("type") == "config.reloaded" and e.get("from", "").startswith(
            "relay/") and (seen.add(e["from"]) or len(seen) == 2), 10, "both workers reloaded")
        self.addCleanup(self.v.request, cmd="config.set", key="limits.max_proctors",
                        value="null")
        # Each worker serves fewer than n: refused on either for the other's.
        for _ in range(4):
            p = Proctor(self.purl)
            self.addCleanup(p.close)
            p.send("proctor.register", {"token": PTOKEN})
            (code, reason), _ = p.expect_close(timeout=10)
            self.assertEqual((code, reason), (3007, "Server busy"))
        for p in others:
            p.send("proctor.ping", {})
            p.wait(lambda m: m["type"] == "server.pong", 10, "pong")

    def test_keyframe_requests_meet_in_ingest(self):
        """Requests from both workers within a second: one to the sentinel now,
        one merged when the second is over; three if each worker throttled
        alone."""
        s = Client(self.surl)
        self.addCleanup(s.close)
        ack = s.register(STOKEN, name="kf")
        s.send("sentinel.init", {"data": FIXTURE["init.mp4"]})
        mine = self.one_on_each()
        seq = [0]

        def segment():  # a join point answers each request: nothing to ask again
            s.send("sentinel.segment", {"sequence": seq[0], "data": FIXTURE["seg0.m4s"],
                                        "duration": 1000})
            seq[0] += 1

        segment()
        a, b = mine["relay/0"][0], mine["relay/1"][0]
        a.send("proctor.keyframe.request", {"sentinelId": ack["sentinelId"]})
        self.assertEqual(s.expect("server.keyframe.request"), {})
        segment()
        for _ in range(3):
            b.send("proctor.keyframe.request", {"sentinelId": ack["sentinelId"]})
            time.sleep(0.3)  # past relay's own 250 ms merge: each one on the bus
        got = 0
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                msg = s.recv(max(deadline - time.monotonic(), 0.01))
            except websocket.WebSocketTimeoutException:
                break
            if msg["type"] == "server.keyframe.request":
                got += 1
                segment()
        self.assertEqual(got, 1)

    def test_restart_of_one_worker(self):
        mine = self.one_on_each()
        before = {s["name"]: s["pid"] for s in self.v.workers()}
        res = self.v.ctl("restart", "relay/1")
        after = {s["name"]: s["pid"] for s in self.v.workers()}
        self.assertEqual(res.stdout.strip(), "relay/1 running (pid %d)" % after["relay/1"])
        self.assertEqual(after["relay/0"], before["relay/0"])
        self.assertNotEqual(after["relay/1"], before["relay/1"])
        self.assertEqual(close_code(mine["relay/1"][0]), 1012)
        p0 = mine["relay/0"][0]
        p0.send("proctor.ping", {})
        p0.wait(lambda m: m["type"] == "server.pong", 10, "pong from relay/0")

    def test_console_restart_is_rolling_and_names_every_pid(self):
        mine = self.one_on_each()
        before = {s["name"]: s["pid"] for s in self.v.workers()}
        o = Operator("ws://%s/api/ws" % self.v.stage("httpd")["listen"])
        self.addCleanup(o.close)
        o.auth(OTOKEN)
        o.send("operator.stage.set", {"stage": "relay", "state": "restart"})
        res = o.result("operator.stage.set", timeout=30)
        after = {s["name"]: s["pid"] for s in self.v.workers()}
        self.assertEqual((res["stage"], res["state"]), ("relay", "restart"), res)
        self.assertEqual(res["pids"], [after["relay/0"], after["relay/1"]], res)
        self.assertEqual(res["pid"], after["relay/0"])
        self.assertFalse(set(before.values()) & set(after.values()), (before, after))
        # one at a time: relay/1 was started again only after relay/0 ran
        lines = self.v.request(cmd="logs", stage="relay", lines=1000)["lines"]
        started = [i for i, line in enumerate(lines) if " info: started " in line and
                   ("[%d]" % after["relay/0"] in line or "[%d]" % after["relay/1"] in line)]
        stopped = [i for i, line in enumerate(lines)
                   if "[%d] info: stopped" % before["relay/1"] in line]
        self.assertEqual(len(started), 2, lines[-20:])
        self.assertTrue(stopped and started[0] < stopped[0] < started[1], lines[-40:])
        for w in ("relay/0", "relay/1"):
            self.assertEqual(close_code(mine[w][0]), 1012)

    def test_a_worker_down_shows_in_server_status(self):
        mine = self.one_on_each()
        p1 = mine["relay/1"][0]
        self.assertEqual(self.v.ctl("stop", "relay/0").stdout.strip(), "relay/0 down")
        self.addCleanup(self.v.ctl, "start", "relay/0", check=False)
        msg, _ = p1.wait(lambda m: m["type"] == "server.status" and
                         m["payload"]["stages"]["relay"] == "offline", 10, "relay offline")
        self.assertEqual(msg["payload"]["state"], "degraded")
        self.assertRegex(self.v.ctl("start", "relay/0").stdout, r"^relay/0 running \(pid \d+\)")
        p1.wait(lambda m: m["type"] == "server.status" and m["payload"]["state"] == "running",
                10, "running again")

    def test_killed_worker_drops_only_its_proctors(self):
        mine = self.one_on_each()
        w = self.v.watch()
        self.addCleanup(w.close)
        pid = self.v.stage("relay/0")["pid"]
        os.kill(pid, signal.SIGKILL)
        gone = False
        deadline = time.monotonic() + 10
        while not gone and time.monotonic() < deadline:
            try:
                mine["relay/0"][0].recv(max(deadline - time.monotonic(), 0.01))
            except (Closed, websocket.WebSocketException, OSError):
                gone = True
        self.assertTrue(gone, "relay/0's proctor still connected")
        w.wait_state("relay/0", "running", not_pid=pid)
        p1 = mine["relay/1"][0]
        p1.send("proctor.ping", {})
        p1.wait(lambda m: m["type"] == "server.pong", 10, "pong from relay/1")
        # The proctor comes back, to either worker.
        p, _ = self.proctor()
        p.send("proctor.ping", {})
        p.wait(lambda m: m["type"] == "server.pong", 10, "pong")
        self.assertIn("signal 9", self.v.stage("relay/0")["lastExit"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
