#!/usr/bin/python3
"""Reading the audit log (PROTOCOL.md sections 6 and 9, docs/audit.md; issue
16 item 3): GET /api/audit and GET /api/audit/verify of vigil-httpd, against
logs that tests/integration/auditlog.py (the format's reference) writes into
data_dir/audit.

TestAuditRead runs vigil-httpd by hand on a data_dir of its own (no vigild,
so no writer appends to the log under the test): the verdict on an intact log
spread over several day files, on each kind of tampering (one byte changed,
a line deleted, two lines swapped, the last line cut, the last line removed,
the first day file removed after retention wrote base), each with the exact
firstBad, file and line, and the same firstBad from docs/audit.md's own
script; every filter alone and combined against the records the test wrote;
the neighbouring day files of a range; 400s with their exact bodies; roles;
an empty and a missing audit directory; HTTP/1.0, HEAD, keep-alive after a
stream; checks asked for at once share one.

TestAuditBig runs vigil-httpd by hand on a log of AUDIT_BIG_MB (default 256)
MB: the whole log streamed to a client that reads slowly, httpd's memory
staying flat, /health answered meanwhile, the bytes identical to the files;
the chain of the big log checked while /health is answered. TestAuditWriter
runs a real vigild on a log the test wrote: archive's writer carries it on
with records of its own, which the stream and the check cover."""
import glob
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import auditlog as A  # noqa: E402
from vigil import BUILD, SOURCE, Vigil, config_tokens, keep_logs  # noqa: E402

HTTPD = os.path.join(BUILD, "httpd", "vigil-httpd")
PT, AT, OT, ST = "proctor-secret", "archivist-secret", "operator-secret", "sentinel-secret"
AUTH = """auth:
  sentinel: required
  tokens:
    - { name: p1, role: proctor, token: "proctor-secret" }
    - { name: a1, role: archivist, token: "archivist-secret" }
    - { name: o1, role: operator, token: "operator-secret" }
    - { name: s1, role: sentinel, token: "sentinel-secret" }
"""
SANITIZER = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
DAY = A.DAY_MS
# 2026-12-01T00:00:00Z: the log's first day
T0 = 1796083200000
SENTINELS = ["0b6c1f2e-8d3a-4c5b-9e7f-%012x" % i for i in range(1, 5)]
ACTORS = [("proctors", "proctor"), ("archive-office", "archivist"), ("ops", "operator"),
          ("élève é", "proctor"), (None, None)]


