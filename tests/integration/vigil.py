"""Test harness: a real vigild with a temporary config, run_dir and data_dir on
127.0.0.1, driven through vigilctl and its control socket. Waits on events
(vigild's "is up" line, the ctl watch stream), never on sleeps.

Every log a vigild and its stages wrote (and the audit log, when there is
one) is kept after the test under $VIGIL_TEST_LOGS/logs/<run>/, and every
token its configurations held under $VIGIL_TEST_LOGS/tokens/<run>.json, for
tests/check_secrets.py, which looks for each token in every log kept
(docs/operations.md, "No secrets in logs"). $VIGIL_TEST_LOGS defaults to
<build>/test-logs; tests/run-all.sh empties it before each build's tests."""
import http.client
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import yaml

BUILD = os.environ.get("VIGIL_BUILD_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build")
VIGILD = os.path.join(BUILD, "deploy", "vigild")
VIGILCTL = os.path.join(BUILD, "deploy", "vigilctl")
RINGDUMP = os.environ.get("VIGIL_RINGDUMP") or os.path.join(BUILD, "tests", "ringdump")
SOURCE = os.environ.get("VIGIL_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
STAGES = ("ingest", "relay", "archive", "httpd")
LOGS = os.environ.get("VIGIL_TEST_LOGS") or os.path.join(BUILD, "test-logs")
_count = 0


def config_tokens(text):
    """{name: secret} of a configuration's auth.tokens (token_file read as
    vigild reads it); {} for a file that is not one."""
    try:
        doc = yaml.safe_load(text)
        entries = ((doc or {}).get("auth") or {}).get("tokens") or []
    except (yaml.YAMLError, AttributeError):
        return {}
    out = {}
    for e in entries if isinstance(entries, list) else []:
        if not isinstance(e, dict):
            continue
        secret = e.get("token")
        if secret is None and isinstance(e.get("token_file"), str):
            try:
                with open(e["token_file"]) as f:
                    secret = f.read().rstrip(" \t\r\n\v\f")
            except OSError:
                secret = None
        if isinstance(secret, (str, int, float)) and str(secret) not in ("", "***"):
            out[str(e.get("name"))] = str(secret)
    return out


def keep_logs(run, src_dir, tokens):
    """Copies every log under src_dir (vigild.stderr, *.log, *.stderr, the
    audit log) to LOGS/logs/<run>/ and writes the tokens configured to
    LOGS/tokens/<run>.json (0600). Never fails a test: a copy that cannot be
    made is said on stderr."""
    dst = os.path.join(LOGS, "logs", run)
    try:
        os.makedirs(dst, exist_ok=True)
        os.makedirs(os.path.join(LOGS, "tokens"), exist_ok=True)
        for root, dirs, files in os.walk(src_dir):
            rel = os.path.relpath(root, src_dir)
            in_audit = rel.split(os.sep)[:2] == ["data", "audit"]
            for name in files:
                path = os.path.join(root, name)
                if not (in_audit or name.endswith((".log", ".stderr"))) or \
                        not os.path.isfile(path):
                    continue
                out = os.path.join(dst, rel, name)
                os.makedirs(os.path.dirname(out), exist_ok=True)
                shutil.copyfile(path, out)
        path = os.path.join(LOGS, "tokens", run + ".json")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump([{"name": n, "token": t} for n, t in sorted(tokens)], f)
    except OSError as e:
        print("vigil.py: logs of %s not kept: %s" % (run, e), file=sys.stderr)


class Watch:
    """vigild's stream of stage events (ctl.sock {"cmd":"watch"})."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""
        self.sock.sendall(b'{"cmd":"watch"}\n')
        assert self._line(10)["ok"]

    def _line(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no event from vigild in %.1fs" % timeout)
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("vigild closed the watch socket")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def wait(self, pred, timeout=15, what="event"):
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            try:
                ev = self._line(max(left, 0.01))
            except TimeoutError:
                raise AssertionError("timed out waiting for %s; saw %s" % (what, seen))
            seen.append(ev)
            if pred(ev):
                return ev

    def wait_state(self, stage, state, timeout=15, not_pid=None):
        return self.wait(lambda e: e.get("stage") == stage and e.get("state") == state and
                         (not_pid is None or e.get("pid") != not_pid),
                         timeout, "%s %s" % (stage, state))

    def close(self):
        self.sock.close()


class Vigil:
    def __init__(self, heartbeat="2s", extra="", limits="max_message_bytes: 2MiB",
                 timeouts="", env=None, workers=1):
        global _count
        _count += 1
        self.instance = "it-%d-%d" % (os.getpid(), _count)
        self.run = "%s-%d-%d" % (os.path.splitext(os.path.basename(sys.argv[0]))[0] or "python",
                                 os.getpid(), _count)
        self.tokens = set()  # (name, secret) of every configuration written
        self.dir = tempfile.mkdtemp(prefix="vigil-it-")
        self.run_dir = os.path.join(self.dir, "run")
        self.config = os.path.join(self.dir, "vigil.yaml")
        self.proc = None
        self.limits = limits
        self.timeouts = timeouts
        self.heartbeat = heartbeat
        self.relay_workers = workers  # relay.workers: 1 (as before workers) unless asked
        self.extra = extra
        self.env = env or {}  # for vigild, e.g. VIGIL_STAGE_DIR
        self.ring_size = "16MiB"
        self.write_config()

    def write_config(self):
        heartbeat, extra = self.heartbeat, self.extra
        with open(self.config, "w") as f:
            f.write("instance: %s\nrun_dir: %s\ndata_dir: %s\n" % (
                self.instance, self.run_dir, os.path.join(self.dir, "data")))
            f.write('listen: { ingest: "127.0.0.1:0", relay: "127.0.0.1:0", '
                    'http: "127.0.0.1:0" }\n')
            f.write("ring: { size: %s }\nlimits: { %s }\n" % (self.ring_size, self.limits))
            f.write("timeouts: { stage_heartbeat: %s%s }\n" % (
                heartbeat, ", " + self.timeouts if self.timeouts else ""))
            if self.relay_workers is not None:
                f.write("relay: { workers: %d }\n" % self.relay_workers)
            # The default floor (auto: two hours at the ingest rate) depends on
            # the machine's free space: a test that is not about it keeps none.
            if not any(line.startswith("archive:") for line in extra.splitlines()):
                f.write("archive: { min_free: 0 }\n")
            f.write(extra)
        self.note_tokens()

    def note_tokens(self):
        """Remembers the tokens of the config file as it is now (a test that
        rewrites it calls this, or write_config, before vigild reads it)."""
        try:
            with open(self.config) as f:
                self.tokens |= set(config_tokens(f.read()).items())
        except OSError:
            pass

    @property
    def ctl_path(self):
        return os.path.join(self.run_dir, "ctl.sock")

    def start(self, timeout=20):
        self.stderr = open(os.path.join(self.dir, "vigild.stderr"), "w+")
        self.proc = subprocess.Popen([VIGILD, "--config", self.config, "--foreground"],
                                     stdout=subprocess.PIPE, stderr=self.stderr,
                                     env=dict(os.environ, **self.env))
        out = b""
        deadline = time.monotonic() + timeout
        while b"is up" not in out:
            left = deadline - time.monotonic()
            r, _, _ = select.select([self.proc.stdout], [], [], max(left, 0))
            if not r:
                raise AssertionError("vigild not up in %ds: %s" % (timeout, self.log()))
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                raise AssertionError("vigild exited: %s" % self.log())
            out += chunk
        self.banner = out.decode()
        # what vigild printed on stdout is one of its logs too
        with open(os.path.join(self.dir, "vigild.stdout.log"), "a") as f:
            f.write(self.banner)
        return self

    def log(self):
        self.stderr.flush()
        with open(self.stderr.name) as f:
            return f.read()

    def ctl(self, *args, check=True):
        res = subprocess.run([VIGILCTL, "--config", self.config] + list(args),
                             capture_output=True, text=True, timeout=90)
        if check and res.returncode != 0:
            raise AssertionError("vigilctl %s: %d %s" % (args, res.returncode, res.stderr))
        return res

    def request(self, **req):
        if req.get("cmd") == "config.update" and isinstance(req.get("config"), dict):
            self.tokens |= set(config_tokens(json.dumps(req["config"])).items())
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.ctl_path)
        s.sendall((json.dumps(req) + "\n").encode())
        f = s.makefile("r")
        ans = json.loads(f.readline())
        s.close()
        return ans

    def status(self):
        return json.loads(self.ctl("status", "--json").stdout)

    def stage(self, name):
        """The process of that name; for a stage of workers ("relay" with
        relay.workers > 1), its first worker (whose "listen" is the stage's)."""
        stages = self.status()["stages"]
        found = [s for s in stages if s["name"] == name] or \
            [s for s in stages if s["name"].startswith(name + "/")]
        return found[0]

    def workers(self, name="relay"):
        """Every process of a stage: its workers, or its one process."""
        return [s for s in self.status()["stages"]
                if s["name"] == name or s["name"].startswith(name + "/")]

    def pids(self):
        return {s["name"]: s["pid"] for s in self.status()["stages"]}

    def watch(self):
        return Watch(self.ctl_path)

    def url(self, stage, path):
        return "ws://%s%s" % (self.stage(stage)["listen"], path)

    def ring_dump(self, wait=0, out=None):
        """The ring's sentinel table and segments, read back by a separate reader."""
        args = [RINGDUMP, "/vigil-" + self.instance, "--wait", str(wait)]
        if out:
            args += ["--out", out]
        res = subprocess.run(args, capture_output=True, text=True, timeout=90)
        if res.returncode != 0:
            raise AssertionError("ringdump: %s" % res.stderr)
        return [json.loads(line) for line in res.stdout.splitlines()]

    SANITIZER = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                 "WARNING: ThreadSanitizer")

    def stop(self):
        """Stops vigild; raises if any process under it reported a sanitizer error."""
        report = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.proc.stdout.close()
            log = self.log()
            self.stderr.close()
            if any(s in log for s in self.SANITIZER):
                report = log
        self.note_tokens()
        keep_logs(self.run, self.dir, self.tokens)
        shutil.rmtree(self.dir, ignore_errors=True)
        if report is not None:
            raise AssertionError("sanitizer report in vigild's log:\n" + report[-6000:])


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    return True


def read_tree(top):
    """[(path, bytes)] of every file under top. A file renamed or removed
    between the listing and its reading (head.tmp, a segment's .tmp) is
    skipped: its bytes live on under the new name, which is read too."""
    out = []
    for root, _, files in os.walk(top):
        for name in files:
            path = os.path.join(root, name)
            try:
                with open(path, "rb") as fh:
                    out.append((path, fh.read()))
            except FileNotFoundError:
                pass
    return out


def until(pred, timeout=20, what="condition"):
    """Polls pred (a cheap look at a status, a file or a log) until it holds,
    and returns what it returned; bounded by timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %gs waiting for %s" % (timeout, what))
        time.sleep(0.05)


def http_req(host, port, method, path, token=None, headers=None, timeout=30):
    """One request on its own connection: (status, {lower-case header: value}, body)."""
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + token
    try:
        c.request(method, path, headers=h)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()
