#!/usr/bin/env python3
"""Token hygiene (issue 16, item 5) against a running vigild: a playlist's
links carry a playlist token of their own (docs/httpd.md, "Playlist tokens"),
never a configured token; that token reads its session's init, segments and
playlist and nothing else (403), ends with its parent's revocation, removal
from the config or expiry, outlives a restart of httpd, and refuses any byte
changed; /api/config shows every secret as "***". The expiry arithmetic
itself is in tests/test_hlscap.c, against an injected clock."""
import base64
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from proctor import Proctor  # noqa: E402
from test_httpd import INIT, SEG0, SEG1, sha, until  # noqa: E402
from vigil import BUILD, VIGILCTL, Vigil, http_req  # noqa: E402
from wsclient import Client  # noqa: E402

PT, AT, OT = "proctor-secret-7Hq", "archivist-secret-4Kd", "operator-secret-9Zw"
RV, GONE, SOON, FILED = ("revoked-later-2Bn", "removed-later-8Tc", "expires-soon-5Rp",
                         "from-a-file-3Mx")
ALL = (PT, AT, OT, RV, GONE, SOON, FILED)
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def auth(token_file, soon_at, with_gone=True):
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(soon_at))
    return ("auth:\n  sentinel: none\n  tokens:\n"
            '    - { name: p1, role: proctor, token: "%s" }\n'
            '    - { name: a1, role: archivist, token: "%s" }\n'
            '    - { name: o1, role: operator, token: "%s" }\n'
            '    - { name: rv, role: proctor, token: "%s" }\n'
            '    - { name: soon, role: proctor, token: "%s", expires: %s }\n'
            "    - { name: filed, role: proctor, token_file: %s }\n" % (
                PT, AT, OT, RV, SOON, soon, token_file) +
            ('    - { name: gone, role: proctor, token: "%s" }\n' % GONE if with_gone else ""))


def write_session(data, sid):
    """An ended session of sentinel sid in the archive's layout, two segments."""
    sess = str(uuid.uuid4())
    d = os.path.join(data, sid, sess)
    os.makedirs(d)
    with open(os.path.join(data, sid, "sentinel.json"), "w") as f:
        json.dump({"sentinelId": sid, "name": "cam", "updated": 1}, f)
    now = int(time.time() * 1000)
    with open(os.path.join(d, "session.json"), "w") as f:
        json.dump({"sentinelId": sid, "sessionId": sess, "name": "cam",
                   "codec": "avc1.64000d", "width": 160, "height": 90, "timescale": 90000,
                   "startTime": now - 5000, "endTime": now - 1000, "inits": 1}, f)
    for name, blob in (("init.mp4", INIT), ("000000.m4s", SEG0), ("000001.m4s", SEG1)):
        with open(os.path.join(d, name), "wb") as f:
            f.write(blob)
    with open(os.path.join(d, "index.jsonl"), "w") as f:
        for i, seg in enumerate((SEG0, SEG1)):
            f.write(json.dumps({"sequence": i, "startTime": now - 5000 + 100 * i,
                                "duration": 100, "bytes": len(seg), "keyframe": True,
                                "init": 0, "sha256": sha(seg)}) + "\n")
    return "/api/sentinels/%s/sessions/%s" % (sid, sess)


def cap_expiry(cap):
    """The expiry a playlist token carries (common/hlscap.h's layout)."""
    raw = base64.urlsafe_b64decode(cap[4:] + "==")
    assert len(raw) == 28, cap
    return int.from_bytes(raw[:4], "big")