class Httpd:
    """vigil-httpd started by hand (it serves data_dir without vigild)."""

    count = 0

    def __init__(self, root):
        Httpd.count += 1
        self.run = "test_audit_read-httpd-%d-%d" % (os.getpid(), Httpd.count)
        self.root = root
        self.data = os.path.join(root, "data")
        os.makedirs(self.data, exist_ok=True)
        self.config = os.path.join(root, "vigil.yaml")
        with open(self.config, "w") as f:
            f.write("instance: aread-%d\nrun_dir: %s\ndata_dir: %s\n" % (
                os.getpid(), os.path.join(root, "run"), self.data))
            f.write('listen: { ingest: "127.0.0.1:0", relay: "127.0.0.1:0", '
                    'http: "127.0.0.1:0" }\n' + AUTH)
        self.err = open(os.path.join(root, "httpd.log"), "w+")
        self.proc = subprocess.Popen([HTTPD, "--config", self.config],
                                     stdout=subprocess.DEVNULL, stderr=self.err)
        deadline = time.monotonic() + 20
        while True:
            m = re.search(r"serving HTTP on http://127\.0\.0\.1:(\d+)/", self.log())
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("vigil-httpd did not start: " + self.log())
            time.sleep(0.05)

    def log(self):
        self.err.flush()
        with open(self.err.name) as f:
            return f.read()

    def stop(self):
        """Stops it; its log (and what is left of data_dir/audit) is kept for
        tests/check_secrets.py, as vigil.py keeps a vigild's."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        log = self.log()
        self.err.close()
        keep_logs(self.run, self.root, set(config_tokens(AUTH).items()))
        if any(s in log for s in SANITIZER):
            raise AssertionError("sanitizer report in vigil-httpd's log:\n" + log[-6000:])


def call(port, path, token=OT, method="GET", headers=None, timeout=120):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + token
    c.request(method, path, headers=h)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


def read_all(paths):
    out = []
    for p in paths:
        with open(p, "rb") as f:
            out.append(f.read())
    return b"".join(out)


def line_of(rec):
    """A record as its line (what the stream must send byte for byte)."""
    return A.make_line({k: v for k, v in rec.items() if k != "hash"})[0] + b"\n"


class TestAuditRead(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="vigil-audit-")
        cls.h = Httpd(cls.root)
        cls.port = cls.h.port
        cls.dir = os.path.join(cls.h.data, "audit")

    @classmethod
    def tearDownClass(cls):
        try:
            cls.h.stop()
        finally:
            shutil.rmtree(cls.root, ignore_errors=True)

    def get(self, path, token=OT, **kw):
        return call(self.port, path, token, **kw)

    def verify(self):
        st, hd, body = self.get("/api/audit/verify")
        self.assertEqual((st, hd["content-type"]), (200, "application/json"), body)
        return json.loads(body)

    def fresh(self, n=600, step=7 * 60 * 1000, **kw):
        """A new log of n records from T0 on, one every step ms (600 every 7
        minutes: three day files), head written."""
        shutil.rmtree(self.dir, ignore_errors=True)
        log = A.AuditLog(self.dir)
        A.generate(log, n, T0, step, sentinels=SENTINELS, actors=ACTORS, **kw)
        return log

    def assertVerdict(self, log, first_bad, where=True):
        """The server's verdict names first_bad (and the record's file and
        line when where), and so does the doc's own script."""
        v = self.verify()
        self.assertFalse(v["ok"], v)
        self.assertEqual(v["firstBad"], first_bad, v)
        self.assertEqual(v["records"], first_bad - 1 - (v["base"] or 0), v)
        self.assertIsInstance(v["reason"], str)
        if where is True:
            where = log.files[first_bad]
        self.assertEqual((v["file"], v["line"]), tuple(where) if where else (None, None), v)
        self.assertEqual(A.doc_first_bad(SOURCE, self.dir)[0], first_bad)
        return v

    # ---- verify ----------------------------------------------------------

    def test_verify_intact_over_several_days(self):
        log = self.fresh()
        self.assertGreaterEqual(len(log.lines), 3)
        self.assertEqual(self.verify(), {"records": 600, "ok": True, "firstBad": None,
                                         "reason": None, "file": None, "line": None,
                                         "base": None, "head": 600})
        self.assertEqual(A.doc_first_bad(SOURCE, self.dir), (None, 600))

    def test_verify_one_byte_changed(self):
        log = self.fresh()
        A.change_byte(log, 137)
        v = self.assertVerdict(log, 137)
        self.assertEqual(v["reason"], "hash is not the SHA-256 of the line")

    def test_verify_a_line_deleted(self):
        log = self.fresh()
        A.delete_line(log, 200)
        v = self.assertVerdict(log, 200)
        self.assertEqual(v["reason"], "seq is 201, not 200")

    def test_verify_two_lines_swapped(self):
        log = self.fresh()
        A.swap_lines(log, 300)
        v = self.assertVerdict(log, 300)
        self.assertEqual(v["reason"], "seq is 301, not 300")

    def test_verify_last_line_cut(self):
        log = self.fresh()
        A.cut_last_line(log, keep=77)
        v = self.assertVerdict(log, 600)
        self.assertEqual(v["reason"], "the line is not a JSON object")

    def test_verify_last_line_removed_head_catches_it(self):
        log = self.fresh()
        A.remove_last_line(log)
        v = self.assertVerdict(log, 600, where=False)
        self.assertEqual(v["reason"], "the log ends at record 599 but head says 600 was written")
        self.assertEqual(v["head"], 600)

    def test_verify_first_file_removed_base_catches_it(self):
        log = self.fresh()
        first, last = log.retire_oldest()  # retention: base names the file's last record
        v = self.verify()
        self.assertTrue(v["ok"], v)
        self.assertEqual((v["records"], v["base"]), (600 - last, last))
        self.assertEqual(A.doc_first_bad(SOURCE, self.dir), (None, 600))
        gone, then = sorted(log.lines)[:2]
        os.unlink(os.path.join(self.dir, gone))
        v = self.assertVerdict(log, last + 1, where=(then, 1))
        self.assertTrue(v["reason"].startswith("seq is "), v)

    def test_verify_missing_and_empty_directory(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        empty = {"records": 0, "ok": True, "firstBad": None, "reason": None, "file": None,
                 "line": None, "base": None, "head": None}
        self.assertEqual(self.verify(), empty)
        st, hd, body = self.get("/api/audit")
        self.assertEqual((st, hd["content-type"], body), (200, "application/x-ndjson", b""))
        os.makedirs(self.dir)
        self.assertEqual(self.verify(), empty)
        self.assertEqual(self.get("/api/audit")[::2], (200, b""))

    def test_verify_asked_at_once_shares_checks(self):
        """Six requests sent at once (their bytes leave within a millisecond;
        the check of 20,000 records takes far longer): the first starts a
        check, the five others wait for the one after it."""
        self.fresh(n=20000, step=10000)
        socks = [socket.create_connection(("127.0.0.1", self.port), timeout=120)
                 for _ in range(6)]
        req = ("GET /api/audit/verify HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
               "Authorization: Bearer %s\r\n\r\n" % OT).encode()
        for s in socks:
            s.sendall(req)
        answers = []
        for s in socks:
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            s.close()
            head, body = data.split(b"\r\n\r\n", 1)
            self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
            answers.append(json.loads(body))
        self.assertEqual([a["records"] for a in answers], [20000] * 6)
        runs = self.h.log().count("audit log checked: 20000 records")
        self.assertGreaterEqual(runs, 1)
        self.assertLessEqual(runs, 2)

    # ---- the stream ------------------------------------------------------

    def expect(self, log, pred, limit=None):
        body = b"".join(line_of(r) for r in log.records if pred(r))
        if limit is None:
            return body
        return b"".join(body.split(b"\n")[i] + b"\n" for i in range(
            min(limit, body.count(b"\n"))))

    def test_stream_whole_log_byte_for_byte(self):
        log = self.fresh()
        st, hd, body = self.get("/api/audit")
        self.assertEqual(st, 200)
        self.assertEqual(hd["content-type"], "application/x-ndjson")
        self.assertEqual(hd["transfer-encoding"], "chunked")
        self.assertEqual(hd["cache-control"], "no-store")
        files = read_all(sorted(glob.glob(self.dir + "/audit-*")))
        self.assertEqual(body, files)
        self.assertEqual(body, self.expect(log, lambda r: True))

    def test_filters_alone_and_combined(self):
        log = self.fresh()
        recs = log.records
        s1, s2 = SENTINELS[0], SENTINELS[1]
        mid = recs[250]["time"]
        cases = [
            ("from=%d" % mid, lambda r: r["time"] >= mid),
            ("to=%d" % mid, lambda r: r["time"] <= mid),
            ("from=%d&to=%d" % (mid, mid), lambda r: r["time"] == mid),
            ("from=%d&to=%d" % (mid - 3600000, mid + 3600000),
             lambda r: mid - 3600000 <= r["time"] <= mid + 3600000),
            ("sentinelId=" + s1, lambda r: r.get("sentinelId") == s1),
            ("sentinelId=" + s2.upper(), lambda r: r.get("sentinelId") == s2),
            ("actor=ops", lambda r: r["actor"] == "ops"),
            ("actor=%C3%A9l%C3%A8ve%20%C3%A9", lambda r: r["actor"] == "élève é"),
            ("action=export", lambda r: r["action"] == "export"),
            ("action=live.view,history.read,mark",
             lambda r: r["action"] in ("live.view", "history.read", "mark")),
            ("action=auth.failed&actor=ops", lambda r: False),
            ("sentinelId=%s&action=live.view&from=%d" % (s1, mid),
             lambda r: r.get("sentinelId") == s1 and r["action"] == "live.view"
             and r["time"] >= mid),
            ("actor=proctors&action=export,delete&to=%d" % mid,
             lambda r: r["actor"] == "proctors" and r["action"] in ("export", "delete")
             and r["time"] <= mid),
            ("from=%d&to=%d&sentinelId=%s&actor=archive-office&action=history.read" % (
                T0, T0 + 2 * DAY, s2),
             lambda r: T0 <= r["time"] <= T0 + 2 * DAY and r.get("sentinelId") == s2
             and r["actor"] == "archive-office" and r["action"] == "history.read"),
            ("action=nothing.like.this", lambda r: False),
            ("from=%d" % (T0 + 100 * DAY), lambda r: False),
            ("token=ignored&unknown=1&action=mark", lambda r: r["action"] == "mark"),
        ]
        for query, pred in cases:
            with self.subTest(query=query):
                st, _, body = self.get("/api/audit?" + query)
                self.assertEqual(st, 200, body)
                want = self.expect(log, pred)
                self.assertEqual(body, want, "%d lines, not %d" % (
                    body.count(b"\n"), want.count(b"\n")))
                if query.startswith("from=%d&to" % mid):
                    self.assertTrue(want)
        for n in (1, 7, 600, 601):
            st, _, body = self.get("/api/audit?limit=%d" % n)
            self.assertEqual(body, self.expect(log, lambda r: True, limit=n))
        st, _, body = self.get("/api/audit?action=export&limit=3")
        self.assertEqual(body, self.expect(log, lambda r: r["action"] == "export", limit=3))

    def test_neighbouring_day_files(self):
        """A view that ended a few ms before midnight is written after it (the
        next day's file), and one stamped a few ms after midnight may sit in
        the day before's: a range inside one day still finds both."""
        shutil.rmtree(self.dir, ignore_errors=True)
        log = A.AuditLog(self.dir)
        d1 = T0 + DAY
        log.add(d1 + 5 * 3600000, "stage.set", actor="ops", role="operator")
        log.add(d1 + DAY + 2, "live.view", written_ms=d1 + DAY - 1, sentinelId=SENTINELS[1])
        log.add(d1 + DAY - 3, "live.view", written_ms=d1 + DAY + 40, sentinelId=SENTINELS[0])
        log.add(d1 + DAY + 60000, "mark", sentinelId=SENTINELS[0])
        log.add(d1 + 3 * DAY, "mark", sentinelId=SENTINELS[2])
        log.write_head()
        self.assertEqual(sorted(log.lines), [A.day_name(d1), A.day_name(d1 + DAY),
                                             A.day_name(d1 + 3 * DAY)])
        self.assertEqual(log.files[2][0], A.day_name(d1))
        self.assertEqual(log.files[3][0], A.day_name(d1 + DAY))
        self.assertTrue(self.verify()["ok"])
        for lo, hi, seqs in ((d1, d1 + DAY - 1, [1, 3]), (d1 + DAY, d1 + 2 * DAY - 1, [2, 4]),
                             (d1 + DAY - 3, d1 + DAY + 2, [2, 3]),
                             (d1 + 3 * DAY, d1 + 3 * DAY, [5])):
            st, _, body = self.get("/api/audit?from=%d&to=%d" % (lo, hi))
            got = [json.loads(x)["seq"] for x in body.splitlines()]
            self.assertEqual(got, seqs, (lo, hi))
        st, _, body = self.get("/api/audit?action=live.view")
        self.assertEqual([json.loads(x)["seq"] for x in body.splitlines()], [2, 3])

    def test_partial_last_line_is_not_sent(self):
        log = self.fresh(n=20, step=1000)
        A.cut_last_line(log, keep=60)
        st, _, body = self.get("/api/audit")
        self.assertEqual(body, self.expect(log, lambda r: r["seq"] < 20))

    def test_bad_input_is_400(self):
        self.fresh(n=10, step=1000)
        cases = [
            ("from=-1", "from must be unix milliseconds (a non-negative integer)"),
            ("to=abc", "to must be unix milliseconds (a non-negative integer)"),
            ("from=1.5", "from must be unix milliseconds (a non-negative integer)"),
            ("from=99999999999999999999", "from must be unix milliseconds "
                                          "(a non-negative integer)"),
            ("from=10&to=9", "from is after to"),
            ("from=", "from is empty"),
            ("to", "to is empty"),
            ("sentinelId=", "sentinelId is empty"),
            ("sentinelId=not-a-uuid", "sentinelId is not a UUID"),
            ("actor=", "actor is empty"),
            ("actor=" + "a" * 257, "actor is over 256 bytes"),
            ("actor=" + "a" * 8000, "actor is over 256 bytes"),
            ("actor=%zz", "actor has a bad percent-encoding or a control byte"),
            ("actor=x%00y", "actor has a bad percent-encoding or a control byte"),
            ("action=", "action is empty"),
            ("action=a,", "action must be a comma-separated list of action names of 1 to "
                          "64 bytes"),
            ("action=" + "b" * 65, "action must be a comma-separated list of action names "
                                   "of 1 to 64 bytes"),
            ("action=a;b", "action must be action names (letters, digits, '.', '_', '-') "
                           "separated by commas"),
            ("action=" + ",".join("a" * 17), "action lists more than 16 names"),
            ("action=mark&action=export", "action is given twice (action takes one "
                                          "comma-separated list)"),
            ("limit=0", "limit must be a positive integer"),
            ("limit=ten", "limit must be a positive integer"),
        ]
        for query, error in cases:
            with self.subTest(query=query[:40]):
                st, hd, body = self.get("/api/audit?" + query)
                self.assertEqual((st, hd["content-type"]), (400, "application/json"))
                self.assertEqual(json.loads(body), {"error": error})
        # verify takes no arguments: they are left alone, as elsewhere
        self.assertTrue(json.loads(self.get("/api/audit/verify?from=-1")[2])["ok"])

    def test_roles(self):
        self.fresh(n=5, step=1000)
        for path in ("/api/audit", "/api/audit/verify", "/api/audit?action=x"):
            for token, status, error in (
                    (PT, 403, "Token not valid for this role"),
                    (AT, 403, "Token not valid for this role"),
                    (ST, 403, "Token not valid for this role"),
                    (None, 401, "Missing token"),
                    ("nope", 401, "Invalid token")):
                with self.subTest(path=path, token=token):
                    st, hd, body = self.get(path, token)
                    self.assertEqual((st, json.loads(body)), (status, {"error": error}))
                    if status == 401:
                        self.assertEqual(hd["www-authenticate"], 'Bearer realm="vigil"')
        # ?token= works as on every route (the page sends the header)
        st, _, body = self.get("/api/audit?token=" + OT, None)
        self.assertEqual((st, body.count(b"\n")), (200, 5))

    def test_head_http10_keepalive(self):
        log = self.fresh(n=300, step=1000)
        want = self.expect(log, lambda r: True)
        st, hd, body = self.get("/api/audit", method="HEAD")
        self.assertEqual((st, hd["content-type"], body), (200, "application/x-ndjson", b""))
        # HTTP/1.0: the body up to the connection's end, no chunks
        s = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        s.sendall(b"GET /api/audit HTTP/1.0\r\nAuthorization: Bearer " + OT.encode() +
                  b"\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        head, body = data.split(b"\r\n\r\n", 1)
        self.assertIn(b"Connection: close", head)
        self.assertNotIn(b"transfer-encoding", head.lower())
        self.assertEqual(body, want)
        # keep-alive: a stream, then another request on the same connection
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        for path in ("/api/audit", "/api/audit?limit=2", "/api/audit/verify", "/api/audit"):
            c.request("GET", path, headers={"Authorization": "Bearer " + OT})
            r = c.getresponse()
            body = r.read()
            self.assertEqual(r.status, 200)
            if path == "/api/audit":
                self.assertEqual(body, want)
        c.close()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    return 0


class TestAuditBig(unittest.TestCase):
    """vigil-httpd by hand on a log of AUDIT_BIG_MB: the stream and the check
    of a big log, /health answered all along (503 without vigild: what is
    asserted is that the loop answers)."""
    MB = int(os.environ.get("AUDIT_BIG_MB", "256"))

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="vigil-audit-big-")
        cls.dir = os.path.join(cls.root, "data", "audit")
        # records of about 1.3 KB (a 900-byte note), one a second back from now
        n = cls.MB * 1024 * 1024 // 1290
        cls.log = A.generate(A.AuditLog(cls.dir, keep=False), n,
                             int(time.time() * 1000) - n * 1000 - 5000, 1000, sentinels=SENTINELS,
                             pad=900)
        cls.n = n
        cls.files = sorted(glob.glob(cls.dir + "/audit-*.jsonl"))
        cls.size = sum(os.path.getsize(f) for f in cls.files)
        cls.h = Httpd(cls.root)
        cls.port = cls.h.port
        cls.pid = cls.h.proc.pid

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)  # not a log to keep
        try:
            cls.h.stop()
        finally:
            shutil.rmtree(cls.root, ignore_errors=True)

    def health_while(self, busy, what):
        """/health answers (each one completes) while busy() is true."""
        answered = 0
        while busy():
            st, _, _ = call(self.port, "/health", None, timeout=30)
            self.assertIn(st, (200, 503))
            answered += 1
            time.sleep(0.05)
        return answered

    def test_big_stream_slow_reader(self):
        self.assertGreater(self.size, (self.MB - 8) << 20)
        before = rss_kib(self.pid)
        s = socket.create_connection(("127.0.0.1", self.port), timeout=60)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        s.sendall(b"GET /api/audit HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                  OT.encode() + b"\r\n\r\n")
        raw = bytearray()
        peak = before
        # slowly: 256 KiB every 50 ms for 3 s, /health asked meanwhile
        state = {"slow": True}
        t = threading.Thread(target=lambda: state.update(
            health=self.health_while(lambda: state["slow"], "slow stream")))
        t.start()
        try:
            end = time.monotonic() + 3
            while time.monotonic() < end:
                got = 0
                while got < 256 << 10:
                    chunk = s.recv(65536)
                    self.assertTrue(chunk)
                    raw += chunk
                    got += len(chunk)
                peak = max(peak, rss_kib(self.pid))
                time.sleep(0.05)
            slow_bytes = len(raw)
        finally:
            state["slow"] = False
            t.join(60)
        self.assertGreater(state["health"], 3)
        self.assertLess(slow_bytes, self.size // 2, "the reader was meant to be slow")
        # then at full speed, /health still answered
        state = {"fast": True}
        t = threading.Thread(target=lambda: state.update(
            health=self.health_while(lambda: state["fast"], "fast stream")))
        t.start()
        try:
            last_sample = time.monotonic()
            while not raw.endswith(b"\r\n0\r\n\r\n"):
                chunk = s.recv(1 << 20)
                self.assertTrue(chunk, "the stream ended before its last chunk")
                raw += chunk
                if time.monotonic() - last_sample > 0.2:
                    peak = max(peak, rss_kib(self.pid))
                    last_sample = time.monotonic()
        finally:
            state["fast"] = False
            t.join(60)
        s.close()
        self.assertGreaterEqual(state["health"], 1)
        # the answer: headers, then the chunks decoded = the files, byte for byte
        head, rest = bytes(raw).split(b"\r\n\r\n", 1)
        self.assertIn(b"transfer-encoding: chunked", head.lower())
        body = bytearray()
        pos = 0
        while True:
            eol = rest.index(b"\r\n", pos)
            n = int(rest[pos:eol], 16)
            if n == 0:
                break
            body += rest[eol + 2:eol + 2 + n]
            pos = eol + 2 + n + 2
        self.assertEqual(bytes(body), read_all(self.files))
        grew = peak - before
        print("\n%d MB streamed: httpd RSS %d KiB before, peak %d KiB (+%d KiB); "
              "/health answered %d times meanwhile" % (len(body) >> 20, before, peak, grew,
                                                        state["health"]), file=sys.stderr)
        self.assertLess(grew, 16 << 10, "httpd's memory grew with the log")

    def test_big_verify(self):
        state = {"busy": True}
        out = {}

        def ask():
            t0 = time.monotonic()
            out["answer"] = call(self.port, "/api/audit/verify", timeout=600)
            out["s"] = time.monotonic() - t0
            state["busy"] = False
        t = threading.Thread(target=ask)
        t.start()
        try:
            health = self.health_while(lambda: state["busy"], "verify")
        finally:
            state["busy"] = False
            t.join(600)
        st, _, body = out["answer"]
        v = json.loads(body)
        self.assertEqual(st, 200)
        self.assertTrue(v["ok"], v)
        self.assertEqual(v["records"], self.n)
        print("\n%d records (%d MB) verified in %.2f s; /health answered %d times meanwhile" % (
            v["records"], self.size >> 20, out["s"], health), file=sys.stderr)


class TestAuditWriter(unittest.TestCase):
    """A real vigild on a log the test wrote: archive's writer carries it on."""

    @classmethod
    def setUpClass(cls):
        cls.v = Vigil(extra=AUTH)
        cls.dir = os.path.join(cls.v.dir, "data", "audit")
        cls.n = 2000
        cls.log = A.generate(A.AuditLog(cls.dir), cls.n,
                             int(time.time() * 1000) - cls.n * 1000 - 5000, 1000,
                             sentinels=SENTINELS)
        cls.v.start()
        cls.port = int(cls.v.stage("httpd")["listen"].rsplit(":", 1)[1])

    @classmethod
    def tearDownClass(cls):
        cls.v.stop()

    def test_the_writer_carries_the_log_on(self):
        """archive's writer takes the log as it found it and chains its own
        records on (a refused token is recorded at once): the check covers
        them, and /api/audit finds them by action and actor."""
        st, _, body = call(self.port, "/api/sentinels", "not-a-token")
        self.assertEqual(st, 401)
        deadline = time.monotonic() + 20
        while True:
            st, _, body = call(self.port, "/api/audit?action=auth.failed&from=%d" % (
                self.log.records[-1]["time"] + 1))
            got = [json.loads(x) for x in body.splitlines()]
            if got or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertTrue(got, "no auth.failed record from the writer")
        self.assertGreater(got[0]["seq"], self.n)
        self.assertEqual(got[0]["endpoint"], "/api/sentinels")
        self.assertNotIn("not-a-token", body.decode())
        # the whole log: ours, then the writer's, byte for byte and in order
        st, _, whole = call(self.port, "/api/audit")
        self.assertEqual(whole, read_all(sorted(glob.glob(self.dir + "/audit-*.jsonl"))))
        seqs = [json.loads(x)["seq"] for x in whole.splitlines()]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)))
        v = json.loads(call(self.port, "/api/audit/verify")[2])
        self.assertTrue(v["ok"], v)
        self.assertGreaterEqual(v["records"], got[0]["seq"])
        self.assertEqual(call(self.port, "/health", None)[0], 200)


if __name__ == "__main__":
    unittest.main(verbosity=2)
