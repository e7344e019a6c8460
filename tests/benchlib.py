"""Shared by the benchmark scripts: the references measured in the same run
(loopback TCP bandwidth) and a process's CPU time."""
import os
import socket
import threading
import time


def free_port():
    """A TCP port on 127.0.0.1 that nobody listened on a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def loopback_mb_s(seconds=2.0):
    """One TCP stream over 127.0.0.1, 256 KiB writes: the machine's loopback bandwidth."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    total = [0]

    def sink():
        c, _ = srv.accept()
        while True:
            b = c.recv(1 << 20)
            if not b:
                break
            total[0] += len(b)
        c.close()

    t = threading.Thread(target=sink)
    t.start()
    c = socket.create_connection(srv.getsockname())
    buf = b"\0" * (256 << 10)
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        c.sendall(buf)
    c.close()
    t.join()
    elapsed = time.monotonic() - t0
    srv.close()
    return total[0] / elapsed / 1e6


def proc_cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
