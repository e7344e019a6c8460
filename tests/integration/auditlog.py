#!/usr/bin/python3
"""The audit log as docs/audit.md defines it, written by a plain reference:
records with their hash chain, day files, head and base, and the tampering
the tests do. Kept small so that it is obviously right; the tests of the
reading side (test_audit_read.py) and of the writer can both build on it.

    python3 auditlog.py DIR [--records N] [--pad BYTES]   # a valid log in DIR

A record's hash is the SHA-256 of the line with `,"hash":"..."` taken out,
which is exactly the compact JSON of the record without its hash."""
import argparse
import glob
import hashlib
import json
import os
import random
import re
import subprocess
import time

ZERO = "0" * 64
DAY_MS = 86400 * 1000
ACTIONS = ("live.view", "history.read", "export", "delete", "mark", "auth.failed",
           "token.revoke", "stage.set", "config.update", "shutdown")


def day_name(ms):
    return time.strftime("audit-%Y-%m-%d.jsonl", time.gmtime(ms // 1000))


def make_line(rec):
    """rec: the record without hash, keys in the format's order. The line
    (bytes, no newline) and its hash."""
    text = json.dumps(rec, separators=(",", ":"), ensure_ascii=False)
    h = hashlib.sha256(text.encode()).hexdigest()
    return (text[:-1] + ',"hash":"%s"}' % h).encode(), h


class AuditLog:
    """Appends records to DIR's day files the way the writer does. Each
    record kept in .records is the dict as written (hash included), with
    where it went: .files[seq] = (file name, line number from 1). What was
    added is on disk after flush() or write_head()."""

    def __init__(self, d, boot="t0", keep=True):
        self.dir = d
        os.makedirs(d, exist_ok=True)
        self.seq, self.prev = 0, ZERO
        self.records = []
        self.files = {}
        self.lines = {}  # file name -> lines written
        self.boot = boot
        self.keep = keep  # False: .records stays empty (a large log)
        self.out = None  # (name, file) being appended to

    def flush(self):
        """Closes the file being appended to: what was added is on disk."""
        if self.out is not None:
            self.out[1].close()
            self.out = None

    def add(self, time_ms, action, actor="proctors", role="proctor", remote="10.0.0.7",
            written_ms=None, **fields):
        """One record; it goes to the file of the UTC day of written_ms (when
        the writer wrote it), the day of its time by default."""
        self.seq += 1
        rec = {"seq": self.seq, "time": time_ms, "actor": actor, "role": role,
               "remote": remote, "action": action}
        rec.update(fields)
        rec["id"] = "test.%s.%d" % (self.boot, self.seq)
        rec["prev"] = self.prev
        line, h = make_line(rec)
        rec["hash"] = h
        name = day_name(written_ms if written_ms is not None else time_ms)
        if self.out is None or self.out[0] != name:
            self.flush()
            self.out = (name, open(os.path.join(self.dir, name), "ab"))
        self.out[1].write(line + b"\n")
        self.lines[name] = self.lines.get(name, 0) + 1
        self.files[self.seq] = (name, self.lines[name])
        if self.keep:
            self.records.append(rec)
        self.prev = h
        return rec

    def write_head(self):
        self.flush()
        write_anchor(os.path.join(self.dir, "head"), self.seq, self.prev)

    def retire_oldest(self):
        """Retention: the oldest day file goes and base names its last record."""
        self.flush()
        name = sorted(self.lines)[0]
        last = max(s for s, (n, _) in self.files.items() if n == name)
        os.unlink(os.path.join(self.dir, name))
        del self.lines[name]
        write_anchor(os.path.join(self.dir, "base"), last, self.records[last - 1]["hash"])
        return name, last


def write_anchor(path, seq, h):
    with open(path + ".tmp", "w") as f:
        f.write(json.dumps({"seq": seq, "hash": h}, separators=(",", ":")))
    os.rename(path + ".tmp", path)


def fields_for(action, rng, sentinel, session, at):
    if action == "live.view":  # a view that ended at `at`
        return {"sentinelId": sentinel, "sessionId": session,
                "from": at - rng.randrange(1, 3600) * 1000, "to": at}
    if action == "history.read":
        return {"sentinelId": sentinel, "sessionId": session,
                "requests": rng.randrange(1, 60), "bytes": rng.randrange(1, 1 << 30)}
    if action == "export":
        return {"sentinelId": sentinel, "sessionId": session, "range": "0-99",
                "bytes": rng.randrange(1, 1 << 30), "sha256": "%064x" % rng.getrandbits(256)}
    if action in ("delete",):
        return {"sentinelId": sentinel, "sessionId": session}
    if action == "mark":
        return {"sentinelId": sentinel, "sessionId": session,
                "markId": "%032x" % rng.getrandbits(128)}
    if action == "auth.failed":
        return {"endpoint": "/api/sessions", "reason": "Invalid token"}
    if action == "token.revoke":
        return {"token": "***"}
    if action == "stage.set":
        return {"stage": "relay", "state": "restart"}
    if action == "config.update":
        return {"config": {"log_level": "debug", "limits": {"max_proctors": 400}}}
    return {"in": 300}


def generate(log, n, start_ms, step_ms=1000, seed=1, sentinels=None, actors=None, pad=0):
    """n plausible records from start_ms on, one every step_ms (each 0 to 2
    ms late, so times rise when step_ms > 2), over sentinels and actors; pad
    adds a note of that many bytes to each (for large logs)."""
    rng = random.Random(seed)
    sentinels = sentinels or ["%08x-0000-4000-8000-%012x" % (i, i) for i in range(1, 6)]
    actors = actors or [("proctors", "proctor"), ("archive-office", "archivist"),
                        ("ops", "operator"), (None, None)]
    for i in range(n):
        t = start_ms + i * step_ms + rng.randrange(0, 3)
        action = rng.choice(ACTIONS)
        actor, role = rng.choice(actors)
        if action == "auth.failed":
            actor, role = None, None
        s = rng.choice(sentinels)
        f = fields_for(action, rng, s, "%08x-1111-4111-8111-%012x" % (rng.randrange(4), 7), t)
        if pad:
            f["note"] = "x" * pad
        log.add(t, action, actor=actor, role=role, remote="10.0.%d.%d" % (
            rng.randrange(4), rng.randrange(1, 250)), **f)
    log.write_head()
    return log


# ---- the doc's offline check -------------------------------------------------

def doc_script(source_dir):
    """The Python of docs/audit.md's "Verifying a copy offline", as the doc has it."""
    with open(os.path.join(source_dir, "docs", "audit.md")) as f:
        doc = f.read()
    part = doc[doc.index("## Verifying a copy offline"):]
    return re.search(r"```python\n(.*?)```", part, re.S).group(1)


def doc_first_bad(source_dir, d, python="/usr/bin/python3"):
    """Runs the doc's script on d: (None, records) when intact, else (firstBad, text)."""
    res = subprocess.run([python, "-c", doc_script(source_dir), d], capture_output=True,
                         text=True, timeout=600)
    if res.returncode == 0:
        return None, int(res.stdout.split()[0])
    m = re.match(r"first bad record: (\d+)", res.stderr.strip())
    if m is None:
        raise AssertionError("the doc's script failed: %s" % res.stderr)
    return int(m.group(1)), res.stderr.strip()


# ---- tampering ---------------------------------------------------------------

def read_lines(path):
    with open(path, "rb") as f:
        return f.read().split(b"\n")[:-1]  # every line ends in "\n"


def write_lines(path, lines, end=b"\n"):
    with open(path, "wb") as f:
        f.write(b"".join(ln + b"\n" for ln in lines[:-1]) + (lines[-1] + end if lines else b""))


def change_byte(log, seq, at=25):
    """One byte of record seq's line changed: by default a digit of its time,
    so that the line is still JSON and only its hash tells."""
    name, n = log.files[seq]
    path = os.path.join(log.dir, name)
    lines = read_lines(path)
    ln = bytearray(lines[n - 1])
    ln[at] = ord("7") if ln[at] != ord("7") else ord("8")
    lines[n - 1] = bytes(ln)
    write_lines(path, lines)


def delete_line(log, seq):
    name, n = log.files[seq]
    path = os.path.join(log.dir, name)
    lines = read_lines(path)
    del lines[n - 1]
    write_lines(path, lines)


def swap_lines(log, seq):
    """Records seq and seq + 1 (in one file) change places."""
    name, n = log.files[seq]
    assert log.files[seq + 1] == (name, n + 1)
    path = os.path.join(log.dir, name)
    lines = read_lines(path)
    lines[n - 1], lines[n] = lines[n], lines[n - 1]
    write_lines(path, lines)


def last_file(log):
    return os.path.join(log.dir, sorted(glob.glob(os.path.join(log.dir, "audit-*.jsonl")))[-1])


def cut_last_line(log, keep=50):
    """The last line cut after keep bytes, without its newline."""
    path = last_file(log)
    lines = read_lines(path)
    lines[-1] = lines[-1][:keep]
    write_lines(path, lines, end=b"")


def remove_last_line(log):
    path = last_file(log)
    write_lines(path, read_lines(path)[:-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--records", type=int, default=1000)
    ap.add_argument("--pad", type=int, default=0, help="bytes of filler per record")
    ap.add_argument("--start", type=int, default=None, help="unix ms of the first record")
    ap.add_argument("--step", type=int, default=1000, help="ms between records")
    a = ap.parse_args()
    start = a.start if a.start is not None else int(time.time() * 1000) - a.records * a.step
    log = generate(AuditLog(a.dir, keep=False), a.records, start, a.step, pad=a.pad)
    print("%d records in %d files" % (log.seq, len(log.lines)))


if __name__ == "__main__":
    main()
