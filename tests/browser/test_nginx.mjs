#!/usr/bin/env node
// vigil behind nginx (issue 17): Debian's nginx runs deploy/nginx/vigil.conf
// (ports, certificate paths and a source address changed, nothing else), with
// a self-signed certificate made by openssl, as a process of the test's own
// (not root: nobody when the test runs as root), in front of a real vigild.
// Through its one HTTPS port: chromium signs in and plays live video (relay at
// the page's own origin's /proctor, the console at /api/ws), a vigil-sentinel
// streams over wss:// to /sentinel, ffmpeg reads a playlist, curl checks the
// redirect and media headers. nginx connects to vigil from 127.0.0.2, the only
// trusted_proxies entry, so that what vigil believes shows: the audit log's
// remote is the client's 127.0.0.1 through nginx, and a forged X-Forwarded-For
// sent to httpd directly (from 127.0.0.1) is ignored.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ARTIFACTS, ATOKEN, BUILD, PTOKEN, SOURCE, Vigil, launch, waitFor, steps } from './lib.mjs';

const OTOKEN = 'operator-secret-n';
const STOKEN = 'sentinel-secret-n';
const PROXY_FROM = '127.0.0.2'; // nginx's proxy_bind: vigil's trusted_proxies
let page;

const tally = steps(ARTIFACTS, 'nginx-fail-', () => page);
const step = tally.step;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function run(cmd, args, opts = {}) {
  const res = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60000, ...opts });
  if (res.error) throw res.error;
  return res;
}

// deploy/nginx/vigil.conf with only what a test on one machine must change;
// each change must apply exactly as often as expected, so that a reshaped
// site file fails here rather than being tested half.
function deriveSite(text, { http, relay, ingest, https, redirect, dir }) {
  const edits = [
    [/server 127\.0\.0\.1:8080;/g, `server 127.0.0.1:${http};`, 1],
    [/server 127\.0\.0\.1:8081;/g, `server 127.0.0.1:${relay};`, 1],
    [/server 127\.0\.0\.1:8082;/g, `server 127.0.0.1:${ingest};`, 1],
    [/^( *)listen 80;$/gm, `$1listen 127.0.0.1:${redirect};`, 1],
    [/^ *listen \[::\]:80;\n/gm, '', 1],
    [/^( *)listen 443 ssl http2;$/gm, `$1listen 127.0.0.1:${https} ssl http2;`, 1],
    [/^ *listen \[::\]:443 ssl http2;\n/gm, '', 1],
    [/ssl_certificate \/etc\/vigil\/tls\/fullchain\.pem;/g, `ssl_certificate ${dir}/cert.pem;`, 1],
    [/ssl_certificate_key \/etc\/vigil\/tls\/privkey\.pem;/g, `ssl_certificate_key ${dir}/key.pem;`, 1],
    // The client and nginx share 127.0.0.1 here: nginx speaks to vigil from another address.
    [/\/var\/log\/nginx\/vigil\.access\.log/g, `${dir}/logs/access.log`, 2],
    [/^( *)proxy_http_version 1\.1;$/gm, `$1proxy_http_version 1.1;\n$1proxy_bind ${PROXY_FROM};`, 1],
  ];
  for (const [re, to, n] of edits) {
    const found = (text.match(re) || []).length;
    if (found !== n) throw new Error(`deploy/nginx/vigil.conf: ${re} found ${found} times, expected ${n}`);
    text = text.replace(re, to);
  }
  return text;
}

