#!/usr/bin/python3
"""A log flood for the tests: started beside a stage (flood_stage_dir wraps
the stage program), it shares the stage's stderr, the pipe to vigild, and
writes lines into it as a stage printing without pause would (GStreamer's own
stderr, say).

    flood.py CMD_FIFO RESULT_FIFO

Each line read from CMD_FIFO, "RATE SECONDS" (RATE 0: as fast as the pipe
takes them), starts one flood; when it is over, "LINES ELAPSED_S" goes to
RESULT_FIFO. Writes block when vigild does not read: what was written is what
vigild took. Nine lines in ten are in vigil's log format, the tenth is not;
each says "flood RUN line N" (RUN counts the floods of this process), and the
tenth ends with "written MS" (unix ms, the others' stamp) for a reader that
times every line. "say LEVEL TEXT" writes one line of that level in vigil's
format and answers "1 0" when it is written.
It dies with its stage (PR_SET_PDEATHSIG)."""
import ctypes
import os
import signal
import sys
import time


def die_with_parent():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:
        sys.exit(0)


def log_stamp(ms):
    """vigil's log time (common/log.c): UTC, milliseconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def flood(run, rate, seconds):
    pid = os.getpid()
    n = 0
    start = time.monotonic()
    end = start + seconds
    batch = max(rate // 100, 1) if rate else 500
    while True:
        now = time.monotonic()
        if now >= end:
            break
        ms = int(time.time() * 1000)
        stamp = log_stamp(ms)
        for _ in range(batch):
            n += 1
            if n % 10:
                line = "%s archive[%d] info: flood %d line %d %s\n" % (
                    stamp, pid, run, n, "x" * 40)
            else:
                line = "(flood:%d): GStreamer-CRITICAL **: flood %d line %d written %d\n" % (
                    pid, run, n, ms)
            os.write(2, line.encode())
        if rate:
            # Paced: the next batch when its time comes.
            wait = start + n / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
    return n, time.monotonic() - start


def main():
    die_with_parent()
    cmd_fifo, result_fifo = sys.argv[1], sys.argv[2]
    run = 0
    while True:
        with open(cmd_fifo) as f:  # blocks until the test opens it
            for req in f:
                if req.startswith("say "):
                    _, level, text = req.rstrip("\n").split(" ", 2)
                    os.write(2, ("%s archive[%d] %s: %s\n" % (
                        log_stamp(int(time.time() * 1000)), os.getpid(), level,
                        text)).encode())
                    n, elapsed = 1, 0.0
                else:
                    rate, seconds = req.split()
                    run += 1
                    n, elapsed = flood(run, int(rate), float(seconds))
                with open(result_fifo, "w") as out:
                    out.write("%d %.3f\n" % (n, elapsed))


if __name__ == "__main__":
    main()
