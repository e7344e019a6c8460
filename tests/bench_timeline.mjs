#!/usr/bin/env node
// The session timeline (issue 12): a one-hour recording (3,600 one-second
// segments of 640x360 H.264, written into data_dir by
// tests/integration/recording.py before vigild starts) opened in history in
// Debian's chromium, and the cost of its thumbnails in httpd.
// (1) Timeline load: from Play to every thumbnail cell of the bar showing its
//     picture (timeline.js's stats), and to the first frame playing; with the
//     thumbnails not made yet (their cache files removed before each run) and
//     cached; a new browser context each run, so the browser's cache is empty.
// (2) Decode cost: every thumbnail of the hour (360) fetched 4 at a time with
//     none cached, then again cached: httpd's CPU seconds (all its threads,
//     from /proc), wall time, and httpd's longest loop turn meanwhile
//     (/api/metrics loopMaxS, per second), and the latency of another client's
//     GET / (the page, a small static file) asked every 100 ms meanwhile,
//     against the same with httpd idle.
// Usage: node tests/bench_timeline.mjs [--runs N] [--seconds S]
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PTOKEN, SOURCE, Vigil, launch, pageServer, waitFor } from './browser/lib.mjs';

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const RUNS = arg('runs', 3);
const SECONDS = arg('seconds', 3600);
const OTOKEN = 'operator-bench-secret';
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const TICK = 100; // USER_HZ

// utime + stime of a process and all its threads, in seconds.
function cpuS(pid) {
  const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / TICK;
}

