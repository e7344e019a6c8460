#!/usr/bin/env node
// The operator page (issue 11) in a real browser: Debian's chromium through
// playwright-core against a real vigild with one vigil-sentinel, the page
// served by vigil-httpd, the console on its /api/ws.
//
// Two parts. What httpd answers by itself runs always: an operator's token
// gets the Operator tab and a proctor's does not; the stage cards (state,
// pid, uptime, restarts, how it last ended) and the charts moving with the
// live server.metrics; the ring; keyboard; stop and kill asking first; the
// log console's subscription, filters and pause; httpd killed: the console
// reconnects; the configuration shown; revoking the proctor's token closes
// the proctor's page with the reason; a short-lived token's expiry.
// What needs vigild's side of the console (stage.set, logs, config.update,
// shutdown) is probed at the start; a request vigild does not answer ("vigild
// did not answer" from httpd, after 35 s, while the first part runs) fails
// its steps. Screenshots go to <builddir>/browser-artifacts.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { ARTIFACTS, PTOKEN, SOURCE, Vigil, launch, waitFor } from './lib.mjs';

const OTOKEN = 'operator-secret';
const STOKEN = 'operator-short'; // expires a little after the start
const STAGES = ['ingest', 'relay', 'archive', 'httpd'];
// The audit log the test writes before the start (tests/integration/auditlog.py,
// the format's reference): records of the sentinel "cam" (whose id the test
// gives it) and of one the page does not know, over the last 48 hours.
const CAM_ID = '5e1f0c2a-7b3d-4e8f-9a10-2b3c4d5e6f70';
const OTHER_ID = '0b6c1f2e-8d3a-4c5b-9e7f-112233445566';
const AUDIT_N = 400;
const OPERATOR_ACTIONS = 'token.revoke,stage.set,config.update,shutdown';
const GEN = `
import sys, time
sys.path.insert(0, sys.argv[1])
import auditlog as A
n = int(sys.argv[3])
step = 48 * 3600 * 1000 // n
A.generate(A.AuditLog(sys.argv[2]), n, int(time.time() * 1000) - n * step - 60000, step,
           sentinels=[sys.argv[4], sys.argv[5]])
`;

function writeAuditLog(dir) {
  const r = spawnSync('/usr/bin/python3', ['-c', GEN, path.join(SOURCE, 'tests', 'integration'), dir, String(AUDIT_N), CAM_ID, OTHER_ID], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`auditlog.py: ${r.stderr}`);
}

// Every record in the log's files, in their order (what /api/audit reads).
function auditRecords(dir) {
  const out = [];
  for (const f of fs.readdirSync(dir).filter((n) => /^audit-\d{4}-\d\d-\d\d\.jsonl$/.test(n)).sort()) {
    for (const line of fs.readFileSync(path.join(dir, f), 'utf8').split('\n')) if (line) out.push(JSON.parse(line));
  }
  return out;
}
let passed = 0;
let failed = 0;
let skipped = 0;
let shotPage;
const pageErrors = [];

async function step(name, fn) {
  const t0 = Date.now();
  try {
    const note = await fn();
    passed++;
    console.log(`ok   ${name} (${Date.now() - t0} ms)${note ? `: ${note}` : ''}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.stack || e}`);
    if (e && typeof e === 'object') e.counted = true;
    if (shotPage) await shotPage.screenshot({ path: path.join(ARTIFACTS, `operator-fail-${name.replace(/\W+/g, '-').slice(0, 60)}.png`), fullPage: true }).catch(() => {});
    throw e;
  }
}

function skip(name, why) {
  failed++;
  console.log(`FAIL ${name}: ${why}`);
}

const shot = (page, name) => page.screenshot({ path: path.join(ARTIFACTS, `operator-${name}.png`), fullPage: true });
// The operator view scrolls inside the page: a tall window shows all of it.
async function tallShot(page, name) {
  const vp = page.viewportSize();
  await page.setViewportSize({ width: vp.width, height: 2300 });
  await shot(page, name);
  await page.setViewportSize(vp);
}
const opsStats = (page) => page.evaluate(() => window.vigil.ops.stats());
const sent = (page) => page.evaluate(() => [...window.vigil.con.sent]);
const noAnswer = (r) => !r || (r.error && /vigild did not answer/.test(r.error));
const cardText = (page, stage, sel) => page.locator(`.stage-card[data-stage="${stage}"] ${sel}`).textContent();
// The dd after a dt of a stage card.
const field = (page, stage, label) =>
  page.locator(`.stage-card[data-stage="${stage}"] dt:text-is("${label}") + dd`).textContent();

