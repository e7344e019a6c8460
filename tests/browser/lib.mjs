// Helpers for the browser tests and the web benchmark: a real vigild with a
// temporary config (like tests/integration/vigil.py), vigil-sentinel
// processes, a static file server for the built page (only until httpd
// serves it), and Debian's chromium through playwright-core.
import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const SOURCE = process.env.VIGIL_SOURCE_DIR || path.resolve(here, '..', '..');
export const BUILD = path.resolve(process.env.VIGIL_BUILD_DIR || path.join(SOURCE, 'build'));
// The bundled page, the directory httpd serves (see httpd/web/README.md).
export const WEB_ROOT = path.resolve(process.env.VIGIL_WEB_ROOT || path.join(SOURCE, 'httpd', 'web', 'dist'));
export const ARTIFACTS = process.env.VIGIL_ARTIFACTS || path.join(BUILD, 'browser-artifacts');
// playwright-core is a devDependency of the web app (httpd/web/package.json).
const require = createRequire(path.join(SOURCE, 'httpd', 'web', 'package.json'));
const { chromium } = require('playwright-core');

export const PTOKEN = 'proctor-secret';
export const ATOKEN = 'archivist-secret';
// Where the logs and tokens of every vigild are kept for tests/check_secrets.py
// (as tests/integration/vigil.py keeps them).
export const LOGS = process.env.VIGIL_TEST_LOGS || path.join(BUILD, 'test-logs');
let count = 0;

// {name, token} of the config's auth.tokens written inline, as the tests write them.
function configTokens(text) {
  const out = [];
  for (const m of text.matchAll(/\{\s*name:\s*"?([^,"}]+)"?\s*,[^}]*?\btoken:\s*"([^"]+)"/g)) out.push({ name: m[1].trim(), token: m[2] });
  return out;
}

// Copies the logs under dir (*.stderr, *.log, the audit log) to LOGS/logs/run
// and the tokens to LOGS/tokens/run.json (0600). Never fails a test.
function keepLogs(run, dir, tokens) {
  const dst = path.join(LOGS, 'logs', run);
  try {
    const walk = (rel) => {
      for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
        const r = path.join(rel, e.name);
        if (e.isDirectory()) walk(r);
        else if (e.isFile() && (/\.(log|stderr)$/.test(e.name) || r.startsWith(path.join('data', 'audit') + path.sep))) {
          fs.mkdirSync(path.dirname(path.join(dst, r)), { recursive: true });
          fs.copyFileSync(path.join(dir, r), path.join(dst, r));
        }
      }
    };
    walk('');
    fs.mkdirSync(path.join(LOGS, 'tokens'), { recursive: true });
    fs.writeFileSync(path.join(LOGS, 'tokens', `${run}.json`), JSON.stringify(tokens), { mode: 0o600 });
  } catch (e) {
    console.error(`lib.mjs: logs of ${run} not kept: ${e.message}`);
  }
}

// A test's named steps: .step(name, fn) prints "ok NAME (ms): note" or
// "FAIL NAME: stack", then saves a screenshot of page() (when there is one) as
// DIR/PREFIXNAME.png and throws on; .passed and .failed count them.
export function steps(dir, prefix, page = () => null) {
  const run = { passed: 0, failed: 0 };
  run.step = async (name, fn) => {
    const t0 = Date.now();
    try {
      const note = await fn();
      run.passed++;
      console.log(`ok   ${name} (${Date.now() - t0} ms)${note ? `: ${note}` : ''}`);
    } catch (e) {
      run.failed++;
      console.log(`FAIL ${name}: ${e.stack || e}`);
      const p = page();
      if (p) await p.screenshot({ path: path.join(dir, `${prefix}${name.replace(/\W+/g, '-')}.png`) }).catch(() => {});
      throw e;
    }
  };
  return run;
}

export function waitFor(what, fn, timeoutMs = 15000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tick = async () => {
      let v;
      try {
        v = await fn();
      } catch (e) {
        v = undefined;
      }
      if (v) return resolve(v);
      if (Date.now() > deadline) return reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      setTimeout(tick, everyMs);
    };
    tick();
  });
}

