#!/usr/bin/python3
"""Integration tests of vigild and vigilctl with the four real stage programs."""
import os
import resource
import signal
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from vigil import BUILD, STAGES, VIGILCTL, VIGILD, Vigil, alive  # noqa: E402


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
            pids = [s["pid"] for s in st["stages"]] + [st["pid"]]
            self.assertIn("vigil stopped", v.ctl("stop").stdout)
            for pid in pids:
                self.assertFalse(alive(pid))
            self.assertFalse(os.path.exists("/dev/shm/vigil-" + v.instance))
            self.assertEqual(v.ctl("status", check=False).returncode, 3)
        finally:
            v.stop()

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


if __name__ == "__main__":
    unittest.main(verbosity=2)