class Nginx {
  constructor(dir, site) {
    this.dir = dir;
    for (const d of ['tmp', 'logs']) fs.mkdirSync(path.join(dir, d));
    fs.writeFileSync(path.join(dir, 'site.conf'), site);
    fs.writeFileSync(
      path.join(dir, 'nginx.conf'),
      [
        'worker_processes 1;',
        `pid ${dir}/nginx.pid;`,
        `error_log ${dir}/logs/error.log warn;`,
        'daemon off;',
        'events { worker_connections 512; }',
        'http {',
        `    access_log ${dir}/logs/access.log;`,
        ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `    ${t}_temp_path ${dir}/tmp/${t};`),
        `    include ${dir}/site.conf;`,
        '}',
      ].join('\n')
    );
    // As root, nginx would run its workers as another user anyway: the whole
    // server runs as nobody, on its own files.
    this.ids = process.getuid && process.getuid() === 0 ? { uid: 65534, gid: 65534 } : {};
    if (this.ids.uid !== undefined) {
      for (const f of ['', 'tmp', 'logs', 'key.pem']) fs.chownSync(path.join(dir, f), 65534, 65534);
    }
  }

  args(...more) {
    return ['-p', `${this.dir}/`, '-c', `${this.dir}/nginx.conf`, '-e', `${this.dir}/logs/error.log`, ...more];
  }

  async start(port) {
    const t = run('/usr/sbin/nginx', this.args('-t', '-q'), this.ids);
    if (t.status !== 0) throw new Error(`nginx -t: ${t.stderr}${this.log()}`);
    this.proc = spawn('/usr/sbin/nginx', this.args(), { stdio: ['ignore', 'ignore', 'pipe'], ...this.ids });
    this.proc.stderr.on('data', (d) => process.stderr.write(`nginx: ${d}`));
    const exited = new Promise((resolve) => this.proc.on('exit', (code) => resolve(code)));
    const up = waitFor('nginx listening', () => new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    }), 15000);
    const first = await Promise.race([up, exited.then((code) => ({ code }))]);
    if (first.code !== undefined) throw new Error(`nginx exited ${first.code}: ${this.log()}`);
  }

  log() {
    try {
      return fs.readFileSync(path.join(this.dir, 'logs', 'error.log'), 'utf8').slice(-3000);
    } catch (e) {
      return '';
    }
  }

  async stop() {
    if (!this.proc || this.proc.exitCode !== null) return;
    const gone = new Promise((resolve) => this.proc.on('exit', resolve));
    this.proc.kill('SIGQUIT'); // a graceful stop: open WebSockets are cut
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 10000);
    await gone;
    clearTimeout(t);
  }
}

// curl through the certificate we made: { status, headers (lower case), body }.
function curl(dir, url, ...args) {
  const res = run('curl', ['-sS', '--cacert', `${dir}/cert.pem`, '-D', '-', '--max-time', '20', ...args, url]);
  if (res.status !== 0) throw new Error(`curl ${url}: ${res.status} ${res.stderr}`);
  const [head, ...rest] = res.stdout.split('\r\n\r\n');
  const lines = head.split('\r\n');
  const headers = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status: Number(lines[0].split(' ')[1]), headers, body: rest.join('\r\n\r\n') };
}

