// The audit log for operators (PROTOCOL.md section 9, docs/audit.md): the
// records of a sentinel, chosen by its name (the page knows sentinels from
// GET /api/sentinels and sends the sentinelId), within a time range, of an
// action or a group of them (GET /api/audit); and the hash chain's check
// (GET /api/audit/verify). Both are plain HTTP calls with the operator's
// token in the Authorization header, never in the URL.
import { el, fmtTime, getJSON, headers } from './api.js';

export const SHOWN = 500; // rows at most; one more is asked for, to know there are more
const ACTIONS = [
  ['', 'any action'],
  ['live.view', 'live.view (a live view ended)'],
  ['history.read', 'history.read (recordings read)'],
  ['export', 'export (an export or a manifest)'],
  ['delete', 'delete (a session deleted)'],
  ['mark', 'mark (a mark stored)'],
  ['auth.failed', 'auth.failed (a token refused)'],
  ['token.revoke,stage.set,config.update,shutdown', 'an operator action'],
];
// Keys every record has; the rest are the action's own, shown as details.
const COMMON = new Set(['seq', 'time', 'actor', 'role', 'remote', 'action', 'sentinelId', 'id', 'prev', 'hash']);
const MINUTE = 60000;

// A datetime-local input's value ("2026-12-01T10:30", the page's time zone) and back.
function toInput(ms) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
function fromInput(v) {
  if (!v) return null;
  const ms = new Date(v).getTime();
  return Number.isFinite(ms) ? ms : NaN;
}

function detail(k, v) {
  if ((k === 'from' || k === 'to') && typeof v === 'number') return `${k} ${fmtTime(v)}`;
  if (k === 'sessionId' && typeof v === 'string') return `session ${v.slice(0, 8)}`;
  return `${k} ${typeof v === 'object' ? JSON.stringify(v) : v}`;
}