// Killed by meson's timeout or Ctrl-C: stop what we started on the way out.
const started = new Set();
process.on('exit', () => {
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(130));

export class Vigil {
  constructor({ extra = '' } = {}) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-web-'));
    this.instance = `web-${process.pid}-${++count}`;
    this.run = `${path.basename(process.argv[1] || 'node', '.mjs')}-${process.pid}-${count}`;
    this.config = path.join(this.dir, 'vigil.yaml');
    fs.writeFileSync(
      this.config,
      [
        `instance: ${this.instance}`,
        `run_dir: ${path.join(this.dir, 'run')}`,
        `data_dir: ${path.join(this.dir, 'data')}`,
        'listen: { ingest: "127.0.0.1:0", relay: "127.0.0.1:0", http: "127.0.0.1:0" }',
        'ring: { size: 64MiB }',
        // One relay process, named relay, whatever the cores (relay.workers: 0
        // would start one per core): the pages' tests name the stages.
        'relay: { workers: 1 }',
        'auth:',
        '  sentinel: none',
        '  tokens:',
        `    - { name: p1, role: proctor, token: "${PTOKEN}" }`,
        `    - { name: a1, role: archivist, token: "${ATOKEN}" }`,
        extra,
      ].join('\n')
    );
    this.children = [];
  }

  // Resolves once vigild printed "is up", with the addresses from its banner.
  start(timeoutMs = 20000) {
    this.stderr = fs.openSync(path.join(this.dir, 'vigild.stderr'), 'w');
    this.proc = spawn(path.join(BUILD, 'deploy', 'vigild'), ['--config', this.config, '--foreground'], {
      stdio: ['ignore', 'pipe', this.stderr],
    });
    started.add(this.proc);
    let out = '';
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`vigild not up in ${timeoutMs} ms: ${this.log()}`)), timeoutMs);
      this.proc.on('exit', (code) => reject(new Error(`vigild exited ${code}: ${this.log()}`)));
      this.proc.stdout.on('data', (d) => {
        out += d;
        if (!out.includes('is up') || !/web app.*http:\/\/\S+/.test(out)) return;
        clearTimeout(timer);
        this.sentinelUrl = out.match(/(ws:\/\/\S+\/sentinel)/)[1];
        this.relayUrl = out.match(/(ws:\/\/\S+\/proctor)/)[1];
        this.httpUrl = out.match(/web app.*?(http:\/\/\S+)/)[1].replace(/\/$/, '');
        resolve(this);
      });
    });
  }

  log() {
    try {
      return fs.readFileSync(path.join(this.dir, 'vigild.stderr'), 'utf8');
    } catch (e) {
      return '';
    }
  }

  ctl(...args) {
    const res = spawnSync(path.join(BUILD, 'deploy', 'vigilctl'), ['--config', this.config, ...args], { encoding: 'utf8', timeout: 60000 });
    if (res.status !== 0) throw new Error(`vigilctl ${args.join(' ')}: ${res.status} ${res.stderr}`);
    return res.stdout;
  }

  stage(name) {
    return JSON.parse(this.ctl('status', '--json')).stages.find((s) => s.name === name);
  }

  sentinel(name, ...args) {
    const file = name.replace(/[^\w.-]+/g, '_'); // "Hall A / seat 1" has a slash
    const child = spawn(
      path.join(BUILD, 'deploy', 'vigil-sentinel'),
      ['--url', this.sentinelUrl, '--name', name, '--state', path.join(this.dir, `${file}.id`), ...args],
      { stdio: ['ignore', 'ignore', fs.openSync(path.join(this.dir, `sentinel-${file}.stderr`), 'w')] }
    );
    this.children.push(child);
    started.add(child);
    return child;
  }

  async stop() {
    const t0 = Date.now();
    for (const c of this.children) if (c.exitCode === null) c.kill('SIGTERM');
    await Promise.all(this.children.map((c) => (c.exitCode === null ? new Promise((r) => c.on('exit', r)) : null)));
    if (this.proc && this.proc.exitCode === null) {
      const exited = new Promise((r) => this.proc.on('exit', r));
      this.proc.kill('SIGTERM');
      const t = setTimeout(() => this.proc.kill('SIGKILL'), 30000);
      await exited;
      clearTimeout(t);
    }
    if (Date.now() - t0 > 5000) console.log(`vigil: stopping took ${Date.now() - t0} ms`);
    const log = this.log();
    keepLogs(this.run, this.dir, configTokens(fs.readFileSync(this.config, 'utf8')));
    fs.rmSync(this.dir, { recursive: true, force: true });
    for (const s of ['ERROR: AddressSanitizer', 'ERROR: LeakSanitizer', 'runtime error:']) {
      if (log.includes(s)) throw new Error(`sanitizer report in vigild's log:\n${log.slice(-6000)}`);
    }
  }
}

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.map': 'application/json', '.txt': 'text/plain' };

// Serves the built page for tests only, while httpd does not serve it yet.
export function staticServer(root) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const rel = path.normalize(decodeURIComponent(url.pathname)).replace(/^(\.\.[/\\])+/, '');
    const file = path.join(root, rel.endsWith('/') ? `${rel}index.html` : rel);
    if (!file.startsWith(root) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end('{"error":"not found"}');
      return;
    }
    res.writeHead(200, { 'Content-Type': TYPES[path.extname(file)] || 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() }));
  });
}

// httpd serves the app once GET / answers with our page; else the test serves dist itself.
export async function pageServer(vigil) {
  try {
    const res = await fetch(`${vigil.httpUrl}/`, { signal: AbortSignal.timeout(3000) });
    if (res.ok && (await res.text()).includes('vigil · proctor')) return { url: vigil.httpUrl, close() {}, httpd: true };
  } catch (e) {
    /* httpd not serving yet */
  }
  return { ...(await staticServer(WEB_ROOT)), httpd: false };
}

export async function launch() {
  const args = ['--autoplay-policy=no-user-gesture-required'];
  if (process.getuid && process.getuid() === 0) args.push('--no-sandbox');
  return chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args });
}
