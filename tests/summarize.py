#!/usr/bin/env python3
"""Counts test cases over meson test logs: Check programs, Python unittest
scripts and the browser test (its closing "N passed, M failed" line) report
their own case counts; any other test counts as one. A program
that crashed before reporting counts as one failure; each fuzz target (--fuzz
FILE, the output of tests/fuzz/run.sh) counts as one. Prints the closing line
"N passed, M failed" and exits 1 when anything failed."""
import json
import re
import sys

CHECK = re.compile(r"(\d+)%: Checks: (\d+), Failures: (\d+), Errors: (\d+)")
UNITTEST_RAN = re.compile(r"^Ran (\d+) tests? in", re.M)
UNITTEST_FAIL = re.compile(r"^FAILED \((.*)\)$", re.M)
STEPS = re.compile(r"^(\d+) passed, (\d+) failed", re.M)


def count(entry):
    out = (entry.get("stdout") or "") + (entry.get("stderr") or "")
    ok = entry.get("result") in ("OK", "EXPECTEDFAIL", "SKIP")
    m = CHECK.findall(out)
    if m:
        total = sum(int(x[1]) for x in m)
        bad = sum(int(x[2]) + int(x[3]) for x in m)
        if not ok and bad == 0:
            bad = 1  # the program failed beyond its cases (a sanitizer, a crash at exit)
        return total - min(bad, total), bad
    ran = UNITTEST_RAN.findall(out)
    if ran:
        total = sum(int(x) for x in ran)
        bad = 0
        for f in UNITTEST_FAIL.findall(out):
            bad += sum(int(n) for n in re.findall(r"(?:failures|errors)=(\d+)", f))
        if not ok and bad == 0:
            bad = 1
        return total - min(bad, total), bad
    steps = STEPS.findall(out)
    if steps:
        good, bad = int(steps[-1][0]), int(steps[-1][1])
        if not ok and bad == 0:
            bad = 1
        return good, bad
    return (1, 0) if ok else (0, 1)


def fuzz_counts(path):
    """tests/fuzz/run.sh prints one line per target: "fuzz_X: N runs, no crash" or a crash."""
    passed = failed = 0
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return 0, 1
    for line in lines:
        if not line.startswith("fuzz"):
            continue
        if "no crash" in line:
            passed += 1
        else:
            failed += 1
            print("FAILED: %s" % line)
    return (passed, failed) if passed + failed else (0, 1)


def main():
    passed = failed = 0
    args = sys.argv[1:]
    if args[:1] == ["--fuzz"]:
        passed, failed = fuzz_counts(args[1])
        args = args[2:]
    for path in args:
        try:
            lines = open(path).read().splitlines()
        except OSError as e:
            print("summarize: %s: %s" % (path, e))
            failed += 1
            continue
        for line in lines:
            entry = json.loads(line)
            p, f = count(entry)
            passed += p
            failed += f
            if f:
                print("FAILED: %s (%s)" % (entry.get("name"), path))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