export class Audit {
  constructor(root) {
    this.sentinels = []; // [{ sentinelId, name }] from /api/sentinels
    this.rows = []; // the records shown
    this.verdict = null;
    const field = (id, label, input) => el('div', { class: 'audit-field' }, el('label', { for: id }, label), input);
    this.list = el('datalist', { id: 'audit-sentinel-names' });
    this.sentinel = el('input', { id: 'audit-sentinel', list: 'audit-sentinel-names', autocomplete: 'off', spellcheck: 'false', placeholder: 'any sentinel' });
    this.from = el('input', { id: 'audit-from', type: 'datetime-local', value: toInput(Date.now() - 24 * 60 * MINUTE) });
    this.to = el('input', { id: 'audit-to', type: 'datetime-local' });
    this.action = el('select', { id: 'audit-action' }, ...ACTIONS.map(([v, t]) => el('option', { value: v }, t)));
    this.out = el('p', { id: 'audit-result', class: 'form-result', role: 'status' });
    this.verifyOut = el('p', { id: 'audit-verify-result', class: 'form-result', role: 'status' });
    this.body = el('tbody');
    this.table = el('table', { class: 'audit', id: 'audit-table' },
      el('caption', {}, 'Records, oldest first'),
      el('thead', {}, el('tr', {}, ...['seq', 'time', 'action', 'actor', 'address', 'sentinel', 'details'].map((h) => el('th', { scope: 'col' }, h)))),
      this.body);
    const form = el('form', { class: 'panel audit-form', id: 'audit-form', 'aria-label': 'Search the audit log' },
      field('audit-sentinel', 'Sentinel', this.sentinel), this.list,
      field('audit-from', 'From', this.from),
      field('audit-to', 'To (included)', this.to),
      field('audit-action', 'Action', this.action),
      el('div', { class: 'audit-buttons' },
        el('button', { type: 'submit', id: 'audit-search' }, 'Search'),
        el('button', { type: 'button', id: 'audit-verify', onclick: () => this.verify() }, 'Verify the chain')),
      this.out, this.verifyOut);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.search();
    });
    root.append(form, el('div', { class: 'panel audit-rows' }, this.table));
  }

  async load() {
    try {
      const all = await getJSON('/api/sentinels');
      this.sentinels = all.map((s) => ({ sentinelId: s.sentinelId, name: s.name || '' }));
      this.list.replaceChildren(...[...new Set(this.sentinels.map((s) => s.name))].sort().map((n) => el('option', { value: n })));
    } catch (e) {
      this.say(this.out, `Sentinels not loaded: ${e.message}`, false);
    }
  }

  say(node, text, ok) {
    node.textContent = text;
    node.className = `form-result${ok == null ? '' : ok ? ' good' : ' bad'}`;
  }

  // The name typed (case-insensitive) -> its sentinelId; '' for any.
  async sentinelId() {
    const name = this.sentinel.value.trim();
    if (!name) return '';
    const find = () => this.sentinels.filter((s) => s.name.toLowerCase() === name.toLowerCase());
    let found = find();
    if (found.length === 0) {
      await this.load(); // one that came online since
      found = find();
    }
    if (found.length === 0) throw new Error(`No sentinel is named "${name}".`);
    if (found.length > 1) throw new Error(`${found.length} sentinels are named "${name}": rename one to tell them apart.`);
    return found[0].sentinelId;
  }

  async search() {
    const q = new URLSearchParams();
    try {
      const id = await this.sentinelId();
      const from = fromInput(this.from.value);
      const to = fromInput(this.to.value);
      if (Number.isNaN(from) || Number.isNaN(to)) throw new Error('A time is not a date and time.');
      if (id) q.set('sentinelId', id);
      if (from != null) q.set('from', String(from));
      // "to 10:30" means up to the end of that minute.
      if (to != null) q.set('to', String(to + MINUTE - 1));
      if (this.action.value) q.set('action', this.action.value);
      q.set('limit', String(SHOWN + 1));
    } catch (e) {
      this.say(this.out, e.message, false);
      return;
    }
    this.say(this.out, 'Searching…');
    this.query = q.toString();
    try {
      const res = await fetch(`/api/audit?${this.query}`, { headers: headers(), cache: 'no-store' });
      const text = await res.text();
      if (!res.ok) {
        let why = res.statusText;
        try {
          why = JSON.parse(text).error || why;
        } catch (e) {
          /* not JSON */
        }
        throw new Error(`${res.status} ${why}`);
      }
      const recs = [];
      for (const line of text.split('\n')) {
        if (!line) continue;
        try {
          recs.push(JSON.parse(line));
        } catch (e) {
          recs.push({ seq: '?', action: '(a line that is not JSON)' });
        }
      }
      this.show(recs.slice(0, SHOWN));
      const more = recs.length > SHOWN;
      this.say(this.out, more ? `The first ${SHOWN} records: narrow the range to see the rest.` : `${recs.length} record${recs.length === 1 ? '' : 's'}.`, true);
    } catch (e) {
      this.say(this.out, `Not searched: ${e.message}`, false);
    }
  }

  show(recs) {
    this.rows = recs;
    const names = new Map(this.sentinels.map((s) => [s.sentinelId, s.name]));
    this.body.replaceChildren(...recs.map((r) => {
      const details = Object.entries(r).filter(([k]) => !COMMON.has(k)).map(([k, v]) => detail(k, v)).join(', ');
      const who = r.actor == null ? '(unknown token)' : `${r.actor}${r.role ? ` (${r.role})` : ''}`;
      const sid = r.sentinelId ? names.get(r.sentinelId) || r.sentinelId.slice(0, 8) : '';
      return el('tr', { 'data-seq': String(r.seq) },
        el('td', { class: 'num' }, String(r.seq)),
        el('td', {}, el('time', { datetime: typeof r.time === 'number' ? new Date(r.time).toISOString() : '' }, typeof r.time === 'number' ? fmtTime(r.time) : '')),
        el('td', {}, String(r.action || '')),
        el('td', {}, who),
        el('td', {}, String(r.remote || '')),
        el('td', { title: r.sentinelId || '' }, sid),
        el('td', { class: 'audit-details' }, details));
    }));
  }

  async verify() {
    this.say(this.verifyOut, 'Checking the chain…');
    try {
      const v = await getJSON('/api/audit/verify');
      this.verdict = v;
      const from = v.base != null ? ` after record ${v.base} (older days were retired)` : '';
      if (v.ok) {
        this.say(this.verifyOut, `Chain intact: ${v.records} records${from}, head at ${v.head ?? '-'}.`, true);
      } else {
        const where = v.file ? ` (${v.file}, line ${v.line})` : '';
        const which = v.firstBad != null ? `first bad record ${v.firstBad}${where}: ` : '';
        this.say(this.verifyOut, `Chain broken: ${which}${v.reason}. ${v.records} records good before it.`, false);
      }
    } catch (e) {
      this.say(this.verifyOut, `Not checked: ${e.message}`, false);
    }
  }
}
