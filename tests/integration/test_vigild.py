#!/usr/bin/python3
"""Integration tests of vigild and vigilctl with the four real stage programs:
supervision, the config's live keys (vigilctl config set) and durable token
revocations (vigilctl revoke)."""
import hashlib
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from proctor import Proctor  # noqa: E402
from vigil import BUILD, SOURCE, STAGES, VIGILCTL, VIGILD, Vigil, alive  # noqa: E402
from wsclient import Client  # noqa: E402


class Supervision(unittest.TestCase):
    """One vigild shared by the tests that leave it running as they found it."""

    @classmethod
    def setUpClass(cls):
        # Started under a stock login's soft descriptor limit, which each stage raises.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
        try:
            cls.v = Vigil().start()
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    @classmethod
    def tearDownClass(cls):
        cls.v.stop()

    def wait_all_running(self, w):
        for s in STAGES:
            if self.v.stage(s)["state"] != "running":
                w.wait_state(s, "running")

    def test_status_shows_four_running_stages(self):
        st = self.v.status()
        self.assertEqual([s["name"] for s in st["stages"]], list(STAGES))
        for s in st["stages"]:
            self.assertEqual(s["state"], "running", s)
            self.assertTrue(alive(s["pid"]), s)
        text = self.v.ctl("status").stdout
        for s in STAGES:
            self.assertRegex(text, r"(?m)^%s\s+running\s+\d+\s" % s)
        self.assertIn("ws://127.0.0.1:", self.v.banner)
        self.assertIn("http://127.0.0.1:", self.v.banner)

    def test_stages_raise_their_descriptor_limit_to_the_hard_one(self):
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        for name, pid in self.v.pids().items():
            with open("/proc/%d/limits" % pid) as f:
                line = [ln for ln in f if ln.startswith("Max open files")][0]
            self.assertEqual(line.split()[3:5], [str(hard), str(hard)], (name, line))

    def test_sigkill_stage_is_restarted_alone(self):
        w = self.v.watch()
        before = self.v.pids()
        restarts = self.v.stage("relay")["restarts"]
        os.kill(before["relay"], signal.SIGKILL)
        ev = w.wait_state("relay", "running", not_pid=before["relay"])
        after = self.v.pids()
        self.assertNotEqual(after["relay"], before["relay"])
        self.assertEqual(ev["pid"], after["relay"])
        for s in ("ingest", "archive", "httpd"):
            self.assertEqual(after[s], before[s], s)
        st = self.v.stage("relay")
        self.assertEqual(st["restarts"], restarts + 1)
        self.assertIn("signal 9", st["lastExit"])
        w.close()

    def test_vigilctl_restart_restarts_only_that_stage(self):
        w = self.v.watch()
        before = self.v.pids()
        self.v.ctl("restart", "relay")
        w.wait_state("relay", "stopping")
        w.wait_state("relay", "running", not_pid=before["relay"])
        after = self.v.pids()
        self.assertNotEqual(after["relay"], before["relay"])
        for s in ("ingest", "archive", "httpd"):
            self.assertEqual(after[s], before[s], s)
        self.assertIn("exited with status 0", self.v.stage("relay")["lastExit"])
        w.close()

    def test_hung_stage_is_aborted_and_restarted(self):
        w = self.v.watch()
        pid = self.v.pids()["archive"]
        os.kill(pid, signal.SIGSTOP)  # stopped: sends no heartbeat
        try:
            w.wait_state("archive", "backoff", timeout=20)
        finally:
            if alive(pid):
                os.kill(pid, signal.SIGCONT)
        w.wait_state("archive", "running", not_pid=pid)
        self.assertFalse(alive(pid))
        self.assertIn("signal 6", self.v.stage("archive")["lastExit"])
        w.close()

    def test_logs_keep_each_stage_lines(self):
        res = self.v.ctl("logs", "httpd", "--lines", "5")
        lines = res.stdout.splitlines()
        self.assertTrue(0 < len(lines) <= 5, lines)
        for line in lines:
            self.assertRegex(line, r"^\d{4}-\d\d-\d\dT[\d:.]+Z httpd\[\d+\] (info|warn|error)")
        res = self.v.ctl("logs", "nosuch", check=False)
        self.assertEqual(res.returncode, 2)

    def test_second_vigild_for_the_instance_is_refused(self):
        shm = "/dev/shm/vigil-" + self.v.instance
        inode = os.stat(shm).st_ino
        res = subprocess.run([VIGILD, "--config", self.v.config, "--foreground"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(res.returncode, 1)
        self.assertIn("already running (vigild pid %d)" % self.v.proc.pid, res.stderr)
        self.assertEqual(os.stat(shm).st_ino, inode)
        self.assertEqual([s["state"] for s in self.v.status()["stages"]], ["running"] * 4)

    def test_reload_bad_config_is_refused_and_good_one_applied(self):
        with open(self.v.config) as f:
            good = f.read()
        try:
            with open(self.v.config, "a") as f:
                f.write("limits: { max_sentinels: -3 }\n")
            ans = self.v.request(cmd="reload")
            self.assertFalse(ans["ok"])
            self.assertRegex(ans["error"], r"^%s:\d+:\d+: " % self.v.config)
        finally:
            with open(self.v.config, "w") as f:
                f.write(good)
        self.assertTrue(self.v.request(cmd="reload")["ok"])
        self.assertEqual(self.v.ctl("reload").returncode, 0)

    def test_reload_and_start_say_what_they_did(self):
        def utc(t):
            return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
        with open(self.v.config) as f:
            good = f.read()
        now = time.time()
        tokens = ("auth:\n  tokens:\n"
                  "    - { name: gone, role: proctor, token: gone-secret-1, expires: %s }\n"
                  "    - { name: soon, role: proctor, token: soon-secret-2, expires: %s }\n"
                  "    - { name: later, role: proctor, token: later-secret-3, expires: %s }\n"
                  % (utc(now - 2 * 86400), utc(now + 3 * 3600), utc(now + 9 * 86400)))
        try:
            with open(self.v.config, "a") as f:
                f.write("log_level: debug\nbuffer_seconds: 30\n" + tokens)
            self.v.note_tokens()
            check = subprocess.run([VIGILD, "--config", self.v.config, "--check-config"],
                                   capture_output=True, text=True, timeout=30)
            res = self.v.ctl("reload")
            for out in (check.stderr, res.stderr):
                self.assertRegex(out, r"token 'gone' \(proctor\) expired 2 days ago \(\S+\): "
                                 r"it is refused")
                self.assertRegex(out, r"token 'soon' \(proctor\) expires in (2|3) hours")
                self.assertNotIn("later", out)
                self.assertNotIn("secret", out)
            lines = res.stdout.splitlines()
            self.assertEqual(lines[0], "reloaded " + os.path.realpath(self.v.config))
            self.assertRegex(lines[1], r"^applied: ")
            self.assertEqual(sorted(lines[1][9:].split(", ")), ["auth.tokens", "log_level"])
            self.assertRegex(lines[2], r"^not applied, restart required \(.*\): buffer_seconds$")
        finally:
            with open(self.v.config, "w") as f:
                f.write(good)
        res = self.v.ctl("reload")
        self.assertIn("applied: log_level, auth.tokens\n", res.stdout)  # back to the file
        self.assertNotIn("restart required", res.stdout)  # as vigild started
        self.assertEqual(res.stderr, "")
        self.assertEqual(self.v.ctl("reload").stdout.splitlines()[1:], ["nothing changes"])

        st = self.v.status()
        res = self.v.ctl("start")
        self.assertEqual(res.stdout, "vigil '%s' is running (vigild pid %d); every stage already "
                         "runs\nrunning: %s\n" % (st["instance"], st["pid"], ", ".join(
                             "%s %d" % (s["name"], s["pid"]) for s in st["stages"])))
        w = self.v.watch()
        self.v.ctl("stop", "httpd")
        res = self.v.ctl("start")
        after = self.v.pids()
        self.assertEqual(res.stdout.splitlines(), [
            "httpd running (pid %d)" % after["httpd"],
            "running: " + ", ".join("%s %d" % (s, after[s]) for s in STAGES)])
        w.close()

    def test_stopped_stage_socket_still_accepts(self):
        """Invariant 7: vigild holds the listening socket, so while relay is down a
        connection waits in the backlog instead of being refused."""
        w = self.v.watch()
        port = int(self.v.stage("relay")["listen"].rsplit(":", 1)[1])
        self.assertTrue(self.v.request(cmd="stop", stage="relay")["ok"])
        w.wait_state("relay", "down")
        c = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.assertTrue(self.v.request(cmd="start", stage="relay")["ok"])
        w.wait_state("relay", "running")
        c.close()
        w.close()


class CrashLoop(unittest.TestCase):
    def test_five_failures_in_ten_seconds_mark_failed(self):
        v = Vigil().start()
        try:
            w = v.watch()
            for i in range(5):
                pid = v.pids()["httpd"]
                os.kill(pid, signal.SIGKILL)
                if i < 4:
                    w.wait_state("httpd", "running", not_pid=pid)
            w.wait_state("httpd", "failed")
            st = {s["name"]: s["state"] for s in v.status()["stages"]}
            self.assertEqual(st, {"ingest": "running", "relay": "running",
                                  "archive": "running", "httpd": "failed"})
            v.ctl("start")  # an operator acts
            w.wait_state("httpd", "running")
            w.close()
        finally:
            v.stop()


class Lifecycle(unittest.TestCase):
    def test_sigterm_stops_in_order_and_leaves_nothing(self):
        v = Vigil().start()
        try:
            pids = v.pids()
            v.proc.send_signal(signal.SIGTERM)
            self.assertEqual(v.proc.wait(60), 0)
            for s, pid in pids.items():
                self.assertFalse(alive(pid), s)
            self.assertEqual(sorted(os.listdir(v.run_dir)), [])
            self.assertFalse(os.path.exists("/dev/shm/vigil-" + v.instance))
            log = v.log()
            order = [log.index("%s: stopped" % s) for s in ("ingest", "relay", "httpd", "archive")]
            self.assertEqual(order, sorted(order), log)
        finally:
            v.stop()

    def test_vigilctl_start_detaches_and_stop_cleans_up(self):
        v = Vigil()
        try:
            res = v.ctl("start")
            self.assertIn("is up", res.stdout)
            st = v.status()
            self.assertEqual([s["state"] for s in st["stages"]], ["running"] * 4)
            with open(os.path.join(v.run_dir, "vigild.pid")) as f:
                self.assertEqual(int(f.read()), st["pid"])
            # The banner names the vigild that stays (not the parent that
            # detached and exited) and the stages it started.
            self.assertIn("is up (vigild pid %d)" % st["pid"], res.stdout)
            self.assertIn("stages: " + ", ".join("%s %d" % (s["name"], s["pid"])
                                                  for s in st["stages"]), res.stdout)
            second = subprocess.run([VIGILD, "--config", v.config, "--foreground"],
                                    capture_output=True, text=True, timeout=30)
            self.assertEqual(second.returncode, 1)
            self.assertIn("already running (vigild pid %d)" % st["pid"], second.stderr)
            pids = [s["pid"] for s in st["stages"]] + [st["pid"]]
            self.assertIn("vigil stopped", v.ctl("stop").stdout)
            for pid in pids:
                self.assertFalse(alive(pid))
            self.assertFalse(os.path.exists("/dev/shm/vigil-" + v.instance))
            self.assertEqual(v.ctl("status", check=False).returncode, 3)
        finally:
            v.stop()

    def test_the_demo_ends_with_the_page_and_its_sentinel_stays_quiet(self):
        """deploy/demo.sh (the README's first command) on ports of its own: its
        last line is the page with its token; the sentinel, which logs a line
        as it connects and registers and at its end, logs nothing; Ctrl-C
        stops the sentinel and vigil."""
        v = Vigil(extra="auth:\n  sentinel: none\n  tokens:\n"
                  '    - { name: p, role: proctor, token: "demo-proctor" }\n'
                  '    - { name: a, role: archivist, token: "demo-archivist" }\n')
        self.addCleanup(v.stop)
        self.addCleanup(v.ctl, "stop", check=False)  # the demo's vigild, if it is still up
        out = open(os.path.join(v.dir, "demo.out"), "w+")
        self.addCleanup(out.close)
        demo = subprocess.Popen(
            [os.path.join(SOURCE, "deploy", "demo.sh")], stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal's job
            env=dict(os.environ, VIGIL_BUILD_DIR=BUILD, VIGIL_DEMO_CONFIG=v.config,
                     VIGIL_DEMO_STATE=os.path.join(v.dir, "state"),
                     # an ASan build's sentinel lists its suppressions at exit
                     LSAN_OPTIONS=os.environ.get("LSAN_OPTIONS", "") + ":print_suppressions=0"))
        self.addCleanup(lambda: demo.poll() is None and os.killpg(demo.pid, signal.SIGKILL))

        def text():
            out.flush()
            with open(out.name) as f:
                return f.read()
        deadline = time.monotonic() + 60
        while "Watch it live" not in text():
            self.assertIsNone(demo.poll(), text())
            self.assertLess(time.monotonic(), deadline, text())
            time.sleep(0.1)
        page = v.stage("httpd")["listen"]
        self.assertTrue(text().endswith(
            "\nWatch it live in a browser: http://%s/?token=demo-proctor\n" % page), text())
        self.assertIn("is up (vigild pid %d)" % v.status()["pid"], text())

        def online():
            c = http.client.HTTPConnection(*page.rsplit(":", 1), timeout=10)
            c.request("GET", "/api/sentinels", headers={"Authorization": "Bearer demo-proctor"})
            body = json.loads(c.getresponse().read())
            c.close()
            return [s for s in body if s.get("online")]
        while not online():
            self.assertLess(time.monotonic(), deadline, "the demo sentinel is not online")
            time.sleep(0.2)
        os.killpg(demo.pid, signal.SIGINT)  # Ctrl-C
        self.assertEqual(demo.wait(60), 0)
        lines = text().splitlines()
        self.assertEqual(lines[-2:], [
            "Watch it live in a browser: http://%s/?token=demo-proctor" % page, "vigil stopped"])
        self.assertNotIn(" sentinel[", text())  # the sentinel's log lines

    def test_a_stage_that_fails_at_start_is_named_at_once(self):
        stages = os.path.join(tempfile.mkdtemp(), "stages")
        os.makedirs(stages)
        self.addCleanup(shutil.rmtree, os.path.dirname(stages), True)
        for s in ("ingest", "archive", "httpd"):
            os.symlink(os.path.join(BUILD, s, "vigil-" + s), os.path.join(stages, "vigil-" + s))
        with open(os.path.join(stages, "vigil-relay"), "w") as f:
            f.write("#!/bin/sh\necho 'relay: a config error, say' >&2\nexit 2\n")
        os.chmod(os.path.join(stages, "vigil-relay"), 0o755)
        v = Vigil(env={"VIGIL_STAGE_DIR": stages})
        self.addCleanup(v.stop)
        self.addCleanup(v.ctl, "stop", check=False)
        res = subprocess.run([VIGILCTL, "--config", v.config, "start"], capture_output=True,
                             text=True, timeout=60, env=dict(os.environ, VIGIL_STAGE_DIR=stages))
        self.assertEqual(res.returncode, 1)
        pid = v.status()["pid"]
        self.assertIn("vigil '%s' (vigild pid %d): not every stage came up: " % (
            v.instance, pid), res.stderr)
        self.assertIn("relay failed (exited with status 2)", res.stderr)

    def test_bad_config_exits_2_naming_file_line_and_key(self):
        v = Vigil()
        try:
            with open(v.config) as f:
                text = f.read().replace("size: 16MiB", "size: 12parsecs")
            with open(v.config, "w") as f:
                f.write(text)
            res = subprocess.run([VIGILD, "--config", v.config, "--foreground"],
                                 capture_output=True, text=True, timeout=30)
            self.assertEqual(res.returncode, 2)
            self.assertRegex(res.stderr, r"^%s:\d+:\d+: ring\.size: " % v.config)
        finally:
            v.stop()

    def test_every_program_answers_help_and_version(self):
        progs = [VIGILD, VIGILCTL, os.path.join(BUILD, "deploy", "vigil-sentinel")] + \
            [os.path.join(BUILD, s, "vigil-" + s) for s in STAGES]
        for p in progs:
            res = subprocess.run([p, "--help"], capture_output=True, text=True, timeout=30)
            self.assertEqual(res.returncode, 0, p)
            self.assertIn("sage", res.stdout, p)
            res = subprocess.run([p, "--version"], capture_output=True, text=True, timeout=30)
            self.assertEqual(res.returncode, 0, p)
            self.assertIn("0.1.0", res.stdout + res.stderr, p)
            res = subprocess.run([p, "--no-such-option"], capture_output=True, text=True,
                                 timeout=30)
            self.assertEqual(res.returncode, 2, p)


PT, GONE, CAM, OP = "proctor-secret", "revoke-me", "revoke-cam", "operator-secret"
TOKENS = """auth:
  sentinel: required
  tokens:
    - { name: p1, role: proctor, token: "proctor-secret" }
    - { name: p2, role: proctor, token: "revoke-me" }
    - { name: s2, role: sentinel, token: "revoke-cam" }
    - { name: op, role: operator, token: "operator-secret" }
"""


class Ops(unittest.TestCase):
    """What the operator console does through vigild, from vigilctl."""

    def setUp(self):
        self.v = Vigil(extra=TOKENS).start()
        self.addCleanup(self.v.stop)
        self.w = self.v.watch()
        self.addCleanup(lambda: self.w.close())

    def proctor(self):
        p = Proctor(self.v.url("relay", "/proctor"))
        self.addCleanup(p.close)
        return p

    def refused(self, p, token, code, reason):
        p.send("proctor.register", {"token": token})
        self.assertEqual(p.expect("server.registration.reject")["reason"], reason)
        self.assertEqual(p.expect_close()[0], (code, reason))

    def reloaded(self, stages=STAGES):
        """Waits for config.reloaded from each stage (broadcast on the bus)."""
        left = set(stages)

        def done(e):
            if e.get("event") == "bus" and e.get("type") == "config.reloaded":
                self.assertTrue(e["body"]["ok"], e)
                left.discard(e["from"])
            return not left
        self.w.wait(done, what="config.reloaded from %s" % sorted(left))

    def api_config(self):
        host, port = self.v.stage("httpd")["listen"].rsplit(":", 1)
        c = http.client.HTTPConnection(host, int(port), timeout=15)
        c.request("GET", "/api/config", headers={"Authorization": "Bearer " + OP})
        r = c.getresponse()
        body = r.read()
        c.close()
        self.assertEqual(r.status, 200, body)
        return json.loads(body)

    def overrides(self):
        return json.loads(self.v.ctl("config", "show").stdout)["overrides"]


class LiveConfig(Ops):
    def test_a_lowered_limit_applies_live_survives_a_relay_restart_and_reload_ends_it(self):
        res = self.v.ctl("config", "set", "limits.max_proctors", "1")
        self.assertEqual(res.stdout, "applied: limits.max_proctors\n")
        self.reloaded()
        first = self.proctor()
        first.register(PT)
        self.refused(self.proctor(), PT, 3007, "Server busy")
        self.assertEqual(self.api_config()["limits"]["max_proctors"], 1)
        self.assertEqual(self.overrides(), {"limits": {"max_proctors": 1}})

        # a restarted relay gets the override after its hello, before it serves
        pid = self.v.pids()["relay"]
        self.v.ctl("restart", "relay")
        self.w.wait_state("relay", "running", not_pid=pid)
        self.proctor().register(PT)
        self.refused(self.proctor(), PT, 3007, "Server busy")

        # a reload from the file drops the overrides
        self.v.ctl("reload")
        self.reloaded()
        self.assertEqual(self.overrides(), {})
        self.proctor().register(PT)
        self.proctor().register(PT)
        self.assertEqual(self.api_config()["limits"]["max_proctors"], 500)

    def test_a_bad_value_changes_nothing_and_names_the_key(self):
        self.v.ctl("config", "set", "timeouts.idle", "45s")
        self.reloaded()
        res = self.v.ctl("config", "set", "limits.max_proctors", "lots", check=False)
        self.assertEqual(res.returncode, 2)
        self.assertEqual(res.stderr, "vigilctl: config.update: limits.max_proctors: expected an "
                         "integer in 1..100000, found \"lots\"\n")
        res = self.v.ctl("config", "set", "limits.max_proctor", "3", check=False)
        self.assertEqual(res.returncode, 2)
        self.assertIn("config.update: limits.max_proctor: unknown key (expected max_sentinels, ",
                      res.stderr)
        # one bad key refuses the whole update, good keys included
        ans = self.v.request(cmd="config.update", config={
            "limits": {"max_proctors": 5}, "timeouts": {"idle": "soon"}})
        self.assertFalse(ans["ok"])
        self.assertRegex(ans["error"], r"^config\.update: timeouts\.idle: expected a duration ")
        ans = self.v.request(cmd="config.update", config={"limits": {"max_sentinels": 201}})
        self.assertEqual(ans["error"], "config.update: limits.max_sentinels: expected at most "
                         "200 (the ring's sentinel slots; more takes a vigild restart), found 201")
        self.assertEqual(self.overrides(), {"timeouts": {"idle": "45s"}})
        self.assertEqual(self.api_config()["timeouts"]["idle"], 45000)

    def test_keys_that_need_a_restart_are_listed_not_applied(self):
        ans = self.v.request(cmd="config.update", config={
            "limits": {"max_proctors": 3}, "listen": {"http": "127.0.0.1:1"},
            "ring": {"size": "16MiB"}, "log_level": "debug"})
        self.assertTrue(ans["ok"], ans)
        self.assertEqual(ans["applied"], ["limits.max_proctors", "log_level"])
        # ring.size is what runs already: nothing to restart for
        self.assertEqual(ans["restartRequired"], ["listen.http"])
        self.reloaded()
        self.assertEqual(self.overrides(), {"limits": {"max_proctors": 3}, "log_level": "debug"})
        self.assertEqual(self.api_config()["log_level"], "debug")
        # null takes an override back to the file's value
        res = self.v.ctl("config", "set", "log_level", "null")
        self.assertEqual(res.stdout, "applied: log_level\n")
        self.assertEqual(self.overrides(), {"limits": {"max_proctors": 3}})


class Revocation(Ops):
    def revoke(self, token):
        res = subprocess.run([VIGILCTL, "--config", self.v.config, "revoke"], input=token + "\n",
                             text=True, capture_output=True, timeout=30)
        return res

    def listed(self):
        return json.loads(self.v.ctl("revoke", "--list", "--json").stdout)

    def restart_vigild(self):
        self.w.close()
        self.v.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.v.proc.wait(60), 0)
        self.v.proc.stdout.close()
        self.v.stderr.close()
        self.v.start()
        self.w = self.v.watch()

    def test_a_revocation_outlives_restarts_and_reloads_until_lifted(self):
        gone, stays = self.proctor(), self.proctor()
        gone.register(GONE)
        stays.register(PT)
        cam = Client(self.v.url("ingest", "/sentinel"))
        self.addCleanup(cam.close)
        cam.register(CAM, name="cam")
        # the console's way (ctl.sock, as vigilctl does): closed within a second
        t0 = time.monotonic()
        ans = self.v.request(cmd="revoke", token=GONE)
        self.assertEqual((ans["ok"], ans["name"], ans["role"]), (True, "p2", "proctor"))
        self.assertEqual(gone.expect_close(timeout=1)[0], (3004, "Token revoked"))
        self.assertLess(time.monotonic() - t0, 1.0)
        res = self.revoke(CAM)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(cam.expect_close()[0], (3004, "Token revoked"))
        stays.send("proctor.ping", {})
        stays.wait(lambda m: m["type"] == "server.pong", what="server.pong")
        self.refused(self.proctor(), GONE, 3001, "Token revoked")

        digest = hashlib.sha256(GONE.encode()).hexdigest()
        self.assertEqual([(r["name"], r["role"], r["digest"]) for r in self.listed()],
                         [("p2", "proctor", digest[:12]),
                          ("s2", "sentinel", hashlib.sha256(CAM.encode()).hexdigest()[:12])])
        path = os.path.join(self.v.dir, "data", ".revoked-tokens")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        with open(path) as f:
            self.assertIn(digest + " ", f.read())
        for secret in (GONE, CAM):  # no token in any file vigil wrote, nor in a log
            res = subprocess.run(["grep", "-rl", secret, self.v.dir], capture_output=True,
                                 text=True)
            self.assertEqual(res.stdout.splitlines(), [self.v.config], secret)
            self.assertNotIn(secret, self.v.log())

        pid = self.v.pids()["relay"]
        self.v.ctl("restart", "relay")
        self.w.wait_state("relay", "running", not_pid=pid)
        self.refused(self.proctor(), GONE, 3001, "Token revoked")
        self.v.ctl("reload")
        self.reloaded()
        self.refused(self.proctor(), GONE, 3001, "Token revoked")
        self.restart_vigild()
        self.refused(self.proctor(), GONE, 3001, "Token revoked")
        cam = Client(self.v.url("ingest", "/sentinel"))
        self.addCleanup(cam.close)
        cam.send("sentinel.register", {"token": CAM, "version": 1})
        self.assertEqual(cam.expect_close()[0], (3001, "Token revoked"))

        # the lift, by name and by digest prefix: the tokens work again
        res = self.v.ctl("revoke", "--lift", "p2")
        self.assertIn("lifted p2 (proctor, %s)" % digest[:12], res.stdout)
        self.proctor().register(GONE)
        res = self.v.ctl("revoke", "--lift", hashlib.sha256(CAM.encode()).hexdigest()[:8])
        self.assertIn("lifted s2 (sentinel", res.stdout)
        cam = Client(self.v.url("ingest", "/sentinel"))
        self.addCleanup(cam.close)
        cam.register(CAM, name="cam")
        self.assertEqual(self.listed(), [])
        res = self.v.ctl("revoke", "--lift", "p2", check=False)
        self.assertEqual(res.returncode, 1)
        self.assertIn("neither the name of a revoked token", res.stderr)

    def test_unknown_tokens_and_tokens_taken_out_of_the_config(self):
        res = self.revoke("no-such-token")
        self.assertEqual(res.returncode, 1)
        self.assertIn("not a token of the running config", res.stderr)
        self.assertEqual(self.revoke(GONE).returncode, 0)
        # taken out of the file: refused anyway, and the revocation goes with it
        with open(self.v.config) as f:
            good = f.read()
        with open(self.v.config, "w") as f:
            f.write(good.replace('    - { name: p2, role: proctor, token: "revoke-me" }\n', ""))
        self.v.ctl("reload")
        self.reloaded()
        self.assertEqual(self.listed(), [])
        self.refused(self.proctor(), GONE, 3001, "Invalid token")
        # put back, it is a new token
        with open(self.v.config, "w") as f:
            f.write(good)
        self.v.ctl("reload")
        self.reloaded()
        self.proctor().register(GONE)


if __name__ == "__main__":
    unittest.main(verbosity=2)
