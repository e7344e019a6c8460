#!/usr/bin/python3
"""Integration tests of the operator console's side in vigild (issue 11,
PROTOCOL.md section 7, common/bus.h): stage actions that answer once done,
logs and their following, the announced shutdown, vigilctl's commands for
them, loop figures in every heartbeat, and a log flood that must not stall
vigild. The bus requests httpd will send are handed to vigild through
ctl.sock's {"cmd":"bus"}, which runs the same code and returns the answers
on the ctl connection."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import msgpack

sys.path.insert(0, os.path.dirname(__file__))
from proctor import Proctor  # noqa: E402
from vigil import BUILD, STAGES, VIGILCTL, Vigil, Watch, alive  # noqa: E402
from wsclient import Client  # noqa: E402

STOKEN, PTOKEN = "sentinel-secret", "proctor-secret"
AUTH = """auth:
  sentinel: required
  tokens:
    - { name: s1, role: sentinel, token: "sentinel-secret" }
    - { name: p1, role: proctor, token: "proctor-secret" }
"""
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \w+\[\d+\] (\w+): ")


class Stream(Watch):
    """A ctl.sock connection that sent one request and reads what comes back.
    wait() keeps what it passed over for the next wait()."""

    def __init__(self, path, **req):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""
        self.backlog = []
        self.sock.sendall((json.dumps(req) + "\n").encode())
        self.answer = self._line(10)

    def wait(self, pred, timeout=15, what="event"):
        for i, ev in enumerate(self.backlog):
            if pred(ev):
                return self.backlog.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                ev = self._line(max(left, 0.01))
            except TimeoutError:
                raise AssertionError("timed out waiting for %s; saw %s" % (
                    what, self.backlog[-20:]))
            if pred(ev):
                return ev
            self.backlog.append(ev)

    def bus(self, type_, body):
        """Another console request on the same connection; returns vigild's ack."""
        self.sock.sendall((json.dumps({"cmd": "bus", "type": type_, "body": body}) +
                           "\n").encode())
        return self.wait(lambda e: "ok" in e, 10, "ack of " + type_)

    def next_bus(self, type_, timeout=10):
        return self.wait(lambda e: e.get("type") == type_, timeout, type_)["body"]


def vigilctl_pid(out):
    m = re.search(r"running \(pid (\d+)\)", out)
    assert m, out
    return int(m.group(1))


