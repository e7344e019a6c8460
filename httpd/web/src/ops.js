// The operator view (issue 11), shown only when the console accepted the
// token as an operator's: a card per stage (vigild's state, pid, uptime,
// restarts, how it last ended, CPU and memory over the last five minutes,
// start/stop/restart/kill), the ring (fill, segment and byte rates), the live
// log, the configuration, token revocation and shutdown, the audit log
// (audit.js: records and the chain's check, over HTTP). Everything moving
// comes from the console's server.metrics push (every second and at each
// stage change); see console.js for the socket.
import { el, fmtDuration } from './api.js';
import { Audit } from './audit.js';
import { Chart, fmtBytes } from './chart.js';
import { Control, ask } from './control.js';
import { LogView } from './logview.js';
import { Settings } from './settings.js';

export const STAGES = ['ingest', 'relay', 'archive', 'httpd'];
const UP = new Set(['starting', 'running', 'stopping']);
const RATE_WINDOW_MS = 5000;
const DOING = { start: 'starting…', stop: 'stopping…', restart: 'restarting…', kill: 'killing…' };
const DONE = { start: 'started', stop: 'stopped', restart: 'restarted', kill: 'killed and started again' };
// Kill and stop cut clients off: they ask first.
const CONFIRM = {
  stop: (s) => `Stop ${s}? It stays down until someone starts it; its clients are disconnected.`,
  kill: (s) => `Kill ${s} (SIGKILL)? Its clients are cut off at once; vigild starts it again.`,
};

