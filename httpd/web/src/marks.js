// Marks (PROTOCOL.md section 8): a proctor flags a moment of a sentinel's
// session with a kind and a short note. Sent as proctor.mark on the relay
// socket; relay answers server.mark to the sender and to every proctor
// subscribed to that sentinel, so other proctors' marks arrive here too.
// Marks made before the page subscribed come from GET .../sessions/{id}/marks.
import { el, getJSON, sentinelPath } from './api.js';

export const KINDS = ['note', 'suspicious', 'incident'];
export const NOTE_MAX_BYTES = 500;
const ANSWER_MS = 5000;
const bytes = (text) => new TextEncoder().encode(text).length;

// 14:02:11, local time.
export function fmtClock(ms) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export class Marks {
  constructor(relay) {
    this.relay = relay;
    this.bySentinel = new Map(); // sentinelId -> Map(markId -> mark)
    this.listeners = [];
    this.pending = []; // proctor.mark sent, oldest first: relay answers in order
    relay.on('server.mark', (p) => this.arrived(p.mark));
    relay.on('server.error', (p) => {
      if (p.ref !== 'proctor.mark' || !this.pending.length) return;
      const w = this.pending.shift();
      clearTimeout(w.timer);
      w.reject(new Error(p.reason || 'refused'));
    });
    relay.on('state', ({ state }) => {
      if (state === 'open') return;
      for (const w of this.pending.splice(0)) {
        clearTimeout(w.timer);
        w.reject(new Error('the connection to relay closed before its answer'));
      }
    });
  }

  // fn(mark, mine): every mark added, from relay or from the archive.
  onMark(fn) {
    this.listeners.push(fn);
  }

  of(sentinelId, sessionId) {
    const all = [...(this.bySentinel.get(sentinelId) || new Map()).values()];
    return all.filter((m) => !sessionId || m.sessionId === sessionId).sort((a, b) => a.at - b.at);
  }

  add(m, mine = false) {
    if (!m || !m.sentinelId || !m.markId) return;
    if (!this.bySentinel.has(m.sentinelId)) this.bySentinel.set(m.sentinelId, new Map());
    const known = this.bySentinel.get(m.sentinelId);
    if (known.has(m.markId)) return;
    known.set(m.markId, m);
    for (const fn of this.listeners) fn(m, mine);
  }

  arrived(m) {
    if (!m) return;
    // Ours is the oldest waiting one with the same sentinel, kind and note.
    const i = this.pending.findIndex((w) => w.sentinelId === m.sentinelId && w.kind === m.kind && w.note === m.note);
    let mine = false;
    if (i >= 0) {
      const [w] = this.pending.splice(i, 1);
      clearTimeout(w.timer);
      w.resolve(m);
      mine = true;
    }
    this.add(m, mine);
  }

  // The session's marks so far (httpd); quietly nothing when it cannot answer.
  async load(sentinelId, sessionId) {
    if (!sentinelId || !sessionId) return;
    try {
      const list = await getJSON(sentinelPath(sentinelId, `/sessions/${encodeURIComponent(sessionId)}/marks`));
      if (Array.isArray(list)) list.forEach((m) => this.add(m));
    } catch (e) {
      /* an older httpd, or the session is not archived yet */
    }
  }

  // Resolves with the stored mark, or rejects with relay's reason.
  send({ sentinelId, at, kind, note }) {
    if (bytes(note) > NOTE_MAX_BYTES) return Promise.reject(new Error(`the note is over ${NOTE_MAX_BYTES} bytes`));
    const payload = { sentinelId, kind, note };
    if (at != null) payload.at = Math.round(at);
    return new Promise((resolve, reject) => {
      if (!this.relay.send('proctor.mark', payload)) {
        reject(new Error('not connected to relay'));
        return;
      }
      const w = { sentinelId, kind, note, resolve, reject };
      w.timer = setTimeout(() => {
        const i = this.pending.indexOf(w);
        if (i >= 0) this.pending.splice(i, 1);
        reject(new Error('relay did not answer'));
      }, ANSWER_MS);
      this.pending.push(w);
    });
  }
}

