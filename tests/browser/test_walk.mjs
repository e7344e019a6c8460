#!/usr/bin/env node
// A random walk through the proctor web app (issue 12, item 8): for
// VIGIL_WALK_SECONDS (45 in CI; the issue's 300 by hand) a proctor's page in
// Debian's chromium switches views, opens and closes live tiles, shows one
// large, goes back 10 s and to live, scrubs, marks, filters, plays history,
// hides the tab, while a second proctor marks the same sentinels and one
// sentinel drops and comes back. Any error in either page's console fails the
// test. The walk is reproducible: VIGIL_WALK_SEED (printed) replays it.
import fs from 'node:fs';
import path from 'node:path';
import { PTOKEN, SOURCE, Vigil, launch, pageServer, waitFor } from './lib.mjs';

const SHOTS = process.env.VIGIL_ARTIFACTS || path.join(SOURCE, 'tests', 'artifacts');
const SECONDS = Number(process.env.VIGIL_WALK_SECONDS || 45);
const SEED = Number(process.env.VIGIL_WALK_SEED || Date.now() % 1e9);
const P2TOKEN = 'proctor2-secret';
const NAMES = ['Hall A / seat 1', 'Hall A / seat 2', 'Hall B / seat 1'];
const errors = [];

// mulberry32: a small seeded generator, so a failing walk can be replayed.
let state = SEED;
function rand() {
  state = (state + 0x6d2b79f5) | 0;
  let t = Math.imul(state ^ (state >>> 15), 1 | state);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (list) => list[Math.floor(rand() * list.length)];
const pause = (ms) => new Promise((r) => setTimeout(r, ms));

function watch(page, who) {
  page.on('pageerror', (e) => errors.push(`${who}: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && errors.push(`${who}: ${m.text()}`));
  return page;
}

async function signIn(page, base, token) {
  await page.goto(`${base}&token=${token}`);
  await page.locator('#app').waitFor({ state: 'visible', timeout: 10000 });
  await waitFor('three online cards', async () => (await page.locator('.card.online').count()) === 3, 20000);
  return page.locator('.card').evaluateAll((cs) => cs.map((c) => c.dataset.id));
}

// Each action is what a proctor does with a mouse or keys; one that finds
// nothing to act on (no tile open, the button disabled) does nothing.
function actions(page, ids) {
  const tiles = () => page.locator('.tile:visible');
  const clickIf = async (sel) => {
    const l = page.locator(sel).first();
    if ((await l.count()) && (await l.isVisible()) && (await l.isEnabled())) await l.click({ timeout: 2000 });
  };
  // Full screen hides the tabs: a proctor leaves it first, with Escape.
  const tab = async (name) => {
    if (await page.evaluate(() => !!document.fullscreenElement)) await page.keyboard.press('Escape');
    await page.click(`#tab-${name}`);
  };
  return {
    hall: () => tab('hall'),
    live: () => tab('live'),
    history: () => tab('history'),
    watch: async () => {
      await tab('hall');
      await clickIf(`.card[data-id="${pick(ids)}"] .watch`);
    },
    close: () => clickIf(`.tile:visible button[aria-label^="Close"] >> nth=${Math.floor(rand() * 3)}`),
    single: async () => {
      const n = await tiles().count();
      if (n) await tiles().nth(Math.floor(rand() * n)).locator('.screen').click({ timeout: 2000 });
    },
    key: () => page.keyboard.press(pick(['ArrowLeft', 'ArrowRight', 'Escape', 'Escape', 'f', 'Enter'])),
    back: () => clickIf('.single-bar button.back'),
    golive: () => clickIf('.single-bar button.golive'),
    scrub: async () => {
      const s = page.locator('.single-bar .scrub');
      if (!(await s.isVisible()) || (await s.isDisabled())) return;
      await s.evaluate((e, f) => {
        e.value = String(Number(e.min) + f * (Number(e.max) - Number(e.min)));
        e.dispatchEvent(new Event('input', { bubbles: true }));
      }, rand());
    },
    mark: async () => {
      const n = await tiles().count();
      if (!n) return;
      await tiles().nth(Math.floor(rand() * n)).focus();
      await page.keyboard.press('m');
      const dialog = page.locator('dialog.mark-dialog');
      if (!(await dialog.isVisible())) return;
      if (rand() < 0.3) return page.keyboard.press('Escape');
      await page.fill('#mark-note', pick(['', 'phone', 'talking', 'left the seat', 'ünïcödé ✓']));
      await page.click(`label.kind-${pick(['note', 'suspicious', 'incident'])}`);
      await page.click('dialog.mark-dialog button[type="submit"]');
      await dialog.waitFor({ state: 'hidden', timeout: 6000 });
    },
    refresh: () => clickIf('.tile:visible button:has-text("Refresh picture")'),
    filter: async () => {
      if (await page.locator('#filter').isDisabled()) return;
      await page.fill('#filter', pick(['', '', 'hall a', 'seat 1', 'B /', 'nobody']));
    },
    play: async () => {
      await tab('history');
      await clickIf('.sessions tbody tr button.play');
    },
    hide: async () => {
      const set = (h) => page.evaluate((hidden) => {
        Object.defineProperty(document, 'hidden', { configurable: true, get: () => hidden });
        document.dispatchEvent(new Event('visibilitychange'));
      }, h);
      await set(true);
      await pause(200 + rand() * 800);
      await set(false);
    },
  };
}

const WEIGHTS = { hall: 3, live: 4, history: 1, watch: 6, close: 3, single: 4, key: 6, back: 3, golive: 2, scrub: 2, mark: 2, refresh: 1, filter: 2, play: 1, hide: 1 };

async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  console.log(`seed ${SEED} (VIGIL_WALK_SEED replays it), ${SECONDS} s`);
  const v = new Vigil({ extra: `    - { name: p2, role: proctor, token: "${P2TOKEN}" }` });
  const browser = await launch();
  let server;
  let ok = false;
  const counts = {};
  let skipped = 0;
  const tStart = Date.now();
  let pageRef = null;
  try {
    await v.start();
    const sentinels = NAMES.map((n) => v.sentinel(n, '--size', '640x360', '--bitrate', '400'));
    server = await pageServer(v);
    const base = `${server.url}/?relay=${encodeURIComponent(v.relayUrl)}`;
    const page = watch(await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage(), 'p1');
    const page2 = watch(await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage(), 'p2');
    pageRef = page;
    page.setDefaultTimeout(3000);
    const ids = await signIn(page, base, PTOKEN);
    await signIn(page2, base, P2TOKEN);
    for (const id of ids) {
      await page2.click('#tab-hall');
      await page2.click(`.card[data-id="${id}"] .watch`);
    }
    console.log(`set up in ${Date.now() - tStart} ms`);
    const act = actions(page, ids);
    const bag = Object.entries(WEIGHTS).flatMap(([k, w]) => Array(w).fill(k));
    const t0 = Date.now();
    let dropped = false;
    let next2 = t0 + 5000;
    while (Date.now() - t0 < SECONDS * 1000) {
      const name = pick(bag);
      counts[name] = (counts[name] || 0) + 1;
      const ta = Date.now();
      try {
        await act[name]();
      } catch (e) {
        skipped++; // the element went away under the click: the walk goes on
        if (process.env.VIGIL_WALK_DEBUG) console.log(`${name}: ${e.message.split('\n')[0]}`);
      }
      if (Date.now() - ta > 2500) console.log(`slow: ${name} took ${Date.now() - ta} ms`);
      if (errors.length) throw new Error(`after ${name} (${Date.now() - t0} ms in): ${errors.join(' | ')}`);
      // The second proctor marks now and then; one sentinel drops once and comes back.
      if (Date.now() > next2) {
        next2 = Date.now() + 4000 + rand() * 4000;
        const n = await page2.locator('.tile').count();
        if (n) {
          await page2.locator('.tile').nth(Math.floor(rand() * n)).focus();
          await page2.keyboard.press('m');
          await page2.fill('#mark-note', 'from p2').catch(() => {});
          await page2.keyboard.press('Enter');
        }
      }
      if (!dropped && Date.now() - t0 > (SECONDS * 1000) / 3) {
        dropped = true;
        sentinels[2].kill('SIGTERM');
        setTimeout(() => (sentinels[2] = v.sentinel(NAMES[2], '--size', '640x360', '--bitrate', '400')), 3000);
      }
      await pause(rand() * 300);
    }
    console.log(`walked ${Date.now() - t0} ms`);
    // Still working after all that: a tile plays.
    await page.keyboard.press('Escape');
    await page.click('#tab-hall');
    await page.fill('#filter', '');
    await page.click(`.card[data-id="${ids[0]}"] .watch`);
    await waitFor('a tile playing', () => page.evaluate((id) => window.vigil.wall.stats().some((t) => t.id === id && t.state === 'playing' && t.frames > 0), ids[0]), 15000);
    await page.screenshot({ path: path.join(SHOTS, 'walk-end.png') });
    if (errors.length) throw new Error(errors.join(' | '));
    ok = true;
  } catch (e) {
    console.log(`FAIL random walk (seed ${SEED}): ${e.stack || e}`);
    if (pageRef) {
      await pageRef.screenshot({ path: path.join(SHOTS, 'fail-walk.png') }).catch(() => {});
      console.log(await pageRef.evaluate(() => JSON.stringify({ tiles: window.vigil.wall.stats().map((t) => [t.id.slice(0, 8), t.state, t.single, t.behind, t.segments]), wanted: [...window.vigil.relay.wanted], dialog: !!document.querySelector('dialog[open]'), filter: document.querySelector('#filter').value })).catch((x) => String(x)));
    }
  } finally {
    console.log(`actions: ${Object.entries(counts).map(([k, n]) => `${k} ${n}`).join(', ')}; ${skipped} found nothing to act on`);
    const tEnd = Date.now();
    await browser.close().catch(() => {});
    if (server) server.close();
    await v.stop();
    console.log(`stopped in ${Date.now() - tEnd} ms`);
  }
  console.log(ok ? `ok   random walk of ${SECONDS} s, no console error` : 'random walk failed');
  process.exit(ok ? 0 : 1);
}

main();