// 42 s, 18 min, 2.5 h: how long the ring holds at the current rate.
function roughly(s) {
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function section(id, title, ...children) {
  return el('section', { class: 'ops-section', id, 'aria-labelledby': `${id}-h` }, el('h2', { id: `${id}-h` }, title), ...children);
}

export class Ops {
  constructor(root, con, { notify }) {
    this.root = root;
    this.con = con;
    this.notify = notify;
    this.visible = false;
    this.shownOnce = false;
    this.pushes = 0;
    this.cards = new Map();
    root.classList.add('ops');
    this.banner = el('p', { id: 'ops-banner', class: 'ops-banner', role: 'alert', hidden: true });
    this.conn = el('span', { id: 'ops-conn', class: 'conn' });
    this.summary = el('span', { class: 'ops-summary' });
    const cards = el('div', { class: 'stage-cards' });
    for (const name of STAGES) {
      const c = this.card(name);
      this.cards.set(name, c);
      cards.append(c.node);
    }
    this.ring = this.ringPanel();
    const logRoot = el('div', { class: 'panel log-panel' });
    const side = el('div', { class: 'ops-side' });
    root.append(
      el('div', { class: 'ops-head' }, el('h1', {}, 'Operator console'), this.conn, this.summary),
      this.banner,
      section('ops-stages', 'Stages', cards),
      el('div', { class: 'ops-row' }, section('ops-ring', 'Ring', this.ring.node), section('ops-act', 'Tokens and shutdown', side)),
      section('ops-log', 'Log', logRoot),
      section('ops-config', 'Configuration', (this.cfgRoot = el('div'))),
      section('ops-audit', 'Audit log', (this.auditRoot = el('div', { class: 'audit-panel' }))));
    this.log = new LogView(logRoot, con, { notify });
    this.settings = new Settings(this.cfgRoot, con);
    this.control = new Control(side, con);
    this.audit = new Audit(this.auditRoot);
    con.on('server.metrics', (p) => this.metrics(p));
    con.on('server.status', (p) => this.status(p));
    con.on('server.shutdown', (p) => this.shutdownAt(p.at));
    con.on('state', (st) => this.connState(st));
    this.connState({ state: con.state });
  }

  show(on) {
    this.visible = on;
    if (!on) return;
    if (!this.shownOnce) {
      this.shownOnce = true;
      this.log.start();
      this.settings.load();
      this.audit.load();
    }
    this.draw();
  }

  card(name) {
    const f = (label) => {
      const dd = el('dd');
      return [dd, el('dt', {}, label), dd];
    };
    const [pid, ...pidN] = f('pid');
    const [uptime, ...upN] = f('up');
    const [restarts, ...reN] = f('restarts');
    const [conns, ...coN] = f('connections');
    const [lastExit, ...leN] = f('last ended');
    const state = el('span', { class: 'stage-state' });
    const busy = el('span', { class: 'stage-busy', hidden: true });
    const msg = el('p', { class: 'stage-msg', role: 'status' });
    const cpu = new Chart({ label: 'CPU', fmt: (v) => `${v.toFixed(v < 10 ? 1 : 0)} %`, min: 1 });
    const mem = new Chart({ label: 'memory', fmt: fmtBytes, min: 1 << 20, color: '#d29922' });
    const buttons = {};
    for (const act of ['start', 'stop', 'restart', 'kill']) {
      buttons[act] = el('button', { type: 'button', class: `act-${act}${CONFIRM[act] ? ' danger' : ''}`, 'aria-label': `${act[0].toUpperCase()}${act.slice(1)} ${name}`, onclick: () => this.act(c, act) },
        `${act[0].toUpperCase()}${act.slice(1)}${CONFIRM[act] ? '…' : ''}`);
    }
    if (name === 'httpd') buttons.stop.title = 'httpd serves this console: stopping it would cut every operator off (vigilctl stop httpd can)';
    const node = el('section', { class: 'stage-card', 'data-stage': name, 'aria-labelledby': `stage-${name}-h` },
      el('header', {}, el('h3', { id: `stage-${name}-h` }, name), state, busy),
      el('dl', {}, ...pidN, ...upN, ...reN, ...coN, ...leN),
      el('div', { class: 'charts' }, cpu.node, mem.node),
      el('div', { class: 'stage-actions', role: 'group', 'aria-label': `Actions on ${name}` }, ...Object.values(buttons)),
      msg);
    const c = { name, node, state, busy, msg, pid, uptime, restarts, conns, lastExit, cpu, mem, buttons, m: null, doing: null, seen: [] };
    this.buttons(c);
    return c;
  }

  buttons(c) {
    const st = c.m ? c.m.state : null;
    const b = c.buttons;
    const off = c.doing || !this.con.open || !st;
    b.start.disabled = off || UP.has(st);
    b.stop.disabled = off || c.name === 'httpd' || st === 'down' || st === 'failed';
    b.restart.disabled = off;
    b.kill.disabled = off || !(c.m.pid > 0);
  }

  async act(c, act) {
    if (CONFIRM[act] && !(await ask(CONFIRM[act](c.name), `${act[0].toUpperCase()}${act.slice(1)} ${c.name}`))) return;
    const before = c.m ? c.m.pid : 0;
    c.doing = act;
    c.seen = c.m ? [c.m.state] : [];
    c.busy.textContent = DOING[act];
    c.busy.hidden = false;
    c.node.setAttribute('aria-busy', 'true');
    c.msg.textContent = '';
    c.msg.className = 'stage-msg';
    this.buttons(c);
    const r = await this.con.request('operator.stage.set', { stage: c.name, state: act }, c.name);
    c.doing = null;
    c.busy.hidden = true;
    c.node.removeAttribute('aria-busy');
    if (r.error) {
      c.msg.textContent = r.error;
      c.msg.classList.add('bad');
    } else {
      c.msg.textContent = r.pid ? `${DONE[act]}: pid ${before || '—'} → ${r.pid}` : `${DONE[act]}`;
      c.msg.classList.add('good');
      if (c.m) c.m.pid = r.pid; // until the next push says so too
      c.pid.textContent = r.pid || '—';
    }
    c.result = r;
    this.buttons(c);
    this.con.send('operator.stats', {}); // the new state now, not in up to a second
  }

  ringPanel() {
    const meter = el('meter', { id: 'ring-fill', min: 0, max: 1, low: 0.99, value: 0 });
    const fill = el('span', { class: 'ring-fill-text' });
    const dl = el('dl');
    const seg = new Chart({ label: 'segments/s', fmt: (v) => v.toFixed(1), min: 1, color: '#3fb950' });
    const bytes = new Chart({ label: 'write rate', fmt: (v) => `${fmtBytes(v)}/s`, min: 1024, color: '#58a6ff' });
    const node = el('div', { class: 'panel ring-panel' },
      el('label', { for: 'ring-fill' }, 'Fill '), meter, fill, dl, el('div', { class: 'charts' }, seg.node, bytes.node));
    return { node, meter, fill, dl, seg, bytes, hist: [] };
  }

  metrics(p) {
    const now = Date.now();
    this.pushes++;
    this.last = p;
    for (const c of this.cards.values()) {
      const m = p.stages && p.stages[c.name];
      if (!m) continue;
      c.m = m;
      if (c.doing && c.seen[c.seen.length - 1] !== m.state) c.seen.push(m.state);
      c.node.dataset.state = m.state;
      c.state.textContent = m.state;
      c.pid.textContent = m.pid || '—';
      c.uptime.textContent = UP.has(m.state) && m.uptimeMs != null ? fmtDuration(m.uptimeMs) : '—';
      c.restarts.textContent = m.restarts ?? '—';
      c.conns.textContent = m.connections ?? '—';
      c.lastExit.textContent = m.lastExit || (m.lastExit === '' ? 'not yet' : '—');
      if (m.state === 'running') {
        c.cpu.add(now, m.cpuPercent);
        c.mem.add(now, m.memBytes);
      } else {
        c.cpu.gap(now);
        c.mem.gap(now);
      }
      this.buttons(c);
    }
    this.ringFigures(p.ring, p.sentinelsOnline, now);
    this.summary.textContent = `${p.sentinelsOnline ?? 0} sentinel${p.sentinelsOnline === 1 ? '' : 's'} online${p.uptimeMs ? ` · up ${fmtDuration(p.uptimeMs)}` : ''}`;
    if (this.visible && !document.hidden) this.draw();
  }

  ringFigures(r, online, now) {
    const g = this.ring;
    if (!r) {
      g.fill.textContent = 'no ring';
      return;
    }
    const wraps = Math.floor(r.bytesWritten / r.sizeBytes);
    const fill = Math.min(1, r.bytesWritten / r.sizeBytes);
    g.meter.value = fill;
    g.fill.textContent = wraps ? `full (${fmtBytes(r.sizeBytes)}, wrapped ${wraps}×)` : `${(fill * 100).toFixed(1)} % of ${fmtBytes(r.sizeBytes)}`;
    // Segments per second over the last 5 s: sentinels cut about one a second,
    // so a one-second difference would jump between 0, 1 and 2.
    const hist = g.hist.filter((h) => h.t >= now - RATE_WINDOW_MS && h.segs <= r.segmentsWritten);
    hist.push({ t: now, segs: r.segmentsWritten });
    g.hist = hist;
    const first = hist[0];
    const segRate = now - first.t >= 1500 ? ((r.segmentsWritten - first.segs) * 1000) / (now - first.t) : null;
    if (segRate !== null) g.seg.add(now, segRate);
    g.bytes.add(now, r.writeBytesPerS);
    const holds = r.writeBytesPerS > 0 ? roughly(r.sizeBytes / r.writeBytesPerS) : '—';
    const rows = [
      ['segments written', r.segmentsWritten],
      ['segment rate', segRate === null ? '—' : `${segRate.toFixed(1)}/s`],
      ['write rate', `${fmtBytes(r.writeBytesPerS)}/s`],
      ['holds at this rate', holds],
      ['sentinels online', `${online ?? 0} (of ${r.sentinelSlots} slots)`],
      ['overruns', r.overruns],
      ['writer', r.writerAttached ? 'ingest attached' : 'none attached'],
    ];
    g.dl.replaceChildren(...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, String(v))]));
    g.segRate = segRate;
  }

  draw() {
    for (const c of this.cards.values()) {
      c.cpu.draw();
      c.mem.draw();
    }
    this.ring.seg.draw();
    this.ring.bytes.draw();
  }

  status(p) {
    if (p.operators != null) this.summary.title = `${p.operators} operator${p.operators === 1 ? '' : 's'} signed in`;
  }

  connState(st) {
    const text = { connecting: 'console connecting…', open: 'console connected', reconnecting: 'console lost, reconnecting…', refused: 'console refused', closed: 'signed out' };
    this.conn.textContent = `${text[st.state] || st.state}${st.state === 'reconnecting' && st.code ? ` (${st.code}${st.reason ? ` ${st.reason}` : ''})` : ''}`;
    this.conn.className = `conn ${st.state}`;
    this.root.classList.toggle('stale', st.state !== 'open');
    if (st.state === 'reconnecting') {
      const now = Date.now();
      for (const c of this.cards.values()) {
        c.cpu.gap(now);
        c.mem.gap(now);
      }
    }
    for (const c of this.cards.values()) this.buttons(c);
  }

  // server.shutdown { at }: a countdown for every operator.
  shutdownAt(at) {
    this.shutdown = at;
    clearInterval(this.countdown);
    const tick = () => {
      const left = at - Date.now();
      this.banner.hidden = false;
      this.banner.textContent = left > 0 ? `The server shuts down in ${fmtDuration(left)} (at ${new Date(at).toLocaleTimeString()}).` : 'The server is shutting down now.';
      if (left <= 0) clearInterval(this.countdown);
    };
    tick();
    this.countdown = setInterval(tick, 250);
  }

  stop() {
    clearInterval(this.countdown);
  }

  // For the browser tests.
  stats() {
    const cards = {};
    for (const c of this.cards.values()) {
      cards[c.name] = { state: c.m && c.m.state, pid: c.m && c.m.pid, doing: c.doing, seen: [...c.seen], result: c.result || null, cpuSamples: c.cpu.samples.length, memSamples: c.mem.samples.length, draws: c.cpu.draws };
    }
    return { pushes: this.pushes, cards, ring: { fill: this.ring.meter.value, segRate: this.ring.segRate ?? null }, log: this.log.stats(), shutdown: this.shutdown || null, console: this.con.state, audit: { seqs: this.audit.rows.map((r) => r.seq), query: this.audit.query || null, verdict: this.audit.verdict } };
  }
}
