#!/usr/bin/env node
// The session timeline in history (issue 12, items 6 and 12) in Debian's
// chromium against a real vigild: a recorded session of 112 s with a 12 s gap
// (tests/integration/recording.py writes it into data_dir before vigild
// starts) and three marks POSTed to it, and a live vigil-sentinel. Checked:
// the timeline shows the session's thumbnails (real JPEGs from httpd), the
// gap and the marks as flags; clicking a flag plays within 1 s of the mark
// (its media time taken from the playlist's own EXT-X-PROGRAM-DATE-TIME and
// EXTINF, not from the page's mapping); next and previous mark; the clock time
// next to the media time; 0.5x to 4x, and at 2x the playhead moves about twice
// as fast as the wall clock (measured over a window without stalls, with a
// generous tolerance); the player stays muted; history of a live session
// opens at its start, and from a live tile where the tile's picture was.
// Screenshots go to tests/artifacts/ (VIGIL_ARTIFACTS overrides).
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { PTOKEN, SOURCE, Vigil, launch, pageServer, waitFor, steps } from './lib.mjs';

const OUT = process.env.VIGIL_ARTIFACTS || path.join(SOURCE, 'tests', 'artifacts');
const SECONDS = 100; // segments of the recorded session; a 12 s gap after the 40th
let page;

const tally = steps(OUT, 'fail-timeline-', () => page);
const step = tally.step;

// Media seconds of a clock time, from the playlist as a player reads it.
function playlistMedia(m3u8, at) {
  let media = 0;
  let pdt = null;
  for (const line of m3u8.split('\n')) {
    if (line.startsWith('#EXT-X-PROGRAM-DATE-TIME:')) pdt = Date.parse(line.slice(25));
    else if (line.startsWith('#EXTINF:')) {
      const d = parseFloat(line.slice(8)) * 1000;
      if (pdt != null && at >= pdt && at < pdt + d) return (media + (at - pdt)) / 1000;
      if (pdt != null && at < pdt) return media / 1000; // in a gap: the picture after it
      media += d;
    }
  }
  return null;
}

const video = () => page.locator('.playback video');
const vget = (fn, arg) => video().evaluate(fn, arg);

// Media seconds per wall second over `ms`, in a window where the video neither
// stalled nor seeked; null when every try stalled.
async function pace(ms) {
  for (let attempt = 0; attempt < 4; attempt++) {
    const r = await vget(
      (v, span) =>
        new Promise((resolve) => {
          let stalled = false;
          const stall = () => (stalled = true);
          v.addEventListener('waiting', stall);
          v.addEventListener('seeking', stall);
          const t0 = v.currentTime;
          const w0 = performance.now();
          setTimeout(() => {
            v.removeEventListener('waiting', stall);
            v.removeEventListener('seeking', stall);
            resolve({ stalled: stalled || v.paused, rate: (v.currentTime - t0) / ((performance.now() - w0) / 1000) });
          }, span);
        }),
      ms
    );
    if (!r.stalled) return r.rate;
    await waitFor('buffer ahead', () => vget((v) => v.buffered.length && v.buffered.end(v.buffered.length - 1) - v.currentTime > 8), 15000).catch(() => {});
  }
  return null;
}