// The one mark form of the page: a modal dialog (it shows over full screen too).
export class MarkDialog {
  constructor(marks) {
    this.marks = marks;
    this.title = el('h2', { id: 'mark-title' });
    this.when = el('p', { class: 'hint' });
    this.note = el('input', { id: 'mark-note', type: 'text', maxlength: NOTE_MAX_BYTES, autocomplete: 'off', placeholder: 'What happened (optional)' });
    this.count = el('span', { class: 'mark-bytes', 'aria-live': 'polite' });
    this.result = el('p', { class: 'form-result', role: 'status' });
    this.kinds = KINDS.map((k) => el('input', { type: 'radio', name: 'mark-kind', value: k, id: `mark-kind-${k}` }));
    this.submit = el('button', { type: 'submit' }, 'Mark');
    this.form = el(
      'form',
      { class: 'mark-form' },
      this.title,
      this.when,
      el('fieldset', { class: 'mark-kinds' }, el('legend', {}, 'Kind'), ...this.kinds.map((r) => el('label', { class: `kind-${r.value}` }, r, ` ${r.value}`))),
      el('label', { for: 'mark-note' }, 'Note'),
      this.note,
      this.count,
      this.result,
      el('div', { class: 'confirm-buttons' }, el('button', { type: 'button', onclick: () => this.node.close() }, 'Cancel'), this.submit)
    );
    this.node = el('dialog', { class: 'confirm mark-dialog', 'aria-labelledby': 'mark-title' }, this.form);
    this.note.addEventListener('input', () => this.counted());
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.send();
    });
    document.body.append(this.node);
  }

  get open() {
    return this.node.open;
  }

  counted() {
    const n = bytes(this.note.value);
    this.count.textContent = `${n}/${NOTE_MAX_BYTES} bytes`;
    this.count.classList.toggle('over', n > NOTE_MAX_BYTES);
    return n;
  }

  // target: { sentinelId, name, at } (at: unix ms of the picture shown, or null for now).
  show(target) {
    if (this.node.open) return;
    this.target = target;
    this.title.textContent = `Mark ${target.name}`;
    this.when.textContent = target.at ? `At ${fmtClock(target.at)}, the picture shown when you asked.` : 'Now.';
    this.note.value = '';
    this.kinds[0].checked = true;
    this.result.textContent = '';
    this.result.className = 'form-result';
    this.submit.disabled = false;
    this.counted();
    this.node.showModal();
    this.note.focus();
  }

  async send() {
    if (this.counted() > NOTE_MAX_BYTES) {
      this.result.textContent = `The note is over ${NOTE_MAX_BYTES} bytes.`;
      this.result.className = 'form-result bad';
      return;
    }
    const kind = (this.kinds.find((r) => r.checked) || this.kinds[0]).value;
    this.submit.disabled = true;
    this.result.textContent = 'Marking…';
    this.result.className = 'form-result';
    try {
      await this.marks.send({ ...this.target, kind, note: this.note.value });
      this.node.close();
    } catch (e) {
      this.result.textContent = `Not marked: ${e.message}`;
      this.result.className = 'form-result bad';
    } finally {
      this.submit.disabled = false;
    }
  }
}

// One line per mark: clock time, kind, who, note.
export function markItem(m, onPick) {
  const text = [el('time', { datetime: new Date(m.at).toISOString() }, fmtClock(m.at)), el('span', { class: `kind kind-${m.kind}` }, m.kind), el('span', { class: 'by' }, m.by || '')];
  const note = el('span', { class: 'note' }, m.note || '');
  const body = onPick ? el('button', { type: 'button', class: 'mark-pick', title: 'Play from here', onclick: () => onPick(m) }, ...text, note) : el('span', {}, ...text, note);
  return el('li', { class: `mark kind-${m.kind}`, 'data-mark': m.markId }, body);
}
