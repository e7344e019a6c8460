#!/usr/bin/python3
"""The clients people will use, against a running vigil (issue 14, item 1):
curl, wget, Python's http.client and urllib, Node's http and fetch, ffmpeg
reading the playlist and the export, hls.js in chromium and wrk.

One vigild, one real vigil-sentinel that streams a few seconds and stops, so
that its session ends. The ground truth is what archive wrote under data_dir
(session.json, index.jsonl, init.mp4, NNNNNN.m4s; each file checked against
the index's SHA-256); the expected export is the init followed by every
segment, each moved back in time by the first one's tfdt (httpd/export.c:
byte for byte when that is 0). Every client fetches both listings, the init,
every segment whole, segments with a Range, the export and the playlist, then
every URL in the playlist it got, and every body is compared by SHA-256. Where
the client keeps connections alive, the test checks it did (curl's
num_connects, wget's log, a counted http.client connect, Node's reusedSocket
and undici's connect events, ffmpeg's debug log, chromium's DevTools)."""
import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
from urllib.parse import urljoin, urlsplit

sys.path.insert(0, os.path.dirname(__file__))
from test_httpd import rebased, tfdt_of, until  # noqa: E402
from vigil import BUILD, SOURCE, Vigil  # noqa: E402

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "clients")
SENTINEL = os.path.join(BUILD, "deploy", "vigil-sentinel")
HLS_JS = os.path.join(SOURCE, "httpd", "web", "node_modules", "hls.js", "dist", "hls.min.js")
PT, AT = "proctor-secret", "archivist-secret"
AUTH = """auth:
  sentinel: none
  tokens:
    - { name: p1, role: proctor, token: "%s" }
    - { name: a1, role: archivist, token: "%s" }
""" % (PT, AT)
SECONDS = 5  # of video: four or five one-second segments
FIGURES = []


def sha(b):
    return hashlib.sha256(b).hexdigest()


def read(path):
    with open(path, "rb") as f:
        return f.read()


def playlist_cap(urls):
    """The one playlist token the links of a playlist fetched with ?token=PT
    carry (docs/httpd.md, "Playlist tokens"): never PT itself."""
    caps = {u.split("?token=")[1] for u in urls if "?token=hc1." in u}
    assert len(caps) == 1, urls
    cap = caps.pop()
    assert PT not in cap and len(cap) == 42, cap
    return cap


def run(args, timeout=60, **kw):
    return subprocess.run(args, capture_output=True, timeout=timeout, **kw)


class Req:
    """One GET and what must come back: a status, then either exact bytes
    (want), or a body that check() accepts (it raises AssertionError)."""

    def __init__(self, name, url, token, status=200, want=None, check=None, rng=None,
                 crange=None):
        self.name, self.url, self.status = name, url, status
        self.want, self.check, self.crange, self.rng = want, check, crange, rng
        self.token = token
        self.headers = {}
        if token is not None:
            self.headers["Authorization"] = "Bearer " + token
        if rng is not None:
            self.headers["Range"] = rng


def verify(reqs, results):
    """results: [(status, headers with lower-case names, body)] in the order of
    reqs. Returns the list of what was wrong, empty when all is right."""
    bad = []
    if len(results) != len(reqs):
        bad.append("%d answers to %d requests" % (len(results), len(reqs)))
    for q, (status, hd, body) in zip(reqs, results):
        if status != q.status:
            bad.append("%s: status %s, want %d (%r)" % (q.name, status, q.status, body[:200]))
            continue
        if q.crange is not None and hd.get("content-range") != q.crange:
            bad.append("%s: Content-Range %r, want %r" % (q.name, hd.get("content-range"),
                                                          q.crange))
        if q.want is not None and sha(body) != sha(q.want):
            bad.append("%s: %d bytes with SHA-256 %s, want %d bytes with %s" % (
                q.name, len(body), sha(body)[:16], len(q.want), sha(q.want)[:16]))
        if q.check is not None:
            try:
                q.check(body)
            except (AssertionError, ValueError, KeyError) as e:
                bad.append("%s: %s" % (q.name, e))
    return bad


