#!/usr/bin/env python3
"""No token in any log (issue 16, item 5): looks for every token the tests
configured in every log the tests kept (tests/integration/vigil.py and
tests/browser/lib.mjs keep them: each vigild's and its stages' lines, the
sentinels' stderr, the audit log) and fails naming the file and line, and the
token by its configured name, never the token itself. A token fails when it
is in a log of a vigild that had it configured; in the logs of another run
(where it is no secret: a test named a sentinel "revoke-me" while another
test's vigild had that token) it is only noted.

    check_secrets.py [DIR]    DIR: $VIGIL_TEST_LOGS, else <build>/test-logs

DIR/tokens/*.json are the tokens ([{name, token}] per run), DIR/logs/** the
logs. A token is looked for as it is, percent-encoded and JSON-escaped (the
forms a URL or a JSON line would carry). A token shorter than MIN_LEN bytes
cannot be looked for without matching ordinary text: it fails, naming the
run that configured it. Nothing kept at all fails too: the harness did not
run, so nothing was checked.

Ends with "N passed, M failed" (tests/summarize.py counts it): a token never
found passes, a token found (or too short to look for) fails. Exit 1 on any
failure."""
import glob
import json
import os
import sys
from urllib.parse import quote

MIN_LEN = 8
MAX_HITS = 10  # places reported per token


def forms(token):
    """The spellings of a token a log line could hold."""
    escaped = json.dumps(token)[1:-1]
    out = {token, quote(token, safe=""), quote(token, safe="/:"), escaped,
           escaped.replace("/", "\\/")}
    return sorted({f.encode() for f in out})


def load_tokens(root):
    """{run: {token: name}} of every tokens/RUN.json."""
    runs = {}
    for path in sorted(glob.glob(os.path.join(root, "tokens", "*.json"))):
        run = os.path.splitext(os.path.basename(path))[0]
        try:
            with open(path) as f:
                entries = json.load(f)
        except (OSError, ValueError) as e:
            print("secrets: %s unreadable: %s" % (path, e))
            continue
        runs[run] = {str(e["token"]): str(e["name"]) for e in entries}
    return runs


def log_files(root):
    """(run, path) of every file under logs/RUN/."""
    base = os.path.join(root, "logs")
    for run in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        for d, _, files in os.walk(os.path.join(base, run)):
            for name in sorted(files):
                yield run, os.path.join(d, name)


def where(data, offset):
    """1-based line number of offset."""
    return data.count(b"\n", 0, offset) + 1


def find(data, token, limit):
    """Offsets of every form of token in data, at most limit."""
    out = []
    for form in forms(token):
        at = data.find(form)
        while at >= 0 and len(out) < limit:
            out.append(at)
            at = data.find(form, at + len(form))
    return out


def check(root):
    """(passed, failed, report lines). A token is a secret of the vigilds
    configured with it: it fails when it is in one of their logs. Found in
    the logs of a run that did not have it (another test named a sentinel
    like it, say), it is not that vigild's secret: said, not failed."""
    runs = load_tokens(root)
    files = list(log_files(root))
    report = []
    if not runs or not files:
        report.append("secrets: nothing to check in %s (%d token files, %d logs): the tests "
                      "kept no logs (is VIGIL_TEST_LOGS the same for them and for this check?)"
                      % (root, len(runs), len(files)))
        return 0, 1, report
    owners = {}  # token -> [(run, name)]
    for run, toks in runs.items():
        for token, name in toks.items():
            owners.setdefault(token, []).append((run, name))
    hits = {t: [] for t in owners}
    elsewhere = {t: [] for t in owners}
    for run, path in files:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            report.append("secrets: %s unreadable: %s" % (path, e))
            continue
        rel = os.path.relpath(path, root)
        for token in owners:
            own = token in runs.get(run, {})
            found = hits[token] if own else elsewhere[token]
            if len(token) < MIN_LEN or len(found) >= MAX_HITS:
                continue
            for at in find(data, token, MAX_HITS - len(found)):
                found.append("%s:%d" % (rel, where(data, at)))
    passed = failed = 0
    for token, who in sorted(owners.items(), key=lambda x: sorted(x[1])):
        names = sorted("%s (run %s)" % (n, r) for r, n in who)
        desc = ", ".join(names[:3]) + (" and %d more" % (len(names) - 3) if len(names) > 3
                                       else "")
        if len(token) < MIN_LEN:
            failed += 1
            report.append("secrets: FAILED: the token of %s is %d bytes, too short to look for "
                          "(give tests tokens of %d bytes or more)" % (desc, len(token), MIN_LEN))
            continue
        if hits[token]:
            failed += 1
            report.append("secrets: FAILED: the token of %s is in %s%s" % (
                desc, ", ".join(sorted(set(hits[token]))),
                " (and maybe more)" if len(hits[token]) >= MAX_HITS else ""))
        else:
            passed += 1
        if elsewhere[token]:
            report.append("secrets: note: the token of %s is also the text of logs of runs "
                          "that did not have it: %s" % (desc,
                                                        ", ".join(sorted(set(elsewhere[token])))))
    report.append("secrets: %d tokens of %d runs looked for in %d logs (%d bytes)" % (
        len(owners), len(runs), len(files), sum(os.path.getsize(p) for _, p in files)))
    return passed, failed, report


def main(argv):
    root = argv[1] if len(argv) > 1 else (
        os.environ.get("VIGIL_TEST_LOGS") or
        os.path.join(os.environ.get("VIGIL_BUILD_DIR") or "build", "test-logs"))
    passed, failed, report = check(root)
    for line in report:
        print(line)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