async function main() {
  fs.mkdirSync(OUT, { recursive: true });
  const v = new Vigil();
  const sid = randomUUID();
  const sess = randomUUID();
  const start = Date.now() - 3600 * 1000;
  const rec = spawnSync(
    '/usr/bin/python3',
    [path.join(SOURCE, 'tests', 'integration', 'recording.py'), path.join(v.dir, 'data'), '--sentinel', sid, '--session', sess,
      '--seconds', String(SECONDS), '--start', String(start), '--gap', '39:12000', '--clip', '20', '--name', 'recorded-cam'],
    { encoding: 'utf8', timeout: 120000 }
  );
  if (rec.status !== 0) throw new Error(`recording.py: ${rec.status} ${rec.stderr}`);
  const browser = await launch();
  let server;
  try {
    await v.start();
    v.sentinel('live-cam', '--size', '640x360', '--bitrate', '400');
    server = await pageServer(v);
    const auth = { Authorization: `Bearer ${PTOKEN}` };
    const base = `/api/sentinels/${sid}/sessions/${sess}`;
    const marks = [];
    for (const [off, kind, note] of [[25500, 'suspicious', 'looks at a phone'], [70250, 'note', 'back after the gap'], [100000, 'incident', 'leaves the room']]) {
      const res = await fetch(`${v.httpUrl}${base}/marks`, { method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' }, body: JSON.stringify({ at: start + off, kind, note }) });
      if (res.status !== 201) throw new Error(`POST marks: ${res.status} ${await res.text()}`);
      marks.push((await res.json()));
    }
    const m3u8 = await (await fetch(`${v.httpUrl}${base}/playlist.m3u8`, { headers: auth })).text();
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    page = await ctx.newPage();
    page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
    await page.goto(`${server.url}/?relay=${encodeURIComponent(v.relayUrl)}&token=${PTOKEN}`);
    await page.locator('#app').waitFor({ state: 'visible', timeout: 15000 });

    await step('the timeline shows thumbnails, the gap and the marks', async () => {
      await waitFor('the recorded sentinel listed', () => page.evaluate((id) => window.vigil.grid.sentinels().some((s) => s.sentinelId === id), sid), 15000);
      await page.click('#tab-history');
      await page.selectOption('#hist-sentinel', sid);
      await page.locator(`.sessions tr[data-session="${sess}"] button.play`).click();
      await waitFor('every cell\'s thumbnail', () => page.evaluate(() => window.vigil.history.timeline.stats.firstAllShownMs != null), 20000);
      const imgs = await page.locator('.tl-thumbs img').evaluateAll((list) => list.map((i) => ({ w: i.naturalWidth, h: i.naturalHeight, n: Number(i.dataset.n) })));
      if (imgs.length < 5 || imgs.some((i) => i.w !== 160 || i.h !== 90)) throw new Error(`thumbnails ${JSON.stringify(imgs)}`);
      if (imgs.some((i) => i.n === 4 || i.n === 5)) throw new Error('a thumbnail inside the gap');
      const flags = await page.locator('.tl-mark').evaluateAll((list) => list.map((f) => f.dataset.mark));
      if (JSON.stringify(flags) !== JSON.stringify(marks.map((m) => m.markId))) throw new Error(`flags ${flags}`);
      if ((await page.locator('.tl-gap').count()) !== 1) throw new Error('no gap drawn');
      await waitFor('playing from the start', () => vget((e) => e.currentTime > 0.5 && !e.paused), 15000);
      await page.screenshot({ path: path.join(OUT, 'timeline.png') });
      const ms = await page.evaluate(() => window.vigil.history.timeline.stats.firstAllShownMs);
      return `${imgs.length} thumbnails (cells) in ${Math.round(ms)} ms, 3 flags, 1 gap`;
    });

    await step('a click on a mark plays within 1 s of it, with its clock time', async () => {
      const m = marks[1];
      const want = playlistMedia(m3u8, m.at);
      await page.locator(`.tl-mark[data-mark="${m.markId}"]`).click();
      await waitFor('at the mark', async () => Math.abs((await vget((e) => e.currentTime)) - want) < 1, 10000);
      await waitFor('playing there', () => vget((e) => !e.paused && !e.seeking && e.readyState >= 3), 10000);
      const t = await vget((e) => e.currentTime);
      const clock = await page.locator('.tl-clock').textContent();
      const d = new Date(m.at);
      const pad = (n) => String(n).padStart(2, '0');
      const near = [-1, 0, 1, 2].map((s) => { const x = new Date(m.at + s * 1000); return `${pad(x.getHours())}:${pad(x.getMinutes())}:${pad(x.getSeconds())}`; });
      if (!near.includes(clock)) throw new Error(`clock ${clock}, mark at ${d.toTimeString()}`);
      if (!/^\d+:\d\d \/ \d+:\d\d$/.test(await page.locator('.tl-media').textContent())) throw new Error('no media time');
      await page.screenshot({ path: path.join(OUT, 'timeline-mark.png') });
      return `mark at media ${want.toFixed(2)} s (after the gap), playing at ${t.toFixed(2)} s, clock ${clock}`;
    });

    await step('next and previous mark', async () => {
      await page.click('.mark-next');
      const want3 = playlistMedia(m3u8, marks[2].at);
      await waitFor('at the third mark', async () => Math.abs((await vget((e) => e.currentTime)) - want3) < 1, 10000);
      await page.click('.mark-prev');
      const want2 = playlistMedia(m3u8, marks[1].at);
      await waitFor('back at the second mark', async () => Math.abs((await vget((e) => e.currentTime)) - want2) < 1, 10000);
      await page.locator('.tl-bar').focus();
      await page.keyboard.press('[');
      const want1 = playlistMedia(m3u8, marks[0].at);
      await waitFor('at the first mark ([ key)', async () => Math.abs((await vget((e) => e.currentTime)) - want1) < 1, 10000);
      return `${want3.toFixed(1)} s, ${want2.toFixed(1)} s, ${want1.toFixed(1)} s`;
    });

    await step('speeds 0.5x to 4x; at 2x the playhead moves about twice as fast', async () => {
      for (const r of [0.5, 4, 1]) {
        await page.click(`.rates button[data-rate="${r}"]`);
        if ((await vget((e) => e.playbackRate)) !== r) throw new Error(`rate ${r} not set`);
        if ((await page.locator(`.rates button[data-rate="${r}"]`).getAttribute('aria-pressed')) !== 'true') throw new Error('button not pressed');
      }
      await page.click('.tl-bar', { position: { x: 20, y: 10 } }); // near the start: room to play
      await page.click('.rates button[data-rate="2"]');
      await waitFor('playing at 2x', () => vget((e) => !e.paused && e.playbackRate === 2 && e.readyState >= 3), 10000);
      const r2 = await pace(3000);
      if (r2 == null) throw new Error('the video stalled in every window');
      if (!(r2 > 1.5 && r2 < 2.6)) throw new Error(`media advanced ${r2.toFixed(2)} s per second at 2x`);
      await page.click('.rates button[data-rate="1"]');
      return `${r2.toFixed(2)} media s per wall s at 2x`;
    });

    await step('the history player stays muted', async () => {
      await vget((e) => {
        e.muted = false;
        e.volume = 1;
      });
      await waitFor('muted again', () => vget((e) => e.muted), 3000);
      return 'unmuting is undone';
    });

    await step('history of a live session opens at its start', async () => {
      const live = await waitFor('the live sentinel', () => page.evaluate(() => window.vigil.grid.sentinels().find((s) => s.name === 'live-cam' && s.online)), 15000);
      // Long enough that its start and its live edge are far apart.
      await waitFor('12 s of live session', async () => {
        const r = await fetch(`${v.httpUrl}/api/sentinels/${live.sentinelId}/sessions`, { headers: auth });
        const list = await r.json();
        return list.some((s) => s.endTime == null && s.durationMs > 12000);
      }, 30000);
      await page.selectOption('#hist-sentinel', live.sentinelId);
      await page.locator('.sessions tbody tr').first().locator('button.play').click();
      await waitFor('playing', () => vget((e) => e.currentTime > 0.3 && !e.paused), 15000);
      const t = await vget((e) => e.currentTime);
      const end = await vget((e) => (e.seekable.length ? e.seekable.end(e.seekable.length - 1) : 0));
      if (!(t < 5 && end > 10)) throw new Error(`opened at ${t} s of ${end} s`);
      await page.screenshot({ path: path.join(OUT, 'history-live.png') });
      return `at ${t.toFixed(1)} s of ${end.toFixed(1)} s`;
    });

    await step('from a live tile, history opens where the tile was', async () => {
      const live = await page.evaluate(() => window.vigil.grid.sentinels().find((s) => s.name === 'live-cam'));
      await page.click('#tab-hall');
      await page.locator(`.card[data-id="${live.sentinelId}"] button.watch`).click();
      await waitFor('the tile playing', () => page.evaluate((id) => window.vigil.wall.stats().find((t) => t.id === id && t.state === 'playing' && t.delayMs != null), live.sentinelId), 15000);
      const tileAt = await page.evaluate((id) => Date.now() - window.vigil.wall.stats().find((t) => t.id === id).delayMs, live.sentinelId);
      await page.click(`.tile[data-id="${live.sentinelId}"] button:has-text("History")`);
      await waitFor('playing in history', () => vget((e) => e.currentTime > 0 && !e.paused), 15000);
      const at = await page.evaluate(() => window.vigil.history.clockAt());
      // The tile's picture moment, give or take its segment (1 s) and the time to start.
      if (!(Math.abs(at - tileAt) < 4000)) throw new Error(`history at ${at}, the tile was at ${tileAt}`);
      return `history ${((at - tileAt) / 1000).toFixed(1)} s from the tile's moment`;
    });
  } finally {
    await browser.close().catch(() => {});
    if (server) server.close();
    await v.stop();
  }
}

main()
  .catch((e) => {
    if (!tally.failed) {
      tally.failed++;
      console.log(`FAIL setup: ${e.stack || e}`);
    }
  })
  .finally(() => {
    console.log(`${tally.passed} passed, ${tally.failed} failed`);
    process.exit(tally.failed || !tally.passed ? 1 : 0);
  });