async function main() {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-nginx-'));
  fs.chmodSync(dir, 0o755);
  const v = new Vigil({
    extra: [
      `    - { name: o1, role: operator, token: "${OTOKEN}" }`,
      `    - { name: s1, role: sentinel, token: "${STOKEN}" }`,
      `trusted_proxies: [${PROXY_FROM}]`,
    ].join('\n'),
  });
  let nginx;
  let browser;
  try {
    const t0 = Date.now();
    const cert = run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', `${dir}/key.pem`, '-out', `${dir}/cert.pem`]);
    if (cert.status !== 0) throw new Error(`openssl: ${cert.stderr}`);
    await v.start();
    const port = (u) => Number(new URL(u.replace(/^ws/, 'http')).port);
    const ports = { http: port(v.httpUrl), relay: port(v.relayUrl), ingest: port(v.sentinelUrl), https: await freePort(), redirect: await freePort(), dir };
    nginx = new Nginx(dir, deriveSite(fs.readFileSync(path.join(SOURCE, 'deploy', 'nginx', 'vigil.conf'), 'utf8'), ports));
    await nginx.start(ports.https);
    const origin = `https://127.0.0.1:${ports.https}`;
    console.log(`nginx on ${origin} in front of ${v.httpUrl} (set up in ${Date.now() - t0} ms)`);

    await step('plain HTTP is sent to HTTPS', () => {
      const r = curl(dir, `http://127.0.0.1:${ports.redirect}/?x=1`);
      if (r.status !== 301 || r.headers.location !== 'https://127.0.0.1/?x=1') throw new Error(`${r.status} ${r.headers.location}`);
    });

    await step('the page and /health through the one HTTPS port; relay is at this origin', () => {
      const h = curl(dir, `${origin}/health`);
      if (h.status !== 200 || h.body !== 'ok') throw new Error(`/health: ${h.status} ${h.body}`);
      const i = curl(dir, `${origin}/`);
      if (i.status !== 200 || !i.body.includes('vigil · proctor')) throw new Error(`/: ${i.status}`);
      const r = JSON.parse(curl(dir, `${origin}/api/relay`).body);
      if (!r.sameOrigin || r.path !== '/proctor') throw new Error(`/api/relay through nginx: ${JSON.stringify(r)}`);
      const d = JSON.parse(curl(dir, `${v.httpUrl}/api/relay`).body);
      if (d.sameOrigin) throw new Error(`/api/relay straight to httpd: ${JSON.stringify(d)}`);
      return `through nginx ${JSON.stringify(r)}, straight ${JSON.stringify(d)}`;
    });

    // The sentinel over wss:// through nginx, trusting our certificate as
    // OpenSSL's default verify paths do (SSL_CERT_FILE).
    const sentinel = spawn(path.join(BUILD, 'deploy', 'vigil-sentinel'),
      ['--url', `wss://127.0.0.1:${ports.https}/sentinel`, '--token', STOKEN, '--name', 'cam-tls', '--size', '640x360', '--bitrate', '400',
        '--state', path.join(dir, 'cam.id')],
      { stdio: ['ignore', 'ignore', fs.openSync(path.join(v.dir, 'sentinel-cam-tls.stderr'), 'w')], env: { ...process.env, SSL_CERT_FILE: `${dir}/cert.pem` } });
    v.children.push(sentinel);
    let cam;
    await step('a vigil-sentinel streams over wss:// through nginx', async () => {
      cam = await waitFor('the sentinel online with segments', async () => {
        const list = JSON.parse(curl(dir, `${origin}/api/sentinels`, '-H', `Authorization: Bearer ${PTOKEN}`).body);
        return list.find((s) => s.name === 'cam-tls' && s.online && s.lastSequence >= 2);
      }, 30000, 250);
      return `sentinel ${cam.sentinelId}, sequence ${cam.lastSequence}`;
    });

    browser = await launch();
    await step('chromium signs in through nginx and plays live video', async () => {
      const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, ignoreHTTPSErrors: true });
      page = await ctx.newPage();
      page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
      await page.goto(`${origin}/?token=${OTOKEN}`);
      await page.locator('#app').waitFor({ state: 'visible', timeout: 15000 });
      const relayUrl = await page.evaluate(() => window.vigil.relay.url);
      if (relayUrl !== `wss://127.0.0.1:${ports.https}/proctor`) throw new Error(`relay at ${relayUrl}`);
      await waitFor('the console open (operator, /api/ws)', () => page.evaluate(() => window.vigil.role === 'operator'), 10000);
      await page.locator('.card.online .watch').first().click();
      const t = await waitFor('playing', async () => {
        const s = (await page.evaluate(() => window.vigil.wall.stats()))[0];
        return s && s.state === 'playing' && s.frames > 0 && s;
      }, 15000);
      const later = await waitFor('playback advancing', async () => {
        const s = (await page.evaluate(() => window.vigil.wall.stats()))[0];
        return s.currentTime > t.currentTime + 1 && s.frames > t.frames + 10 && s;
      }, 15000);
      await page.screenshot({ path: path.join(ARTIFACTS, 'nginx-live.png') });
      return `${relayUrl}; ${later.frames} frames, first ${Math.round(later.firstFrameMs)} ms after the click`;
    });

    await step('ffmpeg reads a playlist through nginx', () => {
      const sessions = JSON.parse(curl(dir, `${origin}/api/sentinels/${cam.sentinelId}/sessions`, '-H', `Authorization: Bearer ${ATOKEN}`).body);
      const s = sessions.find((x) => x.live) || sessions[0];
      const url = `${origin}/api/sentinels/${cam.sentinelId}/sessions/${s.sessionId}/playlist.m3u8?token=${ATOKEN}`;
      const m = curl(dir, url);
      if (m.status !== 200 || !m.body.startsWith('#EXTM3U')) throw new Error(`playlist: ${m.status}`);
      const out = path.join(dir, 'read.mp4');
      const r = run('ffmpeg', ['-nostdin', '-v', 'error', '-ca_file', `${dir}/cert.pem`, '-tls_verify', '1', '-live_start_index', '0',
        '-i', url, '-t', '2', '-map', '0', '-c', 'copy', '-y', out]);
      if (r.status !== 0) throw new Error(`ffmpeg: ${r.status} ${r.stderr.replace(/token=[^&\s]+/g, 'token=***')}`);
      const p = JSON.parse(run('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name,width,height:format=duration', '-of', 'json', out]).stdout);
      const st = p.streams[0];
      if (st.codec_name !== 'h264' || st.width !== 640 || !(Number(p.format.duration) > 1)) throw new Error(JSON.stringify(p));
      return `${st.codec_name} ${st.width}x${st.height}, ${Number(p.format.duration).toFixed(2)} s`;
    });

    await step('export.mp4 to a slow reader, and live.mjpeg, stream through nginx', () => {
      // (Whether nginx would spool to disk cannot be seen at these sizes: the
      // loopback's socket buffers hold a whole export. The site says
      // proxy_buffering off and proxy_max_temp_file_size 0 for that.)
      const sessions = JSON.parse(curl(dir, `${origin}/api/sentinels/${cam.sentinelId}/sessions`, '-H', `Authorization: Bearer ${ATOKEN}`).body);
      const x = curl(dir, `${origin}/api/sentinels/${cam.sentinelId}/sessions/${sessions[0].sessionId}/export.mp4`,
        '-H', `Authorization: Bearer ${ATOKEN}`, '--limit-rate', '256k', '-o', path.join(dir, 'export.mp4'));
      const size = fs.statSync(path.join(dir, 'export.mp4')).size;
      if (x.status !== 200 || size < 100000 || String(size) !== x.headers['content-length']) throw new Error(`export: ${x.status}, ${size} bytes of ${x.headers['content-length']}`);
      // live.mjpeg is endless: curl stops after 4 s, with at least two pictures.
      const out = path.join(dir, 'live.mjpeg');
      const m = run('curl', ['-sS', '--cacert', `${dir}/cert.pem`, '--max-time', '4', '-o', out, '-H', `Authorization: Bearer ${PTOKEN}`,
        `${origin}/api/sentinels/${cam.sentinelId}/live.mjpeg?fps=2`]);
      const parts = (fs.readFileSync(out).toString('latin1').match(/Content-Type: image\/jpeg/gi) || []).length;
      if (m.status !== 28 || parts < 2) throw new Error(`live.mjpeg: curl ${m.status}, ${parts} pictures: ${m.stderr}`);
      return `export ${size} bytes at 256 KiB/s; live.mjpeg ${parts} pictures in 4 s`;
    });

    const audit = (filter) => JSON.parse(`[${curl(dir, `${v.httpUrl}/api/audit?${filter}`, '-H', `Authorization: Bearer ${OTOKEN}`).body.trim().split('\n').filter(Boolean).join(',')}]`);
    await step('vigil believes the client nginx names, and no one else', async () => {
      // Refused requests, recorded at once with the remote vigil believed.
      curl(dir, `${origin}/api/status`, '-H', 'Authorization: Bearer wrong-via-nginx', '-H', 'X-Forwarded-For: 203.0.113.7');
      curl(dir, `${v.httpUrl}/api/sessions`, '-H', 'Authorization: Bearer wrong-direct', '-H', 'X-Forwarded-For: 203.0.113.8', '-H', 'X-Real-IP: 203.0.113.9');
      const recs = await waitFor('two auth.failed records', () => {
        const r = audit('action=auth.failed');
        const via = r.find((x) => x.endpoint === '/api/status');
        const direct = r.find((x) => x.endpoint === '/api/sessions');
        return via && direct && { via, direct };
      }, 15000, 200);
      if (recs.via.remote !== '127.0.0.1') throw new Error(`through nginx (a forged entry first): remote ${recs.via.remote}`);
      if (recs.direct.remote !== '127.0.0.1') throw new Error(`straight to httpd with forged headers: remote ${recs.direct.remote}`);
      // relay's live.view, written when the view ends: the page leaves.
      await page.close();
      page = null;
      const view = await waitFor('the live view recorded', () => audit('action=live.view').find((x) => x.actor === 'o1'), 15000, 200);
      if (view.remote !== '127.0.0.1') throw new Error(`live.view through nginx: remote ${view.remote}`);
      return `auth.failed ${recs.via.remote} (nginx), ${recs.direct.remote} (forged, direct); live.view ${view.remote}`;
    });
  } finally {
    if (browser) await browser.close();
    if (nginx) {
      await nginx.stop();
      // Kept with vigil's logs: tests/check_secrets.py looks for every token
      // in the site's access log too (it logs paths without their query).
      try {
        fs.copyFileSync(path.join(dir, 'logs', 'access.log'), path.join(v.dir, 'nginx-access.log'));
      } catch (e) {
        console.log(`nginx's access log not kept: ${e.message}`);
      }
    }
    await v.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main()
  .then(() => {
    console.log(`${tally.passed} passed, ${tally.failed} failed`);
    process.exit(tally.failed ? 1 : 0);
  })
  .catch((e) => {
    console.log(`${tally.passed} passed, ${tally.failed + (tally.failed ? 0 : 1)} failed: ${e.message}`);
    process.exit(1);
  });
