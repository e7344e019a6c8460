#!/usr/bin/env node
// live.mjpeg in a real browser (issue 14, item 8): Debian's chromium through
// playwright-core shows a sentinel's stream in a plain <img> (no Media Source
// Extensions, no script of ours), at the asked width, changing over time; the
// stream ends when the page lets go of it. Against a real vigild with a
// vigil-sentinel. The page is httpd's own origin (its /health), so that the
// picture may be read back through a canvas.
import fs from 'node:fs';
import path from 'node:path';
import { ARTIFACTS, PTOKEN, Vigil, launch, waitFor, steps } from './lib.mjs';

const OTOKEN = 'operator-secret';
let page;

const tally = steps(ARTIFACTS, 'mjpeg-fail-', () => page);
const step = tally.step;

async function api(v, p, token = PTOKEN) {
  const res = await fetch(`${v.httpUrl}${p}`, { headers: { Authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`${p}: ${res.status}`);
  return res.json();
}

const httpdStats = async (v) => (await api(v, '/api/metrics', OTOKEN)).stages.httpd.stats || {};

// A digest of what the <img> shows now, read through a canvas.
const picture = () =>
  page.evaluate(() => {
    const img = document.getElementById('live');
    const c = document.createElement('canvas');
    c.width = img.naturalWidth;
    c.height = img.naturalHeight;
    const g = c.getContext('2d');
    g.drawImage(img, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    let h = 0;
    for (let i = 0; i < d.length; i += 7) h = (h * 31 + d[i]) >>> 0;
    return h;
  });

async function main() {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const v = new Vigil({ extra: `    - { name: o1, role: operator, token: "${OTOKEN}" }` });
  const browser = await launch();
  try {
    await v.start();
    v.sentinel('cam', '--size', '640x360', '--fps', '15', '--bitrate', '400');
    const cam = await waitFor('the sentinel online', async () => (await api(v, '/api/sentinels')).find((s) => s.name === 'cam' && s.online && s.lastSequence >= 0), 30000);
    page = await (await browser.newContext()).newPage();
    page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
    await page.goto(`${v.httpUrl}/health`);

    await step('an <img> shows the stream at the asked width', async () => {
      await page.evaluate((src) => {
        const img = document.createElement('img');
        img.id = 'live';
        img.src = src;
        document.body.append(img);
      }, `/api/sentinels/${cam.sentinelId}/live.mjpeg?token=${PTOKEN}&fps=2&width=320`);
      const size = await waitFor('a picture', () => page.evaluate(() => {
        const img = document.getElementById('live');
        return img.naturalWidth > 0 && `${img.naturalWidth}x${img.naturalHeight}`;
      }), 15000);
      if (size !== '320x180') throw new Error(`naturalWidth x naturalHeight: ${size}`);
      return size;
    });

    await step('the picture changes over time', async () => {
      const seen = new Set([await picture()]);
      await waitFor('three different pictures', async () => seen.add(await picture()).size >= 3, 15000, 200);
      await page.screenshot({ path: path.join(ARTIFACTS, 'mjpeg-img.png') });
      return `${seen.size} different pictures`;
    });

    await step('the stream ends when the page lets go of it', async () => {
      await waitFor('one client, one decoder', async () => {
        const s = await httpdStats(v);
        return s.mjpegClients === 1 && s.mjpegDecoders === 1;
      }, 15000);
      await page.goto(`${v.httpUrl}/health`);
      await waitFor('no client, no decoder', async () => {
        const s = await httpdStats(v);
        return s.mjpegClients === 0 && s.mjpegDecoders === 0;
      }, 15000);
    });
  } finally {
    await browser.close();
    await v.stop();
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