class Secrets(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.v = Vigil()
        cls.token_file = os.path.join(cls.v.dir, "filed.token")
        with open(cls.token_file, "w") as f:
            f.write(FILED + "\n")
        cls.soon_at = int(time.time()) + 12
        cls.v.extra = auth(cls.token_file, cls.soon_at)
        cls.v.write_config()
        cls.data = os.path.join(cls.v.dir, "data")
        sid = str(uuid.uuid4())
        cls.a = write_session(cls.data, sid)
        cls.a2 = write_session(cls.data, sid)  # the same sentinel's other session
        cls.b = write_session(cls.data, str(uuid.uuid4()))
        cls.v.start()
        cls.host, port = cls.v.stage("httpd")["listen"].rsplit(":", 1)
        cls.port = int(port)

    @classmethod
    def tearDownClass(cls):
        cls.v.stop()

    def req(self, method, path, bearer=None, headers=None):
        return http_req(self.host, self.port, method, path, bearer, headers, timeout=15)

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def playlist(self, base, token):
        """The playlist fetched with ?token=token: its text and its links' token."""
        st, hd, body = self.get(base + "/playlist.m3u8?token=" + token)
        self.assertEqual(st, 200, body)
        text = body.decode()
        caps = set(re.findall(r"token=([^\s\"&]+)", text))
        self.assertEqual(len(caps), 1, text)
        return text, caps.pop()

    def refused(self, st, body, status, error):
        self.assertEqual(st, status, body)
        self.assertEqual(json.loads(body), {"error": error})

    def test_playlist_has_no_configured_token(self):
        """Whoever fetches it, by ?token=: its links carry an hc1. token of the
        URL-safe alphabet, the same in every link, and no configured token
        appears anywhere in the body."""
        for tok in (PT, AT, OT, FILED):
            text, cap = self.playlist(self.a, tok)
            for secret in ALL:
                self.assertNotIn(secret, text)
            self.assertTrue(cap.startswith("hc1.") and len(cap) == 42, cap)
            self.assertTrue(set(cap[4:]) <= set(ALPHABET), cap)
            self.assertIn('#EXT-X-MAP:URI="init.mp4?token=%s"' % cap, text)
            self.assertIn("segments/1.m4s?token=%s\n" % cap, text)
        # by the header: bare links, as before (the player sends the header)
        st, _, body = self.get(self.a + "/playlist.m3u8", bearer=PT)
        self.assertEqual(st, 200)
        self.assertNotIn(b"token=", body)
        self.assertIn(b"segments/0.m4s\n", body)

    def test_playlist_token_reads_its_session(self):
        """init, every segment, a Range, HEAD, init.mp4?init=0, and the playlist
        again (a live playlist's reload), whose links keep the same token."""
        _, cap = self.playlist(self.a, PT)
        q = "?token=" + cap
        self.assertEqual(self.get(self.a + "/init.mp4" + q)[::2], (200, INIT))
        self.assertEqual(self.get(self.a + "/init.mp4?init=0&token=" + cap)[::2], (200, INIT))
        self.assertEqual(self.get(self.a + "/segments/0.m4s" + q)[::2], (200, SEG0))
        self.assertEqual(self.get(self.a + "/segments/1.m4s" + q)[::2], (200, SEG1))
        st, hd, body = self.get(self.a + "/segments/1.m4s" + q, headers={"Range": "bytes=0-9"})
        self.assertEqual((st, body), (206, SEG1[:10]))
        st, hd, body = self.req("HEAD", self.a + "/segments/0.m4s" + q)
        self.assertEqual((st, body, hd["content-length"]), (200, b"", str(len(SEG0))))
        text, again = self.playlist(self.a, cap)
        self.assertEqual(again, cap)
        self.assertNotIn(PT, text)
        # in the header it is the same token
        self.assertEqual(self.get(self.a + "/segments/0.m4s", bearer=cap)[::2], (200, SEG0))

    def test_playlist_token_refused_elsewhere(self):
        """403 JSON for another session (of the same sentinel or another), and
        for every other route and method: export, manifest, DELETE, the
        listings, snapshots, live MJPEG, status, config, metrics."""
        _, cap = self.playlist(self.a, PT)
        q = "?token=" + cap
        for base in (self.a2, self.b):
            for path in ("/init.mp4", "/segments/0.m4s", "/playlist.m3u8"):
                st, _, body = self.get(base + path + q)
                self.refused(st, body, 403, "Playlist token not valid for this session")
        here = ("Playlist token not valid here: it reads its session's init.mp4, segments "
                "and playlist.m3u8 only")
        sentinel = self.a.split("/")[3]
        for path in (self.a + "/export.mp4", self.a + "/manifest.json", self.a + "/segments",
                     "/api/sentinels/%s/sessions" % sentinel, "/api/sentinels",
                     "/api/sessions", "/api/sentinels/%s/snapshot.jpg" % sentinel,
                     "/api/sentinels/%s/live.mjpeg" % sentinel, "/api/status",
                     "/api/config", "/api/metrics", "/metrics"):
            st, _, body = self.get(path + q)
            self.refused(st, body, 403, here)
        st, _, body = self.req("DELETE", self.a + q)
        self.refused(st, body, 403, here)
        st, _, body = self.req("DELETE", self.a, bearer=cap)
        self.refused(st, body, 403, here)
        parts = self.a.split("/")
        self.assertTrue(os.path.isdir(os.path.join(self.data, parts[3], parts[5])))
        # nor is it a token on the sockets
        p = Proctor(self.v.url("relay", "/proctor"))
        self.addCleanup(p.close)
        p.send("proctor.register", {"token": cap})
        self.assertEqual(p.expect("server.registration.reject")["reason"], "Invalid token")

    def test_changed_byte_refused(self):
        """Any character of the token's body replaced by another of the
        alphabet: 403. In the prefix it is no playlist token at all: 401."""
        _, cap = self.playlist(self.a, PT)
        c = http.client.HTTPConnection(self.host, self.port, timeout=15)
        for i in range(len(cap)):
            other = next(ch for ch in ALPHABET + "." if ch != cap[i])
            bad = cap[:i] + other + cap[i + 1:]
            c.request("GET", self.a + "/segments/0.m4s?token=" + bad)
            r = c.getresponse()
            body = r.read()
            if i < 4:
                self.assertEqual((r.status, json.loads(body)), (401, {"error": "Invalid token"}))
            else:
                self.assertEqual((r.status, json.loads(body)),
                                 (403, {"error": "Playlist token not valid for this session"}),
                                 (i, bad))
        for bad in (cap[:-1], cap + "A", cap + "=", cap.lower()):
            c.request("GET", self.a + "/segments/0.m4s?token=" + bad)
            r = c.getresponse()
            self.assertIn(r.status, (401, 403), bad)
            r.read()
        c.close()

    def test_expiry_follows_the_playlist_and_the_parent(self):
        """An ended session's links expire 1 h after its duration from now, a
        live one's 6 h; never after the parent token's own expiry, and at that
        expiry they are refused."""
        t0 = int(time.time())
        _, cap = self.playlist(self.a, PT)
        # 0.2 s of video, rounded up to a second
        self.assertTrue(t0 + 3601 <= cap_expiry(cap) <= int(time.time()) + 3601, cap_expiry(cap))
        s = Client(self.v.url("ingest", "/sentinel"))
        self.addCleanup(s.close)
        ack = s.register(name="live-cam")
        s.send("sentinel.init", {"data": INIT})
        s.send("sentinel.segment", {"sequence": 0, "data": SEG0, "duration": 100,
                                    "startTime": int(time.time() * 1000)})
        live = "/api/sentinels/%s/sessions/%s" % (ack["sentinelId"], ack["sessionId"])
        # listed with its segment: a playlist without one has no links yet
        until(lambda: (lambda r: r[0] == 200 and json.loads(r[2])["segments"])(
            self.get(live + "/segments", bearer=PT)), what="live session with its segment")
        t0 = int(time.time())
        text, cap = self.playlist(live, PT)
        self.assertNotIn("#EXT-X-ENDLIST", text)
        self.assertTrue(t0 + 6 * 3600 + 1 <= cap_expiry(cap) <= int(time.time()) + 6 * 3600 + 1,
                        cap_expiry(cap))
        # a parent that expires sooner: its expiry, then 403
        _, cap = self.playlist(self.a, SOON)
        self.assertEqual(cap_expiry(cap), self.soon_at)
        self.assertEqual(self.get(self.a + "/segments/0.m4s?token=" + cap)[0], 200)
        # time(2) reads the kernel's coarse clock, up to a tick behind time.time()
        until(lambda: time.time() > self.soon_at + 0.1, timeout=30, what="the token's expiry")
        st, _, body = self.get(self.a + "/segments/0.m4s?token=" + cap)
        self.refused(st, body, 403, "Playlist token expired")
        st, _, body = self.get(self.a + "/segments/0.m4s?token=" + SOON)
        self.refused(st, body, 401, "Token expired")

    def test_revoked_parent(self):
        _, cap = self.playlist(self.a, RV)
        self.assertEqual(self.get(self.a + "/segments/0.m4s?token=" + cap)[0], 200)
        self.assertTrue(self.v.request(cmd="revoke", token=RV)["ok"])
        seg = self.a + "/segments/0.m4s?token="
        until(lambda: self.get(seg + RV)[0] == 401, what="the revocation in httpd")
        st, _, body = self.get(seg + cap)
        self.refused(st, body, 403, "Playlist token revoked")

    def test_parent_removed_from_the_config(self):
        _, cap = self.playlist(self.a, GONE)
        _, keep = self.playlist(self.a, PT)
        seg = self.a + "/segments/0.m4s?token="
        self.assertEqual(self.get(seg + cap)[0], 200)
        self.v.extra = auth(self.token_file, self.soon_at, with_gone=False)
        self.v.write_config()
        self.v.ctl("reload")
        until(lambda: self.get(seg + GONE)[0] == 401, what="the reload in httpd")
        st, _, body = self.get(seg + cap)
        self.refused(st, body, 403, "Playlist token not valid for this session")
        self.assertEqual(self.get(seg + keep)[0], 200)

    def test_restart_of_httpd_keeps_playlist_tokens(self):
        """The key is data_dir/.hls-key (0600): a player mid-playback goes on
        after `vigilctl restart httpd`."""
        _, cap = self.playlist(self.a, PT)
        key = os.path.join(self.data, ".hls-key")
        st = os.stat(key)
        self.assertEqual((st.st_mode & 0o777, st.st_size), (0o600, 32))
        with open(key, "rb") as f:
            before = f.read()
        old = self.v.stage("httpd")["pid"]
        self.v.ctl("restart", "httpd")
        self.assertNotEqual(self.v.stage("httpd")["pid"], old)
        self.assertEqual(self.get(self.a + "/segments/1.m4s?token=" + cap)[::2], (200, SEG1))
        with open(key, "rb") as f:
            self.assertEqual(f.read(), before)
        self.assertEqual([n for n in os.listdir(self.data) if n.startswith(".hls-key")],
                         [".hls-key"])

    def test_api_config_shows_no_secret(self):
        """Every token, inline or from a file, is "***"; no secret is anywhere
        in the body (nor in vigilctl's config)."""
        st, _, body = self.get("/api/config", bearer=OT)
        self.assertEqual(st, 200)
        cfg = json.loads(body)
        tokens = {t["name"]: t["token"] for t in cfg["auth"]["tokens"]}
        self.assertLessEqual({"p1", "a1", "o1", "rv", "soon", "filed"}, set(tokens))
        self.assertEqual(set(tokens.values()), {"***"})
        self.assertEqual(next(t for t in cfg["auth"]["tokens"] if t["name"] == "filed")[
            "token_file"], self.token_file)
        for secret in ALL:
            self.assertNotIn(secret.encode(), body)
        res = subprocess.run([VIGILCTL, "--config", self.v.config, "config", "show"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr)
        for secret in ALL:
            self.assertNotIn(secret, res.stdout + res.stderr)


class SentinelUrl(unittest.TestCase):
    """vigil-sentinel's own lines quote --url: never its token or password."""

    def test_url_redacted(self):
        sentinel = os.path.join(BUILD, "deploy", "vigil-sentinel")
        secret, password = "url-secret-6Yv", "pass-word-1Qs"
        # a usage error quotes the URL
        res = subprocess.run([sentinel, "--url", "http://u:%s@h/x?token=%s" % (password, secret)],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(res.returncode, 2, res.stderr)
        self.assertIn("--url: 'http://***@h/x?token=***' is not ws://", res.stderr)
        # a running sentinel names where it sends, and fails to connect there
        port = socket.socket()
        port.bind(("127.0.0.1", 0))
        where = "ws://127.0.0.1:%d/sentinel" % port.getsockname()[1]
        port.close()
        proc = subprocess.Popen([sentinel, "--url", where + "?token=" + secret, "--token",
                                 "token-not-logged-4Rk"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            err = ""
            deadline = time.monotonic() + 20
            while "connection failed" not in err and time.monotonic() < deadline:
                err += proc.stderr.readline()
        finally:
            proc.terminate()
            err += proc.communicate(timeout=30)[1]
        self.assertIn("connection failed", err)
        self.assertIn(where + "?token=***", err)
        for s in (secret, "token-not-logged-4Rk"):
            self.assertNotIn(s, err)

if __name__ == "__main__":
    unittest.main(verbosity=2)