async function newPage(browser, name) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => {
    pageErrors.push(`${name}: ${e.message}`);
    console.log(`page error (${name}): ${e.message}`);
  });
  return page;
}

async function signInWithForm(page, token) {
  await page.fill('#token', token);
  await page.press('#token', 'Enter');
  await page.locator('#app').waitFor({ state: 'visible', timeout: 10000 });
}

async function main() {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const expires = new Date(Date.now() + 30000).toISOString().replace(/\.\d+Z$/, 'Z');
  const v = new Vigil({
    extra: [
      `    - { name: o1, role: operator, token: "${OTOKEN}" }`,
      `    - { name: o-short, role: operator, token: "${STOKEN}", expires: "${expires}" }`,
    ].join('\n'),
  });
  const browser = await launch();
  const auditDir = path.join(v.dir, 'data', 'audit');
  try {
    fs.writeFileSync(path.join(v.dir, 'cam.id'), `${CAM_ID}\n`);
    writeAuditLog(auditDir);
    await v.start();
    v.sentinel('cam', '--size', '320x180', '--bitrate', '300');
    const base = `${v.httpUrl}/?relay=${encodeURIComponent(v.relayUrl)}`;
    const op = await newPage(browser, 'operator');
    const pp = await newPage(browser, 'proctor');
    const xp = await newPage(browser, 'short-lived operator');
    shotPage = op;
    // The short-lived token's page first: its expiry comes 30 s after the start.
    await xp.goto(`${base}&token=${STOKEN}`);

    await step('a proctor token gets no operator view (the console refuses it with 3001)', async () => {
      await pp.goto(`${base}&token=${PTOKEN}#operator`);
      await pp.locator('#app').waitFor({ state: 'visible', timeout: 10000 });
      await waitFor('the console\'s answer', () => pp.evaluate(() => window.vigil.role === 'proctor'), 10000);
      const h = await pp.evaluate(() => window.vigil.con.history.join(' > '));
      if (!h.includes('refused 3001')) throw new Error(`console states: ${h}`);
      if (await pp.locator('#tab-ops').isVisible()) throw new Error('Operator tab shown to a proctor');
      if (await pp.locator('#view-ops').isVisible()) throw new Error('operator view shown to a proctor');
      if ((await pp.locator('#view-ops *').count()) !== 0) throw new Error('operator view built for a proctor');
      if (!(await pp.locator('#view-hall').isVisible())) throw new Error('the hall is not shown');
      await waitFor('the sentinel in the hall', async () => (await pp.locator('.card.online').count()) === 1, 15000);
      await shot(pp, 'proctor');
      return `console ${h}; hash now "${await pp.evaluate(() => location.hash)}"`;
    });

    let probes;
    await step('an operator signs in with the form and gets the Operator tab', async () => {
      await op.goto(base);
      await signInWithForm(op, OTOKEN);
      await op.locator('#tab-ops').waitFor({ state: 'visible', timeout: 10000 });
      if ((await op.evaluate(() => window.vigil.role)) !== 'operator') throw new Error('role is not operator');
      // What needs vigild is asked now: httpd gives up after 35 s, while the rest runs.
      probes = op.evaluate(() => {
        const con = window.vigil.con;
        const t0 = Date.now();
        const timed = (p) => p.then((r) => ({ ...r, ms: Date.now() - t0 }));
        window.probes = Promise.all([
          timed(con.request('operator.stage.set', { stage: 'archive', state: 'start' }, 'archive')),
          timed(con.request('operator.logs', { stage: 'relay', lines: 1 })),
          timed(con.request('operator.config.update', { config: { log_level: 'info' } })),
        ]).then(([stage, logs, config]) => ({ stage, logs, config }));
        return true;
      }).then(() => op.evaluate(() => window.probes));
    });

    await step('keyboard: Tab reaches the Operator tab, Enter opens it (#operator), Tab reaches a stage\'s buttons', async () => {
      await op.focus('#tab-hall');
      for (let i = 0; i < 6 && (await op.evaluate(() => document.activeElement.id)) !== 'tab-ops'; i++) await op.keyboard.press('Tab');
      if ((await op.evaluate(() => document.activeElement.id)) !== 'tab-ops') throw new Error('Tab did not reach the Operator tab');
      await op.keyboard.press('Enter');
      await op.locator('#view-ops').waitFor({ state: 'visible', timeout: 5000 });
      if ((await op.evaluate(() => location.hash)) !== '#operator') throw new Error('no #operator in the address');
      await waitFor('buttons enabled', () => op.evaluate(() => !document.querySelector('.stage-card[data-stage="relay"] .act-restart').disabled), 10000);
      let label = '';
      for (let i = 0; i < 40 && label !== 'Restart relay'; i++) {
        await op.keyboard.press('Tab');
        label = await op.evaluate(() => document.activeElement.getAttribute('aria-label') || '');
      }
      if (label !== 'Restart relay') throw new Error('Tab did not reach "Restart relay"');
      return 'focus on "Restart relay"';
    });

    await step('four stage cards running, with the pids vigild reports', async () => {
      const want = Object.fromEntries(STAGES.map((s) => [s, v.stage(s).pid]));
      await waitFor('four running cards', async () => {
        const st = await opsStats(op);
        return STAGES.every((s) => st.cards[s].state === 'running' && st.cards[s].pid === want[s]);
      }, 10000);
      const rows = [];
      for (const s of STAGES) {
        const [pid, up, restarts, ended] = [await field(op, s, 'pid'), await field(op, s, 'up'), await field(op, s, 'restarts'), await field(op, s, 'last ended')];
        if (pid !== String(want[s])) throw new Error(`${s}: pid shown ${pid}, vigild says ${want[s]}`);
        if (!/^\d+:\d\d$/.test(up)) throw new Error(`${s}: uptime "${up}"`);
        if (restarts !== '0' || ended !== 'not yet') throw new Error(`${s}: restarts "${restarts}", last ended "${ended}"`);
        if ((await cardText(op, s, '.stage-state')) !== 'running') throw new Error(`${s}: state text`);
        rows.push(`${s} ${pid} up ${up}`);
      }
      if (!(await op.locator('.stage-card[data-stage="httpd"] .act-stop').isDisabled())) throw new Error('Stop httpd is not disabled');
      return rows.join(', ');
    });

    await step('CPU and memory charts move with the live server.metrics', async () => {
      const canvas = () => op.locator('.stage-card[data-stage="relay"] canvas').first().evaluate((c) => c.toDataURL());
      const s0 = await opsStats(op);
      const img0 = await canvas();
      const s1 = await waitFor('three more pushes, drawn', async () => {
        const s = await opsStats(op);
        return s.pushes >= s0.pushes + 3 && s.cards.relay.cpuSamples > s0.cards.relay.cpuSamples && s.cards.relay.draws > s0.cards.relay.draws && s;
      }, 10000);
      if ((await canvas()) === img0) throw new Error('the relay CPU chart did not change');
      const mem = await waitFor('memory figures', async () => {
        const t = await op.locator('.stage-card .chart-value').allTextContents();
        return t.filter((x, i) => i % 2 === 1).every((m) => /[1-9][\d.]* (KiB|MiB|GiB)/.test(m)) && t;
      }, 10000);
      await tallShot(op, 'ops');
      return `${s1.pushes - s0.pushes} pushes, ${s1.cards.relay.cpuSamples} samples; CPU and memory now ${mem.join(' ')}`;
    });

    await step('the ring: fill and segment rate from the sentinel\'s segments', async () => {
      const r = await waitFor('ring figures', async () => {
        const s = await opsStats(op);
        return s.ring.fill > 0 && s.ring.segRate > 0 && s.ring;
      }, 15000);
      return `${await op.locator('.ring-fill-text').textContent()}, ${r.segRate.toFixed(2)} segments/s`;
    });

    await step('stop and kill ask first; Escape or Enter on Cancel sends nothing', async () => {
      await op.click('.stage-card[data-stage="ingest"] .act-stop');
      await op.locator('#confirm').waitFor({ state: 'visible', timeout: 2000 });
      if ((await op.evaluate(() => document.activeElement.id)) !== 'confirm-cancel') throw new Error('Cancel does not have the focus');
      const text = await op.locator('#confirm-text').textContent();
      await shot(op, 'confirm');
      await op.keyboard.press('Escape');
      await op.locator('#confirm').waitFor({ state: 'hidden', timeout: 2000 });
      await op.focus('.stage-card[data-stage="relay"] .act-kill');
      await op.keyboard.press('Enter');
      await op.locator('#confirm').waitFor({ state: 'visible', timeout: 2000 });
      await op.keyboard.press('Enter'); // on Cancel
      await op.locator('#confirm').waitFor({ state: 'hidden', timeout: 2000 });
      const s = await sent(op);
      if (s.filter((t) => t === 'operator.stage.set').length !== 1) throw new Error(`sent: ${s}`); // the probe's only
      const st = await opsStats(op);
      if (st.cards.ingest.doing || st.cards.relay.doing) throw new Error('a card is busy');
      return `"${text}"`;
    });

    await step('the log console: subscribed at once, filters ask the server, the pause holds lines', async () => {
      // operator.console is httpd's own: answered now, the lines come once vigild forwards them.
      await waitFor('following', async () => /following every stage from info/.test(await op.locator('.log-info').textContent()), 5000);
      const before = (await sent(op)).filter((t) => t === 'operator.console').length;
      await op.uncheck('#log-stage-archive');
      await op.selectOption('#log-level', 'warn');
      await waitFor('the new filter answered', async () => /following ingest, relay, httpd from warn/.test(await op.locator('.log-info').textContent()), 5000);
      if ((await sent(op)).filter((t) => t === 'operator.console').length !== before + 2) throw new Error('filters did not ask the server');
      if ((await op.evaluate(() => window.vigil.con.follow)).stages.includes('archive')) throw new Error('archive still followed');
      await op.check('#log-stage-archive');
      await op.selectOption('#log-level', 'info');
      // The pause: a line through the page's own dispatch is held, then drawn.
      const line = (n) => op.evaluate((i) => window.vigil.con.dispatch({ type: 'server.console', payload: { stage: 'relay', level: 'warn', time: Date.now(), line: `test line ${i}` } }), n);
      const shown0 = (await opsStats(op)).log.shown;
      await op.click('#log-pause');
      await line(1);
      await line(2);
      let l = (await opsStats(op)).log;
      if (l.held !== 2 || l.shown !== shown0) throw new Error(`paused: ${JSON.stringify(l)}`);
      if (!/paused: 2 new lines held/.test(await op.locator('.log-info').textContent())) throw new Error('the held count is not shown');
      await op.click('#log-pause');
      l = (await opsStats(op)).log;
      if (l.held !== 0 || l.shown !== shown0 + 2) throw new Error(`resumed: ${JSON.stringify(l)}`);
      const last = await op.locator('#log-lines li').last().textContent();
      if (!/relay\s*warn\s*test line 2/.test(last)) throw new Error(`last line "${last}"`);
      return `last line "${last}"`;
    });

    await step('the configuration: every key, the live ones editable, no secret on the page', async () => {
      await op.locator('#cfg-limits-max_proctors').waitFor({ timeout: 5000 });
      const val = (k) => op.inputValue(`#cfg-${k}`);
      const got = { proctors: await val('limits-max_proctors'), idle: await val('timeouts-idle'), bytes: await val('archive-max_bytes'), level: await val('log_level') };
      if (got.proctors !== '500' || got.idle !== '30s' || got.bytes !== '200GiB' || got.level !== 'info') throw new Error(JSON.stringify(got));
      if ((await op.locator('#config-form tr:has(th:text-is("ring.size")) input').count()) !== 0) throw new Error('ring.size is editable');
      const html = await op.content();
      for (const secret of [OTOKEN, PTOKEN, STOKEN]) if (html.includes(secret)) throw new Error('a token is on the page');
      // A value that is not a number is caught by the form; nothing is sent.
      await op.fill('#cfg-limits-max_proctors', 'many');
      await op.click('#config-apply');
      if (await op.locator('#cfg-limits-max_proctors').evaluate((i) => i.validity.valid)) throw new Error('"many" is valid');
      if ((await sent(op)).filter((t) => t === 'operator.config.update').length !== 1) throw new Error('sent with a bad value');
      await op.fill('#cfg-limits-max_proctors', '500');
      await op.locator('#ops-config').screenshot({ path: path.join(ARTIFACTS, 'operator-config.png') });
      return `${await op.locator('#config-form tbody tr').count()} keys, ${await op.locator('#config-form tr.live').count()} editable`;
    });

    await step('the audit log: a sentinel\'s records by name, time range and action; Verify', async () => {
      const calls = [];
      op.on('request', (r) => {
        if (r.url().includes('/api/audit')) calls.push({ url: r.url(), auth: r.headers().authorization });
      });
      await op.locator('#audit-form').scrollIntoViewIfNeeded();
      // From 12 hours ago, to open; the page sends the minute's start in its own time zone.
      await op.evaluate((ms) => {
        const d = new Date(ms);
        const p = (n) => String(n).padStart(2, '0');
        const i = document.querySelector('#audit-from');
        i.value = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
      }, Date.now() - 12 * 3600 * 1000);
      await op.fill('#audit-to', '');
      await op.fill('#audit-sentinel', 'cam');
      const search = async (action) => {
        await op.selectOption('#audit-action', action);
        await op.evaluate(() => {
          document.querySelector('#audit-result').textContent = '';
        });
        await op.click('#audit-search');
        await waitFor('the search\'s answer', async () => {
          const t = await op.locator('#audit-result').textContent();
          return t && !/Searching/.test(t) ? t : null;
        }, 10000);
        return (await opsStats(op)).audit;
      };
      const check = (audit, pred) => {
        const q = new URLSearchParams(audit.query);
        const from = Number(q.get('from'));
        if (!(Math.abs(from - (Date.now() - 12 * 3600 * 1000)) < 5 * 60 * 1000)) throw new Error(`from=${from}`);
        if (q.has('to') || q.get('limit') !== '501') throw new Error(`query ${audit.query}`);
        const all = auditRecords(auditDir);
        const match = (r) => r.time >= from && pred(r);
        // ours exactly; any the server's own writer added must pass the filter too
        const want = all.filter((r) => r.seq <= AUDIT_N && match(r)).map((r) => r.seq);
        const got = audit.seqs.filter((s) => s <= AUDIT_N);
        if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`rows ${got.length} ${got.slice(0, 8)}..., want ${want.length} ${want.slice(0, 8)}...`);
        const bySeq = new Map(all.map((r) => [r.seq, r]));
        for (const s of audit.seqs) if (s > AUDIT_N && !match(bySeq.get(s) || {})) throw new Error(`record ${s} does not pass`);
        if (!want.length) throw new Error('nothing to show: the log is not as written');
        return want.length;
      };
      const cam = (r) => r.sentinelId === CAM_ID;
      const nAll = check(await search(''), cam);
      const rows = await op.locator('#audit-table tbody tr').count();
      if (rows !== (await opsStats(op)).audit.seqs.length) throw new Error(`${rows} rows drawn`);
      if (!/ records?\.$/.test(await op.locator('#audit-result').textContent())) throw new Error('no count');
      const cell = await op.locator('#audit-table tbody tr').first().locator('td').nth(5).textContent();
      if (cell !== 'cam') throw new Error(`sentinel cell "${cell}"`);
      const nExport = check(await search('export'), (r) => cam(r) && r.action === 'export');
      await op.fill('#audit-sentinel', '');
      const nOps = check(await search(OPERATOR_ACTIONS), (r) => OPERATOR_ACTIONS.split(',').includes(r.action));
      // the server's refusal is shown; a name nobody has is caught by the page
      await op.evaluate(() => {
        document.querySelector('#audit-to').value = '2000-01-01T00:00';
      });
      await search('');
      const refused = await op.locator('#audit-result').textContent();
      if (refused !== 'Not searched: 400 from is after to') throw new Error(`"${refused}"`);
      await op.fill('#audit-to', '');
      await op.fill('#audit-sentinel', 'nobody-here');
      await search('');
      if (!/No sentinel is named "nobody-here"/.test(await op.locator('#audit-result').textContent())) throw new Error('unknown name not caught');
      await op.fill('#audit-sentinel', 'cam');
      await search('');
      await op.click('#audit-verify');
      await waitFor('the check', async () => /^Chain /.test(await op.locator('#audit-verify-result').textContent()), 30000);
      const verdict = (await opsStats(op)).audit.verdict;
      const said = await op.locator('#audit-verify-result').textContent();
      if (!verdict.ok || verdict.records < AUDIT_N || !/^Chain intact: \d+ records/.test(said)) throw new Error(`${JSON.stringify(verdict)}: "${said}"`);
      for (const c of calls) {
        if (/[?&]token=/.test(c.url)) throw new Error(`a token in ${c.url}`);
        if (c.auth !== `Bearer ${OTOKEN}`) throw new Error(`no Authorization header on ${c.url}`);
      }
      if (!calls.some((c) => c.url.endsWith('/api/audit/verify'))) throw new Error('no verify request');
      await op.locator('#ops-audit').screenshot({ path: path.join(ARTIFACTS, 'operator-audit.png') });
      return `cam: ${nAll} records in 12 h, ${nExport} exports; ${nOps} operator actions; "${said}"`;
    });

    await step('revoking the proctor\'s token closes the proctor\'s page with the reason', async () => {
      await op.fill('#revoke-token', PTOKEN);
      await op.click('#revoke-form button[type="submit"]');
      await op.locator('#confirm').waitFor({ state: 'visible', timeout: 2000 });
      await op.click('#confirm-ok');
      await waitFor('the answer', async () => /^Revoked/.test(await op.locator('#revoke-result').textContent()), 5000);
      const err = pp.locator('#signin-error');
      await err.waitFor({ state: 'visible', timeout: 5000 });
      const text = await err.textContent();
      await shot(pp, 'proctor-revoked');
      if (!/^Your token was revoked: Token revoked/.test(text)) throw new Error(`proctor page: "${text}"`);
      if (await pp.evaluate(() => sessionStorage.getItem('vigil.token'))) throw new Error('the revoked token was kept');
      if (await op.locator('#revoke-token').inputValue()) throw new Error('the token stayed in the form');
      return `"${text}"`;
    });

    await step('the revoked token is refused; the same page signs in as an operator', async () => {
      await pp.fill('#token', PTOKEN);
      await pp.press('#token', 'Enter');
      await waitFor('refused', async () => /refused|revoked/i.test((await pp.locator('#signin-error').textContent()) || '') && !(await pp.locator('#signin-wait').isVisible()), 10000);
      const why = await pp.locator('#signin-error').textContent();
      await signInWithForm(pp, OTOKEN);
      await pp.locator('#tab-ops').waitFor({ state: 'visible', timeout: 10000 });
      return `"${why}"`;
    });

    await step('a token that expires: the page says when, then signs out with the reason', async () => {
      const n = xp.locator('#notice');
      const warned = await n.textContent();
      if (!/^Your token expires at/.test(warned)) throw new Error(`notice "${warned}"`);
      const err = xp.locator('#signin-error');
      await err.waitFor({ state: 'visible', timeout: 40000 });
      const text = await err.textContent();
      await shot(xp, 'expired');
      if (!/^Your token has expired: Token expired/.test(text)) throw new Error(`"${text}"`);
      return `"${warned}", then "${text}"`;
    });
    await xp.context().close();

    // ---- what needs vigild's side of the console ----
    const p = await probes;
    console.log(`vigild probes: stage.set ${JSON.stringify(p.stage)}; logs ${JSON.stringify(p.logs)}; config.update ${JSON.stringify(p.config)}`);
    const why = (what, r) => `vigild does not answer ${what} (httpd: "${r.error}" after ${Math.round(r.ms / 1000)} s)`;

    if (noAnswer(p.stage)) {
      skip('restart relay from the page: busy, through the states, a new pid', why('operator.stage.set', p.stage));
      skip('kill archive asks, then it runs again with a new pid', why('operator.stage.set', p.stage));
    } else {
      await step('restart relay from the page: busy, through the states, a new pid', async () => {
        const old = v.stage('relay').pid;
        // A restart can be over before the click returns: the card's busy
        // state is watched from before the click.
        await op.evaluate(() => {
          const card = document.querySelector('.stage-card[data-stage="relay"]');
          window.sawBusy = null;
          new MutationObserver(() => {
            if (card.getAttribute('aria-busy') === 'true' && window.sawBusy === null)
              window.sawBusy = card.querySelector('.stage-busy').textContent;
          }).observe(card, { attributes: true, attributeFilter: ['aria-busy'] });
        });
        await op.click('.stage-card[data-stage="relay"] .act-restart');
        const busy = await waitFor('the card busy', () => op.evaluate(() => window.sawBusy), 5000);
        const c = await waitFor('the answer', async () => {
          const s = await opsStats(op);
          return !s.cards.relay.doing && s.cards.relay;
        }, 35000);
        if (c.result.error) throw new Error(`answer: ${c.result.error}`);
        const now = v.stage('relay').pid;
        if (!(c.result.pid > 0) || c.result.pid === old || c.result.pid !== now) throw new Error(`pid ${old} -> ${c.result.pid}, vigild says ${now}`);
        if (!c.seen.some((s) => s !== 'running')) throw new Error(`states seen: ${c.seen}`);
        await waitFor('the card shows the new pid', async () => (await field(op, 'relay', 'pid')) === String(now), 5000);
        await tallShot(op, 'restarted');
        return `"${busy}"; states ${c.seen.join(' > ')}; pid ${old} -> ${now}; "${await cardText(op, 'relay', '.stage-msg')}"`;
      });
      await step('kill archive asks, then it runs again with a new pid', async () => {
        const old = v.stage('archive').pid;
        await op.click('.stage-card[data-stage="archive"] .act-kill');
        await op.click('#confirm-ok');
        const c = await waitFor('the answer', async () => {
          const s = await opsStats(op);
          return !s.cards.archive.doing && s.cards.archive.result && s.cards.archive;
        }, 35000);
        if (c.result.error || c.result.pid === old || c.result.pid !== v.stage('archive').pid) throw new Error(JSON.stringify(c.result));
        await waitFor('how it ended', async () => /killed by signal 9/.test(await field(op, 'archive', 'last ended')), 5000);
        return `pid ${old} -> ${c.result.pid}; states ${c.seen.join(' > ')}`;
      });
    }

    if (noAnswer(p.logs)) {
      skip('log lines arrive live, earlier lines on demand, held while paused', why('operator.logs', p.logs));
    } else {
      await step('log lines arrive live, earlier lines on demand, held while paused', async () => {
        // Every stage is followed from info: a stage restarting (above, or now) logs.
        await op.evaluate(() => window.vigil.ops.log.clear());
        const live = await waitFor('live lines', async () => {
          const s = await opsStats(op);
          if (s.log.shown === 0 && !s.cards.ingest.doing) await op.evaluate(() => window.vigil.con.request('operator.stage.set', { stage: 'ingest', state: 'restart' }, 'ingest'));
          return s.log.shown > 0 && s.log;
        }, 30000, 1000);
        const stages = await op.locator('#log-lines li').evaluateAll((ls) => [...new Set(ls.map((l) => l.dataset.stage))]);
        await op.click('#log-pause');
        await op.click('#log-earlier');
        await waitFor('earlier lines', async () => /\d+ earlier lines/.test(await op.locator('.log-info').textContent()), 20000);
        const held = (await opsStats(op)).log;
        if (!(held.held > 0) || held.shown !== (await op.locator('#log-lines li').count())) throw new Error(`paused: ${JSON.stringify(held)}`);
        await op.click('#log-pause');
        const after = (await opsStats(op)).log;
        if (!(after.shown > live.shown) || after.held !== 0) throw new Error(`resumed: ${JSON.stringify(after)}`);
        await op.locator('#ops-log').screenshot({ path: path.join(ARTIFACTS, 'operator-log.png') });
        return `${live.shown} live lines (${stages.join(', ')}), ${held.held} held while paused, ${after.shown} shown`;
      });
    }

    if (noAnswer(p.config)) {
      skip('a configuration edit is applied and shown', why('operator.config.update', p.config));
    } else {
      await step('a configuration edit is applied and shown', async () => {
        await op.fill('#cfg-limits-max_proctors', '499');
        await op.fill('#cfg-timeouts-idle', '45s');
        await op.click('#config-apply');
        await waitFor('the answer', async () => /^(Applied|Not applied)/.test(await op.locator('#config-result').textContent()), 35000);
        const text = await op.locator('#config-result').textContent();
        if (!/^Applied: .*limits\.max_proctors/.test(text)) throw new Error(`"${text}"`);
        await waitFor('the new values', async () => (await op.inputValue('#cfg-limits-max_proctors')) === '499' && (await op.inputValue('#cfg-timeouts-idle')) === '45s', 5000);
        const cfg = await (await fetch(`${v.httpUrl}/api/config`, { headers: { Authorization: `Bearer ${OTOKEN}` } })).json();
        if (cfg.limits.max_proctors !== 499 || cfg.timeouts.idle !== 45000) throw new Error(`GET /api/config: ${JSON.stringify(cfg.limits)} ${JSON.stringify(cfg.timeouts)}`);
        return `"${text}"`;
      });
    }

    // After the probes: a killed httpd takes the answers it owes with it.
    await step('httpd killed: the console reconnects, follows the log again, and the card says how httpd ended', async () => {
      const old = v.stage('httpd').pid;
      const follows = (await sent(op)).filter((t) => t === 'operator.console').length;
      process.kill(old, 'SIGKILL');
      await waitFor('the page noticed', () => op.evaluate(() => window.vigil.con.history.includes('reconnecting')), 10000);
      await waitFor('the console open again', () => op.evaluate(() => window.vigil.con.state === 'open'), 20000);
      const s = await waitFor('the new httpd on its card', async () => {
        const st = await opsStats(op);
        return st.cards.httpd.state === 'running' && st.cards.httpd.pid !== old && st;
      }, 10000);
      if ((await sent(op)).filter((t) => t === 'operator.console').length !== follows + 1) throw new Error('operator.console not sent again');
      const ended = await field(op, 'httpd', 'last ended');
      if (!/killed by signal 9/.test(ended)) throw new Error(`last ended "${ended}"`);
      const restarts = await field(op, 'httpd', 'restarts');
      if (restarts !== '1') throw new Error(`restarts "${restarts}"`);
      return `pid ${old} -> ${s.cards.httpd.pid}; "${ended}"; console ${await op.evaluate(() => window.vigil.con.history.join(' > '))}`;
    });

    // operator.shutdown cannot be probed without shutting down: it runs when
    // vigild answers the console's other requests.
    if (noAnswer(p.stage) && noAnswer(p.logs) && noAnswer(p.config)) {
      skip('shutdown with a delay: both operators see the countdown, then the server stops', why('the console\'s requests', p.stage));
    } else {
      const name = 'shutdown with a delay: both operators see the countdown, then the server stops';
      const exited = new Promise((r) => v.proc.on('exit', (code, sig) => r({ code, sig })));
      await op.fill('#shutdown-in', '4');
      await op.click('#shutdown-form button[type="submit"]');
      await op.click('#confirm-ok');
      await waitFor('the answer', async () => !/^(|Asking…)$/.test((await op.locator('#shutdown-result').textContent()) || ''), 36000);
      const answer = await op.locator('#shutdown-result').textContent();
      if (/vigild did not answer/.test(answer)) {
        skip(name, `vigild does not answer operator.shutdown yet (httpd: "${answer}")`);
      } else {
        await step(name, async () => {
          if (!/^The server shuts down at/.test(answer)) throw new Error(`"${answer}"`);
          const banner = await op.locator('#ops-banner').textContent();
          if (!/^The server shuts down in 0:0[1-4]/.test(banner)) throw new Error(`banner "${banner}"`);
          await waitFor('the other operator\'s countdown', async () => /^The server shuts down in 0:0\d/.test(await pp.locator('#notice').textContent()), 3000);
          await tallShot(op, 'shutdown');
          const r = await Promise.race([exited, new Promise((res) => setTimeout(() => res(null), 30000))]);
          if (!r || r.code !== 0) throw new Error(`vigild: ${JSON.stringify(r)}`);
          const h = await waitFor('1001 seen', async () => {
            const x = await op.evaluate(() => window.vigil.con.history.join(' > '));
            return x.includes('reconnecting 1001') && x;
          }, 5000);
          return `"${banner}"; vigild exited 0; console ${h}`;
        });
      }
    }

    if (pageErrors.length) {
      failed++;
      console.log(`FAIL page errors: ${pageErrors.join('; ')}`);
    }
  } finally {
    await browser.close().catch(() => {});
    await v.stop();
  }
}

main()
  .catch((e) => {
    if (e && e.counted) return;
    failed++;
    console.log(`FAIL ${e.stack || e}`);
  })
  .finally(() => {
    console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
    process.exit(failed || !passed ? 1 : 0);
  });
