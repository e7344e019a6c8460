// The status bar: the stages' states from one source at a time, in one
// vocabulary. Sources, best first: the operator console's server.status
// (pushed every second and at each change), relay's server.status (every
// second, only while this page's relay socket is open: a lost socket means
// its last word is stale), httpd's GET /api/status (polled). The freshest
// source in that order is the truth; the others wait. Every state is said
// with one word, PROTOCOL.md section 5's: running, starting, stopping,
// offline (vigild's down, backoff and failed are offline, its word in the
// tooltip). While this page cannot reach relay, relay shows as offline. When
// archive is not running, a banner says that recording has stopped.
import { el, fmtDuration, getJSON } from './api.js';

const STAGES = ['ingest', 'relay', 'archive', 'httpd'];
const SOURCES = ['console', 'relay', 'http'];
const FRESH_MS = { console: 3000, relay: 3000, http: 12000 };
const POLL_MS = 10000; // GET /api/status while a pushed source is fresh (for uptime, restarts)
const POLL_ALONE_MS = 2000; // while none is
const FROM = { console: 'the console', relay: 'relay', http: 'GET /api/status' };
const LINK = { connecting: 'connecting to relay…', open: 'relay connected', reconnecting: 'reconnecting to relay…', refused: 'refused', closed: 'signed out' };

export function stageWord(state) {
  return ['running', 'starting', 'stopping'].includes(state) ? state : 'offline';
}

export class StatusBar {
  constructor(root, banner) {
    this.conn = el('span', { class: 'conn' });
    this.state = el('span', { class: 'overall' });
    this.stages = el('span', { class: 'stages' });
    this.counts = el('span', { class: 'counts' });
    root.append(this.conn, this.state, this.stages, this.counts);
    this.banner = banner;
    this.snaps = {}; // source -> { st, at }
    this.link = null;
    this.polled = 0;
    this.timer = setInterval(() => this.tick(), 1000);
    this.poll();
  }

  relayState(state, detail = {}) {
    this.link = state;
    this.conn.textContent = LINK[state] || state;
    this.conn.className = `conn ${state}`;
    this.conn.title = detail.reason || '';
    if (state !== 'open') {
      delete this.snaps.relay;
      this.poll(); // what vigild says, now
    }
    this.render();
  }

  // Any source: { state, stages: {name: state | {state, restarts}}, sentinels, proctors, uptimeMs? }.
  show(st, from) {
    if (from === 'relay' && this.link !== 'open') return;
    this.snaps[from] = { st, at: Date.now() };
    if (st.uptimeMs != null) this.uptime = st.uptimeMs;
    this.render();
  }

  source() {
    for (const from of SOURCES) {
      const s = this.snaps[from];
      if (s && Date.now() - s.at < FRESH_MS[from]) return { from, st: s.st };
    }
    return null;
  }

  tick() {
    const src = this.source();
    const since = Date.now() - this.polled;
    if (since >= POLL_MS || (since >= POLL_ALONE_MS && (!src || src.from === 'http'))) this.poll();
    else this.render(); // a source may have gone stale
  }

  render() {
    const src = this.source();
    const stages = {};
    const vigild = {};
    const restarts = {};
    for (const [name, v] of Object.entries((src && src.st.stages) || {})) {
      vigild[name] = typeof v === 'string' ? v : v && v.state;
      stages[name] = stageWord(vigild[name]);
      if (v && v.restarts) restarts[name] = v.restarts;
    }
    const unreachable = this.link && this.link !== 'open' && this.link !== 'closed';
    if (unreachable && (!stages.relay || stages.relay === 'running')) stages.relay = 'offline';
    const shown = STAGES.filter((n) => stages[n]);
    const overall = !shown.length ? '' : shown.every((n) => stages[n] === 'running') ? 'running' : 'degraded';
    this.state.textContent = overall;
    this.state.className = `overall ${overall}`;
    this.stages.replaceChildren(
      ...shown.map((n) => {
        const why = n === 'relay' && unreachable ? 'this page cannot reach relay' : vigild[n] && vigild[n] !== stages[n] ? `vigild says ${vigild[n]}` : '';
        const title = [`${n}: ${stages[n]}`, why, restarts[n] ? `restarted ${restarts[n]} times` : ''].filter(Boolean).join('; ');
        return el('span', { class: `stage ${stages[n]}`, 'data-stage': n, title }, `${n} ${stages[n]}`);
      })
    );
    const parts = [];
    const st = src ? src.st : {};
    const n = (count, what) => `${count} ${what}${count === 1 ? '' : 's'}`;
    if (st.sentinels != null) parts.push(`${n(st.sentinels, 'sentinel')} online`);
    if (st.proctors != null) parts.push(n(st.proctors, 'proctor'));
    if (this.uptime != null) parts.push(`up ${fmtDuration(this.uptime)}`);
    this.counts.textContent = parts.join(' · ');
    this.counts.title = src ? `from ${FROM[src.from]}` : '';
    this.stagesNow = stages;
    this.showBanner(stages.archive);
  }

  showBanner(archive) {
    if (!this.banner) return;
    const text = !archive || archive === 'running' ? ''
      : archive === 'starting' ? 'Recording is paused: archive is starting. What happens until it runs may not be recorded.'
        : `Recording has stopped: archive is ${archive}. Live view goes on, but nothing is recorded until archive runs again.`;
    if (this.banner.textContent !== text) this.banner.textContent = text;
    this.banner.hidden = !text;
  }

  async poll() {
    if (document.hidden) return;
    this.polled = Date.now();
    try {
      this.show(await getJSON('/api/status'), 'http');
    } catch (e) {
      /* no httpd API (yet): relay's server.status fills in */
    }
  }

  stop() {
    clearInterval(this.timer);
  }
}
