#!/usr/bin/python3
"""trusted_proxies (issue 17): the client address a reverse proxy passes on
(X-Forwarded-For, X-Real-IP) is believed from the configured proxy only, for
httpd's requests and relay's and ingest's upgrades alike: in the audit log's
`remote`, and in the per-address cap. The proxy is this test connecting from
127.0.0.2 (trusted_proxies: [127.0.0.2]); 127.0.0.1 is anyone else, whose
headers must change nothing. tests/browser/test_nginx.mjs runs the real nginx
site in front of vigil."""
import http.client
import json
import os
import socket
import sys
import unittest

import websocket

sys.path.insert(0, os.path.dirname(__file__))
from vigil import Vigil, until  # noqa: E402

PROXY, OTHER = "127.0.0.2", "127.0.0.1"
PT, OT, ST = "proctor-secret-p", "operator-secret-p", "sentinel-secret-p"
PER_IP = 3
EXTRA = """trusted_proxies: [%s]
auth:
  sentinel: required
  tokens:
    - { name: p1, role: proctor, token: "%s" }
    - { name: o1, role: operator, token: "%s" }
    - { name: s1, role: sentinel, token: "%s" }
""" % (PROXY, PT, OT, ST)



class Proxy(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.v = Vigil(extra=EXTRA, limits="max_message_bytes: 2MiB, max_connections_per_ip: %d"
                      % PER_IP).start()
        cls.http = cls.v.stage("httpd")["listen"].rsplit(":", 1)
        cls.held = []

    @classmethod
    def tearDownClass(cls):
        cls.v.stop()

    def tearDown(self):
        for c in self.held:
            c.close()
        self.held.clear()

    def conn(self, source):
        c = http.client.HTTPConnection(self.http[0], int(self.http[1]), timeout=10,
                                       source_address=(source, 0))
        self.held.append(c)
        return c

    def get(self, path, source=OTHER, token=OT, headers=None, conn=None):
        """(status, headers, body) of one request; on a new connection unless conn."""
        c = conn or self.conn(source)
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        c.request("GET", path, headers=h)
        r = c.getresponse()
        body = r.read()
        if conn is None:
            c.close()
        return r.status, r.headers, body

    def refused(self, endpoint):
        """The auth.failed record httpd, relay or ingest wrote for endpoint."""
        def find():
            st, _, body = self.get("/api/audit?action=auth.failed")
            self.assertEqual(st, 200, body)
            recs = [json.loads(ln) for ln in body.decode().splitlines()]
            return next((r for r in recs if r.get("endpoint") == endpoint), None)
        return until(find, what="an auth.failed record for " + endpoint)

    def ws(self, stage, path, source, headers):
        """An upgrade to stage's path from source with headers."""
        host, port = self.v.stage(stage)["listen"].rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=10, source_address=(source, 0))
        return websocket.create_connection("ws://%s:%s%s" % (host, port, path), socket=s,
                                           header=headers, timeout=10)

    def test_1_httpd(self):
        """A refused request's remote: the client the proxy names, right to
        left past trusted entries (X-Real-IP when there is no usable
        X-Forwarded-For; the proxy itself when neither); anyone else's
        headers are ignored."""
        cases = [
            ("/api/sentinels", PROXY, {"X-Forwarded-For": "203.0.113.1, 198.51.100.10"},
             "198.51.100.10"),
            ("/api/sessions", PROXY, {"X-Forwarded-For": "198.51.100.11, 127.0.0.2"},
             "198.51.100.11"),
            ("/api/status", PROXY, {"X-Real-IP": "2001:db8::11"}, "2001:db8::11"),
            ("/api/metrics", PROXY, {"X-Forwarded-For": "nonsense"}, PROXY),
            ("/metrics", PROXY, {}, PROXY),
            ("/api/config", OTHER, {"X-Forwarded-For": "203.0.113.2", "X-Real-IP": "203.0.113.3"},
             OTHER),
        ]
        for path, source, headers, _ in cases:
            st, _, _ = self.get(path, source, "not-a-token", headers)
            self.assertEqual(st, 401, path)
        for path, _, _, remote in cases:
            self.assertEqual(self.refused(path)["remote"], remote, path)

    def test_2_relay_and_ingest(self):
        """The same for a WebSocket upgrade to relay and to ingest."""
        for stage, path, reg in (("relay", "/proctor", "proctor.register"),
                                 ("ingest", "/sentinel", "sentinel.register")):
            for source, client in ((PROXY, "198.51.100.20"), (OTHER, "203.0.113.4")):
                w = self.ws(stage, path, source, ["X-Forwarded-For: " + client])
                w.send(json.dumps({"type": reg, "payload": {"token": "not-a-token",
                                                            "version": 1}}))
                with self.assertRaises(websocket.WebSocketConnectionClosedException):
                    for _ in range(20):
                        w.recv()
                w.close()
                rec = until(lambda: self.refused_from(path, client if source == PROXY
                                                      else OTHER), what="relay/ingest record")
                self.assertEqual(rec["endpoint"], path)

    def refused_from(self, endpoint, remote):
        st, _, body = self.get("/api/audit?action=auth.failed")
        recs = [json.loads(ln) for ln in body.decode().splitlines()]
        return next((r for r in recs if r.get("endpoint") == endpoint and
                     r.get("remote") == remote), None)

    def test_3_cap_counts_the_client(self):
        """The proxy's own connections are not capped; each client it names
        is, at limits.max_connections_per_ip (429 with Retry-After, for an
        HTTP request and an upgrade alike), and a freed slot serves again."""
        for i in range(PER_IP + 2):  # more than the cap from the proxy's address
            c = self.conn(PROXY)
            st, _, _ = self.get("/api/sentinels", token=PT, conn=c,
                                headers={"X-Forwarded-For": "198.51.100.%d" % (100 + i)})
            self.assertEqual(st, 200)
        same = {"X-Forwarded-For": "198.51.100.30"}
        kept = []
        for _ in range(PER_IP):
            c = self.conn(PROXY)
            self.assertEqual(self.get("/api/sentinels", token=PT, conn=c, headers=same)[0], 200)
            kept.append(c)
        st, hdrs, body = self.get("/api/sentinels", PROXY, PT, same)
        self.assertEqual((st, hdrs.get("Retry-After")), (429, "1"), body)
        kept[0].close()
        until(lambda: self.get("/api/sentinels", PROXY, PT, same)[0] == 200,
              what="a freed slot")
        # Each listener counts its own connections: relay's upgrades.
        fwd = ["X-Forwarded-For: 198.51.100.31"]
        socks = [self.ws("relay", "/proctor", PROXY, fwd) for _ in range(PER_IP)]
        with self.assertRaises(websocket.WebSocketBadStatusException) as e:
            self.ws("relay", "/proctor", PROXY, fwd)
        self.assertEqual(e.exception.status_code, 429)
        for w in socks:
            w.close()

    def test_4_relay_address(self):
        """GET /api/relay (no token) tells the page where relay is."""
        relay_port = int(self.v.stage("relay")["listen"].rsplit(":", 1)[1])
        # listen.relay is port 0 here: httpd learns the port from vigild's status.
        self.assertEqual(self.get("/api/status", token=PT)[0], 200)
        st, hdrs, body = self.get("/api/relay", PROXY, None, {"X-Real-IP": "198.51.100.50"})
        self.assertEqual((st, json.loads(body)), (200, {"sameOrigin": True, "path": "/proctor"}))
        self.assertEqual(hdrs.get("Cache-Control"), "no-cache")
        want = {"sameOrigin": False, "port": relay_port, "path": "/proctor"}
        st, _, body = self.get("/api/relay", OTHER, None, {"X-Forwarded-For": "203.0.113.5"})
        self.assertEqual((st, json.loads(body)), (200, want))
        # A browser on the proxy's host, straight to httpd: no forwarded header.
        self.assertEqual(json.loads(self.get("/api/relay", PROXY, None)[2]), want)

    def fwd_relay(self):
        return self.get("/api/relay", PROXY, None, {"X-Forwarded-For": "198.51.100.51"})[2]

    def test_5_live_update(self):
        """trusted_proxies is live: emptied, the proxy is anyone (its headers
        ignored); restored, believed again."""
        res = self.v.ctl("config", "set", "trusted_proxies", "[]")
        self.assertIn("applied: trusted_proxies", res.stdout)
        until(lambda: json.loads(self.fwd_relay())["sameOrigin"] is False,
              what="the proxy no longer trusted")
        self.get("/api/audit/verify", PROXY, "not-a-token", {"X-Forwarded-For": "198.51.100.40"})
        self.assertEqual(self.refused("/api/audit/verify")["remote"], PROXY)
        self.v.ctl("config", "set", "trusted_proxies", "null")
        until(lambda: json.loads(self.fwd_relay())["sameOrigin"] is True,
              what="the proxy trusted again")


if __name__ == "__main__":
    unittest.main(verbosity=2)
