#!/usr/bin/env python3
"""tests/check_secrets.py can fail: a token planted in a kept log is found
(as it is, percent-encoded, JSON-escaped) and named by file, line and its
configured name, never printed; clean logs pass; the text of another run's
token is only noted; nothing kept, and a token too short to look for, fail. Also the harness's side: vigil.py's
config_tokens reads inline tokens and token files, and keep_logs keeps logs
and tokens where the check looks."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
CHECK = os.path.join(HERE, "check_secrets.py")
sys.path.insert(0, os.path.join(HERE, "integration"))
SECRET = "planted-s3cret/+x"


class CheckSecrets(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="check-secrets-")
        self.addCleanup(shutil.rmtree, self.root, ignore_errors=True)
        os.makedirs(os.path.join(self.root, "tokens"))
        os.makedirs(os.path.join(self.root, "logs", "test_x-1-1", "run"))

    def tokens(self, run, pairs):
        with open(os.path.join(self.root, "tokens", run + ".json"), "w") as f:
            json.dump([{"name": n, "token": t} for n, t in pairs], f)

    def log(self, rel, text):
        path = os.path.join(self.root, "logs", rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)

    def run_check(self):
        res = subprocess.run([sys.executable, CHECK, self.root], capture_output=True,
                             text=True, timeout=60)
        return res.returncode, res.stdout

    def test_clean_logs_pass(self):
        self.tokens("test_x-1-1", [("p1", SECRET), ("o1", "operator-secret")])
        self.log("test_x-1-1/vigild.stderr", "httpd[1] info: a token was revoked\n"
                 "httpd[1] info: GET ?token=*** \n")
        rc, out = self.run_check()
        self.assertEqual(rc, 0, out)
        self.assertTrue(out.endswith("2 passed, 0 failed\n"), out)

    def test_planted_token_found(self):
        self.tokens("test_x-1-1", [("p1", SECRET), ("o1", "operator-secret")])
        self.log("test_x-1-1/vigild.stderr", "one\ntwo\nhttpd[1] info: token %s here\n" % SECRET)
        rc, out = self.run_check()
        self.assertEqual(rc, 1, out)
        self.assertIn("the token of p1 (run test_x-1-1) is in "
                      "logs/test_x-1-1/vigild.stderr:3", out)
        self.assertNotIn(SECRET, out)
        self.assertTrue(out.endswith("1 passed, 1 failed\n"), out)

    def test_encoded_forms_found(self):
        """In a URL (percent-encoded) and in a JSON line (escaped), in the
        audit log and under run_dir too."""
        self.tokens("test_x-1-1", [("p1", SECRET)])
        self.tokens("test_y-2-1", [("other-name", SECRET)])
        self.log("test_x-1-1/run/vigild.log", "GET /x?token=planted-s3cret%2F%2Bx\n")
        self.log("test_x-1-1/data/audit/2026-12-06.jsonl",
                 '{"a":1}\n{"token":"planted-s3cret\\/+x"}\n')
        rc, out = self.run_check()
        self.assertEqual(rc, 1, out)
        self.assertIn("logs/test_x-1-1/run/vigild.log:1", out)
        self.assertIn("logs/test_x-1-1/data/audit/2026-12-06.jsonl:2", out)
        self.assertIn("the token of other-name (run test_y-2-1), p1 (run test_x-1-1) is in", out)
        self.assertNotIn(SECRET, out)
        self.assertNotIn("planted-s3cret", out)

    def test_other_runs_text_noted(self):
        """In the logs of a run whose vigild did not have it, a token is no
        secret (a test named a sentinel like another test's token): noted,
        not failed."""
        self.tokens("test_x-1-1", [("p1", "proctor-secret")])
        self.tokens("test_y-2-1", [("o1", "operator-secret")])
        self.log("test_x-1-1/vigild.stderr", "clean\n")
        self.log("test_y-2-1/vigild.stderr", "sentinel 'proctor-secret' registered\n")
        rc, out = self.run_check()
        self.assertEqual(rc, 0, out)
        self.assertIn("note: the token of p1 (run test_x-1-1) is also the text of logs of runs "
                      "that did not have it: logs/test_y-2-1/vigild.stderr:1", out)
        self.assertTrue(out.endswith("2 passed, 0 failed\n"), out)

    def test_nothing_kept_fails(self):
        rc, out = self.run_check()
        self.assertEqual(rc, 1, out)
        self.assertIn("nothing to check", out)
        self.assertTrue(out.endswith("0 passed, 1 failed\n"), out)

    def test_short_token_fails(self):
        self.tokens("test_x-1-1", [("tiny", "op")])
        self.log("test_x-1-1/vigild.stderr", "nothing\n")
        rc, out = self.run_check()
        self.assertEqual(rc, 1, out)
        self.assertIn("the token of tiny (run test_x-1-1) is 2 bytes, too short", out)

    def test_harness_keeps_what_the_check_reads(self):
        """config_tokens reads inline tokens and token files, skips what is no
        config; keep_logs copies logs (not other files) and the tokens."""
        os.environ["VIGIL_TEST_LOGS"] = self.root
        import vigil
        vigil.LOGS = self.root
        src = tempfile.mkdtemp(prefix="keep-")
        self.addCleanup(shutil.rmtree, src, ignore_errors=True)
        with open(os.path.join(src, "t.token"), "w") as f:
            f.write(SECRET + " \n")
        cfg = ("auth:\n  tokens:\n"
               '    - { name: p1, role: proctor, token: "inline-secret" }\n'
               "    - { name: f1, role: proctor, token_file: %s }\n" % os.path.join(src, "t.token"))
        self.assertEqual(vigil.config_tokens(cfg), {"p1": "inline-secret", "f1": SECRET})
        self.assertEqual(vigil.config_tokens("auth: [\n"), {})
        self.assertEqual(vigil.config_tokens("instance: x\n"), {})
        os.makedirs(os.path.join(src, "run"))
        os.makedirs(os.path.join(src, "data", "audit"))
        os.makedirs(os.path.join(src, "data", "x"))
        for rel, text in (("vigild.stderr", "x token %s\n" % SECRET), ("run/vigild.log", "y\n"),
                          ("data/audit/a.jsonl", "{}\n"), ("data/x/seg.m4s", "video")):
            with open(os.path.join(src, rel), "w") as f:
                f.write(text)
        vigil.keep_logs("test_keep-9-9", src, set(vigil.config_tokens(cfg).items()))
        kept = os.path.join(self.root, "logs", "test_keep-9-9")
        self.assertTrue(os.path.isfile(os.path.join(kept, "vigild.stderr")))
        self.assertTrue(os.path.isfile(os.path.join(kept, "run", "vigild.log")))
        self.assertTrue(os.path.isfile(os.path.join(kept, "data", "audit", "a.jsonl")))
        self.assertFalse(os.path.exists(os.path.join(kept, "data", "x")))
        st = os.stat(os.path.join(self.root, "tokens", "test_keep-9-9.json"))
        self.assertEqual(st.st_mode & 0o777, 0o600)
        rc, out = self.run_check()
        self.assertEqual(rc, 1, out)
        self.assertIn("the token of f1 (run test_keep-9-9) is in "
                      "logs/test_keep-9-9/vigild.stderr:1", out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
