#!/usr/bin/env node
// Web app benchmark (issue 7), in Debian's chromium through playwright-core
// against a real vigild: (1) click to first decoded frame, p50 over 20 clicks
// (from the click handler to the first requestVideoFrameCallback); (2) the
// end-to-end delay with 1 and with 16 live streams open: display time minus
// capture time. The capture time of the frame on screen is the segment's
// startTime plus the frame's offset in it; vigil-sentinel computes startTime on
// the same realtime clock as the wall clock it draws into the picture
// (docs/sentinel.md), and sentinel, server and browser share this machine's
// clock, so this is the delay one would read off the drawn clock.
// Usage: node tests/bench_web.mjs [--clicks N] [--seconds S]
import { ARTIFACTS, PTOKEN, Vigil, launch, pageServer, waitFor } from './browser/lib.mjs';
import fs from 'node:fs';
import path from 'node:path';

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const CLICKS = arg('clicks', 20);
const SECONDS = arg('seconds', 15);

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// CPU ticks (utime + stime) of the browser: our descendants named chrom*.
function cpuTicks() {
  let total = 0;
  const procs = new Map();
  for (const d of fs.readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const raw = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const comm = raw.slice(raw.indexOf('(') + 1, raw.lastIndexOf(')'));
      const st = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
      procs.set(Number(d), { comm, ppid: Number(st[1]), ticks: Number(st[11]) + Number(st[12]) });
    } catch (e) {
      /* gone */
    }
  }
  const walk = (p) => {
    for (const [c, v] of procs) {
      if (v.ppid !== p) continue;
      if (/chrom/.test(v.comm)) total += v.ticks;
      walk(c);
    }
  };
  walk(process.pid);
  return total;
}

async function main() {
  const v = await new Vigil().start();
  v.sentinel('bench', '--count', '16', '--size', '640x360', '--bitrate', '500');
  const browser = await launch();
  const server = await pageServer(v);
  const out = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(`${server.url}/?relay=${encodeURIComponent(v.relayUrl)}&token=${PTOKEN}`);
    await waitFor('16 sentinels online', async () => (await page.locator('.card.online').count()) === 16, 30000);
    const stats = () => page.evaluate(() => window.vigil.wall.stats());

    // 1. Click to first frame: open, wait for the first frame, close; 20 times.
    const first = [];
    for (let i = 0; i < CLICKS; i++) {
      await page.click('#tab-hall');
      await page.click('.card.online .watch >> nth=0');
      const s = await waitFor('first frame', async () => (await stats())[0]?.firstFrameMs, 10000, 10);
      first.push(s);
      await page.evaluate(() => window.vigil.wall.close([...window.vigil.wall.tiles.keys()][0]));
      await sleep(300 + Math.random() * 700); // land at different points of the segment cycle
    }
    out.push(`click to first frame (${CLICKS} clicks): p50 ${pct(first, 50).toFixed(0)} ms, p90 ${pct(first, 90).toFixed(0)} ms, max ${Math.max(...first).toFixed(0)} ms`);
    console.log(out.at(-1));

    // 2. End-to-end delay with 1, then 16 streams.
    for (const n of [1, 16]) {
      await page.click('#tab-hall');
      const ids = await page.locator('.card.online').evaluateAll((c) => c.map((x) => x.dataset.id));
      await page.evaluate((want) => {
        const grid = window.vigil.grid;
        for (const id of want) window.vigil.wall.open(grid.cards.get(id).s);
        document.querySelector('#tab-live').click();
      }, ids.slice(0, n));
      await waitFor(`${n} playing`, async () => (await stats()).filter((s) => s.state === 'playing' && s.frames > 0).length === n, 20000);
      await sleep(3000); // settle
      const delays = [];
      const lags = [];
      const t0 = cpuTicks();
      const w0 = Date.now();
      for (let i = 0; i < SECONDS * 4; i++) {
        for (const s of await stats()) {
          if (s.delayMs != null) delays.push(s.delayMs);
          if (s.lag != null) lags.push(s.lag);
        }
        await sleep(250);
      }
      const cpu = ((cpuTicks() - t0) / 100 / ((Date.now() - w0) / 1000)) * 100; // 100 ticks/s
      const end = await stats();
      const frames = end.reduce((a, s) => a + s.frames, 0);
      out.push(`${n} stream${n > 1 ? 's' : ''}: end-to-end delay p50 ${pct(delays, 50).toFixed(0)} ms, p95 ${pct(delays, 95).toFixed(0)} ms, max ${Math.max(...delays).toFixed(0)} ms; behind the buffered live edge p50 ${pct(lags, 50).toFixed(2)} s, max ${Math.max(...lags).toFixed(2)} s; jumps ${end.reduce((a, s) => a + s.jumps, 0)}; ${frames} frames decoded; browser CPU ${cpu.toFixed(0)} % of one core`);
      console.log(out.at(-1));
      if (n === 16) {
        fs.mkdirSync(ARTIFACTS, { recursive: true });
        await page.screenshot({ path: path.join(ARTIFACTS, 'bench-wall-16.png') });
      }
      await page.evaluate(() => [...window.vigil.wall.tiles.keys()].forEach((id) => window.vigil.wall.close(id)));
    }
  } finally {
    await browser.close().catch(() => {});
    server.close();
    await v.stop();
  }
  console.log(`\npage served by ${server.httpd ? 'httpd' : 'the static test server'}; ${CLICKS} clicks, ${SECONDS} s per delay run, 640x360 500 kbit/s 1 s segments`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
