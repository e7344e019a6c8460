// The status bar: the relay connection, and the stages' states from httpd's
// GET /api/status (polled) or relay's server.status (every second), whichever
// answered last, so a proctor sees when something is degraded.
import { el, fmtDuration, getJSON } from './api.js';

const POLL_MS = 5000;
const STAGES = ['ingest', 'relay', 'archive', 'httpd'];

export class StatusBar {
  constructor(root) {
    this.conn = el('span', { class: 'conn' });
    this.state = el('span', { class: 'overall' });
    this.stages = el('span', { class: 'stages' });
    this.counts = el('span', { class: 'counts' });
    root.append(this.conn, this.state, this.stages, this.counts);
    this.timer = setInterval(() => this.poll(), POLL_MS);
    this.poll();
  }

  relayState(state, detail = {}) {
    const text = { connecting: 'connecting to relay…', open: 'relay connected', reconnecting: 'relay lost, reconnecting…', refused: 'refused', closed: 'signed out' };
    this.conn.textContent = text[state] || state;
    this.conn.className = `conn ${state}`;
    this.conn.title = detail.reason || '';
  }

  // Either source: { state, stages: {name: state | {state, restarts}}, sentinels, proctors, uptimeMs? }.
  show(st, from) {
    const stages = {};
    const restarts = {};
    for (const [name, v] of Object.entries(st.stages || {})) {
      stages[name] = typeof v === 'string' ? v : v && v.state;
      if (v && v.restarts) restarts[name] = v.restarts;
    }
    const bad = STAGES.filter((n) => stages[n] && stages[n] !== 'running');
    const overall = st.state || (bad.length ? 'degraded' : 'running');
    this.state.textContent = overall;
    this.state.className = `overall ${overall}`;
    this.stages.replaceChildren(
      ...STAGES.filter((n) => stages[n]).map((n) =>
        el('span', { class: `stage ${stages[n]}`, title: `${n}: ${stages[n]}${restarts[n] ? `, restarted ${restarts[n]} times` : ''}` }, `${n} ${stages[n]}`)
      )
    );
    const parts = [];
    const n = (count, what) => `${count} ${what}${count === 1 ? '' : 's'}`;
    if (st.sentinels != null) parts.push(`${n(st.sentinels, 'sentinel')} online`);
    if (st.proctors != null) parts.push(n(st.proctors, 'proctor'));
    if (st.uptimeMs != null) this.uptime = st.uptimeMs;
    if (this.uptime != null) parts.push(`up ${fmtDuration(this.uptime)}`);
    this.counts.textContent = parts.join(' · ');
    this.counts.title = `from ${from}`;
    this.at = Date.now();
  }

  async poll() {
    if (document.hidden) return;
    try {
      this.show(await getJSON('/api/status'), 'GET /api/status');
    } catch (e) {
      /* no httpd API (yet): relay's server.status fills in */
    }
  }
}