class Actions(unittest.TestCase):
    """One vigild; each test leaves every stage running."""

    @classmethod
    def setUpClass(cls):
        cls.v = Vigil(extra=AUTH).start()

    @classmethod
    def tearDownClass(cls):
        cls.v.stop()

    def tearDown(self):
        for s in self.v.status()["stages"]:
            if s["state"] != "running":
                self.v.request(cmd="start", stage=s["name"], wait=True)

    def test_restart_returns_once_running_with_a_new_pid(self):
        for stage in ("relay", "httpd"):
            before = self.v.pids()
            res = self.v.ctl("restart", stage)
            pid = vigilctl_pid(res.stdout)
            st = self.v.stage(stage)  # asked when vigilctl returned: no wait
            self.assertEqual((st["state"], st["pid"]), ("running", pid))
            self.assertNotEqual(pid, before[stage])
            self.assertFalse(alive(before[stage]))
            others = {s: p for s, p in self.v.pids().items() if s != stage}
            self.assertEqual(others, {s: p for s, p in before.items() if s != stage})

    def test_kill_returns_once_the_crash_restart_brought_it_back(self):
        before = self.v.pids()["archive"]
        res = self.v.ctl("kill", "archive")
        pid = vigilctl_pid(res.stdout)
        st = self.v.stage("archive")
        self.assertEqual((st["state"], st["pid"]), ("running", pid))
        self.assertNotEqual(pid, before)
        self.assertIn("signal 9", st["lastExit"])

    def test_stop_then_start_one_stage(self):
        res = self.v.ctl("stop", "relay")
        self.assertEqual(res.stdout.strip(), "relay down")
        st = self.v.stage("relay")
        self.assertEqual((st["state"], st["pid"]), ("down", 0))
        # Already there: done at once.
        self.assertEqual(self.v.ctl("stop", "relay").returncode, 0)
        res = self.v.ctl("kill", "relay", check=False)
        self.assertEqual(res.returncode, 1)
        self.assertIn("relay is not running (down)", res.stderr)
        pid = vigilctl_pid(self.v.ctl("start", "relay").stdout)
        self.assertEqual(self.v.stage("relay")["pid"], pid)
        res = self.v.ctl("start", "relay", check=False)
        self.assertEqual(res.returncode, 1)
        self.assertIn("already running", res.stderr)
        # The other stages never moved.
        self.assertEqual([s["state"] for s in self.v.status()["stages"]], ["running"] * 4)

    def test_vigilctl_usage_errors_exit_2(self):
        for args in (["restart", "nosuch"], ["kill"], ["shutdown"], ["shutdown", "--in", "3601"],
                     ["shutdown", "--in", "-1"], ["logs", "relay", "--lines", "5000"],
                     ["logs", "relay", "--lines", "0"]):
            res = self.v.ctl(*args, check=False)
            self.assertEqual(res.returncode, 2, (args, res.stderr))
        # as the console's operator.logs: 1 to 1000 (0 is for --follow alone)
        self.assertIn("from 1 to 1000", res.stderr)
        help_text = self.v.ctl("--help").stdout
        for word in ("kill", "shutdown", "logs"):
            self.assertIn(word, help_text)
        self.assertIn("--follow", self.v.ctl("logs", "--help").stdout)
        self.assertIn("--in SECONDS", self.v.ctl("shutdown", "--help").stdout)

    def test_bus_stage_set_answers_each_ref_when_done(self):
        """stage.set as httpd sends it: several at once, each answered with its
        own ref; refusals at once; results once the stage got there."""
        before = self.v.pids()
        s = Stream(self.v.ctl_path, cmd="bus", type="stage.set",
                   body={"ref": 1, "stage": "relay", "state": "restart"})
        self.assertTrue(s.answer["ok"], s.answer)
        s.bus("stage.set", {"ref": "two", "stage": "archive", "state": "kill"})
        s.bus("stage.set", {"ref": [3], "stage": "relay", "state": "pause"})
        s.bus("stage.set", {"ref": 4, "stage": "nosuch", "state": "stop"})
        s.bus("stage.set", {"ref": 5, "stage": "httpd", "state": "start"})
        results = {}
        while len(results) < 5:
            body = s.next_bus("stage.result", timeout=35)
            results[json.dumps(body["ref"])] = body
        self.assertEqual(results["1"]["state"], "restart")
        self.assertEqual(results["1"]["stage"], "relay")
        self.assertNotEqual(results["1"]["pid"], before["relay"])
        self.assertEqual(results['"two"']["stage"], "archive")
        self.assertNotEqual(results['"two"']["pid"], before["archive"])
        self.assertIn("unknown state 'pause'", results["[3]"]["error"])
        self.assertIn("unknown stage 'nosuch'", results["4"]["error"])
        self.assertIn("httpd is already running", results["5"]["error"])
        after = self.v.pids()
        self.assertEqual((after["relay"], after["archive"]),
                         (results["1"]["pid"], results['"two"']["pid"]))
        # stop answers with pid 0 once down; start brings it back.
        s.bus("stage.set", {"ref": 6, "stage": "relay", "state": "stop"})
        self.assertEqual(s.next_bus("stage.result"),
                         {"ref": 6, "stage": "relay", "state": "stop", "pid": 0})
        s.bus("stage.set", {"ref": 7, "stage": "relay", "state": "start"})
        body = s.next_bus("stage.result")
        self.assertEqual(body["pid"], self.v.stage("relay")["pid"])
        s.close()

    def test_every_heartbeat_carries_loop_figures(self):
        for s in self.v.status()["stages"]:
            # A heartbeat that covers a whole second of rounds. Heartbeats are
            # no event on the watch stream: status is asked until one came.
            first = (s["heartbeat"] or {}).get("uptimeMs", 0)
            deadline = time.monotonic() + 5
            while True:
                hb = self.v.stage(s["name"])["heartbeat"] or {}
                if hb.get("uptimeMs", 0) >= first + 1000 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            self.assertGreater(hb["loopAvgS"], 0, (s["name"], hb))
            self.assertGreaterEqual(hb["loopMaxS"], hb["loopAvgS"], s["name"])
            self.assertGreaterEqual(hb["loopAvgS"], hb["loopMinS"], s["name"])
            self.assertGreaterEqual(hb["loopMinS"], 0, s["name"])
            self.assertLess(hb["loopMaxS"], 1, s["name"])

    def refused_proctor_line(self):
        """Makes relay write a known line: a proctor with a bad token."""
        p = Proctor(self.v.url("relay", "/proctor"))
        p.send("proctor.register", {"token": "wrong-%d" % time.monotonic_ns()})
        p.expect_close()
        p.close()

    def test_vigilctl_logs_follow_prints_new_lines(self):
        proc = subprocess.Popen([VIGILCTL, "--config", self.v.config, "logs", "relay",
                                 "--lines", "2", "--follow"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            for _ in range(2):  # the last lines first
                self.assertRegex(proc.stdout.readline(), LINE)
            t0 = time.monotonic()
            self.refused_proctor_line()
            while True:
                line = proc.stdout.readline()
                if not line:
                    self.fail("vigilctl ended: %s" % proc.stderr.read())
                if "proctor registration refused (3001)" in line:
                    break
            self.assertLess(time.monotonic() - t0, 2.0)
            self.assertRegex(line, r"relay\[%d\] info: " % self.v.pids()["relay"])
        finally:
            proc.send_signal(signal.SIGINT)
            self.assertEqual(proc.wait(10), 0)
            proc.stdout.close()
            proc.stderr.close()

    def test_bus_logs_follow_and_request(self):
        s = Stream(self.v.ctl_path, cmd="bus", type="logs.follow", body={"on": True})
        t0 = time.time()
        self.refused_proctor_line()
        ev = s.wait(lambda e: e.get("type") == "log.line" and
                    "registration refused" in e["body"]["line"], 5, "the refusal's line")
        body = ev["body"]
        self.assertEqual((body["stage"], body["level"]), ("relay", "info"))
        self.assertLessEqual(abs(body["time"] / 1000 - t0), 2)
        self.assertEqual(body["time"] % 1000, int(body["line"][20:23]))
        self.assertNotIn("dropped", body)
        # Off: the next line is not sent. A follower of relay's lines tells
        # when vigild has read it; then the logs.request answer comes first.
        s.bus("logs.follow", {"on": False})
        s.backlog.clear()  # lines sent before the ack; none after it
        f = Stream(self.v.ctl_path, cmd="logs", stage="relay", lines=0, follow=True)
        self.refused_proctor_line()
        f.wait(lambda e: "registration refused" in e.get("line", ""), 5, "the line")
        s.bus("logs.request", {"ref": "r", "stage": "relay", "lines": 3})
        ev = s.wait(lambda e: "type" in e, 5, "an answer")
        self.assertEqual(ev["type"], "log.lines")
        self.assertEqual(ev["body"]["ref"], "r")
        self.assertFalse(ev["body"]["more"])
        lines = ev["body"]["lines"]
        self.assertEqual(len(lines), 3)
        self.assertTrue(any("registration refused" in ln["line"] for ln in lines), lines)
        for ln in lines:
            self.assertEqual(ln["stage"], "relay")
            self.assertEqual(ln["level"], LINE.match(ln["line"]).group(1))
        s.bus("logs.request", {"ref": 9, "stage": "nosuch", "lines": 3})
        self.assertIn("error", s.next_bus("log.lines"))
        f.close()
        s.close()

    def test_error_lines_are_read_as_errors(self):
        """A stage's reload of a bad file: its error line keeps its level."""
        with open(self.v.config) as f:
            good = f.read()
        s = Stream(self.v.ctl_path, cmd="bus", type="logs.follow", body={"on": True})
        try:
            with open(self.v.config, "a") as f:
                f.write("limits: { max_sentinels: -3 }\n")
            self.assertTrue(self.v.request(cmd="send", to="archive", type="config.reload",
                                           body={})["ok"])
            ev = s.wait(lambda e: e.get("type") == "log.line" and
                        "reload refused" in e["body"]["line"], 5, "the refusal")
        finally:
            with open(self.v.config, "w") as f:
                f.write(good)
        self.assertEqual((ev["body"]["stage"], ev["body"]["level"]), ("archive", "error"))
        s.close()


class Shutdown(unittest.TestCase):
    def test_announced_shutdown_tells_clients_then_stops_in_order(self):
        v = Vigil(extra=AUTH).start()
        try:
            w = v.watch()
            sen = Client(v.url("ingest", "/sentinel"))
            sen.register(STOKEN)
            pro = Proctor(v.url("relay", "/proctor"))
            pro.register(PTOKEN)
            # Refused: no stop announced.
            s = Stream(v.ctl_path, cmd="bus", type="shutdown.request",
                       body={"ref": "x", "in": 3601})
            self.assertIn("0 to 3600", s.next_bus("shutdown.result")["error"])
            # First announced in 30 s, then moved to 2 s by the bus request.
            res = v.ctl("shutdown", "--in", "30")
            self.assertIn("vigil stops at", res.stdout)
            first = sen.expect("server.shutdown")["at"]
            self.assertAlmostEqual(first / 1000, time.time() + 30, delta=2)
            self.assertEqual(pro.expect("server.shutdown")["at"], first)
            s.bus("shutdown.request", {"ref": "y", "in": 2})
            at = s.next_bus("shutdown.result")
            self.assertEqual(at["ref"], "y")
            at = at["at"]
            self.assertAlmostEqual(at / 1000, time.time() + 2, delta=1)
            self.assertEqual(sen.expect("server.shutdown")["at"], at)
            self.assertEqual(pro.expect("server.shutdown")["at"], at)
            w.wait(lambda e: e.get("type") == "shutdown.notice" and e["body"]["at"] == at, 5,
                   "the notice")
            # One that registers after the notice learns of it after its ack.
            late = Proctor(v.url("relay", "/proctor"))
            late.register(PTOKEN)
            self.assertEqual(late.expect("server.shutdown")["at"], at)
            # At `at`, the stop in order; the clients get 1001.
            for c in (sen, pro, late):
                (code, _), _ = c.expect_close(timeout=10)
                self.assertEqual(code, 1001)
                self.assertGreaterEqual(time.time() * 1000, at - 50)
            self.assertEqual(v.proc.wait(30), 0)
            ended = time.time() * 1000
            self.assertLess(ended - at, 5000)
            log = v.log()
            order = [log.index("%s: stopped" % st) for st in ("ingest", "relay", "httpd",
                                                               "archive")]
            self.assertEqual(order, sorted(order), log)
            for c in (sen, pro, late, s, w):
                c.close()
        finally:
            v.stop()


HERE = os.path.dirname(os.path.abspath(__file__))
FLOOD, FAKE_HTTPD = os.path.join(HERE, "flood.py"), os.path.join(HERE, "fakehttpd.py")


class StageDir:
    """A VIGIL_STAGE_DIR for vigild: archive with flood.py beside it, and
    optionally fakehttpd.py as httpd; the other stages from the build.
    hold() makes archive's next start wait, in state starting, until
    release()."""

    def __init__(self, fake_httpd=False):
        self.dir = tempfile.mkdtemp(prefix="vigil-stages-")
        self.cmd, self.res = os.path.join(self.dir, "cmd"), os.path.join(self.dir, "res")
        self.gate, self.held = os.path.join(self.dir, "gate"), os.path.join(self.dir, "held")
        self.httpd_sock = os.path.join(self.dir, "httpd.sock")
        for fifo in (self.cmd, self.res, self.gate):
            os.mkfifo(fifo)
        # Held: the start blocks opening the gate until release() opens its other end.
        self.write("vigil-archive", "if [ -e %s ]; then cat %s >/dev/null; fi\n"
                   "/usr/bin/python3 %s %s %s &\nexec %s \"$@\"\n" % (
                       self.held, self.gate, FLOOD, self.cmd, self.res,
                       os.path.join(BUILD, "archive", "vigil-archive")))
        if fake_httpd:
            self.write("vigil-httpd", "exec /usr/bin/python3 %s \"$@\"\n" % FAKE_HTTPD)

    def write(self, name, script):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write("#!/bin/sh\n" + script)
        os.chmod(path, 0o755)

    def env(self):
        return {"VIGIL_STAGE_DIR": self.dir, "FAKE_HTTPD_SOCK": self.httpd_sock}

    def _ask(self, req, seconds, during=None):
        """One request to flood.py; during() runs meanwhile. Its answer's
        two numbers."""
        with open(self.cmd, "w") as f:
            f.write(req)
        result = []

        def read_result():
            with open(self.res) as f:
                result.append(f.read())
        t = threading.Thread(target=read_result)
        t.start()
        if during is not None:
            during()
        t.join(seconds + 60)
        n, elapsed = result[0].split()
        return int(n), float(elapsed)

    def flood(self, rate, seconds, during=None):
        """Runs a flood; during() runs meanwhile. Returns (lines, seconds)."""
        return self._ask("%d %g\n" % (rate, seconds), seconds, during)

    def say(self, level, text):
        """One line of archive's at that level ("debug" ... "error"), written
        when this returns."""
        self._ask("say %s %s\n" % (level, text), 0)

    def hold(self):
        open(self.held, "w").close()

    def release(self, timeout=30):
        """Lets a held start go on: waits (timeout) for it to open the gate,
        then closes the gate's other end."""
        opened = []
        t = threading.Thread(target=lambda: opened.append(open(self.gate, "w").close()))
        t.start()
        t.join(timeout)
        os.unlink(self.held)
        if not opened:  # nothing waits: our own reader lets the thread go
            os.close(os.open(self.gate, os.O_RDONLY | os.O_NONBLOCK))
            t.join()
            raise AssertionError("no held start of archive waited at the gate")

    def unhold(self):
        """No start is held from now on (a cleanup: lets one that waits go)."""
        if os.path.exists(self.held):
            os.unlink(self.held)
        try:
            os.close(os.open(self.gate, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:  # ENXIO: none waits
            pass

    def remove(self):
        self.unhold()  # a start still held (a test that failed) ends its wait
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(next(ln for ln in f if ln.startswith("VmRSS")).split()[1])


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        st = f.read().split(")")[-1].split()
    return (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")


class Flood(unittest.TestCase):
    """archive's stderr carries a flood besides archive's own lines (flood.py,
    started by a wrapper in VIGIL_STAGE_DIR)."""

    @classmethod
    def setUpClass(cls):
        cls.stages = StageDir()
        cls.v = Vigil(env=cls.stages.env()).start()

    @classmethod
    def tearDownClass(cls):
        cls.v.stop()
        cls.stages.remove()

    def flood(self, rate, seconds, during=None):
        return self.stages.flood(rate, seconds, during)

    def test_flood_neither_stalls_vigild_nor_grows_it(self):
        v = self.v
        vigild = v.proc.pid
        w = v.watch()
        reader = Stream(v.ctl_path, cmd="logs", stage="archive", lines=0, follow=True)
        got = {"lines": 0, "dropped": 0}
        counted = threading.Condition()

        def read_all():
            try:
                while True:
                    ev = reader._line(30)
                    with counted:
                        got["lines"] += 1
                        got["dropped"] += ev.get("dropped", 0)
                        counted.notify()
            except (EOFError, TimeoutError, OSError):
                pass
        threading.Thread(target=read_all, daemon=True).start()
        # Followers that read nothing: a vigilctl and httpd's side.
        idle = Stream(v.ctl_path, cmd="logs", stage="archive", lines=0, follow=True)
        idle_bus = Stream(v.ctl_path, cmd="bus", type="logs.follow", body={"on": True})
        rss0 = rss_kib(vigild)

        # 10,000 lines a second for 4 s: vigild keeps up with it.
        lat = []

        def probe():
            end = time.monotonic() + 3.5
            while time.monotonic() < end:
                t = time.monotonic()
                v.request(cmd="status")
                lat.append(time.monotonic() - t)
                time.sleep(0.1)  # a probe every 100 ms, not a synchronisation
        c0, t0 = cpu_s(vigild), time.monotonic()
        n, elapsed = self.flood(10000, 4, probe)
        cpu = (cpu_s(vigild) - c0) / (time.monotonic() - t0)
        # Bounds that tell a vigild that stops reading or answering (the
        # pipe full within milliseconds, a status after the 4 s flood) from
        # one that is slow on a shared CI machine running two suites at once.
        self.assertGreaterEqual(n / elapsed, 5000, "the pipe held the stage back")
        self.assertLess(max(lat), 2, "ctl.sock answered late during the flood")

        # As fast as the pipe takes it, with a hung relay meanwhile: its
        # missed heartbeats are seen in time.
        def hang_relay():
            pid = v.pids()["relay"]
            t = time.monotonic()
            os.kill(pid, signal.SIGSTOP)
            try:
                w.wait_state("relay", "backoff", timeout=10)
            finally:
                if alive(pid):
                    os.kill(pid, signal.SIGCONT)
            hang_relay.seen = time.monotonic() - t
        n_max, elapsed_max = self.flood(0, 4, hang_relay)
        # timeouts.stage_heartbeat is 2 s; a heartbeat a second; a check a
        # second; and 2 s of slack for a loaded machine (a watch that never
        # fires fails wait_state after 10 s).
        self.assertLess(hang_relay.seen, 2 + 1 + 1 + 2, "the heartbeat watch was late")
        w.wait_state("relay", "running")
        rss1 = rss_kib(vigild)

        # The idle followers lost lines, counted: a line they get once they
        # read again says how many. They read what waits for them (until a
        # lull), then a third flood's lines come.
        dropped = {idle: 0, idle_bus: 0}

        def read(s, until):
            while True:
                try:
                    ev = s._line(0.5 if until is None else 10)
                except TimeoutError:
                    if until is None:
                        return
                    raise
                ev = ev.get("body", ev)
                dropped[s] += ev.get("dropped", 0)
                if until is not None and until in ev.get("line", ""):
                    return
        for s in (idle, idle_bus):
            read(s, None)
        self.flood(100, 0.05)
        for s in (idle, idle_bus):
            read(s, "flood 3 line")
            self.assertGreater(dropped[s], 0)
        # The reader kept up with most of it, and what it lost was counted.
        with counted:
            self.assertTrue(counted.wait_for(
                lambda: got["lines"] + got["dropped"] >= n + n_max, 20), (got, n, n_max))
        self.assertGreater(got["lines"], (n + n_max) // 2)
        # No memory grows with the flood (the kept lines are bounded); ASan's
        # quarantine keeps what is freed.
        if os.environ.get("VIGIL_SANITIZE") != "1":
            self.assertLess(rss1 - rss0, 8 << 10, (rss0, rss1))
        print("\nflood: 10,000 lines/s paced: %.0f lines/s taken, vigild %.0f%% CPU, "
              "ctl.sock answers in %.1f ms at most; unpaced: %.0f lines/s; relay hung: "
              "seen in %.2f s; reader got %d lines, %d dropped; vigild RSS %d -> %d KiB" % (
                  n / elapsed, cpu * 100, max(lat) * 1000, n_max / elapsed_max,
                  hang_relay.seen, got["lines"], got["dropped"], rss0, rss1), file=sys.stderr)
        for s in (reader, idle, idle_bus):
            s.close()
        w.close()

    def test_logs_request_comes_in_packets_under_the_bus_limit(self):
        self.flood(0, 0.3)
        s = Stream(self.v.ctl_path, cmd="bus", type="logs.request",
                   body={"ref": {"op": 12}, "stage": "archive", "lines": 5000})
        chunks = []
        while not chunks or chunks[-1]["more"]:
            chunks.append(s.next_bus("log.lines"))
        self.assertGreater(len(chunks), 1)
        lines = [ln for c in chunks for ln in c["lines"]]
        self.assertEqual(len(lines), 1000)  # at most 1000, oldest first
        for c in chunks:
            self.assertEqual(c["ref"], {"op": 12})
            self.assertLess(len(msgpack.packb(c)) + 100, 65536)
        plain = self.v.request(cmd="logs", stage="archive", lines=1000)["lines"]
        self.assertEqual([ln["line"] for ln in lines], plain)
        now = time.time() * 1000
        for ln in lines:
            m = LINE.match(ln["line"])
            # Lines of another form: info, and the time they came.
            self.assertEqual(ln["level"], m.group(1) if m else "info")
            self.assertLess(abs(ln["time"] - now), 60000)
        self.assertTrue(any("GStreamer-CRITICAL" in ln["line"] for ln in lines))
        s.close()


class FakeHttpd(Watch):
    """The test's end of fakehttpd.py: what it reads on the bus, as JSON lines."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""

    def send(self, type_, body):
        self.sock.sendall((json.dumps({"send": {"type": type_, "body": body}}) +
                           "\n").encode())

    def reading(self, on):
        self.sock.sendall((json.dumps({"read": on}) + "\n").encode())


class BusAsHttpd(unittest.TestCase):
    """The console's requests on the real bus, from a stand-in for httpd
    (fakehttpd.py), which can stop reading as a slow httpd would."""

    def setUp(self):
        # Cleanups, not tearDown: they run when setUp fails half way too.
        self.stages = StageDir(fake_httpd=True)
        self.addCleanup(self.stages.remove)
        self.v = Vigil(env=self.stages.env())
        self.addCleanup(self.v.stop)
        self.v.start()
        self.h = FakeHttpd(self.stages.httpd_sock)
        self.addCleanup(self.h.close)

    def test_answers_reach_a_slow_httpd_and_vigild_never_waits(self):
        v, h = self.v, self.h
        w = v.watch()
        h.send("logs.follow", {"on": True})
        self.stages.flood(100, 0.05)
        h.wait(lambda m: m["type"] == "log.line", 10, "a first log.line")
        h.reading(False)
        # While httpd reads nothing: a flood for its follow, and requests.
        n, _ = self.stages.flood(0, 1.5)
        relay = v.pids()["relay"]
        h.send("stage.set", {"ref": 1, "stage": "relay", "state": "restart"})
        h.send("logs.request", {"ref": {"r": [1, 2]}, "stage": "archive", "lines": 1000})
        h.send("shutdown.request", {"ref": "too-late", "in": 3601})
        h.send("status.request", {})
        # vigild acts and answers ctl.sock meanwhile.
        new = w.wait_state("relay", "running", not_pid=relay)["pid"]
        t = time.monotonic()
        v.request(cmd="status")
        self.assertLess(time.monotonic() - t, 2)
        h.reading(True)
        got = {"log.line": [], "log.lines": []}
        dropped = 0

        def take(m):
            nonlocal dropped
            self.assertLessEqual(m["size"], 65536, m["type"])
            if m["type"] in ("log.line", "log.lines"):
                got[m["type"]].append(m["body"])
                dropped += m["body"].get("dropped", 0)
            else:
                got[m["type"]] = m["body"]
        while not ("stage.result" in got and "status" in got and "shutdown.result" in got and
                   got["log.lines"] and not got["log.lines"][-1]["more"]):
            take(h.wait(lambda m: True, 15, "the answers after %s" % list(got)))
        # Once httpd has read what waited, new lines go again; the first
        # carries the count of those that did not.
        self.stages.flood(100, 0.05)
        while not (got["log.line"] and "flood 3 line" in got["log.line"][-1]["line"]):
            take(h.wait(lambda m: True, 15, "a line of the third flood"))
        self.assertEqual(got["stage.result"],
                         {"ref": 1, "stage": "relay", "state": "restart", "pid": new})
        self.assertEqual(sum(len(c["lines"]) for c in got["log.lines"]), 1000)
        self.assertGreater(len(got["log.lines"]), 1)
        for c in got["log.lines"]:
            self.assertEqual(c["ref"], {"r": [1, 2]})
        self.assertIn("error", got["shutdown.result"])
        self.assertEqual(got["shutdown.result"]["ref"], "too-late")
        self.assertEqual([s["name"] for s in got["status"]["stages"]], list(STAGES))
        # httpd's socket took some of the flood; the rest was counted.
        self.assertGreater(len(got["log.line"]), 0)
        self.assertGreater(dropped, 0)
        self.assertLess(len(got["log.line"]), n)
        w.close()

    def test_shutdown_request_on_the_bus(self):
        w = self.v.watch()
        self.h.send("shutdown.request", {"ref": 5, "in": 1})
        # httpd is a stage too: the notice, then the answer.
        notice = self.h.wait(lambda m: m["type"] == "shutdown.notice", 10, "the notice")
        res = self.h.wait(lambda m: m["type"] == "shutdown.result", 10, "the result")["body"]
        self.assertEqual(res, {"ref": 5, "at": notice["body"]["at"]})
        self.assertAlmostEqual(res["at"] / 1000, time.time() + 1, delta=1)
        w.wait_state("ingest", "stopping", timeout=10)
        self.assertGreaterEqual(time.time() * 1000, res["at"] - 50)
        self.assertEqual(self.v.proc.wait(30), 0)
        w.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
