// The effective configuration (GET /api/config, operator role, secrets as
// "***"), every key shown, the ones that can change while the server runs
// editable: limits.*, timeouts.*, archive.retention_days, archive.max_bytes,
// archive.min_free and log_level. Apply sends only what changed, nested as in the file, to
// operator.config.update; the answer names what was applied and what needs a
// restart, or the key that was refused (nothing applied then). Durations and
// sizes are written as the file takes them ("30s", "200GiB": a bare number is
// seconds for a duration, bytes for a size); /api/config gives them in ms and
// bytes, shown here with the largest unit that is exact.
import { el, getJSON } from './api.js';

const LEVELS = ['error', 'warn', 'info', 'debug'];
// key -> kind: int (a number), size and duration (text with a unit), level,
// floor (auto, a size or a percentage)
export const LIVE_KEYS = {
  log_level: 'level',
  'limits.max_sentinels': 'int',
  'limits.max_proctors': 'int',
  'limits.max_message_bytes': 'size',
  'limits.proctor_queue_seconds': 'int',
  'limits.max_connections_per_ip': 'int',
  'limits.max_handshakes': 'int',
  'timeouts.register': 'duration',
  'timeouts.idle': 'duration',
  'timeouts.stage_heartbeat': 'duration',
  'archive.retention_days': 'int',
  'archive.max_bytes': 'size',
  'archive.min_free': 'floor',
};
const SIZES = new Set(['ring.size']); // shown with a unit, read-only
const SIZE = '\\d+\\s*(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB|k|K|M|G)?';
const PATTERN = { int: '\\d+', size: SIZE, duration: '\\d+\\s*(ms|s|m|h|d)?', floor: `auto|\\d+(\\.\\d{1,2})?%|${SIZE}` };
const HINT = { size: 'bytes, or with a unit: 8MiB, 200GiB', duration: 'seconds, or with a unit: 500ms, 30s, 2m', floor: 'auto, a size (20GiB, 0 for none) or a share of the disk (5%)' };

export function fmtDurationMs(ms) {
  for (const [u, n] of [['d', 86400000], ['h', 3600000], ['m', 60000], ['s', 1000]]) if (ms && ms % n === 0) return `${ms / n}${u}`;
  return `${ms}ms`;
}

export function fmtSize(b) {
  for (const [u, n] of [['TiB', 2 ** 40], ['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]]) if (b && b % n === 0) return `${b / n}${u}`;
  return String(b);
}

function shown(kind, v) {
  if (v == null) return '';
  if (kind === 'duration') return fmtDurationMs(v);
  if (kind === 'size' || (kind === 'floor' && typeof v === 'number')) return fmtSize(v);
  return String(v);
}

// { a: { b: 1 } } -> [['a.b', 1]]; arrays (the tokens) stay whole.
function flatten(o, prefix = '', out = []) {
  for (const [k, v] of Object.entries(o)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === 'object' && !Array.isArray(v)) flatten(v, key, out);
    else out.push([key, v]);
  }
  return out;
}

export class Settings {
  constructor(root, con) {
    this.con = con;
    this.inputs = new Map(); // key -> { input, kind, was }
    this.table = el('table', { class: 'config' }, el('caption', {}, 'Effective configuration (from the file, with any live changes on top)'));
    this.msg = el('p', { id: 'config-result', class: 'form-result', role: 'status' });
    this.apply = el('button', { type: 'submit', id: 'config-apply' }, 'Apply changes');
    const reload = el('button', { type: 'button', onclick: () => this.load() }, 'Reload');
    this.form = el('form', { class: 'panel config-panel', id: 'config-form', 'aria-label': 'Configuration' },
      this.table,
      el('div', { class: 'config-tools' }, this.apply, reload, this.msg));
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submit();
    });
    root.append(this.form);
  }

  async load() {
    try {
      this.render(await getJSON('/api/config'));
    } catch (e) {
      this.say(`GET /api/config: ${e.message}`, true);
    }
  }

  render(cfg) {
    this.cfg = cfg;
    this.inputs.clear();
    const body = el('tbody');
    for (const [key, v] of flatten(cfg)) {
      const kind = LIVE_KEYS[key];
      let cell;
      if (key === 'auth.tokens') {
        cell = el('ul', { class: 'tokens' }, ...(v || []).map((t) => el('li', {}, `${t.name} (${t.role})${t.expires ? `, expires ${t.expires}` : ''}: ${t.token_file ? `file ${t.token_file}` : t.token}`)));
      } else if (kind) {
        const id = `cfg-${key.replace(/\W/g, '-')}`;
        const was = shown(kind, v);
        const input = kind === 'level'
          ? el('select', { id }, ...LEVELS.map((l) => el('option', { value: l }, l)))
          : el('input', { id, type: 'text', inputmode: kind === 'int' ? 'numeric' : 'text', pattern: PATTERN[kind], size: 12, spellcheck: 'false', title: HINT[kind] || 'a whole number' });
        input.value = was;
        input.addEventListener('input', () => input.classList.toggle('changed', input.value.trim() !== was));
        this.inputs.set(key, { input, kind, was });
        cell = el('span', {}, input, HINT[kind] ? el('small', { class: 'hint' }, ` ${HINT[kind]}`) : null);
      } else {
        cell = el('code', {}, v === null ? '—' : SIZES.has(key) ? fmtSize(v) : String(v));
      }
      body.append(el('tr', { class: kind ? 'live' : '' }, el('th', { scope: 'row' }, kind ? el('label', { for: `cfg-${key.replace(/\W/g, '-')}` }, key) : key), el('td', {}, cell)));
    }
    this.table.querySelector('tbody')?.remove();
    this.table.append(body);
  }

  changes() {
    const config = {};
    const keys = [];
    for (const [key, { input, kind, was }] of this.inputs) {
      const text = input.value.trim();
      if (text === was) continue;
      if (!new RegExp(`^(?:${PATTERN[kind] || '.+'})$`).test(text)) throw new Error(`${key}: expected ${HINT[kind] || (kind === 'int' ? 'a whole number' : 'a value')}, found "${text}"`);
      const parts = key.split('.');
      let o = config;
      for (const p of parts.slice(0, -1)) o = o[p] || (o[p] = {});
      o[parts[parts.length - 1]] = kind === 'int' ? Number(text) : text;
      keys.push(key);
    }
    return { config, keys };
  }

  async submit() {
    let c;
    try {
      c = this.changes();
    } catch (e) {
      this.say(e.message, true);
      return;
    }
    if (!c.keys.length) {
      this.say('Nothing changed.', false);
      return;
    }
    this.apply.disabled = true;
    this.say(`Applying ${c.keys.join(', ')}…`, false);
    const r = await this.con.request('operator.config.update', { config: c.config });
    this.apply.disabled = false;
    if (r.error) {
      this.say(`Not applied: ${r.error}`, true);
      return;
    }
    const applied = (r.applied || []).join(', ') || 'nothing';
    const restart = (r.restartRequired || []).join(', ');
    this.last = r;
    await this.load();
    this.say(`Applied: ${applied}.${restart ? ` Needs a restart: ${restart}.` : ''} Not written to the file: a reload from the file returns to it.`, false);
  }

  say(text, bad) {
    this.msg.textContent = text;
    this.msg.className = `form-result ${bad ? 'bad' : 'good'}`;
  }
}