async function main() {
  const v = new Vigil({ extra: `    - { name: o1, role: operator, token: "${OTOKEN}" }` });
  const sid = randomUUID();
  const sess = randomUUID();
  const start = Date.now() - 2 * SECONDS * 1000;
  const dir = path.join(v.dir, 'data', sid, sess);
  const t0 = Date.now();
  const rec = spawnSync('/usr/bin/python3', [path.join(SOURCE, 'tests', 'integration', 'recording.py'), path.join(v.dir, 'data'),
    '--sentinel', sid, '--session', sess, '--seconds', String(SECONDS), '--start', String(start), '--clip', '60', '--name', 'hour-cam'],
  { encoding: 'utf8', timeout: 1200000 });
  if (rec.status !== 0) throw new Error(`recording.py: ${rec.stderr}`);
  const bytes = fs.readdirSync(dir).reduce((a, f) => a + fs.statSync(path.join(dir, f)).size, 0);
  console.log(`recording: ${SECONDS} s, ${(bytes / 1e6).toFixed(0)} MB, written in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  await v.start();
  const browser = await launch();
  const server = await pageServer(v);
  const base = `/api/sentinels/${sid}/sessions/${sess}`;
  const auth = { Authorization: `Bearer ${PTOKEN}` };
  const uncache = () => fs.readdirSync(dir).filter((f) => f.startsWith('thumb-')).forEach((f) => fs.unlinkSync(path.join(dir, f)));
  const httpd = v.stage('httpd').pid;
  try {
    // (1) the timeline in the browser
    const load = async () => {
      const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      const page = await ctx.newPage();
      await page.goto(`${server.url}/?relay=${encodeURIComponent(v.relayUrl)}&token=${PTOKEN}`);
      await page.locator('#app').waitFor({ state: 'visible', timeout: 15000 });
      await waitFor('the sentinel', () => page.evaluate((id) => window.vigil.grid.sentinels().some((s) => s.sentinelId === id), sid), 15000);
      await page.click('#tab-history');
      await page.selectOption('#hist-sentinel', sid);
      const button = page.locator(`.sessions tr[data-session="${sess}"] button.play`);
      await button.waitFor();
      await page.evaluate(() => {
        const v = document.querySelector('.playback video');
        window.benchPlay = performance.now();
        v.addEventListener('playing', () => (window.benchFrame = performance.now() - window.benchPlay), { once: true });
      });
      await button.click();
      await waitFor('every thumbnail shown', () => page.evaluate(() => window.vigil.history.timeline.stats.firstAllShownMs != null), 120000, 20);
      await waitFor('the first frame', () => page.evaluate(() => window.benchFrame != null), 60000, 20);
      const r = await page.evaluate(() => ({
        thumbs: window.vigil.history.timeline.stats.firstAllShownMs,
        cells: window.vigil.history.timeline.stats.thumbsShown,
        frame: window.benchFrame,
      }));
      await ctx.close();
      return r;
    };
    const cold = [];
    const warm = [];
    for (let i = 0; i < RUNS; i++) {
      uncache();
      cold.push(await load());
      warm.push(await load());
    }
    const row = (name, xs) => console.log(`| ${name} | ${xs[0].cells} | ${Math.round(median(xs.map((x) => x.thumbs)))} ms | ${Math.round(median(xs.map((x) => x.frame)))} ms | ${xs.map((x) => Math.round(x.thumbs)).join(', ')} |`);
    console.log(`\ntimeline load, one hour, median of ${RUNS} (cells with a thumbnail; Play -> all shown; Play -> first frame; every run's "all shown"):`);
    console.log('| thumbnails | cells | all shown | first frame | runs |\n|---|---:|---:|---:|---|');
    row('not cached', cold);
    row('cached', warm);
    const segs = await (await fetch(`${v.httpUrl}${base}/segments`, { headers: auth })).text();
    const list = JSON.parse(await (await fetch(`${v.httpUrl}${base}/thumbs`, { headers: auth })).text());
    console.log(`segments listing ${(segs.length / 1024).toFixed(0)} KiB, thumbs listing ${list.thumbs.length} thumbnails`);

    // (2) every thumbnail of the hour
    // Another client's requests while the thumbnails are made: ms each.
    const probe = (lat, stop) => (async () => {
      while (!stop()) {
        const q0 = performance.now();
        await (await fetch(`${v.httpUrl}/`)).arrayBuffer();
        lat.push(performance.now() - q0);
        await sleep(100);
      }
    })();
    const pct = (xs, p) => [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
    const idle = [];
    const t1 = performance.now() + 5000;
    await probe(idle, () => performance.now() > t1);
    const all = async () => {
      let loopMax = 0;
      let done = false;
      const lat = [];
      const watch = (async () => {
        while (!done) {
          const m = await (await fetch(`${v.httpUrl}/api/metrics`, { headers: { Authorization: `Bearer ${OTOKEN}` } })).json();
          loopMax = Math.max(loopMax, m.stages.httpd.loopMaxS || 0);
          await sleep(500);
        }
      })();
      const probing = probe(lat, () => done);
      const c0 = cpuS(httpd);
      const w0 = performance.now();
      const queue = list.thumbs.map((t) => t.n);
      let n503 = 0;
      let jpegBytes = 0;
      await Promise.all([0, 1, 2, 3].map(async () => {
        while (queue.length) {
          const n = queue.shift();
          for (;;) {
            const r = await fetch(`${v.httpUrl}${base}/thumbs/${n}.jpg`, { headers: auth });
            const b = await r.arrayBuffer();
            if (r.status === 200) {
              jpegBytes += b.byteLength;
              break;
            }
            if (r.status !== 503) throw new Error(`thumbnail ${n}: ${r.status}`);
            n503++;
            await sleep(200);
          }
        }
      }));
      const wall = (performance.now() - w0) / 1000;
      const cpu = cpuS(httpd) - c0;
      await sleep(1500); // one more heartbeat for the loop figure
      done = true;
      await watch;
      await probing;
      return { wall, cpu, loopMax, n503, jpegBytes, lat };
    };
    uncache();
    const a = await all();
    const b = await all();
    const hours = SECONDS / 3600;
    console.log(`\nevery thumbnail of ${hours} h (${list.thumbs.length}), 4 requests at a time:`);
    console.log('| | httpd CPU | per hour of video | wall | httpd loopMaxS | GET / p50 / p99 / max | 503s | JPEG bytes |\n|---|---:|---:|---:|---:|---:|---:|---:|');
    const l = (xs) => `${pct(xs, 50).toFixed(1)} / ${pct(xs, 99).toFixed(1)} / ${Math.max(...xs).toFixed(1)} ms (${xs.length})`;
    for (const [name, x] of [['not cached (decoded)', a], ['cached', b]]) {
      console.log(`| ${name} | ${x.cpu.toFixed(2)} s | ${(x.cpu / hours).toFixed(2)} s | ${x.wall.toFixed(2)} s | ${(x.loopMax * 1000).toFixed(1)} ms | ${l(x.lat)} | ${x.n503} | ${(x.jpegBytes / 1e6).toFixed(2)} MB |`);
    }
    console.log(`| httpd idle | | | | | ${l(idle)} | | |`);
    console.log(`\nmachine: ${os.cpus().length} CPUs, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  } finally {
    await browser.close().catch(() => {});
    server.close();
    await v.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
