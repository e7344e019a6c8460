// The live log console: every new line of the chosen stages at or above the
// chosen level (operator.console; the server filters, so unchecking a stage
// also stops its lines on the wire), "Earlier lines" for the last lines of
// each chosen stage (operator.logs), and a pause. Paused, lines are kept, not
// drawn: Resume draws them, so a pause loses nothing unless more than MAX_LINES
// arrive (the oldest go first, and the count says so). The page holds at most
// MAX_LINES lines; it scrolls with them unless the operator scrolled up.
import { el } from './api.js';

export const MAX_LINES = 2000;
export const LOG_STAGES = ['ingest', 'relay', 'archive', 'httpd'];
const LEVELS = ['debug', 'info', 'warn', 'error'];

function hms(ms) {
  const d = new Date(ms);
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export class LogView {
  constructor(root, con, { notify }) {
    this.con = con;
    this.notify = notify;
    this.paused = false;
    this.held = []; // lines that came while paused
    this.dropped = 0; // held lines that did not fit
    this.total = 0;
    this.started = false;
    this.checks = new Map();
    const stages = el('fieldset', { class: 'log-stages' }, el('legend', {}, 'Stages'));
    for (const s of LOG_STAGES) {
      const box = el('input', { type: 'checkbox', checked: true, id: `log-stage-${s}`, onchange: () => this.refollow() });
      this.checks.set(s, box);
      stages.append(el('label', { for: `log-stage-${s}` }, box, ` ${s}`));
    }
    this.level = el('select', { id: 'log-level', onchange: () => this.refollow() }, ...LEVELS.map((l) => el('option', { value: l }, l)));
    this.level.value = 'info';
    this.pauseBtn = el('button', { type: 'button', id: 'log-pause', 'aria-pressed': 'false', onclick: () => this.setPaused(!this.paused) }, 'Pause');
    this.earlier = el('button', { type: 'button', id: 'log-earlier', onclick: () => this.loadEarlier() }, 'Earlier lines');
    this.clearBtn = el('button', { type: 'button', onclick: () => this.clear() }, 'Clear');
    this.info = el('span', { class: 'log-info', role: 'status' });
    this.list = el('ol', { class: 'log-lines', id: 'log-lines', tabindex: '0', role: 'log', 'aria-live': 'off', 'aria-label': 'Log lines' });
    root.append(
      el('div', { class: 'log-tools' }, stages, el('label', { for: 'log-level' }, 'Level '), this.level, this.pauseBtn, this.earlier, this.clearBtn, this.info),
      this.list
    );
    con.on('server.console', (p) => this.line(p));
  }

  wanted() {
    return { stages: LOG_STAGES.filter((s) => this.checks.get(s).checked), level: this.level.value };
  }

  // The first time the operator view shows: from then on this page follows the log.
  start() {
    if (this.started) return;
    this.started = true;
    this.refollow();
  }

  async refollow() {
    if (!this.started) return;
    const w = this.wanted();
    const r = await this.con.setFollow(w.stages.length ? w : { stages: [] });
    if (r.error) this.notify(`Log console: ${r.error}`);
    this.showInfo();
  }

  async loadEarlier() {
    const { stages } = this.wanted();
    this.earlier.disabled = true;
    let n = 0;
    try {
      // One at a time: httpd answers one operator.logs of a connection at a time.
      for (const stage of stages) {
        const r = await this.con.request('operator.logs', { stage, lines: 200 });
        if (r.error) {
          this.notify(`Earlier lines of ${stage}: ${r.error}`);
          break;
        }
        n += r.lines || 0;
      }
    } finally {
      this.earlier.disabled = false;
    }
    this.showInfo(`${n} earlier lines`);
  }

  line(p) {
    this.total++;
    if (this.paused) {
      this.held.push(p);
      if (this.held.length > MAX_LINES) {
        this.held.shift();
        this.dropped++;
      }
      this.showInfo();
      return;
    }
    this.append([p]);
  }

  append(lines) {
    const list = this.list;
    const atEnd = list.scrollTop + list.clientHeight >= list.scrollHeight - 8;
    const frag = document.createDocumentFragment();
    for (const p of lines) {
      frag.append(
        el('li', { class: `log ${p.level}`, 'data-stage': p.stage },
          el('time', {}, hms(p.time)), el('span', { class: 'log-stage' }, p.stage), el('span', { class: 'log-level' }, p.level), el('span', { class: 'log-text' }, p.line))
      );
    }
    list.append(frag);
    let extra = list.childElementCount - MAX_LINES;
    while (extra-- > 0) list.firstElementChild.remove();
    if (atEnd) list.scrollTop = list.scrollHeight;
  }

  setPaused(on) {
    this.paused = on;
    this.pauseBtn.textContent = on ? 'Resume' : 'Pause';
    this.pauseBtn.setAttribute('aria-pressed', String(on));
    if (!on) {
      const held = this.held.splice(0);
      if (this.dropped) this.append([{ stage: 'page', level: 'warn', time: Date.now(), line: `${this.dropped} lines were dropped while paused (more than ${MAX_LINES})` }]);
      this.dropped = 0;
      this.append(held.slice(-MAX_LINES));
    }
    this.showInfo();
  }

  clear() {
    this.list.replaceChildren();
    this.showInfo();
  }

  showInfo(extra) {
    const parts = [];
    const w = this.wanted();
    parts.push(w.stages.length ? `following ${w.stages.length === LOG_STAGES.length ? 'every stage' : w.stages.join(', ')} from ${w.level}` : 'not following');
    if (this.paused) parts.push(`paused: ${this.held.length} new line${this.held.length === 1 ? '' : 's'} held${this.dropped ? `, ${this.dropped} dropped` : ''}`);
    if (extra) parts.push(extra);
    this.info.textContent = parts.join(' · ');
  }

  stats() {
    return { shown: this.list.childElementCount, held: this.held.length, dropped: this.dropped, total: this.total, paused: this.paused };
  }
}