class Recording:
    """What archive wrote for the session: the ground truth of every check."""

    def __init__(self, data_dir, sid, sess):
        d = os.path.join(data_dir, sid, sess)
        with open(os.path.join(d, "session.json")) as f:
            self.session = json.load(f)
        with open(os.path.join(d, "index.jsonl")) as f:
            self.index = [json.loads(ln) for ln in f.read().splitlines(keepends=True)
                          if ln.endswith("\n")]
        self.sid, self.sess = sid, sess
        self.init = read(os.path.join(d, "init.mp4"))
        self.segs = {}
        for e in self.index:
            blob = read(os.path.join(d, "%06d.m4s" % e["sequence"]))
            assert (len(blob), sha(blob)) == (e["bytes"], e["sha256"]), e
            self.segs[e["sequence"]] = blob
        self.seqs = [e["sequence"] for e in self.index]
        by = tfdt_of(self.segs[self.seqs[0]])
        self.export = self.init + b"".join(rebased(self.segs[s], by) for s in self.seqs)
        self.base = "/api/sentinels/%s/sessions/%s" % (sid, sess)


class Clients(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="vigil-clients-")
        # hls.js's page, served by httpd itself (same origin as the API)
        cls.web = os.path.join(cls.tmp, "web")
        os.makedirs(cls.web)
        shutil.copy(os.path.join(HERE, "index.html"), cls.web)
        shutil.copy(HLS_JS, cls.web)
        os.environ["VIGIL_WEB_ROOT"] = cls.web
        cls.v = Vigil(extra=AUTH)
        try:
            cls.v.start()
        finally:
            del os.environ["VIGIL_WEB_ROOT"]
        cls.addr = cls.v.stage("httpd")["listen"]
        cls.host, port = cls.addr.rsplit(":", 1)
        cls.port = int(port)
        cls.origin = "http://" + cls.addr
        t0 = time.monotonic()
        log = os.path.join(cls.tmp, "sentinel.stderr")
        with open(log, "w") as err:
            res = subprocess.run(
                [SENTINEL, "--url", cls.v.url("ingest", "/sentinel"), "--name", "clients-cam",
                 "--size", "320x180", "--duration", str(SECONDS),
                 "--state", os.path.join(cls.tmp, "sentinel.id")],
                stdout=subprocess.DEVNULL, stderr=err, timeout=60)
        text = read(log).decode()
        assert res.returncode == 0, text[-2000:]
        sid, sess = re.search(r"registered as (\S+), session (\S+)", text).groups()
        data = os.path.join(cls.v.dir, "data")
        meta = os.path.join(data, sid, sess, "session.json")

        def ended():
            try:
                with open(meta) as f:
                    return json.load(f).get("endTime") is not None
            except (OSError, ValueError):
                return False
        until(ended, timeout=30, what="archive's end of the session")
        cls.rec = Recording(data, sid, sess)
        assert cls.rec.session["inits"] == 1 and len(cls.rec.seqs) >= 3, cls.rec.index
        cls.export_file = os.path.join(cls.tmp, "expected-export.mp4")
        with open(cls.export_file, "wb") as f:
            f.write(cls.rec.export)
        sys.stderr.write("clients: a %d s session of %d segments, %d bytes, recorded in "
                         "%.1f s\n" % (SECONDS, len(cls.rec.seqs), len(cls.rec.export),
                                        time.monotonic() - t0))

    @classmethod
    def tearDownClass(cls):
        cls.v.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        for line in FIGURES:
            sys.stderr.write("clients: %s\n" % line)

    # ---- what every client fetches ---------------------------------------

    def url(self, path):
        return self.origin + path

    def check_sessions(self, body):
        rec, s = self.rec, self.rec.session
        listing = json.loads(body)
        want = {"sessionId": rec.sess, "startTime": s["startTime"], "endTime": s["endTime"],
                "segments": len(rec.index), "bytes": sum(e["bytes"] for e in rec.index),
                "durationMs": sum(e["duration"] for e in rec.index), "name": s["name"],
                "codec": s["codec"], "width": s["width"], "height": s["height"], "live": False}
        self.assertEqual(len(listing), 1, listing)
        self.assertEqual({k: listing[0].get(k) for k in want}, want)

    def check_segments(self, body):
        rec = self.rec
        want = {"sentinelId": rec.sid, "sessionId": rec.sess,
                "segments": [{k: v for k, v in e.items() if k != "sha256"} for e in rec.index]}
        self.assertEqual(json.loads(body), want)

    def playlist_uris(self, body):
        """The playlist's URIs, in order, after checking its shape."""
        text = body.decode()
        lines = text.splitlines()
        self.assertEqual((lines[0], lines[-1]), ("#EXTM3U", "#EXT-X-ENDLIST"), text)
        self.assertIn("#EXT-X-PLAYLIST-TYPE:VOD", lines)
        self.assertNotIn(PT, text)
        media = [ln for ln in lines if ln and not ln.startswith("#")]
        cap = playlist_cap(media)
        maps = [ln for ln in lines if ln.startswith("#EXT-X-MAP:")]
        self.assertEqual(maps, ['#EXT-X-MAP:URI="init.mp4?token=%s"' % cap])
        self.assertEqual(media, ["segments/%d.m4s?token=%s" % (s, cap) for s in self.rec.seqs])
        self.assertEqual([ln for ln in lines if ln.startswith("#EXTINF:")],
                         ["#EXTINF:%.3f," % (e["duration"] / 1000) for e in self.rec.index])
        return ["init.mp4?token=" + cap] + media

    def requests(self, ranges=("a-b", "suffix")):
        """The first round: listings, init, every segment, Ranges, export,
        playlist. ranges: which Range forms the client can send ("open" is
        bytes=K-, the only one wget has)."""
        rec, base = self.rec, self.rec.base
        reqs = [Req("sessions listing", self.url("/api/sentinels/%s/sessions" % rec.sid), PT,
                    check=self.check_sessions),
                Req("segments listing", self.url(base + "/segments"), PT,
                    check=self.check_segments),
                Req("init", self.url(base + "/init.mp4"), PT, want=rec.init)]
        for s in rec.seqs:
            reqs.append(Req("segment %d" % s, self.url(base + "/segments/%d.m4s" % s), PT,
                            want=rec.segs[s]))
        one, two = rec.segs[rec.seqs[0]], rec.segs[rec.seqs[1]]
        for form in ranges:
            if form == "a-b":
                reqs.append(Req("segment %d bytes=100-1099" % rec.seqs[0],
                                self.url(base + "/segments/%d.m4s" % rec.seqs[0]), PT, 206,
                                one[100:1100], rng="bytes=100-1099",
                                crange="bytes 100-1099/%d" % len(one)))
            elif form == "suffix":
                reqs.append(Req("segment %d bytes=-500" % rec.seqs[1],
                                self.url(base + "/segments/%d.m4s" % rec.seqs[1]), PT, 206,
                                two[-500:], rng="bytes=-500",
                                crange="bytes %d-%d/%d" % (len(two) - 500, len(two) - 1,
                                                           len(two))))
            elif form == "open":
                for s, blob in ((rec.seqs[0], one), (rec.seqs[1], two)):
                    reqs.append(Req("segment %d bytes=1000-" % s,
                                    self.url(base + "/segments/%d.m4s" % s), PT, 206,
                                    blob[1000:], rng="bytes=1000-",
                                    crange="bytes 1000-%d/%d" % (len(blob) - 1, len(blob))))
        reqs.append(Req("export", self.url(base + "/export.mp4"), AT, want=rec.export))
        reqs.append(Req("playlist", self.url(base + "/playlist.m3u8?token=" + PT), None,
                        check=self.playlist_uris))
        return reqs

    def playlist_requests(self, playlist_url, body):
        """The second round: every URI of the playlist the client got, with
        no header (players send none: the token is in the URI)."""
        reqs = []
        for uri in self.playlist_uris(body):
            path = urlsplit(uri).path
            want = (self.rec.init if path == "init.mp4" else
                    self.rec.segs[int(re.fullmatch(r"segments/(\d+)\.m4s", path).group(1))])
            reqs.append(Req("playlist's " + uri.split("?")[0], urljoin(playlist_url, uri), None,
                            want=want))
        return reqs

    def both_rounds(self, name, fetch, **kw):
        """Runs fetch(reqs) -> (results, note) on both rounds; returns the notes."""
        t0 = time.monotonic()
        reqs = self.requests(**kw)
        res, note1 = fetch(reqs)
        bad = verify(reqs, res)
        self.assertEqual(bad, [], name)
        reqs2 = self.playlist_requests(reqs[-1].url, res[-1][2])
        res2, note2 = fetch(reqs2)
        self.assertEqual(verify(reqs2, res2), [], name)
        FIGURES.append("%s: %d + %d requests, bytes right, in %.2f s; %s; playlist's URLs: %s" % (
            name, len(reqs), len(reqs2), time.monotonic() - t0, note1, note2))
        return note1, note2

    # ---- the clients -------------------------------------------------------

    def test_curl(self):
        """One curl for all the requests of a round (--next between them, each
        with its headers): curl reuses its one connection."""
        out = os.path.join(self.tmp, "curl")
        os.makedirs(out, exist_ok=True)

        def fetch(reqs):
            args = ["curl", "--no-progress-meter"]
            for i, q in enumerate(reqs):
                if i:
                    args.append("--next")
                for k, v in q.headers.items():
                    args += ["-H", "%s: %s" % (k, v)]
                args += ["-o", os.path.join(out, str(i)), "-w",
                         r"%{http_code} %{num_connects} [%header{content-range}]\n", q.url]
            res = run(args)
            self.assertEqual(res.returncode, 0, res.stderr[-2000:])
            lines = res.stdout.decode().splitlines()
            results, connects = [], 0
            for i, ln in enumerate(lines):
                m = re.fullmatch(r"(\d+) (\d+) \[(.*)\]", ln)
                connects += int(m.group(2))
                hd = {"content-range": m.group(3)} if m.group(3) else {}
                results.append((int(m.group(1)), hd, read(os.path.join(out, str(i)))))
            self.assertEqual(connects, 1, "curl opened %d connections for %d requests" % (
                connects, len(reqs)))
            return results, "1 connection"
        self.both_rounds("curl", fetch)

    def test_wget(self):
        """wget with several URLs per run keeps the connection; one run per
        set of headers. Its only Range is --start-pos (bytes=K-): with a Range
        header of its own it retries a 206 it did not ask for."""
        n = [0]

        def wget(urls, headers, start_pos=None):
            n[0] += 1
            d = os.path.join(self.tmp, "wget-%d" % n[0])
            args = ["wget", "-S", "-t", "1", "-T", "15", "-P", d]
            for k, v in headers.items():
                if k != "Range":
                    args += ["--header", "%s: %s" % (k, v)]
            if start_pos is not None:
                args.append("--start-pos=%d" % start_pos)
            res = run(args + urls)
            log = res.stderr.decode()
            self.assertEqual(res.returncode, 0, log[-3000:])
            # -S: each answer's status line and headers, indented by two spaces
            answers = []
            for ln in log.splitlines():
                if ln.startswith("  HTTP/"):
                    answers.append((int(ln.split()[1]), {}))
                elif ln.startswith("  ") and ":" in ln and answers:
                    k, _, v = ln.strip().partition(":")
                    answers[-1][1][k.lower()] = v.strip()
            connects = log.count("Connecting to ")
            reused = log.count("Reusing existing connection")
            self.assertEqual((connects, reused), (1, len(urls) - 1), log[-3000:])
            out = []
            for u, (status, hd) in zip(urls, answers):
                p = urlsplit(u)
                name = os.path.basename(p.path) + ("?" + p.query if p.query else "")
                out.append((status, hd, read(os.path.join(d, name))))
            return out

        def fetch(reqs):
            # runs of consecutive requests with the same headers
            results, runs = [], 0
            i = 0
            while i < len(reqs):
                j = i
                while j < len(reqs) and reqs[j].headers == reqs[i].headers:
                    j += 1
                rng = reqs[i].rng
                start = int(rng[len("bytes="):-1]) if rng else None
                results += wget([q.url for q in reqs[i:j]], reqs[i].headers, start)
                runs += 1
                i = j
            return results, "%d wget run%s, one connection each" % (runs, "s"[runs == 1:])
        self.both_rounds("wget", fetch, ranges=("open",))

    def test_python_http_client(self):
        """One http.client connection for each round (it would reconnect by
        itself if the server closed: the connects are counted)."""
        connects = [0]

        class Counted(http.client.HTTPConnection):
            def connect(self):
                connects[0] += 1
                super().connect()

        def fetch(reqs):
            before = connects[0]
            c = Counted(self.host, self.port, timeout=15)
            results = []
            try:
                for q in reqs:
                    u = urlsplit(q.url)
                    c.request("GET", u.path + ("?" + u.query if u.query else ""),
                              headers=q.headers)
                    r = c.getresponse()
                    results.append((r.status, {k.lower(): v for k, v in r.getheaders()},
                                    r.read()))
            finally:
                c.close()
            self.assertEqual(connects[0] - before, 1)
            return results, "1 connection"
        self.both_rounds("python http.client", fetch)

    def test_python_urllib(self):
        """urllib.request sends Connection: close: every answer must say
        Connection: close too (RFC 9112 section 9.6)."""
        def fetch(reqs):
            results = []
            for q in reqs:
                try:
                    with urllib.request.urlopen(urllib.request.Request(q.url, headers=q.headers),
                                                timeout=15) as r:
                        results.append((r.status, {k.lower(): v for k, v in r.getheaders()},
                                        r.read()))
                except urllib.error.HTTPError as e:
                    results.append((e.code, {k.lower(): v for k, v in e.headers.items()},
                                    e.read()))
            closes = sum(1 for _, hd, _ in results if hd.get("connection") == "close")
            self.assertEqual(closes, len(reqs))
            return results, "a connection per request, each answered Connection: close"
        self.both_rounds("python urllib", fetch)

    def node(self, mode):
        def fetch(reqs):
            path = os.path.join(self.tmp, "node-%s.json" % mode)
            with open(path, "w") as f:
                json.dump([{"url": q.url, "headers": q.headers} for q in reqs], f)
            res = run(["node", os.path.join(HERE, "node_get.mjs"), mode, path])
            self.assertEqual(res.returncode, 0, res.stderr.decode()[-2000:])
            out = json.loads(res.stdout)
            results = [(r["status"], r["headers"], base64.b64decode(r["body"]))
                       for r in out["results"]]
            # fetch (undici) opens a second connection for the request right
            # after the first answer, whatever the server (Node's own http
            # server too), and then keeps both
            self.assertLessEqual(out["connects"], 1 if mode == "http" else 2)
            return results, "%d connection%s" % (out["connects"], "s"[out["connects"] == 1:])
        return fetch

    def test_node_http_default_agent(self):
        self.both_rounds("node http (default agent)", self.node("http"))

    def test_node_fetch(self):
        self.both_rounds("node fetch", self.node("fetch"))

    def framemd5(self, args, what):
        """Each packet's (size, MD5) as ffmpeg reads them, and ffmpeg's log."""
        out = os.path.join(self.tmp, "%s.framemd5" % what)
        res = run(["ffmpeg", "-nostdin", "-y"] + args + ["-map", "0", "-c", "copy", "-f",
                                                            "framemd5", out], timeout=120)
        log = res.stderr.decode(errors="replace")
        self.assertEqual(res.returncode, 0, log[-3000:])
        with open(out) as f:
            packets = [tuple(x.strip() for x in ln.split(",")[4:6]) for ln in f
                       if not ln.startswith("#")]
        return packets, log

    def test_ffmpeg(self):
        """ffmpeg reads the playlist over HTTP (its HLS demuxer keeps
        connections alive) and the export over HTTP: every packet the same as
        in the expected export, which it reads from a file."""
        t0 = time.monotonic()
        want, _ = self.framemd5(["-v", "error", "-i", self.export_file], "expected")
        self.assertGreater(len(want), 10)
        playlist = self.url(self.rec.base + "/playlist.m3u8?token=" + PT)
        got, log = self.framemd5(["-v", "debug", "-i", playlist], "playlist")
        self.assertEqual(len(got), len(want))
        self.assertEqual(got, want)
        requested = re.findall(r"request: GET (\S+) HTTP/1\.1", log)
        base = self.rec.base
        # the links carry the playlist's own token (hc1.…), never PT
        cap = playlist_cap(requested)
        self.assertEqual(sorted(set(requested)), sorted(
            [base + "/playlist.m3u8?token=" + PT, base + "/init.mp4?token=" + cap] +
            [base + "/segments/%d.m4s?token=%s" % (s, cap) for s in self.rec.seqs]))
        connects = log.count("Successfully connected to")
        self.assertLess(connects, len(requested), "no connection was reused")
        got2, log2 = self.framemd5(["-v", "debug", "-headers", "Authorization: Bearer %s\r\n" % AT,
                                    "-i", self.url(base + "/export.mp4")], "export")
        self.assertEqual(got2, want)
        FIGURES.append("ffmpeg: playlist read whole (%d packets equal to the expected export's), "
                       "%d requests on %d connections; export.mp4 over HTTP equal too "
                       "(%d requests); %.2f s" % (
                           len(got), len(requested), connects,
                           len(re.findall(r"request: GET ", log2)), time.monotonic() - t0))

    def test_hlsjs_in_chromium(self):
        """hls.js (httpd/web's copy) plays the playlist in Debian's chromium
        to its end: every body it loaded has the archive's SHA-256,
        FRAG_LOADED came for every segment, no hls.js error but stalls."""
        t0 = time.monotonic()
        playlist = self.url(self.rec.base + "/playlist.m3u8?token=" + PT)
        res = run(["node", os.path.join(HERE, "hls_play.mjs"), self.url("/index.html"), playlist],
                  timeout=90)
        self.assertEqual(res.returncode, 0, res.stderr.decode()[-3000:])
        out = json.loads(res.stdout)
        # A stall (the playhead waiting for the decoder on a busy machine) is
        # the player's own pace, not the server's doing: counted, not failed.
        stalls = [e for e in out["errors"] if e == {"type": "mediaError", "fatal": False,
                                                    "details": "bufferStalledError"}]
        self.assertEqual([e for e in out["errors"] if e not in stalls], [], out)
        self.assertEqual(out["why"], "ended", out)
        self.assertTrue(out["ended"])
        want_s = sum(e["duration"] for e in self.rec.index) / 1000
        self.assertLess(abs(out["duration"] - want_s), 0.25, (out["duration"], want_s))
        self.assertLess(abs(out["currentTime"] - out["duration"]), 0.1, out)
        self.assertEqual(sorted(out["frags"]), list(range(len(self.rec.seqs))))
        got = {x["url"]: x["sha256"] for x in out["loads"]}
        cap = playlist_cap(got)
        want = {playlist: None, urljoin(playlist, "init.mp4?token=" + cap): sha(self.rec.init)}
        for s in self.rec.seqs:
            want[urljoin(playlist, "segments/%d.m4s?token=%s" % (s, cap))] = sha(self.rec.segs[s])
        self.assertEqual(len(out["loads"]), len(want), out["loads"])
        want[playlist] = got.get(playlist)  # its text is checked by the other clients
        self.assertEqual(got, want)
        self.assertGreater(out["reused"], 0, "chromium reused no connection")
        FIGURES.append("hls.js in chromium: played to the end (%.2f s of video, %d stall%s), "
                       "%d loads with the archive's SHA-256, %d fragments, %d API answers on %d "
                       "connection(s); %.2f s" % (
                           out["duration"], len(stalls), "s"[len(stalls) == 1:],
                           len(out["loads"]), len(out["frags"]), out["responses"],
                           out["connections"], time.monotonic() - t0))

    def test_wrk(self):
        """wrk -c 8 -t 2 -d 3s over kept-alive connections: every answer
        checked byte for byte (clients/wrk_check.lua), no error, no non-2xx."""
        rec, base = self.rec, self.rec.base
        # the export's ETag is a digest of its parts' tags: taken from httpd
        c = http.client.HTTPConnection(self.host, self.port, timeout=15)
        c.request("HEAD", base + "/export.mp4", headers={"Authorization": "Bearer " + AT})
        r = c.getresponse()
        r.read()
        c.close()
        self.assertEqual(r.status, 200)
        export_tag = r.getheader("ETag")
        rows = []

        def add(path, token, rng, status, tag, crange, body):
            f = os.path.join(self.tmp, "wrk-%d" % len(rows))
            with open(f, "wb") as out:
                out.write(body)
            rows.append("\t".join([path, "Bearer " + token, rng or "-", str(status), tag,
                                   crange or "-", f]))
        add(base + "/init.mp4", PT, None, 200, '"%s"' % sha(rec.init), None, rec.init)
        for s in rec.seqs:
            blob = rec.segs[s]
            path = base + "/segments/%d.m4s" % s
            add(path, PT, None, 200, '"%s"' % sha(blob), None, blob)
            add(path, PT, "bytes=100-1099", 206, '"%s"' % sha(blob),
                "bytes 100-1099/%d" % len(blob), blob[100:1100])
            add(path, PT, "bytes=-500", 206, '"%s"' % sha(blob),
                "bytes %d-%d/%d" % (len(blob) - 500, len(blob) - 1, len(blob)), blob[-500:])
        n = len(rec.export)
        add(base + "/export.mp4", AT, None, 200, export_tag, None, rec.export)
        add(base + "/export.mp4", AT, "bytes=%d-" % (n // 2), 206, export_tag,
            "bytes %d-%d/%d" % (n // 2, n - 1, n), rec.export[n // 2:])
        manifest = os.path.join(self.tmp, "wrk-manifest")
        with open(manifest, "w") as f:
            f.write("\n".join(rows) + "\n")
        res = run(["wrk", "-c", "8", "-t", "2", "-d", "3s", "-s",
                   os.path.join(HERE, "wrk_check.lua"), self.origin, "--", manifest])
        text = res.stdout.decode()
        self.assertEqual(res.returncode, 0, text + res.stderr.decode())
        out = json.loads(re.search(r"^wrk-check: (.*)$", text, re.M).group(1))
        self.assertGreater(out["requests"], 0, text)
        self.assertEqual((out["bad"], out["firstBad"]), (0, ""), text)
        self.assertEqual(out["ok"], out["requests"], text)
        self.assertEqual({k: out[k] for k in ("connect", "read", "write", "status", "timeout")},
                         dict.fromkeys(("connect", "read", "write", "status", "timeout"), 0),
                         text)
        FIGURES.append("wrk -c 8 -t 2 -d 3s: %.0f requests/s (%d requests of %d kinds, every "
                       "answer right, 0 errors, 0 non-2xx), %.0f MB/s, latency p50 %.2f ms "
                       "p99 %.2f ms" % (out["requests"] / out["seconds"], out["requests"],
                                        len(rows), out["bytes"] / out["seconds"] / 1e6,
                                        out["p50us"] / 1000, out["p99us"] / 1000))


if __name__ == "__main__":
    unittest.main(verbosity=2)
